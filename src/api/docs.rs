//! The pieces of the OpenAPI document the handlers' annotations refer to: the `{provider}`
//! parameter, the request and response bodies, and the reusable responses (one per error status
//! of the contract's table, with its `error` codes as examples and `Retry-After`/`Allow` where
//! sent). Documentation only: the document itself is assembled in [`super::openapi`].

use super::input::TokenTypeHint;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{self, ContentBuilder, RefOr, Required, ResponseBuilder};
use utoipa::{ToResponse, ToSchema};

// The request bodies as the OpenAPI document (`super::openapi`) describes them. Documentation
// only: the handlers read [`Fields`] and apply the rules above, which these schemas restate (the
// tests in `tests/api/openapi.rs` and the schemathesis run keep the two in step).

/// `POST /api/v1/{provider}/token` body: a JSON object or a form, in one of two shapes chosen by
/// `grant_type` (RFC 6749 §4.1.3, §6): the code exchange (no `grant_type`, an empty one, or
/// `authorization_code`) or a refresh (`refresh_token`), which is exactly `POST /refresh`. Any
/// other `grant_type` is 400 `unsupported_grant_type`. Other fields (a `client_id` or
/// `client_secret` included) are ignored and never forwarded; a field sent twice is refused.
#[derive(utoipa::ToSchema)]
#[serde(untagged)]
pub enum TokenRequest {
    /// The code exchange.
    AuthorizationCode(AuthorizationCodeGrant),
    /// A refresh, as standard OAuth client libraries send it to the token endpoint.
    RefreshToken(RefreshTokenGrant),
}

/// The code exchange at `/token` (RFC 6749 §4.1.3 with PKCE, RFC 7636 §4.5): what Battles Record
/// sends, without a `grant_type`.
#[derive(utoipa::ToSchema)]
#[schema(examples(json!({
    "code": "NZQ4ZWE3OTCTMJC5ZS0ZNJQ5LWE2NZUTYMZMNDQZYTC5OGY3",
    "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    "redirect_uri": "battles-record://oauth/callback"
})))]
pub struct AuthorizationCodeGrant {
    /// Optional: absent or empty (RFC 6749 §3.2: a parameter without a value counts as omitted)
    /// means `authorization_code` too.
    #[schema(required = false, nullable = false, inline)]
    pub grant_type: Option<AuthorizationCodeGrantType>,
    /// The authorization code from the provider's redirect: visible ASCII, at most 4096 bytes.
    #[schema(min_length = 1, max_length = 4096, pattern = r"^[!-~]+$")]
    pub code: String,
    /// The PKCE verifier (RFC 7636 §4.1): 43 to 128 characters of `A-Z a-z 0-9 - . _ ~`.
    #[schema(min_length = 43, max_length = 128, pattern = r"^[A-Za-z0-9._~-]+$")]
    pub code_verifier: String,
    /// Byte-for-byte one of the provider's `allowed_redirect_uris` (no normalisation); any other
    /// value is 400 `invalid_request`. Only an entry configured as a loopback wildcard port
    /// (`http://127.0.0.1:*/callback`, RFC 8252 §7.3) also matches that text with any port
    /// 1..=65535 in place of the `*`.
    #[schema(min_length = 1)]
    pub redirect_uri: String,
}

/// `grant_type` of the code exchange.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum AuthorizationCodeGrantType {
    /// `authorization_code`.
    AuthorizationCode,
}

/// A refresh at `/token` (RFC 6749 §6): exactly `POST /refresh` (the same input rules; replay and
/// single-flight shared with the same refresh at `/refresh`), rate limited in the `/token` bucket.
#[derive(utoipa::ToSchema)]
#[schema(examples(json!({
    "grant_type": "refresh_token",
    "refresh_token": "MWM5ZTQ3YTMTZGM4YS0ZMGQ5LWI3NTATMTHJNWJMZTDKMWRI"
})))]
pub struct RefreshTokenGrant {
    /// `refresh_token`.
    #[schema(inline)]
    pub grant_type: RefreshTokenGrantType,
    /// The refresh token: visible ASCII, at most 4096 bytes.
    #[schema(min_length = 1, max_length = 4096, pattern = r"^[!-~]+$")]
    pub refresh_token: String,
}

/// `grant_type` of a refresh.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum RefreshTokenGrantType {
    /// `refresh_token`.
    RefreshToken,
}

