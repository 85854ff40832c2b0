//! Test support for the end-to-end suite: a gateway and a recording demo model server started
//! per test on loopback port 0, a self-signed certificate per test, and a client that speaks
//! HTTP/1.1 or HTTP/2, in plain text or over TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use demo_model::{DemoHandle, Recorder};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// The demo's API key and the seed request body.
pub use wasmgate::demo::{DEMO_BODY, DEMO_KEY};

/// Where `scripts/build-wasm.sh` leaves the plugins and fixtures.
pub fn wasm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm")
}

/// The path of a built plugin; panics with what to run when it is missing.
pub fn wasm(name: &str) -> PathBuf {
    let path = wasm_dir().join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `make wasm` (scripts/build-wasm.sh) before the tests",
        path.display()
    );
    path
}

/// The seed route: key-auth, instance-header and path-rewrite in front of `{upstream}`.
pub const SEED_ROUTE: &str = r#"
[[routes]]
name = "serving-uci"
prefix = "/serving-uci"
upstream = "{upstream}"

[[routes.plugins]]
name = "key-auth"
[routes.plugins.config]
consumers = [
    { username = "demo", key_sha256 = ["dceb76cf5cd7ce48e83deebd5db793e68fbc7ffbf9796569e38ede2e7e28aa70"] },
    { username = "other", keys = ["second-key"] },
]

[[routes.plugins]]
name = "instance-header"
[routes.plugins.config]
values = ["kong_ins"]

[[routes.plugins]]
name = "path-rewrite"
[routes.plugins.config]
prefix = "/serving-uci"
"#;

/// A gateway and its upstream, both on loopback, torn down when dropped.
pub struct Harness {
    /// The running gateway.
    pub gateway: wasmgate::Running,
    /// The demo model server behind it.
    pub upstream: DemoHandle,
    /// What the upstream received.
    pub recorder: Recorder,
    /// The test's directory: config, certificate, extra plugins.
    pub dir: tempfile::TempDir,
    tls: Arc<rustls::ClientConfig>,
}

/// Which protocol a test request uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// Plain HTTP/1.1 on the http listener.
    Http1,
    /// HTTP/1.1 over TLS.
    Https1,
    /// HTTP/2 over TLS (ALPN h2).
    Https2,
}

