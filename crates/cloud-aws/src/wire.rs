//! The EC2 Query wire format, as pure functions: form parameters built from neutral requests
//! (`Filter.1.Name`, `TagSpecification.1.Tag.1.Key`, `IpPermissions.1.IpRanges.1.CidrIp`, ...)
//! and neutral values read from XML answers. Unit-tested without any server.

use mce_cloud::{
    BandwidthMode, ChargeMode, Eip, EipStatus, Instance, InstanceStatus, PortRule, RunInstance,
    Tags, ZoneStock,
};

use crate::sign::uri_encode;
use crate::xml::Node;

/// The EC2 API version every call names.
pub const EC2_VERSION: &str = "2016-11-15";

/// Tag the driver puts on an EIP to remember the ClientToken it was allocated under
/// (AllocateAddress takes none): a retry finds the first allocation instead of making another.
pub const EIP_TOKEN_TAG: &str = "multicloud-ecs/client-token";
/// Tag recording an EIP's nominal bandwidth (AWS has no bandwidth cap on an address).
pub const EIP_BANDWIDTH_TAG: &str = "multicloud-ecs/bandwidth-mbps";
/// Tag naming the VPC an internet gateway was created for (found again after a crash between
/// CreateInternetGateway and AttachInternetGateway).
pub const IGW_VPC_TAG: &str = "multicloud-ecs/vpc-id";

/// Form parameters of one Query call, in the order they are sent (`Action` and `Version`
/// first, added by [`Params::form_body`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
    filters: usize,
    tag_specs: usize,
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one parameter.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.pairs.push((name.into(), value.into()));
        self
    }

    /// [`Self::set`], by value.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set(name, value);
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Replaces a parameter (or adds it).
    pub fn replace(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.pairs.retain(|(k, _)| k != name);
        self.set(name, value)
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// `prefix.1=v1&prefix.2=v2…` (a list member such as `InstanceId`, `SecurityGroupId`).
    pub fn list<S: AsRef<str>>(&mut self, prefix: &str, values: &[S]) -> &mut Self {
        for (i, v) in values.iter().enumerate() {
            self.set(format!("{prefix}.{}", i + 1), v.as_ref());
        }
        self
    }

    /// The next `Filter.N.Name` with its `Filter.N.Value.M` (values are ORed, filters ANDed).
    pub fn filter<S: AsRef<str>>(&mut self, name: &str, values: &[S]) -> &mut Self {
        self.filters += 1;
        let n = self.filters;
        self.set(format!("Filter.{n}.Name"), name);
        self.list(&format!("Filter.{n}.Value"), values)
    }

    /// One `tag:<key>` filter per tag.
    pub fn tag_filters(&mut self, tags: &Tags) -> &mut Self {
        for (k, v) in tags {
            self.filter(&format!("tag:{k}"), &[v]);
        }
        self
    }

    /// The next `TagSpecification.N` for `resource_type` (nothing when `tags` is empty: an
    /// empty specification is refused).
    pub fn tag_specification(&mut self, resource_type: &str, tags: &Tags) -> &mut Self {
        if tags.is_empty() {
            return self;
        }
        self.tag_specs += 1;
        let n = self.tag_specs;
        self.set(format!("TagSpecification.{n}.ResourceType"), resource_type);
        for (i, (k, v)) in tags.iter().enumerate() {
            self.set(format!("TagSpecification.{n}.Tag.{}.Key", i + 1), k);
            self.set(format!("TagSpecification.{n}.Tag.{}.Value", i + 1), v);
        }
        self
    }

    /// `Tag.N.Key`/`Tag.N.Value` (CreateTags), or only `Tag.N.Key` (DeleteTags: any value).
    pub fn tags(&mut self, tags: &Tags) -> &mut Self {
        for (i, (k, v)) in tags.iter().enumerate() {
            self.set(format!("Tag.{}.Key", i + 1), k);
            self.set(format!("Tag.{}.Value", i + 1), v);
        }
        self
    }

    /// The form body: `Action=…&Version=2016-11-15&…`, RFC 3986 encoded.
    pub fn form_body(&self, action: &str) -> String {
        let mut out = format!("Action={}&Version={EC2_VERSION}", uri_encode(action));
        for (k, v) in &self.pairs {
            out.push('&');
            out.push_str(&uri_encode(k));
            out.push('=');
            out.push_str(&uri_encode(v));
        }
        out
    }
}

