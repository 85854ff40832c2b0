//! The configuration file: its schema, parsing that names the place of every error, and the
//! validation that refuses what the gateway could not serve safely. Every key is in docs/config.md.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The only configuration version this build reads.
pub const CONFIG_VERSION: u32 = 1;

/// A configuration that parsed and validated. Relative paths in it have been joined to the
/// directory of the file they came from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Schema version; must be [`CONFIG_VERSION`].
    pub version: u32,
    /// Listeners and connection limits.
    #[serde(default)]
    pub server: ServerConfig,
    /// Certificate and key for the HTTPS listener.
    pub tls: Option<TlsConfig>,
    /// Where plugins come from and the sandbox limits they run under.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// The routes, matched by longest path prefix on segment boundaries.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// The admin API, metrics and management page.
    #[serde(default)]
    pub admin: AdminConfig,
    /// One log line per request.
    #[serde(default)]
    pub access_log: AccessLogConfig,
}

/// `[admin]`: the operators' listener (JSON API, Prometheus metrics, management page).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve the admin listener at all.
    pub enabled: bool,
    /// Where it listens; loopback unless `allow_remote` is set.
    pub listen: SocketAddr,
    /// Bearer token every admin request must carry (`Authorization: Bearer ...`); required off
    /// loopback.
    pub token: Option<String>,
    /// Allow a non-loopback `listen` address (needs `token`).
    pub allow_remote: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8001)),
            token: None,
            allow_remote: false,
        }
    }
}

/// Shortest admin token accepted.
pub const MIN_ADMIN_TOKEN: usize = 16;

/// `[access_log]`: one line per request, through the log (target `wasmgate::access`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLogConfig {
    /// Write access lines.
    pub enabled: bool,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        AccessLogConfig {
            enabled: true,
            format: LogFormat::Text,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `key=value` text, one line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[server]`: listeners and connection limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Plain HTTP listener (HTTP/1.1 and h2c); none when absent.
    pub http: Option<SocketAddr>,
    /// HTTPS listener (HTTP/1.1 and HTTP/2 by ALPN); needs `[tls]`.
    pub https: Option<SocketAddr>,
    /// Time a client has to send a request's headers.
    pub header_read_timeout_ms: u64,
    /// Time a client has to finish the TLS handshake.
    pub tls_handshake_timeout_ms: u64,
    /// Most request headers accepted (HTTP/1.1).
    pub max_headers: usize,
    /// Most concurrent HTTP/2 streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// Most HTTP/2 streams a client may open and reset before the gateway has taken them up;
    /// past it the connection is closed with GOAWAY (rapid reset, CVE-2023-44487).
    pub h2_max_pending_reset_streams: usize,
    /// Largest request body accepted (413 beyond it).
    pub max_body_bytes: u64,
    /// Longest pause between two pieces of a request body (408 beyond it).
    pub body_read_timeout_ms: u64,
    /// Most client connections open at once; beyond it new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Threads serving requests; 0 means one per CPU.
    pub workers: usize,
    /// On shutdown, how long requests in flight may take to finish before their connections
    /// are closed.
    pub shutdown_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http: None,
            https: None,
            header_read_timeout_ms: 10_000,
            tls_handshake_timeout_ms: 10_000,
            max_headers: 100,
            h2_max_concurrent_streams: 128,
            h2_max_pending_reset_streams: 20,
            max_body_bytes: 16 * 1024 * 1024,
            body_read_timeout_ms: 30_000,
            max_connections: 10_000,
            workers: 0,
            shutdown_timeout_ms: 10_000,
        }
    }
}

/// `[tls]`: PEM files for the HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `[plugins]`: the plugin directory and the sandbox limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Directory holding `NAME.wasm` files.
    pub dir: PathBuf,
    /// Kept instances per configured plugin; 0 means one per CPU.
    pub instances: usize,
    /// CPU time one call into a plugin may take before it is cut off.
    pub call_timeout_ms: u64,
    /// Largest linear memory a plugin instance may grow to.
    pub memory_limit_mib: u32,
    /// Largest wasm stack one call may use, in KiB; read when the gateway starts.
    pub max_stack_kib: u32,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: PathBuf::from("plugins"),
            instances: 0,
            call_timeout_ms: 100,
            memory_limit_mib: 64,
            max_stack_kib: crate::plugin::DEFAULT_MAX_STACK_KIB,
        }
    }
}

/// `[[routes]]`: a public path prefix, the upstream it maps to, and its plugin chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Unique name, used in logs and the `route_name` property.
    pub name: String,
    /// Path prefix, matched on segment boundaries (`/a` matches `/a` and `/a/b`, not `/ab`).
    pub prefix: String,
    /// `http://host:port` of the upstream; the request's (rewritten) path is appended.
    pub upstream: String,
    /// Time to establish the upstream connection.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time the upstream has to answer with its headers.
    #[serde(default = "default_upstream_timeout_ms")]
    pub timeout_ms: u64,
    /// Longest pause in the upstream's response body before the response is cut off (the
    /// client sees a broken body); a stream that keeps flowing is never cut.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Keep the upstream's identity behind the gateway: drop its `Server` and `Via` headers, and
    /// map a `Location` / `Content-Location` on its own address or internal path onto the
    /// public path. `false` passes them unchanged.
    #[serde(default = "default_true")]
    pub hide_upstream_identity: bool,
    /// Plugins run in order on the request and in reverse order on the response.
    #[serde(default)]
    pub plugins: Vec<PluginRef>,
}

