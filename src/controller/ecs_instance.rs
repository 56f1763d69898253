//! EcsInstance reconciler: the design's flow as a reconcile loop — validate and map, ensure the
//! user's network, run the instance (idempotently), bind the EIP, open ports, write status — and
//! the finalizer that releases everything created for the object.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::{info, instrument, warn};

use super::context::Context;
use super::error::{Error, Result};
use super::finalizer::{self, Phase};
use super::mapping::{self, InstanceParams};
use super::plan::{self, EipStep};
use super::{jittered, network_name_of, tenancy, token};
use crate::api::conditions::{self, Desired};
use crate::api::ecs_instance::{EcsInstanceStatus, NetworkStatusRef};
use crate::api::{
    CloudProvider, DeletionPolicy, EcsInstance, SILENT_ANNOTATION, USER_LABEL, UserNetwork,
    UserNetworkSpec,
};
use crate::scheduler::SchedulingRequest;
use mce_cloud::{
    AllocateEip, CloudDriver, CloudError, CreateSecurityGroup, EipFilter, ErrorClass,
    IgnoreNotFound, Instance, InstanceStatus, Login, ProviderProfile, RunInstance,
    Secret as SecretString, Tags,
};

/// Look again soon while the cloud is still moving (instance booting, EIP in transition).
const SHORT_REQUEUE: Duration = Duration::from_secs(1);
/// How long a created instance may stay invisible to Describe before it counts as lost.
const VISIBILITY_GRACE_SECONDS: i64 = 300;
/// Retry after a stock or quota failure.
const CAPACITY_REQUEUE: Duration = Duration::from_secs(30);

#[instrument(skip_all, fields(ecsinstance = %format!("{}/{}", inst.namespace().unwrap_or_default(), inst.name_any())))]
pub async fn reconcile(inst: Arc<EcsInstance>, ctx: Arc<Context>) -> Result<Action> {
    finalizer::reconcile(inst, &ctx, |phase| async {
        match phase {
            Phase::Apply(inst) => apply(&inst, &ctx).await,
            Phase::Cleanup(inst) => cleanup(&inst, &ctx).await,
        }
    })
    .await
}

/// A refusal: the input cannot be acted on. Becomes a condition and one Warning event.
struct Refusal {
    condition: &'static str,
    reason: &'static str,
    message: String,
}

impl Refusal {
    fn new(condition: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            condition,
            reason,
            message: message.into(),
        }
    }
}

/// Everything static the reconcile needs, resolved without any cloud call.
struct Resolved {
    tenant: String,
    provider: Arc<CloudProvider>,
    profile: &'static ProviderProfile,
    params: InstanceParams,
    network_name: String,
}

fn resolve(inst: &EcsInstance, ctx: &Context) -> std::result::Result<Resolved, Refusal> {
    let namespace = inst.namespace().unwrap_or_default();
    let spec = &inst.spec;
    let tenant = tenancy::resolve_tenant(
        &namespace,
        ctx.namespace_labels(&namespace).as_ref(),
        spec.tenant_id.as_deref(),
    )
    .map_err(|e| Refusal::new(conditions::NETWORK_READY, e.reason(), e.to_string()))?;
    // An instance already placed keeps its provider even if it stops taking new work.
    let scheduled = inst
        .status
        .as_ref()
        .and_then(|s| s.instance_id.as_ref())
        .and(spec.provider.as_deref());
    let provider = match scheduled.and_then(|code| ctx.provider_by_code(code)) {
        Some(p) => p,
        None => {
            let providers = ctx.providers.state();
            let request = SchedulingRequest {
                provider: spec.provider.as_deref(),
                region: spec.region.as_deref(),
            };
            let chosen = ctx
                .scheduler
                .select(&request, &providers)
                .map_err(|e| Refusal::new(conditions::INSTANCE_READY, e.reason(), e.to_string()))?;
            providers
                .iter()
                .find(|p| p.spec.code == chosen.spec.code)
                .cloned()
                .ok_or_else(|| {
                    Refusal::new(
                        conditions::INSTANCE_READY,
                        "ProviderNotFound",
                        "provider vanished",
                    )
                })?
        }
    };
    let profile = ctx
        .drivers
        .profile(&provider)
        .map_err(|e| Refusal::new(conditions::INSTANCE_READY, e.reason(), e.to_string()))?;
    let params = mapping::instance_params(&provider.spec, profile, spec)
        .map_err(|e| Refusal::new(conditions::INSTANCE_READY, e.reason(), e.to_string()))?;
    let network_name = network_name_of(inst).unwrap_or_default();
    Ok(Resolved {
        tenant,
        provider,
        profile,
        params,
        network_name,
    })
}

/// Whether the CloudProvider the instance names exists, asked of the API server.
async fn provider_exists(inst: &EcsInstance, ctx: &Context) -> Result<bool> {
    let Some(code) = inst.spec.provider.as_deref() else {
        return Ok(false);
    };
    let api: Api<CloudProvider> = Api::all(ctx.client.clone());
    Ok(api
        .list(&kube::api::ListParams::default())
        .await?
        .items
        .iter()
        .any(|p| p.spec.code == code))
}

