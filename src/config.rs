//! Typed, validated settings read once from the original's PasteDeploy INI file
//! (`[app:main]` with `sqlalchemy.url` and `twitcher.*`, `[server:main]` with the listen
//! address). Every error names the file and the key.

pub mod ini;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::HeaderName;
use url::Url;

use self::ini::Ini;

/// Where the database lives, from `sqlalchemy.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite:///PATH` (relative to the working directory) or `sqlite:////ABS/PATH`.
    Sqlite(PathBuf),
    /// `postgresql://…`, kept verbatim for the PostgreSQL store.
    Postgres(String),
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "SQLite database {}", path.display()),
            // The URL may carry a password: only its scheme is shown.
            DatabaseUrl::Postgres(_) => write!(f, "PostgreSQL database"),
        }
    }
}

/// How OAuth2 access tokens are made and checked (`twitcher.token.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// 30 random characters, stored in the database.
    RandomToken,
    /// HS256 JWT signed with `twitcher.token.secret`.
    CustomToken,
    /// RS256 JWT signed with `twitcher.token.keyfile`.
    SignedToken,
    /// RS256 JWT issued by Keycloak, only validated.
    KeycloakToken,
}

/// Settings of the OAuth2 token endpoint (`twitcher.token.*`, `keycloak.*`).
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// Kind of tokens issued and accepted.
    pub kind: TokenType,
    /// Lifetime of issued tokens.
    pub expires_in: Duration,
    /// `iss` claim of JWTs.
    pub issuer: String,
    /// HS256 secret of `custom_token`.
    pub secret: Option<String>,
    /// PEM private key of `signed_token`.
    pub keyfile: Option<PathBuf>,
    /// PEM certificate/public key of `signed_token`.
    pub certfile: Option<PathBuf>,
    /// Public key of `keycloak_token`.
    pub keycloak_secret: Option<String>,
    /// Base URL of Keycloak.
    pub keycloak_url: Option<String>,
    /// `aud` a Keycloak token must carry (`keycloak.token.audience`; unchecked when unset).
    pub keycloak_audience: Option<String>,
}

/// How the native HTTPS listener checks client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientVerify {
    /// No client certificate requested.
    None,
    /// Requested, checked when sent.
    Optional,
    /// Connection refused without a valid certificate.
    Required,
}

/// How client connections are held (`[server:main]`): how long a client may take to send a
/// request's headers or sit idle between requests, how many connections are served at
/// once, and how long a shutdown waits for requests in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// Time from a connection's first byte (or a new request's first byte) until its
    /// headers are complete (`header_read_timeout`, default 10 s); also how long a new
    /// connection may stay silent.
    pub header_read_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request
    /// (`keepalive_timeout`, default 60 s; None: `0`, no keep-alive).
    pub keepalive_timeout: Option<Duration>,
    /// Connections served at once (`connection_limit`; None: 10 000, or less when the
    /// open-files limit is lower). Further clients wait in the listen backlog.
    pub connection_limit: Option<usize>,
    /// How long SIGTERM/SIGINT waits for requests in flight before closing them
    /// (`graceful_timeout`, default 30 s; zero: close at once).
    pub graceful_timeout: Duration,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            header_read_timeout: Duration::from_secs(10),
            keepalive_timeout: Some(Duration::from_secs(60)),
            connection_limit: None,
            graceful_timeout: Duration::from_secs(30),
        }
    }
}

/// The native HTTPS listener (`[server:main]` `https_listen`, `certfile`, …).
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Address of the HTTPS listener.
    pub listen: SocketAddr,
    /// Server certificate chain (PEM).
    pub certfile: PathBuf,
    /// Server private key (PEM).
    pub keyfile: PathBuf,
    /// Trust roots for client certificates: a PEM bundle or a directory of PEM files.
    pub client_ca: Option<PathBuf>,
    /// Client certificate policy.
    pub client_verify: ClientVerify,
}

