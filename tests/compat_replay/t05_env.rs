//! The T05 environment of the OWS and other-route cases: twitcher with the services and
//! tokens of the setup case 40, Emu's direct answers (case 42), and the probe backend.

use std::path::PathBuf;

use twitcher::store::{AccessToken, Service};

use crate::Res;
use crate::bytes::replace_bytes;
use crate::env::{Direct, Env, now, start_app};
use crate::group::Family;
use crate::stub::{Answer, Canned, Stub};
use crate::transcript::{Case, recorded, sections};

/// A `{'url': 'x', 'public': False, …}` line as the T05 setup printed it.
fn python_dict(text: &str) -> Res<Vec<(String, String)>> {
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or("not a dict")?;
    let mut out = Vec::new();
    let mut rest = inner;
    loop {
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        if rest.is_empty() {
            return Ok(out);
        }
        let r = rest.strip_prefix('\'').ok_or("key without quote")?;
        let end = r.find('\'').ok_or("unterminated key")?;
        let key = r[..end].to_string();
        let r = r[end + 1..]
            .trim_start()
            .strip_prefix(':')
            .ok_or("no colon")?
            .trim_start();
        let (value, r) = match r.strip_prefix('\'') {
            Some(q) => {
                let e = q.find('\'').ok_or("unterminated value")?;
                (q[..e].to_string(), &q[e + 1..])
            }
            None => {
                let e = r.find(',').unwrap_or(r.len());
                (r[..e].trim().to_string(), &r[e..])
            }
        };
        out.push((key, value));
        rest = r;
    }
}

/// twitcher with T05's setup (case 40) against new Emu and probe stubs; `auth`: with
/// `twitcher-auth.ini`'s management user admin / s3cret.
pub async fn start(cases: &[Case], auth: bool) -> Res<Env> {
    let emu = Stub::start().await?;
    let probe = Stub::start().await?;
    probe_routes(cases, &probe)?;
    start_with(cases, auth, emu, probe).await
}

