//! The command line: every option and command that twitcherctl 0.5, 0.6 and the tutorial
//! used, parsed into an [`Invocation`] (connection settings plus one [`Operation`]).
//!
//! Spellings follow the originals. `-s` is `--serverurl` before the command but
//! `--client-secret` inside `gentoken`, as it was, so `-s` cannot be a global option;
//! `-u -p -k -t --debug --json` are global and may also follow the command (the tutorial
//! writes `add --username demo --password demo`).

use clap::{ArgAction, ArgGroup, Args, CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

use crate::client::{Config, Service};
use crate::names;

/// The server twitcherctl talks to unless `-s` says otherwise.
pub const DEFAULT_SERVER: &str = "http://localhost:8000";

/// The scope `gentoken` asks for when `-S` is not given (as twitcherctl 0.6 did).
pub const DEFAULT_SCOPE: &str = "compute";

/// Heading of the options that apply to every command.
const GLOBAL: &str = "Global options";

const EXAMPLES: &str = "\
Examples, as in the tutorial (-k skips TLS certificate checks):
  twitcherctl -k add --username demo --password demo --name demo_app
  twitcherctl -k gentoken -i CLIENT_ID -s CLIENT_SECRET --scope register
  twitcherctl -k -t TOKEN register --name emu http://localhost:5000/wps
  twitcherctl -k -t TOKEN register --name emu --auth cert http://localhost:5000/wps
  twitcherctl -k list
  twitcherctl -k gentoken -i CLIENT_ID -s CLIENT_SECRET --scope compute

With the XML-RPC interface of twitcher 0.5:
  twitcherctl -s http://localhost:8000 gentoken -H 24
  twitcherctl revoke TOKEN
  twitcherctl revoke -A
  twitcherctl -u admin -p secret unregister emu

Registry commands (list, register, unregister, clear) use REST when -t or -u/-p is given and
XML-RPC otherwise, switching to the other interface when the server lacks the first one.
Results are printed on stdout as Python literals, or as JSON with --json.";

/// twitcherctl's command line.
#[derive(Debug, Parser)]
#[command(
    name = "twitcherctl",
    version,
    about = "Control a twitcher security proxy from the command line: OAuth clients and \
             tokens, and the registry of OWS services.",
    after_help = EXAMPLES,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Log every HTTP exchange (method, URL, status) to stderr.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub debug: bool,

    /// URL on which the twitcher server listens.
    #[arg(short = 's', long = "serverurl", value_name = "URL", default_value = DEFAULT_SERVER, help_heading = GLOBAL)]
    pub serverurl: String,

    /// Username for HTTP basic authentication.
    #[arg(short = 'u', long, value_name = "USERNAME", global = true, help_heading = GLOBAL)]
    pub username: Option<String>,

    /// Password for HTTP basic authentication.
    #[arg(short = 'p', long, value_name = "PASSWORD", global = true, help_heading = GLOBAL)]
    pub password: Option<String>,

    /// Do not validate the server's TLS certificate.
    #[arg(short = 'k', long, global = true, help_heading = GLOBAL)]
    pub insecure: bool,

    /// OAuth access token for the registry (sent as "Authorization: Bearer").
    #[arg(short = 't', long, value_name = "TOKEN", global = true, help_heading = GLOBAL)]
    pub token: Option<String>,

    /// Print the result as JSON instead of as a Python literal.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register an OAuth client application (needs -u/-p); prints its client_id and client_secret.
    Add(AddArgs),
    /// Generate an access token: OAuth2 with -i/-s (or -S/-K), else an XML-RPC token.
    Gentoken(GentokenArgs),
    /// Revoke an XML-RPC access token, or all of them with -A.
    Revoke(RevokeArgs),
    /// List the OWS services registered with the proxy.
    List,
    /// Remove all OWS services from the registry.
    Clear,
    /// Add an OWS service to the registry (or update the one with this name).
    Register(RegisterArgs),
    /// Remove an OWS service from the registry.
    Unregister(UnregisterArgs),
    /// Print a shell completion script.
    Completion {
        /// The shell to complete for.
        shell: Shell,
    },
}

