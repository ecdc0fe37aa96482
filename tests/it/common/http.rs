//! Plain HTTP for tests that look at what a client is sent: clients with no
//! session, the `latch_session` Set-Cookie line and its parts, Basic
//! credentials spelled out, and a bare `/api/login`.

use serde_json::{Value, json};

/// A client with no cookies that does not follow redirects.
pub fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A client that keeps cookies as a browser does and does not follow redirects.
pub fn cookie_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// `POST /api/login` with a fresh plain client; the response, whatever it is.
pub async fn api_login(base: &str, username: &str, password: &str) -> reqwest::Response {
    plain_client()
        .post(format!("{base}/api/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("POST /api/login")
}

/// The whole `Set-Cookie` line that sets `latch_session`, if there is one.
pub fn session_set_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("latch_session="))
        .map(str::to_string)
}

/// `latch_session=<token>` from a response, as a `Cookie` header sends it back.
pub fn session_cookie_of(resp: &reqwest::Response) -> Option<String> {
    session_set_cookie(resp).and_then(|v| v.split(';').next().map(str::to_string))
}

/// The value of a `Set-Cookie` line (for `latch_session`, the session token).
pub fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}

/// The attributes of a `Set-Cookie` line, trimmed and lower-cased.
pub fn cookie_attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

/// Standard base64 with padding, for headers written by hand.
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, &b| n << 8 | b as u32) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An `Authorization` value with Basic credentials.
pub fn basic_header(user: &str, secret: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{secret}").as_bytes()))
}

/// The status and JSON body of a response (`Null` when the body is not JSON),
/// for races where either outcome is allowed and both are checked.
pub async fn status_and_json(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}
