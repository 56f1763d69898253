//! The public IP step: observe the EIP by its persisted id or by the object's UID tag, then
//! converge it one step at a time ([`plan::eip_step`]).

use tracing::info;

use super::super::error::Result;
use super::super::plan::{self, EipStep};
use super::super::status::Progress;
use super::super::token;
use super::Run;
use crate::api::{EcsInstanceStatus, Reason};
use mce_cloud::{AllocateEip, EipFilter, IgnoreNotFound, Instance};

/// Steps taken in one pass at most; the rest waits for the next look.
const MAX_EIP_STEPS: usize = 4;

impl Run<'_> {
    /// Converges the EIP. Returns false while still moving.
    pub async fn reconcile_eip(
        &self,
        instance: &Instance,
        progress: &mut Progress<EcsInstanceStatus>,
    ) -> Result<bool> {
        let region = self.region().to_string();
        let wanted = self.inst.spec.public_ip.as_ref().filter(|p| p.allocate);
        let mut eip = None;
        if let Some(id) = progress.status.eip_allocation_id.clone() {
            eip = self.describe_eip(&region, &id).await?;
            if eip.is_none() {
                self.sinks
                    .events
                    .publish(
                        true,
                        Reason::PublicIpLost,
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

        for _ in 0..MAX_EIP_STEPS {
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
                            bandwidth_mode: super::super::mapping::bandwidth_mode(
                                wanted.bandwidth_mode,
                            ),
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
        progress.status.public_ip = plan::public_ip(eip.as_ref(), instance);
        let ready =
            plan::public_ip_ready(wanted.map(|p| p.bandwidth_mbps), eip.as_ref(), &instance.id);
        let done = ready.status;
        progress.step(ready.type_, ready.status, ready.reason, ready.message);
        Ok(done)
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
}
