//! Persistent state behind one trait: the service registry, XML-RPC access tokens and
//! OAuth2 clients/tokens. SQLite is the default backend ([`sqlite::SqliteStore`]);
//! `postgresql://` URLs select [`postgres::PostgresStore`] (several instances on one
//! database); [`memory::MemoryStore`] serves fast tests. Handlers only ever see `Arc<dyn Store>`.

pub mod cached;
pub mod changes;
pub mod memory;
pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;

/// A registered OWS service, as the original stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Unique, sanitized name: the `{name}` of `/ows/proxy/{name}`.
    pub name: String,
    /// Backend URL (`scheme://netloc/path`).
    pub url: String,
    /// Service type as registered (`WPS`, `wps`, `wms`, …) and what the proxy makes of it.
    pub service_type: ServiceType,
    /// Public URL written into rewritten capabilities instead of the proxy URL; may be empty.
    pub purl: String,
    /// Registered as public: every request passes without a token.
    pub public: bool,
    /// How protected requests prove their right.
    pub auth: Auth,
    /// Check the backend's TLS certificate.
    pub verify: bool,
}

impl Service {
    /// A service with the original's defaults (`WPS`, token auth, verified TLS).
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        Service {
            name: name.into(),
            url: url.into(),
            service_type: "WPS".into(),
            purl: String::new(),
            public: false,
            auth: Auth::Token,
            verify: true,
        }
    }

    /// True when no credential is needed for any request to this service.
    pub fn is_public(&self) -> bool {
        self.public || matches!(self.auth, Auth::Other(_))
    }

    /// What kind of service this is, for the proxy's decisions.
    pub fn kind(&self) -> ServiceKind {
        self.service_type.kind
    }
}

/// The kinds of service the proxy treats differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    /// `wps` in any case, or no type: the original's default branch (response filtering).
    Wps,
    /// `wms` in any case: pass-through, capabilities rewritten.
    Wms,
    /// `wfs` in any case: WFS requests only, capabilities rewritten, `Transaction` guarded.
    Wfs,
    /// `wcs` in any case: WCS requests only, capabilities rewritten.
    Wcs,
    /// `wmts` in any case: WMTS requests (key-value or RESTful tiles), capabilities rewritten.
    Wmts,
    /// `ogcapi` in any case: OGC API (Processes, Features, Records) decided on method + path.
    OgcApi,
    /// Anything else: pass-through.
    Other,
}

/// A service type: its kind, and the spelling it was registered with (shown back as is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceType {
    kind: ServiceKind,
    registered: String,
}

impl ServiceType {
    /// The kind.
    pub fn kind(&self) -> ServiceKind {
        self.kind
    }

    /// The type as registered.
    pub fn as_str(&self) -> &str {
        &self.registered
    }
}

impl From<String> for ServiceType {
    fn from(registered: String) -> Self {
        let kind = match registered.to_ascii_lowercase().as_str() {
            "" | "wps" => ServiceKind::Wps,
            "wms" => ServiceKind::Wms,
            "wfs" => ServiceKind::Wfs,
            "wcs" => ServiceKind::Wcs,
            "wmts" => ServiceKind::Wmts,
            "ogcapi" => ServiceKind::OgcApi,
            // Unknown types keep the original's behaviour (pass-through, WPS/WMS requests).
            _ => ServiceKind::Other,
        };
        ServiceType { kind, registered }
    }
}

impl From<&str> for ServiceType {
    fn from(registered: &str) -> Self {
        registered.to_string().into()
    }
}

impl std::ops::Deref for ServiceType {
    type Target = str;
    fn deref(&self) -> &str {
        &self.registered
    }
}

impl serde::Serialize for ServiceType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.registered)
    }
}

/// How a service's protected requests are authorized (`auth` column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// `token`: an access token.
    Token,
    /// `cert`: a verified X.509 client certificate.
    Cert,
    /// Any other stored value: treated as public, like the original 0.6; kept as stored.
    Other(String),
}

impl Auth {
    /// The stored spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Auth::Token => "token",
            Auth::Cert => "cert",
            Auth::Other(s) => s,
        }
    }
}

impl From<String> for Auth {
    fn from(stored: String) -> Self {
        match stored.as_str() {
            "token" => Auth::Token,
            "cert" => Auth::Cert,
            _ => Auth::Other(stored),
        }
    }
}

impl From<&str> for Auth {
    fn from(stored: &str) -> Self {
        stored.to_string().into()
    }
}

impl std::ops::Deref for Auth {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl serde::Serialize for Auth {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An XML-RPC access token (`access_tokens` table of the 0.5 series).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The token string handed to clients.
    pub token: String,
    /// Expiry as seconds since the Unix epoch.
    pub expires_at: i64,
}

/// An OAuth2 client (`client` table of the 0.6 series).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// Public client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// Human-readable name, may be empty.
    pub name: String,
    /// Space-separated redirect URIs.
    pub redirect_uris: String,
    /// Space-separated scopes the client may request.
    pub default_scope: String,
}

/// An issued OAuth2 bearer token (`token` table of the 0.6 series).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthToken {
    /// The bearer token string.
    pub access_token: String,
    /// Client the token was issued to.
    pub client_id: String,
    /// Space-separated granted scopes.
    pub scope: String,
    /// Expiry as seconds since the Unix epoch.
    pub expires_at: i64,
}

