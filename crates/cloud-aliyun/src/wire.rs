//! Alibaba Cloud's wire format, as pure functions: request parameters built from neutral
//! requests, and neutral values read from responses. Unit-tested without any server.

use mce_cloud::{
    BandwidthMode, ChargeMode, CloudError, Eip, EipStatus, ErrorClass, Instance, InstanceStatus,
    Login, PortRule, PriceQuery, ResourceKind, RunInstance, Tags, ZoneStock,
};

use crate::client::PROVIDER;
use crate::{Params, Service, TAG_BATCH, model};

/// Alibaba Cloud wire name of a charge mode (`InstanceChargeType`).
pub fn charge_type_wire(charge: ChargeMode) -> &'static str {
    match charge {
        ChargeMode::OnDemand => "PostPaid",
        ChargeMode::Prepaid { .. } => "PrePaid",
    }
}

/// Alibaba Cloud wire name of a bandwidth mode (`InternetChargeType`).
pub fn bandwidth_mode_wire(mode: BandwidthMode) -> &'static str {
    match mode {
        BandwidthMode::Traffic => "PayByTraffic",
        BandwidthMode::Fixed => "PayByBandwidth",
    }
}

/// ECS instance status → provider-neutral status.
pub fn instance_status(status: &str) -> InstanceStatus {
    match status {
        "Pending" => InstanceStatus::Pending,
        "Starting" => InstanceStatus::Starting,
        "Running" => InstanceStatus::Running,
        "Stopping" => InstanceStatus::Stopping,
        "Stopped" => InstanceStatus::Stopped,
        "Deleted" | "Released" | "Deleting" => InstanceStatus::Terminated,
        other => InstanceStatus::Other(other.to_string()),
    }
}

/// EIP status → provider-neutral status.
pub fn eip_status(status: &str) -> EipStatus {
    match status {
        "Available" => EipStatus::Available,
        "Associating" => EipStatus::Associating,
        "InUse" => EipStatus::InUse,
        "Unassociating" => EipStatus::Unassociating,
        "Releasing" => EipStatus::Releasing,
        other => EipStatus::Other(other.to_string()),
    }
}

/// Parameters RunInstances extensions may never set: those the driver owns.
pub fn is_reserved_run_param(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "Action",
        "Version",
        "Format",
        "AccessKeyId",
        "Signature",
        "SignatureMethod",
        "SignatureNonce",
        "SignatureVersion",
        "Timestamp",
        "RegionId",
        "ZoneId",
        "InstanceType",
        "ImageId",
        "VSwitchId",
        "SecurityGroupId",
        "SecurityGroupIds",
        "InstanceName",
        "Description",
        "Password",
        "PasswordInherit",
        "KeyPairName",
        "InstanceChargeType",
        "Period",
        "PeriodUnit",
        "InternetMaxBandwidthOut",
        "Amount",
        "MinAmount",
        "ClientToken",
        "DryRun",
    ];
    const PREFIXES: &[&str] = &["Tag.", "SystemDisk.", "SecurityGroupIds.", "Signature"];
    EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// RunInstances parameters no CloudProvider may allow as extensions (patterns of
/// [`mce_cloud::wire_name_matches`]): those the driver builds itself, and those that reach
/// beyond the tenant's instance — cloud credentials on the VM (`RamRoleName`, `Arn.*`), a NIC in
/// another network (`NetworkInterface.*`), any snapshot or key of the account, deletion blocked
/// (`DeletionProtection`) or disks left behind (`DeleteWithInstance`), a launch template
/// overriding everything, another resource group or a dedicated host.
pub const FORBIDDEN_RUN_EXTENSIONS: &[&str] = &[
    // Built by the driver.
    "Action",
    "Version",
    "Format",
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureVersion",
    "SignatureType",
    "Timestamp",
    "RegionId",
    "ZoneId",
    "InstanceType",
    "ImageId",
    "VSwitchId",
    "SecurityGroupId",
    "SecurityGroupIds.*",
    "InstanceName",
    "Description",
    "Password",
    "PasswordInherit",
    "KeyPairName",
    "InstanceChargeType",
    "Period",
    "PeriodUnit",
    "InternetMaxBandwidthOut",
    "Amount",
    "MinAmount",
    "ClientToken",
    "DryRun",
    "Tag.*",
    "SystemDisk.*",
    // Beyond the tenant's own instance.
    "RamRoleName",
    "Arn.*",
    "NetworkInterface.*",
    "PrivateIpAddress",
    "DataDisk.N.SnapshotId",
    "DataDisk.N.DeleteWithInstance",
    "DataDisk.N.KMSKeyId",
    "KMSKeyId",
    "DeletionProtection",
    "LaunchTemplateId",
    "LaunchTemplateName",
    "LaunchTemplateVersion",
    "ResourceGroupId",
    "DedicatedHostId",
    "DedicatedHostClusterId",
    "DeploymentSetId",
    "HpcClusterId",
    "StorageSetId",
];

