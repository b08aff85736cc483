//! The REST service registry of the 0.6 series (`/services`, `/services/{name}`): reads,
//! writes and their credentials, request bodies, validation, methods, and that it is the
//! same registry XML-RPC and the proxy use (SPEC §7, T06 transcripts 83–130).

mod common;

use std::collections::BTreeSet;

use common::{Canned, StubBackend, TestApp, rpc};
use reqwest::Method;
use reqwest::header::HeaderMap;
use twitcher::store::Service;

/// What a request to twitcher answered.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn content_type(&self) -> &str {
        self.header("content-type")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

/// Credentials sent with a request.
#[derive(Clone)]
enum Auth {
    None,
    Basic(&'static str, &'static str),
    Bearer(String),
}

/// A body and the Content-Type it is sent with (None: no Content-Type header).
struct Body<'a> {
    content_type: Option<&'a str>,
    bytes: Vec<u8>,
}

fn json(text: &str) -> Body<'static> {
    Body {
        content_type: Some("application/json"),
        bytes: text.as_bytes().to_vec(),
    }
}

fn raw<'a>(content_type: Option<&'a str>, text: impl Into<Vec<u8>>) -> Body<'a> {
    Body {
        content_type,
        bytes: text.into(),
    }
}

const DEMO: Auth = Auth::Basic("demo", "demo");

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    auth: &Auth,
    body: Option<Body<'_>>,
) -> Answer {
    let mut request = app.client.request(method, format!("{}{path}", app.base));
    match auth {
        Auth::None => {}
        Auth::Basic(user, password) => request = request.basic_auth(user, Some(password)),
        Auth::Bearer(token) => request = request.bearer_auth(token),
    }
    if let Some(body) = body {
        if let Some(ct) = body.content_type {
            request = request.header("Content-Type", ct);
        }
        request = request.body(body.bytes);
    }
    let response = request.send().await.expect("request");
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.expect("body"),
    }
}

async fn get(app: &TestApp, path: &str, auth: &Auth) -> Answer {
    send(app, Method::GET, path, auth, None).await
}

async fn post(app: &TestApp, auth: &Auth, body: Body<'_>) -> Answer {
    send(app, Method::POST, "/services", auth, Some(body)).await
}

async fn delete(app: &TestApp, path: &str, auth: &Auth) -> Answer {
    send(app, Method::DELETE, path, auth, None).await
}

/// twitcher with the management user demo/demo (the transcripts' setup).
async fn demo_app() -> TestApp {
    TestApp::start_with(|c| {
        c.username = Some("demo".into());
        c.password = Some("demo".into());
    })
    .await
}

/// A client with scope `compute register` and one token of each single scope.
async fn oauth_tokens(app: &TestApp, basic: Option<(&str, &str)>) -> (String, String) {
    let client = common::oauth_client(app, basic).await;
    let register = common::oauth_token(app, &client, "register").await;
    let compute = common::oauth_token(app, &client, "compute").await;
    (register, compute)
}

fn names(services: &[Service]) -> Vec<&str> {
    services.iter().map(|s| s.name.as_str()).collect()
}

/// The 401 of a refused management request (D-MGMT-401).
fn assert_unauthorized(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 401, "{what}: {}", answer.body);
    assert_eq!(
        answer.header("www-authenticate"),
        "Basic realm=\"twitcher\"",
        "{what}"
    );
    assert_eq!(answer.content_type(), "application/json", "{what}");
    let body: serde_json::Value = serde_json::from_str(&answer.body).expect("401 JSON");
    assert_eq!(body["code"], "401 Unauthorized", "{what}");
}

