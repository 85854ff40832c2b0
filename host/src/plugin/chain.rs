//! A route's plugin chain run over one request: request headers in order, response headers in
//! reverse order, then the end of every context. A plugin that answers stops the request phase;
//! the plugins after it are never called for that request.

use std::sync::Arc;
use std::time::Instant;

use super::instance::{Action, ContextHandle};
use super::stream::{LocalResponse, RequestHead, ResponseHead, Stream};
use super::{CallError, Plugin};
use crate::config::FailurePolicy;
use crate::metrics::PluginMetrics;

/// The plugins of one route, in order.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    plugins: Vec<Arc<Plugin>>,
    /// `metrics[i]` times and counts the failures of `plugins[i]`; empty when unobserved.
    metrics: Arc<[PluginMetrics]>,
    /// Some plugin may read the request after the request phase (see
    /// [`Plugin::reads_request_later`]).
    reads_request_later: bool,
}

/// How the request phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Every plugin let the request through: forward it.
    Forward,
    /// A plugin answered; the answer is in `Stream::local_response`.
    Answered,
}

/// The contexts one request has open in the chain's plugins. Dropping it without
/// [`ChainRun::finish`] still deletes every context, so no guest state leaks.
#[derive(Debug)]
pub struct ChainRun {
    /// Each plugin that was called, with its index in the chain and its live context.
    contexts: Vec<(Arc<Plugin>, usize, Option<ContextHandle>)>,
    metrics: Arc<[PluginMetrics]>,
}

/// Times consecutive plugin calls with one clock read between two calls, and counts failures.
struct Clock<'a> {
    metrics: &'a [PluginMetrics],
    last: Option<Instant>,
}

impl<'a> Clock<'a> {
    fn start(metrics: &'a [PluginMetrics]) -> Clock<'a> {
        let last = (!metrics.is_empty()).then(Instant::now);
        Clock { metrics, last }
    }

    /// Records the call into plugin `index` that just returned `result`.
    fn lap<T>(&mut self, index: usize, result: &Result<T, CallError>) {
        let (Some(last), Some(m)) = (self.last, self.metrics.get(index)) else {
            return;
        };
        let now = Instant::now();
        m.call(now - last);
        if let Err(e) = result {
            m.failed(e);
        }
        self.last = Some(now);
    }
}

impl Chain {
    /// A chain of `plugins`, run in this order on requests.
    pub fn new(plugins: Vec<Arc<Plugin>>) -> Chain {
        Chain {
            reads_request_later: plugins.iter().any(|p| p.reads_request_later()),
            plugins,
            metrics: Arc::new([]),
        }
    }

    /// The chain with each call timed, and each failure counted, in `metrics` (one per plugin,
    /// in chain order).
    pub fn observed(self, metrics: Vec<PluginMetrics>) -> Chain {
        debug_assert_eq!(metrics.len(), self.plugins.len());
        Chain {
            metrics: metrics.into(),
            ..self
        }
    }

    /// The plugins, in order.
    pub fn plugins(&self) -> &[Arc<Plugin>] {
        &self.plugins
    }

    /// Whether a plugin of the chain may read the request's headers after the request phase.
    /// When none may, the headers go upstream without a copy kept for the plugins: only
    /// `proxy_on_delete` follows, and it finds no regular request headers (docs/abi.md).
    pub fn reads_request_later(&self) -> bool {
        self.reads_request_later
    }

