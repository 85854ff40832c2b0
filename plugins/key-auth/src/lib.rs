//! `key-auth`: admits only requests that present a known API key, the way Kong's key-auth does,
//! and tells the upstream which consumer it was.
//!
//! | key | type | default | meaning |
//! | --- | --- | --- | --- |
//! | `key_names` | list of strings | `["apikey"]` | header names / query parameter names that carry the key, tried in order |
//! | `key_in_header` | bool | `true` | look for the key in request headers (names case-insensitive) |
//! | `key_in_query` | bool | `false` | look for the key in the query string (off: keys in URLs end up in logs) |
//! | `hide_credentials` | bool | `true` | remove every `key_names` header / query parameter before the request goes upstream |
//! | `consumers` | list | required, non-empty | `{ "username": "...", "keys": ["plain key"], "key_sha256": ["64 hex digits"] }` |
//!
//! Each consumer needs a non-empty, unique `username` and at least one key, in `keys` (plain) or
//! `key_sha256` (the hex SHA-256 of the key, so the configuration need not hold the key). Keys must
//! be unique across all consumers.
//!
//! Only digests are kept after configure, never a key: the SHA-256 of each key, and its BLAKE3
//! once known. A presented key is hashed and compared, in constant time, with every stored digest,
//! never stopping at the first match.
//!
//! A key is first looked for by its BLAKE3 digest, about half the cost of SHA-256 in wasm.
//! Plain `keys` have theirs from configure; a `key_sha256` key gets its own the first time a
//! request presents it and it matches by SHA-256. So a key seen before costs one BLAKE3; an
//! unknown key costs a BLAKE3 and a SHA-256. BLAKE3 is collision- and preimage-resistant like
//! SHA-256: for random keys the stored digests give no way to a key, or to another key that would
//! match (a guessable key can be found from either digest by trying candidates; use random keys).
//!
//! | request | answer |
//! | --- | --- |
//! | no key (or an empty one) | `401 {"message":"No API key found in request"}`, `www-authenticate: Key realm="wasmgate"` |
//! | unknown key | `401 {"message":"Invalid authentication credentials"}`, same `www-authenticate` |
//! | known key | continues upstream with `x-consumer-username: <username>` (any client-sent one removed) |
//!
//! No key is ever logged.

use std::cell::Cell;
use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::digest::generic_array::GenericArray;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use wasmgate_sdk::{Decision, Plugin, Request};

/// Header that tells the upstream who the authenticated consumer is.
pub const CONSUMER_HEADER: &str = "x-consumer-username";
/// Sent with every 401, as RFC 9110 asks.
const WWW_AUTHENTICATE: &str = r#"Key realm="wasmgate""#;
const NO_KEY: &str = "No API key found in request";
const INVALID_KEY: &str = "Invalid authentication credentials";

/// Configuration of `key-auth` (see the crate docs for the table).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Header / query parameter names that carry the key.
    #[serde(default = "default_key_names")]
    pub key_names: Vec<String>,
    /// Look in headers.
    #[serde(default = "yes")]
    pub key_in_header: bool,
    /// Look in the query string.
    #[serde(default)]
    pub key_in_query: bool,
    /// Strip the key before the request goes upstream.
    #[serde(default = "yes")]
    pub hide_credentials: bool,
    /// Who may call, and with which keys.
    #[serde(default)]
    pub consumers: Vec<ConsumerConfig>,
}

/// One consumer in the configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Name sent upstream in `x-consumer-username`.
    pub username: String,
    /// Plain keys (hashed at configure time).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Hex SHA-256 digests of keys.
    #[serde(default)]
    pub key_sha256: Vec<String>,
}

fn default_key_names() -> Vec<String> {
    vec!["apikey".to_owned()]
}

fn yes() -> bool {
    true
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// It presents no key (or only empty ones).
    NoKey,
    /// Its key is not a known one.
    InvalidKey,
}

/// One stored key: its digests, as words as requests compare them, and the index of its
/// consumer.
#[derive(Debug)]
struct Credential {
    /// SHA-256 of the key.
    words: [u64; 4],
    /// BLAKE3 of the key, once known: from configure for a plain key, from the first request
    /// that presents it for a `key_sha256` one (`known` says which).
    quick: Cell<[u64; 4]>,
    known: Cell<bool>,
    consumer: u32,
}

