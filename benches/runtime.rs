//! Criterion micro-benchmarks of the component runtime: one pooled
//! new-store + instantiate + call + drop, for the echo agent and the csv tool.

#[path = "../tests/support/plugins.rs"]
mod plugins;

use caxton::config::WasmRuntimeConfig;
use caxton::runtime::{Message, Performative, PluginSpec, Runtime};
use criterion::{Criterion, criterion_group, criterion_main};

fn message(content: &str) -> Message {
    Message {
        id: "bench".into(),
        performative: Performative::Request,
        sender: "bench".into(),
        receiver: Some("echo".into()),
        capability: None,
        conversation_id: None,
        reply_with: None,
        in_reply_to: None,
        content: content.into(),
    }
}

fn runtime_benches(c: &mut Criterion) {
    let cache = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(&WasmRuntimeConfig::default(), cache.path().into()).unwrap();
    let limits = runtime.default_limits();
    let grants = vec!["log".to_owned()];
    let echo_path = plugins::component("echo");
    let echo = runtime
        .load_agent(&PluginSpec {
            name: "echo",
            component: &echo_path,
            wasm: None,
            grants: &grants,
            limits,
        })
        .unwrap();
    let csv_path = plugins::component("csv_parser");
    let csv = runtime
        .load_tool(&PluginSpec {
            name: "csv_parser",
            component: &csv_path,
            wasm: None,
            grants: &[],
            limits,
        })
        .unwrap();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    c.bench_function("echo: instantiate + handle", |b| {
        b.iter(|| {
            let outcome = tokio.block_on(runtime.call_agent(
                &echo,
                message(r#"{"text":"hello"}"#),
                &caxton::runtime::HostServices::none(),
                None,
            ));
            outcome.result.unwrap().unwrap()
        })
    });

    let input = r#"{"csv":"name,age\nann,31\nbob,45\ncid,29\n"}"#.to_owned();
    c.bench_function("csv_parser: instantiate + invoke (3 rows)", |b| {
        b.iter(|| {
            let outcome = tokio.block_on(runtime.invoke_tool(&csv, input.clone(), None));
            outcome.result.unwrap().unwrap()
        })
    });
}

criterion_group!(benches, runtime_benches);
criterion_main!(benches);
