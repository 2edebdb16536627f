//! The messaging service: addresses messages (by name or capability),
//! queues them per agent by priority, runs them, records each message and
//! reply in its conversation, and serves agents' own `messaging` imports.
//!
//! Messages from outside (HTTP) wait in the receiver's bounded mailbox.
//! Messages an agent sends while handling one (`request`) run at once
//! instead: the sender is holding a slot while it waits, so queueing
//! behind itself could deadlock; a chain is bounded by the depth limit and
//! by the instance pool, which refuses rather than waits.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::oneshot;

use super::conversations::Conversations;
use super::mailbox::{Mailbox, Priority};
use super::router::{Router, Strategy, Target};
use crate::agents::{AgentError, AgentRegistry};
use crate::config::AgentsConfig;
use crate::metrics::metrics;
use crate::runtime::{
    BoxFuture, CallChain, CallOutcome, ChainScope, ConversationHost, DeltaSink, Message,
    MessagingHost, Performative, PluginError, messaging_unavailable,
};
use crate::store::StoreError;

/// The result of handing one message to one agent.
pub struct Delivery {
    pub agent: String,
    pub outcome: Result<CallOutcome<Result<Option<Message>, PluginError>>, AgentError>,
}

/// Why a message could not be delivered at all.
#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    #[error("no agent offers capability {0:?}")]
    NoProvider(String),
    #[error("no agent named {0:?} is deployed")]
    NotFound(String),
    #[error("agent {0:?} has a full queue; retry shortly")]
    QueueFull(String),
    #[error(
        "agent {agent:?} is in {limit} active conversations, its max_conversations; retry when one ends"
    )]
    ConversationLimit { agent: String, limit: u32 },
    #[error(
        "message depth limit {limit} reached: {chain}; an agent that calls itself or a cycle of agents cannot go deeper"
    )]
    DepthLimit { limit: u32, chain: String },
    #[error("no reply from {agent:?} within {timeout:?}")]
    Timeout { agent: String, timeout: Duration },
    #[error(
        "agent {agent:?} did not start this {priority} message within its latency target of {target:?}, so it was not run; retry, send it at a higher priority, or raise [agents.priorities.{priority}] latency_target"
    )]
    Late {
        agent: String,
        priority: Priority,
        target: Duration,
    },
    #[error("a message needs a receiver or a capability")]
    NoAddress,
    #[error("recording the conversation failed: {0}")]
    Store(#[from] StoreError),
}

/// Where a call sits in a chain of messages: what `messaging` imports made
/// while handling it inherit.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// Agents the chain went through, outermost first.
    pub chain: Vec<String>,
    pub priority: Priority,
    pub conversation_id: String,
    /// Where the first agent of the chain streams its model's text, when
    /// the client asked for a stream; agents it calls do not inherit it.
    pub deltas: Option<DeltaSink>,
}

impl ChainScope for CallContext {
    fn deltas(&self) -> Option<&DeltaSink> {
        self.deltas.as_ref()
    }
}

impl CallContext {
    /// The context of a message an agent sends from within this one: the
    /// same chain, priority and conversation, but not the client's stream.
    fn continued(&self) -> Self {
        Self {
            deltas: None,
            ..self.clone()
        }
    }
}

struct Job {
    message: Message,
    context: CallContext,
    priority: Priority,
    queued_at: Instant,
    /// Whether a worker took the job or its waiting sender gave up on it:
    /// whoever claims it first decides, so a late message is either run or
    /// answered late, never both.
    claim: Arc<AtomicU8>,
    reply: Option<oneshot::Sender<Result<Delivery, MessagingError>>>,
}

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const ABANDONED: u8 = 2;

impl Job {
    fn new(message: Message, context: CallContext, priority: Priority) -> Self {
        Self {
            message,
            context,
            priority,
            queued_at: Instant::now(),
            claim: Arc::new(AtomicU8::new(QUEUED)),
            reply: None,
        }
    }
}

