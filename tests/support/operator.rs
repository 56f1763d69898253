//! Operator test harness: the CRDs applied to a control plane, an in-process cloud emulator per
//! test, a per-test CloudProvider (unique name and code) with its credentials Secret, and the
//! operator itself as a real subprocess (`multicloud-ecs run`) whose output is captured to a file.
//!
//! Every operator reconciles every object in the cluster, so a second operator on the same
//! apiserver (another test, or `scripts/demo.sh` left running on the shared control plane) acts on
//! a test's objects too, and may race it to create the same instance. So operator tests get
//! their own control plane — the same `scripts/control-plane.sh`, with a private `MCE_CP_DIR` per
//! test process, stopped by a watchdog when the process exits — and run one at a time inside a
//! process: [`Env::start`] takes a process-wide lock. Objects of finished tests are cleaned up by
//! [`Env::finish`]; whatever a failed test left behind is swept by the next [`Env::start`].

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, Resource, ResourceExt};
use multicloud_ecs::api::{CloudProvider, EcsInstance, TENANT_LABEL, UserNetwork};
use multicloud_ecs::cloud::emulator::{self, EmulatorConfig, EmulatorHandle};
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};

use super::{TestNamespace, client_from};

pub const API_VERSION: &str = "ecs.multicloud.io/v1alpha1";
/// Prefix of every namespace these tests create (the sweep only touches those).
pub const NS_PREFIX: &str = "optest";
/// Prefix of every CloudProvider these tests create.
pub const PROVIDER_PREFIX: &str = "optest-";
pub const REGION: &str = "cn-hangzhou";
pub const ZONE: &str = "cn-hangzhou-i";
const FIELD_MANAGER: &str = "multicloud-ecs-tests";

/// How long a wait for the operator may take before the test fails (functional, not timed).
pub const WAIT: Duration = Duration::from_secs(90);

static SERIAL: Mutex<()> = Mutex::const_new(());

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// This process's private control plane: its kubeconfig.
pub fn kubeconfig() -> &'static Path {
    static KUBECONFIG: OnceLock<PathBuf> = OnceLock::new();
    KUBECONFIG.get_or_init(start_private_control_plane)
}

fn control_plane_script(dir: &Path, args: &[&str]) -> String {
    let script = repo_root().join("scripts/control-plane.sh");
    let output = Command::new("bash")
        .arg(&script)
        .args(args)
        .env("MCE_CP_DIR", dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "`MCE_CP_DIR={} scripts/control-plane.sh {}` failed:\n{}",
        dir.display(),
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

// The watchdog outlives this process on purpose: it is never waited for.
#[allow(clippy::zombie_processes)]
fn start_private_control_plane() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("operator-cp-{}", std::process::id()));
    for binary in control_plane_script(&dir, &["binaries"]).lines() {
        assert!(
            Path::new(binary).exists(),
            "control-plane binary {binary} is missing; build it with:\n    scripts/control-plane.sh build"
        );
    }
    // The watchdog stops this control plane when the test process exits, however it exits.
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; bash {script} down >/dev/null 2>&1; rm -rf {dir} {dir}.lock",
        pid = std::process::id(),
        script = repo_root().join("scripts/control-plane.sh").display(),
        dir = dir.display(),
    );
    Command::new("setsid")
        .args(["bash", "-c", &watchdog])
        .env("MCE_CP_DIR", &dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the control-plane watchdog");
    control_plane_script(&dir, &["up"]);
    PathBuf::from(control_plane_script(&dir, &["kubeconfig"]))
}

/// A cluster-admin client of the private control plane.
pub async fn admin_client() -> Client {
    client_from(kubeconfig()).await
}

/// Server-side applies every CRD in `crds/` and waits until each is Established. Idempotent
/// (and safe to run from several test binaries at once).
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let dir = repo_root().join("crds");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read crds/") {
        let path = entry.expect("crds/ entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read CRD file");
        let crd: CustomResourceDefinition =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
        names.push(name);
    }
    assert_eq!(names.len(), 3, "expected three CRDs in crds/: {names:?}");
    for name in names {
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not Established in time"))
        .expect("watch CRD");
    }
}

/// Polls `check` every 250 ms until it returns `Some`, failing the test after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The operator process. Killed when dropped.
pub struct Operator {
    child: Child,
    pub log: PathBuf,
}

