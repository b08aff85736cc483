//! Confirmations of writes: every listening instance, having forgotten what a change
//! touched, answers the change's notification with an acknowledgement on [`ACKS`]; the
//! instance that wrote waits for as many as there were listeners before it answers its
//! client. So when a write's answer arrives, no instance serves the old state any more.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// The channel acknowledgements travel on.
pub(super) const ACKS: &str = "twitcher_acks";

/// This instance's writes waiting for acknowledgements.
pub(super) struct Acks {
    /// Tells this instance's writes from others' in payloads.
    instance: String,
    next: AtomicU64,
    /// Acknowledgements counted so far, per write in flight.
    counts: Mutex<HashMap<u64, usize>>,
    arrived: Notify,
}

/// A write's identity in notifications: `INSTANCE SEQUENCE`.
pub(super) struct WriteId<'a> {
    acks: &'a Acks,
    seq: u64,
}

impl Acks {
    /// Nothing in flight.
    pub(super) fn new() -> Acks {
        Acks {
            instance: uuid::Uuid::new_v4().simple().to_string(),
            next: AtomicU64::new(0),
            counts: Mutex::new(HashMap::new()),
            arrived: Notify::new(),
        }
    }

    /// Registers a new write before it commits (an acknowledgement may beat the commit's
    /// answer back).
    pub(super) fn begin(&self) -> WriteId<'_> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(seq, 0);
        WriteId { acks: self, seq }
    }

    /// An acknowledgement arrived (payload `INSTANCE SEQUENCE`); others' are ignored.
    pub(super) fn received(&self, payload: &str) {
        let Some((instance, seq)) = payload.split_once(' ') else {
            return;
        };
        let Ok(seq) = seq.parse::<u64>() else {
            return;
        };
        if instance != self.instance {
            return;
        }
        if let Some(count) = self.lock().get_mut(&seq) {
            *count += 1;
            self.arrived.notify_waiters();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, usize>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl WriteId<'_> {
    /// The notification payload of this write: `KIND INSTANCE SEQUENCE`.
    pub(super) fn payload(&self, kind: &str) -> String {
        format!("{kind} {} {}", self.acks.instance, self.seq)
    }

    /// Waits until `expected` acknowledgements arrived or `limit` passed; false on timeout.
    pub(super) async fn confirmed(&self, expected: usize, limit: Duration) -> bool {
        let wait = async {
            loop {
                // Registered before looking, so an acknowledgement in between still wakes us.
                let arrived = self.acks.arrived.notified();
                if self.acks.lock().get(&self.seq).copied().unwrap_or(0) >= expected {
                    return;
                }
                arrived.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

impl Drop for WriteId<'_> {
    fn drop(&mut self) {
        self.acks.lock().remove(&self.seq);
    }
}

/// The acknowledgement of a change notification's payload: `INSTANCE SEQUENCE`.
pub(super) fn acknowledgement(change_payload: &str) -> Option<&str> {
    change_payload.split_once(' ').map(|(_, ids)| ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_is_confirmed_by_its_own_acknowledgements_only() {
        let acks = Acks::new();
        let write = acks.begin();
        let payload = write.payload("tokens");
        let ack = acknowledgement(&payload).unwrap().to_string();
        acks.received("someone-else 0");
        acks.received(&ack);
        assert!(write.confirmed(1, Duration::from_secs(5)).await);
        assert!(!write.confirmed(2, Duration::from_millis(20)).await);
        acks.received(&ack);
        assert!(write.confirmed(2, Duration::from_secs(5)).await);
        let other = acks.begin();
        assert!(!other.confirmed(1, Duration::from_millis(20)).await);
        assert!(other.confirmed(0, Duration::ZERO).await);
    }
}
