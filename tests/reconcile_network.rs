//! The UserNetwork executors run in-process over the emulator's model (toy `DRY` provider):
//! tenancy keys, zones, and release.

use std::collections::BTreeMap;

use kube::ResourceExt;
use mce_cloud::{CloudDriver, ProviderProfile};
use mce_testkit::dry_provider::{self, DryPlugin};
use mce_testkit::fixtures::{self, user_network};
use multicloud_ecs::api::{Reason, UserNetwork, UserNetworkStatus, conditions, tags};
use multicloud_ecs::controller::plan::{self, NetworkWant};
use multicloud_ecs::controller::status::{Progress, StatusSink};
use multicloud_ecs::controller::user_network::{self, NetworkInputs};

const CODE: &str = "DRY";
const ZONE_B: &str = "cn-hangzhou-j";

struct Sink;

#[async_trait::async_trait]
impl StatusSink<UserNetworkStatus> for Sink {
    async fn save(
        &self,
        _status: &UserNetworkStatus,
    ) -> multicloud_ecs::controller::error::Result<()> {
        Ok(())
    }
}

fn profile() -> &'static ProviderProfile {
    &dry_provider::PROFILE
}

fn inputs(tenant: &str, zone: &str) -> NetworkInputs {
    NetworkInputs {
        tenant: tenant.into(),
        region: fixtures::REGION.into(),
        zone: zone.into(),
        extra_zones: Vec::new(),
        free_cidr: "172.16.8.0/24".parse().ok(),
        profile: profile(),
    }
}

fn network(namespace: &str) -> UserNetwork {
    user_network("net")
        .provider(CODE)
        .tenant(fixtures::TENANT)
        .namespace(namespace)
        .build()
}

/// Runs the cloud step and marks the network Ready as `apply` would.
async fn ensure(net: &mut UserNetwork, driver: &dyn CloudDriver, inputs: &NetworkInputs) {
    let mut progress = Progress::new(net.status.clone().unwrap_or_default());
    let ready = user_network::ensure(net, driver, inputs, &mut progress, &Sink)
        .await
        .expect("network ensured");
    assert!(ready);
    let mut status = progress.status;
    let ready = conditions::Desired::new(conditions::READY, true, Reason::NetworkReady, "ready");
    status.conditions = conditions::merge(
        &[],
        &[ready],
        Some(1),
        &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
    );
    net.status = Some(status);
}

fn count(driver: &DryPlugin, uid: &str) -> usize {
    driver.state().with_model(|m| {
        m.vpcs
            .values()
            .filter(|v| v.tags.get(tags::OBJECT_UID).map(String::as_str) == Some(uid))
            .count()
    })
}

/// Defect 8: the same userId in two namespaces of one tenant gets two networks.
#[tokio::test]
async fn a_user_id_in_another_namespace_of_the_tenant_does_not_adopt_the_network() {
    let plugin = DryPlugin::in_memory();
    let driver = plugin.driver();
    let mut a = network("team-a");
    let mut b = network("team-b");
    ensure(&mut a, &driver, &inputs(fixtures::TENANT, fixtures::ZONE)).await;
    ensure(&mut b, &driver, &inputs(fixtures::TENANT, fixtures::ZONE)).await;
    let (a, b) = (a.status.unwrap(), b.status.unwrap());
    assert_ne!(a.vpc_id, b.vpc_id, "team-b adopted team-a's VPC");
    assert_ne!(a.security_group_id, b.security_group_id);
}

/// Defect 3: release finds what the network created by its UID even when its namespace's
/// tenant label changed since.
#[tokio::test]
async fn release_does_not_depend_on_the_current_tenant() {
    let plugin = DryPlugin::in_memory();
    let driver = plugin.driver();
    let mut net = network("team-a");
    ensure(&mut net, &driver, &inputs(fixtures::TENANT, fixtures::ZONE)).await;
    let uid = net.uid().unwrap();
    assert_eq!(count(&plugin, &uid), 1);
    user_network::release(&net, &driver, fixtures::REGION)
        .await
        .expect("released");
    assert_eq!(count(&plugin, &uid), 0, "the VPC was left behind");
}

/// Defect 13: a second zone gets its own VSwitch in the user's network.
#[tokio::test]
async fn a_second_zone_gets_a_vswitch_of_its_own() {
    let plugin = DryPlugin::in_memory();
    let driver = plugin.driver();
    let mut net = network("team-a");
    ensure(&mut net, &driver, &inputs(fixtures::TENANT, fixtures::ZONE)).await;
    // An instance in another zone: the network keeps its zone and adds a subnet.
    let both = NetworkInputs {
        extra_zones: vec![ZONE_B.into()],
        ..inputs(fixtures::TENANT, fixtures::ZONE)
    };
    ensure(&mut net, &driver, &both).await;
    let want = |zone| NetworkWant {
        name: "net",
        named: false,
        user_id: fixtures::USER,
        provider: CODE,
        region: fixtures::REGION,
        zone,
        tenant: fixtures::TENANT,
    };
    let a = plan::network_readiness(&want(fixtures::ZONE), Some(&net));
    let b = plan::network_readiness(&want(ZONE_B), Some(&net));
    assert_eq!(
        a.condition.reason,
        Reason::NetworkReady,
        "{:?}",
        a.condition
    );
    assert_eq!(
        b.condition.reason,
        Reason::NetworkReady,
        "{:?}",
        b.condition
    );
    let (a, b) = (a.reference.unwrap(), b.reference.unwrap());
    assert_eq!(a.vpc_id, b.vpc_id);
    assert_ne!(a.v_switch_id, b.v_switch_id);
    let zones: BTreeMap<String, String> = plugin.state().with_model(|m| {
        m.subnets
            .values()
            .map(|s| (s.zone.clone(), s.id.clone()))
            .collect()
    });
    assert_eq!(zones.get(ZONE_B), b.v_switch_id.as_ref());
    let status = net.status.unwrap();
    assert_eq!(status.v_switch_ids.len(), 2);
    assert_eq!(
        status.v_switch_id, a.v_switch_id,
        "vSwitchId stays the own zone's"
    );
    assert_eq!(status.zone.as_deref(), Some(fixtures::ZONE));
}
