//! The gate's decisions without sockets: a memory store, a config, and requests built
//! from strings.

use axum::http::{HeaderMap, Method};
use bytes::Bytes;
use futures_util::stream;

use super::*;
use crate::store::memory::MemoryStore;
use crate::store::{AccessToken, OAuthToken};

const EXECUTE: &str = "service=WPS&request=Execute&version=1.0.0";
const CAPS: &str = "service=WPS&request=GetCapabilities";
const NOW_PLUS: i64 = 3600;

async fn store() -> MemoryStore {
    let store = MemoryStore::new();
    let now = crate::clock::now();
    for (token, expires_at) in [("good", now + NOW_PLUS), ("old", now - 1)] {
        store
            .save_access_token(&AccessToken {
                token: token.into(),
                expires_at,
            })
            .await
            .unwrap();
    }
    for (token, scope) in [("compute", "compute register"), ("register", "register")] {
        store
            .save_oauth_token(&OAuthToken {
                access_token: token.into(),
                client_id: "c".into(),
                scope: scope.into(),
                expires_at: now + NOW_PLUS,
            })
            .await
            .unwrap();
    }
    let services = [
        Service::new("emu", "http://b/wps"),
        Service {
            public: true,
            ..Service::new("pub", "http://b/static")
        },
        Service {
            auth: Auth::Cert,
            ..Service::new("cert", "http://b/wps")
        },
        Service {
            service_type: "wms".into(),
            ..Service::new("wms", "http://b/wms")
        },
    ];
    for s in services {
        store.save_service(&s).await.unwrap();
    }
    store
}

/// A request and its outcome, as the gate sees it.
struct Try<'a> {
    method: Method,
    /// The path after `/ows/{route}/`.
    path: &'a str,
    query: &'a str,
    headers: HeaderMap,
    body: &'a [u8],
}

impl<'a> Try<'a> {
    fn get(path: &'a str, query: &'a str) -> Self {
        Try {
            method: Method::GET,
            path,
            query,
            headers: HeaderMap::new(),
            body: b"",
        }
    }

    fn post(path: &'a str, content_type: &'static str, body: &'a [u8]) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", content_type.parse().unwrap());
        Try {
            method: Method::POST,
            path,
            query: "",
            headers,
            body,
        }
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.insert(name, value.parse().unwrap());
        self
    }

    async fn run(&self, route: Route) -> Result<Admitted, Denied> {
        let store = store().await;
        let config = Config::default();
        let tokens = Tokens::from_settings(&config.token).unwrap();
        let gate = Gate {
            store: &store,
            tokens: &tokens,
            config: &config,
        };
        // Byte by byte: the decision must not depend on how the body is chunked.
        let chunks: Vec<Result<Bytes, std::io::Error>> = self
            .body
            .iter()
            .map(|b| Ok(Bytes::copy_from_slice(&[*b])))
            .collect();
        let path = format!("/ows/{}/{}", route.segment(), self.path);
        let incoming = Incoming {
            method: &self.method,
            path: &path,
            query: self.query,
            headers: &self.headers,
            peer: None,
            certificate: None,
        };
        gate.admit(route, incoming, Box::pin(stream::iter(chunks)))
            .await
    }
}

fn outcome(r: Result<Admitted, Denied>) -> Result<(Grant, String), String> {
    r.map(|a| (a.grant, a.upstream.to_string()))
        .map_err(|e| e.to_string())
}

