//! The request side of the hot path: the OWS request parsers, the extra-path check and the
//! gate's whole decision ([`Gate::admit`]) over an in-memory store, without sockets.
//! See `benches/README.md`.

use std::hint::black_box;
use std::time::Duration;

use axum::http::{HeaderMap, Method};
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::stream;
use twitcher::config::Config;
use twitcher::gate::path::{ExtraPath, upstream_url};
use twitcher::gate::{Admitted, Denied, Gate, Grant, Incoming, Route};
use twitcher::ows::capabilities::ByteStream;
use twitcher::ows::request::{RootScan, parse_kvp, scan_xml_root};
use twitcher::security::TokenSource;
use twitcher::store::memory::MemoryStore;
use twitcher::store::{AccessToken, Service, Store};
use twitcher::tokens::Tokens;

const CAPS_QUERY: &str = "service=WPS&request=GetCapabilities";
const EXECUTE_QUERY: &str =
    "service=WPS&request=Execute&version=1.0.0&identifier=hello&DataInputs=name=tux";
/// An XML-RPC token as `generate_token` makes them (32 hex digits).
const TOKEN: &str = "fa9e7dbb10d548d4a67113fee1d6e825";

/// The Execute body Emu's clients POST (`compat/golden/v056`, case 57).
const EMU_EXECUTE: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1">
  <ows:Identifier>hello</ows:Identifier>
  <wps:DataInputs><wps:Input><ows:Identifier>name</ows:Identifier><wps:Data><wps:LiteralData>tux</wps:LiteralData></wps:Data></wps:Input></wps:DataInputs>
  <wps:ResponseForm><wps:ResponseDocument><wps:Output><ows:Identifier>output</ows:Identifier></wps:Output></wps:ResponseDocument></wps:ResponseForm>
</wps:Execute>
"#;

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

fn kvp(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_kvp");
    for (name, query) in [("GetCapabilities", CAPS_QUERY), ("Execute", EXECUTE_QUERY)] {
        assert!(parse_kvp(query).is_ok(), "{name} parses");
        group.bench_function(name, |b| b.iter(|| parse_kvp(black_box(query))));
    }
    group.finish();
}

/// A root start tag of `count` attributes (`a0="v" a1="v" …`, ~10 bytes each): the
/// scan must stay linear in it, so the three sizes should show the same bytes per second.
fn many_attributes(count: usize) -> Vec<u8> {
    let mut tag = br#"<Execute service="WPS" version="1.0.0""#.to_vec();
    for i in 0..count {
        tag.extend_from_slice(format!(" a{i}=\"v\"").as_bytes());
    }
    tag.extend_from_slice(b"/>");
    tag
}

fn xml_root(c: &mut Criterion) {
    let mut group = c.benchmark_group("scan_xml_root");
    let found = |body: &[u8]| matches!(scan_xml_root(body, true), RootScan::Found(Ok(_)));
    assert!(found(EMU_EXECUTE), "the Emu Execute body is an Execute");
    group.throughput(Throughput::Bytes(EMU_EXECUTE.len() as u64));
    group.bench_function("emu_execute", |b| {
        b.iter(|| scan_xml_root(black_box(EMU_EXECUTE), true))
    });
    // 1 000, 10 000 and 100 000 attributes (≈ 10 KB, 0.1 and 1 MB): equal MB/s means linear.
    for count in [1_000, 10_000, 100_000] {
        let tag = many_attributes(count);
        assert!(found(&tag), "{count} attributes still an Execute");
        group.throughput(Throughput::Bytes(tag.len() as u64));
        group.bench_with_input(BenchmarkId::new("attributes", count), &tag, |b, tag| {
            b.iter(|| scan_xml_root(black_box(tag), true))
        });
    }
    group.finish();
}

fn extra_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("extra_path");
    let raw = "/thredds/wms/cmip5/tas_day%20MPI-ESM-LR.nc";
    group.bench_function("parse", |b| b.iter(|| ExtraPath::parse(black_box(raw))));
    let extra = ExtraPath::parse(raw).expect("ordinary path");
    group.bench_function("upstream_url", |b| {
        b.iter(|| upstream_url(black_box("http://b:8080/wms?map=x"), &extra, CAPS_QUERY))
    });
    group.finish();
}

