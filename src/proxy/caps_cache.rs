//! The opt-in GetCapabilities cache (`twitcher.ows_proxy_capabilities_cache = SECONDS`):
//! finished capabilities answers (rewritten, exactly the bytes a client got) kept per
//! service, public URL, path and query. Capabilities change rarely and are what every client
//! asks first; with the cache a busy proxy answers them without a backend round trip.
//!
//! What is kept: only complete 200 answers to anonymous GET GetCapabilities requests (or
//! any GetCapabilities of a public service), at most [`MAX_BODY`] bytes each, for the
//! configured time or the backend's `max-age` if shorter; never what the backend marks
//! `no-store` or `private`. When an entry is old and the backend gave an `ETag` or
//! `Last-Modified`, the next request revalidates it; a `304` renews it. A changed
//! registration is a different key, so its old answers are never served.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::BytesMut;
use futures_util::StreamExt;

use crate::store::Service;

/// Largest answer kept (a THREDDS catalogue's capabilities are a few MB).
pub const MAX_BODY: usize = 8 * 1024 * 1024;
/// Most answers kept; past that the oldest half is dropped.
const MAX_ENTRIES: usize = 1024;

/// What identifies one cached answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// The whole registration: changing any part of it misses the old entries.
    service: (String, String, String, String, bool, String, bool),
    /// The URL written into the answer.
    public_url: String,
    /// The path and query as the backend got them.
    query: String,
}

impl Key {
    /// The key of a request to `service` answered with `public_url` written in.
    pub fn new(service: &Service, public_url: &str, query: &str) -> Key {
        Key {
            service: (
                service.name.clone(),
                service.url.clone(),
                service.service_type.as_str().to_string(),
                service.purl.clone(),
                service.public,
                service.auth.as_str().to_string(),
                service.verify,
            ),
            public_url: public_url.to_string(),
            query: query.to_string(),
        }
    }
}

/// A kept answer.
#[derive(Clone)]
struct Entry {
    headers: HeaderMap,
    body: Bytes,
    /// When it was fetched or last revalidated.
    fetched: Instant,
    /// How long it may be served without asking the backend.
    lifetime: Duration,
    /// Validators for a conditional request.
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
}

/// What the backend said about caching its answer.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// `no-store` or `private`: never keep it.
    no_store: bool,
    /// `max-age` (`no-cache` is 0: revalidate every time).
    max_age: Option<Duration>,
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
}

impl Policy {
    /// Reads `Cache-Control`, `ETag` and `Last-Modified` of a backend answer.
    pub fn of(headers: &HeaderMap) -> Policy {
        let mut policy = Policy {
            etag: headers.get(header::ETAG).cloned(),
            last_modified: headers.get(header::LAST_MODIFIED).cloned(),
            ..Policy::default()
        };
        for value in headers.get_all(header::CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for directive in value.split(',') {
                let directive = directive.trim().to_ascii_lowercase();
                match directive.split_once('=') {
                    Some(("max-age" | "s-maxage", secs)) => {
                        let secs = secs.trim_matches('"').parse::<u64>().unwrap_or(0);
                        let age = Duration::from_secs(secs);
                        policy.max_age = Some(policy.max_age.map_or(age, |a| a.min(age)));
                    }
                    None if directive == "no-store" || directive == "private" => {
                        policy.no_store = true;
                    }
                    None if directive == "no-cache" => policy.max_age = Some(Duration::ZERO),
                    _ => {}
                }
            }
        }
        policy
    }
}

/// What the cache has for a key.
pub enum Lookup {
    /// A fresh answer: serve it.
    Fresh(Response),
    /// An old answer with validators: ask the backend whether it still holds.
    Revalidate {
        /// `If-None-Match` / `If-Modified-Since` to send.
        conditions: HeaderMap,
    },
    /// Nothing usable.
    Miss,
}

