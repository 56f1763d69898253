//! Issue 15: the Grafana dashboard and the PrometheusRule of the chart use only metrics the
//! operator exports. A real operator places (Cheapest, one candidate sold out), provisions and
//! fails a few reconciles (injected server errors) on the emulator; then every metric name the
//! dashboard's queries and the rules' expressions reference must be in its `/metrics`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use mce_emulator::model::{Faults, StockEntry};
use mce_testkit::prelude::*;
use mce_testkit::process::{free_port, http_get};
use serde_json::{Value, json};

fn chart_file(path: &str) -> String {
    let full = format!(
        "{}/charts/multicloud-ecs/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// Every `multicloud_ecs_*` name in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("multicloud_ecs_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// The PromQL expressions of the dashboard's panels (and template variables).
fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(q) = var["query"]["query"].as_str() {
            out.push(q.to_string());
        }
    }
    out
}

/// Sample names exported in a Prometheus text exposition.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next().map(String::from))
        .collect()
}

#[test]
fn dashboard_is_valid_json_with_the_issue_panels() {
    let dashboard: Value = serde_json::from_str(&chart_file("dashboards/multicloud-ecs.json"))
        .expect("dashboard JSON");
    let text = dashboard_exprs(&dashboard).join("\n");
    for metric in [
        "multicloud_ecs_instances",
        "multicloud_ecs_reconciles_total",
        "multicloud_ecs_reconcile_failures_total",
        "multicloud_ecs_reconcile_duration_seconds_bucket",
        "multicloud_ecs_cloud_api_calls_total",
        "multicloud_ecs_cloud_api_latency_seconds_bucket",
        "multicloud_ecs_leader",
        "multicloud_ecs_placements_total",
        "multicloud_ecs_price_quotes_total",
    ] {
        assert!(text.contains(metric), "no panel uses {metric}");
    }
    assert!(text.contains("outcome=\"Throttled\""), "a throttling panel");
    let rules = chart_file("templates/prometheusrule.yaml");
    for alert in [
        "MulticloudEcsInstancesNotReady",
        "MulticloudEcsReconcileFailuresRising",
        "MulticloudEcsCloudErrorRate",
        "MulticloudEcsCloudThrottled",
        "MulticloudEcsNoLeader",
        "MulticloudEcsShardsUnowned",
        "MulticloudEcsCredentialsFailing",
    ] {
        assert!(rules.contains(&format!("alert: {alert}")), "{alert}");
        let readme =
            std::fs::read_to_string(format!("{}/README.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert!(
            readme.contains(&format!("#### {alert}")),
            "{alert} has no runbook"
        );
    }
}

#[tokio::test]
async fn every_metric_of_the_dashboard_and_rules_is_exported() {
    let dashboard: Value =
        serde_json::from_str(&chart_file("dashboards/multicloud-ecs.json")).unwrap();
    let mut wanted = metric_names(&dashboard_exprs(&dashboard).join("\n"));
    wanted.extend(metric_names(&chart_file("templates/prometheusrule.yaml")));
    assert!(wanted.len() >= 10, "{wanted:?}");

    let port = free_port();
    let env = Env::start_with(
        "observability",
        Options {
            operator_env: vec![("MCE_HTTP_ADDR".into(), format!("127.0.0.1:{port}"))],
            ..Options::default()
        },
    )
    .await;
    let ns = env.ns.name.clone();
    let state = env.emulator.state().clone();
    // One candidate sold out: a placement skip, then a placement and price quotes.
    let (other_region, other_zone) = env.cloud.other_region;
    state.set_stock(&[StockEntry {
        instance_type: env.cloud.instance_type.into(),
        zone: other_zone.into(),
        available: Some(0),
    }]);
    // Server errors on the network reads: failing reconciles and Transient outcomes.
    state.set_faults(Faults {
        error_rate: 1.0,
        actions: vec!["DescribeVpcs".into()],
        ..Faults::default()
    });
    env.create_instance(
        "observed",
        "user-observed",
        json!({
            "provider": null,
            "region": null,
            "placement": {"policy": "Cheapest", "candidates": [
                {"provider": env.code, "region": other_region, "zone": other_zone},
                {"provider": env.code, "region": env.cloud.region, "zone": env.cloud.zone},
            ]},
            "publicIp": {"allocate": true, "bandwidthMbps": 5, "bandwidthMode": "TRAFFIC"},
            "openPorts": [22],
        }),
    )
    .await;
    let scrape = || async {
        let (code, text) = http_get(port, "/metrics", Duration::from_secs(5))
            .await
            .expect("GET /metrics");
        assert_eq!(code, 200);
        text
    };
    wait_for("a failed reconcile in /metrics", WAIT, || async {
        scrape()
            .await
            .contains("multicloud_ecs_reconcile_failures_total{")
            .then_some(())
    })
    .await;
    state.set_faults(Faults::default());
    env.wait_ready(&ns, "observed").await;

    // The instances gauge is published every 10 s; wait until every wanted name is there.
    let deadline = Instant::now() + Duration::from_secs(40);
    let missing = loop {
        let have = exported(&scrape().await);
        let missing: Vec<&String> = wanted.iter().filter(|m| !have.contains(*m)).collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing.into_iter().cloned().collect::<Vec<_>>();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!("metrics referenced by the dashboard and the rules: {wanted:?}");
    env.finish().await;
    assert!(
        missing.is_empty(),
        "referenced but not exported: {missing:?}"
    );
}