impl Credential {
    fn new(words: [u64; 4], quick: Option<[u64; 4]>, consumer: u32) -> Self {
        Credential {
            words,
            quick: Cell::new(quick.unwrap_or_default()),
            known: Cell::new(quick.is_some()),
            consumer,
        }
    }
}

/// The configured plugin.
#[derive(Debug)]
pub struct KeyAuth {
    key_names: Vec<String>,
    key_in_header: bool,
    key_in_query: bool,
    hide_credentials: bool,
    usernames: Vec<String>,
    credentials: Vec<Credential>,
}

/// An HTTP header name is a non-empty RFC 9110 token; key names must be usable as one.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Decodes exactly 64 hex digits (either case) into a digest.
fn decode_sha256_hex(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi << 4 | lo) as u8;
    }
    Some(out)
}

/// The SHA-256 state after hashing `bytes`: the message padded here (FIPS 180-4, 5.1.1) and
/// compressed by `sha2`'s block function. A key is hashed on every request: `Sha256::digest`
/// copied it through a block buffer about a dozen times, which in wasm cost a third as much as
/// the compression itself. Checked against `Sha256::digest` for every length up to four blocks.
fn sha256_state(bytes: &[u8]) -> [u32; 8] {
    /// The initial hash value H(0) (FIPS 180-4, 5.3.3).
    const H0: [u32; 8] = [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ];
    fn compress(state: &mut [u32; 8], block: &[u8]) {
        sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
    }
    let mut state = H0;
    let mut blocks = bytes.chunks_exact(64);
    for block in &mut blocks {
        compress(&mut state, block);
    }
    // The rest, the 0x80 byte, zeros, and the length in bits: one block, or two when the rest
    // leaves no room for the length.
    let rest = blocks.remainder();
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let end = if rest.len() < 56 { 64 } else { 128 };
    let bits = (bytes.len() as u64).wrapping_mul(8);
    tail[end - 8..end].copy_from_slice(&bits.to_be_bytes());
    for block in tail[..end].chunks_exact(64) {
        compress(&mut state, block);
    }
    state
}

/// SHA-256 of `bytes`: the state's words, big-endian (the digest as `Sha256::digest` gives it,
/// for the tests; the plugin itself works on [`key_words`]).
#[cfg(test)]
fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut digest = [0u8; 32];
    for (out, word) in digest.chunks_exact_mut(4).zip(sha256_state(bytes)) {
        out.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

/// A digest as four words, so comparing two costs four XORs instead of 32 byte steps: the
/// digest's bytes in eights, little-endian.
fn digest_words(digest: &[u8; 32]) -> [u64; 4] {
    std::array::from_fn(|i| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&digest[i * 8..i * 8 + 8]);
        u64::from_le_bytes(word)
    })
}

/// `digest_words(&sha256(key))`, straight from the hash state: the request path's form, without
/// the byte copies (short copies are calls in wasm).
fn key_words(key: &[u8]) -> [u64; 4] {
    let state = sha256_state(key);
    // Word i is digest bytes 8i..8i+8 read little-endian: state[2i] and state[2i+1] written
    // big-endian, so each half is its state word byte-swapped.
    let word = |i: usize| {
        u64::from(state[2 * i].swap_bytes()) | u64::from(state[2 * i + 1].swap_bytes()) << 32
    };
    // Spelled out: `array::from_fn` stays a call into std's iterator code in wasm.
    [word(0), word(1), word(2), word(3)]
}

/// BLAKE3 of a key, as words in the same order as [`digest_words`].
fn quick_words(key: &[u8]) -> [u64; 4] {
    digest_words(blake3::hash(key).as_bytes())
}

/// Whether two digests are equal, in constant time: every word's difference is folded into one
/// word, which `subtle` compares with zero without a data-dependent branch. (`subtle`'s own
/// `[u8]` comparison fences every byte and cost more than the hash.)
fn digests_equal(a: &[u64; 4], b: &[u64; 4]) -> Choice {
    let diff = a.iter().zip(b).fold(0u64, |acc, (x, y)| acc | (x ^ y));
    diff.ct_eq(&0)
}

