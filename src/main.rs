//! The `latch` command line: `serve` (the default), `user add`, and
//! `healthcheck`. Everything else lives in the library.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

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
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Manage accounts on a stopped server's data directory.
    #[command(subcommand)]
    User(UserCommand),
    /// Exit 0 when the server at --url answers /healthz (for container health checks).
    Healthcheck {
        #[arg(
            long,
            env = "LATCH_HEALTHCHECK_URL",
            default_value = "http://127.0.0.1:8000/healthz"
        )]
        url: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        name: String,
        /// Make the user an admin.
        #[arg(long)]
        admin: bool,
        #[arg(long, env = "LATCH_DATA", default_value = "latch-data")]
        data: PathBuf,
    },
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Data directory (holds latch.redb and vault.git); created if missing.
    #[arg(long, env = "LATCH_DATA", default_value = "latch-data")]
    data: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "LATCH_BIND", default_value = "127.0.0.1:8000")]
    bind: SocketAddr,
    /// Largest upload accepted, e.g. 512M or 2G.
    #[arg(long, env = "LATCH_MAX_UPLOAD", default_value = "512M", value_parser = latch::config::parse_size)]
    max_upload: u64,
    /// Mark the session cookie Secure (when users reach Latch over HTTPS).
    #[arg(long, env = "LATCH_SECURE_COOKIES")]
    secure_cookies: bool,
    /// Let people create their own (non-admin) accounts on the sign-in page.
    #[arg(long, env = "LATCH_ALLOW_SIGNUP")]
    allow_signup: bool,
    /// A reverse proxy whose X-Forwarded-* headers are believed (repeatable).
    #[arg(
        long = "trusted-proxy",
        env = "LATCH_TRUSTED_PROXY",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// Creates user `admin` with this password on a first start with no users.
    #[arg(long, env = "LATCH_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("LATCH_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LATCH_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(args),
        Some(Command::User(UserCommand::Add { name, admin, data })) => user_add(&name, admin, data),
        Some(Command::Healthcheck { url }) => healthcheck(&url),
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let listener =
            bind(args.bind).map_err(|e| format!("cannot listen on {}: {e}", args.bind))?;
        latch::serve(listener, config, shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    })
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
    let user = latch::auth::create_user(
        &store,
        latch::auth::NewUser {
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

/// A dependency-free HTTP/1.1 GET, so the container image needs no curl.
fn healthcheck(url: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    let rest = url
        .strip_prefix("http://")
        .ok_or("the health-check URL must start with http://")?;
    let (authority, path) = rest
        .split_once('/')
        .map(|(a, p)| (a, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let timeout = std::time::Duration::from_secs(3);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {authority}"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    let _ = stream.set_read_timeout(Some(timeout));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    if response.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!(
            "unhealthy: {}",
            response.lines().next().unwrap_or("no answer")
        ))
    }
}
