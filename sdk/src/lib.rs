//! The wasmgate plugin SDK: write a gateway policy as one Rust trait, build it to a proxy-wasm
//! 0.2.1 module, and unit-test it natively.
//!
//! A plugin is a type implementing [`Plugin`]: a serde `Config` type, a `configure` that validates
//! it, and a request hook that returns a [`Decision`]; [`OnResponse`] adds a response hook.
//! [`export_plugin!`] turns it into a module the gateway (or Envoy, Istio... any proxy-wasm 0.2.1
//! host) loads.
//!
//! A whole plugin, with its tests:
//!
//! ```
//! use serde::Deserialize;
//! use wasmgate_sdk::{Decision, Plugin, Request};
//!
//! /// Refuses requests without a `tenant` header, tags the others.
//! pub struct RequireTenant {
//!     tag: String,
//! }
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! pub struct Config {
//!     /// Value of the `x-gateway` header added to admitted requests.
//!     #[serde(default = "default_tag")]
//!     tag: String,
//! }
//!
//! fn default_tag() -> String {
//!     "wasmgate".to_owned()
//! }
//!
//! impl Plugin for RequireTenant {
//!     type Config = Config;
//!
//!     fn configure(config: Config) -> Result<Self, String> {
//!         if config.tag.is_empty() {
//!             return Err("tag: must not be empty".to_owned());
//!         }
//!         Ok(RequireTenant { tag: config.tag })
//!     }
//!
//!     fn on_request(&self, req: &mut Request<'_>) -> Decision {
//!         let Some(tenant) = req.header("tenant") else {
//!             return Decision::reject_json(403, "Missing tenant header");
//!         };
//!         wasmgate_sdk::debug!("tenant {tenant} admitted");
//!         req.set_header("x-gateway", &self.tag);
//!         Decision::Continue
//!     }
//! }
//!
//! wasmgate_sdk::export_plugin!(RequireTenant);
//!
//! // Natively, the same code runs over an in-memory request:
//! use wasmgate_sdk::testing::{TestRequest, configure};
//!
//! let plugin: RequireTenant = configure("").unwrap();
//! let out = TestRequest::post("/x").run(&plugin);
//! assert_eq!(out.status(), Some(403));
//! assert_eq!(out.message().as_deref(), Some("Missing tenant header"));
//!
//! let out = TestRequest::post("/x").header("Tenant", "acme").run(&plugin);
//! assert!(out.is_continue());
//! assert_eq!(out.header("x-gateway").as_deref(), Some("wasmgate"));
//!
//! let err = configure::<RequireTenant>(r#"{"tga": "x"}"#).err().unwrap();
//! assert!(err.contains("unknown field `tga`"));
//! ```
//!
//! Build the module with `scripts/build-wasm.sh <crate>`; the crate needs
//! `crate-type = ["cdylib", "rlib"]`.
//!
//! How the ABI is used: each module instance holds one configured plugin per root context and
//! serves many request contexts interleaved. A configuration that does not parse, or whose
//! `configure` returns `Err`, makes `proxy_on_configure` return false after logging the reason at
//! error level. A request whose root has no valid configuration is answered `500` (fail closed).
//! A local response pauses the request; the plugin's response hook is then not run for it.

#[allow(unsafe_code)]
mod abi;
pub mod bytes;
// Off wasm, only the unit tests drive the ABI codec and the lifecycle dispatcher.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod codec;
pub mod config;
mod decision;
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod dispatch;
mod http;
pub mod log;
pub mod testing;
pub mod time;

pub use config::parse_config;
pub use decision::{Decision, LocalResponse};
pub use http::{Request, Response};

#[doc(hidden)]
pub use abi::exports as __private;

/// A gateway policy. Implement `configure`, and `on_request` unless the plugin only looks at
/// responses ([`OnResponse`]).
///
/// Hooks take `&self`: one configured plugin serves many requests, interleaved, so keep
/// per-request facts in the request itself.
pub trait Plugin: Sized + 'static {
    /// The plugin's configuration, read from the JSON the host hands over (empty reads as `{}`).
    /// Use `#[serde(deny_unknown_fields)]` so a misspelt key is refused.
    type Config: serde::de::DeserializeOwned;

    /// Called once per configuration with the parsed config. `Err` refuses the configuration:
    /// the message goes to the host's log; name the key at fault (`consumers[1].keys[0]: ...`).
    fn configure(config: Self::Config) -> Result<Self, String>;

    /// Called with the request headers before the request goes upstream. The default lets the
    /// request through unchanged.
    fn on_request(&self, req: &mut Request<'_>) -> Decision {
        let _ = req;
        Decision::Continue
    }
}

/// A plugin that also looks at responses. Implement it next to [`Plugin`] and export the type
/// with `export_plugin!(Type, OnResponse)`.
///
/// It is a trait of its own, and not a default method of [`Plugin`], so that a plugin that only
/// looks at requests does not export `proxy_on_response_headers`: a host calls no export the
/// module lacks, which spares every request a call into the module. `export_plugin!(Type)` on a
/// type that implements `OnResponse` does not compile, so the hook cannot be left out by mistake.
///
/// ```
/// # use wasmgate_sdk::{Plugin, Decision, OnResponse, Response};
/// struct HideServer;
/// impl Plugin for HideServer {
///     type Config = serde_json::Value;
///     fn configure(_: serde_json::Value) -> Result<Self, String> { Ok(HideServer) }
/// }
/// impl OnResponse for HideServer {
///     fn on_response(&self, resp: &mut Response<'_>) -> Decision {
///         resp.remove_header("server");
///         Decision::Continue
///     }
/// }
/// wasmgate_sdk::export_plugin!(HideServer, OnResponse);
/// ```
pub trait OnResponse: Plugin {
    /// Called with the upstream's response headers before they go to the client. Not called for
    /// a request this plugin answered itself.
    fn on_response(&self, resp: &mut Response<'_>) -> Decision;
}
