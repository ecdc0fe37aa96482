//! Crash torture: the real `latch` binary is killed with SIGKILL at random
//! moments while clients upload, check out, check in, cancel and override,
//! and is restarted on the same data directory each time.
//!
//! After every restart: the server becomes healthy, `git fsck` is clean, every
//! acknowledged (2xx) upload and check-in is in history with its content and
//! revision, no revision is used twice for one file, every acknowledged lock
//! is still held unless it could have been released since, the spool is
//! empty, and a live (SSE) client resuming from its last event id ends up
//! showing exactly what `GET /api/files` says.
//!
//! The coordination state lives in the same database and is held to the
//! same standard: every acknowledged join is still in the line (or holds the
//! reservation it turned into) unless its client since left, declined or
//! checked out; a line keeps its order, so a reservation goes to the first
//! in line; every acknowledged watch (and unwatch) is what `GET
//! /api/watches` says; every acknowledged ask to release is in the holder's
//! inbox and a repeat is still refused (429); no notification seen is lost
//! (unless pushed out by newer ones), changes, or comes back unread after
//! being read, ids never repeat or go backwards, the unread count is the
//! number of unread notifications, and the live client's bell ends at it.
//!
//! Clients use the network drive too, as a desktop program does: open a
//! file (`LOCK` on `/dav`), save it (`PUT`: a draft) and close it
//! (`UNLOCK`). A file opened is still its opener's after a kill unless an
//! override may have hit it, and reads for them through the drive as the
//! last save acknowledged (or a save in flight at the kill); every close
//! acknowledged with a save is a version with that content by them; no
//! draft is kept on disk but a held file's.
//!
//! `LATCH_CRASH_SEED` replays a run; `LATCH_CRASH_KILLS` sets how many kills.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::common::binary::Server;
use crate::common::{
    ADMIN_PASSWORD, Rng, USER_PASSWORD as PASSWORD, git_fsck, have_tool, token_with_password, watch,
};

const CLIENTS: usize = 4;
const MAX_FILES: usize = 30;
/// The most notifications an inbox keeps (and a listing shows).
const KEPT: usize = 200;

/// An acknowledged version: an upload (201) or a check-in (200).
#[derive(Debug, Clone)]
struct Version {
    file: u64,
    commit: String,
    revision: String,
    content: Vec<u8>,
    content_checked: bool,
}

/// A lock acknowledged to a client. It must still be held at the next restart
/// unless an override was started on the file since before it was asked for.
#[derive(Debug, Clone, Copy)]
struct Held {
    overrides_before: u64,
    /// No override of this file was in flight when the check-out was sent.
    clear: bool,
    /// Acknowledged since the last restart (not carried over from a check).
    fresh: bool,
}

/// An acknowledged ask to release (204).
#[derive(Debug, Clone)]
struct Nudge {
    asker: String,
    file: u64,
    at: Instant,
    /// Its notification's id is above this (the newest id at the last restart).
    floor: u64,
    found: bool,
    /// Whose inbox it was found in: the holder asked (a new holder may be
    /// asked again at once, so only this one's repeat must be refused).
    holder: Option<String>,
    repeat_checked: bool,
}

/// A notification some client was shown.
#[derive(Debug, Clone)]
struct Note {
    user: String,
    /// As listed, without `read`.
    body: Value,
    /// Seen read, or marked read with an acknowledgement: it stays read.
    read: bool,
    /// Pushed out of its inbox by newer ones.
    gone: bool,
    checked: bool,
    read_checked: bool,
}

/// What a client knows of one thing it may watch.
#[derive(Debug, Clone, Copy)]
struct WatchState {
    /// `None` while a request's outcome is unknown.
    on: Option<bool>,
    fresh: bool,
}

#[derive(Default)]
struct Model {
    files: Vec<u64>,
    versions: Vec<Version>,
    overrides_started: HashMap<u64, u64>,
    overrides_in_flight: HashMap<u64, u32>,
    /// Files some client was told it holds (a hint where lines form).
    hot: BTreeSet<u64>,
    /// Contract breaches seen by clients: 5xx, wrong statuses, wrong bodies.
    faults: Vec<String>,
    acks: BTreeMap<&'static str, u64>,
    /// Clients that sent a join, per file, since the last restart.
    joined: HashMap<u64, BTreeSet<String>>,
    /// Each file's line (the one it is reserved for, then the queue) at the last restart.
    lines: HashMap<u64, Vec<String>>,
    nudges: Vec<Nudge>,
    /// Closes through the drive acknowledged with a draft, not yet found.
    draft_checkins: Vec<DraftCheckin>,
    notes: HashMap<u64, Note>,
    /// The newest notification id seen by the last restart's check.
    id_floor: u64,
    /// Acknowledged operations checked after a restart, by kind.
    checked: BTreeMap<&'static str, u64>,
}

impl Model {
    fn ack(&mut self, what: &'static str) {
        *self.acks.entry(what).or_default() += 1;
    }

    /// A lock about to be asked for on file `id`, against the overrides
    /// started and in flight so far.
    fn held_from_now(&self, id: u64) -> Held {
        Held {
            overrides_before: self.overrides_started.get(&id).copied().unwrap_or(0),
            clear: self.overrides_in_flight.get(&id).copied().unwrap_or(0) == 0,
            fresh: true,
        }
    }

    /// Records the notifications `user` was shown (newest first); returns
    /// what contradicts what was seen before.
    fn observe(&mut self, user: &str, list: &[Value]) -> Vec<String> {
        let mut wrong = Vec::new();
        let mut previous = u64::MAX;
        for n in list {
            let id = n["id"].as_u64().unwrap_or_default();
            if id >= previous {
                wrong.push(format!(
                    "{user}'s notifications are not newest first by id: {id} after {previous}"
                ));
            }
            previous = id;
            let read = n["read"].as_bool().unwrap_or(false);
            let mut body = n.clone();
            if let Some(o) = body.as_object_mut() {
                o.remove("read");
            }
            match self.notes.get_mut(&id) {
                Some(note) => {
                    if note.user != user || note.body != body {
                        wrong.push(format!(
                            "notification {id} was {} for {} and is now {body} for {user}",
                            note.body, note.user
                        ));
                    }
                    if note.read && !read {
                        wrong.push(format!(
                            "notification {id} of {user} was read and is unread again"
                        ));
                    }
                    note.read |= read;
                }
                None => {
                    self.notes.insert(
                        id,
                        Note {
                            user: user.to_string(),
                            body,
                            read,
                            gone: false,
                            checked: false,
                            read_checked: false,
                        },
                    );
                }
            }
        }
        wrong
    }
}

type Shared = Arc<Mutex<Model>>;

struct ClientState {
    name: String,
    token: String,
    held: HashMap<u64, Held>,
    /// Files this client waits for (in line, or reserved for it): true when
    /// the join was acknowledged since the last restart.
    queued: HashMap<u64, bool>,
    /// What it watches, by key (`f:<id>`, `d:<folder>`).
    watches: BTreeMap<String, WatchState>,
    /// Files it has open through the network drive (`/dav`).
    drive: HashMap<u64, DriveOpen>,
    rng: Rng,
    serial: u64,
}

/// A file a client opened through the drive (a WebDAV `LOCK`): saves are
/// drafts, closing checks the last one in.
#[derive(Debug, Clone)]
struct DriveOpen {
    token: String,
    path: String,
    held: Held,
    /// The last save acknowledged (204) since it was opened.
    saved: Option<Vec<u8>>,
    /// A save whose answer never came: it may have landed or not.
    saving: Option<Vec<u8>>,
    /// A close (`UNLOCK`) whose answer never came.
    closing: bool,
}

