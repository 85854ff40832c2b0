//! Plugins that trap or loop: the request gets a clear 5xx, the gateway stays up, the instance
//! is replaced and the next request is served.

use std::path::Path;
use std::time::{Duration, Instant};

use wasmgate_tests::{Harness, Proto, write_wat};

/// A proxy-wasm module whose request-headers callback runs `action` when the request carries
/// the header `trigger`, and continues otherwise.
fn guarded_plugin(trigger: &str, action: &str) -> String {
    format!(
        r#"(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{trigger}")
  (global $heap (mut i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (global.set $heap (i32.const 1024))
    (if (i32.eqz (call $get (i32.const 0) (i32.const 16) (i32.const {len}) (i32.const 32) (i32.const 36)))
      (then {action}))
    (i32.const 0))
)"#,
        len = trigger.len()
    )
}

fn routes(dir: &Path) -> String {
    write_wat(dir, "crash", &guarded_plugin("x-crash", "unreachable"));
    write_wat(dir, "spin", &guarded_plugin("x-spin", "(loop $l (br $l))"));
    r#"
[[routes]]
name = "closed"
prefix = "/closed"
upstream = "{upstream}"
[[routes.plugins]]
name = "crash"
file = "{dir}/crash.wasm"
[[routes.plugins]]
name = "spin"
file = "{dir}/spin.wasm"
[[routes.plugins]]
name = "path-rewrite"
config = { prefix = "/closed" }

[[routes]]
name = "open"
prefix = "/open"
upstream = "{upstream}"
[[routes.plugins]]
name = "crash"
file = "{dir}/crash.wasm"
failure = "open"
[[routes.plugins]]
name = "path-rewrite"
config = { prefix = "/open" }
"#
    .to_string()
}

const BODY: &str = wasmgate_tests::DEMO_BODY;

#[tokio::test]
async fn a_trapping_plugin_fails_the_request_and_the_next_one_is_served() {
    let h = Harness::start_with(routes).await;
    // More requests than kept instances, so every instance traps and is replaced.
    for _ in 0..4 {
        let r = h
            .send(
                Proto::Https1,
                "POST",
                "/closed/uci/prediction",
                &[("x-crash", "1")],
                BODY,
            )
            .await;
        assert_eq!(r.status, 500);
        assert_eq!(r.json()["message"], "plugin crash failed");
        let r = h
            .send(Proto::Https2, "POST", "/closed/uci/prediction", &[], BODY)
            .await;
        assert_eq!(r.status, 200, "served after the trap: {:?}", r.body);
    }
    assert_eq!(
        h.recorder.count(),
        4,
        "only the good requests reached the upstream"
    );
}

#[tokio::test]
async fn a_looping_plugin_is_cut_off_at_its_deadline_and_the_next_request_is_served() {
    let h = Harness::start_with(routes).await;
    for _ in 0..3 {
        let started = Instant::now();
        let r = h
            .send(
                Proto::Http1,
                "POST",
                "/closed/uci/prediction",
                &[("x-spin", "1")],
                BODY,
            )
            .await;
        assert_eq!(r.status, 500);
        assert_eq!(r.json()["message"], "plugin spin timed out");
        // The deadline is 100 ms (test config); allow for a loaded machine, but not forever.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let r = h
            .send(Proto::Http1, "POST", "/closed/uci/prediction", &[], BODY)
            .await;
        assert_eq!(r.status, 200, "served after the timeout: {:?}", r.body);
    }
}

#[tokio::test]
async fn a_failing_plugin_on_a_fail_open_route_is_skipped() {
    let h = Harness::start_with(routes).await;
    let r = h
        .send(
            Proto::Https1,
            "POST",
            "/open/uci/prediction",
            &[("x-crash", "1")],
            BODY,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        h.recorder.last_request().unwrap().path,
        "/uci/prediction",
        "the plugins after it ran"
    );
}

/// Adds `x-half: done` to the request, answers 418, then traps.
const HALF_DONE: &str = r#"(module
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response"
    (func $send (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "x-half")
  (data (i32.const 32) "done")
  (data (i32.const 48) "teapot")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 0) (i32.const 16) (i32.const 6) (i32.const 32) (i32.const 4)))
    (drop (call $send (i32.const 418) (i32.const 0) (i32.const 0) (i32.const 48) (i32.const 6)
      (i32.const 0) (i32.const 0) (i32.const -1)))
    unreachable))"#;

#[tokio::test]
async fn a_fail_open_plugin_that_traps_leaves_neither_its_edits_nor_its_answer() {
    let h = Harness::start_with(|dir| {
        write_wat(dir, "half-done", HALF_DONE);
        r#"
[[routes]]
name = "open"
prefix = "/open"
upstream = "{upstream}"
[[routes.plugins]]
name = "half-done"
file = "{dir}/half-done.wasm"
failure = "open"
[[routes.plugins]]
name = "path-rewrite"
config = { prefix = "/open" }

[[routes]]
name = "closed"
prefix = "/closed"
upstream = "{upstream}"
[[routes.plugins]]
name = "half-done"
file = "{dir}/half-done.wasm"
"#
        .to_string()
    })
    .await;
    let r = h
        .send(Proto::Https1, "POST", "/open/uci/prediction", &[], BODY)
        .await;
    assert_eq!(r.status, 200, "the upstream answers, not the failed plugin");
    let seen = h.recorder.last_request().expect("forwarded");
    assert!(
        seen.headers.get("x-half").is_none(),
        "the failed plugin's edit is undone"
    );
    let r = h
        .send(Proto::Https1, "POST", "/closed/uci/prediction", &[], BODY)
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["message"], "plugin half-done failed");
}
