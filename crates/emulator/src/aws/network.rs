//! EC2 networking: VPCs (with their main route table and `default` security group), subnets,
//! security groups and their ingress rules, internet gateways and routes.

use std::collections::BTreeSet;

use ipnet::Ipv4Net;

use super::request::{Filter, filter_tag_keys, page, passes};
use super::*;
use crate::model::{
    CreateSecurityGroup, CreateSubnet, CreateVpc, RuleSpec, SecurityGroup, Subnet, Vpc,
};

pub(super) fn dispatch(
    state: &EmulatorState,
    region: &str,
    action: &str,
    p: &Params,
    now: Instant,
) -> ApiResult<Xml> {
    match action {
        "CreateVpc" => create_vpc(state, region, p),
        "DescribeVpcs" => {
            let m = state.model_read();
            describe_vpcs(&m, region, p, now)
        }
        "DeleteVpc" => delete_vpc(state, region, p.req("VpcId")?),
        "CreateSubnet" => create_subnet(state, region, p),
        "DescribeSubnets" => {
            let m = state.model_read();
            describe_subnets(&m, region, p, now)
        }
        "DeleteSubnet" => {
            let id = p.req("SubnetId")?;
            state.with_model_mut(|m| {
                subnet(m, region, id)?;
                m.delete_subnet(region, id).map_err(ApiError::from_model)
            })?;
            Ok(returns_true())
        }
        "CreateSecurityGroup" => create_security_group(state, region, p),
        "DescribeSecurityGroups" => {
            let m = state.model_read();
            let f = state.aws();
            describe_security_groups(&m, &f, region, p, now)
        }
        "AuthorizeSecurityGroupIngress" => authorize_ingress(state, region, p),
        "RevokeSecurityGroupIngress" => revoke_ingress(state, region, p),
        "DeleteSecurityGroup" => delete_security_group(state, region, p),
        "CreateInternetGateway" => {
            let tags = p
                .tag_specs(&["internet-gateway"])?
                .remove("internet-gateway")
                .unwrap_or_default();
            let igw = InternetGateway {
                id: new_id("igw"),
                region: region.to_string(),
                vpc_id: None,
                tags,
            };
            let mut x = Xml::new();
            x.node("internetGateway", |x| igw_xml(x, &igw));
            state.aws().internet_gateways.insert(igw.id.clone(), igw);
            Ok(x)
        }
        "AttachInternetGateway" => attach_igw(state, region, p),
        "DetachInternetGateway" => detach_igw(state, region, p),
        "DeleteInternetGateway" => {
            let id = p.req("InternetGatewayId")?;
            let mut f = state.aws();
            let igw = igw(&f, region, id)?;
            if igw.vpc_id.is_some() {
                return Err(ApiError::bad(
                    "DependencyViolation",
                    format!("The internetGateway '{id}' has dependencies and cannot be deleted."),
                ));
            }
            f.internet_gateways.remove(id);
            Ok(returns_true())
        }
        "DescribeInternetGateways" => {
            let f = state.aws();
            describe_igws(&f, region, p)
        }
        "DescribeRouteTables" => {
            let m = state.model_read();
            let f = state.aws();
            describe_route_tables(&m, &f, region, p, now)
        }
        "CreateRoute" => create_route(state, region, p),
        "DeleteRoute" => {
            let table = p.req("RouteTableId")?;
            let destination = p.req("DestinationCidrBlock")?;
            let m = state.model_read();
            route_table_vpc(&m, region, table)?;
            let mut f = state.aws();
            let routes = f.routes.entry(table.to_string()).or_default();
            let before = routes.len();
            routes.retain(|r| r.destination != destination);
            if routes.len() == before {
                return Err(ApiError::bad(
                    "InvalidRoute.NotFound",
                    format!(
                        "no route with destination-cidr-block {destination} in route table {table}"
                    ),
                ));
            }
            Ok(returns_true())
        }
        _ => Err(ApiError::bad(
            "InvalidAction",
            format!("The action {action} is not valid for this web service."),
        )),
    }
}

// ---- Lookups (the AWS realm only) ----

pub(super) fn vpc<'m>(m: &'m Model, region: &str, id: &str) -> ApiResult<&'m Vpc> {
    m.vpcs
        .get(id)
        .filter(|v| v.realm == REALM.name && v.region == region)
        .ok_or_else(|| ApiError::not_found(Kind::Vpc, id))
}

pub(super) fn subnet<'m>(m: &'m Model, region: &str, id: &str) -> ApiResult<&'m Subnet> {
    m.subnets
        .get(id)
        .filter(|s| s.realm == REALM.name && s.region == region)
        .ok_or_else(|| ApiError::not_found(Kind::Subnet, id))
}

pub(super) fn group<'m>(m: &'m Model, region: &str, id: &str) -> ApiResult<&'m SecurityGroup> {
    m.security_groups
        .get(id)
        .filter(|g| g.realm == REALM.name && g.region == region)
        .ok_or_else(|| ApiError::not_found(Kind::SecurityGroup, id))
}

fn igw<'f>(f: &'f FrontState, region: &str, id: &str) -> ApiResult<&'f InternetGateway> {
    f.internet_gateways
        .get(id)
        .filter(|g| g.region == region)
        .ok_or_else(|| {
            ApiError::bad(
                "InvalidInternetGatewayID.NotFound",
                format!("The internetGateway ID '{id}' does not exist"),
            )
        })
}

