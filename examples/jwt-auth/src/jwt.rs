//! A compact JWS (`header.payload.signature`) taken apart, verified against the configured keys
//! and its claims checked. Pure logic: no host calls, so every case is unit-tested natively.

use base64ct::{Base64UrlUnpadded, Encoding};
use serde::Deserialize;

use crate::keys::Key;

/// The longest token looked at, in bytes: a larger one is refused as malformed before any
/// decoding (headers are capped by the gateway too, but a plugin must not trust that).
pub const MAX_TOKEN_BYTES: usize = 8192;

/// Why a token is refused. Each one is a 401 with its [`Reject::message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// No token in the request.
    Missing,
    /// Not three base64url parts, or a part is not the JSON it must be.
    Malformed,
    /// `alg` is not the algorithm of the key that would verify it (`none` included).
    Algorithm,
    /// `crit` names extensions this plugin does not implement (RFC 7515 section 4.1.11).
    Critical,
    /// No configured key for the token's `kid` (or the token has none and several keys exist).
    UnknownKey,
    /// The signature does not verify.
    Signature,
    /// No `exp` claim, and the config requires one.
    NoExpiry,
    /// `exp` has passed (leeway included).
    Expired,
    /// `nbf` is still in the future (leeway included).
    NotYetValid,
    /// `aud` names none of the configured audiences.
    Audience,
    /// `iss` is not the configured issuer.
    Issuer,
    /// No `sub` that can be passed upstream as a header value.
    Subject,
}

impl Reject {
    /// The `message` of the JSON body.
    pub fn message(self) -> &'static str {
        match self {
            Reject::Missing => "Missing bearer token",
            Reject::Malformed => "Malformed token",
            Reject::Algorithm => "Token algorithm not allowed",
            Reject::Critical => "Token has unsupported critical headers",
            Reject::UnknownKey => "Unknown token key",
            Reject::Signature => "Invalid token signature",
            Reject::NoExpiry => "Token has no expiry",
            Reject::Expired => "Token expired",
            Reject::NotYetValid => "Token not yet valid",
            Reject::Audience => "Token audience not allowed",
            Reject::Issuer => "Token issuer not allowed",
            Reject::Subject => "Token has no usable subject",
        }
    }
}

/// What a token is checked against.
#[derive(Debug)]
pub struct Rules {
    /// Verification keys.
    pub keys: Vec<Key>,
    /// Whether `keys` came as the single `key`: then a token without `kid`, or with any `kid`
    /// when the key has none, uses it.
    pub single: bool,
    /// Accepted `aud` values; the token must name at least one.
    pub audiences: Vec<String>,
    /// Required `iss`, if any.
    pub issuer: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, seconds.
    pub leeway_s: u64,
    /// A token without `exp` is refused.
    pub require_exp: bool,
}

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    exp: Option<serde_json::Number>,
    #[serde(default)]
    nbf: Option<serde_json::Number>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
}

/// What a verified token tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The `sub` claim.
    pub subject: String,
    /// The `kid` of the key that verified it, if it has one.
    pub kid: Option<String>,
}

fn decode_part(part: &str) -> Result<Vec<u8>, Reject> {
    Base64UrlUnpadded::decode_vec(part).map_err(|_| Reject::Malformed)
}

/// Parses a base64url part as a JSON object. Only an object: serde would also fill a struct from
/// an array, by position. Duplicate names are refused (serde's `duplicate field`).
fn json_object<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, Reject> {
    let bytes = decode_part(part)?;
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(Reject::Malformed);
    }
    serde_json::from_slice(&bytes).map_err(|_| Reject::Malformed)
}

impl Rules {
    /// Verifies `token` at time `now` (seconds since the Unix epoch): structure, algorithm, key,
    /// signature, then the claims. The signature is checked before the payload is read.
    pub fn verify(&self, token: &str, now: u64) -> Result<Verified, Reject> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Reject::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Reject::Malformed);
        };
        let header: Header = json_object(header_b64)?;
        if header.crit.is_some() {
            return Err(Reject::Critical);
        }
        // `none`, and any algorithm no configured key uses, is refused before a key is looked
        // up; then the key fixes the algorithm.
        let alg = header.alg.as_deref();
        if !self.keys.iter().any(|k| Some(k.alg().name()) == alg) {
            return Err(Reject::Algorithm);
        }
        let key = self.select_key(header.kid.as_deref())?;
        if alg != Some(key.alg().name()) {
            return Err(Reject::Algorithm);
        }
        let signature = decode_part(sig_b64)?;
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
        if signature.is_empty() || !key.verify(signing_input.as_bytes(), &signature) {
            return Err(Reject::Signature);
        }
        let claims: Claims = json_object(payload_b64)?;
        self.check_claims(&claims, now)?;
        let subject = claims.sub.unwrap_or_default();
        if subject.is_empty() || subject.chars().any(char::is_control) {
            return Err(Reject::Subject);
        }
        Ok(Verified {
            subject,
            kid: key.kid.clone(),
        })
    }

    fn select_key(&self, kid: Option<&str>) -> Result<&Key, Reject> {
        if self.single {
            let key = &self.keys[0];
            return match (&key.kid, kid) {
                (Some(want), Some(got)) if want != got => Err(Reject::UnknownKey),
                _ => Ok(key),
            };
        }
        let kid = kid.ok_or(Reject::UnknownKey)?;
        self.keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .ok_or(Reject::UnknownKey)
    }

    fn check_claims(&self, claims: &Claims, now: u64) -> Result<(), Reject> {
        let now = now as f64;
        let leeway = self.leeway_s as f64;
        match numeric_date(claims.exp.as_ref())? {
            Some(exp) if now >= exp + leeway => return Err(Reject::Expired),
            Some(_) => {}
            None if self.require_exp => return Err(Reject::NoExpiry),
            None => {}
        }
        if let Some(nbf) = numeric_date(claims.nbf.as_ref())?
            && now + leeway < nbf
        {
            return Err(Reject::NotYetValid);
        }
        let named = match &claims.aud {
            None => false,
            Some(Audience::One(a)) => self.audiences.contains(a),
            Some(Audience::Many(list)) => list.iter().any(|a| self.audiences.contains(a)),
        };
        if !named {
            return Err(Reject::Audience);
        }
        if let Some(want) = &self.issuer
            && claims.iss.as_ref() != Some(want)
        {
            return Err(Reject::Issuer);
        }
        Ok(())
    }
}

/// A JWT NumericDate: seconds since the epoch, possibly fractional.
fn numeric_date(n: Option<&serde_json::Number>) -> Result<Option<f64>, Reject> {
    match n {
        None => Ok(None),
        Some(n) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or(Reject::Malformed),
    }
}
