//! Live clients as a browser opens them: `/ws` with tokio-tungstenite and
//! `/events` with a streaming reqwest GET whose events are parsed here. Every
//! wait has a generous deadline and ends as soon as what it waits for arrives.

use std::pin::Pin;
use std::time::Duration;

use futures_util::{SinkExt, Stream, StreamExt};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

use super::Client;

/// How long a live message may take before a test gives up on it.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long "nothing arrives" is watched for.
pub const QUIET: Duration = Duration::from_millis(400);

pub type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What a WebSocket client saw next.
#[derive(Debug)]
pub enum WsNext {
    Text(String),
    Closed(Option<u16>),
    Timeout,
}

/// An open `/ws`.
pub struct Ws {
    pub stream: WsStream,
    /// Messages for this person alone (their bell), set aside by `next`:
    /// they come outside the event sequence, so tests of events pass over
    /// them and tests of the inbox read them with `bell`.
    pub bells: std::collections::VecDeque<String>,
}

/// How a message for one person alone begins: their bell.
pub const BELL_PREFIX: &str = "<a id=\"bell\"";

/// Opens `/ws{query}` at `base` (`http://host:port`, the app or a proxy in
/// front of it); `Err` says why the upgrade did not happen ("HTTP 403", or
/// the transport error when there was no HTTP answer).
pub async fn ws_try(
    base: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
    query: &str,
) -> Result<Ws, WsRefused> {
    let url = format!("{}/ws{query}", base.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request().expect("ws request");
    if let Some(c) = cookie {
        req.headers_mut()
            .insert("cookie", c.parse().expect("cookie"));
    }
    if let Some(o) = origin {
        req.headers_mut()
            .insert("origin", o.parse().expect("origin"));
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((stream, _)) => Ok(Ws {
            stream,
            bells: Default::default(),
        }),
        Err(tungstenite::Error::Http(resp)) => Err(WsRefused::Status(resp.status().as_u16())),
        Err(e) => Err(WsRefused::Transport(e.to_string())),
    }
}

/// Why a WebSocket did not open.
#[derive(Debug, PartialEq, Eq)]
pub enum WsRefused {
    /// The server (or a proxy) answered the upgrade with this status.
    Status(u16),
    /// No HTTP answer at all.
    Transport(String),
}

/// Opens `/ws{query}`; `Err(status)` when the server refused to upgrade.
pub async fn ws_connect_with(
    base: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
    query: &str,
) -> Result<Ws, u16> {
    match ws_try(base, cookie, origin, query).await {
        Ok(ws) => Ok(ws),
        Err(WsRefused::Status(s)) => Err(s),
        Err(WsRefused::Transport(e)) => panic!("websocket connect failed: {e}"),
    }
}

/// Opens `/ws{query}` as `client`'s same-origin page would.
pub async fn ws_connect(base: &str, client: &Client, query: &str) -> Ws {
    ws_connect_with(base, Some(&client.cookie_header()), Some(base), query)
        .await
        .unwrap_or_else(|s| panic!("websocket refused with {s}"))
}

/// Whether a WebSocket message is a presence update (`crate::presence`):
/// they come whenever someone connects, so most tests pass over them.
pub fn is_presence(text: &str) -> bool {
    text.starts_with("<span class=\"presence\"")
}

impl Ws {
    /// The next message other than a presence update.
    pub async fn next(&mut self, within: Duration) -> WsNext {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_any(left).await {
                WsNext::Text(t) if is_presence(&t) => {}
                other => return other,
            }
        }
    }

    /// The next message, presence updates included.
    pub async fn next_any(&mut self, within: Duration) -> WsNext {
        let next = self.next_until_bell(within, false).await;
        next.unwrap_or(WsNext::Timeout)
    }

    /// The next message (bells set aside), or None as soon as a bell is set
    /// aside when `until_bell`: a test waiting for a bell must not wait out
    /// its whole deadline after the bell came.
    async fn next_until_bell(&mut self, within: Duration, until_bell: bool) -> Option<WsNext> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Some(WsNext::Timeout),
                Ok(None) => return Some(WsNext::Closed(None)),
                Ok(Some(Err(_))) => return Some(WsNext::Closed(None)),
                Ok(Some(Ok(Message::Text(t)))) if t.starts_with(BELL_PREFIX) => {
                    self.bells.push_back(t.to_string());
                    if until_bell {
                        return None;
                    }
                }
                Ok(Some(Ok(Message::Text(t)))) => return Some(WsNext::Text(t.to_string())),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Some(WsNext::Closed(frame.map(|f| u16::from(f.code))));
                }
                Ok(Some(Ok(_))) => {} // pings are answered by tungstenite
            }
        }
    }

    /// The next message for this person alone (their bell, and a toast
    /// when a notification came), or None within `within`.
    pub async fn bell(&mut self, within: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(b) = self.bells.pop_front() {
                return Some(b);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Some(WsNext::Text(_)) = self.next_until_bell(left, true).await {
                continue;
            }
            return self.bells.pop_front();
        }
    }

    /// The next text message; panics after [`WAIT`].
    pub async fn text(&mut self) -> String {
        match self.next(WAIT).await {
            WsNext::Text(t) => t,
            other => panic!("expected a WebSocket message, got {other:?}"),
        }
    }

    /// The next text message that contains `needle`, or None when none
    /// came within `within` (or the socket closed).
    pub async fn text_containing(&mut self, needle: &str, within: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                WsNext::Text(t) if t.contains(needle) => return Some(t),
                WsNext::Text(_) => {}
                _ => return None,
            }
        }
    }

    /// Asserts nothing arrives for a moment.
    pub async fn quiet(&mut self) {
        match self.next(QUIET).await {
            WsNext::Timeout => {}
            other => panic!("expected silence on the WebSocket, got {other:?}"),
        }
    }

    /// The close code the server ends the socket with; panics after [`WAIT`].
    pub async fn close_code(&mut self) -> Option<u16> {
        self.close_code_within(WAIT).await
    }

    /// The close code the server ends the socket with, reading past any
    /// messages; panics when the socket is still open after `within`.
    pub async fn close_code_within(&mut self, within: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                WsNext::Closed(code) => return code,
                WsNext::Timeout => panic!("the WebSocket was still open after {within:?}"),
                WsNext::Text(_) => {}
            }
        }
    }

    /// Reads in the background until the server closes the socket; the
    /// task gives the close code (None without a close frame). The caller
    /// puts the deadline on awaiting it.
    pub fn until_closed(mut self) -> tokio::task::JoinHandle<Option<u16>> {
        tokio::spawn(async move {
            loop {
                if let WsNext::Closed(code) = self.next(Duration::from_secs(3600)).await {
                    return code;
                }
            }
        })
    }

    pub async fn close(mut self) {
        let _ = self.stream.send(Message::Close(None)).await;
    }
}

