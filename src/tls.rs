//! Native HTTPS (SPEC §8): the rustls server configuration built from `[server:main]`
//! (`certfile`, `keyfile`, `client_ca`, `client_verify`), the client-certificate check
//! with RFC 3820 proxy certificates, the handshake of each new connection (under a
//! timeout) and the reload of certificates and roots on SIGHUP.
//!
//! A reload swaps the configuration new connections get; connections already open keep
//! the one they were made with, so nothing is dropped. A reload that fails (a file
//! half-written by a rotation) keeps the previous configuration and logs why.

mod chain;
mod client_auth;
mod der;
mod identity;
mod load;
mod proxy_cert;

use std::io;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::UnixTime;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

pub use chain::{ChainError, ChainVerifier, MAX_CHAIN, MAX_PROXIES};
pub use client_auth::ClientAuth;
pub use identity::ClientIdentity;
pub use load::{TlsError, certificates, private_key, roots};
pub use proxy_cert::ProxyError;

use crate::config::{ClientVerify, TlsSettings};

/// What new connections are served with; replaced whole by a reload.
struct Generation {
    acceptor: TlsAcceptor,
    /// Judges client chains after the handshake (None: no client certificates asked for).
    chain: Option<Arc<ChainVerifier>>,
}

/// Marks every request that came in over twitcher's own HTTPS listener (a request
/// extension), so links handed back name `https`.
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

/// The HTTPS side of the server.
pub struct Tls {
    settings: TlsSettings,
    handshake_timeout: Duration,
    current: RwLock<Arc<Generation>>,
}

/// A handshake that did not complete (the connection is dropped; the listener goes on).
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The client did not finish within the handshake timeout.
    #[error("TLS handshake timed out")]
    Timeout,
    /// rustls or the socket failed (bad certificate, protocol error, reset).
    #[error("TLS handshake failed: {0}")]
    Failed(#[from] io::Error),
}

impl Tls {
    /// Reads the files named by `settings` (errors name the file). A client gets
    /// `handshake_timeout` to complete its handshake.
    pub fn load(settings: &TlsSettings, handshake_timeout: Duration) -> Result<Self, TlsError> {
        let generation = build(settings)?;
        Ok(Tls {
            settings: settings.clone(),
            handshake_timeout,
            current: RwLock::new(Arc::new(generation)),
        })
    }

    /// Reads the files again; new connections use them, open ones are not touched. On
    /// error the previous configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let generation = Arc::new(build(&self.settings)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = generation;
        Ok(())
    }

    /// Runs the server side of the handshake on `stream` (within the handshake timeout)
    /// and judges the client's certificate chain, if one was sent: the identity is
    /// `Some` only for a chain that verifies.
    pub async fn accept<IO>(
        &self,
        stream: IO,
    ) -> Result<(TlsStream<IO>, Option<ClientIdentity>), HandshakeError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let generation = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let handshake = generation.acceptor.accept(stream);
        let stream = tokio::time::timeout(self.handshake_timeout, handshake)
            .await
            .map_err(|_| HandshakeError::Timeout)??;
        let identity = match (&generation.chain, stream.get_ref().1.peer_certificates()) {
            (Some(chain), Some([leaf, intermediates @ ..])) => {
                // With `required` this repeats the handshake's check (microseconds, once
                // per connection) instead of carrying its result out of rustls.
                match chain.verify(leaf, intermediates, UnixTime::now()) {
                    Ok(identity) => {
                        tracing::info!(
                            subject = %identity.subject,
                            proxies = identity.proxies,
                            "client certificate verified"
                        );
                        Some(identity)
                    }
                    Err(e) => {
                        tracing::warn!(reason = %e, "client certificate not accepted");
                        None
                    }
                }
            }
            _ => None,
        };
        Ok((stream, identity))
    }
}

/// Reloads `tls` whenever the process gets SIGHUP (ESGF host certificates and CA bundles
/// are rotated often). Runs until the signal stream ends.
pub async fn reload_on_hangup(tls: Arc<Tls>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: TLS files are not reloaded");
            return;
        };
        while hangups.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificates and client roots reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: TLS reload failed, keeping the previous files")
                }
            }
        }
    }
    #[cfg(not(unix))]
    drop(tls);
}

/// The rustls server configuration of `settings`, with ring as the crypto provider.
fn build(settings: &TlsSettings) -> Result<Generation, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Server)?;
    let certs = load::certificates(&settings.certfile).map_err(|e| e.at("certfile"))?;
    let key = load::private_key(&settings.keyfile).map_err(|e| e.at("keyfile"))?;
    let (builder, chain) = match (settings.client_verify, &settings.client_ca) {
        (ClientVerify::None, _) | (_, None) => (builder.with_no_client_auth(), None),
        (verify, Some(ca)) => {
            let roots = Arc::new(load::roots(ca).map_err(|e| e.at("client_ca"))?);
            let chain = Arc::new(ChainVerifier::new(roots, provider)?);
            let mandatory = verify == ClientVerify::Required;
            let auth = Arc::new(ClientAuth::new(chain.clone(), mandatory));
            (builder.with_client_cert_verifier(auth), Some(chain))
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(TlsError::Server)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Generation {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        chain,
    })
}
