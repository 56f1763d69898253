//! Sharding with two real operator processes (`--shards 2`, distinct identities, 6 s leases)
//! against this test process's private control plane and the cloud emulator: the replicas split
//! the two shard Leases 1+1, and each EcsInstance is reconciled — its events reported — by the
//! replica holding its namespace's shard. SIGKILL one: the survivor takes its shard over once the
//! lease expires, makes a new EcsInstance there Ready and carries a tag change of an old one to
//! the cloud. Everything is then deleted with nothing left in the cloud, and a SIGTERM releases
//! the survivor's leases at once.
//!
//! Functional, not timed: the waits are generous bounds, no duration is asserted.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, ResourceExt};
use mce_testkit::operator::{LEASE_NAMESPACE, LeaseOperator, dump, lease_holder};
use mce_testkit::prelude::*;
use multicloud_ecs::api::EcsInstance;
use multicloud_ecs::controller::shard::{lease_name, shard_of};
use serde_json::json;

const SHARDS: u32 = 2;
const LEASE_SECONDS: u64 = 6;
/// One `multicloud-ecs run --shards 2` process. Killed when dropped.
type Op = LeaseOperator;

fn start(identity: &str, lease_set: &str) -> Op {
    LeaseOperator::start(
        identity,
        lease_set,
        LEASE_SECONDS,
        &["--shards", &SHARDS.to_string()],
        "operator-shards-logs",
    )
}

/// `multicloud_ecs_shards_held` from /metrics (None: not serving).
async fn shards_held(op: &Op) -> Option<i64> {
    op.metric("multicloud_ecs_shards_held").await
}

/// The holder of each shard's Lease (None: missing, released or empty).
async fn holders(leases: &Api<Lease>, set: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for shard in 0..SHARDS {
        out.push(lease_holder(leases, &lease_name(set, shard)).await);
    }
    out
}

/// Polls until `check` holds, failing with the operators' log tails after [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, ops: &[&Op], mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}\n{}",
            dump(ops)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn ready(env: &Env, ns: &str, name: &str, ops: &[&Op]) -> EcsInstance {
    let api = env.instances_in(ns);
    eventually(&format!("EcsInstance {ns}/{name} Ready"), ops, || {
        let api = api.clone();
        async move { api.get_opt(name).await.ok().flatten().filter(is_ready) }
    })
    .await
}

/// The events about an object, once its Normal Ready event is there.
async fn events_once_ready(env: &Env, ns: &str, name: &str, ops: &[&Op]) -> Vec<Event> {
    eventually(
        &format!("a Normal Ready event on {ns}/{name}"),
        ops,
        || async {
            let events = env.events_for(ns, name).await;
            events
                .iter()
                .any(|e| {
                    e.type_.as_deref() == Some("Normal") && e.reason.as_deref() == Some("Ready")
                })
                .then_some(events)
        },
    )
    .await
}

