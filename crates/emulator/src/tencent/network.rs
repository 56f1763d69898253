//! VPC API actions: VPCs, subnets, (regional) security groups and their policies, EIPs with
//! their asynchronous tasks.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

use super::request::{
    Filter, bad_filter, filter_tag_keys, ids_or_filters, page, paged, tag_filter,
};
use super::*;
use crate::model::{
    AllocateEip, CreateSecurityGroup, CreateSubnet, CreateVpc, Eip, Model, Rule, RuleSpec,
    SecurityGroup, Subnet, Vpc,
};

const FILTER_CODE: &str = "InvalidParameter.FilterInvalidKey";
const COEXIST_CODE: &str = "InvalidParameter.Coexist";

pub(super) fn dispatch(
    state: &EmulatorState,
    call: &Call,
    body: &Body,
    now: Instant,
) -> ApiResult<Value> {
    let region = call.region()?;
    let model_err = |e: ModelError| ApiError::from_model(e, Service::Vpc);
    match call.action.as_str() {
        "CreateVpc" => create_vpc(state, region, body),
        "DescribeVpcs" => state.with_model(|m| describe_vpcs(m, region, body, now)),
        "DeleteVpc" => {
            let id = body.req_str("VpcId")?;
            state.with_model_mut(|m| delete_vpc(m, region, id))?;
            Ok(json!({}))
        }
        "CreateSubnet" => create_subnet(state, region, body),
        "DescribeSubnets" => state.with_model(|m| describe_subnets(m, region, body, now)),
        "DeleteSubnet" => {
            let id = body.req_str("SubnetId")?;
            state.with_model_mut(|m| {
                mine(m.subnets.get(id).map(|s| s.realm), Kind::Subnet, id)?;
                m.delete_subnet(region, id).map_err(model_err)
            })?;
            Ok(json!({}))
        }
        "CreateSecurityGroup" => create_security_group(state, region, body),
        "DescribeSecurityGroups" => {
            state.with_model(|m| describe_security_groups(m, region, body, now))
        }
        "DeleteSecurityGroup" => {
            let id = body.req_str("SecurityGroupId")?;
            state.with_model_mut(|m| {
                group(m, region, id)?;
                m.delete_security_group(region, id).map_err(model_err)
            })?;
            Ok(json!({}))
        }
        "CreateSecurityGroupPolicies" => create_policies(state, region, body),
        "DeleteSecurityGroupPolicies" => delete_policies(state, region, body),
        "DescribeSecurityGroupPolicies" => state.with_model(|m| {
            let g = group(m, region, body.req_str("SecurityGroupId")?)?;
            if !m.visible(&g.id, now) {
                return Err(ApiError::not_found(
                    Kind::SecurityGroup,
                    &g.id,
                    Service::Vpc,
                ));
            }
            Ok(json!({ "SecurityGroupPolicySet": policy_set(g) }))
        }),
        "AllocateAddresses" => allocate_addresses(state, region, body),
        "AssociateAddress" => associate_address(state, region, body, now),
        "DisassociateAddress" => disassociate_address(state, region, body, now),
        "ReleaseAddresses" => release_addresses(state, region, body, now),
        "ModifyAddressesBandwidth" => {
            let ids = required_ids(body, "AddressIds")?;
            let bandwidth = body
                .int("InternetMaxBandwidthOut")?
                .ok_or_else(|| ApiError::missing("InternetMaxBandwidthOut"))?;
            let bandwidth = u32::try_from(bandwidth).map_err(|_| {
                ApiError::invalid_value("InternetMaxBandwidthOut", &bandwidth.to_string())
            })?;
            state.with_model_mut(|m| {
                for id in &ids {
                    address(m, region, id)?;
                }
                for id in &ids {
                    m.modify_eip(region, id, Some(bandwidth), None, None)
                        .map_err(|e| match e {
                            ModelError::Invalid(msg) => {
                                ApiError::new("InvalidParameterValue.BandwidthOutOfRange", msg)
                            }
                            other => model_err(other),
                        })?;
                }
                Ok::<_, ApiError>(())
            })?;
            let task = state.tencent().task(state.task_delay());
            Ok(json!({ "TaskId": task }))
        }
        "DescribeAddresses" => {
            let m = state.model_read();
            let front = state.tencent();
            describe_addresses(&m, &front, region, body, now)
        }
        "DescribeTaskResult" => {
            if body.has("DealName") && !body.has("TaskId") {
                return Err(ApiError::invalid_value(
                    "DealName",
                    body.str("DealName")?.unwrap_or_default(),
                ));
            }
            let id = body
                .int("TaskId")?
                .ok_or_else(|| ApiError::missing("TaskId"))?;
            let front = state.tencent();
            let task = u64::try_from(id)
                .ok()
                .and_then(|id| front.tasks.get(&id))
                .ok_or_else(|| {
                    ApiError::new("ResourceNotFound", format!("The task {id} does not exist."))
                })?;
            let result = if now < task.done_at {
                "RUNNING"
            } else {
                "SUCCESS"
            };
            Ok(json!({"TaskId": id, "Result": result}))
        }
        _ => Err(ApiError::new(
            "InvalidAction",
            format!("The action `{}` is not emulated.", call.action),
        )),
    }
}

