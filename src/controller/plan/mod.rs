//! Decisions of the reconcilers as pure functions of (spec, observed state): which rules to open
//! or close, which tags to change, what to do with the public IP, whether the network can be
//! used, what a failure means, and what the summary condition, phase and next look are. The
//! reconcilers only carry them out.

mod instance;
mod live;
mod network;

use std::time::Duration;

pub use instance::{
    CAPACITY_REQUEUE, InstanceState, PROGRESS_WRITE_INTERVAL, SLOW_REQUEUE, StepFailure, Unseen,
    VISIBILITY_GRACE, backoff_for, defer_progress, failure_reason, instance_state, needs_new_token,
    step_failure, tokens_held, unseen, within_grace,
};
pub use live::{
    ANYWHERE, EipStep, Ownership, bandwidth_mode_refusal, eip_as_recorded, eip_settling, eip_step,
    instance_tags, ownership, ownership_refusal, port_changes, public_ip, public_ip_ready,
    tag_changes,
};
pub use network::{
    NetworkCleanup, NetworkDecision, NetworkWant, extra_zones, network_cleanup,
    network_failure_reason, network_readiness, placed_in, subnet_block, subnet_in_zone,
};

use crate::api::Reason;
use crate::api::conditions::{self, Desired};
use crate::api::ecs_instance::Phase;

/// Look again soon while the cloud is still moving (instance booting, EIP in transition).
pub const SHORT_REQUEUE: Duration = Duration::from_secs(1);
/// Look again after this when not ready and nothing asked for a sooner look.
const NOT_READY_REQUEUE: Duration = Duration::from_secs(5);

/// Whether a create of `resource` may be sent now. Clouds whose create takes no ClientToken
/// give a `grace` (their tag-index lag): while the create persisted as in flight is younger
/// than that, the resource may yet show up by its tags, so `Err(remaining)` says to look again
/// later instead of creating a second one.
pub fn untokened_create_gate(
    grace: Option<Duration>,
    pending: Option<&crate::api::PendingCreate>,
    resource: &str,
    now: jiff::Timestamp,
) -> Result<(), Duration> {
    let (Some(grace), Some(pending)) = (grace, pending) else {
        return Ok(());
    };
    let Ok(at) = pending.at.parse::<jiff::Timestamp>() else {
        return Ok(());
    };
    if pending.resource != resource {
        return Ok(());
    }
    let elapsed = now.duration_since(at);
    let grace = jiff::SignedDuration::try_from(grace).unwrap_or(jiff::SignedDuration::MAX);
    match grace.checked_sub(elapsed) {
        Some(left) if left.is_positive() => Err(Duration::try_from(left).unwrap_or_default()),
        _ => Ok(()),
    }
}

/// The summary `Ready` condition and phase from the step conditions.
pub fn summarize(steps: &[Desired]) -> (Desired, Phase) {
    let failing = steps.iter().find(|d| !d.status);
    // An instance whose tags could not be updated still runs.
    let instance_running = steps.iter().any(|d| {
        d.type_ == conditions::INSTANCE_READY && (d.status || d.reason == Reason::TagUpdateFailed)
    });
    match failing {
        None => (
            Desired::new(
                conditions::READY,
                true,
                Reason::Ready,
                "the instance runs with its network, public IP and ports",
            ),
            Phase::Running,
        ),
        Some(f) => {
            let phase = if f.reason.is_terminal() {
                Phase::Failed
            } else if instance_running {
                Phase::Running
            } else if f.type_ == conditions::INSTANCE_READY {
                Phase::Provisioning
            } else {
                Phase::Pending
            };
            (
                Desired::new(conditions::READY, false, f.reason, f.message.clone()),
                phase,
            )
        }
    }
}

/// Warning events are published when a condition turns to a new failure reason, so one failure
/// makes one event however often it is retried.
pub fn new_failures<'a>(
    previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    steps: &'a [Desired],
) -> Vec<&'a Desired> {
    steps
        .iter()
        .filter(|d| !d.status && !d.reason.is_progress())
        .filter(|d| {
            conditions::find(previous, d.type_)
                .is_none_or(|c| c.status == "True" || c.reason != d.reason.as_str())
        })
        .collect()
}

/// When to look at an EcsInstance again after a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requeue {
    After(Duration),
    /// Converged: the periodic drift check (resync, jittered by the caller).
    Resync,
}

/// The next look: a step's own retry wins; cloud writes of this pass are confirmed shortly
/// before the object counts as converged.
pub fn requeue(retry: Option<Duration>, cloud_changed: bool, ready: bool) -> Requeue {
    match retry {
        Some(delay) => Requeue::After(delay),
        None if cloud_changed => Requeue::After(SHORT_REQUEUE),
        None if ready => Requeue::Resync,
        None => Requeue::After(NOT_READY_REQUEUE),
    }
}

/// Whether a pass verified the object against the cloud: ready, nothing to retry, and no cloud
/// write whose effect is still to be observed.
pub fn converged(ready: bool, retry: Option<Duration>, cloud_changed: bool) -> bool {
    ready && retry.is_none() && !cloud_changed
}

/// The order of an EcsInstance's conditions in status.
pub const CONDITION_ORDER: [&str; 5] = [
    conditions::READY,
    conditions::NETWORK_READY,
    conditions::INSTANCE_READY,
    conditions::PUBLIC_IP_READY,
    conditions::PORTS_READY,
];

