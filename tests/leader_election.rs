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
use mce_testkit::crds::install_crds;
use mce_testkit::manifests::{ar, dynamic};
use mce_testkit::operator::{LEASE_NAMESPACE, LeaseOperator, dump, lease_holder, metric};
use mce_testkit::operator_env::admin_client;
use serde_json::json;

const LEASE_SECONDS: u64 = 6;
/// Takeover must happen within the lease duration plus this margin (polling, process start-up of
/// nothing: the stand-by is already running and watching).
const TAKEOVER_MARGIN: Duration = Duration::from_secs(4);
/// One `multicloud-ecs run --leader-election` process. Killed when dropped.
type Op = LeaseOperator;

fn start(identity: &str, lease_name: &str) -> Op {
    LeaseOperator::start(
        identity,
        lease_name,
        LEASE_SECONDS,
        &["--leader-election"],
        "leader-election-logs",
    )
}

/// `multicloud_ecs_leader` from /metrics (None: not serving).
async fn leader_gauge(op: &Op) -> Option<i64> {
    op.metric("multicloud_ecs_leader").await
}

/// Reconciles of a controller from /metrics (0 if none was recorded).
async fn reconciles(op: &Op, controller: &str) -> Option<i64> {
    let (_, text) = op.get("/metrics").await?;
    Some(
        metric(
            &text,
            &format!("multicloud_ecs_reconciles_total{{controller=\"{controller}\"}}"),
        )
        .unwrap_or(0),
    )
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

    let mut a = start("op-a", &lease_name);
    let mut b = start("op-b", &lease_name);

    // Exactly one leads; both are ready (a stand-by is ready: it serves and waits).
    let deadline = Instant::now() + Duration::from_secs(60);
    let first_is_a = loop {
        let (ga, gb) = (leader_gauge(&a).await, leader_gauge(&b).await);
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
        lease_holder(&leases, &lease_name).await.as_deref(),
        Some(leader.identity.as_str()),
        "the Lease holder is the process that reports leader 1"
    );
    assert_eq!(leader.get("/healthz").await.map(|r| r.0), Some(200));

    // Only the leader reconciles: it reconciles the CloudProvider; over several renewals the
    // stand-by reconciles nothing and stays a stand-by.
    let deadline = Instant::now() + Duration::from_secs(30);
    while reconciles(leader, "CloudProvider").await.unwrap_or(0) == 0 {
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
            leader_gauge(standby).await,
            Some(0),
            "stand-by stays a stand-by"
        );
        assert_eq!(
            leader_gauge(leader).await,
            Some(1),
            "leader keeps the lease"
        );
        assert_eq!(
            reconciles(standby, "CloudProvider").await,
            Some(0),
            "a stand-by must not reconcile"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        reconciles(standby, "EcsInstance").await,
        Some(0),
        "a stand-by must not reconcile"
    );

    // SIGKILL the leader: no release; the stand-by takes over once the lease expires.
    let killed = leader.identity.clone();
    leader.process.kill();
    let t0 = Instant::now();
    let takeover = loop {
        if leader_gauge(standby).await == Some(1) {
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
        lease_holder(&leases, &lease_name).await.as_deref(),
        Some(standby.identity.as_str())
    );
    // The new leader does the work now.
    let deadline = Instant::now() + Duration::from_secs(30);
    while reconciles(standby, "CloudProvider").await.unwrap_or(0) == 0 {
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
        if lease_holder(&leases, &lease_name).await.is_none() {
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
