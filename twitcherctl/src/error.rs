//! What can go wrong talking to a twitcher server, worded for the person at the terminal.

use std::fmt;

/// The two ways twitcher can be driven remotely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    /// REST (`/services`, `/oauth/…`), twitcher 0.6 and later.
    Rest,
    /// XML-RPC at `/RPC2`, twitcher 0.5.
    XmlRpc,
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Interface::Rest => "the REST interface",
            Interface::XmlRpc => "the XML-RPC interface",
        })
    }
}

/// Which credentials went with a request (never their value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization` header.
    None,
    /// HTTP basic auth (`-u/-p`, or the OAuth client id and secret).
    Basic,
    /// A bearer token (`-t`).
    Bearer,
    /// Another scheme.
    Other,
}

impl Credentials {
    /// For `--debug` lines: "basic auth", "bearer token", …
    pub fn describe(self) -> &'static str {
        match self {
            Credentials::None => "no credentials",
            Credentials::Basic => "basic auth",
            Credentials::Bearer => "bearer token",
            Credentials::Other => "other credentials",
        }
    }

    /// What to do about a 401 to a request that carried these credentials.
    fn hint(self) -> &'static str {
        match self {
            Credentials::None | Credentials::Other => {
                "give -u/--username and -p/--password, or -t/--token"
            }
            Credentials::Basic => "check -u/--username and -p/--password",
            Credentials::Bearer => {
                "the token given with -t/--token was refused: it is unknown or expired, or lacks \
                 the scope needed; registry changes need scope register"
            }
        }
    }
}

/// A failed request; the message fits on one line after "could not …: ".
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `-s/--serverurl` is not an http(s) URL.
    #[error("invalid server URL {url:?}: {reason}")]
    BadServerUrl {
        /// What was given.
        url: String,
        /// Why it is unusable.
        reason: String,
    },
    /// The HTTP client could not be set up (TLS backend).
    #[error("cannot set up the HTTP client: {0}")]
    Setup(#[source] reqwest::Error),
    /// Nothing answered at the address (refused, DNS, TLS handshake).
    #[error(
        "cannot reach {url} ({detail}). Is the server running and is the URL right (-s/--serverurl)? \
         For https with a self-signed certificate use -k/--insecure"
    )]
    Connect {
        /// The request URL.
        url: String,
        /// The innermost cause, e.g. "Connection refused (os error 111)".
        detail: String,
    },
    /// The server took too long.
    #[error("no answer from {url} in time")]
    Timeout {
        /// The request URL.
        url: String,
    },
    /// Any other transport failure.
    #[error("request to {url} failed: {detail}")]
    Transport {
        /// The request URL.
        url: String,
        /// The innermost cause.
        detail: String,
    },
    /// 401: credentials missing or wrong.
    #[error("bad or missing credentials: {url} answered 401 Unauthorized ({})", .sent.hint())]
    Unauthorized {
        /// The request URL.
        url: String,
        /// What the request carried.
        sent: Credentials,
    },
    /// 403: the credentials are valid but not allowed to do this.
    #[error("not allowed: {url} answered 403 Forbidden{}", detail_suffix(.detail))]
    Forbidden {
        /// The request URL.
        url: String,
        /// The server's explanation, if any.
        detail: String,
    },
    /// The server does not offer the interface (HTTP 404 at its endpoint).
    #[error("{interface} is not available on this server ({url} answered 404)")]
    Absent {
        /// The missing interface.
        interface: Interface,
        /// The request URL.
        url: String,
    },
    /// An XML-RPC fault.
    #[error("{message} (XML-RPC fault {code})")]
    Fault {
        /// `faultCode`.
        code: i64,
        /// `faultString`.
        message: String,
    },
    /// An OAuth2 error response (RFC 6749 §5.2).
    #[error("({error}){}", detail_suffix_plain(.description))]
    OAuth {
        /// `error`, e.g. `invalid_scope`.
        error: String,
        /// `error_description`, may be empty.
        description: String,
    },
    /// Another HTTP error status.
    #[error("{url} answered {status}{}", detail_suffix(.detail))]
    Status {
        /// The request URL.
        url: String,
        /// Status code and reason, e.g. "400 Bad Request".
        status: String,
        /// The server's explanation, if any.
        detail: String,
    },
    /// A 2xx answer that is not what the interface promises.
    #[error("unexpected answer from {url}: {detail}")]
    BadResponse {
        /// The request URL.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

fn detail_suffix_plain(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" {detail}")
    }
}

impl ClientError {
    /// True when the endpoint does not exist, so the other interface is worth a try.
    pub fn is_absent(&self) -> bool {
        matches!(self, ClientError::Absent { .. })
    }

    /// True for 401 answers.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, ClientError::Unauthorized { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_errors_read_like_the_original() {
        let e = ClientError::OAuth {
            error: "invalid_scope".into(),
            description: String::new(),
        };
        assert_eq!(e.to_string(), "(invalid_scope)");
        let e = ClientError::OAuth {
            error: "invalid_request".into(),
            description: "Request is missing grant type.".into(),
        };
        assert_eq!(
            e.to_string(),
            "(invalid_request) Request is missing grant type."
        );
    }

    #[test]
    fn unauthorized_hints_fit_the_credentials_sent() {
        let text = |sent| {
            ClientError::Unauthorized {
                url: "http://h/services".into(),
                sent,
            }
            .to_string()
        };
        assert_eq!(
            text(Credentials::None),
            "bad or missing credentials: http://h/services answered 401 Unauthorized \
             (give -u/--username and -p/--password, or -t/--token)"
        );
        assert!(text(Credentials::Basic).ends_with("(check -u/--username and -p/--password)"));
        assert!(text(Credentials::Bearer).ends_with("registry changes need scope register)"));
    }

    #[test]
    fn connect_errors_suggest_the_url_and_insecure() {
        let e = ClientError::Connect {
            url: "http://127.0.0.1:1/RPC2".into(),
            detail: "Connection refused (os error 111)".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("-s/--serverurl") && text.contains("-k/--insecure"),
            "{text}"
        );
        assert!(!text.contains('\n'));
    }
}