/// The RunInstances parameters of a request (extensions included, never overriding ours).
pub fn run_instance_params(req: &RunInstance) -> Params {
    let mut p = Params::new();
    p.set("RegionId", &req.region)
        .set("ZoneId", &req.zone)
        .set("InstanceType", &req.instance_type)
        .set("ImageId", &req.image_id)
        .set("VSwitchId", &req.subnet_id);
    // `SecurityGroupIds.N`, N from 1, in order, without repeats.
    let mut groups: Vec<&str> = Vec::with_capacity(req.security_group_ids.len());
    for id in &req.security_group_ids {
        if !id.is_empty() && !groups.contains(&id.as_str()) {
            groups.push(id);
        }
    }
    for (i, id) in groups.iter().enumerate() {
        p.set(format!("SecurityGroupIds.{}", i + 1), id);
    }
    p.set_opt("InstanceName", Some(&req.name))
        .set_opt("Description", Some(&req.description))
        .nested("SystemDisk", "Category", &req.system_disk.category)
        .nested("SystemDisk", "Size", req.system_disk.size_gib)
        .set("Amount", 1)
        .set("InternetMaxBandwidthOut", 0)
        .set("InstanceChargeType", charge_type_wire(req.charge));
    if let ChargeMode::Prepaid { months } = req.charge {
        p.set("Period", months).set("PeriodUnit", "Month");
    }
    match &req.login {
        Login::None => {}
        Login::Password(secret) => {
            p.set("Password", secret.expose());
        }
        Login::KeyPair(name) => {
            p.set("KeyPairName", name);
        }
    }
    p.tags(&req.tags);
    p.set_opt("ClientToken", Some(&req.client_token));
    for (name, value) in &req.extensions {
        // The operator refuses these before any call; this is the driver's own last line.
        let forbidden = crate::PROFILE.is_forbidden_extension(name);
        if is_reserved_run_param(name) || forbidden || !p.set_if_absent(name, value) {
            tracing::warn!(parameter = %name, "ignoring a forbidden RunInstances extension");
        }
    }
    p
}

/// TagResources parameters for one instance, in batches of at most [`TAG_BATCH`] tags.
pub fn tag_instance_params(instance_id: &str, tags: &Tags) -> Vec<Params> {
    tag_resource_params("instance", instance_id, tags)
}

/// UntagResources parameters for one instance, in batches of at most [`TAG_BATCH`] keys.
/// Never sets `All`: an empty key list yields no call at all.
pub fn untag_instance_params(instance_id: &str, keys: &[String]) -> Vec<Params> {
    untag_resource_params("instance", instance_id, keys)
}

/// Where a network resource is tagged: the API, its `ResourceType`, and the action names
/// (the VPC API spells its removal `UnTagResources`, the ECS API `UntagResources`).
pub fn tag_api(kind: ResourceKind) -> (Service, &'static str, &'static str, &'static str) {
    match kind {
        ResourceKind::Vpc => (Service::Vpc, "VPC", "TagResources", "UnTagResources"),
        ResourceKind::Subnet => (Service::Vpc, "VSWITCH", "TagResources", "UnTagResources"),
        ResourceKind::SecurityGroup => (
            Service::Ecs,
            "securitygroup",
            "TagResources",
            "UntagResources",
        ),
    }
}

