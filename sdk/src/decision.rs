//! What a hook returns: let the request or response go on, or answer it from the plugin.

/// The outcome of a hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let the request (or response) go on, with whatever changes the hook made to it.
    Continue,
    /// Answer the client from the plugin with this response; the request never reaches the
    /// upstream (from `on_request`) or the upstream's response is replaced (from `on_response`).
    Respond(LocalResponse),
}

impl Decision {
    /// A local response with a JSON body `{"message":"<message>"}` and
    /// `content-type: application/json`, the shape Kong's plugins answer with.
    ///
    /// ```
    /// use wasmgate_sdk::Decision;
    /// let d = Decision::reject_json(401, "No API key found in request");
    /// let r = d.local_response().unwrap();
    /// assert_eq!(r.status, 401);
    /// assert_eq!(r.body, br#"{"message":"No API key found in request"}"#);
    /// ```
    pub fn reject_json(status: u16, message: &str) -> Self {
        Decision::Respond(LocalResponse::json_message(status, message))
    }

    /// A local response with the given status, no extra headers and an empty body.
    pub fn respond(status: u16) -> Self {
        Decision::Respond(LocalResponse::new(status))
    }

    /// Adds a header to the local response; does nothing on [`Decision::Continue`].
    #[must_use]
    pub fn with_header(self, name: &str, value: &str) -> Self {
        match self {
            Decision::Continue => Decision::Continue,
            Decision::Respond(r) => Decision::Respond(r.with_header(name, value)),
        }
    }

    /// True for [`Decision::Continue`].
    pub fn is_continue(&self) -> bool {
        matches!(self, Decision::Continue)
    }

    /// The local response, if the decision is to answer.
    pub fn local_response(&self) -> Option<&LocalResponse> {
        match self {
            Decision::Continue => None,
            Decision::Respond(r) => Some(r),
        }
    }
}

/// A response produced by the plugin instead of the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    /// HTTP status code.
    pub status: u16,
    /// Headers, in order; names are sent as given (the host treats them case-insensitively).
    pub headers: Vec<(String, String)>,
    /// The body bytes (may be empty).
    pub body: Vec<u8>,
}

impl LocalResponse {
    /// A response with this status, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        LocalResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A response with the body `{"message":"<message>"}` (JSON-escaped) and
    /// `content-type: application/json`.
    pub fn json_message(status: u16, message: &str) -> Self {
        let mut body = String::with_capacity(message.len() + 16);
        body.push_str(r#"{"message":"#);
        push_json_string(&mut body, message);
        body.push('}');
        LocalResponse::new(status)
            .with_header("content-type", "application/json")
            .with_body(body.into_bytes())
    }

    /// Appends a header.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Replaces the body.
    #[must_use]
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of a header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Appends `s` as a JSON string literal. Written out rather than through `serde_json::Value`,
/// which would pull float formatting into every module.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_json_escapes_the_message() {
        let d = Decision::reject_json(403, "bad \"quote\"");
        let r = d.local_response().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["message"], "bad \"quote\"");
        assert_eq!(r.header("Content-Type"), Some("application/json"));
    }

    #[test]
    fn json_strings_round_trip() {
        for msg in [
            "plain",
            "q\"uo\\te",
            "line\nbreak\ttab\r",
            "\u{1}\u{1f}ctl",
            "ünïcödé ✓",
            "",
        ] {
            let mut out = String::new();
            push_json_string(&mut out, msg);
            let back: String = serde_json::from_str(&out).unwrap();
            assert_eq!(back, msg, "{out}");
        }
    }

    #[test]
    fn with_header_on_continue_is_a_no_op() {
        assert_eq!(Decision::Continue.with_header("a", "b"), Decision::Continue);
        let d = Decision::respond(204).with_header("x-a", "1");
        assert_eq!(d.local_response().unwrap().header("X-A"), Some("1"));
        assert!(!d.is_continue());
    }
}
