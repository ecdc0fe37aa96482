//! The live hub: takes committed events in sequence order, renders each once
//! per viewer class, fans the fragments out to every connection, and serves
//! the `/ws` (WebSocket) and `/events` (SSE) endpoints with resume.
//!
//! Each connection reads from a `broadcast` ring of bounded size: a sender
//! never waits for a reader, and a reader that falls behind the ring is
//! disconnected (its browser reconnects and resumes from the event log).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use poem::web::sse::{Event as SseEvent, SSE};
use poem::web::websocket::{CloseCode, Message, WebSocket, WebSocketConfig};
use poem::{IntoResponse, Request, Response};
use tokio::sync::{broadcast, mpsc};

use crate::App;
use crate::auth::{self, Session};
use crate::error::{AppError, AppResult};
use crate::store::{Event, EventKind, Store};
use crate::views::{self, Counters, Viewer};

/// How many rendered events a connection may fall behind before it is dropped.
pub const QUEUE_DEPTH: usize = 512;
pub const SSE_HEARTBEAT: Duration = Duration::from_secs(15);
pub const WS_PING: Duration = Duration::from_secs(25);
/// A send that cannot complete in this time means the peer stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Most events replayed on resume before a full re-render is cheaper.
const REPLAY_LIMIT: usize = 2000;

/// WebSocket close code for "session ended, sign in again".
pub const CLOSE_SESSION_ENDED: u16 = 4001;
/// WebSocket close code for "you fell behind; reconnect to resync".
pub const CLOSE_TOO_SLOW: u16 = 4002;

/// One event rendered for each viewer class.
pub struct Rendered {
    pub seq: u64,
    pub kind: EventKind,
    /// Who holds the lock after the event; that user gets the holder variant.
    pub holder: Option<String>,
    /// Indexed by `class_index(admin, holder)`.
    pub variants: [String; 4],
    /// An extra toast for one user (the holder whose lock was overridden).
    pub personal: Option<(String, String)>,
}

fn class_index(admin: bool, holder: bool) -> usize {
    (admin as usize) * 2 + holder as usize
}

impl Rendered {
    fn for_viewer(&self, username: &str, admin: bool) -> String {
        let holder = self.holder.as_deref() == Some(username);
        let mut html = self.variants[class_index(admin, holder)].clone();
        if let Some((who, extra)) = &self.personal
            && who == username
        {
            html.push_str(extra);
        }
        html
    }
}

#[derive(Clone)]
pub enum Frame {
    Event(Arc<Rendered>),
    /// Close every connection of this user (session ended, disabled…).
    EndUser(String),
    /// Close every connection of this session.
    EndSession(Vec<u8>),
}

#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

struct Shared {
    frames: broadcast::Sender<Frame>,
    /// Who holds each file, kept from event snapshots, for the counters.
    holders: Mutex<HashMap<u64, Option<String>>>,
    ws_connections: AtomicUsize,
    sse_connections: AtomicUsize,
    events_published: AtomicU64,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl Hub {
    /// Starts the hub: the store hands it every committed event, in order.
    pub fn start(store: Store) -> AppResult<Hub> {
        let (frames, _) = broadcast::channel(QUEUE_DEPTH);
        let files = store.all_files()?;
        let holders = files
            .iter()
            .map(|f| (f.id, f.lock.as_ref().map(|l| l.owner.clone())))
            .collect();
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let hub = Hub {
            shared: Arc::new(Shared {
                frames,
                holders: Mutex::new(holders),
                ws_connections: AtomicUsize::new(0),
                sse_connections: AtomicUsize::new(0),
                events_published: AtomicU64::new(0),
                shutdown,
            }),
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Arc<Event>>();
        store.set_event_sink(tx);
        let worker = hub.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                worker.publish(&event);
            }
        });
        Ok(hub)
    }

    fn counters_after(&self, event: &Event) -> Counters {
        let mut holders = self
            .shared
            .holders
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match &event.file {
            Some(f) => {
                holders.insert(f.id, f.lock.as_ref().map(|l| l.owner.clone()));
            }
            None => {
                holders.remove(&event.file_id);
            }
        }
        Counters {
            files: holders.len(),
            locked: holders.values().filter(|h| h.is_some()).count(),
        }
    }

    fn publish(&self, event: &Event) {
        let counters = self.counters_after(event);
        let holder = event
            .file
            .as_ref()
            .and_then(|f| f.locked_by())
            .map(str::to_string);
        let render = |admin: bool, is_holder: bool| {
            let viewer = Viewer {
                // The holder variant must see the holder's own name; others a name that is never a user.
                username: if is_holder {
                    holder.clone().unwrap_or_default()
                } else {
                    String::new()
                },
                admin,
                csrf: None,
            };
            views::event_fragment(event, &viewer, counters)
        };
        let variants = [
            render(false, false),
            render(false, true),
            render(true, false),
            render(true, true),
        ];
        let personal = match (&event.kind, &event.previous_holder) {
            (EventKind::Overridden, Some(prev)) => {
                Some((prev.clone(), views::override_notice(event)))
            }
            _ => None,
        };
        let rendered = Rendered {
            seq: event.seq,
            kind: event.kind,
            holder,
            variants,
            personal,
        };
        self.shared.events_published.fetch_add(1, Ordering::Relaxed);
        tracing::info!(seq = event.seq, kind = event.kind.as_str(), file = event.file_id, actor = %event.actor, "state change");
        // No receivers is fine: nobody is watching.
        let _ = self.shared.frames.send(Frame::Event(Arc::new(rendered)));
    }

    pub fn end_user(&self, username: &str) {
        let _ = self
            .shared
            .frames
            .send(Frame::EndUser(username.to_string()));
    }

    pub fn end_session(&self, token_hash: &[u8]) {
        let _ = self
            .shared
            .frames
            .send(Frame::EndSession(token_hash.to_vec()));
    }

    /// Closes WebSockets with 1012 and ends SSE streams.
    pub fn shutdown(&self) {
        let _ = self.shared.shutdown.send(true);
    }

    pub fn connections(&self) -> (usize, usize) {
        (
            self.shared.ws_connections.load(Ordering::Relaxed),
            self.shared.sse_connections.load(Ordering::Relaxed),
        )
    }

    pub fn events_published(&self) -> u64 {
        self.shared.events_published.load(Ordering::Relaxed)
    }
}

