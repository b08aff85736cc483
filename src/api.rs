//! The REST service registry of the 0.6 series: `GET/POST/DELETE /services`,
//! `GET/DELETE /services/{name}`, and its OpenAPI document at `/__api__`.
//! Reads are open (unless `twitcher.rest_read_auth`), but only the management user's
//! reads show the passwords inside service URLs; writes need the management user's basic
//! auth or a Bearer token with scope `register`.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::basic_auth;
use crate::json::{JsonError, PyJson};
use crate::registry::{self, RegistryError, ServiceFields, Viewer};
use crate::security;
use crate::store::Service;
use crate::tokens::{Scope, TokenError};

/// The OpenAPI 3 description of the REST interface.
pub const OPENAPI: &str = include_str!("api/openapi.json");

/// A service as the 0.6 REST interface showed it (member order matters to printing
/// clients), its URL as `viewer` may see it.
pub fn service_json(s: &Service, viewer: Viewer) -> Value {
    json!({
        "url": viewer.url(&s.url),
        "name": s.name,
        "type": s.service_type,
        "purl": s.purl,
        "auth": s.auth,
        "public": s.is_public(),
        "verify": s.verify,
    })
}

/// Reads are open, but credentials that are sent must be right: a client with a wrong
/// password hears so (as from the original) instead of silently reading anonymously.
/// Returns who reads: the management user (right basic auth of a configured user, or a
/// `register` token) sees service URLs whole, anyone else without their passwords.
async fn require_read(app: &App, headers: &HeaderMap) -> Result<Viewer, JsonError> {
    if app.config.rest_read_auth {
        require_write(app, headers).await?;
    }
    if let Some(token) = security::bearer_token(headers) {
        // Any valid token may read; only `register` may write, and see passwords.
        let now = crate::clock::now();
        let store = app.store.as_ref();
        for (scope, viewer) in [
            (Scope::Register, Viewer::Manager),
            (Scope::Compute, Viewer::Anonymous),
        ] {
            match app.tokens.check(store, token, scope, now).await {
                Ok(()) => return Ok(viewer),
                Err(TokenError::Store(e)) => return Err(e.into()),
                Err(_) => {}
            }
        }
        return Err(JsonError::Unauthorized);
    }
    if basic_auth::is_manager(&app.config, headers) {
        return Ok(Viewer::Manager);
    }
    if headers.contains_key(header::AUTHORIZATION) {
        require_write(app, headers).await?;
    }
    Ok(Viewer::Anonymous)
}

/// Basic auth of the management user, or a Bearer token with scope `register`. Without
/// a configured management user and without credentials, the registry is open (as XML-RPC).
async fn require_write(app: &App, headers: &HeaderMap) -> Result<(), JsonError> {
    if let Some(token) = security::bearer_token(headers) {
        return app
            .tokens
            .check(
                app.store.as_ref(),
                token,
                Scope::Register,
                crate::clock::now(),
            )
            .await
            .map_err(|e| match e {
                TokenError::Store(e) => e.into(),
                _ => JsonError::Unauthorized,
            });
    }
    if basic_auth::management_allowed(&app.config, headers) {
        Ok(())
    } else {
        Err(JsonError::Unauthorized)
    }
}

/// `GET /services`.
pub async fn list(State(app): State<App>, headers: HeaderMap) -> Result<PyJson<Value>, JsonError> {
    let viewer = require_read(&app, &headers).await?;
    let services = app.store.list_services().await?;
    Ok(PyJson(
        StatusCode::OK,
        Value::Array(services.iter().map(|s| service_json(s, viewer)).collect()),
    ))
}

