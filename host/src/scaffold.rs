//! `wasmgate plugin new` and `wasmgate plugin build`: start a plugin crate against the SDK, and
//! build one to a `.wasm` module with the toolchain logic of `scripts/build-wasm.sh`.
//!
//! [`new_plugin`] writes a crate (Cargo.toml, a small working auth plugin with its unit tests in
//! src/lib.rs, a README) that builds at once. Outside the SDK's workspace the crate is its own
//! workspace and names the SDK by absolute path; inside it, the crate joins the workspace's
//! `members` and names the SDK by relative path.
//!
//! [`build`] compiles a crate for `wasm32-unknown-unknown` in release without debug info, with
//! rustup's target when it is installed and otherwise Debian's `/usr/bin/rustc` building the
//! standard library from source (`-Zbuild-std`), and copies the module to `NAME.wasm`.

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The SDK this binary was built from: the default for `plugin new --sdk`.
pub const DEFAULT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk");

/// The target plugins are built for.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// Debian's rustc (package `rustc-web`), used when rustup has no wasm target.
pub const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
/// Debian's cargo (package `cargo-web`).
pub const DEBIAN_CARGO: &str = "/usr/bin/cargo";
/// The standard library's source (package `rust-web-src`), for `-Zbuild-std`.
pub const DEBIAN_STD_SRC: &str = "/usr/lib/rustlib/src/rust/library";

/// Variables an outer cargo, make or shell may have set for the host toolchain; the wasm build
/// runs without them (as `scripts/build-wasm.sh` does).
pub const CLEARED_ENV: &[&str] = &[
    "RUSTC",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_BOOTSTRAP",
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_BUILD_RUSTC",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_TARGET_DIR",
];

/// Names a plugin may not take: Rust keywords, the standard crates, and the crates the generated
/// plugin depends on.
const RESERVED_NAMES: &[&str] = &[
    "abstract",
    "alloc",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "core",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "proc-macro",
    "proc_macro",
    "pub",
    "ref",
    "return",
    "self",
    "serde",
    "static",
    "std",
    "struct",
    "super",
    "test",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "wasmgate-sdk",
    "wasmgate_sdk",
    "where",
    "while",
    "yield",
];

/// Type names the generated code uses: a plugin type must not shadow them.
const TAKEN_TYPE_NAMES: &[&str] = &[
    "Box",
    "Clone",
    "Config",
    "Decision",
    "Default",
    "Deserialize",
    "Err",
    "None",
    "Ok",
    "OnResponse",
    "Option",
    "Plugin",
    "Request",
    "Response",
    "Result",
    "Self",
    "Some",
    "String",
    "TestRequest",
    "Vec",
];

/// Checks a plugin name: 1 to 64 of `a-z 0-9 - _`, starting with a letter, not a keyword or a
/// crate the plugin depends on. The name is the crate's, the directory's and the module's
/// (`NAME.wasm`, which a route names).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the plugin name is empty".to_owned());
    }
    if name.contains('/') || name.contains('\\') {
        return Err(format!(
            "{name:?}: a name, not a path (use --dir for the directory to create it in)"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "{name:?}: {c:?} is not allowed (use a-z, 0-9, - and _)"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!("{name:?}: must start with a letter (a-z)"));
    }
    if name.len() > 64 {
        return Err(format!("{name:?}: longer than 64 characters"));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(format!(
            "{name:?}: reserved (a Rust keyword, a standard crate or a dependency of the plugin)"
        ));
    }
    Ok(())
}

/// The Rust type name of a plugin: `my-auth` gives `MyAuth`.
pub fn type_name(name: &str) -> String {
    let camel: String = name
        .split(['-', '_'])
        .filter(|p| !p.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect();
    if TAKEN_TYPE_NAMES.contains(&camel.as_str()) {
        camel + "Plugin"
    } else {
        camel
    }
}

/// What `wasmgate plugin new` is asked for.
#[derive(Debug, Clone)]
pub struct NewPlugin {
    /// The plugin's name (see [`check_name`]).
    pub name: String,
    /// The directory to create the crate in: the crate is `parent/name`.
    pub parent: PathBuf,
    /// The SDK crate's directory; `None` for [`DEFAULT_SDK`].
    pub sdk: Option<PathBuf>,
}

/// Whether a crate created inside the SDK's workspace became one of its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// Added to `members` in the workspace's Cargo.toml.
    Added,
    /// Already covered by `members` (e.g. by a `plugins/*` glob).
    AlreadyCovered,
    /// Not added, for the reason given: add it by hand before building.
    NotAdded(String),
}

/// The SDK's workspace, when a crate is created inside it.
#[derive(Debug, Clone)]
pub struct InWorkspace {
    /// The workspace root (the directory of its Cargo.toml).
    pub root: PathBuf,
    /// The crate's path relative to the root, as `members` lists it.
    pub member: String,
    /// What happened to `members`.
    pub membership: Membership,
}

/// A crate [`new_plugin`] created.
#[derive(Debug, Clone)]
pub struct Created {
    /// The plugin name.
    pub name: String,
    /// The crate's directory.
    pub dir: PathBuf,
    /// The SDK it depends on (canonical path).
    pub sdk: PathBuf,
    /// The Rust type of the plugin in src/lib.rs.
    pub type_name: String,
    /// Set when the crate is inside the SDK's workspace.
    pub workspace: Option<InWorkspace>,
    /// The files written, in order.
    pub files: Vec<PathBuf>,
}