/// The VPC whose (main) route table this is.
fn route_table_vpc<'m>(m: &'m Model, region: &str, id: &str) -> ApiResult<&'m Vpc> {
    m.vpcs
        .values()
        .find(|v| v.realm == REALM.name && v.region == region && v.route_table_id == id)
        .ok_or_else(|| {
            ApiError::bad(
                "InvalidRouteTableID.NotFound",
                format!("The routeTable ID '{id}' does not exist"),
            )
        })
}

/// The internet gateway attached to a VPC, if any.
pub(super) fn vpc_gateway<'f>(f: &'f FrontState, vpc_id: &str) -> Option<&'f InternetGateway> {
    f.internet_gateways
        .values()
        .find(|g| g.vpc_id.as_deref() == Some(vpc_id))
}

fn parse_cidr(name: &str, cidr: &str) -> ApiResult<Ipv4Net> {
    cidr.parse::<Ipv4Net>().map_err(|_| {
        ApiError::bad(
            "InvalidParameterValue",
            format!(
                "Value ({cidr}) for parameter {name} is invalid. This is not a valid CIDR block."
            ),
        )
    })
}

// ---- VPCs ----

fn vpc_xml(x: &mut Xml, v: &Vpc, state: &str) {
    x.leaf("vpcId", &v.id)
        .leaf("ownerId", ACCOUNT_ID)
        .leaf("state", state)
        .leaf("cidrBlock", &v.cidr_block)
        .set("cidrBlockAssociationSet", [v], |x, v| {
            x.leaf(
                "associationId",
                format!("vpc-cidr-assoc-{}", v.id.trim_start_matches("vpc-")),
            )
            .leaf("cidrBlock", &v.cidr_block)
            .node("cidrBlockState", |x| {
                x.leaf("state", "associated");
            });
        })
        .set(
            "ipv6CidrBlockAssociationSet",
            std::iter::empty::<()>(),
            |_, ()| {},
        )
        .leaf(
            "dhcpOptionsId",
            format!("dopt-{}", v.id.trim_start_matches("vpc-")),
        )
        .leaf("instanceTenancy", "default")
        .leaf("isDefault", "false")
        .tags(&v.tags);
}

fn create_vpc(state: &EmulatorState, region: &str, p: &Params) -> ApiResult<Xml> {
    let cidr_text = p.req("CidrBlock")?;
    let cidr = parse_cidr("cidrBlock", cidr_text)?;
    if !(16..=28).contains(&cidr.prefix_len()) || cidr.network() != cidr.addr() {
        return Err(ApiError::bad(
            "InvalidVpc.Range",
            format!("The CIDR '{cidr_text}' is invalid."),
        ));
    }
    if let Some(t) = p.get("InstanceTenancy").filter(|t| *t != "default") {
        return Err(ApiError::invalid_value("instanceTenancy", t));
    }
    let tags = p.tag_specs(&["vpc"])?.remove("vpc").unwrap_or_default();
    state.with_model_mut(|m| {
        let name = tags.get("Name").cloned().unwrap_or_default();
        let id = m
            .in_realm(REALM, |m| {
                m.create_vpc(
                    CreateVpc {
                        region: region.to_string(),
                        cidr_block: cidr.to_string(),
                        name,
                        description: String::new(),
                        tags,
                    },
                    None,
                )
            })
            .map_err(ApiError::from_model)?;
        let group = m.in_realm(REALM, |m| {
            m.create_security_group(
                CreateSecurityGroup {
                    region: region.to_string(),
                    vpc_id: id.clone(),
                    name: "default".into(),
                    description: "default VPC security group".into(),
                    tags: Tags::new(),
                },
                None,
            )
        });
        let group = match group {
            Ok(g) => g,
            Err(e) => {
                let _ = m.delete_vpc(region, &id);
                return Err(ApiError::from_model(e));
            }
        };
        state.aws().default_groups.insert(id.clone(), group);
        let v = vpc(m, region, &id)?;
        let mut x = Xml::new();
        x.node("vpc", |x| vpc_xml(x, v, "pending"));
        Ok(x)
    })
}

fn describe_vpcs(m: &Model, region: &str, p: &Params, now: Instant) -> ApiResult<Xml> {
    let ids = p.list("VpcId");
    let filters = p.filters()?;
    let lag = filter_tag_keys(&filters);
    for id in &ids {
        if !vpc(m, region, id).is_ok_and(|v| m.visible(&v.id, now)) {
            return Err(ApiError::not_found(Kind::Vpc, id));
        }
    }
    let mut list = Vec::new();
    for v in m
        .vpcs
        .values()
        .filter(|v| v.realm == REALM.name && v.region == region)
    {
        if (!ids.is_empty() && !ids.contains(&v.id)) || !m.visible_match(&v.id, &v.tags, &lag, now)
        {
            continue;
        }
        let ok = passes(&v.tags, &filters, |f| match f.name.as_str() {
            "vpc-id" => Some(f.matches(&v.id)),
            "cidr" | "cidr-block" | "cidrBlock" | "cidr-block-association.cidr-block" => {
                Some(f.matches(&v.cidr_block))
            }
            "state" => Some(f.matches("available")),
            "is-default" | "isDefault" => Some(f.matches("false")),
            "owner-id" => Some(f.matches(ACCOUNT_ID)),
            "instance-tenancy" => Some(f.matches("default")),
            _ => None,
        })?;
        if ok {
            list.push(v);
        }
    }
    let (list, next) = page(list, p, 5, 1000)?;
    let mut x = Xml::new();
    x.set("vpcSet", list, |x, v| vpc_xml(x, v, "available"));
    x.opt("nextToken", next);
    Ok(x)
}