/// A close through the drive that was acknowledged with a draft to check
/// in: that content must be a version of the file, by its holder.
#[derive(Debug, Clone)]
struct DraftCheckin {
    file: u64,
    user: String,
    content: Vec<u8>,
}

/// The server went away mid-request: the outcome is unknown.
struct Gone;

async fn send(rb: reqwest::RequestBuilder) -> Result<(u16, Value), Gone> {
    let resp = rb.send().await.map_err(|_| Gone)?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|_| Gone)?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, body))
}

async fn client_loop(
    http: reqwest::Client,
    base: String,
    mut me: ClientState,
    model: Shared,
    stop: Arc<AtomicBool>,
) -> ClientState {
    while !stop.load(Ordering::Relaxed) {
        if step(&http, &base, &mut me, &model).await.is_err() {
            break;
        }
    }
    me
}

async fn step(
    http: &reqwest::Client,
    base: &str,
    me: &mut ClientState,
    model: &Shared,
) -> Result<(), Gone> {
    let (known, file_count) = {
        let m = model.lock().unwrap();
        (m.files.clone(), m.files.len())
    };
    let roll = me.rng.below(100);
    if file_count == 0 || (roll < 10 && file_count < MAX_FILES) {
        me.serial += 1;
        let path = format!("{}/part-{}-{:x}.mcam", me.name, me.serial, me.rng.next());
        let mut content = format!("{path} v1\n").into_bytes();
        let n = 16 + me.rng.below(3000) as usize;
        content.extend(me.rng.bytes(n));
        let form = Form::new()
            .text("path", path.clone())
            .text("description", "crash test")
            .part("file", Part::bytes(content.clone()).file_name("x.mcam"));
        let (status, body) = send(
            http.post(format!("{base}/api/files"))
                .bearer_auth(&me.token)
                .multipart(form),
        )
        .await?;
        let mut m = model.lock().unwrap();
        match status {
            201 => {
                let id = body["id"].as_u64().unwrap_or_default();
                m.files.push(id);
                m.versions.push(Version {
                    file: id,
                    commit: body["head"].as_str().unwrap_or_default().into(),
                    revision: body["revision"].as_str().unwrap_or_default().into(),
                    content,
                    content_checked: false,
                });
                m.ack("upload");
            }
            _ => m
                .faults
                .push(format!("upload {path} answered {status}: {body}")),
        }
        return Ok(());
    }
    if me.rng.below(100) < 12 {
        return several(http, base, me, model, &known).await;
    }
    if me.rng.below(100) < 15 {
        return drive(http, base, me, model, &known).await;
    }
    if me.rng.below(100) < 35 {
        return coordinate(http, base, me, model, &known).await;
    }
    let mine: Vec<u64> = me.held.keys().copied().collect();
    if !mine.is_empty() && roll < 65 {
        let id = mine[me.rng.below(mine.len() as u64) as usize];
        // Whatever happens next, this client no longer counts on the lock.
        me.held.remove(&id);
        if roll < 55 {
            me.serial += 1;
            let mut content = format!("{} {} {}\n", me.name, id, me.serial).into_bytes();
            let n = me.rng.below(3000) as usize;
            content.extend(me.rng.bytes(n));
            let bump = if me.rng.chance(20) { "major" } else { "minor" };
            let form = Form::new()
                .text("message", format!("Change {} by {}", me.serial, me.name))
                .text("bump", bump)
                .part("file", Part::bytes(content.clone()).file_name("x.mcam"));
            let (status, body) = send(
                http.post(format!("{base}/api/files/{id}/checkin"))
                    .bearer_auth(&me.token)
                    .multipart(form),
            )
            .await?;
            let mut m = model.lock().unwrap();
            match status {
                200 if body["lock"].is_null() => {
                    m.versions.push(Version {
                        file: id,
                        commit: body["head"].as_str().unwrap_or_default().into(),
                        revision: body["revision"].as_str().unwrap_or_default().into(),
                        content,
                        content_checked: false,
                    });
                    m.hot.remove(&id);
                    m.ack("checkin");
                }
                // The lock was overridden meanwhile.
                403 | 409 => m.ack("checkin refused"),
                _ => m
                    .faults
                    .push(format!("checkin of {id} answered {status}: {body}")),
            }
        } else {
            let (status, body) = send(
                http.post(format!("{base}/api/files/{id}/cancel"))
                    .bearer_auth(&me.token),
            )
            .await?;
            let mut m = model.lock().unwrap();
            match status {
                200 if body["lock"].is_null() => {
                    m.hot.remove(&id);
                    m.ack("cancel")
                }
                403 | 409 => m.ack("cancel refused"),
                _ => m
                    .faults
                    .push(format!("cancel of {id} answered {status}: {body}")),
            }
        }
        return Ok(());
    }
    // Now and then a file this client waits for: it may be reserved for it.
    let waiting: Vec<u64> = me.queued.keys().copied().collect();
    let id = if !waiting.is_empty() && me.rng.chance(50) {
        waiting[me.rng.below(waiting.len() as u64) as usize]
    } else {
        known[me.rng.below(known.len() as u64) as usize]
    };
    if me.held.contains_key(&id) || me.drive.contains_key(&id) {
        return Ok(());
    }
    let held = model.lock().unwrap().held_from_now(id);
    // Taking the file ends this client's wait for it; a refusal leaves it.
    let was_queued = me.queued.remove(&id);
    let (status, body) = send(
        http.post(format!("{base}/api/files/{id}/checkout"))
            .bearer_auth(&me.token)
            .json(&json!({"comment": format!("{} at work", me.name)})),
    )
    .await?;
    let mut m = model.lock().unwrap();
    match status {
        200 if body["lock"]["owner"] == me.name.as_str() => {
            me.held.insert(id, held);
            m.hot.insert(id);
            m.ack("checkout");
        }
        409 if body["error"]
            .as_str()
            .is_some_and(|e| e.contains("checked out by") || e.contains("is reserved for")) =>
        {
            if let Some(fresh) = was_queued {
                me.queued.insert(id, fresh);
            }
            m.ack("checkout conflict")
        }
        _ => m
            .faults
            .push(format!("checkout of {id} answered {status}: {body}")),
    }
    Ok(())
}

