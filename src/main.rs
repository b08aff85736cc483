//! The `twitcher` binary: parse the command line, load the config, open the store, serve.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use twitcher::app::StartupError;
use twitcher::config::{Config, Loaded};
use twitcher::server::Listener;
use twitcher::tls::Tls;
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
    let tls = match &config.tls {
        Some(settings) => match Tls::load(settings, config.connections.header_read_timeout) {
            Ok(tls) => Some((settings.listen, Arc::new(tls))),
            Err(e) => {
                eprintln!("twitcher: {source}: [server:main] {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
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
    let served = runtime.block_on(serve(app, listen, tls));
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

async fn serve(
    app: App,
    listen: SocketAddr,
    tls: Option<(SocketAddr, Arc<Tls>)>,
) -> std::io::Result<()> {
    twitcher::server::raise_open_files_limit();
    // Listening for the signals before the socket is bound: a SIGTERM that comes as soon
    // as the server answers must drain it, not kill it.
    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))?;
    let connections = app.config.connections.clone();
    let router = twitcher::app(app);
    tracing::info!(
        "twitcher {} serving on http://{}",
        twitcher::frontpage::VERSION,
        listener.local_addr()?
    );
    let mut listeners = vec![Listener::http(listener)];
    if let Some((address, tls)) = tls {
        let socket = tokio::net::TcpListener::bind(address).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {address}: {e}"))
        })?;
        tracing::info!("serving on https://{}", socket.local_addr()?);
        tokio::spawn(twitcher::tls::reload_on_hangup(tls.clone()));
        listeners.push(Listener::https(socket, tls));
    }
    twitcher::server::serve(listeners, router, &connections, shutdown).await
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM; the server then drains its connections.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        tracing::info!("shutting down");
    })
}

/// Resolves on Ctrl-C; the server then drains its connections.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
}
