//! Target 4, the whole gate: for arbitrary requests to the protected service `emu`, a
//! public grant goes only to a public operation as a backend reads it (first-value KVP of
//! a GET query; the XML root or form pairs of a POST body), a token grant only to the
//! valid token `good`, the upstream URL stays below the service path and carries no
//! token; and nothing panics.

use std::cell::RefCell;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use bytes::Bytes;
use futures_util::StreamExt;
use twitcher::config::Config;
use twitcher::gate::{Admitted, ForwardBody, Gate, Grant, Incoming, Route};
use twitcher::ows::capabilities::ByteStream;
use twitcher::security::TokenSource;
use twitcher::store::memory::MemoryStore;
use twitcher::store::{AccessToken, Service, Store};
use twitcher::tokens::Tokens;

use super::path::segment_escape;
use super::reference::{self, Pick, View};

mod input;

pub use input::GateInput;

/// The only valid token.
pub const GOOD: &str = "good";
/// The registered (protected) service's URL.
pub const SERVICE_URL: &str = "http://127.0.0.1:1/wps";

/// A concrete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateCase {
    /// Method.
    pub method: &'static str,
    /// Raw path.
    pub path: String,
    /// Raw query.
    pub query: String,
    /// Headers in order.
    pub headers: Vec<(&'static str, &'static str)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Chunk cuts.
    pub cuts: Vec<u16>,
}

/// The store, tokens, settings and runtime every case runs against.
struct World {
    runtime: tokio::runtime::Runtime,
    store: MemoryStore,
    tokens: Tokens,
    config: Config,
}

impl World {
    fn new() -> World {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let store = MemoryStore::new();
        let config = Config::default();
        let tokens = Tokens::from_settings(&config.token).expect("tokens");
        runtime.block_on(async {
            store
                .save_service(&Service::new("emu", SERVICE_URL))
                .await
                .expect("service");
            store
                .save_access_token(&AccessToken {
                    token: GOOD.into(),
                    expires_at: twitcher::clock::now() + 10 * 365 * 24 * 3600,
                })
                .await
                .expect("token");
        });
        World {
            runtime,
            store,
            tokens,
            config,
        }
    }
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

/// Runs the gate on one request: what it admitted, with the body it would forward (read
/// to the end), or why it refused.
pub fn admit(case: &GateCase) -> Result<(Admitted, Option<Vec<u8>>), String> {
    let method = Method::from_bytes(case.method.as_bytes()).expect("method");
    let mut headers = HeaderMap::new();
    for (name, value) in &case.headers {
        headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    let chunks: Vec<Result<Bytes, std::io::Error>> = super::chunks(&case.body, &case.cuts)
        .into_iter()
        .map(|c| Ok(Bytes::from(c)))
        .collect();
    let body: ByteStream = Box::pin(futures_util::stream::iter(chunks));
    WORLD.with(|world| {
        let mut world = world.borrow_mut();
        let world = world.get_or_insert_with(World::new);
        let gate = Gate {
            store: &world.store,
            tokens: &world.tokens,
            config: &world.config,
        };
        let incoming = Incoming {
            method: &method,
            path: &case.path,
            query: &case.query,
            headers: &headers,
            peer: None,
            certificate: None,
        };
        world.runtime.block_on(async {
            let mut admitted = gate
                .admit(Route::Proxy, incoming, body)
                .await
                .map_err(|e| e.to_string())?;
            let forwarded = match std::mem::replace(&mut admitted.body, ForwardBody::None) {
                ForwardBody::None => None,
                ForwardBody::Whole(bytes) => Some(bytes.to_vec()),
                ForwardBody::Stream(mut stream) => {
                    let mut all = Vec::new();
                    while let Some(chunk) = stream.next().await {
                        all.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
                    }
                    Some(all)
                }
            };
            Ok((admitted, forwarded))
        })
    })
}

/// How a backend reads a POST body: None when it cannot read it at all (not text, or
/// XML a conforming parser rejects), else what it sees.
fn body_view(body: &[u8], form: bool) -> Option<View> {
    let (start, complete) = reference::decode_prefix(body);
    if reference::looks_like_xml(&start) {
        return complete.then(|| reference::xml_view(&start).ok()).flatten();
    }
    form.then(|| reference::kvp_view(&String::from_utf8_lossy(body), Pick::First))
}

/// One admitted request, for reporting a violation with everything needed to replay it.
struct Seen<'a> {
    case: &'a GateCase,
    admitted: &'a Admitted,
}

impl Seen<'_> {
    fn fail(&self, why: &str, detail: &dyn std::fmt::Debug) -> ! {
        panic!(
            "{why}\n  request: {:#?}\n  grant: {:?}\n  request read: {:?}\n  upstream: {}\n  \
             detail: {detail:?}",
            self.case, self.admitted.grant, self.admitted.request, self.admitted.upstream
        )
    }
}

