//! What every reconciler shares: the client, caches of the watched objects, the cloud drivers,
//! the scheduler, the event recorder and the operator's settings.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Secret};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{Error, Result};
use crate::api::{CloudProvider, EcsInstance, Reason, UserNetwork};
use crate::scheduler::Scheduler;
use mce_cloud::{
    CloudDriver, Credentials, DriverConfig, ProviderProfile, ProviderRegistry, RateLimit,
    Secret as SecretString,
};

/// How long a recorded write may hold back reconciles of older cached copies.
const STALE_WINDOW: Duration = Duration::from_secs(30);

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "multicloud-ecs";

/// Settings of one operator process.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// Period of the drift check of a converged object (jittered by ±10 %).
    pub resync: Duration,
    /// Period of the CloudProviders' availability probe.
    pub probe_interval: Duration,
    /// Objects of one kind reconciled at once.
    pub concurrency: u16,
    /// A Ready instance's EIP and ports are compared with the cloud every this many resyncs;
    /// the resyncs between read only the instance (shared DescribeInstances calls). So a
    /// stopped, deleted or EIP-less instance is seen within one resync, a changed rule or EIP
    /// bandwidth within this many.
    pub full_check_every: u32,
    /// Test-only crash injection (`MCE_FAILPOINT`): `after-run-instances` aborts the process
    /// right after RunInstances returns, before the id is persisted.
    pub failpoint: Option<String>,
    /// This process's name (`--identity`): the Lease holder, and the events' reporting
    /// instance when `POD_NAME` is not set.
    pub identity: Option<String>,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(300),
            probe_interval: Duration::from_secs(60),
            concurrency: 64,
            full_check_every: 4,
            failpoint: None,
            identity: None,
        }
    }
}

/// Shared state of the reconcilers.
pub struct Context {
    pub client: Client,
    pub config: OperatorConfig,
    pub providers: Store<CloudProvider>,
    pub namespaces: Store<Namespace>,
    pub networks: Store<UserNetwork>,
    pub instances: Store<EcsInstance>,
    pub drivers: DriverRegistry,
    pub scheduler: Box<dyn Scheduler>,
    pub recorder: Recorder,
    /// When each converged object (by UID) was last checked against the cloud, and at which
    /// generation: wake-ups caused by our own status writes skip the cloud until resync is due.
    pub verified: Mutex<HashMap<String, (Option<i64>, std::time::Instant)>>,
    /// The resourceVersion each object (by UID) got from this process's last write to it.
    pub written: Mutex<HashMap<String, (u64, std::time::Instant)>>,
    /// Consecutive failed reconciles of each object (by UID), for the error policy's backoff.
    pub failures: Mutex<HashMap<String, u32>>,
    /// Status ids verified to carry their object's UID tag.
    pub owned_ids: super::ecs_instance::OwnedIds,
    /// Price quotes for their validity (placement and PriceQuotes).
    pub quotes: super::placement::PriceCache,
    /// DescribeInstances shared by the objects of one provider and region.
    pub instance_reads: super::reads::InstanceReads,
    /// The shards of namespaces this replica holds (all when not sharded).
    pub shards: Arc<super::shard::Shards>,
    /// When each Ready object (by UID) last had its EIP and ports compared with the cloud.
    pub full_checks: Mutex<HashMap<String, std::time::Instant>>,
    /// EcsInstance progress left unwritten for a while (see `plan::defer_progress`).
    pub deferred: super::status::DeferredStatuses<crate::api::EcsInstanceStatus>,
    /// The retries and re-verifications that may run at once (see `BackgroundLane`).
    pub background_lane: BackgroundLane,
    /// Silent UserNetwork creates sent recently (one per user's network, not one per instance).
    pub silent_creates: super::ecs_instance::SilentCreates,
    /// The instances using each UserNetwork, kept from the watch of EcsInstances.
    pub network_users: Arc<super::user_network::NetworkUsers>,
}

