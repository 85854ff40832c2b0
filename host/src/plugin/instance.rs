//! A configured plugin and its kept instances.
//!
//! Each instance holds one root context (configured once) and serves many request contexts, the
//! way proxy-wasm hosts run a VM per worker. A request is pinned to one instance for its life
//! (its context lives in that instance's memory) and locks it only for the length of each call.
//! An instance that traps or overruns its deadline is thrown away, with every context in it; the
//! next request that lands on its slot starts a fresh one, after a back-off if starting keeps
//! failing.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use wasmtime::{Engine, Instance, Store, StoreLimitsBuilder, Trap, TypedFunc};

use super::abi::{HostState, Phase};
use super::stream::Stream;
use super::{CallError, CompiledModule, Limits, LoadError};
use crate::config::FailurePolicy;

/// The root context id every instance uses; request contexts count up from the next one.
const ROOT_CONTEXT: i32 = 1;

/// Longest wait before a slot whose instance keeps failing to start is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The callbacks the host calls, looked up once per instance.
struct Exports {
    on_context_create: TypedFunc<(i32, i32), ()>,
    on_vm_start: Option<TypedFunc<(i32, i32), i32>>,
    on_configure: Option<TypedFunc<(i32, i32), i32>>,
    on_request_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_response_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_done: Option<TypedFunc<i32, i32>>,
    on_log: Option<TypedFunc<i32, ()>>,
    on_delete: Option<TypedFunc<i32, ()>>,
}

/// A running instance.
struct Live {
    store: Store<HostState>,
    exports: Exports,
    next_context: i32,
}

/// One kept instance's place.
struct Slot {
    live: Option<Live>,
    /// Bumped whenever the instance is discarded: contexts of an older generation are gone.
    generation: u64,
    /// Consecutive failures to start an instance here, for the back-off.
    start_failures: u32,
    retry_at: Option<Instant>,
}

/// A module configured for one place in the config: its name, configuration and kept
/// instances.
pub struct Plugin {
    name: Arc<str>,
    config: Arc<[u8]>,
    module: CompiledModule,
    engine: Engine,
    limits: Limits,
    failure: FailurePolicy,
    slots: Box<[Mutex<Slot>]>,
    next_slot: AtomicUsize,
    /// The module exports `proxy_on_response_headers`.
    response_hook: bool,
    /// The module exports a callback that may read the request after its headers went upstream
    /// (`proxy_on_response_headers`, `proxy_on_done`, `proxy_on_log`).
    reads_request_later: bool,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("module", &self.module)
            .finish()
    }
}

/// A request's context in one plugin: which instance holds it, and its id there.
#[derive(Debug)]
pub(crate) struct ContextHandle {
    slot: usize,
    generation: u64,
    id: i32,
}

/// What a header callback answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Continue,
    Pause,
}

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    // A panic while holding the lock cannot leave a Slot half-updated in a way that matters:
    // at worst its instance is stale, which the generation check catches.
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

impl Plugin {
    /// Configures `module` and starts every kept instance. The first failure refuses the plugin.
    pub(super) fn start(
        engine: &Engine,
        module: &CompiledModule,
        name: &str,
        config: Arc<[u8]>,
        failure: FailurePolicy,
        limits: Limits,
    ) -> Result<Plugin, LoadError> {
        let exports = |name: &str| module.pre.module().get_export(name).is_some();
        let response_hook = exports("proxy_on_response_headers");
        let mut plugin = Plugin {
            response_hook,
            reads_request_later: response_hook
                || exports("proxy_on_done")
                || exports("proxy_on_log"),
            name: name.into(),
            config,
            module: module.clone(),
            engine: engine.clone(),
            limits,
            failure,
            slots: Box::new([]),
            next_slot: AtomicUsize::new(0),
        };
        let mut slots = Vec::with_capacity(plugin.limits.instances);
        for _ in 0..plugin.limits.instances.max(1) {
            let live = plugin.instantiate().map_err(|reason| LoadError::Start {
                path: module.path.to_path_buf(),
                reason,
            })?;
            slots.push(Mutex::new(Slot {
                live: Some(live),
                generation: 0,
                start_failures: 0,
                retry_at: None,
            }));
        }
        plugin.slots = slots.into_boxed_slice();
        Ok(plugin)
    }

