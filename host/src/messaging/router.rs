//! Which agents a message goes to: a named agent, or the providers of a
//! capability picked by a strategy.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// How a capability-addressed message picks among the agents offering it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The provider with the fewest messages queued or running.
    #[default]
    Best,
    /// Providers in turn.
    RoundRobin,
    /// Every provider; the sender gets every reply.
    Broadcast,
}

/// Where a message is addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Agent(String),
    Capability { name: String, strategy: Strategy },
}

/// Round-robin positions per capability.
#[derive(Default)]
pub struct Router {
    turns: Mutex<HashMap<String, usize>>,
}

impl Router {
    /// Picks from `providers` (sorted by name) for `capability`; `load`
    /// gives each provider's queued plus running messages.
    pub fn pick(
        &self,
        capability: &str,
        strategy: Strategy,
        providers: Vec<String>,
        load: impl Fn(&str) -> usize,
    ) -> Vec<String> {
        if providers.len() <= 1 || strategy == Strategy::Broadcast {
            return providers;
        }
        let turn = {
            let mut turns = self.turns.lock().expect("router lock");
            let turn = turns.entry(capability.to_owned()).or_default();
            *turn = turn.wrapping_add(1);
            *turn
        };
        let chosen = match strategy {
            Strategy::RoundRobin => turn % providers.len(),
            // Least loaded; ties go round-robin so idle providers share work.
            _ => {
                let loads: Vec<usize> = providers.iter().map(|p| load(p)).collect();
                let least = *loads.iter().min().expect("non-empty");
                let tied: Vec<usize> = (0..providers.len())
                    .filter(|i| loads[*i] == least)
                    .collect();
                tied[turn % tied.len()]
            }
        };
        vec![providers[chosen].clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn round_robin_takes_turns_and_best_prefers_the_idle() {
        let router = Router::default();
        let picks: Vec<String> = (0..4)
            .flat_map(|_| router.pick("c", Strategy::RoundRobin, names(&["a", "b"]), |_| 0))
            .collect();
        assert_eq!(picks, ["b", "a", "b", "a"]);
        for _ in 0..3 {
            let pick = router.pick("d", Strategy::Best, names(&["a", "b"]), |p| {
                if p == "a" { 5 } else { 1 }
            });
            assert_eq!(pick, ["b"]);
        }
        assert_eq!(
            router.pick("e", Strategy::Broadcast, names(&["a", "b"]), |_| 0),
            ["a", "b"]
        );
    }
}
