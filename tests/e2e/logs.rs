//! What every gateway in this test process logs, captured: one process-wide subscriber (the first
//! test that asks installs it), so tests find their own lines by a name only they use.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use wasmgate::config::LogFormat;
use wasmgate::logging::access_layer;

/// Lines written, shared with the subscriber.
#[derive(Clone, Default)]
pub struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    /// The lines that mention `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }
}

/// The captured logs.
pub struct Logs {
    /// The access log as the gateway writes it with `format = "json"`.
    pub access_json: Buffer,
    /// The access log as the gateway writes it with `format = "text"`.
    pub access_text: Buffer,
    /// What plugins logged (`proxy_log`, target `wasmgate::plugin`), as text.
    pub plugins: Buffer,
}

/// Starts capturing (once per process) and returns the buffers.
pub fn captured() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs {
            access_json: Buffer::default(),
            access_text: Buffer::default(),
            plugins: Buffer::default(),
        };
        let (j, t, p) = (
            logs.access_json.clone(),
            logs.access_text.clone(),
            logs.plugins.clone(),
        );
        let plugin_layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || p.clone())
            .with_filter(Targets::new().with_target("wasmgate::plugin", tracing::Level::INFO));
        let subscriber = tracing_subscriber::registry()
            .with(access_layer(LogFormat::Json, move || j.clone()))
            .with(access_layer(LogFormat::Text, move || t.clone()))
            .with(plugin_layer);
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
        logs
    })
}
