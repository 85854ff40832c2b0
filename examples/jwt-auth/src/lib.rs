//! `jwt-auth`: admits requests that carry a valid JSON Web Token, and passes its subject upstream.
//!
//! The token is read from `Authorization: Bearer <token>` (or a configured header), verified with
//! HS256 (a shared secret) or RS256 (an RSA public key, PEM or JWK), and its `exp`, `nbf`, `aud`
//! and optionally `iss` claims are checked with a leeway. A good token's `sub` goes upstream in
//! `x-jwt-subject` (whatever the client sent there is dropped first) and the token itself is
//! removed. Anything else is answered `401` with a JSON reason and a `WWW-Authenticate: Bearer`
//! challenge; the token is never logged.
//!
//! Each configured key is fixed to one algorithm, so `alg: none` and algorithm confusion (an RS256
//! public key used as an HS256 secret) are refused. Config, with every key:
//!
//! ```json
//! {
//!   "keys": [
//!     {"kid": "hs-1", "secret": "at least 32 bytes of shared secret!!"},
//!     {"kid": "rs-1", "public_key_pem": "-----BEGIN PUBLIC KEY-----\n..."},
//!     {"kid": "rs-2", "kty": "RSA", "n": "...", "e": "AQAB"}
//!   ],
//!   "audience": ["models"],
//!   "issuer": "https://login.example.com/",
//!   "leeway_s": 30,
//!   "header": "authorization",
//!   "scheme": "Bearer",
//!   "subject_header": "x-jwt-subject",
//!   "strip_token": true,
//!   "require_exp": true
//! }
//! ```
//!
//! `key` (one key object) can replace `keys`: then the token needs no `kid`.

mod jwt;
mod keys;

pub use jwt::{MAX_TOKEN_BYTES, Reject, Rules, Verified};
pub use keys::{Alg, Key, KeyConfig, MIN_HS256_SECRET, MIN_RSA_BITS};

use serde::Deserialize;
use wasmgate_sdk::{Decision, Plugin, Request};

/// The largest `leeway_s` accepted: one day.
pub const MAX_LEEWAY_S: u64 = 86_400;

/// The plugin's configuration (JSON).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// One key, used for every token (`keys` or `key`, not both).
    #[serde(default)]
    pub key: Option<KeyConfig>,
    /// Several keys, each with a distinct `kid`; the token's `kid` header picks one.
    #[serde(default)]
    pub keys: Option<Vec<KeyConfig>>,
    /// Accepted audiences (one string or a list): the token's `aud` must name one.
    pub audience: OneOrMany,
    /// Required issuer (`iss`); not checked when absent.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds (default 30, at most a day).
    #[serde(default = "default_leeway")]
    pub leeway_s: u64,
    /// Header that carries the token (default `authorization`).
    #[serde(default = "default_header")]
    pub header: String,
    /// Auth scheme before the token in that header (default `Bearer`, matched without case);
    /// `""` when the header holds the bare token.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// Header the subject goes upstream in (default `x-jwt-subject`).
    #[serde(default = "default_subject_header")]
    pub subject_header: String,
    /// Remove the token header before the request goes upstream (default true).
    #[serde(default = "default_true")]
    pub strip_token: bool,
    /// Refuse tokens without an `exp` claim (default true).
    #[serde(default = "default_true")]
    pub require_exp: bool,
}

/// A string or a list of strings.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// `"models"`
    One(String),
    /// `["models", "admin"]`
    Many(Vec<String>),
}

fn default_leeway() -> u64 {
    30
}
fn default_header() -> String {
    "authorization".to_owned()
}
fn default_scheme() -> String {
    "Bearer".to_owned()
}
fn default_subject_header() -> String {
    "x-jwt-subject".to_owned()
}
fn default_true() -> bool {
    true
}

/// An HTTP token (RFC 9110 `tchar`s): what a header name and an auth scheme must be.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The configured plugin.
#[derive(Debug)]
pub struct JwtAuth {
    rules: Rules,
    header: String,
    scheme: String,
    subject_header: String,
    strip_token: bool,
}

impl JwtAuth {
    /// The token in the request, if there is one in the configured header and scheme.
    fn token<'a>(&self, value: &'a str) -> Option<&'a str> {
        let token = if self.scheme.is_empty() {
            value.trim()
        } else {
            let (scheme, rest) = value.trim().split_once(' ')?;
            if !scheme.eq_ignore_ascii_case(&self.scheme) {
                return None;
            }
            rest.trim_start_matches(' ')
        };
        (!token.is_empty()).then_some(token)
    }

    fn reject(reason: Reject) -> Decision {
        let challenge = match reason {
            // RFC 6750 section 3.1: no error code when the request had no credentials.
            Reject::Missing => r#"Bearer realm="wasmgate""#.to_owned(),
            _ => format!(
                r#"Bearer realm="wasmgate", error="invalid_token", error_description="{}""#,
                reason.message()
            ),
        };
        Decision::reject_json(401, reason.message()).with_header("www-authenticate", &challenge)
    }
}

