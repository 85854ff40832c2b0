//! Operating the gateway: the admin API, Prometheus metrics, the access log and the management
//! page (in a real headless Chromium), against a running gateway with the seed's plugins.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use sha2::{Digest, Sha256};
use wasmgate_tests::{
    DEMO_KEY, Harness, Proto, SEED_ROUTE, TestResponse, client_tls, send_request,
};

const SEED_HEADERS: [(&str, &str); 2] = [("apikey", DEMO_KEY), ("x-instance-id", "kong_ins")];

/// The seed route with key-auth loaded from `{dir}/plugins/key-auth.wasm`, a copy the test
/// can break.
fn seed_with_own_key_auth(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::copy(
        wasmgate_tests::wasm("key-auth"),
        dir.join("plugins/key-auth.wasm"),
    )
    .unwrap();
    SEED_ROUTE.replacen(
        "name = \"key-auth\"\n",
        "name = \"key-auth\"\nfile = \"{dir}/plugins/key-auth.wasm\"\n",
        1,
    )
}

/// Sends an admin request with `headers` (a `Host` of 127.0.0.1 unless given).
async fn admin_request(
    h: &Harness,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> TestResponse {
    let addr = h.gateway.admin_addr().expect("admin listener");
    let mut builder = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        builder = builder.header("host", addr.to_string());
    }
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let tls = client_tls(&h.dir.path().join("tls/cert.pem"));
    send_request(
        addr,
        Proto::Http1,
        &tls,
        builder.body(Full::new(Bytes::new())).unwrap(),
    )
    .await
}

async fn admin_get(h: &Harness, path: &str) -> TestResponse {
    admin_request(h, "GET", path, &[]).await
}

/// The value of the one sample `series` (name and labels exactly as exposed) in `text`.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