/// The status under construction and the step conditions decided so far.
struct Progress {
    status: EcsInstanceStatus,
    steps: Vec<Desired>,
    /// The status last written in this reconcile, so an unchanged status is not written twice.
    written: Option<EcsInstanceStatus>,
    /// A cloud write happened: what was observed before it is stale, so the object is looked
    /// at again before it counts as verified.
    cloud_changed: bool,
}

impl Progress {
    /// Writes the status if it differs from what the API server holds.
    async fn save(&mut self, inst: &EcsInstance, ctx: &Context) -> Result<()> {
        let current = self.written.as_ref().or(inst.status.as_ref());
        if ctx.apply_status(inst, current, &self.status).await? {
            self.written = Some(self.status.clone());
        }
        Ok(())
    }
}

impl Progress {
    fn step(
        &mut self,
        type_: &'static str,
        ok: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.steps.retain(|d| d.type_ != type_);
        self.steps.push(Desired::new(type_, ok, reason, message));
    }
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
    let mut progress = Progress {
        status: inst.status.clone().unwrap_or_default(),
        steps: Vec::new(),
        written: None,
        cloud_changed: false,
    };
    progress.status.observed_generation = inst.meta().generation;

    let resolved = match resolve(inst, ctx) {
        Ok(r) => r,
        // Right after a start the provider cache may still be filling: ask the API server
        // before calling the provider missing.
        Err(refusal)
            if refusal.reason == "ProviderNotFound" && provider_exists(inst, ctx).await? =>
        {
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        Err(refusal) => {
            progress.step(refusal.condition, false, refusal.reason, refusal.message);
            return finish(
                inst,
                ctx,
                progress,
                Some(jittered(ctx.config.resync.min(Duration::from_secs(60)))),
            )
            .await;
        }
    };
    let params = &resolved.params;
    progress.status.provider = Some(resolved.provider.spec.code.clone());
    progress.status.region = Some(params.placement.region.clone());
    progress.status.zone = Some(params.placement.zone.clone());
    progress.status.instance_type = Some(params.instance_type.clone());
    progress.status.image_id = Some(params.image_id.clone());
    progress.status.instance_charge_type = Some(params.instance_charge_type.clone());
    progress.status.internet_charge_type = params.internet_charge_type.clone();

    // Input that can be refused without the cloud is refused before any cloud call, the
    // network's included: while the instance is still to be created, check its login Secret.
    if progress.status.instance_id.is_none() {
        match Run::login(inst, ctx, resolved.profile, &mut progress).await {
            Ok(_) => {}
            Err(StepError::Refused(delay)) => {
                return finish(inst, ctx, progress, Some(delay)).await;
            }
            Err(StepError::Failed(e)) => {
                finish(inst, ctx, progress, None).await?;
                return Err(e);
            }
        }
    }

    // Every ClientToken the creation needs is decided now and persisted with the first status
    // write, which precedes every create call.
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

    // 1. The user's network.
    let Some(network) = ensure_network(inst, ctx, &resolved, &mut progress).await? else {
        return finish(inst, ctx, progress, Some(Duration::from_secs(2))).await;
    };

    let driver = match ctx.drivers.driver(&resolved.provider).await {
        Ok(d) => d,
        Err(e) => {
            progress.step(conditions::INSTANCE_READY, false, e.reason(), e.to_string());
            return finish(inst, ctx, progress, Some(CAPACITY_REQUEUE)).await;
        }
    };
    let run = Run {
        inst,
        ctx,
        driver: driver.as_ref(),
        resolved: &resolved,
        network: &network,
        uid: inst.uid().unwrap_or_default(),
    };

    // 2. The instance (and its own security group).
    let instance = match run.ensure_instance(&mut progress).await {
        Ok(Some(i)) => i,
        Ok(None) => return finish(inst, ctx, progress, Some(SHORT_REQUEUE)).await,
        Err(StepError::Refused(delay)) => return finish(inst, ctx, progress, Some(delay)).await,
        Err(StepError::Failed(e)) => {
            finish(inst, ctx, progress, None).await?;
            return Err(e);
        }
    };
    progress.status.private_ip = instance.private_ip.clone();
    if instance.status != InstanceStatus::Running {
        progress.step(
            conditions::INSTANCE_READY,
            false,
            "Starting",
            // One message for every booting state, so the status is written once.
            format!("instance {} is starting", instance.id),
        );
        return finish(inst, ctx, progress, Some(SHORT_REQUEUE)).await;
    }
    progress.step(
        conditions::INSTANCE_READY,
        true,
        "Running",
        format!("instance {} is running", instance.id),
    );

    // 3. Live changes: tags, public IP, ports. Failures here never undo the instance.
    let mut retry: Option<Duration> = None;
    if let Err(e) = run.reconcile_tags(&instance, &mut progress).await {
        warn!(error = %e, "tag update failed");
        retry = Some(SHORT_REQUEUE * 5);
    }
    match run.reconcile_eip(&instance, &mut progress).await {
        Ok(true) => {}
        Ok(false) => retry = Some(SHORT_REQUEUE),
        Err(e) => {
            progress.step(
                conditions::PUBLIC_IP_READY,
                false,
                failure_reason(&e),
                e.to_string(),
            );
            retry = Some(backoff_for(&e));
        }
    }
    match run.reconcile_ports(&mut progress).await {
        Ok(()) => {}
        Err(e) => {
            progress.step(
                conditions::PORTS_READY,
                false,
                failure_reason(&e),
                e.to_string(),
            );
            retry = Some(retry.map_or(backoff_for(&e), |r| r.min(backoff_for(&e))));
        }
    }
    finish(inst, ctx, progress, retry).await
}

/// Finds (or, by silent addressing, creates) the instance's UserNetwork; `None` while it is
/// not ready.
async fn ensure_network(
    inst: &EcsInstance,
    ctx: &Context,
    resolved: &Resolved,
    progress: &mut Progress,
) -> Result<Option<NetworkStatusRef>> {
    let namespace = inst.namespace().unwrap_or_default();
    let name = &resolved.network_name;
    let params = &resolved.params;
    let cached = ctx.networks.get(&ObjectRef::new(name).within(&namespace));
    let Some(network) = cached else {
        if inst.spec.network_ref.is_some() {
            progress.step(
                conditions::NETWORK_READY,
                false,
                "NetworkNotFound",
                format!("UserNetwork {name:?} does not exist in this namespace"),
            );
            return Ok(None);
        }
        create_silent_network(inst, ctx, resolved).await?;
        progress.step(
            conditions::NETWORK_READY,
            false,
            "NetworkPending",
            format!("UserNetwork {name} is being provisioned"),
        );
        return Ok(None);
    };
    // networkRef may only name a network of this instance's user, provider and region.
    if network.spec.user_id != inst.spec.user_id
        || network.spec.provider != resolved.provider.spec.code
        || network.spec.region != params.placement.region
        || network
            .spec
            .tenant_id
            .as_deref()
            .is_some_and(|t| t != resolved.tenant)
    {
        let e = tenancy::TenancyError::NetworkMismatch(name.clone());
        progress.step(conditions::NETWORK_READY, false, e.reason(), e.to_string());
        return Ok(None);
    }
    if network.meta().deletion_timestamp.is_some() {
        progress.step(
            conditions::NETWORK_READY,
            false,
            "NetworkPending",
            format!("UserNetwork {name} is being deleted"),
        );
        return Ok(None);
    }
    let status = network.status.clone().unwrap_or_default();
    if let Some(zone) = &status.zone
        && zone != &params.placement.zone
    {
        progress.step(
            conditions::NETWORK_READY,
            false,
            "ZoneMismatch",
            format!(
                "UserNetwork {name} has its subnet in zone {zone}, the instance wants {}",
                params.placement.zone
            ),
        );
        return Ok(None);
    }
    let network_ready = conditions::find(&status.conditions, conditions::READY);
    let ids = (
        status.vpc_id.clone(),
        status.v_switch_id.clone(),
        status.security_group_id.clone(),
    );
    match (network_ready, ids) {
        (Some(c), (Some(vpc), Some(vsw), Some(sg))) if c.status == "True" => {
            let reference = NetworkStatusRef {
                name: name.clone(),
                vpc_id: Some(vpc),
                v_switch_id: Some(vsw),
                security_group_id: Some(sg),
            };
            progress.status.network = Some(reference.clone());
            progress.step(
                conditions::NETWORK_READY,
                true,
                "NetworkReady",
                format!("UserNetwork {name} is ready"),
            );
            Ok(Some(reference))
        }
        (Some(c), _) if c.status == "False" && c.reason != "Provisioning" => {
            progress.step(
                conditions::NETWORK_READY,
                false,
                c.reason.clone(),
                format!("UserNetwork {name}: {}", c.message),
            );
            Ok(None)
        }
        _ => {
            progress.step(
                conditions::NETWORK_READY,
                false,
                "NetworkPending",
                format!("UserNetwork {name} is being provisioned"),
            );
            Ok(None)
        }
    }
}

async fn create_silent_network(
    inst: &EcsInstance,
    ctx: &Context,
    resolved: &Resolved,
) -> Result<()> {
    let namespace = inst.namespace().unwrap_or_default();
    let network = UserNetwork {
        metadata: ObjectMeta {
            name: Some(resolved.network_name.clone()),
            namespace: Some(namespace.clone()),
            annotations: Some([(SILENT_ANNOTATION.to_string(), "true".to_string())].into()),
            labels: Some([(USER_LABEL.to_string(), label_safe(&inst.spec.user_id))].into()),
            ..ObjectMeta::default()
        },
        spec: UserNetworkSpec {
            provider: resolved.provider.spec.code.clone(),
            region: resolved.params.placement.region.clone(),
            zone: Some(resolved.params.placement.zone.clone()),
            tenant_id: Some(resolved.tenant.clone()),
            user_id: inst.spec.user_id.clone(),
            cidr_block: None,
            tags: Default::default(),
            reclaim_policy: DeletionPolicy::Delete,
        },
        status: None,
    };
    let api: Api<UserNetwork> = Api::namespaced(ctx.client.clone(), &namespace);
    match api.create(&PostParams::default(), &network).await {
        Ok(_) => {
            info!(network = %resolved.network_name, "silent addressing: UserNetwork created");
            Ok(())
        }
        // Another instance of the same user got there first: the network is shared.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn label_safe(value: &str) -> String {
    value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(63)
        .collect()
}

/// Why an instance step stopped.
enum StepError {
    /// Input or capacity problem recorded as a condition: requeue after the delay.
    Refused(Duration),
    /// Retryable failure: recorded as a condition, then returned to the error policy.
    Failed(Error),
}

/// The cloud side of one reconcile.
struct Run<'a> {
    inst: &'a EcsInstance,
    ctx: &'a Context,
    driver: &'a dyn CloudDriver,
    resolved: &'a Resolved,
    network: &'a NetworkStatusRef,
    uid: String,
}

impl Run<'_> {
    fn region(&self) -> &str {
        &self.resolved.params.placement.region
    }

