//! T05 (Twitcher 0.5.6): which cases are replayed, what twitcher must answer to each
//! exchange, and the cases as loaded from `compat/golden/v056/transcripts/*.txt`.

use std::path::Path;

use crate::Res;
use crate::expect::{CHALLENGE, Expect, Want, backend_down, malformed, methods, not_found};
use crate::group::{Family, Group};
use crate::transcript::{Case, Exchange, case_files, sections};
use crate::wire::parse_message;

/// Fault strings of twitcher's `/RPC2` (D-RPC-FAULTS, D-RPC-AUTH, D-RPC-GET).
const RPC_AUTH: &str = "authentication required";
const RPC_POST_ONLY: &str = "parse error: XML-RPC calls are sent with POST";
const RPC_NOT_A_CALL: &str = "parse error: not a well-formed XML-RPC methodCall";
const RPC_HOURS: &str = "generate_token: argument valid_in_hours must be a number";

/// `/` of T05 with the 0.6 links (D-INFO), built from T05's `twitcher.url`.
const T05_FRONTPAGE: &str = concat!(
    r#"{"message": "Twitcher Frontpage", "information_uri": "http://127.0.0.1:18056/info", "#,
    r#""versions_uri": "http://127.0.0.1:18056/versions", "services_uri": "http://127.0.0.1:18056/services", "#,
    r#""client_uri": "http://127.0.0.1:18056/oauth/client", "token_uri": "http://127.0.0.1:18056/oauth/token", "#,
    r#""openapi_uri": "http://127.0.0.1:18056/__api__"}"#
);

/// An XML-RPC error: T05 answered 500 with an OWS report, twitcher a fault (HTTP 200).
fn rpc_fault(code: i32, text: &'static str) -> Expect {
    Expect::deviates(&["D-RPC-FAULTS"], Want::Fault(200, code, text))
}

/// `/RPC2` without the management user's credentials (T05 accepted any).
fn rpc_unauthorized() -> Expect {
    Expect::deviates(&["D-RPC-AUTH"], Want::Fault(401, -32500, RPC_AUTH)).headers(CHALLENGE)
}

