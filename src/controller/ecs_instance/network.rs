//! The instance's UserNetwork: found in the cache, or created by silent addressing (an instance
//! without `networkRef` gets its user's network on demand).

use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use tracing::info;

use super::super::context::Context;
use super::super::error::Result;
use super::super::plan::{self, NetworkWant};
use super::super::status::Progress;
use super::Resolved;
use crate::api::ecs_instance::NetworkStatusRef;
use crate::api::{
    DeletionPolicy, EcsInstance, EcsInstanceStatus, SILENT_ANNOTATION, USER_LABEL, UserNetwork,
    UserNetworkSpec,
};

/// Finds (or, by silent addressing, creates) the instance's UserNetwork and decides
/// `NetworkReady`; `None` while the network is not ready.
pub(super) async fn ensure_network(
    inst: &EcsInstance,
    ctx: &Context,
    resolved: &Resolved,
    progress: &mut Progress<EcsInstanceStatus>,
) -> Result<Option<NetworkStatusRef>> {
    let namespace = inst.namespace().unwrap_or_default();
    let name = &resolved.network_name;
    let cached = ctx.networks.get(&ObjectRef::new(name).within(&namespace));
    let decision = plan::network_readiness(&network_want(inst, resolved), cached.as_deref());
    if decision.create_silent {
        create_silent_network(inst, ctx, resolved).await?;
    }
    if let Some(reference) = &decision.reference {
        progress.status.network = Some(reference.clone());
    }
    let condition = decision.condition;
    progress.step(
        condition.type_,
        condition.status,
        condition.reason,
        condition.message,
    );
    Ok(decision.reference)
}

/// What the instance expects of its network.
pub fn network_want<'a>(inst: &'a EcsInstance, resolved: &'a Resolved) -> NetworkWant<'a> {
    NetworkWant {
        name: &resolved.network_name,
        named: inst.spec.network_ref.is_some(),
        user_id: &inst.spec.user_id,
        provider: &resolved.provider.spec.code,
        region: &resolved.params.placement.region,
        zone: &resolved.params.placement.zone,
        tenant: &resolved.tenant,
    }
}

async fn create_silent_network(
    inst: &EcsInstance,
    ctx: &Context,
    resolved: &Resolved,
) -> Result<()> {
    let namespace = inst.namespace().unwrap_or_default();
    let key = format!("{namespace}/{}", resolved.network_name);
    // The user's other instances arriving together wait for the create one of them sent (the
    // cache shows the network a moment later) instead of each sending one more.
    if !ctx.silent_creates.begin(&key) {
        return Ok(());
    }
    let network = silent_network(inst, resolved);
    let api: Api<UserNetwork> = Api::namespaced(ctx.client.clone(), &namespace);
    match api.create(&PostParams::default(), &network).await {
        Ok(_) => {
            info!(network = %resolved.network_name, "silent addressing: UserNetwork created");
            Ok(())
        }
        // Another instance of the same user got there first: the network is shared.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => {
            ctx.silent_creates.forget(&key);
            Err(e.into())
        }
    }
}

/// Silent network creates this process sent recently, by `namespace/name`.
#[derive(Default)]
pub struct SilentCreates(parking_lot::Mutex<std::collections::HashMap<String, Instant>>);

impl SilentCreates {
    /// How long a sent create stands for the network (its cache event comes well before).
    const HOLD: Duration = Duration::from_secs(5);

    /// Whether this caller sends the create (no other did within [`Self::HOLD`]).
    pub fn begin(&self, key: &str) -> bool {
        let mut sent = self.0.lock();
        sent.retain(|_, at| at.elapsed() < Self::HOLD);
        if sent.contains_key(key) {
            return false;
        }
        sent.insert(key.to_string(), Instant::now());
        true
    }

    /// A create that failed: the next instance tries again.
    pub fn forget(&self, key: &str) {
        self.0.lock().remove(key);
    }
}

/// `deletionPolicy: Orphan` leaves the VM in its user's silent network, so that network is
/// orphaned too (its reclaim policy set to Orphan before the instance's finalizer goes): deleted
/// with its last instance, it leaves the VPC, VSwitch and group to the VM, and a later network
/// of the same user in this namespace adopts them. A named network is the user's to manage.
pub(super) async fn orphan_silent_network(inst: &EcsInstance, ctx: &Context) -> Result<()> {
    if inst.spec.network_ref.is_some() {
        return Ok(());
    }
    let Some(name) = super::super::network_name_of(inst) else {
        return Ok(());
    };
    let namespace = inst.namespace().unwrap_or_default();
    let api: Api<UserNetwork> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(net) = api.get_opt(&name).await? else {
        return Ok(());
    };
    if !net.annotations().contains_key(SILENT_ANNOTATION)
        || net.spec.reclaim_policy == DeletionPolicy::Orphan
    {
        return Ok(());
    }
    let patch = serde_json::json!({"spec": {"reclaimPolicy": "Orphan"}});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            info!(network = %name, "instance orphaned: its silent network is orphaned too");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The UserNetwork silent addressing creates for an instance.
pub fn silent_network(inst: &EcsInstance, resolved: &Resolved) -> UserNetwork {
    UserNetwork {
        metadata: ObjectMeta {
            name: Some(resolved.network_name.clone()),
            namespace: Some(inst.namespace().unwrap_or_default()),
            annotations: Some([(SILENT_ANNOTATION.to_string(), "true".to_string())].into()),
            labels: Some([(USER_LABEL.to_string(), label_safe(&inst.spec.user_id))].into()),
            ..ObjectMeta::default()
        },
        spec: UserNetworkSpec {
            provider: resolved.provider.spec.code.clone(),
            region: resolved.params.placement.region.clone(),
            zone: Some(resolved.params.placement.zone.clone()),
            tenant_id: Some(resolved.tenant.clone()),
            user_id: inst.spec.user_id.clone(),
            cidr_block: None,
            tags: Default::default(),
            reclaim_policy: DeletionPolicy::Delete,
            adopt: None,
        },
        status: None,
    }
}

/// A valid label value: at most 63 characters of `[A-Za-z0-9_.-]`, starting and ending with an
/// alphanumeric (a user id ending in `-` would make the API server refuse the network).
fn label_safe(value: &str) -> String {
    let kept: String = value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(63)
        .collect();
    kept.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_silent_create_stands_for_the_users_other_instances() {
        let creates = SilentCreates::default();
        assert!(creates.begin("team-a/net-alice"));
        assert!(!creates.begin("team-a/net-alice"));
        assert!(creates.begin("team-b/net-alice"));
        creates.forget("team-a/net-alice");
        assert!(creates.begin("team-a/net-alice"));
    }

    #[test]
    fn labels_are_sanitized() {
        assert_eq!(label_safe("user@example.com"), "userexample.com");
        assert_eq!(label_safe("alice-"), "alice");
        assert_eq!(label_safe("_a.b_."), "a.b");
        assert_eq!(label_safe(&format!("{}-x", "y".repeat(62))), "y".repeat(62));
    }
}
