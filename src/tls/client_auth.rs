//! The rustls client-certificate verifier of the HTTPS listener: asks for a certificate,
//! checks chains with [`ChainVerifier`] (RFC 3820 proxies included) and the handshake
//! signature with the leaf's key.
//!
//! With `client_verify = required` a chain is judged during the handshake and a bad one
//! ends the connection with a TLS alert. With `optional` the handshake only proves the
//! client holds the leaf's key; the chain is judged right after it (see
//! [`super::Tls::accept`]), so a bad certificate meets the service's own answer (an OWS
//! 401 report for `auth = cert`) instead of a TLS error nobody can read.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::chain::ChainVerifier;
use super::proxy_cert;

/// Client certificates for one set of roots, requested or required.
#[derive(Debug)]
pub struct ClientAuth {
    chain: Arc<ChainVerifier>,
    mandatory: bool,
}

impl ClientAuth {
    /// A verifier judging chains with `chain`; `mandatory` refuses connections without a
    /// valid one.
    pub fn new(chain: Arc<ChainVerifier>, mandatory: bool) -> Self {
        ClientAuth { chain, mandatory }
    }

    fn verify_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
        tls13: bool,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = self.chain.algorithms();
        // webpki reads the leaf unless it is a proxy (an unknown critical extension to it).
        if let Ok((_, leaf)) = X509Certificate::from_der(cert.as_ref())
            && !matches!(proxy_cert::proxy_cert_info(&leaf), Ok(None))
        {
            return self
                .chain
                .verify_proxy_signature(message, &leaf, dss, tls13);
        }
        if tls13 {
            rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
        } else {
            rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
        }
    }
}

impl ClientCertVerifier for ClientAuth {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if !self.mandatory {
            return Ok(ClientCertVerified::assertion());
        }
        match self.chain.verify(end_entity, intermediates, now) {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err(e) => {
                tracing::warn!(reason = %e, "client certificate refused");
                Err(e.to_rustls())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_signature(message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_signature(message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.algorithms().supported_schemes()
    }
}