fn default_true() -> bool {
    true
}

fn default_connect_timeout_ms() -> u64 {
    5_000
}

fn default_upstream_timeout_ms() -> u64 {
    60_000
}

fn default_idle_timeout_ms() -> u64 {
    60_000
}

/// `[[routes.plugins]]`: one plugin in a route's chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    /// Plugin name: the module is `<plugins.dir>/<name>.wasm` unless `file` is given.
    pub name: String,
    /// Explicit module path, relative to the config file.
    pub file: Option<PathBuf>,
    /// The plugin's configuration, handed to it as JSON.
    #[serde(default)]
    pub config: Option<toml::Value>,
    /// What a request gets when this plugin fails (traps, times out): `closed` answers 5xx,
    /// `open` skips the plugin.
    #[serde(default)]
    pub failure: FailurePolicy,
}

/// What happens to a request when a plugin fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// The request is refused with a 5xx (the default: a broken auth plugin must not open the
    /// route).
    #[default]
    Closed,
    /// The plugin is skipped and the request goes on.
    Open,
}

impl PluginRef {
    /// The plugin's configuration as the JSON bytes handed to `proxy_on_configure`.
    pub fn config_json(&self) -> Vec<u8> {
        match &self.config {
            // A toml::Value always serialises to JSON.
            Some(v) => serde_json::to_vec(v).unwrap_or_default(),
            None => Vec::new(),
        }
    }
}

impl ServerConfig {
    /// How long shutdown lets requests in flight finish before closing their connections.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }
}

impl PluginsConfig {
    /// The CPU deadline of one plugin call.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }

    /// The memory cap of one instance, in bytes.
    pub fn memory_limit_bytes(&self) -> usize {
        self.memory_limit_mib as usize * 1024 * 1024
    }
}

/// One thing wrong with a configuration, at a place in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Where: `routes[1].plugins[0].name`, or empty for the whole file.
    pub place: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.place.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.place, self.message)
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {cause}", file.display())]
    Read {
        file: PathBuf,
        /// Why (shown in the message, so not chained as a source too).
        cause: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema.
    #[error("{file}:{line}:{column}: {issue}")]
    Parse {
        file: PathBuf,
        line: usize,
        column: usize,
        issue: Issue,
    },
    /// The file parsed but its values are refused; every problem found is listed.
    #[error("{}", display_issues(file, issues))]
    Invalid { file: PathBuf, issues: Vec<Issue> },
}