/// `POST /api/v1/{provider}/refresh` body: a JSON object or a form. Other fields (a `grant_type`
/// included) are ignored.
#[derive(utoipa::ToSchema)]
#[schema(examples(json!({"refresh_token": "MWM5ZTQ3YTMTZGM4YS0ZMGQ5LWI3NTATMTHJNWJMZTDKMWRI"})))]
pub struct RefreshRequest {
    /// The refresh token: visible ASCII, at most 4096 bytes.
    #[schema(min_length = 1, max_length = 4096, pattern = r"^[!-~]+$")]
    pub refresh_token: String,
}

/// `POST /api/v1/{provider}/revoke` body (RFC 7009 §2.1): a JSON object or a form. Other fields
/// are ignored.
#[derive(utoipa::ToSchema)]
#[schema(examples(json!({
    "token": "MWM5ZTQ3YTMTZGM4YS0ZMGQ5LWI3NTATMTHJNWJMZTDKMWRI",
    "token_type_hint": "refresh_token"
})))]
pub struct RevokeRequest {
    /// The access or refresh token to revoke: visible ASCII, at most 4096 bytes.
    #[schema(min_length = 1, max_length = 4096, pattern = r"^[!-~]+$")]
    pub token: String,
    /// Which kind of token `token` is, when the caller knows.
    #[schema(required = false, nullable = false)]
    pub token_type_hint: Option<TokenTypeHint>,
}

/// A successful token response (RFC 6749 §5.1), normalised by the proxy. Fields the provider sent
/// beyond these (an `id_token`, say) pass through unchanged.
#[derive(ToSchema, serde::Serialize)]
#[schema(examples(json!({
    "access_token": "NJY1YJYYMGITNMRJZC0ZMTUWLTG1ZWQTOTU2ZJRINDM1YMY0",
    "token_type": "Bearer",
    "expires_in": 7200,
    "refresh_token": "ZTLHNDE3NZMTMWRKNS0ZZWEYLTK0ZDITMMY2OGQ2YWEWZJGW",
    "scope": "user:read channel:read"
})))]
pub struct TokenResponse {
    /// The access token.
    #[schema(min_length = 1)]
    pub access_token: String,
    /// `Bearer` (a provider's `bearer` is normalised); another type the provider named is kept.
    #[schema(examples("Bearer"))]
    pub token_type: String,
    /// Lifetime in seconds, always an integer (a provider's `"7200"` is normalised); absent when
    /// the provider sent none or something that is not a non-negative integer.
    #[schema(required = false, nullable = false, examples(7200))]
    pub expires_in: Option<u64>,
    /// Present when the provider sent one. Kick sends a new one on every refresh: store it.
    #[schema(required = false, nullable = false)]
    pub refresh_token: Option<String>,
    /// Present when the provider sent it: one space-separated string (a list is joined).
    #[schema(required = false, nullable = false, examples("user:read channel:read"))]
    pub scope: Option<String>,
    /// Any other field the provider sent (an `id_token`, say), unchanged.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// The revocation answer: always the empty object (RFC 7009 §2.2).
#[derive(ToSchema)]
#[schema(max_properties = 0, examples(json!({})))]
pub struct RevokeResponse {}

/// Every error (RFC 6749 §5.2 shape).
#[derive(ToSchema)]
pub struct ErrorResponse {
    /// The error code: `invalid_request`, `unsupported_grant_type` (`/token` only), `not_found`,
    /// `slow_down`, `temporarily_unavailable`, `error_<provider>_server_error` (502), or the
    /// provider's own code for a refused grant (`invalid_grant`, `invalid_scope`, …).
    #[schema(min_length = 1)]
    pub error: String,
    /// A fixed text, or the provider's description sanitised (printable ASCII without `"` and
    /// `\`, at most 512 characters). Never echoes the request's code, verifier or tokens, nor the
    /// proxy's client secret: a provider description containing one anywhere is dropped.
    pub error_description: String,
    /// On 502 only: a copy of `error_description` (the shape TeamBattles documented).
    #[schema(required = false, nullable = false)]
    pub details: Option<String>,
}

fn error_example(error: &str, description: &str) -> Value {
    json!({"error": error, "error_description": description})
}

fn integer_header(description: &str) -> openapi::header::Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1)),
        )
        .description(Some(description))
        .build()
}

pub(super) fn string_header(description: &str, example: Option<&str>) -> openapi::header::Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .examples(example.map(|e| json!(e))),
        )
        .description(Some(description))
        .build()
}

fn retry_after(description: &str) -> (&'static str, openapi::header::Header) {
    ("Retry-After", integer_header(description))
}

