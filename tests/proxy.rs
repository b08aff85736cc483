//! End-to-end behaviour of the OWS proxy against stub backends.

mod common;

use std::time::Duration;

use common::{Canned, StubBackend, TestApp};
use twitcher::store::Service;

const EXECUTE: &str =
    "service=WPS&request=Execute&version=1.0.0&identifier=hello&DataInputs=name=tux";
const EXECUTE_RESPONSE: &str = r#"<?xml version="1.0" encoding="UTF-8"?><wps:ExecuteResponse xmlns:wps="http://www.opengis.net/wps/1.0.0"><wps:Status>Hello tux</wps:Status></wps:ExecuteResponse>"#;

async fn setup() -> (TestApp, StubBackend) {
    let app = TestApp::start().await;
    let backend = StubBackend::start().await;
    backend.route(
        "/wps",
        Canned::ok("text/xml; charset=utf-8", EXECUTE_RESPONSE),
    );
    app.register(Service {
        service_type: "wps".into(),
        ..Service::new("emu", backend.url("/wps"))
    })
    .await;
    app.token("good", true).await;
    app.token("old", false).await;
    (app, backend)
}

/// Status, content type and body of a response, for snapshots and asserts.
async fn parts(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let ct = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, response.text().await.unwrap())
}

fn exception_text(body: &str) -> &str {
    let start = body.find("<ExceptionText>").map(|i| i + 15).unwrap_or(0);
    let end = body.find("</ExceptionText>").unwrap_or(body.len());
    &body[start..end]
}