fn delete_vpc(state: &EmulatorState, region: &str, id: &str) -> ApiResult<Xml> {
    state.with_model_mut(|m| {
        vpc(m, region, id)?;
        let mut f = state.aws();
        let default_group = f.default_groups.get(id).cloned();
        let dependent = m.subnets.values().any(|s| s.vpc_id == id)
            || m.security_groups
                .values()
                .any(|g| g.vpc_id == id && Some(&g.id) != default_group.as_ref())
            || vpc_gateway(&f, id).is_some();
        if dependent {
            return Err(ApiError::bad(
                "DependencyViolation",
                format!("The vpc '{id}' has dependencies and cannot be deleted."),
            ));
        }
        if let Some(g) = &default_group {
            m.delete_security_group(region, g)
                .map_err(ApiError::from_model)?;
        }
        let table = m.vpcs.get(id).map(|v| v.route_table_id.clone());
        m.delete_vpc(region, id).map_err(ApiError::from_model)?;
        f.default_groups.remove(id);
        if let Some(t) = table {
            f.routes.remove(&t);
            f.route_table_tags.remove(&t);
        }
        Ok(returns_true())
    })
}

// ---- Subnets ----

fn subnet_xml(m: &Model, x: &mut Xml, s: &Subnet) {
    x.leaf("subnetId", &s.id)
        .leaf(
            "subnetArn",
            format!("arn:aws:ec2:{}:{ACCOUNT_ID}:subnet/{}", s.region, s.id),
        )
        .leaf("state", "available")
        .leaf("vpcId", &s.vpc_id)
        .leaf("ownerId", ACCOUNT_ID)
        .leaf("cidrBlock", &s.cidr_block)
        .set(
            "ipv6CidrBlockAssociationSet",
            std::iter::empty::<()>(),
            |_, ()| {},
        )
        .leaf("availableIpAddressCount", m.subnet_free_ips(s))
        .leaf("availabilityZone", &s.zone)
        .leaf("availabilityZoneId", zone_id(&s.zone))
        .leaf("defaultForAz", "false")
        .leaf("mapPublicIpOnLaunch", "false")
        .leaf("mapCustomerOwnedIpOnLaunch", "false")
        .leaf("assignIpv6AddressOnCreation", "false")
        .leaf("enableDns64", "false")
        .leaf("ipv6Native", "false")
        .node("privateDnsNameOptionsOnLaunch", |x| {
            x.leaf("hostnameType", "ip-name")
                .leaf("enableResourceNameDnsARecord", "false")
                .leaf("enableResourceNameDnsAAAARecord", "false");
        })
        .tags(&s.tags);
}

fn create_subnet(state: &EmulatorState, region: &str, p: &Params) -> ApiResult<Xml> {
    let vpc_id = p.req("VpcId")?;
    let cidr_text = p.req("CidrBlock")?;
    let cidr = parse_cidr("cidrBlock", cidr_text)?;
    let zones = zones(region);
    let zone = match (p.get("AvailabilityZone"), p.get("AvailabilityZoneId")) {
        (Some(z), _) => z.to_string(),
        (None, Some(zid)) => zones
            .iter()
            .find(|z| zone_id(z) == zid)
            .cloned()
            .ok_or_else(|| ApiError::invalid_value("availabilityZoneId", zid))?,
        (None, None) => zones.first().cloned().unwrap_or_default(),
    };
    if !zones.contains(&zone) {
        return Err(ApiError::bad(
            "InvalidParameterValue",
            format!(
                "Value ({zone}) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: {}.",
                zones.join(", ")
            ),
        ));
    }
    let tags = p
        .tag_specs(&["subnet"])?
        .remove("subnet")
        .unwrap_or_default();
    state.with_model_mut(|m| {
        let v = vpc(m, region, vpc_id)?;
        let vpc_cidr: Ipv4Net = v
            .cidr_block
            .parse()
            .map_err(|_| ApiError::bad("InternalError", "corrupt VPC CIDR"))?;
        if !(16..=28).contains(&cidr.prefix_len())
            || cidr.network() != cidr.addr()
            || !vpc_cidr.contains(&cidr)
        {
            return Err(ApiError::bad(
                "InvalidSubnet.Range",
                format!("The CIDR '{cidr_text}' is invalid."),
            ));
        }
        let name = tags.get("Name").cloned().unwrap_or_default();
        let id = m
            .in_realm(REALM, |m| {
                m.create_subnet(
                    CreateSubnet {
                        region: region.to_string(),
                        vpc_id: vpc_id.to_string(),
                        zone,
                        cidr_block: cidr.to_string(),
                        name,
                        description: String::new(),
                        tags,
                    },
                    None,
                )
            })
            .map_err(ApiError::from_model)?;
        // AWS keeps five addresses of every subnet (the model four).
        m.reserve_subnet_hosts(region, &id, 1)
            .map_err(ApiError::from_model)?;
        let s = subnet(m, region, &id)?;
        let mut x = Xml::new();
        x.node("subnet", |x| subnet_xml(m, x, s));
        Ok(x)
    })
}

