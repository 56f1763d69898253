//! Reconcilers of EcsInstance, UserNetwork and CloudProvider, and the operator's main loop.

pub mod cloud_provider;
pub mod context;
pub mod ecs_instance;
pub mod error;
pub mod finalizer;
pub mod mapping;
pub mod plan;
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
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

pub use context::{Context, OperatorConfig};
pub use error::Error;

use crate::api::{CloudProvider, EcsInstance, UserNetwork};
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
    let provider = inst.spec.provider.as_deref()?;
    let region = inst
        .status
        .as_ref()
        .and_then(|s| s.region.clone())
        .or_else(|| inst.spec.region.clone())?;
    Some(tenancy::silent_network_name(
        &inst.spec.user_id,
        provider,
        &region,
    ))
}

/// How long to wait after a failed reconcile.
fn error_policy<K>(_obj: Arc<K>, error: &Error, _ctx: Arc<Context>) -> Action {
    let reason = error.reason();
    warn!(reason = reason.as_str(), error = %error, "reconcile failed");
    Action::requeue(jittered(reason.requeue()))
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

/// Runs a reconcile, recording its duration and failure reason.
async fn timed(
    controller: &'static str,
    reconcile: impl std::future::Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile.await;
    crate::metrics::record_reconcile(controller, started.elapsed());
    if let Err(e) = &result {
        crate::metrics::record_failure(controller, e.reason());
    }
    result
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

/// Runs the three controllers until `shutdown` resolves.
pub async fn run<S>(client: Client, config: OperatorConfig, shutdown: S) -> Result<(), Error>
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

    let instances_ctl = Controller::new(Api::<EcsInstance>::all(client.clone()), watch.clone())
        .with_config(controller_config.clone());
    let networks_ctl = Controller::new(Api::<UserNetwork>::all(client.clone()), watch.clone())
        .with_config(controller_config.clone());
    let providers_ctl = Controller::new(Api::<CloudProvider>::all(client.clone()), watch.clone());
    let instances = instances_ctl.store();
    let networks = networks_ctl.store();
    let providers = providers_ctl.store();

    let ctx = Arc::new(Context {
        client: client.clone(),
        config,
        providers: providers.clone(),
        namespaces: namespaces.clone(),
        networks: networks.clone(),
        instances: instances.clone(),
        drivers: context::DriverRegistry::new(client.clone()),
        scheduler: Box::new(FixedPolicy),
        recorder: Recorder::new(client.clone(), context::reporter()),
        verified: Default::default(),
        written: Default::default(),
    });

    // An EcsInstance waits on its network and its provider: re-reconcile it when they change.
    let instances_for_network = instances.clone();
    let instances_for_provider = instances.clone();
    let instances_ctl = instances_ctl
        .watches(
            Api::<UserNetwork>::all(client.clone()),
            watch.clone(),
            move |net| {
                let namespace = net.namespace();
                let name = net.name_any();
                instances_for_network
                    .state()
                    .into_iter()
                    .filter(|i| {
                        i.namespace() == namespace
                            && network_name_of(i).as_deref() == Some(name.as_str())
                    })
                    .map(|i| ObjectRef::from_obj(i.as_ref()))
                    .collect::<Vec<_>>()
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
                    .filter(|i| i.spec.provider.as_deref() == Some(code.as_str()))
                    .map(|i| ObjectRef::from_obj(i.as_ref()))
                    .collect::<Vec<_>>()
            },
        );

    // A UserNetwork tracks its users (and waits for them on deletion) and its provider.
    let networks_for_provider = networks.clone();
    let networks_ctl = networks_ctl
        .watches(
            Api::<EcsInstance>::all(client.clone()),
            watch.clone(),
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
        .graceful_shutdown_on(shutdown.clone())
        .run(
            |obj, ctx| timed("EcsInstance", ecs_instance::reconcile(obj, ctx)),
            error_policy,
            ctx.clone(),
        )
        .for_each(|r| log_result("EcsInstance", r));
    let networks_run = networks_ctl
        .graceful_shutdown_on(shutdown.clone())
        .run(
            |obj, ctx| timed("UserNetwork", user_network::reconcile(obj, ctx)),
            error_policy,
            ctx.clone(),
        )
        .for_each(|r| log_result("UserNetwork", r));
    let providers_run = providers_ctl
        .graceful_shutdown_on(shutdown)
        .run(
            |obj, ctx| timed("CloudProvider", cloud_provider::reconcile(obj, ctx)),
            error_policy,
            ctx.clone(),
        )
        .for_each(|r| log_result("CloudProvider", r));
    info!("controllers started");
    tokio::join!(instances_run, networks_run, providers_run);
    phases_task.abort();
    namespace_task.abort();
    info!("controllers stopped");
    Ok(())
}
