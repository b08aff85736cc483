//! [`Client`]: one method per twitcher operation, over REST, OAuth2 or XML-RPC.
//!
//! twitcher 0.5 spoke XML-RPC at `/RPC2`; 0.6 replaced it with REST (`/services`) and
//! OAuth2 (`/oauth/…`); our server speaks both. Registry operations pick REST when
//! credentials for it were given (`-t`, or `-u/-p`) and XML-RPC otherwise, and fall back to
//! the other interface when the server lacks the chosen one (404), or refuses an anonymous
//! request that the other one may allow (the tutorial's `twitcherctl -k list`).
//! Results come back as `serde_json::Value`s, member order kept, ready for printing.

mod oauth;
mod transport;

use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};
use url::Url;

pub use self::oauth::TokenRequest;
use self::transport::{Reply, Transport};
use crate::error::{ClientError, Interface};
use crate::xmlrpc;

/// Where the server is and how to talk to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Base URL of the server, e.g. `http://localhost:8000` (a path prefix is kept).
    pub server: String,
    /// `-u/--username` for HTTP basic auth.
    pub username: Option<String>,
    /// `-p/--password` for HTTP basic auth.
    pub password: Option<String>,
    /// `-t/--token`: an OAuth access token sent as `Authorization: Bearer`.
    pub token: Option<String>,
    /// `-k/--insecure`: do not check TLS certificates.
    pub insecure: bool,
    /// `--debug`: log every HTTP exchange to stderr.
    pub debug: bool,
}

/// A service registration as `register` sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Service name (the server normalises it).
    pub name: String,
    /// URL of the OWS service behind the proxy.
    pub url: String,
    /// `wps`, `wms`, …
    pub service_type: String,
    /// Public URL shown in rewritten capabilities; empty for the proxy URL.
    pub purl: String,
    /// `--public`: no token needed for any request.
    pub public: bool,
    /// `token` or `cert`.
    pub auth: String,
    /// Whether the proxy checks the service's TLS certificate.
    pub verify: bool,
}

/// A connection to one twitcher server.
pub struct Client {
    transport: Transport,
    base: Url,
    basic: Option<(String, String)>,
    token: Option<String>,
}

impl Client {
    /// Checks the server URL and sets up HTTP; nothing is sent yet.
    pub fn new(config: &Config) -> Result<Self, ClientError> {
        let base = Url::parse(&config.server).map_err(|e| ClientError::BadServerUrl {
            url: config.server.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ClientError::BadServerUrl {
                url: config.server.clone(),
                reason: "expected an http:// or https:// URL".into(),
            });
        }
        // One of -u/-p alone still means basic auth; the missing half is empty.
        let basic = (config.username.is_some() || config.password.is_some()).then(|| {
            (
                config.username.clone().unwrap_or_default(),
                config.password.clone().unwrap_or_default(),
            )
        });
        Ok(Client {
            transport: Transport::new(config.insecure, config.debug)?,
            base,
            basic,
            token: config.token.clone(),
        })
    }

    /// `add`: registers an OAuth client application (`GET /oauth/client`, basic auth).
    pub fn add_client(&self, name: &str, redirect_uri: &str) -> Result<Value, ClientError> {
        let mut url = self.endpoint(&["oauth", "client"]);
        url.query_pairs_mut()
            .append_pair("name", name)
            .append_pair("redirect_uri", redirect_uri);
        let mut request = self
            .transport
            .request(Method::GET, url)
            .header(ACCEPT, "application/json");
        if let Some((user, password)) = &self.basic {
            request = request.basic_auth(user, Some(password));
        }
        rest_value(&self.transport.send(request)?)
    }

    /// `gentoken -i ID -s SECRET`: an OAuth2 access token (client-credentials grant).
    pub fn request_token(&self, request: &TokenRequest) -> Result<Value, ClientError> {
        let path: &[&str] = if request.keycloak {
            &[
                "auth",
                "realms",
                "demo",
                "protocol",
                "openid-connect",
                "token",
            ]
        } else {
            &["oauth", "token"]
        };
        oauth::client_credentials(&self.transport, &self.endpoint(path), request)
    }

    /// `gentoken`: an XML-RPC access token valid for `valid_in_hours`.
    pub fn generate_token(&self, valid_in_hours: i64) -> Result<Value, ClientError> {
        self.call("generate_token", &[json!(valid_in_hours)])
    }

    /// `revoke TOKEN`: true when the token existed.
    pub fn revoke_token(&self, token: &str) -> Result<Value, ClientError> {
        self.call("revoke_token", &[json!(token)])
    }

    /// `revoke -A`: removes every XML-RPC token.
    pub fn revoke_all_tokens(&self) -> Result<Value, ClientError> {
        self.call("revoke_all_tokens", &[])
    }

    /// `list`: every registered service.
    pub fn list_services(&self) -> Result<Value, ClientError> {
        self.registry(
            || rest_value(&self.rest(Method::GET, self.endpoint(&["services"]), None)?),
            || self.call("list_services", &[]),
        )
    }

