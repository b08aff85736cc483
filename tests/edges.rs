//! Edge behaviours that belong to no single interface: the informational routes under
//! every method, and the paths under the protected path that name no service.

mod common;

use common::TestApp;
use reqwest::Method;
use twitcher::store::Service;

/// Every method a client could send, HEAD aside (it has no body to compare).
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// Status, Content-Type and body of one request.
async fn send(app: &TestApp, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let response = app
        .client
        .request(method, format!("{}{path}", app.base))
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, response.text().await.expect("body"))
}

/// The body of a recorded raw response (after the blank line ending its headers).
fn recorded_body(raw: &str) -> &str {
    raw.split_once("\r\n\r\n").expect("headers end").1
}

// ---------------------------------------------------------------------------------------
// /info and /versions: Pyramid views without request_method answer every method
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn info_and_versions_answer_every_method_like_get() {
    let app = TestApp::start().await;
    for path in ["/info", "/versions"] {
        let (status, content_type, get) = send(&app, "GET", path, "").await;
        assert_eq!(
            (status, content_type.as_str()),
            (200, "application/json"),
            "GET {path}"
        );
        let value: serde_json::Value = serde_json::from_str(&get).expect("JSON");
        assert!(value.is_object() || value.is_array(), "GET {path}: {get}");
        for method in METHODS {
            let answer = send(&app, method, path, "ignored=body").await;
            assert_eq!(
                answer,
                (200, "application/json".to_string(), get.clone()),
                "{method} {path}"
            );
        }
        let head = app
            .client
            .head(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert_eq!(head.headers()["content-length"], get.len().to_string());
        assert_eq!(head.text().await.unwrap(), "", "HEAD {path} has no body");
    }
    // The routes are exact: anything below them is still an unknown path.
    let (status, _, _) = send(&app, "POST", "/info/extra", "").await;
    assert_eq!(status, 404);
}

// ---------------------------------------------------------------------------------------
// The protected path without a service name: T05's "Service not found" (D-PROXY-NONAME)
// ---------------------------------------------------------------------------------------

const NO_SERVICE_PATHS: [&str; 4] = ["/ows", "/ows/", "/ows/proxy", "/ows/proxy/"];

/// T05 case 67: the report for an unknown service name, byte for byte.
const SERVICE_NOT_FOUND: &str =
    include_str!("../compat/golden/v056/transcripts/raw/67-ows-unknown-service.1.resp");

#[tokio::test]
async fn paths_naming_no_service_answer_service_not_found() {
    let app = TestApp::start().await;
    // A registered service must not be picked up by any of these paths.
    app.register(Service {
        public: true,
        ..Service::new("emu", "http://127.0.0.1:1/wps")
    })
    .await;
    let expected = recorded_body(SERVICE_NOT_FOUND);
    assert!(
        expected.contains(r#"exceptionCode="InvalidParameterValue" locator="service""#),
        "the recording is the Service not found report: {expected}"
    );
    let (_, _, first) = send(&app, "GET", "/ows", "").await;
    insta::assert_snapshot!("service_not_found", first);
    let xml_post = r#"<?xml version="1.0"?><GetCapabilities service="WPS"/>"#;
    for path in NO_SERVICE_PATHS {
        for query in ["", "?service=WPS&request=GetCapabilities"] {
            for (method, body) in [("GET", ""), ("POST", xml_post)] {
                let target = format!("{path}{query}");
                let (status, content_type, got) = send(&app, method, &target, body).await;
                assert_eq!(
                    (status, content_type.as_str(), got.as_str()),
                    (404, "text/xml; charset=UTF-8", expected),
                    "{method} {target}"
                );
            }
        }
    }
}

/// A named change to the default configuration.
type Tweak = (&'static str, fn(&mut twitcher::config::Config));

#[tokio::test]
async fn paths_naming_no_service_follow_the_protected_path_and_switches() {
    let configs: [Tweak; 3] = [
        ("protected path /secure", |c| {
            c.protected_path = "/secure".into()
        }),
        ("ows_proxy = false", |c| c.ows_proxy = false),
        ("ows_proxy_delegate = true", |c| c.ows_proxy_delegate = true),
    ];
    let expected = recorded_body(SERVICE_NOT_FOUND);
    for (what, tweak) in configs {
        let app = TestApp::start_with(tweak).await;
        let prefix = if what.starts_with("protected") {
            "/secure"
        } else {
            "/ows"
        };
        for suffix in ["", "/", "/proxy", "/proxy/"] {
            for method in ["GET", "POST"] {
                let path = format!("{prefix}{suffix}");
                let (status, _, got) = send(&app, method, &path, "").await;
                assert_eq!(
                    (status, got.as_str()),
                    (404, expected),
                    "{what}: {method} {path}"
                );
            }
        }
    }
}
