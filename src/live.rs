//! The live hub: takes committed events in sequence order, renders each once
//! per viewer class, fans the fragments out to every connection, and serves
//! the `/ws` (WebSocket) and `/events` (SSE) endpoints with resume.
//!
//! Invariants:
//! - an event is rendered and framed (WebSocket text and SSE bytes) once per
//!   viewer class; a connection only picks its class's frame;
//! - a connection subscribes to the ring *before* its session is checked and
//!   its backlog is read, so no event and no "session ended" can slip
//!   between admission and the live loop; sequence numbers drop duplicates;
//! - a sender never waits for a reader: each connection reads from a
//!   `broadcast` ring of `QUEUE_DEPTH`; one that falls behind the ring, or
//!   whose socket accepts nothing for `SEND_TIMEOUT`, is disconnected, and
//!   its browser resumes from the event log;
//! - a connection's long-lived task holds no database handle, so a restart
//!   can reopen the data directory while old sockets are still closing;
//! - the hub is a thread, not a task: it renders off the runtime's workers
//!   and holds each event `ANSWER_FIRST` before the fan-out, so the request
//!   that caused it is answered before thousands of connection wake-ups.
//!
//! A connection ends with its session: at the session's absolute expiry,
//! and at its idle expiry, when the WebSocket is closed with
//! [`CLOSE_SESSION_ENDED`] and the SSE stream ends. An open connection is
//! not activity: idle expiry exists for the screen left signed in and
//! unattended, and a tab that is merely open would otherwise keep such a
//! session (and its live view of the vault) alive until the absolute limit.
//! Requests are activity, from any tab of the session: when one is
//! recorded, the hub tells that session's connections (`session_active`),
//! which move their deadline on. No connection reads the database for this.
//!
//! Stalled readers are dropped at two levels. The WebSocket loop times out
//! its own sends. An SSE body is only polled by hyper while hyper's buffer
//! has room, so a stalled SSE reader can only be seen at the socket:
//! [`crate::serve`] wraps each connection so that a write which makes no
//! progress for [`WRITE_STALL`] fails and hyper drops the connection (it also
//! turns Nagle off, so back-to-back events are not held for a delayed ACK).

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use poem::web::websocket::{CloseCode, Message, WebSocket, WebSocketConfig};
use poem::{Body, IntoResponse, Request, Response};
use tokio::sync::{broadcast, mpsc, watch};

use crate::App;
use crate::auth::{self, Session};
use crate::error::{AppError, AppResult};
use crate::store::{Event, EventKind, Store};
use crate::views::{self, Counters, Viewer};

/// How many rendered events a connection may fall behind before it is dropped.
pub const QUEUE_DEPTH: usize = 512;
pub const SSE_HEARTBEAT: Duration = Duration::from_secs(15);
pub const WS_PING: Duration = Duration::from_secs(25);
/// A WebSocket send that cannot complete in this time means the peer stopped reading.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// A socket write that makes no progress for this long fails (see [`crate::serve`]).
/// Longer than `SEND_TIMEOUT`: it also covers downloads on poor links.
pub const WRITE_STALL: Duration = Duration::from_secs(30);
/// How long the hub holds an event before fanning it out, so the request
/// that caused it is answered first (see `Hub::start`).
const ANSWER_FIRST: Duration = Duration::from_micros(500);
/// Most events replayed on resume before a full re-render is cheaper.
const REPLAY_LIMIT: usize = 2000;

/// WebSocket close code for "session ended, sign in again".
pub const CLOSE_SESSION_ENDED: u16 = 4001;
/// WebSocket close code for "you fell behind; reconnect to resync".
pub const CLOSE_TOO_SLOW: u16 = 4002;
/// WebSocket close code for "server restarting" (RFC 6455 registry).
pub const CLOSE_RESTART: u16 = 1012;

/// One event, rendered and framed for each viewer class.
pub struct Rendered {
    pub seq: u64,
    pub kind: EventKind,
    /// Who holds the lock after the event; that user gets the holder variant.
    holder: Option<String>,
    /// WebSocket text per class, indexed by `class_index(admin, holder)`.
    html: [String; 4],
    /// The same HTML framed as an SSE event (`id:`, `event:`, `data:` lines).
    sse: [String; 4],
    /// For one user (the holder whose lock was overridden): their own toast
    /// in place of the general one, as (user, general toast, their toast).
    personal: Option<(String, String, String)>,
}

