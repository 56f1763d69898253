//! Tencent Cloud's wire format, as pure functions: JSON request bodies built from neutral
//! requests, and neutral values read from responses. Unit-tested without any server.

use serde_json::{Map, Value, json};

use mce_cloud::{
    BandwidthMode, ChargeMode, CloudError, Eip, EipStatus, ErrorClass, Instance, InstanceStatus,
    Login, PortRule, PriceQuery, ResourceKind, RunInstance, Tags, ZoneStock,
};

use crate::client::PROVIDER;
use crate::model;

/// Tags (TagResources) or keys (UnTagResources) per Tag API call.
pub const TAG_BATCH: usize = 10;

/// Tencent wire name of a charge mode (`InstanceChargeType`).
pub fn charge_type_wire(charge: ChargeMode) -> &'static str {
    match charge {
        ChargeMode::OnDemand => "POSTPAID_BY_HOUR",
        ChargeMode::Prepaid { .. } => "PREPAID",
    }
}

/// Tencent wire name of a bandwidth mode (`InternetChargeType`), pay-as-you-go.
pub fn bandwidth_mode_wire(mode: BandwidthMode) -> &'static str {
    match mode {
        BandwidthMode::Traffic => "TRAFFIC_POSTPAID_BY_HOUR",
        BandwidthMode::Fixed => "BANDWIDTH_POSTPAID_BY_HOUR",
    }
}

/// CVM `InstanceState` → provider-neutral status.
pub fn instance_status(state: &str) -> InstanceStatus {
    match state {
        "PENDING" => InstanceStatus::Pending,
        "LAUNCH_FAILED" => InstanceStatus::Failed,
        "RUNNING" => InstanceStatus::Running,
        // Rebooting: the instance is coming back up.
        "STARTING" | "REBOOTING" => InstanceStatus::Starting,
        "STOPPING" => InstanceStatus::Stopping,
        // SHUTDOWN ("停止待销毁"): isolated, expired or in arrears (renewable: stopped, not
        // gone). One returned by TerminateInstances is in the recycle bin: see [`recycled`].
        "STOPPED" | "SHUTDOWN" => InstanceStatus::Stopped,
        "TERMINATING" => InstanceStatus::Terminated,
        other => InstanceStatus::Other(other.to_string()),
    }
}

/// A PREPAID instance the first TerminateInstances moved to the recycle bin (`SHUTDOWN`,
/// `IsolatedSource` `MANMADE`): gone for the operator, destroyed by a second TerminateInstances.
pub fn recycled(state: &str, isolated_source: &str) -> bool {
    state == "SHUTDOWN" && isolated_source == "MANMADE"
}

/// EIP `AddressStatus` → provider-neutral status. Only UNBIND can be associated or released.
pub fn eip_status(status: &str) -> EipStatus {
    match status {
        "UNBIND" => EipStatus::Available,
        "BINDING" => EipStatus::Associating,
        "BIND" | "BIND_ENI" => EipStatus::InUse,
        "UNBINDING" => EipStatus::Unassociating,
        "CREATING" => EipStatus::Creating,
        "OFFLINING" => EipStatus::Releasing,
        other => EipStatus::Other(other.to_string()),
    }
}

/// `[{"Key","Value"}]`, the tag shape of VPC/CVM create calls.
pub fn tags_json(tags: &Tags) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
    )
}

/// One `tag:<key>` filter per tag (filters are ANDed).
pub fn tag_filters(tags: &Tags) -> Vec<Value> {
    tags.iter()
        .map(|(k, v)| json!({"Name": format!("tag:{k}"), "Values": [v]}))
        .collect()
}

/// Sets `Offset`/`Limit`: VPC-side describes type them as strings, CVM and DescribeAddresses
/// as integers.
pub fn set_page(body: &mut Value, offset: u64, limit: u64, as_strings: bool) {
    if let Value::Object(map) = body {
        if as_strings {
            map.insert("Offset".into(), Value::String(offset.to_string()));
            map.insert("Limit".into(), Value::String(limit.to_string()));
        } else {
            map.insert("Offset".into(), json!(offset));
            map.insert("Limit".into(), json!(limit));
        }
    }
}

/// A body with `Filters` (omitted when there are none: an empty list is not "no filter").
pub fn filtered(filters: Vec<Value>) -> Value {
    let mut map = Map::new();
    if !filters.is_empty() {
        map.insert("Filters".into(), Value::Array(filters));
    }
    Value::Object(map)
}

