//! The `LISTEN` side of cross-instance cache invalidation: a thread of its own (with a
//! small runtime, so it works whatever runtime opened the store) keeps one connection
//! listening on [`CHANNEL`], moves the [`ChangeFeed`] on every notification and then
//! acknowledges it (see [`acks`](super::acks)), marks the feed down while the connection
//! is lost, and reconnects by itself. Its connection is named [`APPLICATION_NAME`], which
//! is how writers count the listeners whose acknowledgements they wait for.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::acks::{ACKS, Acks, acknowledgement};
use crate::store::changes::ChangeFeed;

/// The channel every write notifies and every instance listens on.
pub(super) const CHANNEL: &str = "twitcher_changes";
/// `application_name` of listening connections (`pg_stat_activity`).
pub(super) const APPLICATION_NAME: &str = "twitcher-listen";

/// How often a quiet listening connection is checked to be alive.
const PING_EVERY: Duration = Duration::from_secs(5);
/// First and longest wait before reconnecting.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Stops the listening thread when dropped (with the store that owns it).
pub(super) struct Listener {
    stop: watch::Sender<bool>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Starts listening for `feed`; the feed is down until the first `LISTEN` succeeds.
pub(super) fn start(
    mut config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    feed: Arc<ChangeFeed>,
    acks: Arc<Acks>,
) -> std::io::Result<Listener> {
    config.application_name(APPLICATION_NAME);
    let (stop, stopped) = watch::channel(false);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("twitcher-pg-listen".into())
        .spawn(move || runtime.block_on(run(config, tls, feed, acks, stopped)))?;
    Ok(Listener { stop })
}

async fn run(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    feed: Arc<ChangeFeed>,
    acks: Arc<Acks>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut retry = RETRY_FIRST;
    loop {
        let outcome = tokio::select! {
            outcome = listen(&config, tls.clone(), &feed, &acks) => outcome,
            _ = stopped.changed() => return,
        };
        feed.disconnected();
        match outcome {
            // It was up: start over at the shortest wait.
            Ok(()) => retry = RETRY_FIRST,
            Err(e) => tracing::warn!(
                error = %e,
                "cannot listen for changes from other twitcher instances; caching is off until it can"
            ),
        }
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = stopped.changed() => return,
        }
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// One listening connection, until it fails: `Err` when it never got to listen.
async fn listen(
    config: &tokio_postgres::Config,
    tls: MakeRustlsConnect,
    feed: &ChangeFeed,
    acks: &Acks,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls).await?;
    // The connection must be polled for the client to make progress; notifications come
    // out of it, and its end means the connection is gone.
    let (tx, mut notifications) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let event = (n.channel().to_owned(), n.payload().to_owned());
                    if tx.send(event).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "lost the connection listening for changes");
                    return;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {ACKS}; LISTEN {CHANNEL}"))
        .await?;
    let acknowledge = client
        .prepare(&format!("SELECT pg_notify('{ACKS}', $1::text)"))
        .await?;
    feed.connected();
    tracing::debug!("listening for changes from other twitcher instances");
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            event = notifications.recv() => match event {
                Some((channel, payload)) if channel == CHANNEL => {
                    // Forgotten first, confirmed second: the writer may answer its client
                    // as soon as the confirmation arrives.
                    feed.changed();
                    if let Some(ack) = acknowledgement(&payload)
                        && let Err(e) = client.execute(&acknowledge, &[&ack]).await
                    {
                        tracing::warn!(error = %e, "cannot acknowledge a change");
                        break;
                    }
                }
                Some((_, payload)) => acks.received(&payload),
                None => break,
            },
            _ = ping.tick() => {
                // A connection the network dropped silently never ends by itself.
                let alive = tokio::time::timeout(PING_EVERY, client.simple_query("")).await;
                if !matches!(alive, Ok(Ok(_))) {
                    tracing::warn!("the connection listening for changes stopped answering");
                    break;
                }
            }
        }
    }
    driver.abort();
    Ok(())
}
