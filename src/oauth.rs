//! The OAuth2 endpoints of the 0.6 series: `/oauth/client` registers a client (basic auth
//! of the management user), `/oauth/token` runs the client-credentials grant (RFC 6749
//! §4.4) and answers with the token response or the RFC 6749 §5.2 error JSON. The token
//! endpoint takes POST and, as 0.6 did (its demo notebook used it), GET with the
//! parameters in the query; other methods get a JSON error, never an empty page.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::app::App;
use crate::basic_auth;
use crate::json::{JsonError, PyJson, to_python_json};
use crate::store::OAuthClient;
use crate::tokens::TokenError;

mod error;

pub use error::OAuthError;

/// `/oauth/token` with any method but GET and POST.
pub async fn token_method_not_allowed() -> OAuthError {
    OAuthError::MethodNotAllowed
}

/// Token endpoint answers are JSON that must not be cached (RFC 6749 §5.1).
fn token_endpoint_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn get<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `/oauth/client`: registers a client with the default scopes.
pub async fn register_client(
    State(app): State<App>,
    request: Request,
) -> Result<PyJson<Value>, JsonError> {
    let (parts, body) = request.into_parts();
    if !basic_auth::management_allowed(&app.config, &parts.headers) {
        return Err(JsonError::Unauthorized);
    }
    // Bodies are bounded by the body limit layer (`middleware`), which answers its 413.
    let params = crate::form::params(&parts.headers, parts.uri.query(), body, usize::MAX)
        .await
        .map_err(|_| JsonError::payload_too_large())?;
    let name = get(&params, "name").map(str::to_string);
    let redirect_uris = get(&params, "redirect_uri")
        .unwrap_or("")
        .trim()
        .to_string();
    let client = OAuthClient {
        client_id: uuid::Uuid::new_v4().simple().to_string(),
        client_secret: uuid::Uuid::new_v4().simple().to_string(),
        name: name.clone().unwrap_or_default(),
        redirect_uris: redirect_uris.clone(),
        default_scope: app.config.default_client_scope.clone(),
    };
    app.store.save_client(&client).await?;
    let scopes: Vec<&str> = client.default_scope.split_whitespace().collect();
    Ok(PyJson(
        StatusCode::OK,
        json!({
            "name": name,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "redirect_uri": redirect_uris.split_whitespace().next().unwrap_or(""),
            "scope": scopes,
        }),
    ))
}

/// `/oauth/token` (GET or POST): the client-credentials grant, with parameters from the
/// query string and a form body.
pub async fn token(State(app): State<App>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let params =
        match crate::form::params(&parts.headers, parts.uri.query(), body, usize::MAX).await {
            Ok(p) => p,
            Err(_) => return OAuthError::payload_too_large().into_response(),
        };
    let state = get(&params, "state").map(str::to_string);
    match grant(&app, &parts.headers, &params).await {
        Ok(mut value) => {
            if let (Some(state), Value::Object(map)) = (state, &mut value) {
                map.insert("state".into(), Value::String(state));
            }
            token_endpoint_response(StatusCode::OK, to_python_json(&value))
        }
        Err(e) => e.into_response_with_state(state),
    }
}

async fn grant(
    app: &App,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<Value, OAuthError> {
    match get(params, "grant_type") {
        None | Some("") => {
            return Err(OAuthError::InvalidRequest("Request is missing grant type."));
        }
        Some("client_credentials") => {}
        Some(_) => return Err(OAuthError::UnsupportedGrantType(None)),
    }
    if params.iter().filter(|(k, _)| k == "scope").count() > 1 {
        return Err(OAuthError::InvalidRequest("Duplicate scope parameter."));
    }
    // Credentials in the body win: the 0.6 twitcherctl sends them there *and* as basic auth.
    let basic = basic_auth::credentials(headers);
    let used_basic = get(params, "client_id").is_none() && basic.is_some();
    let (id, secret) = match (
        get(params, "client_id"),
        get(params, "client_secret"),
        &basic,
    ) {
        (Some(id), secret, _) => (id.to_string(), secret.unwrap_or("").to_string()),
        (None, _, Some((id, secret))) => (id.clone(), secret.clone()),
        (None, _, None) => return Err(OAuthError::InvalidClient { basic: false }),
    };
    let invalid_client = || OAuthError::InvalidClient { basic: used_basic };
    let client = app.store.client(&id).await?;
    let Some(client) = client else {
        return Err(invalid_client());
    };
    if !basic_auth::constant_time_eq(client.client_secret.as_bytes(), secret.as_bytes()) {
        return Err(invalid_client());
    }
    let allowed: Vec<&str> = client.default_scope.split_whitespace().collect();
    let requested: Vec<&str> = get(params, "scope")
        .map(|s| s.split_whitespace().collect())
        .unwrap_or_default();
    if requested.iter().any(|s| !allowed.contains(s)) {
        return Err(OAuthError::InvalidScope);
    }
    let scope = granted_scope(&allowed, &requested);
    if !app.tokens.can_issue() {
        return Err(OAuthError::UnsupportedGrantType(Some(
            "Tokens are issued by Keycloak.",
        )));
    }
    let issued = app
        .tokens
        .issue(
            app.store.as_ref(),
            &client.client_id,
            &scope,
            crate::clock::now(),
        )
        .await
        .map_err(|e| match e {
            TokenError::Store(e) => OAuthError::from(e),
            e => {
                tracing::error!(error = %e, "issuing a token failed");
                OAuthError::Internal
            }
        })?;
    Ok(json!({
        "access_token": issued.access_token,
        "expires_in": issued.expires_in,
        "token_type": "Bearer",
        "scope": issued.scope,
    }))
}

/// The scopes a token gets: those asked for, or, when none are, `compute` alone if the
/// client may compute (what 0.6.0 gave its clients; `register` only when asked for),
/// else the client's scopes (a register-only client, T06 case 132).
fn granted_scope(allowed: &[&str], requested: &[&str]) -> String {
    const DEFAULT: &str = "compute";
    if !requested.is_empty() {
        requested.join(" ")
    } else if allowed.contains(&DEFAULT) {
        DEFAULT.to_string()
    } else {
        allowed.join(" ")
    }
}

#[cfg(test)]
mod scope_tests {
    use super::granted_scope;

    #[test]
    fn without_a_scope_only_compute_is_granted() {
        assert_eq!(granted_scope(&["compute", "register"], &[]), "compute");
        assert_eq!(granted_scope(&["register", "compute"], &[]), "compute");
        assert_eq!(granted_scope(&["register"], &[]), "register");
        assert_eq!(
            granted_scope(&["compute", "register"], &["register"]),
            "register"
        );
        assert_eq!(
            granted_scope(&["compute", "register"], &["compute", "register"]),
            "compute register"
        );
    }
}
