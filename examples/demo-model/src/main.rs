//! `demo-model [--listen ADDR]`: runs the demo Paddle Serving `uci_housing` model server
//! (default address 127.0.0.1:9393) until Ctrl-C. `RUST_LOG=debug` logs every request.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;

use tracing::{error, info};
use tracing_subscriber::EnvFilter;

const USAGE: &str = "usage: demo-model [--listen ADDR]   (default 127.0.0.1:9393)";
const DEFAULT_LISTEN: &str = "127.0.0.1:9393";

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let addr = match parse_args(std::env::args().skip(1)) {
        Ok(Some(addr)) => addr,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("demo-model: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let server = match demo_model::bind(addr).await {
        Ok(server) => server,
        Err(err) => {
            error!("cannot listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    info!(
        "listening on {0}: POST http://{0}{1}",
        server.local_addr(),
        demo_model::PREDICTION_PATH
    );
    server
        .serve_with_shutdown(async {
            if let Err(err) = tokio::signal::ctrl_c().await {
                error!("cannot wait for Ctrl-C: {err}");
                std::future::pending::<()>().await;
            }
        })
        .await;
    info!("stopped");
    ExitCode::SUCCESS
}

/// The address to listen on, or `None` when help was asked for.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<SocketAddr>, String> {
    let mut listen = DEFAULT_LISTEN.to_owned();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" => {
                listen = args.next().ok_or("--listen needs an address")?;
            }
            _ => match arg.strip_prefix("--listen=") {
                Some(value) => listen = value.to_owned(),
                None => return Err(format!("unexpected argument `{arg}`")),
            },
        }
    }
    listen
        .parse()
        .map(Some)
        .map_err(|err| format!("bad --listen address `{listen}`: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<SocketAddr>, String> {
        parse_args(args.iter().map(ToString::to_string))
    }

    #[test]
    fn parses_listen() {
        assert_eq!(parse(&[]).unwrap(), Some(DEFAULT_LISTEN.parse().unwrap()));
        assert_eq!(
            parse(&["--listen", "0.0.0.0:80"]).unwrap(),
            Some("0.0.0.0:80".parse().unwrap())
        );
        assert_eq!(
            parse(&["--listen=[::1]:9"]).unwrap(),
            Some("[::1]:9".parse().unwrap())
        );
        assert_eq!(parse(&["--help"]).unwrap(), None);
        assert!(parse(&["--listen"]).is_err());
        assert!(parse(&["--listen", "nope"]).unwrap_err().contains("nope"));
        assert!(parse(&["extra"]).is_err());
    }
}
