//! Fuzzing of the gate, the proxy's one access decision: "a protected operation never
//! reaches a backend without a valid credential". Five bolero targets, each with its
//! property (generators, reference readings and checks in `tests/fuzz/`):
//!
//! - `fuzz_path`: an extra path is refused, or its upstream URL stays below the service
//!   path with no dot segment at any depth of percent-encoding;
//! - `fuzz_kvp`: what `parse_kvp` accepts, a backend taking the first (or last) value of
//!   each key reads the same;
//! - `fuzz_xml_root`: `scan_xml_root` agrees with roxmltree on the root, refuses DOCTYPEs,
//!   and finds on a prefix only what it finds on the whole document;
//! - `fuzz_gate`: a public grant only for what every backend reading calls public, a token
//!   grant only for the valid token, never a panic;
//! - `fuzz_ogcapi_rules`: an `ogcapi` request is public only as a GET/HEAD of a public
//!   resource, whatever a lenient backend makes of its path's encoding and case.
//!
//! Under `cargo test` each target runs a small bounded budget (below); `scripts/fuzz.sh`
//! runs them for longer. A finding becomes a named regression test at the end of this file.

mod fuzz;

use std::time::Duration;

use fuzz::gate::{GateCase, GateInput};
use fuzz::kvp::QueryInput;
use fuzz::path::PathInput;
use fuzz::xml::{Enc, XmlCase, XmlInput};

/// Iterations per target under `cargo test` (`BOLERO_RANDOM_ITERATIONS` overrides).
const ITERATIONS: usize = 10_000;
/// Time cap per target under `cargo test` (`BOLERO_RANDOM_TEST_TIME_MS` overrides).
const TIME: Duration = Duration::from_secs(2);

#[test]
fn fuzz_ogcapi_rules() {
    bolero::check!()
        .with_type::<fuzz::ogcapi::RuleInput>()
        .with_iterations(ITERATIONS)
        .with_test_time(TIME)
        .for_each(|input| {
            let (method, path) = input.render();
            fuzz::ogcapi::check(&method, &path);
        });
}

#[test]
fn fuzz_path() {
    bolero::check!()
        .with_type::<PathInput>()
        .with_iterations(ITERATIONS)
        .with_test_time(TIME)
        .for_each(|input| fuzz::path::check(&input.render()));
}

#[test]
fn fuzz_kvp() {
    bolero::check!()
        .with_type::<QueryInput>()
        .with_iterations(ITERATIONS)
        .with_test_time(TIME)
        .for_each(|input| fuzz::kvp::check(&input.render()));
}

#[test]
fn fuzz_xml_root() {
    bolero::check!()
        .with_type::<XmlInput>()
        .with_iterations(ITERATIONS)
        .with_test_time(TIME)
        .for_each(|input| fuzz::xml::check(&input.render()));
}

#[test]
fn fuzz_gate() {
    bolero::check!()
        .with_type::<GateInput>()
        .with_iterations(ITERATIONS)
        .with_test_time(TIME)
        .for_each(|input| fuzz::gate::check(&input.render()));
}

// The oracles themselves: each catches what it is there to catch.

#[test]
fn oracle_segment_escape_looks_through_every_encoding() {
    use fuzz::path::segment_escape;
    for bad in [
        "..",
        ".",
        "..;x",
        "%2e%2E",
        "%252e.",
        "%25252e%25252e",
        "a%5cb",
        "a%252Fb",
    ] {
        assert!(segment_escape(bad).is_some(), "{bad}");
    }
    for good in ["...", "a..", "%2e%2e%2e", "%25", "%", "a;b", "%zz"] {
        assert_eq!(segment_escape(good), None, "{good}");
    }
}

#[test]
fn oracle_kvp_reads_the_first_value_as_pywps() {
    use fuzz::reference::{Pick, kvp_view};
    let q = "SERVICE=wps&service=wms&Request=Get%43apabilities&request=execute&version=";
    let first = kvp_view(q, Pick::First);
    assert_eq!(first.service.as_deref(), Some("wps"));
    assert_eq!(first.request.as_deref(), Some("getcapabilities"));
    assert_eq!(first.version, None);
    assert!(first.is_public());
    let last = kvp_view(q, Pick::Last);
    assert_eq!(last.service.as_deref(), Some("wms"));
    assert!(!last.is_public());
    assert_eq!(
        fuzz::reference::unquote_plus("a+b%2B%zz%4"),
        "a b+%zz%4".to_string()
    );
}

#[test]
fn oracle_xml_view_reads_the_root_and_decodes_utf16() {
    use fuzz::reference::{decode_body, xml_view};
    let doc = r#"<?xml version="1.0"?><!-- <Execute service="WPS"> --><wps:GetCapabilities xmlns:wps="u" service="W&#80;S"/>"#;
    let view = xml_view(doc).unwrap();
    assert!(view.is_public(), "{view:?}");
    let utf16 = Enc::Utf16BeBom.encode(doc);
    assert_eq!(decode_body(&utf16).as_deref(), Some(doc));
    assert!(xml_view("<!DOCTYPE x><Execute/>").is_err());
}

