//! Storage faults (issue 10, item 4; `docs/RELIABILITY.md`, "Storage faults"): a database
//! locked by another process and a read-only database answer writes "temporarily
//! unavailable" in each endpoint's language while reads keep answering; the store
//! recovers by itself when the fault ends; a SIGKILL mid-write loses nothing that was
//! acknowledged.
//!
//! The lock tests run the app in this process on a real SQLite file, with and without
//! the in-memory cache in front (so the cache is not why reads pass). The read-only and
//! SIGKILL tests start the real binary; as root (whom file modes do not stop) the
//! read-only one runs it as `nobody`.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Canned, StubBackend, TestApp};
use rand::Rng;
use twitcher::store::cached::CachedStore;
use twitcher::store::sqlite::SqliteStore;
use twitcher::store::{OAuthClient, Service, Store};

const GETCAPS: &str = "service=WPS&request=GetCapabilities";
const EXECUTE: &str = "service=WPS&request=Execute&version=1.0.0&identifier=hello";
const CAPS: &str = include_str!("../fixtures/capabilities/emu-getcaps.xml");
const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const CLIENT_ID: &str = "faultclient";
const CLIENT_SECRET: &str = "faultsecret";

/// A client for the tests' requests, bounded so that a stalled server fails the test.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// An Emu-like backend: capabilities and an Execute answer.
async fn backend() -> StubBackend {
    let backend = StubBackend::start().await;
    backend.route("/wps", Canned::ok("text/xml", CAPS));
    backend
}

/// What one request was answered with.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    cache_control: String,
    body: String,
}

impl Answer {
    async fn of(response: reqwest::Response) -> Answer {
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let (content_type, cache_control) = (header("content-type"), header("cache-control"));
        Answer {
            status: response.status().as_u16(),
            content_type,
            cache_control,
            body: response.text().await.unwrap(),
        }
    }

    /// Status, content type and body, for snapshots.
    fn transcript(&self, label: &str) -> String {
        format!(
            "== {label}\n{} {}\n{}\n\n",
            self.status, self.content_type, self.body
        )
    }
}

/// An XML-RPC call with string parameters, as a request to send.
fn rpc_call(base: &str, method: &str, params: &[&str]) -> reqwest::RequestBuilder {
    let params: String = params
        .iter()
        .map(|p| format!("<param><value><string>{p}</string></value></param>"))
        .collect();
    client()
        .post(format!("{base}/RPC2"))
        .header("Content-Type", "text/xml")
        .body(format!(
            "<?xml version='1.0'?>\n<methodCall><methodName>{method}</methodName><params>{params}</params></methodCall>"
        ))
}

/// Every write endpoint, as (label, request).
fn writes(base: &str, backend_url: &str) -> Vec<(&'static str, reqwest::RequestBuilder)> {
    let c = client();
    vec![
        ("rpc generate_token", rpc_call(base, "generate_token", &[])),
        (
            "rpc register_service",
            rpc_call(base, "register_service", &["late", backend_url]),
        ),
        ("rpc revoke_token", rpc_call(base, "revoke_token", &[TOKEN])),
        (
            "POST /oauth/token",
            c.post(format!("{base}/oauth/token")).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ]),
        ),
        (
            "POST /oauth/client",
            c.post(format!("{base}/oauth/client?name=late")),
        ),
        (
            "POST /services",
            c.post(format!("{base}/services"))
                .json(&serde_json::json!({"name": "late", "url": backend_url})),
        ),
        (
            "DELETE /services/emu",
            c.delete(format!("{base}/services/emu")),
        ),
    ]
}

/// Every read endpoint, as (label, request, what the body must contain).
fn reads(base: &str) -> Vec<(&'static str, reqwest::RequestBuilder, &'static str)> {
    let c = client();
    vec![
        (
            "GetCapabilities",
            c.get(format!("{base}/ows/proxy/emu?{GETCAPS}")),
            "/ows/proxy/emu",
        ),
        (
            "Execute with a stored token",
            c.get(format!(
                "{base}/ows/proxy/emu?{EXECUTE}&access_token={TOKEN}"
            )),
            "Capabilities",
        ),
        (
            "verify with a stored token",
            c.get(format!(
                "{base}/ows/verify/emu?{EXECUTE}&access_token={TOKEN}"
            )),
            "\"access\": true",
        ),
        (
            "rpc list_services",
            rpc_call(base, "list_services", &[]),
            "<string>emu</string>",
        ),
        (
            "rpc get_service_by_name",
            rpc_call(base, "get_service_by_name", &["emu"]),
            "<string>emu</string>",
        ),
        (
            "GET /services",
            c.get(format!("{base}/services")),
            "\"emu\"",
        ),
        ("GET /health", c.get(format!("{base}/health")), "ok"),
    ]
}

