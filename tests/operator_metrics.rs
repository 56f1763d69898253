//! `/metrics`, `/healthz` and `/readyz` of a real operator process during an integration run: the
//! operator (`--http-addr`, through MCE_HTTP_ADDR) provisions an EcsInstance on the in-process
//! cloud emulator, and the scrape shows non-zero counters for the cloud calls it made (matching
//! the emulator's own count), reconciles per controller with durations, instances by phase and
//! the leader gauge.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mce_testkit::prelude::*;
use mce_testkit::process::{free_port, http_get};
use serde_json::json;

async fn get(port: u16, path: &str) -> (u16, String) {
    http_get(port, path, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Sample lines of one metric family: labels text → value.
fn samples(text: &str, name: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = if let Some(rest) = rest.strip_prefix('{') {
                let (labels, value) = rest.split_once("} ")?;
                (labels.to_string(), value)
            } else {
                (String::new(), rest.strip_prefix(' ')?)
            };
            Some((labels, value.trim().parse().ok()?))
        })
        .collect()
}

fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.trim_matches('"'))
    })
}

#[tokio::test]
async fn metrics_scrape_shows_cloud_calls_reconciles_phases_and_leader() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let env = Env::start_with(
        "metrics",
        Options {
            operator_env: vec![("MCE_HTTP_ADDR".into(), addr.clone())],
            ..Options::default()
        },
    )
    .await;
    let ns = env.ns.name.clone();

    assert_eq!(get(port, "/healthz").await, (200, "ok".to_string()));
    assert_eq!(get(port, "/readyz").await.0, 200);

    env.create_instance(
        "scraped",
        "user-metrics",
        json!({"publicIp": {"allocate": true, "bandwidthMbps": 5, "bandwidthMode": "TRAFFIC"},
               "openPorts": [22]}),
    )
    .await;
    env.wait_ready(&ns, "scraped").await;

    // The instances-by-phase gauge is published every 10 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let (code, text) = get(port, "/metrics").await;
        assert_eq!(code, 200);
        let running = samples(&text, "multicloud_ecs_instances")
            .get("phase=\"Running\"")
            .copied()
            .unwrap_or(0.0);
        if running >= 1.0 {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "multicloud_ecs_instances{{phase=\"Running\"}} never reached 1:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let emulator_calls = env.emulator.state().calls();

    // Cloud API calls by provider, action and outcome: non-zero, and no more than the emulator
    // answered (it counts a call before the operator records it).
    let calls = samples(&text, "multicloud_ecs_cloud_api_calls_total");
    let mut by_action: BTreeMap<String, f64> = BTreeMap::new();
    for (labels, value) in &calls {
        assert_eq!(label(labels, "provider"), Some("ALIYUN"), "{labels}");
        let action = label(labels, "action").expect("action label").to_string();
        assert!(label(labels, "outcome").is_some(), "{labels}");
        *by_action.entry(action).or_default() += value;
    }
    println!("cloud calls in /metrics: {by_action:?}");
    println!(
        "cloud calls the emulator saw: {:?}",
        emulator_calls.by_action
    );
    for action in [
        "RunInstances",
        "DescribeInstances",
        "CreateVpc",
        "CreateVSwitch",
        "CreateSecurityGroup",
        "AllocateEipAddress",
        "AssociateEipAddress",
        "AuthorizeSecurityGroup",
    ] {
        let n = by_action.get(action).copied().unwrap_or(0.0);
        assert!(n >= 1.0, "no {action} in /metrics:\n{text}");
        let seen = emulator_calls.by_action.get(action).copied().unwrap_or(0) as f64;
        assert!(
            n <= seen,
            "{action}: /metrics says {n}, the emulator saw {seen}"
        );
    }
    assert_eq!(
        calls.get(r#"provider="ALIYUN",action="RunInstances",outcome="success""#),
        Some(&1.0),
        "one instance, one successful RunInstances:\n{text}"
    );
    let latency_counts = samples(&text, "multicloud_ecs_cloud_api_latency_seconds_count");
    assert!(
        latency_counts
            .get(r#"provider="ALIYUN",action="RunInstances""#)
            .is_some_and(|n| *n >= 1.0),
        "latency histogram of RunInstances:\n{text}"
    );

    // Reconciles and their durations per controller.
    let reconciles = samples(&text, "multicloud_ecs_reconciles_total");
    for controller in ["EcsInstance", "UserNetwork", "CloudProvider"] {
        let key = format!("controller=\"{controller}\"");
        assert!(
            reconciles.get(&key).is_some_and(|n| *n >= 1.0),
            "reconciles of {controller}:\n{text}"
        );
        assert!(
            samples(&text, "multicloud_ecs_reconcile_duration_seconds_count")
                .get(&key)
                .is_some_and(|n| *n >= 1.0),
            "reconcile duration of {controller}:\n{text}"
        );
    }
    // Without leader election the single process leads.
    assert_eq!(
        samples(&text, "multicloud_ecs_leader").get(""),
        Some(&1.0),
        "{text}"
    );

    env.finish().await;
}
