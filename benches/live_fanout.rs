//! Live fan-out figures (issue 3): delivery latency per event and
//! subscriber (p50/p99), events missed, server memory per idle connection,
//! server CPU per delivery, the same with 1 % stalled subscribers, a floor
//! (the same bytes broadcast by a bare tokio-tungstenite server to the same
//! number of clients), and the latency of the request that causes an event
//! with and without subscribers.
//!
//! Run: `cargo bench --bench live_fanout`. Knobs (env):
//! - `LATCH_BENCH_SUBSCRIBERS` sizes, comma-separated (default `1000,10000`);
//! - `LATCH_BENCH_EVENTS` paced events per measured phase (default 60);
//! - `LATCH_BENCH_FILL` large events sent while 1 % of subscribers are
//!   stalled (default 560: about 3.5 MiB per subscriber, past what the
//!   kernel buffers for one socket, so stalled sockets really block);
//! - `LATCH_BENCH_ONLY` `fanout` or `watch` runs one scenario only
//!   (default both);
//! - `LATCH_BENCH_SERVER` the server binary to measure (default the
//!   `latch` this bench was built with), to alternate before and after.
//!
//! The watch scenario (issue 10) is a server of its own with the
//! subscribers spread over 50 users: the same paced check-out / cancel
//! stream in blocks alternating without and with 10 % of the users
//! watching the file (each event writes their inbox in its transaction and
//! their frame carries their bell after the card) and a line of 5 users
//! waiting for another, held file. A line on the event file itself cannot
//! be had with this stream: each cancel would hand the file to the first
//! in line.
//!
//! 10,000 subscribers need ~10,300 file descriptors in this process and as
//! many in the server: run `ulimit -n 12000` (or more) in the shell first.
//! A size the limit cannot hold is skipped with a message.
//!
//! Processes: the server is the release `latch` binary in a child process,
//! so its RSS and CPU (/proc/PID/status, /proc/PID/stat) are its own; the
//! floor is this binary re-run as a child (`LATCH_BENCH_ROLE=floor`).
//! Clients run here and share the machine's cores with the servers.
//!
//! Latency runs from the moment the server publishes an event (Latch logs
//! "state change" just before its broadcast, with a microsecond timestamp;
//! the floor prints its own) to the moment a client has read it. Events are
//! paced: the next is caused once every reading subscriber has the last.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

const ADMIN_PASSWORD: &str = "bench-admin-password-1";
const USER_PASSWORD: &str = "bench-user-password-1";
/// Viewer classes: the admin, the user who causes every event (the lock
/// holder's variant), and plain users.
const USERS: [&str; 8] = [
    "admin", "actor", "user1", "user2", "user3", "user4", "user5", "user6",
];
/// Largest sequence tracked (setup + phases stay far below).
const MAX_SEQ: usize = 1 << 16;