/// TagResources parameters for one resource of `resource_type`, in batches of at most
/// [`TAG_BATCH`] tags.
pub fn tag_resource_params(resource_type: &str, id: &str, tags: &Tags) -> Vec<Params> {
    let pairs: Vec<(&String, &String)> = tags.iter().collect();
    pairs
        .chunks(TAG_BATCH)
        .map(|chunk| {
            let batch: Tags = chunk
                .iter()
                .map(|(k, v)| ((*k).clone(), (*v).clone()))
                .collect();
            let mut p = Params::new()
                .with("ResourceType", resource_type)
                .with("ResourceId.1", id);
            p.tags(&batch);
            p
        })
        .collect()
}

/// Untag parameters for one resource of `resource_type`, in batches of at most
/// [`TAG_BATCH`] keys. Never sets `All`: an empty key list yields no call at all.
pub fn untag_resource_params(resource_type: &str, id: &str, keys: &[String]) -> Vec<Params> {
    let mut unique: Vec<&str> = Vec::with_capacity(keys.len());
    for k in keys {
        if !k.is_empty() && !unique.contains(&k.as_str()) {
            unique.push(k);
        }
    }
    unique
        .chunks(TAG_BATCH)
        .map(|chunk| {
            let mut p = Params::new()
                .with("ResourceType", resource_type)
                .with("ResourceId.1", id);
            for (i, k) in chunk.iter().enumerate() {
                p.set(format!("TagKey.{}", i + 1), k);
            }
            p
        })
        .collect()
}

/// The DescribePrice parameters of a price query.
pub fn price_params(q: &PriceQuery) -> Params {
    let mut p = Params::new();
    p.set("RegionId", &q.region)
        .set("ResourceType", "instance")
        .set("InstanceType", &q.instance_type)
        .set("Amount", 1)
        .set_opt("ZoneId", q.zone.as_deref())
        .set_opt("ImageId", q.image_id.as_deref());
    if let Some(disk) = &q.system_disk {
        p.nested("SystemDisk", "Category", &disk.category).nested(
            "SystemDisk",
            "Size",
            disk.size_gib,
        );
    }
    match q.bandwidth {
        Some((mbps, mode)) => {
            p.set("InternetChargeType", bandwidth_mode_wire(mode))
                .set("InternetMaxBandwidthOut", mbps);
        }
        None => {
            p.set("InternetMaxBandwidthOut", 0);
        }
    }
    match q.charge {
        ChargeMode::OnDemand => {
            p.set("PriceUnit", "Hour");
        }
        ChargeMode::Prepaid { months } => {
            p.set("PriceUnit", "Month").set("Period", months.max(1));
        }
    }
    p
}

/// The DescribeAvailableResource parameters asking where `instance_type` can be launched:
/// `DestinationResource=InstanceType` with the type named, I/O optimized (every type sold
/// today is, and the API documentation asks for it with this destination).
pub fn stock_params(
    region: &str,
    zone: Option<&str>,
    instance_type: &str,
    charge: ChargeMode,
) -> Params {
    let mut p = Params::new();
    p.set("RegionId", region)
        .set("DestinationResource", "InstanceType")
        .set("InstanceType", instance_type)
        .set("InstanceChargeType", charge_type_wire(charge))
        .set("IoOptimized", "optimized")
        .set_opt("ZoneId", zone.filter(|z| !z.is_empty()));
    p
}

/// Launchable per the status pair of DescribeAvailableResource: `Available` with stock
/// (`WithStock`, or `ClosedWithStock` — stock left in a zone closing to new buyers of the
/// type). An answer without a category (older API versions) goes by the status alone.
fn launchable(status: &str, category: &str) -> bool {
    status == "Available" && matches!(category, "" | "WithStock" | "ClosedWithStock")
}

