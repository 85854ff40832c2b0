//! The one canonical request path. Every request's path is normalised here once, before routing;
//! the route match, every plugin (`:path`) and the upstream see that same form, so no encoding
//! trick makes two components read one path two ways.

use std::fmt;

/// Why a request path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not an origin-form path (does not start with `/`).
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// An encoding that would change the path's structure once decoded: `%2F`, `%5C`, `%00`, or
    /// a double-encoded `%25`.
    AmbiguousEscape,
    /// A backslash, control character or other byte that has no unambiguous meaning in a path.
    BadCharacter,
    /// A `.` or `..` segment carrying `;` parameters.
    DotSegmentParameters,
    /// `..` climbing above the root.
    AboveRoot,
    /// Longer than [`MAX_PATH_LEN`].
    TooLong,
}

/// Longest path (without the query) accepted.
pub const MAX_PATH_LEN: usize = 8 * 1024;

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "the path must start with `/`",
            PathError::BadEscape => "the path has a `%` not followed by two hex digits",
            PathError::AmbiguousEscape => {
                "the path encodes `/`, `\\`, NUL or `%`, which cannot be routed unambiguously"
            }
            PathError::BadCharacter => "the path has a backslash or control character",
            PathError::DotSegmentParameters => "the path has `;` parameters on a dot segment",
            PathError::AboveRoot => "the path climbs above the root with `..`",
            PathError::TooLong => "the path is too long",
        })
    }
}

impl std::error::Error for PathError {}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Normalises a request path (without its query): decodes percent-escapes of unreserved
/// characters (`%73` → `s`, `%2e` → `.`), upper-cases the hex of the escapes it keeps, merges
/// repeated slashes, and resolves `.` and `..` segments. A trailing slash is kept. Refuses what
/// cannot be made unambiguous.
pub fn normalize(path: &str) -> Result<String, PathError> {
    if is_plainly_canonical(path.as_bytes()) {
        return Ok(path.to_owned());
    }
    normalize_general(path)
}

/// A path that [`normalize`] would give back as it is, recognised in one pass without building
/// anything: it starts with `/`, holds only unreserved characters and `/`, and has no empty,
/// `.` or `..` segment (an empty last one is the root or a trailing slash). Most request paths
/// are like this; the general normaliser took about 3.9k instructions on the seed's path.
pub(crate) fn is_plainly_canonical(raw: &[u8]) -> bool {
    if raw.first() != Some(&b'/') || raw.len() > MAX_PATH_LEN {
        return false;
    }
    let mut segments = raw[1..].split(|&b| b == b'/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if (segment.is_empty() && !last)
            || segment == b"."
            || segment == b".."
            || !segment.iter().all(|&b| is_unreserved(b))
        {
            return false;
        }
    }
    true
}

fn normalize_general(path: &str) -> Result<String, PathError> {
    let raw = path.as_bytes();
    if raw.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if raw.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }

    // Pass 1: decode the escapes that are safe to decode, refuse the ones that are not.
    let mut decoded = String::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        match b {
            b'%' => {
                let (hi, lo) = match (
                    raw.get(i + 1).and_then(|&h| hex(h)),
                    raw.get(i + 2).and_then(|&l| hex(l)),
                ) {
                    (Some(hi), Some(lo)) => (hi, lo),
                    _ => return Err(PathError::BadEscape),
                };
                let value = hi << 4 | lo;
                if matches!(value, b'/' | b'\\' | b'%') || value < 0x20 || value == 0x7f {
                    return Err(PathError::AmbiguousEscape);
                }
                if is_unreserved(value) {
                    decoded.push(value as char);
                } else {
                    decoded.push('%');
                    decoded.push(char::from(b"0123456789ABCDEF"[usize::from(hi)]));
                    decoded.push(char::from(b"0123456789ABCDEF"[usize::from(lo)]));
                }
                i += 3;
            }
            b'\\' => return Err(PathError::BadCharacter),
            b if b < 0x20 || b == 0x7f || b >= 0x80 || b == b'#' || b == b' ' => {
                return Err(PathError::BadCharacter);
            }
            _ => {
                decoded.push(b as char);
                i += 1;
            }
        }
    }

    // Pass 2: resolve segments.
    let trailing_slash = decoded.len() > 1 && decoded.ends_with('/');
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        let bare = segment.split(';').next().unwrap_or("");
        if (bare == "." || bare == "..") && bare.len() != segment.len() {
            return Err(PathError::DotSegmentParameters);
        }
        match segment {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}

