//! An in-memory [`Store`] for fast tests: same semantics as SQLite, nothing persisted.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{AccessToken, OAuthClient, OAuthToken, Service, Store, StoreResult, StoredToken};

/// Keeps everything in process memory behind one lock.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Vec keeps insertion order, which `list_services` must report.
    services: Vec<Service>,
    access_tokens: HashMap<String, AccessToken>,
    clients: HashMap<String, OAuthClient>,
    oauth_tokens: HashMap<String, OAuthToken>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> StoreResult<T> {
        // A poisoned lock only means another test thread panicked; the data is still usable.
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Ok(f(&mut guard))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn service_by_name(&self, name: &str) -> StoreResult<Option<Service>> {
        self.with(|i| i.services.iter().find(|s| s.name == name).cloned())
    }

    async fn service_by_url(&self, url: &str) -> StoreResult<Option<Service>> {
        self.with(|i| i.services.iter().find(|s| s.url == url).cloned())
    }

    async fn list_services(&self) -> StoreResult<Vec<Service>> {
        self.with(|i| i.services.clone())
    }

    async fn save_service(&self, service: &Service) -> StoreResult<()> {
        self.with(
            |i| match i.services.iter_mut().find(|s| s.name == service.name) {
                Some(existing) => *existing = service.clone(),
                None => i.services.push(service.clone()),
            },
        )
    }

    async fn delete_service(&self, name: &str) -> StoreResult<bool> {
        self.with(|i| {
            let before = i.services.len();
            i.services.retain(|s| s.name != name);
            i.services.len() != before
        })
    }

    async fn clear_services(&self) -> StoreResult<()> {
        self.with(|i| i.services.clear())
    }

    async fn save_access_token(&self, token: &AccessToken) -> StoreResult<()> {
        self.with(|i| {
            i.access_tokens.insert(token.token.clone(), token.clone());
        })
    }

    async fn access_token(&self, token: &str) -> StoreResult<Option<AccessToken>> {
        self.with(|i| i.access_tokens.get(token).cloned())
    }

    async fn delete_access_token(&self, token: &str) -> StoreResult<bool> {
        self.with(|i| i.access_tokens.remove(token).is_some())
    }

    async fn clear_access_tokens(&self) -> StoreResult<()> {
        self.with(|i| i.access_tokens.clear())
    }

    async fn save_client(&self, client: &OAuthClient) -> StoreResult<()> {
        self.with(|i| {
            i.clients.insert(client.client_id.clone(), client.clone());
        })
    }

    async fn client(&self, client_id: &str) -> StoreResult<Option<OAuthClient>> {
        self.with(|i| i.clients.get(client_id).cloned())
    }

    async fn save_oauth_token(&self, token: &OAuthToken) -> StoreResult<()> {
        self.with(|i| {
            i.oauth_tokens
                .insert(token.access_token.clone(), token.clone());
        })
    }

    async fn oauth_token(&self, access_token: &str) -> StoreResult<Option<OAuthToken>> {
        self.with(|i| i.oauth_tokens.get(access_token).cloned())
    }

    async fn delete_oauth_token(&self, access_token: &str) -> StoreResult<bool> {
        self.with(|i| i.oauth_tokens.remove(access_token).is_some())
    }

    async fn find_token(&self, token: &str) -> StoreResult<Option<StoredToken>> {
        self.with(|i| {
            i.access_tokens
                .get(token)
                .cloned()
                .map(StoredToken::Rpc)
                .or_else(|| i.oauth_tokens.get(token).cloned().map(StoredToken::OAuth))
        })
    }
}
