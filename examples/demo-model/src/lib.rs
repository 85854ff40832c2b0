//! `demo-model`: a small model server that speaks Paddle Serving's web-service HTTP API, the
//! upstream behind `wasmgate demo` and the gateway's end-to-end tests.
//!
//! It serves the `uci_housing` example of Paddle Serving: `POST /uci/prediction` with
//! `{"feed":[{"x":[13 numbers]}],"fetch":["price"]}` answers `200 {"result":{"price":[[p]]}}`,
//! one `[p]` per feed entry, computed by a fixed linear model ([`WEIGHTS`], [`BIAS`]). A malformed
//! request gets `400 {"err_no":400,"err_msg":"..."}` naming what is wrong (the `err_no`/`err_msg`
//! envelope of Paddle Serving's pipeline responses, with `err_no` the HTTP status); a body over
//! [`BODY_LIMIT`] gets 413, another path 404, another method on the path 405.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let mut server = demo_model::bind("127.0.0.1:0".parse().unwrap()).await?;
//! let recorder = server.recorder(); // optional: see what the upstream received
//! let handle = server.spawn();
//! println!("POST http://{}/uci/prediction", handle.local_addr());
//! // ... send requests, then look at recorder.last_request() ...
//! handle.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod model;
mod server;

pub use model::{BIAS, FEATURE_NAMES, FEATURES, FEED_VAR, FETCH_VARS, WEIGHTS, predict};
pub use server::{
    BODY_LIMIT, DemoHandle, DemoServer, PREDICTION_PATH, RecordedRequest, Recorder, bind,
};