    /// Tags of every resource created for this instance.
    fn resource_tags(&self) -> Tags {
        plan::instance_tags(tenancy::resource_tags(
            &self.inst.spec.tags,
            &self.resolved.tenant,
            &self.inst.spec.user_id,
            &self.uid,
        ))
    }

    /// Tags that find what this object created, whatever happened to its status.
    fn ownership_tags(&self) -> Tags {
        plan::instance_tags(tenancy::uid_tag(&self.uid))
    }

    /// Persists tokens (and ids) before the cloud calls that use them.
    async fn persist(&self, progress: &mut Progress) -> Result<()> {
        progress.save(self.inst, self.ctx).await
    }

    /// Finds or creates the instance. `Ok(None)`: created and not yet visible.
    async fn ensure_instance(
        &self,
        progress: &mut Progress,
    ) -> std::result::Result<Option<Instance>, StepError> {
        let region = self.region().to_string();
        // Observe: by the persisted id, else by the UID tag (a crash after RunInstances).
        if let Some(id) = progress.status.instance_id.clone() {
            let found = self
                .driver
                .describe_instances(&region, std::slice::from_ref(&id))
                .await
                .map_err(|e| self.fail(progress, e))?;
            if let Some(instance) = found.into_iter().next()
                && instance.status != InstanceStatus::Terminated
            {
                return Ok(Some(instance));
            }
            // A just-created instance may not be visible yet (eventual consistency): it counts
            // as lost only once it had been seen running.
            let seen_running_or_overdue = self.inst.status.as_ref().is_some_and(|s| {
                conditions::find(&s.conditions, conditions::INSTANCE_READY).is_some_and(|c| {
                    c.status == "True"
                        || Timestamp::now().duration_since(c.last_transition_time.0)
                            > jiff::SignedDuration::from_secs(VISIBILITY_GRACE_SECONDS)
                })
            });
            if !seen_running_or_overdue {
                progress.step(
                    conditions::INSTANCE_READY,
                    false,
                    "Starting",
                    format!("instance {id} is starting"),
                );
                return Ok(None);
            }
            // Deleted outside Kubernetes: recreate with a new token.
            warn!(instance_id = %id, "instance gone from the cloud; recreating");
            self.ctx
                .publish(
                    self.inst,
                    true,
                    "InstanceLost",
                    format!("instance {id} no longer exists on the cloud; creating a new one"),
                    "Observe",
                )
                .await;
            progress.status.instance_id = None;
            progress.status.private_ip = None;
            progress.status.public_ip = None;
            progress.status.client_token = Some(token::new(&self.uid));
            let lost = format!("instance {id} was deleted outside Kubernetes");
            let now = Time(Timestamp::now());
            let generation = self.inst.meta().generation;
            for type_ in [conditions::READY, conditions::INSTANCE_READY] {
                let desired = Desired::new(type_, false, "InstanceLost", lost.clone());
                conditions::upsert(&mut progress.status.conditions, &desired, generation, &now);
            }
            self.persist(progress).await.map_err(StepError::Failed)?;
        }
        let mut owned = self
            .driver
            .find_instances(&region, &self.ownership_tags())
            .await
            .map_err(|e| self.fail(progress, e))?;
        owned.retain(|i| i.status != InstanceStatus::Terminated);
        if let Some(instance) = owned.into_iter().next() {
            info!(instance_id = %instance.id, "adopting the instance created for this object");
            progress.status.instance_id = Some(instance.id.clone());
            self.persist(progress).await.map_err(StepError::Failed)?;
            return Ok(Some(instance));
        }

        let security_group = self.ensure_security_group(progress).await?;
        let login = Self::login(self.inst, self.ctx, self.resolved.profile, progress).await?;

        // Token first, persisted, then the call.
        if progress.status.client_token.is_none() {
            progress.status.client_token = Some(token::new(&self.uid));
        }
        self.persist(progress).await.map_err(StepError::Failed)?;
        let params = &self.resolved.params;
        let request = RunInstance {
            region: region.clone(),
            zone: params.placement.zone.clone(),
            instance_type: params.instance_type.clone(),
            image_id: params.image_id.clone(),
            subnet_id: self.network.v_switch_id.clone().unwrap_or_default(),
            security_group_ids: vec![
                self.network.security_group_id.clone().unwrap_or_default(),
                security_group,
            ],
            name: self
                .inst
                .spec
                .instance_name
                .clone()
                .unwrap_or_else(|| self.inst.name_any()),
            description: self.inst.spec.description.clone().unwrap_or_default(),
            system_disk: params.system_disk.clone(),
            login,
            charge: params.charge,
            tags: self.resource_tags(),
            client_token: progress.status.client_token.clone().unwrap_or_default(),
            extensions: self.inst.spec.extensions.clone(),
        };
        match self.driver.run_instance(&request).await {
            Ok(id) => {
                info!(instance_id = %id, "instance created");
                if self.ctx.config.failpoint.as_deref() == Some("after-run-instances") {
                    warn!("failpoint after-run-instances: aborting before the id is persisted");
                    std::process::abort();
                }
                // The id is written by the status write that follows at once.
                progress.status.instance_id = Some(id.clone());
                progress.cloud_changed = true;
                progress.step(
                    conditions::INSTANCE_READY,
                    false,
                    "Starting",
                    format!("instance {id} is starting"),
                );
                Ok(None)
            }
            Err(e) => {
                // Stock and terminal failures need a new token for the next attempt.
                if matches!(e.class, ErrorClass::OutOfStock) || e.class.is_terminal() {
                    progress.status.client_token = None;
                }
                Err(self.fail(progress, e))
            }
        }
    }

