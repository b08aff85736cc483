//! Services of type `ogcapi` (OGC API – Processes, Features) behind a recording stub that
//! answers like pygeoapi: reads of the landing page, conformance, API document, processes
//! and collections are public; execution, jobs, items and unknown paths need a token;
//! writes need one even on a public service; refusals are problem documents; and every
//! link below the backend's URL, in JSON bodies and `Location`/`Link` headers, leads back
//! through the proxy. Every access assertion is also one on what the backend received.

mod common;

use common::{Canned, StubBackend, TestApp, raw_request};
use twitcher::store::Service;

/// A pygeoapi-shaped backend below `/pg`, registered as `api` (protected) and `pubapi`
/// (public), and a token `good`. Its answers name its own URL in every link.
async fn setup_with(tweak: impl FnOnce(&mut twitcher::config::Config)) -> (TestApp, StubBackend) {
    let app = TestApp::start_with(tweak).await;
    let backend = StubBackend::start().await;
    let base = backend.url("/pg");
    let json = |body: String| Canned::ok("application/json", body);
    let links = |path: &str| {
        format!(
            r#"[{{"rel":"self","type":"application/json","href":"{base}{path}?f=json"}},{{"rel":"license","href":"https://creativecommons.org/licenses/by/4.0/"}}]"#
        )
    };
    backend.route(
        "/pg",
        json(format!(r#"{{"title":"pygeoapi","links":{}}}"#, links(""))),
    );
    backend.route(
        "/pg/",
        json(format!(r#"{{"title":"pygeoapi","links":{}}}"#, links("/"))),
    );
    backend.route(
        "/pg/conformance",
        json(
            r#"{"conformsTo":["http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core"]}"#
                .into(),
        ),
    );
    backend.route(
        "/pg/openapi",
        Canned::ok(
            "application/vnd.oai.openapi+json;version=3.0",
            format!(
                r#"{{"openapi":"3.0.2","servers":[{{"url":"{base}","description":"pygeoapi"}}]}}"#
            ),
        ),
    );
    backend.route(
        "/pg/processes",
        json(format!(
            r#"{{"processes":[{{"id":"hello-world","links":{}}}],"links":{}}}"#,
            links("/processes/hello-world"),
            links("/processes")
        )),
    );
    backend.route(
        "/pg/processes/hello-world",
        json(format!(
            r#"{{"id":"hello-world","links":{}}}"#,
            links("/processes/hello-world")
        )),
    );
    backend.route(
        "/pg/processes/hello-world/execution",
        Canned {
            status: 201,
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Location".into(), format!("{base}/jobs/abc")),
                (
                    "Link".into(),
                    format!(r#"<{base}/jobs/abc?f=json>; rel="monitor""#),
                ),
            ],
            body: format!(
                r#"{{"jobID":"abc","status":"accepted","links":{}}}"#,
                links("/jobs/abc")
            )
            .into(),
        },
    );
    backend.route(
        "/pg/jobs/abc",
        json(format!(
            r#"{{"jobID":"abc","status":"successful","links":{}}}"#,
            links("/jobs/abc/results")
        )),
    );
    backend.route(
        "/pg/jobs/abc/results",
        json(r#"{"echo":"Hello tux!"}"#.into()),
    );
    backend.route(
        "/pg/collections",
        json(format!(
            r#"{{"collections":[],"links":{}}}"#,
            links("/collections")
        )),
    );
    backend.route(
        "/pg/collections/lakes",
        json(format!(
            r#"{{"id":"lakes","links":{}}}"#,
            links("/collections/lakes/items")
        )),
    );
    backend.route(
        "/pg/collections/lakes/items",
        Canned::ok(
            "application/geo+json",
            format!(
                r#"{{"type":"FeatureCollection","features":[{{"type":"Feature","id":1,"geometry":null,"properties":{{"name":"Lake Superior"}}}}],"links":[{{"rel":"next","href":"{base}/collections/lakes/items?offset=1&limit=1"}}]}}"#
            ),
        ),
    );
    app.register(Service {
        service_type: "ogcapi".into(),
        ..Service::new("api", base.clone())
    })
    .await;
    app.register(Service {
        service_type: "OGCAPI".into(),
        public: true,
        ..Service::new("pubapi", base)
    })
    .await;
    app.token("good", true).await;
    app.token("old", false).await;
    (app, backend)
}

async fn setup() -> (TestApp, StubBackend) {
    setup_with(|_| {}).await
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app.client.request(method, format!("{}{path}", app.base));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    if !body.is_empty() {
        request = request.body(body.to_string());
    }
    let response = request.send().await.unwrap();
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

fn targets(backend: &StubBackend) -> Vec<String> {
    backend
        .received()
        .into_iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect()
}

/// Every `"href"` and `"url"` value of a JSON text.
fn urls(body: &str) -> Vec<String> {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("href" | "url", serde_json::Value::String(s)) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&serde_json::from_str(body).unwrap(), &mut out);
    out
}

fn assert_problem(answer: &Answer, status: u16, detail: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.headers["content-type"], "application/problem+json");
    let doc: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(doc["status"], status);
    assert_eq!(doc["detail"], detail);
    if status == 401 {
        assert!(
            answer.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer realm=\"twitcher\""),
            "{:?}",
            answer.headers
        );
    }
}

#[tokio::test]
async fn public_reads_pass_without_a_token_and_their_links_lead_through_the_proxy() {
    let (app, backend) = setup().await;
    let proxy = format!("{}/ows/proxy/api", app.base);
    for (path, upstream) in [
        ("", "/pg"),
        ("/", "/pg"),
        ("/conformance", "/pg/conformance"),
        ("/openapi?f=json", "/pg/openapi?f=json"),
        ("/processes", "/pg/processes"),
        ("/processes/hello-world", "/pg/processes/hello-world"),
        ("/collections", "/pg/collections"),
        ("/collections/lakes", "/pg/collections/lakes"),
    ] {
        let answer = send(&app, "GET", &format!("/ows/proxy/api{path}"), &[], "").await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        let got = targets(&backend);
        assert_eq!(got.last().unwrap(), &format!("GET {upstream}"));
        assert!(
            !answer.body.contains(&backend.base),
            "{path}: {}",
            answer.body
        );
        for url in urls(&answer.body) {
            assert!(
                url.starts_with(&proxy) || url.starts_with("https://creativecommons.org/"),
                "{path}: {url}"
            );
        }
    }
    // The rewritten JSON is the backend's, byte for byte, but for the URLs.
    let answer = send(&app, "GET", "/ows/proxy/api/processes/hello-world", &[], "").await;
    assert_eq!(
        answer.body,
        format!(
            r#"{{"id":"hello-world","links":[{{"rel":"self","type":"application/json","href":"{proxy}/processes/hello-world?f=json"}},{{"rel":"license","href":"https://creativecommons.org/licenses/by/4.0/"}}]}}"#
        )
    );
    assert_eq!(
        answer.headers["content-length"],
        answer.body.len().to_string()
    );
    // HEAD of a public path is a public read too.
    assert_eq!(
        send(&app, "HEAD", "/ows/proxy/api/processes", &[], "")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn protected_operations_are_refused_with_problem_documents() {
    let (app, backend) = setup().await;
    let cases = [
        ("POST", "/processes/hello-world/execution"),
        ("GET", "/jobs"),
        ("GET", "/jobs/abc"),
        ("GET", "/jobs/abc/results"),
        ("DELETE", "/jobs/abc"),
        ("GET", "/collections/lakes/items"),
        ("GET", "/collections/lakes/items/1"),
        ("HEAD", "/jobs/abc"),
        ("OPTIONS", "/processes"),
        // Unknown shapes: deny by default.
        ("GET", "/processes/"),
        ("GET", "/processes//hello-world"),
        ("GET", "/Processes"),
        ("GET", "/processes;x"),
        ("GET", "/collections/lakes/queryables"),
        ("POST", "/processes/hello-world/execution/"),
        ("POST", "/PROCESSES/hello-world/execution"),
        ("POST", "/processes/hello-world/jobs"),
        ("PUT", "/processes/hello-world"),
        ("PATCH", "/collections/lakes"),
        ("POST", "/collections/lakes/items"),
    ];
    for (method, path) in cases {
        let answer = send(
            &app,
            method,
            &format!("/ows/proxy/api{path}"),
            &[],
            r#"{"inputs":{}}"#,
        )
        .await;
        if method == "HEAD" {
            assert_eq!(answer.status, 401, "{method} {path}");
        } else {
            assert_problem(
                &answer,
                401,
                "Access token is required to access this service.",
            );
        }
        // An expired token, and a token that is only the last path element.
        let answer = send(
            &app,
            method,
            &format!("/ows/proxy/api{path}?access_token=old"),
            &[],
            "",
        )
        .await;
        if method != "HEAD" {
            assert_problem(&answer, 401, "Access token is expired.");
            let www = answer.headers["www-authenticate"].to_str().unwrap();
            assert!(www.contains("error=\"invalid_token\""), "{www}");
        }
    }
    let answer = send(&app, "GET", "/ows/proxy/api/jobs/good", &[], "").await;
    assert_problem(
        &answer,
        401,
        "Access token is required to access this service.",
    );
    assert!(backend.received().is_empty(), "{:?}", targets(&backend));
}

#[tokio::test]
async fn execution_and_jobs_with_a_token_lead_back_through_the_proxy() {
    let (app, backend) = setup().await;
    let proxy = format!("{}/ows/proxy/api", app.base);
    let execute = r#"{"inputs":{"name":"tux"}}"#;
    let answer = send(
        &app,
        "POST",
        "/ows/proxy/api/processes/hello-world/execution",
        &[
            ("Authorization", "Bearer good"),
            ("Content-Type", "application/json"),
            ("Prefer", "respond-async"),
        ],
        execute,
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.headers["location"], format!("{proxy}/jobs/abc"));
    assert_eq!(
        answer.headers["link"],
        format!(r#"<{proxy}/jobs/abc?f=json>; rel="monitor""#)
    );
    assert!(!answer.body.contains(&backend.base), "{}", answer.body);
    let received = backend.received();
    let post = received.last().unwrap();
    assert_eq!(post.method, "POST");
    assert_eq!(post.body, execute.as_bytes());
    assert!(
        post.headers
            .iter()
            .any(|(k, v)| k == "prefer" && v == "respond-async")
    );
    assert!(
        !post.headers.iter().any(|(k, _)| k == "authorization"),
        "{:?}",
        post.headers
    );
    // Follow the links as a client would: status, then results.
    let status = send(
        &app,
        "GET",
        "/ows/proxy/api/jobs/abc?access_token=good",
        &[],
        "",
    )
    .await;
    assert_eq!(status.status, 200);
    let results = urls(&status.body)
        .into_iter()
        .find(|u| u.contains("/results"))
        .unwrap();
    assert!(results.starts_with(&proxy), "{results}");
    let answer = app
        .client
        .get(&results)
        .header("Access-Token", "good")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), r#"{"echo":"Hello tux!"}"#);
    assert_eq!(
        targets(&backend),
        [
            "POST /pg/processes/hello-world/execution",
            "GET /pg/jobs/abc",
            "GET /pg/jobs/abc/results?f=json"
        ]
    );
    // Items: data, with the next page through the proxy.
    let items = send(
        &app,
        "GET",
        "/ows/proxy/api/collections/lakes/items?limit=1",
        &[("Authorization", "Bearer good")],
        "",
    )
    .await;
    assert_eq!(items.status, 200);
    assert_eq!(items.headers["content-type"], "application/geo+json");
    assert_eq!(
        urls(&items.body),
        [format!("{proxy}/collections/lakes/items?offset=1&limit=1")]
    );
}

#[tokio::test]
async fn a_public_service_reads_for_everyone_but_writes_only_with_a_token() {
    let (app, backend) = setup().await;
    for (method, path) in [
        ("GET", "/collections/lakes/items"),
        ("GET", "/jobs/abc"),
        ("POST", "/processes/hello-world/execution"),
    ] {
        let answer = send(&app, method, &format!("/ows/proxy/pubapi{path}"), &[], "{}").await;
        assert!(answer.status < 300, "{method} {path}: {}", answer.status);
    }
    let before = backend.received().len();
    for (method, path) in [
        ("POST", "/collections/lakes/items"),
        ("PUT", "/collections/lakes/items/1"),
        ("PATCH", "/collections/lakes/items/1"),
        ("DELETE", "/collections/lakes/items/1"),
        ("DELETE", "/jobs/abc"),
        ("POST", "/processes"),
    ] {
        let answer = send(&app, method, &format!("/ows/proxy/pubapi{path}"), &[], "{}").await;
        assert_problem(
            &answer,
            401,
            "Access token is required to access this service.",
        );
    }
    assert_eq!(backend.received().len(), before);
    let answer = send(
        &app,
        "DELETE",
        "/ows/proxy/pubapi/jobs/abc?token=good",
        &[],
        "",
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(targets(&backend).last().unwrap(), "DELETE /pg/jobs/abc");
}

#[tokio::test]
async fn hostile_requests_are_refused_before_the_backend() {
    let (app, backend) = setup().await;
    // Method overrides: a GET the gate admits as public, which a backend would run as
    // something else.
    for header in [
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
    ] {
        let answer = send(
            &app,
            "GET",
            "/ows/proxy/api/processes",
            &[(header, "DELETE")],
            "",
        )
        .await;
        assert_problem(
            &answer,
            400,
            "Method override headers and parameters are not allowed.",
        );
    }
    let answer = send(
        &app,
        "GET",
        "/ows/proxy/api/processes?_method=POST",
        &[],
        "",
    )
    .await;
    assert_problem(
        &answer,
        400,
        "Method override headers and parameters are not allowed.",
    );
    // Methods never forwarded.
    let answer = send(&app, "TRACE", "/ows/proxy/api/processes", &[], "").await;
    assert_problem(&answer, 405, "The method is not allowed.");
    assert!(answer.headers["allow"].to_str().unwrap().contains("PATCH"));
    // Paths a backend could resolve out of the public shape.
    for path in [
        "/ows/proxy/api/processes/hello-world%2Fexecution",
        "/ows/proxy/api/processes/x/..%2F..%2Fjobs",
        "/ows/proxy/api/processes/%2e%2e/jobs",
        "/ows/proxy/api/processes/../jobs",
        "/ows/proxy/api/processes/..;/jobs",
        "/ows/proxy/api/processes/a%5c..%5cjobs",
    ] {
        for method in ["GET", "POST"] {
            let raw = raw_request(
                &app.base,
                format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}")
                    .as_bytes(),
            )
            .await;
            assert!(raw.starts_with("HTTP/1.1 400 "), "{method} {path}: {raw}");
            assert!(raw.contains("application/problem+json"), "{raw}");
            assert!(raw.contains("The request path is not valid."), "{raw}");
        }
    }
    assert!(backend.received().is_empty(), "{:?}", targets(&backend));
    // A body on a public GET is not forwarded.
    let answer = send(
        &app,
        "GET",
        "/ows/proxy/api/processes",
        &[],
        r#"{"inputs":{}}"#,
    )
    .await;
    assert_eq!(answer.status, 200);
    assert!(backend.received()[0].body.is_empty());
    // Credentials never reach the backend, wherever they were.
    let answer = send(
        &app,
        "GET",
        "/ows/proxy/api/jobs/abc?token=good&access_token=x&f=json",
        &[("Access-Token", "good"), ("Authorization", "Bearer good")],
        "",
    )
    .await;
    assert_eq!(answer.status, 200);
    let last = backend.received().pop().unwrap();
    assert_eq!(last.target, "/pg/jobs/abc?f=json");
    assert!(
        !last
            .headers
            .iter()
            .any(|(k, _)| k == "authorization" || k == "access-token"),
        "{:?}",
        last.headers
    );
}

#[tokio::test]
async fn json_larger_than_the_limit_and_html_stream_with_the_urls_replaced() {
    let (app, backend) = setup_with(|c| c.max_json_rewrite = 64).await;
    let proxy = format!("{}/ows/proxy/api", app.base);
    let answer = send(&app, "GET", "/ows/proxy/api/processes", &[], "").await;
    assert_eq!(answer.status, 200);
    assert!(!answer.body.contains(&backend.base), "{}", answer.body);
    assert!(
        answer
            .body
            .contains(&format!(r#""href":"{proxy}/processes/hello-world?f=json""#)),
        "{}",
        answer.body
    );
    // Small answers are still rewritten.
    let answer = send(&app, "GET", "/ows/proxy/api/conformance", &[], "").await;
    assert_eq!(answer.status, 200);
    // An HTML page (pygeoapi's `?f=html`) names the proxy too; an image is left alone.
    let base = backend.url("/pg");
    backend.route(
        "/pg/collections",
        Canned::ok(
            "text/html; charset=utf-8",
            format!(r#"<html><a href="{base}/collections/lakes?f=html">lakes</a></html>"#),
        ),
    );
    let answer = send(&app, "GET", "/ows/proxy/api/collections", &[], "").await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body,
        format!(r#"<html><a href="{proxy}/collections/lakes?f=html">lakes</a></html>"#)
    );
    let png = format!("PNG {base}");
    backend.route(
        "/pg/collections/lakes",
        Canned::ok("image/png", png.clone()),
    );
    let answer = send(&app, "GET", "/ows/proxy/api/collections/lakes", &[], "").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, png);
}

#[tokio::test]
async fn verify_and_unreachable_backends_speak_the_endpoints_language() {
    let (app, _backend) = setup().await;
    let verdict = |method: &str, path: &str| {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let request = app
            .client
            .request(method, format!("{}/ows/verify/api{path}", app.base));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(verdict("GET", "/processes").await, 200);
    assert_eq!(verdict("GET", "/jobs/abc").await, 403);
    assert_eq!(verdict("GET", "/jobs/abc?access_token=good").await, 200);
    assert_eq!(
        verdict("POST", "/processes/hello-world/execution").await,
        403
    );
    assert_eq!(verdict("GET", "/processes?_method=DELETE").await, 403);
    // A backend that is gone: 502 as a problem document.
    app.register(Service {
        service_type: "ogcapi".into(),
        ..Service::new("gone", "http://127.0.0.1:9/pg")
    })
    .await;
    let answer = send(&app, "GET", "/ows/proxy/gone/processes", &[], "").await;
    assert_problem(
        &answer,
        502,
        "Request failed: the service is not reachable.",
    );
}