/// Everything the server needs to know, parsed once at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file these settings came from (None: built-in defaults).
    pub source: Option<PathBuf>,
    /// Plain HTTP listen address.
    pub listen: SocketAddr,
    /// Native HTTPS, when configured.
    pub tls: Option<TlsSettings>,
    /// Timeouts and limits of client connections.
    pub connections: ConnectionSettings,
    /// Database location.
    pub database: DatabaseUrl,
    /// Public base URL of twitcher (`twitcher.url`), used by the frontpage.
    pub url: Url,
    /// Serve XML-RPC at `/RPC2`.
    pub rpcinterface: bool,
    /// Basic-auth user of the management interfaces (None: no auth on /RPC2).
    pub username: Option<String>,
    /// Basic-auth password of the management interfaces.
    pub password: Option<String>,
    /// `twitcher.basicauth` (the 0.6 switch; kept for completeness).
    pub basicauth: bool,
    /// Check access to OWS services before proxying.
    pub ows_security: bool,
    /// Serve the OWS proxy.
    pub ows_proxy: bool,
    /// Another server proxies; twitcher only decides (`/ows/verify`).
    pub ows_proxy_delegate: bool,
    /// Path prefix of the proxy, `/ows` by default, without trailing slash.
    pub protected_path: String,
    /// Check backend TLS certificates (a service can still turn it off for itself).
    pub ssl_verify: bool,
    /// Time allowed to connect to a backend.
    pub connect_timeout: Duration,
    /// Time allowed between two reads from a backend.
    pub read_timeout: Duration,
    /// Forward twitcher's credentials (tokens, `X-Ssl-*`) to backends.
    pub forward_credentials: bool,
    /// Header carrying a verified client certificate's subject DN to backends
    /// (`twitcher.ows_proxy_forward_client_dn`; always removed from client requests).
    pub forward_client_dn: Option<HeaderName>,
    /// How long the registry and used tokens are remembered in memory when the database
    /// may be changed by another process (`twitcher.store_cache_seconds`, default 1; 0:
    /// every request reads the database). Writes through this server take effect at once.
    pub store_cache: Option<Duration>,
    /// Keep finished GetCapabilities answers this long
    /// (`twitcher.ows_proxy_capabilities_cache`, seconds; default: no cache).
    pub capabilities_cache: Option<Duration>,
    /// Rewrite the capabilities of `wms` services to lead back through the proxy
    /// (`twitcher.ows_proxy_rewrite_wms`; false keeps the original's pass-through).
    pub rewrite_wms: bool,
    /// Addresses whose `X-Ssl-Client-Verify` / `X-Forwarded-Proto` headers are believed
    /// (None: `X-Ssl-Client-Verify` from anyone, `X-Forwarded-Proto` from loopback).
    pub trusted_proxies: Option<Vec<IpAddr>>,
    /// Largest request body read to parse an OWS XML request or an XML-RPC call.
    pub max_body_size: usize,
    /// Largest JSON answer of an `ogcapi` service whose links are rewritten to the proxy
    /// (`twitcher.ows_proxy_max_json_rewrite`); a larger one passes unchanged.
    pub max_json_rewrite: usize,
    /// Serve the OAuth2 endpoints.
    pub oauth: bool,
    /// Reading the REST registry also needs credentials.
    pub rest_read_auth: bool,
    /// OAuth2 token settings.
    pub token: TokenSettings,
    /// Scopes given to new OAuth2 clients.
    pub default_client_scope: String,
    /// One access log line per request (`twitcher.access_log`, default true).
    pub access_log: bool,
    /// Serve `/metrics` (`twitcher.metrics`, default false).
    pub metrics: bool,
    /// Requests handled at once; more are refused with 503
    /// (`twitcher.max_concurrent_requests`, default 1024; None: `0`, no limit).
    pub max_concurrent_requests: Option<usize>,
    /// Time a management request (not an OWS one) may take (`twitcher.request_timeout`,
    /// default 60 s).
    pub request_timeout: Duration,
}

/// A configuration that cannot be used, naming the file and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct ConfigError {
    /// Config file (or `<defaults>`).
    pub file: String,
    /// Offending key, section or line.
    pub key: String,
    /// What is wrong and what would be right.
    pub message: String,
}

/// Keys of `[app:main]` that belong to Pyramid or other parts of the original stack and
/// are ignored without a warning.
const FOREIGN_PREFIXES: &[&str] = &[
    "pyramid.",
    "sqlalchemy.",
    "retry.",
    "tm.",
    "exclog.",
    "debugtoolbar.",
];
const FOREIGN_KEYS: &[&str] = &["use", "filter-with", "twitcher.adapter"];

