//! The request path: canonical path, route match, the route's plugin chain on the request,
//! the upstream call, the chain on the response, and the answer. ARCHITECTURE.md draws it.

pub mod body;
pub mod error;
pub mod path;
pub mod upstream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};

use body::{Cutoff, Guarded};
pub use error::{Fault, ProxyError, json_response};
use upstream::{Upstream, UpstreamError};

use crate::config::{Config, RouteConfig};
use crate::logging::ACCESS_TARGET;
use crate::metrics::{Metrics, RouteMetrics};
use crate::plugin::{Chain, RequestHead, RequestInfo, RequestOutcome, ResponseHead, Stream};

/// Errors a response body can end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the gateway sends.
pub type ResponseBody = BoxBody<Bytes, BoxError>;

/// A complete body.
pub fn full_body(bytes: Bytes) -> ResponseBody {
    Full::new(bytes)
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// What the server knows about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The listener address the client connected to.
    pub local: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
}

/// One route, ready to serve.
#[derive(Debug)]
pub struct Route {
    name: Arc<str>,
    prefix: String,
    /// The upstream as configured (`http://host:port`).
    upstream_uri: String,
    upstream: http::uri::Authority,
    /// The `Host` sent upstream, made once: cloning it is a reference count.
    upstream_host: Option<HeaderValue>,
    timeout: Duration,
    idle_timeout: Duration,
    hide_identity: bool,
    chain: Chain,
    connections: Arc<Upstream<Guarded<Incoming>>>,
    metrics: RouteMetrics,
}

impl Route {
    /// The route's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The route's path prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The route's plugin chain.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The upstream as configured (`http://host:port`).
    pub fn upstream(&self) -> &str {
        &self.upstream_uri
    }
}

/// The routes and their plugins: everything a request needs, built from one config.
#[derive(Debug)]
pub struct Gateway {
    /// Longest prefix first, so the first match is the most specific.
    routes: Vec<Route>,
    max_body: u64,
    body_idle: Duration,
    next_request: AtomicU64,
    request_id_prefix: u32,
    metrics: Arc<Metrics>,
    access_log: bool,
}

/// What the access log and the metrics learn about a request as it goes.
#[derive(Debug, Default)]
struct Trace<'g> {
    route: Option<&'g Route>,
    path: Option<String>,
    upstream: Option<Duration>,
    /// The plugin that answered the request (or replaced the upstream's response).
    answered_by: Option<Arc<str>>,
    consumer: Option<HeaderValue>,
}

/// The forwarding headers the gateway sets, named once (`from_static` is `const`: no lookup at
/// run time).
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Who the authenticating plugin said the consumer is (key-auth and jwt-auth set it upstream).
const CONSUMER_HEADER: &str = "x-consumer-username";

