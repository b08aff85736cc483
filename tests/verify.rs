//! `/ows/verify/{name}[/{extra}]` (T08, SPEC §4): the proxy's access decision as JSON, for an
//! nginx `auth_request` in front of the services, without ever contacting the backend.

mod common;

use common::{Canned, StubBackend, TestApp};
use reqwest::Method;
use twitcher::store::Service;

const ALLOWED: &str = r#"{"description": "Access to service is allowed.", "access": true}"#;
const FORBIDDEN: &str = r#"{"description": "Access to service is forbidden.", "access": false}"#;

const GETCAPS: &str = "service=WPS&request=GetCapabilities";
const DESCRIBE: &str = "service=WPS&request=DescribeProcess&version=1.0.0&identifier=hello";
const EXECUTE: &str =
    "service=WPS&request=Execute&version=1.0.0&identifier=hello&DataInputs=name=tux";
const EXECUTE_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1"><ows:Identifier>hello</ows:Identifier></wps:Execute>"#;
const GETCAPS_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<wps:GetCapabilities service="WPS" xmlns:wps="http://www.opengis.net/wps/1.0.0"/>"#;

/// twitcher, a stub backend behind every service, and the tokens of the tests:
/// XML-RPC `good` (valid) and `old` (expired); OAuth tokens with scope compute and
/// register-only, issued through `/oauth/client` and `/oauth/token`; a stored, expired
/// OAuth compute token `oldoauth`.
struct Setup {
    app: TestApp,
    backend: StubBackend,
    compute: String,
    register: String,
}

async fn setup_with(tweak: impl FnOnce(&mut twitcher::config::Config)) -> Setup {
    let app = TestApp::start_with(tweak).await;
    let backend = StubBackend::start().await;
    backend.route("/wps", Canned::ok("text/xml", "<Capabilities/>"));
    app.register(Service::new("emu", backend.url("/wps"))).await;
    app.register(Service {
        auth: "cert".into(),
        ..Service::new("emucert", backend.url("/wps"))
    })
    .await;
    app.register(Service {
        public: true,
        ..Service::new("emupub", backend.url("/wps"))
    })
    .await;
    app.register(Service {
        auth: "public".into(),
        ..Service::new("emuauthpub", backend.url("/wps"))
    })
    .await;
    app.register(Service {
        service_type: "wms".into(),
        ..Service::new("wms", backend.url("/wms"))
    })
    .await;
    app.token("good", true).await;
    app.token("old", false).await;
    common::stored_oauth_token(&app, "oldoauth", "compute", false).await;
    let client = common::oauth_client(&app, None).await;
    let compute = common::oauth_token(&app, &client, "compute").await;
    let register = common::oauth_token(&app, &client, "register").await;
    Setup {
        app,
        backend,
        compute,
        register,
    }
}

async fn setup() -> Setup {
    setup_with(|_| {}).await
}

/// Sends a request to a verify path; returns status and body after checking the
/// Content-Type of the decision.
async fn verify(
    s: &Setup,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String) {
    let mut request = s
        .app
        .client
        .request(method, format!("{}{path}", s.app.base));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let ct = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.text().await.unwrap();
    assert_eq!(ct, "application/json", "{path}: {status} {body}");
    (status, body)
}

async fn get(s: &Setup, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    verify(s, Method::GET, path, headers, None).await
}

/// A labelled request: what it shows, path and query, extra headers.
type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);

/// A request to send: method, path and query, extra headers, body.
type Request<'a> = (Method, String, Vec<(&'a str, &'a str)>, Option<&'a str>);

#[track_caller]
fn assert_allowed(answer: (u16, String), what: &str) {
    assert_eq!((answer.0, answer.1.as_str()), (200, ALLOWED), "{what}");
}

#[track_caller]
fn assert_forbidden(answer: (u16, String), what: &str) {
    assert_eq!((answer.0, answer.1.as_str()), (403, FORBIDDEN), "{what}");
}

