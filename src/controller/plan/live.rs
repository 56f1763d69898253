//! Decisions about a live instance's cloud resources: which rules to open or close, which tags
//! to change, what to do with the public IP and whether it is ready.

use std::collections::BTreeSet;

use crate::api::conditions::{self, Desired};
use crate::api::tags;
use crate::api::{EcsInstanceStatus, Reason};
use mce_cloud::{Eip, Instance, PortRule, ProviderProfile, Tags};

/// Source of every opened port: ports are opened to the internet.
pub const ANYWHERE: &str = "0.0.0.0/0";

/// Rules to authorize and to revoke so the group holds exactly the wanted ports.
pub fn port_changes(
    wanted: &[i32],
    current: &[PortRule],
    description: &str,
) -> (Vec<PortRule>, Vec<PortRule>) {
    let wanted: BTreeSet<u16> = wanted
        .iter()
        .filter_map(|p| u16::try_from(*p).ok())
        .filter(|p| *p > 0)
        .collect();
    let open: BTreeSet<u16> = current
        .iter()
        .filter(|r| r.source_cidr == ANYWHERE)
        .map(|r| r.port)
        .collect();
    let add = wanted
        .difference(&open)
        .map(|port| PortRule {
            port: *port,
            source_cidr: ANYWHERE.into(),
            description: description.into(),
        })
        .collect();
    // Rules from other sources were not made by us: anything in the instance's own group that is
    // not wanted is closed.
    let remove = current
        .iter()
        .filter(|r| r.source_cidr != ANYWHERE || !wanted.contains(&r.port))
        .cloned()
        .collect();
    (add, remove)
}

/// Tags to set and tag keys to remove so the instance carries exactly the desired tags.
/// Keys the cloud owns (the profile's reserved prefixes) are never removed.
pub fn tag_changes(
    desired: &Tags,
    current: &Tags,
    profile: &ProviderProfile,
) -> (Tags, Vec<String>) {
    let set: Tags = desired
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let remove = current
        .keys()
        .filter(|k| !desired.contains_key(*k) && !profile.is_reserved_tag(k))
        .cloned()
        .collect();
    (set, remove)
}

/// What to do next with the public IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EipStep {
    /// Nothing to do: the wanted state holds.
    Done,
    /// Allocate a new EIP (none exists for this object).
    Allocate,
    /// Associate the allocated EIP with the instance.
    Associate(String),
    /// Change the bandwidth of the associated EIP.
    SetBandwidth(String, u32),
    /// Detach the EIP from the instance before release.
    Disassociate(String),
    /// Release the detached EIP.
    Release(String),
    /// The cloud is still moving the EIP between states: look again shortly.
    Wait,
}

/// The next EIP step for `wanted` bandwidth (None: no public IP wanted).
pub fn eip_step(wanted: Option<u32>, eip: Option<&Eip>, instance_id: &str) -> EipStep {
    match (wanted, eip) {
        (None, None) => EipStep::Done,
        (Some(_), None) => EipStep::Allocate,
        (_, Some(e)) if e.status.is_transitional() => EipStep::Wait,
        (None, Some(e)) if e.instance_id.is_some() => {
            EipStep::Disassociate(e.allocation_id.clone())
        }
        (None, Some(e)) => EipStep::Release(e.allocation_id.clone()),
        (Some(mbps), Some(e)) => {
            if e.instance_id.as_deref() != Some(instance_id) {
                if e.instance_id.is_some() {
                    EipStep::Disassociate(e.allocation_id.clone())
                } else {
                    EipStep::Associate(e.allocation_id.clone())
                }
            } else if e.bandwidth_mbps != mbps {
                EipStep::SetBandwidth(e.allocation_id.clone(), mbps)
            } else {
                EipStep::Done
            }
        }
    }
}

/// The `PublicIpReady` condition while the cloud moves the EIP between states (allocating,
/// binding, unbinding, releasing: asynchronous on Tencent Cloud).
pub fn eip_settling(eip: &Eip) -> Desired {
    Desired::new(
        conditions::PUBLIC_IP_READY,
        false,
        Reason::Binding,
        format!(
            "EIP {} is {:?}; waiting for the cloud to settle it",
            eip.allocation_id, eip.status
        ),
    )
}

