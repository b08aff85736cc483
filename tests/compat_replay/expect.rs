//! What twitcher must answer to a recorded exchange (`Want`, `Expect`), the expectations
//! T05 and T06 share, and the documents twitcher writes where it deviates (exception
//! reports, XML-RPC faults). The per-case tables are `expect_t05` and `expect_t06`.

/// exceptionCode `NoApplicableCode`, also the locator of twitcher's generic reports.
pub const NAC: &str = "NoApplicableCode";
/// Content-Type of twitcher's exception reports.
pub const REPORT_CT: &str = "text/xml; charset=UTF-8";
/// Content-Type of twitcher's XML-RPC answers.
pub const RPC_CT: &str = "text/xml; charset=UTF-8";
/// Content-Type of twitcher's JSON answers.
pub const JSON_CT: &str = "application/json";
/// The challenge of a 401 from `/RPC2` and the management routes.
pub const CHALLENGE: &[(&str, Option<&str>)] =
    &[("www-authenticate", Some("Basic realm=\"twitcher\""))];

const NOT_ACCEPTABLE: &str = "NotAcceptable";
const NOT_REACHABLE: &str = "Request failed: the service is not reachable.";
const COMPLY: &str = "The server could not comply with the request since it is either malformed or otherwise incorrect.";
const ALLOW: &[(&str, Option<&str>)] = &[("allow", Some("GET, POST"))];

/// What twitcher must answer to one recorded exchange.
#[derive(Clone, Copy, Debug)]
pub enum Want {
    /// Status, Content-Type and body as recorded (body compared by its kind: XML for
    /// documents the original re-serialized, JSON values, echo descriptions, else bytes).
    Recorded,
    /// As recorded, but with these replacements in the body (recorded addresses).
    RecordedWith(&'static [(&'static str, &'static str)]),
    /// What the backend answered (status, Content-Type, body with these replacements).
    Backend(&'static [(&'static str, &'static str)]),
    /// An exception report of twitcher: status, exceptionCode, locator, text (exact bytes).
    Report(u16, &'static str, &'static str, &'static str),
    /// An exception report whose text starts with the given prefix.
    ReportPrefix(u16, &'static str, &'static str, &'static str),
    /// 200 `application/json` with exactly this body.
    Json(&'static str),
    /// `/info`, `/versions`: the recorded bytes except author, email and version (D-INFO).
    Info,
    /// An XML-RPC fault of twitcher: HTTP status, `faultCode`, `faultString` (exact bytes,
    /// written as Python's `xmlrpc.client.dumps` writes a fault).
    Fault(u16, i32, &'static str),
    /// Exactly this status, Content-Type (`None`: no such header) and body.
    Answer(u16, Option<&'static str>, &'static str),
    /// The recorded answer of another case of the same family (status, Content-Type, body).
    RecordedOf(u32),
    /// A token response of `/oauth/token` with these scopes (200, Python-formatted JSON; the
    /// token masked, it must be 30 characters `[A-Za-z0-9]`).
    Token(&'static str),
    /// `/__api__`: an OpenAPI 3 document with twitcher's version that describes every path
    /// and method of the recorded document.
    OpenApi,
}

/// The expectation of one exchange.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    /// Deviations of `compat/DEVIATIONS.md` that cover this exchange (empty: it matches).
    pub deviations: &'static [&'static str],
    /// What twitcher answers.
    pub want: Want,
    /// Response headers to check: `Some(value)` must be present with that value (recorded
    /// addresses), `None` must be absent.
    pub headers: &'static [(&'static str, Option<&'static str>)],
    /// The upstream request target the backend must see, where it differs from the
    /// recording by more than D-CREDENTIALS' query/header stripping (path tokens).
    pub upstream_target: Option<&'static str>,
}

impl Expect {
    /// The recording itself.
    pub const fn matches() -> Expect {
        Expect {
            deviations: &[],
            want: Want::Recorded,
            headers: &[],
            upstream_target: None,
        }
    }

    /// `want` instead of the recording, for the reasons these deviations give.
    pub const fn deviates(deviations: &'static [&'static str], want: Want) -> Expect {
        Expect {
            deviations,
            want,
            headers: &[],
            upstream_target: None,
        }
    }

    /// The expectation with these response headers checked.
    pub const fn headers(self, headers: &'static [(&'static str, Option<&'static str>)]) -> Expect {
        Expect { headers, ..self }
    }

    /// The expectation with this upstream request target.
    pub const fn upstream(self, target: &'static str) -> Expect {
        Expect {
            upstream_target: Some(target),
            ..self
        }
    }
}

/// A method other than GET and POST on the proxy.
pub fn methods() -> Expect {
    Expect::deviates(&["D-METHODS"], Want::Report(405, NAC, NAC, COMPLY)).headers(ALLOW)
}

/// A POST body that is not well-formed XML.
pub fn malformed(text: &'static str) -> Expect {
    Expect::deviates(&["D-MALFORMED-XML"], Want::Report(400, NAC, NAC, text))
}

/// A backend that does not accept connections.
pub fn backend_down() -> Expect {
    Expect::deviates(
        &["D-BACKEND-DOWN"],
        Want::Report(502, NAC, NOT_ACCEPTABLE, NOT_REACHABLE),
    )
}

/// An unknown path: twitcher's 404 report naming it.
pub fn not_found(path: &'static str) -> Expect {
    Expect::deviates(&["D-NOT-FOUND"], Want::Report(404, NAC, NAC, path))
}

/// The OWS exception report as the original wrote it (SPEC §5, the READMEs).
pub fn report(code: &str, locator: &str, text: &str) -> String {
    format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n",
            "<ExceptionReport version=\"1.0.0\"\n",
            "    xmlns=\"http://www.opengis.net/ows/1.1\"\n",
            "    xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"\n",
            "    xsi:schemaLocation=\"http://www.opengis.net/ows/1.1 http://schemas.opengis.net/ows/1.1.0/owsExceptionReport.xsd\">\n",
            "    <Exception exceptionCode=\"{}\" locator=\"{}\">\n",
            "        <ExceptionText>{}</ExceptionText>\n",
            "    </Exception>\n",
            "</ExceptionReport>"
        ),
        html_escape(code),
        html_escape(locator),
        html_escape(text)
    )
}

/// An XML-RPC fault as Python's `xmlrpc.client.dumps` writes one (SPEC §6).
pub fn fault_xml(code: i32, text: &str) -> String {
    let text = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        concat!(
            "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n",
            "<member>\n<name>faultCode</name>\n<value><int>{}</int></value>\n</member>\n",
            "<member>\n<name>faultString</name>\n<value><string>{}</string></value>\n</member>\n",
            "</struct></value>\n</fault>\n</methodResponse>\n"
        ),
        code, text
    )
}

/// Text escaped as Python's `html.escape` does (the original's reports).
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}