fn reporters(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.reporting_instance.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn replicas_split_the_shards_and_a_survivor_takes_over_a_killed_ones() {
    let mut env = Env::start_with(
        "shards",
        Options {
            operator: false,
            ..Options::default()
        },
    )
    .await;
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), LEASE_NAMESPACE);
    let set = format!("mce-shards-test-{:08x}", rand::random::<u32>());

    // Tenant namespaces, at least two per shard.
    let tenant = env.tenant.clone();
    let mut namespaces = vec![env.ns.name.clone()];
    let per_shard = |namespaces: &[String], shard: u32| {
        namespaces
            .iter()
            .filter(|ns| shard_of(ns, SHARDS) == shard)
            .count()
    };
    while (0..SHARDS).any(|s| per_shard(&namespaces, s) < 2) {
        assert!(namespaces.len() < 40, "namespace names do not spread");
        namespaces.push(env.extra_namespace(Some(tenant.as_str())).await);
    }

    let a = start("op-a", &set);
    let b = start("op-b", &set);
    let ops = [&a, &b];

    // The shards split 1+1, each replica reporting one held.
    let split = eventually(
        "the shards split 1+1 between op-a and op-b",
        &ops,
        || async {
            let holders = holders(&leases, &set).await;
            let mut ids: Vec<&str> = holders.iter().filter_map(|h| h.as_deref()).collect();
            ids.sort_unstable();
            (ids == ["op-a", "op-b"]
                && shards_held(&a).await == Some(1)
                && shards_held(&b).await == Some(1))
            .then(|| holders.into_iter().flatten().collect::<Vec<String>>())
        },
    )
    .await;
    env.wait_provider_available(&env.provider.clone()).await;

    // One EcsInstance per namespace, reconciled by its shard's holder.
    let objects: Vec<(String, String)> = namespaces
        .iter()
        .enumerate()
        .map(|(i, ns)| (ns.clone(), format!("vm-{i}")))
        .collect();
    for (ns, name) in &objects {
        env.create(
            ns,
            env.instance_manifest(name, "user-1", json!({"tags": {"stage": "dev"}})),
        )
        .await
        .unwrap_or_else(|e| panic!("create EcsInstance {ns}/{name}: {e}"));
    }
    for (ns, name) in &objects {
        ready(&env, ns, name, &ops).await;
    }
    assert_eq!(
        holders(&leases, &set).await,
        split.iter().cloned().map(Some).collect::<Vec<_>>(),
        "the split held while the instances were created"
    );
    for (ns, name) in &objects {
        let owner = &split[shard_of(ns, SHARDS) as usize];
        let events = events_once_ready(&env, ns, name, &ops).await;
        let by = reporters(&events);
        assert!(
            by.iter().all(|r| r == owner),
            "{ns}/{name} is in shard {} held by {owner}, but its events came from {by:?}",
            shard_of(ns, SHARDS)
        );
    }

    // SIGKILL the holder of shard 1; meanwhile a new instance and a tag change arrive there.
    let victim_shard = 1;
    let (mut victim, survivor) = if split[victim_shard as usize] == a.identity {
        (a, b)
    } else {
        (b, a)
    };
    victim.process.kill();
    let in_victim: Vec<&(String, String)> = objects
        .iter()
        .filter(|(ns, _)| shard_of(ns, SHARDS) == victim_shard)
        .collect();
    let (late_ns, retag_ns, retag) = (
        in_victim[0].0.clone(),
        in_victim[1].0.clone(),
        in_victim[1].1.clone(),
    );
    env.create(
        &late_ns,
        env.instance_manifest("late", "user-1", json!({"tags": {"stage": "dev"}})),
    )
    .await
    .expect("create the late EcsInstance");
    env.patch_spec(&retag_ns, &retag, json!({"tags": {"stage": "prod"}}))
        .await
        .expect("retag");

    let ops = [&survivor];
    eventually(
        "the survivor holds the killed replica's shard",
        &ops,
        || async {
            (holders(&leases, &set).await[victim_shard as usize].as_deref()
                == Some(survivor.identity.as_str())
                && shards_held(&survivor).await == Some(i64::from(SHARDS)))
            .then_some(())
        },
    )
    .await;
    ready(&env, &late_ns, "late", &ops).await;
    let by = reporters(&events_once_ready(&env, &late_ns, "late", &ops).await);
    assert!(
        by.iter().all(|r| *r == survivor.identity),
        "the late instance's events came from {by:?}, not only {}",
        survivor.identity
    );
    let retagged = ready(&env, &retag_ns, &retag, &ops).await;
    let uid = retagged.uid().expect("uid");
    eventually("the tag change on the cloud", &ops, || {
        let cloud = env.cloud();
        let uid = uid.clone();
        async move {
            items(&cloud, "instances")
                .into_iter()
                .find(|vm| tag(vm, "multicloud-ecs/uid") == Some(uid.as_str()))
                .filter(|vm| tag(vm, "stage") == Some("prod"))
                .map(|_| ())
        }
    })
    .await;

    // Everything deleted by the survivor; nothing left in the cloud.
    for ns in &namespaces {
        env.dyn_instances_in(ns)
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
            .expect("delete the instances");
    }
    eventually("every object and cloud resource gone", &ops, || async {
        for ns in &namespaces {
            let instances = env.instances_in(ns).list(&ListParams::default()).await;
            let networks = env.networks_in(ns).list(&ListParams::default()).await;
            if !instances.is_ok_and(|l| l.items.is_empty())
                || !networks.is_ok_and(|l| l.items.is_empty())
            {
                return None;
            }
        }
        (env.emulator.state().resource_count() == 0).then_some(())
    })
    .await;
    assert_eq!(env.emulator.state().resource_count(), 0);

    // A graceful stop releases the survivor's leases at once.
    survivor.process.sigterm();
    eventually("the survivor's leases released", &ops, || async {
        holders(&leases, &set)
            .await
            .iter()
            .all(Option::is_none)
            .then_some(())
    })
    .await;
    let mut survivor = survivor;
    let status = survivor.process.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "graceful stop exits 0, got {status}");
    let logs = survivor.process.logs() + &victim.process.logs();
    assert!(
        !logs.contains("panicked"),
        "{}",
        dump(&[&survivor, &victim])
    );

    for shard in 0..SHARDS {
        let _ = leases
            .delete(&lease_name(&set, shard), &DeleteParams::default())
            .await;
    }
    env.finish().await;
}
