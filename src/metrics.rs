//! `/metrics` in the Prometheus text format (`twitcher.metrics = true`; off by default):
//! requests by route, service, OWS operation and status; a latency histogram per route;
//! backend failures by service; the store's connection pool.
//!
//! A hand-rolled registry (a map under a mutex, atomics for the histograms) instead of
//! the `metrics` crates: four families do not need a recorder, an exporter and their
//! dependencies. Label values come from fixed sets (routes, operations, statuses) and
//! from the registry (service names), capped at [`MAX_SERVICES`].

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::access_log::Record;
use crate::app::App;
use crate::endpoint::Endpoint;

/// Most distinct service labels; requests for further services count as `other`.
pub const MAX_SERVICES: usize = 1000;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// Every route, in the order they are written out.
const ROUTES: [Endpoint; 11] = [
    Endpoint::Proxy,
    Endpoint::Verify,
    Endpoint::Ows,
    Endpoint::Rpc,
    Endpoint::OAuth,
    Endpoint::OAuthClient,
    Endpoint::Registry,
    Endpoint::Health,
    Endpoint::Metrics,
    Endpoint::Info,
    Endpoint::Other,
];

/// Request counts of one service by (route, operation, status).
type Counts = HashMap<(Endpoint, &'static str, u16), u64>;

/// The request counters and histograms of one server.
#[derive(Debug, Default)]
pub struct Metrics {
    /// service ("" for requests without one) → (route, operation, status) → count.
    requests: Mutex<HashMap<String, Counts>>,
    /// (service, kind) → count.
    upstream_errors: Mutex<HashMap<(String, &'static str), u64>>,
    /// One histogram per route (indexed like [`ROUTES`]).
    latency: [Histogram; ROUTES.len()],
}

/// A latency histogram: counts per bucket (not cumulative), the sum in microseconds.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|le| seconds <= *le) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Counts a finished request.
    pub fn record(&self, record: &Record<'_>) {
        let served = record.served;
        let service = served.and_then(|s| s.service.as_deref()).unwrap_or("");
        let operation = served.and_then(|s| s.operation).unwrap_or("");
        let key = (record.endpoint, operation, record.status.as_u16());
        {
            let mut requests = lock(&self.requests);
            let per_service = match requests.get_mut(service) {
                Some(counts) => counts,
                None => {
                    let label = if requests.len() < MAX_SERVICES {
                        service
                    } else {
                        "other"
                    };
                    requests.entry(label.to_string()).or_default()
                }
            };
            *per_service.entry(key).or_default() += 1;
        }
        if let Some(kind) = served.and_then(|s| s.upstream_error) {
            let mut errors = lock(&self.upstream_errors);
            let label = if errors.len() < MAX_SERVICES {
                service
            } else {
                "other"
            };
            *errors
                .entry((label.to_string(), kind.as_str()))
                .or_default() += 1;
        }
        let route = ROUTES.iter().position(|r| *r == record.endpoint);
        if let Some(i) = route {
            self.latency[i].observe(record.duration);
        }
    }

    /// The Prometheus text exposition of everything counted, plus the store's pool.
    pub fn render(&self, pool: Option<crate::store::PoolStatus>) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP twitcher_requests_total Requests answered, by route, service, OWS operation and status.\n");
        out.push_str("# TYPE twitcher_requests_total counter\n");
        let mut lines: Vec<String> = Vec::new();
        for (service, counts) in lock(&self.requests).iter() {
            for ((route, operation, status), n) in counts {
                lines.push(format!(
                    "twitcher_requests_total{{route=\"{}\",service=\"{}\",operation=\"{}\",status=\"{status}\"}} {n}\n",
                    route.as_str(),
                    escape(service),
                    operation,
                ));
            }
        }
        lines.sort();
        lines.iter().for_each(|l| out.push_str(l));

        out.push_str("# HELP twitcher_request_duration_seconds Time from a request's arrival to the end of its response body, by route.\n");
        out.push_str("# TYPE twitcher_request_duration_seconds histogram\n");
        for (route, histogram) in ROUTES.iter().zip(&self.latency) {
            let count = histogram.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let route = route.as_str();
            let mut cumulative = 0;
            for (le, bucket) in BUCKETS.iter().zip(&histogram.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "twitcher_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "twitcher_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}"
            );
            let sum = histogram.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "twitcher_request_duration_seconds_sum{{route=\"{route}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "twitcher_request_duration_seconds_count{{route=\"{route}\"}} {count}"
            );
        }

        out.push_str("# HELP twitcher_upstream_errors_total Backend exchanges that failed, by service and kind.\n");
        out.push_str("# TYPE twitcher_upstream_errors_total counter\n");
        let mut lines: Vec<String> = lock(&self.upstream_errors)
            .iter()
            .map(|((service, kind), n)| {
                format!(
                    "twitcher_upstream_errors_total{{service=\"{}\",kind=\"{kind}\"}} {n}\n",
                    escape(service)
                )
            })
            .collect();
        lines.sort();
        lines.iter().for_each(|l| out.push_str(l));

        if let Some(pool) = pool {
            out.push_str(
                "# HELP twitcher_store_pool_connections Database connections of the store's pool.\n",
            );
            out.push_str("# TYPE twitcher_store_pool_connections gauge\n");
            let _ = writeln!(
                out,
                "twitcher_store_pool_connections{{state=\"open\"}} {}",
                pool.size
            );
            let _ = writeln!(
                out,
                "twitcher_store_pool_connections{{state=\"idle\"}} {}",
                pool.idle
            );
            let _ = writeln!(
                out,
                "twitcher_store_pool_connections{{state=\"max\"}} {}",
                pool.max
            );
        }
        out
    }
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics`: readable by whoever may read the registry (the management user when
/// `twitcher.rest_read_auth` is set, anyone otherwise).
pub async fn serve(State(app): State<App>, request: axum::extract::Request) -> Response {
    let Some(metrics) = &app.metrics else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if app.config.rest_read_auth
        && !crate::basic_auth::management_allowed(&app.config, request.headers())
    {
        return crate::json::JsonError::Unauthorized.into_response();
    }
    let mut response = metrics.render(app.store.pool_status()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::{Served, UpstreamError};
    use axum::http::Method;

    fn record<'a>(served: Option<&'a Served>, status: u16, ms: u64) -> Record<'a> {
        Record {
            method: &Method::GET,
            endpoint: Endpoint::Proxy,
            served,
            status: StatusCode::from_u16(status).unwrap(),
            bytes: 10,
            duration: Duration::from_millis(ms),
        }
    }

    #[test]
    fn counts_render_as_prometheus_text() {
        let metrics = Metrics::new();
        let served = Served {
            service: Some("emu".into()),
            operation: Some("execute"),
            ..Served::default()
        };
        metrics.record(&record(Some(&served), 200, 3));
        metrics.record(&record(Some(&served), 200, 700));
        let failed = Served {
            upstream_error: Some(UpstreamError::Timeout),
            ..served.clone()
        };
        metrics.record(&record(Some(&failed), 504, 2));
        metrics.record(&record(None, 401, 1));
        let text = metrics.render(None);
        assert!(text.contains(
            "twitcher_requests_total{route=\"proxy\",service=\"emu\",operation=\"execute\",status=\"200\"} 2\n"
        ));
        assert!(text.contains(
            "twitcher_requests_total{route=\"proxy\",service=\"\",operation=\"\",status=\"401\"} 1\n"
        ));
        assert!(text.contains(
            "twitcher_request_duration_seconds_bucket{route=\"proxy\",le=\"0.005\"} 3\n"
        ));
        assert!(
            text.contains("twitcher_request_duration_seconds_bucket{route=\"proxy\",le=\"1\"} 4\n")
        );
        assert!(text.contains("twitcher_request_duration_seconds_count{route=\"proxy\"} 4\n"));
        assert!(
            text.contains("twitcher_upstream_errors_total{service=\"emu\",kind=\"timeout\"} 1\n")
        );
        assert!(
            !text.contains("route=\"rpc\""),
            "routes never used are left out"
        );
    }

    #[test]
    fn service_labels_are_capped() {
        let metrics = Metrics::new();
        for i in 0..MAX_SERVICES + 10 {
            let served = Served {
                service: Some(format!("s{i}")),
                ..Served::default()
            };
            metrics.record(&record(Some(&served), 200, 1));
        }
        assert_eq!(lock(&metrics.requests).len(), MAX_SERVICES + 1);
        assert!(metrics.render(None).contains("service=\"other\""));
    }
}
