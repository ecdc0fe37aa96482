//! Operational metrics in the Prometheus text format (hand-written; the
//! format is a few lines of text): live connections by transport, events
//! published, file operations by kind and outcome, request latency, and the
//! bytes that check-ins and uploads bring in.
//!
//! Counters that are not the hub's live in one process-wide registry, as
//! Prometheus clients usually keep them: operations count where `Files`
//! finishes them, latency where the HTTP middleware logs each request.
//! This is a leaf: it knows the hub's gauges and nothing of HTTP; the
//! `/metrics` endpoints are `http::metrics`.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{AppError, AppResult};
use crate::live::Hub;

/// The content type Prometheus scrapers ask for.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Operation kinds, as `kind` labels. `Files` reports each one.
pub const OPERATIONS: [&str; 8] = [
    "upload", "checkout", "cancel", "checkin", "override", "delete", "move", "edit",
];

/// Outcomes, as `outcome` labels: `ok`, or the error's class.
const OUTCOMES: [&str; 10] = [
    "ok",
    "bad_request",
    "unauthenticated",
    "forbidden",
    "not_found",
    "conflict",
    "too_large",
    "invalid",
    "too_many_requests",
    "internal",
];

/// Upper bounds (seconds) of the request latency buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

struct Registry {
    started: SystemTime,
    /// `[kind][outcome]`, indexed like `OPERATIONS` and `OUTCOMES`.
    operations: [[AtomicU64; OUTCOMES.len()]; OPERATIONS.len()],
    /// Per bucket (not cumulative; summed when rendered), plus one for +Inf.
    latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_micros: AtomicU64,
    /// Responses by status class: 1xx … 5xx.
    responses: [AtomicU64; 5],
    checkin_bytes: AtomicU64,
    upload_bytes: AtomicU64,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        started: SystemTime::now(),
        operations: Default::default(),
        latency: Default::default(),
        latency_sum_micros: AtomicU64::new(0),
        responses: Default::default(),
        checkin_bytes: AtomicU64::new(0),
        upload_bytes: AtomicU64::new(0),
    })
}

fn outcome_of(err: &AppError) -> &'static str {
    match err {
        AppError::BadRequest(_) => "bad_request",
        AppError::Unauthenticated(_) => "unauthenticated",
        AppError::Forbidden(_) => "forbidden",
        AppError::NotFound(_) => "not_found",
        AppError::Conflict(_) | AppError::Held { .. } => "conflict",
        AppError::TooLarge(_) => "too_large",
        AppError::Invalid(_) => "invalid",
        AppError::TooManyRequests { .. } => "too_many_requests",
        AppError::Internal(_) => "internal",
    }
}

/// Counts a finished operation (`kind` is one of [`OPERATIONS`]) and
/// passes its result through.
pub fn operation<T>(kind: &'static str, result: AppResult<T>) -> AppResult<T> {
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => outcome_of(e),
    };
    let k = OPERATIONS.iter().position(|o| *o == kind);
    let o = OUTCOMES.iter().position(|o| *o == outcome);
    if let (Some(k), Some(o)) = (k, o) {
        registry().operations[k][o].fetch_add(1, Ordering::Relaxed);
    }
    result
}

/// Bytes of a check-in that became a new version.
pub fn checked_in(bytes: u64) {
    registry().checkin_bytes.fetch_add(bytes, Ordering::Relaxed);
}

/// Bytes of an upload that became a new file.
pub fn uploaded(bytes: u64) {
    registry().upload_bytes.fetch_add(bytes, Ordering::Relaxed);
}

