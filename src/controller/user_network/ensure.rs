//! The cloud side of a UserNetwork: find the user's VPC, subnet and security group by tags or
//! create them — the only code that creates cloud network resources — and release them.

use tracing::info;

use super::super::error::{Error, Result};
use super::super::status::{Progress, StatusSink};
use super::super::{plan, tenancy, token};
use crate::api::{PendingCreate, UserNetwork, UserNetworkStatus, tags};
use kube::ResourceExt;
use mce_cloud::{
    CloudDriver, CreateSecurityGroup, CreateSubnet, CreateVpc, IgnoreNotFound, ProviderProfile,
    Tags,
};

/// Everything the executors need to know about the network besides its spec.
#[derive(Clone, Debug)]
pub struct NetworkInputs {
    pub tenant: String,
    pub region: String,
    pub zone: String,
    /// Zones besides `zone` the network's instances need a subnet in.
    pub extra_zones: Vec<String>,
    /// A CIDR block no other network of the tenant uses, for a network that has none yet
    /// (None: the tenant's range is exhausted, or none is needed).
    pub free_cidr: Option<ipnet::Ipv4Net>,
    /// The cloud's rules for names and the like.
    pub profile: &'static ProviderProfile,
}

/// Tags finding a user's network resources: the tenancy key plus the network role, so
/// per-instance groups in the same VPC are never mistaken for the network's group.
pub fn network_tags(tenant: &str, user: &str) -> Tags {
    let mut t = tenancy::network_key_tags(tenant, user);
    t.insert(tags::ROLE.into(), tags::ROLE_NETWORK.into());
    t
}

/// Every tag the network's resources carry (created or adopted): the user's tags, tenancy and
/// UID, the network key and role, and the namespace.
pub fn owned_tags(net: &UserNetwork, tenant: &str) -> Tags {
    let uid = net.uid().unwrap_or_default();
    let mut t = tenancy::resource_tags(&net.spec.tags, tenant, &net.spec.user_id, &uid);
    t.extend(network_tags(tenant, &net.spec.user_id));
    t.insert(tags::NAMESPACE.into(), net.namespace().unwrap_or_default());
    t
}

/// Records a newly known id in status right away.
async fn persist(
    sink: &dyn StatusSink<UserNetworkStatus>,
    status: &mut UserNetworkStatus,
    update: impl FnOnce(&mut UserNetworkStatus),
) -> Result<()> {
    let before = status.clone();
    update(status);
    if *status != before {
        sink.save(status).await?;
    }
    Ok(())
}

/// Before a create on a cloud whose creates take no ClientToken: false while an earlier create
/// of the same resource may still show up by its tags (then nothing is sent); otherwise the
/// create is persisted as in flight, before the call, and true.
async fn may_create(
    r: &NetworkInputs,
    sink: &dyn StatusSink<UserNetworkStatus>,
    status: &mut UserNetworkStatus,
    resource: &str,
) -> Result<bool> {
    let Some(grace) = r.profile.untokened_create_grace else {
        return Ok(true);
    };
    let now = jiff::Timestamp::now();
    let pending = status
        .pending_creates
        .iter()
        .find(|p| p.resource == resource);
    if let Err(left) = plan::untokened_create_gate(Some(grace), pending, resource, now) {
        info!(
            resource,
            wait_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX),
            "an earlier create may still show up: not creating again yet"
        );
        return Ok(false);
    }
    persist(sink, status, |s| {
        s.pending_creates.retain(|p| p.resource != resource);
        s.pending_creates.push(PendingCreate {
            resource: resource.to_string(),
            at: now.to_string(),
        });
    })
    .await?;
    Ok(true)
}

