//! EcsInstance reconciler: validate and map ([`resolve()`]), ensure the user's network, run the
//! instance (idempotently), bind the EIP, open ports, write status — and the finalizer that
//! releases everything created for the object.
//!
//! The step executors ([`Run`], [`prepare`], [`release`]) take the cloud driver, the resolved
//! inputs and the status being built, and reach the API server only through [`Sinks`]: the
//! reconcile decisions run in-process in tests, against an in-process driver.

mod cleanup;
mod eip;
mod instance;
mod live;
mod network;
mod resolve;
mod status;

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::{instrument, warn};

use super::context::{Context, OperatorConfig};
use super::error::{Error, Result};
use super::finalizer::{self, Phase};
use super::plan::{self, Requeue};
use super::status::{EventSink, ObjectSink, Progress, StatusSink};
use super::{jittered, token};
use crate::api::conditions;
use crate::api::ecs_instance::{EcsInstanceStatus, NetworkStatusRef};
use crate::api::{EcsInstance, Reason};
use mce_cloud::{CloudDriver, InstanceStatus};

pub use cleanup::release;
pub use instance::{SecretSource, StepError, login};
pub use network::{network_want, silent_network};
pub use resolve::{Refusal, ResolveInputs, Resolved, resolve};
pub use status::{conclude, finish};

/// How a pass of steps ended.
#[derive(Debug)]
pub enum Outcome {
    /// Write status and look again after the delay (None: the summary decides).
    Finish(Option<Duration>),
    /// Write status, then hand the error to the error policy.
    Fail(Error),
}

/// Where a reconcile's effects go besides the cloud, and where it reads the login Secret.
#[derive(Clone, Copy)]
pub struct Sinks<'a> {
    pub status: &'a dyn StatusSink<EcsInstanceStatus>,
    pub events: &'a dyn EventSink,
    pub secrets: &'a dyn SecretSource,
}

/// The cloud side of one reconcile: the executors of the instance, EIP and live steps.
pub struct Run<'a> {
    pub inst: &'a EcsInstance,
    pub driver: &'a dyn CloudDriver,
    pub resolved: &'a Resolved,
    pub network: &'a NetworkStatusRef,
    pub sinks: Sinks<'a>,
    pub config: &'a OperatorConfig,
    /// The object's UID (tags and ClientTokens derive from it).
    pub uid: String,
}

#[instrument(skip_all, fields(ecsinstance = %format!("{}/{}", inst.namespace().unwrap_or_default(), inst.name_any())))]
pub async fn reconcile(inst: Arc<EcsInstance>, ctx: Arc<Context>) -> Result<Action> {
    finalizer::reconcile(inst, &ctx, |phase| async {
        match phase {
            Phase::Apply(inst) => apply(&inst, &ctx).await,
            Phase::Cleanup(inst) => cleanup::cleanup(&inst, &ctx).await,
        }
    })
    .await
}