fn main() {
    if std::env::var("LATCH_BENCH_ROLE").as_deref() == Ok("floor") {
        floor::main();
        return;
    }
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let sizes: Vec<usize> = env("LATCH_BENCH_SUBSCRIBERS", "1000,10000")
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let events: u64 = env("LATCH_BENCH_EVENTS", "60").parse().unwrap_or(60);
    let fill: u64 = env("LATCH_BENCH_FILL", "560").parse().unwrap_or(560);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "live_fanout: {} cores; sizes {sizes:?}; {events} paced events per phase; {fill} fill events while stalled",
        cores()
    );
    print_render_cost();
    let limit = fd_limit();
    let only = env("LATCH_BENCH_ONLY", "");
    let mut summaries = Vec::new();
    let mut watch_summaries = Vec::new();
    for &n in &sizes {
        let need = n + n / 100 + 300;
        if limit < need as u64 {
            println!(
                "\n== {n} subscribers: SKIPPED — the open-file limit is {limit}, this needs about {need} \
                 (here and in the server). Run `ulimit -n {}` in this shell first.",
                need.next_multiple_of(1000)
            );
            continue;
        }
        if only != "watch" {
            summaries.push(rt.block_on(run_size(n, events, fill)));
        }
        if only != "fanout" {
            watch_summaries.push(rt.block_on(watching::run(n, events)));
        }
    }
    if !summaries.is_empty() {
        println!("\n== Summary (medians of per-delivery figures; ratios against the floor)");
        for s in &summaries {
            println!("{s}");
        }
    }
    if !watch_summaries.is_empty() {
        println!("\n== Summary, 10 % watching and a line (pooled over the alternating blocks)");
        for s in &watch_summaries {
            println!("{s}");
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The soft open-file limit of this process (the server inherits it).
fn fd_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The event sequence an HTML fragment carries (`data-seq="N"`).
fn seq_in(html: &str) -> Option<u64> {
    let i = html.find("data-seq=\"")? + "data-seq=\"".len();
    let end = i + html[i..].find('"')?;
    html[i..end].parse().ok()
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0 // USER_HZ is 100 on Linux
}

// ------------------------------------------------------------------ render

/// What rendering costs per event (all viewer classes, both framings),
/// in-process, so it can be set against the fan-out figures.
fn print_render_cost() {
    use latch::domain::Revision;
    use latch::store::{Event, EventKind, FileRecord, LockRecord};
    let file = FileRecord {
        id: 1,
        path: latch::domain::RepoPath::from_stored("parts/1234567.mcam"),
        description: "Main housing, second op".into(),
        revision: Revision::parse("1.3").expect("revision"),
        created_by: "actor".into(),
        created_at: 1_700_000_000,
        size: 1 << 20,
        head: latch::vault::CommitId::from_hex(&"0".repeat(40)).expect("hex"),
        blob: latch::vault::BlobId::from_hex(&"0".repeat(40)).expect("hex"),
        modified_at: 1_700_000_000,
        modified_by: "actor".into(),
        lock: Some(LockRecord {
            owner: "actor".into(),
            locked_at: 1_700_000_000,
            comment: Some("fixing the post".into()),
            warned_at: None,
            draft: None,
            dav_tokens: Vec::new(),
        }),
        queue: Vec::new(),
        reserved: None,
    };
    let event = Event {
        seq: 42,
        kind: EventKind::Locked,
        at: 1_700_000_000,
        actor: "actor".into(),
        file_id: 1,
        path: file.path.clone(),
        note: Some("fixing the post".into()),
        revision: Some(file.revision),
        previous_holder: None,
        file: Some(file),
        notified: Vec::new(),
        grouped: false,
    };
    let counters = latch::live::Counters {
        files: 1000,
        locked: 100,
        reserved: 0,
    };
    let rounds = 2000;
    let t = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(latch::live::Hub::render(
            &latch::http::views::Fragments {
                stale_after: Duration::from_secs(7 * 86_400),
                cards: Default::default(),
            },
            &event,
            counters,
        ));
    }
    println!(
        "render: {:.1} µs per event (4 viewer classes, WebSocket text + SSE frame each)",
        t.elapsed().as_secs_f64() * 1e6 / rounds as f64
    );
}

// ------------------------------------------------------------------ tallies

/// Arrivals counted per sequence, so the driver knows when an event is everywhere.
struct Tally {
    counts: Vec<AtomicU32>,
    connected: AtomicUsize,
    alive: AtomicUsize,
    failed: AtomicUsize,
}

impl Tally {
    fn new() -> Arc<Tally> {
        Arc::new(Tally {
            counts: (0..MAX_SEQ).map(|_| AtomicU32::new(0)).collect(),
            connected: AtomicUsize::new(0),
            alive: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
        })
    }
    fn hit(&self, seq: u64) {
        if let Some(c) = self.counts.get(seq as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn get(&self, seq: u64) -> usize {
        self.counts
            .get(seq as usize)
            .map(|c| c.load(Ordering::Relaxed) as usize)
            .unwrap_or(0)
    }

    /// Waits until every live reader has `seq` (or `limit` passes).
    async fn wait_for(&self, seq: u64, limit: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < limit {
            if self.get(seq) >= self.alive.load(Ordering::Relaxed) {
                return true;
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        false
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transport {
    Ws,
    Sse,
}

/// What one subscriber saw.
struct Seen {
    transport: Transport,
    got: Vec<(u64, i64)>,
    /// Texts kept for the floor to replay (one subscriber only).
    captured: Vec<(u64, String)>,
    ended_early: bool,
}

struct Alive<'a>(&'a Tally);
impl Drop for Alive<'_> {
    fn drop(&mut self) {
        self.0.alive.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The sequence near the end of a fragment (its `#live-seq` element comes
/// last), found without scanning the whole text.
fn seq_near_end(p: &[u8]) -> Option<u64> {
    seq_in_tail(p, 768).or_else(|| seq_in_tail(p, p.len()))
}

/// The last sequence in a fragment's last `tail` bytes; a watcher's frame
/// carries their bell and toast after the card's `#live-seq`.
fn seq_in_tail(p: &[u8], tail: usize) -> Option<u64> {
    const PAT: &[u8] = b"data-seq=\"";
    let tail = &p[p.len().saturating_sub(tail)..];
    let at = tail.windows(PAT.len()).rposition(|w| w == PAT)? + PAT.len();
    let digits = &tail[at..];
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// A minimal WebSocket client reader (server frames are not masked): it
/// answers pings and hands over each data message. Both the Latch and the
/// floor subscribers use it, so neither pays for a heavier client.
#[derive(Default)]
struct Frames {
    buf: Vec<u8>,
}

impl Frames {
    /// Consumes complete frames; returns false once a close frame arrived.
    fn drain(&mut self, mut on_data: impl FnMut(&[u8]), mut on_ping: impl FnMut(&[u8])) -> bool {
        let mut at = 0;
        let mut open = true;
        loop {
            let b = &self.buf[at..];
            if b.len() < 2 {
                break;
            }
            let opcode = b[0] & 0x0f;
            let (hdr, len) = match b[1] & 0x7f {
                126 if b.len() >= 4 => (4, u16::from_be_bytes([b[2], b[3]]) as usize),
                127 if b.len() >= 10 => (
                    10,
                    u64::from_be_bytes(b[2..10].try_into().expect("8 bytes")) as usize,
                ),
                126 | 127 => break,
                n => (2, n as usize),
            };
            if b.len() < hdr + len {
                break;
            }
            let payload = &b[hdr..hdr + len];
            match opcode {
                0..=2 => on_data(payload),
                8 => open = false,
                9 => on_ping(payload),
                _ => {}
            }
            at += hdr + len;
        }
        self.buf.drain(..at);
        open
    }
}

async fn ws_subscriber(
    addr: SocketAddr,
    path: &'static str,
    cookie: Option<String>,
    tally: Arc<Tally>,
    connect_gate: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    capture: bool,
) -> Seen {
    let mut seen = Seen {
        transport: Transport::Ws,
        got: Vec::new(),
        captured: Vec::new(),
        ended_early: false,
    };
    let mut headers = format!(
        "Origin: http://{addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    if let Some(c) = &cookie {
        headers.push_str(&format!("Cookie: {c}\r\n"));
    }
    let permit = connect_gate.acquire().await.expect("gate");
    let mut opened = None;
    for _ in 0..5 {
        match http_get_head(addr, path, &headers, None).await {
            Ok((s, head, rest)) if head.starts_with("HTTP/1.1 101") => {
                opened = Some((s, rest));
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    drop(permit);
    let Some((mut s, rest)) = opened else {
        tally.failed.fetch_add(1, Ordering::Relaxed);
        seen.ended_early = true;
        return seen;
    };
    tally.alive.fetch_add(1, Ordering::Relaxed);
    let _alive = Alive(&tally);
    tally.connected.fetch_add(1, Ordering::Relaxed);
    let mut frames = Frames { buf: rest };
    let mut buf = vec![0u8; 16 * 1024];
    let mut pongs: Vec<u8> = Vec::new();
    loop {
        let open = frames.drain(
            |payload| {
                let at = now_ns();
                if let Some(seq) = seq_near_end(payload) {
                    tally.hit(seq);
                    seen.got.push((seq, at));
                    if capture {
                        seen.captured
                            .push((seq, String::from_utf8_lossy(payload).into_owned()));
                    }
                }
            },
            // A masked pong (a zero key is a valid key).
            |ping| {
                pongs.extend_from_slice(&[0x8a, 0x80 | ping.len().min(125) as u8, 0, 0, 0, 0]);
                pongs.extend_from_slice(&ping[..ping.len().min(125)]);
            },
        );
        if !pongs.is_empty() {
            let _ = s.write_all(&pongs).await;
            pongs.clear();
        }
        if !open {
            seen.ended_early = !*stop.borrow();
            break;
        }
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(n) if n > 0 => frames.buf.extend_from_slice(&buf[..n]),
                _ => {
                    seen.ended_early = !*stop.borrow();
                    break;
                }
            },
            _ = stop.changed() => break,
        }
    }
    seen
}

/// A `Transfer-Encoding: chunked` reader that looks only at each chunk's
/// first bytes: Latch writes one SSE event per chunk, starting `id: N`.
#[derive(Default)]
struct Chunks {
    state: u8, // 0 size line, 1 data, 2 trailing CRLF, 3 done
    line: Vec<u8>,
    remaining: usize,
    head: Vec<u8>,
    head_done: bool,
    crlf: usize,
}

impl Chunks {
    fn parse_head(&mut self, on_seq: &mut impl FnMut(u64)) {
        self.head_done = true;
        if let Some(rest) = self.head.strip_prefix(b"id: ") {
            let digits: Vec<u8> = rest
                .iter()
                .copied()
                .take_while(u8::is_ascii_digit)
                .collect();
            if let Some(seq) = std::str::from_utf8(&digits)
                .ok()
                .and_then(|d| d.parse().ok())
            {
                on_seq(seq);
            }
        }
    }

    /// False once the response has ended.
    fn feed(&mut self, mut data: &[u8], mut on_seq: impl FnMut(u64)) -> bool {
        while !data.is_empty() {
            match self.state {
                0 => match data.iter().position(|b| *b == b'\n') {
                    Some(p) => {
                        self.line.extend_from_slice(&data[..p]);
                        data = &data[p + 1..];
                        let text = String::from_utf8_lossy(&self.line).trim().to_string();
                        self.line.clear();
                        let size = usize::from_str_radix(text.split(';').next().unwrap_or(""), 16)
                            .unwrap_or(0);
                        if size == 0 {
                            self.state = 3;
                            return false;
                        }
                        self.remaining = size;
                        self.head.clear();
                        self.head_done = false;
                        self.state = 1;
                    }
                    None => {
                        self.line.extend_from_slice(data);
                        data = &[];
                    }
                },
                1 => {
                    let take = self.remaining.min(data.len());
                    if !self.head_done {
                        let want = (24 - self.head.len()).min(take);
                        self.head.extend_from_slice(&data[..want]);
                        if self.head.len() >= 24 || self.head.contains(&b'\n') {
                            self.parse_head(&mut on_seq);
                        }
                    }
                    self.remaining -= take;
                    data = &data[take..];
                    if self.remaining == 0 {
                        if !self.head_done {
                            self.parse_head(&mut on_seq);
                        }
                        self.state = 2;
                        self.crlf = 2;
                    }
                }
                2 => {
                    let take = self.crlf.min(data.len());
                    self.crlf -= take;
                    data = &data[take..];
                    if self.crlf == 0 {
                        self.state = 0;
                    }
                }
                _ => return false,
            }
        }
        true
    }
}

/// Sends a GET and reads the response head; returns the stream and any body bytes read.
async fn http_get_head(
    addr: SocketAddr,
    path: &str,
    headers: &str,
    recv_buffer: Option<u32>,
) -> std::io::Result<(TcpStream, String, Vec<u8>)> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    if let Some(size) = recv_buffer {
        sock.set_recv_buffer_size(size)?;
    }
    let mut s = sock.connect(addr).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).to_string();
            let rest = buf[p + 4..].to_vec();
            return Ok((s, head, rest));
        }
    }
}

async fn sse_subscriber(
    addr: SocketAddr,
    cookie: String,
    tally: Arc<Tally>,
    connect_gate: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let mut seen = Seen {
        transport: Transport::Sse,
        got: Vec::new(),
        captured: Vec::new(),
        ended_early: false,
    };
    let headers = format!("Cookie: {cookie}\r\nAccept: text/event-stream\r\n");
    let permit = connect_gate.acquire().await.expect("gate");
    let mut opened = None;
    for _ in 0..5 {
        match http_get_head(addr, "/events", &headers, None).await {
            Ok((s, head, rest)) if head.starts_with("HTTP/1.1 200") => {
                opened = Some((s, rest));
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    drop(permit);
    let Some((mut s, rest)) = opened else {
        tally.failed.fetch_add(1, Ordering::Relaxed);
        seen.ended_early = true;
        return seen;
    };
    tally.alive.fetch_add(1, Ordering::Relaxed);
    let _alive = Alive(&tally);
    tally.connected.fetch_add(1, Ordering::Relaxed);
    let mut chunks = Chunks::default();
    let on = |seq: u64, got: &mut Vec<(u64, i64)>| {
        tally.hit(seq);
        got.push((seq, now_ns()));
    };
    chunks.feed(&rest, |seq| on(seq, &mut seen.got));
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(n) if n > 0 => {
                    if !chunks.feed(&buf[..n], |seq| on(seq, &mut seen.got)) {
                        seen.ended_early = !*stop.borrow();
                        break;
                    }
                }
                _ => {
                    seen.ended_early = !*stop.borrow();
                    break;
                }
            },
            _ = stop.changed() => break,
        }
    }
    seen
}

/// A subscriber that completes its handshake and then never reads.
async fn stalled_subscriber(addr: SocketAddr, cookie: &str, websocket: bool) -> Option<TcpStream> {
    let origin = format!("http://{addr}");
    let headers = if websocket {
        format!(
            "Origin: {origin}\r\nCookie: {cookie}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        )
    } else {
        format!("Cookie: {cookie}\r\nAccept: text/event-stream\r\n")
    };
    let path = if websocket { "/ws" } else { "/events" };
    let (s, head, _) = http_get_head(addr, path, &headers, Some(4096)).await.ok()?;
    let ok = if websocket {
        "HTTP/1.1 101"
    } else {
        "HTTP/1.1 200"
    };
    head.starts_with(ok).then_some(s)
}

/// Reads what is left on a stalled socket; true when the server had closed it.
async fn closed_by_server(mut s: TcpStream) -> bool {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

// ------------------------------------------------------------------ statistics

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

struct Lat {
    p50: f64,
    p99: f64,
    max: f64,
    n: usize,
}

impl std::fmt::Display for Lat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:7.2} ms  p99 {:7.2} ms  max {:7.2} ms  ({} deliveries)",
            self.p50, self.p99, self.max, self.n
        )
    }
}

/// Delivery latencies (ms) of events `seqs` over subscribers matching `filter`.
fn latencies(
    seen: &[Seen],
    published: &HashMap<u64, i64>,
    seqs: std::ops::RangeInclusive<u64>,
    filter: impl Fn(&Seen) -> bool,
) -> Lat {
    let mut v: Vec<f64> = seen
        .iter()
        .filter(|s| filter(s))
        .flat_map(|s| s.got.iter())
        .filter(|(seq, _)| seqs.contains(seq))
        .filter_map(|(seq, at)| published.get(seq).map(|p| (*at - *p) as f64 / 1e6))
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    Lat {
        p50: pct(&v, 0.5),
        p99: pct(&v, 0.99),
        max: v.last().copied().unwrap_or(f64::NAN),
        n: v.len(),
    }
}

/// Events of `seqs` that reading subscribers never got, and duplicates or
/// out-of-order arrivals.
fn missed(seen: &[Seen], seqs: std::ops::RangeInclusive<u64>) -> (usize, usize) {
    let mut missing = 0;
    let mut disorder = 0;
    if seqs.is_empty() {
        return (0, 0);
    }
    for s in seen.iter().filter(|s| !s.ended_early) {
        let got: Vec<u64> = s
            .got
            .iter()
            .map(|(q, _)| *q)
            .filter(|q| seqs.contains(q))
            .collect();
        let expected = (seqs.end() - seqs.start() + 1) as usize;
        let mut uniq = got.clone();
        uniq.dedup();
        missing += expected.saturating_sub(uniq.len());
        disorder += got.windows(2).filter(|w| w[1] <= w[0]).count();
    }
    (missing, disorder)
}

fn durations_ms(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (pct(v, 0.5), pct(v, 0.99))
}

// ------------------------------------------------------------------ servers

/// Publish times by sequence, read from a child's stdout.
type Published = Arc<Mutex<HashMap<u64, i64>>>;

struct Latch {
    child: Child,
    addr: SocketAddr,
    base: String,
    published: Published,
    /// How long each check-out/cancel took inside the server (its request log), in ms.
    served_ms: Arc<Mutex<Vec<(i64, f64)>>>,
    _dir: tempfile::TempDir,
}

impl Drop for Latch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Latch {
    async fn start() -> Latch {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        // `LATCH_BENCH_SERVER` runs another build of the server (a saved
        // "before" binary), so before and after can be alternated.
        let server = std::env::var("LATCH_BENCH_SERVER")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_latch").to_string());
        let mut child = Command::new(server)
            .args([
                "--data",
                dir.path().join("data").to_str().expect("utf-8 path"),
            ])
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .env("LATCH_ADMIN_PASSWORD", ADMIN_PASSWORD)
            // The hub's "state change" lines time each publish; request
            // lines say how long the server took over a request.
            .env(
                "LATCH_LOG",
                "warn,latch::live=info,latch::http::middleware=info",
            )
            .env("LATCH_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start latch");
        let published: Published = Default::default();
        let served_ms: Arc<Mutex<Vec<(i64, f64)>>> = Default::default();
        let out = child.stdout.take().expect("stdout");
        let sink = published.clone();
        let served = served_ms.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let fields = &v["fields"];
                if fields["message"] == "request" {
                    let path = fields["path"].as_str().unwrap_or_default();
                    let at = v["timestamp"]
                        .as_str()
                        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                        .map(|t| t.as_nanosecond() as i64);
                    if (path.ends_with("/checkout") || path.ends_with("/cancel"))
                        && let (Some(ms), Some(at)) = (fields["ms"].as_f64(), at)
                    {
                        served.lock().expect("lock").push((at, ms));
                    }
                    continue;
                }
                if fields["message"] != "state change" {
                    continue;
                }
                let seq = v["fields"]["seq"].as_u64();
                let at = v["timestamp"]
                    .as_str()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                    .map(|t| t.as_nanosecond() as i64);
                if let (Some(seq), Some(at)) = (seq, at) {
                    sink.lock().expect("lock").insert(seq, at);
                }
            }
        });
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let base = format!("http://{addr}");
        let http = reqwest::Client::new();
        for _ in 0..400 {
            if http.get(format!("{base}/healthz")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Latch {
            child,
            addr,
            base,
            published,
            served_ms,
            _dir: dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn last_published(&self) -> u64 {
        self.published
            .lock()
            .expect("lock")
            .keys()
            .copied()
            .max()
            .unwrap_or(0)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Sessions and tokens for the bench's users.
struct Accounts {
    http: reqwest::Client,
    admin_token: String,
    actor_token: String,
    /// `latch_session=…` per entry of `USERS`.
    cookies: Vec<String>,
}

async fn setup_accounts(latch: &Latch) -> Accounts {
    let http = reqwest::Client::new();
    let token = |user: &'static str, password: &'static str| {
        let http = http.clone();
        let url = format!("{}/api/tokens", latch.base);
        async move {
            let v: serde_json::Value = http
                .post(url)
                .basic_auth(user, Some(password))
                .json(&serde_json::json!({"name": "bench"}))
                .send()
                .await
                .expect("token")
                .json()
                .await
                .expect("token json");
            v["token"].as_str().expect("token").to_string()
        }
    };
    let admin_token = token("admin", ADMIN_PASSWORD).await;
    for user in &USERS[1..] {
        let resp = http
            .post(format!("{}/api/users", latch.base))
            .bearer_auth(&admin_token)
            .json(&serde_json::json!({"username": user, "password": USER_PASSWORD, "role": "user"}))
            .send()
            .await
            .expect("create user");
        assert_eq!(resp.status(), 201, "create {user}");
    }
    let actor_token = token("actor", USER_PASSWORD).await;
    let mut cookies = Vec::new();
    for user in USERS {
        let password = if user == "admin" {
            ADMIN_PASSWORD
        } else {
            USER_PASSWORD
        };
        let resp = http
            .post(format!("{}/api/login", latch.base))
            .json(&serde_json::json!({"username": user, "password": password}))
            .send()
            .await
            .expect("login");
        let cookie = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("latch_session="))
            .and_then(|v| v.split(';').next())
            .expect("session cookie")
            .to_string();
        cookies.push(cookie);
    }
    Accounts {
        http,
        admin_token,
        actor_token,
        cookies,
    }
}

async fn upload(acc: &Accounts, base: &str, path: &str, description: &str) -> u64 {
    let form = reqwest::multipart::Form::new()
        .text("path", path.to_string())
        .text("description", description.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"G0 X0 Y0".to_vec()).file_name("f.nc"),
        );
    let v: serde_json::Value = acc
        .http
        .post(format!("{base}/api/files"))
        .bearer_auth(&acc.actor_token)
        .multipart(form)
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("upload json");
    v["id"].as_u64().expect("file id")
}

/// Check-outs and cancels by the actor, sent from a thread of their own:
/// on the subscribers' runtime, a response would queue behind thousands
/// of client reads and the request would look slower than it is.
struct Causer {
    tx: tokio::sync::mpsc::UnboundedSender<(
        String,
        bool,
        String,
        tokio::sync::oneshot::Sender<Duration>,
    )>,
}

impl Causer {
    fn start(token: String) -> Causer {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(
            String,
            bool,
            String,
            tokio::sync::oneshot::Sender<Duration>,
        )>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let http = reqwest::Client::new();
                while let Some((url, lock, comment, reply)) = rx.recv().await {
                    let t = Instant::now();
                    let rb = if lock {
                        http.post(url)
                            .json(&serde_json::json!({"comment": comment}))
                    } else {
                        http.post(url)
                    };
                    let resp = rb.bearer_auth(&token).send().await.expect("cause");
                    assert_eq!(resp.status(), 200, "check-out/cancel");
                    let _ = resp.bytes().await;
                    let _ = reply.send(t.elapsed());
                }
            });
        });
        Causer { tx }
    }

    /// One check-out (`lock`) or cancel; returns how long the request took.
    async fn cause(&self, base: &str, id: u64, lock: bool, comment: &str) -> Duration {
        let url = if lock {
            format!("{base}/api/files/{id}/checkout")
        } else {
            format!("{base}/api/files/{id}/cancel")
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send((url, lock, comment.to_string(), reply))
            .expect("causer thread");
        answer.await.expect("causer reply")
    }
}

async fn live_connections(acc: &Accounts, base: &str) -> (u64, u64) {
    let text = acc
        .http
        .get(format!("{base}/metrics"))
        .bearer_auth(&acc.admin_token)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    let read = |t: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("latch_live_connections{{transport=\"{t}\"}}")))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (read("websocket"), read("sse"))
}

