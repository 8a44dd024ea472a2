//! The processes the benchmark starts (the API, gateways, nginx, pouchdb-server): their output goes
//! to files in the work folder, they are stopped by pid when done, and killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running service process.
#[derive(Debug)]
pub struct Proc {
    /// A name for messages.
    pub name: String,
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Proc {
    /// Starts `program` with `args` and `envs`, in `cwd`, logging to `<dir>/<name>.out|.err`.
    pub fn start(
        name: &str,
        program: &Path,
        args: &[&str],
        envs: &[(String, String)],
        dir: &Path,
        cwd: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let stdout = dir.join(format!("{name}.out"));
        let stderr = dir.join(format!("{name}.err"));
        let mut command = Command::new(program);
        command
            .args(args)
            .env_remove("LABEDGE_API_CONFIG")
            .env_remove("LABEDGE_GATEWAY_CONFIG")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).context("stdout file")?)
            .stderr(std::fs::File::create(&stderr).context("stderr file")?);
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        for (k, v) in envs {
            command.env(k, v);
        }
        let child = command
            .spawn()
            .with_context(|| format!("start {}", program.display()))?;
        Ok(Self {
            name: name.to_owned(),
            child: Some(child),
            stdout,
            stderr,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    /// The last lines of its output, for error messages.
    pub fn tail(&self) -> String {
        let text = format!(
            "{}{}",
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        );
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Its JSON log lines so far.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.stdout)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Waits for a log line whose `message` is `message`; fails on timeout or exit.
    pub async fn wait_message(&mut self, message: &str, timeout: Duration) -> anyhow::Result<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log_lines().into_iter().find(|l| l["message"] == message) {
                return Ok(line);
            }
            if self.exited() {
                bail!("{} exited before logging {message:?}:\n{}", self.name, self.tail());
            }
            if Instant::now() > deadline {
                bail!("{} did not log {message:?} in {timeout:?}:\n{}", self.name, self.tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Resets the kernel's peak-RSS mark (`VmHWM`) to the current RSS.
    pub fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }

    /// Peak resident memory since start or the last [`Proc::reset_peak`], in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }

    /// Sends `signal` (`TERM`, `QUIT`, `KILL`) to this process only.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid();
        if pid != 0 {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Asks it to stop (`signal`), waits up to `grace`, then kills it.
    pub async fn stop_with(&mut self, signal: &str, grace: Duration) {
        if self.exited() {
            self.child = None;
            return;
        }
        self.signal(signal);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exited() {
                self.child = None;
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub async fn stop(&mut self) {
        self.stop_with("TERM", Duration::from_secs(10)).await;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take()
            && child.try_wait().ok().flatten().is_none()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until `url` answers 2xx (at most `timeout`).
pub async fn wait_http(client: &reqwest::Client, url: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if client.get(url).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{url} did not answer in {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
