//! UserNetwork reconciler: ensures the user's VPC, subnet and security group ([`ensure()`]) and
//! releases them when the network is deleted and no instance uses it.

mod adopt;
mod ensure;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::watcher;

use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::{info, instrument};

use super::context::Context;
use super::error::{Error, Result};
use super::finalizer::{self, Phase};
use super::status::{EventSink, ObjectSink, Progress, StatusSink, warn_new_failures};
use super::tenancy::{self, TenancyError};
use super::{jittered, mapping, network_name_of, plan};
use crate::api::conditions;
use crate::api::{
    CloudProvider, EcsInstance, FINALIZER, Reason, SILENT_ANNOTATION, UserNetwork,
    UserNetworkStatus,
};
use crate::scheduler;

pub use adopt::{Adopter, Adoption, Decision, Observed, decide};
pub use ensure::{NetworkInputs, ensure, network_tags, owned_tags, release};

/// Requeue while a VPC is still being provisioned by the cloud.
const PROVISIONING_REQUEUE: Duration = Duration::from_secs(1);

/// How often a converged network's `usedBy` list is written at most while its instances come
/// and go (a status informational only: deletion asks the API server itself).
const USERS_WRITE_INTERVAL: Duration = Duration::from_secs(10);

#[instrument(skip_all, fields(usernetwork = %format!("{}/{}", net.namespace().unwrap_or_default(), net.name_any())))]
pub async fn reconcile(net: Arc<UserNetwork>, ctx: Arc<Context>) -> Result<Action> {
    finalizer::reconcile(net, &ctx, |phase| async {
        match phase {
            Phase::Apply(net) => apply(&net, &ctx).await,
            Phase::Cleanup(net) => cleanup(&net, &ctx).await,
        }
    })
    .await
}

/// A hash of what instances wait on in their network: its status but `usedBy`, its generation
/// and whether it is being deleted.
pub fn served_view_hash(net: &UserNetwork) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut status = net.status.clone().unwrap_or_default();
    status.used_by.clear();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&status).ok()?.hash(&mut hasher);
    net.metadata.generation.hash(&mut hasher);
    net.metadata.deletion_timestamp.is_some().hash(&mut hasher);
    Some(hasher.finish())
}

/// What a network needs to know of an instance: which network it uses, the zone it needs a
/// subnet in, and whether it still counts as a user (one being deleted does until its own
/// cleanup, which needs the network, is done).
fn network_view(inst: &EcsInstance) -> (Option<String>, Option<String>, bool) {
    (network_name_of(inst), needed_zone(inst), still_user(inst))
}

/// The zone an instance needs a subnet in (recorded in status once resolved).
fn needed_zone(inst: &EcsInstance) -> Option<String> {
    inst.status
        .as_ref()
        .and_then(|s| s.zone.clone())
        .or_else(|| inst.target_zone().map(String::from))
}

/// An instance being deleted whose cleanup is done no longer uses its network.
fn still_user(inst: &EcsInstance) -> bool {
    inst.meta().deletion_timestamp.is_none() || inst.finalizers().iter().any(|f| f == FINALIZER)
}

/// Which instances use each network (`namespace/name` → instance names and the zone each needs),
/// kept from the watch of all EcsInstances, so a network finds its users without scanning every
/// instance: at 10,000 instances that scan, once per network reconcile and per network event,
/// was most of the operator's CPU.
#[derive(Default)]
pub struct NetworkUsers(parking_lot::Mutex<UsersIndex>);

#[derive(Default)]
struct UsersIndex {
    /// Complete once the watch listed every instance.
    ready: bool,
    by_network: HashMap<String, BTreeMap<String, Option<String>>>,
    /// Where each instance (by `namespace/name`) is listed.
    network_of: HashMap<String, String>,
}

impl NetworkUsers {
    fn instance_key(inst: &EcsInstance) -> String {
        format!(
            "{}/{}",
            inst.namespace().unwrap_or_default(),
            inst.name_any()
        )
    }

