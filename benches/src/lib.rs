//! Shared facts of wasmgate's benchmarks: the seed's prediction request and the upstream's fixed
//! answer. The criterion benchmarks live in `benches/plugin_path.rs`, the load benchmark in
//! `scripts/bench-load.sh` (with `bench-upstream`, the fixed-answer upstream, in `src/bin`).

/// The demo API key the seed request presents (key-auth stores only its SHA-256).
pub const SEED_KEY: &str = "hP6v25BQVS5CcS1nqKpxdrFkUxze9JWD";

/// The SHA-256 of [`SEED_KEY`], in hex, as the seed configuration stores it.
pub const SEED_KEY_SHA256: &str =
    "dceb76cf5cd7ce48e83deebd5db793e68fbc7ffbf9796569e38ede2e7e28aa70";

/// The expected `X-INSTANCE-ID`.
pub const SEED_INSTANCE: &str = "kong_ins";

/// The public path of the seed's prediction request.
pub const SEED_PATH: &str = "/serving-uci/uci/prediction";

/// The seed's prediction request body.
pub const SEED_BODY: &str = r#"{"feed":[{"x":[0.0137,-0.1136,0.2553,-0.0692,0.0582,-0.0727,-0.1583,-0.0235,-0.0254,-0.0136,0.0085,0.0209,0.0087]}],"fetch":["price"]}"#;

/// What the fixed-answer upstream sends for every request: the shape of the demo model's answer.
pub const UPSTREAM_ANSWER: &str = r#"{"result":{"price":[[18.891274]]}}"#;
