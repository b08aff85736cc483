//! The gate: the one access decision for an OWS request, made before anything reaches a
//! backend. It reads the request exactly once, in one unambiguous way, and refuses what a
//! backend could read differently (see [`path`] and [`crate::ows::request`]); what it
//! admits carries everything forwarding needs, so the proxy never reads the request again.
//!
//! Steps: target (service name and a checked extra path) → method → OWS request (query,
//! or the body's root element / form pairs, see [`body`]) → credentials → authorization →
//! upstream URL. The proxy and `/ows/verify` both call [`Gate::admit`].

mod body;
pub mod path;

use std::net::IpAddr;

use axum::http::{HeaderMap, Method};
use url::Url;

pub use body::ForwardBody;
use body::OwsBody;
use path::{ExtraPath, PathError};

use crate::config::{ClientVerify, Config};
use crate::error::OwsError;
use crate::ogcapi;
use crate::ows::capabilities::ByteStream;
use crate::ows::request::{self, ORIGINAL_SERVICES, OwsRequest, OwsService, RequestError};
use crate::security::{self, Credentials, Peer, TokenSource};
use crate::store::{Auth, Service, ServiceKind, Store, StoreError};
use crate::tls::ClientIdentity;
use crate::tokens::{TokenError, TokenKind, Tokens};

/// Which route the request came by: what follows the service name is the same, what the
/// gate may assume about the body is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `{protected_path}/proxy/…`: the request will be forwarded.
    Proxy,
    /// `{protected_path}/verify/…`: an nginx `auth_request` subrequest (sent without body).
    Verify,
}

impl Route {
    fn segment(self) -> &'static str {
        match self {
            Route::Proxy => "proxy",
            Route::Verify => "verify",
        }
    }
}

/// The parts of an HTTP request the gate reads.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'r> {
    /// Method.
    pub method: &'r Method,
    /// Raw (still percent-encoded) path.
    pub path: &'r str,
    /// Raw query string ("" when none).
    pub query: &'r str,
    /// Headers.
    pub headers: &'r HeaderMap,
    /// TCP peer address, when known.
    pub peer: Option<IpAddr>,
    /// The client certificate the HTTPS listener verified for this connection.
    pub certificate: Option<&'r ClientIdentity>,
}

/// Why a request was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Public service or public operation: no credential was needed.
    Public,
    /// A verified client certificate.
    Certificate,
    /// A valid token, found there.
    Token(TokenSource),
}

/// A request the gate lets through, with everything forwarding needs.
pub struct Admitted {
    /// The target service.
    pub service: Service,
    /// The backend URL: service path + checked extra path, query minus credentials.
    pub upstream: Url,
    /// The OWS request (None when `twitcher.ows_security` is off).
    pub request: Option<OwsRequest>,
    /// Why it may pass.
    pub grant: Grant,
    /// The request carried no credential at all (no token anywhere, no certificate, no
    /// `Authorization`): its answer cannot depend on who asked.
    pub anonymous: bool,
    /// The body to forward.
    pub body: ForwardBody,
    /// The kind of token that granted access (None: no token was needed), for the
    /// access log and metrics.
    pub token: Option<TokenKind>,
    /// The client certificate the HTTPS listener verified (its user's subject), for the
    /// access log and `twitcher.ows_proxy_forward_client_dn`.
    pub certificate: Option<ClientIdentity>,
}

