//! Response bodies of the Alibaba Cloud RPC calls the driver makes (PascalCase JSON).
//!
//! Everything defaults when absent so a sparse response still parses; numbers that the APIs
//! sometimes send as strings (EIP `Bandwidth`) are read either way.

use serde::{Deserialize, Deserializer};

use mce_cloud::Tags;

/// Error body: `{RequestId, HostId, Code, Message, Recommend}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ErrorBody {
    pub request_id: String,
    pub code: String,
    pub message: String,
}

/// Only the request id, for calls whose result is nothing but success.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Empty {
    pub request_id: String,
}

/// A number sent either as a JSON number or as a string.
fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => Ok(n
            .as_u64()
            .or_else(|| n.as_f64().map(|f| f as u64))
            .unwrap_or(0)),
        serde_json::Value::String(s) if s.trim().is_empty() => Ok(0),
        serde_json::Value::String(s) => s.trim().parse().map_err(serde::de::Error::custom),
        _ => Ok(0),
    }
}

fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => Ok(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) if s.trim().is_empty() => Ok(0.0),
        serde_json::Value::String(s) => s.trim().parse().map_err(serde::de::Error::custom),
        _ => Ok(0.0),
    }
}

/// One tag: VPC APIs say `Key`/`Value`, ECS APIs `TagKey`/`TagValue`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TagItem {
    #[serde(alias = "TagKey")]
    pub key: String,
    #[serde(alias = "TagValue")]
    pub value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TagSet {
    pub tag: Vec<TagItem>,
}

