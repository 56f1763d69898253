//! EC2 compute: regions, zones and instance type offerings, instances (launch with ClientToken
//! idempotency, describe, start, stop, terminate), tags, elastic IPs and key pairs.

use std::collections::BTreeSet;

use base64::Engine;

use super::network::{group, subnet, vpc_gateway};
use super::request::{Filter, filter_tag_keys, page, passes};
use super::*;
use crate::model::{AllocateEip, Eip, Idem, InstanceStatus, JoinGroupError, RunInstances};
use crate::verify::sha256_hex;

pub(super) fn dispatch(
    state: &EmulatorState,
    region: &str,
    action: &str,
    p: &Params,
    now: Instant,
) -> ApiResult<Xml> {
    match action {
        "DescribeRegions" => describe_regions(p),
        "DescribeImages" => describe_images(p),
        "DescribeAvailabilityZones" => describe_zones(region, p),
        "DescribeInstanceTypeOfferings" => {
            let m = state.model_read();
            describe_offerings(&m, region, p)
        }
        "RunInstances" => run_instances(state, region, p, now),
        "DescribeInstances" => {
            let m = state.model_read();
            let f = state.aws();
            describe_instances(&m, &f, region, p, now)
        }
        "TerminateInstances" => terminate_instances(state, region, p, now),
        "StopInstances" => stop_instances(state, region, p, now),
        "StartInstances" => start_instances(state, region, p, now),
        "ModifyInstanceAttribute" => modify_instance_attribute(state, region, p, now),
        "CreateTags" => create_tags(state, region, p),
        "DeleteTags" => delete_tags(state, region, p),
        "DescribeTags" => {
            let m = state.model_read();
            let f = state.aws();
            describe_tags(&m, &f, region, p, now)
        }
        "AllocateAddress" => allocate_address(state, region, p),
        "AssociateAddress" => associate_address(state, region, p, now),
        "DisassociateAddress" => disassociate_address(state, region, p),
        "ReleaseAddress" => {
            let id = p.req("AllocationId")?;
            state.with_model_mut(|m| {
                let e = address(m, region, id)?;
                if e.instance_id.is_some() {
                    return Err(ApiError::bad(
                        "InvalidIPAddress.InUse",
                        format!("Address {id} is in use."),
                    ));
                }
                m.release_eip(region, id).map_err(ApiError::from_model)
            })?;
            Ok(returns_true())
        }
        "DescribeAddresses" => {
            let m = state.model_read();
            let f = state.aws();
            describe_addresses(&m, &f, region, p, now)
        }
        "ImportKeyPair" | "CreateKeyPair" => create_key_pair(state, region, action, p),
        "DescribeKeyPairs" => {
            let f = state.aws();
            describe_key_pairs(&f, region, p)
        }
        "DeleteKeyPair" => {
            let mut f = state.aws();
            let id = match (p.get("KeyName"), p.get("KeyPairId")) {
                (Some(name), _) => f
                    .key_pairs
                    .values()
                    .find(|k| k.region == region && k.name == name)
                    .map(|k| k.id.clone()),
                (None, Some(id)) => Some(id.to_string()),
                (None, None) => return Err(ApiError::missing("KeyName")),
            };
            let removed = id.and_then(|id| f.key_pairs.remove(&id));
            let mut x = returns_true();
            x.opt("keyPairId", removed.map(|k| k.id));
            Ok(x)
        }
        _ => Err(ApiError::bad(
            "InvalidAction",
            format!("The action {action} is not valid for this web service."),
        )),
    }
}

// ---- Regions, zones, offerings ----

fn describe_regions(p: &Params) -> ApiResult<Xml> {
    let names = p.list("RegionName");
    for n in &names {
        if !REGIONS.contains(&n.as_str()) {
            return Err(ApiError::bad(
                "InvalidParameterValue",
                format!("Invalid region name: {n}"),
            ));
        }
    }
    let filters = p.filters()?;
    let mut list = Vec::new();
    for r in REGIONS {
        if !names.is_empty() && !names.iter().any(|n| n == r) {
            continue;
        }
        let endpoint = format!("ec2.{r}.amazonaws.com");
        let ok = passes(&Tags::new(), &filters, |f| match f.name.as_str() {
            "region-name" => Some(f.matches(r)),
            "endpoint" => Some(f.matches(&endpoint)),
            "opt-in-status" => Some(f.matches("opt-in-not-required")),
            _ => None,
        })?;
        if ok {
            list.push((*r, endpoint));
        }
    }
    let mut x = Xml::new();
    x.set("regionInfo", list, |x, (r, endpoint)| {
        x.leaf("regionName", r)
            .leaf("regionEndpoint", endpoint)
            .leaf("optInStatus", "opt-in-not-required");
    });
    Ok(x)
}

/// Images by id. The emulator keeps no image catalog (RunInstances takes any well-formed AMI
/// id), so every well-formed id is an available x86_64 EBS-backed HVM image whose root device
/// is `/dev/xvda`, as Amazon Linux's is.
fn describe_images(p: &Params) -> ApiResult<Xml> {
    let ids = p.list("ImageId");
    for id in &ids {
        if !valid_ami(id) {
            return Err(ApiError::bad(
                "InvalidAMIID.Malformed",
                format!("Invalid id: \"{id}\" (expecting \"ami-...\")"),
            ));
        }
    }
    let mut x = Xml::new();
    x.set("imagesSet", ids, |x, id| {
        x.leaf("imageId", &id)
            .leaf("imageState", "available")
            .leaf("architecture", "x86_64")
            .leaf("imageType", "machine")
            .leaf("rootDeviceType", "ebs")
            .leaf("rootDeviceName", "/dev/xvda")
            .leaf("virtualizationType", "hvm")
            .leaf("public", "true");
    });
    Ok(x)
}

fn describe_zones(region: &str, p: &Params) -> ApiResult<Xml> {
    let zones = zones(region);
    let (names, ids) = (p.list("ZoneName"), p.list("ZoneId"));
    for n in &names {
        if !zones.contains(n) {
            return Err(ApiError::bad(
                "InvalidParameterValue",
                format!("The zone '{n}' does not exist."),
            ));
        }
    }
    for id in &ids {
        if !zones.iter().any(|z| &zone_id(z) == id) {
            return Err(ApiError::bad(
                "InvalidParameterValue",
                format!("The zone ID '{id}' does not exist."),
            ));
        }
    }
    let filters = p.filters()?;
    let mut list = Vec::new();
    for z in &zones {
        let zid = zone_id(z);
        if (!names.is_empty() && !names.contains(z)) || (!ids.is_empty() && !ids.contains(&zid)) {
            continue;
        }
        let ok = passes(&Tags::new(), &filters, |f| match f.name.as_str() {
            "zone-name" => Some(f.matches(z)),
            "zone-id" => Some(f.matches(&zid)),
            "state" => Some(f.matches("available")),
            "region-name" => Some(f.matches(region)),
            "zone-type" => Some(f.matches("availability-zone")),
            "group-name" | "network-border-group" => Some(f.matches(region)),
            "opt-in-status" => Some(f.matches("opt-in-not-required")),
            _ => None,
        })?;
        if ok {
            list.push((z.clone(), zid));
        }
    }
    let mut x = Xml::new();
    x.set("availabilityZoneInfo", list, |x, (z, zid)| {
        x.leaf("zoneName", z)
            .leaf("zoneState", "available")
            .leaf("regionName", region)
            .leaf("zoneId", zid)
            .leaf("groupName", region)
            .leaf("networkBorderGroup", region)
            .leaf("zoneType", "availability-zone")
            .leaf("optInStatus", "opt-in-not-required")
            .set("messageSet", std::iter::empty::<()>(), |_, ()| {});
    });
    Ok(x)
}

/// The instance types offered in a zone: the catalogue's, and any with a stock entry there;
/// a zone whose stock of a type is 0 does not offer it (sold out).
fn offered(m: &Model, zone: &str) -> Vec<String> {
    let mut types: BTreeSet<String> = INSTANCE_TYPES.iter().map(|t| t.name.to_string()).collect();
    types.extend(
        m.stock
            .keys()
            .filter(|(_, z)| z == zone)
            .map(|(t, _)| t.clone()),
    );
    types
        .into_iter()
        .filter(|t| m.stock.get(&(t.clone(), zone.to_string())) != Some(&0))
        .collect()
}