/// Headers that describe one connection, not the message (RFC 9110 7.6.1), and
/// `Proxy-Authenticate`, this hop's challenge; never forwarded. As text: a name's text is compared
/// length first, a third of the instructions of comparing `HeaderName`s.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Removes hop-by-hop headers and every header the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Runs four times per request, and most messages carry none of these: one pass over the
    // names spares nine hashed removals.
    if !headers
        .keys()
        .any(|name| HOP_BY_HOP.contains(&name.as_str()))
    {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in &named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

impl Gateway {
    /// The gateway for `config`, with `chains[i]` the plugin chain of `config.routes[i]`
    /// (built by [`crate::reload`], which owns loading plugins), counting into `metrics`.
    pub fn new(config: &Config, chains: Vec<Chain>, metrics: &Arc<Metrics>) -> Gateway {
        let mut routes: Vec<Route> = config
            .routes
            .iter()
            .zip(chains)
            .map(|(route, chain)| Route::new(route, chain, metrics))
            .collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        let mut seed = [0u8; 4];
        // A per-process prefix keeps request ids unique across restarts; without the OS source
        // the ids are still unique within the process.
        let _ = getrandom::fill(&mut seed);
        Gateway {
            routes,
            max_body: config.server.max_body_bytes,
            body_idle: Duration::from_millis(config.server.body_read_timeout_ms),
            next_request: AtomicU64::new(1),
            request_id_prefix: u32::from_le_bytes(seed),
            metrics: metrics.clone(),
            access_log: config.access_log.enabled,
        }
    }

    /// What the gateway counts.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The routes, most specific first.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    fn route_for(&self, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| path::prefix_matches(&r.prefix, path))
    }

    /// Serves one request. Never fails: every failure is turned into a response here.
    pub async fn handle(&self, req: Request<Incoming>, conn: ConnInfo) -> Response<ResponseBody> {
        let start = Instant::now();
        let method = req.method().clone();
        let version = req.version();
        let mut trace = Trace::default();
        let (response, error) = match self.proxy(req, conn, &mut trace).await {
            Ok(response) => (response, None),
            Err(e) => {
                let message = e.to_string();
                let route = trace.route.map(|r| &*r.name);
                (e.into_response(route), Some(message))
            }
        };
        let elapsed = start.elapsed();
        let status = response.status().as_u16();
        match trace.route {
            Some(route) => route.metrics.answered(status, elapsed),
            None => self.metrics.unrouted(status),
        }
        if self.access_log {
            // The path is the canonical one, without its query (which may carry a key); no
            // header value is logged but the consumer's name.
            tracing::info!(
                target: ACCESS_TARGET,
                client = %conn.peer.ip(),
                method = %method,
                path = trace.path.as_deref().unwrap_or("-"),
                protocol = ?version,
                route = trace.route.map_or("-", |r| &*r.name),
                status,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                upstream_ms = trace.upstream.map(|d| d.as_secs_f64() * 1000.0),
                consumer = trace.consumer.as_ref().and_then(|v| v.to_str().ok()),
                plugin = trace.answered_by.as_deref(),
                error,
            );
        }
        response
    }

    async fn proxy<'g>(
        &'g self,
        req: Request<Incoming>,
        conn: ConnInfo,
        trace: &mut Trace<'g>,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        let (parts, body) = req.into_parts();
        if parts.method == http::Method::CONNECT {
            return Err(ProxyError::BadRequest("CONNECT is not supported"));
        }
        let path = path::normalize(parts.uri.path())?;
        // Kept for the access log and for mapping the upstream's `Location` back.
        trace.path = Some(path.clone());
        let route = self.route_for(&path).ok_or(ProxyError::NoRoute)?;
        trace.route = Some(route);
        // A declared length over the limit is refused before anything runs; an undeclared one
        // is cut off by the guard as it streams.
        let declared = body.size_hint().exact().or_else(|| {
            parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
        });
        if declared.is_some_and(|n| n > self.max_body) {
            return Err(ProxyError::PayloadTooLarge(self.max_body));
        }

        let authority = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let path_and_query = match parts.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers);
        headers.remove(header::HOST);
        let id = request_id(
            self.request_id_prefix,
            self.next_request.fetch_add(1, Ordering::Relaxed),
        );
        // The id is all hex digits: a valid header value.
        let id_header = HeaderValue::from_str(&id).ok();
        let mut stream = Box::new(Stream {
            request: RequestHead {
                method: parts.method,
                path: path_and_query,
                authority,
                scheme: conn.scheme,
                headers,
            },
            response: None,
            local_response: None,
            info: Some(Arc::new(RequestInfo {
                route: route.name.clone(),
                source: conn.peer,
                destination: conn.local,
                protocol: if parts.version == Version::HTTP_2 {
                    "HTTP/2"
                } else {
                    "HTTP/1.1"
                },
                id,
            })),
            request_end_of_stream: body.is_end_stream(),
        });

        let (mut run, outcome) = route.chain.on_request(&mut stream);
        trace.consumer = stream.request.headers.get(CONSUMER_HEADER).cloned();
        // Everything after the request phase runs in one block, so that however it ends, every
        // plugin context still open sees the end of the request (on_done, on_log): a failure
        // shows as its error status.
        let result = async {
            if outcome? == RequestOutcome::Answered {
                // The answering plugin and those before it see the answer as the response, and may
                // change its head or replace it, as they may an upstream's.
                let local = stream.local_response.take().expect("answered");
                tracing::debug!(plugin = %local.plugin, status = local.status.as_u16(), details = %local.details, "plugin answered the request");
                trace.answered_by = Some(local.plugin.clone());
                stream.response = Some(ResponseHead {
                    status: local.status,
                    headers: local.headers,
                });
                run.on_response(&mut stream, true)?;
                if let Some(local) = &stream.local_response {
                    trace.answered_by = Some(local.plugin.clone());
                }
                return Ok(full_body(local.body));
            }

            let (body, tripwire) = Guarded::new(body, Some(self.max_body), self.body_idle);
            let upstream_req = route.upstream_request(&mut stream, conn, id_header, body)?;
            let sent_at = Instant::now();
            let sent =
                tokio::time::timeout(route.timeout, route.connections.send(upstream_req)).await;
            let upstream_time = sent_at.elapsed();
            trace.upstream = Some(upstream_time);
            route.metrics.upstream(upstream_time);
            // A request body cut off by its guard is the client's fault, whatever the client
            // library made of it.
            if let Some(cutoff) = tripwire.get() {
                return Err(match *cutoff {
                    Cutoff::TooLarge(limit) => ProxyError::PayloadTooLarge(limit),
                    Cutoff::Idle(d) => ProxyError::BodyTimeout(d.as_millis() as u64),
                });
            }
            let upstream_res = match sent {
                Err(_) => return Err(ProxyError::UpstreamTimeout(route.timeout.as_millis() as u64)),
                Ok(Err(e @ UpstreamError::Connect { .. })) => {
                    return Err(ProxyError::UpstreamUnreachable(e.to_string()));
                }
                Ok(Err(e)) => return Err(ProxyError::UpstreamFailed(e.to_string())),
                Ok(Ok(res)) => res,
            };
            let (parts, body) = upstream_res.into_parts();
            let mut headers = parts.headers;
            strip_hop_by_hop(&mut headers);
            if route.hide_identity {
                // The upstream's identity and internal layout stay behind the gateway.
                headers.remove(header::SERVER);
                headers.remove(header::VIA);
                let public = trace.path.as_deref().unwrap_or("/");
                let internal = stream.request.path.split('?').next().unwrap_or("/");
                for name in [header::LOCATION, header::CONTENT_LOCATION] {
                    let mapped = headers.get(&name).and_then(|v| {
                        let location = v.to_str().ok()?;
                        public_location(location, &route.upstream, public, internal)
                    });
                    if let Some(v) = mapped.and_then(|m| HeaderValue::from_str(&m).ok()) {
                        headers.insert(name, v);
                    }
                }
            }
            let end_of_stream = body.is_end_stream();
            stream.response = Some(ResponseHead {
                status: parts.status,
                headers,
            });
            run.on_response(&mut stream, end_of_stream)?;
            if let Some(local) = &stream.local_response {
                trace.answered_by = Some(local.plugin.clone());
            }
            // A stream that stalls past the route's idle timeout ends broken for the client.
            let (body, _) = Guarded::new(body, None, route.idle_timeout);
            let body = body.map_err(|e| Box::new(e) as BoxError).boxed();
            Ok(body)
        }
        .await;
        if let Err(e) = &result {
            stream.local_response = None;
            stream.response = Some(ResponseHead {
                status: e.status(),
                headers: HeaderMap::new(),
            });
        }
        run.finish(&mut stream);
        // Built after the plugins' last look at the request (on_done, on_log), so the head is
        // moved into the response instead of copied.
        result.map(|body| respond(&mut stream, body))
    }
}