/// Why the gate refuses a request.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    /// No service of that name.
    #[error("no such service")]
    NoService,
    /// Only GET and POST are forwarded (OWS), or the methods of [`ogcapi::rules::METHODS`].
    #[error("method not allowed")]
    Method,
    /// An `ogcapi` request naming another method in a header or parameter.
    #[error("method override")]
    MethodOverride,
    /// The extra path could leave the service's path.
    #[error("extra path refused: {0}")]
    Path(#[from] PathError),
    /// Not a supported, unambiguous OWS request.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// A compressed request body (`Content-Encoding`): never decoded here.
    #[error("content-encoded request body")]
    ContentEncoding,
    /// The body is larger than `twitcher.max_body_size` before its request is known.
    #[error("request body too large")]
    BodyTooLarge,
    /// Reading the body from the client failed.
    #[error("request body unreadable")]
    BodyUnreadable,
    /// No valid token.
    #[error("token required")]
    TokenRequired,
    /// An expired token.
    #[error("token expired")]
    TokenExpired,
    /// No verified client certificate for an `auth = cert` service.
    #[error("certificate required")]
    CertificateRequired,
    /// The registered service URL is unusable.
    #[error("service URL unusable: {0}")]
    ServiceUrl(#[from] path::UpstreamUrlError),
    /// The store failed.
    #[error("store failed: {0}")]
    Store(#[from] StoreError),
}

impl From<Denied> for OwsError {
    fn from(denied: Denied) -> OwsError {
        match denied {
            Denied::NoService => OwsError::ServiceNotFound,
            Denied::Method | Denied::MethodOverride => OwsError::MethodNotAllowed,
            Denied::Path(_) => OwsError::InvalidPath,
            Denied::Request(e) => OwsError::Request(e),
            Denied::ContentEncoding => OwsError::UnsupportedContentEncoding,
            Denied::BodyTooLarge => OwsError::BodyTooLarge,
            Denied::BodyUnreadable => OwsError::Request(RequestError::Malformed(
                "The request body could not be read.".into(),
            )),
            Denied::TokenRequired => OwsError::TokenRequired,
            Denied::TokenExpired => OwsError::TokenExpired,
            Denied::CertificateRequired => OwsError::CertificateRequired,
            Denied::ServiceUrl(e) => {
                tracing::warn!(error = %e, "registered service URL unusable");
                OwsError::BackendUnreachable
            }
            Denied::Store(e) => e.into(),
        }
    }
}

/// The gate over one store and one configuration.
#[derive(Clone, Copy)]
pub struct Gate<'a> {
    /// Registry and tokens.
    pub store: &'a dyn Store,
    /// JWT checking.
    pub tokens: &'a Tokens,
    /// Settings.
    pub config: &'a Config,
}

impl Gate<'_> {
    /// Decides on one request. `body` is read only as far as the decision needs; the rest
    /// stays in the returned [`ForwardBody`].
    pub async fn admit(
        &self,
        route: Route,
        incoming: Incoming<'_>,
        body: ByteStream,
    ) -> Result<Admitted, Denied> {
        self.decide(route, incoming, body).await.1
    }

    /// [`Gate::admit`], also naming the kind of the service addressed (when one is
    /// registered under the name), so that a refusal can be answered in its language.
    pub async fn decide(
        &self,
        route: Route,
        incoming: Incoming<'_>,
        body: ByteStream,
    ) -> (Option<ServiceKind>, Result<Admitted, Denied>) {
        let (name, raw_extra) = match split_name(&self.config.protected_path, route, incoming.path)
        {
            Ok(target) => target,
            Err(denied) => return (None, Err(denied)),
        };
        let service = self.store.service_by_name(&name).await;
        let kind = service
            .as_ref()
            .ok()
            .and_then(|s| s.as_ref().map(Service::kind));
        let extra = match ExtraPath::parse(raw_extra) {
            Ok(extra) => extra,
            // Refused before anything else, also for a name nobody registered.
            Err(e) => return (kind, Err(e.into())),
        };
        let service = match service {
            Ok(Some(service)) => service,
            Ok(None) => return (None, Err(Denied::NoService)),
            Err(e) => return (None, Err(e.into())),
        };
        (
            kind,
            self.admit_to(service, extra, route, incoming, body).await,
        )
    }

    /// The decision once the service is known.
    async fn admit_to(
        &self,
        service: Service,
        extra: ExtraPath,
        route: Route,
        incoming: Incoming<'_>,
        body: ByteStream,
    ) -> Result<Admitted, Denied> {
        let kind = service.kind();
        let api = kind == ServiceKind::OgcApi;
        if route == Route::Proxy {
            let allowed = if api {
                ogcapi::rules::METHODS.contains(incoming.method)
            } else {
                *incoming.method == Method::GET || *incoming.method == Method::POST
            };
            if !allowed {
                return Err(Denied::Method);
            }
        }
        let (ows, access) = if api {
            ogcapi::rules::check_method_override(incoming.headers, incoming.query)
                .map_err(|_| Denied::MethodOverride)?;
            let operation = ogcapi::rules::Operation::of(incoming.method, &extra);
            let access = match operation.access(service.is_public()) {
                ogcapi::rules::Access::Public => Access::Public,
                ogcapi::rules::Access::Protected => Access::Protected,
                ogcapi::rules::Access::Write => Access::Write,
            };
            (api_body(incoming.method, body), access)
        } else if self.config.ows_security {
            let ows = self
                .read_request(route, incoming, body, kind, &extra)
                .await?;
            let access = ows_access(kind, ows.request.as_ref(), &extra, &service);
            (ows, access)
        } else {
            (OwsBody::unread(incoming.method, body), Access::Public)
        };
        let peer = Peer {
            addr: incoming.peer,
            trusted: self.config.trusted_proxies.as_deref(),
        };
        // The last element of a REST path is an identifier, never a token.
        let no_path = ExtraPath::default();
        let mut credentials = security::credentials(
            incoming.query,
            incoming.headers,
            ows.form_token.as_deref(),
            if api { &no_path } else { &extra },
            peer,
        );
        if incoming.certificate.is_some() {
            credentials.certificate_verified = true;
        } else if self.config.trusted_proxies.is_none()
            && self
                .config
                .tls
                .as_ref()
                .is_some_and(|tls| tls.client_verify != ClientVerify::None)
        {
            // Certificates are checked here, so no front end is there to vouch for one:
            // `X-Ssl-Client-Verify` counts only from listed `trusted_proxies`.
            credentials.certificate_verified = false;
        }
        let (grant, token) = if self.config.ows_security {
            self.authorize(&service, access, &credentials).await?
        } else {
            (Grant::Public, None)
        };
        let anonymous = credentials.token.is_none()
            && !credentials.certificate_verified
            && !incoming
                .headers
                .contains_key(axum::http::header::AUTHORIZATION);
        let forward = self.config.forward_credentials;
        let extra = if !forward && self.path_token_is_ours(grant, &credentials).await? {
            extra.without_last_element()
        } else {
            extra
        };
        let query = if forward {
            incoming.query.to_string()
        } else {
            security::strip_token_params(incoming.query)
        };
        let upstream = path::upstream_url(&service.url, &extra, &query)?;
        Ok(Admitted {
            service,
            upstream,
            request: ows.request,
            grant,
            anonymous,
            body: ows.body,
            token,
            certificate: incoming.certificate.cloned(),
        })
    }

    /// The OWS request: the query of a GET, the body of a POST. A POST whose query also
    /// names a request must name the same one (some servers read the query of a POST).
    async fn read_request(
        &self,
        route: Route,
        incoming: Incoming<'_>,
        body: ByteStream,
        kind: ServiceKind,
        extra: &ExtraPath,
    ) -> Result<OwsBody, Denied> {
        let services = accepted_services(kind);
        let from_query = || request::parse_kvp_for(incoming.query, services);
        if *incoming.method != Method::POST {
            if let Some(rest) = restful_wmts(kind, incoming.query, extra) {
                return Ok(OwsBody::without_body(Some(rest)));
            }
            let parsed = match (route, from_query()) {
                (_, Ok(r)) => Some(r),
                (_, Err(e @ RequestError::Ambiguous(_))) | (Route::Proxy, Err(e)) => {
                    return Err(e.into());
                }
                // verify answers every method; what it cannot read counts as protected.
                (Route::Verify, Err(_)) => None,
            };
            return Ok(OwsBody::without_body(parsed));
        }
        let limit = self.config.max_body_size;
        let forward = self.config.forward_credentials;
        let read = body::read_ows_body(incoming.headers, body, limit, forward, services).await?;
        let ows = match (route, read) {
            (_, Some(ows)) => ows,
            // An empty body, as the original reported it.
            (Route::Proxy, None) if crate::form::is_form_urlencoded(incoming.headers) => {
                return Err(RequestError::Missing("service").into());
            }
            (Route::Proxy, None) => {
                return Err(RequestError::Malformed("Document is empty".into()).into());
            }
            // nginx sends the subrequest without the body: the query may still name the
            // operation (`POST ?service=WPS&request=GetCapabilities`).
            (Route::Verify, None) => match from_query() {
                Ok(r) => OwsBody::without_body(Some(r)),
                Err(e @ RequestError::Ambiguous(_)) => return Err(e.into()),
                Err(_) => OwsBody::without_body(None),
            },
        };
        if query_names_request(incoming.query) {
            let agrees = match (from_query(), &ows.request) {
                (Ok(q), Some(b)) => q.service == b.service && q.request == b.request,
                (Err(e @ RequestError::Ambiguous(_)), _) => return Err(e.into()),
                _ => false,
            };
            if !agrees {
                return Err(RequestError::Ambiguous("request").into());
            }
        }
        Ok(ows)
    }

    /// Public operations pass; `auth = cert` needs a verified certificate; everything
    /// else a valid token.
    async fn authorize(
        &self,
        service: &Service,
        access: Access,
        credentials: &Credentials,
    ) -> Result<(Grant, Option<TokenKind>), Denied> {
        if access == Access::Public {
            return Ok((Grant::Public, None));
        }
        if service.auth == Auth::Cert {
            return if credentials.certificate_verified {
                Ok((Grant::Certificate, None))
            } else {
                Err(Denied::CertificateRequired)
            };
        }
        let Some((token, source)) = &credentials.token else {
            return Err(Denied::TokenRequired);
        };
        let now = crate::clock::now();
        match self.tokens.verify_compute(self.store, token, now).await {
            Ok(kind) => Ok((Grant::Token(*source), Some(kind))),
            Err(TokenError::Expired) => Err(Denied::TokenExpired),
            Err(TokenError::Invalid) => Err(Denied::TokenRequired),
            Err(TokenError::Store(e)) => Err(Denied::Store(e)),
        }
    }

    /// Whether the last path element is a token (used or not) and so never forwarded.
    async fn path_token_is_ours(
        &self,
        grant: Grant,
        credentials: &Credentials,
    ) -> Result<bool, Denied> {
        match (&credentials.token, grant) {
            (_, Grant::Token(TokenSource::LastPathElement)) => Ok(true),
            (Some((token, TokenSource::LastPathElement)), _) => {
                let now = crate::clock::now();
                match self.tokens.verify_compute(self.store, token, now).await {
                    Ok(_) | Err(TokenError::Expired) => Ok(true),
                    // Stored but not for compute (a register token): still ours.
                    Err(TokenError::Invalid) => Ok(self.store.find_token(token).await?.is_some()),
                    Err(TokenError::Store(e)) => Err(Denied::Store(e)),
                }
            }
            _ => Ok(false),
        }
    }
}

