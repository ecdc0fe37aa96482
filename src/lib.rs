//! Latch: live check-out / check-in for files that cannot be merged, kept
//! in a bare Git repository, with every browser updated the moment anything
//! changes.
//!
//! # Layout
//! The core knows nothing of HTTP (a test holds it to that; see
//! `docs/architecture.md`):
//! - [`config`] — settings and defaults.
//! - [`domain`] — validated values from outside (paths, names, revisions…).
//! - [`error`] — the one error type: a class of outcome and a sentence.
//! - [`secret`] — random tokens, their hashes, constant-time comparison.
//! - [`store`] — redb tables, records, the event log and its ordering.
//! - [`schema`] — the database's schema version and its migrations.
//! - [`vault`] — the Git repository: blobs, commits, history.
//! - [`files`] — the operations and their rules; Git/redb reconciliation.
//! - [`accounts`] — users, passwords, sessions, tokens, throttling.
//! - [`inbox`] — each person's notifications and what they watch.
//! - [`mail`] — which notifications go by mail, the outbox, the mailer.
//! - [`live`] — the hub: each event rendered once per viewer class, fanned out.
//! - [`metrics`] — the counters, in the Prometheus text format.
//! - [`presence`] — who is online and what they view; in memory only.
//! - [`backup`] — a consistent copy of the data directory, taken while serving.
//!
//! [`http`] is everything poem and maud: routes, guards, templates, the
//! accept loop. This file wires the two: [`open`] makes the services,
//! [`serve()`] starts them on a listener the caller bound, so tests start
//! the real server on `127.0.0.1:0` exactly as `main` does.

pub mod accounts;
pub mod backup;
pub mod config;
pub mod domain;
pub mod error;
pub mod files;
pub mod http;
pub mod inbox;
pub mod live;
pub mod mail;
pub mod metrics;
pub mod presence;
pub mod schema;
pub mod secret;
pub mod store;
pub mod vault;

use std::sync::Arc;

pub use config::Config;
use error::AppError;

/// The services, made once at start; cheap to clone.
#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub store: store::Store,
    pub files: files::Files,
    pub accounts: accounts::Accounts,
    pub hub: live::Hub,
    /// Wakes the mailer when a write queues mail; `None`: no mail.
    pub mail_wake: Option<Arc<tokio::sync::Notify>>,
}

/// Why the server could not start, said plainly.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

impl From<AppError> for StartError {
    fn from(e: AppError) -> Self {
        StartError(e.to_string())
    }
}

impl From<std::io::Error> for StartError {
    fn from(e: std::io::Error) -> Self {
        StartError(e.to_string())
    }
}

/// Opens the data directory: database, repository, reconciliation, first user.
pub fn open(config: Config) -> Result<App, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        StartError(format!(
            "cannot create the data directory {}: {e}",
            config.data_dir.display()
        ))
    })?;
    let store = store::Store::open(&config.db_path()).map_err(|e| StartError(e.to_string()))?;
    // Before anything below writes a notification (a reservation passed on
    // at start owes its mail too).
    let mail_wake = config.mail.as_ref().map(|_| store.send_mail());
    let vault = vault::Vault::open_or_init(&config.vault_path())?;
    // The database is open, so no other Latch process holds this vault.
    vault.clear_stale_locks()?;
    let files = files::Files::new(
        store.clone(),
        vault,
        config.spool_dir(),
        config.max_upload,
        config.handoff_window,
        files::LockAging::of(&config),
    )?;
    // Filled by `Accounts::open` below, before anything is served.
    let names = accounts::Names::default();
    let hub = live::Hub::start(
        store.clone(),
        Arc::new(http::views::Fragments {
            stale_after: config.stale_after,
            cards: http::views::Cards {
                names: names.clone(),
                max_upload: config.max_upload,
            },
        }),
    )?;
    let applied = files.reconcile()?;
    let (orphans, dropped) = files.reconcile_drafts()?;
    if orphans + dropped > 0 {
        tracing::warn!(
            orphans,
            dropped,
            "removed draft files no record named, and records of drafts whose file was gone"
        );
    }
    if applied > 0 {
        tracing::warn!(
            applied,
            "applied Git commits that the database had not recorded (after a crash)"
        );
    }
    // Reservations whose window ran out while the server was down.
    let passed = files.pass_lapsed()?;
    if passed > 0 {
        tracing::info!(passed, "passed on reservations whose window ran out");
    }
    // Locks whose expiry fell due while the server was down.
    let expired = files.expire_due()?;
    if expired > 0 {
        tracing::info!(expired, "released locks past --lock-expiry");
    }
    let policy = accounts::SessionPolicy {
        idle: config.session_idle,
        absolute: config.session_absolute,
    };
    let accounts = accounts::Accounts::open(
        store.clone(),
        hub.clone(),
        policy,
        config.admin_password.as_deref(),
        names,
    )
    .map_err(|e| StartError(e.to_string()))?;
    Ok(App {
        config: Arc::new(config),
        store,
        files,
        accounts,
        hub,
        mail_wake,
    })
}

/// [`open`] from async code: opening reconciles Git with the database and
/// may hash a password, blocking work kept off the runtime's workers.
pub async fn open_async(config: Config) -> Result<App, StartError> {
    tokio::task::spawn_blocking(move || open(config))
        .await
        .map_err(|e| StartError(format!("opening the data directory: {e}")))?
}

/// Serves on `listener` until `shutdown` completes, then closes live
/// connections (WebSockets with 1012) and lets requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let app = open_async(config).await?;
    run(listener, app, shutdown).await
}

/// Like [`serve()`], with an app already opened.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!("Latch is serving on http://{addr}");
    if let Some(token) = app.accounts.setup_token() {
        tracing::warn!("No users yet. Create the first admin at http://{addr}/setup?token={token}");
    }
    let (stop_clock, clock_stopped) = tokio::sync::oneshot::channel::<()>();
    let clock = tokio::spawn(app.files.clone().hand_off_clock(async move {
        let _ = clock_stopped.await;
    }));
    let (stop_mailer, mailer_stopped) = tokio::sync::oneshot::channel::<()>();
    let mailer = match (&app.config.mail, &app.mail_wake) {
        (Some(mail), Some(wake)) => Some(tokio::spawn(mail::run(
            app.store.clone(),
            mail.clone(),
            app.config.public_url.clone(),
            wake.clone(),
            async move {
                let _ = mailer_stopped.await;
            },
        ))),
        _ => None,
    };
    let hub = app.hub.clone();
    let live = app.hub.clone();
    let grace = app.config.shutdown_grace;
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: closing live connections, finishing requests");
        hub.shutdown();
    };
    let limits = http::serve::Limits::of(&app.config);
    let served = http::serve::serve(listener, http::endpoint(app), limits, signal, grace).await;
    // The clock holds the database: stopped (between writes) before the
    // caller reopens it.
    let _ = stop_clock.send(());
    let _ = clock.await;
    // So does the mailer; a mail it was sending stays in the outbox.
    let _ = stop_mailer.send(());
    if let Some(mailer) = mailer {
        let _ = mailer.await;
    }
    served?;
    // Upgraded WebSockets are no longer the server's connections: give their
    // tasks a moment to send 1012 before the caller drops the runtime.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    while live.connections() != (0, 0) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok(())
}
