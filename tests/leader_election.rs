//! Leader election with two real operator processes against a real control plane: exactly one
//! holds the `coordination.k8s.io` Lease and reconciles; SIGKILL it and the other takes over
//! within the lease duration (the measured takeover time is printed); SIGTERM the new leader and
//! the Lease is released at once.
//!
//! The operators run against this test process's private control plane
//! (`mce_testkit::control_plane::private`): a leader reconciles every object of its cluster, so it
//! must not share one with other tests' operators. No cloud is needed: the operator holds a lease without one, and the reconcile that
//! shows who works is a CloudProvider whose credentials Secret does not exist.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use mce_testkit::control_plane;
use mce_testkit::crds::install_crds;
use mce_testkit::manifests::{ar, dynamic};
use mce_testkit::operator;
use mce_testkit::operator_env::admin_client;
use mce_testkit::paths::{Build, operator_bin, tmp_dir};
use mce_testkit::process::{Process, free_port, http_get};
use mce_testkit::wait::tail;
use serde_json::json;

const LEASE_SECONDS: u64 = 6;
/// Takeover must happen within the lease duration plus this margin (polling, process start-up of
/// nothing: the stand-by is already running and watching).
const TAKEOVER_MARGIN: Duration = Duration::from_secs(4);
const LEASE_NAMESPACE: &str = "default";

/// One `multicloud-ecs run --leader-election` process. Killed when dropped.
struct Op {
    identity: String,
    port: u16,
    process: Process,
}

impl Op {
    fn start(identity: &str, lease_name: &str) -> Self {
        let port = free_port();
        let log = tmp_dir("leader-election-logs").join(format!("{lease_name}-{identity}.log"));
        let mut cmd = operator::command(
            &operator_bin(Build::IfMissing),
            &control_plane::private().kubeconfig,
        );
        cmd.args(["--leader-election", "--lease-seconds"])
            .arg(LEASE_SECONDS.to_string())
            .args(["--lease-name", lease_name])
            .args(["--lease-namespace", LEASE_NAMESPACE])
            .args(["--identity", identity])
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--resync-seconds", "5", "--probe-seconds", "5"])
            .args(["--log-json", "--log-level", "info,kube=warn"]);
        Self {
            identity: identity.to_string(),
            port,
            process: Process::spawn("operator", cmd, log),
        }
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.port, path, Duration::from_secs(2)).await.ok()
    }

    /// `multicloud_ecs_leader` from /metrics (None: not serving).
    async fn leader_gauge(&self) -> Option<i64> {
        let (_, text) = self.get("/metrics").await?;
        metric(&text, "multicloud_ecs_leader")
    }

    /// Reconciles of a controller from /metrics (0 if none was recorded).
    async fn reconciles(&self, controller: &str) -> Option<i64> {
        let (_, text) = self.get("/metrics").await?;
        Some(
            metric(
                &text,
                &format!("multicloud_ecs_reconciles_total{{controller=\"{controller}\"}}"),
            )
            .unwrap_or(0),
        )
    }

    fn logs(&self) -> String {
        tail(&self.process.logs(), 30)
    }
}

/// The value of a sample line `name value` in Prometheus text format.
fn metric(text: &str, name: &str) -> Option<i64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(' ')?;
        rest.split_whitespace()
            .next()?
            .parse::<f64>()
            .ok()
            .map(|v| v as i64)
    })
}

