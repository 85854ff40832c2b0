//! The process's log: events to stderr (filtered by `WASMGATE_LOG`, default `info`), and the
//! access log, one line per request (target [`ACCESS_TARGET`]), to stdout as text or JSON.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, Targets, filter_fn};
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
    let level = EnvFilter::try_from_env("WASMGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let events = events_layer(level);
    let access = access
        .filter(|a| a.enabled)
        .map(|a| access_layer(a.format, std::io::stdout));
    Registry::default().with(events).with(access).init();
}

/// The event log: everything but the access log, at `level`, to stderr.
fn events_layer<S>(level: EnvFilter) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    // One filter, not two stacked: a stacked `filter_fn` has no level hint, which made the
    // process-wide maximum level TRACE whatever `WASMGATE_LOG` said. Plugins ask that level
    // (`proxy_get_log_level`) before they format a line, so with it at TRACE every plugin's
    // debug line was formatted and handed over on every request, only to be dropped here.
    let not_access =
        filter_fn(|meta| meta.target() != ACCESS_TARGET).with_max_level_hint(LevelFilter::TRACE);
    // Colours only for a terminal: a log file or journal gets plain text.
    tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_filter(level.and(not_access))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The subscriber's maximum level is what `LevelFilter::current()`, and so what plugins
    /// (`proxy_get_log_level`), see.
    #[test]
    fn the_event_logs_level_is_the_processs_maximum() {
        for (spec, level) in [
            ("warn", LevelFilter::WARN),
            ("info", LevelFilter::INFO),
            ("warn,wasmgate::plugin=debug", LevelFilter::DEBUG),
        ] {
            let subscriber = Registry::default().with(events_layer(EnvFilter::new(spec)));
            assert_eq!(subscriber.max_level_hint(), Some(level), "{spec}");
        }
        // With the access log on, its INFO lines count too.
        let subscriber = Registry::default()
            .with(events_layer(EnvFilter::new("warn")))
            .with(access_layer(LogFormat::Text, std::io::sink));
        assert_eq!(subscriber.max_level_hint(), Some(LevelFilter::INFO));
    }
}
