//! The `wasmgate` command: run a gateway from a config file, check a config and its plugins, or
//! start the demo.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use wasmgate::Config;

/// A programmable API gateway for model serving: HTTPS in front of model servers, with every
/// policy a proxy-wasm plugin.
#[derive(Parser)]
#[command(name = "wasmgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the routes of a config file until Ctrl-C or SIGTERM. The plugin directory and the
    /// config are watched and reloaded on change; SIGHUP reloads too.
    Run {
        /// The config file (TOML; docs/config.md).
        #[arg(long, short)]
        config: PathBuf,
        /// Write the process id here, for `wasmgate reload --pid-file`.
        #[arg(long)]
        pid_file: Option<PathBuf>,
    },
    /// Make a running gateway reload its config and plugins now (sends it SIGHUP), for file
    /// systems where change events do not arrive.
    Reload {
        /// The gateway's process id.
        #[arg(long, conflicts_with = "pid_file")]
        pid: Option<i32>,
        /// The file `wasmgate run --pid-file` wrote.
        #[arg(long)]
        pid_file: Option<PathBuf>,
    },
    /// Validate a config file and load every plugin it names; exits non-zero with every
    /// problem found, each at its place.
    Check {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Start the demo: the demo model server on 127.0.0.1:9393 and the gateway in front of it.
    Demo {
        /// The demo's config file.
        #[arg(long, short, default_value = wasmgate::demo::DEMO_CONFIG)]
        config: PathBuf,
    },
    /// Write a plugin: scaffold a crate against the SDK, build one to a .wasm module.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Create a plugin crate NAME (in --dir) with a working auth plugin and its unit tests.
    New {
        /// The plugin's name: a-z, 0-9, - and _, starting with a letter.
        name: String,
        /// The directory to create the crate in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The SDK crate to depend on [default: the sdk/ this wasmgate was built from].
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Build a plugin crate to a .wasm module (release, wasm32-unknown-unknown) and print its path.
    Build {
        /// The crate's directory or Cargo.toml.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Cargo's target directory [default: TARGET/wasm-build of the crate].
        #[arg(long)]
        target_dir: Option<PathBuf>,
        /// Where NAME.wasm is copied [default: TARGET/wasm of the crate].
        #[arg(long)]
        out_dir: Option<PathBuf>,
        /// rustup or debian [default: rustup's wasm target if installed, else Debian's rustc].
        #[arg(long)]
        toolchain: Option<wasmgate::scaffold::Toolchain>,
    },
}

/// mimalloc instead of the system allocator (host/Cargo.toml says why; BENCHMARKS.md what it
/// bought).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => {
            wasmgate::logging::init(None);
            check(&config)
        }
        Command::Run { config, pid_file } => {
            serve(&config).and_then(|(rt, loaded)| rt.block_on(run(config, loaded, pid_file)))
        }
        Command::Reload { pid, pid_file } => {
            wasmgate::logging::init(None);
            reload(pid, pid_file)
        }
        Command::Demo { config } => serve(&config)
            .and_then(|(rt, loaded)| rt.block_on(wasmgate::demo::run(&config, loaded))),
        Command::Plugin { command } => {
            wasmgate::logging::init(None);
            plugin(command)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wasmgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `wasmgate plugin new` and `wasmgate plugin build`.
fn plugin(command: PluginCommand) -> anyhow::Result<()> {
    use wasmgate::scaffold;
    match command {
        PluginCommand::New { name, dir, sdk } => {
            let created = scaffold::new_plugin(&scaffold::NewPlugin {
                name,
                parent: dir,
                sdk,
            })?;
            println!(
                "created plugin {} in {}",
                created.name,
                created.dir.display()
            );
            let shown = created.dir.display();
            match &created.workspace {
                Some(ws) => {
                    match &ws.membership {
                        scaffold::Membership::Added => println!(
                            "added {:?} to the workspace members in {}",
                            ws.member,
                            ws.root.join("Cargo.toml").display()
                        ),
                        scaffold::Membership::AlreadyCovered => {}
                        scaffold::Membership::NotAdded(why) => println!(
                            "add {:?} to the workspace members yourself: {why}",
                            ws.member
                        ),
                    }
                    println!("  test:  cargo test -p {}", created.name);
                    println!("  build: scripts/build-wasm.sh {}", created.name);
                }
                None => {
                    println!("  test:  cd {shown} && cargo test");
                    println!("  build: wasmgate plugin build {shown}");
                }
            }
            println!(
                "then copy {}.wasm into the gateway's plugin directory and name it in a route \
                 (docs/plugin-guide.md)",
                created.name
            );
            Ok(())
        }
        PluginCommand::Build {
            path,
            target_dir,
            out_dir,
            toolchain,
        } => {
            let built = scaffold::build(&scaffold::BuildOptions {
                target_dir,
                out_dir,
                toolchain,
                ..scaffold::BuildOptions::new(path)
            })?;
            eprintln!(
                "wasmgate: built {} with the {} toolchain in {:.1} s",
                built.name,
                built.toolchain,
                built.elapsed.as_secs_f64()
            );
            println!("{}", built.wasm.display());
            Ok(())
        }
    }
}

/// For `run` and `demo`: reads the config (its access log and worker count are set at start),
/// installs the log and builds the async runtime.
fn serve(path: &std::path::Path) -> anyhow::Result<(tokio::runtime::Runtime, Config)> {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            wasmgate::logging::init(None);
            return Err(e.into());
        }
    };
    wasmgate::logging::init(Some(&config.access_log));
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if config.server.workers > 0 {
        builder.worker_threads(config.server.workers);
    }
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok((runtime, config))
}

