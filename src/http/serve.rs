//! Accepting connections and holding them to the edge limits: a request
//! head of at most [`MAX_HEAD`] bytes (431, or 414 for the request line), sent within `head_timeout` of the
//! connection's start or, on a kept-alive one, of the head's first byte; a
//! keep-alive connection with no request closed after `idle_timeout`; a
//! request body that stops for `body_stall` refused; a socket write that
//! makes no progress for `write_stall` failed; no request body but a
//! multipart upload over [`MAX_BODY`], and no multipart part's headers over
//! [`MAX_PART_HEAD`]. The web middleware turns a body refusal into its
//! answer (`http::middleware`).
//!
//! Latch runs its own accept loop because poem's `Server` builds hyper's
//! connection with no head size or time limit: a client that sends half a
//! head, or nothing, held its connection for ever.
//!
//! Each connection's read timer follows its phase ([`Phase`]): reading a
//! head from the accept (or, between requests, idle until a byte arrives,
//! then reading a head) until hyper hands the request over, then busy (no
//! connection timer) until the response body is done, then idle again. A body that stalls while busy is caught by [`guard_body`]
//! instead, so a long response (an event stream, a download) is never cut
//! by these timers, and an upgraded connection (101, a WebSocket) never is:
//! its loop pings and times out its own sends. The write-stall limit holds
//! in every phase: it is what drops an event stream hyper stopped polling.
//! Proven by tests/it/edge.rs.
//!
//! An event stream leaves hyper once its head is sent ([`Handoff`]): hyper
//! would hold 8 KiB read and write buffers for as long as it streams.
//!
//! Long because the limits are one mechanism: the connection's phase, the
//! I/O wrapper that times reads and writes by it, and the body guard that
//! counts bytes and multipart part heads all read one shared state.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use poem::http::uri::Scheme;
use poem::http::{self, StatusCode};
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, Request};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Sleep};

use crate::Config;

/// Largest request head (request line and headers); a larger one is 431,
/// or 414 when the request line alone is.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest headers of one part of a multipart body; larger ones are 413.
pub const MAX_PART_HEAD: usize = 16 * 1024;
/// Largest request body other than a multipart upload; a larger one is 413.
pub const MAX_BODY: u64 = 64 * 1024;

/// The limits of one connection and its request bodies, from [`Config`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub head: Duration,
    pub idle: Duration,
    pub body_stall: Duration,
    pub write_stall: Duration,
    /// Largest multipart body: the file part's own limit, the text fields',
    /// and room for the parts' headers. Each part is bounded more tightly as
    /// it is read (see `forms::read_upload`); this bounds what the multipart
    /// parser may buffer before it finds a part's end.
    pub multipart_body: u64,
    /// `--max-upload`: what a person is told the limit is.
    pub max_upload: u64,
}

impl Limits {
    pub fn of(config: &Config) -> Limits {
        Limits {
            head: config.head_timeout,
            idle: config.idle_timeout,
            body_stall: config.body_stall,
            write_stall: config.write_stall,
            multipart_body: config
                .max_upload
                .saturating_add(crate::http::forms::MAX_TEXT_TOTAL as u64)
                .saturating_add(1 << 20),
            max_upload: config.max_upload,
        }
    }
}

/// Serves `ep` on `listener` until `shutdown` completes; then each
/// connection finishes the request it is on (at most `grace`) and closes.
/// Upgraded connections are no longer the server's: their own loops end them.
pub async fn serve<E>(
    listener: TcpListener,
    ep: E,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> io::Result<()>
where
    E: Endpoint<Output = poem::Response> + 'static,
{
    let ep = Arc::new(ep);
    let local = LocalAddr(listener.local_addr()?.into());
    let (stop_tx, stop) = watch::channel(false);
    let (kill_tx, kill) = watch::channel(false);
    // Every connection task holds a sender; `recv` returns `None` once all
    // of them have ended.
    let (alive, mut all_closed) = mpsc::channel::<Infallible>(1);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote)) => {
                    tokio::spawn(connection(Conn {
                        tcp,
                        local: local.clone(),
                        remote,
                        ep: ep.clone(),
                        limits,
                        stop: stop.clone(),
                        kill: kill.clone(),
                        _alive: alive.clone(),
                    }));
                }
                Err(e) => {
                    // Out of file descriptors, most likely: a pause lets
                    // connections close instead of spinning on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        let _ = kill_tx.send(true);
    });
    drop(alive);
    let _ = all_closed.recv().await;
    Ok(())
}

