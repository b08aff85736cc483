//! Native HTTPS with client certificates (SPEC §8, issue 11): the chain check with RFC 3820
//! proxy certificates case by case, the handshake with a real rustls client (TLS 1.3 and
//! 1.2, a proxy's key signing it), and the HTTPS listener end to end with reqwest.
//! Every certificate is made at test time (`tls/pki.rs`).

mod common;
#[path = "tls/pki.rs"]
mod pki;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderName;
use pki::{Issued, ProxySpec, UserSpec};
use rcgen::DnType;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, RootCertStore};
use time::OffsetDateTime;
use twitcher::App;
use twitcher::config::{ClientVerify, Config, ConnectionSettings, TlsSettings};
use twitcher::server::{self, Listener};
use twitcher::store::memory::MemoryStore;
use twitcher::store::{Auth, Service, Store};
use twitcher::tls::{ChainError, ChainVerifier, ClientIdentity, HandshakeError, ProxyError, Tls};

const ALICE: &str = "CN=alice,OU=ESGF.ORG,O=ESGF,C=DE";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn verifier(ca: &Issued) -> ChainVerifier {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    ChainVerifier::new(Arc::new(roots), provider()).unwrap()
}

/// Verifies a chain (leaf first) against `ca` now.
fn check(ca: &Issued, chain: &[&Issued]) -> Result<ClientIdentity, ChainError> {
    let ders: Vec<CertificateDer<'static>> = chain.iter().map(|c| c.der.clone()).collect();
    check_der(ca, &ders)
}

fn check_der(ca: &Issued, chain: &[CertificateDer<'static>]) -> Result<ClientIdentity, ChainError> {
    verifier(ca).verify(&chain[0], &chain[1..], UnixTime::now())
}

fn proxy_error(result: Result<ClientIdentity, ChainError>) -> (usize, ProxyError) {
    match result {
        Err(ChainError::Proxy { level, reason }) => (level, reason),
        other => panic!("expected a proxy refusal, got {other:?}"),
    }
}

fn end_entity_error(result: Result<ClientIdentity, ChainError>) -> CertificateError {
    match result {
        Err(ChainError::EndEntity(rustls::Error::InvalidCertificate(e))) => e,
        other => panic!("expected an end-entity refusal, got {other:?}"),
    }
}

fn hours(n: i64) -> time::Duration {
    time::Duration::hours(n)
}

// ---- chains that are accepted ----

#[test]
fn a_user_certificate_alone_is_accepted() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let id = check(&ca, &[&alice]).unwrap();
    assert_eq!(id.subject, ALICE);
    assert_eq!(id.proxies, 0);
}

#[test]
fn a_proxy_of_the_user_is_accepted_as_the_user() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let proxy = pki::proxy(&alice, ProxySpec::default());
    let id = check(&ca, &[&proxy, &alice]).unwrap();
    assert_eq!(id.subject, ALICE, "the user's DN, not the proxy's");
    assert_eq!(id.proxies, 1);
}

#[test]
fn a_proxy_of_a_proxy_within_its_path_length_is_accepted() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::without_cn());
    let first = pki::proxy(
        &alice,
        ProxySpec {
            cn: "first",
            path_len: Some(1),
            ..ProxySpec::default()
        },
    );
    let second = pki::proxy(
        &first,
        ProxySpec {
            cn: "second",
            path_len: Some(0),
            ..ProxySpec::default()
        },
    );
    let id = check(&ca, &[&second, &first, &alice]).unwrap();
    assert_eq!(id.subject, "OU=alice,O=ESGF,C=DE");
    assert_eq!(id.proxies, 2);
}

#[test]
fn a_proxy_chain_through_an_intermediate_ca_is_accepted() {
    let root = pki::ca("ESGF root");
    let mut params = root.params.clone();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "ESGF online CA");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &root.issuer()).unwrap();
    let online = Issued {
        der: cert.der().clone(),
        pem: cert.pem(),
        params,
        key,
    };
    let alice = pki::user(Some(&online), UserSpec::default());
    let proxy = pki::proxy(&alice, ProxySpec::default());
    let id = check(&root, &[&proxy, &alice, &online]).unwrap();
    assert_eq!((id.subject.as_str(), id.proxies), (ALICE, 1));
}

// ---- the user certificate broken ----