    fn network_key(namespace: &str, network: &str) -> String {
        format!("{namespace}/{network}")
    }

    /// Records an instance as it is now.
    fn apply(&self, inst: &EcsInstance) {
        let key = Self::instance_key(inst);
        let mut index = self.0.lock();
        index.remove(&key, &inst.name_any());
        if !still_user(inst) {
            return;
        }
        let Some(network) = network_name_of(inst) else {
            return;
        };
        let network = Self::network_key(&inst.namespace().unwrap_or_default(), &network);
        index
            .by_network
            .entry(network.clone())
            .or_default()
            .insert(inst.name_any(), needed_zone(inst));
        index.network_of.insert(key, network);
    }

    fn delete(&self, inst: &EcsInstance) {
        self.0
            .lock()
            .remove(&Self::instance_key(inst), &inst.name_any());
    }

    /// The names of the network's users and the zone each needs; `None` until the watch has
    /// listed every instance.
    pub fn users(&self, namespace: &str, network: &str) -> Option<Vec<(String, Option<String>)>> {
        let index = self.0.lock();
        if !index.ready {
            return None;
        }
        Some(
            index
                .by_network
                .get(&Self::network_key(namespace, network))
                .map(|users| users.iter().map(|(n, z)| (n.clone(), z.clone())).collect())
                .unwrap_or_default(),
        )
    }
}

impl UsersIndex {
    fn remove(&mut self, instance_key: &str, name: &str) {
        if let Some(network) = self.network_of.remove(instance_key)
            && let Some(users) = self.by_network.get_mut(&network)
        {
            users.remove(name);
            if users.is_empty() {
                self.by_network.remove(&network);
            }
        }
    }
}

/// The instances whose [`network_view`] changed (or that were deleted), from a watch of all
/// EcsInstances, keeping `users` current: a network is reconciled when something about it
/// changed, not once per status write of each of its hundreds of instances while they converge.
pub fn relevant_instance_changes<S>(
    events: S,
    users: Arc<NetworkUsers>,
) -> impl futures::Stream<Item = std::result::Result<EcsInstance, watcher::Error>> + Send
where
    S: futures::Stream<Item = std::result::Result<watcher::Event<EcsInstance>, watcher::Error>>
        + Send,
{
    let mut seen: HashMap<String, u64> = HashMap::new();
    // A relist replaces the index: what it no longer lists was deleted meanwhile.
    let mut relisted: Option<NetworkUsers> = None;
    events.flat_map(move |event| {
        let changed: Vec<std::result::Result<EcsInstance, watcher::Error>> = match event {
            Err(e) => vec![Err(e)],
            Ok(watcher::Event::Init) => {
                relisted = Some(NetworkUsers::default());
                vec![]
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(fresh) = relisted.take() {
                    let mut fresh = fresh.0.into_inner();
                    fresh.ready = true;
                    *users.0.lock() = fresh;
                }
                vec![]
            }
            Ok(watcher::Event::InitApply(inst)) => {
                match &relisted {
                    Some(fresh) => fresh.apply(&inst),
                    None => users.apply(&inst),
                }
                changed_view(&mut seen, inst)
            }
            Ok(watcher::Event::Apply(inst)) => {
                users.apply(&inst);
                changed_view(&mut seen, inst)
            }
            Ok(watcher::Event::Delete(inst)) => {
                users.delete(&inst);
                seen.remove(&inst.uid().unwrap_or_else(|| inst.name_any()));
                vec![Ok(inst)]
            }
        };
        futures::stream::iter(changed)
    })
}

/// The instance, if its view differs from the one last seen.
fn changed_view(
    seen: &mut HashMap<String, u64>,
    inst: EcsInstance,
) -> Vec<std::result::Result<EcsInstance, watcher::Error>> {
    let key = inst.uid().unwrap_or_else(|| inst.name_any());
    let view = view_hash(&inst);
    if seen.insert(key, view) == Some(view) {
        vec![]
    } else {
        vec![Ok(inst)]
    }
}

