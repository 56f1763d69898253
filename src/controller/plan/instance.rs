//! Decisions about the instance itself: what a cloud failure means for the object, how long to
//! back off, and whether an instance that Describe does not return is still starting or lost.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::api::{EcsInstanceStatus, Reason};
use crate::controller::error::Error;
use mce_cloud::{ErrorClass, InstanceStatus};

/// Retry after a stock or quota failure.
pub const CAPACITY_REQUEUE: Duration = Duration::from_secs(30);
/// How long a created instance may stay invisible to Describe before it counts as lost.
pub const VISIBILITY_GRACE: SignedDuration = SignedDuration::from_secs(300);

/// The condition reason of a failed step: capacity, throttling and a refused request have
/// reasons of their own; anything else keeps its error's reason.
pub fn failure_reason(e: &Error) -> Reason {
    match e {
        Error::Cloud(c) => match c.class {
            ErrorClass::OutOfStock => Reason::OutOfStock,
            ErrorClass::SubnetFull => Reason::SubnetFull,
            ErrorClass::QuotaExceeded => Reason::QuotaExceeded,
            ErrorClass::Throttled => Reason::Throttled,
            ErrorClass::InvalidParameter | ErrorClass::IdempotencyMismatch => Reason::CreateFailed,
            other => other.into(),
        },
        other => other.reason(),
    }
}

/// How long to wait before retrying a failed live step (EIP, ports).
pub fn backoff_for(e: &Error) -> Duration {
    match failure_reason(e) {
        Reason::OutOfStock | Reason::QuotaExceeded => CAPACITY_REQUEUE,
        Reason::Throttled => Duration::from_secs(5),
        _ => Duration::from_secs(3),
    }
}

/// What a failed instance step does after recording its condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepFailure {
    /// No capacity (stock, quota): look again after [`CAPACITY_REQUEUE`].
    Capacity,
    /// The request can never succeed as it is: look again at the next resync.
    Spec,
    /// Anything else: the error goes to the error policy.
    Retry,
}

/// Classifies a failed instance step by its condition reason.
pub fn step_failure(reason: Reason) -> StepFailure {
    match reason {
        Reason::OutOfStock | Reason::QuotaExceeded | Reason::SubnetFull => StepFailure::Capacity,
        Reason::CreateFailed => StepFailure::Spec,
        _ => StepFailure::Retry,
    }
}

/// Whether a failed RunInstances needs a new ClientToken for the next attempt: the cloud
/// remembers a token's outcome, so retrying with it after no stock or a refused request
/// would return the same failure.
pub fn needs_new_token(class: ErrorClass) -> bool {
    class == ErrorClass::OutOfStock || class.is_terminal()
}

/// What an instance with a persisted id that Describe does not return is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unseen {
    /// Just created and not visible yet (eventual consistency): keep waiting.
    Starting,
    /// Deleted outside Kubernetes: create a new one.
    Lost,
}

/// Whether a resource whose id is in status (an instance, an EIP) but which the cloud does not
/// list is lost or merely not visible yet (read lag). Decided from its step condition (e.g.
/// `InstanceReady`, `PublicIpReady`) and the moment the id was learned: lost once the resource
/// had been seen ready, or once it stayed invisible longer than [`VISIBILITY_GRACE`] since its
/// id was learned. (The condition's own transition time can be old: it stayed False through
/// stock or quota retries before the create.) A status written before that moment was
/// recorded falls back to the condition's transition time.
pub fn unseen(
    instance_ready: Option<&Condition>,
    learned_at: Option<Timestamp>,
    now: Timestamp,
) -> Unseen {
    let seen_running = instance_ready.is_some_and(|c| c.status == "True");
    let since = learned_at.or_else(|| instance_ready.map(|c| c.last_transition_time.0));
    let overdue = since.is_some_and(|t| now.duration_since(t) > VISIBILITY_GRACE);
    if seen_running || overdue {
        Unseen::Lost
    } else {
        Unseen::Starting
    }
}

/// Whether the grace for a new instance (read lag of the instance or of its tags) still runs.
pub fn within_grace(learned_at: Option<Timestamp>, now: Timestamp) -> bool {
    learned_at.is_some_and(|t| now.duration_since(t) <= VISIBILITY_GRACE)
}

/// Look again after this at a stopped or unusable instance, or at an id refused as not this
/// object's: neither changes by itself soon.
pub const SLOW_REQUEUE: Duration = Duration::from_secs(30);

/// What an instance Describe returns is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceState {
    Running,
    /// Created or started and still booting: look again shortly.
    Booting,
    /// Stopping or stopped (an expired subscription stops it too): start it again.
    Stopped,
    /// Failed, being deleted or unknown: report it, look again slowly.
    Unavailable,
}

/// Whether `held` (what the API server has) carries every ClientToken and pending create of
/// `wanted`: then a create using them may be sent without writing first.
pub fn tokens_held(held: &EcsInstanceStatus, wanted: &EcsInstanceStatus) -> bool {
    held.client_token == wanted.client_token
        && held.security_group_client_token == wanted.security_group_client_token
        && held.eip_client_token == wanted.eip_client_token
        && held.pending_create == wanted.pending_create
}

