//! Whether an EcsInstance's UserNetwork can be used: the `NetworkReady` decision.

use crate::api::conditions::{self, Desired};
use crate::api::ecs_instance::NetworkStatusRef;
use crate::api::{Reason, UserNetwork};
use crate::controller::error::Error;
use crate::controller::tenancy::TenancyError;

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
    if let Some(zone) = &status.zone
        && zone != want.zone
    {
        return NetworkDecision::not_ready(
            Reason::ZoneMismatch,
            format!(
                "UserNetwork {name} has its subnet in zone {zone}, the instance wants {}",
                want.zone
            ),
        );
    }
    let ready = conditions::find(&status.conditions, conditions::READY);
    let ids = (status.vpc_id, status.v_switch_id, status.security_group_id);
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
    use crate::api::{DeletionPolicy, UserNetworkSpec, UserNetworkStatus};
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
        let n = network(Some(("True", "NetworkReady")), true);
        let elsewhere = NetworkWant {
            zone: "cn-hangzhou-j",
            ..WANT
        };
        assert_eq!(decide(&elsewhere, Some(&n)).1, Reason::ZoneMismatch);
    }
}
