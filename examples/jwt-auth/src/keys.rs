//! Verification keys: read from the config once, each fixed to one algorithm, so a token can never
//! choose how it is verified (no `alg: none`, no RS256 public key used as an HMAC secret).

use base64ct::{Base64, Base64Unpadded, Base64Url, Base64UrlUnpadded, Encoding};
use hmac::{Hmac, Mac};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPublicKey};
use serde::Deserialize;
use sha2::Sha256;

/// The shortest HS256 secret accepted: RFC 7518 section 3.2 asks for at least the hash size.
pub const MIN_HS256_SECRET: usize = 32;
/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// A signature algorithm this plugin verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// HMAC with SHA-256, a shared secret.
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, an RSA public key.
    Rs256,
}

impl Alg {
    /// The name a JOSE header uses (`"alg": "HS256"`).
    pub fn name(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Rs256 => "RS256",
        }
    }
}

/// One key of the config: `{"kid": "k1", "secret": "..."}`,
/// `{"kid": "k2", "public_key_pem": "-----BEGIN PUBLIC KEY-----..."}`, or an RSA JWK
/// (`{"kty": "RSA", "kid": "k3", "n": "...", "e": "AQAB"}`) as a JWKS lists it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Key id: the token's `kid` header picks the key. Required when there are several keys.
    #[serde(default)]
    pub kid: Option<String>,
    /// `HS256` or `RS256`; optional, as the key material tells. When given it must agree.
    #[serde(default)]
    pub alg: Option<String>,
    /// JWK key type: `oct` (a secret) or `RSA`; optional, checked when given.
    #[serde(default)]
    pub kty: Option<String>,
    /// JWK public key use: `sig` when given.
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    /// HS256 secret as text (its UTF-8 bytes).
    #[serde(default)]
    pub secret: Option<String>,
    /// HS256 secret as base64 or base64url, padded or not (a JWK's `k`).
    #[serde(default, alias = "k")]
    pub secret_base64: Option<String>,
    /// RS256 public key, PEM: SPKI (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`).
    #[serde(default)]
    pub public_key_pem: Option<String>,
    /// RS256 public key as a JWK: the modulus, base64url.
    #[serde(default)]
    pub n: Option<String>,
    /// RS256 public key as a JWK: the exponent, base64url (usually `AQAB`).
    #[serde(default)]
    pub e: Option<String>,
}

/// A key ready to verify with.
pub struct Key {
    /// Its id, if the config gave one.
    pub kid: Option<String>,
    verifier: Verify,
}

enum Verify {
    /// The HMAC state after the key is absorbed; cloned per token.
    Hs256(Hmac<Sha256>),
    Rs256(VerifyingKey<Sha256>),
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg())
            .finish()
    }
}

impl Key {
    /// The one algorithm this key verifies.
    pub fn alg(&self) -> Alg {
        match self.verifier {
            Verify::Hs256(_) => Alg::Hs256,
            Verify::Rs256(_) => Alg::Rs256,
        }
    }

    /// Checks `signature` over `signing_input` (`header.payload` as sent). HS256 compares the
    /// MAC in constant time.
    pub fn verify(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        match &self.verifier {
            Verify::Hs256(mac) => {
                let mut mac = mac.clone();
                mac.update(signing_input);
                mac.verify_slice(signature).is_ok()
            }
            Verify::Rs256(key) => match Signature::try_from(signature) {
                Ok(sig) => key.verify(signing_input, &sig).is_ok(),
                Err(_) => false,
            },
        }
    }

