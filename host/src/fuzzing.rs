//! Fuzz harnesses: the logic behind the cargo-fuzz targets in `fuzz/` (docs/fuzzing.md), kept in
//! the crate so the committed seed corpus also runs as an ordinary test.
//!
//! Each entry point takes arbitrary bytes, drives one part of the gateway with them and panics
//! when an invariant breaks:
//!
//! - [`fuzz_path`]: the canonical path ([`crate::proxy::path`]). Every answer of `normalize` is
//!   compared with a second, independently structured model of what it promises, and every
//!   accepted path is checked for the properties routing relies on.
//! - `fuzz_abi` (with the `fuzzing` feature, or in tests): the proxy-wasm host calls. A guest
//!   module runs a program of host calls decoded from the input, with hostile pointers, lengths,
//!   map types and allocator answers, in every phase of a request; the guest itself checks each
//!   status against what the spec table of docs/abi.md allows, and the harness checks the request
//!   state, the failure kinds and that the plugin serves a fresh request afterwards.

use crate::proxy::path::{MAX_PATH_LEN, PathError, normalize, prefix_matches};

// ---- the path normaliser --------------------------------------------------------------------

/// Runs `normalize` and `prefix_matches` on `data` (as UTF-8, lossily) and checks every
/// invariant. Panics on a violation.
pub fn fuzz_path(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    check_path(&input);
}

/// Route prefixes checked against every accepted path, besides ones taken from the path itself.
const PREFIXES: &[&str] = &["/", "/serving-uci", "/uci/prediction", "/a", "/a.b", "/%3A"];

fn check_path(input: &str) {
    let got = normalize(input);
    let model = model_normalize(input);
    match (&got, &model) {
        (Ok(out), Ok(want)) => assert_eq!(out, want, "normalize({input:?}) differs from the model"),
        (Err(e), Err(allowed)) => assert!(
            allowed.contains(e),
            "normalize({input:?}) refused with {e:?}; the model expects one of {allowed:?}"
        ),
        _ => panic!("normalize({input:?}) = {got:?}, the model says {model:?}"),
    }
    let Ok(out) = got else { return };

    assert!(
        out.len() <= input.len(),
        "normalize({input:?}) grew the path to {out:?}"
    );
    check_canonical(input, &out);
    assert_eq!(
        normalize(&out).as_deref(),
        Ok(out.as_str()),
        "normalize is not idempotent on {input:?} -> {out:?}"
    );
    // What the http crate accepted before normalising it still accepts after.
    if !input.contains('?') && input.parse::<http::uri::PathAndQuery>().is_ok() {
        assert!(
            out.parse::<http::uri::PathAndQuery>().is_ok(),
            "{input:?} -> {out:?} is no longer a valid request target"
        );
    }

    // Prefix matching is on whole segments of the canonical path.
    let segments: Vec<&str> = out.split('/').filter(|s| !s.is_empty()).collect();
    let mut prefixes: Vec<String> = PREFIXES.iter().map(|p| p.to_string()).collect();
    for n in 1..=segments.len().min(3) {
        prefixes.push(format!("/{}", segments[..n].join("/")));
    }
    if let Some(first) = segments.first() {
        // A prefix that is the first segment minus its last character must not match.
        if first.len() > 1 {
            prefixes.push(format!("/{}", &first[..first.len() - 1]));
        }
    }
    for prefix in &prefixes {
        let prefix_segments: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
        let by_segments = segments.starts_with(&prefix_segments);
        assert_eq!(
            prefix_matches(prefix, &out),
            by_segments,
            "prefix_matches({prefix:?}, {out:?}) disagrees with a segment-wise match"
        );
        if prefix_matches(prefix, &out) && prefix != "/" {
            assert!(
                out == *prefix || out.starts_with(&format!("{prefix}/")),
                "prefix_matches({prefix:?}, {out:?}) matched off a segment boundary"
            );
        }
    }
}

/// The shape every accepted path has.
fn check_canonical(input: &str, out: &str) {
    let b = out.as_bytes();
    assert_eq!(b.first(), Some(&b'/'), "{input:?} -> {out:?}: not absolute");
    assert!(!out.contains("//"), "{input:?} -> {out:?}: empty segment");
    for segment in out.split('/') {
        let bare = segment.split(';').next().unwrap_or_default();
        assert!(
            bare != "." && bare != "..",
            "{input:?} -> {out:?}: dot segment {segment:?} left"
        );
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        assert!(
            c > 0x20 && c < 0x7f && c != b'\\' && c != b'#',
            "{input:?} -> {out:?}: byte {c:#04x} in the canonical path"
        );
        if c == b'%' {
            let digits = b.get(i + 1..i + 3).unwrap_or_default();
            assert!(
                digits.len() == 2
                    && digits
                        .iter()
                        .all(|d| d.is_ascii_digit() || (b'A'..=b'F').contains(d)),
                "{input:?} -> {out:?}: escape at {i} is not two upper-case hex digits"
            );
            let value = u8::from_str_radix(std::str::from_utf8(digits).unwrap_or("00"), 16)
                .unwrap_or_default();
            assert!(
                !value.is_ascii_alphanumeric() && !b"-._~".contains(&value),
                "{input:?} -> {out:?}: escape of an unreserved character kept"
            );
            assert!(
                !b"/\\%".contains(&value) && value >= 0x20 && value != 0x7f,
                "{input:?} -> {out:?}: ambiguous escape %{value:02X} in the canonical path"
            );
            i += 3;
        } else {
            i += 1;
        }
    }
}

