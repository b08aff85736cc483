//! OGC API services (`ogcapi`: Processes, Features, Records over REST) behind the gate:
//! the access rules on method + path ([`rules`]), refusals as RFC 7807 problem documents
//! ([`problem`]), and links in answers rewritten to lead back through the proxy
//! ([`links`]). The gate applies the rules; the proxy rewrites the answers.

pub mod links;
pub mod problem;
pub mod rules;