const DEFAULT_MAX_BODY: usize = 10 * 1024 * 1024;
const DEFAULT_MAX_JSON_REWRITE: usize = 4 * 1024 * 1024;

impl Default for Config {
    fn default() -> Self {
        Config {
            source: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            tls: None,
            connections: ConnectionSettings::default(),
            database: DatabaseUrl::Sqlite(PathBuf::from("twitcher.sqlite")),
            url: Url::parse("http://localhost:8000").expect("static URL"),
            rpcinterface: true,
            username: None,
            password: None,
            basicauth: false,
            ows_security: true,
            ows_proxy: true,
            ows_proxy_delegate: false,
            protected_path: "/ows".into(),
            ssl_verify: true,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(300),
            forward_credentials: false,
            forward_client_dn: None,
            rewrite_wms: true,
            store_cache: Some(Duration::from_secs(1)),
            capabilities_cache: None,
            trusted_proxies: None,
            max_body_size: DEFAULT_MAX_BODY,
            max_json_rewrite: DEFAULT_MAX_JSON_REWRITE,
            oauth: true,
            rest_read_auth: false,
            token: TokenSettings {
                kind: TokenType::RandomToken,
                expires_in: Duration::from_secs(3600),
                issuer: "twitcher".into(),
                secret: None,
                keyfile: None,
                certfile: None,
                keycloak_secret: None,
                keycloak_url: None,
                keycloak_audience: None,
            },
            default_client_scope: "compute register".into(),
            access_log: true,
            metrics: false,
            max_concurrent_requests: Some(1024),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// A loaded configuration plus the warnings (unknown keys) to log once the logger runs.
#[derive(Debug)]
pub struct Loaded {
    /// The settings.
    pub config: Config,
    /// One line per ignored key.
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: "-".into(),
            message: format!("cannot read the file: {e}"),
        })?;
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let here = absolute.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_ini_str(&text, &file, &here, &absolute)
    }