/// T05 (0.5.6), case number and exchange index (1-based).
pub fn expect_t05(case: u32, k: usize) -> Expect {
    // Emu's Execute answer names Emu in `serviceInstance`; the original left
    // `text/xml; charset=utf-8` alone, twitcher rewrites every XML body.
    const EMU: &[(&str, &str)] = &[(
        "http://127.0.0.1:15056/wps",
        "http://127.0.0.1:18056/ows/proxy/emu",
    )];
    const EMU_CERT: &[(&str, &str)] = &[(
        "http://127.0.0.1:15056/wps",
        "http://127.0.0.1:18056/ows/proxy/emu_cert",
    )];
    const SEXML: &[(&str, &str)] = &[(
        "http://127.0.0.1:15156/sexml",
        "http://127.0.0.1:18056/ows/proxy/p_sexml",
    )];
    const XMLUPPER: &[(&str, &str)] = &[(
        "http://127.0.0.1:15156/xmlupper",
        "http://127.0.0.1:18056/ows/proxy/p_xmlupper",
    )];
    const XMLSPACE: &[(&str, &str)] = &[(
        "http://127.0.0.1:15156/xmlspace",
        "http://127.0.0.1:18056/ows/proxy/p_xmlspace",
    )];
    match (case, k) {
        // XML-RPC (cases 1–29 without basic auth, 87–88 with `twitcher-auth.ini`); the
        // `(curl)` exchanges repeat the call before them with curl.
        (3, 4) | (29, 3) => rpc_fault(-32602, RPC_HOURS),
        (11, _) => rpc_fault(-32500, "name must have at least 2 chars."),
        (23, 1 | 3) => rpc_fault(-32601, "method not found: nosuch_method"),
        (23, 2) => rpc_fault(-32601, "method not found: system.listMethods"),
        (24, 1) => rpc_fault(-32602, "revoke_token: too many arguments"),
        (24, 2) => rpc_fault(-32602, "register_service: argument url was omitted"),
        (24, 3) => rpc_fault(-32602, "list_services: too many arguments"),
        (24, 4) => rpc_fault(-32602, "generate_token: too many arguments"),
        // Malformed, empty, and a methodResponse instead of a methodCall (T05: -32601).
        (26, _) => rpc_fault(-32700, RPC_NOT_A_CALL),
        // GET, HEAD, PUT with a valid call, curl's GET.
        (27, _) => Expect::deviates(&["D-RPC-GET"], Want::Fault(405, -32700, RPC_POST_ONLY))
            .headers(&[("allow", Some("POST"))]),
        (29, 7) => rpc_fault(-32601, "method not found:  list_services "),
        (87 | 88, 3) => Expect::matches(),
        (87 | 88, _) => rpc_unauthorized(),
        (48..=50 | 52, 1) | (57, _) => {
            Expect::deviates(&["D-REWRITE-ALL-XML"], Want::RecordedWith(EMU))
        }
        // T05 refused the Bearer token; twitcher forwards to Emu.
        (51, 1) => Expect::deviates(&["D-BEARER", "D-REWRITE-ALL-XML"], Want::Backend(EMU)),
        (58, 6) => malformed("Document is empty"),
        (58, 7) => Expect::deviates(&["D-FORM-POST"], Want::Backend(&[])),
        (59, 1) => malformed("Namespace prefix wps on Execute is not defined"),
        // The proxy URL names the service as is (`/ows/proxy/emu_cert`, SPEC §3), as T05
        // wrote it (69.2, 69.5, 78.1, 78.3–78.5, 79.1, 79.2).
        (69, 2) => Expect::deviates(&["D-REWRITE-ALL-XML"], Want::RecordedWith(EMU_CERT)),
        (69, 5) => Expect::matches(),
        (71, _) => methods(),
        (72, _) => backend_down(),
        (75, 1 | 2 | 4) => Expect::deviates(&["D-CREDENTIALS"], Want::Recorded),
        (76, 8) => Expect::deviates(&["D-REDIRECTS", "D-WPS-HEADERS"], Want::Backend(&[]))
            .headers(&[("location", Some("http://127.0.0.1:15156/json"))]),
        (78, 1) => Expect::deviates(
            &["D-CONTENT-TYPES", "D-REWRITE-ALL-XML"],
            Want::Backend(SEXML),
        ),
        (78, 3) => Expect::matches(),
        (78, 4) => Expect::deviates(
            &["D-CONTENT-TYPES", "D-REWRITE-ALL-XML"],
            Want::Backend(XMLUPPER),
        ),
        (78, 5) => Expect::deviates(
            &["D-CONTENT-TYPES", "D-REWRITE-ALL-XML"],
            Want::Backend(XMLSPACE),
        ),
        (79, _) => Expect::matches(),
        // The token in the last path element authorizes and is not forwarded.
        (80, 1) => Expect::deviates(&["D-CREDENTIALS"], Want::Recorded)
            .upstream("/json?service=WPS&request=Execute&version=1.0.0&identifier=x"),
        // A path ending in `/`: the token is the last *non-empty* segment (T05 README §3.6)
        // and is not forwarded (D-CREDENTIALS); what is left, `/`, is the service itself.
        (80, 2) => Expect::deviates(&["D-CREDENTIALS", "D-DOT-SEGMENTS"], Want::Recorded)
            .upstream("/json?service=WPS&request=Execute&version=1.0.0&identifier=x"),
        (80, 3) => Expect::deviates(&["D-CREDENTIALS"], Want::Recorded)
            .upstream("/json/a?service=WPS&request=Execute&version=1.0.0&identifier=x"),
        (81, 1) => Expect::matches().headers(&[
            ("x-custom", Some("kept")),
            ("set-cookie", Some("a=b; Path=/")),
            ("keep-alive", None),
            ("proxy-authenticate", None),
            ("public", None),
            ("upgrade", None),
        ]),
        (81, 4 | 5) => Expect::deviates(&["D-CREDENTIALS"], Want::Recorded),
        (82, 1) | (85, 3) | (90, 1) => Expect::deviates(&["D-INFO"], Want::Json(T05_FRONTPAGE)),
        (83, 1) | (84, 1) => Expect::deviates(&["D-INFO"], Want::Info),
        (85, 1) | (90, 3) => not_found("/nosuch"),
        (85, 2) => not_found("/info/extra"),
        (85, 4) => not_found("/RPC2/x"),
        (85, 5) => not_found("/no such<x>&'"),
        _ => Expect::matches(),
    }
}

/// T05 cases replayed: XML-RPC (1–29; 87–88 with basic auth configured), the OWS cases (40
/// is setup, 42 a direct Emu recording used as backend bodies) and the other routes. 30–39
/// and 89 are twitcherctl runs (`twitcherctl/tests/against_server.rs`).
pub fn t05_group(case: u32) -> Option<Group> {
    match case {
        1..=29 | 87 | 88 => Some(Group::T05Rpc),
        41 | 43..=81 => Some(Group::T05Ows),
        82..=85 | 90 => Some(Group::T05Other),
        _ => None,
    }
}

