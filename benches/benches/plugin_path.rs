//! The plugin path under criterion: what a request pays inside the plugin runtime.
//!
//! - `call/noop-wat`: one proxy-wasm call (`proxy_on_response_headers`) into a kept instance
//!   whose context already exists: the floor of every hook.
//! - `skip/no-response-hook`: the same response phase over an SDK plugin that exports no
//!   response hook (instance-header): what the host pays to find there is nothing to call.
//! - `context/lifecycle`: a request's whole context life in a do-nothing plugin: create,
//!   request headers, done, log, delete.
//! - `plugin/*`: each of the three plugins over the seed's prediction request (request hook,
//!   response phase, end of context), as one route with that plugin alone would run it.
//! - `chain/*`: the seed route's three-plugin chain over the same request, and an empty chain.
//!
//! Time is the benchmark thread's CPU time, not the wall clock: on a shared virtual machine the
//! wall clock also counts time the hypervisor gave to other guests (steal), which made two runs
//! of the same code differ by 20% and more.
//!
//! Plugins come from `target/wasm` (`make wasm`), or `WASMGATE_WASM_DIR`. Every figure is
//! measured, not asserted: the only checks are that each plugin let the seed request through
//! (so the success path is the one measured). `cargo bench -p wasmgate-benches`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use wasmgate::config::FailurePolicy;
use wasmgate::plugin::{
    Chain, Limits, Plugin, RequestHead, RequestInfo, RequestOutcome, ResponseHead, Runtime, Stream,
};
use wasmgate_benches::{SEED_BODY, SEED_INSTANCE, SEED_KEY, SEED_KEY_SHA256, UPSTREAM_ANSWER};

/// Criterion's measurement of the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), shown like the
/// wall clock's durations.
struct ThreadCpu(WallTime);

type Criterion = criterion::Criterion<ThreadCpu>;

fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

impl Measurement for ThreadCpu {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.0.formatter()
    }
}

/// A proxy-wasm module that does nothing in every callback: the cost of the host alone.
const NOOP_WAT: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32))
)"#;

fn wasm_dir() -> PathBuf {
    std::env::var_os("WASMGATE_WASM_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm"),
        PathBuf::from,
    )
}

fn limits() -> Limits {
    Limits {
        call_timeout: Duration::from_millis(100),
        memory_bytes: 64 * 1024 * 1024,
        instances: 1,
    }
}

fn configure(rt: &Runtime, name: &str, config: &str) -> Arc<Plugin> {
    let path = wasm_dir().join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `make wasm` first",
        path.display()
    );
    let module = rt.compile(&path).expect("plugin compiles");
    rt.configure(
        &module,
        name,
        config.as_bytes().to_vec(),
        FailurePolicy::Closed,
        &limits(),
    )
    .expect("plugin starts")
}

fn noop(rt: &Runtime) -> Arc<Plugin> {
    let bytes = wat::parse_str(NOOP_WAT).expect("valid WAT");
    let module = rt
        .compile_bytes(Path::new("noop.wasm"), &bytes)
        .expect("noop compiles");
    rt.configure(
        &module,
        "noop",
        Vec::new(),
        FailurePolicy::Closed,
        &limits(),
    )
    .expect("noop starts")
}

struct SeedPlugins {
    key_auth: Arc<Plugin>,
    instance_header: Arc<Plugin>,
    path_rewrite: Arc<Plugin>,
}

