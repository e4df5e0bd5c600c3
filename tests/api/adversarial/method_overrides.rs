//! Method overrides: the method on the request line is the only one that counts.

use crate::helpers::cases::*;
use crate::helpers::*;
use reqwest::Method;

/// A request whose method someone tries to override.
struct Override {
    name: &'static str,
    method: Method,
    path: &'static str,
    header: (&'static str, &'static str),
    body: String,
    expect: Expect,
}

#[tokio::test]
async fn method_override_headers_and_fields_are_ignored() {
    let app = spawn_app().await;
    app.upstream_succeeds_times(2).await;
    let cases = vec![
        Override {
            name: "POST with X-HTTP-Method-Override: GET is still a POST",
            method: Method::POST,
            path: TOKEN,
            header: ("x-http-method-override", "GET"),
            body: json_exchange(&code(120)),
            expect: served_with_code(&code(120)),
        },
        Override {
            name: "POST with X-HTTP-Method-Override: DELETE and _method=DELETE",
            method: Method::POST,
            path: TOKEN,
            header: ("x-http-method-override", "DELETE"),
            body: json_exchange_with(r#""_method":"DELETE","#, &code(121)),
            expect: served_with_code(&code(121)),
        },
        Override {
            name: "GET with X-HTTP-Method-Override: POST",
            method: Method::GET,
            path: TOKEN,
            header: ("x-http-method-override", "POST"),
            body: json_exchange(&code(122)),
            expect: Expect::Refused(405, "invalid_request"),
        },
        Override {
            name: "PUT with X-HTTP-Method: POST",
            method: Method::PUT,
            path: TOKEN,
            header: ("x-http-method", "POST"),
            body: json_exchange(&code(123)),
            expect: Expect::Refused(405, "invalid_request"),
        },
        Override {
            name: "GET with X-Method-Override: POST on /refresh",
            method: Method::GET,
            path: REFRESH,
            header: ("x-method-override", "POST"),
            body: format!(r#"{{"refresh_token":"{REFRESH_TOKEN}"}}"#),
            expect: Expect::Refused(405, "invalid_request"),
        },
        Override {
            name: "an unknown method FOO",
            method: Method::from_bytes(b"FOO").expect("method"),
            path: TOKEN,
            header: ("x-http-method-override", "POST"),
            body: json_exchange(&code(124)),
            expect: Expect::Refused(405, "invalid_request"),
        },
        Override {
            name: "a lower-case `post` is another method (methods are case-sensitive)",
            method: Method::from_bytes(b"post").expect("method"),
            path: TOKEN,
            header: ("x-http-method-override", "POST"),
            body: json_exchange(&code(125)),
            expect: Expect::Refused(405, "invalid_request"),
        },
        Override {
            name: "POST /healthz with X-HTTP-Method-Override: GET",
            method: Method::POST,
            path: "/healthz",
            header: ("x-http-method-override", "GET"),
            body: String::new(),
            expect: Expect::Refused(405, "invalid_request"),
        },
    ];
    for case in cases {
        let name = case.name;
        let before = app.provider_calls().await;
        let response = app
            .http
            .request(case.method, app.url(case.path))
            .header("content-type", JSON)
            .header(case.header.0, case.header.1)
            .body(case.body)
            .send()
            .await
            .expect("proxy answers");
        check(&app, name, response, &case.expect, before).await;
        assert!(
            app.is_healthy().await,
            "{name}: the service stopped answering"
        );
    }
}
