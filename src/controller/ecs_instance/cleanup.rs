//! Deletion: releases what was created for the object — EIP (detached first), instance, its own
//! security group — found by the ids in status and by the object's UID tag.

use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::{info, warn};

use super::super::context::Context;
use super::super::error::{Error, Result};
use super::super::status::{EventSink, ObjectSink};
use super::super::{mapping, plan, tenancy};
use crate::api::{DeletionPolicy, EcsInstance, EcsInstanceStatus, Reason};
use mce_cloud::{CloudDriver, EipFilter, ErrorClass, IgnoreNotFound};

pub(super) async fn cleanup(inst: &EcsInstance, ctx: &Context) -> Result<Action> {
    if inst.spec.deletion_policy == DeletionPolicy::Orphan {
        info!("deletion policy Orphan: leaving cloud resources in place");
        super::network::orphan_silent_network(inst, ctx).await?;
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
        .or_else(|| inst.target_provider().map(String::from))
        .unwrap_or_default();
    let Some(provider) = ctx.provider_by_code(&code) else {
        return Err(Error::Waiting(format!(
            "CloudProvider {code:?} is gone; cannot release cloud resources"
        )));
    };
    let driver = ctx.drivers.driver(&provider).await?;
    let region = match status.region.clone() {
        Some(r) => r,
        None => {
            match mapping::placement(&provider.spec, inst.target_region(), inst.target_zone()) {
                Ok(p) => p.region,
                Err(_) => return Ok(Action::await_change()),
            }
        }
    };
    let events = ObjectSink::<_, EcsInstanceStatus>::new(inst, ctx, None);
    let released = release(
        driver.as_ref(),
        &region,
        &inst.uid().unwrap_or_default(),
        &status,
        &events,
    )
    .await;
    // A release the cloud refuses (a permission, a quota, a wrong state) is told on the object,
    // not only in the operator's log: the finalizer stays until it succeeds.
    if let Err(e) = &released
        && !matches!(e, Error::Waiting(_))
    {
        let reason = plan::failure_reason(e);
        events
            .publish(
                true,
                reason,
                format!("releasing cloud resources: {e}"),
                "Delete",
            )
            .await;
    }
    released?;
    Ok(Action::await_change())
}

/// Releases every cloud resource of the object with this UID and status, then publishes
/// `Released`. `Err(Waiting)` while the cloud still holds a dependent resource.
pub async fn release(
    driver: &dyn CloudDriver,
    region: &str,
    uid: &str,
    status: &EcsInstanceStatus,
    events: &dyn EventSink,
) -> Result<()> {
    let owned = plan::instance_tags(tenancy::uid_tag(uid));
    let mut steps_left = false;

    // EIPs: by id and by tag.
    let mut eips = driver
        .describe_eips(
            region,
            &EipFilter {
                tags: owned.clone(),
                ..EipFilter::default()
            },
        )
        .await?;
    // Ids in status are used only for what carries the UID tag: status can be edited.
    if let Some(id) = &status.eip_allocation_id
        && !eips.iter().any(|e| &e.allocation_id == id)
    {
        let by_id = EipFilter {
            allocation_ids: vec![id.clone()],
            ..EipFilter::default()
        };
        for eip in driver.describe_eips(region, &by_id).await? {
            if by_status_id(&eip.tags, uid, &mut steps_left, "EIP", id) {
                eips.push(eip);
            }
        }
    }
    for eip in &eips {
        if let Some(attached) = &eip.instance_id {
            driver
                .disassociate_eip(region, &eip.allocation_id, attached)
                .await
                .ignore_not_found()?;
        }
        match driver
            .release_eip(region, &eip.allocation_id)
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
        .find_instances(region, &owned)
        .await?
        .into_iter()
        .map(|i| i.id)
        .collect();
    if let Some(id) = &status.instance_id
        && !instances.contains(id)
    {
        for found in driver
            .describe_instances(region, std::slice::from_ref(id))
            .await?
        {
            if by_status_id(&found.tags, uid, &mut steps_left, "instance", id) {
                instances.push(found.id);
            }
        }
    }
    for id in &instances {
        driver
            .delete_instance(region, id)
            .await
            .ignore_not_found()?;
        info!(instance_id = %id, "instance deleted");
    }
    // Released means confirmed gone: some clouds take a while (TERMINATING) or a second call
    // (Tencent's PREPAID recycle bin) to remove an instance, and the next pass repeats it.
    if !instances.is_empty()
        && !driver
            .describe_instances(region, &instances)
            .await?
            .is_empty()
    {
        steps_left = true;
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
            .find_security_groups(region, &vpc, &owned)
            .await?
            .into_iter()
            .map(|g| g.id)
            .collect()
    };
    // A group in status is checked among the VPC's groups (a group elsewhere is not ours).
    if let Some(id) = &status.security_group_id
        && !groups.contains(id)
        && !vpc.is_empty()
    {
        let all = driver
            .find_security_groups(region, &vpc, &mce_cloud::Tags::new())
            .await?;
        for group in all.into_iter().filter(|g| &g.id == id) {
            if by_status_id(&group.tags, uid, &mut steps_left, "security group", id) {
                groups.push(group.id);
            }
        }
    }
    for id in &groups {
        match driver
            .delete_security_group(region, id)
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
    events
        .publish(
            false,
            Reason::Released,
            "cloud resources released".into(),
            "Delete",
        )
        .await;
    Ok(())
}

/// Whether a resource found by an id in status may be released: only with this object's UID
/// tag. Without any UID tag (tags may lag behind a create) the release waits; with another
/// object's, it is left alone.
fn by_status_id(
    tags: &mce_cloud::Tags,
    uid: &str,
    steps_left: &mut bool,
    what: &str,
    id: &str,
) -> bool {
    match plan::ownership(tags, uid, None) {
        plan::Ownership::Owned => true,
        plan::Ownership::Untagged => {
            warn!(%id, "{what} in status carries no UID tag yet; not releasing it now");
            *steps_left = true;
            false
        }
        plan::Ownership::Foreign => {
            warn!(%id, "{what} in status belongs to another object; leaving it");
            false
        }
    }
}