    /// The instance's own security group, holding its ports.
    async fn ensure_security_group(
        &self,
        progress: &mut Progress,
    ) -> std::result::Result<String, StepError> {
        if let Some(id) = &progress.status.security_group_id {
            return Ok(id.clone());
        }
        let region = self.region().to_string();
        let vpc_id = self.network.vpc_id.clone().unwrap_or_default();
        let found = self
            .driver
            .find_security_groups(&region, &vpc_id, &self.ownership_tags())
            .await
            .map_err(|e| self.fail(progress, e))?;
        let id = match found.into_iter().next() {
            Some(g) => g.id,
            None => {
                if progress.status.security_group_client_token.is_none() {
                    progress.status.security_group_client_token = Some(token::new(&self.uid));
                }
                self.persist(progress).await.map_err(StepError::Failed)?;
                progress.cloud_changed = true;
                self.driver
                    .create_security_group(&CreateSecurityGroup {
                        region: region.clone(),
                        vpc_id,
                        name: format!("sg-{}", self.inst.name_any()),
                        description: format!("multicloud-ecs ports of {}", self.inst.name_any()),
                        tags: self.resource_tags(),
                        client_token: progress
                            .status
                            .security_group_client_token
                            .clone()
                            .unwrap_or_default(),
                    })
                    .await
                    .map_err(|e| self.fail(progress, e))?
            }
        };
        progress.status.security_group_id = Some(id.clone());
        self.persist(progress).await.map_err(StepError::Failed)?;
        Ok(id)
    }

