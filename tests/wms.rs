//! Services of type `wms`: their capabilities lead back through the proxy (unless
//! `twitcher.ows_proxy_rewrite_wms = false`), their other answers pass through, and their
//! data operations need a token.

mod common;

use common::{Canned, StubBackend, TestApp};
use twitcher::store::Service;

const CAPS_130: &str = include_str!("../fixtures/capabilities/wms130.xml");
const CAPS_111: &str = include_str!("../fixtures/capabilities/wms111.xml");
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

/// A WMS backend at `/wms130` answering capabilities (with a legend below its path and an
/// external link) and a PNG for GetMap, registered as `w`.
async fn setup(
    tweak: impl FnOnce(&mut twitcher::config::Config),
) -> (TestApp, StubBackend, String) {
    let app = TestApp::start_with(tweak).await;
    let backend = StubBackend::start().await;
    let service_url = backend.url("/wms130");
    let caps = CAPS_130.replace("http://127.0.0.1:15156/wms130", &service_url).replace(
        "</Capability>",
        &format!(
            "<Layer><Style><LegendURL><OnlineResource xlink:href=\"{service_url}/legend/a.png?STYLE=x\"/></LegendURL></Style>\
             <Attribution><OnlineResource xlink:href=\"http://other.example/about\"/></Attribution></Layer></Capability>"
        ),
    );
    backend.route(
        "/wms130",
        Canned {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "text/xml; charset=utf-8".into()),
                ("Content-Length".into(), caps.len().to_string()),
                ("X-Backend".into(), "kept".into()),
            ],
            body: caps.into(),
        },
    );
    backend.route("/wms130/png", Canned::ok("image/png", PNG));
    backend.route(
        "/wms111",
        Canned::ok(
            "application/vnd.ogc.wms_xml",
            CAPS_111.replace("http://127.0.0.1:15156/wms111", &backend.url("/wms111")),
        ),
    );
    app.register(Service {
        service_type: "wms".into(),
        ..Service::new("w", service_url.clone())
    })
    .await;
    app.register(Service {
        service_type: "WMS".into(),
        ..Service::new("w111", backend.url("/wms111"))
    })
    .await;
    app.token("good", true).await;
    (app, backend, service_url)
}

fn hrefs(doc: &str) -> Vec<&str> {
    doc.split("xlink:href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect()
}

#[tokio::test]
async fn capabilities_lead_back_through_the_proxy() {
    let (app, backend, _) = setup(|_| {}).await;
    let response = app
        .get("/ows/proxy/w?service=WMS&request=GetCapabilities&version=1.3.0")
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backend"], "kept");
    assert!(response.headers().get("content-length").is_none());
    let body = response.text().await.unwrap();
    let proxy = format!("{}/ows/proxy/w", app.base);
    assert_eq!(
        hrefs(&body),
        [
            proxy.clone(),
            format!("{proxy}?SERVICE=WMS&amp;"),
            format!("{proxy}/legend/a.png?STYLE=x"),
            // Every OnlineResource leads through the proxy, as the original did for WPS
            // services, even links that pointed elsewhere (none may bypass the gate).
            proxy.clone(),
        ]
    );
    // Asked uncompressed, so that it can be rewritten.
    let received = &backend.received()[0];
    assert!(
        received
            .headers
            .contains(&("accept-encoding".into(), "identity".into()))
    );

    let body = app
        .get("/ows/proxy/w111?service=WMS&request=GetCapabilities&version=1.1.1")
        .await
        .text()
        .await
        .unwrap();
    let proxy = format!("{}/ows/proxy/w111", app.base);
    assert_eq!(
        hrefs(&body),
        [proxy.clone(), format!("{proxy}?SERVICE=WMS&amp;")]
    );
}

#[tokio::test]
async fn rewrite_wms_false_keeps_the_original_pass_through() {
    let (app, _backend, service_url) = setup(|c| c.rewrite_wms = false).await;
    let response = app
        .get("/ows/proxy/w?service=WMS&request=GetCapabilities")
        .await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(
        hrefs(&body).iter().all(|h| !h.contains("/ows/proxy/")),
        "{body}"
    );
    assert!(hrefs(&body)[0].starts_with(&service_url));
}

#[tokio::test]
async fn get_map_needs_a_token_and_passes_images_through() {
    let (app, backend, _) = setup(|_| {}).await;
    let get_map = "service=WMS&request=GetMap&version=1.3.0&layers=a&crs=EPSG:4326&bbox=0,0,1,1&width=1&height=1&format=image/png";
    let response = app.get(&format!("/ows/proxy/w/png?{get_map}")).await;
    assert_eq!(response.status(), 401);
    assert!(backend.received().is_empty());
    let response = app
        .get(&format!("/ows/proxy/w/png?{get_map}&access_token=good"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(response.bytes().await.unwrap().as_ref(), PNG);
    assert_eq!(
        backend.received()[0].target,
        format!("/wms130/png?{get_map}")
    );
}
