//! Unit-testing plugins natively, without a host: build a request or response in memory, run a
//! hook over it, and look at the decision and at what the request or response became.
//!
//! ```
//! use wasmgate_sdk::testing::{TestRequest, configure};
//! use wasmgate_sdk::{Decision, Plugin, Request};
//!
//! struct Deny;
//! impl Plugin for Deny {
//!     type Config = serde_json::Value;
//!     fn configure(_: serde_json::Value) -> Result<Self, String> { Ok(Deny) }
//!     fn on_request(&self, req: &mut Request<'_>) -> Decision {
//!         if req.header("x-deny").is_some() {
//!             return Decision::reject_json(403, "denied");
//!         }
//!         req.set_header("x-seen", "1");
//!         Decision::Continue
//!     }
//! }
//!
//! let plugin: Deny = configure("").unwrap();
//! let out = TestRequest::get("/a").header("X-Deny", "yes").run(&plugin);
//! assert_eq!(out.status(), Some(403));
//! assert_eq!(out.message().as_deref(), Some("denied"));
//! let out = TestRequest::get("/a").run(&plugin);
//! assert!(out.is_continue());
//! assert_eq!(out.header("x-seen").as_deref(), Some("1"));
//! ```

use crate::http::{HeaderBackend, Request, Response};
use crate::log::Level;
use crate::{Decision, LocalResponse, OnResponse, Plugin};

/// Builds the plugin from a JSON configuration exactly as the host's configure call does (empty
/// text reads as `{}`). The error is the message the host would log and report.
pub fn configure<P: Plugin>(json: &str) -> Result<P, String> {
    crate::config::build_plugin::<P>(json.as_bytes())
}

/// Takes the log lines this thread logged since the last call (natively; always empty on wasm).
pub fn take_logs() -> Vec<(Level, String)> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::log::captured::take()
    }
    #[cfg(target_arch = "wasm32")]
    {
        Vec::new()
    }
}

/// Fixes the time [`crate::time::now`] answers on this thread (each test runs on its own
/// thread), e.g. to test an expiry check: `set_time(UNIX_EPOCH + Duration::from_secs(1_700_000_000))`.
/// On wasm it does nothing: the host's clock answers there.
pub fn set_time(time: std::time::SystemTime) {
    #[cfg(not(target_arch = "wasm32"))]
    crate::time::native::set(crate::time::native::Clock::Fixed(time));
    #[cfg(target_arch = "wasm32")]
    let _ = time;
}

/// Makes [`crate::time::now`] answer `None` on this thread, as on a host without a clock.
pub fn set_no_clock() {
    #[cfg(not(target_arch = "wasm32"))]
    crate::time::native::set(crate::time::native::Clock::Unavailable);
}

/// Gives this thread the system clock back (the default).
pub fn clear_time() {
    #[cfg(not(target_arch = "wasm32"))]
    crate::time::native::set(crate::time::native::Clock::System);
}

/// An in-memory header map with the host's semantics: names are lowercase, lookups are
/// case-insensitive, several values of one name read back joined with `,`.
#[derive(Debug, Clone, Default)]
pub struct MemoryMap {
    pairs: Vec<(String, Vec<u8>)>,
    properties: Vec<(Vec<String>, Vec<u8>)>,
}

impl MemoryMap {
    pub(crate) fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        let mut m = MemoryMap::default();
        for (k, v) in pairs {
            m.add(k, v.as_bytes());
        }
        m
    }

    fn values(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }
}

impl HeaderBackend for MemoryMap {
    fn get(&self, name: &str) -> Option<Vec<u8>> {
        let values: Vec<&[u8]> = self
            .pairs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect();
        if values.is_empty() {
            None
        } else {
            Some(values.join(&b","[..]))
        }
    }

    fn pairs(&self) -> Vec<(String, Vec<u8>)> {
        self.pairs.clone()
    }

    fn replace(&mut self, name: &str, value: &[u8]) {
        match self
            .pairs
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some(first) => {
                self.pairs[first].1 = value.to_vec();
                let mut i = 0;
                self.pairs.retain(|(k, _)| {
                    i += 1;
                    i - 1 == first || !k.eq_ignore_ascii_case(name)
                });
            }
            None => self.add(name, value),
        }
    }

    fn add(&mut self, name: &str, value: &[u8]) {
        self.pairs.push((name.to_ascii_lowercase(), value.to_vec()));
    }

    fn remove(&mut self, name: &str) {
        self.pairs.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.properties
            .iter()
            .find(|(p, _)| p.iter().map(String::as_str).eq(path.iter().copied()))
            .map(|(_, v)| v.clone())
    }
}

