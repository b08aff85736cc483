//! Services of type `wfs`, `wcs` and `wmts` behind a stub backend answering with recorded
//! documents (`fixtures/ogc/`): capabilities and the Describe* operations are public and
//! their operation URLs lead back through the proxy, data operations need a token, WFS
//! `Transaction` needs one even on a public service, and the gate's hostile-request
//! classes (paths, duplicate keys, body disguises) are refused before any backend sees
//! them. Every assertion on access is also an assertion on what the backend received.

mod common;

use common::{Canned, StubBackend, TestApp, raw_request};
use twitcher::store::Service;

const FIXTURE_HOST: &str = "http://127.0.0.1:18080";
const WFS_CAPS: &str = include_str!("../fixtures/ogc/wfs-2.0.0-capabilities.xml");
const WFS10_CAPS: &str = include_str!("../fixtures/ogc/wfs-1.0.0-capabilities.xml");
const WFS_FEATURES: &str = include_str!("../fixtures/ogc/wfs-getfeature.xml");
const WCS_CAPS: &str = include_str!("../fixtures/ogc/wcs-2.0.1-capabilities.xml");
const WCS10_CAPS: &str = include_str!("../fixtures/ogc/wcs-1.0.0-capabilities.xml");
const WCS_COVERAGE: &[u8] = include_bytes!("../fixtures/ogc/wcs-getcoverage.tif");
const WMTS_CAPS: &str = include_str!("../fixtures/ogc/wmts-1.0.0-capabilities.xml");
const WMTS_TILE: &[u8] = include_bytes!("../fixtures/ogc/wmts-gettile.png");

const TRANSACTION_XML: &str = r#"<?xml version="1.0"?>
<wfs:Transaction service="WFS" version="2.0.0" xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:fes="http://www.opengis.net/fes/2.0"><wfs:Delete typeName="topp:states"><fes:Filter><fes:ResourceId rid="states.1"/></fes:Filter></wfs:Delete></wfs:Transaction>"#;

/// One backend holding every fixture; services (all token-protected unless named `pub…`):
/// `wfs` (GeoServer caps at `/geoserver/wfs`), `wfsdata` (features at `/data/wfs`),
/// `pubwfs` (public, at `/data/wfs`), `wfs10` (MapServer), `wcs` (caps), `wcsdata`
/// (coverage), `wcs10` (MapServer), `wmts` (GeoWebCache at `/geoserver/gwc`, KVP below
/// `/service/wmts`, REST below `/rest/wmts`), and a token `good`.
async fn setup() -> (TestApp, StubBackend) {
    let app = TestApp::start().await;
    let backend = StubBackend::start().await;
    let fix = |doc: &str| doc.replace(FIXTURE_HOST, &backend.base);
    let xml = |doc: &str| Canned::ok("text/xml; charset=UTF-8", fix(doc));
    backend.route("/geoserver/wfs", xml(WFS_CAPS));
    backend.route(
        "/data/wfs",
        Canned::ok("application/gml+xml; version=3.2", fix(WFS_FEATURES)),
    );
    backend.route("/cgi-bin/mapserv", xml(WFS10_CAPS));
    backend.route("/cgi-bin/mapserv-wcs", xml(WCS10_CAPS));
    backend.route("/geoserver/wcs", xml(WCS_CAPS));
    backend.route("/data/wcs", Canned::ok("image/tiff", WCS_COVERAGE));
    backend.route("/geoserver/gwc/service/wmts", xml(WMTS_CAPS));
    backend.route(
        "/geoserver/gwc/rest/wmts/WMTSCapabilities.xml",
        xml(WMTS_CAPS),
    );
    backend.route(
        "/geoserver/gwc/rest/wmts/topp:states/population/EPSG:4326/EPSG:4326:0/0/0",
        Canned::ok("image/png", WMTS_TILE),
    );
    backend.route("/data/wmts", Canned::ok("image/png", WMTS_TILE));
    let services = [
        ("wfs", "wfs", "/geoserver/wfs", false),
        ("wfsdata", "WFS", "/data/wfs", false),
        ("pubwfs", "wfs", "/data/wfs", true),
        (
            "wfs10",
            "wfs",
            "/cgi-bin/mapserv?map=/maps/lakes.map",
            false,
        ),
        ("wcs", "wcs", "/geoserver/wcs", false),
        ("wcsdata", "wcs", "/data/wcs", false),
        ("wcs10", "WCS", "/cgi-bin/mapserv-wcs", false),
        ("wmts", "wmts", "/geoserver/gwc", false),
        ("wmtskvp", "WMTS", "/geoserver/gwc/service/wmts", false),
        ("wmtsdata", "wmts", "/data/wmts", false),
    ];
    for (name, kind, path, public) in services {
        app.register(Service {
            service_type: kind.into(),
            public,
            ..Service::new(name, backend.url(path))
        })
        .await;
    }
    app.token("good", true).await;
    (app, backend)
}

