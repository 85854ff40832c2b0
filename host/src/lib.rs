//! wasmgate: an HTTPS API gateway for model serving whose policies are proxy-wasm plugins.
//!
//! The crate is the gateway as a library (the `wasmgate` binary and the end-to-end tests use it):
//! [`config`] reads the TOML file, [`plugin`] hosts the wasm plugins, [`reload`] loads them and
//! swaps in new versions, [`proxy`] carries a request through its route's plugin chain to the
//! upstream, [`server`] accepts connections and [`tls`] terminates HTTPS. ARCHITECTURE.md draws
//! the request's path.

pub mod admin;
pub mod config;
pub mod demo;
#[doc(hidden)]
pub mod fuzzing;
pub mod logging;
pub mod metrics;
pub mod plugin;
pub mod proxy;
pub mod reload;
pub mod scaffold;
pub mod server;
pub mod tls;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

pub use config::Config;
pub use proxy::Gateway;
pub use reload::Reloader;
pub use server::Server;

/// A gateway that is serving: its listeners and the reloader that owns its routes and plugins.
#[derive(Debug)]
pub struct Running {
    /// The listeners.
    pub server: Server,
    /// Reloads the config and plugins; holds the gateway being served.
    pub reloader: Arc<Reloader>,
    /// What the gateway counts.
    pub metrics: Arc<metrics::Metrics>,
    admin: Option<admin::Admin>,
    watch: Option<reload::WatchGuard>,
}

impl Running {
    /// The gateway serving now.
    pub fn gateway(&self) -> Arc<Gateway> {
        self.reloader.handle().load_full()
    }

    /// The admin listener's address, when it is enabled.
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin.as_ref().map(admin::Admin::addr)
    }

    /// Starts watching the plugin directory and the config for changes (hot reload).
    pub fn watch(&mut self) -> anyhow::Result<()> {
        self.watch = Some(self.reloader.watch()?);
        Ok(())
    }

    /// Stops watching, drains requests in flight and stops the listeners.
    pub async fn shutdown(self) {
        drop(self.watch);
        self.server.shutdown().await;
        if let Some(admin) = self.admin {
            admin.shutdown().await;
        }
    }
}

/// Loads every plugin `config` names into a gateway, without serving it: what `wasmgate check`
/// does. Each plugin that fails is reported at its place in the config.
pub fn load(config: &Config) -> anyhow::Result<Gateway> {
    let runtime = plugin::Runtime::for_config(&config.plugins)?;
    Ok(reload::load(config, &runtime)?)
}

/// Loads the plugins of `config` (read from `config_path`, which reloads re-read) and starts
/// its listeners. Call [`Running::watch`] for hot reload.
pub async fn start(config_path: &Path, config: &Config) -> anyhow::Result<Running> {
    let runtime = Arc::new(plugin::Runtime::for_config(&config.plugins)?);
    let metrics = Arc::new(metrics::Metrics::new());
    let reloader =
        Reloader::start(config_path, runtime, metrics.clone()).context("loading plugins")?;
    let server = Server::start(config, reloader.handle(), &metrics).await?;
    let admin = if config.admin.enabled {
        Some(admin::Admin::start(&config.admin, reloader.clone(), metrics.clone()).await?)
    } else {
        None
    };
    Ok(Running {
        server,
        reloader,
        metrics,
        admin,
        watch: None,
    })
}
