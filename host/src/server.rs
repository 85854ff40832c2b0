//! The listeners: accepting connections (plain and TLS), serving HTTP/1.1 and HTTP/2 on them
//! with the configured limits, and graceful shutdown.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
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

/// The connection builders, one per protocol: chosen by ALPN for TLS, by [`detect_protocol`]
/// on the plain listener.
struct Builders {
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(settings: &ServerConfig) -> Builders {
        Builders {
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
        let detect_timeout = Duration::from_millis(settings.header_read_timeout_ms);
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
                    // hyper-util's own protocol detection reads the HTTP/2 preface with no
                    // deadline: it is done here instead, under the header-read timeout, so a
                    // client that sends nothing, or only part of the preface, is closed then.
                    let mut tcp = tcp;
                    let (h2, read) =
                        match tokio::time::timeout(detect_timeout, detect_protocol(&mut tcp)).await
                        {
                            Ok(Ok(Some(found))) => found,
                            Ok(_) => return,
                            Err(_) => {
                                tracing::debug!(%peer, "no protocol detected before the header-read timeout");
                                return;
                            }
                        };
                    let builder = if h2 {
                        &builders.http2
                    } else {
                        &builders.http1
                    };
                    let io = Replay {
                        read,
                        replayed: 0,
                        inner: tcp,
                    };
                    let conn = builder.serve_connection(TokioIo::new(io), service);
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

/// The HTTP/2 connection preface a client with prior knowledge starts with (RFC 9113 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads a new plain connection's first bytes until they tell the protocol: the whole HTTP/2
/// preface (h2c, `true`) or a byte that differs from it (HTTP/1.1, `false`). Returns the bytes
/// read, for the protocol's parser to read again; `None` when the client closed first.
async fn detect_protocol(tcp: &mut TcpStream) -> std::io::Result<Option<(bool, Vec<u8>)>> {
    let mut read = Vec::with_capacity(H2_PREFACE.len());
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        // Never more than the rest of the preface, so nothing past it is read here.
        let n = tcp.read(&mut buf[..H2_PREFACE.len() - read.len()]).await?;
        if n == 0 {
            return Ok(None);
        }
        read.extend_from_slice(&buf[..n]);
        if read[..] != H2_PREFACE[..read.len()] {
            return Ok(Some((false, read)));
        }
        if read.len() == H2_PREFACE.len() {
            return Ok(Some((true, read)));
        }
    }
}

/// A plain connection whose first bytes [`detect_protocol`] read: they are read again first.
struct Replay {
    read: Vec<u8>,
    replayed: usize,
    inner: TcpStream,
}

impl AsyncRead for Replay {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.replayed < this.read.len() {
            let n = (this.read.len() - this.replayed).min(buf.remaining());
            buf.put_slice(&this.read[this.replayed..this.replayed + n]);
            this.replayed += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
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
