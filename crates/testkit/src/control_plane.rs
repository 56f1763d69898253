//! The real control plane (etcd + kube-apiserver) of `scripts/control-plane.sh`, and kube clients
//! of it.
//!
//! `up` is idempotent and serialized by a lock, so every test binary of one `cargo test` run
//! shares the [`shared`] copy. Nothing skips: if the binaries are missing, starting fails with the
//! command that builds them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::paths::{tmp_dir, workspace_root};

/// One copy of the control plane: its state directory and how to reach it.
pub struct ControlPlane {
    /// `MCE_CP_DIR` of this copy; `None` is the caller's default (shared) copy.
    state_dir: Option<PathBuf>,
    pub kubeconfig: PathBuf,
    /// Run `down` when dropped (a copy this process started for itself).
    stop_on_drop: bool,
}

fn script_path() -> PathBuf {
    workspace_root().join("scripts/control-plane.sh")
}

/// Runs `scripts/control-plane.sh ARGS` for the copy in `state_dir`; returns its trimmed stdout.
fn script(state_dir: Option<&Path>, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new("bash");
    cmd.arg(script_path()).args(args);
    if let Some(dir) = state_dir {
        cmd.env("MCE_CP_DIR", dir);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script_path().display()))?;
    if !out.status.success() {
        let dir = state_dir.map_or(String::new(), |d| format!("MCE_CP_DIR={} ", d.display()));
        return Err(format!(
            "`{dir}scripts/control-plane.sh {}` failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl ControlPlane {
    /// Starts (or reuses) the copy in `state_dir` (`None`: the default, shared copy).
    pub fn up(state_dir: Option<PathBuf>) -> Result<Self, String> {
        for binary in script(state_dir.as_deref(), &["binaries"])?.lines() {
            if !Path::new(binary).exists() {
                return Err(format!(
                    "control-plane binary {binary} is missing; build it with:\n    scripts/control-plane.sh build"
                ));
            }
        }
        script(state_dir.as_deref(), &["up"])?;
        let kubeconfig = PathBuf::from(script(state_dir.as_deref(), &["kubeconfig"])?);
        Ok(Self {
            state_dir,
            kubeconfig,
            stop_on_drop: false,
        })
    }

    /// Stop this copy (`scripts/control-plane.sh down`) when it is dropped.
    pub fn stop_on_drop(mut self) -> Self {
        self.stop_on_drop = true;
        self
    }

    pub fn stops_on_drop(&self) -> bool {
        self.stop_on_drop
    }

    /// A cluster-admin client (`system:masters`).
    pub async fn client(&self) -> Client {
        client_from(&self.kubeconfig).await
    }

    /// A client for a non-admin identity: a client certificate with CN=`user` and no groups.
    /// RBAC grants it nothing until a test binds it to a role.
    pub async fn user_client(&self, user: &str) -> Client {
        let path = script(self.state_dir.as_deref(), &["user-kubeconfig", user])
            .unwrap_or_else(|e| panic!("{e}"));
        client_from(Path::new(&path)).await
    }

    /// (name, pid) of kube-apiserver and etcd (their pid files sit next to the kubeconfig).
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        let dir = self.kubeconfig.parent().unwrap_or(Path::new("."));
        ["kube-apiserver", "etcd"]
            .into_iter()
            .filter_map(|name| {
                let pid = std::fs::read_to_string(dir.join(format!("{name}.pid"))).ok()?;
                Some((name, pid.trim().parse().ok()?))
            })
            .collect()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if self.stop_on_drop {
            match script(self.state_dir.as_deref(), &["down"]) {
                Ok(_) => eprintln!("dedicated control plane stopped"),
                Err(e) => eprintln!("stopping the control plane: {e}"),
            }
        }
    }
}

/// The shared control plane, started on first use.
pub fn shared() -> &'static ControlPlane {
    static SHARED: OnceLock<ControlPlane> = OnceLock::new();
    SHARED.get_or_init(|| ControlPlane::up(None).unwrap_or_else(|e| panic!("{e}")))
}

/// This test process's private control plane, started on first use and stopped by a watchdog
/// when the process exits, however it exits.
///
/// Every operator reconciles every object of its cluster, so tests that run operators must not
/// share a control plane with other tests' operators (or `scripts/demo.sh` left running).
pub fn private() -> &'static ControlPlane {
    static PRIVATE: OnceLock<ControlPlane> = OnceLock::new();
    PRIVATE.get_or_init(|| {
        let dir = tmp_dir("").join(format!("operator-cp-{}", std::process::id()));
        start_watchdog(&dir);
        ControlPlane::up(Some(dir)).unwrap_or_else(|e| panic!("{e}"))
    })
}

// The watchdog outlives this process on purpose: it is never waited for.
#[allow(clippy::zombie_processes)]
fn start_watchdog(dir: &Path) {
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; bash {script} down >/dev/null 2>&1; rm -rf {dir} {dir}.lock",
        pid = std::process::id(),
        script = script_path().display(),
        dir = dir.display(),
    );
    Command::new("setsid")
        .args(["bash", "-c", &watchdog])
        .env("MCE_CP_DIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the control-plane watchdog");
}

/// The kube `Config` of a kubeconfig file (to adjust, e.g. impersonation, before a client).
pub async fn config_from(kubeconfig: &Path) -> Config {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig accepted by kube")
}

/// A client from a kubeconfig file.
pub async fn client_from(kubeconfig: &Path) -> Client {
    Client::try_from(config_from(kubeconfig).await).expect("client")
}
