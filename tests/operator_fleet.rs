//! Fleets end to end (issue 12): EcsInstanceSet scaling (`kubectl scale` included), rolling
//! template changes, deletion of a set, of a whole namespace (kube-controller-manager's namespace
//! controller) and of a CloudProvider still in use — against the real control plane, the
//! operator process and the cloud emulator. Tests in this binary run one at a time.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use mce_testkit::control_plane;
use mce_testkit::prelude::*;
use multicloud_ecs::api::ecs_instance_set::SET_LABEL;
use multicloud_ecs::api::{EcsInstance, EcsInstanceSet};
use serde_json::{Value, json};

/// Longer than [`WAIT`]: a set converges through several operator passes.
const FLEET_WAIT: Duration = Duration::from_secs(180);

fn sets(env: &Env, ns: &str) -> Api<EcsInstanceSet> {
    Api::namespaced(env.client.clone(), ns)
}

fn set_manifest(env: &Env, name: &str, replicas: i32, spec: Value) -> Value {
    let template = env.instance_manifest("unused", "fleet-user", spec)["spec"].clone();
    json!({
        "apiVersion": "ecs.multicloud.io/v1alpha1",
        "kind": "EcsInstanceSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "template": {"metadata": {"labels": {"team": "ml"}}, "spec": template},
        },
    })
}

/// Running instances on the emulator (every resource of the test's own emulator is the test's).
fn running(cloud: &Value) -> Vec<&Value> {
    items(cloud, "instances")
        .into_iter()
        .filter(|i| i["status"] != "Terminated")
        .collect()
}

async fn children(env: &Env, ns: &str, set: &str) -> Vec<EcsInstance> {
    env.instances_in(ns)
        .list(&ListParams::default().labels(&format!("{SET_LABEL}={set}")))
        .await
        .expect("list children")
        .items
}

