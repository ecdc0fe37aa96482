//! The live hub: takes committed events in sequence order, renders each once
//! per viewer class (through the [`Render`] the HTTP side gives it), and
//! fans the fragments out to every connection; and what a connection needs
//! to resume (the backlog it missed, when its session ends). The `/ws` and
//! `/events` endpoints that carry it are `http::live`.
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
//! `CLOSE_SESSION_ENDED` and the SSE stream ends. An open connection is
//! not activity: idle expiry exists for the screen left signed in and
//! unattended, and a tab that is merely open would otherwise keep such a
//! session (and its live view of the vault) alive until the absolute limit.
//! Requests are activity, from any tab of the session: when one is
//! recorded, the hub tells that session's connections (`session_active`),
//! which move their deadline on. No connection reads the database for this.
//!
//! Stalled readers are dropped at two levels. The WebSocket loop times out
//! its own sends. An SSE body is only polled while the socket takes its
//! chunks (once its head is sent, `http::serve` takes the stream out of
//! hyper and writes it itself), so a stalled SSE reader can only be seen at
//! the socket: `http::serve` wraps each connection so that a write which
//! makes no progress for [`WRITE_STALL`] fails and the connection is dropped
//! (it also turns Nagle off, so back-to-back events are not held for a
//! delayed ACK).
//!
//! Long because the hub and what a connection needs from it (its class,
//! its backlog, when its session ends) share the invariants above; split,
//! each half would have to restate them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};

use crate::accounts::{Session, SessionPolicy};
use crate::domain::Role;
use crate::error::{AppError, AppResult};
use crate::inbox::InboxChange;
use crate::presence::{Presence, Snapshot};
use crate::store::{Committed, Event, EventKind, FileRecord, Store};

/// What decides which buttons a viewer gets. Live fragments are rendered
/// once per class, never per connection.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub username: String,
    pub admin: bool,
    /// Present for page renders (plain forms need it); live fragments rely
    /// on the `X-CSRF-Token` header htmx sends from `<body hx-headers>`.
    pub csrf: Option<String>,
}

impl Viewer {
    pub fn of(session: &Session) -> Viewer {
        Viewer {
            username: session.user.username.clone(),
            admin: session.user.role == Role::Admin,
            csrf: Some(session.csrf_token.clone()),
        }
    }
}

/// Counts shown in the toolbar, kept current by live pushes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub files: usize,
    pub locked: usize,
    /// Held for the first in line: neither checked out nor available.
    pub reserved: usize,
}

/// How a file counts: checked out, reserved, or available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    Available,
    Locked,
    Reserved,
}

impl Counted {
    fn of(f: &FileRecord) -> Counted {
        Counted::at(f, crate::store::now())
    }

    /// At the unix second `at`: one clock reading for a whole list.
    fn at(f: &FileRecord, at: i64) -> Counted {
        if f.lock.is_some() {
            Counted::Locked
        } else if f.reserved_for(at).is_some() {
            Counted::Reserved
        } else {
            Counted::Available
        }
    }
}

impl Counters {
    pub fn of(files: &[FileRecord]) -> Counters {
        let at = crate::store::now();
        Counters::count(files.iter().map(|f| Counted::at(f, at)))
    }

    fn count(states: impl Iterator<Item = Counted>) -> Counters {
        states.fold(Counters::default(), |mut c, state| {
            c.files += 1;
            match state {
                Counted::Locked => c.locked += 1,
                Counted::Reserved => c.reserved += 1,
                Counted::Available => {}
            }
            c
        })
    }
}

/// How events look to a viewer: the HTML templates, given to the hub by
/// the HTTP side, so the hub renders without knowing the markup.
pub trait Render: Send + Sync + 'static {
    /// The fragment `event` pushes to `viewer` (card, counters, activity, toast).
    fn event(&self, event: &Event, viewer: &Viewer, counters: Counters) -> String;
    /// The toast everyone gets when a lock is overridden…
    fn override_toast(&self, event: &Event) -> String;
    /// …and the one the holder whose lock it was gets instead.
    fn override_notice(&self, event: &Event) -> String;
    /// The whole file list, for a viewer whose backlog cannot be replayed.
    fn resync(&self, files: &[FileRecord], viewer: &Viewer, seq: u64) -> String;
    /// What one person's connections get when their inbox changes: the
    /// bell's count and, for a new notification, a toast.
    fn inbox(&self, change: &InboxChange) -> String;
    /// A card that changed with time alone (its lock turned stale): the
    /// card, and nothing an event would bring (no toast, no activity line).
    fn refresh(&self, file: &FileRecord, viewer: &Viewer) -> String;
    /// Presence (the same for everyone): who is online, and the viewing
    /// line of each file in `files`.
    fn presence(&self, _snapshot: &Snapshot, _files: &[u64]) -> String {
        String::new()
    }
    /// The one toast of a change of several files (their events are
    /// rendered without toasts of their own).
    fn together_toast(&self, _events: &[Arc<Event>]) -> String {
        String::new()
    }
}