/// Status, content type and body of a GET.
async fn get(app: &TestApp, path: &str) -> (u16, String, Vec<u8>) {
    let response = app.get(path).await;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

async fn post(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, String) {
    let response = app
        .client
        .post(format!("{}{path}", app.base))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn attribute_values<'d>(doc: &'d str, attribute: &str) -> Vec<&'d str> {
    doc.split(&format!("{attribute}=\""))
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect()
}

fn targets(backend: &StubBackend) -> Vec<String> {
    backend.received().into_iter().map(|r| r.target).collect()
}

#[tokio::test]
async fn capabilities_are_public_and_lead_back_through_the_proxy() {
    let (app, backend) = setup().await;
    let cases = [
        ("wfs", "service=WFS&request=GetCapabilities", WFS_CAPS),
        (
            "wfs10",
            "SERVICE=wfs&REQUEST=GetCapabilities&VERSION=1.0.0",
            WFS10_CAPS,
        ),
        (
            "wcs",
            "service=WCS&request=GetCapabilities&acceptVersions=2.0.1",
            WCS_CAPS,
        ),
        (
            "wcs10",
            "service=WCS&request=GetCapabilities&version=1.0.0",
            WCS10_CAPS,
        ),
        (
            "wmtskvp",
            "service=WMTS&request=GetCapabilities&version=1.0.0",
            WMTS_CAPS,
        ),
    ];
    for (name, query, original) in cases {
        let (status, content_type, body) = get(&app, &format!("/ows/proxy/{name}?{query}")).await;
        let body = String::from_utf8(body).unwrap();
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(content_type, "text/xml; charset=UTF-8");
        let proxy = format!("{}/ows/proxy/{name}", app.base);
        let service_url = app.store.service_by_name(name).await.unwrap().unwrap().url;
        let service_path = service_url.split('?').next().unwrap();
        for attribute in ["xlink:href", "onlineResource"] {
            for url in attribute_values(&body, attribute) {
                // Elsewhere on the backend's host (a metadata document) is not the
                // service: the proxy cannot lead there, and leaves it as it is.
                assert!(
                    !url.starts_with(service_path),
                    "{name}: {attribute} {url} points at the backend"
                );
            }
        }
        let operations = attribute_values(&body, "xlink:href")
            .into_iter()
            .chain(attribute_values(&body, "onlineResource"))
            .filter(|u| u.starts_with(&proxy))
            .count();
        assert!(
            operations >= 3,
            "{name}: {operations} operation URLs rewritten\n{body}"
        );
        // Apart from the rewritten URLs the document is the backend's.
        let backend_doc = original.replace(FIXTURE_HOST, &backend.base);
        assert_eq!(
            body.lines().count(),
            backend_doc.lines().count(),
            "{name}: lines changed"
        );
        let snapshot = body
            .replace(&app.base, "http://PROXY")
            .replace(&backend.base, "http://BACKEND");
        insta::assert_snapshot!(format!("{name}_capabilities"), snapshot);
    }
    assert_eq!(backend.received().len(), cases.len());
}

