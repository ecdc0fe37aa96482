//! The `latch` command line: `serve` (the default), `user add`, `backup`
//! and `healthcheck`. Everything else lives in the library.

use std::io::{BufRead, IsTerminal};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use futures_util::FutureExt;

use latch::Config;

#[derive(Parser)]
#[command(
    name = "latch",
    version,
    about = "Live check-out / check-in for files that cannot be merged, kept in Git.",
    long_about = "Latch keeps files in a bare Git repository and who-holds-what in an embedded database, \
                  and shows every open browser each change the moment it happens.\n\n\
                  With no command, `latch` runs `latch serve` on ./latch-data at http://127.0.0.1:8000."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
    /// Log lines for people, or one JSON object per line for a log collector.
    #[arg(
        long,
        global = true,
        env = "LATCH_LOG_FORMAT",
        value_name = "FORMAT",
        value_enum,
        ignore_case = true,
        default_value_t = LogFormat::Human
    )]
    log_format: LogFormat,
    /// Which logs to keep, e.g. `info`, `debug`, `latch=debug,poem=warn` (RUST_LOG also works) [default: info].
    #[arg(long = "log", global = true, env = "LATCH_LOG", value_name = "FILTER")]
    log_filter: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(Box<ServeArgs>),
    /// Manage accounts on a stopped server's data directory.
    #[command(subcommand)]
    User(UserCommand),
    /// Copy the data directory consistently into DIR, even while the server runs.
    #[command(
        long_about = "Copy the data directory (database and Git vault) consistently into DIR, \
                  a new or empty directory.\n\n\
                  With the server stopped, the copy is made directly from --data. While a server \
                  holds the data directory, that server makes the copy: pass an admin's API token \
                  (--token) and, unless it listens on --bind, its --url. DIR is then a path on \
                  the server's machine (inside the container, under Docker).\n\n\
                  To restore, stop Latch and start it with --data DIR (or move DIR into place)."
    )]
    Backup(BackupArgs),
    /// Exit 0 when the server answers /healthz (for container health checks).
    Healthcheck {
        /// The URL to check [default: /healthz at the --bind address, on loopback].
        #[arg(long, env = "LATCH_HEALTHCHECK_URL")]
        url: Option<String>,
        /// The address the server listens on.
        #[arg(
            long,
            env = "LATCH_BIND",
            default_value = "127.0.0.1:8000",
            value_name = "ADDR"
        )]
        bind: SocketAddr,
    },
}

