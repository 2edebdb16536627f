//! What the host tells an agent about itself: always available, no grant.

use serde::de::DeserializeOwned;

use crate::bindings::agent::caxton::agent::context as raw;
use crate::{Error, Message};

/// The agent's name as deployed.
pub fn name() -> String {
    raw::name()
}

/// The manifest's `[parameters]` table as `T`. A table that does not fit
/// `T` is `invalid-input` naming the field, so an operator's typo in a
/// manifest surfaces in the reply.
pub fn parameters<T: DeserializeOwned>() -> Result<T, Error> {
    serde_json::from_str(&raw::parameters())
        .map_err(|e| Error::InvalidInput(format!("manifest [parameters]: {e}")))
}

/// The whole manifest as the host validated it (see the WIT reference).
pub fn manifest() -> Result<serde_json::Value, Error> {
    serde_json::from_str(&raw::manifest())
        .map_err(|e| Error::Internal(format!("the host's manifest JSON: {e}")))
}

/// The earlier messages of the current conversation, oldest first, at most
/// `limit` (the newest kept).
pub fn history(limit: u32) -> Result<Vec<Message>, Error> {
    raw::history(limit)
}
