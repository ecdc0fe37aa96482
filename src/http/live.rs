//! `/ws` (WebSocket) and `/events` (SSE): admission (same-origin browser,
//! a session), the backlog a resuming client missed, then the live loop
//! over the hub's ring with pings or heartbeats, until the session, the
//! peer or the server ends it. What is sent is the hub's ([`crate::live`]).
//! Each connection is also someone's presence ([`crate::presence`]), and
//! `POST /live/viewing` is how a tab says whose history it shows.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use poem::http::StatusCode;
use poem::web::Data;
use poem::web::websocket::{CloseCode, Message, WebSocket, WebSocketConfig};
use poem::{Body, IntoResponse, Request, Response, handler};
use tokio::sync::watch;

use crate::error::{AppError, AppResult};
use crate::files::Files;
use crate::http::error::{Surface, said};
use crate::http::forms;
use crate::http::guards::{self, Guard};
use crate::live::{
    CLOSE_RESTART, CLOSE_SESSION_ENDED, CLOSE_TOO_SLOW, Connected, Expiry, Hub, LiveViewer, Missed,
    Next, Resume, SEND_TIMEOUT, SSE_HEARTBEAT, Subscription, Unnumbered, WS_PING, sse_frame,
    sse_unnumbered,
};
use crate::presence::{Here, Tab};
use crate::secret;
use crate::store::Store;

#[handler]
pub async fn ws_endpoint(
    guard: Guard<'_>,
    Data(hub): Data<&Hub>,
    Data(store): Data<&Store>,
    ws: Option<WebSocket>,
) -> Response {
    match ws {
        Some(ws) => websocket(guard, hub, store, ws).await,
        None => Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body("This endpoint speaks WebSocket; no Upgrade header arrived (a proxy may have removed it)."),
    }
}

#[handler]
pub async fn sse_endpoint(
    guard: Guard<'_>,
    Data(hub): Data<&Hub>,
    Data(store): Data<&Store>,
) -> Response {
    sse(guard, hub, store).await
}

/// The last sequence a client saw, from `Last-Event-ID` or, failing that,
/// `?last_event_id=`; empty counts as absent (a browser sends no header
/// before its first id).
fn resume_point(req: &Request) -> Resume {
    fn parse(raw: &str) -> Resume {
        let raw = raw.trim();
        if raw.is_empty() {
            return Resume::Fresh;
        }
        if !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Resume::Unreadable;
        }
        raw.parse().map_or(Resume::Unreadable, Resume::After)
    }
    if let Some(header) = req.headers().get("last-event-id") {
        return header.to_str().map_or(Resume::Unreadable, parse);
    }
    req.uri()
        .query()
        .and_then(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == "last_event_id")
        })
        .map_or(Resume::Fresh, |(_, v)| parse(v))
}

/// The tab the page says it is (`?tab=`), if it said.
fn tab_of(req: &Request) -> AppResult<Option<Tab>> {
    req.uri()
        .query()
        .and_then(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == "tab")
        })
        .map(|(_, v)| Tab::parse(v))
        .transpose()
}

/// Both endpoints: a same-origin browser and a session are required before upgrading.
async fn admit(guard: Guard<'_>, websocket: bool) -> AppResult<crate::accounts::Session> {
    if websocket && !guard.req.headers().contains_key(poem::http::header::ORIGIN) {
        return Err(AppError::Forbidden(
            "A WebSocket needs an Origin header.".into(),
        ));
    }
    guard.same_origin()?;
    guard
        .session()
        .await?
        .ok_or_else(|| AppError::Unauthenticated("Sign in to receive live updates.".into()))
}

fn refuse(err: AppError) -> Response {
    said(Surface::Text, &err)
}

/// What an admitted connection starts with.
struct Opened {
    sub: Subscription,
    viewer: LiveViewer,
    expiry: Expiry,
    missed: Vec<Missed>,
    last: u64,
    /// The current presence, sent after the backlog.
    presence: Option<Arc<Unnumbered>>,
    here: Here,
}