/// Creates a plugin crate: see the module documentation. Refuses a bad name, a parent directory
/// that does not exist, an SDK path that is not the wasmgate SDK, and an existing directory.
pub fn new_plugin(req: &NewPlugin) -> anyhow::Result<Created> {
    check_name(&req.name).map_err(|e| anyhow::anyhow!("plugin name {e}"))?;
    let sdk_arg = req
        .sdk
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SDK));
    let sdk = find_sdk(&sdk_arg, req.sdk.is_none())?;
    let parent = req.parent.canonicalize().with_context(|| {
        format!(
            "--dir {}: not a directory the crate can be created in",
            req.parent.display()
        )
    })?;
    if !parent.is_dir() {
        bail!("--dir {}: not a directory", req.parent.display());
    }
    let dir = parent.join(&req.name);
    if dir.exists() || dir.symlink_metadata().is_ok() {
        bail!(
            "{}: already exists; choose another name or remove it first",
            dir.display()
        );
    }
    let sdk_workspace = workspace_root_of(&sdk);
    let inside = sdk_workspace
        .as_ref()
        .filter(|root| parent.starts_with(root))
        .cloned();
    let type_name = type_name(&req.name);
    // A member with a package name the workspace already has would break every cargo command
    // in it.
    if let Some(root) = &inside
        && let Some(clash) = workspace_package(root, &req.name)
    {
        bail!(
            "plugin name {:?}: the workspace at {} already has a package of that name ({}); choose another name",
            req.name,
            root.display(),
            clash.display()
        );
    }

    let sdk_dep = match &inside {
        Some(_) => relative_path(&dir, &sdk),
        None => sdk.clone(),
    };
    let sdk_dep = sdk_dep
        .to_str()
        .with_context(|| format!("{}: the SDK path is not UTF-8", sdk.display()))?
        .to_owned();
    let manifest = match &inside {
        Some(_) => member_manifest(&req.name, &sdk_dep),
        None => standalone_manifest(&req.name, &sdk_dep),
    };
    let mut files: Vec<(PathBuf, String)> = vec![
        (dir.join("Cargo.toml"), manifest),
        (
            dir.join("src/lib.rs"),
            render(LIB_RS, &req.name, &type_name),
        ),
        (
            dir.join("README.md"),
            render(README_MD, &req.name, &type_name),
        ),
    ];
    if inside.is_none() {
        files.push((dir.join(".gitignore"), "/target\n".to_owned()));
        // Start from the dependency versions the SDK is built and tested with; cargo drops the
        // entries this crate does not use on its first build.
        if let Some(lock) = sdk_workspace
            .as_ref()
            .map(|root| root.join("Cargo.lock"))
            .filter(|l| l.is_file())
            && let Ok(text) = std::fs::read_to_string(&lock)
        {
            files.push((dir.join("Cargo.lock"), text));
        }
    }

    std::fs::create_dir(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let written = (|| -> anyhow::Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        for (path, text) in &files {
            if let Some(p) = path.parent() {
                std::fs::create_dir_all(p)
                    .with_context(|| format!("{}: cannot create", p.display()))?;
            }
            std::fs::write(path, text)
                .with_context(|| format!("{}: cannot write", path.display()))?;
            written.push(path.clone());
        }
        Ok(written)
    })();
    let files = match written {
        Ok(f) => f,
        Err(e) => {
            // Leave nothing half made behind.
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };

    let workspace = inside.map(|root| {
        let member = relative_path(&root, &dir)
            .to_string_lossy()
            .replace('\\', "/");
        let membership = match add_member(&root.join("Cargo.toml"), &member) {
            Ok(true) => Membership::Added,
            Ok(false) => Membership::AlreadyCovered,
            Err(e) => Membership::NotAdded(format!("{e:#}")),
        };
        InWorkspace {
            root,
            member,
            membership,
        }
    });
    Ok(Created {
        name: req.name.clone(),
        dir,
        sdk,
        type_name,
        workspace,
        files,
    })
}

/// Checks that `path` is the wasmgate SDK crate and returns its canonical path.
fn find_sdk(path: &Path, is_default: bool) -> anyhow::Result<PathBuf> {
    let hint = if is_default {
        " (the SDK this wasmgate was built from); pass --sdk PATH to the sdk/ directory of a wasmgate checkout"
    } else {
        ""
    };
    let dir = path
        .canonicalize()
        .with_context(|| format!("--sdk {}: no such directory{hint}", path.display()))?;
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("--sdk {}: no Cargo.toml{hint}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}: not valid TOML", manifest.display()))?;
    let name = table
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str());
    if name != Some("wasmgate-sdk") {
        bail!(
            "--sdk {}: not the wasmgate SDK (its Cargo.toml names package {:?}, not \"wasmgate-sdk\"){hint}",
            path.display(),
            name.unwrap_or("")
        );
    }
    Ok(dir)
}

/// The nearest directory above `dir` whose Cargo.toml has a `[workspace]` table.
fn workspace_root_of(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().skip(1).find_map(|d| {
        let text = std::fs::read_to_string(d.join("Cargo.toml")).ok()?;
        let table: toml::Table = toml::from_str(&text).ok()?;
        table.contains_key("workspace").then(|| d.to_path_buf())
    })
}

/// `to` relative to the directory `from` (both absolute, without `..`).
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component<'_>> = from.components().collect();
    let to: Vec<Component<'_>> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    for c in &to[common..] {
        rel.push(c.as_os_str());
    }
    if rel.as_os_str().is_empty() {
        rel.push(".");
    }
    rel
}

/// A TOML basic string holding `s`.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn standalone_manifest(name: &str, sdk: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib: the .wasm module; rlib: the unit tests and other crates use it natively.
crate-type = ["cdylib", "rlib"]

[dependencies]
wasmgate-sdk = {{ path = {sdk} }}
serde = {{ version = "1", features = ["derive"] }}

# A workspace of its own, so that a workspace in a directory above does not take the crate in.
[workspace]
"#,
        sdk = toml_string(sdk)
    )
}

fn member_manifest(name: &str, sdk: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version.workspace = true
edition.workspace = true
rust-version.workspace = true
license.workspace = true
publish.workspace = true

[lib]
# cdylib: the .wasm module; rlib: the unit tests and other crates use it natively.
crate-type = ["cdylib", "rlib"]

[dependencies]
wasmgate-sdk = {{ path = {sdk} }}
serde = {{ version = "1", features = ["derive"] }}

[lints]
workspace = true
"#,
        sdk = toml_string(sdk)
    )
}

fn render(template: &str, name: &str, type_name: &str) -> String {
    template
        .replace("{{name}}", name)
        .replace("{{Type}}", type_name)
}

/// Whether member pattern `pattern` (a path, `*` matching within one component) covers `member`.
fn member_matches(pattern: &str, member: &str) -> bool {
    let clean = |s: &str| -> Vec<String> {
        s.trim_end_matches('/')
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_owned)
            .collect()
    };
    let (p, m) = (clean(pattern), clean(member));
    p.len() == m.len() && p.iter().zip(&m).all(|(p, m)| wildcard(p, m))
}