#[test]
fn an_expired_user_certificate_is_refused() {
    let ca = pki::ca("ESGF CA");
    let now = OffsetDateTime::now_utc();
    let alice = pki::user(
        Some(&ca),
        UserSpec {
            not_before: now - hours(48),
            not_after: now - hours(1),
            ..UserSpec::default()
        },
    );
    let e = end_entity_error(check(&ca, &[&alice]));
    assert!(
        matches!(
            e,
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        ),
        "{e:?}"
    );
}

#[test]
fn a_user_certificate_not_yet_valid_is_refused() {
    let ca = pki::ca("ESGF CA");
    let now = OffsetDateTime::now_utc();
    let alice = pki::user(
        Some(&ca),
        UserSpec {
            not_before: now + hours(1),
            not_after: now + hours(48),
            ..UserSpec::default()
        },
    );
    let proxy = pki::proxy(
        &alice,
        ProxySpec {
            not_before: Some(now + hours(2)),
            ..ProxySpec::default()
        },
    );
    let e = end_entity_error(check(&ca, &[&proxy, &alice]));
    assert!(
        matches!(
            e,
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }
        ),
        "{e:?}"
    );
}

#[test]
fn a_user_certificate_from_another_ca_is_refused() {
    let ca = pki::ca("ESGF CA");
    let other = pki::ca("ESGF CA");
    let mallory = pki::user(Some(&other), UserSpec::default());
    let proxy = pki::proxy(&mallory, ProxySpec::default());
    let e = end_entity_error(check(&ca, &[&proxy, &mallory]));
    assert!(
        matches!(
            e,
            CertificateError::UnknownIssuer | CertificateError::BadSignature
        ),
        "{e:?}"
    );
}

#[test]
fn a_self_signed_user_certificate_is_refused() {
    let ca = pki::ca("ESGF CA");
    let mallory = pki::user(None, UserSpec::default());
    let e = end_entity_error(check(&ca, &[&mallory]));
    assert_eq!(e, CertificateError::UnknownIssuer);
}

#[test]
fn a_tampered_user_certificate_is_refused() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let proxy = pki::proxy(&alice, ProxySpec::default());
    let e = end_entity_error(check_der(
        &ca,
        &[proxy.der.clone(), pki::tampered(&alice.der)],
    ));
    assert_eq!(e, CertificateError::BadSignature);
}

#[test]
fn the_ca_itself_is_no_user_certificate() {
    let ca = pki::ca("ESGF CA");
    assert!(matches!(check(&ca, &[&ca]), Err(ChainError::EndEntity(_))));
}

// ---- a proxy certificate broken ----

#[test]
fn an_expired_proxy_is_refused() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let now = OffsetDateTime::now_utc();
    let proxy = pki::proxy(
        &alice,
        ProxySpec {
            not_before: Some(now - hours(13)),
            not_after: Some(now - hours(1)),
            ..ProxySpec::default()
        },
    );
    assert_eq!(
        proxy_error(check(&ca, &[&proxy, &alice])),
        (1, ProxyError::Expired)
    );
}

#[test]
fn a_proxy_not_yet_valid_is_refused() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let now = OffsetDateTime::now_utc();
    let proxy = pki::proxy(
        &alice,
        ProxySpec {
            not_before: Some(now + hours(1)),
            ..ProxySpec::default()
        },
    );
    assert_eq!(
        proxy_error(check(&ca, &[&proxy, &alice])),
        (1, ProxyError::NotYetValid)
    );
}

#[test]
fn a_proxy_outliving_its_issuer_is_refused() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let proxy = pki::proxy(
        &alice,
        ProxySpec {
            not_after: Some(alice.params.not_after + hours(1)),
            ..ProxySpec::default()
        },
    );
    assert_eq!(
        proxy_error(check(&ca, &[&proxy, &alice])),
        (1, ProxyError::OutlivesIssuer)
    );
}

#[test]
fn a_proxy_signed_by_another_key_under_the_users_name_is_refused() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let forged = pki::proxy(
        &alice,
        ProxySpec {
            forged: true,
            ..ProxySpec::default()
        },
    );
    assert_eq!(
        proxy_error(check(&ca, &[&forged, &alice])),
        (1, ProxyError::Signature)
    );
}

#[test]
fn a_proxy_of_another_user_is_refused() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let bob = pki::user(
        Some(&ca),
        UserSpec {
            subject: vec![
                (DnType::OrganizationName, "ESGF"),
                (DnType::CommonName, "bob"),
            ],
            ..UserSpec::default()
        },
    );
    let bobs = pki::proxy(&bob, ProxySpec::default());
    assert_eq!(
        proxy_error(check(&ca, &[&bobs, &alice])),
        (1, ProxyError::IssuerName)
    );
}