impl TagSet {
    pub fn to_tags(&self) -> Tags {
        self.tag
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeVpcs {
    pub request_id: String,
    #[serde(deserialize_with = "lenient_u64")]
    pub total_count: u64,
    pub vpcs: VpcSet,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VpcSet {
    pub vpc: Vec<VpcItem>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VpcItem {
    pub vpc_id: String,
    pub status: String,
    pub cidr_block: String,
    pub tags: TagSet,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateVpc {
    pub request_id: String,
    pub vpc_id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DescribeVSwitches {
    #[serde(rename = "RequestId")]
    pub request_id: String,
    #[serde(rename = "TotalCount", deserialize_with = "lenient_u64")]
    pub total_count: u64,
    #[serde(rename = "VSwitches")]
    pub vswitches: VSwitchSet,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct VSwitchSet {
    #[serde(rename = "VSwitch")]
    pub vswitch: Vec<VSwitchItem>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct VSwitchItem {
    #[serde(rename = "VSwitchId")]
    pub vswitch_id: String,
    #[serde(rename = "VpcId")]
    pub vpc_id: String,
    #[serde(rename = "ZoneId")]
    pub zone_id: String,
    #[serde(rename = "CidrBlock")]
    pub cidr_block: String,
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "Tags")]
    pub tags: TagSet,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CreateVSwitch {
    #[serde(rename = "RequestId")]
    pub request_id: String,
    #[serde(rename = "VSwitchId")]
    pub vswitch_id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeSecurityGroups {
    pub request_id: String,
    #[serde(deserialize_with = "lenient_u64")]
    pub total_count: u64,
    pub security_groups: SecurityGroupSet,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SecurityGroupSet {
    pub security_group: Vec<SecurityGroupItem>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SecurityGroupItem {
    pub security_group_id: String,
    pub vpc_id: String,
    pub tags: TagSet,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateSecurityGroup {
    pub request_id: String,
    pub security_group_id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeSecurityGroupAttribute {
    pub request_id: String,
    pub permissions: PermissionSet,
    pub next_token: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PermissionSet {
    pub permission: Vec<PermissionItem>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PermissionItem {
    pub ip_protocol: String,
    pub port_range: String,
    pub source_cidr_ip: String,
    pub policy: String,
    pub description: String,
    pub direction: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RunInstances {
    pub request_id: String,
    pub instance_id_sets: InstanceIdSets,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InstanceIdSets {
    pub instance_id_set: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeInstances {
    pub request_id: String,
    pub next_token: String,
    #[serde(deserialize_with = "lenient_u64")]
    pub total_count: u64,
    pub instances: InstanceSet,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InstanceSet {
    pub instance: Vec<InstanceItem>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpAddressList {
    pub ip_address: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InstanceEip {
    pub ip_address: String,
    pub allocation_id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VpcAttributes {
    pub private_ip_address: IpAddressList,
    pub vpc_id: String,
    #[serde(rename = "VSwitchId")]
    pub vswitch_id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InstanceItem {
    pub instance_id: String,
    pub status: String,
    pub instance_type: String,
    pub zone_id: String,
    pub public_ip_address: IpAddressList,
    pub eip_address: InstanceEip,
    pub vpc_attributes: VpcAttributes,
    pub tags: TagSet,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocateEipAddress {
    pub request_id: String,
    pub allocation_id: String,
    pub eip_address: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeEipAddresses {
    pub request_id: String,
    #[serde(deserialize_with = "lenient_u64")]
    pub total_count: u64,
    pub eip_addresses: EipSet,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EipSet {
    pub eip_address: Vec<EipItem>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EipItem {
    pub allocation_id: String,
    pub ip_address: String,
    pub status: String,
    pub instance_id: String,
    pub instance_type: String,
    #[serde(deserialize_with = "lenient_u64")]
    pub bandwidth: u64,
    pub tags: TagSet,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribePrice {
    pub request_id: String,
    pub price_info: PriceInfo,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PriceInfo {
    pub price: PriceItem,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PriceItem {
    #[serde(deserialize_with = "lenient_f64")]
    pub original_price: f64,
    #[serde(deserialize_with = "lenient_f64")]
    pub discount_price: f64,
    #[serde(deserialize_with = "lenient_f64")]
    pub trade_price: f64,
    pub currency: String,
}

/// DescribeAvailableResource: `AvailableZones.AvailableZone[]`, each with the resources it
/// offers (`AvailableResources.AvailableResource[].SupportedResources.SupportedResource[]`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeAvailableResource {
    pub request_id: String,
    pub available_zones: AvailableZones,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AvailableZones {
    pub available_zone: Vec<AvailableZone>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AvailableZone {
    pub zone_id: String,
    pub region_id: String,
    /// `Available` or `SoldOut`.
    pub status: String,
    /// `WithStock`, `ClosedWithStock`, `WithoutStock` or `ClosedWithoutStock`.
    pub status_category: String,
    pub available_resources: AvailableResources,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AvailableResources {
    pub available_resource: Vec<AvailableResource>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AvailableResource {
    /// The resource kind listed, e.g. `InstanceType`.
    #[serde(rename = "Type")]
    pub kind: String,
    pub supported_resources: SupportedResources,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SupportedResources {
    pub supported_resource: Vec<SupportedResource>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SupportedResource {
    pub value: String,
    pub status: String,
    pub status_category: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_describe_instances_sample() {
        let body = r#"{
          "RequestId": "req-1", "TotalCount": 1, "NextToken": "",
          "Instances": {"Instance": [{
            "InstanceId": "i-bp1", "Status": "Running", "InstanceType": "ecs.g7.large",
            "ZoneId": "cn-hangzhou-i",
            "PublicIpAddress": {"IpAddress": []},
            "EipAddress": {"IpAddress": "47.1.2.3", "AllocationId": "eip-1", "InternetChargeType": ""},
            "VpcAttributes": {"PrivateIpAddress": {"IpAddress": ["172.16.0.5"]}, "VpcId": "vpc-1", "VSwitchId": "vsw-1"},
            "Tags": {"Tag": [{"TagKey": "owner", "TagValue": "me"}]}
          }]}
        }"#;
        let r: DescribeInstances = serde_json::from_str(body).unwrap();
        assert_eq!(r.total_count, 1);
        let i = &r.instances.instance[0];
        assert_eq!(i.instance_id, "i-bp1");
        assert_eq!(i.eip_address.allocation_id, "eip-1");
        assert_eq!(
            i.vpc_attributes.private_ip_address.ip_address,
            vec!["172.16.0.5"]
        );
        assert_eq!(i.vpc_attributes.vswitch_id, "vsw-1");
        assert_eq!(
            i.tags.to_tags().get("owner").map(String::as_str),
            Some("me")
        );
    }

    #[test]
    fn parses_vpc_and_vswitch_samples() {
        let vpcs: DescribeVpcs = serde_json::from_str(
            r#"{"RequestId":"r","TotalCount":2,"PageNumber":1,"PageSize":50,
            "Vpcs":{"Vpc":[{"VpcId":"vpc-1","Status":"Available","CidrBlock":"10.0.0.0/8",
            "Tags":{"Tag":[{"Key":"a","Value":"b"}]}}]}}"#,
        )
        .unwrap();
        assert_eq!(vpcs.total_count, 2);
        assert_eq!(
            vpcs.vpcs.vpc[0].tags.to_tags().get("a").map(String::as_str),
            Some("b")
        );
        let vsw: DescribeVSwitches = serde_json::from_str(
            r#"{"TotalCount":"1","VSwitches":{"VSwitch":[{"VSwitchId":"vsw-1","VpcId":"vpc-1",
            "ZoneId":"z","CidrBlock":"10.0.0.0/24","Status":"Pending"}]}}"#,
        )
        .unwrap();
        assert_eq!(vsw.total_count, 1);
        assert_eq!(vsw.vswitches.vswitch[0].vswitch_id, "vsw-1");
        assert!(vsw.vswitches.vswitch[0].tags.tag.is_empty());
    }

    #[test]
    fn parses_eips_with_string_bandwidth() {
        let r: DescribeEipAddresses = serde_json::from_str(
            r#"{"TotalCount":1,"EipAddresses":{"EipAddress":[{"AllocationId":"eip-1","IpAddress":"1.2.3.4",
            "Status":"InUse","InstanceId":"i-1","InstanceType":"EcsInstance","Bandwidth":"5",
            "Tags":{"Tag":[{"Key":"k","Value":"v"}]}}]}}"#,
        )
        .unwrap();
        assert_eq!(r.eip_addresses.eip_address[0].bandwidth, 5);
        let n: DescribeEipAddresses =
            serde_json::from_str(r#"{"EipAddresses":{"EipAddress":[{"Bandwidth":10}]}}"#).unwrap();
        assert_eq!(n.eip_addresses.eip_address[0].bandwidth, 10);
    }

    #[test]
    fn parses_price_run_and_errors() {
        let p: DescribePrice = serde_json::from_str(
            r#"{"RequestId":"r","PriceInfo":{"Price":{"OriginalPrice":1.5,"DiscountPrice":0.5,
            "TradePrice":1.0,"Currency":"CNY"},"Rules":{"Rule":[]}}}"#,
        )
        .unwrap();
        assert_eq!(p.price_info.price.trade_price, 1.0);
        assert_eq!(p.price_info.price.currency, "CNY");
        let r: RunInstances = serde_json::from_str(
            r#"{"RequestId":"r","OrderId":"1","TradePrice":0.1,"InstanceIdSets":{"InstanceIdSet":["i-1"]}}"#,
        )
        .unwrap();
        assert_eq!(r.instance_id_sets.instance_id_set, vec!["i-1"]);
        let e: ErrorBody = serde_json::from_str(
            r#"{"RequestId":"r","HostId":"h","Code":"Throttling.User","Message":"slow down","Recommend":"x"}"#,
        )
        .unwrap();
        assert_eq!(e.code, "Throttling.User");
        let sg: DescribeSecurityGroupAttribute = serde_json::from_str(
            r#"{"Permissions":{"Permission":[{"IpProtocol":"TCP","PortRange":"22/22","SourceCidrIp":"0.0.0.0/0",
            "Policy":"Accept","Direction":"ingress","Description":"ssh"}]}}"#,
        )
        .unwrap();
        assert_eq!(sg.permissions.permission[0].port_range, "22/22");
    }
}
