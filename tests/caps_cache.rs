//! The opt-in GetCapabilities cache: what is kept, for whom, for how long, and that a kept
//! answer is byte-identical to a fetched one.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use common::{Canned, StubBackend, TestApp};
use twitcher::store::Service;

const CAPS_QUERY: &str = "service=WPS&request=GetCapabilities";
const CAPS: &str = include_str!("../fixtures/capabilities/emu-getcaps.xml");

async fn setup(cache: bool, headers: &[(&str, &str)]) -> (TestApp, StubBackend) {
    let app = TestApp::start_with(|c| {
        c.capabilities_cache = cache.then(|| Duration::from_secs(3600));
    })
    .await;
    let backend = StubBackend::start().await;
    let mut canned = Canned::ok(
        "text/xml",
        CAPS.replace("http://127.0.0.1:15056/wps", &backend.url("/wps")),
    );
    canned
        .headers
        .extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    backend.route("/wps", canned);
    app.register(Service::new("emu", backend.url("/wps"))).await;
    app.token("good", true).await;
    (app, backend)
}

async fn body(app: &TestApp, path: &str) -> (u16, String) {
    let response = app.get(path).await;
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn anonymous_capabilities_are_fetched_once_and_served_byte_identical() {
    let (app, backend) = setup(true, &[]).await;
    let path = format!("/ows/proxy/emu?{CAPS_QUERY}");
    let first = body(&app, &path).await;
    let second = body(&app, &path).await;
    assert_eq!(first.0, 200);
    assert!(first.1.contains("/ows/proxy/emu"));
    assert_eq!(first, second);
    assert_eq!(backend.received().len(), 1);
    // Another query is another answer.
    body(&app, &format!("{path}&version=1.0.0")).await;
    assert_eq!(backend.received().len(), 2);
}

#[tokio::test]
async fn nothing_is_kept_when_off_with_credentials_or_when_the_backend_says_no() {
    let path = format!("/ows/proxy/emu?{CAPS_QUERY}");
    let (app, backend) = setup(false, &[]).await;
    body(&app, &path).await;
    body(&app, &path).await;
    assert_eq!(backend.received().len(), 2, "off by default");

    let (app, backend) = setup(true, &[]).await;
    let with_token = format!("{path}&access_token=good");
    body(&app, &with_token).await;
    body(&app, &with_token).await;
    assert_eq!(backend.received().len(), 2, "a request with credentials");

    for cache_control in ["no-store", "private, max-age=60", "max-age=0", "no-cache"] {
        let (app, backend) = setup(true, &[("Cache-Control", cache_control)]).await;
        body(&app, &path).await;
        body(&app, &path).await;
        assert_eq!(backend.received().len(), 2, "{cache_control}");
    }
}

#[tokio::test]
async fn a_public_service_shares_its_answer_with_token_holders() {
    let (app, backend) = setup(true, &[]).await;
    app.register(Service {
        public: true,
        ..Service::new("emu", backend.url("/wps"))
    })
    .await;
    let path = format!("/ows/proxy/emu?{CAPS_QUERY}&access_token=good");
    body(&app, &path).await;
    body(&app, &path).await;
    assert_eq!(backend.received().len(), 1);
}

#[tokio::test]
async fn a_changed_registration_is_never_served_an_old_answer() {
    let (app, backend) = setup(true, &[]).await;
    let path = format!("/ows/proxy/emu?{CAPS_QUERY}");
    body(&app, &path).await;
    backend.route("/other", Canned::ok("text/xml", "<Other/>"));
    app.register(Service::new("emu", backend.url("/other")))
        .await;
    assert_eq!(body(&app, &path).await, (200, "<Other/>".to_string()));
}

#[tokio::test]
async fn old_answers_are_revalidated_with_their_etag() {
    let app = TestApp::start_with(|c| c.capabilities_cache = Some(Duration::from_secs(3600))).await;
    let hits = Arc::new(AtomicUsize::new(0));
    let not_modified = Arc::new(AtomicUsize::new(0));
    let (h, n) = (hits.clone(), not_modified.clone());
    // A backend whose answers must be revalidated each time (max-age=0) but carry an ETag.
    let router = axum::Router::new().fallback(move |headers: HeaderMap| {
        let (h, n) = (h.clone(), n.clone());
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            let cache = [
                (header::CACHE_CONTROL, "max-age=0"),
                (header::ETAG, "\"v1\""),
            ];
            if headers
                .get(header::IF_NONE_MATCH)
                .is_some_and(|v| v == "\"v1\"")
            {
                n.fetch_add(1, Ordering::SeqCst);
                return (StatusCode::NOT_MODIFIED, cache).into_response();
            }
            (
                cache,
                [(header::CONTENT_TYPE, "text/xml")],
                "<Capabilities/>",
            )
                .into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    app.register(Service::new("emu", format!("http://{addr}/wps")))
        .await;
    let path = format!("/ows/proxy/emu?{CAPS_QUERY}");
    let first = body(&app, &path).await;
    let second = body(&app, &path).await;
    let third = body(&app, &path).await;
    assert_eq!(first, (200, "<Capabilities/>".to_string()));
    assert_eq!((&first, &first), (&second, &third));
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert_eq!(not_modified.load(Ordering::SeqCst), 2);
}
