//! RFC 3820 proxy certificates: what makes a certificate one, and the rules one link of a
//! proxy chain must keep (proxy, and the certificate that issued it: the user's end-entity
//! certificate or the proxy before it). The signature of a link is checked by
//! [`super::chain`]; everything else about it is here.
//!
//! Accepted: the RFC 3820 `proxyCertInfo` extension (1.3.6.1.5.5.7.1.14), critical, with
//! the `id-ppl-inheritAll` policy (the proxy speaks for its user, as ESGF's are). Refused
//! with their reason: the pre-RFC Globus Toolkit 3 extension (1.3.6.1.4.1.3536.1.222),
//! `independent` and other policy languages (they carry other rights than the user's).
//! Globus Toolkit 2 "legacy" proxies carry no extension at all; they look like an end
//! entity issued by an end entity and fail as any certificate from an unknown issuer does.

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;

use super::der;

/// OID of the RFC 3820 `proxyCertInfo` extension.
pub const PROXY_CERT_INFO: &str = "1.3.6.1.5.5.7.1.14";
/// OID of the pre-RFC (GT3) proxyCertInfo extension.
const LEGACY_PROXY_CERT_INFO: &str = "1.3.6.1.4.1.3536.1.222";
/// `id-ppl-inheritAll` (1.3.6.1.5.5.7.21.1), as DER contents.
const INHERIT_ALL: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x15, 0x01];
/// OID of the common name attribute.
const COMMON_NAME: &str = "2.5.4.3";
/// Extensions a proxy may mark critical: the ones this check reads.
const UNDERSTOOD_CRITICAL: &[&str] = &[
    PROXY_CERT_INFO,
    "2.5.29.15", // keyUsage
    "2.5.29.19", // basicConstraints
    "2.5.29.37", // extKeyUsage
];

/// What a proxy's `proxyCertInfo` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyCertInfo {
    /// `pCPathLenConstraint`: how many proxies may follow below this one (None: any).
    pub path_len: Option<u64>,
}

/// Why one link of a proxy chain is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The proxyCertInfo extension is not marked critical.
    #[error("its proxyCertInfo extension is not critical")]
    NotCritical,
    /// The proxyCertInfo extension cannot be read.
    #[error("its proxyCertInfo extension is malformed")]
    Malformed,
    /// A Globus Toolkit 3 draft proxy.
    #[error("it is a pre-RFC 3820 (GT3) proxy certificate, which is not accepted")]
    Legacy,
    /// A policy language other than inheritAll.
    #[error("its policy language is not id-ppl-inheritAll")]
    Policy,
    /// The issuer name is not the issuing certificate's subject.
    #[error("its issuer is not the subject of the certificate it follows")]
    IssuerName,
    /// The signature does not verify with the issuing certificate's key.
    #[error("its signature does not verify with the issuer's key")]
    Signature,
    /// A signature algorithm the crypto provider does not offer (or not for that key).
    #[error("its signature algorithm is not supported for the issuer's key")]
    Algorithm,
    /// The subject is not the issuer's subject with one CN added.
    #[error("its subject is not the issuer's subject plus one CN")]
    Subject,
    /// Past its validity.
    #[error("it has expired")]
    Expired,
    /// Before its validity.
    #[error("it is not valid yet")]
    NotYetValid,
    /// Valid longer than the certificate that issued it.
    #[error("it is valid longer than its issuer")]
    OutlivesIssuer,
    /// More proxies below a proxy than its path length constraint allows.
    #[error("{below} proxy certificate(s) follow one that allows {limit}")]
    PathLength {
        /// The constraint.
        limit: u64,
        /// How many follow it.
        below: usize,
    },
    /// The issuer's key usage does not allow digital signatures.
    #[error("its issuer's key usage lacks digitalSignature")]
    IssuerKeyUsage,
    /// A proxy claiming to be a CA.
    #[error("it claims to be a CA")]
    Ca,
    /// Alternative names, which a proxy must not carry.
    #[error("it carries subject or issuer alternative names")]
    AltName,
    /// Extended key usage without client authentication.
    #[error("its extended key usage does not allow client authentication")]
    Usage,
    /// A critical extension this check does not read.
    #[error("it has an unsupported critical extension {0}")]
    CriticalExtension(String),
}

