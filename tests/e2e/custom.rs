//! Custom plugins, as a user writes them: the jwt-auth example through the gateway, and the plugin
//! guide followed step by step from a scratch directory (scaffold, test, build, drop the module
//! in, see it act on requests).
//!
//! Tokens are signed here independently of the plugin's own code: HS256 with an HMAC written out
//! over ring's SHA-256, RS256 with ring's RSA signer (both through rustls's public API), with the
//! test keys in examples/jwt-auth/testdata.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::SignatureScheme;
use rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use wasmgate::scaffold;
use wasmgate_tests::{DEMO_BODY, Harness, Proto, TestResponse, wasm};

const SECRET: &str = "e2e-shared-secret-of-at-least-32-bytes";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

fn testdata(name: &str) -> PathBuf {
    repo().join("examples/jwt-auth/testdata").join(name)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn sha256(data: &[u8]) -> Vec<u8> {
    let suite = TLS13_AES_128_GCM_SHA256.tls13().expect("a TLS 1.3 suite");
    suite.common.hash_provider.hash(data).as_ref().to_vec()
}

/// HMAC-SHA-256 (RFC 2104) for keys of at most one block.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    assert!(key.len() <= 64);
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let inner: Vec<u8> = block
        .iter()
        .map(|b| b ^ 0x36)
        .chain(message.iter().copied())
        .collect();
    let outer: Vec<u8> = block
        .iter()
        .map(|b| b ^ 0x5c)
        .chain(sha256(&inner))
        .collect();
    sha256(&outer)
}

fn rs256_sign(message: &[u8]) -> Vec<u8> {
    let der = PrivateKeyDer::from_pem_file(testdata("rs256-key.pem")).expect("test key");
    let key = rustls::crypto::ring::sign::any_supported_type(&der).expect("RSA key");
    let signer = key
        .choose_scheme(&[SignatureScheme::RSA_PKCS1_SHA256])
        .expect("RS256");
    signer.sign(message).expect("signature")
}

fn token(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    format!("{input}.{}", b64url(&sign(input.as_bytes())))
}

fn hs256(claims: &Value) -> String {
    token(&json!({"alg": "HS256", "kid": "hs-1"}), claims, |m| {
        hmac_sha256(SECRET.as_bytes(), m)
    })
}

fn rs256(claims: &Value) -> String {
    token(&json!({"alg": "RS256", "kid": "rs-1"}), claims, rs256_sign)
}

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "aud": "models", "iss": "https://issuer.test/", "exp": now() + 300, "iat": now()})
}

/// jwt-auth (target/wasm/jwt-auth.wasm) with an HS256 and an RS256 key in front of the model.
fn jwt_route() -> String {
    wasm("jwt-auth");
    let pem = std::fs::read_to_string(testdata("rs256-pub.pem")).expect("public key");
    format!(
        r#"
[[routes]]
name = "models"
prefix = "/"
upstream = "{{upstream}}"

[[routes.plugins]]
name = "jwt-auth"
[routes.plugins.config]
audience = ["models"]
issuer = "https://issuer.test/"
leeway_s = 0

[[routes.plugins.config.keys]]
kid = "hs-1"
secret = "{SECRET}"

[[routes.plugins.config.keys]]
kid = "rs-1"
public_key_pem = """
{pem}"""
"#
    )
}

async fn predict(h: &Harness, proto: Proto, headers: &[(&str, &str)]) -> TestResponse {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    h.send(proto, "POST", "/uci/prediction", &all, DEMO_BODY)
        .await
}

#[test]
fn the_test_signers_are_right() {
    // RFC 4231 test case 2.
    let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(b64url(b""), "");
    assert_eq!(b64url(b"f"), "Zg");
    assert_eq!(b64url(b"fo"), "Zm8");
    assert_eq!(b64url(b"foo"), "Zm9v");
    assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
}