fn display_issues(file: &Path, issues: &[Issue]) -> String {
    issues
        .iter()
        .map(|i| format!("{}: {i}", file.display()))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Reads, parses and validates a configuration file. Relative paths inside it are resolved
    /// against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            file: path.to_path_buf(),
            cause,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Config::parse(&text, path, base)
    }

    /// Parses and validates configuration text; `file` names it in errors and `base` is the
    /// directory relative paths are resolved against.
    pub fn parse(text: &str, file: &Path, base: &Path) -> Result<Config, ConfigError> {
        let parse_error = |place: String, err: toml::de::Error| {
            let (line, column) = err
                .span()
                .map(|s| line_column(text, s.start))
                .unwrap_or((1, 1));
            ConfigError::Parse {
                file: file.to_path_buf(),
                line,
                column,
                issue: Issue {
                    place,
                    message: err.message().trim().to_string(),
                },
            }
        };
        let de = toml::Deserializer::parse(text).map_err(|e| parse_error(String::new(), e))?;
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let place = e.path().to_string();
            let place = if place == "." { String::new() } else { place };
            parse_error(place, e.into_inner())
        })?;
        let issues = config.validate();
        if !issues.is_empty() {
            return Err(ConfigError::Invalid {
                file: file.to_path_buf(),
                issues,
            });
        }
        config.resolve_paths(base);
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.plugins.dir);
        if let Some(tls) = &mut self.tls {
            abs(&mut tls.cert);
            abs(&mut tls.key);
        }
        for route in &mut self.routes {
            for plugin in &mut route.plugins {
                if let Some(file) = &mut plugin.file {
                    abs(file);
                }
            }
        }
    }

    /// Every value-level problem of the configuration, each with its place.
    fn validate(&self) -> Vec<Issue> {
        let mut issues = Vec::new();
        let mut bad = |place: String, message: String| issues.push(Issue { place, message });

        if self.version != CONFIG_VERSION {
            bad(
                "version".into(),
                format!(
                    "unsupported version {} (this wasmgate reads version {CONFIG_VERSION})",
                    self.version
                ),
            );
        }
        if self.server.http.is_none() && self.server.https.is_none() {
            bad(
                "server".into(),
                "no listener: set `http` or `https` (or both)".into(),
            );
        }
        if self.server.https.is_some() && self.tls.is_none() {
            bad(
                "server.https".into(),
                "an HTTPS listener needs a [tls] section with `cert` and `key`".into(),
            );
        }
        for (key, value) in [
            (
                "server.header_read_timeout_ms",
                self.server.header_read_timeout_ms,
            ),
            (
                "server.tls_handshake_timeout_ms",
                self.server.tls_handshake_timeout_ms,
            ),
            ("plugins.call_timeout_ms", self.plugins.call_timeout_ms),
            (
                "server.body_read_timeout_ms",
                self.server.body_read_timeout_ms,
            ),
            ("server.max_body_bytes", self.server.max_body_bytes),
            ("server.max_connections", self.server.max_connections as u64),
            (
                "server.h2_max_pending_reset_streams",
                self.server.h2_max_pending_reset_streams as u64,
            ),
            (
                "server.shutdown_timeout_ms",
                self.server.shutdown_timeout_ms,
            ),
        ] {
            if value == 0 {
                bad(key.into(), "must be greater than 0".into());
            }
        }
        if self.server.workers > 1024 {
            bad(
                "server.workers".into(),
                format!("{} is out of range (0 to 1024)", self.server.workers),
            );
        }
        if self.admin.enabled {
            if let Some(token) = &self.admin.token
                && (token.len() < MIN_ADMIN_TOKEN || !token.bytes().all(|b| b.is_ascii_graphic()))
            {
                bad(
                    "admin.token".into(),
                    format!(
                        "must be at least {MIN_ADMIN_TOKEN} visible ASCII characters (no spaces)"
                    ),
                );
            }
            if !self.admin.listen.ip().is_loopback() {
                if !self.admin.allow_remote {
                    bad(
                        "admin.listen".into(),
                        format!(
                            "{} is not a loopback address: the admin API can reload and reveal the gateway; set `allow_remote = true` and a `token` to expose it",
                            self.admin.listen
                        ),
                    );
                } else if self.admin.token.is_none() {
                    bad(
                        "admin.token".into(),
                        "required when the admin API listens off loopback (`allow_remote = true`)"
                            .into(),
                    );
                }
            }
        }
        if self.server.max_headers == 0 {
            bad("server.max_headers".into(), "must be greater than 0".into());
        }
        if self.server.h2_max_concurrent_streams == 0 {
            bad(
                "server.h2_max_concurrent_streams".into(),
                "must be greater than 0".into(),
            );
        }
        if self.plugins.memory_limit_mib == 0 || self.plugins.memory_limit_mib > 4096 {
            bad(
                "plugins.memory_limit_mib".into(),
                format!(
                    "{} is out of range (1 to 4096)",
                    self.plugins.memory_limit_mib
                ),
            );
        }

        // Plugins run on the request threads' stacks (2 MiB): a wasm stack larger than half of
        // that could let a plugin overflow the thread's stack, which aborts the process.
        if !(64..=1024).contains(&self.plugins.max_stack_kib) {
            bad(
                "plugins.max_stack_kib".into(),
                format!(
                    "{} is out of range (64 to 1024)",
                    self.plugins.max_stack_kib
                ),
            );
        }

        let mut names = HashSet::new();
        let mut prefixes = HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            let at = |key: &str| format!("routes[{i}].{key}");
            if route.name.trim().is_empty() {
                bad(at("name"), "must not be empty".into());
            } else if !names.insert(route.name.as_str()) {
                bad(at("name"), format!("duplicate route name {:?}", route.name));
            }
            if let Err(why) = check_prefix(&route.prefix) {
                bad(at("prefix"), format!("{:?} {why}", route.prefix));
            } else if !prefixes.insert(route.prefix.as_str()) {
                bad(
                    at("prefix"),
                    format!("{:?} is already the prefix of another route", route.prefix),
                );
            }
            if let Err(why) = check_upstream(&route.upstream) {
                bad(at("upstream"), format!("{:?} {why}", route.upstream));
            }
            if route.connect_timeout_ms == 0 {
                bad(at("connect_timeout_ms"), "must be greater than 0".into());
            }
            if route.timeout_ms == 0 {
                bad(at("timeout_ms"), "must be greater than 0".into());
            }
            if route.idle_timeout_ms == 0 {
                bad(at("idle_timeout_ms"), "must be greater than 0".into());
            }
            for (j, plugin) in route.plugins.iter().enumerate() {
                if !is_plugin_name(&plugin.name) {
                    bad(
                        format!("routes[{i}].plugins[{j}].name"),
                        format!(
                            "{:?} is not a plugin name (letters, digits, `-` and `_`)",
                            plugin.name
                        ),
                    );
                }
            }
        }
        issues
    }
}

