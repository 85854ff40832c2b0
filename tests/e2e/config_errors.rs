//! A config whose plugins cannot load is refused with the place and the reason.

use std::path::Path;

use wasmgate_tests::{wasm, write_config};

fn load_error(dir: &Path, routes: &str) -> String {
    let path = write_config(dir, "127.0.0.1:9".parse().unwrap(), routes);
    let config = wasmgate::Config::load(&path).expect("the config itself is valid");
    match wasmgate::load(&config) {
        Ok(_) => panic!("loaded"),
        Err(e) => e.to_string(),
    }
}

fn route(plugins: &str) -> String {
    format!("[[routes]]\nname = \"r\"\nprefix = \"/r\"\nupstream = \"{{upstream}}\"\n{plugins}")
}

#[test]
fn a_missing_plugin_is_named_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_error(
        dir.path(),
        &route("[[routes.plugins]]\nname = \"key-auht\"\n"),
    );
    assert!(
        err.starts_with("routes[0].plugins[0] (key-auht): "),
        "{err}"
    );
    assert!(err.contains("key-auht.wasm: cannot read"), "{err}");
}

#[test]
fn a_file_that_is_not_wasm_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.wasm"), b"not wasm at all").unwrap();
    let err = load_error(
        dir.path(),
        &route("[[routes.plugins]]\nname = \"junk\"\nfile = \"{dir}/junk.wasm\"\n"),
    );
    assert!(err.contains("junk.wasm: not a valid wasm module"), "{err}");
}

#[test]
fn a_wasm_module_that_is_not_proxy_wasm_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    wasmgate_tests::write_wat(
        dir.path(),
        "plain",
        "(module (memory (export \"memory\") 1))",
    );
    let err = load_error(
        dir.path(),
        &route("[[routes.plugins]]\nname = \"plain\"\nfile = \"{dir}/plain.wasm\"\n"),
    );
    assert!(
        err.contains(
            "plain.wasm: not a proxy-wasm 0.2.1 module: missing export proxy_abi_version_0_2_1"
        ),
        "{err}"
    );
}

#[test]
fn a_plugin_that_refuses_its_config_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_error(
        dir.path(),
        &route("[[routes.plugins]]\nname = \"key-auth\"\nconfig = { consumers = [] }\n"),
    );
    assert!(
        err.starts_with("routes[0].plugins[0] (key-auth): "),
        "{err}"
    );
    assert!(err.contains("refused its configuration"), "{err}");
    assert!(
        err.contains("consumers"),
        "the plugin's own reason is quoted: {err}"
    );
    let _ = wasm("key-auth");
}

#[test]
fn every_failing_plugin_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_error(
        dir.path(),
        &route(
            "[[routes.plugins]]\nname = \"nope\"\n\
             [[routes.plugins]]\nname = \"instance-header\"\nconfig = { values = [] }\n",
        ),
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].starts_with("routes[0].plugins[0] (nope)"), "{err}");
    assert!(
        lines[1].starts_with("routes[0].plugins[1] (instance-header)"),
        "{err}"
    );
}