/// Whether the query has a `request` key (any case).
fn query_names_request(query: &str) -> bool {
    url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k.to_lowercase() == "request")
}

/// The service name and the checked extra path of `{protected_path}/{route}/{name}[/…]`.
pub fn split_target(
    protected_path: &str,
    route: Route,
    path: &str,
) -> Result<(String, ExtraPath), Denied> {
    let (name, extra) = split_name(protected_path, route, path)?;
    Ok((name, ExtraPath::parse(extra)?))
}

/// The service name and the raw extra path of `{protected_path}/{route}/{name}[/…]`.
fn split_name<'p>(
    protected_path: &str,
    route: Route,
    path: &'p str,
) -> Result<(String, &'p str), Denied> {
    let rest = path
        .strip_prefix(protected_path)
        .and_then(|p| p.strip_prefix('/'))
        .and_then(|p| p.strip_prefix(route.segment()))
        .and_then(|p| p.strip_prefix('/'))
        .ok_or(Denied::NoService)?;
    let (raw_name, extra) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let name = percent_encoding::percent_decode_str(raw_name)
        .decode_utf8()
        .map_err(|_| Denied::NoService)?;
    if name.is_empty() {
        return Err(Denied::NoService);
    }
    Ok((name.into_owned(), extra))
}

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Anyone may call it.
    Public,
    /// A credential, unless the service is registered `public`.
    Protected,
    /// A credential, even on a public service.
    Write,
}

