//! The layers of `src/middleware.rs` (issue 10, item 6): the body limit of the management
//! routes, the concurrency limit and the request timeout, each refusal in the endpoint's
//! language; the OWS routes keep streaming bodies past `twitcher.max_body_size`.

mod common;

use std::time::Duration;

use common::{Canned, StubBackend, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use twitcher::store::Service;

const LIMIT: usize = 1024;

async fn limited() -> TestApp {
    TestApp::start_with(|c| c.max_body_size = LIMIT).await
}

async fn answer(request: reqwest::RequestBuilder) -> (u16, String, String) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, response.text().await.expect("body"))
}

/// A body of `len` bytes sent in chunks, without `Content-Length`.
fn chunked(len: usize) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..len / 256 + 1).map(|_| Ok(vec![b' '; 256])).collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

#[tokio::test]
async fn management_bodies_over_the_limit_get_413_in_their_language() {
    let app = limited().await;
    let big = " ".repeat(LIMIT + 1);
    let rpc = |body: reqwest::Body| {
        app.client
            .post(format!("{}/RPC2", app.base))
            .header("Content-Type", "text/xml")
            .body(body)
    };
    for body in [reqwest::Body::from(big.clone()), chunked(4 * LIMIT)] {
        let (status, content_type, text) = answer(rpc(body)).await;
        assert_eq!(status, 413, "{text}");
        assert_eq!(content_type, "text/xml; charset=UTF-8");
        assert!(text.contains("<fault>"), "{text}");
    }

    let (status, content_type, text) = answer(
        app.client
            .post(format!("{}/oauth/token", app.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(chunked(4 * LIMIT)),
    )
    .await;
    assert_eq!((status, content_type.as_str()), (413, "application/json"));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["error"], "invalid_request", "{text}");

    let (status, content_type, text) = answer(
        app.client
            .post(format!("{}/services", app.base))
            .header("Content-Type", "application/json")
            .body(big),
    )
    .await;
    assert_eq!((status, content_type.as_str()), (413, "application/json"));
    assert!(text.contains("413 Payload Too Large"), "{text}");

    // Below the limit, nothing changes.
    let (status, _, text) = answer(rpc(reqwest::Body::from(
        "<?xml version='1.0'?><methodCall><methodName>list_services</methodName><params/></methodCall>",
    )))
    .await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test]
async fn ows_bodies_stream_past_the_limit_once_their_request_is_known() {
    let backend = StubBackend::start().await;
    backend.route("/wps", Canned::ok("text/xml", "<ok/>"));
    let app = limited().await;
    app.register(Service {
        public: true,
        ..Service::new("emu", backend.url("/wps"))
    })
    .await;
    let mut execute = String::from(
        r#"<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0">"#,
    );
    execute.push_str(&"<!-- padding -->".repeat(4 * LIMIT / 16));
    execute.push_str("</wps:Execute>");
    let (status, _, text) = answer(
        app.client
            .post(format!("{}/ows/proxy/emu", app.base))
            .header("Content-Type", "text/xml")
            .body(execute.clone()),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(backend.received()[0].body.len(), execute.len());
}

/// Opens a connection that sends the head of a POST and part of its body, then waits:
/// its handler stays busy reading.
async fn stalled_post(app: &TestApp, path: &str) -> tokio::net::TcpStream {
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\""
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

#[tokio::test]
async fn requests_past_the_concurrency_limit_are_shed_with_503() {
    let app = TestApp::start_with(|c| c.max_concurrent_requests = Some(1)).await;
    let held = stalled_post(&app, "/services").await;
    // Wait until the stalled request holds the only slot.
    let mut shed = None;
    for _ in 0..100 {
        let (status, content_type, text) =
            answer(app.client.get(format!("{}/services", app.base))).await;
        if status == 503 {
            shed = Some((content_type, text));
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (content_type, text) = shed.expect("a second request is shed");
    assert_eq!(content_type, "application/json");
    assert!(text.contains("The server is busy"), "{text}");
    let (status, content_type, text) = answer(app.client.get(format!(
        "{}/ows/proxy/emu?service=WPS&request=GetCapabilities",
        app.base
    )))
    .await;
    assert_eq!(
        (status, content_type.as_str()),
        (503, "text/xml; charset=UTF-8")
    );
    assert!(text.contains("ExceptionReport"), "{text}");

    drop(held);
    let mut status = 0;
    for _ in 0..100 {
        status = answer(app.client.get(format!("{}/services", app.base)))
            .await
            .0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status, 200, "the slot is free again");
}

#[tokio::test]
async fn a_management_request_that_takes_too_long_gets_503() {
    let app = TestApp::start_with(|c| c.request_timeout = Duration::from_millis(200)).await;
    let mut stalled = stalled_post(&app, "/services").await;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("}") {
            let n = stalled.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("an answer before the test's own timeout");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("application/json"), "{answer}");
}
