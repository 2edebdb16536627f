//! The fleet: hosts that reach each other's agents over NATS.
//!
//! Every host serves its local agents on subjects by name and by
//! capability, in a queue group per subject so one host of several takes
//! each message, plus a broadcast subject per capability that every host
//! answers. Hosts announce themselves and their agents on a heartbeat
//! subject; the fleet view is who was heard from lately. NATS does the
//! rest: request/reply, load sharing in queue groups, and dropping the
//! subscriptions of a host whose connection dies (its capabilities fail
//! over at once), reconnecting by itself after an outage.
//!
//! This module is the transport and the view. What a request does on the
//! serving host (deliver it locally, answer as the HTTP API would) is the
//! [`FleetHandler`] the server hands in, so nothing here knows the API.

mod config;
mod wire;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

pub use config::ClusterConfig;
pub use wire::{AgentInfo, Announcement, FleetReply, FleetRequest, Route, Subjects};

use crate::runtime::BoxFuture;

/// What the serving side of the fleet needs from the host.
pub trait FleetHandler: Send + Sync + 'static {
    /// The agents this host serves now, with their capabilities.
    fn local_agents(&self) -> Vec<AgentInfo>;
    /// Answers a request from another host with local agents only.
    fn handle(&self, route: Route, request: FleetRequest) -> BoxFuture<'static, FleetReply>;
}

/// Why a message could not reach the fleet.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "the fleet is unreachable: this host is not connected to NATS ({url}); local agents still answer, and the host reconnects by itself"
    )]
    Unavailable { url: String },
    #[error("no host of the fleet serves this")]
    NoResponders,
    #[error("no host of the fleet answered within {0:?}")]
    Timeout(Duration),
    #[error("a fleet host answered with something that is not a reply: {0}")]
    Protocol(String),
    #[error(
        "the message is larger than the NATS server's max_payload; send less, or raise max_payload on the fleet's NATS server"
    )]
    TooLarge,
}

/// A host of the fleet as this one sees it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    pub name: String,
    /// This host itself.
    #[serde(rename = "self")]
    pub is_self: bool,
    pub version: String,
    pub uptime_secs: u64,
    /// Milliseconds since its last heartbeat (0 for this host).
    pub last_seen_ms: u64,
    pub agents: Vec<AgentInfo>,
}