#[tokio::test]
async fn public_operations_are_allowed_without_a_token() {
    let s = setup().await;
    for query in [
        GETCAPS,
        "SERVICE=wps&REQUEST=getcapabilities",
        "service=WPS&request=GetCapabilities&version=1.0.0",
        DESCRIBE,
    ] {
        assert_allowed(
            get(&s, &format!("/ows/verify/emu?{query}"), &[]).await,
            query,
        );
    }
    let wms = "service=WMS&request=GetCapabilities";
    assert_allowed(get(&s, &format!("/ows/verify/wms?{wms}"), &[]).await, wms);
    assert_allowed(
        verify(
            &s,
            Method::POST,
            "/ows/verify/emu",
            &[("Content-Type", "text/xml")],
            Some(GETCAPS_XML),
        )
        .await,
        "POST GetCapabilities",
    );
    assert!(s.backend.received().is_empty());
}

#[tokio::test]
async fn execute_needs_a_valid_token_from_any_location() {
    let s = setup().await;
    let execute = format!("/ows/verify/emu?{EXECUTE}");
    assert_forbidden(get(&s, &execute, &[]).await, "no token");

    let bearer_xmlrpc = "Bearer good".to_string();
    let bearer_oauth = format!("Bearer {}", s.compute);
    let allowed: [Case; 8] = [
        (
            "query access_token",
            format!("{execute}&access_token=good"),
            vec![],
        ),
        ("query token", format!("{execute}&token=good"), vec![]),
        (
            "Access-Token header",
            execute.clone(),
            vec![("Access-Token", "good")],
        ),
        (
            "Bearer XML-RPC token",
            execute.clone(),
            vec![("Authorization", bearer_xmlrpc.as_str())],
        ),
        (
            "Bearer OAuth compute token",
            execute.clone(),
            vec![("Authorization", bearer_oauth.as_str())],
        ),
        (
            "query OAuth compute token",
            format!("{execute}&access_token={}", s.compute),
            vec![],
        ),
        (
            "last path element",
            format!("/ows/verify/emu/good?{EXECUTE}"),
            vec![],
        ),
        (
            "last path element, trailing slash",
            format!("/ows/verify/emu/good/?{EXECUTE}"),
            vec![],
        ),
    ];
    for (what, path, headers) in &allowed {
        assert_allowed(get(&s, path, headers).await, what);
    }

    let bearer_register = format!("Bearer {}", s.register);
    let forbidden: [Case; 8] = [
        (
            "expired XML-RPC token",
            format!("{execute}&access_token=old"),
            vec![],
        ),
        (
            "expired OAuth token",
            execute.clone(),
            vec![("Authorization", "Bearer oldoauth")],
        ),
        (
            "unknown token",
            format!("{execute}&access_token=nope"),
            vec![],
        ),
        (
            "unknown Bearer",
            execute.clone(),
            vec![("Authorization", "Bearer nope")],
        ),
        (
            "register-only OAuth token",
            execute.clone(),
            vec![("Authorization", bearer_register.as_str())],
        ),
        (
            "register-only OAuth token in the query",
            format!("{execute}&access_token={}", s.register),
            vec![],
        ),
        (
            "basic auth is no token",
            execute.clone(),
            vec![("Authorization", "Basic ZGVtbzpkZW1v")],
        ),
        ("empty token", format!("{execute}&access_token="), vec![]),
    ];
    for (what, path, headers) in &forbidden {
        assert_forbidden(get(&s, path, headers).await, what);
    }
    // Other protected operations of another service type.
    let getmap = "service=WMS&request=GetMap&version=1.3.0&layers=x";
    assert_forbidden(
        get(&s, &format!("/ows/verify/wms?{getmap}"), &[]).await,
        "GetMap",
    );
    assert_allowed(
        get(&s, &format!("/ows/verify/wms?{getmap}&token=good"), &[]).await,
        "GetMap with token",
    );
    assert!(s.backend.received().is_empty());
}

#[tokio::test]
async fn cert_services_need_a_verified_client_certificate() {
    let s = setup().await;
    let execute = format!("/ows/verify/emucert?{EXECUTE}");
    assert_forbidden(get(&s, &execute, &[]).await, "no certificate");
    assert_allowed(
        get(&s, &execute, &[("X-Ssl-Client-Verify", "SUCCESS")]).await,
        "SUCCESS",
    );
    for value in ["FAILED:unable to verify", "NONE", "success", ""] {
        assert_forbidden(
            get(&s, &execute, &[("X-Ssl-Client-Verify", value)]).await,
            value,
        );
    }
    // A token does not replace the certificate.
    assert_forbidden(
        get(&s, &format!("{execute}&access_token=good"), &[]).await,
        "token on a cert service",
    );
    // Public operations stay public.
    assert_allowed(
        get(&s, &format!("/ows/verify/emucert?{GETCAPS}"), &[]).await,
        "caps",
    );
}

