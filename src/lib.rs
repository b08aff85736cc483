//! twitcher: a security proxy for OGC Web Services (WPS, WMS, WFS, WCS, WMTS) and OGC API
//! services ([`ogcapi`]), a drop-in replacement for the Python Twitcher.
//!
//! An OWS request flows one way: [`router`] → [`gate`] (the one access decision: it
//! reads the request with [`ows::request`], finds credentials with [`security`], checks
//! them with [`tokens`]) → [`proxy`] → backend → response filtering
//! ([`ows::capabilities`] rewrites URLs while streaming) → client; errors become reports
//! in [`error`]. [`verify`] asks the gate the same question without forwarding.
//!
//! Management: [`rpc`] (XML-RPC at `/RPC2`), [`oauth`] (client registration and the
//! client-credentials grant, tokens from [`tokens`]), [`api`] (REST `/services`), sharing
//! the registration rules of [`registry`] and the basic auth of [`basic_auth`].
//! State lives behind the [`store::Store`] trait; settings come from [`config`]; [`server`]
//! accepts the connections, holds them to their timeouts and drains them on shutdown.

pub mod access_log;
pub mod api;
pub mod app;
pub mod auth_throttle;
pub mod basic_auth;
pub mod clock;
pub mod config;
pub mod endpoint;
pub mod error;
pub mod form;
pub mod frontpage;
pub mod gate;
pub mod json;
pub mod metrics;
pub mod middleware;
pub mod oauth;
pub mod ogcapi;
pub mod ows;
pub mod proxy;
pub mod registry;
pub mod router;
pub mod rpc;
pub mod security;
pub mod server;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod verify;

pub use app::App;
pub use router::router as app;
