//! OWS 1.1 `ExceptionReport` documents, byte-identical to the original's.

/// `exceptionCode` values the original produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionCode {
    /// A required parameter is absent.
    MissingParameterValue,
    /// A parameter has an unsupported value (also: service not found).
    InvalidParameterValue,
    /// Anything else: access refused, backend failures, malformed requests.
    NoApplicableCode,
}

impl ExceptionCode {
    /// The code as written in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionCode::MissingParameterValue => "MissingParameterValue",
            ExceptionCode::InvalidParameterValue => "InvalidParameterValue",
            ExceptionCode::NoApplicableCode => "NoApplicableCode",
        }
    }
}

/// Content type of every exception report.
pub const CONTENT_TYPE: &str = "text/xml; charset=UTF-8";

/// Renders the report exactly as the original did: fixed prolog and indentation, no
/// trailing newline, code, locator and text HTML-escaped.
pub fn render(code: ExceptionCode, locator: &str, text: &str) -> String {
    let mut out = String::with_capacity(480 + text.len());
    out.push_str(concat!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n",
        "<ExceptionReport version=\"1.0.0\"\n",
        "    xmlns=\"http://www.opengis.net/ows/1.1\"\n",
        "    xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"\n",
        "    xsi:schemaLocation=\"http://www.opengis.net/ows/1.1 http://schemas.opengis.net/ows/1.1.0/owsExceptionReport.xsd\">\n",
        "    <Exception exceptionCode=\""
    ));
    escape_into(&mut out, code.as_str());
    out.push_str("\" locator=\"");
    escape_into(&mut out, locator);
    out.push_str("\">\n        <ExceptionText>");
    escape_into(&mut out, text);
    out.push_str("</ExceptionText>\n    </Exception>\n</ExceptionReport>");
    out
}

/// Python's `html.escape(s, quote=True)`, which the original applied to every field.
fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            // Control characters are not allowed in XML 1.0; they can only come from a
            // hostile request echoed into a message, so they are replaced.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact bytes of v056 case 47 (Execute without token).
    #[test]
    fn matches_the_recorded_bytes() {
        let expected = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ExceptionReport version=\"1.0.0\"\n    xmlns=\"http://www.opengis.net/ows/1.1\"\n    xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"\n    xsi:schemaLocation=\"http://www.opengis.net/ows/1.1 http://schemas.opengis.net/ows/1.1.0/owsExceptionReport.xsd\">\n    <Exception exceptionCode=\"NoApplicableCode\" locator=\"AccessForbidden\">\n        <ExceptionText>Access token is required to access this service.</ExceptionText>\n    </Exception>\n</ExceptionReport>";
        assert_eq!(
            render(
                ExceptionCode::NoApplicableCode,
                "AccessForbidden",
                "Access token is required to access this service."
            ),
            expected
        );
    }

    #[test]
    fn escapes_like_python_html_escape() {
        let body = render(
            ExceptionCode::NoApplicableCode,
            "NoApplicableCode",
            "/no such<x>&'\"\u{1}",
        );
        assert!(
            body.contains(
                "<ExceptionText>/no such&lt;x&gt;&amp;&#x27;&quot;\u{fffd}</ExceptionText>"
            ),
            "{body}"
        );
    }
}
