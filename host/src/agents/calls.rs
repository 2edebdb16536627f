//! Calling a deployed agent: the services its imports reach (wired once
//! by `server`), the reply size check, and the metrics and counters every
//! call records.

use std::sync::Arc;

use super::registry::{AgentError, AgentRegistry};
use crate::metrics::metrics;
use crate::runtime::{
    CallChain, CallOutcome, HostServices, Message, PluginError, RuntimeError, Unavailable,
};

impl AgentRegistry {
    /// Wires the services every agent call gets (once, in `server`).
    pub fn wire(&self, services: HostServices) {
        if self.services.set(services).is_err() {
            tracing::warn!("the agent registry's services were already wired");
        }
    }

    /// The wired services, or (before wiring: offline checks, benchmarks)
    /// this registry's tools, memory and context without messaging.
    fn services(self: &Arc<Self>) -> HostServices {
        self.services
            .get()
            .cloned()
            .unwrap_or_else(|| HostServices {
                tools: self.clone(),
                memory: self.clone(),
                context: self.clone(),
                llm: self.clone(),
                messaging: Arc::new(Unavailable),
                conversations: Arc::new(Unavailable),
                http: None,
            })
    }

    /// Delivers a message to the named agent on a fresh instance; `chain`
    /// says where the call sits in a chain of messages.
    pub async fn call(
        self: &Arc<Self>,
        agent: &str,
        message: Message,
        chain: Option<CallChain>,
    ) -> Result<CallOutcome<Result<Option<Message>, PluginError>>, AgentError> {
        let deployed = self
            .agent(agent)
            .ok_or_else(|| AgentError::NotFound(agent.to_owned()))?;
        let mut outcome = self
            .runtime
            .call_agent(&deployed.component, message, &self.services(), chain)
            .await;
        // A reply bigger than the host passes on is the plugin's error: it
        // would otherwise be copied through conversations and responses.
        let limit = self
            .max_reply_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        if let Ok(Ok(Some(reply))) = &outcome.result
            && reply.content.len() > limit
        {
            deployed.component.put_on_probation();
            outcome.result = Ok(Err(PluginError::InvalidInput(format!(
                "reply of {} bytes is larger than [agents] max_reply_size ({limit} bytes)",
                reply.content.len()
            ))));
        }
        let m = metrics();
        m.agent_response_time
            .with_label_values(&[agent])
            .observe(outcome.usage.wall_time_us as f64 / 1e6);
        m.fuel_consumed
            .with_label_values(&[agent])
            .inc_by(outcome.usage.fuel_consumed);
        let processed = match &outcome.result {
            Ok(Ok(_)) => "ok",
            Ok(Err(_)) => "plugin_error",
            Err(error) => {
                record_fault(error);
                "fault"
            }
        };
        m.messages_processed.with_label_values(&[processed]).inc();
        self.stats_of(agent)
            .record(&outcome.usage, processed == "ok");
        Ok(outcome)
    }
}

/// Counts a call stopped by the sandbox, by the kind of fault.
pub(super) fn record_fault(error: &RuntimeError) {
    if matches!(
        error,
        RuntimeError::OutOfFuel { .. }
            | RuntimeError::DeadlineExceeded { .. }
            | RuntimeError::MemoryLimit(_)
            | RuntimeError::Trap { .. }
            | RuntimeError::PoolExhausted
            | RuntimeError::PluginBusy { .. }
    ) {
        metrics().traps.with_label_values(&[error.code()]).inc();
    }
}