/// A token found by [`Store::find_token`]: either kind, from one lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredToken {
    /// An XML-RPC access token.
    Rpc(AccessToken),
    /// An issued OAuth2 token.
    OAuth(OAuthToken),
}

/// What can go wrong in a store: never shown to clients, only logged. Clients hear only
/// which kind it was: [`StoreError::Unavailable`] becomes each endpoint's "temporarily
/// unavailable" answer (503), anything else its internal error (500).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot take the operation now, through no fault of the request or of
    /// twitcher: locked by another process past the wait, read-only, full, or unreachable.
    /// The same request may succeed later.
    #[error("database temporarily unavailable: {0}")]
    Unavailable(String),
    /// The database refused or failed an operation.
    #[error("database error: {0}")]
    Database(String),
    /// The database file or URL cannot be used.
    #[error("cannot open database {location}: {reason}")]
    Open {
        /// File path or URL of the database.
        location: String,
        /// Why it failed.
        reason: String,
    },
}

impl StoreError {
    /// True when retrying later may succeed (the client is told "temporarily unavailable").
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// The connections of a store's pool (`/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open now.
    pub size: usize,
    /// Open connections not in use.
    pub idle: usize,
    /// Most connections the pool opens.
    pub max: usize,
}

/// Result alias of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// Everything twitcher keeps between requests. Implementations must be cheap to share
/// (`Arc<dyn Store>`) and must never block the async runtime.
/// How a table of the originals' schema is brought up to what we need, on either
/// database: created whole when missing, else the `optional` columns are added
/// (nullable, so existing rows just read NULL).
pub(crate) struct TableSpec {
    /// The table's name.
    pub name: &'static str,
    /// Its `CREATE TABLE` (and index) statements for a new database.
    pub ddl: &'static str,
    /// Columns without which the table cannot be one of ours: refuse to open.
    pub required: &'static [&'static str],
    /// Columns added with `ALTER TABLE … ADD COLUMN` when missing, with their types.
    pub optional: &'static [(&'static str, &'static str)],
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks that the database answers (for `/health`).
    async fn ping(&self) -> StoreResult<()>;

    /// News of the changes other processes make to the same database, when this store can
    /// hear them (PostgreSQL); `None` when it cannot (SQLite, memory).
    fn changes(&self) -> Option<std::sync::Arc<changes::ChangeFeed>> {
        None
    }

    /// The state of the store's connection pool, when it has one (for `/metrics`).
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }

    /// Looks a service up by its exact (case-sensitive) name.
    async fn service_by_name(&self, name: &str) -> StoreResult<Option<Service>>;
    /// First service (in insertion order) whose stored URL equals `url`.
    async fn service_by_url(&self, url: &str) -> StoreResult<Option<Service>>;
    /// All services in insertion order.
    async fn list_services(&self) -> StoreResult<Vec<Service>>;
    /// Inserts the service, or updates it in place (keeping its position) when the name exists.
    async fn save_service(&self, service: &Service) -> StoreResult<()>;
    /// Deletes a service; false when there was none of that name.
    async fn delete_service(&self, name: &str) -> StoreResult<bool>;
    /// Deletes every service.
    async fn clear_services(&self) -> StoreResult<()>;

    /// Stores a new XML-RPC access token.
    async fn save_access_token(&self, token: &AccessToken) -> StoreResult<()>;
    /// Looks an XML-RPC access token up.
    async fn access_token(&self, token: &str) -> StoreResult<Option<AccessToken>>;
    /// Deletes an XML-RPC access token; false when it did not exist.
    async fn delete_access_token(&self, token: &str) -> StoreResult<bool>;
    /// Deletes every XML-RPC access token.
    async fn clear_access_tokens(&self) -> StoreResult<()>;

    /// Stores a new OAuth2 client.
    async fn save_client(&self, client: &OAuthClient) -> StoreResult<()>;
    /// Looks an OAuth2 client up by id.
    async fn client(&self, client_id: &str) -> StoreResult<Option<OAuthClient>>;
    /// Stores an issued OAuth2 token.
    async fn save_oauth_token(&self, token: &OAuthToken) -> StoreResult<()>;
    /// Looks an issued OAuth2 token up.
    async fn oauth_token(&self, access_token: &str) -> StoreResult<Option<OAuthToken>>;
    /// Deletes an issued OAuth2 token; false when it did not exist.
    async fn delete_oauth_token(&self, access_token: &str) -> StoreResult<bool>;

    /// Looks a presented token up among XML-RPC and OAuth2 tokens in one lookup (an
    /// XML-RPC token wins when both tables hold the string).
    async fn find_token(&self, token: &str) -> StoreResult<Option<StoredToken>>;
}

/// Opens the store `sqlalchemy.url` names, creating or upgrading the schema.
pub fn open(url: &crate::config::DatabaseUrl) -> StoreResult<std::sync::Arc<dyn Store>> {
    match url {
        crate::config::DatabaseUrl::Sqlite(path) => {
            Ok(std::sync::Arc::new(sqlite::SqliteStore::open(path)?))
        }
        crate::config::DatabaseUrl::Postgres(url) => {
            Ok(std::sync::Arc::new(postgres::PostgresStore::open(url)?))
        }
    }
}

/// A database URL fit for logs: `postgresql://user:***@host/db`.
fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}
