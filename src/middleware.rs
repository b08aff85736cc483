//! The cross-cutting layers, in one ordered list, outermost first:
//!
//! 1. **trace span** per request (method and the first path segments), only when DEBUG
//!    logging is on: even disabled, a trace layer costs a refusal several percent;
//! 2. **observe**: the access log line ([`crate::access_log`]) and the metrics
//!    ([`crate::metrics`]) of the finished response, left out when both are off;
//! 3. **catch panic**: a panic becomes a generic 500 report, never a dropped connection;
//! 4. **concurrency limit** (`twitcher.max_concurrent_requests`): requests beyond it are
//!    shed at once with 503 rather than queued behind slow backends;
//!
//! and for the management routes only (`/RPC2`, `/oauth`, `/services`, the informational
//! routes; not the OWS routes, whose bodies stream to backends that have their own
//! connect and read timeouts, and whose gate bounds what it reads by
//! `twitcher.max_body_size`):
//!
//! 5. **request timeout** (`twitcher.request_timeout`) → 503;
//! 6. **failed logins** per client address ([`crate::auth_throttle`]) → 429;
//! 7. **body limit** (`twitcher.max_body_size`) → 413.
//!
//! A layer's refusal speaks the endpoint's language ([`refusal`]): an OWS report under
//! the protected path, an XML-RPC fault at `/RPC2`, an RFC 6749 error under `/oauth`,
//! JSON elsewhere.

mod body_limit;
mod observe;
pub mod refusal;
mod throttle;

use std::any::Any;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::http::{Request, Uri};
use axum::response::{IntoResponse, Response};
use tower::{BoxError, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use tracing::Level;

use crate::app::App;
use crate::auth_throttle::AuthThrottle;
use crate::endpoint::Endpoint;
use crate::error::OwsError;
use refusal::Refusal;

/// Wraps the routes in the server's layers: `ows` are the routes under the protected
/// path, `management` every other route and the fallback.
pub fn apply(app: &App, ows: Router<App>, management: Router<App>) -> Router<App> {
    let config = &app.config;
    let protected: Arc<str> = Arc::from(config.protected_path.as_str());

    // 7, 6, 5: the management routes' own layers, innermost first.
    let management = management
        .layer(axum::middleware::from_fn_with_state(
            body_limit::Limit {
                bytes: config.max_body_size,
                protected: protected.clone(),
            },
            body_limit::limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            throttle::Throttle {
                table: Arc::new(AuthThrottle::new()),
                trusted: config.trusted_proxies.clone().map(Arc::from),
                protected: protected.clone(),
            },
            throttle::throttle,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new({
                    let protected = protected.clone();
                    move |uri: Uri, err: BoxError| refuse(protected, uri, err)
                }))
                .timeout(config.request_timeout),
        );
    let mut router = ows.merge(management);

    // 4: the concurrency limit, over every route.
    if let Some(max) = config.max_concurrent_requests {
        router = router.layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new({
                    let protected = protected.clone();
                    move |uri: Uri, err: BoxError| refuse(protected, uri, err)
                }))
                .load_shed()
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(max)),
        );
    }

    // 3: panics become reports; the panic itself is logged.
    router = router.layer(CatchPanicLayer::custom(panic_response));

    // 2: the access log and the metrics, when anyone reads them.
    if let Some(observer) = observe::Observer::new(app, protected) {
        router = router.layer(axum::middleware::from_fn_with_state(
            Arc::new(observer),
            observe::observe,
        ));
    }

    // 1: one span per request with method, path and status, at DEBUG. Never the query or
    // an extra path: they may carry tokens and client secrets.
    if !debug_enabled() {
        return router;
    }
    router.layer(
        TraceLayer::new_for_http().make_span_with(|request: &Request<Body>| {
            tracing::debug_span!(
                "request",
                method = %request.method(),
                path = %loggable_path(request.uri().path()),
            )
        }),
    )
}

/// The answer to a layer's error (a timeout or a shed request), in the endpoint's language.
async fn refuse(protected: Arc<str>, uri: Uri, err: BoxError) -> Response {
    let endpoint = Endpoint::of(uri.path(), &protected);
    let refusal = if err.is::<tower::load_shed::error::Overloaded>() {
        tracing::warn!(
            route = endpoint.as_str(),
            "request refused: the server is at twitcher.max_concurrent_requests"
        );
        Refusal::Overloaded
    } else if err.is::<tower::timeout::error::Elapsed>() {
        tracing::warn!(
            route = endpoint.as_str(),
            "request timed out (twitcher.request_timeout)"
        );
        Refusal::TimedOut
    } else {
        tracing::error!(error = %err, "a layer failed");
        Refusal::Internal
    };
    refusal.response(endpoint.language())
}

/// Whether request logging is wanted (decided once, when the router is built).
fn debug_enabled() -> bool {
    tracing::enabled!(Level::DEBUG) || tracing::enabled!(target: "tower_http", Level::DEBUG)
}

/// The first three segments of a path (`/ows/proxy/emu`), `/…` for the rest.
fn loggable_path(path: &str) -> String {
    let mut ends = path.match_indices('/').map(|(i, _)| i).skip(3);
    match ends.next() {
        Some(cut) => format!("{}/…", &path[..cut]),
        None => path.to_string(),
    }
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    OwsError::internal("handler panicked", detail).into_response()
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn logged_paths_hold_no_path_token() {
        assert_eq!(loggable_path("/ows/proxy/emu"), "/ows/proxy/emu");
        assert_eq!(loggable_path("/ows/proxy/emu/secret"), "/ows/proxy/emu/…");
        assert_eq!(loggable_path("/services/x"), "/services/x");
        assert_eq!(loggable_path("/"), "/");
    }
}