#[tokio::test]
async fn wmts_resource_templates_below_the_service_url_lead_through_the_proxy() {
    let (app, backend) = setup().await;
    let (status, _, body) = get(&app, "/ows/proxy/wmts/rest/wmts/WMTSCapabilities.xml").await;
    assert_eq!(status, 200);
    let body = String::from_utf8(body).unwrap();
    let proxy = format!("{}/ows/proxy/wmts", app.base);
    assert_eq!(
        attribute_values(&body, "template"),
        [format!(
            "{proxy}/rest/wmts/topp:states/{{style}}/{{TileMatrixSet}}/{{TileMatrix}}/{{TileRow}}/{{TileCol}}?format=image/png"
        )]
    );
    let hrefs = attribute_values(&body, "xlink:href");
    assert!(
        hrefs.contains(&format!("{proxy}/service/wmts").as_str()),
        "{hrefs:?}"
    );
    assert!(
        hrefs.contains(
            &format!("{proxy}/service/wmts?REQUEST=getcapabilities&amp;VERSION=1.0.0").as_str()
        ),
        "{hrefs:?}"
    );
    // A legend on another path of the backend: below the service URL's host only, so the
    // WMS-style rule does not apply outside an operations section; it stays as it is.
    assert!(
        hrefs
            .iter()
            .any(|h| h.starts_with(&format!("{}/geoserver/ows?", backend.base)))
    );
    // The template, followed by a client: a tile, protected.
    let tile = "/ows/proxy/wmts/rest/wmts/topp:states/population/EPSG:4326/EPSG:4326:0/0/0";
    assert_eq!(get(&app, tile).await.0, 401);
    let (status, content_type, body) = get(&app, &format!("{tile}?access_token=good")).await;
    assert_eq!((status, content_type.as_str()), (200, "image/png"));
    assert_eq!(body, WMTS_TILE);
    assert_eq!(
        targets(&backend),
        [
            "/geoserver/gwc/rest/wmts/WMTSCapabilities.xml",
            "/geoserver/gwc/rest/wmts/topp:states/population/EPSG:4326/EPSG:4326:0/0/0"
        ]
    );
}

#[tokio::test]
async fn data_operations_need_a_token() {
    let (app, backend) = setup().await;
    let cases: [(&str, &str, &[u8], &str); 4] = [
        (
            "wfsdata",
            "service=WFS&request=GetFeature&version=2.0.0&typeNames=topp:states&count=1",
            WFS_FEATURES.as_bytes(),
            "application/gml+xml; version=3.2",
        ),
        (
            "wcsdata",
            "service=WCS&request=GetCoverage&version=2.0.1&coverageId=nurc__sst&format=image/tiff",
            WCS_COVERAGE,
            "image/tiff",
        ),
        (
            "wmtsdata",
            "service=WMTS&request=GetTile&version=1.0.0&layer=topp:states&style=population&tilematrixset=EPSG:4326&tilematrix=EPSG:4326:0&tilerow=0&tilecol=0&format=image/png",
            WMTS_TILE,
            "image/png",
        ),
        (
            "wmtsdata",
            "service=WMTS&request=GetFeatureInfo&version=1.0.0&layer=topp:states",
            WMTS_TILE,
            "image/png",
        ),
    ];
    for (seen, (name, query, answer, media)) in cases.into_iter().enumerate() {
        let (status, content_type, body) = get(&app, &format!("/ows/proxy/{name}?{query}")).await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(
            (status, content_type.as_str()),
            (401, "text/xml; charset=UTF-8"),
            "{name}"
        );
        assert!(body.contains("Access token is required"), "{body}");
        assert_eq!(backend.received().len(), seen, "{name} reached the backend");
        let (status, content_type, body) = get(
            &app,
            &format!("/ows/proxy/{name}?{query}&access_token=good"),
        )
        .await;
        assert_eq!((status, content_type.as_str()), (200, media), "{name}");
        // Data answers pass untouched (URLs in GML are data, not links to follow).
        let expected = match std::str::from_utf8(answer) {
            Ok(text) => text.replace(FIXTURE_HOST, &backend.base).into_bytes(),
            Err(_) => answer.to_vec(),
        };
        assert_eq!(body, expected, "{name}");
        let received = backend.received();
        assert_eq!(received.len(), seen + 1, "{name}");
        let last = received.last().unwrap();
        assert!(!last.target.contains("good"), "{}", last.target);
    }
}

#[tokio::test]
async fn describe_operations_are_public() {
    let (app, backend) = setup().await;
    for path in [
        "/ows/proxy/wfsdata?service=WFS&request=DescribeFeatureType&version=2.0.0&typeNames=topp:states",
        "/ows/proxy/wfsdata?service=WFS&request=ListStoredQueries&version=2.0.0",
        "/ows/proxy/wfsdata?service=WFS&request=DescribeStoredQueries&version=2.0.0",
        "/ows/proxy/wcsdata?service=WCS&request=DescribeCoverage&version=2.0.1&coverageId=nurc__sst",
        "/ows/proxy/wcsdata?service=WCS&request=DescribeEOCoverageSet&version=2.0.1&eoId=x",
    ] {
        assert_eq!(get(&app, path).await.0, 200, "{path}");
    }
    assert_eq!(backend.received().len(), 5);
}

