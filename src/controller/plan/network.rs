//! Whether an EcsInstance's UserNetwork can be used: the `NetworkReady` decision.

use std::collections::BTreeSet;

use ipnet::Ipv4Net;

use crate::api::conditions::{self, Desired};
use crate::api::ecs_instance::NetworkStatusRef;
use crate::api::{DeletionPolicy, EcsInstance, Reason, UserNetwork, UserNetworkStatus};
use crate::controller::error::Error;
use crate::controller::tenancy::{self, TenancyError};

/// What the instance expects of its network.
#[derive(Clone, Copy, Debug)]
pub struct NetworkWant<'a> {
    /// The UserNetwork's name (the instance's `networkRef`, else its silent network).
    pub name: &'a str,
    /// The instance names the network itself: a missing one is not created for it.
    pub named: bool,
    pub user_id: &'a str,
    pub provider: &'a str,
    pub region: &'a str,
    pub zone: &'a str,
    pub tenant: &'a str,
}

/// The `NetworkReady` decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkDecision {
    /// The `NetworkReady` step condition.
    pub condition: Desired,
    /// The network's ids, once it is ready.
    pub reference: Option<NetworkStatusRef>,
    /// Silent addressing must create the network.
    pub create_silent: bool,
}

impl NetworkDecision {
    fn not_ready(reason: Reason, message: String) -> Self {
        Self {
            condition: Desired::new(conditions::NETWORK_READY, false, reason, message),
            reference: None,
            create_silent: false,
        }
    }
}

/// Decides from the cached UserNetwork (None: no such object) whether the instance can use it.
pub fn network_readiness(want: &NetworkWant<'_>, network: Option<&UserNetwork>) -> NetworkDecision {
    let name = want.name;
    let Some(network) = network else {
        if want.named {
            return NetworkDecision::not_ready(
                Reason::NetworkNotFound,
                format!("UserNetwork {name:?} does not exist in this namespace"),
            );
        }
        return NetworkDecision {
            create_silent: true,
            ..NetworkDecision::not_ready(
                Reason::NetworkPending,
                format!("UserNetwork {name} is being provisioned"),
            )
        };
    };
    // networkRef may only name a network of this instance's user, provider and region.
    if network.spec.user_id != want.user_id
        || network.spec.provider != want.provider
        || network.spec.region != want.region
        || network
            .spec
            .tenant_id
            .as_deref()
            .is_some_and(|t| t != want.tenant)
    {
        let e = TenancyError::NetworkMismatch(name.to_string());
        return NetworkDecision::not_ready(e.reason(), e.to_string());
    }
    if network.metadata.deletion_timestamp.is_some() {
        return NetworkDecision::not_ready(
            Reason::NetworkPending,
            format!("UserNetwork {name} is being deleted"),
        );
    }
    let status = network.status.clone().unwrap_or_default();
    let subnet = subnet_in_zone(&status, want.zone);
    // A network serves every zone of its region: the subnet of another zone is created by the
    // network's reconciler, which learns the zone from this instance's status.
    if subnet.is_none()
        && status.zone.as_deref().is_some_and(|z| z != want.zone)
        && conditions::find(&status.conditions, conditions::READY)
            .is_some_and(|c| c.status == "True")
    {
        return NetworkDecision::not_ready(
            Reason::NetworkPending,
            format!(
                "UserNetwork {name} is creating its subnet in zone {}",
                want.zone
            ),
        );
    }
    let ready = conditions::find(&status.conditions, conditions::READY);
    let ids = (status.vpc_id, subnet, status.security_group_id);
    match (ready, ids) {
        (Some(c), (Some(vpc), Some(vsw), Some(sg))) if c.status == "True" => NetworkDecision {
            condition: Desired::new(
                conditions::NETWORK_READY,
                true,
                Reason::NetworkReady,
                format!("UserNetwork {name} is ready"),
            ),
            reference: Some(NetworkStatusRef {
                name: name.to_string(),
                vpc_id: Some(vpc),
                v_switch_id: Some(vsw),
                security_group_id: Some(sg),
            }),
            create_silent: false,
        },
        // The network's own failure is the instance's; its provisioning is just pending.
        (Some(c), _)
            if c.status == "False"
                && Reason::from_wire(&c.reason) != Some(Reason::Provisioning) =>
        {
            match Reason::from_wire(&c.reason) {
                Some(reason) => {
                    NetworkDecision::not_ready(reason, format!("UserNetwork {name}: {}", c.message))
                }
                // A reason this release does not know (written by another version): waiting on
                // the network is all that can be said, with its words kept in the message.
                None => NetworkDecision::not_ready(
                    Reason::NetworkPending,
                    format!("UserNetwork {name}: {}: {}", c.reason, c.message),
                ),
            }
        }
        _ => NetworkDecision::not_ready(
            Reason::NetworkPending,
            format!("UserNetwork {name} is being provisioned"),
        ),
    }
}

