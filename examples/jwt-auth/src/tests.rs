//! Unit tests: tokens are signed here (HMAC with the `hmac` crate, RSA with the test keys in
//! `testdata/`) and run through the plugin over in-memory requests at a fixed time.

use std::time::{Duration, UNIX_EPOCH};

use base64ct::{Base64UrlUnpadded, Encoding};
use hmac::{Hmac, Mac};
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use sha2::Sha256;
use wasmgate_sdk::log::Level;
use wasmgate_sdk::testing::{
    RequestOutcome, TestRequest, configure, set_no_clock, set_time, take_logs,
};

use super::*;

const NOW: u64 = 1_700_000_000;
const SECRET: &str = "a-shared-secret-of-at-least-32-bytes!";
const RS_KEY: &str = include_str!("../testdata/rs256-key.pem");
const RS_PUB: &str = include_str!("../testdata/rs256-pub.pem");
const RS_PUB_PKCS1: &str = include_str!("../testdata/rs256-pub-pkcs1.pem");
const OTHER_KEY: &str = include_str!("../testdata/other-key.pem");
const WEAK_PUB: &str = include_str!("../testdata/weak-1024-pub.pem");

fn b64(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

/// `header.payload` of a token, both JSON values encoded.
fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn hs256_sign(secret: &[u8], input: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn rs256_sign(private_pem: &str, input: &str) -> Vec<u8> {
    let key = RsaPrivateKey::from_pkcs8_pem(private_pem).unwrap();
    SigningKey::<Sha256>::new(key)
        .sign(input.as_bytes())
        .to_vec()
}

fn hs256(header: Value, claims: Value) -> String {
    let input = signing_input(&header, &claims);
    format!("{input}.{}", b64(&hs256_sign(SECRET.as_bytes(), &input)))
}

fn rs256(private_pem: &str, header: Value, claims: Value) -> String {
    let input = signing_input(&header, &claims);
    format!("{input}.{}", b64(&rs256_sign(private_pem, &input)))
}

/// Claims that pass every check at `NOW`.
fn claims() -> Value {
    json!({"sub": "alice", "aud": "models", "iss": "https://issuer.test/", "exp": NOW + 300, "nbf": NOW - 10, "iat": NOW - 10})
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

fn hs_header() -> Value {
    json!({"alg": "HS256", "typ": "JWT"})
}

fn rs_header(kid: &str) -> Value {
    json!({"alg": "RS256", "typ": "JWT", "kid": kid})
}

/// A plugin with one HS256 key and `extra` config fields; the clock fixed at `NOW`.
fn hs_plugin(extra: Value) -> JwtAuth {
    let mut config = json!({"key": {"secret": SECRET}, "audience": "models", "leeway_s": 0});
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    plugin(config)
}

fn plugin(config: Value) -> JwtAuth {
    set_time(UNIX_EPOCH + Duration::from_secs(NOW));
    configure(&config.to_string()).unwrap_or_else(|e| panic!("{config}: {e}"))
}

fn jwk_n_e(private_pem: &str) -> (String, String) {
    let key = RsaPrivateKey::from_pkcs8_pem(private_pem).unwrap();
    (b64(&key.n().to_bytes_be()), b64(&key.e().to_bytes_be()))
}

/// The plugin with every kind of key: HS256, RS256 as SPKI PEM, PKCS#1 PEM and a JWK.
fn multi_plugin() -> JwtAuth {
    let (n, e) = jwk_n_e(RS_KEY);
    plugin(json!({
        "keys": [
            {"kid": "hs", "alg": "HS256", "secret": SECRET},
            {"kid": "spki", "alg": "RS256", "public_key_pem": RS_PUB},
            {"kid": "pkcs1", "public_key_pem": RS_PUB_PKCS1},
            {"kid": "jwk", "kty": "RSA", "use": "sig", "alg": "RS256", "n": n, "e": e},
        ],
        "audience": ["other", "models"],
        "issuer": "https://issuer.test/",
    }))
}

fn bearer(p: &JwtAuth, token: &str) -> RequestOutcome {
    TestRequest::post("/v1/models/m:predict")
        .header("authorization", &format!("Bearer {token}"))
        .run(p)
}

#[track_caller]
fn assert_refused(out: &RequestOutcome, reason: Reject) {
    assert_eq!(out.status(), Some(401), "{:?}", out.decision);
    assert_eq!(out.message().as_deref(), Some(reason.message()));
    let r = out.local_response().unwrap();
    assert_eq!(r.header("content-type"), Some("application/json"));
    let challenge = r.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with(r#"Bearer realm="wasmgate""#),
        "{challenge}"
    );
    if reason == Reject::Missing {
        assert!(!challenge.contains("error="), "{challenge}");
    } else {
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
    }
}

#[track_caller]
fn assert_admitted(out: &RequestOutcome, subject: &str) {
    assert!(out.is_continue(), "{:?}", out.decision);
    assert_eq!(out.header_values("x-jwt-subject"), vec![subject]);
}

#[test]
fn a_good_hs256_token_passes_the_subject_and_is_stripped() {
    let p = hs_plugin(json!({}));
    let out = TestRequest::post("/v1/models/m:predict?x=1")
        .header(
            "Authorization",
            &format!("Bearer {}", hs256(hs_header(), claims())),
        )
        .header("X-JWT-Subject", "admin")
        .header("x-jwt-subject", "root")
        .header("content-type", "application/json")
        .run(&p);
    assert_admitted(&out, "alice");
    assert_eq!(out.header("authorization"), None);
    assert_eq!(
        out.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(out.path(), "/v1/models/m:predict?x=1");
}

#[test]
fn every_key_form_verifies_its_tokens() {
    let p = multi_plugin();
    let hs = hs256(json!({"alg": "HS256", "kid": "hs"}), claims());
    assert_admitted(&bearer(&p, &hs), "alice");
    for kid in ["spki", "pkcs1", "jwk"] {
        let token = rs256(RS_KEY, rs_header(kid), with(claims(), "sub", json!(kid)));
        assert_admitted(&bearer(&p, &token), kid);
    }
}

#[test]
fn the_scheme_is_matched_without_case_and_options_change_the_header() {
    let token = hs256(hs_header(), claims());
    let p = hs_plugin(json!({}));
    for value in [format!("bearer {token}"), format!("BEARER   {token}")] {
        let out = TestRequest::get("/")
            .header("authorization", &value)
            .run(&p);
        assert_admitted(&out, "alice");
    }

    let p = hs_plugin(
        json!({"header": "X-Token", "scheme": "", "subject_header": "X-User", "strip_token": false}),
    );
    let out = TestRequest::get("/").header("x-token", &token).run(&p);
    assert!(out.is_continue(), "{:?}", out.decision);
    assert_eq!(out.header("x-user").as_deref(), Some("alice"));
    assert_eq!(out.header("x-token").as_deref(), Some(token.as_str()));
    assert_eq!(out.header("x-jwt-subject"), None);
    // The Authorization header is not where this config looks.
    let out = TestRequest::get("/")
        .header("authorization", &format!("Bearer {token}"))
        .run(&p);
    assert_refused(&out, Reject::Missing);
}

#[test]
fn a_missing_token_is_401_with_a_bare_challenge() {
    let p = hs_plugin(json!({}));
    let token = hs256(hs_header(), claims());
    for req in [
        TestRequest::get("/"),
        TestRequest::get("/").header("authorization", ""),
        TestRequest::get("/").header("authorization", "Bearer"),
        TestRequest::get("/").header("authorization", "Bearer   "),
        TestRequest::get("/").header("authorization", "Basic YWxpY2U6cHc="),
        TestRequest::get("/").header("authorization", &token),
        TestRequest::get(&format!("/?access_token={token}")),
    ] {
        assert_refused(&req.run(&p), Reject::Missing);
    }
}

#[test]
fn malformed_tokens_are_refused() {
    let p = hs_plugin(json!({}));
    let good = hs256(hs_header(), claims());
    let parts: Vec<&str> = good.split('.').collect();
    let claims_wrong_type = hs256(hs_header(), with(claims(), "exp", json!("tomorrow")));
    // Claims as an array would fill the fields by position; a repeated claim is ambiguous.
    let signed = |payload: &[u8]| {
        let input = format!("{}.{}", b64(br#"{"alg":"HS256"}"#), b64(payload));
        format!("{input}.{}", b64(&hs256_sign(SECRET.as_bytes(), &input)))
    };
    let claims_array = signed(format!(r#"[{}, 0, "models", "x", "alice"]"#, NOW + 60).as_bytes());
    let claims_duplicate = signed(
        format!(
            r#"{{"sub":"alice","sub":"admin","aud":"models","exp":{}}}"#,
            NOW + 60
        )
        .as_bytes(),
    );
    let cases = [
        parts[..2].join("."),
        format!("{good}.x"),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}==", parts[0], parts[1], parts[2]),
        format!("!!.{}.{}", parts[1], parts[2]),
        format!("{}.{}.{}", b64(b"[\"HS256\"]"), parts[1], parts[2]),
        format!("{}.{}.{}", b64(b"{\"alg\":\"HS256\""), parts[1], parts[2]),
        format!(
            "{}.{}.{}",
            b64(b"{\"alg\":\"HS256\",\"alg\":\"HS256\"}"),
            parts[1],
            parts[2]
        ),
        format!("{}.{}", good, "a".repeat(MAX_TOKEN_BYTES)),
        signed(b"not json"),
        claims_wrong_type,
        claims_array,
        claims_duplicate,
    ];
    for (i, token) in cases.iter().enumerate() {
        let out = bearer(&p, token);
        assert_eq!(
            out.message().as_deref(),
            Some(Reject::Malformed.message()),
            "case {i}"
        );
        assert_refused(&out, Reject::Malformed);
    }
}

#[test]
fn bad_signatures_are_refused() {
    let p = multi_plugin();
    let good = hs256(json!({"alg": "HS256", "kid": "hs"}), claims());
    let (input, sig) = good.rsplit_once('.').unwrap();
    let (header, _) = input.split_once('.').unwrap();
    // The payload changed after signing: the subject is now "admin".
    let forged = format!(
        "{header}.{}.{sig}",
        b64(with(claims(), "sub", json!("admin")).to_string().as_bytes())
    );
    let wrong_secret = {
        let input = signing_input(&json!({"alg": "HS256", "kid": "hs"}), &claims());
        let sig = hs256_sign(b"another-secret-of-at-least-32-bytes!!", &input);
        format!("{input}.{}", b64(&sig))
    };
    let mut sig_bytes = Base64UrlUnpadded::decode_vec(sig).unwrap();
    sig_bytes[0] ^= 1;
    let flipped = format!("{input}.{}", b64(&sig_bytes));
    let truncated = format!("{input}.{}", b64(&sig_bytes[..31]));
    let empty = format!("{input}.");
    for token in [forged, wrong_secret, flipped, truncated, empty] {
        assert_refused(&bearer(&p, &token), Reject::Signature);
    }

    // RS256: signed by another key, or altered.
    let other = rs256(OTHER_KEY, rs_header("spki"), claims());
    assert_refused(&bearer(&p, &other), Reject::Signature);
    let good = rs256(RS_KEY, rs_header("jwk"), claims());
    let (input, sig) = good.rsplit_once('.').unwrap();
    let mut sig_bytes = Base64UrlUnpadded::decode_vec(sig).unwrap();
    sig_bytes[100] ^= 0x80;
    let flipped = format!("{input}.{}", b64(&sig_bytes));
    let short = format!("{input}.{}", b64(&sig_bytes[1..]));
    for token in [flipped, short] {
        assert_refused(&bearer(&p, &token), Reject::Signature);
    }
}

#[test]
fn alg_none_and_other_algorithms_are_refused() {
    let p = hs_plugin(json!({}));
    let input = signing_input(&json!({"alg": "none"}), &claims());
    assert_refused(&bearer(&p, &format!("{input}.")), Reject::Algorithm);
    let sig = b64(&hs256_sign(SECRET.as_bytes(), &input));
    assert_refused(&bearer(&p, &format!("{input}.{sig}")), Reject::Algorithm);
    for alg in [json!("hs256"), json!("HS512"), json!("RS256"), json!(null)] {
        let token = hs256(json!({"alg": alg}), claims());
        assert_refused(&bearer(&p, &token), Reject::Algorithm);
    }
    let token = hs256(json!({"typ": "JWT"}), claims());
    assert_refused(&bearer(&p, &token), Reject::Algorithm);
    // With several keys too, whatever the kid.
    let p = multi_plugin();
    for header in [
        json!({"alg": "none"}),
        json!({"alg": "none", "kid": "hs"}),
        json!({"alg": "ES256", "kid": "nope"}),
    ] {
        let input = signing_input(&header, &claims());
        assert_refused(&bearer(&p, &format!("{input}.")), Reject::Algorithm);
    }
}

#[test]
fn algorithm_confusion_is_refused() {
    // The classic attack: the RS256 public key (which is public) used as an HS256 secret.
    let p = plugin(json!({"key": {"public_key_pem": RS_PUB}, "audience": "models"}));
    let input = signing_input(&hs_header(), &claims());
    let sig = hs256_sign(RS_PUB.as_bytes(), &input);
    assert_refused(
        &bearer(&p, &format!("{input}.{}", b64(&sig))),
        Reject::Algorithm,
    );
    // And the other way round: an HS256 key never checks an RS256 signature.
    let p = hs_plugin(json!({}));
    let token = rs256(RS_KEY, json!({"alg": "RS256"}), claims());
    assert_refused(&bearer(&p, &token), Reject::Algorithm);
    // With several keys, the kid's key fixes the algorithm.
    let p = multi_plugin();
    let input = signing_input(&json!({"alg": "HS256", "kid": "spki"}), &claims());
    let sig = hs256_sign(RS_PUB.as_bytes(), &input);
    assert_refused(
        &bearer(&p, &format!("{input}.{}", b64(&sig))),
        Reject::Algorithm,
    );
}

#[test]
fn key_ids_pick_the_key() {
    let p = multi_plugin();
    for header in [
        json!({"alg": "RS256", "kid": "nope"}),
        json!({"alg": "RS256"}),
        json!({"alg": "RS256", "kid": ""}),
    ] {
        let token = rs256(RS_KEY, header, claims());
        assert_refused(&bearer(&p, &token), Reject::UnknownKey);
    }
    // A single key without kid takes any kid; a single key with a kid wants it.
    let p = hs_plugin(json!({}));
    let token = hs256(json!({"alg": "HS256", "kid": "whatever"}), claims());
    assert_admitted(&bearer(&p, &token), "alice");
    let p = hs_plugin(json!({"key": {"kid": "k1", "secret": SECRET}}));
    assert_refused(&bearer(&p, &token), Reject::UnknownKey);
    let token = hs256(json!({"alg": "HS256", "kid": "k1"}), claims());
    assert_admitted(&bearer(&p, &token), "alice");
    let token = hs256(hs_header(), claims());
    assert_admitted(&bearer(&p, &token), "alice");
}

#[test]
fn critical_header_extensions_are_refused() {
    let p = hs_plugin(json!({}));
    let token = hs256(json!({"alg": "HS256", "crit": ["exp"], "exp": 1}), claims());
    assert_refused(&bearer(&p, &token), Reject::Critical);
}

#[test]
fn expiry_and_not_before_use_the_leeway() {
    let p = hs_plugin(json!({}));
    let check = |p: &JwtAuth, claims: Value| bearer(p, &hs256(hs_header(), claims));
    assert_refused(
        &check(&p, with(claims(), "exp", json!(NOW - 1))),
        Reject::Expired,
    );
    // exp is the first second the token is no longer valid.
    assert_refused(
        &check(&p, with(claims(), "exp", json!(NOW))),
        Reject::Expired,
    );
    assert_admitted(&check(&p, with(claims(), "exp", json!(NOW + 1))), "alice");
    assert_admitted(
        &check(&p, with(claims(), "exp", json!(NOW as f64 + 0.5))),
        "alice",
    );
    assert_refused(
        &check(&p, with(claims(), "nbf", json!(NOW + 1))),
        Reject::NotYetValid,
    );
    assert_admitted(&check(&p, with(claims(), "nbf", json!(NOW))), "alice");
    assert_refused(
        &check(&p, with(claims(), "exp", json!(-5))),
        Reject::Expired,
    );
    assert_admitted(&check(&p, with(claims(), "exp", json!(1e300))), "alice");

    let p = hs_plugin(json!({"leeway_s": 60}));
    assert_admitted(&check(&p, with(claims(), "exp", json!(NOW - 59))), "alice");
    assert_refused(
        &check(&p, with(claims(), "exp", json!(NOW - 60))),
        Reject::Expired,
    );
    assert_admitted(&check(&p, with(claims(), "nbf", json!(NOW + 60))), "alice");
    assert_refused(
        &check(&p, with(claims(), "nbf", json!(NOW + 61))),
        Reject::NotYetValid,
    );
}

#[test]
fn a_token_without_expiry_is_refused_unless_allowed() {
    let token = hs256(hs_header(), without(claims(), "exp"));
    assert_refused(&bearer(&hs_plugin(json!({})), &token), Reject::NoExpiry);
    let p = hs_plugin(json!({"require_exp": false}));
    assert_admitted(&bearer(&p, &token), "alice");
    let token = hs256(hs_header(), with(claims(), "exp", json!(null)));
    assert_admitted(&bearer(&p, &token), "alice");
}

#[test]
fn the_audience_must_be_named() {
    let p = hs_plugin(json!({"audience": ["models", "admin"]}));
    let check = |claims: Value| bearer(&p, &hs256(hs_header(), claims));
    assert_admitted(&check(with(claims(), "aud", json!("admin"))), "alice");
    assert_admitted(
        &check(with(claims(), "aud", json!(["x", "models"]))),
        "alice",
    );
    for aud in [
        json!("other"),
        json!(["x", "y"]),
        json!([]),
        json!("Models"),
    ] {
        assert_refused(&check(with(claims(), "aud", aud)), Reject::Audience);
    }
    assert_refused(&check(without(claims(), "aud")), Reject::Audience);
    assert_refused(&check(with(claims(), "aud", json!(7))), Reject::Malformed);
}

#[test]
fn the_issuer_is_checked_when_configured() {
    let token = |iss: Value| hs256(hs_header(), with(claims(), "iss", iss));
    let p = hs_plugin(json!({"issuer": "https://issuer.test/"}));
    assert_admitted(&bearer(&p, &token(json!("https://issuer.test/"))), "alice");
    assert_refused(
        &bearer(&p, &token(json!("https://evil.test/"))),
        Reject::Issuer,
    );
    let no_iss = hs256(hs_header(), without(claims(), "iss"));
    assert_refused(&bearer(&p, &no_iss), Reject::Issuer);
    // Not configured: any issuer.
    let p = hs_plugin(json!({}));
    assert_admitted(&bearer(&p, &token(json!("https://evil.test/"))), "alice");
}

#[test]
fn the_subject_must_be_usable_as_a_header() {
    let p = hs_plugin(json!({}));
    for sub in [
        json!(""),
        json!("a\r\nx-admin: 1"),
        json!("tab\there"),
        json!(null),
    ] {
        let token = hs256(hs_header(), with(claims(), "sub", sub.clone()));
        assert_refused(&bearer(&p, &token), Reject::Subject);
    }
    let token = hs256(hs_header(), without(claims(), "sub"));
    assert_refused(&bearer(&p, &token), Reject::Subject);
    let token = hs256(hs_header(), with(claims(), "sub", json!(42)));
    assert_refused(&bearer(&p, &token), Reject::Malformed);
    let token = hs256(hs_header(), with(claims(), "sub", json!("Zoë Müller")));
    assert_admitted(&bearer(&p, &token), "Zoë Müller");
}

#[test]
fn without_a_clock_the_request_is_refused() {
    let p = hs_plugin(json!({}));
    set_no_clock();
    let out = bearer(&p, &hs256(hs_header(), claims()));
    assert_eq!(out.status(), Some(500));
    assert_eq!(out.message().as_deref(), Some("Token cannot be checked"));
}

#[test]
fn tokens_and_secrets_are_never_logged() {
    let p = multi_plugin();
    let good = hs256(json!({"alg": "HS256", "kid": "hs"}), claims());
    let bad = format!("{good}x");
    let _ = take_logs();
    bearer(&p, &good);
    bearer(&p, &bad);
    bearer(&p, "garbage");
    let logs = take_logs();
    assert!(
        logs.iter()
            .any(|(l, m)| *l == Level::Info && m.contains("Invalid token signature"))
    );
    for (_, line) in logs {
        for secret in [
            good.as_str(),
            &good[..20],
            &good[good.len() - 20..],
            "garbage",
            SECRET,
        ] {
            assert!(!line.contains(secret), "{line}");
        }
    }
}

#[test]
fn configure_logs_the_keys_without_material() {
    let _ = take_logs();
    multi_plugin();
    let logs = take_logs();
    assert_eq!(
        logs,
        vec![(
            Level::Info,
            "jwt-auth: 4 keys (hs:HS256, spki:RS256, pkcs1:RS256, jwk:RS256), 2 audiences"
                .to_owned()
        )]
    );
    let key = format!("{:?}", multi_plugin());
    assert!(!key.contains(SECRET), "{key}");
}

#[test]
fn secrets_can_be_given_in_base64() {
    use base64ct::Base64;
    for encoded in [
        Base64::encode_string(SECRET.as_bytes()),
        Base64UrlUnpadded::encode_string(SECRET.as_bytes()),
    ] {
        let p = hs_plugin(json!({"key": {"secret_base64": encoded}}));
        assert_admitted(&bearer(&p, &hs256(hs_header(), claims())), "alice");
    }
    let p =
        plugin(json!({"key": {"kty": "oct", "k": b64(SECRET.as_bytes())}, "audience": "models"}));
    assert_admitted(&bearer(&p, &hs256(hs_header(), claims())), "alice");
}

#[test]
fn bad_configs_are_refused_with_their_place() {
    let (n, e) = jwk_n_e(RS_KEY);
    let hs = json!({"secret": SECRET});
    let cases = [
        (
            json!({"audience": "a"}),
            "keys: at least one key is required",
        ),
        (
            json!({"keys": [], "audience": "a"}),
            "keys: at least one key is required",
        ),
        (
            json!({"key": hs, "keys": [hs], "audience": "a"}),
            "key, keys: give one of them, not both",
        ),
        (json!({"key": hs}), "missing field `audience`"),
        (
            json!({"key": hs, "audience": []}),
            "audience: at least one audience is required",
        ),
        (
            json!({"key": hs, "audience": ["a", ""]}),
            "audience[1]: must not be empty",
        ),
        (
            json!({"key": hs, "audience": 5}),
            "audience: data did not match",
        ),
        (
            json!({"key": hs, "audience": "a", "issuer": ""}),
            "issuer: must not be empty",
        ),
        (
            json!({"key": hs, "audience": "a", "leeway_s": 100_000}),
            "leeway_s: at most 86400",
        ),
        (
            json!({"key": hs, "audience": "a", "leeway_s": -1}),
            "leeway_s: invalid value",
        ),
        (
            json!({"key": hs, "audience": "a", "header": "auth header"}),
            "header: \"auth header\" is not a valid header name",
        ),
        (
            json!({"key": hs, "audience": "a", "subject_header": ""}),
            "subject_header: \"\" is not a valid header name",
        ),
        (
            json!({"key": hs, "audience": "a", "subject_header": "Authorization"}),
            "subject_header: must differ from header",
        ),
        (
            json!({"key": hs, "audience": "a", "scheme": "Bearer x"}),
            "scheme: \"Bearer x\" is not a valid auth scheme",
        ),
        (
            json!({"key": hs, "audience": "a", "audiences": "a"}),
            "unknown field `audiences`",
        ),
        (
            json!({"key": {}, "audience": "a"}),
            "key: needs one of secret, secret_base64, public_key_pem, or n and e",
        ),
        (
            json!({"key": {"secret": SECRET, "public_key_pem": RS_PUB}, "audience": "a"}),
            "key: give only one of",
        ),
        (
            json!({"key": {"secret": "short"}, "audience": "a"}),
            "key.secret: 5 bytes is too short for HS256 (at least 32)",
        ),
        (
            json!({"key": {"secret_base64": "c2hvcnQ="}, "audience": "a"}),
            "key.secret_base64: 5 bytes is too short",
        ),
        (
            json!({"key": {"secret_base64": "not base64!"}, "audience": "a"}),
            "key.secret_base64: not base64 or base64url",
        ),
        (
            json!({"key": {"secret": SECRET, "alg": "RS256"}, "audience": "a"}),
            "key.alg: RS256 does not fit the key material (which is HS256)",
        ),
        (
            json!({"key": {"public_key_pem": RS_PUB, "alg": "HS256"}, "audience": "a"}),
            "key.alg: HS256 does not fit the key material (which is RS256)",
        ),
        (
            json!({"key": {"secret": SECRET, "alg": "ES256"}, "audience": "a"}),
            "key.alg: \"ES256\" is not supported (HS256 or RS256)",
        ),
        (
            json!({"key": {"secret": SECRET, "alg": "none"}, "audience": "a"}),
            "key.alg: \"none\" is not supported",
        ),
        (
            json!({"key": {"secret": SECRET, "kty": "RSA"}, "audience": "a"}),
            "key.kty: \"RSA\" does not fit the key material (which is oct)",
        ),
        (
            json!({"key": {"secret": SECRET, "use": "enc"}, "audience": "a"}),
            "key.use: \"enc\" is not \"sig\"",
        ),
        (
            json!({"key": {"secret": SECRET, "kid": ""}, "audience": "a"}),
            "key.kid: must not be empty",
        ),
        (
            json!({"key": {"secret": SECRET, "x5c": []}, "audience": "a"}),
            "key.x5c: unknown field `x5c`",
        ),
        (
            json!({"key": {"public_key_pem": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"}, "audience": "a"}),
            "key.public_key_pem: not an RSA public key in SPKI PEM",
        ),
        (
            json!({"key": {"public_key_pem": RS_KEY}, "audience": "a"}),
            "key.public_key_pem: this is a private key; configure the public key only",
        ),
        (
            json!({"key": {"public_key_pem": "ssh-rsa AAAA"}, "audience": "a"}),
            "key.public_key_pem: expected -----BEGIN PUBLIC KEY-----",
        ),
        (
            json!({"key": {"public_key_pem": WEAK_PUB}, "audience": "a"}),
            "key: an RSA key of 1024 bits is too weak (at least 2048)",
        ),
        (
            json!({"key": {"n": n}, "audience": "a"}),
            "key: an RSA JWK needs both n and e",
        ),
        (
            json!({"key": {"n": "a+b/", "e": e}, "audience": "a"}),
            "key.n: not unpadded base64url",
        ),
        (
            json!({"key": {"n": n, "e": "AQAB=="}, "audience": "a"}),
            "key.e: not unpadded base64url",
        ),
        (
            json!({"key": {"n": n, "e": "AA"}, "audience": "a"}),
            "key: not a usable RSA public key",
        ),
        (
            json!({"keys": [hs], "audience": "a"}),
            "keys[0].kid: required when keys are listed",
        ),
        (
            json!({"keys": [{"kid": "a", "secret": SECRET}, {"kid": "a", "public_key_pem": RS_PUB}], "audience": "a"}),
            "keys[1].kid: duplicate of keys[0].kid",
        ),
        (
            json!({"keys": [{"kid": "a", "secret": SECRET}, {"kid": "b", "secret": "x"}], "audience": "a"}),
            "keys[1].secret: 1 bytes is too short",
        ),
        (
            json!({"keys": [{"kid": "a", "secret": 5}], "audience": "a"}),
            "keys[0].secret: invalid type: integer",
        ),
    ];
    for (config, want) in cases {
        let err = configure::<JwtAuth>(&config.to_string()).unwrap_err();
        assert!(err.contains(want), "{config}\n  got: {err}\n want: {want}");
        assert!(!err.contains(SECRET), "the secret leaked into: {err}");
    }
}