fn sha256_hex(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The seed request with its key (200), then without (key-auth's 401).
async fn admitted_then_refused(h: &Harness) {
    let ok = h
        .predict("/serving-uci/uci/prediction", &SEED_HEADERS)
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let no_key = [("x-instance-id", "kong_ins")];
    let refused = h.predict("/serving-uci/uci/prediction", &no_key).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn status_routes_plugins_and_metrics_describe_the_traffic() {
    let h = Harness::start(SEED_ROUTE).await;
    admitted_then_refused(&h).await;
    assert_eq!(
        h.predict("/uci/prediction", &SEED_HEADERS).await.status,
        StatusCode::NOT_FOUND
    );

    let status = admin_get(&h, "/status").await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(status.header("content-type"), Some("application/json"));
    let status = status.json();
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["requests"]["total"], 3);
    assert_eq!(status["connections"]["total"], 3, "{status}");
    assert!(status["uptime_seconds"].as_f64().unwrap() >= 0.0);
    assert!(status["reloads"]["last"].is_null());

    let routes = admin_get(&h, "/routes").await.json();
    let route = &routes[0];
    assert_eq!(route["name"], "serving-uci");
    assert_eq!(route["prefix"], "/serving-uci");
    assert_eq!(
        route["upstream"],
        format!("http://{}", h.upstream.local_addr())
    );
    assert_eq!(
        route["plugins"],
        serde_json::json!(["key-auth", "instance-header", "path-rewrite"])
    );
    assert_eq!(route["requests"]["total"], 2);
    assert_eq!(route["requests"]["2xx"], 1);
    assert_eq!(route["requests"]["4xx"], 1);

    let plugins = admin_get(&h, "/plugins").await.json();
    let plugins = plugins.as_array().unwrap();
    assert_eq!(plugins.len(), 3);
    for (plugin, name) in plugins
        .iter()
        .zip(["key-auth", "instance-header", "path-rewrite"])
    {
        assert_eq!(plugin["name"], name);
        assert_eq!(plugin["route"], "serving-uci");
        assert_eq!(plugin["state"], "active");
        assert_eq!(
            plugin["sha256"],
            sha256_hex(&wasmgate_tests::wasm(name)),
            "the digest of the module that serves"
        );
        let loaded_at = plugin["loaded_at"].as_str().unwrap();
        assert!(
            humantime::parse_rfc3339(loaded_at).is_ok(),
            "loaded_at {loaded_at} is RFC 3339"
        );
        assert!(plugin.get("error").is_none());
    }

    let metrics = admin_get(&h, "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = String::from_utf8(metrics.body.to_vec()).unwrap();
    let r = "route=\"serving-uci\"";
    assert_eq!(
        sample(
            &text,
            &format!("wasmgate_requests_total{{{r},status=\"200\"}}")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("wasmgate_requests_total{{{r},status=\"401\"}}")
        ),
        1.0
    );
    assert_eq!(
        sample(&text, "wasmgate_requests_total{route=\"\",status=\"404\"}"),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("wasmgate_request_duration_seconds_count{{{r}}}")
        ),
        2.0
    );
    // Only the admitted request went upstream.
    assert_eq!(
        sample(
            &text,
            &format!("wasmgate_upstream_duration_seconds_count{{{r}}}")
        ),
        1.0
    );
    // key-auth ran on both requests' request headers; path-rewrite only saw the admitted one.
    // Neither has a response hook (the SDK exports none for them), so neither was called for the
    // responses.
    assert_eq!(
        sample(
            &text,
            &format!("wasmgate_plugin_call_duration_seconds_count{{{r},plugin=\"key-auth\"}}")
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("wasmgate_plugin_call_duration_seconds_count{{{r},plugin=\"path-rewrite\"}}")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("wasmgate_plugin_failures_total{{{r},plugin=\"key-auth\",kind=\"trap\"}}")
        ),
        0.0
    );
    assert!(text.contains("wasmgate_open_connections{listener=\"https\"}"));
    assert!(text.ends_with("# EOF\n"));
}

#[tokio::test]
async fn a_failed_reload_is_reported_by_plugin_and_the_old_version_keeps_serving() {
    let h = Harness::start_with(seed_with_own_key_auth).await;
    let module = h.dir.path().join("plugins/key-auth.wasm");
    let good = sha256_hex(&module);
    std::fs::write(&module, b"\0asm\x01\0\0\0 this is not a module").unwrap();

    let reload = admin_request(&h, "POST", "/reload", &[]).await;
    assert_eq!(reload.status, StatusCode::UNPROCESSABLE_ENTITY);
    let body = reload.json();
    assert_eq!(body["result"], "failed");
    assert_eq!(body["kind"], "plugins");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains(&module.display().to_string()),
        "{body}"
    );

    let plugins = admin_get(&h, "/plugins").await.json();
    let key_auth = &plugins[0];
    assert_eq!(key_auth["name"], "key-auth");
    assert_eq!(key_auth["state"], "failed");
    assert_eq!(key_auth["sha256"], good, "the last good version serves");
    let error = key_auth["error"].as_str().unwrap();
    assert!(
        error.starts_with("routes[0].plugins[0] (key-auth): ") && error.contains("key-auth.wasm"),
        "{error}"
    );
    assert_eq!(plugins[1]["state"], "active");
    let status = admin_get(&h, "/status").await.json();
    assert_eq!(status["reloads"]["last"]["ok"], false);
    assert_eq!(status["reloads"]["last"]["error"], body["error"]);

    // Still served by the last good key-auth.
    admitted_then_refused(&h).await;

    // The good module back: the reload finds the running version and the failure clears.
    std::fs::copy(wasmgate_tests::wasm("key-auth"), &module).unwrap();
    let reload = admin_request(&h, "POST", "/reload", &[]).await;
    assert_eq!(reload.status, StatusCode::OK);
    assert_eq!(reload.json()["result"], "unchanged");
    let plugins = admin_get(&h, "/plugins").await.json();
    assert_eq!(plugins[0]["state"], "active");
    let text = String::from_utf8(admin_get(&h, "/metrics").await.body.to_vec()).unwrap();
    assert_eq!(
        sample(&text, "wasmgate_reloads_total{result=\"failed\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "wasmgate_reloads_total{result=\"unchanged\"}"),
        1.0
    );
}

#[tokio::test]
async fn the_admin_api_refuses_rebinding_cross_origin_writes_and_wrong_methods() {
    let h = Harness::start(SEED_ROUTE).await;
    let port = h.gateway.admin_addr().unwrap().port();

    let rebound = admin_request(
        &h,
        "GET",
        "/status",
        &[("host", &format!("attacker.example:{port}"))],
    )
    .await;
    assert_eq!(rebound.status, StatusCode::MISDIRECTED_REQUEST);
    assert!(
        rebound.json()["message"]
            .as_str()
            .unwrap()
            .contains("attacker.example")
    );
    assert_eq!(
        admin_request(
            &h,
            "GET",
            "/status",
            &[("host", &format!("localhost:{port}"))]
        )
        .await
        .status,
        StatusCode::OK
    );

    let cross = admin_request(
        &h,
        "POST",
        "/reload",
        &[("origin", "http://attacker.example")],
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let same = admin_request(
        &h,
        "POST",
        "/reload",
        &[("origin", &format!("http://127.0.0.1:{port}"))],
    )
    .await;
    assert_eq!(same.status, StatusCode::OK, "the page's own reload button");

    let wrong = admin_request(&h, "GET", "/reload", &[]).await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.json()["message"], "GET is not allowed here; use POST");
    let unknown = admin_get(&h, "/nope").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let page = admin_get(&h, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("default-src 'none'")
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
}

#[tokio::test]
async fn a_token_guards_the_api_but_not_the_page() {
    const TOKEN: &str = "s3cret-admin-token-0123";
    let h = Harness::start(&format!(
        "{SEED_ROUTE}\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n"
    ))
    .await;
    for path in ["/status", "/routes", "/plugins", "/metrics"] {
        let refused = admin_get(&h, path).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{path}");
        let wrong = admin_request(
            &h,
            "GET",
            path,
            &[("authorization", "Bearer s3cret-admin-token-0124")],
        )
        .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{path}");
        let admitted = admin_request(
            &h,
            "GET",
            path,
            &[("authorization", &format!("Bearer {TOKEN}"))],
        )
        .await;
        assert_eq!(admitted.status, StatusCode::OK, "{path}");
    }
    assert_eq!(
        admin_request(&h, "POST", "/reload", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(admin_get(&h, "/").await.status, StatusCode::OK);
    assert_eq!(admin_get(&h, "/app.js").await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_access_log_has_one_line_per_request_and_never_the_key() {
    let logs = crate::logs::captured();
    let (json, text) = (&logs.access_json, &logs.access_text);
    let route = SEED_ROUTE.replace("name = \"serving-uci\"", "name = \"access-logged\"");
    let h = Harness::start(&route).await;
    let ok = h
        .predict("/serving-uci/uci/prediction?apikey=in-query", &SEED_HEADERS)
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let refused = h
        .predict(
            "/serving-uci/uci/prediction",
            &[("apikey", "wrong-key-value"), ("x-instance-id", "kong_ins")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    let lines = json.lines_with("\"route\":\"access-logged\"");
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["target"], "wasmgate::access");
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/serving-uci/uci/prediction", "no query");
    assert_eq!(first["status"], 200);
    assert_eq!(first["consumer"], "demo");
    assert!(first["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(first["upstream_ms"].as_f64().unwrap() > 0.0);
    assert!(first.get("plugin").is_none());
    let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(second["status"], 401);
    assert_eq!(second["plugin"], "key-auth", "the plugin that answered");
    assert!(second.get("upstream_ms").is_none());
    assert!(second.get("consumer").is_none());

    let text_lines = text.lines_with("route=\"access-logged\"");
    assert_eq!(text_lines.len(), 2, "{text_lines:#?}");
    assert!(
        text_lines[1].contains("status=401") && text_lines[1].contains("plugin=\"key-auth\""),
        "{}",
        text_lines[1]
    );
    for line in lines.iter().chain(&text_lines) {
        for secret in [DEMO_KEY, "wrong-key-value", "in-query"] {
            assert!(!line.contains(secret), "{secret} leaked into {line}");
        }
    }
}

/// Headless Chromium from Debian's package (scripts/install-toolchain.sh installs it).
fn chromium() -> &'static str {
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(candidate).exists() {
            return candidate;
        }
    }
    panic!("chromium is not installed: run scripts/install-toolchain.sh (or `make toolchain`)");
}

/// The page at `url` after its scripts ran for `budget` of virtual time, as Chromium's DOM.
fn render(url: &str, profile: &Path, budget: Duration) -> String {
    let output = std::process::Command::new("timeout")
        .arg("90")
        .arg(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={}", budget.as_millis()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        output.status.success(),
        "chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("DOM is UTF-8")
}

/// The text of the element that starts at the first match of `start` in `dom`, up to `end`.
fn section<'a>(dom: &'a str, start: &str, end: &str) -> &'a str {
    let from = dom
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in the page:\n{dom}"));
    let rest = &dom[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_management_page_shows_routes_plugins_rates_and_a_failed_reload() {
    let h = Harness::start_with(seed_with_own_key_auth).await;
    for _ in 0..3 {
        assert_eq!(
            h.predict("/serving-uci/uci/prediction", &SEED_HEADERS)
                .await
                .status,
            StatusCode::OK
        );
    }
    let module = h.dir.path().join("plugins/key-auth.wasm");
    std::fs::write(&module, b"not wasm at all").unwrap();
    assert_eq!(
        admin_request(&h, "POST", "/reload", &[]).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // Traffic while the page watches, so the rate it shows is live.
    let traffic = {
        let addr: SocketAddr = h.gateway.server.http_addr().unwrap();
        tokio::spawn(async move {
            let tls = Arc::new(
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            );
            for _ in 0..200 {
                let request = Request::builder()
                    .method("POST")
                    .uri("/serving-uci/uci/prediction")
                    .header("host", "localhost")
                    .header("apikey", DEMO_KEY)
                    .header("x-instance-id", "kong_ins")
                    .body(Full::new(Bytes::from_static(
                        wasmgate_tests::DEMO_BODY.as_bytes(),
                    )))
                    .unwrap();
                send_request(addr, Proto::Http1, &tls, request).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    let url = format!("http://{}/", h.gateway.admin_addr().unwrap());
    let profile = tempfile::tempdir().unwrap();
    let dom = tokio::task::spawn_blocking(move || {
        render(&url, profile.path(), Duration::from_millis(3000))
    })
    .await
    .unwrap();
    traffic.abort();

    assert!(
        section(&dom, "id=\"version\"", "</dd>").contains(env!("CARGO_PKG_VERSION")),
        "{dom}"
    );
    let route = section(&dom, "data-route=\"serving-uci\"", "</tr>");
    assert!(route.contains("<td>/serving-uci</td>"), "{route}");
    assert!(
        route.contains("key-auth → instance-header → path-rewrite"),
        "{route}"
    );
    let rate = section(route, "class=\"num rate\">", "</td>");
    assert!(
        rate.trim_start_matches("class=\"num rate\">")
            .parse::<f64>()
            .is_ok(),
        "the page shows a measured rate: {route}"
    );
    let key_auth = section(&dom, "data-plugin=\"serving-uci/key-auth\"", "</tr>");
    assert!(key_auth.contains("data-state=\"failed\""), "{key_auth}");
    assert!(
        key_auth.contains("key-auth.wasm"),
        "the error names the file: {key_auth}"
    );
    let instance = section(&dom, "data-plugin=\"serving-uci/instance-header\"", "</tr>");
    assert!(instance.contains("data-state=\"active\""), "{instance}");
    let banner = section(&dom, "id=\"reload-error\"", "</pre>");
    assert!(
        !banner.contains("hidden"),
        "the failed reload is shown: {banner}"
    );
    assert!(banner.contains("key-auth.wasm"), "{banner}");
    assert!(
        section(&dom, "id=\"reload-state\"", "</p>").contains("FAILED"),
        "{dom}"
    );
}
