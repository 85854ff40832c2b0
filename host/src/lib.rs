//! wasmgate: an HTTPS API gateway for model serving whose policies are proxy-wasm plugins.
//!
//! The crate is the gateway as a library (the `wasmgate` binary and the end-to-end tests use it):
//! [`config`] reads the TOML file, [`plugin`] hosts the wasm plugins, [`proxy`] carries a request
//! through its route's plugin chain to the upstream, [`server`] accepts connections and [`tls`]
//! terminates HTTPS. ARCHITECTURE.md draws the request's path.

pub mod config;
pub mod demo;
pub mod plugin;
pub mod proxy;
pub mod server;
pub mod tls;

use std::sync::Arc;

use anyhow::Context;

pub use config::Config;
pub use proxy::Gateway;
pub use server::Server;

/// A gateway that is serving: its listeners, its routes and the plugin runtime they run on.
#[derive(Debug)]
pub struct Running {
    /// The listeners.
    pub server: Server,
    /// The routes and plugins being served.
    pub gateway: Arc<Gateway>,
    /// Kept alive for as long as plugins run: its clock enforces their CPU deadlines.
    pub runtime: Arc<plugin::Runtime>,
}

/// Builds the plugin runtime and loads every plugin the config names. Each plugin that fails
/// is reported at its place in the config.
pub fn load(config: &Config) -> anyhow::Result<(Arc<plugin::Runtime>, Arc<Gateway>)> {
    let runtime = Arc::new(plugin::Runtime::new(plugin::Limits::from_config(
        &config.plugins,
    ))?);
    let gateway = Gateway::build(config, &runtime).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        anyhow::anyhow!("{}", lines.join("\n"))
    })?;
    Ok((runtime, Arc::new(gateway)))
}

/// Loads the plugins and starts the listeners of `config`.
pub async fn start(config: &Config) -> anyhow::Result<Running> {
    let (runtime, gateway) = load(config).context("loading plugins")?;
    let server = Server::start(config, gateway.clone()).await?;
    Ok(Running {
        server,
        gateway,
        runtime,
    })
}