/// Waits until the set reports `replicas` ready children of its current generation and the
/// cloud runs exactly that many instances for its children (and, when the set is the only thing
/// in the test's cloud, `running` counts them all).
async fn wait_set(env: &Env, ns: &str, name: &str, replicas: i32) -> EcsInstanceSet {
    let api = sets(env, ns);
    let deadline = Instant::now() + FLEET_WAIT;
    loop {
        let set = api.get(name).await.expect("get set");
        let status = set.status.clone().unwrap_or_default();
        let cloud = env.cloud();
        let kids = children(env, ns, name).await;
        let uids: Vec<String> = kids.iter().filter_map(|c| c.uid()).collect();
        let live = kids
            .iter()
            .filter(|c| c.metadata.deletion_timestamp.is_none())
            .count();
        let on_cloud = running(&cloud)
            .iter()
            .filter(|i| tag(i, "multicloud-ecs/uid").is_some_and(|u| uids.iter().any(|x| x == u)))
            .count();
        if status.observed_generation == set.metadata.generation
            && status.replicas == replicas
            && status.ready_replicas == replicas
            && status.updated_replicas == replicas
            && live == replicas as usize
            && kids.len() == replicas as usize
            && on_cloud == replicas as usize
        {
            return set;
        }
        if Instant::now() > deadline {
            panic!(
                "set {ns}/{name} not at {replicas}: status {status:?}, {live} children, {on_cloud} cloud instances\noperator log tail:\n{}",
                tail(&env.logs(), 40)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn patch_set(env: &Env, ns: &str, name: &str, patch: Value) {
    sets(env, ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch set");
}

fn instance_ids(cloud: &Value) -> Vec<String> {
    let mut ids: Vec<String> = running(cloud)
        .iter()
        .filter_map(|i| i["id"].as_str().map(String::from))
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn set_scales_rolls_and_releases_everything() {
    let env = Env::start("fleet").await;
    let ns = env.ns.name.clone();
    let started = Instant::now();
    env.create(
        &ns,
        set_manifest(&env, "pool", 0, json!({"openPorts": [22]})),
    )
    .await
    .expect("create set");
    let set = wait_set(&env, &ns, "pool", 0).await;
    assert_eq!(
        set.status.as_ref().and_then(|s| s.selector.as_deref()),
        Some("ecs.multicloud.io/set=pool,team=ml")
    );

    // 0 → 5.
    patch_set(&env, &ns, "pool", json!({"spec": {"replicas": 5}})).await;
    wait_set(&env, &ns, "pool", 5).await;
    assert_eq!(running(&env.cloud()).len(), 5);
    let kids = children(&env, &ns, "pool").await;
    assert_eq!(kids.len(), 5);
    for kid in &kids {
        assert!(kid.name_any().starts_with("pool-"), "{}", kid.name_any());
        let owner = &kid.owner_references()[0];
        assert_eq!(owner.kind, "EcsInstanceSet");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(kid.labels().get("team").map(String::as_str), Some("ml"));
    }
    eprintln!("0 -> 5 ready after {:?}", started.elapsed());

    // 5 → 2 with `kubectl scale` (the scale subresource).
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&control_plane::private().kubeconfig)
        .args(["-n", &ns, "scale", "ecsset/pool", "--replicas=2"])
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl scale: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_set(&env, &ns, "pool", 2).await;
    wait_for("2 instances on the cloud", WAIT, || async {
        (running(&env.cloud()).len() == 2).then_some(())
    })
    .await;
    let scale = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&control_plane::private().kubeconfig)
        .args(["-n", &ns, "get", "--raw"])
        .arg(format!(
            "/apis/ecs.multicloud.io/v1alpha1/namespaces/{ns}/ecsinstancesets/pool/scale"
        ))
        .output()
        .expect("run kubectl");
    let scale: Value = serde_json::from_slice(&scale.stdout).expect("scale JSON");
    assert_eq!(scale["spec"]["replicas"], 2, "{scale}");
    assert_eq!(scale["status"]["replicas"], 2, "{scale}");
    assert_eq!(
        scale["status"]["selector"], "ecs.multicloud.io/set=pool,team=ml",
        "{scale}"
    );

    // A ports change rolls in place: the same instances, the new ports open.
    let before = instance_ids(&env.cloud());
    patch_set(
        &env,
        &ns,
        "pool",
        json!({"spec": {"template": {"spec": {"openPorts": [22, 8080]}}}}),
    )
    .await;
    for kid in children(&env, &ns, "pool").await {
        let name = kid.name_any();
        env.wait_instance(&ns, &name, "ports 22, 8080 open", |i| {
            let group = i.status.as_ref()?.security_group_id.clone()?;
            (i.spec.open_ports == vec![22, 8080]
                && is_ready(i)
                && group_ports(&env.cloud(), &group) == vec![22, 8080])
            .then_some(())
        })
        .await;
    }
    wait_set(&env, &ns, "pool", 2).await;
    assert_eq!(instance_ids(&env.cloud()), before, "no instance replaced");

    // An image change replaces them one at a time, never below 2 running (maxUnavailable 0).
    let stop = Arc::new(AtomicBool::new(false));
    let (min_seen, max_seen) = (
        Arc::new(AtomicUsize::new(usize::MAX)),
        Arc::new(AtomicUsize::new(0)),
    );
    let watcher = {
        let (stop, min_seen, max_seen) = (stop.clone(), min_seen.clone(), max_seen.clone());
        let state = env.emulator.state().clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let n = running(&state.resources())
                    .iter()
                    .filter(|i| i["status"] == "Running")
                    .count();
                min_seen.fetch_min(n, Ordering::SeqCst);
                max_seen.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    patch_set(
        &env,
        &ns,
        "pool",
        json!({"spec": {"template": {"spec": {"imageKey": "pytorch-1.12"}}}}),
    )
    .await;
    wait_set(&env, &ns, "pool", 2).await;
    stop.store(true, Ordering::SeqCst);
    watcher.await.expect("watcher");
    let after = instance_ids(&env.cloud());
    assert!(
        after.iter().all(|id| !before.contains(id)),
        "every instance replaced: {before:?} -> {after:?}"
    );
    let (min, max) = (
        min_seen.load(Ordering::SeqCst),
        max_seen.load(Ordering::SeqCst),
    );
    eprintln!("running instances during the image rollout: min {min}, max {max}");
    assert!(min >= 2, "fell to {min} running instances");
    assert!(max <= 4, "rose to {max} running instances (maxSurge 1)");
    for inst in running(&env.cloud()) {
        assert_eq!(inst["imageId"], env.cloud.image("pytorch-1.12"), "{inst}");
    }

    // 2 → 0, then the set is deleted: nothing left.
    patch_set(&env, &ns, "pool", json!({"spec": {"replicas": 0}})).await;
    wait_set(&env, &ns, "pool", 0).await;
    wait_for("no instance on the cloud", WAIT, || async {
        running(&env.cloud()).is_empty().then_some(())
    })
    .await;
    patch_set(&env, &ns, "pool", json!({"spec": {"replicas": 2}})).await;
    wait_set(&env, &ns, "pool", 2).await;
    sets(&env, &ns)
        .delete("pool", &DeleteParams::default())
        .await
        .expect("delete set");
    wait_for("set and children gone, cloud empty", FLEET_WAIT, || async {
        let set_gone = sets(&env, &ns).get_opt("pool").await.ok()?.is_none();
        let kids = children(&env, &ns, "pool").await.len();
        let cloud = env.cloud();
        (set_gone && kids == 0 && running(&cloud).is_empty() && count(&cloud, "eips") == 0)
            .then_some(())
    })
    .await;
    env.finish().await;
}

/// Running instances per zone.
fn per_zone(cloud: &Value) -> std::collections::BTreeMap<String, usize> {
    let mut zones = std::collections::BTreeMap::new();
    for i in running(cloud) {
        *zones
            .entry(i["zone"].as_str().unwrap_or_default().to_string())
            .or_insert(0) += 1;
    }
    zones
}

/// `spreadZones`: children go to the emptiest listed zone and a scale down keeps the zones
/// balanced; the user's silent network gains a VSwitch in each zone.
#[tokio::test]
async fn set_spreads_children_over_zones() {
    let env = Env::start("fleet-spread").await;
    let ns = env.ns.name.clone();
    let zones = ["cn-hangzhou-i", "cn-hangzhou-j"];
    let mut manifest = set_manifest(&env, "spread", 4, json!({}));
    manifest["spec"]["spreadZones"] = json!(zones);
    env.create(&ns, manifest).await.expect("create set");
    wait_set(&env, &ns, "spread", 4).await;
    let expected = |n: usize| zones.iter().map(|z| (z.to_string(), n)).collect();
    assert_eq!(per_zone(&env.cloud()), expected(2));
    for kid in children(&env, &ns, "spread").await {
        assert!(zones.contains(&kid.spec.zone.as_deref().unwrap_or_default()));
    }

    patch_set(&env, &ns, "spread", json!({"spec": {"replicas": 2}})).await;
    wait_set(&env, &ns, "spread", 2).await;
    wait_for("one instance per zone", WAIT, || async {
        (per_zone(&env.cloud()) == expected(1)).then_some(())
    })
    .await;

    sets(&env, &ns)
        .delete("spread", &DeleteParams::default())
        .await
        .expect("delete set");
    wait_for("set gone, cloud empty", FLEET_WAIT, || async {
        let set_gone = sets(&env, &ns).get_opt("spread").await.ok()?.is_none();
        (set_gone && running(&env.cloud()).is_empty()).then_some(())
    })
    .await;
    env.finish().await;
}

/// The set's children carry a terminal failure: the set is Degraded (ChildFailed) and does not
/// churn through replacements.
#[tokio::test]
async fn set_with_a_failing_template_reports_child_failed() {
    let env = Env::start("fleet-fail").await;
    let ns = env.ns.name.clone();
    env.create(
        &ns,
        set_manifest(&env, "bad", 2, json!({"imageKey": "no-such-image"})),
    )
    .await
    .expect("create set");
    wait_for("ChildFailed on the set", FLEET_WAIT, || async {
        let set = sets(&env, &ns).get("bad").await.ok()?;
        let ready = set
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (ready.status == "False" && ready.reason == "ChildFailed").then_some(())
    })
    .await;
    assert_eq!(children(&env, &ns, "bad").await.len(), 2, "no churn");
    assert!(running(&env.cloud()).is_empty());
    env.finish().await;
}

/// Deleting a namespace (kube-controller-manager's namespace controller) releases every cloud
/// resource its EcsInstances, EcsInstanceSet and UserNetworks had, and the namespace goes away.
#[tokio::test]
async fn namespace_deletion_releases_every_cloud_resource() {
    let mut env = Env::start("nsdel").await;
    let tenant = env.tenant.clone();
    let ns = env.extra_namespace(Some(&tenant)).await;
    env.create(
        &ns,
        env.instance_manifest(
            "solo",
            "user-a",
            json!({"publicIp": {"allocate": true}, "openPorts": [22]}),
        ),
    )
    .await
    .expect("create instance");
    env.create(
        &ns,
        json!({
            "apiVersion": "ecs.multicloud.io/v1alpha1",
            "kind": "UserNetwork",
            "metadata": {"name": "net-b"},
            "spec": {"provider": env.code, "region": env.cloud.region, "userId": "user-b"},
        }),
    )
    .await
    .expect("create network");
    env.create(
        &ns,
        env.instance_manifest("in-b", "user-b", json!({"networkRef": "net-b"})),
    )
    .await
    .expect("create instance in net-b");
    env.create(
        &ns,
        set_manifest(&env, "pool", 2, json!({"openPorts": [80]})),
    )
    .await
    .expect("create set");
    env.wait_ready(&ns, "solo").await;
    env.wait_ready(&ns, "in-b").await;
    wait_set(&env, &ns, "pool", 2).await;
    let cloud = env.cloud();
    assert_eq!(running(&cloud).len(), 4);
    assert!(count(&cloud, "vpcs") >= 2, "{cloud:#}");
    assert_eq!(count(&cloud, "eips"), 1);

    let started = Instant::now();
    Api::<Namespace>::all(env.client.clone())
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("delete namespace");
    wait_for("namespace gone and the cloud empty", FLEET_WAIT, || async {
        let gone = Api::<Namespace>::all(env.client.clone())
            .get_opt(&ns)
            .await
            .ok()?
            .is_none();
        let cloud = env.cloud();
        let empty = ["instances", "eips", "vpcs", "securityGroups"]
            .iter()
            .all(|kind| count(&cloud, kind) == 0);
        (gone && empty).then_some(())
    })
    .await;
    eprintln!("namespace deleted and released in {:?}", started.elapsed());
    let cloud = env.cloud();
    for kind in ["instances", "eips", "vpcs", "subnets", "securityGroups"] {
        assert_eq!(count(&cloud, kind), 0, "{kind} left: {cloud:#}");
    }
    env.finish().await;
}

async fn provider_deleting(client: &Client, name: &str) -> Option<bool> {
    let api: Api<DynamicObject> =
        Api::all_with(client.clone(), &ar::<multicloud_ecs::api::CloudProvider>());
    let p = api.get_opt(name).await.ok()?;
    Some(p.is_some_and(|p| p.metadata.deletion_timestamp.is_some()))
}

/// A CloudProvider deleted while an EcsInstance uses it stays (finalizer) and keeps serving it;
/// once the instance is deleted and released, the provider goes.
#[tokio::test]
async fn cloud_provider_deletion_waits_for_its_instances() {
    let env = Env::start("cprov-del").await;
    let ns = env.ns.name.clone();
    env.create_instance("vm", "user-1", json!({"openPorts": [22]}))
        .await;
    env.wait_ready(&ns, "vm").await;
    env.providers()
        .delete(&env.provider, &DeleteParams::default())
        .await
        .expect("delete provider");
    // It stays, Terminating, while the instance exists — and the instance still converges.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        provider_deleting(&env.client, &env.provider).await,
        Some(true)
    );
    env.patch_spec(&ns, "vm", json!({"openPorts": [22, 443]}))
        .await
        .expect("patch ports");
    env.wait_instance(&ns, "vm", "port 443 open", |i| {
        let group = i.status.as_ref()?.security_group_id.clone()?;
        (is_ready(i) && group_ports(&env.cloud(), &group) == vec![22, 443]).then_some(())
    })
    .await;
    env.wait_warning("default", &env.provider, "ProviderInUse")
        .await;
    assert_eq!(running(&env.cloud()).len(), 1);

    // Deleting the instance releases it through the (deleting) provider, then the provider goes.
    env.instances()
        .delete("vm", &DeleteParams::default())
        .await
        .expect("delete instance");
    wait_for("instance released and provider gone", WAIT, || async {
        let cloud = env.cloud();
        let gone = env.providers().get_opt(&env.provider).await.ok()?.is_none();
        (gone && running(&cloud).is_empty() && count(&cloud, "vpcs") == 0).then_some(())
    })
    .await;
    env.finish().await;
}