/// The proxyCertInfo of a certificate, None when it is not a proxy.
pub fn proxy_cert_info(cert: &X509Certificate<'_>) -> Result<Option<ProxyCertInfo>, ProxyError> {
    for ext in cert.extensions() {
        match ext.oid.to_id_string().as_str() {
            PROXY_CERT_INFO if !ext.critical => return Err(ProxyError::NotCritical),
            PROXY_CERT_INFO => return parse_proxy_cert_info(ext.value).map(Some),
            LEGACY_PROXY_CERT_INFO => return Err(ProxyError::Legacy),
            _ => {}
        }
    }
    Ok(None)
}

/// `ProxyCertInfo ::= SEQUENCE { pCPathLenConstraint INTEGER (0..MAX) OPTIONAL,
/// proxyPolicy SEQUENCE { policyLanguage OID, policy OCTET STRING OPTIONAL } }`.
fn parse_proxy_cert_info(value: &[u8]) -> Result<ProxyCertInfo, ProxyError> {
    let outer = der::read_only(value, der::SEQUENCE).ok_or(ProxyError::Malformed)?;
    let fields = der::elements(outer.contents).ok_or(ProxyError::Malformed)?;
    let (path_len, policy) = match fields.as_slice() {
        [len, policy] if len.tag == der::INTEGER => (Some(unsigned(len.contents)?), policy),
        [policy] => (None, policy),
        _ => return Err(ProxyError::Malformed),
    };
    if policy.tag != der::SEQUENCE {
        return Err(ProxyError::Malformed);
    }
    let policy = der::elements(policy.contents).ok_or(ProxyError::Malformed)?;
    match policy.first() {
        Some(lang) if lang.tag == der::OID && lang.contents == INHERIT_ALL => {
            Ok(ProxyCertInfo { path_len })
        }
        Some(lang) if lang.tag == der::OID => Err(ProxyError::Policy),
        _ => Err(ProxyError::Malformed),
    }
}

/// A non-negative DER INTEGER; values beyond u64 mean "no limit" in practice.
fn unsigned(contents: &[u8]) -> Result<u64, ProxyError> {
    match contents.first() {
        None => Err(ProxyError::Malformed),
        Some(b) if b & 0x80 != 0 => Err(ProxyError::Malformed),
        Some(_) => Ok(contents.iter().fold(0u64, |acc, &b| {
            acc.checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .unwrap_or(u64::MAX)
        })),
    }
}

/// Checks a proxy against the certificate that issued it (everything but the signature).
/// `now` is in seconds since the epoch; `below` is how many proxies follow this one.
pub fn check_link(
    proxy: &X509Certificate<'_>,
    info: ProxyCertInfo,
    issuer: &X509Certificate<'_>,
    below: usize,
    now: i64,
) -> Result<(), ProxyError> {
    if proxy.issuer().as_raw() != issuer.subject().as_raw() {
        return Err(ProxyError::IssuerName);
    }
    check_subject(proxy, issuer)?;
    let (validity, issued_by) = (proxy.validity(), issuer.validity());
    if now > validity.not_after.timestamp() {
        return Err(ProxyError::Expired);
    }
    if now < validity.not_before.timestamp() {
        return Err(ProxyError::NotYetValid);
    }
    // Only the end is compared: grid tools backdate a proxy's start by minutes, which
    // can precede a freshly issued short-lived user certificate's.
    if validity.not_after > issued_by.not_after {
        return Err(ProxyError::OutlivesIssuer);
    }
    if let Some(limit) = info.path_len
        && u64::try_from(below).map_or(true, |b| b > limit)
    {
        return Err(ProxyError::PathLength { limit, below });
    }
    if let Ok(Some(usage)) = issuer.key_usage()
        && !usage.value.digital_signature()
    {
        return Err(ProxyError::IssuerKeyUsage);
    }
    check_extensions(proxy)
}

