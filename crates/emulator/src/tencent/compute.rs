//! CVM API actions: regions and zones, instances (launch, describe, start, stop, terminate with
//! the prepaid recycle bin) and prices.

use super::network::zone_of_region;
use super::request::{bad_filter, filter_tag_keys, ids_or_filters, page, paged, tag_filter};
use super::*;
use crate::model::{
    Instance, InstanceStatus, JoinGroupError, Model, ModelError, RunInstances, round_cents,
};

const FILTER_CODE: &str = "InvalidFilter";

/// The months a PREPAID instance can be bought for.
const PERIODS: &[i64] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 24, 36, 48, 60];
const RENEW_FLAGS: &[&str] = &[
    "NOTIFY_AND_AUTO_RENEW",
    "NOTIFY_AND_MANUAL_RENEW",
    "DISABLE_NOTIFY_AND_MANUAL_RENEW",
];
const DISK_TYPES: &[&str] = &[
    "LOCAL_BASIC",
    "LOCAL_SSD",
    "CLOUD_BASIC",
    "CLOUD_SSD",
    "CLOUD_PREMIUM",
    "CLOUD_BSSD",
    "CLOUD_HSSD",
    "CLOUD_TSSD",
];
const INTERNET_CHARGE_TYPES: &[&str] = &[
    "BANDWIDTH_PREPAID",
    "TRAFFIC_POSTPAID_BY_HOUR",
    "BANDWIDTH_POSTPAID_BY_HOUR",
    "BANDWIDTH_PACKAGE",
];
/// Price of a GB of traffic (TRAFFIC_POSTPAID_BY_HOUR bills per GB, not per hour).
const TRAFFIC_GB_PRICE: f64 = 0.8;

pub(super) fn dispatch(
    state: &EmulatorState,
    call: &Call,
    body: &Body,
    now: Instant,
) -> ApiResult<Value> {
    match call.action.as_str() {
        "DescribeRegions" => {
            let set: Vec<Value> = REGIONS
                .iter()
                .map(|r| json!({"Region": r, "RegionName": r, "RegionState": "AVAILABLE"}))
                .collect();
            Ok(json!({"TotalCount": set.len(), "RegionSet": set}))
        }
        "DescribeZones" => {
            let region = call.region()?;
            let set: Vec<Value> = (1..=ZONES_PER_REGION)
                .map(|n| {
                    json!({"Zone": format!("{region}-{n}"), "ZoneName": format!("{region}-{n}"),
                        "ZoneId": format!("{}", 100_000 + n), "ZoneState": "AVAILABLE"})
                })
                .collect();
            Ok(json!({"TotalCount": set.len(), "ZoneSet": set}))
        }
        "DescribeZoneInstanceConfigInfos" => {
            let region = call.region()?;
            state.with_model(|m| zone_instance_configs(m, region, body))
        }
        "RunInstances" => run_instances(state, call.region()?, body, now),
        "DescribeInstances" => {
            let region = call.region()?;
            let m = state.model_read();
            let front = state.tencent();
            describe_instances(&m, &front, region, body, now)
        }
        "DescribeInstancesStatus" => {
            let region = call.region()?;
            let ids = body.strs("InstanceIds")?;
            let (offset, limit) = page(body, false, true)?;
            let m = state.model_read();
            let front = state.tencent();
            let list: Vec<&Instance> = m
                .instances
                .values()
                .filter(|i| i.realm == REALM.name && i.region == region)
                .filter(|i| ids.is_empty() || ids.contains(&i.id.as_str()))
                .filter(|i| m.visible(&i.id, now))
                .collect();
            let (page, total) = paged(list, offset, limit);
            let set: Vec<Value> = page
                .iter()
                .map(|i| json!({"InstanceId": i.id, "InstanceState": instance_state(&m, &front, i, now)}))
                .collect();
            Ok(json!({"TotalCount": total, "InstanceStatusSet": set}))
        }
        "StartInstances" => {
            let region = call.region()?;
            let ids = instance_ids(body)?;
            state.with_model_mut(|m| {
                let front = state.tencent();
                check_states(m, &front, region, &ids, now, "STOPPED")?;
                for id in &ids {
                    m.start_instance(region, id, now)
                        .map_err(|e| ApiError::from_model(e, Service::Cvm))?;
                }
                Ok(json!({}))
            })
        }
        "StopInstances" => {
            let region = call.region()?;
            let ids = instance_ids(body)?;
            state.with_model_mut(|m| {
                let front = state.tencent();
                check_states(m, &front, region, &ids, now, "RUNNING")?;
                for id in &ids {
                    m.stop_instance(region, id, now)
                        .map_err(|e| ApiError::from_model(e, Service::Cvm))?;
                }
                Ok(json!({}))
            })
        }
        "TerminateInstances" => terminate_instances(state, call.region()?, body, now),
        "AssociateSecurityGroups" => associate_security_groups(state, call.region()?, body, now),
        "InquiryPriceRunInstances" => {
            let region = call.region()?;
            state.with_model(|m| inquiry_price(m, region, body))
        }
        _ => Err(ApiError::new(
            "InvalidAction",
            format!("The action `{}` is not emulated.", call.action),
        )),
    }
}