#[tokio::test]
async fn jwt_auth_admits_good_tokens_and_passes_the_subject_upstream() {
    let h = Harness::start(&jwt_route()).await;
    let cases = [
        (Proto::Https1, hs256(&claims("alice")), "alice"),
        (Proto::Https2, rs256(&claims("svc-batch")), "svc-batch"),
        (Proto::Http1, hs256(&claims("bob")), "bob"),
    ];
    for (i, (proto, token, subject)) in cases.into_iter().enumerate() {
        let bearer = format!("Bearer {token}");
        let r = predict(
            &h,
            proto,
            &[("authorization", &bearer), ("x-jwt-subject", "admin")],
        )
        .await;
        assert_eq!(r.status, 200, "{proto:?}: {:?}", r.body);
        assert!(r.json()["result"]["price"][0][0].is_number());
        let seen = h.recorder.last_request().expect("the model got it");
        assert_eq!(h.recorder.count(), i as u64 + 1);
        let subjects: Vec<_> = seen.headers.get_all("x-jwt-subject").iter().collect();
        assert_eq!(subjects, [subject], "the client's value is replaced");
        assert!(
            seen.headers.get("authorization").is_none(),
            "the token is stripped"
        );
    }
}

#[tokio::test]
async fn jwt_auth_refuses_bad_tokens_with_a_json_reason() {
    let h = Harness::start(&jwt_route()).await;
    let t = now();
    let good = hs256(&claims("alice"));
    let (input, _) = good.rsplit_once('.').unwrap();
    let forged_sig = format!(
        "{input}.{}",
        b64url(&hmac_sha256(b"not-the-secret", input.as_bytes()))
    );
    let alg_none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none"}"#),
        b64url(claims("alice").to_string().as_bytes())
    );
    // The RS256 public key used as an HS256 secret (HMAC hashes a key longer than a block).
    let pem = std::fs::read(testdata("rs256-pub.pem")).unwrap();
    let confused = token(
        &json!({"alg": "HS256", "kid": "rs-1"}),
        &claims("alice"),
        |m| hmac_sha256(&sha256(&pem), m),
    );
    let mut expired = claims("alice");
    expired["exp"] = json!(t - 10);
    let mut early = claims("alice");
    early["nbf"] = json!(t + 3600);
    let mut other_aud = claims("alice");
    other_aud["aud"] = json!(["billing"]);
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "Missing bearer token"),
        (Some("Basic YWxpY2U6cHc=".into()), "Missing bearer token"),
        (Some("Bearer not.a.jwt".into()), "Malformed token"),
        (
            Some(format!("Bearer {forged_sig}")),
            "Invalid token signature",
        ),
        (Some(format!("Bearer {good}x")), "Invalid token signature"),
        (
            Some(format!("Bearer {alg_none}")),
            "Token algorithm not allowed",
        ),
        (
            Some(format!("Bearer {confused}")),
            "Token algorithm not allowed",
        ),
        (Some(format!("Bearer {}", hs256(&expired))), "Token expired"),
        (
            Some(format!("Bearer {}", rs256(&early))),
            "Token not yet valid",
        ),
        (
            Some(format!("Bearer {}", rs256(&other_aud))),
            "Token audience not allowed",
        ),
    ];
    for (authorization, message) in cases {
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let r = predict(&h, Proto::Https1, &headers).await;
        assert_eq!(r.status, 401, "{message}: {:?}", r.body);
        assert_eq!(r.json()["message"], message);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let challenge = r.header("www-authenticate").expect("a challenge");
        assert!(challenge.starts_with("Bearer realm="), "{challenge}");
    }
    assert_eq!(h.recorder.count(), 0, "nothing reached the model server");
}

