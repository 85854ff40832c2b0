//! Loading and hot reload: builds the gateway from a config (compiling each module once and
//! configuring each plugin), watches the plugin directory and the config, and swaps a rebuilt
//! gateway in atomically. A change that fails leaves the running gateway serving and is
//! reported; requests in flight finish on the gateway they started on.
//!
//! Why the watcher is shaped as it is: directories are watched, not files (an editor's
//! write-and-rename or a Kubernetes `..data` symlink swap replaces the file and would lose a
//! file watch); events are debounced (one reload for a burst, and a file copied in several
//! writes is read once it is quiet); a queue overflow just means "reload", since every reload
//! rebuilds from what is on disk; and a module that fails to compile never replaces a good one.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};

use crate::config::{Config, FailurePolicy};
use crate::metrics::Metrics;
use crate::plugin::{Chain, CompiledModule, Limits, LoadError, Plugin, Runtime};
use crate::proxy::Gateway;

/// The gateway being served, swapped whole by reloads. Each request loads it once.
pub type GatewayHandle = Arc<ArcSwap<Gateway>>;

/// How long the files must be quiet before a reload starts.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// A plugin that could not be loaded, at its place in the config.
#[derive(Debug, thiserror::Error)]
#[error("routes[{route}].plugins[{index}] ({name}): {error}")]
pub struct PluginLoadError {
    /// Index of the route in the config.
    pub route: usize,
    /// Index of the plugin in the route's chain.
    pub index: usize,
    /// The plugin's name.
    pub name: String,
    /// The route's name.
    pub route_name: String,
    /// The module file.
    pub file: PathBuf,
    /// Why it could not be loaded.
    #[source]
    pub error: LoadError,
}

/// Why a reload was refused. The running gateway keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config file does not parse or validate.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Plugins that could not be loaded, each at its place.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Plugins(Vec<PluginLoadError>),
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// A new gateway is serving.
    Swapped,
    /// Nothing that matters changed; the running gateway stays.
    Unchanged,
}

/// A module as last loaded from its file.
#[derive(Clone)]
struct LoadedModule {
    sha256: [u8; 32],
    compiled: CompiledModule,
}

/// What makes two configured plugins the same: reused across reloads so unchanged plugins keep
/// their warm instances.
#[derive(Clone, PartialEq, Eq, Hash)]
struct PluginKey {
    module: [u8; 32],
    name: String,
    config: Vec<u8>,
    failure: FailurePolicy,
    limits: Limits,
}

/// The last good modules and configured plugins, by which a reload reuses what did not change.
#[derive(Default)]
struct Cache {
    modules: HashMap<PathBuf, LoadedModule>,
    plugins: HashMap<PluginKey, Arc<Plugin>>,
}

/// The chains of a config's routes, with the digest of every module they run.
struct Loaded {
    chains: Vec<Chain>,
    digests: Vec<[u8; 32]>,
    /// Plugins whose module file is gone, serving their last good version.
    gone: Vec<FailedPlugin>,
}

