//! The ABI boundary against hostile or unusual guests, written as inline WAT.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{CallError, Chain, Limits, Plugin, RequestHead, RequestOutcome, Runtime, Stream};
use crate::config::FailurePolicy;

fn runtime() -> Runtime {
    Runtime::new().unwrap()
}

fn limits() -> Limits {
    Limits {
        call_timeout: Duration::from_millis(100),
        memory_bytes: 16 * 1024 * 1024,
        instances: 1,
    }
}

/// A proxy-wasm module with `imports`, whose request-headers callback runs `body` and then
/// continues. `$expect` traps unless its two arguments are equal.
fn module(imports: &str, body: &str) -> String {
    format!(
        r#"(module
  {imports}
  (memory (export "memory") 8)
  (table 1 funcref)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 65536))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func $expect (param $got i32) (param $want i32)
    (if (i32.ne (local.get $got) (local.get $want)) (then unreachable)))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    {body}
    (i32.const 0))
)"#
    )
}

fn load(runtime: &Runtime, wat: &str) -> Arc<Plugin> {
    let bytes = wat::parse_str(wat).expect("valid WAT");
    let compiled = runtime
        .compile_bytes(Path::new("test.wasm"), &bytes)
        .expect("compiles");
    runtime
        .configure(
            &compiled,
            "test",
            Vec::new(),
            FailurePolicy::Closed,
            &limits(),
        )
        .expect("starts")
}

fn stream() -> Box<Stream> {
    Box::new(Stream {
        request: RequestHead {
            path: "/serving-uci/x".into(),
            ..RequestHead::default()
        },
        ..Stream::default()
    })
}

fn run(plugin: &Arc<Plugin>) -> (Box<Stream>, Result<RequestOutcome, CallError>) {
    let chain = Chain::new(vec![plugin.clone()]);
    let mut s = stream();
    let (_run, outcome) = chain.on_request(&mut s);
    (s, outcome)
}

#[test]
fn calls_the_host_does_not_offer_answer_unimplemented_and_wasi_errnos() {
    let rt = runtime();
    let plugin = load(
        &rt,
        &module(
            r#"(import "env" "proxy_http_call" (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
               (import "env" "proxy_made_up_i64" (func $i64 (result i64)))
               (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
               (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))"#,
            r#"(call $expect (call $http_call (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                                              (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)) (i32.const 12))
               (drop (call $i64))
               (call $expect (call $prestat (i32.const 3) (i32.const 0)) (i32.const 8))
               (call $expect (call $poll (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)) (i32.const 52))"#,
        ),
    );
    assert_eq!(run(&plugin).1.unwrap(), RequestOutcome::Forward);
}

#[test]
fn imports_from_unknown_modules_are_refused_by_name() {
    let rt = runtime();
    let bytes = wat::parse_str(module(
        r#"(import "evil" "open_socket" (func (param i32) (result i32)))"#,
        "",
    ))
    .unwrap();
    let err = rt.compile_bytes(Path::new("x.wasm"), &bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "x.wasm: not a proxy-wasm 0.2.1 module: imports evil.open_socket, which wasmgate does not provide"
    );
}

