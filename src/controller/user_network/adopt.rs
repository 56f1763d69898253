//! Adoption of an existing VPC, VSwitch (subnet) and security group by a UserNetwork
//! (`spec.adopt`, issue 12). [`decide`] is the pure half: from the three resources as the cloud
//! describes them it decides to adopt or why not. [`adopt`] reads, decides and, only when the
//! decision is to adopt, tags the three resources like ones the operator created; from then on
//! [`super::ensure()`] finds them by those tags and manages them like its own.

use tracing::info;

use super::super::error::Result;
use super::super::status::{Progress, StatusSink};
use super::super::tenancy::adoption_refusal;
use crate::api::UserNetworkStatus;
use crate::api::adopt::NetworkAdoptSpec;
use mce_cloud::{CloudDriver, ResourceKind, SecurityGroup, Subnet, Tags, Vpc};

/// The three resources as the cloud describes them in the network's region (`None`: absent).
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub vpc: Option<Vpc>,
    pub subnet: Option<Subnet>,
    pub security_group: Option<SecurityGroup>,
}

/// Who adopts, and where.
#[derive(Clone, Copy, Debug)]
pub struct Adopter<'a> {
    /// CloudProvider code and region, for messages.
    pub provider: &'a str,
    pub region: &'a str,
    /// `spec.zone`, if set: the VSwitch must be there.
    pub zone: Option<&'a str>,
    pub tenant: &'a str,
    pub uid: &'a str,
    pub allow_untagged: bool,
}

/// What [`decide`] concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Adopt: the network's zone (the VSwitch's) and CIDR block (the VPC's).
    Adopt { zone: String, cidr_block: String },
    /// Refuse, with a message naming the resource and why.
    Refuse(String),
}

/// Whether the network may take over the resources `adopt` names, as `observed`.
pub fn decide(adopt: &NetworkAdoptSpec, observed: &Observed, who: &Adopter<'_>) -> Decision {
    let absent = |what: &str, id: &str| {
        Decision::Refuse(format!(
            "{what} {id} does not exist in region {} of provider {}",
            who.region, who.provider
        ))
    };
    let Some(vpc) = observed.vpc.as_ref().filter(|v| v.id == adopt.vpc_id) else {
        return absent("VPC", &adopt.vpc_id);
    };
    let Some(subnet) = observed
        .subnet
        .as_ref()
        .filter(|s| s.id == adopt.v_switch_id)
    else {
        return absent("VSwitch", &adopt.v_switch_id);
    };
    let Some(group) = observed
        .security_group
        .as_ref()
        .filter(|g| g.id == adopt.security_group_id)
    else {
        return absent("security group", &adopt.security_group_id);
    };
    if subnet.vpc_id != vpc.id {
        return Decision::Refuse(format!(
            "VSwitch {} belongs to VPC {}, not to VPC {}",
            subnet.id, subnet.vpc_id, vpc.id
        ));
    }
    // An empty VPC: the cloud's groups are regional (Tencent) and fit any VPC.
    if !group.vpc_id.is_empty() && group.vpc_id != vpc.id {
        return Decision::Refuse(format!(
            "security group {} belongs to VPC {}, not to VPC {}",
            group.id, group.vpc_id, vpc.id
        ));
    }
    if let Some(zone) = who.zone
        && zone != subnet.zone
    {
        return Decision::Refuse(format!(
            "VSwitch {} is in zone {}, not in the network's zone {zone}",
            subnet.id, subnet.zone
        ));
    }
    for (what, id, resource_tags) in [
        ("VPC", &vpc.id, &vpc.tags),
        ("VSwitch", &subnet.id, &subnet.tags),
        ("security group", &group.id, &group.tags),
    ] {
        if let Some(why) = adoption_refusal(resource_tags, who.uid, who.tenant, who.allow_untagged)
        {
            return Decision::Refuse(format!("{what} {id} cannot be adopted: {why}"));
        }
    }
    Decision::Adopt {
        zone: subnet.zone.clone(),
        cidr_block: vpc.cidr_block.clone(),
    }
}