impl Context {
    /// Time left before a converged object needs its next cloud check, if it was verified at
    /// this generation less than ~one resync period ago.
    pub fn verified_recently(&self, uid: &str, generation: Option<i64>) -> Option<Duration> {
        let (seen_generation, at) = *self.verified.lock().get(uid)?;
        // Jittered resyncs may come up to 10 % early; they still count as due.
        let period = self.config.resync.mul_f64(0.85);
        let elapsed = at.elapsed();
        (seen_generation == generation && elapsed < period).then(|| self.config.resync - elapsed)
    }

    /// Records that an object converged at a generation (or forgets it when it did not).
    pub fn mark_verified(&self, uid: &str, generation: Option<i64>, converged: bool) {
        let mut verified = self.verified.lock();
        if converged {
            verified.insert(uid.to_string(), (generation, std::time::Instant::now()));
        } else {
            verified.remove(uid);
        }
    }

    /// Whether an object's EIP and ports are due for a comparison with the cloud: every
    /// `full_check_every` resyncs (and on the first pass of this process).
    pub fn full_check_due(&self, uid: &str) -> bool {
        let period = self
            .config
            .resync
            .saturating_mul(self.config.full_check_every.max(1))
            .mul_f64(0.85);
        self.full_checks
            .lock()
            .get(uid)
            .is_none_or(|at| at.elapsed() >= period)
    }

    /// Records a full comparison of an object with the cloud.
    pub fn record_full_check(&self, uid: &str) {
        let mut checks = self.full_checks.lock();
        if checks.len() > 100_000 {
            checks.clear();
        }
        checks.insert(uid.to_string(), std::time::Instant::now());
    }

    /// Counts a failed reconcile of an object; returns how many failed in a row.
    pub fn record_failure(&self, uid: &str) -> u32 {
        let mut failures = self.failures.lock();
        // Objects deleted while failing leave entries behind; keep the map small.
        if failures.len() > 10_000 {
            failures.clear();
        }
        let count = failures.entry(uid.to_string()).or_default();
        *count = count.saturating_add(1);
        *count
    }

    /// A successful reconcile ends an object's run of failures (and its backoff).
    pub fn record_success(&self, uid: &str) {
        self.failures.lock().remove(uid);
    }

    /// Whether an object's last reconcile failed (its next one is a retry).
    pub fn is_failing(&self, uid: &str) -> bool {
        self.failures.lock().contains_key(uid)
    }

    /// Records the resourceVersion a write of ours produced.
    pub fn record_write(&self, uid: &str, resource_version: Option<&str>) {
        if let Some(rv) = resource_version.and_then(|v| v.parse::<u64>().ok()) {
            let mut written = self.written.lock();
            // Forget old records so the map stays small (above the objects one process
            // serves, or every write would sweep it).
            if written.len() > 100_000 {
                written.retain(|_, (_, at)| at.elapsed() < STALE_WINDOW);
            }
            written.insert(uid.to_string(), (rv, std::time::Instant::now()));
        }
    }

    /// Whether a cached copy predates this process's last write to the object. (etcd-backed
    /// resourceVersions increase; anything unparsable is taken as current.)
    pub fn is_stale(&self, uid: &str, resource_version: Option<&str>) -> bool {
        let Some(cached) = resource_version.and_then(|v| v.parse::<u64>().ok()) else {
            return false;
        };
        self.written
            .lock()
            .get(uid)
            .is_some_and(|(written, at)| cached < *written && at.elapsed() < STALE_WINDOW)
    }

    /// Labels of a namespace, from the cache.
    pub fn namespace_labels(
        &self,
        namespace: &str,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        self.namespaces
            .get(&kube::runtime::reflector::ObjectRef::new(namespace))
            .map(|ns| ns.labels().clone())
    }

    /// The CloudProvider with a code, from the cache.
    pub fn provider_by_code(&self, code: &str) -> Option<Arc<CloudProvider>> {
        self.providers
            .state()
            .into_iter()
            .find(|p| p.spec.code == code)
    }

