//! `EcsInstance`: one virtual machine as a platform user orders it — business keys (image, GPU
//! model) that each CloudProvider's catalog maps onto its cloud.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{DeletionPolicy, SecretKeyRef};

/// A virtual machine on one cloud: the operator ensures the user's network, maps the business
/// image key and GPU model to the provider's image and instance type, runs the instance, binds a
/// public IP and opens ports.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "ecs.multicloud.io",
    version = "v1alpha1",
    kind = "EcsInstance",
    namespaced,
    shortname = "ecs",
    status = "EcsInstanceStatus",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".status.provider"}"#,
    printcolumn = r#"{"name":"Region","type":"string","jsonPath":".status.region"}"#,
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".status.instanceType"}"#,
    printcolumn = r#"{"name":"Instance","type":"string","jsonPath":".status.instanceId"}"#,
    printcolumn = r#"{"name":"Public-IP","type":"string","jsonPath":".status.publicIp"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Private-IP","type":"string","jsonPath":".status.privateIp","priority":1}"#,
    printcolumn = r#"{"name":"Zone","type":"string","jsonPath":".status.zone","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = crate::providers::provider_tags_rule(),
    validation = crate::providers::provider_login_rule(),
    validation = Rule::new("!has(self.gpuModel) || !has(self.instanceType)").message("set gpuModel or instanceType, not both"),
    validation = Rule::new("self.chargeMode != 'PREPAID' || has(self.periodMonths)").message("chargeMode PREPAID requires periodMonths"),
    validation = Rule::new("self.chargeMode == 'PREPAID' || !has(self.periodMonths)").message("periodMonths is only valid with chargeMode PREPAID"),
    validation = Rule::new("!has(self.passwordSecretRef) || !has(self.keyPairName)").message("set passwordSecretRef or keyPairName, not both"),
    validation = Rule::new("has(self.provider) == has(oldSelf.provider) && (!has(self.provider) || self.provider == oldSelf.provider)").message("provider is immutable"),
    validation = Rule::new("has(self.placement) == has(oldSelf.placement) && (!has(self.placement) || self.placement == oldSelf.placement)").message("placement is immutable"),
    validation = Rule::new("has(self.provider) || (has(self.placement) && self.placement.policy != 'Fixed')").message("set provider, or a placement with policy Cheapest or Failover"),
    validation = Rule::new("has(self.region) == has(oldSelf.region) && (!has(self.region) || self.region == oldSelf.region)").message("region is immutable"),
    validation = Rule::new("has(self.zone) == has(oldSelf.zone) && (!has(self.zone) || self.zone == oldSelf.zone)").message("zone is immutable"),
    validation = Rule::new("self.imageKey == oldSelf.imageKey").message("imageKey is immutable"),
    validation = Rule::new("has(self.gpuModel) == has(oldSelf.gpuModel) && (!has(self.gpuModel) || self.gpuModel == oldSelf.gpuModel)").message("gpuModel is immutable"),
    validation = Rule::new("has(self.instanceType) == has(oldSelf.instanceType) && (!has(self.instanceType) || self.instanceType == oldSelf.instanceType)").message("instanceType is immutable"),
    validation = Rule::new("has(self.cpu) == has(oldSelf.cpu) && (!has(self.cpu) || self.cpu == oldSelf.cpu) && has(self.memoryGiB) == has(oldSelf.memoryGiB) && (!has(self.memoryGiB) || self.memoryGiB == oldSelf.memoryGiB)").message("cpu and memoryGiB are immutable"),
    validation = Rule::new("self.userId == oldSelf.userId").message("userId is immutable"),
    validation = Rule::new("has(self.tenantId) == has(oldSelf.tenantId) && (!has(self.tenantId) || self.tenantId == oldSelf.tenantId)").message("tenantId is immutable"),
    validation = Rule::new("has(self.systemDisk) == has(oldSelf.systemDisk) && (!has(self.systemDisk) || self.systemDisk == oldSelf.systemDisk)").message("systemDisk is immutable"),
    validation = Rule::new("has(self.networkRef) == has(oldSelf.networkRef) && (!has(self.networkRef) || self.networkRef == oldSelf.networkRef)").message("networkRef is immutable"),
    validation = Rule::new("has(self.instanceName) == has(oldSelf.instanceName) && (!has(self.instanceName) || self.instanceName == oldSelf.instanceName)").message("instanceName is immutable"),
    validation = Rule::new("has(self.passwordSecretRef) == has(oldSelf.passwordSecretRef) && has(self.keyPairName) == has(oldSelf.keyPairName) && (!has(self.keyPairName) || self.keyPairName == oldSelf.keyPairName)").message("login method is immutable"),
    validation = Rule::new("self.chargeMode == oldSelf.chargeMode && has(self.periodMonths) == has(oldSelf.periodMonths) && (!has(self.periodMonths) || self.periodMonths == oldSelf.periodMonths)").message("chargeMode and periodMonths are immutable"),
    validation = Rule::new("has(self.passwordSecretRef) == has(oldSelf.passwordSecretRef) && (!has(self.passwordSecretRef) || self.passwordSecretRef == oldSelf.passwordSecretRef)").message("passwordSecretRef is immutable"),
    validation = Rule::new("has(self.description) == has(oldSelf.description) && (!has(self.description) || self.description == oldSelf.description)").message("description is immutable"),
    validation = Rule::new("has(self.extensions) == has(oldSelf.extensions) && (!has(self.extensions) || self.extensions == oldSelf.extensions)").message("extensions are immutable"),
    validation = Rule::new("has(self.adopt) == has(oldSelf.adopt) && (!has(self.adopt) || self.adopt == oldSelf.adopt)").message("adopt is immutable")
)]
pub struct EcsInstanceSpec {
    /// Code of the CloudProvider to run on (e.g. `ALIYUN`). Required by the fixed scheduling
    /// policy; an EcsInstance without it stays unscheduled with reason `ProviderRequired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub provider: Option<String>,

