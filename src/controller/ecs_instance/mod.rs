//! EcsInstance reconciler: validate and map ([`resolve()`]), ensure the user's network, run the
//! instance (idempotently), bind the EIP, open ports, write status — and the finalizer that
//! releases everything created for the object.
//!
//! The step executors ([`Run`], [`prepare`], [`release`]) take the cloud driver, the resolved
//! inputs and the status being built, and reach the API server only through [`Sinks`]: the
//! reconcile decisions run in-process in tests, against an in-process driver.

mod adopt;
mod cleanup;
mod eip;
mod instance;
mod live;
mod network;
mod resolve;
mod schedule;
mod status;

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::{instrument, warn};

use super::context::{Context, OperatorConfig};
use super::error::{Error, Result};
use super::finalizer::{self, Phase};
use super::plan::{self, InstanceState, Requeue};
use super::reads::{self, InstanceReads};
use super::status::{EventSink, ObjectSink, Progress, StatusSink};
use super::{jittered, token};
use crate::api::conditions;
use crate::api::ecs_instance::{EcsInstanceStatus, NetworkStatusRef};
use crate::api::{EcsInstance, Reason};
use mce_cloud::{CloudDriver, InstanceStatus};

pub use cleanup::release;
pub use instance::{SecretSource, StepError, login};
pub use network::{SilentCreates, network_want, silent_network};
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
    /// Status ids this process has already found tagged with their object's UID.
    pub owned: &'a OwnedIds,
    /// Where the instance is read, together with other objects' reads.
    pub reads: &'a InstanceReads,
    /// Compare the EIP and the ports with the cloud too. Otherwise (a periodic resync of a
    /// Ready object between full checks) only the instance is read, and the EIP and ports are
    /// looked at only when the instance shows a change of them.
    pub full_check: bool,
    /// The object's UID (tags and ClientTokens derive from it).
    pub uid: String,
}

/// Cloud ids (per object UID) this process has verified carry the object's UID tag. An id in
/// status is checked once, not on every pass: a converged instance costs no extra look-up, while
/// an id that changes in status (a stale or forged write) is verified before it is acted on.
#[derive(Default)]
pub struct OwnedIds(parking_lot::Mutex<std::collections::HashSet<(String, String)>>);

impl OwnedIds {
    /// Forgotten wholesale past this size; the cost is one look-up per object afterwards.
    const MAX: usize = 100_000;

    pub fn contains(&self, uid: &str, id: &str) -> bool {
        self.0.lock().contains(&(uid.to_string(), id.to_string()))
    }

    pub fn insert(&self, uid: &str, id: &str) {
        let mut ids = self.0.lock();
        if ids.len() >= Self::MAX {
            ids.clear();
        }
        ids.insert((uid.to_string(), id.to_string()));
    }
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
    // A converged object's periodic drift check runs in the background lane.
    let converged = inst.status.as_ref().is_some_and(|s| {
        s.observed_generation == generation && conditions::is_true(&s.conditions, conditions::READY)
    });
    let _place = if converged {
        let Some(place) = ctx.background_lane.try_enter() else {
            crate::metrics::record_background_yield();
            return Ok(Action::requeue(jittered(
                super::context::BackgroundLane::RESYNC_YIELD,
            )));
        };
        Some(place)
    } else {
        None
    };
    // Progress the last pass left unwritten: resume from it while the object is unchanged.
    let held = inst.status.clone();
    let resumed;
    let inst = match ctx.deferred.take(&uid, inst.resource_version().as_deref()) {
        Some(status) => {
            let mut copy = inst.clone();
            copy.status = Some(status);
            resumed = copy;
            &resumed
        }
        None => inst,
    };
    let sink = ObjectSink::new(inst, ctx, held).deferring_to(&ctx.deferred);
    let sinks = Sinks {
        status: &sink,
        events: &sink,
        secrets: ctx,
    };
    let to_action = |requeue: Requeue| match requeue {
        Requeue::After(delay) => Action::requeue(delay),
        Requeue::Resync => Action::requeue(jittered(ctx.config.resync)),
    };
    // observedGeneration moves with the conditions of the new generation (in `finish`), not
    // with the intermediate writes that persist tokens and ids.
    let mut progress = Progress::new(inst.status.clone().unwrap_or_default());

