//! `multicloud-ecs`: the operator binary and its companion subcommands.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "multicloud-ecs",
    version,
    about = "One declarative API for virtual machines across clouds"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the local cloud emulator (Alibaba Cloud ECS + VPC APIs) on loopback.
    Emulator(multicloud_ecs::cloud::emulator::EmulatorArgs),
    /// Write the CRDs generated from the API types (to stdout, or one file per CRD into --out).
    Crdgen {
        /// Directory to write `<crd-name>.yaml` files into.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

fn crdgen(out: Option<std::path::PathBuf>) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    for (name, yaml) in multicloud_ecs::api::crd_files() {
        match &out {
            Some(dir) => std::fs::write(dir.join(name), yaml)?,
            None => print!("---\n{yaml}"),
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Emulator(args) => multicloud_ecs::cloud::emulator::run(args).await,
        Command::Crdgen { out } => crdgen(out),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
