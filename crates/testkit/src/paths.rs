//! Where the workspace, its target directory and its binaries are, seen from a running test or
//! benchmark (an executable in `target/<profile>/deps`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (`crds/`, `scripts/`, `charts/`).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("crates/testkit lives two levels below the workspace root")
}

/// `target/<profile>` of the running executable: where cargo puts the workspace's binaries.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the running executable");
    exe.parent()
        .and_then(Path::parent)
        .expect("tests and benchmarks run from target/<profile>/deps")
        .to_path_buf()
}

/// A scratch directory under `target/tmp` (what `CARGO_TARGET_TMPDIR` names), created if needed.
pub fn tmp_dir(name: &str) -> PathBuf {
    let dir = profile_dir()
        .parent()
        .expect("target directory")
        .join("tmp")
        .join(name);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// When [`cargo_bin`] runs `cargo build`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    /// Only if the binary is missing: integration tests of the package that owns it (cargo has
    /// just built it for them).
    IfMissing,
    /// Always (a no-op when it is fresh): benchmarks must not measure a stale binary.
    Always,
}

/// A binary of the workspace in the running executable's target directory and profile, built
/// there with `cargo build` as `build` says. Cargo does not build other packages' binaries for a
/// test or bench target, so this is how one reaches them.
pub fn cargo_bin(package: &str, bin: &str, build: Build) -> PathBuf {
    let dir = profile_dir();
    let path = dir.join(bin);
    if build == Build::Always || !path.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "--package", package, "--bin", bin])
            .arg("--manifest-path")
            .arg(workspace_root().join("Cargo.toml"))
            .arg("--target-dir")
            .arg(dir.parent().expect("target directory"));
        match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(profile) => {
                cmd.args(["--profile", profile]);
            }
            None => panic!("no profile directory in {}", dir.display()),
        }
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
        assert!(status.success(), "`{cmd:?}` failed");
    }
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// The operator binary (`multicloud-ecs`).
pub fn operator_bin(build: Build) -> PathBuf {
    cargo_bin("multicloud-ecs", "multicloud-ecs", build)
}

/// The emulator binary (`multicloud-ecs-emulator`).
pub fn emulator_bin(build: Build) -> PathBuf {
    cargo_bin("mce-emulator", "multicloud-ecs-emulator", build)
}