/// `InstanceState` at `now`: the recycle bin is SHUTDOWN; the first boot is PENDING throughout.
fn instance_state(m: &Model, front: &FrontState, i: &Instance, now: Instant) -> &'static str {
    if front.recycled.contains(&i.id) {
        return "SHUTDOWN";
    }
    match m.instance_status(i, now) {
        InstanceStatus::Pending => "PENDING",
        InstanceStatus::Starting if i.is_first_boot() => "PENDING",
        InstanceStatus::Starting => "STARTING",
        InstanceStatus::Running => "RUNNING",
        InstanceStatus::Stopped => "STOPPED",
    }
}

fn instance_ids<'a>(body: &Body<'a>) -> ApiResult<Vec<&'a str>> {
    let ids = body.strs("InstanceIds")?;
    if ids.is_empty() {
        return Err(ApiError::missing("InstanceIds"));
    }
    if ids.len() > 100 {
        return Err(ApiError::new(
            "InvalidParameterValue.LimitExceeded",
            "At most 100 instance ids are allowed.",
        ));
    }
    Ok(ids)
}

/// AssociateSecurityGroups: one group (the API takes no more) added to up to 100 instances,
/// after their other groups; a group an instance already has is left as it is. All or
/// nothing: every instance is checked (RUNNING or STOPPED, room for one more group) first.
fn associate_security_groups(
    state: &EmulatorState,
    region: &str,
    body: &Body<'_>,
    now: Instant,
) -> ApiResult<Value> {
    let groups = body.strs("SecurityGroupIds")?;
    let group = match groups.as_slice() {
        [] => return Err(ApiError::missing("SecurityGroupIds")),
        [one] => *one,
        _ => {
            return Err(ApiError::new(
                "InvalidParameterValue.LimitExceeded",
                "Only one security group can be associated per request.",
            ));
        }
    };
    let ids = instance_ids(body)?;
    state.with_model_mut(|m| {
        let front = state.tencent();
        let cvm = |e: ModelError| ApiError::from_model(e, Service::Cvm);
        let limit = m.quotas.security_groups_per_instance as usize;
        for id in &ids {
            let i = instance(m, region, id)?;
            let st = instance_state(m, &front, i, now);
            if !matches!(st, "RUNNING" | "STOPPED") {
                return Err(ApiError::new(
                    instance_state_code(st),
                    format!("The instance `{id}` is {st}."),
                ));
            }
            m.get_security_group(group, region).map_err(cvm)?;
            if !i.security_group_ids.iter().any(|g| g == group)
                && i.security_group_ids.len() >= limit
            {
                return Err(ApiError::new(
                    "LimitExceeded.AssociateUSGLimitExceeded",
                    format!("An instance can be bound with up to {limit} security groups: `{id}`."),
                ));
            }
        }
        for id in &ids {
            match m.join_security_group(region, id, group, now) {
                Ok(()) | Err(JoinGroupError::AlreadyMember { .. }) => {}
                Err(JoinGroupError::Model(e)) => return Err(cvm(e)),
                Err(JoinGroupError::GroupLimit { instance, limit }) => {
                    return Err(ApiError::new(
                        "LimitExceeded.AssociateUSGLimitExceeded",
                        format!(
                            "An instance can be bound with up to {limit} security groups: `{instance}`."
                        ),
                    ));
                }
                Err(e @ JoinGroupError::VpcMismatch { .. }) => {
                    return Err(ApiError::new("InvalidParameterValue", e.to_string()));
                }
            }
        }
        Ok(json!({}))
    })
}