#[test]
fn a_tampered_proxy_is_refused() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let proxy = pki::proxy(&alice, ProxySpec::default());
    let result = check_der(&ca, &[pki::tampered(&proxy.der), alice.der.clone()]);
    assert_eq!(proxy_error(result), (1, ProxyError::Signature));
}

#[test]
fn a_proxy_whose_subject_does_not_extend_its_issuers_is_refused() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let other_base = pki::proxy(
        &alice,
        ProxySpec {
            subject: Some(vec![
                (DnType::CountryName, "DE"),
                (DnType::OrganizationName, "ESGF"),
                (DnType::CommonName, "root"),
                (DnType::OrganizationalUnitName, "1234"),
            ]),
            ..ProxySpec::default()
        },
    );
    assert_eq!(
        proxy_error(check(&ca, &[&other_base, &alice])),
        (1, ProxyError::Subject)
    );
    let alice = pki::user(Some(&ca), UserSpec::without_cn());
    let not_a_cn = pki::proxy(
        &alice,
        ProxySpec {
            subject: Some(vec![
                (DnType::CountryName, "DE"),
                (DnType::OrganizationName, "ESGF"),
                (DnType::OrganizationalUnitName, "alice"),
                (DnType::LocalityName, "1234"),
            ]),
            ..ProxySpec::default()
        },
    );
    assert_eq!(
        proxy_error(check(&ca, &[&not_a_cn, &alice])),
        (1, ProxyError::Subject)
    );
    let same_subject = pki::proxy(
        &alice,
        ProxySpec {
            subject: Some(vec![
                (DnType::CountryName, "DE"),
                (DnType::OrganizationName, "ESGF"),
                (DnType::OrganizationalUnitName, "alice"),
            ]),
            ..ProxySpec::default()
        },
    );
    assert_eq!(
        proxy_error(check(&ca, &[&same_subject, &alice])),
        (1, ProxyError::Subject)
    );
}

#[test]
fn a_proxy_below_a_path_length_of_zero_is_refused() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::without_cn());
    let first = pki::proxy(
        &alice,
        ProxySpec {
            cn: "first",
            path_len: Some(0),
            ..ProxySpec::default()
        },
    );
    let second = pki::proxy(
        &first,
        ProxySpec {
            cn: "second",
            ..ProxySpec::default()
        },
    );
    assert!(check(&ca, &[&first, &alice]).is_ok());
    assert_eq!(
        proxy_error(check(&ca, &[&second, &first, &alice])),
        (1, ProxyError::PathLength { limit: 0, below: 1 })
    );
}

#[test]
fn a_proxy_cert_info_that_is_not_critical_is_refused() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let proxy = pki::proxy(
        &alice,
        ProxySpec {
            critical: false,
            ..ProxySpec::default()
        },
    );
    assert_eq!(
        proxy_error(check(&ca, &[&proxy, &alice])),
        (1, ProxyError::NotCritical)
    );
}

#[test]
fn an_independent_proxy_is_refused() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let proxy = pki::proxy(
        &alice,
        ProxySpec {
            policy: pki::INDEPENDENT,
            ..ProxySpec::default()
        },
    );
    assert_eq!(
        proxy_error(check(&ca, &[&proxy, &alice])),
        (1, ProxyError::Policy)
    );
}

#[test]
fn a_gt3_draft_proxy_is_refused() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let proxy = pki::proxy(
        &alice,
        ProxySpec {
            oid: pki::LEGACY_PROXY_CERT_INFO,
            ..ProxySpec::default()
        },
    );
    assert_eq!(
        proxy_error(check(&ca, &[&proxy, &alice])),
        (1, ProxyError::Legacy)
    );
}

#[test]
fn a_user_certificate_without_digital_signature_cannot_issue_proxies() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(
        Some(&ca),
        UserSpec {
            key_usages: vec![rcgen::KeyUsagePurpose::KeyEncipherment],
            ..UserSpec::default()
        },
    );
    let proxy = pki::proxy(&alice, ProxySpec::default());
    assert_eq!(
        proxy_error(check(&ca, &[&proxy, &alice])),
        (1, ProxyError::IssuerKeyUsage)
    );
}