#[tokio::test]
async fn execute_needs_a_valid_token_from_any_location() {
    let (app, backend) = setup().await;
    let url = |q: &str| format!("{}/ows/proxy/emu?{q}", app.base);

    let (status, ct, body) = parts(app.get(&format!("/ows/proxy/emu?{EXECUTE}")).await).await;
    assert_eq!((status, ct.as_str()), (401, "text/xml; charset=UTF-8"));
    assert_eq!(
        exception_text(&body),
        "Access token is required to access this service."
    );

    let ok = [
        app.client
            .get(url(&format!("{EXECUTE}&access_token=good")))
            .send()
            .await
            .unwrap(),
        app.client
            .get(url(&format!("{EXECUTE}&token=good")))
            .send()
            .await
            .unwrap(),
        app.client
            .get(url(EXECUTE))
            .header("Access-Token", "good")
            .send()
            .await
            .unwrap(),
        app.client
            .get(url(EXECUTE))
            .header("Authorization", "Bearer good")
            .send()
            .await
            .unwrap(),
        app.client
            .get(format!("{}/ows/proxy/emu/good?{EXECUTE}", app.base))
            .send()
            .await
            .unwrap(),
    ];
    for response in ok {
        let (status, ct, body) = parts(response).await;
        assert_eq!(
            (status, ct.as_str(), body.as_str()),
            (200, "text/xml; charset=utf-8", EXECUTE_RESPONSE)
        );
    }

    let (status, _, body) = parts(
        app.client
            .get(url(&format!("{EXECUTE}&access_token=old")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, exception_text(&body)),
        (401, "Access token is expired.")
    );
    let (status, _, body) = parts(
        app.client
            .get(url(&format!("{EXECUTE}&access_token=nope")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, exception_text(&body)),
        (401, "Access token is required to access this service.")
    );

    // Credentials meant for twitcher never reach the backend.
    let received = backend.received();
    assert_eq!(received.len(), 5);
    for r in &received {
        assert_eq!(r.target, format!("/wps?{EXECUTE}"), "upstream target");
        assert!(
            !r.headers
                .iter()
                .any(|(k, _)| k == "access-token" || k == "authorization"),
            "credential header forwarded: {:?}",
            r.headers
        );
    }
}

#[tokio::test]
async fn credentials_are_forwarded_when_configured() {
    let app = TestApp::start_with(|c| c.forward_credentials = true).await;
    let backend = StubBackend::start().await;
    backend.route("/wps", Canned::ok("application/json", "{}"));
    app.register(Service::new("emu", backend.url("/wps"))).await;
    app.token("good", true).await;
    let response = app
        .client
        .get(format!(
            "{}/ows/proxy/emu?{EXECUTE}&access_token=good",
            app.base
        ))
        .header("Access-Token", "good")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let r = &backend.received()[0];
    assert_eq!(r.target, format!("/wps?{EXECUTE}&access_token=good"));
    assert!(r.headers.contains(&("access-token".into(), "good".into())));
}

#[tokio::test]
async fn public_requests_and_services_need_no_token() {
    let (app, backend) = setup().await;
    backend.route("/json", Canned::ok("application/json", "{\"probe\": true}"));
    app.register(Service {
        public: true,
        ..Service::new("open", backend.url("/json"))
    })
    .await;
    let (status, _, body) = parts(app.get(&format!("/ows/proxy/open?{EXECUTE}")).await).await;
    assert_eq!((status, body.as_str()), (200, "{\"probe\": true}"));
    let (status, _, _) = parts(
        app.get("/ows/proxy/emu?service=WPS&request=DescribeProcess&version=1.0.0")
            .await,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn cert_services_need_the_verified_header() {
    let (app, backend) = setup().await;
    app.register(Service {
        auth: "cert".into(),
        ..Service::new("emu_cert", backend.url("/wps"))
    })
    .await;
    let url = format!(
        "{}/ows/proxy/emu_cert?{EXECUTE}&access_token=good",
        app.base
    );
    let (status, _, body) = parts(app.client.get(&url).send().await.unwrap()).await;
    assert_eq!(
        (status, exception_text(&body)),
        (401, "A valid X.509 client certificate is needed.")
    );
    let failed = app
        .client
        .get(&url)
        .header("X-Ssl-Client-Verify", "FAILED")
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 401);
    let verified = app
        .client
        .get(&url)
        .header("X-Ssl-Client-Verify", "SUCCESS")
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200);
    // The certificate header was meant for twitcher.
    assert!(
        !backend.received()[0]
            .headers
            .iter()
            .any(|(k, _)| k.starts_with("x-ssl"))
    );
}

#[tokio::test]
async fn ows_parse_errors_come_before_access_checks() {
    let (app, _backend) = setup().await;
    let cases = [
        (
            "/ows/proxy/emu",
            400,
            "Parameter &quot;service&quot; is missing",
        ),
        (
            "/ows/proxy/emu?service=WPS",
            400,
            "Parameter &quot;request&quot; is missing",
        ),
        (
            "/ows/proxy/emu?service=WFS&request=GetFeature",
            400,
            "service wfs is not supported",
        ),
        (
            "/ows/proxy/emu?service=WPS&request=Execute&identifier=x",
            400,
            "Parameter &quot;version&quot; is missing",
        ),
        (
            "/ows/proxy/nosuch?service=WPS&request=GetCapabilities",
            404,
            "Service not found",
        ),
        ("/ows/proxy/nosuch", 404, "Service not found"),
        (
            "/ows/proxy/EMU?service=WPS&request=GetCapabilities",
            404,
            "Service not found",
        ),
        ("/ows/proxy", 404, "Service not found"),
        ("/ows/proxy/", 404, "Service not found"),
        (
            "/ows/proxy/..%2f?service=WPS&request=GetCapabilities",
            404,
            "Service not found",
        ),
        ("/ows/proxy/%ff", 404, "Service not found"),
    ];
    for (path, status, text) in cases {
        let (got_status, ct, body) = parts(app.get(path).await).await;
        assert_eq!(
            (got_status, exception_text(&body)),
            (status, text),
            "{path}"
        );
        assert_eq!(ct, "text/xml; charset=UTF-8", "{path}");
    }
    // Dot segments sent raw (HTTP client libraries would normalise them away).
    for path in [
        "/ows/proxy/emu/../../etc",
        "/ows/proxy/emu/%2e%2E/x",
        "/ows/proxy/emu/a/./b",
    ] {
        let request = format!(
            "GET {path}?service=WPS&request=GetCapabilities HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let raw = common::raw_request(&app.base, request.as_bytes()).await;
        assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
        assert!(raw.contains("The request path is not valid."), "{raw}");
    }
}

#[tokio::test]
async fn post_xml_requests_are_parsed_and_streamed_unchanged() {
    let (app, backend) = setup().await;
    let execute = r#"<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1"><ows:Identifier>hello</ows:Identifier></wps:Execute>"#;
    let post = |body: &'static str| {
        app.client
            .post(format!("{}/ows/proxy/emu", app.base))
            .body(body)
    };

    let (status, _, body) = parts(post(execute).send().await.unwrap()).await;
    assert_eq!(
        (status, exception_text(&body)),
        (401, "Access token is required to access this service.")
    );
    let (status, _, body) = parts(
        post(execute)
            .header("Access-Token", "good")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, EXECUTE_RESPONSE));
    let received = &backend.received()[0];
    assert_eq!(received.method, "POST");
    assert_eq!(received.body, execute.as_bytes());
    assert!(
        received
            .headers
            .contains(&("content-length".into(), execute.len().to_string()))
    );

    let malformed = [
        ("", "Document is empty"),
        (
            "service=WPS&request=Execute",
            "Start tag expected, &#x27;&lt;&#x27; not found",
        ),
        (
            r#"<wps:Execute service="WPS" version="1.0.0">"#,
            "Namespace prefix wps on Execute is not defined",
        ),
    ];
    for (body, text) in malformed {
        let (status, _, report) = parts(post(body).send().await.unwrap()).await;
        assert_eq!((status, exception_text(&report)), (400, text), "{body:?}");
        assert!(report.contains(r#"exceptionCode="NoApplicableCode" locator="NoApplicableCode""#));
    }
    let (status, _, report) = parts(
        post(r#"<Foo service="WPS" version="1.0.0"/>"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, exception_text(&report)),
        (400, "Request type foo is not supported")
    );
}

#[tokio::test]
async fn a_root_element_beyond_the_body_limit_is_refused() {
    let app = TestApp::start_with(|c| c.max_body_size = 1024).await;
    let backend = StubBackend::start().await;
    app.register(Service::new("emu", backend.url("/wps"))).await;
    let body = format!("<!--{}-->", "x".repeat(4096));
    let response = app
        .client
        .post(format!("{}/ows/proxy/emu", app.base))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(backend.received().is_empty());
}

#[tokio::test]
async fn other_methods_get_an_ows_report_with_allow() {
    let (app, _backend) = setup().await;
    for method in ["PUT", "DELETE", "OPTIONS", "PATCH"] {
        let response = app
            .client
            .request(
                method.parse().unwrap(),
                format!(
                    "{}/ows/proxy/emu?service=WPS&request=GetCapabilities",
                    app.base
                ),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["allow"], "GET, POST");
        let (status, ct, _) = parts(response).await;
        assert_eq!(
            (status, ct.as_str()),
            (405, "text/xml; charset=UTF-8"),
            "{method}"
        );
    }
    let head = app
        .client
        .head(format!("{}/ows/proxy/emu", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 405);
}

#[tokio::test]
async fn wps_backend_answers_are_filtered() {
    let app = TestApp::start().await;
    let backend = StubBackend::start().await;
    let canned = |status: u16, ct: Option<&str>, body: &'static str| common::Canned {
        status,
        headers: ct
            .map(|c| {
                vec![
                    ("Content-Type".to_string(), c.to_string()),
                    ("X-Custom".into(), "1".into()),
                ]
            })
            .unwrap_or_default(),
        body: body.into(),
    };
    backend
        .route(
            "/html",
            canned(200, Some("text/html; charset=utf-8"), "<html/>"),
        )
        .route("/plain500", canned(500, Some("text/plain"), "boom"))
        .route(
            "/exc400",
            canned(
                400,
                Some("text/xml"),
                "<ows:ExceptionReport xmlns:ows=\"http://www.opengis.net/ows/1.1\"/>",
            ),
        )
        .route("/noct", canned(200, None, "body without content type"))
        .route("/png", canned(200, Some("image/png"), "\u{89}PNG"))
        .route(
            "/sexml",
            canned(
                200,
                Some("application/vnd.ogc.se_xml"),
                "<ServiceExceptionReport/>",
            ),
        )
        .route("/upper", canned(200, Some("Text/XML"), "<a/>"))
        .route("/badxml", canned(200, Some("text/xml"), "this is not xml"));
    for name in [
        "html", "plain500", "exc400", "noct", "png", "sexml", "upper", "badxml",
    ] {
        app.register(Service {
            public: true,
            ..Service::new(name, backend.url(&format!("/{name}")))
        })
        .await;
    }
    let get = |name: &str| {
        app.client
            .get(format!(
                "{}/ows/proxy/{name}?service=WPS&request=GetCapabilities",
                app.base
            ))
            .send()
    };
    let get = |name: &'static str| {
        let fut = get(name);
        async move { fut.await.unwrap() }
    };
    let check =
        |(status, ct, body): (u16, String, String)| (status, ct, exception_text(&body).to_string());

    assert_eq!(
        check(parts(get("html").await).await),
        (
            401,
            "text/xml; charset=UTF-8".into(),
            "Content type is not allowed: text/html; charset=utf-8.".into()
        )
    );
    assert_eq!(
        check(parts(get("plain500").await).await),
        (
            400,
            "text/xml; charset=UTF-8".into(),
            "Response is not ok: Internal Server Error".into()
        )
    );
    assert_eq!(
        check(parts(get("badxml").await).await),
        (
            400,
            "text/xml; charset=UTF-8".into(),
            "Could not decode content.".into()
        )
    );
    let exc = get("exc400").await;
    assert!(
        exc.headers().get("x-custom").is_none(),
        "wps branch passes only the content type"
    );
    let (status, ct, body) = parts(exc).await;
    assert_eq!((status, ct.as_str()), (400, "text/xml"));
    assert!(body.contains("ExceptionReport"));
    let noct = get("noct").await;
    assert!(noct.headers().get("content-type").is_none());
    assert_eq!(noct.text().await.unwrap(), "body without content type");
    let png = get("png").await;
    assert_eq!(
        png.headers()["content-length"],
        "5",
        "the backend's length of the untouched body"
    );
    assert_eq!(parts(png).await.0, 200);
    assert_eq!(parts(get("sexml").await).await.0, 200);
    assert_eq!(parts(get("upper").await).await.0, 200);
}

#[tokio::test]
async fn other_service_types_pass_through_minus_hop_by_hop_headers() {
    let app = TestApp::start().await;
    let backend = StubBackend::start().await;
    backend.route(
        "/wms",
        Canned {
            status: 500,
            headers: vec![
                ("Content-Type".into(), "text/html".into()),
                ("X-Custom".into(), "kept".into()),
                ("Keep-Alive".into(), "timeout=5".into()),
                ("Upgrade".into(), "h2c".into()),
            ],
            body: "<html>boom</html>".into(),
        },
    );
    app.register(Service {
        service_type: "wms".into(),
        public: true,
        ..Service::new("w", backend.url("/wms"))
    })
    .await;
    let response = app
        .get("/ows/proxy/w?service=WMS&request=GetCapabilities")
        .await;
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["x-custom"], "kept");
    assert!(response.headers().get("keep-alive").is_none());
    assert!(response.headers().get("upgrade").is_none());
    assert_eq!(response.text().await.unwrap(), "<html>boom</html>");
}

#[tokio::test]
async fn redirects_are_passed_back_not_followed() {
    let app = TestApp::start().await;
    let backend = StubBackend::start().await;
    backend.route(
        "/moved",
        Canned {
            status: 302,
            headers: vec![("Location".into(), backend.url("/json"))],
            body: "".into(),
        },
    );
    app.register(Service {
        public: true,
        ..Service::new("moved", backend.url("/moved"))
    })
    .await;
    let response = app
        .get("/ows/proxy/moved?service=WPS&request=GetCapabilities")
        .await;
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()["location"],
        backend.url("/json").as_str()
    );
    assert_eq!(backend.received().len(), 1);
}

#[tokio::test]
async fn unreachable_and_slow_backends_map_to_502_and_504() {
    let app = TestApp::start_with(|c| c.read_timeout = Duration::from_millis(300)).await;
    // A port that was free a moment ago: nothing listens there.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    // A backend that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    app.register(Service {
        public: true,
        ..Service::new("down", format!("http://{closed}/wps"))
    })
    .await;
    app.register(Service {
        public: true,
        ..Service::new("slow", format!("http://{silent_addr}/wps"))
    })
    .await;
    app.register(Service {
        public: true,
        service_type: "wms".into(),
        ..Service::new("down_wms", format!("http://{closed}/wms"))
    })
    .await;
    let (status, _, body) = parts(
        app.get("/ows/proxy/down?service=WPS&request=GetCapabilities")
            .await,
    )
    .await;
    assert_eq!(
        (status, exception_text(&body)),
        (502, "Request failed: the service is not reachable.")
    );
    let (status, _, _) = parts(
        app.get("/ows/proxy/down_wms?service=WMS&request=GetCapabilities")
            .await,
    )
    .await;
    assert_eq!(status, 502);
    let (status, _, body) = parts(
        app.get("/ows/proxy/slow?service=WPS&request=GetCapabilities")
            .await,
    )
    .await;
    assert_eq!(
        (status, exception_text(&body)),
        (504, "Request failed: the service did not answer in time.")
    );
}

