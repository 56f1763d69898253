//! One operator test's world ([`Env`]): this process's private control plane with the CRDs, an
//! in-process cloud emulator, a fresh tenant namespace, a CloudProvider (unique name and code)
//! with its credentials Secret, and the operator as a real process whose output goes to a file.
//!
//! Every operator reconciles every object in the cluster, so a second operator on the same
//! apiserver (another test, or `scripts/demo.sh` left running on the shared control plane) acts on
//! a test's objects too, and may race it to create the same instance. So operator tests use the
//! [`control_plane::private`] copy and run one at a time inside a process: [`Env::start`] takes a
//! process-wide lock. Objects of finished tests are cleaned up by [`Env::finish`]; whatever a
//! failed test left behind is swept by the next [`Env::start`].

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use mce_emulator::EmulatorHandle;
use multicloud_ecs::api::{CloudProvider, EcsInstance, EcsInstanceSet, TENANT_LABEL, UserNetwork};
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};

use crate::control_plane;
use crate::crds::install_crds;
use crate::emulator::start_in_process;
use crate::manifests::{
    ALIYUN, CREDENTIALS_SECRET, CloudFixture, EMULATOR_CREDENTIALS, ar, dynamic, instance_manifest,
    merge, provider_manifest_on, random_code,
};
use crate::namespace::{TestNamespace, create_secret};
use crate::operator;
use crate::paths::{Build, operator_bin, tmp_dir};
use crate::process::Process;
use crate::status::{is_ready, provider_available};
use crate::wait::{tail, wait_for};

/// Prefix of every namespace these tests create (the sweep only touches those).
pub const NS_PREFIX: &str = "optest";
/// Prefix of every CloudProvider these tests create.
pub const PROVIDER_PREFIX: &str = "optest-";

/// How long a wait for the operator may take before the test fails (functional, not timed).
pub const WAIT: Duration = Duration::from_secs(90);

static SERIAL: Mutex<()> = Mutex::const_new(());

/// A cluster-admin client of this process's private control plane.
pub async fn admin_client() -> Client {
    control_plane::private().client().await
}

/// Starts `multicloud-ecs run --resync-seconds 5 --probe-seconds 5` against the private
/// control plane, with extra environment variables.
fn start_operator_process(label: &str, env: &[(&str, &str)]) -> Process {
    let log = tmp_dir("operator-logs").join(format!("{label}-{:08x}.log", rand::random::<u32>()));
    let mut cmd = operator::command(
        &operator_bin(Build::IfMissing),
        &control_plane::private().kubeconfig,
    );
    cmd.args(["--resync-seconds", "5", "--probe-seconds", "5"])
        .envs(env.iter().copied());
    Process::spawn("operator", cmd, log)
}

/// A fresh `optest-*` namespace, labelled with `tenant` if given.
async fn create_tenant_namespace(client: &Client, tenant: Option<&str>) -> TestNamespace {
    let labels: Vec<(&str, &str)> = tenant.map(|t| (TENANT_LABEL, t)).into_iter().collect();
    TestNamespace::create(client, NS_PREFIX, &labels).await
}

/// Options of a test environment.
#[derive(Clone, Debug)]
pub struct Options {
    pub tenant: String,
    /// Start the operator right away (default true).
    pub operator: bool,
    /// Extra environment of the operator process.
    pub operator_env: Vec<(String, String)>,
    /// The cloud of the test's CloudProvider (default Alibaba Cloud).
    pub cloud: &'static CloudFixture,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            tenant: "acme".into(),
            operator: true,
            operator_env: Vec::new(),
            cloud: &ALIYUN,
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
    /// The cloud the CloudProvider is of.
    pub cloud: &'static CloudFixture,
    pub operator: Option<Process>,
    operator_env: Vec<(String, String)>,
    extra_namespaces: Vec<String>,
    extra_providers: Vec<String>,
    _serial: MutexGuard<'static, ()>,
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

