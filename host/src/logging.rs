//! The process's log: events to stderr (filtered by `WASMGATE_LOG`, default `info`), and the
//! access log, one line per request (target [`ACCESS_TARGET`]), to stdout as text or JSON.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::filter::{EnvFilter, Targets, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::{AccessLogConfig, LogFormat};

/// The target of access-log events.
pub const ACCESS_TARGET: &str = "wasmgate::access";

/// Installs the process's subscriber: the event log on stderr and, when `access` says so, the
/// access log on stdout in its format. Call once, before anything logs.
pub fn init(access: Option<&AccessLogConfig>) {
    // Colours only for a terminal: a log file or journal gets plain text.
    let events = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_filter(
            EnvFilter::try_from_env("WASMGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_filter(filter_fn(|meta| meta.target() != ACCESS_TARGET));
    let access = access
        .filter(|a| a.enabled)
        .map(|a| access_layer(a.format, std::io::stdout));
    Registry::default().with(events).with(access).init();
}

/// The access-log layer: only [`ACCESS_TARGET`] events, written by `writer` as `format`.
pub fn access_layer<S, W>(format: LogFormat, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let only_access = Targets::new().with_target(ACCESS_TARGET, tracing::Level::INFO);
    match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(false)
            .with_filter(only_access)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(writer)
            .with_filter(only_access)
            .boxed(),
    }
}