    /// The login credential; the password is read from its Secret only when about to create.
    async fn login(
        inst: &EcsInstance,
        ctx: &Context,
        profile: &ProviderProfile,
        progress: &mut Progress,
    ) -> std::result::Result<Login, StepError> {
        if let Some(name) = &inst.spec.key_pair_name {
            return Ok(Login::KeyPair(name.clone()));
        }
        let Some(secret_ref) = &inst.spec.password_secret_ref else {
            return Ok(Login::None);
        };
        let api: Api<KubeSecret> =
            Api::namespaced(ctx.client.clone(), &inst.namespace().unwrap_or_default());
        let refuse = |progress: &mut Progress, reason: &'static str, message: String| {
            progress.step(conditions::INSTANCE_READY, false, reason, message);
            StepError::Refused(CAPACITY_REQUEUE)
        };
        let secret = api
            .get_opt(&secret_ref.name)
            .await
            .map_err(|e| StepError::Failed(e.into()))?;
        let Some(secret) = secret else {
            return Err(refuse(
                progress,
                "PasswordSecretNotFound",
                format!("Secret {:?} not found", secret_ref.name),
            ));
        };
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&secret_ref.key))
            .and_then(|v| String::from_utf8(v.0.clone()).ok());
        let Some(password) = value else {
            return Err(refuse(
                progress,
                "PasswordSecretNotFound",
                format!(
                    "Secret {:?} has no key {:?}",
                    secret_ref.name, secret_ref.key
                ),
            ));
        };
        if let Err(problem) = profile.password.check(&password) {
            return Err(refuse(
                progress,
                "PasswordInvalid",
                format!("Secret {:?}: {problem}", secret_ref.name),
            ));
        }
        Ok(Login::Password(SecretString::new(password)))
    }

    /// Records a cloud failure as the instance condition (and Warning once).
    fn fail(&self, progress: &mut Progress, e: CloudError) -> StepError {
        let error = Error::Cloud(e);
        let reason = failure_reason(&error);
        progress.step(conditions::INSTANCE_READY, false, reason, error.to_string());
        match reason {
            "OutOfStock" | "QuotaExceeded" => StepError::Refused(CAPACITY_REQUEUE),
            "CreateFailed" => StepError::Refused(jittered(self.ctx.config.resync)),
            _ => StepError::Failed(error),
        }
    }

    async fn reconcile_tags(&self, instance: &Instance, progress: &mut Progress) -> Result<()> {
        let (set, remove) =
            plan::tag_changes(&self.resource_tags(), &instance.tags, self.resolved.profile);
        progress.cloud_changed |= !set.is_empty() || !remove.is_empty();
        if !set.is_empty() {
            self.driver
                .tag_instance(self.region(), &instance.id, &set)
                .await?;
        }
        if !remove.is_empty() {
            self.driver
                .untag_instance(self.region(), &instance.id, &remove)
                .await?;
        }
        Ok(())
    }

    /// Converges the EIP one step at a time. Returns false while still moving.
    async fn reconcile_eip(&self, instance: &Instance, progress: &mut Progress) -> Result<bool> {
        let region = self.region().to_string();
        let wanted = self.inst.spec.public_ip.as_ref().filter(|p| p.allocate);
        // Observe the EIP by persisted id, else by the UID tag.
        let mut eip = None;
        if let Some(id) = &progress.status.eip_allocation_id {
            let filter = EipFilter {
                allocation_ids: vec![id.clone()],
                ..EipFilter::default()
            };
            eip = self
                .driver
                .describe_eips(&region, &filter)
                .await?
                .into_iter()
                .next();
            if eip.is_none() {
                self.ctx
                    .publish(
                        self.inst,
                        true,
                        "PublicIpLost",
                        format!("EIP {id} no longer exists on the cloud"),
                        "Observe",
                    )
                    .await;
                progress.status.eip_allocation_id = None;
                progress.status.public_ip = None;
                progress.status.eip_client_token = None;
            }
        }
        if eip.is_none() && (wanted.is_some() || progress.status.eip_client_token.is_some()) {
            let filter = EipFilter {
                tags: self.ownership_tags(),
                ..EipFilter::default()
            };
            eip = self
                .driver
                .describe_eips(&region, &filter)
                .await?
                .into_iter()
                .next();
        }

        for _ in 0..4 {
            let step = plan::eip_step(wanted.map(|p| p.bandwidth_mbps), eip.as_ref(), &instance.id);
            progress.cloud_changed |= !matches!(step, EipStep::Done | EipStep::Wait);
            match step {
                EipStep::Done => break,
                EipStep::Wait => return Ok(false),
                EipStep::Allocate => {
                    let Some(wanted) = wanted else { break };
                    if progress.status.eip_client_token.is_none() {
                        progress.status.eip_client_token = Some(token::new(&self.uid));
                        self.persist(progress).await?;
                    }
                    let allocated = self
                        .driver
                        .allocate_eip(&AllocateEip {
                            region: region.clone(),
                            bandwidth_mbps: wanted.bandwidth_mbps,
                            bandwidth_mode: mapping::bandwidth_mode(wanted.bandwidth_mode),
                            tags: self.resource_tags(),
                            client_token: progress
                                .status
                                .eip_client_token
                                .clone()
                                .unwrap_or_default(),
                        })
                        .await?;
                    info!(allocation_id = %allocated.allocation_id, "EIP allocated");
                    progress.status.eip_allocation_id = Some(allocated.allocation_id.clone());
                    self.persist(progress).await?;
                    eip = Some(allocated);
                }
                EipStep::Associate(id) => {
                    self.driver
                        .associate_eip(&region, &id, &instance.id)
                        .await?;
                    eip = self.describe_eip(&region, &id).await?;
                }
                EipStep::SetBandwidth(id, mbps) => {
                    self.driver.modify_eip_bandwidth(&region, &id, mbps).await?;
                    eip = self.describe_eip(&region, &id).await?;
                }
                EipStep::Disassociate(id) => {
                    let attached_to = eip
                        .as_ref()
                        .and_then(|e| e.instance_id.clone())
                        .unwrap_or_default();
                    self.driver
                        .disassociate_eip(&region, &id, &attached_to)
                        .await?;
                    eip = self.describe_eip(&region, &id).await?;
                }
                EipStep::Release(id) => {
                    self.driver
                        .release_eip(&region, &id)
                        .await
                        .ignore_not_found()?;
                    info!(allocation_id = %id, "EIP released");
                    eip = None;
                    progress.status.eip_client_token = None;
                }
            }
        }
        progress.status.eip_allocation_id = eip.as_ref().map(|e| e.allocation_id.clone());
        let attached = eip
            .as_ref()
            .filter(|e| e.instance_id.as_deref() == Some(instance.id.as_str()));
        // The instance was described before the EIP steps: its own view of the EIP may be
        // stale, so only a public IP that is not an EIP is taken from it.
        progress.status.public_ip = attached.map(|e| e.ip_address.clone()).or_else(|| {
            instance
                .public_ip
                .clone()
                .filter(|_| instance.eip_allocation_id.is_none())
        });
        match (wanted, attached) {
            (None, _) if eip.is_none() => {
                progress.step(
                    conditions::PUBLIC_IP_READY,
                    true,
                    "NotRequested",
                    "no public IP wanted",
                );
                Ok(true)
            }
            (Some(w), Some(e)) if e.bandwidth_mbps == w.bandwidth_mbps => {
                progress.step(
                    conditions::PUBLIC_IP_READY,
                    true,
                    "Bound",
                    format!("EIP {} is bound", e.ip_address),
                );
                Ok(true)
            }
            _ => {
                progress.step(
                    conditions::PUBLIC_IP_READY,
                    false,
                    "Binding",
                    "the EIP is moving between states",
                );
                Ok(false)
            }
        }
    }

    async fn describe_eip(&self, region: &str, id: &str) -> Result<Option<mce_cloud::Eip>> {
        let filter = EipFilter {
            allocation_ids: vec![id.to_string()],
            ..EipFilter::default()
        };
        Ok(self
            .driver
            .describe_eips(region, &filter)
            .await?
            .into_iter()
            .next())
    }

    /// Opens wanted ports and closes the rest on the instance's own group.
    async fn reconcile_ports(&self, progress: &mut Progress) -> Result<()> {
        let Some(group) = progress.status.security_group_id.clone() else {
            return Ok(());
        };
        let region = self.region().to_string();
        let current = self.driver.describe_ingress(&region, &group).await?;
        let description = format!("multicloud-ecs {}", self.inst.name_any());
        let (add, remove) = plan::port_changes(&self.inst.spec.open_ports, &current, &description);
        progress.cloud_changed |= !add.is_empty() || !remove.is_empty();
        if !add.is_empty() {
            self.driver.authorize_ingress(&region, &group, &add).await?;
        }
        if !remove.is_empty() {
            self.driver.revoke_ingress(&region, &group, &remove).await?;
        }
        let ports = self
            .inst
            .spec
            .open_ports
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let message = if ports.is_empty() {
            "no ports open".to_string()
        } else {
            format!("open: {ports}")
        };
        progress.step(conditions::PORTS_READY, true, "PortsOpen", message);
        Ok(())
    }
}