/// Counts a live connection for as long as it is held.
struct Connected<'a>(&'a AtomicUsize);

impl<'a> Connected<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Connected(counter)
    }
}

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The last sequence a client saw, from `Last-Event-ID` or `?last_event_id=`.
fn resume_point(req: &Request) -> Option<u64> {
    let header = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    header.or_else(|| {
        req.uri().query().and_then(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == "last_event_id")
                .and_then(|(_, v)| v.parse().ok())
        })
    })
}

/// What a connecting client needs before live frames: missed events, or a full list.
async fn catch_up(
    app: &App,
    viewer: &Viewer,
    since: Option<u64>,
) -> AppResult<(Vec<(u64, &'static str, String)>, u64)> {
    let store = app.store.clone();
    let viewer = viewer.clone();
    tokio::task::spawn_blocking(move || {
        let last = store.last_seq()?;
        let Some(since) = since else {
            return Ok((Vec::new(), last));
        };
        if since == last {
            return Ok((Vec::new(), last));
        }
        let (events, complete) = if since > last {
            // The client knows a future this server never had (data restored
            // from a backup): only a full re-render is truthful.
            (Vec::new(), false)
        } else {
            store.events_after(since, REPLAY_LIMIT + 1)?
        };
        if !complete || events.len() > REPLAY_LIMIT {
            let files = store.all_files()?;
            let html = views::resync_fragment(&files, &viewer, last);
            return Ok((vec![(last, "resync", html)], last));
        }
        let files = store.all_files()?;
        let counters = Counters::of(&files);
        let out = events
            .iter()
            .map(|e| {
                let holder =
                    e.file.as_ref().and_then(|f| f.locked_by()) == Some(viewer.username.as_str());
                let class_viewer = Viewer {
                    username: if holder {
                        viewer.username.clone()
                    } else {
                        String::new()
                    },
                    ..viewer.clone()
                };
                (
                    e.seq,
                    e.kind.as_str(),
                    views::event_fragment(e, &class_viewer, counters),
                )
            })
            .collect();
        Ok((out, last))
    })
    .await?
}

/// Both endpoints: a session and a same-origin browser are required before upgrading.
async fn admit(app: &App, req: &Request) -> AppResult<Session> {
    let session = auth::request_session(app, req)
        .await?
        .ok_or_else(|| AppError::Unauthenticated("Sign in to receive live updates.".into()))?;
    let origin = req.headers().get(poem::http::header::ORIGIN);
    if origin.is_none() && req.headers().contains_key(poem::http::header::UPGRADE) {
        return Err(AppError::Forbidden(
            "A WebSocket needs an Origin header.".into(),
        ));
    }
    auth::check_same_origin(app, req)?;
    Ok(session)
}

fn refuse(err: AppError) -> Response {
    err.log();
    Response::builder()
        .status(err.status())
        .content_type("text/plain; charset=utf-8")
        .body(err.public_message())
}

pub async fn websocket(app: &App, req: &Request, ws: WebSocket) -> Response {
    let session = match admit(app, req).await {
        Ok(s) => s,
        Err(e) => return refuse(e),
    };
    let since = resume_point(req);
    let app = app.clone();
    let mut config = WebSocketConfig::default();
    // An idle connection should cost little: tungstenite reserves its read
    // buffer per socket, and browsers only send pongs and closes.
    config.read_buffer_size = 4 * 1024;
    config.write_buffer_size = 0;
    config.max_message_size = Some(64 * 1024);
    config.max_frame_size = Some(64 * 1024);
    ws.config(config)
        .on_upgrade(move |socket| async move {
            let hub = app.hub.clone();
            let _counted = Connected::new(&hub.shared.ws_connections);
            let mut frames = hub.shared.frames.subscribe();
            let mut shutdown = hub.shared.shutdown.subscribe();
            let viewer = Viewer::of(&session);
            let (mut sink, mut stream) = socket.split();
            let mut last_sent = match catch_up(&app, &viewer, since).await {
                Ok((items, last)) => {
                    for (_, _, html) in items {
                        if !send(&mut sink, Message::Text(html)).await {
                            return;
                        }
                    }
                    last
                }
                Err(e) => {
                    e.log();
                    return;
                }
            };
            let mut ping = tokio::time::interval(WS_PING);
            ping.tick().await;
            let mut awaiting_pong = false;
            let close = |code: u16, reason: &'static str| Message::Close(Some((CloseCode::from(code), reason.to_string())));
            loop {
                tokio::select! {
                    frame = frames.recv() => match frame {
                        Ok(Frame::Event(r)) => {
                            if r.seq <= last_sent { continue; }
                            last_sent = r.seq;
                            if !send(&mut sink, Message::Text(r.for_viewer(&viewer.username, viewer.admin))).await {
                                break;
                            }
                        }
                        Ok(Frame::EndUser(u)) if u == viewer.username => {
                            let _ = send(&mut sink, close(CLOSE_SESSION_ENDED, "session ended")).await;
                            break;
                        }
                        Ok(Frame::EndSession(h)) if h == session.token_hash => {
                            let _ = send(&mut sink, close(CLOSE_SESSION_ENDED, "session ended")).await;
                            break;
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            let _ = send(&mut sink, close(CLOSE_TOO_SLOW, "fell behind; reconnect")).await;
                            break;
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
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
                    _ = stopped(&mut shutdown) => {
                        let _ = send(&mut sink, close(1012, "server restarting")).await;
                        break;
                    }
                }
            }
        })
        .into_response()
}

pub async fn sse(app: &App, req: &Request) -> Response {
    let session = match admit(app, req).await {
        Ok(s) => s,
        Err(e) => return refuse(e),
    };
    let viewer = Viewer::of(&session);
    let hub = app.hub.clone();
    let mut frames = hub.shared.frames.subscribe();
    let mut shutdown = hub.shared.shutdown.subscribe();
    let (catch_up_items, mut last_sent) = match catch_up(app, &viewer, resume_point(req)).await {
        Ok(x) => x,
        Err(e) => return refuse(e),
    };
    let stream = async_stream::stream! {
        let _counted = Connected::new(&hub.shared.sse_connections);
        for (seq, kind, html) in catch_up_items {
            yield SseEvent::message(html).event_type(kind).id(seq.to_string());
        }
        loop {
            tokio::select! {
                frame = frames.recv() => match frame {
                    Ok(Frame::Event(r)) => {
                        if r.seq <= last_sent { continue; }
                        last_sent = r.seq;
                        yield SseEvent::message(r.for_viewer(&viewer.username, viewer.admin))
                            .event_type(r.kind.as_str())
                            .id(r.seq.to_string());
                    }
                    Ok(Frame::EndUser(u)) if u == viewer.username => break,
                    Ok(Frame::EndSession(h)) if h == session.token_hash => break,
                    Ok(_) => {}
                    // Fell behind: end the stream; the browser reconnects with Last-Event-ID.
                    Err(_) => break,
                },
                _ = stopped(&mut shutdown) => break,
            }
        }
    };
    SSE::new(stream)
        .keep_alive(SSE_HEARTBEAT)
        .into_response()
        .with_header("X-Accel-Buffering", "no")
        .with_header("Cache-Control", "no-cache, no-transform")
        .into_response()
}

type WsSink = futures_util::stream::SplitSink<poem::web::websocket::WebSocketStream, Message>;

/// Sends one message; false when the peer is gone or stopped reading.
async fn send(sink: &mut WsSink, msg: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, sink.send(msg)).await,
        Ok(Ok(()))
    )
}

/// Resolves once shutdown has begun (the guard `wait_for` returns is
/// dropped here, so callers' futures stay `Send`).
async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
