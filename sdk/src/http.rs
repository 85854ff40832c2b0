//! The request and response a hook sees. Both are thin views over a header-map backend: the
//! host's header map (through the ABI) on the wasm target, an in-memory map in
//! [`crate::testing`]. Plugin code is the same for both.

/// The storage a [`Request`] or [`Response`] reads and writes. Names are matched
/// case-insensitively by every implementation.
pub(crate) trait HeaderBackend {
    /// The value of a header; several values of one name are joined with `,` (as Envoy does).
    fn get(&self, name: &str) -> Option<Vec<u8>>;
    /// Every header, pseudo-headers included, names lowercase, in order.
    fn pairs(&self) -> Vec<(String, Vec<u8>)>;
    /// Sets a header, replacing every value it had.
    fn replace(&mut self, name: &str, value: &[u8]);
    /// Adds one more value to a header.
    fn add(&mut self, name: &str, value: &[u8]);
    /// Removes every value of a header.
    fn remove(&mut self, name: &str);
    /// A host property (path segments), if the host has it.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    /// Takes back a value [`HeaderBackend::get`] gave, whose buffer may serve the next one.
    fn recycle(&self, value: Vec<u8>) {
        drop(value);
    }
}

fn lossy(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

fn regular_headers(backend: &dyn HeaderBackend) -> Vec<(String, String)> {
    backend
        .pairs()
        .into_iter()
        .filter(|(k, _)| !k.starts_with(':'))
        .map(|(k, v)| (k, lossy(v)))
        .collect()
}

/// The request as it will go upstream: a hook may read and change it.
pub struct Request<'a> {
    backend: &'a mut dyn HeaderBackend,
}

/// The header and property methods [`Request`] and [`Response`] share, over their backend.
macro_rules! header_methods {
    () => {
        /// A header's value (case-insensitive name), decoded as UTF-8 with invalid bytes
        /// replaced. Several values of one name come joined with `,`. Pseudo-headers (`:path`,
        /// `:status`...) work too.
        pub fn header(&self, name: &str) -> Option<String> {
            self.backend.get(name).map(lossy)
        }

        /// A header's raw bytes: use this to compare secrets exactly.
        pub fn header_bytes(&self, name: &str) -> Option<Vec<u8>> {
            self.backend.get(name)
        }

        /// Calls `f` with a header's raw bytes (`None` when absent; pseudo-headers work too)
        /// and returns what it returns. The value is not kept: its buffer serves the next value
        /// the host hands over, which in a wasm module spares an allocation and a free per
        /// header read (about 300 instructions). Use it on the hot path when the value is only
        /// looked at.
        pub fn read_header<R>(&self, name: &str, f: impl FnOnce(Option<&[u8]>) -> R) -> R {
            let value = self.backend.get(name);
            let result = f(value.as_deref());
            if let Some(value) = value {
                self.backend.recycle(value);
            }
            result
        }

        /// Every regular header (pseudo-headers left out), names lowercase, in order.
        pub fn headers(&self) -> Vec<(String, String)> {
            regular_headers(&*self.backend)
        }

        /// Sets a header, replacing every value it had.
        pub fn set_header(&mut self, name: &str, value: &str) {
            self.backend.replace(name, value.as_bytes());
        }

        /// Adds a value to a header, keeping the ones it had.
        pub fn add_header(&mut self, name: &str, value: &str) {
            self.backend.add(name, value.as_bytes());
        }

        /// Removes a header (every value).
        pub fn remove_header(&mut self, name: &str) {
            self.backend.remove(name);
        }

        /// A host property by path, e.g. `&["plugin_name"]`; `None` when the host has none.
        pub fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
            self.backend.property(path)
        }
    };
}

impl<'a> Request<'a> {
    pub(crate) fn new(backend: &'a mut dyn HeaderBackend) -> Self {
        Request { backend }
    }

    /// The method (`:method`), e.g. `POST`; empty if the host gave none.
    pub fn method(&self) -> String {
        self.header(":method").unwrap_or_default()
    }

    /// The `:path` pseudo-header: the path and the query string, e.g. `/uci/prediction?x=1`.
    /// The gateway normalises it before any plugin runs.
    pub fn path(&self) -> String {
        self.header(":path").unwrap_or_default()
    }

    /// Changes the path (and query) sent upstream.
    pub fn set_path(&mut self, path: &str) {
        self.backend.replace(":path", path.as_bytes());
    }

    /// The query string without the `?`, if the path has one.
    pub fn query(&self) -> Option<String> {
        let path = self.path();
        path.split_once('?').map(|(_, q)| q.to_owned())
    }

