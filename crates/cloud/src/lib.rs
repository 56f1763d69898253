//! The provider-neutral cloud layer: one driver interface, neutral types, error classes, retry
//! with jitter, the client-side rate limiter, and the provider profile every driver publishes.
//! No Kubernetes types: the operator maps its API onto these.
//!
//! The interface is shaped for Alibaba Cloud, Tencent Cloud and AWS alike:
//! - login is a password *or* a key pair (AWS has no password login);
//! - charge mode is a provider-neutral enum (AWS has no charge-type parameter: on-demand only);
//! - EIP association/release may complete asynchronously (Tencent): callers read
//!   [`Eip::status`] rather than assume the call finished;
//! - an EIP is released only after it is disassociated (AWS, Alibaba): callers disassociate first.

pub mod error;
pub mod observe;
pub mod profile;
pub mod ratelimit;
pub mod retry;
pub mod transport;

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use error::{CONNECTION_FAILED, CloudError, CloudResult, ErrorClass, IgnoreNotFound};
pub use profile::{
    DriverConfig, PasswordPolicy, ProviderLimits, ProviderPlugin, ProviderProfile,
    ProviderRegistry, wire_name_matches,
};
pub use ratelimit::RateLimit;
pub use retry::RetryPolicy;

/// Cloud resource tags, ordered so requests are deterministic (and signatures reproducible).
pub type Tags = BTreeMap<String, String>;

/// A secret string (password, access key secret). Never printed: `Debug` and `Display` redact.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Credentials for one cloud account.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub access_key_id: String,
    pub access_key_secret: Secret,
}

/// A VPC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vpc {
    pub id: String,
    pub cidr_block: String,
    /// True once the VPC can take subnets (Alibaba: `Available`).
    pub available: bool,
    pub tags: Tags,
}

/// A subnet (Alibaba: VSwitch).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subnet {
    pub id: String,
    pub vpc_id: String,
    pub zone: String,
    pub cidr_block: String,
    pub available: bool,
    pub tags: Tags,
}

/// A security group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroup {
    pub id: String,
    pub vpc_id: String,
    pub tags: Tags,
}

/// One inbound TCP rule: a port open to a source CIDR.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortRule {
    pub port: u16,
    pub source_cidr: String,
    /// Free text stored with the rule (tells which object opened it).
    #[serde(default)]
    pub description: String,
}

impl PortRule {
    /// The rule's identity on the cloud (description is not part of it).
    pub fn key(&self) -> (u16, &str) {
        (self.port, &self.source_cidr)
    }
}

#[derive(Clone, Debug)]
pub struct CreateVpc {
    pub region: String,
    pub cidr_block: String,
    pub name: String,
    pub description: String,
    pub tags: Tags,
    pub client_token: String,
}

#[derive(Clone, Debug)]
pub struct CreateSubnet {
    pub region: String,
    pub vpc_id: String,
    pub zone: String,
    pub cidr_block: String,
    pub name: String,
    pub tags: Tags,
    pub client_token: String,
}

#[derive(Clone, Debug)]
pub struct CreateSecurityGroup {
    pub region: String,
    pub vpc_id: String,
    pub name: String,
    pub description: String,
    pub tags: Tags,
    pub client_token: String,
}

/// How the machine is paid for, provider-neutral.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChargeMode {
    OnDemand,
    Prepaid { months: u32 },
}

/// How public bandwidth is billed, provider-neutral (the API's TRAFFIC / FIXED).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BandwidthMode {
    /// Pay by traffic (Alibaba `PayByTraffic`).
    Traffic,
    /// Pay by fixed bandwidth (Alibaba `PayByBandwidth`).
    Fixed,
}

