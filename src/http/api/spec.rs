//! The API as served: the OpenAPI document with what poem-openapi cannot
//! say itself added to every operation (CSRF on session writes, the edge's
//! own refusals), and the `/api` endpoint that answers a known path asked
//! with another method with 405 and `Allow`.

use std::sync::Arc;

use poem::http::{Method, StatusCode, header};
use poem::{Endpoint, EndpointExt, IntoEndpoint, Response};
use serde_json::Value;

use super::{CSRF, SESSION, Service};
use crate::http::error::{Surface, refusal};

/// The document as served, with what poem-openapi cannot say itself added
/// to every operation in one walk.
pub fn spec(service: &Service) -> Value {
    let mut doc: Value = serde_json::from_str(&service.spec()).unwrap_or(Value::Null);
    let ops = doc
        .get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|ops| ops.iter_mut())
        .filter_map(|(method, op)| Some((method.as_str(), op.as_object_mut()?)));
    for (method, op) in ops {
        if method != "get" {
            require_csrf_with_session(op);
        }
        add_edge_refusals(op);
    }
    doc
}

/// poem-openapi lists each security scheme as its own alternative; a
/// session cookie is only enough for reads, so on writes the session
/// alternative also requires the CSRF header.
fn require_csrf_with_session(op: &mut serde_json::Map<String, Value>) {
    let alternatives = op
        .get_mut("security")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut);
    for alternative in alternatives {
        if alternative.contains_key(SESSION) {
            alternative.insert(CSRF.into(), Value::Array(Vec::new()));
        }
    }
}

/// The refusals the edge gives before an operation runs (`serve` and the
/// body limit in `http::middleware`): 413 for any body over its limit
/// (even where none is expected), 408 where a body is read and may stall.
fn add_edge_refusals(op: &mut serde_json::Map<String, Value>) {
    let error = |description: &str| {
        serde_json::json!({
            "description": description,
            "content": {"application/json; charset=utf-8": {
                "schema": {"$ref": "#/components/schemas/ErrorBody"}
            }}
        })
    };
    let reads_body = op.contains_key("requestBody");
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    responses.entry("413").or_insert_with(|| {
        error("The body is over its limit (64 KiB, or --max-upload for a file); nothing was kept.")
    });
    if reads_body {
        responses.entry("408").or_insert_with(|| {
            error("The body stopped arriving (no byte for --body-stall); nothing was kept.")
        });
    }
}

/// `GET /api/openapi.json`.
pub fn spec_endpoint(service: &Service) -> impl Endpoint + 'static {
    let body = serde_json::to_string_pretty(&spec(service)).unwrap_or_default();
    crate::http::allow::get(poem::endpoint::make_sync(move |_| {
        Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(body.clone())
    }))
}

/// A documented path, split at `/`; `None` stands for a `{parameter}`.
type PathPattern = Vec<Option<String>>;

/// Which methods each documented path takes, for `Allow` on a 405.
fn allow_table(doc: &Value) -> Vec<(PathPattern, String)> {
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        return Vec::new();
    };
    paths
        .iter()
        .map(|(path, ops)| {
            let pattern = path
                .split('/')
                .map(|seg| (!seg.starts_with('{')).then(|| seg.to_string()))
                .collect();
            let methods: Vec<Method> = ops
                .as_object()
                .into_iter()
                .flat_map(|ops| ops.keys())
                .filter_map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
                .collect();
            (pattern, crate::http::allow::allow_value(&methods))
        })
        .collect()
}

fn allowed<'t>(table: &'t [(PathPattern, String)], path: &str) -> Option<&'t str> {
    let segs: Vec<&str> = path.split('/').collect();
    table
        .iter()
        .filter(|(pattern, _)| pattern.len() == segs.len())
        .find(|(pattern, _)| {
            pattern
                .iter()
                .zip(&segs)
                .all(|(p, s)| p.as_deref().is_none_or(|p| p == *s))
        })
        .map(|(_, allow)| allow.as_str())
}

/// The operations, to nest at `/api`: refusals in the `{"error"}` shape,
/// and 405 with `Allow` for a documented path asked with another method.
pub fn endpoint(service: Service) -> impl Endpoint + 'static {
    let table = Arc::new(allow_table(&spec(&service)));
    service
        .into_endpoint()
        .catch_all_error(json_error)
        .around(move |ep, req| {
            let table = table.clone();
            async move {
                let path = req.uri().path().to_string();
                let shown = req.original_uri().path().to_string();
                let method = req.method().clone();
                let mut resp = ep.call(req).await?;
                if resp.status() == StatusCode::METHOD_NOT_ALLOWED
                    && let Some(allow) = allowed(&table, &path)
                {
                    let message = format!("{shown} does not take {method}; it takes {allow}.");
                    resp = refusal(Surface::Json, StatusCode::METHOD_NOT_ALLOWED, &message);
                    crate::http::allow::add_allow(&mut resp, allow);
                }
                Ok(resp)
            }
        })
}

/// Gives every `/api` error the `{"error": "…"}` shape, including the ones
/// poem-openapi raises itself for malformed JSON or parameters, said as
/// sentences.
pub async fn json_error(err: poem::Error) -> Response {
    use poem_openapi::error::{
        ContentTypeError, ParseParamError, ParsePathError, ParseRequestPayloadError,
    };
    let status = err.status();
    let said = if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        Some(format!("The request body is not valid: {}", e.reason))
    } else if let Some(e) = err.downcast_ref::<ParseParamError>() {
        Some(format!(
            "The parameter '{}' is not valid: {}",
            e.name, e.reason
        ))
    } else if let Some(e) = err.downcast_ref::<ParsePathError>() {
        // Its name is poem's internal one (`param0`); the reason names it.
        let reason = match e.reason.split_once("\": ") {
            Some((head, rest)) if head.starts_with("failed to parse") => rest,
            _ => e.reason.as_str(),
        };
        Some(format!("The path is not valid: {reason}"))
    } else if let Some(e) = err.downcast_ref::<ContentTypeError>() {
        Some(match e {
            ContentTypeError::NotSupported { content_type } => {
                format!("Send this body as application/json, not {content_type}.")
            }
            _ => "Send this body as application/json, with a Content-Type header.".to_string(),
        })
    } else if err.is::<poem::error::NotFoundError>() {
        Some("There is no such API route; see /api/openapi.json.".to_string())
    } else {
        None
    };
    if let Some(message) = said {
        return refusal(Surface::Json, status, &message);
    }
    let resp = err.into_response();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let text = resp.into_body().into_string().await.unwrap_or_default();
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("Error").to_string()
    } else {
        text
    };
    refusal(Surface::Json, status, &message)
}
