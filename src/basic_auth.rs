//! HTTP basic authentication of the management interfaces (`twitcher.username` /
//! `twitcher.password`), compared in constant time and never logged.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;

/// The `WWW-Authenticate` challenge sent with a 401.
pub fn challenge() -> HeaderValue {
    HeaderValue::from_static("Basic realm=\"twitcher\"")
}

/// The `(user, password)` of a basic `Authorization` header.
pub fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// True when the request carries exactly these basic credentials.
pub fn matches(headers: &HeaderMap, user: &str, password: &str) -> bool {
    match credentials(headers) {
        // Both comparisons always run, so timing does not tell which part was wrong.
        Some((u, p)) => {
            constant_time_eq(u.as_bytes(), user.as_bytes())
                & constant_time_eq(p.as_bytes(), password.as_bytes())
        }
        None => false,
    }
}

/// True when the management interfaces may be used: no management user is configured
/// (as in the original's default setup), or the request carries its credentials.
pub fn management_allowed(config: &crate::config::Config, headers: &HeaderMap) -> bool {
    match &config.username {
        None => true,
        Some(user) => matches(headers, user, config.password.as_deref().unwrap_or("")),
    }
}

/// True when the request carries the credentials of a configured management user: the
/// one proof of being the manager (an open setup without a user has no manager).
pub fn is_manager(config: &crate::config::Config, headers: &HeaderMap) -> bool {
    config
        .username
        .as_deref()
        .is_some_and(|user| matches(headers, user, config.password.as_deref().unwrap_or("")))
}

/// Compares without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn basic_credentials() {
        // admin:s3cret
        assert!(matches(&with("Basic YWRtaW46czNjcmV0"), "admin", "s3cret"));
        assert!(matches(
            &with("basic  YWRtaW46czNjcmV0 "),
            "admin",
            "s3cret"
        ));
        assert!(!matches(&with("Basic YWRtaW46d3Jvbmc="), "admin", "s3cret"));
        assert!(!matches(&with("Bearer xyz"), "admin", "s3cret"));
        assert!(!matches(&HeaderMap::new(), "admin", "s3cret"));
        assert!(!matches(&with("Basic !!!"), "admin", "s3cret"));
        assert!(!constant_time_eq(b"abc", b"abcd") && constant_time_eq(b"", b""));
    }

    #[test]
    fn only_a_configured_user_is_the_manager() {
        let right = with("Basic YWRtaW46czNjcmV0"); // admin:s3cret
        let open = crate::config::Config::default();
        assert!(management_allowed(&open, &right) && management_allowed(&open, &HeaderMap::new()));
        assert!(
            !is_manager(&open, &right),
            "no user configured: nobody is the manager"
        );
        let configured = crate::config::Config {
            username: Some("admin".into()),
            password: Some("s3cret".into()),
            ..Default::default()
        };
        assert!(is_manager(&configured, &right));
        assert!(!is_manager(&configured, &with("Basic YWRtaW46d3Jvbmc=")));
        assert!(!is_manager(&configured, &HeaderMap::new()));
    }
}
