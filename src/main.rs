//! `multicloud-ecs`: the operator binary and its companion subcommands.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "multicloud-ecs", version, about = "One declarative API for virtual machines across clouds")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the local cloud emulator (Alibaba Cloud ECS + VPC APIs) on loopback.
    Emulator(multicloud_ecs::cloud::emulator::EmulatorArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Emulator(args) => multicloud_ecs::cloud::emulator::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
