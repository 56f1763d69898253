//! VPC API actions (VPCs, VSwitches, EIPs' tags) and the ECS security-group actions.

use super::*;

pub(super) fn describe_regions(state: &EmulatorState, version: &str) -> ApiResult<Value> {
    let service = if version == ECS_VERSION { "ecs" } else { "vpc" };
    let regions: Vec<String> = state.with_model(|m| m.settings.regions.clone());
    let list: Vec<Value> = regions
        .iter()
        .map(|r| json!({"RegionId": r, "LocalName": r, "RegionEndpoint": format!("{service}.{r}.aliyuncs.com"), "Status": "available"}))
        .collect();
    Ok(json!({ "Regions": { "Region": list } }))
}

pub(super) fn create_vpc(state: &EmulatorState, p: &Params) -> ApiResult<Value> {
    let req = CreateVpc {
        region: p.region()?,
        cidr_block: p.get("CidrBlock").unwrap_or("172.16.0.0/12").to_string(),
        name: p.string("VpcName"),
        description: p.string("Description"),
        tags: p.tags()?,
    };
    if p.flag("DryRun") {
        // The parameters are checked (the policy was, before dispatch); nothing is created.
        req.cidr_block.parse::<ipnet::Ipv4Net>().map_err(|_| {
            ApiError::new(
                400,
                "InvalidCidrBlock.Malformed",
                "The CIDR block is malformed.",
            )
        })?;
        return Err(dry_run());
    }
    let idem = p.idem("CreateVpc")?;
    let (id, router, table) = state.with_model_mut(|m| -> ApiResult<_> {
        let id = m.create_vpc(req, idem.as_ref())?;
        let vpc = &m.vpcs[&id];
        Ok((id, vpc.router_id.clone(), vpc.route_table_id.clone()))
    })?;
    Ok(
        json!({"VpcId": id, "VRouterId": router, "RouteTableId": table, "ResourceGroupId": "rg-emulator"}),
    )
}

pub(super) fn describe_vpcs(m: &Model, p: &Params) -> ApiResult<Value> {
    let region = p.region()?;
    let ids = p.comma_list("VpcId");
    if ids.len() > 20 {
        return Err(ApiError::invalid("VpcId", "more than 20 ids"));
    }
    let name = p.get("VpcName");
    let tags = p.tag_filters();
    let now = Instant::now();
    let vpcs: Vec<_> = m
        .list_vpcs(&region)
        .filter(|v| ids.is_empty() || ids.contains(&v.id))
        .filter(|v| name.is_none_or(|n| v.name == n))
        .filter(|v| m.visible_match(&v.id, &v.tags, &tags, now))
        .collect();
    let (page, total, number, size) = paginate(vpcs, p, 50)?;
    let list: Vec<Value> = page
        .iter()
        .map(|v| {
            let vswitches: Vec<&str> = m.subnets.values().filter(|s| s.vpc_id == v.id).map(|s| s.id.as_str()).collect();
            json!({
                "VpcId": v.id, "RegionId": v.region, "Status": "Available", "VpcName": v.name,
                "Description": v.description, "CidrBlock": v.cidr_block, "VRouterId": v.router_id,
                "CreationTime": time_vpc(v.created), "IsDefault": false, "ResourceGroupId": "rg-emulator",
                "VSwitchIds": {"VSwitchId": vswitches}, "UserCidrs": {"UserCidr": []},
                "SecondaryCidrBlocks": {"SecondaryCidrBlock": []}, "Tags": vpc_tags(&v.tags),
            })
        })
        .collect();
    Ok(json!({"Vpcs": {"Vpc": list}, "TotalCount": total, "PageNumber": number, "PageSize": size}))
}

pub(super) fn create_vswitch(state: &EmulatorState, p: &Params) -> ApiResult<Value> {
    let req = CreateSubnet {
        region: p.region()?,
        vpc_id: p.req("VpcId")?.to_string(),
        zone: p.req("ZoneId")?.to_string(),
        cidr_block: p.req("CidrBlock")?.to_string(),
        name: p.string("VSwitchName"),
        description: p.string("Description"),
        tags: p.tags()?,
    };
    let idem = p.idem("CreateVSwitch")?;
    let id = state.with_model_mut(|m| m.create_subnet(req, idem.as_ref()))?;
    Ok(json!({"VSwitchId": id}))
}