struct Conn<E> {
    tcp: TcpStream,
    local: LocalAddr,
    remote: SocketAddr,
    ep: Arc<E>,
    limits: Limits,
    stop: watch::Receiver<bool>,
    kill: watch::Receiver<bool>,
    _alive: mpsc::Sender<Infallible>,
}

async fn connection<E>(conn: Conn<E>)
where
    E: Endpoint<Output = poem::Response> + 'static,
{
    let Conn {
        tcp,
        local,
        remote,
        ep,
        limits,
        mut stop,
        mut kill,
        _alive,
    } = conn;
    // Nagle off: a live fragment is sent when it is ready, not after the
    // previous one's ACK.
    let _ = tcp.set_nodelay(true);
    // A new connection owes its first head within the head limit: one that
    // connects and says nothing is a slow client, not an idle one.
    let state = Arc::new(Mutex::new(State {
        phase: Phase::Head(Instant::now()),
        reader: None,
        handoff: None,
        head_queued: false,
        head_sent: false,
    }));
    let io = EdgeIo::new(tcp, state.clone(), limits);
    let remote = RemoteAddr(remote.into());
    let shared = state.clone();
    let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let ep = ep.clone();
        let state = state.clone();
        let busy = Busy::begin(state.clone());
        let may_hand_off =
            req.method() == http::Method::GET && req.version() == http::Version::HTTP_11;
        let req = Request::from((req, local.clone(), remote.clone(), Scheme::HTTP));
        async move {
            let resp = ep.get_response(req).await;
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                busy.upgraded();
            }
            let resp: http::Response<BoxBody<Bytes, io::Error>> = resp.into();
            if may_hand_off && is_event_stream(&resp) {
                let (mut head, body) = resp.into_parts();
                // hyper frames a body of unknown length as chunks, which
                // `stream_events` goes on writing.
                head.headers.remove(http::header::CONTENT_LENGTH);
                lock(&state).handoff = Some(Handoff { body, busy });
                let waiting = BoxBody::new(AwaitHandoff(state));
                return Ok(http::Response::from_parts(
                    head,
                    Tracked {
                        inner: waiting,
                        _busy: None,
                    },
                ));
            }
            Ok::<_, Infallible>(resp.map(|inner| Tracked {
                inner,
                _busy: Some(busy),
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.max_header_size(MAX_HEAD);
    let mut conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let streaming = tokio::select! {
        result = &mut conn => match result {
            Ok(()) => return,
            // hyper stops at a read error, such as a client that closed its
            // side after sending its request, yet can still answer the
            // request it has: polled again below, it does (as under poem's
            // server), and it ends at once if there is nothing to answer.
            Err(e) => {
                tracing::debug!(error = %e, "connection read ended");
                false
            }
        },
        _ = stop.wait_for(|stop| *stop) => false,
        _ = head_sent(&shared) => true,
    };
    if streaming {
        if let Some(parts) = conn.into_parts() {
            stream_events(parts.io.into_inner(), &shared, kill).await;
        }
        return;
    }
    // Shutting down (or the reading side ended): no new request on this
    // connection; the one in flight finishes, within the grace period.
    Pin::new(&mut conn).graceful_shutdown();
    tokio::select! {
        _ = conn => {}
        _ = kill.wait_for(|kill| *kill) => {}
    }
}

/// Where a connection is, which decides its read deadline.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// No request under way since this instant: `idle` runs.
    Idle(Instant),
    /// A head's first byte arrived at this instant (or, for the first
    /// request, the connection was accepted): `head` runs.
    Head(Instant),
    /// A request is with the app or its response is being sent.
    Busy,
    /// Handed to a WebSocket (or any upgrade): never timed out here.
    Upgraded,
}

/// A connection's phase, shared by its socket and its requests.
struct State {
    phase: Phase,
    /// The task of a read that found nothing while no timer ran: woken when
    /// the connection turns idle, so the idle timer starts even though
    /// hyper has no reason of its own to read again.
    reader: Option<Waker>,
    /// An event stream's body, waiting for hyper to send its head.
    handoff: Option<Handoff>,
    /// hyper has the stream's head in its buffer ([`AwaitHandoff`] was polled)…
    head_queued: bool,
    /// …and has written it out: the connection is the stream's alone.
    head_sent: bool,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Marks a connection busy from the moment hyper hands over a request until
/// its response body is dropped (sent, or the connection ended).
struct Busy(Shared);

impl Busy {
    fn begin(state: Shared) -> Busy {
        lock(&state).phase = Phase::Busy;
        Busy(state)
    }

    fn upgraded(&self) {
        lock(&self.0).phase = Phase::Upgraded;
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let reader = {
            let mut state = lock(&self.0);
            if !matches!(state.phase, Phase::Busy) {
                return;
            }
            state.phase = Phase::Idle(Instant::now());
            state.reader.take()
        };
        if let Some(reader) = reader {
            reader.wake();
        }
    }
}

/// A response body that keeps its connection busy while hyper sends it
/// (an event stream's is kept by its [`Handoff`] instead).
struct Tracked {
    inner: BoxBody<Bytes, io::Error>,
    _busy: Option<Busy>,
}

/// An event stream (`/events`) leaves hyper once its head is sent, as a
/// WebSocket does at its upgrade: hyper keeps a read and a write buffer of
/// 8 KiB each for as long as a response streams, which made an idle SSE
/// connection cost ~20 KiB against a WebSocket's ~6. The connection then
/// carries the stream's chunks alone ([`stream_events`]), holds it busy
/// until the stream ends, and closes after it.
struct Handoff {
    body: BoxBody<Bytes, io::Error>,
    busy: Busy,
}

/// What hyper is given as an event stream's body: nothing, ever. Its first
/// poll means hyper has the head in its buffer.
struct AwaitHandoff(Shared);

impl HttpBody for AwaitHandoff {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        lock(&self.0).head_queued = true;
        Poll::Pending
    }
}

fn is_event_stream(resp: &http::Response<BoxBody<Bytes, io::Error>>) -> bool {
    resp.status() == StatusCode::OK
        && resp.version() == http::Version::HTTP_11
        && resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// Resolves once hyper has written an event stream's head (the task is
/// woken by [`EdgeIo::poll_flush`], which sees it happen).
fn head_sent(state: &Shared) -> impl Future<Output = ()> + '_ {
    std::future::poll_fn(move |_| {
        if lock(state).head_sent {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
}

/// Writes an event stream's frames as HTTP/1.1 chunks, after the head
/// hyper sent, until the stream ends (then the last chunk, and the
/// connection closes), the peer goes (a read sees its end), a write stalls
/// (`EdgeIo`'s limit), or the server's grace period is over.
async fn stream_events(mut io: EdgeIo, state: &Shared, mut kill: watch::Receiver<bool>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(Handoff { mut body, busy }) = lock(state).handoff.take() else {
        return;
    };
    let mut probe = [0u8; 64];
    loop {
        tokio::select! {
            frame = body.frame() => match frame {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else { continue };
                    if data.is_empty() {
                        continue;
                    }
                    let size = Bytes::from(format!("{:x}\r\n", data.len()));
                    let mut chunk = size.chain(data).chain(&b"\r\n"[..]);
                    if io.write_all_buf(&mut chunk).await.is_err() {
                        return;
                    }
                }
                // As hyper does with a body that fails: the connection ends.
                Some(Err(_)) => return,
                None => break,
            },
            // Browsers send nothing on an event stream's connection: a read
            // ends only when the peer has gone.
            read = io.read(&mut probe) => if matches!(read, Ok(0) | Err(_)) {
                return;
            },
            _ = async { let _ = kill.wait_for(|kill| *kill).await; } => return,
        }
    }
    if io.write_all(b"0\r\n\r\n").await.is_ok() {
        drop(busy);
        let _ = io.shutdown().await;
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A TCP stream whose reads fail when the connection's phase deadline
/// passes, and whose writes fail once they have been pending, with no byte
/// written, for longer than the write-stall limit.
struct EdgeIo {
    inner: TcpStream,
    state: Shared,
    limits: Limits,
    /// The read deadline, reset (not reallocated) as the phase moves on.
    read_timer: Option<Pin<Box<Sleep>>>,
    /// Armed when a write first returns `Pending`; dropped on progress.
    write_since: Option<Pin<Box<Sleep>>>,
    /// Bytes of the current request line so far, while its end is not seen.
    line: Option<usize>,
}

const URI_TOO_LONG: &[u8] = b"HTTP/1.1 414 URI Too Long\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 40\r\nconnection: close\r\n\r\nThe request line is longer than 16 KiB.\n";

impl EdgeIo {
    fn new(inner: TcpStream, state: Shared, limits: Limits) -> Self {
        EdgeIo {
            inner,
            state,
            limits,
            read_timer: None,
            write_since: None,
            line: Some(0),
        }
    }

    /// When a read that has nothing to give must fail, and why; with no
    /// deadline, the reader is kept to be woken when one starts.
    fn read_deadline(&self, cx: &Context<'_>) -> Option<(Instant, &'static str)> {
        let mut state = lock(&self.state);
        match state.phase {
            Phase::Idle(since) => Some((since + self.limits.idle, "idle connection")),
            Phase::Head(since) => Some((since + self.limits.head, "request head too slow")),
            Phase::Busy => {
                match &mut state.reader {
                    Some(w) => w.clone_from(cx.waker()),
                    None => state.reader = Some(cx.waker().clone()),
                }
                None
            }
            Phase::Upgraded => None,
        }
    }

    /// Counts a head's first line as it arrives. hyper only sees a head
    /// too large (431), so a request line that alone passes [`MAX_HEAD`] is
    /// answered 414 here, before hyper would, and the connection closed.
    fn request_line_too_long(&mut self, arrived: &[u8]) -> bool {
        let Some(so_far) = self.line else {
            return false;
        };
        let so_far = match arrived.iter().position(|&b| b == b'\n') {
            Some(end) => {
                self.line = None;
                so_far + end
            }
            None => {
                self.line = Some(so_far + arrived.len());
                so_far + arrived.len()
            }
        };
        if so_far < MAX_HEAD {
            return false;
        }
        // Nothing else is being written while a head is read, so the socket
        // takes these few bytes at once; if it does not, it is just closed.
        let _ = self.inner.try_write(URI_TOO_LONG);
        true
    }

    fn upgraded(&self) -> bool {
        matches!(lock(&self.state).phase, Phase::Upgraded)
    }

    fn watch_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match poll {
            Poll::Ready(r) => {
                self.write_since = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let stall = self.limits.write_stall;
                let timer = self
                    .write_since
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                ready!(timer.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the peer stopped reading",
                )))
            }
        }
    }
}

impl AsyncRead for EdgeIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let (in_head, new_head) = {
                        let mut state = lock(&self.state);
                        match state.phase {
                            Phase::Idle(_) => {
                                state.phase = Phase::Head(Instant::now());
                                (true, true)
                            }
                            Phase::Head(_) => (true, false),
                            Phase::Busy | Phase::Upgraded => (false, false),
                        }
                    };
                    if new_head {
                        self.line = Some(0);
                    }
                    if in_head && self.request_line_too_long(&buf.filled()[before..]) {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "request line too long",
                        )));
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some((deadline, why)) = self.read_deadline(cx) else {
                    // A WebSocket lives long: its socket keeps no timer.
                    if self.read_timer.is_some() && self.upgraded() {
                        self.read_timer = None;
                    }
                    return Poll::Pending;
                };
                let timer = self
                    .read_timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                ready!(timer.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)))
            }
        }
    }
}

