//! Issue 15: the least-privilege cloud policies in `deploy/policies/`, proven both ways against
//! the real operator, control plane and emulator (which enforces RAM, CAM and IAM policies per
//! key).
//!
//! - With exactly the shipped policy attached to its key, an EcsInstance (placed by `Cheapest`,
//!   EIP, two ports, tags) goes to Ready, survives live changes (tags, ports, bandwidth) and an
//!   out-of-band stop, is deleted, and leaves nothing behind.
//! - For each statement removed in turn (enumerated from the file), the same lifecycle on a key
//!   with the reduced policy fails with a message naming an action of that statement and the
//!   cloud's denial (`Forbidden.RAM`/`UnauthorizedOperation`, or the probe's
//!   `PermissionsMissing`). On AWS the network also holds the internet gateway and the VPC's
//!   main route table (claimed by tag for the default route); the gateway must go too. All cases run concurrently in one environment, each with its own
//!   key, CloudProvider and user.
//! - Credential rotation: a rotated Secret is picked up without a restart.

use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use mce_testkit::prelude::*;
use multicloud_ecs::api::{CloudProvider, EcsInstance, UserNetwork};
use serde_json::{Value, json};

/// How long one case may take to show its denial.
const CASE_WAIT: Duration = Duration::from_secs(75);

fn policy_file(cloud: &CloudFixture) -> &'static str {
    match cloud.provider_type {
        "ALIYUN" => "aliyun-ram-policy.json",
        "TENCENT" => "tencent-cam-policy.json",
        _ => "aws-iam-policy.json",
    }
}