pub(super) fn describe_vswitches(m: &Model, p: &Params) -> ApiResult<Value> {
    let region = p.region()?;
    let ids = p.comma_list("VSwitchId");
    let (vpc, zone, name) = (p.get("VpcId"), p.get("ZoneId"), p.get("VSwitchName"));
    let tags = p.tag_filters();
    let now = Instant::now();
    let list: Vec<_> = m
        .subnets
        .values()
        .filter(|s| s.region == region)
        .filter(|s| ids.is_empty() || ids.contains(&s.id))
        .filter(|s| vpc.is_none_or(|v| s.vpc_id == v) && zone.is_none_or(|z| s.zone == z))
        .filter(|s| name.is_none_or(|n| s.name == n))
        .filter(|s| m.visible_match(&s.id, &s.tags, &tags, now))
        .collect();
    let (page, total, number, size) = paginate(list, p, 50)?;
    let list: Vec<Value> = page
        .iter()
        .map(|s| {
            let table = m.vpcs.get(&s.vpc_id).map(|v| v.route_table_id.clone()).unwrap_or_default();
            json!({
                "VSwitchId": s.id, "VpcId": s.vpc_id, "Status": "Available", "CidrBlock": s.cidr_block,
                "ZoneId": s.zone, "AvailableIpAddressCount": m.subnet_free_ips(s), "VSwitchName": s.name,
                "Description": s.description, "CreationTime": time_vpc(s.created), "IsDefault": false,
                "ResourceGroupId": "rg-emulator", "RouteTable": {"RouteTableId": table, "RouteTableType": "System"},
                "Tags": vpc_tags(&s.tags),
            })
        })
        .collect();
    Ok(
        json!({"VSwitches": {"VSwitch": list}, "TotalCount": total, "PageNumber": number, "PageSize": size}),
    )
}

pub(super) fn create_security_group(state: &EmulatorState, p: &Params) -> ApiResult<Value> {
    let kind = p.get("SecurityGroupType").unwrap_or("normal");
    if kind != "normal" && kind != "enterprise" {
        return Err(ApiError::invalid("SecurityGroupType", kind));
    }
    let req = CreateSecurityGroup {
        region: p.region()?,
        vpc_id: p.req("VpcId")?.to_string(),
        name: p.string("SecurityGroupName"),
        description: p.string("Description"),
        tags: p.tags()?,
    };
    let idem = p.idem("CreateSecurityGroup")?;
    let id = state.with_model_mut(|m| m.create_security_group(req, idem.as_ref()))?;
    Ok(json!({"SecurityGroupId": id}))
}

pub(super) fn describe_security_groups(m: &Model, p: &Params) -> ApiResult<Value> {
    let region = p.region()?;
    let mut ids = p.json_list("SecurityGroupIds")?;
    ids.extend(p.get("SecurityGroupId").map(String::from));
    if ids.len() > 100 {
        return Err(ApiError::invalid("SecurityGroupIds", "more than 100 ids"));
    }
    let (vpc, name) = (p.get("VpcId"), p.get("SecurityGroupName"));
    let tags = p.tag_filters();
    let now = Instant::now();
    let list: Vec<_> = m
        .security_groups
        .values()
        .filter(|g| g.region == region)
        .filter(|g| ids.is_empty() || ids.contains(&g.id))
        .filter(|g| vpc.is_none_or(|v| g.vpc_id == v) && name.is_none_or(|n| g.name == n))
        .filter(|g| m.visible_match(&g.id, &g.tags, &tags, now))
        .collect();
    let (page, total, number, size) = paginate(list, p, 100)?;
    let list: Vec<Value> = page
        .iter()
        .map(|g| {
            json!({
                "SecurityGroupId": g.id, "SecurityGroupName": g.name, "Description": g.description,
                "VpcId": g.vpc_id, "SecurityGroupType": "normal", "CreationTime": time_vpc(g.created),
                "ResourceGroupId": "", "ServiceManaged": false, "RuleCount": g.rules.len(),
                "Tags": ecs_tags(&g.tags),
            })
        })
        .collect();
    Ok(json!({
        "SecurityGroups": {"SecurityGroup": list}, "TotalCount": total, "PageNumber": number,
        "PageSize": size, "RegionId": region, "NextToken": "",
    }))
}