fn instance<'m>(m: &'m Model, region: &str, id: &str) -> ApiResult<&'m Instance> {
    m.instances
        .get(id)
        .filter(|i| i.realm == REALM.name && i.region == region)
        .ok_or_else(|| ApiError::not_found(Kind::Instance, id, Service::Cvm))
}

/// Every instance exists and is in `wanted` (all or nothing).
fn check_states(
    m: &Model,
    front: &FrontState,
    region: &str,
    ids: &[&str],
    now: Instant,
    wanted: &str,
) -> ApiResult<()> {
    for id in ids {
        let state = instance_state(m, front, instance(m, region, id)?, now);
        if state != wanted {
            return Err(ApiError::new(
                instance_state_code(state),
                format!("The instance `{id}` is {state}."),
            ));
        }
    }
    Ok(())
}

/// vCPUs and memory (GiB) from a Tencent instance type name (`S5.MEDIUM4`: 2 vCPUs, 4 GiB).
fn shape(instance_type: &str) -> (u32, u32) {
    let size = instance_type
        .split_once('.')
        .map_or(instance_type, |(_, s)| s);
    let digits_at = size
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    let (name, memory) = size.split_at(digits_at);
    let cpus = match name {
        "SMALL" => 1,
        "MEDIUM" => 2,
        "LARGE" | "XLARGE" => 4,
        other => other
            .strip_suffix("XLARGE")
            .and_then(|n| n.parse::<u32>().ok())
            .map_or(2, |n| n * 4),
    };
    (cpus, memory.parse().unwrap_or(cpus * 2))
}

fn instance_json(m: &Model, front: &FrontState, i: &Instance, now: Instant) -> Value {
    let extra = front.instances.get(&i.id).cloned().unwrap_or_default();
    let eip = i.eip_id.as_ref().and_then(|e| m.eips.get(e));
    let public: Vec<String> = eip
        .map(|e| e.ip)
        .or(i.public_ip)
        .map(|ip| ip.to_string())
        .into_iter()
        .collect();
    let (cpus, memory) = shape(&i.instance_type);
    let expired = extra.period.and_then(|months| {
        i.created
            .checked_add(jiff::SignedDuration::from_hours(
                i64::from(months) * 30 * 24,
            ))
            .ok()
            .map(time_cvm)
    });
    let recycled = front.recycled.contains(&i.id);
    json!({
        "Placement": {"Zone": i.zone, "ProjectId": 0},
        "InstanceId": i.id, "InstanceType": i.instance_type, "CPU": cpus, "Memory": memory,
        "RestrictState": if recycled { "EXPIRED" } else { "NORMAL" },
        "InstanceName": i.name, "InstanceChargeType": i.charge_type,
        "SystemDisk": {"DiskType": i.disk_category, "DiskId": format!("disk-{}", &i.id[4..]), "DiskSize": i.disk_gib},
        "DataDisks": null,
        "PrivateIpAddresses": [i.private_ip.to_string()],
        "PublicIpAddresses": if public.is_empty() { Value::Null } else { json!(public) },
        "InternetAccessible": {
            "InternetChargeType": i.internet_charge_type, "InternetMaxBandwidthOut": i.bandwidth_out,
            "PublicIpAssigned": extra.public_ip_assigned,
        },
        "VirtualPrivateCloud": {"VpcId": i.vpc_id, "SubnetId": i.subnet_id, "AsVpcGateway": false},
        "ImageId": i.image_id,
        "RenewFlag": if extra.period.is_some() { Value::from(extra.renew_flag.clone()) } else { Value::Null },
        "CreatedTime": time_cvm(i.created), "ExpiredTime": expired, "OsName": i.image_id,
        "SecurityGroupIds": i.security_group_ids,
        "LoginSettings": {"KeyIds": if extra.key_ids.is_empty() { Value::Null } else { json!(extra.key_ids) }},
        "InstanceState": instance_state(m, front, i, now), "Tags": tag_set(&i.tags),
        "StopChargingMode": "NOT_APPLICABLE", "Uuid": format!("uuid-{}", i.id),
        "LatestOperation": null, "LatestOperationState": null, "LatestOperationRequestId": null,
        "IsolatedSource": if recycled { "MANMADE" } else { "NOTISOLATED" },
        "DisableApiTermination": false, "DefaultLoginUser": "root", "DefaultLoginPort": 22,
    })
}