fn shipped(cloud: &CloudFixture) -> Value {
    let path = format!(
        "{}/deploy/policies/{}",
        env!("CARGO_MANIFEST_DIR"),
        policy_file(cloud)
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn statements(policy: &Value) -> &Vec<Value> {
    policy
        .get("Statement")
        .or_else(|| policy.get("statement"))
        .and_then(Value::as_array)
        .expect("statements")
}

/// The statement's actions (IAM also takes a single string).
fn actions(statement: &Value) -> Vec<String> {
    let action = statement
        .get("Action")
        .or_else(|| statement.get("action"))
        .expect("action");
    match action {
        Value::String(a) => vec![a.clone()],
        list => list
            .as_array()
            .expect("action list")
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect(),
    }
}

/// The policy without statement `i`.
fn without(policy: &Value, i: usize) -> Value {
    let mut reduced = policy.clone();
    let key = if policy.get("Statement").is_some() {
        "Statement"
    } else {
        "statement"
    };
    reduced[key].as_array_mut().unwrap().remove(i);
    reduced
}

/// The cheap, machine-checkable half: the files are valid for the emulator, use no wildcards,
/// name only actions the drivers call, and the README table lists every statement.
#[test]
fn shipped_policies_are_explicit_and_documented() {
    let readme =
        std::fs::read_to_string(format!("{}/README.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
    for (cloud, driver) in [
        (&ALIYUN, "crates/cloud-aliyun/src"),
        (&TENCENT, "crates/cloud-tencent/src"),
        (&AWS, "crates/cloud-aws/src"),
    ] {
        let policy = shipped(cloud);
        mce_emulator::policy::Policy::parse(policy.clone()).expect("valid policy");
        let mut source = String::new();
        for entry in std::fs::read_dir(format!("{}/{driver}", env!("CARGO_MANIFEST_DIR"))).unwrap()
        {
            source.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
        }
        for (i, s) in statements(&policy).iter().enumerate() {
            for action in actions(s) {
                assert!(!action.contains('*'), "{action}: no wildcards");
                let bare = action.split(':').nth(1).unwrap();
                assert!(
                    source.contains(&format!("\"{bare}\"")),
                    "{action} is not called by {driver}"
                );
                assert!(
                    readme.contains(&format!("`{action}`")),
                    "{action} (statement {}) missing from the README table",
                    i + 1
                );
            }
        }
    }
}

/// One access key with a policy, its Secret and CloudProvider, and one user's instance.
struct Case {
    /// `None`: the whole shipped policy.
    removed: Option<usize>,
    actions: Vec<String>,
    key: String,
    provider: String,
    code: String,
    user: String,
    instance: String,
}

async fn setup_case(env: &Env, policy: &Value, removed: Option<usize>) -> Case {
    let n = removed.map_or("full".to_string(), |i| format!("s{}", i + 1));
    let key = format!("policy-{n}-{:08x}", rand::random::<u32>());
    let secret = format!("{key}-secret");
    env.emulator.state().add_access_key(&key, &secret);
    let document = match removed {
        Some(i) => without(policy, i),
        None => policy.clone(),
    };
    env.emulator
        .state()
        .attach_policy(&key, document)
        .expect("policy attaches");
    env.create_secret(
        &env.ns.name,
        &key,
        &[("accessKeyId", &key), ("accessKeySecret", &secret)],
    )
    .await;
    let code = random_code();
    let provider = format!("{PROVIDER_PREFIX}{}", code.to_lowercase());
    let mut manifest = provider_manifest_on(
        env.cloud,
        &provider,
        &code,
        &env.emulator.base_url(),
        &env.ns.name,
        false,
    );
    manifest["spec"]["credentialsSecretRef"]["name"] = json!(key);
    env.providers()
        .create(&PostParams::default(), &dynamic(manifest))
        .await
        .expect("create CloudProvider");
    Case {
        removed,
        actions: removed
            .map(|i| actions(&statements(policy)[i]))
            .unwrap_or_default(),
        key,
        provider,
        code,
        user: format!("user-{n}"),
        instance: format!("box-{n}"),
    }
}

fn instance_spec(env: &Env, case: &Case) -> Value {
    json!({
        "provider": null,
        "region": null,
        "placement": {"policy": "Cheapest", "candidates": [
            {"provider": case.code, "region": env.cloud.region, "zone": env.cloud.zone}
        ]},
        "userId": case.user,
        "publicIp": {"allocate": true, "bandwidthMbps": 5, "bandwidthMode": "TRAFFIC"},
        "openPorts": [22, 80],
        "tags": {"stage": "one"},
    })
}

/// The live changes of the lifecycle: a tag renamed (tag + untag), a port closed, the
/// bandwidth raised.
fn changes() -> Value {
    json!({"tags": {"stage": null, "phase": "two"}, "openPorts": [22], "publicIp": {"bandwidthMbps": 8}})
}

/// Every message the operator wrote about the case: the instance's status, the provider's and
/// the user network's conditions, the namespace's events; then its log.
async fn messages(env: &Env, case: &Case) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(i) = env.instances().get(&case.instance).await
        && let Some(status) = &i.status
    {
        out.push((
            "EcsInstance status".into(),
            serde_json::to_string(status).unwrap(),
        ));
    }
    if let Ok(p) = Api::<CloudProvider>::all(env.client.clone())
        .get(&case.provider)
        .await
    {
        for c in p.status.map(|s| s.conditions).unwrap_or_default() {
            out.push((
                format!("CloudProvider {} ({})", c.type_, c.reason),
                c.message,
            ));
        }
    }
    let networks: Api<UserNetwork> = env.networks_in(&env.ns.name);
    let mut names = vec![case.instance.clone()];
    for n in networks
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        if n.spec.user_id == case.user {
            out.push((
                "UserNetwork status".into(),
                serde_json::to_string(&n.status).unwrap(),
            ));
            names.push(n.name_any());
        }
    }
    for name in names {
        for e in env.events_for(&env.ns.name, &name).await {
            out.push((
                format!("Event {} on {name}", e.reason.unwrap_or_default()),
                e.note.unwrap_or_default(),
            ));
        }
    }
    // Releases of a deleted object fail the reconcile without a condition to write to: their
    // denials are in the operator's log, on the cloud call of the object's reconcile.
    let log = strip_ansi(&env.logs());
    let instance_span = format!("/{}}}", case.instance);
    let network_span = format!("/{}-", case.user);
    for line in log.lines() {
        if line.contains("cloud call failed")
            && (line.contains(&instance_span) || line.contains(&network_span))
        {
            out.push(("operator log".into(), line.to_string()));
        }
    }
    out
}

/// The log without terminal colour codes.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A message naming one of the removed statement's actions together with the denial.
fn denial<'a>(case: &Case, messages: &'a [(String, String)]) -> Option<&'a (String, String)> {
    messages.iter().find(|(_, m)| {
        let denied = m.contains("Forbidden.RAM")
            || m.contains("UnauthorizedOperation")
            || m.contains("lack") && m.contains("cloud permission");
        denied
            && case.actions.iter().any(|a| {
                let bare = a.split(':').nth(1).unwrap_or(a);
                m.contains(a.as_str())
                    || m.contains(&format!(" {bare}:"))
                    || m.contains(&format!("action=\"{bare}\""))
            })
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Creating,
    Changing,
    Restarting,
    Deleting,
}

/// Drives the lifecycle; for a reduced policy, stops at the first denial naming its statement.
/// Returns where the denial showed (or, for the full policy, "completed").
async fn run_case(env: &Env, case: &Case) -> Result<String, String> {
    let spec = instance_spec(env, case);
    env.create(
        &env.ns.name,
        env.instance_manifest(&case.instance, &case.user, spec),
    )
    .await
    .map_err(|e| format!("create: {e}"))?;
    let mut stage = Stage::Creating;
    let mut generation = None;
    let deadline = Instant::now() + CASE_WAIT;
    while Instant::now() < deadline {
        if case.removed.is_some() {
            let msgs = messages(env, case).await;
            if let Some((source, message)) = denial(case, &msgs) {
                return Ok(format!("{stage:?}: {source}: {message}"));
            }
        }
        let current = env.instances().get_opt(&case.instance).await.ok().flatten();
        match (stage, current) {
            (Stage::Creating, Some(i)) if is_ready(&i) => {
                env.patch_spec(&env.ns.name, &case.instance, changes())
                    .await
                    .map_err(|e| e.to_string())?;
                generation = i.metadata.generation.map(|g| g + 1);
                stage = Stage::Changing;
            }
            (Stage::Changing, Some(i))
                if is_ready(&i) && i.metadata.generation >= generation && converged(env, &i) =>
            {
                let id = i
                    .status
                    .as_ref()
                    .and_then(|s| s.instance_id.clone())
                    .unwrap();
                env.emulator
                    .state()
                    .oob_stop_instance(&id)
                    .map_err(|e| e.to_string())?;
                stage = Stage::Restarting;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            (Stage::Restarting, Some(i)) if is_ready(&i) && running(env, &i) => {
                env.instances()
                    .delete(&case.instance, &DeleteParams::default())
                    .await
                    .map_err(|e| e.to_string())?;
                stage = Stage::Deleting;
            }
            // The silent network goes after its last instance.
            (Stage::Deleting, None) if owned_by(&env.cloud(), &case.user).is_empty() => {
                return if case.removed.is_none() {
                    Ok("completed".into())
                } else {
                    Err("the lifecycle completed without a denial".into())
                };
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let msgs = messages(env, case).await;
    let left = owned_by(&env.cloud(), &case.user);
    Err(format!(
        "stuck at {stage:?}; left in the cloud: {left:?}; messages: {msgs:#?}"
    ))
}

/// The live changes reached the cloud: tags renamed, port 80 closed, bandwidth 8.
fn converged(env: &Env, i: &EcsInstance) -> bool {
    let cloud = env.cloud();
    let Some(status) = &i.status else {
        return false;
    };
    let Some(instance) = status
        .instance_id
        .as_deref()
        .and_then(|id| by_id(&cloud, "instances", id))
    else {
        return false;
    };
    let tags_done = tag(instance, "phase") == Some("two") && tag(instance, "stage").is_none();
    let eip_done = status
        .eip_allocation_id
        .as_deref()
        .and_then(|id| by_id(&cloud, "eips", id))
        .is_some_and(|e| eip_bandwidth(env.cloud, e) == Some(8));
    tags_done && eip_done
}

/// An EIP's bandwidth on the emulator. EC2 addresses have none: the AWS driver keeps the wanted
/// one in a tag.
fn eip_bandwidth(cloud: &CloudFixture, eip: &Value) -> Option<u64> {
    if cloud.provider_type == "AWS" {
        tag(eip, "multicloud-ecs/bandwidth-mbps")?.parse().ok()
    } else {
        eip["bandwidth"].as_u64()
    }
}

fn running(env: &Env, i: &EcsInstance) -> bool {
    let cloud = env.cloud();
    i.status
        .as_ref()
        .and_then(|s| s.instance_id.as_deref())
        .and_then(|id| by_id(&cloud, "instances", id))
        .is_some_and(|v| v["status"] == "Running")
}

/// Ids of the cloud resources tagged for `user` (on AWS also its internet gateways; the main
/// route table goes with the VPC).
fn owned_by(cloud: &Value, user: &str) -> Vec<String> {
    ["vpcs", "subnets", "securityGroups", "instances", "eips"]
        .iter()
        .flat_map(|kind| items(cloud, kind))
        .chain(items(&cloud["aws"], "internetGateways"))
        .filter(|r| tag(r, "Owner") == Some(user))
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// After a case: its key gets the whole policy back so the operator can release everything,
/// then the instance, its network and the provider go.
async fn cleanup(env: &Env, policy: &Value, case: &Case) {
    let _ = env
        .emulator
        .state()
        .attach_policy(&case.key, policy.clone());
    let _ = env
        .instances()
        .delete(&case.instance, &DeleteParams::default())
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let gone = env
            .instances()
            .get_opt(&case.instance)
            .await
            .ok()
            .flatten()
            .is_none();
        if gone && owned_by(&env.cloud(), &case.user).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let providers = env.providers();
    let _ = providers
        .delete(&case.provider, &DeleteParams::default())
        .await;
}

async fn both_ways(cloud: &'static CloudFixture) {
    let started = Instant::now();
    let env = Env::start_with(
        &format!("policies-{}", cloud.provider_type.to_lowercase()),
        Options {
            cloud,
            ..Options::default()
        },
    )
    .await;
    let policy = shipped(cloud);
    let n = statements(&policy).len();
    let mut cases = vec![setup_case(&env, &policy, None).await];
    for i in 0..n {
        cases.push(setup_case(&env, &policy, Some(i)).await);
    }
    let results = join_all(cases.iter().map(|c| run_case(&env, c))).await;
    join_all(cases.iter().map(|c| cleanup(&env, &policy, c))).await;
    let mut failures = Vec::new();
    for (case, result) in cases.iter().zip(&results) {
        let name = case.removed.map_or("shipped policy".to_string(), |i| {
            format!("without statement {} {:?}", i + 1, case.actions)
        });
        match result {
            Ok(evidence) => println!("{}: {name}: {evidence}", cloud.provider_type),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    println!(
        "{}: {} statements, {} cases in {:.1} s",
        cloud.provider_type,
        n,
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    // The probe names the DryRun-checked create by name, with its typed reason.
    let run_instances = cases
        .iter()
        .zip(&results)
        .find(|(c, _)| c.actions.iter().any(|a| a.ends_with(":RunInstances")))
        .map(|(_, r)| r.clone());
    if let Some(Ok(evidence)) = &run_instances {
        assert!(
            evidence.contains("PermissionsMissing") && evidence.contains(":RunInstances"),
            "RunInstances' denial is found by the probe: {evidence}"
        );
    }
    let logs = env.logs();
    for c in &cases {
        let _ = env
            .providers()
            .patch(
                &c.provider,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            )
            .await;
    }
    env.finish().await;
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}\noperator log tail:\n{}",
        failures.len(),
        failures.join("\n"),
        tail(&logs, 60)
    );
}

#[tokio::test]
async fn aliyun_policy_suffices_and_every_statement_is_needed() {
    both_ways(&ALIYUN).await;
}

#[tokio::test]
async fn tencent_policy_suffices_and_every_statement_is_needed() {
    both_ways(&TENCENT).await;
}

#[tokio::test]
async fn aws_policy_suffices_and_every_statement_is_needed() {
    both_ways(&AWS).await;
}

async fn set_credentials(env: &Env, id: &str, secret: &str) {
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns.name);
    secrets
        .patch(
            CREDENTIALS_SECRET,
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"accessKeyId": id, "accessKeySecret": secret}})),
        )
        .await
        .expect("patch Secret");
}

async fn available(env: &Env) -> Option<(String, String, String)> {
    let p = Api::<CloudProvider>::all(env.client.clone())
        .get(&env.provider)
        .await
        .ok()?;
    p.status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Available")
        .map(|c| (c.status, c.reason, c.message))
}

/// Rotating the credentials Secret takes effect without a restart: to a new key pair (the old
/// one then revoked) the provider stays Available; to a bad one it turns AuthenticationFailed;
/// back to a good one it recovers. A key missing a probed permission is named.
#[tokio::test]
async fn credential_rotation_and_missing_permissions_are_probed_live() {
    let env = Env::start("policies-rotation").await;
    let state = env.emulator.state().clone();
    state.add_access_key("rotated-key", "rotated-secret");
    set_credentials(&env, "rotated-key", "rotated-secret").await;
    // Give the probe (every 5 s) time to pick the new Secret up, then revoke the old key: only
    // a live switch keeps the provider Available.
    tokio::time::sleep(Duration::from_secs(7)).await;
    state.remove_access_key(mce_emulator::DEFAULT_ACCESS_KEY_ID);
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (status, reason, message) = available(&env).await.expect("Available");
    assert_eq!(status, "True", "{reason}: {message}");

    set_credentials(&env, "rotated-key", "wrong-secret").await;
    wait_for("AuthenticationFailed", WAIT, || async {
        available(&env)
            .await
            .filter(|(s, r, _)| s == "False" && r == "AuthenticationFailed")
    })
    .await;

    let mut policy = shipped(&ALIYUN);
    let run = statements(&policy)
        .iter()
        .position(|s| actions(s).iter().any(|a| a == "ecs:RunInstances"))
        .unwrap();
    policy = without(&policy, run);
    state.attach_policy("rotated-key", policy).unwrap();
    set_credentials(&env, "rotated-key", "rotated-secret").await;
    let (_, _, message) = wait_for("PermissionsMissing", WAIT, || async {
        available(&env)
            .await
            .filter(|(s, r, _)| s == "False" && r == "PermissionsMissing")
    })
    .await;
    assert!(message.contains("ecs:RunInstances"), "{message}");
    assert!(!message.contains("ecs:DescribeInstances"), "{message}");

    state.detach_policies("rotated-key");
    wait_for("Available again", WAIT, || async {
        available(&env).await.filter(|(s, _, _)| s == "True")
    })
    .await;
    state.add_access_key(
        mce_emulator::DEFAULT_ACCESS_KEY_ID,
        mce_emulator::DEFAULT_ACCESS_KEY_SECRET,
    );
    env.finish().await;
}