#[test]
fn growing_a_table_without_end_is_cut_off() {
    let rt = runtime();
    let plugin = load(
        &rt,
        &module(
            "",
            "(drop (table.grow (ref.null func) (i32.const 0x10000000)))",
        ),
    );
    let started = Instant::now();
    let err = run(&plugin).1.unwrap_err();
    assert!(matches!(err, CallError::Trap { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn growing_memory_past_the_cap_traps_with_a_reason() {
    let rt = runtime();
    // 16 MiB cap = 256 pages; the module starts with 8.
    let plugin = load(&rt, &module("", "(drop (memory.grow (i32.const 1000)))"));
    let err = run(&plugin).1.unwrap_err();
    assert!(err.to_string().contains("memory limit"), "{err}");
}

#[test]
fn bad_pointers_and_lengths_get_statuses_not_host_failures() {
    let rt = runtime();
    let plugin = load(
        &rt,
        &module(
            r#"(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
               (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))"#,
            r#"(call $expect (call $log (i32.const 2) (i32.const 0x7fffffff) (i32.const 100)) (i32.const 6))
               (call $expect (call $log (i32.const 2) (i32.const 0) (i32.const -1)) (i32.const 2))
               (call $expect (call $get (i32.const 0) (i32.const 0) (i32.const 0x100000) (i32.const 0) (i32.const 4)) (i32.const 2))
               (call $expect (call $get (i32.const 9) (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 4)) (i32.const 2))
               (call $expect (call $get (i32.const 0) (i32.const 0) (i32.const 1) (i32.const -4) (i32.const 4)) (i32.const 1))"#,
        ),
    );
    assert_eq!(run(&plugin).1.unwrap(), RequestOutcome::Forward);
}

#[test]
fn a_huge_header_map_is_refused() {
    let rt = runtime();
    // 25000 empty pairs: a count, 25000 zero length pairs, 50000 NUL bytes (all zero memory).
    let plugin = load(
        &rt,
        &module(
            r#"(import "env" "proxy_set_header_map_pairs" (func $set (param i32 i32 i32) (result i32)))"#,
            r#"(i32.store (i32.const 1024) (i32.const 25000))
               (call $expect (call $set (i32.const 0) (i32.const 1024) (i32.const 250004)) (i32.const 2))"#,
        ),
    );
    assert_eq!(run(&plugin).1.unwrap(), RequestOutcome::Forward);
}

#[test]
fn header_growth_is_capped() {
    let rt = runtime();
    // Each add is 64 KiB; the map holds at most 256 KiB.
    let plugin = load(
        &rt,
        &module(
            r#"(import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
               (data (i32.const 16) "x-flood")"#,
            r#"(memory.fill (i32.const 65536) (i32.const 97) (i32.const 65536))
               (call $expect (call $add (i32.const 0) (i32.const 16) (i32.const 7) (i32.const 65536) (i32.const 65536)) (i32.const 0))
               (call $expect (call $add (i32.const 0) (i32.const 16) (i32.const 7) (i32.const 65536) (i32.const 65536)) (i32.const 0))
               (call $expect (call $add (i32.const 0) (i32.const 16) (i32.const 7) (i32.const 65536) (i32.const 65536)) (i32.const 0))
               (call $expect (call $add (i32.const 0) (i32.const 16) (i32.const 7) (i32.const 65536) (i32.const 65536)) (i32.const 2))"#,
        ),
    );
    let (s, outcome) = run(&plugin);
    assert_eq!(outcome.unwrap(), RequestOutcome::Forward);
    assert_eq!(s.request.headers.get_all("x-flood").iter().count(), 3);
}

#[test]
fn a_plugin_can_set_only_a_canonical_path() {
    let rt = runtime();
    let plugin = load(
        &rt,
        &module(
            r#"(import "env" "proxy_replace_header_map_value" (func $set (param i32 i32 i32 i32 i32) (result i32)))
               (data (i32.const 16) ":path")
               (data (i32.const 32) "/a/../admin")
               (data (i32.const 48) "/a%2Fb")
               (data (i32.const 64) "/uci/prediction?x=1")
               (data (i32.const 96) ":scheme")
               (data (i32.const 112) "https")"#,
            r#"(call $expect (call $set (i32.const 0) (i32.const 16) (i32.const 5) (i32.const 32) (i32.const 11)) (i32.const 2))
               (call $expect (call $set (i32.const 0) (i32.const 16) (i32.const 5) (i32.const 48) (i32.const 6)) (i32.const 2))
               (call $expect (call $set (i32.const 0) (i32.const 96) (i32.const 7) (i32.const 112) (i32.const 5)) (i32.const 2))
               (call $expect (call $set (i32.const 0) (i32.const 16) (i32.const 5) (i32.const 64) (i32.const 19)) (i32.const 0))"#,
        ),
    );
    let (s, outcome) = run(&plugin);
    assert_eq!(outcome.unwrap(), RequestOutcome::Forward);
    assert_eq!(s.request.path, "/uci/prediction?x=1");
}

#[test]
fn answering_twice_keeps_the_first_answer() {
    let rt = runtime();
    let plugin = load(
        &rt,
        &module(
            r#"(import "env" "proxy_send_local_response" (func $send (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
               (data (i32.const 16) "first")"#,
            r#"(call $expect (call $send (i32.const 401) (i32.const 0) (i32.const 0) (i32.const 16) (i32.const 5) (i32.const 0) (i32.const 0) (i32.const -1)) (i32.const 0))
               (call $expect (call $send (i32.const 200) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1)) (i32.const 2))
               (call $expect (call $send (i32.const 99) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1)) (i32.const 2))"#,
        ),
    );
    let (s, outcome) = run(&plugin);
    assert_eq!(outcome.unwrap(), RequestOutcome::Answered);
    let answer = s.local_response.unwrap();
    assert_eq!(answer.status, 401);
    assert_eq!(&answer.body[..], b"first");
}

#[test]
fn deep_recursion_is_a_stack_overflow_not_a_host_crash() {
    let rt = runtime();
    let wat = module("", "(call $down (i32.const 0))").replace(
        "(func $expect",
        "(func $down (param i32) (call $down (i32.add (local.get 0) (i32.const 1))))\n  (func $expect",
    );
    let plugin = load(&rt, &wat);
    let err = run(&plugin).1.unwrap_err();
    assert!(err.to_string().contains("stack overflow"), "{err}");
    // The instance was replaced: the next request gets a fresh one, which fails the same way
    // rather than hanging or reusing a broken stack.
    assert!(run(&plugin).1.is_err());
}

#[test]
fn a_trap_in_any_callback_fails_only_that_call() {
    let rt = runtime();
    // Traps when creating a request context, in the response phase, and at the end.
    for callback in [
        "proxy_on_context_create",
        "proxy_on_response_headers",
        "proxy_on_log",
    ] {
        let signature = match callback {
            "proxy_on_context_create" => "(param i32 i32)",
            "proxy_on_response_headers" => "(param i32 i32 i32) (result i32)",
            _ => "(param i32)",
        };
        let wat = format!(
            r#"(module
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
  {context_create}
  (func (export "{callback}") {signature} unreachable)
)"#,
            // The root context (parent 0) must be created for the plugin to start.
            context_create = if callback == "proxy_on_context_create" {
                ""
            } else {
                r#"(func (export "proxy_on_context_create") (param i32 i32))"#
            },
        );
        if callback == "proxy_on_context_create" {
            // Trapping on the root context refuses the plugin at load, with the reason.
            let bytes = wat::parse_str(&wat).unwrap();
            let compiled = rt.compile_bytes(Path::new("t.wasm"), &bytes).unwrap();
            let err = rt
                .configure(&compiled, "t", Vec::new(), FailurePolicy::Closed, &limits())
                .unwrap_err();
            assert!(
                err.to_string().contains("proxy_on_context_create failed"),
                "{err}"
            );
            continue;
        }
        let plugin = load(&rt, &wat);
        let chain = Chain::new(vec![plugin.clone()]);
        let mut s = stream();
        let (mut run, outcome) = chain.on_request(&mut s);
        assert_eq!(outcome.unwrap(), RequestOutcome::Forward, "{callback}");
        s.response = Some(super::ResponseHead {
            status: http::StatusCode::OK,
            headers: http::HeaderMap::new(),
        });
        let response = run.on_response(&mut s, true);
        if callback == "proxy_on_response_headers" {
            assert!(
                matches!(response, Err(CallError::Trap { .. })),
                "{callback}"
            );
        } else {
            response.unwrap();
            // A trap at the end is logged; the response is already decided.
            run.finish(&mut s);
        }
        // Either way the next request is served by a fresh instance.
        let mut next = stream();
        assert_eq!(
            chain.on_request(&mut next).1.unwrap(),
            RequestOutcome::Forward
        );
    }
}

