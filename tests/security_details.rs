//! Security details (issue 10, item 7): JWTs carry the configured issuer; no secret
//! reaches the log at any level; failed logins are throttled per address; a token asked
//! for without a scope gets `compute` only.

mod common;

use common::{Canned, StubBackend, TestApp, logs};
use serde_json::Value;
use twitcher::config::TokenType;
use twitcher::store::Service;

const EXECUTE: &str = "service=WPS&request=Execute&version=1.0.0&identifier=hello";
const WPS_OK: &str =
    r#"<?xml version="1.0"?><wps:ExecuteResponse xmlns:wps="http://www.opengis.net/wps/1.0.0"/>"#;

async fn backend() -> StubBackend {
    let backend = StubBackend::start().await;
    backend.route("/wps", Canned::ok("text/xml", WPS_OK));
    backend
}

async fn status_of(request: reqwest::RequestBuilder) -> (u16, String) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// A JWT with these claims, HS256-signed with `secret`.
fn jwt(secret: &str, iss: Option<&str>, sub: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let mut claims = serde_json::json!({"sub": sub, "exp": exp, "scope": "compute"});
    if let Some(iss) = iss {
        claims["iss"] = Value::from(iss);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn jwts_must_carry_the_configured_issuer() {
    let backend = backend().await;
    let app = TestApp::start_with(|c| {
        c.token.kind = TokenType::CustomToken;
        c.token.secret = Some("shared-secret".into());
        c.token.issuer = "https://twitcher.example".into();
    })
    .await;
    app.register(Service::new("emu", backend.url("/wps"))).await;
    let execute = |token: &str| {
        app.client
            .get(format!("{}/ows/proxy/emu?{EXECUTE}", app.base))
            .bearer_auth(token)
    };

    // Issued by twitcher: carries the issuer and passes.
    let client = common::oauth_client(&app, None).await;
    let issued = common::oauth_token(&app, &client, "compute").await;
    assert_eq!(status_of(execute(&issued)).await.0, 200);
    let right = jwt("shared-secret", Some("https://twitcher.example"), "c");
    assert_eq!(status_of(execute(&right)).await.0, 200);

    // Same key, other or no issuer: refused like an unknown token.
    for token in [
        jwt(
            "shared-secret",
            Some("https://keycloak.example/realms/x"),
            "c",
        ),
        jwt("shared-secret", Some("twitcher"), "c"),
        jwt("shared-secret", None, "c"),
    ] {
        let (status, body) = status_of(execute(&token)).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("Access token is required"), "{body}");
    }
    assert_eq!(
        backend.received().len(),
        2,
        "refused tokens reach no backend"
    );
}

#[tokio::test]
async fn a_token_without_a_scope_gets_compute_only() {
    let app = TestApp::start().await;
    let (id, secret) = common::oauth_client(&app, None).await;
    let token_for = |scope: Option<&str>| {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        app.client
            .post(format!("{}/oauth/token", app.base))
            .form(&form)
    };
    let register = |token: &str| {
        app.client
            .post(format!("{}/services", app.base))
            .bearer_auth(token)
            .json(&serde_json::json!({"name": "scoped", "url": "http://h/w"}))
    };

    let (status, body) = status_of(token_for(None)).await;
    assert_eq!(status, 200, "{body}");
    let default: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(default["scope"], "compute");
    let (status, _) = status_of(register(default["access_token"].as_str().unwrap())).await;
    assert_eq!(status, 401, "a default token may not change the registry");

    let (_, body) = status_of(token_for(Some("register"))).await;
    let asked: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(asked["scope"], "register");
    let (status, body) = status_of(register(asked["access_token"].as_str().unwrap())).await;
    assert_eq!(status, 200, "{body}");
}

/// A request from `addr` as nginx on the host would forward it.
fn from(request: reqwest::RequestBuilder, addr: &str) -> reqwest::RequestBuilder {
    request.header("X-Forwarded-For", format!("203.0.113.9, {addr}"))
}

#[tokio::test]
async fn wrong_passwords_from_one_address_are_throttled_and_logged() {
    let logs = logs::capture();
    let app = TestApp::start_with(|c| {
        c.username = Some("demo".into());
        c.password = Some("right-password".into());
    })
    .await;
    let rpc = |password: &str, addr: &str| {
        from(
            app.client
                .post(format!("{}/RPC2", app.base))
                .basic_auth("demo", Some(password))
                .header("Content-Type", "text/xml")
                .body("<?xml version='1.0'?><methodCall><methodName>list_services</methodName><params/></methodCall>"),
            addr,
        )
    };
    let attacker = "198.51.100.7";
    for n in 1..=5 {
        let (status, _) = status_of(rpc(&format!("guess-{n}"), attacker)).await;
        assert_eq!(status, 401, "attempt {n} is answered");
    }
    // Now even the right password waits, in the endpoint's language, with Retry-After.
    let response = rpc("right-password", attacker).send().await.unwrap();
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body = response.text().await.unwrap();
    assert!(
        body.contains("<fault>") && body.contains("Too many failed"),
        "{body}"
    );

    // Other addresses, and the host itself, are not affected.
    assert_eq!(
        status_of(rpc("right-password", "198.51.100.8")).await.0,
        200
    );
    let local = app
        .client
        .post(format!("{}/RPC2", app.base))
        .basic_auth("demo", Some("right-password"))
        .header("Content-Type", "text/xml")
        .body("<?xml version='1.0'?><methodCall><methodName>list_services</methodName><params/></methodCall>");
    assert_eq!(status_of(local).await.0, 200);

    // A right password does not count; registry writes count like /RPC2.
    let write = |password: &str| {
        from(
            app.client
                .delete(format!("{}/services/x", app.base))
                .basic_auth("demo", Some(password)),
            "198.51.100.8",
        )
    };
    for _ in 0..5 {
        assert_eq!(status_of(write("wrong")).await.0, 401);
    }
    let (status, body) = status_of(write("right-password")).await;
    assert_eq!(status, 429, "{body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["code"], "429 Too Many Requests");

    let warnings = logs.lines_with("authentication failed");
    assert!(
        warnings
            .iter()
            .any(|l| l.contains("WARN") && l.contains(attacker)),
        "{warnings:#?}"
    );
    let text = logs.text();
    for n in 1..=5 {
        assert!(
            !text.contains(&format!("guess-{n}")),
            "a password was logged"
        );
    }
    assert!(!text.contains("right-password"));
}

#[tokio::test]
async fn wrong_client_secrets_are_throttled() {
    let app = TestApp::start().await;
    let (id, secret) = common::oauth_client(&app, None).await;
    let token = |secret: &str| {
        from(
            app.client.post(format!("{}/oauth/token", app.base)).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
                ("client_secret", secret),
            ]),
            "198.51.100.20",
        )
    };
    for _ in 0..5 {
        let (status, body) = status_of(token("wrong")).await;
        assert_eq!(
            (status, body.as_str()),
            (401, r#"{"error": "invalid_client"}"#)
        );
    }
    let (status, body) = status_of(token(&secret)).await;
    assert_eq!(status, 429);
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"], "slow_down", "{body}");
}

#[tokio::test]
async fn no_secret_reaches_the_log_at_trace_level() {
    let logs = logs::capture();
    let backend = backend().await;
    let app = TestApp::start_with(|c| {
        c.username = Some("demo".into());
        c.password = Some("Pw-5ecret-basic".into());
    })
    .await;
    app.register(Service::new("emu", backend.url("/wps"))).await;
    let secrets = [
        "QueryAccessToken0000000000000a",
        "QueryToken00000000000000000000b",
        "HeaderToken0000000000000000000c",
        "PathToken000000000000000000000d",
        "FormToken000000000000000000000e",
    ];
    for token in secrets {
        app.token(token, true).await;
    }
    let get = |query: String| {
        app.client
            .get(format!("{}/ows/proxy/emu?{query}", app.base))
    };
    let proxy = format!("{}/ows/proxy/emu", app.base);
    let mut requests = vec![
        get(format!("{EXECUTE}&access_token={}", secrets[0])),
        get(format!("{EXECUTE}&token={}", secrets[1])),
        get(EXECUTE.to_string()).header("Access-Token", secrets[2]),
        app.client.get(format!("{proxy}/{}?{EXECUTE}", secrets[3])),
        app.client
            .post(&proxy)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("{EXECUTE}&access_token={}", secrets[4])),
        app.client.get(format!(
            "{}/ows/verify/emu?{EXECUTE}&access_token={}",
            app.base, secrets[0]
        )),
        // Refused ones: unknown and malformed tokens, wrong passwords.
        get(format!(
            "{EXECUTE}&access_token=UnknownToken0000000000000000f"
        )),
        get(EXECUTE.to_string()).bearer_auth("Bearer.Jwt.Lookalike0000000g"),
        app.client
            .get(format!("{}/oauth/client?name=x", app.base))
            .basic_auth("demo", Some("Wrong-Pw-0000h")),
    ];
    let client = common::oauth_client(&app, Some(("demo", "Pw-5ecret-basic"))).await;
    let oauth = common::oauth_token(&app, &client, "compute register").await;
    requests.push(get(EXECUTE.to_string()).bearer_auth(&oauth));
    requests.push(
        app.client
            .post(format!("{}/services", app.base))
            .bearer_auth(&oauth)
            .json(&serde_json::json!({"name": "other", "url": "http://user:Url-Pw-0000i@h/w"})),
    );
    requests.push(app.client.get(format!(
        "{}/oauth/token?grant_type=client_credentials&client_id={}&client_secret={}",
        app.base, client.0, client.1
    )));
    for request in requests {
        request
            .send()
            .await
            .expect("request")
            .bytes()
            .await
            .unwrap();
    }
    // A request whose answer is still streaming is logged when it ends: wait for the last.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let text = logs.text();
    assert!(
        text.contains("twitcher::access") && text.contains("/ows/proxy/emu/…"),
        "the capture sees the access log and the DEBUG request spans"
    );
    let mut all: Vec<&str> = secrets.to_vec();
    all.extend([
        "UnknownToken0000000000000000f",
        "Bearer.Jwt.Lookalike0000000g",
        "Pw-5ecret-basic",
        "Wrong-Pw-0000h",
        "Url-Pw-0000i",
        &oauth,
        &client.1,
    ]);
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "demo:Pw-5ecret-basic",
    );
    all.push(&basic);
    for secret in all {
        let leaks = logs.lines_with(secret);
        assert!(leaks.is_empty(), "{secret} was logged: {leaks:#?}");
    }
}
