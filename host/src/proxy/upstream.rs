//! A route's connections to its upstream: HTTP/1.1 over TCP, kept alive and reused.
//!
//! The route owns its idle connections, most recently used last. A request takes the last one
//! that is ready, or connects; its response body gives the connection back when it ends, and a
//! body dropped early (the client left) closes it. A connection still busy when its response
//! ended (its request body still going out) is kept once it is ready. A request that a kept
//! connection could not take (the upstream closed it meanwhile) is sent again on another, which
//! is safe for any method: nothing of it was written.
//!
//! This replaces hyper-util's pooled `Client`, whose checkout and return (under a mutex, the pool
//! key hashed with SipHash each time) cost about a sixth of the gateway's own instructions per
//! request (BENCHMARKS.md, round 4).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::BoxError;

/// What a request body sent upstream must be.
pub trait RequestBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static {}

impl<B> RequestBody for B where B: Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static
{}

/// How long a kept connection may sit unused: an older one is never handed out again (a NAT or
/// load balancer on the way may have dropped its flow), and is closed when next seen.
const IDLE_FOR: Duration = Duration::from_secs(60);

/// The most idle connections a route keeps; more are closed as they come back.
const MAX_IDLE: usize = 1024;

/// Why a request got no response from the upstream.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made.
    #[error("cannot connect to {authority}: {reason}")]
    Connect {
        /// The upstream's `host:port`.
        authority: String,
        /// What went wrong.
        reason: String,
    },
    /// The connection failed before the response head arrived.
    #[error("{0}")]
    Failed(String),
}

/// One route's upstream and its kept connections, for requests with bodies of type `B`.
pub struct Upstream<B> {
    host: String,
    port: u16,
    authority: String,
    connect_timeout: Duration,
    idle_for: Duration,
    idle: Mutex<Vec<Idle<B>>>,
}

struct Idle<B> {
    sender: SendRequest<B>,
    since: Instant,
}