impl AsyncWrite for EdgeIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch_write(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch_write(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        let poll = self.watch_write(cx, poll);
        // hyper flushes the socket only once its own buffer is written out:
        // an event stream's head, queued, is now sent (see `Handoff`).
        if matches!(poll, Poll::Ready(Ok(()))) {
            let mut state = lock(&self.state);
            if state.head_queued && !state.head_sent {
                state.head_sent = true;
                cx.waker().wake_by_ref();
            }
        }
        poll
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch_write(cx, poll)
    }
}

/// What became of a request body held by [`guard_body`], and the part of
/// it the app did not read (see [`drain`]).
#[derive(Clone, Default)]
pub struct BodyWatch(Arc<WatchState>);

#[derive(Default)]
struct WatchState {
    state: AtomicU8,
    /// The body's unread rest, put here when the app lets go of it.
    rest: Mutex<Option<BoxBody<Bytes, io::Error>>>,
}

/// Most a refused browser upload is read on for (see [`drain`]): past it the
/// connection is closed as the refusal is sent, as for any other client.
pub const MAX_DRAIN: u64 = 4 << 30;

const BODY_OVER: u8 = 1;
const BODY_STALLED: u8 = 2;
const BODY_PART_HEAD: u8 = 3;
const BODY_DONE: u8 = 4;

