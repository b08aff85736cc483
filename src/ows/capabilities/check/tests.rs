//! The [`Checker`] on its own, fed every way a body can be cut in two and byte by byte.

use super::*;

/// Checks `rest`, the bytes after `<r>` (or after `<r/>` if `empty`), cut in every way
/// tried; all cuts must agree, and the verdict (with the error message) is returned.
fn verdict(rest: &[u8], empty: bool) -> Result<(), String> {
    let run = |parts: &[&[u8]]| {
        let mut checker = Checker::after_root(b"r", empty, 3);
        for part in parts {
            checker.feed(part).map_err(|e| e.to_string())?;
        }
        checker.finish().map_err(|e| e.to_string())
    };
    let whole = run(&[rest]);
    for at in 0..=rest.len() {
        let (a, b) = rest.split_at(at);
        assert_eq!(run(&[a, &[], b]), whole, "cut at {at}: {rest:?}");
    }
    let bytes: Vec<&[u8]> = rest.chunks(1).collect();
    assert_eq!(run(&bytes), whole, "byte by byte: {rest:?}");
    if let Err(e) = &whole {
        assert!(e.starts_with("malformed XML"), "{e}");
    }
    whole
}

#[track_caller]
fn ok(rest: &str) {
    if let Err(e) = verdict(rest.as_bytes(), false) {
        panic!("{rest:?} refused: {e}");
    }
}

#[track_caller]
fn bad(rest: &str, why: &str) {
    match verdict(rest.as_bytes(), false) {
        Ok(()) => panic!("{rest:?} accepted"),
        Err(e) => assert!(e.contains(why), "{rest:?}: {e}"),
    }
}

#[test]
fn well_formed_content_passes() {
    ok("</r>");
    ok("</r >\r\n\t");
    ok("text > with ] and ]] and ]>, &amp; &#38; &#x26; &lt;&e-1.x;</r>");
    ok("<a/><a /><a b='1'/><a\tb = \"x>y\" c='\"'\n/><a></a ><a\n></a\n>\n</r>");
    ok("<a b=\"&amp;&#60;&#x3c;'\">&quot;</a></r>");
    ok("<ns:a xmlns:ns='urn:x'><ns:b.c-d_1>x</ns:b.c-d_1></ns:a></r>");
    ok("<caf\u{e9}:\u{fc}>non-ASCII names</caf\u{e9}:\u{fc}></r>");
    ok("<![CDATA[ <not/> & ]] ]> ]]]></r>");
    ok("<![CDATA[]]><!----><!-- - -><- --><?pi?><?pi  data ? ?? >?><?xml-stylesheet x?></r>");
    ok("<?xm?><?xmlx?><?Xm-l?></r>");
    ok("</r> \n<!-- after --> <?pi after?>\r\n");
}

#[test]
fn empty_root_allows_only_misc() {
    for rest in ["", " \n", "<!-- c -->\n<?pi x?>"] {
        assert_eq!(verdict(rest.as_bytes(), true), Ok(()), "{rest:?}");
    }
    for rest in ["x", "<a/>", "</r>", "<![CDATA[x]]>", "&amp;", "<!-- c"] {
        assert!(verdict(rest.as_bytes(), true).is_err(), "{rest:?}");
    }
}

#[test]
fn end_tags_must_match() {
    bad("<a></b></r>", "does not match <a>");
    bad("<a></ab></r>", "does not match <a>");
    bad("<ab></a></r>", "does not match <ab>");
    bad("<a></A></r>", "does not match <a>");
    bad("</x>", "does not match <r>");
    bad("</>", "does not match <r>");
    bad("</ r>", "does not match <r>");
    bad("<a><b></a></b></r>", "does not match <b>");
    bad("</r x>", "unexpected byte in an end tag");
}

#[test]
fn truncation_is_an_error() {
    for rest in [
        "",
        "text",
        "<a>",
        "<a",
        "<a b",
        "<a b=",
        "<a b=\"1",
        "<a/",
        "</r",
        "</r ",
        "&amp",
        "]]",
        "<!-- x",
        "<!-- x --",
        "<![CDATA[ x ]]",
        "<![CDA",
        "<?pi x ?",
        "<?pi",
        "<",
        "<!",
        "</r><!-- after",
        "</r><?pi",
    ] {
        bad(rest, "the document ends at byte");
    }
    bad("<a><b>", "ends at byte 9 inside <b>");
    bad("</r><!-- x", "inside markup after the root element");
}