/// The network drive, as a desktop program uses it: open a file (`LOCK`),
/// save it (`PUT`: a draft) and close it (`UNLOCK`: the last save checked
/// in, or the check-out cancelled).
async fn drive(
    http: &reqwest::Client,
    base: &str,
    me: &mut ClientState,
    model: &Shared,
    known: &[u64],
) -> Result<(), Gone> {
    let dav = |verb: &str, path: &str| {
        let method = reqwest::Method::from_bytes(verb.as_bytes()).expect("a WebDAV verb");
        http.request(method, format!("{base}/dav/{path}"))
            .header("user-agent", "CrashTorture/1.0")
            .basic_auth(&me.name, Some(&me.token))
    };
    let unlock =
        |path: &str, token: &str| dav("UNLOCK", path).header("lock-token", format!("<{token}>"));
    let open: Vec<u64> = me.drive.keys().copied().collect();
    if !open.is_empty() && me.rng.chance(75) {
        let id = open[me.rng.below(open.len() as u64) as usize];
        let (token, path) = {
            let d = &me.drive[&id];
            (d.token.clone(), d.path.clone())
        };
        if me.rng.chance(65) {
            me.serial += 1;
            let mut content = format!("{} draft {} of {id}\n", me.name, me.serial).into_bytes();
            let n = me.rng.below(3000) as usize;
            content.extend(me.rng.bytes(n));
            if let Some(d) = me.drive.get_mut(&id) {
                d.saving = Some(content.clone());
            }
            let (status, body) = send(
                dav("PUT", &path)
                    .header("if", format!("(<{token}>)"))
                    .body(content.clone()),
            )
            .await?;
            let mut m = model.lock().unwrap();
            match status {
                204 => {
                    if let Some(d) = me.drive.get_mut(&id) {
                        d.saved = Some(content);
                        d.saving = None;
                    }
                    m.ack("draft");
                }
                // An override ended the check-out meanwhile: 423 if it
                // came while the save was on its way, 412 if before (the
                // token no longer names a lock).
                412 | 423 => {
                    me.drive.remove(&id);
                    m.ack("draft refused");
                }
                _ => m
                    .faults
                    .push(format!("PUT of a draft of {id} answered {status}: {body}")),
            }
        } else {
            if let Some(d) = me.drive.get_mut(&id) {
                d.closing = true;
            }
            let (status, body) = send(unlock(&path, &token)).await?;
            let d = me.drive.remove(&id);
            let mut m = model.lock().unwrap();
            match status {
                204 => {
                    // An override since it was opened drops the draft (by
                    // design): only a close no override came near must
                    // have checked it in.
                    let untouched = |d: &DriveOpen| {
                        d.held.clear
                            && m.overrides_started.get(&id).copied().unwrap_or(0)
                                == d.held.overrides_before
                    };
                    if let Some(content) = d.filter(untouched).and_then(|d| d.saved) {
                        m.draft_checkins.push(DraftCheckin {
                            file: id,
                            user: me.name.clone(),
                            content,
                        });
                        m.hot.remove(&id);
                    }
                    m.ack("close");
                }
                // The check-out ended meanwhile (an override): so did the token.
                409 => m.ack("close refused"),
                _ => m
                    .faults
                    .push(format!("UNLOCK of {id} answered {status}: {body}")),
            }
        }
        return Ok(());
    }
    let id = known[me.rng.below(known.len() as u64) as usize];
    if me.held.contains_key(&id) || me.drive.contains_key(&id) {
        return Ok(());
    }
    // Where the file is now (another client may have moved it).
    let Ok((200, file)) = send(
        http.get(format!("{base}/api/files/{id}"))
            .bearer_auth(&me.token),
    )
    .await
    else {
        return Ok(());
    };
    let Some(path) = file["path"].as_str().map(String::from) else {
        return Ok(());
    };
    let held = model.lock().unwrap().held_from_now(id);
    let resp = dav("LOCK", &path)
        .header("depth", "0")
        .header("timeout", "Second-3600")
        .header("content-type", "application/xml")
        .body(crate::dav::LOCKINFO)
        .send()
        .await
        .map_err(|_| Gone)?;
    let status = resp.status().as_u16();
    let body = resp.text().await.map_err(|_| Gone)?;
    let mut m = model.lock().unwrap();
    match status {
        200 => {
            let Some(token) = crate::dav::lock_token_in(&body) else {
                m.faults
                    .push(format!("a granted LOCK of {id} without a token: {body}"));
                return Ok(());
            };
            // A LOCK racing a browser move of the file can answer 200 for
            // the name the file just left (dav-server saw the file there;
            // the lock then holds that empty name, not the file): close
            // it, as a client that checks would (noted as a known race).
            drop(m);
            let Ok((200, now)) = send(
                http.get(format!("{base}/api/files/{id}"))
                    .bearer_auth(&me.token),
            )
            .await
            else {
                return Err(Gone);
            };
            if now["lock"]["owner"] != me.name.as_str() {
                let _ = send(unlock(&path, &token)).await?;
                model.lock().unwrap().ack("open raced a move");
                return Ok(());
            }
            let mut m = model.lock().unwrap();
            // Taking the file ends this client's wait for it.
            me.queued.remove(&id);
            me.drive.insert(
                id,
                DriveOpen {
                    token,
                    path,
                    held,
                    saved: None,
                    saving: None,
                    closing: false,
                },
            );
            m.hot.insert(id);
            m.ack("open");
        }
        // Someone holds it, has it open, or it is reserved for someone else.
        423 => m.ack("open refused"),
        // Moved or deleted since it was looked up: a name with nothing
        // there would be a new (empty, locked) name; nothing to keep.
        201 => {
            drop(m);
            if let Some(token) = crate::dav::lock_token_in(&body) {
                let _ = send(unlock(&path, &token)).await?;
            }
        }
        _ => m
            .faults
            .push(format!("LOCK of {id} at {path} answered {status}: {body}")),
    }
    Ok(())
}

/// A change of several files, or a move: check out a few known files at
/// once, check in several held ones in one commit, or move a held one.
/// Every file of an acknowledged set must show the set's one commit.
async fn several(
    http: &reqwest::Client,
    base: &str,
    me: &mut ClientState,
    model: &Shared,
    known: &[u64],
) -> Result<(), Gone> {
    let mine: Vec<u64> = me.held.keys().copied().collect();
    let roll = me.rng.below(100);
    if mine.len() >= 2 && roll < 50 {
        // Check in two or three held files with one message.
        let take = 2 + me.rng.below(mine.len().min(3) as u64 - 1) as usize;
        let chosen: Vec<u64> = mine.iter().copied().take(take).collect();
        let mut form = Form::new()
            .text("message", format!("Set {} by {}", me.serial, me.name))
            .text("bump", "minor");
        let mut contents = HashMap::new();
        for id in &chosen {
            me.held.remove(id);
            let (status, file) = send(
                http.get(format!("{base}/api/files/{id}"))
                    .bearer_auth(&me.token),
            )
            .await?;
            let path = file["path"].as_str().unwrap_or_default().to_string();
            if status != 200 || path.is_empty() {
                model
                    .lock()
                    .unwrap()
                    .faults
                    .push(format!("get {id}: {status}"));
                return Ok(());
            }
            me.serial += 1;
            let mut content = format!("{} set {} {}\n", me.name, id, me.serial).into_bytes();
            let n = me.rng.below(2000) as usize;
            content.extend(me.rng.bytes(n));
            form = form.part("file", Part::bytes(content.clone()).file_name(path));
            contents.insert(*id, content);
        }
        let (status, body) = send(
            http.post(format!("{base}/api/checkin"))
                .bearer_auth(&me.token)
                .multipart(form),
        )
        .await?;
        let mut m = model.lock().unwrap();
        match status {
            200 => {
                let files = body["files"].as_array().cloned().unwrap_or_default();
                let commits: BTreeSet<&str> =
                    files.iter().filter_map(|f| f["head"].as_str()).collect();
                if files.len() != chosen.len() || commits.len() != 1 {
                    m.faults
                        .push(format!("a change set of {chosen:?} answered {body}"));
                    return Ok(());
                }
                for f in &files {
                    let id = f["id"].as_u64().unwrap_or_default();
                    m.versions.push(Version {
                        file: id,
                        commit: f["head"].as_str().unwrap_or_default().into(),
                        revision: f["revision"].as_str().unwrap_or_default().into(),
                        content: contents.remove(&id).unwrap_or_default(),
                        content_checked: false,
                    });
                    m.hot.remove(&id);
                }
                m.ack("checkin set");
            }
            // A lock was overridden meanwhile: nothing was checked in.
            403 | 409 => m.ack("checkin set refused"),
            _ => m
                .faults
                .push(format!("checkin set {chosen:?} answered {status}: {body}")),
        }
        return Ok(());
    }
    if !mine.is_empty() && roll < 70 {
        let id = mine[me.rng.below(mine.len() as u64) as usize];
        me.serial += 1;
        let to = format!("{}/moved-{}-{:x}.mcam", me.name, me.serial, me.rng.next());
        let (status, body) = send(
            http.post(format!("{base}/api/files/{id}/move"))
                .bearer_auth(&me.token)
                .json(&json!({ "path": to })),
        )
        .await?;
        let mut m = model.lock().unwrap();
        match status {
            200 if body["path"] == to.as_str() && body["lock"]["owner"] == me.name.as_str() => {
                m.ack("move")
            }
            // Overridden meanwhile: no longer ours to move.
            403 | 409 => {
                me.held.remove(&id);
                m.ack("move refused")
            }
            _ => m
                .faults
                .push(format!("move of {id} answered {status}: {body}")),
        }
        return Ok(());
    }
    // Check out two or three known files at once: all or none.
    let mut ids: Vec<u64> = (0..2 + me.rng.below(2))
        .map(|_| known[me.rng.below(known.len() as u64) as usize])
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids
        .iter()
        .any(|id| me.held.contains_key(id) || me.drive.contains_key(id))
    {
        return Ok(());
    }
    let held = {
        let m = model.lock().unwrap();
        ids.iter()
            .map(|id| (*id, m.held_from_now(*id)))
            .collect::<Vec<_>>()
    };
    // As for one file: taking them ends this client's wait for each, even
    // when a SIGKILL takes the answer (the set may have committed); only a
    // refusal leaves the waits.
    let was_queued: Vec<(u64, bool)> = ids
        .iter()
        .filter_map(|id| me.queued.remove(id).map(|fresh| (*id, fresh)))
        .collect();
    let (status, body) = send(
        http.post(format!("{base}/api/checkout"))
            .bearer_auth(&me.token)
            .json(&json!({"ids": ids, "comment": format!("{} set", me.name)})),
    )
    .await?;
    let mut m = model.lock().unwrap();
    match status {
        200 if body["files"].as_array().is_some_and(|f| {
            f.len() == ids.len() && f.iter().all(|f| f["lock"]["owner"] == me.name.as_str())
        }) =>
        {
            for (id, h) in held {
                me.held.insert(id, h);
                m.hot.insert(id);
            }
            m.ack("checkout set");
        }
        409 if body["conflicts"].as_array().is_some_and(|c| !c.is_empty()) => {
            me.queued.extend(was_queued);
            m.ack("checkout set conflict")
        }
        _ => m
            .faults
            .push(format!("checkout set {ids:?} answered {status}: {body}")),
    }
    Ok(())
}

