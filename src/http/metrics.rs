//! `/metrics`: on the main address for admins (session, API token or
//! Basic); with `--metrics-bind`, the same text on a second address without
//! authentication, for a scraper on a private network.

use std::time::Duration;

use poem::http::{StatusCode, header};
use poem::web::Data;
use poem::{EndpointExt, Response, Route, handler};

use crate::domain::Role;
use crate::error::AppError;
use crate::http::allow::get;
use crate::http::error::{Surface, said};
use crate::http::guards::Guard;
use crate::http::serve;
use crate::live::Hub;
use crate::metrics::{CONTENT_TYPE, render};

fn text(body: String) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .content_type(CONTENT_TYPE)
        .header(header::CACHE_CONTROL, "no-store")
        .body(body)
}

/// `GET /metrics` on the main address: admins only.
#[handler]
pub async fn admin_endpoint(guard: Guard<'_>, Data(hub): Data<&Hub>) -> Response {
    let refused = |err: AppError| said(Surface::Scraper, &err);
    match guard.caller().await {
        Ok(caller) if caller.user().role == Role::Admin => text(render(hub)),
        Ok(_) => refused(AppError::Forbidden(
            "Only an admin can read the metrics; or serve them on a private address with --metrics-bind.".into(),
        )),
        Err(e) => refused(e),
    }
}

#[handler]
async fn open_endpoint(Data(hub): Data<&Hub>) -> Response {
    text(render(hub))
}

#[handler]
fn healthz() -> &'static str {
    "ok"
}

/// Serves `/metrics` (no authentication) and `/healthz` on `listener`, for
/// `--metrics-bind`, until `shutdown` completes; held to the same
/// connection limits as the main address.
pub async fn serve(
    listener: tokio::net::TcpListener,
    hub: Hub,
    limits: serve::Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let routes = Route::new()
        .at("/metrics", get(open_endpoint))
        .at("/healthz", get(healthz))
        .data(hub)
        .map_to_response();
    serve::serve(listener, routes, limits, shutdown, Duration::from_secs(1)).await
}