    /// `register`: adds or updates a service; returns it as stored.
    pub fn register_service(&self, service: &Service) -> Result<Value, ClientError> {
        let verify = if service.verify { "true" } else { "false" };
        self.registry(
            || {
                // The body twitcherctl 0.6 sent (verify as a string), `public` only when asked.
                let mut body = json!({
                    "type": service.service_type,
                    "purl": service.purl,
                    "auth": service.auth,
                    "verify": verify,
                    "name": service.name,
                    "url": service.url,
                });
                if service.public {
                    body["public"] = Value::Bool(true);
                }
                rest_value(&self.rest(Method::POST, self.endpoint(&["services"]), Some(&body))?)
            },
            || {
                let data = json!({
                    "type": service.service_type,
                    "purl": service.purl,
                    "public": service.public,
                    "auth": service.auth,
                    "verify": verify,
                });
                self.call(
                    "register_service",
                    &[json!(service.name), json!(service.url), data],
                )
            },
        )
    }

    /// `unregister NAME`: true when the service existed.
    pub fn unregister_service(&self, name: &str) -> Result<Value, ClientError> {
        self.registry(
            || {
                let reply = self.rest(Method::DELETE, self.endpoint(&["services", name]), None)?;
                // A JSON 404 is the API saying "no such service", not a missing interface.
                if reply.status == reqwest::StatusCode::NOT_FOUND && reply.is_json() {
                    return Ok(Value::Bool(false));
                }
                rest_value(&reply)
            },
            || self.call("unregister_service", &[json!(name)]),
        )
    }

    /// `clear`: removes every service.
    pub fn clear_services(&self) -> Result<Value, ClientError> {
        self.registry(
            || rest_value(&self.rest(Method::DELETE, self.endpoint(&["services"]), None)?),
            || self.call("clear_services", &[]),
        )
    }

    /// Runs a registry operation over the preferred interface, falling back to the other.
    fn registry(
        &self,
        rest: impl FnOnce() -> Result<Value, ClientError>,
        xmlrpc: impl FnOnce() -> Result<Value, ClientError>,
    ) -> Result<Value, ClientError> {
        let anonymous = self.basic.is_none() && self.token.is_none();
        let (result, next, other) = if anonymous {
            (
                xmlrpc(),
                Interface::Rest,
                Box::new(rest) as Box<dyn FnOnce() -> _>,
            )
        } else {
            (
                rest(),
                Interface::XmlRpc,
                Box::new(xmlrpc) as Box<dyn FnOnce() -> _>,
            )
        };
        match result {
            Err(e) if e.is_absent() || (anonymous && e.is_unauthorized()) => {
                self.transport.debug(format_args!("{e}; trying {next}"));
                other()
            }
            result => result,
        }
    }

    /// `{server}/a/b`, each segment percent-encoded, any path prefix of the server kept.
    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// A REST request: bearer token if given, else basic auth if given.
    fn rest(&self, method: Method, url: Url, body: Option<&Value>) -> Result<Reply, ClientError> {
        let mut request = self
            .transport
            .request(method, url)
            .header(ACCEPT, "application/json");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        } else if let Some((user, password)) = &self.basic {
            request = request.basic_auth(user, Some(password));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.transport.send(request)
    }

    /// An XML-RPC call at `/RPC2`: basic auth if given, else the bearer token if given.
    fn call(&self, method: &str, params: &[Value]) -> Result<Value, ClientError> {
        let mut request = self
            .transport
            .request(Method::POST, self.endpoint(&["RPC2"]))
            .header(CONTENT_TYPE, "text/xml")
            .body(xmlrpc::encode_call(method, params));
        if let Some((user, password)) = &self.basic {
            request = request.basic_auth(user, Some(password));
        } else if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let reply = self.transport.send(request)?;
        if !reply.status.is_success() {
            return Err(reply.error(Interface::XmlRpc));
        }
        match xmlrpc::decode_response(&reply.body) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(fault)) => Err(ClientError::Fault {
                code: fault.code,
                message: fault.message,
            }),
            Err(e) => Err(ClientError::BadResponse {
                url: reply.url_text(),
                detail: e.to_string(),
            }),
        }
    }
}

/// A REST answer as a value, or the error its status stands for.
fn rest_value(reply: &Reply) -> Result<Value, ClientError> {
    if reply.status.is_success() {
        reply.json()
    } else {
        Err(reply.error(Interface::Rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(server: &str) -> Client {
        Client::new(&Config {
            server: server.into(),
            ..Config::default()
        })
        .unwrap()
    }

    #[test]
    fn endpoints_keep_a_path_prefix_and_encode_names() {
        assert_eq!(
            client("http://localhost:8000").endpoint(&["RPC2"]).as_str(),
            "http://localhost:8000/RPC2"
        );
        assert_eq!(
            client("http://127.0.0.1:15160/ctl/")
                .endpoint(&["services", "a b/c"])
                .as_str(),
            "http://127.0.0.1:15160/ctl/services/a%20b%2Fc"
        );
        assert_eq!(
            client("https://h/twitcher?x=1")
                .endpoint(&["oauth", "token"])
                .as_str(),
            "https://h/twitcher/oauth/token"
        );
    }

    #[test]
    fn bad_server_urls_are_refused() {
        for url in ["localhost:8000", "ftp://h/", "not a url", "mailto:x@y"] {
            let config = Config {
                server: url.into(),
                ..Config::default()
            };
            assert!(
                matches!(Client::new(&config), Err(ClientError::BadServerUrl { .. })),
                "{url}"
            );
        }
    }
}
