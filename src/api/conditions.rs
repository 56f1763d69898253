//! Status conditions: a list keyed by `type` (so server-side apply merges by type), whose
//! `lastTransitionTime` changes only when the status flips.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::Schema;

use super::Reason;

/// Condition types.
pub const READY: &str = "Ready";
pub const NETWORK_READY: &str = "NetworkReady";
pub const INSTANCE_READY: &str = "InstanceReady";
pub const PUBLIC_IP_READY: &str = "PublicIpReady";
pub const PORTS_READY: &str = "PortsReady";
pub const AVAILABLE: &str = "Available";
/// EcsInstance with a placement policy: a candidate was chosen.
pub const SCHEDULED: &str = "Scheduled";
/// PriceQuote: every candidate was asked.
pub const QUOTED: &str = "Quoted";

/// Schema of a condition list, marked as a list-map keyed by `type`.
pub fn conditions_schema(generator: &mut schemars::SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}

/// A desired condition, before timestamps are settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub type_: &'static str,
    pub status: bool,
    pub reason: Reason,
    pub message: String,
}

impl Desired {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: Reason,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

fn status_str(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// Builds the condition list from the desired conditions, keeping `lastTransitionTime` of every
/// condition whose status did not change (so an unchanged reconcile writes an identical status).
pub fn merge(
    previous: &[Condition],
    desired: &[Desired],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    desired
        .iter()
        .map(|d| {
            let status = status_str(d.status);
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == d.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: d.type_.to_string(),
                status: status.to_string(),
                reason: d.reason.as_str().to_string(),
                message: d.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// Sets one condition in place (same rules as [`merge`]), keeping the others and their order.
pub fn upsert(
    conditions: &mut Vec<Condition>,
    desired: &Desired,
    generation: Option<i64>,
    now: &Time,
) {
    let updated = merge(conditions, std::slice::from_ref(desired), generation, now);
    match conditions.iter_mut().find(|c| c.type_ == desired.type_) {
        Some(existing) => {
            *existing = updated
                .into_iter()
                .next()
                .unwrap_or_else(|| existing.clone())
        }
        None => conditions.extend(updated),
    }
}

/// The condition of a type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether a condition of a type is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let t0 = time("2026-01-01T00:00:00Z");
        let t1 = time("2026-01-01T00:01:00Z");
        let first = merge(
            &[],
            &[Desired::new(READY, false, Reason::Provisioning, "")],
            Some(1),
            &t0,
        );
        let same = merge(
            &first,
            &[Desired::new(READY, false, Reason::Provisioning, "")],
            Some(1),
            &t1,
        );
        assert_eq!(first, same);
        let flipped = merge(
            &same,
            &[Desired::new(READY, true, Reason::Ready, "")],
            Some(1),
            &t1,
        );
        assert_eq!(flipped[0].last_transition_time, t1);
        assert!(is_true(&flipped, READY));
        assert!(!is_true(&flipped, NETWORK_READY));
    }
}