    /// The plugin's name (as in the config).
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// How many times the instance in slot `index` was discarded.
    #[cfg(test)]
    pub(crate) fn generation_of_slot(&self, index: usize) -> u64 {
        lock(&self.slots[index]).generation
    }

    /// Whether the module has a response hook (`proxy_on_response_headers`) to call.
    pub(crate) fn has_response_hook(&self) -> bool {
        self.response_hook
    }

    /// Whether the module may read the request after its headers went upstream: it exports
    /// `proxy_on_response_headers`, `proxy_on_done` or `proxy_on_log`. Else only
    /// `proxy_on_delete` follows, which frees the context's state.
    pub(crate) fn reads_request_later(&self) -> bool {
        self.reads_request_later
    }

    /// What a request gets when this plugin fails.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.failure
    }

    /// The module it runs.
    pub fn module(&self) -> &CompiledModule {
        &self.module
    }

    /// Starts one instance: instantiate, run the module's initialiser, create the root context,
    /// `on_vm_start`, `on_configure`. The error says what failed, with what the plugin logged.
    fn instantiate(&self) -> Result<Live, String> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .memories(1)
            .tables(8)
            // table.grow runs as host code the CPU deadline cannot cut short, and wasmtime
            // leaves tables unbounded: cap them (a big Rust module uses a few thousand slots).
            .table_elements(100_000)
            .instances(1)
            // A failed memory.grow traps instead of returning -1, so the log says why.
            .trap_on_grow_failure(true)
            .build();
        let state = HostState::new(self.name.clone(), self.config.clone(), limits);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        let ticks = self.limits.deadline_ticks();

        let with_log = |store: &Store<HostState>, what: String| -> String {
            match store.data().start_log.as_deref() {
                Some(lines) if !lines.is_empty() => {
                    format!("{what}; the plugin said: {}", lines.join("; "))
                }
                _ => what,
            }
        };

        store.set_epoch_deadline(ticks);
        let instance = self.module.pre.instantiate(&mut store).map_err(|e| {
            format!(
                "instantiation failed: {}",
                describe(&e, self.limits.call_timeout)
            )
        })?;
        let memory = instance.get_memory(&mut store, "memory");
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "proxy_on_memory_allocate")
            .or_else(|_| instance.get_typed_func::<i32, i32>(&mut store, "malloc"))
            .map_err(|e| format!("bad proxy_on_memory_allocate export: {e}"))?;
        store.data_mut().memory = memory;
        store.data_mut().alloc = Some(Arc::new(alloc));
        let exports = Exports::lookup(&instance, &mut store)?;

        let run = |store: &mut Store<HostState>,
                   what: &str,
                   f: &dyn Fn(&mut Store<HostState>) -> wasmtime::Result<()>| {
            store.set_epoch_deadline(ticks);
            f(store).map_err(|e| {
                with_log(
                    store,
                    format!("{what} failed: {}", describe(&e, self.limits.call_timeout)),
                )
            })
        };
        // Reactor modules (wasi, Rust's wasm32-unknown-unknown with an initialiser) export
        // `_initialize`; command-style ones `_start`. Exactly one is run, before any callback.
        if let Ok(init) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
            run(&mut store, "_initialize", &|s| init.call(s, ()))?;
            // Reactors with a `main` (some SDKs register their contexts there) get it called
            // once after initialisation, as the reference host does.
            if let Ok(main) = instance.get_typed_func::<(i32, i32), i32>(&mut store, "main") {
                run(&mut store, "main", &|s| main.call(s, (0, 0)).map(drop))?;
            }
        } else if let Ok(start) = instance.get_typed_func::<(), ()>(&mut store, "_start") {
            run(&mut store, "_start", &|s| start.call(s, ()))?;
        }
        run(&mut store, "proxy_on_context_create", &|s| {
            exports.on_context_create.call(s, (ROOT_CONTEXT, 0))
        })?;
        if let Some(f) = &exports.on_vm_start {
            store.set_epoch_deadline(ticks);
            match f.call(&mut store, (ROOT_CONTEXT, 0)) {
                Ok(0) => return Err(with_log(&store, "proxy_on_vm_start returned false".into())),
                Ok(_) => {}
                Err(e) => {
                    return Err(with_log(
                        &store,
                        format!(
                            "proxy_on_vm_start failed: {}",
                            describe(&e, self.limits.call_timeout)
                        ),
                    ));
                }
            }
        }
        if let Some(f) = &exports.on_configure {
            store.set_epoch_deadline(ticks);
            let size = self.config.len() as i32;
            match f.call(&mut store, (ROOT_CONTEXT, size)) {
                Ok(0) => {
                    return Err(with_log(
                        &store,
                        "the plugin refused its configuration (proxy_on_configure returned false)"
                            .into(),
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(with_log(
                        &store,
                        format!(
                            "proxy_on_configure failed: {}",
                            describe(&e, self.limits.call_timeout)
                        ),
                    ));
                }
            }
        }
        store.data_mut().start_log = None;
        Ok(Live {
            store,
            exports,
            next_context: ROOT_CONTEXT + 1,
        })
    }

    fn call_error(&self, e: &wasmtime::Error) -> CallError {
        if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            CallError::Timeout {
                plugin: self.name.clone(),
                timeout_ms: self.limits.call_timeout.as_millis() as u64,
            }
        } else {
            CallError::Trap {
                plugin: self.name.clone(),
                reason: describe(e, self.limits.call_timeout),
            }
        }
    }

    /// Throws the slot's instance away after a failure; its contexts are gone with it.
    fn discard(&self, slot: &mut Slot, why: &CallError) {
        slot.live = None;
        slot.generation += 1;
        tracing::warn!(plugin = %self.name, error = %why, "plugin instance discarded; a fresh one replaces it");
    }

    /// Starts a request in the plugin: creates its context on the next instance (round robin),
    /// starting a fresh instance in that slot if its last one was discarded, then runs
    /// `proxy_on_request_headers` on `stream`. Both calls are made under one lock of the slot.
    /// The handle is `None` when the context was not created, or was lost with its instance.
    pub(crate) fn on_request_headers(
        &self,
        stream: &mut Box<Stream>,
    ) -> (Option<ContextHandle>, Result<Action, CallError>) {
        let index = self.next_slot.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = lock(&self.slots[index]);
        let ctx = match self.create_context(index, &mut slot) {
            Ok(ctx) => ctx,
            Err(e) => return (None, Err(e)),
        };
        let count = (4 + stream.request.headers.len()) as i32;
        let eos = i32::from(stream.request_end_of_stream);
        let result = self.call_locked(
            &mut slot,
            &ctx,
            stream,
            Phase::RequestHeaders,
            |e, store, id| match &e.on_request_headers {
                Some(f) => f.call(store, (id, count, eos)).map(action),
                None => Ok(Action::Continue),
            },
        );
        (result.is_ok().then_some(ctx), result)
    }

    /// Creates a request context in `slot` (number `index`), starting a fresh instance there if
    /// its last one was discarded.
    fn create_context(&self, index: usize, slot: &mut Slot) -> Result<ContextHandle, CallError> {
        if slot.live.is_none() {
            let now = Instant::now();
            if let Some(at) = slot.retry_at
                && now < at
            {
                return Err(CallError::Unavailable {
                    plugin: self.name.clone(),
                    reason: format!(
                        "its instance failed to start {} times; next try in {} ms",
                        slot.start_failures,
                        (at - now).as_millis()
                    ),
                });
            }
            match self.instantiate() {
                Ok(live) => {
                    slot.live = Some(live);
                    slot.start_failures = 0;
                    slot.retry_at = None;
                }
                Err(reason) => {
                    slot.start_failures += 1;
                    // Back off exponentially (100 ms, 200 ms, ... up to 30 s) so a plugin that
                    // keeps crashing at start is not restarted in a tight loop.
                    let backoff = Duration::from_millis(100)
                        .saturating_mul(1 << (slot.start_failures - 1).min(9))
                        .min(MAX_BACKOFF);
                    slot.retry_at = Some(now + backoff);
                    tracing::error!(plugin = %self.name, %reason, failures = slot.start_failures, backoff_ms = backoff.as_millis() as u64, "plugin instance failed to start; backing off");
                    return Err(CallError::Unavailable {
                        plugin: self.name.clone(),
                        reason: format!("a fresh instance failed to start: {reason}"),
                    });
                }
            }
        }
        let ticks = self.limits.deadline_ticks();
        let live = slot.live.as_mut().expect("just ensured");
        let id = live.next_context;
        live.next_context = if id == i32::MAX {
            ROOT_CONTEXT + 1
        } else {
            id + 1
        };
        live.store.set_epoch_deadline(ticks);
        live.store.data_mut().phase = Phase::Root;
        match live
            .exports
            .on_context_create
            .call(&mut live.store, (id, ROOT_CONTEXT))
        {
            Ok(()) => Ok(ContextHandle {
                slot: index,
                generation: slot.generation,
                id,
            }),
            Err(e) => {
                let err = self.call_error(&e);
                self.discard(slot, &err);
                Err(err)
            }
        }
    }

    /// Runs one callback for `ctx` with `stream` visible to host calls as `phase`.
    fn call<R>(
        &self,
        ctx: &ContextHandle,
        stream: &mut Box<Stream>,
        phase: Phase,
        f: impl FnOnce(&Exports, &mut Store<HostState>, i32) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let mut slot = lock(&self.slots[ctx.slot]);
        self.call_locked(&mut slot, ctx, stream, phase, f)
    }

    /// [`Plugin::call`] with the slot already locked.
    fn call_locked<R>(
        &self,
        slot: &mut Slot,
        ctx: &ContextHandle,
        stream: &mut Box<Stream>,
        phase: Phase,
        f: impl FnOnce(&Exports, &mut Store<HostState>, i32) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        if slot.generation != ctx.generation || slot.live.is_none() {
            return Err(CallError::Unavailable {
                plugin: self.name.clone(),
                reason: "the instance holding this request's context was discarded".into(),
            });
        }
        let ticks = self.limits.deadline_ticks();
        let live = slot.live.as_mut().expect("checked above");
        live.store.set_epoch_deadline(ticks);
        let data = live.store.data_mut();
        data.phase = phase;
        // The request is swapped in as a box, an empty one left in its place: host calls see it
        // in the store without its ~500 bytes being copied in and out around every call.
        let placeholder = data
            .spare
            .take()
            .unwrap_or_else(|| Box::new(Stream::empty()));
        data.stream = Some(std::mem::replace(stream, placeholder));
        // A panic in a host call (a bug of ours a plugin found) must not leave a half-run guest
        // in service: it is caught here and the instance discarded like after a trap.
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            f(&live.exports, &mut live.store, ctx.id)
        }))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(wasmtime::Error::msg(format!(
                "a host call panicked: {what}"
            )))
        });
        let data = live.store.data_mut();
        if let Some(s) = data.stream.take() {
            data.spare = Some(std::mem::replace(stream, s));
        }
        data.phase = Phase::Root;
        result.map_err(|e| {
            let err = self.call_error(&e);
            self.discard(slot, &err);
            err
        })
    }

    /// `proxy_on_response_headers`.
    pub(crate) fn on_response_headers(
        &self,
        ctx: &ContextHandle,
        stream: &mut Box<Stream>,
        end_of_stream: bool,
    ) -> Result<Action, CallError> {
        let count = stream.response.as_ref().map_or(0, |r| 1 + r.headers.len()) as i32;
        self.call(
            ctx,
            stream,
            Phase::ResponseHeaders,
            |e, store, id| match &e.on_response_headers {
                Some(f) => f
                    .call(store, (id, count, i32::from(end_of_stream)))
                    .map(action),
                None => Ok(Action::Continue),
            },
        )
    }

    /// `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`: the end of the context. Failures are
    /// logged; the response is already decided.
    pub(crate) fn finish(&self, ctx: &ContextHandle, stream: &mut Box<Stream>) {
        let result = self.call(ctx, stream, Phase::Log, |e, store, id| {
            if let Some(f) = &e.on_done {
                f.call(&mut *store, id)?;
            }
            if let Some(f) = &e.on_log {
                f.call(&mut *store, id)?;
            }
            if let Some(f) = &e.on_delete {
                f.call(&mut *store, id)?;
            }
            Ok(())
        });
        match result {
            // The context went with its discarded instance (the discard was logged): there is
            // nothing left to end. A module without a response hook meets this here, its first
            // call after another request's trap.
            Ok(()) | Err(CallError::Unavailable { .. }) => {}
            Err(e) => {
                tracing::warn!(plugin = %self.name, error = %e, "plugin failed while finishing a request");
            }
        }
    }

    /// `proxy_on_delete` alone, for a context whose request ended early (an error elsewhere).
    pub(crate) fn delete(&self, ctx: &ContextHandle) {
        let mut scratch = Box::new(Stream::empty());
        let _ = self.call(ctx, &mut scratch, Phase::Log, |e, store, id| {
            match &e.on_delete {
                Some(f) => f.call(store, id),
                None => Ok(()),
            }
        });
    }
}