/// Admission and backlog, shared by both endpoints.
async fn open(
    guard: Guard<'_>,
    hub: &Hub,
    store: &Store,
    websocket: bool,
) -> Result<Opened, Response> {
    // Subscribe first: a session ended after this point reaches us as a
    // frame; one ended before it fails the session check below. Likewise
    // activity recorded after this point moves the idle deadline.
    let sub = hub.subscribe();
    let cookie = guards::session_cookie(guard.req).unwrap_or_default();
    let seen = hub.watch_session(&secret::sha256(cookie.as_bytes()));
    let session = admit(guard, websocket).await.map_err(refuse)?;
    let tab = tab_of(guard.req).map_err(refuse)?;
    let viewer = LiveViewer::of(&session);
    let expiry = Expiry::of(guard.accounts.policy(), &session, seen);
    let (missed, last) = hub
        .catch_up(store.clone(), viewer.clone(), resume_point(guard.req))
        .await
        .map_err(refuse)?;
    let here = hub.presence().arrive(
        &session.user.username,
        &session.user.display_name,
        &session.token_hash,
        tab,
    );
    Ok(Opened {
        sub,
        viewer,
        expiry,
        missed,
        last,
        presence: hub.presence_now(),
        here,
    })
}

fn ws_config() -> WebSocketConfig {
    let mut config = WebSocketConfig::default();
    // An idle connection should cost little: tungstenite allocates its read
    // buffer up front, and browsers only send pongs and closes. Outgoing
    // frames are written at once (no write buffering to hold them). The
    // write buffer is not capped: each send waits for its flush, so it holds
    // one message, and a resync of a long list is one message of megabytes.
    config.read_buffer_size = 1024;
    config.write_buffer_size = 0;
    config.max_message_size = Some(64 * 1024);
    config.max_frame_size = Some(64 * 1024);
    config
}

async fn websocket(guard: Guard<'_>, hub: &Hub, store: &Store, ws: WebSocket) -> Response {
    let opened = match open(guard, hub, store, true).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let hub = hub.clone();
    ws.config(ws_config())
        .on_upgrade(move |socket| ws_session(socket, hub, opened))
        .into_response()
}

type WsSink = futures_util::stream::SplitSink<poem::web::websocket::WebSocketStream, Message>;

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some((CloseCode::from(code), reason.to_string())))
}

async fn ws_session(socket: poem::web::websocket::WebSocketStream, hub: Hub, opened: Opened) {
    let Opened {
        mut sub,
        viewer,
        expiry,
        missed,
        last: mut last_sent,
        presence,
        here: _here,
    } = opened;
    let _counted = Connected::new(&hub, true);
    drop(hub);
    let (mut sink, mut stream) = socket.split();
    let presence = presence.map(|p| p.html.clone());
    for html in missed.into_iter().map(|m| m.html).chain(presence) {
        if !send(&mut sink, Message::Text(html)).await {
            return;
        }
    }
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + WS_PING, WS_PING);
    let mut awaiting_pong = false;
    let session_ends = tokio::time::sleep_until(expiry.deadline());
    tokio::pin!(session_ends);
    loop {
        tokio::select! {
            frame = sub.frames.recv() => match sub.classify(frame, &viewer, &mut last_sent) {
                Next::Send(r) => {
                    if !send(&mut sink, Message::Text(r.ws_text(&viewer))).await {
                        break;
                    }
                }
                Next::SendUnnumbered(m) => {
                    if !send(&mut sink, Message::Text(m.html.clone())).await {
                        break;
                    }
                }
                Next::Skip => {}
                Next::SessionEnded => {
                    let _ = send(&mut sink, close(CLOSE_SESSION_ENDED, "session ended")).await;
                    break;
                }
                Next::FellBehind => {
                    let _ = send(&mut sink, close(CLOSE_TOO_SLOW, "fell behind; reconnect")).await;
                    break;
                }
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Pong(_))) => awaiting_pong = false,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if awaiting_pong { break; }
                awaiting_pong = true;
                if !send(&mut sink, Message::Ping(Vec::new())).await { break; }
            }
            _ = &mut session_ends => match expiry.check() {
                Some(later) => session_ends.as_mut().reset(later),
                None => {
                    let _ = send(&mut sink, close(CLOSE_SESSION_ENDED, "session expired")).await;
                    break;
                }
            },
            _ = stopped(&mut sub.shutdown) => {
                let _ = send(&mut sink, close(CLOSE_RESTART, "server restarting")).await;
                break;
            }
        }
    }
}

/// Sends one message; false when the peer is gone or stopped reading.
async fn send(sink: &mut WsSink, msg: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, sink.send(msg)).await,
        Ok(Ok(()))
    )
}