impl Operator {
    /// Starts `multicloud-ecs run --resync-seconds 5 --probe-seconds 5` against the shared
    /// control plane, with extra environment variables.
    pub fn start(label: &str, env: &[(&str, &str)]) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("operator-logs");
        std::fs::create_dir_all(&dir).expect("log dir");
        let log = dir.join(format!("{label}-{:08x}.log", rand::random::<u32>()));
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_multicloud-ecs"));
        cmd.args(["run", "--resync-seconds", "5", "--probe-seconds", "5"])
            .env("KUBECONFIG", kubeconfig())
            .stdin(Stdio::null());
        // Hermetic: nothing from the caller's environment changes the operator's behaviour.
        for var in [
            "MCE_FAILPOINT",
            "MCE_LOG",
            "MCE_LOG_JSON",
            "MCE_HTTP_ADDR",
            "MCE_LEADER_ELECTION",
            "MCE_CONCURRENCY",
            "MCE_RESYNC_SECONDS",
            "MCE_PROBE_SECONDS",
            "POD_NAME",
            "POD_NAMESPACE",
        ] {
            cmd.env_remove(var);
        }
        cmd.stdout(file.try_clone().expect("log file")).stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn operator");
        Self { child, log }
    }

    /// Everything the operator wrote so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit on its own.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = &mut self.child;
        wait_for("the operator process to exit", timeout, || {
            let status = child.try_wait().expect("try_wait");
            async move { status }
        })
        .await
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Options of a test environment.
#[derive(Clone, Debug)]
pub struct Options {
    pub tenant: String,
    /// Start the operator right away (default true).
    pub operator: bool,
    /// Extra environment of the operator process.
    pub operator_env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            tenant: "acme".into(),
            operator: true,
            operator_env: Vec::new(),
        }
    }
}

/// One test's world: a namespace (with the tenant label), an emulator, a CloudProvider on it and
/// the operator.
pub struct Env {
    pub client: Client,
    pub label: String,
    pub ns: TestNamespace,
    pub tenant: String,
    pub emulator: EmulatorHandle,
    /// CloudProvider name and code.
    pub provider: String,
    pub code: String,
    pub operator: Option<Operator>,
    operator_env: Vec<(String, String)>,
    extra_namespaces: Vec<String>,
    extra_providers: Vec<String>,
    _serial: MutexGuard<'static, ()>,
}

pub fn random_code() -> String {
    format!("T{:08X}", rand::random::<u32>())
}

/// A CloudProvider like the quickstart's, on `endpoint`, with credentials in `secret_ns/creds`.
pub fn provider_manifest(
    name: &str,
    code: &str,
    endpoint: &str,
    secret_ns: &str,
    disabled: bool,
) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "CloudProvider",
        "metadata": {"name": name},
        "spec": {
            "type": "ALIYUN",
            "code": code,
            "credentialsSecretRef": {"name": "creds", "namespace": secret_ns},
            "endpoint": endpoint,
            "rateLimit": {"requestsPerSecond": 5000, "burst": 10000},
            "disabled": disabled,
            "defaults": {
                "region": REGION,
                "zones": {REGION: ZONE, "cn-beijing": "cn-beijing-a"},
                "instanceType": "ecs.g7.large",
                "systemDiskCategory": "cloud_essd",
                "systemDiskSizeGiB": 40
            },
            "catalog": {
                "images": {
                    "centos-7.9": "centos_7_9_x64_20G_alibase_20220824.vhd",
                    "ubuntu-20.04": "ubuntu_20_04_x64_20G_alibase_20220824.vhd",
                    "pytorch-1.12": "pytorch_1_12_cuda11_3_ubuntu20_04"
                },
                "gpuModels": {
                    "A100": "ecs.gn7-c12g1.3xlarge",
                    "A10": "ecs.gn7i-c8g1.2xlarge",
                    "T4": "ecs.gn6i-c4g1.xlarge"
                },
                "sizes": [
                    {"cpu": 2, "memoryGiB": 8, "instanceType": "ecs.g7.large"},
                    {"cpu": 4, "memoryGiB": 16, "instanceType": "ecs.g7.xlarge"}
                ]
            }
        }
    })
}

