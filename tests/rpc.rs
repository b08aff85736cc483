//! XML-RPC at /RPC2: every method, every fault, hostile bodies, basic auth.

mod common;

use common::TestApp;

/// POSTs a raw XML-RPC body; returns status and body.
async fn post(app: &TestApp, body: &str) -> (u16, String) {
    let response = app
        .client
        .post(format!("{}/RPC2", app.base))
        .header("Content-Type", "text/xml")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn call(method: &str, params: &[&str]) -> String {
    let params: String = params
        .iter()
        .map(|p| format!("<param><value>{p}</value></param>"))
        .collect();
    format!(
        "<?xml version='1.0'?>\n<methodCall>\n<methodName>{method}</methodName>\n<params>\n{params}</params>\n</methodCall>\n"
    )
}

/// Replaces the dynamic token and expiry of a generate_token answer.
fn mask_token(body: &str) -> String {
    let mut out = String::new();
    for line in body.lines() {
        if line.starts_with("<value><string>")
            && line.len() == "<value><string></string></value>".len() + 32
        {
            out.push_str("<value><string>[token]</string></value>");
        } else if line.starts_with("<value><int>") {
            out.push_str("<value><int>[expires_at]</int></value>");
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn token_methods() {
    let app = TestApp::start().await;
    let (status, body) = post(&app, &call("generate_token", &[])).await;
    assert_eq!(status, 200);
    insta::assert_snapshot!("generate_token", mask_token(&body));
    let token = body
        .split("<value><string>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(token.len(), 32);
    let stored = app
        .store
        .access_token(&token)
        .await
        .unwrap()
        .expect("token stored");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (stored.expires_at - (now + 3600)).abs() <= 2,
        "expires in an hour"
    );
    assert!(body.contains(&format!("<value><int>{}</int></value>", stored.expires_at)));

    for (arg, offset) in [
        ("<int>24</int>", 24 * 3600),
        ("<double>1.5</double>", 5400),
        ("<i4>0</i4>", 0),
        ("<boolean>1</boolean>", 3600),
    ] {
        let (_, body) = post(&app, &call("generate_token", &[arg])).await;
        let expires: i64 = body
            .split("<int>")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((expires - (now + offset)).abs() <= 2, "{arg}: {expires}");
    }

    let (_, body) = post(
        &app,
        &call("revoke_token", &[&format!("<string>{token}</string>")]),
    )
    .await;
    insta::assert_snapshot!("revoke_token_true", body);
    assert!(app.store.access_token(&token).await.unwrap().is_none());
    let (_, body) = post(&app, &call("revoke_token", &["doesnotexist"])).await;
    assert!(body.contains("<boolean>0</boolean>"), "{body}");
    let (_, body) = post(&app, &call("revoke_all_tokens", &[])).await;
    assert!(body.contains("<boolean>1</boolean>"), "{body}");
}

#[tokio::test]
async fn registry_methods() {
    let app = TestApp::start().await;
    let emu = call(
        "register_service",
        &[
            "<string>emu</string>",
            "<string>http://127.0.0.1:15056/wps</string>",
            "<struct></struct>",
        ],
    );
    let (status, body) = post(&app, &emu).await;
    assert_eq!(status, 200);
    insta::assert_snapshot!("register_service", body);

    let data = "<struct><member><name>type</name><value><string>wps</string></value></member>\
        <member><name>public</name><value><boolean>1</boolean></value></member>\
        <member><name>verify</name><value><string>no</string></value></member>\
        <member><name>name</name><value><string>ignored</string></value></member></struct>";
    let (_, body) = post(
        &app,
        &call(
            "register_service",
            &[
                "<string>My Emu-1</string>",
                "<string>http://h/w?x=1</string>",
                data,
            ],
        ),
    )
    .await;
    assert!(
        body.contains("<name>name</name>\n<value><string>my_emu_1</string>"),
        "{body}"
    );
    assert!(
        body.contains("<value><string>http://h/w?x=1</string>"),
        "url answered as given: {body}"
    );
    let stored = app
        .store
        .service_by_name("my_emu_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            stored.url.as_str(),
            stored.public,
            stored.verify,
            stored.service_type.as_str()
        ),
        ("http://h/w", true, false, "wps")
    );

    // Same name again: updated in place, list keeps insertion order.
    let (_, _) = post(
        &app,
        &call("register_service", &["emu", "http://127.0.0.1:15056/other"]),
    )
    .await;
    let (_, body) = post(&app, &call("list_services", &[])).await;
    insta::assert_snapshot!("list_services", body);

    let (_, body) = post(
        &app,
        &call("register_service", &["badurl", "ftp://example.org/wps"]),
    )
    .await;
    insta::assert_snapshot!("empty_struct", body);
    assert!(app.store.service_by_name("badurl").await.unwrap().is_none());

    let (_, body) = post(&app, &call("get_service_by_name", &["emu"])).await;
    assert!(
        body.contains("<value><string>http://127.0.0.1:15056/other</string>"),
        "{body}"
    );
    let (_, body) = post(&app, &call("get_service_by_name", &["nosuch"])).await;
    assert!(
        body.contains("<value><struct>\n</struct></value>"),
        "{body}"
    );
    let (_, body) = post(&app, &call("get_service_by_url", &["http://h/w"])).await;
    assert!(body.contains("my_emu_1"), "{body}");
    let (_, body) = post(&app, &call("unregister_service", &["emu"])).await;
    assert!(body.contains("<boolean>1</boolean>"), "{body}");
    let (_, body) = post(&app, &call("unregister_service", &["emu"])).await;
    assert!(body.contains("<boolean>0</boolean>"), "{body}");
    let (_, body) = post(&app, &call("clear_services", &[])).await;
    assert!(body.contains("<boolean>1</boolean>"), "{body}");
    let (_, body) = post(&app, &call("list_services", &[])).await;
    insta::assert_snapshot!("empty_list", body);
}

#[tokio::test]
async fn faults() {
    let app = TestApp::start().await;
    let cases = [
        ("unknown_method", call("nosuch_method", &[])),
        ("list_methods", call("system.listMethods", &[])),
        ("method_name_spaces", "<methodCall><methodName> list_services </methodName><params/></methodCall>".to_string()),
        ("too_many_args", call("revoke_token", &["a", "b"])),
        ("missing_arg", call("register_service", &["a"])),
        ("list_with_arg", call("list_services", &["<int>1</int>"])),
        ("string_hours", call("generate_token", &["abc"])),
        ("nil_hours", call("generate_token", &["<nil/>"])),
        ("hours_out_of_range", call("generate_token", &["<int>1000000</int>"])),
        ("short_name", call("register_service", &["x", "http://h/w"])),
        ("short_name_after_strip", call("register_service", &["  y  ", "http://h/w"])),
        ("name_not_string", call("register_service", &["<int>5</int>", "http://h/w"])),
        ("data_not_struct", call("register_service", &["emu", "http://h/w", "<int>5</int>"])),
        ("malformed", "<methodCall><methodName>list_services</methodName>".to_string()),
        ("empty_body", String::new()),
        ("method_response", "<?xml version='1.0'?><methodResponse><params><param><value><int>1</int></value></param></params></methodResponse>".to_string()),
        ("entity", "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a \"aaaa\">]><methodCall><methodName>revoke_token</methodName><params><param><value>&a;</value></param></params></methodCall>".to_string()),
        ("deep_nesting", format!("<methodCall><methodName>revoke_token</methodName><params><param>{}</param></params></methodCall>", "<value><array><data>".repeat(100))),
    ];
    let mut all = String::new();
    for (name, body) in cases {
        let (status, response) = post(&app, &body).await;
        assert_eq!(status, 200, "{name}: faults travel with HTTP 200");
        assert!(response.contains("<fault>"), "{name}: {response}");
        all.push_str(&format!("== {name}\n{response}"));
    }
    insta::assert_snapshot!("faults", all);
    // Nothing was stored by the refused calls.
    assert!(app.store.list_services().await.unwrap().is_empty());
}

#[tokio::test]
async fn lenient_value_forms_are_understood() {
    let app = TestApp::start().await;
    let (_, body) = post(&app, "<?xml version='1.0'?><methodCall><methodName>register_service</methodName><params><param><value>untyped</value></param><param><value>http://h/w</value></param></params></methodCall>").await;
    assert!(body.contains("<value><string>untyped</string>"), "{body}");
    let (_, body) = post(
        &app,
        "<methodCall><methodName>list_services</methodName></methodCall>",
    )
    .await;
    assert!(body.contains("untyped"), "no params element: {body}");
    let (_, body) = post(&app, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodCall>\n  <methodName>list_services</methodName>\n  <params>\n  </params>\n</methodCall>\n").await;
    assert!(body.contains("untyped"), "whitespace: {body}");
}

#[tokio::test]
async fn oversized_bodies_and_other_methods_are_refused() {
    let app = TestApp::start_with(|c| c.max_body_size = 1024).await;
    let (status, body) = post(
        &app,
        &format!(
            "<methodCall><methodName>{}</methodName></methodCall>",
            "x".repeat(2000)
        ),
    )
    .await;
    assert_eq!(status, 413);
    assert!(body.contains("<fault>"), "{body}");
    let get = app.get("/RPC2").await;
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");
}

#[tokio::test]
async fn basic_auth_when_a_username_is_configured() {
    let app = TestApp::start_with(|c| {
        c.username = Some("admin".into());
        c.password = Some("s3cret".into());
    })
    .await;
    let body = call("list_services", &[]);
    let send = |auth: Option<(&'static str, &'static str)>| {
        let mut request = app
            .client
            .post(format!("{}/RPC2", app.base))
            .body(body.clone());
        if let Some((u, p)) = auth {
            request = request.basic_auth(u, Some(p));
        }
        request.send()
    };
    let denied = send(None).await.unwrap();
    assert_eq!(denied.status(), 401);
    assert_eq!(
        denied.headers()["www-authenticate"],
        "Basic realm=\"twitcher\""
    );
    assert_eq!(send(Some(("admin", "wrong"))).await.unwrap().status(), 401);
    assert_eq!(
        send(Some(("nouser", "nopass"))).await.unwrap().status(),
        401
    );
    let ok = send(Some(("admin", "s3cret"))).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("<array>"));
}

#[tokio::test]
async fn disabled_rpc_interface_is_not_found() {
    let app = TestApp::start_with(|c| c.rpcinterface = false).await;
    let (status, _) = post(&app, &call("list_services", &[])).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn generated_tokens_unlock_execute_and_revocation_locks_it_again() {
    let app = TestApp::start().await;
    let backend = common::StubBackend::start().await;
    backend.route("/wps", common::Canned::ok("text/xml", "<ExecuteResponse/>"));
    post(
        &app,
        &call("register_service", &["emu", &backend.url("/wps")]),
    )
    .await;
    let (_, body) = post(&app, &call("generate_token", &[])).await;
    let token = body
        .split("<value><string>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    let execute = |t: &str| {
        app.get(&format!("/ows/proxy/emu?service=WPS&request=Execute&version=1.0.0&identifier=hello&access_token={t}"))
    };
    assert_eq!(execute(&token).await.status(), 200);
    post(&app, &call("revoke_token", &[&token])).await;
    assert_eq!(execute(&token).await.status(), 401);
}

/// `register_service` with a `data` struct holding one `verify` value.
fn register_with_verify(name: &str, verify: &str) -> String {
    call(
        "register_service",
        &[
            &format!("<string>{name}</string>"),
            "<string>http://h/w</string>",
            &format!(
                "<struct><member><name>verify</name><value>{verify}</value></member></struct>"
            ),
        ],
    )
}

#[tokio::test]
async fn verify_takes_asbool_words_and_refuses_junk() {
    let app = TestApp::start().await;
    let cases = [
        ("<string>false</string>", false),
        ("<string>FALSE</string>", false),
        ("<string>no</string>", false),
        ("<string>Off</string>", false),
        ("<string>f</string>", false),
        ("<string>N</string>", false),
        ("<string>0</string>", false),
        ("<boolean>0</boolean>", false),
        ("<int>0</int>", false),
        ("<string>true</string>", true),
        ("<string>Yes</string>", true),
        ("<string>on</string>", true),
        ("<int>1</int>", true),
        ("<boolean>1</boolean>", true),
        // Empty means "not given": the default, TLS checked.
        ("<string></string>", true),
    ];
    for (i, (value, verify)) in cases.into_iter().enumerate() {
        let name = format!("svc{i}");
        // Registered first with the opposite, so the answer cannot be a default.
        app.register(twitcher::store::Service {
            verify: !verify,
            ..twitcher::store::Service::new(name.clone(), "http://h/w")
        })
        .await;
        let (status, body) = post(&app, &register_with_verify(&name, value)).await;
        assert_eq!(status, 200);
        let expected = format!(
            "<name>verify</name>\n<value><boolean>{}</boolean></value>",
            u8::from(verify)
        );
        assert!(body.contains(&expected), "{value}: {body}");
        let stored = app.store.service_by_name(&name).await.unwrap().unwrap();
        assert_eq!(stored.verify, verify, "{value}: stored");
    }

    // 0.5 read unknown words as false, turning TLS checks off: refused instead, and the
    // service stays as it was (D-REGISTRY-FLAGS).
    app.register(twitcher::store::Service::new("emu", "http://h/w"))
        .await;
    let mut faults = String::new();
    for value in [
        "<string>junk</string>",
        "<string>flase</string>",
        "<string>2</string>",
        "<int>2</int>",
        "<double>0.0</double>",
    ] {
        let (status, body) = post(&app, &register_with_verify("emu", value)).await;
        assert_eq!(status, 200, "faults travel with HTTP 200");
        assert!(body.contains("<fault>"), "{value}: {body}");
        faults.push_str(&format!("== {value}\n{body}"));
    }
    insta::assert_snapshot!("verify_refused", faults);
    let emu = app.store.service_by_name("emu").await.unwrap().unwrap();
    assert!(emu.verify, "a refused call changed the service");
}

const SECRET_URL: &str = "http://wpsuser:s3cr3t@backend.example:8094/wps";
const MASKED_URL: &str = "http://wpsuser:***@backend.example:8094/wps";

/// The registry reads, each answering the service registered with SECRET_URL.
fn reads() -> [(&'static str, String); 3] {
    [
        ("list_services", call("list_services", &[])),
        (
            "get_service_by_name",
            call("get_service_by_name", &["secret"]),
        ),
        (
            "get_service_by_url",
            call("get_service_by_url", &[SECRET_URL]),
        ),
    ]
}

fn shows_url(body: &str, url: &str) -> bool {
    body.contains(&format!(
        "<name>url</name>\n<value><string>{url}</string></value>"
    ))
}

#[tokio::test]
async fn without_a_management_user_reads_mask_url_passwords() {
    // Nobody can prove to be the manager, so every read is anonymous.
    let app = TestApp::start().await;
    let (_, registered) = post(&app, &call("register_service", &["secret", SECRET_URL])).await;
    assert!(
        shows_url(&registered, SECRET_URL),
        "the writer gets what it sent: {registered}"
    );
    for (method, body) in reads() {
        let (status, answer) = post(&app, &body).await;
        assert_eq!(status, 200);
        assert!(shows_url(&answer, MASKED_URL), "{method}: {answer}");
        assert!(!answer.contains("s3cr3t"), "{method}: {answer}");
        if method == "get_service_by_name" {
            insta::assert_snapshot!("masked_service", answer);
        }
    }
    let stored = app.store.service_by_name("secret").await.unwrap().unwrap();
    assert_eq!(stored.url, SECRET_URL, "the stored URL is untouched");
}

#[tokio::test]
async fn the_management_user_reads_url_passwords() {
    let app = TestApp::start_with(|c| {
        c.username = Some("admin".into());
        c.password = Some("s3cret".into());
    })
    .await;
    app.register(twitcher::store::Service::new("secret", SECRET_URL))
        .await;
    for (method, body) in reads() {
        let answer = app
            .client
            .post(format!("{}/RPC2", app.base))
            .basic_auth("admin", Some("s3cret"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let answer = answer.text().await.unwrap();
        assert!(shows_url(&answer, SECRET_URL), "{method}: {answer}");
    }
}