#[tokio::test]
async fn transaction_needs_a_token_even_on_a_public_service() {
    let (app, backend) = setup().await;
    // The public service's reads are open.
    let read =
        "/ows/proxy/pubwfs?service=WFS&request=GetFeature&version=2.0.0&typeNames=topp:states";
    assert_eq!(get(&app, read).await.0, 200);
    let writes = [
        "service=WFS&request=Transaction&version=2.0.0&typeNames=topp:states&resourceId=states.1&action=delete",
        "service=WFS&request=LockFeature&version=2.0.0&typeNames=topp:states",
        "service=WFS&request=GetFeatureWithLock&version=2.0.0&typeNames=topp:states",
        "service=WFS&request=CreateStoredQuery&version=2.0.0",
        "service=WFS&request=DropStoredQuery&version=2.0.0&id=q",
        "SERVICE=wfs&REQUEST=transaction&VERSION=1.1.0",
    ];
    for query in writes {
        let (status, _, body) = get(&app, &format!("/ows/proxy/pubwfs?{query}")).await;
        assert_eq!(status, 401, "{query}: {}", String::from_utf8_lossy(&body));
    }
    // POST: the XML body, as XML, as a form, and as key-value pairs.
    for content_type in [
        "text/xml",
        "application/x-www-form-urlencoded",
        "text/plain",
    ] {
        let (status, body) = post(&app, "/ows/proxy/pubwfs", content_type, TRANSACTION_XML).await;
        assert_eq!(status, 401, "{content_type}: {body}");
    }
    let form = "service=WFS&request=Transaction&version=2.0.0";
    let (status, _) = post(
        &app,
        "/ows/proxy/pubwfs",
        "application/x-www-form-urlencoded",
        form,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        targets(&backend),
        [read.replace("/ows/proxy/pubwfs", "/data/wfs")]
    );
    // With a token it passes, without the token.
    let (status, _) = post(
        &app,
        "/ows/proxy/pubwfs?access_token=good",
        "text/xml",
        TRANSACTION_XML,
    )
    .await;
    assert_eq!(status, 200);
    let received = backend.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].target, "/data/wfs");
    assert_eq!(received[1].body, TRANSACTION_XML.as_bytes());
}

#[tokio::test]
async fn each_type_reads_only_its_own_requests() {
    let (app, backend) = setup().await;
    for (path, locator) in [
        // A GetMap (or a public WPS GetCapabilities) through a WFS endpoint that may serve
        // other types (GeoServer's /ows dispatches on `service`).
        (
            "/ows/proxy/wfs?service=WMS&request=GetCapabilities",
            "service",
        ),
        (
            "/ows/proxy/wfs?service=WPS&request=GetCapabilities",
            "service",
        ),
        (
            "/ows/proxy/wcs?service=WFS&request=GetCapabilities",
            "service",
        ),
        (
            "/ows/proxy/wmtskvp?service=WMS&request=GetCapabilities",
            "service",
        ),
        (
            "/ows/proxy/wfs?service=WFS&request=GetMap&version=2.0.0",
            "request",
        ),
        ("/ows/proxy/wfs?service=WFS&request=GetFeature", "version"),
        (
            "/ows/proxy/wfs?service=WFS&request=GetFeature&version=3.0.0",
            "version",
        ),
        ("/ows/proxy/wfs?request=GetCapabilities", "service"),
    ] {
        let (status, _, body) = get(&app, path).await;
        let body = String::from_utf8(body).unwrap();
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body.contains(&format!("locator=\"{locator}\"")),
            "{path}: {body}"
        );
    }
    // The original's types are unchanged: a WFS request to a wps service is refused.
    app.register(Service::new("emu", backend.url("/wps"))).await;
    let (status, _, _) = get(&app, "/ows/proxy/emu?service=WFS&request=GetCapabilities").await;
    assert_eq!(status, 400);
    assert!(backend.received().is_empty());
}