/// The name shown in status for a charge mode. EC2 RunInstances has no charge parameter: an
/// instance is on-demand; prepaid (Reserved Instances, Savings Plans) is a billing construct
/// bought separately, so the driver refuses it before any call.
pub fn charge_wire(charge: ChargeMode) -> &'static str {
    match charge {
        ChargeMode::OnDemand => "on-demand",
        ChargeMode::Prepaid { .. } => "prepaid-unsupported",
    }
}

/// The name shown in status for a bandwidth mode. An Elastic IP has no bandwidth setting or
/// bandwidth billing on AWS: traffic out is billed per GB whatever the mode, so both map to
/// the same thing.
pub fn bandwidth_wire(mode: BandwidthMode) -> &'static str {
    match mode {
        BandwidthMode::Traffic | BandwidthMode::Fixed => "data-transfer-out",
    }
}

/// `instanceState/name` → provider-neutral status. `shutting-down` and `terminated` are gone
/// for the operator (a terminated instance stays visible for about an hour).
pub fn instance_status(state: &str) -> InstanceStatus {
    match state {
        "pending" => InstanceStatus::Pending,
        "running" => InstanceStatus::Running,
        "shutting-down" | "terminated" => InstanceStatus::Terminated,
        "stopping" => InstanceStatus::Stopping,
        "stopped" => InstanceStatus::Stopped,
        other => InstanceStatus::Other(other.to_string()),
    }
}

/// States of instances that still exist (`find_instances` leaves terminated ones out).
pub const LIVE_STATES: [&str; 5] = ["pending", "running", "shutting-down", "stopping", "stopped"];

/// RunInstances parameters no CloudProvider may allow as extensions (patterns of
/// [`mce_cloud::wire_name_matches`]): what the driver builds itself, and what reaches beyond
/// the tenant's own instance — an IAM role (cloud credentials on the VM), network interfaces
/// or addresses of other subnets, the account's snapshots and KMS keys, placement groups,
/// dedicated hosts and capacity reservations of the account, undeletable or unstoppable
/// instances, launch templates overriding everything, spot options contradicting the charge
/// mode, licences of the account.
pub const FORBIDDEN_RUN_EXTENSIONS: &[&str] = &[
    // The protocol's own parameters and query-string authentication.
    "Action",
    "Version",
    "AWSAccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "Timestamp",
    "Expires",
    "SecurityToken",
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "X-Amz-Signature",
    "X-Amz-SignedHeaders",
    // What the driver builds.
    "ImageId",
    "InstanceType",
    "MinCount",
    "MaxCount",
    "SubnetId",
    "SecurityGroupId.*",
    "SecurityGroup.*",
    "KeyName",
    "ClientToken",
    "DryRun",
    "TagSpecification.*",
    "BlockDeviceMapping.1.*",
    // Beyond the tenant's own instance.
    "NetworkInterface.*",
    "SecondaryInterface.*",
    "PrivateIpAddress",
    "IamInstanceProfile.*",
    "Placement.*",
    "BlockDeviceMapping.N.Ebs.SnapshotId",
    "BlockDeviceMapping.N.Ebs.KmsKeyId",
    "BlockDeviceMapping.N.Ebs.DeleteOnTermination",
    "BlockDeviceMapping.N.Ebs.OutpostArn",
    "BlockDeviceMapping.N.VirtualName",
    "DisableApiTermination",
    "DisableApiStop",
    "LaunchTemplate.*",
    "InstanceMarketOptions.*",
    "CapacityReservationSpecification.*",
    "LicenseSpecification.*",
    "Operator.*",
    "AdditionalInfo",
    "KernelId",
    "RamdiskId",
];