/// The methods of an `Allow` header, whatever the separator style.
fn allowed(answer: &Answer) -> BTreeSet<String> {
    answer
        .header("allow")
        .split(',')
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

fn set(methods: &[&str]) -> BTreeSet<String> {
    methods.iter().map(|m| m.to_string()).collect()
}

// ---------------------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn reads_are_open_and_list_in_insertion_order() {
    let app = demo_app().await;
    let empty = get(&app, "/services", &Auth::None).await;
    assert_eq!(
        (empty.status, empty.content_type(), empty.body.as_str()),
        (200, "application/json", "[]")
    );

    app.register(Service {
        service_type: "wps".into(),
        ..Service::new("emu", "http://localhost:15060/wps")
    })
    .await;
    app.register(Service {
        service_type: "wms".into(),
        purl: "http://public.example/wms".into(),
        auth: "public".into(),
        verify: false,
        ..Service::new("opt_service_1", "http://127.0.0.1:15160/h")
    })
    .await;
    app.register(Service {
        auth: "cert".into(),
        ..Service::new("badverify", "http://127.0.0.1:15160/h")
    })
    .await;
    app.register(Service {
        public: true,
        ..Service::new("alpha", "https://example.org/wps")
    })
    .await;

    let list = get(&app, "/services", &Auth::None).await;
    assert_eq!(
        (list.status, list.content_type()),
        (200, "application/json")
    );
    // Insertion order (not alphabetical), Python separators, member order of the original.
    insta::assert_snapshot!("list_services", list.body);

    let one = get(&app, "/services/opt_service_1", &Auth::None).await;
    assert_eq!((one.status, one.content_type()), (200, "application/json"));
    insta::assert_snapshot!("get_service", one.body);

    for unknown in ["/services/nosuch", "/services/EMU", "/services/Emu"] {
        let answer = get(&app, unknown, &Auth::None).await;
        assert_eq!(
            (answer.status, answer.content_type(), answer.body.as_str()),
            (200, "application/json", "{}"),
            "{unknown}"
        );
    }

    // Right credentials do not hurt reads; wrong ones are refused (as T06 did, case 85)
    // rather than silently ignored.
    let with_auth = get(&app, "/services", &DEMO).await;
    assert_eq!(with_auth.body, list.body);
    let wrong = get(&app, "/services", &Auth::Basic("demo", "bad")).await;
    assert_eq!(wrong.status, 401);

    // HEAD: status and headers of GET, no body.
    let head = send(&app, Method::HEAD, "/services", &Auth::None, None).await;
    assert_eq!(
        (head.status, head.content_type()),
        (200, "application/json")
    );
    assert_eq!(head.body, "");
    assert_eq!(head.header("content-length"), list.body.len().to_string());
    let head_one = send(&app, Method::HEAD, "/services/emu", &Auth::None, None).await;
    assert_eq!((head_one.status, head_one.body.as_str()), (200, ""));
}

