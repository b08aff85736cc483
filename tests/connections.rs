//! Client connections against the real binary: header-read and keep-alive timeouts, the
//! connection limit, and SIGTERM (stop accepting, drain within the grace period, exit 0).
//! Raw sockets, so that half-sent requests and idle connections are what they claim.

mod common;

use std::time::Duration;

use common::process::Process;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;

/// Longest any step may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(15);

async fn connect(server: &Process) -> TcpStream {
    TcpStream::connect(&server.addr).await.expect("connect")
}

/// Everything the peer sends until it closes (a reset counts as closing).
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let read = timeout(PATIENCE, async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the connection was not closed: {out:?}");
    out
}

/// Sends a GET and reads one response (head and `Content-Length` body) off a kept-alive
/// connection; returns the status line.
async fn get(stream: &mut TcpStream, path: &str) -> String {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: twitcher\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let response = timeout(PATIENCE, async {
        loop {
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&data[..end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .expect("Content-Length");
                if data.len() >= end + 4 + length {
                    return head.lines().next().unwrap().to_string();
                }
            }
            let n = stream.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "closed mid-response: {:?}",
                String::from_utf8_lossy(&data)
            );
            data.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    response.expect("no response")
}

/// One complete request on its own connection (`Connection: close`); the raw response.
async fn get_once(server: &Process, path: &str) -> String {
    let mut stream = connect(server).await;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: twitcher\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("write");
    String::from_utf8_lossy(&until_closed(&mut stream).await).into_owned()
}

/// A connection with half a request on it: the request line and one header, no end.
async fn half_sent(server: &Process) -> TcpStream {
    let mut stream = connect(server).await;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: twitcher\r\n")
        .await
        .expect("write");
    stream
}

/// A backend that holds every request until released, then answers a small PNG.
struct HeldBackend {
    url: String,
    /// One message per request received (headers read).
    arrived: mpsc::UnboundedReceiver<()>,
    release: watch::Sender<bool>,
}

impl HeldBackend {
    async fn start() -> HeldBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/wms", listener.local_addr().unwrap());
        let (arrived_tx, arrived) = mpsc::unbounded_channel();
        let (release, released) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let arrived = arrived_tx.clone();
                let mut released = released.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = arrived.send(());
                    if released.wait_for(|r| *r).await.is_err() {
                        return;
                    }
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 5\r\n\r\nhello",
                        )
                        .await;
                });
            }
        });
        HeldBackend {
            url,
            arrived,
            release,
        }
    }

    async fn wait_for_request(&mut self) {
        timeout(PATIENCE, self.arrived.recv())
            .await
            .expect("the request never reached the backend")
            .expect("backend gone");
    }
}

