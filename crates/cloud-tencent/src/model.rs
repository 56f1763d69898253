//! The parts of Tencent Cloud responses (`Response` objects) the driver reads. Every field
//! defaults: the cloud omits or nulls fields freely, and a missing one must not fail a describe.

use serde::{Deserialize, Deserializer};

use mce_cloud::Tags;

/// `null` reads as the default (Tencent nulls absent lists and strings).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Empty {
    #[serde(deserialize_with = "nullable")]
    pub request_id: String,
}

/// `{"Key","Value"}` as in VPC/CVM tag sets.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Tag {
    #[serde(deserialize_with = "nullable")]
    pub key: String,
    #[serde(deserialize_with = "nullable")]
    pub value: String,
}

pub fn to_tags(tags: Vec<Tag>) -> Tags {
    tags.into_iter().map(|t| (t.key, t.value)).collect()
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VpcItem {
    #[serde(deserialize_with = "nullable")]
    pub vpc_id: String,
    #[serde(deserialize_with = "nullable")]
    pub cidr_block: String,
    #[serde(deserialize_with = "nullable")]
    pub tag_set: Vec<Tag>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeVpcs {
    #[serde(deserialize_with = "nullable")]
    pub vpc_set: Vec<VpcItem>,
    #[serde(deserialize_with = "nullable")]
    pub total_count: u64,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateVpc {
    pub vpc: VpcItem,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SubnetItem {
    #[serde(deserialize_with = "nullable")]
    pub subnet_id: String,
    #[serde(deserialize_with = "nullable")]
    pub vpc_id: String,
    #[serde(deserialize_with = "nullable")]
    pub zone: String,
    #[serde(deserialize_with = "nullable")]
    pub cidr_block: String,
    #[serde(deserialize_with = "nullable")]
    pub tag_set: Vec<Tag>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeSubnets {
    #[serde(deserialize_with = "nullable")]
    pub subnet_set: Vec<SubnetItem>,
    #[serde(deserialize_with = "nullable")]
    pub total_count: u64,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateSubnet {
    pub subnet: SubnetItem,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SecurityGroupItem {
    #[serde(deserialize_with = "nullable")]
    pub security_group_id: String,
    #[serde(deserialize_with = "nullable")]
    pub tag_set: Vec<Tag>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeSecurityGroups {
    #[serde(deserialize_with = "nullable")]
    pub security_group_set: Vec<SecurityGroupItem>,
    #[serde(deserialize_with = "nullable")]
    pub total_count: u64,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateSecurityGroup {
    pub security_group: SecurityGroupItem,
}

/// One rule of `SecurityGroupPolicySet.Ingress`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Policy {
    #[serde(deserialize_with = "nullable")]
    pub policy_index: i64,
    #[serde(deserialize_with = "nullable")]
    pub protocol: String,
    #[serde(deserialize_with = "nullable")]
    pub port: String,
    #[serde(deserialize_with = "nullable")]
    pub cidr_block: String,
    #[serde(deserialize_with = "nullable")]
    pub action: String,
    #[serde(deserialize_with = "nullable")]
    pub policy_description: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PolicySet {
    #[serde(deserialize_with = "nullable")]
    pub version: String,
    #[serde(deserialize_with = "nullable")]
    pub ingress: Vec<Policy>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeSecurityGroupPolicies {
    pub security_group_policy_set: PolicySet,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RunInstances {
    #[serde(deserialize_with = "nullable")]
    pub instance_id_set: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Placement {
    #[serde(deserialize_with = "nullable")]
    pub zone: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InstanceItem {
    #[serde(deserialize_with = "nullable")]
    pub instance_id: String,
    #[serde(deserialize_with = "nullable")]
    pub instance_state: String,
    #[serde(deserialize_with = "nullable")]
    pub instance_type: String,
    #[serde(deserialize_with = "nullable")]
    pub placement: Placement,
    #[serde(deserialize_with = "nullable")]
    pub private_ip_addresses: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub public_ip_addresses: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub tags: Vec<Tag>,
    /// The groups the instance is in, in priority order.
    #[serde(deserialize_with = "nullable")]
    pub security_group_ids: Vec<String>,
    /// `PREPAID`, `POSTPAID_BY_HOUR`, ...
    #[serde(deserialize_with = "nullable")]
    pub instance_charge_type: String,
    /// Why a SHUTDOWN instance is isolated: `MANMADE` (returned: in the recycle bin),
    /// `EXPIRE`, `ARREAR`; `NOTISOLATED` otherwise.
    #[serde(deserialize_with = "nullable")]
    pub isolated_source: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeInstances {
    #[serde(deserialize_with = "nullable")]
    pub instance_set: Vec<InstanceItem>,
    #[serde(deserialize_with = "nullable")]
    pub total_count: u64,
}

/// A task id: a string in the EIP calls' answers, an integer in DescribeTaskResult (both
/// accepted, so an answer is never refused over it).
fn task_id<'de, D>(d: D) -> Result<String, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => String::new(),
    })
}

/// An asynchronous VPC call's answer (EIP calls): the task to poll.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Task {
    #[serde(deserialize_with = "task_id")]
    pub task_id: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocateAddresses {
    #[serde(deserialize_with = "nullable")]
    pub address_set: Vec<String>,
    #[serde(deserialize_with = "task_id")]
    pub task_id: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AddressItem {
    #[serde(deserialize_with = "nullable")]
    pub address_id: String,
    #[serde(deserialize_with = "nullable")]
    pub address_ip: String,
    #[serde(deserialize_with = "nullable")]
    pub address_status: String,
    #[serde(deserialize_with = "nullable")]
    pub instance_id: String,
    #[serde(deserialize_with = "nullable")]
    pub bandwidth: u64,
    #[serde(deserialize_with = "nullable")]
    pub tag_set: Vec<Tag>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeAddresses {
    #[serde(deserialize_with = "nullable")]
    pub address_set: Vec<AddressItem>,
    #[serde(deserialize_with = "nullable")]
    pub total_count: u64,
}

/// `Price.InstancePrice` / `Price.BandwidthPrice` of InquiryPriceRunInstances.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ItemPrice {
    #[serde(deserialize_with = "nullable")]
    pub unit_price: f64,
    #[serde(deserialize_with = "nullable")]
    pub unit_price_discount: f64,
    #[serde(deserialize_with = "nullable")]
    pub charge_unit: String,
    #[serde(deserialize_with = "nullable")]
    pub original_price: f64,
    #[serde(deserialize_with = "nullable")]
    pub discount_price: f64,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PriceBody {
    #[serde(deserialize_with = "nullable")]
    pub instance_price: ItemPrice,
    #[serde(deserialize_with = "nullable")]
    pub bandwidth_price: Option<ItemPrice>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InquiryPrice {
    pub price: PriceBody,
}

/// One item of DescribeZoneInstanceConfigInfos' `InstanceTypeQuotaSet`: a type in a zone under
/// one charge type.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InstanceTypeQuotaItem {
    #[serde(deserialize_with = "nullable")]
    pub zone: String,
    #[serde(deserialize_with = "nullable")]
    pub instance_type: String,
    #[serde(deserialize_with = "nullable")]
    pub instance_charge_type: String,
    /// `SELL` or `SOLD_OUT`.
    #[serde(deserialize_with = "nullable")]
    pub status: String,
    /// `EnoughStock`, `NormalStock`, `UnderStock` or `WithoutStock`.
    #[serde(deserialize_with = "nullable")]
    pub status_category: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeZoneInstanceConfigInfos {
    #[serde(deserialize_with = "nullable")]
    pub instance_type_quota_set: Vec<InstanceTypeQuotaItem>,
}

/// STS GetCallerIdentity: the main account's uin names resources in the Tag API.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CallerIdentity {
    #[serde(deserialize_with = "nullable")]
    pub account_id: String,
}