/// The zones of a DescribeAvailableResource answer offering `instance_type`, each launchable or
/// not. A zone whose resources do not name the type does not offer it and is left out; `zone`
/// keeps only that zone, whatever the answer holds.
pub fn zone_stock(
    r: model::DescribeAvailableResource,
    zone: Option<&str>,
    instance_type: &str,
) -> Vec<ZoneStock> {
    let mut out: Vec<ZoneStock> = Vec::new();
    for z in r.available_zones.available_zone {
        if zone.is_some_and(|want| !want.is_empty() && want != z.zone_id) || z.zone_id.is_empty() {
            continue;
        }
        let offered = z
            .available_resources
            .available_resource
            .iter()
            .filter(|a| a.kind.is_empty() || a.kind == "InstanceType")
            .flat_map(|a| &a.supported_resources.supported_resource)
            .filter(|s| s.value == instance_type)
            .map(|s| launchable(&s.status, &s.status_category))
            .reduce(|a, b| a || b);
        let Some(available) = offered else { continue };
        match out.iter_mut().find(|s| s.zone == z.zone_id) {
            Some(seen) => seen.available |= available,
            None => out.push(ZoneStock {
                zone: z.zone_id,
                available,
            }),
        }
    }
    out
}

/// A `p/p` port range as one port; ranges and protocols without ports are not single ports.
pub fn single_port(range: &str) -> Option<u16> {
    let (from, to) = range.split_once('/')?;
    let from: u16 = from.trim().parse().ok()?;
    let to: u16 = to.trim().parse().ok()?;
    (from == to).then_some(from)
}

/// Inbound TCP accept rules on single ports.
pub fn ingress_rules(permissions: &[model::PermissionItem]) -> Vec<PortRule> {
    permissions
        .iter()
        .filter(|p| p.direction.is_empty() || p.direction.eq_ignore_ascii_case("ingress"))
        .filter(|p| p.ip_protocol.eq_ignore_ascii_case("tcp"))
        .filter(|p| p.policy.is_empty() || p.policy.eq_ignore_ascii_case("accept"))
        .filter_map(|p| {
            Some(PortRule {
                port: single_port(&p.port_range)?,
                source_cidr: p.source_cidr_ip.clone(),
                description: p.description.clone(),
            })
        })
        .collect()
}

pub(crate) fn permission_params(group_id: &str, rules: &[PortRule]) -> Params {
    let mut p = Params::new().with("SecurityGroupId", group_id);
    p.repeated(
        "Permissions",
        rules.iter().map(|r| {
            let mut fields = vec![
                ("IpProtocol", "tcp".to_string()),
                ("PortRange", format!("{0}/{0}", r.port)),
                ("SourceCidrIp", r.source_cidr.clone()),
                ("Policy", "accept".to_string()),
            ];
            if !r.description.is_empty() {
                fields.push(("Description", r.description.clone()));
            }
            fields
        }),
    );
    p
}

pub(crate) fn to_instance(i: model::InstanceItem) -> Instance {
    let eip_ip = Some(i.eip_address.ip_address).filter(|s| !s.is_empty());
    let public_ip = eip_ip.or_else(|| {
        i.public_ip_address
            .ip_address
            .into_iter()
            .find(|s| !s.is_empty())
    });
    Instance {
        status: instance_status(&i.status),
        instance_type: i.instance_type,
        zone: i.zone_id,
        private_ip: i
            .vpc_attributes
            .private_ip_address
            .ip_address
            .into_iter()
            .find(|s| !s.is_empty()),
        public_ip,
        eip_allocation_id: Some(i.eip_address.allocation_id).filter(|s| !s.is_empty()),
        tags: i.tags.to_tags(),
        id: i.instance_id,
    }
}