    /// Runs every plugin's request-headers callback on `stream`. An error is a plugin failure
    /// under a fail-closed policy: the request must be refused.
    /// The stream is boxed so that it moves into each plugin's store and back as a pointer.
    pub fn on_request(
        &self,
        stream: &mut Box<Stream>,
    ) -> (ChainRun, Result<RequestOutcome, CallError>) {
        let mut run = ChainRun {
            contexts: Vec::with_capacity(self.plugins.len()),
            metrics: self.metrics.clone(),
        };
        let mut clock = Clock::start(&self.metrics);
        for (index, plugin) in self.plugins.iter().enumerate() {
            let undo = Undo::take(plugin, stream);
            let (ctx, outcome) = plugin.on_request_headers(stream);
            // A failed call lost the context with its instance; keep only live ones.
            if ctx.is_some() {
                run.contexts.push((plugin.clone(), index, ctx));
            }
            clock.lap(index, &outcome);
            match outcome {
                Ok(_) if stream.local_response.is_some() => {
                    return (run, Ok(RequestOutcome::Answered));
                }
                Ok(Action::Continue) => {}
                Ok(Action::Pause) => {
                    let err = paused(plugin);
                    if let Err(e) = tolerate(plugin, err, undo, stream) {
                        return (run, Err(e));
                    }
                    // Skipped under fail open: it gets no further callback for this request but
                    // `proxy_on_delete`, which frees its context now.
                    if let Some((plugin, _, Some(handle))) = run.contexts.pop() {
                        plugin.delete(&handle);
                    }
                }
                Err(err) => {
                    if let Err(e) = tolerate(plugin, err, undo, stream) {
                        return (run, Err(e));
                    }
                }
            }
        }
        (run, Ok(RequestOutcome::Forward))
    }
}

/// A plugin that pauses a request without answering it would hold it forever: this host does
/// not run the calls (HTTP callouts, ticks, bodies) that could resume it.
fn paused(plugin: &Plugin) -> CallError {
    CallError::Misbehaved {
        plugin: plugin.name().clone(),
        reason: "it paused the request without answering it, and nothing can resume it here (docs/abi.md)".into(),
    }
}

/// What a fail-open plugin's call may change, copied before the call so that a call that fails
/// leaves nothing behind: the plugin is skipped as if it had not run (no half-made header edits,
/// no answer it sent before trapping). A fail-closed plugin needs no copy: its failure ends the
/// request.
/// Boxed: a fail-closed plugin's empty `Undo` is one null pointer, not ~500 bytes moved around.
struct Undo(Option<Box<Saved>>);

/// The parts of a stream a plugin call may change.
type Saved = (RequestHead, Option<ResponseHead>, Option<LocalResponse>);

impl Undo {
    fn take(plugin: &Plugin, stream: &Stream) -> Undo {
        Undo((plugin.failure_policy() == FailurePolicy::Open).then(|| {
            Box::new((
                stream.request.clone(),
                stream.response.clone(),
                stream.local_response.clone(),
            ))
        }))
    }

    fn restore(self, stream: &mut Stream) {
        if let Some(undo) = self.0 {
            let (request, response, local) = *undo;
            stream.request = request;
            stream.response = response;
            stream.local_response = local;
        }
    }
}

/// Applies the plugin's failure policy: fail open puts back what the call changed, logs and
/// goes on; fail closed refuses.
fn tolerate(
    plugin: &Plugin,
    err: CallError,
    undo: Undo,
    stream: &mut Stream,
) -> Result<(), CallError> {
    match plugin.failure_policy() {
        FailurePolicy::Closed => Err(err),
        FailurePolicy::Open => {
            undo.restore(stream);
            tracing::warn!(plugin = %plugin.name(), error = %err, "plugin failed; skipped, its changes undone (failure = \"open\")");
            Ok(())
        }
    }
}

impl ChainRun {
    /// Runs the response-headers callback of every plugin that saw the request, in reverse
    /// order. A plugin may replace the response with a local one (`Stream::local_response`).
    pub fn on_response(
        &mut self,
        stream: &mut Box<Stream>,
        end_of_stream: bool,
    ) -> Result<(), CallError> {
        let mut clock = Clock::start(&self.metrics);
        for (plugin, index, ctx) in self.contexts.iter_mut().rev() {
            // A module without `proxy_on_response_headers` is not called (nor locked, nor
            // timed).
            if !plugin.has_response_hook() {
                continue;
            }
            let Some(handle) = ctx else { continue };
            let had_answer = stream.local_response.is_some();
            let undo = Undo::take(plugin, stream);
            let outcome = plugin.on_response_headers(handle, stream, end_of_stream);
            clock.lap(*index, &outcome);
            match outcome {
                Ok(_) if !had_answer && stream.local_response.is_some() => return Ok(()),
                Ok(Action::Continue) => {}
                Ok(Action::Pause) => {
                    tolerate(plugin, paused(plugin), undo, stream)?;
                    // Skipped under fail open, as in the request phase.
                    if let Some(handle) = ctx.take() {
                        plugin.delete(&handle);
                    }
                }
                Err(err) => {
                    *ctx = None;
                    tolerate(plugin, err, undo, stream)?;
                }
            }
        }
        Ok(())
    }

    /// Ends every context: `on_done`, `on_log`, `on_delete`, in chain order, with the final
    /// request and response visible.
    pub fn finish(mut self, stream: &mut Box<Stream>) {
        for (plugin, _, ctx) in &mut self.contexts {
            if let Some(handle) = ctx.take() {
                plugin.finish(&handle, stream);
            }
        }
    }
}

impl Drop for ChainRun {
    fn drop(&mut self) {
        for (plugin, _, ctx) in &mut self.contexts {
            if let Some(handle) = ctx.take() {
                plugin.delete(&handle);
            }
        }
    }
}
