//! Git's smart HTTP protocol, version 2, read-only: the capability
//! advertisement (`GET /vault.git/info/refs?service=git-upload-pack` with
//! `Git-Protocol: version=2`) and `POST /vault.git/git-upload-pack` with
//! `command=ls-refs` and `command=fetch`. One round trip lists the refs,
//! one more (usually) brings the pack, so a clone or a fetch is three
//! requests, and `git clone --depth 1` works.
//!
//! The request is parsed here into typed values (pkt-lines, commands,
//! object ids, limits) and refused whole with a sentence when anything in
//! it is off; what to send is the vault's business ([`Vault::plan_fetch`],
//! [`Vault::write_pack`]). Refs are `HEAD` and `refs/heads/main` only, and
//! a want must be on `main`'s history, so nothing else is ever served.
//! The pack streams through a small channel: a client that goes away
//! drops the channel, and the writer stops at its next packet.
//!
//! Long because the whole wire format is read here (pkt-lines, both
//! commands and their arguments, gzip bodies), with its table of refusals.

use bytes::Bytes;
use poem::http::{StatusCode, header};
use poem::web::Data;
use poem::{Body, Response, handler};

use crate::error::AppError;
use crate::files::Files;
use crate::http::error::{Surface, said};
use crate::http::guards::Guard;
use crate::vault::{CommitId, FetchInput, FetchPlan, Vault};

/// The largest request once a gzip body is inflated: far above what Git
/// sends (a want or have is 50 bytes), far below what would cost us.
pub const MAX_REQUEST: usize = 1024 * 1024;
/// The most haves one request may carry. Git sends them 16 then 32… at a
/// time, and stops after 256 in vain once one is common: only a clone
/// with thousands of commits of its own reaches this.
pub const MAX_HAVES: usize = 4096;
/// The most wants (the vault has one branch; Git names it once or twice).
pub const MAX_WANTS: usize = 256;
/// The largest data a side-band packet carries: 65520 less the length and
/// the band byte.
const BAND_PAYLOAD: usize = 65515;

const REQUEST_TYPE: &str = "application/x-git-upload-pack-request";
const RESULT_TYPE: &str = "application/x-git-upload-pack-result";
const ADVERTISEMENT_TYPE: &str = "application/x-git-upload-pack-advertisement";
const HEAD_TARGET: &str = crate::vault::MAIN;

// ------------------------------------------------------------ pkt-lines

/// A pkt-line: `len` in four hex digits (counting itself), then the data.
fn pkt(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(format!("{:04x}", data.len() + 4).as_bytes());
    out.extend_from_slice(data);
}

fn pkt_line(out: &mut Vec<u8>, line: &str) {
    pkt(out, format!("{line}\n").as_bytes());
}

const FLUSH: &[u8] = b"0000";
const DELIM: &[u8] = b"0001";

/// One packet of a request.
#[derive(Debug, PartialEq, Eq)]
enum Packet<'a> {
    /// A line, its trailing newline taken off.
    Line(&'a str),
    Delim,
    Flush,
}

/// Splits a request into packets; refuses a broken length, a packet
/// that is not UTF-8 text, and bytes after the final flush.
fn packets(body: &[u8]) -> Result<Vec<Packet<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        // Four hex digits exactly: `from_str_radix` alone also takes a
        // leading `+` ("+014").
        let Some(len) = rest
            .get(..4)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| usize::from_str_radix(h, 16).ok())
        else {
            return Err(
                "The request is not a sequence of pkt-lines (a length is missing or not hex)."
                    .into(),
            );
        };
        match len {
            0 => {
                out.push(Packet::Flush);
                rest = &rest[4..];
                if !rest.is_empty() {
                    return Err("The request goes on after its final flush packet; send one command per request.".into());
                }
            }
            1 => {
                out.push(Packet::Delim);
                rest = &rest[4..];
            }
            2 | 3 => return Err(format!("A pkt-line has the reserved length {len:04x}.")),
            _ => {
                let Some(data) = rest.get(4..len) else {
                    return Err("A pkt-line is longer than what remains of the request.".into());
                };
                let line = std::str::from_utf8(data)
                    .map_err(|_| "A pkt-line of the request is not UTF-8 text.".to_string())?;
                out.push(Packet::Line(line.strip_suffix('\n').unwrap_or(line)));
                rest = &rest[len..];
            }
        }
    }
    if out.last() != Some(&Packet::Flush) {
        return Err("The request does not end with a flush packet.".into());
    }
    Ok(out)
}

