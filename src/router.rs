//! Every route of the server in one place: the OWS routes under the protected path, and
//! the management and informational routes; [`middleware`] puts the layers around them.

use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::{any, get};

use crate::app::App;
use crate::error::OwsError;
use crate::{api, frontpage, metrics, middleware, oauth, proxy, rpc, verify};

/// The complete application: routes, fallbacks and middleware, bound to its state.
pub fn router(app: App) -> Router {
    let ows = ows_routes(&app);
    let management = management_routes(&app);
    middleware::apply(&app, ows, management).with_state(app)
}

/// The proxy and `/ows/verify`, under `twitcher.ows_proxy_protected_path`.
fn ows_routes(app: &App) -> Router<App> {
    let protected = app.config.protected_path.as_str();
    // Anything else under the protected path names no registered service (T05 case 67's
    // report; `{*rest}` does not match an empty rest, hence `{protected}/`).
    let mut router = Router::new()
        .route(protected, any(service_not_found))
        .route(&format!("{protected}/"), any(service_not_found))
        .route(&format!("{protected}/{{*rest}}"), any(service_not_found));
    // `{name}/` is the service itself; `{*extra}` does not match an empty rest.
    if app.config.ows_proxy && !app.config.ows_proxy_delegate {
        router = router
            .route(&format!("{protected}/proxy/{{name}}"), any(proxy::handle))
            .route(&format!("{protected}/proxy/{{name}}/"), any(proxy::handle))
            .route(
                &format!("{protected}/proxy/{{name}}/{{*extra}}"),
                any(proxy::handle),
            );
    }
    router
        .route(&format!("{protected}/verify/{{name}}"), any(verify::handle))
        .route(
            &format!("{protected}/verify/{{name}}/"),
            any(verify::handle),
        )
        .route(
            &format!("{protected}/verify/{{name}}/{{*extra}}"),
            any(verify::handle),
        )
}

/// The informational routes, XML-RPC, OAuth, the REST registry, `/metrics`, and the
/// fallback for unknown paths.
fn management_routes(app: &App) -> Router<App> {
    let mut router = Router::new()
        .route("/", any(frontpage::frontpage))
        // Pyramid views without `request_method`: every method gets the same answer.
        .route("/info", any(frontpage::info))
        .route("/versions", any(frontpage::versions))
        .route("/health", get(frontpage::health));
    if app.config.metrics {
        router = router.route("/metrics", get(metrics::serve));
    }
    if app.config.oauth {
        router = router
            .route(
                "/oauth/client",
                get(oauth::register_client).post(oauth::register_client),
            )
            // GET as 0.6 took it (parameters in the query); other methods get a JSON error.
            .route(
                "/oauth/token",
                get(oauth::token)
                    .post(oauth::token)
                    .head(oauth::token_method_not_allowed)
                    .fallback(oauth::token_method_not_allowed),
            );
    }
    router = router
        .route(
            "/services",
            get(api::list).post(api::register).delete(api::clear),
        )
        .route("/services/{name}", get(api::get).delete(api::delete))
        .route("/__api__", get(api::openapi));
    if app.config.rpcinterface {
        router = router.route("/RPC2", any(rpc::handle));
    }
    router.fallback(not_found)
}

async fn service_not_found() -> impl IntoResponse {
    OwsError::ServiceNotFound
}

/// Unknown paths: an OWS report naming the (decoded) path, as the original answered.
async fn not_found(request: Request) -> impl IntoResponse {
    let path = percent_encoding::percent_decode_str(request.uri().path())
        .decode_utf8_lossy()
        .into_owned();
    OwsError::NotFound(path)
}