/// Refuses a resource of another realm as if it did not exist.
fn mine(realm: Option<&'static str>, kind: Kind, id: &str) -> ApiResult<()> {
    match realm {
        Some(r) if r == REALM.name => Ok(()),
        _ => Err(ApiError::not_found(kind, id, Service::Vpc)),
    }
}

fn vpc<'m>(m: &'m Model, region: &str, id: &str) -> ApiResult<&'m Vpc> {
    m.vpcs
        .get(id)
        .filter(|v| v.realm == REALM.name && v.region == region)
        .ok_or_else(|| ApiError::not_found(Kind::Vpc, id, Service::Vpc))
}

fn group<'m>(m: &'m Model, region: &str, id: &str) -> ApiResult<&'m SecurityGroup> {
    m.security_groups
        .get(id)
        .filter(|g| g.realm == REALM.name && g.region == region)
        .ok_or_else(|| ApiError::not_found(Kind::SecurityGroup, id, Service::Vpc))
}

fn address<'m>(m: &'m Model, region: &str, id: &str) -> ApiResult<&'m Eip> {
    m.eips
        .get(id)
        .filter(|e| e.realm == REALM.name && e.region == region)
        .ok_or_else(|| ApiError::not_found(Kind::Eip, id, Service::Vpc))
}

/// A required, non-empty list of ids (at most 100).
fn required_ids<'a>(body: &Body<'a>, field: &str) -> ApiResult<Vec<&'a str>> {
    let ids = body.strs(field)?;
    if ids.is_empty() {
        return Err(ApiError::missing(field));
    }
    if ids.len() > 100 {
        return Err(ApiError::new(
            "InvalidParameterValue.LimitExceeded",
            format!("At most 100 values of `{field}` are allowed."),
        ));
    }
    Ok(ids)
}

