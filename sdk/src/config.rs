//! Typed plugin configuration: the JSON bytes the host hands over at configure time, turned into
//! the plugin's `Config` type and then into the plugin.

use crate::Plugin;

/// Parses configuration JSON into `C`. Empty (or all-whitespace) input reads as `{}`, so a plugin
/// whose fields all have defaults needs no configuration.
///
/// The error names the place of the fault, e.g.
/// `consumers[0].keys: invalid type: string "k", expected a sequence at line 1 column 30`.
pub fn parse_config<C: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<C, String> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: C = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let message = redact_strings(&e.inner().to_string());
        let path = e.path().to_string();
        if path == "." || path.is_empty() {
            message
        } else {
            format!("{path}: {message}")
        }
    })?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}

/// Drops the quoted value from serde's `string "..."` in an error message: a configuration can
/// hold secrets (API keys), and the message goes to the log. The path already names the key.
fn redact_strings(message: &str) -> String {
    const MARK: &str = "string \"";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        out.push_str("a string");
        // serde writes the value with `{:?}`: skip to the first quote not escaped by `\`.
        let mut escaped = false;
        let mut end = rest.len();
        for (i, c) in rest[at + MARK.len()..].char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = at + MARK.len() + i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Builds a plugin from configuration bytes exactly as `proxy_on_configure` does: parse, then
/// [`Plugin::configure`]. The error is the message the host gets.
pub fn build_plugin<P: Plugin>(bytes: &[u8]) -> Result<P, String> {
    let config = parse_config::<P::Config>(bytes)?;
    P::configure(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Conf {
        #[serde(default)]
        names: Vec<String>,
        #[serde(default)]
        inner: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        n: u32,
    }

    #[test]
    fn empty_means_defaults() {
        let c: Conf = parse_config(b"").unwrap();
        assert!(c.names.is_empty());
        let c: Conf = parse_config(b" \n").unwrap();
        assert!(c.inner.is_empty());
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse_config::<Conf>(br#"{"names": "x"}"#).unwrap_err();
        assert!(e.starts_with("names: invalid type"), "{e}");
        let e = parse_config::<Conf>(br#"{"inner": [{"n": 1}, {"n": "x"}]}"#).unwrap_err();
        assert!(e.starts_with("inner[1].n: invalid type"), "{e}");
        let e = parse_config::<Conf>(br#"{"nmaes": []}"#).unwrap_err();
        assert!(e.contains("unknown field `nmaes`"), "{e}");
        let e = parse_config::<Conf>(br#"{} trailing"#).unwrap_err();
        assert!(e.contains("trailing"), "{e}");
        let e = parse_config::<Conf>(b"[1").unwrap_err();
        assert!(!e.is_empty());
    }

    #[test]
    fn string_values_stay_out_of_messages() {
        let e = parse_config::<Conf>(br#"{"inner": "s3cr\"et"}"#).unwrap_err();
        assert!(
            e.starts_with("inner: invalid type: a string, expected"),
            "{e}"
        );
        assert!(!e.contains("s3cr"), "{e}");
        assert_eq!(
            redact_strings(r#"x string "a\"b" y string "c""#),
            "x a string y a string"
        );
        assert_eq!(redact_strings(r#"string "unterminated"#), "a string");
        assert_eq!(redact_strings("no strings"), "no strings");
    }
}
