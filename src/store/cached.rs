//! The registry and the tokens in use, held in memory in front of a database store: the
//! proxy's hot path (service lookup, token check) then never waits for the database. A
//! write through this store empties what it changed before it returns, so a revoked token
//! is refused on the very next request. Changes made behind its back (another process on
//! the same SQLite file) are seen after at most `max_age`, unless the store announces them
//! ([`Store::changes`]: PostgreSQL's `LISTEN`): then each announcement empties the memory at
//! once, and while the announcements may be missed (the listening connection is down)
//! nothing is kept at all.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::changes::{ChangeFeed, FeedState};
use super::{AccessToken, OAuthClient, OAuthToken, Service, Store, StoreResult, StoredToken};

/// Most tokens remembered; past that the memory starts over (a flood of distinct valid
/// tokens costs database lookups, never unbounded memory).
const MAX_TOKENS: usize = 100_000;

/// A caching [`Store`] around another one.
pub struct CachedStore {
    inner: Arc<dyn Store>,
    max_age: Duration,
    /// Changes other instances announce, when the inner store hears them.
    changes: Option<Arc<ChangeFeed>>,
    state: RwLock<State>,
}

/// What is remembered, with when it was read.
#[derive(Default)]
struct State {
    /// Every service by name, as last read whole, and when (None: read on next use).
    services: Option<(Arc<HashMap<String, Service>>, Instant)>,
    /// Tokens found by `find_token` (never absences: unknown strings are not kept).
    tokens: HashMap<String, (StoredToken, Instant)>,
    /// Counts the writes: a read that started before one is not remembered.
    generation: u64,
    /// The change feed's generation last acted on.
    feed_generation: Option<u64>,
}

impl CachedStore {
    /// Remembers reads of `inner` for at most `max_age`, and forgets them whenever `inner`
    /// announces a change made by another process.
    pub fn new(inner: Arc<dyn Store>, max_age: Duration) -> Self {
        let changes = inner.changes();
        Self::with_changes(inner, max_age, changes)
    }

    /// Like [`CachedStore::new`], with the news of changes from `changes` (`None`: no news,
    /// only `max_age` bounds what other processes change).
    pub fn with_changes(
        inner: Arc<dyn Store>,
        max_age: Duration,
        changes: Option<Arc<ChangeFeed>>,
    ) -> Self {
        CachedStore {
            inner,
            max_age,
            changes,
            state: RwLock::new(State::default()),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn write<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.write().unwrap_or_else(|e| e.into_inner()))
    }

    fn fresh(&self, read_at: Instant) -> bool {
        read_at.elapsed() < self.max_age
    }

    /// Whether memory may be used and filled now. Forgets everything first when another
    /// instance announced a change since the last look; false while announcements may be
    /// missed.
    fn in_sync(&self) -> bool {
        let Some(feed) = &self.changes else {
            return true;
        };
        match feed.state() {
            FeedState::Down => false,
            FeedState::Live { generation } => {
                if self.read(|s| s.feed_generation) != Some(generation) {
                    self.write(|s| {
                        if s.feed_generation != Some(generation) {
                            s.feed_generation = Some(generation);
                            forget_in(s, true, true);
                        }
                    });
                }
                true
            }
        }
    }

    /// The whole registry, read from the database when not in memory or too old.
    async fn services(&self) -> StoreResult<Arc<HashMap<String, Service>>> {
        if !self.in_sync() {
            return Ok(Arc::new(by_name(self.inner.list_services().await?)));
        }
        let (cached, generation) = self.read(|s| (s.services.clone(), s.generation));
        if let Some((services, read_at)) = cached
            && self.fresh(read_at)
        {
            return Ok(services);
        }
        let read_at = Instant::now();
        let map = Arc::new(by_name(self.inner.list_services().await?));
        self.write(|s| {
            if s.generation == generation {
                s.services = Some((map.clone(), read_at));
            }
        });
        Ok(map)
    }

    /// A write's result, after forgetting what it may have changed (also when it failed:
    /// a failed write may still have reached the database).
    fn forgetting<T>(
        &self,
        services: bool,
        tokens: bool,
        result: StoreResult<T>,
    ) -> StoreResult<T> {
        self.forget(services, tokens);
        result
    }

    /// Forgets what a write may have changed, before the write's caller goes on.
    fn forget(&self, services: bool, tokens: bool) {
        self.write(|s| forget_in(s, services, tokens));
    }
}

/// Empties the parts of `state` named, and stops reads in flight from being remembered.
fn forget_in(state: &mut State, services: bool, tokens: bool) {
    state.generation += 1;
    if services {
        state.services = None;
    }
    if tokens {
        state.tokens.clear();
    }
}

