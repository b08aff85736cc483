//! The observing layer: when a response body has been sent (or dropped), its request goes
//! to the access log and the metrics, with the bytes sent and the time since arrival.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tracing::Level;

use crate::access_log::{self, Record, Served};
use crate::app::App;
use crate::endpoint::Endpoint;
use crate::metrics::Metrics;

/// Where finished requests go.
pub(super) struct Observer {
    /// Write access log lines.
    log: bool,
    /// Count into these metrics.
    metrics: Option<Arc<Metrics>>,
    /// `twitcher.ows_proxy_protected_path`.
    protected: Arc<str>,
}

impl Observer {
    /// The observer of `app`, or None when nobody reads the log or the metrics (then the
    /// layer is left out: it costs a refusal measurably). The log counts as read when
    /// `twitcher.access_log` is on and the log filter lets `twitcher::access` through.
    pub(super) fn new(app: &App, protected: Arc<str>) -> Option<Observer> {
        let log =
            app.config.access_log && tracing::enabled!(target: "twitcher::access", Level::INFO);
        let metrics = app.metrics.clone();
        (log || metrics.is_some()).then_some(Observer {
            log,
            metrics,
            protected,
        })
    }

    fn finish(&self, request: &Finished, bytes: u64) {
        let record = Record {
            method: &request.method,
            endpoint: request.endpoint,
            served: request.served.as_ref(),
            status: request.status,
            bytes,
            duration: request.start.elapsed(),
        };
        if self.log {
            access_log::write(&record);
        }
        if let Some(metrics) = &self.metrics {
            metrics.record(&record);
        }
    }
}

/// The layer's function.
pub(super) async fn observe(
    State(observer): State<Arc<Observer>>,
    request: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let endpoint = Endpoint::of(request.uri().path(), &observer.protected);
    let mut response = next.run(request).await;
    let finished = Finished {
        method,
        endpoint,
        served: response.extensions_mut().remove::<Served>(),
        status: response.status(),
        start,
    };
    response.map(|body| {
        Body::new(Counted {
            inner: body,
            bytes: 0,
            finished: Some(finished),
            observer,
        })
    })
}

/// What is known of a request once its response head is ready.
struct Finished {
    method: Method,
    endpoint: Endpoint,
    served: Option<Served>,
    status: StatusCode,
    start: Instant,
}

/// A response body that counts its bytes and reports the request when it ends or is
/// dropped (a client that went away).
struct Counted {
    inner: Body,
    bytes: u64,
    finished: Option<Finished>,
    observer: Arc<Observer>,
}

impl Counted {
    fn report(&mut self) {
        if let Some(finished) = self.finished.take() {
            self.observer.finish(&finished, self.bytes);
        }
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.report(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.report();
    }
}