/// Whether the realm knows an instance type (the catalogue, or a stock entry in the zone).
fn known_type(m: &Model, instance_type: &str, zone: &str) -> bool {
    instance_type_info(instance_type).is_some()
        || m.stock
            .contains_key(&(instance_type.to_string(), zone.to_string()))
}

fn describe_offerings(m: &Model, region: &str, p: &Params) -> ApiResult<Xml> {
    let location_type = p.get("LocationType").unwrap_or("region");
    let zones = zones(region);
    let mut rows: Vec<(String, String)> = Vec::new();
    match location_type {
        "region" => {
            let mut types = BTreeSet::new();
            for z in &zones {
                types.extend(offered(m, z));
            }
            rows.extend(types.into_iter().map(|t| (t, region.to_string())));
        }
        "availability-zone" | "availability-zone-id" => {
            for z in &zones {
                let location = if location_type == "availability-zone" {
                    z.clone()
                } else {
                    zone_id(z)
                };
                rows.extend(offered(m, z).into_iter().map(|t| (t, location.clone())));
            }
        }
        other => return Err(ApiError::invalid_value("LocationType", other)),
    }
    let filters = p.filters()?;
    let mut list = Vec::new();
    for (t, location) in rows {
        let ok = passes(&Tags::new(), &filters, |f| match f.name.as_str() {
            "instance-type" => Some(f.matches(&t)),
            "location" => Some(f.matches(&location)),
            _ => None,
        })?;
        if ok {
            list.push((t, location));
        }
    }
    let (list, next) = page(list, p, 5, 1000)?;
    let mut x = Xml::new();
    x.set("instanceTypeOfferingSet", list, |x, (t, location)| {
        x.leaf("instanceType", t)
            .leaf("locationType", location_type)
            .leaf("location", location);
    });
    x.opt("nextToken", next);
    Ok(x)
}

// ---- Instances ----

/// `(code, name)` of an instance's state at `now`.
fn instance_state(m: &Model, f: &FrontState, i: &Instance, now: Instant) -> (u16, &'static str) {
    if f.terminating.contains_key(&i.id) {
        return (32, "shutting-down");
    }
    match m.instance_status(i, now) {
        InstanceStatus::Pending | InstanceStatus::Starting => (0, "pending"),
        InstanceStatus::Running => (16, "running"),
        InstanceStatus::Stopped if f.stopping.get(&i.id).is_some_and(|t| *t > now) => {
            (64, "stopping")
        }
        InstanceStatus::Stopped => (80, "stopped"),
    }
}

const TERMINATED: State = (48, "terminated");