    /// Parses config text; `here` is what `%(here)s` expands to.
    pub fn from_ini_str(
        text: &str,
        file: &str,
        here: &Path,
        source: &Path,
    ) -> Result<Loaded, ConfigError> {
        let err = |key: &str, message: String| ConfigError {
            file: file.to_string(),
            key: key.to_string(),
            message,
        };
        let ini = Ini::parse(text).map_err(|e| err(&format!("line {}", e.line), e.message))?;
        let predefined = HashMap::from([
            ("here".to_string(), here.display().to_string()),
            ("__file__".to_string(), source.display().to_string()),
        ]);
        let resolve = |section: &str| {
            ini.resolved(section, &predefined)
                .map_err(|e| err(&format!("[{section}] line {}", e.line), e.message))
        };
        if ini.section("app:main").is_none() {
            return Err(err(
                "[app:main]",
                "section missing: this does not look like a twitcher config".into(),
            ));
        }
        let app = resolve("app:main")?;
        let server = resolve("server:main")?;

        let mut config = Config {
            source: Some(source.to_path_buf()),
            ..Config::default()
        };
        let mut warnings = Vec::new();
        let mut settings = Settings {
            file,
            values: HashMap::new(),
        };
        for (key, value, _) in app {
            settings.values.insert(key, value);
        }
        for key in settings.values.keys() {
            let known = KNOWN_APP_KEYS.contains(&key.as_str())
                || FOREIGN_KEYS.contains(&key.as_str())
                || FOREIGN_PREFIXES.iter().any(|p| key.starts_with(p));
            if !known {
                warnings.push(format!(
                    "{file}: unknown key {key} in [app:main] is ignored"
                ));
            }
        }
        warnings.sort();

        if let Some(url) = settings.string("sqlalchemy.url") {
            config.database = parse_database_url(&url).map_err(|m| err("sqlalchemy.url", m))?;
        }
        if let Some(url) = settings.string("twitcher.url") {
            config.url = parse_public_url(&url).map_err(|m| err("twitcher.url", m))?;
        }
        settings.bool("twitcher.rpcinterface", &mut config.rpcinterface)?;
        config.username = settings.string("twitcher.username");
        config.password = settings.string("twitcher.password");
        settings.bool("twitcher.basicauth", &mut config.basicauth)?;
        settings.bool("twitcher.ows_security", &mut config.ows_security)?;
        settings.bool("twitcher.ows_proxy", &mut config.ows_proxy)?;
        settings.bool(
            "twitcher.ows_proxy_delegate",
            &mut config.ows_proxy_delegate,
        )?;
        if let Some(path) = settings.string("twitcher.ows_proxy_protected_path") {
            config.protected_path = parse_protected_path(&path)
                .map_err(|m| err("twitcher.ows_proxy_protected_path", m))?;
        }
        settings.bool("twitcher.ows_proxy_ssl_verify", &mut config.ssl_verify)?;
        settings.seconds(
            "twitcher.ows_proxy_connect_timeout",
            &mut config.connect_timeout,
        )?;
        settings.seconds("twitcher.ows_proxy_read_timeout", &mut config.read_timeout)?;
        settings.bool(
            "twitcher.ows_proxy_forward_credentials",
            &mut config.forward_credentials,
        )?;
        settings.bool("twitcher.ows_proxy_rewrite_wms", &mut config.rewrite_wms)?;
        if let Some(name) = settings.string("twitcher.ows_proxy_forward_client_dn") {
            let header = HeaderName::try_from(name.trim()).map_err(|_| {
                err(
                    "twitcher.ows_proxy_forward_client_dn",
                    format!("{name:?} is not a header name"),
                )
            })?;
            config.forward_client_dn = Some(header);
        }
        config.capabilities_cache =
            settings.optional_seconds("twitcher.ows_proxy_capabilities_cache")?;
        if settings.string("twitcher.store_cache_seconds").is_some() {
            config.store_cache = settings.optional_seconds("twitcher.store_cache_seconds")?;
        }
        if let Some(list) = settings.string("twitcher.trusted_proxies") {
            let addrs = list
                .split([' ', ',', '\n'])
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<IpAddr>().map_err(|_| {
                        err(
                            "twitcher.trusted_proxies",
                            format!("{s:?} is not an IP address"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            config.trusted_proxies = Some(addrs);
        }
        if let Some(size) = settings.string("twitcher.max_body_size") {
            config.max_body_size =
                parse_size(&size).map_err(|m| err("twitcher.max_body_size", m))?;
        }
        if let Some(size) = settings.string("twitcher.ows_proxy_max_json_rewrite") {
            config.max_json_rewrite =
                parse_size(&size).map_err(|m| err("twitcher.ows_proxy_max_json_rewrite", m))?;
        }
        settings.bool("twitcher.oauth", &mut config.oauth)?;
        settings.bool("twitcher.rest_read_auth", &mut config.rest_read_auth)?;
        if let Some(kind) = settings.string("twitcher.token.type") {
            config.token.kind = match kind.as_str() {
                "random_token" => TokenType::RandomToken,
                "custom_token" => TokenType::CustomToken,
                "signed_token" => TokenType::SignedToken,
                "keycloak_token" => TokenType::KeycloakToken,
                other => {
                    return Err(err(
                        "twitcher.token.type",
                        format!(
                            "{other:?} is not one of random_token, custom_token, signed_token, keycloak_token"
                        ),
                    ));
                }
            };
        }
        settings.seconds("twitcher.token.expires_in", &mut config.token.expires_in)?;
        if let Some(issuer) = settings.string("twitcher.token.issuer") {
            config.token.issuer = issuer;
        }
        config.token.secret = settings.string("twitcher.token.secret");
        config.token.keyfile = settings
            .string("twitcher.token.keyfile")
            .map(|p| here.join(p));
        config.token.certfile = settings
            .string("twitcher.token.certfile")
            .map(|p| here.join(p));
        config.token.keycloak_secret = settings.string("keycloak.token.secret");
        config.token.keycloak_url = settings.string("keycloak.url");
        config.token.keycloak_audience = settings.string("keycloak.token.audience");
        if let Some(scope) = settings.string("twitcher.oauth.default_scope") {
            config.default_client_scope = scope;
        }
        settings.bool("twitcher.access_log", &mut config.access_log)?;
        settings.bool("twitcher.metrics", &mut config.metrics)?;
        if let Some(max) = settings.string("twitcher.max_concurrent_requests") {
            let max = max.parse::<usize>().map_err(|_| {
                err(
                    "twitcher.max_concurrent_requests",
                    format!("{max:?} is not a number of requests (0: no limit)"),
                )
            })?;
            config.max_concurrent_requests = (max > 0).then_some(max);
        }
        settings.seconds("twitcher.request_timeout", &mut config.request_timeout)?;

        let server: HashMap<String, String> = server.into_iter().map(|(k, v, _)| (k, v)).collect();
        config.listen =
            parse_listen(&server).map_err(|(key, m)| err(&format!("[server:main] {key}"), m))?;
        config.tls =
            parse_tls(&server, here).map_err(|(key, m)| err(&format!("[server:main] {key}"), m))?;
        config.connections = parse_connections(file, server)?;
        Ok(Loaded { config, warnings })
    }
}

/// Every `[app:main]` key twitcher reads.
const KNOWN_APP_KEYS: &[&str] = &[
    "twitcher.url",
    "twitcher.rpcinterface",
    "twitcher.username",
    "twitcher.password",
    "twitcher.basicauth",
    "twitcher.ows_security",
    "twitcher.ows_proxy",
    "twitcher.ows_proxy_delegate",
    "twitcher.ows_proxy_protected_path",
    "twitcher.ows_proxy_ssl_verify",
    "twitcher.ows_proxy_connect_timeout",
    "twitcher.ows_proxy_read_timeout",
    "twitcher.ows_proxy_forward_credentials",
    "twitcher.ows_proxy_rewrite_wms",
    "twitcher.ows_proxy_forward_client_dn",
    "twitcher.store_cache_seconds",
    "twitcher.ows_proxy_capabilities_cache",
    "twitcher.trusted_proxies",
    "twitcher.max_body_size",
    "twitcher.ows_proxy_max_json_rewrite",
    "twitcher.oauth",
    "twitcher.oauth.default_scope",
    "twitcher.rest_read_auth",
    "twitcher.token.type",
    "twitcher.token.expires_in",
    "twitcher.token.issuer",
    "twitcher.token.secret",
    "twitcher.token.keyfile",
    "twitcher.token.certfile",
    "keycloak.url",
    "keycloak.token.secret",
    "keycloak.token.audience",
    "twitcher.access_log",
    "twitcher.metrics",
    "twitcher.max_concurrent_requests",
    "twitcher.request_timeout",
];

struct Settings<'a> {
    file: &'a str,
    values: HashMap<String, String>,
}

impl Settings<'_> {
    /// A non-empty value (the original treats `key =` like an absent key).
    fn string(&self, key: &str) -> Option<String> {
        self.values
            .get(key)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn error(&self, key: &str, message: String) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            key: key.to_string(),
            message,
        }
    }

    fn bool(&self, key: &str, target: &mut bool) -> Result<(), ConfigError> {
        if let Some(value) = self.string(key) {
            *target = parse_bool(&value).ok_or_else(|| {
                self.error(
                    key,
                    format!("{value:?} is not a boolean (use true/false, yes/no, on/off, 1/0)"),
                )
            })?;
        }
        Ok(())
    }

    /// A number of seconds where 0 (or an empty value) means "off".
    fn optional_seconds(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        let Some(value) = self.string(key).filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        let secs: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s >= 0.0 && *s < 1e9)
            .ok_or_else(|| {
                self.error(
                    key,
                    format!("{value:?} is not a number of seconds (0 turns it off)"),
                )
            })?;
        Ok((secs > 0.0).then(|| Duration::from_secs_f64(secs)))
    }