pub(crate) fn to_eip(e: model::EipItem) -> Eip {
    Eip {
        status: eip_status(&e.status),
        instance_id: Some(e.instance_id).filter(|s| !s.is_empty()),
        bandwidth_mbps: u32::try_from(e.bandwidth).unwrap_or(u32::MAX),
        tags: e.tags.to_tags(),
        allocation_id: e.allocation_id,
        ip_address: e.ip_address,
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
    use crate::{AliyunConfig, AliyunDriver};
    use mce_cloud::Credentials;
    use mce_cloud::{Secret, SystemDisk};

    fn run_request() -> RunInstance {
        RunInstance {
            region: "cn-hangzhou".into(),
            zone: "cn-hangzhou-i".into(),
            instance_type: "ecs.gn7i-c8g1.2xlarge".into(),
            image_id: "img-1".into(),
            subnet_id: "vsw-1".into(),
            security_group_ids: vec!["sg-net".into(), "sg-vm".into()],
            name: "vm".into(),
            description: String::new(),
            system_disk: SystemDisk {
                category: "cloud_essd".into(),
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
    fn stock_request_and_answers() {
        let p = stock_params(
            "cn-hangzhou",
            Some("cn-hangzhou-i"),
            "ecs.gn7-c12g1.3xlarge",
            ChargeMode::Prepaid { months: 1 },
        );
        let get = |k: &str| p.get(k).map(String::from);
        assert_eq!(get("DestinationResource").as_deref(), Some("InstanceType"));
        assert_eq!(get("InstanceChargeType").as_deref(), Some("PrePaid"));
        assert_eq!(get("ZoneId").as_deref(), Some("cn-hangzhou-i"));
        let all = stock_params("cn-hangzhou", None, "t", ChargeMode::OnDemand);
        assert_eq!(all.get("ZoneId"), None);
        assert_eq!(all.get("InstanceChargeType"), Some("PostPaid"));

        let answer: model::DescribeAvailableResource = serde_json::from_str(
            r#"{"RequestId":"r","AvailableZones":{"AvailableZone":[
              {"ZoneId":"z-i","RegionId":"r","Status":"Available","StatusCategory":"WithStock",
               "AvailableResources":{"AvailableResource":[{"Type":"InstanceType","SupportedResources":
               {"SupportedResource":[{"Value":"t","Status":"Available","StatusCategory":"WithStock"},
                                     {"Value":"other","Status":"SoldOut","StatusCategory":"WithoutStock"}]}}]}},
              {"ZoneId":"z-j","Status":"SoldOut","StatusCategory":"WithoutStock",
               "AvailableResources":{"AvailableResource":[{"Type":"InstanceType","SupportedResources":
               {"SupportedResource":[{"Value":"t","Status":"SoldOut","StatusCategory":"WithoutStock"}]}}]}},
              {"ZoneId":"z-k","Status":"Available","StatusCategory":"ClosedWithStock",
               "AvailableResources":{"AvailableResource":[{"Type":"InstanceType","SupportedResources":
               {"SupportedResource":[{"Value":"t","Status":"Available","StatusCategory":"ClosedWithStock"}]}}]}},
              {"ZoneId":"z-l","Status":"Available","StatusCategory":"WithStock",
               "AvailableResources":{"AvailableResource":[{"Type":"InstanceType","SupportedResources":
               {"SupportedResource":[{"Value":"other","Status":"Available","StatusCategory":"WithStock"}]}}]}},
              {"ZoneId":"z-m","Status":"Available","StatusCategory":"ClosedWithoutStock",
               "AvailableResources":{"AvailableResource":[{"Type":"InstanceType","SupportedResources":
               {"SupportedResource":[{"Value":"t","Status":"Available","StatusCategory":"ClosedWithoutStock"}]}}]}}
            ]}}"#,
        )
        .unwrap();
        let stock = zone_stock(answer, None, "t");
        let got: Vec<(&str, bool)> = stock
            .iter()
            .map(|s| (s.zone.as_str(), s.available))
            .collect();
        assert_eq!(
            got,
            [("z-i", true), ("z-j", false), ("z-k", true), ("z-m", false)]
        );
        let empty: model::DescribeAvailableResource =
            serde_json::from_str(r#"{"RequestId":"r"}"#).unwrap();
        assert!(zone_stock(empty, None, "t").is_empty());
        let one: model::DescribeAvailableResource = serde_json::from_str(
            r#"{"AvailableZones":{"AvailableZone":[{"ZoneId":"z-i","AvailableResources":{"AvailableResource":[
              {"Type":"InstanceType","SupportedResources":{"SupportedResource":[{"Value":"t","Status":"Available"}]}}]}},
              {"ZoneId":"z-j","AvailableResources":{"AvailableResource":[
              {"Type":"InstanceType","SupportedResources":{"SupportedResource":[{"Value":"t","Status":"Available"}]}}]}}]}}"#,
        )
        .unwrap();
        assert_eq!(
            zone_stock(one, Some("z-j"), "t"),
            [ZoneStock {
                zone: "z-j".into(),
                available: true
            }]
        );
    }

    #[test]
    fn wire_names() {
        assert_eq!(charge_type_wire(ChargeMode::OnDemand), "PostPaid");
        assert_eq!(
            charge_type_wire(ChargeMode::Prepaid { months: 1 }),
            "PrePaid"
        );
        assert_eq!(bandwidth_mode_wire(BandwidthMode::Traffic), "PayByTraffic");
        assert_eq!(bandwidth_mode_wire(BandwidthMode::Fixed), "PayByBandwidth");
    }

    #[test]
    fn statuses() {
        assert_eq!(instance_status("Pending"), InstanceStatus::Pending);
        assert_eq!(instance_status("Starting"), InstanceStatus::Starting);
        assert_eq!(instance_status("Running"), InstanceStatus::Running);
        assert_eq!(instance_status("Stopping"), InstanceStatus::Stopping);
        assert_eq!(instance_status("Stopped"), InstanceStatus::Stopped);
        assert_eq!(
            instance_status("Weird"),
            InstanceStatus::Other("Weird".into())
        );
        assert_eq!(eip_status("InUse"), EipStatus::InUse);
        assert_eq!(eip_status("Available"), EipStatus::Available);
        assert_eq!(eip_status("Associating"), EipStatus::Associating);
        assert_eq!(eip_status("Unassociating"), EipStatus::Unassociating);
        assert_eq!(eip_status("X"), EipStatus::Other("X".into()));
    }

    #[test]
    fn run_instance_parameters() {
        let p = run_instance_params(&run_request());
        assert_eq!(p.get("Amount"), Some("1"));
        assert_eq!(p.get("InternetMaxBandwidthOut"), Some("0"));
        assert_eq!(p.get("InstanceChargeType"), Some("PrePaid"));
        assert_eq!(p.get("Period"), Some("3"));
        assert_eq!(p.get("PeriodUnit"), Some("Month"));
        assert_eq!(p.get("Password"), Some("Pa55word!"));
        assert_eq!(p.get("KeyPairName"), None);
        assert_eq!(p.get("SystemDisk.Category"), Some("cloud_essd"));
        assert_eq!(p.get("SystemDisk.Size"), Some("100"));
        assert_eq!(p.get("Tag.1.Key"), Some("owner"));
        assert_eq!(p.get("ClientToken"), Some("tok-1"));
        assert_eq!(p.get("VSwitchId"), Some("vsw-1"));
        assert_eq!(p.get("SecurityGroupIds.1"), Some("sg-net"));
        assert_eq!(p.get("SecurityGroupIds.2"), Some("sg-vm"));
        assert_eq!(p.get("SecurityGroupIds.3"), None);
        assert_eq!(p.get("SecurityGroupId"), None);
        assert_eq!(p.get("Description"), None);

        let mut req = run_request();
        req.charge = ChargeMode::OnDemand;
        req.login = Login::KeyPair("kp".into());
        let p = run_instance_params(&req);
        assert_eq!(p.get("InstanceChargeType"), Some("PostPaid"));
        assert_eq!(p.get("Period"), None);
        assert_eq!(p.get("Password"), None);
        assert_eq!(p.get("KeyPairName"), Some("kp"));

        // Repeats and empty ids are dropped; numbering stays dense.
        let mut req = run_request();
        req.security_group_ids = vec!["sg-a".into(), String::new(), "sg-b".into(), "sg-a".into()];
        let p = run_instance_params(&req);
        assert_eq!(p.get("SecurityGroupIds.1"), Some("sg-a"));
        assert_eq!(p.get("SecurityGroupIds.2"), Some("sg-b"));
        assert_eq!(p.get("SecurityGroupIds.3"), None);
    }

    #[test]
    fn extensions_cannot_add_security_groups() {
        let mut req = run_request();
        req.extensions = [
            ("SecurityGroupIds.3", "sg-evil"),
            ("SecurityGroupId", "sg-evil"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = run_instance_params(&req);
        assert_eq!(p.get("SecurityGroupIds.3"), None);
        assert_eq!(p.get("SecurityGroupId"), None);
    }

    #[test]
    fn tag_parameters() {
        let tags: Tags = (0..25)
            .map(|i| (format!("k{i:02}"), format!("v{i}")))
            .collect();
        let batches = tag_instance_params("i-1", &tags);
        assert_eq!(batches.len(), 2);
        let p = &batches[0];
        assert_eq!(p.get("ResourceType"), Some("instance"));
        assert_eq!(p.get("ResourceId.1"), Some("i-1"));
        assert_eq!(p.get("Tag.1.Key"), Some("k00"));
        assert_eq!(p.get("Tag.1.Value"), Some("v0"));
        assert_eq!(p.get("Tag.20.Key"), Some("k19"));
        assert_eq!(p.get("Tag.21.Key"), None);
        assert_eq!(batches[1].get("Tag.1.Key"), Some("k20"));
        assert_eq!(batches[1].get("Tag.5.Key"), Some("k24"));
        assert!(tag_instance_params("i-1", &Tags::new()).is_empty());

        let keys: Vec<String> = ["a", "b", "a", ""].iter().map(|k| k.to_string()).collect();
        let batches = untag_instance_params("i-1", &keys);
        assert_eq!(batches.len(), 1);
        let p = &batches[0];
        assert_eq!(p.get("ResourceType"), Some("instance"));
        assert_eq!(p.get("ResourceId.1"), Some("i-1"));
        assert_eq!(p.get("TagKey.1"), Some("a"));
        assert_eq!(p.get("TagKey.2"), Some("b"));
        assert_eq!(p.get("TagKey.3"), None);
        assert_eq!(p.get("All"), None);
        assert!(untag_instance_params("i-1", &[]).is_empty());
        let many: Vec<String> = (0..41).map(|i| format!("k{i}")).collect();
        let batches = untag_instance_params("i-1", &many);
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[2].get("TagKey.1"), Some("k40"));
    }

    #[test]
    fn extensions_never_override_driver_parameters() {
        let mut req = run_request();
        req.charge = ChargeMode::OnDemand;
        req.login = Login::None;
        req.extensions = [
            ("InstanceType", "ecs.evil"),
            ("InternetMaxBandwidthOut", "100"),
            ("Amount", "10"),
            ("Tag.9.Key", "x"),
            ("Period", "12"),
            ("Password", "x"),
            ("SystemDisk.Size", "1"),
            ("HostName", "box-1"),
            ("DeletionProtection", "true"),
            ("RamRoleName", "admin"),
            ("NetworkInterface.1.VSwitchId", "vsw-other"),
            ("DataDisk.1.SnapshotId", "s-other"),
            ("DataDisk.1.Size", "100"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = run_instance_params(&req);
        assert_eq!(p.get("InstanceType"), Some("ecs.gn7i-c8g1.2xlarge"));
        assert_eq!(p.get("InternetMaxBandwidthOut"), Some("0"));
        assert_eq!(p.get("Amount"), Some("1"));
        assert_eq!(p.get("Tag.9.Key"), None);
        assert_eq!(p.get("Period"), None);
        assert_eq!(p.get("Password"), None);
        assert_eq!(p.get("SystemDisk.Size"), Some("100"));
        assert_eq!(p.get("HostName"), Some("box-1"));
        assert_eq!(p.get("DataDisk.1.Size"), Some("100"));
        for name in [
            "DeletionProtection",
            "RamRoleName",
            "NetworkInterface.1.VSwitchId",
            "DataDisk.1.SnapshotId",
        ] {
            assert_eq!(p.get(name), None, "{name}");
        }
        // Every parameter the driver builds is forbidden to extensions.
        for (name, _) in run_instance_params(&run_request()).pairs() {
            assert!(crate::PROFILE.is_forbidden_extension(name), "{name}");
        }
    }

    #[test]
    fn price_parameters() {
        let mut q = PriceQuery {
            region: "cn-hangzhou".into(),
            zone: None,
            instance_type: "ecs.g7.large".into(),
            image_id: None,
            system_disk: Some(SystemDisk {
                category: "cloud_essd".into(),
                size_gib: 40,
            }),
            charge: ChargeMode::OnDemand,
            bandwidth: Some((5, BandwidthMode::Fixed)),
        };
        let p = price_params(&q);
        assert_eq!(p.get("ResourceType"), Some("instance"));
        assert_eq!(p.get("PriceUnit"), Some("Hour"));
        assert_eq!(p.get("Period"), None);
        assert_eq!(p.get("InternetChargeType"), Some("PayByBandwidth"));
        assert_eq!(p.get("InternetMaxBandwidthOut"), Some("5"));
        assert_eq!(p.get("ZoneId"), None);
        q.charge = ChargeMode::Prepaid { months: 6 };
        let p = price_params(&q);
        assert_eq!(p.get("PriceUnit"), Some("Month"));
        assert_eq!(p.get("Period"), Some("6"));
    }

    #[test]
    fn ingress_keeps_single_port_tcp_accept_rules() {
        let perm = |proto: &str, range: &str, policy: &str, dir: &str| model::PermissionItem {
            ip_protocol: proto.into(),
            port_range: range.into(),
            source_cidr_ip: "0.0.0.0/0".into(),
            policy: policy.into(),
            description: "d".into(),
            direction: dir.into(),
        };
        let rules = ingress_rules(&[
            perm("TCP", "22/22", "Accept", "ingress"),
            perm("tcp", "80/80", "accept", ""),
            perm("UDP", "53/53", "Accept", "ingress"),
            perm("TCP", "1/1024", "Accept", "ingress"),
            perm("TCP", "443/443", "Drop", "ingress"),
            perm("TCP", "8080/8080", "Accept", "egress"),
            perm("ICMP", "-1/-1", "Accept", "ingress"),
        ]);
        let ports: Vec<u16> = rules.iter().map(|r| r.port).collect();
        assert_eq!(ports, vec![22, 80]);
        assert_eq!(rules[0].description, "d");
        assert_eq!(single_port("22/22"), Some(22));
        assert_eq!(single_port("-1/-1"), None);
    }

    #[test]
    fn permission_flattening() {
        let p = permission_params(
            "sg-1",
            &[
                PortRule {
                    port: 22,
                    source_cidr: "10.0.0.0/8".into(),
                    description: "ssh".into(),
                },
                PortRule {
                    port: 443,
                    source_cidr: "0.0.0.0/0".into(),
                    description: String::new(),
                },
            ],
        );
        assert_eq!(p.get("Permissions.1.IpProtocol"), Some("tcp"));
        assert_eq!(p.get("Permissions.1.PortRange"), Some("22/22"));
        assert_eq!(p.get("Permissions.1.SourceCidrIp"), Some("10.0.0.0/8"));
        assert_eq!(p.get("Permissions.1.Policy"), Some("accept"));
        assert_eq!(p.get("Permissions.1.Description"), Some("ssh"));
        assert_eq!(p.get("Permissions.2.PortRange"), Some("443/443"));
        assert_eq!(p.get("Permissions.2.Description"), None);
    }

    #[test]
    fn instance_mapping_prefers_the_eip() {
        let item: model::InstanceItem = serde_json::from_str(
            r#"{"InstanceId":"i-1","Status":"Running","InstanceType":"t","ZoneId":"z",
            "PublicIpAddress":{"IpAddress":["8.8.8.8"]},"EipAddress":{"IpAddress":"1.1.1.1","AllocationId":"eip-1"},
            "VpcAttributes":{"PrivateIpAddress":{"IpAddress":["10.0.0.2"]}}}"#,
        )
        .unwrap();
        let i = to_instance(item);
        assert_eq!(i.public_ip.as_deref(), Some("1.1.1.1"));
        assert_eq!(i.eip_allocation_id.as_deref(), Some("eip-1"));
        assert_eq!(i.private_ip.as_deref(), Some("10.0.0.2"));
        assert_eq!(i.status, InstanceStatus::Running);
        let bare: model::InstanceItem =
            serde_json::from_str(r#"{"InstanceId":"i-2","Status":"Pending"}"#).unwrap();
        let i = to_instance(bare);
        assert_eq!(i.public_ip, None);
        assert_eq!(i.eip_allocation_id, None);
    }

    #[test]
    fn config_rejects_bad_endpoints() {
        let creds = Credentials {
            access_key_id: "id".into(),
            access_key_secret: Secret::new("s"),
        };
        assert!(
            AliyunDriver::new(AliyunConfig::new(creds.clone()).with_endpoint("ftp://x")).is_err()
        );
        assert!(
            AliyunDriver::new(AliyunConfig::new(creds).with_endpoint("http://127.0.0.1:1")).is_ok()
        );
    }
}