impl KeyAuth {
    /// The username whose key this is. Compares the key's digest with every stored digest in
    /// constant time and does not stop early, so timing tells nothing about which key or how
    /// many keys are close.
    ///
    /// The key is looked for by its BLAKE3 digest first, then, when that finds nothing, by its
    /// SHA-256 digest; a match there records the BLAKE3 digest for the next request. So a valid
    /// key presented before answers sooner than one presented for the first time or an invalid
    /// one; which key it is, or how close a wrong key came, timing does not tell.
    fn authenticate(&self, key: &[u8]) -> Option<&str> {
        let quick = quick_words(key);
        let index = match self.find(&quick, |c| (c.quick.get(), c.known.get())) {
            Some(index) => index,
            None => {
                let index = self.find(&key_words(key), |c| (c.words, true))?;
                let cred = &self.credentials[index];
                cred.quick.set(quick);
                cred.known.set(true);
                index
            }
        };
        self.usernames
            .get(self.credentials[index].consumer as usize)
            .map(String::as_str)
    }

    /// The index of the credential whose digest, as `stored` gives it with whether it is valid,
    /// equals `wanted`. Every credential is compared, without a branch on the digests.
    fn find(
        &self,
        wanted: &[u64; 4],
        stored: impl Fn(&Credential) -> ([u64; 4], bool),
    ) -> Option<usize> {
        let mut found = Choice::from(0);
        let mut index = 0u64;
        for (i, cred) in (0u64..).zip(&self.credentials) {
            let (digest, valid) = stored(cred);
            let eq = digests_equal(&digest, wanted) & Choice::from(u8::from(valid));
            index.conditional_assign(&i, eq);
            found |= eq;
        }
        bool::from(found).then(|| usize::try_from(index).expect("an index of the credentials"))
    }

    /// Authenticates the first non-empty key the request presents, in `key_names` order, header
    /// before query: its consumer, or why the request is refused.
    fn check_key(&self, req: &Request<'_>) -> Result<&str, Refusal> {
        let check = |key: &[u8]| self.authenticate(key).ok_or(Refusal::InvalidKey);
        for name in &self.key_names {
            // Looked at in the buffer the host filled, which the SDK keeps (`read_header`).
            if self.key_in_header
                && let Some(result) =
                    req.read_header(name, |v| v.filter(|v| !v.is_empty()).map(check))
            {
                return result;
            }
            if self.key_in_query
                && let Some(v) = req.query_param_bytes(name).filter(|v| !v.is_empty())
            {
                return check(&v);
            }
        }
        Err(Refusal::NoKey)
    }

    fn reject(message: &str) -> Decision {
        Decision::reject_json(401, message).with_header("www-authenticate", WWW_AUTHENTICATE)
    }
}

impl Plugin for KeyAuth {
    type Config = Config;

