//! `twitcherctl`, the command line client of the twitcher security proxy.
//!
//! It drives a twitcher server (ours, or the Python originals 0.5/0.6) over XML-RPC
//! (`/RPC2`), REST (`/services`) and OAuth2 (`/oauth/…`), and prints results the way the
//! original Python client did. The binary is a thin shell around these modules:
//!
//! - [`cli`]: the command line, parsed into an [`cli::Invocation`];
//! - [`client`]: [`client::Client`], one method per operation, picking the interface;
//! - [`xmlrpc`]: the XML-RPC codec;
//! - [`pyrepr`]: results printed as Python literals;
//! - [`names`]: random service names;
//! - [`prompt`]: asking for a missing OAuth client id or secret;
//! - [`error`]: what can go wrong, worded for the user.

pub mod cli;
pub mod client;
pub mod error;
pub mod names;
pub mod prompt;
pub mod pyrepr;
pub mod xmlrpc;