fn seed_plugins(rt: &Runtime) -> SeedPlugins {
    SeedPlugins {
        key_auth: configure(
            rt,
            "key-auth",
            &format!(
                r#"{{"consumers":[{{"username":"demo","key_sha256":["{SEED_KEY_SHA256}"]}}]}}"#
            ),
        ),
        instance_header: configure(
            rt,
            "instance-header",
            &format!(r#"{{"values":["{SEED_INSTANCE}"]}}"#),
        ),
        path_rewrite: configure(rt, "path-rewrite", r#"{"prefix":"/serving-uci"}"#),
    }
}

/// The seed's prediction request as the gateway hands it to the chain: the headers wrk and
/// h2load send in `make bench-load` (hop-by-hop and `host` already taken off by the proxy).
fn seed_stream() -> Box<Stream> {
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        headers.append(name, HeaderValue::from_str(value).expect("valid value"));
    };
    put("apikey", SEED_KEY);
    put("x-instance-id", SEED_INSTANCE);
    put("content-type", "application/json");
    put("content-length", &SEED_BODY.len().to_string());
    put("user-agent", "bench");
    put("accept", "*/*");
    Box::new(Stream {
        request: RequestHead {
            method: Method::POST,
            path: "/serving-uci/uci/prediction".into(),
            authority: "127.0.0.1:8000".into(),
            scheme: "http",
            headers,
        },
        response: None,
        local_response: None,
        info: Some(Arc::new(RequestInfo {
            route: "serving-uci".into(),
            source: SocketAddr::from(([127, 0, 0, 1], 40000)),
            destination: SocketAddr::from(([127, 0, 0, 1], 8000)),
            protocol: "HTTP/1.1",
            id: "0123456789abcdef0123456789abcdef".into(),
        })),
        request_end_of_stream: false,
    })
}

/// The fixed-answer upstream's response head, after the proxy took off hop-by-hop headers.
fn upstream_head() -> ResponseHead {
    let mut headers = HeaderMap::new();
    headers.append("content-type", HeaderValue::from_static("application/json"));
    headers.append(
        "content-length",
        HeaderValue::from_str(&UPSTREAM_ANSWER.len().to_string()).expect("digits"),
    );
    headers.append(
        "date",
        HeaderValue::from_static("Wed, 25 Nov 2026 12:00:00 GMT"),
    );
    ResponseHead {
        status: StatusCode::OK,
        headers,
    }
}

/// One request through `chain` the way the proxy runs it: request hooks, the upstream's head,
/// response hooks, end of every context.
fn request(
    chain: &Chain,
    stream: &mut Box<Stream>,
    head: &mut Option<ResponseHead>,
) -> RequestOutcome {
    let (mut run, outcome) = chain.on_request(stream);
    let outcome = outcome.expect("no plugin failure");
    stream.response = head.take();
    run.on_response(stream, false).expect("no plugin failure");
    run.finish(stream);
    outcome
}

/// Checks once, outside any timing, that `chain` lets the seed request through.
fn check_forwards(chain: &Chain) -> Box<Stream> {
    let mut stream = seed_stream();
    let outcome = request(chain, &mut stream, &mut Some(upstream_head()));
    assert_eq!(
        outcome,
        RequestOutcome::Forward,
        "the seed request must pass"
    );
    assert!(stream.local_response.is_none());
    stream
}

fn bench_request(c: &mut Criterion, name: &str, chain: &Chain) {
    c.bench_function(name, |b| {
        b.iter_batched_ref(
            || (seed_stream(), Some(upstream_head())),
            |(stream, head)| black_box(request(chain, stream, head)),
            BatchSize::SmallInput,
        )
    });
}

fn benches(c: &mut Criterion) {
    let rt = Runtime::new().expect("wasm runtime");
    let noop = noop(&rt);
    let seed = seed_plugins(&rt);

    // One call into a kept instance, with the request's context already open; and the same
    // response phase over an SDK plugin without a response hook, which the host skips.
    for (name, plugin) in [
        ("call/noop-wat", &noop),
        ("skip/no-response-hook", &seed.instance_header),
    ] {
        let chain = Chain::new(vec![plugin.clone()]);
        let mut stream = seed_stream();
        let (mut run, outcome) = chain.on_request(&mut stream);
        assert_eq!(outcome.expect("no failure"), RequestOutcome::Forward);
        stream.response = Some(upstream_head());
        c.bench_function(name, |b| {
            b.iter(|| run.on_response(black_box(&mut stream), true))
        });
        run.finish(&mut stream);
    }

    // A request's context from creation to deletion, in a plugin that does nothing.
    let chain = Chain::new(vec![noop.clone()]);
    let mut stream = seed_stream();
    c.bench_function("context/lifecycle", |b| {
        b.iter(|| {
            let (run, outcome) = chain.on_request(black_box(&mut stream));
            let _ = black_box(outcome);
            run.finish(&mut stream);
        })
    });

    // Each plugin alone over the seed request.
    for (name, plugin) in [
        ("plugin/key-auth", &seed.key_auth),
        ("plugin/instance-header", &seed.instance_header),
        ("plugin/path-rewrite", &seed.path_rewrite),
    ] {
        let chain = Chain::new(vec![plugin.clone()]);
        check_forwards(&chain);
        bench_request(c, name, &chain);
    }

    // The seed route's chain, and the same path with no plugin.
    let three = Chain::new(vec![
        seed.key_auth.clone(),
        seed.instance_header.clone(),
        seed.path_rewrite.clone(),
    ]);
    let done = check_forwards(&three);
    assert_eq!(done.request.path, "/uci/prediction", "path-rewrite ran");
    assert!(done.request.headers.get("apikey").is_none(), "key stripped");
    assert_eq!(
        done.request
            .headers
            .get("x-consumer-username")
            .map(|v| v.as_bytes()),
        Some(&b"demo"[..]),
        "key-auth named the consumer"
    );
    bench_request(c, "chain/three-plugins", &three);
    bench_request(c, "chain/none", &Chain::new(Vec::new()));
}

fn config() -> Criterion {
    // Short enough for two busy cores; `--measurement-time` on the command line overrides it.
    criterion::Criterion::default()
        .with_measurement(ThreadCpu(WallTime))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = plugin_path;
    config = config();
    targets = benches
}
criterion_main!(plugin_path);