#[tokio::test]
async fn non_ascii_names_are_escaped_like_python() {
    let app = TestApp::start().await;
    let created = post(
        &app,
        &Auth::None,
        json(r#"{"name": "Vögel Dienst", "url": "http://h/w"}"#),
    )
    .await;
    assert_eq!(created.status, 200);
    assert_eq!(
        created.body,
        r#"{"url": "http://h/w", "name": "v\u00f6gel_dienst", "type": "WPS", "purl": "", "auth": "token", "public": false, "verify": true}"#
    );
    let found = get(&app, "/services/v%C3%B6gel_dienst", &Auth::None).await;
    assert_eq!(found.body, created.body);
}

#[tokio::test]
async fn reads_need_credentials_when_rest_read_auth_is_set() {
    let app = TestApp::start_with(|c| {
        c.username = Some("demo".into());
        c.password = Some("demo".into());
        c.rest_read_auth = true;
    })
    .await;
    app.register(Service::new("emu", "http://h/wps")).await;
    let (register, compute) = oauth_tokens(&app, Some(("demo", "demo"))).await;

    for path in ["/services", "/services/emu", "/services/nosuch"] {
        assert_unauthorized(&get(&app, path, &Auth::None).await, path);
        assert_unauthorized(&get(&app, path, &Auth::Basic("demo", "bad")).await, path);
        assert_unauthorized(&get(&app, path, &Auth::Bearer(compute.clone())).await, path);
        let head = send(&app, Method::HEAD, path, &Auth::None, None).await;
        assert_eq!((head.status, head.body.as_str()), (401, ""), "HEAD {path}");
    }
    let ok = get(&app, "/services", &DEMO).await;
    assert_eq!(ok.status, 200);
    assert!(ok.body.contains(r#""name": "emu""#), "{}", ok.body);
    let ok = get(&app, "/services/emu", &Auth::Bearer(register)).await;
    assert_eq!(ok.status, 200);
    assert!(ok.body.contains(r#""name": "emu""#), "{}", ok.body);
}

/// A backend URL with credentials in it, and how anonymous readers see it.
const SECRET_URL: &str = "http://wpsuser:s3cr3t@backend.example:8094/wps";
const MASKED_URL: &str = "http://wpsuser:***@backend.example:8094/wps";

/// The `url` of every service a read answered (a list or one service).
fn urls(answer: &Answer) -> Vec<String> {
    let value: serde_json::Value = serde_json::from_str(&answer.body).expect("JSON");
    let services = match value {
        serde_json::Value::Array(items) => items,
        one => vec![one],
    };
    services
        .iter()
        .map(|s| s["url"].as_str().expect("url").to_string())
        .collect()
}

#[tokio::test]
async fn anonymous_reads_never_show_a_password_in_a_service_url() {
    let app = demo_app().await;
    app.register(Service::new("secret", SECRET_URL)).await;
    app.register(Service::new("plain", "http://backend.example/wps"))
        .await;
    let (register, compute) = oauth_tokens(&app, Some(("demo", "demo"))).await;

    let readers = [
        ("anonymous", Auth::None, MASKED_URL),
        ("compute token", Auth::Bearer(compute), MASKED_URL),
        ("management user", DEMO, SECRET_URL),
        ("register token", Auth::Bearer(register), SECRET_URL),
    ];
    for (who, auth, shown) in &readers {
        let list = get(&app, "/services", auth).await;
        assert_eq!(list.status, 200, "{who}: {}", list.body);
        assert_eq!(
            urls(&list),
            [*shown, "http://backend.example/wps"],
            "{who}: GET /services"
        );
        let one = get(&app, "/services/secret", auth).await;
        assert_eq!(urls(&one), [*shown], "{who}: GET /services/secret");
        if *shown == MASKED_URL {
            assert!(!list.body.contains("s3cr3t") && !one.body.contains("s3cr3t"));
        }
    }
    // Wrong credentials are refused, not served masked.
    let wrong = get(&app, "/services/secret", &Auth::Basic("demo", "bad")).await;
    assert_unauthorized(&wrong, "wrong password");
    // The stored URL is untouched, and the proxy still uses it whole.
    let stored = app.store.service_by_name("secret").await.unwrap().unwrap();
    assert_eq!(stored.url, SECRET_URL);

    // A write answers the writer with what it sent.
    let written = post(
        &app,
        &DEMO,
        json(&format!(r#"{{"name": "written", "url": "{SECRET_URL}"}}"#)),
    )
    .await;
    assert_eq!(urls(&written), [SECRET_URL]);
    assert_eq!(
        urls(&get(&app, "/services/written", &Auth::None).await),
        [MASKED_URL]
    );
}

#[tokio::test]
async fn without_a_management_user_only_a_register_token_sees_passwords() {
    // D-OPEN-MANAGEMENT: nobody can prove to be the manager with basic auth.
    let app = TestApp::start().await;
    app.register(Service::new("secret", SECRET_URL)).await;
    let (register, _) = oauth_tokens(&app, None).await;
    for (who, auth, shown) in [
        ("anonymous", Auth::None, MASKED_URL),
        (
            "any basic credentials",
            Auth::Basic("someone", "whatever"),
            MASKED_URL,
        ),
        ("register token", Auth::Bearer(register), SECRET_URL),
    ] {
        let one = get(&app, "/services/secret", &auth).await;
        assert_eq!(
            (one.status, urls(&one)),
            (200, vec![shown.to_string()]),
            "{who}"
        );
    }
}

#[tokio::test]
async fn with_rest_read_auth_the_management_user_sees_passwords() {
    let app = TestApp::start_with(|c| {
        c.username = Some("demo".into());
        c.password = Some("demo".into());
        c.rest_read_auth = true;
    })
    .await;
    app.register(Service::new("secret", SECRET_URL)).await;
    assert_unauthorized(&get(&app, "/services", &Auth::None).await, "no credentials");
    assert_eq!(urls(&get(&app, "/services", &DEMO).await), [SECRET_URL]);
}

// ---------------------------------------------------------------------------------------
// Writes and their credentials
// ---------------------------------------------------------------------------------------

const SVC1: &str = r#"{"name": "svc1", "url": "http://127.0.0.1:15160/h"}"#;

#[tokio::test]
async fn writes_need_the_management_user_or_a_register_token() {
    let app = demo_app().await;
    app.token("xmlrpc", true).await;
    common::stored_oauth_token(&app, "expired-register", "compute register", false).await;
    let (register, compute) = oauth_tokens(&app, Some(("demo", "demo"))).await;

    let refused: Vec<(&str, Auth)> = vec![
        ("no credentials", Auth::None),
        ("wrong password", Auth::Basic("demo", "bad")),
        ("wrong user", Auth::Basic("admin", "demo")),
        ("compute token", Auth::Bearer(compute.clone())),
        ("unknown token", Auth::Bearer("doesnotexist".into())),
        ("expired token", Auth::Bearer("expired-register".into())),
        ("XML-RPC token", Auth::Bearer("xmlrpc".into())),
    ];
    for (what, auth) in &refused {
        let answer = post(&app, auth, json(SVC1)).await;
        assert_unauthorized(&answer, what);
        if matches!(auth, Auth::None) {
            insta::assert_snapshot!("unauthorized", answer.body);
        }
        assert_unauthorized(&delete(&app, "/services/svc1", auth).await, what);
        assert_unauthorized(&delete(&app, "/services", auth).await, what);
    }
    // A register token as a query parameter is not a Bearer token (T06 case 89).
    let query = send(
        &app,
        Method::POST,
        &format!("/services?access_token={register}"),
        &Auth::None,
        Some(json(SVC1)),
    )
    .await;
    assert_unauthorized(&query, "access_token query parameter");
    assert!(
        app.store.list_services().await.unwrap().is_empty(),
        "a refused write stored something"
    );

    let basic = post(&app, &DEMO, json(SVC1)).await;
    assert_eq!(basic.status, 200, "{}", basic.body);
    assert!(basic.headers.get("www-authenticate").is_none());
    let bearer = post(
        &app,
        &Auth::Bearer(register.clone()),
        json(r#"{"name": "svc2", "url": "http://127.0.0.1:15160/h2"}"#),
    )
    .await;
    assert_eq!(bearer.status, 200, "{}", bearer.body);
    // The scheme name is case-insensitive (RFC 7235).
    let lower = app
        .client
        .post(format!("{}/services", app.base))
        .header("Authorization", format!("bearer {register}"))
        .body(r#"{"name": "svc3", "url": "http://127.0.0.1:15160/h3"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status(), 200);
    assert_eq!(
        names(&app.store.list_services().await.unwrap()),
        ["svc1", "svc2", "svc3"]
    );

    let deleted = delete(&app, "/services/svc1", &Auth::Bearer(register.clone())).await;
    assert_eq!((deleted.status, deleted.body.as_str()), (200, "true"));
    let deleted = delete(&app, "/services/svc2", &DEMO).await;
    assert_eq!((deleted.status, deleted.body.as_str()), (200, "true"));
    let cleared = delete(&app, "/services", &Auth::Bearer(register)).await;
    assert_eq!((cleared.status, cleared.body.as_str()), (200, "true"));
    assert!(app.store.list_services().await.unwrap().is_empty());
}

#[tokio::test]
async fn without_a_management_user_writes_are_open_but_bad_tokens_are_refused() {
    // D-OPEN-MANAGEMENT: no twitcher.username configured.
    let app = TestApp::start().await;
    let open = post(&app, &Auth::None, json(SVC1)).await;
    assert_eq!(open.status, 200, "{}", open.body);
    // Any basic credentials are fine: there is no user to compare with.
    let any = post(
        &app,
        &Auth::Basic("someone", "whatever"),
        json(r#"{"name": "svc2", "url": "http://h/2"}"#),
    )
    .await;
    assert_eq!(any.status, 200, "{}", any.body);

    common::stored_oauth_token(&app, "expired-register", "register", false).await;
    let (_, compute) = oauth_tokens(&app, None).await;
    for (what, token) in [
        ("unknown", "doesnotexist".to_string()),
        ("expired", "expired-register".to_string()),
        ("compute only", compute),
    ] {
        let answer = post(
            &app,
            &Auth::Bearer(token.clone()),
            json(r#"{"name": "svc3", "url": "http://h/3"}"#),
        )
        .await;
        assert_unauthorized(&answer, what);
        assert_unauthorized(
            &delete(&app, "/services/svc1", &Auth::Bearer(token.clone())).await,
            what,
        );
        assert_unauthorized(&delete(&app, "/services", &Auth::Bearer(token)).await, what);
    }
    assert_eq!(
        names(&app.store.list_services().await.unwrap()),
        ["svc1", "svc2"]
    );
    let deleted = delete(&app, "/services/svc1", &Auth::None).await;
    assert_eq!((deleted.status, deleted.body.as_str()), (200, "true"));
    let cleared = delete(&app, "/services", &Auth::None).await;
    assert_eq!((cleared.status, cleared.body.as_str()), (200, "true"));
    assert!(app.store.list_services().await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------
// POST bodies
// ---------------------------------------------------------------------------------------

/// Runs POSTs and collects `== case\nSTATUS CT\nBODY` blocks for one snapshot.
async fn transcript(app: &TestApp, cases: Vec<(&str, Body<'_>)>) -> String {
    let mut out = String::new();
    for (name, body) in cases {
        let answer = post(app, &DEMO, body).await;
        out.push_str(&format!(
            "== {name}\n{} {}\n{}\n",
            answer.status,
            answer.content_type(),
            answer.body
        ));
    }
    out
}

#[tokio::test]
async fn post_accepts_json_with_or_without_content_type_and_forms() {
    let app = demo_app().await;
    let all = transcript(
        &app,
        vec![
            ("json, defaults", json(SVC1)),
            (
                "json without Content-Type (0.6 twitcherctl)",
                raw(
                    None,
                    r#"{"type": "wps", "purl": "", "auth": "token", "verify": "true", "name": "noct", "url": "http://localhost:15060/wps"}"#,
                ),
            ),
            (
                "json with charset",
                raw(
                    Some("application/json; charset=utf-8"),
                    r#"{"name": "charset", "url": "http://h/c"}"#,
                ),
            ),
            (
                "all fields",
                json(
                    r#"{"name": "svc2", "url": "https://127.0.0.1:15160/h/x?q=1#frag", "type": "wps", "purl": "http://pub/wps", "verify": false, "auth": "cert"}"#,
                ),
            ),
            (
                "form",
                raw(
                    Some("application/x-www-form-urlencoded"),
                    "name=formsvc&url=http%3A%2F%2F127.0.0.1%3A15160%2Fh",
                ),
            ),
            (
                "form, all fields",
                raw(
                    Some("application/x-www-form-urlencoded; charset=UTF-8"),
                    "name=Form+Two&url=http%3A%2F%2Fh%2Fw%3Fx%3D1&type=wms&purl=http%3A%2F%2Fp%2Fw&auth=cert&verify=false&public=false",
                ),
            ),
            (
                "unknown fields ignored",
                json(r#"{"name": "extra", "url": "http://h/e", "foo": "bar", "id": 5}"#),
            ),
            (
                "empty strings mean defaults",
                json(r#"{"name": "empties", "url": "http://h/e", "type": "", "auth": "", "purl": ""}"#),
            ),
            (
                "nulls mean defaults",
                json(r#"{"name": "nulls", "url": "http://h/n", "type": null, "auth": null, "purl": null, "verify": null, "public": null}"#),
            ),
        ],
    )
    .await;
    insta::assert_snapshot!("post_bodies", all);
    // What the answers claim is what was stored.
    let stored = app
        .store
        .service_by_name("form_two")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored,
        Service {
            name: "form_two".into(),
            url: "http://h/w".into(),
            service_type: "wms".into(),
            purl: "http://p/w".into(),
            public: false,
            auth: "cert".into(),
            verify: false,
        }
    );
    assert_eq!(
        names(&app.store.list_services().await.unwrap()),
        [
            "svc1", "noct", "charset", "svc2", "formsvc", "form_two", "extra", "empties", "nulls"
        ]
    );
}

#[tokio::test]
async fn verify_and_public_flags() {
    let app = demo_app().await;
    let cases = [
        (r#""verify": "false""#, false, false),
        (r#""verify": false"#, false, false),
        (r#""verify": "False""#, false, false),
        (r#""verify": "no""#, false, false),
        (r#""verify": "0""#, false, false),
        // The rest of Pyramid's `asbool` false words, in any case (D-REGISTRY-FLAGS).
        (r#""verify": "OFF""#, false, false),
        (r#""verify": "N""#, false, false),
        (r#""verify": "f""#, false, false),
        (r#""verify": " No ""#, false, false),
        // JSON numbers as 0.6 read them (`str(0)` is a false word).
        (r#""verify": 0"#, false, false),
        (r#""verify": 1"#, true, false),
        (r#""verify": "true""#, true, false),
        (r#""verify": "yes""#, true, false),
        (r#""verify": "On""#, true, false),
        (r#""verify": "T""#, true, false),
        (r#""verify": true"#, true, false),
        // Empty means "not given": the default, TLS checked.
        (r#""verify": """#, true, false),
        (r#""public": true"#, true, true),
        (r#""public": "true""#, true, true),
        (r#""public": "on""#, true, true),
        (r#""public": false"#, true, false),
        (r#""public": "false""#, true, false),
        (r#""auth": "public""#, true, true),
        (r#""auth": "cert""#, true, false),
        (r#""auth": "cert", "public": true"#, true, true),
    ];
    for (i, (fields, verify, public)) in cases.into_iter().enumerate() {
        let name = format!("svc{i}");
        // Registered first with the opposite flags, so the answer cannot be a default.
        app.register(Service {
            verify: !verify,
            public: !public,
            ..Service::new(name.clone(), "http://h/w")
        })
        .await;
        let answer = post(
            &app,
            &DEMO,
            json(&format!(
                r#"{{"name": "{name}", "url": "http://h/w", {fields}}}"#
            )),
        )
        .await;
        assert_eq!(answer.status, 200, "{fields}: {}", answer.body);
        let value: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(
            (value["verify"].as_bool(), value["public"].as_bool()),
            (Some(verify), Some(public)),
            "{fields}"
        );
        let stored = app.store.service_by_name(&name).await.unwrap().unwrap();
        assert_eq!(
            (stored.verify, stored.is_public()),
            (verify, public),
            "{fields}: stored"
        );
        let read = get(&app, &format!("/services/{name}"), &Auth::None).await;
        assert_eq!(read.body, answer.body, "{fields}: read back");
    }
}

#[tokio::test]
async fn flags_that_are_neither_true_nor_false_are_refused() {
    // 0.5 read unknown words as false (TLS checks off), 0.6 as true: neither is guessed,
    // and a refused update leaves the service as it was (D-REGISTRY-FLAGS).
    let app = demo_app().await;
    let before = Service {
        verify: true,
        ..Service::new("emu", "http://h/w")
    };
    app.register(before.clone()).await;
    let mut out = String::new();
    for fields in [
        r#""verify": "junk""#,
        r#""verify": "flase""#,
        r#""verify": "2""#,
        r#""verify": 2"#,
        r#""verify": -1"#,
        r#""verify": 0.5"#,
        r#""verify": "none""#,
        r#""verify": []"#,
        r#""public": "maybe""#,
        r#""verify": "nein", "public": "ja""#,
    ] {
        let answer = post(
            &app,
            &DEMO,
            json(&format!(
                r#"{{"name": "emu", "url": "http://other/w", "auth": "public", {fields}}}"#
            )),
        )
        .await;
        assert_eq!(
            (answer.status, answer.content_type()),
            (400, "application/json"),
            "{fields}: {}",
            answer.body
        );
        out.push_str(&format!("== {fields}\n{}\n", answer.body));
    }
    insta::assert_snapshot!("flags_refused", out);
    assert_eq!(app.store.list_services().await.unwrap(), [before]);
}

#[tokio::test]
async fn urls_are_reduced_and_non_http_urls_store_nothing() {
    let app = demo_app().await;
    let reduced = post(
        &app,
        &DEMO,
        json(r#"{"name": "emu", "url": "http://localhost:8094/wps?service=WPS&request=GetCapabilities#top"}"#),
    )
    .await;
    assert_eq!(reduced.status, 200);
    let value: serde_json::Value = serde_json::from_str(&reduced.body).unwrap();
    assert_eq!(value["url"], "http://localhost:8094/wps");
    let https = post(
        &app,
        &DEMO,
        json(r#"{"name": "secure", "url": "https://example.org:8443/a/b/"}"#),
    )
    .await;
    let value: serde_json::Value = serde_json::from_str(&https.body).unwrap();
    assert_eq!(value["url"], "https://example.org:8443/a/b/");

    for url in [
        "ftp://host/x",
        "not a url",
        "/relative/wps",
        "localhost:8094/wps",
        "file:///etc/passwd",
        "http://",
        "",
    ] {
        let answer = post(
            &app,
            &DEMO,
            json(&format!(r#"{{"name": "bad", "url": "{url}"}}"#)),
        )
        .await;
        assert_eq!(
            (answer.status, answer.content_type(), answer.body.as_str()),
            (200, "application/json", "{}"),
            "{url:?}"
        );
        // An existing service is not touched by a refused update either.
        let answer = post(
            &app,
            &DEMO,
            json(&format!(
                r#"{{"name": "emu", "url": "{url}", "type": "wms"}}"#
            )),
        )
        .await;
        assert_eq!(answer.body, "{}", "{url:?}");
    }
    let services = app.store.list_services().await.unwrap();
    assert_eq!(names(&services), ["emu", "secure"]);
    assert_eq!(
        (services[0].url.as_str(), services[0].service_type.as_str()),
        ("http://localhost:8094/wps", "WPS")
    );
}

#[tokio::test]
async fn names_are_sanitized() {
    let app = demo_app().await;
    let cases = [
        ("My Emu-1", "my_emu_1"),
        ("  spaced out  ", "spaced_out"),
        ("9lives", "_9lives"),
        (
            "abcdefghijklmnopqrstuvwxyz0123456789",
            "abcdefghijklmnopqrstuvwxy",
        ),
        ("a.b/c d", "a_b_c_d"),
        ("UPPER", "upper"),
        ("ab", "ab"),
    ];
    for (given, stored) in cases {
        let answer = post(
            &app,
            &DEMO,
            json(&format!(r#"{{"name": "{given}", "url": "http://h/w"}}"#)),
        )
        .await;
        assert_eq!(answer.status, 200, "{given:?}: {}", answer.body);
        let value: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(value["name"], stored, "{given:?}");
        let read = get(&app, &format!("/services/{stored}"), &Auth::None).await;
        assert_eq!(read.body, answer.body, "{given:?}");
    }
    assert_eq!(app.store.list_services().await.unwrap().len(), cases.len());
}

#[tokio::test]
async fn update_in_place_keeps_the_position_and_resets_omitted_fields() {
    let app = demo_app().await;
    for name in ["first", "svc1", "last"] {
        let answer = post(
            &app,
            &DEMO,
            json(&format!(
                r#"{{"name": "{name}", "url": "http://127.0.0.1:15160/h"}}"#
            )),
        )
        .await;
        assert_eq!(answer.status, 200);
    }
    let mut out = String::new();
    for body in [
        r#"{"name": "svc1", "url": "http://127.0.0.1:15160/h2", "type": "wms", "purl": "http://pub/x", "auth": "cert", "verify": false, "public": true}"#,
        // Same name, other spelling: sanitized to the same service.
        r#"{"name": "SVC1", "url": "http://127.0.0.1:15160/h3", "type": "wms"}"#,
        // Only name and url: every other field back to its default (T06 case 107).
        r#"{"name": "svc1", "url": "http://127.0.0.1:15160/h"}"#,
    ] {
        let answer = post(&app, &DEMO, json(body)).await;
        assert_eq!(answer.status, 200);
        out.push_str(&answer.body);
        out.push('\n');
        let list = get(&app, "/services", &Auth::None).await;
        out.push_str(&list.body);
        out.push('\n');
    }
    insta::assert_snapshot!("update_in_place", out);
    assert_eq!(
        names(&app.store.list_services().await.unwrap()),
        ["first", "svc1", "last"]
    );
}

#[tokio::test]
async fn validation_errors() {
    let app = demo_app().await;
    let all = transcript(
        &app,
        vec![
            (
                "missing name",
                json(r#"{"url": "http://127.0.0.1:15160/h"}"#),
            ),
            ("missing url", json(r#"{"name": "svc"}"#)),
            ("missing both", json("{}")),
            ("empty body", json("")),
            ("empty body without Content-Type", raw(None, "")),
            ("whitespace body", json(" \n")),
            ("malformed JSON", json(r#"{"name": "x", "#)),
            ("not JSON at all", raw(None, "name=svc&url=http://h/w")),
            (
                "JSON array",
                json(r#"[{"name": "svc", "url": "http://h/w"}]"#),
            ),
            ("JSON string", json(r#""svc""#)),
            ("JSON null", json("null")),
            (
                "name not a string",
                json(r#"{"name": 5, "url": "http://h/w"}"#),
            ),
            ("url not a string", json(r#"{"name": "svc", "url": true}"#)),
            ("name null", json(r#"{"name": null, "url": "http://h/w"}"#)),
            (
                "type not a string",
                json(r#"{"name": "svc", "url": "http://h/w", "type": ["wps"]}"#),
            ),
            (
                "verify not a boolean",
                json(r#"{"name": "svc", "url": "http://h/w", "verify": 2}"#),
            ),
            (
                "public not a boolean",
                json(r#"{"name": "svc", "url": "http://h/w", "public": {}}"#),
            ),
            (
                "missing name and bad verify",
                json(r#"{"url": "http://h/w", "verify": "junk"}"#),
            ),
            (
                "name too short",
                json(r#"{"name": "a", "url": "http://h/w"}"#),
            ),
            (
                "name too short after trimming",
                json(r#"{"name": "  y  ", "url": "http://h/w"}"#),
            ),
            (
                "text/plain",
                raw(
                    Some("text/plain"),
                    r#"{"name": "plainsvc", "url": "http://127.0.0.1:15160/h"}"#,
                ),
            ),
            (
                "application/xml",
                raw(Some("application/xml"), "<service name=\"svc\"/>"),
            ),
            (
                "form without url",
                raw(Some("application/x-www-form-urlencoded"), "name=svc"),
            ),
        ],
    )
    .await;
    insta::assert_snapshot!("validation_errors", all);
    for block in all.split("== ").skip(1) {
        assert!(
            block.contains("\n400 application/json\n{\"status\": \"error\", \"errors\": ["),
            "not a 400 validation error: {block}"
        );
    }
    assert!(app.store.list_services().await.unwrap().is_empty());
}

#[tokio::test]
async fn bodies_over_64_kib_are_refused_with_413() {
    let app = demo_app().await;
    let body_of = |size: usize| {
        let head = r#"{"name": "big", "url": "http://h/w", "pad": ""#;
        let tail = r#""}"#;
        format!("{head}{}{tail}", "x".repeat(size - head.len() - tail.len()))
    };
    let limit = 64 * 1024;
    let too_large = post(&app, &DEMO, json(&body_of(limit + 1))).await;
    assert_eq!(too_large.status, 413, "{}", too_large.body);
    insta::assert_snapshot!("too_large", too_large.body);
    let huge = post(&app, &DEMO, json(&body_of(4 * limit))).await;
    assert_eq!(
        (huge.status, huge.body.as_str()),
        (413, too_large.body.as_str())
    );
    let form = post(
        &app,
        &DEMO,
        raw(
            Some("application/x-www-form-urlencoded"),
            format!("name=big&url=http%3A%2F%2Fh%2Fw&pad={}", "x".repeat(limit)),
        ),
    )
    .await;
    assert_eq!(form.status, 413, "{}", form.body);
    assert!(app.store.list_services().await.unwrap().is_empty());

    let at_limit = post(&app, &DEMO, json(&body_of(limit))).await;
    assert_eq!(
        at_limit.status, 200,
        "exactly 64 KiB is accepted: {}",
        at_limit.body
    );
    assert_eq!(names(&app.store.list_services().await.unwrap()), ["big"]);
}

// ---------------------------------------------------------------------------------------
// DELETE, methods, paths
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn delete_one_then_all() {
    let app = demo_app().await;
    for name in ["svc1", "svc2", "svc3"] {
        app.register(Service::new(name, "http://h/w")).await;
    }
    let first = delete(&app, "/services/svc2", &DEMO).await;
    assert_eq!(
        (first.status, first.content_type(), first.body.as_str()),
        (200, "application/json", "true")
    );
    let again = delete(&app, "/services/svc2", &DEMO).await;
    assert_eq!(
        (again.status, again.content_type(), again.body.as_str()),
        (200, "application/json", "false")
    );
    // Names are case-sensitive here: nothing is sanitized on delete.
    let upper = delete(&app, "/services/SVC1", &DEMO).await;
    assert_eq!(upper.body, "false");
    assert_eq!(get(&app, "/services/svc2", &Auth::None).await.body, "{}");
    assert_eq!(
        names(&app.store.list_services().await.unwrap()),
        ["svc1", "svc3"]
    );

    let cleared = delete(&app, "/services", &DEMO).await;
    assert_eq!(
        (
            cleared.status,
            cleared.content_type(),
            cleared.body.as_str()
        ),
        (200, "application/json", "true")
    );
    assert_eq!(get(&app, "/services", &Auth::None).await.body, "[]");
    let cleared_again = delete(&app, "/services", &DEMO).await;
    assert_eq!(
        (cleared_again.status, cleared_again.body.as_str()),
        (200, "true")
    );
}

#[tokio::test]
async fn unsupported_methods_are_405_before_authentication() {
    let app = demo_app().await;
    app.register(Service::new("svc2", "http://h/w")).await;
    let collection = set(&["GET", "HEAD", "POST", "DELETE"]);
    let item = set(&["GET", "HEAD", "DELETE"]);
    let cases = [
        (Method::PUT, "/services", &collection),
        (Method::PATCH, "/services", &collection),
        (Method::OPTIONS, "/services", &collection),
        (Method::PUT, "/services/svc2", &item),
        (Method::POST, "/services/svc2", &item),
        (Method::PATCH, "/services/svc2", &item),
        (Method::OPTIONS, "/services/svc2", &item),
    ];
    for (method, path, methods) in cases {
        for auth in [Auth::None, DEMO] {
            let answer = send(&app, method.clone(), path, &auth, Some(json("{}"))).await;
            assert_eq!(answer.status, 405, "{method} {path}");
            assert_eq!(
                &allowed(&answer),
                methods,
                "{method} {path}: Allow {:?}",
                answer.header("allow")
            );
            assert!(
                answer.headers.get("www-authenticate").is_none(),
                "{method} {path}: the method is checked before credentials"
            );
        }
    }
    assert_eq!(
        app.store.list_services().await.unwrap(),
        [Service::new("svc2", "http://h/w")]
    );
}

#[tokio::test]
async fn paths_beside_the_routes_are_not_found() {
    let app = demo_app().await;
    app.register(Service::new("svc2", "http://h/w")).await;
    for (method, path) in [
        (Method::GET, "/services/"),
        (Method::POST, "/services/"),
        (Method::DELETE, "/services/"),
        (Method::GET, "/services/svc2/"),
        (Method::GET, "/services/svc2/extra"),
        (Method::DELETE, "/services/svc2/extra"),
        (Method::GET, "/service"),
    ] {
        let answer = send(&app, method.clone(), path, &DEMO, None).await;
        assert_eq!(answer.status, 404, "{method} {path}");
    }
    assert_eq!(app.store.list_services().await.unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------
// One registry
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn rest_and_xmlrpc_share_one_registry_with_the_proxy() {
    let app = TestApp::start().await;
    let backend = StubBackend::start().await;
    backend.route(
        "/wps",
        Canned::ok("text/xml", "<Capabilities>hello</Capabilities>"),
    );
    let created = post(
        &app,
        &Auth::None,
        json(&format!(
            r#"{{"name": "Emu", "url": "{}"}}"#,
            backend.url("/wps?x=1")
        )),
    )
    .await;
    assert_eq!(created.status, 200);

    let listed = rpc(&app, "list_services", &[]).await;
    assert!(
        listed.contains("<value><string>emu</string></value>"),
        "{listed}"
    );
    assert!(
        listed.contains(&format!(
            "<value><string>{}</string></value>",
            backend.url("/wps")
        )),
        "{listed}"
    );
    let by_name = rpc(&app, "get_service_by_name", &["emu"]).await;
    assert!(
        by_name.contains("<value><string>WPS</string></value>"),
        "{by_name}"
    );

    let proxied = app
        .get("/ows/proxy/emu?service=WPS&request=GetCapabilities")
        .await;
    assert_eq!(proxied.status(), 200);
    assert_eq!(
        proxied.text().await.unwrap(),
        "<Capabilities>hello</Capabilities>"
    );
    assert_eq!(backend.received().len(), 1);
    assert_eq!(
        backend.received()[0].target,
        "/wps?service=WPS&request=GetCapabilities"
    );

    // Registered through XML-RPC: listed by REST after the first, in order.
    let registered = rpc(&app, "register_service", &["other", "http://h/other"]).await;
    assert!(registered.contains("other"), "{registered}");
    let list = get(&app, "/services", &Auth::None).await;
    let value: serde_json::Value = serde_json::from_str(&list.body).unwrap();
    let listed: Vec<&str> = value
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["emu", "other"]);

    // Deleted through REST: gone for XML-RPC and the proxy.
    assert_eq!(
        delete(&app, "/services/emu", &Auth::None).await.body,
        "true"
    );
    let gone = rpc(&app, "get_service_by_name", &["emu"]).await;
    assert!(gone.contains("<struct>\n</struct>"), "{gone}");
    let proxied = app
        .get("/ows/proxy/emu?service=WPS&request=GetCapabilities")
        .await;
    assert_eq!(proxied.status(), 404);
    assert_eq!(backend.received().len(), 1);
    // Cleared through XML-RPC: REST lists nothing.
    rpc(&app, "clear_services", &[]).await;
    assert_eq!(get(&app, "/services", &Auth::None).await.body, "[]");
}

#[tokio::test]
async fn urls_without_a_host_store_nothing() {
    // The original's `baseurl` refused every URL whose netloc is empty (T06 cases 104, 105).
    let app = demo_app().await;
    for url in ["http:///path", "http:/h/w", "http:h/w", "https:///wps"] {
        let answer = post(
            &app,
            &DEMO,
            json(&format!(r#"{{"name": "hostless", "url": "{url}"}}"#)),
        )
        .await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "{}"),
            "{url:?}"
        );
    }
    assert!(app.store.list_services().await.unwrap().is_empty());
}
