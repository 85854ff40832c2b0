//! What crosses the gateway besides the path: the upstream's identity stays behind it, the
//! client's claims about its own address are replaced, and plugins see the end of every request,
//! failed ones included.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wasmgate_tests::{DEMO_KEY, Harness, Proto, SEED_ROUTE, write_wat};

/// An upstream that answers every request with `response` (a whole HTTP/1.1 response, which
/// may mention `{addr}`, its own address), on kept-alive connections.
async fn fixed_upstream(response: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let response = response.replace("{addr}", &addr.to_string());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    // Requests without bodies: each head ends the request.
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        if stream.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

const REDIRECTING: &str = "HTTP/1.1 302 Found\r\n\
Location: http://{addr}/uci/other?x=1\r\n\
Content-Location: /uci/prediction\r\n\
Via: 1.1 internal-lb.corp\r\n\
Server: paddle-serving/0.9\r\n\
Content-Length: 0\r\n\r\n";

fn rewriting_route(upstream: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[[routes]]
name = "serving-uci"
prefix = "/serving-uci"
upstream = "http://{upstream}"
{extra}
[[routes.plugins]]
name = "path-rewrite"
[routes.plugins.config]
prefix = "/serving-uci"
"#
    )
}

#[tokio::test]
async fn the_upstreams_address_and_internal_paths_never_reach_the_client() {
    let upstream = fixed_upstream(REDIRECTING).await;
    let h = Harness::start(&rewriting_route(upstream, "")).await;
    for proto in [Proto::Http1, Proto::Https1, Proto::Https2] {
        let r = h
            .send(proto, "GET", "/serving-uci/uci/prediction", &[], "")
            .await;
        assert_eq!(r.status, 302, "{proto:?}");
        assert_eq!(
            r.header("location"),
            Some("/serving-uci/uci/other?x=1"),
            "{proto:?}: the upstream's address is dropped and its path mapped back"
        );
        assert_eq!(
            r.header("content-location"),
            Some("/serving-uci/uci/prediction")
        );
        assert!(r.header("via").is_none(), "internal hops stay hidden");
        assert!(r.header("server").is_none());
        let text = format!("{:?}", r.headers);
        assert!(!text.contains(&upstream.port().to_string()), "{text}");
    }
}

#[tokio::test]
async fn hide_upstream_identity_false_passes_them_unchanged() {
    let upstream = fixed_upstream(REDIRECTING).await;
    let h = Harness::start(&rewriting_route(upstream, "hide_upstream_identity = false")).await;
    let r = h
        .send(Proto::Http1, "GET", "/serving-uci/uci/prediction", &[], "")
        .await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some(format!("http://{upstream}/uci/other?x=1").as_str())
    );
    assert_eq!(r.header("via"), Some("1.1 internal-lb.corp"));
    assert_eq!(r.header("server"), Some("paddle-serving/0.9"));
}

#[tokio::test]
async fn client_claims_about_its_address_are_replaced() {
    let h = Harness::start(SEED_ROUTE).await;
    let r = h
        .predict(
            "/serving-uci/uci/prediction",
            &[
                ("apikey", DEMO_KEY),
                ("x-instance-id", "kong_ins"),
                ("forwarded", "for=6.6.6.6;proto=http"),
                ("x-real-ip", "6.6.6.6"),
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-host", "evil.example"),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    let seen = h.recorder.last_request().unwrap();
    let port = h.gateway.server.https_addr().unwrap().port();
    assert_eq!(seen.headers["x-real-ip"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(
        seen.headers["forwarded"],
        format!("for=127.0.0.1;proto=https;host=\"localhost:{port}\"")
    );
    assert_eq!(
        seen.headers["x-forwarded-host"],
        format!("localhost:{port}")
    );
    for name in ["forwarded", "x-real-ip", "x-forwarded-for"] {
        assert_eq!(
            seen.headers.get_all(name).iter().count(),
            1,
            "one {name}, not the client's too"
        );
    }
}

/// A plugin named `name` that logs, in `proxy_on_log`, the value of `header` in header map `map`
/// (0: request, 2: response).
fn header_logger(dir: &Path, name: &str, map: u32, header: &str) {
    write_wat(
        dir,
        name,
        &format!(
            r#"(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{header}")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_log") (param i32)
    (if (i32.eqz (call $get (i32.const {map}) (i32.const 16) (i32.const {len}) (i32.const 64) (i32.const 68)))
      (then (drop (call $log (i32.const 2) (i32.load (i32.const 64)) (i32.load (i32.const 68))))))))"#,
            len = header.len()
        ),
    );
}

/// A plugin that logs the response status it sees in `proxy_on_log`.
fn status_logger(dir: &Path) {
    header_logger(dir, "status-logger", 2, ":status");
}

/// Waits until `plugin` has logged a line mentioning `text`.
async fn logged(plugin: &str, text: &str) -> Vec<String> {
    let logs = &crate::logs::captured().plugins;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines: Vec<String> = logs
            .lines_with(&format!("plugin=\"{plugin}\""))
            .into_iter()
            .filter(|l| l.contains(text))
            .collect();
        if !lines.is_empty() || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn plugins_see_the_end_of_requests_that_fail_upstream() {
    crate::logs::captured();
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let h = Harness::start_with(|dir| {
        status_logger(dir);
        format!(
            r#"
[[routes]]
name = "down"
prefix = "/down"
upstream = "http://{closed}"
[[routes.plugins]]
name = "logger-down"
file = "{{dir}}/status-logger.wasm"

[[routes]]
name = "up"
prefix = "/up"
upstream = "{{upstream}}"
[[routes.plugins]]
name = "logger-up"
file = "{{dir}}/status-logger.wasm"
"#
        )
    })
    .await;
    let r = h.send(Proto::Http1, "GET", "/down/x", &[], "").await;
    assert_eq!(r.status, 502);
    let lines = logged("logger-down", " 502 ").await;
    assert_eq!(
        lines.len(),
        1,
        "on_log ran once, with the error's status: {lines:?}"
    );
    let r = h.send(Proto::Http1, "GET", "/up/x", &[], "").await;
    assert_eq!(r.status, 404, "the demo model has no /up/x");
    let lines = logged("logger-up", " 404 ").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
}

/// The SDK's plugins export no response hook, so a route of them alone sends the request headers
/// upstream without keeping a copy; a plugin after them that reads the request in `on_log` must
/// still find them.
#[tokio::test]
async fn a_plugin_reads_the_request_in_on_log_after_request_only_plugins() {
    crate::logs::captured();
    let h = Harness::start_with(|dir| {
        header_logger(dir, "trace-logger", 0, "x-trace");
        r#"
[[routes]]
name = "traced"
prefix = "/traced"
upstream = "{upstream}"
[[routes.plugins]]
name = "instance-header"
config = { values = ["kong_ins"] }
[[routes.plugins]]
name = "trace-logger"
file = "{dir}/trace-logger.wasm"
"#
        .to_string()
    })
    .await;
    let r = h
        .send(
            Proto::Http1,
            "GET",
            "/traced/x",
            &[("x-instance-id", "kong_ins"), ("x-trace", "t-7f3a")],
            "",
        )
        .await;
    assert_eq!(r.status, 404, "the demo model has no /traced/x");
    let lines = logged("trace-logger", "t-7f3a").await;
    assert_eq!(lines.len(), 1, "on_log read x-trace: {lines:?}");
}
