//! `instance-header`: admits only requests that carry an expected instance header
//! (`X-INSTANCE-ID: kong_ins` in the motivating set-up).
//!
//! | key | type | default | meaning |
//! | --- | --- | --- | --- |
//! | `header` | string | `"X-INSTANCE-ID"` | header to check (name matched case-insensitively) |
//! | `values` | list of strings | required, non-empty | accepted values (compared exactly) |
//! | `strip` | bool | `false` | remove the header before the request goes upstream |
//!
//! Missing header: `403 {"message":"Missing X-INSTANCE-ID header"}`; a value not in `values`
//! (several headers of the name count as one value joined with `,`):
//! `403 {"message":"Invalid X-INSTANCE-ID header"}`. The messages use the configured name.

use serde::Deserialize;
use wasmgate_sdk::{Decision, Plugin, Request, bytes};

/// The configured check.
#[derive(Debug)]
pub struct InstanceHeader {
    header: String,
    values: Vec<String>,
    strip: bool,
}

/// Configuration of `instance-header` (see the crate docs for the table).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Header to check.
    #[serde(default = "default_header")]
    pub header: String,
    /// Accepted values.
    pub values: Vec<String>,
    /// Remove the header before the request goes upstream.
    #[serde(default)]
    pub strip: bool,
}

fn default_header() -> String {
    "X-INSTANCE-ID".to_owned()
}

/// An HTTP header name is a non-empty RFC 9110 token.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Plugin for InstanceHeader {
    type Config = Config;

    fn configure(config: Config) -> Result<Self, String> {
        if !is_token(&config.header) {
            return Err(format!(
                "header: {:?} is not a valid header name",
                config.header
            ));
        }
        if config.values.is_empty() {
            return Err("values: at least one accepted value is required".to_owned());
        }
        for (i, v) in config.values.iter().enumerate() {
            if v.is_empty() {
                return Err(format!("values[{i}]: must not be empty"));
            }
            if v.chars().any(char::is_control) || v.trim() != v {
                return Err(format!(
                    "values[{i}]: must not have control characters or surrounding spaces"
                ));
            }
        }
        Ok(InstanceHeader {
            header: config.header,
            values: config.values,
            strip: config.strip,
        })
    }

    fn on_request(&self, req: &mut Request<'_>) -> Decision {
        // Looked at in the buffer the host filled, which the SDK keeps (`read_header`).
        let known = req.read_header(&self.header, |value| {
            value.map(|value| self.values.iter().any(|v| bytes::eq(v.as_bytes(), value)))
        });
        let Some(known) = known else {
            return Decision::reject_json(403, &format!("Missing {} header", self.header));
        };
        if !known {
            wasmgate_sdk::info!(
                "instance-header: refused a request with an unknown {}",
                self.header
            );
            return Decision::reject_json(403, &format!("Invalid {} header", self.header));
        }
        if self.strip {
            req.remove_header(&self.header);
        }
        Decision::Continue
    }
}

wasmgate_sdk::export_plugin!(InstanceHeader);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_sdk::testing::{TestRequest, configure};

    fn plugin(json: &str) -> InstanceHeader {
        configure(json).unwrap()
    }

    #[test]
    fn accepts_a_known_value() {
        let p = plugin(r#"{"values":["kong_ins","other"]}"#);
        for name in ["X-INSTANCE-ID", "x-instance-id", "X-Instance-Id"] {
            let out = TestRequest::post("/x").header(name, "kong_ins").run(&p);
            assert!(out.is_continue(), "{name}");
            assert_eq!(out.header("x-instance-id").as_deref(), Some("kong_ins"));
        }
        assert!(
            TestRequest::get("/")
                .header("x-instance-id", "other")
                .run(&p)
                .is_continue()
        );
    }

    #[test]
    fn missing_header_is_403() {
        let p = plugin(r#"{"values":["kong_ins"]}"#);
        let out = TestRequest::post("/x")
            .header("x-instance", "kong_ins")
            .run(&p);
        assert_eq!(out.status(), Some(403));
        assert_eq!(
            out.message().as_deref(),
            Some("Missing X-INSTANCE-ID header")
        );
        let r = out.local_response().unwrap();
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body, br#"{"message":"Missing X-INSTANCE-ID header"}"#);
    }

    #[test]
    fn wrong_value_is_403() {
        let p = plugin(r#"{"values":["kong_ins"]}"#);
        for bad in ["KONG_INS", "kong_ins ", "", "kong", "kong_ins,kong_ins"] {
            let out = TestRequest::post("/x").header("x-instance-id", bad).run(&p);
            assert_eq!(out.status(), Some(403), "{bad:?}");
            assert_eq!(
                out.message().as_deref(),
                Some("Invalid X-INSTANCE-ID header")
            );
        }
        // Two headers of the name read as one joined value.
        let out = TestRequest::post("/x")
            .header("x-instance-id", "kong_ins")
            .header("x-instance-id", "evil")
            .run(&p);
        assert_eq!(out.status(), Some(403));
    }

    #[test]
    fn custom_header_name_is_used_in_messages() {
        let p = plugin(r#"{"header":"X-Tenant","values":["a"]}"#);
        let out = TestRequest::get("/").run(&p);
        assert_eq!(out.message().as_deref(), Some("Missing X-Tenant header"));
        let out = TestRequest::get("/").header("x-tenant", "b").run(&p);
        assert_eq!(out.message().as_deref(), Some("Invalid X-Tenant header"));
        assert!(
            TestRequest::get("/")
                .header("x-tenant", "a")
                .run(&p)
                .is_continue()
        );
    }

    #[test]
    fn strip_removes_the_header() {
        let p = plugin(r#"{"values":["kong_ins"],"strip":true}"#);
        let out = TestRequest::post("/x")
            .header("X-INSTANCE-ID", "kong_ins")
            .header("apikey", "k")
            .run(&p);
        assert!(out.is_continue());
        assert_eq!(out.header("x-instance-id"), None);
        assert_eq!(out.header("apikey").as_deref(), Some("k"));
    }

    #[test]
    fn bad_configs_are_refused() {
        let cases = [
            ("", "missing field `values`"),
            (r#"{"values":[]}"#, "values: at least one"),
            (r#"{"values":["a",""]}"#, "values[1]: must not be empty"),
            (r#"{"values":[" a"]}"#, "values[0]: must not have"),
            (r#"{"values":"a"}"#, "values: invalid type"),
            (
                r#"{"values":["a"],"header":""}"#,
                "header: \"\" is not a valid",
            ),
            (
                r#"{"values":["a"],"header":"X Y"}"#,
                "header: \"X Y\" is not a valid",
            ),
            (r#"{"values":["a"],"strip":"yes"}"#, "strip: invalid type"),
            (r#"{"values":["a"],"hedaer":"x"}"#, "unknown field `hedaer`"),
        ];
        for (json, want) in cases {
            let err = configure::<InstanceHeader>(json).unwrap_err();
            assert!(err.contains(want), "{json}: {err}");
        }
    }
}
