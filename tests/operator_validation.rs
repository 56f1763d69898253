//! Invalid input and secrets, end to end: manifests the API server rejects at admission (CRD
//! schema and CEL rules), manifests the operator answers with a condition and a Warning event —
//! none of them reaching the cloud — and a login password that never shows in logs, events or
//! status. The operator runs as a real process against a real control plane and the emulator.

use std::collections::BTreeMap;

use base64::Engine;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use mce_testkit::prelude::*;
use serde_json::{Value, json};

/// Calls the operator makes without any EcsInstance input: the provider probe (with its
/// permission checks: one-item reads, and DryRun creates, which are not counted below), and the
/// resync of the (valid) network of another user that one invalid manifest references.
const BACKGROUND_ACTIONS: [&str; 6] = [
    "DescribeRegions",
    "DescribeVpcs",
    "DescribeVSwitches",
    "DescribeSecurityGroups",
    "DescribeInstances",
    "DescribeEipAddresses",
];

fn expect_422(result: Result<impl std::fmt::Debug, kube::Error>, what: &str, needle: &str) {
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{what}: {status:?}");
            assert!(
                status.message.contains(needle),
                "{what}: expected {needle:?} in the rejection, got: {}",
                status.message
            );
            eprintln!("rejected {what}: {}", status.message);
        }
        other => panic!("{what}: expected 422 Invalid, got {other:?}"),
    }
}

fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

