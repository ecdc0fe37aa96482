//! The real `latch` binary as a child process, for tests that kill it,
//! signal it or measure it: its own port, its log in a file, health waited for.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{ADMIN_PASSWORD, Client, free_port, login_at};

/// The real binary with no `LATCH_*` setting leaking in from the
/// environment that runs the tests: each test says what it configures.
pub fn latch() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latch"));
    for (key, _) in std::env::vars() {
        if key.starts_with("LATCH_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// `latch serve` as a child process, killed (if still running) on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub base: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The last 40 lines of a log, for failure messages.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

impl Server {
    /// Starts `latch serve --data DATA --bind 127.0.0.1:PORT` (admin
    /// password set, warnings logged to `log`) and waits for /healthz.
    pub async fn start(data: &Path, log: &Path) -> Server {
        Self::start_with(data, log, &[], &[]).await
    }

    /// [`Server::start`] with extra flags and environment variables (which
    /// may override `LATCH_LOG`).
    pub async fn start_with(
        data: &Path,
        log: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Server {
        let mut server = Self::spawn_with(data, log, args, envs);
        server.wait_healthy().await;
        server
    }

    /// Starts the process without waiting for it to serve.
    pub fn spawn(data: &Path, log: &Path) -> Server {
        Self::spawn_with(data, log, &[], &[])
    }

    fn spawn_with(data: &Path, log: &Path, args: &[&str], envs: &[(&str, &str)]) -> Server {
        let port = free_port();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let mut cmd = latch();
        cmd.arg("serve")
            .arg("--data")
            .arg(data)
            .arg("--bind")
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .env("LATCH_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("LATCH_LOG", "warn")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out);
        Server {
            child: cmd.spawn().expect("start latch"),
            port,
            base: format!("http://127.0.0.1:{port}"),
            log: log.to_path_buf(),
        }
    }

    async fn wait_healthy(&mut self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "latch exited ({status}) instead of starting; its log:\n{}",
                    log_tail(&self.log)
                );
            }
            if let Ok(r) = http.get(format!("{}/healthz", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "latch did not become healthy; its log:\n{}",
                log_tail(&self.log)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything the server has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn login(&self, username: &str, password: &str) -> Client {
        login_at(&self.base, username, password).await
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`) the way an operator or Docker would.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// SIGKILL: no shutdown code runs, as in a power cut of the process.
    pub fn kill(&mut self) {
        self.signal("KILL");
        self.child.wait().expect("reap latch");
    }

    /// Waits for the process to exit; panics after `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "latch did not exit within {limit:?}:\n{}",
                    log_tail(&self.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGTERM, as `docker stop` sends, then a clean exit (status 0).
    pub async fn stop(&mut self) {
        self.signal("TERM");
        let status = self.wait_exit(Duration::from_secs(20)).await;
        assert!(
            status.success(),
            "latch exited with {status}:\n{}",
            log_tail(&self.log)
        );
    }

    /// Resident memory in KiB, from /proc: the server's own, not the test's.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}
