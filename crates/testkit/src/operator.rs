//! The operator as a real process (`multicloud-ecs run`).

use std::path::Path;
use std::process::Command;

/// Environment variables the operator reads. Removed from its environment, so nothing from the
/// caller's changes its behaviour: a test or benchmark says what it wants with flags or `env`.
const OPERATOR_ENV: [&str; 11] = [
    "MCE_FAILPOINT",
    "MCE_LOG",
    "MCE_LOG_JSON",
    "MCE_HTTP_ADDR",
    "MCE_LEADER_ELECTION",
    "MCE_CONCURRENCY",
    "MCE_RESYNC_SECONDS",
    "MCE_PROBE_SECONDS",
    "MCE_SHARDS",
    "POD_NAME",
    "POD_NAMESPACE",
];

/// `<bin> run` against the control plane of `kubeconfig`, with a hermetic environment; the
/// caller adds flags and variables, then spawns it as a [`crate::process::Process`].
pub fn command(bin: &Path, kubeconfig: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("run").env("KUBECONFIG", kubeconfig);
    for var in OPERATOR_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// An operator process taking part in Leases (leader election or shards) against this test
/// process's private control plane, serving its metrics. Killed when dropped.
pub struct LeaseOperator {
    pub identity: String,
    pub port: u16,
    pub process: crate::process::Process,
}

impl LeaseOperator {
    /// Starts `multicloud-ecs run` with `mode` (`--leader-election`, or `--shards N`), the
    /// Lease flags, short resync and probe periods, and JSON logs under `log_dir`.
    pub fn start(
        identity: &str,
        lease_name: &str,
        lease_seconds: u64,
        mode: &[&str],
        log_dir: &str,
    ) -> Self {
        let port = crate::process::free_port();
        let log = crate::paths::tmp_dir(log_dir).join(format!("{lease_name}-{identity}.log"));
        let mut cmd = command(
            &crate::paths::operator_bin(crate::paths::Build::IfMissing),
            &crate::control_plane::private().kubeconfig,
        );
        cmd.args(mode)
            .args(["--lease-seconds", &lease_seconds.to_string()])
            .args(["--lease-name", lease_name])
            .args(["--lease-namespace", LEASE_NAMESPACE])
            .args(["--identity", identity])
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--resync-seconds", "5", "--probe-seconds", "5"])
            .args(["--log-json", "--log-level", "info,kube=warn"]);
        Self {
            identity: identity.to_string(),
            port,
            process: crate::process::Process::spawn("operator", cmd, log),
        }
    }

    /// `GET path` on its HTTP endpoint (None: not serving).
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        crate::process::http_get(self.port, path, std::time::Duration::from_secs(2))
            .await
            .ok()
    }

    /// A sample `name value` of its /metrics (None: not serving or not recorded).
    pub async fn metric(&self, name: &str) -> Option<i64> {
        let (_, text) = self.get("/metrics").await?;
        metric(&text, name)
    }

    /// The last lines of its log.
    pub fn logs(&self) -> String {
        crate::wait::tail(&self.process.logs(), 30)
    }
}

/// The identity, log file and last log lines of each operator, for a failure message.
pub fn dump(ops: &[&LeaseOperator]) -> String {
    ops.iter()
        .map(|op| {
            format!(
                "--- {} (log {}) ---\n{}",
                op.identity,
                op.process.log.display(),
                op.logs()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where [`LeaseOperator`]s keep their Leases.
pub const LEASE_NAMESPACE: &str = "default";

/// The value of a sample line `name value` in Prometheus text format.
pub fn metric(text: &str, name: &str) -> Option<i64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(' ')?;
        rest.split_whitespace()
            .next()?
            .parse::<f64>()
            .ok()
            .map(|v| v as i64)
    })
}

/// The holder of a Lease in [`LEASE_NAMESPACE`] (None: missing, released or empty).
pub async fn lease_holder(
    leases: &kube::Api<k8s_openapi::api::coordination::v1::Lease>,
    name: &str,
) -> Option<String> {
    leases
        .get_opt(name)
        .await
        .expect("get Lease")
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}
