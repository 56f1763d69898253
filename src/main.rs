//! `multicloud-ecs`: the operator binary (`run`), its CRD generator (`crdgen`) and the list of
//! its condition/event reasons (`reasons`). The local cloud emulator is a binary of its own
//! (`multicloud-ecs-emulator`), never part of this one.

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
    /// Run the operator against the cluster of the current kubeconfig (KUBECONFIG or in-cluster).
    Run(RunArgs),
    /// Write the CRDs generated from the API types (to stdout, or one file per CRD into --out).
    Crdgen {
        /// Directory to write `<crd-name>.yaml` files into.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Print every condition/event reason as JSON: `[{"reason", "terminal", "progress"}]`
    /// (tools that classify the operator's reasons, such as health checks, test against it).
    Reasons,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Period of the drift check of converged objects, in seconds (jittered ±10 %).
    #[arg(long, env = "MCE_RESYNC_SECONDS", default_value_t = 300)]
    resync_seconds: u64,
    /// A Ready instance's EIP and ports are compared with the cloud every this many resyncs; the
    /// resyncs between read only the instance (one DescribeInstances per up to 100 instances).
    /// A stopped or deleted instance or a detached EIP is seen within one resync, a changed
    /// port rule or EIP bandwidth within this many.
    #[arg(long, env = "MCE_FULL_CHECK_EVERY", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    full_check_every: u32,
    /// Period of the CloudProviders' availability probe, in seconds.
    #[arg(long, env = "MCE_PROBE_SECONDS", default_value_t = 60)]
    probe_seconds: u64,
    /// Objects of one kind reconciled at once.
    #[arg(long, env = "MCE_CONCURRENCY", default_value_t = 64)]
    concurrency: u16,
    /// Log as JSON lines.
    #[arg(long, env = "MCE_LOG_JSON")]
    log_json: bool,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `info,multicloud_ecs=debug`.
    #[arg(long, env = "MCE_LOG", default_value = "info,kube=warn")]
    log_level: String,
    /// Serve /metrics, /healthz and /readyz on this address (e.g. 0.0.0.0:8080).
    #[arg(long, env = "MCE_HTTP_ADDR")]
    http_addr: Option<std::net::SocketAddr>,
    /// Reconcile only while holding a coordination.k8s.io Lease (for several replicas).
    #[arg(long, env = "MCE_LEADER_ELECTION")]
    leader_election: bool,
    /// Namespace of the leader Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, env = "MCE_LEASE_NAME", default_value = "multicloud-ecs-leader")]
    lease_name: String,
    /// Seconds the lease stays valid without renewal (the takeover time after a crash).
    #[arg(long, env = "MCE_LEASE_SECONDS", default_value_t = 15)]
    lease_seconds: u64,
    /// Identity of this process in the Lease (defaults to POD_NAME, else host name and pid).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Split namespaces into this many shards, each owned by one replica at a time through the
    /// Lease `<lease-name>-shard-<i>` in the lease namespace. Every replica runs the controllers
    /// and reconciles the namespaces of the shards it holds (cluster-scoped objects: shard 0);
    /// replicas balance the shards among themselves. 1: not sharded (see --leader-election).
    #[arg(long, env = "MCE_SHARDS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    shards: u32,
}

async fn run_operator(args: RunArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)?;
    if args.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let client = kube::Client::try_default().await?;
    let identity = args.identity.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    let options = multicloud_ecs::operator::OperatorOptions {
        config: multicloud_ecs::controller::OperatorConfig {
            resync: std::time::Duration::from_secs(args.resync_seconds),
            probe_interval: std::time::Duration::from_secs(args.probe_seconds),
            concurrency: args.concurrency,
            full_check_every: args.full_check_every,
            failpoint: std::env::var("MCE_FAILPOINT")
                .ok()
                .filter(|f| !f.is_empty()),
            identity: Some(identity.clone()),
        },
        http_addr: args.http_addr,
        // Sharded replicas need no leader: the shard leases replace the leader Lease.
        sharding: (args.shards > 1).then(|| multicloud_ecs::operator::Sharding {
            shards: args.shards,
            leases: multicloud_ecs::controller::shard::LeaseConfig {
                namespace: args.lease_namespace.clone(),
                lease_name: args.lease_name.clone(),
                identity: identity.clone(),
                lease: std::time::Duration::from_secs(args.lease_seconds.max(1)),
            },
        }),
        leader_election: (args.leader_election && args.shards <= 1).then_some(
            multicloud_ecs::operator::LeaderElection {
                namespace: args.lease_namespace,
                lease_name: args.lease_name,
                identity,
                lease_seconds: args.lease_seconds,
            },
        ),
    };
    multicloud_ecs::operator::run(client, options).await?;
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

fn reasons() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use multicloud_ecs::api::Reason;
    let list: Vec<serde_json::Value> = Reason::ALL
        .iter()
        .map(|r| {
            serde_json::json!({
                "reason": r.as_str(),
                "terminal": r.is_terminal(),
                "progress": r.is_progress(),
            })
        })
        .collect();
    // Written, not printed: a closed pipe is an error to report, not a panic.
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &list)?;
    std::io::Write::write_all(&mut out, b"\n")?;
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crdgen { out } => crdgen(out),
        Command::Reasons => reasons(),
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
