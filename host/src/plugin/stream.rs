//! What a plugin sees of one request: the request and response heads with their pseudo-headers,
//! the local response a plugin may send, and the facts exposed as properties.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};

/// The request as plugins see and change it. `path` is the normalised path plus query: the
/// `:path` pseudo-header.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// `:method`.
    pub method: Method,
    /// `:path`: the canonical path, then `?query` if any.
    pub path: String,
    /// `:authority`: the host the client asked for.
    pub authority: String,
    /// `:scheme`: `http` or `https`.
    pub scheme: &'static str,
    /// Regular headers (names lower-case).
    pub headers: HeaderMap,
}

impl Default for RequestHead {
    fn default() -> Self {
        RequestHead {
            method: Method::GET,
            path: "/".into(),
            authority: String::new(),
            scheme: "http",
            headers: HeaderMap::new(),
        }
    }
}

/// The response as plugins see and change it.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// `:status`.
    pub status: StatusCode,
    /// Regular headers.
    pub headers: HeaderMap,
}

/// A response a plugin sent itself (`proxy_send_local_response`).
#[derive(Debug, Clone)]
pub struct LocalResponse {
    /// Status code.
    pub status: StatusCode,
    /// Headers the plugin gave.
    pub headers: HeaderMap,
    /// Body the plugin gave.
    pub body: Bytes,
    /// The plugin's reason ("status code details"), for the log only.
    pub details: String,
    /// Name of the plugin that answered.
    pub plugin: Arc<str>,
}

/// Facts about the request that plugins read as properties.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// Name of the matched route.
    pub route: Arc<str>,
    /// The client's address.
    pub source: SocketAddr,
    /// The gateway address the client connected to.
    pub destination: SocketAddr,
    /// `HTTP/1.1` or `HTTP/2`.
    pub protocol: &'static str,
    /// The request id (also sent upstream as `x-request-id`).
    pub id: String,
}

/// One request's state across the plugin calls made for it.
#[derive(Debug, Default)]
pub struct Stream {
    /// The request head; plugins may change it during the request-headers phase.
    pub request: RequestHead,
    /// The response head, once there is one.
    pub response: Option<ResponseHead>,
    /// Set when a plugin answered the request itself.
    pub local_response: Option<LocalResponse>,
    /// Facts for properties.
    pub info: Option<Arc<RequestInfo>>,
    /// Whether the request has no body (the `end_of_stream` flag of the request-headers call).
    pub request_end_of_stream: bool,
}

impl Stream {
    /// A stream with nothing in it. Unlike `Stream::default` it does not allocate
    /// (`RequestHead::default` has a `/` path).
    pub(crate) fn empty() -> Stream {
        Stream {
            request: RequestHead {
                method: Method::GET,
                path: String::new(),
                authority: String::new(),
                scheme: "http",
                headers: HeaderMap::new(),
            },
            response: None,
            local_response: None,
            info: None,
            request_end_of_stream: false,
        }
    }
}

/// Most headers a plugin may leave in one map. Far above any real request (the server accepts
/// `server.max_headers`), far below what would let a plugin make the host allocate without end.
pub(crate) const MAX_PAIRS: usize = 1024;

/// Most bytes of names and values a plugin may leave in one map.
pub(crate) const MAX_MAP_BYTES: usize = 256 * 1024;

fn map_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum()
}

/// Why a header map edit was refused; maps to the ABI's BadArgument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadHeader;

