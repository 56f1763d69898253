//! The cloud emulator for tests and benchmarks: in process (the [`mce_emulator`] library) or as a
//! process of the `multicloud-ecs-emulator` binary; and inspection of its
//! `/_emulator/resources` document.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mce_emulator::{EmulatorConfig, EmulatorHandle};
use serde_json::Value;

use crate::process::{Process, free_port};

/// An in-process emulator on a free loopback port, default credentials, with `boot_delay` from
/// RunInstances to Running.
pub async fn start_in_process(boot_delay: Duration) -> EmulatorHandle {
    mce_emulator::start(EmulatorConfig {
        boot_delay,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

/// A `multicloud-ecs-emulator` process on a free loopback port. Killed when dropped.
pub struct EmulatorProcess {
    pub process: Process,
    /// `http://127.0.0.1:<port>`
    pub base_url: String,
}

impl EmulatorProcess {
    /// Starts `bin --listen 127.0.0.1:<free port> ARGS`, output to `log`, and waits (20 s at most)
    /// until it answers.
    pub async fn start(bin: &Path, args: &[String], log: &Path) -> Self {
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            // Default credentials whatever the caller's environment says.
            .env_remove("MCE_EMULATOR_ACCESS_KEY_ID")
            .env_remove("MCE_EMULATOR_ACCESS_KEY_SECRET");
        let mut process = Process::spawn("emulator", cmd, log.to_path_buf());
        let base_url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            process.assert_alive();
            if let Ok(r) = http.get(format!("{base_url}/_emulator/calls")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "emulator not listening after 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { process, base_url }
    }
}

// ---- Inspection of the `/_emulator/resources` document ----

pub fn items<'a>(cloud: &'a Value, kind: &str) -> Vec<&'a Value> {
    cloud[kind]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

pub fn count(cloud: &Value, kind: &str) -> usize {
    items(cloud, kind).len()
}

pub fn by_id<'a>(cloud: &'a Value, kind: &str, id: &str) -> Option<&'a Value> {
    items(cloud, kind).into_iter().find(|v| v["id"] == id)
}

pub fn tag<'a>(resource: &'a Value, key: &str) -> Option<&'a str> {
    resource["tags"][key].as_str()
}

/// Ports of the ingress rules of a security group, sorted.
pub fn group_ports(cloud: &Value, group: &str) -> Vec<u16> {
    let mut ports: Vec<u16> = by_id(cloud, "securityGroups", group)
        .and_then(|g| g["rules"].as_array())
        .map(|rules| {
            rules
                .iter()
                .filter_map(|r| r["portRange"].as_str())
                .filter_map(|r| r.split('/').next()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    ports.sort();
    ports
}

/// Rule ids of a security group, sorted.
pub fn group_rule_ids(cloud: &Value, group: &str) -> Vec<String> {
    let mut ids: Vec<String> = by_id(cloud, "securityGroups", group)
        .and_then(|g| g["rules"].as_array())
        .map(|rules| {
            rules
                .iter()
                .filter_map(|r| r["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// Calls by action as [`mce_emulator::CallStats::by_action`], without the DryRun ones (the
/// CloudProvider probe's permission checks carry nothing out): what tests count as work.
pub fn effective_calls(
    state: &mce_emulator::EmulatorState,
) -> std::collections::BTreeMap<String, u64> {
    let mut calls = state.calls().by_action;
    for record in state.call_log() {
        let dry = record
            .params
            .get("DryRun")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if dry && let Some(n) = calls.get_mut(&record.action) {
            *n = n.saturating_sub(1);
        }
    }
    calls.retain(|_, n| *n > 0);
    calls
}