    /// Region, e.g. `cn-hangzhou`. Defaults to the provider's default region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub region: Option<String>,

    /// Zone, e.g. `cn-hangzhou-i`. Defaults to the provider's default zone for the region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub zone: Option<String>,

    /// Tenant. Optional: the namespace's `ecs.multicloud.io/tenant` label decides; a value that
    /// disagrees with it is refused (reason `TenantMismatch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    )]
    pub tenant_id: Option<String>,

    /// The end user owning the machine; with the tenant, provider and region it selects the
    /// user's isolated network. Letters, digits, `_`, `.` and `-`, starting and ending with a
    /// letter or digit (it becomes a label value).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")
    )]
    pub user_id: String,

    /// Name of the machine on the cloud. Defaults to `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 128))]
    pub instance_name: Option<String>,

    /// Business image key (e.g. `pytorch-1.12`), mapped to the provider's image id by the
    /// CloudProvider's catalog.
    #[schemars(length(min = 1, max = 128))]
    pub image_key: String,

    /// GPU model (e.g. `A100`), mapped to an instance type by the CloudProvider's catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub gpu_model: Option<String>,

    /// Provider instance type (e.g. `ecs.gn7i-c8g1.2xlarge`), used as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub instance_type: Option<String>,

    /// Wanted vCPUs, matched against the catalog's sizes when neither gpuModel nor instanceType is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024))]
    pub cpu: Option<u32>,

    /// Wanted memory in GiB, matched against the catalog's sizes with `cpu`.
    #[serde(default, rename = "memoryGiB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16384))]
    pub memory_gib: Option<u32>,

    /// System disk. Defaults to the provider's default category and size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_disk: Option<SystemDiskSpec>,

    /// Public IP (an elastic IP bound to the instance). May change on a live instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<PublicIpSpec>,

    /// TCP ports opened to the internet (0.0.0.0/0). May change on a live instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = Rule::new("self.all(p, p >= 1 && p <= 65535)").message("ports must be in 1..65535"))]
    pub open_ports: Vec<i32>,

    /// Login password, read from a Secret in this namespace (never a plain value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,

    /// Name of a key pair registered with the provider, instead of a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub key_pair_name: Option<String>,

    /// ON_DEMAND (pay as you go) or PREPAID (subscription for `periodMonths`).
    #[serde(default)]
    pub charge_mode: ChargeMode,

    /// Subscription length in months; required with PREPAID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 60))]
    pub period_months: Option<u32>,

    /// Free text stored with the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub description: Option<String>,

    /// Cloud tags. The keys `tenantId`, `Owner`, `createdBy` and the `multicloud-ecs/` prefix are
    /// reserved (the operator injects them). May change on a live instance.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 15))]
    #[x_kube(validation = crate::providers::user_tags_rule("reserved or too long tag key"))]
    pub tags: BTreeMap<String, String>,

    /// Name of a UserNetwork in this namespace. Without it the user's network is found or
    /// created (silent addressing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub network_ref: Option<String>,

    /// Delete (default) releases every cloud resource with the object; Orphan leaves them.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Multi-cloud placement: candidates (provider, region, zone) and the policy choosing among
    /// them. Without it (or with policy `Fixed`), `provider` names the one provider. The choice
    /// is pinned once the instance exists; before that, a create refused for stock or quota
    /// moves on to the next candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<super::placement::PlacementSpec>,

    /// Provider-specific parameters passed through verbatim (wire names, e.g. `HostName`).
    /// Only those the CloudProvider lists in `allowedExtensions` (none by default); any other
    /// key is refused with `ExtensionNotAllowed` before any cloud call. They never override
    /// parameters the operator sets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub extensions: BTreeMap<String, String>,

    // --- adoption (issue 12) ---
    /// Take over an existing cloud instance instead of creating one (see `api::adopt` for the
    /// checks). Immutable; `deletionPolicy` applies to the adopted instance as to a created one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopt: Option<super::adopt::InstanceAdoptSpec>,
}