/// RunInstances parameters no CloudProvider may allow as extensions (patterns of
/// [`mce_cloud::wire_name_matches`]; nested JSON fields are dot paths, list items `N`): those
/// the driver builds itself, and those that reach beyond the tenant's instance — cloud
/// credentials on the VM (`CamRoleName`), NICs in other networks, any snapshot or key of the
/// account, undeletable instances (`DisableApiTermination`) or disks left behind, a launch
/// template overriding everything, another project, dedicated hosts and clusters, spot
/// market options that contradict the charge mode the driver sets.
pub const FORBIDDEN_RUN_EXTENSIONS: &[&str] = &[
    // Common parameters and what the driver builds.
    "Action",
    "Version",
    "Region",
    "Timestamp",
    "Nonce",
    "SecretId",
    "Signature",
    "SignatureMethod",
    "Token",
    "Language",
    "Placement",
    "Placement.*",
    "InstanceType",
    "ImageId",
    "SystemDisk",
    "SystemDisk.*",
    "VirtualPrivateCloud",
    "VirtualPrivateCloud.*",
    "SecurityGroupIds",
    "SecurityGroupIds.*",
    "InstanceName",
    "LoginSettings",
    "LoginSettings.*",
    "InstanceChargeType",
    "InstanceChargePrepaid",
    "InstanceChargePrepaid.*",
    "InternetAccessible",
    "InternetAccessible.*",
    "InstanceCount",
    "TagSpecification",
    "TagSpecification.*",
    "ClientToken",
    "DryRun",
    // Beyond the tenant's own instance.
    "CamRoleName",
    "CamRoleType",
    "NetworkInterfaces",
    "NetworkInterfaces.*",
    "DataDisks.N.SnapshotId",
    "DataDisks.N.DeleteWithInstance",
    "DataDisks.N.KmsKeyId",
    "DataDisks.N.CdcId",
    "DisableApiTermination",
    "LaunchTemplate",
    "LaunchTemplate.*",
    "ProjectId",
    "DedicatedClusterId",
    "ChcIds",
    "ChcIds.*",
    "HpcClusterId",
    "DisasterRecoverGroupIds",
    "DisasterRecoverGroupIds.*",
    "InstanceMarketOptions",
    "InstanceMarketOptions.*",
];

/// An extension's value as JSON: a value that parses as a JSON number, boolean, list or object
/// is sent typed; anything else (and a JSON string such as `"\"123\""`) as a string.
pub fn extension_value(raw: &str) -> Value {
    match serde_json::from_str::<Value>(raw) {
        Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Array(_) | Value::Object(_))) => v,
        Ok(v @ Value::String(_)) if raw.trim_start().starts_with('"') => v,
        _ => Value::String(raw.to_string()),
    }
}

/// Sets `value` at a dot path (`DataDisks.0.DiskSize`: decimal segments index lists), never
/// replacing a value already there. False when the path is taken or crosses a non-container.
pub fn set_path(root: &mut Value, path: &str, value: Value) -> bool {
    fn set(node: &mut Value, segments: &[&str], value: Value) -> bool {
        let Some((first, rest)) = segments.split_first() else {
            return false;
        };
        let slot = if let Ok(index) = first.parse::<usize>() {
            // Bounded: a huge index must not allocate a huge list.
            if index >= 100 {
                return false;
            }
            if node.is_null() {
                *node = Value::Array(Vec::new());
            }
            let Value::Array(items) = node else {
                return false;
            };
            if items.len() <= index {
                items.resize(index + 1, Value::Null);
            }
            &mut items[index]
        } else {
            if first.is_empty() {
                return false;
            }
            if node.is_null() {
                *node = Value::Object(Map::new());
            }
            let Value::Object(map) = node else {
                return false;
            };
            map.entry((*first).to_string()).or_insert(Value::Null)
        };
        if rest.is_empty() {
            if slot.is_null() {
                *slot = value;
                true
            } else {
                false
            }
        } else {
            set(slot, rest, value)
        }
    }
    let segments: Vec<&str> = path.split('.').collect();
    set(root, &segments, value)
}

fn security_group_ids(ids: &[String]) -> Vec<&str> {
    let mut groups: Vec<&str> = Vec::with_capacity(ids.len());
    for id in ids {
        if !id.is_empty() && !groups.contains(&id.as_str()) {
            groups.push(id);
        }
    }
    groups
}

/// The RunInstances body of a request. `vpc_id` is the subnet's VPC (Tencent wants both).
/// No public IP at launch: an EIP cannot be bound over an instance's normal public IP.
pub fn run_instances_body(req: &RunInstance, vpc_id: &str) -> Value {
    let mut body = json!({
        "Placement": {"Zone": req.zone},
        "InstanceType": req.instance_type,
        "ImageId": req.image_id,
        "SystemDisk": {"DiskType": req.system_disk.category, "DiskSize": req.system_disk.size_gib},
        "VirtualPrivateCloud": {"VpcId": vpc_id, "SubnetId": req.subnet_id},
        "SecurityGroupIds": security_group_ids(&req.security_group_ids),
        "InstanceChargeType": charge_type_wire(req.charge),
        "InternetAccessible": {"InternetMaxBandwidthOut": 0, "PublicIpAssigned": false},
        "InstanceCount": 1,
    });
    let Value::Object(map) = &mut body else {
        return body;
    };
    if !req.name.is_empty() {
        map.insert("InstanceName".into(), json!(req.name));
    }
    if let ChargeMode::Prepaid { months } = req.charge {
        map.insert(
            "InstanceChargePrepaid".into(),
            json!({"Period": months.max(1), "RenewFlag": "NOTIFY_AND_MANUAL_RENEW"}),
        );
    }
    match &req.login {
        Login::None => {}
        Login::Password(secret) => {
            map.insert("LoginSettings".into(), json!({"Password": secret.expose()}));
        }
        Login::KeyPair(id) => {
            map.insert("LoginSettings".into(), json!({"KeyIds": [id]}));
        }
    }
    if !req.tags.is_empty() {
        map.insert(
            "TagSpecification".into(),
            json!([{"ResourceType": "instance", "Tags": tags_json(&req.tags)}]),
        );
    }
    if !req.client_token.is_empty() {
        map.insert("ClientToken".into(), json!(req.client_token));
    }
    for (name, raw) in &req.extensions {
        // The operator refuses these before any call; this is the driver's own last line.
        let forbidden = crate::PROFILE.is_forbidden_extension(name);
        if forbidden || !set_path(&mut body, name, extension_value(raw)) {
            tracing::warn!(parameter = %name, "ignoring a forbidden RunInstances extension");
        }
    }
    body
}

