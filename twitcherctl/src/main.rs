//! `twitcherctl`: parse the command line, run one operation, print its result.
//!
//! Results go to stdout (Python literal or `--json`) with exit status 0; failures are one
//! line on stderr with exit status 1; usage errors are clap's, exit status 2.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use serde_json::Value;
use twitcherctl::cli::{Cli, Invocation, Operation};
use twitcherctl::client::{Client, TokenRequest};
use twitcherctl::{prompt, pyrepr};

fn main() -> ExitCode {
    let invocation = Cli::parse().into_invocation();
    match run(invocation) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` puts the whole chain on one line: "could not list services: cannot reach …".
            eprintln!("twitcherctl: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(invocation: Invocation) -> anyhow::Result<()> {
    let Invocation {
        config,
        json,
        operation,
    } = invocation;
    match operation {
        Operation::Nothing => {
            eprintln!("twitcherctl: no command given (see twitcherctl --help)");
            return Ok(());
        }
        Operation::Completion(shell) => {
            clap_complete::generate(
                shell,
                &mut Cli::clap_command(),
                "twitcherctl",
                &mut io::stdout(),
            );
            return Ok(());
        }
        _ => {}
    }
    if config.insecure && config.server.to_ascii_lowercase().starts_with("https:") {
        eprintln!(
            "twitcherctl: warning: not checking the server's TLS certificate (-k/--insecure)"
        );
    }
    let client = Client::new(&config)?;
    let (what, result) = match operation {
        Operation::Nothing | Operation::Completion(_) => unreachable!("handled above"),
        Operation::AddClient { name, redirect_uri } => (
            "add the client application",
            client.add_client(&name, &redirect_uri),
        ),
        Operation::OAuthToken {
            client_id,
            client_secret,
            scopes,
            keycloak,
        } => {
            let what = "generate an OAuth2 token";
            let asked = |e| anyhow::Error::new(e).context(format!("could not {what}"));
            let client_id = client_id
                .map_or_else(prompt::client_id, Ok)
                .map_err(asked)?;
            let client_secret = client_secret
                .map_or_else(prompt::client_secret, Ok)
                .map_err(asked)?;
            let request = TokenRequest {
                client_id,
                client_secret,
                scopes,
                keycloak,
            };
            (what, client.request_token(&request))
        }
        Operation::XmlRpcToken { valid_in_hours } => (
            "generate an XML-RPC token",
            client.generate_token(valid_in_hours),
        ),
        Operation::Revoke(token) => ("revoke the token", client.revoke_token(&token)),
        Operation::RevokeAll => ("revoke all tokens", client.revoke_all_tokens()),
        Operation::List => ("list services", client.list_services()),
        Operation::Clear => ("clear the services", client.clear_services()),
        Operation::Register(registration) => {
            let service = registration.into_service();
            ("register the service", client.register_service(&service))
        }
        Operation::Unregister(name) => ("unregister the service", client.unregister_service(&name)),
    };
    let value = result.with_context(|| format!("could not {what}"))?;
    print(&value, json)
}

fn print(value: &Value, json: bool) -> anyhow::Result<()> {
    let text = if json {
        serde_json::to_string(value)?
    } else {
        pyrepr::display(value)
    };
    let mut stdout = io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        // `twitcherctl list | head -c 10` is fine.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("could not write the result"),
    }
}