/// Whether a 409's sentence contains `needle`.
fn says(body: &Value, needle: &str) -> bool {
    body["error"].as_str().is_some_and(|e| e.contains(needle))
}

fn in_queue(body: &Value, who: &str) -> bool {
    body["queue"]
        .as_array()
        .is_some_and(|q| q.iter().any(|n| n == who))
}

/// One coordination step: join or leave a line, decline, ask a holder to
/// release, watch or unwatch, or read the inbox.
async fn coordinate(
    http: &reqwest::Client,
    base: &str,
    me: &mut ClientState,
    model: &Shared,
    known: &[u64],
) -> Result<(), Gone> {
    let roll = me.rng.below(100);
    // Mostly a file someone holds: that is where people wait and ask.
    let hot: Vec<u64> = model.lock().unwrap().hot.iter().copied().collect();
    let any = if !hot.is_empty() && me.rng.chance(70) {
        hot[me.rng.below(hot.len() as u64) as usize]
    } else {
        known[me.rng.below(known.len() as u64) as usize]
    };
    let waiting: Vec<u64> = me.queued.keys().copied().collect();
    let mine_or_any = if !waiting.is_empty() && me.rng.chance(80) {
        waiting[me.rng.below(waiting.len() as u64) as usize]
    } else {
        any
    };
    let name = me.name.clone();
    if roll < 30 {
        let id = any;
        if me.held.contains_key(&id) || me.queued.contains_key(&id) {
            return Ok(());
        }
        model
            .lock()
            .unwrap()
            .joined
            .entry(id)
            .or_default()
            .insert(name.clone());
        let (status, body) = send(
            http.post(format!("{base}/api/files/{id}/queue"))
                .bearer_auth(&me.token),
        )
        .await?;
        let mut m = model.lock().unwrap();
        match status {
            200 if in_queue(&body, &name) => {
                me.queued.insert(id, true);
                m.ack("join");
            }
            409 if says(&body, "available")
                || says(&body, "You hold")
                || says(&body, "reserved for you")
                || says(&body, "already waiting") =>
            {
                m.ack("join refused")
            }
            _ => m.faults.push(format!(
                "{name} joining the line for {id} answered {status}: {body}"
            )),
        }
    } else if roll < 50 {
        let id = mine_or_any;
        let leave = roll < 40;
        let tracked = me.queued.remove(&id);
        let (status, body) = if leave {
            send(
                http.delete(format!("{base}/api/files/{id}/queue"))
                    .bearer_auth(&me.token),
            )
            .await?
        } else {
            send(
                http.post(format!("{base}/api/files/{id}/decline"))
                    .bearer_auth(&me.token),
            )
            .await?
        };
        let mut m = model.lock().unwrap();
        match (leave, status) {
            (true, 200) if !in_queue(&body, &name) => m.ack("leave"),
            (false, 200) if body["reserved_for"]["username"] != name.as_str() => m.ack("decline"),
            (true, 409) if says(&body, "not waiting") => {
                // Refused: nothing changed. Reserved for it is still a place.
                if let Some(fresh) = tracked {
                    if says(&body, "reserved for you") {
                        me.queued.insert(id, fresh);
                    } else {
                        m.faults.push(format!(
                            "{name}'s acknowledged place in line for {id} is gone: {body}"
                        ));
                    }
                }
                m.ack("leave refused");
            }
            (false, 409) if says(&body, "not reserved for you") => {
                if let Some(fresh) = tracked {
                    me.queued.insert(id, fresh);
                }
                m.ack("decline refused");
            }
            _ => m.faults.push(format!(
                "{name} {} {id} answered {status}: {body}",
                if leave {
                    "leaving the line for"
                } else {
                    "declining"
                }
            )),
        }
    } else if roll < 62 {
        let id = any;
        let floor = model.lock().unwrap().id_floor;
        let (status, body) = send(
            http.post(format!("{base}/api/files/{id}/nudge"))
                .bearer_auth(&me.token)
                .json(&json!({"message": format!("{name} needs it")})),
        )
        .await?;
        let mut m = model.lock().unwrap();
        // A second ask about the same file may be allowed: its holder may
        // have changed. The throttle's survival is checked at each restart.
        match status {
            204 => {
                m.nudges.push(Nudge {
                    asker: name.clone(),
                    file: id,
                    at: Instant::now(),
                    floor,
                    found: false,
                    holder: None,
                    repeat_checked: false,
                });
                m.ack("nudge");
            }
            429 => m.ack("nudge throttled"),
            409 if says(&body, "not checked out") || says(&body, "yourself") => {
                m.ack("nudge refused")
            }
            _ => m.faults.push(format!(
                "{name} asking about {id} answered {status}: {body}"
            )),
        }
    } else if roll < 87 {
        let on = me.rng.chance(60);
        let (key, req) = if roll < 77 {
            let url = format!("{base}/api/files/{any}/watch");
            let req = if on { http.post(url) } else { http.delete(url) };
            (format!("f:{any}"), req)
        } else {
            let folder = format!("client{}", me.rng.below(CLIENTS as u64));
            let url = format!("{base}/api/watches");
            let req = if on { http.post(url) } else { http.delete(url) };
            (format!("d:{folder}"), req.json(&json!({"folder": folder})))
        };
        me.watches.insert(
            key.clone(),
            WatchState {
                on: None,
                fresh: false,
            },
        );
        let (status, body) = send(req.bearer_auth(&me.token)).await?;
        let mut m = model.lock().unwrap();
        let answered = match key.strip_prefix("d:") {
            Some(folder) => body["folders"].as_array().is_some_and(|f| {
                // Listed as `client2/`.
                f.iter()
                    .any(|x| x.as_str().map(|x| x.trim_matches('/')) == Some(folder))
                    == on
            }),
            // A folder may still cover an unwatched file.
            None => !on || body["watching"] == true,
        };
        if status == 200 && answered {
            me.watches.insert(
                key,
                WatchState {
                    on: Some(on),
                    fresh: true,
                },
            );
            m.ack(if on { "watch" } else { "unwatch" });
        } else {
            m.faults.push(format!(
                "{name} (un)watching {key} answered {status}: {body}"
            ));
        }
    } else {
        let (token, mut rng) = (me.token.clone(), Rng::new(me.rng.next()));
        return inbox_op(http, base, &name, &token, &mut rng, model).await;
    }
    Ok(())
}