    fn configure(config: Config) -> Result<Self, String> {
        if config.key_names.is_empty() {
            return Err("key_names: at least one name is required".to_owned());
        }
        for (i, name) in config.key_names.iter().enumerate() {
            if !is_token(name) {
                return Err(format!(
                    "key_names[{i}]: {name:?} is not a valid header or parameter name"
                ));
            }
        }
        if !config.key_in_header && !config.key_in_query {
            return Err(
                "key_in_header, key_in_query: both are false, so no key could ever be found"
                    .to_owned(),
            );
        }
        if config.consumers.is_empty() {
            return Err("consumers: at least one consumer is required".to_owned());
        }

        let mut usernames: Vec<String> = Vec::with_capacity(config.consumers.len());
        let mut credentials: Vec<Credential> = Vec::new();
        // Where each credential came from, for duplicate messages (never the key itself).
        let mut origins: Vec<String> = Vec::new();
        // Duplicates are found through ordered maps: comparing each with all before it was
        // quadratic, about 5e7 digest compares for 10k consumers.
        let mut seen_usernames: BTreeMap<String, usize> = BTreeMap::new();
        let mut seen_digests: BTreeMap<[u64; 4], usize> = BTreeMap::new();
        for (ci, consumer) in config.consumers.into_iter().enumerate() {
            let username = consumer.username;
            if username.trim().is_empty() {
                return Err(format!("consumers[{ci}].username: must not be empty"));
            }
            if username.chars().any(char::is_control) || username.trim() != username {
                return Err(format!(
                    "consumers[{ci}].username: must not have control characters or surrounding spaces"
                ));
            }
            if let Some(prev) = seen_usernames.insert(username.clone(), ci) {
                return Err(format!(
                    "consumers[{ci}].username: duplicate of consumers[{prev}].username"
                ));
            }
            if consumer.keys.is_empty() && consumer.key_sha256.is_empty() {
                return Err(format!(
                    "consumers[{ci}]: needs at least one key in keys or key_sha256"
                ));
            }
            let index = u32::try_from(ci).map_err(|_| "consumers: too many".to_owned())?;
            let mut entries = Vec::new();
            for (ki, key) in consumer.keys.iter().enumerate() {
                if key.is_empty() {
                    return Err(format!("consumers[{ci}].keys[{ki}]: must not be empty"));
                }
                entries.push((
                    format!("consumers[{ci}].keys[{ki}]"),
                    key_words(key.as_bytes()),
                    Some(quick_words(key.as_bytes())),
                ));
            }
            for (ki, hex) in consumer.key_sha256.iter().enumerate() {
                let place = format!("consumers[{ci}].key_sha256[{ki}]");
                let digest =
                    decode_sha256_hex(hex).ok_or_else(|| format!("{place}: not 64 hex digits"))?;
                entries.push((place, digest_words(&digest), None));
            }
            for (place, words, quick) in entries {
                if let Some(&prev) = seen_digests.get(&words) {
                    return Err(format!(
                        "{place}: duplicate key (same as {})",
                        origins[prev]
                    ));
                }
                seen_digests.insert(words, credentials.len());
                credentials.push(Credential::new(words, quick, index));
                origins.push(place);
            }
            usernames.push(username);
        }
        wasmgate_sdk::info!(
            "key-auth: {} consumers, {} keys",
            usernames.len(),
            credentials.len()
        );
        Ok(KeyAuth {
            key_names: config.key_names,
            key_in_header: config.key_in_header,
            key_in_query: config.key_in_query,
            hide_credentials: config.hide_credentials,
            usernames,
            credentials,
        })
    }

    fn on_request(&self, req: &mut Request<'_>) -> Decision {
        let username = match self.check_key(req) {
            Ok(username) => username,
            Err(Refusal::NoKey) => {
                wasmgate_sdk::debug!("key-auth: request without an API key refused");
                return Self::reject(NO_KEY);
            }
            Err(Refusal::InvalidKey) => {
                wasmgate_sdk::info!("key-auth: request with an invalid API key refused");
                return Self::reject(INVALID_KEY);
            }
        };
        if self.hide_credentials {
            for name in &self.key_names {
                if self.key_in_header {
                    req.remove_header(name);
                }
                if self.key_in_query {
                    req.remove_query_param(name);
                }
            }
        }
        // A client must not be able to claim a consumer: drop whatever it sent, then set ours.
        req.remove_header(CONSUMER_HEADER);
        req.set_header(CONSUMER_HEADER, username);
        wasmgate_sdk::debug!("key-auth: consumer {username} authenticated");
        Decision::Continue
    }
}