fn view_hash(inst: &EcsInstance) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    network_view(inst).hash(&mut hasher);
    hasher.finish()
}

/// Names of the EcsInstances (in the network's namespace) that use it.
fn users_of(net: &UserNetwork, ctx: &Context) -> Vec<String> {
    let mut users: Vec<String> = instances_of(net, ctx)
        .iter()
        .map(|i| i.name_any())
        .collect();
    users.sort();
    users
}

/// The instances (cached, in the network's namespace) using the network.
fn instances_of(net: &UserNetwork, ctx: &Context) -> Vec<Arc<EcsInstance>> {
    let namespace = net.namespace().unwrap_or_default();
    let name = net.name_any();
    let uses =
        |i: &EcsInstance| still_user(i) && network_name_of(i).as_deref() == Some(name.as_str());
    match ctx.network_users.users(&namespace, &name) {
        Some(users) => users
            .into_iter()
            .filter_map(|(user, _)| ctx.instances.get(&ObjectRef::new(&user).within(&namespace)))
            .filter(|i| uses(i))
            .collect(),
        // Before the index is filled: a scan of the cache.
        None => ctx
            .instances
            .state()
            .into_iter()
            .filter(|i| i.namespace().as_deref() == Some(namespace.as_str()) && uses(i))
            .collect(),
    }
}

/// The zones besides its own that the network's instances need a subnet in (an instance
/// records its zone in status once resolved).
fn extra_zones_of(net: &UserNetwork, ctx: &Context, own: &str) -> Vec<String> {
    let zones: Vec<String> = instances_of(net, ctx)
        .iter()
        .filter_map(|i| needed_zone(i))
        .collect();
    plan::extra_zones(own, zones.iter().map(String::as_str))
}

/// Names of the EcsInstances placed in the network (see [`plan::placed_in`]), asked of the
/// API server rather than the cache before anything is released: an instance may have been
/// placed a moment ago.
async fn placed_per_api_server(net: &UserNetwork, ctx: &Context) -> Result<Vec<String>> {
    let name = net.name_any();
    let api: Api<EcsInstance> =
        Api::namespaced(ctx.client.clone(), &net.namespace().unwrap_or_default());
    let mut placed: Vec<String> = api
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|i| {
            network_name_of(i).as_deref() == Some(name.as_str()) && plan::placed_in(i, &name)
        })
        .map(|i| i.name_any())
        .collect();
    placed.sort();
    Ok(placed)
}

/// Whether an EcsInstance uses the network, asked of the API server rather than the cache: right
/// after a (re)start the EcsInstance cache may still be filling (each controller waits for its
/// own cache only), and deleting a silent network that is in use strands its instances.
async fn used_per_api_server(net: &UserNetwork, ctx: &Context) -> Result<bool> {
    let name = net.name_any();
    let api: Api<EcsInstance> =
        Api::namespaced(ctx.client.clone(), &net.namespace().unwrap_or_default());
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .any(|i| network_name_of(i).as_deref() == Some(name.as_str())))
}

/// Refusal: a condition reason and message; no cloud call is made.
type Refusal = (Reason, String);

fn resolve_static(
    net: &UserNetwork,
    ctx: &Context,
) -> Result<(String, Arc<CloudProvider>, mapping::Placement), Refusal> {
    let namespace = net.namespace().unwrap_or_default();
    let tenant = tenancy::resolve_tenant(
        &namespace,
        ctx.namespace_labels(&namespace).as_ref(),
        net.spec.tenant_id.as_deref(),
    )
    .map_err(|e: TenancyError| (e.reason(), e.to_string()))?;
    let provider = ctx.provider_by_code(&net.spec.provider).ok_or_else(|| {
        let e = scheduler::SchedulingError::ProviderNotFound(net.spec.provider.clone());
        (e.reason(), e.to_string())
    })?;
    let placement = mapping::placement(
        &provider.spec,
        Some(&net.spec.region),
        net.spec.zone.as_deref(),
    )
    .map_err(|e| (e.reason(), e.to_string()))?;
    Ok((tenant, provider, placement))
}