/// A view of one header map, request or response, with its pseudo-headers.
pub(crate) enum MapMut<'a> {
    Request(&'a mut RequestHead),
    Response(&'a mut ResponseHead),
}

fn header_name(name: &[u8]) -> Result<HeaderName, BadHeader> {
    HeaderName::from_bytes(name).map_err(|_| BadHeader)
}

/// Most names one instance keeps parsed in its [`HeaderNames`].
const NAMES_KEPT: usize = 32;

/// Longest name kept parsed: real header names are far shorter, and a plugin must not make the
/// host hold its 64 KiB names.
const NAME_KEPT_LEN: usize = 64;

/// The header names a plugin instance has used, parsed, keyed by the exact bytes it passed. A
/// plugin reads and writes the same few names on every request, and parsing one (checking it,
/// lower-casing it, matching it against the standard names, copying a custom one) cost more
/// than the map operation it was for. Looked up by a linear scan: a plugin uses a handful.
#[derive(Default)]
pub(crate) struct HeaderNames {
    kept: Vec<(Box<[u8]>, HeaderName)>,
}

impl HeaderNames {
    /// `name` parsed, or `BadHeader` when it is not a valid header name. Valid names up to
    /// [`NAME_KEPT_LEN`] bytes are kept, the last [`NAMES_KEPT`] of them.
    fn get(&mut self, name: &[u8]) -> Result<Cow<'_, HeaderName>, BadHeader> {
        let found = self.kept.iter().position(|(bytes, _)| **bytes == *name);
        let index = match found {
            Some(index) => index,
            None => {
                let parsed = header_name(name)?;
                if name.len() > NAME_KEPT_LEN {
                    return Ok(Cow::Owned(parsed));
                }
                if self.kept.len() == NAMES_KEPT {
                    // Evict the oldest; a plugin cycling through more names than this pays a
                    // parse per use, as before there was a cache.
                    self.kept.remove(0);
                }
                self.kept.push((name.into(), parsed));
                self.kept.len() - 1
            }
        };
        Ok(Cow::Borrowed(&self.kept[index].1))
    }
}

fn header_value(value: &[u8]) -> Result<HeaderValue, BadHeader> {
    HeaderValue::from_bytes(value).map_err(|_| BadHeader)
}

fn utf8(value: &[u8]) -> Result<&str, BadHeader> {
    std::str::from_utf8(value).map_err(|_| BadHeader)
}