/// Loads the plugins of `config` into chains, one per route, reusing what `cache` has and
/// recording what it loaded in `next`. Every plugin that fails is reported. A module file that
/// has disappeared keeps serving its last good version (with a warning), so deleting a file
/// never silently opens a route.
fn load_chains(
    config: &Config,
    runtime: &Runtime,
    cache: &Cache,
    next: &mut Cache,
) -> Result<Loaded, Vec<PluginLoadError>> {
    let limits = Limits::from_config(&config.plugins);
    let mut errors = Vec::new();
    let mut chains = Vec::with_capacity(config.routes.len());
    let mut hashes = Vec::new();
    let mut failed_paths = HashSet::new();
    let mut gone_paths = HashSet::new();
    let mut gone = Vec::new();
    for (r, route) in config.routes.iter().enumerate() {
        let mut plugins = Vec::with_capacity(route.plugins.len());
        for (p, plugin) in route.plugins.iter().enumerate() {
            let path = plugin.module_path(&config.plugins);
            let place = |error| PluginLoadError {
                route: r,
                index: p,
                name: plugin.name.clone(),
                route_name: route.name.clone(),
                file: path.clone(),
                error,
            };
            if failed_paths.contains(&path) {
                continue; // Reported at its first use.
            }
            let module = match next.modules.get(&path) {
                Some(m) => m.clone(),
                None => match load_module(runtime, &path, cache.modules.get(&path)) {
                    Ok((m, file_gone)) => {
                        if file_gone {
                            gone_paths.insert(path.clone());
                        }
                        next.modules.insert(path.clone(), m.clone());
                        m
                    }
                    Err(e) => {
                        failed_paths.insert(path.clone());
                        errors.push(place(e));
                        continue;
                    }
                },
            };
            if gone_paths.contains(&path) {
                gone.push(FailedPlugin {
                    route: route.name.clone(),
                    plugin: plugin.name.clone(),
                    file: path.clone(),
                    error: format!(
                        "routes[{r}].plugins[{p}] ({}): {}: the file is gone; the last good version keeps serving until it is back (a restart would fail)",
                        plugin.name,
                        path.display()
                    ),
                });
            }
            let key = PluginKey {
                module: module.sha256,
                name: plugin.name.clone(),
                config: plugin.config_json(),
                failure: plugin.failure,
                limits: limits.clone(),
            };
            hashes.push(module.sha256);
            let configured = match next.plugins.get(&key).or_else(|| cache.plugins.get(&key)) {
                Some(existing) => existing.clone(),
                None => match runtime.configure(
                    &module.compiled,
                    &plugin.name,
                    key.config.clone(),
                    plugin.failure,
                    &limits,
                ) {
                    Ok(configured) => configured,
                    Err(e) => {
                        errors.push(place(e));
                        continue;
                    }
                },
            };
            next.plugins.insert(key, configured.clone());
            plugins.push(configured);
        }
        chains.push(Chain::new(plugins));
    }
    if errors.is_empty() {
        Ok(Loaded {
            chains,
            digests: hashes,
            gone,
        })
    } else {
        Err(errors)
    }
}

/// Reads and compiles one module, reusing `last` when the file's content is unchanged, and
/// keeping `last` (with a warning, and `true`) when the file is gone.
fn load_module(
    runtime: &Runtime,
    path: &Path,
    last: Option<&LoadedModule>,
) -> Result<(LoadedModule, bool), LoadError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && last.is_some() => {
            tracing::warn!(file = %path.display(), "plugin file is gone; its route keeps the last good version until the file is back or the config stops naming it");
            return Ok((last.cloned().expect("checked"), true));
        }
        Err(cause) => {
            return Err(LoadError::Read {
                path: path.to_path_buf(),
                cause,
            });
        }
    };
    let sha256: [u8; 32] = Sha256::digest(&bytes).into();
    if let Some(last) = last.filter(|l| l.sha256 == sha256) {
        return Ok((last.clone(), false));
    }
    let compiled = runtime.compile_bytes(path, &bytes)?;
    Ok((LoadedModule { sha256, compiled }, false))
}

/// Builds a gateway from `config` with nothing cached: what `wasmgate check` and start-up do.
pub fn load(config: &Config, runtime: &Runtime) -> Result<Gateway, ReloadError> {
    let mut next = Cache::default();
    let loaded =
        load_chains(config, runtime, &Cache::default(), &mut next).map_err(ReloadError::Plugins)?;
    Ok(Gateway::new(
        config,
        loaded.chains,
        &Arc::new(Metrics::new()),
    ))
}

/// The state a reload works from, changed only under the reloader's lock.
struct State {
    cache: Cache,
    /// The config text and module digests of the running gateway: a reload that finds the same
    /// does not swap.
    fingerprint: (String, Vec<[u8; 32]>),
    /// The config the listeners were started with: changes there need a restart.
    started: Config,
    /// Directories the watcher follows, from the running config.
    watched: HashSet<PathBuf>,
    /// Files whose change triggers a reload: the config and every module file.
    files: HashSet<PathBuf>,
    /// Plugins of the running gateway whose module file is gone.
    gone: Vec<FailedPlugin>,
}