/// `GET /services/{name}`: the service, or `{}` when unknown (as the original).
pub async fn get(
    State(app): State<App>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<PyJson<Value>, JsonError> {
    let viewer = require_read(&app, &headers).await?;
    let found = app.store.service_by_name(&name).await?;
    Ok(PyJson(
        StatusCode::OK,
        found
            .as_ref()
            .map_or_else(|| json!({}), |s| service_json(s, viewer)),
    ))
}

/// `DELETE /services/{name}`: true, or false when there was none.
pub async fn delete(
    State(app): State<App>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<PyJson<Value>, JsonError> {
    require_write(&app, &headers).await?;
    let deleted = app.store.delete_service(&name).await?;
    Ok(PyJson(StatusCode::OK, Value::Bool(deleted)))
}

/// `DELETE /services`: removes every service.
pub async fn clear(State(app): State<App>, headers: HeaderMap) -> Result<PyJson<Value>, JsonError> {
    require_write(&app, &headers).await?;
    app.store.clear_services().await?;
    Ok(PyJson(StatusCode::OK, Value::Bool(true)))
}

/// `POST /services`: registers (or updates in place) a service from JSON or a form.
pub async fn register(
    State(app): State<App>,
    request: Request,
) -> Result<PyJson<Value>, JsonError> {
    let (parts, body) = request.into_parts();
    require_write(&app, &parts.headers).await?;
    let fields = read_fields(&parts.headers, body).await?;
    let service = validate(fields)?;
    let Some(service) = service else {
        // Not an http(s) URL: nothing registered, `{}` as the original answered.
        return Ok(PyJson(StatusCode::OK, json!({})));
    };
    app.store.save_service(&service).await?;
    // The writer sent the URL: it is answered whole.
    Ok(PyJson(
        StatusCode::OK,
        service_json(&service, Viewer::Manager),
    ))
}

/// The body as a JSON object: JSON with or without a JSON content type (the 0.6
/// twitcherctl sent none), or a form.
async fn read_fields(headers: &HeaderMap, body: Body) -> Result<Map<String, Value>, JsonError> {
    // Bounded by the body limit layer (`middleware`), which also answers its 413.
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|_| JsonError::payload_too_large())?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match content_type.as_deref() {
        Some("application/x-www-form-urlencoded") => Ok(url::form_urlencoded::parse(&bytes)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect()),
        None | Some("application/json") | Some("") => {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Map::new());
            }
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => Ok(map),
                Ok(_) => Err(JsonError::Invalid(vec![(
                    "",
                    "The body must be a JSON object.".into(),
                )])),
                Err(e) => Err(JsonError::Invalid(vec![
                    ("", format!("Invalid JSON: {e}")),
                    ("", "Required".into()),
                ])),
            }
        }
        Some(other) => Err(JsonError::Invalid(vec![(
            "",
            format!("Content-Type {other} is not supported: send JSON or a form."),
        )])),
    }
}

fn validate(fields: Map<String, Value>) -> Result<Option<Service>, JsonError> {
    let mut errors = Vec::new();
    let mut text = |key: &'static str, required: bool| -> Option<String> {
        match fields.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            None | Some(Value::Null) if required => {
                errors.push((key, "Required".to_string()));
                None
            }
            None | Some(Value::Null) => None,
            Some(_) => {
                errors.push((key, format!("{key} must be a string")));
                None
            }
        }
    };
    let name = text("name", true);
    let url = text("url", true);
    let service_type = text("type", false);
    let purl = text("purl", false);
    let auth = text("auth", false);
    let mut flag = |key: &'static str| -> Option<bool> {
        let read = match fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => registry::text_flag(key, s),
            Some(Value::Number(n)) => n
                .as_i64()
                .map_or(Err(RegistryError::NotABoolean { field: key }), |n| {
                    registry::number_flag(key, n).map(Some)
                }),
            Some(_) => Err(RegistryError::NotABoolean { field: key }),
        };
        read.unwrap_or_else(|e| {
            errors.push(invalid_field(e));
            None
        })
    };
    let verify = flag("verify");
    let public = flag("public");
    let (Some(name), Some(url)) = (name, url) else {
        return Err(JsonError::Invalid(errors));
    };
    if !errors.is_empty() {
        return Err(JsonError::Invalid(errors));
    }
    registry::build_service(
        &name,
        &url,
        ServiceFields {
            service_type,
            purl,
            public,
            auth,
            verify,
        },
    )
    .map_err(|e| JsonError::Invalid(vec![invalid_field(e)]))
}

/// A refused registration as the `(field, description)` of a validation error.
fn invalid_field(e: RegistryError) -> (&'static str, String) {
    let field = match e {
        RegistryError::NameTooShort => "name",
        RegistryError::NotABoolean { field } => field,
    };
    (field, e.to_string())
}

/// `GET /__api__`: the OpenAPI document.
pub async fn openapi() -> Response {
    let mut response = OPENAPI.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