fn class_index(admin: bool, holder: bool) -> usize {
    (admin as usize) * 2 + holder as usize
}

/// The template viewer of a class: `holder` is the holder's name when the
/// class is "holds the lock"; otherwise a name no user has, so no card is "mine".
fn class_viewer(admin: bool, holder: Option<&str>) -> Viewer {
    Viewer {
        username: holder.unwrap_or_default().to_string(),
        admin,
        csrf: None,
    }
}

impl Rendered {
    fn class_of(&self, viewer: &LiveViewer) -> usize {
        class_index(
            viewer.admin,
            self.holder.as_deref() == Some(viewer.username.as_str()),
        )
    }

    /// The viewer's HTML when it differs from its class's: the overridden
    /// holder gets their own toast instead of the general one.
    fn personal_html(&self, viewer: &LiveViewer) -> Option<String> {
        match &self.personal {
            Some((who, general, own)) if *who == viewer.username => {
                Some(swap_toast(&self.html[self.class_of(viewer)], general, own))
            }
            _ => None,
        }
    }

    fn ws_text(&self, viewer: &LiveViewer) -> String {
        self.personal_html(viewer)
            .unwrap_or_else(|| self.html[self.class_of(viewer)].clone())
    }

    fn sse_bytes(&self, viewer: &LiveViewer) -> Vec<u8> {
        match self.personal_html(viewer) {
            Some(html) => sse_frame(self.seq, self.kind.as_str(), &html).into_bytes(),
            None => self.sse[self.class_of(viewer)].as_bytes().to_vec(),
        }
    }
}

/// Puts `own` in place of the `general` toast (one toast per event, not two).
fn swap_toast(html: &str, general: &str, own: &str) -> String {
    if html.contains(general) {
        html.replacen(general, own, 1)
    } else {
        format!("{html}{own}")
    }
}

