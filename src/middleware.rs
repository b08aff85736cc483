//! The cross-cutting layers, outermost first.

use std::any::Any;

use axum::Router;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::app::App;
use crate::error::OwsError;

/// Wraps the routes in the server's layers.
pub fn apply(router: Router<App>) -> Router<App> {
    router
        // A panic in a handler becomes a generic OWS report, never a dropped connection
        // or a Rust message; the panic itself is logged.
        .layer(CatchPanicLayer::custom(panic_response))
        // One span per request with method, path and status, at DEBUG.
        .layer(TraceLayer::new_for_http())
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    OwsError::internal("handler panicked", detail).into_response()
}
