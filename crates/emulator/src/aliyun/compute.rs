//! ECS instance, EIP and price actions.

use super::*;
use crate::model::DEFAULT_REALM;

pub(super) fn run_instances(state: &EmulatorState, p: &Params, now: Instant) -> ApiResult<Value> {
    let mut sgs = p.indexed("SecurityGroupIds");
    if let Some(sg) = p.get("SecurityGroupId") {
        sgs.insert(0, sg.to_string());
    }
    let charge_type = p
        .get("InstanceChargeType")
        .unwrap_or("PostPaid")
        .to_string();
    if charge_type != "PostPaid" && charge_type != "PrePaid" {
        return Err(ApiError::invalid("InstanceChargeType", &charge_type));
    }
    let internet_charge_type = p
        .get("InternetChargeType")
        .unwrap_or("PayByTraffic")
        .to_string();
    if internet_charge_type != "PayByTraffic" && internet_charge_type != "PayByBandwidth" {
        return Err(ApiError::invalid(
            "InternetChargeType",
            &internet_charge_type,
        ));
    }
    let bandwidth_out = p.u32_or("InternetMaxBandwidthOut", 0)?;
    if bandwidth_out > 100 {
        return Err(ApiError::invalid(
            "InternetMaxBandwidthOut",
            &bandwidth_out.to_string(),
        ));
    }
    let disk_category = p
        .get("SystemDisk.Category")
        .unwrap_or("cloud_efficiency")
        .to_string();
    if !matches!(
        disk_category.as_str(),
        "cloud_essd" | "cloud_ssd" | "cloud_efficiency" | "cloud_auto" | "cloud"
    ) {
        return Err(ApiError::new(
            400,
            "InvalidSystemDiskCategory.ValueNotSupported",
            format!("Unsupported disk category {disk_category}."),
        ));
    }
    let disk_gib = p.u32_or("SystemDisk.Size", 40)?;
    if !(20..=2048).contains(&disk_gib) {
        return Err(ApiError::new(
            400,
            "InvalidSystemDiskSize",
            format!("SystemDisk.Size {disk_gib} is out of range."),
        ));
    }
    let password_set = p.get("Password").is_some();
    if let Some(pw) = p.get("Password")
        && !(8..=30).contains(&pw.len())
    {
        // The value is never echoed.
        return Err(ApiError::new(
            400,
            "InvalidPassword.Malformed",
            "The password must be 8 to 30 characters long.",
        ));
    }
    let amount = p.u32_or("Amount", 1)?;
    let req = RunInstances {
        region: p.region()?,
        zone: p.get("ZoneId").map(String::from),
        instance_type: p.req("InstanceType")?.to_string(),
        image_id: p.req("ImageId")?.to_string(),
        subnet_id: p.req("VSwitchId")?.to_string(),
        security_group_ids: sgs,
        name: p.string("InstanceName"),
        description: p.string("Description"),
        charge_type,
        internet_charge_type,
        bandwidth_out,
        disk_category,
        disk_gib,
        password_set,
        key_pair_name: p.get("KeyPairName").map(String::from),
        tags: p.tags()?,
        amount,
        min_amount: p.u32_or("MinAmount", 0)?,
        dry_run: p.flag("DryRun"),
    };
    if req.security_group_ids.is_empty() {
        return Err(ApiError::missing("SecurityGroupId"));
    }
    let dry = req.dry_run;
    let idem = p.idem("RunInstances")?;
    let (ids, price) = state.with_model_mut(|m| -> ApiResult<_> {
        let ids = m.run_instances(req, idem.as_ref(), now)?;
        let price: f64 = ids
            .iter()
            .filter_map(|id| m.instances.get(id))
            .map(|i| i.hourly_price)
            .sum();
        Ok((ids, round_cents(price)))
    })?;
    if dry {
        return Err(dry_run());
    }
    let order: u64 = rand::rng().random_range(100_000_000_000..999_999_999_999);
    Ok(
        json!({"InstanceIdSets": {"InstanceIdSet": ids}, "OrderId": order.to_string(), "TradePrice": price}),
    )
}

