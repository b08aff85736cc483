//! The families (T05, T06) and groups of golden cases, and the test name of each case.

use crate::transcript::Case;

/// The original release a recording was made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// Twitcher 0.5.6 (`compat/golden/v056`).
    T05,
    /// Twitcher 0.6.0 (`compat/golden/v060`).
    T06,
}

/// The interface a replayed case belongs to (one module of test names each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// T05 `/RPC2`.
    T05Rpc,
    /// T05 `/ows/proxy`.
    T05Ows,
    /// T05 `/`, `/info`, `/versions`, unknown paths.
    T05Other,
    /// T06 `/oauth/client`, `/oauth/token`.
    T06OAuth,
    /// T06 `/services`.
    T06Rest,
    /// T06 `/ows/proxy`.
    T06Ows,
    /// T06 tutorial curl runs against the proxy.
    T06Tutorial,
    /// T06 `/`, `/info`, `/versions`, unknown paths.
    T06Other,
    /// T06 `/__api__`, `/api-explorer`.
    T06OpenApi,
}

impl Group {
    /// Every group, in report order.
    pub const ALL: [Group; 9] = [
        Group::T05Rpc,
        Group::T05Ows,
        Group::T05Other,
        Group::T06OAuth,
        Group::T06Rest,
        Group::T06Ows,
        Group::T06Tutorial,
        Group::T06Other,
        Group::T06OpenApi,
    ];

    /// The group's name in `target/compat-report.txt` and `compat/MATRIX.md`.
    pub fn label(self) -> &'static str {
        match self {
            Group::T05Rpc => "T05 XML-RPC",
            Group::T05Ows => "T05 OWS",
            Group::T05Other => "T05 other routes",
            Group::T06OAuth => "T06 OAuth",
            Group::T06Rest => "T06 REST",
            Group::T06Ows => "T06 OWS",
            Group::T06Tutorial => "T06 tutorial",
            Group::T06Other => "T06 other routes",
            Group::T06OpenApi => "T06 OpenAPI",
        }
    }

    /// The test-name prefix of the group's cases, so `-- t05::xmlrpc` selects them.
    pub fn module(self) -> &'static str {
        match self {
            Group::T05Rpc => "t05::xmlrpc",
            Group::T05Ows => "t05::ows",
            Group::T05Other => "t05::other_routes",
            Group::T06OAuth => "t06::oauth",
            Group::T06Rest => "t06::rest",
            Group::T06Ows => "t06::ows",
            Group::T06Tutorial => "t06::tutorial",
            Group::T06Other => "t06::other_routes",
            Group::T06OpenApi => "t06::openapi",
        }
    }

    /// The management interfaces answer Python-formatted JSON: compared byte for byte.
    pub fn exact_json(self) -> bool {
        matches!(self, Group::T06OAuth | Group::T06Rest | Group::T06OpenApi)
    }

    /// Response headers of twitcher's own making compared in this group: as recorded when the
    /// exchange matches its recording, else as the expectation lists them (absent otherwise).
    pub fn app_headers(self) -> &'static [&'static str] {
        match self {
            Group::T05Rpc => &["www-authenticate", "allow"],
            Group::T06OAuth | Group::T06Rest | Group::T06OpenApi => {
                &["cache-control", "pragma", "www-authenticate", "allow"]
            }
            _ => &[],
        }
    }
}

/// The test name of a replayed case: `t05::xmlrpc::case_003_rpc_generate_token_odd_args`
/// (the number padded so that names sort in recorded order).
pub fn test_name(group: Group, case: &Case) -> String {
    let slug: String = case
        .slug
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{}::case_{:03}_{slug}", group.module(), case.number)
}