/// How many rendered events a connection may fall behind before it is dropped.
pub const QUEUE_DEPTH: usize = 512;
pub const SSE_HEARTBEAT: Duration = Duration::from_secs(15);
pub const WS_PING: Duration = Duration::from_secs(25);
/// A WebSocket send that cannot complete in this time means the peer stopped reading.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// A socket write that makes no progress for this long fails (see `http::serve`).
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

/// One event, rendered and framed for each viewer class; or a refresh of
/// a card that changed with time alone, which is no event.
pub struct Rendered {
    /// The event's sequence number; for a refresh, the last event it reflects.
    pub seq: u64,
    /// A refresh has no sequence number of its own: it is framed without
    /// an SSE `id:` and moves no connection's resume point.
    pub numbered: bool,
    /// The SSE event name: the event's kind, or `refresh`.
    pub name: &'static str,
    /// Who holds the lock after the event; that user gets the holder variant.
    holder: Option<String>,
    /// WebSocket text per class, indexed by `class_index(admin, holder)`.
    html: [String; 4],
    /// The same HTML framed as an SSE event (`id:`, `event:`, `data:` lines).
    sse: [String; 4],
    /// For one user (the holder whose lock was overridden): their own toast
    /// in place of the general one, as (user, general toast, their toast).
    personal: Option<(String, String, String)>,
    /// The people the card shows other buttons to than their class gets:
    /// those waiting in line ("Leave the line") and the one the file is
    /// reserved for ("Check out", "Decline"). Two more classes, each
    /// rendered once (user and admin), however long the line.
    waiting: Option<Variant>,
    reserved: Option<Variant>,
    /// For each person the event notified: their bell and toast, sent
    /// after their class's fragment (a few bytes each, so rendering one per
    /// recipient keeps the cost of a watched file flat).
    inbox: HashMap<String, String>,
    /// The further events of one change of several files, sent in the same
    /// message after this one's (`seq` is then the last of them), and the
    /// one toast they share.
    together: Vec<Rendered>,
    together_toast: String,
}

/// A class of viewers picked out by name, and its render for users and admins.
struct Variant {
    who: HashSet<String>,
    /// WebSocket text and SSE frame, indexed by `admin as usize`.
    frames: [(String, String); 2],
}

impl Variant {
    fn frame(&self, viewer: &LiveViewer) -> Option<&(String, String)> {
        self.who
            .contains(&viewer.username)
            .then(|| &self.frames[viewer.admin as usize])
    }
}

/// The two name-picked classes of an event's card: those waiting in line,
/// and the one the file is reserved for. Each is a template viewer of
/// that class (any member renders the same card) and the class's members.
fn named_classes(event: &Event) -> [Option<(&str, HashSet<String>)>; 2] {
    let Some(f) = &event.file else {
        return [None, None];
    };
    let waiting = f
        .queue
        .first()
        .map(|first| (first.as_str(), f.queue.iter().cloned().collect()));
    let reserved = f
        .reserved
        .as_ref()
        .map(|r| (r.username.as_str(), HashSet::from([r.username.clone()])));
    [waiting, reserved]
}