// ------------------------------------------------------------ commands

/// `command=ls-refs`, with its arguments.
#[derive(Debug, Default, PartialEq, Eq)]
struct LsRefs {
    symrefs: bool,
    prefixes: Vec<String>,
}

/// A request, parsed.
#[derive(Debug)]
enum Command {
    LsRefs(LsRefs),
    Fetch(FetchInput),
}

fn object_id(what: &str, hex: &str) -> Result<CommitId, String> {
    let well_formed = hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    well_formed
        .then(|| CommitId::from_hex(&hex.to_ascii_lowercase()))
        .flatten()
        .ok_or_else(|| format!("'{what} {hex}' does not name a SHA-1 object id."))
}

/// Parses a whole request: the command, its capabilities, its arguments.
fn parse(body: &[u8]) -> Result<Command, String> {
    let packets = packets(body)?;
    let mut packets = packets.into_iter();
    let command = match packets.next() {
        Some(Packet::Line(line)) => line
            .strip_prefix("command=")
            .ok_or_else(|| format!("The request starts with '{line}', not with command=…"))?,
        _ => return Err("The request names no command (it should start with command=…).".into()),
    };
    // Capabilities, up to the delimiter (or the end).
    let mut has_args = false;
    for packet in packets.by_ref() {
        match packet {
            Packet::Line(cap) => {
                if let Some(format) = cap.strip_prefix("object-format=")
                    && format != "sha1"
                {
                    return Err(format!("This vault uses SHA-1 object ids, not {format}."));
                }
                // agent=, server-option=, session-id=: told, not needed.
            }
            Packet::Delim => {
                has_args = true;
                break;
            }
            Packet::Flush => break,
        }
    }
    let args: Vec<&str> = if has_args {
        packets
            .filter_map(|p| match p {
                Packet::Line(l) => Some(Ok(l)),
                Packet::Flush => None,
                Packet::Delim => Some(Err(())),
            })
            .collect::<Result<_, _>>()
            .map_err(|()| "The arguments hold a second delimiter packet.".to_string())?
    } else {
        Vec::new()
    };
    match command {
        "ls-refs" => parse_ls_refs(&args).map(Command::LsRefs),
        "fetch" => parse_fetch(&args).map(Command::Fetch),
        other => Err(format!(
            "'{other}' is not a command this server knows; it answers ls-refs and fetch."
        )),
    }
}

fn parse_ls_refs(args: &[&str]) -> Result<LsRefs, String> {
    let mut out = LsRefs::default();
    for arg in args {
        match *arg {
            "symrefs" => out.symrefs = true,
            // No tags, so nothing to peel; no unborn branch is advertised.
            "peel" | "unborn" => {}
            _ => match arg.strip_prefix("ref-prefix ") {
                Some(prefix) if out.prefixes.len() < MAX_WANTS => {
                    out.prefixes.push(prefix.to_string())
                }
                Some(_) => return Err("The request names too many ref prefixes.".into()),
                None => return Err(format!("'{arg}' is not an ls-refs argument.")),
            },
        }
    }
    Ok(out)
}