/// Finds or creates VPC → subnet → security group, persisting each id as soon as it is known.
/// Returns false while the VPC is not yet available.
pub async fn ensure(
    net: &UserNetwork,
    driver: &dyn CloudDriver,
    r: &NetworkInputs,
    progress: &mut Progress<UserNetworkStatus>,
    sink: &dyn StatusSink<UserNetworkStatus>,
) -> Result<bool> {
    let uid = net.uid().unwrap_or_default();
    let status = &mut progress.status;
    // Token and CIDR are decided once and persisted before any cloud call.
    if status.client_token.is_none() || status.cidr_block.is_none() {
        status.client_token.get_or_insert_with(|| token::new(&uid));
        if status.cidr_block.is_none() {
            status.cidr_block = Some(match &net.spec.cidr_block {
                Some(c) => c.clone(),
                None => r
                    .free_cidr
                    .ok_or_else(|| {
                        Error::Waiting("172.16.0.0/12 is exhausted for this tenant".into())
                    })?
                    .to_string(),
            });
        }
        status.zone = Some(r.zone.clone());
        sink.save(status).await?;
    }
    let client_token = status.client_token.clone().unwrap_or_default();
    let cidr = status.cidr_block.clone().unwrap_or_default();
    let key = network_tags(&r.tenant, &net.spec.user_id);
    let namespace = net.namespace().unwrap_or_default();
    let create_tags = owned_tags(net, &r.tenant);
    // An adopted network (`spec.adopt`) finds its VPC, VSwitch and group by the tags adoption
    // put on them and never creates them (while those tags are not visible yet, the pass waits).
    let adopted = net.spec.adopt.is_some();
    let region = r.region.as_str();

    // VPC: a userId names a user within one namespace, so only a VPC of this namespace is
    // adopted (or, made before VPCs carried their namespace, one this very object created).
    let vpcs: Vec<_> = driver
        .find_vpcs(region, &key)
        .await?
        .into_iter()
        .filter(|v| adoptable(&v.tags, &namespace, &uid))
        .collect();
    // Resources this pass found by their tags (not just created).
    let mut found: Vec<String> = Vec::new();
    let vpc = match vpcs
        .iter()
        .find(|v| Some(&v.id) == status.vpc_id.as_ref())
        .or_else(|| vpcs.first())
    {
        Some(v) => {
            found.push("vpc".into());
            v.clone()
        }
        None if adopted => {
            info!("the adopted VPC does not show its tags yet");
            return Ok(false);
        }
        None => {
            if !may_create(r, sink, status, "vpc").await? {
                return Ok(false);
            }
            let id = driver
                .create_vpc(&CreateVpc {
                    region: region.into(),
                    cidr_block: cidr.clone(),
                    name: r
                        .profile
                        .resource_name(&format!("vpc-{}", net.spec.user_id)),
                    description: format!(
                        "multicloud-ecs network of user {} (tenant {})",
                        net.spec.user_id, r.tenant
                    ),
                    tags: create_tags.clone(),
                    client_token: format!("{client_token}-vpc"),
                })
                .await?;
            info!(vpc_id = %id, "VPC created");
            persist(sink, status, |s| s.vpc_id = Some(id.clone())).await?;
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
        persist(sink, status, |s| s.vpc_id = Some(vpc.id.clone())).await?;
    }
    status.cidr_block = Some(vpc.cidr_block.clone());
    if !vpc.available {
        return Ok(false);
    }

    // Subnets: one in the network's zone, one in each other zone its instances need.
    let mut subnets = driver.find_subnets(region, &vpc.id, &key).await?;
    // In an adopted VPC other subnets may exist that are not the network's: a new block
    // must avoid them all.
    let foreign: Vec<ipnet::Ipv4Net> = if adopted {
        driver
            .find_subnets(region, &vpc.id, &Tags::new())
            .await?
            .iter()
            .filter(|s| s.vpc_id == vpc.id)
            .filter_map(|s| s.cidr_block.parse().ok())
            .collect()
    } else {
        Vec::new()
    };
    let block: ipnet::Ipv4Net = vpc
        .cidr_block
        .parse()
        .map_err(|_| Error::Waiting(format!("VPC CIDR {} is not IPv4", vpc.cidr_block)))?;
    let mut ids = std::collections::BTreeMap::new();
    for zone in std::iter::once(&r.zone).chain(&r.extra_zones) {
        let known = status.v_switch_ids.get(zone);
        let id = match subnets
            .iter()
            .find(|s| &s.zone == zone && Some(&s.id) == known)
            .or_else(|| subnets.iter().find(|s| &s.zone == zone))
        {
            Some(s) => {
                found.push(format!("subnet/{zone}"));
                s.id.clone()
            }
            None if adopted && zone == &r.zone => {
                info!("the adopted VSwitch does not show its tags yet");
                return Ok(false);
            }
            None => {
                let taken: Vec<ipnet::Ipv4Net> = subnets
                    .iter()
                    .filter_map(|s| s.cidr_block.parse().ok())
                    .chain(foreign.iter().copied())
                    .collect();
                let cidr = plan::subnet_block(&block, &taken).ok_or_else(|| {
                    Error::Waiting(format!("VPC {} has no room for a subnet in {zone}", vpc.id))
                })?;
                if !may_create(r, sink, status, &format!("subnet/{zone}")).await? {
                    return Ok(false);
                }
                let id = driver
                    .create_subnet(&CreateSubnet {
                        region: region.into(),
                        vpc_id: vpc.id.clone(),
                        zone: zone.clone(),
                        cidr_block: cidr.to_string(),
                        name: r
                            .profile
                            .resource_name(&format!("vsw-{}", net.spec.user_id)),
                        tags: create_tags.clone(),
                        client_token: format!("{client_token}-vsw-{zone}"),
                    })
                    .await?;
                info!(vswitch_id = %id, %zone, "VSwitch created");
                subnets.push(mce_cloud::Subnet {
                    id: id.clone(),
                    vpc_id: vpc.id.clone(),
                    zone: zone.clone(),
                    cidr_block: cidr.to_string(),
                    available: true,
                    tags: create_tags.clone(),
                });
                id
            }
        };
        ids.insert(zone.clone(), id);
    }
    let subnet_id = ids.get(&r.zone).cloned().unwrap_or_default();
    if status.v_switch_id.as_ref() != Some(&subnet_id) || status.v_switch_ids != ids {
        persist(sink, status, |s| {
            s.v_switch_id = Some(subnet_id.clone());
            s.v_switch_ids = ids;
        })
        .await?;
    }

    // Security group shared by the user's instances (ports live on per-instance groups).
    let groups = driver.find_security_groups(region, &vpc.id, &key).await?;
    let group_id = match groups
        .iter()
        .find(|g| Some(&g.id) == status.security_group_id.as_ref())
        .or_else(|| groups.first())
    {
        Some(g) => {
            found.push("securityGroup".into());
            g.id.clone()
        }
        None if adopted => {
            info!("the adopted security group does not show its tags yet");
            return Ok(false);
        }
        None => {
            if !may_create(r, sink, status, "securityGroup").await? {
                return Ok(false);
            }
            let id = driver
                .create_security_group(&CreateSecurityGroup {
                    region: region.into(),
                    vpc_id: vpc.id.clone(),
                    name: r.profile.resource_name(&format!("sg-{}", net.spec.user_id)),
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
    if status.security_group_id.as_ref() != Some(&group_id)
        || status
            .pending_creates
            .iter()
            .any(|p| found.contains(&p.resource))
    {
        persist(sink, status, |s| {
            s.security_group_id = Some(group_id.clone());
            // Found by its tags: a later create of it is no longer in doubt.
            s.pending_creates.retain(|p| !found.contains(&p.resource));
        })
        .await?;
    }
    Ok(true)
}

/// Whether a found VPC may be adopted by the network of `namespace` with `uid`.
fn adoptable(t: &Tags, namespace: &str, uid: &str) -> bool {
    match t.get(tags::NAMESPACE) {
        Some(ns) => ns == namespace,
        None => t.get(tags::OBJECT_UID).map(String::as_str) == Some(uid),
    }
}

/// Releases what this network object created, found by its UID tag alone (its namespace's
/// tenant label may have changed since), in dependency order: groups and subnets, then the VPC.
/// Succeeds only once a fresh look-up finds nothing of it left.
pub async fn release(net: &UserNetwork, driver: &dyn CloudDriver, region: &str) -> Result<()> {
    let uid = net.uid().unwrap_or_default();
    if uid.is_empty() {
        return Err(Error::Waiting("the UserNetwork has no UID".into()));
    }
    let ours = tenancy::uid_tag(&uid);
    for vpc in driver.find_vpcs(region, &ours).await? {
        for group in driver.find_security_groups(region, &vpc.id, &ours).await? {
            driver
                .delete_security_group(region, &group.id)
                .await
                .ignore_not_found()?;
        }
        for subnet in driver.find_subnets(region, &vpc.id, &ours).await? {
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
    let left: Vec<String> = driver
        .find_vpcs(region, &ours)
        .await?
        .into_iter()
        .map(|v| v.id)
        .collect();
    if !left.is_empty() {
        return Err(Error::Waiting(format!(
            "VPC {} is not gone yet",
            left.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_namespaces_or_its_own_vpc_is_adopted() {
        let t = |pairs: &[(&str, &str)]| -> Tags {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(adoptable(&t(&[(tags::NAMESPACE, "a")]), "a", "u1"));
        assert!(!adoptable(&t(&[(tags::NAMESPACE, "b")]), "a", "u1"));
        assert!(!adoptable(
            &t(&[(tags::NAMESPACE, "b"), (tags::OBJECT_UID, "u1")]),
            "a",
            "u1"
        ));
        assert!(adoptable(&t(&[(tags::OBJECT_UID, "u1")]), "a", "u1"));
        assert!(!adoptable(&t(&[(tags::OBJECT_UID, "u2")]), "a", "u1"));
    }
}
