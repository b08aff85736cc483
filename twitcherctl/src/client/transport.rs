//! One HTTP exchange: send it, read the whole answer, log it under `--debug`, and turn
//! transport failures and error statuses into [`ClientError`]s.

use std::fmt::Display;
use std::time::Duration;

use reqwest::blocking::{Client as HttpClient, RequestBuilder};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

use crate::error::{ClientError, Credentials, Interface};

/// Connecting takes long only when something is wrong with the address.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Every twitcher answer is small; a minute means the server is stuck.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The HTTP client shared by every request of one run.
pub(crate) struct Transport {
    http: HttpClient,
    debug: bool,
}

/// A complete HTTP answer.
pub(crate) struct Reply {
    pub url: Url,
    pub status: StatusCode,
    pub content_type: String,
    pub body: Vec<u8>,
    /// The credentials the request carried.
    pub sent: Credentials,
}

impl Transport {
    /// `insecure` skips TLS certificate checks (`-k`); `debug` logs each exchange to stderr.
    pub fn new(insecure: bool, debug: bool) -> Result<Self, ClientError> {
        let http = HttpClient::builder()
            .user_agent(concat!("twitcherctl/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TIMEOUT)
            .danger_accept_invalid_certs(insecure)
            .build()
            .map_err(ClientError::Setup)?;
        Ok(Transport { http, debug })
    }

    /// Starts a request; finish it with [`Transport::send`].
    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url)
    }

    /// Sends the request and reads the whole answer, whatever its status.
    pub fn send(&self, request: RequestBuilder) -> Result<Reply, ClientError> {
        let request = request.build().map_err(|e| ClientError::Transport {
            url: String::new(),
            detail: innermost(&e),
        })?;
        let url = request.url().clone();
        let sent = credentials(request.headers());
        self.debug(format_args!(
            "{} {} ({})",
            request.method(),
            loggable(&url),
            sent.describe()
        ));
        let response = self
            .http
            .execute(request)
            .map_err(|e| transport_error(&url, &e))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response
            .bytes()
            .map_err(|e| transport_error(&url, &e))?
            .to_vec();
        self.debug(format_args!(
            "  -> {status}, {} bytes {content_type}",
            body.len()
        ));
        Ok(Reply {
            url,
            status,
            content_type,
            body,
            sent,
        })
    }

    /// Prints a line on stderr when `--debug` is on.
    pub fn debug(&self, message: impl Display) {
        if self.debug {
            eprintln!("twitcherctl: debug: {message}");
        }
    }
}

/// The URL without a password that someone may have put into `-s`.
fn loggable(url: &Url) -> Url {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    url
}

/// Which kind of credentials went out, never their value.
fn credentials(headers: &HeaderMap) -> Credentials {
    match headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        None => Credentials::None,
        Some(v) if v.starts_with("Basic ") => Credentials::Basic,
        Some(v) if v.starts_with("Bearer ") => Credentials::Bearer,
        Some(_) => Credentials::Other,
    }
}

fn transport_error(url: &Url, error: &reqwest::Error) -> ClientError {
    let url = loggable(url).to_string();
    if error.is_timeout() {
        ClientError::Timeout { url }
    } else if error.is_connect() {
        ClientError::Connect {
            url,
            detail: innermost(error),
        }
    } else {
        ClientError::Transport {
            url,
            detail: innermost(error),
        }
    }
}

/// The most specific message in an error chain ("Connection refused (os error 111)").
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

impl Reply {
    /// The request URL for messages (password hidden).
    pub fn url_text(&self) -> String {
        loggable(&self.url).to_string()
    }

    /// True for `application/json` and `…+json` bodies.
    pub fn is_json(&self) -> bool {
        let media = self
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        media == "application/json" || media.ends_with("+json")
    }

    /// True when the endpoint does not exist on this server: a 404 that is not an API
    /// answer, or twitcher 0.5's way of saying so (500 with an OWS report naming the path).
    pub fn means_absent(&self) -> bool {
        match self.status {
            StatusCode::NOT_FOUND => !self.is_json(),
            StatusCode::INTERNAL_SERVER_ERROR => {
                let text = String::from_utf8_lossy(&self.body);
                text.contains("ExceptionReport")
                    && exception_text(&text).is_some_and(|t| t.trim() == self.url.path())
            }
            _ => false,
        }
    }

    /// The body as JSON; an empty body (204 and the like) counts as `true`, "done".
    pub fn json(&self) -> Result<Value, ClientError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Bool(true));
        }
        serde_json::from_slice(&self.body).map_err(|e| ClientError::BadResponse {
            url: self.url_text(),
            detail: format!("not JSON ({e}): {}", self.snippet()),
        })
    }

    /// The error this answer stands for: absent interface, 401, 403 or another status.
    pub fn error(&self, interface: Interface) -> ClientError {
        let url = self.url_text();
        if self.means_absent() {
            return ClientError::Absent { interface, url };
        }
        match self.status {
            StatusCode::UNAUTHORIZED => ClientError::Unauthorized {
                url,
                sent: self.sent,
            },
            StatusCode::FORBIDDEN => ClientError::Forbidden {
                url,
                detail: self.detail(),
            },
            status => ClientError::Status {
                url,
                status: status.to_string(),
                detail: self.detail(),
            },
        }
    }

    /// The server's explanation in a few words, from whatever format it used.
    pub fn detail(&self) -> String {
        if self.is_json()
            && let Ok(value) = serde_json::from_slice::<Value>(&self.body)
        {
            return json_detail(&value);
        }
        let text = String::from_utf8_lossy(&self.body);
        if let Some(t) = exception_text(&text) {
            return t.trim().to_owned();
        }
        if text.trim_start().starts_with('<') {
            // An HTML error page: the status line says it all.
            return String::new();
        }
        self.snippet()
    }

    /// The first line of the body, shortened.
    fn snippet(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or_default();
        shorten(line)
    }
}