fn parse_fetch(args: &[&str]) -> Result<FetchInput, String> {
    let mut out = FetchInput::default();
    for arg in args {
        let (name, value) = arg.split_once(' ').unwrap_or((arg, ""));
        match name {
            "want" => {
                if out.wants.len() >= MAX_WANTS {
                    return Err(format!("The request names more than {MAX_WANTS} wants."));
                }
                out.wants.push(object_id(name, value)?);
            }
            "have" => {
                if out.haves.len() >= MAX_HAVES {
                    return Err(format!(
                        "The request names more than {MAX_HAVES} haves; this vault's history is linear, so the newest commit you share with it is enough."
                    ));
                }
                out.haves.push(object_id(name, value)?);
            }
            "shallow" => {
                if out.client_shallow.len() >= MAX_HAVES {
                    return Err("The request names too many shallow commits.".into());
                }
                out.client_shallow.push(object_id(name, value)?);
            }
            "deepen" => {
                let depth = value
                    .parse::<u32>()
                    .ok()
                    .filter(|d| *d > 0)
                    .ok_or_else(|| format!("'deepen {value}' is not a depth of 1 or more."))?;
                out.deepen = Some(depth);
            }
            "done" => out.done = true,
            // Fine as they are: no deltas are sent (so nothing thin), no
            // progress is sent, and there are no tags.
            "thin-pack" | "no-progress" | "include-tag" | "ofs-delta" => {}
            "deepen-relative" => out.deepen_relative = true,
            "deepen-since" | "deepen-not" => {
                return Err(format!(
                    "'{name}' is not supported by this server; use --depth N instead."
                ));
            }
            _ => {
                return Err(format!(
                    "'{arg}' is not a fetch argument this server takes."
                ));
            }
        }
    }
    if out.wants.is_empty() {
        return Err("A fetch must name at least one want.".into());
    }
    Ok(out)
}

// ------------------------------------------------------------ answers

/// The capability advertisement of protocol version 2.
pub fn advertisement() -> Response {
    let mut body = Vec::new();
    pkt_line(&mut body, "version 2");
    pkt_line(
        &mut body,
        &format!("agent=latch/{}", env!("CARGO_PKG_VERSION")),
    );
    pkt_line(&mut body, "ls-refs");
    pkt_line(&mut body, "fetch=shallow");
    pkt_line(&mut body, "object-format=sha1");
    body.extend_from_slice(FLUSH);
    Response::builder()
        .content_type(ADVERTISEMENT_TYPE)
        .header(
            header::CACHE_CONTROL,
            "no-cache, max-age=0, must-revalidate",
        )
        .body(body)
}

/// Whether a request asked for protocol version 2 (`Git-Protocol:
/// version=2`, among other `:`-separated keys).
pub fn wants_v2(req: &poem::Request) -> bool {
    req.headers()
        .get_all("git-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(':'))
        .any(|kv| kv.trim() == "version=2")
}

/// A refusal Git shows: `ERR <sentence>` as the answer's one pkt-line.
fn git_refusal(status: StatusCode, text: &str) -> Response {
    let mut body = Vec::new();
    pkt_line(&mut body, &format!("ERR {text}"));
    Response::builder()
        .status(status)
        .content_type(RESULT_TYPE)
        .header(
            header::CACHE_CONTROL,
            "no-cache, max-age=0, must-revalidate",
        )
        .body(body)
}

/// `POST /vault.git/git-upload-pack`.
#[handler]
pub async fn upload_pack(guard: Guard<'_>, Data(files): Data<&Files>, body: Body) -> Response {
    if let Err(e) = guard.caller().await {
        return said(Surface::Git, &e);
    }
    let req = guard.req;
    let content_type = crate::http::forms::request_media_type(req);
    if content_type != REQUEST_TYPE {
        return git_refusal(
            StatusCode::BAD_REQUEST,
            &format!("Send the request as {REQUEST_TYPE} (got '{content_type}')."),
        );
    }
    let gzip = match req
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("identity") => false,
        Some("gzip" | "x-gzip") => true,
        Some(other) => {
            return git_refusal(
                StatusCode::BAD_REQUEST,
                &format!("The request is encoded as '{other}'; send it plain or gzip."),
            );
        }
    };
    // The middleware has already bounded the raw body; an error here is
    // that bound (answered as 413 there) or a broken connection.
    let raw = match body
        .into_bytes_limit(crate::http::serve::MAX_BODY as usize)
        .await
    {
        Ok(raw) => raw,
        Err(e) => {
            return git_refusal(
                StatusCode::BAD_REQUEST,
                &format!("The request body could not be read: {e}"),
            );
        }
    };
    let plain = if gzip {
        match gunzip(&raw, MAX_REQUEST) {
            Ok(plain) => Bytes::from(plain),
            Err(Gunzip::TooLarge) => {
                return git_refusal(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!(
                        "The request is larger than {} KiB once inflated.",
                        MAX_REQUEST / 1024
                    ),
                );
            }
            Err(Gunzip::Broken(why)) => {
                return git_refusal(
                    StatusCode::BAD_REQUEST,
                    &format!("The request's gzip body is broken: {why}."),
                );
            }
        }
    } else {
        raw
    };
    let command = match parse(&plain) {
        Ok(command) => command,
        Err(why) => return git_refusal(StatusCode::BAD_REQUEST, &why),
    };
    let vault = files.vault().clone();
    let answered = match command {
        Command::LsRefs(args) => ls_refs(vault, args).await,
        Command::Fetch(input) => fetch(vault, input).await,
    };
    answered.unwrap_or_else(|e| {
        e.log();
        let status = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        git_refusal(status, &e.public_message())
    })
}

