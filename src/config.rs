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
    /// Mail for notifications (`--smtp-url` with `--mail-from`); none: no mail.
    pub mail: Option<MailConfig>,
    /// Where people reach Latch (`--public-url`, e.g. `https://latch.example.com`),
    /// without a trailing `/`: for links in mail.
    pub public_url: Option<String>,
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
            mail: None,
            public_url: None,
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

/// How mail leaves: the SMTP server, the sender, and how often a failed
/// send is tried again.
#[derive(Debug, Clone)]
pub struct MailConfig {
    pub smtp: SmtpUrl,
    pub from: lettre::message::Mailbox,
    /// The wait after each failed attempt, in order; when they run out the
    /// mail is given up (and logged).
    pub retry: Vec<Duration>,
}

impl MailConfig {
    /// 30 s, 2 min, 10 min, 30 min, 1 h, 2 h: a server down for an
    /// afternoon still delivers; one down for a day does not fill the outbox.
    pub fn default_retry() -> Vec<Duration> {
        [30, 120, 600, 1800, 3600, 7200]
            .map(Duration::from_secs)
            .to_vec()
    }

    /// Checks `--smtp-url` and `--mail-from` together: both or neither.
    /// Errors never repeat the URL (it may hold a password).
    pub fn from_flags(
        smtp_url: Option<&str>,
        mail_from: Option<&str>,
    ) -> Result<Option<MailConfig>, String> {
        fn present(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|v| !v.is_empty())
        }
        match (present(smtp_url), present(mail_from)) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(
                "--smtp-url needs --mail-from (LATCH_MAIL_FROM): the address mail is sent from, e.g. \"Latch <latch@example.com>\""
                    .into(),
            ),
            (None, Some(_)) => Err(
                "--mail-from needs --smtp-url (LATCH_SMTP_URL): the server that sends the mail, e.g. smtps://user:pass@mail.example.com"
                    .into(),
            ),
            (Some(url), Some(from)) => Ok(Some(MailConfig {
                smtp: SmtpUrl::parse(url)?,
                from: parse_mail_from(from)?,
                retry: Self::default_retry(),
            })),
        }
    }
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtps://`: TLS from the first byte (port 465 by default).
    Implicit,
    /// `smtp://`: STARTTLS when the server offers it, plain otherwise; with
    /// credentials in the URL, STARTTLS is required, so a password never
    /// crosses the network in the clear (port 25 by default).
    StartTls,
}

/// `--smtp-url`: `smtp://[user:pass@]host[:port]` or `smtps://…`. Its
/// `Debug` and `Display` never show the password.
#[derive(Clone)]
pub struct SmtpUrl {
    pub tls: SmtpTls,
    pub host: String,
    pub port: u16,
    /// User and password, percent-decoded.
    pub credentials: Option<(String, String)>,
}

impl SmtpUrl {
    pub fn parse(raw: &str) -> Result<SmtpUrl, String> {
        const LIKE: &str = "like smtp://host:25 or smtps://user:pass@mail.example.com:465";
        // url's errors name the fault, never the text: safe to show.
        let url = url::Url::parse(raw.trim())
            .map_err(|e| format!("--smtp-url is not a URL ({e}); give one {LIKE}"))?;
        let tls = match url.scheme() {
            "smtp" => SmtpTls::StartTls,
            "smtps" => SmtpTls::Implicit,
            other => {
                return Err(format!(
                    "--smtp-url must start with smtp:// or smtps://, not {other}://"
                ));
            }
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            _ => return Err(format!("--smtp-url has no host; give one {LIKE}")),
        };
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "--smtp-url takes no path, query or fragment; give one {LIKE}"
            ));
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| {
                    "--smtp-url: the user or password is not UTF-8 once decoded".to_string()
                })
        };
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            ("", Some(_)) => return Err("--smtp-url has a password but no user".into()),
            (user, Some(pass)) => Some((decode(user)?, decode(pass)?)),
            (_, None) => {
                return Err(
                    "--smtp-url has a user but no password; give both (smtp://user:pass@host), percent-encoding any @ : / in them"
                        .into(),
                );
            }
        };
        let port = url.port().unwrap_or(match tls {
            SmtpTls::Implicit => 465,
            SmtpTls::StartTls => 25,
        });
        Ok(SmtpUrl {
            tls,
            host,
            port,
            credentials,
        })
    }
}

