//! Adoption end to end (issue 12): an EcsInstance takes over a VM created outside the operator
//! (directly in the emulator's model, as another console user would), manages it, and releases
//! it — or keeps it with `deletionPolicy: Orphan`; another tenant's VM is refused with no change
//! to it. A UserNetwork takes over a hand-made VPC, VSwitch and group the same way, serves an
//! instance and is released with it; another tenant's network is refused likewise. Tests in this
//! binary run one at a time.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::api::DeleteParams;
use mce_cloud::{
    ChargeMode, CloudDriver, CreateSecurityGroup, CreateSubnet, CreateVpc, Login, RunInstance,
    SystemDisk,
};
use mce_testkit::model_driver::ModelDriver;
use mce_testkit::prelude::*;
use multicloud_ecs::api::UserNetwork;
use serde_json::{Value, json};

/// The ids of a VPC, its VSwitch (in the fixture's zone) and a group, made by hand.
struct HandMadeNetwork {
    vpc: String,
    v_switch: String,
    group: String,
}

/// Creates a VPC, a VSwitch and a security group tagged `tags` directly in the emulator.
async fn hand_made_network(env: &Env, tags: &[(&str, &str)]) -> HandMadeNetwork {
    let driver = ModelDriver::new(env.emulator.state().clone()).with_provider("ALIYUN");
    let tags: BTreeMap<String, String> = tags
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let region = env.cloud.region.to_string();
    let suffix = format!("{:08x}", rand::random::<u32>());
    let vpc = driver
        .create_vpc(&CreateVpc {
            region: region.clone(),
            cidr_block: "192.168.0.0/16".into(),
            name: "by-hand".into(),
            description: String::new(),
            tags: tags.clone(),
            client_token: format!("vpc-by-hand-{suffix}"),
        })
        .await
        .expect("create vpc");
    let v_switch = driver
        .create_subnet(&CreateSubnet {
            region: region.clone(),
            vpc_id: vpc.clone(),
            zone: env.cloud.zone.into(),
            cidr_block: "192.168.1.0/24".into(),
            name: "by-hand".into(),
            tags: tags.clone(),
            client_token: format!("subnet-by-hand-{suffix}"),
        })
        .await
        .expect("create subnet");
    let group = driver
        .create_security_group(&CreateSecurityGroup {
            region,
            vpc_id: vpc.clone(),
            name: "by-hand".into(),
            description: String::new(),
            tags,
            client_token: format!("sg-by-hand-{suffix}"),
        })
        .await
        .expect("create group");
    HandMadeNetwork {
        vpc,
        v_switch,
        group,
    }
}

/// Creates a VPC, subnet, group and a running VM tagged `tags` directly in the emulator.
async fn hand_made_vm(env: &Env, tags: &[(&str, &str)]) -> String {
    let net = hand_made_network(env, tags).await;
    hand_made_vm_in(env, &net, tags).await
}

/// A running VM tagged `tags` in the VSwitch and group of `net`, made directly in the emulator.
async fn hand_made_vm_in(env: &Env, net: &HandMadeNetwork, tags: &[(&str, &str)]) -> String {
    let driver = ModelDriver::new(env.emulator.state().clone()).with_provider("ALIYUN");
    let tags: BTreeMap<String, String> = tags
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let region = env.cloud.region.to_string();
    let suffix = format!("{:08x}", rand::random::<u32>());
    let (subnet, group) = (net.v_switch.clone(), net.group.clone());
    driver
        .run_instance(&RunInstance {
            region,
            zone: env.cloud.zone.into(),
            instance_type: env.cloud.instance_type.into(),
            image_id: env.cloud.image("ubuntu-20.04").into(),
            subnet_id: subnet,
            security_group_ids: vec![group],
            name: "by-hand".into(),
            description: String::new(),
            system_disk: SystemDisk {
                category: env.cloud.disk_category.into(),
                size_gib: 40,
            },
            login: Login::None,
            charge: ChargeMode::OnDemand,
            tags,
            client_token: format!("vm-by-hand-{suffix}"),
            extensions: Default::default(),
        })
        .await
        .expect("run instance")
}

fn cloud_vm(env: &Env, id: &str) -> Option<Value> {
    by_id(&env.cloud(), "instances", id).cloned()
}