fn action(value: i32) -> Action {
    if value == 0 {
        Action::Continue
    } else {
        Action::Pause
    }
}

/// A wasm failure in words an operator can act on.
fn describe(e: &wasmtime::Error, timeout: Duration) -> String {
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => format!("ran past its {} ms CPU deadline", timeout.as_millis()),
        Some(Trap::StackOverflow) => "wasm stack overflow (too deep recursion)".into(),
        Some(trap) => format!("wasm trap: {trap}"),
        None => {
            let text = format!("{e:#}");
            if text.contains("forcing trap when growing memory")
                || text.contains("memory minimum size")
            {
                "ran out of its memory limit".into()
            } else {
                text
            }
        }
    }
}

impl Exports {
    fn lookup(instance: &Instance, store: &mut Store<HostState>) -> Result<Exports, String> {
        fn optional<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
            instance: &Instance,
            store: &mut Store<HostState>,
            name: &str,
        ) -> Result<Option<TypedFunc<P, R>>, String> {
            match instance.get_func(&mut *store, name) {
                None => Ok(None),
                Some(f) => f
                    .typed::<P, R>(&*store)
                    .map(Some)
                    .map_err(|e| format!("export {name} has the wrong type: {e}")),
            }
        }
        Ok(Exports {
            on_context_create: optional(instance, store, "proxy_on_context_create")?
                .ok_or("missing export proxy_on_context_create")?,
            on_vm_start: optional(instance, store, "proxy_on_vm_start")?,
            on_configure: optional(instance, store, "proxy_on_configure")?,
            on_request_headers: optional(instance, store, "proxy_on_request_headers")?,
            on_response_headers: optional(instance, store, "proxy_on_response_headers")?,
            on_done: optional(instance, store, "proxy_on_done")?,
            on_log: optional(instance, store, "proxy_on_log")?,
            on_delete: optional(instance, store, "proxy_on_delete")?,
        })
    }
}