#[tokio::test]
async fn hostile_requests_on_the_new_types() {
    let (app, backend) = setup().await;
    // Duplicate decision keys: GeoServer and MapServer disagree on which one wins.
    for query in [
        "service=WFS&request=GetCapabilities&request=GetFeature&version=2.0.0",
        "service=WFS&REQUEST=GetFeature&request=GetCapabilities&version=2.0.0",
        "service=WCS&service=WFS&request=GetCapabilities",
        "service=WFS&request=GetFeature&version=2.0.0&version=1.0.0",
    ] {
        let (status, _, body) = get(&app, &format!("/ows/proxy/wfsdata?{query}")).await;
        assert_eq!(status, 400, "{query}: {}", String::from_utf8_lossy(&body));
    }
    // Paths: dot segments and encoded slashes never reach the backend.
    for path in [
        "/ows/proxy/wmts/rest/wmts/..%2F..%2Fwfs?service=WMTS&request=GetCapabilities",
        "/ows/proxy/wmts/rest/%2e%2e/wmts/WMTSCapabilities.xml",
        "/ows/proxy/wmts/rest/wmts/..;/WMTSCapabilities.xml",
        "/ows/proxy/wfs/../wfsdata?service=WFS&request=GetCapabilities",
    ] {
        let raw = raw_request(
            &app.base,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(raw.starts_with("HTTP/1.1 400 "), "{path}: {raw}");
    }
    // A public request name below the service URL: the backend routes by path there, so
    // it is protected (the tile under a GetCapabilities query).
    for path in [
        "/ows/proxy/wmts/rest/wmts/topp:states/population/EPSG:4326/EPSG:4326:0/0/0?service=WMTS&request=GetCapabilities",
        "/ows/proxy/wfs/extra?service=WFS&request=GetCapabilities",
        "/ows/proxy/wmts/rest/wmts/WMTSCapabilities.xml/x",
        "/ows/proxy/wmts/rest/wmts/wmtscapabilities.xml",
        "/ows/proxy/wmts/rest/wmts/WMTSCapabilities.xml;x",
    ] {
        let (status, _, body) = get(&app, path).await;
        assert_eq!(status, 401, "{path}: {}", String::from_utf8_lossy(&body));
    }
    // Body disguises: a GetFeature as UTF-16, behind a comment, or a DOCTYPE.
    let get_feature = r#"<wfs:GetFeature service="WFS" version="2.0.0" xmlns:wfs="http://www.opengis.net/wfs/2.0"><wfs:Query typeNames="topp:states"/></wfs:GetFeature>"#;
    let caps = r#"<wfs:GetCapabilities service="WFS" xmlns:wfs="http://www.opengis.net/wfs/2.0"/>"#;
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(get_feature.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let (status, body) = post(&app, "/ows/proxy/wfsdata", "text/plain", utf16).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = post(
        &app,
        "/ows/proxy/wfsdata",
        "text/xml",
        format!("<!-- {caps} -->{get_feature}"),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = post(
        &app,
        "/ows/proxy/wfsdata",
        "text/xml",
        format!("<!DOCTYPE x [<!ENTITY e \"{caps}\">]>{get_feature}"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // A POST whose query names a public request and whose body a protected one.
    let (status, body) = post(
        &app,
        "/ows/proxy/wfsdata?service=WFS&request=GetCapabilities",
        "text/xml",
        get_feature,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // HEAD and other methods.
    let response = app
        .client
        .head(format!(
            "{}/ows/proxy/wfsdata?service=WFS&request=GetFeature&version=2.0.0",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let response = app
        .client
        .put(format!("{}/ows/proxy/wfsdata", app.base))
        .body(TRANSACTION_XML)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert!(backend.received().is_empty(), "{:?}", targets(&backend));
}

#[tokio::test]
async fn verify_answers_for_the_new_types() {
    let (app, backend) = setup().await;
    let verdict = |path: &str| {
        let request = app.get(&format!("/ows/verify/{path}"));
        async move { request.await.status().as_u16() }
    };
    assert_eq!(
        verdict("wfs?service=WFS&request=GetCapabilities").await,
        200
    );
    assert_eq!(
        verdict("wfsdata?service=WFS&request=GetFeature&version=2.0.0").await,
        403
    );
    assert_eq!(
        verdict("wfsdata?service=WFS&request=GetFeature&version=2.0.0&access_token=good").await,
        200
    );
    assert_eq!(
        verdict("pubwfs?service=WFS&request=Transaction&version=2.0.0").await,
        403
    );
    assert_eq!(verdict("wmts/rest/wmts/WMTSCapabilities.xml").await, 200);
    assert_eq!(
        verdict("wmts/rest/wmts/topp:states/population/EPSG:4326/EPSG:4326:0/0/0").await,
        403
    );
    assert!(backend.received().is_empty());
}
