//! Credentials meant for twitcher: where a client may put them (so the gate can find
//! them) and where they travel (so nothing forwards them to a backend). The decision that
//! uses them is the [`gate`](crate::gate)'s.

use std::net::IpAddr;

use axum::http::{HeaderMap, header};

use crate::gate::path::ExtraPath;

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

/// Collects the credentials of a request. The last element of the extra path is the token
/// of last resort.
pub fn credentials(
    query: &str,
    headers: &HeaderMap,
    form_token: Option<&str>,
    extra_path: &ExtraPath,
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
    extra_path: &ExtraPath,
) -> Option<(String, TokenSource)> {
    // One pass over the query for both parameters; the last value of each counts.
    let (mut token, mut access_token) = (None, None);
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "token" => token = Some(value),
            "access_token" => access_token = Some(value),
            _ => {}
        }
    }
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        return Some((t.into_owned(), TokenSource::QueryToken));
    }
    if let Some(t) = access_token.filter(|t| !t.is_empty()) {
        return Some((t.into_owned(), TokenSource::QueryAccessToken));
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
    extra_path
        .last_element()
        .map(|t| (t, TokenSource::LastPathElement))
}

/// The token of an `Authorization: Bearer …` header (scheme case-insensitive, any run of
/// spaces or tabs after it).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = header_str(headers, header::AUTHORIZATION.as_str())?;
    let (scheme, token) = value.split_once([' ', '\t'])?;
    let token = token.trim_matches([' ', '\t']);
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether a request header carries a credential for twitcher and so never reaches a
/// backend (unless `twitcher.ows_proxy_forward_credentials`): `Authorization` in any form,
/// `Access-Token`, `X-Ssl-*`.
pub fn is_credential_header(name: &str) -> bool {
    name == header::AUTHORIZATION.as_str()
        || name == ACCESS_TOKEN_HEADER
        || name.starts_with("x-ssl-")
}

/// The query (or form body) without `token`/`access_token` pairs in any case or
/// encoding; other pairs keep their exact bytes.
pub fn strip_token_params(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or_default();
            let key = url::form_urlencoded::parse(key.as_bytes())
                .next()
                .map(|(k, _)| k.into_owned())
                .unwrap_or_default();
            !pair.is_empty()
                && !TOKEN_PARAMS
                    .iter()
                    .any(|t| key.trim().eq_ignore_ascii_case(t))
        })
        .collect::<Vec<_>>()
        .join("&")
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

#[cfg(test)]
mod tests {
    use super::*;

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
                &headers(&[("authorization", "bearer \t b ")]),
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
            let got = find_token(query, h, None, &ExtraPath::parse(path).unwrap());
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
        let got = find_token("", &bearer, Some("f"), &ExtraPath::parse("/p").unwrap());
        assert_eq!(got, Some(("b".into(), TokenSource::Bearer)));
        let got = find_token(
            "",
            &HeaderMap::new(),
            Some("f"),
            &ExtraPath::parse("/p").unwrap(),
        );
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
}
