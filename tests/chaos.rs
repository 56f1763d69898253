//! Chaos: a rollout of 100 EcsInstances across 5 users on two clouds (Alibaba Cloud and Tencent
//! Cloud, whose network creates take no ClientToken) with read lag, lost responses, 10%
//! throttling and 5% server errors, while the operator is killed with SIGKILL at random
//! moments; then everything is deleted. At no sampled moment may two instances, EIPs, VPCs or
//! security groups carry the same owning object's UID tag; at the end nothing may be left in the
//! cloud and no operator log may show a panic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{DeleteParams, ListParams};
use mce_emulator::EmulatorState;
use mce_emulator::model::{Faults, Quotas};
use mce_testkit::prelude::*;
use rand::Rng;
use serde_json::{Value, json};

const USERS: usize = 5;
const PER_USER: usize = 20;
/// Kills during the rollout, then during the deletion.
const ROLLOUT_KILLS: usize = 8;
const DELETION_KILLS: usize = 3;
const ROLLOUT_DEADLINE: Duration = Duration::from_secs(240);
const DELETION_DEADLINE: Duration = Duration::from_secs(180);
const UID_TAG: &str = "multicloud-ecs/uid";
/// Kinds of which an owning object has at most one.
const UNIQUE_KINDS: [&str; 4] = ["instances", "eips", "vpcs", "securityGroups"];

fn chaos_faults() -> Faults {
    Faults {
        throttle_rate: 0.10,
        error_rate: 0.05,
        read_lag_ms: 1500,
        lost_response_rate: 0.2,
        lost_response_actions: [
            "RunInstances",
            "AllocateEipAddress",
            "AssociateEipAddress",
            "CreateVpc",
            "CreateVSwitch",
            "CreateSecurityGroup",
            "AuthorizeSecurityGroup",
            "TagResources",
            "DeleteInstance",
            "DeleteInstances",
            "ReleaseEipAddress",
            "DeleteSecurityGroup",
            // Tencent Cloud's names of the same steps.
            "AllocateAddresses",
            "AssociateAddress",
            "CreateSubnet",
            "CreateSecurityGroupPolicies",
            "TerminateInstances",
            "ReleaseAddresses",
        ]
        .map(String::from)
        .to_vec(),
        ..Faults::default()
    }
}

/// Duplicates in one snapshot: `kind uid ×n (ids)`.
fn duplicates(cloud: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for kind in UNIQUE_KINDS {
        let mut by_uid: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for r in items(cloud, kind) {
            if let Some(uid) = tag(r, UID_TAG) {
                by_uid
                    .entry(uid)
                    .or_default()
                    .push(r["id"].as_str().unwrap_or_default());
            }
        }
        for (uid, ids) in by_uid.into_iter().filter(|(_, ids)| ids.len() > 1) {
            found.push(format!("{kind} {uid} x{} ({})", ids.len(), ids.join(", ")));
        }
    }
    found
}