/// What [`adopt`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Adoption {
    /// The resources are the network's (tagged now or before); status holds their ids.
    Adopted {
        /// Whether this pass tagged anything (a first adoption, or tags repaired).
        tagged: bool,
    },
    /// Refused: nothing was written to the cloud.
    Refused(String),
}

/// Reads the resources `spec` names, decides, and on adoption tags each with `want` (the tags
/// the operator puts on what it creates) where it lacks any of them, then records the ids,
/// the VSwitch's zone and the VPC's block in status before anything else uses them.
pub async fn adopt(
    spec: &NetworkAdoptSpec,
    who: &Adopter<'_>,
    want: &Tags,
    driver: &dyn CloudDriver,
    progress: &mut Progress<UserNetworkStatus>,
    sink: &dyn StatusSink<UserNetworkStatus>,
) -> Result<Adoption> {
    let region = who.region;
    let observed = Observed {
        vpc: driver.describe_vpc(region, &spec.vpc_id).await?,
        subnet: driver.describe_subnet(region, &spec.v_switch_id).await?,
        security_group: driver
            .describe_security_group(region, &spec.security_group_id)
            .await?,
    };
    let (zone, cidr_block) = match decide(spec, &observed, who) {
        Decision::Refuse(why) => return Ok(Adoption::Refused(why)),
        Decision::Adopt { zone, cidr_block } => (zone, cidr_block),
    };
    let current = [
        (
            ResourceKind::Vpc,
            &spec.vpc_id,
            observed.vpc.map(|v| v.tags),
        ),
        (
            ResourceKind::Subnet,
            &spec.v_switch_id,
            observed.subnet.map(|s| s.tags),
        ),
        (
            ResourceKind::SecurityGroup,
            &spec.security_group_id,
            observed.security_group.map(|g| g.tags),
        ),
    ];
    let mut tagged = false;
    for (kind, id, have) in current {
        let have = have.unwrap_or_default();
        let missing: Tags = want
            .iter()
            .filter(|(k, v)| have.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if missing.is_empty() {
            continue;
        }
        driver.tag_resource(region, kind, id, &missing).await?;
        info!(%kind, resource_id = %id, "network resource adopted");
        tagged = true;
    }
    if tagged {
        progress.cloud_changed = true;
    }
    let status = &mut progress.status;
    let before = status.clone();
    status.vpc_id = Some(spec.vpc_id.clone());
    status.v_switch_id = Some(spec.v_switch_id.clone());
    status
        .v_switch_ids
        .insert(zone.clone(), spec.v_switch_id.clone());
    status.security_group_id = Some(spec.security_group_id.clone());
    status.cidr_block = Some(cidr_block);
    status.zone = Some(zone);
    if *status != before {
        sink.save(status).await?;
    }
    Ok(Adoption::Adopted { tagged })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::tags;

    fn tagged(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn spec() -> NetworkAdoptSpec {
        NetworkAdoptSpec {
            vpc_id: "vpc-1".into(),
            v_switch_id: "vsw-1".into(),
            security_group_id: "sg-1".into(),
        }
    }

    fn observed(t: &Tags) -> Observed {
        Observed {
            vpc: Some(Vpc {
                id: "vpc-1".into(),
                cidr_block: "192.168.0.0/16".into(),
                available: true,
                tags: t.clone(),
            }),
            subnet: Some(Subnet {
                id: "vsw-1".into(),
                vpc_id: "vpc-1".into(),
                zone: "cn-hangzhou-i".into(),
                cidr_block: "192.168.1.0/24".into(),
                available: true,
                tags: t.clone(),
            }),
            security_group: Some(SecurityGroup {
                id: "sg-1".into(),
                vpc_id: "vpc-1".into(),
                tags: t.clone(),
            }),
        }
    }

    fn who(allow_untagged: bool) -> Adopter<'static> {
        Adopter {
            provider: "ALIYUN",
            region: "cn-hangzhou",
            zone: None,
            tenant: "acme",
            uid: "u1",
            allow_untagged,
        }
    }

    fn refused(d: Decision) -> String {
        match d {
            Decision::Refuse(why) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_tenants_own_network_is_adopted_in_its_vswitchs_zone() {
        let own = tagged(&[(tags::TENANT, "acme")]);
        assert_eq!(
            decide(&spec(), &observed(&own), &who(false)),
            Decision::Adopt {
                zone: "cn-hangzhou-i".into(),
                cidr_block: "192.168.0.0/16".into()
            }
        );
        // Already ours (a later pass): still adopted.
        let mine = tagged(&[(tags::TENANT, "acme"), (tags::OBJECT_UID, "u1")]);
        assert!(matches!(
            decide(&spec(), &observed(&mine), &who(false)),
            Decision::Adopt { .. }
        ));
        // Untagged: only where the provider allows it.
        assert!(matches!(
            decide(&spec(), &observed(&Tags::new()), &who(true)),
            Decision::Adopt { .. }
        ));
        let why = refused(decide(&spec(), &observed(&Tags::new()), &who(false)));
        assert!(
            why.starts_with("VPC vpc-1") && why.contains("allowUntaggedAdoption"),
            "{why}"
        );
    }

    #[test]
    fn another_tenants_or_objects_resources_are_refused_naming_the_resource() {
        let theirs = tagged(&[(tags::TENANT, "globex")]);
        let why = refused(decide(&spec(), &observed(&theirs), &who(true)));
        assert!(why.contains("VPC vpc-1") && why.contains("globex"), "{why}");
        // Only the group is someone else's.
        let own = tagged(&[(tags::TENANT, "acme")]);
        let mut seen = observed(&own);
        if let Some(g) = seen.security_group.as_mut() {
            g.tags.insert(tags::OBJECT_UID.into(), "u2".into());
        }
        let why = refused(decide(&spec(), &seen, &who(false)));
        assert!(
            why.contains("security group sg-1") && why.contains("another object"),
            "{why}"
        );
        // Only the VSwitch is another tenant's.
        let mut seen = observed(&own);
        if let Some(s) = seen.subnet.as_mut() {
            s.tags.insert(tags::TENANT.into(), "globex".into());
        }
        let why = refused(decide(&spec(), &seen, &who(false)));
        assert!(why.contains("VSwitch vsw-1"), "{why}");
    }

    #[test]
    fn missing_or_mismatched_resources_are_refused() {
        let own = tagged(&[(tags::TENANT, "acme")]);
        for (strip, what) in [
            (0, "VPC vpc-1"),
            (1, "VSwitch vsw-1"),
            (2, "security group sg-1"),
        ] {
            let mut seen = observed(&own);
            match strip {
                0 => seen.vpc = None,
                1 => seen.subnet = None,
                _ => seen.security_group = None,
            }
            let why = refused(decide(&spec(), &seen, &who(false)));
            assert!(
                why.contains(what) && why.contains("does not exist in region cn-hangzhou"),
                "{why}"
            );
        }
        let mut seen = observed(&own);
        if let Some(s) = seen.subnet.as_mut() {
            s.vpc_id = "vpc-2".into();
        }
        let why = refused(decide(&spec(), &seen, &who(false)));
        assert!(why.contains("belongs to VPC vpc-2"), "{why}");
        let mut seen = observed(&own);
        if let Some(g) = seen.security_group.as_mut() {
            g.vpc_id = "vpc-3".into();
        }
        let why = refused(decide(&spec(), &seen, &who(false)));
        assert!(
            why.contains("security group sg-1 belongs to VPC vpc-3"),
            "{why}"
        );
        // A regional group (Tencent: no VPC) fits.
        let mut seen = observed(&own);
        if let Some(g) = seen.security_group.as_mut() {
            g.vpc_id = String::new();
        }
        assert!(matches!(
            decide(&spec(), &seen, &who(false)),
            Decision::Adopt { .. }
        ));
        // A zone in the spec must be the VSwitch's.
        let zoned = Adopter {
            zone: Some("cn-hangzhou-k"),
            ..who(false)
        };
        let why = refused(decide(&spec(), &observed(&own), &zoned));
        assert!(why.contains("is in zone cn-hangzhou-i"), "{why}");
    }
}