/// twitcher with T05's setup (case 40) against the given Emu and probe stubs.
pub async fn start_with(cases: &[Case], auth: bool, emu: Stub, probe: Stub) -> Res<Env> {
    let management = auth.then_some(("admin", "s3cret"));
    let (app, addr) = start_app("http://127.0.0.1:18056", management).await?;
    let mapping = vec![
        ("127.0.0.1:15056".to_string(), emu.host.clone()),
        ("127.0.0.1:15156".to_string(), probe.host.clone()),
    ];
    let mut env = Env::new(Family::T05, app, addr, emu, probe, mapping);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let setup = std::fs::read(root.join("compat/golden/v056/transcripts/40-ows-setup.txt"))
        .map_err(|e| e.to_string())?;
    for (label, payload) in sections(&setup) {
        let text = String::from_utf8_lossy(&payload).into_owned();
        if let Some(dict) = text.trim().strip_prefix("RESULT ") {
            let fields = python_dict(dict).map_err(|e| format!("40-ows-setup {label}: {e}"))?;
            let get = |k: &str| {
                fields
                    .iter()
                    .find(|(f, _)| f == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            env.services.push(Service {
                name: get("name"),
                url: env.map(&get("url")),
                service_type: get("type").into(),
                purl: get("purl"),
                public: get("public") == "True",
                auth: get("auth").into(),
                verify: get("verify") == "True",
            });
        } else if label == "tokens" {
            for line in text.lines() {
                let Some((_, token)) = line.rsplit_once('=') else {
                    continue;
                };
                // `T=` valid, `T_exp=` from generate_token(0), `T_rev=` revoked (not stored).
                let expires_at = if line.contains(" T=") {
                    now() + 3600
                } else if line.contains("T_exp=") {
                    now() - 1
                } else {
                    continue;
                };
                let token = AccessToken {
                    token: token.trim().to_string(),
                    expires_at,
                };
                env.app
                    .store
                    .save_access_token(&token)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    env.register_all().await?;
    env.direct = Direct {
        caps: Some(env.canned(&recorded(cases, 42, 1)?.response)),
        describe: Some(env.canned(&recorded(cases, 42, 2)?.response)),
        execute: Some(env.canned(&recorded(cases, 42, 3)?.response)),
        execute_post: None,
    };
    Ok(env)
}

/// The T05 probe backend (:15156): what its routes answered, from the transcripts where they
/// show it (passthrough cases), reconstructed from rewritten answers, or invented where the
/// recording only shows twitcher's refusal (marked "guess").
fn probe_routes(cases: &[Case], probe: &Stub) -> Res<()> {
    let mapping = [("127.0.0.1:15156", probe.host.as_str())];
    let map = |data: &[u8]| {
        mapping.iter().fold(data.to_vec(), |d, (f, t)| {
            replace_bytes(&d, f.as_bytes(), t.as_bytes())
        })
    };
    let body = |case: u32, k: usize| recorded(cases, case, k).map(|e| e.response.body.clone());
    // A rewritten document back in the backend's terms.
    let unrewrite = |case: u32, k: usize, proxy: &str, backend: &str| {
        body(case, k).map(|b| replace_bytes(&b, proxy.as_bytes(), backend.as_bytes()))
    };
    let wms_prolog: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    let mut wms111 = wms_prolog.to_vec();
    wms111.extend_from_slice(
        b"<!DOCTYPE WMT_MS_Capabilities SYSTEM \"http://schemas.opengis.net/wms/1.1.1/WMS_MS_Capabilities.dtd\">\n",
    );
    wms111.extend(unrewrite(
        79,
        1,
        "http://127.0.0.1:18056/ows/proxy/p_wms111",
        "http://127.0.0.1:15156/wms111",
    )?);
    let mut wms130 = wms_prolog.to_vec();
    wms130.extend(unrewrite(
        79,
        2,
        "http://127.0.0.1:18056/ows/proxy/p_wms130",
        "http://127.0.0.1:15156/wms130",
    )?);
    let doc = |path: &str| {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Result><Link href=\"http://127.0.0.1:15156{path}/out.nc\"/><Text>see http://127.0.0.1:15156{path}</Text></Result>\n"
        )
    };
    let routes: Vec<(&str, Canned)> = vec![
        (
            "/json",
            Canned::new(200, Some("application/json"), body(76, 1)?),
        ),
        ("/noct", Canned::new(200, None, body(76, 2)?)),
        (
            "/plain",
            Canned::new(200, Some("text/plain"), "plain text\n"),
        ), // guess
        ("/png", Canned::new(200, Some("image/png"), body(76, 4)?)),
        (
            "/err500",
            Canned::new(500, Some("text/plain"), body(81, 2)?),
        ),
        (
            "/err400exc",
            Canned::new(400, Some("text/xml"), body(76, 6)?),
        ),
        (
            "/err404xml",
            Canned::new(
                404,
                Some("text/xml"),
                "<?xml version=\"1.0\"?>\n<NotFound/>\n",
            ),
        ), // guess
        (
            "/html",
            Canned::new(
                200,
                Some("text/html; charset=utf-8"),
                "<html><body>probe</body></html>\n",
            ),
        ), // guess
        // guess: status and Location (the original followed it to `GET /json`)
        (
            "/redirect",
            Canned::new(302, None, Vec::new()).with("Location", "http://127.0.0.1:15156/json"),
        ),
        ("/wms111", Canned::new(200, Some("text/xml"), wms111)),
        ("/wms130", Canned::new(200, Some("text/xml"), wms130)),
        // guess: the original refused it, so its body was never shown; it names the service
        // URL so that rewriting is visible.
        (
            "/sexml",
            Canned::new(
                200,
                Some("application/vnd.ogc.se_xml"),
                "<?xml version=\"1.0\"?>\n<ServiceExceptionReport version=\"1.1.1\"><ServiceException>see http://127.0.0.1:15156/sexml</ServiceException></ServiceExceptionReport>\n",
            ),
        ),
        (
            "/sexml2",
            Canned::new(200, Some("application/vnd.ogc.se+xml"), body(78, 2)?),
        ),
        (
            "/xmliso",
            Canned::new(
                200,
                Some("text/xml;charset=ISO-8859-1"),
                unrewrite(
                    78,
                    3,
                    "http://127.0.0.1:18056/ows/proxy/p_xmliso",
                    "http://127.0.0.1:15156/xmliso",
                )?,
            ),
        ),
        (
            "/xmlupper",
            Canned::new(200, Some("Text/XML"), doc("/xmlupper")),
        ), // guess
        (
            "/xmlspace",
            Canned::new(200, Some("text/xml ; charset=utf-8"), doc("/xmlspace")),
        ), // guess
        (
            "/hop",
            Canned::new(200, Some("text/html"), body(81, 1)?)
                .with("X-Custom", "kept")
                .with("Set-Cookie", "a=b; Path=/")
                .with("Keep-Alive", "timeout=5")
                .with("Proxy-Authenticate", "Basic realm=\"probe\"")
                .with("Public", "GET")
                .with("Upgrade", "h2c"),
        ),
    ];
    for (path, mut canned) in routes {
        canned.body = map(&canned.body);
        canned.headers = canned
            .headers
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&map(v.as_bytes())).into_owned()))
            .collect();
        probe.route(path, Answer::Canned(canned));
    }
    Ok(())
}