/// The directory of the member of the workspace at `root` whose package is called `name`, if
/// there is one. Members are read from the root manifest (`*` and `?` in their last component
/// are expanded), and each member's `[package] name` from its own manifest.
fn workspace_package(root: &Path, name: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(root.join("Cargo.toml")).ok()?;
    let (members, _) = workspace_members(&text).ok()?;
    let mut dirs = Vec::new();
    for member in members {
        let path = root.join(&member);
        let last = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if last.contains(['*', '?']) {
            let pattern = last.to_owned();
            if let Some(entries) = path.parent().and_then(|p| std::fs::read_dir(p).ok()) {
                dirs.extend(
                    entries
                        .flatten()
                        .filter(|e| wildcard(&pattern, &e.file_name().to_string_lossy()))
                        .map(|e| e.path()),
                );
            }
        } else {
            dirs.push(path);
        }
    }
    dirs.into_iter().find(|dir| {
        std::fs::read_to_string(dir.join("Cargo.toml"))
            .ok()
            .and_then(|t| t.parse::<toml::Table>().ok())
            .and_then(|t| t.get("package")?.get("name")?.as_str().map(|n| n == name))
            .unwrap_or(false)
    })
}

/// `*` matches any run of characters, `?` one; everything else itself.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn workspace_members(text: &str) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let table: toml::Table = toml::from_str(text).context("not valid TOML")?;
    let ws = table
        .get("workspace")
        .and_then(|w| w.as_table())
        .context("no [workspace] table")?;
    let strings = |key: &str| -> Vec<String> {
        ws.get(key)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok((strings("members"), strings("exclude")))
}

/// Adds `member` to `members` of the workspace manifest at `manifest`, keeping the rest of the
/// file as it is. `Ok(false)` when a member entry already covers it. The edit is checked by
/// parsing the result; a file it cannot edit safely is left untouched, with the reason.
pub fn add_member(manifest: &Path, member: &str) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("{}: cannot read", manifest.display()))?;
    let (members, exclude) =
        workspace_members(&text).with_context(|| format!("{}", manifest.display()))?;
    if exclude.iter().any(|e| member_matches(e, member)) {
        bail!(
            "{}: workspace.exclude lists {member}; take it out of exclude and add it to members",
            manifest.display()
        );
    }
    if members.iter().any(|m| member_matches(m, member)) {
        return Ok(false);
    }
    let mut want = members.clone();
    want.push(member.to_owned());
    let edited = insert_member(&text, member)
        .filter(|new| workspace_members(new).is_ok_and(|(m, _)| m == want))
        .with_context(|| {
            format!(
                "{}: cannot find a `members = [...]` list under [workspace] to add {member:?} to; add it by hand",
                manifest.display()
            )
        })?;
    // Written whole to the side and renamed over: a crash mid-write cannot truncate the root
    // manifest of the workspace.
    let tmp = manifest.with_extension("toml.wasmgate-tmp");
    std::fs::write(&tmp, edited)
        .and_then(|()| std::fs::rename(&tmp, manifest))
        .with_context(|| format!("{}: cannot write", manifest.display()))?;
    Ok(true)
}

/// The manifest text with `member` appended to the `members` array of `[workspace]`, or `None`
/// when the array is not written in a shape this edit understands.
fn insert_member(text: &str, member: &str) -> Option<String> {
    let entry = toml_string(member);
    // The [workspace] header, then the first `members = [` after it, before the next table.
    let mut offset = 0;
    let mut in_workspace = false;
    let mut open = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_workspace = trimmed.starts_with("[workspace]");
        } else if in_workspace
            && let Some(rest) = trimmed.strip_prefix("members")
            && let Some(rest) = rest.trim_start().strip_prefix('=')
            && rest.trim_start().starts_with('[')
        {
            let bracket = line.len() - rest.trim_start().len();
            open = Some(offset + bracket);
            break;
        }
        offset += line.len();
    }
    let open = open?;
    // Member paths hold no `]`; comments in the list might, which the check after the edit
    // catches.
    let close = open + text[open..].find(']')?;
    let inner = &text[open + 1..close];
    if inner.contains('\n') {
        // One entry per line: a new line before the closing bracket's line, indented as the
        // last entry, with a comma after the last entry if it has none.
        let close_line_start = text[..close].rfind('\n')? + 1;
        if !text[close_line_start..close].trim().is_empty() {
            return None;
        }
        let body = &text[open + 1..close_line_start];
        let last_line = body.lines().rev().find(|l| !l.trim().is_empty());
        let indent: String = last_line
            .map(|l| l.chars().take_while(|c| c.is_whitespace()).collect())
            .unwrap_or_else(|| "    ".to_owned());
        let mut out = String::with_capacity(text.len() + entry.len() + 8);
        match last_line {
            Some(last) => {
                let code = last.split('#').next().unwrap_or("").trim_end();
                if code.ends_with(',') || code.trim().is_empty() {
                    out.push_str(&text[..close_line_start]);
                } else {
                    // Put the comma right after the entry, before any comment.
                    let last_start = open + 1 + body.rfind(last).unwrap_or(0);
                    let code_end = last_start + code.len();
                    out.push_str(&text[..code_end]);
                    out.push(',');
                    out.push_str(&text[code_end..close_line_start]);
                }
            }
            None => out.push_str(&text[..close_line_start]),
        }
        out.push_str(&format!("{indent}{entry},\n"));
        out.push_str(&text[close_line_start..]);
        Some(out)
    } else {
        // All on one line: `members = ["a", "b"]` becomes `members = ["a", "b", "new"]`.
        let before = inner.trim_end();
        let sep = if before.trim().is_empty() || before.ends_with(',') {
            ""
        } else {
            ", "
        };
        let head = open + 1 + before.len();
        Some(format!("{}{sep}{entry}{}", &text[..head], &text[head..]))
    }
}

/// How the wasm module is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toolchain {
    /// The `cargo` on PATH with rustup's `wasm32-unknown-unknown` target.
    Rustup,
    /// Debian's `/usr/bin/cargo` and `/usr/bin/rustc` with `RUSTC_BOOTSTRAP=1` and
    /// `-Zbuild-std=std,panic_abort` (the standard library is compiled from source).
    Debian,
}

impl fmt::Display for Toolchain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Toolchain::Rustup => "rustup",
            Toolchain::Debian => "debian",
        })
    }
}

impl FromStr for Toolchain {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rustup" => Ok(Toolchain::Rustup),
            "debian" => Ok(Toolchain::Debian),
            _ => Err(format!("{s:?}: expected rustup or debian")),
        }
    }
}

