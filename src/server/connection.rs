//! One client connection's life: served by hyper (HTTP/1.1) with the router, watched for
//! what it is doing so that it can be closed when it stalls or when the server stops.
//!
//! hyper's own header timeout also runs while a kept-alive connection waits for its next
//! request, so it cannot give a short header timeout and a longer idle timeout at once.
//! Here the connection's state is observed instead (bytes read, request dispatched,
//! response body finished) and one deadline follows it:
//!
//! | state | deadline |
//! |---|---|
//! | new connection, until its first request's headers are complete | accepted + header timeout |
//! | kept alive, no byte of the next request yet | idle since + keep-alive timeout |
//! | the next request's headers arriving | first byte + header timeout |
//! | a request in flight (handler running, response streaming) | none: the handlers' own timeouts apply |

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::Extensions;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::Service;

/// What the server as a whole is doing; every connection follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Serving.
    Running,
    /// Stopping: idle and half-sent connections close now, requests in flight finish.
    Draining,
    /// The grace period is over: everything still open closes.
    Closing,
}

/// The timeouts a connection is held to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    /// Until a request's headers are complete.
    pub header_read: Duration,
    /// Between two requests on a kept-alive connection (None: no keep-alive).
    pub keepalive: Option<Duration>,
}

/// Serves one connection until the client closes it, it times out or the server stops.
/// Every request carries the peer's [`ConnectInfo`] and the connection's `extensions`
/// (what a TLS handshake learnt about the client).
pub(super) async fn serve<I>(
    io: I,
    peer: SocketAddr,
    extensions: Extensions,
    router: Router,
    timeouts: Timeouts,
    mut phase: watch::Receiver<Phase>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        io,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let busy = activity.request_started();
            let mut request = request.map(Body::new);
            // What `into_make_service_with_connect_info` gave handlers: the gate reads it.
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().extend(extensions.clone());
            let mut router = router.clone();
            async move {
                let response = match router.call(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(response.map(|body| Tracked { body, _busy: busy }))
            }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(timeouts.keepalive.is_some())
        // Replaced by the deadlines above; see the module documentation.
        .header_read_timeout(None);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);

    let sleep = tokio::time::sleep_until(activity.deadline(timeouts).unwrap_or_else(far_future));
    tokio::pin!(sleep);
    let mut seen = activity.generation();
    let mut draining = false;
    loop {
        let event = tokio::select! {
            biased;
            changed = phase.changed() => match changed {
                Ok(()) => Event::Phase(*phase.borrow_and_update()),
                Err(_) => Event::Phase(Phase::Closing),
            },
            event = std::future::poll_fn(|cx| match connection.as_mut().poll(cx) {
                Poll::Ready(result) => Poll::Ready(Event::Done(result)),
                // hyper read bytes, dispatched a request or finished a response.
                Poll::Pending if activity.generation() != seen => Poll::Ready(Event::Changed),
                Poll::Pending => Poll::Pending,
            }) => event,
            () = &mut sleep => Event::Expired,
        };
        let expired = matches!(event, Event::Expired);
        match event {
            Event::Done(Ok(())) => return,
            Event::Done(Err(e)) => {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
                return;
            }
            Event::Phase(Phase::Running) => {}
            Event::Phase(Phase::Draining) => draining = true,
            Event::Phase(Phase::Closing) => {
                if activity.in_flight() {
                    tracing::info!(%peer, "closing a connection with a request in flight: the grace period is over");
                }
                return;
            }
            Event::Changed => {}
            Event::Expired => {
                if activity
                    .deadline(timeouts)
                    .is_some_and(|d| d <= Instant::now())
                {
                    tracing::debug!(%peer, state = activity.describe(), "closing a connection: timed out");
                    return;
                }
            }
        }
        seen = activity.generation();
        if draining {
            if !activity.in_flight() {
                // Idle, or a request whose headers never came: nothing to wait for.
                return;
            }
            // hyper finishes the response in flight, then closes.
            connection.as_mut().graceful_shutdown();
        }
        // Re-armed only when the deadline comes sooner than the armed one, or the armed
        // one fired early: a later deadline waits for the armed one to fire. A keep-alive
        // request then costs no timer update at all.
        let next = activity.deadline(timeouts).unwrap_or_else(far_future);
        if expired || next < sleep.deadline() {
            sleep.as_mut().reset(next);
        }
    }
}

enum Event {
    Done(Result<(), hyper::Error>),
    Phase(Phase),
    Changed,
    Expired,
}

/// A deadline that never comes (a year): a request in flight has none.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(365 * 24 * 3600)
}

/// What a connection is doing, as far as its timeouts care.
#[derive(Debug, Clone, Copy)]
enum State {
    /// No request in flight, no byte of a new one read. `first`: nothing served yet.
    Waiting { since: Instant, first: bool },
    /// Bytes of a request read, its headers not complete yet.
    ReadingHead { since: Instant },
    /// Requests dispatched whose responses have not finished.
    Busy { requests: usize },
}