/// One parsed SSE event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Vec<String>,
}

impl SseEvent {
    pub fn html(&self) -> String {
        self.data.join("\n")
    }
    pub fn seq(&self) -> u64 {
        self.id
            .as_deref()
            .and_then(|i| i.parse().ok())
            .expect("numeric id")
    }
    pub fn kind(&self) -> &str {
        self.event.as_deref().unwrap_or("message")
    }
}

#[derive(Debug)]
pub enum SseNext {
    Event(SseEvent),
    Ended,
    Timeout,
}

/// An open `/events` stream and what has been read of it but not parsed.
pub struct Sse {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Vec<u8>>> + Send>>,
    buf: Vec<u8>,
    ended: bool,
    /// `inbox` messages (one person's bell), set aside as `Ws::bells` are.
    pub bells: std::collections::VecDeque<SseEvent>,
}

/// Opens `/events{query}` at `base` with the given cookie and headers;
/// `Err(status)` when the server did not start a stream.
pub async fn sse_open_with(
    base: &str,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
    query: &str,
) -> Result<Sse, u16> {
    let http = reqwest::Client::new();
    let mut rb = http.get(format!("{base}/events{query}"));
    if let Some(c) = cookie {
        rb = rb.header("cookie", c);
    }
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let resp = rb.send().await.expect("GET /events");
    if resp.status() != 200 {
        return Err(resp.status().as_u16());
    }
    let ct = super::header(&resp, "content-type");
    assert!(ct.starts_with("text/event-stream"), "content type {ct}");
    Ok(Sse {
        body: Box::pin(resp.bytes_stream().map(|r| r.map(|b| b.to_vec()))),
        buf: Vec::new(),
        ended: false,
        bells: Default::default(),
    })
}

