//! The OAuth2 client-credentials grant (`gentoken -i ID -s SECRET`), made with the `oauth2`
//! crate over our own [`Transport`] (so `-k` and `--debug` apply to it too).
//!
//! The answer is kept as the server's JSON object, member order included, and shaped the
//! way the original client (requests-oauthlib) showed it: `scope` as a list, plus
//! `expires_at` (seconds since the epoch, a float).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::http::header::CONTENT_TYPE;
use oauth2::{
    AccessToken, ClientId, ClientSecret, EndpointNotSet, EndpointSet, HttpRequest, HttpResponse,
    RefreshToken, RequestTokenError, Scope, StandardRevocableToken, TokenResponse, TokenUrl,
};
use reqwest::StatusCode;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};
use url::Url;

use super::transport::Transport;
use crate::error::{ClientError, Interface};

/// What `gentoken` asks the token endpoint for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// OAuth client id (from `add`).
    pub client_id: String,
    /// OAuth client secret (from `add`).
    pub client_secret: String,
    /// Requested scopes, e.g. `compute`, `register`.
    pub scopes: Vec<String>,
    /// Ask Keycloak (`/auth/realms/demo/protocol/openid-connect/token`) instead of twitcher.
    pub keycloak: bool,
}

type TokenClient = oauth2::Client<
    BasicErrorResponse,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Requests a token at `token_url` and returns the answer as the original printed it.
pub(crate) fn client_credentials(
    transport: &Transport,
    token_url: &Url,
    request: &TokenRequest,
) -> Result<Value, ClientError> {
    let client: TokenClient = oauth2::Client::new(ClientId::new(request.client_id.clone()))
        .set_client_secret(ClientSecret::new(request.client_secret.clone()))
        .set_token_uri(TokenUrl::from_url(token_url.clone()));
    // The credentials go as HTTP basic auth (the crate's default) and also in the body, as
    // the original client sent them: servers differ in which one they read.
    let exchange = client
        .exchange_client_credentials()
        .add_scopes(request.scopes.iter().cloned().map(Scope::new))
        .add_extra_param("client_id", request.client_id.clone())
        .add_extra_param("client_secret", request.client_secret.clone());
    let http = |req: HttpRequest| send(transport, req);
    match exchange.request(&http) {
        Ok(answer) => Ok(answer.into_value()),
        Err(RequestTokenError::ServerResponse(e)) => Err(ClientError::OAuth {
            error: e.error().to_string(),
            description: e.error_description().cloned().unwrap_or_default(),
        }),
        Err(RequestTokenError::Request(e)) => Err(e),
        Err(RequestTokenError::Parse(e, body)) => Err(ClientError::BadResponse {
            url: token_url.to_string(),
            detail: format!(
                "{e}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ),
        }),
        Err(RequestTokenError::Other(detail)) => Err(ClientError::BadResponse {
            url: token_url.to_string(),
            detail,
        }),
    }
}

/// The `oauth2` crate's HTTP hook. Answers that are not OAuth answers at all (404 page,
/// 401 page of a proxy) become our own errors here, so they read well.
fn send(transport: &Transport, request: HttpRequest) -> Result<HttpResponse, ClientError> {
    let (parts, body) = request.into_parts();
    let url = Url::parse(&parts.uri.to_string()).map_err(|e| ClientError::BadServerUrl {
        url: parts.uri.to_string(),
        reason: e.to_string(),
    })?;
    let reply = transport.send(
        transport
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body),
    )?;
    if !reply.is_json() && reply.status != StatusCode::OK {
        return Err(reply.error(Interface::Rest));
    }
    let mut response = HttpResponse::new(reply.body);
    *response.status_mut() = reply.status;
    if let Ok(value) = reply.content_type.parse() {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    Ok(response)
}

/// A token answer that keeps every member of the server's JSON in order.
#[derive(Debug)]
struct TokenAnswer {
    raw: Map<String, Value>,
    access_token: AccessToken,
    token_type: BasicTokenType,
    expires_in: Option<Duration>,
    scopes: Option<Vec<Scope>>,
}

impl TokenAnswer {
    fn from_map(raw: Map<String, Value>) -> Result<Self, String> {
        let access_token = raw
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or("missing access_token")?
            .to_owned();
        let token_type = raw
            .get("token_type")
            .and_then(Value::as_str)
            .ok_or("missing token_type")?;
        let token_type: BasicTokenType =
            serde_json::from_value(Value::String(token_type.to_ascii_lowercase()))
                .map_err(|e| e.to_string())?;
        let expires_in = raw
            .get("expires_in")
            .and_then(Value::as_f64)
            .filter(|s| *s >= 0.0)
            .map(Duration::from_secs_f64);
        let scopes =
            scope_list(raw.get("scope")).map(|list| list.into_iter().map(Scope::new).collect());
        Ok(TokenAnswer {
            access_token: AccessToken::new(access_token),
            token_type,
            expires_in,
            scopes,
            raw,
        })
    }

    /// The JSON object with `scope` as a list and `expires_at` added.
    fn into_value(self) -> Value {
        let mut map = self.raw;
        if let Some(list) = scope_list(map.get("scope")) {
            map.insert("scope".into(), Value::from(list));
        }
        if let Some(expires_in) = self.expires_in.filter(|_| !map.contains_key("expires_at")) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let at = (now + expires_in).as_secs_f64();
            if let Some(n) = Number::from_f64(at) {
                map.insert("expires_at".into(), Value::Number(n));
            }
        }
        Value::Object(map)
    }
}

/// `"compute register"` or `["compute", "register"]` as a list of scopes.
fn scope_list(scope: Option<&Value>) -> Option<Vec<String>> {
    match scope? {
        Value::String(s) => Some(s.split_whitespace().map(str::to_owned).collect()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        _ => None,
    }
}

impl<'de> Deserialize<'de> for TokenAnswer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        TokenAnswer::from_map(Map::deserialize(deserializer)?).map_err(D::Error::custom)
    }
}

impl Serialize for TokenAnswer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(serializer)
    }
}

impl TokenResponse for TokenAnswer {
    type TokenType = BasicTokenType;

    fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    fn token_type(&self) -> &BasicTokenType {
        &self.token_type
    }

    fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }

    fn refresh_token(&self) -> Option<&RefreshToken> {
        None
    }

    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.scopes.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_is_shaped_like_the_originals_output() {
        let raw: Map<String, Value> = serde_json::from_str(
            r#"{"access_token": "kYTsQwbnlL69zg0XJ0rk69vsO6vEvY", "expires_in": 3600, "token_type": "Bearer", "scope": "compute register"}"#,
        )
        .unwrap();
        let answer = TokenAnswer::from_map(raw).unwrap();
        assert_eq!(answer.token_type, BasicTokenType::Bearer);
        assert_eq!(answer.scopes().unwrap().len(), 2);
        let value = answer.into_value();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "access_token",
                "expires_in",
                "token_type",
                "scope",
                "expires_at"
            ]
        );
        assert_eq!(value["scope"], serde_json::json!(["compute", "register"]));
        assert!(value["expires_at"].as_f64().unwrap() > 1.7e9);
    }

    #[test]
    fn answers_without_a_token_are_refused() {
        let raw: Map<String, Value> = serde_json::from_str(r#"{"token_type": "Bearer"}"#).unwrap();
        assert!(TokenAnswer::from_map(raw).is_err());
    }
}
