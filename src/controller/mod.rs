//! Reconcilers of EcsInstance, UserNetwork and CloudProvider, and the operator's main loop.

pub mod cloud_provider;
pub mod context;
pub mod ecs_instance;
pub mod ecs_instance_set;
pub mod error;
pub mod finalizer;
pub mod mapping;
pub mod placement;
pub mod plan;
pub mod price_quote;
pub mod reads;
pub mod shard;
pub mod status;
pub mod tenancy;
pub mod user_network;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{info, warn};

pub use context::{Context, OperatorConfig};
pub use error::Error;

use crate::api::{CloudProvider, EcsInstance, Reason, UserNetwork};
use crate::scheduler::FixedPolicy;

/// ClientTokens: ≤64 ASCII characters, unique per attempt, traceable to the object.
pub mod token {
    /// `<first 16 hex of the UID>-<16 random hex>`.
    pub fn new(uid: &str) -> String {
        let prefix: String = uid
            .chars()
            .filter(|c| c.is_ascii_hexdigit())
            .take(16)
            .collect();
        format!("{prefix}-{:016x}", rand::random::<u64>())
    }
}

/// A duration ±10 %, so periodic work of many objects spreads out.
pub fn jittered(base: Duration) -> Duration {
    let factor = 0.9 + rand::random::<f64>() * 0.2;
    base.mul_f64(factor)
}

/// The UserNetwork an EcsInstance uses: its `networkRef`, else its user's silent network.
pub fn network_name_of(inst: &EcsInstance) -> Option<String> {
    if let Some(name) = &inst.spec.network_ref {
        return Some(name.clone());
    }
    let provider = inst.target_provider()?;
    let region = inst
        .status
        .as_ref()
        .and_then(|s| s.region.clone())
        .or_else(|| inst.target_region().map(String::from))?;
    Some(tenancy::silent_network_name(
        &inst.spec.user_id,
        provider,
        &region,
    ))
}

/// Longest wait after repeated failures: a permanent one (bad credentials, a refused
/// parameter) is retried a few times an hour, not every few seconds.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(300);
/// Longest wait while only the cloud's own progress (or a dependency) is awaited.
const MAX_WAITING_BACKOFF: Duration = Duration::from_secs(30);

/// The wait after the `failures`-th failure in a row (from 1): the reason's base delay,
/// doubled per failure, capped (before jitter).
pub fn error_backoff(reason: Reason, failures: u32) -> Duration {
    let base = reason.requeue();
    let cap = if base < Reason::Transient.requeue() {
        MAX_WAITING_BACKOFF
    } else {
        MAX_ERROR_BACKOFF
    };
    let doublings = failures.saturating_sub(1).min(16);
    base.saturating_mul(1 << doublings).min(cap)
}

/// The key of an object's run of failures.
fn failure_key<K: Resource>(obj: &K) -> String {
    obj.meta()
        .uid
        .clone()
        .unwrap_or_else(|| format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()))
}

/// How long to wait after a failed reconcile: per object, exponentially longer while it keeps
/// failing (reset by a success), jittered so many failing objects spread out.
fn error_policy<K: Resource>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let reason = error.reason();
    let failures = ctx.record_failure(&failure_key(obj.as_ref()));
    let delay = jittered(error_backoff(reason, failures));
    warn!(reason = reason.as_str(), error = %error, failures, delay_s = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}

fn log_result<T, E: std::fmt::Display>(
    kind: &'static str,
    result: Result<T, E>,
) -> futures::future::Ready<()> {
    if let Err(e) = result {
        tracing::debug!(kind, error = %e, "reconcile error");
    }
    futures::future::ready(())
}

/// Runs a reconcile, recording its duration and failure reason; a success resets the object's
/// error backoff.
async fn timed(
    controller: &'static str,
    key: String,
    ctx: Arc<Context>,
    reconcile: impl std::future::Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile.await;
    crate::metrics::record_reconcile(controller, started.elapsed());
    match &result {
        Ok(_) => ctx.record_success(&key),
        Err(e) => crate::metrics::record_failure(controller, e.reason()),
    }
    result
}