/// Whether `username` is in one of the event's name-picked classes.
fn named(event: &Event, username: &str) -> bool {
    event.file.as_ref().is_some_and(|f| {
        f.is_queued(username) || f.reserved.as_ref().is_some_and(|r| r.username == username)
    })
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

    /// The viewer's HTML when it differs from its class's: their own card
    /// (they wait in line, or the file is theirs to take), and the
    /// overridden holder's own toast instead of the general one.
    fn personal_html(&self, viewer: &LiveViewer) -> Option<String> {
        match &self.personal {
            Some((who, general, toast)) if *who == viewer.username => Some(swap_toast(
                self.named(viewer)
                    .map_or(&self.html[self.class_of(viewer)], |(html, _)| html),
                general,
                toast,
            )),
            _ => None,
        }
    }

    /// The viewer's frames when a name-picked class holds them.
    fn named(&self, viewer: &LiveViewer) -> Option<&(String, String)> {
        self.reserved
            .as_ref()
            .and_then(|v| v.frame(viewer))
            .or_else(|| self.waiting.as_ref().and_then(|v| v.frame(viewer)))
    }

    /// The viewer's HTML when it differs from its class's (see
    /// `personal_html`), with their inbox change after it if they have one.
    fn own_html(&self, viewer: &LiveViewer) -> Option<String> {
        let own = self.inbox.get(&viewer.username);
        let base = match (self.personal_html(viewer), own) {
            (Some(html), _) => html,
            (None, None) => return None,
            (None, Some(_)) => match self.named(viewer) {
                Some((html, _)) => html.clone(),
                None => self.html[self.class_of(viewer)].clone(),
            },
        };
        Some(match own {
            Some(extra) => base + extra,
            None => base,
        })
    }

    pub fn ws_text(&self, viewer: &LiveViewer) -> String {
        if self.together.is_empty() {
            return self.ws_one(viewer);
        }
        let mut out = self.ws_one(viewer);
        for part in &self.together {
            out.push_str(&part.ws_one(viewer));
        }
        out.push_str(&self.together_toast);
        out
    }

    /// This event's own HTML for `viewer`, without the events that came with it.
    fn ws_one(&self, viewer: &LiveViewer) -> String {
        if let Some(html) = self.own_html(viewer) {
            return html;
        }
        match self.named(viewer) {
            Some((html, _)) => html.clone(),
            None => self.html[self.class_of(viewer)].clone(),
        }
    }

    pub fn sse_bytes(&self, viewer: &LiveViewer) -> Vec<u8> {
        if !self.together.is_empty() {
            return frame_sse(Some(self.seq), self.name, &self.ws_text(viewer)).into_bytes();
        }
        if let Some(html) = self.own_html(viewer) {
            return frame_sse(self.numbered.then_some(self.seq), self.name, &html).into_bytes();
        }
        match self.named(viewer) {
            Some((_, sse)) => sse.as_bytes().to_vec(),
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

/// An SSE message outside the event sequence: no `id:`, so the client's
/// resume point stays where the last event left it.
pub fn sse_unnumbered(event: &str, data: &str) -> String {
    frame_sse(None, event, data)
}

/// One SSE event. Data is split on every line ending the SSE parser knows
/// (CRLF, LF and a lone CR), so text inside the HTML cannot start a field.
pub fn sse_frame(id: u64, event: &str, data: &str) -> String {
    frame_sse(Some(id), event, data)
}

/// [`sse_frame`], or without `id:` (the browser's last event id stays).
fn frame_sse(id: Option<u64>, event: &str, data: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(data.len() + 48);
    if let Some(id) = id {
        let _ = writeln!(out, "id: {id}");
    }
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
    /// For one person's connections only (their bell), by username.
    Own(String, Arc<Unnumbered>),
    /// Presence changed (see `crate::presence`); the same for everyone.
    Presence(Arc<Unnumbered>),
}

/// A message outside the event sequence (a person's bell, presence),
/// rendered and framed once: its SSE form has no `id:`, so it moves no
/// client's resume point.
pub struct Unnumbered {
    pub html: String,
    pub sse: String,
}

impl Unnumbered {
    fn new(event: &str, html: String) -> Unnumbered {
        let sse = frame_sse(None, event, &html);
        Unnumbered { html, sse }
    }
}

#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

struct Shared {
    render: Arc<dyn Render>,
    /// The ring every connection reads; its depth bounds how far one may lag.
    frames: broadcast::Sender<Frame>,
    /// Who holds each file, kept from event snapshots, for the counters.
    counted: Mutex<HashMap<u64, Counted>>,
    ws_connections: AtomicUsize,
    sse_connections: AtomicUsize,
    events_published: AtomicU64,
    shutdown: watch::Sender<bool>,
    /// Per session with live connections (by token hash): its last
    /// recorded activity, so those connections can move their idle deadline.
    sessions: Mutex<HashMap<Vec<u8>, watch::Sender<i64>>>,
    presence: Presence,
    /// The whole of the last published presence, for connections that open later.
    presence_now: Mutex<Option<Arc<Unnumbered>>>,
}

/// What a connection keeps of its session: enough to pick its class and to
/// notice when the session ends.
#[derive(Clone)]
pub struct LiveViewer {
    pub username: String,
    pub admin: bool,
    pub token_hash: Vec<u8>,
}

impl LiveViewer {
    pub fn of(session: &Session) -> LiveViewer {
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
pub struct Subscription {
    pub frames: broadcast::Receiver<Frame>,
    pub shutdown: watch::Receiver<bool>,
}

/// When a connection's session ends: absolute expiry, or idle expiry
/// counted from the session's last recorded activity.
pub struct Expiry {
    created_at: i64,
    last_seen: i64,
    policy: SessionPolicy,
    /// Activity recorded after admission (see `Hub::session_active`).
    seen: watch::Receiver<i64>,
}

impl Expiry {
    pub fn of(policy: SessionPolicy, session: &Session, seen: watch::Receiver<i64>) -> Expiry {
        Expiry {
            created_at: session.created_at,
            last_seen: session.last_seen,
            policy,
            seen,
        }
    }

    /// The first unix second at which `Accounts` refuses the session, given
    /// the activity recorded so far.
    fn unix_deadline(&self) -> i64 {
        let last_seen = self.last_seen.max(*self.seen.borrow());
        self.policy.deadline(self.created_at, last_seen)
    }

    /// The deadline on the runtime's clock; never early (`now()` truncates).
    pub fn deadline(&self) -> tokio::time::Instant {
        let secs = self
            .unix_deadline()
            .saturating_sub(crate::store::now())
            .max(0) as u64;
        tokio::time::Instant::now() + Duration::from_secs(secs)
    }

    /// At a timer's firing: whether the session has ended, or else the
    /// deadline that activity moved it to.
    pub fn check(&self) -> Option<tokio::time::Instant> {
        (self.unix_deadline() > crate::store::now()).then(|| self.deadline())
    }
}

/// What the connection loop does with one frame from the ring.
pub enum Next {
    Send(Arc<Rendered>),
    /// A message outside the sequence, for this connection's person or all.
    SendUnnumbered(Arc<Unnumbered>),
    Skip,
    SessionEnded,
    FellBehind,
}

impl Subscription {
    pub fn classify(
        &self,
        frame: Result<Frame, broadcast::error::RecvError>,
        viewer: &LiveViewer,
        last_sent: &mut u64,
    ) -> Next {
        match frame {
            Ok(Frame::Event(r)) if r.numbered && r.seq > *last_sent => {
                *last_sent = r.seq;
                Next::Send(r)
            }
            // A refresh reflects the events up to its `seq`; a connection
            // that has already sent a later one (its backlog was replayed
            // meanwhile) could be shown an older card by it, so it skips it.
            Ok(Frame::Event(r)) if !r.numbered && r.seq >= *last_sent => Next::Send(r),
            Ok(Frame::Event(_)) => Next::Skip,
            Ok(Frame::Presence(p)) => Next::SendUnnumbered(p),
            Ok(Frame::EndUser(u)) if u == viewer.username => Next::SessionEnded,
            Ok(Frame::EndSession(h)) if h == viewer.token_hash => Next::SessionEnded,
            Ok(Frame::Own(who, own)) if who == viewer.username => Next::SendUnnumbered(own),
            Ok(_) => Next::Skip,
            // Lagged, or the hub is gone: either way this stream cannot continue.
            Err(_) => Next::FellBehind,
        }
    }
}

impl Hub {
    /// Starts the hub: the store hands it every committed event, in order.
    pub fn start(store: Store, render: Arc<dyn Render>) -> AppResult<Hub> {
        let (frames, _) = broadcast::channel(QUEUE_DEPTH);
        // Read once at start and kept: the dashboard's list, and the clock's.
        let files = store.files_now()?;
        let counted = files.iter().map(|f| (f.id, Counted::of(f))).collect();
        let (shutdown, _) = watch::channel(false);
        let hub = Hub {
            shared: Arc::new(Shared {
                render,
                frames,
                counted: Mutex::new(counted),
                ws_connections: AtomicUsize::new(0),
                sse_connections: AtomicUsize::new(0),
                events_published: AtomicU64::new(0),
                shutdown,
                sessions: Mutex::new(HashMap::new()),
                presence: Presence::default(),
                presence_now: Mutex::new(None),
            }),
        };
        let weak = Arc::downgrade(&hub.shared);
        hub.shared
            .presence
            .start_ticker(crate::presence::TICK, move |change| {
                let Some(shared) = weak.upgrade() else {
                    return false;
                };
                if let Some((snapshot, files)) = change {
                    Hub { shared }.publish_presence(snapshot, files);
                }
                true
            })?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Committed>();
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
                while let Some(item) = rx.blocking_recv() {
                    std::thread::sleep(ANSWER_FIRST);
                    worker.take(item);
                    // What arrived meanwhile has waited long enough.
                    while let Ok(item) = rx.try_recv() {
                        worker.take(item);
                    }
                }
            })
            .map_err(|e| AppError::internal("starting the live hub", e))?;
        Ok(hub)
    }

    /// A connection's view of the hub; taken before the connection is
    /// admitted, so nothing can slip between admission and its live loop.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            frames: self.shared.frames.subscribe(),
            shutdown: self.shared.shutdown.subscribe(),
        }
    }

    fn counters_after(&self, event: &Event) -> Counters {
        let mut counted = self
            .shared
            .counted
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match &event.file {
            Some(f) => {
                counted.insert(f.id, Counted::of(f));
            }
            None => {
                counted.remove(&event.file_id);
            }
        }
        Counters::count(counted.values().copied())
    }

    /// Renders `event` for each class that can exist and puts it on the ring.
    pub fn render(templates: &dyn Render, event: &Event, counters: Counters) -> Rendered {
        let mut rendered =
            Self::render_classes(event, Some(event.seq), event.kind.as_str(), &|viewer| {
                templates.event(event, viewer, counters)
            });
        rendered.personal = match (&event.kind, &event.previous_holder) {
            (EventKind::Overridden, Some(prev)) => Some((
                prev.clone(),
                templates.override_toast(event),
                templates.override_notice(event),
            )),
            _ => None,
        };
        rendered.inbox = event
            .notified
            .iter()
            .map(|change| (change.username.clone(), templates.inbox(change)))
            .collect();
        rendered
    }

    /// A refresh of `file`'s card for each class, reflecting the events up
    /// to `as_of`: no event, no sequence number of its own.
    pub fn render_refresh(templates: &dyn Render, file: &FileRecord, as_of: u64) -> Rendered {
        // The classes are those of an event whose snapshot is the file.
        let carrier = Event {
            seq: as_of,
            kind: EventKind::Locked,
            at: 0,
            actor: String::new(),
            file_id: file.id,
            path: file.path.clone(),
            note: None,
            revision: None,
            previous_holder: None,
            file: Some(file.clone()),
            notified: Vec::new(),
            grouped: false,
        };
        Self::render_classes(&carrier, None, "refresh", &|viewer| {
            templates.refresh(file, viewer)
        })
    }

    /// Renders one HTML per viewer class of `event`, framed with `id` (an
    /// event's sequence number; none for a refresh).
    fn render_classes(
        event: &Event,
        id: Option<u64>,
        name: &'static str,
        html_for: &dyn Fn(&Viewer) -> String,
    ) -> Rendered {
        let holder = event
            .file
            .as_ref()
            .and_then(|f| f.locked_by())
            .map(str::to_string);
        let render = |admin: bool, is_holder: bool| {
            let viewer = class_viewer(admin, holder.as_deref().filter(|_| is_holder));
            html_for(&viewer)
        };
        let user = render(false, false);
        let admin = render(true, false);
        // With no holder, nobody is in a holder class: reuse the plain variants.
        let (user_holder, admin_holder) = match holder {
            Some(_) => (render(false, true), render(true, true)),
            None => (user.clone(), admin.clone()),
        };
        let html = [user, user_holder, admin, admin_holder];
        let sse = html.each_ref().map(|h| frame_sse(id, name, h));
        let [waiting, reserved] = named_classes(event).map(|class| {
            class.map(|(template, who)| Variant {
                who,
                frames: [false, true].map(|admin| {
                    let viewer = Viewer {
                        username: template.to_string(),
                        admin,
                        csrf: None,
                    };
                    let html = html_for(&viewer);
                    let sse = frame_sse(id, name, &html);
                    (html, sse)
                }),
            })
        });
        Rendered {
            seq: event.seq,
            numbered: id.is_some(),
            name,
            holder,
            html,
            sse,
            personal: None,
            waiting,
            reserved,
            inbox: HashMap::new(),
            together: Vec::new(),
            together_toast: String::new(),
        }
    }

    /// One item from the store: an event to publish, a person's inbox
    /// change, or cards to refresh.
    fn take(&self, item: Committed) {
        match item {
            Committed::Event(event) => self.publish(&event),
            Committed::Together(events) => self.publish_together(&events),
            Committed::Inbox(change) => self.publish_own(&change),
            Committed::Refresh { as_of, files } => {
                for file in &files {
                    let rendered = Hub::render_refresh(&*self.shared.render, file, as_of);
                    let _ = self.shared.frames.send(Frame::Event(Arc::new(rendered)));
                }
            }
        }
    }

    /// One person's inbox changed outside an event: their bell (and toast).
    fn publish_own(&self, change: &InboxChange) {
        let own = Unnumbered::new("inbox", self.shared.render.inbox(change));
        let _ = self
            .shared
            .frames
            .send(Frame::Own(change.username.clone(), Arc::new(own)));
    }

    fn publish(&self, event: &Event) {
        let rendered = self.render_one(event);
        // No receivers is fine: nobody is watching.
        let _ = self.shared.frames.send(Frame::Event(Arc::new(rendered)));
    }

    fn render_one(&self, event: &Event) -> Rendered {
        let counters = self.counters_after(event);
        let rendered = Hub::render(&*self.shared.render, event, counters);
        if event.file.is_none() {
            self.shared.presence.forget_file(event.file_id);
        }
        self.shared.events_published.fetch_add(1, Ordering::Relaxed);
        tracing::info!(seq = event.seq, kind = event.kind.as_str(), file = event.file_id, actor = %event.actor, "state change");
        rendered
    }

    /// The events of one change of several files as one message: every
    /// card changes in the same swap, under one toast.
    fn publish_together(&self, events: &[Arc<Event>]) {
        let mut parts = events.iter().map(|e| self.render_one(e));
        let Some(mut first) = parts.next() else {
            return;
        };
        first.together = parts.collect();
        if let Some(last) = first.together.last() {
            first.seq = last.seq;
        }
        first.together_toast = self.shared.render.together_toast(events);
        let _ = self.shared.frames.send(Frame::Event(Arc::new(first)));
    }

    /// Renders a presence change once and puts it on the ring; keeps the
    /// whole of it for connections that open later.
    fn publish_presence(&self, snapshot: &Snapshot, files: &[u64]) {
        let render = &*self.shared.render;
        let all: Vec<u64> = snapshot.viewing.keys().copied().collect();
        let whole = Arc::new(Unnumbered::new("presence", render.presence(snapshot, &all)));
        let change = if files == all {
            whole.clone()
        } else {
            Arc::new(Unnumbered::new(
                "presence",
                render.presence(snapshot, files),
            ))
        };
        // Stored before it is sent: a connection that subscribes and then
        // reads this gets the newer of the two, never misses both.
        *self
            .shared
            .presence_now
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(whole);
        let _ = self.shared.frames.send(Frame::Presence(change));
    }

    /// Who is online and what they view.
    pub fn presence(&self) -> &Presence {
        &self.shared.presence
    }

    /// The last published presence, whole: what a connection opening now
    /// sends first (later changes reach it on the ring).
    pub fn presence_now(&self) -> Option<Arc<Unnumbered>> {
        self.shared
            .presence_now
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
    pub fn watch_session(&self, token_hash: &[u8]) -> watch::Receiver<i64> {
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
pub struct Connected {
    hub: Arc<Shared>,
    ws: bool,
}

impl Connected {
    pub fn new(hub: &Hub, ws: bool) -> Self {
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
pub enum Resume {
    /// No resume point: a page just rendered, nothing to catch up.
    Fresh,
    /// The last sequence it saw.
    After(u64),
    /// A resume point that is no sequence number (`abc`, `-1`, past u64):
    /// what the client missed is unknown, so only a full re-render is safe.
    Unreadable,
}

/// One message owed to a connecting client before live frames.
pub struct Missed {
    /// Its event's sequence; 0 for a message outside the sequence.
    pub seq: u64,
    pub kind: &'static str,
    pub html: String,
}

/// Missed events, or a full re-render when the log no longer reaches back
/// (or the client claims a sequence this server never issued). Returns the
/// messages and the newest sequence they cover.
impl Hub {
    /// What a connection resuming at `resume` missed, rendered for `viewer`.
    pub async fn catch_up(
        &self,
        store: Store,
        viewer: LiveViewer,
        resume: Resume,
    ) -> AppResult<(Vec<Missed>, u64)> {
        let render = self.shared.render.clone();
        tokio::task::spawn_blocking(move || {
            let (mut missed, last) = Hub::missed(&store, &*render, &viewer, resume)?;
            if resume == Resume::Fresh {
                // A page just rendered, bell included.
                return Ok((missed, last));
            }
            // The bell as it is now: notifications that came with no event
            // (an ask to release) are in no backlog. Outside the sequence.
            let unread = store.read(|txn| crate::inbox::unread(txn, &viewer.username))?;
            missed.push(Missed {
                seq: 0,
                kind: "inbox",
                html: render.inbox(&InboxChange {
                    username: viewer.username.clone(),
                    unread,
                    new: None,
                }),
            });
            Ok((missed, last))
        })
        .await?
    }

    fn missed(
        store: &Store,
        render: &dyn Render,
        viewer: &LiveViewer,
        resume: Resume,
    ) -> AppResult<(Vec<Missed>, u64)> {
        {
            let last = store.last_seq()?;
            let (events, complete) = match resume {
                Resume::Fresh => return Ok((Vec::new(), last)),
                Resume::After(since) if since == last => return Ok((Vec::new(), last)),
                Resume::After(since) if since < last => {
                    store.events_after(since, REPLAY_LIMIT + 1)?
                }
                // A future this server never had (data restored from a backup),
                // or no sequence at all: only a full re-render is truthful.
                Resume::After(_) | Resume::Unreadable => (Vec::new(), false),
            };
            if !complete || events.len() > REPLAY_LIMIT {
                let files = store.files_now()?;
                // The list is read after `last`: it may already show later
                // events, which then arrive again as harmless re-renders.
                let html = render.resync(&files, &viewer.viewer(), last);
                return Ok((
                    vec![Missed {
                        seq: last,
                        kind: "resync",
                        html,
                    }],
                    last,
                ));
            }
            let counters = Counters::of(&store.files_now()?);
            let mut newest = last;
            let out = events
                .iter()
                .map(|e| {
                    newest = newest.max(e.seq);
                    let holder = e.file.as_ref().and_then(|f| f.locked_by());
                    let as_seen = if named(e, &viewer.username) {
                        viewer.viewer()
                    } else {
                        viewer.class_viewer(holder)
                    };
                    let mut html = render.event(e, &as_seen, counters);
                    if e.kind == EventKind::Overridden
                        && e.previous_holder.as_deref() == Some(viewer.username.as_str())
                    {
                        html = swap_toast(
                            &html,
                            &render.override_toast(e),
                            &render.override_notice(e),
                        );
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
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::domain::{RepoPath, Revision};
    use crate::store::{FileRecord, Reservation};
    use crate::vault::{BlobId, CommitId};

    /// Renders who the viewer was, and counts the renders.
    #[derive(Default)]
    struct Probe(AtomicUsize);

    impl Render for Probe {
        fn event(&self, _: &Event, viewer: &Viewer, _: Counters) -> String {
            self.0.fetch_add(1, Ordering::Relaxed);
            format!("{}:{}", viewer.username, viewer.admin)
        }
        fn override_toast(&self, _: &Event) -> String {
            String::new()
        }
        fn override_notice(&self, _: &Event) -> String {
            String::new()
        }
        fn resync(&self, _: &[FileRecord], _: &Viewer, _: u64) -> String {
            String::new()
        }
        fn inbox(&self, change: &InboxChange) -> String {
            format!("|bell:{}:{}", change.username, change.unread)
        }
        fn refresh(&self, _: &FileRecord, viewer: &Viewer) -> String {
            format!("refresh {}:{}", viewer.username, viewer.admin)
        }
    }

    fn reserved_with_a_long_line(line: usize) -> Event {
        let zero = "0".repeat(40);
        let file = FileRecord {
            id: 1,
            path: RepoPath::from_stored("a/b.txt"),
            description: String::new(),
            revision: Revision::FIRST,
            created_by: "bob".into(),
            created_at: 0,
            size: 1,
            head: CommitId::from_hex(&zero).unwrap(),
            blob: BlobId::from_hex(&zero).unwrap(),
            modified_at: 0,
            modified_by: "bob".into(),
            lock: None,
            queue: (0..line).map(|n| format!("user{n}")).collect(),
            reserved: Some(Reservation {
                username: "carol".into(),
                until: i64::MAX,
            }),
        };
        Event {
            seq: 9,
            kind: EventKind::Reserved,
            at: 0,
            actor: "bob".into(),
            file_id: 1,
            path: file.path.clone(),
            note: None,
            revision: None,
            previous_holder: None,
            file: Some(file),
            notified: Vec::new(),
            grouped: false,
        }
    }

    fn viewer(name: &str, admin: bool) -> LiveViewer {
        LiveViewer {
            username: name.into(),
            admin,
            token_hash: Vec::new(),
        }
    }

    #[test]
    fn a_long_line_costs_two_more_classes_not_a_render_each() {
        let probe = Probe::default();
        let rendered = Hub::render(
            &probe,
            &reserved_with_a_long_line(5000),
            Counters::default(),
        );
        // User and admin; waiting in line, user and admin; reserved, user and admin.
        assert_eq!(probe.0.load(Ordering::Relaxed), 6);
        // Each person gets their class's card: any member of a class
        // renders it the same, so the first in line stands for the line.
        assert_eq!(rendered.ws_text(&viewer("user4999", false)), "user0:false");
        assert_eq!(rendered.ws_text(&viewer("user7", true)), "user0:true");
        assert_eq!(rendered.ws_text(&viewer("carol", false)), "carol:false");
        assert_eq!(rendered.ws_text(&viewer("stranger", false)), ":false");
        let sse = String::from_utf8(rendered.sse_bytes(&viewer("carol", true))).unwrap();
        assert!(sse.contains("data: carol:true"), "{sse}");
    }

    #[test]
    fn watchers_get_their_own_bell_after_their_class_card_and_others_get_the_class_frame() {
        let probe = Probe::default();
        let mut event = reserved_with_a_long_line(3);
        event.notified = (0..1000)
            .map(|n| InboxChange {
                username: format!("watcher{n}"),
                unread: n,
                new: None,
            })
            .collect();
        let rendered = Hub::render(&probe, &event, Counters::default());
        // The card is still rendered per class, not per watcher.
        assert_eq!(probe.0.load(Ordering::Relaxed), 6);
        assert_eq!(
            rendered.ws_text(&viewer("watcher7", false)),
            ":false|bell:watcher7:7"
        );
        assert_eq!(rendered.ws_text(&viewer("stranger", true)), ":true");
        // In line and watching: the line's card, then the bell.
        event.notified[0].username = "user1".into();
        let rendered = Hub::render(&probe, &event, Counters::default());
        assert_eq!(
            rendered.ws_text(&viewer("user1", false)),
            "user0:false|bell:user1:0"
        );
        let sse = String::from_utf8(rendered.sse_bytes(&viewer("watcher9", false))).unwrap();
        assert_eq!(
            sse,
            "id: 9\nevent: reserved\ndata: :false|bell:watcher9:9\n\n"
        );
    }

    #[test]
    fn a_message_outside_the_sequence_has_no_id() {
        assert_eq!(
            sse_unnumbered("inbox", "x\ny"),
            "event: inbox\ndata: x\ndata: y\n\n"
        );
    }

    #[test]
    fn a_refresh_has_no_id_and_moves_no_resume_point() {
        let probe = Probe::default();
        let event = reserved_with_a_long_line(3);
        let file = event.file.clone().unwrap();
        let rendered = Arc::new(Hub::render_refresh(&probe, &file, 9));
        let sse = String::from_utf8(rendered.sse_bytes(&viewer("carol", false))).unwrap();
        assert_eq!(sse, "event: refresh\ndata: refresh carol:false\n\n");
        let (frames, _) = broadcast::channel(4);
        let (shutdown, _) = watch::channel(false);
        let sub = Subscription {
            frames: frames.subscribe(),
            shutdown: shutdown.subscribe(),
        };
        let mut last_sent = 9;
        let next = sub.classify(
            Ok(Frame::Event(rendered.clone())),
            &viewer("x", false),
            &mut last_sent,
        );
        assert!(matches!(next, Next::Send(_)));
        assert_eq!(last_sent, 9);
        // A connection that already sent a later event keeps its newer card.
        let mut last_sent = 10;
        let next = sub.classify(
            Ok(Frame::Event(rendered)),
            &viewer("x", false),
            &mut last_sent,
        );
        assert!(matches!(next, Next::Skip));
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