/// An instance state: code and name.
type State = (u16, &'static str);
/// An instance as a describe lists it: the model's, the wire facts, its state, terminated.
type Listed<'a> = (&'a Instance, &'a InstanceExtra, State, bool);
/// An instance state change: id, current state, previous state.
type Change = (String, State, State);

fn private_dns(region: &str, ip: &std::net::Ipv4Addr) -> String {
    let host = format!("ip-{}", ip.to_string().replace('.', "-"));
    if region == "us-east-1" {
        format!("{host}.ec2.internal")
    } else {
        format!("{host}.{region}.compute.internal")
    }
}

/// One instance as EC2 describes it; `gone` for a terminated one (no network, no volumes).
fn instance_xml(
    x: &mut Xml,
    m: &Model,
    i: &Instance,
    extra: &InstanceExtra,
    state: (u16, &str),
    gone: bool,
) {
    let info = instance_type_info(&i.instance_type);
    let launched = extra.launched.unwrap_or(i.created);
    let public_ip = i
        .eip_id
        .as_ref()
        .and_then(|e| m.eips.get(e))
        .map(|e| e.ip)
        .or(i.public_ip)
        .filter(|_| !gone);
    let dns = private_dns(&i.region, &i.private_ip);
    let groups: Vec<(String, String)> = i
        .security_group_ids
        .iter()
        .map(|g| {
            let name = m
                .security_groups
                .get(g)
                .map(|s| s.name.clone())
                .unwrap_or_default();
            (g.clone(), name)
        })
        .collect();
    let group_set = |x: &mut Xml| {
        x.set("groupSet", &groups, |x, (id, name)| {
            x.leaf("groupId", id).leaf("groupName", name);
        });
    };
    x.leaf("instanceId", &i.id)
        .leaf("imageId", &i.image_id)
        .state("instanceState", state)
        .leaf("privateDnsName", if gone { "" } else { dns.as_str() })
        .leaf("dnsName", "")
        .leaf(
            "reason",
            if state.0 >= 32 {
                format!(
                    "User initiated ({})",
                    xml::time(Timestamp::now())
                        .replace(".000Z", " GMT")
                        .replace('T', " ")
                )
            } else {
                String::new()
            },
        )
        .opt("keyName", extra.key_name.as_deref())
        .leaf("amiLaunchIndex", extra.launch_index)
        .set("productCodes", std::iter::empty::<()>(), |_, ()| {})
        .leaf("instanceType", &i.instance_type)
        .leaf("launchTime", xml::time(launched))
        .node("placement", |x| {
            x.leaf("availabilityZoneId", zone_id(&i.zone))
                .leaf("availabilityZone", &i.zone)
                .leaf("groupName", "")
                .leaf("tenancy", "default");
        })
        .node("monitoring", |x| {
            x.leaf("state", "disabled");
        });
    if !gone {
        x.leaf("subnetId", &i.subnet_id)
            .leaf("vpcId", &i.vpc_id)
            .leaf("privateIpAddress", i.private_ip);
    }
    x.opt("ipAddress", public_ip)
        .leaf("sourceDestCheck", "true");
    group_set(x);
    if state.0 == 0 || state.0 >= 32 {
        let (code, message) = match state.0 {
            0 => ("pending", "pending"),
            48 | 32 => (
                "Client.UserInitiatedShutdown",
                "Client.UserInitiatedShutdown: User initiated shutdown",
            ),
            _ => (
                "Client.UserInitiatedShutdown",
                "Client.UserInitiatedShutdown: User initiated shutdown",
            ),
        };
        x.node("stateReason", |x| {
            x.leaf("code", code).leaf("message", message);
        });
    }
    x.leaf("architecture", "x86_64")
        .leaf("rootDeviceType", "ebs")
        .leaf("rootDeviceName", &extra.device_name)
        .set("blockDeviceMapping", (!gone).then_some(()), |x, ()| {
            x.leaf("deviceName", &extra.device_name).node("ebs", |x| {
                x.leaf("volumeId", &extra.volume_id)
                    .leaf("status", "attached")
                    .leaf("attachTime", xml::time(launched))
                    .leaf("deleteOnTermination", "true");
            });
        })
        .leaf("virtualizationType", "hvm")
        .leaf("clientToken", &extra.client_token)
        .tags(&i.tags)
        .leaf("hypervisor", "xen")
        .set("networkInterfaceSet", (!gone).then_some(()), |x, ()| {
            let association = |x: &mut Xml| {
                if let Some(ip) = public_ip {
                    x.node("association", |x| {
                        x.leaf("publicIp", ip).leaf("publicDnsName", "").leaf(
                            "ipOwnerId",
                            if i.eip_id.is_some() {
                                ACCOUNT_ID
                            } else {
                                "amazon"
                            },
                        );
                    });
                }
            };
            association(x);
            x.node("attachment", |x| {
                x.leaf(
                    "attachmentId",
                    format!("eni-attach-{}", extra.eni_id.trim_start_matches("eni-")),
                )
                .leaf("deviceIndex", 0)
                .leaf("status", "attached")
                .leaf("attachTime", xml::time(launched))
                .leaf("deleteOnTermination", "true")
                .leaf("networkCardIndex", 0);
            })
            .leaf("description", "")
            .leaf("macAddress", "02:00:00:00:00:01");
            group_set(x);
            x.set("ipv6AddressesSet", std::iter::empty::<()>(), |_, ()| {})
                .leaf("networkInterfaceId", &extra.eni_id)
                .leaf("ownerId", ACCOUNT_ID)
                .leaf("privateDnsName", &dns)
                .leaf("privateIpAddress", i.private_ip)
                .set("privateIpAddressesSet", [()], |x, ()| {
                    association(x);
                    x.leaf("primary", "true")
                        .leaf("privateDnsName", &dns)
                        .leaf("privateIpAddress", i.private_ip);
                })
                .leaf("sourceDestCheck", "true")
                .leaf("status", "in-use")
                .leaf("subnetId", &i.subnet_id)
                .leaf("vpcId", &i.vpc_id)
                .leaf("interfaceType", "interface");
        })
        .leaf("ebsOptimized", "false")
        .leaf("enaSupport", "true")
        .node("cpuOptions", |x| {
            let vcpus = info.map_or(2, |t| t.vcpus);
            x.leaf("coreCount", (vcpus / 2).max(1))
                .leaf("threadsPerCore", if vcpus > 1 { 2 } else { 1 });
        })
        .node("capacityReservationSpecification", |x| {
            x.leaf("capacityReservationPreference", "open");
        })
        .node("hibernationOptions", |x| {
            x.leaf("configured", "false");
        })
        .node("metadataOptions", |x| {
            x.leaf("state", "applied")
                .leaf("httpTokens", "required")
                .leaf("httpPutResponseHopLimit", 2)
                .leaf("httpEndpoint", "enabled")
                .leaf("httpProtocolIpv6", "disabled")
                .leaf("instanceMetadataTags", "disabled");
        })
        .node("enclaveOptions", |x| {
            x.leaf("enabled", "false");
        })
        .leaf("platformDetails", "Linux/UNIX")
        .leaf("usageOperation", "RunInstances")
        .leaf("usageOperationUpdateTime", xml::time(launched))
        .node("maintenanceOptions", |x| {
            x.leaf("autoRecovery", "default");
        })
        .leaf("currentInstanceBootMode", "legacy-bios");
}

fn reservation_xml(x: &mut Xml, reservation_id: &str, items: &[Listed<'_>], m: &Model) {
    x.leaf("reservationId", reservation_id)
        .leaf("ownerId", ACCOUNT_ID)
        .set("groupSet", std::iter::empty::<()>(), |_, ()| {})
        .set("instancesSet", items, |x, (i, extra, state, gone)| {
            instance_xml(x, m, i, extra, *state, *gone);
        });
}

fn valid_ami(id: &str) -> bool {
    id.strip_prefix("ami-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

const VOLUME_TYPES: &[&str] = &["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"];

fn run_instances(state: &EmulatorState, region: &str, p: &Params, now: Instant) -> ApiResult<Xml> {
    let image_id = p.req("ImageId")?;
    if !valid_ami(image_id) {
        return Err(ApiError::bad(
            "InvalidAMIID.Malformed",
            format!("Invalid id: \"{image_id}\" (expecting \"ami-...\")"),
        ));
    }
    let instance_type = p.get("InstanceType").unwrap_or("m1.small");
    let min = p
        .int("MinCount")?
        .ok_or_else(|| ApiError::missing("MinCount"))?;
    let max = p
        .int("MaxCount")?
        .ok_or_else(|| ApiError::missing("MaxCount"))?;
    if min < 1 {
        return Err(ApiError::bad(
            "InvalidParameterValue",
            format!(
                "Value ({min}) for parameter minCount is invalid. Expected a positive integer."
            ),
        ));
    }
    if max < min {
        return Err(ApiError::bad(
            "InvalidParameterValue",
            format!(
                "Value ({max}) for parameter maxCount is invalid. Expected a value greater than or equal to minCount."
            ),
        ));
    }
    let nic = p
        .groups("NetworkInterface")
        .into_iter()
        .find(|n| n.get("DeviceIndex").is_none_or(|d| d == "0"))
        .unwrap_or_default();
    let Some(subnet_id) = p
        .get("SubnetId")
        .or_else(|| nic.get("SubnetId"))
        .map(String::from)
    else {
        return Err(ApiError::bad(
            "VPCIdNotSpecified",
            "No default VPC for this user. GroupName is only supported for EC2-Classic and default VPC.",
        ));
    };
    let mut group_ids: Vec<String> = p.list("SecurityGroupId");
    group_ids.extend(nic.list("SecurityGroupId"));
    let group_names = p.list("SecurityGroup");
    let public_ip = nic.bool("AssociatePublicIpAddress")?.unwrap_or(false);
    let key_name = p.get("KeyName").map(String::from);
    let (mut device_name, mut volume_gib, mut volume_type) =
        ("/dev/xvda".to_string(), 8_i64, "gp2".to_string());
    if let Some(root) = p
        .groups("BlockDeviceMapping")
        .into_iter()
        .find(|b| !b.sub("Ebs").is_empty())
    {
        if let Some(d) = root.get("DeviceName") {
            device_name = d.to_string();
        }
        let ebs = root.sub("Ebs");
        if let Some(size) = ebs.int("VolumeSize")? {
            if !(1..=16384).contains(&size) {
                return Err(ApiError::bad(
                    "InvalidParameterValue",
                    format!("Volume of {size}GiB is out of range [1, 16384]."),
                ));
            }
            volume_gib = size;
        }
        if let Some(t) = ebs.get("VolumeType") {
            if !VOLUME_TYPES.contains(&t) {
                return Err(ApiError::invalid_value("volumeType", t));
            }
            volume_type = t.to_string();
        }
    }
    let mut specs = p.tag_specs(&[
        "instance",
        "volume",
        "network-interface",
        "spot-instances-request",
        "elastic-gpu",
    ])?;
    let tags = specs.remove("instance").unwrap_or_default();
    let token = p.get("ClientToken").filter(|t| !t.is_empty());
    if token.is_some_and(|t| t.len() > 64 || !t.is_ascii()) {
        return Err(ApiError::bad(
            "InvalidParameterValue",
            "Value for parameter clientToken is invalid. It must be at most 64 ASCII characters.",
        ));
    }
    // Every parameter but the token takes part in the idempotency fingerprint.
    let fingerprint: String =
        p.0.iter()
            .filter(|(k, _)| !matches!(k.as_str(), "ClientToken" | "DryRun" | "Action" | "Version"))
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
    let idem = token.map(|t| Idem {
        scope: format!("{}:RunInstances:{region}", REALM.name),
        token: t.to_string(),
        fingerprint,
    });
    state.with_model_mut(|m| {
        let s = subnet(m, region, &subnet_id)?;
        let (vpc_id, zone) = (s.vpc_id.clone(), s.zone.clone());
        if let Some(z) = p.get("Placement.AvailabilityZone").filter(|z| *z != zone) {
            return Err(ApiError::bad(
                "InvalidParameterValue",
                format!("Value ({z}) for parameter availabilityZone is invalid. The subnet {subnet_id} is in {zone}."),
            ));
        }
        let mut f = state.aws();
        for name in &group_names {
            let id = m
                .security_groups
                .values()
                .find(|g| g.realm == REALM.name && g.vpc_id == vpc_id && &g.name == name)
                .map(|g| g.id.clone())
                .ok_or_else(|| {
                    ApiError::bad(
                        "InvalidGroup.NotFound",
                        format!("The security group '{name}' does not exist in VPC '{vpc_id}'"),
                    )
                })?;
            group_ids.push(id);
        }
        if group_ids.is_empty() {
            group_ids.extend(f.default_groups.get(&vpc_id).cloned());
        }
        group_ids.dedup();
        for g in &group_ids {
            if group(m, region, g)?.vpc_id != vpc_id {
                return Err(ApiError::bad(
                    "InvalidParameter",
                    format!("Security group {g} and subnet {subnet_id} belong to different networks."),
                ));
            }
        }
        if let Some(k) = &key_name
            && !f.key_pairs.values().any(|kp| kp.region == region && &kp.name == k)
        {
            return Err(ApiError::bad(
                "InvalidKeyPair.NotFound",
                format!("The key pair '{k}' does not exist"),
            ));
        }
        if !known_type(m, instance_type, &zone) {
            return Err(ApiError::bad(
                "InvalidParameterValue",
                format!("Invalid value '{instance_type}' for InstanceType."),
            ));
        }
        let req = RunInstances {
            region: region.to_string(),
            zone: Some(zone.clone()),
            instance_type: instance_type.to_string(),
            image_id: image_id.to_string(),
            subnet_id: subnet_id.clone(),
            security_group_ids: group_ids.clone(),
            name: tags.get("Name").cloned().unwrap_or_default(),
            description: String::new(),
            charge_type: "on-demand".into(),
            internet_charge_type: String::new(),
            bandwidth_out: u32::from(public_ip),
            disk_category: volume_type.clone(),
            disk_gib: u32::try_from(volume_gib).unwrap_or(8),
            password_set: false,
            key_pair_name: key_name.clone(),
            tags: tags.clone(),
            amount: u32::try_from(max).unwrap_or(u32::MAX),
            min_amount: u32::try_from(min).unwrap_or(u32::MAX),
            dry_run: false,
        };
        let ids = m
            .in_realm(REALM, |m| m.run_instances(req, idem.as_ref(), now))
            .map_err(ApiError::from_model)?;
        let replay = ids.iter().any(|id| {
            f.instances.contains_key(id) || f.terminated.contains_key(id) || !m.instances.contains_key(id)
        });
        let reservation_id = if replay {
            if ids
                .iter()
                .any(|id| !m.instances.contains_key(id) || f.terminating.contains_key(id))
            {
                return Err(ApiError::bad(
                    "IdempotentInstanceTerminated",
                    "The client token you have provided is associated with a resource that is already deleted. Please use a different client token.",
                ));
            }
            ids.first()
                .and_then(|id| f.instances.get(id))
                .map(|e| e.reservation_id.clone())
                .unwrap_or_default()
        } else {
            let reservation_id = new_id("r");
            for (n, id) in ids.iter().enumerate() {
                f.instances.insert(
                    id.clone(),
                    InstanceExtra {
                        reservation_id: reservation_id.clone(),
                        client_token: token.unwrap_or_default().to_string(),
                        launch_index: u32::try_from(n).unwrap_or(0),
                        key_name: key_name.clone(),
                        volume_id: new_id("vol"),
                        volume_type: volume_type.clone(),
                        device_name: device_name.clone(),
                        eni_id: new_id("eni"),
                        launched: Some(Timestamp::now()),
                    },
                );
            }
            reservation_id
        };
        let items: Vec<Listed<'_>> = ids
            .iter()
            .filter_map(|id| {
                let i = m.instances.get(id)?;
                let e = f.instances.get(id)?;
                Some((i, e, instance_state(m, &f, i, now), false))
            })
            .collect();
        let mut x = Xml::new();
        reservation_xml(&mut x, &reservation_id, &items, m);
        Ok(x)
    })
}

/// Instance ids a call names: present, well formed, and each existing (live or terminated).
fn named_instances(
    m: &Model,
    f: &FrontState,
    region: &str,
    ids: &[String],
    now: Instant,
) -> ApiResult<()> {
    if let Some(bad) = ids.iter().find(|id| !id.starts_with("i-")) {
        return Err(ApiError::bad(
            "InvalidInstanceID.Malformed",
            format!("Invalid id: \"{bad}\""),
        ));
    }
    let missing: Vec<&str> =
        ids.iter()
            .filter(|id| {
                let live = m.instances.get(*id).is_some_and(|i| {
                    i.realm == REALM.name && i.region == region && m.visible(id, now)
                });
                let gone = f
                    .terminated
                    .get(*id)
                    .is_some_and(|t| t.instance.region == region);
                !live && !gone
            })
            .map(String::as_str)
            .collect();
    match missing.as_slice() {
        [] => Ok(()),
        [one] => Err(ApiError::not_found(Kind::Instance, one)),
        many => Err(ApiError::bad(
            "InvalidInstanceID.NotFound",
            format!("The instance IDs '{}' do not exist", many.join(", ")),
        )),
    }
}

fn describe_instances(
    m: &Model,
    f: &FrontState,
    region: &str,
    p: &Params,
    now: Instant,
) -> ApiResult<Xml> {
    let ids = p.list("InstanceId");
    if !ids.is_empty() && p.get("MaxResults").is_some() {
        return Err(ApiError::bad(
            "InvalidParameterCombination",
            "The parameter instancesSet cannot be used with the parameter maxResults",
        ));
    }
    named_instances(m, f, region, &ids, now)?;
    let filters = p.filters()?;
    let lag = filter_tag_keys(&filters);
    let default_extra = InstanceExtra::default();
    let mut all: Vec<Listed<'_>> = Vec::new();
    for i in m
        .instances
        .values()
        .filter(|i| i.realm == REALM.name && i.region == region)
    {
        if m.visible_match(&i.id, &i.tags, &lag, now) {
            let extra = f.instances.get(&i.id).unwrap_or(&default_extra);
            all.push((i, extra, instance_state(m, f, i, now), false));
        }
    }
    for t in f
        .terminated
        .values()
        .filter(|t| t.instance.region == region)
    {
        all.push((&t.instance, &t.extra, TERMINATED, true));
    }
    let mut list = Vec::new();
    for item in all {
        let (i, extra, state, _) = item;
        if !ids.is_empty() && !ids.contains(&i.id) {
            continue;
        }
        let public_ip = i
            .eip_id
            .as_ref()
            .and_then(|e| m.eips.get(e))
            .map(|e| e.ip)
            .or(i.public_ip)
            .map(|ip| ip.to_string());
        let ok = passes(&i.tags, &filters, |fl: &Filter| match fl.name.as_str() {
            "instance-id" => Some(fl.matches(&i.id)),
            "instance-state-name" => Some(fl.matches(state.1)),
            "instance-state-code" => Some(fl.matches(&state.0.to_string())),
            "instance-type" => Some(fl.matches(&i.instance_type)),
            "image-id" => Some(fl.matches(&i.image_id)),
            "vpc-id" => Some(fl.matches(&i.vpc_id)),
            "subnet-id" => Some(fl.matches(&i.subnet_id)),
            "availability-zone" => Some(fl.matches(&i.zone)),
            "private-ip-address" => Some(fl.matches(&i.private_ip.to_string())),
            "ip-address" => Some(public_ip.as_deref().is_some_and(|ip| fl.matches(ip))),
            "key-name" => Some(extra.key_name.as_deref().is_some_and(|k| fl.matches(k))),
            "client-token" => Some(fl.matches(&extra.client_token)),
            "reservation-id" => Some(fl.matches(&extra.reservation_id)),
            "launch-index" => Some(fl.matches(&extra.launch_index.to_string())),
            "instance.group-id" | "group-id" => {
                Some(i.security_group_ids.iter().any(|g| fl.matches(g)))
            }
            "network-interface.network-interface-id" => Some(fl.matches(&extra.eni_id)),
            "owner-id" => Some(fl.matches(ACCOUNT_ID)),
            _ => None,
        })?;
        if ok {
            list.push(item);
        }
    }
    list.sort_by(|a, b| {
        let key = |x: &Listed<'_>| {
            (
                x.1.launched.unwrap_or(x.0.created),
                x.1.reservation_id.clone(),
                x.1.launch_index,
            )
        };
        key(a).cmp(&key(b))
    });
    let (list, next) = page(list, p, 5, 1000)?;
    // Consecutive instances of one reservation are one reservation item.
    let mut groups: Vec<(String, Vec<Listed<'_>>)> = Vec::new();
    for item in list {
        let reservation = item.1.reservation_id.clone();
        match groups.last_mut() {
            Some((r, items)) if *r == reservation => items.push(item),
            _ => groups.push((reservation, vec![item])),
        }
    }
    let mut x = Xml::new();
    x.set("reservationSet", &groups, |x, (r, items)| {
        reservation_xml(x, r, items, m);
    });
    x.opt("nextToken", next);
    Ok(x)
}

fn state_changes(x: &mut Xml, changes: &[Change]) {
    x.set("instancesSet", changes, |x, (id, current, previous)| {
        x.leaf("instanceId", id)
            .state("currentState", *current)
            .state("previousState", *previous);
    });
}

fn required_instance_ids(p: &Params) -> ApiResult<Vec<String>> {
    let ids = p.list("InstanceId");
    if ids.is_empty() {
        return Err(ApiError::missing("InstanceId"));
    }
    Ok(ids)
}

/// The attribute forms of ModifyInstanceAttribute other than `GroupId.N` (botocore's EC2
/// model): recognized, and refused as not modelled.
const OTHER_INSTANCE_ATTRIBUTES: &[&str] = &[
    "Attribute",
    "Value",
    "SourceDestCheck",
    "DisableApiTermination",
    "DisableApiStop",
    "InstanceType",
    "Kernel",
    "Ramdisk",
    "UserData",
    "InstanceInitiatedShutdownBehavior",
    "BlockDeviceMapping",
    "EbsOptimized",
    "SriovNetSupport",
    "EnaSupport",
];

/// ModifyInstanceAttribute, served for the security groups: `GroupId.N` replaces the
/// instance's set (one interface; a VPC instance in any state but shutting down or gone).
/// One attribute per call, as EC2 takes it; the other attributes are not modelled and are
/// refused as `UnsupportedOperation`, `Attribute=groupSet` (which takes no `Value`) points to
/// `GroupId.N`.
fn modify_instance_attribute(
    state: &EmulatorState,
    region: &str,
    p: &Params,
    now: Instant,
) -> ApiResult<Xml> {
    let id = p.req("InstanceId")?.to_string();
    let groups = p.list("GroupId");
    let others: Vec<&str> = p
        .top_level()
        .into_iter()
        .filter(|n| OTHER_INSTANCE_ATTRIBUTES.contains(n))
        .collect();
    match (groups.is_empty(), others.as_slice()) {
        (false, []) => {}
        (false, _) => {
            return Err(ApiError::bad(
                "InvalidParameterCombination",
                format!(
                    "Only one attribute can be modified at a time: GroupId with {}",
                    others.join(", ")
                ),
            ));
        }
        (true, []) => {
            return Err(ApiError::bad(
                "MissingParameter",
                "The request must contain one attribute to modify, e.g. GroupId.N",
            ));
        }
        (true, _) if p.get("Attribute") == Some("groupSet") => {
            return Err(ApiError::bad(
                "InvalidParameterCombination",
                "The groupSet attribute is modified with GroupId.N, not Attribute and Value",
            ));
        }
        (true, _) => {
            return Err(ApiError::bad(
                "UnsupportedOperation",
                format!(
                    "The emulator modifies the security groups (GroupId.N) only, not {}",
                    others.join(", ")
                ),
            ));
        }
    }
    state.with_model_mut(|m| {
        let f = state.aws();
        named_instances(m, &f, region, std::slice::from_ref(&id), now)?;
        let current = match m.instances.get(&id) {
            Some(i) => instance_state(m, &f, i, now),
            None => TERMINATED,
        };
        if matches!(current.1, "shutting-down" | "terminated") {
            return Err(ApiError::bad(
                "IncorrectInstanceState",
                format!("The instance '{id}' is not in a state from which it can be modified."),
            ));
        }
        for g in &groups {
            group(m, region, g)?;
        }
        m.set_security_groups(region, &id, &groups)
            .map_err(join_error)?;
        Ok(returns_true())
    })
}

/// A refused change of an instance's groups, as EC2 words it.
fn join_error(e: JoinGroupError) -> ApiError {
    match e {
        JoinGroupError::Model(e) => ApiError::from_model(e),
        JoinGroupError::VpcMismatch { group, subnet, .. } => ApiError::bad(
            "InvalidParameter",
            format!("Security group {group} and subnet {subnet} belong to different networks."),
        ),
        JoinGroupError::GroupLimit { limit, .. } => ApiError::bad(
            "SecurityGroupsPerInterfaceLimitExceeded",
            format!(
                "You have exceeded the maximum number of security groups ({limit}) allowed per network interface."
            ),
        ),
        // A set holds each group once: not an error of EC2's.
        JoinGroupError::AlreadyMember { group, .. } => ApiError::bad(
            "InvalidParameterValue",
            format!("The security group '{group}' is given twice"),
        ),
    }
}

fn terminate_instances(
    state: &EmulatorState,
    region: &str,
    p: &Params,
    now: Instant,
) -> ApiResult<Xml> {
    let ids = required_instance_ids(p)?;
    state.with_model_mut(|m| {
        let mut f = state.aws();
        named_instances(m, &f, region, &ids, now)?;
        let shutdown = m.boot_delay() / 2;
        let mut changes = Vec::new();
        for id in &ids {
            let Some(i) = m.instances.get(id) else {
                changes.push((id.clone(), TERMINATED, TERMINATED));
                continue;
            };
            let previous = instance_state(m, &f, i, now);
            f.terminating.entry(id.clone()).or_insert(now + shutdown);
            changes.push((id.clone(), (32, "shutting-down"), previous));
        }
        let mut x = Xml::new();
        state_changes(&mut x, &changes);
        Ok(x)
    })
}

fn stop_instances(state: &EmulatorState, region: &str, p: &Params, now: Instant) -> ApiResult<Xml> {
    let ids = required_instance_ids(p)?;
    state.with_model_mut(|m| {
        let mut f = state.aws();
        named_instances(m, &f, region, &ids, now)?;
        let mut plan = Vec::new();
        for id in &ids {
            let current = match m.instances.get(id) {
                Some(i) => instance_state(m, &f, i, now),
                None => TERMINATED,
            };
            if !matches!(current.1, "running" | "stopping" | "stopped") {
                return Err(ApiError::bad(
                    "IncorrectInstanceState",
                    format!("This instance '{id}' is not in a state from which it can be stopped."),
                ));
            }
            plan.push((id.clone(), current));
        }
        let mut changes = Vec::new();
        for (id, previous) in plan {
            if previous.1 == "running" {
                m.stop_instance(region, &id, now)
                    .map_err(ApiError::from_model)?;
                f.stopping.insert(id.clone(), now + m.boot_delay() / 2);
                changes.push((id, (64, "stopping"), previous));
            } else {
                changes.push((id, previous, previous));
            }
        }
        let mut x = Xml::new();
        state_changes(&mut x, &changes);
        Ok(x)
    })
}

fn start_instances(
    state: &EmulatorState,
    region: &str,
    p: &Params,
    now: Instant,
) -> ApiResult<Xml> {
    let ids = required_instance_ids(p)?;
    state.with_model_mut(|m| {
        let mut f = state.aws();
        named_instances(m, &f, region, &ids, now)?;
        let mut plan = Vec::new();
        for id in &ids {
            let current = match m.instances.get(id) {
                Some(i) => instance_state(m, &f, i, now),
                None => TERMINATED,
            };
            if !matches!(current.1, "stopped" | "pending" | "running") {
                return Err(ApiError::bad(
                    "IncorrectInstanceState",
                    format!("The instance '{id}' is not in a state from which it can be started."),
                ));
            }
            plan.push((id.clone(), current));
        }
        let mut changes = Vec::new();
        for (id, previous) in plan {
            if previous.1 == "stopped" {
                m.start_instance(region, &id, now)
                    .map_err(ApiError::from_model)?;
                f.stopping.remove(&id);
                changes.push((id, (0, "pending"), previous));
            } else {
                changes.push((id, previous, previous));
            }
        }
        let mut x = Xml::new();
        state_changes(&mut x, &changes);
        Ok(x)
    })
}

// ---- Tags ----

/// What a resource id names: a model kind, or one of the front end's own resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Taggable {
    Model(Kind),
    InternetGateway,
    RouteTable,
    KeyPair,
}

fn taggable(id: &str) -> ApiResult<Taggable> {
    Ok(match id.split('-').next().unwrap_or_default() {
        "i" => Taggable::Model(Kind::Instance),
        "vpc" => Taggable::Model(Kind::Vpc),
        "subnet" => Taggable::Model(Kind::Subnet),
        "sg" => Taggable::Model(Kind::SecurityGroup),
        "eipalloc" => Taggable::Model(Kind::Eip),
        "igw" => Taggable::InternetGateway,
        "rtb" => Taggable::RouteTable,
        "key" => Taggable::KeyPair,
        _ => {
            return Err(ApiError::bad(
                "InvalidID",
                format!("The ID '{id}' is not valid"),
            ));
        }
    })
}

/// The tags of a resource of the front end's own, if it exists in the region.
fn front_tags<'f>(
    m: &Model,
    f: &'f mut FrontState,
    region: &str,
    t: Taggable,
    id: &str,
) -> ApiResult<&'f mut Tags> {
    let not_found = |what: &str, code: &str| {
        ApiError::bad(code, format!("The {what} ID '{id}' does not exist"))
    };
    match t {
        Taggable::InternetGateway => f
            .internet_gateways
            .get_mut(id)
            .filter(|g| g.region == region)
            .map(|g| &mut g.tags)
            .ok_or_else(|| not_found("internetGateway", "InvalidInternetGatewayID.NotFound")),
        Taggable::RouteTable => {
            let exists = m
                .vpcs
                .values()
                .any(|v| v.realm == REALM.name && v.region == region && v.route_table_id == id);
            if !exists {
                return Err(not_found("routeTable", "InvalidRouteTableID.NotFound"));
            }
            Ok(f.route_table_tags.entry(id.to_string()).or_default())
        }
        Taggable::KeyPair => f
            .key_pairs
            .get_mut(id)
            .filter(|k| k.region == region)
            .map(|k| &mut k.tags)
            .ok_or_else(|| not_found("key pair", "InvalidKeyPair.NotFound")),
        Taggable::Model(_) => Err(ApiError::bad("InternalError", "not a front-end resource")),
    }
}

/// A model resource of the AWS realm in the region.
fn model_resource(m: &Model, region: &str, kind: Kind, id: &str) -> ApiResult<()> {
    let realm_region = match kind {
        Kind::Instance => m.instances.get(id).map(|r| (r.realm, &r.region)),
        Kind::Vpc => m.vpcs.get(id).map(|r| (r.realm, &r.region)),
        Kind::Subnet => m.subnets.get(id).map(|r| (r.realm, &r.region)),
        Kind::SecurityGroup | Kind::SecurityGroupRule => {
            m.security_groups.get(id).map(|r| (r.realm, &r.region))
        }
        Kind::Eip => m.eips.get(id).map(|r| (r.realm, &r.region)),
    };
    match realm_region {
        Some((realm, r)) if realm == REALM.name && r == region => Ok(()),
        _ => Err(ApiError::not_found(kind, id)),
    }
}

const TAG_LIMIT: usize = 50;

fn create_tags(state: &EmulatorState, region: &str, p: &Params) -> ApiResult<Xml> {
    let ids = p.list("ResourceId");
    if ids.is_empty() {
        return Err(ApiError::missing("ResourceId"));
    }
    let tags = p.tags("Tag")?;
    if tags.is_empty() {
        return Err(ApiError::missing("Tag"));
    }
    state.with_model_mut(|m| {
        let mut f = state.aws();
        let kinds: Vec<Taggable> = ids
            .iter()
            .map(|id| taggable(id))
            .collect::<ApiResult<_>>()?;
        for (id, t) in ids.iter().zip(&kinds) {
            match t {
                Taggable::Model(kind) => model_resource(m, region, *kind, id)?,
                other => {
                    let current = front_tags(m, &mut f, region, *other, id)?;
                    let added = tags.keys().filter(|k| !current.contains_key(*k)).count();
                    if current.len() + added > TAG_LIMIT {
                        return Err(ApiError::from_model(ModelError::TagLimit(id.clone())));
                    }
                }
            }
        }
        for (id, t) in ids.iter().zip(&kinds) {
            match t {
                Taggable::Model(kind) => m
                    .tag_resources(*kind, region, std::slice::from_ref(id), &tags)
                    .map_err(ApiError::from_model)?,
                other => front_tags(m, &mut f, region, *other, id)?.extend(tags.clone()),
            }
        }
        Ok(returns_true())
    })
}

fn delete_tags(state: &EmulatorState, region: &str, p: &Params) -> ApiResult<Xml> {
    let ids = p.list("ResourceId");
    if ids.is_empty() {
        return Err(ApiError::missing("ResourceId"));
    }
    // `Tag.N.Key` with an optional `Tag.N.Value`: only a tag with that value goes.
    let wanted: Vec<(String, Option<String>)> = p
        .groups("Tag")
        .into_iter()
        .map(|t| Ok((t.req("Key")?.to_string(), t.get("Value").map(String::from))))
        .collect::<ApiResult<_>>()?;
    let doomed = |tags: &Tags| -> Vec<String> {
        if wanted.is_empty() {
            return tags.keys().cloned().collect();
        }
        wanted
            .iter()
            .filter(|(k, v)| {
                tags.get(k)
                    .is_some_and(|have| v.as_ref().is_none_or(|v| v == have))
            })
            .map(|(k, _)| k.clone())
            .collect()
    };
    state.with_model_mut(|m| {
        let mut f = state.aws();
        let kinds: Vec<Taggable> = ids
            .iter()
            .map(|id| taggable(id))
            .collect::<ApiResult<_>>()?;
        for (id, t) in ids.iter().zip(&kinds) {
            match t {
                Taggable::Model(kind) => model_resource(m, region, *kind, id)?,
                other => {
                    front_tags(m, &mut f, region, *other, id)?;
                }
            }
        }
        for (id, t) in ids.iter().zip(&kinds) {
            match t {
                Taggable::Model(kind) => {
                    let current = match kind {
                        Kind::Instance => m.instances.get(id).map(|r| r.tags.clone()),
                        Kind::Vpc => m.vpcs.get(id).map(|r| r.tags.clone()),
                        Kind::Subnet => m.subnets.get(id).map(|r| r.tags.clone()),
                        Kind::SecurityGroup | Kind::SecurityGroupRule => {
                            m.security_groups.get(id).map(|r| r.tags.clone())
                        }
                        Kind::Eip => m.eips.get(id).map(|r| r.tags.clone()),
                    }
                    .unwrap_or_default();
                    let keys = doomed(&current);
                    m.untag_resources(*kind, region, std::slice::from_ref(id), &keys, false)
                        .map_err(ApiError::from_model)?;
                }
                other => {
                    let current = front_tags(m, &mut f, region, *other, id)?;
                    let keys = doomed(current);
                    current.retain(|k, _| !keys.contains(k));
                }
            }
        }
        Ok(returns_true())
    })
}

fn describe_tags(
    m: &Model,
    f: &FrontState,
    region: &str,
    p: &Params,
    now: Instant,
) -> ApiResult<Xml> {
    let mut rows: Vec<(String, &'static str, String, String)> = Vec::new();
    let mut add = |id: &str, t: &'static str, tags: &Tags| {
        for (k, v) in tags {
            rows.push((id.to_string(), t, k.clone(), v.clone()));
        }
    };
    let mine =
        |realm: &str, r: &str, id: &str| realm == REALM.name && r == region && m.visible(id, now);
    for i in m
        .instances
        .values()
        .filter(|i| mine(i.realm, &i.region, &i.id))
    {
        add(&i.id, "instance", &i.tags);
    }
    for v in m.vpcs.values().filter(|v| mine(v.realm, &v.region, &v.id)) {
        add(&v.id, "vpc", &v.tags);
        if let Some(t) = f.route_table_tags.get(&v.route_table_id) {
            add(&v.route_table_id, "route-table", t);
        }
    }
    for s in m
        .subnets
        .values()
        .filter(|s| mine(s.realm, &s.region, &s.id))
    {
        add(&s.id, "subnet", &s.tags);
    }
    for g in m
        .security_groups
        .values()
        .filter(|g| mine(g.realm, &g.region, &g.id))
    {
        add(&g.id, "security-group", &g.tags);
    }
    for e in m.eips.values().filter(|e| mine(e.realm, &e.region, &e.id)) {
        add(&e.id, "elastic-ip", &e.tags);
    }
    for g in f.internet_gateways.values().filter(|g| g.region == region) {
        add(&g.id, "internet-gateway", &g.tags);
    }
    for k in f.key_pairs.values().filter(|k| k.region == region) {
        add(&k.id, "key-pair", &k.tags);
    }
    let filters = p.filters()?;
    let mut list = Vec::new();
    for row in rows {
        let (id, t, k, v) = &row;
        let mut ok = true;
        for fl in &filters {
            let pass = match fl.name.as_str() {
                "resource-id" => fl.matches(id),
                "resource-type" => fl.matches(t),
                "key" => fl.matches(k),
                "value" => fl.matches(v),
                name => match name.strip_prefix("tag:") {
                    Some(key) => key == k && fl.matches(v),
                    None => {
                        return Err(ApiError::bad(
                            "InvalidParameterValue",
                            format!("The filter '{name}' is invalid"),
                        ));
                    }
                },
            };
            ok &= pass;
        }
        if ok {
            list.push(row);
        }
    }
    let (list, next) = page(list, p, 5, 1000)?;
    let mut x = Xml::new();
    x.set("tagSet", list, |x, (id, t, k, v)| {
        x.leaf("resourceId", id)
            .leaf("resourceType", t)
            .leaf("key", k)
            .leaf("value", v);
    });
    x.opt("nextToken", next);
    Ok(x)
}

// ---- Elastic IPs ----

fn address<'m>(m: &'m Model, region: &str, id: &str) -> ApiResult<&'m Eip> {
    m.eips
        .get(id)
        .filter(|e| e.realm == REALM.name && e.region == region)
        .ok_or_else(|| ApiError::not_found(Kind::Eip, id))
}