/// Whether a resource passes common filters: tags, and `check` for the rest (`None`: unknown).
fn passes(
    tags: &Tags,
    filters: &[Filter],
    check: impl Fn(&Filter) -> Option<bool>,
) -> ApiResult<bool> {
    for f in filters {
        let ok = match tag_filter(tags, f).or_else(|| check(f)) {
            Some(ok) => ok,
            None => return Err(bad_filter(&f.name, FILTER_CODE)),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn any_of(f: &Filter, value: &str) -> bool {
    f.values.iter().any(|v| v == value)
}

// ---- VPCs ----

fn private_cidr(cidr: &Ipv4Net) -> bool {
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
        .iter()
        .filter_map(|r| r.parse::<Ipv4Net>().ok())
        .any(|r| r.contains(cidr))
}

fn vpc_json(m: &Model, v: &Vpc) -> Value {
    let _ = m;
    json!({
        "VpcName": v.name, "VpcId": v.id, "CidrBlock": v.cidr_block, "IsDefault": false,
        "EnableMulticast": false, "CreatedTime": time_vpc(v.created), "DnsServerSet": [],
        "DomainName": "", "DhcpOptionsId": "", "EnableDhcp": true, "Ipv6CidrBlock": "",
        "TagSet": tag_set(&v.tags), "AssistantCidrSet": [], "Ipv6CidrBlockSet": [],
    })
}

fn create_vpc(state: &EmulatorState, region: &str, body: &Body) -> ApiResult<Value> {
    let name = body.req_str("VpcName")?;
    let cidr = body.req_str("CidrBlock")?;
    let net: Ipv4Net = cidr.parse().map_err(|_| {
        ApiError::new(
            "InvalidParameterValue.Malformed",
            format!("Invalid CidrBlock `{cidr}`."),
        )
    })?;
    if !private_cidr(&net) || !(12..=28).contains(&net.prefix_len()) {
        return Err(ApiError::new(
            "InvalidParameterValue.Range",
            format!(
                "CidrBlock `{cidr}` must lie in 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 with a mask of 12 to 28."
            ),
        ));
    }
    let req = CreateVpc {
        region: region.to_string(),
        cidr_block: cidr.to_string(),
        name: name.to_string(),
        description: String::new(),
        tags: body.tags("Tags")?,
    };
    state.with_model_mut(|m| {
        let id = m
            .in_realm(REALM, |m| m.create_vpc(req, None))
            .map_err(|e| ApiError::from_model(e, Service::Vpc))?;
        Ok(json!({ "Vpc": vpc_json(m, &m.vpcs[&id]) }))
    })
}

/// Deletes a VPC and its (empty) subnets; refused while an instance holds an IP in it.
fn delete_vpc(m: &mut Model, region: &str, id: &str) -> ApiResult<()> {
    vpc(m, region, id)?;
    if let Some(i) = m.instances.values().find(|i| i.vpc_id == id) {
        return Err(ApiError::new(
            "ResourceInUse",
            format!("The VPC `{id}` still holds the instance `{}`.", i.id),
        ));
    }
    let subnets: Vec<String> = m
        .subnets
        .values()
        .filter(|s| s.vpc_id == id)
        .map(|s| s.id.clone())
        .collect();
    for s in subnets {
        m.delete_subnet(region, &s)
            .map_err(|e| ApiError::from_model(e, Service::Vpc))?;
    }
    m.delete_vpc(region, id)
        .map_err(|e| ApiError::from_model(e, Service::Vpc))
}

fn describe_vpcs(m: &Model, region: &str, body: &Body, now: Instant) -> ApiResult<Value> {
    let (ids, filters) = ids_or_filters(body, "VpcIds", COEXIST_CODE)?;
    let (offset, limit) = page(body, true, false)?;
    let lag_keys = filter_tag_keys(&filters);
    let mut list = Vec::new();
    for v in m.list_vpcs(region).filter(|v| v.realm == REALM.name) {
        if (!ids.is_empty() && !ids.contains(&v.id.as_str()))
            || !m.visible_match(&v.id, &v.tags, &lag_keys, now)
        {
            continue;
        }
        let ok = passes(&v.tags, &filters, |f| match f.name.as_str() {
            "vpc-name" => Some(f.values.iter().any(|n| v.name.contains(n.as_str()))),
            "vpc-id" => Some(any_of(f, &v.id)),
            "cidr-block" => Some(any_of(f, &v.cidr_block)),
            "is-default" => Some(any_of(f, "false")),
            _ => None,
        })?;
        if ok {
            list.push(v);
        }
    }
    let (page, total) = paged(list, offset, limit);
    let set: Vec<Value> = page.iter().map(|v| vpc_json(m, v)).collect();
    Ok(json!({"TotalCount": total, "VpcSet": set}))
}

// ---- Subnets ----

fn subnet_json(m: &Model, s: &Subnet) -> Value {
    let table = m
        .vpcs
        .get(&s.vpc_id)
        .map(|v| v.route_table_id.clone())
        .unwrap_or_default();
    let total = s
        .cidr_block
        .parse::<Ipv4Net>()
        .map(|n| (1u64 << (32 - n.prefix_len())).saturating_sub(3))
        .unwrap_or(0);
    json!({
        "VpcId": s.vpc_id, "SubnetId": s.id, "SubnetName": s.name, "CidrBlock": s.cidr_block,
        "IsDefault": false, "EnableBroadcast": false, "Zone": s.zone, "RouteTableId": table,
        "CreatedTime": time_vpc(s.created), "AvailableIpAddressCount": m.subnet_free_ips(s),
        "Ipv6CidrBlock": "", "NetworkAclId": "", "IsRemoteVpcSnat": false,
        "TotalIpAddressCount": total, "TagSet": tag_set(&s.tags), "CdcId": "", "IsCdcSubnet": 0,
    })
}

/// Whether `zone` is one of the region's (`<region>-<n>`).
pub(super) fn zone_of_region(zone: &str, region: &str) -> bool {
    zone.strip_prefix(region)
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| (1..=ZONES_PER_REGION).contains(&n))
}

fn create_subnet(state: &EmulatorState, region: &str, body: &Body) -> ApiResult<Value> {
    let vpc_id = body.req_str("VpcId")?;
    let name = body.req_str("SubnetName")?;
    let cidr = body.req_str("CidrBlock")?;
    let zone = body.req_str("Zone")?;
    if !zone_of_region(zone, region) {
        return Err(ApiError::new(
            "InvalidParameterValue.UnavailableZone",
            format!("The zone `{zone}` is not available in {region}."),
        ));
    }
    let req = CreateSubnet {
        region: region.to_string(),
        vpc_id: vpc_id.to_string(),
        zone: zone.to_string(),
        cidr_block: cidr.to_string(),
        name: name.to_string(),
        description: String::new(),
        tags: body.tags("Tags")?,
    };
    state.with_model_mut(|m| {
        vpc(m, region, vpc_id)?;
        let id = m
            .in_realm(REALM, |m| m.create_subnet(req, None))
            .map_err(|e| match e {
                ModelError::InvalidCidr(c) => ApiError::new(
                    "InvalidParameterValue.SubnetRange",
                    format!("The subnet CIDR `{c}` is invalid or outside the VPC."),
                ),
                other => ApiError::from_model(other, Service::Vpc),
            })?;
        Ok(json!({ "Subnet": subnet_json(m, &m.subnets[&id]) }))
    })
}

fn describe_subnets(m: &Model, region: &str, body: &Body, now: Instant) -> ApiResult<Value> {
    let (ids, filters) = ids_or_filters(body, "SubnetIds", COEXIST_CODE)?;
    let (offset, limit) = page(body, true, false)?;
    let lag_keys = filter_tag_keys(&filters);
    let mut list = Vec::new();
    for s in m
        .subnets
        .values()
        .filter(|s| s.realm == REALM.name && s.region == region)
    {
        if (!ids.is_empty() && !ids.contains(&s.id.as_str()))
            || !m.visible_match(&s.id, &s.tags, &lag_keys, now)
        {
            continue;
        }
        let ok = passes(&s.tags, &filters, |f| match f.name.as_str() {
            "subnet-id" => Some(any_of(f, &s.id)),
            "vpc-id" => Some(any_of(f, &s.vpc_id)),
            "cidr-block" => Some(any_of(f, &s.cidr_block)),
            "is-default" => Some(any_of(f, "false")),
            "subnet-name" => Some(any_of(f, &s.name)),
            "zone" => Some(any_of(f, &s.zone)),
            _ => None,
        })?;
        if ok {
            list.push(s);
        }
    }
    let (page, total) = paged(list, offset, limit);
    let set: Vec<Value> = page.iter().map(|s| subnet_json(m, s)).collect();
    Ok(json!({"TotalCount": total, "SubnetSet": set}))
}

// ---- Security groups ----

fn group_json(g: &SecurityGroup) -> Value {
    json!({
        "SecurityGroupId": g.id, "SecurityGroupName": g.name, "SecurityGroupDesc": g.description,
        "ProjectId": "0", "IsDefault": false, "CreatedTime": time_vpc(g.created),
        "UpdateTime": time_vpc(g.created), "TagSet": tag_set(&g.tags),
    })
}

/// Security groups are regional on Tencent Cloud: no VPC.
fn create_security_group(state: &EmulatorState, region: &str, body: &Body) -> ApiResult<Value> {
    let req = CreateSecurityGroup {
        region: region.to_string(),
        vpc_id: String::new(),
        name: body.req_str("GroupName")?.to_string(),
        description: body.req_str("GroupDescription")?.to_string(),
        tags: body.tags("Tags")?,
    };
    if let Some(p) = body.str("ProjectId")?
        && p != "0"
    {
        return Err(ApiError::invalid_value("ProjectId", p));
    }
    state.with_model_mut(|m| {
        let id = m
            .in_realm(REALM, |m| m.create_security_group(req, None))
            .map_err(|e| ApiError::from_model(e, Service::Vpc))?;
        Ok(json!({ "SecurityGroup": group_json(&m.security_groups[&id]) }))
    })
}

fn describe_security_groups(
    m: &Model,
    region: &str,
    body: &Body,
    now: Instant,
) -> ApiResult<Value> {
    let (ids, filters) = ids_or_filters(body, "SecurityGroupIds", COEXIST_CODE)?;
    let (offset, limit) = page(body, true, false)?;
    let lag_keys = filter_tag_keys(&filters);
    let mut list = Vec::new();
    for g in m
        .security_groups
        .values()
        .filter(|g| g.realm == REALM.name && g.region == region)
    {
        if (!ids.is_empty() && !ids.contains(&g.id.as_str()))
            || !m.visible_match(&g.id, &g.tags, &lag_keys, now)
        {
            continue;
        }
        let ok = passes(&g.tags, &filters, |f| match f.name.as_str() {
            "security-group-id" => Some(any_of(f, &g.id)),
            "security-group-name" => Some(any_of(f, &g.name)),
            "project-id" => Some(any_of(f, "0")),
            _ => None,
        })?;
        if ok {
            list.push(g);
        }
    }
    let (page, total) = paged(list, offset, limit);
    let set: Vec<Value> = page.iter().map(|g| group_json(g)).collect();
    Ok(json!({"TotalCount": total, "SecurityGroupSet": set}))
}

/// The model's port range (`22/22`, `80/90`, `-1/-1`) as Tencent's `Port` (`22`, `80-90`, `ALL`).
fn port_wire(range: &str) -> String {
    match range.split_once('/') {
        Some(("-1", "-1")) => "ALL".to_string(),
        Some((a, b)) if a == b => a.to_string(),
        Some((a, b)) => format!("{a}-{b}"),
        None => range.to_string(),
    }
}

fn policy_json(index: usize, r: &Rule) -> Value {
    json!({
        "PolicyIndex": index, "Protocol": r.protocol.to_ascii_uppercase(), "Port": port_wire(&r.port_range),
        "CidrBlock": r.source_cidr, "Ipv6CidrBlock": "", "SecurityGroupId": "",
        "AddressTemplate": {"AddressId": "", "AddressGroupId": ""},
        "ServiceTemplate": {"ServiceId": "", "ServiceGroupId": ""},
        "Action": r.policy.to_ascii_uppercase(), "PolicyDescription": r.description,
        "ModifyTime": time_vpc(r.created), "Priority": index + 1,
    })
}

fn policy_set(g: &SecurityGroup) -> Value {
    let ingress: Vec<Value> = g
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| policy_json(i, r))
        .collect();
    json!({
        "Version": g.rules_version.to_string(), "Ingress": ingress, "Egress": [],
        "PolicyStatistics": {
            "IngressIPv4TotalCount": g.rules.len(), "IngressIPv6TotalCount": 0,
            "EgressIPv4TotalCount": 0, "EgressIPv6TotalCount": 0,
        },
    })
}

/// A `Port` value: `ALL`, a port, a range `a-b` or a list `a,b`; the model's port range.
fn port_range(port: &str) -> Option<String> {
    let port = port.trim();
    if port.eq_ignore_ascii_case("all") {
        return Some("-1/-1".to_string());
    }
    let valid = |p: &str| p.parse::<u16>().is_ok_and(|p| p >= 1);
    if let Some((a, b)) = port.split_once('-') {
        let ok = valid(a) && valid(b) && a.parse::<u16>().ok() <= b.parse::<u16>().ok();
        return ok.then(|| format!("{a}/{b}"));
    }
    if port.contains(',') {
        return port.split(',').all(valid).then(|| port.to_string());
    }
    valid(port).then(|| format!("{port}/{port}"))
}

/// A policy of a `SecurityGroupPolicySet.Ingress` list as the model's rule.
fn policy_spec(p: &Body) -> ApiResult<RuleSpec> {
    for unsupported in [
        "Ipv6CidrBlock",
        "SecurityGroupId",
        "AddressTemplate",
        "ServiceTemplate",
    ] {
        if p.str(unsupported)
            .ok()
            .flatten()
            .is_some_and(|s| !s.is_empty())
            || matches!(p.obj(unsupported, unsupported), Ok(Some(_)))
        {
            return Err(ApiError::invalid_value(
                unsupported,
                "not emulated (use Protocol, Port and CidrBlock)",
            ));
        }
    }
    let protocol = p.req_str("Protocol")?.to_ascii_lowercase();
    if !matches!(protocol.as_str(), "tcp" | "udp" | "icmp" | "icmpv6" | "all") {
        return Err(ApiError::invalid_value("Protocol", &protocol));
    }
    let port = match p.str("Port")?.filter(|s| !s.is_empty()) {
        Some(port) => port,
        None if matches!(protocol.as_str(), "tcp" | "udp") => {
            return Err(ApiError::missing("Port"));
        }
        None => "ALL",
    };
    let port_range = port_range(port).ok_or_else(|| ApiError::invalid_value("Port", port))?;
    let cidr = p.req_str("CidrBlock")?;
    let parsed = cidr
        .parse::<IpNet>()
        .ok()
        .or_else(|| cidr.parse::<IpAddr>().ok().map(IpNet::from))
        .ok_or_else(|| ApiError::invalid_value("CidrBlock", cidr))?;
    // `0.0.0.0/n` means everything, as the cloud maps it.
    let source_cidr = if parsed.addr().is_unspecified() {
        "0.0.0.0/0".to_string()
    } else {
        cidr.to_string()
    };
    let action = p.req_str("Action")?.to_ascii_lowercase();
    if action != "accept" && action != "drop" {
        return Err(ApiError::invalid_value("Action", &action));
    }
    Ok(RuleSpec {
        protocol,
        port_range,
        source_cidr,
        policy: action,
        priority: 1,
        description: p.str("PolicyDescription")?.unwrap_or_default().to_string(),
    })
}

/// The policy set of a policies call, checked against the group's current `Version`.
fn policy_request<'a>(body: &Body<'a>, g: &SecurityGroup) -> ApiResult<Vec<Body<'a>>> {
    let set = body
        .obj("SecurityGroupPolicySet", "SecurityGroupPolicySet")?
        .ok_or_else(|| ApiError::missing("SecurityGroupPolicySet"))?;
    if let Some(version) = set.str("Version")?.filter(|v| !v.is_empty())
        && version != g.rules_version.to_string()
    {
        // VPC errorcodes.py: "the policy version differs from the current latest version".
        return Err(ApiError::new(
            "UnsupportedOperation.VersionMismatch",
            format!(
                "SecurityGroupPolicySet.Version {version} is not the current version {}",
                g.rules_version
            ),
        ));
    }
    if !set
        .objs("Egress", "SecurityGroupPolicySet.Egress")?
        .is_empty()
    {
        return Err(ApiError::invalid_value(
            "SecurityGroupPolicySet.Egress",
            "egress policies are not emulated",
        ));
    }
    let ingress = set.objs("Ingress", "SecurityGroupPolicySet.Ingress")?;
    if ingress.is_empty() {
        return Err(ApiError::missing("SecurityGroupPolicySet.Ingress"));
    }
    Ok(ingress)
}

