//! Who a verified client certificate names: the subject of the end-entity certificate
//! (the user's, never a proxy's), written as RFC 4514 writes a DN, the form nginx's
//! `$ssl_client_s_dn` gives, so logs and upstream headers read the same either way.

use std::fmt::Write;

use x509_parser::x509::X509Name;

/// The client a verified certificate chain identifies (a request extension on HTTPS
/// connections).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// Subject DN of the end-entity certificate (RFC 4514, ASCII only).
    pub subject: String,
    /// How many RFC 3820 proxy certificates stood in front of it (0: none).
    pub proxies: usize,
}

/// A DN in RFC 4514 form: last RDN first, `,` between RDNs, `+` inside one. Values that
/// are not strings are written `#` and the hex of their contents; bytes outside printable
/// ASCII are hex-escaped (`\C3\A9`), so the result is always a valid header value.
pub fn rfc4514(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    for (i, rdn) in name
        .iter()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attr.attr_type().to_id_string();
            out.push_str(short_name(&oid).unwrap_or(&oid));
            out.push('=');
            match attr.as_str() {
                Ok(value) => escape_value(value, &mut out),
                Err(_) => {
                    out.push('#');
                    for b in attr.as_slice() {
                        let _ = write!(out, "{b:02x}");
                    }
                }
            }
        }
    }
    out
}

/// The names RFC 4514 (and OpenSSL, for the e-mail address) gives attribute types.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

fn escape_value(value: &str, out: &mut String) {
    let last = value.len().saturating_sub(1);
    for (i, c) in value.char_indices() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
            out.push(c);
        } else if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "\\{b:02X}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(value: &str) -> String {
        let mut out = String::new();
        escape_value(value, &mut out);
        out
    }

    #[test]
    fn escapes_as_rfc4514_says() {
        assert_eq!(escaped("Doe, John"), "Doe\\, John");
        assert_eq!(escaped("#1 fan "), "\\#1 fan\\ ");
        assert_eq!(escaped(" a+b;c<d>\"e\\"), "\\ a\\+b\\;c\\<d\\>\\\"e\\\\");
        assert_eq!(escaped("Müller"), "M\\C3\\BCller");
        assert_eq!(escaped("a\nb"), "a\\0Ab");
        assert_eq!(
            escaped("https://esgf.org/openid/alice"),
            "https://esgf.org/openid/alice"
        );
    }

    #[test]
    fn writes_the_last_rdn_first() {
        // SEQUENCE { SET { SEQ { O, "ESGF" } }, SET { SEQ { CN, "alice" } } }
        let der = [
            0x30, 0x1f, 0x31, 0x0d, 0x30, 0x0b, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x04, b'E',
            b'S', b'G', b'F', 0x31, 0x0e, 0x30, 0x0c, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x05,
            b'a', b'l', b'i', b'c', b'e',
        ];
        let (_, name) = <X509Name as x509_parser::prelude::FromDer<_>>::from_der(&der).unwrap();
        assert_eq!(rfc4514(&name), "CN=alice,O=ESGF");
    }
}
