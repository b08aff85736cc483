//! Comparisons of bodies that are not compared byte for byte: the helper's echo of the
//! upstream request, `/info`, `expires_at` of XML-RPC tokens and the OpenAPI document.

use serde_json::Value;

use crate::bytes::{first_difference, mask_json_strings, snippet};
use crate::compare::BodyContext;
use crate::t06::pairs;
use crate::upstream::{strip_token_params, upstream_headers};
use crate::wire::Message;

/// The echo backend's description of the upstream request: method, path, query, version and
/// body exactly; headers as a sorted list without framing (D-UPSTREAM-HEADERS).
pub fn compare_echo(expected: &[u8], got: &[u8], context: BodyContext) -> Option<String> {
    let parse = |data: &[u8]| serde_json::from_slice::<Value>(data).map_err(|e| e.to_string());
    let (expected, got) = match (parse(expected), parse(got)) {
        (Ok(e), Ok(g)) => (e, g),
        (Err(e), _) => return Some(format!("recorded echo is not JSON: {e}")),
        (_, Err(e)) => return Some(format!("echo is not JSON: {e} ({})", snippet(got, 0))),
    };
    let text = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let headers = |v: &Value| pairs(&v["headers"]);
    let strip = context.strip_credentials;
    let mut problems = Vec::new();
    for key in ["method", "path", "request_version", "body"] {
        if text(&expected, key) != text(&got, key) {
            problems.push(format!(
                "upstream {key}: expected {:?}, received {:?}",
                text(&expected, key),
                text(&got, key)
            ));
        }
    }
    let query = if strip {
        strip_token_params(&text(&expected, "query"))
    } else {
        text(&expected, "query")
    };
    if text(&got, "query") != query {
        problems.push(format!(
            "upstream query: expected {query:?}, received {:?}",
            text(&got, "query")
        ));
    }
    let body_empty = text(&expected, "body").is_empty();
    let want = upstream_headers(&headers(&expected), body_empty, context.wps, strip);
    let have = upstream_headers(&headers(&got), body_empty, context.wps, false);
    if want != have {
        problems.push(format!(
            "upstream headers: expected {want:?}, received {have:?}"
        ));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// D-INFO: the recorded bytes with author, email and version masked; our version must be
/// this crate's and the author must not be the original's.
pub fn compare_info(expected: &[u8], got: &[u8]) -> Option<String> {
    let keys = ["author", "email", "version"];
    let (e, g) = (
        mask_json_strings(expected, &keys),
        mask_json_strings(got, &keys),
    );
    if e != g {
        return Some(format!(
            "body differs (author/email/version masked) {}",
            first_difference(&e, &g)
        ));
    }
    let value: Value = serde_json::from_slice(got).ok()?;
    let objects: Vec<&Value> = match &value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    for object in objects {
        let version = object.get("version").and_then(Value::as_str);
        if version != Some(env!("CARGO_PKG_VERSION")) {
            return Some(format!(
                "version {version:?} is not twitcher's {}",
                env!("CARGO_PKG_VERSION")
            ));
        }
        if object.get("author").and_then(Value::as_str) == Some("Carsten Ehbrecht")
            || object.get("email").and_then(Value::as_str) == Some("ehbrecht@dkrz.de")
        {
            return Some("/info names the original's author".into());
        }
    }
    None
}

/// The text of a struct member of an XML-RPC response (`<name>NAME</name>` followed by a
/// scalar value), unescaped.
pub fn rpc_member(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let at = text.find(&format!("<name>{name}</name>\n<value><"))?;
    let rest = &text[at + name.len() + 21..];
    let (_, rest) = rest.split_once('>')?;
    let end = rest.find('<')?;
    Some(xml_unescape(&rest[..end]))
}

/// Text with the five predefined XML entities resolved.
fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// `expires_at` of a `generate_token` answer, measured from the response's `Date`: ours must
/// lie as far ahead as the recorded one (within the seconds the two clocks may straddle).
pub fn compare_expiry(recorded: &Message, got: &Message) -> Vec<String> {
    let offset = |m: &Message| -> Option<i64> {
        let at: i64 = rpc_member(&m.body, "expires_at")?.parse().ok()?;
        Some(at - http_date(m.header("date")?)?)
    };
    let Some(want) = offset(recorded) else {
        return Vec::new();
    };
    match offset(got) {
        Some(have) if (have - want).abs() <= 2 => Vec::new(),
        Some(have) => vec![format!(
            "expires_at: expected {want} s after the response's Date, received {have} s"
        )],
        None => vec!["no expires_at (or no Date header) to compare".into()],
    }
}

/// Seconds since the epoch of an IMF-fixdate (`Sat, 28 Nov 2026 20:04:24 GMT`).
fn http_date(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time.split(':').filter_map(|p| p.parse().ok()).collect();
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    // Days from 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

/// The recorded `/__api__` (T06: Swagger 2.0 of `/services`) against ours: OpenAPI 3 with
/// twitcher's version, describing every path and method the recorded one described.
pub fn compare_openapi(recorded: &[u8], got: &[u8]) -> Option<String> {
    let recorded: Value = match serde_json::from_slice(recorded) {
        Ok(v) => v,
        Err(e) => return Some(format!("recorded document is not JSON: {e}")),
    };
    let ours: Value = match serde_json::from_slice(got) {
        Ok(v) => v,
        Err(e) => return Some(format!("body is not JSON: {e} ({})", snippet(got, 0))),
    };
    let mut problems = Vec::new();
    let version = ours.get("openapi").and_then(Value::as_str).unwrap_or("");
    if !version.starts_with("3.") {
        problems.push(format!(
            "\"openapi\": {version:?} is not an OpenAPI 3 version"
        ));
    }
    let info = ours.pointer("/info/version").and_then(Value::as_str);
    if info != Some(env!("CARGO_PKG_VERSION")) {
        problems.push(format!(
            "info.version {info:?} is not twitcher's {}",
            env!("CARGO_PKG_VERSION")
        ));
    }
    let paths = recorded.get("paths").and_then(Value::as_object);
    for (path, item) in paths.into_iter().flatten() {
        let methods = item.as_object().into_iter().flatten();
        for (method, _) in methods.filter(|(m, _)| *m != "parameters") {
            if ours
                .pointer(&format!(
                    "/paths/{}/{method}",
                    path.replace('~', "~0").replace('/', "~1")
                ))
                .is_none()
            {
                problems.push(format!("{} {path} is not described", method.to_uppercase()));
            }
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}