// ------------------------------------------------------------------ one size

struct Summary {
    n: usize,
    latch: Lat,
    latch_stalled: Lat,
    floor: Lat,
    mem_ws: f64,
    mem_sse: f64,
    mem_floor: f64,
    cpu_latch: f64,
    cpu_floor: f64,
    req_idle: (f64, f64),
    req_busy: (f64, f64),
    missed: usize,
    stalled_dropped: String,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "-- {} subscribers", self.n)?;
        writeln!(
            f,
            "   delivery p50/p99: Latch {:.2}/{:.2} ms, floor {:.2}/{:.2} ms → p99 ratio {:.2}× (goal ≤ 1.5×)",
            self.latch.p50,
            self.latch.p99,
            self.floor.p50,
            self.floor.p99,
            self.latch.p99 / self.floor.p99
        )?;
        writeln!(
            f,
            "   with 1 % stalled: p50/p99 {:.2}/{:.2} ms ({:.2}× the unstalled p99); stalled dropped: {}",
            self.latch_stalled.p50,
            self.latch_stalled.p99,
            self.latch_stalled.p99 / self.latch.p99,
            self.stalled_dropped
        )?;
        writeln!(
            f,
            "   events missed by reading subscribers: {}",
            self.missed
        )?;
        writeln!(
            f,
            "   server memory per idle connection: WebSocket {:.1} KiB, SSE {:.1} KiB (goal ≤ 12 KiB), floor {:.1} KiB",
            self.mem_ws, self.mem_sse, self.mem_floor
        )?;
        writeln!(
            f,
            "   server CPU per delivery: Latch {:.2} µs, floor {:.2} µs ({:.2}×)",
            self.cpu_latch,
            self.cpu_floor,
            self.cpu_latch / self.cpu_floor
        )?;
        writeln!(
            f,
            "   causing request p50/p99: {:.2}/{:.2} ms with {} subscribers vs {:.2}/{:.2} ms with none",
            self.req_busy.0, self.req_busy.1, self.n, self.req_idle.0, self.req_idle.1,
        )?;
        write!(
            f,
            "   causing request p50 with {} subscribers / idle = {:.2}× (goal ≤ 1.2×)",
            self.n,
            self.req_busy.0 / self.req_idle.0
        )
    }
}