    fn seconds(&self, key: &str, target: &mut Duration) -> Result<(), ConfigError> {
        if let Some(value) = self.string(key) {
            let secs: f64 = value
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s < 1e9)
                .ok_or_else(|| {
                    self.error(
                        key,
                        format!("{value:?} is not a positive number of seconds"),
                    )
                })?;
            *target = Duration::from_secs_f64(secs);
        }
        Ok(())
    }
}

/// Pyramid's `asbool`: true for true/yes/on/y/t/1, false for false/no/off/n/f/0.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "y" | "t" | "1" => Some(true),
        "false" | "no" | "off" | "n" | "f" | "0" | "" => Some(false),
        _ => None,
    }
}

fn parse_database_url(url: &str) -> Result<DatabaseUrl, String> {
    if let Some(path) = url.strip_prefix("sqlite:///") {
        if path.is_empty() || path == ":memory:" {
            return Err(
                "an in-memory SQLite database would lose every registration; give a file path"
                    .into(),
            );
        }
        return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
    }
    if url.starts_with("postgresql://")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql+")
    {
        return Ok(DatabaseUrl::Postgres(url.to_string()));
    }
    Err(format!(
        "{url:?} is not supported: use sqlite:///PATH or postgresql://…"
    ))
}

/// `twitcher.url`. The original used the text as it was, so `localhost` or
/// `localhost:8000` (no scheme) started it: those mean `http://…`. (`Url` would read
/// `localhost:8000` as a URL of the scheme `localhost`.)
fn parse_public_url(value: &str) -> Result<Url, String> {
    let with_scheme = if value.contains("://") {
        value.to_string()
    } else {
        format!("http://{}", value.trim_start_matches('/'))
    };
    Url::parse(&with_scheme).map_err(|e| format!("{value:?} is not a URL: {e}"))
}

