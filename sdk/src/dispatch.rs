//! The proxy-wasm lifecycle in safe code: which contexts exist, which configured plugin serves
//! each, and what a hook's [`Decision`] means for the host. The ABI module only moves bytes between
//! the host and this module, so the logic here is unit-tested natively.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

use crate::config::build_plugin;
use crate::http::{HeaderBackend, Request, Response};
use crate::{Decision, LocalResponse, OnResponse, Plugin, log};

/// The value a header or body callback returns to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Go on with the request or response.
    Continue = 0,
    /// Stop here (after a local response).
    Pause = 1,
}

/// The hooks of a configured plugin, with its type erased so one map holds it.
trait Hooks {
    fn on_request(&self, req: &mut Request<'_>) -> Decision;
    fn on_response(&self, resp: &mut Response<'_>) -> Decision;
}

/// A plugin exported without a response hook. Its module has no `proxy_on_response_headers`,
/// so `on_response` is not called; were it, the response would go through.
struct RequestOnly<P>(P);

impl<P: Plugin> Hooks for RequestOnly<P> {
    fn on_request(&self, req: &mut Request<'_>) -> Decision {
        self.0.on_request(req)
    }
    fn on_response(&self, _: &mut Response<'_>) -> Decision {
        Decision::Continue
    }
}

/// An [`OnResponse`] plugin.
struct WithResponse<P>(P);

impl<P: OnResponse> Hooks for WithResponse<P> {
    fn on_request(&self, req: &mut Request<'_>) -> Decision {
        self.0.on_request(req)
    }
    fn on_response(&self, resp: &mut Response<'_>) -> Decision {
        self.0.on_response(resp)
    }
}

/// One HTTP request's context.
struct HttpContext {
    /// The configured plugin of its root context when it was created (`None`: not configured);
    /// a request keeps the configuration it started with.
    plugin: Option<Rc<dyn Hooks>>,
    /// The plugin answered this request itself: its response hook is not run on that answer.
    answered: bool,
}

/// Hashes context ids, small integers the host hands out in sequence, with one multiplication
/// (Fibonacci hashing). The default SipHash cost more than the rest of a callback; the ids come
/// from the host, which the module trusts, so flooding is not a concern.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.0 = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// All the state of one module instance: root contexts (one per plugin configuration) and the
/// HTTP contexts of the requests in flight, interleaved.
#[derive(Default)]
pub(crate) struct Dispatcher {
    /// Root context id -> the configured plugin (`None` until a configure succeeds).
    roots: BTreeMap<u32, Option<Rc<dyn Hooks>>>,
    /// A hash map keeps its table when emptied, so a context created and deleted per request
    /// allocates nothing once warm (a `BTreeMap` frees its last node and allocates it again).
    contexts: HashMap<u32, HttpContext, BuildHasherDefault<IdHasher>>,
}

/// Answer for a request whose plugin has no valid configuration: fail closed.
fn not_configured() -> LocalResponse {
    LocalResponse::json_message(500, "Plugin is not configured")
}

impl Dispatcher {
    /// An empty dispatcher, made at compile time so the instance's one needs no lazy start.
    pub(crate) const fn new() -> Self {
        Dispatcher {
            roots: BTreeMap::new(),
            contexts: HashMap::with_hasher(BuildHasherDefault::new()),
        }
    }

    /// `proxy_on_context_create`: parent 0 makes a root context, anything else an HTTP context
    /// belonging to root `parent`.
    pub(crate) fn context_create(&mut self, id: u32, parent: u32) {
        if parent == 0 {
            self.roots.entry(id).or_insert(None);
        } else {
            let plugin = self.roots.get(&parent).cloned().flatten();
            self.contexts.insert(
                id,
                HttpContext {
                    plugin,
                    answered: false,
                },
            );
        }
    }

    /// `proxy_on_configure`: builds the plugin from the JSON config. On failure the reason is
    /// logged at error level, the previous configuration (if any) stays, and false is returned.
    pub(crate) fn configure<P: Plugin>(&mut self, root: u32, config: &[u8]) -> bool {
        self.configure_as(root, build_plugin::<P>(config).map(RequestOnly))
    }

    /// [`Dispatcher::configure`] for an [`OnResponse`] plugin.
    pub(crate) fn configure_with_response<P: OnResponse>(
        &mut self,
        root: u32,
        config: &[u8],
    ) -> bool {
        self.configure_as(root, build_plugin::<P>(config).map(WithResponse))
    }

    fn configure_as(&mut self, root: u32, built: Result<impl Hooks + 'static, String>) -> bool {
        match built {
            Ok(plugin) => {
                self.roots.insert(root, Some(Rc::new(plugin)));
                true
            }
            Err(reason) => {
                log::error(&format!("plugin configuration refused: {reason}"));
                false
            }
        }
    }

    /// `proxy_on_request_headers`: runs the plugin's request hook over `headers`; a local
    /// response goes out through `send` and pauses the request.
    pub(crate) fn request_headers(
        &mut self,
        ctx: u32,
        headers: &mut dyn HeaderBackend,
        send: &mut dyn FnMut(&LocalResponse) -> bool,
    ) -> Action {
        let plugin = self.contexts.get(&ctx).and_then(|c| c.plugin.as_ref());
        let decision = match plugin {
            Some(plugin) => plugin.on_request(&mut Request::new(headers)),
            None => Decision::Respond(not_configured()),
        };
        self.apply(ctx, decision, send)
    }

    /// `proxy_on_response_headers`: runs the plugin's response hook, unless the plugin itself
    /// answered this request.
    pub(crate) fn response_headers(
        &mut self,
        ctx: u32,
        headers: &mut dyn HeaderBackend,
        send: &mut dyn FnMut(&LocalResponse) -> bool,
    ) -> Action {
        let plugin = match self.contexts.get(&ctx) {
            Some(c) if c.answered => return Action::Continue,
            Some(c) => c.plugin.as_ref(),
            None => None,
        };
        let decision = match plugin {
            Some(plugin) => plugin.on_response(&mut Response::new(headers)),
            None => Decision::Respond(not_configured()),
        };
        self.apply(ctx, decision, send)
    }

    fn apply(
        &mut self,
        ctx: u32,
        decision: Decision,
        send: &mut dyn FnMut(&LocalResponse) -> bool,
    ) -> Action {
        match decision {
            Decision::Continue => Action::Continue,
            Decision::Respond(response) => {
                if let Some(c) = self.contexts.get_mut(&ctx) {
                    c.answered = true;
                }
                if !send(&response) {
                    // Never continue instead: that would let a refused request through.
                    log::error("the host refused the plugin's local response");
                }
                Action::Pause
            }
        }
    }

    /// `proxy_on_delete`: forgets the context (HTTP or root).
    pub(crate) fn delete(&mut self, id: u32) {
        if self.contexts.remove(&id).is_none() {
            self.roots.remove(&id);
        }
    }

    #[cfg(test)]
    fn live_contexts(&self) -> (usize, usize) {
        (self.roots.len(), self.contexts.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MemoryMap;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Conf {
        #[serde(default)]
        deny: bool,
        tag: String,
    }

    struct Tagger {
        deny: bool,
        tag: String,
    }

    impl Plugin for Tagger {
        type Config = Conf;
        fn configure(c: Conf) -> Result<Self, String> {
            if c.tag.is_empty() {
                return Err("tag: must not be empty".into());
            }
            Ok(Tagger {
                deny: c.deny,
                tag: c.tag,
            })
        }
        fn on_request(&self, req: &mut Request<'_>) -> Decision {
            if self.deny {
                return Decision::reject_json(403, "denied");
            }
            req.set_header("x-tag", &self.tag);
            Decision::Continue
        }
    }

    impl OnResponse for Tagger {
        fn on_response(&self, resp: &mut Response<'_>) -> Decision {
            resp.set_header("x-resp-tag", &self.tag);
            Decision::Continue
        }
    }

    fn request_map() -> MemoryMap {
        MemoryMap::from_pairs(&[(":method", "GET"), (":path", "/")])
    }

    #[test]
    fn roots_serve_their_own_contexts() {
        let mut d = Dispatcher::default();
        d.context_create(1, 0);
        d.context_create(2, 0);
        assert!(d.configure_with_response::<Tagger>(1, br#"{"tag":"one"}"#));
        assert!(d.configure_with_response::<Tagger>(2, br#"{"tag":"two","deny":true}"#));
        d.context_create(10, 1);
        d.context_create(11, 2);
        let mut sent = Vec::new();
        let mut m10 = request_map();
        let mut m11 = request_map();
        // Interleaved requests on one instance.
        let a11 = d.request_headers(11, &mut m11, &mut |r| {
            sent.push(r.clone());
            true
        });
        let a10 = d.request_headers(10, &mut m10, &mut |_| panic!("no local response"));
        assert_eq!(a10, Action::Continue);
        assert_eq!(a11, Action::Pause);
        assert_eq!(m10.get("x-tag"), Some(b"one".to_vec()));
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].status, 403);

        // The response hook runs for 10, not for 11 which was answered locally.
        let mut r10 = MemoryMap::from_pairs(&[(":status", "200")]);
        let mut r11 = MemoryMap::from_pairs(&[(":status", "403")]);
        assert_eq!(
            d.response_headers(10, &mut r10, &mut |_| true),
            Action::Continue
        );
        assert_eq!(
            d.response_headers(11, &mut r11, &mut |_| true),
            Action::Continue
        );
        assert_eq!(r10.get("x-resp-tag"), Some(b"one".to_vec()));
        assert_eq!(r11.get("x-resp-tag"), None);

        d.delete(10);
        d.delete(11);
        assert_eq!(d.live_contexts(), (2, 0));
        d.delete(1);
        assert_eq!(d.live_contexts(), (1, 0));
    }

    #[test]
    fn bad_config_is_refused_and_logged() {
        let _ = crate::testing::take_logs();
        let mut d = Dispatcher::default();
        d.context_create(1, 0);
        assert!(!d.configure_with_response::<Tagger>(1, br#"{"tag":7}"#));
        let logs = crate::testing::take_logs();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].0, log::Level::Error);
        assert!(logs[0].1.contains("tag: invalid type"), "{:?}", logs);

        assert!(!d.configure_with_response::<Tagger>(1, br#"{"tag":""}"#));
        assert!(
            crate::testing::take_logs()[0]
                .1
                .contains("tag: must not be empty")
        );
        assert!(!d.configure_with_response::<Tagger>(1, b""));
        assert!(
            crate::testing::take_logs()[0]
                .1
                .contains("missing field `tag`")
        );
    }

    #[test]
    fn unconfigured_or_unknown_context_fails_closed() {
        let mut d = Dispatcher::default();
        d.context_create(1, 0);
        d.context_create(5, 1);
        let mut statuses = Vec::new();
        let mut m = request_map();
        assert_eq!(
            d.request_headers(5, &mut m, &mut |r| {
                statuses.push(r.status);
                true
            }),
            Action::Pause
        );
        let mut m = request_map();
        assert_eq!(
            d.request_headers(99, &mut m, &mut |r| {
                statuses.push(r.status);
                false
            }),
            Action::Pause
        );
        assert_eq!(statuses, vec![500, 500]);
    }

    #[test]
    fn failed_reconfigure_keeps_the_previous_plugin() {
        let mut d = Dispatcher::default();
        d.context_create(1, 0);
        assert!(d.configure_with_response::<Tagger>(1, br#"{"tag":"old"}"#));
        assert!(!d.configure_with_response::<Tagger>(1, br#"{"tag":""}"#));
        d.context_create(2, 1);
        let mut m = request_map();
        assert_eq!(
            d.request_headers(2, &mut m, &mut |_| true),
            Action::Continue
        );
        assert_eq!(m.get("x-tag"), Some(b"old".to_vec()));
    }

    #[test]
    fn a_request_keeps_the_configuration_it_started_with() {
        let mut d = Dispatcher::default();
        d.context_create(1, 0);
        assert!(d.configure_with_response::<Tagger>(1, br#"{"tag":"old"}"#));
        d.context_create(2, 1);
        assert!(d.configure_with_response::<Tagger>(1, br#"{"tag":"new"}"#));
        d.context_create(3, 1);
        let (mut old, mut new) = (request_map(), request_map());
        d.request_headers(2, &mut old, &mut |_| true);
        d.request_headers(3, &mut new, &mut |_| true);
        assert_eq!(old.get("x-tag"), Some(b"old".to_vec()));
        assert_eq!(new.get("x-tag"), Some(b"new".to_vec()));
        let mut resp = MemoryMap::from_pairs(&[(":status", "200")]);
        d.response_headers(2, &mut resp, &mut |_| true);
        assert_eq!(resp.get("x-resp-tag"), Some(b"old".to_vec()));
    }

    #[test]
    fn many_contexts_in_flight_each_find_their_own() {
        let mut d = Dispatcher::default();
        d.context_create(1, 0);
        assert!(d.configure_with_response::<Tagger>(1, br#"{"tag":"t"}"#));
        for id in 2..2000 {
            d.context_create(id, 1);
        }
        for id in (2..2000).step_by(2) {
            d.delete(id);
        }
        assert_eq!(d.live_contexts(), (1, 999));
        let mut m = request_map();
        assert_eq!(
            d.request_headers(1999, &mut m, &mut |_| true),
            Action::Continue
        );
        let mut m = request_map();
        // A deleted context is unknown: fail closed.
        assert_eq!(
            d.request_headers(1998, &mut m, &mut |_| true),
            Action::Pause
        );
    }

    #[test]
    fn a_plugin_exported_without_its_response_hook_lets_responses_through() {
        let mut d = Dispatcher::default();
        d.context_create(1, 0);
        assert!(d.configure::<Tagger>(1, br#"{"tag":"t"}"#));
        d.context_create(2, 1);
        let mut m = request_map();
        assert_eq!(
            d.request_headers(2, &mut m, &mut |_| true),
            Action::Continue
        );
        assert_eq!(m.get("x-tag"), Some(b"t".to_vec()));
        let mut resp = MemoryMap::from_pairs(&[(":status", "200")]);
        assert_eq!(
            d.response_headers(2, &mut resp, &mut |_| true),
            Action::Continue
        );
        assert_eq!(resp.get("x-resp-tag"), None);
    }
}
