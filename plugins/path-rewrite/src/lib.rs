//! `path-rewrite`: maps a public path prefix onto an internal one, so the upstream's layout stays
//! hidden (`/serving-uci/uci/prediction` goes upstream as `/uci/prediction`).
//!
//! | key | type | default | meaning |
//! | --- | --- | --- | --- |
//! | `prefix` | string | required | path prefix to replace; starts with `/`, no trailing `/` (unless it is `/`) |
//! | `replacement` | string | `""` | what the prefix becomes; `""` or a path starting with `/`, no trailing `/` |
//!
//! The prefix matches on a segment boundary only: `/serving-uci` matches `/serving-uci`,
//! `/serving-uci/x` and `/serving-uci?q`, never `/serving-ucix`. An empty result becomes `/`; the
//! query string is kept. A path that does not match is left alone. The path a plugin sees is the
//! one the gateway already normalised, so the plugin does no decoding of its own.

use std::cell::RefCell;

use serde::Deserialize;
use wasmgate_sdk::{Decision, Plugin, Request, bytes};

/// The configured rewrite.
#[derive(Debug)]
pub struct PathRewrite {
    prefix: String,
    replacement: String,
    /// The new path is built here: a buffer kept across requests instead of a new `String` for
    /// each (an allocation and a free cost about 400 instructions in wasm).
    new_path: RefCell<String>,
}

/// Configuration of `path-rewrite` (see the crate docs for the table).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Path prefix to replace.
    pub prefix: String,
    /// What the prefix becomes.
    #[serde(default)]
    pub replacement: String,
}

/// Checks a configured path: starts with `/`, no trailing `/` (except `/` itself), no empty,
/// `.` or `..` segments, and no character that would make it ambiguous.
fn check_path(key: &str, value: &str) -> Result<(), String> {
    if !value.starts_with('/') {
        return Err(format!("{key}: must start with '/' (got {value:?})"));
    }
    if value == "/" {
        return Ok(());
    }
    if value.ends_with('/') {
        return Err(format!("{key}: must not end with '/' (got {value:?})"));
    }
    if let Some(c) = value
        .chars()
        .find(|c| matches!(c, '?' | '#' | '\\' | '%') || c.is_whitespace() || c.is_control())
    {
        return Err(format!("{key}: must not contain {c:?} (got {value:?})"));
    }
    if value[1..]
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(format!(
            "{key}: must not contain empty, '.' or '..' segments (got {value:?})"
        ));
    }
    Ok(())
}

impl PathRewrite {
    /// Writes the rewritten path into `new` (cleared first); false when `path` does not start
    /// with the prefix on a segment boundary, or the rewrite changes nothing.
    pub fn rewrite(&self, path: &str, new: &mut String) -> bool {
        new.clear();
        let Some(rest) = self.rest(path) else {
            return false;
        };
        if self.replacement.is_empty() && (rest.is_empty() || rest.starts_with('?')) {
            new.push('/');
        }
        new.push_str(&self.replacement);
        new.push_str(rest);
        !bytes::eq(new.as_bytes(), path.as_bytes())
    }

    /// What follows the prefix in `path`, when the prefix matches on a segment boundary.
    fn rest<'a>(&self, path: &'a str) -> Option<&'a str> {
        let rest = if self.prefix == "/" {
            // Every origin-form path starts with `/`; keep that slash as the separator unless
            // nothing follows it (then the rest is the whole path, slash included).
            let rest = path.strip_prefix('/')?;
            if rest.is_empty() || rest.starts_with('?') {
                rest
            } else {
                path
            }
        } else {
            let rest = bytes::strip_prefix(path, &self.prefix)?;
            if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')) {
                return None;
            }
            rest
        };
        Some(rest)
    }
}

impl Plugin for PathRewrite {
    type Config = Config;

    fn configure(config: Config) -> Result<Self, String> {
        check_path("prefix", &config.prefix)?;
        let mut replacement = config.replacement;
        if !replacement.is_empty() {
            check_path("replacement", &replacement)?;
        }
        if replacement == "/" {
            // "/" and "" mean the same: the path after the prefix, or "/" when none is left.
            replacement.clear();
        }
        Ok(PathRewrite {
            prefix: config.prefix,
            replacement,
            new_path: RefCell::default(),
        })
    }

    fn on_request(&self, req: &mut Request<'_>) -> Decision {
        let mut new = self.new_path.borrow_mut();
        // Looked at in the buffer the host filled, which the SDK keeps (`read_header`).
        let changed = req.read_header(":path", |path| {
            let path = bytes::text(path.unwrap_or_default());
            let changed = self.rewrite(&path, &mut new);
            if changed {
                wasmgate_sdk::debug!("path-rewrite: {path} -> {new}");
            }
            changed
        });
        if changed {
            req.set_path(&new);
        }
        Decision::Continue
    }
}