    /// Publishes an event about an object (best effort: a failed event never fails a reconcile).
    pub async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: Reason,
        note: String,
        action: &str,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.as_str().to_string(),
            note: Some(truncate(note, 1000)),
            action: action.to_string(),
            secondary: None,
        };
        let reference: ObjectReference = obj.object_ref(&());
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            tracing::debug!(error = %e, "event not published");
        }
    }

    /// Server-side applies a status when it differs from the current one. Returns whether it wrote.
    pub async fn apply_status<K, S>(
        &self,
        obj: &K,
        current: Option<&S>,
        desired: &S,
    ) -> Result<bool>
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        S: Serialize + PartialEq,
    {
        if current == Some(desired) {
            return Ok(false);
        }
        let api: Api<K> =
            Api::namespaced(self.client.clone(), &obj.namespace().unwrap_or_default());
        let patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": desired,
        });
        let written = api
            .patch_status(
                &obj.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        self.record_write(
            &obj.uid().unwrap_or_default(),
            written.resource_version().as_deref(),
        );
        Ok(true)
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Reporter of the operator's events.
pub fn reporter() -> Reporter {
    reporter_for(None)
}

/// Reporter of the operator's events: its instance is `POD_NAME`, else `identity` (so the
/// replica that acted can be told apart outside a pod too).
pub fn reporter_for(identity: Option<&str>) -> Reporter {
    Reporter {
        controller: "multicloud-ecs".into(),
        instance: std::env::var("POD_NAME")
            .ok()
            .filter(|name| !name.is_empty())
            .or_else(|| identity.map(String::from)),
    }
}

/// One driver per CloudProvider, rebuilt when the provider's spec or its credentials change, so
/// a driver's rate limiter is shared by every reconcile of that account.
pub struct DriverRegistry {
    client: Client,
    plugins: ProviderRegistry,
    cache: Mutex<HashMap<String, CachedDriver>>,
}

struct CachedDriver {
    generation: Option<i64>,
    secret_version: Option<String>,
    driver: Arc<dyn CloudDriver>,
}

impl DriverRegistry {
    /// Drivers of the providers registered in [`crate::providers`].
    pub fn new(client: Client) -> Self {
        Self::with_plugins(client, crate::providers::registry().clone())
    }

    /// Drivers of the given providers (tests register toy providers this way).
    pub fn with_plugins(client: Client, plugins: ProviderRegistry) -> Self {
        Self {
            client,
            plugins,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The profile of a provider's type: what the controllers may know about its cloud.
    pub fn profile(&self, provider: &CloudProvider) -> Result<&'static ProviderProfile> {
        profile_of(&self.plugins, provider)
    }

    /// The registered provider plugins.
    pub fn plugins(&self) -> &ProviderRegistry {
        &self.plugins
    }

    /// Uses `driver` for `provider` at its current generation (in-process tests).
    pub fn insert(&self, provider: &CloudProvider, driver: Arc<dyn CloudDriver>) {
        self.cache.lock().insert(
            provider.name_any(),
            CachedDriver {
                generation: provider.metadata.generation,
                secret_version: None,
                driver,
            },
        );
    }

    fn plugin(&self, provider: &CloudProvider) -> Result<&Arc<dyn mce_cloud::ProviderPlugin>> {
        plugin_of(&self.plugins, provider)
    }

    /// The provider's driver, built on first use or when the provider's spec changed.
    pub async fn driver(&self, provider: &CloudProvider) -> Result<Arc<dyn CloudDriver>> {
        if let Some(cached) = self.cache.lock().get(&provider.name_any())
            && cached.generation == provider.metadata.generation
        {
            return Ok(cached.driver.clone());
        }
        self.refresh(provider).await
    }

    /// Re-reads the credentials and rebuilds the driver if they or the spec changed.
    pub async fn refresh(&self, provider: &CloudProvider) -> Result<Arc<dyn CloudDriver>> {
        let secret_ref = &provider.spec.credentials_secret_ref;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &secret_ref.namespace);
        let secret = secrets
            .get_opt(&secret_ref.name)
            .await?
            .ok_or_else(|| Error::Driver {
                reason: Reason::CredentialsNotFound,
                message: format!(
                    "Secret {}/{} not found",
                    secret_ref.namespace, secret_ref.name
                ),
            })?;
        let secret_version = secret.resource_version();
        if let Some(cached) = self.cache.lock().get(&provider.name_any())
            && cached.generation == provider.metadata.generation
            && cached.secret_version == secret_version
        {
            return Ok(cached.driver.clone());
        }
        let driver = self.build_driver(provider, &secret)?;
        self.cache.lock().insert(
            provider.name_any(),
            CachedDriver {
                generation: provider.metadata.generation,
                secret_version,
                driver: driver.clone(),
            },
        );
        Ok(driver)
    }

    pub fn forget(&self, provider_name: &str) {
        self.cache.lock().remove(provider_name);
    }
}

fn plugin_of<'r>(
    plugins: &'r ProviderRegistry,
    provider: &CloudProvider,
) -> Result<&'r Arc<dyn mce_cloud::ProviderPlugin>> {
    plugins
        .plugin(provider.spec.provider_type.as_str())
        .ok_or_else(|| Error::Driver {
            reason: Reason::ProviderNotSupported,
            message: format!(
                "provider type {} has no driver in this release",
                provider.spec.provider_type
            ),
        })
}

