//! Runtime settings: where data lives, limits and security switches, with
//! the defaults a first start needs.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    /// Holds `latch.redb` and `vault.git`; created on first start.
    pub data_dir: PathBuf,
    /// Largest accepted upload, in bytes.
    pub max_upload: u64,
    /// Mark the session cookie `Secure` (serve over HTTPS, or behind a TLS proxy).
    pub secure_cookies: bool,
    /// Let anyone create a `user` account from the login page.
    pub allow_signup: bool,
    /// Creates `admin` with this password on a first start with no users.
    pub admin_password: Option<String>,
    pub session_idle: Duration,
    pub session_absolute: Duration,
    /// Proxies whose `X-Forwarded-For` / `X-Forwarded-Proto` / `X-Forwarded-Host` are believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// A request head (line and headers) not complete this long after its
    /// first byte closes the connection.
    pub head_timeout: Duration,
    /// A request body with no byte for this long is refused and its
    /// connection closed; nothing it sent is kept.
    pub body_stall: Duration,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// A socket write with no progress for this long fails: the peer
    /// stopped reading.
    pub write_stall: Duration,
    /// How long a file whose lock ended stays reserved for the first in line.
    pub handoff_window: Duration,
    /// A lock older than this is shown as stale (`--stale-after`).
    pub stale_after: Duration,
    /// A lock older than this is released by Latch (`--lock-expiry`); off when `None`.
    pub lock_expiry: Option<Duration>,
    /// How long before its expiry the holder of a lock is warned (24 h;
    /// tests shorten it).
    pub expiry_warning: Duration,
}

impl Config {
    pub const DEFAULT_MAX_UPLOAD: u64 = 512 * 1024 * 1024;

    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            max_upload: Self::DEFAULT_MAX_UPLOAD,
            secure_cookies: false,
            allow_signup: false,
            admin_password: None,
            session_idle: Duration::from_secs(12 * 3600),
            session_absolute: Duration::from_secs(7 * 24 * 3600),
            trusted_proxies: Vec::new(),
            shutdown_grace: Duration::from_secs(10),
            head_timeout: Duration::from_secs(30),
            body_stall: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(120),
            write_stall: crate::live::WRITE_STALL,
            handoff_window: Duration::from_secs(15 * 60),
            stale_after: Duration::from_secs(7 * 24 * 3600),
            lock_expiry: None,
            expiry_warning: Duration::from_secs(24 * 3600),
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("latch.redb")
    }

    pub fn vault_path(&self) -> PathBuf {
        self.data_dir.join("vault.git")
    }

    /// Uploads are spooled here before they become Git objects, so a failed
    /// upload leaves nothing behind in the vault.
    pub fn spool_dir(&self) -> PathBuf {
        self.data_dir.join("spool")
    }
}

/// Parses sizes such as `512M`, `2G`, `1048576`.
pub fn parse_size(raw: &str) -> Result<u64, String> {
    let raw = raw.trim();
    let (digits, unit) = raw
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| raw.split_at(i))
        .unwrap_or((raw, ""));
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("'{raw}' is not a size like 512M"))?;
    let factor: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(format!("'{raw}' has an unknown unit; use K, M or G")),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("'{raw}' is too large"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("512M"), Ok(512 << 20));
        assert_eq!(super::parse_size("10"), Ok(10));
        assert_eq!(super::parse_size("2 GiB"), Ok(2 << 30));
        assert!(super::parse_size("lots").is_err());
    }
}