/// When to look again at an object whose input was refused before any cloud call: soon while
/// the refusal is progress (a provider not probed yet — its probe may reach this cache after the
/// event that would have woken the object), at the resync (a minute at most) when it needs a
/// spec change, and in between otherwise (a provider unavailable for now).
pub fn refusal_requeue(reason: Reason, resync: Duration) -> Duration {
    if reason.is_progress() {
        Duration::from_secs(2)
    } else if reason.is_terminal() {
        resync.min(Duration::from_secs(60))
    } else {
        resync.min(Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_phase() {
        let ok = |t| Desired::new(t, true, Reason::Running, "");
        let (ready, phase) = summarize(&[
            ok(conditions::NETWORK_READY),
            ok(conditions::INSTANCE_READY),
        ]);
        assert!(ready.status);
        assert_eq!(phase, Phase::Running);
        let (ready, phase) = summarize(&[
            ok(conditions::NETWORK_READY),
            ok(conditions::INSTANCE_READY),
            Desired::new(
                conditions::PUBLIC_IP_READY,
                false,
                Reason::QuotaExceeded,
                "m",
            ),
        ]);
        assert_eq!(
            (ready.status, ready.reason, phase),
            (false, Reason::QuotaExceeded, Phase::Running)
        );
        let (_, phase) = summarize(&[
            ok(conditions::NETWORK_READY),
            Desired::new(conditions::INSTANCE_READY, false, Reason::Starting, ""),
        ]);
        assert_eq!(phase, Phase::Provisioning);
        let (_, phase) = summarize(&[Desired::new(
            conditions::NETWORK_READY,
            false,
            Reason::TenantMismatch,
            "",
        )]);
        assert_eq!(phase, Phase::Failed);
        let (_, phase) = summarize(&[Desired::new(
            conditions::NETWORK_READY,
            false,
            Reason::NetworkPending,
            "",
        )]);
        assert_eq!(phase, Phase::Pending);
        // A running instance whose tags failed to update is still running.
        let (ready, phase) = summarize(&[
            ok(conditions::NETWORK_READY),
            Desired::new(
                conditions::INSTANCE_READY,
                false,
                Reason::TagUpdateFailed,
                "",
            ),
        ]);
        assert_eq!(
            (ready.status, ready.reason, phase),
            (false, Reason::TagUpdateFailed, Phase::Running)
        );
    }

    #[test]
    fn one_event_per_failure() {
        let t0 = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-01-01T00:00:00Z".parse().unwrap(),
        );
        let failing = [Desired::new(
            conditions::INSTANCE_READY,
            false,
            Reason::OutOfStock,
            "",
        )];
        assert_eq!(new_failures(&[], &failing).len(), 1);
        let previous = conditions::merge(&[], &failing, None, &t0);
        assert!(new_failures(&previous, &failing).is_empty());
        let other = [Desired::new(
            conditions::INSTANCE_READY,
            false,
            Reason::QuotaExceeded,
            "",
        )];
        assert_eq!(new_failures(&previous, &other).len(), 1);
    }

    #[test]
    fn requeue_decision() {
        let d = Duration::from_secs(7);
        assert_eq!(requeue(Some(d), true, true), Requeue::After(d));
        assert_eq!(requeue(None, true, true), Requeue::After(SHORT_REQUEUE));
        assert_eq!(requeue(None, false, true), Requeue::Resync);
        assert_eq!(
            requeue(None, false, false),
            Requeue::After(NOT_READY_REQUEUE)
        );
        assert!(converged(true, None, false));
        assert!(!converged(true, Some(d), false));
        assert!(!converged(true, None, true));
        assert!(!converged(false, None, false));
    }

    #[test]
    fn refusals_of_progress_are_looked_at_again_soon() {
        let resync = Duration::from_secs(300);
        assert_eq!(
            refusal_requeue(Reason::ProviderPending, resync),
            Duration::from_secs(2)
        );
        assert_eq!(
            refusal_requeue(Reason::UnknownImageKey, resync),
            Duration::from_secs(60)
        );
        assert_eq!(
            refusal_requeue(Reason::ProviderUnavailable, resync),
            Duration::from_secs(10)
        );
    }
}

#[cfg(test)]
mod untokened_create_tests {
    use super::*;
    use crate::api::PendingCreate;

    fn pending(resource: &str, at: &str) -> PendingCreate {
        PendingCreate {
            resource: resource.into(),
            at: at.into(),
        }
    }

    #[test]
    fn a_create_in_flight_is_waited_for_within_the_grace_only() {
        let now: jiff::Timestamp = "2026-11-27T10:00:10Z".parse().unwrap();
        let grace = Some(Duration::from_secs(15));
        let vpc = pending("vpc", "2026-11-27T10:00:00Z");
        assert_eq!(
            untokened_create_gate(grace, Some(&vpc), "vpc", now),
            Err(Duration::from_secs(5))
        );
        // Another resource, no grace (ClientTokens), nothing in flight, or the grace over.
        assert_eq!(
            untokened_create_gate(grace, Some(&vpc), "securityGroup", now),
            Ok(())
        );
        assert_eq!(untokened_create_gate(None, Some(&vpc), "vpc", now), Ok(()));
        assert_eq!(untokened_create_gate(grace, None, "vpc", now), Ok(()));
        let old = pending("vpc", "2026-11-27T09:59:00Z");
        assert_eq!(untokened_create_gate(grace, Some(&old), "vpc", now), Ok(()));
        let garbled = pending("vpc", "yesterday");
        assert_eq!(
            untokened_create_gate(grace, Some(&garbled), "vpc", now),
            Ok(())
        );
    }
}
