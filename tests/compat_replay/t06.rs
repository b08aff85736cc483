//! T06 (Twitcher 0.6.0): which cases are replayed, what twitcher must answer to each, and
//! the cases as loaded from `compat/golden/v060/transcripts/*.json`.

use std::path::Path;

use serde_json::Value;

use crate::Res;
use crate::expect::{
    CHALLENGE, Expect, JSON_CT, NAC, Want, backend_down, malformed, methods, not_found,
};
use crate::group::{Family, Group};
use crate::transcript::{Case, Exchange, case_files};
use crate::wire::{Message, parse_head};

const IPV: &str = "InvalidParameterValue";
const FORBIDDEN: &str = "AccessForbidden";
const TOKEN_REQUIRED: &str = "Access token is required to access this service.";
const TOKEN_EXPIRED: &str = "Access token is expired.";
const CERT_NEEDED: &str = "A valid X.509 client certificate is needed.";
/// twitcher's 401 of `/oauth/client` and the registry (D-MGMT-401).
const MGMT_401: &str = concat!(
    r#"{"message": "This server could not verify that you are authorized to access the resource. "#,
    r#"Give the management user's credentials.", "code": "401 Unauthorized", "title": "Unauthorized"}"#
);
/// Token endpoint answers must not be cached (RFC 6749 §5.1), as T06 answered.
const NO_STORE: &[(&str, Option<&str>)] = &[
    ("cache-control", Some("no-store")),
    ("pragma", Some("no-cache")),
];
/// `Allow` of axum's 405 on `/services/{name}` and on `/services`.
const ALLOW_SERVICE: &[(&str, Option<&str>)] = &[("allow", Some("GET,HEAD,DELETE"))];
const ALLOW_SERVICES: &[(&str, Option<&str>)] = &[("allow", Some("GET,HEAD,POST,DELETE"))];

/// A refused access: T05's texts instead of T06's one.
fn t06_text(text: &'static str) -> Expect {
    Expect::deviates(&["D-T06-TEXTS"], Want::Report(401, NAC, FORBIDDEN, text))
}

/// A refused management request: our JSON 401 with our realm instead of T06's negotiated
/// page with `realm="Realm"`.
fn mgmt_401() -> Expect {
    Expect::deviates(&["D-MGMT-401"], Want::Answer(401, Some(JSON_CT), MGMT_401)).headers(CHALLENGE)
}

/// An unsupported method on the registry: axum's 405 (empty body, its `Allow`).
fn rest_405(allow: &'static [(&'static str, Option<&'static str>)]) -> Expect {
    Expect::deviates(&["D-REST-405"], Want::Answer(405, None, "")).headers(allow)
}

