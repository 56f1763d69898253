//! UserNetwork reconciler (the design's `ensureNetworkResources`): finds the user's VPC, subnet
//! and security group by tags or creates them — the only code that creates cloud network
//! resources — and releases them when the network is deleted and no instance uses it.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::{info, instrument};

use super::context::Context;
use super::error::{Error, Result};
use super::finalizer::{self, Phase};
use super::tenancy::{self, TenancyError};
use super::{jittered, mapping, network_name_of, token};
use crate::api::conditions::{self, Desired};
use crate::api::{
    DeletionPolicy, EcsInstance, SILENT_ANNOTATION, UserNetwork, UserNetworkStatus, tags,
};
use crate::scheduler;
use mce_cloud::{
    CloudDriver, CreateSecurityGroup, CreateSubnet, CreateVpc, ErrorClass, IgnoreNotFound, Tags,
};

/// Requeue while a VPC is still being provisioned by the cloud.
const PROVISIONING_REQUEUE: std::time::Duration = std::time::Duration::from_secs(1);

#[instrument(skip_all, fields(usernetwork = %format!("{}/{}", net.namespace().unwrap_or_default(), net.name_any())))]
pub async fn reconcile(net: Arc<UserNetwork>, ctx: Arc<Context>) -> Result<Action> {
    finalizer::reconcile(net, &ctx, |phase| async {
        match phase {
            Phase::Apply(net) => apply(&net, &ctx).await,
            Phase::Cleanup(net) => cleanup(&net, &ctx).await,
        }
    })
    .await
}

/// Names of the EcsInstances (in the network's namespace) that use it.
fn users_of(net: &UserNetwork, ctx: &Context) -> Vec<String> {
    let namespace = net.namespace();
    let name = net.name_any();
    let mut users: Vec<String> = ctx
        .instances
        .state()
        .iter()
        .filter(|i| {
            i.namespace() == namespace && network_name_of(i).as_deref() == Some(name.as_str())
        })
        .map(|i| i.name_any())
        .collect();
    users.sort();
    users
}

/// Whether an EcsInstance uses the network, asked of the API server rather than the cache: right
/// after a (re)start the EcsInstance cache may still be filling (each controller waits for its
/// own cache only), and deleting a silent network that is in use strands its instances.
async fn used_per_api_server(net: &UserNetwork, ctx: &Context) -> Result<bool> {
    let name = net.name_any();
    let api: Api<EcsInstance> =
        Api::namespaced(ctx.client.clone(), &net.namespace().unwrap_or_default());
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .any(|i| network_name_of(i).as_deref() == Some(name.as_str())))
}

/// Everything a step needs to know about the network.
struct Resolved {
    tenant: String,
    driver: Arc<dyn CloudDriver>,
    region: String,
    zone: String,
}