/// The design's error codes, as condition reasons.
fn failure_reason(e: &Error) -> &'static str {
    match e {
        Error::Cloud(c) => match c.class {
            ErrorClass::OutOfStock => "OutOfStock",
            ErrorClass::QuotaExceeded => "QuotaExceeded",
            ErrorClass::Throttled => "Throttled",
            ErrorClass::InvalidParameter | ErrorClass::IdempotencyMismatch => "CreateFailed",
            other => other.reason(),
        },
        other => other.reason(),
    }
}

fn backoff_for(e: &Error) -> Duration {
    match failure_reason(e) {
        "OutOfStock" | "QuotaExceeded" => CAPACITY_REQUEUE,
        "Throttled" => Duration::from_secs(5),
        _ => Duration::from_secs(3),
    }
}

/// Writes the status if it changed, publishes events for new failures and for becoming Ready,
/// and decides when to look again (None: converged, resync later).
async fn finish(
    inst: &EcsInstance,
    ctx: &Context,
    mut progress: Progress,
    retry: Option<Duration>,
) -> Result<Action> {
    let (ready, phase) = plan::summarize(&progress.steps);
    let previous = inst
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut all = progress.steps.clone();
    all.insert(0, ready.clone());
    // Conditions not decided this time (steps not reached) keep their previous values.
    let now = Time(Timestamp::now());
    let mut merged = conditions::merge(&previous, &all, inst.meta().generation, &now);
    for old in &previous {
        if !merged.iter().any(|c| c.type_ == old.type_) {
            merged.push(old.clone());
        }
    }
    merged.sort_by_key(|c| condition_order(&c.type_));
    progress.status.conditions = merged;
    progress.status.phase = Some(phase);

    let became_ready = ready.status && !conditions::is_true(&previous, conditions::READY);
    progress.save(inst, ctx).await?;
    let converged = ready.status && retry.is_none() && !progress.cloud_changed;
    ctx.mark_verified(
        &inst.uid().unwrap_or_default(),
        inst.meta().generation,
        converged,
    );
    for failure in plan::new_failures(&previous, &progress.steps) {
        ctx.publish(
            inst,
            true,
            &failure.reason,
            failure.message.clone(),
            failure.type_,
        )
        .await;
    }
    if became_ready {
        let ip = progress
            .status
            .public_ip
            .clone()
            .unwrap_or_else(|| "none".into());
        let id = progress.status.instance_id.clone().unwrap_or_default();
        ctx.publish(
            inst,
            false,
            "Ready",
            format!("instance {id} is ready (public IP {ip})"),
            "Reconcile",
        )
        .await;
    }
    Ok(match retry {
        Some(delay) => Action::requeue(delay),
        // Confirm what the cloud writes of this pass did before calling it converged.
        None if progress.cloud_changed => Action::requeue(SHORT_REQUEUE),
        None if ready.status => Action::requeue(jittered(ctx.config.resync)),
        None => Action::requeue(Duration::from_secs(5)),
    })
}