/// The InquiryPriceRunInstances body of a price query (the RunInstances shape).
pub fn price_body(q: &PriceQuery) -> Value {
    let mut map = Map::new();
    if let Some(zone) = q.zone.as_deref().filter(|z| !z.is_empty()) {
        map.insert("Placement".into(), json!({"Zone": zone}));
    }
    map.insert("InstanceType".into(), json!(q.instance_type));
    if let Some(image) = q.image_id.as_deref().filter(|i| !i.is_empty()) {
        map.insert("ImageId".into(), json!(image));
    }
    if let Some(disk) = &q.system_disk {
        map.insert(
            "SystemDisk".into(),
            json!({"DiskType": disk.category, "DiskSize": disk.size_gib}),
        );
    }
    map.insert(
        "InstanceChargeType".into(),
        json!(charge_type_wire(q.charge)),
    );
    if let ChargeMode::Prepaid { months } = q.charge {
        map.insert(
            "InstanceChargePrepaid".into(),
            json!({"Period": months.max(1)}),
        );
    }
    let internet = match q.bandwidth {
        Some((mbps, mode)) => json!({
            "InternetChargeType": bandwidth_mode_wire(mode),
            "InternetMaxBandwidthOut": mbps,
            "PublicIpAssigned": true,
        }),
        None => json!({"InternetMaxBandwidthOut": 0, "PublicIpAssigned": false}),
    };
    map.insert("InternetAccessible".into(), internet);
    map.insert("InstanceCount".into(), json!(1));
    Value::Object(map)
}

/// The neutral price of an InquiryPriceRunInstances answer: per hour on demand (unit prices),
/// per month prepaid (the period's total divided by its months). Traffic-billed bandwidth is
/// priced per GB, not per hour, so it is left out.
pub fn to_price(p: &model::PriceBody, charge: ChargeMode) -> mce_cloud::Price {
    let same_unit = |b: &&model::ItemPrice| match charge {
        ChargeMode::OnDemand => b.charge_unit.eq_ignore_ascii_case("HOUR"),
        ChargeMode::Prepaid { .. } => b.original_price > 0.0 || b.discount_price > 0.0,
    };
    let bandwidth = p.bandwidth_price.as_ref().filter(same_unit);
    let (unit, original, discount) = match charge {
        ChargeMode::OnDemand => {
            let i = &p.instance_price;
            let b = bandwidth.map_or((0.0, 0.0), |b| (b.unit_price, b.unit_price_discount));
            ("Hour", i.unit_price + b.0, i.unit_price_discount + b.1)
        }
        ChargeMode::Prepaid { months } => {
            let months = f64::from(months.max(1));
            let i = &p.instance_price;
            let b = bandwidth.map_or((0.0, 0.0), |b| (b.original_price, b.discount_price));
            (
                "Month",
                (i.original_price + b.0) / months,
                (i.discount_price + b.1) / months,
            )
        }
    };
    mce_cloud::Price {
        // The answer carries no currency; the China site bills in CNY.
        currency: "CNY".to_string(),
        original_price: original,
        discount_price: discount,
        trade_price: discount,
        unit: unit.to_string(),
    }
}

/// The DescribeZoneInstanceConfigInfos body asking where `instance_type` is sold under a
/// charge type (`zone` narrows it to one zone); the region goes in the `X-TC-Region` header.
pub fn stock_body(zone: Option<&str>, instance_type: &str, charge: ChargeMode) -> Value {
    let mut filters = Vec::new();
    if let Some(zone) = zone.filter(|z| !z.is_empty()) {
        filters.push(json!({"Name": "zone", "Values": [zone]}));
    }
    filters.push(json!({"Name": "instance-type", "Values": [instance_type]}));
    filters.push(json!({"Name": "instance-charge-type", "Values": [charge_type_wire(charge)]}));
    filtered(filters)
}

/// The zones of a DescribeZoneInstanceConfigInfos answer selling `instance_type` (`SELL`) or
/// not (`SOLD_OUT`), in the order first seen; items of other types or charge types, and
/// zones other than `zone`, are left out whatever the answer holds.
pub fn zone_stock(
    r: model::DescribeZoneInstanceConfigInfos,
    zone: Option<&str>,
    instance_type: &str,
    charge: ChargeMode,
) -> Vec<ZoneStock> {
    let charge = charge_type_wire(charge);
    let mut out: Vec<ZoneStock> = Vec::new();
    for item in r.instance_type_quota_set {
        if item.instance_type != instance_type
            || item.zone.is_empty()
            || (!item.instance_charge_type.is_empty() && item.instance_charge_type != charge)
            || zone.is_some_and(|want| !want.is_empty() && want != item.zone)
        {
            continue;
        }
        let available = item.status == "SELL";
        match out.iter_mut().find(|s| s.zone == item.zone) {
            Some(seen) => seen.available |= available,
            None => out.push(ZoneStock {
                zone: item.zone,
                available,
            }),
        }
    }
    out
}