#[test]
fn proxies_without_their_user_certificate_are_refused() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let proxy = pki::proxy(&alice, ProxySpec::default());
    assert!(matches!(
        check(&ca, &[&proxy]),
        Err(ChainError::NoEndEntity)
    ));
}

#[test]
fn an_over_long_chain_is_refused() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let proxy = pki::proxy(&alice, ProxySpec::default());
    let mut chain = vec![proxy.der.clone(), alice.der.clone()];
    chain.extend(std::iter::repeat_n(
        ca.der.clone(),
        twitcher::tls::MAX_CHAIN,
    ));
    assert!(matches!(
        check_der(&ca, &chain),
        Err(ChainError::TooLong(_))
    ));
}

#[test]
fn garbage_is_refused_not_panicked_on() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
    assert!(matches!(
        check_der(&ca, &[garbage, alice.der.clone()]),
        Err(ChainError::Unparsable(0))
    ));
}

// ---- the handshake: rustls server (ours) and a rustls client ----

struct Files {
    _dir: tempfile::TempDir,
    settings: TlsSettings,
}

/// Server certificate, key and client roots in files, as `[server:main]` names them.
fn files(ca: &Issued, verify: ClientVerify) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let server = pki::server(ca);
    let write = |name: &str, text: &str| -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let settings = TlsSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        certfile: write("server.pem", &format!("{}{}", server.pem, ca.pem)),
        keyfile: write("server.key", &server.key_pem()),
        client_ca: Some(write("ca.pem", &ca.pem)),
        client_verify: verify,
    };
    Files {
        _dir: dir,
        settings,
    }
}

fn tls(files: &Files) -> Tls {
    Tls::load(&files.settings, Duration::from_secs(5)).unwrap()
}

fn client_config(
    ca: &Issued,
    client: Option<(&[&Issued], &Issued)>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some((chain, leaf)) => {
            builder.with_client_cert_resolver(Arc::new(Presents::new(chain, leaf)))
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// A client that presents one chain. rustls' own `with_client_auth_cert` would refuse a
/// proxy certificate (webpki does not know its critical extension) while checking that
/// key and certificate match; curl and Globus clients do not look.
#[derive(Debug)]
struct Presents(Arc<rustls::sign::CertifiedKey>);

impl Presents {
    fn new(chain: &[&Issued], key_of: &Issued) -> Presents {
        let chain = chain.iter().map(|c| c.der.clone()).collect();
        let key = PrivateKeyDer::try_from(key_of.key.serialize_der()).unwrap();
        let key = provider().key_provider.load_private_key(key).unwrap();
        Presents(Arc::new(rustls::sign::CertifiedKey::new(chain, key)))
    }
}

impl rustls::client::ResolvesClientCert for Presents {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// One handshake over an in-memory pipe; the server's outcome, and whether the client
/// could exchange a byte afterwards.
async fn handshake(
    server: &Tls,
    client: rustls::ClientConfig,
) -> (Result<Option<ClientIdentity>, String>, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let name = ServerName::try_from("localhost").unwrap();
    let server_side = async {
        match server.accept(server_io).await {
            Ok((mut stream, identity)) => {
                let mut byte = [0u8; 1];
                if stream.read_exact(&mut byte).await.is_ok() {
                    let _ = stream.write_all(&byte).await;
                    let _ = stream.flush().await;
                }
                Ok(identity)
            }
            Err(e) => Err(e.to_string()),
        }
    };
    let client_side = async {
        let Ok(mut stream) = connector.connect(name, client_io).await else {
            return false;
        };
        let mut byte = [0u8; 1];
        stream.write_all(b"x").await.is_ok()
            && stream.flush().await.is_ok()
            && stream.read_exact(&mut byte).await.is_ok()
    };
    let run = async { tokio::join!(server_side, client_side) };
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("handshake hung")
}

const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

#[tokio::test]
async fn a_proxy_key_signs_the_handshake_in_tls13_and_tls12() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let proxy = pki::proxy(&alice, ProxySpec::default());
    for verify in [ClientVerify::Required, ClientVerify::Optional] {
        let files = files(&ca, verify);
        let server = tls(&files);
        for versions in [TLS13, TLS12] {
            let client = client_config(&ca, Some((&[&proxy, &alice], &proxy)), versions);
            let (server_result, talked) = handshake(&server, client).await;
            let id = server_result.unwrap().expect("identity");
            assert_eq!((id.subject.as_str(), id.proxies), (ALICE, 1));
            assert!(talked, "{verify:?} {versions:?}");
        }
    }
}

#[tokio::test]
async fn a_proxy_presented_with_another_key_fails_the_handshake() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let proxy = pki::proxy(&alice, ProxySpec::default());
    let impostor = pki::proxy(&alice, ProxySpec::default());
    let files = files(&ca, ClientVerify::Optional);
    let server = tls(&files);
    for versions in [TLS13, TLS12] {
        // The proxy's certificate, someone else's key: CertificateVerify does not verify.
        let client = client_config(&ca, Some((&[&proxy, &alice], &impostor)), versions);
        let (server_result, talked) = handshake(&server, client).await;
        assert!(server_result.is_err(), "{versions:?}: {server_result:?}");
        assert!(!talked);
    }
}

#[tokio::test]
async fn required_refuses_a_broken_chain_in_the_handshake() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let outliving = pki::proxy(
        &alice,
        ProxySpec {
            not_after: Some(alice.params.not_after + hours(1)),
            ..ProxySpec::default()
        },
    );
    let files = files(&ca, ClientVerify::Required);
    let server = tls(&files);
    let client = client_config(&ca, Some((&[&outliving, &alice], &outliving)), TLS13);
    let (server_result, talked) = handshake(&server, client).await;
    assert!(server_result.is_err(), "{server_result:?}");
    assert!(!talked);
    // And no certificate at all.
    let (server_result, talked) = handshake(&server, client_config(&ca, None, TLS13)).await;
    assert!(server_result.is_err() && !talked, "{server_result:?}");
}