/// A reusable JSON response: `schema` (a component name), its description, named examples and
/// headers beyond the common ones (which [`CommonHeaders`] adds everywhere).
fn json_answer(
    description: &str,
    schema: &str,
    examples: &[(&str, Value)],
    headers: Vec<(&'static str, openapi::header::Header)>,
) -> RefOr<openapi::Response> {
    let mut content = ContentBuilder::new().schema(Some(openapi::Ref::from_schema_name(schema)));
    content = if let [(_, only)] = examples {
        content.example(Some(only.clone()))
    } else {
        content.examples_from_iter(examples.iter().map(|(name, value)| {
            (
                *name,
                ExampleBuilder::new().value(Some(value.clone())).build(),
            )
        }))
    };
    let mut response = ResponseBuilder::new()
        .description(description)
        .content("application/json", content.build());
    for (name, header) in headers {
        response = response.header(name, header);
    }
    RefOr::T(response.build())
}

/// The `{provider}` path segment of the three OAuth endpoints.
pub struct ProviderPath;

impl utoipa::IntoParams for ProviderPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<utoipa::openapi::path::Parameter> {
        vec![ParameterBuilder::new()
            .name("provider")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some(
                "A provider name from the config (a table under `[providers]`); `kick` in the \
                 default config. Any other name is 404 `not_found`.",
            ))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .example(Some(json!("kick")))
            .build()]
    }
}

/// `status` and a reference to the reusable response `R`.
fn entry<R: for<'r> ToResponse<'r>>(status: u16) -> (String, RefOr<openapi::Response>) {
    let (name, _) = R::response();
    (
        status.to_string(),
        openapi::Ref::from_response_name(name).into(),
    )
}

/// The error answers the three OAuth endpoints share, 400 to 503: one list for their
/// `#[utoipa::path]` blocks, which add their own 200.
pub struct OAuthErrors;

/// [`OAuthErrors`] for `/token`, whose 400 can also be `unsupported_grant_type`.
pub struct TokenErrors;

impl utoipa::IntoResponses for TokenErrors {
    fn responses() -> BTreeMap<String, RefOr<openapi::Response>> {
        let mut responses = OAuthErrors::responses();
        responses.extend([entry::<TokenBadRequest>(400)]);
        responses
    }
}

impl utoipa::IntoResponses for OAuthErrors {
    fn responses() -> BTreeMap<String, RefOr<openapi::Response>> {
        BTreeMap::from([
            entry::<BadRequest>(400),
            entry::<NotFound>(404),
            entry::<MethodNotAllowed>(405),
            entry::<RequestTimeout>(408),
            entry::<PayloadTooLarge>(413),
            entry::<UnsupportedMediaType>(415),
            entry::<TooManyRequests>(429),
            entry::<BadGateway>(502),
            entry::<ServiceUnavailable>(503),
        ])
    }
}

/// Declares the reusable responses: a unit struct per response, implementing [`ToResponse`].
macro_rules! responses {
    ($($(#[$doc:meta])* $name:ident => $body:expr;)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<openapi::Response>) {
                (stringify!($name), $body)
            }
        }
    )*};
}

