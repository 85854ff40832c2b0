//! The `wasmgate` command: run a gateway from a config file, check a config and its plugins, or
//! start the demo.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use wasmgate::Config;

/// A programmable API gateway for model serving: HTTPS in front of model servers, with every
/// policy a proxy-wasm plugin.
#[derive(Parser)]
#[command(name = "wasmgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the routes of a config file until Ctrl-C or SIGTERM.
    Run {
        /// The config file (TOML; docs/config.md).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file and load every plugin it names; exits non-zero with every
    /// problem found, each at its place.
    Check {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Start the demo: the demo model server on 127.0.0.1:9393 and the gateway in front of it.
    Demo {
        /// The demo's config file.
        #[arg(long, short, default_value = wasmgate::demo::DEMO_CONFIG)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("WASMGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => check(&config),
        Command::Run { config } => runtime().and_then(|rt| rt.block_on(run(config))),
        Command::Demo { config } => {
            runtime().and_then(|rt| rt.block_on(wasmgate::demo::run(&config)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wasmgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn check(path: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    if let (Some(tls), Some(_)) = (&config.tls, config.server.https) {
        wasmgate::tls::server_config(&tls.cert, &tls.key)?;
    }
    let (_runtime, gateway) = wasmgate::load(&config)?;
    let plugins: usize = gateway
        .routes()
        .iter()
        .map(|r| r.chain().plugins().len())
        .sum();
    println!(
        "{}: ok ({} routes, {} plugins loaded)",
        path.display(),
        gateway.routes().len(),
        plugins
    );
    Ok(())
}

async fn run(path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&path)?;
    let running = wasmgate::start(&config).await?;
    for (scheme, addr) in [
        ("http", running.server.http_addr()),
        ("https", running.server.https_addr()),
    ] {
        if let Some(addr) = addr {
            tracing::info!(%addr, scheme, "listening");
        }
    }
    shutdown_signal().await;
    tracing::info!("shutting down: draining requests in flight");
    running.server.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
