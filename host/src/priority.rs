//! How urgent a message is, and the per-priority queue settings
//! (`[agents.priorities]`): plain data shared by the config, manifests,
//! profiles and the mailboxes, so none of them depends on another for it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How urgent a message is; a queue serves `critical` before `high`
/// before `normal` before `background`, first in first out within each.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Critical,
    High,
    #[default]
    Normal,
    Background,
}

impl Priority {
    /// Every priority, most urgent first.
    pub const ALL: [Priority; 4] = [
        Priority::Critical,
        Priority::High,
        Priority::Normal,
        Priority::Background,
    ];

    /// 0 for `critical` up to 3 for `background`.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Background => "background",
        }
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[agents.priorities.<priority>]`: one priority's queue in every agent's
/// mailbox. Unset keys take the priority's defaults (see
/// [`PriorityQueues`]).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PriorityQueue {
    /// Messages of this priority waiting per agent; a full queue answers
    /// 429. Each priority has its own bound, so a flood of one priority
    /// never fills another's.
    /// Default: `[agents] queue_capacity`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_size: Option<usize>,
    /// Longest a message of this priority may wait in the queue. One that
    /// has not started by then is answered with a `queue_timeout` error
    /// (HTTP 504) and counted, instead of being run late.
    /// Default: the guide's target for the priority.
    #[serde(
        with = "crate::config::optional_duration_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub latency_target: Option<Duration>,
    /// Workers per agent that take only this priority's messages, on top
    /// of `[agents] workers_per_agent` (which take any, most urgent
    /// first): a flood of slow lower-priority messages cannot hold every
    /// worker while this priority waits.
    /// Default: 1 for critical and high, 0 for normal and background.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedicated_workers: Option<usize>,
}

/// `[agents.priorities]`: the four queues. The default latency targets are
/// the operators' guide's: critical 100 ms, high 500 ms, normal 2 s,
/// background 10 s.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PriorityQueues {
    /// Default: `latency_target = "100ms"`, `dedicated_workers = 1`.
    pub critical: PriorityQueue,
    /// Default: `latency_target = "500ms"`, `dedicated_workers = 1`.
    pub high: PriorityQueue,
    /// Default: `latency_target = "2s"`, `dedicated_workers = 0`.
    pub normal: PriorityQueue,
    /// Default: `latency_target = "10s"`, `dedicated_workers = 0`.
    pub background: PriorityQueue,
}

impl PriorityQueues {
    pub fn get(&self, priority: Priority) -> &PriorityQueue {
        match priority {
            Priority::Critical => &self.critical,
            Priority::High => &self.high,
            Priority::Normal => &self.normal,
            Priority::Background => &self.background,
        }
    }

    /// How many messages of `priority` may wait per agent.
    pub fn queue_size(&self, priority: Priority, queue_capacity: usize) -> usize {
        self.get(priority).queue_size.unwrap_or(queue_capacity)
    }

    /// How long a message of `priority` may wait before it is answered
    /// with a timeout instead of being run.
    pub fn latency_target(&self, priority: Priority) -> Duration {
        self.get(priority)
            .latency_target
            .unwrap_or(Duration::from_millis(match priority {
                Priority::Critical => 100,
                Priority::High => 500,
                Priority::Normal => 2_000,
                Priority::Background => 10_000,
            }))
    }

    /// Workers per agent that serve only `priority`.
    pub fn dedicated_workers(&self, priority: Priority) -> usize {
        self.get(priority)
            .dedicated_workers
            .unwrap_or(match priority {
                Priority::Critical | Priority::High => 1,
                Priority::Normal | Priority::Background => 0,
            })
    }
}
