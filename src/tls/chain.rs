//! Client certificate chains: the standard part (end entity → intermediates → a
//! configured root) is webpki's, through rustls; RFC 3820 proxy certificates in front of
//! the end entity are checked here, link by link, with their signatures verified by the
//! crypto provider's algorithms.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::der;
use super::identity::{ClientIdentity, rfc4514};
use super::proxy_cert::{self, ProxyError};

/// Most proxy certificates accepted in front of an end-entity certificate.
pub const MAX_PROXIES: usize = 8;
/// Most certificates accepted in one chain (proxies, end entity, intermediates).
pub const MAX_CHAIN: usize = 16;

/// Why a client certificate chain is refused (logged; clients get a TLS alert or a 401).
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// More certificates than [`MAX_CHAIN`] or proxies than [`MAX_PROXIES`].
    #[error("the chain is too long ({0} certificates)")]
    TooLong(usize),
    /// A certificate that is not X.509 DER.
    #[error("certificate {0} of the chain cannot be parsed")]
    Unparsable(usize),
    /// Only proxy certificates, no user certificate they descend from.
    #[error("proxy certificates without the user's end-entity certificate")]
    NoEndEntity,
    /// The end-entity certificate does not chain to a configured root (webpki's reason).
    #[error("end-entity certificate refused: {0}")]
    EndEntity(rustls::Error),
    /// A proxy certificate breaks a rule; `level` 1 is the one the user certificate issued.
    #[error("proxy certificate {level} refused: {reason}")]
    Proxy {
        /// Its place counted from the user certificate.
        level: usize,
        /// The rule it breaks.
        reason: ProxyError,
    },
}

impl ChainError {
    /// The TLS-level error (and so the alert) for a refusal during the handshake.
    pub fn to_rustls(&self) -> rustls::Error {
        let cert_error = match self {
            ChainError::EndEntity(e) => return e.clone(),
            ChainError::Proxy {
                reason: ProxyError::Expired,
                ..
            } => CertificateError::Expired,
            ChainError::Proxy {
                reason: ProxyError::NotYetValid,
                ..
            } => CertificateError::NotValidYet,
            ChainError::Proxy {
                reason: ProxyError::Signature,
                ..
            } => CertificateError::BadSignature,
            ChainError::Unparsable(_) => CertificateError::BadEncoding,
            _ => CertificateError::ApplicationVerificationFailure,
        };
        rustls::Error::InvalidCertificate(cert_error)
    }
}

