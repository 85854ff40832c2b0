//! Hot reload under traffic: real files changed the ways files really change, a client running
//! through every swap, and the version that answered read from a response header.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use wasmgate_tests::{DEMO_BODY, Harness, Proto};

/// A proxy-wasm module that adds `x-version: VERSION` to every response.
fn version_module(version: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "x-version")
  (data (i32.const 32) "{version}")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 2) (i32.const 16) (i32.const 9) (i32.const 32) (i32.const {len})))
    (i32.const 0)))"#,
        len = version.len()
    ))
    .expect("valid WAT")
}

fn plugin_path(dir: &Path) -> PathBuf {
    dir.join("plugins/version.wasm")
}

/// A route through the version plugin, kept in `{dir}/plugins`.
fn routes(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::write(plugin_path(dir), version_module("v0")).unwrap();
    VERSION_ROUTE.into()
}

/// A route through the version plugin at `{dir}/plugins/version.wasm`.
const VERSION_ROUTE: &str = r#"
[[routes]]
name = "versioned"
prefix = "/"
upstream = "{upstream}"
[[routes.plugins]]
name = "version"
file = "{dir}/plugins/version.wasm"
"#;

async fn watched(routes_fn: impl FnOnce(&Path) -> String) -> Harness {
    let mut h = Harness::start_with(routes_fn).await;
    h.gateway.watch().expect("watch");
    // The watcher's first act is a catch-up reload: wait for it, so counts start from here.
    wait_for_attempts(&h, 1).await;
    h
}