/// A response, read whole.
#[derive(Debug)]
pub struct TestResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl TestResponse {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Writes a config with both listeners on port 0, the plugin directory `target/wasm` and the
/// given routes (`{upstream}` and `{dir}` replaced).
pub fn write_config(dir: &Path, upstream: SocketAddr, extra: &str) -> PathBuf {
    write_config_with(dir, upstream, "", extra)
}

/// Like [`write_config`], with more `[server]` keys (TOML lines) after the listeners. The admin
/// listener is on a free loopback port unless `extra` has its own `[admin]` section.
pub fn write_config_with(dir: &Path, upstream: SocketAddr, server: &str, extra: &str) -> PathBuf {
    let (cert, key) = wasmgate::tls::ensure_self_signed(&dir.join("tls")).expect("certificate");
    let admin = if extra.contains("[admin]") {
        ""
    } else {
        "[admin]\nlisten = \"127.0.0.1:0\"\n"
    };
    let text = format!(
        r#"version = 1
[server]
http = "127.0.0.1:0"
https = "127.0.0.1:0"
{}
[tls]
cert = "{}"
key = "{}"
[plugins]
dir = "{}"
instances = 2
call_timeout_ms = 100
{}{}"#,
        server,
        cert.display(),
        key.display(),
        wasm_dir().display(),
        admin,
        extra
            .replace("{upstream}", &format!("http://{upstream}"))
            .replace("{dir}", &dir.display().to_string())
    );
    let path = dir.join("wasmgate.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

impl Harness {
    /// Starts the demo model server and a gateway whose config is the test listeners plus
    /// `routes` (TOML; `{upstream}` is the model server's URL, `{dir}` the test directory).
    pub async fn start(routes: &str) -> Harness {
        Self::start_with(|_| routes.to_string()).await
    }

    /// Like [`Harness::start`], with the routes made by `prepare`, which may also put files
    /// (plugins) into the test directory it is given before the gateway loads.
    pub async fn start_with(prepare: impl FnOnce(&Path) -> String) -> Harness {
        Self::start_full("", prepare).await
    }

    /// Like [`Harness::start_with`], with more `[server]` keys (TOML lines).
    pub async fn start_full(server: &str, prepare: impl FnOnce(&Path) -> String) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let routes = prepare(dir.path());
        let mut model = demo_model::bind("127.0.0.1:0".parse().unwrap())
            .await
            .expect("bind upstream");
        let recorder = model.recorder();
        let upstream_addr = model.local_addr();
        let upstream = model.spawn();
        let path = write_config_with(dir.path(), upstream_addr, server, &routes);
        let config = wasmgate::Config::load(&path).expect("test config is valid");
        let gateway = wasmgate::start(&path, &config)
            .await
            .expect("gateway starts");
        let tls = client_tls(&dir.path().join("tls/cert.pem"));
        Harness {
            gateway,
            upstream,
            recorder,
            dir,
            tls,
        }
    }

    /// Sends one request and reads the whole response.
    pub async fn send(
        &self,
        proto: Proto,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> TestResponse {
        let addr = match proto {
            Proto::Http1 => self.gateway.server.http_addr(),
            Proto::Https1 | Proto::Https2 => self.gateway.server.https_addr(),
        }
        .expect("listener");
        let mut builder = Request::builder().method(method).uri(path);
        if proto != Proto::Https2 {
            builder = builder.header("host", format!("localhost:{}", addr.port()));
        } else {
            builder = builder.uri(format!("https://localhost:{}{path}", addr.port()));
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request");
        send_request(addr, proto, &self.tls, request).await
    }

    /// The seed request (a POST of the demo body) on `path` with `headers`, over HTTPS/1.1.
    pub async fn predict(&self, path: &str, headers: &[(&str, &str)]) -> TestResponse {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.send(Proto::Https1, "POST", path, &all, DEMO_BODY)
            .await
    }
}

/// A TLS client configuration trusting exactly the test's certificate.
pub fn client_tls(cert: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert).expect("cert file") {
        roots.add(cert.expect("cert")).expect("add root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Sends `request` on a new connection to `addr` and reads the whole response.
pub async fn send_request(
    addr: SocketAddr,
    proto: Proto,
    tls: &Arc<rustls::ClientConfig>,
    request: Request<Full<Bytes>>,
) -> TestResponse {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let response = match proto {
        Proto::Http1 => {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .expect("h1 handshake");
            tokio::spawn(conn);
            sender.send_request(request).await.expect("response")
        }
        Proto::Https1 | Proto::Https2 => {
            let mut config = (**tls).clone();
            config.alpn_protocols = vec![if proto == Proto::Https2 {
                b"h2".to_vec()
            } else {
                b"http/1.1".to_vec()
            }];
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let stream = connector
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .expect("TLS handshake");
            if proto == Proto::Https2 {
                assert_eq!(
                    stream.get_ref().1.alpn_protocol(),
                    Some(&b"h2"[..]),
                    "ALPN chose h2"
                );
                let (mut sender, conn) = hyper::client::conn::http2::handshake(
                    TokioExecutor::new(),
                    TokioIo::new(stream),
                )
                .await
                .expect("h2 handshake");
                tokio::spawn(conn);
                sender.send_request(request).await.expect("response")
            } else {
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .expect("h1 handshake");
                tokio::spawn(conn);
                sender.send_request(request).await.expect("response")
            }
        }
    };
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    TestResponse {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Compiles WAT text to a module file at `dir/name.wasm`.
pub fn write_wat(dir: &Path, name: &str, wat: &str) -> PathBuf {
    let bytes = wat::parse_str(wat).expect("valid WAT");
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, bytes).expect("write module");
    path
}