/// The outcome of the last reload attempt, for operators.
#[derive(Debug, Clone)]
pub struct ReloadStatus {
    /// When it happened.
    pub at: SystemTime,
    /// `None` when it succeeded (or found nothing to change); else what was wrong, by file.
    pub error: Option<String>,
    /// The plugins that could not be loaded, when that is why it failed.
    pub failed_plugins: Vec<FailedPlugin>,
}

/// A plugin a reload could not load: the running gateway keeps its last good version (if it
/// had one).
#[derive(Debug, Clone)]
pub struct FailedPlugin {
    /// The route's name.
    pub route: String,
    /// The plugin's name.
    pub plugin: String,
    /// The module file.
    pub file: PathBuf,
    /// The error, with its place in the config.
    pub error: String,
}

/// Owns reloads: one at a time, from the config file on disk.
pub struct Reloader {
    config_path: PathBuf,
    runtime: Arc<Runtime>,
    metrics: Arc<Metrics>,
    handle: GatewayHandle,
    state: Mutex<State>,
    status: Mutex<Option<ReloadStatus>>,
    swaps: AtomicU64,
    attempts: AtomicU64,
    /// Tells the watcher thread, when there is one, that a reload it did not run may have
    /// changed what must be watched.
    resync: Mutex<Option<mpsc::Sender<Watched>>>,
}

/// What the watcher thread waits for.
enum Watched {
    /// A file-system event (or a watcher error).
    Fs(notify::Result<notify::Event>),
    /// A reload ran elsewhere (SIGHUP, the admin API): re-sync the watched directories.
    Resync,
}

/// How often directories that could not be watched (not there yet, replaced) are retried.
const REWATCH_INTERVAL: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("config_path", &self.config_path)
            .finish_non_exhaustive()
    }
}

