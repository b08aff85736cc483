//! Throughput of the capabilities rewriter ([`rewrite_xml`]) on three documents: Emu's WPS
//! capabilities (15 KB), an ncWMS-like WMS 1.3.0 one (195 KB) and a THREDDS-size WMS one
//! (5 MB, made at start by repeating the ncWMS one's data sets). The body comes in 16 KiB
//! chunks, as from a backend; the output stream is read to its end. See `benches/README.md`.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::{StreamExt, stream};
use twitcher::ows::capabilities::{ByteStream, DocumentKind, Rewrite, rewrite_xml};

const EMU: &[u8] = include_bytes!("../fixtures/capabilities/emu-getcaps.xml");
const NCWMS: &str = include_str!("../fixtures/capabilities/ncwms-caps.xml");
const CHUNK: usize = 16 * 1024;
const THREDDS_SIZE: usize = 5_000_000;

/// The data set layers of the ncWMS document lie between these lines (see
/// `benches/gen_ncwms_caps.py`).
const DATASET_OPEN: &str = "\n            <Layer>\n";
const DATASET_CLOSE: &str = "\n            </Layer>\n";

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

/// The ncWMS document with its data sets repeated up to `size` bytes: a THREDDS server
/// publishing many data sets.
fn thredds_size(size: usize) -> Vec<u8> {
    let start = NCWMS.find(DATASET_OPEN).expect("a data set layer") + 1;
    let end = NCWMS.rfind(DATASET_CLOSE).expect("a data set layer") + DATASET_CLOSE.len();
    let (head, datasets, tail) = (&NCWMS[..start], &NCWMS[start..end], &NCWMS[end..]);
    let copies = (size - head.len() - tail.len()).div_ceil(datasets.len());
    [head, &datasets.repeat(copies), tail].concat().into_bytes()
}

/// One document to rewrite: its chunks and the URLs.
struct Case {
    name: &'static str,
    kind: DocumentKind,
    chunks: Vec<Bytes>,
    len: usize,
    rewrite: Rewrite,
}

impl Case {
    fn new(name: &'static str, kind: DocumentKind, doc: Vec<u8>, service_url: &str) -> Case {
        let doc = Bytes::from(doc);
        let chunks = (0..doc.len())
            .step_by(CHUNK)
            .map(|at| doc.slice(at..(at + CHUNK).min(doc.len())))
            .collect();
        Case {
            name,
            kind,
            chunks,
            len: doc.len(),
            rewrite: Rewrite {
                service_url: service_url.into(),
                public_url: format!("http://localhost:8000/ows/proxy/{name}"),
                max_prolog: 1024 * 1024,
                ogc_services: false,
            },
        }
    }

    /// Rewrites the document once, handing each output chunk to `sink`.
    async fn run(&self, mut sink: impl FnMut(Bytes)) -> DocumentKind {
        let body: ByteStream = Box::pin(stream::iter(self.chunks.clone().into_iter().map(Ok)));
        let (kind, mut out) = rewrite_xml(body, self.rewrite.clone())
            .await
            .expect("rewritable");
        while let Some(chunk) = out.next().await {
            sink(chunk.expect("well-formed document"));
        }
        kind
    }

    /// The bench measures a rewrite that happens, or fails.
    fn check(&self, rt: &tokio::runtime::Runtime) {
        let mut out = Vec::new();
        let kind = rt.block_on(self.run(|chunk| out.extend_from_slice(&chunk)));
        assert_eq!(kind, self.kind, "{}", self.name);
        let text = String::from_utf8(out).expect("UTF-8 output");
        assert!(
            text.contains(&self.rewrite.public_url),
            "{}: nothing rewritten",
            self.name
        );
        assert!(
            !text.contains(&format!("\"{}", self.rewrite.service_url)),
            "{}: a service URL left",
            self.name
        );
    }
}

fn rewrite(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let ncwms = "http://localhost:8080/ncWMS/wms";
    let cases = [
        Case::new(
            "emu",
            DocumentKind::WpsCapabilities,
            EMU.to_vec(),
            "http://127.0.0.1:15060/wps",
        ),
        Case::new(
            "ncwms",
            DocumentKind::WmsCapabilities,
            NCWMS.as_bytes().to_vec(),
            ncwms,
        ),
        Case::new(
            "thredds_5mb",
            DocumentKind::WmsCapabilities,
            thredds_size(THREDDS_SIZE),
            ncwms,
        ),
    ];
    let mut group = c.benchmark_group("rewrite_xml");
    for case in &cases {
        case.check(&rt);
        group.throughput(Throughput::Bytes(case.len as u64));
        if case.len > 1024 * 1024 {
            // Tens of milliseconds each: fewer, longer samples.
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(8));
        }
        group.bench_function(case.name, |b| {
            b.to_async(&rt)
                .iter(|| case.run(|chunk| drop(black_box(chunk))))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = rewrite
}
criterion_main!(benches);