/// Refusal: a condition reason and message; no cloud call is made.
type Refusal = (&'static str, String);

fn resolve_static(
    net: &UserNetwork,
    ctx: &Context,
) -> Result<(String, Arc<crate::api::CloudProvider>, mapping::Placement), Refusal> {
    let namespace = net.namespace().unwrap_or_default();
    let tenant = tenancy::resolve_tenant(
        &namespace,
        ctx.namespace_labels(&namespace).as_ref(),
        net.spec.tenant_id.as_deref(),
    )
    .map_err(|e: TenancyError| (e.reason(), e.to_string()))?;
    let provider = ctx.provider_by_code(&net.spec.provider).ok_or_else(|| {
        let e = scheduler::SchedulingError::ProviderNotFound(net.spec.provider.clone());
        (e.reason(), e.to_string())
    })?;
    let placement = mapping::placement(
        &provider.spec,
        Some(&net.spec.region),
        net.spec.zone.as_deref(),
    )
    .map_err(|e| (e.reason(), e.to_string()))?;
    Ok((tenant, provider, placement))
}

async fn apply(net: &UserNetwork, ctx: &Context) -> Result<Action> {
    let users = users_of(net, ctx);
    // A network made by silent addressing goes away with its last instance.
    if net.annotations().contains_key(SILENT_ANNOTATION)
        && users.is_empty()
        && net.status.as_ref().is_some_and(|s| s.vpc_id.is_some())
        && !used_per_api_server(net, ctx).await?
    {
        info!("silent network no longer used; deleting it");
        let api: Api<UserNetwork> =
            Api::namespaced(ctx.client.clone(), &net.namespace().unwrap_or_default());
        api.delete(&net.name_any(), &DeleteParams::default())
            .await?;
        return Ok(Action::await_change());
    }

    let mut status = net.status.clone().unwrap_or_default();
    status.used_by = users;
    status.observed_generation = net.metadata.generation;

    // Converged and checked recently: only the list of users may have changed.
    let uid = net.uid().unwrap_or_default();
    let observed = net.status.as_ref().and_then(|s| s.observed_generation);
    if observed == net.metadata.generation
        && let Some(remaining) = ctx.verified_recently(&uid, net.metadata.generation)
    {
        ctx.apply_status(net, net.status.as_ref(), &status).await?;
        return Ok(Action::requeue(remaining));
    }

    let (tenant, provider, placement) = match resolve_static(net, ctx) {
        Ok(v) => v,
        Err((reason, message)) => return refuse(net, ctx, status, reason, message).await,
    };
    if let Err(e) = scheduler::check_available(&provider) {
        return refuse(net, ctx, status, e.reason(), e.to_string()).await;
    }
    let driver = match ctx.drivers.driver(&provider).await {
        Ok(d) => d,
        Err(e) => return refuse(net, ctx, status, e.reason(), e.to_string()).await,
    };
    let resolved = Resolved {
        tenant,
        driver,
        region: placement.region,
        zone: placement.zone,
    };

    match ensure(net, ctx, &resolved, &mut status).await {
        Ok(true) => {
            set_conditions(
                net,
                &mut status,
                Desired::new(
                    conditions::READY,
                    true,
                    "NetworkReady",
                    "VPC, subnet and security group are ready",
                ),
            );
            ctx.apply_status(net, net.status.as_ref(), &status).await?;
            ctx.mark_verified(&uid, net.metadata.generation, true);
            Ok(Action::requeue(jittered(ctx.config.resync)))
        }
        Ok(false) => {
            set_conditions(
                net,
                &mut status,
                Desired::new(
                    conditions::READY,
                    false,
                    "Provisioning",
                    "waiting for the VPC to become available",
                ),
            );
            ctx.apply_status(net, net.status.as_ref(), &status).await?;
            Ok(Action::requeue(PROVISIONING_REQUEUE))
        }
        Err(e) => {
            let reason = match &e {
                Error::Cloud(c) if c.class == ErrorClass::QuotaExceeded => "QuotaExceeded",
                Error::Cloud(c) if c.class.is_transport_retryable() => c.class.reason(),
                Error::Cloud(_) => "NetworkCreateFailed",
                other => other.reason(),
            };
            let previous_reason =
                conditions::find(&status.conditions, conditions::READY).map(|c| c.reason.clone());
            set_conditions(
                net,
                &mut status,
                Desired::new(conditions::READY, false, reason, e.to_string()),
            );
            ctx.apply_status(net, net.status.as_ref(), &status).await?;
            if previous_reason.as_deref() != Some(reason) {
                ctx.publish(net, true, reason, e.to_string(), "EnsureNetwork")
                    .await;
            }
            Err(e)
        }
    }
}

/// Finds or creates VPC → subnet → security group, persisting each id as soon as it is known.
/// Returns false while the VPC is not yet available.
async fn ensure(
    net: &UserNetwork,
    ctx: &Context,
    r: &Resolved,
    status: &mut UserNetworkStatus,
) -> Result<bool> {
    let uid = net.uid().unwrap_or_default();
    // Token and CIDR are decided once and persisted before any cloud call.
    if status.client_token.is_none() || status.cidr_block.is_none() {
        status.client_token.get_or_insert_with(|| token::new(&uid));
        if status.cidr_block.is_none() {
            status.cidr_block = Some(match &net.spec.cidr_block {
                Some(c) => c.clone(),
                None => choose_cidr(net, ctx, &r.tenant)
                    .ok_or_else(|| {
                        Error::Waiting("172.16.0.0/12 is exhausted for this tenant".into())
                    })?
                    .to_string(),
            });
        }
        status.zone = Some(r.zone.clone());
        ctx.apply_status(net, net.status.as_ref(), status).await?;
    }
    let client_token = status.client_token.clone().unwrap_or_default();
    let cidr = status.cidr_block.clone().unwrap_or_default();
    let key = network_tags(&r.tenant, &net.spec.user_id);
    let create_tags: Tags = {
        let mut t = tenancy::resource_tags(&net.spec.tags, &r.tenant, &net.spec.user_id, &uid);
        t.extend(key.clone());
        t
    };
    let driver = &r.driver;
    let region = r.region.as_str();

    // VPC
    let vpcs = driver.find_vpcs(region, &key).await?;
    let vpc = match vpcs
        .iter()
        .find(|v| Some(&v.id) == status.vpc_id.as_ref())
        .or_else(|| vpcs.first())
    {
        Some(v) => v.clone(),
        None => {
            let id = driver
                .create_vpc(&CreateVpc {
                    region: region.into(),
                    cidr_block: cidr.clone(),
                    name: format!("vpc-{}", net.spec.user_id),
                    description: format!(
                        "multicloud-ecs network of user {} (tenant {})",
                        net.spec.user_id, r.tenant
                    ),
                    tags: create_tags.clone(),
                    client_token: format!("{client_token}-vpc"),
                })
                .await?;
            info!(vpc_id = %id, "VPC created");
            persist(net, ctx, status, |s| s.vpc_id = Some(id.clone())).await?;
            match driver
                .find_vpcs(region, &key)
                .await?
                .into_iter()
                .find(|v| v.id == id)
            {
                Some(v) => v,
                None => return Ok(false),
            }
        }
    };
    if status.vpc_id.as_ref() != Some(&vpc.id) {
        persist(net, ctx, status, |s| s.vpc_id = Some(vpc.id.clone())).await?;
    }
    status.cidr_block = Some(vpc.cidr_block.clone());
    if !vpc.available {
        return Ok(false);
    }

    // Subnet
    let subnets = driver.find_subnets(region, &vpc.id, &key).await?;
    let subnet_id = match subnets.iter().find(|s| s.zone == r.zone) {
        Some(s) => s.id.clone(),
        None => {
            let block: ipnet::Ipv4Net = vpc
                .cidr_block
                .parse()
                .map_err(|_| Error::Waiting(format!("VPC CIDR {} is not IPv4", vpc.cidr_block)))?;
            let id = driver
                .create_subnet(&CreateSubnet {
                    region: region.into(),
                    vpc_id: vpc.id.clone(),
                    zone: r.zone.clone(),
                    cidr_block: tenancy::subnet_cidr(&block).to_string(),
                    name: format!("vsw-{}", net.spec.user_id),
                    tags: create_tags.clone(),
                    client_token: format!("{client_token}-vsw-{}", r.zone),
                })
                .await?;
            info!(vswitch_id = %id, "VSwitch created");
            id
        }
    };
    if status.v_switch_id.as_ref() != Some(&subnet_id) {
        persist(net, ctx, status, |s| {
            s.v_switch_id = Some(subnet_id.clone())
        })
        .await?;
    }

    // Security group shared by the user's instances (ports live on per-instance groups).
    let groups = driver.find_security_groups(region, &vpc.id, &key).await?;
    let group_id = match groups.first() {
        Some(g) => g.id.clone(),
        None => {
            let id = driver
                .create_security_group(&CreateSecurityGroup {
                    region: region.into(),
                    vpc_id: vpc.id.clone(),
                    name: format!("sg-{}", net.spec.user_id),
                    description: format!(
                        "multicloud-ecs network group of user {}",
                        net.spec.user_id
                    ),
                    tags: create_tags,
                    client_token: format!("{client_token}-sg"),
                })
                .await?;
            info!(security_group_id = %id, "security group created");
            id
        }
    };
    if status.security_group_id.as_ref() != Some(&group_id) {
        persist(net, ctx, status, |s| {
            s.security_group_id = Some(group_id.clone())
        })
        .await?;
    }
    Ok(true)
}

/// Tags finding a user's network resources: the tenancy key plus the network role, so
/// per-instance groups in the same VPC are never mistaken for the network's group.
pub fn network_tags(tenant: &str, user: &str) -> Tags {
    let mut t = tenancy::network_key_tags(tenant, user);
    t.insert(tags::ROLE.into(), tags::ROLE_NETWORK.into());
    t
}

/// Records a newly known id in status right away.
async fn persist(
    net: &UserNetwork,
    ctx: &Context,
    status: &mut UserNetworkStatus,
    update: impl FnOnce(&mut UserNetworkStatus),
) -> Result<()> {
    let before = status.clone();
    update(status);
    ctx.apply_status(net, Some(&before), status).await?;
    Ok(())
}

/// A CIDR not used by the tenant's other networks on the same provider and region.
fn choose_cidr(net: &UserNetwork, ctx: &Context, tenant: &str) -> Option<ipnet::Ipv4Net> {
    let used: Vec<String> = ctx
        .networks
        .state()
        .iter()
        .filter(|n| {
            n.uid() != net.uid()
                && n.spec.provider == net.spec.provider
                && n.spec.region == net.spec.region
        })
        .filter(|n| {
            let ns = n.namespace().unwrap_or_default();
            ctx.namespace_labels(&ns)
                .and_then(|l| l.get(crate::api::TENANT_LABEL).cloned())
                .as_deref()
                == Some(tenant)
        })
        .filter_map(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.cidr_block.clone())
                .or_else(|| n.spec.cidr_block.clone())
        })
        .collect();
    tenancy::derive_cidr(tenant, &net.spec.user_id, used.iter().map(String::as_str))
}

