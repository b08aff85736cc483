//! The accept loop: client connections on a listening socket, each served on its own task
//! under the `[server:main]` connection settings, and the graceful shutdown.
//!
//! At most `connection_limit` connections are served at once: at the limit the loop stops
//! accepting, so further clients wait in the kernel's listen backlog (as with waitress)
//! and are served as soon as a connection closes; none is refused while the backlog has
//! room, and the number of tasks never grows past the limit. Timeouts per connection are
//! in [`connection`]. Shutdown: the listener closes at once (new connections are
//! refused), idle and half-sent connections close, requests in flight get
//! `graceful_timeout` to finish, then whatever is left is closed.
//!
//! Several listeners (plain HTTP now, HTTPS beside it later) share one limit and one
//! shutdown; a connection is served by [`connection::serve`], generic over its socket type,
//! so a TLS listener's [`Kind`] can run its handshake and hand the stream over.

mod connection;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::Extensions;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::config::ConnectionSettings;
use crate::tls::Tls;
use connection::{Phase, Timeouts};

/// Connections served at once when `connection_limit` is not set (and the open-files
/// limit allows it).
pub const DEFAULT_CONNECTION_LIMIT: usize = 10_000;
/// Open files kept for everything but client connections (database, logs, DNS, …).
const RESERVED_FILES: u64 = 64;
/// How long the accept loop pauses when the process is out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long connections get to go away once told to close (they only need to be dropped).
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// A listening socket and what its connections speak.
pub struct Listener {
    /// The bound socket.
    pub socket: TcpListener,
    /// What happens between accept and HTTP.
    pub kind: Kind,
}

/// What a listener's connections go through before HTTP is spoken on them. A TLS kind
/// runs its handshake (under its own timeout) in the connection's task, then hands the
/// stream and what it learnt (a client certificate) to [`connection::serve`].
#[derive(Clone)]
pub enum Kind {
    /// Plain HTTP/1.1.
    Http,
    /// HTTP/1.1 over TLS: the handshake (under [`Tls`]'s timeout) first; a verified client
    /// certificate becomes a [`ClientIdentity`](crate::tls::ClientIdentity) extension of
    /// every request of the connection.
    Https(Arc<Tls>),
}

impl Listener {
    /// A plain HTTP listener.
    pub fn http(socket: TcpListener) -> Listener {
        Listener {
            socket,
            kind: Kind::Http,
        }
    }

    /// An HTTPS listener.
    pub fn https(socket: TcpListener, tls: Arc<Tls>) -> Listener {
        Listener {
            socket,
            kind: Kind::Https(tls),
        }
    }
}

/// Serves `router` on every listener until `shutdown` resolves, then drains the
/// connections (see the module documentation) and returns. All listeners share one
/// connection limit.
pub async fn serve(
    listeners: Vec<Listener>,
    router: Router,
    settings: &ConnectionSettings,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let limit = connection_limit(settings.connection_limit, open_files_limit());
    let server = Arc::new(Connections {
        router,
        timeouts: Timeouts {
            header_read: settings.header_read_timeout,
            keepalive: settings.keepalive_timeout,
        },
        permits: Arc::new(Semaphore::new(limit)),
        limit,
        phase: watch::Sender::new(Phase::Running),
    });
    let (stop, stopped) = watch::channel(false);
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            let server = server.clone();
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                let stop = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                server.accept_loop(&listener, std::pin::pin!(stop)).await;
                // Refuse new connections at once: nothing reads the backlog any more.
                drop(listener);
            })
        })
        .collect();
    shutdown.await;
    stop.send_replace(true);
    for accepting in loops {
        if let Err(e) = accepting.await {
            tracing::error!(error = %e, "an accept loop failed");
        }
    }
    server.drain(settings.graceful_timeout).await;
    Ok(())
}

/// The connections of one server: how many may be open, and what they are told.
struct Connections {
    router: Router,
    timeouts: Timeouts,
    /// One permit per open connection.
    permits: Arc<Semaphore>,
    limit: usize,
    phase: watch::Sender<Phase>,
}