/// Samples the cloud every 100 ms until told to stop; returns (samples, duplicates seen).
fn sample(
    state: Arc<EmulatorState>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(u64, Vec<String>)> {
    tokio::spawn(async move {
        let (mut samples, mut seen) = (0u64, Vec::<String>::new());
        while !stop.load(Ordering::Relaxed) {
            for d in duplicates(&state.resources()) {
                if !seen.contains(&d) {
                    seen.push(d);
                }
            }
            samples += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (samples, seen)
    })
}

/// SIGKILLs the operator and starts a new one, keeping the old one's log.
fn kill_and_restart(env: &mut Env, logs: &mut Vec<String>) {
    logs.push(env.logs());
    env.start_operator(&[]);
}

async fn random_pause() {
    let ms = rand::rng().random_range(700..3500);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_and_deletion_survive_lag_lost_responses_faults_and_kills() {
    let started = Instant::now();
    let mut env = Env::start("chaos").await;
    let state = env.emulator.state().clone();
    state.set_quotas(Quotas {
        vpcs: 50,
        security_groups: 1000,
        instances: 1000,
        eips: 1000,
        ..Quotas::default()
    });
    state.set_faults(chaos_faults());
    let tencent = env.extra_provider_on(&TENCENT, false).await;
    let tencent = tencent.as_str();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample(state.clone(), stop.clone());
    let mut logs = Vec::new();
    let mut kills = 0;

    let names: Vec<(String, String, Value)> = (0..USERS)
        .flat_map(|u| {
            (0..PER_USER).map(move |i| {
                let extra = if i % 4 == 0 {
                    json!({"publicIp": {"allocate": true, "bandwidthMbps": 5, "bandwidthMode": "TRAFFIC"}})
                } else {
                    json!({})
                };
                (format!("chaos-u{u}-{i}"), format!("user{u}"), extra)
            })
        })
        .collect();
    // Odd users are on Tencent Cloud.
    let on_tencent = |user: &str| {
        user.trim_start_matches("user")
            .parse::<usize>()
            .is_ok_and(|u| u % 2 == 1)
    };
    let total = names.len();
    {
        let env = &env;
        futures::stream::iter(names)
            .for_each_concurrent(16, |(name, user, mut extra)| async move {
                if on_tencent(&user) {
                    extra["provider"] = json!(tencent);
                    extra["region"] = json!(TENCENT.region);
                }
                env.create_instance(&name, &user, extra).await;
            })
            .await;
    }

    // Rollout, with kills at random moments, until every instance is Ready.
    let deadline = Instant::now() + ROLLOUT_DEADLINE;
    let ready = loop {
        let items = env
            .instances()
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let ready = items.iter().filter(|i| is_ready(i)).count();
        if ready == total && kills >= ROLLOUT_KILLS {
            break ready;
        }
        if Instant::now() >= deadline {
            stop.store(true, Ordering::Relaxed);
            let mut waiting: BTreeMap<String, usize> = BTreeMap::new();
            for i in items.iter().filter(|i| !is_ready(i)) {
                let why = condition(i, "Ready")
                    .map(|c| format!("{}: {}", c.reason, c.message))
                    .unwrap_or_else(|| "no status".into());
                *waiting.entry(why).or_default() += 1;
            }
            panic!(
                "only {ready}/{total} Ready after {ROLLOUT_DEADLINE:?} ({kills} kills); not ready: {waiting:#?}; cloud counts {}\noperator log tail:\n{}",
                state.resources()["counts"],
                tail(&env.logs(), 20)
            );
        }
        random_pause().await;
        if kills < ROLLOUT_KILLS {
            kill_and_restart(&mut env, &mut logs);
            kills += 1;
        }
    };
    let rollout = started.elapsed();
    let peak = state.resources()["counts"].clone();

    // Deletion, with more kills.
    env.instances()
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .expect("delete the instances");
    let deadline = Instant::now() + DELETION_DEADLINE;
    loop {
        let instances = env
            .instances()
            .list(&ListParams::default())
            .await
            .map_or(usize::MAX, |l| l.items.len());
        let networks = env
            .networks_in(&env.ns.name)
            .list(&ListParams::default())
            .await
            .map_or(usize::MAX, |l| l.items.len());
        let left = state.resource_count();
        if instances == 0 && networks == 0 && left == 0 && kills >= ROLLOUT_KILLS + DELETION_KILLS {
            break;
        }
        if Instant::now() >= deadline {
            stop.store(true, Ordering::Relaxed);
            panic!(
                "deletion incomplete after {DELETION_DEADLINE:?}: {instances} EcsInstances, {networks} UserNetworks, cloud counts {}\noperator log tail:\n{}",
                state.resources()["counts"],
                tail(&env.logs(), 60)
            );
        }
        random_pause().await;
        if kills < ROLLOUT_KILLS + DELETION_KILLS {
            kill_and_restart(&mut env, &mut logs);
            kills += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (samples, dups) = sampler.await.expect("sampler");
    logs.push(env.logs());
    let calls = state.calls();
    let lost = state.call_log().iter().filter(|r| r.lost).count();
    eprintln!(
        "chaos: {total} instances, {USERS} users, {kills} kills, rollout {rollout:?}, total {:?}, peak {peak}, {samples} samples, {} duplicates, {} resources left, {} calls ({lost} lost responses in the log), errors {:?}",
        started.elapsed(),
        dups.len(),
        state.resource_count(),
        calls.total,
        calls.errors
    );
    assert_eq!(ready, total);
    assert!(dups.is_empty(), "duplicates seen: {dups:#?}");
    assert_eq!(state.resource_count(), 0);
    let panics: Vec<&str> = logs
        .iter()
        .flat_map(|l| l.lines())
        .filter(|l| l.contains("panicked"))
        .collect();
    assert!(panics.is_empty(), "operator panics: {panics:#?}");
    env.finish().await;
}