#[tokio::test]
async fn optional_lets_a_broken_chain_connect_without_an_identity() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let expired = pki::proxy(
        &alice,
        ProxySpec {
            not_before: Some(OffsetDateTime::now_utc() - hours(3)),
            not_after: Some(OffsetDateTime::now_utc() - hours(1)),
            ..ProxySpec::default()
        },
    );
    let files = files(&ca, ClientVerify::Optional);
    let server = tls(&files);
    let client = client_config(&ca, Some((&[&expired, &alice], &expired)), TLS13);
    let (server_result, talked) = handshake(&server, client).await;
    assert_eq!(server_result, Ok(None));
    assert!(talked);
    let (server_result, talked) = handshake(&server, client_config(&ca, None, TLS13)).await;
    assert_eq!(server_result, Ok(None));
    assert!(talked);
}

#[tokio::test]
async fn a_silent_client_times_out_in_the_handshake() {
    let ca = pki::ca("ESGF CA");
    let files = files(&ca, ClientVerify::Optional);
    let server = Tls::load(&files.settings, Duration::from_millis(200)).unwrap();
    let (_client_io, server_io) = tokio::io::duplex(1024);
    let result = tokio::time::timeout(Duration::from_secs(10), server.accept(server_io))
        .await
        .expect("the handshake timeout did not fire");
    assert!(
        matches!(result, Err(HandshakeError::Timeout)),
        "{:?}",
        result.err()
    );
}

#[tokio::test]
async fn a_reload_serves_new_connections_with_the_new_roots() {
    let old_ca = pki::ca("old CA");
    let new_ca = pki::ca("new CA");
    let files = files(&old_ca, ClientVerify::Required);
    let server = tls(&files);
    let alice = pki::user(Some(&new_ca), UserSpec::default());
    let client = || client_config(&old_ca, Some((&[&alice], &alice)), TLS13);
    assert!(handshake(&server, client()).await.0.is_err());
    // Rotate the client roots (the server certificate stays the old CA's).
    let ca_file = files.settings.client_ca.clone().unwrap();
    std::fs::write(&ca_file, &new_ca.pem).unwrap();
    server.reload().unwrap();
    let (result, talked) = handshake(&server, client()).await;
    assert_eq!(
        result.unwrap().map(|id| id.subject),
        Some(ALICE.to_string())
    );
    assert!(talked);
    // A broken file keeps what was loaded.
    std::fs::write(&ca_file, "not a certificate").unwrap();
    assert!(server.reload().is_err());
    assert!(handshake(&server, client()).await.0.is_ok());
}