fn describe_instances(
    m: &Model,
    front: &FrontState,
    region: &str,
    body: &Body,
    now: Instant,
) -> ApiResult<Value> {
    let (ids, filters) = ids_or_filters(body, "InstanceIds", "InvalidParameterCombination")?;
    let (offset, limit) = page(body, false, true)?;
    let lag_keys = filter_tag_keys(&filters);
    let mut list = Vec::new();
    for i in m
        .instances
        .values()
        .filter(|i| i.realm == REALM.name && i.region == region)
    {
        if (!ids.is_empty() && !ids.contains(&i.id.as_str()))
            || !m.visible_match(&i.id, &i.tags, &lag_keys, now)
        {
            continue;
        }
        let mut ok = true;
        for f in &filters {
            let any = |v: &str| f.values.iter().any(|x| x == v);
            let pass = tag_filter(&i.tags, f).or_else(|| match f.name.as_str() {
                "zone" => Some(any(&i.zone)),
                "project-id" => Some(any("0")),
                "vpc-id" => Some(any(&i.vpc_id)),
                "subnet-id" => Some(any(&i.subnet_id)),
                "instance-id" => Some(any(&i.id)),
                "security-group-id" => Some(i.security_group_ids.iter().any(|s| any(s))),
                "instance-name" => Some(any(&i.name)),
                "instance-charge-type" => Some(any(&i.charge_type)),
                "instance-state" => Some(any(instance_state(m, front, i, now))),
                "private-ip-address" => Some(any(&i.private_ip.to_string())),
                "public-ip-address" => {
                    let eip = i.eip_id.as_ref().and_then(|e| m.eips.get(e)).map(|e| e.ip);
                    Some(eip.or(i.public_ip).is_some_and(|ip| any(&ip.to_string())))
                }
                _ => None,
            });
            match pass {
                Some(true) => {}
                Some(false) => ok = false,
                None => return Err(bad_filter(&f.name, FILTER_CODE)),
            }
        }
        if ok {
            list.push(i);
        }
    }
    let (page, total) = paged(list, offset, limit);
    let set: Vec<Value> = page
        .iter()
        .map(|i| instance_json(m, front, i, now))
        .collect();
    Ok(json!({"TotalCount": total, "InstanceSet": set}))
}

/// What RunInstances and InquiryPriceRunInstances share: charge, disk and network.
struct Launch<'a> {
    charge_type: &'a str,
    period: Option<u32>,
    renew_flag: &'a str,
    disk_type: &'a str,
    disk_gib: u32,
    internet_charge_type: &'a str,
    bandwidth_out: u32,
    public_ip_assigned: bool,
    count: u32,
}