async fn holder(leases: &Api<Lease>, name: &str) -> Option<String> {
    leases
        .get_opt(name)
        .await
        .expect("get Lease")
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

fn dump(ops: &[&Op]) -> String {
    ops.iter()
        .map(|op| {
            format!(
                "--- {} (log {}) ---\n{}",
                op.identity,
                op.process.log.display(),
                op.logs()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn one_leader_reconciles_and_a_stand_by_takes_over_then_a_graceful_stop_releases() {
    let client = admin_client().await;
    install_crds(&client).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let lease_name = format!("mce-leader-test-{:08x}", rand::random::<u32>());

    // A CloudProvider: whoever leads reconciles it (its Secret is missing, which is fine).
    let provider_name = format!("leader-test-{:08x}", rand::random::<u32>());
    let providers: Api<kube::api::DynamicObject> =
        Api::all_with(client.clone(), &ar::<multicloud_ecs::api::CloudProvider>());
    providers
        .create(
            &PostParams::default(),
            &dynamic(json!({
                "apiVersion": "ecs.multicloud.io/v1alpha1",
                "kind": "CloudProvider",
                "metadata": {"name": provider_name},
                "spec": {
                    "type": "ALIYUN",
                    "code": format!("L{:08X}", rand::random::<u32>()),
                    "credentialsSecretRef": {"name": "absent", "namespace": "default"},
                    "endpoint": "http://127.0.0.1:9",
                },
            })),
        )
        .await
        .expect("create CloudProvider");

    let mut a = Op::start("op-a", &lease_name);
    let mut b = Op::start("op-b", &lease_name);

    // Exactly one leads; both are ready (a stand-by is ready: it serves and waits).
    let deadline = Instant::now() + Duration::from_secs(60);
    let first_is_a = loop {
        let (ga, gb) = (a.leader_gauge().await, b.leader_gauge().await);
        let ready = a.get("/readyz").await.map(|r| r.0) == Some(200)
            && b.get("/readyz").await.map(|r| r.0) == Some(200);
        match (ga, gb) {
            (Some(1), Some(0)) if ready => break true,
            (Some(0), Some(1)) if ready => break false,
            (Some(1), Some(1)) => panic!("two leaders at once\n{}", dump(&[&a, &b])),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "no single leader within 60 s (gauges {ga:?}/{gb:?})\n{}",
            dump(&[&a, &b])
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (leader, standby) = if first_is_a {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert_eq!(
        holder(&leases, &lease_name).await.as_deref(),
        Some(leader.identity.as_str()),
        "the Lease holder is the process that reports leader 1"
    );
    assert_eq!(leader.get("/healthz").await.map(|r| r.0), Some(200));

    // Only the leader reconciles: it reconciles the CloudProvider; over several renewals the
    // stand-by reconciles nothing and stays a stand-by.
    let deadline = Instant::now() + Duration::from_secs(30);
    while leader.reconciles("CloudProvider").await.unwrap_or(0) == 0 {
        assert!(
            Instant::now() < deadline,
            "the leader did not reconcile the CloudProvider\n{}",
            dump(&[&*leader, &*standby])
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let watch_until = Instant::now() + Duration::from_secs(LEASE_SECONDS + 2);
    while Instant::now() < watch_until {
        assert_eq!(
            standby.leader_gauge().await,
            Some(0),
            "stand-by stays a stand-by"
        );
        assert_eq!(
            leader.leader_gauge().await,
            Some(1),
            "leader keeps the lease"
        );
        assert_eq!(
            standby.reconciles("CloudProvider").await,
            Some(0),
            "a stand-by must not reconcile"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        standby.reconciles("EcsInstance").await,
        Some(0),
        "a stand-by must not reconcile"
    );

    // SIGKILL the leader: no release; the stand-by takes over once the lease expires.
    let killed = leader.identity.clone();
    leader.process.kill();
    let t0 = Instant::now();
    let takeover = loop {
        if standby.leader_gauge().await == Some(1) {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no takeover within 60 s after killing {killed}\n{}",
            dump(&[&*standby])
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "leader election: takeover {:.2} s after SIGKILL of the leader (lease {LEASE_SECONDS} s)",
        takeover.as_secs_f64()
    );
    assert!(
        takeover <= Duration::from_secs(LEASE_SECONDS) + TAKEOVER_MARGIN,
        "takeover took {takeover:?}, more than the lease duration ({LEASE_SECONDS} s) + {TAKEOVER_MARGIN:?}"
    );
    assert_eq!(
        holder(&leases, &lease_name).await.as_deref(),
        Some(standby.identity.as_str())
    );
    // The new leader does the work now.
    let deadline = Instant::now() + Duration::from_secs(30);
    while standby.reconciles("CloudProvider").await.unwrap_or(0) == 0 {
        assert!(
            Instant::now() < deadline,
            "the new leader did not reconcile\n{}",
            dump(&[&*standby])
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // SIGTERM the new leader: it stops its controllers and releases the Lease right away.
    standby.process.sigterm();
    let t1 = Instant::now();
    let released = loop {
        if holder(&leases, &lease_name).await.is_none() {
            break t1.elapsed();
        }
        assert!(
            t1.elapsed() < Duration::from_secs(LEASE_SECONDS),
            "the Lease was not released within the lease duration after SIGTERM\n{}",
            dump(&[&*standby])
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "leader election: Lease released {:.2} s after SIGTERM",
        released.as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = standby.process.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the operator did not exit after SIGTERM\n{}",
            dump(&[&*standby])
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        status.success(),
        "graceful shutdown exits 0, got {status}\n{}",
        dump(&[&*standby])
    );
    assert!(
        standby.process.logs().contains("leader lease released"),
        "{}",
        dump(&[&*standby])
    );

    let _ = leases.delete(&lease_name, &DeleteParams::default()).await;
    let _ = providers
        .delete(&provider_name, &DeleteParams::default())
        .await;
}
