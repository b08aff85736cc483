//! The comparison of twitcher's answer to one exchange with its expectation: status,
//! Content-Type, body by its kind, the headers a case is about, and the upstream requests.

use serde_json::Value;

use crate::bodies::{compare_echo, compare_expiry, compare_info, compare_openapi};
use crate::bytes::{
    essence, first_difference, mask_attribute, mask_between, mask_json_strings, replace_bytes,
    snippet,
};
use crate::dynamic::Dynamic;
use crate::env::Env;
use crate::expect::{Expect, JSON_CT, REPORT_CT, RPC_CT, Want, fault_xml, report};
use crate::group::Group;
use crate::stub::Canned;
use crate::transcript::{Case, Exchange, recorded};
use crate::upstream::check_upstream;
use crate::wire::Message;
use crate::xml::{root_name, xml_lines};

/// How a body is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Exact bytes (Emu's `creationTime` masked).
    Bytes,
    /// Normalized XML trees (SPEC §3, D-REWRITE-BYTES).
    Xml,
    /// JSON values.
    Json,
    /// The helper's description of the upstream request, normalized (D-UPSTREAM-HEADERS).
    Echo,
    /// `/info`, `/versions` (D-INFO).
    Info,
    /// A report whose text starts with the expected text.
    ReportPrefix,
    /// An XML-RPC `methodResponse`: exact bytes with `expires_at` masked (its distance from
    /// the response's `Date` is compared instead).
    XmlRpc,
    /// A token response: exact bytes with the token masked.
    Token,
    /// `/__api__` (see `Want::OpenApi`).
    OpenApi,
}

