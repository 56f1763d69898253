//! The Helm chart's RBAC against the real API server, with the chart's ServiceAccount identity
//! (impersonation): every API call the operator makes is allowed, a sample of what it must not do
//! is forbidden. The chart is rendered by `helm template` (scripts/helm.sh, which builds Helm once
//! if it is missing) and its ServiceAccount, ClusterRole, Role and bindings are applied to the
//! shared control plane under a unique release name.
//!
//! The operator's calls (src/controller, src/operator.rs, kube's Recorder and kube-lease-manager):
//! list/watch EcsInstances, EcsInstanceSets, UserNetworks, CloudProviders and Namespaces in all
//! namespaces; patch of EcsInstances, EcsInstanceSets, UserNetworks and CloudProviders
//! (finalizers; a set's children); server-side apply of the status subresources; create/delete
//! of UserNetworks (silent addressing) and EcsInstances (a set's children); get of Secrets; create/patch of
//! events.k8s.io Events; get/create/patch of its Lease in the release namespace — or, sharded
//! (`sharding.shards` > 1), list/create of Leases and update of its shard Leases there instead.

use std::process::Command;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Api, Client};
use mce_testkit::control_plane::{self, config_from};
use mce_testkit::namespace::TestNamespace;
use mce_testkit::paths::workspace_root;
use serde_json::{Value, json};

const KUBE_VERSION: &str = "v1.34.4";
const GROUP: &str = "ecs.multicloud.io";
const LEASE: &str = "multicloud-ecs-leader";