/// The cache, shared by all requests.
pub struct CapsCache {
    ttl: Duration,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl CapsCache {
    /// A cache keeping answers for at most `ttl`.
    pub fn new(ttl: Duration) -> Self {
        CapsCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What to do for a request with this key.
    pub fn lookup(&self, key: &Key) -> Lookup {
        let Some(entry) = self.entries().get(key).cloned() else {
            return Lookup::Miss;
        };
        if entry.fetched.elapsed() < entry.lifetime {
            return Lookup::Fresh(response(&entry));
        }
        let mut conditions = HeaderMap::new();
        if let Some(etag) = entry.etag {
            conditions.insert(header::IF_NONE_MATCH, etag);
        }
        if let Some(date) = entry.last_modified {
            conditions.insert(header::IF_MODIFIED_SINCE, date);
        }
        if conditions.is_empty() {
            Lookup::Miss
        } else {
            Lookup::Revalidate { conditions }
        }
    }

    /// The backend answered `304` to a revalidation: serve the kept answer again, renewed.
    pub fn renew(&self, key: &Key, policy: &Policy) -> Option<Response> {
        let mut entries = self.entries();
        let entry = entries.get_mut(key)?;
        entry.fetched = Instant::now();
        entry.lifetime = self.lifetime(policy);
        Some(response(entry))
    }

    /// How long an answer with this policy may be served.
    fn lifetime(&self, policy: &Policy) -> Duration {
        policy.max_age.map_or(self.ttl, |age| age.min(self.ttl))
    }

    /// Passes `response` on and keeps a copy once it has streamed completely, when it is
    /// a 200 the backend lets us keep. Nothing is held back: the client gets each chunk
    /// as it comes.
    pub fn keep(self: &Arc<Self>, key: Key, policy: Policy, response: Response) -> Response {
        if response.status() != StatusCode::OK || policy.no_store {
            return response;
        }
        let (parts, body) = response.into_parts();
        let tee = Tee {
            body: body.into_data_stream(),
            copy: Some(BytesMut::new()),
            cache: self.clone(),
            key: Some(key),
            headers: parts.headers.clone(),
            policy,
        };
        let stream = futures_util::stream::unfold(tee, |mut tee| async move {
            match tee.body.next().await {
                Some(Ok(bytes)) => {
                    if let Some(copy) = &mut tee.copy {
                        if copy.len() + bytes.len() > MAX_BODY {
                            tee.copy = None;
                        } else {
                            copy.extend_from_slice(&bytes);
                        }
                    }
                    Some((Ok(bytes), tee))
                }
                Some(Err(e)) => {
                    // Never keep a broken answer.
                    tee.copy = None;
                    Some((Err(e), tee))
                }
                None => {
                    if let (Some(copy), Some(key)) = (tee.copy.take(), tee.key.take()) {
                        tee.cache
                            .insert(key, tee.headers.clone(), copy.freeze(), &tee.policy);
                    }
                    None
                }
            }
        });
        Response::from_parts(parts, Body::from_stream(stream))
    }

    fn insert(&self, key: Key, headers: HeaderMap, body: Bytes, policy: &Policy) {
        let lifetime = self.lifetime(policy);
        let revalidatable = policy.etag.is_some() || policy.last_modified.is_some();
        if lifetime.is_zero() && !revalidatable {
            return;
        }
        let mut entries = self.entries();
        if entries.len() >= MAX_ENTRIES {
            // Drop what is stale first, then (still full) everything: simple and bounded.
            entries.retain(|_, e| e.fetched.elapsed() < e.lifetime);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            key,
            Entry {
                headers,
                body,
                fetched: Instant::now(),
                lifetime,
                etag: policy.etag.clone(),
                last_modified: policy.last_modified.clone(),
            },
        );
    }
}

/// The kept answer as a response.
fn response(entry: &Entry) -> Response {
    let mut out = Response::new(Body::from(entry.body.clone()));
    *out.headers_mut() = entry.headers.clone();
    out.headers_mut().remove(header::TRANSFER_ENCODING);
    out
}

/// A response body on its way to the client, copied for the cache as it passes.
struct Tee {
    body: axum::body::BodyDataStream,
    /// The bytes so far (None: too large or broken, not kept).
    copy: Option<BytesMut>,
    cache: Arc<CapsCache>,
    key: Option<Key>,
    headers: HeaderMap,
    policy: Policy,
}