/// Every difference between twitcher's answer `got` (and the requests the backends
/// `received`) and what `expect` asks for; empty when the exchange passes.
pub fn evaluate(
    env: &Env,
    group: Group,
    cases: &[Case],
    ex: &Exchange,
    expect: &Expect,
    got: &Message,
    received: &[(Message, Canned)],
) -> Vec<String> {
    let mut problems = Vec::new();
    let rec = &ex.response;
    let replace = |body: Vec<u8>, pairs: &[(&str, &str)]| {
        pairs.iter().fold(body, |b, (from, to)| {
            replace_bytes(&b, env.map(from).as_bytes(), env.map(to).as_bytes())
        })
    };
    let kind_of = |response: &Message| match body_kind(response) {
        Kind::Json if group.exact_json() => Kind::Bytes,
        kind => kind,
    };
    let recorded_ct = rec.content_type().map(str::to_string);
    let (status, ct, body, kind) = match expect.want {
        Want::Recorded => (
            rec.status(),
            recorded_ct,
            env.map_bytes(&rec.body),
            kind_of(rec),
        ),
        Want::RecordedWith(pairs) => (
            rec.status(),
            recorded_ct,
            replace(env.map_bytes(&rec.body), pairs),
            kind_of(rec),
        ),
        Want::RecordedOf(number) => match recorded(cases, number, 1) {
            Ok(other) => (
                other.response.status(),
                other.response.content_type().map(str::to_string),
                env.map_bytes(&other.response.body),
                kind_of(&other.response),
            ),
            Err(e) => return vec![e],
        },
        Want::Fault(status, code, text) => (
            status,
            Some(RPC_CT.into()),
            fault_xml(code, text).into_bytes(),
            Kind::Bytes,
        ),
        Want::Answer(status, ct, body) => (
            status,
            ct.map(str::to_string),
            body.as_bytes().to_vec(),
            Kind::Bytes,
        ),
        Want::Token(scope) => (
            200,
            Some(JSON_CT.into()),
            format!(
                r#"{{"access_token": "*", "expires_in": 3600, "token_type": "Bearer", "scope": "{scope}"}}"#
            )
            .into_bytes(),
            Kind::Token,
        ),
        Want::OpenApi => (200, Some(JSON_CT.into()), rec.body.clone(), Kind::OpenApi),
        Want::Backend(pairs) => match received.first() {
            Some((_, canned)) => {
                let ct = canned.content_type().map(str::to_string);
                (
                    canned.status,
                    ct,
                    replace(canned.body.clone(), pairs),
                    Kind::Bytes,
                )
            }
            None => {
                return vec!["the backend was not asked, but the expectation is its answer".into()];
            }
        },
        Want::Report(status, code, locator, text) => (
            status,
            Some(REPORT_CT.into()),
            report(code, locator, text).into_bytes(),
            Kind::Bytes,
        ),
        Want::ReportPrefix(status, code, locator, prefix) => (
            status,
            Some(REPORT_CT.into()),
            report(code, locator, prefix).into_bytes(),
            Kind::ReportPrefix,
        ),
        Want::Json(text) => (
            200,
            Some("application/json".into()),
            text.as_bytes().to_vec(),
            Kind::Bytes,
        ),
        Want::Info => (rec.status(), recorded_ct, rec.body.clone(), Kind::Info),
    };
    let head = ex.method.eq_ignore_ascii_case("HEAD");
    let (body, kind) = if head {
        (Vec::new(), Kind::Bytes)
    } else {
        (body, kind)
    };

    if got.status() != status {
        problems.push(format!(
            "status: expected {status}, received {} (body {:?})",
            got.status(),
            snippet(&got.body, 0)
        ));
    }
    if got.content_type() != ct.as_deref() {
        problems.push(format!(
            "Content-Type: expected {:?}, received {:?}",
            ct,
            got.content_type()
        ));
    }
    let context = BodyContext {
        wps: env.service_of(&ex.target).is_none_or(|s| {
            s.service_type.is_empty() || s.service_type.eq_ignore_ascii_case("wps")
        }),
        strip_credentials: expect.deviations.contains(&"D-CREDENTIALS"),
    };
    if let Some(p) = compare_body(kind, &body, &got.body, context) {
        problems.push(p);
    }
    if kind == Kind::XmlRpc && !head {
        problems.extend(compare_expiry(rec, got));
    }
    let mut headers: Vec<(&str, Option<String>)> = expect
        .headers
        .iter()
        .map(|(name, value)| (*name, value.map(|v| env.map(v))))
        .collect();
    let as_recorded = matches!(expect.want, Want::Recorded | Want::RecordedWith(_));
    for name in group.app_headers() {
        if !headers.iter().any(|(n, _)| n == name) {
            let value = rec.header(name).filter(|_| as_recorded);
            headers.push((name, value.map(|v| env.map(v))));
        }
    }
    for (name, want) in headers {
        let value = got.header(name);
        match want {
            Some(v) if value != Some(v.as_str()) => {
                problems.push(format!("header {name}: expected {v:?}, received {value:?}"));
            }
            None if value.is_some() => {
                problems.push(format!("header {name}: expected none, received {value:?}"))
            }
            _ => {}
        }
    }
    if !ex.upstream.is_empty() {
        check_upstream(env, ex, expect, received, context, &mut problems);
    }
    problems
}

/// What a body comparison needs to know about the exchange.
#[derive(Clone, Copy)]
pub struct BodyContext {
    /// The service is of the WPS kind (gets `Accept-Encoding: identity` upstream).
    pub wps: bool,
    /// D-CREDENTIALS covers this exchange: the recorded upstream request loses twitcher's
    /// credentials before it is compared.
    pub strip_credentials: bool,
}

/// How a recorded body is compared.
fn body_kind(response: &Message) -> Kind {
    if response
        .body
        .starts_with(b"<?xml version='1.0'?>\n<methodResponse>\n<params>")
    {
        return Kind::XmlRpc;
    }
    let essence = essence(response.content_type().unwrap_or(""));
    if essence == "application/json" {
        let echo = serde_json::from_slice::<Value>(&response.body)
            .is_ok_and(|v| v.get("request_version").is_some());
        return if echo { Kind::Echo } else { Kind::Json };
    }
    if is_reserialized_caps(response) {
        Kind::Xml
    } else {
        Kind::Bytes
    }
}