#[derive(Args)]
struct BackupArgs {
    /// Where to write the copy: a new or empty directory.
    dir: PathBuf,
    /// Data directory of a stopped server.
    #[arg(
        long,
        env = "LATCH_DATA",
        default_value = "latch-data",
        value_name = "DIR"
    )]
    data: PathBuf,
    /// Base URL of the running server that should make the copy [default: from --bind].
    #[arg(long, env = "LATCH_URL")]
    url: Option<String>,
    /// An admin's API token, for a running server.
    #[arg(long, env = "LATCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The address the running server listens on.
    #[arg(
        long,
        env = "LATCH_BIND",
        default_value = "127.0.0.1:8000",
        value_name = "ADDR"
    )]
    bind: SocketAddr,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        name: String,
        /// Make the user an admin.
        #[arg(long)]
        admin: bool,
        /// Data directory of the stopped server.
        #[arg(
            long,
            env = "LATCH_DATA",
            default_value = "latch-data",
            value_name = "DIR"
        )]
        data: PathBuf,
    },
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Data directory (holds latch.redb and vault.git); created if missing.
    #[arg(
        long,
        env = "LATCH_DATA",
        default_value = "latch-data",
        value_name = "DIR"
    )]
    data: PathBuf,
    /// Address to listen on.
    #[arg(
        long,
        env = "LATCH_BIND",
        default_value = "127.0.0.1:8000",
        value_name = "ADDR"
    )]
    bind: SocketAddr,
    /// Largest upload accepted, e.g. 512M or 2G.
    #[arg(long, env = "LATCH_MAX_UPLOAD", default_value = "512M", value_name = "SIZE", value_parser = latch::config::parse_size)]
    max_upload: u64,
    /// Mark the session cookie Secure (when users reach Latch over HTTPS).
    #[arg(long, env = "LATCH_SECURE_COOKIES")]
    secure_cookies: bool,
    /// Let people create their own (non-admin) accounts on the sign-in page.
    #[arg(long, env = "LATCH_ALLOW_SIGNUP")]
    allow_signup: bool,
    /// A reverse proxy whose X-Forwarded-* headers are believed (repeatable, or comma-separated).
    #[arg(
        long = "trusted-proxy",
        env = "LATCH_TRUSTED_PROXY",
        value_delimiter = ',',
        value_name = "IP"
    )]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// Creates user `admin` with this password on a first start with no users.
    #[arg(
        long,
        env = "LATCH_ADMIN_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    admin_password: Option<String>,
    /// Also serve /metrics here, without authentication (on the main address it is admin-only).
    #[arg(long, env = "LATCH_METRICS_BIND", value_name = "ADDR")]
    metrics_bind: Option<SocketAddr>,
    /// On SIGTERM or Ctrl-C, how long requests in flight may take to finish, e.g. 10s.
    #[arg(long, env = "LATCH_SHUTDOWN_GRACE", default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// How long a client may take to send a request's head (line and headers) before its connection is closed.
    #[arg(long, env = "LATCH_HEAD_TIMEOUT", default_value = "30s", value_name = "DURATION", value_parser = parse_duration)]
    head_timeout: Duration,
    /// A request body with no byte for this long is refused (408) and nothing of it kept.
    #[arg(long, env = "LATCH_BODY_STALL", default_value = "60s", value_name = "DURATION", value_parser = parse_duration)]
    body_stall: Duration,
    /// A keep-alive connection with no request for this long is closed.
    #[arg(long, env = "LATCH_IDLE_TIMEOUT", default_value = "2m", value_name = "DURATION", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// When a check-out ends and people wait in line, how long the file stays reserved for the first of them.
    #[arg(long, env = "LATCH_HANDOFF_WINDOW", default_value = "15m", value_name = "DURATION", value_parser = parse_handoff_window)]
    handoff_window: Duration,
    /// A check-out older than this is marked stale (a badge, a filter, `lock.stale`), e.g. 7d or 36h; 1m to 3650d.
    #[arg(long, env = "LATCH_STALE_AFTER", default_value = "7d", value_name = "DURATION", value_parser = latch::config::parse_stale_after)]
    stale_after: Duration,
    /// Release a check-out this old, after telling its holder 24 h before, e.g. 30d (the hand-off then applies); 1h to 3650d. Off unless given.
    #[arg(long, env = "LATCH_LOCK_EXPIRY", value_name = "DURATION", value_parser = latch::config::parse_lock_expiry)]
    lock_expiry: Option<Duration>,
    /// Send notifications by mail through this server: smtp://[user:pass@]host[:port] (STARTTLS when offered, required with a password; port 25) or smtps://… (TLS; port 465). Needs --mail-from.
    #[arg(
        long,
        env = "LATCH_SMTP_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    smtp_url: Option<String>,
    /// The sender of notification mail, e.g. "Latch <latch@example.com>". Needs --smtp-url.
    #[arg(long, env = "LATCH_MAIL_FROM", value_name = "ADDRESS")]
    mail_from: Option<String>,
    /// Where people reach Latch, e.g. https://latch.example.com: for links in mail.
    #[arg(long, env = "LATCH_PUBLIC_URL", value_name = "URL", value_parser = latch::config::parse_public_url)]
    public_url: Option<String>,
}

/// Parses `10`, `10s`, `500ms`, `2m` or `1h`.
fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{raw}' is not a duration like 10s"))?;
    let too_long = || format!("'{raw}' is longer than any sensible duration");
    match unit.trim() {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => n
            .checked_mul(60)
            .map(Duration::from_secs)
            .ok_or_else(too_long),
        "h" => n
            .checked_mul(3600)
            .map(Duration::from_secs)
            .ok_or_else(too_long),
        _ => Err(format!("'{raw}' has an unknown unit; use ms, s, m or h")),
    }
}

/// A hand-off window: at least a second (a shorter one would pass a file
/// down the whole line at once) and at most 30 days.
fn parse_handoff_window(raw: &str) -> Result<Duration, String> {
    let window = parse_duration(raw)?;
    if window < Duration::from_secs(1) || window > Duration::from_secs(30 * 24 * 3600) {
        return Err(format!(
            "'{raw}' is not a hand-off window: give one from 1s to 720h"
        ));
    }
    Ok(window)
}

