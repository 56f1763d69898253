//! The instance step: find the instance by its persisted id or by the object's UID tag (a crash
//! after RunInstances), else create it — with its own security group and its login — under a
//! ClientToken persisted before the call.

use async_trait::async_trait;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::super::context::Context;
use super::super::error::{Error, Result};
use super::super::plan::{self, Ownership, StepFailure, Unseen};
use super::super::status::Progress;
use super::super::{jittered, token};
use super::Run;
use crate::api::conditions::{self, Desired};
use crate::api::{EcsInstance, EcsInstanceStatus, PendingCreate, Reason};
use mce_cloud::{
    CloudError, CreateSecurityGroup, IgnoreNotFound, Instance, InstanceStatus, Login,
    ProviderProfile, RunInstance, Secret as SecretString,
};

/// The `PendingCreate` resource of an instance's own security group.
const SECURITY_GROUP: &str = "securityGroup";

/// Records a newly learned instance id and when it was learned: the grace for an instance the
/// cloud does not list yet runs from this moment.
fn learned(status: &mut EcsInstanceStatus, id: &str) {
    status.instance_id = Some(id.to_string());
    status.instance_id_learned_at = Some(Timestamp::now().to_string());
}

/// Why an instance step stopped.
#[derive(Debug)]
pub enum StepError {
    /// Input or capacity problem recorded as a condition: requeue after the delay.
    Refused(std::time::Duration),
    /// Retryable failure: recorded as a condition, then returned to the error policy.
    Failed(Error),
}

/// Where the login Secret is read.
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The Secret `name` in `namespace`, if it exists.
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<KubeSecret>>;
}

#[async_trait]
impl SecretSource for Context {
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<KubeSecret>> {
        let api: Api<KubeSecret> = Api::namespaced(self.client.clone(), namespace);
        Ok(api.get_opt(name).await?)
    }
}

/// The login credential; the password is read from its Secret only when about to create, and
/// checked against the provider's rule before any cloud call.
pub async fn login(
    inst: &EcsInstance,
    profile: &ProviderProfile,
    secrets: &dyn SecretSource,
    progress: &mut Progress<EcsInstanceStatus>,
) -> std::result::Result<Login, StepError> {
    if let Some(name) = &inst.spec.key_pair_name {
        return Ok(Login::KeyPair(name.clone()));
    }
    let Some(secret_ref) = &inst.spec.password_secret_ref else {
        return Ok(Login::None);
    };
    let refuse = |progress: &mut Progress<EcsInstanceStatus>, reason, message: String| {
        progress.step(conditions::INSTANCE_READY, false, reason, message);
        StepError::Refused(plan::CAPACITY_REQUEUE)
    };
    let secret = secrets
        .secret(&inst.namespace().unwrap_or_default(), &secret_ref.name)
        .await
        .map_err(StepError::Failed)?;
    let Some(secret) = secret else {
        return Err(refuse(
            progress,
            Reason::PasswordSecretNotFound,
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
            Reason::PasswordSecretNotFound,
            format!(
                "Secret {:?} has no key {:?}",
                secret_ref.name, secret_ref.key
            ),
        ));
    };
    if let Err(problem) = profile.password.check(&password) {
        return Err(refuse(
            progress,
            Reason::PasswordInvalid,
            format!("Secret {:?}: {problem}", secret_ref.name),
        ));
    }
    Ok(Login::Password(SecretString::new(password)))
}

