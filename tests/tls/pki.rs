//! A test PKI built at run time with rcgen: a CA, a server certificate, user (end-entity)
//! certificates and RFC 3820 proxy certificates, each knob a test needs to break a chain.

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

/// OID arcs of RFC 3820 proxyCertInfo.
pub const PROXY_CERT_INFO: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 14];
/// OID arcs of the Globus Toolkit 3 draft extension.
pub const LEGACY_PROXY_CERT_INFO: &[u64] = &[1, 3, 6, 1, 4, 1, 3536, 1, 222];
/// `id-ppl-inheritAll`.
pub const INHERIT_ALL: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x15, 0x01];
/// `id-ppl-independent`.
pub const INDEPENDENT: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x15, 0x02];
/// The common-name OID as rcgen's custom type: rcgen keeps one value per type, and a
/// proxy of a user whose DN has a CN needs a second one.
fn second_cn() -> DnType {
    DnType::CustomDnType(vec![2, 5, 4, 3])
}

/// A certificate with its parameters and key.
pub struct Issued {
    pub params: CertificateParams,
    pub key: KeyPair,
    pub der: CertificateDer<'static>,
    pub pem: String,
}

impl Issued {
    fn sign(params: CertificateParams, issuer: Option<&Issued>) -> Issued {
        let key = KeyPair::generate().unwrap();
        Issued::sign_with(params, key, issuer)
    }

    fn sign_with(params: CertificateParams, key: KeyPair, issuer: Option<&Issued>) -> Issued {
        let cert = match issuer {
            Some(issuer) => params.signed_by(&key, &issuer.issuer()).unwrap(),
            None => params.self_signed(&key).unwrap(),
        };
        Issued {
            der: cert.der().clone(),
            pem: cert.pem(),
            params,
            key,
        }
    }

    /// This certificate as an issuer of others.
    pub fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    /// Its private key in PEM.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }
}

fn dn(parts: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (ty, value) in parts {
        dn.push(ty.clone(), *value);
    }
    dn
}

/// A root CA.
pub fn ca(name: &str) -> Issued {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(&[
        (DnType::OrganizationName, "ESGF"),
        (DnType::CommonName, name),
    ]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Issued::sign(params, None)
}

/// A server certificate for localhost and 127.0.0.1.
pub fn server(ca: &Issued) -> Issued {
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    params.distinguished_name = dn(&[(DnType::CommonName, "localhost")]);
    Issued::sign(params, Some(ca))
}

/// How a user certificate is made.
pub struct UserSpec {
    /// Its subject, in order.
    pub subject: Vec<(DnType, &'static str)>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub key_usages: Vec<KeyUsagePurpose>,
}

impl Default for UserSpec {
    fn default() -> Self {
        let now = OffsetDateTime::now_utc();
        UserSpec {
            subject: vec![
                (DnType::CountryName, "DE"),
                (DnType::OrganizationName, "ESGF"),
                (DnType::OrganizationalUnitName, "ESGF.ORG"),
                (DnType::CommonName, "alice"),
            ],
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(1),
            key_usages: vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ],
        }
    }
}

impl UserSpec {
    /// A user whose DN has no CN, so that two proxies can each add one.
    pub fn without_cn() -> UserSpec {
        UserSpec {
            subject: vec![
                (DnType::CountryName, "DE"),
                (DnType::OrganizationName, "ESGF"),
                (DnType::OrganizationalUnitName, "alice"),
            ],
            ..UserSpec::default()
        }
    }
}

/// A user (end-entity) certificate issued by `ca` (or self-signed with None).
pub fn user(ca: Option<&Issued>, spec: UserSpec) -> Issued {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(&spec.subject);
    params.not_before = spec.not_before;
    params.not_after = spec.not_after;
    params.key_usages = spec.key_usages;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Issued::sign(params, ca)
}

/// How a proxy certificate is made; the default is a valid RFC 3820 inheritAll proxy.
pub struct ProxySpec {
    /// The CN added to the issuer's subject.
    pub cn: &'static str,
    /// `pCPathLenConstraint`.
    pub path_len: Option<u8>,
    /// The policy language OID (DER contents).
    pub policy: &'static [u8],
    /// Extension OID (RFC 3820 or the GT3 draft's).
    pub oid: &'static [u64],
    pub critical: bool,
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
    /// Replace the subject entirely (a subject that does not extend the issuer's).
    pub subject: Option<Vec<(DnType, &'static str)>>,
    /// Signed by a stranger's key under the issuer's name.
    pub forged: bool,
}

impl Default for ProxySpec {
    fn default() -> Self {
        ProxySpec {
            cn: "1234567890",
            path_len: None,
            policy: INHERIT_ALL,
            oid: PROXY_CERT_INFO,
            critical: true,
            not_before: None,
            not_after: None,
            subject: None,
            forged: false,
        }
    }
}

/// DER of `ProxyCertInfo ::= SEQUENCE { pCPathLenConstraint INTEGER OPTIONAL,
/// proxyPolicy SEQUENCE { policyLanguage OID } }`.
pub fn proxy_cert_info(path_len: Option<u8>, policy: &[u8]) -> Vec<u8> {
    let mut policy_seq = vec![0x06, policy.len() as u8];
    policy_seq.extend_from_slice(policy);
    let mut inner = Vec::new();
    if let Some(len) = path_len {
        assert!(len < 0x80);
        inner.extend_from_slice(&[0x02, 0x01, len]);
    }
    inner.extend_from_slice(&[0x30, policy_seq.len() as u8]);
    inner.extend_from_slice(&policy_seq);
    let mut out = vec![0x30, inner.len() as u8];
    out.extend_from_slice(&inner);
    out
}

/// A proxy certificate issued by `issuer` (a user certificate or another proxy): its
/// subject is the issuer's plus one CN, its validity (by default) the issuer's minus a bit.
pub fn proxy(issuer: &Issued, spec: ProxySpec) -> Issued {
    let mut params = CertificateParams::default();
    params.distinguished_name = match &spec.subject {
        Some(subject) => dn(subject),
        None => {
            let mut subject = issuer.params.distinguished_name.clone();
            let ty = if subject.get(&DnType::CommonName).is_some() {
                second_cn()
            } else {
                DnType::CommonName
            };
            assert!(subject.get(&ty).is_none(), "rcgen holds two CNs at most");
            subject.push(ty, spec.cn);
            subject
        }
    };
    let now = OffsetDateTime::now_utc();
    params.not_before = spec.not_before.unwrap_or(now - Duration::minutes(5));
    params.not_after = spec
        .not_after
        .unwrap_or(issuer.params.not_after - Duration::hours(1));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let mut ext =
        CustomExtension::from_oid_content(spec.oid, proxy_cert_info(spec.path_len, spec.policy));
    ext.set_criticality(spec.critical);
    params.custom_extensions = vec![ext];
    let key = KeyPair::generate().unwrap();
    let cert = if spec.forged {
        let stranger = KeyPair::generate().unwrap();
        params
            .signed_by(&key, &Issuer::from_params(&issuer.params, &stranger))
            .unwrap()
    } else {
        params.signed_by(&key, &issuer.issuer()).unwrap()
    };
    Issued {
        der: cert.der().clone(),
        pem: cert.pem(),
        params,
        key,
    }
}

/// The certificate with one byte of its signature changed.
pub fn tampered(cert: &CertificateDer<'_>) -> CertificateDer<'static> {
    let mut bytes = cert.to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    CertificateDer::from(bytes)
}