fn set_conditions(net: &UserNetwork, status: &mut UserNetworkStatus, ready: Desired) {
    let now = Time(Timestamp::now());
    status.conditions =
        conditions::merge(&status.conditions, &[ready], net.meta().generation, &now);
}

/// Input the controller cannot act on: condition + one Warning event, no cloud call.
async fn refuse(
    net: &UserNetwork,
    ctx: &Context,
    mut status: UserNetworkStatus,
    reason: &'static str,
    message: String,
) -> Result<Action> {
    let previous_reason =
        conditions::find(&status.conditions, conditions::READY).map(|c| c.reason.clone());
    set_conditions(
        net,
        &mut status,
        Desired::new(conditions::READY, false, reason, message.clone()),
    );
    ctx.apply_status(net, net.status.as_ref(), &status).await?;
    if previous_reason.as_deref() != Some(reason) {
        ctx.publish(net, true, reason, message, "Validate").await;
    }
    Ok(Action::requeue(jittered(
        ctx.config.resync.min(std::time::Duration::from_secs(60)),
    )))
}

async fn cleanup(net: &UserNetwork, ctx: &Context) -> Result<Action> {
    let users = users_of(net, ctx);
    if !users.is_empty() {
        let mut status = net.status.clone().unwrap_or_default();
        let message = format!("in use by EcsInstances: {}", users.join(", "));
        status.used_by = users;
        set_conditions(
            net,
            &mut status,
            Desired::new(conditions::READY, false, "InUse", message.clone()),
        );
        ctx.apply_status(net, net.status.as_ref(), &status).await?;
        return Err(Error::Waiting(message));
    }
    if net.spec.reclaim_policy == DeletionPolicy::Orphan {
        info!("reclaim policy Orphan: leaving cloud network resources in place");
        return Ok(Action::await_change());
    }
    let Ok((tenant, provider, placement)) = resolve_static(net, ctx) else {
        // Never provisioned (refused input) or the provider is gone: nothing we can release.
        return Ok(Action::await_change());
    };
    let driver = ctx.drivers.driver(&provider).await?;
    let region = placement.region.as_str();
    let uid = net.uid().unwrap_or_default();
    let ours = |t: &Tags| t.get(tags::OBJECT_UID).map(String::as_str) == Some(uid.as_str());
    let key = network_tags(&tenant, &net.spec.user_id);
    // Only what this object created (its UID tag) is released, in dependency order.
    for vpc in driver
        .find_vpcs(region, &key)
        .await?
        .into_iter()
        .filter(|v| ours(&v.tags))
    {
        for group in driver
            .find_security_groups(region, &vpc.id, &key)
            .await?
            .into_iter()
            .filter(|g| ours(&g.tags))
        {
            driver
                .delete_security_group(region, &group.id)
                .await
                .ignore_not_found()?;
        }
        for subnet in driver
            .find_subnets(region, &vpc.id, &key)
            .await?
            .into_iter()
            .filter(|s| ours(&s.tags))
        {
            driver
                .delete_subnet(region, &subnet.id)
                .await
                .ignore_not_found()?;
        }
        driver
            .delete_vpc(region, &vpc.id)
            .await
            .ignore_not_found()?;
        info!(vpc_id = %vpc.id, "network released");
    }
    Ok(Action::await_change())
}
