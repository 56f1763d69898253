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
/// `wanted`, and the network its creates go into: then a create may be sent without writing
/// first. (A deletion finds the instance's own security group in that network's VPC, and the
/// network knows the instance is placed in it, only from what the API server holds.)
pub fn tokens_held(held: &EcsInstanceStatus, wanted: &EcsInstanceStatus) -> bool {
    held.client_token == wanted.client_token
        && held.security_group_client_token == wanted.security_group_client_token
        && held.eip_client_token == wanted.eip_client_token
        && held.pending_create == wanted.pending_create
        && (wanted.network.is_none() || held.network == wanted.network)
}

/// At most this often is an object's status written while it only progresses (network
/// pending → instance starting → EIP binding): what the API server shows may be this much
/// behind the operator's own view then, never for a failure, a Ready, or a new generation.
pub const PROGRESS_WRITE_INTERVAL: Duration = Duration::from_secs(15);

/// Whether the end-of-pass status `next` may stay unwritten (kept in memory for the next pass)
/// although it differs from `held`, what the API server has, written `since_write` ago. Yes for
/// a new object's first progress (it is written at its first create, or once the interval has
/// passed), and for progress between progress: every ClientToken and pending create is held, nothing
/// failed or failing is shown or to be shown, Ready is false on both sides, the generation is
/// the same, and what differs is what a pass learns again (ids found by token or UID tag, the
/// network's ids, conditions, phase). A placement choice or a new token is always written.
pub fn defer_progress(
    held: Option<&EcsInstanceStatus>,
    next: &EcsInstanceStatus,
    since_write: Option<Duration>,
) -> bool {
    let Some(since) = since_write else {
        return false;
    };
    if since >= PROGRESS_WRITE_INTERVAL || held == Some(next) {
        return false;
    }
    let only_progress = |conditions: &[Condition]| {
        conditions.iter().all(|c| {
            let progress = Reason::from_wire(&c.reason).is_some_and(Reason::is_progress);
            if c.type_ == crate::api::conditions::READY {
                c.status != "True" && progress
            } else {
                c.status == "True" || progress
            }
        })
    };
    // Never written: its first write may wait too. Tokens and placement need not be held
    // before they are used — every create persists the status first (`tokens_held`).
    let Some(held) = held.filter(|h| !h.conditions.is_empty()) else {
        return only_progress(&next.conditions);
    };
    let creates_held = held.client_token == next.client_token
        && held.security_group_client_token == next.security_group_client_token
        && held.eip_client_token == next.eip_client_token
        && (next.pending_create.is_none() || next.pending_create == held.pending_create);
    creates_held
        && held.observed_generation == next.observed_generation
        && !held.conditions.is_empty()
        && only_progress(&held.conditions)
        && only_progress(&next.conditions)
        && relearnable_removed(held) == relearnable_removed(next)
}

/// The status without what a pass learns again from the cloud and the network.
fn relearnable_removed(status: &EcsInstanceStatus) -> EcsInstanceStatus {
    EcsInstanceStatus {
        conditions: Vec::new(),
        phase: None,
        instance_id: None,
        instance_id_learned_at: None,
        private_ip: None,
        public_ip: None,
        eip_allocation_id: None,
        eip_allocation_id_learned_at: None,
        security_group_id: None,
        network: None,
        pending_create: None,
        ..status.clone()
    }
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

    /// A status showing these (type, ok, reason) conditions, tokens decided.
    fn showing(conditions: &[(&'static str, bool, Reason)]) -> EcsInstanceStatus {
        let now = Time(Timestamp::now());
        let mut status = EcsInstanceStatus {
            client_token: Some("t-1".into()),
            eip_client_token: Some("t-2".into()),
            security_group_client_token: Some("t-3".into()),
            observed_generation: Some(1),
            region: Some("cn-hangzhou".into()),
            ..Default::default()
        };
        for (type_, ok, reason) in conditions {
            let desired = crate::api::conditions::Desired::new(type_, *ok, *reason, "m");
            crate::api::conditions::upsert(&mut status.conditions, &desired, Some(1), &now);
        }
        status
    }

    #[test]
    fn a_create_waits_for_its_tokens_and_network_to_be_held() {
        let held = showing(&[]);
        let mut wanted = held.clone();
        assert!(tokens_held(&held, &wanted));
        wanted.network = Some(crate::api::ecs_instance::NetworkStatusRef {
            name: "net-alice".into(),
            vpc_id: Some("vpc-1".into()),
            v_switch_id: Some("vsw-1".into()),
            security_group_id: Some("sg-1".into()),
        });
        assert!(
            !tokens_held(&held, &wanted),
            "the network is not written yet"
        );
        assert!(tokens_held(&wanted, &wanted));
        let mut new_token = wanted.clone();
        new_token.client_token = Some("t-9".into());
        assert!(!tokens_held(&wanted, &new_token));
    }

    #[test]
    fn progress_between_progress_stays_unwritten_for_a_while() {
        use crate::api::conditions::{INSTANCE_READY, NETWORK_READY, READY};
        let recent = Some(Duration::from_secs(2));
        let held = showing(&[
            (READY, false, Reason::NetworkPending),
            (NETWORK_READY, false, Reason::NetworkPending),
        ]);
        let mut starting = showing(&[
            (READY, false, Reason::Starting),
            (NETWORK_READY, true, Reason::NetworkReady),
            (INSTANCE_READY, false, Reason::Starting),
        ]);
        starting.instance_id = Some("i-1".into());
        starting.security_group_id = Some("sg-1".into());
        assert!(defer_progress(Some(&held), &starting, recent));

        // Written: once the interval passed, when unknown, or when nothing tells what is held.
        assert!(!defer_progress(
            Some(&held),
            &starting,
            Some(PROGRESS_WRITE_INTERVAL)
        ));
        assert!(!defer_progress(Some(&held), &starting, None));
        // A new object's first progress waits too (its first create writes it), a failure not.
        assert!(defer_progress(None, &starting, recent));
        assert!(defer_progress(
            Some(&EcsInstanceStatus::default()),
            &held,
            recent
        ));
        assert!(!defer_progress(None, &starting, None));

        // Ready, a failure shown or cleared, a new token or a placement are written at once.
        let ready = showing(&[(READY, true, Reason::Ready)]);
        assert!(!defer_progress(Some(&held), &ready, recent));
        let failing = showing(&[
            (READY, false, Reason::CreateFailed),
            (INSTANCE_READY, false, Reason::CreateFailed),
        ]);
        assert!(!defer_progress(Some(&held), &failing, recent));
        assert!(!defer_progress(None, &failing, recent));
        assert!(!defer_progress(Some(&failing), &starting, recent));
        let mut new_token = starting.clone();
        new_token.client_token = Some("t-9".into());
        assert!(!defer_progress(Some(&held), &new_token, recent));
        let mut placed = starting.clone();
        placed.zone = Some("cn-hangzhou-j".into());
        assert!(!defer_progress(Some(&held), &placed, recent));
        let mut next_generation = starting.clone();
        next_generation.observed_generation = Some(2);
        assert!(!defer_progress(Some(&held), &next_generation, recent));
        // A pending create not yet held must be written before its call; one cleared need not.
        let mut pending = starting.clone();
        pending.pending_create = Some(crate::api::PendingCreate {
            resource: "SecurityGroup".into(),
            at: "2026-11-27T00:00:00Z".into(),
        });
        assert!(!defer_progress(Some(&held), &pending, recent));
        assert!(defer_progress(Some(&pending), &starting, recent));
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