fn result(body: impl Into<Body>) -> Response {
    Response::builder()
        .content_type(RESULT_TYPE)
        .header(
            header::CACHE_CONTROL,
            "no-cache, max-age=0, must-revalidate",
        )
        .body(body)
}

async fn ls_refs(vault: Vault, args: LsRefs) -> Result<Response, AppError> {
    let head = tokio::task::spawn_blocking(move || vault.head()).await??;
    let shown = |name: &str| {
        args.prefixes.is_empty() || args.prefixes.iter().any(|p| name.starts_with(p.as_str()))
    };
    let mut body = Vec::new();
    if let Some(head) = head {
        if shown("HEAD") {
            let target = if args.symrefs {
                format!(" symref-target:{HEAD_TARGET}")
            } else {
                String::new()
            };
            pkt_line(&mut body, &format!("{head} HEAD{target}"));
        }
        if shown(HEAD_TARGET) {
            pkt_line(&mut body, &format!("{head} {HEAD_TARGET}"));
        }
    }
    body.extend_from_slice(FLUSH);
    Ok(result(body))
}

async fn fetch(vault: Vault, input: FetchInput) -> Result<Response, AppError> {
    let planner = vault.clone();
    let (plan, input) =
        tokio::task::spawn_blocking(move || planner.plan_fetch(&input).map(|plan| (plan, input)))
            .await??;
    let mut head = Vec::new();
    if !input.done {
        pkt_line(&mut head, "acknowledgments");
        if plan.common.is_empty() {
            pkt_line(&mut head, "NAK");
        }
        for id in &plan.common {
            pkt_line(&mut head, &format!("ACK {id}"));
        }
        if !plan.send_pack {
            head.extend_from_slice(FLUSH);
            return Ok(result(head));
        }
        pkt_line(&mut head, "ready");
        head.extend_from_slice(DELIM);
    }
    if input.deepen.is_some() || !input.client_shallow.is_empty() {
        pkt_line(&mut head, "shallow-info");
        for id in &plan.shallow {
            pkt_line(&mut head, &format!("shallow {id}"));
        }
        for id in &plan.unshallow {
            pkt_line(&mut head, &format!("unshallow {id}"));
        }
        head.extend_from_slice(DELIM);
    }
    pkt_line(&mut head, "packfile");
    Ok(result(stream_pack(vault, plan, head)))
}

