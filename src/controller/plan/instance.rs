//! Decisions about the instance itself: what a cloud failure means for the object, how long to
//! back off, and whether an instance that Describe does not return is still starting or lost.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::api::Reason;
use crate::controller::error::Error;
use mce_cloud::ErrorClass;

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
        Reason::OutOfStock | Reason::QuotaExceeded => StepFailure::Capacity,
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

/// Decides from the `InstanceReady` condition the object carried: lost once it had been seen
/// running, or once it stayed invisible longer than [`VISIBILITY_GRACE`].
pub fn unseen_instance(instance_ready: Option<&Condition>, now: Timestamp) -> Unseen {
    let seen_running_or_overdue = instance_ready.is_some_and(|c| {
        c.status == "True" || now.duration_since(c.last_transition_time.0) > VISIBILITY_GRACE
    });
    if seen_running_or_overdue {
        Unseen::Lost
    } else {
        Unseen::Starting
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
        assert_eq!(unseen_instance(None, now), Unseen::Starting);
        assert_eq!(
            unseen_instance(Some(&condition("False", 1)), now),
            Unseen::Starting
        );
        assert_eq!(
            unseen_instance(Some(&condition("False", 6)), now),
            Unseen::Lost
        );
        assert_eq!(
            unseen_instance(Some(&condition("True", 0)), now),
            Unseen::Lost
        );
    }
}
