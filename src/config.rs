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

/// The longest age either lock setting takes: ten years.
pub const MAX_LOCK_AGE: Duration = Duration::from_secs(3650 * 86_400);

/// Parses a lock's age: `90s`, `30m`, `36h`, `7d` (a bare number is
/// seconds), refused outside `min..=MAX_LOCK_AGE` with a sentence naming
/// `what` and the range.
fn parse_lock_age(raw: &str, min: Duration, what: &str, range: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{raw}' is not a duration like 7d"))?;
    let factor = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{raw}' has an unknown unit; use s, m, h or d")),
    };
    let age = n
        .checked_mul(factor)
        .map(Duration::from_secs)
        .filter(|age| *age >= min && *age <= MAX_LOCK_AGE);
    age.ok_or_else(|| format!("'{raw}' is not {what}: give one from {range} to 3650d"))
}

/// `--stale-after`: from a minute (shorter would call every lock stale) to ten years.
pub fn parse_stale_after(raw: &str) -> Result<Duration, String> {
    parse_lock_age(raw, Duration::from_secs(60), "a stale-lock age", "1m")
}

/// `--lock-expiry`: from an hour (a lock must outlive a lunch break) to ten years.
pub fn parse_lock_expiry(raw: &str) -> Result<Duration, String> {
    parse_lock_age(raw, Duration::from_secs(3600), "a lock expiry", "1h")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{MAX_LOCK_AGE, parse_lock_expiry, parse_stale_after};

    #[test]
    fn lock_ages_are_a_minute_or_an_hour_to_ten_years() {
        assert_eq!(parse_stale_after("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_stale_after("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_stale_after("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_lock_expiry("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_lock_expiry("3650d"), Ok(MAX_LOCK_AGE));
        for refused in [
            "59s",
            "3651d",
            "d",
            "7 days",
            "-1d",
            "99999999999999999d",
            "",
            "1w",
        ] {
            assert!(parse_stale_after(refused).is_err(), "{refused}");
        }
        for refused in ["59m", "3651d", "off"] {
            assert!(parse_lock_expiry(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("512M"), Ok(512 << 20));
        assert_eq!(super::parse_size("10"), Ok(10));
        assert_eq!(super::parse_size("2 GiB"), Ok(2 << 30));
        assert!(super::parse_size("lots").is_err());
    }
}
