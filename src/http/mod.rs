//! Everything HTTP: the routes of each surface (HTML pages in [`web`], the
//! JSON API in [`api`], Git and Git LFS in [`lfs`] (the smart protocol in
//! [`git`]), live updates in
//! [`live`], [`metrics`]), and what they share — [`guards`] (who is
//! asking), [`forms`] (bodies read at the edge), [`error`] (the one way an
//! error becomes a response), [`views`] (the templates), [`middleware`]
//! (limits, headers, logs) and [`serve`] (the accept loop).
//!
//! Only this folder knows poem and maud. Handlers are given the services
//! they use (`Files`, `Accounts`, `Hub`, `Store`, the `Config`) as request
//! data, and a [`guards::Guard`] for who sent the request.

pub mod allow;
pub mod api;
pub mod dav;
pub mod downloads;
pub mod error;
pub mod forms;
pub mod git;
pub mod guards;
pub mod lfs;
pub mod live;
pub mod metrics;
pub mod middleware;
pub mod serve;
pub mod views;
pub mod web;

use poem::Endpoint;
use poem::endpoint::EmbeddedFilesEndpoint;

use crate::App;

#[derive(rust_embed::Embed)]
#[folder = "assets/"]
struct Assets;

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
        .at("/api/folders/:path<^.+/zip$>", allow::get(api::zip_by_path))
        .nest("/vault.git", lfs::routes())
        .nest_no_strip("/dav", dav::Dav)
        .at("/metrics", allow::get(metrics::admin_endpoint));
    let limits = serve::Limits::of(&app.config);
    middleware::with_middleware(WithServices { inner: routes, app }, limits)
}

/// Hands every request the services (`Data<&Files>`, `Data<&Accounts>`,
/// `Data<&Hub>`, `Data<&Store>`, `Data<&Arc<Config>>`) in one layer.
struct WithServices<E> {
    inner: E,
    app: App,
}

impl<E: Endpoint> Endpoint for WithServices<E> {
    type Output = E::Output;

    async fn call(&self, mut req: poem::Request) -> poem::Result<Self::Output> {
        let app = &self.app;
        let data = req.extensions_mut();
        data.insert(app.files.clone());
        data.insert(app.accounts.clone());
        data.insert(app.hub.clone());
        data.insert(app.store.clone());
        data.insert(app.config.clone());
        self.inner.call(req).await
    }
}