wasmgate_sdk::export_plugin!(PathRewrite);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_sdk::testing::{TestRequest, configure};

    fn plugin(json: &str) -> PathRewrite {
        configure(json).unwrap()
    }

    fn run(p: &PathRewrite, path: &str) -> String {
        let out = TestRequest::post(path).run(p);
        assert!(out.is_continue());
        out.path()
    }

    #[test]
    fn strips_the_public_prefix() {
        let p = plugin(r#"{"prefix":"/serving-uci"}"#);
        let cases = [
            ("/serving-uci/uci/prediction", "/uci/prediction"),
            ("/serving-uci/uci/prediction?x=1", "/uci/prediction?x=1"),
            ("/serving-uci", "/"),
            ("/serving-uci/", "/"),
            ("/serving-uci?q=1", "/?q=1"),
            ("/serving-uci/?q=1", "/?q=1"),
        ];
        for (from, to) in cases {
            assert_eq!(run(&p, from), to, "{from}");
        }
    }

    #[test]
    fn matches_only_on_segment_boundaries() {
        let p = plugin(r#"{"prefix":"/serving-uci"}"#);
        for path in [
            "/serving-ucix",
            "/serving-uci../admin",
            "/serving-uci.x",
            "/SERVING-UCI/x",
            "/other/serving-uci/x",
            "/",
            "*",
            "",
        ] {
            assert_eq!(run(&p, path), path, "{path}");
        }
    }

    #[test]
    fn replaces_with_another_prefix() {
        let p = plugin(r#"{"prefix":"/public/api","replacement":"/internal/v2"}"#);
        assert_eq!(run(&p, "/public/api/x?y"), "/internal/v2/x?y");
        assert_eq!(run(&p, "/public/api"), "/internal/v2");
        assert_eq!(run(&p, "/public/api?y"), "/internal/v2?y");
        assert_eq!(run(&p, "/public/apix"), "/public/apix");
        assert_eq!(run(&p, "/public"), "/public");
    }

    #[test]
    fn root_prefix() {
        let p = plugin(r#"{"prefix":"/","replacement":"/api"}"#);
        assert_eq!(run(&p, "/x/y"), "/api/x/y");
        assert_eq!(run(&p, "/"), "/api");
        assert_eq!(run(&p, "/?q"), "/api?q");
        let p = plugin(r#"{"prefix":"/"}"#);
        assert_eq!(run(&p, "/x"), "/x");
        assert_eq!(run(&p, "/"), "/");
    }

    #[test]
    fn slash_replacement_is_the_same_as_empty() {
        let p = plugin(r#"{"prefix":"/a","replacement":"/"}"#);
        assert_eq!(run(&p, "/a/x"), "/x");
        assert_eq!(run(&p, "/a"), "/");
    }

    #[test]
    fn other_headers_are_untouched() {
        let p = plugin(r#"{"prefix":"/serving-uci"}"#);
        let out = TestRequest::post("/serving-uci/x")
            .header("apikey", "k")
            .run(&p);
        assert_eq!(out.header("apikey").as_deref(), Some("k"));
        assert_eq!(out.method(), "POST");
    }

    #[test]
    fn bad_configs_are_refused() {
        let cases = [
            ("", "missing field `prefix`"),
            (r#"{"prefix":""}"#, "prefix: must start with '/'"),
            (r#"{"prefix":"serving"}"#, "prefix: must start with '/'"),
            (r#"{"prefix":"/serving/"}"#, "prefix: must not end with '/'"),
            (r#"{"prefix":"/a?b"}"#, "prefix: must not contain '?'"),
            (r#"{"prefix":"/a//b"}"#, "prefix: must not contain empty"),
            (r#"{"prefix":"/a/../b"}"#, "prefix: must not contain empty"),
            (r#"{"prefix":"/a%2Fb"}"#, "prefix: must not contain '%'"),
            (
                r#"{"prefix":"/a","replacement":"b"}"#,
                "replacement: must start with '/'",
            ),
            (
                r#"{"prefix":"/a","replacement":"/b/"}"#,
                "replacement: must not end with '/'",
            ),
            (r#"{"prefix":1}"#, "prefix: invalid type"),
            (
                r#"{"prefix":"/a","replace":"/b"}"#,
                "unknown field `replace`",
            ),
        ];
        for (json, want) in cases {
            let err = configure::<PathRewrite>(json).unwrap_err();
            assert!(err.contains(want), "{json}: {err}");
        }
    }
}
