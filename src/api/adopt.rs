//! Adoption: taking over a cloud resource created outside the operator (`spec.adopt` of an
//! EcsInstance or a UserNetwork).
//!
//! The operator adopts only a resource that exists in the object's provider and region, carries
//! no other object's `multicloud-ecs/uid` tag, and is tagged for the object's tenant (or is
//! untagged and the CloudProvider sets `allowUntaggedAdoption`). It then tags it with the
//! object's UID and tenant and manages it like one it created, `deletionPolicy` included.
//! Anything else is refused with `AdoptionRefused` before any cloud write.

use serde::{Deserialize, Serialize};

/// An existing cloud instance for an EcsInstance to take over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceAdoptSpec {
    /// The provider's instance id (e.g. `i-bp1...`, `ins-...`).
    #[schemars(length(min = 1, max = 128))]
    pub instance_id: String,
}

/// An existing VPC, VSwitch (subnet) and security group for a UserNetwork to take over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkAdoptSpec {
    #[schemars(length(min = 1, max = 128))]
    pub vpc_id: String,
    #[serde(rename = "vSwitchId")]
    #[schemars(length(min = 1, max = 128))]
    pub v_switch_id: String,
    #[schemars(length(min = 1, max = 128))]
    pub security_group_id: String,
}