impl Toolchain {
    /// Picks the toolchain as `scripts/build-wasm.sh` does: rustup's target when
    /// `rustup target list --installed` (run in `dir`, so a rust-toolchain file there counts)
    /// lists it, else Debian's when its rustc and the standard library's source are there.
    pub fn detect(dir: &Path) -> anyhow::Result<Toolchain> {
        if rustup_has_wasm_target(dir) {
            return Ok(Toolchain::Rustup);
        }
        if Toolchain::Debian.available() {
            return Ok(Toolchain::Debian);
        }
        bail!(
            "no wasm toolchain: rustup has no {WASM_TARGET} target (`rustup target add {WASM_TARGET}`), \
             and Debian's {DEBIAN_RUSTC} with {DEBIAN_STD_SRC} is not installed \
             (scripts/install-toolchain.sh in the wasmgate repository installs it)"
        )
    }

    /// Whether this toolchain's files are there (for rustup: whether it lists the target).
    pub fn available(self) -> bool {
        match self {
            Toolchain::Rustup => rustup_has_wasm_target(Path::new(".")),
            Toolchain::Debian => {
                Path::new(DEBIAN_RUSTC).is_file()
                    && Path::new(DEBIAN_CARGO).is_file()
                    && Path::new(DEBIAN_STD_SRC).is_dir()
            }
        }
    }

    /// A `cargo` command for this toolchain, run in `dir`, with the environment of
    /// `scripts/build-wasm.sh`: [`CLEARED_ENV`] removed, no debug info in release.
    pub fn cargo(self, dir: &Path) -> Command {
        let mut cmd = Command::new(match self {
            Toolchain::Rustup => "cargo",
            Toolchain::Debian => DEBIAN_CARGO,
        });
        cmd.current_dir(dir);
        for var in CLEARED_ENV {
            cmd.env_remove(var);
        }
        // Plugins ship without debug info: it is most of a module's size. Fat LTO in one
        // codegen unit inlines the SDK's and std's small helpers into the plugin.
        cmd.env("CARGO_PROFILE_RELEASE_DEBUG", "false")
            .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
            .env("CARGO_PROFILE_RELEASE_LTO", "fat")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1");
        if self == Toolchain::Debian {
            cmd.env("RUSTC", DEBIAN_RUSTC).env("RUSTC_BOOTSTRAP", "1");
        }
        cmd
    }

    /// The arguments of the release build for `package` of `manifest` into `target_dir`.
    pub fn build_args(self, manifest: &Path, package: &str, target_dir: &Path) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "build".into(),
            "--release".into(),
            "--target".into(),
            WASM_TARGET.into(),
            "--manifest-path".into(),
            manifest.display().to_string(),
            "-p".into(),
            package.into(),
            "--target-dir".into(),
            target_dir.display().to_string(),
        ];
        if self == Toolchain::Debian {
            args.push("-Zbuild-std=std,panic_abort".into());
        }
        args
    }
}

fn rustup_has_wasm_target(dir: &Path) -> bool {
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "list", "--installed"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    for var in CLEARED_ENV {
        cmd.env_remove(var);
    }
    match cmd.output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.trim() == WASM_TARGET),
        _ => false,
    }
}

/// What `wasmgate plugin build` is asked for.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The crate: its directory or its Cargo.toml.
    pub path: PathBuf,
    /// Cargo's target directory; `None` for `wasm-build` inside the crate's target directory
    /// (`target/wasm-build` of the workspace, as `scripts/build-wasm.sh` uses).
    pub target_dir: Option<PathBuf>,
    /// Where `NAME.wasm` is copied; `None` for `wasm` inside the crate's target directory.
    pub out_dir: Option<PathBuf>,
    /// The toolchain; `None` picks one with [`Toolchain::detect`].
    pub toolchain: Option<Toolchain>,
    /// Echo cargo's output to stderr as it comes.
    pub echo: bool,
    /// Stop cargo and fail after this long.
    pub timeout: Option<Duration>,
}

impl BuildOptions {
    /// Options for the crate at `path`, everything else by default, cargo's output echoed.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        BuildOptions {
            path: path.into(),
            target_dir: None,
            out_dir: None,
            toolchain: None,
            echo: true,
            timeout: None,
        }
    }
}

/// A module [`build`] made.
#[derive(Debug, Clone)]
pub struct Built {
    /// The package name.
    pub name: String,
    /// The module, copied as `NAME.wasm` (the name a route uses).
    pub wasm: PathBuf,
    /// The module where cargo left it (`.../wasm32-unknown-unknown/release/LIB.wasm`).
    pub cargo_wasm: PathBuf,
    /// The toolchain that built it.
    pub toolchain: Toolchain,
    /// Cargo's target directory.
    pub target_dir: PathBuf,
    /// The crates cargo compiled (`serde v1.0.0`...), from its `Compiling` lines: empty when
    /// everything was fresh.
    pub compiled: Vec<String>,
    /// How long the build took.
    pub elapsed: Duration,
}

/// The facts of a crate that `cargo metadata` gives.
struct CrateInfo {
    package: String,
    lib_name: String,
    target_directory: PathBuf,
}

fn crate_info(toolchain: Toolchain, manifest: &Path) -> anyhow::Result<CrateInfo> {
    let dir = manifest.parent().unwrap_or(Path::new("."));
    let out = toolchain
        .cargo(dir)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(manifest)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{}: cannot run cargo metadata", manifest.display()))?;
    if !out.status.success() {
        bail!(
            "{}: cargo metadata failed: {}",
            manifest.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{}: cargo metadata printed no JSON", manifest.display()))?;
    let target_directory = meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata gave no target_directory")?;
    let package = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["manifest_path"]
                .as_str()
                .and_then(|m| Path::new(m).canonicalize().ok())
                .is_some_and(|m| m == manifest)
        })
        .with_context(|| {
            format!(
                "{}: not a package (a virtual workspace manifest?); give the plugin crate's directory",
                manifest.display()
            )
        })?;
    let name = package["name"].as_str().unwrap_or_default().to_owned();
    let lib = package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
        })
        .with_context(|| {
            format!(
                "{}: package {name} has no cdylib; a plugin needs `[lib] crate-type = [\"cdylib\", \"rlib\"]`",
                manifest.display()
            )
        })?;
    let lib_name = lib["name"].as_str().unwrap_or(&name).replace('-', "_");
    Ok(CrateInfo {
        package: name,
        lib_name,
        target_directory,
    })
}