impl BodyWatch {
    /// The body went past its limit; the app saw an error, not the body.
    pub fn over_limit(&self) -> bool {
        self.0.state.load(Ordering::Acquire) == BODY_OVER
    }

    /// A multipart body's part had headers over [`MAX_PART_HEAD`].
    pub fn part_head_too_large(&self) -> bool {
        self.0.state.load(Ordering::Acquire) == BODY_PART_HEAD
    }

    /// No byte arrived for the stall limit while the app was reading.
    pub fn stalled(&self) -> bool {
        self.0.state.load(Ordering::Acquire) == BODY_STALLED
    }

    /// The body was read to its end (or there was none): the connection
    /// may carry another request. Otherwise its rest is still on the
    /// socket, the connection closes after the answer, and the answer must
    /// say so (`Connection: close`) or a client reusing it fails.
    pub fn done(&self) -> bool {
        self.0.state.load(Ordering::Acquire) == BODY_DONE
    }
}

/// Reads and throws away what is left of a body the app refused, frame by
/// frame (nothing is kept, nothing buffered), so that a browser still
/// sending it receives the refusal: closing a socket with unread bytes on
/// it resets the connection, and a browser then shows its own error page
/// instead of the answer. Stops (and says `false`, so the connection closes
/// as before) past `most` bytes or when no byte arrives for `stall`; `true`
/// when the body was read to its end.
pub async fn drain(watch: &BodyWatch, most: u64, stall: Duration) -> bool {
    if watch.done() {
        return true;
    }
    let rest = match watch.0.rest.lock() {
        Ok(mut rest) => rest.take(),
        Err(_) => None,
    };
    let Some(mut rest) = rest else {
        return false;
    };
    let mut seen = 0u64;
    loop {
        match tokio::time::timeout(stall, rest.frame()).await {
            Ok(None) => return true,
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    seen += data.len() as u64;
                    if seen > most {
                        return false;
                    }
                }
            }
            Ok(Some(Err(_))) | Err(_) => return false,
        }
    }
}