/// A capabilities document the original re-serialized through lxml (declaration dropped).
pub fn is_reserialized_caps(response: &Message) -> bool {
    let essence = essence(response.content_type().unwrap_or(""));
    let xml = essence.ends_with("xml");
    let body = String::from_utf8_lossy(&response.body);
    xml && body.starts_with('<')
        && !body.starts_with("<?xml")
        && root_name(&response.body).is_some_and(|n| n.contains("Capabilities"))
}

/// The difference between an expected and a received body of this kind, if any.
fn compare_body(kind: Kind, expected: &[u8], got: &[u8], context: BodyContext) -> Option<String> {
    match kind {
        Kind::Bytes => {
            let (e, g) = (
                mask_attribute(expected, "creationTime"),
                mask_attribute(got, "creationTime"),
            );
            (e != g).then(|| format!("body differs {}", first_difference(&e, &g)))
        }
        Kind::Xml => match (xml_lines(expected), xml_lines(got)) {
            (Err(e), _) => Some(format!("recorded body is not XML: {e}")),
            (_, Err(e)) => Some(format!(
                "body is not well-formed XML: {e} ({})",
                snippet(got, 0)
            )),
            (Ok(e), Ok(g)) => {
                let at = e
                    .iter()
                    .zip(&g)
                    .position(|(a, b)| a != b)
                    .unwrap_or(e.len().min(g.len()));
                (e != g).then(|| {
                    format!(
                        "XML differs at node {at}: expected {:?}, received {:?}",
                        e.get(at).map(String::as_str).unwrap_or("<end>"),
                        g.get(at).map(String::as_str).unwrap_or("<end>")
                    )
                })
            }
        },
        Kind::Json => match (
            serde_json::from_slice::<Value>(expected),
            serde_json::from_slice::<Value>(got),
        ) {
            (Ok(e), Ok(g)) => (e != g).then(|| format!("JSON differs: expected {e}, received {g}")),
            (_, Err(e)) => Some(format!("body is not JSON: {e} ({})", snippet(got, 0))),
            (Err(e), _) => Some(format!("recorded body is not JSON: {e}")),
        },
        Kind::Echo => compare_echo(expected, got, context),
        Kind::Info => compare_info(expected, got),
        Kind::XmlRpc => {
            let mask = |d: &[u8]| mask_between(d, b"<name>expires_at</name>\n<value><int>", b"<");
            let (e, g) = (mask(expected), mask(got));
            (e != g).then(|| {
                format!(
                    "body differs (expires_at masked) {}",
                    first_difference(&e, &g)
                )
            })
        }
        Kind::Token => {
            let masked = mask_json_strings(got, &["access_token"]);
            if masked != expected {
                return Some(format!(
                    "body differs (token masked) {}",
                    first_difference(expected, &masked)
                ));
            }
            let token = serde_json::from_slice::<Value>(got)
                .ok()
                .and_then(|v| v.get("access_token")?.as_str().map(str::to_string))
                .unwrap_or_default();
            (!Dynamic::OAuthToken.fits(&token))
                .then(|| format!("access_token {token:?} is not {}", Dynamic::OAuthToken))
        }
        Kind::OpenApi => compare_openapi(expected, got),
        Kind::ReportPrefix => {
            let expected = String::from_utf8_lossy(expected);
            let (head, _) = expected
                .split_once("</ExceptionText>")
                .unwrap_or((&expected, ""));
            let tail = "</ExceptionText>\n    </Exception>\n</ExceptionReport>";
            let ok = got.starts_with(head.as_bytes()) && got.ends_with(tail.as_bytes());
            (!ok).then(|| format!("report differs {}", first_difference(head.as_bytes(), got)))
        }
    }
}