impl Run<'_> {
    /// Finds or creates the instance. `Ok(None)`: created and not yet visible.
    pub async fn ensure_instance(
        &self,
        progress: &mut Progress<EcsInstanceStatus>,
    ) -> std::result::Result<Option<Instance>, StepError> {
        let region = self.region().to_string();
        // Observe: by the persisted id, else by the UID tag (a crash after RunInstances).
        if let Some(id) = progress.status.instance_id.clone() {
            let found = self
                .describe_instance(&id)
                .await
                .map_err(|e| self.fail(progress, e))?;
            let now = Timestamp::now();
            let learned_at = progress
                .status
                .instance_id_learned_at
                .as_deref()
                .and_then(|t| t.parse::<Timestamp>().ok());
            if let Some(instance) = found
                && instance.status != InstanceStatus::Terminated
            {
                // The id in status is not proof of ownership (status can be edited): the UID
                // tag set at creation is. Tags of a new instance may lag behind it.
                let ownership =
                    plan::ownership(&instance.tags, &self.uid, Some(&self.resolved.tenant));
                return match ownership {
                    Ownership::Owned => Ok(Some(instance)),
                    Ownership::Untagged if plan::within_grace(learned_at, now) => {
                        progress.step(
                            conditions::INSTANCE_READY,
                            false,
                            Reason::Starting,
                            format!("instance {id} is starting"),
                        );
                        Ok(None)
                    }
                    other => {
                        warn!(instance_id = %id, ?other, "instance in status is not this object's");
                        let refusal = plan::ownership_refusal(
                            conditions::INSTANCE_READY,
                            &format!("instance {id}"),
                            other,
                        );
                        progress.step(refusal.type_, false, refusal.reason, refusal.message);
                        Err(StepError::Refused(plan::SLOW_REQUEUE))
                    }
                };
            }
            let instance_ready = self
                .inst
                .status
                .as_ref()
                .and_then(|s| conditions::find(&s.conditions, conditions::INSTANCE_READY));
            if plan::unseen(instance_ready, learned_at, now) == Unseen::Starting {
                progress.step(
                    conditions::INSTANCE_READY,
                    false,
                    Reason::Starting,
                    format!("instance {id} is starting"),
                );
                return Ok(None);
            }
            self.forget_lost(&id, progress).await?;
        }
        let mut owned = self
            .driver
            .find_instances(&region, &self.ownership_tags())
            .await
            .map_err(|e| self.fail(progress, e))?;
        owned.retain(|i| i.status != InstanceStatus::Terminated);
        if let Some(instance) = owned.into_iter().next() {
            info!(instance_id = %instance.id, "adopting the instance created for this object");
            learned(&mut progress.status, &instance.id);
            self.persist(progress).await.map_err(StepError::Failed)?;
            return Ok(Some(instance));
        }

        // --- adoption (issue 12): take over the named instance instead of creating one ---
        if let Some(adopt) = &self.inst.spec.adopt {
            return self
                .adopt_instance(&adopt.instance_id, progress)
                .await
                .map(Some);
        }
        // --- end adoption ---
        let security_group = self.ensure_security_group(progress).await?;
        let login = login(
            self.inst,
            self.resolved.profile,
            self.sinks.secrets,
            progress,
        )
        .await?;

        // Token first, persisted, then the call.
        if progress.status.client_token.is_none() {
            progress.status.client_token = Some(token::new(&self.uid));
        }
        self.persist_tokens(progress)
            .await
            .map_err(StepError::Failed)?;
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
                .unwrap_or_else(|| self.resolved.profile.resource_name(&self.inst.name_any())),
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
                if self.config.failpoint.as_deref() == Some("after-run-instances") {
                    warn!("failpoint after-run-instances: aborting before the id is persisted");
                    std::process::abort();
                }
                // The id is written by the status write that follows at once.
                learned(&mut progress.status, &id);
                progress.cloud_changed = true;
                progress.step(
                    conditions::INSTANCE_READY,
                    false,
                    Reason::Starting,
                    format!("instance {id} is starting"),
                );
                Ok(None)
            }
            Err(e) => {
                if plan::needs_new_token(e.class) {
                    progress.status.client_token = None;
                }
                let reason = plan::failure_reason(&Error::Cloud(e.clone()));
                if plan::step_failure(reason) == StepFailure::Capacity && self.inst.is_placed() {
                    return self.abandon_candidate(progress, reason, &e).await;
                }
                Err(self.fail(progress, e))
            }
        }
    }

    /// A placed instance's create was refused for stock, quota or a full subnet: what was made
    /// for it on this candidate (its own security group) is released, its network forgotten
    /// (a silent one goes with its last user), and it is placed again at once, elsewhere.
    async fn abandon_candidate(
        &self,
        progress: &mut Progress<EcsInstanceStatus>,
        reason: Reason,
        e: &CloudError,
    ) -> std::result::Result<Option<Instance>, StepError> {
        let region = self.region().to_string();
        let vpc_id = self.network.vpc_id.clone().unwrap_or_default();
        let mut groups: Vec<String> = progress
            .status
            .security_group_id
            .take()
            .into_iter()
            .collect();
        if let Ok(found) = self
            .driver
            .find_security_groups(&region, &vpc_id, &self.ownership_tags())
            .await
        {
            groups.extend(found.into_iter().map(|g| g.id));
        }
        groups.sort();
        groups.dedup();
        for group in &groups {
            if let Err(err) = self
                .driver
                .delete_security_group(&region, group)
                .await
                .ignore_not_found()
            {
                // Left for the deletion of the object, which looks for it by tag.
                warn!(security_group_id = %group, error = %err, "abandoned group not released");
            }
        }
        progress.status.security_group_client_token = None;
        progress.status.pending_create = None;
        progress.status.network = None;
        crate::api::placement::release_choice(
            &mut progress.status,
            reason,
            &e.to_string(),
            Timestamp::now(),
        );
        progress.step(
            conditions::INSTANCE_READY,
            false,
            reason,
            format!("{e}; placing the instance elsewhere"),
        );
        Err(StepError::Refused(plan::SHORT_REQUEUE))
    }

    /// An instance deleted outside Kubernetes: one Warning, its ids forgotten and a new token,
    /// persisted before it is created again.
    async fn forget_lost(
        &self,
        id: &str,
        progress: &mut Progress<EcsInstanceStatus>,
    ) -> std::result::Result<(), StepError> {
        warn!(instance_id = %id, "instance gone from the cloud; recreating");
        self.sinks
            .events
            .publish(
                true,
                Reason::InstanceLost,
                format!("instance {id} no longer exists on the cloud; creating a new one"),
                "Observe",
            )
            .await;
        progress.status.instance_id = None;
        progress.status.instance_id_learned_at = None;
        progress.status.private_ip = None;
        progress.status.public_ip = None;
        progress.status.client_token = Some(token::new(&self.uid));
        let lost = format!("instance {id} was deleted outside Kubernetes");
        let now = Time(Timestamp::now());
        let generation = self.inst.meta().generation;
        for type_ in [conditions::READY, conditions::INSTANCE_READY] {
            let desired = Desired::new(type_, false, Reason::InstanceLost, lost.clone());
            conditions::upsert(&mut progress.status.conditions, &desired, generation, &now);
        }
        self.persist(progress).await.map_err(StepError::Failed)
    }

    /// The instance's own security group, holding its ports.
    pub(super) async fn ensure_security_group(
        &self,
        progress: &mut Progress<EcsInstanceStatus>,
    ) -> std::result::Result<String, StepError> {
        let region = self.region().to_string();
        let vpc_id = self.network.vpc_id.clone().unwrap_or_default();
        if let Some(id) = progress.status.security_group_id.clone() {
            // An instance must never join a group that is not its own.
            return match self
                .group_ownership(&id)
                .await
                .map_err(|e| self.fail(progress, e))?
            {
                Ownership::Owned => Ok(id),
                other => {
                    let refusal = plan::ownership_refusal(
                        conditions::INSTANCE_READY,
                        &format!("security group {id}"),
                        other,
                    );
                    progress.step(refusal.type_, false, refusal.reason, refusal.message);
                    Err(StepError::Refused(plan::SLOW_REQUEUE))
                }
            };
        }
        let found = self
            .driver
            .find_security_groups(&region, &vpc_id, &self.ownership_tags())
            .await
            .map_err(|e| self.fail(progress, e))?;
        let id = match found.into_iter().next() {
            Some(g) => {
                // Found by its tags: a create of it is no longer in doubt.
                progress.status.pending_create = None;
                g.id
            }
            None => {
                if progress.status.security_group_client_token.is_none() {
                    progress.status.security_group_client_token = Some(token::new(&self.uid));
                }
                // Without a ClientToken for it, an earlier create may still show up.
                let now = Timestamp::now();
                if let Err(left) = plan::untokened_create_gate(
                    self.resolved.profile.untokened_create_grace,
                    progress.status.pending_create.as_ref(),
                    SECURITY_GROUP,
                    now,
                ) {
                    progress.step(
                        conditions::INSTANCE_READY,
                        false,
                        Reason::Provisioning,
                        "waiting for the security group created earlier to show up",
                    );
                    return Err(StepError::Refused(left));
                }
                if self.resolved.profile.untokened_create_grace.is_some() {
                    progress.status.pending_create = Some(PendingCreate {
                        resource: SECURITY_GROUP.into(),
                        at: now.to_string(),
                    });
                }
                self.persist_tokens(progress)
                    .await
                    .map_err(StepError::Failed)?;
                progress.cloud_changed = true;
                self.driver
                    .create_security_group(&CreateSecurityGroup {
                        region: region.clone(),
                        vpc_id,
                        name: self
                            .resolved
                            .profile
                            .resource_name(&format!("sg-{}", self.inst.name_any())),
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
        // Found by its UID tag or created with it: ours. Its id is written with the pass's
        // status (after a crash the group is found again by that tag).
        self.owned.insert(&self.uid, &id);
        progress.status.security_group_id = Some(id.clone());
        Ok(id)
    }

    /// Whose the security group `id` (from status) is. Found among the groups carrying this
    /// object's UID tag it is ours (one small, tag-filtered look-up, and none once this process
    /// has verified it); otherwise the VPC's groups tell whether it is another object's, or not
    /// visible yet.
    pub(super) async fn group_ownership(&self, id: &str) -> mce_cloud::CloudResult<Ownership> {
        if self.owned.contains(&self.uid, id) {
            return Ok(Ownership::Owned);
        }
        let vpc_id = self.network.vpc_id.clone().unwrap_or_default();
        let ours = self
            .driver
            .find_security_groups(self.region(), &vpc_id, &self.ownership_tags())
            .await?;
        let ownership = match ours.iter().find(|g| g.id == id) {
            Some(g) => plan::ownership(&g.tags, &self.uid, Some(&self.resolved.tenant)),
            None => self
                .driver
                .find_security_groups(self.region(), &vpc_id, &mce_cloud::Tags::new())
                .await?
                .iter()
                .find(|g| g.id == id)
                .map_or(Ownership::Untagged, |g| {
                    plan::ownership(&g.tags, &self.uid, Some(&self.resolved.tenant))
                }),
        };
        if ownership == Ownership::Owned {
            self.owned.insert(&self.uid, id);
        }
        Ok(ownership)
    }

    /// Records a cloud failure as the instance condition (its Warning is published once, by
    /// `finish`).
    pub(super) fn fail(
        &self,
        progress: &mut Progress<EcsInstanceStatus>,
        e: CloudError,
    ) -> StepError {
        let error = Error::Cloud(e);
        let reason = plan::failure_reason(&error);
        progress.step(conditions::INSTANCE_READY, false, reason, error.to_string());
        match plan::step_failure(reason) {
            StepFailure::Capacity => StepError::Refused(plan::CAPACITY_REQUEUE),
            StepFailure::Spec => StepError::Refused(jittered(self.config.resync)),
            StepFailure::Retry => StepError::Failed(error),
        }
    }
}
