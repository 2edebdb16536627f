//! What each agent has done since the server started: counters that
//! survive reloads (same name, same counters).

/// What an agent has done since the server started.
#[derive(Debug, Default)]
pub struct AgentStats {
    pub messages: std::sync::atomic::AtomicU64,
    pub failures: std::sync::atomic::AtomicU64,
    pub total_wall_us: std::sync::atomic::AtomicU64,
    pub fuel: std::sync::atomic::AtomicU64,
}

impl AgentStats {
    pub(super) fn record(&self, usage: &crate::runtime::CallUsage, ok: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        self.messages.fetch_add(1, Relaxed);
        if !ok {
            self.failures.fetch_add(1, Relaxed);
        }
        self.total_wall_us.fetch_add(usage.wall_time_us, Relaxed);
        self.fuel.fetch_add(usage.fuel_consumed, Relaxed);
    }

    /// The counters as JSON.
    pub fn snapshot(&self) -> serde_json::Value {
        use std::sync::atomic::Ordering::Relaxed;
        let messages = self.messages.load(Relaxed);
        serde_json::json!({
            "messages": messages,
            "failures": self.failures.load(Relaxed),
            "fuel_consumed": self.fuel.load(Relaxed),
            "mean_wall_time_us": self.total_wall_us.load(Relaxed).checked_div(messages).unwrap_or(0),
        })
    }
}