/// `helm template` of the chart; returns every rendered object.
fn helm_template(release: &str, namespace: &str, set: &[&str]) -> Vec<Value> {
    let mut cmd = Command::new("bash");
    cmd.arg(workspace_root().join("scripts/helm.sh"))
        .args(["template", release])
        .arg(workspace_root().join("charts/multicloud-ecs"))
        .args(["--namespace", namespace, "--kube-version", KUBE_VERSION]);
    for s in set {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().expect("run scripts/helm.sh");
    assert!(
        out.status.success(),
        "helm template failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    serde_saphyr::from_multiple::<Value>(&text)
        .expect("helm output is YAML")
        .into_iter()
        .filter(|v| v.is_object())
        .collect()
}

fn resource_of(kind: &str) -> Option<ApiResource> {
    Some(match kind {
        "ServiceAccount" => ApiResource::erase::<ServiceAccount>(&()),
        "ClusterRole" => ApiResource::erase::<ClusterRole>(&()),
        "ClusterRoleBinding" => ApiResource::erase::<ClusterRoleBinding>(&()),
        "Role" => ApiResource::erase::<Role>(&()),
        "RoleBinding" => ApiResource::erase::<RoleBinding>(&()),
        _ => return None,
    })
}

/// Server-side applies the RBAC objects (and the ServiceAccount) of the rendered chart.
async fn apply_rbac(
    admin: &Client,
    objects: &[Value],
) -> Vec<(ApiResource, Option<String>, String)> {
    let mut applied = Vec::new();
    for obj in objects {
        let kind = obj["kind"].as_str().unwrap_or_default();
        let Some(ar) = resource_of(kind) else {
            continue;
        };
        let name = obj["metadata"]["name"].as_str().expect("name").to_string();
        let ns = obj["metadata"]["namespace"].as_str().map(String::from);
        let api: Api<DynamicObject> = match &ns {
            Some(ns) => Api::namespaced_with(admin.clone(), ns, &ar),
            None => Api::all_with(admin.clone(), &ar),
        };
        let dynamic: DynamicObject = serde_json::from_value(obj.clone()).expect("object");
        api.patch(
            &name,
            &PatchParams::apply("chart-rbac-test").force(),
            &Patch::Apply(&dynamic),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"));
        applied.push((ar, ns, name));
    }
    applied
}

async fn delete_all(admin: &Client, applied: &[(ApiResource, Option<String>, String)]) {
    for (ar, ns, name) in applied {
        let api: Api<DynamicObject> = match ns {
            Some(ns) => Api::namespaced_with(admin.clone(), ns, ar),
            None => Api::all_with(admin.clone(), ar),
        };
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
}

/// A client of the shared control plane acting as `system:serviceaccount:<ns>:<name>`.
async fn impersonating(namespace: &str, service_account: &str) -> Client {
    let mut config = config_from(&control_plane::shared().kubeconfig).await;
    config.auth_info.impersonate = Some(format!(
        "system:serviceaccount:{namespace}:{service_account}"
    ));
    Client::try_from(config).expect("client")
}

/// One access question: verb on group/resource[/subresource] in namespace (None: cluster-wide or
/// all namespaces), optionally of one named object.
#[derive(Clone, Debug)]
struct Access {
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    subresource: Option<&'static str>,
    namespace: Option<String>,
    name: Option<String>,
}

fn access(verb: &'static str, group: &'static str, resource: &'static str) -> Access {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (resource, None),
    };
    Access {
        verb,
        group,
        resource,
        subresource,
        namespace: None,
        name: None,
    }
}

impl Access {
    fn ns(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.to_string());
        self
    }
    fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

async fn allowed(client: &Client, a: &Access) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(a.verb.into()),
                group: Some(a.group.into()),
                resource: Some(a.resource.into()),
                subresource: a.subresource.map(String::from),
                namespace: a.namespace.clone(),
                name: a.name.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let result = api
        .create(&PostParams::default(), &review)
        .await
        .expect("SelfSubjectAccessReview");
    result.status.expect("review status").allowed
}

async fn check(client: &Client, must_allow: &[Access], must_forbid: &[Access]) {
    let mut wrong = Vec::new();
    for a in must_allow {
        if !allowed(client, a).await {
            wrong.push(format!("FORBIDDEN but the operator needs it: {a:?}"));
        }
    }
    for a in must_forbid {
        if allowed(client, a).await {
            wrong.push(format!("ALLOWED but must be forbidden: {a:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// What the operator does, as access questions (`tenant_ns`: a namespace with EcsInstances,
/// `secret_ns`: where a credentials Secret lives, `release_ns`: where it runs).
fn operator_calls(tenant_ns: &str, secret_ns: &str, release_ns: &str) -> Vec<Access> {
    let mut calls = Vec::new();
    for resource in [
        "ecsinstances",
        "ecsinstancesets",
        "usernetworks",
        "cloudproviders",
        "namespaces",
    ] {
        let group = if resource == "namespaces" { "" } else { GROUP };
        // Watched in all namespaces (cluster-wide list + watch).
        calls.push(access("list", group, resource));
        calls.push(access("watch", group, resource));
    }
    // Finalizers: JSON patch of the main resource.
    calls.push(
        access("patch", GROUP, "ecsinstances")
            .ns(tenant_ns)
            .named("gpu-box"),
    );
    calls.push(
        access("patch", GROUP, "usernetworks")
            .ns(tenant_ns)
            .named("net-u1"),
    );
    // Status by server-side apply.
    calls.push(
        access("patch", GROUP, "ecsinstances/status")
            .ns(tenant_ns)
            .named("gpu-box"),
    );
    calls.push(
        access("patch", GROUP, "usernetworks/status")
            .ns(tenant_ns)
            .named("net-u1"),
    );
    calls.push(access("patch", GROUP, "cloudproviders/status").named("aliyun"));
    // EcsInstanceSets: finalizer, status, and the children they create, patch and delete.
    calls.push(
        access("patch", GROUP, "ecsinstancesets")
            .ns(tenant_ns)
            .named("pool"),
    );
    calls.push(
        access("patch", GROUP, "ecsinstancesets/status")
            .ns(tenant_ns)
            .named("pool"),
    );
    calls.push(
        access("update", GROUP, "ecsinstancesets/finalizers")
            .ns(tenant_ns)
            .named("pool"),
    );
    calls.push(access("create", GROUP, "ecsinstances").ns(tenant_ns));
    calls.push(
        access("delete", GROUP, "ecsinstances")
            .ns(tenant_ns)
            .named("pool-x7k2p"),
    );
    // The in-use finalizer of CloudProviders.
    calls.push(access("patch", GROUP, "cloudproviders").named("aliyun"));
    // Silent addressing.
    calls.push(access("create", GROUP, "usernetworks").ns(tenant_ns));
    calls.push(
        access("delete", GROUP, "usernetworks")
            .ns(tenant_ns)
            .named("net-u1"),
    );
    // Secrets named by CloudProviders and EcsInstances.
    calls.push(
        access("get", "", "secrets")
            .ns(secret_ns)
            .named("aliyun-credentials"),
    );
    // Events (kube Recorder: events.k8s.io, create and patch of a series).
    for ns in [tenant_ns, "default"] {
        calls.push(access("create", "events.k8s.io", "events").ns(ns));
        calls.push(
            access("patch", "events.k8s.io", "events")
                .ns(ns)
                .named("x.1"),
        );
    }
    // The leader Lease (kube-lease-manager: get, create, patch).
    calls.push(
        access("get", "coordination.k8s.io", "leases")
            .ns(release_ns)
            .named(LEASE),
    );
    calls.push(access("create", "coordination.k8s.io", "leases").ns(release_ns));
    calls.push(
        access("patch", "coordination.k8s.io", "leases")
            .ns(release_ns)
            .named(LEASE),
    );
    calls
}

/// A sample of what the operator must never be able to do.
fn must_not(tenant_ns: &str, release_ns: &str) -> Vec<Access> {
    let mut calls = vec![
        // Namespaces: read-only.
        access("delete", "", "namespaces").named(tenant_ns),
        access("create", "", "namespaces"),
        access("patch", "", "namespaces").named(tenant_ns),
        access("update", "", "namespaces").named(tenant_ns),
        // CRDs: never written (installed by Helm, not by the operator).
        access(
            "create",
            "apiextensions.k8s.io",
            "customresourcedefinitions",
        ),
        access(
            "update",
            "apiextensions.k8s.io",
            "customresourcedefinitions",
        )
        .named("ecsinstances.ecs.multicloud.io"),
        access("patch", "apiextensions.k8s.io", "customresourcedefinitions")
            .named("ecsinstances.ecs.multicloud.io"),
        access(
            "delete",
            "apiextensions.k8s.io",
            "customresourcedefinitions",
        )
        .named("ecsinstances.ecs.multicloud.io"),
        // Secrets: no enumeration, no write.
        access("list", "", "secrets"),
        access("watch", "", "secrets"),
        access("list", "", "secrets").ns(tenant_ns),
        access("watch", "", "secrets").ns(release_ns),
        access("delete", "", "secrets").ns(tenant_ns).named("login"),
        access("create", "", "secrets").ns(tenant_ns),
        access("update", "", "secrets").ns(tenant_ns).named("login"),
        access("patch", "", "secrets").ns(tenant_ns).named("login"),
        // Workloads and other core objects.
        access("create", "", "pods").ns(tenant_ns),
        access("create", "", "pods").ns(release_ns),
        access("create", "", "pods/exec").ns(release_ns).named("p"),
        access("create", "apps", "deployments").ns(release_ns),
        access("get", "", "configmaps").ns(tenant_ns).named("c"),
        access("create", "", "serviceaccounts/token")
            .ns(release_ns)
            .named("default"),
        // The user's objects: the operator writes status and finalizers (and a set's children),
        // not the user's specs or objects.
        access("update", GROUP, "ecsinstances")
            .ns(tenant_ns)
            .named("gpu-box"),
        access("create", GROUP, "ecsinstancesets").ns(tenant_ns),
        access("delete", GROUP, "ecsinstancesets")
            .ns(tenant_ns)
            .named("pool"),
        access("update", GROUP, "ecsinstancesets")
            .ns(tenant_ns)
            .named("pool"),
        access("create", GROUP, "cloudproviders"),
        access("update", GROUP, "cloudproviders").named("aliyun"),
        access("delete", GROUP, "cloudproviders").named("aliyun"),
        access("update", GROUP, "usernetworks")
            .ns(tenant_ns)
            .named("net-u1"),
        // Leases: only its own, only in its namespace, never deleted.
        access("get", "coordination.k8s.io", "leases")
            .ns(release_ns)
            .named("other"),
        access("patch", "coordination.k8s.io", "leases")
            .ns(release_ns)
            .named("other"),
        access("delete", "coordination.k8s.io", "leases")
            .ns(release_ns)
            .named(LEASE),
        access("list", "coordination.k8s.io", "leases").ns(release_ns),
        access("create", "coordination.k8s.io", "leases").ns("kube-system"),
        access("patch", "coordination.k8s.io", "leases")
            .ns("kube-system")
            .named(LEASE),
        // Events: no reading or deleting, no core/v1 events.
        access("list", "events.k8s.io", "events"),
        access("delete", "events.k8s.io", "events")
            .ns(tenant_ns)
            .named("x.1"),
        access("create", "", "events").ns(tenant_ns),
        // RBAC escalation and impersonation.
        access("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
        access("bind", "rbac.authorization.k8s.io", "clusterroles").named("cluster-admin"),
        access("escalate", "rbac.authorization.k8s.io", "clusterroles").named("x"),
        access("impersonate", "", "users").named("admin"),
    ];
    calls.push(access("deletecollection", GROUP, "ecsinstances").ns(tenant_ns));
    calls
}

/// No wildcard anywhere in the rendered RBAC rules.
fn assert_no_wildcards(objects: &[Value]) {
    for obj in objects {
        if !matches!(obj["kind"].as_str(), Some("ClusterRole" | "Role")) {
            continue;
        }
        for rule in obj["rules"].as_array().expect("rules") {
            for field in ["verbs", "resources", "apiGroups", "resourceNames"] {
                for v in rule[field].as_array().into_iter().flatten() {
                    assert_ne!(
                        v, "*",
                        "wildcard in {field} of {}: {rule}",
                        obj["metadata"]["name"]
                    );
                }
            }
        }
    }
}

/// Every rule in the RBAC template carries a comment saying why it exists.
#[test]
fn every_rbac_rule_is_commented() {
    let text =
        std::fs::read_to_string(workspace_root().join("charts/multicloud-ecs/templates/rbac.yaml"))
            .expect("read rbac.yaml");
    let lines: Vec<&str> = text.lines().collect();
    let mut rules = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("- apiGroups:") {
            rules += 1;
            let previous = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim_start().starts_with("{{"))
                .expect("a line before the rule");
            assert!(
                previous.trim_start().starts_with('#'),
                "rule at line {} has no comment above it",
                i + 1
            );
        }
    }
    assert!(rules >= 8, "expected the chart's rules, found {rules}");
}

/// Applies the chart's RBAC (its ServiceAccount, ClusterRole and Role with their bindings) and
/// returns a client impersonating that ServiceAccount, and what was applied.
async fn apply_and_impersonate(
    admin: &kube::Client,
    objects: &[serde_json::Value],
    release_ns: &str,
) -> (
    kube::Client,
    Vec<(kube::core::ApiResource, Option<String>, String)>,
) {
    let sa = objects
        .iter()
        .find(|o| o["kind"] == "ServiceAccount")
        .and_then(|o| o["metadata"]["name"].as_str())
        .expect("the chart has a ServiceAccount")
        .to_string();
    let applied = apply_rbac(admin, objects).await;
    assert_eq!(
        applied.len(),
        5,
        "SA, ClusterRole(+Binding), Role(+Binding)"
    );
    (impersonating(release_ns, &sa).await, applied)
}

#[tokio::test]
async fn chart_service_account_may_do_what_the_operator_does_and_no_more() {
    let admin = control_plane::shared().client().await;
    let release_ns = TestNamespace::create(&admin, "chart-rbac", &[]).await;
    let release = format!("rbac{:08x}", rand::random::<u32>());
    let objects = helm_template(&release, &release_ns.name, &[]);
    assert_no_wildcards(&objects);
    let (operator, applied) = apply_and_impersonate(&admin, &objects, &release_ns.name).await;

    check(
        &operator,
        &operator_calls("ml-team", "multicloud-ecs-system", &release_ns.name),
        &must_not("ml-team", &release_ns.name),
    )
    .await;
    // Default values: Secrets may be read (get) anywhere a CloudProvider or EcsInstance names one.
    check(
        &operator,
        &[access("get", "", "secrets").ns("ml-team").named("login")],
        &[],
    )
    .await;

    // The same, with real calls through the impersonated identity.
    let namespaces: Api<Namespace> = Api::all(operator.clone());
    namespaces
        .list(&ListParams::default().limit(1))
        .await
        .expect("list namespaces as the operator");
    let err = namespaces
        .delete(&release_ns.name, &DeleteParams::default())
        .await
        .expect_err("deleting a namespace must be forbidden");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "{err}"
    );
    let secrets: Api<Secret> = Api::namespaced(operator.clone(), &release_ns.name);
    let err = secrets
        .list(&ListParams::default())
        .await
        .expect_err("listing Secrets must be forbidden");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "{err}"
    );
    // get of a named Secret is allowed (404: it does not exist, but not 403).
    let missing = secrets
        .get_opt("absent")
        .await
        .expect("get a Secret by name");
    assert!(missing.is_none());
    let pods: Api<Pod> = Api::namespaced(operator.clone(), &release_ns.name);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "not-allowed"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    let err = pods
        .create(&PostParams::default(), &pod)
        .await
        .expect_err("creating a pod must be forbidden");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "{err}"
    );
    // The Lease cycle kube-lease-manager runs: create, get, patch (server-side apply).
    let leases: Api<Lease> = Api::namespaced(operator.clone(), &release_ns.name);
    let mut lease = Lease::default();
    lease.metadata.name = Some(LEASE.into());
    leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("create the Lease as the operator");
    leases.get(LEASE).await.expect("get the Lease");
    leases
        .patch(
            LEASE,
            &PatchParams::apply("multicloud-ecs"),
            &Patch::Apply(json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "spec": {"holderIdentity": "op-a", "leaseDurationSeconds": 15}
            })),
        )
        .await
        .expect("patch the Lease as the operator");
    let err = leases
        .delete(LEASE, &DeleteParams::default())
        .await
        .expect_err("deleting the Lease is not needed, so forbidden");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "{err}"
    );
    // Events as kube's Recorder writes them.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(operator.clone(), &release_ns.name);
    let event: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({
        "metadata": {"name": "chart-rbac-test.1"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "multicloud-ecs",
        "reportingInstance": "op-a",
        "action": "Validate",
        "reason": "Test",
        "type": "Normal",
        "regarding": {"kind": "ConfigMap", "namespace": release_ns.name, "name": "x", "apiVersion": "v1"},
    }))
    .unwrap();
    events
        .create(&PostParams::default(), &event)
        .await
        .expect("create an event as the operator");
    events
        .patch(
            "chart-rbac-test.1",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z"}}),
            ),
        )
        .await
        .expect("patch an event series as the operator");

    delete_all(&admin, &applied).await;
}