async fn apply(net: &UserNetwork, ctx: &Context) -> Result<Action> {
    let users = users_of(net, ctx);
    // A network made by silent addressing goes away with its last instance.
    if net.annotations().contains_key(SILENT_ANNOTATION)
        && users.is_empty()
        && net.status.as_ref().is_some_and(|s| s.vpc_id.is_some())
        && !used_per_api_server(net, ctx).await?
    {
        info!("silent network no longer used; deleting it");
        let api: Api<UserNetwork> =
            Api::namespaced(ctx.client.clone(), &net.namespace().unwrap_or_default());
        api.delete(&net.name_any(), &DeleteParams::default())
            .await?;
        return Ok(Action::await_change());
    }

    let sink = ObjectSink::new(net, ctx, net.status.clone());
    let mut progress = Progress::new(net.status.clone().unwrap_or_default());
    progress.status.used_by = users;
    progress.status.observed_generation = net.metadata.generation;

    // Converged and checked recently: only the list of users may have changed (unless one of
    // them needs a subnet in a zone the network has none in yet).
    let uid = net.uid().unwrap_or_default();
    let observed = net.status.as_ref().and_then(|s| s.observed_generation);
    let own_zone = net.status.as_ref().and_then(|s| s.zone.clone());
    let zones_served = own_zone.as_ref().is_some_and(|own| {
        extra_zones_of(net, ctx, own)
            .iter()
            .all(|z| progress.status.v_switch_ids.contains_key(z))
    });
    if observed == net.metadata.generation
        && zones_served
        && let Some(remaining) = ctx.verified_recently(&uid, net.metadata.generation)
    {
        // Only `usedBy` can differ here. Hundreds of instances arriving or leaving would
        // write it once each: it is written at most every USERS_WRITE_INTERVAL instead.
        let since_write = ctx.written.lock().get(&uid).map(|(_, at)| at.elapsed());
        if let Some(since) = since_write.filter(|since| *since < USERS_WRITE_INTERVAL) {
            return Ok(Action::requeue(remaining.min(USERS_WRITE_INTERVAL - since)));
        }
        progress.save(&sink).await?;
        return Ok(Action::requeue(remaining));
    }

    let (tenant, provider, placement) = match resolve_static(net, ctx) {
        Ok(v) => v,
        Err((reason, message)) => return refuse(net, ctx, &sink, progress, reason, message).await,
    };
    if let Err(e) = scheduler::check_available(&provider) {
        return refuse(net, ctx, &sink, progress, e.reason(), e.to_string()).await;
    }
    let (driver, profile) = match ctx.drivers.driver(&provider).await.and_then(|driver| {
        let profile = ctx.drivers.profile(&provider)?;
        Ok((driver, profile))
    }) {
        Ok(d) => d,
        Err(e) => return refuse(net, ctx, &sink, progress, e.reason(), e.to_string()).await,
    };
    if let Err(e) = mapping::check_tags(profile, net.spec.tags.keys()) {
        return refuse(net, ctx, &sink, progress, e.reason(), e.to_string()).await;
    }
    // Adoption: verified (read only) and tagged before anything else touches the cloud; the
    // adopted resources are then found by their tags like created ones.
    if let Some(spec) = &net.spec.adopt {
        let who = Adopter {
            provider: &provider.spec.code,
            region: &placement.region,
            zone: net.spec.zone.as_deref(),
            tenant: &tenant,
            uid: &uid,
            allow_untagged: provider.spec.allow_untagged_adoption,
        };
        let want = owned_tags(net, &tenant);
        match adopt::adopt(spec, &who, &want, driver.as_ref(), &mut progress, &sink).await {
            Ok(Adoption::Adopted { tagged }) => {
                if tagged {
                    sink.publish(
                        false,
                        Reason::Adopted,
                        format!(
                            "VPC {}, VSwitch {} and security group {} adopted",
                            spec.vpc_id, spec.v_switch_id, spec.security_group_id
                        ),
                        "Adopt",
                    )
                    .await;
                }
            }
            Ok(Adoption::Refused(why)) => {
                let message = format!("the network cannot be adopted: {why}");
                return refuse(net, ctx, &sink, progress, Reason::AdoptionRefused, message).await;
            }
            Err(e) => {
                let reason = plan::network_failure_reason(&e);
                progress.step(conditions::READY, false, reason, e.to_string());
                conclude(net, &sink, progress, Some("AdoptNetwork")).await?;
                return Err(e);
            }
        }
    }
    let needs_cidr = progress.status.cidr_block.is_none() && net.spec.cidr_block.is_none();
    let inputs = NetworkInputs {
        free_cidr: needs_cidr.then(|| choose_cidr(net, ctx, &tenant)).flatten(),
        tenant,
        region: placement.region,
        extra_zones: extra_zones_of(
            net,
            ctx,
            progress.status.zone.as_deref().unwrap_or(&placement.zone),
        ),
        zone: progress.status.zone.clone().unwrap_or(placement.zone),
        profile,
    };

    match ensure(net, driver.as_ref(), &inputs, &mut progress, &sink).await {
        Ok(true) => {
            progress.step(
                conditions::READY,
                true,
                Reason::NetworkReady,
                "VPC, subnet and security group are ready",
            );
            conclude(net, &sink, progress, None).await?;
            sink.mark_verified(true);
            Ok(Action::requeue(jittered(ctx.config.resync)))
        }
        Ok(false) => {
            progress.step(
                conditions::READY,
                false,
                Reason::Provisioning,
                "waiting for the VPC to become available",
            );
            conclude(net, &sink, progress, None).await?;
            Ok(Action::requeue(PROVISIONING_REQUEUE))
        }
        Err(e) => {
            let reason = plan::network_failure_reason(&e);
            progress.step(conditions::READY, false, reason, e.to_string());
            conclude(net, &sink, progress, Some("EnsureNetwork")).await?;
            Err(e)
        }
    }
}

