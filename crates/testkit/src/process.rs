//! Child processes of tests and benchmarks (operator, emulator), free loopback ports and plain
//! HTTP GETs of what those processes serve.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::wait::{tail, wait_for};

/// A child process whose stdout and stderr go to a log file; killed (and reaped) when dropped,
/// so a panic or an early return leaves nothing running.
pub struct Process {
    name: String,
    child: Child,
    pub log: PathBuf,
}

impl Process {
    /// Spawns `cmd` (stdin closed) with its output in `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("create log file {}: {e}", log.display()));
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            name: name.to_string(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Fails with the tail of the log if the process has exited.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.try_wait() {
            panic!(
                "{} exited ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.logs(), 30)
            );
        }
    }

    /// Waits for the process to exit on its own.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let what = format!("the {} process to exit", self.name);
        wait_for(&what, timeout, || {
            let status = self.try_wait();
            async move { status }
        })
        .await
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (a graceful stop); does not wait.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {} failed", self.pid());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free port")
}

/// `GET http://127.0.0.1:<port><path>`: (status code, body).
pub async fn http_get(port: u16, path: &str, timeout: Duration) -> reqwest::Result<(u16, String)> {
    let resp = reqwest::Client::builder()
        .timeout(timeout)
        .build()?
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await?;
    let code = resp.status().as_u16();
    Ok((code, resp.text().await?))
}
