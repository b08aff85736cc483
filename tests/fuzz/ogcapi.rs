//! Target 5, the `ogcapi` rules: a request is public on a service that is not only when a
//! backend reading its path (percent-decoding any number of times, in any case) finds one
//! of the public resources, read with GET or HEAD; never a job, never what lies below a
//! collection or process (items, executions), never a write.

use axum::http::Method;
use bolero::TypeGenerator;
use twitcher::gate::path::ExtraPath;
use twitcher::ogcapi::rules::{Access, Operation};

/// One path segment, biased towards the names the rules decide on and their disguises.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum Segment {
    Processes,
    Jobs,
    Collections,
    Items,
    Execution,
    Conformance,
    Api,
    Openapi,
    Empty,
    Id,
    EncodedP,
    UpperJobs,
    EncodedJobs,
    DoubleEncodedJobs,
    Semicolon,
    DotDot,
    EncodedDot,
    Space,
    Unicode,
}

impl Segment {
    /// The raw text of the segment.
    pub fn text(self) -> &'static str {
        use Segment::*;
        match self {
            Processes => "processes",
            Jobs => "jobs",
            Collections => "collections",
            Items => "items",
            Execution => "execution",
            Conformance => "conformance",
            Api => "api",
            Openapi => "openapi",
            Empty => "",
            Id => "hello-world",
            EncodedP => "%70rocesses",
            UpperJobs => "JOBS",
            EncodedJobs => "%6aobs",
            DoubleEncodedJobs => "%256aobs",
            Semicolon => "jobs;x",
            DotDot => "..",
            EncodedDot => "%2e",
            Space => "jobs%20",
            Unicode => "j%C3%B6bs",
        }
    }
}

/// A generated request: method and segments.
#[derive(Debug, Clone, TypeGenerator)]
pub struct RuleInput {
    method: u8,
    segments: Vec<Segment>,
    trailing_slash: bool,
}

impl RuleInput {
    /// The method and the raw extra path (`""` or `/a/b`).
    pub fn render(&self) -> (Method, String) {
        let methods = [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
        ];
        let method = methods[usize::from(self.method) % methods.len()].clone();
        let mut path: String = self
            .segments
            .iter()
            .take(8)
            .map(|s| format!("/{}", s.text()))
            .collect();
        if self.trailing_slash {
            path.push('/');
        }
        (method, path)
    }
}

/// A backend's most generous reading of a segment: decoded until nothing changes,
/// lowercased, parameters cut.
fn loosely(segment: &str) -> String {
    let mut s = segment.to_string();
    for _ in 0..4 {
        let next = percent_encoding::percent_decode_str(&s)
            .decode_utf8_lossy()
            .into_owned();
        if next == s {
            break;
        }
        s = next;
    }
    let s = s.split(';').next().unwrap_or_default();
    s.trim().to_lowercase()
}

/// Checks the property on one request.
pub fn check(method: &Method, raw: &str) {
    let Ok(path) = ExtraPath::parse(raw) else {
        return;
    };
    let operation = Operation::of(method, &path);
    if operation.access(false) != Access::Public {
        return;
    }
    assert!(
        *method == Method::GET || *method == Method::HEAD,
        "{method} {raw:?} is public ({operation:?})"
    );
    let segments: Vec<String> = raw.split('/').skip(1).map(loosely).collect();
    let first = segments.first().map(String::as_str).unwrap_or_default();
    assert!(
        first != "jobs",
        "{method} {raw:?} reads as a job to a lenient backend, but is public ({operation:?})"
    );
    // Public resources are at most two deep: `collections/{id}`, `processes/{id}`; below
    // them lie items and executions.
    assert!(
        segments.len() <= 2,
        "{method} {raw:?}: a public read below a collection or process ({operation:?})"
    );
    assert!(
        segments.len() < 2 || matches!(first, "processes" | "collections"),
        "{method} {raw:?}: public two deep outside processes and collections ({operation:?})"
    );
}