/// Wraps a request body so that reading it fails past `limit` bytes, or
/// when no byte arrives for `stall` while it is being read. The app then
/// sees an error, so whatever it was building from the body (a spooled
/// upload, a parse) is dropped; the watch tells the caller which limit it was.
///
/// With `parts` (a multipart body's boundary), each part's headers are also
/// held to [`MAX_PART_HEAD`]: the multipart parser buffers a part's headers
/// whole before it looks at them.
pub fn guard_body(
    body: poem::Body,
    limit: u64,
    stall: Duration,
    parts: Option<&str>,
) -> (poem::Body, BodyWatch) {
    let watch = BodyWatch::default();
    if body.is_empty() {
        watch.0.state.store(BODY_DONE, Ordering::Release);
        return (body, watch);
    }
    let guarded = Guarded {
        inner: body.into(),
        seen: 0,
        limit,
        stall,
        timer: None,
        armed: false,
        watch: watch.clone(),
        failed: false,
        parts: parts.map(PartHeads::new),
    };
    (BoxBody::new(guarded).into(), watch)
}

struct Guarded {
    inner: BoxBody<Bytes, io::Error>,
    seen: u64,
    limit: u64,
    stall: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    /// The timer runs from the first poll that found nothing to read.
    armed: bool,
    watch: BodyWatch,
    failed: bool,
    parts: Option<PartHeads>,
}

