//! Which interface a request path belongs to. It decides the language of an answer that
//! no handler wrote (a layer's refusal: body too large, server busy, too many failed
//! logins) and names the route in the access log and the metrics.

/// An interface of the server, told by the request path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `{protected_path}/proxy/…`.
    Proxy,
    /// `{protected_path}/verify/…`.
    Verify,
    /// Anything else under the protected path (answered with a report).
    Ows,
    /// `/RPC2`.
    Rpc,
    /// `/oauth/token` (and anything else under `/oauth/` but the client registration).
    OAuth,
    /// `/oauth/client`: the client registration, a management JSON interface.
    OAuthClient,
    /// `/services…` and `/__api__`.
    Registry,
    /// `/health`.
    Health,
    /// `/metrics`.
    Metrics,
    /// `/`, `/info`, `/versions`.
    Info,
    /// No route (a 404 report).
    Other,
}

/// The language an interface's errors are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// An OWS `ExceptionReport`.
    Ows,
    /// An XML-RPC fault.
    XmlRpc,
    /// An RFC 6749 §5.2 error object.
    OAuth,
    /// The JSON error object of the REST and informational routes.
    Json,
}

impl Endpoint {
    /// The interface of `path` on a server whose OWS routes live under `protected_path`.
    pub fn of(path: &str, protected_path: &str) -> Endpoint {
        if let Some(rest) = path.strip_prefix(protected_path)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return if under(rest, "/proxy/") {
                Endpoint::Proxy
            } else if under(rest, "/verify/") {
                Endpoint::Verify
            } else {
                Endpoint::Ows
            };
        }
        match path {
            "/RPC2" => Endpoint::Rpc,
            "/health" => Endpoint::Health,
            "/metrics" => Endpoint::Metrics,
            "/" | "/info" | "/versions" => Endpoint::Info,
            "/services" | "/__api__" => Endpoint::Registry,
            "/oauth/client" => Endpoint::OAuthClient,
            _ if path.starts_with("/oauth/") => Endpoint::OAuth,
            _ if path.starts_with("/services/") => Endpoint::Registry,
            _ => Endpoint::Other,
        }
    }

    /// The name used in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Proxy => "proxy",
            Endpoint::Verify => "verify",
            Endpoint::Ows => "ows",
            Endpoint::Rpc => "rpc",
            Endpoint::OAuth => "oauth_token",
            Endpoint::OAuthClient => "oauth_client",
            Endpoint::Registry => "services",
            Endpoint::Health => "health",
            Endpoint::Metrics => "metrics",
            Endpoint::Info => "info",
            Endpoint::Other => "other",
        }
    }

    /// The language of this interface's errors: reports under the protected path (and
    /// for unknown paths, whose 404 is a report), faults at `/RPC2`, RFC 6749 errors
    /// at `/oauth/token`, JSON elsewhere.
    pub fn language(self) -> Language {
        match self {
            Endpoint::Proxy | Endpoint::Verify | Endpoint::Ows | Endpoint::Other => Language::Ows,
            Endpoint::Rpc => Language::XmlRpc,
            Endpoint::OAuth => Language::OAuth,
            Endpoint::OAuthClient
            | Endpoint::Registry
            | Endpoint::Health
            | Endpoint::Metrics
            | Endpoint::Info => Language::Json,
        }
    }
}

/// `rest` is `prefix` plus at least one more character (`/proxy/x`, not `/proxy/`).
fn under(rest: &str, prefix: &str) -> bool {
    rest.len() > prefix.len() && rest.starts_with(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_interface() {
        for (path, endpoint) in [
            ("/ows/proxy/emu", Endpoint::Proxy),
            ("/ows/proxy/emu/a/b", Endpoint::Proxy),
            ("/ows/verify/emu", Endpoint::Verify),
            ("/ows/proxy/", Endpoint::Ows),
            ("/ows", Endpoint::Ows),
            ("/owsx", Endpoint::Other),
            ("/RPC2", Endpoint::Rpc),
            ("/RPC2/x", Endpoint::Other),
            ("/oauth/token", Endpoint::OAuth),
            ("/oauth/client", Endpoint::OAuthClient),
            ("/services", Endpoint::Registry),
            ("/services/emu", Endpoint::Registry),
            ("/__api__", Endpoint::Registry),
            ("/health", Endpoint::Health),
            ("/metrics", Endpoint::Metrics),
            ("/", Endpoint::Info),
            ("/versions", Endpoint::Info),
            ("/nowhere", Endpoint::Other),
        ] {
            assert_eq!(Endpoint::of(path, "/ows"), endpoint, "{path}");
        }
        assert_eq!(
            Endpoint::of("/secure/proxy/emu", "/secure"),
            Endpoint::Proxy
        );
        assert_eq!(Endpoint::of("/ows/proxy/emu", "/secure"), Endpoint::Other);
    }
}
