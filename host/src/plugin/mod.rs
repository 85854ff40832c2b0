//! The proxy-wasm plugin host, and the only module that touches wasmtime.
//!
//! One [`Runtime`] holds the engine, the linker with every host call (see [`abi`]) and the epoch
//! ticker that enforces CPU deadlines. A module is compiled once ([`Runtime::compile`]) and then
//! configured once per place it is used ([`Runtime::configure`]), giving a [`Plugin`]: a small set
//! of kept instances, each holding one root context and many request contexts, as proxy-wasm hosts
//! do. A [`Chain`] runs a route's plugins over a request.

mod abi;
mod chain;
mod instance;
mod stream;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::{Config as EngineConfig, Engine, Linker, Module, OptLevel};

/// The fuzz harness builds its serialized maps as the host does.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use abi::serialize_pairs;
pub use chain::{Chain, ChainRun, RequestOutcome};
pub use instance::Plugin;
pub use stream::{LocalResponse, RequestHead, RequestInfo, ResponseHead, Stream};

use crate::config::{FailurePolicy, PluginsConfig};
use abi::HostState;

/// How often the epoch ticker advances; CPU deadlines are whole multiples of it.
const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Largest wasm stack a call may use unless `plugins.max_stack_kib` says otherwise, in KiB.
/// Deep recursion traps with a stack overflow instead of reaching the host's own stack.
pub const DEFAULT_MAX_STACK_KIB: u32 = 512;

/// Sandbox limits applied to every instance of a configured plugin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Limits {
    /// CPU time one call into a plugin may take.
    pub call_timeout: Duration,
    /// Largest linear memory of an instance, in bytes.
    pub memory_bytes: usize,
    /// Kept instances per configured plugin.
    pub instances: usize,
}

impl Limits {
    /// The limits a `[plugins]` section asks for; `instances = 0` means one per CPU.
    pub fn from_config(config: &PluginsConfig) -> Limits {
        let instances = if config.instances == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            config.instances
        };
        Limits {
            call_timeout: config.call_timeout(),
            memory_bytes: config.memory_limit_bytes(),
            instances,
        }
    }

    /// Epoch ticks to allow a call. The deadline fires between `ticks - 1` and `ticks` ticks
    /// after it is set, so one tick is added to never cut a call short of its timeout.
    fn deadline_ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_micros().max(1);
        (self.call_timeout.as_micros().div_ceil(tick) as u64) + 1
    }
}

/// Why a plugin could not be loaded. Each message says which file and why.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The module file could not be read.
    #[error("{}: cannot read: {cause}", path.display())]
    Read {
        path: PathBuf,
        /// Why (shown in the message, so not chained as a source too).
        cause: std::io::Error,
    },
    /// The file is not a valid wasm module.
    #[error("{}: not a valid wasm module: {reason}", path.display())]
    Compile { path: PathBuf, reason: String },
    /// The module is valid wasm but not a proxy-wasm 0.2.x module this host can run.
    #[error("{}: not a proxy-wasm 0.2.1 module: {reason}", path.display())]
    NotProxyWasm { path: PathBuf, reason: String },
    /// The module failed while starting or refused its configuration.
    #[error("{}: {reason}", path.display())]
    Start { path: PathBuf, reason: String },
}

/// Why a call into a plugin failed. The request that made the call is answered with a 5xx (or,
/// with `failure = "open"`, goes on without the plugin).
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The plugin trapped (panic, out-of-bounds access, stack overflow, memory limit...).
    #[error("plugin {plugin} trapped: {reason}")]
    Trap { plugin: Arc<str>, reason: String },
    /// The call ran past its CPU deadline and was cut off.
    #[error("plugin {plugin} ran past its {timeout_ms} ms CPU deadline")]
    Timeout { plugin: Arc<str>, timeout_ms: u64 },
    /// No instance could serve the call (one was discarded and its replacement failed, or the
    /// request's context was lost with a discarded instance).
    #[error("plugin {plugin} is unavailable: {reason}")]
    Unavailable { plugin: Arc<str>, reason: String },
    /// The plugin did something the host does not allow (e.g. pausing a request it never
    /// resumes).
    #[error("plugin {plugin} misbehaved: {reason}")]
    Misbehaved { plugin: Arc<str>, reason: String },
}