fn same_policy(r: &Rule, s: &RuleSpec) -> bool {
    r.protocol == s.protocol
        && r.port_range == s.port_range
        && r.source_cidr == s.source_cidr
        && r.policy == s.policy
}

fn create_policies(state: &EmulatorState, region: &str, body: &Body) -> ApiResult<Value> {
    let id = body.req_str("SecurityGroupId")?;
    state.with_model_mut(|m| {
        let g = group(m, region, id)?;
        let mut specs: Vec<RuleSpec> = Vec::new();
        for p in policy_request(body, g)? {
            let spec = policy_spec(&p)?;
            let duplicate = g.rules.iter().any(|r| same_policy(r, &spec))
                || specs.iter().any(|s| {
                    s.protocol == spec.protocol
                        && s.port_range == spec.port_range
                        && s.source_cidr == spec.source_cidr
                        && s.policy == spec.policy
                });
            if duplicate {
                return Err(ApiError::new(
                    "UnsupportedOperation.DuplicatePolicy",
                    format!(
                        "The policy {} {} from {} already exists in {id}.",
                        spec.protocol.to_ascii_uppercase(),
                        port_wire(&spec.port_range),
                        spec.source_cidr
                    ),
                ));
            }
            specs.push(spec);
        }
        m.in_realm(REALM, |m| m.authorize(region, id, specs))
            .map_err(|e| ApiError::from_model(e, Service::Vpc))?;
        Ok(json!({}))
    })
}