fn launch<'a>(body: &Body<'a>) -> ApiResult<Launch<'a>> {
    let charge_type = body
        .str("InstanceChargeType")?
        .unwrap_or("POSTPAID_BY_HOUR");
    let prepaid = body.obj("InstanceChargePrepaid", "InstanceChargePrepaid")?;
    let (period, renew_flag) = match charge_type {
        "POSTPAID_BY_HOUR" => (None, "NOTIFY_AND_MANUAL_RENEW"),
        "PREPAID" => {
            let p = prepaid.ok_or_else(|| ApiError::missing("InstanceChargePrepaid"))?;
            let period = p
                .int("Period")?
                .ok_or_else(|| ApiError::missing("InstanceChargePrepaid.Period"))?;
            if !PERIODS.contains(&period) {
                return Err(ApiError::new(
                    "InvalidPeriod",
                    format!("The period {period} is not one of {PERIODS:?} months."),
                ));
            }
            let renew = p.str("RenewFlag")?.unwrap_or("NOTIFY_AND_MANUAL_RENEW");
            if !RENEW_FLAGS.contains(&renew) {
                return Err(ApiError::invalid_value(
                    "InstanceChargePrepaid.RenewFlag",
                    renew,
                ));
            }
            (u32::try_from(period).ok(), renew)
        }
        other => return Err(ApiError::invalid_value("InstanceChargeType", other)),
    };
    let disk = body.obj("SystemDisk", "SystemDisk")?;
    let disk_type = match disk {
        Some(d) => d.str("DiskType")?.unwrap_or("CLOUD_PREMIUM"),
        None => "CLOUD_PREMIUM",
    };
    if !DISK_TYPES.contains(&disk_type) {
        return Err(ApiError::invalid_value("SystemDisk.DiskType", disk_type));
    }
    let disk_gib = match disk {
        Some(d) => d.int("DiskSize")?.unwrap_or(50),
        None => 50,
    };
    if !(20..=2048).contains(&disk_gib) {
        return Err(ApiError::new(
            "InvalidParameterValue.Range",
            format!("SystemDisk.DiskSize {disk_gib} is out of range [20, 2048]."),
        ));
    }
    let internet = body.obj("InternetAccessible", "InternetAccessible")?;
    let default_internet = if charge_type == "PREPAID" {
        "BANDWIDTH_PREPAID"
    } else {
        "BANDWIDTH_POSTPAID_BY_HOUR"
    };
    let (internet_charge_type, bandwidth, assigned) = match internet {
        Some(n) => (
            n.str("InternetChargeType")?.unwrap_or(default_internet),
            n.int("InternetMaxBandwidthOut")?.unwrap_or(0),
            n.bool("PublicIpAssigned")?,
        ),
        None => (default_internet, 0, None),
    };
    if !INTERNET_CHARGE_TYPES.contains(&internet_charge_type) {
        return Err(ApiError::invalid_value(
            "InternetAccessible.InternetChargeType",
            internet_charge_type,
        ));
    }
    if !(0..=100).contains(&bandwidth) {
        return Err(ApiError::new(
            "InvalidParameterValue.Range",
            format!(
                "InternetAccessible.InternetMaxBandwidthOut {bandwidth} is out of range [0, 100]."
            ),
        ));
    }
    // A public IP needs bandwidth; with bandwidth it is assigned unless refused.
    let public_ip_assigned = assigned.unwrap_or(bandwidth > 0);
    if public_ip_assigned && bandwidth == 0 {
        return Err(ApiError::new(
            "InvalidParameterCombination",
            "A public IP cannot be assigned with an outbound bandwidth of 0.",
        ));
    }
    let count = body.int("InstanceCount")?.unwrap_or(1);
    if !(1..=100).contains(&count) {
        return Err(ApiError::new(
            "InvalidParameterValue.Range",
            format!("InstanceCount {count} is out of range [1, 100]."),
        ));
    }
    Ok(Launch {
        charge_type,
        period,
        renew_flag,
        disk_type,
        disk_gib: u32::try_from(disk_gib).unwrap_or(50),
        internet_charge_type,
        bandwidth_out: u32::try_from(bandwidth).unwrap_or(0),
        public_ip_assigned,
        count: u32::try_from(count).unwrap_or(1),
    })
}

