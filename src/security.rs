//! The access decision for one OWS request: public operations and services pass,
//! `auth = cert` services need a verified client certificate, all others a valid token.
//! Also knows where credentials meant for twitcher travel, so the proxy can strip them.

use std::net::IpAddr;

use axum::http::{HeaderMap, header};

use crate::error::OwsError;
use crate::ows::request::OwsRequest;
use crate::store::{Service, Store};
use crate::tokens::{Scope, TokenError, Tokens};

/// Query parameters that carry a twitcher token.
pub const TOKEN_PARAMS: [&str; 2] = ["token", "access_token"];
/// Header carrying a twitcher token.
pub const ACCESS_TOKEN_HEADER: &str = "access-token";
/// Header set by a TLS-terminating nginx after checking a client certificate.
pub const CLIENT_VERIFY_HEADER: &str = "x-ssl-client-verify";

/// Where a token was found (the order of the variants is the lookup order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// Query parameter `token`.
    QueryToken,
    /// Query parameter `access_token`.
    QueryAccessToken,
    /// Header `Access-Token`.
    AccessTokenHeader,
    /// Header `Authorization: Bearer …`.
    Bearer,
    /// Field `access_token` of a form-encoded body.
    FormField,
    /// The last element of the extra path.
    LastPathElement,
}

/// What the client presented to prove it may use a protected service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The token and where it came from.
    pub token: Option<(String, TokenSource)>,
    /// A client certificate was verified (by our TLS layer or a trusted nginx).
    pub certificate_verified: bool,
}

/// Which peers' forwarded headers are believed.
#[derive(Debug, Clone, Copy)]
pub struct Peer<'a> {
    /// The TCP peer address, when known.
    pub addr: Option<IpAddr>,
    /// `twitcher.trusted_proxies` (None: not configured).
    pub trusted: Option<&'a [IpAddr]>,
}

impl Peer<'_> {
    /// Whether `X-Ssl-Client-Verify` from this peer counts: from anyone unless a list of
    /// trusted proxies is configured (the original believed everyone).
    pub fn may_assert_certificate(&self) -> bool {
        match (self.trusted, self.addr) {
            (None, _) => true,
            (Some(list), Some(addr)) => list.contains(&addr),
            (Some(_), None) => false,
        }
    }

    /// Whether `X-Forwarded-Proto` from this peer counts: listed proxies, or loopback
    /// when no list is configured (gunicorn's default, which the original ran under).
    pub fn may_forward_scheme(&self) -> bool {
        match (self.trusted, self.addr) {
            (Some(list), Some(addr)) => list.contains(&addr),
            (None, Some(addr)) => addr.is_loopback(),
            _ => false,
        }
    }
}

/// Collects the credentials of a request. `extra_path` is the raw path after the service
/// name (empty when none); its last element is the token of last resort.
pub fn credentials(
    query: &str,
    headers: &HeaderMap,
    form_token: Option<&str>,
    extra_path: &str,
    peer: Peer<'_>,
) -> Credentials {
    Credentials {
        token: find_token(query, headers, form_token, extra_path),
        certificate_verified: certificate_verified(headers, peer),
    }
}

fn find_token(
    query: &str,
    headers: &HeaderMap,
    form_token: Option<&str>,
    extra_path: &str,
) -> Option<(String, TokenSource)> {
    let param = |name: &str| {
        url::form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .last()
            .filter(|v| !v.is_empty())
    };
    if let Some(t) = param("token") {
        return Some((t, TokenSource::QueryToken));
    }
    if let Some(t) = param("access_token") {
        return Some((t, TokenSource::QueryAccessToken));
    }
    if let Some(t) = header_str(headers, ACCESS_TOKEN_HEADER).filter(|t| !t.is_empty()) {
        return Some((t.to_string(), TokenSource::AccessTokenHeader));
    }
    if let Some(t) = bearer_token(headers) {
        return Some((t.to_string(), TokenSource::Bearer));
    }
    if let Some(t) = form_token.filter(|t| !t.is_empty()) {
        return Some((t.to_string(), TokenSource::FormField));
    }
    last_path_element(extra_path).map(|t| (t, TokenSource::LastPathElement))
}

