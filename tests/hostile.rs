//! Requests an attacker would send: each class of hole where the proxy's reading of a
//! request could differ from the backend's. Every assertion is on what the recording
//! backend received: a refused request must never reach it, an admitted one must reach
//! it exactly as the gate read it.

mod common;

use common::{Canned, StubBackend, TestApp, raw_request};
use twitcher::store::Service;

const EXECUTE_XML: &str = r#"<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1"><ows:Identifier>hello</ows:Identifier></wps:Execute>"#;
const CAPS_XML: &str =
    r#"<wps:GetCapabilities service="WPS" xmlns:wps="http://www.opengis.net/wps/1.0.0"/>"#;
const EXECUTE: &str = "service=WPS&request=Execute&version=1.0.0&identifier=hello";

/// twitcher with `emu` (protected, at `/wps`) and `pub` (public, at `/static`) on one
/// recording backend, and a valid token `good`.
async fn setup() -> (TestApp, StubBackend) {
    let app = TestApp::start().await;
    let backend = StubBackend::start().await;
    backend.route("/wps", Canned::ok("text/xml", "<ok/>"));
    backend.route("/static", Canned::ok("text/plain", "static"));
    app.register(Service::new("emu", backend.url("/wps"))).await;
    app.register(Service {
        public: true,
        service_type: "other".into(),
        ..Service::new("pub", backend.url("/static"))
    })
    .await;
    app.token("good", true).await;
    (app, backend)
}

fn status_line(raw: &str) -> &str {
    raw.lines().next().unwrap_or_default()
}

