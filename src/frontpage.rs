//! The informational JSON routes: `/`, `/info`, `/versions`, and `/health`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::app::App;
use crate::json::PyJson;

/// This server's version, reported where the original reported its own.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `/` (any method): links built from `twitcher.url`, not from the request's Host.
pub async fn frontpage(State(app): State<App>) -> impl IntoResponse {
    let base = app.config.url.as_str().trim_end_matches('/');
    PyJson(
        StatusCode::OK,
        json!({
            "message": "Twitcher Frontpage",
            "information_uri": format!("{base}/info"),
            "versions_uri": format!("{base}/versions"),
            "services_uri": format!("{base}/services"),
            "client_uri": format!("{base}/oauth/client"),
            "token_uri": format!("{base}/oauth/token"),
            "openapi_uri": format!("{base}/__api__"),
        }),
    )
}

/// `/info` (any method): package information.
pub async fn info() -> impl IntoResponse {
    PyJson(
        StatusCode::OK,
        json!({
            "author": "The twitcher developers",
            "doc": "Security Proxy for OGC Services like WPS.",
            "email": "",
            "package": "twitcher",
            "version": VERSION,
        }),
    )
}

/// `/versions` (any method): the application and adapter versions.
pub async fn versions() -> impl IntoResponse {
    PyJson(
        StatusCode::OK,
        json!([
            {"name": "Twitcher", "version": VERSION, "type": "application"},
            {"name": "default", "version": VERSION, "type": "adapter"},
        ]),
    )
}

/// `/health`: 200 when the database answers, 503 otherwise (for load balancers).
pub async fn health(State(app): State<App>) -> impl IntoResponse {
    match app.store.ping().await {
        Ok(()) => PyJson(StatusCode::OK, json!({"status": "ok"})),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unavailable");
            PyJson(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "unavailable"}),
            )
        }
    }
}