/// A CIDR not used by the tenant's other networks on the same provider and region.
fn choose_cidr(net: &UserNetwork, ctx: &Context, tenant: &str) -> Option<ipnet::Ipv4Net> {
    let used: Vec<String> = ctx
        .networks
        .state()
        .iter()
        .filter(|n| {
            n.uid() != net.uid()
                && n.spec.provider == net.spec.provider
                && n.spec.region == net.spec.region
        })
        .filter(|n| {
            let ns = n.namespace().unwrap_or_default();
            ctx.namespace_labels(&ns)
                .and_then(|l| l.get(crate::api::TENANT_LABEL).cloned())
                .as_deref()
                == Some(tenant)
        })
        .filter_map(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.cidr_block.clone())
                .or_else(|| n.spec.cidr_block.clone())
        })
        .collect();
    tenancy::derive_cidr(tenant, &net.spec.user_id, used.iter().map(String::as_str))
}

/// Settles the `Ready` condition, writes the status, and (with an event action) publishes one
/// Warning when the condition turned to a new failure reason.
async fn conclude(
    net: &UserNetwork,
    sink: &ObjectSink<'_, UserNetwork, UserNetworkStatus>,
    mut progress: Progress<UserNetworkStatus>,
    warn_as: Option<&'static str>,
) -> Result<()> {
    let previous = progress.status.conditions.clone();
    progress.settle(&previous, None, net.meta().generation, &[conditions::READY]);
    progress.save(sink).await?;
    if let Some(action) = warn_as {
        warn_new_failures(sink, &previous, &progress.steps, |_| action).await;
    }
    Ok(())
}

/// Input the controller cannot act on: condition + one Warning event, no cloud call.
async fn refuse(
    net: &UserNetwork,
    ctx: &Context,
    sink: &ObjectSink<'_, UserNetwork, UserNetworkStatus>,
    mut progress: Progress<UserNetworkStatus>,
    reason: Reason,
    message: String,
) -> Result<Action> {
    progress.step(conditions::READY, false, reason, message);
    conclude(net, sink, progress, Some("Validate")).await?;
    Ok(Action::requeue(jittered(plan::refusal_requeue(
        reason,
        ctx.config.resync,
    ))))
}