fn allocate_address(state: &EmulatorState, region: &str, p: &Params) -> ApiResult<Xml> {
    if let Some(d) = p.get("Domain").filter(|d| *d != "vpc") {
        return Err(ApiError::invalid_value("domain", d));
    }
    if p.get("Address").is_some() || p.get("PublicIpv4Pool").is_some_and(|pool| pool != "amazon") {
        return Err(ApiError::bad(
            "InvalidParameterValue",
            "The emulator allocates addresses from Amazon's pool only.",
        ));
    }
    let tags = p
        .tag_specs(&["elastic-ip"])?
        .remove("elastic-ip")
        .unwrap_or_default();
    state.with_model_mut(|m| {
        let id = m
            .in_realm(REALM, |m| {
                m.allocate_eip(
                    AllocateEip {
                        region: region.to_string(),
                        bandwidth: 5,
                        internet_charge_type: String::new(),
                        name: tags.get("Name").cloned().unwrap_or_default(),
                        description: String::new(),
                        tags,
                    },
                    None,
                )
            })
            .map_err(ApiError::from_model)?;
        let e = address(m, region, &id)?;
        let mut x = Xml::new();
        x.leaf("publicIp", e.ip)
            .leaf("domain", "vpc")
            .leaf("allocationId", &e.id)
            .leaf("publicIpv4Pool", "amazon")
            .leaf("networkBorderGroup", region);
        Ok(x)
    })
}