/// The property for one request.
pub fn check(case: &GateCase) {
    let Ok((admitted, forwarded)) = admit(case) else {
        return;
    };
    let seen = Seen {
        case,
        admitted: &admitted,
    };
    check_upstream(&seen);
    match admitted.grant {
        Grant::Public => {
            if !admitted.request.as_ref().is_some_and(|r| r.is_public()) {
                seen.fail(
                    "public grant for a request the gate itself does not call public",
                    &"",
                );
            }
            check_public(&seen, forwarded.as_deref());
        }
        Grant::Token(source) => {
            if !token_at(case, source) {
                seen.fail(
                    "token grant without the token `good` where the gate found it",
                    &source,
                );
            }
        }
        Grant::Certificate => seen.fail("certificate grant for an `auth = token` service", &""),
    }
}

/// The upstream URL: the service's host, below its path, no dot segment, no token.
fn check_upstream(seen: &Seen<'_>) {
    let url = &seen.admitted.upstream;
    if url.host_str() != Some("127.0.0.1") || url.port() != Some(1) {
        seen.fail("upstream on another host", &url.as_str());
    }
    let Some(tail) = url.path().strip_prefix("/wps") else {
        seen.fail("upstream path outside /wps", &url.path());
    };
    if !tail.is_empty() && !tail.starts_with('/') {
        seen.fail("upstream path continues /wps", &url.path());
    }
    for segment in tail.split('/').skip(1) {
        if let Some(why) = segment_escape(segment) {
            seen.fail("upstream path steps out of /wps", &(segment, why));
        }
    }
    let query = url.query().unwrap_or("");
    for (key, _) in reference::pairs(query) {
        let key = key.trim().to_lowercase();
        if key == "token" || key == "access_token" {
            seen.fail("a token parameter is forwarded upstream", &query);
        }
    }
}

/// A public grant: every reading a backend may make of the request is public.
fn check_public(seen: &Seen<'_>, forwarded: Option<&[u8]>) {
    let (case, admitted) = (seen.case, seen.admitted);
    let fail = |why: &str, detail: &dyn std::fmt::Debug| -> ! { seen.fail(why, detail) };
    let upstream_query = admitted.upstream.query().unwrap_or("");
    let is_form = case.headers.iter().any(|(k, v)| {
        *k == "content-type"
            && v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
    });
    match case.method {
        "GET" => {
            if forwarded.is_some() {
                fail("a GET body is forwarded", &forwarded);
            }
            for (what, query) in [
                ("client query", case.query.as_str()),
                ("upstream query", upstream_query),
            ] {
                for pick in [Pick::First, Pick::Last] {
                    let view = reference::kvp_view(query, pick);
                    if !view.is_public() {
                        fail(
                            &format!("public grant, but the {what} reads ({pick:?}) as"),
                            &view,
                        );
                    }
                }
            }
        }
        _ => {
            // Servers that read the query of a POST must see the same public request.
            for query in [case.query.as_str(), upstream_query] {
                if reference::kvp_value(query, "request", Pick::First).is_some() {
                    let view = reference::kvp_view(query, Pick::First);
                    if !view.is_public() {
                        fail("public grant, but the POST query names", &view);
                    }
                }
            }
            for (what, body) in [
                ("client body", Some(case.body.as_slice())),
                ("forwarded body", forwarded),
            ] {
                let Some(body) = body else {
                    fail("a POST is admitted without a body to forward", &what);
                };
                if let Some(view) = body_view(body, is_form)
                    && !view.is_public()
                {
                    fail(&format!("public grant, but the {what} reads as"), &view);
                }
            }
        }
    }
}

/// Whether the token at `source` is `good`.
fn token_at(case: &GateCase, source: TokenSource) -> bool {
    let header = |name: &str| {
        case.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    };
    let param = |query: &str, key: &str| {
        reference::pairs(query)
            .into_iter()
            .any(|(k, v)| k == key && v == GOOD)
    };
    match source {
        TokenSource::QueryToken => param(&case.query, "token"),
        TokenSource::QueryAccessToken => param(&case.query, "access_token"),
        TokenSource::AccessTokenHeader => header("access-token").is_some_and(|v| v.trim() == GOOD),
        TokenSource::Bearer => header("authorization").is_some_and(|v| {
            v.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
                && v[6..].trim_matches([' ', '\t']) == GOOD
        }),
        TokenSource::FormField => param(&String::from_utf8_lossy(&case.body), "access_token"),
        TokenSource::LastPathElement => case
            .path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .is_some_and(|s| reference::unquote_plus(&s.replace('+', "%2B")) == GOOD),
    }
}
