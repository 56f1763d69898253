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
    /// Run the operator against the cluster of the current kubeconfig (KUBECONFIG or in-cluster).
    Run(RunArgs),
    /// Write the CRDs generated from the API types (to stdout, or one file per CRD into --out).
    Crdgen {
        /// Directory to write `<crd-name>.yaml` files into.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Period of the drift check of converged objects, in seconds (jittered ±10 %).
    #[arg(long, env = "MCE_RESYNC_SECONDS", default_value_t = 300)]
    resync_seconds: u64,
    /// Period of the CloudProviders' availability probe, in seconds.
    #[arg(long, env = "MCE_PROBE_SECONDS", default_value_t = 60)]
    probe_seconds: u64,
    /// Objects of one kind reconciled at once.
    #[arg(long, env = "MCE_CONCURRENCY", default_value_t = 64)]
    concurrency: u16,
    /// Log as JSON lines.
    #[arg(long, env = "MCE_LOG_JSON")]
    log_json: bool,
}

async fn run_operator(args: RunArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MCE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    if args.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let client = kube::Client::try_default().await?;
    let config = multicloud_ecs::controller::OperatorConfig {
        resync: std::time::Duration::from_secs(args.resync_seconds),
        probe_interval: std::time::Duration::from_secs(args.probe_seconds),
        concurrency: args.concurrency,
        failpoint: std::env::var("MCE_FAILPOINT")
            .ok()
            .filter(|f| !f.is_empty()),
    };
    multicloud_ecs::controller::run(client, config).await?;
    Ok(())
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
        Command::Run(args) => run_operator(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