/// The grant and upstream URL, or the refusal's text.
type Expected = Result<(Grant, &'static str), &'static str>;

#[tokio::test]
async fn access_decisions() {
    let token = |t: &'static str| Try::get("emu", EXECUTE).header("access-token", t);
    let cases: Vec<(Try, Expected)> = vec![
        (
            Try::get("emu", CAPS),
            Ok((
                Grant::Public,
                "http://b/wps?service=WPS&request=GetCapabilities",
            )),
        ),
        (Try::get("emu", EXECUTE), Err("token required")),
        (
            token("good"),
            Ok((
                Grant::Token(TokenSource::AccessTokenHeader),
                "http://b/wps?service=WPS&request=Execute&version=1.0.0",
            )),
        ),
        (token("old"), Err("token expired")),
        (token("nope"), Err("token required")),
        (
            token("compute"),
            Ok((
                Grant::Token(TokenSource::AccessTokenHeader),
                "http://b/wps?service=WPS&request=Execute&version=1.0.0",
            )),
        ),
        (token("register"), Err("token required")),
        (
            Try::get("pub", EXECUTE),
            Ok((
                Grant::Public,
                "http://b/static?service=WPS&request=Execute&version=1.0.0",
            )),
        ),
        (
            Try::get("cert", EXECUTE).header("access-token", "good"),
            Err("certificate required"),
        ),
        (
            Try::get("cert", EXECUTE).header("x-ssl-client-verify", "SUCCESS"),
            Ok((
                Grant::Certificate,
                "http://b/wps?service=WPS&request=Execute&version=1.0.0",
            )),
        ),
        (
            Try::get("wms", "service=WMS&request=GetMap&version=1.3.0"),
            Err("token required"),
        ),
        (Try::get("nope", CAPS), Err("no such service")),
        (
            Try::get("emu/good", EXECUTE),
            Ok((
                Grant::Token(TokenSource::LastPathElement),
                "http://b/wps?service=WPS&request=Execute&version=1.0.0",
            )),
        ),
        // A path token is cut off for public operations too.
        (
            Try::get("emu/x/good", CAPS),
            Ok((
                Grant::Public,
                "http://b/wps/x?service=WPS&request=GetCapabilities",
            )),
        ),
        (
            Try::get("emu/x/other", CAPS),
            Ok((
                Grant::Public,
                "http://b/wps/x/other?service=WPS&request=GetCapabilities",
            )),
        ),
        (
            Try::get(
                "emu/",
                "access_token=good&service=WPS&request=GetCapabilities",
            ),
            Ok((
                Grant::Public,
                "http://b/wps?service=WPS&request=GetCapabilities",
            )),
        ),
    ];
    for (i, (attempt, expected)) in cases.into_iter().enumerate() {
        let expected = expected
            .map(|(g, u)| (g, u.to_string()))
            .map_err(str::to_string);
        assert_eq!(
            outcome(attempt.run(Route::Proxy).await),
            expected,
            "case {i}"
        );
    }
}

#[tokio::test]
async fn ambiguity_is_refused_before_credentials() {
    let cases = [
        Try::get("emu", "service=WPS&request=Execute&request=GetCapabilities&version=1.0.0"),
        Try::get("emu", "service=WPS&Request=GetCapabilities&REQUEST=Execute&version=1.0.0&token=good"),
        Try::get("pub/..%2Fwps", EXECUTE),
        Try::get("pub/%252e%252e/wps", EXECUTE),
        Try::post(
            "emu",
            "text/xml",
            br#"<!DOCTYPE x [<!ENTITY e "<GetCapabilities service='WPS'/>">]><wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0"/>"#,
        ),
        Try {
            query: "service=WPS&request=GetCapabilities",
            ..Try::post(
                "emu",
                "text/xml",
                br#"<Execute service="WPS" version="1.0.0"/>"#,
            )
        },
        Try::post("emu", "text/xml", b"\x1f\x8b\x08\x00").header("content-encoding", "gzip"),
    ];
    let expected = [
        "Parameter \"request\" is given more than once",
        "Parameter \"request\" is given more than once",
        "extra path refused: encoded slash",
        "extra path refused: dot segment",
        "A DOCTYPE is not allowed in an OWS request",
        "Parameter \"request\" is given more than once",
        "content-encoded request body",
    ];
    for (attempt, expected) in cases.iter().zip(expected) {
        for route in [Route::Proxy, Route::Verify] {
            assert_eq!(
                outcome(attempt.run(route).await),
                Err(expected.to_string()),
                "{} {:?} {route:?}",
                attempt.path,
                attempt.query
            );
        }
    }
}

#[tokio::test]
async fn the_body_decides_whatever_its_content_type() {
    let execute = br#"<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0"/>"#;
    let mut bom = b"\xEF\xBB\xBF \n".to_vec();
    bom.extend_from_slice(execute);
    let utf16: Vec<u8> = [0xFE, 0xFF]
        .into_iter()
        .chain(
            String::from_utf8_lossy(execute)
                .encode_utf16()
                .flat_map(u16::to_be_bytes),
        )
        .collect();
    for body in [&execute[..], &bom, &utf16] {
        for ct in [
            "application/x-www-form-urlencoded",
            "text/plain",
            "text/xml",
        ] {
            assert_eq!(
                outcome(Try::post("emu", ct, body).run(Route::Proxy).await),
                Err("token required".to_string()),
                "{ct} {body:?}"
            );
        }
    }
    let form = Try::post(
        "emu",
        "application/x-www-form-urlencoded",
        b"service=WPS&request=GetCapabilities",
    );
    assert!(matches!(
        form.run(Route::Proxy).await,
        Ok(Admitted {
            grant: Grant::Public,
            ..
        })
    ));
}

#[tokio::test]
async fn verify_reads_a_bodiless_post_from_its_query() {
    let attempt = Try {
        query: CAPS,
        ..Try::post("emu", "text/xml", b"")
    };
    assert!(matches!(
        attempt.run(Route::Verify).await,
        Ok(Admitted {
            grant: Grant::Public,
            ..
        })
    ));
    let attempt = Try {
        query: EXECUTE,
        ..Try::post("emu", "text/xml", b"")
    };
    assert_eq!(
        outcome(attempt.run(Route::Verify).await),
        Err("token required".to_string())
    );
}