/// The `PublicIpReady` condition for `wanted` bandwidth (None: no public IP wanted), given the
/// EIP found for the instance (if any) once the EIP steps are done.
pub fn public_ip_ready(wanted: Option<u32>, eip: Option<&Eip>, instance_id: &str) -> Desired {
    let attached = eip.filter(|e| e.instance_id.as_deref() == Some(instance_id));
    match (wanted, attached) {
        (None, _) if eip.is_none() => Desired::new(
            conditions::PUBLIC_IP_READY,
            true,
            Reason::NotRequested,
            "no public IP wanted",
        ),
        (Some(w), Some(e)) if e.bandwidth_mbps == w => Desired::new(
            conditions::PUBLIC_IP_READY,
            true,
            Reason::Bound,
            format!("EIP {} is bound", e.ip_address),
        ),
        _ => Desired::new(
            conditions::PUBLIC_IP_READY,
            false,
            Reason::Binding,
            "the EIP is moving between states",
        ),
    }
}

/// The public IP shown in status: the attached EIP's address, else one the instance has that is
/// not an EIP. (The instance was described before the EIP steps, so its own view of the EIP may
/// be stale.)
pub fn public_ip(eip: Option<&Eip>, instance: &Instance) -> Option<String> {
    eip.filter(|e| e.instance_id.as_deref() == Some(instance.id.as_str()))
        .map(|e| e.ip_address.clone())
        .or_else(|| {
            instance
                .public_ip
                .clone()
                .filter(|_| instance.eip_allocation_id.is_none())
        })
}

/// Whether the instance's own description shows the EIP in status still bound to it: its
/// address, and its allocation id where the cloud lists one with the instance (Tencent lists
/// only the address). Then a resync need not describe the EIP.
pub fn eip_as_recorded(instance: &Instance, status: &EcsInstanceStatus) -> bool {
    let (Some(allocation), Some(ip)) = (&status.eip_allocation_id, &status.public_ip) else {
        return false;
    };
    instance.public_ip.as_ref() == Some(ip)
        && instance
            .eip_allocation_id
            .as_ref()
            .is_none_or(|id| id == allocation)
}

/// Whose a cloud resource named by an id in status is, by its tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// It carries this object's UID tag (and no other tenant's tag).
    Owned,
    /// It carries another object's UID or another tenant's tag: never act on it.
    Foreign,
    /// It carries no UID tag (tags may lag behind a create): do nothing to it for now.
    Untagged,
}

/// Decides ownership from a resource's tags: an id in status is not proof (status can be
/// edited), the UID tag set at creation is.
pub fn ownership(resource_tags: &Tags, uid: &str, tenant: Option<&str>) -> Ownership {
    match resource_tags.get(tags::OBJECT_UID) {
        None => Ownership::Untagged,
        Some(v) if v != uid => Ownership::Foreign,
        Some(_) => match (tenant, resource_tags.get(tags::TENANT)) {
            (Some(want), Some(have)) if want != have => Ownership::Foreign,
            _ => Ownership::Owned,
        },
    }
}

/// The condition refusing to act on a resource that is not (or not yet seen as) this object's.
pub fn ownership_refusal(type_: &'static str, what: &str, ownership: Ownership) -> Desired {
    let (reason, why) = match ownership {
        Ownership::Untagged => (
            Reason::OwnershipUnconfirmed,
            "does not carry this object's multicloud-ecs/uid tag (yet)",
        ),
        _ => (
            Reason::OwnershipMismatch,
            "belongs to another object or tenant",
        ),
    };
    Desired::new(
        type_,
        false,
        reason,
        format!("{what} named in status {why}; the operator does not act on it"),
    )
}

/// The `PublicIpReady` refusal when the bound EIP is billed otherwise than wanted: the cloud
/// cannot change an EIP's billing in place, and replacing it would change the address.
pub fn bandwidth_mode_refusal(allocated: Option<&str>, wanted: &str) -> Option<Desired> {
    let allocated = allocated.filter(|a| *a != wanted)?;
    Some(Desired::new(
        conditions::PUBLIC_IP_READY,
        false,
        Reason::BandwidthModeImmutable,
        format!(
            "the EIP is billed {allocated} and cannot be changed to {wanted}: revert \
             publicIp.bandwidthMode, or turn publicIp.allocate off and on for a new EIP"
        ),
    ))
}