/// Options of `add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Name of the client application.
    #[arg(short = 'n', long, value_name = "NAME", default_value = "")]
    pub name: String,
    /// Redirect URI of the client application.
    #[arg(
        short = 'r',
        long = "redirect-uri",
        value_name = "REDIRECT_URI",
        default_value = ""
    )]
    pub redirect_uri: String,
}

/// Options of `gentoken`.
#[derive(Debug, Args)]
pub struct GentokenArgs {
    /// Hours the XML-RPC token stays valid (default: 1).
    #[arg(
        short = 'H',
        long = "valid-in-hours",
        value_name = "HOURS",
        conflicts_with_all = ["client_id", "client_secret", "scope", "keycloak"]
    )]
    pub valid_in_hours: Option<i64>,
    /// OAuth client id (asked for on a terminal when only the secret is given).
    #[arg(short = 'i', long = "client-id", value_name = "CLIENT_ID")]
    pub client_id: Option<String>,
    /// OAuth client secret (asked for on a terminal when only the id is given).
    #[arg(short = 's', long = "client-secret", value_name = "CLIENT_SECRET")]
    pub client_secret: Option<String>,
    /// Scopes to ask for: compute, register (default: compute).
    #[arg(short = 'S', long, value_name = "SCOPE", num_args = 1..)]
    pub scope: Vec<String>,
    /// Ask a Keycloak server for the token.
    #[arg(short = 'K', long)]
    pub keycloak: bool,
}

/// Options of `revoke`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).args(["access_token", "all"])))]
pub struct RevokeArgs {
    /// The token to revoke.
    #[arg(value_name = "TOKEN", conflicts_with = "all")]
    pub access_token: Option<String>,
    /// Revoke every token.
    #[arg(short = 'A', long)]
    pub all: bool,
}

/// Options of `register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// URL of the OWS service.
    #[arg(value_name = "URL")]
    pub url: String,
    /// Service name (default: a random one like plucky_puffin).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Service type: wps, wms, wfs, wcs, wmts or ogcapi (any case; others are proxied as
    /// the original proxied them).
    #[arg(long = "type", value_name = "TYPE", default_value = "wps")]
    pub service_type: String,
    /// Public URL of the service, shown in its capabilities instead of the proxy URL.
    #[arg(long, value_name = "PURL", default_value = "")]
    pub purl: String,
    /// Let every request through, without token or certificate.
    #[arg(long)]
    pub public: bool,
    /// How clients authenticate: token or cert.
    #[arg(long, value_name = "AUTH", default_value = "token")]
    pub auth: String,
    /// Whether the proxy checks the service's TLS certificate: true or false.
    #[arg(long, value_name = "VERIFY", default_value = "true", value_parser = parse_bool, action = ArgAction::Set)]
    pub verify: bool,
}

/// Options of `unregister`.
#[derive(Debug, Args)]
pub struct UnregisterArgs {
    /// Service name.
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// A parsed command line: where to connect and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// Server URL, credentials, TLS and debug settings.
    pub config: Config,
    /// `--json`: print JSON instead of a Python literal.
    pub json: bool,
    /// The one thing to do.
    pub operation: Operation,
}

/// What a command line asks for, independent of how it was spelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// No command given: nothing to do (as the originals did).
    Nothing,
    /// `completion SHELL`.
    Completion(Shell),
    /// `add`: register an OAuth client.
    AddClient {
        /// `-n/--name` ("" when not given, as the original sent it).
        name: String,
        /// `-r/--redirect-uri` ("" when not given).
        redirect_uri: String,
    },
    /// `gentoken` with OAuth options.
    OAuthToken {
        /// `-i`; asked for when missing.
        client_id: Option<String>,
        /// `-s`; asked for when missing.
        client_secret: Option<String>,
        /// `-S`, or [`DEFAULT_SCOPE`].
        scopes: Vec<String>,
        /// `-K`.
        keycloak: bool,
    },
    /// `gentoken` without OAuth options: XML-RPC `generate_token`.
    XmlRpcToken {
        /// `-H`, default 1.
        valid_in_hours: i64,
    },
    /// `revoke TOKEN`.
    Revoke(String),
    /// `revoke -A`.
    RevokeAll,
    /// `list`.
    List,
    /// `clear`.
    Clear,
    /// `register`.
    Register(Registration),
    /// `unregister NAME`.
    Unregister(String),
}

