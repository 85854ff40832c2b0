//! Logging through the host (`proxy_log`). On the wasm target a message goes to the gateway's log;
//! natively (unit tests) it is kept in memory for [`crate::testing::take_logs`] to inspect.
//!
//! Never log a credential: the gateway's log is read by people who must not see them.

use std::fmt;

/// A proxy-wasm log level; the discriminant is the ABI's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// 0: very detailed tracing.
    Trace = 0,
    /// 1: debugging detail.
    Debug = 1,
    /// 2: normal operation.
    Info = 2,
    /// 3: something unexpected that the plugin handled.
    Warn = 3,
    /// 4: an error, e.g. a refused configuration.
    Error = 4,
    /// 5: the plugin cannot work.
    Critical = 5,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Critical => "critical",
        };
        f.write_str(name)
    }
}

/// Logs `message` at `level`. A failure of the host to log is ignored: logging must never change
/// what a plugin decides.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::abi::log(level as u32, message);
    #[cfg(not(target_arch = "wasm32"))]
    captured::push(level, message);
}

/// Whether a line at `level` would go anywhere: the host's log level lets it through. The
/// logging macros ask before they format, so a muted `debug!` on every request costs one host
/// call instead of a formatted string and a call. When the host cannot tell, lines are sent.
#[cfg(target_arch = "wasm32")]
pub fn enabled(level: Level) -> bool {
    crate::abi::log_level().is_none_or(|host| level as u32 >= host)
}

/// Natively every line is kept, for [`crate::testing::take_logs`].
#[cfg(not(target_arch = "wasm32"))]
pub fn enabled(_level: Level) -> bool {
    true
}

/// Logs at trace level.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Logs at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Logs at info level.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Logs at error level.
pub fn error(message: &str) {
    log(Level::Error, message);
}

/// `format!`-style logging at trace level: `wasmgate_sdk::trace!("x = {x}")`.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::Trace) {
            $crate::log::trace(&::std::format!($($arg)*))
        }
    };
}

/// `format!`-style logging at debug level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::Debug) {
            $crate::log::debug(&::std::format!($($arg)*))
        }
    };
}

/// `format!`-style logging at info level.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::Info) {
            $crate::log::info(&::std::format!($($arg)*))
        }
    };
}

/// `format!`-style logging at warn level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::Warn) {
            $crate::log::warn(&::std::format!($($arg)*))
        }
    };
}

/// `format!`-style logging at error level.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::Error) {
            $crate::log::error(&::std::format!($($arg)*))
        }
    };
}

/// Natively, log lines are kept per thread (each test runs on its own thread).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod captured {
    use super::Level;
    use std::cell::RefCell;

    thread_local! {
        static LINES: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
    }

    pub(crate) fn push(level: Level, message: &str) {
        LINES.with(|l| l.borrow_mut().push((level, message.to_owned())));
    }

    pub(crate) fn take() -> Vec<(Level, String)> {
        LINES.with(|l| std::mem::take(&mut *l.borrow_mut()))
    }
}