        let emulator = start_in_process(Duration::from_millis(300)).await;
        let ns = create_tenant_namespace(&client, Some(&options.tenant)).await;
        create_secret(&client, &ns.name, CREDENTIALS_SECRET, &EMULATOR_CREDENTIALS).await;
        let code = random_code();
        let provider = format!("{PROVIDER_PREFIX}{}", code.to_lowercase());
        let providers: Api<DynamicObject> = Api::all_with(client.clone(), &ar::<CloudProvider>());
        providers
            .create(
                &PostParams::default(),
                &dynamic(provider_manifest_on(
                    options.cloud,
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
            cloud: options.cloud,
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
            old.kill();
        }
        let mut vars: Vec<(&str, &str)> = self
            .operator_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        vars.extend_from_slice(extra);
        self.operator = Some(start_operator_process(&self.label, &vars));
    }

    pub fn operator(&mut self) -> &mut Process {
        self.operator.as_mut().expect("operator running")
    }

    pub fn logs(&self) -> String {
        self.operator
            .as_ref()
            .map(Process::logs)
            .unwrap_or_default()
    }

    /// Another namespace of this test (deleted by `finish`), with or without a tenant label.
    pub async fn extra_namespace(&mut self, tenant: Option<&str>) -> String {
        let ns = create_tenant_namespace(&self.client, tenant).await;
        let name = ns.name.clone();
        // Deleted explicitly by `finish`, not by the guard.
        std::mem::forget(ns);
        self.extra_namespaces.push(name.clone());
        name
    }

    /// Another CloudProvider of this test's cloud on its emulator; returns its code.
    pub async fn extra_provider(&mut self, disabled: bool) -> String {
        self.extra_provider_on(self.cloud, disabled).await
    }

    /// Another CloudProvider of `cloud` on this test's emulator (which serves every cloud);
    /// returns its code.
    pub async fn extra_provider_on(
        &mut self,
        cloud: &'static CloudFixture,
        disabled: bool,
    ) -> String {
        let code = random_code();
        let name = format!("{PROVIDER_PREFIX}{}", code.to_lowercase());
        self.providers()
            .create(
                &PostParams::default(),
                &dynamic(provider_manifest_on(
                    cloud,
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
        wait_for(
            &format!("CloudProvider {name} Available"),
            WAIT,
            || async move { provider_available(&self.client, name).await.then_some(()) },
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
            "EcsInstanceSet" => ar::<EcsInstanceSet>(),
            "PriceQuote" => ar::<multicloud_ecs::api::price_quote::PriceQuote>(),
            other => panic!("unexpected kind {other}"),
        };
        Api::<DynamicObject>::namespaced_with(self.client.clone(), ns, &resource)
            .create(&PostParams::default(), &dynamic(manifest))
            .await
    }

    /// An EcsInstance manifest on this test's provider, in its cloud's default region.
    pub fn instance_manifest(&self, name: &str, user: &str, extra: Value) -> Value {
        let mut manifest = instance_manifest(name, &self.code, user, json!({}));
        merge(
            &mut manifest,
            json!({"spec": {"region": self.cloud.region}}),
        );
        merge(&mut manifest, json!({ "spec": extra }));
        manifest
    }

    /// An EcsInstance in this test's namespace on this test's provider.
    pub async fn create_instance(&self, name: &str, user: &str, extra: Value) -> EcsInstance {
        let created = self
            .create(&self.ns.name, self.instance_manifest(name, user, extra))
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
        self.wait_event(ns, name, "Warning", reason).await;
    }

    /// Waits for an event of `type_` (`Normal`, `Warning`) and `reason` on an object: events
    /// are posted after the status write that a test may already have seen.
    pub async fn wait_event(&self, ns: &str, name: &str, type_: &str, reason: &str) {
        wait_for(
            &format!("{type_} event {reason} on {ns}/{name}"),
            WAIT,
            || async move {
                self.events_for(ns, name)
                    .await
                    .iter()
                    .any(|e| {
                        e.type_.as_deref() == Some(type_) && e.reason.as_deref() == Some(reason)
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
            // Sets first: they would recreate the instances deleted below.
            let _ = Api::<DynamicObject>::namespaced_with(
                self.client.clone(),
                ns,
                &ar::<EcsInstanceSet>(),
            )
            .delete_collection(&dp, &ListParams::default())
            .await;
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
            op.kill();
        }
        for ns in &namespaces {
            force_clear_namespace(&self.client, ns).await;
        }
        let mut providers = vec![self.provider.clone()];
        providers.extend(self.extra_providers.iter().cloned());
        for p in providers {
            let _ = self.providers().delete(&p, &dp).await;
            // The operator is gone: nothing will remove its in-use finalizer.
            let _ = self
                .providers()
                .patch(&p, &PatchParams::default(), &strip_finalizers())
                .await;
        }
        let namespaces_api: Api<Namespace> = Api::all(self.client.clone());
        for ns in &namespaces {
            let _ = namespaces_api.delete(ns, &dp).await;
        }
    }
}

/// A merge patch removing every finalizer.
fn strip_finalizers() -> Patch<Value> {
    Patch::Merge(json!({"metadata": {"finalizers": null}}))
}

/// Removes the finalizers of (and deletes) every EcsInstance and UserNetwork in a namespace, 32
/// at a time. For when no operator runs to release them: there is no cloud behind them any more.
pub async fn force_clear_namespace(client: &Client, ns: &str) {
    let strip = strip_finalizers();
    for resource in [
        ar::<EcsInstanceSet>(),
        ar::<EcsInstance>(),
        ar::<UserNetwork>(),
    ] {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
        let Ok(list) = api.list_metadata(&ListParams::default()).await else {
            continue;
        };
        futures::stream::iter(list.items)
            .for_each_concurrent(32, |obj| {
                let (api, strip) = (&api, &strip);
                async move {
                    let name = obj.name_any();
                    let _ = api.patch(&name, &PatchParams::default(), strip).await;
                    let _ = api.delete(&name, &DeleteParams::default()).await;
                }
            })
            .await;
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
                let _ = providers
                    .patch(&name, &PatchParams::default(), &strip_finalizers())
                    .await;
            }
        }
    }
}