/// The answer's body: `head`, then the pack in side-band packets, then a
/// flush. Written off the runtime into a channel of a few packets; a
/// failure half-way is told on band 3 (Git shows it) and ends the answer
/// without its flush, so the client never takes a cut pack as whole.
fn stream_pack(vault: Vault, plan: FetchPlan, head: Vec<u8>) -> Body {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::task::spawn_blocking(move || {
        if tx.blocking_send(Bytes::from(head)).is_err() {
            return;
        }
        let mut band = SideBand {
            tx: &tx,
            buf: Vec::with_capacity(BAND_PAYLOAD + 5),
        };
        let written = vault.write_pack(&plan, &mut band).and_then(|()| {
            band.send()?;
            Ok(())
        });
        match written {
            Ok(()) => {
                let _ = tx.blocking_send(Bytes::from_static(FLUSH));
            }
            Err(e) if tx.is_closed() => {
                tracing::info!(error = %e, "a client went away during a fetch");
            }
            Err(e) => {
                e.log();
                let mut out = Vec::new();
                let mut said = vec![3u8];
                said.extend_from_slice(e.public_message().as_bytes());
                pkt(&mut out, &said);
                let _ = tx.blocking_send(Bytes::from(out));
            }
        }
    });
    Body::from_bytes_stream(async_stream::stream! {
        while let Some(chunk) = rx.recv().await {
            yield Ok::<_, std::io::Error>(chunk);
        }
    })
}

/// Band 1 of side-band-64k: pack bytes in packets of at most 65515.
struct SideBand<'a> {
    tx: &'a tokio::sync::mpsc::Sender<Bytes>,
    /// The packet being filled: its length, the band byte, the data.
    buf: Vec<u8>,
}