/// Registers `emu`, stores [`TOKEN`] and an OAuth client.
async fn populate(store: &dyn Store, backend_url: &str) {
    store
        .save_service(&Service::new("emu", backend_url))
        .await
        .unwrap();
    store
        .save_access_token(&twitcher::store::AccessToken {
            token: TOKEN.into(),
            expires_at: twitcher::clock::now() + 3600,
        })
        .await
        .unwrap();
    store
        .save_client(&OAuthClient {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            name: "faults".into(),
            redirect_uris: String::new(),
            default_scope: "compute register".into(),
        })
        .await
        .unwrap();
}

/// Another process's lock: a connection holding `BEGIN EXCLUSIVE` with a write in it,
/// rolled back when released.
struct ExclusiveLock {
    release: std::sync::mpsc::Sender<()>,
    holder: std::thread::JoinHandle<()>,
}

impl ExclusiveLock {
    fn hold(path: &Path) -> ExclusiveLock {
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let path = path.to_owned();
        let holder = std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(
                "BEGIN EXCLUSIVE; \
                 INSERT INTO access_tokens (token, expires_at) VALUES ('holder', 0);",
            )
            .unwrap();
            locked_tx.send(()).unwrap();
            let _ = release_rx.recv();
            conn.execute_batch("ROLLBACK").unwrap();
        });
        locked_rx.recv().unwrap();
        ExclusiveLock { release, holder }
    }

    fn release(self) {
        self.release.send(()).unwrap();
        self.holder.join().unwrap();
    }
}

/// The app on an SQLite file, with the in-memory cache in front or not.
async fn app_on_file(dir: &Path, cached: bool, backend_url: &str) -> (TestApp, PathBuf) {
    let path = dir.join("twitcher.sqlite");
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    populate(sqlite.as_ref(), backend_url).await;
    let store: Arc<dyn Store> = if cached {
        Arc::new(CachedStore::new(sqlite, Duration::from_secs(1)))
    } else {
        sqlite
    };
    (TestApp::start_on(store, |_| {}).await, path)
}

/// Asserts that every write was answered "temporarily unavailable" in its language.
fn assert_unavailable(label: &str, answer: &Answer) {
    if label.starts_with("rpc ") {
        assert_eq!(
            answer.status, 200,
            "{label}: XML-RPC faults are sent with 200"
        );
        assert!(
            answer.body.contains("<int>-32400</int>")
                && answer.body.contains("temporarily unavailable"),
            "{label}: {}",
            answer.body
        );
    } else {
        assert_eq!(answer.status, 503, "{label}: {}", answer.body);
        assert_eq!(answer.content_type, "application/json", "{label}");
    }
    if label == "POST /oauth/token" {
        assert!(
            answer
                .body
                .contains("\"error\": \"temporarily_unavailable\""),
            "{}",
            answer.body
        );
        assert_eq!(answer.cache_control, "no-store");
    }
}