fn run_instances(
    state: &EmulatorState,
    region: &str,
    body: &Body,
    now: Instant,
) -> ApiResult<Value> {
    let placement = body
        .obj("Placement", "Placement")?
        .ok_or_else(|| ApiError::missing("Placement"))?;
    let zone = placement.req_str("Zone")?;
    if !zone_of_region(zone, region) {
        return Err(ApiError::new(
            "InvalidZone.MismatchRegion",
            format!("The zone `{zone}` does not exist in {region}."),
        ));
    }
    if placement.int("ProjectId")?.is_some_and(|p| p != 0) {
        return Err(ApiError::invalid_value("Placement.ProjectId", "not 0"));
    }
    let instance_type = body.req_str("InstanceType")?;
    let image_id = body.req_str("ImageId")?;
    let launch = launch(body)?;
    let vpc = body
        .obj("VirtualPrivateCloud", "VirtualPrivateCloud")?
        .ok_or_else(|| ApiError::missing("VirtualPrivateCloud"))?;
    let (vpc_id, subnet_id) = (vpc.req_str("VpcId")?, vpc.req_str("SubnetId")?);
    let groups: Vec<String> = body
        .strs("SecurityGroupIds")?
        .into_iter()
        .map(String::from)
        .collect();
    if groups.is_empty() {
        // The cloud would use the project's default group; the emulator has none.
        return Err(ApiError::missing("SecurityGroupIds"));
    }
    let name = body.str("InstanceName")?.unwrap_or_default();
    if name.chars().count() > 128 {
        return Err(ApiError::new(
            "InvalidInstanceName.TooLong",
            "InstanceName is longer than 128 characters.",
        ));
    }
    let (password_set, key_ids) = match body.obj("LoginSettings", "LoginSettings")? {
        None => (false, Vec::new()),
        Some(l) => {
            let password = l.str("Password")?.filter(|p| !p.is_empty());
            let keys: Vec<String> = l.strs("KeyIds")?.into_iter().map(String::from).collect();
            if password.is_some() && !keys.is_empty() {
                return Err(ApiError::new(
                    "InvalidParameterCombination",
                    "LoginSettings takes a Password or KeyIds, not both.",
                ));
            }
            // The value is never echoed, logged or kept.
            if password.is_some_and(|p| !(8..=30).contains(&p.chars().count())) {
                return Err(ApiError::new(
                    "InvalidPassword",
                    "The password must be 8 to 30 characters long.",
                ));
            }
            (password.is_some(), keys)
        }
    };
    let mut tags = Tags::new();
    for spec in body.objs("TagSpecification", "TagSpecification")? {
        let kind = spec.req_str("ResourceType")?;
        if kind == "instance" {
            tags.extend(spec.tags("Tags")?);
        }
    }
    let min = body.int("MinCount")?.unwrap_or(0);
    let idem = client_token(body, "RunInstances")?;
    let dry_run = body.bool("DryRun")?.unwrap_or(false);
    let req = RunInstances {
        region: region.to_string(),
        zone: Some(zone.to_string()),
        instance_type: instance_type.to_string(),
        image_id: image_id.to_string(),
        subnet_id: subnet_id.to_string(),
        security_group_ids: groups,
        name: name.to_string(),
        description: String::new(),
        charge_type: launch.charge_type.to_string(),
        internet_charge_type: launch.internet_charge_type.to_string(),
        bandwidth_out: launch.bandwidth_out,
        disk_category: launch.disk_type.to_string(),
        disk_gib: launch.disk_gib,
        password_set,
        key_pair_name: key_ids.first().cloned(),
        tags,
        amount: launch.count,
        min_amount: u32::try_from(min).unwrap_or(0),
        dry_run,
    };
    state.with_model_mut(|m| {
        // The network as CVM checks it, with CVM's codes.
        let vpc = m
            .vpcs
            .get(vpc_id)
            .filter(|v| v.realm == REALM.name && v.region == region)
            .ok_or_else(|| ApiError::not_found(Kind::Vpc, vpc_id, Service::Cvm))?;
        let subnet = m
            .subnets
            .get(subnet_id)
            .filter(|s| s.realm == REALM.name && s.region == region)
            .ok_or_else(|| ApiError::not_found(Kind::Subnet, subnet_id, Service::Cvm))?;
        if subnet.vpc_id != vpc.id {
            return Err(ApiError::new(
                "InvalidParameterValue.VpcIdSubnetIdNotMatch",
                format!("The subnet `{subnet_id}` is not in the VPC `{vpc_id}`."),
            ));
        }
        if subnet.zone != zone {
            return Err(ApiError::new(
                "InvalidParameterValue.SubnetIdZoneIdNotMatch",
                format!("The subnet `{subnet_id}` is not in the zone `{zone}`."),
            ));
        }
        for g in &req.security_group_ids {
            if !m
                .security_groups
                .get(g)
                .is_some_and(|s| s.realm == REALM.name && s.region == region)
            {
                return Err(ApiError::not_found(Kind::SecurityGroup, g, Service::Cvm));
            }
        }
        let ids = m
            .in_realm(REALM, |m| m.run_instances(req, idem.as_ref(), now))
            .map_err(|e| ApiError::from_model(e, Service::Cvm))?;
        if dry_run {
            return Ok(json!({}));
        }
        let mut front = state.tencent();
        for id in &ids {
            if front.instances.contains_key(id) || !m.instances.contains_key(id) {
                continue; // a replay
            }
            if !launch.public_ip_assigned
                && let Some(i) = m.instances.get_mut(id)
            {
                i.public_ip = None;
            }
            front.instances.insert(
                id.clone(),
                InstanceExtra {
                    period: launch.period,
                    renew_flag: launch.renew_flag.to_string(),
                    public_ip_assigned: launch.public_ip_assigned,
                    key_ids: key_ids.clone(),
                },
            );
        }
        Ok(json!({ "InstanceIdSet": ids }))
    })
}