/// A `Port` string naming one port (`"22"`); `ALL`, ranges `80-90` and lists `22,80` are not.
pub fn single_port(port: &str) -> Option<u16> {
    let port = port.trim();
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse().ok()
}

fn is_tcp_accept(p: &model::Policy) -> bool {
    p.protocol.eq_ignore_ascii_case("TCP") && p.action.eq_ignore_ascii_case("ACCEPT")
}

/// Inbound TCP ACCEPT rules on single ports from a CIDR (rules on address templates, other
/// groups or IPv6 are not the operator's).
pub fn ingress_rules(set: &model::PolicySet) -> Vec<PortRule> {
    set.ingress
        .iter()
        .filter(|p| is_tcp_accept(p) && !p.cidr_block.is_empty())
        .filter_map(|p| {
            Some(PortRule {
                port: single_port(&p.port)?,
                source_cidr: p.cidr_block.clone(),
                description: p.policy_description.clone(),
            })
        })
        .collect()
}

/// The `PolicyIndex` of every ingress rule matching one of `rules` (by port and CIDR).
pub fn matching_policy_indexes(set: &model::PolicySet, rules: &[PortRule]) -> Vec<i64> {
    set.ingress
        .iter()
        .filter(|p| is_tcp_accept(p))
        .filter(|p| {
            single_port(&p.port).is_some_and(|port| {
                rules
                    .iter()
                    .any(|r| r.key() == (port, p.cidr_block.as_str()))
            })
        })
        .map(|p| p.policy_index)
        .collect()
}

/// CreateSecurityGroupPolicies body: `Protocol TCP`, `Port` as a string, `Action ACCEPT`.
pub fn create_policies_body(group_id: &str, rules: &[PortRule]) -> Value {
    let ingress: Vec<Value> = rules
        .iter()
        .map(|r| {
            let mut rule = json!({
                "Protocol": "TCP",
                "Port": r.port.to_string(),
                "CidrBlock": r.source_cidr,
                "Action": "ACCEPT",
            });
            if !r.description.is_empty()
                && let Value::Object(m) = &mut rule
            {
                m.insert("PolicyDescription".into(), json!(r.description));
            }
            rule
        })
        .collect();
    json!({"SecurityGroupId": group_id, "SecurityGroupPolicySet": {"Ingress": ingress}})
}

/// DeleteSecurityGroupPolicies by index, pinned to the policy-set version the indexes were
/// read from: if the set changed meanwhile the cloud refuses instead of deleting other rules.
pub fn delete_policies_body(group_id: &str, version: &str, indexes: &[i64]) -> Value {
    let ingress: Vec<Value> = indexes.iter().map(|i| json!({"PolicyIndex": i})).collect();
    let mut set = json!({"Ingress": ingress});
    if !version.is_empty()
        && let Value::Object(m) = &mut set
    {
        m.insert("Version".into(), json!(version));
    }
    json!({"SecurityGroupId": group_id, "SecurityGroupPolicySet": set})
}

/// The Tag API's six-segment name of a CVM instance.
pub fn instance_resource(region: &str, account_uin: &str, instance_id: &str) -> String {
    format!("qcs::cvm:{region}:uin/{account_uin}:instance/{instance_id}")
}

/// The Tag API's six-segment name of a network resource: VPCs and subnets are `vpc`
/// resources, security groups `cvm` ones (`qcs::cvm:<region>:uin/<uin>:sg/<id>`).
pub fn network_resource(kind: ResourceKind, region: &str, account_uin: &str, id: &str) -> String {
    let (service, prefix) = match kind {
        ResourceKind::Vpc => ("vpc", "vpc"),
        ResourceKind::Subnet => ("vpc", "subnet"),
        ResourceKind::SecurityGroup => ("cvm", "sg"),
    };
    format!("qcs::{service}:{region}:uin/{account_uin}:{prefix}/{id}")
}

/// TagResources bodies, at most [`TAG_BATCH`] tags each (same key: the value is replaced).
pub fn tag_resources_bodies(resource: &str, tags: &Tags) -> Vec<Value> {
    let pairs: Vec<(&String, &String)> = tags.iter().collect();
    pairs
        .chunks(TAG_BATCH)
        .map(|chunk| {
            let tags: Vec<Value> = chunk
                .iter()
                .map(|(k, v)| json!({"TagKey": k, "TagValue": v}))
                .collect();
            json!({"ResourceList": [resource], "Tags": tags})
        })
        .collect()
}

/// UnTagResources bodies, at most [`TAG_BATCH`] keys each; no keys, no call.
pub fn untag_resources_bodies(resource: &str, keys: &[String]) -> Vec<Value> {
    let mut unique: Vec<&str> = Vec::with_capacity(keys.len());
    for k in keys {
        if !k.is_empty() && !unique.contains(&k.as_str()) {
            unique.push(k);
        }
    }
    unique
        .chunks(TAG_BATCH)
        .map(|chunk| json!({"ResourceList": [resource], "TagKeys": chunk}))
        .collect()
}