/// Rules from `Permissions.N.*` or the older flat parameters.
pub(super) fn rule_specs(p: &Params) -> ApiResult<Vec<RuleSpec>> {
    let mut groups = p.groups("Permissions");
    if groups.is_empty() && p.get("IpProtocol").is_some() {
        groups.push(
            [
                "IpProtocol",
                "PortRange",
                "SourceCidrIp",
                "Policy",
                "Priority",
                "Description",
            ]
            .iter()
            .filter_map(|k| p.get(k).map(|v| ((*k).to_string(), v.to_string())))
            .collect(),
        );
    }
    groups
        .into_iter()
        .map(|g| {
            let field = |name: &str| g.iter().find(|(f, _)| f == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
            let protocol = field("IpProtocol").ok_or_else(|| ApiError::missing("IpProtocol"))?.to_ascii_lowercase();
            if !matches!(protocol.as_str(), "tcp" | "udp" | "icmp" | "icmpv6" | "gre" | "all") {
                return Err(ApiError::new(400, "InvalidIpProtocol.Malformed", format!("Unsupported IpProtocol {protocol}.")));
            }
            let port_range = match field("PortRange") {
                Some(r) => r.to_string(),
                None if matches!(protocol.as_str(), "tcp" | "udp") => return Err(ApiError::missing("PortRange")),
                None => "-1/-1".to_string(),
            };
            let valid_range = port_range == "-1/-1"
                || port_range.split_once('/').is_some_and(|(a, b)| {
                    matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if a >= 1 && a <= b)
                });
            if !valid_range {
                return Err(ApiError::new(400, "InvalidPortRange.Malformed", format!("Invalid PortRange {port_range}.")));
            }
            let source_cidr = field("SourceCidrIp").unwrap_or("0.0.0.0/0").to_string();
            if source_cidr.parse::<ipnet::IpNet>().is_err() && source_cidr.parse::<std::net::IpAddr>().is_err() {
                return Err(ApiError::invalid("SourceCidrIp", &source_cidr));
            }
            let policy = field("Policy").unwrap_or("accept").to_ascii_lowercase();
            if policy != "accept" && policy != "drop" {
                return Err(ApiError::invalid("Policy", &policy));
            }
            let priority = match field("Priority") {
                None => 1,
                Some(v) => v.parse::<u32>().ok().filter(|n| (1..=100).contains(n)).ok_or_else(|| ApiError::invalid("Priority", v))?,
            };
            Ok(RuleSpec {
                protocol,
                port_range,
                source_cidr,
                policy,
                priority,
                description: field("Description").unwrap_or_default().to_string(),
            })
        })
        .collect()
}

pub(super) fn describe_sg_attribute(m: &Model, p: &Params) -> ApiResult<Value> {
    let region = p.region()?;
    let g = m.read_security_group(p.req("SecurityGroupId")?, &region, Instant::now())?;
    let direction = p.get("Direction").unwrap_or("all");
    let rules: Vec<Value> = if direction == "egress" {
        Vec::new()
    } else {
        g.rules
            .iter()
            .map(|r| {
                json!({
                    "SecurityGroupRuleId": r.id, "Direction": "ingress", "IpProtocol": r.protocol.to_ascii_uppercase(),
                    "PortRange": r.port_range, "SourceCidrIp": r.source_cidr, "Ipv6SourceCidrIp": "",
                    "SourceGroupId": "", "SourcePortRange": "", "DestCidrIp": "", "DestGroupId": "",
                    "Policy": if r.policy == "accept" { "Accept" } else { "Drop" },
                    "Priority": r.priority.to_string(), "NicType": "intranet", "Description": r.description,
                    "CreateTime": time_vpc(r.created),
                })
            })
            .collect()
    };
    Ok(json!({
        "SecurityGroupId": g.id, "SecurityGroupName": g.name, "Description": g.description,
        "VpcId": g.vpc_id, "RegionId": g.region, "InnerAccessPolicy": "Accept",
        "Permissions": {"Permission": rules},
    }))
}