/// The network's subnet (VSwitch) in `zone`: from the per-zone map, else the single subnet of a
/// status written before networks had several zones (or that has no zone recorded yet).
pub fn subnet_in_zone(status: &UserNetworkStatus, zone: &str) -> Option<String> {
    if let Some(id) = status.v_switch_ids.get(zone) {
        return Some(id.clone());
    }
    match &status.zone {
        Some(z) if z != zone => None,
        _ => status.v_switch_id.clone(),
    }
}

/// The zones a network needs subnets in besides its own: those of the instances using it
/// (sorted, without duplicates).
pub fn extra_zones<'a>(own: &str, used: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let zones: BTreeSet<&str> = used.into_iter().filter(|z| *z != own).collect();
    zones.into_iter().map(String::from).collect()
}

/// The block of a new subnet inside the VPC's block: the first half for the first subnet (as
/// before networks had several zones), then the first free eighth, so a /24 holds up to five
/// zones. None: the VPC has no room left.
pub fn subnet_block(vpc: &Ipv4Net, taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    let first = tenancy::subnet_cidr(vpc);
    let overlaps = |n: &Ipv4Net| {
        taken
            .iter()
            .any(|t| t.contains(&n.network()) || n.contains(&t.network()))
    };
    if !overlaps(&first) {
        return Some(first);
    }
    let prefix = (vpc.prefix_len() + 3).min(29);
    vpc.subnets(prefix).ok()?.find(|n| !overlaps(n))
}

/// Whether an EcsInstance was placed in the network: it recorded the network's ids, so it may
/// have a VM in it. An instance still waiting for the network does not hold up its deletion.
pub fn placed_in(inst: &EcsInstance, network: &str) -> bool {
    inst.status
        .as_ref()
        .and_then(|s| s.network.as_ref())
        .is_some_and(|n| n.name == network && n.vpc_id.is_some())
}

/// What the deletion of a UserNetwork does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkCleanup {
    /// Instances placed in it still exist (names): wait for them.
    InUse(Vec<String>),
    /// Reclaim policy Orphan: the cloud resources stay.
    Orphan,
    /// No cloud call was ever made for it (the ClientToken is persisted before the first).
    NothingCreated,
    /// Release what carries its UID tag, then verify it is gone.
    Release,
}

/// The deletion decision, before any cloud call.
pub fn network_cleanup(
    placed_users: Vec<String>,
    policy: DeletionPolicy,
    status: Option<&UserNetworkStatus>,
) -> NetworkCleanup {
    if !placed_users.is_empty() {
        return NetworkCleanup::InUse(placed_users);
    }
    if policy == DeletionPolicy::Orphan {
        return NetworkCleanup::Orphan;
    }
    let touched_cloud = status.is_some_and(|s| s.client_token.is_some() || s.vpc_id.is_some());
    if touched_cloud {
        NetworkCleanup::Release
    } else {
        NetworkCleanup::NothingCreated
    }
}