/// Lists `user`'s inbox and marks some (or all) of it read.
async fn inbox_op(
    http: &reqwest::Client,
    base: &str,
    user: &str,
    token: &str,
    rng: &mut Rng,
    model: &Shared,
) -> Result<(), Gone> {
    let (status, body) = send(
        http.get(format!("{base}/api/notifications"))
            .bearer_auth(token),
    )
    .await?;
    let list = body["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ids: Vec<u64> = {
        let mut m = model.lock().unwrap();
        if status != 200 {
            m.faults
                .push(format!("{user}'s notifications answered {status}: {body}"));
            return Ok(());
        }
        let mut wrong = m.observe(user, &list);
        let unread = list.iter().filter(|n| n["read"] == false).count() as u64;
        if list.len() < KEPT && body["unread"].as_u64() != Some(unread) {
            wrong.push(format!(
                "{user}'s unread count is {} but {unread} of the listed are unread",
                body["unread"]
            ));
        }
        m.faults.extend(wrong);
        m.ack("inbox listed");
        list.iter()
            .filter(|n| n["read"] == false)
            .filter_map(|n| n["id"].as_u64())
            .collect()
    };
    if ids.is_empty() {
        return Ok(());
    }
    let (all, marked): (bool, Vec<u64>) = if rng.chance(20) {
        (true, list.iter().filter_map(|n| n["id"].as_u64()).collect())
    } else {
        (false, ids.into_iter().filter(|_| rng.chance(50)).collect())
    };
    let request = if all {
        json!({"all": true})
    } else {
        json!({ "ids": marked })
    };
    let (status, body) = send(
        http.post(format!("{base}/api/notifications/read"))
            .bearer_auth(token)
            .json(&request),
    )
    .await?;
    let mut m = model.lock().unwrap();
    if status == 204 {
        for id in marked {
            if let Some(note) = m.notes.get_mut(&id) {
                note.read = true;
            }
        }
        m.ack("marked read");
    } else {
        m.faults
            .push(format!("{user} marking read answered {status}: {body}"));
    }
    Ok(())
}

/// The live client's owner, who watches the whole vault: reads and clears
/// their inbox now and then, so their bell moves both ways.
async fn watcher_loop(
    http: reqwest::Client,
    base: String,
    token: String,
    mut rng: Rng,
    model: Shared,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50 + rng.below(300))).await;
        if inbox_op(&http, &base, "watcher", &token, &mut rng, &model)
            .await
            .is_err()
        {
            return;
        }
    }
}

async fn admin_loop(
    http: reqwest::Client,
    base: String,
    mut rng: Rng,
    model: Shared,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        // Think time between admin actions, randomised with the seed.
        tokio::time::sleep(Duration::from_millis(30 + rng.below(200))).await;
        let Ok((200, body)) = send(
            http.get(format!("{base}/api/files"))
                .basic_auth("admin", Some(ADMIN_PASSWORD)),
        )
        .await
        else {
            return;
        };
        let locked: Vec<u64> = body["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["state"] == "locked")
            .filter_map(|f| f["id"].as_u64())
            .collect();
        if locked.is_empty() {
            continue;
        }
        let id = locked[rng.below(locked.len() as u64) as usize];
        {
            let mut m = model.lock().unwrap();
            *m.overrides_started.entry(id).or_default() += 1;
            *m.overrides_in_flight.entry(id).or_default() += 1;
        }
        let Ok((status, body)) = send(
            http.post(format!("{base}/api/files/{id}/override"))
                .basic_auth("admin", Some(ADMIN_PASSWORD)),
        )
        .await
        else {
            // Still counted as in flight: it may have happened.
            return;
        };
        let mut m = model.lock().unwrap();
        if let Some(n) = m.overrides_in_flight.get_mut(&id) {
            *n -= 1;
        }
        match status {
            200 if body["lock"].is_null() => m.ack("override"),
            409 => m.ack("override conflict"),
            _ => m
                .faults
                .push(format!("override of {id} answered {status}: {body}")),
        }
    }
}

struct Check<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
    token: &'a str,
}

impl Check<'_> {
    async fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.token)
            .send()
            .await
            .expect("the restarted server answers");
        let status = resp.status().as_u16();
        (status, resp.bytes().await.expect("body").to_vec())
    }

    async fn json(&self, path: &str) -> Value {
        self.json_as(self.token, path).await
    }

    async fn json_as(&self, token: &str, path: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("the restarted server answers");
        let status = resp.status().as_u16();
        let body = resp.bytes().await.expect("body").to_vec();
        assert_eq!(
            status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).expect("json")
    }
}