/// The registry by name; the first of a name wins, as `service_by_name` orders by insertion.
fn by_name(list: Vec<Service>) -> HashMap<String, Service> {
    let mut map = HashMap::with_capacity(list.len());
    for service in list {
        map.entry(service.name.clone()).or_insert(service);
    }
    map
}

#[async_trait]
impl Store for CachedStore {
    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }

    fn changes(&self) -> Option<Arc<ChangeFeed>> {
        self.changes.clone()
    }

    fn pool_status(&self) -> Option<crate::store::PoolStatus> {
        self.inner.pool_status()
    }

    async fn service_by_name(&self, name: &str) -> StoreResult<Option<Service>> {
        Ok(self.services().await?.get(name).cloned())
    }

    async fn service_by_url(&self, url: &str) -> StoreResult<Option<Service>> {
        self.inner.service_by_url(url).await
    }

    async fn list_services(&self) -> StoreResult<Vec<Service>> {
        self.inner.list_services().await
    }

    async fn save_service(&self, service: &Service) -> StoreResult<()> {
        self.forgetting(true, false, self.inner.save_service(service).await)
    }

    async fn delete_service(&self, name: &str) -> StoreResult<bool> {
        self.forgetting(true, false, self.inner.delete_service(name).await)
    }

    async fn clear_services(&self) -> StoreResult<()> {
        self.forgetting(true, false, self.inner.clear_services().await)
    }

    async fn save_access_token(&self, token: &AccessToken) -> StoreResult<()> {
        // A new token may replace one of the same string: forget the old one.
        self.forgetting(false, true, self.inner.save_access_token(token).await)
    }

    async fn access_token(&self, token: &str) -> StoreResult<Option<AccessToken>> {
        self.inner.access_token(token).await
    }

    async fn delete_access_token(&self, token: &str) -> StoreResult<bool> {
        self.forgetting(false, true, self.inner.delete_access_token(token).await)
    }

    async fn clear_access_tokens(&self) -> StoreResult<()> {
        self.forgetting(false, true, self.inner.clear_access_tokens().await)
    }

    async fn save_client(&self, client: &OAuthClient) -> StoreResult<()> {
        self.inner.save_client(client).await
    }

    async fn client(&self, client_id: &str) -> StoreResult<Option<OAuthClient>> {
        self.inner.client(client_id).await
    }

    async fn save_oauth_token(&self, token: &OAuthToken) -> StoreResult<()> {
        self.forgetting(false, true, self.inner.save_oauth_token(token).await)
    }

    async fn oauth_token(&self, access_token: &str) -> StoreResult<Option<OAuthToken>> {
        self.inner.oauth_token(access_token).await
    }

    async fn delete_oauth_token(&self, access_token: &str) -> StoreResult<bool> {
        self.forgetting(
            false,
            true,
            self.inner.delete_oauth_token(access_token).await,
        )
    }

    async fn find_token(&self, token: &str) -> StoreResult<Option<StoredToken>> {
        if !self.in_sync() {
            return self.inner.find_token(token).await;
        }
        let (cached, generation) = self.read(|s| (s.tokens.get(token).cloned(), s.generation));
        if let Some((found, read_at)) = cached
            && self.fresh(read_at)
        {
            return Ok(Some(found));
        }
        let read_at = Instant::now();
        let found = self.inner.find_token(token).await?;
        self.write(|s| {
            if s.generation != generation {
                return;
            }
            match &found {
                Some(found) => {
                    if s.tokens.len() >= MAX_TOKENS {
                        s.tokens.clear();
                    }
                    s.tokens.insert(token.to_string(), (found.clone(), read_at));
                }
                None => {
                    s.tokens.remove(token);
                }
            }
        });
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn cached(max_age: Duration) -> (Arc<MemoryStore>, CachedStore) {
        let inner = Arc::new(MemoryStore::new());
        let cached = CachedStore::new(inner.clone(), max_age);
        (inner, cached)
    }

    const LONG: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn writes_through_it_take_effect_at_once() {
        let (_, store) = cached(LONG);
        let token = AccessToken {
            token: "t".into(),
            expires_at: i64::MAX,
        };
        store.save_access_token(&token).await.unwrap();
        assert!(store.find_token("t").await.unwrap().is_some());
        store.delete_access_token("t").await.unwrap();
        assert_eq!(store.find_token("t").await.unwrap(), None);

        store.save_access_token(&token).await.unwrap();
        assert!(store.find_token("t").await.unwrap().is_some());
        store.clear_access_tokens().await.unwrap();
        assert_eq!(store.find_token("t").await.unwrap(), None);

        let oauth = OAuthToken {
            access_token: "o".into(),
            client_id: "c".into(),
            scope: "compute".into(),
            expires_at: i64::MAX,
        };
        store.save_oauth_token(&oauth).await.unwrap();
        assert!(store.find_token("o").await.unwrap().is_some());
        store.delete_oauth_token("o").await.unwrap();
        assert_eq!(store.find_token("o").await.unwrap(), None);

        assert_eq!(store.service_by_name("emu").await.unwrap(), None);
        store
            .save_service(&Service::new("emu", "http://a/wps"))
            .await
            .unwrap();
        assert_eq!(
            store.service_by_name("emu").await.unwrap().unwrap().url,
            "http://a/wps"
        );
        store
            .save_service(&Service::new("emu", "http://b/wps"))
            .await
            .unwrap();
        assert_eq!(
            store.service_by_name("emu").await.unwrap().unwrap().url,
            "http://b/wps"
        );
        store.delete_service("emu").await.unwrap();
        assert_eq!(store.service_by_name("emu").await.unwrap(), None);
        store
            .save_service(&Service::new("emu", "http://a/wps"))
            .await
            .unwrap();
        store.clear_services().await.unwrap();
        assert_eq!(store.service_by_name("emu").await.unwrap(), None);
    }

    #[tokio::test]
    async fn changes_behind_its_back_are_seen_after_max_age() {
        let (inner, store) = cached(LONG);
        inner
            .save_service(&Service::new("emu", "http://a/wps"))
            .await
            .unwrap();
        assert!(store.service_by_name("emu").await.unwrap().is_some());
        inner.delete_service("emu").await.unwrap();
        // Remembered: the whole point.
        assert!(store.service_by_name("emu").await.unwrap().is_some());

        let (inner, store) = cached(Duration::ZERO);
        inner
            .save_service(&Service::new("emu", "http://a/wps"))
            .await
            .unwrap();
        assert!(store.service_by_name("emu").await.unwrap().is_some());
        inner.delete_service("emu").await.unwrap();
        assert_eq!(store.service_by_name("emu").await.unwrap(), None);
    }

    #[tokio::test]
    async fn announced_changes_are_seen_on_the_next_read() {
        let inner = Arc::new(MemoryStore::new());
        let feed = ChangeFeed::new();
        feed.connected();
        let store = CachedStore::with_changes(inner.clone(), LONG, Some(feed.clone()));
        let token = AccessToken {
            token: "t".into(),
            expires_at: i64::MAX,
        };
        inner.save_access_token(&token).await.unwrap();
        inner
            .save_service(&Service::new("emu", "http://a/wps"))
            .await
            .unwrap();
        assert!(store.find_token("t").await.unwrap().is_some());
        assert!(store.service_by_name("emu").await.unwrap().is_some());
        inner.delete_access_token("t").await.unwrap();
        inner.delete_service("emu").await.unwrap();
        // Unannounced: still remembered.
        assert!(store.find_token("t").await.unwrap().is_some());
        assert!(store.service_by_name("emu").await.unwrap().is_some());
        feed.changed();
        assert_eq!(store.find_token("t").await.unwrap(), None);
        assert_eq!(store.service_by_name("emu").await.unwrap(), None);
    }

    #[tokio::test]
    async fn nothing_is_remembered_while_the_feed_is_down() {
        let inner = Arc::new(MemoryStore::new());
        let feed = ChangeFeed::new();
        let store = CachedStore::with_changes(inner.clone(), LONG, Some(feed.clone()));
        inner
            .save_service(&Service::new("emu", "http://a/wps"))
            .await
            .unwrap();
        assert!(store.service_by_name("emu").await.unwrap().is_some());
        inner.delete_service("emu").await.unwrap();
        assert_eq!(store.service_by_name("emu").await.unwrap(), None);

        // Up, remembered; down again: read through at once.
        feed.connected();
        inner
            .save_service(&Service::new("emu", "http://a/wps"))
            .await
            .unwrap();
        assert!(store.service_by_name("emu").await.unwrap().is_some());
        feed.disconnected();
        inner.delete_service("emu").await.unwrap();
        assert_eq!(store.service_by_name("emu").await.unwrap(), None);
        // Back up: what was remembered before is not trusted.
        inner
            .save_service(&Service::new("emu", "http://b/wps"))
            .await
            .unwrap();
        feed.connected();
        assert_eq!(
            store.service_by_name("emu").await.unwrap().unwrap().url,
            "http://b/wps"
        );
    }

    #[tokio::test]
    async fn unknown_tokens_are_not_remembered() {
        let (inner, store) = cached(LONG);
        assert_eq!(store.find_token("later").await.unwrap(), None);
        inner
            .save_access_token(&AccessToken {
                token: "later".into(),
                expires_at: i64::MAX,
            })
            .await
            .unwrap();
        assert!(store.find_token("later").await.unwrap().is_some());
    }
}