/// The OWS types a service of `kind` answers for: the original's two for its types (and
/// unknown ones), only its own for the types added since.
fn accepted_services(kind: ServiceKind) -> &'static [OwsService] {
    match kind {
        ServiceKind::Wfs => &[OwsService::Wfs],
        ServiceKind::Wcs => &[OwsService::Wcs],
        ServiceKind::Wmts => &[OwsService::Wmts],
        ServiceKind::Wps | ServiceKind::Wms | ServiceKind::OgcApi | ServiceKind::Other => {
            ORIGINAL_SERVICES
        }
    }
}

/// What an OWS request needs. For the types added since the original (WFS, WCS, WMTS) a
/// public operation is public only on the service URL itself: below it a backend routes
/// by path (GeoServer's REST tiles), and the query's `request` is not what it runs.
fn ows_access(
    kind: ServiceKind,
    request: Option<&OwsRequest>,
    extra: &ExtraPath,
    service: &Service,
) -> Access {
    let Some(request) = request else {
        return if service.is_public() {
            Access::Public
        } else {
            Access::Protected
        };
    };
    let added = matches!(
        kind,
        ServiceKind::Wfs | ServiceKind::Wcs | ServiceKind::Wmts
    );
    let on_service_url = extra.as_str().is_empty()
        || (kind == ServiceKind::Wmts && is_wmts_capabilities_path(extra));
    if request.is_write() {
        Access::Write
    } else if (request.is_public() && (!added || on_service_url)) || service.is_public() {
        Access::Public
    } else {
        Access::Protected
    }
}