async fn cleanup(net: &UserNetwork, ctx: &Context) -> Result<Action> {
    let name = net.name_any();
    // Only instances placed in the network hold its deletion up: one that arrived while it was
    // being deleted waits for it to go and then gets a new one.
    let mut placed: Vec<String> = instances_of(net, ctx)
        .iter()
        .filter(|i| plan::placed_in(i, &name))
        .map(|i| i.name_any())
        .collect();
    placed.sort();
    let mut decision = plan::network_cleanup(placed, net.spec.reclaim_policy, net.status.as_ref());
    if decision == plan::NetworkCleanup::Release {
        let fresh = placed_per_api_server(net, ctx).await?;
        if !fresh.is_empty() {
            decision = plan::NetworkCleanup::InUse(fresh);
        }
    }
    match decision {
        plan::NetworkCleanup::InUse(users) => {
            let sink = ObjectSink::new(net, ctx, net.status.clone());
            let mut progress = Progress::new(net.status.clone().unwrap_or_default());
            let message = format!("in use by EcsInstances: {}", users.join(", "));
            progress.status.used_by = users;
            progress.step(conditions::READY, false, Reason::InUse, message.clone());
            conclude(net, &sink, progress, None).await?;
            Err(Error::Waiting(message))
        }
        plan::NetworkCleanup::Orphan => {
            info!("reclaim policy Orphan: leaving cloud network resources in place");
            Ok(Action::await_change())
        }
        plan::NetworkCleanup::NothingCreated => Ok(Action::await_change()),
        plan::NetworkCleanup::Release => match release_checked(net, ctx).await {
            Ok(()) => Ok(Action::await_change()),
            Err((reason, e)) => {
                // The finalizer stays until the cloud confirms; say why on the object.
                let sink = ObjectSink::new(net, ctx, net.status.clone());
                let mut progress = Progress::new(net.status.clone().unwrap_or_default());
                progress.status.used_by = Vec::new();
                progress.step(conditions::READY, false, reason, e.to_string());
                conclude(net, &sink, progress, None).await?;
                Err(e)
            }
        },
    }
}

