//! Target 2, differential KVP: whenever `parse_kvp` accepts a query, a backend reading the
//! first value of each key (pywps), or the last, sees the same service, request and
//! version: no ambiguity survives.

use twitcher::ows::request::{OwsService, parse_kvp};

use super::reference::{self, Pick};

mod input;

pub use input::QueryInput;

/// The lower-case name of a service.
pub fn service_name(service: OwsService) -> &'static str {
    service.name()
}

/// The property for one query string.
pub fn check(query: &str) {
    let Ok(request) = parse_kvp(query) else {
        return;
    };
    for pick in [Pick::First, Pick::Last] {
        let view = reference::kvp_view(query, pick);
        let agrees = view.service.as_deref() == Some(service_name(request.service))
            && view.request.as_deref() == Some(request.request.as_str())
            && view.version == request.version;
        assert!(
            agrees,
            "parse_kvp and a backend taking the {pick:?} value disagree\n  query: {query:?}\n  \
             parse_kvp: {request:?}\n  backend: {view:?}"
        );
    }
}