#[tokio::test]
async fn public_services_allow_every_request() {
    let s = setup().await;
    for name in ["emupub", "emuauthpub"] {
        for query in [EXECUTE, GETCAPS, "", "service=foo"] {
            assert_allowed(
                get(&s, &format!("/ows/verify/{name}?{query}"), &[]).await,
                &format!("{name} {query}"),
            );
        }
        assert_allowed(
            verify(
                &s,
                Method::POST,
                &format!("/ows/verify/{name}"),
                &[],
                Some(EXECUTE_XML),
            )
            .await,
            name,
        );
    }
}

#[tokio::test]
async fn unknown_services_are_forbidden() {
    let s = setup().await;
    for path in [
        format!("/ows/verify/nosuch?{GETCAPS}"),
        format!("/ows/verify/nosuch?{EXECUTE}&access_token=good"),
        format!("/ows/verify/EMU?{GETCAPS}"),
        format!("/ows/verify/nosuch/extra?{GETCAPS}"),
    ] {
        assert_forbidden(get(&s, &path, &[]).await, &path);
    }
}

#[tokio::test]
async fn requests_without_a_readable_operation_count_as_protected() {
    // nginx auth_request sends the original method and query without the body.
    let s = setup().await;
    assert_forbidden(get(&s, "/ows/verify/emu", &[]).await, "no query");
    assert_allowed(
        get(&s, "/ows/verify/emu", &[("Access-Token", "good")]).await,
        "no query, token",
    );
    assert_forbidden(
        get(&s, "/ows/verify/emu?service=foo&request=bar", &[]).await,
        "bogus query",
    );
    assert_forbidden(
        get(&s, "/ows/verify/emu?service=WPS", &[]).await,
        "no request parameter",
    );
    assert_allowed(
        get(&s, "/ows/verify/emu?service=WPS&token=good", &[]).await,
        "no request parameter, token",
    );
    assert_forbidden(
        verify(&s, Method::POST, "/ows/verify/emu", &[], Some("")).await,
        "POST, empty body",
    );
    assert_allowed(
        verify(
            &s,
            Method::POST,
            "/ows/verify/emu?access_token=good",
            &[],
            Some(""),
        )
        .await,
        "POST, empty body, token",
    );
    let bearer = format!("Bearer {}", s.compute);
    assert_allowed(
        verify(
            &s,
            Method::POST,
            "/ows/verify/emu",
            &[("Authorization", bearer.as_str())],
            Some(""),
        )
        .await,
        "POST, empty body, Bearer",
    );
    assert_forbidden(
        verify(
            &s,
            Method::POST,
            "/ows/verify/emu",
            &[("Content-Type", "text/xml")],
            Some(EXECUTE_XML),
        )
        .await,
        "POST Execute",
    );
    assert_allowed(
        verify(
            &s,
            Method::POST,
            "/ows/verify/emu",
            &[("Content-Type", "text/xml"), ("Access-Token", "good")],
            Some(EXECUTE_XML),
        )
        .await,
        "POST Execute, token",
    );
    assert_forbidden(
        verify(
            &s,
            Method::POST,
            "/ows/verify/emu",
            &[],
            Some("not xml at all"),
        )
        .await,
        "POST, malformed body",
    );
    // nginx's subrequest carries no body, but the query may name a public operation.
    assert_allowed(
        verify(
            &s,
            Method::POST,
            "/ows/verify/emu?service=WPS&request=GetCapabilities",
            &[],
            Some(""),
        )
        .await,
        "POST without body, GetCapabilities in the query",
    );
    assert_forbidden(
        verify(
            &s,
            Method::POST,
            &format!("/ows/verify/emu?{EXECUTE}"),
            &[],
            Some(""),
        )
        .await,
        "POST without body, Execute in the query",
    );
    assert!(s.backend.received().is_empty());
}