/// The RunInstances parameters of a request: exactly one instance, no public IP (EIPs come
/// later), the root volume on `root_device` (the image's `rootDeviceName`), tags on the
/// instance, its volumes and its network interface. The caller has refused prepaid and
/// password logins.
pub fn run_instances_params(req: &RunInstance, root_device: &str) -> Params {
    let mut p = Params::new();
    p.set("ImageId", &req.image_id)
        .set("InstanceType", &req.instance_type)
        .set("MinCount", "1")
        .set("MaxCount", "1")
        .set("SubnetId", &req.subnet_id);
    let mut groups: Vec<&str> = Vec::new();
    for g in &req.security_group_ids {
        if !g.is_empty() && !groups.contains(&g.as_str()) {
            groups.push(g);
        }
    }
    p.list("SecurityGroupId", &groups);
    if let mce_cloud::Login::KeyPair(name) = &req.login {
        p.set("KeyName", name);
    }
    if !req.client_token.is_empty() {
        p.set("ClientToken", &req.client_token);
    }
    if !root_device.is_empty() {
        p.set("BlockDeviceMapping.1.DeviceName", root_device);
        if req.system_disk.size_gib > 0 {
            p.set(
                "BlockDeviceMapping.1.Ebs.VolumeSize",
                req.system_disk.size_gib.to_string(),
            );
        }
        if !req.system_disk.category.is_empty() {
            p.set(
                "BlockDeviceMapping.1.Ebs.VolumeType",
                &req.system_disk.category,
            );
        }
        p.set("BlockDeviceMapping.1.Ebs.DeleteOnTermination", "true");
    }
    p.tag_specification("instance", &req.tags)
        .tag_specification("volume", &req.tags)
        .tag_specification("network-interface", &req.tags);
    for (name, value) in &req.extensions {
        // The operator refuses these before any call; this is the driver's own last line.
        if crate::PROFILE.is_forbidden_extension(name) || p.has(name) {
            tracing::warn!(parameter = %name, "ignoring a forbidden RunInstances extension");
            continue;
        }
        p.set(name.clone(), value.clone());
    }
    p
}

/// `IpPermissions.N.*` of rules: TCP, one port each, one CIDR each. `with_description` adds
/// `IpRanges.1.Description` (authorize; a revoke matches without it).
pub fn ip_permissions(p: &mut Params, rules: &[PortRule], with_description: bool) {
    for (i, r) in rules.iter().enumerate() {
        let n = i + 1;
        p.set(format!("IpPermissions.{n}.IpProtocol"), "tcp")
            .set(format!("IpPermissions.{n}.FromPort"), r.port.to_string())
            .set(format!("IpPermissions.{n}.ToPort"), r.port.to_string())
            .set(
                format!("IpPermissions.{n}.IpRanges.1.CidrIp"),
                &r.source_cidr,
            );
        if with_description && !r.description.is_empty() {
            p.set(
                format!("IpPermissions.{n}.IpRanges.1.Description"),
                &r.description,
            );
        }
    }
}

/// Inbound TCP rules on single ports from IPv4 CIDRs of a `securityGroupInfo` item (rules on
/// port ranges, other groups, prefix lists or IPv6 are not the operator's).
pub fn ingress_rules(group: &Node) -> Vec<PortRule> {
    let mut out = Vec::new();
    for perm in group.items("ipPermissions") {
        let protocol = perm.text_of("ipProtocol");
        if !(protocol.eq_ignore_ascii_case("tcp") || protocol == "6") {
            continue;
        }
        let (Ok(from), Ok(to)) = (
            perm.text_of("fromPort").parse::<u16>(),
            perm.text_of("toPort").parse::<u16>(),
        ) else {
            continue;
        };
        if from != to {
            continue;
        }
        for range in perm.items("ipRanges") {
            let cidr = range.text_of("cidrIp");
            if !cidr.is_empty() {
                out.push(PortRule {
                    port: from,
                    source_cidr: cidr.to_string(),
                    description: range.text_of("description").to_string(),
                });
            }
        }
    }
    out
}