pub(super) fn instance_json(m: &Model, i: &Instance, now: Instant) -> Value {
    let eip = i.eip_id.as_ref().and_then(|e| m.eips.get(e));
    let eip_json = match eip {
        Some(e) => {
            json!({"AllocationId": e.id, "IpAddress": e.ip.to_string(), "Bandwidth": e.bandwidth,
            "InternetChargeType": e.internet_charge_type, "IsSupportUnassociate": true})
        }
        None => {
            json!({"AllocationId": "", "IpAddress": "", "Bandwidth": 0, "InternetChargeType": "", "IsSupportUnassociate": true})
        }
    };
    let public: Vec<String> = i.public_ip.iter().map(ToString::to_string).collect();
    json!({
        "InstanceId": i.id, "InstanceName": i.name, "HostName": i.name, "Description": i.description,
        "ImageId": i.image_id, "InstanceType": i.instance_type, "RegionId": i.region, "ZoneId": i.zone,
        "Status": m.instance_status(i, now).as_str(), "CreationTime": time_ecs(i.created),
        "StartTime": time_ecs(i.created), "ExpiredTime": "2099-12-31T15:59Z",
        "InstanceChargeType": i.charge_type, "InternetChargeType": i.internet_charge_type,
        "InternetMaxBandwidthOut": i.bandwidth_out, "InternetMaxBandwidthIn": 100,
        "InstanceNetworkType": "vpc", "OSType": "linux", "StoppedMode": "Not-applicable",
        "KeyPairName": i.key_pair_name.clone().unwrap_or_default(), "DeletionProtection": false,
        "PublicIpAddress": {"IpAddress": public}, "InnerIpAddress": {"IpAddress": []},
        "EipAddress": eip_json,
        "VpcAttributes": {"VpcId": i.vpc_id, "VSwitchId": i.subnet_id, "NatIpAddress": "",
            "PrivateIpAddress": {"IpAddress": [i.private_ip.to_string()]}},
        "SecurityGroupIds": {"SecurityGroupId": i.security_group_ids},
        "Tags": ecs_tags(&i.tags),
    })
}