#[test]
fn only_misc_after_the_root() {
    bad("</r>junk", "text after the root element");
    bad("</r>\n&amp;", "text after the root element");
    bad("</r><second/>", "element after the root element");
    bad("</r></r>", "end tag after the root element");
    bad("</r><![CDATA[x]]>", "not starting a comment or CDATA");
    bad("</r><!DOCTYPE r>", "not starting a comment or CDATA");
}

#[test]
fn stray_lt_is_an_error() {
    bad("a < b</r>", "`<` not followed by a name");
    bad("<></r>", "`<` not followed by a name");
    bad("< a/></r>", "`<` not followed by a name");
    bad("<1a/></r>", "`<` not followed by a name");
    bad("<a<b/></r>", "start tag's name");
    bad("<a b=\"x<y\"/></r>", "`<` in an attribute value");
}

#[test]
fn attributes_must_be_quoted() {
    bad("<a b=1/></r>", "without quotes");
    bad("<a b/></r>", "without `=`");
    bad("<a b c='1'/></r>", "without `=`");
    bad("<a \"x\"/></r>", "unexpected byte in a start tag");
    bad(
        "<a b='1'c='2'/></r>",
        "no whitespace after an attribute value",
    );
    bad("<a b='1\"/>text", "the document ends");
    bad("<a b='1\"/></r>", "`<` in an attribute value");
    bad("<a/ ></r>", "`/` not followed by `>`");
}

#[test]
fn comments_cdata_and_pis() {
    bad("<!-- a -- b --></r>", "`--` in a comment");
    bad("<!-- a ---></r>", "`--` in a comment");
    bad("<!- x --></r>", "not starting a comment");
    bad("<!DOCTYPE r></r>", "not starting a comment or CDATA");
    bad("<![CDAT[x]]></r>", "not starting a CDATA section");
    bad("<![cdata[x]]></r>", "not starting a CDATA section");
    bad("<?xml version=\"1.0\"?></r>", "target `xml`");
    bad("<?XmL?></r>", "target `xml`");
    bad("<? x?></r>", "without a target");
    bad("<?a?b?></r>", "after a processing instruction target");
    bad("<?a\"?></r>", "processing instruction target");
}

#[test]
fn text_and_references() {
    bad("a ]]> b</r>", "`]]>` in text");
    bad("a ]]]> b</r>", "`]]>` in text");
    for rest in [
        "a & b</r>",
        "&;</r>",
        "&#;</r>",
        "&#x;</r>",
        "&#X41;</r>",
        "&#12a;</r>",
        "&#xg;</r>",
        "&a b;</r>",
        "<a b='&'/></r>",
        "<a b='&#;'/></r>",
    ] {
        bad(rest, "`&` not starting an entity or character reference");
    }
}

#[test]
fn nesting_and_names_are_bounded() {
    let nested = |depth: usize| {
        format!(
            "{}{}</r>",
            "<a>".repeat(depth - 1),
            "</a>".repeat(depth - 1)
        )
    };
    let mut checker = Checker::after_root(b"r", false, 0);
    checker
        .feed(nested(MAX_DEPTH).as_bytes())
        .expect("deepest nesting allowed");
    checker.finish().expect("closed");
    let mut checker = Checker::after_root(b"r", false, 0);
    let error = checker
        .feed(nested(MAX_DEPTH + 1).as_bytes())
        .expect_err("too deep");
    assert!(error.to_string().contains("nested deeper"), "{error}");

    let name = "n".repeat(MAX_NAME);
    ok(&format!("<{name}></{name}></r>"));
    bad(&format!("<{name}x/></r>"), "element name longer than");
}

#[test]
fn errors_say_where() {
    let mut checker = Checker::after_root(b"r", false, 100);
    checker.feed(b"<a>").expect("fine so far");
    let error = checker.feed(b"</b>").expect_err("mismatch");
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    assert_eq!(
        error.to_string(),
        "malformed XML at byte 105: end tag does not match <a>"
    );
}

#[test]
fn the_root_name_is_kept_whatever_its_length() {
    // Its length was bounded by the prolog limit; only names below it are limited here.
    let root = "r".repeat(MAX_NAME * 2);
    let mut checker = Checker::after_root(root.as_bytes(), false, 0);
    checker
        .feed(format!("<a/></{root}>").as_bytes())
        .expect("matches");
    checker.finish().expect("closed");
}