#[test]
fn oracle_gate_sees_a_token_and_a_public_request() {
    let case = |method, query: &str, headers, body: &[u8]| GateCase {
        method,
        path: "/ows/proxy/emu".into(),
        query: query.into(),
        headers,
        body: body.to_vec(),
        cuts: vec![3, 7],
    };
    let (admitted, _) = fuzz::gate::admit(&case(
        "GET",
        "service=WPS&request=Execute&version=1.0.0&identifier=hello&access_token=good",
        vec![],
        b"",
    ))
    .unwrap();
    assert!(matches!(admitted.grant, twitcher::gate::Grant::Token(_)));
    let (admitted, body) = fuzz::gate::admit(&case(
        "POST",
        "",
        vec![("content-type", "text/xml")],
        br#"<GetCapabilities service="WPS"/>"#,
    ))
    .unwrap();
    assert_eq!(admitted.grant, twitcher::gate::Grant::Public);
    assert_eq!(
        body.as_deref(),
        Some(&br#"<GetCapabilities service="WPS"/>"#[..])
    );
    assert!(
        fuzz::gate::admit(&case(
            "GET",
            "service=WPS&request=Execute&version=1.0.0",
            vec![],
            b""
        ))
        .is_err()
    );
}

#[test]
fn oracle_doctype_after_comments_and_pis_is_seen() {
    use fuzz::xml::starts_with_doctype;
    assert!(starts_with_doctype(
        "<?xml version='1.0'?>\n<!-- <a> --><?p ?> <!DOCTYPE x><a/>"
    ));
    assert!(!starts_with_doctype("<!-- <!DOCTYPE x> --><a/>"));
    assert!(!starts_with_doctype("<a/><!DOCTYPE x>"));
}

#[test]
fn oracle_xml_head_is_where_a_parser_ends_the_root_start_tag() {
    use fuzz::reference::{has_doctype, xml_head, xml_view};
    let text = r#"<!--a>b--><?p x>y?><GetCapabilities service="WPS" a=">"></Broken>"#;
    let head = xml_head(text).unwrap();
    assert_eq!(
        head,
        r#"<!--a>b--><?p x>y?><GetCapabilities service="WPS" a=">"/>"#
    );
    assert!(xml_view(&head).unwrap().is_public());
    assert!(!has_doctype(&head));
    // The first element is the root, whatever the generator meant.
    let text = r#"<GetCapabilities service="WPS"><Execute service="WPS" version="1.0.0" />"#;
    assert_eq!(
        xml_head(text).unwrap(),
        r#"<GetCapabilities service="WPS"/>"#
    );
    let head = xml_head("<!DOCTYPE x [<!ENTITY e 'a>b'>]><Execute/>").unwrap();
    assert!(has_doctype(&head));
    assert_eq!(xml_head("<a b='1'<c/>"), None);
    fuzz::xml::check(&XmlCase::utf8(text));
}

// Findings, fixed since (commit "Root scan refuses what a conforming parser refuses
// before the root"): documents `scan_xml_root` read as a public request although a
// conforming parser rejects them before the root start tag ends, found by `fuzz_xml_root`
// and `fuzz_gate`. Each stays as a regression test with the input that showed it.

fn assert_refused(text: &str) {
    let case = XmlCase::utf8(text);
    assert!(fuzz::xml::scan_complete(&case.bytes()).is_err(), "{text:?}");
    fuzz::xml::check(&case);
}

#[test]
fn regression_pi_without_target() {
    assert_refused(
        r#"<? <Execute service="WPS" version="1.0.0">?><GetCapabilities service="WPS"/>"#,
    );
}

#[test]
fn regression_xml_declaration_without_version() {
    assert_refused(r#"<?xml ?><GetCapabilities service="WPS"/>"#);
}

#[test]
fn regression_non_xml_characters() {
    assert_refused("<GetCapabilities service=\"WPS\" foo=\"\0\"/>");
    assert_refused("<!--\u{1}--><GetCapabilities service=\"WPS\"/>");
}

#[test]
fn regression_unknown_entity_in_another_attribute() {
    assert_refused(r#"<GetCapabilities service="WPS" foo="&foo;"/>"#);
}

#[test]
fn regression_lt_in_attribute_value() {
    assert_refused(
        r#"<GetCapabilities service="WPS" foo='<Execute service="WPS" version="1.0.0">'/>"#,
    );
}

#[test]
fn regression_undeclared_attribute_prefix() {
    assert_refused(r#"<GetCapabilities service="WPS" foo:service="WMS"/>"#);
}

#[test]
fn regression_xmlns_prefix_on_the_root() {
    assert_refused(r#"<xmlns:GetCapabilities service="WPS"/>"#);
}

#[test]
fn regression_second_byte_order_mark() {
    for enc in [Enc::Utf8Bom, Enc::Utf16LeBom] {
        let case = XmlCase {
            enc,
            text: "\u{FEFF}<GetCapabilities service=\"WPS\"/>".into(),
            cuts: vec![],
            corrupt: None,
        };
        assert!(fuzz::xml::scan_complete(&case.bytes()).is_err(), "{enc:?}");
        fuzz::xml::check(&case);
    }
    // Through the gate, as `fuzz_gate` found it: with a form Content-Type, a reader that
    // does not skip the second mark takes the body for form pairs, not GetCapabilities.
    let mut body = b"\xEF\xBB\xBF\xEF\xBB\xBF".to_vec();
    body.extend_from_slice(br#"<GetCapabilities service="WPS"/>"#);
    let case = GateCase {
        method: "POST",
        path: "/ows/proxy/emu".into(),
        query: String::new(),
        headers: vec![("content-type", "application/x-www-form-urlencoded")],
        body,
        cuts: vec![],
    };
    assert!(fuzz::gate::admit(&case).is_err());
    fuzz::gate::check(&case);
}

#[test]
fn regression_prefix_inside_a_second_byte_order_mark() {
    // A prefix ending inside the second mark was refused with another error than the whole.
    fuzz::xml::check(&XmlCase {
        enc: Enc::Utf8Bom,
        text: "\u{FEFF}<!-- a -- b --><GetCapabilities service=\"WPS\"/>".into(),
        cuts: vec![5],
        corrupt: None,
    });
}

// Findings of the second round, fixed in `src/`: `scan_xml_root` read a public request in
// documents a conforming parser rejects before the root start tag ends.

#[test]
fn finding_non_characters() {
    for text in [
        "<!--\u{FFFE}--><GetCapabilities service=\"WPS\"/>",
        "<GetCapabilities service=\"WPS\" a=\"\u{FFFF}\"/>",
    ] {
        let case = XmlCase::utf8(text);
        assert!(fuzz::xml::scan_complete(&case.bytes()).is_err(), "{text:?}");
    }
}

#[test]
fn finding_undecodable_bytes() {
    // 0xFF in a comment (no encoding declared: UTF-8).
    let utf8 = b"<!--\xFF--><GetCapabilities service=\"WPS\"/>".to_vec();
    // A lone high surrogate (D800) in a comment of a UTF-16LE document.
    let utf16 = XmlCase {
        enc: Enc::Utf16LeBom,
        text: "<!----><GetCapabilities service=\"WPS\"/>".into(),
        cuts: vec![],
        corrupt: Some(4),
    }
    .bytes();
    for bytes in [utf8, utf16] {
        assert_eq!(fuzz::reference::decode_body(&bytes), None);
        assert!(fuzz::xml::scan_complete(&bytes).is_err(), "{bytes:?}");
    }
}

#[test]
fn finding_malformed_declaration() {
    for decl in [
        &b"<?xml version=\"1.0\" foo=\"bar\"?>"[..],
        b"<?xml version=\"1.0\" encoding=\"UTF-8\" junk?>",
        b"<?xml version=\"1.0\"encoding=\"UTF-8\"?>",
        b"<?xml version=\"1.0\" encoding=\"UTF-8\" encoding=\"UTF-8\"?>",
        b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"\xFF standalone='yes'?>",
    ] {
        let bytes = [decl, br#"<GetCapabilities service="WPS"/>"#].concat();
        let text = fuzz::reference::decode_body(&bytes).unwrap();
        assert!(fuzz::xml::scan_complete(&bytes).is_err(), "{text:?}");
    }
}

#[test]
fn finding_prefix_shorter_than_a_byte_order_mark() {
    use twitcher::ows::request::{RootScan, scan_xml_root};
    let root = r#"<GetCapabilities service="WPS"/>"#;
    let declared = format!("<?xml version='1.0'?>{root}");
    // 0xFE / 0xFF / 0xEF 0xBB, and 0x00 '<' (UTF-16BE without BOM) are refused.
    for (enc, text) in [
        (Enc::Utf16BeBom, root),
        (Enc::Utf16LeBom, root),
        (Enc::Utf8Bom, root),
        (Enc::Utf16Be, declared.as_str()),
    ] {
        let mut case = XmlCase::utf8(text);
        case.enc = enc;
        let bytes = case.bytes();
        assert!(fuzz::xml::scan_complete(&bytes).is_ok());
        for cut in 1..4 {
            assert_eq!(
                scan_xml_root(&bytes[..cut], false),
                RootScan::NeedMore,
                "{enc:?}, first {cut} bytes"
            );
        }
    }
}

#[test]
fn regression_non_ascii_bytes_in_a_declared_ascii_document() {
    // Found by `fuzz_xml_root` (seed 285743800728277328538881132144525364573): libxml2
    // refuses bytes above 0x7F in a document that declares US-ASCII.
    let text = "<?xml version=\"1.0\" encoding='us-ascii'?><!--\u{FFFE}é--><DescribeProcess service=\"WPS\" version=\"1.0.0\"/>";
    assert!(fuzz::xml::scan_complete(text.as_bytes()).is_err());
}
