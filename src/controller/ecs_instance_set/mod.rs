//! EcsInstanceSet reconciler: lists the set's children (fresh from the API server, so a lagging
//! cache never makes it create or delete twice), lets [`plan::decide`] choose what to create,
//! delete and patch, does it, and writes the status the scale subresource reads.
//!
//! The set carries the operator's finalizer: deleting it deletes its children and waits until
//! they are gone (their own finalizer releases their cloud resources), with or without the
//! Kubernetes garbage collector.

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::{info, instrument, warn};

use super::context::Context;
use super::error::{Error, Result};
use super::finalizer::{self, Phase};
use crate::api::conditions::{self, Desired};
use crate::api::ecs_instance::Phase as InstancePhase;
use crate::api::ecs_instance_set::SET_LABEL;
use crate::api::{EcsInstance, EcsInstanceSet, EcsInstanceSetStatus, Reason};
use plan::Child;

/// How soon a set that is converging looks at its children again (child events wake it
/// sooner).
const CONVERGING_REQUEUE: Duration = Duration::from_secs(5);
/// Children created (or deleted) per reconcile: large sets grow in a few passes instead of one
/// long burst of API calls holding the reconcile.
const MAX_WRITES_PER_PASS: usize = 100;
/// Child creates sent at once.
const CREATES_IN_FLIGHT: usize = 16;
/// When the next batch of a capped pass goes out.
const NEXT_BATCH: Duration = Duration::from_millis(100);

#[instrument(skip_all, fields(ecsinstanceset = %format!("{}/{}", set.namespace().unwrap_or_default(), set.name_any())))]
pub async fn reconcile(set: Arc<EcsInstanceSet>, ctx: Arc<Context>) -> Result<Action> {
    finalizer::reconcile(set, &ctx, |phase| async {
        match phase {
            Phase::Apply(set) => apply(&set, &ctx).await,
            Phase::Cleanup(set) => cleanup(&set, &ctx).await,
        }
    })
    .await
}

fn children_api(set: &EcsInstanceSet, ctx: &Context) -> Api<EcsInstance> {
    Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default())
}

/// The set's children: labelled with its name and owned (controller reference) by its UID.
async fn children(set: &EcsInstanceSet, ctx: &Context) -> Result<Vec<EcsInstance>> {
    let uid = set.uid().unwrap_or_default();
    let list = children_api(set, ctx)
        .list(&ListParams::default().labels(&format!("{SET_LABEL}={}", set.name_any())))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|c| {
            c.owner_references()
                .iter()
                .any(|o| o.uid == uid && o.controller == Some(true))
        })
        .collect())
}

/// What the planner needs of a child.
fn child_view(set: &EcsInstanceSet, child: &EcsInstance) -> Child {
    let template = &set.spec.template;
    let status = child.status.as_ref();
    let labels = plan::child_labels(&set.name_any(), &template.metadata.labels);
    let labels_ok = labels.iter().all(|(k, v)| child.labels().get(k) == Some(v));
    let failed = status
        .filter(|s| s.phase == Some(InstancePhase::Failed))
        .map(|s| {
            conditions::find(&s.conditions, conditions::READY)
                .map(|c| format!("{}: {}", c.reason, c.message))
                .unwrap_or_else(|| "phase Failed".into())
        });
    Child {
        name: child.name_any(),
        created: child
            .meta()
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
        deleting: child.meta().deletion_timestamp.is_some(),
        up_to_date: plan::up_to_date(&child.spec, &template.spec, &set.spec.spread_zones),
        in_sync: labels_ok && plan::view(&child.spec, true) == plan::view(&template.spec, true),
        ready: status.is_some_and(|s| conditions::is_true(&s.conditions, conditions::READY)),
        failed,
        zone: child.spec.zone.clone(),
    }
}

