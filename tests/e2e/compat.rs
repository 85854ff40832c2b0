//! Filters written against the public `proxy-wasm` crate (as for Envoy or Istio) run unmodified.

use wasmgate_tests::{Harness, Proto, wasm};

fn route() -> String {
    format!(
        r#"
[[routes]]
name = "compat"
prefix = "/"
upstream = "{{upstream}}"

[[routes.plugins]]
name = "pw-deny"
file = "{}"

[[routes.plugins]]
name = "pw-add-header"
file = "{}"
config = {{ name = "x-added-by", value = "wasmgate-test" }}
"#,
        wasm("pw-deny").display(),
        wasm("pw-add-header").display()
    )
}

#[tokio::test]
async fn a_proxy_wasm_filter_adds_a_response_header_from_its_config() {
    let h = Harness::start(&route()).await;
    for proto in [Proto::Http1, Proto::Https2] {
        let r = h
            .send(
                proto,
                "POST",
                "/uci/prediction",
                &[],
                wasmgate_tests::DEMO_BODY,
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.header("x-added-by"), Some("wasmgate-test"));
    }
}

#[tokio::test]
async fn a_proxy_wasm_filter_answers_403_itself() {
    let h = Harness::start(&route()).await;
    let r = h
        .send(Proto::Https1, "GET", "/forbidden/thing", &[], "")
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-denied-by"), Some("pw-deny"));
    assert_eq!(&r.body[..], b"denied by pw-deny");
    assert_eq!(h.recorder.count(), 0, "the upstream never saw it");
    // The plugin before the answering one is the only one that saw the request, so the
    // response filter after it does not run on the answer.
    assert_eq!(r.header("x-added-by"), None);
}

#[tokio::test]
async fn plugins_before_the_answering_one_see_and_change_its_answer() {
    let routes = format!(
        r#"
[[routes]]
name = "compat"
prefix = "/"
upstream = "{{upstream}}"

[[routes.plugins]]
name = "pw-add-header"
file = "{}"
config = {{ name = "x-added-by", value = "outer" }}

[[routes.plugins]]
name = "pw-deny"
file = "{}"
"#,
        wasm("pw-add-header").display(),
        wasm("pw-deny").display()
    );
    let h = Harness::start(&routes).await;
    let r = h.send(Proto::Https2, "GET", "/forbidden", &[], "").await;
    assert_eq!(r.status, 403);
    assert_eq!(&r.body[..], b"denied by pw-deny");
    assert_eq!(r.header("x-denied-by"), Some("pw-deny"));
    assert_eq!(
        r.header("x-added-by"),
        Some("outer"),
        "the outer plugin's response hook ran on the answer"
    );
}

/// An SDK plugin exported with `export_plugin!(Type, OnResponse)` has its response hook called,
/// after a request-only SDK plugin on the same route (which the response phase skips), over
/// HTTP/1.1 and HTTP/2.
#[tokio::test]
async fn an_sdk_plugin_with_a_response_hook_sees_the_response() {
    let h = Harness::start(&format!(
        r#"
[[routes]]
name = "stamped"
prefix = "/"
upstream = "{{upstream}}"

[[routes.plugins]]
name = "instance-header"
config = {{ values = ["kong_ins"] }}

[[routes.plugins]]
name = "sdk-stamp"
file = "{}"
config = {{ value = "yes" }}
"#,
        wasm("sdk-stamp").display()
    ))
    .await;
    for proto in [Proto::Http1, Proto::Https2] {
        let r = h
            .send(
                proto,
                "GET",
                "/no/such/model",
                &[("x-instance-id", "kong_ins"), ("x-stamp-me", "abc")],
                "",
            )
            .await;
        assert_eq!(r.status, 410, "the response hook turned the 404 into a 410");
        assert_eq!(r.header("x-stamped"), Some("yes"));
        let seen = h
            .recorder
            .last_request()
            .expect("the upstream got the request");
        assert_eq!(
            seen.headers.get("x-stamp").map(|v| v.as_bytes()),
            Some(&b"abc"[..])
        );
    }
    // A refusal by the request-only plugin before it: the stamp plugin never saw the request, so
    // its response hook does not run on the answer either.
    let r = h.send(Proto::Http1, "GET", "/x", &[], "").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-stamped"), None);
}