fn exception(body: &str) -> (&str, &str) {
    let locator = body
        .split("locator=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default();
    let text = body
        .split("<ExceptionText>")
        .nth(1)
        .and_then(|s| s.split("</ExceptionText>").next())
        .unwrap_or_default();
    (locator, text)
}

async fn post(app: &TestApp, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, String) {
    let mut request = app.client.post(format!("{}{path}", app.base)).body(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn paths_never_leave_the_service_path() {
    let (app, backend) = setup().await;
    // Sent as raw bytes: an HTTP library would normalise some of them before sending.
    let attempts = [
        "/ows/proxy/pub/..%2Fwps",
        "/ows/proxy/pub/..%2fwps",
        "/ows/proxy/pub/%2e%2e/wps",
        "/ows/proxy/pub/%2E./wps",
        "/ows/proxy/pub/%252e%252e/wps",
        "/ows/proxy/pub/%25252e%25252e/wps",
        "/ows/proxy/pub/..%5Cwps",
        "/ows/proxy/pub/..%255cwps",
        "/ows/proxy/pub/..;/wps",
        "/ows/proxy/pub/a/%2e%2e%2f%2e%2e%2fwps",
        "/ows/proxy/pub/../wps",
        "/ows/proxy/pub/./../wps",
        "/ows/proxy/pub/a\\..\\..\\wps",
        "/ows/proxy/pub/a/../../wps",
    ];
    for path in attempts {
        let raw = raw_request(
            &app.base,
            format!("GET {path}?{EXECUTE} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert!(status_line(&raw).contains(" 400 "), "{path}: {raw}");
        assert!(
            raw.contains("The request path is not valid."),
            "{path}: {raw}"
        );
    }
    assert!(backend.received().is_empty(), "{:?}", backend.received());
}

#[tokio::test]
async fn admitted_paths_reach_the_backend_below_the_service_path_byte_for_byte() {
    let (app, backend) = setup().await;
    backend.route("/static/a%20b/..x/%41", Canned::ok("text/plain", "x"));
    let response = app
        .get("/ows/proxy/pub/a%20b/..x/%41?service=WPS&request=GetCapabilities&x=%20")
        .await;
    let status = response.status();
    assert_eq!(
        status,
        200,
        "{} {:?}",
        response.text().await.unwrap(),
        backend.received()
    );
    // A trailing slash after the name is the service itself.
    let response = app
        .get("/ows/proxy/emu/?service=WPS&request=GetCapabilities")
        .await;
    assert_eq!(response.status(), 200);
    let targets: Vec<String> = backend.received().into_iter().map(|r| r.target).collect();
    assert_eq!(
        targets,
        [
            "/static/a%20b/..x/%41?service=WPS&request=GetCapabilities&x=%20",
            "/wps?service=WPS&request=GetCapabilities"
        ]
    );
}

#[tokio::test]
async fn ambiguous_key_value_requests_are_refused_naming_the_key() {
    let (app, backend) = setup().await;
    let attempts = [
        (
            "service=WPS&request=Execute&request=GetCapabilities&version=1.0.0",
            "request",
        ),
        (
            "service=WPS&request=GetCapabilities&REQUEST=Execute&version=1.0.0",
            "request",
        ),
        (
            "service=WPS&Request=GetCapabilities&request=Execute&version=1.0.0&token=good",
            "request",
        ),
        ("service=WPS&service=WMS&request=GetCapabilities", "service"),
        (
            "service=WPS&request=DescribeProcess&version=1.0.0&version=2.0.0&identifier=x",
            "version",
        ),
        (
            "service=WPS&request=DescribeProcess&version=1.0.0&identifier=a&IDENTIFIER=hello",
            "identifier",
        ),
        (
            "service=WPS&%72equest=Execute&request=GetCapabilities&version=1.0.0",
            "request",
        ),
    ];
    for (query, key) in attempts {
        let response = app.get(&format!("/ows/proxy/emu?{query}")).await;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_eq!(status, 400, "{query}");
        assert_eq!(
            exception(&body),
            (
                key,
                format!("Parameter &quot;{key}&quot; is given more than once").as_str()
            ),
            "{query}"
        );
        // The same in /ows/verify.
        let response = app.get(&format!("/ows/verify/emu?{query}")).await;
        assert_eq!(response.status(), 403, "verify {query}");
    }
    // A form body is read with the same rule.
    let (status, _) = post(
        &app,
        "/ows/proxy/emu",
        &[("content-type", "application/x-www-form-urlencoded")],
        b"service=WPS&request=Execute&request=GetCapabilities&version=1.0.0".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(backend.received().is_empty(), "{:?}", backend.received());
}

#[tokio::test]
async fn a_body_is_read_as_what_it_is() {
    let (app, backend) = setup().await;
    let utf16 = |little: bool| -> Vec<u8> {
        let bom: [u8; 2] = if little { [0xFF, 0xFE] } else { [0xFE, 0xFF] };
        bom.into_iter()
            .chain(EXECUTE_XML.encode_utf16().flat_map(move |u| {
                if little {
                    u.to_le_bytes()
                } else {
                    u.to_be_bytes()
                }
            }))
            .collect()
    };
    let form = "application/x-www-form-urlencoded";
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        (form, EXECUTE_XML.into()),
        (form, format!("\u{FEFF}{EXECUTE_XML}").into()),
        (form, format!(" \r\n\t{EXECUTE_XML}").into()),
        ("text/plain", EXECUTE_XML.into()),
        ("text/xml", utf16(true)),
        (form, utf16(false)),
        (
            "text/xml",
            format!("<!-- {CAPS_XML} -->{EXECUTE_XML}").into(),
        ),
        (
            "text/xml",
            format!("<?pi {CAPS_XML}?>{EXECUTE_XML}{CAPS_XML}").into(),
        ),
    ];
    for (ct, body) in bodies {
        let (status, text) = post(
            &app,
            "/ows/proxy/emu",
            &[("content-type", ct)],
            body.clone(),
        )
        .await;
        assert_eq!(
            status,
            401,
            "{ct} {:?}: {text}",
            String::from_utf8_lossy(&body)
        );
    }
    // The query of a POST must not contradict its body (some servers read the query).
    let (status, text) = post(
        &app,
        "/ows/proxy/emu?service=WPS&request=GetCapabilities",
        &[("content-type", "text/xml")],
        EXECUTE_XML.into(),
    )
    .await;
    assert_eq!((status, exception(&text).0), (400, "request"));
    assert!(backend.received().is_empty(), "{:?}", backend.received());
}

#[tokio::test]
async fn compressed_bodies_and_doctypes_are_refused() {
    let (app, backend) = setup().await;
    for coding in ["gzip", "deflate", "br", "identity, gzip", "GZIP"] {
        let (status, text) = post(
            &app,
            "/ows/proxy/emu",
            &[("content-type", "text/xml"), ("content-encoding", coding)],
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00".to_vec(),
        )
        .await;
        assert_eq!(status, 415, "{coding}: {text}");
    }
    for doctype in [
        format!("<!DOCTYPE x [<!ENTITY e \"{CAPS_XML}\">]>{EXECUTE_XML}"),
        format!("<!DOCTYPE x [<!-- > {CAPS_XML} -->]>{EXECUTE_XML}"),
        format!("<?xml version=\"1.0\"?>\n<!DOCTYPE wps:GetCapabilities>{CAPS_XML}"),
    ] {
        let (status, text) = post(
            &app,
            "/ows/proxy/emu",
            &[("content-type", "text/xml")],
            doctype.clone().into(),
        )
        .await;
        assert_eq!(
            (status, exception(&text).1),
            (400, "A DOCTYPE is not allowed in an OWS request"),
            "{doctype}"
        );
    }
    // An encoding declaration that contradicts the bytes.
    let (status, _) = post(
        &app,
        "/ows/proxy/emu",
        &[("content-type", "text/xml")],
        format!("<?xml version='1.0' encoding='UTF-16'?>{CAPS_XML}").into(),
    )
    .await;
    assert_eq!(status, 415);
    assert!(backend.received().is_empty(), "{:?}", backend.received());
}

#[tokio::test]
async fn huge_start_tags_cost_little_and_block_no_one() {
    let (app, backend) = setup().await;
    let mut tag = String::from(
        r#"<wps:GetCapabilities service="WPS" xmlns:wps="http://www.opengis.net/wps/1.0.0""#,
    );
    for i in 0..100_000 {
        tag.push_str(&format!(" a{i}='x'"));
    }
    tag.push_str("/>");
    let big = |tag: String| {
        let request = app
            .client
            .post(format!("{}/ows/proxy/emu", app.base))
            .header("content-type", "text/xml")
            .body(tag);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let health = app.get("/health");
    let (a, b, h) = tokio::join!(big(tag.clone()), big(tag), health);
    assert_eq!((a, b, h.status().as_u16()), (200, 200, 200));
    assert_eq!(backend.received().len(), 2);
    assert!(backend.received().iter().all(|r| r.body.len() > 1_000_000));
}

#[tokio::test]
async fn credentials_never_reach_the_backend() {
    let (app, backend) = setup().await;
    backend.route("/wps/x", Canned::ok("text/xml", "<ok/>"));
    let caps = "service=WPS&request=GetCapabilities";
    let sends = [
        (format!("/ows/proxy/emu/good?{caps}"), vec![]),
        (format!("/ows/proxy/emu/x/good?{caps}"), vec![]),
        (format!("/ows/proxy/emu/good?{EXECUTE}"), vec![]),
        (
            format!("/ows/proxy/emu?{caps}&%74oken=good&ACCESS_TOKEN=good"),
            vec![],
        ),
        (
            format!("/ows/proxy/emu?{EXECUTE}"),
            vec![
                ("AUTHORIZATION", "bearer\tgood"),
                ("Access-Token", "good"),
                ("X-Ssl-Client-Verify", "SUCCESS"),
                ("X-SSL-Client-S-DN", "CN=x"),
                ("Expect", "100-continue"),
            ],
        ),
        (
            format!("/ows/proxy/emu?{caps}"),
            vec![("Authorization", "Basic dTpw")],
        ),
    ];
    for (path, headers) in &sends {
        let mut request = app.client.get(format!("{}{path}", app.base));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let received = backend.received();
    assert_eq!(received.len(), sends.len());
    for r in &received {
        assert!(!r.target.contains("good"), "{}", r.target);
        assert!(r.target.starts_with("/wps"), "{}", r.target);
        for (k, v) in &r.headers {
            assert!(
                !matches!(k.as_str(), "authorization" | "access-token" | "expect")
                    && !k.starts_with("x-ssl-")
                    && !v.contains("good"),
                "{k}: {v}"
            );
        }
    }
    assert_eq!(received[1].target, format!("/wps/x?{caps}"));
}

#[tokio::test]
async fn credentials_are_forwarded_only_when_configured() {
    let app = TestApp::start_with(|c| c.forward_credentials = true).await;
    let backend = StubBackend::start().await;
    backend.route("/wps/good", Canned::ok("text/xml", "<ok/>"));
    app.register(Service::new("emu", backend.url("/wps"))).await;
    app.token("good", true).await;
    let response = app
        .client
        .get(format!("{}/ows/proxy/emu/good?{EXECUTE}", app.base))
        .header("Authorization", "Basic dTpw")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let r = &backend.received()[0];
    assert_eq!(r.target, format!("/wps/good?{EXECUTE}"));
    assert!(
        r.headers
            .contains(&("authorization".into(), "Basic dTpw".into()))
    );
}
