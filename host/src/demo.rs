//! `wasmgate demo`: the demo model server on loopback and the gateway in front of it, with a
//! self-signed certificate when the config's is missing, and the request to try.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;

use crate::config::Config;

/// The demo's config, relative to the repository root.
pub const DEMO_CONFIG: &str = "examples/demo/wasmgate.toml";

/// The API key of the demo consumer (its SHA-256 is in the demo config).
pub const DEMO_KEY: &str = "hP6v25BQVS5CcS1nqKpxdrFkUxze9JWD";

/// The seed request's body: one house's 13 features, asking for the price.
pub const DEMO_BODY: &str = r#"{"feed":[{"x":[0.0137,-0.1136,0.2553,-0.0692,0.0582,-0.0727,-0.1583,-0.0584,0.6283,0.4919,0.1856,0.0795,-0.0332]}],"fetch":["price"]}"#;

/// Runs the demo until Ctrl-C.
pub async fn run(config_path: &Path, config: Config) -> anyhow::Result<()> {
    if let Some(tls) = &config.tls
        && !(tls.cert.exists() && tls.key.exists())
    {
        let dir = tls.cert.parent().unwrap_or(Path::new("."));
        crate::tls::ensure_self_signed(dir)?;
        tracing::info!(dir = %dir.display(), "made a self-signed certificate for the demo");
    }
    let route = config
        .routes
        .first()
        .context("the demo config has no route")?;
    let upstream: SocketAddr = route
        .upstream_uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default()
        .parse()
        .with_context(|| {
            format!(
                "routes[0].upstream {:?}: the demo model server needs an IP:port",
                route.upstream
            )
        })?;
    let model = demo_model::bind(upstream)
        .await
        .with_context(|| format!("cannot start the demo model server on {upstream}"))?
        .spawn();
    tracing::info!(addr = %upstream, "demo model server listening (loopback only)");

    let mut running = crate::start(config_path, &config).await.with_context(|| {
        format!(
            "{}: run `make build` first if the plugins are missing",
            config_path.display()
        )
    })?;
    if let Some(addr) = running.server.https_addr() {
        println!("\nwasmgate demo is up. Try the prediction through the gateway:\n");
        println!(
            "  curl -H \"Content-Type:application/json\" -H \"X-INSTANCE-ID:kong_ins\" -H \"apikey:{DEMO_KEY}\" -X POST -d '{DEMO_BODY}' https://{addr}{}/uci/prediction -k\n",
            route.prefix
        );
        println!(
            "Without the apikey header it gets 401; without X-INSTANCE-ID, 403. Ctrl-C stops the demo.\n"
        );
    }
    if let Some(addr) = running.admin_addr() {
        println!(
            "Management page: http://{addr}/   (admin API: /status /routes /plugins /metrics, POST /reload)\n"
        );
    }
    // The demo reloads too: edit examples/demo/wasmgate.toml or rebuild a plugin and watch.
    running.watch()?;
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    running.shutdown().await;
    model.shutdown().await;
    Ok(())
}
