use clap::Parser;
use tracing_subscriber::EnvFilter;

use caxton::cli::{Cli, Command};

fn block_on(task: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(task)
}

/// The server's runtime, sized by `[server] worker_threads` and
/// `max_blocking_threads`.
fn serve(config: caxton::config::Config) -> anyhow::Result<()> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = config.server.worker_threads {
        builder.worker_threads(threads);
    }
    builder
        .max_blocking_threads(config.server.max_blocking_threads)
        .enable_all()
        .build()?
        .block_on(caxton::server::serve(config))
}

/// The log filter: `CAXTON_LOG`, else `info`. libsql's replication client
/// logs every handshake with the memory primary (each sync and write) at
/// info and millisecond fetches as warnings; its failures reach us as
/// errors we report ourselves, so it is held to errors unless `CAXTON_LOG`
/// names it.
fn log_filter() -> EnvFilter {
    let asked = std::env::var("CAXTON_LOG").ok();
    let filter = asked
        .as_deref()
        .and_then(|text| EnvFilter::try_new(text).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    if asked.is_some_and(|text| text.contains("libsql")) {
        return filter;
    }
    filter.add_directive(
        "libsql::replication=error"
            .parse()
            .expect("a valid directive"),
    )
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => args.config().and_then(serve),
        Command::Config(command) => command.run(),
        Command::Embed(args) => args.run(),
        Command::Memory(command) => block_on(command.run()),
        Command::Agents(command) => block_on(command.run()),
        Command::Cluster(command) => block_on(command.run()),
        Command::Mcp(command) => block_on(command.run()),
        Command::Models(command) => block_on(command.run()),
        Command::Service(command) => command.run(),
        Command::Send(args) => block_on(args.run()),
        Command::Conversations(command) => block_on(command.run()),
        Command::System(command) => block_on(command.run()),
        Command::Alerts(command) => block_on(command.run()),
        Command::Check(command) => block_on(command.run()),
        Command::Health(server) => block_on(caxton::cli::health(&server)),
        Command::Auth(caxton::cli::AuthCommand::Token(args)) => args.run(),
        #[cfg(feature = "benchmark")]
        Command::Benchmark(caxton::cli::BenchmarkCommand::Memory(args)) => block_on(args.run()),
        #[cfg(feature = "benchmark")]
        Command::Benchmark(caxton::cli::BenchmarkCommand::Agents(args)) => block_on(args.run()),
        #[cfg(feature = "benchmark")]
        Command::Benchmark(caxton::cli::BenchmarkCommand::Faults(args)) => block_on(args.run()),
        #[cfg(feature = "benchmark")]
        Command::Benchmark(other) => block_on(other.run_other()),
        Command::Storage(caxton::cli::StorageCommand::Maintenance(args)) => block_on(args.run()),
        Command::Storage(caxton::cli::StorageCommand::Optimize(args)) => block_on(args.run()),
        Command::Storage(caxton::cli::StorageCommand::Analyze(args)) => block_on(args.run()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            if error
                .downcast_ref::<caxton::cli::operator::CheckFailed>()
                .is_some()
            {
                return std::process::ExitCode::from(5);
            }
            match error.downcast_ref::<caxton::cli::client::ClientError>() {
                Some(client) => std::process::ExitCode::from(client.exit_code()),
                None => std::process::ExitCode::FAILURE,
            }
        }
    }
}