/// Deletes by `PolicyIndex` (all given) or by content (Protocol, Port, CidrBlock, Action).
fn delete_policies(state: &EmulatorState, region: &str, body: &Body) -> ApiResult<Value> {
    let id = body.req_str("SecurityGroupId")?;
    state.with_model_mut(|m| {
        let g = group(m, region, id)?;
        let mut rule_ids = Vec::new();
        for p in policy_request(body, g)? {
            let rule = match p.int("PolicyIndex")? {
                Some(index) => usize::try_from(index).ok().and_then(|i| g.rules.get(i)),
                None => {
                    let spec = policy_spec(&p)?;
                    g.rules.iter().find(|r| same_policy(r, &spec))
                }
            };
            let rule = rule.ok_or_else(|| {
                ApiError::new(
                    "InvalidParameterValue.Range",
                    format!("A policy to delete does not exist in {id}."),
                )
            })?;
            rule_ids.push(rule.id.clone());
        }
        m.revoke(region, id, &[], &rule_ids)
            .map_err(|e| ApiError::from_model(e, Service::Vpc))?;
        Ok(json!({}))
    })
}

// ---- EIPs ----

/// `AddressStatus` at `now`: a transition in progress, else BIND or UNBIND.
fn address_status(e: &Eip, front: &FrontState, now: Instant) -> &'static str {
    front
        .eip_transition(&e.id, now)
        .unwrap_or(if e.instance_id.is_some() {
            "BIND"
        } else {
            "UNBIND"
        })
}

