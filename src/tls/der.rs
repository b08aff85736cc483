//! Just enough DER to cut a certificate into the parts a signature covers, and a public
//! key into algorithm and key bits: the crypto provider verifies raw bytes, and
//! x509-parser does not hand these out as bytes.

/// One DER element.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    /// The tag byte (only low-tag-number form is read).
    pub tag: u8,
    /// The contents octets.
    pub contents: &'a [u8],
    /// Tag, length and contents together.
    pub whole: &'a [u8],
}

/// Tag of a SEQUENCE.
pub(crate) const SEQUENCE: u8 = 0x30;
/// Tag of a SET.
pub(crate) const SET: u8 = 0x31;
/// Tag of an INTEGER.
pub(crate) const INTEGER: u8 = 0x02;
/// Tag of a BIT STRING.
pub(crate) const BIT_STRING: u8 = 0x03;
/// Tag of an OBJECT IDENTIFIER.
pub(crate) const OID: u8 = 0x06;

/// Reads one element from the front of `input`; None when it is not well-formed DER
/// (indefinite or over-long lengths, truncation, high tag numbers).
pub(crate) fn read(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            if rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            // DER: the long form only for lengths that need it, in as few bytes as can be.
            let needed = (usize::BITS - len.leading_zeros()).div_ceil(8) as usize;
            if len < 0x80 || n != needed {
                return None;
            }
            (len, &rest[n..])
        }
        _ => return None,
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    let (contents, after) = rest.split_at(len);
    let whole = &input[..header + len];
    Some((
        Tlv {
            tag,
            contents,
            whole,
        },
        after,
    ))
}

/// Reads exactly one element of the given tag, with nothing after it.
pub(crate) fn read_only(input: &[u8], tag: u8) -> Option<Tlv<'_>> {
    match read(input)? {
        (tlv, []) if tlv.tag == tag => Some(tlv),
        _ => None,
    }
}

/// The elements of a constructed value's contents, in order.
pub(crate) fn elements(contents: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    let mut rest = contents;
    while !rest.is_empty() {
        let (tlv, after) = read(rest)?;
        out.push(tlv);
        rest = after;
    }
    Some(out)
}

/// What a certificate's signature covers and is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signed<'a> {
    /// The whole TBSCertificate element (the signed bytes).
    pub tbs: &'a [u8],
    /// The contents of the signatureAlgorithm AlgorithmIdentifier.
    pub algorithm: &'a [u8],
    /// The signature bits.
    pub signature: &'a [u8],
}

/// Cuts `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }`.
pub(crate) fn signed(cert: &[u8]) -> Option<Signed<'_>> {
    let outer = read_only(cert, SEQUENCE)?;
    match elements(outer.contents)?.as_slice() {
        [tbs, alg, sig] if tbs.tag == SEQUENCE && alg.tag == SEQUENCE => Some(Signed {
            tbs: tbs.whole,
            algorithm: alg.contents,
            signature: bit_string(*sig)?,
        }),
        _ => None,
    }
}

/// Cuts `SubjectPublicKeyInfo ::= SEQUENCE { algorithm, subjectPublicKey }` into the
/// algorithm's contents and the key bits.
pub(crate) fn public_key(spki: &[u8]) -> Option<(&[u8], &[u8])> {
    let outer = read_only(spki, SEQUENCE)?;
    match elements(outer.contents)?.as_slice() {
        [alg, key] if alg.tag == SEQUENCE => Some((alg.contents, bit_string(*key)?)),
        _ => None,
    }
}

/// The bits of a BIT STRING that is a whole number of bytes (signatures and keys are).
fn bit_string(tlv: Tlv<'_>) -> Option<&[u8]> {
    match (tlv.tag, tlv.contents.split_first()) {
        (BIT_STRING, Some((0, bits))) => Some(bits),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_lengths() {
        let (tlv, rest) = read(&[0x04, 0x02, 0xaa, 0xbb, 0xcc]).unwrap();
        assert_eq!(
            (tlv.tag, tlv.contents, rest),
            (0x04, &[0xaa, 0xbb][..], &[0xcc][..])
        );
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend(std::iter::repeat_n(7u8, 0x80));
        let (tlv, rest) = read(&long).unwrap();
        assert_eq!(
            (tlv.contents.len(), tlv.whole.len(), rest.len()),
            (0x80, 0x83, 0)
        );
    }

    #[test]
    fn refuses_what_is_not_der() {
        // Truncated, indefinite length, long form for a short length, high tag number.
        for bad in [
            &[0x04, 0x03, 0xaa][..],
            &[0x30, 0x80, 0x00, 0x00],
            &[0x04, 0x81, 0x01, 0xaa],
            &[0x1f, 0x01, 0x00],
            &[0x04, 0x82, 0x00, 0x01, 0xaa],
        ] {
            assert!(read(bad).is_none(), "{bad:02x?}");
        }
    }

    #[test]
    fn read_only_refuses_trailing_bytes_and_other_tags() {
        assert!(read_only(&[0x30, 0x00], SEQUENCE).is_some());
        assert!(read_only(&[0x30, 0x00, 0x00], SEQUENCE).is_none());
        assert!(read_only(&[0x31, 0x00], SEQUENCE).is_none());
    }

    #[test]
    fn cuts_a_signed_structure() {
        // SEQUENCE { SEQUENCE {01}, SEQUENCE {06 01 2a}, BIT STRING 00 ff ee }
        let cert = [
            0x30, 0x0d, 0x30, 0x01, 0x01, 0x30, 0x03, 0x06, 0x01, 0x2a, 0x03, 0x03, 0x00, 0xff,
            0xee,
        ];
        let s = signed(&cert).unwrap();
        assert_eq!(s.tbs, &[0x30, 0x01, 0x01]);
        assert_eq!(s.algorithm, &[0x06, 0x01, 0x2a]);
        assert_eq!(s.signature, &[0xff, 0xee]);
        // A bit string with unused bits is not a signature.
        let mut odd = cert;
        odd[12] = 0x01;
        assert!(signed(&odd).is_none());
    }
}