/// One answered request: how long until its response head, and its status.
pub fn request(elapsed: Duration, status: u16) {
    let r = registry();
    let secs = elapsed.as_secs_f64();
    let bucket = LATENCY_BUCKETS
        .iter()
        .position(|b| secs <= *b)
        .unwrap_or(LATENCY_BUCKETS.len());
    r.latency[bucket].fetch_add(1, Ordering::Relaxed);
    r.latency_sum_micros
        .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    let class = (status / 100).clamp(1, 5) as usize - 1;
    r.responses[class].fetch_add(1, Ordering::Relaxed);
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The exposition text: `hub`'s gauges and the process counters.
pub fn render(hub: &Hub) -> String {
    let r = registry();
    let mut out = String::with_capacity(4096);

    family(
        &mut out,
        "latch_build_info",
        "gauge",
        "The running version.",
    );
    let _ = writeln!(
        out,
        "latch_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    family(
        &mut out,
        "latch_start_time_seconds",
        "gauge",
        "When the process started, in seconds since the Unix epoch.",
    );
    let started = r
        .started
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let _ = writeln!(out, "latch_start_time_seconds {started}");

    let (ws, sse) = hub.connections();
    family(
        &mut out,
        "latch_live_connections",
        "gauge",
        "Open live-update connections, by transport.",
    );
    let _ = writeln!(
        out,
        "latch_live_connections{{transport=\"websocket\"}} {ws}"
    );
    let _ = writeln!(out, "latch_live_connections{{transport=\"sse\"}} {sse}");

    family(
        &mut out,
        "latch_events_published_total",
        "counter",
        "State changes fanned out to live connections since start.",
    );
    let _ = writeln!(
        out,
        "latch_events_published_total {}",
        hub.events_published()
    );

    family(
        &mut out,
        "latch_operations_total",
        "counter",
        "File operations by kind and outcome (ok, or the error's class).",
    );
    for (k, kind) in OPERATIONS.iter().enumerate() {
        for (o, outcome) in OUTCOMES.iter().enumerate() {
            let n = r.operations[k][o].load(Ordering::Relaxed);
            // Every kind's `ok` series exists from the start; errors once seen.
            if n > 0 || o == 0 {
                let _ = writeln!(
                    out,
                    "latch_operations_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
    }

    family(
        &mut out,
        "latch_checkin_bytes_total",
        "counter",
        "Bytes of checked-in versions.",
    );
    let _ = writeln!(
        out,
        "latch_checkin_bytes_total {}",
        r.checkin_bytes.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "latch_upload_bytes_total",
        "counter",
        "Bytes of newly uploaded files.",
    );
    let _ = writeln!(
        out,
        "latch_upload_bytes_total {}",
        r.upload_bytes.load(Ordering::Relaxed)
    );

    family(
        &mut out,
        "latch_http_responses_total",
        "counter",
        "HTTP responses by status class.",
    );
    for (i, n) in r.responses.iter().enumerate() {
        let _ = writeln!(
            out,
            "latch_http_responses_total{{class=\"{}xx\"}} {}",
            i + 1,
            n.load(Ordering::Relaxed)
        );
    }

    family(
        &mut out,
        "latch_http_request_duration_seconds",
        "histogram",
        "Time from a request's arrival to its response head.",
    );
    let mut cumulative = 0u64;
    for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
        cumulative += r.latency[i].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "latch_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    cumulative += r.latency[LATENCY_BUCKETS.len()].load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "latch_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    let sum = r.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(out, "latch_http_request_duration_seconds_sum {sum}");
    let _ = writeln!(
        out,
        "latch_http_request_duration_seconds_count {cumulative}"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_cover_every_error_class() {
        let errors = [
            AppError::BadRequest(String::new()),
            AppError::Unauthenticated(String::new()),
            AppError::Forbidden(String::new()),
            AppError::NotFound(String::new()),
            AppError::Conflict(String::new()),
            AppError::TooLarge(String::new()),
            AppError::Invalid(String::new()),
            AppError::TooManyRequests {
                message: String::new(),
                retry_after_secs: 1,
            },
            AppError::Internal(String::new()),
        ];
        for e in &errors {
            assert!(OUTCOMES.contains(&outcome_of(e)));
        }
    }

    #[test]
    fn latency_lands_in_the_first_bucket_that_holds_it() {
        let before: Vec<u64> = registry()
            .latency
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        request(Duration::from_millis(30), 200);
        let after: Vec<u64> = registry()
            .latency
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        // 0.03 s is above 0.025 and at most 0.05: the fifth bucket.
        assert!(after[4] > before[4]);
    }
}