/// Writes wait for the lock, then answer "temporarily unavailable"; reads answer at once,
/// also while more writes wait than there are connections; after the lock is released the
/// same writes succeed.
async fn locked_database(cached: bool) {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend().await;
    let backend_url = backend.url("/wps");
    let (app, path) = app_on_file(dir.path(), cached, &backend_url).await;
    let base = app.base.clone();
    let lock = ExclusiveLock::hold(&path);

    // More waiting writes than the store has connections, so reads that queued behind
    // writes would wait out the lock too.
    let finished = Arc::new(AtomicUsize::new(0));
    let mut pending = Vec::new();
    let mut queue = writes(&base, &backend_url);
    for _ in 0..24 {
        queue.push((
            "rpc generate_token, queued",
            rpc_call(&base, "generate_token", &[]),
        ));
    }
    for (label, request) in queue {
        let finished = finished.clone();
        pending.push((
            label,
            tokio::spawn(async move {
                let answer = Answer::of(request.send().await.expect(label)).await;
                finished.fetch_add(1, Ordering::SeqCst);
                answer
            }),
        ));
    }
    // Let the writes reach the server and queue for the lock.
    tokio::time::sleep(Duration::from_millis(300)).await;

    for (label, request, expected) in reads(&base) {
        let answer = Answer::of(request.send().await.expect(label)).await;
        assert_eq!(
            answer.status, 200,
            "{label} during the lock: {}",
            answer.body
        );
        assert!(
            answer.body.contains(expected),
            "{label}: {expected:?} in {}",
            answer.body
        );
    }
    assert_eq!(
        finished.load(Ordering::SeqCst),
        0,
        "every read was answered while the writes still waited for the lock"
    );

    let mut transcript = String::new();
    for (label, task) in pending {
        let answer = task.await.unwrap();
        assert_unavailable(label, &answer);
        if label != "rpc generate_token, queued" {
            transcript.push_str(&answer.transcript(label));
        }
    }
    insta::assert_snapshot!("locked_writes", transcript);
    lock.release();

    // The fault is over: the same writes succeed, without a restart.
    for (label, request) in writes(&base, &backend_url) {
        let answer = Answer::of(request.send().await.expect(label)).await;
        assert_eq!(
            answer.status, 200,
            "{label} after the lock: {}",
            answer.body
        );
        assert!(!answer.body.contains("<fault>"), "{label}: {}", answer.body);
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let held: i64 = conn
        .query_row(
            "SELECT count(*) FROM access_tokens WHERE token = 'holder'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(held, 0, "the lock holder's write was rolled back");
    let late: i64 = conn
        .query_row(
            "SELECT count(*) FROM services WHERE name = 'late'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(late, 1, "the writes after the fault are stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_database_without_cache() {
    locked_database(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_database_with_cache() {
    locked_database(true).await;
}

// ---------------------------------------------------------------------------------------
// The real binary: read-only database, SIGKILL
// ---------------------------------------------------------------------------------------

/// A `twitcher serve` child on `127.0.0.1:0`, killed (SIGKILL) when dropped.
struct Server {
    child: Child,
    base: String,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the binary on `dir/twitcher.ini` (as `uid` when given) and waits for its
    /// "serving on" log line.
    fn start(dir: &Path, uid: Option<u32>) -> Server {
        use std::io::BufRead;
        let mut command = Command::new(env!("CARGO_BIN_EXE_twitcher"));
        command
            .arg("serve")
            .arg(dir.join("twitcher.ini"))
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(uid) = uid {
            command.uid(uid).gid(uid);
        }
        let mut child = command.spawn().expect("start twitcher");
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let base = loop {
            let Some(Ok(line)) = lines.next() else {
                let status = child.wait().unwrap();
                panic!("twitcher stopped ({status}) before serving");
            };
            if let Some((_, addr)) = line.split_once("serving on ") {
                break addr.trim().to_string();
            }
        };
        // Keep reading the log so the child never blocks on a full pipe.
        let log: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Server { child, base, log }
    }

    /// The log so far, for failure messages.
    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `dir/twitcher.ini` for `dir/twitcher.sqlite` on an ephemeral port.
fn write_config(dir: &Path, extra: &str) -> PathBuf {
    std::fs::write(
        dir.join("twitcher.ini"),
        format!(
            "[app:main]\nsqlalchemy.url = sqlite:///%(here)s/twitcher.sqlite\n{extra}\n\n[server:main]\nhost = 127.0.0.1\nport = 0\n"
        ),
    )
    .unwrap();
    dir.join("twitcher.sqlite")
}

/// The `access_token` of a `generate_token` answer.
fn rpc_token(body: &str) -> Option<String> {
    let rest = &body[body.find("<name>access_token</name>")?..];
    let start = rest.find("<string>")? + "<string>".len();
    let end = rest[start..].find("</string>")?;
    Some(rest[start..start + end].to_string())
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A database file that is read-only when the server starts (a restored backup, a
/// mistaken chmod) is served for reading; writes are answered "temporarily unavailable";
/// once the file is writable again the next writes succeed without a restart (no
/// read-only connection was kept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_database_serves_reads_and_recovers() {
    // File modes do not stop root: run the server as `nobody` then.
    let uid = rustix::process::geteuid().is_root().then_some(65534);
    let dir = tempfile::tempdir().unwrap();
    if let Some(uid) = uid {
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(uid)).unwrap();
    }
    let path = write_config(dir.path(), "twitcher.store_cache_seconds = 0");
    let backend = backend().await;
    let backend_url = backend.url("/wps");
    {
        let store = SqliteStore::open(&path).unwrap();
        populate(&store, &backend_url).await;
    }
    for file in std::fs::read_dir(dir.path()).unwrap() {
        if let Some(uid) = uid {
            std::os::unix::fs::chown(file.unwrap().path(), Some(uid), Some(uid)).unwrap();
        }
    }
    set_mode(&path, 0o444);
    let server = Server::start(dir.path(), uid);

    for (label, request, expected) in reads(&server.base) {
        let answer = Answer::of(request.send().await.expect(label)).await;
        assert_eq!(answer.status, 200, "{label} read-only: {}", answer.body);
        assert!(answer.body.contains(expected), "{label}: {}", answer.body);
    }
    for (label, request) in writes(&server.base, &backend_url) {
        let answer = Answer::of(request.send().await.expect(label)).await;
        assert_unavailable(label, &answer);
    }

    set_mode(&path, 0o644);
    for (label, request) in writes(&server.base, &backend_url) {
        let answer = Answer::of(request.send().await.expect(label)).await;
        assert_eq!(
            answer.status, 200,
            "{label} writable again: {}",
            answer.body
        );
        assert!(
            !answer.body.contains("<fault>"),
            "{label}: {}\n{}",
            answer.body,
            server.log()
        );
    }
    let listed = Answer::of(
        client()
            .get(format!("{}/services", server.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(listed.body.contains("\"late\""), "{}", listed.body);
    server.kill();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let late: i64 = conn
        .query_row(
            "SELECT count(*) FROM services WHERE name = 'late'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(late, 1);
}

/// What the writers were told was stored.
#[derive(Default)]
struct Acknowledged {
    tokens: BTreeSet<String>,
    services: BTreeSet<String>,
}

/// One writer: XML-RPC tokens and REST registrations, in turn, until the server is gone.
async fn write_until_killed(base: String, writer: usize, round: usize) -> Acknowledged {
    let mut acked = Acknowledged::default();
    for i in 0.. {
        if i % 2 == 0 {
            let Ok(response) = rpc_call(&base, "generate_token", &[]).send().await else {
                break;
            };
            let Ok(body) = response.text().await else {
                break;
            };
            if let Some(token) = rpc_token(&body) {
                acked.tokens.insert(token);
            }
        } else {
            let name = format!("r{round}w{writer}n{i}");
            let Ok(response) = client()
                .post(format!("{base}/services"))
                .json(&serde_json::json!({"name": name, "url": "http://backend/wps"}))
                .send()
                .await
            else {
                break;
            };
            let status = response.status();
            let Ok(body) = response.text().await else {
                break;
            };
            if status == 200 && body.contains(&format!("\"{name}\"")) {
                acked.services.insert(name);
            }
        }
    }
    acked
}

/// Many concurrent writes, SIGKILL at a random moment, restart on the same file: every
/// write that was answered is there, and the database is intact. Three rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_write_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "");
    let mut all = Acknowledged::default();
    for round in 0..3 {
        let server = Server::start(dir.path(), None);
        let writers: Vec<_> = (0..8)
            .map(|w| tokio::spawn(write_until_killed(server.base.clone(), w, round)))
            .collect();
        let pause = rand::rng().random_range(150..700);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        server.kill();
        for writer in writers {
            let acked = writer.await.unwrap();
            all.tokens.extend(acked.tokens);
            all.services.extend(acked.services);
        }
        assert!(
            !all.tokens.is_empty() && !all.services.is_empty(),
            "round {round}: writes were acknowledged before the kill"
        );

        // Opening runs SQLite's recovery of the write-ahead log, as the restart does.
        let restarted = Server::start(dir.path(), None);
        let conn = rusqlite::Connection::open(&path).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "round {round}");
        let stored = |sql: &str| -> BTreeSet<String> {
            let mut stmt = conn.prepare(sql).unwrap();
            stmt.query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let tokens = stored("SELECT token FROM access_tokens");
        let services = stored("SELECT name FROM services");
        let lost_tokens: Vec<_> = all.tokens.difference(&tokens).collect();
        let lost_services: Vec<_> = all.services.difference(&services).collect();
        assert!(
            lost_tokens.is_empty(),
            "round {round}: lost {lost_tokens:?}"
        );
        assert!(
            lost_services.is_empty(),
            "round {round}: lost {lost_services:?}"
        );
        let health = client()
            .get(format!("{}/health", restarted.base))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200, "round {round}");
        restarted.kill();
    }
}