/// The token of an `Authorization: Bearer …` header (scheme case-insensitive).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = header_str(headers, header::AUTHORIZATION.as_str())?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The percent-decoded last non-empty element of a raw path.
fn last_path_element(extra_path: &str) -> Option<String> {
    // The original took the last non-empty element: `/tok/` still names `tok`.
    let last = extra_path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())?;
    Some(
        percent_encoding::percent_decode_str(last)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn certificate_verified(headers: &HeaderMap, peer: Peer<'_>) -> bool {
    peer.may_assert_certificate()
        && headers
            .get(CLIENT_VERIFY_HEADER)
            .is_some_and(|v| v.as_bytes() == b"SUCCESS")
}

/// Why a request was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Public service or public operation: no credential was needed.
    Public,
    /// A verified client certificate.
    Certificate,
    /// A valid token, found there.
    Token(TokenSource),
}

/// Decides whether the request may reach the service; `request` is None when the
/// operation is unknown (then it counts as protected). `now` is seconds since the epoch.
pub async fn authorize(
    store: &dyn Store,
    tokens: &Tokens,
    service: &Service,
    request: Option<&OwsRequest>,
    credentials: &Credentials,
    now: i64,
) -> Result<Grant, OwsError> {
    if service.is_public() || request.is_some_and(OwsRequest::is_public) {
        return Ok(Grant::Public);
    }
    if service.auth == "cert" {
        return if credentials.certificate_verified {
            Ok(Grant::Certificate)
        } else {
            Err(OwsError::CertificateRequired)
        };
    }
    let Some((token, source)) = &credentials.token else {
        return Err(OwsError::TokenRequired);
    };
    check_token(store, tokens, token, now)
        .await
        .map(|()| Grant::Token(*source))
}

