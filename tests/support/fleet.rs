//! The fleet's real servers on loopback (the library's harness starts
//! them, as the benchmark does).

pub use caxton::harness::fleet_servers::{Nats, Sqld};
