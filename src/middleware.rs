//! The cross-cutting layers, outermost first.

use std::any::Any;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use tracing::Level;

use crate::app::App;
use crate::error::OwsError;

/// Wraps the routes in the server's layers.
pub fn apply(router: Router<App>) -> Router<App> {
    // A panic in a handler becomes a generic OWS report, never a dropped connection or a
    // Rust message; the panic itself is logged.
    let router = router.layer(CatchPanicLayer::custom(panic_response));
    // One span per request with method, path and status, at DEBUG. Never the query or an
    // extra path: they may carry tokens and client secrets. Left out entirely when DEBUG
    // is off: even disabled, it costs a refusal several percent.
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