impl Guarded {
    fn fail(&mut self, code: u8, kind: io::ErrorKind, why: &str) -> io::Error {
        self.failed = true;
        self.watch.0.state.store(code, Ordering::Release);
        io::Error::new(kind, why.to_string())
    }
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.armed = false;
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.limit {
                        let e = this.fail(
                            BODY_OVER,
                            io::ErrorKind::InvalidData,
                            "the request body is over the limit",
                        );
                        return Poll::Ready(Some(Err(e)));
                    }
                    if this.parts.as_mut().is_some_and(|p| !p.scan(data)) {
                        let e = this.fail(
                            BODY_PART_HEAD,
                            io::ErrorKind::InvalidData,
                            "a part's headers are over the limit",
                        );
                        return Poll::Ready(Some(Err(e)));
                    }
                }
                if this.inner.is_end_stream() {
                    this.watch.0.state.store(BODY_DONE, Ordering::Release);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.armed = false;
                this.watch.0.state.store(BODY_DONE, Ordering::Release);
                Poll::Ready(None)
            }
            Poll::Ready(other) => {
                this.armed = false;
                Poll::Ready(other)
            }
            Poll::Pending => {
                let deadline = Instant::now() + this.stall;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !this.armed {
                    timer.as_mut().reset(deadline);
                    this.armed = true;
                }
                ready!(timer.as_mut().poll(cx));
                let e = this.fail(
                    BODY_STALLED,
                    io::ErrorKind::TimedOut,
                    "the request body stopped arriving",
                );
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Guarded {
    /// Hands the unread rest of the body to the watch, for [`drain`]: the
    /// app is done with the request by the time the answer is decided.
    fn drop(&mut self) {
        let state = self.watch.0.state.load(Ordering::Acquire);
        if state == BODY_DONE || state == BODY_STALLED {
            return;
        }
        let empty = http_body_util::Empty::<Bytes>::new().map_err(|never| match never {});
        let rest = std::mem::replace(&mut self.inner, BoxBody::new(empty));
        if let Ok(mut slot) = self.watch.0.rest.lock() {
            *slot = Some(rest);
        }
    }
}

/// The boundary of a `multipart/form-data` content type.
pub fn multipart_boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty())
    })
}

/// Finds where each part's headers start (after a delimiter line) and
/// counts them to their blank line, across frames.
struct PartHeads {
    /// `\r\n--boundary`: the first delimiter has no line break before it,
    /// so the scan starts as if one had just been seen.
    delimiter: Vec<u8>,
    /// The last bytes seen, enough to match a pattern split across frames.
    tail: Vec<u8>,
    /// Header bytes of the current part so far; `None` in a part's data.
    head: Option<usize>,
}

impl PartHeads {
    fn new(boundary: &str) -> PartHeads {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        PartHeads {
            delimiter,
            tail: b"\r\n".to_vec(),
            head: None,
        }
    }

