//! Byte strings on the request path: comparisons, and a text view of a lent value.
//!
//! In a wasm module, `==` on slices and `str::starts_with` / `strip_prefix` call the module's
//! `memcmp`, which compares one byte per loop turn; with the host's interruption check in every
//! turn, comparing a dozen bytes cost about 260 instructions in wasmtime, as much as a host call.
//! These compare eight bytes at a time and give the same answers.
//!
//! ```
//! use wasmgate_sdk::bytes;
//! assert!(bytes::eq(b"kong_ins", b"kong_ins"));
//! assert_eq!(bytes::strip_prefix("/serving-uci/uci", "/serving-uci"), Some("/uci"));
//! ```

use std::borrow::Cow;

/// Eight bytes as one word (its byte order does not matter for equality).
fn word(chunk: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(chunk);
    u64::from_ne_bytes(w)
}

/// Whether `a` and `b` hold the same bytes: `a == b`, eight bytes at a time. Not constant-time:
/// it stops at the first word that differs, so do not use it on secrets.
pub fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut wa, mut wb) = (a.chunks_exact(8), b.chunks_exact(8));
    if !(&mut wa).zip(&mut wb).all(|(x, y)| word(x) == word(y)) {
        return false;
    }
    let (ra, rb) = (wa.remainder(), wb.remainder());
    if ra.len() >= 4 {
        // The last four to seven bytes as two overlapping four-byte words.
        let four = |s: &[u8], at: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&s[at..at + 4]);
            u32::from_ne_bytes(w)
        };
        let last = ra.len() - 4;
        return four(ra, 0) == four(rb, 0) && four(ra, last) == four(rb, last);
    }
    ra.iter().zip(rb).all(|(x, y)| x == y)
}

/// `s` without `prefix`, when it starts with it: `str::strip_prefix` with [`eq`].
pub fn strip_prefix<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.as_bytes().get(..prefix.len())?;
    if eq(head, prefix.as_bytes()) {
        // `prefix` is valid UTF-8 and `s` starts with its bytes, so this is a char boundary.
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// `bytes` as text: borrowed when it is valid UTF-8, with invalid sequences replaced otherwise.
/// `String::from_utf8_lossy` alone gives the same, but decodes byte by byte even when the bytes
/// are valid (about 460 instructions for a 27-byte path in wasm); this checks them first. For a
/// value lent by `read_header`.
pub fn text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_borrows_valid_utf8_and_replaces_the_rest() {
        assert!(matches!(
            text(b"/uci/prediction"),
            Cow::Borrowed("/uci/prediction")
        ));
        assert!(matches!(
            text("caf\u{e9}".as_bytes()),
            Cow::Borrowed("caf\u{e9}")
        ));
        assert_eq!(text(b"a\xffb"), "a\u{fffd}b");
        assert_eq!(text(b""), "");
    }

    #[test]
    fn agrees_with_slice_equality_for_every_length_and_every_differing_byte() {
        let base: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
        for len in 0..=base.len() {
            let a = &base[..len];
            assert!(eq(a, a), "length {len}");
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x01;
                assert!(!eq(a, &b), "length {len}, byte {at}");
                b[at] ^= 0x81;
                assert!(!eq(a, &b), "length {len}, byte {at}, high bit");
            }
            if len > 0 {
                assert!(!eq(a, &a[..len - 1]), "length {len} against one shorter");
            }
        }
    }

    #[test]
    fn strip_prefix_agrees_with_str() {
        let cases = [
            ("/serving-uci/uci/prediction", "/serving-uci"),
            ("/serving-uci", "/serving-uci"),
            ("/serving-ucj", "/serving-uci"),
            ("/s", "/serving-uci"),
            ("", ""),
            ("café/x", "café"),
            ("caf", "café"),
            ("/", "/"),
        ];
        for (s, p) in cases {
            assert_eq!(strip_prefix(s, p), s.strip_prefix(p), "{s:?} {p:?}");
        }
    }
}