/// The response the client gets: the answer a plugin gave in the response phase if there is
/// one, else the response head as the plugins left it with `body`. Takes the head out of
/// `stream`, which is done with.
fn respond(stream: &mut Stream, body: ResponseBody) -> Response<ResponseBody> {
    let (status, headers, body) = match stream.local_response.take() {
        Some(local) => {
            tracing::debug!(plugin = %local.plugin, status = local.status.as_u16(), details = %local.details, "plugin replaced the response");
            (local.status, local.headers, full_body(local.body))
        }
        None => {
            let head = stream
                .response
                .take()
                .expect("response head set before respond");
            (head.status, head.headers, body)
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    // Plugins may have added connection-level headers back.
    strip_hop_by_hop(response.headers_mut());
    response
}

/// The RFC 7239 `Forwarded` element for this hop: `for` the peer, `proto`, and `host` when the
/// client named one.
/// `client` is the peer's IP as text, formatted once for this and the `X-Real-IP` headers.
fn forwarded(conn: ConnInfo, client: &str, authority: &str) -> String {
    // Pushed piece by piece: this runs on every request, and `format!` cost more than the rest.
    let mut value = String::with_capacity(32 + client.len() + authority.len());
    value.push_str("for=");
    if conn.peer.is_ipv6() {
        value.push_str("\"[");
        value.push_str(client);
        value.push_str("]\"");
    } else {
        value.push_str(client);
    }
    value.push_str(";proto=");
    value.push_str(conn.scheme);
    // An authority holds no `"` or `\\` (HeaderValue and URI parsing checked it), so quoting is
    // enough.
    if !authority.is_empty() && !authority.contains(['"', '\\']) {
        value.push_str(";host=\"");
        value.push_str(authority);
        value.push('"');
    }
    value
}

/// An IP address as text, as `Display` writes it. IPv4 is written here: through `fmt` it cost
/// about 2k instructions per request, a twentieth of the gateway's own work.
fn ip_text(ip: std::net::IpAddr) -> String {
    let std::net::IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

/// The request id: the process's prefix and the request's number, as 24 hex digits.
fn request_id(prefix: u32, number: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Written as bytes: pushing 24 `char`s checked the capacity and encoded each one.
    let value = (u128::from(prefix) << 64) | u128::from(number);
    let mut id = vec![0u8; 24];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = HEX[((value >> (4 * (23 - i))) & 0xf) as usize];
    }
    String::from_utf8(id).expect("hex digits are ASCII")
}

/// Maps a `Location` the upstream sent onto the public side, or `None` to leave it as is.
///
/// A URL on the upstream's own address loses its scheme and authority (the client cannot reach
/// that address, and must not learn it). Its path, or a path-only `Location`, is mapped from the
/// upstream's layout onto the public one the way this request was: `public` and `internal` are
/// the request's public and upstream paths, whose common trailing segments tell the two
/// prefixes apart (`/serving-uci/uci/prediction` and `/uci/prediction` give `/serving-uci` and
/// ``), so `/uci/other` becomes `/serving-uci/uci/other`. Other locations (other hosts, relative
/// references) are left alone.
fn public_location(
    location: &str,
    upstream: &http::uri::Authority,
    public: &str,
    internal: &str,
) -> Option<String> {
    let path = if location.starts_with('/') && !location.starts_with("//") {
        location
    } else {
        let uri: Uri = location.parse().ok()?;
        let scheme = uri.scheme_str()?;
        let authority = uri.authority()?;
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let port = |a: &http::uri::Authority| a.port_u16().unwrap_or(default_port);
        if !authority.host().eq_ignore_ascii_case(upstream.host())
            || port(authority) != upstream.port_u16().unwrap_or(80)
        {
            return None;
        }
        let start = location.find(authority.as_str())? + authority.as_str().len();
        match &location[start..] {
            "" => "/",
            rest if rest.starts_with('/') => rest,
            rest => return Some(format!("/{rest}")),
        }
    };
    let (public_prefix, internal_prefix) = prefixes(public, internal);
    let (location_path, rest) = match path.find(['?', '#']) {
        Some(i) => path.split_at(i),
        None => (path, ""),
    };
    let mapped = match location_path.strip_prefix(internal_prefix) {
        Some(tail) if tail.is_empty() || tail.starts_with('/') || internal_prefix.is_empty() => {
            let tail = if tail.is_empty() && public_prefix.is_empty() {
                "/"
            } else {
                tail
            };
            format!("{public_prefix}{tail}{rest}")
        }
        _ => path.to_string(),
    };
    (mapped != location).then_some(mapped)
}

/// The prefixes of `public` and `internal` before their longest common run of trailing whole
/// segments; empty strings when nothing was rewritten.
fn prefixes<'a>(public: &'a str, internal: &'a str) -> (&'a str, &'a str) {
    let (mut p, mut i) = (public.len(), internal.len());
    loop {
        let ps = public[..p].rfind('/');
        let is = internal[..i].rfind('/');
        match (ps, is) {
            (Some(ps), Some(is)) if public[ps..p] == internal[is..i] && p > 0 && i > 0 => {
                p = ps;
                i = is;
            }
            _ => {
                // A root on either side is the empty prefix (`/serving-uci` ↔ `/`).
                let root = |s: &'a str| if s == "/" { "" } else { s };
                return (root(&public[..p]), root(&internal[..i]));
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Route {
    fn new(config: &RouteConfig, chain: Chain, metrics: &Arc<Metrics>) -> Route {
        let upstream = config
            .upstream_uri()
            .authority()
            .cloned()
            .expect("validated upstream has an authority");
        let connections =
            Upstream::new(&upstream, Duration::from_millis(config.connect_timeout_ms));
        let name: Arc<str> = config.name.as_str().into();
        let observed = chain
            .plugins()
            .iter()
            .map(|p| metrics.plugin(&name, p.name()))
            .collect();
        Route {
            metrics: metrics.route(&name),
            name,
            prefix: config.prefix.clone(),
            upstream_uri: config.upstream.clone(),
            upstream_host: HeaderValue::from_str(upstream.as_str()).ok(),
            upstream,
            timeout: Duration::from_millis(config.timeout_ms),
            idle_timeout: Duration::from_millis(config.idle_timeout_ms),
            hide_identity: config.hide_upstream_identity,
            chain: chain.observed(observed),
            connections: Arc::new(connections),
        }
    }

    /// The request sent upstream: the head as the plugins left it, with hop-by-hop headers
    /// removed and the forwarding headers set from what the gateway saw.
    fn upstream_request(
        &self,
        stream: &mut Stream,
        conn: ConnInfo,
        id: Option<HeaderValue>,
        body: Guarded<Incoming>,
    ) -> Result<Request<Guarded<Incoming>>, ProxyError> {
        let head = &mut stream.request;
        // The origin form (`/path?query`): the connection is to the upstream already, and `Host`
        // names it.
        let uri = Uri::from(
            http::uri::PathAndQuery::try_from(head.path.as_str()).map_err(|_| {
                ProxyError::BadRequest("the rewritten path is not a valid URI path")
            })?,
        );
        // Plugins that may read the request headers again (response phase, on_done, on_log)
        // get a copy. When none may, nothing reads them after this, and they move.
        let mut headers = if self.chain.reads_request_later() {
            head.headers.clone()
        } else {
            std::mem::take(&mut head.headers)
        };
        // Plugins may have added connection-level headers back.
        strip_hop_by_hop(&mut headers);
        // Room for the seven headers below at once, instead of growing (and rehashing) twice.
        headers.reserve(7);
        if let Some(host) = &self.upstream_host {
            headers.insert(header::HOST, host.clone());
        }
        // Set from the real peer, replacing whatever the client claimed in any of the three
        // conventions. The texts built here become header values without being copied again.
        let client = ip_text(conn.peer.ip());
        let forwarded = forwarded(conn, &client, &head.authority);
        if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(client)) {
            headers.insert(X_REAL_IP, v.clone());
            headers.insert(X_FORWARDED_FOR, v);
        }
        if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(forwarded)) {
            headers.insert(header::FORWARDED, v);
        }
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(conn.scheme));
        match HeaderValue::from_str(&head.authority) {
            Ok(v) if !head.authority.is_empty() => {
                headers.insert(X_FORWARDED_HOST, v);
            }
            _ => {
                headers.remove(X_FORWARDED_HOST);
            }
        }
        if let Some(v) = id {
            headers.insert(X_REQUEST_ID, v);
        }
        let mut req = Request::new(body);
        *req.method_mut() = head.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(location: &str, public: &str, internal: &str) -> Option<String> {
        let upstream: http::uri::Authority = "127.0.0.1:9393".parse().unwrap();
        public_location(location, &upstream, public, internal)
    }

    #[test]
    fn prefixes_are_what_precedes_the_common_trailing_segments() {
        assert_eq!(
            prefixes("/serving-uci/uci/prediction", "/uci/prediction"),
            ("/serving-uci", "")
        );
        assert_eq!(prefixes("/a/b", "/a/b"), ("", ""));
        assert_eq!(prefixes("/serving-uci", "/"), ("/serving-uci", ""));
        assert_eq!(prefixes("/", "/v1"), ("", "/v1"));
        assert_eq!(prefixes("/p/x/y", "/q/r/x/y"), ("/p", "/q/r"));
        assert_eq!(prefixes("/a/b", "/c/d"), ("/a/b", "/c/d"));
    }

    #[test]
    fn the_upstreams_locations_are_mapped_onto_the_public_path() {
        let (public, internal) = ("/serving-uci/uci/prediction", "/uci/prediction");
        // The upstream's own address never reaches the client.
        assert_eq!(
            map("http://127.0.0.1:9393/uci/other?x=1", public, internal).as_deref(),
            Some("/serving-uci/uci/other?x=1")
        );
        assert_eq!(
            map("HTTP://127.0.0.1:9393", public, internal).as_deref(),
            Some("/serving-uci/")
        );
        assert_eq!(
            map("/uci/other#frag", public, internal).as_deref(),
            Some("/serving-uci/uci/other#frag")
        );
        // Elsewhere: left alone.
        assert_eq!(map("https://auth.example/login", public, internal), None);
        assert_eq!(map("http://127.0.0.1:9394/uci", public, internal), None);
        assert_eq!(map("other", public, internal), None);
        assert_eq!(map("//cdn.example/x", public, internal), None);
        // A request that was not rewritten keeps its paths; only the address goes.
        assert_eq!(map("/a/c", "/a/b", "/a/b"), None);
        assert_eq!(
            map("http://127.0.0.1:9393/a/c", "/a/b", "/a/b").as_deref(),
            Some("/a/c")
        );
        // Rewritten to a different internal prefix: mapped back under it only.
        assert_eq!(map("/q/r/z", "/p/x/y", "/q/r/x/y").as_deref(), Some("/p/z"));
        assert_eq!(map("/q/s", "/p/x/y", "/q/r/x/y"), None);
        assert_eq!(
            map("/login", "/serving-uci", "/").as_deref(),
            Some("/serving-uci/login")
        );
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("connection", "x-secret, Keep-Alive"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("proxy-authenticate", "Basic"),
            ("x-kept", "2"),
        ] {
            headers.append(k, HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-kept"]);

        // Each one alone is found and removed.
        for name in HOP_BY_HOP {
            let mut one = HeaderMap::new();
            one.append(HeaderName::from_static(name), HeaderValue::from_static("x"));
            one.append("x-kept", HeaderValue::from_static("2"));
            strip_hop_by_hop(&mut one);
            assert!(one.get(name).is_none(), "{name}");
            assert_eq!(one.len(), 1, "{name}");
        }

        // Without any of them, nothing changes.
        let mut plain = HeaderMap::new();
        plain.append("x-a", HeaderValue::from_static("1"));
        plain.append("content-type", HeaderValue::from_static("text/plain"));
        let before = plain.clone();
        strip_hop_by_hop(&mut plain);
        assert_eq!(plain, before);
    }

    #[test]
    fn forwarded_names_the_peer_the_scheme_and_the_host() {
        let conn = |peer: &str| ConnInfo {
            peer: peer.parse().unwrap(),
            local: "127.0.0.1:8443".parse().unwrap(),
            scheme: "https",
        };
        assert_eq!(
            forwarded(conn("10.0.0.7:5000"), "10.0.0.7", "api.example:8443"),
            "for=10.0.0.7;proto=https;host=\"api.example:8443\""
        );
        assert_eq!(
            forwarded(conn("[::1]:5000"), "::1", ""),
            "for=\"[::1]\";proto=https"
        );
    }

    #[test]
    fn ip_text_is_what_display_writes() {
        use std::net::{IpAddr, Ipv4Addr};
        // Every octet value in every position, and the extremes.
        for v in 0..=255u8 {
            for octets in [
                [v, 0, 0, 0],
                [1, v, 2, 3],
                [10, 20, v, 30],
                [255, 255, 255, v],
            ] {
                let ip = IpAddr::V4(Ipv4Addr::from(octets));
                assert_eq!(ip_text(ip), ip.to_string());
            }
        }
        for text in ["::1", "2001:db8::7", "::ffff:10.0.0.1", "fe80::1:2:3:4"] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    #[test]
    fn request_ids_are_the_prefix_and_the_number_in_hex() {
        for (prefix, number) in [
            (0, 0),
            (0xdead_beef, 1),
            (u32::MAX, u64::MAX),
            (7, 0x1234_abcd),
        ] {
            assert_eq!(
                request_id(prefix, number),
                format!("{prefix:08x}{number:016x}")
            );
        }
    }
}
