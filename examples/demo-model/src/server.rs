//! The HTTP/1.1 server: accepting connections, routing, body limits, the JSON answers, the
//! optional request recorder, and shutdown.

use std::convert::Infallible;
use std::future::{Future, pending};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, warn};

use crate::model;

/// The path of the prediction endpoint (Paddle Serving's `/{name}/prediction` with name `uci`).
pub const PREDICTION_PATH: &str = "/uci/prediction";

/// The largest request body accepted, in bytes; a larger one gets 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// How long a shutdown waits for requests in flight before it drops their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Binds the demo model server to `addr` (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> io::Result<DemoServer> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    Ok(DemoServer {
        listener,
        local_addr,
        recorder: None,
    })
}

/// A bound demo model server that serves once [`serve`](Self::serve)d or
/// [`spawn`](Self::spawn)ed.
#[derive(Debug)]
pub struct DemoServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    recorder: Option<Recorder>,
}

impl DemoServer {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Makes the server record the requests it receives, and returns a handle that reads them.
    /// Calling it again returns another handle on the same record.
    pub fn recorder(&mut self) -> Recorder {
        self.recorder.get_or_insert_with(Recorder::default).clone()
    }

    /// Serves until the returned future is dropped; dropping it closes every connection.
    pub async fn serve(self) {
        self.serve_with_shutdown(pending()).await;
    }

    /// Serves until `signal` completes, then stops accepting, lets the requests in flight finish
    /// (for up to 5 seconds), closes the connections and returns.
    pub async fn serve_with_shutdown(self, signal: impl Future<Output = ()>) {
        let Self {
            listener,
            local_addr,
            recorder,
        } = self;
        let graceful = GracefulShutdown::new();
        let mut connections = JoinSet::new();
        let mut signal = std::pin::pin!(signal);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let recorder = recorder.clone();
                        let service = service_fn(move |request| handle(request, recorder.clone()));
                        let connection = http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), service);
                        let connection = graceful.watch(connection);
                        connections.spawn(async move {
                            if let Err(err) = connection.await {
                                debug!(%peer, "connection ended: {err}");
                            }
                        });
                    }
                    Err(err) => {
                        // Out of file descriptors and the like: wait a little and go on.
                        warn!(%local_addr, "accept failed: {err}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                () = &mut signal => break,
            }
        }
        drop(listener);
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            warn!(%local_addr, "requests still in flight after the grace period; dropping them");
        }
    }

    /// Serves on a new tokio task. The returned handle shuts the server down when asked, or
    /// stops it at once when dropped.
    pub fn spawn(self) -> DemoHandle {
        let local_addr = self.local_addr;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.serve_with_shutdown(async {
            // An error means the handle was dropped, which aborts this task anyway.
            let _ = stopped.await;
        }));
        DemoHandle {
            local_addr,
            stop: Some(stop),
            task: Some(task),
        }
    }
}

/// A server running on its own task (from [`DemoServer::spawn`]). Dropping it stops the server
/// at once; [`shutdown`](Self::shutdown) stops it gracefully.
#[derive(Debug)]
pub struct DemoHandle {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl DemoHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets the requests in flight finish, and returns once the listener and
    /// every connection are closed.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && let Err(err) = task.await
            && err.is_panic()
        {
            std::panic::resume_unwind(err.into_panic());
        }
    }
}

impl Drop for DemoHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Reads what a server received: a cheap, cloneable handle from [`DemoServer::recorder`].
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    inner: Arc<Mutex<Record>>,
}

#[derive(Debug, Default)]
struct Record {
    last: Option<RecordedRequest>,
    count: u64,
}

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The request method.
    pub method: Method,
    /// The request target as sent: the path with its query, if any (`/uci/prediction?debug=1`).
    pub path: String,
    /// The HTTP version.
    pub version: Version,
    /// The request headers, in the order received.
    pub headers: HeaderMap,
    /// The request body; empty when it could not be read whole (over the limit, cut short).
    pub body: Bytes,
}

impl Recorder {
    /// The last request the server received, if any. A request is recorded once its body is
    /// read, before the server answers it.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.lock().last.clone()
    }

    /// How many requests the server has received.
    pub fn count(&self) -> u64 {
        self.lock().count
    }

    fn record(&self, request: RecordedRequest) {
        let mut record = self.lock();
        record.last = Some(request);
        record.count += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        // The record is plain data, valid even if a holder panicked.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

type Answer = Response<Full<Bytes>>;

async fn handle(
    request: Request<Incoming>,
    recorder: Option<Recorder>,
) -> Result<Answer, Infallible> {
    let (parts, body) = request.into_parts();
    let body = read_body(&parts.headers, body).await;
    if let Some(recorder) = &recorder {
        recorder.record(RecordedRequest {
            method: parts.method.clone(),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_owned(), ToString::to_string),
            version: parts.version,
            headers: parts.headers.clone(),
            body: body.as_ref().map_or_else(|_| Bytes::new(), Clone::clone),
        });
    }
    let answer = if parts.uri.path() != PREDICTION_PATH {
        error(
            StatusCode::NOT_FOUND,
            format!(
                "no such path `{}`: this server answers POST {PREDICTION_PATH}",
                parts.uri.path()
            ),
        )
    } else if parts.method != Method::POST {
        let mut answer = error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "method {} is not allowed on {PREDICTION_PATH}: use POST",
                parts.method
            ),
        );
        answer
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        answer
    } else {
        match body {
            Ok(body) => predict(&body),
            Err(answer) => answer,
        }
    };
    debug!(method = %parts.method, uri = %parts.uri, status = answer.status().as_u16(), "answered");
    Ok(answer)
}

/// Reads the whole body, or returns the answer that says why it could not be.
async fn read_body(headers: &HeaderMap, body: Incoming) -> Result<Bytes, Answer> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {BODY_LIMIT} bytes"),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > BODY_LIMIT as u64) {
        return Err(too_large());
    }
    match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(err) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("could not read the request body: {err}"),
        )),
    }
}

fn predict(body: &[u8]) -> Answer {
    match model::Request::parse(body).and_then(|request| request.answer()) {
        Ok(result) => json_answer(StatusCode::OK, &json!({ "result": result })),
        Err(reason) => error(StatusCode::BAD_REQUEST, reason),
    }
}

/// An error answer in the `{"err_no":..,"err_msg":".."}` envelope, `err_no` being the status.
fn error(status: StatusCode, message: String) -> Answer {
    json_answer(
        status,
        &json!({ "err_no": status.as_u16(), "err_msg": message }),
    )
}

fn json_answer(status: StatusCode, value: &Value) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(value.to_string())));
    *answer.status_mut() = status;
    answer
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    answer
}
