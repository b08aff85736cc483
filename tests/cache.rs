//! The registry and tokens held in memory (`twitcher.store_cache_seconds`): every change
//! made through the server takes effect on the very next request.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Canned, StubBackend, TestApp, rpc};
use twitcher::store::cached::CachedStore;
use twitcher::store::sqlite::SqliteStore;
use twitcher::store::{Service, Store};

const EXECUTE: &str = "service=WPS&request=Execute&version=1.0.0&identifier=hello";

/// twitcher on SQLite behind a cache that would remember for an hour.
async fn setup(dir: &tempfile::TempDir) -> (TestApp, StubBackend) {
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("t.sqlite")).unwrap());
    let store = Arc::new(CachedStore::new(sqlite, Duration::from_secs(3600)));
    let app = TestApp::start_on(store, |_| {}).await;
    let backend = StubBackend::start().await;
    backend.route("/a", Canned::ok("text/xml", "<a/>"));
    backend.route("/b", Canned::ok("text/xml", "<b/>"));
    (app, backend)
}

/// A new XML-RPC token.
async fn generate_token(app: &TestApp) -> String {
    let answer = rpc(app, "generate_token", &[]).await;
    answer
        .split("<string>")
        .find_map(|s| s.split("</string>").next().filter(|t| t.len() == 32))
        .expect("token")
        .to_string()
}

#[tokio::test]
async fn revocation_takes_effect_on_the_next_request() {
    let dir = tempfile::TempDir::new().unwrap();
    let (app, backend) = setup(&dir).await;
    app.register(Service::new("emu", backend.url("/a"))).await;
    let token = generate_token(&app).await;
    let execute = format!("/ows/proxy/emu?{EXECUTE}&access_token={token}");
    assert_eq!(app.get(&execute).await.status(), 200);
    assert!(
        rpc(&app, "revoke_token", &[&token])
            .await
            .contains("<boolean>1</boolean>")
    );
    assert_eq!(app.get(&execute).await.status(), 401);

    let token = generate_token(&app).await;
    let execute = format!("/ows/proxy/emu?{EXECUTE}&access_token={token}");
    assert_eq!(app.get(&execute).await.status(), 200);
    rpc(&app, "revoke_all_tokens", &[]).await;
    assert_eq!(app.get(&execute).await.status(), 401);
}

#[tokio::test]
async fn re_registration_and_unregistration_take_effect_on_the_next_request() {
    let dir = tempfile::TempDir::new().unwrap();
    let (app, backend) = setup(&dir).await;
    let caps = "/ows/proxy/svc?service=WPS&request=GetCapabilities";
    assert_eq!(app.get(caps).await.status(), 404);
    rpc(&app, "register_service", &["svc", &backend.url("/a")]).await;
    assert_eq!(app.get(caps).await.text().await.unwrap(), "<a/>");
    // Registering the name again moves it.
    rpc(&app, "register_service", &["svc", &backend.url("/b")]).await;
    assert_eq!(app.get(caps).await.text().await.unwrap(), "<b/>");
    rpc(&app, "unregister_service", &["svc"]).await;
    assert_eq!(app.get(caps).await.status(), 404);
    rpc(&app, "register_service", &["svc", &backend.url("/a")]).await;
    assert_eq!(app.get(caps).await.status(), 200);
    rpc(&app, "clear_services", &[]).await;
    assert_eq!(app.get(caps).await.status(), 404);
}
