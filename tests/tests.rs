//! The integration tests: one binary (one link step on a 2-core machine,
//! as ripgrep does), one module per area, and the shared harness in
//! `support` (a real `caxton serve` on loopback, real plugins, real store).

mod support;

mod agents;
mod appliance;
mod clients;
mod embeddings;
mod embeddings_api;
mod fleet;
mod footprint;
mod hardening;
mod history;
mod hostile;
mod http_client;
mod llm;
mod mcp;
mod mcp_servers;
mod memory;
mod messaging;
mod openapi;
mod operator;
mod plugin_kit;
mod profiles;
mod server;
mod status_page;
mod storage;
mod wit_reference;
mod wit_versions;