impl MapMut<'_> {
    fn headers(&self) -> &HeaderMap {
        match self {
            MapMut::Request(r) => &r.headers,
            MapMut::Response(r) => &r.headers,
        }
    }

    fn headers_mut(&mut self) -> &mut HeaderMap {
        match self {
            MapMut::Request(r) => &mut r.headers,
            MapMut::Response(r) => &mut r.headers,
        }
    }

    /// The pseudo-headers of this map, in the order proxies list them.
    fn pseudo(&self) -> Vec<(&'static str, String)> {
        match self {
            MapMut::Request(r) => vec![
                (":authority", r.authority.clone()),
                (":path", r.path.clone()),
                (":method", r.method.as_str().to_string()),
                (":scheme", r.scheme.to_string()),
            ],
            MapMut::Response(r) => vec![(":status", r.status.as_u16().to_string())],
        }
    }

    /// Every pair, pseudo-headers first. Values of repeated headers come as separate pairs.
    pub(crate) fn pairs(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = self
            .pseudo()
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.into_bytes()))
            .collect();
        out.extend(
            self.headers()
                .iter()
                .map(|(k, v)| (k.as_str().as_bytes().to_vec(), v.as_bytes().to_vec())),
        );
        out
    }

    /// The value of `name` (case-insensitive); repeated headers are joined with `,`.
    #[cfg(test)]
    pub(crate) fn get(&self, name: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.get_into(name, &mut HeaderNames::default(), &mut out)
            .then_some(out)
    }

    /// Appends the value of `name` to `out`, as [`MapMut::get`] gives it; false when there is
    /// none. Regular names come parsed from `names`, pseudo-headers without formatting the
    /// others: this runs for every header a plugin reads.
    pub(crate) fn get_into(&self, name: &[u8], names: &mut HeaderNames, out: &mut Vec<u8>) -> bool {
        if name.first() == Some(&b':') {
            let value: &str = match (self, name) {
                (MapMut::Request(r), b":authority") => &r.authority,
                (MapMut::Request(r), b":path") => &r.path,
                (MapMut::Request(r), b":method") => r.method.as_str(),
                (MapMut::Request(r), b":scheme") => r.scheme,
                (MapMut::Response(r), b":status") => r.status.as_str(),
                _ => return false,
            };
            out.extend_from_slice(value.as_bytes());
            return true;
        }
        // An invalid name is in no map.
        let Ok(name) = names.get(name) else {
            return false;
        };
        let mut values = self.headers().get_all(&*name).iter();
        let Some(first) = values.next() else {
            return false;
        };
        out.extend_from_slice(first.as_bytes());
        for v in values {
            out.push(b',');
            out.extend_from_slice(v.as_bytes());
        }
        true
    }

    fn set_pseudo(&mut self, name: &[u8], value: &[u8]) -> Result<(), BadHeader> {
        let value = utf8(value)?;
        match (self, name) {
            (MapMut::Request(r), b":path") => {
                // The upstream request line is built from it: it must be a valid origin-form
                // whose path is already canonical, so a plugin cannot send `..`, `//` or an
                // encoded `/` upstream past the gateway's normalisation.
                let path = value.split('?').next().unwrap_or_default();
                // The common case, a path of unreserved characters and `/` with nothing to
                // normalise and no query, is recognised in one pass without a copy: those
                // characters are all valid in a `PathAndQuery`.
                let plain = path.len() == value.len()
                    && crate::proxy::path::is_plainly_canonical(path.as_bytes());
                if !plain
                    && (value.parse::<http::uri::PathAndQuery>().is_err()
                        || crate::proxy::path::normalize(path).as_deref() != Ok(path))
                {
                    return Err(BadHeader);
                }
                // Into the old path's buffer: a rewritten path is rarely longer.
                r.path.clear();
                r.path.push_str(value);
            }
            // The scheme is the connection's: writing back the value read is allowed (SDKs
            // read all headers and set them back), changing it is not.
            (MapMut::Request(r), b":scheme") if value == r.scheme => {}
            (MapMut::Request(r), b":method") => {
                r.method = Method::from_bytes(value.as_bytes()).map_err(|_| BadHeader)?;
            }
            (MapMut::Request(r), b":authority") => {
                value
                    .parse::<http::uri::Authority>()
                    .map_err(|_| BadHeader)?;
                r.authority = value.to_string();
            }
            (MapMut::Response(r), b":status") => {
                let code: u16 = value.parse().map_err(|_| BadHeader)?;
                r.status = match StatusCode::from_u16(code) {
                    Ok(s) if (200..=599).contains(&code) => s,
                    _ => return Err(BadHeader),
                };
            }
            // `:scheme` is the connection's and other pseudo-headers do not exist.
            _ => return Err(BadHeader),
        }
        Ok(())
    }

    /// Sets `name` to `value`, replacing every earlier value.
    pub(crate) fn replace(
        &mut self,
        name: &[u8],
        value: &[u8],
        names: &mut HeaderNames,
    ) -> Result<(), BadHeader> {
        if name.first() == Some(&b':') {
            return self.set_pseudo(name, value);
        }
        let (name, value) = (names.get(name)?.into_owned(), header_value(value)?);
        self.check_room(name.as_str().len() + value.len())?;
        self.headers_mut()
            .try_insert(name, value)
            .map_err(|_| BadHeader)?;
        Ok(())
    }

    /// Adds a value for `name`, keeping earlier ones.
    pub(crate) fn add(
        &mut self,
        name: &[u8],
        value: &[u8],
        names: &mut HeaderNames,
    ) -> Result<(), BadHeader> {
        if name.first() == Some(&b':') {
            return self.set_pseudo(name, value);
        }
        let (name, value) = (names.get(name)?.into_owned(), header_value(value)?);
        self.check_room(name.as_str().len() + value.len())?;
        self.headers_mut()
            .try_append(name, value)
            .map_err(|_| BadHeader)?;
        Ok(())
    }

    /// Removes every value of `name`. Pseudo-headers cannot be removed: a request without
    /// `:path` or a response without `:status` cannot be forwarded (Envoy crashed on exactly that).
    pub(crate) fn remove(&mut self, name: &[u8], names: &mut HeaderNames) -> Result<(), BadHeader> {
        if name.first() == Some(&b':') {
            return Err(BadHeader);
        }
        // An invalid name is in no map, so there is nothing to remove.
        if let Ok(name) = names.get(name) {
            self.headers_mut().remove(&*name);
        }
        Ok(())
    }

    /// Replaces the whole map. Pseudo-headers in `pairs` set the pseudo-header; those missing
    /// keep their value.
    /// All or nothing: a refused pair leaves the map as it was.
    pub(crate) fn set_all(&mut self, pairs: &[(&[u8], &[u8])]) -> Result<(), BadHeader> {
        let bytes: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
        if pairs.len() > MAX_PAIRS || bytes > MAX_MAP_BYTES {
            return Err(BadHeader);
        }
        let mut headers = HeaderMap::try_with_capacity(pairs.len()).map_err(|_| BadHeader)?;
        for (k, v) in pairs.iter().filter(|(k, _)| k.first() != Some(&b':')) {
            headers
                .try_append(header_name(k)?, header_value(v)?)
                .map_err(|_| BadHeader)?;
        }
        // Pseudo-headers are applied to a copy of the head, committed only if all are good.
        let pseudo = pairs.iter().filter(|(k, _)| k.first() == Some(&b':'));
        match self {
            MapMut::Request(r) => {
                // The old headers are replaced whole, so only the pseudo-header fields are copied.
                let mut head = RequestHead {
                    method: r.method.clone(),
                    path: r.path.clone(),
                    authority: r.authority.clone(),
                    scheme: r.scheme,
                    headers: HeaderMap::new(),
                };
                for (k, v) in pseudo {
                    MapMut::Request(&mut head).set_pseudo(k, v)?;
                }
                head.headers = headers;
                **r = head;
            }
            MapMut::Response(r) => {
                let mut head = ResponseHead {
                    status: r.status,
                    headers: HeaderMap::new(),
                };
                for (k, v) in pseudo {
                    MapMut::Response(&mut head).set_pseudo(k, v)?;
                }
                head.headers = headers;
                **r = head;
            }
        }
        Ok(())
    }

    /// Refuses an edit that would take the map past [`MAX_PAIRS`] or [`MAX_MAP_BYTES`].
    fn check_room(&self, extra_bytes: usize) -> Result<(), BadHeader> {
        let headers = self.headers();
        if headers.len() >= MAX_PAIRS || map_bytes(headers) + extra_bytes > MAX_MAP_BYTES {
            return Err(BadHeader);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RequestHead {
        let mut r = RequestHead {
            method: Method::POST,
            path: "/a?b=1".into(),
            authority: "gw".into(),
            scheme: "https",
            headers: HeaderMap::new(),
        };
        r.headers.append("apikey", HeaderValue::from_static("k"));
        r.headers.append("x-a", HeaderValue::from_static("1"));
        r.headers.append("x-a", HeaderValue::from_static("2"));
        r
    }

    #[test]
    fn pseudo_headers_are_readable_and_checked_when_set() {
        let mut r = request();
        let mut m = MapMut::Request(&mut r);
        let mut n = HeaderNames::default();
        assert_eq!(m.get(b":path").unwrap(), b"/a?b=1");
        assert_eq!(m.get(b":method").unwrap(), b"POST");
        assert_eq!(m.get(b"X-A").unwrap(), b"1,2");
        assert_eq!(m.get(b"missing"), None);
        assert_eq!(m.pairs().len(), 7);
        m.replace(b":path", b"/uci/prediction", &mut n).unwrap();
        assert_eq!(m.replace(b":path", b"no-slash", &mut n), Err(BadHeader));
        assert_eq!(m.replace(b":path", b"/a b", &mut n), Err(BadHeader));
        // Past the quick check: a query, escapes and sub-delimiters are parsed and normalised.
        for bad in [
            &b"/a//b"[..],
            b"/a/../b",
            b"/a%2fb",
            b"/a<b",
            b"/a?<",
            b"/a/./b?x",
        ] {
            assert_eq!(m.replace(b":path", bad, &mut n), Err(BadHeader), "{bad:?}");
        }
        for good in [&b"/a/b:c@d"[..], b"/a%20b", b"/a?x=1&y=/../", b"/"] {
            m.replace(b":path", good, &mut n).unwrap();
            assert_eq!(m.get(b":path").unwrap(), good);
        }
        m.replace(b":path", b"/uci/prediction", &mut n).unwrap();
        assert_eq!(m.remove(b":path", &mut n), Err(BadHeader));
        assert_eq!(m.replace(b":status", b"200", &mut n), Err(BadHeader));
        assert_eq!(m.replace(b"x-b", b"bad\r\nvalue", &mut n), Err(BadHeader));
        m.remove(b"APIKEY", &mut n).unwrap();
        assert_eq!(r.path, "/uci/prediction");
        assert!(r.headers.get("apikey").is_none());
    }

    #[test]
    fn header_names_are_parsed_once_and_kept_within_bounds() {
        let mut n = HeaderNames::default();
        assert_eq!(n.get(b"X-Instance-ID").unwrap().as_str(), "x-instance-id");
        assert_eq!(n.get(b"apikey").unwrap().as_str(), "apikey");
        assert_eq!(n.get(b"X-Instance-ID").unwrap().as_str(), "x-instance-id");
        assert_eq!(n.get(b"x-instance-id").unwrap().as_str(), "x-instance-id");
        assert_eq!(n.kept.len(), 3, "one entry per spelling");
        for bad in [&b""[..], b"a b", b"x\r\n", b":path", b"\xff"] {
            assert_eq!(n.get(bad).err(), Some(BadHeader), "{bad:?}");
        }
        let long = vec![b'a'; NAME_KEPT_LEN + 1];
        assert_eq!(n.get(&long).unwrap().as_str().len(), NAME_KEPT_LEN + 1);
        assert_eq!(n.kept.len(), 3, "invalid and long names are not kept");

        // Past the bound the oldest go, and every name still reads right.
        let many: Vec<String> = (0..NAMES_KEPT + 5).map(|i| format!("X-H{i}")).collect();
        for name in many.iter().chain(&many) {
            assert_eq!(
                n.get(name.as_bytes()).unwrap().as_str(),
                name.to_lowercase()
            );
        }
        assert_eq!(n.kept.len(), NAMES_KEPT);

        // Through the map: reads, replaces and removes by any spelling find the same header.
        let mut r = request();
        let mut m = MapMut::Request(&mut r);
        let mut out = Vec::new();
        assert!(m.get_into(b"X-A", &mut n, &mut out));
        assert_eq!(out, b"1,2");
        m.replace(b"X-A", b"3", &mut n).unwrap();
        m.add(b"x-a", b"4", &mut n).unwrap();
        assert_eq!(m.get(b"x-a").unwrap(), b"3,4");
        m.remove(b"X-a", &mut n).unwrap();
        assert_eq!(m.get(b"x-a"), None);
        assert_eq!(m.add(b"bad name", b"v", &mut n), Err(BadHeader));
    }

    #[test]
    fn status_cannot_be_removed_or_set_out_of_range() {
        let mut r = ResponseHead {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
        };
        let mut m = MapMut::Response(&mut r);
        let mut n = HeaderNames::default();
        assert_eq!(m.remove(b":status", &mut n), Err(BadHeader));
        assert_eq!(m.replace(b":status", b"99", &mut n), Err(BadHeader));
        assert_eq!(m.replace(b":status", b"abc", &mut n), Err(BadHeader));
        m.replace(b":status", b"418", &mut n).unwrap();
        m.set_all(&[(b":status", b"201"), (b"x-y", b"z")]).unwrap();
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.headers.get("x-y").unwrap(), "z");
    }
}