/// A served NATS subject and its queue group (none for broadcasts).
type Served = (String, Option<&'static str>);

struct Heard {
    announcement: Announcement,
    at: Instant,
}

/// This host's membership of the fleet.
pub struct Fleet {
    client: async_nats::Client,
    node: String,
    /// The NATS address without credentials, for messages.
    url: String,
    subjects: Subjects,
    settings: ClusterConfig,
    handler: Arc<dyn FleetHandler>,
    started: Instant,
    heard: Mutex<HashMap<String, Heard>>,
    /// Served subjects and the task reading each.
    served: Mutex<HashMap<Served, JoinHandle<()>>>,
    inflight: Arc<Semaphore>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Fleet {
    /// Joins the fleet at `settings.nats_url`. The connection is made in
    /// the background: a host whose NATS server is down starts anyway,
    /// serves its own agents, and joins when the server comes up.
    pub async fn start(
        settings: &ClusterConfig,
        handler: Arc<dyn FleetHandler>,
    ) -> anyhow::Result<Arc<Self>> {
        let Some(url) = settings.nats_url.clone() else {
            anyhow::bail!("[cluster] nats_url is not set");
        };
        let node = settings.node_name();
        let shown = redact(&url);
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("caxton {node}"))
            .retry_on_initial_connect()
            .max_reconnects(None)
            // A dead server is noticed within a few seconds, not minutes.
            .ping_interval(Duration::from_secs(5))
            .connection_timeout(Duration::from_secs(2))
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis(100u64.saturating_mul(1 << attempts.min(5))).min(
                    Duration::from_secs(2),
                )
            })
            .event_callback({
                let shown = shown.clone();
                move |event| {
                    let shown = shown.clone();
                    async move {
                        match event {
                            async_nats::Event::Connected => {
                                crate::metrics::metrics().cluster_connected.set(1);
                                tracing::info!(nats = %shown, "connected to the fleet");
                            }
                            async_nats::Event::Disconnected => {
                                crate::metrics::metrics().cluster_connected.set(0);
                                tracing::warn!(nats = %shown, "lost the fleet's NATS server; local agents still answer, reconnecting");
                            }
                            other => tracing::debug!(nats = %shown, event = %other, "fleet connection"),
                        }
                    }
                }
            });
        if let Some(path) = &settings.credentials_file {
            options = options.credentials_file(path).await.map_err(|e| {
                anyhow::anyhow!(
                    "cannot read [cluster] credentials_file {}: {e}; point it at the .creds file `nsc` or your NATS operator gave you",
                    path.display()
                )
            })?;
        }
        let client = options.connect(url.as_str()).await.map_err(|e| {
            anyhow::anyhow!("[cluster] nats_url {shown:?} is not a NATS address: {e}; write it as nats://host:4222")
        })?;
        let fleet = Arc::new(Self {
            client,
            node,
            url: shown,
            subjects: Subjects::new(&settings.subject_prefix),
            settings: settings.clone(),
            handler,
            started: Instant::now(),
            heard: Mutex::default(),
            served: Mutex::default(),
            inflight: Arc::new(Semaphore::new(settings.max_inflight.max(1))),
            tasks: Mutex::default(),
        });
        let listen = tokio::spawn(listen_for_heartbeats(Arc::downgrade(&fleet)));
        let beat = tokio::spawn(heartbeat(Arc::downgrade(&fleet)));
        fleet
            .tasks
            .lock()
            .expect("fleet tasks")
            .extend([listen, beat]);
        tracing::info!(node = %fleet.node, nats = %fleet.url, "joining the fleet");
        Ok(fleet)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The NATS address, without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends `request` to one host serving `route` and waits up to
    /// `timeout` for its answer. Fails at once while NATS is unreachable.
    pub async fn request(
        &self,
        route: &Route,
        request: &FleetRequest,
        timeout: Duration,
    ) -> Result<FleetReply, ClusterError> {
        self.check_connected()?;
        let started = Instant::now();
        let payload = serde_json::to_vec(request).expect("a fleet request serializes");
        let outcome = self
            .client
            .send_request(
                self.subjects.route(route),
                async_nats::Request::new()
                    .payload(payload.into())
                    .timeout(Some(timeout)),
            )
            .await;
        let result = match outcome {
            Ok(message) => decode(&message.payload),
            Err(error) => Err(match error.kind() {
                async_nats::RequestErrorKind::NoResponders => ClusterError::NoResponders,
                async_nats::RequestErrorKind::TimedOut => ClusterError::Timeout(timeout),
                async_nats::RequestErrorKind::MaxPayloadExceeded => ClusterError::TooLarge,
                _ => ClusterError::Unavailable {
                    url: self.url.clone(),
                },
            }),
        };
        record_call(&result, started);
        result
    }

    /// Sends `request` to every other host serving `capability` and
    /// gathers their answers until each host the fleet view lists for it
    /// has answered, or `timeout` (a host that died since its last
    /// heartbeat is waited for until then).
    pub async fn broadcast(
        &self,
        capability: &str,
        request: &FleetRequest,
        timeout: Duration,
    ) -> Result<Vec<FleetReply>, ClusterError> {
        self.check_connected()?;
        let expected = self
            .others()
            .into_iter()
            .filter(|node| {
                node.agents
                    .iter()
                    .any(|a| a.capabilities.iter().any(|c| c == capability))
            })
            .count();
        if expected == 0 {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let inbox = self.client.new_inbox();
        let mut replies = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|_| self.unavailable())?;
        let payload = serde_json::to_vec(request).expect("a fleet request serializes");
        self.client
            .publish_with_reply(
                self.subjects
                    .route(&Route::Broadcast(capability.to_owned())),
                inbox,
                payload.into(),
            )
            .await
            .map_err(|error| match error.kind() {
                async_nats::client::PublishErrorKind::MaxPayloadExceeded => ClusterError::TooLarge,
                _ => self.unavailable(),
            })?;
        let mut answers = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while answers.len() < expected {
            match tokio::time::timeout_at(deadline, replies.next()).await {
                // Every provider left since the last heartbeat.
                Ok(Some(message))
                    if message.status == Some(async_nats::StatusCode::NO_RESPONDERS) =>
                {
                    break;
                }
                Ok(Some(message)) => {
                    let result = decode(&message.payload);
                    record_call(&result, started);
                    if let Ok(reply) = result {
                        answers.push(reply);
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        Ok(answers)
    }

    /// The hosts heard from within the node timeout, this one first.
    pub fn nodes(&self) -> Vec<NodeView> {
        let mut nodes = vec![NodeView {
            name: self.node.clone(),
            is_self: true,
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_secs: self.started.elapsed().as_secs(),
            last_seen_ms: 0,
            agents: self.handler.local_agents(),
        }];
        nodes.extend(self.others());
        nodes
    }

    /// The other hosts heard from within the node timeout, by name.
    fn others(&self) -> Vec<NodeView> {
        let timeout = self.settings.node_timeout();
        let heard = self.heard.lock().expect("fleet view lock");
        let mut others: Vec<NodeView> = heard
            .iter()
            .filter(|(name, heard)| **name != self.node && heard.at.elapsed() <= timeout)
            .map(|(name, heard)| NodeView {
                name: name.clone(),
                is_self: false,
                version: heard.announcement.version.clone(),
                uptime_secs: heard.announcement.uptime_secs,
                last_seen_ms: heard.at.elapsed().as_millis() as u64,
                agents: heard.announcement.agents.clone(),
            })
            .collect();
        others.sort_by(|a, b| a.name.cmp(&b.name));
        others
    }

    /// Leaves the fleet: stops serving and announcing.
    pub fn shutdown(&self) {
        for task in self.tasks.lock().expect("fleet tasks").drain(..) {
            task.abort();
        }
        for (_, task) in self.served.lock().expect("served subjects").drain() {
            task.abort();
        }
    }

    fn check_connected(&self) -> Result<(), ClusterError> {
        if self.is_connected() {
            Ok(())
        } else {
            Err(self.unavailable())
        }
    }

    fn unavailable(&self) -> ClusterError {
        ClusterError::Unavailable {
            url: self.url.clone(),
        }
    }

    /// Subscribes to the subjects of the agents served now and drops those
    /// of agents that are gone: deploys, removals and reloads reach the
    /// fleet within one heartbeat.
    async fn serve_current_agents(self: &Arc<Self>, agents: &[AgentInfo]) {
        let mut wanted: BTreeSet<(Route, Option<&'static str>)> = BTreeSet::new();
        for agent in agents {
            let route = Route::Agent(agent.name.clone());
            let group = Subjects::queue_group(&route);
            wanted.insert((route, group));
            for capability in &agent.capabilities {
                for route in [
                    Route::Capability(capability.clone()),
                    Route::Broadcast(capability.clone()),
                ] {
                    let group = Subjects::queue_group(&route);
                    wanted.insert((route, group));
                }
            }
        }
        let wanted: HashMap<Served, Route> = wanted
            .into_iter()
            .map(|(route, group)| ((self.subjects.route(&route), group), route))
            .collect();
        let missing: Vec<(Served, Route)> = {
            let mut served = self.served.lock().expect("served subjects");
            served.retain(|key, task| {
                let keep = wanted.contains_key(key) && !task.is_finished();
                if !keep {
                    task.abort();
                }
                keep
            });
            wanted
                .iter()
                .filter(|(key, _)| !served.contains_key(*key))
                .map(|(key, route)| (key.clone(), route.clone()))
                .collect()
        };
        for ((subject, group), route) in missing {
            let subscribed = match group {
                Some(group) => {
                    self.client
                        .queue_subscribe(subject.clone(), group.to_owned())
                        .await
                }
                None => self.client.subscribe(subject.clone()).await,
            };
            match subscribed {
                Ok(subscriber) => {
                    let task = tokio::spawn(serve_subject(Arc::downgrade(self), route, subscriber));
                    self.served
                        .lock()
                        .expect("served subjects")
                        .insert((subject, group), task);
                }
                Err(error) => tracing::warn!(%error, subject, "cannot serve a fleet subject"),
            }
        }
    }

    /// Answers one request from another host.
    async fn answer(self: Arc<Self>, route: Route, message: async_nats::Message) {
        let Some(reply_to) = message.reply.clone() else {
            return;
        };
        let reply = match serde_json::from_slice::<FleetRequest>(&message.payload) {
            // A broadcast reaches the sender too: it delivered locally.
            Ok(request) if matches!(route, Route::Broadcast(_)) && request.from_node == self.node => {
                return;
            }
            Ok(request) => match self.inflight.clone().try_acquire_owned() {
                Ok(_permit) => self.handler.handle(route, request).await,
                Err(_) => self.refusal(
                    429,
                    "queue_full",
                    "this fleet host is running [cluster] max_inflight requests from other hosts; retry shortly",
                    Some(1),
                ),
            },
            Err(error) => self.refusal(
                400,
                "bad_request",
                &format!("not a fleet request: {error}"),
                None,
            ),
        };
        let payload = serde_json::to_vec(&reply).expect("a fleet reply serializes");
        let published = match self.client.publish(reply_to.clone(), payload.into()).await {
            // Larger than the server's max_payload: the sender still gets
            // an answer, not a timeout.
            Err(error)
                if error.kind() == async_nats::client::PublishErrorKind::MaxPayloadExceeded =>
            {
                let refusal = self.refusal(
                    413,
                    "payload_too_large",
                    "the reply is larger than the fleet's NATS max_payload; ask for less, or raise max_payload on the NATS server",
                    None,
                );
                let payload = serde_json::to_vec(&refusal).expect("a fleet reply serializes");
                self.client.publish(reply_to, payload.into()).await
            }
            other => other,
        };
        if let Err(error) = published {
            tracing::warn!(%error, "cannot answer a fleet request");
        }
    }

    fn refusal(&self, status: u16, code: &str, message: &str, retry: Option<u32>) -> FleetReply {
        FleetReply {
            node: self.node.clone(),
            status,
            body: serde_json::json!({ "error": { "code": code, "message": message, "details": null } }),
            retry_after_secs: retry,
            reply_text: None,
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn decode(payload: &[u8]) -> Result<FleetReply, ClusterError> {
    serde_json::from_slice(payload).map_err(|e| ClusterError::Protocol(e.to_string()))
}

fn record_call(result: &Result<FleetReply, ClusterError>, started: Instant) {
    let metrics = crate::metrics::metrics();
    let (node, outcome) = match result {
        Ok(reply) if reply.status < 400 => (reply.node.as_str(), "ok"),
        Ok(reply) => (reply.node.as_str(), "error"),
        Err(ClusterError::NoResponders) => ("none", "no_responders"),
        Err(ClusterError::Timeout(_)) => ("none", "timeout"),
        Err(ClusterError::Unavailable { .. }) => ("none", "unavailable"),
        Err(ClusterError::Protocol(_) | ClusterError::TooLarge) => ("none", "error"),
    };
    metrics
        .cluster_remote_calls
        .with_label_values(&[node, outcome])
        .inc();
    if node != "none" {
        metrics
            .cluster_remote_call_duration
            .with_label_values(&[node])
            .observe(started.elapsed().as_secs_f64());
    }
}

/// Reads one served subject until the subscription ends, answering each
/// request in its own task.
async fn serve_subject(
    fleet: std::sync::Weak<Fleet>,
    route: Route,
    mut subscriber: async_nats::Subscriber,
) {
    while let Some(message) = subscriber.next().await {
        let Some(fleet) = fleet.upgrade() else {
            break;
        };
        tokio::spawn(fleet.answer(route.clone(), message));
    }
}

/// Announces this host and its agents every heartbeat, and keeps the
/// served subjects in step with the agents.
async fn heartbeat(fleet: std::sync::Weak<Fleet>) {
    let Some(interval) = fleet.upgrade().map(|f| f.settings.heartbeat_interval) else {
        return;
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(fleet) = fleet.upgrade() else {
            break;
        };
        let agents = fleet.handler.local_agents();
        fleet.serve_current_agents(&agents).await;
        let announcement = Announcement {
            node: fleet.node.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_secs: fleet.started.elapsed().as_secs(),
            agents,
        };
        let payload = serde_json::to_vec(&announcement).expect("an announcement serializes");
        // While disconnected the client would buffer stale heartbeats.
        if fleet.is_connected()
            && let Err(error) = fleet
                .client
                .publish(fleet.subjects.heartbeat(), payload.into())
                .await
        {
            tracing::debug!(%error, "cannot send the fleet heartbeat");
        }
        crate::metrics::metrics()
            .cluster_nodes
            .set(fleet.others().len() as i64 + 1);
    }
}

/// Keeps the fleet view: who announced what, and when.
async fn listen_for_heartbeats(fleet: std::sync::Weak<Fleet>) {
    let subscribed = match fleet.upgrade() {
        Some(fleet) => fleet.client.subscribe(fleet.subjects.heartbeat()).await,
        None => return,
    };
    let mut subscriber = match subscribed {
        Ok(subscriber) => subscriber,
        Err(error) => {
            tracing::error!(%error, "cannot hear the fleet's heartbeats; the fleet view stays empty");
            return;
        }
    };
    while let Some(message) = subscriber.next().await {
        let Some(fleet) = fleet.upgrade() else {
            break;
        };
        let Ok(announcement) = serde_json::from_slice::<Announcement>(&message.payload) else {
            tracing::debug!("ignored a heartbeat that is not an announcement");
            continue;
        };
        let mut heard = fleet.heard.lock().expect("fleet view lock");
        if !heard.contains_key(&announcement.node) && announcement.node != fleet.node {
            tracing::info!(node = %announcement.node, agents = announcement.agents.len(), "a host joined the fleet");
        }
        // Forget hosts long gone, so the map is bounded by the live fleet.
        let forget = fleet.settings.node_timeout() * 10;
        heard.retain(|_, heard| heard.at.elapsed() <= forget);
        heard.insert(
            announcement.node.clone(),
            Heard {
                announcement,
                at: Instant::now(),
            },
        );
    }
}

/// A URL (NATS or libsql) without its user and password or token.
pub fn redact(url: &str) -> String {
    url.split(',')
        .map(|one| match one.rsplit_once('@') {
            Some((scheme_and_user, host)) => match scheme_and_user.split_once("://") {
                Some((scheme, _)) => format!("{scheme}://***@{host}"),
                None => format!("***@{host}"),
            },
            None => one.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_messages() {
        assert_eq!(
            redact("nats://alice:s3cret@10.0.0.2:4222,nats://tok@b:4222"),
            "nats://***@10.0.0.2:4222,nats://***@b:4222"
        );
        assert_eq!(redact("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    }
}
