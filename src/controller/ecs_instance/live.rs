//! Live changes on a running instance: its tags and the ports of its own security group.

use super::super::error::Result;
use super::super::plan;
use super::super::status::Progress;
use super::Run;
use crate::api::conditions;
use crate::api::{EcsInstanceStatus, Reason};
use kube::ResourceExt;
use mce_cloud::Instance;

impl Run<'_> {
    /// Sets and removes tags so the instance carries exactly its desired tags (keys the cloud
    /// owns are kept).
    pub async fn reconcile_tags(
        &self,
        instance: &Instance,
        progress: &mut Progress<EcsInstanceStatus>,
    ) -> Result<()> {
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

    /// Opens wanted ports and closes the rest on the instance's own group. Returns false when
    /// the group in status is refused as not this object's (nothing is changed on it).
    pub async fn reconcile_ports(
        &self,
        progress: &mut Progress<EcsInstanceStatus>,
    ) -> Result<bool> {
        let Some(group) = progress.status.security_group_id.clone() else {
            return Ok(true);
        };
        let ownership = self.group_ownership(&group).await?;
        if ownership != plan::Ownership::Owned {
            let refusal = plan::ownership_refusal(
                conditions::PORTS_READY,
                &format!("security group {group}"),
                ownership,
            );
            progress.step(refusal.type_, false, refusal.reason, refusal.message);
            return Ok(false);
        }
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
        progress.step(conditions::PORTS_READY, true, Reason::PortsOpen, message);
        Ok(true)
    }
}