/// A RESTful WMTS request (a GET naming neither `service` nor `request`): the capabilities
/// document `…/WMTSCapabilities.xml` is GetCapabilities, any other path a tile or feature
/// info (protected).
fn restful_wmts(kind: ServiceKind, query: &str, extra: &ExtraPath) -> Option<OwsRequest> {
    if kind != ServiceKind::Wmts {
        return None;
    }
    let names_operation = url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| {
        let k = k.to_lowercase();
        k == "service" || k == "request"
    });
    if names_operation {
        return None;
    }
    let caps = is_wmts_capabilities_path(extra);
    Some(OwsRequest {
        service: OwsService::Wmts,
        request: if caps { "getcapabilities" } else { "gettile" }.into(),
        version: None,
    })
}

/// Whether the path names the RESTful WMTS capabilities document (exact spelling).
fn is_wmts_capabilities_path(extra: &ExtraPath) -> bool {
    extra.as_str().rsplit('/').next() == Some("WMTSCapabilities.xml")
}

/// The body of an `ogcapi` request: streamed on as it is (the decision does not read
/// it), none for GET and HEAD (a body there is no part of the request a backend should
/// act on).
fn api_body(method: &Method, body: ByteStream) -> OwsBody {
    if *method == Method::GET || *method == Method::HEAD {
        OwsBody::without_body(None)
    } else {
        OwsBody {
            request: None,
            form_token: None,
            body: ForwardBody::Stream(body),
        }
    }
}

#[cfg(test)]
mod tests;
