//! The operator process: HTTP endpoints (`/metrics`, `/healthz`, `/readyz`), leader election on a
//! `coordination.k8s.io` Lease (or, with `--shards N`, shard leases: see
//! [`crate::controller::shard`]), signal handling, and the controllers while this process leads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::controller::shard::{self, Shards};
use crate::controller::{self, OperatorConfig};
use crate::metrics::metrics;

/// Leader election settings.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    pub namespace: String,
    pub lease_name: String,
    /// Unique per process (the pod name in a cluster).
    pub identity: String,
    /// Seconds a lease stays valid without renewal; the takeover time after a crash.
    pub lease_seconds: u64,
}

/// Sharding settings (`--shards N`, N > 1): every replica runs the controllers at once and
/// reconciles the namespaces of the shards it holds.
#[derive(Clone, Debug)]
pub struct Sharding {
    pub shards: u32,
    /// Namespace, set name (`<lease_name>-shard-<i>`), identity and duration of the leases.
    pub leases: shard::LeaseConfig,
}

#[derive(Clone, Debug)]
pub struct OperatorOptions {
    pub config: OperatorConfig,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; None: not served.
    pub http_addr: Option<SocketAddr>,
    pub leader_election: Option<LeaderElection>,
    /// Takes precedence over `leader_election`.
    pub sharding: Option<Sharding>,
}

#[derive(thiserror::Error, Debug)]
pub enum OperatorError {
    #[error("cannot serve HTTP on {0}: {1}")]
    Http(SocketAddr, std::io::Error),
    #[error("leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    #[error(transparent)]
    Controller(#[from] controller::Error),
}

/// Shared health state of the process.
#[derive(Default)]
struct Health {
    /// Caches synced and either leading or standing by (sharded: caches synced).
    ready: AtomicBool,
}

/// Resolves once SIGTERM or SIGINT arrives.
/// How long in-flight reconciles may finish once the operator is told to stop. Past it they are
/// dropped — to the cloud like a crash, which every step survives (persisted ClientTokens, UID
/// tags) — so a reconcile stuck in cloud retries never delays the hand-over of the lease.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the controllers until `stop` resolves, then gives them [`DRAIN_TIMEOUT`] to finish.
async fn run_controllers(
    client: Client,
    config: OperatorConfig,
    shards: Arc<Shards>,
    stop: Shared<BoxFuture<'static, ()>>,
) -> Result<(), controller::Error> {
    let controllers = controller::run(client, config, shards, stop.clone());
    tokio::pin!(controllers);
    tokio::select! {
        result = &mut controllers => result,
        () = async {
            stop.await;
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } => {
            warn!(timeout_s = DRAIN_TIMEOUT.as_secs(), "reconciles still running after the stop; dropping them");
            Ok(())
        }
    }
}

fn shutdown_signal() -> Shared<BoxFuture<'static, ()>> {
    async {
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(error = %e, "cannot listen for SIGTERM");
                        let _ = tokio::signal::ctrl_c().await;
                        return;
                    }
                };
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        info!("shutdown requested");
    }
    .boxed()
    .shared()
}

async fn serve_http(addr: SocketAddr, health: Arc<Health>) -> Result<(), OperatorError> {
    let app = Router::new()
        .route("/metrics", get(|| async { metrics().encode() }))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(health): State<Arc<Health>>| async move {
                if health.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }),
        )
        .with_state(health);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| OperatorError::Http(addr, e))?;
    info!(%addr, "serving /metrics, /healthz, /readyz");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            error!(error = %e, "HTTP server stopped");
        }
    });
    Ok(())
}

