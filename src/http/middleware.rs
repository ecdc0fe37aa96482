//! What every request passes through: the body limits of [`serve`] (no
//! body but a multipart upload over [`serve::MAX_BODY`], none stalling),
//! refusals poem makes by itself said as sentences, a browser's refused
//! upload read on to its end so the browser sees the 413 ([`serve::drain`]),
//! security headers, and one log line and latency count per request.

use std::time::Instant;

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};

use crate::http::error::{Surface, refusal};
use crate::http::serve;
use crate::http::web::is_htmx;

/// Security headers on every response, one log line per request, and the
/// body limits of [`serve`] on every route: no body but a multipart
/// upload may pass [`serve::MAX_BODY`] (a declared length over it is
/// refused before a byte is read, a longer chunked body is cut off there),
/// and none may stall. Either way the handler only saw an error, so
/// nothing was kept; the refusal is decided here, whatever the handler
/// made of that error.
pub fn with_middleware(
    ep: impl Endpoint + 'static,
    limits: serve::Limits,
) -> impl Endpoint<Output = Response> {
    ep.around(move |ep, mut req| async move {
        let started = Instant::now();
        let method = req.method().clone();
        // HEAD is answered wherever GET is, by the GET handler: hyper sends
        // the head of its answer and never the body.
        if method == Method::HEAD {
            req.set_method(Method::GET);
        }
        // The query is left out: it may carry the one-time setup token.
        let path = req.uri().path().to_string();
        let surface = surface_of(&path, is_htmx(&req));
        // A file saved to the network drive is an upload: its body is
        // bounded like one (the spool refuses past `--max-upload`).
        let dav_put = method == Method::PUT && (path == "/dav" || path.starts_with("/dav/"));
        let multipart = is_multipart(&req) || dav_put;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut resp = if !multipart && declared.is_some_and(|n| n > serve::MAX_BODY) {
            reply(surface, StatusCode::PAYLOAD_TOO_LARGE, BODY_TOO_LARGE)
        } else {
            let limit = if multipart {
                limits.multipart_body
            } else {
                serve::MAX_BODY
            };
            let boundary = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(serve::multipart_boundary);
            let (body, watch) = serve::guard_body(
                req.take_body(),
                limit,
                limits.body_stall,
                boundary.as_deref(),
            );
            req.set_body(body);
            let result = ep.call(req).await;
            let resp = if watch.over_limit() && multipart {
                // Several files (a change set, a bulk upload) count together.
                let text = format!(
                    "The upload is larger than the limit of {}; the files of one upload count together. Nothing was saved.",
                    crate::domain::human_size(limits.max_upload)
                );
                reply(surface, StatusCode::PAYLOAD_TOO_LARGE, &text)
            } else if watch.over_limit() {
                reply(surface, StatusCode::PAYLOAD_TOO_LARGE, BODY_TOO_LARGE)
            } else if watch.part_head_too_large() {
                reply(surface, StatusCode::PAYLOAD_TOO_LARGE, PART_HEAD_TOO_LARGE)
            } else if watch.stalled() {
                reply(surface, StatusCode::REQUEST_TIMEOUT, BODY_STALLED)
            } else {
                let mut resp =
                    said_as(surface, &path, &method, result.map(IntoResponse::into_response));
                if !watch.done() && resp.status() != StatusCode::SWITCHING_PROTOCOLS {
                    resp.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                resp
            };
            // A browser's form upload refused as too large (by this guard
            // or by the handler's own limit) is read on to its end before
            // the answer goes, so the browser shows the answer and not a
            // reset connection. Bounded in bytes and by the stall limit;
            // past them the connection closes as the answer is sent.
            let browser = matches!(surface, Surface::Page | Surface::Htmx);
            if browser
                && multipart
                && resp.status() == StatusCode::PAYLOAD_TOO_LARGE
                && !watch.done()
            {
                let most = serve::MAX_DRAIN.max(limits.multipart_body.saturating_mul(2));
                if declared.is_none_or(|n| n <= most) {
                    serve::drain(&watch, most, limits.body_stall).await;
                }
            }
            resp
        };
        let h = resp.headers_mut();
        let csp = if path == "/api/docs" || path.starts_with("/api/docs/") {
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"
        } else {
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
        };
        if !h.contains_key("content-security-policy") {
            h.insert("content-security-policy", HeaderValue::from_static(csp));
        }
        // Pages and API answers are per user and may carry secrets (a new
        // token, a CSRF token): never kept by a cache or the back/forward
        // cache. Assets and Git objects may be; downloads set their own.
        if !path.starts_with("/assets/")
            && !path.starts_with("/vault.git/")
            && !h.contains_key(header::CACHE_CONTROL)
        {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
        h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
        crate::metrics::request(started.elapsed(), resp.status().as_u16());
        tracing::info!(
            %method,
            path,
            status = resp.status().as_u16(),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
        Ok(resp)
    })
}

const BODY_TOO_LARGE: &str =
    "The request body is larger than 64 KiB; only file uploads may be larger.";
const PART_HEAD_TOO_LARGE: &str = "A part of the form has headers over 16 KiB.";
const BODY_STALLED: &str = "The request body stopped arriving; nothing was kept. Try again.";

fn is_multipart(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

/// The handler's answer, with the refusals poem makes by itself (no route,
/// a method the route does not take, an address that does not decode) said
/// as sentences in the surface's own shape, like Latch's own refusals.
fn said_as(
    surface: Surface,
    path: &str,
    method: &Method,
    result: poem::Result<Response>,
) -> Response {
    let (status, allow) = match result {
        Ok(resp) => {
            let plain = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_none_or(|v| v.starts_with("text/plain"));
            // Only a 405 of `allow::Methods` reaches here as plain text;
            // Git's own plain-text refusals are sentences already.
            if resp.status() != StatusCode::METHOD_NOT_ALLOWED || !plain || surface == Surface::Git
            {
                return resp;
            }
            let allow = resp.headers().get(header::ALLOW).cloned();
            (resp.status(), allow)
        }
        Err(err) => {
            if err.is::<poem::error::MethodNotAllowedError>() {
                (StatusCode::METHOD_NOT_ALLOWED, None)
            } else if err.is::<poem::error::NotFoundError>()
                || err.is::<poem::error::ParsePathError>()
            {
                (err.status(), None)
            } else {
                return err.into_response();
            }
        }
    };
    let text = match status {
        StatusCode::NOT_FOUND => format!("There is nothing at {path}."),
        StatusCode::BAD_REQUEST => {
            "The address is not valid: a %-escape in it is not UTF-8 text.".to_string()
        }
        _ => match allow.as_ref().and_then(|a| a.to_str().ok()) {
            Some(allow) => format!("{path} does not take {method}; it takes {allow}."),
            None => format!("{path} does not take {method}."),
        },
    };
    let mut resp = refusal(surface, status, &text);
    if let Some(allow) = allow {
        resp.headers_mut().insert(header::ALLOW, allow);
    }
    resp
}

/// How a refusal at the edge is said: JSON for `/api` (`error`) and Git
/// LFS (`message`), plain text for Git, a toast for htmx, a page otherwise.
fn surface_of(path: &str, htmx: bool) -> Surface {
    let under = |root: &str| path == root || path.starts_with(&format!("{root}/"));
    if under("/dav") {
        Surface::Dav
    } else if path.starts_with("/vault.git/info/lfs/") {
        Surface::Lfs
    } else if under("/vault.git") {
        Surface::Git
    } else if under("/api") {
        Surface::Json
    } else if htmx {
        Surface::Htmx
    } else {
        Surface::Page
    }
}

/// A refusal of a body that was not read to its end: the connection closes.
fn reply(surface: Surface, status: StatusCode, text: &str) -> Response {
    let mut resp = refusal(surface, status, text);
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}
