//! The failed-login layer of the management routes: refuses an address with too many
//! recent failures (429), and counts a 401 answered to a request that carried
//! credentials (any `/oauth/token` request does: its client secret may be in the body).
//! Failures are logged at WARN with the address, never with what was sent.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::refusal::Refusal;
use crate::auth_throttle::{AuthThrottle, MAX_FAILURES, WINDOW};
use crate::endpoint::Endpoint;
use crate::security::Peer;

/// The table and what the layer needs to find the client's address.
#[derive(Clone)]
pub(super) struct Throttle {
    /// Failures per address.
    pub table: Arc<AuthThrottle>,
    /// `twitcher.trusted_proxies`.
    pub trusted: Option<Arc<[IpAddr]>>,
    /// `twitcher.ows_proxy_protected_path`.
    pub protected: Arc<str>,
}

/// The layer's function.
pub(super) async fn throttle(
    State(throttle): State<Throttle>,
    request: Request,
    next: Next,
) -> Response {
    let endpoint = Endpoint::of(request.uri().path(), &throttle.protected);
    let checked = matches!(
        endpoint,
        Endpoint::Rpc
            | Endpoint::OAuth
            | Endpoint::OAuthClient
            | Endpoint::Registry
            | Endpoint::Metrics
    );
    let addr = checked
        .then(|| client_address(&request, throttle.trusted.as_deref()))
        .flatten();
    let Some(addr) = addr else {
        return next.run(request).await;
    };
    let now = Instant::now();
    if let Some(wait) = throttle.table.blocked(addr, now) {
        return Refusal::TooManyFailures(wait).response(endpoint.language());
    }
    let counts =
        endpoint == Endpoint::OAuth || request.headers().contains_key(header::AUTHORIZATION);
    let response = next.run(request).await;
    if counts && response.status() == StatusCode::UNAUTHORIZED {
        let failures = throttle.table.failed(addr, now);
        if failures >= MAX_FAILURES {
            tracing::warn!(
                address = %addr,
                route = endpoint.as_str(),
                failures,
                "authentication failed; further attempts from this address are refused for {} s",
                WINDOW.as_secs()
            );
        } else {
            tracing::warn!(address = %addr, route = endpoint.as_str(), failures, "authentication failed");
        }
    }
    response
}

/// The client's address: the TCP peer, or the last address of `X-Forwarded-For` when the
/// peer is a proxy whose forwarded headers are believed (`twitcher.trusted_proxies`, or
/// loopback when none are configured): behind nginx every peer is nginx. None for a
/// loopback peer that forwards nothing: the host's own tools (twitcherctl, scripts,
/// health checks) are not throttled, and a proxy on the host names its client.
fn client_address(request: &Request, trusted: Option<&[IpAddr]>) -> Option<IpAddr> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())?;
    let believed = Peer {
        addr: Some(peer),
        trusted,
    }
    .may_forward_scheme();
    match (believed, forwarded_for(request.headers())) {
        (true, Some(forwarded)) => Some(forwarded),
        _ if peer.is_loopback() => None,
        _ => Some(peer),
    }
}

/// The address the nearest proxy appended to `X-Forwarded-For`.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?;
    let entry = last.to_str().ok()?.rsplit(',').next()?.trim();
    entry.parse().ok()
}
