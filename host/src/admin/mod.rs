//! The admin listener: a JSON API (`/status`, `/routes`, `/plugins`, `POST /reload`),
//! Prometheus metrics (`/metrics`) and the management page (`/`), for operators. It listens on
//! loopback unless the config explicitly allows otherwise with a token (config.rs checks), and it
//! refuses requests a browser could be tricked into sending: foreign `Host` names (DNS
//! rebinding) and cross-origin writes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::AdminConfig;
use crate::metrics::Metrics;
use crate::proxy::{ResponseBody, full_body, json_response};
use crate::reload::{ReloadError, ReloadOutcome, Reloader};

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("style.css");

/// The page and its assets load only from the admin listener itself.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Time an admin client has to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Most admin connections served at once: it is an operator's tool, not a public service.
const MAX_CONNECTIONS: usize = 64;

/// The running admin listener.
#[derive(Debug)]
pub struct Admin {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// What every admin request can see.
struct State {
    reloader: Arc<Reloader>,
    metrics: Arc<Metrics>,
    token: Option<String>,
}

impl Admin {
    /// Binds `config.listen` and serves the admin API for the gateway `reloader` holds.
    pub async fn start(
        config: &AdminConfig,
        reloader: Arc<Reloader>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Admin> {
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            anyhow::anyhow!("admin.listen: cannot listen on {}: {e}", config.listen)
        })?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            reloader,
            metrics,
            token: config.token.clone(),
        });
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(serve(listener, state, stopped));
        Ok(Admin { addr, stop, tasks })
    }

    /// The bound address (with the real port when configured with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and closes the admin connections.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn serve(listener: TcpListener, state: Arc<State>, mut stopped: watch::Receiver<bool>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => break,
        };
        let Ok((tcp, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue; // Over the cap: the connection is dropped.
        };
        let state = state.clone();
        connections.spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&state, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<ResponseBody> {
    let mut response = match route(state, req).await {
        Ok(response) => response,
        Err((status, message)) => json_response(status, &message),
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

type Refusal = (StatusCode, String);

async fn route(state: &State, req: Request<Incoming>) -> Result<Response<ResponseBody>, Refusal> {
    check_host(&req)?;
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    // The page and its assets hold no data: they load without the token, and the page asks
    // for it when the API answers 401.
    let asset = match path.as_str() {
        "/" | "/index.html" => Some((PAGE, "text/html; charset=utf-8")),
        "/app.js" => Some((SCRIPT, "text/javascript; charset=utf-8")),
        "/style.css" => Some((STYLE, "text/css; charset=utf-8")),
        _ => None,
    };
    if let Some((body, content_type)) = asset {
        allow(&method, &[Method::GET, Method::HEAD])?;
        return Ok(asset_response(body, content_type));
    }
    check_token(state, &req)?;
    match path.as_str() {
        "/status" => {
            allow(&method, &[Method::GET, Method::HEAD])?;
            Ok(json(StatusCode::OK, &status(state)))
        }
        "/routes" => {
            allow(&method, &[Method::GET, Method::HEAD])?;
            Ok(json(StatusCode::OK, &routes(state)))
        }
        "/plugins" => {
            allow(&method, &[Method::GET, Method::HEAD])?;
            Ok(json(StatusCode::OK, &plugins(state)))
        }
        "/metrics" => {
            allow(&method, &[Method::GET, Method::HEAD])?;
            let mut response = Response::new(full_body(Bytes::from(state.metrics.encode())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            Ok(response)
        }
        "/reload" => {
            allow(&method, &[Method::POST])?;
            check_origin(&req)?;
            // Nothing is read from the body, but it is drained so the connection stays usable.
            let _ = req.into_body().collect().await;
            Ok(reload(state).await)
        }
        _ => Err((
            StatusCode::NOT_FOUND,
            format!(
                "no admin endpoint {path}: try /status, /routes, /plugins, /metrics, POST /reload"
            ),
        )),
    }
}

fn allow(method: &Method, allowed: &[Method]) -> Result<(), Refusal> {
    if allowed.contains(method) {
        return Ok(());
    }
    let names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    Err((
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed here; use {}", names.join(" or ")),
    ))
}

/// A browser page on another site can reach a loopback listener through a DNS name that
/// resolves to 127.0.0.1 (DNS rebinding). Such requests carry that name as their `Host`: only IP
/// literals and `localhost` are accepted.
fn check_host(req: &Request<Incoming>) -> Result<(), Refusal> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok() {
        Ok(())
    } else {
        Err((
            StatusCode::MISDIRECTED_REQUEST,
            format!("the admin API answers only to an IP address or localhost, not Host {host:?}"),
        ))
    }
}

/// A write must come from the page itself (or a tool that sends no `Origin`), never from a
/// page on another origin.
fn check_origin(req: &Request<Incoming>) -> Result<(), Refusal> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if origin.to_str().ok() == Some(&format!("http://{host}")) {
        Ok(())
    } else {
        Err((
            StatusCode::FORBIDDEN,
            "cross-origin requests may not change the gateway".into(),
        ))
    }
}

fn check_token(state: &State, req: &Request<Incoming>) -> Result<(), Refusal> {
    let Some(token) = &state.token else {
        return Ok(());
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err((
            StatusCode::UNAUTHORIZED,
            "the admin API needs `Authorization: Bearer <admin.token>`".into(),
        ))
    }
}

/// Compares without stopping at the first difference, so the time taken does not reveal how
/// much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, &x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(!x));
    }
    diff == 0
}

fn asset_response(body: &'static str, content_type: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(full_body(Bytes::from_static(body.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    response
}

fn json(status: StatusCode, value: &Value) -> Response<ResponseBody> {
    let mut response = Response::new(full_body(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn status(state: &State) -> Value {
    let metrics = &state.metrics;
    let last = state.reloader.status().map(|s| {
        json!({
            "at": rfc3339(s.at),
            "ok": s.error.is_none(),
            "error": s.error,
        })
    });
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": rfc3339(metrics.started_at()),
        "uptime_seconds": metrics.uptime().as_secs_f64(),
        "connections": {
            "open": metrics.open_connections(),
            "total": metrics.connections_total(),
        },
        "requests": { "total": metrics.requests_total() },
        "reloads": {
            "attempts": state.reloader.attempts(),
            "swaps": state.reloader.swaps(),
            "last": last,
        },
    })
}

fn routes(state: &State) -> Value {
    let gateway = state.reloader.handle().load_full();
    let routes: Vec<Value> = gateway
        .routes()
        .iter()
        .map(|route| {
            let [c1, c2, c3, c4, c5] = state.metrics.route_requests(route.name());
            json!({
                "name": route.name(),
                "prefix": route.prefix(),
                "upstream": route.upstream(),
                "plugins": route.chain().plugins().iter().map(|p| p.name().to_string()).collect::<Vec<_>>(),
                "requests": {
                    "total": c1 + c2 + c3 + c4 + c5,
                    "1xx": c1, "2xx": c2, "3xx": c3, "4xx": c4, "5xx": c5,
                },
            })
        })
        .collect();
    Value::Array(routes)
}

fn plugins(state: &State) -> Value {
    let gateway = state.reloader.handle().load_full();
    let failed = state
        .reloader
        .status()
        .map(|s| s.failed_plugins)
        .unwrap_or_default();
    let mut matched = vec![false; failed.len()];
    let mut entries = Vec::new();
    for route in gateway.routes() {
        for plugin in route.chain().plugins() {
            let module = plugin.module();
            let failure = failed
                .iter()
                .position(|f| f.route == route.name() && f.plugin == **plugin.name());
            let mut entry = json!({
                "route": route.name(),
                "name": plugin.name().to_string(),
                "file": module.path().display().to_string(),
                "sha256": hex(&module.sha256()),
                "loaded_at": rfc3339(module.compiled_at()),
                "failure_policy": match plugin.failure_policy() {
                    crate::config::FailurePolicy::Closed => "closed",
                    crate::config::FailurePolicy::Open => "open",
                },
                "state": "active",
            });
            if let Some(i) = failure {
                matched[i] = true;
                // The last good version keeps serving; the entry says the new one failed.
                entry["state"] = "failed".into();
                entry["error"] = failed[i].error.clone().into();
            }
            entries.push(entry);
        }
    }
    // Plugins the failed reload added: nothing of theirs is serving.
    for (f, _) in failed.iter().zip(&matched).filter(|(_, m)| !**m) {
        entries.push(json!({
            "route": f.route,
            "name": f.plugin,
            "file": f.file.display().to_string(),
            "sha256": null,
            "loaded_at": null,
            "state": "failed",
            "error": f.error,
        }));
    }
    Value::Array(entries)
}

async fn reload(state: &State) -> Response<ResponseBody> {
    let reloader = state.reloader.clone();
    let outcome = tokio::task::spawn_blocking(move || reloader.reload()).await;
    match outcome {
        Ok(Ok(ReloadOutcome::Swapped)) => json(StatusCode::OK, &json!({ "result": "swapped" })),
        Ok(Ok(ReloadOutcome::Unchanged)) => json(StatusCode::OK, &json!({ "result": "unchanged" })),
        Ok(Err(e)) => {
            let kind = match e {
                ReloadError::Config(_) => "config",
                ReloadError::Plugins(_) => "plugins",
            };
            json(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({ "result": "failed", "kind": kind, "error": e.to_string() }),
            )
        }
        Err(_) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the reload panicked; the running version keeps serving",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdeX", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdef0", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdef", b""));
        assert!(constant_time_eq(b"", b""));
    }
}
