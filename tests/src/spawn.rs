//! The real binaries, started on free ports for end-to-end tests. Their standard output and error go
//! to files the test can read; a process still running when its handle drops is killed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of a workspace binary (`api`, `edge-gateway`) next to the test executable. `deploy/test.sh`
/// builds them before running the tests.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/<test> -> target/debug/<bin>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the binaries first (cargo build --bins)",
        path.display()
    );
    path
}

/// Runs a binary to completion (one-shot commands: `migrate`, `check-config`, `provision-gateway`).
pub fn run(bin: &str, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(bin_path(bin));
    command
        .args(args)
        .env_remove("LABEDGE_API_CONFIG")
        .env_remove("LABEDGE_GATEWAY_CONFIG");
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().expect("run the binary")
}

/// Text of a command's standard output and error.
pub fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A running service process.
#[derive(Debug)]
pub struct Spawned {
    child: Option<Child>,
    name: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Spawned {
    /// Starts `bin` with `args`, logging to files in `dir`.
    pub fn start(bin: &str, args: &[&str], envs: &[(&str, &str)], dir: &Path) -> Self {
        let name = format!("{bin}-{}", uuid::Uuid::new_v4().simple());
        let stdout = dir.join(format!("{name}.out"));
        let stderr = dir.join(format!("{name}.err"));
        let mut command = Command::new(bin_path(bin));
        command
            .args(args)
            .env_remove("LABEDGE_API_CONFIG")
            .env_remove("LABEDGE_GATEWAY_CONFIG")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        for (k, v) in envs {
            command.env(k, v);
        }
        let child = command.spawn().expect("spawn the binary");
        Self {
            child: Some(child),
            name,
            stdout,
            stderr,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    /// Everything the process wrote so far (standard output, then error).
    pub fn output(&self) -> String {
        let out = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        format!("{out}{err}")
    }

    /// The JSON log lines written so far.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.stdout)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Polls the log until a line with this `message` appears; returns it. Panics with the output on
    /// timeout or if the process exits first.
    pub async fn wait_for_message(&mut self, message: &str, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log_lines().into_iter().find(|l| l["message"] == message) {
                return line;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!(
                    "{} exited ({status}) before logging {message:?}:\n{}",
                    self.name,
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not log {message:?} in time:\n{}",
                self.name,
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the "… listening" line and returns the bound address.
    pub async fn listening_addr(&mut self, message: &str) -> std::net::SocketAddr {
        let line = self.wait_for_message(message, Duration::from_secs(30)).await;
        line["addr"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("addr field in the listening line")
    }

    /// Sends a signal (`TERM`, `KILL`, `STOP`, `CONT`).
    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status();
    }

    /// Waits for the process to exit, up to `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take()
            && child.try_wait().ok().flatten().is_none()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