/// A connection's state, shared by its socket, its service and its response bodies.
struct Activity {
    state: Mutex<State>,
    /// Bumped at every change of state, so the connection's task sees it after a poll.
    generation: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            state: Mutex::new(State::Waiting {
                since: Instant::now(),
                first: true,
            }),
            generation: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent whatever panicked while holding it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, state: &mut State, new: State) {
        *state = new;
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Bytes came in from the client.
    fn bytes_read(&self) {
        let mut state = self.lock();
        if let State::Waiting { since, first } = *state {
            // A new connection's header time counts from its accept, not its first byte.
            let since = if first { since } else { Instant::now() };
            self.set(&mut state, State::ReadingHead { since });
        }
    }

    /// hyper dispatched a request (its headers are complete); the guard ends it.
    fn request_started(self: &Arc<Self>) -> Busy {
        let mut state = self.lock();
        let requests = match *state {
            State::Busy { requests } => requests + 1,
            _ => 1,
        };
        self.set(&mut state, State::Busy { requests });
        Busy(self.clone())
    }

    fn request_finished(&self) {
        let mut state = self.lock();
        let new = match *state {
            State::Busy { requests } if requests > 1 => State::Busy {
                requests: requests - 1,
            },
            _ => State::Waiting {
                since: Instant::now(),
                first: false,
            },
        };
        self.set(&mut state, new);
    }

    fn in_flight(&self) -> bool {
        matches!(*self.lock(), State::Busy { .. })
    }

    /// When the connection must be closed if nothing changes.
    fn deadline(&self, timeouts: Timeouts) -> Option<Instant> {
        match *self.lock() {
            State::Waiting { since, first: true } | State::ReadingHead { since } => {
                Some(since + timeouts.header_read)
            }
            // Without keep-alive hyper closes after the response; this only backs it up.
            State::Waiting { since, .. } => {
                Some(since + timeouts.keepalive.unwrap_or(timeouts.header_read))
            }
            State::Busy { .. } => None,
        }
    }

    fn describe(&self) -> &'static str {
        match *self.lock() {
            State::Waiting { first: true, .. } => "no request sent",
            State::Waiting { .. } => "idle",
            State::ReadingHead { .. } => "headers incomplete",
            State::Busy { .. } => "busy",
        }
    }
}

/// Held while a request is in flight: from dispatch until its response body is dropped
/// (sent completely, or abandoned).
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body that keeps its request counted as in flight while it streams.
struct Tracked {
    body: Body,
    _busy: Busy,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The client's socket (plain TCP now, TLS later), reporting reads to the activity.
struct Watched<I> {
    io: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_read();
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: Timeouts = Timeouts {
        header_read: Duration::from_secs(10),
        keepalive: Some(Duration::from_secs(60)),
    };

    #[tokio::test(start_paused = true)]
    async fn the_deadline_follows_the_connection() {
        let activity = Arc::new(Activity::new());
        let accepted = Instant::now();
        assert_eq!(
            activity.deadline(TIMEOUTS),
            Some(accepted + TIMEOUTS.header_read)
        );
        // A new connection's first bytes do not restart its header time.
        tokio::time::advance(Duration::from_secs(3)).await;
        activity.bytes_read();
        assert_eq!(
            activity.deadline(TIMEOUTS),
            Some(accepted + TIMEOUTS.header_read)
        );

        let busy = activity.request_started();
        assert_eq!(activity.deadline(TIMEOUTS), None);
        assert!(activity.in_flight());
        // Body bytes of the request in flight change nothing.
        activity.bytes_read();
        assert_eq!(activity.deadline(TIMEOUTS), None);

        tokio::time::advance(Duration::from_secs(100)).await;
        drop(busy);
        let idle = Instant::now();
        assert_eq!(
            activity.deadline(TIMEOUTS),
            Some(idle + Duration::from_secs(60))
        );
        assert!(!activity.in_flight());

        // The next request's headers get the header time from their first byte.
        tokio::time::advance(Duration::from_secs(20)).await;
        activity.bytes_read();
        assert_eq!(
            activity.deadline(TIMEOUTS),
            Some(Instant::now() + TIMEOUTS.header_read)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pipelined_requests_stay_in_flight_until_the_last_response() {
        let activity = Arc::new(Activity::new());
        let first = activity.request_started();
        let second = activity.request_started();
        drop(first);
        assert!(activity.in_flight());
        drop(second);
        assert!(!activity.in_flight());
    }

    #[test]
    fn without_keep_alive_the_idle_deadline_is_the_header_time() {
        let activity = Arc::new(Activity::new());
        drop(activity.request_started());
        let timeouts = Timeouts {
            keepalive: None,
            ..TIMEOUTS
        };
        let deadline = activity.deadline(timeouts).unwrap();
        assert!(deadline <= Instant::now() + TIMEOUTS.header_read);
    }
}