fn address_json(m: &Model, front: &FrontState, e: &Eip, now: Instant) -> Value {
    let status = address_status(e, front, now);
    let ip = if status == "CREATING" {
        String::new()
    } else {
        e.ip.to_string()
    };
    let private = e
        .instance_id
        .as_ref()
        .and_then(|i| m.instances.get(i))
        .map(|i| i.private_ip.to_string());
    json!({
        "AddressId": e.id, "AddressName": e.name, "AddressStatus": status, "AddressIp": ip,
        "InstanceId": e.instance_id, "CreatedTime": time_cvm(e.created),
        "NetworkInterfaceId": null, "PrivateAddressIp": private, "IsArrears": false,
        "IsBlocked": false, "IsEipDirectConnection": false, "AddressType": "EIP",
        "CascadeRelease": false, "InternetServiceProvider": "BGP", "LocalBgp": false,
        "Bandwidth": e.bandwidth, "InternetChargeType": e.internet_charge_type,
        "TagSet": tag_set(&e.tags),
        "InstanceType": if e.instance_id.is_some() { Value::from("CVM") } else { Value::Null },
    })
}

const ADDRESS_CHARGE_TYPES: &[&str] = &[
    "TRAFFIC_POSTPAID_BY_HOUR",
    "BANDWIDTH_POSTPAID_BY_HOUR",
    "BANDWIDTH_PACKAGE",
    "BANDWIDTH_PREPAID_BY_MONTH",
];

