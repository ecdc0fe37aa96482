//! The real `latch` binary as a child process, for tests that kill it or
//! measure it: its own port, its log in a file, health waited for.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_PASSWORD: &str = "admin-password-1";

pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now: bind port 0, read it, let it go.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

impl Server {
    /// Starts `latch --data DATA --bind 127.0.0.1:PORT` and waits for /healthz.
    pub async fn start(data: &Path, log: &Path) -> Server {
        let mut server = Self::spawn(data, log);
        server.wait_healthy(log).await;
        server
    }

    /// Starts the process without waiting for it to serve.
    pub fn spawn(data: &Path, log: &Path) -> Server {
        let port = free_port();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_latch"))
            .arg("--data")
            .arg(data)
            .arg("--bind")
            .arg(format!("127.0.0.1:{port}"))
            .env("LATCH_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("LATCH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("start latch");
        Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn wait_healthy(&mut self, log: &Path) {
        let server = self;
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "latch exited ({status}) instead of starting; its log:\n{}",
                    log_tail(log)
                );
            }
            if let Ok(r) = http.get(format!("{}/healthz", server.base)).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "latch did not become healthy; its log:\n{}",
                log_tail(log)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no shutdown code runs, as in a power cut of the process.
    pub fn kill(&mut self) {
        let status = Command::new("kill")
            .arg("-KILL")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -KILL failed");
        self.child.wait().expect("reap latch");
    }

    /// Resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}