/// RFC 3820 §3.4: the subject is the issuer's subject followed by exactly one RDN holding
/// one common name; the issuer's RDNs are compared byte for byte.
fn check_subject(
    proxy: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
) -> Result<(), ProxyError> {
    let contents = |raw| der::read_only(raw, der::SEQUENCE).map(|tlv| tlv.contents);
    let (Some(mine), Some(theirs)) = (
        contents(proxy.subject().as_raw()),
        contents(issuer.subject().as_raw()),
    ) else {
        return Err(ProxyError::Subject);
    };
    let added = mine.strip_prefix(theirs).ok_or(ProxyError::Subject)?;
    match der::read(added) {
        Some((rdn, [])) if rdn.tag == der::SET => {}
        _ => return Err(ProxyError::Subject),
    }
    let last = proxy.subject().iter().last().ok_or(ProxyError::Subject)?;
    match last.iter().collect::<Vec<_>>().as_slice() {
        [cn] if cn.attr_type().to_id_string() == COMMON_NAME
            && cn.as_str().is_ok_and(|v| !v.is_empty()) =>
        {
            Ok(())
        }
        _ => Err(ProxyError::Subject),
    }
}

/// No CA flag, no alternative names, client authentication allowed by any extended key
/// usage, no critical extension this check does not understand.
fn check_extensions(proxy: &X509Certificate<'_>) -> Result<(), ProxyError> {
    for ext in proxy.extensions() {
        let oid = ext.oid.to_id_string();
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) if bc.ca => return Err(ProxyError::Ca),
            ParsedExtension::SubjectAlternativeName(_)
            | ParsedExtension::IssuerAlternativeName(_) => {
                return Err(ProxyError::AltName);
            }
            ParsedExtension::ExtendedKeyUsage(eku) if !(eku.any || eku.client_auth) => {
                return Err(ProxyError::Usage);
            }
            _ => {}
        }
        if ext.critical && !UNDERSTOOD_CRITICAL.contains(&oid.as_str()) {
            return Err(ProxyError::CriticalExtension(oid));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proxy_cert_info() {
        // SEQUENCE { INTEGER 2, SEQUENCE { OID inheritAll } }
        let with_len = [
            0x30, 0x0f, 0x02, 0x01, 0x02, 0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05,
            0x07, 0x15, 0x01,
        ];
        assert_eq!(
            parse_proxy_cert_info(&with_len),
            Ok(ProxyCertInfo { path_len: Some(2) })
        );
        let mut without_len = vec![0x30, 0x0c];
        without_len.extend_from_slice(&with_len[5..]);
        assert_eq!(
            parse_proxy_cert_info(&without_len),
            Ok(ProxyCertInfo { path_len: None })
        );
    }

    #[test]
    fn refuses_other_policies_and_bad_encodings() {
        // independent (…21.2)
        let independent = [
            0x30, 0x0c, 0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x15, 0x02,
        ];
        assert_eq!(parse_proxy_cert_info(&independent), Err(ProxyError::Policy));
        // A negative path length.
        let negative = [
            0x30, 0x0f, 0x02, 0x01, 0xff, 0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05,
            0x07, 0x15, 0x01,
        ];
        assert_eq!(parse_proxy_cert_info(&negative), Err(ProxyError::Malformed));
        assert_eq!(
            parse_proxy_cert_info(&[0x30, 0x00]),
            Err(ProxyError::Malformed)
        );
        assert_eq!(
            parse_proxy_cert_info(&[0x04, 0x00]),
            Err(ProxyError::Malformed)
        );
    }

    #[test]
    fn path_lengths_beyond_u64_saturate() {
        assert_eq!(unsigned(&[0x00, 0xff]), Ok(255));
        assert_eq!(unsigned(&[0x7f; 12]), Ok(u64::MAX));
    }
}