fn allocate_addresses(state: &EmulatorState, region: &str, body: &Body) -> ApiResult<Value> {
    let count = body.int("AddressCount")?.unwrap_or(1);
    if !(1..=100).contains(&count) {
        return Err(ApiError::new(
            "InvalidParameterValue.Range",
            format!("AddressCount {count} is out of range."),
        ));
    }
    let charge = body
        .str("InternetChargeType")?
        .unwrap_or("TRAFFIC_POSTPAID_BY_HOUR");
    if !ADDRESS_CHARGE_TYPES.contains(&charge) {
        return Err(ApiError::invalid_value("InternetChargeType", charge));
    }
    let bandwidth = body.int("InternetMaxBandwidthOut")?.unwrap_or(1);
    let bandwidth = u32::try_from(bandwidth)
        .ok()
        .filter(|b| (1..=500).contains(b))
        .ok_or_else(|| {
            ApiError::new(
                "InvalidParameterValue.BandwidthOutOfRange",
                format!("InternetMaxBandwidthOut {bandwidth} is out of range."),
            )
        })?;
    if let Some(t) = body.str("AddressType")?
        && t != "EIP"
    {
        return Err(ApiError::invalid_value("AddressType", t));
    }
    let token = client_token(body, "AllocateAddresses")?;
    let tags = body.tags("Tags")?;
    let name = body.str("AddressName")?.unwrap_or_default().to_string();
    let delay = state.task_delay();
    state.with_model_mut(|m| {
        let mut front = state.tencent();
        if let Some(ids) = token
            .as_ref()
            .and_then(|t| front.allocate_tokens.get(&t.token))
        {
            let ids = ids.clone();
            let task = front.task(Duration::ZERO);
            return Ok(json!({"AddressSet": ids, "TaskId": task}));
        }
        let mut ids = Vec::new();
        for _ in 0..count {
            let req = AllocateEip {
                region: region.to_string(),
                bandwidth,
                internet_charge_type: charge.to_string(),
                name: name.clone(),
                description: String::new(),
                tags: tags.clone(),
            };
            match m.in_realm(REALM, |m| m.allocate_eip(req, None)) {
                Ok(id) => ids.push(id),
                Err(e) => {
                    // All or nothing.
                    for id in &ids {
                        let _ = m.release_eip(region, id);
                    }
                    return Err(ApiError::from_model(e, Service::Vpc));
                }
            }
        }
        for id in &ids {
            front.transition(id, "CREATING", delay);
        }
        if let Some(t) = token {
            front.allocate_tokens.insert(t.token, ids.clone());
        }
        let task = front.task(delay);
        Ok(json!({"AddressSet": ids, "TaskId": task}))
    })
}

fn wrong_address_state(id: &str, status: &str, wanted: &str) -> ApiError {
    ApiError::new(
        "InvalidAddressState",
        format!("The EIP `{id}` is {status}; the operation needs {wanted}."),
    )
}

fn associate_address(
    state: &EmulatorState,
    region: &str,
    body: &Body,
    now: Instant,
) -> ApiResult<Value> {
    let id = body.req_str("AddressId")?;
    if body
        .str("NetworkInterfaceId")?
        .is_some_and(|s| !s.is_empty())
    {
        return Err(ApiError::invalid_value(
            "NetworkInterfaceId",
            "binding to an ENI is not emulated",
        ));
    }
    let instance_id = body.req_str("InstanceId")?;
    let delay = state.task_delay();
    state.with_model_mut(|m| {
        let mut front = state.tencent();
        let e = address(m, region, id)?;
        let status = address_status(e, &front, now);
        if status != "UNBIND" {
            return Err(wrong_address_state(id, status, "UNBIND"));
        }
        let i = m
            .instances
            .get(instance_id)
            .filter(|i| i.realm == REALM.name && i.region == region)
            .ok_or_else(|| ApiError::not_found(Kind::Instance, instance_id, Service::Vpc))?;
        if i.eip_id.is_some() {
            return Err(ApiError::new(
                "InvalidInstanceId.AlreadyBindEip",
                format!("The instance `{instance_id}` is already bound to an EIP."),
            ));
        }
        if i.public_ip.is_some() {
            return Err(ApiError::new(
                "InvalidParameterValue.InstanceHasWanIP",
                format!("The instance `{instance_id}` already has a normal public IP."),
            ));
        }
        if front.recycled.contains(instance_id) {
            return Err(ApiError::new(
                "InvalidParameterValue.InvalidInstanceState",
                format!("The instance `{instance_id}` is SHUTDOWN."),
            ));
        }
        m.associate_eip(region, id, instance_id, now)
            .map_err(|e| match e {
                ModelError::InstanceStatus { message, .. } => {
                    ApiError::new("InvalidParameterValue.InvalidInstanceState", message)
                }
                other => ApiError::from_model(other, Service::Vpc),
            })?;
        front.transition(id, "BINDING", delay);
        Ok(json!({ "TaskId": front.task(delay) }))
    })
}