fn init_logging(format: LogFormat, filter: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match filter {
        Some(f) => EnvFilter::try_new(f).map_err(|e| {
            eprintln!("latch: ignoring the log filter '{f}' ({e}); logging at info");
        }),
        None => EnvFilter::try_from_default_env().map_err(|_| ()),
    }
    .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match format {
        LogFormat::Json => builder.json().init(),
        // Colours only on a terminal: `docker logs` and journald show codes raw.
        LogFormat::Human => builder.with_ansi(std::io::stdout().is_terminal()).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.log_filter.as_deref());
    let result = match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(*args),
        Some(Command::User(UserCommand::Add { name, admin, data })) => user_add(&name, admin, data),
        Some(Command::Backup(args)) => backup(args),
        Some(Command::Healthcheck { url, bind }) => {
            healthcheck(&url.unwrap_or_else(|| format!("{}/healthz", loopback_url(bind))))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("latch: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let mut config = Config::new(args.data);
    config.max_upload = args.max_upload;
    config.secure_cookies = args.secure_cookies;
    config.allow_signup = args.allow_signup;
    config.trusted_proxies = args.trusted_proxies;
    config.admin_password = args.admin_password.filter(|p| !p.is_empty());
    config.shutdown_grace = args.shutdown_grace;
    config.head_timeout = args.head_timeout;
    config.body_stall = args.body_stall;
    config.idle_timeout = args.idle_timeout;
    config.handoff_window = args.handoff_window;
    config.stale_after = args.stale_after;
    config.lock_expiry = args.lock_expiry;
    // Parsed here, not by clap: clap's errors repeat the value, and the
    // URL may hold a password.
    config.mail =
        latch::config::MailConfig::from_flags(args.smtp_url.as_deref(), args.mail_from.as_deref())?;
    config.public_url = args.public_url;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let result = runtime.block_on(async move {
        let listener =
            bind(args.bind).map_err(|e| format!("cannot listen on {}: {e}", args.bind))?;
        let metrics_listener = match args.metrics_bind {
            Some(addr) => {
                Some(bind(addr).map_err(|e| format!("cannot listen on {addr} for metrics: {e}"))?)
            }
            None => None,
        };
        let app = latch::open_async(config).await.map_err(|e| e.to_string())?;
        let shutdown = shutdown_signal().shared();
        let metrics = metrics_listener.map(|l| {
            if let Ok(addr) = l.local_addr() {
                tracing::info!("metrics at http://{addr}/metrics (no authentication)");
            }
            let limits = latch::http::serve::Limits::of(&app.config);
            tokio::spawn(latch::http::metrics::serve(
                l,
                app.hub.clone(),
                limits,
                shutdown.clone(),
            ))
        });
        let result = latch::run(listener, app, shutdown).await;
        if let Some(task) = metrics {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        result.map_err(|e| e.to_string())
    });
    // Dropping the runtime ends the tasks still holding the database, so
    // it is closed before the process exits.
    drop(runtime);
    if result.is_ok() {
        tracing::info!("Latch stopped");
    }
    result
}

/// Binds with a deep accept backlog: after a restart every open browser
/// reconnects at once, and the default of 128 would drop some of them.
fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn user_add(name: &str, admin: bool, data: PathBuf) -> Result<(), String> {
    let username = latch::domain::Username::parse(name).map_err(|e| e.0)?;
    if std::io::stdin().is_terminal() {
        eprint!("Password for {username}: ");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    let password =
        latch::domain::Password::parse(line.trim_end_matches(['\r', '\n'])).map_err(|e| e.0)?;
    std::fs::create_dir_all(&data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    let config = Config::new(&data);
    let store = latch::store::Store::open(&config.db_path()).map_err(|e| match e {
        latch::store::OpenError::InUse => format!(
            "{} is in use by a running Latch server; stop it first, or add the user on the Users page.",
            config.db_path().display()
        ),
        other => other.to_string(),
    })?;
    let role = if admin {
        latch::domain::Role::Admin
    } else {
        latch::domain::Role::User
    };
    let user = latch::accounts::add_user_offline(
        &store,
        latch::accounts::NewUser {
            username,
            password,
            role,
            display_name: None,
        },
    )
    .map_err(|e| e.public_message())?;
    println!("Added {} ({}).", user.username, user.role.as_str());
    Ok(())
}

/// `http://host:port` reaching a server that listens on `bind` from this
/// machine: an unspecified address (`0.0.0.0`, `::`) becomes loopback.
fn loopback_url(bind: SocketAddr) -> String {
    let ip = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, bind.port()))
}

fn healthcheck(url: &str) -> Result<(), String> {
    let response = http("GET", url, &[], None, Some(Duration::from_secs(3)))?;
    if response.status == 200 {
        Ok(())
    } else {
        Err(format!("unhealthy: {url} answered {}", response.status))
    }
}

fn backup(args: BackupArgs) -> Result<(), String> {
    let dir = std::path::absolute(&args.dir)
        .map_err(|e| format!("cannot use {}: {e}", args.dir.display()))?;
    let url = match args.url {
        Some(url) => url,
        None => {
            let config = Config::new(&args.data);
            if !config.db_path().exists() {
                return Err(format!(
                    "{} holds no Latch data; pass --data (or --url and --token for a running server)",
                    args.data.display()
                ));
            }
            match latch::store::Store::open_to_copy(&config.db_path()) {
                Ok(store) => {
                    let report =
                        latch::backup::write(&store, &config.data_dir, &config.vault_path(), &dir)
                            .map_err(|e| e.public_message())?;
                    println!(
                        "Backup written to {}: {} files, {} users, {} Git objects ({}), events up to #{}.",
                        dir.display(),
                        report.files,
                        report.users,
                        report.objects,
                        latch::domain::human_size(report.bytes),
                        report.last_seq
                    );
                    return Ok(());
                }
                Err(latch::store::OpenError::InUse) => loopback_url(args.bind),
                Err(other) => return Err(other.to_string()),
            }
        }
    };
    let token = args.token.ok_or_else(|| {
        format!(
            "a running server holds the data; pass --token (an admin's API token) so the server at {url} makes the backup"
        )
    })?;
    let endpoint = format!("{}/api/admin/backup", url.trim_end_matches('/'));
    let body = serde_json::json!({ "dir": dir.to_string_lossy() }).to_string();
    let auth = format!("Bearer {token}");
    let response = http(
        "POST",
        &endpoint,
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        Some(&body),
        None,
    )?;
    let json: serde_json::Value = serde_json::from_str(&response.body).unwrap_or_default();
    if response.status != 200 {
        let sentence = json["error"].as_str().unwrap_or(response.body.trim());
        return Err(format!(
            "the server refused ({}): {sentence}",
            response.status
        ));
    }
    println!(
        "Backup written by the server to {}: {} files, {} users, {} Git objects ({}), events up to #{}.",
        json["dir"].as_str().unwrap_or_default(),
        json["files"],
        json["users"],
        json["objects"],
        latch::domain::human_size(json["bytes"].as_u64().unwrap_or(0)),
        json["last_seq"]
    );
    Ok(())
}

struct HttpResponse {
    status: u16,
    body: String,
}

/// A dependency-free HTTP/1.1 client for `http://` URLs, so the container
/// image needs no curl. `timeout` bounds connecting and each read.
fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    timeout: Option<Duration>,
) -> Result<HttpResponse, String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("{url}: only http:// URLs are supported (e.g. http://127.0.0.1:8000)")
    })?;
    let (authority, path) = rest
        .split_once('/')
        .map(|(a, p)| (a, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {authority}"))?;
    let connect = timeout.unwrap_or(Duration::from_secs(10));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, connect)
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    let _ = stream.set_read_timeout(timeout);
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or(""));
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("cannot talk to {authority}: {e}"))?;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP answer from {authority}"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .replace(' ', "")
            .starts_with("transfer-encoding:chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(HttpResponse { status, body })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
        else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_that_would_overflow_are_refused_with_a_sentence() {
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("999999999999999999m").is_err());
        assert!(parse_duration("9999999999999999h").is_err());
        assert!(parse_duration("10d").is_err());
    }

    #[test]
    fn a_handoff_window_is_a_second_to_thirty_days() {
        assert_eq!(parse_handoff_window("15m"), Ok(Duration::from_secs(900)));
        for refused in ["0", "500ms", "721h", "18446744073709551615s"] {
            assert!(parse_handoff_window(refused).is_err(), "{refused}");
        }
    }
}