/// A request to run a plugin's `on_request` hook over.
#[derive(Debug, Clone)]
pub struct TestRequest {
    map: MemoryMap,
}

impl TestRequest {
    /// A request with this method and path (path and query, e.g. `/a?b=1`), with `:authority`
    /// `localhost` and `:scheme` `https` as the host would give.
    pub fn new(method: &str, path: &str) -> Self {
        TestRequest {
            map: MemoryMap::from_pairs(&[
                (":method", method),
                (":path", path),
                (":authority", "localhost"),
                (":scheme", "https"),
            ]),
        }
    }

    /// A `GET` request.
    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    /// A `POST` request.
    pub fn post(path: &str) -> Self {
        Self::new("POST", path)
    }

    /// Adds a header (another value if the name is already there).
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.map.add(name, value.as_bytes());
        self
    }

    /// Adds a header whose value is not UTF-8.
    #[must_use]
    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        self.map.add(name, value);
        self
    }

    /// Gives the request a host property, read with [`Request::property`].
    #[must_use]
    pub fn property(mut self, path: &[&str], value: &[u8]) -> Self {
        self.map.properties.push((
            path.iter().map(|s| (*s).to_owned()).collect(),
            value.to_vec(),
        ));
        self
    }

    /// Runs `plugin.on_request` and returns what it decided and what the request became.
    pub fn run<P: Plugin>(mut self, plugin: &P) -> RequestOutcome {
        let decision = plugin.on_request(&mut Request::new(&mut self.map));
        RequestOutcome {
            decision,
            map: self.map,
        }
    }
}

/// What a request hook decided, and the request after it.
#[derive(Debug, Clone)]
pub struct RequestOutcome {
    /// The hook's decision.
    pub decision: Decision,
    map: MemoryMap,
}

/// What a response hook decided, and the response after it.
#[derive(Debug, Clone)]
pub struct ResponseOutcome {
    /// The hook's decision.
    pub decision: Decision,
    map: MemoryMap,
}

macro_rules! outcome_accessors {
    ($t:ty) => {
        impl $t {
            /// True when the hook let the request or response go on.
            pub fn is_continue(&self) -> bool {
                self.decision.is_continue()
            }

            /// The plugin's local response, if it answered.
            pub fn local_response(&self) -> Option<&LocalResponse> {
                self.decision.local_response()
            }

            /// The status of the plugin's local response, if it answered.
            pub fn status(&self) -> Option<u16> {
                self.local_response().map(|r| r.status)
            }

            /// The local response's body parsed as JSON, if it answered with JSON.
            pub fn body_json(&self) -> Option<serde_json::Value> {
                serde_json::from_slice(&self.local_response()?.body).ok()
            }

            /// The `message` field of a JSON local response (see [`Decision::reject_json`]).
            pub fn message(&self) -> Option<String> {
                self.body_json()?
                    .get("message")?
                    .as_str()
                    .map(str::to_owned)
            }

            /// A header after the hook (joined with `,` if it has several values).
            pub fn header(&self, name: &str) -> Option<String> {
                self.map
                    .get(name)
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
            }

            /// Every value of a header after the hook.
            pub fn header_values(&self, name: &str) -> Vec<String> {
                self.map.values(name)
            }

            /// Every header after the hook, pseudo-headers included, in order.
            pub fn headers(&self) -> Vec<(String, String)> {
                self.map
                    .pairs()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                    .collect()
            }
        }
    };
}

outcome_accessors!(RequestOutcome);
outcome_accessors!(ResponseOutcome);

impl RequestOutcome {
    /// The `:path` after the hook (what goes upstream on `Continue`).
    pub fn path(&self) -> String {
        self.header(":path").unwrap_or_default()
    }

    /// The `:method` after the hook.
    pub fn method(&self) -> String {
        self.header(":method").unwrap_or_default()
    }
}

/// An upstream response to run a plugin's `on_response` hook over.
#[derive(Debug, Clone)]
pub struct TestResponse {
    map: MemoryMap,
}