    /// False once a part's headers pass [`MAX_PART_HEAD`].
    fn scan(&mut self, data: &[u8]) -> bool {
        let mut rest = data;
        while !rest.is_empty() {
            match self.head {
                None => match self.find(rest, true) {
                    Some(end) => {
                        self.head = Some(0);
                        rest = &rest[end..];
                        self.tail.clear();
                    }
                    None => {
                        self.keep_tail(rest, self.delimiter.len());
                        return true;
                    }
                },
                Some(so_far) => match self.find(rest, false) {
                    Some(end) => {
                        if so_far + end > MAX_PART_HEAD {
                            return false;
                        }
                        self.head = None;
                        rest = &rest[end..];
                        self.tail.clear();
                    }
                    None => {
                        let so_far = so_far + rest.len();
                        self.head = Some(so_far);
                        self.keep_tail(rest, 4);
                        return so_far <= MAX_PART_HEAD;
                    }
                },
            }
        }
        true
    }

    /// Where the delimiter (or a part head's blank line) ends in `data`,
    /// counting a match that began in the bytes kept from before.
    fn find(&self, data: &[u8], delimiter: bool) -> Option<usize> {
        let pattern: &[u8] = if delimiter {
            &self.delimiter
        } else {
            b"\r\n\r\n"
        };
        // A match that starts in the tail ends within the first bytes.
        let lead = data.len().min(pattern.len() - 1);
        let mut joined = self.tail.clone();
        joined.extend_from_slice(&data[..lead]);
        if let Some(at) = find(&joined, pattern)
            && at < self.tail.len()
        {
            return Some(at + pattern.len() - self.tail.len());
        }
        find(data, pattern).map(|at| at + pattern.len())
    }

    fn keep_tail(&mut self, data: &[u8], len: usize) {
        self.tail
            .extend_from_slice(&data[data.len().saturating_sub(len)..]);
        let excess = self.tail.len().saturating_sub(len);
        self.tail.drain(..excess);
    }
}

/// The first position of `pattern` in `data`, skipping ahead by its first
/// byte (uploads are long; their line breaks are few).
fn find(data: &[u8], pattern: &[u8]) -> Option<usize> {
    let first = *pattern.first()?;
    let mut from = 0;
    while from + pattern.len() <= data.len() {
        let at = from + data[from..].iter().position(|&b| b == first)?;
        if data.get(at..at + pattern.len()) == Some(pattern) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_in_pieces(body: &[u8], piece: usize) -> bool {
        let mut parts = PartHeads::new("XyZ");
        body.chunks(piece).all(|chunk| parts.scan(chunk))
    }

    #[test]
    fn part_heads_are_bounded_wherever_the_frames_split() {
        let file = vec![b'\r'; 100_000];
        let mut fine = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n".to_vec();
        fine.extend_from_slice(&file);
        fine.extend_from_slice(
            b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\na\r\n--XyZ--\r\n",
        );
        let mut endless = fine.clone();
        // The closing delimiter becomes one more part whose headers never end.
        endless.truncate(endless.len() - 4);
        endless.extend_from_slice(b"\r\n");
        endless.extend(std::iter::repeat_n(b'h', 20_000));
        let mut first_endless = b"--XyZ\r\n".to_vec();
        first_endless.extend(std::iter::repeat_n(b'h', 20_000));
        for piece in [1, 2, 3, 7, 64, 4096, 1 << 20] {
            assert!(scan_in_pieces(&fine, piece), "fine, in pieces of {piece}");
            assert!(
                !scan_in_pieces(&endless, piece),
                "endless, pieces of {piece}"
            );
            assert!(
                !scan_in_pieces(&first_endless, piece),
                "endless first part, pieces of {piece}"
            );
        }
    }

    #[test]
    fn boundaries_are_read_from_the_content_type() {
        let b = |ct| multipart_boundary(ct);
        assert_eq!(
            b("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            b("Multipart/Form-Data; charset=utf-8; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(b("multipart/form-data"), None);
        assert_eq!(b("application/json; boundary=abc"), None);
    }
}
