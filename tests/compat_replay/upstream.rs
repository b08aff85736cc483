//! What the backends received, compared with the recorded upstream requests, with framing
//! (D-UPSTREAM-HEADERS) and twitcher's credentials (D-CREDENTIALS) left out.

use crate::bytes::first_difference;
use crate::compare::BodyContext;
use crate::env::Env;
use crate::expect::Expect;
use crate::stub::Canned;
use crate::transcript::Exchange;
use crate::wire::Message;

/// Checks what the backend received against the recorded upstream requests (T05 probe).
pub fn check_upstream(
    env: &Env,
    ex: &Exchange,
    expect: &Expect,
    received: &[(Message, Canned)],
    context: BodyContext,
    problems: &mut Vec<String>,
) {
    let mut wanted: Vec<&Message> = ex.upstream.iter().collect();
    if expect.deviations.contains(&"D-REDIRECTS") {
        // The redirect goes back to the client; the original's second request is not made.
        wanted.truncate(1);
    }
    if received.len() != wanted.len() {
        problems.push(format!(
            "upstream requests: expected {}, the backend received {}",
            wanted.len(),
            received.len()
        ));
    }
    for (want, (got, _)) in wanted.iter().zip(received) {
        let mut target = env.map(want.target());
        if context.strip_credentials {
            target = strip_target(&target);
        }
        if let Some(t) = expect.upstream_target {
            target = t.to_string();
        }
        if got.method() != want.method() {
            problems.push(format!(
                "upstream method: expected {}, received {}",
                want.method(),
                got.method()
            ));
        }
        if got.target() != target {
            problems.push(format!(
                "upstream target: expected {target:?}, received {:?}",
                got.target()
            ));
        }
        let mapped: Vec<(String, String)> = want
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), env.map(v)))
            .collect();
        let body_empty = want.body.is_empty();
        let expected =
            upstream_headers(&mapped, body_empty, context.wps, context.strip_credentials);
        let have = upstream_headers(&got.headers, body_empty, context.wps, false);
        if expected != have {
            problems.push(format!(
                "upstream headers: expected {expected:?}, received {have:?}"
            ));
        }
        if got.body != want.body {
            problems.push(format!(
                "upstream body differs {}",
                first_difference(&want.body, &got.body)
            ));
        }
    }
}

/// Upstream headers without framing (D-UPSTREAM-HEADERS): names lower-cased, sorted, no
/// `Connection`, no `Content-Length` of an empty body, and `Accept-Encoding: identity` only
/// for WPS-type services. `strip` removes twitcher's credentials, every `Authorization`
/// among them (D-CREDENTIALS).
pub fn upstream_headers(
    headers: &[(String, String)],
    body_empty: bool,
    wps: bool,
    strip: bool,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .filter(|(k, v)| {
            !(k == "connection"
                || k == "expect"
                || (k == "content-length" && body_empty)
                || (k == "accept-encoding" && v == "identity" && !wps)
                || (strip
                    && (k == "access-token" || k.starts_with("x-ssl-") || k == "authorization")))
        })
        .collect();
    out.sort();
    out
}

/// A request target without `token`/`access_token` query parameters (D-CREDENTIALS).
fn strip_target(target: &str) -> String {
    match target.split_once('?') {
        Some((path, query)) => {
            let query = strip_token_params(query);
            if query.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{query}")
            }
        }
        None => target.to_string(),
    }
}

/// A query without `token`/`access_token` parameters (D-CREDENTIALS).
pub fn strip_token_params(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or_default();
            let key = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
            !pair.is_empty()
                && !key.eq_ignore_ascii_case("token")
                && !key.eq_ignore_ascii_case("access_token")
        })
        .collect::<Vec<_>>()
        .join("&")
}