async fn sse(guard: Guard<'_>, hub: &Hub, store: &Store) -> Response {
    let o = match open(guard, hub, store, false).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let held = (Connected::new(hub, false), o.here);
    let mut missed: Vec<Vec<u8>> = o
        .missed
        .iter()
        .map(|m| match m.seq {
            0 => sse_unnumbered(m.kind, &m.html).into_bytes(),
            seq => sse_frame(seq, m.kind, &m.html).into_bytes(),
        })
        .collect();
    missed.extend(o.presence.map(|p| p.sse.as_bytes().to_vec()));
    let stream = sse_stream(o.sub, o.viewer, Some(o.expiry), missed, o.last, Some(held));
    Response::builder()
        .content_type("text/event-stream")
        .header("Cache-Control", "no-cache, no-transform")
        .header("X-Accel-Buffering", "no")
        .body(Body::from_bytes_stream(stream))
}

/// The body of one `/events` response: the backlog, then live frames and heartbeats.
fn sse_stream(
    mut sub: Subscription,
    viewer: LiveViewer,
    expiry: Option<Expiry>,
    missed: Vec<Vec<u8>>,
    mut last_sent: u64,
    held: Option<(Connected, Here)>,
) -> impl futures_util::Stream<Item = io::Result<Vec<u8>>> + Send + 'static {
    async_stream::stream! {
        let _held = held;
        for m in missed {
            yield Ok::<_, io::Error>(m);
        }
        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + SSE_HEARTBEAT, SSE_HEARTBEAT);
        // No expiry (a test of the stream alone): a deadline far away.
        let far = tokio::time::Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
        let session_ends = tokio::time::sleep_until(expiry.as_ref().map_or(far, Expiry::deadline));
        tokio::pin!(session_ends);
        loop {
            tokio::select! {
                frame = sub.frames.recv() => match sub.classify(frame, &viewer, &mut last_sent) {
                    Next::Send(r) => yield Ok(r.sse_bytes(&viewer)),
                    Next::SendUnnumbered(m) => yield Ok(m.sse.as_bytes().to_vec()),
                    Next::Skip => {}
                    // The browser reconnects (with Last-Event-ID) or learns it must sign in.
                    Next::SessionEnded | Next::FellBehind => break,
                },
                _ = heartbeat.tick() => yield Ok(b":\n\n".to_vec()),
                // The browser reconnects, and learns it must sign in again.
                _ = &mut session_ends => match expiry.as_ref().and_then(Expiry::check) {
                    Some(later) => session_ends.as_mut().reset(later),
                    None if expiry.is_none() => session_ends.as_mut().reset(far),
                    None => break,
                },
                _ = stopped(&mut sub.shutdown) => break,
            }
        }
    }
}

/// The largest `/live/viewing` form: a tab name and a file id.
const VIEWING_BODY: usize = 1024;

/// `POST /live/viewing` (`tab`, `file` = an id, or empty for none): this
/// tab of the caller's session now shows that file's history. A plain
/// request on both transports (SSE cannot speak back); same-origin and
/// CSRF-checked like every write. 204, or 409 when the tab has no live
/// connection (nothing would end the viewing).
#[handler]
pub async fn viewing(
    guard: Guard<'_>,
    Data(hub): Data<&Hub>,
    Data(files): Data<&Files>,
    body: Body,
) -> Response {
    let done = async {
        let bytes = body
            .into_bytes_limit(VIEWING_BODY)
            .await
            .map_err(|_| AppError::TooLarge("The form is too large.".into()))?;
        let fields = forms::parse_urlencoded(&bytes)?;
        let session = guard.writer(Some(&fields)).await?;
        let tab = Tab::parse(fields.get("tab").unwrap_or_default())?;
        let file = match fields.get("file").unwrap_or_default().trim() {
            "" => None,
            raw => Some(files.get(crate::http::web::parse_id(raw)?).await?.id),
        };
        hub.presence().view(&session.token_hash, &tab, file)
    };
    match done.await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => refuse(err),
    }
}

/// Resolves once shutdown has begun (the guard `wait_for` returns is
/// dropped here, so callers' futures stay `Send`).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    use tokio::sync::broadcast;

    use super::*;

    #[test]
    fn an_idle_event_stream_is_small() {
        let (frames, _) = broadcast::channel(4);
        let (shutdown, _) = watch::channel(false);
        let sub = Subscription {
            frames: frames.subscribe(),
            shutdown: shutdown.subscribe(),
        };
        let viewer = LiveViewer {
            username: "alice".into(),
            admin: false,
            token_hash: vec![0; 32],
        };
        let stream = sse_stream(sub, viewer, None, Vec::new(), 0, None);
        // hyper and poem hold ~20 KiB per HTTP/1 connection; ours stays small.
        let size = std::mem::size_of_val(&stream);
        assert!(size < 1024, "the SSE body state is {size} bytes");
    }
}