fn describe_subnets(m: &Model, region: &str, p: &Params, now: Instant) -> ApiResult<Xml> {
    let ids = p.list("SubnetId");
    let filters = p.filters()?;
    let lag = filter_tag_keys(&filters);
    for id in &ids {
        if !subnet(m, region, id).is_ok_and(|s| m.visible(&s.id, now)) {
            return Err(ApiError::not_found(Kind::Subnet, id));
        }
    }
    let mut list = Vec::new();
    for s in m
        .subnets
        .values()
        .filter(|s| s.realm == REALM.name && s.region == region)
    {
        if (!ids.is_empty() && !ids.contains(&s.id)) || !m.visible_match(&s.id, &s.tags, &lag, now)
        {
            continue;
        }
        let ok = passes(&s.tags, &filters, |f| match f.name.as_str() {
            "subnet-id" => Some(f.matches(&s.id)),
            "vpc-id" | "vpcId" => Some(f.matches(&s.vpc_id)),
            "availability-zone" | "availabilityZone" => Some(f.matches(&s.zone)),
            "availability-zone-id" => Some(f.matches(&zone_id(&s.zone))),
            "cidr" | "cidr-block" | "cidrBlock" => Some(f.matches(&s.cidr_block)),
            "state" => Some(f.matches("available")),
            "default-for-az" | "defaultForAz" => Some(f.matches("false")),
            "owner-id" => Some(f.matches(ACCOUNT_ID)),
            _ => None,
        })?;
        if ok {
            list.push(s);
        }
    }
    let (list, next) = page(list, p, 5, 1000)?;
    let mut x = Xml::new();
    x.set("subnetSet", list, |x, s| subnet_xml(m, x, s));
    x.opt("nextToken", next);
    Ok(x)
}

// ---- Security groups ----

/// The wire protocol of a model rule (`-1` for all).
fn wire_protocol(protocol: &str) -> &str {
    if protocol == "all" { "-1" } else { protocol }
}

/// `(from, to)` of a model port range (`-1/-1` for all).
fn ports(range: &str) -> (i64, i64) {
    let (a, b) = range.split_once('/').unwrap_or((range, range));
    (a.parse().unwrap_or(-1), b.parse().unwrap_or(-1))
}

fn permission_xml(x: &mut Xml, protocol: &str, port_range: &str, rules: &[&crate::model::Rule]) {
    x.leaf("ipProtocol", wire_protocol(protocol));
    if protocol != "all" {
        let (from, to) = ports(port_range);
        x.leaf("fromPort", from).leaf("toPort", to);
    }
    x.set(
        "groups",
        rules.iter().filter(|r| r.source_cidr.starts_with("sg-")),
        |x, r| {
            x.leaf("userId", ACCOUNT_ID).leaf("groupId", &r.source_cidr);
            if !r.description.is_empty() {
                x.leaf("description", &r.description);
            }
        },
    )
    .set(
        "ipRanges",
        rules.iter().filter(|r| !r.source_cidr.starts_with("sg-")),
        |x, r| {
            x.leaf("cidrIp", &r.source_cidr);
            if !r.description.is_empty() {
                x.leaf("description", &r.description);
            }
        },
    )
    .set("ipv6Ranges", std::iter::empty::<()>(), |_, ()| {})
    .set("prefixListIds", std::iter::empty::<()>(), |_, ()| {});
}