/// An EcsInstance on provider `code` for `user`; `extra` is merged into the spec.
pub fn instance_manifest(name: &str, code: &str, user: &str, extra: Value) -> Value {
    let mut spec = json!({
        "provider": code,
        "region": REGION,
        "userId": user,
        "imageKey": "ubuntu-20.04",
        "chargeMode": "ON_DEMAND",
    });
    merge(&mut spec, extra);
    json!({
        "apiVersion": API_VERSION,
        "kind": "EcsInstance",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// JSON merge patch (RFC 7386) of `patch` into `target`.
pub fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(&k);
                } else {
                    merge(t.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p,
    }
}

pub fn ar<K: Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

pub fn dynamic(value: Value) -> DynamicObject {
    serde_json::from_value(value).expect("valid object")
}

async fn create_namespace(client: &Client, tenant: Option<&str>) -> TestNamespace {
    let labels: Vec<(&str, &str)> = tenant.map(|t| (TENANT_LABEL, t)).into_iter().collect();
    TestNamespace::create(client, NS_PREFIX, &labels).await
}

async fn create_secret(client: &Client, ns: &str, name: &str, data: &[(&str, &str)]) {
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        string_data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create Secret");
}

impl Env {
    pub async fn start(label: &str) -> Self {
        Self::start_with(label, Options::default()).await
    }

    pub async fn start_with(label: &str, options: Options) -> Self {
        let serial = SERIAL.lock().await;
        let client = admin_client().await;
        install_crds(&client).await;
        sweep(&client).await;

        let emulator = emulator::start(EmulatorConfig {
            boot_delay: Duration::from_millis(300),
            ..EmulatorConfig::default()
        })
        .await
        .expect("start emulator");
        let ns = create_namespace(&client, Some(&options.tenant)).await;
        create_secret(
            &client,
            &ns.name,
            "creds",
            &[
                ("accessKeyId", emulator::DEFAULT_ACCESS_KEY_ID),
                ("accessKeySecret", emulator::DEFAULT_ACCESS_KEY_SECRET),
            ],
        )
        .await;
        let code = random_code();
        let provider = format!("{PROVIDER_PREFIX}{}", code.to_lowercase());
        let providers: Api<DynamicObject> = Api::all_with(client.clone(), &ar::<CloudProvider>());
        providers
            .create(
                &PostParams::default(),
                &dynamic(provider_manifest(
                    &provider,
                    &code,
                    &emulator.base_url(),
                    &ns.name,
                    false,
                )),
            )
            .await
            .expect("create CloudProvider");
        let mut env = Self {
            client,
            label: label.into(),
            ns,
            tenant: options.tenant.clone(),
            emulator,
            provider,
            code,
            operator: None,
            operator_env: options.operator_env.clone(),
            extra_namespaces: Vec::new(),
            extra_providers: Vec::new(),
            _serial: serial,
        };
        if options.operator {
            env.start_operator(&[]);
            env.wait_provider_available(&env.provider.clone()).await;
        }
        env
    }

    /// Starts (or restarts) the operator with the env's extra environment plus `extra`.
    pub fn start_operator(&mut self, extra: &[(&str, &str)]) {
        if let Some(mut old) = self.operator.take() {
            old.stop();
        }
        let mut vars: Vec<(&str, &str)> = self
            .operator_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        vars.extend_from_slice(extra);
        self.operator = Some(Operator::start(&self.label, &vars));
    }

    pub fn operator(&mut self) -> &mut Operator {
        self.operator.as_mut().expect("operator running")
    }

    pub fn logs(&self) -> String {
        self.operator
            .as_ref()
            .map(Operator::logs)
            .unwrap_or_default()
    }

    /// Another namespace of this test (deleted by `finish`), with or without a tenant label.
    pub async fn extra_namespace(&mut self, tenant: Option<&str>) -> String {
        let ns = create_namespace(&self.client, tenant).await;
        let name = ns.name.clone();
        // Deleted explicitly by `finish`, not by the guard.
        std::mem::forget(ns);
        self.extra_namespaces.push(name.clone());
        name
    }

    /// Another CloudProvider on this test's emulator; returns its code.
    pub async fn extra_provider(&mut self, disabled: bool) -> String {
        let code = random_code();
        let name = format!("{PROVIDER_PREFIX}{}", code.to_lowercase());
        self.providers()
            .create(
                &PostParams::default(),
                &dynamic(provider_manifest(
                    &name,
                    &code,
                    &self.emulator.base_url(),
                    &self.ns.name,
                    disabled,
                )),
            )
            .await
            .expect("create CloudProvider");
        self.extra_providers.push(name);
        code
    }

    pub fn providers(&self) -> Api<DynamicObject> {
        Api::all_with(self.client.clone(), &ar::<CloudProvider>())
    }

    pub async fn wait_provider_available(&self, name: &str) {
        let api: Api<CloudProvider> = Api::all(self.client.clone());
        let api = &api;
        wait_for(
            &format!("CloudProvider {name} Available"),
            WAIT,
            || async move {
                let p = api.get(name).await.ok()?;
                let conditions = p.status?.conditions;
                conditions
                    .iter()
                    .any(|c| c.type_ == "Available" && c.status == "True")
                    .then_some(())
            },
        )
        .await;
    }

    pub fn instances(&self) -> Api<EcsInstance> {
        self.instances_in(&self.ns.name)
    }

    pub fn instances_in(&self, ns: &str) -> Api<EcsInstance> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub fn dyn_instances_in(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &ar::<EcsInstance>())
    }

    pub fn networks_in(&self, ns: &str) -> Api<UserNetwork> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub async fn create_secret(&self, ns: &str, name: &str, data: &[(&str, &str)]) {
        create_secret(&self.client, ns, name, data).await;
    }

    /// Creates an object from a manifest in `ns` (EcsInstance or UserNetwork).
    pub async fn create(&self, ns: &str, manifest: Value) -> Result<DynamicObject, kube::Error> {
        let kind = manifest["kind"].as_str().unwrap_or_default().to_string();
        let resource = match kind.as_str() {
            "EcsInstance" => ar::<EcsInstance>(),
            "UserNetwork" => ar::<UserNetwork>(),
            other => panic!("unexpected kind {other}"),
        };
        Api::<DynamicObject>::namespaced_with(self.client.clone(), ns, &resource)
            .create(&PostParams::default(), &dynamic(manifest))
            .await
    }

    /// An EcsInstance in this test's namespace on this test's provider.
    pub async fn create_instance(&self, name: &str, user: &str, extra: Value) -> EcsInstance {
        let created = self
            .create(
                &self.ns.name,
                instance_manifest(name, &self.code, user, extra),
            )
            .await
            .unwrap_or_else(|e| panic!("create EcsInstance {name}: {e}"));
        serde_json::from_value(serde_json::to_value(created).unwrap()).unwrap()
    }

    /// JSON merge patch of an EcsInstance's spec.
    pub async fn patch_spec(&self, ns: &str, name: &str, spec: Value) -> Result<(), kube::Error> {
        self.dyn_instances_in(ns)
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": spec })),
            )
            .await
            .map(|_| ())
    }

    /// Waits until `check` holds for the EcsInstance (on timeout, fails with its last status
    /// and the operator's log tail).
    pub async fn wait_instance<T>(
        &self,
        ns: &str,
        name: &str,
        what: &str,
        check: impl Fn(&EcsInstance) -> Option<T>,
    ) -> T {
        let api = self.instances_in(ns);
        let mut last = None;
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(inst) = api.get(name).await {
                if let Some(v) = check(&inst) {
                    return v;
                }
                last = Some(inst);
            }
            if Instant::now() >= deadline {
                let status = last
                    .and_then(|i| i.status)
                    .map(|s| serde_json::to_string_pretty(&s).unwrap());
                panic!(
                    "timed out waiting for EcsInstance {ns}/{name}: {what}; last status: {}\noperator log tail:\n{}",
                    status.unwrap_or_else(|| "none".into()),
                    tail(&self.logs(), 40)
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until the EcsInstance is Ready (and its status describes the current generation).
    pub async fn wait_ready(&self, ns: &str, name: &str) -> EcsInstance {
        self.wait_instance(ns, name, "Ready", |i| is_ready(i).then(|| i.clone()))
            .await
    }

    /// Waits until `check` holds for the emulator's state.
    pub async fn wait_cloud<T>(&self, what: &str, check: impl Fn(&Value) -> Option<T>) -> T {
        let state = self.emulator.state().clone();
        let check = &check;
        wait_for(what, WAIT, || {
            let snapshot = state.resources();
            async move { check(&snapshot) }
        })
        .await
    }

    /// The emulator's resources (the `/_emulator/resources` document).
    pub fn cloud(&self) -> Value {
        self.emulator.state().resources()
    }

    /// Events (events.k8s.io/v1) about an object in a namespace.
    pub async fn events_for(
        &self,
        ns: &str,
        name: &str,
    ) -> Vec<k8s_openapi::api::events::v1::Event> {
        Api::<k8s_openapi::api::events::v1::Event>::namespaced(self.client.clone(), ns)
            .list(&ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect()
    }

    /// Waits for a Warning event with `reason` about the object.
    pub async fn wait_warning(&self, ns: &str, name: &str, reason: &str) {
        wait_for(
            &format!("Warning event {reason} on {ns}/{name}"),
            WAIT,
            || async move {
                self.events_for(ns, name)
                    .await
                    .iter()
                    .any(|e| {
                        e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some(reason)
                    })
                    .then_some(())
            },
        )
        .await;
    }

    /// Deletes the EcsInstances and UserNetworks of the test's namespaces (with the operator
    /// still running, so cloud resources are released), waits for them to go, then removes the
    /// namespaces and providers and stops the operator. Anything stuck has its finalizers
    /// removed.
    pub async fn finish(mut self) {
        let mut namespaces = vec![self.ns.name.clone()];
        namespaces.extend(self.extra_namespaces.iter().cloned());
        let dp = DeleteParams::default();
        for ns in &namespaces {
            let _ = self
                .dyn_instances_in(ns)
                .delete_collection(&dp, &ListParams::default())
                .await;
        }
        if self.operator.is_some() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                let mut left = 0;
                for ns in &namespaces {
                    left += self
                        .instances_in(ns)
                        .list(&ListParams::default())
                        .await
                        .map(|l| l.items.len())
                        .unwrap_or(0);
                    left += self
                        .networks_in(ns)
                        .list(&ListParams::default())
                        .await
                        .map(|l| l.items.len())
                        .unwrap_or(0);
                }
                if left == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        if let Some(mut op) = self.operator.take() {
            op.stop();
        }
        for ns in &namespaces {
            force_clear_namespace(&self.client, ns).await;
        }
        let mut providers = vec![self.provider.clone()];
        providers.extend(self.extra_providers.iter().cloned());
        for p in providers {
            let _ = self.providers().delete(&p, &dp).await;
        }
        let namespaces_api: Api<Namespace> = Api::all(self.client.clone());
        for ns in &namespaces {
            let _ = namespaces_api.delete(ns, &dp).await;
        }
    }
}

/// Whether the EcsInstance is Ready for its current generation.
pub fn is_ready(inst: &EcsInstance) -> bool {
    let Some(status) = &inst.status else {
        return false;
    };
    status.observed_generation == inst.metadata.generation
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The condition of a type on an EcsInstance.
pub fn condition<'a>(
    inst: &'a EcsInstance,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    inst.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Removes the finalizers of (and deletes) every EcsInstance and UserNetwork in a namespace.
async fn force_clear_namespace(client: &Client, ns: &str) {
    for resource in [ar::<EcsInstance>(), ar::<UserNetwork>()] {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
        let Ok(list) = api.list(&ListParams::default()).await else {
            continue;
        };
        for obj in list.items {
            let name = obj.name_any();
            let _ = api
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                )
                .await;
            let _ = api.delete(&name, &DeleteParams::default()).await;
        }
    }
}

/// Leftovers of earlier (failed or interrupted) operator tests: objects in Terminating test
/// namespaces, and test CloudProviders whose credentials namespace is gone or Terminating.
async fn sweep(client: &Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let Ok(list) = namespaces.list(&ListParams::default()).await else {
        return;
    };
    let live: Vec<String> = list
        .items
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .map(|n| n.name_any())
        .collect();
    for ns in list
        .items
        .iter()
        .filter(|n| n.name_any().starts_with(NS_PREFIX) && n.metadata.deletion_timestamp.is_some())
    {
        force_clear_namespace(client, &ns.name_any()).await;
    }
    let providers: Api<CloudProvider> = Api::all(client.clone());
    if let Ok(list) = providers.list(&ListParams::default()).await {
        for p in list.items {
            let name = p.name_any();
            if name.starts_with(PROVIDER_PREFIX)
                && !live.contains(&p.spec.credentials_secret_ref.namespace)
            {
                let _ = providers.delete(&name, &DeleteParams::default()).await;
            }
        }
    }
}

// ---- Emulator inspection helpers (over the `/_emulator/resources` document) ----

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