/// An `instancesSet` item. `ipAddress` is the public address: an EIP's when one is associated
/// (instances launch without a public IP); `eip_allocation_id` is left for the caller, who
/// reads it from DescribeAddresses.
pub fn to_instance(item: &Node) -> Instance {
    Instance {
        id: item.text_of("instanceId").to_string(),
        status: instance_status(item.at(&["instanceState"]).text_of("name")),
        instance_type: item.text_of("instanceType").to_string(),
        zone: item
            .at(&["placement"])
            .text_of("availabilityZone")
            .to_string(),
        private_ip: item.opt("privateIpAddress"),
        public_ip: item.opt("ipAddress"),
        eip_allocation_id: None,
        tags: item.tags(),
    }
}

/// The instances of a DescribeInstances answer (`reservationSet/item/instancesSet/item`).
pub fn instances_of(root: &Node) -> Vec<Instance> {
    root.items("reservationSet")
        .flat_map(|r| r.items("instancesSet"))
        .map(to_instance)
        .collect()
}

/// The tags of an EIP as the operator sees them: without the driver's own bookkeeping.
pub fn user_tags(mut tags: Tags) -> Tags {
    tags.remove(EIP_TOKEN_TAG);
    tags.remove(EIP_BANDWIDTH_TAG);
    tags
}

/// An `addressesSet` item. AWS addresses change state synchronously: associated (InUse) or
/// not (Available). The bandwidth is the nominal one the driver recorded (0 if none).
pub fn to_eip(item: &Node) -> Eip {
    let tags = item.tags();
    let bandwidth_mbps = tags
        .get(EIP_BANDWIDTH_TAG)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let associated = !item.text_of("associationId").is_empty();
    Eip {
        allocation_id: item.text_of("allocationId").to_string(),
        ip_address: item.text_of("publicIp").to_string(),
        status: if associated {
            EipStatus::InUse
        } else {
            EipStatus::Available
        },
        instance_id: item.opt("instanceId"),
        bandwidth_mbps,
        tags: user_tags(tags),
    }
}

