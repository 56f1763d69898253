//! Prometheus metrics of the operator: reconciles, failures by reason and durations per
//! controller; cloud API calls by provider, action and outcome with latency; instances by phase;
//! leader status. One process-wide registry, so the cloud drivers record without plumbing.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub controller: &'static str,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloudCallLabels {
    pub provider: &'static str,
    pub action: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloudLatencyLabels {
    pub provider: &'static str,
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: String,
}

pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<ControllerLabels, Counter>,
    pub failures: Family<FailureLabels, Counter>,
    pub reconcile_duration: Family<ControllerLabels, Histogram>,
    pub cloud_calls: Family<CloudCallLabels, Counter>,
    pub cloud_latency: Family<CloudLatencyLabels, Histogram>,
    pub instances: Family<PhaseLabels, Gauge>,
    pub leader: Gauge,
    /// Shards of namespaces this replica holds (`--shards`; 1 while reconciling unsharded).
    pub shards_held: Gauge,
    /// Retries of failing objects that yielded to other objects (the retry lane was full).
    pub background_yields: Counter,
    /// Price quotes, by provider and source (`cloud` or `cache`).
    pub quotes: Family<QuoteLabels, Counter>,
    /// Placements decided, by chosen provider and policy.
    pub placements: Family<PlacementLabels, Counter>,
    /// Candidates passed over, by policy and reason (a failover when a later one is chosen).
    pub failovers: Family<FailoverLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuoteLabels {
    pub provider: String,
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlacementLabels {
    pub provider: String,
    pub policy: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailoverLabels {
    pub policy: &'static str,
    pub reason: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~16 s
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("multicloud_ecs");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let reconcile_duration = Family::<ControllerLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let cloud_calls = Family::<CloudCallLabels, Counter>::default();
        let cloud_latency = Family::<CloudLatencyLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let instances = Family::<PhaseLabels, Gauge>::default();
        let leader = Gauge::default();
        let shards_held = Gauge::default();
        let background_yields = Counter::default();
        registry.register(
            "background_yields",
            "Retries of failing objects put off because the retry lane was full",
            background_yields.clone(),
        );
        let quotes = Family::<QuoteLabels, Counter>::default();
        let placements = Family::<PlacementLabels, Counter>::default();
        let failovers = Family::<FailoverLabels, Counter>::default();
        registry.register(
            "price_quotes",
            "Price quotes served, by provider and source (cloud or cache)",
            quotes.clone(),
        );
        registry.register(
            "placements",
            "Placement decisions, by chosen provider and policy",
            placements.clone(),
        );
        registry.register(
            "placement_skips",
            "Candidates passed over by placement, by policy and reason",
            failovers.clone(),
        );
        registry.register(
            "reconciles",
            "Reconciles run, by controller",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Failed reconciles, by controller and stable reason",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration, by controller",
            reconcile_duration.clone(),
        );
        registry.register(
            "cloud_api_calls",
            "Cloud API requests (every attempt), by provider, action and outcome",
            cloud_calls.clone(),
        );
        registry.register(
            "cloud_api_latency_seconds",
            "Cloud API request latency, by provider and action",
            cloud_latency.clone(),
        );
        registry.register("instances", "EcsInstances by phase", instances.clone());
        registry.register(
            "leader",
            "1 while this process holds the leader lease",
            leader.clone(),
        );
        registry.register(
            "shards_held",
            "Shards of namespaces this process holds (sharded mode); 1 while it reconciles unsharded",
            shards_held.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            reconcile_duration,
            cloud_calls,
            cloud_latency,
            instances,
            leader,
            shards_held,
            background_yields,
            quotes,
            placements,
            failovers,
        }
    }

    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// Records one cloud API request.
pub fn record_cloud_call(
    provider: &'static str,
    action: &str,
    outcome: &'static str,
    latency: Duration,
) {
    let m = metrics();
    m.cloud_calls
        .get_or_create(&CloudCallLabels {
            provider,
            action: action.to_string(),
            outcome,
        })
        .inc();
    m.cloud_latency
        .get_or_create(&CloudLatencyLabels {
            provider,
            action: action.to_string(),
        })
        .observe(latency.as_secs_f64());
}

/// Records one reconcile of a controller.
pub fn record_reconcile(controller: &'static str, duration: Duration) {
    let m = metrics();
    m.reconciles
        .get_or_create(&ControllerLabels { controller })
        .inc();
    m.reconcile_duration
        .get_or_create(&ControllerLabels { controller })
        .observe(duration.as_secs_f64());
}

/// Records a retry that yielded to objects not failing.
pub fn record_background_yield() {
    metrics().background_yields.inc();
}

/// Records one failed reconcile.
pub fn record_failure(controller: &'static str, reason: crate::api::Reason) {
    metrics()
        .failures
        .get_or_create(&FailureLabels {
            controller,
            reason: reason.as_str().to_string(),
        })
        .inc();
}

/// Replaces the instances-by-phase gauge.
pub fn set_instance_phases(counts: &[(String, i64)]) {
    let m = metrics();
    m.instances.clear();
    for (phase, count) in counts {
        m.instances
            .get_or_create(&PhaseLabels {
                phase: phase.clone(),
            })
            .set(*count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_recorded_values() {
        record_cloud_call(
            "ALIYUN",
            "RunInstances",
            "success",
            Duration::from_millis(3),
        );
        record_reconcile("EcsInstance", Duration::from_millis(5));
        record_failure("EcsInstance", crate::api::Reason::Throttled);
        set_instance_phases(&[("Running".into(), 2)]);
        let text = metrics().encode();
        assert!(text.contains(r#"multicloud_ecs_cloud_api_calls_total{provider="ALIYUN",action="RunInstances",outcome="success"} "#), "{text}");
        assert!(text.contains(r#"multicloud_ecs_reconcile_failures_total{controller="EcsInstance",reason="Throttled"}"#));
        assert!(text.contains(r#"multicloud_ecs_instances{phase="Running"} 2"#));
    }
}