#[tokio::test]
async fn secret_namespaces_confine_secret_reads() {
    let admin = control_plane::shared().client().await;
    let release_ns = TestNamespace::create(&admin, "chart-rbac", &[]).await;
    let secrets_ns = TestNamespace::create(&admin, "chart-secrets", &[]).await;
    let release = format!("rbac{:08x}", rand::random::<u32>());
    let objects = helm_template(
        &release,
        &release_ns.name,
        &[&format!("rbac.secretNamespaces={{{}}}", secrets_ns.name)],
    );
    assert_no_wildcards(&objects);
    let cluster_role = objects
        .iter()
        .find(|o| o["kind"] == "ClusterRole")
        .expect("ClusterRole");
    assert!(
        !cluster_role["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == "secrets")),
        "with rbac.secretNamespaces the ClusterRole has no Secret rule"
    );
    let sa = objects
        .iter()
        .find(|o| o["kind"] == "ServiceAccount")
        .and_then(|o| o["metadata"]["name"].as_str())
        .unwrap()
        .to_string();
    let applied = apply_rbac(&admin, &objects).await;
    assert_eq!(
        applied.len(),
        7,
        "plus the Role and RoleBinding for Secrets"
    );
    let operator = impersonating(&release_ns.name, &sa).await;

    check(
        &operator,
        &operator_calls("ml-team", &secrets_ns.name, &release_ns.name),
        &[
            access("get", "", "secrets").ns("ml-team").named("login"),
            access("get", "", "secrets").ns("default").named("x"),
            access("get", "", "secrets").ns(&release_ns.name).named("x"),
            access("list", "", "secrets").ns(&secrets_ns.name),
            access("watch", "", "secrets").ns(&secrets_ns.name),
            access("delete", "", "secrets")
                .ns(&secrets_ns.name)
                .named("x"),
        ],
    )
    .await;
    check(&operator, &[], &must_not("ml-team", &release_ns.name)).await;

    delete_all(&admin, &applied).await;
}

#[tokio::test]
async fn sharded_chart_allows_the_shard_leases_instead_of_the_leader_lease() {
    const SHARDS: usize = 3;
    let admin = control_plane::shared().client().await;
    let release_ns = TestNamespace::create(&admin, "chart-rbac", &[]).await;
    let release = format!("rbac{:08x}", rand::random::<u32>());
    let objects = helm_template(
        &release,
        &release_ns.name,
        &[&format!("sharding.shards={SHARDS}")],
    );
    assert_no_wildcards(&objects);
    let roles: Vec<&str> = objects
        .iter()
        .filter(|o| o["kind"] == "Role")
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    assert!(
        roles.len() == 1 && roles[0].ends_with("-shards"),
        "one Role, for the shard Leases: {roles:?}"
    );
    let deployment = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("Deployment");
    assert_eq!(
        deployment["spec"]["replicas"], SHARDS,
        "one replica per shard"
    );
    let (operator, applied) = apply_and_impersonate(&admin, &objects, &release_ns.name).await;

    // Everything else as unsharded; Leases: the shard ones only.
    let not_leases = |a: &Access| a.resource != "leases";
    let release_ns = release_ns.name.clone();
    let shard = |i: usize| format!("{LEASE}-shard-{i}");
    let mut allow: Vec<Access> = operator_calls("ml-team", "multicloud-ecs-system", &release_ns)
        .into_iter()
        .filter(not_leases)
        .collect();
    allow.push(access("list", "coordination.k8s.io", "leases").ns(&release_ns));
    allow.push(access("create", "coordination.k8s.io", "leases").ns(&release_ns));
    for i in 0..SHARDS {
        allow.push(
            access("update", "coordination.k8s.io", "leases")
                .ns(&release_ns)
                .named(&shard(i)),
        );
    }
    let mut forbid: Vec<Access> = must_not("ml-team", &release_ns)
        .into_iter()
        .filter(not_leases)
        .collect();
    for (verb, name) in [
        ("update", LEASE.to_string()),
        ("patch", LEASE.to_string()),
        ("get", LEASE.to_string()),
        ("update", "other".to_string()),
        ("update", shard(SHARDS)),
        ("patch", shard(0)),
        ("delete", shard(0)),
    ] {
        forbid.push(
            access(verb, "coordination.k8s.io", "leases")
                .ns(&release_ns)
                .named(&name),
        );
    }
    forbid.push(access("watch", "coordination.k8s.io", "leases").ns(&release_ns));
    forbid.push(access("list", "coordination.k8s.io", "leases").ns("kube-system"));
    forbid.push(access("create", "coordination.k8s.io", "leases").ns("kube-system"));
    forbid.push(
        access("update", "coordination.k8s.io", "leases")
            .ns("kube-system")
            .named(&shard(0)),
    );
    check(&operator, &allow, &forbid).await;

    // The shard lease cycle as the operator makes it: create, list by label, update with the
    // resourceVersion listed (a stale one conflicts), and no delete.
    let leases: Api<Lease> = Api::namespaced(operator.clone(), &release_ns);
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {
            "name": shard(0),
            "labels": {"multicloud-ecs.io/shard-set": LEASE},
        },
        "spec": {"holderIdentity": "op-a", "leaseDurationSeconds": 15},
    }))
    .unwrap();
    leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("create a shard Lease as the operator");
    let listed = leases
        .list(&ListParams::default().labels(&format!("multicloud-ecs.io/shard-set={LEASE}")))
        .await
        .expect("list the shard Leases as the operator");
    assert_eq!(listed.items.len(), 1);
    let mut current = listed.items[0].clone();
    current.spec.as_mut().expect("spec").holder_identity = Some("op-b".into());
    let updated = leases
        .replace(&shard(0), &PostParams::default(), &current)
        .await
        .expect("update the shard Lease as the operator");
    assert_eq!(
        updated.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("op-b")
    );
    let err = leases
        .replace(&shard(0), &PostParams::default(), &current)
        .await
        .expect_err("an update with a stale resourceVersion conflicts");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err}"
    );
    let err = leases
        .delete(&shard(0), &DeleteParams::default())
        .await
        .expect_err("deleting a shard Lease is not needed, so forbidden");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "{err}"
    );

    delete_all(&admin, &applied).await;
}