fn parse_protected_path(path: &str) -> Result<String, String> {
    let trimmed = path.trim_end_matches('/');
    if !trimmed.starts_with('/') || trimmed.len() < 2 || trimmed.contains(['?', '#', ' ']) {
        return Err(format!("{path:?} must be an absolute path like /ows"));
    }
    Ok(trimmed.to_string())
}

fn parse_size(value: &str) -> Result<usize, String> {
    let v = value.trim();
    let (digits, factor) = match v.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((pos, _)) => {
            let factor = match v[pos..].trim().to_ascii_lowercase().as_str() {
                "k" | "kb" | "kib" => 1024,
                "m" | "mb" | "mib" => 1024 * 1024,
                "g" | "gb" | "gib" => 1024 * 1024 * 1024,
                _ => return Err(format!("{value:?} is not a size (bytes, or with K/M/G)")),
            };
            (&v[..pos], factor)
        }
        None => (v, 1),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{value:?} is not a size (bytes, or with K/M/G)"))?;
    n.checked_mul(factor)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{value:?} is out of range"))
}

fn parse_addr(host: &str, port: &str) -> Result<SocketAddr, String> {
    let port: u16 = port
        .trim()
        .parse()
        .map_err(|_| format!("{port:?} is not a port number"))?;
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    let host = if host == "*" || host.is_empty() {
        "0.0.0.0"
    } else {
        host
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| format!("cannot resolve host {host:?}"))
}

fn split_host_port(value: &str) -> Result<(&str, &str), String> {
    value
        .rsplit_once(':')
        .ok_or_else(|| format!("{value:?} is not HOST:PORT"))
}

fn parse_listen(server: &HashMap<String, String>) -> Result<SocketAddr, (&'static str, String)> {
    let defaults = Config::default().listen;
    if let Some(listen) = server.get("listen").filter(|v| !v.trim().is_empty()) {
        // waitress accepts several space-separated addresses; twitcher serves the first.
        let first = listen.split_whitespace().next().unwrap_or_default();
        let (host, port) = split_host_port(first).map_err(|m| ("listen", m))?;
        return parse_addr(host, port).map_err(|m| ("listen", m));
    }
    let host = server
        .get("host")
        .map(String::as_str)
        .unwrap_or("127.0.0.1");
    match server.get("port") {
        Some(port) => parse_addr(host, port).map_err(|m| ("port", m)),
        None => parse_addr(host, &defaults.port().to_string()).map_err(|m| ("host", m)),
    }
}

fn parse_connections(
    file: &str,
    server: HashMap<String, String>,
) -> Result<ConnectionSettings, ConfigError> {
    let settings = Settings {
        file,
        values: server,
    };
    let in_section = |e: ConfigError| ConfigError {
        key: format!("[server:main] {}", e.key),
        ..e
    };
    let mut connections = ConnectionSettings::default();
    settings
        .seconds("header_read_timeout", &mut connections.header_read_timeout)
        .map_err(in_section)?;
    if settings.string("keepalive_timeout").is_some() {
        connections.keepalive_timeout = settings
            .optional_seconds("keepalive_timeout")
            .map_err(in_section)?;
    }
    if let Some(limit) = settings.string("connection_limit") {
        let limit = limit
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10_000_000).contains(n))
            .ok_or_else(|| {
                in_section(settings.error(
                    "connection_limit",
                    format!("{limit:?} is not a number of connections (1 or more)"),
                ))
            })?;
        connections.connection_limit = Some(limit);
    }
    if settings.string("graceful_timeout").is_some() {
        connections.graceful_timeout = settings
            .optional_seconds("graceful_timeout")
            .map_err(in_section)?
            .unwrap_or(Duration::ZERO);
    }
    Ok(connections)
}

