//! Two twitcher processes on one PostgreSQL database, as behind a load balancer: what is
//! written through one takes effect on the other on the very next request, although each
//! keeps the registry and tokens in memory for an hour here (`store_cache_seconds = 3600`):
//! only the cross-instance invalidation (LISTEN/NOTIFY) can explain it. Skipped with a line
//! when `TWITCHER_TEST_POSTGRES` is unset.

mod common;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::postgres::TestDatabase;
use common::{Canned, StubBackend, TestApp, oauth_client, oauth_token, rpc};
use twitcher::store::memory::MemoryStore;

/// A `twitcher serve` child process, killed on drop.
struct Instance {
    child: Child,
    /// Reaches it over HTTP like a test app (its `store` is a stand-in: the data is in
    /// PostgreSQL).
    app: TestApp,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `twitcher serve` on `database` on a free port and waits for it to serve.
fn start(dir: &tempfile::TempDir, name: &str, database: &str) -> Instance {
    let config = dir.path().join(format!("{name}.ini"));
    std::fs::write(
        &config,
        format!(
            "[app:main]\n\
             sqlalchemy.url = {database}\n\
             twitcher.store_cache_seconds = 3600\n\n\
             [server:main]\nhost = 127.0.0.1\nport = 0\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_twitcher"))
        .arg("serve")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start twitcher");
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let Some(Ok(line)) = lines.next() else {
            let status = child.wait().expect("wait");
            panic!("twitcher {name} stopped ({status}) before serving");
        };
        if let Some((_, addr)) = line.split_once("serving on ") {
            break addr.trim().to_string();
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    Instance {
        child,
        app: TestApp {
            base,
            store: Arc::new(MemoryStore::new()),
            client,
        },
    }
}

/// The value of an XML-RPC struct member in a response body.
fn member(body: &str, name: &str) -> String {
    let start = body
        .find(&format!("<name>{name}</name>"))
        .unwrap_or_else(|| panic!("no {name} in {body}"));
    let rest = &body[start..];
    let value = rest.split("<string>").nth(1).expect("string value");
    value.split("</string>").next().unwrap().to_string()
}

async fn status(instance: &Instance, path_and_query: &str) -> u16 {
    instance
        .app
        .client
        .get(format!("{}{path_and_query}", instance.app.base))
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

const CAPABILITIES: &str = "/ows/proxy/emu?service=WPS&request=GetCapabilities";

fn execute(token: &str) -> String {
    format!(
        "/ows/proxy/emu?service=WPS&request=Execute&version=1.0.0&identifier=hello&access_token={token}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_instance_writes_the_other_obeys_at_once() {
    let Some(db) = TestDatabase::create("what_one_instance_writes_the_other_obeys_at_once") else {
        return;
    };
    let backend = StubBackend::start().await;
    backend.route(
        "/wps",
        Canned::ok(
            "text/xml",
            "<?xml version=\"1.0\"?><wps:Capabilities xmlns:wps=\"http://www.opengis.net/wps/1.0.0\"/>",
        ),
    );
    let dir = tempfile::TempDir::new().unwrap();
    let one = start(&dir, "one", &db.url);
    let two = start(&dir, "two", &db.url);

    // Two knows the (empty) registry by heart, then one registers a service.
    assert_eq!(status(&two, CAPABILITIES).await, 404);
    rpc(&one.app, "register_service", &["emu", &backend.url("/wps")]).await;
    assert_eq!(status(&two, CAPABILITIES).await, 200, "registered on one");

    // A token generated on one opens Execute on two; two then remembers it …
    let token = member(&rpc(&one.app, "generate_token", &[]).await, "access_token");
    assert_eq!(
        status(&two, &execute(&token)).await,
        200,
        "generated on one"
    );
    assert_eq!(status(&two, &execute(&token)).await, 200);
    // … until one revokes it.
    rpc(&one.app, "revoke_token", &[&token]).await;
    assert_eq!(status(&two, &execute(&token)).await, 401, "revoked on one");

    // An OAuth client added through one gets tokens from two, which open Execute on one.
    let client = oauth_client(&one.app, None).await;
    let bearer = oauth_token(&two.app, &client, "compute").await;
    assert_eq!(
        status(&one, &execute(&bearer)).await,
        200,
        "token issued by two"
    );

    // Changes through two reach one the same way.
    assert_eq!(status(&one, CAPABILITIES).await, 200);
    rpc(&two.app, "unregister_service", &["emu"]).await;
    assert_eq!(status(&one, CAPABILITIES).await, 404, "unregistered on two");

    assert!(
        backend.received().len() >= 5,
        "the answers came from the backend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_while_the_listener_is_down_is_not_served_from_memory() {
    let Some(db) = TestDatabase::create("a_change_made_while_the_listener_is_down") else {
        return;
    };
    let backend = StubBackend::start().await;
    backend.route(
        "/wps",
        Canned::ok("text/xml", "<?xml version=\"1.0\"?><r/>"),
    );
    let dir = tempfile::TempDir::new().unwrap();
    let one = start(&dir, "one", &db.url);
    rpc(&one.app, "register_service", &["emu", &backend.url("/wps")]).await;
    let token = member(&rpc(&one.app, "generate_token", &[]).await, "access_token");
    assert_eq!(status(&one, &execute(&token)).await, 200);
    // Every connection ends (what a database restart does), and the token is deleted
    // behind the instance's back: no notification reaches it.
    db.terminate_connections();
    db.execute(&format!(
        "DELETE FROM access_tokens WHERE token = '{token}'"
    ));
    assert_eq!(status(&one, &execute(&token)).await, 401);
}

/// Sends a signal to a child process (`kill -STOP` / `-CONT`).
fn signal(instance: &Instance, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &instance.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_instance_does_not_hold_the_others_writes_up() {
    let Some(db) = TestDatabase::create("a_hung_instance_does_not_hold_the_others_writes_up")
    else {
        return;
    };
    let backend = StubBackend::start().await;
    backend.route(
        "/wps",
        Canned::ok("text/xml", "<?xml version=\"1.0\"?><r/>"),
    );
    let dir = tempfile::TempDir::new().unwrap();
    let one = start(&dir, "one", &db.url);
    let two = start(&dir, "two", &db.url);
    rpc(&one.app, "register_service", &["emu", &backend.url("/wps")]).await;
    let token = member(&rpc(&one.app, "generate_token", &[]).await, "access_token");
    assert_eq!(status(&two, &execute(&token)).await, 200);
    // Two stops answering anything (its listener included); one's writes still complete,
    // after waiting out the confirmation two cannot give (the client allows 10 s).
    signal(&two, "STOP");
    rpc(&one.app, "revoke_token", &[&token]).await;
    let other = member(&rpc(&one.app, "generate_token", &[]).await, "access_token");
    assert_eq!(status(&one, &execute(&token)).await, 401);
    signal(&two, "CONT");
    // Two had the revoked token in memory: it hears the waiting notification as it wakes
    // (a request it takes first may still find the old memory, hence the polling).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while status(&two, &execute(&token)).await != 401 {
        assert!(
            std::time::Instant::now() < deadline,
            "two never heard the revocation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status(&two, &execute(&other)).await, 200);
}