impl std::fmt::Display for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.tls {
            SmtpTls::Implicit => "smtps",
            SmtpTls::StartTls => "smtp",
        };
        let user = match &self.credentials {
            Some((user, _)) => format!("{user}:***@"),
            None => String::new(),
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{scheme}://{user}{host}:{}", self.port)
    }
}

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SmtpUrl({self})")
    }
}

/// `--mail-from`: an address, optionally with a name (`Latch <latch@example.com>`).
pub fn parse_mail_from(raw: &str) -> Result<lettre::message::Mailbox, String> {
    let raw = raw.trim();
    if raw.chars().any(char::is_control) {
        return Err("--mail-from must be one line".into());
    }
    raw.parse().map_err(|_| {
        format!(
            "--mail-from '{raw}' is not an address like latch@example.com or \"Latch <latch@example.com>\""
        )
    })
}

/// `--public-url`: where people reach Latch, `http(s)://host[:port][/path]`;
/// returned without a trailing `/`.
pub fn parse_public_url(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| {
        format!("--public-url is not a URL ({e}); give one like https://latch.example.com")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("--public-url must be an http:// or https:// address with a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("--public-url must not carry a user or password".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("--public-url takes no query or fragment".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
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

    #[test]
    fn smtp_urls_parse_and_never_show_the_password() {
        let url = super::SmtpUrl::parse("smtps://me%40x.org:s3cr%3At@mail.example.com").unwrap();
        assert_eq!(url.tls, super::SmtpTls::Implicit);
        assert_eq!((url.host.as_str(), url.port), ("mail.example.com", 465));
        assert_eq!(
            url.credentials,
            Some(("me@x.org".to_string(), "s3cr:t".to_string()))
        );
        for shown in [url.to_string(), format!("{url:?}")] {
            assert!(!shown.contains("s3cr"), "{shown}");
        }
        let plain = super::SmtpUrl::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!(plain.tls, super::SmtpTls::StartTls);
        assert_eq!(plain.port, 2525);
        assert!(plain.credentials.is_none());
        for bad in [
            "http://mail.example.com",
            "smtp://user@mail.example.com",
            "smtp://:s3cret@mail.example.com",
            "smtp://mail.example.com/inbox",
            "smtp://mail.example.com?tls=none",
            "mail.example.com",
        ] {
            let err = super::SmtpUrl::parse(bad).expect_err(bad);
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn mail_flags_come_both_or_neither() {
        use super::MailConfig;
        assert!(MailConfig::from_flags(None, None).unwrap().is_none());
        let err = MailConfig::from_flags(Some("smtp://u:s3cret@h"), None).unwrap_err();
        assert!(
            err.contains("--mail-from") && !err.contains("s3cret"),
            "{err}"
        );
        assert!(MailConfig::from_flags(None, Some("latch@example.com")).is_err());
        let both = MailConfig::from_flags(Some("smtp://h:25"), Some("Latch <latch@example.com>"))
            .unwrap()
            .unwrap();
        assert_eq!(both.from.email.to_string(), "latch@example.com");
        assert!(MailConfig::from_flags(Some("smtp://h"), Some("not an address")).is_err());
    }

    #[test]
    fn public_urls_lose_their_trailing_slash() {
        assert_eq!(
            super::parse_public_url("https://latch.example.com/").unwrap(),
            "https://latch.example.com"
        );
        assert!(super::parse_public_url("ftp://x").is_err());
        assert!(super::parse_public_url("https://u:p@x").is_err());
    }
}