/// The association id of an associated EIP.
fn association_of(f: &FrontState, eip: &Eip) -> Option<String> {
    eip.instance_id.as_ref()?;
    f.associations
        .iter()
        .find(|(_, alloc)| **alloc == eip.id)
        .map(|(assoc, _)| assoc.clone())
}

fn associate_address(
    state: &EmulatorState,
    region: &str,
    p: &Params,
    now: Instant,
) -> ApiResult<Xml> {
    let alloc = p.req("AllocationId")?;
    let allow_reassociation = p.bool("AllowReassociation")?.unwrap_or(false);
    state.with_model_mut(|m| {
        let mut f = state.aws();
        let instance_id = match (p.get("InstanceId"), p.get("NetworkInterfaceId")) {
            (Some(i), _) => i.to_string(),
            (None, Some(eni)) => f
                .instances
                .iter()
                .find(|(_, e)| e.eni_id == eni)
                .map(|(id, _)| id.clone())
                .ok_or_else(|| {
                    ApiError::bad(
                        "InvalidNetworkInterfaceID.NotFound",
                        format!("The networkInterface ID '{eni}' does not exist"),
                    )
                })?,
            (None, None) => return Err(ApiError::missing("InstanceId")),
        };
        let eip = address(m, region, alloc)?.clone();
        named_instances(m, &f, region, std::slice::from_ref(&instance_id), now)?;
        let Some(instance) = m.instances.get(&instance_id).cloned() else {
            return Err(ApiError::bad(
                "IncorrectInstanceState",
                format!("The instance '{instance_id}' is not in a valid state for this operation."),
            ));
        };
        let state_now = instance_state(m, &f, &instance, now);
        if !matches!(state_now.1, "running" | "stopped") {
            return Err(ApiError::bad(
                "IncorrectInstanceState",
                format!(
                    "The {} instance '{instance_id}' is not in a valid state for this operation.",
                    state_now.1
                ),
            ));
        }
        if vpc_gateway(&f, &instance.vpc_id).is_none() {
            return Err(ApiError::bad(
                "Gateway.NotAttached",
                format!(
                    "Network {} is not attached to any internet gateway",
                    instance.vpc_id
                ),
            ));
        }
        if eip.instance_id.as_deref() == Some(instance_id.as_str()) {
            let assoc = association_of(&f, &eip).unwrap_or_else(|| new_id("eipassoc"));
            f.associations.insert(assoc.clone(), eip.id.clone());
            let mut x = returns_true();
            x.leaf("associationId", assoc);
            return Ok(x);
        }
        if eip.instance_id.is_some() {
            if !allow_reassociation {
                return Err(ApiError::bad(
                    "Resource.AlreadyAssociated",
                    format!(
                        "resource {alloc} is already associated with associate-id {}",
                        association_of(&f, &eip).unwrap_or_default()
                    ),
                ));
            }
            m.unassociate_eip(region, alloc, None)
                .map_err(ApiError::from_model)?;
            f.associations.retain(|_, a| a != alloc);
        }
        // An instance takes one address: a new one replaces its EIP or automatic public IP.
        if let Some(old) = instance.eip_id.clone() {
            m.unassociate_eip(region, &old, None)
                .map_err(ApiError::from_model)?;
            f.associations.retain(|_, a| *a != old);
        }
        if let Some(i) = m.instances.get_mut(&instance_id) {
            i.public_ip = None;
        }
        m.associate_eip(region, alloc, &instance_id, now)
            .map_err(ApiError::from_model)?;
        let assoc = new_id("eipassoc");
        f.associations.insert(assoc.clone(), alloc.to_string());
        let mut x = returns_true();
        x.leaf("associationId", assoc);
        Ok(x)
    })
}