/// `register`'s options, before a missing name is invented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// `--name`, if given.
    pub name: Option<String>,
    /// The service as registered; its `name` is filled in by [`Registration::into_service`].
    pub service: Service,
}

impl Registration {
    /// The service to send, with a random name such as `plucky_puffin` when none was given.
    pub fn into_service(self) -> Service {
        Service {
            name: self.name.unwrap_or_else(names::random),
            ..self.service
        }
    }
}

impl Cli {
    /// Parses `args` (the program name first), as the binary does.
    pub fn try_parse_invocation<I, T>(args: I) -> Result<Invocation, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Cli::try_parse_from(args).map(Cli::into_invocation)
    }

    /// The clap command, for completion scripts and tests.
    pub fn clap_command() -> clap::Command {
        Cli::command()
    }

    /// Turns the parsed options into settings and one operation.
    pub fn into_invocation(self) -> Invocation {
        let config = Config {
            server: self.serverurl,
            username: self.username,
            password: self.password,
            token: self.token,
            insecure: self.insecure,
            debug: self.debug,
        };
        let operation = match self.command {
            None => Operation::Nothing,
            Some(Command::Completion { shell }) => Operation::Completion(shell),
            Some(Command::Add(a)) => Operation::AddClient {
                name: a.name,
                redirect_uri: a.redirect_uri,
            },
            Some(Command::Gentoken(g)) => {
                if g.client_id.is_some()
                    || g.client_secret.is_some()
                    || !g.scope.is_empty()
                    || g.keycloak
                {
                    let scopes = if g.scope.is_empty() {
                        vec![DEFAULT_SCOPE.to_owned()]
                    } else {
                        g.scope
                    };
                    Operation::OAuthToken {
                        client_id: g.client_id,
                        client_secret: g.client_secret,
                        scopes,
                        keycloak: g.keycloak,
                    }
                } else {
                    Operation::XmlRpcToken {
                        valid_in_hours: g.valid_in_hours.unwrap_or(1),
                    }
                }
            }
            Some(Command::Revoke(r)) => match r.access_token {
                Some(token) if !r.all => Operation::Revoke(token),
                _ => Operation::RevokeAll,
            },
            Some(Command::List) => Operation::List,
            Some(Command::Clear) => Operation::Clear,
            Some(Command::Register(r)) => Operation::Register(Registration {
                name: r.name,
                service: Service {
                    name: String::new(),
                    url: r.url,
                    service_type: r.service_type,
                    purl: r.purl,
                    public: r.public,
                    auth: r.auth,
                    verify: r.verify,
                },
            }),
            Some(Command::Unregister(u)) => Operation::Unregister(u.name),
        };
        Invocation {
            config,
            json: self.json,
            operation,
        }
    }
}

/// Booleans as Python's Pyramid `asbool` reads them (true/yes/on/y/t/1 and their opposites).
fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "y" | "t" | "1" => Ok(true),
        "false" | "no" | "off" | "n" | "f" | "0" => Ok(false),
        _ => Err(format!("expected true or false, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn booleans() {
        for t in ["true", "True", "YES", "on", "1", "t", "y"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["false", "FALSE", "no", "off", "0", "f", "n"] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        assert!(parse_bool("maybe").is_err());
    }

    #[test]
    fn a_registration_without_name_gets_a_random_one() {
        let service = Service {
            name: String::new(),
            url: "http://localhost:5000/wps".into(),
            service_type: "wps".into(),
            purl: String::new(),
            public: false,
            auth: "token".into(),
            verify: true,
        };
        let named = Registration {
            name: Some("emu".into()),
            service: service.clone(),
        }
        .into_service();
        assert_eq!(named.name, "emu");
        let random = Registration {
            name: None,
            service,
        }
        .into_service();
        assert!(random.name.contains('_'), "{}", random.name);
    }
}