impl TestResponse {
    /// A response with this status.
    pub fn new(status: u16) -> Self {
        TestResponse {
            map: MemoryMap::from_pairs(&[(":status", &status.to_string())]),
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.map.add(name, value.as_bytes());
        self
    }

    /// Runs `plugin.on_response` and returns what it decided and what the response became.
    pub fn run<P: OnResponse>(mut self, plugin: &P) -> ResponseOutcome {
        let decision = plugin.on_response(&mut Response::new(&mut self.map));
        ResponseOutcome {
            decision,
            map: self.map,
        }
    }
}

impl ResponseOutcome {
    /// The `:status` after the hook.
    pub fn response_status(&self) -> u16 {
        self.header(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Plugin for Echo {
        type Config = serde_json::Value;
        fn configure(_: serde_json::Value) -> Result<Self, String> {
            Ok(Echo)
        }
        fn on_request(&self, req: &mut Request<'_>) -> Decision {
            let seen = format!(
                "{} {} q={:?} p={:?}",
                req.method(),
                req.path(),
                req.query_param("a"),
                req.property(&["plugin_name"])
            );
            req.set_header("x-seen", &seen);
            Decision::Continue
        }
    }

    impl OnResponse for Echo {
        fn on_response(&self, resp: &mut Response<'_>) -> Decision {
            if resp.status() == 500 {
                resp.set_status(502);
            }
            resp.remove_header("server");
            resp.add_header("x-b", "2");
            Decision::Continue
        }
    }

    #[test]
    fn request_accessors() {
        let out = TestRequest::post("/x?a=1%202&a=3")
            .property(&["plugin_name"], b"echo")
            .run(&Echo);
        assert_eq!(
            out.header("x-seen").unwrap(),
            r#"POST /x?a=1%202&a=3 q=Some("1 2") p=Some([101, 99, 104, 111])"#
        );
    }

    #[test]
    fn the_clock_can_be_fixed_removed_and_restored() {
        use std::time::{Duration, UNIX_EPOCH};
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        set_time(t);
        assert_eq!(crate::time::now(), Some(t));
        assert_eq!(crate::time::unix_seconds(), Some(1_700_000_000));
        set_no_clock();
        assert_eq!(crate::time::now(), None);
        assert_eq!(crate::time::unix_seconds(), None);
        clear_time();
        let now = crate::time::unix_seconds().unwrap();
        assert!(now > 1_700_000_000, "{now}");
    }

    #[test]
    fn header_map_semantics() {
        let mut m = MemoryMap::default();
        m.add("A", b"1");
        m.add("b", b"x");
        m.add("a", b"2");
        assert_eq!(m.get("a"), Some(b"1,2".to_vec()));
        m.replace("A", b"3");
        assert_eq!(
            m.pairs(),
            vec![("a".into(), b"3".to_vec()), ("b".into(), b"x".to_vec())]
        );
        m.remove("B");
        assert_eq!(m.get("b"), None);
        m.replace("new", b"n");
        assert_eq!(m.get("NEW"), Some(b"n".to_vec()));
    }

    #[test]
    fn query_param_removal() {
        struct Strip;
        impl Plugin for Strip {
            type Config = serde_json::Value;
            fn configure(_: serde_json::Value) -> Result<Self, String> {
                Ok(Strip)
            }
            fn on_request(&self, req: &mut Request<'_>) -> Decision {
                let removed = req.remove_query_param("k");
                req.set_header("x-removed", if removed { "yes" } else { "no" });
                Decision::Continue
            }
        }
        let cases = [
            ("/p?k=1", "/p", "yes"),
            ("/p?a=1&k=2&b=3", "/p?a=1&b=3", "yes"),
            ("/p?%6b=1&k&a", "/p?a", "yes"),
            ("/p?kk=1", "/p?kk=1", "no"),
            ("/p", "/p", "no"),
        ];
        for (path, want, removed) in cases {
            let out = TestRequest::get(path).run(&Strip);
            assert_eq!(out.path(), want, "{path}");
            assert_eq!(out.header("x-removed").unwrap(), removed, "{path}");
        }
    }

    #[test]
    fn response_hook() {
        let out = TestResponse::new(500)
            .header("Server", "internal")
            .header("x-b", "1")
            .run(&Echo);
        assert!(out.is_continue());
        assert_eq!(out.response_status(), 502);
        assert_eq!(out.header("server"), None);
        assert_eq!(out.header_values("x-b"), vec!["1", "2"]);
    }

    #[test]
    fn headers_leave_out_pseudo_headers() {
        struct List;
        impl Plugin for List {
            type Config = serde_json::Value;
            fn configure(_: serde_json::Value) -> Result<Self, String> {
                Ok(List)
            }
            fn on_request(&self, req: &mut Request<'_>) -> Decision {
                let names: Vec<String> = req.headers().into_iter().map(|(k, _)| k).collect();
                Decision::reject_json(400, &names.join(" "))
            }
        }
        let out = TestRequest::get("/")
            .header("B", "1")
            .header("a", "2")
            .run(&List);
        assert_eq!(out.message().unwrap(), "b a");
    }
}
