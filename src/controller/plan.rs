//! Decisions of the EcsInstance reconciler as pure functions of (spec, observed cloud state):
//! which rules to open or close, which tags to change, what to do with the public IP, and what
//! the summary condition and phase are. The reconciler only carries them out.

use std::collections::BTreeSet;

use crate::api::conditions::{self, Desired};
use crate::api::ecs_instance::Phase;
use crate::api::tags;
use mce_cloud::{Eip, EipStatus, PortRule, ProviderProfile, Tags};

/// Source of every opened port: the design opens ports to the internet.
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
        (_, Some(e)) if matches!(e.status, EipStatus::Associating | EipStatus::Unassociating) => {
            EipStep::Wait
        }
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

/// The summary `Ready` condition and phase from the step conditions.
pub fn summarize(steps: &[Desired]) -> (Desired, Phase) {
    let failing = steps.iter().find(|d| !d.status);
    let instance_running = steps
        .iter()
        .any(|d| d.type_ == conditions::INSTANCE_READY && d.status);
    match failing {
        None => (
            Desired::new(
                conditions::READY,
                true,
                "Ready",
                "the instance runs with its network, public IP and ports",
            ),
            Phase::Running,
        ),
        Some(f) => {
            let phase = if is_terminal_reason(&f.reason) {
                Phase::Failed
            } else if instance_running {
                Phase::Running
            } else if f.type_ == conditions::INSTANCE_READY {
                Phase::Provisioning
            } else {
                Phase::Pending
            };
            (
                Desired::new(
                    conditions::READY,
                    false,
                    f.reason.clone(),
                    f.message.clone(),
                ),
                phase,
            )
        }
    }
}

/// Reasons of a step that is simply not finished yet: no Warning for them.
pub fn is_progress_reason(reason: &str) -> bool {
    matches!(
        reason,
        "Starting" | "NetworkPending" | "Binding" | "Provisioning"
    )
}

/// Reasons that need a spec change, not a retry.
pub fn is_terminal_reason(reason: &str) -> bool {
    matches!(
        reason,
        "CreateFailed"
            | "TenantMismatch"
            | "NamespaceWithoutTenant"
            | "NetworkMismatch"
            | "ZoneMismatch"
            | "UnknownImageKey"
            | "UnknownGpuModel"
            | "NoMatchingSize"
            | "RegionRequired"
            | "ZoneRequired"
            | "InstanceTypeRequired"
            | "PasswordUnsupported"
            | "PasswordSecretNotFound"
            | "PasswordInvalid"
            | "ProviderRequired"
            | "ProviderNotFound"
    )
}

/// Warning events are published when a condition turns to a new failure reason, so one failure
/// makes one event however often it is retried.
pub fn new_failures<'a>(
    previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    steps: &'a [Desired],
) -> Vec<&'a Desired> {
    steps
        .iter()
        .filter(|d| !d.status && !is_progress_reason(&d.reason))
        .filter(|d| {
            conditions::find(previous, d.type_)
                .is_none_or(|c| c.status == "True" || c.reason != d.reason)
        })
        .collect()
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
    fn summary_and_phase() {
        let ok = |t| Desired::new(t, true, "Ok", "");
        let (ready, phase) = summarize(&[
            ok(conditions::NETWORK_READY),
            ok(conditions::INSTANCE_READY),
        ]);
        assert!(ready.status);
        assert_eq!(phase, Phase::Running);
        let (ready, phase) = summarize(&[
            ok(conditions::NETWORK_READY),
            ok(conditions::INSTANCE_READY),
            Desired::new(conditions::PUBLIC_IP_READY, false, "QuotaExceeded", "m"),
        ]);
        assert_eq!(
            (ready.status, ready.reason.as_str(), phase),
            (false, "QuotaExceeded", Phase::Running)
        );
        let (_, phase) = summarize(&[
            ok(conditions::NETWORK_READY),
            Desired::new(conditions::INSTANCE_READY, false, "Starting", ""),
        ]);
        assert_eq!(phase, Phase::Provisioning);
        let (_, phase) = summarize(&[Desired::new(
            conditions::NETWORK_READY,
            false,
            "TenantMismatch",
            "",
        )]);
        assert_eq!(phase, Phase::Failed);
        let (_, phase) = summarize(&[Desired::new(
            conditions::NETWORK_READY,
            false,
            "NetworkPending",
            "",
        )]);
        assert_eq!(phase, Phase::Pending);
    }

    #[test]
    fn one_event_per_failure() {
        let t0 = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-01-01T00:00:00Z".parse().unwrap(),
        );
        let failing = [Desired::new(
            conditions::INSTANCE_READY,
            false,
            "OutOfStock",
            "",
        )];
        assert_eq!(new_failures(&[], &failing).len(), 1);
        let previous = conditions::merge(&[], &failing, None, &t0);
        assert!(new_failures(&previous, &failing).is_empty());
        let other = [Desired::new(
            conditions::INSTANCE_READY,
            false,
            "QuotaExceeded",
            "",
        )];
        assert_eq!(new_failures(&previous, &other).len(), 1);
    }
}
