//! The `twitcher` binary: parse the command line, load the config, open the store, serve.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use twitcher::app::StartupError;
use twitcher::config::{Config, Loaded};
use twitcher::{App, store};

/// Security proxy for OGC Web Services (WPS, WMS).
#[derive(Parser)]
#[command(name = "twitcher", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (without CONFIG: 127.0.0.1:8000 and ./twitcher.sqlite).
    Serve {
        /// The original's INI file (development.ini style).
        config: Option<PathBuf>,
    },
    /// Create or upgrade the database, then exit.
    Initdb {
        /// The original's INI file (development.ini style).
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (Command::Serve { config } | Command::Initdb { config }) = &cli.command;
    let loaded = match config {
        Some(path) => Config::load(path),
        None => Ok(Loaded {
            config: Config::default(),
            warnings: Vec::new(),
        }),
    };
    let Loaded { config, warnings } = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("twitcher: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let source = config
        .source
        .as_ref()
        .map_or_else(|| "<defaults>".to_string(), |p| p.display().to_string());
    // Settings that parse but cannot be served are refused before anything is opened.
    if config.tls.is_some() {
        eprintln!(
            "twitcher: {source}: [server:main] https_listen: native HTTPS is not available in this version yet; terminate TLS in front of twitcher (nginx), as with the original"
        );
        return ExitCode::from(2);
    }
    if let Err(e) = twitcher::tokens::Tokens::from_settings(&config.token) {
        eprintln!("twitcher: {source}: {e}");
        return ExitCode::from(2);
    }
    let store = match store::open(&config.database) {
        // The proxy's hot path reads the registry and tokens from memory.
        Ok(store) => match config.store_cache {
            Some(max_age) => Arc::new(store::cached::CachedStore::new(store, max_age)),
            None => store,
        },
        Err(e) => {
            eprintln!("twitcher: {e}");
            return ExitCode::FAILURE;
        }
    };
    if matches!(cli.command, Command::Initdb { .. }) {
        println!("{} is ready", config.database);
        return ExitCode::SUCCESS;
    }
    let listen = config.listen;
    if config.username.is_none() {
        tracing::warn!(
            "no twitcher.username configured: /RPC2, /oauth/client and registry writes are open to anyone who can reach this server"
        );
    }
    let app = match App::new(config, store) {
        Ok(app) => app,
        Err(StartupError::Key(e)) => {
            // Missing or unusable key material is a configuration error.
            eprintln!("twitcher: {source}: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("twitcher: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("twitcher: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(serve(app, listen));
    // Work left on blocking threads (a database call of a closed request) is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("twitcher: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(app: App, listen: SocketAddr) -> std::io::Result<()> {
    twitcher::server::raise_open_files_limit();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))?;
    tracing::info!(
        "twitcher {} serving on http://{}",
        twitcher::frontpage::VERSION,
        listener.local_addr()?
    );
    let connections = app.config.connections.clone();
    twitcher::server::serve(
        vec![twitcher::server::Listener::http(listener)],
        twitcher::app(app),
        &connections,
        shutdown_signal(),
    )
    .await
}

/// Resolves on Ctrl-C or SIGTERM; the server then drains its connections.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
