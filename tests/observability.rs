//! Observability (issue 10, item 8): the access log line per request, `/health` checking
//! the database, `/metrics` in the Prometheus text format.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::{Canned, StubBackend, TestApp, logs};
use twitcher::store::memory::MemoryStore;
use twitcher::store::{
    AccessToken, OAuthClient, OAuthToken, PoolStatus, Service, Store, StoreError, StoreResult,
    StoredToken,
};

const EXECUTE: &str = "service=WPS&request=Execute&version=1.0.0&identifier=hello";
const WPS_OK: &str =
    r#"<?xml version="1.0"?><wps:ExecuteResponse xmlns:wps="http://www.opengis.net/wps/1.0.0"/>"#;

/// A memory store whose database can be switched off, with a pool to report.
#[derive(Default)]
struct SwitchableStore {
    inner: MemoryStore,
    down: AtomicBool,
}

impl SwitchableStore {
    fn check(&self) -> StoreResult<()> {
        if self.down.load(Ordering::Relaxed) {
            Err(StoreError::Unavailable("switched off by the test".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Store for SwitchableStore {
    async fn ping(&self) -> StoreResult<()> {
        self.check()
    }
    fn pool_status(&self) -> Option<PoolStatus> {
        Some(PoolStatus {
            size: 3,
            idle: 2,
            max: 16,
        })
    }
    async fn service_by_name(&self, name: &str) -> StoreResult<Option<Service>> {
        self.check()?;
        self.inner.service_by_name(name).await
    }
    async fn service_by_url(&self, url: &str) -> StoreResult<Option<Service>> {
        self.inner.service_by_url(url).await
    }
    async fn list_services(&self) -> StoreResult<Vec<Service>> {
        self.inner.list_services().await
    }
    async fn save_service(&self, service: &Service) -> StoreResult<()> {
        self.inner.save_service(service).await
    }
    async fn delete_service(&self, name: &str) -> StoreResult<bool> {
        self.inner.delete_service(name).await
    }
    async fn clear_services(&self) -> StoreResult<()> {
        self.inner.clear_services().await
    }
    async fn save_access_token(&self, token: &AccessToken) -> StoreResult<()> {
        self.inner.save_access_token(token).await
    }
    async fn access_token(&self, token: &str) -> StoreResult<Option<AccessToken>> {
        self.inner.access_token(token).await
    }
    async fn delete_access_token(&self, token: &str) -> StoreResult<bool> {
        self.inner.delete_access_token(token).await
    }
    async fn clear_access_tokens(&self) -> StoreResult<()> {
        self.inner.clear_access_tokens().await
    }
    async fn save_client(&self, client: &OAuthClient) -> StoreResult<()> {
        self.inner.save_client(client).await
    }
    async fn client(&self, client_id: &str) -> StoreResult<Option<OAuthClient>> {
        self.inner.client(client_id).await
    }
    async fn save_oauth_token(&self, token: &OAuthToken) -> StoreResult<()> {
        self.inner.save_oauth_token(token).await
    }
    async fn oauth_token(&self, access_token: &str) -> StoreResult<Option<OAuthToken>> {
        self.inner.oauth_token(access_token).await
    }
    async fn delete_oauth_token(&self, access_token: &str) -> StoreResult<bool> {
        self.inner.delete_oauth_token(access_token).await
    }
    async fn find_token(&self, token: &str) -> StoreResult<Option<StoredToken>> {
        self.inner.find_token(token).await
    }
}

async fn backend() -> StubBackend {
    let backend = StubBackend::start().await;
    backend.route("/wps", Canned::ok("text/xml", WPS_OK));
    backend
}

async fn text(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// Waits until the log holds a line with `needle` (a line is written when the response
/// body ends, which may be just after the client has read it).
async fn line_with(logs: &logs::Logs, needle: &str) -> String {
    for _ in 0..200 {
        if let Some(line) = logs.lines_with(needle).pop() {
            return line;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no log line with {needle}");
}

#[tokio::test]
async fn every_request_gets_one_access_log_line_without_its_secrets() {
    let logs = logs::capture();
    let backend = backend().await;
    let app = TestApp::start().await;
    app.register(Service::new("logged", backend.url("/wps")))
        .await;
    let client = common::oauth_client(&app, None).await;
    let token = common::oauth_token(&app, &client, "compute").await;

    let url = format!("{}/ows/proxy/logged?{EXECUTE}", app.base);
    let (status, body) = text(
        app.client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let line = line_with(&logs, "service=\"logged\" operation=\"execute\" status=200").await;
    assert!(line.contains("twitcher::access"), "{line}");
    assert!(line.contains("INFO"), "{line}");
    assert!(line.contains("method=GET route=\"proxy\""), "{line}");
    assert!(line.contains(&format!("bytes={}", body.len())), "{line}");
    assert!(line.contains("duration_ms="), "{line}");
    assert!(line.contains("credential=\"oauth\""), "{line}");
    assert!(
        line.contains(&format!("client_id=\"{}\"", client.0)),
        "{line}"
    );

    // A refusal: the gate admitted nothing, so no service is named.
    let refused = format!("{url}&access_token=NotAToken00000000000000000000");
    assert_eq!(
        text(app.client.get(&refused).send().await.unwrap()).await.0,
        401
    );
    let line = line_with(
        &logs,
        "route=\"proxy\" service=\"-\" operation=\"-\" status=401",
    )
    .await;
    assert!(line.contains("credential=\"none\""), "{line}");

    // An XML-RPC token names no client.
    app.token("RpcToken000000000000000000000x", true).await;
    let rpc = format!("{url}&access_token=RpcToken000000000000000000000x");
    assert_eq!(
        text(app.client.get(&rpc).send().await.unwrap()).await.0,
        200
    );
    line_with(
        &logs,
        "service=\"logged\" operation=\"execute\" status=200 bytes=88 duration_ms=",
    )
    .await;
    let mut lines = Vec::new();
    for _ in 0..200 {
        lines = logs.lines_with("service=\"logged\"");
        if lines
            .iter()
            .any(|l| l.contains("credential=\"token\" client_id=\"-\""))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("credential=\"token\" client_id=\"-\"")),
        "{lines:#?}"
    );

    let text = logs.text();
    for secret in [
        &token,
        "NotAToken00000000000000000000",
        "RpcToken000000000000000000000x",
        &client.1,
    ] {
        assert!(!text.contains(secret), "{secret} was logged");
    }
    assert!(!text.contains("identifier=hello"), "a query was logged");
}

#[tokio::test]
async fn the_access_log_can_be_turned_off() {
    let logs = logs::capture();
    let backend = backend().await;
    let app = TestApp::start_with(|c| c.access_log = false).await;
    app.register(Service::new("quiet", backend.url("/wps")))
        .await;
    let url = format!(
        "{}/ows/proxy/quiet?service=WPS&request=GetCapabilities",
        app.base
    );
    assert_eq!(
        text(app.client.get(&url).send().await.unwrap()).await.0,
        200
    );
    // The same request on a logging app is logged: the silence above is the setting's.
    let loud = TestApp::start().await;
    loud.register(Service::new("loud", backend.url("/wps")))
        .await;
    let url = format!(
        "{}/ows/proxy/loud?service=WPS&request=GetCapabilities",
        loud.base
    );
    assert_eq!(
        text(loud.client.get(&url).send().await.unwrap()).await.0,
        200
    );
    line_with(&logs, "service=\"loud\"").await;
    assert!(logs.lines_with("service=\"quiet\"").is_empty());
}

#[tokio::test]
async fn health_checks_the_database() {
    let store = Arc::new(SwitchableStore::default());
    let app = TestApp::start_on(store.clone(), |_| {}).await;
    let (status, body) = text(app.get("/health").await).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status": "ok"}"#));
    store.down.store(true, Ordering::Relaxed);
    let response = app.get("/health").await;
    assert_eq!(response.headers()["content-type"], "application/json");
    let (status, body) = text(response).await;
    assert_eq!(
        (status, body.as_str()),
        (503, r#"{"status": "unavailable"}"#)
    );
    store.down.store(false, Ordering::Relaxed);
    assert_eq!(
        text(app.get("/health").await).await.0,
        200,
        "recovers with the database"
    );
}

/// The value of the sample `name{labels}` in a Prometheus text exposition.
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().expect("a number"))
    })
}

#[tokio::test]
async fn metrics_are_off_by_default() {
    let app = TestApp::start().await;
    let (status, body) = text(app.get("/metrics").await).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("ExceptionReport"), "an unknown path: {body}");
}

#[tokio::test]
async fn metrics_count_requests_latency_upstream_errors_and_the_pool() {
    let backend = backend().await;
    let store = Arc::new(SwitchableStore::default());
    let app = TestApp::start_on(store, |c| c.metrics = true).await;
    app.register(Service::new("emu", backend.url("/wps"))).await;
    app.register(Service::new("down", "http://127.0.0.1:9/wps"))
        .await;
    app.token("MetricsToken0000000000000000001", true).await;
    let authorized = format!("{EXECUTE}&access_token=MetricsToken0000000000000000001");
    let status = |path: String| {
        let response = app.get(&path);
        async move { text(response.await).await.0 }
    };
    for _ in 0..3 {
        assert_eq!(status(format!("/ows/proxy/emu?{authorized}")).await, 200);
    }
    assert_eq!(status(format!("/ows/proxy/emu?{EXECUTE}")).await, 401);
    assert_eq!(status(format!("/ows/proxy/down?{authorized}")).await, 502);
    assert_eq!(text(app.get("/services").await).await.0, 200);

    let response = app.get("/metrics").await;
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let (status, metrics) = text(response).await;
    assert_eq!(status, 200);
    let value =
        |series: &str| sample(&metrics, series).unwrap_or_else(|| panic!("{series} in\n{metrics}"));
    assert_eq!(
        value(
            r#"twitcher_requests_total{route="proxy",service="emu",operation="execute",status="200"}"#
        ),
        3.0
    );
    assert_eq!(
        value(r#"twitcher_requests_total{route="proxy",service="",operation="",status="401"}"#),
        1.0
    );
    assert_eq!(
        value(
            r#"twitcher_requests_total{route="proxy",service="down",operation="execute",status="502"}"#
        ),
        1.0
    );
    assert_eq!(
        value(r#"twitcher_requests_total{route="services",service="",operation="",status="200"}"#),
        1.0
    );
    assert_eq!(
        value(r#"twitcher_upstream_errors_total{service="down",kind="unreachable"}"#),
        1.0
    );
    assert_eq!(
        value(r#"twitcher_request_duration_seconds_count{route="proxy"}"#),
        5.0
    );
    assert_eq!(
        value(r#"twitcher_request_duration_seconds_bucket{route="proxy",le="+Inf"}"#),
        5.0
    );
    let buckets: Vec<f64> = metrics
        .lines()
        .filter(|l| l.starts_with(r#"twitcher_request_duration_seconds_bucket{route="proxy","#))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
        .collect();
    assert!(
        buckets.windows(2).all(|w| w[0] <= w[1]),
        "cumulative: {buckets:?}"
    );
    assert_eq!(
        value(r#"twitcher_store_pool_connections{state="idle"}"#),
        2.0
    );
    assert_eq!(
        value(r#"twitcher_store_pool_connections{state="max"}"#),
        16.0
    );
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        assert!(!line.contains("MetricsToken"), "{line}");
    }
}

#[tokio::test]
async fn metrics_are_restricted_like_registry_reads() {
    let app = TestApp::start_with(|c| {
        c.metrics = true;
        c.rest_read_auth = true;
        c.username = Some("demo".into());
        c.password = Some("demo".into());
    })
    .await;
    assert_eq!(text(app.get("/metrics").await).await.0, 401);
    let with_auth = app
        .client
        .get(format!("{}/metrics", app.base))
        .basic_auth("demo", Some("demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(with_auth.status(), 200);
}