impl Plugin for JwtAuth {
    type Config = Config;

    fn configure(config: Config) -> Result<Self, String> {
        let (keys, single) = match (config.key, config.keys) {
            (Some(_), Some(_)) => return Err("key, keys: give one of them, not both".to_owned()),
            (None, None) => return Err("keys: at least one key is required".to_owned()),
            (Some(k), None) => (vec![Key::from_config("key", k)?], true),
            (None, Some(list)) => {
                if list.is_empty() {
                    return Err("keys: at least one key is required".to_owned());
                }
                let mut keys: Vec<Key> = Vec::with_capacity(list.len());
                for (i, k) in list.into_iter().enumerate() {
                    let place = format!("keys[{i}]");
                    let key = Key::from_config(&place, k)?;
                    let Some(kid) = &key.kid else {
                        return Err(format!(
                            "{place}.kid: required when keys are listed (use `key` for one key without kid)"
                        ));
                    };
                    if let Some(j) = keys.iter().position(|o| o.kid.as_ref() == Some(kid)) {
                        return Err(format!("{place}.kid: duplicate of keys[{j}].kid"));
                    }
                    keys.push(key);
                }
                (keys, false)
            }
        };
        let audiences = match config.audience {
            OneOrMany::One(a) => vec![a],
            OneOrMany::Many(list) => list,
        };
        if audiences.is_empty() {
            return Err("audience: at least one audience is required".to_owned());
        }
        if let Some(i) = audiences.iter().position(String::is_empty) {
            return Err(format!("audience[{i}]: must not be empty"));
        }
        if config.issuer.as_deref() == Some("") {
            return Err("issuer: must not be empty (leave it out to accept any)".to_owned());
        }
        if config.leeway_s > MAX_LEEWAY_S {
            return Err(format!("leeway_s: at most {MAX_LEEWAY_S}"));
        }
        for (field, value) in [
            ("header", &config.header),
            ("subject_header", &config.subject_header),
        ] {
            if !is_token(value) {
                return Err(format!("{field}: {value:?} is not a valid header name"));
            }
        }
        if !config.scheme.is_empty() && !is_token(&config.scheme) {
            return Err(format!(
                "scheme: {:?} is not a valid auth scheme",
                config.scheme
            ));
        }
        if config.header.eq_ignore_ascii_case(&config.subject_header) {
            return Err("subject_header: must differ from header".to_owned());
        }
        let summary: Vec<String> = keys
            .iter()
            .map(|k| match &k.kid {
                Some(kid) => format!("{kid}:{}", k.alg().name()),
                None => k.alg().name().to_owned(),
            })
            .collect();
        wasmgate_sdk::info!(
            "jwt-auth: {} keys ({}), {} audiences",
            keys.len(),
            summary.join(", "),
            audiences.len()
        );
        Ok(JwtAuth {
            rules: Rules {
                keys,
                single,
                audiences,
                issuer: config.issuer,
                leeway_s: config.leeway_s,
                require_exp: config.require_exp,
            },
            header: config.header.to_ascii_lowercase(),
            scheme: config.scheme,
            subject_header: config.subject_header.to_ascii_lowercase(),
            strip_token: config.strip_token,
        })
    }

    fn on_request(&self, req: &mut Request<'_>) -> Decision {
        let Some(value) = req.header(&self.header) else {
            wasmgate_sdk::debug!("jwt-auth: request without a token refused");
            return Self::reject(Reject::Missing);
        };
        let Some(token) = self.token(&value) else {
            wasmgate_sdk::debug!("jwt-auth: request without a token refused");
            return Self::reject(Reject::Missing);
        };
        let Some(now) = wasmgate_sdk::time::unix_seconds() else {
            wasmgate_sdk::error!("jwt-auth: the host gives no time; cannot check expiry");
            return Decision::reject_json(500, "Token cannot be checked");
        };
        let verified = match self.rules.verify(token, now) {
            Ok(v) => v,
            Err(reason) => {
                wasmgate_sdk::info!("jwt-auth: token refused: {}", reason.message());
                return Self::reject(reason);
            }
        };
        if self.strip_token {
            req.remove_header(&self.header);
        }
        // A client must not be able to claim a subject: drop whatever it sent, then set ours.
        req.remove_header(&self.subject_header);
        req.set_header(&self.subject_header, &verified.subject);
        wasmgate_sdk::debug!(
            "jwt-auth: token accepted (key {})",
            verified.kid.as_deref().unwrap_or("-")
        );
        Decision::Continue
    }
}

wasmgate_sdk::export_plugin!(JwtAuth);

#[cfg(test)]
mod tests;