/// Builds the plugin crate at `opts.path` to a `.wasm` module: see the module documentation.
pub fn build(opts: &BuildOptions) -> anyhow::Result<Built> {
    let started = Instant::now();
    let manifest = if opts.path.is_dir() {
        opts.path.join("Cargo.toml")
    } else {
        opts.path.clone()
    };
    let manifest = manifest
        .canonicalize()
        .with_context(|| format!("{}: no Cargo.toml there", opts.path.display()))?;
    let dir = manifest.parent().unwrap_or(Path::new("/")).to_path_buf();
    let toolchain = match opts.toolchain {
        Some(Toolchain::Debian) if !Toolchain::Debian.available() => bail!(
            "--toolchain debian: {DEBIAN_RUSTC}, {DEBIAN_CARGO} or {DEBIAN_STD_SRC} is missing"
        ),
        Some(t) => t,
        None => Toolchain::detect(&dir)?,
    };
    let info = crate_info(toolchain, &manifest)?;
    let target_dir = opts
        .target_dir
        .clone()
        .unwrap_or_else(|| info.target_directory.join("wasm-build"));
    let out_dir = opts
        .out_dir
        .clone()
        .unwrap_or_else(|| info.target_directory.join("wasm"));

    let mut cmd = toolchain.cargo(&dir);
    cmd.args(toolchain.build_args(&manifest, &info.package, &target_dir))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if opts.echo {
        eprintln!(
            "wasmgate: building {} for {WASM_TARGET} with the {toolchain} toolchain into {}",
            info.package,
            target_dir.display()
        );
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run cargo for the {toolchain} toolchain"))?;
    let stderr = child.stderr.take().context("cargo's stderr")?;
    let echo = opts.echo;
    let reader = std::thread::spawn(move || {
        let mut compiled = Vec::new();
        let mut tail: VecDeque<String> = VecDeque::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if echo {
                eprintln!("{line}");
            }
            if let Some(what) = line.trim_start().strip_prefix("Compiling ") {
                compiled.push(what.to_owned());
            }
            if tail.len() == 40 {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        (compiled, tail)
    });
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for cargo")? {
            break status;
        }
        if let Some(limit) = opts.timeout
            && started.elapsed() > limit
        {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{}: cargo build did not finish within {} s",
                manifest.display(),
                limit.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (compiled, tail) = reader.join().unwrap_or_default();
    if !status.success() {
        let output = if echo {
            String::new()
        } else {
            format!(":\n{}", Vec::from(tail).join("\n"))
        };
        bail!(
            "{}: cargo build for {WASM_TARGET} ({toolchain} toolchain) failed ({status}){output}",
            manifest.display()
        );
    }
    let cargo_wasm = target_dir
        .join(WASM_TARGET)
        .join("release")
        .join(format!("{}.wasm", info.lib_name));
    if !cargo_wasm.is_file() {
        bail!(
            "{}: cargo succeeded but left no module at {}",
            manifest.display(),
            cargo_wasm.display()
        );
    }
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("{}: cannot create", out_dir.display()))?;
    let wasm = out_dir.join(format!("{}.wasm", info.package));
    // Copied beside its place and renamed over it: a gateway watching the directory sees the
    // new module whole, in one step.
    let tmp = out_dir.join(format!(".{}.wasm.tmp", info.package));
    std::fs::copy(&cargo_wasm, &tmp)
        .and_then(|_| std::fs::rename(&tmp, &wasm))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("cannot copy {} to {}", cargo_wasm.display(), wasm.display()))?;
    Ok(Built {
        name: info.package,
        wasm,
        cargo_wasm,
        toolchain,
        target_dir,
        compiled,
        elapsed: started.elapsed(),
    })
}

/// src/lib.rs of a new plugin: `{{name}}` and `{{Type}}` are filled in.
const LIB_RS: &str = r###"//! `{{name}}`: a wasmgate plugin (proxy-wasm 0.2.1).
//!
//! It admits a request only when its `x-api-token` header (or the configured one) holds one of
//! the configured tokens, removes the token before the request goes upstream, and answers
//! `401 {"message":"Missing or invalid token"}` otherwise. Change it into your policy: the plugin
//! guide (docs/plugin-guide.md in the wasmgate repository) explains every part.
//!
//! Route config: `{"tokens": ["..."], "header": "x-api-token"}`.

use serde::Deserialize;
use wasmgate_sdk::{Decision, Plugin, Request};

/// The route's `config` table, as the host hands it over (JSON).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Header that carries the token.
    #[serde(default = "default_header")]
    pub header: String,
    /// Accepted tokens.
    pub tokens: Vec<String>,
}

fn default_header() -> String {
    "x-api-token".to_owned()
}

/// The configured plugin. One configuration serves many requests, so hooks take `&self`.
pub struct {{Type}} {
    header: String,
    tokens: Vec<Vec<u8>>,
}

/// Compares in constant time for equal lengths: how long it takes does not tell how much of a
/// token was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Plugin for {{Type}} {
    type Config = Config;

    fn configure(config: Config) -> Result<Self, String> {
        // An Err refuses the configuration: name the key at fault.
        if config.tokens.is_empty() {
            return Err("tokens: at least one token is required".to_owned());
        }
        if let Some(i) = config.tokens.iter().position(String::is_empty) {
            return Err(format!("tokens[{i}]: must not be empty"));
        }
        wasmgate_sdk::info!("{{name}}: {} tokens", config.tokens.len());
        Ok({{Type}} {
            header: config.header,
            tokens: config.tokens.into_iter().map(String::into_bytes).collect(),
        })
    }

    fn on_request(&self, req: &mut Request<'_>) -> Decision {
        let presented = req.header_bytes(&self.header).unwrap_or_default();
        // Every token is compared, so the time taken does not tell which one matched.
        let known = self
            .tokens
            .iter()
            .map(|t| same(t, &presented))
            .fold(false, |found, m| found | m);
        if presented.is_empty() || !known {
            // Never log the token itself.
            wasmgate_sdk::debug!("{{name}}: request without a valid token refused");
            return Decision::reject_json(401, "Missing or invalid token")
                .with_header("www-authenticate", "Token");
        }
        req.remove_header(&self.header);
        Decision::Continue
    }
}

