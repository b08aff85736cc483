//! Shared test harness: the app on a real socket (`127.0.0.1:0`) with an in-memory
//! store, and stub backends that answer from a table of canned responses.

#![allow(dead_code)]

pub mod process;

pub mod logs;
pub mod postgres;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use twitcher::App;
use twitcher::config::Config;
use twitcher::store::memory::MemoryStore;
use twitcher::store::{AccessToken, Service, Store};

/// A running twitcher.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The store behind it, for setting up services and tokens.
    pub store: Arc<dyn Store>,
    /// A client that never follows redirects.
    pub client: reqwest::Client,
}

impl TestApp {
    /// Starts twitcher with the default config (plus tweaks) on an ephemeral port.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        Self::start_on(Arc::new(MemoryStore::new()), tweak).await
    }

    /// Starts twitcher on this store.
    pub async fn start_on(store: Arc<dyn Store>, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = Config::default();
        tweak(&mut config);
        let app = App::new(config, store.clone()).expect("app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let service = twitcher::app(app).into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, service).await });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .expect("client");
        TestApp {
            base: format!("http://{addr}"),
            store,
            client,
        }
    }

    /// Starts twitcher with the default config.
    pub async fn start() -> TestApp {
        Self::start_with(|_| {}).await
    }

    /// Registers a service.
    pub async fn register(&self, service: Service) {
        self.store
            .save_service(&service)
            .await
            .expect("save service");
    }

    /// Stores an XML-RPC token valid for an hour (or expired when `valid` is false).
    pub async fn token(&self, token: &str, valid: bool) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let expires_at = if valid { now + 3600 } else { now - 1 };
        self.store
            .save_access_token(&AccessToken {
                token: token.into(),
                expires_at,
            })
            .await
            .expect("save token");
    }

    /// GET a path (with query) on twitcher. The future does not borrow `path`.
    pub fn get(&self, path: &str) -> impl std::future::Future<Output = reqwest::Response> + use<> {
        let request = self.client.get(format!("{}{path}", self.base));
        async move { request.send().await.expect("request") }
    }
}

/// Calls an XML-RPC method on `/RPC2` with string parameters; returns the response body
/// (the HTTP status must be 200: XML-RPC answers faults in the body).
pub async fn rpc(app: &TestApp, method: &str, params: &[&str]) -> String {
    let params: String = params
        .iter()
        .map(|p| format!("<param><value><string>{p}</string></value></param>"))
        .collect();
    let body = format!(
        "<?xml version='1.0'?>\n<methodCall>\n<methodName>{method}</methodName>\n<params>\n{params}</params>\n</methodCall>\n"
    );
    let response = app
        .client
        .post(format!("{}/RPC2", app.base))
        .header("Content-Type", "text/xml")
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "/RPC2 answers faults with 200");
    response.text().await.expect("body")
}

/// A canned backend answer.
#[derive(Clone, Debug)]
pub struct Canned {
    /// Status code.
    pub status: u16,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Bytes,
}

impl Canned {
    /// A 200 with one content type.
    pub fn ok(content_type: &str, body: impl Into<Bytes>) -> Canned {
        Canned {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }
}

/// What a stub backend received.
#[derive(Clone, Debug)]
pub struct Received {
    /// Method.
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Bytes,
}

/// A backend answering by path (query ignored) from a table; records every request.
#[derive(Clone)]
pub struct StubBackend {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    routes: Arc<Mutex<HashMap<String, Canned>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl StubBackend {
    /// Starts an empty stub backend (unknown paths answer 404 text/plain).
    pub async fn start() -> StubBackend {
        let routes: Arc<Mutex<HashMap<String, Canned>>> = Arc::default();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let state = (routes.clone(), received.clone());
        let router = axum::Router::new().fallback(stub_handler).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, router).await });
        StubBackend {
            base: format!("http://{addr}"),
            routes,
            received,
        }
    }

    /// Answers `path` with `canned`.
    pub fn route(&self, path: &str, canned: Canned) -> &Self {
        self.routes.lock().unwrap().insert(path.to_string(), canned);
        self
    }

    /// URL of a path on this backend.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Requests received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

type StubState = (
    Arc<Mutex<HashMap<String, Canned>>>,
    Arc<Mutex<Vec<Received>>>,
);

async fn stub_handler(State((routes, received)): State<StubState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    received.lock().unwrap().push(Received {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: header_pairs(&parts.headers),
        body,
    });
    let canned = routes.lock().unwrap().get(parts.uri.path()).cloned();
    let canned = canned.unwrap_or(Canned {
        status: 404,
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: Bytes::from_static(b"no such stub route"),
    });
    let mut response = Response::new(Body::from(canned.body));
    *response.status_mut() = StatusCode::from_u16(canned.status).unwrap();
    for (k, v) in canned.headers {
        response.headers_mut().append(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            axum::http::HeaderValue::from_str(&v).unwrap(),
        );
    }
    response
}

/// Headers as ordered `(name, value)` pairs.
pub fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Sends raw bytes to `base` (`http://host:port`) and returns the raw response, for
/// requests an HTTP client library would normalise (dot segments, odd framing).
pub async fn raw_request(base: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

/// Registers an OAuth2 client through `/oauth/client` (with these basic credentials, when
/// given) and returns its `(client_id, client_secret)`.
pub async fn oauth_client(app: &TestApp, basic: Option<(&str, &str)>) -> (String, String) {
    let mut request = app
        .client
        .get(format!("{}/oauth/client?name=tests", app.base));
    if let Some((user, password)) = basic {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.expect("request");
    assert_eq!(response.status(), 200, "/oauth/client refused");
    let client: serde_json::Value =
        serde_json::from_str(&response.text().await.expect("body")).expect("client JSON");
    (
        client["client_id"].as_str().expect("client_id").to_string(),
        client["client_secret"]
            .as_str()
            .expect("client_secret")
            .to_string(),
    )
}

/// Obtains an access token through `POST /oauth/token` (client credentials grant) with
/// the given scope; returns the token.
pub async fn oauth_token(app: &TestApp, client: &(String, String), scope: &str) -> String {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", &client.0)
        .append_pair("client_secret", &client.1)
        .append_pair("scope", scope)
        .finish();
    let response = app
        .client
        .post(format!("{}/oauth/token", app.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "/oauth/token refused");
    let token: serde_json::Value =
        serde_json::from_str(&response.text().await.expect("body")).expect("token JSON");
    assert_eq!(token["scope"], scope, "granted scope");
    token["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Stores an OAuth2 token with these scopes directly, valid for an hour or already expired.
pub async fn stored_oauth_token(app: &TestApp, token: &str, scope: &str, valid: bool) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    app.store
        .save_oauth_token(&twitcher::store::OAuthToken {
            access_token: token.into(),
            client_id: "tests".into(),
            scope: scope.into(),
            expires_at: if valid { now + 3600 } else { now - 1 },
        })
        .await
        .expect("save OAuth token");
}