/// Releases the network on its provider's cloud: its region is in the spec and its resources
/// carry its UID, so neither the namespace's tenant nor the provider's catalog is needed. An
/// unknown provider (cache still filling, or deleted) is waited for, never taken for success.
async fn release_checked(
    net: &UserNetwork,
    ctx: &Context,
) -> std::result::Result<(), (Reason, Error)> {
    let code = &net.spec.provider;
    let provider = ctx.provider_by_code(code).ok_or_else(|| {
        (
            Reason::ReleasePending,
            Error::Waiting(format!(
                "CloudProvider {code:?} is not known; waiting for it to release the network"
            )),
        )
    })?;
    let driver = ctx
        .drivers
        .driver(&provider)
        .await
        .map_err(|e| (Reason::ReleasePending, e))?;
    release(net, driver.as_ref(), &net.spec.region)
        .await
        .map_err(|e| {
            let reason = match &e {
                Error::Cloud(c) => c.class.into(),
                _ => Reason::ReleasePending,
            };
            (reason, e)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An instance of this crate's type (the test kit's fixtures build the library's own).
    fn instance(zone: &str) -> EcsInstance {
        let spec = serde_json::from_value(serde_json::json!({
            "provider": "ALIYUN", "region": "cn-hangzhou", "zone": zone,
            "userId": "alice", "imageKey": "ubuntu",
        }))
        .expect("spec");
        let mut inst = EcsInstance::new("vm", spec);
        inst.metadata.namespace = Some("team-a".into());
        inst.metadata.uid = Some("u-1".into());
        inst
    }

    #[tokio::test]
    async fn only_changes_that_matter_to_the_network_wake_it() {
        let created = instance("cn-hangzhou-i");
        let mut starting = created.clone();
        starting.status = Some(crate::api::EcsInstanceStatus {
            instance_id: Some("i-1".into()),
            zone: Some("cn-hangzhou-i".into()),
            ..Default::default()
        });
        let other_zone = instance("cn-hangzhou-j");
        let mut deleting = other_zone.clone();
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        deleting.metadata.finalizers = Some(vec![FINALIZER.to_string()]);
        let mut cleaned_up = deleting.clone();
        cleaned_up.metadata.finalizers = None;
        let events: Vec<std::result::Result<watcher::Event<EcsInstance>, watcher::Error>> = vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(created.clone())),
            Ok(watcher::Event::InitDone),
            // A status write of the instance: nothing for the network.
            Ok(watcher::Event::Apply(starting)),
            Ok(watcher::Event::Apply(other_zone)),
            Ok(watcher::Event::Apply(deleting.clone())),
            Ok(watcher::Event::Apply(cleaned_up)),
            Ok(watcher::Event::Delete(deleting)),
        ];
        let users = Arc::new(NetworkUsers::default());
        let passed: Vec<EcsInstance> =
            relevant_instance_changes(futures::stream::iter(events), users.clone())
                .map(|r| r.expect("no error"))
                .collect()
                .await;
        let zones: Vec<Option<String>> = passed.iter().map(needed_zone).collect();
        assert_eq!(passed.len(), 4, "{zones:?}");
        assert_eq!(zones[1].as_deref(), Some("cn-hangzhou-j"));
        assert!(still_user(&passed[1]));
        assert!(!still_user(&passed[2]), "cleanup done: no longer a user");
        assert!(
            passed[3].metadata.deletion_timestamp.is_some(),
            "the deletion"
        );
        let network = network_name_of(&instance("cn-hangzhou-i")).expect("a silent network");
        assert_eq!(users.users("team-a", &network), Some(vec![]));
    }

    #[tokio::test]
    async fn the_users_index_follows_the_instances() {
        let named = |name: &str, zone: &str| {
            let mut inst = instance(zone);
            inst.metadata.name = Some(name.into());
            inst.metadata.uid = Some(format!("uid-{name}"));
            inst
        };
        let network = network_name_of(&named("a", "z")).expect("a silent network");
        let users = Arc::new(NetworkUsers::default());
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let mut changes = Box::pin(relevant_instance_changes(rx, users.clone()));
        let send = |event: watcher::Event<EcsInstance>| tx.unbounded_send(Ok(event)).expect("open");
        send(watcher::Event::Init);
        send(watcher::Event::InitApply(named("a", "cn-hangzhou-i")));
        send(watcher::Event::InitApply(named("b", "cn-hangzhou-j")));
        changes.next().await;
        changes.next().await;
        assert_eq!(users.users("team-a", &network), None, "not listed yet");
        send(watcher::Event::InitDone);
        send(watcher::Event::Apply(named("c", "cn-hangzhou-i")));
        changes.next().await;
        let zone = |z: &str| Some(z.to_string());
        assert_eq!(
            users.users("team-a", &network),
            Some(vec![
                ("a".into(), zone("cn-hangzhou-i")),
                ("b".into(), zone("cn-hangzhou-j")),
                ("c".into(), zone("cn-hangzhou-i")),
            ])
        );
        // A relist drops what it no longer lists; a deletion leaves at once.
        send(watcher::Event::Init);
        send(watcher::Event::InitApply(named("a", "cn-hangzhou-i")));
        send(watcher::Event::InitApply(named("c", "cn-hangzhou-i")));
        send(watcher::Event::InitDone);
        send(watcher::Event::Delete(named("c", "cn-hangzhou-i")));
        changes.next().await;
        assert_eq!(
            users.users("team-a", &network),
            Some(vec![("a".into(), zone("cn-hangzhou-i"))])
        );
        assert_eq!(users.users("team-b", &network), Some(vec![]));
    }
}