/// Tags of every resource made for an instance.
pub fn instance_tags(base: Tags) -> Tags {
    let mut t = base;
    t.insert(tags::ROLE.into(), tags::ROLE_INSTANCE.into());
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use mce_cloud::{EipStatus, InstanceStatus};

    fn rule(port: u16, cidr: &str) -> PortRule {
        PortRule {
            port,
            source_cidr: cidr.into(),
            description: String::new(),
        }
    }

    #[test]
    fn ports_are_reconciled_both_ways() {
        let (add, remove) = port_changes(
            &[22, 8888],
            &[
                rule(22, ANYWHERE),
                rule(80, ANYWHERE),
                rule(22, "10.0.0.0/8"),
            ],
            "d",
        );
        assert_eq!(add.iter().map(|r| r.port).collect::<Vec<_>>(), vec![8888]);
        assert_eq!(remove, vec![rule(80, ANYWHERE), rule(22, "10.0.0.0/8")]);
        let (add, remove) = port_changes(&[22], &[rule(22, ANYWHERE)], "d");
        assert!(add.is_empty() && remove.is_empty());
    }

    #[test]
    fn tags_are_reconciled_but_provider_keys_kept() {
        let desired = Tags::from([("a".into(), "1".into()), ("b".into(), "2".into())]);
        let current = Tags::from([
            ("a".into(), "0".into()),
            ("c".into(), "3".into()),
            ("acs:x".into(), "y".into()),
        ]);
        let (set, remove) = tag_changes(&desired, &current, &mce_cloud_aliyun::PROFILE);
        assert_eq!(set, desired);
        assert_eq!(remove, vec!["c".to_string()]);
        assert_eq!(
            tag_changes(&desired, &desired, &mce_cloud_aliyun::PROFILE),
            (Tags::new(), vec![])
        );
    }

    fn eip(instance: Option<&str>, status: EipStatus, mbps: u32) -> Eip {
        Eip {
            allocation_id: "eip-1".into(),
            ip_address: "1.2.3.4".into(),
            status,
            instance_id: instance.map(Into::into),
            bandwidth_mbps: mbps,
            tags: Tags::new(),
        }
    }

    #[test]
    fn eip_steps() {
        assert_eq!(eip_step(None, None, "i-1"), EipStep::Done);
        assert_eq!(eip_step(Some(5), None, "i-1"), EipStep::Allocate);
        assert_eq!(
            eip_step(Some(5), Some(&eip(None, EipStatus::Available, 5)), "i-1"),
            EipStep::Associate("eip-1".into())
        );
        assert_eq!(
            eip_step(Some(5), Some(&eip(Some("i-1"), EipStatus::InUse, 5)), "i-1"),
            EipStep::Done
        );
        assert_eq!(
            eip_step(
                Some(10),
                Some(&eip(Some("i-1"), EipStatus::InUse, 5)),
                "i-1"
            ),
            EipStep::SetBandwidth("eip-1".into(), 10)
        );
        assert_eq!(
            eip_step(Some(5), Some(&eip(Some("i-2"), EipStatus::InUse, 5)), "i-1"),
            EipStep::Disassociate("eip-1".into())
        );
        assert_eq!(
            eip_step(None, Some(&eip(Some("i-1"), EipStatus::InUse, 5)), "i-1"),
            EipStep::Disassociate("eip-1".into())
        );
        assert_eq!(
            eip_step(None, Some(&eip(None, EipStatus::Available, 5)), "i-1"),
            EipStep::Release("eip-1".into())
        );
        assert_eq!(
            eip_step(
                None,
                Some(&eip(Some("i-1"), EipStatus::Unassociating, 5)),
                "i-1"
            ),
            EipStep::Wait
        );
    }

    #[test]
    fn public_ip_ready_compares_wanted_and_attached() {
        let bound = eip(Some("i-1"), EipStatus::InUse, 5);
        let ready = public_ip_ready(None, None, "i-1");
        assert_eq!((ready.status, ready.reason), (true, Reason::NotRequested));
        let ready = public_ip_ready(Some(5), Some(&bound), "i-1");
        assert_eq!((ready.status, ready.reason), (true, Reason::Bound));
        assert_eq!(ready.message, "EIP 1.2.3.4 is bound");
        // Attached elsewhere, wrong bandwidth, or still there though unwanted: not yet.
        for (wanted, instance) in [(Some(5), "i-2"), (Some(10), "i-1"), (None, "i-1")] {
            let ready = public_ip_ready(wanted, Some(&bound), instance);
            assert_eq!((ready.status, ready.reason), (false, Reason::Binding));
        }
        assert_eq!(
            public_ip_ready(Some(5), None, "i-1").reason,
            Reason::Binding
        );
    }

    #[test]
    fn ownership_comes_from_the_uid_and_tenant_tags() {
        let t = |pairs: &[(&str, &str)]| -> Tags {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let ours = t(&[(tags::OBJECT_UID, "u1"), (tags::TENANT, "t1")]);
        assert_eq!(ownership(&ours, "u1", Some("t1")), Ownership::Owned);
        assert_eq!(ownership(&ours, "u2", Some("t1")), Ownership::Foreign);
        assert_eq!(ownership(&ours, "u1", Some("t2")), Ownership::Foreign);
        assert_eq!(ownership(&t(&[]), "u1", None), Ownership::Untagged);
        assert_eq!(
            ownership_refusal("X", "EIP e", Ownership::Foreign).reason,
            Reason::OwnershipMismatch
        );
        assert_eq!(
            ownership_refusal("X", "EIP e", Ownership::Untagged).reason,
            Reason::OwnershipUnconfirmed
        );
    }

    #[test]
    fn a_bandwidth_mode_change_is_refused() {
        assert_eq!(bandwidth_mode_refusal(None, "A"), None);
        assert_eq!(bandwidth_mode_refusal(Some("A"), "A"), None);
        let refusal = bandwidth_mode_refusal(Some("A"), "B").expect("refused");
        assert_eq!(refusal.reason, Reason::BandwidthModeImmutable);
        assert!(Reason::BandwidthModeImmutable.is_terminal());
    }

    #[test]
    fn public_ip_prefers_the_attached_eip() {
        let mut instance = Instance {
            id: "i-1".into(),
            status: mce_cloud::InstanceStatus::Running,
            instance_type: "t".into(),
            zone: "z".into(),
            private_ip: None,
            public_ip: Some("9.9.9.9".into()),
            eip_allocation_id: Some("eip-1".into()),
            tags: Tags::new(),
        };
        let bound = eip(Some("i-1"), EipStatus::InUse, 5);
        assert_eq!(
            public_ip(Some(&bound), &instance).as_deref(),
            Some("1.2.3.4")
        );
        assert_eq!(public_ip(None, &instance), None);
        instance.eip_allocation_id = None;
        assert_eq!(public_ip(None, &instance).as_deref(), Some("9.9.9.9"));
    }

    #[test]
    fn an_eip_is_as_recorded_when_the_instance_shows_its_address_and_id() {
        let mut status = EcsInstanceStatus {
            eip_allocation_id: Some("eip-1".into()),
            public_ip: Some("1.2.3.4".into()),
            ..Default::default()
        };
        let mut inst = Instance {
            id: "i-1".into(),
            status: InstanceStatus::Running,
            instance_type: "t".into(),
            zone: "z".into(),
            private_ip: None,
            public_ip: Some("1.2.3.4".into()),
            eip_allocation_id: Some("eip-1".into()),
            tags: Default::default(),
        };
        assert!(eip_as_recorded(&inst, &status));
        // Tencent lists the address only.
        inst.eip_allocation_id = None;
        assert!(eip_as_recorded(&inst, &status));
        inst.eip_allocation_id = Some("eip-2".into());
        assert!(!eip_as_recorded(&inst, &status), "another EIP");
        inst.eip_allocation_id = Some("eip-1".into());
        inst.public_ip = None;
        assert!(!eip_as_recorded(&inst, &status), "detached");
        inst.public_ip = Some("1.2.3.4".into());
        status.eip_allocation_id = None;
        assert!(!eip_as_recorded(&inst, &status), "no EIP recorded");
    }
}
