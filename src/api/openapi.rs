//! The OpenAPI 3.1 document of the public API, generated from the code with utoipa, and served at
//! `GET /api/v1/openapi.json`.
//!
//! Where each part comes from:
//! - operations: the `#[utoipa::path]` annotations on the handlers ([`super::handlers`],
//!   [`super::health`], and [`serve`] here);
//! - request bodies, the token response, the error body, the `{provider}` parameter and the
//!   reusable responses (one per error status of the contract's table): [`super::docs`];
//! - the headers the middleware puts on every answer (`Cache-Control`, `Pragma`, `x-request-id`):
//!   this module.
//!
//! The document is committed as `openapi.json` at the repository root; `tests/api/openapi.rs` keeps
//! it byte-identical to [`document_json`] (`UPDATE_OPENAPI=1 cargo test --test api openapi`
//! rewrites it) and `scripts/schemathesis.sh` fuzzes the running server against it.

use super::docs::*;
use super::{handlers, health};
use crate::reply::json_response;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::LazyLock;
use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{self, RefOr, Required};
use utoipa::{Modify, OpenApi};

/// The document's source: the annotated handlers and the reusable responses.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "kick-oauth-proxy",
        description = "OAuth token-exchange proxy for desktop apps. Kick's OAuth 2.1 server (like \
            Twitch's and Google's for desktop clients) requires `client_secret` on its token \
            endpoint even with PKCE, and a desktop app cannot keep a secret: the app sends its \
            authorization code or refresh token here; the proxy checks it, adds the client \
            credentials, calls the provider once and returns the tokens.\n\n\
            Every response is JSON with `Cache-Control: no-store` and `Pragma: no-cache`, and \
            carries an `x-request-id`. Every error is `{\"error\": \"<code>\", \
            \"error_description\": \"<fixed, safe text>\"}`; descriptions never echo a code, \
            verifier or token.",
    ),
    paths(
        handlers::token,
        handlers::refresh,
        handlers::revoke,
        health::healthz,
        health::readyz,
        serve,
    ),
    components(
        schemas(ErrorResponse, TokenResponse, RevokeResponse),
        responses(
            TokenIssued,
            Revoked,
            BadRequest,
            TokenBadRequest,
            NotFound,
            MethodNotAllowed,
            RequestTimeout,
            PayloadTooLarge,
            UnsupportedMediaType,
            TooManyRequests,
            BadGateway,
            ServiceUnavailable,
        ),
    ),
    tags(
        (name = "oauth", description = "Token exchange, refresh and revocation."),
        (name = "probes", description = "Liveness and readiness for orchestrators and load balancers."),
        (name = "meta", description = "This document."),
    ),
    modifiers(&License, &RequestId, &CommonHeaders),
)]
pub struct ApiDoc;

/// The document.
pub fn document() -> openapi::OpenApi {
    ApiDoc::openapi()
}

static DOCUMENT_JSON: LazyLock<String> = LazyLock::new(|| {
    let mut text = document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot render the OpenAPI document: {e}\"}}"));
    text.push('\n');
    text
});

/// The document as pretty-printed JSON with a final newline: what `GET /api/v1/openapi.json`
/// serves and what the committed `openapi.json` holds. Rendered once.
pub fn document_json() -> &'static str {
    &DOCUMENT_JSON
}

/// `GET /api/v1/openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi",
    tag = "meta",
    summary = "This OpenAPI document",
    description = "The OpenAPI 3.1 document of the public API, generated from the code and \
        rendered once, at the first request. Never rate limited or shed.",
    responses((status = 200, description = "The document.", body = Object))
)]
pub async fn serve() -> Response {
    json_response(StatusCode::OK, document_json().as_bytes())
}

/// `info.license`: the crate's SPDX expression as the 3.1 `identifier`.
struct License;

impl Modify for License {
    fn modify(&self, openapi: &mut openapi::OpenApi) {
        let spdx = env!("CARGO_PKG_LICENSE");
        openapi.info.license = Some(
            openapi::info::LicenseBuilder::new()
                .name(spdx)
                .identifier(Some(spdx))
                .build(),
        );
    }
}

/// The optional `x-request-id` request header, read by the request-log layer on every route.
struct RequestId;

impl Modify for RequestId {
    fn modify(&self, openapi: &mut openapi::OpenApi) {
        let parameter = ParameterBuilder::new()
            .name("x-request-id")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Correlates the request with the proxy's log line. Used and echoed back when it is \
                 1 to 128 characters of `A-Z a-z 0-9 . _ : -`; otherwise (or when absent) the proxy \
                 generates one.",
            ))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .example(Some(json!("c0ffee-1234")))
            .build();
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .push(parameter.clone());
            }
        }
    }
}

/// The headers every answer carries: `Cache-Control` and `Pragma` (set with the JSON body) and
/// `x-request-id` (set by the request-log layer), on every response of every operation and
/// component.
struct CommonHeaders;

impl Modify for CommonHeaders {
    fn modify(&self, openapi: &mut openapi::OpenApi) {
        let common: BTreeMap<&str, openapi::header::Header> = BTreeMap::from([
            (
                "Cache-Control",
                string_header(
                    "Always `no-store`: the body may hold tokens.",
                    Some("no-store"),
                ),
            ),
            (
                "Pragma",
                string_header("Always `no-cache`.", Some("no-cache")),
            ),
            (
                "x-request-id",
                string_header(
                    "The request's id: the caller's `x-request-id` when sane, else generated.",
                    Some("c0ffee-1234"),
                ),
            ),
        ]);
        let add = |response: &mut RefOr<openapi::Response>| {
            if let RefOr::T(response) = response {
                for (name, header) in &common {
                    response
                        .headers
                        .entry((*name).to_owned())
                        .or_insert_with(|| header.clone());
                }
            }
        };
        if let Some(components) = openapi.components.as_mut() {
            components.responses.values_mut().for_each(add);
        }
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
                operation.responses.responses.values_mut().for_each(add);
            }
        }
    }
}