    /// The first value of query parameter `name` (names compare exactly, after percent-decoding),
    /// percent-decoded with `+` read as a space, as HTML forms and nginx do.
    /// `Some("")` for `?name` or `?name=`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_param_bytes(name).map(lossy)
    }

    /// Like [`Request::query_param`], but the decoded bytes as they are (not forced to UTF-8):
    /// use this to compare secrets exactly.
    pub fn query_param_bytes(&self, name: &str) -> Option<Vec<u8>> {
        let query = self.query()?;
        query_pairs(&query)
            .find(|(k, _)| k.as_slice() == name.as_bytes())
            .map(|(_, v)| v)
    }

    /// Removes every occurrence of query parameter `name` from the path; drops the `?` when no
    /// parameter is left. Returns whether anything was removed.
    pub fn remove_query_param(&mut self, name: &str) -> bool {
        let path = self.path();
        let Some((base, query)) = path.split_once('?') else {
            return false;
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|part| {
                let raw_name = part.split_once('=').map_or(*part, |(k, _)| k);
                percent_decode(raw_name) != name.as_bytes()
            })
            .collect();
        if kept.len() == query.split('&').count() {
            return false;
        }
        let kept: Vec<&str> = kept.into_iter().filter(|p| !p.is_empty()).collect();
        let new_path = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        self.set_path(&new_path);
        true
    }

    /// The `:authority` (host and port the client asked for), if any.
    pub fn authority(&self) -> Option<String> {
        self.header(":authority")
    }

    header_methods!();
}

/// The upstream's response on its way to the client: a hook may read and change its headers.
pub struct Response<'a> {
    backend: &'a mut dyn HeaderBackend,
}

impl<'a> Response<'a> {
    pub(crate) fn new(backend: &'a mut dyn HeaderBackend) -> Self {
        Response { backend }
    }

    /// The status code (`:status`); 0 if the host gave none or it is not a number.
    pub fn status(&self) -> u16 {
        self.header(":status")
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Changes the status code sent to the client.
    pub fn set_status(&mut self, status: u16) {
        self.backend
            .replace(":status", status.to_string().as_bytes());
    }

    header_methods!();
}

/// The `(name, value)` pairs of a query string, both percent-decoded.
fn query_pairs(query: &str) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|part| {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        (percent_decode(k), percent_decode(v))
    })
}

/// Decodes `%XX` escapes and `+` (space). A `%` not followed by two hex digits stays as it is.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = match bytes.get(i + 1..i + 3) {
                    Some(&[hi, lo]) => hex_digit(hi).zip(hex_digit(lo)).map(|(h, l)| h << 4 | l),
                    _ => None,
                };
                if let Some(b) = hex {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `MemoryMap` that counts the values given back to it.
    struct Counting {
        map: crate::testing::MemoryMap,
        recycled: std::cell::Cell<usize>,
    }

    impl HeaderBackend for Counting {
        fn get(&self, name: &str) -> Option<Vec<u8>> {
            self.map.get(name)
        }
        fn pairs(&self) -> Vec<(String, Vec<u8>)> {
            self.map.pairs()
        }
        fn replace(&mut self, name: &str, value: &[u8]) {
            self.map.replace(name, value);
        }
        fn add(&mut self, name: &str, value: &[u8]) {
            self.map.add(name, value);
        }
        fn remove(&mut self, name: &str) {
            HeaderBackend::remove(&mut self.map, name);
        }
        fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
            self.map.property(path)
        }
        fn recycle(&self, _: Vec<u8>) {
            self.recycled.set(self.recycled.get() + 1);
        }
    }

    #[test]
    fn read_header_lends_the_value_and_gives_its_buffer_back() {
        let mut backend = Counting {
            map: crate::testing::MemoryMap::from_pairs(&[(":path", "/a?b"), ("apikey", "k1")]),
            recycled: std::cell::Cell::new(0),
        };
        let req = Request::new(&mut backend);
        assert_eq!(
            req.read_header("APIKEY", |v| v.map(<[u8]>::to_vec)),
            Some(b"k1".to_vec())
        );
        assert!(req.read_header("missing", |v| v.is_none()));
        assert_eq!(req.read_header(":path", |v| v.map(<[u8]>::len)), Some(4));
        assert_eq!(
            backend.recycled.get(),
            2,
            "every value read, none for the missing one"
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c"), b"a b c");
        assert_eq!(percent_decode("%zz%4"), b"%zz%4");
        assert_eq!(percent_decode("%41%6a"), b"Aj");
        assert_eq!(percent_decode("%+"), b"% ");
        assert_eq!(percent_decode("%+1"), b"% 1");
    }

    #[test]
    fn query_pair_splitting() {
        let pairs: Vec<_> = query_pairs("a=1&&b&c=x%3Dy=z").collect();
        assert_eq!(
            pairs,
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"".to_vec()),
                (b"c".to_vec(), b"x=y=z".to_vec()),
            ]
        );
    }
}