/// Waits until at least `n` reloads have been attempted.
async fn wait_for_attempts(h: &Harness, n: u64) {
    let started = Instant::now();
    while h.gateway.reloader.attempts() < n {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no reload attempted"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Replaces `path` the way editors and deploy tools do: write a temporary file, rename it over.
fn replace_by_rename(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn version_now(h: &Harness) -> Option<String> {
    let r = h
        .send(Proto::Http1, "POST", "/uci/prediction", &[], DEMO_BODY)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.header("x-version").map(str::to_string)
}

/// Polls until `version` answers; returns how long that took.
async fn wait_for_version(h: &Harness, version: &str) -> Duration {
    let started = Instant::now();
    loop {
        if version_now(h).await.as_deref() == Some(version) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{version} never served; reload status: {:?}",
            h.gateway.reloader.status()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Clients sending the seed request over keep-alive connections until stopped, counting
/// answers and failures (a transport error or any status but 200).
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(h: &Harness, clients: usize) -> Load {
        let addr = h.gateway.server.http_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let tasks = (0..clients)
            .map(|_| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                tokio::spawn(async move {
                    let tcp = TcpStream::connect(addr).await.unwrap();
                    let (mut sender, conn) =
                        hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                            .await
                            .unwrap();
                    tokio::spawn(conn);
                    while !stop.load(Ordering::Relaxed) {
                        let req = Request::post("/uci/prediction")
                            .header("host", "localhost")
                            .body(Full::new(Bytes::from_static(DEMO_BODY.as_bytes())))
                            .unwrap();
                        let good = match sender.send_request(req).await {
                            Ok(res) => {
                                let status = res.status();
                                res.into_body().collect().await.is_ok() && status == 200
                            }
                            Err(_) => false,
                        };
                        (if good { &ok } else { &failed }).fetch_add(1, Ordering::Relaxed);
                        if !good {
                            return;
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_swaps_under_load_lose_no_request() {
    let h = watched(routes).await;
    assert_eq!(version_now(&h).await.as_deref(), Some("v0"));
    let load = Load::start(&h, 4);
    let mut latencies = Vec::new();
    for i in 1..=50 {
        let version = format!("v{i}");
        replace_by_rename(&plugin_path(h.dir.path()), &version_module(&version));
        latencies.push(wait_for_version(&h, &version).await);
    }
    let (ok, failed) = load.finish().await;
    assert_eq!(failed, 0, "{ok} answered, {failed} failed");
    assert!(ok > 50, "the load really ran: {ok}");
    assert_eq!(h.gateway.reloader.swaps(), 50);
    latencies.sort();
    eprintln!(
        "reload latency, file renamed into place -> first request on the new version, 50 swaps under load: median {:?}, p90 {:?}, max {:?}",
        latencies[25], latencies[45], latencies[49]
    );
}

#[tokio::test]
async fn a_file_written_in_place_in_chunks_is_read_once_complete() {
    let h = watched(routes).await;
    let before = h.gateway.reloader.attempts();
    let bytes = version_module("chunked");
    let (first, rest) = bytes.split_at(bytes.len() / 2);
    {
        use std::io::Write;
        let mut f = std::fs::File::create(plugin_path(h.dir.path())).unwrap();
        f.write_all(first).unwrap();
        f.flush().unwrap();
        // Three debounce windows of silence mid-file: the reload waits for the file to be
        // closed, not just for quiet.
        std::thread::sleep(Duration::from_millis(150));
        f.write_all(rest).unwrap();
    }
    wait_for_version(&h, "chunked").await;
    assert_eq!(
        h.gateway.reloader.attempts(),
        before + 1,
        "one reload, after the close"
    );
    assert_eq!(h.gateway.reloader.swaps(), 1);
    assert!(h.gateway.reloader.status().unwrap().error.is_none());
}

#[tokio::test]
async fn a_burst_of_changes_is_one_reload() {
    let h = watched(routes).await;
    for i in 0..20 {
        replace_by_rename(
            &plugin_path(h.dir.path()),
            &version_module(&format!("burst{i}")),
        );
    }
    wait_for_version(&h, "burst19").await;
    // The twenty renames take about a millisecond; only a scheduler pause longer than the
    // 50 ms debounce between two of them could split the burst, and then into two reloads.
    let reloads = h.gateway.reloader.attempts() - 1;
    assert!(
        (1..=2).contains(&reloads),
        "{reloads} reloads for one burst of twenty changes"
    );
}

#[tokio::test]
async fn delete_then_create_keeps_the_route_closed_to_nothing() {
    let h = watched(routes).await;
    let before = h.gateway.reloader.attempts();
    std::fs::remove_file(plugin_path(h.dir.path())).unwrap();
    // The reload after the delete keeps the last good version: the route is never opened
    // without its plugin.
    wait_for_attempts(&h, before + 1).await;
    let status = h.gateway.reloader.status().unwrap();
    assert!(status.error.is_none());
    // Not an error, but the operator is told: a restart now would fail.
    assert_eq!(status.failed_plugins.len(), 1, "{status:?}");
    assert!(
        status.failed_plugins[0].error.contains("the file is gone"),
        "{status:?}"
    );
    assert_eq!(version_now(&h).await.as_deref(), Some("v0"));
    std::fs::write(plugin_path(h.dir.path()), version_module("recreated")).unwrap();
    wait_for_version(&h, "recreated").await;
    // The status is written just after the swap.
    let started = Instant::now();
    while !h
        .gateway
        .reloader
        .status()
        .unwrap()
        .failed_plugins
        .is_empty()
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "back: the warning clears"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_plugin_directory_replaced_whole_is_followed() {
    let h = watched(routes).await;
    let dir = h.dir.path();
    // A deploy that builds the new directory beside the old one and renames it into place.
    std::fs::create_dir_all(dir.join("plugins.new")).unwrap();
    std::fs::write(
        dir.join("plugins.new/version.wasm"),
        version_module("swapped-dir"),
    )
    .unwrap();
    std::fs::rename(dir.join("plugins"), dir.join("plugins.old")).unwrap();
    std::fs::rename(dir.join("plugins.new"), dir.join("plugins")).unwrap();
    wait_for_version(&h, "swapped-dir").await;
    // The new directory is the one watched now, not the old one.
    replace_by_rename(&plugin_path(dir), &version_module("after-swap"));
    wait_for_version(&h, "after-swap").await;
    std::fs::write(
        dir.join("plugins.old/version.wasm"),
        version_module("stale"),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(version_now(&h).await.as_deref(), Some("after-swap"));
}

#[tokio::test]
async fn a_plugin_directory_removed_and_made_again_is_watched_again() {
    let h = watched(routes).await;
    let plugins = h.dir.path().join("plugins");
    std::fs::remove_dir_all(&plugins).unwrap();
    // Gone: the route keeps its last good version.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(version_now(&h).await.as_deref(), Some("v0"));
    std::fs::create_dir(&plugins).unwrap();
    std::fs::write(plugin_path(h.dir.path()), version_module("back")).unwrap();
    wait_for_version(&h, "back").await;
    replace_by_rename(&plugin_path(h.dir.path()), &version_module("back-again"));
    wait_for_version(&h, "back-again").await;
}

#[tokio::test]
async fn a_kubernetes_configmap_symlink_swap_is_seen() {
    fn mount(dir: &Path) -> String {
        // The layout kubelet makes: the file links into `..data`, which links to a timestamped
        // directory; an update makes a new directory and renames a new `..data` link over.
        let plugins = dir.join("plugins");
        std::fs::create_dir_all(plugins.join("..2026_11_25_v0")).unwrap();
        std::fs::write(
            plugins.join("..2026_11_25_v0/version.wasm"),
            version_module("cm0"),
        )
        .unwrap();
        std::os::unix::fs::symlink("..2026_11_25_v0", plugins.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/version.wasm", plugins.join("version.wasm")).unwrap();
        VERSION_ROUTE.into()
    }
    let h = watched(mount).await;
    assert_eq!(version_now(&h).await.as_deref(), Some("cm0"));
    let plugins = h.dir.path().join("plugins");
    std::fs::create_dir_all(plugins.join("..2026_11_25_v1")).unwrap();
    std::fs::write(
        plugins.join("..2026_11_25_v1/version.wasm"),
        version_module("cm1"),
    )
    .unwrap();
    std::os::unix::fs::symlink("..2026_11_25_v1", plugins.join("..data_tmp")).unwrap();
    std::fs::rename(plugins.join("..data_tmp"), plugins.join("..data")).unwrap();
    wait_for_version(&h, "cm1").await;
}

#[tokio::test]
async fn a_broken_change_never_replaces_the_running_version() {
    let h = watched(routes).await;
    let path = plugin_path(h.dir.path());
    let good = version_module("good");
    replace_by_rename(&path, &good);
    wait_for_version(&h, "good").await;
    let swaps = h.gateway.reloader.swaps();

    let cases: [(&[u8], &str); 2] = [
        (&good[..good.len() / 2], "not a valid wasm module"),
        (
            &wat::parse_str("(module (memory (export \"memory\") 1))").unwrap(),
            "missing export proxy_abi_version_0_2_1",
        ),
    ];
    for (bytes, why) in cases {
        replace_by_rename(&path, bytes);
        let started = Instant::now();
        let error = loop {
            if let Some(e) = h.gateway.reloader.status().and_then(|s| s.error) {
                break e;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no error reported"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(
            error.contains("version.wasm") && error.contains(why),
            "{error}"
        );
        assert_eq!(
            version_now(&h).await.as_deref(),
            Some("good"),
            "still serving"
        );
        replace_by_rename(&path, &good);
        // Back to the good bytes: the reload succeeds, and since the running version already
        // is those, nothing is swapped.
        let started = Instant::now();
        while h.gateway.reloader.status().unwrap().error.is_some() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the good bytes were never reloaded"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert_eq!(h.gateway.reloader.swaps(), swaps);
}

#[tokio::test]
async fn a_config_that_does_not_validate_or_a_refused_plugin_config_is_not_applied() {
    let h = watched(routes).await;
    let config = h.dir.path().join("wasmgate.toml");
    let original = std::fs::read_to_string(&config).unwrap();

    replace_by_rename(
        &config,
        original
            .replace("prefix = \"/\"", "prefix = \"no-slash\"")
            .as_bytes(),
    );
    wait_for_error(
        &h,
        "wasmgate.toml: routes[0].prefix: \"no-slash\" must start with `/`",
    )
    .await;
    assert_eq!(version_now(&h).await.as_deref(), Some("v0"));

    let refused = format!(
        "{original}\n[[routes]]\nname = \"keyed\"\nprefix = \"/keyed\"\nupstream = \"http://127.0.0.1:9\"\n\
         [[routes.plugins]]\nname = \"key-auth\"\nconfig = {{ consumers = [] }}\n"
    );
    replace_by_rename(&config, refused.as_bytes());
    let error = wait_for_error(&h, "routes[1].plugins[0] (key-auth)").await;
    assert!(error.contains("refused its configuration"), "{error}");
    assert_eq!(version_now(&h).await.as_deref(), Some("v0"));
    assert_eq!(h.gateway.reloader.swaps(), 0);
}

/// Waits until the last reload's error mentions `expected`, and returns it.
async fn wait_for_error(h: &Harness, expected: &str) -> String {
    let started = Instant::now();
    loop {
        let error = h.gateway.reloader.status().and_then(|s| s.error);
        if let Some(e) = error.filter(|e| e.contains(expected)) {
            return e;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no error with {expected:?}: {:?}",
            h.gateway.reloader.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_config_change_reconfigures_the_plugins() {
    let h = watched(|dir| {
        routes(dir)
            + &format!(
                "[[routes.plugins]]\nname = \"pw-add-header\"\nfile = \"{}\"\nconfig = {{ name = \"x-config\", value = \"one\" }}\n",
                wasmgate_tests::wasm("pw-add-header").display()
            )
    })
    .await;
    let r = h
        .send(Proto::Http1, "POST", "/uci/prediction", &[], DEMO_BODY)
        .await;
    assert_eq!(r.header("x-config"), Some("one"));
    let config = h.dir.path().join("wasmgate.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    replace_by_rename(
        &config,
        text.replace("value = \"one\"", "value = \"two\"")
            .as_bytes(),
    );
    let started = Instant::now();
    loop {
        let r = h
            .send(Proto::Http1, "POST", "/uci/prediction", &[], DEMO_BODY)
            .await;
        if r.header("x-config") == Some("two") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never reconfigured"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_explicit_reload_picks_up_changes_without_file_events() {
    // No watcher: as on a network file system, only SIGHUP or `wasmgate reload` (which call
    // this) bring the change in.
    let h = Harness::start_with(routes).await;
    replace_by_rename(&plugin_path(h.dir.path()), &version_module("manual"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        version_now(&h).await.as_deref(),
        Some("v0"),
        "nothing watches"
    );
    let reloader = h.gateway.reloader.clone();
    let outcome = tokio::task::spawn_blocking(move || reloader.reload())
        .await
        .unwrap();
    assert_eq!(outcome.unwrap(), wasmgate::reload::ReloadOutcome::Swapped);
    assert_eq!(version_now(&h).await.as_deref(), Some("manual"));
    let reloader = h.gateway.reloader.clone();
    let again = tokio::task::spawn_blocking(move || reloader.reload())
        .await
        .unwrap();
    assert_eq!(again.unwrap(), wasmgate::reload::ReloadOutcome::Unchanged);
}

#[tokio::test]
async fn a_config_rewritten_in_place_with_pauses_never_opens_a_route_half_way() {
    // The seed route behind key-auth. Rewritten in place in two pieces with a pause longer than
    // the debounce, the first piece is valid TOML whose route has no plugins: it must never
    // serve.
    let h = watched(|_| wasmgate_tests::SEED_ROUTE.to_string()).await;
    let before = h.gateway.reloader.attempts();
    let config = h.dir.path().join("wasmgate.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let cut = text.find("[[routes.plugins]]").expect("a plugin section");
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let probe = {
        let (stop, opened) = (stop.clone(), opened.clone());
        let h = &h;
        async move {
            while !stop.load(Ordering::Relaxed) {
                let r = h
                    .predict(
                        "/serving-uci/uci/prediction",
                        &[("x-instance-id", "kong_ins")],
                    )
                    .await;
                if r.status != 401 {
                    opened.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let write = async {
        let path = config.clone();
        let (head, tail) = (text[..cut].to_string(), text[cut..].to_string());
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut f = std::fs::File::create(&path).unwrap();
            f.write_all(head.as_bytes()).unwrap();
            f.flush().unwrap();
            std::thread::sleep(Duration::from_millis(300));
            f.write_all(tail.as_bytes()).unwrap();
        })
        .await
        .unwrap();
        wait_for_attempts(&h, before + 1).await;
        // A little longer, for a reload that should not happen.
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, Ordering::Relaxed);
    };
    tokio::join!(probe, write);
    assert_eq!(
        opened.load(Ordering::Relaxed),
        0,
        "requests got past the half-written config"
    );
    assert_eq!(
        h.gateway.reloader.attempts(),
        before + 1,
        "one reload, once the file was closed"
    );
}