    /// Reads a key from its config; `place` (`key`, `keys[1]`) starts every error message.
    /// Errors never quote key material.
    pub fn from_config(place: &str, config: KeyConfig) -> Result<Key, String> {
        if let Some(kid) = &config.kid
            && kid.is_empty()
        {
            return Err(format!("{place}.kid: must not be empty"));
        }
        if let Some(u) = &config.use_
            && u != "sig"
        {
            return Err(format!("{place}.use: {u:?} is not \"sig\""));
        }
        let materials = [
            config.secret.is_some(),
            config.secret_base64.is_some(),
            config.public_key_pem.is_some(),
            config.n.is_some() || config.e.is_some(),
        ];
        match materials.iter().filter(|m| **m).count() {
            1 => {}
            0 => {
                return Err(format!(
                    "{place}: needs one of secret, secret_base64, public_key_pem, or n and e"
                ));
            }
            _ => {
                return Err(format!(
                    "{place}: give only one of secret, secret_base64, public_key_pem, or n and e"
                ));
            }
        }
        let verifier = if let Some(secret) = config.secret {
            hs256(place, "secret", secret.as_bytes())?
        } else if let Some(encoded) = config.secret_base64 {
            let bytes = decode_base64_any(&encoded)
                .ok_or_else(|| format!("{place}.secret_base64: not base64 or base64url"))?;
            hs256(place, "secret_base64", &bytes)?
        } else if let Some(pem) = config.public_key_pem {
            let key = parse_pem(&pem).map_err(|e| format!("{place}.public_key_pem: {e}"))?;
            rs256(place, key)?
        } else {
            let (Some(n), Some(e)) = (config.n, config.e) else {
                return Err(format!("{place}: an RSA JWK needs both n and e"));
            };
            let n = Base64UrlUnpadded::decode_vec(&n)
                .map_err(|_| format!("{place}.n: not unpadded base64url"))?;
            let e = Base64UrlUnpadded::decode_vec(&e)
                .map_err(|_| format!("{place}.e: not unpadded base64url"))?;
            let key = RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e))
                .map_err(|err| format!("{place}: not a usable RSA public key: {err}"))?;
            rs256(place, key)?
        };
        let key = Key {
            kid: config.kid,
            verifier,
        };
        if let Some(alg) = &config.alg
            && alg != key.alg().name()
        {
            return Err(match alg.as_str() {
                "HS256" | "RS256" => format!(
                    "{place}.alg: {alg} does not fit the key material (which is {})",
                    key.alg().name()
                ),
                _ => format!("{place}.alg: {alg:?} is not supported (HS256 or RS256)"),
            });
        }
        if let Some(kty) = &config.kty {
            let want = match key.alg() {
                Alg::Hs256 => "oct",
                Alg::Rs256 => "RSA",
            };
            if kty != want {
                return Err(format!(
                    "{place}.kty: {kty:?} does not fit the key material (which is {want})"
                ));
            }
        }
        Ok(key)
    }
}

fn hs256(place: &str, field: &str, secret: &[u8]) -> Result<Verify, String> {
    if secret.len() < MIN_HS256_SECRET {
        return Err(format!(
            "{place}.{field}: {} bytes is too short for HS256 (at least {MIN_HS256_SECRET})",
            secret.len()
        ));
    }
    let mac = Hmac::<Sha256>::new_from_slice(secret)
        .map_err(|_| format!("{place}.{field}: not a usable HMAC key"))?;
    Ok(Verify::Hs256(mac))
}

fn rs256(place: &str, key: RsaPublicKey) -> Result<Verify, String> {
    let bits = key.n().bits();
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "{place}: an RSA key of {bits} bits is too weak (at least {MIN_RSA_BITS})"
        ));
    }
    Ok(Verify::Rs256(VerifyingKey::<Sha256>::new(key)))
}

fn parse_pem(pem: &str) -> Result<RsaPublicKey, String> {
    let pem = pem.trim();
    if pem.starts_with("-----BEGIN PUBLIC KEY-----") {
        RsaPublicKey::from_public_key_pem(pem)
            .map_err(|e| format!("not an RSA public key in SPKI PEM: {e}"))
    } else if pem.starts_with("-----BEGIN RSA PUBLIC KEY-----") {
        RsaPublicKey::from_pkcs1_pem(pem)
            .map_err(|e| format!("not an RSA public key in PKCS#1 PEM: {e}"))
    } else if pem.contains("PRIVATE KEY-----") {
        Err("this is a private key; configure the public key only".to_owned())
    } else {
        Err("expected -----BEGIN PUBLIC KEY----- or -----BEGIN RSA PUBLIC KEY-----".to_owned())
    }
}

/// Decodes base64 in either alphabet, padded or not.
fn decode_base64_any(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    Base64::decode_vec(s)
        .or_else(|_| Base64Unpadded::decode_vec(s))
        .or_else(|_| Base64Url::decode_vec(s))
        .or_else(|_| Base64UrlUnpadded::decode_vec(s))
        .ok()
}