/// T06 (0.6.0), case number (each T06 case is one exchange).
pub fn expect_t06(case: u32) -> Expect {
    const EMUPUB: &[(&str, &str)] = &[(
        "http://127.0.0.1:15060/wps",
        "http://127.0.0.1:18060/ows/proxy/emupub",
    )];
    const EMUCERT: &[(&str, &str)] = &[(
        "http://127.0.0.1:15060/wps",
        "http://127.0.0.1:18060/ows/proxy/emucert",
    )];
    const HELPER: &[(&str, &str)] = &[(
        "http://127.0.0.1:15160/h",
        "http://127.0.0.1:18060/ows/proxy/helper",
    )];
    const HELPER_WMS: &[(&str, &str)] = &[(
        "http://127.0.0.1:15160/h",
        "http://127.0.0.1:18060/ows/proxy/helperwms",
    )];
    const HTTPS: &[(&str, &str)] = &[(
        "http://127.0.0.1:18060/ows/proxy/emu",
        "https://127.0.0.1:18060/ows/proxy/emu",
    )];
    // A client's scopes: T06 gave new clients `compute`, twitcher `compute register`.
    const CLIENT_SCOPES: &[(&str, &str)] = &[(
        r#""scope": ["compute"]"#,
        r#""scope": ["compute", "register"]"#,
    )];
    // Case 108's `public` field is honoured (T06 ignored it), also in later listings.
    const EXTRA_PUBLIC: &[(&str, &str)] = &[(
        r#""name": "extra", "type": "WPS", "purl": "", "auth": "token", "public": false"#,
        r#""name": "extra", "type": "WPS", "purl": "", "auth": "token", "public": true"#,
    )];
    match case {
        // OAuth: no scope asked, so `compute` alone is granted, as T06 gave (53, and 55 by
        // GET, which takes its parameters from the query as T06 did); T06 gave a client
        // allowed `compute register` both (134).
        134 => Expect::deviates(&["D-OAUTH-SCOPES"], Want::Token("compute")).headers(NO_STORE),
        69 => Expect::deviates(
            &["D-OAUTH-GET"],
            Want::Answer(
                405,
                Some(JSON_CT),
                r#"{"error": "invalid_request", "error_description": "The token endpoint accepts GET and POST requests."}"#,
            ),
        )
        .headers(&[
            ("allow", Some("GET, POST")),
            ("cache-control", Some("no-store")),
            ("pragma", Some("no-cache")),
        ]),
        // Basic client authentication works (T06: invalid_client).
        56 => Expect::deviates(&["D-OAUTH-ERRORS"], Want::Token("compute"))
        .headers(NO_STORE),
        // T06's client had `compute` only: invalid_scope (401).
        63 => Expect::deviates(&["D-OAUTH-SCOPES"], Want::Token("register")).headers(NO_STORE),
        64 => {
            Expect::deviates(&["D-OAUTH-SCOPES"], Want::Token("compute register")).headers(NO_STORE)
        }
        71..=77 | 85 | 87..=89 | 116 => mgmt_401(),
        78..=82 => Expect::deviates(&["D-OAUTH-SCOPES"], Want::RecordedWith(CLIENT_SCOPES)),
        // Reads without credentials are open.
        83 | 84 => Expect::deviates(&["D-REST-TOKENS"], Want::RecordedOf(86)),
        111 => Expect::deviates(&["D-REST-TOKENS"], Want::RecordedOf(110)),
        95 => Expect::deviates(
            &["D-REST-URLS"],
            Want::Answer(
                400,
                Some(JSON_CT),
                concat!(
                    r#"{"status": "error", "errors": [{"location": "body", "name": "", "#,
                    r#""description": "Invalid JSON: EOF while parsing a value at line 1 column 14"}, "#,
                    r#"{"location": "body", "name": "", "description": "Required"}]}"#
                ),
            ),
        ),
        99 => Expect::deviates(
            &["D-REST-VALIDATION"],
            Want::Answer(
                400,
                Some(JSON_CT),
                concat!(
                    r#"{"status": "error", "errors": [{"location": "body", "name": "", "#,
                    r#""description": "Content-Type text/plain is not supported: send JSON or a form."}]}"#
                ),
            ),
        ),
        100 => Expect::deviates(
            &["D-REST-VALIDATION"],
            Want::Answer(
                400,
                Some(JSON_CT),
                concat!(
                    r#"{"status": "error", "errors": [{"location": "body", "name": "name", "#,
                    r#""description": "name must have at least 2 chars."}]}"#
                ),
            ),
        ),
        108 => Expect::deviates(
            &["D-REST-VALIDATION"],
            Want::RecordedWith(&[(r#""public": false"#, r#""public": true"#)]),
        ),
        109 | 124 => Expect::deviates(&["D-REST-VALIDATION"], Want::RecordedWith(EXTRA_PUBLIC)),
        117 | 118 => rest_405(ALLOW_SERVICE),
        119 | 120 | 122 => rest_405(ALLOW_SERVICES),
        123 => not_found("/services/"),
        // An OpenAPI 3 document instead of T06's Swagger 2.0 one, and no swagger-ui page.
        240 => Expect::deviates(&["D-OPENAPI-3"], Want::OpenApi),
        241 | 242 => Expect::deviates(
            &["D-NO-API-EXPLORER", "D-NOT-FOUND"],
            Want::Report(404, NAC, NAC, "/api-explorer"),
        ),
        243 => not_found("/api-explorer/"),
        // twitcher believes `X-Forwarded-Proto` from loopback peers (T05/gunicorn did, case
        // 45 of the T05 README); T06/waitress ignored it.
        140 => Expect::deviates(&["D-FORWARDED-PROTO"], Want::RecordedWith(HTTPS)),
        147 => Expect::deviates(
            &["D-T06-REQUESTS"],
            Want::Report(400, IPV, "version", "version 2.0.0 is not supported"),
        ),
        165 => Expect::deviates(
            &["D-T06-REQUESTS"],
            Want::Report(400, IPV, "request", "request getstatus is not supported"),
        ),
        18 | 148 | 154 | 156 | 168 | 194 => t06_text(TOKEN_REQUIRED),
        152 => Expect::deviates(
            &["D-BEARER", "D-T06-TEXTS"],
            Want::Report(401, NAC, FORBIDDEN, TOKEN_REQUIRED),
        ),
        155 => t06_text(TOKEN_EXPIRED),
        26 | 28..=30 | 163 => t06_text(CERT_NEEDED),
        161 => Expect::deviates(&["D-REWRITE-ALL-XML"], Want::RecordedWith(EMUPUB)),
        162 | 164 => Expect::deviates(&["D-REWRITE-ALL-XML"], Want::RecordedWith(EMUCERT)),
        174 => Expect::deviates(
            &["D-MALFORMED-XML"],
            Want::ReportPrefix(400, NAC, NAC, "The XML request is not well-formed: "),
        ),
        175 => malformed("Document is empty"),
        176 => Expect::deviates(&["D-FORM-POST"], Want::Backend(&[])),
        185..=187 => Expect::deviates(
            &["D-UNKNOWN-SERVICE"],
            Want::Report(404, IPV, "service", "Service not found"),
        ),
        188..=192 => methods(),
        193 | 195 => backend_down(),
        197 | 198 => Expect::deviates(&["D-CREDENTIALS"], Want::Recorded),
        208 => Expect::deviates(&["D-REWRITE-ALL-XML"], Want::RecordedWith(HELPER)),
        218 => Expect::matches().headers(&[
            ("x-custom", None),
            ("set-cookie", None),
            ("cache-control", None),
        ]),
        // `wms` services lead back through the proxy (T06 passed them through).
        213 => Expect::deviates(&["D-WMS-REWRITE"], Want::RecordedWith(HELPER_WMS)),
        220 => Expect::deviates(&["D-WMS-REWRITE"], Want::RecordedWith(HELPER_WMS)).headers(&[
            ("x-custom", Some("kept?")),
            ("set-cookie", Some("a=b; Path=/")),
            ("cache-control", Some("max-age=60")),
        ]),
        225..=227 => Expect::deviates(
            &["D-PROXY-NONAME"],
            Want::Report(404, IPV, "service", "Service not found"),
        ),
        229 => Expect::deviates(
            &["D-AMBIGUOUS-KVP"],
            Want::Report(400, IPV, "service", "Parameter \"service\" is given more than once"),
        ),
        234 | 235 => Expect::deviates(&["D-INFO"], Want::Info),
        236..=239 => not_found("/nope"),
        _ => Expect::matches(),
    }
}

/// T06 cases replayed: OAuth (53–82, 131–134), REST (83–130), the OWS cases, the other
/// routes, `/__api__` and `/api-explorer` (240–243), and the tutorial's curl runs. 1–15, 19,
/// 22, 23, 32–52, 127–129 and 135 are twitcherctl runs
/// (`twitcherctl/tests/against_server.rs`); 244–247 direct Emu recordings.
pub fn t06_group(case: u32) -> Option<Group> {
    match case {
        53..=82 | 131..=134 => Some(Group::T06OAuth),
        83..=126 | 130 => Some(Group::T06Rest),
        136..=230 => Some(Group::T06Ows),
        231..=239 => Some(Group::T06Other),
        240..=243 => Some(Group::T06OpenApi),
        16..=18 | 20 | 21 | 24..=31 => Some(Group::T06Tutorial),
        _ => None,
    }
}

/// T06 cases in scope plus 130 (registered services) and 244–247 (Emu's direct answers).
pub fn load_t06(dir: &Path) -> Res<Vec<Case>> {
    let mut cases = Vec::new();
    for (number, stem, path) in case_files(dir, ".json")? {
        if t06_group(number).is_none() && number != 130 && !(244..=247).contains(&number) {
            continue;
        }
        let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let v: Value =
            serde_json::from_slice(&data).map_err(|e| format!("{}: {e}", path.display()))?;
        let label = format!("T06 {number}");
        let exchange = if v.get("request").is_some() {
            t06_http(&label, &v)?
        } else {
            t06_curl(&label, &v)?
        };
        let mut case = Case::new(Family::T06, number, &stem, path, t06_group(number));
        case.exchanges = vec![exchange];
        cases.push(case);
    }
    Ok(cases)
}

/// `[name, value]` pairs of a recorded header list.
/// `[[name, value], …]` of a JSON transcript as pairs (anything else: none).
pub fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| {
                    Some((
                        p.get(0)?.as_str()?.to_string(),
                        p.get(1)?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A recorded body (`text` or `base64`).
fn json_body(v: &Value) -> Res<Vec<u8>> {
    if let Some(text) = v.get("text").and_then(Value::as_str) {
        return Ok(text.as_bytes().to_vec());
    }
    if let Some(b64) = v.get("base64").and_then(Value::as_str) {
        return base64_decode(b64);
    }
    Ok(Vec::new())
}

/// An exchange recorded by the capture script (request and response as JSON).
fn t06_http(label: &str, v: &Value) -> Res<Exchange> {
    let req = &v["request"];
    let resp = &v["response"];
    let method = req["method"].as_str().unwrap_or("GET");
    let target = req["target"].as_str().unwrap_or("/");
    let mut raw = format!("{method} {target} HTTP/1.1\r\n");
    for (k, val) in pairs(&req["headers"]) {
        raw.push_str(&format!("{k}: {val}\r\n"));
    }
    raw.push_str("\r\n");
    let mut raw = raw.into_bytes();
    raw.extend(json_body(&req["body"])?);
    let status = resp["status"].as_u64().unwrap_or(0);
    let reason = resp["reason"].as_str().unwrap_or_default();
    let response = Message {
        start: format!("HTTP/1.1 {status} {reason}"),
        headers: pairs(&resp["headers"]),
        body: json_body(&resp["body"])?,
    };
    Exchange::new(label.to_string(), 1, raw, response, Vec::new())
}

/// A tutorial `curl -v` run: the request and response heads from stderr, the body on stdout.
fn t06_curl(label: &str, v: &Value) -> Res<Exchange> {
    let stderr = v["stderr"].as_str().unwrap_or_default();
    let mut request: Vec<&str> = Vec::new();
    let mut response: Vec<&str> = Vec::new();
    for line in stderr.lines() {
        if let Some(l) = line.strip_prefix("> ") {
            request.push(l);
        } else if let Some(l) = line.strip_prefix("< ") {
            response.push(l);
        }
    }
    let request: Vec<&str> = request
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let response: Vec<&str> = response
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .collect();
    if request.is_empty() || response.is_empty() {
        return Err(format!("{label}: no request/response in curl's stderr"));
    }
    let raw = format!("{}\r\n\r\n", request.join("\r\n")).into_bytes();
    let (start, headers) = parse_head(response.join("\r\n").as_bytes())?;
    let body = v["stdout"].as_str().unwrap_or_default().as_bytes().to_vec();
    Exchange::new(
        label.to_string(),
        1,
        raw,
        Message {
            start,
            headers,
            body,
        },
        Vec::new(),
    )
}

/// Standard base64, padding and line breaks ignored.
fn base64_decode(s: &str) -> Res<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' => continue,
            _ => return Err(format!("bad base64 character {c}")),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}