/// Runs the operator until a shutdown signal (or, with leader election, a lost lease).
pub async fn run(client: Client, options: OperatorOptions) -> Result<(), OperatorError> {
    mce_cloud::observe::set_call_observer(crate::metrics::record_cloud_call);
    let health = Arc::new(Health::default());
    if let Some(addr) = options.http_addr {
        serve_http(addr, health.clone()).await?;
    }
    let shutdown = shutdown_signal();

    if let Some(sharding) = options.sharding {
        return run_sharded(client, options.config, sharding, health, shutdown).await;
    }

    let Some(election) = options.leader_election else {
        health.ready.store(true, Ordering::Relaxed);
        metrics().leader.set(1);
        metrics().shards_held.set(1);
        run_controllers(client, options.config, Default::default(), shutdown).await?;
        return Ok(());
    };

    let manager = Arc::new(
        LeaseManagerBuilder::new(client.clone(), &election.lease_name)
            .with_namespace(&election.namespace)
            .with_identity(&election.identity)
            .with_duration(election.lease_seconds)
            .with_grace((election.lease_seconds / 3).max(1))
            .build()
            .await?,
    );
    // Standing by is a healthy, ready state: the pod serves metrics and waits for the lease.
    health.ready.store(true, Ordering::Relaxed);
    info!(identity = %election.identity, lease = %election.lease_name, "waiting for the leader lease");
    loop {
        tokio::select! {
            locked = manager.changed() => if locked? { break },
            _ = shutdown.clone() => return Ok(()),
        }
    }
    info!(identity = %election.identity, "leader lease acquired; starting controllers");
    metrics().leader.set(1);
    metrics().shards_held.set(1);

    // Keep renewing; a lost lease stops the controllers (and the process, to start clean).
    let (lost_tx, lost_rx) = watch::channel(false);
    let renewer = {
        let manager = manager.clone();
        tokio::spawn(async move {
            loop {
                match manager.changed().await {
                    Ok(true) => continue,
                    Ok(false) => warn!("leader lease lost"),
                    Err(e) => error!(error = %e, "leader lease renewal failed"),
                }
                let _ = lost_tx.send(true);
                return;
            }
        })
    };
    let lost = {
        let mut lost_rx = lost_rx.clone();
        async move {
            let _ = lost_rx.wait_for(|lost| *lost).await;
        }
    };
    let stop = futures::future::select(shutdown.clone(), Box::pin(lost))
        .map(|_| ())
        .boxed()
        .shared();
    let result = run_controllers(client, options.config, Default::default(), stop).await;
    renewer.abort();
    metrics().leader.set(0);
    metrics().shards_held.set(0);
    let lease_lost = *lost_rx.borrow();
    if !lease_lost {
        // Graceful shutdown: hand the lease over now instead of after it expires.
        if let Err(e) = manager.release().await {
            warn!(error = %e, "could not release the leader lease");
        } else {
            info!("leader lease released");
        }
    }
    result?;
    if lease_lost {
        return Err(OperatorError::Controller(controller::Error::Waiting(
            "leader lease lost".into(),
        )));
    }
    // Give in-flight log lines a moment.
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}

/// Sharded: the controllers run at once (no leader to wait for) and reconcile only what the
/// shard leases held allow; ready once the caches are synced. On a graceful stop the controllers
/// drain first, then the leases are released so other replicas take the shards at once.
async fn run_sharded(
    client: Client,
    config: OperatorConfig,
    sharding: Sharding,
    health: Arc<Health>,
    shutdown: Shared<BoxFuture<'static, ()>>,
) -> Result<(), OperatorError> {
    let shards = Arc::new(Shards::new(sharding.shards, sharding.leases.lease));
    metrics().shards_held.set(0);
    let ready = {
        let (shards, health) = (shards.clone(), health.clone());
        tokio::spawn(async move {
            shards.wait_synced().await;
            health.ready.store(true, Ordering::Relaxed);
        })
    };
    info!(
        identity = %sharding.leases.identity,
        shards = sharding.shards,
        leases = %sharding.leases.lease_name,
        "sharded: starting controllers"
    );
    // The lease loop stops only after the controllers: it keeps renewing while they drain.
    let (stop_leases, leases_stopped) = watch::channel(false);
    let leases = tokio::spawn(shard::run_leases(
        client.clone(),
        sharding.leases,
        shards.clone(),
        leases_stopped,
    ));
    let result = run_controllers(client, config, shards, shutdown).await;
    ready.abort();
    let _ = stop_leases.send(true);
    if let Err(e) = leases.await {
        error!(error = %e, "shard lease loop failed");
    }
    result?;
    // Give in-flight log lines a moment.
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}