async fn run_size(n: usize, events: u64, fill: u64) -> Summary {
    println!(
        "\n== {n} subscribers ({} WebSocket + {} SSE, over {} users incl. an admin and the lock holder)",
        n / 2,
        n - n / 2,
        USERS.len()
    );
    let latch = Latch::start().await;
    let acc = setup_accounts(&latch).await;
    let normal = upload(
        &acc,
        &latch.base,
        "parts/1234567.mcam",
        "Main housing, second op",
    )
    .await;
    let bulky = upload(
        &acc,
        &latch.base,
        &format!("fixtures/{}.nc", "x".repeat(200)),
        &"Fixture notes. ".repeat(134)[..2000],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let causer = Causer::start(acc.actor_token.clone());
    let mut next_seq = latch.last_published() + 1;
    let tally = Tally::new();
    let mut locked = HashMap::from([(normal, false), (bulky, false)]);
    let comment_bulky = "c".repeat(500);

    // Phase 0: the causing request with nobody listening.
    let mut idle = Vec::new();
    for _ in 0..events {
        let l = locked.get_mut(&normal).expect("file");
        idle.push(
            causer
                .cause(&latch.base, normal, !*l, "")
                .await
                .as_secs_f64()
                * 1e3,
        );
        *l = !*l;
        next_seq += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let req_idle = durations_ms(&mut idle);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let served_idle = durations_ms(
        &mut latch
            .served_ms
            .lock()
            .expect("lock")
            .drain(..)
            .map(|(_, ms)| ms)
            .collect::<Vec<_>>(),
    );

    // Connect: WebSockets first, then SSE, to see each one's memory.
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(64));
    let rss0 = proc_status_kib(latch.pid(), "VmRSS");
    let mut tasks = Vec::new();
    let t = Instant::now();
    for i in 0..n / 2 {
        let user = i % USERS.len();
        tasks.push(tokio::spawn(ws_subscriber(
            latch.addr,
            "/ws",
            Some(acc.cookies[user].clone()),
            tally.clone(),
            gate.clone(),
            stop_rx.clone(),
            i == 2, // a plain user's WebSocket: its texts are the floor's payloads
        )));
    }
    wait_connected(&tally, n / 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_ws = proc_status_kib(latch.pid(), "VmRSS");
    for i in 0..n - n / 2 {
        let user = i % USERS.len();
        tasks.push(tokio::spawn(sse_subscriber(
            latch.addr,
            acc.cookies[user].clone(),
            tally.clone(),
            gate.clone(),
            stop_rx.clone(),
        )));
    }
    wait_connected(&tally, n).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_sse = proc_status_kib(latch.pid(), "VmRSS");
    let (cws, csse) = live_connections(&acc, &latch.base).await;
    let mem_ws = (rss_ws.saturating_sub(rss0)) as f64 / (n / 2) as f64;
    let mem_sse = (rss_sse.saturating_sub(rss_ws)) as f64 / (n - n / 2) as f64;
    println!(
        "connected {} in {:.1} s ({} failed); server counts {cws} WebSocket + {csse} SSE; RSS {} → {} → {} MiB",
        tally.connected.load(Ordering::Relaxed),
        t.elapsed().as_secs_f64(),
        tally.failed.load(Ordering::Relaxed),
        rss0 / 1024,
        rss_ws / 1024,
        rss_sse / 1024
    );

    // Phase A: paced events, everyone reading.
    let cpu0 = cpu_seconds(latch.pid());
    let a_first = next_seq;
    let mut busy = Vec::new();
    let mut late = 0;
    for _ in 0..events {
        let l = locked.get_mut(&normal).expect("file");
        busy.push(
            causer
                .cause(&latch.base, normal, !*l, "fixing the post")
                .await
                .as_secs_f64()
                * 1e3,
        );
        *l = !*l;
        if !tally.wait_for(next_seq, Duration::from_secs(10)).await {
            late += 1;
        }
        next_seq += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let a_last = next_seq - 1;
    let cpu_a = cpu_seconds(latch.pid()) - cpu0;
    let readers = tally.alive.load(Ordering::Relaxed);
    let cpu_latch = cpu_a * 1e6 / (events as f64 * readers as f64);
    let rss_after = proc_status_kib(latch.pid(), "VmRSS");
    let req_busy = durations_ms(&mut busy);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let served_a: Vec<(i64, f64)> = latch.served_ms.lock().expect("lock").drain(..).collect();
    let served_busy = durations_ms(&mut served_a.iter().map(|(_, ms)| *ms).collect::<Vec<_>>());
    // When each event's fan-out began, relative to its request's answer
    // being ready (positive: the answer came first).
    let mut head_start: Vec<f64> = {
        let published = latch.published.lock().expect("lock");
        served_a
            .iter()
            .enumerate()
            .filter_map(|(k, (done, _))| {
                published
                    .get(&(a_first + k as u64))
                    .map(|p| (*p - *done) as f64 / 1e6)
            })
            .collect()
    };
    head_start.sort_by(|a, b| a.total_cmp(b));
    println!(
        "phase A: the fan-out began {:.2} ms (median; min {:.2}) after the causing request's answer was ready",
        pct(&head_start, 0.5),
        head_start.first().copied().unwrap_or(f64::NAN)
    );
    println!(
        "phase A: {events} events; {late} not everywhere within 10 s; server CPU {cpu_a:.2} s; RSS after traffic {} MiB ({:.1} KiB per connection over the start)",
        rss_after / 1024,
        rss_after.saturating_sub(rss0) as f64 / n as f64
    );

    // Phase B: 1 % stalled (half WebSocket, half SSE), large fill events,
    // then the same paced events. LATCH_BENCH_FILL=0 leaves it out.
    let (b_fill_first, b_fill_last, b_first, b_last, stalled_dropped) = if fill == 0 {
        (1, 0, 1, 0, "not measured (LATCH_BENCH_FILL=0)".to_string())
    } else {
        let stalled_n = (n / 100).max(2);
        let mut stalled = Vec::new();
        for i in 0..stalled_n {
            if let Some(s) =
                stalled_subscriber(latch.addr, &acc.cookies[2 + i % 6], i % 2 == 0).await
            {
                stalled.push((i % 2 == 0, s));
            }
        }
        let t = Instant::now();
        let b_fill_first = next_seq;
        for _ in 0..fill {
            let l = locked.get_mut(&bulky).expect("file");
            causer.cause(&latch.base, bulky, !*l, &comment_bulky).await;
            *l = !*l;
            tally.wait_for(next_seq, Duration::from_secs(10)).await;
            next_seq += 1;
        }
        let b_fill_last = next_seq - 1;
        println!(
            "phase B: {} stalled ({} WebSocket, {} SSE); {fill} large events in {:.1} s",
            stalled.len(),
            stalled.iter().filter(|(ws, _)| *ws).count(),
            stalled.iter().filter(|(ws, _)| !*ws).count(),
            t.elapsed().as_secs_f64()
        );
        let b_first = next_seq;
        for _ in 0..events {
            let l = locked.get_mut(&normal).expect("file");
            causer
                .cause(&latch.base, normal, !*l, "fixing the post")
                .await;
            *l = !*l;
            tally.wait_for(next_seq, Duration::from_secs(10)).await;
            next_seq += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let b_last = next_seq - 1;
        // Past the WebSocket send timeout and the socket write-stall limit,
        // then see who is still connected.
        tokio::time::sleep(
            latch::live::SEND_TIMEOUT.max(latch::live::WRITE_STALL) + Duration::from_secs(3),
        )
        .await;
        let (cws, csse) = live_connections(&acc, &latch.base).await;
        let readers_ws = n / 2;
        let readers_sse = n - n / 2;
        let stalled_ws = stalled.iter().filter(|(ws, _)| *ws).count();
        let stalled_sse = stalled.len() - stalled_ws;
        let open_ws = cws as usize - readers_ws.min(cws as usize);
        let open_sse = csse as usize - readers_sse.min(csse as usize);
        let mut closed = (0, 0);
        let checks: Vec<_> = stalled
            .into_iter()
            .map(|(ws, s)| tokio::spawn(async move { (ws, closed_by_server(s).await) }))
            .collect();
        for c in checks {
            let (ws, was_closed) = c.await.expect("drain");
            if was_closed {
                if ws { closed.0 += 1 } else { closed.1 += 1 }
            }
        }
        let stalled_dropped = format!(
            "WebSocket {}/{} (server still counts {open_ws} open), SSE {}/{} (server still counts {open_sse} open)",
            closed.0, stalled_ws, closed.1, stalled_sse
        );
        println!("phase B: stalled subscribers dropped — {stalled_dropped}");
        (b_fill_first, b_fill_last, b_first, b_last, stalled_dropped)
    };

    let _ = stop_tx.send(true);
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.expect("subscriber"));
    }
    let published = latch.published.lock().expect("lock").clone();
    let lat_a = latencies(&seen, &published, a_first..=a_last, |_| true);
    let lat_a_ws = latencies(&seen, &published, a_first..=a_last, |s| {
        s.transport == Transport::Ws
    });
    let lat_a_sse = latencies(&seen, &published, a_first..=a_last, |s| {
        s.transport == Transport::Sse
    });
    let lat_fill = latencies(&seen, &published, b_fill_first..=b_fill_last, |_| true);
    let lat_b = latencies(&seen, &published, b_first..=b_last, |_| true);
    let (miss_a, dis_a) = missed(&seen, a_first..=a_last);
    let (miss_b, dis_b) = missed(&seen, b_fill_first..=b_last);
    let ended = seen.iter().filter(|s| s.ended_early).count();
    println!("latency, phase A (all):        {lat_a}");
    println!("latency, phase A (WebSocket):  {lat_a_ws}");
    println!("latency, phase A (SSE):        {lat_a_sse}");
    println!("latency, phase B fill (large): {lat_fill}");
    println!("latency, phase B (stalled):    {lat_b}");
    println!(
        "missed: phase A {miss_a}, phase B {miss_b}; out of order or repeated: {}; reading subscribers that lost their stream: {ended}",
        dis_a + dis_b
    );
    println!(
        "causing request: p50/p99 {:.2}/{:.2} ms idle vs {:.2}/{:.2} ms with {n} subscribers \
         (inside the server: {:.2}/{:.2} vs {:.2}/{:.2} ms)",
        req_idle.0,
        req_idle.1,
        req_busy.0,
        req_busy.1,
        served_idle.0,
        served_idle.1,
        served_busy.0,
        served_busy.1
    );
    let payloads: Vec<String> = seen
        .iter()
        .flat_map(|s| s.captured.iter())
        .filter(|(q, _)| (a_first..=a_last).contains(q))
        .map(|(_, t)| t.clone())
        .collect();
    drop(seen);
    drop(latch);

    // The floor: the same bytes, paced the same way, over bare tokio-tungstenite.
    let floor = floor_run(n, &payloads).await;
    Summary {
        n,
        latch: lat_a,
        latch_stalled: lat_b,
        floor: floor.0,
        mem_ws,
        mem_sse,
        mem_floor: floor.1,
        cpu_latch,
        cpu_floor: floor.2,
        req_idle,
        req_busy,
        missed: miss_a + miss_b,
        stalled_dropped,
    }
}

async fn wait_connected(tally: &Tally, n: usize) {
    let t = Instant::now();
    while tally.connected.load(Ordering::Relaxed) + tally.failed.load(Ordering::Relaxed) < n {
        if t.elapsed() > Duration::from_secs(300) {
            println!("gave up waiting for connections");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Returns (latency, memory per idle connection in KiB, CPU per delivery in µs).
async fn floor_run(n: usize, payloads: &[String]) -> (Lat, f64, f64) {
    let mut child = Command::new(std::env::current_exe().expect("bench binary"))
        .env("LATCH_BENCH_ROLE", "floor")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start floor");
    let pid = child.id();
    let mut stdin: ChildStdin = child.stdin.take().expect("stdin");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("floor port");
    let port: u16 = line
        .trim()
        .strip_prefix("port ")
        .and_then(|p| p.parse().ok())
        .expect("port line");
    let published: Published = Default::default();
    let sink = published.clone();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            let mut parts = line.split_whitespace();
            if parts.next() != Some("pub") {
                continue;
            }
            if let (Some(seq), Some(at)) = (
                parts.next().and_then(|v| v.parse().ok()),
                parts.next().and_then(|v| v.parse().ok()),
            ) {
                sink.lock().expect("lock").insert(seq, at);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let tally = Tally::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(64));
    let rss0 = proc_status_kib(pid, "VmRSS");
    let mut tasks = Vec::new();
    for _ in 0..n {
        tasks.push(tokio::spawn(ws_subscriber(
            SocketAddr::from(([127, 0, 0, 1], port)),
            "/",
            None,
            tally.clone(),
            gate.clone(),
            stop_rx.clone(),
            false,
        )));
    }
    wait_connected(&tally, n).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = proc_status_kib(pid, "VmRSS");
    let cpu0 = cpu_seconds(pid);
    let mut first = u64::MAX;
    let mut last = 0;
    for p in payloads {
        let seq = seq_in(p).expect("payload seq");
        first = first.min(seq);
        last = last.max(seq);
        writeln!(stdin, "{}", p.len()).expect("floor stdin");
        stdin.write_all(p.as_bytes()).expect("floor stdin");
        stdin.flush().expect("floor stdin");
        tally.wait_for(seq, Duration::from_secs(10)).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cpu = cpu_seconds(pid) - cpu0;
    let readers = tally.alive.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.expect("subscriber"));
    }
    let published = published.lock().expect("lock").clone();
    let lat = latencies(&seen, &published, first..=last, |_| true);
    let (miss, _) = missed(&seen, first..=last);
    let mem = rss1.saturating_sub(rss0) as f64 / n as f64;
    let cpu_per = cpu * 1e6 / (payloads.len() as f64 * readers as f64);
    println!(
        "floor: {} payloads to {readers} WebSockets; {lat}; missed {miss}; {mem:.1} KiB per idle connection; CPU {cpu:.2} s",
        payloads.len()
    );
    let _ = child.kill();
    let _ = child.wait();
    (lat, mem, cpu_per)
}

// ------------------------------------------------------------------ watchers and a line

mod watching {
    //! Issue 10: the same paced stream without and with 10 % of the users
    //! watching its file and a line waiting for another file, in blocks
    //! that alternate on one server with the same subscribers.
    use super::*;

    /// Users the subscribers are spread over: the admin, the actor and 48
    /// plain users, so 5 watchers are 10 % of the users and of the subscribers.
    const USERS: usize = 50;
    const WATCHERS: std::ops::Range<usize> = 2..7;
    const QUEUED: std::ops::Range<usize> = 7..12;
    /// Blocks of paced events; even ones without, odd ones with.
    const BLOCKS: usize = 6;

    fn name(i: usize) -> String {
        match i {
            0 => "admin".to_string(),
            1 => "actor".to_string(),
            _ => format!("viewer{i:02}"),
        }
    }

    pub struct Summary {
        n: usize,
        without: Lat,
        with: Lat,
        with_watchers: Lat,
        req_without: (f64, f64),
        req_with: (f64, f64),
        served_without: (f64, f64),
        served_with: (f64, f64),
        missed: usize,
        unread: u64,
    }

    impl std::fmt::Display for Summary {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            writeln!(f, "-- {} subscribers", self.n)?;
            writeln!(
                f,
                "   delivery p50/p99: {:.2}/{:.2} ms with 10 % watching and a line vs {:.2}/{:.2} ms without → p99 ratio {:.2}× (goal ≤ 1.1×)",
                self.with.p50,
                self.with.p99,
                self.without.p50,
                self.without.p99,
                self.with.p99 / self.without.p99
            )?;
            writeln!(
                f,
                "   the watchers' own deliveries (card + bell): p50/p99 {:.2}/{:.2} ms",
                self.with_watchers.p50, self.with_watchers.p99
            )?;
            writeln!(
                f,
                "   events missed by reading subscribers: {}; a watcher's unread count at the end: {}",
                self.missed, self.unread
            )?;
            write!(
                f,
                "   causing request p50/p99: {:.2}/{:.2} ms with {} watchers told vs {:.2}/{:.2} ms without ({:.2}× at p50; inside the server {:.2} vs {:.2} ms)",
                self.req_with.0,
                self.req_with.1,
                WATCHERS.len(),
                self.req_without.0,
                self.req_without.1,
                self.req_with.0 / self.req_without.0,
                self.served_with.0,
                self.served_without.0
            )
        }
    }

    async fn token(http: &reqwest::Client, base: &str, user: &str, password: &str) -> String {
        let v: serde_json::Value = http
            .post(format!("{base}/api/tokens"))
            .basic_auth(user, Some(password))
            .json(&serde_json::json!({"name": "bench"}))
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("token json");
        v["token"].as_str().expect("token").to_string()
    }

    async fn login(http: &reqwest::Client, base: &str, user: &str, password: &str) -> String {
        let resp = http
            .post(format!("{base}/api/login"))
            .json(&serde_json::json!({"username": user, "password": password}))
            .send()
            .await
            .expect("login");
        resp.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("latch_session="))
            .and_then(|v| v.split(';').next())
            .expect("session cookie")
            .to_string()
    }

    /// `POST` (join) or `DELETE` (leave) on `url` for each token; each must succeed.
    async fn each(http: &reqwest::Client, tokens: &[String], url: &str, join: bool) {
        for t in tokens {
            let rb = if join {
                http.post(url)
            } else {
                http.delete(url)
            };
            let resp = rb.bearer_auth(t).send().await.expect("watch/queue");
            assert!(resp.status().is_success(), "{url}: {}", resp.status());
        }
    }

    pub async fn run(n: usize, events: u64) -> Summary {
        println!(
            "\n== {n} subscribers, 10 % watching ({} of {USERS} users) and a line of {} for another file",
            WATCHERS.len(),
            QUEUED.len()
        );
        let latch = Latch::start().await;
        let base = latch.base.clone();
        let http = reqwest::Client::new();
        let admin_token = token(&http, &base, "admin", ADMIN_PASSWORD).await;
        for i in 1..USERS {
            let resp = http
                .post(format!("{base}/api/users"))
                .bearer_auth(&admin_token)
                .json(&serde_json::json!({"username": name(i), "password": USER_PASSWORD, "role": "user"}))
                .send()
                .await
                .expect("create user");
            assert_eq!(resp.status(), 201, "create {}", name(i));
        }
        let password = |i: usize| {
            if i == 0 {
                ADMIN_PASSWORD
            } else {
                USER_PASSWORD
            }
        };
        let mut cookies = Vec::new();
        for i in 0..USERS {
            cookies.push(login(&http, &base, &name(i), password(i)).await);
        }
        let actor_token = token(&http, &base, "actor", USER_PASSWORD).await;
        let mut watcher_tokens = Vec::new();
        for i in WATCHERS {
            watcher_tokens.push(token(&http, &base, &name(i), USER_PASSWORD).await);
        }
        let mut queued_tokens = Vec::new();
        for i in QUEUED {
            queued_tokens.push(token(&http, &base, &name(i), USER_PASSWORD).await);
        }
        let acc = Accounts {
            http: http.clone(),
            admin_token: admin_token.clone(),
            actor_token: actor_token.clone(),
            cookies: cookies.clone(),
        };
        let normal = upload(&acc, &base, "parts/1234567.mcam", "Main housing, second op").await;
        let held = upload(&acc, &base, "parts/7654321.mcam", "Fixture plate").await;
        // The held file's holder is the admin; the line waits for it.
        let resp = http
            .post(format!("{base}/api/files/{held}/checkout"))
            .bearer_auth(&admin_token)
            .json(&serde_json::json!({"comment": "long job"}))
            .send()
            .await
            .expect("hold");
        assert_eq!(resp.status(), 200, "hold the other file");
        let causer = Causer::start(actor_token.clone());
        // Watchers of a busy file have full inboxes: each notification then
        // also drops the oldest. Fill them before anyone listens.
        let watch_url = format!("{base}/api/files/{normal}/watch");
        each(&http, &watcher_tokens, &watch_url, true).await;
        for k in 0..=latch::inbox::KEPT {
            causer.cause(&base, normal, k.is_multiple_of(2), "").await;
        }
        each(&http, &watcher_tokens, &watch_url, false).await;
        let mut locked = latch::inbox::KEPT.is_multiple_of(2);

        let tally = Tally::new();
        let (stop_tx, stop_rx) = watch::channel(false);
        let gate = Arc::new(Semaphore::new(64));
        let mut tasks = Vec::new();
        let mut owners = Vec::new();
        let t = Instant::now();
        for i in 0..n {
            let user = i % USERS;
            owners.push(user);
            if i % 2 == 0 {
                tasks.push(tokio::spawn(ws_subscriber(
                    latch.addr,
                    "/ws",
                    Some(cookies[user].clone()),
                    tally.clone(),
                    gate.clone(),
                    stop_rx.clone(),
                    false,
                )));
            } else {
                tasks.push(tokio::spawn(sse_subscriber(
                    latch.addr,
                    cookies[user].clone(),
                    tally.clone(),
                    gate.clone(),
                    stop_rx.clone(),
                )));
            }
        }
        wait_connected(&tally, n).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!(
            "connected {} in {:.1} s ({} failed)",
            tally.connected.load(Ordering::Relaxed),
            t.elapsed().as_secs_f64(),
            tally.failed.load(Ordering::Relaxed)
        );

        let queue_url = format!("{base}/api/files/{held}/queue");
        let mut ranges: [Vec<std::ops::RangeInclusive<u64>>; 2] = Default::default();
        let mut requests: [Vec<f64>; 2] = Default::default();
        let mut served: [Vec<f64>; 2] = Default::default();
        for block in 0..BLOCKS {
            let with = block % 2 == 1;
            if block > 0 {
                each(&http, &watcher_tokens, &watch_url, with).await;
                each(&http, &queued_tokens, &queue_url, with).await;
            }
            // Let the line's events land, then start on a quiet stream.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut next_seq = latch.last_published() + 1;
            tally.wait_for(next_seq - 1, Duration::from_secs(10)).await;
            latch.served_ms.lock().expect("lock").clear();
            let first = next_seq;
            for _ in 0..events {
                let took = causer
                    .cause(&base, normal, !locked, "fixing the post")
                    .await;
                requests[with as usize].push(took.as_secs_f64() * 1e3);
                locked = !locked;
                tally.wait_for(next_seq, Duration::from_secs(10)).await;
                next_seq += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            ranges[with as usize].push(first..=next_seq - 1);
            tokio::time::sleep(Duration::from_millis(200)).await;
            served[with as usize].extend(
                latch
                    .served_ms
                    .lock()
                    .expect("lock")
                    .drain(..)
                    .map(|(_, ms)| ms),
            );
            println!(
                "block {block} ({}): events {first}..={}",
                if with { "with" } else { "without" },
                next_seq - 1
            );
        }
        let unread = http
            .get(format!("{base}/api/notifications?unread=true"))
            .bearer_auth(&watcher_tokens[0])
            .send()
            .await
            .expect("notifications")
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["unread"].as_u64())
            .unwrap_or(0);
        let _ = stop_tx.send(true);
        let mut seen = Vec::new();
        for t in tasks {
            seen.push(t.await.expect("subscriber"));
        }
        let published = latch.published.lock().expect("lock").clone();
        // Latencies pooled over the blocks of one configuration.
        let pooled =
            |with: bool, watchers_only: bool| {
                let mut all: Vec<f64> = Vec::new();
                for r in &ranges[with as usize] {
                    for (s, owner) in seen.iter().zip(&owners) {
                        if watchers_only && !WATCHERS.contains(owner) {
                            continue;
                        }
                        all.extend(s.got.iter().filter(|(q, _)| r.contains(q)).filter_map(
                            |(q, at)| published.get(q).map(|p| (*at - *p) as f64 / 1e6),
                        ));
                    }
                }
                all.sort_by(|a, b| a.total_cmp(b));
                Lat {
                    p50: pct(&all, 0.5),
                    p99: pct(&all, 0.99),
                    max: all.last().copied().unwrap_or(f64::NAN),
                    n: all.len(),
                }
            };
        let without = pooled(false, false);
        let with = pooled(true, false);
        let with_watchers = pooled(true, true);
        let missed: usize = ranges
            .iter()
            .flatten()
            .map(|r| super::missed(&seen, r.clone()).0)
            .sum();
        println!("latency without: {without}");
        println!("latency with:    {with}");
        println!("latency with, the watchers' own: {with_watchers}");
        Summary {
            n,
            without,
            with,
            with_watchers,
            req_without: durations_ms(&mut requests[0]),
            req_with: durations_ms(&mut requests[1]),
            served_without: durations_ms(&mut served[0]),
            served_with: durations_ms(&mut served[1]),
            missed,
            unread,
        }
    }
}

// ------------------------------------------------------------------ the floor

mod floor {
    //! A bare broadcast server: accept WebSockets, and send each payload
    //! read from stdin to all of them. No auth, no rendering, no resume.
    use super::*;
    use tokio::sync::{broadcast, mpsc};

    pub fn main() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let port = listener.local_addr().expect("addr").port();
            println!("port {port}");
            let _ = std::io::stdout().flush();
            let (tx, _) = broadcast::channel::<Utf8Bytes>(512);
            let accept_tx = tx.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((s, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = s.set_nodelay(true);
                    let rx = accept_tx.subscribe();
                    tokio::spawn(connection(s, rx));
                }
            });
            let (ptx, mut prx) = mpsc::unbounded_channel::<String>();
            std::thread::spawn(move || {
                let mut input = BufReader::new(std::io::stdin().lock());
                let mut line = String::new();
                loop {
                    line.clear();
                    if input.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let Ok(len) = line.trim().parse::<usize>() else {
                        break;
                    };
                    let mut buf = vec![0u8; len];
                    if input.read_exact(&mut buf).is_err() {
                        break;
                    }
                    let _ = ptx.send(String::from_utf8_lossy(&buf).into_owned());
                }
            });
            let mut out = std::io::stdout();
            while let Some(p) = prx.recv().await {
                let seq = seq_in(&p).unwrap_or(0);
                let at = now_ns();
                let _ = tx.send(Utf8Bytes::from(p));
                let _ = writeln!(out, "pub {seq} {at}");
                let _ = out.flush();
            }
        });
    }

    async fn connection(s: TcpStream, mut rx: broadcast::Receiver<Utf8Bytes>) {
        // Like Latch's: small eager read buffer, frames written at once.
        let mut config = WebSocketConfig::default();
        config.read_buffer_size = 4 * 1024;
        config.write_buffer_size = 0;
        let Ok(ws) = tokio_tungstenite::accept_async_with_config(s, Some(config)).await else {
            return;
        };
        let (mut sink, mut stream) = ws.split();
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Ok(p) => {
                        if sink.send(Message::Text(p)).await.is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                },
                incoming = stream.next() => match incoming {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    _ => {}
                },
            }
        }
    }
}