/// One SSE event. Data is split on every line ending the SSE parser knows
/// (CRLF, LF and a lone CR), so text inside the HTML cannot start a field.
pub fn sse_frame(id: u64, event: &str, data: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(data.len() + 48);
    let _ = writeln!(out, "id: {id}");
    let _ = writeln!(out, "event: {event}");
    for line in data
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .flat_map(|l| l.split('\r'))
    {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
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
    /// The ring every connection reads; its depth bounds how far one may lag.
    frames: broadcast::Sender<Frame>,
    /// Who holds each file, kept from event snapshots, for the counters.
    holders: Mutex<HashMap<u64, Option<String>>>,
    ws_connections: AtomicUsize,
    sse_connections: AtomicUsize,
    events_published: AtomicU64,
    shutdown: watch::Sender<bool>,
    /// Per session with live connections (by token hash): its last
    /// recorded activity, so those connections can move their idle deadline.
    sessions: Mutex<HashMap<Vec<u8>, watch::Sender<i64>>>,
}

/// What a connection keeps of its session: enough to pick its class and to
/// notice when the session ends.
#[derive(Clone)]
struct LiveViewer {
    username: String,
    admin: bool,
    token_hash: Vec<u8>,
}

impl LiveViewer {
    fn of(session: &Session) -> LiveViewer {
        let v = Viewer::of(session);
        LiveViewer {
            username: v.username,
            admin: v.admin,
            token_hash: session.token_hash.clone(),
        }
    }

    /// The template viewer for this person (a full re-render).
    fn viewer(&self) -> Viewer {
        Viewer {
            username: self.username.clone(),
            admin: self.admin,
            csrf: None,
        }
    }

    /// The template viewer for this connection's class of an event held by `holder`.
    fn class_viewer(&self, holder: Option<&str>) -> Viewer {
        class_viewer(self.admin, holder.filter(|h| *h == self.username))
    }
}

/// A connection's view of the hub, taken before it is admitted.
struct Subscription {
    frames: broadcast::Receiver<Frame>,
    shutdown: watch::Receiver<bool>,
}

/// When a connection's session ends: absolute expiry, or idle expiry
/// counted from the session's last recorded activity.
struct Expiry {
    created_at: i64,
    last_seen: i64,
    idle: i64,
    absolute: i64,
    /// Activity recorded after admission (see `Hub::session_active`).
    seen: watch::Receiver<i64>,
}

impl Expiry {
    fn of(app: &App, session: &Session, seen: watch::Receiver<i64>) -> Expiry {
        Expiry {
            created_at: session.created_at,
            last_seen: session.last_seen,
            idle: app.config.session_idle.as_secs() as i64,
            absolute: app.config.session_absolute.as_secs() as i64,
            seen,
        }
    }

    /// The first unix second at which `auth::find_session` refuses the
    /// session, given the activity recorded so far.
    fn unix_deadline(&self) -> i64 {
        let last_seen = self.last_seen.max(*self.seen.borrow());
        let idle = last_seen.saturating_add(self.idle);
        let absolute = self.created_at.saturating_add(self.absolute);
        idle.min(absolute).saturating_add(1)
    }

    /// The deadline on the runtime's clock; never early (`now()` truncates).
    fn deadline(&self) -> tokio::time::Instant {
        let secs = self
            .unix_deadline()
            .saturating_sub(crate::store::now())
            .max(0) as u64;
        tokio::time::Instant::now() + Duration::from_secs(secs)
    }

    /// At a timer's firing: whether the session has ended, or else the
    /// deadline that activity moved it to.
    fn check(&self) -> Option<tokio::time::Instant> {
        (self.unix_deadline() > crate::store::now()).then(|| self.deadline())
    }
}

/// What the connection loop does with one frame from the ring.
enum Next {
    Send(Arc<Rendered>),
    Skip,
    SessionEnded,
    FellBehind,
}

impl Subscription {
    fn classify(
        &self,
        frame: Result<Frame, broadcast::error::RecvError>,
        viewer: &LiveViewer,
        last_sent: &mut u64,
    ) -> Next {
        match frame {
            Ok(Frame::Event(r)) if r.seq > *last_sent => {
                *last_sent = r.seq;
                Next::Send(r)
            }
            Ok(Frame::Event(_)) => Next::Skip,
            Ok(Frame::EndUser(u)) if u == viewer.username => Next::SessionEnded,
            Ok(Frame::EndSession(h)) if h == viewer.token_hash => Next::SessionEnded,
            Ok(_) => Next::Skip,
            // Lagged, or the hub is gone: either way this stream cannot continue.
            Err(_) => Next::FellBehind,
        }
    }
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
        let (shutdown, _) = watch::channel(false);
        let hub = Hub {
            shared: Arc::new(Shared {
                frames,
                holders: Mutex::new(holders),
                ws_connections: AtomicUsize::new(0),
                sse_connections: AtomicUsize::new(0),
                events_published: AtomicU64::new(0),
                shutdown,
                sessions: Mutex::new(HashMap::new()),
            }),
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Arc<Event>>();
        store.set_event_sink(tx);
        let worker = hub.clone();
        // A thread of its own, not a task, so rendering stays off the
        // workers and the request that caused an event is answered before
        // its fan-out: that request's task is woken just after the event is
        // handed over here, and must not queue behind thousands of
        // connection wake-ups (nor be preempted by this thread making them).
        std::thread::Builder::new()
            .name("latch-hub".into())
            .spawn(move || {
                while let Some(event) = rx.blocking_recv() {
                    std::thread::sleep(ANSWER_FIRST);
                    worker.publish(&event);
                    // What arrived meanwhile has waited long enough.
                    while let Ok(event) = rx.try_recv() {
                        worker.publish(&event);
                    }
                }
            })
            .map_err(|e| AppError::internal("starting the live hub", e))?;
        Ok(hub)
    }

    fn subscribe(&self) -> Subscription {
        Subscription {
            frames: self.shared.frames.subscribe(),
            shutdown: self.shared.shutdown.subscribe(),
        }
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

    /// Renders `event` for each class that can exist and puts it on the ring.
    pub fn render(event: &Event, counters: Counters) -> Rendered {
        let holder = event
            .file
            .as_ref()
            .and_then(|f| f.locked_by())
            .map(str::to_string);
        let render = |admin: bool, is_holder: bool| {
            let viewer = class_viewer(admin, holder.as_deref().filter(|_| is_holder));
            views::event_fragment(event, &viewer, counters)
        };
        let user = render(false, false);
        let admin = render(true, false);
        // With no holder, nobody is in a holder class: reuse the plain variants.
        let (user_holder, admin_holder) = match holder {
            Some(_) => (render(false, true), render(true, true)),
            None => (user.clone(), admin.clone()),
        };
        let html = [user, user_holder, admin, admin_holder];
        let sse = html
            .each_ref()
            .map(|h| sse_frame(event.seq, event.kind.as_str(), h));
        let personal = match (&event.kind, &event.previous_holder) {
            (EventKind::Overridden, Some(prev)) => Some((
                prev.clone(),
                views::override_toast(event),
                views::override_notice(event),
            )),
            _ => None,
        };
        Rendered {
            seq: event.seq,
            kind: event.kind,
            holder,
            html,
            sse,
            personal,
        }
    }

    fn publish(&self, event: &Event) {
        let counters = self.counters_after(event);
        let rendered = Hub::render(event, counters);
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

    /// Activity of a session was recorded at `at` (unix seconds): its live
    /// connections' idle deadline moves on.
    pub fn session_active(&self, token_hash: &[u8], at: i64) {
        let mut sessions = self
            .shared
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(seen) = sessions.get(token_hash) {
            if seen.receiver_count() == 0 {
                sessions.remove(token_hash);
            } else {
                seen.send_if_modified(|last| {
                    let newer = at > *last;
                    *last = (*last).max(at);
                    newer
                });
            }
        }
    }

    /// A receiver of a session's recorded activity, taken before the
    /// session is checked so no activity can slip between.
    fn watch_session(&self, token_hash: &[u8]) -> watch::Receiver<i64> {
        let mut sessions = self
            .shared
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Sessions whose connections all ended are dropped now and then.
        if sessions.len() >= 1024 && sessions.len().is_power_of_two() {
            sessions.retain(|_, seen| seen.receiver_count() > 0);
        }
        sessions
            .entry(token_hash.to_vec())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Closes WebSockets with 1012 and ends SSE streams.
    pub fn shutdown(&self) {
        let _ = self.shared.shutdown.send(true);
    }

    /// Open (WebSocket, SSE) connections.
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
struct Connected {
    hub: Arc<Shared>,
    ws: bool,
}

impl Connected {
    fn new(hub: &Hub, ws: bool) -> Self {
        Self::counter(&hub.shared, ws).fetch_add(1, Ordering::Relaxed);
        Connected {
            hub: hub.shared.clone(),
            ws,
        }
    }

    fn counter(shared: &Shared, ws: bool) -> &AtomicUsize {
        if ws {
            &shared.ws_connections
        } else {
            &shared.sse_connections
        }
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        Self::counter(&self.hub, self.ws).fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where a connecting client says it left off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resume {
    /// No resume point: a page just rendered, nothing to catch up.
    Fresh,
    /// The last sequence it saw.
    After(u64),
    /// A resume point that is no sequence number (`abc`, `-1`, past u64):
    /// what the client missed is unknown, so only a full re-render is safe.
    Unreadable,
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

/// One message owed to a connecting client before live frames.
struct Missed {
    seq: u64,
    kind: &'static str,
    html: String,
}

/// Missed events, or a full re-render when the log no longer reaches back
/// (or the client claims a sequence this server never issued). Returns the
/// messages and the newest sequence they cover.
async fn catch_up(
    store: Store,
    viewer: LiveViewer,
    resume: Resume,
) -> AppResult<(Vec<Missed>, u64)> {
    tokio::task::spawn_blocking(move || {
        let last = store.last_seq()?;
        let (events, complete) = match resume {
            Resume::Fresh => return Ok((Vec::new(), last)),
            Resume::After(since) if since == last => return Ok((Vec::new(), last)),
            Resume::After(since) if since < last => store.events_after(since, REPLAY_LIMIT + 1)?,
            // A future this server never had (data restored from a backup),
            // or no sequence at all: only a full re-render is truthful.
            Resume::After(_) | Resume::Unreadable => (Vec::new(), false),
        };
        if !complete || events.len() > REPLAY_LIMIT {
            let files = store.all_files()?;
            // The list is read after `last`: it may already show later
            // events, which then arrive again as harmless re-renders.
            let html = views::resync_fragment(&files, &viewer.viewer(), last);
            return Ok((
                vec![Missed {
                    seq: last,
                    kind: "resync",
                    html,
                }],
                last,
            ));
        }
        let counters = Counters::of(&store.all_files()?);
        let mut newest = last;
        let out = events
            .iter()
            .map(|e| {
                newest = newest.max(e.seq);
                let holder = e.file.as_ref().and_then(|f| f.locked_by());
                let mut html = views::event_fragment(e, &viewer.class_viewer(holder), counters);
                if e.kind == EventKind::Overridden
                    && e.previous_holder.as_deref() == Some(viewer.username.as_str())
                {
                    html = swap_toast(&html, &views::override_toast(e), &views::override_notice(e));
                }
                Missed {
                    seq: e.seq,
                    kind: e.kind.as_str(),
                    html,
                }
            })
            .collect();
        // Events committed after `last` was read may be in the replay: the
        // ring must not send them again.
        Ok((out, newest))
    })
    .await?
}

/// Both endpoints: a same-origin browser and a session are required before upgrading.
async fn admit(app: &App, req: &Request, websocket: bool) -> AppResult<Session> {
    if websocket && !req.headers().contains_key(poem::http::header::ORIGIN) {
        return Err(AppError::Forbidden(
            "A WebSocket needs an Origin header.".into(),
        ));
    }
    auth::check_same_origin(app, req)?;
    auth::request_session(app, req)
        .await?
        .ok_or_else(|| AppError::Unauthenticated("Sign in to receive live updates.".into()))
}

fn refuse(err: AppError) -> Response {
    err.log();
    Response::builder()
        .status(err.status())
        .content_type("text/plain; charset=utf-8")
        .body(err.public_message())
}

/// Admission and backlog, shared by both endpoints.
async fn open(
    app: &App,
    req: &Request,
    websocket: bool,
) -> Result<(Subscription, LiveViewer, Expiry, Vec<Missed>, u64), Response> {
    // Subscribe first: a session ended after this point reaches us as a
    // frame; one ended before it fails the session check below. Likewise
    // activity recorded after this point moves the idle deadline.
    let sub = app.hub.subscribe();
    let cookie = auth::session_cookie(req).unwrap_or_default();
    let seen = app.hub.watch_session(&auth::sha256(cookie.as_bytes()));
    let session = admit(app, req, websocket).await.map_err(refuse)?;
    let viewer = LiveViewer::of(&session);
    let expiry = Expiry::of(app, &session, seen);
    let (missed, last) = catch_up(app.store.clone(), viewer.clone(), resume_point(req))
        .await
        .map_err(refuse)?;
    Ok((sub, viewer, expiry, missed, last))
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

pub async fn websocket(app: &App, req: &Request, ws: WebSocket) -> Response {
    let (sub, viewer, expiry, missed, last) = match open(app, req, true).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let hub = app.hub.clone();
    ws.config(ws_config())
        .on_upgrade(move |socket| ws_session(socket, hub, sub, viewer, expiry, missed, last))
        .into_response()
}

type WsSink = futures_util::stream::SplitSink<poem::web::websocket::WebSocketStream, Message>;

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some((CloseCode::from(code), reason.to_string())))
}

async fn ws_session(
    socket: poem::web::websocket::WebSocketStream,
    hub: Hub,
    mut sub: Subscription,
    viewer: LiveViewer,
    expiry: Expiry,
    missed: Vec<Missed>,
    mut last_sent: u64,
) {
    let _counted = Connected::new(&hub, true);
    drop(hub);
    let (mut sink, mut stream) = socket.split();
    for m in missed {
        if !send(&mut sink, Message::Text(m.html)).await {
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

pub async fn sse(app: &App, req: &Request) -> Response {
    let (sub, viewer, expiry, missed, last_sent) = match open(app, req, false).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let counted = Connected::new(&app.hub, false);
    let stream = sse_stream(sub, viewer, Some(expiry), missed, last_sent, Some(counted));
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
    missed: Vec<Missed>,
    mut last_sent: u64,
    counted: Option<Connected>,
) -> impl futures_util::Stream<Item = io::Result<Vec<u8>>> + Send + 'static {
    async_stream::stream! {
        let _counted = counted;
        for m in missed {
            yield Ok::<_, io::Error>(sse_frame(m.seq, m.kind, &m.html).into_bytes());
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

/// Resolves once shutdown has begun (the guard `wait_for` returns is
/// dropped here, so callers' futures stay `Send`).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn sse_data_is_split_on_every_line_ending() {
        let frame = sse_frame(7, "locked", "a\nb\r\nc\rid: 99\n");
        assert_eq!(
            frame,
            "id: 7\nevent: locked\ndata: a\ndata: b\ndata: c\ndata: id: 99\ndata: \n\n"
        );
    }
}
