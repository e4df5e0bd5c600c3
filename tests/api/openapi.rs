//! The OpenAPI document: the committed `openapi.json` is what the code generates, the server
//! serves it, and it describes every row of the contract's error table.
//!
//! After changing an annotation or a schema type: `UPDATE_OPENAPI=1 cargo test --test api openapi`
//! rewrites `openapi.json`; commit it with the change.

use crate::helpers::spawn_app;
use kick_oauth_proxy::api::openapi::document_json;
use serde_json::Value;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
const REGENERATE: &str = "UPDATE_OPENAPI=1 cargo test --test api openapi";

const TOKEN_PATHS: [&str; 3] = [
    "/api/v1/{provider}/token",
    "/api/v1/{provider}/refresh",
    "/api/v1/{provider}/revoke",
];

fn document() -> Value {
    serde_json::from_str(document_json()).expect("the document is JSON")
}

#[test]
fn committed_openapi_json_is_what_the_code_generates() {
    let generated = document_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(COMMITTED, generated).expect("write openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_else(|e| {
        panic!("cannot read {COMMITTED} ({e}): generate it with `{REGENERATE}`")
    });
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || committed.lines().count().min(generated.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "openapi.json differs from the document the code generates (first at line {line}). \
             Regenerate it with `{REGENERATE}` and commit it with the change."
        );
    }
}

#[tokio::test]
async fn the_server_serves_the_document() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().ok(),
        Some("application/json")
    );
    assert!(response.headers().contains_key("x-request-id"));
    let body = response.text().await.expect("body");
    assert_eq!(body, document_json());
    // A different shape from the `/api/v1/{provider}/…` routes, so never taken for a provider.
    let post = app
        .http
        .post(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(post.status(), 405);
}

#[test]
fn the_document_is_openapi_3_1_with_the_crate_version() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("openapi field");
    assert!(version.starts_with("3.1."), "openapi is {version}");
    assert_eq!(doc["info"]["title"], "kick-oauth-proxy");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        doc["info"]["license"]["identifier"],
        env!("CARGO_PKG_LICENSE")
    );
    assert!(doc["info"]["description"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
}

/// Follows a local `$ref` (`#/components/…`) to what it names.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("local $ref");
            resolve(
                doc,
                doc.pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling {reference}")),
            )
        }
        None => value,
    }
}

