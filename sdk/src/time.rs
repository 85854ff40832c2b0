//! The host's wall clock (`proxy_get_current_time_nanoseconds`).
//!
//! `std::time::SystemTime::now()` does not work in a `wasm32-unknown-unknown` module (it panics:
//! the target has no clock), so a plugin asks the host. Natively the system clock answers, unless
//! a test fixed the time with [`crate::testing::set_time`].
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use wasmgate_sdk::{testing, time};
//!
//! testing::set_time(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
//! assert_eq!(time::unix_seconds(), Some(1_700_000_000));
//! testing::clear_time();
//! assert!(time::unix_seconds().unwrap() > 1_700_000_000);
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The host's wall-clock time, or `None` when the host cannot tell it (a host without the call
/// answers `Unimplemented`). A plugin that needs the time to decide, such as a token expiry
/// check, must refuse the request on `None` rather than guess.
pub fn now() -> Option<SystemTime> {
    #[cfg(target_arch = "wasm32")]
    {
        match crate::abi::current_time_nanos() {
            Ok(nanos) => Some(UNIX_EPOCH + Duration::from_nanos(nanos)),
            Err(status) => {
                crate::log::warn(&format!("host has no clock (status {status})"));
                None
            }
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        native::now()
    }
}

/// Whole seconds since the Unix epoch (the unit of JWT `exp`/`nbf` claims), or `None` as for
/// [`now`].
pub fn unix_seconds() -> Option<u64> {
    now().map(|t| {
        t.duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs()
    })
}

/// Natively, the clock a test chose for its thread (each test runs on its own thread).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod native {
    use std::cell::Cell;
    use std::time::SystemTime;

    /// What [`super::now`] answers on this thread.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum Clock {
        /// The system clock.
        System,
        /// A fixed time.
        Fixed(SystemTime),
        /// No clock, as on a host without `proxy_get_current_time_nanoseconds`.
        Unavailable,
    }

    thread_local! {
        static CLOCK: Cell<Clock> = const { Cell::new(Clock::System) };
    }

    pub(crate) fn set(clock: Clock) {
        CLOCK.with(|c| c.set(clock));
    }

    pub(crate) fn now() -> Option<SystemTime> {
        match CLOCK.with(Cell::get) {
            Clock::System => Some(SystemTime::now()),
            Clock::Fixed(t) => Some(t),
            Clock::Unavailable => None,
        }
    }
}
