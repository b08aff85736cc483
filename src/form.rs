//! Form-encoded (`application/x-www-form-urlencoded`) request bodies: recognising them and
//! reading their parameters together with the query string's.

use axum::body::Body;
use axum::http::{HeaderMap, header};

/// True when the request declares a form-encoded body.
pub fn is_form_urlencoded(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// The form body is larger than the caller reads (each endpoint answers in its own words).
#[derive(Debug, thiserror::Error)]
#[error("form body too large")]
pub struct BodyTooLarge;

/// Query string and (for form-encoded bodies of at most `limit` bytes) form body
/// parameters, in that order.
pub async fn params(
    headers: &HeaderMap,
    query: Option<&str>,
    body: Body,
    limit: usize,
) -> Result<Vec<(String, String)>, BodyTooLarge> {
    let mut params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    if is_form_urlencoded(headers) {
        let bytes = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| BodyTooLarge)?;
        params.extend(url::form_urlencoded::parse(&bytes).into_owned());
    }
    Ok(params)
}
