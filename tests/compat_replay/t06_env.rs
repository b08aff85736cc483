//! The T06 environment of the OWS, tutorial, other-route and OpenAPI cases: twitcher with
//! the services of case 130 and the OAuth tokens the cases use, Emu's direct answers
//! (244–247), and the helper backend.

use serde_json::Value;
use twitcher::store::{OAuthToken, Service};

use crate::Res;
use crate::bytes::replace_bytes;
use crate::env::{Direct, Env, now, start_app};
use crate::group::Family;
use crate::stub::{Answer, Canned, Stub};
use crate::transcript::{Case, recorded};

/// twitcher with T06's registered services (case 130) and OAuth tokens.
pub async fn start(cases: &[Case]) -> Res<Env> {
    let emu = Stub::start().await?;
    let helper = Stub::start().await?;
    let (app, addr) = start_app("http://127.0.0.1:18060", None).await?;
    let emu_port = emu.host.rsplit(':').next().unwrap_or_default().to_string();
    let mapping = vec![
        ("127.0.0.1:15060".to_string(), emu.host.clone()),
        (
            "localhost:15060".to_string(),
            format!("localhost:{emu_port}"),
        ),
        ("127.0.0.1:15160".to_string(), helper.host.clone()),
    ];
    let mut env = Env::new(Family::T06, app, addr, emu, helper, mapping);
    let listed: Value = serde_json::from_slice(&recorded(cases, 130, 1)?.response.body)
        .map_err(|e| e.to_string())?;
    for s in listed.as_array().into_iter().flatten() {
        let text = |k: &str| {
            s.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let flag = |k: &str| s.get(k).and_then(Value::as_bool).unwrap_or_default();
        env.services.push(Service {
            name: text("name"),
            url: env.map(&text("url")),
            service_type: text("type").into(),
            purl: text("purl"),
            public: flag("public"),
            auth: text("auth").into(),
            verify: flag("verify"),
        });
    }
    env.register_all().await?;
    // Tokens the recording got from /oauth/token: 149 ff. (scope compute), 133 ("compute
    // register"), 19 (the tutorial's), 155 (expiry set to 2000-01-01 in the DB). The revoked
    // (156) and unknown (154) tokens are not stored.
    let tokens = [
        ("jzMYqqqqtwwVdWuWn6hbJBOxOPrDsr", "compute", now() + 3600),
        (
            "Egio0OeHYpbLyWH6VSv9RV4yu1SRkc",
            "compute register",
            now() + 3600,
        ),
        ("kYTsQwbnlL69zg0XJ0rk69vsO6vEvY", "compute", now() + 3600),
        ("mAAeGY0KEdiZBEKr7a9xbiQzvomwO7", "compute", 946_684_800),
    ];
    for (token, scope, expires_at) in tokens {
        let token = OAuthToken {
            access_token: token.into(),
            client_id: "replay".into(),
            scope: scope.into(),
            expires_at,
        };
        env.app
            .store
            .save_oauth_token(&token)
            .await
            .map_err(|e| e.to_string())?;
    }
    env.direct = Direct {
        caps: Some(env.canned(&recorded(cases, 244, 1)?.response)),
        describe: Some(env.canned(&recorded(cases, 245, 1)?.response)),
        execute: Some(env.canned(&recorded(cases, 246, 1)?.response)),
        execute_post: Some(env.canned(&recorded(cases, 247, 1)?.response)),
    };
    helper_routes(cases, &env)?;
    Ok(env)
}

/// The T06 helper backend (:15160, service URL `/h`), after the README's list of routes.
fn helper_routes(cases: &[Case], env: &Env) -> Res<()> {
    const PROXY: &str = "http://127.0.0.1:18060/ows/proxy/helper";
    const BACKEND: &str = "http://127.0.0.1:15160/h";
    let body = |case: u32| recorded(cases, case, 1).map(|e| e.response.body.clone());
    let unrewrite =
        |case: u32| body(case).map(|b| replace_bytes(&b, PROXY.as_bytes(), BACKEND.as_bytes()));
    let mut caps =
        b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<!-- helper capabilities -->\n".to_vec();
    caps.extend(unrewrite(210)?);
    let mut wms111 = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE WMT_MS_Capabilities SYSTEM \"http://schemas.opengis.net/wms/1.1.1/WMS_MS_Capabilities.dtd\">\n".to_vec();
    wms111.extend(unrewrite(211)?);
    let routes: Vec<(&str, Answer)> = vec![
        ("/h", Answer::Echo),
        (
            "/h/html",
            Answer::Canned(Canned::new(200, Some("text/html"), body(221)?)),
        ),
        (
            "/h/html500",
            Answer::Canned(Canned::new(
                500,
                Some("text/html"),
                "<html><body>boom</body></html>\n",
            )),
        ), // guess
        (
            "/h/exreport500",
            Answer::Canned(Canned::new(500, Some("text/xml"), unrewrite(203)?)),
        ),
        (
            "/h/err404",
            Answer::Canned(Canned::new(404, Some("text/plain"), "not found\n")),
        ), // guess
        (
            "/h/noct",
            Answer::Canned(Canned::new(200, None, body(205)?)),
        ),
        (
            "/h/xmlplain",
            Answer::Canned(Canned::new(200, Some("text/xml"), body(208)?)),
        ),
        (
            "/h/xmlutf8",
            Answer::Canned(Canned::new(
                200,
                Some("text/xml; charset=utf-8"),
                body(208)?,
            )),
        ),
        (
            "/h/appxml",
            Answer::Canned(Canned::new(200, Some("application/xml"), unrewrite(209)?)),
        ),
        (
            "/h/caps",
            Answer::Canned(Canned::new(200, Some("text/xml"), caps)),
        ),
        (
            "/h/wms111caps",
            Answer::Canned(Canned::new(200, Some("text/xml"), wms111)),
        ),
        (
            "/h/wms130caps",
            Answer::Canned(Canned::new(200, Some("text/xml"), body(213)?)),
        ),
        (
            "/h/badxml",
            Answer::Canned(Canned::new(200, Some("text/xml"), "this is not xml\n")),
        ), // guess
        (
            "/h/png",
            Answer::Canned(Canned::new(200, Some("image/png"), body(215)?)),
        ),
        (
            "/h/json",
            Answer::Canned(Canned::new(200, Some("application/json"), body(216)?)),
        ),
        (
            "/h/status201",
            Answer::Canned(Canned::new(201, Some("text/xml"), unrewrite(217)?)),
        ),
        (
            "/h/wmsheaders",
            Answer::Canned(
                Canned::new(200, Some("text/xml"), body(220)?)
                    .with("X-Custom", "kept?")
                    .with("Set-Cookie", "a=b; Path=/")
                    .with("Cache-Control", "max-age=60"),
            ),
        ),
    ];
    for (path, answer) in routes {
        let answer = match answer {
            Answer::Canned(mut c) => {
                c.body = env.map_bytes(&c.body);
                Answer::Canned(c)
            }
            echo => echo,
        };
        env.aux.route(path, answer);
    }
    Ok(())
}