#[test]
fn a_directory_of_roots_is_read_and_other_files_are_passed_over() {
    let one = pki::ca("one");
    let two = pki::ca("two");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("1a2b3c4d.0"), &one.pem).unwrap();
    std::fs::write(dir.path().join("5e6f7a8b.0"), &two.pem).unwrap();
    std::fs::write(
        dir.path().join("1a2b3c4d.signing_policy"),
        "access_id_CA X509 '/O=ESGF'\n",
    )
    .unwrap();
    let roots = twitcher::tls::roots(dir.path()).unwrap();
    assert_eq!(roots.len(), 2);
    let empty = tempfile::tempdir().unwrap();
    assert!(twitcher::tls::roots(empty.path()).is_err());
}

// ---- the HTTPS listener end to end: reqwest against `twitcher::server` ----

const EXECUTE: &str =
    "/ows/proxy/emu?service=WPS&request=Execute&version=1.0.0&identifier=hello&DataInputs=name=tux";
const CERT_NEEDED: &str = "A valid X.509 client certificate is needed.";
const EXECUTED: &str =
    r#"<wps:ExecuteResponse xmlns:wps="http://www.opengis.net/wps/1.0.0" service="WPS"/>"#;

/// twitcher serving HTTPS only, with an `auth = cert` service `emu` on a stub backend.
struct Https {
    base: String,
    backend: common::StubBackend,
    _files: Files,
}

async fn start_https(ca: &Issued, verify: ClientVerify, tweak: impl FnOnce(&mut Config)) -> Https {
    // Before any app is built: the app decides at build time what it logs.
    let _ = common::logs::capture();
    let files = files(ca, verify);
    let backend = common::StubBackend::start().await;
    backend.route("/wps", common::Canned::ok("text/xml", EXECUTED));
    let mut config = Config {
        tls: Some(files.settings.clone()),
        forward_client_dn: Some(HeaderName::from_static("x-client-dn")),
        ..Config::default()
    };
    tweak(&mut config);
    let connections = ConnectionSettings {
        header_read_timeout: Duration::from_secs(1),
        ..ConnectionSettings::default()
    };
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    store
        .save_service(&Service {
            auth: Auth::Cert,
            ..Service::new("emu", backend.url("/wps"))
        })
        .await
        .unwrap();
    let app = App::new(config, store).unwrap();
    let tls = Arc::new(Tls::load(&files.settings, connections.header_read_timeout).unwrap());
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let listeners = vec![Listener::https(socket, tls)];
        server::serve(
            listeners,
            twitcher::app(app),
            &connections,
            std::future::pending(),
        )
        .await
    });
    Https {
        base: format!("https://localhost:{}", addr.port()),
        backend,
        _files: files,
    }
}