/// A described instance. The CVM answer does not say which public address is an EIP, so
/// `eip_allocation_id` stays empty; since instances launch without a public IP, any public
/// address they show is an EIP read from DescribeAddresses by the caller.
pub(crate) fn to_instance(i: model::InstanceItem) -> Instance {
    let status = if recycled(&i.instance_state, &i.isolated_source) {
        InstanceStatus::Terminated
    } else {
        instance_status(&i.instance_state)
    };
    Instance {
        status,
        instance_type: i.instance_type,
        zone: i.placement.zone,
        private_ip: i.private_ip_addresses.into_iter().find(|s| !s.is_empty()),
        public_ip: i.public_ip_addresses.into_iter().find(|s| !s.is_empty()),
        eip_allocation_id: None,
        tags: model::to_tags(i.tags),
        id: i.instance_id,
    }
}

pub(crate) fn to_eip(e: model::AddressItem) -> Eip {
    Eip {
        status: eip_status(&e.address_status),
        instance_id: Some(e.instance_id).filter(|s| !s.is_empty()),
        bandwidth_mbps: u32::try_from(e.bandwidth).unwrap_or(u32::MAX),
        tags: model::to_tags(e.tag_set),
        allocation_id: e.address_id,
        ip_address: e.address_ip,
    }
}