#[tokio::test]
async fn invalid_manifests_are_refused_without_cloud_calls() {
    let mut env = Env::start("invalid").await;
    let ns = env.ns.name.clone();
    let code = env.code.clone();

    // Set-up that does reach the cloud, done before the baseline: another user's network.
    env.create(
        &ns,
        json!({
            "apiVersion": API_VERSION, "kind": "UserNetwork",
            "metadata": {"name": "other-net"},
            "spec": {"provider": code, "region": REGION, "userId": "someone-else"},
        }),
    )
    .await
    .unwrap();
    let networks = env.networks_in(&ns);
    let networks = &networks;
    wait_for("UserNetwork other-net Ready", WAIT, || async move {
        let n = networks.get("other-net").await.ok()?;
        n.status?
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
            .then_some(())
    })
    .await;
    let no_tenant_ns = env.extra_namespace(None).await;
    let disabled = env.extra_provider(true).await;
    env.create_secret(&ns, "weak", &[("password", "password")])
        .await;
    let resources_before = env.cloud()["counts"].clone();
    let calls_before = env.emulator.state().calls().by_action;
    let seq_before = env.emulator.state().call_log().last().map_or(0, |c| c.seq);

    // ---- Rejected at admission (422, with the rule's message) ----
    let inst = |name: &str, extra: Value| instance_manifest(name, &code, "user-bad", extra);
    let admission: Vec<(&str, Value, &str)> = vec![
        (
            "duplicate ports",
            inst("dup-ports", json!({"openPorts": [22, 22]})),
            "Duplicate value",
        ),
        (
            "port 0",
            inst("port-zero", json!({"openPorts": [0, 22]})),
            "ports must be in 1..65535",
        ),
        (
            "port 70000",
            inst("port-high", json!({"openPorts": [70000]})),
            "ports must be in 1..65535",
        ),
        (
            "PREPAID without periodMonths",
            inst("prepaid", json!({"chargeMode": "PREPAID"})),
            "chargeMode PREPAID requires periodMonths",
        ),
        (
            "periodMonths with ON_DEMAND",
            inst("period", json!({"periodMonths": 3})),
            "periodMonths is only valid with chargeMode PREPAID",
        ),
        (
            "reserved tag key tenantId",
            inst("tag-tenant", json!({"tags": {"tenantId": "evil"}})),
            "reserved",
        ),
        (
            "reserved tag prefix multicloud-ecs/",
            inst("tag-prefix", json!({"tags": {"multicloud-ecs/uid": "x"}})),
            "reserved",
        ),
        // A cloud's own prefixes, when the provider is named by its type.
        (
            "Tencent-reserved tag prefix project on TENCENT",
            inst(
                "tag-tencent",
                json!({"provider": "TENCENT", "tags": {"project": "x"}}),
            ),
            "reserved prefixes",
        ),
        (
            "Alibaba-reserved tag prefix acs: on ALIYUN",
            inst(
                "tag-acs",
                json!({"provider": "ALIYUN", "tags": {"acs:team": "x"}}),
            ),
            "reserved prefixes",
        ),
        (
            "gpuModel and instanceType",
            inst(
                "gpu-and-type",
                json!({"gpuModel": "A100", "instanceType": "ecs.g7.large"}),
            ),
            "set gpuModel or instanceType, not both",
        ),
        (
            "bandwidth 0",
            inst(
                "bw-zero",
                json!({"publicIp": {"allocate": true, "bandwidthMbps": 0}}),
            ),
            "bandwidthMbps",
        ),
        (
            "bandwidth 500",
            inst(
                "bw-500",
                json!({"publicIp": {"allocate": true, "bandwidthMbps": 500}}),
            ),
            "bandwidthMbps",
        ),
        (
            "system disk 10 GiB",
            inst("disk-10", json!({"systemDisk": {"sizeGiB": 10}})),
            "sizeGiB",
        ),
        (
            "password and key pair",
            inst(
                "two-logins",
                json!({"passwordSecretRef": {"name": "weak", "key": "password"}, "keyPairName": "kp"}),
            ),
            "not both",
        ),
        (
            "UserNetwork cidrBlock outside 172.16.0.0/12",
            json!({
                "apiVersion": API_VERSION, "kind": "UserNetwork",
                "metadata": {"name": "bad-cidr"},
                "spec": {"provider": code, "region": REGION, "userId": "user-bad", "cidrBlock": "10.0.0.0/16"},
            }),
            "cidrBlock must be an IPv4 block inside 172.16.0.0/12",
        ),
        (
            "UserNetwork cidrBlock /12",
            json!({
                "apiVersion": API_VERSION, "kind": "UserNetwork",
                "metadata": {"name": "wide-cidr"},
                "spec": {"provider": code, "region": REGION, "userId": "user-bad", "cidrBlock": "172.16.0.0/12"},
            }),
            "prefix length of 16 to 24",
        ),
        // A userId becomes a label value: it must start and end with a letter or digit.
        (
            "userId ending in '-'",
            inst("user-dash", json!({"userId": "alice-"})),
            "spec.userId",
        ),
        (
            "UserNetwork userId ending in '.'",
            json!({
                "apiVersion": API_VERSION, "kind": "UserNetwork",
                "metadata": {"name": "user-dot"},
                "spec": {"provider": code, "region": REGION, "userId": "bob."},
            }),
            "spec.userId",
        ),
    ];
    let admission_count = admission.len();
    for (what, manifest, needle) in admission {
        expect_422(env.create(&ns, manifest).await, what, needle);
    }

    // ---- Answered with a condition (and one Warning event) ----
    env.create_secret(&ns, "weak-login", &[("password", "alllowercase")])
        .await;
    let unknown_provider = format!("{code}-NOPE");
    let conditions: Vec<(&str, String, Value, &str)> = vec![
        (
            "no-tenant",
            no_tenant_ns.clone(),
            inst("no-tenant", json!({})),
            "NamespaceWithoutTenant",
        ),
        (
            "tenant-mismatch",
            ns.clone(),
            inst("tenant-mismatch", json!({"tenantId": "globex"})),
            "TenantMismatch",
        ),
        (
            "unknown-provider",
            ns.clone(),
            inst(
                "unknown-provider",
                json!({"provider": unknown_provider, "gpuModel": "A100", "zone": ZONE}),
            ),
            "ProviderNotFound",
        ),
        (
            "disabled-provider",
            ns.clone(),
            inst("disabled-provider", json!({"provider": disabled})),
            "ProviderUnavailable",
        ),
        (
            "unknown-image",
            ns.clone(),
            inst("unknown-image", json!({"imageKey": "windows-95"})),
            "UnknownImageKey",
        ),
        (
            "unknown-gpu",
            ns.clone(),
            inst("unknown-gpu", json!({"gpuModel": "H100"})),
            "UnknownGpuModel",
        ),
        (
            "missing-secret",
            ns.clone(),
            instance_manifest(
                "missing-secret",
                &code,
                "user-pw1",
                json!({"passwordSecretRef": {"name": "nope", "key": "password"}}),
            ),
            "PasswordSecretNotFound",
        ),
        (
            "weak-password",
            ns.clone(),
            instance_manifest(
                "weak-password",
                &code,
                "user-pw2",
                json!({"passwordSecretRef": {"name": "weak-login", "key": "password"}}),
            ),
            "PasswordInvalid",
        ),
        (
            "foreign-network",
            ns.clone(),
            inst("foreign-network", json!({"networkRef": "other-net"})),
            "NetworkMismatch",
        ),
        (
            "extension-not-allowed",
            ns.clone(),
            inst(
                "extension-not-allowed",
                json!({"extensions": {"RamRoleName": "admin"}}),
            ),
            "ExtensionNotAllowed",
        ),
        // The provider's code hides its type from admission: the operator refuses the tag.
        (
            "reserved-tag",
            ns.clone(),
            inst("reserved-tag", json!({"tags": {"aliyun-owner": "x"}})),
            "ReservedTag",
        ),
    ];
    for (name, namespace, manifest, _) in &conditions {
        env.create(namespace, manifest.clone())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for (name, namespace, _, reason) in &conditions {
        let ready = env
            .wait_instance(namespace, name, &format!("Ready=False {reason}"), |i| {
                let c = condition(i, "Ready")?;
                (c.status == "False" && c.reason == *reason).then(|| c.clone())
            })
            .await;
        assert!(!ready.message.is_empty(), "{name}: a useful message");
        eprintln!("{name}: {reason}: {}", ready.message);
        env.wait_warning(namespace, name, reason).await;
        let events = env.events_for(namespace, name).await;
        let warnings = events
            .iter()
            .filter(|e| e.reason.as_deref() == Some(*reason))
            .count();
        assert_eq!(warnings, 1, "{name}: one Warning event: {events:?}");
    }

    // Immutable fields of an existing object (the unknown-provider one): rejected at admission.
    let immutable: [(&str, Value, &str); 3] = [
        (
            "gpuModel change",
            json!({"gpuModel": "T4"}),
            "gpuModel is immutable",
        ),
        (
            "zone change",
            json!({"zone": "cn-hangzhou-j"}),
            "zone is immutable",
        ),
        (
            "userId change",
            json!({"userId": "someone-else"}),
            "userId is immutable",
        ),
    ];
    let immutable_count = immutable.len();
    for (what, patch, needle) in immutable {
        expect_422(
            env.patch_spec(&ns, "unknown-provider", patch).await,
            what,
            needle,
        );
    }
    let total = admission_count + immutable_count + conditions.len();
    eprintln!(
        "{total} invalid manifests: {} rejected at admission, {} answered with a condition",
        admission_count + immutable_count,
        conditions.len()
    );
    assert!(total >= 15);

    // Let a few resyncs pass (5 s), then: nothing reached the cloud but background reads.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    for (name, namespace, _, reason) in &conditions {
        let i = env.instances_in(namespace).get(name).await.unwrap();
        assert_eq!(
            condition(&i, "Ready").map(|c| c.reason.as_str()),
            Some(*reason),
            "{name} still refused"
        );
    }
    let mut calls = delta(&calls_before, &env.emulator.state().calls().by_action);
    // The probe's DryRun creates (issue 15) carry out nothing.
    for record in env.emulator.state().call_log() {
        if record.seq > seq_before
            && record.params.get("DryRun").map(String::as_str) == Some("true")
            && let Some(n) = calls.get_mut(&record.action)
        {
            *n -= 1;
        }
    }
    calls.retain(|_, n| *n > 0);
    let foreign: BTreeMap<&String, &u64> = calls
        .iter()
        .filter(|(action, _)| !BACKGROUND_ACTIONS.contains(&action.as_str()))
        .collect();
    assert!(
        foreign.is_empty(),
        "cloud calls attributable to invalid manifests: {foreign:?} (all calls: {calls:?})"
    );
    assert_eq!(env.cloud()["counts"], resources_before);
    assert_eq!(count(&env.cloud(), "instances"), 0);
    // No UserNetwork was created for any of them.
    let nets: Vec<String> = env
        .networks_in(&ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|n| n.name_any())
        .collect();
    assert_eq!(nets, vec!["other-net".to_string()]);
    env.finish().await;
}