async fn apply(set: &EcsInstanceSet, ctx: &Context) -> Result<Action> {
    let name = set.name_any();
    let template = &set.spec.template;
    let selector = plan::selector(&name, set.spec.selector.as_ref(), &template.metadata.labels);
    let mut status = EcsInstanceSetStatus {
        observed_generation: set.meta().generation,
        selector: Some(plan::selector_string(&selector)),
        ..Default::default()
    };
    let previous = set.status.clone().unwrap_or_default();

    let child_labels = plan::child_labels(&name, &template.metadata.labels);
    if !plan::selects(&selector, &child_labels) {
        let message = "spec.selector does not select the template's labels".to_string();
        status.conditions = conditions::merge(
            &previous.conditions,
            &[Desired::new(
                conditions::READY,
                false,
                Reason::SelectorMismatch,
                message.clone(),
            )],
            set.meta().generation,
            &Time(Timestamp::now()),
        );
        save(
            set,
            ctx,
            &previous,
            &status,
            Some((Reason::SelectorMismatch, message)),
        )
        .await?;
        return Ok(Action::requeue(super::jittered(ctx.config.resync)));
    }

    let kids = children(set, ctx).await?;
    let views: Vec<Child> = kids.iter().map(|c| child_view(set, c)).collect();
    let replicas = usize::try_from(set.spec.replicas).unwrap_or(0);
    let surge = usize::try_from(set.spec.max_surge).unwrap_or(0);
    let unavailable = usize::try_from(set.spec.max_unavailable).unwrap_or(0);
    let decision = plan::decide(replicas, surge, unavailable, &views);

    let api = children_api(set, ctx);
    let mut changed = false;
    for child in decision.delete.iter().take(MAX_WRITES_PER_PASS) {
        info!(child = %child, "deleting child");
        match api.delete(child, &DeleteParams::default()).await {
            Ok(_) => changed = true,
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mutable = plan::view(&template.spec, true);
    for child in kids
        .iter()
        .filter(|c| decision.patch.contains(&c.name_any()))
    {
        let mut patch = serde_json::json!({"metadata": {"labels": child_labels}});
        if let Some(spec) = plan::merge_patch(&plan::view(&child.spec, true), &mutable) {
            patch["spec"] = spec;
        }
        info!(child = %child.name_any(), "patching child in place");
        match api
            .patch(
                &child.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => changed = true,
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let creates = decision.create.min(MAX_WRITES_PER_PASS);
    let zones = plan::zones_for_new(&set.spec.spread_zones, &views, creates);
    // Several creates in flight: one at a time, a set of hundreds waits on API-server latency.
    let children: Vec<EcsInstance> = (0..creates)
        .map(|i| new_child(set, &child_labels, zones.get(i)))
        .collect::<Result<_>>()?;
    let created: Vec<std::result::Result<EcsInstance, kube::Error>> =
        futures::stream::iter(children)
            .map(|child| {
                let api = api.clone();
                async move { api.create(&PostParams::default(), &child).await }
            })
            .buffer_unordered(CREATES_IN_FLIGHT)
            .collect()
            .await;
    for result in created {
        let child = result?;
        info!(child = %child.name_any(), "child created");
        changed = true;
    }

    // Status from what the children are now (created ones are not ready; deleted ones gone).
    let mut after: Vec<Child> = views;
    for c in after.iter_mut() {
        if decision.delete.contains(&c.name) {
            c.deleting = true;
        }
        if decision.patch.contains(&c.name) {
            c.in_sync = true;
        }
    }
    after.extend((0..decision.create).map(|i| Child {
        name: format!("new-{i}"),
        created: String::new(),
        deleting: false,
        up_to_date: true,
        in_sync: true,
        ready: false,
        failed: None,
        zone: zones.get(i).cloned(),
    }));
    let counts = plan::counts(&after);
    status.replicas = counts.replicas;
    status.ready_replicas = counts.ready;
    status.available_replicas = counts.available;
    status.updated_replicas = counts.updated;
    let (ready, reason, message) = plan::readiness(set.spec.replicas, counts, &after);
    status.conditions = conditions::merge(
        &previous.conditions,
        &[Desired::new(
            conditions::READY,
            ready,
            reason,
            message.clone(),
        )],
        set.meta().generation,
        &Time(Timestamp::now()),
    );
    let warning = (reason == Reason::ChildFailed).then_some((reason, message));
    save(set, ctx, &previous, &status, warning).await?;
    // Capped this pass: the rest goes out at once rather than at the next wake-up.
    let capped =
        decision.create > MAX_WRITES_PER_PASS || decision.delete.len() > MAX_WRITES_PER_PASS;
    Ok(if capped {
        Action::requeue(NEXT_BATCH)
    } else if ready && !changed {
        Action::requeue(super::jittered(ctx.config.resync))
    } else {
        Action::requeue(CONVERGING_REQUEUE)
    })
}

/// A new child of the current template, named `<set>-<random suffix>` by the API server, in
/// `zone` when the set spreads its children.
fn new_child(
    set: &EcsInstanceSet,
    labels: &std::collections::BTreeMap<String, String>,
    zone: Option<&String>,
) -> Result<EcsInstance> {
    let owner = set
        .controller_owner_ref(&())
        .ok_or_else(|| Error::Waiting("the set has no UID yet; its children wait for it".into()))?;
    let owner = OwnerReference {
        block_owner_deletion: Some(true),
        ..owner
    };
    let template = &set.spec.template;
    let annotations = &template.metadata.annotations;
    Ok(EcsInstance {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", set.name_any())),
            namespace: set.namespace(),
            labels: Some(labels.clone()),
            annotations: (!annotations.is_empty()).then(|| annotations.clone()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: crate::api::EcsInstanceSpec {
            zone: zone.cloned().or_else(|| template.spec.zone.clone()),
            ..template.spec.clone()
        },
        status: None,
    })
}

/// Writes the status when it changed, with one Warning when the condition turned to `warning`.
async fn save(
    set: &EcsInstanceSet,
    ctx: &Context,
    previous: &EcsInstanceSetStatus,
    status: &EcsInstanceSetStatus,
    warning: Option<(Reason, String)>,
) -> Result<()> {
    ctx.apply_status(set, Some(previous), status).await?;
    if let Some((reason, message)) = warning {
        let was = conditions::find(&previous.conditions, conditions::READY)
            .is_some_and(|c| c.reason == reason.as_str());
        if !was {
            warn!(reason = reason.as_str(), %message, "set degraded");
            ctx.publish(set, true, reason, message, "Reconcile").await;
        }
    }
    Ok(())
}

/// Deletes every child and keeps the finalizer until they are gone (each releases its own cloud
/// resources, or leaves them with `deletionPolicy: Orphan`).
async fn cleanup(set: &EcsInstanceSet, ctx: &Context) -> Result<Action> {
    let kids = children(set, ctx).await?;
    if kids.is_empty() {
        info!("every child released");
        return Ok(Action::await_change());
    }
    let api = children_api(set, ctx);
    for child in kids
        .iter()
        .filter(|c| c.meta().deletion_timestamp.is_none())
    {
        match api
            .delete(&child.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Waiting(format!(
        "{} children still releasing their cloud resources",
        kids.len()
    )))
}
