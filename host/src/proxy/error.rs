//! The one place where a failure becomes an HTTP response and a log line that says whose fault
//! it was: the client's (4xx), the upstream's (502/504) or a plugin's (500/503). A plugin's own
//! 401 is a decision, not an error, and never passes through here.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use super::ResponseBody;
use super::path::PathError;
use crate::plugin::CallError;

/// Why a request could not be proxied.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request is malformed in a way the gateway refuses.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The path cannot be made canonical.
    #[error("bad path: {0}")]
    BadPath(#[from] PathError),
    /// The request body is larger than `server.max_body_bytes`.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(u64),
    /// The request body stalled past `server.body_read_timeout_ms`.
    #[error("the request body stalled for {0} ms")]
    BodyTimeout(u64),
    /// No route serves the path.
    #[error("no route for the path")]
    NoRoute,
    /// A plugin failed under a fail-closed policy.
    #[error(transparent)]
    Plugin(#[from] CallError),
    /// The upstream could not be connected to.
    #[error("upstream unreachable: {0}")]
    UpstreamUnreachable(String),
    /// The upstream did not answer in time.
    #[error("upstream timed out after {0} ms")]
    UpstreamTimeout(u64),
    /// The upstream connection failed before a response arrived.
    #[error("upstream failed: {0}")]
    UpstreamFailed(String),
}

/// Whose fault a failure is, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The client sent something the gateway refuses.
    Client,
    /// The upstream is down, slow or broken.
    Upstream,
    /// A plugin failed.
    Plugin,
}

impl ProxyError {
    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) | ProxyError::BadPath(_) => StatusCode::BAD_REQUEST,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::Plugin(CallError::Unavailable { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Plugin(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::UpstreamUnreachable(_) | ProxyError::UpstreamFailed(_) => {
                StatusCode::BAD_GATEWAY
            }
            ProxyError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// Whose fault it is.
    pub fn fault(&self) -> Fault {
        match self {
            ProxyError::BadRequest(_)
            | ProxyError::BadPath(_)
            | ProxyError::NoRoute
            | ProxyError::PayloadTooLarge(_)
            | ProxyError::BodyTimeout(_) => Fault::Client,
            ProxyError::Plugin(_) => Fault::Plugin,
            ProxyError::UpstreamUnreachable(_)
            | ProxyError::UpstreamTimeout(_)
            | ProxyError::UpstreamFailed(_) => Fault::Upstream,
        }
    }

    /// What the client is told. Client faults say exactly what is wrong; upstream and plugin
    /// faults say which kind of failure without revealing the upstream's address or internals.
    fn public_message(&self) -> String {
        match self {
            ProxyError::BadRequest(_)
            | ProxyError::BadPath(_)
            | ProxyError::PayloadTooLarge(_)
            | ProxyError::BodyTimeout(_) => self.to_string(),
            ProxyError::NoRoute => "no route matches the path".into(),
            ProxyError::Plugin(e) => match e {
                CallError::Timeout { plugin, .. } => format!("plugin {plugin} timed out"),
                CallError::Unavailable { plugin, .. } => format!("plugin {plugin} is unavailable"),
                CallError::Trap { plugin, .. } | CallError::Misbehaved { plugin, .. } => {
                    format!("plugin {plugin} failed")
                }
            },
            ProxyError::UpstreamUnreachable(_) | ProxyError::UpstreamFailed(_) => {
                "the upstream could not be reached".into()
            }
            ProxyError::UpstreamTimeout(_) => "the upstream did not answer in time".into(),
        }
    }

    /// Logs the failure with its route and fault, and builds the client's response: the
    /// status and a JSON body `{"message": ...}`.
    pub fn into_response(self, route: Option<&str>) -> Response<ResponseBody> {
        let status = self.status();
        let route = route.unwrap_or("-");
        match self.fault() {
            Fault::Client => {
                tracing::debug!(route, status = status.as_u16(), fault = "client", error = %self, "request refused")
            }
            Fault::Upstream => {
                tracing::warn!(route, status = status.as_u16(), fault = "upstream", error = %self, "upstream failure")
            }
            Fault::Plugin => {
                tracing::error!(route, status = status.as_u16(), fault = "plugin", error = %self, "plugin failure")
            }
        }
        let mut response = json_response(status, &self.public_message());
        if matches!(self, ProxyError::BadRequest(_)) {
            // What follows a malformed request on the connection cannot be trusted to be framed
            // as the client meant: close it after the answer.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// A response with a JSON body `{"message": message}`.
pub fn json_response(status: StatusCode, message: &str) -> Response<ResponseBody> {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut response = Response::new(super::full_body(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
