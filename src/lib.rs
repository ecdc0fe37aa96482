//! Latch: live check-out / check-in for files that cannot be merged, kept
//! in a bare Git repository, with every browser updated the moment anything
//! changes.
//!
//! # Layout
//! - [`config`] — settings and defaults.
//! - [`domain`] — validated values from outside (paths, names, revisions…).
//! - [`error`] — the one error type and its status codes.
//! - [`store`] — redb tables, records, the event log and its ordering.
//! - [`schema`] — the database's schema version and its migrations.
//! - [`vault`] — the Git repository: blobs, commits, history.
//! - [`files`] — the operations and their rules; Git/redb reconciliation.
//! - [`auth`] — users, passwords, sessions, tokens, throttling, CSRF/Origin.
//! - [`live`] — the hub, per-viewer rendering, `/ws` and `/events`.
//! - [`views`] — maud templates.
//! - [`forms`] — request bodies at the edge.
//! - [`web`] — HTML routes; [`api`] — the JSON API.
//! - [`lfs`] — `/vault.git`: Git LFS locks (= check-outs) and read-only clone.
//! - [`metrics`] — `/metrics` in the Prometheus text format.
//! - [`backup`] — a consistent copy of the data directory, taken while serving.
//! - [`serve`] — accepting connections and holding them to the edge limits.
//!
//! [`serve()`] starts the app on a listener the caller bound, so tests start
//! the real server on `127.0.0.1:0` exactly as `main` does.

pub mod allow;
pub mod api;
pub mod auth;
pub mod backup;
pub mod config;
pub mod domain;
pub mod error;
pub mod files;
pub mod forms;
pub mod lfs;
pub mod live;
pub mod metrics;
pub mod schema;
pub mod serve;
pub mod store;
pub mod vault;
pub mod views;
pub mod web;

use std::sync::{Arc, Mutex};

use poem::endpoint::EmbeddedFilesEndpoint;
use poem::{Endpoint, EndpointExt};

pub use config::Config;
use error::AppError;

#[derive(rust_embed::Embed)]
#[folder = "assets/"]
struct Assets;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub store: store::Store,
    pub files: files::Files,
    pub hub: live::Hub,
    pub throttle: Arc<auth::Throttle>,
    /// While no user exists: the token of the one-time `/setup` link.
    pub setup_token: Arc<Mutex<Option<String>>>,
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
    let vault = vault::Vault::open_or_init(&config.vault_path())?;
    // The database is open, so no other Latch process holds this vault.
    vault.clear_stale_locks()?;
    let files = files::Files::new(store.clone(), vault, config.spool_dir(), config.max_upload)?;
    let hub = live::Hub::start(store.clone())?;
    let applied = files.reconcile()?;
    if applied > 0 {
        tracing::warn!(
            applied,
            "applied Git commits that the database had not recorded (after a crash)"
        );
    }
    let setup_token = Arc::new(Mutex::new(None));
    if store.user_count()? == 0 {
        match &config.admin_password {
            Some(password) => {
                let new = auth::NewUser {
                    username: domain::Username::parse("admin").map_err(|e| StartError(e.0))?,
                    password: domain::Password::parse(password)
                        .map_err(|e| StartError(format!("LATCH_ADMIN_PASSWORD: {e}")))?,
                    role: domain::Role::Admin,
                    display_name: Some("Administrator".into()),
                };
                auth::create_user(&store, new)?;
                tracing::info!("created user 'admin' from LATCH_ADMIN_PASSWORD");
            }
            None => {
                let token = auth::random_hex(16);
                *setup_token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token);
            }
        }
    }
    Ok(App {
        config: Arc::new(config),
        store,
        files,
        hub,
        throttle: Arc::new(auth::Throttle::default()),
        setup_token,
    })
}

/// The whole HTTP app: HTML, JSON API and its docs, live endpoints, assets.
pub fn endpoint(app: App) -> impl Endpoint<Output = poem::Response> + 'static {
    let api = api::service();
    let assets = allow::only(
        &[poem::http::Method::GET],
        EmbeddedFilesEndpoint::<Assets>::new(),
    );
    let routes = web::routes()
        .nest("/assets", assets)
        .at("/api/openapi.json", api::spec_endpoint(&api))
        .nest("/api/docs", api.swagger_ui())
        .nest("/api", api::endpoint(api))
        .nest("/vault.git", lfs::routes())
        .at("/metrics", allow::get(metrics::admin_endpoint));
    let limits = serve::Limits::of(&app.config);
    web::with_middleware(routes.data(app), limits)
}

/// Serves on `listener` until `shutdown` completes, then closes live
/// connections (WebSockets with 1012) and lets requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let app = open(config)?;
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
    if let Some(token) = app
        .setup_token
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
    {
        tracing::warn!("No users yet. Create the first admin at http://{addr}/setup?token={token}");
    }
    let hub = app.hub.clone();
    let live = app.hub.clone();
    let grace = app.config.shutdown_grace;
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: closing live connections, finishing requests");
        hub.shutdown();
    };
    let limits = serve::Limits::of(&app.config);
    serve::serve(listener, endpoint(app), limits, signal, grace).await?;
    // Upgraded WebSockets are no longer the server's connections: give their
    // tasks a moment to send 1012 before the caller drops the runtime.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    while live.connections() != (0, 0) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok(())
}
