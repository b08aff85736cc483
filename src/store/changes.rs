//! News of changes made by other processes on a shared database: a counter that moves on
//! every change another instance announces, and whether the news can be trusted right now.
//! A store that can hear other instances (PostgreSQL's `LISTEN`) hands one out through
//! [`Store::changes`](super::Store::changes); [`CachedStore`](super::cached::CachedStore)
//! forgets what it holds whenever the counter moves, and holds nothing while the feed is
//! down (news may be missed then).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The shared state between the one who hears about changes and those who cache.
#[derive(Debug, Default)]
pub struct ChangeFeed {
    generation: AtomicU64,
    live: AtomicBool,
}

/// What a reader sees of a [`ChangeFeed`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedState {
    /// Listening: every change since `generation` moved would have moved it again.
    Live {
        /// Moves on every announced change (and on every reconnect).
        generation: u64,
    },
    /// Not listening: changes may go unannounced; nothing read may be kept.
    Down,
}

impl ChangeFeed {
    /// A feed that is down until [`ChangeFeed::connected`] is called.
    pub fn new() -> Arc<Self> {
        Arc::new(ChangeFeed::default())
    }

    /// What a cache may rely on now.
    pub fn state(&self) -> FeedState {
        // Generation first: a reader that sees `live` also sees every bump made before it.
        let generation = self.generation.load(Ordering::Acquire);
        if self.live.load(Ordering::Acquire) {
            FeedState::Live { generation }
        } else {
            FeedState::Down
        }
    }

    /// Another instance changed something: every cache forgets.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Listening (again): whatever happened while down is forgotten too.
    pub fn connected(&self) {
        self.changed();
        self.live.store(true, Ordering::Release);
    }

    /// The listening connection is gone: caches stop keeping anything.
    pub fn disconnected(&self) {
        self.live.store(false, Ordering::Release);
        self.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_until_connected_and_every_event_moves_the_generation() {
        let feed = ChangeFeed::new();
        assert_eq!(feed.state(), FeedState::Down);
        feed.connected();
        let FeedState::Live { generation: first } = feed.state() else {
            panic!("connected feed is down")
        };
        feed.changed();
        let FeedState::Live { generation: second } = feed.state() else {
            panic!("feed went down on a change")
        };
        assert_ne!(first, second);
        feed.disconnected();
        assert_eq!(feed.state(), FeedState::Down);
        feed.connected();
        assert!(
            !matches!(feed.state(), FeedState::Live { generation } if generation == second),
            "a reconnect must move the generation"
        );
    }
}