/// A reqwest client trusting `ca` and presenting `chain` (leaf first) with `key_of`'s key.
fn https_client(ca: &Issued, client: Option<(&[&Issued], &Issued)>) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(client_config(ca, client, TLS13))
        .resolve("localhost", "127.0.0.1:0".parse().unwrap())
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn get(client: &reqwest::Client, url: String) -> (u16, String) {
    let response = client
        .get(url)
        .header("x-client-dn", "CN=root")
        .header("x-ssl-client-verify", "SUCCESS")
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn execute_with_a_proxy_certificate_reaches_the_backend_as_the_user() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let proxy = pki::proxy(&alice, ProxySpec::default());
    for verify in [ClientVerify::Optional, ClientVerify::Required] {
        let server = start_https(&ca, verify, |_| {}).await;
        let client = https_client(&ca, Some((&[&proxy, &alice], &proxy)));
        let (status, body) = get(&client, format!("{}{EXECUTE}", server.base)).await;
        assert_eq!((status, body.as_str()), (200, EXECUTED), "{verify:?}");
        let received = server.backend.received();
        assert_eq!(received.len(), 1);
        let headers = &received[0].headers;
        let dn: Vec<_> = headers.iter().filter(|(k, _)| k == "x-client-dn").collect();
        assert_eq!(dn, [&("x-client-dn".to_string(), ALICE.to_string())]);
        assert!(
            !headers.iter().any(|(k, _)| k.starts_with("x-ssl-")),
            "{headers:?}"
        );
    }
    // The access log names the user, not the proxy.
    let logs = common::logs::capture();
    let lines = logs.lines_with("twitcher::access");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("credential=\"cert\"")
                && l.contains(&format!("subject=\"{ALICE}\""))),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn every_broken_chain_gets_a_401_report_over_optional_https() {
    let ca = pki::ca("ESGF CA");
    let other_ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let now = OffsetDateTime::now_utc();
    let proxy = |spec| pki::proxy(&alice, spec);
    let mut tampered = proxy(ProxySpec::default());
    tampered.der = pki::tampered(&tampered.der);
    let self_signed = pki::user(None, UserSpec::default());
    let stranger = pki::user(Some(&other_ca), UserSpec::default());
    let carol = pki::user(Some(&ca), UserSpec::without_cn());
    let limited = pki::proxy(
        &carol,
        ProxySpec {
            path_len: Some(0),
            ..ProxySpec::default()
        },
    );
    let below_limit = pki::proxy(&limited, ProxySpec::default());
    let cases: Vec<(&str, Vec<&Issued>, Issued)> = vec![
        (
            "expired",
            vec![&alice],
            proxy(ProxySpec {
                not_before: Some(now - hours(3)),
                not_after: Some(now - hours(1)),
                ..ProxySpec::default()
            }),
        ),
        (
            "not yet valid",
            vec![&alice],
            proxy(ProxySpec {
                not_before: Some(now + hours(1)),
                ..ProxySpec::default()
            }),
        ),
        (
            "outlives its issuer",
            vec![&alice],
            proxy(ProxySpec {
                not_after: Some(alice.params.not_after + hours(1)),
                ..ProxySpec::default()
            }),
        ),
        (
            "forged signature",
            vec![&alice],
            proxy(ProxySpec {
                forged: true,
                ..ProxySpec::default()
            }),
        ),
        ("tampered", vec![&alice], tampered),
        (
            "subject not extending",
            vec![&alice],
            proxy(ProxySpec {
                subject: Some(vec![
                    (DnType::OrganizationName, "ESGF"),
                    (DnType::CommonName, "root"),
                ]),
                ..ProxySpec::default()
            }),
        ),
        ("path length", vec![&limited, &carol], below_limit),
    ];
    let server = start_https(&ca, ClientVerify::Optional, |_| {}).await;
    for (case, rest, leaf) in &cases {
        let chain: Vec<&Issued> = std::iter::once(leaf).chain(rest.iter().copied()).collect();
        let client = https_client(&ca, Some((&chain, leaf)));
        let (status, body) = get(&client, format!("{}{EXECUTE}", server.base)).await;
        assert_eq!(status, 401, "{case}: {body}");
        assert!(
            body.contains(CERT_NEEDED) && body.contains("ExceptionReport"),
            "{case}: {body}"
        );
    }
    for (case, user) in [("self-signed", &self_signed), ("another CA", &stranger)] {
        let client = https_client(&ca, Some((&[user], user)));
        let (status, body) = get(&client, format!("{}{EXECUTE}", server.base)).await;
        assert_eq!(status, 401, "{case}: {body}");
        assert!(body.contains(CERT_NEEDED), "{case}: {body}");
    }
    // No certificate: the nginx header alone is not believed from an unlisted address.
    let (status, body) = get(
        &https_client(&ca, None),
        format!("{}{EXECUTE}", server.base),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(server.backend.received().is_empty());
}

#[tokio::test]
async fn the_header_counts_from_a_listed_proxy_beside_native_certificates() {
    let ca = pki::ca("ESGF CA");
    let server = start_https(&ca, ClientVerify::Optional, |config| {
        config.trusted_proxies = Some(vec!["127.0.0.1".parse().unwrap()]);
    })
    .await;
    let (status, body) = get(
        &https_client(&ca, None),
        format!("{}{EXECUTE}", server.base),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // No certificate was verified here, so no DN goes upstream (and not the client's).
    let headers = &server.backend.received()[0].headers;
    assert!(
        !headers.iter().any(|(k, _)| k == "x-client-dn"),
        "{headers:?}"
    );
}

#[tokio::test]
async fn required_refuses_the_connection_and_the_listener_keeps_serving() {
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let good = pki::proxy(&alice, ProxySpec::default());
    let forged = pki::proxy(
        &alice,
        ProxySpec {
            forged: true,
            ..ProxySpec::default()
        },
    );
    let server = start_https(&ca, ClientVerify::Required, |_| {}).await;
    let url = format!("{}{EXECUTE}", server.base);
    for client in [
        https_client(&ca, Some((&[&forged, &alice], &forged))),
        https_client(&ca, None),
    ] {
        let refused = client.get(&url).send().await;
        assert!(refused.is_err(), "{:?}", refused.map(|r| r.status()));
    }
    let (status, _) = get(&https_client(&ca, Some((&[&good, &alice], &good))), url).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_stalled_or_garbled_handshake_does_not_stop_others() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = pki::ca("ESGF CA");
    let alice = pki::user(Some(&ca), UserSpec::default());
    let server = start_https(&ca, ClientVerify::Optional, |_| {}).await;
    let addr = server.base.replace("https://localhost", "127.0.0.1");
    // One client opens a connection and says nothing; another speaks plain HTTP.
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut plain = tokio::net::TcpStream::connect(&addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let client = https_client(&ca, Some((&[&alice], &alice)));
    for _ in 0..3 {
        let (status, _) = get(&client, format!("{}{EXECUTE}", server.base)).await;
        assert_eq!(status, 200);
    }
    // The silent one is closed once the handshake timeout (1 s here) is over.
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf))
        .await
        .expect("a silent handshake is never closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // The plain-HTTP one got at most a TLS alert, then the connection closed.
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut answer))
        .await
        .expect("a garbled handshake is never closed");
    assert!(!answer.starts_with(b"HTTP/"));
}

