//! The listeners: accepting connections (plain and TLS), serving HTTP/1.1 and HTTP/2 on them
//! with the configured limits, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, ServerConfig};
use crate::metrics::{ConnectionMetrics, Metrics};
use crate::proxy::ConnInfo;
use crate::reload::GatewayHandle;

/// Ping interval and answer timeout for HTTP/2 connections.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// A running set of listeners. [`Server::shutdown`] stops them gracefully; dropping it stops
/// accepting at once.
#[derive(Debug)]
pub struct Server {
    http_addr: Option<SocketAddr>,
    https_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Server {
    /// Binds the configured listeners and starts serving the gateway `gateway` holds on them,
    /// counting connections in `metrics`.
    pub async fn start(
        config: &Config,
        gateway: GatewayHandle,
        metrics: &Metrics,
    ) -> anyhow::Result<Server> {
        use anyhow::Context;
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let settings = Arc::new(config.server.clone());
        let mut http_addr = None;
        let mut https_addr = None;
        if let Some(addr) = config.server.http {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("server.http: cannot listen on {addr}"))?;
            http_addr = Some(listener.local_addr()?);
            tasks.spawn(accept_loop(
                listener,
                None,
                gateway.clone(),
                settings.clone(),
                metrics.listener("http"),
                stopped.clone(),
            ));
        }
        if let (Some(addr), Some(tls)) = (config.server.https, &config.tls) {
            let tls_config = crate::tls::server_config(&tls.cert, &tls.key).context("tls")?;
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("server.https: cannot listen on {addr}"))?;
            https_addr = Some(listener.local_addr()?);
            tasks.spawn(accept_loop(
                listener,
                Some(TlsAcceptor::from(tls_config)),
                gateway.clone(),
                settings.clone(),
                metrics.listener("https"),
                stopped.clone(),
            ));
        }
        Ok(Server {
            http_addr,
            https_addr,
            stop,
            tasks,
        })
    }

    /// The bound plain HTTP address (with the real port when configured with port 0).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The bound HTTPS address.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// Stops accepting, lets requests in flight finish (up to `server.shutdown_timeout_ms`),
    /// closes every connection still open, then returns.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

fn connection_builder(settings: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's header-read timeout does nothing without a timer.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(settings.header_read_timeout_ms))
        .max_headers(settings.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.h2_max_concurrent_streams)
        .max_pending_accept_reset_streams(Some(settings.h2_max_pending_reset_streams))
        .max_header_list_size(64 * 1024)
        // An idle or vanished HTTP/2 peer is found by pings and its connection closed.
        .keep_alive_interval(Some(H2_KEEP_ALIVE))
        .keep_alive_timeout(H2_KEEP_ALIVE);
    builder
}

/// The connection builders: one that detects the protocol (plain text, h2c by preface), and one
/// per ALPN result for TLS, where the protocol is already agreed and nothing is sniffed.
struct Builders {
    detect: auto::Builder<TokioExecutor>,
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(settings: &ServerConfig) -> Builders {
        Builders {
            detect: connection_builder(settings),
            http1: connection_builder(settings).http1_only(),
            http2: connection_builder(settings).http2_only(),
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    gateway: GatewayHandle,
    settings: Arc<ServerConfig>,
    connections: ConnectionMetrics,
    mut stopped: watch::Receiver<bool>,
) {
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let builders = Arc::new(Builders::new(&settings));
    let graceful = GracefulShutdown::new();
    // Every connection's task, so that shutdown can close the ones still open after the drain
    // timeout; finished ones are reaped as the loop goes.
    let mut open_connections = JoinSet::new();
    // At the cap the loop stops accepting: new clients wait in the kernel's backlog instead of
    // each costing a task and buffers here.
    let slots = Arc::new(tokio::sync::Semaphore::new(settings.max_connections));
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            Some(_) = open_connections.join_next() => continue,
            _ = stopped.changed() => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly, keep serving.
                    tracing::warn!(listener = %local, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = open_connections.join_next() => {
                // A permit in hand and a finished connection reaped; accept again.
                drop(permit);
                continue;
            }
            _ = stopped.changed() => break,
        };
        let _ = tcp.set_nodelay(true);
        let conn = ConnInfo {
            peer,
            local,
            scheme,
        };
        let gateway = gateway.clone();
        let builders = builders.clone();
        let handshake_timeout = Duration::from_millis(settings.tls_handshake_timeout_ms);
        let first_byte_timeout = Duration::from_millis(settings.header_read_timeout_ms);
        let tls = tls.clone();
        let watcher = graceful.watcher();
        let open = connections.opened();
        open_connections.spawn(async move {
            let _permit = permit;
            let _open = open;
            let service = service_fn(move |req| {
                // Each request runs on the gateway that is current when it arrives, to its
                // end, whatever reloads happen meanwhile.
                let gateway = gateway.load_full();
                async move { Ok::<_, std::convert::Infallible>(gateway.handle(req, conn).await) }
            });
            match tls {
                None => {
                    // Protocol detection waits for bytes with no deadline of its own: a client
                    // that connects and says nothing is closed at the header-read timeout.
                    let mut first = [0u8; 1];
                    match tokio::time::timeout(first_byte_timeout, tcp.peek(&mut first)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => return,
                    }
                    let conn = builders.detect.serve_connection(TokioIo::new(tcp), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                Some(acceptor) => {
                    let Some(stream) = handshake(acceptor, tcp, handshake_timeout, peer).await
                    else {
                        return;
                    };
                    let builder = if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                        &builders.http2
                    } else {
                        &builders.http1
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(settings.shutdown_timeout(), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = %local,
            connections = open_connections.len(),
            "requests still in flight after the shutdown timeout; closing their connections"
        );
    }
    // Aborting a connection's task drops its socket and the requests it was serving (and with
    // them their upstream requests).
    open_connections.abort_all();
    while open_connections.join_next().await.is_some() {}
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    timeout: Duration,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}
