//! The shared state every handler sees: settings, store and the upstream HTTP clients.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::proxy::caps_cache::CapsCache;
use crate::store::Store;
use crate::tokens::{KeyError, Tokens};

/// Shared application state: one pointer, so the clone every handler call makes is a
/// single reference count.
#[derive(Clone)]
pub struct App(Arc<AppState>);

/// What [`App`] points to.
pub struct AppState {
    /// Settings, parsed once.
    pub config: Arc<Config>,
    /// Registry and token store.
    pub store: Arc<dyn Store>,
    /// Clients for backend requests.
    pub upstream: Upstream,
    /// OAuth2 token issuing and checking.
    pub tokens: Arc<Tokens>,
    /// Finished GetCapabilities answers (`twitcher.ows_proxy_capabilities_cache`).
    pub capabilities: Option<Arc<CapsCache>>,
    /// Request counters for `/metrics` (`twitcher.metrics`).
    pub metrics: Option<Arc<Metrics>>,
}

/// Two pooled clients: one checks backend certificates, one does not (services
/// registered with `verify = false`, or `twitcher.ows_proxy_ssl_verify = false`).
#[derive(Clone)]
pub struct Upstream {
    verifying: reqwest::Client,
    insecure: reqwest::Client,
}

/// The state cannot be built from the settings.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Building the HTTP clients failed (TLS backend could not start).
    #[error("cannot create the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// Token key material is missing or unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl Upstream {
    /// Clients with the configured timeouts; redirects are passed back, never followed.
    pub fn new(connect_timeout: Duration, read_timeout: Duration) -> Result<Self, reqwest::Error> {
        let build = |verify: bool| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(connect_timeout)
                .read_timeout(read_timeout)
                .danger_accept_invalid_certs(!verify)
                .pool_idle_timeout(Duration::from_secs(60))
                // The proxy forwards the client's headers; reqwest must not add its own
                // Accept-Encoding handling or decompress bodies we pass on.
                .no_gzip()
                .no_brotli()
                .no_deflate()
                .no_zstd()
                .build()
        };
        Ok(Upstream {
            verifying: build(true)?,
            insecure: build(false)?,
        })
    }

    /// The client for a backend, honouring the service's and the global verify flag.
    pub fn client(&self, verify: bool) -> &reqwest::Client {
        if verify {
            &self.verifying
        } else {
            &self.insecure
        }
    }
}

impl App {
    /// State for the given settings and store.
    pub fn new(config: Config, store: Arc<dyn Store>) -> Result<Self, StartupError> {
        let upstream = Upstream::new(config.connect_timeout, config.read_timeout)?;
        let tokens = Arc::new(Tokens::from_settings(&config.token)?);
        let capabilities = config
            .capabilities_cache
            .map(|ttl| Arc::new(CapsCache::new(ttl)));
        let metrics = config.metrics.then(|| Arc::new(Metrics::new()));
        Ok(App(Arc::new(AppState {
            config: Arc::new(config),
            store,
            upstream,
            tokens,
            capabilities,
            metrics,
        })))
    }
}

impl std::ops::Deref for App {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.0
    }
}