fn watch_set(config: &Config, config_path: &Path) -> (HashSet<PathBuf>, HashSet<PathBuf>) {
    let config_file = absolute(config_path);
    let mut files: HashSet<PathBuf> = config
        .routes
        .iter()
        .flat_map(|r| &r.plugins)
        .map(|p| absolute(&p.module_path(&config.plugins)))
        .collect();
    let mut dirs: HashSet<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    dirs.insert(absolute(&config.plugins.dir));
    if let Some(dir) = config_file.parent() {
        dirs.insert(dir.to_path_buf());
    }
    files.insert(config_file);
    (dirs, files)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

impl Reloader {
    /// Loads the config at `config_path` and returns the reloader with the handle the server
    /// serves from. Fails when the initial load fails: a gateway does not start without its
    /// plugins.
    pub fn start(
        config_path: &Path,
        runtime: Arc<Runtime>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Reloader>, ReloadError> {
        // The text the fingerprint holds must be the text the gateway is built from: the file
        // is read and parsed here once, not taken from an earlier read that may differ.
        let text = std::fs::read_to_string(config_path).map_err(|cause| {
            crate::config::ConfigError::Read {
                file: config_path.to_path_buf(),
                cause,
            }
        })?;
        let base = config_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let config = &Config::parse(&text, config_path, base)?;
        let mut cache = Cache::default();
        let loaded = load_chains(config, &runtime, &Cache::default(), &mut cache)
            .map_err(ReloadError::Plugins)?;
        let handle = Arc::new(ArcSwap::from_pointee(Gateway::new(
            config,
            loaded.chains,
            &metrics,
        )));
        let (watched, files) = watch_set(config, config_path);
        Ok(Arc::new(Reloader {
            config_path: config_path.to_path_buf(),
            runtime,
            metrics,
            handle,
            state: Mutex::new(State {
                cache,
                fingerprint: (text, loaded.digests),
                started: config.clone(),
                watched,
                files,
                gone: Vec::new(),
            }),
            status: Mutex::new(None),
            swaps: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
            resync: Mutex::new(None),
        }))
    }

    /// The handle the server serves from.
    pub fn handle(&self) -> GatewayHandle {
        self.handle.clone()
    }

    /// The last reload's outcome, if there was one.
    pub fn status(&self) -> Option<ReloadStatus> {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many times a new gateway was swapped in.
    pub fn swaps(&self) -> u64 {
        self.swaps.load(Ordering::Relaxed)
    }

    /// How many reloads were attempted, whatever their outcome.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// Re-reads the config and the modules, builds the new gateway to the side and swaps it in.
    /// On failure nothing changes; the error (also logged) says which file and why.
    pub fn reload(&self) -> Result<ReloadOutcome, ReloadError> {
        let result = self.reload_now();
        // The new config may name directories the watcher does not follow yet.
        if let Some(tx) = self
            .resync
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            let _ = tx.send(Watched::Resync);
        }
        result
    }

    /// A reload, without telling the watcher (which calls this itself).
    fn reload_now(&self) -> Result<ReloadOutcome, ReloadError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let result = self.reload_locked(&mut state);
        let error = match &result {
            Ok(ReloadOutcome::Swapped) => {
                tracing::info!(config = %self.config_path.display(), "reloaded: the new configuration and plugins are serving");
                self.metrics.reload("swapped");
                None
            }
            Ok(ReloadOutcome::Unchanged) => {
                tracing::debug!("reload found nothing changed");
                self.metrics.reload("unchanged");
                None
            }
            Err(e) => {
                tracing::error!(config = %self.config_path.display(), error = %e, "reload refused; the running version keeps serving");
                self.metrics.reload("failed");
                Some(e.to_string())
            }
        };
        let failed_plugins = match &result {
            Err(ReloadError::Plugins(errors)) => errors
                .iter()
                .map(|e| FailedPlugin {
                    route: e.route_name.clone(),
                    plugin: e.name.clone(),
                    file: e.file.clone(),
                    error: e.to_string(),
                })
                .collect(),
            Err(ReloadError::Config(_)) => Vec::new(),
            Ok(_) => state.gone.clone(),
        };
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = Some(ReloadStatus {
            at: SystemTime::now(),
            error,
            failed_plugins,
        });
        result
    }

    fn reload_locked(&self, state: &mut State) -> Result<ReloadOutcome, ReloadError> {
        let text = std::fs::read_to_string(&self.config_path).map_err(|cause| {
            crate::config::ConfigError::Read {
                file: self.config_path.clone(),
                cause,
            }
        })?;
        let base = self
            .config_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let config = Config::parse(&text, &self.config_path, base)?;
        // Watched even if loading fails below: a module named before it exists is seen when it
        // arrives.
        let (watched, files) = watch_set(&config, &self.config_path);
        state.watched = watched;
        state.files = files;
        if config.server.http != state.started.server.http
            || config.server.https != state.started.server.https
            || config.server.max_connections != state.started.server.max_connections
            || config.server.workers != state.started.server.workers
            || config.plugins.max_stack_kib != state.started.plugins.max_stack_kib
            || config.tls != state.started.tls
            || config.admin != state.started.admin
            || config.access_log.format != state.started.access_log.format
        {
            tracing::warn!(
                "listener, connection, worker, wasm stack, TLS, admin and log format changes take effect at the next restart; routes, plugins, request limits and access_log.enabled are reloaded now"
            );
        }
        let mut next = Cache::default();
        let loaded = load_chains(&config, &self.runtime, &state.cache, &mut next)
            .map_err(ReloadError::Plugins)?;
        state.gone = loaded.gone;
        let fingerprint = (text, loaded.digests);
        if fingerprint == state.fingerprint {
            state.cache = next;
            return Ok(ReloadOutcome::Unchanged);
        }
        // Counted before the store: whoever sees the new gateway also sees the count.
        self.swaps.fetch_add(1, Ordering::Relaxed);
        self.handle.store(Arc::new(Gateway::new(
            &config,
            loaded.chains,
            &self.metrics,
        )));
        state.cache = next;
        state.fingerprint = fingerprint;
        Ok(ReloadOutcome::Swapped)
    }

    fn is_relevant(&self, path: &Path) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        state.files.contains(path)
            // A watched directory itself removed, renamed or replaced.
            || state.watched.contains(path)
            || name.ends_with(".wasm")
            // Kubernetes ConfigMap mounts swap a `..data` symlink (and `..TIMESTAMP` dirs).
            || name.starts_with("..")
    }

    /// Starts watching the plugin directory and the config's directory on a background thread.
    /// Watching stops when the returned guard is dropped.
    pub fn watch(self: &Arc<Self>) -> anyhow::Result<WatchGuard> {
        let (tx, rx) = mpsc::channel::<Watched>();
        let events = tx.clone();
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = events.send(Watched::Fs(event));
        })?;
        let mut watching = Watching::default();
        watching.sync(&mut watcher, &self.watched_dirs());
        *self.resync.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        let watcher = Arc::new(Mutex::new(Some(watcher)));
        let reloader = self.clone();
        let shared = watcher.clone();
        std::thread::Builder::new()
            .name("wasmgate-reload".into())
            .spawn(move || reloader.watch_loop(&shared, watching, rx))?;
        Ok(WatchGuard {
            watcher,
            reloader: self.clone(),
        })
    }

    fn watched_dirs(&self) -> HashSet<PathBuf> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .watched
            .clone()
    }

    /// Runs until the guard drops the watcher and the reloader's sender, which closes the
    /// channel.
    fn watch_loop(
        self: Arc<Self>,
        watcher: &Mutex<Option<notify::RecommendedWatcher>>,
        mut watching: Watching,
        rx: mpsc::Receiver<Watched>,
    ) {
        // A catch-up look first: changes made while the gateway was starting raised no event.
        let _ = self.reload_now();
        if !self.resync_watches(watcher, &mut watching) {
            return;
        }
        loop {
            // Directories that could not be watched are retried now and then: one that is
            // replaced (`mv plugins.new plugins`) may be missing for a moment.
            let wait = if watching.pending.is_empty() {
                Duration::from_secs(3600)
            } else {
                REWATCH_INTERVAL
            };
            let first = match rx.recv_timeout(wait) {
                Ok(Watched::Fs(event)) => event,
                Ok(Watched::Resync) | Err(mpsc::RecvTimeoutError::Timeout) => {
                    if !self.resync_watches(watcher, &mut watching) {
                        return;
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            if !self.wants_reload(&first) {
                continue;
            }
            // Files being written in place: a reload waits until each is closed, so a file
            // written in pieces with pauses (a script, rsync --inplace) is never read half-way.
            let mut writing: HashSet<PathBuf> = HashSet::new();
            note_writes(&first, &mut writing);
            // Debounce: then wait until the directories have been quiet for DEBOUNCE.
            loop {
                match rx.recv_timeout(DEBOUNCE) {
                    Ok(Watched::Fs(event)) => note_writes(&event, &mut writing),
                    Ok(Watched::Resync) => {}
                    Err(mpsc::RecvTimeoutError::Timeout) if writing.is_empty() => break,
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
            let _ = self.reload_now();
            if !self.resync_watches(watcher, &mut watching) {
                return;
            }
        }
    }

    /// Brings the watches in line with the running config. A directory watched anew may have
    /// changed before its watch was armed, with no event to say so: each time one is added, the
    /// disk is looked at again. False when watching has stopped.
    fn resync_watches(
        &self,
        watcher: &Mutex<Option<notify::RecommendedWatcher>>,
        watching: &mut Watching,
    ) -> bool {
        loop {
            let added = {
                let mut guard = watcher.lock().unwrap_or_else(|e| e.into_inner());
                let Some(w) = guard.as_mut() else {
                    return false;
                };
                watching.sync(w, &self.watched_dirs())
            };
            if !added {
                return true;
            }
            let _ = self.reload_now();
        }
    }

    fn wants_reload(&self, event: &notify::Result<notify::Event>) -> bool {
        wants_reload(event, |p| self.is_relevant(p))
    }
}

/// Tracks files open for writing: a data change opens an entry, closing the file after writing
/// (or removing it) closes it.
fn note_writes(event: &notify::Result<notify::Event>, writing: &mut HashSet<PathBuf>) {
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    let Ok(event) = event else { return };
    match event.kind {
        notify::EventKind::Modify(ModifyKind::Data(_)) => {
            writing.extend(event.paths.iter().cloned());
        }
        notify::EventKind::Access(AccessKind::Close(AccessMode::Write))
        | notify::EventKind::Remove(_)
        | notify::EventKind::Modify(ModifyKind::Name(_)) => {
            for p in &event.paths {
                writing.remove(p);
            }
        }
        _ => {}
    }
}

/// Whether a watcher event calls for a reload: a change to a relevant file, or any sign that
/// events were lost (an error, an overflowed queue), since a reload rebuilds from the disk.
fn wants_reload(
    event: &notify::Result<notify::Event>,
    is_relevant: impl Fn(&Path) -> bool,
) -> bool {
    match event {
        Err(e) => {
            tracing::warn!(error = %e, "file watcher error; reloading to catch up");
            true
        }
        Ok(event) if event.need_rescan() => true,
        Ok(event) => {
            !matches!(event.kind, notify::EventKind::Access(_))
                && event.paths.iter().any(|p| is_relevant(p))
        }
    }
}

/// The directories being watched, each with the identity of the directory the watch is on.
#[derive(Default)]
struct Watching {
    dirs: HashMap<PathBuf, Option<(u64, u64)>>,
    /// Wanted but not watched: missing, or the watch failed.
    pending: HashSet<PathBuf>,
}

/// A directory's device and inode: a directory replaced under the same path has another.
fn identity(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

impl Watching {
    /// Adds watches for directories that should be watched (again, when the directory at the
    /// path was replaced), and drops those that should not. True when a watch was added.
    fn sync(
        &mut self,
        watcher: &mut notify::RecommendedWatcher,
        wanted: &HashSet<PathBuf>,
    ) -> bool {
        let watched: Vec<PathBuf> = self.dirs.keys().cloned().collect();
        for dir in watched {
            let replaced = wanted.contains(&dir) && self.dirs.get(&dir) != Some(&identity(&dir));
            if !wanted.contains(&dir) || replaced {
                let _ = watcher.unwatch(&dir);
                self.dirs.remove(&dir);
            }
        }
        self.pending.retain(|d| wanted.contains(d));
        let mut added = false;
        for dir in wanted {
            if self.dirs.contains_key(dir) {
                continue;
            }
            let id = identity(dir);
            match watcher.watch(dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    if self.pending.remove(dir) {
                        tracing::info!(dir = %dir.display(), "watching again");
                    }
                    self.dirs.insert(dir.clone(), id);
                    added = true;
                }
                Err(e) => {
                    if self.pending.insert(dir.clone()) {
                        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch this directory; retrying every second (meanwhile changes in it need `wasmgate reload` or SIGHUP)");
                    }
                }
            }
        }
        added
    }
}

/// Keeps the directories watched; dropping it stops the watcher and its thread.
pub struct WatchGuard {
    watcher: Arc<Mutex<Option<notify::RecommendedWatcher>>>,
    reloader: Arc<Reloader>,
}

impl std::fmt::Debug for WatchGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchGuard").finish_non_exhaustive()
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        // Dropping the watcher and the reloader's sender closes the channel, which ends the
        // thread's loop.
        self.watcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.reloader
            .resync
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, CreateKind, Event, EventKind, Flag};

    use super::*;

    #[test]
    fn lost_events_and_relevant_changes_call_for_a_reload() {
        let relevant = |p: &Path| p.ends_with("key-auth.wasm");
        let create = |p: &str| Event::new(EventKind::Create(CreateKind::File)).add_path(p.into());
        assert!(wants_reload(&Ok(create("/p/key-auth.wasm")), relevant));
        assert!(!wants_reload(&Ok(create("/p/notes.txt")), relevant));
        assert!(!wants_reload(
            &Ok(Event::new(EventKind::Access(AccessKind::Any)).add_path("/p/key-auth.wasm".into())),
            relevant
        ));
        // The kernel's queue overflowed: events were dropped, so everything is looked at again.
        assert!(wants_reload(
            &Ok(Event::new(EventKind::Other).set_flag(Flag::Rescan)),
            relevant
        ));
        assert!(wants_reload(
            &Err(notify::Error::generic("watch lost")),
            relevant
        ));
    }
}