fn disassociate_address(state: &EmulatorState, region: &str, p: &Params) -> ApiResult<Xml> {
    let Some(assoc) = p.get("AssociationId") else {
        return Err(ApiError::missing("AssociationId"));
    };
    state.with_model_mut(|m| {
        let mut f = state.aws();
        let not_found = || {
            ApiError::bad(
                "InvalidAssociationID.NotFound",
                format!("The association ID '{assoc}' does not exist"),
            )
        };
        let alloc = f.associations.get(assoc).cloned().ok_or_else(not_found)?;
        let associated = address(m, region, &alloc)
            .ok()
            .is_some_and(|e| e.instance_id.is_some());
        if !associated {
            f.associations.remove(assoc);
            return Err(not_found());
        }
        m.unassociate_eip(region, &alloc, None)
            .map_err(ApiError::from_model)?;
        f.associations.remove(assoc);
        Ok(returns_true())
    })
}

fn describe_addresses(
    m: &Model,
    f: &FrontState,
    region: &str,
    p: &Params,
    now: Instant,
) -> ApiResult<Xml> {
    let ids = p.list("AllocationId");
    let ips = p.list("PublicIp");
    let mine: Vec<&Eip> = m
        .eips
        .values()
        .filter(|e| e.realm == REALM.name && e.region == region && m.visible(&e.id, now))
        .collect();
    for id in &ids {
        if !mine.iter().any(|e| &e.id == id) {
            return Err(ApiError::not_found(Kind::Eip, id));
        }
    }
    for ip in &ips {
        if !mine.iter().any(|e| &e.ip.to_string() == ip) {
            return Err(ApiError::bad(
                "InvalidAddress.NotFound",
                format!("Address '{ip}' not found."),
            ));
        }
    }
    let filters = p.filters()?;
    let lag = filter_tag_keys(&filters);
    let mut list = Vec::new();
    for e in mine {
        if (!ids.is_empty() && !ids.contains(&e.id))
            || (!ips.is_empty() && !ips.contains(&e.ip.to_string()))
            || !m.visible_match(&e.id, &e.tags, &lag, now)
        {
            continue;
        }
        let assoc = association_of(f, e);
        let instance = e.instance_id.as_ref().and_then(|i| m.instances.get(i));
        let eni = e
            .instance_id
            .as_ref()
            .and_then(|i| f.instances.get(i))
            .map(|x| x.eni_id.clone());
        let ok = passes(&e.tags, &filters, |fl| match fl.name.as_str() {
            "allocation-id" => Some(fl.matches(&e.id)),
            "association-id" => Some(assoc.as_deref().is_some_and(|a| fl.matches(a))),
            "instance-id" => Some(e.instance_id.as_deref().is_some_and(|i| fl.matches(i))),
            "public-ip" => Some(fl.matches(&e.ip.to_string())),
            "domain" => Some(fl.matches("vpc")),
            "network-border-group" => Some(fl.matches(region)),
            "network-interface-id" => Some(eni.as_deref().is_some_and(|n| fl.matches(n))),
            "private-ip-address" => {
                Some(instance.is_some_and(|i| fl.matches(&i.private_ip.to_string())))
            }
            _ => None,
        })?;
        if ok {
            list.push((e, assoc, instance, eni));
        }
    }
    let mut x = Xml::new();
    x.set("addressesSet", list, |x, (e, assoc, instance, eni)| {
        x.leaf("publicIp", e.ip)
            .leaf("allocationId", &e.id)
            .leaf("domain", "vpc")
            .opt("instanceId", e.instance_id.as_deref())
            .opt("associationId", assoc)
            .opt("networkInterfaceId", eni)
            .opt("networkInterfaceOwnerId", instance.map(|_| ACCOUNT_ID))
            .opt("privateIpAddress", instance.map(|i| i.private_ip))
            .tags(&e.tags)
            .leaf("publicIpv4Pool", "amazon")
            .leaf("networkBorderGroup", region);
    });
    Ok(x)
}