/// Starts and serves requests except between two instants (nanoseconds since the Unix epoch,
/// little-endian, in its config: `from` then `until`): in that window every request traps and
/// every start refuses its configuration.
const FAILS_FOR_A_WHILE: &str = r#"(module
  (import "env" "proxy_get_current_time_nanoseconds" (func $now (param i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $buffer (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $from (mut i64) (i64.const 0))
  (global $until (mut i64) (i64.const 0))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 65536))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func $failing (result i32)
    (drop (call $now (i32.const 16)))
    (i32.and (i64.ge_u (i64.load (i32.const 16)) (global.get $from))
             (i64.lt_u (i64.load (i32.const 16)) (global.get $until))))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $buffer (i32.const 7) (i32.const 0) (i32.const 16) (i32.const 0) (i32.const 4)))
    (global.set $from (i64.load (i32.load (i32.const 0))))
    (global.set $until (i64.load (i32.add (i32.load (i32.const 0)) (i32.const 8))))
    (i32.eqz (call $failing)))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (call $failing) (then unreachable))
    (i32.const 0))
)"#;

#[test]
fn a_plugin_that_keeps_failing_to_start_is_retried_with_back_off_and_recovers() {
    use std::time::{SystemTime, UNIX_EPOCH};
    let rt = runtime();
    let compiled = rt
        .compile_bytes(
            Path::new("flaky.wasm"),
            &wat::parse_str(FAILS_FOR_A_WHILE).unwrap(),
        )
        .unwrap();
    let nanos = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let from = SystemTime::now() + Duration::from_millis(500);
    let until = from + Duration::from_millis(1200);
    let mut config = nanos(from).to_le_bytes().to_vec();
    config.extend(nanos(until).to_le_bytes());
    let plugin = rt
        .configure(&compiled, "flaky", config, FailurePolicy::Closed, &limits())
        .expect("starts before its failing window");

    while SystemTime::now() < from {
        std::thread::sleep(Duration::from_millis(5));
    }
    // It crashes: its instance is discarded.
    let err = run(&plugin).1.unwrap_err();
    assert!(matches!(err, CallError::Trap { .. }), "{err}");

    // Requests keep coming every few milliseconds while it cannot start. Each start attempt is
    // timed from just before the request that made it to just after.
    let mut attempts: Vec<(Instant, Instant)> = Vec::new();
    let mut refused = 0;
    let recovered_at = loop {
        let before = Instant::now();
        match run(&plugin).1 {
            Ok(outcome) => {
                assert_eq!(outcome, RequestOutcome::Forward);
                break SystemTime::now();
            }
            Err(CallError::Unavailable { reason, .. })
                if reason.starts_with("a fresh instance failed to start") =>
            {
                assert!(reason.contains("refused its configuration"), "{reason}");
                attempts.push((before, Instant::now()));
            }
            Err(CallError::Unavailable { reason, .. }) => {
                // Backing off, and saying so.
                assert!(
                    reason.starts_with(&format!(
                        "its instance failed to start {} times; next try in ",
                        attempts.len()
                    )),
                    "{reason}"
                );
                refused += 1;
            }
            Err(other) => panic!("{other}"),
        }
        assert!(
            SystemTime::now() < until + Duration::from_secs(10),
            "never recovered"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(
        recovered_at >= until,
        "started only once it stopped failing"
    );
    // 1.2 s of failures: attempts 100 ms, 200 ms, 400 ms, 800 ms apart at the least, so at most
    // five, while the other requests were refused without a start.
    assert!(
        (2..=5).contains(&attempts.len()),
        "{} start attempts",
        attempts.len()
    );
    assert!(refused >= 20, "only {refused} requests refused");
    for (i, pair) in attempts.windows(2).enumerate() {
        let gap = pair[1].1 - pair[0].0;
        let backoff = Duration::from_millis(100) * (1 << i);
        assert!(
            gap >= backoff,
            "attempt {} came {gap:?} after the one before, under its {backoff:?} back-off",
            i + 2
        );
    }
}

#[test]
fn the_wasm_stack_is_the_configured_size() {
    // 5000 nested calls: at least 16 bytes of native stack each (return address and frame
    // pointer), so over 64 KiB, and far under 1024 KiB.
    let wat = module("", "(drop (call $down (i32.const 5000)))").replace(
        "(func $expect",
        "(func $down (param i32) (result i32)
           (if (result i32) (i32.eqz (local.get 0))
             (then (i32.const 0))
             (else (i32.add (call $down (i32.sub (local.get 0) (i32.const 1))) (i32.const 1)))))
  (func $expect",
    );
    let large = Runtime::with_max_stack_kib(1024).unwrap();
    assert_eq!(run(&load(&large, &wat)).1.unwrap(), RequestOutcome::Forward);
    let small = Runtime::with_max_stack_kib(64).unwrap();
    let err = run(&load(&small, &wat)).1.unwrap_err();
    assert!(err.to_string().contains("stack overflow"), "{err}");
}

/// A fail-open plugin that pauses is skipped: no further callback for that request but
/// `proxy_on_delete` (docs/abi.md). Its response hook would add a header; its `on_log` would trap.
#[test]
fn a_fail_open_plugin_that_pauses_gets_no_further_callbacks() {
    let rt = runtime();
    let wat = r#"(module
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "x-called")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 2) (i32.const 16) (i32.const 8) (i32.const 16) (i32.const 8)))
    (i32.const 0))
  (func (export "proxy_on_log") (param i32) unreachable)
  (func (export "proxy_on_delete") (param i32))
)"#;
    let bytes = wat::parse_str(wat).unwrap();
    let compiled = rt.compile_bytes(Path::new("p.wasm"), &bytes).unwrap();
    let plugin = rt
        .configure(
            &compiled,
            "pauser",
            Vec::new(),
            FailurePolicy::Open,
            &limits(),
        )
        .unwrap();
    let chain = Chain::new(vec![plugin.clone()]);
    for _ in 0..2 {
        let mut s = stream();
        let (mut run, outcome) = chain.on_request(&mut s);
        assert_eq!(outcome.unwrap(), RequestOutcome::Forward);
        s.response = Some(super::ResponseHead {
            status: http::StatusCode::OK,
            headers: http::HeaderMap::new(),
        });
        run.on_response(&mut s, true).unwrap();
        let headers = &s.response.as_ref().unwrap().headers;
        assert!(headers.get("x-called").is_none(), "the response hook ran");
        run.finish(&mut s);
    }
    // on_log never ran (it traps, which would have discarded the instance): the instance that
    // served both requests is still the first one.
    let mut s = stream();
    assert_eq!(chain.on_request(&mut s).1.unwrap(), RequestOutcome::Forward);
    assert_eq!(
        plugin.generation_of_slot(0),
        0,
        "no callback trapped, so no instance was discarded"
    );
}
