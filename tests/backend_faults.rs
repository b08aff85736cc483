//! Backends that fail, against the real binary: one that refuses connections, resets in
//! the middle of a body, stalls, answers something that is not HTTP, or sends 2 GiB.
//! Each is answered the way `src/error.rs` says (or, once the response has started, by
//! aborting it so that the client cannot take a cut body for a whole one), and the same
//! server then serves a normal request.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::response::IntoResponse;
use common::process::Process;
use common::{Canned, StubBackend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::timeout;
use twitcher::error::OwsError;

/// Longest any step may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(30);
/// The read timeout the servers under test run with.
const READ_TIMEOUT: &str = "twitcher.ows_proxy_read_timeout = 1";

/// A backend that reads each request's head, then does what `behave` does with the
/// socket. Returns its base URL.
async fn backend<F, Fut>(behave: F) -> String
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let behave = Arc::new(behave);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let behave = behave.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                behave(socket).await;
            });
        }
    });
    base
}

/// Drops the socket with a TCP reset instead of a close.
fn reset(socket: TcpStream) {
    socket.set_zero_linger().expect("SO_LINGER");
    drop(socket);
}

/// A server with a working service `good` beside the faulty ones.
async fn server(app: &str) -> (Process, StubBackend) {
    let server = Process::start(&format!("{READ_TIMEOUT}\n{app}"), "");
    let good = StubBackend::start().await;
    good.route("/wps", Canned::ok("application/json", r#"{"fine": true}"#));
    server.register("good", &good.url("/wps"), "wps").await;
    (server, good)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A normal request through the same server still succeeds.
async fn still_serving(server: &Process) {
    let response = client()
        .get(format!(
            "{}/ows/proxy/good?service=WPS&request=Execute&version=1.0.0&identifier=x",
            server.base
        ))
        .send()
        .await
        .expect("request after the fault");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"fine": true}"#);
}

/// Status, Content-Type and body of a request that must be answered with a report.
async fn answer(server: &Process, service: &str) -> (u16, String, String) {
    let response = timeout(
        PATIENCE,
        client()
            .get(format!(
                "{}/ows/proxy/{service}?service=WPS&request=GetCapabilities",
                server.base
            ))
            .send(),
    )
    .await
    .expect("no answer")
    .expect("request");
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    (status, content_type, response.text().await.unwrap())
}

/// What `src/error.rs` answers for `error`: status, Content-Type and the report's bytes.
async fn report(error: OwsError) -> (u16, String, String) {
    let response = error.into_response();
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// Reads a streamed body to its end; Err when the stream broke off (and how much came).
async fn read_body(response: reqwest::Response) -> Result<usize, usize> {
    let mut response = response;
    let mut total = 0;
    timeout(PATIENCE, async {
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => total += chunk.len(),
                Ok(None) => return Ok(total),
                Err(_) => return Err(total),
            }
        }
    })
    .await
    .expect("the body neither ended nor broke off")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_refuses_connections_is_502() {
    let (server, _good) = server("").await;
    // A port that was free a moment ago: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    server
        .register("down", &format!("http://{closed}/wps"), "wps")
        .await;
    let got = answer(&server, "down").await;
    assert_eq!(got, report(OwsError::BackendUnreachable).await);
    assert_eq!(got.0, 502);
    assert!(got.2.contains(r#"locator="NotAcceptable""#), "{}", got.2);
    assert!(
        got.2
            .contains("Request failed: the service is not reachable.")
    );
    still_serving(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_answers_garbage_or_nothing_is_502() {
    let (server, _good) = server("").await;
    let not_http = backend(|mut socket| async move {
        let _ = socket.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
    })
    .await;
    let bad_header = backend(|mut socket| async move {
        let _ = socket
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\nabc")
            .await;
    })
    .await;
    let silent_close = backend(|socket| async move { drop(socket) }).await;
    let resets = backend(|socket| async move { reset(socket) }).await;
    for (name, base) in [
        ("not_http", not_http),
        ("bad_header", bad_header),
        ("silent_close", silent_close),
        ("resets", resets),
    ] {
        server.register(name, &format!("{base}/wps"), "wps").await;
        assert_eq!(
            answer(&server, name).await,
            report(OwsError::BackendUnreachable).await,
            "{name}"
        );
        still_serving(&server).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_stalls_before_answering_is_504_after_the_read_timeout() {
    let (server, _good) = server("").await;
    let stalls = backend(|socket| async move {
        // Holds the connection open without a byte until the test ends.
        std::future::pending::<()>().await;
        drop(socket);
    })
    .await;
    server
        .register("stalls", &format!("{stalls}/wps"), "wps")
        .await;
    let got = answer(&server, "stalls").await;
    assert_eq!(got, report(OwsError::BackendTimeout).await);
    assert_eq!(got.0, 504);
    assert!(
        got.2
            .contains("Request failed: the service did not answer in time.")
    );
    still_serving(&server).await;
}

/// A backend that sends a head and the first bytes of a body that twitcher must read
/// before it can answer (an error page it looks into, a document's prolog), then fails
/// as `stall` says: nothing has gone to the client yet, so the fault gets its report.
async fn early_cut_backend(head: &'static str, first: &'static [u8], stall: bool) -> String {
    backend(move |mut socket| async move {
        let _ = socket.write_all(head.as_bytes()).await;
        let _ = socket.write_all(first).await;
        if stall {
            std::future::pending::<()>().await;
        }
        reset(socket);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_fails_before_twitcher_could_answer_gets_its_report() {
    let (server, _good) = server("").await;
    const ERROR_HEAD: &str = "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n";
    const XML_HEAD: &str =
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 100000\r\n\r\n";
    const PROLOG: &[u8] = b"<?xml version=\"1.0\"?>\n<!-- the root element never comes";
    for (name, head, first, stall, expected) in [
        (
            "error_reset",
            ERROR_HEAD,
            &b"<html>"[..],
            false,
            OwsError::BackendUnreachable,
        ),
        (
            "error_stall",
            ERROR_HEAD,
            &b"<html>"[..],
            true,
            OwsError::BackendTimeout,
        ),
        (
            "prolog_reset",
            XML_HEAD,
            PROLOG,
            false,
            OwsError::BackendUnreachable,
        ),
        (
            "prolog_stall",
            XML_HEAD,
            PROLOG,
            true,
            OwsError::BackendTimeout,
        ),
    ] {
        let base = early_cut_backend(head, first, stall).await;
        server.register(name, &format!("{base}/wps"), "wps").await;
        assert_eq!(
            answer(&server, name).await,
            report(expected).await,
            "{name}"
        );
        still_serving(&server).await;
    }
}

/// The first part of a body whose head promises `length` bytes, then `end` (reset or
/// stall) once the test has seen the response start (`go` turns true).
async fn cut_backend(
    content_type: &'static str,
    first: Vec<u8>,
    length: usize,
    stall: bool,
) -> (String, watch::Sender<bool>) {
    let (go, going) = watch::channel(false);
    let first = Arc::new(first);
    let base = backend(move |mut socket| {
        let first = first.clone();
        let mut going = going.clone();
        async move {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(&first).await;
            let _ = going.wait_for(|go| *go).await;
            if stall {
                std::future::pending::<()>().await;
            }
            reset(socket);
        }
    })
    .await;
    (base, go)
}

/// GETs `path`, checks the response started with 200, lets the backend fail, and returns
/// how the body ended.
async fn cut_response(
    server: &Process,
    path: &str,
    go: &watch::Sender<bool>,
) -> Result<usize, usize> {
    let response = timeout(
        PATIENCE,
        client().get(format!("{}{path}", server.base)).send(),
    )
    .await
    .expect("no response")
    .expect("request");
    assert_eq!(response.status(), 200);
    go.send_replace(true);
    read_body(response).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_reset_mid_body_aborts_the_response() {
    let (server, _good) = server("").await;
    // WPS output that passes unchanged (its Content-Length too), and a WMS map.
    for (name, kind, path) in [
        (
            "wps_png",
            "wps",
            "?service=WPS&request=Execute&version=1.0.0&identifier=x",
        ),
        (
            "wms_png",
            "wms",
            "?service=WMS&request=GetMap&version=1.3.0",
        ),
    ] {
        let (base, go) = cut_backend("image/png", vec![7u8; 64 * 1024], 1024 * 1024, false).await;
        server.register(name, &format!("{base}/svc"), kind).await;
        let ended = cut_response(&server, &format!("/ows/proxy/{name}{path}"), &go).await;
        assert!(
            matches!(ended, Err(n) if n < 1024 * 1024),
            "{name}: a cut body must not end like a whole one: {ended:?}"
        );
        still_serving(&server).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_stalls_mid_body_is_cut_after_the_read_timeout() {
    let (server, _good) = server("").await;
    let (base, go) = cut_backend("image/png", vec![7u8; 4096], 1024 * 1024, true).await;
    server
        .register("stalls", &format!("{base}/wps"), "wps")
        .await;
    let ended = cut_response(
        &server,
        "/ows/proxy/stalls?service=WPS&request=Execute&version=1.0.0&identifier=x",
        &go,
    )
    .await;
    assert!(matches!(ended, Err(n) if n < 1024 * 1024), "{ended:?}");
    still_serving(&server).await;
}

/// A WPS capabilities document naming `backend` in its operation URLs, padded to a size
/// that streams in several pieces.
fn capabilities(backend: &str) -> Vec<u8> {
    let mut doc = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<wps:Capabilities service="WPS" version="1.0.0" xml:lang="en-US" xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1">
<ows:OperationsMetadata><ows:Operation name="GetCapabilities"><ows:DCP><ows:HTTP><ows:Get xlink:href="{backend}/wps"/></ows:HTTP></ows:DCP></ows:Operation></ows:OperationsMetadata>
<wps:ProcessOfferings>
"#
    );
    for i in 0..2000 {
        doc.push_str(&format!(
            "<wps:Process><ows:Identifier>p{i}</ows:Identifier><ows:Title>Process {i}</ows:Title></wps:Process>\n"
        ));
    }
    doc.push_str("</wps:ProcessOfferings>\n</wps:Capabilities>\n");
    doc.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_reset_mid_body_are_aborted_and_never_cached() {
    let (server, _good) = server("twitcher.ows_proxy_capabilities_cache = 60").await;
    // The first request gets half a document and a reset, the later ones all of it.
    let requests = Arc::new(AtomicUsize::new(0));
    let (go, going) = watch::channel(false);
    let counted = requests.clone();
    let base = Arc::new(std::sync::OnceLock::<String>::new());
    let base_in = base.clone();
    let url = backend(move |mut socket| {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        let mut going = going.clone();
        let doc = capabilities(base_in.get().expect("base"));
        async move {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
                doc.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            if n > 0 {
                let _ = socket.write_all(&doc).await;
                return;
            }
            let _ = socket.write_all(&doc[..doc.len() / 2]).await;
            let _ = going.wait_for(|go| *go).await;
            reset(socket);
        }
    })
    .await;
    base.set(url.clone()).unwrap();
    server.register("emu", &format!("{url}/wps"), "wps").await;
    let path = "/ows/proxy/emu?service=WPS&request=GetCapabilities";

    let ended = cut_response(&server, path, &go).await;
    assert!(ended.is_err(), "{ended:?}");
    still_serving(&server).await;

    // The cut answer was not kept: the next request goes to the backend and gets it all,
    // rewritten; that one is kept.
    for expected_requests in [2, 2] {
        let response = client()
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        assert!(body.ends_with("</wps:Capabilities>\n"), "whole document");
        assert!(
            body.contains(&format!(r#"xlink:href="{}/ows/proxy/emu""#, server.base)),
            "rewritten"
        );
        assert!(!body.contains(&url), "no backend URL left");
        assert_eq!(requests.load(Ordering::SeqCst), expected_requests);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_gib_body_streams_through_in_bounded_memory() {
    const SIZE: u64 = 2 * 1024 * 1024 * 1024;
    const LIMIT_KIB: u64 = 64 * 1024;
    let (server, _good) = server("").await;
    let huge = backend(|mut socket| async move {
        let head =
            format!("HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {SIZE}\r\n\r\n");
        if socket.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        // Made as it is sent: the test never holds more than one block.
        let block = vec![0x5a_u8; 256 * 1024];
        for _ in 0..SIZE / block.len() as u64 {
            if socket.write_all(&block).await.is_err() {
                return;
            }
        }
    })
    .await;
    server.register("huge", &format!("{huge}/wps"), "wps").await;

    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    stream
        .write_all(
            b"GET /ows/proxy/huge?service=WPS&request=Execute&version=1.0.0&identifier=x HTTP/1.1\r\nHost: twitcher\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut head = Vec::new();
    let mut body: u64 = 0;
    let read = timeout(Duration::from_secs(600), async {
        loop {
            let n = stream.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            if body == 0 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
                head.extend_from_slice(&buf[..n]);
                if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                    body = (head.len() - end - 4) as u64;
                }
            } else {
                body += n as u64;
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "2 GiB did not come through in time ({body} bytes)"
    );
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-length: {SIZE}")),
        "{head}"
    );
    assert_eq!(body, SIZE, "the whole body");
    let peak_kib = server.peak_rss_kib();
    assert!(
        peak_kib < LIMIT_KIB,
        "the proxy grew to {peak_kib} KiB streaming 2 GiB"
    );
    still_serving(&server).await;
}