wasmgate_sdk::export_plugin!(KeyAuth);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_sdk::testing::{TestRequest, configure, take_logs};

    const KEY: &str = "hP6v25BQVS5CcS1nqKpxdrFkUxze9JWD";
    /// SHA-256 of "secret", computed outside Rust.
    const SECRET_SHA256: &str = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";

    fn config(extra: &str) -> String {
        format!(
            r#"{{{extra}"consumers":[
                {{"username":"alice","keys":["{KEY}"]}},
                {{"username":"bob","keys":["bob-key-1"],"key_sha256":["{SECRET_SHA256}"]}}
            ]}}"#
        )
    }

    fn plugin(extra: &str) -> KeyAuth {
        configure(&config(extra)).unwrap()
    }

    #[test]
    fn sha256_matches_the_sha2_digest_at_every_length() {
        use sha2::{Digest, Sha256};
        // Every length over one to four blocks, each padding case included (55, 56, 63, 64...).
        let data: Vec<u8> = (0..=256u32).map(|i| (i * 131 + 7) as u8).collect();
        for len in 0..=data.len() {
            let want: [u8; 32] = Sha256::digest(&data[..len]).into();
            assert_eq!(sha256(&data[..len]), want, "length {len}");
            assert_eq!(key_words(&data[..len]), digest_words(&want), "length {len}");
        }
        assert_eq!(
            sha256(b"secret"),
            decode_sha256_hex(SECRET_SHA256).unwrap(),
            "the known digest of \"secret\""
        );
    }

    #[test]
    fn digests_differing_in_any_bit_are_unequal() {
        let a = digest_words(&sha256(KEY.as_bytes()));
        assert!(bool::from(digests_equal(&a, &a)));
        for byte in 0..32 {
            for bit in 0..8 {
                let mut b = sha256(KEY.as_bytes());
                b[byte] ^= 1 << bit;
                assert!(!bool::from(digests_equal(&a, &digest_words(&b))));
            }
        }
    }

    #[test]
    fn valid_key_in_header_admits_and_names_the_consumer() {
        let p = plugin("");
        let out = TestRequest::post("/serving-uci/uci/prediction")
            .header("apikey", KEY)
            .header("x-instance-id", "kong_ins")
            .run(&p);
        assert!(out.is_continue());
        assert_eq!(out.header(CONSUMER_HEADER).as_deref(), Some("alice"));
        // hide_credentials defaults to true.
        assert_eq!(out.header("apikey"), None);
        assert_eq!(out.header("x-instance-id").as_deref(), Some("kong_ins"));
        assert_eq!(out.path(), "/serving-uci/uci/prediction");
    }

    #[test]
    fn header_name_is_case_insensitive_and_keys_map_to_their_consumer() {
        let p = plugin("");
        let out = TestRequest::get("/").header("APIKEY", "bob-key-1").run(&p);
        assert_eq!(out.header(CONSUMER_HEADER).as_deref(), Some("bob"));
        let out = TestRequest::get("/").header("ApiKey", "secret").run(&p);
        assert_eq!(out.header(CONSUMER_HEADER).as_deref(), Some("bob"));
        let out = TestRequest::get("/").header("apikey", KEY).run(&p);
        assert_eq!(out.header(CONSUMER_HEADER).as_deref(), Some("alice"));
    }

    #[test]
    fn spoofed_consumer_header_is_replaced() {
        let p = plugin("");
        let out = TestRequest::get("/")
            .header("x-consumer-username", "admin")
            .header("X-Consumer-Username", "root")
            .header("apikey", "bob-key-1")
            .run(&p);
        assert_eq!(out.header_values(CONSUMER_HEADER), vec!["bob"]);
    }

    #[test]
    fn missing_key_is_401_with_challenge() {
        let p = plugin("");
        for req in [
            TestRequest::post("/x"),
            TestRequest::post("/x").header("apikey", ""),
            TestRequest::post("/x").header("api-key", KEY),
            // The query is not looked at by default.
            TestRequest::post(&format!("/x?apikey={KEY}")),
        ] {
            let out = req.run(&p);
            assert_eq!(out.status(), Some(401));
            assert_eq!(out.message().as_deref(), Some(NO_KEY));
            let r = out.local_response().unwrap();
            assert_eq!(
                r.header("www-authenticate"),
                Some(r#"Key realm="wasmgate""#)
            );
            assert_eq!(r.header("content-type"), Some("application/json"));
            assert_eq!(r.body, br#"{"message":"No API key found in request"}"#);
        }
    }

    #[test]
    fn wrong_key_is_401_invalid() {
        let p = plugin("");
        let almost = &KEY[..KEY.len() - 1];
        for bad in [almost, "secret2", "SECRET", SECRET_SHA256, "bob-key-1 x"] {
            let out = TestRequest::post("/x").header("apikey", bad).run(&p);
            assert_eq!(out.status(), Some(401), "{bad}");
            assert_eq!(out.message().as_deref(), Some(INVALID_KEY));
        }
        // Two key headers read as one joined value, which is no key.
        let out = TestRequest::post("/x")
            .header("apikey", KEY)
            .header("apikey", KEY)
            .run(&p);
        assert_eq!(out.message().as_deref(), Some(INVALID_KEY));
        // Not valid UTF-8: compared as bytes, refused.
        let out = TestRequest::post("/x")
            .header_bytes("apikey", b"\xff\xfe")
            .run(&p);
        assert_eq!(out.message().as_deref(), Some(INVALID_KEY));
    }

    #[test]
    fn hide_credentials_false_keeps_the_key() {
        let p = plugin(r#""hide_credentials":false,"#);
        let out = TestRequest::get("/").header("apikey", KEY).run(&p);
        assert!(out.is_continue());
        assert_eq!(out.header("apikey").as_deref(), Some(KEY));
    }

    #[test]
    fn key_in_query() {
        let p = plugin(r#""key_in_query":true,"#);
        let out = TestRequest::get(&format!("/p?a=1&apikey={KEY}&b=2")).run(&p);
        assert!(out.is_continue());
        assert_eq!(out.header(CONSUMER_HEADER).as_deref(), Some("alice"));
        assert_eq!(out.path(), "/p?a=1&b=2");
        // Percent-encoded keys are decoded.
        let out = TestRequest::get("/p?apikey=bob%2Dkey%2D1").run(&p);
        assert_eq!(out.header(CONSUMER_HEADER).as_deref(), Some("bob"));
        assert_eq!(out.path(), "/p");
        // The header still works and wins; the query copy is stripped too.
        let out = TestRequest::get("/p?apikey=wrong")
            .header("apikey", "secret")
            .run(&p);
        assert_eq!(out.header(CONSUMER_HEADER).as_deref(), Some("bob"));
        assert_eq!(out.path(), "/p");
        assert_eq!(out.header("apikey"), None);
        let out = TestRequest::get("/p?apikey=wrong").run(&p);
        assert_eq!(out.message().as_deref(), Some(INVALID_KEY));
    }

    #[test]
    fn query_only() {
        let p = plugin(r#""key_in_query":true,"key_in_header":false,"hide_credentials":false,"#);
        let out = TestRequest::get("/").header("apikey", KEY).run(&p);
        assert_eq!(out.message().as_deref(), Some(NO_KEY));
        let out = TestRequest::get(&format!("/?apikey={KEY}")).run(&p);
        assert!(out.is_continue());
        assert_eq!(out.path(), format!("/?apikey={KEY}"));
    }

    #[test]
    fn several_key_names() {
        let p = plugin(r#""key_names":["apikey","x-api-key"],"#);
        let out = TestRequest::get("/")
            .header("x-api-key", KEY)
            .header("apikey", "bob-key-1")
            .run(&p);
        // Names are tried in order; every configured name is stripped.
        assert_eq!(out.header(CONSUMER_HEADER).as_deref(), Some("bob"));
        assert_eq!(out.header("x-api-key"), None);
        assert_eq!(out.header("apikey"), None);
        let out = TestRequest::get("/").header("X-Api-Key", KEY).run(&p);
        assert_eq!(out.header(CONSUMER_HEADER).as_deref(), Some("alice"));
    }

    #[test]
    fn keys_are_never_logged() {
        let p = plugin(r#""key_in_query":true,"#);
        let _ = take_logs();
        TestRequest::get("/").header("apikey", KEY).run(&p);
        TestRequest::get("/")
            .header("apikey", "wrong-key-value")
            .run(&p);
        TestRequest::get("/?apikey=query-key-value").run(&p);
        TestRequest::get("/").run(&p);
        let logs = take_logs();
        assert!(!logs.is_empty());
        for (_, line) in logs {
            for secret in [KEY, "wrong-key-value", "query-key-value", "secret"] {
                assert!(!line.contains(secret), "{line}");
            }
        }
    }

    #[test]
    fn hex_digests() {
        assert_eq!(decode_sha256_hex(SECRET_SHA256), Some(sha256(b"secret")));
        let upper = SECRET_SHA256.to_uppercase();
        assert_eq!(decode_sha256_hex(&upper), Some(sha256(b"secret")));
        assert_eq!(decode_sha256_hex(&SECRET_SHA256[1..]), None);
        assert_eq!(
            decode_sha256_hex(&format!("{}g", &SECRET_SHA256[1..])),
            None
        );
        assert_eq!(
            decode_sha256_hex(&format!("+{}", &SECRET_SHA256[1..])),
            None
        );
    }

    #[test]
    fn bad_configs_are_refused() {
        let ok = r#"{"username":"a","keys":["k"]}"#;
        let cases = [
            ("".to_owned(), "consumers: at least one consumer"),
            (
                r#"{"consumers":[]}"#.to_owned(),
                "consumers: at least one consumer",
            ),
            (
                r#"{"consumers":[{"username":"","keys":["k"]}]}"#.to_owned(),
                "consumers[0].username: must not be empty",
            ),
            (
                r#"{"consumers":[{"username":"a\r\nx: y","keys":["k"]}]}"#.to_owned(),
                "consumers[0].username: must not have control",
            ),
            (
                format!(r#"{{"consumers":[{ok},{{"username":"a","keys":["k2"]}}]}}"#),
                "consumers[1].username: duplicate of consumers[0].username",
            ),
            (
                r#"{"consumers":[{"username":"a"}]}"#.to_owned(),
                "consumers[0]: needs at least one key",
            ),
            (
                r#"{"consumers":[{"username":"a","keys":["k",""]}]}"#.to_owned(),
                "consumers[0].keys[1]: must not be empty",
            ),
            (
                format!(r#"{{"consumers":[{ok},{{"username":"b","key_sha256":["abc"]}}]}}"#),
                "consumers[1].key_sha256[0]: not 64 hex digits",
            ),
            (
                format!(r#"{{"consumers":[{ok},{{"username":"b","keys":["k"]}}]}}"#),
                "consumers[1].keys[0]: duplicate key (same as consumers[0].keys[0])",
            ),
            (
                format!(
                    r#"{{"consumers":[{{"username":"a","keys":["secret"]}},{{"username":"b","key_sha256":["{SECRET_SHA256}"]}}]}}"#
                ),
                "consumers[1].key_sha256[0]: duplicate key (same as consumers[0].keys[0])",
            ),
            (
                format!(r#"{{"key_names":[],"consumers":[{ok}]}}"#),
                "key_names: at least one name",
            ),
            (
                format!(r#"{{"key_names":["api key"],"consumers":[{ok}]}}"#),
                "key_names[0]: \"api key\" is not a valid",
            ),
            (
                format!(r#"{{"key_in_header":false,"consumers":[{ok}]}}"#),
                "key_in_header, key_in_query: both are false",
            ),
            (
                r#"{"consumers":[{"username":"a","keys":"k"}]}"#.to_owned(),
                "consumers[0].keys: invalid type",
            ),
            (
                r#"{"consumers":[{"username":"a","key":["k"]}]}"#.to_owned(),
                "unknown field `key`",
            ),
            (
                format!(r#"{{"hide_credential":true,"consumers":[{ok}]}}"#),
                "unknown field `hide_credential`",
            ),
        ];
        for (json, want) in cases {
            let err = configure::<KeyAuth>(&json).unwrap_err();
            assert!(err.contains(want), "{json}\n  got: {err}\n want: {want}");
            assert!(!err.contains("\"k\""), "a key leaked into: {err}");
        }
    }

    #[test]
    fn seed_setup_with_a_stored_digest() {
        // The gateway's seed route stores only the digest of the demo key.
        let p: KeyAuth = configure(
            r#"{"consumers":[
                {"username":"demo","key_sha256":["dceb76cf5cd7ce48e83deebd5db793e68fbc7ffbf9796569e38ede2e7e28aa70"]},
                {"username":"other","keys":["second-key"]}
            ]}"#,
        )
        .unwrap();
        let out = TestRequest::post("/serving-uci/uci/prediction?trace=1")
            .header("apikey", KEY)
            .header("x-consumer-username", "admin")
            .run(&p);
        assert!(out.is_continue());
        assert_eq!(out.header_values(CONSUMER_HEADER), vec!["demo"]);
        assert_eq!(out.header("apikey"), None);
        assert_eq!(out.path(), "/serving-uci/uci/prediction?trace=1");
        let out = TestRequest::post("/")
            .header("apikey", "second-key")
            .run(&p);
        assert_eq!(out.header(CONSUMER_HEADER).as_deref(), Some("other"));
    }

    /// Which credentials know their key's BLAKE3 digest, in order.
    fn known(p: &KeyAuth) -> Vec<bool> {
        p.credentials.iter().map(|c| c.known.get()).collect()
    }

    fn consumer_for(p: &KeyAuth, key: &str) -> Option<String> {
        let out = TestRequest::post("/").header("apikey", key).run(p);
        out.is_continue()
            .then(|| out.header(CONSUMER_HEADER).expect("a consumer"))
    }

    #[test]
    fn a_stored_digest_learns_its_blake3_digest_from_the_first_valid_request() {
        let p = plugin("");
        // alice: one plain key; bob: a plain key and the digest of "secret".
        assert_eq!(known(&p), [true, true, false]);
        assert_eq!(p.credentials[0].quick.get(), quick_words(KEY.as_bytes()));

        // Wrong keys, a wrong key of the right length included, record nothing.
        for wrong in ["secreT", "secret ", "bob-key-2", "x"] {
            assert_eq!(consumer_for(&p, wrong), None, "{wrong}");
        }
        assert_eq!(known(&p), [true, true, false]);

        assert_eq!(consumer_for(&p, "secret").as_deref(), Some("bob"));
        assert_eq!(known(&p), [true, true, true]);
        assert_eq!(p.credentials[2].quick.get(), quick_words(b"secret"));

        // Now every key is found by BLAKE3 alone, each for its own consumer, and the wrong ones
        // still fall through both lookups.
        for _ in 0..2 {
            assert_eq!(consumer_for(&p, "secret").as_deref(), Some("bob"));
            assert_eq!(consumer_for(&p, KEY).as_deref(), Some("alice"));
            assert_eq!(consumer_for(&p, "bob-key-1").as_deref(), Some("bob"));
            assert_eq!(consumer_for(&p, "secreT"), None);
        }
    }

    #[test]
    fn a_blake3_digest_counts_only_once_known() {
        let p = plugin("");
        // A digest slot not yet known must never match, whatever it holds.
        p.credentials[2].quick.set(quick_words(b"not secret"));
        assert_eq!(consumer_for(&p, "not secret"), None);
        assert_eq!(known(&p), [true, true, false]);
        assert_eq!(consumer_for(&p, "secret").as_deref(), Some("bob"));
        assert_eq!(p.credentials[2].quick.get(), quick_words(b"secret"));
        assert_eq!(consumer_for(&p, "not secret"), None);
        assert_eq!(p.credentials[1].quick.get(), quick_words(b"bob-key-1"));
        assert_ne!(quick_words(b"secret"), key_words(b"secret"));
    }

    #[test]
    fn configure_logs_counts_only() {
        let _ = take_logs();
        plugin("");
        let logs = take_logs();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].1, "key-auth: 2 consumers, 3 keys");
    }

    #[test]
    fn many_consumers_configure_and_the_last_duplicate_is_found() {
        let consumers: Vec<String> = (0..5000)
            .map(|i| format!(r#"{{"username":"user-{i}","keys":["key-{i}"]}}"#))
            .collect();
        let plugin: KeyAuth =
            configure(&format!(r#"{{"consumers":[{}]}}"#, consumers.join(","))).unwrap();
        assert_eq!(plugin.authenticate(b"key-4999"), Some("user-4999"));
        assert_eq!(plugin.authenticate(b"key-0"), Some("user-0"));
        assert_eq!(plugin.authenticate(b"key-5000"), None);

        // A duplicate username and a duplicate key at the end of a long list name the first.
        let mut dup_user = consumers.clone();
        dup_user.push(r#"{"username":"user-17","keys":["other"]}"#.to_owned());
        let err = configure::<KeyAuth>(&format!(r#"{{"consumers":[{}]}}"#, dup_user.join(",")))
            .err()
            .unwrap();
        assert!(
            err.contains("consumers[5000].username: duplicate of consumers[17].username"),
            "{err}"
        );
        let mut dup_key = consumers;
        dup_key.push(r#"{"username":"late","keys":["key-4321"]}"#.to_owned());
        let err = configure::<KeyAuth>(&format!(r#"{{"consumers":[{}]}}"#, dup_key.join(",")))
            .err()
            .unwrap();
        assert!(
            err.contains(
                "consumers[5000].keys[0]: duplicate key (same as consumers[4321].keys[0])"
            ),
            "{err}"
        );
    }
}
