//! The public IP step: observe the EIP by its persisted id or by the object's UID tag, then
//! converge it one step at a time ([`plan::eip_step`]).

use std::time::Duration;

use jiff::Timestamp;

use tracing::{info, warn};

use super::super::error::Result;
use super::super::plan::{self, EipStep, Ownership, Unseen};
use super::super::status::Progress;
use super::super::token;
use super::Run;
use crate::api::conditions;
use crate::api::{EcsInstanceStatus, Reason};
use mce_cloud::{AllocateEip, EipFilter, IgnoreNotFound, Instance};

/// Steps taken in one pass at most; the rest waits for the next look.
const MAX_EIP_STEPS: usize = 4;

/// Records a newly learned allocation id and when it was learned: the grace for an EIP the
/// cloud does not list yet runs from this moment.
fn learned(status: &mut EcsInstanceStatus, allocation_id: &str) {
    status.eip_allocation_id = Some(allocation_id.to_string());
    status.eip_allocation_id_learned_at = Some(Timestamp::now().to_string());
}

impl Run<'_> {
    /// Converges the EIP. Returns when to look again (None: done).
    pub async fn reconcile_eip(
        &self,
        instance: &Instance,
        progress: &mut Progress<EcsInstanceStatus>,
    ) -> Result<Option<Duration>> {
        let region = self.region().to_string();
        let wanted = self.inst.spec.public_ip.as_ref().filter(|p| p.allocate);
        let mut eip = None;
        if let Some(id) = progress.status.eip_allocation_id.clone() {
            eip = self.describe_eip(&region, &id).await?;
            // Never move, resize or release an EIP that is not this object's, whatever status
            // says.
            if let Some(found) = &eip {
                let ownership =
                    plan::ownership(&found.tags, &self.uid, Some(&self.resolved.tenant));
                if ownership != Ownership::Owned {
                    warn!(allocation_id = %id, ?ownership, "EIP in status is not this object's");
                    let refusal = plan::ownership_refusal(
                        conditions::PUBLIC_IP_READY,
                        &format!("EIP {id}"),
                        ownership,
                    );
                    progress.step(refusal.type_, false, refusal.reason, refusal.message);
                    return Ok(Some(plan::SLOW_REQUEUE));
                }
            }
            if eip.is_none() {
                // A new EIP may simply not be listed yet (read lag): it is lost only once it
                // had been bound, or after the grace since its id was learned. Replacing it
                // earlier would allocate a second EIP under a new token.
                let learned_at = progress
                    .status
                    .eip_allocation_id_learned_at
                    .as_deref()
                    .and_then(|t| t.parse().ok());
                let public_ip_ready = self
                    .inst
                    .status
                    .as_ref()
                    .and_then(|s| conditions::find(&s.conditions, conditions::PUBLIC_IP_READY));
                if plan::unseen(public_ip_ready, learned_at, Timestamp::now()) == Unseen::Starting {
                    progress.step(
                        conditions::PUBLIC_IP_READY,
                        false,
                        Reason::Binding,
                        format!("EIP {id} is not visible yet"),
                    );
                    return Ok(Some(plan::SHORT_REQUEUE));
                }
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
                progress.status.eip_allocation_id_learned_at = None;
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

        let mut allocated_now = false;
        // Addresses taken off the instance in this pass: its description, read before, may
        // still show one (clouds that do not tell an EIP from an address of the instance).
        let mut detached: Vec<String> = Vec::new();
        for _ in 0..MAX_EIP_STEPS {
            let step = plan::eip_step(wanted.map(|p| p.bandwidth_mbps), eip.as_ref(), &instance.id);
            progress.cloud_changed |= !matches!(step, EipStep::Done | EipStep::Wait);
            match step {
                EipStep::Done => break,
                EipStep::Wait => {
                    if let Some(e) = &eip {
                        let settling = plan::eip_settling(e);
                        progress.step(
                            settling.type_,
                            settling.status,
                            settling.reason,
                            settling.message,
                        );
                    }
                    return Ok(Some(plan::SHORT_REQUEUE));
                }
                EipStep::Allocate => {
                    let Some(wanted) = wanted else { break };
                    if progress.status.eip_client_token.is_none() {
                        progress.status.eip_client_token = Some(token::new(&self.uid));
                    }
                    // Persisted before the call even when `prepare` chose it: a crash or a
                    // failed write after an allocation whose tags lag would otherwise allocate
                    // a second EIP under a new token. (A no-op when already written.)
                    self.persist_tokens(progress).await?;
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
                    allocated_now = true;
                    learned(&mut progress.status, &allocated.allocation_id);
                    // Where network creates take no ClientToken (Tencent, AWS) the id is written
                    // at once: AWS allocations take none either, and the driver finds a replay
                    // by a tag, which may lag. Elsewhere replaying the token returns this EIP,
                    // and the pass's status write records it.
                    if self.resolved.profile.untokened_create_grace.is_some() {
                        self.persist(progress).await?;
                    }
                    eip = Some(allocated);
                }
                EipStep::Associate(id) => {
                    self.driver
                        .associate_eip(&region, &id, &instance.id)
                        .await?;
                    match self.describe_eip(&region, &id).await? {
                        Some(found) => eip = Some(found),
                        None => break,
                    }
                }
                EipStep::SetBandwidth(id, mbps) => {
                    self.driver.modify_eip_bandwidth(&region, &id, mbps).await?;
                    match self.describe_eip(&region, &id).await? {
                        Some(found) => eip = Some(found),
                        None => break,
                    }
                }
                EipStep::Disassociate(id) => {
                    detached.extend(eip.as_ref().map(|e| e.ip_address.clone()));
                    let attached_to = eip
                        .as_ref()
                        .and_then(|e| e.instance_id.clone())
                        .unwrap_or_default();
                    self.driver
                        .disassociate_eip(&region, &id, &attached_to)
                        .await?;
                    match self.describe_eip(&region, &id).await? {
                        Some(found) => eip = Some(found),
                        None => break,
                    }
                }
                EipStep::Release(id) => {
                    self.driver
                        .release_eip(&region, &id)
                        .await
                        .ignore_not_found()?;
                    info!(allocation_id = %id, "EIP released");
                    detached.extend(eip.take().map(|e| e.ip_address));
                    progress.status.eip_client_token = None;
                }
            }
        }
        match &eip {
            Some(e) if progress.status.eip_allocation_id.as_ref() != Some(&e.allocation_id) => {
                learned(&mut progress.status, &e.allocation_id);
            }
            Some(_) => {}
            None => {
                progress.status.eip_allocation_id = None;
                progress.status.eip_allocation_id_learned_at = None;
            }
        }
        progress.status.public_ip =
            plan::public_ip(eip.as_ref(), instance).filter(|ip| !detached.contains(ip));
        let ready =
            plan::public_ip_ready(wanted.map(|p| p.bandwidth_mbps), eip.as_ref(), &instance.id);
        let done = ready.status;
        progress.step(ready.type_, ready.status, ready.reason, ready.message);
        // The billing of an EIP is fixed at allocation (Alibaba's ModifyEipAddressAttribute
        // cannot change InternetChargeType): status keeps showing the EIP's real billing, and a
        // different wanted one is refused rather than silently ignored.
        if eip.is_some() && !allocated_now {
            let billed = self
                .inst
                .status
                .as_ref()
                .and_then(|s| s.internet_charge_type.clone());
            let wanted_wire = self.resolved.params.internet_charge_type.as_deref();
            if let Some(wanted_wire) = wanted_wire
                && let Some(refusal) = plan::bandwidth_mode_refusal(billed.as_deref(), wanted_wire)
            {
                progress.status.internet_charge_type = billed;
                progress.step(refusal.type_, false, refusal.reason, refusal.message);
                return Ok(Some(plan::SLOW_REQUEUE));
            }
        }
        Ok((!done).then_some(plan::SHORT_REQUEUE))
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