/// Checks client chains against one set of roots.
#[derive(Debug)]
pub struct ChainVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ChainVerifier {
    /// A verifier for these roots, with the provider's signature algorithms.
    pub fn new(
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, rustls::server::VerifierBuilderError> {
        let algorithms = provider.signature_verification_algorithms;
        let webpki = WebPkiClientVerifier::builder_with_provider(roots, provider).build()?;
        Ok(ChainVerifier { webpki, algorithms })
    }

    /// The subjects of the roots (sent to clients as acceptable CAs).
    pub fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    /// The signature algorithms of the crypto provider.
    pub fn algorithms(&self) -> &WebPkiSupportedAlgorithms {
        &self.algorithms
    }

    /// Verifies a chain as a client sent it (leaf first) at `now`; the identity is the
    /// end-entity certificate's subject.
    pub fn verify(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientIdentity, ChainError> {
        let chain: Vec<&CertificateDer<'_>> = std::iter::once(leaf).chain(intermediates).collect();
        if chain.len() > MAX_CHAIN {
            return Err(ChainError::TooLong(chain.len()));
        }
        // Parsed up to the first certificate without a proxy extension: the user's.
        let mut certs = Vec::with_capacity(chain.len());
        for (i, der) in chain.iter().enumerate() {
            let (_, cert) =
                X509Certificate::from_der(der.as_ref()).map_err(|_| ChainError::Unparsable(i))?;
            let info = proxy_cert::proxy_cert_info(&cert);
            let is_user = matches!(info, Ok(None));
            certs.push((cert, info));
            if is_user {
                break;
            }
        }
        let index = certs
            .iter()
            .position(|(_, info)| matches!(info, Ok(None)))
            .ok_or(ChainError::NoEndEntity)?;
        if index > MAX_PROXIES {
            return Err(ChainError::TooLong(chain.len()));
        }
        let rest: Vec<CertificateDer<'_>> =
            chain[index + 1..].iter().map(|c| (*c).clone()).collect();
        self.webpki
            .verify_client_cert(chain[index], &rest, now)
            .map_err(ChainError::EndEntity)?;
        // From the proxy the user certificate issued out to the leaf.
        let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        for i in (0..index).rev() {
            let refuse = |reason| ChainError::Proxy {
                level: index - i,
                reason,
            };
            let (proxy, info) = &certs[i];
            let info = info
                .clone()
                .map_err(refuse)?
                .ok_or(ChainError::NoEndEntity)?;
            let issuer = &certs[i + 1].0;
            proxy_cert::check_link(proxy, info, issuer, i, now_secs).map_err(refuse)?;
            verify_signed_by(chain[i], proxy, issuer, self.algorithms.all).map_err(refuse)?;
        }
        let user = &certs[index].0;
        Ok(ClientIdentity {
            subject: rfc4514(user.subject()),
            proxies: index,
        })
    }

    /// Checks a handshake signature made with a proxy certificate's key, which webpki
    /// will not read (its proxyCertInfo is a critical extension unknown to it).
    pub fn verify_proxy_signature(
        &self,
        message: &[u8],
        leaf: &X509Certificate<'_>,
        dss: &DigitallySignedStruct,
        tls13: bool,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let spki = rustls::pki_types::SubjectPublicKeyInfoDer::from(leaf.public_key().raw);
        if tls13 {
            return rustls::crypto::verify_tls13_signature_with_raw_key(
                message,
                &spki,
                dss,
                &self.algorithms,
            );
        }
        // TLS 1.2: one scheme may stand for several algorithms; the key's decides.
        let (key_alg, key) = der::public_key(leaf.public_key().raw).ok_or(
            rustls::Error::InvalidCertificate(CertificateError::BadEncoding),
        )?;
        let candidates = self
            .algorithms
            .mapping
            .iter()
            .filter(|(scheme, _)| *scheme == dss.scheme)
            .flat_map(|(_, algs)| algs.iter())
            .filter(|alg| alg.public_key_alg_id().as_ref() == key_alg);
        for alg in candidates {
            if alg.verify_signature(key, message, dss.signature()).is_ok() {
                return Ok(HandshakeSignatureValid::assertion());
            }
        }
        Err(rustls::Error::InvalidCertificate(
            CertificateError::BadSignature,
        ))
    }
}

/// Verifies that `issuer`'s key signed `cert` (with the algorithm `cert` names, which
/// must also be the one inside its signed part).
fn verify_signed_by(
    cert: &CertificateDer<'_>,
    parsed: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
    algorithms: &[&dyn rustls::pki_types::SignatureVerificationAlgorithm],
) -> Result<(), ProxyError> {
    let signed = der::signed(cert.as_ref()).ok_or(ProxyError::Signature)?;
    if parsed.signature_algorithm != parsed.tbs_certificate.signature {
        return Err(ProxyError::Signature);
    }
    let (key_alg, key) = der::public_key(issuer.public_key().raw).ok_or(ProxyError::Algorithm)?;
    let alg = algorithms
        .iter()
        .find(|alg| {
            alg.signature_alg_id().as_ref() == signed.algorithm
                && alg.public_key_alg_id().as_ref() == key_alg
        })
        .ok_or(ProxyError::Algorithm)?;
    alg.verify_signature(key, signed.tbs, signed.signature)
        .map_err(|_| ProxyError::Signature)
}