pub(crate) fn missing_field(action: &str, field: &str) -> CloudError {
    CloudError::new(
        ErrorClass::Transient,
        PROVIDER,
        action,
        "InvalidResponse",
        format!("the response has no {field}"),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use mce_cloud::{Secret, SystemDisk};

    fn run_request() -> RunInstance {
        RunInstance {
            region: "ap-guangzhou".into(),
            zone: "ap-guangzhou-3".into(),
            instance_type: "GN7.2XLARGE32".into(),
            image_id: "img-1".into(),
            subnet_id: "subnet-1".into(),
            security_group_ids: vec!["sg-net".into(), "sg-vm".into(), "sg-net".into()],
            name: "vm".into(),
            description: "ignored".into(),
            system_disk: SystemDisk {
                category: "CLOUD_PREMIUM".into(),
                size_gib: 100,
            },
            login: Login::Password(Secret::new("Pa55word!")),
            charge: ChargeMode::Prepaid { months: 3 },
            tags: [("owner".to_string(), "me".to_string())].into(),
            client_token: "tok-1".into(),
            extensions: BTreeMap::new(),
        }
    }

    #[test]
    fn wire_names_and_states() {
        assert_eq!(charge_type_wire(ChargeMode::OnDemand), "POSTPAID_BY_HOUR");
        assert_eq!(
            charge_type_wire(ChargeMode::Prepaid { months: 1 }),
            "PREPAID"
        );
        assert_eq!(
            bandwidth_mode_wire(BandwidthMode::Traffic),
            "TRAFFIC_POSTPAID_BY_HOUR"
        );
        assert_eq!(
            bandwidth_mode_wire(BandwidthMode::Fixed),
            "BANDWIDTH_POSTPAID_BY_HOUR"
        );
        let states = [
            ("PENDING", InstanceStatus::Pending),
            ("LAUNCH_FAILED", InstanceStatus::Failed),
            ("RUNNING", InstanceStatus::Running),
            ("STOPPED", InstanceStatus::Stopped),
            ("STARTING", InstanceStatus::Starting),
            ("STOPPING", InstanceStatus::Stopping),
            ("REBOOTING", InstanceStatus::Starting),
            ("SHUTDOWN", InstanceStatus::Stopped),
            ("TERMINATING", InstanceStatus::Terminated),
            ("ODD", InstanceStatus::Other("ODD".into())),
        ];
        for (wire, status) in states {
            assert_eq!(instance_status(wire), status, "{wire}");
        }
        assert_eq!(eip_status("UNBIND"), EipStatus::Available);
        assert_eq!(eip_status("BINDING"), EipStatus::Associating);
        assert_eq!(eip_status("BIND"), EipStatus::InUse);
        assert_eq!(eip_status("BIND_ENI"), EipStatus::InUse);
        assert_eq!(eip_status("UNBINDING"), EipStatus::Unassociating);
        assert_eq!(eip_status("CREATING"), EipStatus::Creating);
        assert_eq!(eip_status("OFFLINING"), EipStatus::Releasing);
    }

    #[test]
    fn run_instances_body_has_tencent_shapes() {
        let body = run_instances_body(&run_request(), "vpc-1");
        assert_eq!(
            body,
            json!({
                "Placement": {"Zone": "ap-guangzhou-3"},
                "InstanceType": "GN7.2XLARGE32",
                "ImageId": "img-1",
                "SystemDisk": {"DiskType": "CLOUD_PREMIUM", "DiskSize": 100},
                "VirtualPrivateCloud": {"VpcId": "vpc-1", "SubnetId": "subnet-1"},
                "SecurityGroupIds": ["sg-net", "sg-vm"],
                "InstanceName": "vm",
                "InstanceChargeType": "PREPAID",
                "InstanceChargePrepaid": {"Period": 3, "RenewFlag": "NOTIFY_AND_MANUAL_RENEW"},
                "InternetAccessible": {"InternetMaxBandwidthOut": 0, "PublicIpAssigned": false},
                "InstanceCount": 1,
                "LoginSettings": {"Password": "Pa55word!"},
                "TagSpecification": [{"ResourceType": "instance", "Tags": [{"Key": "owner", "Value": "me"}]}],
                "ClientToken": "tok-1",
            })
        );
        let mut req = run_request();
        req.charge = ChargeMode::OnDemand;
        req.login = Login::KeyPair("skey-1".into());
        req.tags.clear();
        let body = run_instances_body(&req, "vpc-1");
        assert_eq!(body["InstanceChargeType"], "POSTPAID_BY_HOUR");
        assert!(body.get("InstanceChargePrepaid").is_none());
        assert!(body.get("TagSpecification").is_none());
        assert_eq!(body["LoginSettings"], json!({"KeyIds": ["skey-1"]}));
    }

    #[test]
    fn extensions_are_typed_nested_and_never_override() {
        let mut req = run_request();
        req.extensions = [
            ("HostName", "\"007\""),
            ("UserData", "IyEvYmluL3No"),
            ("DataDisks.0.DiskSize", "200"),
            ("DataDisks.0.DiskType", "CLOUD_SSD"),
            ("EnhancedService.MonitorService.Enabled", "true"),
            ("CamRoleName", "admin"),
            ("DataDisks.0.SnapshotId", "snap-other"),
            ("InternetAccessible.PublicIpAssigned", "true"),
            ("Placement.ProjectId", "7"),
            ("DataDisks.1000.DiskSize", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let body = run_instances_body(&req, "vpc-1");
        assert_eq!(body["HostName"], "007");
        assert_eq!(body["UserData"], "IyEvYmluL3No");
        assert_eq!(
            body["DataDisks"],
            json!([{"DiskSize": 200, "DiskType": "CLOUD_SSD"}])
        );
        assert_eq!(body["EnhancedService"]["MonitorService"]["Enabled"], true);
        assert!(body.get("CamRoleName").is_none());
        assert_eq!(body["InternetAccessible"]["PublicIpAssigned"], false);
        assert_eq!(body["Placement"], json!({"Zone": "ap-guangzhou-3"}));
    }

    #[test]
    fn set_path_refuses_taken_and_crossing_paths() {
        let mut v = json!({"A": {"B": 1}, "L": [1]});
        assert!(!set_path(&mut v, "A.B", json!(2)));
        assert!(!set_path(&mut v, "A.B.C", json!(2)));
        assert!(!set_path(&mut v, "L.X", json!(2)));
        assert!(!set_path(&mut v, "A..C", json!(2)));
        assert!(set_path(&mut v, "A.C", json!(3)));
        assert!(set_path(&mut v, "L.1", json!(4)));
        assert_eq!(v, json!({"A": {"B": 1, "C": 3}, "L": [1, 4]}));
    }

    #[test]
    fn forbidden_extensions() {
        let p = &crate::PROFILE;
        for name in [
            "CamRoleName",
            "DataDisks.2.SnapshotId",
            "DisableApiTermination",
            "LaunchTemplate.LaunchTemplateId",
            "NetworkInterfaces",
            "Placement.Zone",
            "LoginSettings.Password",
            "TagSpecification.0.Tags",
            "ClientToken",
        ] {
            assert!(p.is_forbidden_extension(name), "{name}");
        }
        for name in [
            "HostName",
            "UserData",
            "DataDisks.0.DiskSize",
            "ActionTimer",
        ] {
            assert!(!p.is_forbidden_extension(name), "{name}");
        }
    }

    #[test]
    fn security_group_policies() {
        let rules = [
            PortRule {
                port: 22,
                source_cidr: "0.0.0.0/0".into(),
                description: "ssh".into(),
            },
            PortRule {
                port: 80,
                source_cidr: "10.0.0.0/8".into(),
                description: String::new(),
            },
        ];
        assert_eq!(
            create_policies_body("sg-1", &rules),
            json!({"SecurityGroupId": "sg-1", "SecurityGroupPolicySet": {"Ingress": [
                {"Protocol": "TCP", "Port": "22", "CidrBlock": "0.0.0.0/0", "Action": "ACCEPT", "PolicyDescription": "ssh"},
                {"Protocol": "TCP", "Port": "80", "CidrBlock": "10.0.0.0/8", "Action": "ACCEPT"},
            ]}})
        );
        let set: model::PolicySet = serde_json::from_value(json!({
            "Version": "7",
            "Ingress": [
                {"PolicyIndex": 0, "Protocol": "TCP", "Port": "22", "CidrBlock": "0.0.0.0/0", "Action": "ACCEPT", "PolicyDescription": "ssh"},
                {"PolicyIndex": 1, "Protocol": "tcp", "Port": "80-90", "CidrBlock": "0.0.0.0/0", "Action": "ACCEPT"},
                {"PolicyIndex": 2, "Protocol": "UDP", "Port": "53", "CidrBlock": "0.0.0.0/0", "Action": "ACCEPT"},
                {"PolicyIndex": 3, "Protocol": "TCP", "Port": "443", "CidrBlock": "0.0.0.0/0", "Action": "DROP"},
                {"PolicyIndex": 4, "Protocol": "TCP", "Port": "80", "CidrBlock": "10.0.0.0/8", "Action": "ACCEPT", "PolicyDescription": null},
                {"PolicyIndex": 5, "Protocol": "TCP", "Port": "8080", "CidrBlock": "", "SecurityGroupId": "sg-2", "Action": "ACCEPT"},
                {"PolicyIndex": 6, "Protocol": "ALL", "Port": "ALL", "CidrBlock": "0.0.0.0/0", "Action": "ACCEPT"},
            ]
        }))
        .unwrap();
        assert_eq!(ingress_rules(&set), rules);
        assert_eq!(matching_policy_indexes(&set, &rules[1..]), [4]);
        assert_eq!(
            delete_policies_body("sg-1", &set.version, &[4]),
            json!({"SecurityGroupId": "sg-1", "SecurityGroupPolicySet": {"Version": "7", "Ingress": [{"PolicyIndex": 4}]}})
        );
    }

    #[test]
    fn filters_pages_and_tags() {
        let tags: Tags = [
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
        ]
        .into();
        let mut body = filtered(tag_filters(&tags));
        set_page(&mut body, 100, 100, true);
        assert_eq!(
            body,
            json!({"Filters": [{"Name": "tag:a", "Values": ["1"]}, {"Name": "tag:b", "Values": ["2"]}], "Offset": "100", "Limit": "100"})
        );
        let mut body = filtered(Vec::new());
        set_page(&mut body, 0, 100, false);
        assert_eq!(body, json!({"Offset": 0, "Limit": 100}));
        assert_eq!(
            tags_json(&tags),
            json!([{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
        );
    }

    #[test]
    fn tag_api_bodies() {
        let resource = instance_resource("ap-guangzhou", "100001", "ins-1");
        assert_eq!(resource, "qcs::cvm:ap-guangzhou:uin/100001:instance/ins-1");
        let tags: Tags = (0..12)
            .map(|i| (format!("k{i:02}"), format!("v{i}")))
            .collect();
        let bodies = tag_resources_bodies(&resource, &tags);
        assert_eq!(bodies.len(), 2);
        assert_eq!(bodies[0]["Tags"].as_array().unwrap().len(), 10);
        assert_eq!(
            bodies[1]["Tags"][1],
            json!({"TagKey": "k11", "TagValue": "v11"})
        );
        assert_eq!(bodies[0]["ResourceList"], json!([resource]));
        let keys = vec!["a".to_string(), "a".to_string(), String::new()];
        assert_eq!(
            untag_resources_bodies(&resource, &keys),
            [json!({"ResourceList": [resource], "TagKeys": ["a"]})]
        );
        assert!(untag_resources_bodies(&resource, &[]).is_empty());
    }

    #[test]
    fn stock_request_and_answers() {
        let body = stock_body(
            Some("ap-guangzhou-3"),
            "GT4.4XLARGE96",
            ChargeMode::OnDemand,
        );
        assert_eq!(
            body,
            json!({"Filters": [
                {"Name": "zone", "Values": ["ap-guangzhou-3"]},
                {"Name": "instance-type", "Values": ["GT4.4XLARGE96"]},
                {"Name": "instance-charge-type", "Values": ["POSTPAID_BY_HOUR"]},
            ]})
        );
        let body = stock_body(None, "T", ChargeMode::Prepaid { months: 2 });
        assert_eq!(body["Filters"].as_array().map(Vec::len), Some(2));
        assert_eq!(body["Filters"][1]["Values"][0], "PREPAID");

        let answer: model::DescribeZoneInstanceConfigInfos = serde_json::from_value(json!({
            "InstanceTypeQuotaSet": [
                {"Zone": "z-3", "InstanceType": "T", "InstanceChargeType": "POSTPAID_BY_HOUR", "Status": "SELL", "StatusCategory": "EnoughStock", "Externals": {}, "Price": {"UnitPrice": 1.0}},
                {"Zone": "z-4", "InstanceType": "T", "InstanceChargeType": "POSTPAID_BY_HOUR", "Status": "SOLD_OUT", "StatusCategory": "WithoutStock"},
                {"Zone": "z-5", "InstanceType": "T", "InstanceChargeType": "PREPAID", "Status": "SELL"},
                {"Zone": "z-6", "InstanceType": "OTHER", "InstanceChargeType": "POSTPAID_BY_HOUR", "Status": "SELL"},
                {"Zone": "z-4", "InstanceType": "T", "InstanceChargeType": null, "Status": "SELL"}
            ],
            "RequestId": "r"
        }))
        .unwrap();
        let stock = zone_stock(answer.clone(), None, "T", ChargeMode::OnDemand);
        let got: Vec<(&str, bool)> = stock
            .iter()
            .map(|s| (s.zone.as_str(), s.available))
            .collect();
        assert_eq!(got, [("z-3", true), ("z-4", true)]);
        let stock = zone_stock(answer, Some("z-3"), "T", ChargeMode::Prepaid { months: 1 });
        assert!(stock.is_empty(), "{stock:?}");
        let empty: model::DescribeZoneInstanceConfigInfos =
            serde_json::from_value(json!({"InstanceTypeQuotaSet": null, "RequestId": "r"}))
                .unwrap();
        assert!(zone_stock(empty, None, "T", ChargeMode::OnDemand).is_empty());
    }

    #[test]
    fn prices() {
        let q = PriceQuery {
            region: "ap-guangzhou".into(),
            zone: Some("ap-guangzhou-3".into()),
            instance_type: "GN7.2XLARGE32".into(),
            image_id: None,
            system_disk: None,
            charge: ChargeMode::OnDemand,
            bandwidth: Some((10, BandwidthMode::Fixed)),
        };
        let body = price_body(&q);
        assert_eq!(body["InstanceChargeType"], "POSTPAID_BY_HOUR");
        assert_eq!(
            body["InternetAccessible"],
            json!({"InternetChargeType": "BANDWIDTH_POSTPAID_BY_HOUR", "InternetMaxBandwidthOut": 10, "PublicIpAssigned": true})
        );
        let answer: model::InquiryPrice = serde_json::from_value(json!({"Price": {
            "InstancePrice": {"UnitPrice": 10.0, "UnitPriceDiscount": 8.0, "ChargeUnit": "HOUR"},
            "BandwidthPrice": {"UnitPrice": 1.0, "UnitPriceDiscount": 0.5, "ChargeUnit": "HOUR"}
        }}))
        .unwrap();
        let price = to_price(&answer.price, ChargeMode::OnDemand);
        assert_eq!((price.original_price, price.discount_price), (11.0, 8.5));
        assert_eq!(price.unit, "Hour");
        let answer: model::InquiryPrice = serde_json::from_value(json!({"Price": {
            "InstancePrice": {"OriginalPrice": 300.0, "DiscountPrice": 240.0},
            "BandwidthPrice": null
        }}))
        .unwrap();
        let price = to_price(&answer.price, ChargeMode::Prepaid { months: 3 });
        assert_eq!((price.original_price, price.trade_price), (100.0, 80.0));
        assert_eq!(price.unit, "Month");
        // Traffic is priced per GB: not added to an hourly price.
        let answer: model::InquiryPrice = serde_json::from_value(json!({"Price": {
            "InstancePrice": {"UnitPrice": 10.0, "UnitPriceDiscount": 8.0, "ChargeUnit": "HOUR"},
            "BandwidthPrice": {"UnitPrice": 0.8, "UnitPriceDiscount": 0.8, "ChargeUnit": "GB"}
        }}))
        .unwrap();
        assert_eq!(
            to_price(&answer.price, ChargeMode::OnDemand).discount_price,
            8.0
        );
    }

    #[test]
    fn instances_and_eips_from_answers() {
        let r: model::DescribeInstances = serde_json::from_value(json!({
            "TotalCount": 1,
            "InstanceSet": [{
                "InstanceId": "ins-1", "InstanceState": "RUNNING", "InstanceType": "GN7.2XLARGE32",
                "Placement": {"Zone": "ap-guangzhou-3"}, "PrivateIpAddresses": ["10.0.0.5"],
                "PublicIpAddresses": null, "Tags": [{"Key": "k", "Value": "v"}]
            }]
        }))
        .unwrap();
        let i = to_instance(r.instance_set.into_iter().next().unwrap());
        assert_eq!(i.id, "ins-1");
        assert_eq!(i.status, InstanceStatus::Running);
        assert_eq!(i.zone, "ap-guangzhou-3");
        assert_eq!(i.private_ip.as_deref(), Some("10.0.0.5"));
        assert_eq!(i.public_ip, None);
        assert_eq!(i.tags.get("k").map(String::as_str), Some("v"));
        // SHUTDOWN: in the recycle bin after a TerminateInstances (gone), or expired (stopped).
        let shut = |source: &str| {
            let item: model::InstanceItem = serde_json::from_value(json!({
                "InstanceId": "ins-2", "InstanceState": "SHUTDOWN", "IsolatedSource": source,
                "InstanceChargeType": "PREPAID"
            }))
            .unwrap();
            to_instance(item).status
        };
        assert_eq!(shut("MANMADE"), InstanceStatus::Terminated);
        assert_eq!(shut("EXPIRE"), InstanceStatus::Stopped);
        assert_eq!(shut("ARREAR"), InstanceStatus::Stopped);
        // TaskId: a string in the EIP answers, an integer in DescribeTaskResult.
        let t: model::Task = serde_json::from_value(json!({"TaskId": "123"})).unwrap();
        assert_eq!(t.task_id, "123");
        let t: model::Task = serde_json::from_value(json!({"TaskId": 123})).unwrap();
        assert_eq!(t.task_id, "123");
        let a: model::AddressItem = serde_json::from_value(json!({
            "AddressId": "eip-1", "AddressIp": "1.2.3.4", "AddressStatus": "BIND",
            "InstanceId": "ins-1", "Bandwidth": 5, "TagSet": []
        }))
        .unwrap();
        let e = to_eip(a);
        assert_eq!(e.allocation_id, "eip-1");
        assert_eq!(e.status, EipStatus::InUse);
        assert_eq!(e.instance_id.as_deref(), Some("ins-1"));
        assert_eq!(e.bandwidth_mbps, 5);
    }
}
