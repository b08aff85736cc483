//! OWS exception reports: rendering one of each code ([`exception::render`]) and whole
//! responses ([`OwsError::into_response`]) for a fixed report (prepared bytes) and for
//! reports that name request data (rendered each time). See `benches/README.md`.

use std::hint::black_box;
use std::time::Duration;

use axum::response::IntoResponse;
use criterion::{Criterion, criterion_group, criterion_main};
use twitcher::error::OwsError;
use twitcher::ows::exception::{self, ExceptionCode};
use twitcher::ows::request::RequestError;

/// A path a scanner might try, echoed (escaped) in a NotFound report.
const PATH: &str = "/ows/proxy/emu/../../etc/passwd?<script>alert('x')</script>&a=\"b\"";

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("render");
    let reports = [
        (
            "missing_parameter",
            ExceptionCode::MissingParameterValue,
            "version",
            "Parameter \"version\" is missing",
        ),
        (
            "invalid_parameter",
            ExceptionCode::InvalidParameterValue,
            "service",
            "service wfs is not supported",
        ),
        (
            "access_forbidden",
            ExceptionCode::NoApplicableCode,
            "AccessForbidden",
            "Access token is required to access this service.",
        ),
        (
            "escaped_path",
            ExceptionCode::NoApplicableCode,
            "NoApplicableCode",
            PATH,
        ),
    ];
    for (name, code, locator, text) in reports {
        group.bench_function(name, |b| {
            b.iter(|| exception::render(code, black_box(locator), black_box(text)))
        });
    }
    group.finish();
}

/// Makes a fresh error each time, as a handler does.
type MakeError = fn() -> OwsError;

fn into_response(c: &mut Criterion) {
    let mut group = c.benchmark_group("into_response");
    let errors: [(&str, MakeError); 3] = [
        ("token_required", || OwsError::TokenRequired),
        ("not_found", || {
            OwsError::NotFound(black_box(PATH).to_string())
        }),
        ("invalid_kvp", || {
            OwsError::Request(RequestError::InvalidKvp {
                param: "service",
                value: black_box("wfs").to_string(),
            })
        }),
    ];
    for (name, make) in errors {
        // Fixed reports are rendered on first use; measure the steady state.
        drop(make().into_response());
        group.bench_function(name, |b| b.iter(|| make().into_response()));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = render, into_response
}
criterion_main!(benches);