/// The zones of a DescribeInstanceTypeOfferings answer offering `instance_type` (listed zones
/// offer it; the answer does not tell sold-out capacity, which shows on RunInstances as
/// `InsufficientInstanceCapacity`).
pub fn zone_offerings(root: &Node, zone: Option<&str>, instance_type: &str) -> Vec<ZoneStock> {
    let mut out: Vec<ZoneStock> = Vec::new();
    for item in root.items("instanceTypeOfferingSet") {
        let location = item.text_of("location");
        if item.text_of("instanceType") != instance_type
            || location.is_empty()
            || zone.is_some_and(|z| !z.is_empty() && z != location)
            || out.iter().any(|s| s.zone == location)
        {
            continue;
        }
        out.push(ZoneStock {
            zone: location.to_string(),
            available: true,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use mce_cloud::{Login, Secret, SystemDisk};

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn lists_filters_and_tag_specifications_are_numbered_from_one() {
        let mut p = Params::new();
        p.filter("vpc-id", &["vpc-1"])
            .tag_filters(&tags(&[("a", "1"), ("b/c", "x y")]))
            .tag_specification("vpc", &tags(&[("a", "1"), ("b", "2")]))
            .tag_specification("internet-gateway", &tags(&[("a", "1")]))
            .tag_specification("volume", &Tags::new())
            .list("InstanceId", &["i-1", "i-2"]);
        assert_eq!(
            p.form_body("DescribeVpcs"),
            "Action=DescribeVpcs&Version=2016-11-15\
             &Filter.1.Name=vpc-id&Filter.1.Value.1=vpc-1\
             &Filter.2.Name=tag%3Aa&Filter.2.Value.1=1\
             &Filter.3.Name=tag%3Ab%2Fc&Filter.3.Value.1=x%20y\
             &TagSpecification.1.ResourceType=vpc\
             &TagSpecification.1.Tag.1.Key=a&TagSpecification.1.Tag.1.Value=1\
             &TagSpecification.1.Tag.2.Key=b&TagSpecification.1.Tag.2.Value=2\
             &TagSpecification.2.ResourceType=internet-gateway\
             &TagSpecification.2.Tag.1.Key=a&TagSpecification.2.Tag.1.Value=1\
             &InstanceId.1=i-1&InstanceId.2=i-2"
        );
    }

    fn run(extensions: &[(&str, &str)]) -> RunInstance {
        RunInstance {
            region: "us-east-1".into(),
            zone: "us-east-1a".into(),
            instance_type: "g4dn.xlarge".into(),
            image_id: "ami-1".into(),
            subnet_id: "subnet-1".into(),
            security_group_ids: vec!["sg-1".into(), "sg-2".into(), "sg-1".into()],
            name: "vm".into(),
            description: String::new(),
            system_disk: SystemDisk {
                category: "gp3".into(),
                size_gib: 40,
            },
            login: Login::KeyPair("kp".into()),
            charge: ChargeMode::OnDemand,
            tags: tags(&[("owner", "u")]),
            client_token: "tok-1".into(),
            extensions: extensions
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn run_instances_wire_names() {
        let p = run_instances_params(
            &run(&[
                ("UserData", "IyEvYmluL3NoCg=="),
                (
                    "IamInstanceProfile.Arn",
                    "arn:aws:iam::1:instance-profile/admin",
                ),
                ("NetworkInterface.1.SubnetId", "subnet-other"),
                ("BlockDeviceMapping.2.Ebs.SnapshotId", "snap-1"),
                ("BlockDeviceMapping.2.Ebs.VolumeSize", "100"),
                ("BlockDeviceMapping.2.DeviceName", "/dev/sdf"),
            ]),
            "/dev/xvda",
        );
        let get = |k: &str| p.get(k).unwrap_or_default();
        assert_eq!(get("MinCount"), "1");
        assert_eq!(get("MaxCount"), "1");
        assert_eq!(get("SubnetId"), "subnet-1");
        assert_eq!(get("SecurityGroupId.1"), "sg-1");
        assert_eq!(get("SecurityGroupId.2"), "sg-2");
        assert!(!p.has("SecurityGroupId.3"));
        assert_eq!(get("KeyName"), "kp");
        assert_eq!(get("ClientToken"), "tok-1");
        assert_eq!(get("BlockDeviceMapping.1.DeviceName"), "/dev/xvda");
        assert_eq!(get("BlockDeviceMapping.1.Ebs.VolumeSize"), "40");
        assert_eq!(get("BlockDeviceMapping.1.Ebs.VolumeType"), "gp3");
        assert_eq!(get("TagSpecification.1.ResourceType"), "instance");
        assert_eq!(get("TagSpecification.2.ResourceType"), "volume");
        assert_eq!(get("TagSpecification.3.ResourceType"), "network-interface");
        assert_eq!(get("TagSpecification.3.Tag.1.Key"), "owner");
        assert_eq!(get("UserData"), "IyEvYmluL3NoCg==");
        assert_eq!(get("BlockDeviceMapping.2.Ebs.VolumeSize"), "100");
        assert_eq!(get("BlockDeviceMapping.2.DeviceName"), "/dev/sdf");
        assert!(!p.has("IamInstanceProfile.Arn"));
        assert!(!p.has("NetworkInterface.1.SubnetId"));
        assert!(!p.has("BlockDeviceMapping.2.Ebs.SnapshotId"));
        assert!(!p.has("Password"));
        let no_key = RunInstance {
            login: Login::Password(Secret::new("x")),
            ..run(&[])
        };
        assert!(!run_instances_params(&no_key, "").has("KeyName"));
        assert!(!run_instances_params(&no_key, "").has("BlockDeviceMapping.1.DeviceName"));
    }

    #[test]
    fn forbidden_extensions_are_matched_by_pattern() {
        let p = &crate::PROFILE;
        for name in [
            "IamInstanceProfile.Name",
            "NetworkInterface.1.SubnetId",
            "PrivateIpAddress",
            "Placement.GroupName",
            "Placement.Tenancy",
            "SecurityGroupId.2",
            "SubnetId",
            "BlockDeviceMapping.1.Ebs.VolumeSize",
            "BlockDeviceMapping.3.Ebs.SnapshotId",
            "TagSpecification.4.Tag.1.Key",
            "LaunchTemplate.LaunchTemplateId",
            "DisableApiTermination",
            "InstanceMarketOptions.MarketType",
        ] {
            assert!(p.is_forbidden_extension(name), "{name}");
        }
        for name in [
            "UserData",
            "BlockDeviceMapping.2.Ebs.VolumeSize",
            "MetadataOptions.HttpTokens",
            "EbsOptimized",
            "Monitoring.Enabled",
        ] {
            assert!(!p.is_forbidden_extension(name), "{name}");
        }
    }

    #[test]
    fn ingress_permissions_both_ways() {
        let rules = [
            PortRule {
                port: 22,
                source_cidr: "0.0.0.0/0".into(),
                description: "ssh".into(),
            },
            PortRule {
                port: 443,
                source_cidr: "10.0.0.0/8".into(),
                description: String::new(),
            },
        ];
        let mut p = Params::new();
        ip_permissions(&mut p, &rules, true);
        assert_eq!(
            p.form_body("AuthorizeSecurityGroupIngress"),
            "Action=AuthorizeSecurityGroupIngress&Version=2016-11-15\
             &IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=22&IpPermissions.1.ToPort=22\
             &IpPermissions.1.IpRanges.1.CidrIp=0.0.0.0%2F0&IpPermissions.1.IpRanges.1.Description=ssh\
             &IpPermissions.2.IpProtocol=tcp&IpPermissions.2.FromPort=443&IpPermissions.2.ToPort=443\
             &IpPermissions.2.IpRanges.1.CidrIp=10.0.0.0%2F8"
        );
        let group = Node::parse(
            r#"<item><groupId>sg-1</groupId><ipPermissions>
              <item><ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort>
                <ipRanges><item><cidrIp>0.0.0.0/0</cidrIp><description>ssh</description></item>
                <item><cidrIp>10.0.0.0/8</cidrIp></item></ipRanges></item>
              <item><ipProtocol>tcp</ipProtocol><fromPort>80</fromPort><toPort>90</toPort>
                <ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges></item>
              <item><ipProtocol>-1</ipProtocol><ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges></item>
              <item><ipProtocol>udp</ipProtocol><fromPort>53</fromPort><toPort>53</toPort>
                <ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges></item>
            </ipPermissions></item>"#,
        )
        .unwrap();
        assert_eq!(
            ingress_rules(&group),
            [
                PortRule {
                    port: 22,
                    source_cidr: "0.0.0.0/0".into(),
                    description: "ssh".into()
                },
                PortRule {
                    port: 22,
                    source_cidr: "10.0.0.0/8".into(),
                    description: String::new()
                },
            ]
        );
    }

    #[test]
    fn instances_and_addresses_read_from_xml() {
        let root = Node::parse(
            r#"<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
            <requestId>r</requestId><reservationSet><item><reservationId>r-1</reservationId>
            <instancesSet><item><instanceId>i-1</instanceId><instanceType>g4dn.xlarge</instanceType>
              <instanceState><code>16</code><name>running</name></instanceState>
              <placement><availabilityZone>us-east-1a</availabilityZone></placement>
              <privateIpAddress>172.16.1.5</privateIpAddress><ipAddress>3.3.3.3</ipAddress>
              <tagSet><item><key>owner</key><value>u</value></item></tagSet></item>
            <item><instanceId>i-2</instanceId><instanceState><name>shutting-down</name></instanceState></item>
            </instancesSet></item></reservationSet></DescribeInstancesResponse>"#,
        )
        .unwrap();
        let found = instances_of(&root);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].status, InstanceStatus::Running);
        assert_eq!(found[0].zone, "us-east-1a");
        assert_eq!(found[0].private_ip.as_deref(), Some("172.16.1.5"));
        assert_eq!(found[0].public_ip.as_deref(), Some("3.3.3.3"));
        assert_eq!(found[0].tags, tags(&[("owner", "u")]));
        assert_eq!(found[1].status, InstanceStatus::Terminated);
        assert_eq!(found[1].public_ip, None);
        for (state, status) in [
            ("pending", InstanceStatus::Pending),
            ("terminated", InstanceStatus::Terminated),
            ("stopping", InstanceStatus::Stopping),
            ("stopped", InstanceStatus::Stopped),
        ] {
            assert_eq!(instance_status(state), status);
        }

        let address = Node::parse(
            r#"<item><publicIp>3.3.3.3</publicIp><allocationId>eipalloc-1</allocationId>
            <domain>vpc</domain><instanceId>i-1</instanceId><associationId>eipassoc-1</associationId>
            <tagSet><item><key>owner</key><value>u</value></item>
            <item><key>multicloud-ecs/bandwidth-mbps</key><value>10</value></item>
            <item><key>multicloud-ecs/client-token</key><value>t</value></item></tagSet></item>"#,
        )
        .unwrap();
        let eip = to_eip(&address);
        assert_eq!(eip.status, EipStatus::InUse);
        assert_eq!(eip.instance_id.as_deref(), Some("i-1"));
        assert_eq!(eip.bandwidth_mbps, 10);
        assert_eq!(eip.tags, tags(&[("owner", "u")]));
        let free =
            to_eip(&Node::parse("<item><allocationId>eipalloc-2</allocationId></item>").unwrap());
        assert_eq!(free.status, EipStatus::Available);
        assert_eq!((free.instance_id, free.bandwidth_mbps), (None, 0));
    }

    #[test]
    fn offerings_by_zone() {
        let root = Node::parse(
            r#"<R><instanceTypeOfferingSet>
            <item><instanceType>p3.2xlarge</instanceType><locationType>availability-zone</locationType><location>us-east-1a</location></item>
            <item><instanceType>p3.2xlarge</instanceType><location>us-east-1b</location></item>
            <item><instanceType>p3.2xlarge</instanceType><location>us-east-1b</location></item>
            <item><instanceType>t3.micro</instanceType><location>us-east-1c</location></item>
            </instanceTypeOfferingSet></R>"#,
        )
        .unwrap();
        let zones: Vec<String> = zone_offerings(&root, None, "p3.2xlarge")
            .into_iter()
            .map(|z| z.zone)
            .collect();
        assert_eq!(zones, ["us-east-1a", "us-east-1b"]);
        assert_eq!(
            zone_offerings(&root, Some("us-east-1b"), "p3.2xlarge"),
            [ZoneStock {
                zone: "us-east-1b".into(),
                available: true
            }]
        );
    }

    #[test]
    fn status_names() {
        assert_eq!(charge_wire(ChargeMode::OnDemand), "on-demand");
        assert_eq!(bandwidth_wire(BandwidthMode::Fixed), "data-transfer-out");
    }
}