const HELD_PATH: &str = "/ows/proxy/held?service=WMS&request=GetCapabilities";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_is_dropped_after_the_header_timeout_while_others_are_served() {
    let server = Process::start("", "header_read_timeout = 1\nkeepalive_timeout = 60");
    // Before any connection: the listener and the runtime's own.
    let sockets = server.open_sockets();

    let mut slow = half_sent(&server).await;
    assert!(
        server.wait_open_sockets(sockets + 1, PATIENCE),
        "the half-sent connection was not accepted"
    );
    // Others are served while it hangs.
    for _ in 0..3 {
        assert!(get_once(&server, "/").await.starts_with("HTTP/1.1 200"));
    }
    let answer = until_closed(&mut slow).await;
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"),
        "{answer:?}"
    );
    assert!(
        server.wait_open_sockets(sockets, PATIENCE),
        "the dropped connection's descriptor was not released"
    );
    assert!(get_once(&server, "/").await.starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_connection_that_sends_nothing_gets_the_header_timeout() {
    // The keep-alive time is for connections that were served; a silent new one is a
    // request whose headers do not come.
    let server = Process::start("", "header_read_timeout = 1\nkeepalive_timeout = 60");
    let mut silent = connect(&server).await;
    assert!(until_closed(&mut silent).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout() {
    // The header timeout is far longer than the test's patience: only the keep-alive
    // timeout can close the connection in time.
    let server = Process::start("", "header_read_timeout = 60\nkeepalive_timeout = 1");
    let mut stream = connect(&server).await;
    assert_eq!(get(&mut stream, "/").await, "HTTP/1.1 200 OK");
    assert_eq!(
        get(&mut stream, "/info").await,
        "HTTP/1.1 200 OK",
        "kept alive"
    );
    assert!(until_closed(&mut stream).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_outlives_the_header_timeout_while_idle() {
    let server = Process::start("", "header_read_timeout = 1\nkeepalive_timeout = 60");
    let mut stream = connect(&server).await;
    assert_eq!(get(&mut stream, "/").await, "HTTP/1.1 200 OK");
    // Idle for longer than the header timeout (a behaviour, not a readiness wait).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(get(&mut stream, "/").await, "HTTP/1.1 200 OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_limit_clients_wait_until_a_connection_closes() {
    let server = Process::start("", "connection_limit = 2\nheader_read_timeout = 60");
    let sockets = server.open_sockets();
    let first = connect(&server).await;
    let mut second = connect(&server).await;
    assert!(server.wait_open_sockets(sockets + 2, PATIENCE));

    // The third client's connection waits in the backlog: no answer while both are held.
    let mut third = connect(&server).await;
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: twitcher\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        timeout(Duration::from_secs(1), third.read(&mut byte))
            .await
            .is_err(),
        "served past the limit"
    );
    assert_eq!(
        server.open_sockets(),
        sockets + 2,
        "accepted past the limit"
    );

    // One holder leaves: the waiting client is served, and so are the next ones.
    drop(first);
    let answer = String::from_utf8_lossy(&until_closed(&mut third).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(get_once(&server, "/").await.starts_with("HTTP/1.1 200"));
    assert_eq!(get(&mut second, "/").await, "HTTP/1.1 200 OK");
    assert!(
        server
            .log()
            .iter()
            .any(|l| l.contains("connection limit reached"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_refuses_new_connections_and_lets_the_request_in_flight_finish() {
    // Timeouts longer than the test's patience: nothing may wait for them.
    let mut server = Process::start(
        "",
        "header_read_timeout = 60\nkeepalive_timeout = 60\ngraceful_timeout = 60",
    );
    let mut backend = HeldBackend::start().await;
    server.register("held", &backend.url, "wms").await;

    let mut in_flight = connect(&server).await;
    in_flight
        .write_all(format!("GET {HELD_PATH} HTTP/1.1\r\nHost: twitcher\r\n\r\n").as_bytes())
        .await
        .unwrap();
    backend.wait_for_request().await;
    let mut half = half_sent(&server).await;
    // Accepted in order: once this one is served, the half-sent one is accepted too.
    let mut idle = connect(&server).await;
    assert_eq!(get(&mut idle, "/").await, "HTTP/1.1 200 OK");

    server.terminate();
    // New connections are refused at once.
    let refused = timeout(PATIENCE, async {
        loop {
            if TcpStream::connect(&server.addr).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "still accepting after SIGTERM");
    // The idle and the half-sent connections are closed without waiting for anything.
    assert!(until_closed(&mut idle).await.is_empty());
    assert!(until_closed(&mut half).await.is_empty());
    assert_eq!(
        server.wait_exit(Duration::from_millis(500)),
        None,
        "exited with a request in flight"
    );

    // The request in flight completes, then the connection closes and the process exits.
    backend.release.send_replace(true);
    let answer = String::from_utf8_lossy(&until_closed(&mut in_flight).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nhello"), "{answer}");
    let status = server.wait_exit(PATIENCE).expect("did not exit");
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_outlasts_the_grace_period_is_cut_and_the_process_exits() {
    let mut server = Process::start("", "graceful_timeout = 1");
    let mut backend = HeldBackend::start().await;
    server.register("held", &backend.url, "wms").await;
    let mut in_flight = connect(&server).await;
    in_flight
        .write_all(format!("GET {HELD_PATH} HTTP/1.1\r\nHost: twitcher\r\n\r\n").as_bytes())
        .await
        .unwrap();
    backend.wait_for_request().await;

    server.terminate();
    let status = server
        .wait_exit(PATIENCE)
        .expect("did not exit after the grace period");
    assert!(status.success(), "{status}");
    assert!(
        until_closed(&mut in_flight).await.is_empty(),
        "no response, no hang"
    );
    assert!(
        server.log().iter().any(|l| l.contains("grace period over")),
        "{:?}",
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_and_idle_connections_do_not_delay_shutdown() {
    let mut server = Process::start(
        "",
        "header_read_timeout = 60\nkeepalive_timeout = 60\ngraceful_timeout = 60",
    );
    let mut half = half_sent(&server).await;
    let mut idle = connect(&server).await;
    assert_eq!(get(&mut idle, "/").await, "HTTP/1.1 200 OK");
    server.terminate();
    let status = server
        .wait_exit(PATIENCE)
        .expect("shutdown waited for idle connections");
    assert!(status.success(), "{status}");
    assert!(until_closed(&mut half).await.is_empty());
    assert!(until_closed(&mut idle).await.is_empty());
}