// A plugin that also looks at responses implements `wasmgate_sdk::OnResponse` and is exported
// with `export_plugin!({{Type}}, OnResponse)`.
wasmgate_sdk::export_plugin!({{Type}});

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_sdk::testing::{TestRequest, configure};

    fn plugin() -> {{Type}} {
        configure(r#"{"tokens": ["s3cret"]}"#).unwrap()
    }

    #[test]
    fn a_missing_or_wrong_token_is_401() {
        let p = plugin();
        for req in [
            TestRequest::get("/m"),
            TestRequest::get("/m").header("x-api-token", ""),
            TestRequest::get("/m").header("x-api-token", "s3cre"),
            TestRequest::get("/m").header("x-api-token", "s3cret!"),
        ] {
            let out = req.run(&p);
            assert_eq!(out.status(), Some(401));
            assert_eq!(out.message().as_deref(), Some("Missing or invalid token"));
        }
    }

    #[test]
    fn a_good_token_goes_on_without_the_header() {
        let out = TestRequest::post("/m?x=1")
            .header("X-Api-Token", "s3cret")
            .run(&plugin());
        assert!(out.is_continue());
        assert_eq!(out.header("x-api-token"), None);
        assert_eq!(out.path(), "/m?x=1");
    }

    #[test]
    fn bad_configs_are_refused_with_the_key() {
        let err = configure::<{{Type}}>(r#"{"tokens": []}"#).err().unwrap();
        assert_eq!(err, "tokens: at least one token is required");
        let err = configure::<{{Type}}>(r#"{"tokens": ["a"], "hedaer": "x"}"#)
            .err()
            .unwrap();
        assert!(err.contains("unknown field `hedaer`"), "{err}");
    }
}
"###;

/// README.md of a new plugin.
const README_MD: &str = r#"# {{name}}

A wasmgate plugin: a proxy-wasm 0.2.1 module written with `wasmgate-sdk`.
As generated it admits requests whose `x-api-token` header holds a configured token (401
otherwise); `src/lib.rs` is yours to change.

    cargo test                      # the unit tests, natively
    wasmgate plugin build .         # -> target/wasm/{{name}}.wasm

Copy `target/wasm/{{name}}.wasm` into the gateway's plugin directory and name it in a route:

```toml
[[routes.plugins]]
name = "{{name}}"
[routes.plugins.config]
tokens = ["change-me"]
```

The plugin guide (docs/plugin-guide.md in the wasmgate repository) covers hooks, config, errors,
logging, testing and running the same module in Envoy.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory under the system's temp dir, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "wasmgate-scaffold-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir.canonicalize().unwrap())
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A workspace at `dir` with a stand-in SDK crate at `dir/sdk`, and `members` as given.
    fn fake_workspace(dir: &Path, members: &str) {
        std::fs::create_dir_all(dir.join("sdk/src")).unwrap();
        std::fs::write(
            dir.join("sdk/Cargo.toml"),
            "[package]\nname = \"wasmgate-sdk\"\nversion = \"0.1.0\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("Cargo.toml"),
            format!("[workspace]\nresolver = \"3\"\n{members}\n\n[workspace.package]\nversion = \"0.1.0\"\n"),
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("plugins")).unwrap();
    }

    fn toml_of(path: &Path) -> toml::Table {
        toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn names_are_checked() {
        for good in ["a", "my-auth", "rate_limit2", "x-1-y"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        let cases = [
            ("", "the plugin name is empty"),
            ("My-Auth", "'M' is not allowed"),
            ("my auth", "' ' is not allowed"),
            ("my.auth", "'.' is not allowed"),
            ("naïve", "'ï' is not allowed"),
            ("plugins/x", "a name, not a path (use --dir"),
            ("1auth", "must start with a letter"),
            ("-auth", "must start with a letter"),
            ("_auth", "must start with a letter"),
            ("std", "reserved"),
            ("fn", "reserved"),
            ("serde", "reserved"),
            ("wasmgate-sdk", "reserved"),
        ];
        for (name, want) in cases {
            let err = check_name(name).unwrap_err();
            assert!(err.contains(want), "{name}: {err}");
        }
        assert!(
            check_name(&"a".repeat(65))
                .unwrap_err()
                .contains("longer than 64")
        );
    }

    #[test]
    fn type_names() {
        assert_eq!(type_name("my-auth"), "MyAuth");
        assert_eq!(type_name("rate_limit2"), "RateLimit2");
        assert_eq!(type_name("a--b"), "AB");
        assert_eq!(type_name("config"), "ConfigPlugin");
        assert_eq!(type_name("string"), "StringPlugin");
        assert_eq!(type_name("plugin"), "PluginPlugin");
        assert_eq!(type_name("on-response"), "OnResponsePlugin");
    }

    #[test]
    fn a_standalone_crate_outside_the_workspace() {
        let scratch = Scratch::new("standalone");
        let created = new_plugin(&NewPlugin {
            name: "my-auth".into(),
            parent: scratch.0.clone(),
            sdk: None,
        })
        .unwrap();
        let dir = scratch.0.join("my-auth");
        assert_eq!(created.dir, dir);
        assert_eq!(created.type_name, "MyAuth");
        assert!(created.workspace.is_none());
        let sdk = Path::new(DEFAULT_SDK).canonicalize().unwrap();
        assert_eq!(created.sdk, sdk);

        let manifest = toml_of(&dir.join("Cargo.toml"));
        assert_eq!(manifest["package"]["name"].as_str(), Some("my-auth"));
        assert_eq!(manifest["package"]["edition"].as_str(), Some("2024"));
        assert!(manifest["workspace"].is_table(), "its own workspace");
        let crate_types: Vec<&str> = manifest["lib"]["crate-type"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(crate_types, ["cdylib", "rlib"]);
        let dep = &manifest["dependencies"]["wasmgate-sdk"]["path"];
        assert_eq!(dep.as_str(), Some(sdk.to_str().unwrap()));
        // The default opt-level: built for size, a plugin's short copies stay calls.
        assert!(!manifest.contains_key("profile"));

        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(lib.contains("pub struct MyAuth {"));
        assert!(lib.contains("wasmgate_sdk::export_plugin!(MyAuth);"));
        assert!(lib.contains("configure::<MyAuth>"));
        assert!(lib.contains(r#"wasmgate_sdk::info!("my-auth: {} tokens""#));
        assert!(!lib.contains("{{"), "every placeholder is filled");
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(readme.contains("target/wasm/my-auth.wasm"));
        assert_eq!(
            std::fs::read_to_string(dir.join(".gitignore")).unwrap(),
            "/target\n"
        );
        // The SDK's lock file seeds the crate's, so it builds with the tested versions.
        let lock = Path::new(DEFAULT_SDK).join("../Cargo.lock");
        assert_eq!(dir.join("Cargo.lock").is_file(), lock.is_file());
        let names: Vec<String> = created
            .files
            .iter()
            .map(|f| f.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names[..4],
            ["Cargo.toml", "src/lib.rs", "README.md", ".gitignore"]
        );
    }

    #[test]
    fn a_name_the_workspace_already_has_is_refused_before_anything_is_written() {
        let scratch = Scratch::new("clash");
        let root = &scratch.0;
        fake_workspace(root, "members = [\"sdk\", \"gateway\", \"tools/*\"]");
        for (dir, name) in [("tools/authz", "authz"), ("gateway", "gateway")] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            std::fs::write(
                root.join(dir).join("Cargo.toml"),
                format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\n"),
            )
            .unwrap();
        }
        let before = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        for (name, place) in [("authz", "tools/authz"), ("gateway", "gateway")] {
            let err = new_plugin(&NewPlugin {
                name: name.into(),
                parent: root.join("plugins"),
                sdk: Some(root.join("sdk")),
            })
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("already has a package of that name") && err.contains(place),
                "{err}"
            );
            assert!(!root.join("plugins").join(name).exists());
        }
        assert_eq!(
            std::fs::read_to_string(root.join("Cargo.toml")).unwrap(),
            before
        );
        // Outside any workspace there is nothing to clash with.
        let outside = Scratch::new("clash-outside");
        new_plugin(&NewPlugin {
            name: "authz".into(),
            parent: outside.0.clone(),
            sdk: Some(root.join("sdk")),
        })
        .unwrap();
    }

    #[test]
    fn a_member_crate_inside_the_workspace() {
        let scratch = Scratch::new("member");
        let root = &scratch.0;
        fake_workspace(
            root,
            "members = [\n    \"sdk\",\n    \"host\" # the gateway\n]",
        );
        let created = new_plugin(&NewPlugin {
            name: "rate-limit".into(),
            parent: root.join("plugins"),
            sdk: Some(root.join("sdk")),
        })
        .unwrap();
        let dir = root.join("plugins/rate-limit");
        let ws = created.workspace.unwrap();
        assert_eq!(ws.root, *root);
        assert_eq!(ws.member, "plugins/rate-limit");
        assert_eq!(ws.membership, Membership::Added);

        let manifest = toml_of(&dir.join("Cargo.toml"));
        assert!(!manifest.contains_key("workspace"));
        assert!(!manifest.contains_key("profile"));
        assert_eq!(
            manifest["dependencies"]["wasmgate-sdk"]["path"].as_str(),
            Some("../../sdk")
        );
        assert_eq!(
            manifest["package"]["version"]["workspace"].as_bool(),
            Some(true)
        );
        assert_eq!(manifest["lints"]["workspace"].as_bool(), Some(true));
        assert!(!dir.join(".gitignore").exists());
        assert!(!dir.join("Cargo.lock").exists());

        let text = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(
            text.contains(
                "members = [\n    \"sdk\",\n    \"host\", # the gateway\n    \"plugins/rate-limit\",\n]"
            ),
            "{text}"
        );
        assert!(
            text.contains("[workspace.package]\nversion = \"0.1.0\""),
            "{text}"
        );

        // A second plugin goes after the first.
        new_plugin(&NewPlugin {
            name: "quota".into(),
            parent: root.join("plugins"),
            sdk: Some(root.join("sdk")),
        })
        .unwrap();
        let (members, _) =
            workspace_members(&std::fs::read_to_string(root.join("Cargo.toml")).unwrap()).unwrap();
        assert_eq!(
            members,
            ["sdk", "host", "plugins/rate-limit", "plugins/quota"]
        );
    }

    #[test]
    fn members_edits_keep_the_file_and_respect_globs() {
        let scratch = Scratch::new("members");
        let manifest = scratch.0.join("Cargo.toml");
        let cases = [
            (
                "members = [\"sdk\", \"host\"]",
                "members = [\"sdk\", \"host\", \"plugins/x\"]",
            ),
            ("members = []", "members = [\"plugins/x\"]"),
            ("members = [\"sdk\",]", "members = [\"sdk\",\"plugins/x\"]"),
            (
                "members = [\n  \"sdk\"\n]",
                "members = [\n  \"sdk\",\n  \"plugins/x\",\n]",
            ),
            ("members = [\n]", "members = [\n    \"plugins/x\",\n]"),
        ];
        for (before, after) in cases {
            let text = format!(
                "[package]\nname = \"r\"\n\n[workspace]\n{before}\n\n[profile.release]\ndebug = 1\n"
            );
            std::fs::write(&manifest, &text).unwrap();
            assert!(add_member(&manifest, "plugins/x").unwrap(), "{before}");
            let got = std::fs::read_to_string(&manifest).unwrap();
            assert_eq!(got, text.replace(before, after));
        }
        for covered in ["members = [\"plugins/*\"]", "members = [\"./plugins/x/\"]"] {
            let text = format!("[workspace]\n{covered}\n");
            std::fs::write(&manifest, &text).unwrap();
            assert!(!add_member(&manifest, "plugins/x").unwrap(), "{covered}");
            assert_eq!(std::fs::read_to_string(&manifest).unwrap(), text);
        }
        let refused = [
            (
                "[workspace]\nmembers = [\"a\"]\nexclude = [\"plugins/x\"]\n",
                "exclude lists plugins/x",
            ),
            (
                "[workspace]\nresolver = \"3\"\n",
                "cannot find a `members = [...]` list",
            ),
            (
                "workspace.members = [\"a\"]\n",
                "cannot find a `members = [...]` list",
            ),
            ("[package]\nname = \"a\"\n", "no [workspace] table"),
        ];
        for (text, want) in refused {
            std::fs::write(&manifest, text).unwrap();
            let err = format!("{:#}", add_member(&manifest, "plugins/x").unwrap_err());
            assert!(err.contains(want), "{text}: {err}");
            assert_eq!(
                std::fs::read_to_string(&manifest).unwrap(),
                text,
                "untouched"
            );
        }
    }

    #[test]
    fn a_workspace_it_cannot_edit_is_reported_not_fatal() {
        let scratch = Scratch::new("noedit");
        let root = &scratch.0;
        fake_workspace(root, "members = [\"sdk\"]");
        let text = std::fs::read_to_string(root.join("Cargo.toml"))
            .unwrap()
            .replace("members = [\"sdk\"]", "members = [\"sdk\", \"x]\"]");
        std::fs::write(root.join("Cargo.toml"), &text).unwrap();
        let created = new_plugin(&NewPlugin {
            name: "p".into(),
            parent: root.join("plugins"),
            sdk: Some(root.join("sdk")),
        })
        .unwrap();
        let Membership::NotAdded(why) = created.workspace.unwrap().membership else {
            panic!("expected NotAdded");
        };
        assert!(why.contains("add it by hand"), "{why}");
        assert_eq!(
            std::fs::read_to_string(root.join("Cargo.toml")).unwrap(),
            text
        );
    }

    #[test]
    fn refusals_name_the_place_and_reason() {
        let scratch = Scratch::new("refuse");
        let new = |name: &str, parent: &Path, sdk: Option<PathBuf>| {
            format!(
                "{:#}",
                new_plugin(&NewPlugin {
                    name: name.into(),
                    parent: parent.to_path_buf(),
                    sdk,
                })
                .unwrap_err()
            )
        };
        let err = new("Bad", &scratch.0, None);
        assert!(
            err.starts_with("plugin name \"Bad\": 'B' is not allowed"),
            "{err}"
        );
        std::fs::create_dir(scratch.0.join("taken")).unwrap();
        let err = new("taken", &scratch.0, None);
        assert!(
            err.ends_with("/taken: already exists; choose another name or remove it first"),
            "{err}"
        );
        let err = new("ok", &scratch.0.join("missing"), None);
        assert!(
            err.contains("/missing: not a directory the crate can be created in"),
            "{err}"
        );
        let err = new("ok", &scratch.0, Some(scratch.0.join("nosdk")));
        assert!(err.contains("/nosdk: no such directory"), "{err}");
        std::fs::create_dir_all(scratch.0.join("other")).unwrap();
        std::fs::write(
            scratch.0.join("other/Cargo.toml"),
            "[package]\nname = \"other\"\n",
        )
        .unwrap();
        let err = new("ok", &scratch.0, Some(scratch.0.join("other")));
        assert!(
            err.contains("not the wasmgate SDK (its Cargo.toml names package \"other\""),
            "{err}"
        );
        assert!(!scratch.0.join("ok").exists(), "nothing created on refusal");
    }

    #[test]
    fn relative_paths() {
        let rel = |a: &str, b: &str| relative_path(Path::new(a), Path::new(b));
        assert_eq!(rel("/w/plugins/x", "/w/sdk"), Path::new("../../sdk"));
        assert_eq!(rel("/w", "/w/plugins/x"), Path::new("plugins/x"));
        assert_eq!(rel("/w", "/w"), Path::new("."));
    }

    #[test]
    fn wildcards() {
        assert!(member_matches("plugins/*", "plugins/x"));
        assert!(!member_matches("plugins/*", "plugins/x/y"));
        assert!(!member_matches("plugins/*", "examples/x"));
        assert!(member_matches("p*/a?c", "plugins/abc"));
        assert!(member_matches("*", "x"));
        assert!(!member_matches("plugins/x", "plugins/xy"));
    }

    #[test]
    fn the_build_command_is_the_scripts() {
        let manifest = Path::new("/w/p/Cargo.toml");
        let target = Path::new("/w/target/wasm-build");
        let args = Toolchain::Rustup.build_args(manifest, "p", target);
        assert_eq!(
            args.join(" "),
            "build --release --target wasm32-unknown-unknown --manifest-path /w/p/Cargo.toml -p p --target-dir /w/target/wasm-build"
        );
        let args = Toolchain::Debian.build_args(manifest, "p", target);
        assert_eq!(args.last().unwrap(), "-Zbuild-std=std,panic_abort");

        for (toolchain, program) in [
            (Toolchain::Rustup, "cargo"),
            (Toolchain::Debian, DEBIAN_CARGO),
        ] {
            let cmd = toolchain.cargo(Path::new("/w/p"));
            assert_eq!(cmd.get_program(), program);
            assert_eq!(cmd.get_current_dir(), Some(Path::new("/w/p")));
            let envs: Vec<(String, Option<String>)> = cmd
                .get_envs()
                .map(|(k, v)| {
                    (
                        k.to_string_lossy().into_owned(),
                        v.map(|v| v.to_string_lossy().into_owned()),
                    )
                })
                .collect();
            let get = |k: &str| envs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            for var in [
                "RUSTC_WRAPPER",
                "CARGO_TARGET_DIR",
                "RUSTFLAGS",
                "CARGO_BUILD_TARGET",
            ] {
                assert_eq!(get(var), Some(None), "{var} is cleared");
            }
            assert_eq!(
                get("CARGO_PROFILE_RELEASE_DEBUG"),
                Some(Some("false".into()))
            );
            assert_eq!(
                get("CARGO_PROFILE_RELEASE_STRIP"),
                Some(Some("debuginfo".into()))
            );
            assert_eq!(get("CARGO_PROFILE_RELEASE_LTO"), Some(Some("fat".into())));
            assert_eq!(
                get("CARGO_PROFILE_RELEASE_CODEGEN_UNITS"),
                Some(Some("1".into()))
            );
            if toolchain == Toolchain::Debian {
                assert_eq!(get("RUSTC"), Some(Some(DEBIAN_RUSTC.into())));
                assert_eq!(get("RUSTC_BOOTSTRAP"), Some(Some("1".into())));
            } else {
                assert_eq!(get("RUSTC"), Some(None));
                assert_eq!(get("RUSTC_BOOTSTRAP"), Some(None));
            }
        }
        assert_eq!("debian".parse(), Ok(Toolchain::Debian));
        assert_eq!("rustup".parse(), Ok(Toolchain::Rustup));
        assert!(
            "auto"
                .parse::<Toolchain>()
                .unwrap_err()
                .contains("expected rustup or debian")
        );
    }

    #[test]
    fn building_something_that_is_not_a_plugin_says_why() {
        let scratch = Scratch::new("notplugin");
        let err = format!(
            "{:#}",
            build(&BuildOptions::new(scratch.0.join("none"))).unwrap_err()
        );
        assert!(err.contains("/none: no Cargo.toml there"), "{err}");
        if Toolchain::detect(&scratch.0).is_err() {
            return; // no wasm toolchain on this machine: cargo metadata is not reached
        }
        std::fs::create_dir_all(scratch.0.join("src")).unwrap();
        std::fs::write(
            scratch.0.join("Cargo.toml"),
            "[package]\nname = \"plain\"\nversion = \"0.1.0\"\nedition = \"2024\"\n[workspace]\n",
        )
        .unwrap();
        std::fs::write(scratch.0.join("src/lib.rs"), "").unwrap();
        let mut opts = BuildOptions::new(&scratch.0);
        opts.echo = false;
        let err = format!("{:#}", build(&opts).unwrap_err());
        assert!(
            err.contains("package plain has no cdylib; a plugin needs `[lib] crate-type = [\"cdylib\", \"rlib\"]`"),
            "{err}"
        );
    }
}