fn group_xml(x: &mut Xml, g: &SecurityGroup) {
    // Rules of the same protocol and ports are one permission, as EC2 lists them.
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for r in &g.rules {
        let key = (r.protocol.as_str(), r.port_range.as_str());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    x.leaf("ownerId", ACCOUNT_ID)
        .leaf("groupId", &g.id)
        .leaf("groupName", &g.name)
        .leaf("groupDescription", &g.description)
        .leaf("vpcId", &g.vpc_id)
        .leaf(
            "securityGroupArn",
            format!(
                "arn:aws:ec2:{}:{ACCOUNT_ID}:security-group/{}",
                g.region, g.id
            ),
        )
        .set("ipPermissions", keys, |x, (protocol, range)| {
            let rules: Vec<&crate::model::Rule> = g
                .rules
                .iter()
                .filter(|r| r.protocol == protocol && r.port_range == range)
                .collect();
            permission_xml(x, protocol, range, &rules);
        })
        .set("ipPermissionsEgress", [()], |x, ()| {
            // Every group carries the default allow-all egress rule.
            x.leaf("ipProtocol", "-1")
                .set("groups", std::iter::empty::<()>(), |_, ()| {})
                .set("ipRanges", ["0.0.0.0/0"], |x, c| {
                    x.leaf("cidrIp", c);
                })
                .set("ipv6Ranges", std::iter::empty::<()>(), |_, ()| {})
                .set("prefixListIds", std::iter::empty::<()>(), |_, ()| {});
        })
        .tags(&g.tags);
}

fn create_security_group(state: &EmulatorState, region: &str, p: &Params) -> ApiResult<Xml> {
    let name = p.req("GroupName")?;
    let description = p.req("GroupDescription")?;
    let Some(vpc_id) = p.get("VpcId").filter(|v| !v.is_empty()) else {
        return Err(ApiError::bad(
            "VPCIdNotSpecified",
            "No default VPC for this user",
        ));
    };
    if name.eq_ignore_ascii_case("default") {
        return Err(ApiError::bad(
            "InvalidParameterValue",
            "Cannot use reserved security group name: default",
        ));
    }
    if name.starts_with("sg-") {
        return Err(ApiError::bad(
            "InvalidParameterValue",
            "Group names may not be in the format sg-*",
        ));
    }
    if name.chars().count() > 255 || description.chars().count() > 255 {
        return Err(ApiError::bad(
            "InvalidParameterValue",
            "GroupName and GroupDescription are at most 255 characters long.",
        ));
    }
    let tags = p
        .tag_specs(&["security-group"])?
        .remove("security-group")
        .unwrap_or_default();
    state.with_model_mut(|m| {
        vpc(m, region, vpc_id)?;
        if m.security_groups
            .values()
            .any(|g| g.vpc_id == vpc_id && g.name == name)
        {
            return Err(ApiError::bad(
                "InvalidGroup.Duplicate",
                format!("The security group '{name}' already exists for VPC '{vpc_id}'"),
            ));
        }
        let id = m
            .in_realm(REALM, |m| {
                m.create_security_group(
                    CreateSecurityGroup {
                        region: region.to_string(),
                        vpc_id: vpc_id.to_string(),
                        name: name.to_string(),
                        description: description.to_string(),
                        tags: tags.clone(),
                    },
                    None,
                )
            })
            .map_err(ApiError::from_model)?;
        let mut x = Xml::new();
        x.leaf("return", "true")
            .leaf("groupId", &id)
            .tags(&tags)
            .leaf(
                "securityGroupArn",
                format!("arn:aws:ec2:{region}:{ACCOUNT_ID}:security-group/{id}"),
            );
        Ok(x)
    })
}

fn describe_security_groups(
    m: &Model,
    f: &FrontState,
    region: &str,
    p: &Params,
    now: Instant,
) -> ApiResult<Xml> {
    let ids = p.list("GroupId");
    let names = p.list("GroupName");
    let filters = p.filters()?;
    let lag = filter_tag_keys(&filters);
    let _ = f;
    for id in &ids {
        if m.read_security_group(id, region, now)
            .ok()
            .filter(|g| g.realm == REALM.name)
            .is_none()
        {
            return Err(ApiError::not_found(Kind::SecurityGroup, id));
        }
    }
    let mine = || {
        m.security_groups
            .values()
            .filter(|g| g.realm == REALM.name && g.region == region)
    };
    for name in &names {
        if !mine().any(|g| &g.name == name && m.visible(&g.id, now)) {
            return Err(ApiError::bad(
                "InvalidGroup.NotFound",
                format!("The security group '{name}' does not exist in default VPC 'none'"),
            ));
        }
    }
    let mut list = Vec::new();
    for g in mine() {
        if (!ids.is_empty() && !ids.contains(&g.id))
            || (!names.is_empty() && !names.contains(&g.name))
            || !m.visible_match(&g.id, &g.tags, &lag, now)
        {
            continue;
        }
        let ok = passes(&g.tags, &filters, |f| match f.name.as_str() {
            "group-id" => Some(f.matches(&g.id)),
            "group-name" => Some(f.matches(&g.name)),
            "vpc-id" => Some(f.matches(&g.vpc_id)),
            "description" => Some(f.matches(&g.description)),
            "owner-id" => Some(f.matches(ACCOUNT_ID)),
            "ip-permission.protocol" => Some(
                g.rules
                    .iter()
                    .any(|r| f.matches(wire_protocol(&r.protocol))),
            ),
            "ip-permission.from-port" => Some(
                g.rules
                    .iter()
                    .any(|r| f.matches(&ports(&r.port_range).0.to_string())),
            ),
            "ip-permission.to-port" => Some(
                g.rules
                    .iter()
                    .any(|r| f.matches(&ports(&r.port_range).1.to_string())),
            ),
            "ip-permission.cidr" => Some(g.rules.iter().any(|r| f.matches(&r.source_cidr))),
            "ip-permission.group-id" => Some(g.rules.iter().any(|r| f.matches(&r.source_cidr))),
            _ => None,
        })?;
        if ok {
            list.push(g);
        }
    }
    let (list, next) = page(list, p, 5, 1000)?;
    let mut x = Xml::new();
    x.set("securityGroupInfo", list, group_xml);
    x.opt("nextToken", next);
    Ok(x)
}

/// `IpPermissions.N` (and the legacy top-level `IpProtocol`/`FromPort`/`ToPort`/`CidrIp`) as
/// model rules, one per source.
fn permissions(m: &Model, region: &str, p: &Params) -> ApiResult<Vec<RuleSpec>> {
    let mut perms = p.groups("IpPermissions");
    if p.get("IpProtocol").is_some() {
        let mut legacy = Params::default();
        for name in ["IpProtocol", "FromPort", "ToPort"] {
            if let Some(v) = p.get(name) {
                legacy.0.insert(name.to_string(), v.to_string());
            }
        }
        if let Some(cidr) = p.get("CidrIp") {
            legacy
                .0
                .insert("IpRanges.1.CidrIp".to_string(), cidr.to_string());
        }
        perms.push(legacy);
    }
    if perms.is_empty() {
        return Err(ApiError::missing("IpPermissions"));
    }
    let mut specs = Vec::new();
    for perm in perms {
        let raw = perm.req("IpProtocol")?;
        let protocol = match raw.to_ascii_lowercase().as_str() {
            "tcp" | "6" => "tcp",
            "udp" | "17" => "udp",
            "icmp" | "1" => "icmp",
            "-1" | "all" => "all",
            _ => {
                return Err(ApiError::bad(
                    "InvalidParameterValue",
                    format!("Invalid value '{raw}' for IP protocol. Unknown protocol."),
                ));
            }
        };
        let port_range = match protocol {
            "all" => "-1/-1".to_string(),
            _ => {
                let (from, to) = (perm.int("FromPort")?, perm.int("ToPort")?);
                let (Some(from), Some(to)) = (from, to) else {
                    return Err(ApiError::bad(
                        "InvalidParameterValue",
                        format!(
                            "Invalid value 'Must specify both from and to ports with {}.' for portRange",
                            protocol.to_ascii_uppercase()
                        ),
                    ));
                };
                let valid = if protocol == "icmp" {
                    (-1..=255).contains(&from) && (-1..=255).contains(&to)
                } else {
                    (0..=65535).contains(&from) && (0..=65535).contains(&to) && from <= to
                };
                if !valid {
                    return Err(ApiError::bad(
                        "InvalidParameterValue",
                        format!("Invalid value '{from}-{to}' for portRange."),
                    ));
                }
                format!("{from}/{to}")
            }
        };
        if !perm.sub("Ipv6Ranges").is_empty() || !perm.sub("PrefixListIds").is_empty() {
            return Err(ApiError::bad(
                "InvalidParameterValue",
                "The emulator takes IPv4 ranges and security groups as sources, not IPv6 ranges or prefix lists.",
            ));
        }
        let mut sources: Vec<(String, String)> = Vec::new();
        for r in perm.groups("IpRanges") {
            let cidr = r.req("CidrIp")?;
            if cidr.parse::<Ipv4Net>().is_err() {
                return Err(ApiError::bad(
                    "InvalidParameterValue",
                    format!("CIDR block {cidr} is malformed"),
                ));
            }
            sources.push((
                cidr.to_string(),
                r.get("Description").unwrap_or_default().to_string(),
            ));
        }
        for g in perm.groups("Groups") {
            let id = g.req("GroupId")?;
            group(m, region, id)?;
            sources.push((
                id.to_string(),
                g.get("Description").unwrap_or_default().to_string(),
            ));
        }
        if sources.is_empty() {
            return Err(ApiError::missing("IpPermissions.IpRanges"));
        }
        for (source, description) in sources {
            specs.push(RuleSpec {
                protocol: protocol.to_string(),
                port_range: port_range.clone(),
                source_cidr: source,
                policy: "accept".into(),
                priority: 1,
                description,
            });
        }
    }
    Ok(specs)
}

fn same_rule(r: &crate::model::Rule, s: &RuleSpec) -> bool {
    r.protocol == s.protocol && r.port_range == s.port_range && r.source_cidr == s.source_cidr
}

fn describe_rule(s: &RuleSpec) -> String {
    let (from, to) = ports(&s.port_range);
    format!(
        "peer: {}, {}, from port: {from}, to port: {to}, ALLOW",
        s.source_cidr,
        s.protocol.to_ascii_uppercase()
    )
}

fn rule_xml(x: &mut Xml, group_id: &str, r: &crate::model::Rule) {
    let (from, to) = ports(&r.port_range);
    x.leaf("securityGroupRuleId", &r.id)
        .leaf("groupId", group_id)
        .leaf("groupOwnerId", ACCOUNT_ID)
        .leaf("isEgress", "false")
        .leaf("ipProtocol", wire_protocol(&r.protocol))
        .leaf("fromPort", from)
        .leaf("toPort", to);
    if r.source_cidr.starts_with("sg-") {
        x.node("referencedGroupInfo", |x| {
            x.leaf("groupId", &r.source_cidr).leaf("userId", ACCOUNT_ID);
        });
    } else {
        x.leaf("cidrIpv4", &r.source_cidr);
    }
    if !r.description.is_empty() {
        x.leaf("description", &r.description);
    }
}

fn authorize_ingress(state: &EmulatorState, region: &str, p: &Params) -> ApiResult<Xml> {
    let id = p.req("GroupId")?;
    state.with_model_mut(|m| {
        let g = group(m, region, id)?;
        let specs = permissions(m, region, p)?;
        for (i, s) in specs.iter().enumerate() {
            if g.rules.iter().any(|r| same_rule(r, s))
                || specs[..i].iter().any(|o| {
                    o.protocol == s.protocol
                        && o.port_range == s.port_range
                        && o.source_cidr == s.source_cidr
                })
            {
                return Err(ApiError::bad(
                    "InvalidPermission.Duplicate",
                    format!("the specified rule \"{}\" already exists", describe_rule(s)),
                ));
            }
        }
        m.authorize(region, id, specs.clone())
            .map_err(ApiError::from_model)?;
        let g = group(m, region, id)?;
        let mut x = Xml::new();
        x.leaf("return", "true").set(
            "securityGroupRuleSet",
            g.rules
                .iter()
                .filter(|r| specs.iter().any(|s| same_rule(r, s))),
            |x, r| rule_xml(x, id, r),
        );
        Ok(x)
    })
}

fn revoke_ingress(state: &EmulatorState, region: &str, p: &Params) -> ApiResult<Xml> {
    let id = p.req("GroupId")?;
    state.with_model_mut(|m| {
        let g = group(m, region, id)?;
        let rule_ids = p.list("SecurityGroupRuleId");
        let mut revoked: Vec<crate::model::Rule> = Vec::new();
        let mut unknown: Vec<RuleSpec> = Vec::new();
        if !rule_ids.is_empty() {
            for rid in &rule_ids {
                match g.rules.iter().find(|r| &r.id == rid) {
                    Some(r) => revoked.push(r.clone()),
                    None => {
                        return Err(ApiError::bad(
                            "InvalidSecurityGroupRuleId.NotFound",
                            format!("The security group rule ID '{rid}' does not exist"),
                        ));
                    }
                }
            }
        } else {
            for s in permissions(m, region, p)? {
                match g.rules.iter().find(|r| same_rule(r, &s)) {
                    Some(r) => revoked.push(r.clone()),
                    None => unknown.push(s),
                }
            }
            if revoked.is_empty() {
                return Err(ApiError::bad(
                    "InvalidPermission.NotFound",
                    "The specified rule does not exist in this security group.",
                ));
            }
        }
        let ids: Vec<String> = revoked.iter().map(|r| r.id.clone()).collect();
        m.revoke(region, id, &[], &ids)
            .map_err(ApiError::from_model)?;
        let mut x = Xml::new();
        x.leaf("return", "true");
        if !unknown.is_empty() {
            x.set("unknownIpPermissionSet", &unknown, |x, s| {
                let rule = crate::model::Rule {
                    id: String::new(),
                    protocol: s.protocol.clone(),
                    port_range: s.port_range.clone(),
                    source_cidr: s.source_cidr.clone(),
                    policy: s.policy.clone(),
                    priority: s.priority,
                    description: s.description.clone(),
                    created: Timestamp::now(),
                };
                permission_xml(x, &s.protocol, &s.port_range, &[&rule]);
            });
        }
        x.set("revokedSecurityGroupRuleSet", &revoked, |x, r| {
            rule_xml(x, id, r);
        });
        Ok(x)
    })
}

fn delete_security_group(state: &EmulatorState, region: &str, p: &Params) -> ApiResult<Xml> {
    let id = p.req("GroupId")?;
    state.with_model_mut(|m| {
        let g = group(m, region, id)?;
        if state.aws().default_groups.get(&g.vpc_id) == Some(&g.id) {
            return Err(ApiError::bad(
                "CannotDelete",
                format!(
                    "the specified group: \"{id}\" name: \"default\" cannot be deleted by a user"
                ),
            ));
        }
        let referenced = m
            .security_groups
            .values()
            .any(|o| o.id != id && o.rules.iter().any(|r| r.source_cidr == id));
        if referenced {
            return Err(ApiError::bad(
                "DependencyViolation",
                format!("resource {id} has a dependent object"),
            ));
        }
        m.delete_security_group(region, id)
            .map_err(ApiError::from_model)?;
        let mut x = Xml::new();
        x.leaf("return", "true").leaf("groupId", id);
        Ok(x)
    })
}

// ---- Internet gateways and routes ----

fn igw_xml(x: &mut Xml, g: &InternetGateway) {
    x.set("attachmentSet", g.vpc_id.iter(), |x, vpc| {
        x.leaf("vpcId", vpc).leaf("state", "available");
    })
    .leaf("internetGatewayId", &g.id)
    .leaf("ownerId", ACCOUNT_ID)
    .tags(&g.tags);
}

fn attach_igw(state: &EmulatorState, region: &str, p: &Params) -> ApiResult<Xml> {
    let id = p.req("InternetGatewayId")?;
    let vpc_id = p.req("VpcId")?;
    let m = state.model_read();
    vpc(&m, region, vpc_id)?;
    let mut f = state.aws();
    let g = igw(&f, region, id)?;
    if let Some(current) = &g.vpc_id {
        return Err(ApiError::bad(
            "Resource.AlreadyAssociated",
            format!("resource {id} is already attached to network {current}"),
        ));
    }
    if let Some(other) = vpc_gateway(&f, vpc_id) {
        return Err(ApiError::bad(
            "InvalidParameterValue",
            format!(
                "Network {vpc_id} already has an internet gateway attached ({})",
                other.id
            ),
        ));
    }
    if let Some(g) = f.internet_gateways.get_mut(id) {
        g.vpc_id = Some(vpc_id.to_string());
    }
    Ok(returns_true())
}

fn detach_igw(state: &EmulatorState, region: &str, p: &Params) -> ApiResult<Xml> {
    let id = p.req("InternetGatewayId")?;
    let vpc_id = p.req("VpcId")?;
    let m = state.model_read();
    let mut f = state.aws();
    let g = igw(&f, region, id)?;
    if g.vpc_id.as_deref() != Some(vpc_id) {
        return Err(ApiError::bad(
            "Gateway.NotAttached",
            format!("resource {id} is not attached to network {vpc_id}"),
        ));
    }
    let mapped = m
        .instances
        .values()
        .any(|i| i.vpc_id == vpc_id && (i.eip_id.is_some() || i.public_ip.is_some()));
    if mapped {
        return Err(ApiError::bad(
            "DependencyViolation",
            format!(
                "Network {vpc_id} has some mapped public address(es). Please unmap those public address(es) before detaching the gateway."
            ),
        ));
    }
    if let Some(g) = f.internet_gateways.get_mut(id) {
        g.vpc_id = None;
    }
    Ok(returns_true())
}

fn describe_igws(f: &FrontState, region: &str, p: &Params) -> ApiResult<Xml> {
    let ids = p.list("InternetGatewayId");
    for id in &ids {
        igw(f, region, id)?;
    }
    let filters: Vec<Filter> = p.filters()?;
    let mut list = Vec::new();
    for g in f.internet_gateways.values().filter(|g| g.region == region) {
        if !ids.is_empty() && !ids.contains(&g.id) {
            continue;
        }
        let ok = passes(&g.tags, &filters, |fl| match fl.name.as_str() {
            "internet-gateway-id" => Some(fl.matches(&g.id)),
            "attachment.vpc-id" => Some(g.vpc_id.as_deref().is_some_and(|v| fl.matches(v))),
            "attachment.state" => Some(g.vpc_id.is_some() && fl.matches("available")),
            "owner-id" => Some(fl.matches(ACCOUNT_ID)),
            _ => None,
        })?;
        if ok {
            list.push(g);
        }
    }
    let (list, next) = page(list, p, 5, 1000)?;
    let mut x = Xml::new();
    x.set("internetGatewaySet", list, igw_xml);
    x.opt("nextToken", next);
    Ok(x)
}

fn route_table_xml(x: &mut Xml, f: &FrontState, v: &Vpc) {
    let table = &v.route_table_id;
    let routes = f.routes.get(table).cloned().unwrap_or_default();
    let gateway = vpc_gateway(f, &v.id).map(|g| g.id.clone());
    x.leaf("routeTableId", table)
        .leaf("vpcId", &v.id)
        .leaf("ownerId", ACCOUNT_ID)
        .set(
            "routeSet",
            std::iter::once(None).chain(routes.iter().map(Some)),
            |x, r| match r {
                None => {
                    x.leaf("destinationCidrBlock", &v.cidr_block)
                        .leaf("gatewayId", "local")
                        .leaf("state", "active")
                        .leaf("origin", "CreateRouteTable");
                }
                Some(r) => {
                    let active = gateway.as_deref() == Some(r.gateway_id.as_str());
                    x.leaf("destinationCidrBlock", &r.destination)
                        .leaf("gatewayId", &r.gateway_id)
                        .leaf("state", if active { "active" } else { "blackhole" })
                        .leaf("origin", "CreateRoute");
                }
            },
        )
        .set("associationSet", [()], |x, ()| {
            x.leaf(
                "routeTableAssociationId",
                format!("rtbassoc-{}", table.trim_start_matches("rtb-")),
            )
            .leaf("routeTableId", table)
            .leaf("main", "true")
            .node("associationState", |x| {
                x.leaf("state", "associated");
            });
        })
        .set("propagatingVgwSet", std::iter::empty::<()>(), |_, ()| {})
        .tags(&f.route_table_tags.get(table).cloned().unwrap_or_default());
}

fn describe_route_tables(
    m: &Model,
    f: &FrontState,
    region: &str,
    p: &Params,
    now: Instant,
) -> ApiResult<Xml> {
    let ids = p.list("RouteTableId");
    for id in &ids {
        route_table_vpc(m, region, id)?;
    }
    let filters = p.filters()?;
    let mut list = Vec::new();
    for v in m
        .vpcs
        .values()
        .filter(|v| v.realm == REALM.name && v.region == region && m.visible(&v.id, now))
    {
        let table = &v.route_table_id;
        if !ids.is_empty() && !ids.contains(table) {
            continue;
        }
        let tags = f.route_table_tags.get(table).cloned().unwrap_or_default();
        let routes = f.routes.get(table).cloned().unwrap_or_default();
        let ok = passes(&tags, &filters, |fl| match fl.name.as_str() {
            "route-table-id" => Some(fl.matches(table)),
            "vpc-id" => Some(fl.matches(&v.id)),
            "association.main" => Some(fl.matches("true")),
            "association.route-table-id" => Some(fl.matches(table)),
            "association.subnet-id" => Some(false),
            "owner-id" => Some(fl.matches(ACCOUNT_ID)),
            "route.gateway-id" => {
                Some(fl.matches("local") || routes.iter().any(|r| fl.matches(&r.gateway_id)))
            }
            "route.destination-cidr-block" => {
                Some(fl.matches(&v.cidr_block) || routes.iter().any(|r| fl.matches(&r.destination)))
            }
            _ => None,
        })?;
        if ok {
            list.push(v);
        }
    }
    let (list, next) = page(list, p, 5, 100)?;
    let mut x = Xml::new();
    x.set("routeTableSet", list, |x, v| route_table_xml(x, f, v));
    x.opt("nextToken", next);
    Ok(x)
}

fn create_route(state: &EmulatorState, region: &str, p: &Params) -> ApiResult<Xml> {
    let table = p.req("RouteTableId")?;
    let destination = p
        .get("DestinationCidrBlock")
        .ok_or_else(|| ApiError::missing("DestinationCidrBlock"))?;
    let cidr = parse_cidr("destinationCidrBlock", destination)?;
    let others: BTreeSet<&str> = [
        "NatGatewayId",
        "InstanceId",
        "NetworkInterfaceId",
        "VpcPeeringConnectionId",
        "TransitGatewayId",
        "EgressOnlyInternetGatewayId",
        "LocalGatewayId",
        "CarrierGatewayId",
        "VpcEndpointId",
    ]
    .into_iter()
    .filter(|k| p.get(k).is_some())
    .collect();
    if !others.is_empty() {
        return Err(ApiError::bad(
            "InvalidParameterValue",
            "The emulator routes to internet gateways only (GatewayId).",
        ));
    }
    let gateway = p.req("GatewayId")?;
    let m = state.model_read();
    let v = route_table_vpc(&m, region, table)?;
    let mut f = state.aws();
    let g = f
        .internet_gateways
        .get(gateway)
        .filter(|g| g.region == region)
        .ok_or_else(|| {
            ApiError::bad(
                "InvalidGatewayID.NotFound",
                format!("The gateway ID '{gateway}' does not exist"),
            )
        })?;
    if g.vpc_id.as_deref() != Some(v.id.as_str()) {
        return Err(ApiError::bad(
            "InvalidParameterValue",
            format!(
                "route table {table} and network gateway {gateway} belong to different networks"
            ),
        ));
    }
    let destination = cidr.trunc().to_string();
    let routes = f.routes.entry(table.to_string()).or_default();
    if destination == v.cidr_block || routes.iter().any(|r| r.destination == destination) {
        return Err(ApiError::bad(
            "RouteAlreadyExists",
            format!("The route identified by {destination} already exists."),
        ));
    }
    routes.push(Route {
        destination,
        gateway_id: gateway.to_string(),
    });
    Ok(returns_true())
}