/// The real binary: SIGHUP rotates the server certificate for new connections while a
/// connection made before keeps working (its client trusts only the old CA, so a new
/// handshake would fail: the second request can only succeed on the old connection).
#[tokio::test]
async fn sighup_rotates_the_running_servers_certificate_without_dropping_connections() {
    let old_ca = pki::ca("old CA");
    let new_ca = pki::ca("new CA");
    let dir = tempfile::tempdir().unwrap();
    let (certfile, keyfile) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    let install = |ca: &Issued| {
        let server = pki::server(ca);
        std::fs::write(&certfile, format!("{}{}", server.pem, ca.pem)).unwrap();
        std::fs::write(&keyfile, server.key_pem()).unwrap();
    };
    install(&old_ca);
    let process = common::process::Process::start(
        "",
        &format!(
            "https_listen = 127.0.0.1:0\ncertfile = {}\nkeyfile = {}",
            certfile.display(),
            keyfile.display()
        ),
    );
    let wait_log = |needle: &str| {
        let until = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(line) = process.log().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            assert!(
                std::time::Instant::now() < until,
                "no log line with {needle:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let line = wait_log("serving on https://");
    let port = line.rsplit(':').next().unwrap().trim().to_string();
    let health = format!("https://localhost:{port}/health");
    let client = |ca: &Issued| {
        reqwest::Client::builder()
            .use_preconfigured_tls(client_config(ca, None, TLS13))
            .resolve("localhost", "127.0.0.1:0".parse().unwrap())
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    };
    let kept = client(&old_ca);
    let status = |r: reqwest::Result<reqwest::Response>| r.map(|r| r.status().as_u16());
    assert_eq!(status(kept.get(&health).send().await).unwrap(), 200);

    install(&new_ca);
    let pid = rustix::process::Pid::from_raw(process.pid() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    wait_log("TLS certificates and client roots reloaded");

    assert_eq!(
        status(client(&new_ca).get(&health).send().await).unwrap(),
        200
    );
    assert!(
        status(client(&old_ca).get(&health).send().await).is_err(),
        "a new connection still got the old certificate"
    );
    assert_eq!(
        status(kept.get(&health).send().await).unwrap(),
        200,
        "the connection made before SIGHUP was dropped"
    );
}

/// Capabilities fetched over twitcher's own HTTPS name the proxy with `https`: a client
/// that follows them stays on TLS.
#[tokio::test]
async fn capabilities_over_https_link_back_with_https() {
    let ca = pki::ca("ESGF CA");
    let server = start_https(&ca, ClientVerify::None, |_| {}).await;
    let backend_url = server.backend.url("/wps");
    let caps = format!(
        r#"<wps:Capabilities xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink"><ows:OperationsMetadata><ows:Operation name="Execute"><ows:DCP><ows:HTTP><ows:Get xlink:href="{backend_url}"/></ows:HTTP></ows:DCP></ows:Operation></ows:OperationsMetadata></wps:Capabilities>"#
    );
    server
        .backend
        .route("/wps", common::Canned::ok("text/xml", caps));
    let client = https_client(&ca, None);
    let (status, body) = get(
        &client,
        format!(
            "{}/ows/proxy/emu?service=WPS&request=GetCapabilities",
            server.base
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let wanted = format!(r#"xlink:href="{}/ows/proxy/emu""#, server.base);
    assert!(body.contains(&wanted), "{body}");
    assert!(!body.contains(&backend_url), "{body}");
}