/// Runs `cmd` to the end within `limit`, killing it after; panics with its output on failure.
fn run_bounded(mut cmd: Command, what: &str, limit: Duration) {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        let _ = err.read_to_string(&mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = reader.join().unwrap();
    assert!(status.success(), "{what} failed ({status}):\n{output}");
    eprintln!("{what}: ok in {:.1} s", started.elapsed().as_secs_f64());
}

/// docs/plugin-guide.md, "From nothing to a running plugin", step by step.
#[tokio::test]
async fn the_plugin_guide_step_by_step() {
    let scratch = tempfile::tempdir().expect("scratch directory");

    // 1. Scaffold: `wasmgate plugin new guide-auth` in an empty directory.
    let created = scaffold::new_plugin(&scaffold::NewPlugin {
        name: "guide-auth".into(),
        parent: scratch.path().to_path_buf(),
        sdk: None,
    })
    .expect("scaffold");
    assert!(created.workspace.is_none(), "a standalone crate");
    let crate_dir = created.dir.clone();

    // 2. Its unit tests pass natively: `cargo test`. The target dir is kept between runs.
    let mut cargo_test = Command::new("cargo");
    cargo_test
        // One job: the other end-to-end tests run beside this one.
        .args(["test", "--quiet", "-j", "1"])
        .current_dir(&crate_dir)
        .env(
            "CARGO_TARGET_DIR",
            repo().join("target/plugin-guide-native"),
        );
    for var in scaffold::CLEARED_ENV
        .iter()
        .filter(|v| **v != "CARGO_TARGET_DIR")
    {
        cargo_test.env_remove(var);
    }
    run_bounded(
        cargo_test,
        "cargo test of the new plugin",
        Duration::from_secs(600),
    );

    // 3. Build: `wasmgate plugin build --target-dir ...`, reusing the workspace's wasm build dir
    //    so the standard library and the shared dependencies are not compiled again.
    let built = tokio::task::spawn_blocking(move || {
        scaffold::build(&scaffold::BuildOptions {
            target_dir: Some(repo().join("target/wasm-build")),
            echo: false,
            timeout: Some(Duration::from_secs(600)),
            ..scaffold::BuildOptions::new(&crate_dir)
        })
    })
    .await
    .unwrap()
    .expect("plugin build");
    eprintln!(
        "plugin build: {} toolchain, {:.1} s, compiled {:?}",
        built.toolchain,
        built.elapsed.as_secs_f64(),
        built.compiled
    );
    assert_eq!(built.wasm, created.dir.join("target/wasm/guide-auth.wasm"));
    for krate in ["std ", "core ", "alloc "] {
        assert!(
            !built.compiled.iter().any(|c| c.starts_with(krate)),
            "the standard library was compiled again: {:?} (run scripts/build-wasm.sh first)",
            built.compiled
        );
    }
    let module = std::fs::read(&built.wasm).expect("module");
    assert_eq!(&module[..4], b"\0asm");

    // 4. Drop it into the plugin directory of a running gateway and name it in the route: the
    //    gateway reloads by itself. (The harness's `plugins.dir` is the shared target/wasm, so
    //    the route names this test's own plugin directory with `file`, the guide's other way.)
    let mut h = Harness::start_with(|dir| {
        std::fs::create_dir(dir.join("plugins")).unwrap();
        "[[routes]]\nname = \"models\"\nprefix = \"/\"\nupstream = \"{upstream}\"\n".to_owned()
    })
    .await;
    h.gateway.watch().expect("watch");
    assert_eq!(
        predict(&h, Proto::Https1, &[]).await.status,
        200,
        "open before the plugin"
    );
    std::fs::write(h.dir.path().join("plugins/guide-auth.wasm"), &module).unwrap();
    let config = h.dir.path().join("wasmgate.toml");
    let text = std::fs::read_to_string(&config).unwrap()
        + r#"
[[routes.plugins]]
name = "guide-auth"
file = "plugins/guide-auth.wasm"
[routes.plugins.config]
tokens = ["t0ken-for-the-guide"]
"#;
    std::fs::write(h.dir.path().join("wasmgate.toml.new"), text).unwrap();
    std::fs::rename(h.dir.path().join("wasmgate.toml.new"), &config).unwrap();
    let started = std::time::Instant::now();
    while predict(&h, Proto::Https1, &[]).await.status != 401 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the plugin never took over: {:?}",
            h.gateway.reloader.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = h.recorder.count();

    // 5. It acts on requests: 401 without the token or with a wrong one, 200 with it, and the
    //    token does not reach the model server.
    for headers in [vec![], vec![("x-api-token", "wrong")]] {
        let r = predict(&h, Proto::Https1, &headers).await;
        assert_eq!(r.status, 401, "{:?}", r.body);
        assert_eq!(r.json()["message"], "Missing or invalid token");
        assert_eq!(r.header("www-authenticate"), Some("Token"));
    }
    assert_eq!(
        h.recorder.count(),
        before,
        "refused requests never reach the model"
    );
    let r = predict(&h, Proto::Https2, &[("x-api-token", "t0ken-for-the-guide")]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.json()["result"]["price"][0][0].is_number());
    let seen = h.recorder.last_request().expect("the model got it");
    assert!(seen.headers.get("x-api-token").is_none());
}