    // 0. Placement: with a Cheapest or Failover policy, choose the candidate first; every
    // later step then runs on it.
    if let Some(delay) = schedule::schedule(inst, ctx, &mut progress).await {
        return finish(inst, &sinks, progress, Some(jittered(delay)))
            .await
            .map(to_action);
    }
    let placed;
    let inst = if inst.is_placed() {
        let mut chosen = inst.clone();
        chosen.status = Some(progress.status.clone());
        placed = chosen.placed();
        &placed
    } else {
        inst
    };

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
            let delay = jittered(plan::refusal_requeue(refusal.reason, ctx.config.resync));
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
    let ready_at_generation = inst.status.as_ref().is_some_and(|s| {
        s.observed_generation == generation && conditions::is_true(&s.conditions, conditions::READY)
    });
    let full_check = !ready_at_generation || ctx.full_check_due(&uid);
    let run = Run {
        inst,
        driver: driver.as_ref(),
        resolved: &resolved,
        network: &network,
        sinks,
        config: &ctx.config,
        owned: &ctx.owned_ids,
        reads: &ctx.instance_reads,
        full_check,
        uid: uid.clone(),
    };
    let outcome = run.converge(&mut progress).await;
    let requeue = conclude(inst, &sinks, progress, outcome).await?;
    if full_check && requeue == Requeue::Resync {
        ctx.record_full_check(&uid);
    }
    Ok(to_action(requeue))
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
        match plan::instance_state(&instance.status) {
            InstanceState::Running => {}
            InstanceState::Booting => {
                progress.step(
                    conditions::INSTANCE_READY,
                    false,
                    Reason::Starting,
                    // One message for every booting state, so the status is written once.
                    format!("instance {} is starting", instance.id),
                );
                return Outcome::Finish(Some(plan::SHORT_REQUEUE));
            }
            // Not booting: polling every second would never see it change.
            InstanceState::Stopped => return self.restart(&instance, progress).await,
            InstanceState::Unavailable => {
                progress.step(
                    conditions::INSTANCE_READY,
                    false,
                    Reason::InstanceUnavailable,
                    format!("instance {} is {:?}", instance.id, instance.status),
                );
                return Outcome::Finish(Some(plan::SLOW_REQUEUE));
            }
        }
        progress.step(
            conditions::INSTANCE_READY,
            true,
            Reason::Running,
            format!("instance {} is running", instance.id),
        );

        // Between full checks a Ready instance whose description shows its EIP as recorded
        // costs this one read: ports, and an EIP's bandwidth, are compared every
        // `fullCheckEvery` resyncs (that bounds how long their out-of-band drift lasts).
        let status = &progress.status;
        let skip_eip = !self.full_check
            && plan::eip_as_recorded(&instance, status)
            && conditions::is_true(&status.conditions, conditions::PUBLIC_IP_READY);
        let skip_ports =
            !self.full_check && conditions::is_true(&status.conditions, conditions::PORTS_READY);

        let mut retry: Option<Duration> = None;
        if let Err(e) = self.reconcile_tags(&instance, progress).await {
            warn!(error = %e, "tag update failed");
            // The instance runs (the phase stays Running), but its tags are not as wanted.
            progress.step(
                conditions::INSTANCE_READY,
                false,
                Reason::TagUpdateFailed,
                format!(
                    "instance {} runs; its tags could not be updated: {e}",
                    instance.id
                ),
            );
            retry = Some(plan::SHORT_REQUEUE * 5);
        }
        match self
            .reconcile_eip_unless(skip_eip, &instance, progress)
            .await
        {
            Ok(None) => {}
            Ok(Some(delay)) => retry = Some(retry.map_or(delay, |r| r.min(delay))),
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
        if self.inst.spec.adopt.is_some()
            && progress.status.security_group_id.is_none()
            && !self.inst.spec.open_ports.is_empty()
        {
            match self.join_own_group(&instance, progress).await {
                Ok(()) => {}
                Err(StepError::Refused(delay)) => {
                    return Outcome::Finish(Some(retry.map_or(delay, |r| r.min(delay))));
                }
                Err(StepError::Failed(e)) => return Outcome::Fail(e),
            }
        }
        match self.reconcile_ports_unless(skip_ports, progress).await {
            Ok(true) => {}
            Ok(false) => {
                retry = Some(retry.map_or(plan::SLOW_REQUEUE, |r| r.min(plan::SLOW_REQUEUE)));
            }
            Err(e) => {
                progress.step(
                    conditions::PORTS_READY,
                    false,
                    plan::failure_reason(&e),
                    e.to_string(),
                );
                let backoff = plan::backoff_for(&e);
                retry = Some(retry.map_or(backoff, |r| r.min(backoff)));
            }
        }
        Outcome::Finish(retry)
    }

