//! `multicloud-ecs-emulator`: the local cloud on loopback, for tests, benchmarks and the demo.
//! A binary of its own so that the operator (and its image) never contains it.

use clap::Parser;

/// Serve the local cloud emulator (Alibaba Cloud ECS + VPC APIs) on loopback.
#[derive(Parser)]
#[command(name = "multicloud-ecs-emulator", version)]
struct Cli {
    #[command(flatten)]
    args: mce_emulator::EmulatorArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match mce_emulator::run(cli.args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