impl SideBand<'_> {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let packet = std::mem::replace(&mut self.buf, Vec::with_capacity(BAND_PAYLOAD + 5));
        let mut len = format!("{:04x}", packet.len() + 5).into_bytes();
        len.push(1);
        len.extend_from_slice(&packet);
        self.tx.blocking_send(Bytes::from(len)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl std::io::Write for SideBand<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = BAND_PAYLOAD - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BAND_PAYLOAD {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ------------------------------------------------------------ gzip

#[derive(Debug)]
enum Gunzip {
    TooLarge,
    Broken(String),
}

/// Inflates a gzip body (Git gzips requests over 1 KiB), at most `limit`
/// bytes of it.
fn gunzip(data: &[u8], limit: usize) -> Result<Vec<u8>, Gunzip> {
    // 16 + 15: a gzip header, then deflate with a 32 KiB window.
    let mut inflate = zlib_rs::Inflate::new(true, 31);
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut input = data;
    loop {
        let (in_before, out_before) = (inflate.total_in(), inflate.total_out());
        let status = inflate
            .decompress(input, &mut chunk, zlib_rs::InflateFlush::NoFlush)
            .map_err(|e| Gunzip::Broken(e.as_str().to_string()))?;
        let consumed = (inflate.total_in() - in_before) as usize;
        let produced = (inflate.total_out() - out_before) as usize;
        input = &input[consumed..];
        out.extend_from_slice(&chunk[..produced]);
        if out.len() > limit {
            return Err(Gunzip::TooLarge);
        }
        match status {
            // One member, and nothing after it: a second member or stray
            // bytes would be a part of the request left unread.
            zlib_rs::Status::StreamEnd if !input.is_empty() => {
                return Err(Gunzip::Broken("it goes on after its end".into()));
            }
            zlib_rs::Status::StreamEnd => return Ok(out),
            _ if consumed == 0 && produced == 0 => {
                return Err(Gunzip::Broken("it ends before its end".into()));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(lines: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in lines {
            match *line {
                "0000" => out.extend_from_slice(FLUSH),
                "0001" => out.extend_from_slice(DELIM),
                l => pkt_line(&mut out, l),
            }
        }
        out
    }

    const OID: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn a_fetch_request_parses_into_its_parts() {
        let body = request(&[
            "command=fetch",
            "agent=git/2.47",
            "object-format=sha1",
            "0001",
            "thin-pack",
            "ofs-delta",
            &format!("want {OID}"),
            &format!("have {OID}"),
            &format!("shallow {OID}"),
            "deepen 1",
            "done",
            "0000",
        ]);
        let Ok(Command::Fetch(f)) = parse(&body) else {
            panic!("not a fetch")
        };
        assert_eq!(f.wants.len(), 1);
        assert_eq!(f.haves.len(), 1);
        assert_eq!(f.client_shallow.len(), 1);
        assert_eq!(f.deepen, Some(1));
        assert!(f.done);
    }

    #[test]
    fn ls_refs_takes_its_arguments() {
        let body = request(&[
            "command=ls-refs",
            "0001",
            "symrefs",
            "peel",
            "ref-prefix HEAD",
            "ref-prefix refs/heads/",
            "0000",
        ]);
        let Ok(Command::LsRefs(l)) = parse(&body) else {
            panic!("not ls-refs")
        };
        assert!(l.symrefs);
        assert_eq!(l.prefixes, vec!["HEAD", "refs/heads/"]);
        assert!(matches!(
            parse(&request(&["command=ls-refs", "0000"])),
            Ok(Command::LsRefs(_))
        ));
    }

    #[test]
    fn broken_requests_are_refused_with_a_reason() {
        let many_haves: Vec<String> = (0..=MAX_HAVES).map(|_| format!("have {OID}")).collect();
        let mut lots = vec![
            "command=fetch",
            "0001",
            "want 0123456789abcdef0123456789abcdef01234567",
        ];
        lots.extend(many_haves.iter().map(String::as_str));
        lots.push("0000");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "empty"),
            (b"zzzz".to_vec(), "length not hex"),
            (b"0002".to_vec(), "reserved length"),
            (b"00ffcommand=fetch".to_vec(), "length past the end"),
            (
                request(&["command=fetch", "0001", &format!("want {OID}")]),
                "no flush",
            ),
            (request(&["command=push", "0000"]), "unknown command"),
            (request(&["want x", "0000"]), "no command"),
            (request(&["command=fetch", "0001", "0000"]), "no want"),
            (
                request(&["command=fetch", "0001", "want 12345", "0000"]),
                "short id",
            ),
            (
                request(&[
                    "command=fetch",
                    "0001",
                    &format!("want {OID}"),
                    "deepen 0",
                    "0000",
                ]),
                "depth 0",
            ),
            (
                request(&[
                    "command=fetch",
                    "0001",
                    &format!("want {OID}"),
                    "filter blob:none",
                    "0000",
                ]),
                "filter",
            ),
            (
                request(&[
                    "command=fetch",
                    "0001",
                    &format!("want {OID}"),
                    "deepen-since 10",
                    "0000",
                ]),
                "deepen-since",
            ),
            (
                request(&["command=fetch", "object-format=sha256", "0000"]),
                "sha256",
            ),
            (
                request(&["command=ls-refs", "0001", "bogus", "0000"]),
                "bad ls-refs arg",
            ),
            (
                [
                    request(&["command=ls-refs", "0000"]),
                    request(&["command=ls-refs", "0000"]),
                ]
                .concat(),
                "two commands",
            ),
            (request(&lots), "too many haves"),
        ];
        for (body, why) in cases {
            assert!(parse(&body).is_err(), "{why} should be refused");
        }
    }

    #[test]
    fn gzip_bodies_inflate_within_their_bound() {
        // `printf 'hello\n' | gzip -n`
        let gz: &[u8] = &[
            0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xcb, 0x48, 0xcd, 0xc9,
            0xc9, 0xe7, 0x02, 0x00, 0x20, 0x30, 0x3a, 0x36, 0x06, 0x00, 0x00, 0x00,
        ];
        assert_eq!(gunzip(gz, 100).unwrap(), b"hello\n");
        assert!(matches!(gunzip(gz, 3), Err(Gunzip::TooLarge)));
        assert!(matches!(gunzip(&gz[..12], 100), Err(Gunzip::Broken(_))));
        assert!(matches!(gunzip(b"not gzip", 100), Err(Gunzip::Broken(_))));
        let twice = [gz, gz].concat();
        assert!(matches!(gunzip(&twice, 100), Err(Gunzip::Broken(_))));
        assert!(packets(b"+0040000").is_err());
    }
}
