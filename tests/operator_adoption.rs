//! Adoption end to end (issue 12): an EcsInstance takes over a VM created outside the operator
//! (directly in the emulator's model, as another console user would), manages it, and releases
//! it — or keeps it with `deletionPolicy: Orphan`; another tenant's VM is refused with no change
//! to it. Tests in this binary run one at a time.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::DeleteParams;
use mce_cloud::{
    ChargeMode, CloudDriver, CreateSecurityGroup, CreateSubnet, CreateVpc, Login, RunInstance,
    SystemDisk,
};
use mce_testkit::model_driver::ModelDriver;
use mce_testkit::prelude::*;
use serde_json::{Value, json};

/// Creates a VPC, subnet, group and a running VM tagged `tags` directly in the emulator.
async fn hand_made_vm(env: &Env, tags: &[(&str, &str)]) -> String {
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
    let subnet = driver
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
            region: region.clone(),
            vpc_id: vpc,
            name: "by-hand".into(),
            description: String::new(),
            tags: tags.clone(),
            client_token: format!("sg-by-hand-{suffix}"),
        })
        .await
        .expect("create group");
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