fn shorten(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The text of the first `<ExceptionText>` of an OWS exception report.
fn exception_text(text: &str) -> Option<&str> {
    let start = text.find("<ExceptionText>")? + "<ExceptionText>".len();
    let end = text[start..].find("</ExceptionText>")? + start;
    Some(&text[start..end])
}

/// Error JSON the servers send: cornice's `{"errors": [...]}`, OAuth's `{"error": ...}`,
/// Pyramid's `{"message": ...}`.
fn json_detail(value: &Value) -> String {
    if let Some(errors) = value.get("errors").and_then(Value::as_array) {
        let parts: Vec<String> = errors
            .iter()
            .map(|e| {
                let name = e.get("name").and_then(Value::as_str).unwrap_or_default();
                let description = e
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if name.is_empty() {
                    description.to_owned()
                } else {
                    format!("{name}: {description}")
                }
            })
            .collect();
        return shorten(&parts.join("; "));
    }
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        let description = value
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return format!("({error}) {description}").trim_end().to_owned();
    }
    for key in ["message", "description", "detail"] {
        if let Some(text) = value.get(key).and_then(Value::as_str) {
            return shorten(text);
        }
    }
    match value {
        Value::String(s) => shorten(s),
        other => shorten(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, content_type: &str, body: &str) -> Reply {
        Reply {
            url: Url::parse("http://localhost:8000/services").unwrap(),
            status: StatusCode::from_u16(status).unwrap(),
            content_type: content_type.into(),
            body: body.as_bytes().to_vec(),
            sent: Credentials::None,
        }
    }

    #[test]
    fn absent_interfaces() {
        assert!(reply(404, "text/plain", "404 Not Found").means_absent());
        assert!(reply(404, "text/xml; charset=UTF-8", "<ExceptionReport/>").means_absent());
        assert!(!reply(404, "application/json", "{}").means_absent());
        let t05 = "<ExceptionReport><Exception><ExceptionText>/services</ExceptionText></Exception></ExceptionReport>";
        assert!(reply(500, "text/xml", t05).means_absent());
        assert!(!reply(500, "text/xml", &t05.replace("/services", "boom")).means_absent());
        assert!(!reply(405, "text/plain", "").means_absent());
    }

    #[test]
    fn details_from_the_originals_error_bodies() {
        let cornice = r#"{"status": "error", "errors": [{"location": "body", "name": "name", "description": "Required"}]}"#;
        assert_eq!(
            reply(400, "application/json", cornice).detail(),
            "name: Required"
        );
        let oauth =
            r#"{"error": "invalid_request", "error_description": "Duplicate scope parameter."}"#;
        assert_eq!(
            reply(400, "application/json", oauth).detail(),
            "(invalid_request) Duplicate scope parameter."
        );
        let pyramid = r#"{"message": "This server could not verify that you are authorized.", "code": "401 Unauthorized", "title": "Unauthorized"}"#;
        assert_eq!(
            reply(401, "application/json", pyramid).detail(),
            "This server could not verify that you are authorized."
        );
        let ows = "<?xml version=\"1.0\"?>\n<ExceptionReport>\n<Exception>\n<ExceptionText>too many arguments</ExceptionText>";
        assert_eq!(reply(500, "text/xml", ows).detail(), "too many arguments");
        assert_eq!(
            reply(500, "text/html", "<html><title>500</title></html>").detail(),
            ""
        );
        assert_eq!(
            reply(502, "text/plain", "\n  upstream down \nmore").detail(),
            "upstream down"
        );
    }

    #[test]
    fn empty_success_means_done() {
        assert_eq!(reply(204, "", "").json().unwrap(), Value::Bool(true));
        assert!(reply(200, "text/html", "<html>").json().is_err());
    }

    #[test]
    fn auth_is_described_without_its_value() {
        let mut headers = HeaderMap::new();
        assert_eq!(credentials(&headers).describe(), "no credentials");
        headers.insert(AUTHORIZATION, "Basic ZGVtbzpkZW1v".parse().unwrap());
        assert_eq!(credentials(&headers).describe(), "basic auth");
        headers.insert(AUTHORIZATION, "Bearer secret".parse().unwrap());
        assert_eq!(credentials(&headers).describe(), "bearer token");
    }

    #[test]
    fn passwords_in_urls_are_not_logged() {
        let url = Url::parse("https://user:pass@example.org/RPC2").unwrap();
        assert_eq!(loggable(&url).as_str(), "https://user:***@example.org/RPC2");
    }
}