async fn adopt_and_delete(policy: &str) {
    let env = Env::start("adopt").await;
    let ns = env.ns.name.clone();
    let id = hand_made_vm(&env, &[("tenantId", "acme"), ("team", "ml")]).await;
    env.wait_cloud("hand-made VM running", |c| {
        (by_id(c, "instances", &id)?["status"] == "Running").then_some(())
    })
    .await;

    let created = env
        .create_instance(
            "adopted",
            "user-1",
            json!({"adopt": {"instanceId": id}, "deletionPolicy": policy, "tags": {"team": "ml"}}),
        )
        .await;
    let uid = created.uid().expect("uid");
    let inst = env.wait_ready(&ns, "adopted").await;
    let status = inst.status.clone().expect("status");
    assert_eq!(status.instance_id.as_deref(), Some(id.as_str()), "same id");
    // One instance on the cloud: adopted, not created; tagged as the operator's own.
    let cloud = env.cloud();
    assert_eq!(count(&cloud, "instances"), 1, "{cloud:#}");
    let vm = cloud_vm(&env, &id).expect("VM");
    assert_eq!(tag(&vm, "multicloud-ecs/uid"), Some(uid.as_str()));
    assert_eq!(tag(&vm, "tenantId"), Some("acme"));
    assert_eq!(tag(&vm, "Owner"), Some("user-1"));
    // From now on the spec's tags are the VM's (as for a VM the operator created).
    assert_eq!(tag(&vm, "team"), Some("ml"));
    let events = env.events_for(&ns, "adopted").await;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("Adopted")),
        "{events:?}"
    );

    env.instances()
        .delete("adopted", &DeleteParams::default())
        .await
        .expect("delete");
    wait_for("EcsInstance gone", WAIT, || async {
        env.instances()
            .get_opt("adopted")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    match policy {
        "Delete" => {
            env.wait_cloud("adopted VM released", |c| {
                by_id(c, "instances", &id).is_none().then_some(())
            })
            .await
        }
        _ => assert!(cloud_vm(&env, &id).is_some(), "Orphan keeps the VM"),
    }
    env.finish().await;
}

#[tokio::test]
async fn adopted_vm_becomes_ready_with_its_id_and_is_released_on_delete() {
    adopt_and_delete("Delete").await;
}

#[tokio::test]
async fn adopted_vm_is_kept_with_orphan() {
    adopt_and_delete("Orphan").await;
}

#[tokio::test]
async fn adoption_of_another_tenants_vm_is_refused_without_changes() {
    let env = Env::start("adopt-refused").await;
    let ns = env.ns.name.clone();
    let theirs = hand_made_vm(&env, &[("tenantId", "globex")]).await;
    let owned = hand_made_vm(
        &env,
        &[("tenantId", "acme"), ("multicloud-ecs/uid", "someone-else")],
    )
    .await;
    let untagged = hand_made_vm(&env, &[]).await;
    let before: Vec<Value> = [&theirs, &owned, &untagged]
        .iter()
        .map(|id| cloud_vm(&env, id).expect("VM"))
        .collect();
    for (name, id, why) in [
        ("theirs", &theirs, "globex"),
        ("owned", &owned, "another object"),
        ("untagged", &untagged, "allowUntaggedAdoption"),
    ] {
        env.create_instance(name, "user-1", json!({"adopt": {"instanceId": id}}))
            .await;
        env.wait_instance(&ns, name, "AdoptionRefused", |i| {
            let c = condition(i, "Ready")?;
            (c.reason == "AdoptionRefused" && c.message.contains(why)).then_some(())
        })
        .await;
    }
    let missing = "i-doesnotexist000";
    env.create_instance(
        "missing",
        "user-1",
        json!({"adopt": {"instanceId": missing}}),
    )
    .await;
    env.wait_instance(&ns, "missing", "AdoptionRefused", |i| {
        (condition(i, "Ready")?.reason == "AdoptionRefused").then_some(())
    })
    .await;
    // Nothing changed on the cloud: same VMs, same tags, no new instance.
    let after: Vec<Value> = [&theirs, &owned, &untagged]
        .iter()
        .map(|id| cloud_vm(&env, id).expect("VM"))
        .collect();
    assert_eq!(
        before.iter().map(|v| &v["tags"]).collect::<Vec<_>>(),
        after.iter().map(|v| &v["tags"]).collect::<Vec<_>>()
    );
    assert_eq!(count(&env.cloud(), "instances"), 3);
    env.finish().await;
}

// ---- UserNetwork adoption ----

fn network_manifest(env: &Env, name: &str, user: &str, extra: Value) -> Value {
    let mut spec = json!({"provider": env.code, "region": env.cloud.region, "userId": user});
    merge(&mut spec, extra);
    json!({
        "apiVersion": "ecs.multicloud.io/v1alpha1",
        "kind": "UserNetwork",
        "metadata": {"name": name},
        "spec": spec,
    })
}

fn adopt_spec(net: &HandMadeNetwork) -> Value {
    json!({"adopt": {"vpcId": net.vpc, "vSwitchId": net.v_switch, "securityGroupId": net.group}})
}

/// Waits until the UserNetwork's `Ready` condition satisfies `check`; returns the network.
async fn wait_network(
    env: &Env,
    name: &str,
    what: &str,
    check: impl Fn(&Condition) -> bool,
) -> UserNetwork {
    let api = env.networks_in(&env.ns.name);
    let check = &check;
    let api = &api;
    wait_for(
        &format!("UserNetwork {name}: {what}"),
        WAIT,
        || async move {
            let net = api.get(name).await.ok()?;
            let ready = net
                .status
                .as_ref()?
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready")?;
            check(ready).then_some(net.clone())
        },
    )
    .await
}

/// The tags of every VPC, subnet and group on the cloud, by id.
fn network_tags(cloud: &Value) -> BTreeMap<String, Value> {
    ["vpcs", "subnets", "securityGroups"]
        .iter()
        .flat_map(|kind| cloud[*kind].as_array().cloned().unwrap_or_default())
        .map(|r| {
            (
                r["id"].as_str().unwrap_or_default().to_string(),
                r["tags"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn adopted_network_serves_an_instance_and_is_released_with_it() {
    let env = Env::start("adopt-net").await;
    let ns = env.ns.name.clone();
    let hand = hand_made_network(&env, &[("tenantId", "acme"), ("team", "ml")]).await;

    let created = env
        .create(
            &ns,
            network_manifest(&env, "adopted-net", "user-1", adopt_spec(&hand)),
        )
        .await
        .expect("create UserNetwork");
    let uid = created.uid().expect("uid");
    let net = wait_network(&env, "adopted-net", "Ready", |c| c.status == "True").await;
    let status = net.status.expect("status");
    assert_eq!(
        (
            status.vpc_id.as_deref(),
            status.v_switch_id.as_deref(),
            status.security_group_id.as_deref(),
        ),
        (
            Some(hand.vpc.as_str()),
            Some(hand.v_switch.as_str()),
            Some(hand.group.as_str())
        ),
        "the adopted ids"
    );
    assert_eq!(
        status.zone.as_deref(),
        Some(env.cloud.zone),
        "the VSwitch's zone"
    );
    assert_eq!(status.cidr_block.as_deref(), Some("192.168.0.0/16"));
    // Adopted, not created: the same three resources, now tagged as the operator's own.
    let cloud = env.cloud();
    assert_eq!(
        (
            count(&cloud, "vpcs"),
            count(&cloud, "subnets"),
            count(&cloud, "securityGroups")
        ),
        (1, 1, 1),
        "{cloud:#}"
    );
    for (kind, id) in [
        ("vpcs", &hand.vpc),
        ("subnets", &hand.v_switch),
        ("securityGroups", &hand.group),
    ] {
        let r = by_id(&cloud, kind, id).expect("adopted resource");
        assert_eq!(tag(r, "multicloud-ecs/uid"), Some(uid.as_str()), "{r:#}");
        assert_eq!(tag(r, "tenantId"), Some("acme"));
        assert_eq!(tag(r, "Owner"), Some("user-1"));
        assert_eq!(tag(r, "createdBy"), Some("multicloud-ecs"));
        assert_eq!(tag(r, "team"), Some("ml"), "tags of its own are kept");
    }
    let events = env.events_for(&ns, "adopted-net").await;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("Adopted")),
        "{events:?}"
    );

    // An instance in the adopted network: its VSwitch, the network's group plus its own.
    env.create_instance(
        "in-adopted",
        "user-1",
        json!({"networkRef": "adopted-net", "openPorts": [22]}),
    )
    .await;
    let inst = env.wait_ready(&ns, "in-adopted").await;
    let id = inst
        .status
        .as_ref()
        .and_then(|s| s.instance_id.clone())
        .expect("instance id");
    let cloud = env.cloud();
    let vm = by_id(&cloud, "instances", &id).expect("VM");
    assert_eq!(vm["vpcId"], hand.vpc.as_str(), "{vm:#}");
    assert_eq!(vm["subnetId"], hand.v_switch.as_str(), "{vm:#}");
    assert!(
        vm["securityGroupIds"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g == hand.group.as_str())),
        "{vm:#}"
    );
    assert_eq!(
        (count(&cloud, "vpcs"), count(&cloud, "subnets")),
        (1, 1),
        "no network was created: {cloud:#}"
    );

    // A hand-made VM in that network, adopted with ports: it joins a security group of its
    // own (it had only the network's), which holds its ports.
    let vm_id = hand_made_vm_in(&env, &hand, &[("tenantId", "acme")]).await;
    env.wait_cloud("hand-made VM running", |c| {
        (by_id(c, "instances", &vm_id)?["status"] == "Running").then_some(())
    })
    .await;
    env.create_instance(
        "adopted-vm",
        "user-1",
        json!({"adopt": {"instanceId": vm_id}, "networkRef": "adopted-net", "openPorts": [22, 8080]}),
    )
    .await;
    let adopted = env.wait_ready(&ns, "adopted-vm").await;
    let own_group = adopted
        .status
        .as_ref()
        .and_then(|s| s.security_group_id.clone())
        .expect("the adopted VM's own group");
    assert_ne!(own_group, hand.group);
    let cloud = env.cloud();
    let vm = by_id(&cloud, "instances", &vm_id).expect("VM");
    let groups: Vec<&str> = vm["securityGroupIds"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        groups.contains(&own_group.as_str()) && groups.contains(&hand.group.as_str()),
        "{groups:?}"
    );
    assert_eq!(group_ports(&cloud, &own_group), vec![22, 8080]);
    env.instances()
        .delete("adopted-vm", &DeleteParams::default())
        .await
        .expect("delete adopted VM");

    // Deleting both releases everything, the adopted network included (reclaimPolicy Delete).
    env.instances()
        .delete("in-adopted", &DeleteParams::default())
        .await
        .expect("delete instance");
    env.networks_in(&ns)
        .delete("adopted-net", &DeleteParams::default())
        .await
        .expect("delete network");
    wait_for("EcsInstances and UserNetwork gone", WAIT, || async {
        let inst = env.instances().get_opt("in-adopted").await.ok()?;
        let vm = env.instances().get_opt("adopted-vm").await.ok()?;
        let net = env.networks_in(&ns).get_opt("adopted-net").await.ok()?;
        (inst.is_none() && vm.is_none() && net.is_none()).then_some(())
    })
    .await;
    env.wait_cloud("every resource released", |c| {
        (c["counts"]["total"] == 0).then_some(())
    })
    .await;
    env.finish().await;
}

#[tokio::test]
async fn adoption_of_another_tenants_network_is_refused_without_changes() {
    let env = Env::start("adopt-net-refused").await;
    let ns = env.ns.name.clone();
    let theirs = hand_made_network(&env, &[("tenantId", "globex")]).await;
    let owned = hand_made_network(
        &env,
        &[("tenantId", "acme"), ("multicloud-ecs/uid", "someone-else")],
    )
    .await;
    let untagged = hand_made_network(&env, &[]).await;
    let ours = hand_made_network(&env, &[("tenantId", "acme")]).await;
    // Our VPC and group with another tenant's VSwitch (of another VPC).
    let mixed = HandMadeNetwork {
        vpc: ours.vpc.clone(),
        v_switch: theirs.v_switch.clone(),
        group: ours.group.clone(),
    };
    let before = network_tags(&env.cloud());
    let total = env.cloud()["counts"]["total"].clone();
    for (name, hand, why) in [
        ("theirs", &theirs, "globex"),
        ("owned", &owned, "another object"),
        ("untagged", &untagged, "allowUntaggedAdoption"),
        ("mixed", &mixed, "belongs to VPC"),
    ] {
        env.create(
            &ns,
            network_manifest(&env, name, "user-1", adopt_spec(hand)),
        )
        .await
        .unwrap_or_else(|e| panic!("create UserNetwork {name}: {e}"));
        let net = wait_network(&env, name, "AdoptionRefused", |c| {
            c.status == "False" && c.reason == "AdoptionRefused"
        })
        .await;
        let ready = net
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .expect("Ready");
        assert!(ready.message.contains(why), "{name}: {}", ready.message);
        assert!(
            net.status.as_ref().is_some_and(|s| s.vpc_id.is_none()),
            "{name}: nothing recorded"
        );
        env.wait_warning(&ns, name, "AdoptionRefused").await;
    }
    // The refusal names the resource.
    let theirs_msg = env
        .networks_in(&ns)
        .get("theirs")
        .await
        .expect("theirs")
        .status
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
        .expect("Ready")
        .message;
    assert!(theirs_msg.contains(&theirs.vpc), "{theirs_msg}");
    // A moment later, nothing changed on the cloud: same resources, same tags.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cloud = env.cloud();
    assert_eq!(network_tags(&cloud), before);
    assert_eq!(cloud["counts"]["total"], total);
    // Deleting the refused networks releases nothing: none of it was theirs.
    for name in ["theirs", "owned", "untagged", "mixed"] {
        env.networks_in(&ns)
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete network");
    }
    wait_for("refused UserNetworks gone", WAIT, || async {
        let left = env.networks_in(&ns).list(&Default::default()).await.ok()?;
        left.items.is_empty().then_some(())
    })
    .await;
    let cloud = env.cloud();
    assert_eq!(network_tags(&cloud), before);
    assert_eq!(cloud["counts"]["total"], total);
    env.finish().await;
}
