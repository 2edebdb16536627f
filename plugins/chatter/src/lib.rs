//! Test-only agent that talks to the host without pause: every message
//! starts a loop that logs, searches memory and writes memory until the
//! host stops it (fuel or deadline). It proves that a plugin hammering
//! host calls cannot starve other agents or corrupt the store.

use caxton_agent::{Agent, Error, Message, memory};

struct Chatter;

impl Agent for Chatter {
    fn handle(_message: Message) -> Result<Option<Message>, Error> {
        let mut round: u64 = 0;
        loop {
            round = round.wrapping_add(1);
            caxton_agent::info!("chatter round {round}");
            memory::search("chatter", 5)?;
            memory::remember("chatter", "note", &[format!("round {round}")])?;
        }
    }
}

caxton_agent::export_agent!(Chatter);
