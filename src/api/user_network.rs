//! `UserNetwork`: one isolated VPC + subnet + security group per (tenant, user, provider, region).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::DeletionPolicy;

/// The isolated network of one user of one tenant on one provider and region. Found on the cloud
/// by its tags or created. EcsInstances that name no network get their user's UserNetwork
/// ("silent addressing"); only this resource's controller creates cloud network resources.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "ecs.multicloud.io",
    version = "v1alpha1",
    kind = "UserNetwork",
    namespaced,
    shortname = "unet",
    status = "UserNetworkStatus",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider"}"#,
    printcolumn = r#"{"name":"Region","type":"string","jsonPath":".spec.region"}"#,
    printcolumn = r#"{"name":"VPC","type":"string","jsonPath":".status.vpcId"}"#,
    printcolumn = r#"{"name":"CIDR","type":"string","jsonPath":".status.cidrBlock"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = crate::providers::provider_tags_rule(),
    validation = Rule::new("self.provider == oldSelf.provider && self.region == oldSelf.region && self.userId == oldSelf.userId").message("provider, region and userId are immutable"),
    validation = Rule::new("has(self.tenantId) == has(oldSelf.tenantId) && (!has(self.tenantId) || self.tenantId == oldSelf.tenantId)").message("tenantId is immutable"),
    validation = Rule::new("has(self.zone) == has(oldSelf.zone) && (!has(self.zone) || self.zone == oldSelf.zone)").message("zone is immutable"),
    validation = Rule::new("has(self.cidrBlock) == has(oldSelf.cidrBlock) && (!has(self.cidrBlock) || self.cidrBlock == oldSelf.cidrBlock)").message("cidrBlock is immutable"),
    validation = Rule::new("has(self.adopt) == has(oldSelf.adopt) && (!has(self.adopt) || self.adopt == oldSelf.adopt)").message("adopt is immutable"),
    validation = Rule::new("!has(self.adopt) || !has(self.cidrBlock)").message("cidrBlock cannot be set with adopt: the adopted VPC's block is the network's")
)]
pub struct UserNetworkSpec {
    /// Code of the CloudProvider (e.g. `ALIYUN`).
    #[schemars(length(min = 1, max = 63))]
    pub provider: String,
    /// Region, e.g. `cn-hangzhou`.
    #[schemars(length(min = 1, max = 63))]
    pub region: String,
    /// Zone of the subnet. Defaults to the provider's default zone for the region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub zone: Option<String>,
    /// Tenant; must agree with the namespace's `ecs.multicloud.io/tenant` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    )]
    pub tenant_id: Option<String>,
    /// The user the network belongs to.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")
    )]
    pub user_id: String,
    /// VPC CIDR inside 172.16.0.0/12 with a prefix of /16../24. Defaults to a block derived
    /// from the (tenant, user) hash, skipping blocks the tenant already uses there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isCIDR(self) && cidr(self).ip().family() == 4 && cidr('172.16.0.0/12').containsCIDR(self) && cidr(self).prefixLength() >= 16 && cidr(self).prefixLength() <= 24").message("cidrBlock must be an IPv4 block inside 172.16.0.0/12 with a prefix length of 16 to 24"))]
    pub cidr_block: Option<String>,
    /// Extra cloud tags (reserved keys as on EcsInstance).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 15))]
    #[x_kube(validation = crate::providers::user_tags_rule("reserved or too long tag key"))]
    pub tags: BTreeMap<String, String>,
    /// Delete (default) releases the cloud network when the object is deleted and no instance
    /// uses it; Orphan leaves it. An EcsInstance deleted with `deletionPolicy: Orphan` sets its
    /// silent network to Orphan: the VM it leaves behind keeps the VPC, VSwitch and group.
    /// An adopted network (`adopt`) has the same default: once adopted its VPC, VSwitch and
    /// group are managed like created ones, so Delete releases them too (and any VSwitch the
    /// operator added for another zone); set Orphan to keep them (they keep the object's UID
    /// tag, so no other object adopts them later by mistake).
    #[serde(default)]
    pub reclaim_policy: DeletionPolicy,
    /// Take over an existing VPC, VSwitch (subnet) and security group instead of finding or
    /// creating the user's network. Before any cloud write the operator checks that all three
    /// exist in `provider`'s `region`, that the VSwitch and the group belong to the VPC (Tencent
    /// Cloud's groups are regional and belong to no VPC), that the VSwitch is in `zone` if
    /// set (its zone becomes the network's), and that each carries no other object's
    /// `multicloud-ecs/uid` tag and is tagged `tenantId=<the namespace's tenant>` (or carries no
    /// `tenantId` where the CloudProvider sets `allowUntaggedAdoption`). Otherwise `Ready=False`
    /// with `AdoptionRefused`, naming the resource and why, and nothing is changed. Adopted
    /// resources are tagged like created ones (UID, tenant, owner, namespace, role) and the
    /// VPC's block becomes `status.cidrBlock`. Immutable; excludes `cidrBlock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopt: Option<super::adopt::NetworkAdoptSpec>,
}

/// Observed state of a UserNetwork.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserNetworkStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions::conditions_schema")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    #[serde(default, rename = "vSwitchId", skip_serializing_if = "Option::is_none")]
    pub v_switch_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_block: Option<String>,
    /// Zone of the subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Subnet (VSwitch) id per zone: the network's own zone (also in `vSwitchId`) plus every
    /// zone its instances need.
    #[serde(
        default,
        rename = "vSwitchIds",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub v_switch_ids: BTreeMap<String, String>,
    /// EcsInstances (names in this namespace) using the network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_by: Vec<String>,
    /// ClientToken prefix of the network's creates, persisted before the cloud calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// Creates sent to a cloud without ClientTokens for network creates whose resource has not
    /// been found by its tags yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_creates: Vec<super::PendingCreate>,
}