// ---- Key pairs ----

/// `aa:bb:..` of the first 16 bytes of a SHA-256 (the emulator's stand-in for EC2's MD5/SHA-1
/// fingerprints of RSA keys).
fn colon_hex(data: &[u8]) -> String {
    let digest = sha256_hex(data);
    digest
        .as_bytes()
        .chunks(2)
        .take(16)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

fn create_key_pair(
    state: &EmulatorState,
    region: &str,
    action: &str,
    p: &Params,
) -> ApiResult<Xml> {
    let name = p.req("KeyName")?;
    if name.chars().count() > 255 {
        return Err(ApiError::invalid_value("KeyName", name));
    }
    let tags = p
        .tag_specs(&["key-pair"])?
        .remove("key-pair")
        .unwrap_or_default();
    let b64 = base64::engine::general_purpose::STANDARD;
    let (key_type, fingerprint, public_key, material) = if action == "ImportKeyPair" {
        let raw = p.req("PublicKeyMaterial")?;
        let text = b64
            .decode(raw.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_else(|| raw.to_string());
        let mut fields = text.split_whitespace();
        let (kind, blob) = (
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
        );
        let decoded = b64.decode(blob).ok().filter(|_| {
            matches!(
                kind,
                "ssh-rsa"
                    | "ssh-ed25519"
                    | "ecdsa-sha2-nistp256"
                    | "ecdsa-sha2-nistp384"
                    | "ecdsa-sha2-nistp521"
            )
        });
        let Some(decoded) = decoded else {
            return Err(ApiError::bad(
                "InvalidKey.Format",
                "Key is not in valid OpenSSH public key format",
            ));
        };
        let (key_type, fingerprint) = if kind == "ssh-ed25519" {
            let digest = hex::decode(sha256_hex(&decoded)).unwrap_or_default();
            (
                "ed25519",
                format!(
                    "{}=",
                    base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
                ),
            )
        } else {
            ("rsa", colon_hex(&decoded))
        };
        (
            key_type.to_string(),
            fingerprint,
            text.trim().to_string(),
            None,
        )
    } else {
        let key_type = p.get("KeyType").unwrap_or("rsa");
        if !matches!(key_type, "rsa" | "ed25519") {
            return Err(ApiError::invalid_value("KeyType", key_type));
        }
        let mut secret = [0u8; 48];
        rand::rng().fill(&mut secret[..]);
        let body = b64.encode(secret);
        let material = if key_type == "rsa" {
            format!("-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----")
        } else {
            format!(
                "-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----"
            )
        };
        let fingerprint = colon_hex(&secret);
        let public = format!(
            "ssh-{} {} {name}",
            if key_type == "rsa" { "rsa" } else { "ed25519" },
            b64.encode(&secret[..32])
        );
        (key_type.to_string(), fingerprint, public, Some(material))
    };
    let mut f = state.aws();
    if f.key_pairs
        .values()
        .any(|k| k.region == region && k.name == name)
    {
        return Err(ApiError::bad(
            "InvalidKeyPair.Duplicate",
            format!("The keypair already exists: {name}"),
        ));
    }
    let key = KeyPair {
        id: new_id("key"),
        name: name.to_string(),
        region: region.to_string(),
        key_type,
        fingerprint,
        public_key,
        tags,
        created: Timestamp::now(),
    };
    let mut x = Xml::new();
    x.leaf("keyName", &key.name)
        .leaf("keyFingerprint", &key.fingerprint)
        .opt("keyMaterial", material)
        .leaf("keyPairId", &key.id)
        .tags(&key.tags);
    f.key_pairs.insert(key.id.clone(), key);
    Ok(x)
}

fn describe_key_pairs(f: &FrontState, region: &str, p: &Params) -> ApiResult<Xml> {
    let (names, ids) = (p.list("KeyName"), p.list("KeyPairId"));
    let mine: Vec<&KeyPair> = f
        .key_pairs
        .values()
        .filter(|k| k.region == region)
        .collect();
    for n in &names {
        if !mine.iter().any(|k| &k.name == n) {
            return Err(ApiError::bad(
                "InvalidKeyPair.NotFound",
                format!("The key pair '{n}' does not exist"),
            ));
        }
    }
    for id in &ids {
        if !mine.iter().any(|k| &k.id == id) {
            return Err(ApiError::bad(
                "InvalidKeyPair.NotFound",
                format!("The key pair ID '{id}' does not exist"),
            ));
        }
    }
    let include_public = p.bool("IncludePublicKey")?.unwrap_or(false);
    let filters = p.filters()?;
    let mut list = Vec::new();
    for k in mine {
        if (!names.is_empty() && !names.contains(&k.name))
            || (!ids.is_empty() && !ids.contains(&k.id))
        {
            continue;
        }
        let ok = passes(&k.tags, &filters, |fl| match fl.name.as_str() {
            "key-name" => Some(fl.matches(&k.name)),
            "key-pair-id" => Some(fl.matches(&k.id)),
            "fingerprint" => Some(fl.matches(&k.fingerprint)),
            "key-type" => Some(fl.matches(&k.key_type)),
            _ => None,
        })?;
        if ok {
            list.push(k);
        }
    }
    let mut x = Xml::new();
    x.set("keySet", list, |x, k| {
        x.leaf("keyPairId", &k.id)
            .leaf("keyType", &k.key_type)
            .tags(&k.tags)
            .opt("publicKey", include_public.then_some(k.public_key.as_str()))
            .leaf("createTime", xml::time(k.created))
            .leaf("keyName", &k.name)
            .leaf("keyFingerprint", &k.fingerprint);
    });
    Ok(x)
}