/// How to log in to a new instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Login {
    /// Provider default (no credential set at creation).
    None,
    Password(Secret),
    KeyPair(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemDisk {
    /// Provider's disk category, e.g. `cloud_essd`.
    pub category: String,
    pub size_gib: u32,
}

/// One instance to run. Public IPs are attached afterwards as EIPs, never at creation, so
/// the public address can change on a live instance.
#[derive(Clone, Debug)]
pub struct RunInstance {
    pub region: String,
    pub zone: String,
    pub instance_type: String,
    pub image_id: String,
    pub subnet_id: String,
    /// Security groups the instance joins (at least one, all in the subnet's VPC), e.g. the
    /// user network's group plus the instance's own, so one instance's ports never open
    /// another's.
    pub security_group_ids: Vec<String>,
    pub name: String,
    pub description: String,
    pub system_disk: SystemDisk,
    pub login: Login,
    pub charge: ChargeMode,
    pub tags: Tags,
    pub client_token: String,
    /// Provider-specific parameters passed through verbatim (wire names).
    pub extensions: BTreeMap<String, String>,
}

/// Instance life-cycle, provider-neutral.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstanceStatus {
    Pending,
    Starting,
    Running,
    Stopping,
    Stopped,
    /// Being deleted or gone (AWS `shutting-down`/`terminated`, Tencent `TERMINATING`).
    Terminated,
    /// Creation failed on the cloud side (Tencent `LAUNCH_FAILED`).
    Failed,
    Other(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub id: String,
    pub status: InstanceStatus,
    pub instance_type: String,
    pub zone: String,
    pub private_ip: Option<String>,
    /// Public address, whether an EIP or a provider-assigned one.
    pub public_ip: Option<String>,
    /// Allocation id of the associated EIP, if any.
    pub eip_allocation_id: Option<String>,
    pub tags: Tags,
}

#[derive(Clone, Debug)]
pub struct AllocateEip {
    pub region: String,
    pub bandwidth_mbps: u32,
    pub bandwidth_mode: BandwidthMode,
    pub tags: Tags,
    pub client_token: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EipStatus {
    /// Allocated and not yet usable (clouds with asynchronous allocation, e.g. Tencent).
    Creating,
    Available,
    Associating,
    InUse,
    Unassociating,
    /// Being released.
    Releasing,
    Other(String),
}

impl EipStatus {
    /// The cloud is moving the EIP between states: no association, release or change is
    /// accepted until it settles.
    pub fn is_transitional(&self) -> bool {
        matches!(
            self,
            Self::Creating | Self::Associating | Self::Unassociating | Self::Releasing
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Eip {
    pub allocation_id: String,
    pub ip_address: String,
    pub status: EipStatus,
    pub instance_id: Option<String>,
    pub bandwidth_mbps: u32,
    pub tags: Tags,
}

/// Which EIPs to describe; empty fields do not filter.
#[derive(Clone, Debug, Default)]
pub struct EipFilter {
    pub allocation_ids: Vec<String>,
    pub instance_id: Option<String>,
    pub tags: Tags,
}

/// A price question: the same shape as the instance that would be run.
#[derive(Clone, Debug)]
pub struct PriceQuery {
    pub region: String,
    pub zone: Option<String>,
    pub instance_type: String,
    pub image_id: Option<String>,
    pub system_disk: Option<SystemDisk>,
    pub charge: ChargeMode,
    /// Public bandwidth to price, if a public IP is wanted.
    pub bandwidth: Option<(u32, BandwidthMode)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    pub currency: String,
    pub original_price: f64,
    pub discount_price: f64,
    pub trade_price: f64,
    /// What one price covers: `Hour` for on-demand, `Month` for prepaid.
    pub unit: String,
}

/// One provider account's API, as the reconcilers need it. Every create takes a ClientToken
/// and tags so it is idempotent across crashes; every describe can find by tags so the
/// reconcilers can look before they create.
#[async_trait]
pub trait CloudDriver: Send + Sync {
    /// Provider code, e.g. `ALIYUN`.
    fn provider(&self) -> &'static str;

    /// A cheap authenticated call proving the endpoint and credentials work.
    async fn probe(&self, region: &str) -> CloudResult<()>;

    async fn find_vpcs(&self, region: &str, tags: &Tags) -> CloudResult<Vec<Vpc>>;
    async fn create_vpc(&self, req: &CreateVpc) -> CloudResult<String>;
    async fn delete_vpc(&self, region: &str, vpc_id: &str) -> CloudResult<()>;

    async fn find_subnets(
        &self,
        region: &str,
        vpc_id: &str,
        tags: &Tags,
    ) -> CloudResult<Vec<Subnet>>;
    async fn create_subnet(&self, req: &CreateSubnet) -> CloudResult<String>;
    async fn delete_subnet(&self, region: &str, subnet_id: &str) -> CloudResult<()>;

    async fn find_security_groups(
        &self,
        region: &str,
        vpc_id: &str,
        tags: &Tags,
    ) -> CloudResult<Vec<SecurityGroup>>;
    async fn create_security_group(&self, req: &CreateSecurityGroup) -> CloudResult<String>;
    async fn delete_security_group(&self, region: &str, group_id: &str) -> CloudResult<()>;

    /// Inbound TCP rules of a security group.
    async fn describe_ingress(&self, region: &str, group_id: &str) -> CloudResult<Vec<PortRule>>;
    /// Opens ports; a rule that already exists counts as success.
    async fn authorize_ingress(
        &self,
        region: &str,
        group_id: &str,
        rules: &[PortRule],
    ) -> CloudResult<()>;
    /// Closes ports; a rule that does not exist counts as success.
    async fn revoke_ingress(
        &self,
        region: &str,
        group_id: &str,
        rules: &[PortRule],
    ) -> CloudResult<()>;

    /// Runs exactly one instance; returns its id. Replaying the same ClientToken with the same
    /// request returns the same id.
    async fn run_instance(&self, req: &RunInstance) -> CloudResult<String>;
    /// Describes instances by id, batching to the provider's page size. Unknown ids are absent.
    async fn describe_instances(&self, region: &str, ids: &[String]) -> CloudResult<Vec<Instance>>;
    /// All instances carrying every given tag (all pages).
    async fn find_instances(&self, region: &str, tags: &Tags) -> CloudResult<Vec<Instance>>;
    /// Deletes an instance whatever its state.
    async fn delete_instance(&self, region: &str, instance_id: &str) -> CloudResult<()>;
    /// The permissions the operator needs that these credentials lack, by the cloud's policy
    /// action name (`ecs:RunInstances`), found without effect: DryRun creates carrying `tags`
    /// (the tags the operator puts on what it creates, so tag-conditioned grants count) and
    /// one-item reads. Changes to existing resources cannot be checked this way; their denials
    /// show on the step that makes them. Default: nothing checked.
    async fn probe_permissions(&self, region: &str, tags: &Tags) -> CloudResult<Vec<String>> {
        let _ = (region, tags);
        Ok(Vec::new())
    }
    /// Starts a Stopped instance (one stopped outside the operator, or after an expiry that was
    /// renewed). A provider without it answers InvalidParameter.
    async fn start_instance(&self, region: &str, instance_id: &str) -> CloudResult<()> {
        let _ = region;
        Err(CloudError::new(
            ErrorClass::InvalidParameter,
            self.provider(),
            "StartInstance",
            "Unsupported",
            format!("starting instance {instance_id} is not supported"),
        ))
    }
    /// Adds tags to a live instance, overwriting the values of keys it already has. Empty
    /// `tags` is a no-op. Fails NotFound for an unknown instance, QuotaExceeded past the
    /// provider's tag limit per resource.
    /// The VPC `vpc_id` in `region`, with its tags; `None` when the region has no such VPC.
    /// Default: unsupported (InvalidParameter `Unsupported`).
    async fn describe_vpc(&self, region: &str, vpc_id: &str) -> CloudResult<Option<Vpc>> {
        let _ = region;
        Err(unsupported(
            self.provider(),
            "DescribeVpc",
            format!("describing VPC {vpc_id} by id is not supported"),
        ))
    }
    /// The subnet `subnet_id` in `region`, with its tags, zone and VPC; `None` when the region
    /// has no such subnet. Default: unsupported.
    async fn describe_subnet(&self, region: &str, subnet_id: &str) -> CloudResult<Option<Subnet>> {
        let _ = region;
        Err(unsupported(
            self.provider(),
            "DescribeSubnet",
            format!("describing subnet {subnet_id} by id is not supported"),
        ))
    }
    /// The security group `group_id` in `region`, with its tags and VPC (empty on clouds whose
    /// groups are regional, e.g. Tencent); `None` when the region has no such group. Default:
    /// unsupported.
    async fn describe_security_group(
        &self,
        region: &str,
        group_id: &str,
    ) -> CloudResult<Option<SecurityGroup>> {
        let _ = region;
        Err(unsupported(
            self.provider(),
            "DescribeSecurityGroup",
            format!("describing security group {group_id} by id is not supported"),
        ))
    }
    /// Adds tags to a live network resource, overwriting the values of keys it already has,
    /// as [`CloudDriver::tag_instance`] does for instances. Empty `tags` is a no-op. Fails
    /// NotFound for an unknown resource. Default: unsupported.
    async fn tag_resource(
        &self,
        region: &str,
        kind: ResourceKind,
        id: &str,
        tags: &Tags,
    ) -> CloudResult<()> {
        let _ = (region, tags);
        Err(unsupported(
            self.provider(),
            "TagResources",
            format!("tagging {} {id} is not supported", kind.as_str()),
        ))
    }
    /// Removes tags from a live network resource by key; keys it does not have are ignored.
    /// Empty `keys` is a no-op. Fails NotFound for an unknown resource. Default: unsupported.
    async fn untag_resource(
        &self,
        region: &str,
        kind: ResourceKind,
        id: &str,
        keys: &[String],
    ) -> CloudResult<()> {
        let _ = (region, keys);
        Err(unsupported(
            self.provider(),
            "UntagResources",
            format!("untagging {} {id} is not supported", kind.as_str()),
        ))
    }
    /// Adds a live instance to the security group `group_id` (e.g. an adopted VM to the
    /// instance's own group, so its `openPorts` apply). Additive: the instance keeps the groups
    /// it is in. Idempotent: an instance already in the group is a success (and the driver
    /// makes no change). The group must be in the instance's VPC (on clouds whose groups are
    /// regional, e.g. Tencent, in its region): a group of another VPC fails InvalidParameter.
    /// Fails NotFound for an unknown instance or group, QuotaExceeded past the provider's
    /// limit of groups per instance (5 by default on all three clouds), WrongState while the
    /// instance cannot change (e.g. still pending). Alibaba `JoinSecurityGroup`, Tencent
    /// `AssociateSecurityGroups`, AWS `ModifyInstanceAttribute` with the union of the current
    /// groups and this one. Default: unsupported (InvalidParameter `Unsupported`).
    async fn join_security_group(
        &self,
        region: &str,
        instance_id: &str,
        group_id: &str,
    ) -> CloudResult<()> {
        let _ = region;
        Err(unsupported(
            self.provider(),
            "JoinSecurityGroup",
            format!("adding instance {instance_id} to security group {group_id} is not supported"),
        ))
    }
    async fn tag_instance(&self, region: &str, instance_id: &str, tags: &Tags) -> CloudResult<()>;
    /// Removes tags from a live instance by key; keys it does not have are ignored. Empty
    /// `keys` is a no-op. Fails NotFound for an unknown instance.
    async fn untag_instance(
        &self,
        region: &str,
        instance_id: &str,
        keys: &[String],
    ) -> CloudResult<()>;

    async fn allocate_eip(&self, req: &AllocateEip) -> CloudResult<Eip>;
    async fn associate_eip(
        &self,
        region: &str,
        allocation_id: &str,
        instance_id: &str,
    ) -> CloudResult<()>;
    async fn describe_eips(&self, region: &str, filter: &EipFilter) -> CloudResult<Vec<Eip>>;
    async fn modify_eip_bandwidth(
        &self,
        region: &str,
        allocation_id: &str,
        bandwidth_mbps: u32,
    ) -> CloudResult<()>;
    async fn disassociate_eip(
        &self,
        region: &str,
        allocation_id: &str,
        instance_id: &str,
    ) -> CloudResult<()>;
    /// Releases an EIP; it must be disassociated first.
    async fn release_eip(&self, region: &str, allocation_id: &str) -> CloudResult<()>;

    async fn describe_price(&self, query: &PriceQuery) -> CloudResult<Price>;

    /// Where `instance_type` can be launched now with this charge mode, per zone of `region`
    /// (`zone` narrows the answer to one), as the cloud tells before any create (Alibaba
    /// `DescribeAvailableResource`, Tencent `DescribeZoneInstanceConfigInfos`). A zone absent
    /// from the answer does not offer the type. A provider without such a call answers
    /// InvalidParameter `Unsupported`: placement then learns stock from the create itself.
    async fn describe_stock(
        &self,
        region: &str,
        zone: Option<&str>,
        instance_type: &str,
        charge: ChargeMode,
    ) -> CloudResult<Vec<ZoneStock>> {
        let _ = (region, zone, charge);
        Err(CloudError::new(
            ErrorClass::InvalidParameter,
            self.provider(),
            "DescribeStock",
            "Unsupported",
            format!("stock of {instance_type} cannot be queried"),
        ))
    }
}

/// A network resource kind, for the calls that take any of them by id
/// ([`CloudDriver::tag_resource`], [`CloudDriver::untag_resource`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResourceKind {
    Vpc,
    /// A subnet (Alibaba: VSwitch).
    Subnet,
    SecurityGroup,
}

impl ResourceKind {
    /// A provider-neutral name, for messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Vpc => "VPC",
            Self::Subnet => "subnet",
            Self::SecurityGroup => "security group",
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer of a driver without an optional call: InvalidParameter `Unsupported`.
fn unsupported(provider: &'static str, action: &str, message: String) -> CloudError {
    CloudError::new(
        ErrorClass::InvalidParameter,
        provider,
        action,
        "Unsupported",
        message,
    )
}

/// Stock of one instance type in one zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneStock {
    pub zone: String,
    /// Launchable now (Alibaba `WithStock`, Tencent `SELL`); false when sold out.
    pub available: bool,
}