/// Whether `path` (normalised) falls under `prefix` on a segment boundary: `/a` matches `/a` and
/// `/a/b`, never `/ab`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_pass_unchanged() {
        for p in [
            "/",
            "/serving-uci",
            "/serving-uci/",
            "/serving-uci/uci/prediction",
            "/a/b:c@d",
        ] {
            assert_eq!(normalize(p).as_deref(), Ok(p));
        }
    }

    /// Every path of up to 9 characters over `/ . a - ~` that the quick check takes is one the
    /// general normaliser gives back unchanged and a valid `PathAndQuery`; and the quick check
    /// takes the common ones.
    #[test]
    fn the_quick_check_takes_only_what_the_normaliser_leaves_alone() {
        let alphabet = [b'/', b'.', b'a', b'-', b'~'];
        let mut taken = 0;
        for len in 1..=9u32 {
            for mut n in 0..alphabet.len().pow(len) {
                let mut path = Vec::with_capacity(len as usize);
                for _ in 0..len {
                    path.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                if is_plainly_canonical(&path) {
                    taken += 1;
                    let path = std::str::from_utf8(&path).expect("ASCII");
                    assert_eq!(normalize_general(path).as_deref(), Ok(path), "{path}");
                    // A plugin's `:path` is taken on this check alone (plugin::stream).
                    assert!(path.parse::<http::uri::PathAndQuery>().is_ok(), "{path}");
                }
            }
        }
        assert!(taken > 10_000, "{taken}");
        for p in [
            "/",
            "/serving-uci/uci/prediction",
            "/a/b/",
            "/v1/models/x.y_z~1",
        ] {
            assert!(is_plainly_canonical(p.as_bytes()), "{p}");
        }
        for p in [
            "", "a", "//", "/a//b", "/.", "/a/..", "/a/./b", "/a%41", "/a;b", "/a b",
        ] {
            assert!(!is_plainly_canonical(p.as_bytes()), "{p}");
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_canonicalised() {
        assert_eq!(normalize("/%73erving-uci/x").unwrap(), "/serving-uci/x");
        assert_eq!(normalize("/a%2eb").unwrap(), "/a.b");
        assert_eq!(normalize("/a%3ab%3A").unwrap(), "/a%3Ab%3A");
        assert_eq!(normalize("/caf%c3%a9").unwrap(), "/caf%C3%A9");
    }

    #[test]
    fn dot_segments_and_slashes_are_resolved() {
        assert_eq!(normalize("//serving-uci/x").unwrap(), "/serving-uci/x");
        assert_eq!(normalize("/serving-uci//x").unwrap(), "/serving-uci/x");
        assert_eq!(normalize("/a/./b/../c").unwrap(), "/a/c");
        assert_eq!(normalize("/serving-uci/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(
            normalize("/serving-uci../admin").unwrap(),
            "/serving-uci../admin"
        );
        assert_eq!(normalize("/a/..").unwrap(), "/");
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for (p, e) in [
            ("serving-uci", PathError::NotAbsolute),
            ("/serving-uci%2Fx", PathError::AmbiguousEscape),
            ("/serving-uci%2fx", PathError::AmbiguousEscape),
            ("/a%5Cb", PathError::AmbiguousEscape),
            ("/serving-uci/x%00", PathError::AmbiguousEscape),
            ("/serving-uci%252e%252e/", PathError::AmbiguousEscape),
            ("/a%2", PathError::BadEscape),
            ("/a%zz", PathError::BadEscape),
            ("/serving-uci\\..\\internal", PathError::BadCharacter),
            ("/a\tb", PathError::BadCharacter),
            (
                "/serving-uci/..;x=1/..;/internal",
                PathError::DotSegmentParameters,
            ),
            ("/serving-uci/%2e%2e/%2e%2e/internal", PathError::AboveRoot),
            ("/..", PathError::AboveRoot),
        ] {
            assert_eq!(normalize(p), Err(e), "{p}");
        }
        assert_eq!(
            normalize(&format!("/{}", "a".repeat(MAX_PATH_LEN))),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(prefix_matches("/serving-uci", "/serving-uci"));
        assert!(prefix_matches("/serving-uci", "/serving-uci/"));
        assert!(prefix_matches("/serving-uci", "/serving-uci/x"));
        assert!(!prefix_matches("/serving-uci", "/serving-ucix"));
        assert!(!prefix_matches("/serving-uci", "/serving-uci../admin"));
        assert!(!prefix_matches("/serving-uci", "/SERVING-UCI/x"));
        assert!(prefix_matches("/", "/anything"));
    }
}