impl<B> std::fmt::Debug for Upstream<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("authority", &self.authority)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl<B: RequestBody> Upstream<B> {
    /// The upstream at `authority` (`host:port`, port 80 when absent).
    pub fn new(authority: &http::uri::Authority, connect_timeout: Duration) -> Upstream<B> {
        // An IPv6 literal keeps its brackets in the authority, not in the address to resolve.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        Upstream {
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_owned(),
            connect_timeout,
            idle_for: IDLE_FOR,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Idle<B>>> {
        // The list holds no invariant a panic could break halfway.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `req` on a kept connection or a new one, and returns the response head with a
    /// body that gives the connection back when it ends.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<B>,
    ) -> Result<Response<UpstreamBody<B>>, UpstreamError> {
        loop {
            let (mut sender, kept) = match self.take_kept() {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            match sender.try_send_request(req).await {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    let mut body = UpstreamBody {
                        inner: body,
                        keep: Some((sender, self.clone())),
                    };
                    if body.inner.is_end_stream() {
                        body.give_back();
                    }
                    return Ok(Response::from_parts(parts, body));
                }
                Err(mut e) => match e.take_message() {
                    // Not written: a kept connection the upstream had closed. Another one.
                    Some(unsent) if kept => req = unsent,
                    _ => return Err(UpstreamError::Failed(super::error_chain(e.error()))),
                },
            }
        }
    }

    /// The most recently used kept connection that can take a request, if any.
    fn take_kept(&self) -> Option<SendRequest<B>> {
        let now = Instant::now();
        let mut idle = self.idle();
        while let Some(kept) = idle.pop() {
            if now.duration_since(kept.since) > self.idle_for {
                // The newest is stale, so all are: closed, and a new connection made.
                idle.clear();
                return None;
            }
            if kept.sender.is_ready() {
                return Some(kept.sender);
            }
            // Closed: dropped.
        }
        None
    }

    async fn connect(&self) -> Result<SendRequest<B>, UpstreamError> {
        let failed = |reason: String| UpstreamError::Connect {
            authority: self.authority.clone(),
            reason,
        };
        let stream = match tokio::time::timeout(self.connect_timeout, self.open()).await {
            Err(_) => {
                return Err(failed(format!(
                    "no connection within {} ms",
                    self.connect_timeout.as_millis()
                )));
            }
            Ok(Err(reason)) => return Err(failed(reason)),
            Ok(Ok(stream)) => stream,
        };
        // Requests are small and answered at once: no Nagle delay.
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| failed(super::error_chain(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// A TCP connection to the upstream: its name resolved, then each address tried in turn
    /// with an equal share of the connect timeout, so one address that drops packets does not
    /// use it all up (as hyper-util's connector did).
    async fn open(&self) -> Result<TcpStream, String> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
            .collect();
        let share = self.connect_timeout / u32::try_from(addrs.len().max(1)).unwrap_or(u32::MAX);
        let mut last = format!("{} resolved to no address", self.host);
        // The error names the address only when there were several to try.
        let several = addrs.len() > 1;
        for addr in addrs {
            let why = match tokio::time::timeout(share, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no connection within {} ms", share.as_millis()),
            };
            last = if several {
                format!("{addr}: {why}")
            } else {
                why
            };
        }
        Err(last)
    }

    /// Keeps `sender` for the next request once it can take one.
    fn put_back(self: Arc<Self>, mut sender: SendRequest<B>) {
        if sender.is_ready() {
            self.keep(sender);
        } else if !sender.is_closed() {
            // Still busy: the response ended before the request body was all sent, or the
            // connection has not yet seen the end it was given back at. Kept once ready; a
            // connection that closes instead is dropped.
            tokio::spawn(async move {
                if sender.ready().await.is_ok() {
                    self.keep(sender);
                }
            });
        }
    }

    /// Keeps a ready `sender`, closing connections unused for too long.
    fn keep(&self, sender: SendRequest<B>) {
        let now = Instant::now();
        let mut idle = self.idle();
        // The oldest are first: drop those that waited too long, and the oldest when full.
        let stale = idle
            .iter()
            .take_while(|i| now.duration_since(i.since) > self.idle_for)
            .count()
            .max((idle.len() + 1).saturating_sub(MAX_IDLE));
        if stale > 0 {
            idle.drain(..stale);
        }
        idle.push(Idle { sender, since: now });
    }

    /// How many connections are kept idle now.
    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.idle().len()
    }
}

/// An upstream response body. When it ends its connection goes back to the route's kept ones;
/// dropped before its end, the connection closes with it.
pub struct UpstreamBody<B: RequestBody> {
    inner: Incoming,
    keep: Option<(SendRequest<B>, Arc<Upstream<B>>)>,
}

impl<B: RequestBody> UpstreamBody<B> {
    fn give_back(&mut self) {
        if let Some((sender, upstream)) = self.keep.take() {
            upstream.put_back(sender);
        }
    }
}

impl<B: RequestBody> Body for UpstreamBody<B> {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.give_back(),
            // Trailers are always a body's last frame (and the client's side may not poll again).
            Poll::Ready(Some(Ok(frame))) if frame.is_trailers() || this.inner.is_end_stream() => {
                this.give_back();
            }
            // A broken body: the connection is not reused.
            Poll::Ready(Some(Err(_))) => this.keep = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    type TestBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;
    type Test = Upstream<TestBody>;

    /// An upstream that answers each request head with `answer`, counting the connections it
    /// accepted, and closing each connection after `close_after` answers.
    async fn upstream(answer: &'static [u8], close_after: usize) -> (Arc<Test>, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: http::uri::Authority =
            listener.local_addr().unwrap().to_string().parse().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let mut answered = 0;
                    while answered < close_after {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            if stream.write_all(answer).await.is_err() {
                                return;
                            }
                            answered += 1;
                        }
                    }
                });
            }
        });
        let upstream = Test::new(&authority, Duration::from_secs(1));
        (Arc::new(upstream), accepted)
    }

    fn get() -> Request<TestBody> {
        Request::get("/x").body(Empty::new().boxed()).unwrap()
    }

    /// A request body that never ends (an upload that stalls).
    struct Endless;

    impl Body for Endless {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Pending
        }
    }

    const HELLO: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";

    #[tokio::test]
    async fn one_connection_serves_requests_one_after_another() {
        let (upstream, accepted) = upstream(HELLO, usize::MAX).await;
        for _ in 0..5 {
            let response = upstream.send(get()).await.unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"hello");
            assert_eq!(upstream.idle_count(), 1, "given back at the body's end");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_empty_body_gives_the_connection_back_at_once() {
        let (upstream, accepted) = upstream(b"HTTP/1.1 204 No Content\r\n\r\n", usize::MAX).await;
        for _ in 0..3 {
            let response = upstream.send(get()).await.unwrap();
            assert_eq!(response.status(), 204);
            drop(response);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_replaced() {
        // Each connection answers once, then the upstream closes it while it waits idle.
        let (upstream, accepted) = upstream(HELLO, 1).await;
        for round in 1..=3 {
            let response = upstream.send(get()).await.unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"hello", "round {round}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_connection_idle_too_long_is_not_handed_out_again() {
        let (upstream, accepted) = upstream(HELLO, usize::MAX).await;
        let mut upstream = Arc::try_unwrap(upstream).ok().unwrap();
        upstream.idle_for = Duration::from_millis(50);
        let upstream = Arc::new(upstream);
        for expected in [1, 1, 2] {
            if expected == 2 {
                tokio::time::sleep(Duration::from_millis(120)).await;
            }
            let response = upstream.send(get()).await.unwrap();
            response.into_body().collect().await.unwrap();
            assert_eq!(accepted.load(Ordering::SeqCst), expected);
        }
        assert_eq!(
            upstream.idle_count(),
            1,
            "the stale one closed, the new one kept"
        );
    }

    #[tokio::test]
    async fn a_body_read_to_its_trailers_gives_the_connection_back() {
        let (upstream, accepted) = upstream(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n\
              5\r\nhello\r\n0\r\nx-sum: 1\r\n\r\n",
            usize::MAX,
        )
        .await;
        let mut body = upstream.send(get()).await.unwrap().into_body();
        // Read up to the trailers and no further, as hyper's server does.
        loop {
            let frame = body.frame().await.unwrap().unwrap();
            if frame.is_trailers() {
                break;
            }
        }
        drop(body);
        let deadline = Instant::now() + Duration::from_secs(2);
        while upstream.idle_count() == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(upstream.idle_count(), 1, "kept after its trailers");
        upstream.send(get()).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_closes_its_connection() {
        let (upstream, accepted) = upstream(
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial",
            usize::MAX,
        )
        .await;
        let response = upstream.send(get()).await.unwrap();
        drop(response);
        assert_eq!(upstream.idle_count(), 0);
        upstream.send(get()).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "a second connection");
    }

    #[tokio::test]
    async fn a_connection_still_sending_its_request_body_is_not_handed_out() {
        // The upstream answers at the head; the request body never ends.
        let (upstream, accepted) = upstream(HELLO, usize::MAX).await;
        let stalled = Request::post("/upload")
            .header("transfer-encoding", "chunked")
            .body(Endless.boxed())
            .unwrap();
        let response = upstream.send(stalled).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello");
        // The next request does not wait behind the upload: it gets a connection of its own.
        let next = tokio::time::timeout(Duration::from_secs(2), upstream.send(get()))
            .await
            .expect("not stuck behind the stalled upload")
            .unwrap();
        assert_eq!(next.status(), 200);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_upstream_nobody_listens_on_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: http::uri::Authority =
            listener.local_addr().unwrap().to_string().parse().unwrap();
        drop(listener);
        let upstream = Arc::new(Test::new(&authority, Duration::from_secs(1)));
        match upstream.send(get()).await {
            Err(UpstreamError::Connect {
                authority: a,
                reason,
            }) => {
                assert_eq!(a, authority.as_str());
                // One address: the reason alone, the address said once (in `authority`).
                assert!(reason.starts_with("Connection refused"), "{reason}");
            }
            other => panic!(
                "expected a connect error, got {:?}",
                other.map(|r| r.status())
            ),
        }
    }
}
