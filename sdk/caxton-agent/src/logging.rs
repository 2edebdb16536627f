//! `format!`-style logging into the host's log, tagged with the plugin's
//! name: `caxton_agent::info!("stored {n} facts")`. Needs the `log` grant
//! in an agent's manifest (tools always have it).

#[doc(hidden)]
pub use crate::log::{Level, log};

/// Logs at `error` level.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::logging::log($crate::logging::Level::Error, &::std::format!($($arg)*)) };
}

/// Logs at `warn` level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::logging::log($crate::logging::Level::Warn, &::std::format!($($arg)*)) };
}

/// Logs at `info` level.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::logging::log($crate::logging::Level::Info, &::std::format!($($arg)*)) };
}

/// Logs at `debug` level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::logging::log($crate::logging::Level::Debug, &::std::format!($($arg)*)) };
}
