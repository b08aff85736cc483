//! Reading a POST body just far enough to decide: up to the XML root start tag (the rest
//! streams on untouched), or the whole form body (bounded). The body's kind comes from its
//! bytes ([`crate::ows::body::classify`]), not its Content-Type; compressed bodies are
//! refused, never guessed at.

use axum::http::{HeaderMap, Method, header};
use bytes::Bytes;
use futures_util::{StreamExt, stream};

use super::Denied;
use crate::ows::body::{BodyKind, classify, is_xml_space};
use crate::ows::capabilities::ByteStream;
use crate::ows::request::{self, OwsRequest, OwsService, RootScan};
use crate::security;

/// The body to send to the backend.
pub enum ForwardBody {
    /// No body (GET).
    None,
    /// A body read whole (form bodies, credentials removed).
    Whole(Bytes),
    /// A streamed body: the bytes read for the decision, then the rest as it arrives.
    Stream(ByteStream),
}

/// What the gate read from a request's body.
pub(super) struct OwsBody {
    /// The OWS request, when one could be read.
    pub(super) request: Option<OwsRequest>,
    /// The `access_token` field of a form body.
    pub(super) form_token: Option<String>,
    /// The body for the backend.
    pub(super) body: ForwardBody,
}

impl OwsBody {
    /// A bodiless request (GET, or a verify subrequest) with what its query said.
    pub(super) fn without_body(request: Option<OwsRequest>) -> OwsBody {
        OwsBody {
            request,
            form_token: None,
            body: ForwardBody::None,
        }
    }

    /// With `twitcher.ows_security` off: nothing is read, a POST body streams as it is.
    pub(super) fn unread(method: &Method, body: ByteStream) -> OwsBody {
        OwsBody {
            request: None,
            form_token: None,
            body: if *method == Method::POST {
                ForwardBody::Stream(body)
            } else {
                ForwardBody::None
            },
        }
    }
}

/// Reads the OWS request of a POST body; `None` for a body with nothing but whitespace
/// (what the caller makes of that depends on the route). The root element is looked for
/// again only when the buffer has doubled since the last look, so a body arriving in many
/// small chunks costs at most twice a single scan.
pub(super) async fn read_ows_body(
    headers: &HeaderMap,
    mut body: ByteStream,
    limit: usize,
    forward_credentials: bool,
    services: &[OwsService],
) -> Result<Option<OwsBody>, Denied> {
    if is_content_encoded(headers) {
        return Err(Denied::ContentEncoding);
    }
    let form = crate::form::is_form_urlencoded(headers);
    let mut prefix: Vec<u8> = Vec::new();
    let mut complete = false;
    let mut kind = BodyKind::NeedMore;
    let mut scanned_at = 0;
    let request = loop {
        if !complete {
            match body.next().await {
                Some(chunk) => prefix.extend_from_slice(&chunk.map_err(unreadable)?),
                None => complete = true,
            }
        }
        if kind == BodyKind::NeedMore {
            if complete && prefix.iter().all(|b| is_xml_space(*b)) {
                return Ok(None);
            }
            kind = classify(&prefix, complete, form);
        }
        match kind {
            BodyKind::NeedMore if prefix.len() > limit => return Err(Denied::BodyTooLarge),
            BodyKind::NeedMore => {}
            BodyKind::Form => {
                while !complete {
                    match body.next().await {
                        Some(chunk) => prefix.extend_from_slice(&chunk.map_err(unreadable)?),
                        None => complete = true,
                    }
                    if prefix.len() > limit {
                        return Err(Denied::BodyTooLarge);
                    }
                }
                return form_body(&prefix, forward_credentials, services).map(Some);
            }
            BodyKind::Xml(_) if !complete && prefix.len() < 2 * scanned_at => {}
            BodyKind::Xml(_) => {
                scanned_at = prefix.len();
                match request::scan_xml_root_for(&prefix, complete, services) {
                    RootScan::Found(result) => break result?,
                    RootScan::NeedMore if prefix.len() > limit => {
                        return Err(Denied::BodyTooLarge);
                    }
                    RootScan::NeedMore => {}
                }
            }
        }
    };
    let head = stream::once(async move { Ok(Bytes::from(prefix)) });
    Ok(Some(OwsBody {
        request: Some(request),
        form_token: None,
        body: ForwardBody::Stream(Box::pin(head.chain(body))),
    }))
}

fn unreadable(e: std::io::Error) -> Denied {
    tracing::debug!(error = %e, "client request body failed");
    Denied::BodyUnreadable
}

/// A `Content-Encoding` other than `identity`: the bytes are not the document.
fn is_content_encoded(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .any(|coding| !coding.trim_ascii().eq_ignore_ascii_case(b"identity"))
}

/// A whole form body: the OWS request from its pairs, its `access_token` field, and the
/// body to forward (without the token fields unless credentials are forwarded).
fn form_body(
    body: &[u8],
    forward_credentials: bool,
    services: &[OwsService],
) -> Result<OwsBody, Denied> {
    let text = String::from_utf8_lossy(body);
    let request = request::parse_kvp_for(&text, services)?;
    let form_token = url::form_urlencoded::parse(body)
        .filter(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())
        .last()
        .filter(|v| !v.is_empty());
    let forwarded = if forward_credentials {
        text.into_owned()
    } else {
        security::strip_token_params(&text)
    };
    Ok(OwsBody {
        request: Some(request),
        form_token,
        body: ForwardBody::Whole(Bytes::from(forwarded)),
    })
}