fn condition_order(type_: &str) -> usize {
    [
        conditions::READY,
        conditions::NETWORK_READY,
        conditions::INSTANCE_READY,
        conditions::PUBLIC_IP_READY,
        conditions::PORTS_READY,
    ]
    .iter()
    .position(|t| *t == type_)
    .unwrap_or(usize::MAX)
}

/// Releases what was created for the object: EIP (detached first), instance, its security group.
async fn cleanup(inst: &EcsInstance, ctx: &Context) -> Result<Action> {
    if inst.spec.deletion_policy == DeletionPolicy::Orphan {
        info!("deletion policy Orphan: leaving cloud resources in place");
        return Ok(Action::await_change());
    }
    let status = inst.status.clone().unwrap_or_default();
    let created_something = status.client_token.is_some()
        || status.instance_id.is_some()
        || status.security_group_id.is_some()
        || status.security_group_client_token.is_some()
        || status.eip_client_token.is_some();
    if !created_something {
        return Ok(Action::await_change());
    }
    let code = status
        .provider
        .clone()
        .or_else(|| inst.spec.provider.clone())
        .unwrap_or_default();
    let Some(provider) = ctx.provider_by_code(&code) else {
        return Err(Error::Waiting(format!(
            "CloudProvider {code:?} is gone; cannot release cloud resources"
        )));
    };
    let driver = ctx.drivers.driver(&provider).await?;
    let region = match status.region.clone() {
        Some(r) => r,
        None => match mapping::placement(
            &provider.spec,
            inst.spec.region.as_deref(),
            inst.spec.zone.as_deref(),
        ) {
            Ok(p) => p.region,
            Err(_) => return Ok(Action::await_change()),
        },
    };
    let uid = inst.uid().unwrap_or_default();
    let owned = plan::instance_tags(tenancy::uid_tag(&uid));
    let mut steps_left = false;

    // EIPs: by id and by tag.
    let mut eips = driver
        .describe_eips(
            &region,
            &EipFilter {
                tags: owned.clone(),
                ..EipFilter::default()
            },
        )
        .await?;
    if let Some(id) = &status.eip_allocation_id
        && !eips.iter().any(|e| &e.allocation_id == id)
    {
        let by_id = EipFilter {
            allocation_ids: vec![id.clone()],
            ..EipFilter::default()
        };
        eips.extend(driver.describe_eips(&region, &by_id).await?);
    }
    for eip in &eips {
        if let Some(attached) = &eip.instance_id {
            driver
                .disassociate_eip(&region, &eip.allocation_id, attached)
                .await
                .ignore_not_found()?;
        }
        match driver
            .release_eip(&region, &eip.allocation_id)
            .await
            .ignore_not_found()
        {
            Ok(()) => info!(allocation_id = %eip.allocation_id, "EIP released"),
            Err(e) if e.class == ErrorClass::WrongState => steps_left = true,
            Err(e) => return Err(e.into()),
        }
    }

    // Instances: by id and by tag.
    let mut instances: Vec<String> = driver
        .find_instances(&region, &owned)
        .await?
        .into_iter()
        .map(|i| i.id)
        .collect();
    if let Some(id) = &status.instance_id
        && !instances.contains(id)
    {
        instances.push(id.clone());
    }
    for id in &instances {
        driver
            .delete_instance(&region, id)
            .await
            .ignore_not_found()?;
        info!(instance_id = %id, "instance deleted");
    }

    // The instance's own security group (dependency violations clear once the instance is gone).
    let vpc = status
        .network
        .as_ref()
        .and_then(|n| n.vpc_id.clone())
        .unwrap_or_default();
    let mut groups: Vec<String> = if vpc.is_empty() {
        Vec::new()
    } else {
        driver
            .find_security_groups(&region, &vpc, &owned)
            .await?
            .into_iter()
            .map(|g| g.id)
            .collect()
    };
    if let Some(id) = &status.security_group_id
        && !groups.contains(id)
    {
        groups.push(id.clone());
    }
    for id in &groups {
        match driver
            .delete_security_group(&region, id)
            .await
            .ignore_not_found()
        {
            Ok(()) => {}
            Err(e) if e.class == ErrorClass::DependencyViolation => steps_left = true,
            Err(e) => return Err(e.into()),
        }
    }
    if steps_left {
        return Err(Error::Waiting(
            "waiting for the cloud to release dependent resources".into(),
        ));
    }
    ctx.publish(
        inst,
        false,
        "Released",
        "cloud resources released".into(),
        "Delete",
    )
    .await;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reasons_follow_the_design_codes() {
        let e = |class| Error::Cloud(CloudError::new(class, "ALIYUN", "RunInstances", "X", "m"));
        assert_eq!(failure_reason(&e(ErrorClass::OutOfStock)), "OutOfStock");
        assert_eq!(
            failure_reason(&e(ErrorClass::QuotaExceeded)),
            "QuotaExceeded"
        );
        assert_eq!(failure_reason(&e(ErrorClass::Throttled)), "Throttled");
        assert_eq!(
            failure_reason(&e(ErrorClass::InvalidParameter)),
            "CreateFailed"
        );
        assert_eq!(backoff_for(&e(ErrorClass::OutOfStock)), CAPACITY_REQUEUE);
    }

    #[test]
    fn labels_are_sanitized() {
        assert_eq!(label_safe("user@example.com"), "userexample.com");
    }
}
