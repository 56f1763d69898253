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