/// A second model of `normalize`, built the other way round: split the raw path into segments
/// first, decode each segment on its own, then resolve. The two agree only if no escape can
/// decode to a separator, which is the property that matters. An error is a set of acceptable
/// reasons (`normalize` reports the first it meets).
fn model_normalize(input: &str) -> Result<String, Vec<PathError>> {
    if !input.starts_with('/') {
        return Err(vec![PathError::NotAbsolute]);
    }
    if input.len() > MAX_PATH_LEN {
        return Err(vec![PathError::TooLong]);
    }
    let hex = |d: u8| (d as char).to_digit(16).map(|v| v as u8);
    let mut decoded_segments = Vec::new();
    let mut byte_errors = Vec::new();
    for raw in input.split('/') {
        let raw = raw.as_bytes();
        let mut seg = String::new();
        let mut i = 0;
        while i < raw.len() {
            let c = raw[i];
            if c == b'%' {
                match (
                    raw.get(i + 1).and_then(|&d| hex(d)),
                    raw.get(i + 2).and_then(|&d| hex(d)),
                ) {
                    (Some(h), Some(l)) => {
                        let v = h * 16 + l;
                        if v == b'/' || v == b'\\' || v == b'%' || v < 0x20 || v == 0x7f {
                            byte_errors.push(PathError::AmbiguousEscape);
                        } else if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
                            seg.push(v as char);
                        } else {
                            seg.push_str(&format!("%{v:02X}"));
                        }
                        i += 3;
                    }
                    _ => {
                        byte_errors.push(PathError::BadEscape);
                        i += 1;
                    }
                }
                continue;
            }
            if c == b'\\' || c <= 0x20 || c >= 0x7f || c == b'#' {
                byte_errors.push(PathError::BadCharacter);
            } else {
                seg.push(c as char);
            }
            i += 1;
        }
        decoded_segments.push(seg);
    }
    if !byte_errors.is_empty() {
        return Err(byte_errors);
    }

    let mut errors = Vec::new();
    let mut stack: Vec<&str> = Vec::new();
    let mut climbed = false;
    for seg in &decoded_segments {
        let bare = seg.split(';').next().unwrap_or_default();
        if (bare == "." || bare == "..") && seg.contains(';') {
            errors.push(PathError::DotSegmentParameters);
        }
        match seg.as_str() {
            "" | "." => {}
            ".." => climbed |= stack.pop().is_none(),
            s => stack.push(s),
        }
    }
    if climbed {
        errors.push(PathError::AboveRoot);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let trailing = input.len() > 1 && input.ends_with('/');
    let mut out = format!("/{}", stack.join("/"));
    if trailing && !stack.is_empty() {
        out.push('/');
    }
    Ok(out)
}

// ---- the plugin ABI -------------------------------------------------------------------------

#[cfg(any(test, feature = "fuzzing"))]
pub use abi::fuzz_abi;

#[cfg(any(test, feature = "fuzzing"))]
mod abi;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
            .join(target);
        let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| {
                let path = entry.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                (path, bytes)
            })
            .collect();
        files.sort();
        files
    }

    /// Runs every committed input of `target` through `run`, naming the file that fails.
    fn replay(target: &str, min_files: usize, run: fn(&[u8])) {
        let files = corpus(target);
        assert!(
            files.len() >= min_files,
            "fuzz/corpus/{target} has {} files, expected at least {min_files}",
            files.len()
        );
        for (path, bytes) in files {
            if let Err(panic) = std::panic::catch_unwind(|| run(&bytes)) {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("{}: {what}", path.display());
            }
        }
    }

    #[test]
    fn path_corpus_holds_every_invariant() {
        replay("path_normalize", 30, super::fuzz_path);
    }

    #[test]
    fn abi_corpus_holds_every_invariant() {
        replay("abi_hostcalls", 8, super::fuzz_abi);
    }

    #[test]
    fn the_model_agrees_on_the_checklist_vectors() {
        use crate::proxy::path::PathError::*;
        // The model is a test oracle: check it against answers written out by hand.
        for (input, want) in [
            ("/serving-uci/x", Ok("/serving-uci/x")),
            ("/serving-uci/", Ok("/serving-uci/")),
            ("//serving-uci/x", Ok("/serving-uci/x")),
            ("/%73erving-uci/x", Ok("/serving-uci/x")),
            ("/serving-uci../admin", Ok("/serving-uci../admin")),
            ("/a/b/..", Ok("/a")),
            ("/serving-uci%2Fx", Err(AmbiguousEscape)),
            ("/serving-uci%252e%252e/", Err(AmbiguousEscape)),
            ("/serving-uci\\..\\internal", Err(BadCharacter)),
            (
                "/serving-uci/..;x=1/..;/internal",
                Err(DotSegmentParameters),
            ),
            ("/serving-uci/%2e%2e/%2e%2e/internal", Err(AboveRoot)),
            ("/a%zz", Err(BadEscape)),
        ] {
            match (super::model_normalize(input), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{input}"),
                (Err(got), Err(want)) => assert!(got.contains(&want), "{input}: {got:?}"),
                (got, want) => panic!("{input}: model {got:?}, expected {want:?}"),
            }
            super::check_path(input);
        }
    }
}