/// System disk of the instance.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemDiskSpec {
    /// Size in GiB (20..2048).
    #[serde(rename = "sizeGiB")]
    #[schemars(range(min = 20, max = 2048))]
    pub size_gib: u32,
    /// Provider disk category (e.g. `cloud_essd`). Defaults to the provider's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub category: Option<String>,
}

/// Public IP settings.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicIpSpec {
    /// Whether to bind an elastic IP.
    #[serde(default)]
    pub allocate: bool,
    /// Bandwidth cap in Mbit/s (1..200).
    #[serde(default = "default_bandwidth")]
    #[schemars(range(min = 1, max = 200))]
    pub bandwidth_mbps: u32,
    /// TRAFFIC (pay by traffic) or FIXED (pay by bandwidth). Fixed when the EIP is allocated:
    /// the cloud cannot change a bound EIP's billing, so a change is refused (reason
    /// `BandwidthModeImmutable`, status keeps the EIP's real mode) until it is reverted, or
    /// `allocate` is turned off and on again (a new EIP, a new address).
    #[serde(default)]
    pub bandwidth_mode: BandwidthMode,
}

fn default_bandwidth() -> u32 {
    5
}

/// How the machine is paid for.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum ChargeMode {
    #[default]
    #[serde(rename = "ON_DEMAND")]
    OnDemand,
    #[serde(rename = "PREPAID")]
    Prepaid,
}

/// How public bandwidth is billed.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum BandwidthMode {
    #[default]
    #[serde(rename = "TRAFFIC")]
    Traffic,
    #[serde(rename = "FIXED")]
    Fixed,
}

/// Life-cycle phase, for humans; conditions are the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Phase {
    /// Waiting for a prerequisite (provider, network) or refused input.
    Pending,
    /// Cloud resources are being created.
    Provisioning,
    /// The instance runs; public IP and ports may still be converging (see conditions).
    Running,
    /// A terminal failure: the spec must change.
    Failed,
    /// Cloud resources are being released.
    Deleting,
}

/// Observed state of an EcsInstance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EcsInstanceStatus {
    /// Life-cycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` plus one condition per step: NetworkReady, InstanceReady, PublicIpReady, PortsReady.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Provider code the instance was scheduled to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Resolved provider instance type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Resolved provider image id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// When the operator learned `instanceId` (RFC 3339). A new instance the cloud does not
    /// list yet (read lag) counts as lost only after a grace period from this moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id_learned_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eip_allocation_id: Option<String>,
    /// When the operator learned `eipAllocationId` (RFC 3339). A new EIP the cloud does not
    /// list yet (read lag) counts as lost only after a grace period from this moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eip_allocation_id_learned_at: Option<String>,
    /// The network the instance runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStatusRef>,
    /// The instance's own security group, holding its open ports (so changing them never
    /// touches another instance of the same user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group_id: Option<String>,
    /// Provider charge type of the instance (e.g. `PostPaid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_charge_type: Option<String>,
    /// Provider charge type of the public bandwidth (e.g. `PayByTraffic`): the bound EIP's, else
    /// the wanted one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_charge_type: Option<String>,
    /// ClientToken of the instance creation, persisted before the cloud call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// ClientToken of the EIP allocation, persisted before the cloud call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eip_client_token: Option<String>,
    /// ClientToken of the instance security group creation, persisted before the cloud call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group_client_token: Option<String>,
    /// Where placement put the instance (policies Cheapest and Failover) and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<super::placement::PlacementStatus>,
    /// The price of the instance's order, as quoted when it was placed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<super::placement::PriceStatus>,
    /// The security group create sent to a cloud without ClientTokens for it, until the group
    /// is found by its tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_create: Option<super::PendingCreate>,
}

/// The network an instance runs in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStatusRef {
    /// UserNetwork name.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    #[serde(default, rename = "vSwitchId", skip_serializing_if = "Option::is_none")]
    pub v_switch_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group_id: Option<String>,
}