/// POSTPAID instances go at once; PREPAID ones go to the recycle bin (SHUTDOWN), and a second
/// TerminateInstances destroys them. A PENDING instance cannot be terminated yet.
fn terminate_instances(
    state: &EmulatorState,
    region: &str,
    body: &Body,
    now: Instant,
) -> ApiResult<Value> {
    let ids = instance_ids(body)?;
    let release_address = body.bool("ReleaseAddress")?.unwrap_or(false);
    state.with_model_mut(|m| {
        let mut front = state.tencent();
        for id in &ids {
            let state = instance_state(m, &front, instance(m, region, id)?, now);
            if state == "PENDING" {
                return Err(ApiError::new(
                    instance_state_code(state),
                    format!("The instance `{id}` is still being created."),
                ));
            }
        }
        for id in &ids {
            let prepaid = m
                .instances
                .get(*id)
                .is_some_and(|i| i.charge_type == "PREPAID");
            if prepaid && !front.recycled.contains(*id) {
                if m.instances
                    .get(*id)
                    .is_some_and(|i| m.instance_status(i, now) != InstanceStatus::Stopped)
                {
                    m.stop_instance(region, id, now)
                        .map_err(|e| ApiError::from_model(e, Service::Cvm))?;
                }
                front.recycled.insert((*id).to_string());
                continue;
            }
            let eip = m.instances.get(*id).and_then(|i| i.eip_id.clone());
            m.delete_instances(region, &[(*id).to_string()], true, now)
                .map_err(|e| ApiError::from_model(e, Service::Cvm))?;
            front.forget_instance(id);
            if let (true, Some(eip)) = (release_address, eip) {
                let _ = m.release_eip(region, &eip);
                front.eips.remove(&eip);
            }
        }
        Ok(json!({}))
    })
}

fn inquiry_price(m: &Model, region: &str, body: &Body) -> ApiResult<Value> {
    if let Some(p) = body.obj("Placement", "Placement")?
        && let Some(zone) = p.str("Zone")?
        && !zone_of_region(zone, region)
    {
        return Err(ApiError::new(
            "InvalidZone.MismatchRegion",
            format!("The zone `{zone}` does not exist in {region}."),
        ));
    }
    let instance_type = body.req_str("InstanceType")?;
    let launch = launch(body)?;
    let prices = &m.prices;
    let count = f64::from(launch.count);
    let hourly = prices
        .instance_hourly(instance_type)
        .map_err(|e| ApiError::from_model(e, Service::Cvm))?
        + prices.disk_gib_hourly * f64::from(launch.disk_gib);
    let bandwidth_hourly = prices.bandwidth_mbps_hourly * f64::from(launch.bandwidth_out);
    let by_traffic = launch.internet_charge_type == "TRAFFIC_POSTPAID_BY_HOUR";
    let (instance, bandwidth) = match launch.period {
        None => {
            let unit = round_cents(hourly * count);
            let instance = json!({"UnitPrice": unit, "UnitPriceDiscount": unit, "Discount": 100.0, "ChargeUnit": "HOUR"});
            let bandwidth = if launch.bandwidth_out == 0 {
                Value::Null
            } else if by_traffic {
                json!({"UnitPrice": TRAFFIC_GB_PRICE, "UnitPriceDiscount": TRAFFIC_GB_PRICE, "Discount": 100.0, "ChargeUnit": "GB"})
            } else {
                let unit = round_cents(bandwidth_hourly * count);
                json!({"UnitPrice": unit, "UnitPriceDiscount": unit, "Discount": 100.0, "ChargeUnit": "HOUR"})
            };
            (instance, bandwidth)
        }
        Some(months) => {
            let hours = 720.0 * f64::from(months) * count;
            let total = round_cents(hourly * hours);
            let instance =
                json!({"OriginalPrice": total, "DiscountPrice": total, "Discount": 100.0});
            let bandwidth = if launch.bandwidth_out == 0 {
                Value::Null
            } else if by_traffic {
                json!({"UnitPrice": TRAFFIC_GB_PRICE, "UnitPriceDiscount": TRAFFIC_GB_PRICE, "Discount": 100.0, "ChargeUnit": "GB"})
            } else {
                let total = round_cents(bandwidth_hourly * hours);
                json!({"OriginalPrice": total, "DiscountPrice": total, "Discount": 100.0})
            };
            (instance, bandwidth)
        }
    };
    Ok(json!({"Price": {"InstancePrice": instance, "BandwidthPrice": bandwidth}}))
}

/// Charge types DescribeZoneInstanceConfigInfos answers for (one item each when not filtered).
const QUOTA_CHARGE_TYPES: &[&str] = &["POSTPAID_BY_HOUR", "PREPAID"];
/// Below this many instances left a type's stock is `UnderStock`.
const UNDER_STOCK: u32 = 10;