impl Connections {
    /// Accepts until `shutdown` resolves.
    async fn accept_loop(
        &self,
        listener: &Listener,
        mut shutdown: impl Future<Output = ()> + Unpin,
    ) {
        let mut at_limit = false;
        loop {
            if self.permits.available_permits() == 0 && !at_limit {
                tracing::warn!(
                    limit = self.limit,
                    "connection limit reached: new clients wait until a connection closes"
                );
            }
            at_limit = self.permits.available_permits() == 0;
            let permit = tokio::select! {
                () = &mut shutdown => return,
                permit = self.permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            let accepted = tokio::select! {
                () = &mut shutdown => return,
                accepted = listener.socket.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors (or memory): wait for some to be released
                    // instead of spinning on the error.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            };
            // Responses are written in whole buffers; small ones should not wait for ACKs.
            let _ = stream.set_nodelay(true);
            let router = self.router.clone();
            let phase = self.phase.subscribe();
            let timeouts = self.timeouts;
            let kind = listener.kind.clone();
            tokio::spawn(async move {
                match kind {
                    Kind::Http => {
                        let extensions = Extensions::new();
                        connection::serve(stream, peer, extensions, router, timeouts, phase).await;
                    }
                    Kind::Https(tls) => {
                        let mut stopping = phase.clone();
                        // A failed or stalled handshake ends this connection only; a
                        // shutdown does not wait for one.
                        let accepted = tokio::select! {
                            accepted = tls.accept(stream) => accepted,
                            _ = stopping.wait_for(|p| *p != Phase::Running) => return,
                        };
                        match accepted {
                            Ok((stream, identity)) => {
                                let mut extensions = Extensions::new();
                                extensions.insert(crate::tls::OverTls);
                                if let Some(identity) = identity {
                                    extensions.insert(identity);
                                }
                                connection::serve(
                                    stream, peer, extensions, router, timeouts, phase,
                                )
                                .await;
                            }
                            Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        }
                    }
                }
                drop(permit);
            });
        }
    }

    /// Closes idle connections, waits up to `grace` for requests in flight, then closes
    /// the rest.
    async fn drain(&self, grace: Duration) {
        let open = self.open();
        tracing::info!(
            connections = open,
            "shutting down: no new connections; requests in flight get {grace:?} to finish"
        );
        self.phase.send_replace(Phase::Draining);
        if tokio::time::timeout(grace, self.all_closed()).await.is_ok() {
            tracing::info!("all connections closed");
            return;
        }
        tracing::warn!(
            connections = self.open(),
            "grace period over: closing the connections still open"
        );
        self.phase.send_replace(Phase::Closing);
        if tokio::time::timeout(CLOSE_WAIT, self.all_closed())
            .await
            .is_err()
        {
            tracing::warn!(connections = self.open(), "connections did not close");
        }
    }

    fn open(&self) -> usize {
        self.limit - self.permits.available_permits()
    }

    /// Resolves when every permit is back, i.e. every connection task has ended.
    async fn all_closed(&self) {
        let all = u32::try_from(self.limit).unwrap_or(u32::MAX);
        let _ = self.permits.acquire_many(all).await;
    }
}

/// Errors of one connection that failed between the kernel's accept and ours.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The connections to serve at once: the configured number, or the default, but no more
/// than the open-files limit allows (a proxied request holds two sockets).
fn connection_limit(configured: Option<usize>, open_files: Option<u64>) -> usize {
    let wanted = configured.unwrap_or(DEFAULT_CONNECTION_LIMIT);
    let Some(files) = open_files else {
        return wanted;
    };
    let allowed = usize::try_from(files.saturating_sub(RESERVED_FILES) / 2)
        .unwrap_or(usize::MAX)
        .max(1);
    if wanted > allowed {
        if configured.is_some() {
            tracing::warn!(
                connection_limit = wanted,
                open_files = files,
                "connection_limit lowered to {allowed}: the open-files limit (ulimit -n) allows no more"
            );
        }
        return allowed;
    }
    wanted
}

/// The process's open-files limit, when there is one.
fn open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Raises the soft open-files limit to the hard one (the default soft limit, often 1024,
/// would cap the connections far below what the machine allows). Failure changes nothing.
pub fn raise_open_files_limit() {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
            && current < maximum
        {
            let raised = Rlimit {
                current: Some(maximum),
                maximum: Some(maximum),
            };
            if let Err(e) = setrlimit(Resource::Nofile, raised) {
                tracing::debug!(error = %e, "cannot raise the open-files limit");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_files_limit_caps_the_connections() {
        assert_eq!(connection_limit(None, None), DEFAULT_CONNECTION_LIMIT);
        assert_eq!(connection_limit(Some(50), Some(1024)), 50);
        assert_eq!(connection_limit(None, Some(1024)), 480);
        assert_eq!(connection_limit(Some(5000), Some(1024)), 480);
        assert_eq!(
            connection_limit(None, Some(1_048_576)),
            DEFAULT_CONNECTION_LIMIT
        );
        assert_eq!(connection_limit(None, Some(10)), 1);
    }
}