/// An EcsInstance without `provider` stays unscheduled with reason ProviderRequired.
#[tokio::test]
async fn an_instance_without_provider_is_refused_at_admission() {
    // Without `provider` only a placement policy can choose one: refused by the CRD's rule.
    let env = Env::start("no-provider").await;
    let ns = env.ns.name.clone();
    expect_422(
        env.create(
            &ns,
            instance_manifest(
                "no-provider",
                &env.code,
                "user-x",
                json!({"provider": null}),
            ),
        )
        .await,
        "no provider and no placement",
        "set provider, or a placement with policy Cheapest or Failover",
    );
    // A Fixed placement names no provider either.
    expect_422(
        env.create(
            &ns,
            instance_manifest(
                "fixed-no-provider",
                &env.code,
                "user-x",
                json!({"provider": null, "placement": {"policy": "Fixed"}}),
            ),
        )
        .await,
        "Fixed placement without provider",
        "set provider, or a placement with policy Cheapest or Failover",
    );
    env.finish().await;
}

#[tokio::test]
async fn a_password_never_appears_in_logs_events_or_status() {
    let env = Env::start_with(
        "password",
        Options {
            // As much logging as the operator has.
            operator_env: vec![("MCE_LOG".into(), "debug".into())],
            ..Options::default()
        },
    )
    .await;
    let ns = env.ns.name.clone();
    let password = format!("Zq7!{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
    let weak = format!("weakpassword{:08x}", rand::random::<u32>());
    env.create_secret(&ns, "login", &[("password", &password)])
        .await;
    env.create_secret(&ns, "weak-login", &[("password", &weak)])
        .await;
    env.create_instance(
        "secret-box",
        "user-pw",
        json!({"passwordSecretRef": {"name": "login", "key": "password"}, "publicIp": {"allocate": true}, "openPorts": [22]}),
    )
    .await;
    env.create_instance(
        "weak-box",
        "user-pw",
        json!({"passwordSecretRef": {"name": "weak-login", "key": "password"}}),
    )
    .await;
    let ready = env.wait_ready(&ns, "secret-box").await;
    env.wait_instance(&ns, "weak-box", "PasswordInvalid", |i| {
        (condition(i, "Ready")?.reason == "PasswordInvalid").then_some(())
    })
    .await;
    env.wait_warning(&ns, "weak-box", "PasswordInvalid").await;
    // The password reached the cloud (as a set password, never stored).
    let cloud = env.cloud();
    let vm = by_id(
        &cloud,
        "instances",
        ready
            .status
            .as_ref()
            .unwrap()
            .instance_id
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(vm["passwordSet"], true);

    let b64 = base64::engine::general_purpose::STANDARD;
    let needles = [
        password.clone(),
        b64.encode(&password),
        weak.clone(),
        b64.encode(&weak),
    ];
    let logs = env.logs();
    assert!(
        logs.len() > 1000,
        "debug logs captured: {} bytes",
        logs.len()
    );
    let events: Vec<_> =
        Api::<k8s_openapi::api::events::v1::Event>::namespaced(env.client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
    assert!(!events.is_empty());
    let events = serde_json::to_string(&events).unwrap();
    let instances = serde_json::to_string(
        &env.instances()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items,
    )
    .unwrap();
    let networks = serde_json::to_string(
        &env.networks_in(&ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items,
    )
    .unwrap();
    let cloud = cloud.to_string();
    for needle in &needles {
        for (place, text) in [
            ("operator log", &logs),
            ("events", &events),
            ("EcsInstances", &instances),
            ("UserNetworks", &networks),
            ("emulator state", &cloud),
        ] {
            assert!(
                !text.contains(needle.as_str()),
                "a password (or its base64) appears in the {place}"
            );
        }
    }
    env.finish().await;
}