    /// A stopped instance (stopped outside Kubernetes, or its subscription expired): an
    /// EcsInstance is a running machine, so it is started again; a refusal (an expired
    /// subscription) is reported and retried slowly.
    async fn restart(
        &self,
        instance: &mce_cloud::Instance,
        progress: &mut Progress<EcsInstanceStatus>,
    ) -> Outcome {
        let id = &instance.id;
        let message = if instance.status == InstanceStatus::Stopped {
            match self.driver.start_instance(self.region(), id).await {
                Ok(()) => {
                    warn!(instance_id = %id, "instance was stopped; starting it");
                    progress.cloud_changed = true;
                    format!("instance {id} was stopped; starting it again")
                }
                Err(e) => format!("instance {id} is stopped and could not be started: {e}"),
            }
        } else {
            format!("instance {id} is stopping; it will be started again")
        };
        progress.step(
            conditions::INSTANCE_READY,
            false,
            Reason::InstanceStopped,
            message,
        );
        Outcome::Finish(Some(plan::SLOW_REQUEUE))
    }

    async fn reconcile_eip_unless(
        &self,
        skip: bool,
        instance: &mce_cloud::Instance,
        progress: &mut Progress<EcsInstanceStatus>,
    ) -> Result<Option<Duration>> {
        if skip {
            return Ok(None);
        }
        self.reconcile_eip(instance, progress).await
    }

    async fn reconcile_ports_unless(
        &self,
        skip: bool,
        progress: &mut Progress<EcsInstanceStatus>,
    ) -> Result<bool> {
        if skip {
            return Ok(true);
        }
        self.reconcile_ports(progress).await
    }

    /// Reads the instance with the other objects' reads of its provider and region: briefly
    /// while it converges, a little longer on a resync (more of them share the call).
    async fn describe_instance(
        &self,
        id: &str,
    ) -> mce_cloud::CloudResult<Option<mce_cloud::Instance>> {
        let window = if self.full_check {
            reads::CONVERGING_WINDOW
        } else {
            reads::RESYNC_WINDOW
        };
        self.reads
            .describe(
                self.driver,
                // A CloudProvider is one account: its name keys the batch.
                &self.resolved.provider.name_any(),
                self.region(),
                id,
                window,
            )
            .await
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

    /// Persists the status unless the API server already holds its ClientTokens and pending
    /// creates: what a create needs written before it is sent. Ids learned on the way are
    /// written by the pass's final status write; a crash before it finds them again by the
    /// token or by the UID tag, so writing each one at once only costs API-server writes.
    async fn persist_tokens(&self, progress: &Progress<EcsInstanceStatus>) -> Result<()> {
        let held = self.sinks.status.known();
        if held
            .as_ref()
            .is_some_and(|h| plan::tokens_held(h, &progress.status))
        {
            return Ok(());
        }
        // The first write of a new object shows what the pass decided so far, under a Ready
        // that says resources are being created: the progress after it may then stay
        // unwritten for a while. Later ones keep the conditions (and observedGeneration) of
        // the generation they describe.
        if held.as_ref().is_some_and(|h| !h.conditions.is_empty()) {
            return self.persist(progress).await;
        }
        let mut shown = progress.clone();
        status::provisional(self.inst, &mut shown);
        self.persist(&shown).await
    }
}