impl RouteConfig {
    /// The upstream's authority (`host:port`), for the `Host` header and the request URI.
    pub fn upstream_uri(&self) -> http::Uri {
        // Validated by check_upstream.
        self.upstream.parse().unwrap_or_default()
    }
}

impl PluginRef {
    /// The module file this plugin loads from.
    pub fn module_path(&self, plugins: &PluginsConfig) -> PathBuf {
        match &self.file {
            Some(f) => f.clone(),
            None => plugins.dir.join(format!("{}.wasm", self.name)),
        }
    }
}

fn is_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A route prefix must be a path in the normal form the gateway routes on, so that the match
/// is made on the same canonical path everything else sees.
fn check_prefix(prefix: &str) -> Result<(), &'static str> {
    if !prefix.starts_with('/') {
        return Err("must start with `/`");
    }
    if prefix.len() > 1 && prefix.ends_with('/') {
        return Err("must not end with `/` (prefixes match whole segments)");
    }
    if prefix.contains("//") {
        return Err("must not contain an empty segment (`//`)");
    }
    if prefix
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err("must not contain `.` or `..` segments");
    }
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,=:@".contains(&b))
    {
        return Err(
            "must contain only unreserved path characters (no `%`, `?`, `#`, `;`, `\\`, spaces)",
        );
    }
    Ok(())
}

fn check_upstream(upstream: &str) -> Result<(), &'static str> {
    let uri: http::Uri = upstream
        .parse()
        .map_err(|_| "is not a URL (expected http://host:port)")?;
    if uri.scheme_str() != Some("http") {
        return Err("must be an http:// URL");
    }
    if uri.authority().is_none() {
        return Err("has no host");
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err("must not have a path or query (map paths with the path-rewrite plugin)");
    }
    Ok(())
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("gw.toml"), Path::new("/etc/wasmgate"))
    }

    const GOOD: &str = r#"
