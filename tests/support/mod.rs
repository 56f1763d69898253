//! Test support: one real control plane (etcd + kube-apiserver) per test run, shared by every
//! integration test; a fresh namespace per test; clients for admin and non-admin identities.
//!
//! The control plane is started through `scripts/control-plane.sh up`, which is idempotent and
//! serialized by a lock, so every test binary of one `cargo test` run shares the same copy.
//! Tests never skip: if the binaries are missing they fail with the command that builds them.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod operator;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// Where the running control plane is and how to reach it.
pub struct ControlPlane {
    pub kubeconfig: PathBuf,
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    repo_root().join("scripts/control-plane.sh")
}

fn run_script(args: &[&str]) -> String {
    let output = Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script().display()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "`scripts/control-plane.sh {}` failed:\n{stderr}",
        args.join(" ")
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The shared control plane, started on first use.
pub fn control_plane() -> &'static ControlPlane {
    static CONTROL_PLANE: OnceLock<ControlPlane> = OnceLock::new();
    CONTROL_PLANE.get_or_init(|| {
        let binaries = run_script(&["binaries"]);
        for binary in binaries.lines() {
            assert!(
                Path::new(binary).exists(),
                "control-plane binary {binary} is missing; build it with:\n    {} build",
                script().display()
            );
        }
        run_script(&["up"]);
        ControlPlane {
            kubeconfig: PathBuf::from(run_script(&["kubeconfig"])),
        }
    })
}

/// A client from a kubeconfig file.
pub async fn client_from(kubeconfig: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig accepted by kube");
    Client::try_from(config).expect("client")
}

/// A cluster-admin client (`system:masters`).
pub async fn admin_client() -> Client {
    client_from(&control_plane().kubeconfig).await
}

/// A client for a non-admin identity: a client certificate with CN=`user` and no groups.
/// RBAC grants it nothing until a test binds it to a role.
pub async fn user_client(user: &str) -> Client {
    control_plane();
    let path = run_script(&["user-kubeconfig", user]);
    client_from(Path::new(&path)).await
}

/// A fresh namespace for one test, deleted when dropped (best effort: with no namespace
/// controller running it stays Terminating, which is harmless for a throw-away control plane).
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    /// Creates `<prefix>-<random>`, with optional labels.
    pub async fn create(client: &Client, prefix: &str, labels: &[(&str, &str)]) -> Self {
        let name = format!("{prefix}-{:08x}", rand::random::<u32>());
        let mut ns = Namespace::default();
        ns.metadata.name = Some(name.clone());
        ns.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create test namespace");
        Self {
            name,
            client: client.clone(),
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let api = Api::<Namespace>::all(self.client.clone());
        let name = self.name.clone();
        // Dropped inside a runtime: fire and forget.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = api.delete(&name, &DeleteParams::default()).await;
            });
        }
    }
}