/// DescribeZoneInstanceConfigInfos: an `InstanceTypeQuotaSet` item per (zone, charge type) where
/// the `instance-type` (required here; the cloud also lists every type) is offered, `SELL` or,
/// with no stock, `SOLD_OUT`. Filters: `zone`, `instance-type`, `instance-family`,
/// `instance-charge-type` (the model's stock does not depend on it), `sort-keys` (ignored).
fn zone_instance_configs(m: &Model, region: &str, body: &Body) -> ApiResult<Value> {
    let (mut zones, mut types, mut families, mut charges) = (None, None, None, None);
    for f in body.filters()? {
        let slot = match f.name.as_str() {
            "zone" => &mut zones,
            "instance-type" => &mut types,
            "instance-family" => &mut families,
            "instance-charge-type" => &mut charges,
            "sort-keys" => continue,
            _ => return Err(bad_filter(&f.name, FILTER_CODE)),
        };
        *slot = Some(f.values);
    }
    let Some(types) = types.filter(|t| !t.is_empty()) else {
        return Err(ApiError::invalid(
            "The emulator needs the `instance-type` filter of DescribeZoneInstanceConfigInfos.",
        ));
    };
    let charges: Vec<String> = match charges {
        Some(list) => {
            if let Some(bad) = list
                .iter()
                .find(|c| !QUOTA_CHARGE_TYPES.contains(&c.as_str()))
            {
                return Err(ApiError::invalid_value("instance-charge-type", bad));
            }
            list
        }
        None => QUOTA_CHARGE_TYPES.iter().map(|c| c.to_string()).collect(),
    };
    let mut set = Vec::new();
    for instance_type in &types {
        let family = instance_type.split('.').next().unwrap_or_default();
        if families
            .as_ref()
            .is_some_and(|f| !f.iter().any(|x| x == family))
        {
            continue;
        }
        let (cpu, memory) = type_size(instance_type);
        let hourly = m.prices.instance_hourly(instance_type).unwrap_or(0.0);
        for stock in m
            .zone_stock(REALM, region, None, instance_type)
            .map_err(|e| ApiError::from_model(e, Service::Cvm))?
        {
            if zones.as_ref().is_some_and(|z| !z.contains(&stock.zone)) {
                continue;
            }
            let (status, category) = match stock.available {
                Some(0) => ("SOLD_OUT", "WithoutStock"),
                Some(n) if n < UNDER_STOCK => ("SELL", "UnderStock"),
                _ => ("SELL", "EnoughStock"),
            };
            for charge in &charges {
                let price = if charge == "PREPAID" {
                    let month = round_cents(hourly * 720.0);
                    json!({"OriginalPrice": month, "DiscountPrice": month, "Discount": 100.0})
                } else {
                    let unit = round_cents(hourly);
                    json!({"UnitPrice": unit, "UnitPriceDiscount": unit, "Discount": 100.0, "ChargeUnit": "HOUR"})
                };
                set.push(json!({
                    "Zone": stock.zone, "InstanceType": instance_type, "InstanceChargeType": charge,
                    "NetworkCard": 0, "Externals": {}, "Cpu": cpu, "Memory": memory,
                    "InstanceFamily": family, "TypeName": family, "LocalDiskTypeList": [],
                    "Status": status, "Price": price,
                    "SoldOutReason": if status == "SOLD_OUT" { "Sold out in this zone." } else { "" },
                    "InstanceBandwidth": 1.5, "InstancePps": 30, "StorageBlockAmount": 0,
                    "CpuType": "", "Gpu": 0, "Fpga": 0, "Remark": "", "GpuCount": 0.0,
                    "Frequency": "", "StatusCategory": category,
                }));
            }
        }
    }
    Ok(json!({"InstanceTypeQuotaSet": set}))
}

/// Cores and GiB of a CVM type name (`S5.MEDIUM8`: 2 cores, 8 GiB; `GT4.4XLARGE96`: 16, 96),
/// zero when the name does not tell.
pub(super) fn type_size(instance_type: &str) -> (u32, u32) {
    let size = instance_type.split('.').nth(1).unwrap_or_default();
    let (name, memory) = match size.rfind(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&size[..=i], size[i + 1..].parse().unwrap_or(0)),
        None => ("", 0),
    };
    let cpu = match name {
        "SMALL" => 1,
        "MEDIUM" => 2,
        "LARGE" => 4,
        _ => name
            .strip_suffix("XLARGE")
            .and_then(|n| {
                if n.is_empty() {
                    Some(1)
                } else {
                    n.parse().ok()
                }
            })
            .map_or(0, |n| n * 4),
    };
    (cpu, memory)
}