/// One reconcile as every controller runs it: only for an object in a shard this replica holds,
/// in the retry lane while the object is failing, timed, its failures counted.
fn guarded<K, F>(
    controller: &'static str,
    obj: Arc<K>,
    ctx: Arc<Context>,
    reconcile: impl FnOnce(Arc<K>, Arc<Context>) -> F,
) -> impl std::future::Future<Output = Result<Action, Error>>
where
    K: Resource,
    F: std::future::Future<Output = Result<Action, Error>>,
{
    let key = failure_key(obj.as_ref());
    let work = ctx.shards.enter(obj.namespace().as_deref());
    let run = timed(
        controller,
        key.clone(),
        ctx.clone(),
        reconcile(obj, ctx.clone()),
    );
    shard::gated(work, fair(ctx, key, run))
}

/// Runs a reconcile, unless it is the retry of a failing object and the retry lane is full:
/// then it yields (see [`context::BackgroundLane`]).
async fn fair(
    ctx: Arc<Context>,
    key: String,
    reconcile: impl std::future::Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    if !ctx.is_failing(&key) {
        return reconcile.await;
    }
    let Some(_place) = ctx.background_lane.try_enter() else {
        crate::metrics::record_background_yield();
        return Ok(Action::requeue(jittered(context::BackgroundLane::YIELD)));
    };
    reconcile.await
}