impl CallError {
    /// The plugin's name.
    pub fn plugin(&self) -> &str {
        match self {
            CallError::Trap { plugin, .. }
            | CallError::Timeout { plugin, .. }
            | CallError::Unavailable { plugin, .. }
            | CallError::Misbehaved { plugin, .. } => plugin,
        }
    }
}

/// A module compiled once, ready to be configured for any number of routes.
#[derive(Clone)]
pub struct CompiledModule {
    path: Arc<Path>,
    sha256: [u8; 32],
    compiled_at: SystemTime,
    pre: wasmtime::InstancePre<HostState>,
}

impl CompiledModule {
    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SHA-256 of the module's bytes.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// When it was compiled (a reload that finds the file unchanged keeps this one).
    pub fn compiled_at(&self) -> SystemTime {
        self.compiled_at
    }
}

impl std::fmt::Debug for CompiledModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledModule")
            .field("path", &self.path)
            .finish()
    }
}

/// The wasm engine, host calls and deadline clock shared by every plugin.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    ticker_stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Runtime {
    /// Creates the engine, with the default wasm stack, and starts the epoch ticker thread
    /// (stopped when the runtime drops).
    pub fn new() -> anyhow::Result<Runtime> {
        Runtime::with_max_stack_kib(DEFAULT_MAX_STACK_KIB)
    }

    /// Like [`Runtime::new`], with the wasm stack `config` asks for (`max_stack_kib`). The
    /// stack is an engine setting: it holds for the runtime's life, reloads included.
    pub fn for_config(config: &PluginsConfig) -> anyhow::Result<Runtime> {
        Runtime::with_max_stack_kib(config.max_stack_kib)
    }

    /// Like [`Runtime::new`], with a wasm stack of `kib` KiB.
    pub fn with_max_stack_kib(kib: u32) -> anyhow::Result<Runtime> {
        let mut config = EngineConfig::new();
        config
            .epoch_interruption(true)
            .max_wasm_stack(kib as usize * 1024)
            .cranelift_opt_level(OptLevel::Speed);
        let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("wasm engine: {e}"))?;
        let linker = abi::linker(&engine).map_err(|e| anyhow::anyhow!("host calls: {e}"))?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let stop = ticker_stop.clone();
        let ticking = engine.clone();
        std::thread::Builder::new()
            .name("wasmgate-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticking.increment_epoch();
                }
            })?;
        Ok(Runtime {
            engine,
            linker,
            ticker_stop,
        })
    }

    /// Reads and compiles a module, and checks it is a proxy-wasm module whose imports the host
    /// provides. Slow (milliseconds); done off the request path.
    pub fn compile(&self, path: &Path) -> Result<CompiledModule, LoadError> {
        let bytes = std::fs::read(path).map_err(|cause| LoadError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        self.compile_bytes(path, &bytes)
    }

    /// Like [`Runtime::compile`] for a module already in memory; `path` names it in errors.
    pub fn compile_bytes(&self, path: &Path, bytes: &[u8]) -> Result<CompiledModule, LoadError> {
        let module = Module::new(&self.engine, bytes).map_err(|e| LoadError::Compile {
            path: path.to_path_buf(),
            reason: format!("{e:#}"),
        })?;
        abi::check_exports(&module).map_err(|reason| LoadError::NotProxyWasm {
            path: path.to_path_buf(),
            reason,
        })?;
        let linker =
            abi::linker_for(&self.linker, &module).map_err(|reason| LoadError::NotProxyWasm {
                path: path.to_path_buf(),
                reason,
            })?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::NotProxyWasm {
                path: path.to_path_buf(),
                reason: format!("{e:#}"),
            })?;
        Ok(CompiledModule {
            path: path.into(),
            sha256: Sha256::digest(bytes).into(),
            compiled_at: SystemTime::now(),
            pre,
        })
    }

    /// Starts the kept instances of `module` with `config` (JSON bytes handed to
    /// `proxy_on_configure`). Fails when the module traps while starting, or its `on_vm_start` or
    /// `on_configure` returns false; the error carries what the plugin logged about it.
    pub fn configure(
        &self,
        module: &CompiledModule,
        name: &str,
        config: Vec<u8>,
        failure: FailurePolicy,
        limits: &Limits,
    ) -> Result<Arc<Plugin>, LoadError> {
        Plugin::start(
            &self.engine,
            module,
            name,
            config.into(),
            failure,
            limits.clone(),
        )
        .map(Arc::new)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
