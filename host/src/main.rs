use clap::Parser;
use tracing_subscriber::EnvFilter;

use caxton::cli::{Cli, Command};

fn block_on(task: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(task)
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("CAXTON_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => args
            .config()
            .and_then(|config| block_on(caxton::server::serve(config))),
        Command::Embed(args) => args.run(),
        Command::Memory(command) => block_on(command.run()),
        Command::Auth(caxton::cli::AuthCommand::Token(args)) => args.run(),
        Command::Benchmark(caxton::cli::BenchmarkCommand::Memory(args)) => block_on(args.run()),
        Command::Storage(caxton::cli::StorageCommand::Maintenance(args)) => {
            block_on(args.maintenance())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            match error.downcast_ref::<caxton::cli::client::ClientError>() {
                Some(client) => std::process::ExitCode::from(client.exit_code()),
                None => std::process::ExitCode::FAILURE,
            }
        }
    }
}