/// Runs `work` once `store` holds its first complete list. Before that an object missing from
/// it is only not seen yet: judging by it would fail every object of a provider (terminal
/// `ProviderNotFound`) on each restart.
async fn when_ready<K, F>(store: reflector::Store<K>, what: &'static str, work: F) -> F::Output
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
    F: std::future::Future,
{
    if store.wait_until_ready().await.is_err() {
        warn!(cache = what, "cache writer gone before it was filled");
    }
    work.await
}

/// Keeps the instances-by-phase gauge current from the cache.
async fn publish_phases(instances: reflector::Store<EcsInstance>) {
    loop {
        let mut counts: std::collections::BTreeMap<String, i64> = Default::default();
        for inst in instances.state() {
            let phase = inst
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .map_or_else(|| "Unknown".to_string(), |p| format!("{p:?}"));
            *counts.entry(phase).or_default() += 1;
        }
        crate::metrics::set_instance_phases(&counts.into_iter().collect::<Vec<_>>());
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// Runs the controllers until `shutdown` resolves. Each reconciles only objects of the shards
/// `shards` holds (all when not sharded), and everything again when it gains one.
pub async fn run<S>(
    client: Client,
    config: OperatorConfig,
    shards: Arc<shard::Shards>,
    shutdown: S,
) -> Result<(), Error>
where
    S: std::future::Future<Output = ()> + Clone + Send + Sync + 'static,
{
    let watch = watcher::Config::default().any_semantic();
    let controller_config = ControllerConfig::default().concurrency(config.concurrency);

    // Namespaces: their tenant label is the tenancy boundary.
    let (namespaces, namespace_writer) = reflector::store::<Namespace>();
    let namespace_reflector = reflector::reflector(
        namespace_writer,
        // Backoff as the controllers' own watches have: without it a lost API server is
        // retried in a tight loop (thousands of errors logged per second).
        watcher(Api::<Namespace>::all(client.clone()), watch.clone()).default_backoff(),
    )
    .applied_objects()
    .for_each(|_| futures::future::ready(()));
    let namespace_task = tokio::spawn(namespace_reflector);

    // The EcsInstance cache (thousands of objects) keeps what the reconcilers read: the
    // managedFields the API server sends with each object (a third of it, more once several
    // managers wrote it) are dropped on arrival.
    let (instances, instances_writer) = reflector::store::<EcsInstance>();
    let instances_ctl = Controller::for_stream(
        reflector::reflector(
            instances_writer,
            watcher(Api::<EcsInstance>::all(client.clone()), watch.clone())
                .default_backoff()
                .modify(|inst| inst.managed_fields_mut().clear()),
        )
        .applied_objects(),
        instances.clone(),
    )
    .with_config(controller_config.clone());
    let networks_ctl = Controller::new(Api::<UserNetwork>::all(client.clone()), watch.clone())
        .with_config(controller_config.clone());
    let providers_ctl = Controller::new(Api::<CloudProvider>::all(client.clone()), watch.clone());
    let networks = networks_ctl.store();
    let providers = providers_ctl.store();

    let background_lane = context::BackgroundLane::for_concurrency(config.concurrency);
    let network_users = Arc::new(user_network::NetworkUsers::default());
    let reporter = context::reporter_for(config.identity.as_deref());
    let ctx = Arc::new(Context {
        client: client.clone(),
        config,
        providers: providers.clone(),
        namespaces: namespaces.clone(),
        networks: networks.clone(),
        instances: instances.clone(),
        drivers: context::DriverRegistry::new(client.clone()),
        scheduler: Box::new(FixedPolicy),
        recorder: Recorder::new(client.clone(), reporter),
        verified: Default::default(),
        written: Default::default(),
        failures: Default::default(),
        owned_ids: Default::default(),
        quotes: Default::default(),
        instance_reads: Default::default(),
        shards: shards.clone(),
        full_checks: Default::default(),
        deferred: Default::default(),
        silent_creates: Default::default(),
        network_users: network_users.clone(),
        background_lane,
    });

    // An EcsInstance waits on its network and its provider: re-reconcile it when they change.
    let instances_for_network = instances.clone();
    let instances_for_provider = instances.clone();
    let users_for_network = network_users.clone();
    let instances_ctl = instances_ctl
        // A network's own `usedBy` writes wake none of its hundreds of instances.
        .watches_stream(
            watcher(Api::<UserNetwork>::all(client.clone()), watch.clone())
                .default_backoff()
                .touched_objects()
                .predicate_filter(
                    user_network::served_view_hash,
                    kube::runtime::PredicateConfig::default(),
                ),
            move |net| {
                let namespace = net.namespace().unwrap_or_default();
                let name = net.name_any();
                match users_for_network.users(&namespace, &name) {
                    Some(users) => users
                        .into_iter()
                        .map(|(user, _)| ObjectRef::new(&user).within(&namespace))
                        .collect::<Vec<_>>(),
                    // Before the index is filled: a scan of the cache.
                    None => instances_for_network
                        .state()
                        .into_iter()
                        .filter(|i| {
                            i.namespace().as_deref() == Some(namespace.as_str())
                                && network_name_of(i).as_deref() == Some(name.as_str())
                        })
                        .map(|i| ObjectRef::from_obj(i.as_ref()))
                        .collect::<Vec<_>>(),
                }
            },
        )
        .watches(
            Api::<CloudProvider>::all(client.clone()),
            watch.clone(),
            move |provider| {
                let code = provider.spec.code.clone();
                instances_for_provider
                    .state()
                    .into_iter()
                    .filter(|i| {
                        i.target_provider() == Some(code.as_str())
                            || i.spec
                                .placement
                                .as_ref()
                                .is_some_and(|p| p.candidates.iter().any(|c| c.provider == code))
                    })
                    .map(|i| ObjectRef::from_obj(i.as_ref()))
                    .collect::<Vec<_>>()
            },
        );

    // A UserNetwork tracks its users (and waits for them on deletion) and its provider.
    let networks_for_provider = networks.clone();
    let networks_ctl = networks_ctl
        // Only the changes of an instance that matter to its network wake the network: not
        // each of its status writes (hundreds of instances per network while they converge).
        .watches_stream(
            user_network::relevant_instance_changes(
                watcher(Api::<EcsInstance>::all(client.clone()), watch.clone()).default_backoff(),
                network_users.clone(),
            ),
            |inst| {
                let namespace = inst.namespace().unwrap_or_default();
                network_name_of(&inst)
                    .map(|name| ObjectRef::<UserNetwork>::new(&name).within(&namespace))
            },
        )
        .watches(
            Api::<CloudProvider>::all(client.clone()),
            watch.clone(),
            move |provider| {
                let code = provider.spec.code.clone();
                networks_for_provider
                    .state()
                    .into_iter()
                    .filter(|n| n.spec.provider == code)
                    .map(|n| ObjectRef::from_obj(n.as_ref()))
                    .collect::<Vec<_>>()
            },
        );

    info!("waiting for caches");
    namespaces
        .wait_until_ready()
        .await
        .map_err(|e| Error::Waiting(e.to_string()))?;

    let phases_task = tokio::spawn(publish_phases(instances.clone()));
    let instances_run = instances_ctl
        .reconcile_all_on(shards.gains())
        .graceful_shutdown_on(shutdown.clone())
        .run(
            |obj, ctx| guarded("EcsInstance", obj, ctx, ecs_instance::reconcile),
            error_policy,
            ctx.clone(),
        )
        .for_each(|r| log_result("EcsInstance", r));
    let networks_run = networks_ctl
        .reconcile_all_on(shards.gains())
        .graceful_shutdown_on(shutdown.clone())
        .run(
            |obj, ctx| guarded("UserNetwork", obj, ctx, user_network::reconcile),
            error_policy,
            ctx.clone(),
        )
        .for_each(|r| log_result("UserNetwork", r));
    // EcsInstanceSets (issue 12): woken by their children's changes, debounced so a burst of
    // child status writes makes one reconcile.
    let sets_run = Controller::new(
        Api::<crate::api::EcsInstanceSet>::all(client.clone()),
        watch.clone(),
    )
    .with_config(
        controller_config
            .clone()
            .debounce(Duration::from_millis(500)),
    )
    // Only the set's children (labelled by it): other instances' status writes never reach it.
    .owns(
        Api::<EcsInstance>::all(client.clone()),
        watch
            .clone()
            .labels(crate::api::ecs_instance_set::SET_LABEL),
    )
    .reconcile_all_on(shards.gains())
    .graceful_shutdown_on(shutdown.clone())
    .run(
        |obj, ctx| guarded("EcsInstanceSet", obj, ctx, ecs_instance_set::reconcile),
        error_policy,
        ctx.clone(),
    )
    .for_each(|r| log_result("EcsInstanceSet", r));
    // PriceQuotes: read-only quotes, again when they expire.
    let quotes_run = Controller::new(
        Api::<crate::api::price_quote::PriceQuote>::all(client.clone()),
        watch.clone(),
    )
    .reconcile_all_on(shards.gains())
    .graceful_shutdown_on(shutdown.clone())
    .run(
        |obj, ctx| guarded("PriceQuote", obj, ctx, price_quote::reconcile),
        error_policy,
        ctx.clone(),
    )
    .for_each(|r| log_result("PriceQuote", r));
    let providers_run = providers_ctl
        .reconcile_all_on(shards.gains())
        .graceful_shutdown_on(shutdown)
        .run(
            |obj, ctx| guarded("CloudProvider", obj, ctx, cloud_provider::reconcile),
            error_policy,
            ctx.clone(),
        )
        .for_each(|r| log_result("CloudProvider", r));
    info!("controllers started");
    // Instances and networks judge their provider by the CloudProvider cache: start them once
    // it is filled (the provider controller, which fills it, runs meanwhile).
    tokio::join!(
        when_ready(providers.clone(), "CloudProvider", instances_run),
        when_ready(providers.clone(), "CloudProvider", networks_run),
        sets_run,
        when_ready(providers.clone(), "CloudProvider", quotes_run),
        providers_run,
        // In this task, not a spawned one: a kube Store wakes only its last waiting task.
        shard::announce_synced(
            shards,
            providers.clone(),
            instances.clone(),
            networks.clone()
        ),
    );
    phases_task.abort();
    namespace_task.abort();
    info!("controllers stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{Request, Response};
    use kube::client::Body;

    /// A context whose client reaches nothing: the error policy makes no calls.
    fn context() -> Arc<Context> {
        let (service, _handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        Arc::new(Context {
            client: client.clone(),
            config: OperatorConfig::default(),
            providers: reflector::store().0,
            namespaces: reflector::store().0,
            networks: reflector::store().0,
            instances: reflector::store().0,
            drivers: context::DriverRegistry::new(client.clone()),
            scheduler: Box::new(FixedPolicy),
            recorder: Recorder::new(client, context::reporter()),
            verified: Default::default(),
            written: Default::default(),
            failures: Default::default(),
            owned_ids: Default::default(),
            quotes: Default::default(),
            instance_reads: Default::default(),
            shards: Default::default(),
            full_checks: Default::default(),
            deferred: Default::default(),
            silent_creates: Default::default(),
            network_users: Default::default(),
            background_lane: context::BackgroundLane::for_concurrency(64),
        })
    }

    /// The delay of a requeue (`Action` shows it only in its Debug form).
    fn delay(action: &Action) -> Duration {
        let text = format!("{action:?}");
        let secs = text
            .split_once("Some(")
            .and_then(|(_, rest)| rest.split_once("s)"))
            .map(|(secs, _)| secs.parse::<f64>().expect("seconds"))
            .expect("a requeue");
        Duration::from_secs_f64(secs)
    }

    #[tokio::test]
    async fn repeated_failures_back_off_exponentially_up_to_a_cap() {
        let ctx = context();
        let inst = Arc::new(mce_testkit::fixtures::ecs_instance("vm").build());
        let error = Error::Driver {
            reason: crate::api::Reason::CredentialsInvalid,
            message: "no key".into(),
        };
        let delays: Vec<Duration> = (0..12)
            .map(|_| delay(&error_policy(inst.clone(), &error, ctx.clone())))
            .collect();
        assert!(delays[0] <= Duration::from_secs(6), "{delays:?}");
        assert!(delays[4] >= Duration::from_secs(60), "{delays:?}");
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(330)),
            "{delays:?}"
        );
        // Another object is not slowed down by this one's failures.
        let other = Arc::new(mce_testkit::fixtures::ecs_instance("other").build());
        assert!(delay(&error_policy(other, &error, ctx.clone())) <= Duration::from_secs(6));
        // A success starts over.
        let key = failure_key(inst.as_ref());
        let ok = timed("EcsInstance", key, ctx.clone(), async {
            Ok(Action::await_change())
        });
        assert!(ok.await.is_ok());
        assert!(delay(&error_policy(inst, &error, ctx)) <= Duration::from_secs(6));
    }

    #[tokio::test]
    async fn failing_objects_yield_to_the_others_when_the_background_lane_is_full() {
        let ctx = context();
        ctx.record_failure("failing");
        let ran = |flag: Arc<std::sync::atomic::AtomicBool>| async move {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(Action::await_change())
        };
        // The lane (a quarter of 64) is taken by other retries.
        let places: Vec<_> = (0..16)
            .map(|_| ctx.background_lane.try_enter().expect("a place"))
            .collect();
        let retried = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let action = fair(ctx.clone(), "failing".into(), ran(retried.clone()))
            .await
            .expect("yields");
        assert!(!retried.load(std::sync::atomic::Ordering::SeqCst));
        assert!(delay(&action) <= Duration::from_secs(3), "{action:?}");
        assert!(ctx.is_failing("failing"), "a yield is not a success");
        // An object that is not failing never waits for the lane.
        let fresh = Arc::new(std::sync::atomic::AtomicBool::new(false));
        fair(ctx.clone(), "fresh".into(), ran(fresh.clone()))
            .await
            .expect("runs");
        assert!(fresh.load(std::sync::atomic::Ordering::SeqCst));
        // Once a place frees up, the retry runs.
        drop(places);
        fair(ctx.clone(), "failing".into(), ran(retried.clone()))
            .await
            .expect("runs");
        assert!(retried.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn backoff_doubles_from_the_reason_and_is_capped() {
        let secs = |reason, n| error_backoff(reason, n).as_secs();
        assert_eq!(secs(Reason::Throttled, 1), 5);
        assert_eq!(secs(Reason::Throttled, 2), 10);
        assert_eq!(secs(Reason::Throttled, 4), 40);
        assert_eq!(secs(Reason::Throttled, 30), 300);
        assert_eq!(secs(Reason::Throttled, u32::MAX), 300);
        assert_eq!(secs(Reason::Waiting, 1), 2);
        assert_eq!(secs(Reason::Waiting, 3), 8);
        assert_eq!(secs(Reason::Waiting, 10), 30);
    }

    #[tokio::test]
    async fn controllers_start_once_the_provider_cache_is_filled() {
        let (store, mut writer) = reflector::store::<CloudProvider>();
        let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = started.clone();
        let gated = tokio::spawn(when_ready(store, "CloudProvider", async move {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!started.load(std::sync::atomic::Ordering::SeqCst));
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        tokio::time::timeout(Duration::from_secs(5), gated)
            .await
            .expect("started")
            .expect("no panic");
        assert!(started.load(std::sync::atomic::Ordering::SeqCst));
    }
}