fn check(path: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    if let (Some(tls), Some(_)) = (&config.tls, config.server.https) {
        wasmgate::tls::server_config(&tls.cert, &tls.key)?;
    }
    let gateway = wasmgate::load(&config)?;
    let plugins: usize = gateway
        .routes()
        .iter()
        .map(|r| r.chain().plugins().len())
        .sum();
    println!(
        "{}: ok ({} routes, {} plugins loaded)",
        path.display(),
        gateway.routes().len(),
        plugins
    );
    Ok(())
}

async fn run(path: PathBuf, config: Config, pid_file: Option<PathBuf>) -> anyhow::Result<()> {
    // SIGHUP's default action ends the process: the handler is in place before anything that
    // could make a supervisor send one (the pid file, the listeners).
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let mut running = wasmgate::start(&path, &config).await?;
    for (scheme, addr) in [
        ("http", running.server.http_addr()),
        ("https", running.server.https_addr()),
        ("admin", running.admin_addr()),
    ] {
        if let Some(addr) = addr {
            tracing::info!(%addr, scheme, "listening");
        }
    }
    running.watch().context("watching the plugin directory")?;
    // SIGHUP reloads, for file systems whose changes raise no events (NFS and the like).
    let reloader = running.reloader.clone();
    #[cfg(unix)]
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            let reloader = reloader.clone();
            let _ = tokio::task::spawn_blocking(move || reloader.reload()).await;
        }
    });
    if let Some(pid_file) = &pid_file {
        // Written whole, then renamed into place, once the gateway can take a SIGHUP.
        let tmp = pid_file.with_extension("tmp");
        std::fs::write(&tmp, format!("{}\n", std::process::id()))
            .and_then(|()| std::fs::rename(&tmp, pid_file))
            .with_context(|| format!("--pid-file {}", pid_file.display()))?;
    }
    shutdown_signal().await;
    tracing::info!("shutting down: draining requests in flight");
    running.shutdown().await;
    if let Some(pid_file) = pid_file {
        let _ = std::fs::remove_file(pid_file);
    }
    Ok(())
}

/// Asks a running gateway to reload: SIGHUP to the process in `pid_file` (or `pid`).
fn reload(pid: Option<i32>, pid_file: Option<PathBuf>) -> anyhow::Result<()> {
    let pid = match (pid, pid_file) {
        (Some(pid), _) => pid,
        (None, Some(file)) => std::fs::read_to_string(&file)
            .with_context(|| format!("--pid-file {}", file.display()))?
            .trim()
            .parse()
            .with_context(|| format!("--pid-file {}: not a process id", file.display()))?,
        (None, None) => anyhow::bail!("say which gateway: --pid PID or --pid-file FILE"),
    };
    // kill(2) reads 0 and negative ids as process groups (and -1 as every process).
    anyhow::ensure!(pid > 0, "{pid} is not a process id");
    let process = rustix::process::Pid::from_raw(pid)
        .with_context(|| format!("{pid} is not a process id"))?;
    rustix::process::kill_process(process, rustix::process::Signal::HUP)
        .with_context(|| format!("cannot signal process {pid}"))?;
    println!("asked wasmgate (pid {pid}) to reload; its log says how it went");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