/// T05 cases in scope (40 and 42 are loaded for the setup and Emu's direct answers).
pub fn load_t05(dir: &Path) -> Res<Vec<Case>> {
    let mut cases = Vec::new();
    for (number, stem, path) in case_files(dir, ".txt")? {
        if t05_group(number).is_none() && number != 40 && number != 42 {
            continue;
        }
        let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let sections = sections(&data);
        let mut requests: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut responses: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut upstream: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut setup = Vec::new();
        let mut curl: (Option<String>, Option<Vec<u8>>, Option<Vec<u8>>) = (None, None, None);
        for (label, payload) in &sections {
            let mut words = label.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("REQUEST"), Some(k), _) => {
                    requests.extend(k.parse().ok().map(|k| (k, payload.clone())))
                }
                (Some("RESPONSE"), Some(k), _) => {
                    responses.extend(k.parse().ok().map(|k| (k, payload.clone())))
                }
                (Some("UPSTREAM"), Some("REQUEST"), Some(kj)) => {
                    let k = kj.split('.').next().and_then(|k| k.parse().ok());
                    upstream.extend(k.map(|k| (k, payload.clone())));
                }
                (Some("SETUP"), _, _) => {
                    setup.extend(String::from_utf8_lossy(payload).lines().map(str::to_string))
                }
                (Some("CURL"), Some("COMMAND"), _) => {
                    curl.0 = Some(String::from_utf8_lossy(payload).trim().to_string())
                }
                (Some("CURL"), Some("REQUEST"), _) => curl.1 = Some(payload.clone()),
                (Some("CURL"), Some("OUTPUT"), _) => curl.2 = Some(payload.clone()),
                _ => {}
            }
        }
        // The XML-RPC cases repeat one call with curl (`curl -si …`): one more exchange.
        let mut curl_k = None;
        if let (Some(command), body, Some(output)) = curl {
            let k = requests.iter().map(|(k, _)| *k).max().unwrap_or(0) + 1;
            requests.push((k, curl_request(&command, body.as_deref())?));
            responses.push((k, output));
            curl_k = Some(k);
        }
        let mut exchanges = Vec::new();
        for (k, raw) in requests {
            let label = format!("T05 {number}.{k}");
            let head = raw.starts_with(b"HEAD ");
            let response = responses
                .iter()
                .find(|(r, _)| *r == k)
                .map(|(_, b)| b.as_slice());
            let response = match response {
                Some(bytes) => parse_message(bytes, true, head)
                    .map_err(|e| format!("{label}: response: {e}"))?,
                None => continue,
            };
            let ups = upstream
                .iter()
                .filter(|(u, _)| *u == k)
                .map(|(_, b)| parse_message(b, false, false))
                .collect::<Res<Vec<_>>>()?;
            let label = if Some(k) == curl_k {
                format!("{label} (curl)")
            } else {
                label
            };
            exchanges.push(Exchange::new(label, k, raw, response, ups)?);
        }
        let mut case = Case::new(Family::T05, number, &stem, path, t05_group(number));
        case.exchanges = exchanges;
        case.setup = setup;
        cases.push(case);
    }
    Ok(cases)
}

/// The request a recorded `curl -si [-X M] [-H 'h: v'] [--data-binary @-] URL` sent (curl's
/// own headers as curl writes them; the body from the recorded request body).
fn curl_request(command: &str, body: Option<&[u8]>) -> Res<Vec<u8>> {
    let words = shell_words(command.split(" < ").next().unwrap_or(command));
    let mut method = None;
    let mut headers = Vec::new();
    let mut url = None;
    let mut it = words.iter();
    while let Some(word) = it.next() {
        match word.as_str() {
            "-X" => method = it.next().cloned(),
            "-H" => headers.extend(it.next().cloned()),
            w if w.starts_with("http://") => url = Some(w.to_string()),
            _ => {}
        }
    }
    let url = url::Url::parse(&url.ok_or(format!("no URL in {command:?}"))?)
        .map_err(|e| e.to_string())?;
    let method = method.unwrap_or_else(|| if body.is_some() { "POST" } else { "GET" }.into());
    let host = format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(80)
    );
    let mut raw = format!(
        "{method} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n",
        url.path()
    );
    for header in headers {
        raw.push_str(&format!("{header}\r\n"));
    }
    if let Some(body) = body {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body.unwrap_or_default());
    Ok(raw)
}

/// Words of a shell command line with single quotes (enough for the recorded curl lines).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}