#[tokio::test]
async fn extra_paths_are_verified_like_the_service() {
    let s = setup().await;
    assert_allowed(
        get(&s, &format!("/ows/verify/emu/some/path?{GETCAPS}"), &[]).await,
        "caps with extra path",
    );
    // `path` is the last path element: taken as a token, and not a valid one.
    assert_forbidden(
        get(&s, &format!("/ows/verify/emu/some/path?{EXECUTE}"), &[]).await,
        "execute with extra path",
    );
    assert_allowed(
        get(
            &s,
            &format!("/ows/verify/emu/some/path?{EXECUTE}&access_token=good"),
            &[],
        )
        .await,
        "execute with extra path and token",
    );
    assert_allowed(
        get(&s, &format!("/ows/verify/emu/some/good?{EXECUTE}"), &[]).await,
        "token as the last element of an extra path",
    );
    assert_forbidden(
        get(&s, &format!("/ows/verify/emucert/some/path?{EXECUTE}"), &[]).await,
        "cert service with extra path",
    );
    assert_allowed(
        get(&s, &format!("/ows/verify/emupub/some/path?{EXECUTE}"), &[]).await,
        "public service with extra path",
    );
    assert!(s.backend.received().is_empty());
}

#[tokio::test]
async fn verify_never_contacts_the_backend() {
    let s = setup().await;
    let bearer = format!("Bearer {}", s.compute);
    let cases: Vec<Request> = vec![
        (
            Method::GET,
            format!("/ows/verify/emu?{GETCAPS}"),
            vec![],
            None,
        ),
        (
            Method::GET,
            format!("/ows/verify/emu?{EXECUTE}&access_token=good"),
            vec![],
            None,
        ),
        (
            Method::GET,
            format!("/ows/verify/emu/x/y?{EXECUTE}"),
            vec![("Authorization", bearer.as_str())],
            None,
        ),
        (
            Method::POST,
            "/ows/verify/emu?token=good".into(),
            vec![],
            Some(EXECUTE_XML),
        ),
        (
            Method::POST,
            "/ows/verify/emupub".into(),
            vec![],
            Some(EXECUTE_XML),
        ),
        (
            Method::GET,
            format!("/ows/verify/emucert?{EXECUTE}"),
            vec![("X-Ssl-Client-Verify", "SUCCESS")],
            None,
        ),
        (
            Method::GET,
            "/ows/verify/wms?service=WMS&request=GetMap&version=1.3.0&token=good".to_string(),
            vec![],
            None,
        ),
    ];
    for (method, path, headers, body) in cases {
        let (status, _) = verify(&s, method.clone(), &path, &headers, body).await;
        assert_eq!(status, 200, "{method} {path}");
    }
    // The proxy does reach the backend: the stub is really behind these services.
    let proxied = s.app.get(&format!("/ows/proxy/emupub?{GETCAPS}")).await;
    assert_eq!(proxied.status(), 200);
    assert_eq!(proxied.text().await.unwrap(), "<Capabilities/>");
    let received = s.backend.received();
    assert_eq!(received.len(), 1, "only the proxy request: {received:?}");
    assert_eq!(received[0].target, format!("/wps?{GETCAPS}"));
}

#[tokio::test]
async fn without_ows_security_every_request_is_allowed() {
    let s = setup_with(|c| c.ows_security = false).await;
    for path in [
        format!("/ows/verify/emu?{EXECUTE}"),
        "/ows/verify/emu".to_string(),
        format!("/ows/verify/emucert?{EXECUTE}"),
        format!("/ows/verify/emu/some/path?{EXECUTE}&access_token=old"),
    ] {
        assert_allowed(get(&s, &path, &[]).await, &path);
    }
    assert_allowed(
        verify(&s, Method::POST, "/ows/verify/emu", &[], Some(EXECUTE_XML)).await,
        "POST Execute",
    );
    // Still no backend contact, and unknown services are still refused.
    assert_forbidden(
        get(&s, &format!("/ows/verify/nosuch?{GETCAPS}"), &[]).await,
        "unknown",
    );
    assert!(s.backend.received().is_empty());
}
