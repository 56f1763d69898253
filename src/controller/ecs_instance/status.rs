//! The end of every EcsInstance pass: settle the conditions, write the status once, publish
//! events for new failures and for becoming Ready, and decide when to look again.

use std::time::Duration;

use kube::Resource;

use super::super::error::Result;
use super::super::plan::{self, Requeue};
use super::super::status::{Progress, warn_new_failures};
use super::{Outcome, Sinks};
use crate::api::conditions;
use crate::api::{EcsInstance, EcsInstanceStatus, Reason};

/// Writes the status if it changed, publishes events for new failures and for becoming Ready,
/// and decides when to look again (`retry` None: the summary decides).
pub async fn finish(
    inst: &EcsInstance,
    sinks: &Sinks<'_>,
    mut progress: Progress<EcsInstanceStatus>,
    retry: Option<Duration>,
) -> Result<Requeue> {
    let (ready, phase) = plan::summarize(&progress.steps);
    let previous = inst
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    progress.settle(
        &previous,
        Some(ready.clone()),
        inst.meta().generation,
        &plan::CONDITION_ORDER,
    );
    progress.status.phase = Some(phase);
    // Only now do the conditions describe this generation.
    progress.status.observed_generation = inst.meta().generation;

    let became_ready = ready.status && !conditions::is_true(&previous, conditions::READY);
    let held = sinks.status.known();
    let deferred =
        plan::defer_progress(held.as_ref(), &progress.status, sinks.status.since_write())
            && sinks.status.defer(&progress.status);
    if !deferred {
        progress.save(sinks.status).await?;
    }
    sinks
        .status
        .mark_verified(plan::converged(ready.status, retry, progress.cloud_changed));
    warn_new_failures(sinks.events, &previous, &progress.steps, |f| f.type_).await;
    if became_ready {
        let ip = progress
            .status
            .public_ip
            .clone()
            .unwrap_or_else(|| "none".into());
        let id = progress.status.instance_id.clone().unwrap_or_default();
        sinks
            .events
            .publish(
                false,
                Reason::Ready,
                format!("instance {id} is ready (public IP {ip})"),
                "Reconcile",
            )
            .await;
    }
    Ok(plan::requeue(retry, progress.cloud_changed, ready.status))
}

/// Settles the conditions decided so far in the middle of a pass under a Ready that is false
/// while cloud resources are created (a status written before a create shows it).
pub fn provisional(inst: &EcsInstance, progress: &mut Progress<EcsInstanceStatus>) {
    let previous = inst
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let creating = conditions::Desired::new(
        conditions::READY,
        false,
        Reason::Provisioning,
        "creating the cloud resources",
    );
    progress.settle(
        &previous,
        Some(creating),
        inst.meta().generation,
        &plan::CONDITION_ORDER,
    );
    progress.status.phase = Some(crate::api::ecs_instance::Phase::Provisioning);
    progress.status.observed_generation = inst.meta().generation;
}

/// Finishes a pass as its outcome says: a failed one writes its status, then returns the error.
pub async fn conclude(
    inst: &EcsInstance,
    sinks: &Sinks<'_>,
    progress: Progress<EcsInstanceStatus>,
    outcome: Outcome,
) -> Result<Requeue> {
    match outcome {
        Outcome::Finish(retry) => finish(inst, sinks, progress, retry).await,
        Outcome::Fail(e) => {
            finish(inst, sinks, progress, None).await?;
            Err(e)
        }
    }
}