#[tokio::test]
async fn extra_path_and_query_are_forwarded_byte_exactly() {
    let app = TestApp::start().await;
    let backend = StubBackend::start().await;
    backend.route("/h/some/extra", Canned::ok("application/json", "{}"));
    app.register(Service {
        public: true,
        ..Service::new("h", backend.url("/h"))
    })
    .await;
    let response = app
        .client
        .get(format!("{}/ows/proxy/h/some/extra?service=WPS&request=GetCapabilities&a=%20b&a=c&x=%C3%A9&empty=", app.base))
        .header("Cookie", "c=1")
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    let r = &backend.received()[0];
    assert_eq!(response.status(), 200, "{r:?}");
    assert_eq!(
        r.target,
        "/h/some/extra?service=WPS&request=GetCapabilities&a=%20b&a=c&x=%C3%A9&empty="
    );
    assert!(r.headers.contains(&("cookie".into(), "c=1".into())));
    assert!(
        r.headers
            .contains(&("accept-encoding".into(), "identity".into()))
    );
    assert!(
        !r.headers
            .iter()
            .any(|(k, v)| k == "host" && v.contains(&app.base[7..]))
    );
}

#[tokio::test]
async fn frontpage_info_versions_health_and_unknown_paths() {
    let app = TestApp::start().await;
    let (status, ct, body) = parts(app.get("/").await).await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    assert!(body.starts_with(r#"{"message": "Twitcher Frontpage", "information_uri": "http://localhost:8000/info", "versions_uri": "http://localhost:8000/versions""#), "{body}");
    let post = app
        .client
        .post(format!("{}/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(post.text().await.unwrap(), body);
    let (_, _, info) = parts(app.get("/info").await).await;
    assert!(
        info.contains(&format!(
            r#""package": "twitcher", "version": "{}""#,
            env!("CARGO_PKG_VERSION")
        )),
        "{info}"
    );
    let (_, _, versions) = parts(app.get("/versions").await).await;
    assert!(
        versions.starts_with(r#"[{"name": "Twitcher", "version": ""#),
        "{versions}"
    );
    let (status, _, health) = parts(app.get("/health").await).await;
    assert_eq!((status, health.as_str()), (200, r#"{"status": "ok"}"#));
    let (status, ct, body) = parts(app.get("/no%20such%3Cx%3E&%27").await).await;
    assert_eq!((status, ct.as_str()), (404, "text/xml; charset=UTF-8"));
    assert_eq!(exception_text(&body), "/no such&lt;x&gt;&amp;&#x27;");
}