/// Everything that must hold after a restart; returns the file list.
async fn verify(
    check: &Check<'_>,
    data: &Path,
    model: &Shared,
    clients: &mut [ClientState],
    all_content: bool,
) -> Vec<Value> {
    git_fsck(&data.join("vault.git")).unwrap_or_else(|e| panic!("{e}"));
    let spooled: Vec<_> = std::fs::read_dir(data.join("spool"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(spooled.is_empty(), "spool not emptied: {spooled:?}");

    let files = check.json("/api/files").await["files"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let by_id: HashMap<u64, &Value> = files
        .iter()
        .map(|f| (f["id"].as_u64().unwrap(), f))
        .collect();

    let mut versions = {
        let mut m = model.lock().unwrap();
        // Uploads acknowledged but unknown to the server would be lost files.
        for id in &m.files {
            assert!(by_id.contains_key(id), "acknowledged upload {id} is gone");
        }
        // Locks: acknowledged ones are still held unless an override may have hit them.
        for client in clients.iter_mut() {
            for (id, held) in &client.held {
                let overrides = m.overrides_started.get(id).copied().unwrap_or(0);
                let owner = by_id[id]["lock"]["owner"].as_str();
                if held.clear && overrides == held.overrides_before {
                    if held.fresh {
                        *m.checked.entry("lock").or_default() += 1;
                    }
                    assert_eq!(
                        owner,
                        Some(client.name.as_str()),
                        "the lock on file {id} acknowledged to {} was lost",
                        client.name
                    );
                }
            }
            // Open through the drive: the same, unless a close was in flight.
            client.drive.retain(|id, open| {
                let owner = by_id.get(id).and_then(|f| f["lock"]["owner"].as_str());
                let overrides = m.overrides_started.get(id).copied().unwrap_or(0);
                if open.closing {
                    return false;
                }
                // An override may have ended it, and the client taken the
                // file again since (its draft gone): nothing to hold it to.
                if !open.held.clear || overrides != open.held.overrides_before {
                    return false;
                }
                assert_eq!(
                    owner,
                    Some(client.name.as_str()),
                    "file {id}, opened through the drive by {}, was lost: {open:?}; the file now: {}",
                    client.name,
                    by_id.get(id).map(|f| f.to_string()).unwrap_or_default()
                );
                true
            });
            // Quiet now: what the server says is what this client holds.
            client.held = files
                .iter()
                .filter(|f| f["lock"]["owner"] == client.name.as_str())
                .filter(|f| {
                    !f["id"]
                        .as_u64()
                        .is_some_and(|id| client.drive.contains_key(&id))
                })
                .map(|f| {
                    let id = f["id"].as_u64().unwrap();
                    let held = Held {
                        overrides_before: m.overrides_started.get(&id).copied().unwrap_or(0),
                        clear: true,
                        fresh: false,
                    };
                    (id, held)
                })
                .collect();
        }
        m.overrides_in_flight.clear();
        std::mem::take(&mut m.versions)
    };
    let drafts = verify_drive(check, data, clients, &files).await;
    *model.lock().unwrap().checked.entry("draft").or_default() += drafts;
    let mut draft_checkins = std::mem::take(&mut model.lock().unwrap().draft_checkins);

    let ids: BTreeSet<u64> = by_id.keys().copied().collect();
    for id in ids {
        let history = check.json(&format!("/api/files/{id}/history")).await["versions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(!history.is_empty(), "file {id} has no history");
        let mut revisions = BTreeSet::new();
        // A move keeps the revision: only new content takes a new one.
        for v in history.iter().filter(|v| v["action"] != "move") {
            let rev = v["revision"].as_str().unwrap_or_default();
            assert!(
                revisions.insert(rev.to_string()),
                "revision {rev} of file {id} was handed out twice: {history:?}"
            );
        }
        let file = by_id[&id];
        assert_eq!(
            file["head"], history[0]["commit"],
            "file {id}'s record is not at its newest commit"
        );
        assert_eq!(
            file["revision"], history[0]["revision"],
            "file {id}'s record does not show its newest revision"
        );
        let commits: HashMap<&str, &str> = history
            .iter()
            .map(|v| {
                (
                    v["commit"].as_str().unwrap_or_default(),
                    v["revision"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        for v in versions.iter_mut().filter(|v| v.file == id) {
            assert_eq!(
                commits.get(v.commit.as_str()).copied(),
                Some(v.revision.as_str()),
                "acknowledged revision {} of file {id} ({}) is not in its history",
                v.revision,
                v.commit
            );
            if all_content || !v.content_checked {
                let (status, body) = check
                    .get(&format!("/api/files/{id}/content?rev={}", v.commit))
                    .await;
                assert_eq!(status, 200, "download of {id} at {}", v.commit);
                assert!(
                    body == v.content,
                    "file {id} at revision {} does not have the content acknowledged",
                    v.revision
                );
                v.content_checked = true;
            }
        }
        // Closes through the drive: each draft acknowledged is a version
        // ("Saved from …") by its holder.
        if draft_checkins.iter().any(|c| c.file == id) {
            for v in history.iter().filter(|v| {
                v["message"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("Saved from"))
            }) {
                let (status, body) = check
                    .get(&format!(
                        "/api/files/{id}/content?rev={}",
                        v["commit"].as_str().unwrap_or("")
                    ))
                    .await;
                assert_eq!(status, 200, "download of {id} at {}", v["commit"]);
                let before = draft_checkins.len();
                draft_checkins.retain(|c| {
                    !(c.file == id && v["username"] == c.user.as_str() && c.content == body)
                });
                let found = (before - draft_checkins.len()) as u64;
                *model
                    .lock()
                    .unwrap()
                    .checked
                    .entry("draft checked in")
                    .or_default() += found;
            }
        }
    }
    assert!(
        draft_checkins.is_empty(),
        "closes through the drive were acknowledged, and their drafts are in no file's history: {:?}",
        draft_checkins
            .iter()
            .map(|c| (c.file, &c.user, c.content.len()))
            .collect::<Vec<_>>()
    );
    model.lock().unwrap().versions = versions;
    files
}

/// Each file still open through the drive reads, for its holder, as the
/// last save acknowledged (or one in flight at the kill), else as the
/// file; and no draft is kept on disk but a held file's.
async fn verify_drive(
    check: &Check<'_>,
    data: &Path,
    clients: &mut [ClientState],
    files: &[Value],
) -> u64 {
    let mut drafts = 0;
    let locked: HashSet<u64> = files
        .iter()
        .filter(|f| !f["lock"].is_null())
        .filter_map(|f| f["id"].as_u64())
        .collect();
    for entry in std::fs::read_dir(data.join("drafts"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let id = name
            .strip_prefix("draft-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|n| n.parse::<u64>().ok());
        assert!(
            id.is_some_and(|id| locked.contains(&id)),
            "a draft is left on disk for a file nobody holds: {name}"
        );
    }
    for client in clients.iter_mut() {
        for (id, open) in client.drive.iter_mut() {
            let (status, current) = check.get(&format!("/api/files/{id}/content")).await;
            assert_eq!(status, 200, "download of {id}");
            let resp = check
                .http
                .get(format!("{}/dav/{}", check.base, open.path))
                .basic_auth(&client.name, Some(&client.token))
                .send()
                .await
                .expect("the restarted server answers");
            assert_eq!(resp.status().as_u16(), 200, "GET /dav/{}", open.path);
            let read = resp.bytes().await.expect("body").to_vec();
            let last = open.saved.clone().unwrap_or(current);
            let in_flight = open.saving.take();
            assert!(
                read == last || in_flight.as_ref() == Some(&read),
                "{} reads file {id} through the drive as {} bytes, neither its last save acknowledged ({} bytes) nor one in flight",
                client.name,
                read.len(),
                last.len()
            );
            if in_flight.as_ref() == Some(&read) {
                open.saved = in_flight;
            }
            drafts += u64::from(open.saved.is_some());
        }
    }
    drafts
}

/// A file's line: the one it is reserved for, then the queue.
fn line_of(f: &Value) -> Vec<String> {
    f["reserved_for"]["username"]
        .as_str()
        .into_iter()
        .chain(
            f["queue"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str),
        )
        .map(str::to_string)
        .collect()
}

/// The coordination state after a restart (see the top comment); returns
/// the unread count of the live client's owner.
async fn verify_coordination(
    check: &Check<'_>,
    model: &Shared,
    clients: &mut [ClientState],
    watcher_token: &str,
    files: &[Value],
) -> u64 {
    // The clients are stopped: the model is this check's alone until it ends.
    let mut taken = std::mem::take(&mut *model.lock().unwrap());
    let m = &mut taken;
    // Each file's state agrees with itself.
    for f in files {
        let id = f["id"].as_u64().unwrap();
        let line = line_of(f);
        let unique: BTreeSet<&String> = line.iter().collect();
        assert_eq!(
            unique.len(),
            line.len(),
            "file {id}'s line has someone twice: {f}"
        );
        match f["state"].as_str() {
            Some("available") => assert!(
                line.is_empty() && f["lock"].is_null(),
                "file {id} is available with a line or a lock: {f}"
            ),
            Some("reserved") => assert!(
                f["lock"].is_null() && !f["reserved_for"].is_null(),
                "file {id} is reserved, but not for anyone, or locked: {f}"
            ),
            Some("locked") => assert!(
                f["reserved_for"].is_null()
                    && !line.iter().any(|q| f["lock"]["owner"] == q.as_str()),
                "file {id} is locked and reserved, or its holder waits for it: {f}"
            ),
            other => panic!("file {id} has state {other:?}"),
        }
    }
    // The line keeps its order: those in it at the last restart who did not
    // join again are in the same order, ahead of everyone who joined since;
    // so the reservation went to the first of them still waiting.
    let joined = std::mem::take(&mut m.joined);
    let none = BTreeSet::new();
    for f in files {
        let id = f["id"].as_u64().unwrap();
        let line = line_of(f);
        let old = m.lines.get(&id).cloned().unwrap_or_default();
        let rejoined = joined.get(&id).unwrap_or(&none);
        let stayed: Vec<&String> = line
            .iter()
            .filter(|q| old.contains(q) && !rejoined.contains(*q))
            .collect();
        let order: Vec<&String> = old.iter().filter(|q| stayed.contains(q)).collect();
        assert_eq!(
            stayed, order,
            "the line for file {id} changed order: it was {old:?} and is {line:?}"
        );
        if let Some(last) = stayed.last() {
            let last_at = line.iter().position(|q| q == *last).unwrap_or(0);
            assert!(
                line[..last_at].iter().all(|q| stayed.contains(&q)),
                "someone who joined since the last restart is ahead of an earlier one in the line \
                 for file {id}: it was {old:?} and is {line:?}, joined since {rejoined:?}"
            );
        }
        m.lines.insert(id, line);
    }
    let by_id: HashMap<u64, &Value> = files
        .iter()
        .map(|f| (f["id"].as_u64().unwrap(), f))
        .collect();
    // Joins: still waiting, or the reservation they turned into.
    for client in clients.iter_mut() {
        for (id, fresh) in &client.queued {
            assert!(
                m.lines[id].contains(&client.name),
                "{}'s acknowledged place in line for file {id} was lost: the file is {}",
                client.name,
                by_id[id]
            );
            if *fresh {
                *m.checked.entry("join").or_default() += 1;
            }
        }
        client.queued = m
            .lines
            .iter()
            .filter(|(_, line)| line.contains(&client.name))
            .map(|(id, _)| (*id, false))
            .collect();
    }
    drop(by_id);

    // Watches: exactly those acknowledged, where no request is in doubt.
    for client in clients.iter_mut() {
        let listed = check.json_as(&client.token, "/api/watches").await;
        let now: BTreeSet<String> = listed["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .map(|id| format!("f:{id}"))
            .chain(
                listed["folders"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|f| format!("d:{}", f.trim_matches('/'))),
            )
            .collect();
        for (key, state) in &client.watches {
            let Some(on) = state.on else { continue };
            assert_eq!(
                now.contains(key),
                on,
                "{}'s acknowledged {} of {key} was lost: they watch {now:?}",
                client.name,
                if on { "watch" } else { "unwatch" }
            );
            if state.fresh {
                *m.checked
                    .entry(if on { "watch" } else { "unwatch" })
                    .or_default() += 1;
            }
        }
        client.watches = now
            .into_iter()
            .map(|k| {
                let state = WatchState {
                    on: Some(true),
                    fresh: false,
                };
                (k, state)
            })
            .collect();
    }

    // Inboxes: nothing seen is lost, changed or unread again; new ids are
    // newer than every id before the kill; the count is what is listed.
    let mut users: Vec<(String, String)> = clients
        .iter()
        .map(|c| (c.name.clone(), c.token.clone()))
        .collect();
    users.push(("watcher".into(), watcher_token.to_string()));
    let floor = m.id_floor;
    let mut inboxes: HashMap<String, Vec<Value>> = HashMap::new();
    let mut watcher_unread = 0;
    for (user, token) in &users {
        let body = check.json_as(token, "/api/notifications").await;
        let list = body["notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for n in &list {
            let id = n["id"].as_u64().unwrap_or_default();
            assert!(
                m.notes.contains_key(&id) || id > floor,
                "notification {id} of {user} is new since the restart but not newer than \
                 notification {floor} seen before it: an id went backwards"
            );
        }
        let wrong = m.observe(user, &list);
        assert!(wrong.is_empty(), "after a restart: {wrong:#?}");
        let unread = list.iter().filter(|n| n["read"] == false).count() as u64;
        if list.len() < KEPT {
            assert_eq!(
                body["unread"].as_u64(),
                Some(unread),
                "{user}'s unread count is not the number of unread notifications listed"
            );
        }
        if user == "watcher" {
            watcher_unread = body["unread"].as_u64().unwrap_or_default();
        }
        let listed: HashSet<u64> = list.iter().filter_map(|n| n["id"].as_u64()).collect();
        let oldest = list.last().and_then(|n| n["id"].as_u64()).unwrap_or(0);
        let full = list.len() >= KEPT;
        for (id, note) in m.notes.iter_mut() {
            if note.user != *user || note.gone {
                continue;
            }
            if listed.contains(id) {
                note.checked = true;
                if note.read {
                    note.read_checked = true;
                }
                continue;
            }
            assert!(
                full && *id < oldest,
                "notification {id} of {user} ({}) was lost",
                note.body
            );
            note.gone = true;
        }
        inboxes.insert(user.clone(), list);
    }
    m.id_floor = m.notes.keys().copied().max().unwrap_or(0).max(floor);

    // Asks to release: in some holder's inbox (nobody else checks out), unless
    // that inbox since filled up with newer ones.
    for nudge in m.nudges.iter_mut().filter(|n| !n.found) {
        let holder = inboxes.iter().find_map(|(user, list)| {
            (*user != nudge.asker
                && list.iter().any(|n| {
                    n["kind"] == "nudged"
                        && n["actor"] == nudge.asker.as_str()
                        && n["file_id"] == nudge.file
                        && n["id"].as_u64().is_some_and(|id| id > nudge.floor)
                }))
            .then(|| user.clone())
        });
        let found = holder.is_some();
        nudge.holder = holder;
        let could_be_gone = inboxes.iter().any(|(user, list)| {
            *user != nudge.asker
                && list.len() >= KEPT
                && list
                    .last()
                    .and_then(|n| n["id"].as_u64())
                    .is_some_and(|oldest| oldest > nudge.floor + 1)
        });
        assert!(
            found || could_be_gone,
            "{}'s acknowledged ask to release file {} is in nobody's inbox",
            nudge.asker,
            nudge.file
        );
        nudge.found = true;
    }
    // ... and asking again within the hour is still refused.
    let holders: HashMap<u64, String> = files
        .iter()
        .filter_map(|f| Some((f["id"].as_u64()?, f["lock"]["owner"].as_str()?.to_string())))
        .collect();
    let mut repeats = Vec::new();
    for (i, nudge) in m.nudges.iter().enumerate() {
        // Still held by the one asked: asking them again is refused.
        let same_holder =
            nudge.holder.is_some() && holders.get(&nudge.file) == nudge.holder.as_ref();
        if !nudge.repeat_checked && same_holder && nudge.at.elapsed() < Duration::from_secs(3000) {
            repeats.push(i);
        }
    }
    for i in repeats {
        let (asker, file) = (m.nudges[i].asker.clone(), m.nudges[i].file);
        let token = clients
            .iter()
            .find(|c| c.name == asker)
            .map(|c| c.token.clone())
            .unwrap_or_default();
        let resp = check
            .http
            .post(format!("{}/api/files/{file}/nudge", check.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("the restarted server answers");
        assert_eq!(
            resp.status().as_u16(),
            429,
            "{asker} could ask about file {file} again within the hour after a restart"
        );
        m.nudges[i].repeat_checked = true;
    }
    let (found, repeated) = m.nudges.iter().fold((0, 0), |(f, r), n| {
        (f + u64::from(n.found), r + u64::from(n.repeat_checked))
    });
    m.checked.insert("nudge", found);
    m.checked.insert("nudge repeat refused", repeated);
    let (notes, read) = m.notes.values().fold((0, 0), |(c, r), n| {
        (c + u64::from(n.checked), r + u64::from(n.read_checked))
    });
    m.checked.insert("notification", notes);
    m.checked.insert("read", read);
    *model.lock().unwrap() = taken;
    watcher_unread
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_acknowledged_is_lost_across_twenty_sigkills() {
    if !have_tool("git", "git") {
        return;
    }
    let seed = std::env::var("LATCH_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        });
    let kills: usize = std::env::var("LATCH_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    eprintln!("crash torture: seed {seed} (LATCH_CRASH_SEED), {kills} kills");
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir().expect("temp dir");
    let data: PathBuf = tmp.path().join("data");
    let log = tmp.path().join("latch.log");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let started = Instant::now();

    // Accounts and tokens, made once; they persist across restarts.
    let mut server = Server::start(&data, &log).await;
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let name = format!("client{i}");
        let resp = http
            .post(format!("{}/api/users", server.base))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .json(&json!({"username": name, "password": PASSWORD, "role": "user"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let token = token_with_password(&http, &server.base, &name, PASSWORD, "crash test").await;
        clients.push(ClientState {
            name,
            token,
            held: HashMap::new(),
            queued: HashMap::new(),
            watches: BTreeMap::new(),
            drive: HashMap::new(),
            rng: Rng::new(rng.next()),
            serial: 0,
        });
    }
    let checker_token =
        token_with_password(&http, &server.base, "admin", ADMIN_PASSWORD, "checker").await;
    let resp = http
        .post(format!("{}/api/users", server.base))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&json!({"username": "watcher", "password": PASSWORD, "role": "user"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    // The live client's owner watches the whole vault, so their bell moves.
    let watcher_token =
        token_with_password(&http, &server.base, "watcher", PASSWORD, "crash test").await;
    let resp = http
        .post(format!("{}/api/watches", server.base))
        .bearer_auth(&watcher_token)
        .json(&json!({"folder": "/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http
        .post(format!("{}/api/login", server.base))
        .json(&json!({"username": "watcher", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("latch_session="))
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_string();

    let model: Shared = Arc::default();
    let view = Arc::new(Mutex::new(watch::View {
        last_id: Some(0),
        ..Default::default()
    }));
    let sse_http = reqwest::Client::new();
    let mut killed = 0;
    let mut early_kills = 0;
    loop {
        // The live client resumes from its last event id, as a browser would.
        let follower = {
            let (http, base, cookie, view) = (
                sse_http.clone(),
                server.base.clone(),
                cookie.clone(),
                view.clone(),
            );
            tokio::spawn(async move { watch::follow(&http, &base, &cookie, view).await })
        };
        let check = Check {
            http: &http,
            base: &server.base,
            token: &checker_token,
        };
        let last_round = killed == kills;
        let files = verify(&check, &data, &model, &mut clients, last_round).await;
        let unread =
            verify_coordination(&check, &model, &mut clients, &watcher_token, &files).await;
        if let Err(diff) = watch::converge(&view, &files, Duration::from_secs(20)).await {
            panic!(
                "after restart {killed}, the live client did not converge on the true state: {diff}"
            );
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while view.lock().unwrap().bell != Some(unread) {
            assert!(
                Instant::now() < deadline,
                "after restart {killed}, the live client's bell shows {:?}, not the {unread} unread",
                view.lock().unwrap().bell
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let faults = std::mem::take(&mut model.lock().unwrap().faults);
        if !faults.is_empty() {
            let errors: Vec<String> = std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("ERROR"))
                .map(str::to_string)
                .collect();
            panic!("clients saw faults: {faults:#?}\nserver errors: {errors:#?}");
        }
        if last_round {
            follower.abort();
            break;
        }

        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for me in clients.drain(..) {
            tasks.push(tokio::spawn(client_loop(
                http.clone(),
                server.base.clone(),
                me,
                model.clone(),
                stop.clone(),
            )));
        }
        let admin = tokio::spawn(admin_loop(
            http.clone(),
            server.base.clone(),
            Rng::new(rng.next()),
            model.clone(),
            stop.clone(),
        ));
        let watcher = tokio::spawn(watcher_loop(
            http.clone(),
            server.base.clone(),
            watcher_token.clone(),
            Rng::new(rng.next()),
            model.clone(),
            stop.clone(),
        ));
        // A random moment under load to kill at: the randomness is the test.
        tokio::time::sleep(Duration::from_millis(100 + rng.below(1400))).await;
        server.kill();
        killed += 1;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            clients.push(task.await.expect("client task"));
        }
        admin.await.expect("admin task");
        watcher.await.expect("watcher task");
        let _ = follower.await;

        // Now and then the restart itself is cut short, maybe mid-reconcile.
        if rng.below(4) == 0 {
            let mut early = Server::spawn(&data, &log);
            tokio::time::sleep(Duration::from_millis(rng.below(60))).await;
            early.kill();
            early_kills += 1;
        }
        server = Server::start(&data, &log).await;
    }
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let reconciled_starts = log_text.matches("applied Git commits").count();
    let stale_locks = log_text.matches("removed a stale Git lock").count();
    let m = model.lock().unwrap();
    let seen = view.lock().unwrap().clone();
    eprintln!(
        "crash torture: {killed} kills while serving and {early_kills} while starting, in {:.1} s; acknowledged: {:?}; {} versions checked; \
         live client saw {} events ({} resyncs); {reconciled_starts} starts reconciled Git \
         commits the database had not recorded; {stale_locks} stale Git locks removed",
        started.elapsed().as_secs_f64(),
        m.acks,
        m.versions.len(),
        seen.events,
        seen.resyncs,
    );
    let acked = |k: &str| m.acks.get(k).copied().unwrap_or(0);
    let checked = |k: &str| m.checked.get(k).copied().unwrap_or(0);
    // The README's figure.
    eprintln!(
        "crash torture summary: {killed} kills; acknowledged and checked after a restart: \
         {} uploads, {} check-ins, {} locks, {} joins, {} watches, {} unwatches, \
         {} asks to release ({} repeats refused), {} notifications ({} read); \
         through the drive: {} opens, {} saves, {} closes, {} drafts held across a kill, \
         {} drafts found checked in; lost: 0",
        acked("upload"),
        acked("checkin"),
        checked("lock"),
        checked("join"),
        checked("watch"),
        checked("unwatch"),
        checked("nudge"),
        checked("nudge repeat refused"),
        checked("notification"),
        checked("read"),
        acked("open"),
        acked("draft"),
        acked("close"),
        checked("draft"),
        checked("draft checked in"),
    );
    assert!(acked("checkin") > 0, "no check-in was acknowledged");
    assert!(
        acked("draft") > 0,
        "no save through the drive was acknowledged"
    );
    assert!(checked("join") > 0, "no acknowledged join was checked");
    assert!(
        checked("nudge") > 0,
        "no acknowledged ask to release was checked"
    );
}
