//! OAuth2 client registration and the client-credentials grant, and what the tokens unlock.

mod common;

use std::path::PathBuf;

use common::{Canned, StubBackend, TestApp};
use serde_json::Value;
use twitcher::config::{Config, TokenType};
use twitcher::store::Service;

const EXECUTE: &str =
    "service=WPS&request=Execute&version=1.0.0&identifier=hello&DataInputs=name=tux";

fn demo(config: &mut Config) {
    config.username = Some("demo".into());
    config.password = Some("demo".into());
}

/// Creates a client through `/oauth/client`; returns (id, secret).
async fn client(app: &TestApp) -> (String, String) {
    let response = app
        .client
        .get(format!(
            "{}/oauth/client?name=demo_app&redirect_uri=",
            app.base
        ))
        .basic_auth("demo", Some("demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    (
        body["client_id"].as_str().unwrap().into(),
        body["client_secret"].as_str().unwrap().into(),
    )
}

async fn token_request(
    app: &TestApp,
    form: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    answer(
        app.client
            .post(format!("{}/oauth/token", app.base))
            .form(form),
    )
    .await
}

/// Status, headers and body of a request.
async fn answer(request: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, String) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

async fn token(app: &TestApp, id: &str, secret: &str, scope: &str) -> String {
    let (status, _, body) = token_request(
        app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    json["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn client_registration_needs_the_management_user() {
    let app = TestApp::start_with(demo).await;
    let url = format!("{}/oauth/client?name=demo_app", app.base);
    let anonymous = app.client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Basic realm=\"twitcher\""
    );
    let wrong = app
        .client
        .get(&url)
        .basic_auth("demo", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let ok = app
        .client
        .post(format!("{}/oauth/client", app.base))
        .basic_auth("demo", Some("demo"))
        .form(&[
            ("name", "formapp"),
            ("redirect_uri", "http://a/cb http://b/cb"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.headers()["content-type"], "application/json");
    let body = ok.text().await.unwrap();
    let json: Value = serde_json::from_str(&body).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "name",
            "client_id",
            "client_secret",
            "redirect_uri",
            "scope"
        ]
    );
    assert_eq!(json["name"], "formapp");
    assert_eq!(json["redirect_uri"], "http://a/cb");
    assert_eq!(json["scope"], serde_json::json!(["compute", "register"]));
    assert_eq!(json["client_id"].as_str().unwrap().len(), 32);
    let stored = app
        .store
        .client(json["client_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.client_secret,
        json["client_secret"].as_str().unwrap()
    );

    let unnamed: Value = app
        .client
        .get(format!("{}/oauth/client", app.base))
        .basic_auth("demo", Some("demo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(unnamed["name"], Value::Null);
    assert_eq!(unnamed["redirect_uri"], "");
}

#[tokio::test]
async fn client_credentials_grant() {
    let app = TestApp::start_with(demo).await;
    let (id, secret) = client(&app).await;
    let base = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
    ];

    let (status, headers, body) = token_request(&app, &base).await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
    assert_eq!(headers["content-type"], "application/json");
    let json: Value = serde_json::from_str(&body).unwrap();
    let token = json["access_token"].as_str().unwrap();
    assert_eq!(token.len(), 30);
    let masked = body.replace(token, "[token]");
    assert_eq!(
        masked,
        r#"{"access_token": "[token]", "expires_in": 3600, "token_type": "Bearer", "scope": "compute"}"#,
        "without a scope, a client allowed `compute register` gets `compute` only"
    );

    let mut with_scope = base.to_vec();
    with_scope.push(("scope", "register"));
    with_scope.push(("state", "xyz"));
    let (_, _, body) = token_request(&app, &with_scope).await;
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (json["scope"].as_str(), json["state"].as_str()),
        (Some("register"), Some("xyz"))
    );

    // HTTP basic client authentication, and body credentials winning over basic (0.6 CLI).
    let basic = app
        .client
        .post(format!("{}/oauth/token", app.base))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "compute")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
    let both = app
        .client
        .post(format!("{}/oauth/token", app.base))
        .basic_auth("someone", Some("else"))
        .form(&base)
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 200);
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc_6749() {
    let app = TestApp::start_with(demo).await;
    let (id, secret) = client(&app).await;
    let id = id.as_str();
    let secret = secret.as_str();
    /// Name, form fields, expected status and body.
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "missing grant",
            vec![("client_id", id), ("client_secret", secret)],
            400,
            r#"{"error": "invalid_request", "error_description": "Request is missing grant type."}"#,
        ),
        (
            "other grant",
            vec![
                ("grant_type", "password"),
                ("client_id", id),
                ("client_secret", secret),
            ],
            400,
            r#"{"error": "unsupported_grant_type"}"#,
        ),
        (
            "wrong secret",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", "x"),
            ],
            401,
            r#"{"error": "invalid_client"}"#,
        ),
        (
            "unknown client",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
                ("client_secret", "x"),
            ],
            401,
            r#"{"error": "invalid_client"}"#,
        ),
        (
            "no credentials",
            vec![("grant_type", "client_credentials")],
            401,
            r#"{"error": "invalid_client"}"#,
        ),
        (
            "foreign scope",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
                ("scope", "admin"),
            ],
            400,
            r#"{"error": "invalid_scope"}"#,
        ),
        (
            "duplicate scope",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
                ("scope", "compute"),
                ("scope", "register"),
            ],
            400,
            r#"{"error": "invalid_request", "error_description": "Duplicate scope parameter."}"#,
        ),
        (
            "state echoed",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", "x"),
                ("state", "abc"),
            ],
            401,
            r#"{"error": "invalid_client", "state": "abc"}"#,
        ),
    ];
    for (name, form, status, body) in cases {
        let (got_status, headers, got_body) = token_request(&app, &form).await;
        assert_eq!((got_status, got_body.as_str()), (status, body), "{name}");
        assert_eq!(headers["cache-control"], "no-store", "{name}");
        assert!(
            headers.get("www-authenticate").is_none(),
            "{name}: no challenge without basic auth"
        );
    }
    // Basic auth that fails gets a challenge.
    let basic = app
        .client
        .post(format!("{}/oauth/token", app.base))
        .basic_auth(id, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    assert!(basic.headers().contains_key("www-authenticate"));
    // A JSON body is not a form: the grant type is missing.
    let json = app
        .client
        .post(format!("{}/oauth/token", app.base))
        .json(&serde_json::json!({"grant_type": "client_credentials", "client_id": id, "client_secret": secret}))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 400);
    // Oversized and binary garbage bodies never produce a 500.
    let huge = app
        .client
        .post(format!("{}/oauth/token", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 200 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    let garbage = app
        .client
        .post(format!("{}/oauth/token", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![0xff, 0x00, b'=', b'&', 0xfe])
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
}

/// GET with a Bearer token: status and body.
async fn with_bearer(app: &TestApp, url: &str, token: &str) -> (u16, String) {
    let response = app.client.get(url).bearer_auth(token).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn protected_backend(app: &TestApp) -> StubBackend {
    let backend = StubBackend::start().await;
    backend.route(
        "/wps",
        Canned::ok("text/xml", "<ExecuteResponse>Hello tux</ExecuteResponse>"),
    );
    app.register(Service::new("emu", backend.url("/wps"))).await;
    backend
}

#[tokio::test]
async fn compute_tokens_unlock_execute_register_tokens_do_not() {
    let app = TestApp::start_with(demo).await;
    let _backend = protected_backend(&app).await;
    let (id, secret) = client(&app).await;
    let compute = token(&app, &id, &secret, "compute").await;
    let register = token(&app, &id, &secret, "register").await;
    let url = format!("{}/ows/proxy/emu?{EXECUTE}", app.base);

    let bearer = app
        .client
        .get(&url)
        .bearer_auth(&compute)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    let query = app
        .client
        .get(format!("{url}&access_token={compute}"))
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), 200);
    let form = app
        .client
        .post(format!("{}/ows/proxy/emu", app.base))
        .form(&[
            ("service", "WPS"),
            ("request", "Execute"),
            ("version", "1.0.0"),
            ("identifier", "hello"),
            ("access_token", compute.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200, "form field access_token");

    let (status, body) = with_bearer(&app, &url, &register).await;
    assert_eq!(status, 401);
    assert!(body.contains("Access token is required to access this service."));

    // Expired and revoked stored tokens.
    let mut stored = app.store.oauth_token(&compute).await.unwrap().unwrap();
    stored.expires_at = 946_684_800;
    app.store.save_oauth_token(&stored).await.unwrap();
    let (status, body) = with_bearer(&app, &url, &compute).await;
    assert_eq!(status, 401);
    assert!(body.contains("Access token is expired."));
    app.store.delete_oauth_token(&compute).await.unwrap();
    let (status, body) = with_bearer(&app, &url, &compute).await;
    assert_eq!(status, 401);
    assert!(body.contains("Access token is required"));
}

fn keys() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/keys")
}

#[tokio::test]
async fn jwt_token_types_issue_and_check_signed_tokens() {
    for kind in [TokenType::CustomToken, TokenType::SignedToken] {
        let app = TestApp::start_with(|c| {
            demo(c);
            c.token.kind = kind;
            c.token.secret = Some("s3cret-hs256".into());
            c.token.keyfile = Some(keys().join("test-signing-key.pem"));
            c.token.certfile = Some(keys().join("test-signing-pubkey.pem"));
        })
        .await;
        let _backend = protected_backend(&app).await;
        let (id, secret) = client(&app).await;
        let jwt = token(&app, &id, &secret, "compute").await;
        assert_eq!(jwt.matches('.').count(), 2, "{kind:?}: a JWT");
        let url = format!("{}/ows/proxy/emu?{EXECUTE}", app.base);
        assert_eq!(
            app.client
                .get(&url)
                .bearer_auth(&jwt)
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{kind:?}"
        );
        let mut tampered = jwt.clone();
        tampered.replace_range(jwt.len() - 4.., "AAAA");
        assert_eq!(
            app.client
                .get(&url)
                .bearer_auth(&tampered)
                .send()
                .await
                .unwrap()
                .status(),
            401,
            "{kind:?}"
        );
        let malformed = app
            .client
            .get(&url)
            .bearer_auth("a.b.c")
            .send()
            .await
            .unwrap();
        assert_eq!(malformed.status(), 401);
        let register_only = token(&app, &id, &secret, "register").await;
        assert_eq!(
            app.client
                .get(&url)
                .bearer_auth(&register_only)
                .send()
                .await
                .unwrap()
                .status(),
            401
        );
    }
}

#[tokio::test]
async fn keycloak_tokens_are_only_validated() {
    let app = TestApp::start_with(|c| {
        demo(c);
        c.token.kind = TokenType::KeycloakToken;
        c.token.keycloak_secret =
            Some(std::fs::read_to_string(keys().join("test-signing-pubkey.pem")).unwrap());
        // Keycloak's tokens name the realm as their issuer (D-JWT-ISSUER).
        c.token.issuer = "http://keycloak/realms/demo".into();
    })
    .await;
    let _backend = protected_backend(&app).await;
    let (id, secret) = client(&app).await;
    let (status, _, body) = token_request(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (
            400,
            r#"{"error": "unsupported_grant_type", "error_description": "Tokens are issued by Keycloak."}"#
        )
    );

    // A token "issued by Keycloak": signed with the realm key twitcher was given.
    let signer = twitcher::tokens::Tokens::from_settings(&twitcher::config::TokenSettings {
        kind: TokenType::SignedToken,
        keyfile: Some(keys().join("test-signing-key.pem")),
        certfile: Some(keys().join("test-signing-cert.pem")),
        issuer: "http://keycloak/realms/demo".into(),
        ..Config::default().token
    })
    .unwrap();
    let now = twitcher::clock::now();
    let good = signer
        .issue(app.store.as_ref(), "c", "openid compute", now)
        .await
        .unwrap()
        .access_token;
    let url = format!("{}/ows/proxy/emu?{EXECUTE}", app.base);
    assert_eq!(
        app.client
            .get(&url)
            .bearer_auth(&good)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let other_signer = twitcher::tokens::Tokens::from_settings(&twitcher::config::TokenSettings {
        kind: TokenType::SignedToken,
        keyfile: Some(keys().join("other-key.pem")),
        certfile: Some(keys().join("other-pubkey.pem")),
        ..Config::default().token
    })
    .unwrap();
    let forged = other_signer
        .issue(app.store.as_ref(), "c", "compute", now)
        .await
        .unwrap()
        .access_token;
    assert_eq!(
        app.client
            .get(&url)
            .bearer_auth(&forged)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let expired = signer
        .issue(app.store.as_ref(), "c", "compute", now - 7200)
        .await
        .unwrap()
        .access_token;
    let response = app
        .client
        .get(&url)
        .bearer_auth(&expired)
        .send()
        .await
        .unwrap();
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Access token is expired.")
    );
}

#[tokio::test]
async fn oauth_can_be_switched_off() {
    let app = TestApp::start_with(|c| c.oauth = false).await;
    assert_eq!(app.get("/oauth/token").await.status(), 404);
    assert_eq!(app.get("/oauth/client").await.status(), 404);
}

/// `GET /oauth/token` with these query parameters: status, headers and body.
async fn token_get(
    app: &TestApp,
    query: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    answer(
        app.client
            .get(format!("{}/oauth/token", app.base))
            .query(query),
    )
    .await
}

#[tokio::test]
async fn the_token_endpoint_takes_get_with_query_parameters_as_0_6_did() {
    // The 0.6 demo notebook: requests.get(token_url, params={grant_type, client_id,
    // client_secret, scope}) (T06 case 55, D-OAUTH-GET).
    let backend = StubBackend::start().await;
    backend.route("/wps", Canned::ok("text/xml", "<ExecuteResponse/>"));
    let app = TestApp::start_with(demo).await;
    app.register(Service::new("emu", backend.url("/wps"))).await;
    let (id, secret) = client(&app).await;
    let (status, headers, body) = token_get(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "compute"),
            ("state", "abc"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "no-store");
    let json: Value = serde_json::from_str(&body).unwrap();
    let token = json["access_token"].as_str().unwrap();
    assert_eq!(
        body.replace(token, "[token]"),
        r#"{"access_token": "[token]", "expires_in": 3600, "token_type": "Bearer", "scope": "compute", "state": "abc"}"#
    );
    // The token is real: it unlocks Execute.
    let url = format!("{}/ows/proxy/emu?{EXECUTE}", app.base);
    assert_eq!(with_bearer(&app, &url, token).await.0, 200);

    // Errors are the RFC 6749 JSON, as for POST.
    let cases = [
        (
            vec![
                ("client_id", id.as_str()),
                ("client_secret", secret.as_str()),
            ],
            400,
            r#"{"error": "invalid_request", "error_description": "Request is missing grant type."}"#,
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
                ("client_secret", "wrong"),
            ],
            401,
            r#"{"error": "invalid_client"}"#,
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
                ("client_secret", secret.as_str()),
                ("scope", "admin"),
            ],
            400,
            r#"{"error": "invalid_scope"}"#,
        ),
        (
            vec![],
            400,
            r#"{"error": "invalid_request", "error_description": "Request is missing grant type."}"#,
        ),
    ];
    for (query, status, expected) in cases {
        let (got, headers, body) = token_get(&app, &query).await;
        assert_eq!((got, body.as_str()), (status, expected), "{query:?}");
        assert_eq!(headers["content-type"], "application/json", "{query:?}");
    }
}

#[tokio::test]
async fn other_methods_on_the_token_endpoint_get_a_json_error() {
    let app = TestApp::start_with(demo).await;
    let (id, secret) = client(&app).await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
    ];
    for method in ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"] {
        let response = app
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}/oauth/token", app.base),
            )
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method}");
        assert_eq!(response.headers()["allow"], "GET, POST", "{method}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{method}"
        );
        let body = response.text().await.unwrap();
        let expected = if method == "HEAD" {
            ""
        } else {
            r#"{"error": "invalid_request", "error_description": "The token endpoint accepts GET and POST requests."}"#
        };
        assert_eq!(body, expected, "{method}: never an empty 405 page");
    }
}
