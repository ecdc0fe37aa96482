//! A real SMTP server for the mail tests: Debian's `python3-aiosmtpd`
//! with its Maildir handler, on a port the test chooses, so it can be
//! stopped and started again where the app expects it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{require_all, stop_process_group};

pub const PACKAGE: &str = "python3-aiosmtpd";

/// A Python that has aiosmtpd, or `None` (the test skips, naming the
/// package; under LATCH_REQUIRE_ALL=1 it fails).
pub fn python() -> Option<String> {
    // pyenv and the like shadow Debian's python3, which has the package.
    for candidate in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(candidate)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(candidate.to_string());
        }
    }
    if require_all() {
        panic!(
            "aiosmtpd is required (LATCH_REQUIRE_ALL=1): install the Debian package '{PACKAGE}'"
        );
    }
    eprintln!(
        "SKIPPED: no Python with aiosmtpd; install the Debian package '{PACKAGE}' to run this test"
    );
    None
}

/// An SMTP server writing each message it accepts into a Maildir.
pub struct SmtpSink {
    pub port: u16,
    python: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl SmtpSink {
    /// Starts a sink on a free port.
    pub async fn start(python: &str) -> SmtpSink {
        let mut sink = SmtpSink::stopped(python);
        sink.up().await;
        sink
    }

    /// A sink whose port is chosen but which does not listen yet.
    pub fn stopped(python: &str) -> SmtpSink {
        SmtpSink {
            port: super::free_port(),
            python: python.to_string(),
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("maildir")
    }

    /// Starts listening (again) and waits until it accepts connections.
    pub async fn up(&mut self) {
        use std::os::unix::process::CommandExt;
        let child = Command::new(&self.python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(self.maildir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start aiosmtpd");
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        super::wait_until("the SMTP sink to listen", || {
            let addr = addr.clone();
            async move { tokio::net::TcpStream::connect(addr).await.is_ok() }
        })
        .await;
    }

    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_process_group(&mut child);
        }
    }

    /// Every message received so far, as text (headers and body).
    pub fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir().join("new")) else {
            return Vec::new();
        };
        let mut out: Vec<(std::time::SystemTime, String)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let when = e.metadata().and_then(|m| m.modified()).ok()?;
                Some((when, std::fs::read_to_string(e.path()).ok()?))
            })
            .collect();
        out.sort();
        out.into_iter().map(|(_, m)| m).collect()
    }

    /// The messages to `address`.
    pub fn to(&self, address: &str) -> Vec<String> {
        let line = format!("To: {address}");
        self.messages()
            .into_iter()
            .filter(|m| m.lines().any(|l| l.trim_end() == line))
            .collect()
    }

    /// Waits (up to the harness's 30 s) until `address` has `count` messages.
    pub async fn wait_for(&self, address: &str, count: usize) -> Vec<String> {
        super::wait_until(&format!("{count} mail(s) to {address}"), || async {
            self.to(address).len() >= count
        })
        .await;
        self.to(address)
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.down();
    }
}

/// A generous pause for "nothing more arrives" checks (not a time limit).
pub const QUIET: Duration = Duration::from_millis(500);