version = 1
[server]
http = "127.0.0.1:8000"
[[routes]]
name = "uci"
prefix = "/serving-uci"
upstream = "http://127.0.0.1:9393"
[[routes.plugins]]
name = "key-auth"
config = { consumers = [{ username = "demo", keys = ["k"] }] }
"#;

    #[test]
    fn good_config_parses_and_resolves_paths() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.routes[0].prefix, "/serving-uci");
        assert_eq!(c.plugins.dir, Path::new("/etc/wasmgate/plugins"));
        assert_eq!(
            c.routes[0].plugins[0].module_path(&c.plugins),
            Path::new("/etc/wasmgate/plugins/key-auth.wasm")
        );
        let json: serde_json::Value =
            serde_json::from_slice(&c.routes[0].plugins[0].config_json()).unwrap();
        assert_eq!(json["consumers"][0]["keys"][0], "k");
        assert_eq!(c.routes[0].plugins[0].failure, FailurePolicy::Closed);
    }

    fn error_text(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn admin_defaults_to_loopback_and_refuses_remote_without_a_token() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.admin.listen, "127.0.0.1:8001".parse().unwrap());
        assert!(c.admin.enabled && c.access_log.enabled);
        assert_eq!(c.access_log.format, LogFormat::Text);

        let remote = format!("{GOOD}[admin]\nlisten = \"0.0.0.0:8001\"\n");
        let text = error_text(&remote);
        assert!(
            text.starts_with("gw.toml: admin.listen: 0.0.0.0:8001 is not a loopback address"),
            "{text}"
        );
        let no_token = format!("{remote}allow_remote = true\n");
        assert_eq!(
            error_text(&no_token),
            "gw.toml: admin.token: required when the admin API listens off loopback (`allow_remote = true`)"
        );
        let short = format!("{no_token}token = \"short\"\n");
        assert_eq!(
            error_text(&short),
            "gw.toml: admin.token: must be at least 16 visible ASCII characters (no spaces)"
        );
        let ok = format!("{no_token}token = \"0123456789abcdef0123\"\n");
        assert!(parse(&ok).is_ok());
        let off = format!("{remote}enabled = false\n");
        assert!(
            parse(&off).is_ok(),
            "a disabled admin listener is not checked"
        );
        let json = format!("{GOOD}[access_log]\nformat = \"json\"\n");
        assert_eq!(parse(&json).unwrap().access_log.format, LogFormat::Json);
        let bad_format = format!("{GOOD}[access_log]\nformat = \"xml\"\n");
        assert!(
            error_text(&bad_format).contains("access_log.format: unknown variant `xml`"),
            "{}",
            error_text(&bad_format)
        );
    }

    #[test]
    fn unknown_key_is_refused_with_its_place() {
        let text = GOOD.replace("name = \"key-auth\"", "nmae = \"key-auth\"");
        assert_eq!(
            error_text(&text),
            "gw.toml:10:1: routes[0].plugins[0].nmae: unknown field `nmae`, expected one of `name`, `file`, `config`, `failure`"
        );
    }

    #[test]
    fn bad_value_type_is_refused_with_its_place() {
        let text = GOOD.replace("http = \"127.0.0.1:8000\"", "http = \"localhost\"");
        assert_eq!(
            error_text(&text),
            "gw.toml:4:8: server.http: invalid socket address syntax"
        );
    }

    #[test]
    fn wrong_version_is_refused() {
        let text = GOOD.replace("version = 1", "version = 2");
        assert_eq!(
            error_text(&text),
            "gw.toml: version: unsupported version 2 (this wasmgate reads version 1)"
        );
    }

    #[test]
    fn missing_version_is_refused() {
        let text = GOOD.replace("version = 1", "");
        assert_eq!(error_text(&text), "gw.toml:1:1: missing field `version`");
    }

    #[test]
    fn every_value_problem_is_listed() {
        let text = GOOD
            .replace("\"/serving-uci\"", "\"serving-uci/\"")
            .replace("http://127.0.0.1:9393", "https://127.0.0.1:9393/x")
            .replace("name = \"key-auth\"", "name = \"../key-auth\"");
        assert_eq!(
            error_text(&text),
            "gw.toml: routes[0].prefix: \"serving-uci/\" must start with `/`\n\
             gw.toml: routes[0].upstream: \"https://127.0.0.1:9393/x\" must be an http:// URL\n\
             gw.toml: routes[0].plugins[0].name: \"../key-auth\" is not a plugin name (letters, digits, `-` and `_`)"
        );
    }

    #[test]
    fn prefixes_must_be_canonical() {
        for (prefix, why) in [
            ("/a/", "must not end with `/`"),
            ("/a//b", "empty segment"),
            ("/a/../b", "`..` segments"),
            ("/a%2fb", "unreserved path characters"),
            ("/a;b", "unreserved path characters"),
        ] {
            let text = GOOD.replace("/serving-uci", prefix);
            let err = error_text(&text);
            assert!(err.contains(why), "{prefix}: {err}");
        }
    }

    #[test]
    fn duplicate_routes_and_missing_listener_are_refused() {
        let mut text = GOOD.replace("[server]\nhttp = \"127.0.0.1:8000\"", "");
        text.push_str("[[routes]]\nname = \"uci\"\nprefix = \"/serving-uci\"\nupstream = \"http://127.0.0.1:1\"\n");
        assert_eq!(
            error_text(&text),
            "gw.toml: server: no listener: set `http` or `https` (or both)\n\
             gw.toml: routes[1].name: duplicate route name \"uci\"\n\
             gw.toml: routes[1].prefix: \"/serving-uci\" is already the prefix of another route"
        );
    }

    #[test]
    fn https_needs_tls() {
        let text = GOOD.replace("http = ", "https = ");
        assert_eq!(
            error_text(&text),
            "gw.toml: server.https: an HTTPS listener needs a [tls] section with `cert` and `key`"
        );
    }

    #[test]
    fn shutdown_timeout_defaults_to_10_s_and_must_be_positive() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.server.shutdown_timeout(), Duration::from_secs(10));
        let set = GOOD.replace(
            "http = \"127.0.0.1:8000\"",
            "http = \"127.0.0.1:8000\"\nshutdown_timeout_ms = 250",
        );
        assert_eq!(
            parse(&set).unwrap().server.shutdown_timeout(),
            Duration::from_millis(250)
        );
        let zero = GOOD.replace(
            "http = \"127.0.0.1:8000\"",
            "http = \"127.0.0.1:8000\"\nshutdown_timeout_ms = 0",
        );
        assert_eq!(
            error_text(&zero),
            "gw.toml: server.shutdown_timeout_ms: must be greater than 0"
        );
    }

    #[test]
    fn h2_reset_stream_cap_defaults_to_20_and_must_be_positive() {
        assert_eq!(parse(GOOD).unwrap().server.h2_max_pending_reset_streams, 20);
        let with = |value: &str| {
            GOOD.replace(
                "http = \"127.0.0.1:8000\"",
                &format!("http = \"127.0.0.1:8000\"\nh2_max_pending_reset_streams = {value}"),
            )
        };
        assert_eq!(
            parse(&with("50"))
                .unwrap()
                .server
                .h2_max_pending_reset_streams,
            50
        );
        assert_eq!(
            error_text(&with("0")),
            "gw.toml: server.h2_max_pending_reset_streams: must be greater than 0"
        );
    }

    #[test]
    fn wasm_stack_defaults_to_512_kib_within_64_to_1024() {
        assert_eq!(parse(GOOD).unwrap().plugins.max_stack_kib, 512);
        let with = |value: u32| format!("{GOOD}[plugins]\nmax_stack_kib = {value}\n");
        assert_eq!(parse(&with(64)).unwrap().plugins.max_stack_kib, 64);
        assert_eq!(parse(&with(1024)).unwrap().plugins.max_stack_kib, 1024);
        for bad in [0, 63, 1025] {
            assert_eq!(
                error_text(&with(bad)),
                format!("gw.toml: plugins.max_stack_kib: {bad} is out of range (64 to 1024)")
            );
        }
    }

    #[test]
    fn bad_failure_policy_is_refused() {
        let text = GOOD.replace(
            "name = \"key-auth\"",
            "name = \"key-auth\"\nfailure = \"sometimes\"",
        );
        let err = error_text(&text);
        assert!(
            err.starts_with(
                "gw.toml:11:11: routes[0].plugins[0].failure: unknown variant `sometimes`"
            ),
            "{err}"
        );
    }
}
