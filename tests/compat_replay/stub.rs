//! Stub backends on `127.0.0.1:0` standing in for Emu and the probe/helper backends of the
//! recordings: one request per connection, answered from a table, every request recorded.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::Res;
use crate::wire::{Message, read_message};

/// A canned backend answer.
#[derive(Clone, Debug)]
pub struct Canned {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Headers in order (framing headers are added when sent).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Canned {
    /// An answer with the status's canonical reason and this Content-Type.
    pub fn new(status: u16, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Canned {
        let reason = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Unknown");
        Canned {
            status,
            reason: reason.to_string(),
            headers: content_type
                .map(|ct| vec![("Content-Type".to_string(), ct.to_string())])
                .unwrap_or_default(),
            body: body.into(),
        }
    }

    /// The answer with one more header.
    pub fn with(mut self, name: &str, value: &str) -> Canned {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The `Content-Type` header.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str())
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason);
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// What a stub answers on a route.
#[derive(Clone, Debug)]
pub enum Answer {
    /// This answer, whatever the request.
    Canned(Canned),
    /// The helper's `/echo`: a JSON description of the request received.
    Echo,
}

/// A stub's table and what it received.
#[derive(Default)]
struct StubState {
    /// Answers by path prefix (longest match wins).
    routes: Vec<(String, Answer)>,
    /// The answer for any other path.
    fallback: Option<Answer>,
    /// Requests received, with the answer sent.
    received: Vec<(Message, Canned)>,
}

/// A backend on `127.0.0.1:0` answering one request per connection from a table.
#[derive(Clone)]
pub struct Stub {
    /// `127.0.0.1:PORT`.
    pub host: String,
    state: Arc<Mutex<StubState>>,
}

impl Stub {
    /// A stub with an empty table on a fresh port.
    pub async fn start() -> Res<Stub> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind stub: {e}"))?;
        let host = listener
            .local_addr()
            .map_err(|e| e.to_string())?
            .to_string();
        let state: Arc<Mutex<StubState>> = Arc::default();
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve_stub(socket, shared.clone()));
            }
        });
        Ok(Stub { host, state })
    }

    fn lock(&self) -> MutexGuard<'_, StubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers `path` and everything below it with `answer`.
    pub fn route(&self, path: &str, answer: Answer) {
        self.lock().routes.push((path.to_string(), answer));
    }

    /// The answer for paths without a route (`None`: 404).
    pub fn set_fallback(&self, answer: Option<Answer>) {
        self.lock().fallback = answer;
    }

    /// The requests received since the last call, with the answers sent.
    pub fn take_received(&self) -> Vec<(Message, Canned)> {
        std::mem::take(&mut self.lock().received)
    }
}

/// Answers one request on `socket` from the table.
async fn serve_stub(mut socket: TcpStream, state: Arc<Mutex<StubState>>) {
    let Ok(Ok(request)) = tokio::time::timeout(
        Duration::from_secs(30),
        read_message(&mut socket, false, false),
    )
    .await
    else {
        return;
    };
    let path = request
        .target()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    let canned = {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        let answer = st
            .routes
            .iter()
            .filter(|(p, _)| path == *p || path.starts_with(&format!("{p}/")))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, a)| a.clone())
            .or_else(|| st.fallback.clone());
        let canned = match answer {
            Some(Answer::Canned(c)) => c,
            Some(Answer::Echo) => echo(&request),
            None => Canned::new(404, Some("text/plain"), format!("no stub route for {path}")),
        };
        st.received.push((request, canned.clone()));
        canned
    };
    let _ = socket.write_all(&canned.to_bytes()).await;
    let _ = socket.shutdown().await;
}

/// The T06 helper's echo: `json.dumps(..., indent=1)` of the request as received.
fn echo(request: &Message) -> Canned {
    let target = request.target();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers: Vec<Value> = request.headers.iter().map(|(k, v)| json!([k, v])).collect();
    let value = json!({
        "method": request.method(),
        "path": path,
        "query": query,
        "request_version": request.start.rsplit(' ').next().unwrap_or_default(),
        "headers": headers,
        "body": String::from_utf8_lossy(&request.body),
    });
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(
        &mut out,
        serde_json::ser::PrettyFormatter::with_indent(b" "),
    );
    if value.serialize(&mut serializer).is_err() {
        out = b"{}".to_vec();
    }
    Canned::new(200, Some("application/json"), out)
}
