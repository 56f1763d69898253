//! Scheduling of an EcsInstance with a placement policy (Cheapest, Failover): before anything
//! is created, every candidate is asked for stock and a price and one is chosen; the choice,
//! the reasons and the price go to status, and every later step runs on the chosen candidate.
//! The choice stays until the instance exists (then it is pinned) unless a create on it is
//! refused for stock or quota ([`crate::api::placement::release_choice`]).

use std::time::Duration;

use jiff::Timestamp;
use tracing::info;

use super::super::context::Context;
use super::super::placement;
use super::super::status::Progress;
use crate::api::conditions;
use crate::api::ecs_instance::EcsInstanceStatus;
use crate::api::placement::{PlacementStatus, PriceStatus};
use crate::api::{EcsInstance, Reason};
use crate::metrics::{FailoverLabels, PlacementLabels, metrics};
use crate::scheduler::placement::{self as policy, Choice};

/// Chooses the candidate of a placed instance that has none yet. `None`: go on (a choice is
/// in `progress.status.placement`, or the instance is not placed); `Some(delay)`: no candidate
/// can take it now, look again after `delay`.
pub(super) async fn schedule(
    inst: &EcsInstance,
    ctx: &Context,
    progress: &mut Progress<EcsInstanceStatus>,
) -> Option<Duration> {
    let spec = inst.spec.placement.as_ref().filter(|_| inst.is_placed())?;
    let chosen = progress
        .status
        .placement
        .as_ref()
        .is_some_and(|p| p.provider.is_some());
    if chosen {
        return None;
    }
    let mut candidates = placement::evaluate(
        ctx,
        &inst.spec,
        &spec.candidates,
        progress.status.placement.as_ref(),
    )
    .await;
    policy::apply_budget(
        &mut candidates,
        placement::max_hourly(spec.max_hourly_price.as_deref()),
    );
    let policy_name = spec.policy.as_str();
    for c in candidates.iter().filter(|c| !c.available) {
        let reason = c.skipped.clone().unwrap_or_default();
        metrics()
            .failovers
            .get_or_create(&FailoverLabels {
                policy: policy_name,
                reason,
            })
            .inc();
    }
    match policy::choose(spec.policy, &candidates) {
        Choice::Chosen { index, reason } => {
            let c = &candidates[index];
            info!(provider = %c.provider, region = %c.region, zone = ?c.zone, %reason, "placed");
            metrics()
                .placements
                .get_or_create(&PlacementLabels {
                    provider: c.provider.clone(),
                    policy: policy_name,
                })
                .inc();
            progress.status.price = c.hourly.as_ref().map(|hourly| PriceStatus {
                currency: c.currency.clone().unwrap_or_default(),
                hourly: hourly.clone(),
                monthly: c.monthly.clone(),
                quoted_at: Timestamp::now().to_string(),
            });
            progress.status.placement = Some(PlacementStatus {
                provider: Some(c.provider.clone()),
                region: Some(c.region.clone()),
                zone: c.zone.clone(),
                instance_type: c.instance_type.clone(),
                reason: reason.clone(),
                policy: Some(spec.policy),
                candidates: candidates.clone(),
            });
            progress.step(conditions::SCHEDULED, true, Reason::Scheduled, reason);
            None
        }
        Choice::None { reason, message } => {
            progress.status.placement = Some(PlacementStatus {
                reason: message.clone(),
                policy: Some(spec.policy),
                candidates,
                ..PlacementStatus::default()
            });
            progress.status.price = None;
            progress.step(conditions::SCHEDULED, false, reason, message.clone());
            progress.step(conditions::INSTANCE_READY, false, reason, message);
            Some(reason.requeue())
        }
    }
}