/// Moves a job's claim from queued to `to`; false when another side got
/// there first.
fn claim(state: &AtomicU8, to: u8) -> bool {
    state
        .compare_exchange(QUEUED, to, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// `caxton_message_queue_depth` for `priority`.
fn queue_depth(priority: Priority) -> prometheus::IntGauge {
    metrics()
        .message_queue_depth
        .with_label_values(&[priority.as_str()])
}

/// The sender's side of a queued job: what it waits on.
struct Waiter {
    claim: Arc<AtomicU8>,
    queued_at: Instant,
    priority: Priority,
    receiver: oneshot::Receiver<Result<Delivery, MessagingError>>,
}

/// One worker of an agent's mailbox: any priority, most urgent first, or
/// only `only`'s. Stops when the mailbox closes or the messenger is gone.
async fn serve_mailbox(
    mailbox: &Mailbox<Job>,
    messenger: &Weak<Messenger>,
    agent: &str,
    only: Option<Priority>,
) {
    loop {
        let job = match only {
            Some(priority) => mailbox.pop_only(priority).await,
            None => mailbox.pop().await,
        };
        let Some(job) = job else { break };
        let Some(messenger) = messenger.upgrade() else {
            // Shutting down: the job is dropped (its sender hears "not
            // found"), and uncounted.
            queue_depth(job.priority).dec();
            mailbox.done();
            break;
        };
        messenger.run_job(agent, job).await;
        mailbox.done();
    }
}

/// Where an agent's message goes when no agent on this host takes it:
/// the other hosts of a fleet (`cluster`), set once by the server.
pub trait Remote: Send + Sync {
    /// Asks the fleet and waits up to `timeout`. `message` is stamped
    /// (sender, conversation); `chain` ends with the caller.
    fn request(&self, call: RemoteCall) -> BoxFuture<'static, Result<Message, PluginError>>;
}

/// An agent's message to the fleet.
#[derive(Debug, Clone)]
pub struct RemoteCall {
    pub target: Target,
    pub message: Message,
    pub chain: Vec<String>,
    pub priority: Priority,
    /// The agents a configuration agent may ask (its manifest's `agents`).
    pub only_agents: Option<Vec<String>>,
    pub timeout: Duration,
}

/// Where `route_from` sends a message.
enum Routed {
    Local(String),
    Remote {
        target: Target,
        only_agents: Option<Vec<String>>,
    },
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueStats {
    pub queued: usize,
    pub load: usize,
    /// Waiting at each priority.
    pub by_priority: PriorityCounts,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PriorityCounts {
    pub critical: usize,
    pub high: usize,
    pub normal: usize,
    pub background: usize,
}

impl From<[usize; 4]> for PriorityCounts {
    fn from([critical, high, normal, background]: [usize; 4]) -> Self {
        Self {
            critical,
            high,
            normal,
            background,
        }
    }
}

pub struct Messenger {
    registry: Arc<AgentRegistry>,
    conversations: Option<Conversations>,
    mailboxes: Mutex<HashMap<String, Arc<Mailbox<Job>>>>,
    router: Router,
    settings: AgentsConfig,
    me: Weak<Messenger>,
    /// The fleet, when this host is part of one.
    remote: OnceLock<Arc<dyn Remote>>,
    /// Messages agents sent to the fleet without waiting, still in flight:
    /// bounded like a mailbox, so a loop of sends cannot pile them up.
    remote_sends: Arc<tokio::sync::Semaphore>,
    /// The server's runtime: mailbox workers live there even when the
    /// first message comes from a call on the low-priority threads.
    workers: tokio::runtime::Handle,
}

impl Messenger {
    pub fn new(
        registry: Arc<AgentRegistry>,
        conversations: Option<Conversations>,
        settings: AgentsConfig,
    ) -> Arc<Self> {
        let remote_sends = Arc::new(tokio::sync::Semaphore::new(settings.queue_capacity.max(1)));
        // Every priority shows in /metrics from the start, at zero.
        for priority in Priority::ALL {
            queue_depth(priority);
            metrics()
                .messages_late
                .with_label_values(&[priority.as_str()]);
        }
        Arc::new_cyclic(|me| Self {
            registry,
            conversations,
            mailboxes: Mutex::default(),
            router: Router::default(),
            settings,
            me: me.clone(),
            remote: OnceLock::new(),
            remote_sends,
            workers: tokio::runtime::Handle::current(),
        })
    }

    /// Sends agents' messages that no local agent takes to the fleet.
    pub fn set_remote(&self, remote: Arc<dyn Remote>) {
        let _ = self.remote.set(remote);
    }

    /// How long an HTTP sender waits for a reply.
    pub fn reply_timeout(&self) -> Duration {
        self.settings.reply_timeout
    }

    pub fn registry(&self) -> &Arc<AgentRegistry> {
        &self.registry
    }

    pub fn conversations(&self) -> Option<&Conversations> {
        self.conversations.as_ref()
    }

    /// The agents `target` names, after the routing strategy.
    pub fn resolve(&self, target: &Target) -> Result<Vec<String>, MessagingError> {
        match target {
            Target::Agent(name) => match self.registry.agent(name) {
                Some(_) => Ok(vec![name.clone()]),
                None => Err(MessagingError::NotFound(name.clone())),
            },
            Target::Capability { name, strategy } => {
                let providers = self.registry.providers(name);
                if providers.is_empty() {
                    return Err(MessagingError::NoProvider(name.clone()));
                }
                Ok(self
                    .router
                    .pick(name, *strategy, providers, |agent| self.queue(agent).load))
            }
        }
    }

    /// Queued and running messages of `agent`.
    pub fn queue(&self, agent: &str) -> QueueStats {
        self.mailboxes
            .lock()
            .expect("mailboxes lock")
            .get(agent)
            .map(|m| QueueStats {
                queued: m.queued(),
                load: m.load(),
                by_priority: m.queued_by_priority().into(),
            })
            .unwrap_or_default()
    }

    /// Delivers a message from outside to every agent in `agents` through
    /// their queues and waits for the replies (or `reply_timeout`). Without
    /// a `priority`, each agent's own (its manifest, profile or
    /// `default_limits`, else normal) applies.
    pub async fn deliver(
        &self,
        message: Message,
        agents: Vec<String>,
        priority: Option<Priority>,
    ) -> Result<(String, Vec<Result<Delivery, MessagingError>>), MessagingError> {
        self.deliver_streaming(message, agents, priority, None)
            .await
    }

    /// [`deliver`](Self::deliver), with the text the agents' models
    /// generate streamed to `deltas` as it comes.
    pub async fn deliver_streaming(
        &self,
        mut message: Message,
        agents: Vec<String>,
        priority: Option<Priority>,
        deltas: Option<DeltaSink>,
    ) -> Result<(String, Vec<Result<Delivery, MessagingError>>), MessagingError> {
        if message.id.is_empty() {
            message.id = uuid::Uuid::new_v4().to_string();
        }
        // Time-ordered, so a new conversation's rows land next to the last
        // one's in every index keyed by conversation (a random id dirtied a
        // random page of each at every commit: most of the WAL's writes).
        let conversation_id = message
            .conversation_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        message.conversation_id = Some(conversation_id.clone());
        let mut waiting = Vec::new();
        for agent in agents {
            let priority = priority.unwrap_or_else(|| self.priority_of(&agent));
            let context = CallContext {
                chain: Vec::new(),
                priority,
                conversation_id: conversation_id.clone(),
                deltas: deltas.clone(),
            };
            let mut copy = message.clone();
            copy.receiver = Some(agent.clone());
            let (sender, receiver) = oneshot::channel();
            let mut job = Job::new(copy, context, priority);
            job.reply = Some(sender);
            let claim = job.claim.clone();
            let queued = self.enqueue(&agent, job).await.map(|queued_at| Waiter {
                claim,
                queued_at,
                priority,
                receiver,
            });
            waiting.push((agent, queued));
        }
        // A single recipient's refusal is the whole answer; a broadcast
        // reports it per agent.
        if let [(_, Err(_))] = waiting.as_slice() {
            let (_, Err(error)) = waiting.remove(0) else {
                unreachable!()
            };
            return Err(error);
        }
        let timeout = self.settings.reply_timeout;
        let mut results = Vec::new();
        for (agent, queued) in waiting {
            results.push(match queued {
                Err(error) => Err(error),
                Ok(waiter) => self.await_reply(agent, waiter, timeout).await,
            });
        }
        Ok((conversation_id, results))
    }

    /// The priority of a message to `agent` whose sender gave none.
    fn priority_of(&self, agent: &str) -> Priority {
        self.registry
            .agent(agent)
            .map(|deployed| deployed.manifest.priority)
            .unwrap_or_default()
    }

    /// Waits for one agent's reply. A message still queued when its
    /// priority's latency target passes is taken back and answered late
    /// at once, instead of when a worker gets to it.
    async fn await_reply(
        &self,
        agent: String,
        waiter: Waiter,
        timeout: Duration,
    ) -> Result<Delivery, MessagingError> {
        let Waiter {
            claim: state,
            queued_at,
            priority,
            mut receiver,
        } = waiter;
        let target = self.settings.priorities.latency_target(priority);
        let waited = async {
            tokio::select! {
                reply = &mut receiver => return reply,
                () = tokio::time::sleep_until((queued_at + target).into()) => {}
            }
            if claim(&state, ABANDONED) {
                metrics()
                    .messages_late
                    .with_label_values(&[priority.as_str()])
                    .inc();
                return Ok(Err(MessagingError::Late {
                    agent: agent.clone(),
                    priority,
                    target,
                }));
            }
            receiver.await
        };
        match tokio::time::timeout(timeout, waited).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(MessagingError::NotFound(agent)),
            Err(_) => {
                // Still queued (a reply timeout shorter than the target):
                // no one will read its answer, so it is not run either.
                claim(&state, ABANDONED);
                Err(MessagingError::Timeout { agent, timeout })
            }
        }
    }

    /// Queues a job for `agent`, checking its conversation limit first;
    /// returns when it was queued (its wait starts there).
    async fn enqueue(&self, agent: &str, mut job: Job) -> Result<Instant, MessagingError> {
        self.check_conversation_limit(agent, &job.context.conversation_id)
            .await?;
        let mailbox = self.mailbox(agent);
        let priority = job.priority;
        let depth = queue_depth(priority);
        // Counted before a worker can take (and uncount) it.
        depth.inc();
        let queued_at = Instant::now();
        job.queued_at = queued_at;
        mailbox.push(job, priority).map_err(|_| {
            depth.dec();
            MessagingError::QueueFull(agent.to_owned())
        })?;
        Ok(queued_at)
    }

    async fn check_conversation_limit(
        &self,
        agent: &str,
        conversation: &str,
    ) -> Result<(), MessagingError> {
        let (Some(conversations), Some(deployed)) =
            (&self.conversations, self.registry.agent(agent))
        else {
            return Ok(());
        };
        let Some(limit) = deployed.manifest.resource_limits.max_conversations else {
            return Ok(());
        };
        if conversations.is_participant(conversation, agent).await? {
            return Ok(());
        }
        if conversations.active_for(agent).await? >= i64::from(limit) {
            return Err(MessagingError::ConversationLimit {
                agent: agent.to_owned(),
                limit,
            });
        }
        Ok(())
    }

    /// The agent's mailbox, created with its workers on first use.
    fn mailbox(&self, agent: &str) -> Arc<Mailbox<Job>> {
        let mut mailboxes = self.mailboxes.lock().expect("mailboxes lock");
        if let Some(mailbox) = mailboxes.get(agent) {
            return mailbox.clone();
        }
        let priorities = &self.settings.priorities;
        let sizes = Priority::ALL.map(|p| priorities.queue_size(p, self.settings.queue_capacity));
        let mailbox: Arc<Mailbox<Job>> = Arc::new(Mailbox::with_capacities(sizes));
        let general = std::iter::repeat_n(None, self.settings.workers_per_agent);
        let dedicated = Priority::ALL
            .into_iter()
            .flat_map(|p| std::iter::repeat_n(Some(p), priorities.dedicated_workers(p)));
        for only in general.chain(dedicated) {
            let (mailbox, me, agent) = (mailbox.clone(), self.me.clone(), agent.to_owned());
            self.workers
                .spawn(async move { serve_mailbox(&mailbox, &me, &agent, only).await });
        }
        mailboxes.insert(agent.to_owned(), mailbox.clone());
        mailbox
    }

    /// Runs a job a worker took, unless it is late: then it is answered
    /// with [`MessagingError::Late`] (and counted) instead.
    async fn run_job(&self, agent: &str, job: Job) {
        let priority = job.priority;
        let label = [priority.as_str()];
        metrics()
            .message_queue_depth
            .with_label_values(&label)
            .dec();
        if !claim(&job.claim, STARTED) {
            // The sender gave up at the target and has its answer.
            return;
        }
        let waited = job.queued_at.elapsed();
        metrics()
            .message_queue_wait
            .with_label_values(&label)
            .observe(waited.as_secs_f64());
        let target = self.settings.priorities.latency_target(priority);
        let Some(reply) = job.reply else {
            // An agent's `send`: no one waits to be told it is late, so it
            // runs late rather than vanish.
            if waited > target {
                tracing::warn!(agent, %priority, waited_ms = waited.as_millis() as u64, "an agent's message ran past its priority's latency target");
            }
            self.execute(agent, job.message, job.context).await;
            return;
        };
        let result = if waited > target {
            metrics().messages_late.with_label_values(&label).inc();
            tracing::debug!(agent, %priority, waited_ms = waited.as_millis() as u64, "message answered late, not run");
            Err(MessagingError::Late {
                agent: agent.to_owned(),
                priority,
                target,
            })
        } else {
            Ok(self.execute(agent, job.message, job.context).await)
        };
        let _ = reply.send(result);
    }

    /// Runs a message another host's agent sent (its `chain` ends with
    /// that agent) on `agent` now, as a local agent's request would run:
    /// the sender holds a slot while it waits, so it does not queue. The
    /// depth limit counts the chain across hosts.
    pub async fn execute_chained(
        &self,
        agent: &str,
        message: Message,
        chain: Vec<String>,
        priority: Priority,
    ) -> Result<Delivery, MessagingError> {
        if chain.len() as u32 >= self.settings.max_message_depth {
            self.put_cycle_on_probation(&chain);
            return Err(MessagingError::DepthLimit {
                limit: self.settings.max_message_depth,
                chain: chain.join(" → "),
            });
        }
        let conversation_id = message
            .conversation_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let context = CallContext {
            chain,
            priority,
            conversation_id,
            deltas: None,
        };
        Ok(self.execute(agent, message, context).await)
    }

    /// Records a message this host sent to another host, and the reply,
    /// in its own copy of the conversation.
    pub async fn record_exchange(
        &self,
        conversation: &str,
        message: &Message,
        reply: Option<&Message>,
    ) {
        self.record(conversation, message).await;
        if let Some(reply) = reply {
            self.record(conversation, reply).await;
        }
    }

    /// Stops queueing for a removed agent; what was waiting is answered
    /// with "not found" (the reply channels close).
    pub fn remove(&self, agent: &str) {
        if let Some(mailbox) = self.mailboxes.lock().expect("mailboxes lock").remove(agent) {
            let dropped = mailbox.close();
            for job in &dropped {
                queue_depth(job.priority).dec();
            }
            if !dropped.is_empty() {
                tracing::warn!(
                    agent,
                    dropped = dropped.len(),
                    "agent removed with messages queued"
                );
            }
        }
    }

    /// Runs `message` on `agent` now: records it, calls the agent with
    /// services that know this chain, records and returns the reply.
    async fn execute(&self, agent: &str, message: Message, context: CallContext) -> Delivery {
        let conversation = context.conversation_id.clone();
        // Queued now, committed with the reply below (or by the flush).
        if let Some(conversations) = &self.conversations
            && let Err(error) = conversations.record_later(&conversation, &message).await
        {
            tracing::error!(%error, conversation, "recording a message failed");
        }
        let mut chain = context.chain.clone();
        chain.push(agent.to_owned());
        let chain: CallChain = Arc::new(CallContext { chain, ..context });
        let request = (
            message.id.clone(),
            message.reply_with.clone(),
            message.sender.clone(),
        );
        let mut outcome = self.registry.call(agent, message, Some(chain)).await;
        if let Ok(CallOutcome {
            result: Ok(Ok(Some(reply))),
            ..
        }) = &mut outcome
        {
            // The host vouches for who replied and where the reply belongs.
            if reply.id.is_empty() {
                reply.id = uuid::Uuid::new_v4().to_string();
            }
            reply.sender = agent.to_owned();
            reply.receiver = Some(request.2);
            reply.conversation_id = Some(conversation.clone());
            if reply.in_reply_to.is_none() {
                reply.in_reply_to = Some(request.1.unwrap_or(request.0));
            }
            let reply = reply.clone();
            self.record(&conversation, &reply).await;
        } else if let Some(conversations) = &self.conversations
            && let Err(error) = conversations.flush().await
        {
            // No reply: still wait for the message itself, so what the
            // sender is told has happened is committed.
            tracing::error!(%error, conversation, "recording a message failed");
        }
        Delivery {
            agent: agent.to_owned(),
            outcome,
        }
    }

    /// Records a message; a failure is logged, not fatal: the message was
    /// delivered, only its history is incomplete.
    async fn record(&self, conversation: &str, message: &Message) {
        if let Some(conversations) = &self.conversations
            && let Err(error) = conversations.record(conversation, message).await
        {
            tracing::error!(%error, conversation, "recording a message failed");
        }
    }

    /// The agents of a chain that hit the depth limit run at low priority
    /// for a while: those that appear more than once (the cycle), or the
    /// last one if none repeats (a chain that is simply too deep).
    fn put_cycle_on_probation(&self, chain: &[String]) {
        let repeated: Vec<&String> = chain
            .iter()
            .filter(|agent| chain.iter().filter(|other| other == agent).count() > 1)
            .collect();
        let culprits = if repeated.is_empty() {
            chain.last().into_iter().collect()
        } else {
            repeated
        };
        for agent in culprits {
            if let Some(deployed) = self.registry.agent(agent) {
                deployed.component.put_on_probation();
            }
        }
    }

    /// Where a message an agent sends goes, after the depth check: a local
    /// agent, or the fleet when none here takes it.
    fn route_from(
        &self,
        caller: &str,
        context: &CallContext,
        message: &Message,
    ) -> Result<Routed, PluginError> {
        if context.chain.len() as u32 >= self.settings.max_message_depth {
            self.put_cycle_on_probation(&context.chain);
            return Err(PluginError::Denied(
                MessagingError::DepthLimit {
                    limit: self.settings.max_message_depth,
                    chain: context.chain.join(" → "),
                }
                .to_string(),
            ));
        }
        let target = match (&message.receiver, &message.capability) {
            (Some(agent), _) => Target::Agent(agent.clone()),
            (None, Some(capability)) => Target::Capability {
                name: capability.clone(),
                strategy: Strategy::Best,
            },
            (None, None) => {
                return Err(PluginError::InvalidInput(
                    MessagingError::NoAddress.to_string(),
                ));
            }
        };
        // A configuration agent asks only the agents its manifest lists,
        // whatever its model asks for.
        let allowed = self
            .registry
            .agent(caller)
            .filter(|deployed| deployed.manifest.configuration)
            .map(|deployed| deployed.manifest.agents.clone());
        let denied = |agent: &str| {
            PluginError::Denied(format!(
                "agent {caller:?} may ask only {:?} (its manifest's `agents`), not {agent:?}",
                allowed.as_deref().unwrap_or_default()
            ))
        };
        let agents = match self.resolve(&target) {
            Ok(agents) => agents,
            Err(MessagingError::NotFound(_) | MessagingError::NoProvider(_))
                if self.remote.get().is_some() =>
            {
                if let (Target::Agent(agent), Some(allowed)) = (&target, &allowed)
                    && !allowed.contains(agent)
                {
                    return Err(denied(agent));
                }
                return Ok(Routed::Remote {
                    target,
                    only_agents: allowed,
                });
            }
            Err(error) => return Err(PluginError::NotFound(error.to_string())),
        };
        let agent = agents
            .into_iter()
            .next()
            .expect("resolve returns one or an error");
        if let Some(allowed) = &allowed
            && !allowed.contains(&agent)
        {
            return Err(denied(&agent));
        }
        Ok(Routed::Local(agent))
    }

    /// Sends an agent's message to the fleet and records the exchange in
    /// this host's copy of the conversation.
    async fn request_remote(
        &self,
        caller: &str,
        context: &CallContext,
        mut message: Message,
        target: Target,
        only_agents: Option<Vec<String>>,
        timeout: Duration,
    ) -> Result<Message, PluginError> {
        let remote = self
            .remote
            .get()
            .cloned()
            .ok_or_else(messaging_unavailable)?;
        let receiver = match &target {
            Target::Agent(agent) => Some(agent.as_str()),
            Target::Capability { .. } => None,
        };
        Messenger::stamp(caller, context, &mut message, receiver);
        let reply = remote
            .request(RemoteCall {
                target,
                message: message.clone(),
                chain: context.chain.clone(),
                priority: context.priority,
                only_agents,
                timeout,
            })
            .await;
        self.record_exchange(&context.conversation_id, &message, reply.as_ref().ok())
            .await;
        reply
    }

    /// Fills in what the host vouches for on a message from `caller`
    /// (the receiver once it is known: a capability sent to the fleet is
    /// resolved by the host that takes it).
    fn stamp(caller: &str, context: &CallContext, message: &mut Message, receiver: Option<&str>) {
        if message.id.is_empty() {
            message.id = uuid::Uuid::new_v4().to_string();
        }
        message.sender = caller.to_owned();
        if let Some(agent) = receiver {
            message.receiver = Some(agent.to_owned());
        }
        message.conversation_id = Some(context.conversation_id.clone());
    }

    /// Sends an agent's message to the fleet without waiting: the answer
    /// is recorded, not returned. In flight at most `queue_capacity`, like
    /// a mailbox.
    fn send_remote(
        &self,
        caller: &str,
        context: &CallContext,
        message: Message,
        target: Target,
        only_agents: Option<Vec<String>>,
    ) -> Result<(), PluginError> {
        let me = self.me.upgrade().ok_or_else(messaging_unavailable)?;
        let permit = self.remote_sends.clone().try_acquire_owned().map_err(|_| {
            PluginError::Unavailable(format!(
                "{} messages to the fleet are in flight ([agents] queue_capacity); retry shortly",
                self.settings.queue_capacity
            ))
        })?;
        let (caller, context) = (caller.to_owned(), context.continued());
        let timeout = self.settings.reply_timeout;
        self.workers.spawn(async move {
            let _permit = permit;
            if let Err(error) = me
                .request_remote(&caller, &context, message, target, only_agents, timeout)
                .await
            {
                tracing::warn!(%error, from = %caller, "a message sent to the fleet failed");
            }
        });
        Ok(())
    }
}

impl Messenger {
    /// An agent's outgoing message is held to the reply limit: it would
    /// otherwise be copied through queues, conversations and the callee.
    fn check_size(&self, caller: &str, message: &Message) -> Result<(), PluginError> {
        let limit = self.registry.max_message_bytes();
        let size = message_bytes(message);
        if size <= limit {
            return Ok(());
        }
        if let Some(agent) = self.registry.agent(caller) {
            agent.component.put_on_probation();
        }
        Err(PluginError::InvalidInput(format!(
            "message of {size} bytes is larger than [agents] max_reply_size ({limit} bytes)"
        )))
    }
}

/// The chain a call's `messaging` imports continue: the one this messenger
/// started the call with. A call outside any chain cannot send.
fn continuing(chain: Option<&CallChain>) -> Result<&CallContext, PluginError> {
    chain
        .and_then(|chain| (&**chain as &dyn Any).downcast_ref::<CallContext>())
        .ok_or_else(messaging_unavailable)
}

/// The bytes of a message's text fields: what routing and recording it copies.
fn message_bytes(message: &Message) -> usize {
    [
        Some(&message.id),
        Some(&message.sender),
        message.receiver.as_ref(),
        message.capability.as_ref(),
        message.conversation_id.as_ref(),
        message.reply_with.as_ref(),
        message.in_reply_to.as_ref(),
        Some(&message.content),
    ]
    .into_iter()
    .flatten()
    .map(String::len)
    .sum()
}

/// Messages `context.history` returns at most, whatever the plugin asks:
/// the host reads them into memory before the plugin's cap applies.
const MAX_HISTORY: u32 = 256;

impl ConversationHost for Messenger {
    fn history<'a>(
        &'a self,
        caller: &'a str,
        chain: Option<&'a CallChain>,
        handling: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Message>, PluginError>> {
        Box::pin(async move {
            // The conversation of the call itself, and in it only what the
            // agent sent or received: an agent asked by another does not
            // read the client's exchange with the first.
            let (Ok(context), Some(conversations)) = (continuing(chain), &self.conversations)
            else {
                return Ok(Vec::new());
            };
            conversations
                .recent(
                    &context.conversation_id,
                    caller,
                    handling,
                    limit.min(MAX_HISTORY),
                )
                .await
                .map_err(|e| PluginError::Internal(format!("reading the conversation: {e}")))
        })
    }
}

impl MessagingHost for Messenger {
    fn send<'a>(
        &'a self,
        caller: &'a str,
        chain: Option<&'a CallChain>,
        mut message: Message,
    ) -> BoxFuture<'a, Result<(), PluginError>> {
        Box::pin(async move {
            let context = continuing(chain)?;
            self.check_size(caller, &message)?;
            let agent = match self.route_from(caller, context, &message)? {
                Routed::Local(agent) => agent,
                Routed::Remote {
                    target,
                    only_agents,
                } => return self.send_remote(caller, context, message, target, only_agents),
            };
            Messenger::stamp(caller, context, &mut message, Some(&agent));
            let job = Job::new(message, context.continued(), context.priority);
            self.enqueue(&agent, job)
                .await
                .map(|_| ())
                .map_err(|e| PluginError::Unavailable(e.to_string()))
        })
    }

    fn request<'a>(
        &'a self,
        caller: &'a str,
        chain: Option<&'a CallChain>,
        mut message: Message,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Message, PluginError>> {
        Box::pin(async move {
            let context = continuing(chain)?;
            self.check_size(caller, &message)?;
            let agent = match self.route_from(caller, context, &message)? {
                Routed::Local(agent) => agent,
                Routed::Remote {
                    target,
                    only_agents,
                } => {
                    return self
                        .request_remote(caller, context, message, target, only_agents, timeout)
                        .await;
                }
            };
            Messenger::stamp(caller, context, &mut message, Some(&agent));
            let started = Instant::now();
            let delivery =
                tokio::time::timeout(timeout, self.execute(&agent, message, context.continued()))
                    .await
                    .map_err(|_| {
                        PluginError::Timeout(format!("no reply from {agent:?} within {timeout:?}"))
                    })?;
            tracing::debug!(from = caller, to = %agent, elapsed_us = started.elapsed().as_micros() as u64, "agent request answered");
            match delivery.outcome {
                Ok(CallOutcome {
                    result: Ok(Ok(Some(reply))),
                    ..
                }) => Ok(reply),
                Ok(CallOutcome {
                    result: Ok(Ok(None)),
                    ..
                }) => Ok(Message {
                    id: uuid::Uuid::new_v4().to_string(),
                    performative: Performative::Inform,
                    sender: agent.clone(),
                    receiver: Some(caller.to_owned()),
                    capability: None,
                    conversation_id: Some(context.conversation_id.clone()),
                    reply_with: None,
                    in_reply_to: None,
                    content: "null".into(),
                }),
                // The callee's own error passes through as it was.
                Ok(CallOutcome {
                    result: Ok(Err(error)),
                    ..
                }) => Err(error),
                Ok(CallOutcome {
                    result: Err(fault), ..
                }) => Err(PluginError::Internal(format!(
                    "agent {agent:?} failed: {fault}"
                ))),
                Err(error) => Err(PluginError::NotFound(error.to_string())),
            }
        })
    }
}