/// The `error` codes a response's JSON examples show.
fn example_codes(content: &Value) -> Vec<String> {
    let mut values: Vec<&Value> = content.get("example").into_iter().collect();
    if let Some(examples) = content.get("examples").and_then(Value::as_object) {
        values.extend(examples.values().filter_map(|e| e.get("value")));
    }
    values
        .iter()
        .filter_map(|v| v["error"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn every_row_of_the_contract_error_table_is_documented_on_every_token_endpoint() {
    // (situation, status, `error` in the body, header the answer carries), from the contract's
    // "Errors" table (408 from the README's).
    let rows: [(&str, u16, &str, Option<&str>); 11] = [
        (
            "bad field, verifier, redirect, JSON or form",
            400,
            "invalid_request",
            None,
        ),
        ("provider refused the grant", 400, "invalid_grant", None),
        (
            "provider rejected our client credentials",
            502,
            "error_kick_server_error",
            None,
        ),
        (
            "provider unreachable, timed out, 5xx, not JSON, …",
            502,
            "error_kick_server_error",
            None,
        ),
        ("body not received in time", 408, "invalid_request", None),
        ("body too large", 413, "invalid_request", None),
        ("unsupported content type", 415, "invalid_request", None),
        ("wrong method", 405, "invalid_request", Some("Allow")),
        ("unknown provider or path", 404, "not_found", None),
        ("rate limited", 429, "slow_down", Some("Retry-After")),
        (
            "overloaded or breaker open",
            503,
            "temporarily_unavailable",
            Some("Retry-After"),
        ),
    ];
    let doc = document();
    for path in TOKEN_PATHS {
        let operation = &doc["paths"][path]["post"];
        assert!(operation.is_object(), "POST {path} is not documented");
        for (situation, status, code, header) in rows {
            let response = operation["responses"]
                .get(status.to_string())
                .map(|r| resolve(&doc, r))
                .unwrap_or_else(|| panic!("POST {path}: no {status} ({situation})"));
            let content = &response["content"]["application/json"];
            assert_eq!(
                resolve(&doc, &content["schema"]),
                &doc["components"]["schemas"]["ErrorResponse"],
                "POST {path} {status}: body is not ErrorResponse"
            );
            assert!(
                example_codes(content).iter().any(|c| c == code),
                "POST {path} {status} ({situation}): no example with error `{code}`"
            );
            for name in ["Cache-Control", "Pragma", "x-request-id"]
                .into_iter()
                .chain(header)
            {
                assert!(
                    response["headers"].get(name).is_some(),
                    "POST {path} {status}: header {name} not documented"
                );
            }
        }
        let ok = resolve(&doc, &operation["responses"]["200"]);
        let schema = resolve(&doc, &ok["content"]["application/json"]["schema"]);
        let expected = if path.ends_with("/revoke") {
            "RevokeResponse"
        } else {
            "TokenResponse"
        };
        assert_eq!(
            schema, &doc["components"]["schemas"][expected],
            "POST {path} 200"
        );
    }
}

/// The sorted `required` list of the component schema `schema`.
fn required_fields<'a>(doc: &'a Value, schema: &str) -> Vec<&'a str> {
    let mut listed: Vec<&str> = doc["components"]["schemas"][schema]["required"]
        .as_array()
        .unwrap_or_else(|| panic!("{schema}: no required list"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    listed.sort_unstable();
    listed
}

/// The values a property's schema allows, when it is an `enum` (possibly wrapped in a one-item
/// `oneOf` that carries the property's description).
fn enum_values<'a>(doc: &'a Value, property: &'a Value) -> &'a Value {
    let property = resolve(doc, property);
    match property["oneOf"].as_array() {
        Some(one) if one.len() == 1 => &resolve(doc, &one[0])["enum"],
        _ => &property["enum"],
    }
}

#[test]
fn token_endpoints_take_json_and_forms_and_a_provider_path_parameter() {
    let doc = document();
    for (path, schema, shapes) in [
        (
            TOKEN_PATHS[0],
            "TokenRequest",
            &[
                (
                    "AuthorizationCodeGrant",
                    &["code", "code_verifier", "redirect_uri"][..],
                ),
                ("RefreshTokenGrant", &["grant_type", "refresh_token"][..]),
            ][..],
        ),
        (
            TOKEN_PATHS[1],
            "RefreshRequest",
            &[("RefreshRequest", &["refresh_token"][..])][..],
        ),
        (
            TOKEN_PATHS[2],
            "RevokeRequest",
            &[("RevokeRequest", &["token"][..])][..],
        ),
    ] {
        let operation = &doc["paths"][path]["post"];
        let body = &operation["requestBody"];
        assert_eq!(body["required"], true, "{path}");
        for media in ["application/json", "application/x-www-form-urlencoded"] {
            assert_eq!(
                body["content"][media]["schema"]["$ref"],
                format!("#/components/schemas/{schema}"),
                "{path} {media}"
            );
        }
        // `/token` takes one of two shapes; the others one.
        if let [(only, _)] = shapes {
            assert_eq!(schema, *only);
        } else {
            let one_of: Vec<&str> = doc["components"]["schemas"][schema]["oneOf"]
                .as_array()
                .unwrap_or_else(|| panic!("{schema} is not a oneOf"))
                .iter()
                .filter_map(|s| s["$ref"].as_str())
                .collect();
            let expected: Vec<String> = shapes
                .iter()
                .map(|(name, _)| format!("#/components/schemas/{name}"))
                .collect();
            assert_eq!(one_of, expected, "{schema}.oneOf");
        }
        for (shape, required) in shapes {
            let mut expected = required.to_vec();
            expected.sort_unstable();
            assert_eq!(required_fields(&doc, shape), expected, "{shape}.required");
        }
        let provider = operation["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .find(|p| p["name"] == "provider")
            .unwrap_or_else(|| panic!("{path}: no provider parameter"));
        assert_eq!(provider["in"], "path");
        assert_eq!(provider["required"], true);
        assert_eq!(provider["schema"]["type"], "string");
    }
    // What grant_type selects: the code exchange takes only `authorization_code` (or none), a
    // refresh only `refresh_token`; so a body matches exactly one shape.
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        enum_values(
            &doc,
            &schemas["AuthorizationCodeGrant"]["properties"]["grant_type"]
        ),
        &serde_json::json!(["authorization_code"])
    );
    assert_eq!(
        enum_values(
            &doc,
            &schemas["RefreshTokenGrant"]["properties"]["grant_type"]
        ),
        &serde_json::json!(["refresh_token"])
    );
    let verifier = &schemas["AuthorizationCodeGrant"]["properties"]["code_verifier"];
    assert_eq!(verifier["minLength"], 43);
    assert_eq!(verifier["maxLength"], 128);
    assert_eq!(verifier["pattern"], "^[A-Za-z0-9._~-]+$");
    let hint = resolve(
        &doc,
        &doc["components"]["schemas"]["RevokeRequest"]["properties"]["token_type_hint"],
    );
    assert_eq!(
        hint["enum"],
        serde_json::json!(["access_token", "refresh_token"])
    );
}

#[test]
fn unsupported_grant_type_is_documented_on_token_only() {
    let doc = document();
    let codes = |path: &str| {
        let response = resolve(&doc, &doc["paths"][path]["post"]["responses"]["400"]);
        example_codes(&response["content"]["application/json"])
    };
    let token = codes(TOKEN_PATHS[0]);
    for code in ["invalid_request", "unsupported_grant_type", "invalid_grant"] {
        assert!(token.iter().any(|c| c == code), "/token 400: no {code}");
    }
    for path in &TOKEN_PATHS[1..] {
        assert!(
            !codes(path).iter().any(|c| c == "unsupported_grant_type"),
            "{path} never answers unsupported_grant_type"
        );
    }
}

#[test]
fn probes_and_the_document_itself_are_documented() {
    let doc = document();
    for (path, statuses) in [
        ("/healthz", &["200"][..]),
        ("/readyz", &["200", "503"][..]),
        ("/api/v1/openapi.json", &["200"][..]),
    ] {
        let responses = &doc["paths"][path]["get"]["responses"];
        for status in statuses {
            assert!(responses.get(*status).is_some(), "GET {path} {status}");
        }
    }
    let provider = &doc["components"]["schemas"]["ProviderHealth"];
    assert_eq!(
        resolve(&doc, &provider["properties"]["upstream"])["enum"],
        serde_json::json!(["ok", "failing"])
    );
}
