//! Adoption (issue 12): an EcsInstance with `spec.adopt.instanceId` takes over an existing cloud
//! instance instead of creating one. The checks run before any cloud write; a refusal
//! (`AdoptionRefused`) leaves the instance untouched. Once tagged with the object's UID the
//! instance is found and managed like one the operator created (EIP, tags, drift, deletion per
//! `deletionPolicy`).

use tracing::info;

use super::super::plan;
use super::super::status::Progress;
use super::super::tenancy::adoption_refusal;
use super::{Run, StepError};
use crate::api::conditions;
use crate::api::{EcsInstanceStatus, Reason};
use mce_cloud::{Instance, InstanceStatus};

impl Run<'_> {
    /// Verifies and tags the instance `id`, then records it as this object's.
    pub(super) async fn adopt_instance(
        &self,
        id: &str,
        progress: &mut Progress<EcsInstanceStatus>,
    ) -> Result<Instance, StepError> {
        let region = self.region().to_string();
        let found = self
            .driver
            .describe_instances(&region, &[id.to_string()])
            .await
            .map_err(|e| self.fail(progress, e))?;
        let refuse = |progress: &mut Progress<EcsInstanceStatus>, why: String| {
            progress.step(
                conditions::INSTANCE_READY,
                false,
                Reason::AdoptionRefused,
                format!("instance {id} cannot be adopted: {why}"),
            );
            StepError::Refused(plan::SLOW_REQUEUE)
        };
        let Some(instance) = found
            .into_iter()
            .find(|i| i.id == id && i.status != InstanceStatus::Terminated)
        else {
            return Err(refuse(
                progress,
                format!(
                    "it does not exist in region {region} of provider {}",
                    self.resolved.provider.spec.code
                ),
            ));
        };
        if let Some(why) = adoption_refusal(
            &instance.tags,
            &self.uid,
            &self.resolved.tenant,
            self.resolved.provider.spec.allow_untagged_adoption,
        ) {
            return Err(refuse(progress, why));
        }
        self.driver
            .tag_instance(&region, id, &self.resource_tags())
            .await
            .map_err(|e| self.fail(progress, e))?;
        progress.cloud_changed = true;
        info!(instance_id = %id, "instance adopted");
        self.sinks
            .events
            .publish(
                false,
                Reason::Adopted,
                format!("instance {id} adopted"),
                "Adopt",
            )
            .await;
        progress.status.instance_id = Some(id.to_string());
        progress.status.instance_id_learned_at = Some(jiff::Timestamp::now().to_string());
        self.persist(progress).await.map_err(StepError::Failed)?;
        Ok(instance)
    }
}

impl Run<'_> {
    /// An adopted VM is in none of the operator's groups: to take `openPorts` it joins the
    /// instance's own security group (found by its UID tag or created in the network's VPC).
    /// The group is recorded only once joined, so the ports step never opens ports on a group
    /// the VM is not in. A VM in another VPC than its network's is refused by the cloud, and
    /// that refusal is what `PortsReady` shows.
    pub(super) async fn join_own_group(
        &self,
        instance: &Instance,
        progress: &mut Progress<EcsInstanceStatus>,
    ) -> Result<(), StepError> {
        let group = self.ensure_security_group(progress).await?;
        progress.status.security_group_id = None;
        self.driver
            .join_security_group(self.region(), &instance.id, &group)
            .await
            .map_err(|e| {
                progress.step(
                    conditions::PORTS_READY,
                    false,
                    plan::failure_reason(&super::super::error::Error::Cloud(e.clone())),
                    format!("the adopted instance cannot join its security group {group}: {e}"),
                );
                StepError::Refused(plan::backoff_for(&super::super::error::Error::Cloud(e)))
            })?;
        info!(instance_id = %instance.id, group_id = %group, "adopted instance joined its security group");
        progress.cloud_changed = true;
        progress.status.security_group_id = Some(group);
        Ok(())
    }
}
