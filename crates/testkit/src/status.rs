//! Reading the status the operator writes: Ready EcsInstances, Available CloudProviders.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{Api, Client};
use multicloud_ecs::api::{CloudProvider, EcsInstance};

/// Whether the EcsInstance is Ready for its current generation.
pub fn is_ready(inst: &EcsInstance) -> bool {
    let Some(status) = &inst.status else {
        return false;
    };
    status.observed_generation == inst.metadata.generation
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The condition of a type on an EcsInstance.
pub fn condition<'a>(inst: &'a EcsInstance, type_: &str) -> Option<&'a Condition> {
    inst.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// Whether the CloudProvider `name` exists and is `Available=True` (the operator is up, its
/// caches synced and the probe passed).
pub async fn provider_available(client: &Client, name: &str) -> bool {
    let Ok(provider) = Api::<CloudProvider>::all(client.clone()).get(name).await else {
        return false;
    };
    provider.status.is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True")
    })
}
