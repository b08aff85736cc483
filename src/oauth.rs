//! The OAuth2 endpoints of the 0.6 series: `/oauth/client` registers a client (basic auth
//! of the management user), `/oauth/token` runs the client-credentials grant (RFC 6749
//! §4.4) and answers with the token response or the RFC 6749 §5.2 error JSON. The token
//! endpoint takes POST and, as 0.6 did (its demo notebook used it), GET with the
//! parameters in the query; other methods get a JSON error, never an empty page.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oauth2::StandardErrorResponse;
use oauth2::basic::BasicErrorResponseType;
use serde_json::{Value, json};

use crate::app::App;
use crate::basic_auth;
use crate::json::{PyJson, to_python_json};
use crate::store::OAuthClient;
use crate::tokens::TokenError;

/// Largest form body read from an OAuth request.
const MAX_FORM: usize = 64 * 1024;

/// An OAuth2 error response (RFC 6749 §5.2).
#[derive(Debug)]
pub struct OAuthError {
    kind: BasicErrorResponseType,
    description: Option<&'static str>,
    /// `state` of the request, echoed back as the original did.
    state: Option<String>,
    /// The client tried HTTP basic authentication (then a 401 must carry a challenge).
    used_basic: bool,
}

impl OAuthError {
    fn new(kind: BasicErrorResponseType, description: Option<&'static str>) -> Self {
        OAuthError {
            kind,
            description,
            state: None,
            used_basic: false,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = match self.kind {
            BasicErrorResponseType::InvalidClient => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        };
        let body =
            StandardErrorResponse::new(self.kind, self.description.map(str::to_string), None);
        let mut value =
            serde_json::to_value(&body).unwrap_or_else(|_| json!({"error": "server_error"}));
        if let (Some(state), Value::Object(map)) = (self.state, &mut value) {
            map.insert("state".into(), Value::String(state));
        }
        let mut response = token_endpoint_response(status, to_python_json(&value));
        if status == StatusCode::UNAUTHORIZED && self.used_basic {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, basic_auth::challenge());
        }
        response
    }
}

/// A method the token endpoint does not take (HEAD included: it would issue a token
/// nobody sees): 405 with `Allow` and the RFC 6749 error JSON.
#[derive(Debug)]
pub struct TokenMethodNotAllowed;

impl IntoResponse for TokenMethodNotAllowed {
    fn into_response(self) -> Response {
        let body = StandardErrorResponse::new(
            BasicErrorResponseType::InvalidRequest,
            Some("The token endpoint accepts GET and POST requests.".to_string()),
            None,
        );
        let value =
            serde_json::to_value(&body).unwrap_or_else(|_| json!({"error": "invalid_request"}));
        let mut response =
            token_endpoint_response(StatusCode::METHOD_NOT_ALLOWED, to_python_json(&value));
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        response
    }
}

/// `/oauth/token` with any method but GET and POST.
pub async fn token_method_not_allowed() -> TokenMethodNotAllowed {
    TokenMethodNotAllowed
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

/// The 401 of the management endpoints: a JSON error with a basic-auth challenge.
pub fn unauthorized() -> Response {
    let mut response = PyJson(
        StatusCode::UNAUTHORIZED,
        json!({
            "message": "This server could not verify that you are authorized to access the resource. Give the management user's credentials.",
            "code": "401 Unauthorized",
            "title": "Unauthorized",
        }),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, basic_auth::challenge());
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
pub async fn register_client(State(app): State<App>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if !basic_auth::management_allowed(&app.config, &parts.headers) {
        return unauthorized();
    }
    let params = match crate::form::params(&parts.headers, parts.uri.query(), body, MAX_FORM).await
    {
        Ok(p) => p,
        Err(response) => return response,
    };
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
    if let Err(e) = app.store.save_client(&client).await {
        tracing::error!(error = %e, "saving an OAuth client failed");
        return PyJson(StatusCode::INTERNAL_SERVER_ERROR, json!({"message": "internal error", "code": "500 Internal Server Error", "title": "Internal Server Error"})).into_response();
    }
    let scopes: Vec<&str> = client.default_scope.split_whitespace().collect();
    PyJson(
        StatusCode::OK,
        json!({
            "name": name,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "redirect_uri": redirect_uris.split_whitespace().next().unwrap_or(""),
            "scope": scopes,
        }),
    )
    .into_response()
}

/// `/oauth/token` (GET or POST): the client-credentials grant, with parameters from the
/// query string and a form body.
pub async fn token(State(app): State<App>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let params = match crate::form::params(&parts.headers, parts.uri.query(), body, MAX_FORM).await
    {
        Ok(p) => p,
        Err(response) => return response,
    };
    let state = get(&params, "state").map(str::to_string);
    match grant(&app, &parts.headers, &params).await {
        Ok(mut value) => {
            if let (Some(state), Value::Object(map)) = (state, &mut value) {
                map.insert("state".into(), Value::String(state));
            }
            token_endpoint_response(StatusCode::OK, to_python_json(&value))
        }
        Err(mut e) => {
            e.state = state;
            e.into_response()
        }
    }
}

async fn grant(
    app: &App,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<Value, OAuthError> {
    use BasicErrorResponseType as E;
    match get(params, "grant_type") {
        None | Some("") => {
            return Err(OAuthError::new(
                E::InvalidRequest,
                Some("Request is missing grant type."),
            ));
        }
        Some("client_credentials") => {}
        Some(_) => return Err(OAuthError::new(E::UnsupportedGrantType, None)),
    }
    if params.iter().filter(|(k, _)| k == "scope").count() > 1 {
        return Err(OAuthError::new(
            E::InvalidRequest,
            Some("Duplicate scope parameter."),
        ));
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
        (None, _, None) => return Err(OAuthError::new(E::InvalidClient, None)),
    };
    let invalid_client = || OAuthError {
        used_basic,
        ..OAuthError::new(E::InvalidClient, None)
    };
    let client = app.store.client(&id).await.map_err(|e| {
        tracing::error!(error = %e, "client lookup failed");
        OAuthError::new(E::Extension("server_error".into()), None)
    })?;
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
        return Err(OAuthError::new(E::InvalidScope, None));
    }
    let scope = if requested.is_empty() {
        allowed.join(" ")
    } else {
        requested.join(" ")
    };
    if !app.tokens.can_issue() {
        return Err(OAuthError::new(
            E::UnsupportedGrantType,
            Some("Tokens are issued by Keycloak."),
        ));
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
        .map_err(|e| {
            if !matches!(e, TokenError::Store(_)) {
                tracing::error!(error = %e, "issuing a token failed");
            }
            OAuthError::new(E::Extension("server_error".into()), None)
        })?;
    Ok(json!({
        "access_token": issued.access_token,
        "expires_in": issued.expires_in,
        "token_type": "Bearer",
        "scope": issued.scope,
    }))
}
