//! UserNetwork lifecycle races end to end (real control plane, emulator, operator process):
//! a silent network deleted while a new user arrives, and orphaned instances. Tests in this
//! binary run one at a time (see `mce_testkit::operator_env`).

use std::time::Duration;

use kube::api::{DeleteParams, ListParams};
use mce_testkit::prelude::*;
use serde_json::json;

/// Shorter than `WAIT`: what used to hang forever should converge in seconds.
const CONVERGE: Duration = Duration::from_secs(45);

async fn networks_gone(env: &Env, ns: &str) {
    let networks = env.networks_in(ns);
    wait_for("the silent UserNetwork gone", CONVERGE, || {
        let networks = networks.clone();
        async move {
            networks
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty()
                .then_some(())
        }
    })
    .await;
}

/// Defect 5: the user's silent network is being deleted (still in use) when a second instance
/// of the user arrives; the first instance goes. Both must converge: the old network goes and
/// the new instance gets a network and becomes Ready.
#[tokio::test]
async fn a_new_instance_during_the_deletion_of_its_silent_network_converges() {
    let env = Env::start("net-race").await;
    let ns = env.ns.name.clone();
    let api = env.instances();
    env.create_instance("first", "user-race", json!({})).await;
    env.wait_ready(&ns, "first").await;
    let networks = env.networks_in(&ns);
    let net = networks.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(net.len(), 1);
    let name = kube::ResourceExt::name_any(&net[0]);
    // The network is deleted while "first" still uses it: it waits (InUse).
    networks
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    env.create_instance("second", "user-race", json!({})).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    api.delete("first", &DeleteParams::default()).await.unwrap();
    let second = env.wait_instance(&ns, "second", "Ready", |i| is_ready(i).then(|| i.clone()));
    let second = tokio::time::timeout(CONVERGE, second)
        .await
        .unwrap_or_else(|_| panic!("second never became Ready:\n{}", tail(&env.logs(), 40)));
    let cloud = env.cloud();
    assert_eq!(count(&cloud, "vpcs"), 1, "the old network is released");
    assert_eq!(
        second.status.unwrap().network.unwrap().name,
        name,
        "the new network has the silent name again"
    );
    env.finish().await;
}

/// Defect 11: an instance deleted with `deletionPolicy: Orphan` leaves its VM in the user's
/// silent network; the network object goes without looping and leaves the cloud network in
/// place, and a later instance of the user converges in it.
#[tokio::test]
async fn an_orphaned_instance_orphans_its_silent_network_and_both_converge() {
    let env = Env::start("net-orphan").await;
    let ns = env.ns.name.clone();
    let api = env.instances();
    let kept = env
        .create_instance("kept", "user-orphan", json!({"deletionPolicy": "Orphan"}))
        .await;
    let ready = env.wait_ready(&ns, "kept").await;
    let vpc = ready.status.unwrap().network.unwrap().vpc_id.unwrap();
    api.delete("kept", &DeleteParams::default()).await.unwrap();
    networks_gone(&env, &ns).await;
    let cloud = env.cloud();
    assert!(
        by_id(&cloud, "vpcs", &vpc).is_some(),
        "the VPC stays with its VM"
    );
    assert_eq!(count(&cloud, "instances"), 1);
    // A later instance of the user uses the network its orphaned VM lives in.
    env.create_instance("next", "user-orphan", json!({})).await;
    let next = env.wait_ready(&ns, "next").await;
    assert_eq!(
        next.status.unwrap().network.unwrap().vpc_id.as_deref(),
        Some(vpc.as_str())
    );
    let _ = kept;
    env.finish().await;
}

/// Defect 3: the namespace's tenant label changes while a silent network exists; when its last
/// instance goes, the network is released by its UID tag (the tenant no longer resolves), and
/// its finalizer goes only once the cloud is empty.
#[tokio::test]
async fn a_network_whose_tenant_no_longer_resolves_is_still_released() {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, Patch, PatchParams};
    let env = Env::start("net-release").await;
    let ns = env.ns.name.clone();
    let api = env.instances();
    env.create_instance("vm", "user-rel", json!({})).await;
    env.wait_ready(&ns, "vm").await;
    assert_eq!(count(&env.cloud(), "vpcs"), 1);
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let relabel = json!({"metadata": {"labels": {"ecs.multicloud.io/tenant": "globex"}}});
    namespaces
        .patch(&ns, &PatchParams::default(), &Patch::Merge(&relabel))
        .await
        .unwrap();
    api.delete("vm", &DeleteParams::default()).await.unwrap();
    networks_gone(&env, &ns).await;
    let cloud = env.cloud();
    for kind in ["instances", "securityGroups", "subnets", "vpcs"] {
        assert_eq!(
            count(&cloud, kind),
            0,
            "{kind} left behind: {}",
            cloud["counts"]
        );
    }
    env.finish().await;
}