/// The UserNetwork's `Ready` reason when ensuring its VPC, subnet or group failed: a refused
/// create needs a change (NetworkCreateFailed) unless it is quota or a transport retry.
pub fn network_failure_reason(e: &Error) -> Reason {
    match e {
        Error::Cloud(c) if c.class == mce_cloud::ErrorClass::QuotaExceeded => Reason::QuotaExceeded,
        Error::Cloud(c) if c.class.is_transport_retryable() => c.class.into(),
        Error::Cloud(_) => Reason::NetworkCreateFailed,
        other => other.reason(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::UserNetworkSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    const WANT: NetworkWant<'static> = NetworkWant {
        name: "net",
        named: false,
        user_id: "u1",
        provider: "ALIYUN",
        region: "cn-hangzhou",
        zone: "cn-hangzhou-i",
        tenant: "acme",
    };

    fn network(ready: Option<(&str, &str)>, ids: bool) -> UserNetwork {
        let mut n = UserNetwork::new(
            "net",
            UserNetworkSpec {
                provider: "ALIYUN".into(),
                region: "cn-hangzhou".into(),
                zone: None,
                tenant_id: None,
                user_id: "u1".into(),
                cidr_block: None,
                tags: Default::default(),
                reclaim_policy: DeletionPolicy::Delete,
                adopt: None,
            },
        );
        let id = |v: &str| ids.then(|| v.to_string());
        n.status = Some(UserNetworkStatus {
            zone: Some("cn-hangzhou-i".into()),
            vpc_id: id("vpc-1"),
            v_switch_id: id("vsw-1"),
            security_group_id: id("sg-1"),
            conditions: ready
                .map(|(status, reason)| Condition {
                    type_: conditions::READY.into(),
                    status: status.into(),
                    reason: reason.into(),
                    message: "m".into(),
                    observed_generation: None,
                    last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
                })
                .into_iter()
                .collect(),
            ..UserNetworkStatus::default()
        });
        n
    }

    fn decide(want: &NetworkWant<'_>, n: Option<&UserNetwork>) -> (bool, Reason, String, bool) {
        let d = network_readiness(want, n);
        assert_eq!(d.condition.type_, conditions::NETWORK_READY);
        assert_eq!(d.reference.is_some(), d.condition.status);
        (
            d.condition.status,
            d.condition.reason,
            d.condition.message,
            d.create_silent,
        )
    }

    #[test]
    fn missing_network_is_created_unless_named() {
        assert_eq!(
            decide(&WANT, None),
            (
                false,
                Reason::NetworkPending,
                "UserNetwork net is being provisioned".into(),
                true
            )
        );
        let named = NetworkWant {
            named: true,
            ..WANT
        };
        assert_eq!(decide(&named, None).1, Reason::NetworkNotFound);
        assert!(!decide(&named, None).3);
    }

    #[test]
    fn ready_network_gives_its_ids() {
        let n = network(Some(("True", "NetworkReady")), true);
        let d = network_readiness(&WANT, Some(&n));
        assert_eq!(d.condition.reason, Reason::NetworkReady);
        assert_eq!(d.condition.message, "UserNetwork net is ready");
        let r = d.reference.unwrap();
        assert_eq!(r.security_group_id.as_deref(), Some("sg-1"));
        // Ready but an id missing: still pending.
        let n = network(Some(("True", "NetworkReady")), false);
        assert_eq!(decide(&WANT, Some(&n)).1, Reason::NetworkPending);
    }

    #[test]
    fn network_failures_are_copied_and_provisioning_is_pending() {
        let n = network(Some(("False", "QuotaExceeded")), false);
        assert_eq!(
            decide(&WANT, Some(&n)),
            (
                false,
                Reason::QuotaExceeded,
                "UserNetwork net: m".into(),
                false
            )
        );
        let n = network(Some(("False", "Provisioning")), false);
        assert_eq!(decide(&WANT, Some(&n)).1, Reason::NetworkPending);
        let n = network(None, false);
        assert_eq!(decide(&WANT, Some(&n)).1, Reason::NetworkPending);
        let n = network(Some(("False", "SomethingNew")), false);
        assert_eq!(decide(&WANT, Some(&n)).1, Reason::NetworkPending);
        assert_eq!(
            decide(&WANT, Some(&n)).2,
            "UserNetwork net: SomethingNew: m"
        );
    }

    #[test]
    fn network_failures_name_quota_retries_and_refusals() {
        use mce_cloud::{CloudError, ErrorClass};
        let cloud = |class| Error::Cloud(CloudError::new(class, "ALIYUN", "CreateVpc", "X", "m"));
        assert_eq!(
            network_failure_reason(&cloud(ErrorClass::QuotaExceeded)),
            Reason::QuotaExceeded
        );
        assert_eq!(
            network_failure_reason(&cloud(ErrorClass::Throttled)),
            Reason::Throttled
        );
        assert_eq!(
            network_failure_reason(&cloud(ErrorClass::Transient)),
            Reason::Transient
        );
        assert_eq!(
            network_failure_reason(&cloud(ErrorClass::InvalidParameter)),
            Reason::NetworkCreateFailed
        );
        assert_eq!(
            network_failure_reason(&Error::Waiting("w".into())),
            Reason::Waiting
        );
    }

    #[test]
    fn foreign_deleted_or_misplaced_networks_are_refused() {
        let mut n = network(Some(("True", "NetworkReady")), true);
        n.spec.user_id = "u2".into();
        assert_eq!(decide(&WANT, Some(&n)).1, Reason::NetworkMismatch);
        let mut n = network(Some(("True", "NetworkReady")), true);
        n.spec.tenant_id = Some("other".into());
        assert_eq!(decide(&WANT, Some(&n)).1, Reason::NetworkMismatch);
        let mut n = network(Some(("True", "NetworkReady")), true);
        n.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(
            decide(&WANT, Some(&n)).2,
            "UserNetwork net is being deleted"
        );
    }

    #[test]
    fn another_zone_waits_for_its_subnet_then_uses_it() {
        let mut n = network(Some(("True", "NetworkReady")), true);
        let elsewhere = NetworkWant {
            zone: "cn-hangzhou-j",
            ..WANT
        };
        assert_eq!(
            decide(&elsewhere, Some(&n)),
            (
                false,
                Reason::NetworkPending,
                "UserNetwork net is creating its subnet in zone cn-hangzhou-j".into(),
                false
            )
        );
        if let Some(s) = n.status.as_mut() {
            s.v_switch_ids = [("cn-hangzhou-j".to_string(), "vsw-2".to_string())].into();
        }
        let d = network_readiness(&elsewhere, Some(&n));
        assert_eq!(d.condition.reason, Reason::NetworkReady);
        assert_eq!(d.reference.unwrap().v_switch_id.as_deref(), Some("vsw-2"));
        // The own zone keeps the single subnet of older statuses.
        let d = network_readiness(&WANT, Some(&n));
        assert_eq!(d.reference.unwrap().v_switch_id.as_deref(), Some("vsw-1"));
    }

    #[test]
    fn extra_zones_and_subnet_blocks() {
        assert_eq!(
            extra_zones("a", ["b", "a", "c", "b"]),
            vec!["b".to_string(), "c".to_string()]
        );
        let vpc: Ipv4Net = "172.16.8.0/24".parse().unwrap();
        let first = subnet_block(&vpc, &[]).unwrap();
        assert_eq!(first.to_string(), "172.16.8.0/25");
        let second = subnet_block(&vpc, &[first]).unwrap();
        assert_eq!(second.to_string(), "172.16.8.128/27");
        let taken: Vec<Ipv4Net> = ["172.16.8.0/25", "172.16.8.128/27", "172.16.8.160/27"]
            .iter()
            .map(|c| c.parse().unwrap())
            .collect();
        assert_eq!(
            subnet_block(&vpc, &taken).unwrap().to_string(),
            "172.16.8.192/27"
        );
        let full: Vec<Ipv4Net> = vec![vpc];
        assert_eq!(subnet_block(&vpc, &full), None);
    }

    #[test]
    fn deletion_waits_only_for_placed_instances_and_never_skips_a_release() {
        let status = network(None, true).status;
        assert_eq!(
            network_cleanup(vec!["a".into()], DeletionPolicy::Delete, status.as_ref()),
            NetworkCleanup::InUse(vec!["a".into()])
        );
        assert_eq!(
            network_cleanup(vec![], DeletionPolicy::Orphan, status.as_ref()),
            NetworkCleanup::Orphan
        );
        assert_eq!(
            network_cleanup(vec![], DeletionPolicy::Delete, status.as_ref()),
            NetworkCleanup::Release
        );
        // A token persisted but no id yet: a create may have happened.
        let token_only = UserNetworkStatus {
            client_token: Some("t".into()),
            ..UserNetworkStatus::default()
        };
        assert_eq!(
            network_cleanup(vec![], DeletionPolicy::Delete, Some(&token_only)),
            NetworkCleanup::Release
        );
        assert_eq!(
            network_cleanup(vec![], DeletionPolicy::Delete, None),
            NetworkCleanup::NothingCreated
        );
    }

    #[test]
    fn only_instances_with_the_networks_ids_are_placed_in_it() {
        let mut inst = EcsInstance::new(
            "vm",
            serde_json::from_value(serde_json::json!({
                "userId": "u1", "imageKey": "k"
            }))
            .unwrap(),
        );
        assert!(!placed_in(&inst, "net"));
        inst.status = Some(crate::api::EcsInstanceStatus {
            network: Some(NetworkStatusRef {
                name: "net".into(),
                vpc_id: Some("vpc-1".into()),
                v_switch_id: Some("vsw-1".into()),
                security_group_id: Some("sg-1".into()),
            }),
            ..Default::default()
        });
        assert!(placed_in(&inst, "net"));
        assert!(!placed_in(&inst, "other"));
    }
}