/// The profile of a provider's type among the registered plugins.
pub fn profile_of(
    plugins: &ProviderRegistry,
    provider: &CloudProvider,
) -> Result<&'static ProviderProfile> {
    Ok(plugin_of(plugins, provider)?.profile())
}

fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key).cloned())
        })
        .filter(|v| !v.is_empty())
}

impl DriverRegistry {
    fn build_driver(
        &self,
        provider: &CloudProvider,
        secret: &Secret,
    ) -> Result<Arc<dyn CloudDriver>> {
        let missing = |key: &str| Error::Driver {
            reason: Reason::CredentialsInvalid,
            message: format!("Secret {} has no {key:?} key", secret.name_any()),
        };
        let credentials = Credentials {
            access_key_id: secret_value(secret, "accessKeyId")
                .ok_or_else(|| missing("accessKeyId"))?,
            access_key_secret: SecretString::new(
                secret_value(secret, "accessKeySecret")
                    .ok_or_else(|| missing("accessKeySecret"))?,
            ),
        };
        let plugin = self.plugin(provider)?;
        let config = DriverConfig {
            credentials,
            endpoint: provider.spec.endpoint.clone(),
            rate_limit: provider.spec.rate_limit.as_ref().map(|limit| RateLimit {
                per_second: f64::from(limit.requests_per_second),
                burst: limit.burst,
            }),
        };
        plugin.build(config).map_err(|message| Error::Driver {
            reason: Reason::DriverConfigInvalid,
            message,
        })
    }
}

/// Retries of failing objects and the periodic re-verification of converged ones share a few of
/// the controllers' concurrent reconciles, so however many objects keep failing (a full subnet,
/// an exhausted quota) or are due a drift check (10,000 of them every resync), objects that are
/// new or converging are never queued behind them. One that finds the lane full yields: it is
/// looked at again shortly, without counting as a success or as another failure.
pub struct BackgroundLane(tokio::sync::Semaphore);

impl BackgroundLane {
    /// How soon a retry that found the lane full tries again (jittered).
    pub const YIELD: Duration = Duration::from_secs(2);
    /// How soon a re-verification that found the lane full tries again (jittered): drift
    /// checks are then spread over a longer period instead of crowding out new objects.
    pub const RESYNC_YIELD: Duration = Duration::from_secs(5);

    /// A quarter of the controllers' concurrency, at least one.
    pub fn for_concurrency(concurrency: u16) -> Self {
        Self(tokio::sync::Semaphore::new(
            usize::from(concurrency / 4).max(1),
        ))
    }

    /// A place in the lane, if one is free.
    pub fn try_enter(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.0.try_acquire().ok()
    }
}
