//! The proxy-wasm serialized header map: encoding what the plugin hands the host and decoding,
//! with bounds checks, what the host hands back.
//!
//! Format: a `u32` little-endian count `N`, then `N` pairs of (`u32` LE key length, `u32` LE value
//! length), then for each pair the key bytes, a 0 byte, the value bytes, a 0 byte.

/// Serializes header pairs into the proxy-wasm map format.
pub(crate) fn encode_map<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let data_len: usize = pairs
        .iter()
        .map(|(k, v)| k.as_ref().len() + v.as_ref().len() + 2)
        .sum();
    let mut out = Vec::with_capacity(4 + pairs.len() * 8 + data_len);
    out.extend_from_slice(&len_u32(pairs.len()).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&len_u32(k.as_ref().len()).to_le_bytes());
        out.extend_from_slice(&len_u32(v.as_ref().len()).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    out
}

/// Lengths in the format are `u32`; a header longer than 4 GiB cannot exist in a wasm32 guest.
fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Decodes a serialized map. Returns `None` when the bytes do not follow the format (a length runs
/// past the end, a separator is not 0) rather than trusting the host's lengths.
pub(crate) fn decode_map(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let count = read_u32(bytes, 0)? as usize;
    let sizes_end = count.checked_mul(8)?.checked_add(4)?;
    if sizes_end > bytes.len() {
        return None;
    }
    let mut pairs = Vec::with_capacity(count);
    let mut data = sizes_end;
    for i in 0..count {
        let key_len = read_u32(bytes, 4 + i * 8)? as usize;
        let value_len = read_u32(bytes, 8 + i * 8)? as usize;
        let key = take(bytes, &mut data, key_len)?;
        let value = take(bytes, &mut data, value_len)?;
        pairs.push((key.to_vec(), value.to_vec()));
    }
    Some(pairs)
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let raw = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(raw.try_into().ok()?))
}

/// Takes `len` bytes at `*at` followed by their 0 terminator and moves `*at` past both.
fn take<'a>(bytes: &'a [u8], at: &mut usize, len: usize) -> Option<&'a [u8]> {
    let end = at.checked_add(len)?;
    let field = bytes.get(*at..end)?;
    if *bytes.get(end)? != 0 {
        return None;
    }
    *at = end + 1;
    Some(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pairs = vec![
            (b":path".to_vec(), b"/x?y=1".to_vec()),
            (b"apikey".to_vec(), b"".to_vec()),
            (b"empty-value".to_vec(), b"v".to_vec()),
        ];
        let bytes = encode_map(&pairs);
        assert_eq!(&bytes[..4], &3u32.to_le_bytes());
        assert_eq!(decode_map(&bytes), Some(pairs));
    }

    #[test]
    fn layout_matches_the_abi() {
        let bytes = encode_map(&[("ab", "c")]);
        let mut want = vec![1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0];
        want.extend_from_slice(b"ab\0c\0");
        assert_eq!(bytes, want);
    }

    #[test]
    fn empty_input_is_an_empty_map() {
        assert_eq!(decode_map(&[]), Some(vec![]));
        assert_eq!(decode_map(&encode_map::<&str, &str>(&[])), Some(vec![]));
    }

    #[test]
    fn refuses_truncated_or_malformed_maps() {
        let good = encode_map(&[("key", "value")]);
        for cut in 1..good.len() {
            assert_eq!(decode_map(&good[..cut]), None, "cut at {cut}");
        }
        let mut bad_sep = good.clone();
        let last = bad_sep.len() - 1;
        bad_sep[last] = b'x';
        assert_eq!(decode_map(&bad_sep), None);
        // A count that would overflow the size table.
        assert_eq!(decode_map(&u32::MAX.to_le_bytes()), None);
    }
}