async fn apply(inst: &EcsInstance, ctx: &Context) -> Result<Action> {
    // Converged and checked against the cloud less than a resync ago: a wake-up caused by our
    // own status write (or any cache event) needs no cloud call and no write.
    let uid = inst.uid().unwrap_or_default();
    let generation = inst.meta().generation;
    if inst.status.as_ref().and_then(|s| s.observed_generation) == generation
        && let Some(remaining) = ctx.verified_recently(&uid, generation)
    {
        return Ok(Action::requeue(remaining));
    }
    let sink = ObjectSink::new(inst, ctx, inst.status.clone());
    let sinks = Sinks {
        status: &sink,
        events: &sink,
        secrets: ctx,
    };
    let to_action = |requeue: Requeue| match requeue {
        Requeue::After(delay) => Action::requeue(delay),
        Requeue::Resync => Action::requeue(jittered(ctx.config.resync)),
    };
    let mut progress = Progress::new(inst.status.clone().unwrap_or_default());
    progress.status.observed_generation = generation;

    let resolved = match resolve::resolve_cached(inst, ctx) {
        Ok(r) => r,
        // Right after a start the provider cache may still be filling: ask the API server
        // before calling the provider missing.
        Err(refusal)
            if refusal.reason == Reason::ProviderNotFound
                && resolve::provider_exists(inst, ctx).await? =>
        {
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        Err(refusal) => {
            progress.step(refusal.condition, false, refusal.reason, refusal.message);
            let delay = jittered(ctx.config.resync.min(Duration::from_secs(60)));
            return finish(inst, &sinks, progress, Some(delay))
                .await
                .map(to_action);
        }
    };
    if let Some(outcome) = prepare(inst, &resolved, &sinks, &mut progress).await {
        return conclude(inst, &sinks, progress, outcome)
            .await
            .map(to_action);
    }

    // 1. The user's network.
    let Some(network) = network::ensure_network(inst, ctx, &resolved, &mut progress).await? else {
        return finish(inst, &sinks, progress, Some(Duration::from_secs(2)))
            .await
            .map(to_action);
    };

    let driver = match ctx.drivers.driver(&resolved.provider).await {
        Ok(d) => d,
        Err(e) => {
            progress.step(conditions::INSTANCE_READY, false, e.reason(), e.to_string());
            return finish(inst, &sinks, progress, Some(plan::CAPACITY_REQUEUE))
                .await
                .map(to_action);
        }
    };
    let run = Run {
        inst,
        driver: driver.as_ref(),
        resolved: &resolved,
        network: &network,
        sinks,
        config: &ctx.config,
        uid,
    };
    let outcome = run.converge(&mut progress).await;
    conclude(inst, &sinks, progress, outcome)
        .await
        .map(to_action)
}

/// Shows the resolved inputs in status and refuses, before any cloud call, input that can be
/// refused without the cloud (the login Secret of an instance still to be created); decides
/// every ClientToken the creation needs, so the first status write persists them before any
/// create call. `Some`: stop here.
pub async fn prepare(
    inst: &EcsInstance,
    resolved: &Resolved,
    sinks: &Sinks<'_>,
    progress: &mut Progress<EcsInstanceStatus>,
) -> Option<Outcome> {
    resolved.record(&mut progress.status);
    let uid = inst.uid().unwrap_or_default();
    if progress.status.instance_id.is_none() {
        match login(inst, resolved.profile, sinks.secrets, progress).await {
            Ok(_) => {}
            Err(StepError::Refused(delay)) => return Some(Outcome::Finish(Some(delay))),
            Err(StepError::Failed(e)) => return Some(Outcome::Fail(e)),
        }
    }
    if progress.status.instance_id.is_none() {
        let status = &mut progress.status;
        status.client_token.get_or_insert_with(|| token::new(&uid));
        status
            .security_group_client_token
            .get_or_insert_with(|| token::new(&uid));
    }
    if inst.spec.public_ip.as_ref().is_some_and(|p| p.allocate) {
        progress
            .status
            .eip_client_token
            .get_or_insert_with(|| token::new(&uid));
    }
    None
}

impl Run<'_> {
    /// The instance (and its own security group), then the live changes: tags, public IP,
    /// ports. Failures of the live changes never undo the instance.
    pub async fn converge(&self, progress: &mut Progress<EcsInstanceStatus>) -> Outcome {
        let instance = match self.ensure_instance(progress).await {
            Ok(Some(i)) => i,
            Ok(None) => return Outcome::Finish(Some(plan::SHORT_REQUEUE)),
            Err(StepError::Refused(delay)) => return Outcome::Finish(Some(delay)),
            Err(StepError::Failed(e)) => return Outcome::Fail(e),
        };
        progress.status.private_ip = instance.private_ip.clone();
        if instance.status != InstanceStatus::Running {
            progress.step(
                conditions::INSTANCE_READY,
                false,
                Reason::Starting,
                // One message for every booting state, so the status is written once.
                format!("instance {} is starting", instance.id),
            );
            return Outcome::Finish(Some(plan::SHORT_REQUEUE));
        }
        progress.step(
            conditions::INSTANCE_READY,
            true,
            Reason::Running,
            format!("instance {} is running", instance.id),
        );

        let mut retry: Option<Duration> = None;
        if let Err(e) = self.reconcile_tags(&instance, progress).await {
            warn!(error = %e, "tag update failed");
            retry = Some(plan::SHORT_REQUEUE * 5);
        }
        match self.reconcile_eip(&instance, progress).await {
            Ok(true) => {}
            Ok(false) => retry = Some(plan::SHORT_REQUEUE),
            Err(e) => {
                progress.step(
                    conditions::PUBLIC_IP_READY,
                    false,
                    plan::failure_reason(&e),
                    e.to_string(),
                );
                retry = Some(plan::backoff_for(&e));
            }
        }
        if let Err(e) = self.reconcile_ports(progress).await {
            progress.step(
                conditions::PORTS_READY,
                false,
                plan::failure_reason(&e),
                e.to_string(),
            );
            let backoff = plan::backoff_for(&e);
            retry = Some(retry.map_or(backoff, |r| r.min(backoff)));
        }
        Outcome::Finish(retry)
    }

    fn region(&self) -> &str {
        &self.resolved.params.placement.region
    }

    /// Tags of every resource created for this instance.
    fn resource_tags(&self) -> mce_cloud::Tags {
        plan::instance_tags(super::tenancy::resource_tags(
            &self.inst.spec.tags,
            &self.resolved.tenant,
            &self.inst.spec.user_id,
            &self.uid,
        ))
    }

    /// Tags that find what this object created, whatever happened to its status.
    fn ownership_tags(&self) -> mce_cloud::Tags {
        plan::instance_tags(super::tenancy::uid_tag(&self.uid))
    }

    /// Persists tokens (and ids) before the cloud calls that use them.
    async fn persist(&self, progress: &Progress<EcsInstanceStatus>) -> Result<()> {
        progress.save(self.sinks.status).await
    }
}