pub(super) fn describe_instances(m: &Model, p: &Params, now: Instant) -> ApiResult<Value> {
    let region = p.region()?;
    let ids = p.json_list("InstanceIds")?;
    if ids.len() > 100 {
        return Err(ApiError::invalid("InstanceIds", "more than 100 ids"));
    }
    let (vpc, vsw, zone, status) = (
        p.get("VpcId"),
        p.get("VSwitchId"),
        p.get("ZoneId"),
        p.get("Status"),
    );
    let (name, sg, itype) = (
        p.get("InstanceName"),
        p.get("SecurityGroupId"),
        p.get("InstanceType"),
    );
    let tags = p.tag_filters();
    let token_mode = p.get("MaxResults").is_some() || p.get("NextToken").is_some();
    let after = p.get("NextToken");
    let matches = |i: &&Instance| {
        i.region == region
            && (ids.is_empty() || ids.contains(&i.id))
            && vpc.is_none_or(|v| i.vpc_id == v)
            && vsw.is_none_or(|v| i.subnet_id == v)
            && zone.is_none_or(|z| i.zone == z)
            && itype.is_none_or(|t| i.instance_type == t)
            && name.is_none_or(|n| match n.strip_suffix('*') {
                Some(prefix) => i.name.starts_with(prefix),
                None => i.name == n,
            })
            && sg.is_none_or(|s| i.security_group_ids.iter().any(|x| x == s))
            && status.is_none_or(|s| m.instance_status(i, now).as_str() == s)
            && m.visible_match(&i.id, &i.tags, &tags, now)
    };
    if token_mode {
        let max = p.u32_or("MaxResults", 10)?;
        if max == 0 || max > 100 {
            return Err(ApiError::invalid("MaxResults", &max.to_string()));
        }
        let total = m.instances.values().filter(|i| matches(i)).count();
        let range = match after {
            Some(token) => m
                .instances
                .range::<str, _>((std::ops::Bound::Excluded(token), std::ops::Bound::Unbounded)),
            None => m.instances.range::<str, _>(..),
        };
        let mut page: Vec<&Instance> = Vec::new();
        let mut more = false;
        for i in range.map(|(_, i)| i).filter(|i| matches(i)) {
            if page.len() == max as usize {
                more = true;
                break;
            }
            page.push(i);
        }
        let next = if more {
            page.last().map(|i| i.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        let list: Vec<Value> = page.iter().map(|i| instance_json(m, i, now)).collect();
        return Ok(
            json!({"Instances": {"Instance": list}, "NextToken": next, "TotalCount": total, "MaxResults": max}),
        );
    }
    let list: Vec<&Instance> = m.instances.values().filter(|i| matches(i)).collect();
    let (page, total, number, size) = paginate(list, p, 100)?;
    let list: Vec<Value> = page.iter().map(|i| instance_json(m, i, now)).collect();
    Ok(
        json!({"Instances": {"Instance": list}, "TotalCount": total, "PageNumber": number, "PageSize": size, "NextToken": ""}),
    )
}

pub(super) fn allocate_eip(state: &EmulatorState, p: &Params) -> ApiResult<Value> {
    let charge = p
        .get("InternetChargeType")
        .unwrap_or("PayByBandwidth")
        .to_string();
    if charge != "PayByBandwidth" && charge != "PayByTraffic" {
        return Err(ApiError::invalid("InternetChargeType", &charge));
    }
    let req = AllocateEip {
        region: p.region()?,
        bandwidth: p.u32_or("Bandwidth", 5)?,
        internet_charge_type: charge,
        name: p.string("Name"),
        description: p.string("Description"),
        tags: p.tags()?,
    };
    let idem = p.idem("AllocateEipAddress")?;
    let (id, ip) = state.with_model_mut(|m| -> ApiResult<_> {
        let id = m.allocate_eip(req, idem.as_ref())?;
        let ip = m.eips[&id].ip.to_string();
        Ok((id, ip))
    })?;
    Ok(
        json!({"AllocationId": id, "EipAddress": ip, "ResourceGroupId": "rg-emulator", "OrderId": 0}),
    )
}

pub(super) fn describe_eips(m: &Model, p: &Params) -> ApiResult<Value> {
    let region = p.region()?;
    let ids = p.comma_list("AllocationId");
    let (ip, status) = (p.get("EipAddress"), p.get("Status"));
    let instance = p.get("AssociatedInstanceId");
    let tags = p.tag_filters();
    let now = Instant::now();
    let list: Vec<_> = m
        .eips
        .values()
        .filter(|e| e.region == region)
        .filter(|e| ids.is_empty() || ids.contains(&e.id))
        .filter(|e| ip.is_none_or(|a| e.ip.to_string() == a))
        .filter(|e| status.is_none_or(|s| e.status().as_str() == s))
        .filter(|e| instance.is_none_or(|i| e.instance_id.as_deref() == Some(i)))
        .filter(|e| m.visible_match(&e.id, &e.tags, &tags, now))
        .collect();
    let (page, total, number, size) = paginate(list, p, 100)?;
    let list: Vec<Value> = page
        .iter()
        .map(|e| {
            json!({
                "AllocationId": e.id, "IpAddress": e.ip.to_string(), "Status": e.status().as_str(),
                "InstanceId": e.instance_id.clone().unwrap_or_default(),
                "InstanceType": if e.instance_id.is_some() { "EcsInstance" } else { "" },
                "InstanceRegionId": e.region, "RegionId": e.region, "Bandwidth": e.bandwidth.to_string(),
                "InternetChargeType": e.internet_charge_type, "ChargeType": "PostPaid", "Name": e.name,
                "Description": e.description, "AllocationTime": time_vpc(e.created), "ISP": "BGP",
                "Mode": "NAT", "ResourceGroupId": "rg-emulator", "Tags": vpc_tags(&e.tags),
            })
        })
        .collect();
    Ok(
        json!({"EipAddresses": {"EipAddress": list}, "TotalCount": total, "PageNumber": number, "PageSize": size}),
    )
}

pub(super) fn describe_price(m: &Model, p: &Params) -> ApiResult<Value> {
    let resource = p.get("ResourceType").unwrap_or("instance");
    if resource != "instance" {
        return Err(ApiError::invalid("ResourceType", resource));
    }
    let instance_type = p.req("InstanceType")?;
    let disk_gib = p.u32_or("SystemDisk.Size", 40)?;
    let bandwidth = p.u32_or("InternetMaxBandwidthOut", 0)?;
    let unit = p.get("PriceUnit").unwrap_or("Hour");
    let unit_hours = match unit {
        "Hour" => 1.0,
        "Week" => 168.0,
        "Month" => 720.0,
        "Year" => 8760.0,
        other => return Err(ApiError::invalid("PriceUnit", other)),
    };
    let period = p.u32_or("Period", 1)?.max(1);
    let amount = p.u32_or("Amount", 1)?.max(1);
    let hours = unit_hours * f64::from(period);
    let prices = &m.prices;
    let total = prices.quote(instance_type, disk_gib, bandwidth, hours, amount)?;
    let part = |hourly: f64| round_cents(hourly * hours * f64::from(amount));
    let instance = part(prices.instance_hourly(instance_type)?);
    let disk = part(prices.disk_gib_hourly * f64::from(disk_gib));
    let bw = part(prices.bandwidth_mbps_hourly * f64::from(bandwidth));
    let detail = |resource: &str, price: f64| json!({"Resource": resource, "OriginalPrice": price, "DiscountPrice": 0.0, "TradePrice": price});
    Ok(json!({
        "PriceInfo": {
            "Price": {
                "OriginalPrice": total, "DiscountPrice": 0.0, "TradePrice": total, "Currency": prices.currency,
                "DetailInfos": {"DetailInfo": [detail("instanceType", instance), detail("systemDisk", disk), detail("bandwidth", bw)]},
            },
            "Rules": {"Rule": []},
        }
    }))
}

/// DescribeAvailableResource for `DestinationResource` `InstanceType` or `Zone`: the zones of
/// the region offering `InstanceType` (required here; the cloud also lists every type), each
/// `Available`/`WithStock` or, with no stock, `SoldOut`/`WithoutStock`. The model keeps one
/// stock per type and zone, so the charge type only has to be valid.
pub(super) fn describe_available_resource(m: &Model, p: &Params) -> ApiResult<Value> {
    let region = p.region()?;
    let destination = p.req("DestinationResource")?;
    if !matches!(destination, "InstanceType" | "Zone") {
        return Err(ApiError::new(
            400,
            "InvalidParameter",
            format!("DestinationResource {destination:?} is not emulated (InstanceType, Zone)."),
        ));
    }
    let charge = p.get("InstanceChargeType").unwrap_or("PostPaid");
    if !matches!(charge, "PostPaid" | "PrePaid") {
        return Err(ApiError::invalid("InstanceChargeType", charge));
    }
    if let Some(io) = p.get("IoOptimized")
        && !matches!(io, "optimized" | "none")
    {
        return Err(ApiError::invalid("IoOptimized", io));
    }
    let instance_type = p.req("InstanceType")?;
    let zones = m.zone_stock(DEFAULT_REALM, &region, p.get("ZoneId"), instance_type)?;
    let status = |sold_out: bool| {
        if sold_out {
            ("SoldOut", "WithoutStock")
        } else {
            ("Available", "WithStock")
        }
    };
    let list: Vec<Value> = zones
        .iter()
        .map(|z| {
            let (status, category) = status(z.sold_out());
            let value = if destination == "Zone" {
                z.zone.as_str()
            } else {
                instance_type
            };
            json!({
                "ZoneId": z.zone, "RegionId": region, "Status": status, "StatusCategory": category,
                "AvailableResources": {"AvailableResource": [{
                    "Type": destination,
                    "SupportedResources": {"SupportedResource": [
                        {"Value": value, "Status": status, "StatusCategory": category}
                    ]},
                }]},
            })
        })
        .collect();
    Ok(json!({ "AvailableZones": { "AvailableZone": list } }))
}