/// A token is valid when it is an unexpired XML-RPC token, or an unexpired OAuth2 token
/// (stored or JWT) with scope `compute`.
async fn check_token(
    store: &dyn Store,
    tokens: &Tokens,
    token: &str,
    now: i64,
) -> Result<(), OwsError> {
    let lookup = |e| OwsError::internal("token lookup failed", e);
    if let Some(t) = store.access_token(token).await.map_err(lookup)? {
        return if t.expires_at > now {
            Ok(())
        } else {
            Err(OwsError::TokenExpired)
        };
    }
    match tokens.check(store, token, Scope::Compute, now).await {
        Ok(()) => Ok(()),
        Err(TokenError::Expired) => Err(OwsError::TokenExpired),
        Err(TokenError::Invalid) => Err(OwsError::TokenRequired),
        Err(TokenError::Store(e)) => Err(lookup(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ows::request::parse_kvp;
    use crate::store::memory::MemoryStore;
    use crate::store::{AccessToken, OAuthToken};

    const NO_PEER: Peer<'static> = Peer {
        addr: None,
        trusted: None,
    };

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    /// query, headers, extra path → expected token and source.
    type TokenCase<'a> = (
        &'a str,
        &'a HeaderMap,
        &'a str,
        Option<(&'a str, TokenSource)>,
    );

    #[test]
    fn token_lookup_order() {
        let all = headers(&[("access-token", "h"), ("authorization", "Bearer b")]);
        let cases: &[TokenCase] = &[
            (
                "token=q&access_token=a",
                &all,
                "/p",
                Some(("q", TokenSource::QueryToken)),
            ),
            (
                "access_token=a",
                &all,
                "/p",
                Some(("a", TokenSource::QueryAccessToken)),
            ),
            ("", &all, "/p", Some(("h", TokenSource::AccessTokenHeader))),
            (
                "",
                &headers(&[("authorization", "bearer  b ")]),
                "/p",
                Some(("b", TokenSource::Bearer)),
            ),
            (
                "",
                &headers(&[("authorization", "Basic dTpw")]),
                "/p",
                Some(("p", TokenSource::LastPathElement)),
            ),
            (
                "",
                &HeaderMap::new(),
                "/a/p%20q",
                Some(("p q", TokenSource::LastPathElement)),
            ),
            (
                "",
                &HeaderMap::new(),
                "/a/",
                Some(("a", TokenSource::LastPathElement)),
            ),
            ("", &HeaderMap::new(), "//", None),
            ("", &HeaderMap::new(), "", None),
            ("token=", &HeaderMap::new(), "", None),
        ];
        for (query, h, path, expected) in cases {
            let got = find_token(query, h, None, path);
            assert_eq!(
                got.as_ref().map(|(t, s)| (t.as_str(), *s)),
                *expected,
                "{query:?} {path:?}"
            );
        }
    }

    #[test]
    fn the_form_field_comes_after_headers_and_before_the_path() {
        let bearer = headers(&[("authorization", "Bearer b")]);
        let got = find_token("", &bearer, Some("f"), "/p");
        assert_eq!(got, Some(("b".into(), TokenSource::Bearer)));
        let got = find_token("", &HeaderMap::new(), Some("f"), "/p");
        assert_eq!(got, Some(("f".into(), TokenSource::FormField)));
    }

    #[test]
    fn client_verify_header_needs_exact_success_and_trust() {
        let ok = headers(&[("x-ssl-client-verify", "SUCCESS")]);
        assert!(certificate_verified(&ok, NO_PEER));
        assert!(!certificate_verified(
            &headers(&[("x-ssl-client-verify", "success")]),
            NO_PEER
        ));
        assert!(!certificate_verified(
            &headers(&[("x-ssl-client-verify", "FAILED")]),
            NO_PEER
        ));
        let trusted = ["10.0.0.1".parse().unwrap()];
        let from = |a: &str| Peer {
            addr: Some(a.parse().unwrap()),
            trusted: Some(&trusted),
        };
        assert!(certificate_verified(&ok, from("10.0.0.1")));
        assert!(!certificate_verified(&ok, from("10.0.0.2")));
    }

    async fn decide(service: &Service, query: &str, creds: Credentials) -> Result<Grant, OwsError> {
        let store = MemoryStore::new();
        store
            .save_access_token(&AccessToken {
                token: "good".into(),
                expires_at: 2000,
            })
            .await
            .unwrap();
        store
            .save_access_token(&AccessToken {
                token: "old".into(),
                expires_at: 1000,
            })
            .await
            .unwrap();
        let oauth = |t: &str, scope: &str| OAuthToken {
            access_token: t.into(),
            client_id: "c".into(),
            scope: scope.into(),
            expires_at: 2000,
        };
        store
            .save_oauth_token(&oauth("compute", "compute register"))
            .await
            .unwrap();
        store
            .save_oauth_token(&oauth("register", "register"))
            .await
            .unwrap();
        let request = parse_kvp(query).unwrap();
        let tokens = Tokens::from_settings(&crate::config::Config::default().token).unwrap();
        authorize(&store, &tokens, service, Some(&request), &creds, 1500).await
    }

    fn token(t: &str) -> Credentials {
        Credentials {
            token: Some((t.into(), TokenSource::QueryAccessToken)),
            certificate_verified: false,
        }
    }

    const EXECUTE: &str = "service=WPS&request=Execute&version=1.0.0";

    #[tokio::test]
    async fn access_decisions() {
        let emu = Service::new("emu", "http://x/wps");
        let public = Service {
            public: true,
            ..emu.clone()
        };
        let cert = Service {
            auth: "cert".into(),
            ..emu.clone()
        };
        let verified = Credentials {
            token: None,
            certificate_verified: true,
        };
        let outcome = |r: Result<Grant, OwsError>| r.map(|_| ()).map_err(|e| e.to_string());
        let required = Err("Access token is required to access this service.".to_string());
        let expired = Err("Access token is expired.".to_string());
        let no_cert = Err("A valid X.509 client certificate is needed.".to_string());

        assert_eq!(
            outcome(decide(&emu, "service=WPS&request=GetCapabilities", token("x")).await),
            Ok(())
        );
        assert_eq!(
            outcome(
                decide(
                    &emu,
                    "service=WPS&request=DescribeProcess&version=1.0.0",
                    Credentials::default()
                )
                .await
            ),
            Ok(())
        );
        assert_eq!(
            outcome(decide(&emu, EXECUTE, Credentials::default()).await),
            required
        );
        assert_eq!(outcome(decide(&emu, EXECUTE, token("good")).await), Ok(()));
        assert_eq!(outcome(decide(&emu, EXECUTE, token("old")).await), expired);
        assert_eq!(
            outcome(decide(&emu, EXECUTE, token("nope")).await),
            required
        );
        assert_eq!(
            outcome(decide(&emu, EXECUTE, token("compute")).await),
            Ok(())
        );
        assert_eq!(
            outcome(decide(&emu, EXECUTE, token("register")).await),
            required
        );
        assert_eq!(
            outcome(decide(&public, EXECUTE, Credentials::default()).await),
            Ok(())
        );
        assert_eq!(
            outcome(decide(&cert, EXECUTE, token("good")).await),
            no_cert
        );
        assert_eq!(outcome(decide(&cert, EXECUTE, verified).await), Ok(()));
        let wms = Service {
            service_type: "wms".into(),
            ..emu.clone()
        };
        assert_eq!(
            outcome(
                decide(
                    &wms,
                    "service=WMS&request=GetMap&version=1.3.0",
                    Credentials::default()
                )
                .await
            ),
            required
        );
    }
}