/// A store like a live one: the Emu service and one valid XML-RPC token.
fn runtime_and_store() -> (tokio::runtime::Runtime, MemoryStore) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let store = MemoryStore::new();
    rt.block_on(async {
        store
            .save_service(&Service::new("emu", "http://127.0.0.1:5000/wps"))
            .await
            .expect("memory store");
        store
            .save_access_token(&AccessToken {
                token: TOKEN.into(),
                expires_at: i64::MAX,
            })
            .await
            .expect("memory store");
    });
    (rt, store)
}

fn empty_body() -> ByteStream {
    Box::pin(stream::empty::<Result<Bytes, std::io::Error>>())
}

/// One request through the gate, as the proxy route would make it.
async fn admit(
    gate: Gate<'_>,
    method: &Method,
    query: &str,
    headers: &HeaderMap,
    body: ByteStream,
) -> Result<Admitted, Denied> {
    let incoming = Incoming {
        method,
        path: "/ows/proxy/emu",
        query,
        headers,
        peer: None,
        certificate: None,
    };
    gate.admit(Route::Proxy, incoming, body).await
}

/// `doc` as a body arriving in 16 KiB chunks.
fn chunked(doc: &Bytes) -> ByteStream {
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..doc.len())
        .step_by(16 * 1024)
        .map(|at| Ok(doc.slice(at..(at + 16 * 1024).min(doc.len()))))
        .collect();
    Box::pin(stream::iter(chunks))
}

fn admit_end_to_end(c: &mut Criterion) {
    let (rt, store) = runtime_and_store();
    let config = Config::default();
    let tokens = Tokens::from_settings(&config.token).expect("random tokens");
    let gate = Gate {
        store: &store,
        tokens: &tokens,
        config: &config,
    };
    let with_token = format!("{EXECUTE_QUERY}&access_token={TOKEN}");
    let cases: [(&str, &str, Result<Grant, &str>); 3] = [
        ("execute_refused", EXECUTE_QUERY, Err("token required")),
        ("getcapabilities_public", CAPS_QUERY, Ok(Grant::Public)),
        (
            "execute_token",
            &with_token,
            Ok(Grant::Token(TokenSource::QueryAccessToken)),
        ),
    ];
    let mut group = c.benchmark_group("admit");
    let no_headers = HeaderMap::new();
    for (name, query, expected) in cases {
        // The bench measures the path it names, or fails.
        let outcome = rt.block_on(admit(gate, &Method::GET, query, &no_headers, empty_body()));
        let outcome = outcome.as_ref().map(|a| a.grant).map_err(|e| e.to_string());
        assert_eq!(outcome, expected.map_err(String::from), "{name}");
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                admit(
                    gate,
                    &Method::GET,
                    black_box(query),
                    &no_headers,
                    empty_body(),
                )
            })
        });
    }
    // The 1 MB start tag POSTed in 16 KiB chunks: the gate rescans the growing prefix only
    // when it has doubled, so this should cost at most about twice scan_xml_root's 1 MB.
    let tag = Bytes::from(many_attributes(100_000));
    let mut xml = HeaderMap::new();
    xml.insert("content-type", "text/xml".parse().expect("header value"));
    let outcome = rt.block_on(admit(gate, &Method::POST, "", &xml, chunked(&tag)));
    assert_eq!(
        outcome.err().map(|e| e.to_string()).as_deref(),
        Some("token required"),
        "1 MB start tag"
    );
    group.throughput(Throughput::Bytes(tag.len() as u64));
    group.bench_function("post_1mb_start_tag", |b| {
        b.to_async(&rt)
            .iter(|| admit(gate, &Method::POST, "", &xml, chunked(&tag)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = kvp, xml_root, extra_path, admit_end_to_end
}
criterion_main!(benches);