/// Tells booting from stopped and from unusable, so only a booting instance is polled fast.
pub fn instance_state(status: &InstanceStatus) -> InstanceState {
    match status {
        InstanceStatus::Running => InstanceState::Running,
        InstanceStatus::Pending | InstanceStatus::Starting => InstanceState::Booting,
        InstanceStatus::Stopping | InstanceStatus::Stopped => InstanceState::Stopped,
        InstanceStatus::Terminated | InstanceStatus::Failed | InstanceStatus::Other(_) => {
            InstanceState::Unavailable
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use mce_cloud::CloudError;

    fn cloud(class: ErrorClass) -> Error {
        Error::Cloud(CloudError::new(class, "ALIYUN", "RunInstances", "X", "m"))
    }

    #[test]
    fn failure_reasons_name_capacity_throttling_and_refusals() {
        assert_eq!(
            failure_reason(&cloud(ErrorClass::OutOfStock)),
            Reason::OutOfStock
        );
        assert_eq!(
            failure_reason(&cloud(ErrorClass::QuotaExceeded)),
            Reason::QuotaExceeded
        );
        assert_eq!(
            failure_reason(&cloud(ErrorClass::Throttled)),
            Reason::Throttled
        );
        assert_eq!(
            failure_reason(&cloud(ErrorClass::InvalidParameter)),
            Reason::CreateFailed
        );
        assert_eq!(
            failure_reason(&cloud(ErrorClass::IdempotencyMismatch)),
            Reason::CreateFailed
        );
        assert_eq!(
            failure_reason(&cloud(ErrorClass::Authentication)),
            Reason::AuthenticationFailed
        );
        assert_eq!(failure_reason(&Error::Waiting("w".into())), Reason::Waiting);
    }

    #[test]
    fn backoff_by_reason() {
        assert_eq!(
            backoff_for(&cloud(ErrorClass::OutOfStock)),
            CAPACITY_REQUEUE
        );
        assert_eq!(
            backoff_for(&cloud(ErrorClass::QuotaExceeded)),
            CAPACITY_REQUEUE
        );
        assert_eq!(
            backoff_for(&cloud(ErrorClass::Throttled)),
            Duration::from_secs(5)
        );
        assert_eq!(
            backoff_for(&cloud(ErrorClass::Transient)),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn step_failures_and_tokens() {
        assert_eq!(step_failure(Reason::OutOfStock), StepFailure::Capacity);
        assert_eq!(step_failure(Reason::QuotaExceeded), StepFailure::Capacity);
        assert_eq!(step_failure(Reason::CreateFailed), StepFailure::Spec);
        assert_eq!(step_failure(Reason::Transient), StepFailure::Retry);
        assert!(needs_new_token(ErrorClass::OutOfStock));
        assert!(needs_new_token(ErrorClass::InvalidParameter));
        assert!(!needs_new_token(ErrorClass::QuotaExceeded));
        assert!(!needs_new_token(ErrorClass::Throttled));
    }

    #[test]
    fn unseen_instance_is_lost_once_seen_running_or_overdue() {
        let now: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let condition = |status: &str, minutes_ago: i64| Condition {
            type_: "InstanceReady".into(),
            status: status.into(),
            reason: "Starting".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: Time(now - SignedDuration::from_mins(minutes_ago)),
        };
        let ago = |minutes| Some(now - SignedDuration::from_mins(minutes));
        assert_eq!(unseen(None, None, now), Unseen::Starting);
        assert_eq!(
            unseen(Some(&condition("False", 1)), None, now),
            Unseen::Starting
        );
        assert_eq!(
            unseen(Some(&condition("False", 6)), None, now),
            Unseen::Lost
        );
        assert_eq!(unseen(Some(&condition("True", 0)), None, now), Unseen::Lost);
        // The grace runs from when the id was learned, not from the condition's last flip.
        assert_eq!(
            unseen(Some(&condition("False", 60)), ago(1), now),
            Unseen::Starting
        );
        assert_eq!(
            unseen(Some(&condition("False", 60)), ago(6), now),
            Unseen::Lost
        );
        assert!(within_grace(ago(1), now));
        assert!(!within_grace(ago(6), now));
        assert!(!within_grace(None, now));
    }

    #[test]
    fn stopped_is_not_booting() {
        use InstanceStatus as S;
        assert_eq!(instance_state(&S::Running), InstanceState::Running);
        for s in [S::Pending, S::Starting] {
            assert_eq!(instance_state(&s), InstanceState::Booting);
        }
        for s in [S::Stopping, S::Stopped] {
            assert_eq!(instance_state(&s), InstanceState::Stopped);
        }
        for s in [S::Failed, S::Terminated, S::Other("Expired".into())] {
            assert_eq!(instance_state(&s), InstanceState::Unavailable);
        }
    }
}