fn parse_tls(
    server: &HashMap<String, String>,
    here: &Path,
) -> Result<Option<TlsSettings>, (&'static str, String)> {
    let Some(listen) = server.get("https_listen").filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let (host, port) = split_host_port(listen.trim()).map_err(|m| ("https_listen", m))?;
    let listen = parse_addr(host, port).map_err(|m| ("https_listen", m))?;
    let path = |key: &'static str| -> Result<Option<PathBuf>, (&'static str, String)> {
        Ok(server
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(|v| here.join(v)))
    };
    let certfile =
        path("certfile")?.ok_or(("certfile", "required with https_listen".to_string()))?;
    let keyfile = path("keyfile")?.ok_or(("keyfile", "required with https_listen".to_string()))?;
    let client_verify = match server.get("client_verify").map(|v| v.trim()) {
        None | Some("") | Some("none") => ClientVerify::None,
        Some("optional") => ClientVerify::Optional,
        Some("required") => ClientVerify::Required,
        Some(other) => {
            return Err((
                "client_verify",
                format!("{other:?} is not one of none, optional, required"),
            ));
        }
    };
    let client_ca = path("client_ca")?;
    if client_verify != ClientVerify::None && client_ca.is_none() {
        return Err((
            "client_ca",
            "required when client_verify is optional or required".into(),
        ));
    }
    Ok(Some(TlsSettings {
        listen,
        certfile,
        keyfile,
        client_ca,
        client_verify,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Loaded, ConfigError> {
        Config::from_ini_str(
            text,
            "test.ini",
            Path::new("/srv/tw"),
            Path::new("/srv/tw/test.ini"),
        )
    }

    #[test]
    fn reads_the_original_v056_config() {
        let text = include_str!("../fixtures/config/v056-twitcher.ini");
        let loaded = load(text).unwrap();
        let c = loaded.config;
        assert_eq!(c.listen, "127.0.0.1:18056".parse().unwrap());
        assert_eq!(
            c.database,
            DatabaseUrl::Sqlite("/opt/twref/v056/twitcher.sqlite".into())
        );
        assert_eq!(c.url.as_str(), "http://127.0.0.1:18056/");
        assert!(c.rpcinterface && c.ows_security && c.ows_proxy && !c.ows_proxy_delegate);
        assert_eq!(c.protected_path, "/ows");
        assert_eq!(c.username, None);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn reads_the_original_v060_config() {
        let text = include_str!("../fixtures/config/v060-twitcher.ini");
        let c = load(text).unwrap().config;
        assert_eq!(c.listen, "127.0.0.1:18060".parse().unwrap());
        assert_eq!(
            c.database,
            DatabaseUrl::Sqlite("/srv/tw/twitcher.sqlite".into())
        );
        assert_eq!(c.username.as_deref(), Some("demo"));
        assert_eq!(c.token.kind, TokenType::RandomToken);
        assert_eq!(c.token.expires_in, Duration::from_secs(3600));
        assert_eq!(c.token.keyfile, Some(PathBuf::from("/srv/tw/key.pem")));
    }

    #[test]
    fn the_example_config_loads_without_warnings() {
        let loaded = load(include_str!("../fixtures/development.ini")).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(
            loaded.config.database,
            DatabaseUrl::Sqlite("/srv/tw/twitcher.sqlite".into())
        );
        assert_eq!(loaded.config.listen, "127.0.0.1:8000".parse().unwrap());
    }

    #[test]
    fn bad_values_name_file_and_key() {
        let e = load("[app:main]\ntwitcher.ows_security = maybe\n").unwrap_err();
        assert_eq!(e.key, "twitcher.ows_security");
        assert_eq!(
            e.to_string(),
            "test.ini: twitcher.ows_security: \"maybe\" is not a boolean (use true/false, yes/no, on/off, 1/0)"
        );
        let e = load("[app:main]\n[server:main]\nport = 80x\n").unwrap_err();
        assert_eq!(e.key, "[server:main] port");
        let e = load("[app:main]\nsqlalchemy.url = mysql://x\n").unwrap_err();
        assert_eq!(e.key, "sqlalchemy.url");
        let e = load("[server:main]\nport = 1\n").unwrap_err();
        assert_eq!(e.key, "[app:main]");
        let e = load("[app:main]\ntwitcher.token.type = magic\n").unwrap_err();
        assert_eq!(e.key, "twitcher.token.type");
    }

    #[test]
    fn unknown_twitcher_keys_warn_once_each() {
        let loaded =
            load("[app:main]\ntwitcher.nope = 1\npyramid.debug_all = true\nfoo = 2\n").unwrap();
        assert_eq!(
            loaded.warnings,
            vec![
                "test.ini: unknown key foo in [app:main] is ignored".to_string(),
                "test.ini: unknown key twitcher.nope in [app:main] is ignored".to_string()
            ]
        );
    }

    #[test]
    fn listen_forms() {
        let c = load("[app:main]\n[server:main]\nhost = 0.0.0.0\nport = 9000\n")
            .unwrap()
            .config;
        assert_eq!(c.listen, "0.0.0.0:9000".parse().unwrap());
        let c = load("[app:main]\n[server:main]\nlisten = *:8080 [::]:8080\n")
            .unwrap()
            .config;
        assert_eq!(c.listen, "0.0.0.0:8080".parse().unwrap());
        let c = load("[app:main]\n").unwrap().config;
        assert_eq!(c.listen, "127.0.0.1:8000".parse().unwrap());
    }

    #[test]
    fn connection_settings() {
        let c = load("[app:main]\n").unwrap().config;
        assert_eq!(c.connections, ConnectionSettings::default());
        let text = "[app:main]\n[server:main]\nheader_read_timeout = 2.5\nkeepalive_timeout = 0\nconnection_limit = 50\ngraceful_timeout = 0\n";
        let c = load(text).unwrap().config.connections;
        assert_eq!(c.header_read_timeout, Duration::from_millis(2500));
        assert_eq!(c.keepalive_timeout, None);
        assert_eq!(c.connection_limit, Some(50));
        assert_eq!(c.graceful_timeout, Duration::ZERO);
        for (line, key) in [
            (
                "header_read_timeout = 0",
                "[server:main] header_read_timeout",
            ),
            (
                "keepalive_timeout = soon",
                "[server:main] keepalive_timeout",
            ),
            ("connection_limit = 0", "[server:main] connection_limit"),
            ("graceful_timeout = -1", "[server:main] graceful_timeout"),
        ] {
            let e = load(&format!("[app:main]\n[server:main]\n{line}\n")).unwrap_err();
            assert_eq!(e.key, key, "{line}");
        }
    }

    #[test]
    fn asbool_like_pyramid() {
        for t in ["true", "Yes", "ON", "y", "t", "1"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["false", "No", "off", "n", "f", "0"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_bool("2"), None);
    }

    #[test]
    fn twitcher_url_without_a_scheme_is_http() {
        let cases = [
            ("localhost", "http://localhost/"),
            ("localhost:8000", "http://localhost:8000/"),
            (
                "LocalHost:8000/twitcher/",
                "http://localhost:8000/twitcher/",
            ),
            ("127.0.0.1:18056", "http://127.0.0.1:18056/"),
            ("//example.org", "http://example.org/"),
            ("http://127.0.0.1:18056", "http://127.0.0.1:18056/"),
            (
                "https://twitcher.example.org/",
                "https://twitcher.example.org/",
            ),
        ];
        for (given, url) in cases {
            let c = load(&format!("[app:main]\ntwitcher.url = {given}\n"))
                .unwrap_or_else(|e| panic!("{given:?}: {e}"))
                .config;
            assert_eq!(c.url.as_str(), url, "{given:?}");
        }
        for bad in ["localhost:port", "http://", "exa mple.org"] {
            let e = load(&format!("[app:main]\ntwitcher.url = {bad}\n")).unwrap_err();
            assert_eq!(e.key, "twitcher.url", "{bad:?}");
        }
    }

    #[test]
    fn protected_path_and_sizes() {
        let c = load("[app:main]\ntwitcher.ows_proxy_protected_path = /secure/\ntwitcher.max_body_size = 2M\n")
            .unwrap()
            .config;
        assert_eq!(c.protected_path, "/secure");
        assert_eq!(c.max_body_size, 2 * 1024 * 1024);
        assert!(load("[app:main]\ntwitcher.ows_proxy_protected_path = ows\n").is_err());
    }
}