/// Opens `/events{query}` with `client`'s session.
pub async fn sse_open(base: &str, client: &Client, query: &str, headers: &[(&str, &str)]) -> Sse {
    sse_open_with(base, Some(&client.cookie_header()), headers, query)
        .await
        .unwrap_or_else(|s| panic!("/events refused with {s}"))
}

impl Sse {
    /// Takes one complete event (blank-line terminated) from the buffer;
    /// comment-only blocks (heartbeats) are dropped.
    fn take_event(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.buf.windows(2).position(|w| w == b"\n\n")?;
            let block: Vec<u8> = self.buf.drain(..end + 2).collect();
            let block = std::str::from_utf8(&block[..end]).expect("utf-8 event");
            let mut ev = SseEvent {
                id: None,
                event: None,
                data: Vec::new(),
            };
            let mut any = false;
            for line in block.split('\n') {
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                any = true;
                match field {
                    "id" => ev.id = Some(value.to_string()),
                    "event" => ev.event = Some(value.to_string()),
                    "data" => ev.data.push(value.to_string()),
                    _ => {}
                }
            }
            if any {
                return Some(ev);
            }
        }
    }

    /// The next event other than a presence update (`event: presence`).
    pub async fn next(&mut self, within: Duration) -> SseNext {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_any(left).await {
                SseNext::Event(e) if e.kind() == "presence" => {}
                other => return other,
            }
        }
    }

    /// The next event, presence updates included.
    pub async fn next_any(&mut self, within: Duration) -> SseNext {
        let next = self.next_until_bell(within, false).await;
        next.unwrap_or(SseNext::Timeout)
    }

    /// As `Ws::next_until_bell`.
    async fn next_until_bell(&mut self, within: Duration, until_bell: bool) -> Option<SseNext> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(ev) = self.take_event() {
                if ev.event.as_deref() == Some("inbox") {
                    self.bells.push_back(ev);
                    if until_bell {
                        return None;
                    }
                    continue;
                }
                return Some(SseNext::Event(ev));
            }
            if self.ended {
                return Some(SseNext::Ended);
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return Some(SseNext::Timeout),
                Ok(None) | Ok(Some(Err(_))) => self.ended = true,
                Ok(Some(Ok(chunk))) => {
                    assert!(
                        !chunk.contains(&b'\r'),
                        "the server frames SSE with LF only"
                    );
                    self.buf.extend_from_slice(&chunk);
                }
            }
        }
    }

    /// The next `inbox` message (one person's bell), or None within `within`.
    pub async fn bell(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(b) = self.bells.pop_front() {
                return Some(b);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Some(SseNext::Event(_)) = self.next_until_bell(left, true).await {
                continue;
            }
            return self.bells.pop_front();
        }
    }

    /// The next event; panics after [`WAIT`].
    pub async fn event(&mut self) -> SseEvent {
        match self.next(WAIT).await {
            SseNext::Event(e) => e,
            other => panic!("expected an SSE event, got {other:?}"),
        }
    }

    /// The next event named `kind`, passing over others; None when none came
    /// within `within` (or the stream ended).
    pub async fn next_of(&mut self, kind: &str, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                SseNext::Event(e) if e.kind() == kind => return Some(e),
                SseNext::Event(_) => {}
                _ => return None,
            }
        }
    }

    /// The HTML of the next `kind` event about file `id`; panics after [`WAIT`].
    pub async fn expect(&mut self, kind: &str, id: u64) -> String {
        let card = format!("id=\"file-{id}\"");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_of(kind, left).await {
                Some(e) if e.html().contains(&card) => return e.html(),
                Some(_) => {}
                None => panic!("no '{kind}' event for file {id} within {WAIT:?}"),
            }
        }
    }

    /// Asserts nothing arrives for a moment.
    pub async fn quiet(&mut self) {
        match self.next(QUIET).await {
            SseNext::Timeout => {}
            other => panic!("expected silence on the SSE stream, got {other:?}"),
        }
    }

    /// Waits for the server to end the stream; panics after [`WAIT`].
    pub async fn ends(&mut self) {
        self.ends_within(WAIT).await
    }

    /// Waits for the server to end the stream, reading past any events;
    /// panics when it is still open after `within`.
    pub async fn ends_within(&mut self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                SseNext::Ended => return,
                SseNext::Timeout => panic!("the event stream was still open after {within:?}"),
                SseNext::Event(_) => {}
            }
        }
    }
}