fn disassociate_address(
    state: &EmulatorState,
    region: &str,
    body: &Body,
    now: Instant,
) -> ApiResult<Value> {
    let id = body.req_str("AddressId")?;
    let delay = state.task_delay();
    state.with_model_mut(|m| {
        let mut front = state.tencent();
        let status = address_status(address(m, region, id)?, &front, now);
        if status != "BIND" {
            return Err(wrong_address_state(id, status, "BIND"));
        }
        m.unassociate_eip(region, id, None)
            .map_err(|e| ApiError::from_model(e, Service::Vpc))?;
        front.transition(id, "UNBINDING", delay);
        Ok(json!({ "TaskId": front.task(delay) }))
    })
}

fn release_addresses(
    state: &EmulatorState,
    region: &str,
    body: &Body,
    now: Instant,
) -> ApiResult<Value> {
    let ids = required_ids(body, "AddressIds")?;
    let delay = state.task_delay();
    state.with_model_mut(|m| {
        let mut front = state.tencent();
        for id in &ids {
            let status = address_status(address(m, region, id)?, &front, now);
            if status != "UNBIND" {
                return Err(wrong_address_state(id, status, "UNBIND"));
            }
        }
        for id in &ids {
            m.release_eip(region, id)
                .map_err(|e| ApiError::from_model(e, Service::Vpc))?;
            front.eips.remove(*id);
        }
        Ok(json!({ "TaskId": front.task(delay) }))
    })
}

fn describe_addresses(
    m: &Model,
    front: &FrontState,
    region: &str,
    body: &Body,
    now: Instant,
) -> ApiResult<Value> {
    let ids = body.strs("AddressIds")?;
    let filters = body.filters()?;
    if !ids.is_empty() && filters.iter().any(|f| f.name == "address-id") {
        return Err(ApiError::new(
            COEXIST_CODE,
            "The parameters `AddressIds` and `Filters.address-id` cannot be specified at the same time.",
        ));
    }
    if ids.len() > 100 {
        return Err(ApiError::new(
            "InvalidParameterValue.LimitExceeded",
            "At most 100 values of `AddressIds` are allowed.",
        ));
    }
    let (offset, limit) = page(body, false, false)?;
    let lag_keys = filter_tag_keys(&filters);
    let mut list = Vec::new();
    for e in m
        .eips
        .values()
        .filter(|e| e.realm == REALM.name && e.region == region)
    {
        if (!ids.is_empty() && !ids.contains(&e.id.as_str()))
            || !m.visible_match(&e.id, &e.tags, &lag_keys, now)
        {
            continue;
        }
        let status = address_status(e, front, now);
        let private = e
            .instance_id
            .as_ref()
            .and_then(|i| m.instances.get(i))
            .map(|i| i.private_ip.to_string());
        let ok = passes(&e.tags, &filters, |f| match f.name.as_str() {
            "address-id" => Some(any_of(f, &e.id)),
            "address-name" => Some(f.values.first().is_some_and(|n| *n == e.name)),
            "address-ip" => Some(any_of(f, &e.ip.to_string())),
            "address-status" => Some(any_of(f, status)),
            "instance-id" => Some(e.instance_id.as_deref().is_some_and(|i| any_of(f, i))),
            "private-ip-address" => Some(private.as_deref().is_some_and(|p| any_of(f, p))),
            "address-type" => Some(any_of(f, "EIP")),
            "instance-type" => Some(e.instance_id.is_some() && any_of(f, "CVM")),
            "is-arrears" => Some(any_of(f, "FALSE")),
            "address-isp" => Some(any_of(f, "BGP")),
            _ => None,
        })?;
        if ok {
            list.push(e);
        }
    }
    let (page, total) = paged(list, offset, limit);
    let set: Vec<Value> = page
        .iter()
        .map(|e| address_json(m, front, e, now))
        .collect();
    Ok(json!({"TotalCount": total, "AddressSet": set}))
}