responses! {
    /// 200 from `/token` and `/refresh`.
    TokenIssued => json_answer(
        "The provider issued tokens. An identical retry within the replay window gets this same \
         answer without a second provider call.",
        "TokenResponse",
        &[],
        vec![],
    );
    /// 200 from `/revoke`.
    Revoked => json_answer(
        "Revoked, or unknown to the provider (RFC 7009 §2.2): either way the token is no longer \
         usable.",
        "RevokeResponse",
        &[("revoked", json!({}))],
        vec![],
    );
    /// 400: the caller's request, or the provider refused the grant.
    BadRequest => json_answer(
        "A field missing, empty, sent twice, not a string or malformed; a bad `code_verifier`; a \
         `redirect_uri` not allowed; a body that is not a JSON object or a form: `invalid_request`. \
         Or the provider refused the grant (`invalid_grant`, `invalid_scope`, …): its code, its \
         description sanitised.",
        "ErrorResponse",
        &[
            ("invalid_request", error_example(
                "invalid_request",
                "The `redirect_uri` is not one this server allows.",
            )),
            ("invalid_grant", error_example(
                "invalid_grant",
                "The authorization grant or refresh token is invalid, expired, revoked or was \
                 issued to another client.",
            )),
        ],
        vec![],
    );
    /// 400 from `/token`: [`BadRequest`], or a `grant_type` it does not support.
    TokenBadRequest => json_answer(
        "A field missing, empty, sent twice, not a string or malformed (a `grant_type` that is \
         not a string included); a bad `code_verifier`; a `redirect_uri` not allowed; a body that \
         is not a JSON object or a form: `invalid_request`. A `grant_type` other than \
         `authorization_code` or `refresh_token`: `unsupported_grant_type`, without a provider \
         call. Or the provider refused the grant (`invalid_grant`, `invalid_scope`, …): its code, \
         its description sanitised.",
        "ErrorResponse",
        &[
            ("invalid_request", error_example(
                "invalid_request",
                "The `redirect_uri` is not one this server allows.",
            )),
            ("unsupported_grant_type", error_example(
                "unsupported_grant_type",
                "The grant_type must be authorization_code (or absent) or refresh_token.",
            )),
            ("invalid_grant", error_example(
                "invalid_grant",
                "The authorization grant or refresh token is invalid, expired, revoked or was \
                 issued to another client.",
            )),
        ],
        vec![],
    );
    /// 404: unknown provider or path.
    NotFound => json_answer(
        "Unknown provider (or path); on `/revoke` also a provider without a revocation endpoint.",
        "ErrorResponse",
        &[("not_found", error_example("not_found", "No such endpoint or provider."))],
        vec![],
    );
    /// 405: wrong method, with `Allow`.
    MethodNotAllowed => json_answer(
        "Wrong method for this path.",
        "ErrorResponse",
        &[("invalid_request", error_example(
            "invalid_request",
            "Method not allowed for this endpoint.",
        ))],
        vec![("Allow", string_header("The methods this path accepts.", Some("POST")))],
    );
    /// 408: the body did not arrive in time.
    RequestTimeout => json_answer(
        "The request body was not received within `body_read_timeout_secs`.",
        "ErrorResponse",
        &[("invalid_request", error_example(
            "invalid_request",
            "The request body was not received in time.",
        ))],
        vec![],
    );
    /// 413: body over 16 KiB.
    PayloadTooLarge => json_answer(
        "The body is over 16 KiB (refused without reading the rest when `Content-Length` says so).",
        "ErrorResponse",
        &[("invalid_request", error_example(
            "invalid_request",
            "The request body is larger than 16 KiB.",
        ))],
        vec![],
    );
    /// 415: neither JSON nor a form.
    UnsupportedMediaType => json_answer(
        "The content type is neither `application/json` nor `application/x-www-form-urlencoded`, \
         or its charset is not UTF-8.",
        "ErrorResponse",
        &[("invalid_request", error_example(
            "invalid_request",
            "Send application/json or application/x-www-form-urlencoded (UTF-8).",
        ))],
        vec![],
    );
    /// 429: rate limited.
    TooManyRequests => json_answer(
        "Too many requests from this client IP for this endpoint (per-IP token buckets). Answered \
         before the body is read; the provider is not called.",
        "ErrorResponse",
        &[("slow_down", error_example(
            "slow_down",
            "Too many requests; retry after 42 seconds.",
        ))],
        vec![retry_after(
            "Whole seconds, at least 1, until this client's next request will be accepted.",
        )],
    );
    /// 502: the provider could not be used.
    BadGateway => json_answer(
        "The provider could not be used: unreachable, timed out, 5xx, not JSON, a WAF or HTML \
         page, a redirect, over 64 KiB, no `access_token`, or it rejected this server's client \
         credentials. `error` is `error_<provider>_server_error`; `details` repeats the \
         description. Retry later: the proxy never retries a call that may have reached the \
         provider.",
        "ErrorResponse",
        &[("error_kick_server_error", json!({
            "error": "error_kick_server_error",
            "error_description": "Failed to communicate with Kick OAuth server",
            "details": "Failed to communicate with Kick OAuth server"
        }))],
        vec![],
    );
    /// 503: overloaded, or the provider's breaker is open.
    ServiceUnavailable => json_answer(
        "Overloaded (too many requests or provider calls in progress: `Retry-After: 1`), or the \
         provider has been failing and its circuit breaker is open (`Retry-After`: seconds until \
         the next probe call).",
        "ErrorResponse",
        &[("temporarily_unavailable", error_example(
            "temporarily_unavailable",
            "The service is busy or the provider is failing; retry later.",
        ))],
        vec![retry_after("Whole seconds, at least 1, to wait before retrying.")],
    );
}
