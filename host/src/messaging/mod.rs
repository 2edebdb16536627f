//! FIPA-style messages. For now, their JSON form on the HTTP API; routing,
//! queues and conversations arrive with the messaging issue.

mod message;

pub use message::{MessageJson, PerformativeName};
