//! The reference model of the contract, the step generator and the driver
//! that runs both against the real binary for `tests/it/model/mod.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::common::binary::{self, Server};
use crate::common::{ADMIN_PASSWORD, Rng};

mod drive;
mod many;

use drive::MToken;

const PASSWORD: &str = "user-password-1";
/// The largest value of either revision part.
const MAX_PART: u32 = 999_999;
const LFS_JSON: &str = "application/vnd.git-lfs+json";
const LFS_COMMENT: &str = "locked with git lfs";
/// The server runs with the default hand-off window (15 minutes), so the
/// model never sees a reservation run out: a sequence stops taking steps
/// after this long, well inside the window. The window running out is
/// covered by tests/it/coordination.rs.
const WINDOW_MARGIN: Duration = Duration::from_secs(12 * 60);

/// The id the model gives the `k`th file a request adds, until the server
/// has said which id it gave (from its answer, or by path from the reads).
const NEW_ID: u64 = 1 << 60;

fn is_new(id: u64) -> bool {
    id >= NEW_ID
}

/// A seed for sequence `i` of this run: different every run, printed on failure.
pub fn fresh_seed(i: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (nanos ^ (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) % 1_000_000_000_000
}

// ------------------------------------------------------------------ model

#[derive(Clone, Debug, PartialEq)]
struct MUser {
    name: String,
    admin: bool,
    disabled: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct MLock {
    owner: String,
    comment: Option<String>,
    /// The holder's last save through the drive, not yet a version.
    draft: Option<Vec<u8>>,
    /// The WebDAV tokens (slots of `Model::dav`) this check-out carries:
    /// they end with it.
    tokens: Vec<usize>,
}

#[derive(Clone, Debug)]
struct MFile {
    /// `NEW_ID + k` until the server has told which id it gave.
    id: u64,
    path: String,
    description: String,
    rev: (u32, u32),
    lock: Option<MLock>,
    content: Vec<u8>,
    /// Oldest first.
    revisions: Vec<String>,
    /// Who waits for the file, first in line first.
    queue: Vec<String>,
    /// For whom the file is held after its lock ended. The hand-off window
    /// is the default 15 minutes, far longer than a sequence runs (see
    /// `WINDOW_MARGIN`), so a reservation here never runs out by itself:
    /// the window running out is tested in tests/it/coordination.rs.
    reserved: Option<String>,
}

impl MFile {
    /// The File JSON's `state`, and the card's `data-state`.
    fn state(&self) -> &'static str {
        match (&self.lock, &self.reserved) {
            (Some(_), _) => "locked",
            (None, Some(_)) => "reserved",
            (None, None) => "available",
        }
    }

    /// The lock has just ended: the first in line who can still take the
    /// file (not `gone`: disabled accounts are passed over and leave the
    /// line) gets it, with a `reserved` event (by whoever ended the lock)
    /// after the step's own.
    fn end_lock(&mut self, by: &str, events: &mut Vec<Ev>, gone: &[String]) {
        self.lock = None;
        self.reserved = None;
        while !self.queue.is_empty() {
            let next = self.queue.remove(0);
            if gone.contains(&next) {
                continue;
            }
            self.reserved = Some(next.clone());
            events.push(Ev {
                kind: "reserved",
                file_id: self.id,
                actor: by.to_string(),
                previous: None,
                to: Some(next),
            });
            break;
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Model {
    users: Vec<MUser>,
    files: Vec<MFile>,
    /// The highest file id ever handed out: ids are never reused.
    max_id: u64,
    /// (who, what they watch).
    watches: BTreeSet<(String, MWatch)>,
    /// (asker, file id, holder) of every ask to release that was let
    /// through: a sequence is far shorter than the hour before the same
    /// asker may ask the same holder about the same file again, so each is
    /// refused (429) from then on; a new holder may be asked at once.
    nudged: BTreeSet<(String, u64, String)>,
    /// Each person's notifications, oldest first, at most `KEPT`.
    inbox: BTreeMap<String, Vec<MNote>>,
    /// Notifications ever written: the next one's id is one more (one
    /// counter for all inboxes).
    notes_made: u64,
    /// Every WebDAV token given, by slot (in force or not).
    dav: Vec<MToken>,
}

/// The most notifications one inbox keeps.
const KEPT: usize = 200;

/// What someone watches: a file, or a folder (`""` is the whole vault),
/// written as the server keeps it (no leading or trailing `/`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum MWatch {
    File(u64),
    Folder(String),
}

impl MWatch {
    fn covers(&self, file_id: u64, path: &str) -> bool {
        match self {
            MWatch::File(id) => *id == file_id,
            MWatch::Folder(f) => {
                f.is_empty() || path.match_indices('/').any(|(end, _)| path[..end] == *f)
            }
        }
    }
}

/// One notification as the model predicts it.
#[derive(Clone, Debug, PartialEq)]
struct MNote {
    id: u64,
    kind: &'static str,
    file_id: u64,
    actor: String,
    read: bool,
}

#[derive(Clone, Debug, PartialEq)]
struct Ev {
    kind: &'static str,
    file_id: u64,
    actor: String,
    /// For `overridden`: whose check-out was broken.
    previous: Option<String>,
    /// The event's `note`, where the model checks it: for `reserved`, for
    /// whom; for `moved`, the old path.
    to: Option<String>,
}

/// An event of `kind` on file `file_id` by `by`, with no note.
fn ev(kind: &'static str, file_id: u64, by: &str) -> Ev {
    Ev {
        kind,
        file_id,
        actor: by.to_string(),
        previous: None,
        to: None,
    }
}

fn rev_string(r: (u32, u32)) -> String {
    format!("{}.{}", r.0, r.1)
}

impl Model {
    /// A new notification for `to` (one id from the shared counter).
    fn notify(&mut self, to: &str, kind: &'static str, file_id: u64, actor: &str) {
        self.notes_made += 1;
        let inbox = self.inbox.entry(to.to_string()).or_default();
        inbox.push(MNote {
            id: self.notes_made,
            kind,
            file_id,
            actor: actor.to_string(),
            read: false,
        });
        if inbox.len() > KEPT {
            let extra = inbox.len() - KEPT;
            inbox.drain(..extra);
        }
    }

    /// Whether `who` hears of changes to this file.
    fn watching(&self, who: &str, file_id: u64, path: &str) -> bool {
        self.watches
            .iter()
            .any(|(w, what)| w == who && what.covers(file_id, path))
    }

    /// The notifications `events` cause, in their order, as `inbox::on_event`
    /// writes them: the one a file is reserved for (`reserved`), the holder
    /// whose check-out was broken (`overridden`), and everyone watching the
    /// file, a folder it is in or the whole vault (`watched`) — never the
    /// actor, nobody twice (a personal kind wins), nobody disabled; within
    /// one event in the order of their names. A deleted file's watches go.
    /// `before` knows the paths of files the events removed.
    fn tell(&mut self, before: &Model, events: &[Ev]) {
        for e in events {
            let Some(path) = self
                .file(e.file_id)
                .or_else(|| before.file(e.file_id))
                .map(|f| f.path.clone())
            else {
                continue;
            };
            let mut told: BTreeMap<String, &'static str> = BTreeMap::new();
            match (e.kind, &e.to, &e.previous) {
                ("reserved", Some(to), _) => {
                    told.insert(to.clone(), "reserved");
                }
                ("overridden", _, Some(prev)) => {
                    told.insert(prev.clone(), "overridden");
                }
                _ => {}
            }
            for (who, what) in &self.watches {
                if what.covers(e.file_id, &path) {
                    told.entry(who.clone()).or_insert("watched");
                }
            }
            told.remove(&e.actor);
            // Taking or passing on a file reserved for you answers its
            // "reserved" notifications.
            if matches!(e.kind, "locked" | "reserved" | "released")
                && let Some(inbox) = self.inbox.get_mut(&e.actor)
            {
                for n in inbox.iter_mut() {
                    if n.kind == "reserved" && n.file_id == e.file_id {
                        n.read = true;
                    }
                }
            }
            if e.kind == "deleted" {
                self.watches
                    .retain(|(_, what)| *what != MWatch::File(e.file_id));
            }
            for (who, kind) in told {
                if self.user(&who).is_none_or(|u| u.disabled) {
                    continue;
                }
                self.notify(&who, kind, e.file_id, &e.actor);
            }
        }
    }

    /// A new file, and its notifications, take the id the server gave.
    fn learn_id(&mut self, new: u64, id: u64) {
        for f in self.files.iter_mut().filter(|f| f.id == new) {
            f.id = id;
        }
        for n in self.inbox.values_mut().flatten() {
            if n.file_id == new {
                n.file_id = id;
            }
        }
    }

    fn user(&self, name: &str) -> Option<&MUser> {
        self.users.iter().find(|u| u.name == name)
    }

    fn file(&self, id: u64) -> Option<&MFile> {
        self.files.iter().find(|f| f.id == id)
    }

    fn file_mut(&mut self, id: u64) -> &mut MFile {
        self.files
            .iter_mut()
            .find(|f| f.id == id)
            .expect("the model looks up a file it just found")
    }

    /// A new path that is an existing file (in any letter case), one of its
    /// folders, or lies inside one: refused (`hard`). A path whose folders
    /// differ from an existing file's only in letter case (`soft`) may be
    /// refused or taken: the contract does not say.
    fn clash(&self, path: &str) -> (bool, bool) {
        let lp = many::fold(path);
        let mut soft = false;
        for f in &self.files {
            let le = many::fold(&f.path);
            if le == lp || le.starts_with(&format!("{lp}/")) || lp.starts_with(&format!("{le}/")) {
                return (true, soft);
            }
            let (a, b): (Vec<&str>, Vec<&str>) =
                (path.split('/').collect(), f.path.split('/').collect());
            let folders = a.len().min(b.len()).saturating_sub(1);
            for i in 0..folders {
                if a[i] != b[i] {
                    soft |= many::fold(a[i]) == many::fold(b[i]);
                    break;
                }
            }
        }
        (false, soft)
    }
}

/// One request, fully decided.
#[derive(Clone, Debug)]
enum Act {
    AddUser {
        by: String,
        name: String,
        admin: bool,
    },
    Disable {
        by: String,
        name: String,
    },
    Upload {
        by: String,
        raw_path: String,
        /// The normalised path, or None when the path must be refused.
        path: Option<String>,
        desc: String,
        rev: Option<String>,
        content: Vec<u8>,
    },
    Checkout {
        by: String,
        id: u64,
        comment: Option<String>,
    },
    Cancel {
        by: String,
        id: u64,
    },
    Checkin {
        by: String,
        id: u64,
        major: bool,
        content: Vec<u8>,
    },
    Override {
        by: String,
        id: u64,
    },
    Delete {
        by: String,
        id: u64,
    },
    LfsLock {
        by: String,
        path: String,
    },
    LfsUnlock {
        by: String,
        id: u64,
        force: bool,
    },
    /// Wait in line.
    Join {
        by: String,
        id: u64,
    },
    /// Leave the line.
    Leave {
        by: String,
        id: u64,
    },
    /// Pass a reservation on.
    Decline {
        by: String,
        id: u64,
    },
    /// Start (`on`) or stop watching a file.
    WatchFile {
        by: String,
        id: u64,
        on: bool,
    },
    /// Start or stop watching a folder: `raw` as sent, `folder` as the
    /// server keeps it, or None when it must be refused.
    WatchFolder {
        by: String,
        raw: String,
        folder: Option<String>,
        on: bool,
    },
    /// Ask the holder to release a file.
    Nudge {
        by: String,
        id: u64,
        message: Option<String>,
    },
    /// Mark notifications read: all, these ids, or (neither) a body that
    /// names nothing.
    MarkRead {
        by: String,
        all: bool,
        ids: Option<Vec<u64>>,
    },
    /// Check out several files with one comment: all or none.
    CheckoutSet {
        by: String,
        ids: Vec<u64>,
        comment: Option<String>,
    },
    /// Cancel several check-outs: all or none.
    CancelSet {
        by: String,
        ids: Vec<u64>,
    },
    /// Check in several files in one commit: a `file` part per entry,
    /// named (`filename`) as given.
    CheckinSet {
        by: String,
        parts: Vec<(String, Vec<u8>)>,
        major: bool,
    },
    /// Add several files under `folder` (as sent) in one commit: each part
    /// as named, its path under the folder (None: refused), its content.
    Bulk {
        by: String,
        folder: String,
        rev: Option<String>,
        parts: Vec<(String, Option<String>, Vec<u8>)>,
    },
    /// Move or rename a file: `raw_path` as sent, `path` as the server
    /// reads it (None: refused).
    Move {
        by: String,
        id: u64,
        raw_path: String,
        path: Option<String>,
    },
    /// Set a file's description.
    Describe {
        by: String,
        id: u64,
        desc: String,
    },
    /// `LOCK` a file through the drive (open it for editing).
    DavLock {
        by: String,
        id: u64,
        path: String,
    },
    /// `PUT` over a file through the drive (a save), with the caller's
    /// token for the path (a slot) when they have one.
    DavPut {
        by: String,
        id: u64,
        path: String,
        token: Option<usize>,
        content: Vec<u8>,
    },
    /// `UNLOCK` a token (close the file) at the path it was given for.
    DavUnlock {
        by: String,
        slot: usize,
        path: String,
    },
}

fn short(s: &str) -> String {
    clip(s, 48)
}

/// A response body in a failure message.
fn body_text(s: &str) -> String {
    clip(s, 400)
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(max / 2).collect();
        format!("{head:?}…({} chars, {} bytes)", s.chars().count(), s.len())
    }
}

impl Act {
    fn by(&self) -> &str {
        match self {
            Act::AddUser { by, .. }
            | Act::Disable { by, .. }
            | Act::Upload { by, .. }
            | Act::Checkout { by, .. }
            | Act::Cancel { by, .. }
            | Act::Checkin { by, .. }
            | Act::Override { by, .. }
            | Act::Delete { by, .. }
            | Act::LfsLock { by, .. }
            | Act::LfsUnlock { by, .. }
            | Act::Join { by, .. }
            | Act::Leave { by, .. }
            | Act::Decline { by, .. }
            | Act::WatchFile { by, .. }
            | Act::WatchFolder { by, .. }
            | Act::Nudge { by, .. }
            | Act::MarkRead { by, .. }
            | Act::CheckoutSet { by, .. }
            | Act::CancelSet { by, .. }
            | Act::CheckinSet { by, .. }
            | Act::Bulk { by, .. }
            | Act::Move { by, .. }
            | Act::Describe { by, .. }
            | Act::DavLock { by, .. }
            | Act::DavPut { by, .. }
            | Act::DavUnlock { by, .. } => by,
        }
    }

    fn describe(&self) -> String {
        match self {
            Act::AddUser { by, name, admin } => {
                format!(
                    "{by}: add user {name} ({})",
                    if *admin { "admin" } else { "user" }
                )
            }
            Act::Disable { by, name } => format!("{by}: disable {name}"),
            Act::Upload {
                by,
                raw_path,
                desc,
                rev,
                content,
                ..
            } => format!(
                "{by}: upload path={} desc={} rev={rev:?} content={} bytes",
                short(raw_path),
                short(desc),
                content.len()
            ),
            Act::Checkout { by, id, comment } => format!(
                "{by}: check out #{id} comment={}",
                comment
                    .as_deref()
                    .map(short)
                    .unwrap_or_else(|| "none".into())
            ),
            Act::Cancel { by, id } => format!("{by}: cancel #{id}"),
            Act::Checkin {
                by,
                id,
                major,
                content,
            } => format!(
                "{by}: check in #{id} bump={} content={:?}",
                if *major { "major" } else { "minor" },
                String::from_utf8_lossy(content)
            ),
            Act::Override { by, id } => format!("{by}: override #{id}"),
            Act::Delete { by, id } => format!("{by}: delete #{id}"),
            Act::LfsLock { by, path } => format!("{by}: lfs lock {}", short(path)),
            Act::LfsUnlock { by, id, force } => format!("{by}: lfs unlock #{id} force={force}"),
            Act::Join { by, id } => format!("{by}: wait in line for #{id}"),
            Act::Leave { by, id } => format!("{by}: leave the line for #{id}"),
            Act::Decline { by, id } => format!("{by}: decline #{id}"),
            Act::WatchFile { by, id, on } => {
                format!("{by}: {} #{id}", if *on { "watch" } else { "unwatch" })
            }
            Act::WatchFolder { by, raw, on, .. } => format!(
                "{by}: {} folder {raw:?}",
                if *on { "watch" } else { "unwatch" }
            ),
            Act::Nudge { by, id, message } => format!(
                "{by}: ask the holder of #{id} to release it, message={}",
                message
                    .as_deref()
                    .map(short)
                    .unwrap_or_else(|| "none".into())
            ),
            Act::MarkRead { by, all, ids } => {
                format!("{by}: mark read all={all} ids={ids:?}")
            }
            Act::CheckoutSet { by, ids, comment } => format!(
                "{by}: check out the set {} comment={}",
                id_list(ids),
                comment
                    .as_deref()
                    .map(short)
                    .unwrap_or_else(|| "none".into())
            ),
            Act::CancelSet { by, ids } => format!("{by}: cancel the set {}", id_list(ids)),
            Act::CheckinSet { by, parts, major } => {
                let parts: Vec<String> = parts
                    .iter()
                    .map(|(name, c)| format!("{}={:?}", short(name), String::from_utf8_lossy(c)))
                    .collect();
                format!(
                    "{by}: check in the set [{}] bump={}",
                    parts.join(", "),
                    if *major { "major" } else { "minor" }
                )
            }
            Act::Bulk {
                by,
                folder,
                rev,
                parts,
            } => {
                let parts: Vec<String> = parts
                    .iter()
                    .map(|(name, _, c)| format!("{} ({} bytes)", short(name), c.len()))
                    .collect();
                format!(
                    "{by}: bulk upload folder={} rev={rev:?} [{}]",
                    short(folder),
                    parts.join(", ")
                )
            }
            Act::Move {
                by, id, raw_path, ..
            } => {
                format!("{by}: move #{id} to {}", short(raw_path))
            }
            Act::Describe { by, id, desc } => format!("{by}: describe #{id} as {}", short(desc)),
            Act::DavLock { by, id, path } => format!("{by}: LOCK /dav/{} (#{id})", short(path)),
            Act::DavPut {
                by,
                id,
                path,
                token,
                content,
            } => format!(
                "{by}: PUT /dav/{} (#{id}) token={token:?} content={:?}",
                short(path),
                String::from_utf8_lossy(content)
            ),
            Act::DavUnlock { by, slot, path } => {
                format!("{by}: UNLOCK token {slot} at /dav/{}", short(path))
            }
        }
    }
}

fn id_list(ids: &[u64]) -> String {
    if ids.len() > 8 {
        format!("of {} ids from #{}", ids.len(), ids[0])
    } else {
        format!("{ids:?}")
    }
}

#[derive(Clone, Debug)]
struct Outcome {
    status: u16,
    model: Model,
    events: Vec<Ev>,
    /// The holder an LFS unlock's reply must name.
    reply_owner: Option<String>,
    /// A file watch's reply: whether the caller now hears of the file.
    reply_watching: Option<bool>,
    /// A refused change set's `conflicts`: (id, path, owner), in the order asked.
    reply_conflicts: Option<Vec<(u64, String, String)>>,
}

/// Nothing changes; the answer is `status`.
fn same(m: &Model, status: u16) -> Vec<Outcome> {
    changed(status, m.clone(), vec![])
}

/// The answer is `status`, and `model` what the step leaves.
fn changed(status: u16, model: Model, events: Vec<Ev>) -> Vec<Outcome> {
    vec![Outcome {
        status,
        model,
        events,
        reply_owner: None,
        reply_watching: None,
        reply_conflicts: None,
    }]
}

fn parse_rev(raw: &str) -> Option<(u32, u32)> {
    let (a, b) = raw.trim().split_once('.')?;
    let ok = |s: &str| !s.is_empty() && s.len() <= 6 && s.bytes().all(|c| c.is_ascii_digit());
    if !ok(a) || !ok(b) {
        return None;
    }
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Everything the contract allows `act` to do to `m`, with the
/// notifications its events cause.
fn expect(m: &Model, act: &Act) -> Vec<Outcome> {
    expect_lines(m, act)
        .into_iter()
        .map(|mut o| {
            let events = o.events.clone();
            o.model.tell(m, &events);
            o
        })
        .collect()
}

/// Disabled accounts: passed over when a file is handed on.
fn gone_users(m: &Model) -> Vec<String> {
    m.users
        .iter()
        .filter(|u| u.disabled)
        .map(|u| u.name.clone())
        .collect()
}

/// A reservation held by a disabled account ends at the next operation on
/// its file that looks at the line (check-out, Git LFS lock, join, leave,
/// decline): it passes on (`reserved`, or `released` with nobody left, by
/// the disabled holder) before the operation's own rules apply. When the
/// operation is then refused, its transaction — the pass-on included — is
/// rolled back.
fn expect_lines(m: &Model, act: &Act) -> Vec<Outcome> {
    let caller_active = m.user(act.by()).is_some_and(|u| !u.disabled);
    let id = match act {
        Act::Checkout { id, .. }
        | Act::Join { id, .. }
        | Act::Leave { id, .. }
        | Act::Decline { id, .. }
        | Act::DavLock { id, .. } => Some(*id),
        Act::LfsLock { path, .. } => m.files.iter().find(|f| &f.path == path).map(|f| f.id),
        _ => None,
    };
    let gone = gone_users(m);
    let held_by_gone = id
        .and_then(|id| m.file(id))
        .and_then(|f| f.reserved.clone())
        .filter(|r| gone.contains(r));
    let (Some(id), Some(from), true) = (id, held_by_gone, caller_active) else {
        return expect_inner(m, act);
    };
    let mut settled = m.clone();
    let mut pre = Vec::new();
    let f = settled.file_mut(id);
    f.end_lock(&from, &mut pre, &gone);
    if f.reserved.is_none() {
        pre.push(Ev {
            kind: "released",
            file_id: id,
            actor: from.clone(),
            previous: None,
            to: None,
        });
    }
    expect_inner(&settled, act)
        .into_iter()
        .map(|mut o| {
            if o.status / 100 == 2 {
                o.events.splice(0..0, pre.iter().cloned());
                o
            } else {
                Outcome {
                    model: m.clone(),
                    events: vec![],
                    ..o
                }
            }
        })
        .collect()
}

/// Everything the contract allows `act` to do to `m`, its line settled.
fn expect_inner(m: &Model, act: &Act) -> Vec<Outcome> {
    let gone = gone_users(m);
    let same = |status: u16| same(m, status);
    let ev = |kind: &'static str, file_id: u64| Ev {
        kind,
        file_id,
        actor: act.by().to_string(),
        previous: None,
        to: None,
    };
    let overridden = |file_id: u64, previous: &str| Ev {
        previous: Some(previous.to_string()),
        ..ev("overridden", file_id)
    };
    let Some(caller) = m.user(act.by()) else {
        return same(401);
    };
    if caller.disabled {
        return same(401);
    }
    let admin = caller.admin;
    let by = act.by().to_string();
    match act {
        Act::AddUser {
            name,
            admin: as_admin,
            ..
        } => {
            if !admin {
                return same(403);
            }
            if m.user(name).is_some() {
                return same(409);
            }
            let mut next = m.clone();
            next.users.push(MUser {
                name: name.clone(),
                admin: *as_admin,
                disabled: false,
            });
            changed(201, next, vec![])
        }
        Act::Disable { name, .. } => {
            if !admin {
                return same(403);
            }
            let mut next = m.clone();
            match next.users.iter_mut().find(|u| &u.name == name) {
                None => same(404),
                Some(u) => {
                    u.disabled = true;
                    changed(200, next, vec![])
                }
            }
        }
        Act::Upload {
            path,
            desc,
            rev,
            content,
            ..
        } => {
            let rev = match rev.as_deref().map(str::trim) {
                None | Some("") => Some((1, 0)),
                Some(r) => parse_rev(r),
            };
            let desc = desc.trim();
            let (Some(rev), Some(path)) = (rev, path) else {
                return same(422);
            };
            if desc.chars().count() > 2000 || content.is_empty() {
                return same(422);
            }
            let (hard, soft) = m.clash(path);
            if hard {
                return same(409);
            }
            let mut next = m.clone();
            next.files.push(MFile {
                id: NEW_ID,
                path: path.clone(),
                description: desc.to_string(),
                rev,
                lock: None,
                content: content.clone(),
                revisions: vec![rev_string(rev)],
                queue: vec![],
                reserved: None,
            });
            let mut all = changed(201, next, vec![ev("created", NEW_ID)]);
            if soft {
                all.extend(same(409));
            }
            all
        }
        Act::Checkout { id, comment, .. } => {
            let comment = comment.as_deref().map(str::trim).filter(|c| !c.is_empty());
            if comment.is_some_and(|c| c.chars().count() > 500) {
                return same(422);
            }
            let Some(f) = m.file(*id) else {
                return same(404);
            };
            if f.lock.is_some() || f.reserved.as_ref().is_some_and(|r| *r != by) {
                return same(409);
            }
            let mut next = m.clone();
            let g = next.file_mut(*id);
            // Taking the file ends its reservation and the taker's wait.
            g.reserved = None;
            g.queue.retain(|q| *q != by);
            g.lock = Some(MLock {
                owner: by,
                comment: comment.map(String::from),
                ..MLock::default()
            });
            changed(200, next, vec![ev("locked", *id)])
        }
        Act::Cancel { id, .. } => {
            let Some(f) = m.file(*id) else {
                return same(404);
            };
            match &f.lock {
                None => same(409),
                Some(l) if l.owner != by => same(403),
                Some(_) => {
                    let mut next = m.clone();
                    let mut events = vec![ev("unlocked", *id)];
                    next.file_mut(*id).end_lock(&by, &mut events, &gone);
                    changed(200, next, events)
                }
            }
        }
        Act::Checkin {
            id, major, content, ..
        } => {
            let Some(f) = m.file(*id) else {
                return same(404);
            };
            match &f.lock {
                None => return same(409),
                Some(l) if l.owner != by => return same(403),
                Some(_) => {}
            }
            if content.is_empty() || *content == f.content {
                return same(422);
            }
            let (a, b) = f.rev;
            let rev = if *major { (a + 1, 0) } else { (a, b + 1) };
            if rev.0 > MAX_PART || rev.1 > MAX_PART {
                return same(422);
            }
            let mut next = m.clone();
            let g = next.file_mut(*id);
            g.rev = rev;
            g.content = content.clone();
            g.revisions.push(rev_string(rev));
            let mut events = vec![ev("checked_in", *id)];
            g.end_lock(&by, &mut events, &gone);
            changed(200, next, events)
        }
        Act::Override { id, .. } => {
            if !admin {
                return same(403);
            }
            let Some(f) = m.file(*id) else {
                return same(404);
            };
            let Some(lock) = &f.lock else {
                return same(409);
            };
            let mut next = m.clone();
            let mut events = vec![overridden(*id, &lock.owner)];
            next.file_mut(*id).end_lock(&by, &mut events, &gone);
            changed(200, next, events)
        }
        Act::Delete { id, .. } => {
            if !admin {
                return same(403);
            }
            let Some(f) = m.file(*id) else {
                return same(404);
            };
            if f.lock.is_some() {
                return same(409);
            }
            let mut next = m.clone();
            next.files.retain(|g| g.id != *id);
            changed(204, next, vec![ev("deleted", *id)])
        }
        Act::LfsLock { path, .. } => {
            let Some(f) = m.files.iter().find(|f| &f.path == path) else {
                return same(404);
            };
            if f.lock.is_some() || f.reserved.as_ref().is_some_and(|r| *r != by) {
                return same(409);
            }
            let id = f.id;
            let mut next = m.clone();
            let g = next.file_mut(id);
            g.reserved = None;
            g.queue.retain(|q| *q != by);
            g.lock = Some(MLock {
                owner: by,
                comment: Some(LFS_COMMENT.into()),
                ..MLock::default()
            });
            changed(201, next, vec![ev("locked", id)])
        }
        Act::LfsUnlock { id, force, .. } => {
            let Some(f) = m.file(*id) else {
                return same(404);
            };
            let Some(lock) = &f.lock else {
                return same(404);
            };
            let event = if lock.owner == by {
                ev("unlocked", *id)
            } else if !force || !admin {
                return same(403);
            } else {
                overridden(*id, &lock.owner)
            };
            let mut next = m.clone();
            let mut events = vec![event];
            next.file_mut(*id).end_lock(&by, &mut events, &gone);
            let mut done = changed(200, next, events);
            done[0].reply_owner = Some(lock.owner.clone());
            done
        }
        Act::Join { id, .. } => {
            let Some(f) = m.file(*id) else {
                return same(404);
            };
            let holds = f.lock.as_ref().is_some_and(|l| l.owner == by);
            let theirs = f.reserved.as_ref() == Some(&by);
            let free = f.lock.is_none() && f.reserved.is_none();
            if holds || theirs || free || f.queue.contains(&by) {
                return same(409);
            }
            let mut next = m.clone();
            next.file_mut(*id).queue.push(by);
            changed(200, next, vec![ev("queued", *id)])
        }
        Act::Leave { id, .. } => {
            let Some(f) = m.file(*id) else {
                return same(404);
            };
            if !f.queue.contains(&by) {
                return same(409);
            }
            let mut next = m.clone();
            next.file_mut(*id).queue.retain(|q| *q != by);
            changed(200, next, vec![ev("dequeued", *id)])
        }
        Act::Decline { id, .. } => {
            let Some(f) = m.file(*id) else {
                return same(404);
            };
            // The one it is reserved for declines; an admin may pass on anyone's.
            if f.reserved.is_none() || (f.reserved.as_ref() != Some(&by) && !admin) {
                return same(409);
            }
            let mut next = m.clone();
            let g = next.file_mut(*id);
            let mut events = vec![];
            g.end_lock(&by, &mut events, &gone);
            if g.reserved.is_none() {
                events.push(ev("released", *id));
            }
            changed(200, next, events)
        }
        Act::WatchFile { id, on, .. } => {
            let Some(f) = m.file(*id) else {
                return same(404);
            };
            let mut next = m.clone();
            let what = (by.clone(), MWatch::File(*id));
            if *on {
                next.watches.insert(what);
            } else {
                next.watches.remove(&what);
            }
            let watching = next.watching(&by, *id, &f.path);
            let mut done = changed(200, next, vec![]);
            done[0].reply_watching = Some(watching);
            done
        }
        Act::WatchFolder { folder, on, .. } => {
            let Some(folder) = folder else {
                return same(422);
            };
            let mut next = m.clone();
            let what = (by, MWatch::Folder(folder.clone()));
            if *on {
                next.watches.insert(what);
            } else {
                next.watches.remove(&what);
            }
            changed(200, next, vec![])
        }
        Act::Nudge { id, message, .. } => {
            if message.as_ref().is_some_and(|t| t.chars().count() > 500) {
                return same(422);
            }
            let Some(f) = m.file(*id) else {
                return same(404);
            };
            let Some(lock) = &f.lock else {
                return same(409);
            };
            if lock.owner == by {
                return same(409);
            }
            if m.user(&lock.owner).is_none_or(|u| u.disabled) {
                return same(409);
            }
            if m.nudged.contains(&(by.clone(), *id, lock.owner.clone())) {
                return same(429);
            }
            let mut next = m.clone();
            next.nudged.insert((by.clone(), *id, lock.owner.clone()));
            next.notify(&lock.owner, "nudged", *id, &by);
            changed(204, next, vec![])
        }
        Act::MarkRead { all, ids, .. } => {
            if !*all && ids.is_none() {
                return same(422);
            }
            let mut next = m.clone();
            if let Some(inbox) = next.inbox.get_mut(&by) {
                for n in inbox.iter_mut() {
                    if *all || ids.as_ref().is_some_and(|ids| ids.contains(&n.id)) {
                        n.read = true;
                    }
                }
            }
            changed(204, next, vec![])
        }
        Act::CheckoutSet { ids, comment, .. } => {
            many::checkout_set(m, &by, ids, comment.as_deref(), &gone)
        }
        Act::CancelSet { ids, .. } => many::cancel_set(m, &by, ids, &gone),
        Act::CheckinSet { parts, major, .. } => many::checkin_set(m, &by, parts, *major, &gone),
        Act::Bulk { rev, parts, .. } => many::bulk(m, &by, rev.as_deref(), parts),
        Act::Move { id, path, .. } => many::move_file(m, &by, admin, *id, path.as_deref()),
        Act::Describe { id, desc, .. } => many::describe(m, &by, admin, *id, desc),
        Act::DavLock { id, path, .. } => drive::lock(m, &by, *id, path),
        Act::DavPut {
            id, path, content, ..
        } => drive::put(m, &by, *id, path, content),
        Act::DavUnlock { slot, .. } => drive::unlock(m, &by, *slot),
    }
}

// -------------------------------------------------------------- generator

/// When a SIGKILL follows the request it cuts short.
#[derive(Clone, Copy, Debug)]
enum Delay {
    Ms(u64),
    /// This many thousandths of the time the same operation last took to
    /// succeed in this run: a change of several files takes milliseconds,
    /// and the kill should land anywhere inside it, between its Git
    /// commit and its database commit too.
    PerMille(u64),
}

enum Step {
    One(Act),
    /// Two requests sent at once.
    Together(Vec<Act>),
    Restart,
    /// SIGKILL, with a request in flight or not, after `Delay`.
    Kill(Option<Act>, Delay),
}

struct Gen {
    rng: Rng,
    /// Kinds of input left out (`LATCH_MODEL_AVOID`), to look past a known bug.
    avoid: Vec<String>,
    serial: u32,
    users_made: u32,
    /// Percent of steps that are a SIGKILL (`LATCH_MODEL_KILLS`, 4 unless set).
    kills: u64,
}

const GIT_SPELLINGS: &[&str] = &[
    ".git/x{n}",
    ".GIT/config",
    ".Git/hooks/post-{n}",
    ".git::$INDEX_ALLOCATION/x{n}",
    ".GIT::$INDEX_ALLOCATION",
    "d{n}/.git::$INDEX_ALLOCATION/y",
    "git~1/x{n}",
    "GIT~1/config",
    ".git~2/x{n}",
];

const OTHER_BAD_PATHS: &[&str] = &[
    "../x{n}",
    "/abs{n}.bin",
    "a\\b{n}",
    "/",
    "a/ b{n}",
    "d{n}/x.",
    "C:/x{n}",
];

impl Gen {
    fn n(&mut self) -> u32 {
        self.serial += 1;
        self.serial
    }

    fn content(&mut self, tag: &str) -> Vec<u8> {
        let n = self.n();
        format!("{tag} content {n}").into_bytes()
    }

    fn enabled_users<'a>(&self, m: &'a Model) -> Vec<&'a MUser> {
        m.users.iter().filter(|u| !u.disabled).collect()
    }

    /// Mostly enabled users; now and then a disabled one (who must get 401).
    fn any_user(&mut self, m: &Model) -> String {
        let enabled = self.enabled_users(m);
        if enabled.is_empty() || (self.rng.chance(4) && m.users.iter().any(|u| u.disabled)) {
            let disabled: Vec<&MUser> = m.users.iter().filter(|u| u.disabled).collect();
            if !disabled.is_empty() {
                return self.rng.pick(&disabled).name.clone();
            }
        }
        self.rng.pick(&enabled).name.clone()
    }

    fn admin_user(&mut self, m: &Model) -> String {
        let admins: Vec<&MUser> = m.users.iter().filter(|u| u.admin && !u.disabled).collect();
        self.rng.pick(&admins).name.clone()
    }

    /// An existing file's id, or now and then one that does not exist.
    fn file_id(&mut self, m: &Model) -> u64 {
        if m.files.is_empty() || self.rng.chance(4) {
            return m.max_id + 1 + self.rng.below(3);
        }
        self.rng.pick(&m.files).id
    }

    /// The holder of `id` most of the time, anyone otherwise.
    fn holder_or_any(&mut self, m: &Model, id: u64) -> String {
        match m.file(id).and_then(|f| f.lock.as_ref()) {
            Some(l) if self.rng.chance(75) => l.owner.clone(),
            _ => self.any_user(m),
        }
    }

    /// Someone the file's line concerns, or anyone: the holder, the one it
    /// is reserved for, someone waiting, or (otherwise) any user at all.
    fn involved_or_any(&mut self, m: &Model, id: u64) -> String {
        let mut involved: Vec<String> = Vec::new();
        if let Some(f) = m.file(id) {
            involved.extend(f.lock.iter().map(|l| l.owner.clone()));
            involved.extend(f.reserved.iter().cloned());
            involved.extend(f.queue.iter().cloned());
        }
        if involved.is_empty() || self.rng.chance(35) {
            self.any_user(m)
        } else {
            self.rng.pick(&involved).clone()
        }
    }

    /// Mostly a file someone holds or that is reserved: where waiting in
    /// line means something.
    fn busy_file_id(&mut self, m: &Model) -> u64 {
        let busy: Vec<u64> = m
            .files
            .iter()
            .filter(|f| f.lock.is_some() || f.reserved.is_some())
            .map(|f| f.id)
            .collect();
        if busy.is_empty() || self.rng.chance(20) {
            self.file_id(m)
        } else {
            *self.rng.pick(&busy)
        }
    }

    /// Joining, leaving or declining, by people in and out of the line.
    fn queue_op(&mut self, m: &Model) -> Act {
        let id = self.busy_file_id(m);
        match self.rng.below(100) {
            0..=54 => Act::Join {
                by: if self.rng.chance(70) {
                    self.any_user(m)
                } else {
                    self.involved_or_any(m, id)
                },
                id,
            },
            55..=74 => Act::Leave {
                by: self.involved_or_any(m, id),
                id,
            },
            _ => {
                let by = match m.file(id).and_then(|f| f.reserved.clone()) {
                    Some(r) if self.rng.chance(70) => r,
                    _ => self.involved_or_any(m, id),
                };
                Act::Decline { by, id }
            }
        }
    }

    /// Mostly the one a file is reserved for, when it is; anyone otherwise.
    fn claimant_or_any(&mut self, m: &Model, id: u64) -> String {
        match m.file(id).and_then(|f| f.reserved.clone()) {
            Some(r) if self.rng.chance(60) => r,
            _ => self.any_user(m),
        }
    }

    fn avoids(&self, what: &str) -> bool {
        self.avoid.iter().any(|a| a == what)
    }

    fn path(&mut self, m: &Model) -> (String, Option<String>) {
        let n = self.n();
        let existing = (!m.files.is_empty()).then(|| self.rng.pick(&m.files).path.clone());
        let mut kind = self.rng.below(20);
        let avoided = match kind {
            9 | 13 => self.avoids("case"),
            10 | 11 => self.avoids("clash"),
            14 | 15 => self.avoids("git"),
            _ => false,
        };
        if avoided {
            kind = 0;
        }
        // Built from an existing name, a path can outgrow the limits: then
        // the edge refuses it (422) before any clash is looked at.
        let valid = |p: String| {
            let fits = p.len() <= 255 && p.split('/').count() <= 32;
            (p.clone(), fits.then_some(p))
        };
        match (kind, existing) {
            (0..=2, _) => valid(format!("f{n}.bin")),
            (3, _) => valid(format!("parts/p{n}.mcam")),
            (4, _) => valid(format!("d{}/e{}/g{n}.txt", n % 3, n % 2)),
            (5, _) => {
                let p =
                    *self
                        .rng
                        .pick(&["Ünïcødé/файл {n}.txt", "日本/図面{n}.dwg", "emoji/🔧{n}.nc"]);
                valid(p.replace("{n}", &n.to_string()))
            }
            (6, _) => {
                // Exactly 255 bytes: the longest path allowed; now and then in two-byte letters.
                let tail = format!("{n}.bin");
                let room = 255 - "long/".len() - tail.len();
                let fill = if self.rng.chance(50) {
                    "é".repeat(room / 2) + &"a".repeat(room % 2)
                } else {
                    "a".repeat(room)
                };
                valid(format!("long/{fill}{tail}"))
            }
            (7, _) => {
                // 256 bytes: one too many.
                let tail = format!("{n}.bin");
                let fill = "é".repeat((256 - "long/".len() - tail.len()) / 2);
                let mut p = format!("long/{fill}{tail}");
                while p.len() < 256 {
                    p.insert(5, 'a');
                }
                (p, None)
            }
            (8, Some(e)) => valid(e),
            (9, Some(e)) => {
                let upper = e.to_ascii_uppercase();
                let variant = if upper != e {
                    upper
                } else {
                    e.to_ascii_lowercase()
                };
                valid(variant)
            }
            (10, Some(e)) => match e.rsplit_once('/') {
                Some((folder, _)) => valid(folder.to_string()),
                None => valid(format!("{e}/under{n}.bin")),
            },
            (11, Some(e)) => valid(format!("{e}/x{n}.bin")),
            (12, Some(e)) => match e.rsplit_once('/') {
                Some((folder, _)) => valid(format!("{folder}/s{n}.bin")),
                None => valid(format!("s{n}.bin")),
            },
            (13, Some(e)) => match e.rsplit_once('/') {
                Some((folder, _)) => valid(format!("{}/c{n}.bin", folder.to_ascii_uppercase())),
                None => valid(format!("{}/c{n}.bin", e.to_ascii_uppercase())),
            },
            (14 | 15, _) => {
                let p = self.rng.pick(GIT_SPELLINGS).replace("{n}", &n.to_string());
                (p, None)
            }
            (16, _) => (format!("./n{n}//x.txt/"), Some(format!("n{n}/x.txt"))),
            (17, _) => (format!("  sp{n}.txt  "), Some(format!("sp{n}.txt"))),
            (18, _) => {
                let p = self
                    .rng
                    .pick(OTHER_BAD_PATHS)
                    .replace("{n}", &n.to_string());
                (p, None)
            }
            _ => valid(format!("misc/m{n}.dat")),
        }
    }

    fn description(&mut self) -> String {
        match self.rng.below(8) {
            0 => "x".repeat(2000),
            1 => "y".repeat(2001),
            2 => "multi\nline\twith tab".into(),
            3 => "ünïcødé ✓ 図面".into(),
            4 => "  padded  ".into(),
            5 => "a short note".into(),
            _ => String::new(),
        }
    }

    fn revision(&mut self) -> Option<String> {
        if self.avoids("revision") {
            return None;
        }
        let all = [
            "999999.999999",
            "1.999999",
            "999999.0",
            "999998.999999",
            "0.0",
            "01.5",
            "1000000.0",
            "1.1234567",
            "abc",
            "2.3",
        ];
        if self.rng.chance(40) {
            None
        } else {
            Some(self.rng.pick(&all).to_string())
        }
    }

    fn comment(&mut self) -> Option<String> {
        match self.rng.below(8) {
            0 => Some(String::new()),
            1 => Some("   ".into()),
            2 => Some("é".repeat(500)),
            3 => Some("é".repeat(501)),
            4 => Some("working on the fixture ✓".into()),
            _ => None,
        }
    }

    fn upload(&mut self, m: &Model) -> Act {
        let (raw_path, path) = self.path(m);
        let empty = self.rng.chance(3);
        Act::Upload {
            by: self.any_user(m),
            raw_path,
            path,
            desc: self.description(),
            rev: self.revision(),
            content: if empty {
                vec![]
            } else {
                self.content("upload")
            },
        }
    }

    fn checkin(&mut self, m: &Model, id: u64) -> Act {
        let by = self.holder_or_any(m, id);
        let content = match m.file(id) {
            Some(f) if self.rng.chance(15) => f.content.clone(),
            _ => self.content("checkin"),
        };
        Act::Checkin {
            by,
            id,
            major: self.rng.chance(50),
            content,
        }
    }

    /// A folder to watch: as sent, and as the server keeps it (None:
    /// refused). Mostly a folder of an existing file, spelled with or
    /// without slashes; the whole vault; one with no file (yet); one in
    /// other letter case (a different folder); names no path may have.
    fn folder(&mut self, m: &Model) -> (String, Option<String>) {
        let n = self.n();
        let folders: Vec<String> = m
            .files
            .iter()
            .flat_map(|f| {
                f.path
                    .match_indices('/')
                    .map(|(end, _)| f.path[..end].to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        let kind = self.rng.below(10);
        match kind {
            0..=4 if !folders.is_empty() => {
                let f = self.rng.pick(&folders).clone();
                let raw = match self.rng.below(4) {
                    0 => f.clone(),
                    1 => format!("{f}/"),
                    2 => format!("/{f}/"),
                    _ => format!("  {f}/ "),
                };
                (raw, Some(f))
            }
            5 if !folders.is_empty() => {
                let f = self.rng.pick(&folders).clone();
                let upper = f.to_ascii_uppercase();
                let other = if upper != f { upper } else { format!("{f}x") };
                (other.clone(), Some(other))
            }
            6 | 7 => {
                let raw = *self.rng.pick(&["/", " / ", "//", "", "  "]);
                // No name at all is no folder (422); "/" is the whole vault.
                let folder = (!raw.trim().is_empty()).then(String::new);
                (raw.to_string(), folder)
            }
            8 => (format!("d{}/", n % 3), Some(format!("d{}", n % 3))),
            _ => {
                let raw = *self.rng.pick(&[".git", "../x", "a\\b", ".GIT/hooks"]);
                (raw.to_string(), None)
            }
        }
    }

    fn message(&mut self) -> Option<String> {
        match self.rng.below(6) {
            0 => Some(String::new()),
            1 => Some("é".repeat(500)),
            2 => Some("é".repeat(501)),
            3 => Some("I need it for the release ✓".into()),
            _ => None,
        }
    }

    /// Watching, asking to release, marking read.
    fn notice_op(&mut self, m: &Model) -> Act {
        match self.rng.below(100) {
            0..=29 => Act::WatchFile {
                by: self.any_user(m),
                id: self.file_id(m),
                on: self.rng.chance(75),
            },
            30..=49 => {
                let (raw, folder) = self.folder(m);
                Act::WatchFolder {
                    by: self.any_user(m),
                    raw,
                    folder,
                    on: self.rng.chance(70),
                }
            }
            50..=79 => {
                let asked: Vec<(String, u64)> = m
                    .nudged
                    .iter()
                    .map(|(by, id, _)| (by.clone(), *id))
                    .collect();
                if !asked.is_empty() && self.rng.chance(35) {
                    // The same asker about the same file again: 429 while
                    // the same holder has it.
                    let (by, id) = self.rng.pick(&asked).clone();
                    return Act::Nudge {
                        by,
                        id,
                        message: None,
                    };
                }
                let locked: Vec<u64> = m
                    .files
                    .iter()
                    .filter(|f| f.lock.is_some())
                    .map(|f| f.id)
                    .collect();
                let id = if locked.is_empty() || self.rng.chance(20) {
                    self.file_id(m)
                } else {
                    *self.rng.pick(&locked)
                };
                let holder = m.file(id).and_then(|f| f.lock.as_ref()).map(|l| &l.owner);
                let others: Vec<String> = self
                    .enabled_users(m)
                    .into_iter()
                    .filter(|u| Some(&u.name) != holder)
                    .map(|u| u.name.clone())
                    .collect();
                let by = if others.is_empty() || self.rng.chance(20) {
                    self.holder_or_any(m, id)
                } else {
                    self.rng.pick(&others).clone()
                };
                Act::Nudge {
                    by,
                    id,
                    message: self.message(),
                }
            }
            _ => {
                let by = self.any_user(m);
                let mine: Vec<u64> = m
                    .inbox
                    .get(&by)
                    .map(|i| i.iter().map(|n| n.id).collect())
                    .unwrap_or_default();
                match self.rng.below(10) {
                    0..=2 => Act::MarkRead {
                        by,
                        all: true,
                        ids: None,
                    },
                    3 => Act::MarkRead {
                        by,
                        all: false,
                        ids: None,
                    },
                    _ => {
                        let mut ids = Vec::new();
                        for _ in 0..self.rng.below(3) + 1 {
                            if !mine.is_empty() && self.rng.chance(80) {
                                ids.push(*self.rng.pick(&mine));
                            } else {
                                // Someone else's, or none at all: ignored.
                                ids.push(self.rng.below(m.notes_made + 3) + 1);
                            }
                        }
                        Act::MarkRead {
                            by,
                            all: false,
                            ids: Some(ids),
                        }
                    }
                }
            }
        }
    }

    /// One file operation on the current model.
    fn file_op(&mut self, m: &Model) -> Act {
        if self.rng.chance(20) {
            return self.many_op(m);
        }
        if self.rng.chance(22) {
            return self.dav_op(m);
        }
        if self.rng.chance(22) {
            return self.notice_op(m);
        }
        if !m.files.is_empty() && self.rng.chance(35) {
            return self.queue_op(m);
        }
        let id = self.file_id(m);
        match self.rng.below(100) {
            0..=29 => self.upload(m),
            30..=47 => Act::Checkout {
                by: self.claimant_or_any(m, id),
                id,
                comment: self.comment(),
            },
            48..=55 => Act::Cancel {
                by: self.holder_or_any(m, id),
                id,
            },
            56..=73 => self.checkin(m, id),
            74..=79 => {
                let by = if self.rng.chance(75) {
                    self.admin_user(m)
                } else {
                    self.any_user(m)
                };
                Act::Override { by, id }
            }
            80..=85 => {
                let by = if self.rng.chance(75) {
                    self.admin_user(m)
                } else {
                    self.any_user(m)
                };
                Act::Delete { by, id }
            }
            86..=92 => {
                let n = self.n();
                let path = match m.file(id) {
                    Some(f) if !self.rng.chance(15) => f.path.clone(),
                    _ => format!("nope{n}.bin"),
                };
                Act::LfsLock {
                    by: self.claimant_or_any(m, id),
                    path,
                }
            }
            _ => {
                let by = if self.rng.chance(40) {
                    self.admin_user(m)
                } else {
                    self.holder_or_any(m, id)
                };
                Act::LfsUnlock {
                    by,
                    id,
                    force: self.rng.chance(60),
                }
            }
        }
    }

    /// Requests at once at the moment a reservation moves, or on one line.
    fn queue_pair(&mut self, m: &Model) -> Step {
        let enabled = self.enabled_users(m);
        let a = self.rng.pick(&enabled).name.clone();
        let b = self.rng.pick(&enabled).name.clone();
        let admin = self.admin_user(m);
        let busy: Vec<&MFile> = m
            .files
            .iter()
            .filter(|f| f.lock.is_some() || f.reserved.is_some())
            .collect();
        if busy.is_empty() || self.rng.chance(10) {
            let id = self.rng.pick(&m.files).id;
            return if self.rng.chance(50) {
                // One user joining twice at once: one of them waits.
                Step::Together(vec![
                    Act::Join { by: a.clone(), id },
                    Act::Join { by: a, id },
                ])
            } else {
                Step::Together(vec![
                    Act::Join { by: a, id },
                    Act::Checkout {
                        by: b,
                        id,
                        comment: None,
                    },
                ])
            };
        }
        let f = (*self.rng.pick(&busy)).clone();
        let id = f.id;
        let first = f.queue.first().cloned().unwrap_or_else(|| b.clone());
        let take = |by: String| Act::Checkout {
            by,
            id,
            comment: None,
        };
        match (&f.lock, &f.reserved) {
            (None, Some(r)) => {
                let r = r.clone();
                match self.rng.below(7) {
                    // Deleting a reserved file drops its line and reservation.
                    5 => Step::Together(vec![
                        Act::Delete { by: admin, id },
                        Act::Decline { by: r, id },
                        Act::Join { by: a, id },
                    ]),
                    // The next in line takes it as it is declined to them.
                    0 | 1 => Step::Together(vec![Act::Decline { by: r, id }, take(first)]),
                    2 => Step::Together(vec![Act::Decline { by: r.clone(), id }, take(r)]),
                    3 => Step::Together(vec![take(r), Act::Join { by: a, id }]),
                    4 => Step::Together(vec![Act::Decline { by: r, id }, Act::Join { by: a, id }]),
                    _ => Step::Together(vec![
                        take(r),
                        Act::Leave { by: first, id },
                        Act::LfsLock {
                            by: b,
                            path: f.path.clone(),
                        },
                    ]),
                }
            }
            (Some(l), _) => {
                let h = l.owner.clone();
                match self.rng.below(5) {
                    0 => Step::Together(vec![Act::Cancel { by: h, id }, Act::Join { by: a, id }]),
                    1 => Step::Together(vec![
                        self.checkin_by(&h, id, &f),
                        Act::Leave { by: first, id },
                    ]),
                    // The first in line tries to take it as it is let go.
                    2 => Step::Together(vec![Act::Cancel { by: h, id }, take(first)]),
                    3 => Step::Together(vec![
                        Act::Override { by: admin, id },
                        Act::Join { by: a, id },
                        Act::Leave { by: first, id },
                    ]),
                    _ => Step::Together(vec![
                        Act::LfsUnlock {
                            by: h,
                            id,
                            force: false,
                        },
                        Act::Decline {
                            by: first.clone(),
                            id,
                        },
                        take(first),
                    ]),
                }
            }
            (None, None) => Step::Together(vec![Act::Join { by: a, id }, take(b)]),
        }
    }

    /// An ask to release as the lock ends, a watch as the file goes.
    fn notice_pair(&mut self, m: &Model) -> Step {
        let enabled = self.enabled_users(m);
        let a = self.rng.pick(&enabled).name.clone();
        let admin = self.admin_user(m);
        let f = self.rng.pick(&m.files).clone();
        let id = f.id;
        match &f.lock {
            // The same ask twice at once: one gets through, one hears 429.
            Some(l) if l.owner != a && self.rng.chance(30) => {
                let ask = Act::Nudge {
                    by: a,
                    id,
                    message: None,
                };
                Step::Together(vec![ask.clone(), ask])
            }
            Some(l) if self.rng.chance(60) => Step::Together(vec![
                Act::Nudge {
                    by: a,
                    id,
                    message: None,
                },
                Act::Cancel {
                    by: l.owner.clone(),
                    id,
                },
            ]),
            _ => Step::Together(vec![
                Act::WatchFile {
                    by: a,
                    id,
                    on: true,
                },
                Act::Delete { by: admin, id },
            ]),
        }
    }

    /// Two users who want the same thing at once.
    fn pair(&mut self, m: &Model) -> Step {
        if !m.files.is_empty() && self.rng.chance(15) {
            return self.many_pair(m);
        }
        if !m.files.is_empty() && self.rng.chance(12) {
            return self.notice_pair(m);
        }
        if !m.files.is_empty() && self.rng.chance(45) {
            return self.queue_pair(m);
        }
        let enabled = self.enabled_users(m);
        let a = self.rng.pick(&enabled).name.clone();
        let b = self.rng.pick(&enabled).name.clone();
        let admin = self.admin_user(m);
        if m.files.is_empty() || self.rng.chance(15) {
            // Two uploads of one new path.
            let n = self.n();
            let path = format!("race/r{n}.bin");
            let up = |by: String, content: Vec<u8>| Act::Upload {
                by,
                raw_path: path.clone(),
                path: Some(path.clone()),
                desc: String::new(),
                rev: None,
                content,
            };
            let (ca, cb) = (self.content("race"), self.content("race"));
            return Step::Together(vec![up(a, ca), up(b, cb)]);
        }
        let f = self.rng.pick(&m.files).clone();
        let id = f.id;
        match &f.lock {
            Some(l) => match self.rng.below(5) {
                4 => {
                    // The forced unlock names the holder it read; by the
                    // time it acts, the holder may have let go and someone
                    // else taken the file.
                    let other = self.rng.pick(&enabled).name.clone();
                    Step::Together(vec![
                        Act::LfsUnlock {
                            by: admin,
                            id,
                            force: true,
                        },
                        Act::Cancel {
                            by: l.owner.clone(),
                            id,
                        },
                        Act::Checkout {
                            by: other,
                            id,
                            comment: None,
                        },
                    ])
                }
                0 => Step::Together(vec![
                    self.checkin_by(&l.owner, id, &f),
                    Act::Override { by: admin, id },
                ]),
                1 => Step::Together(vec![
                    Act::Cancel {
                        by: l.owner.clone(),
                        id,
                    },
                    Act::LfsUnlock {
                        by: admin,
                        id,
                        force: true,
                    },
                ]),
                2 => {
                    let other = self.admin_user(m);
                    Step::Together(vec![
                        Act::Override { by: admin, id },
                        Act::LfsUnlock {
                            by: other,
                            id,
                            force: true,
                        },
                    ])
                }
                _ => Step::Together(vec![
                    self.checkin_by(&l.owner, id, &f),
                    Act::Cancel {
                        by: l.owner.clone(),
                        id,
                    },
                ]),
            },
            None => match self.rng.below(3) {
                0 => Step::Together(vec![
                    Act::Checkout {
                        by: a,
                        id,
                        comment: None,
                    },
                    Act::Checkout {
                        by: b,
                        id,
                        comment: Some("mine".into()),
                    },
                ]),
                1 => Step::Together(vec![
                    Act::LfsLock {
                        by: a,
                        path: f.path.clone(),
                    },
                    Act::Checkout {
                        by: b,
                        id,
                        comment: None,
                    },
                ]),
                _ => Step::Together(vec![
                    Act::Delete { by: admin, id },
                    Act::Checkout {
                        by: a,
                        id,
                        comment: None,
                    },
                ]),
            },
        }
    }

    fn checkin_by(&mut self, by: &str, id: u64, f: &MFile) -> Act {
        let content = if self.rng.chance(10) {
            f.content.clone()
        } else {
            self.content("checkin")
        };
        Act::Checkin {
            by: by.to_string(),
            id,
            major: self.rng.chance(50),
            content,
        }
    }

    fn step(&mut self, m: &Model) -> Step {
        let few_users = m.users.len() < 4;
        let roll = self.rng.below(100);
        if few_users && self.rng.chance(50) || roll < 4 {
            let by = if self.rng.chance(85) {
                self.admin_user(m)
            } else {
                self.any_user(m)
            };
            let dup = self.rng.chance(10) && m.users.len() > 1;
            let name = if dup {
                self.rng.pick(&m.users).name.clone()
            } else {
                self.users_made += 1;
                format!("user{}", self.users_made)
            };
            return Step::One(Act::AddUser {
                by,
                name,
                admin: self.rng.chance(25),
            });
        }
        // Someone with a file open through the drive saves or closes it now
        // and then, whatever else goes on.
        if self.rng.chance(12)
            && let Some(act) = self.dav_session_op(m)
        {
            return Step::One(act);
        }
        if self.rng.below(100) < self.kills {
            // Half the kills in flight hit a change of several files (or a
            // move): all of it or none must survive, never part. Those
            // take a few milliseconds, so the kill comes within that time.
            return match self.rng.below(10) {
                0..=1 => Step::Kill(None, Delay::Ms(0)),
                // A save or a close through the drive cut short.
                2 => match self.dav_session_op(m) {
                    Some(act) => Step::Kill(Some(act), Delay::Ms(self.rng.below(15))),
                    None => Step::Kill(None, Delay::Ms(0)),
                },
                3..=6 => Step::Kill(Some(self.many_op(m)), Delay::PerMille(self.rng.below(1200))),
                _ => match self.file_op(m) {
                    // A LOCK cut short leaves a token the harness never
                    // learnt, which the model could not follow.
                    Act::DavLock { .. } => Step::Kill(None, Delay::Ms(0)),
                    act => Step::Kill(Some(act), Delay::Ms(self.rng.below(30))),
                },
            };
        }
        match roll {
            4..=5 => {
                let candidates: Vec<&MUser> = m
                    .users
                    .iter()
                    .filter(|u| u.name != "admin" && !u.disabled)
                    .collect();
                if candidates.is_empty() {
                    return Step::One(self.file_op(m));
                }
                let name = self.rng.pick(&candidates).name.clone();
                let by = if self.rng.chance(80) {
                    self.admin_user(m)
                } else {
                    self.any_user(m)
                };
                Step::One(Act::Disable { by, name })
            }
            6..=7 => Step::Restart,
            8..=18 => self.pair(m),
            _ => Step::One(self.file_op(m)),
        }
    }
}

// ----------------------------------------------------------------- driver

/// The result of one sequence.
pub struct Run {
    pub trace: Vec<String>,
    pub failure: Option<String>,
    pub log_tail: String,
    pub restarts: usize,
    pub kills: usize,
    /// Whether the sequence stopped before its last step, to stay inside
    /// the hand-off window (`WINDOW_MARGIN`).
    pub cut_short: bool,
    /// Events seen of each kind, operations and their answers, to show
    /// what a sequence exercised.
    pub seen: BTreeMap<String, usize>,
}

struct Harness {
    _dir: tempfile::TempDir,
    data: PathBuf,
    log: PathBuf,
    server: Option<Server>,
    http: reqwest::Client,
    /// The admin's browser session, for the dashboard.
    web: reqwest::Client,
    tokens: HashMap<String, String>,
    since: u64,
    /// How long each kind of change of several files last took to succeed.
    took: HashMap<&'static str, Duration>,
    /// The WebDAV lock tokens the server gave, by the model's slot.
    dav_tokens: Vec<String>,
}

/// What the server showed on every read surface.
#[derive(Debug, Default)]
struct Observed {
    files: Vec<Value>,
    cards: Vec<Card>,
    /// id, path, owner
    locks: Vec<(u64, String, String)>,
    tree: BTreeSet<String>,
    /// Newest first.
    histories: BTreeMap<u64, Vec<String>>,
    /// Each user's inbox (None: the server refused them, 401).
    inboxes: BTreeMap<String, Option<Inbox>>,
    /// The admin's unread notifications (`?unread=true`), newest first.
    admin_unread: Vec<SeenNote>,
    /// What each user watches: (file ids, folders as `parts/` or `/`).
    watches: BTreeMap<String, Option<WatchList>>,
    /// Each checked-out file as its holder reads it through the drive
    /// (their draft, else the current version); None: refused (401).
    drive: BTreeMap<u64, Option<Vec<u8>>>,
}

/// What someone watches: file ids, and folders as `parts/` (`/`: the whole vault).
type WatchList = (Vec<u64>, Vec<String>);

/// A notification as `/api/notifications` lists it: id, kind, file, actor, read.
type SeenNote = (u64, String, u64, String, bool);

#[derive(Debug, Clone, PartialEq)]
struct Inbox {
    unread: u64,
    /// Newest first.
    notes: Vec<SeenNote>,
}

fn seen_notes(v: &Value) -> Result<Vec<SeenNote>, Fail> {
    Ok(v["notifications"]
        .as_array()
        .ok_or("notifications: no notifications array")?
        .iter()
        .map(|n| {
            (
                n["id"].as_u64().unwrap_or(0),
                n["kind"].as_str().unwrap_or("?").to_string(),
                n["file_id"].as_u64().unwrap_or(0),
                n["actor"].as_str().unwrap_or("?").to_string(),
                n["read"].as_bool().unwrap_or(false),
            )
        })
        .collect())
}

type Fail = String;

fn status_ok(what: &str, status: u16, body: &str) -> Result<(), Fail> {
    if status == 200 {
        Ok(())
    } else {
        Err(format!("{what} answered {status}: {}", body_text(body)))
    }
}

impl Harness {
    fn base(&self) -> String {
        self.server
            .as_ref()
            .map(|s| s.base.clone())
            .unwrap_or_default()
    }

    async fn start(&mut self) -> Result<(), Fail> {
        let mut server = Server::spawn(&self.data, &self.log);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("latch exited ({status}) instead of starting"));
            }
            if let Ok(r) = self
                .http
                .get(format!("{}/healthz", server.base))
                .send()
                .await
                && r.status() == 200
            {
                break;
            }
            if Instant::now() > deadline {
                return Err("latch did not become healthy within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.server = Some(server);
        self.web = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .map_err(|e| e.to_string())?;
        let r = self
            .web
            .post(format!("{}/api/login", self.base()))
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .map_err(|e| format!("login: {e}"))?;
        let status = r.status().as_u16();
        status_ok("admin login", status, &r.text().await.unwrap_or_default())?;
        if !self.tokens.contains_key("admin") {
            self.make_token("admin", ADMIN_PASSWORD).await?;
        }
        Ok(())
    }

    async fn make_token(&mut self, user: &str, password: &str) -> Result<(), Fail> {
        let r = self
            .http
            .post(format!("{}/api/tokens", self.base()))
            .basic_auth(user, Some(password))
            .json(&json!({"name": "model"}))
            .send()
            .await
            .map_err(|e| format!("token for {user}: {e}"))?;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status != 201 {
            return Err(format!("token for {user} answered {status}: {body}"));
        }
        let token = body["token"].as_str().ok_or("token missing")?.to_string();
        self.tokens.insert(user.to_string(), token);
        Ok(())
    }

    /// SIGTERM, and wait for the process to finish its shutdown.
    async fn stop(&mut self) -> Result<(), Fail> {
        let Some(mut server) = self.server.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(server.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = server.child.try_wait() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("latch did not stop within 30 s of SIGTERM".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.kill();
        }
    }

    /// A WebDAV request as `user`: HTTP Basic with their API token.
    fn dav(&self, verb: &str, user: &str, path: &str) -> reqwest::RequestBuilder {
        let token = self.tokens.get(user).cloned().unwrap_or_default();
        let method = reqwest::Method::from_bytes(verb.as_bytes()).unwrap_or(reqwest::Method::GET);
        self.http
            .request(method, drive::dav_url(&self.base(), path))
            .header("user-agent", drive::CLIENT)
            .basic_auth(user, Some(token))
    }

    fn dav_token(&self, slot: usize) -> String {
        self.dav_tokens
            .get(slot)
            .cloned()
            .unwrap_or_else(|| "opaquelocktoken:never-given".into())
    }

    fn request(&self, act: &Act) -> reqwest::RequestBuilder {
        let base = self.base();
        let token = self.tokens.get(act.by()).cloned().unwrap_or_default();
        let h = &self.http;
        // The drive takes HTTP Basic only.
        match act {
            Act::DavLock { by, path, .. } => {
                return self
                    .dav("LOCK", by, path)
                    .header("depth", "0")
                    .header("timeout", "Second-3600")
                    .header("content-type", "application/xml")
                    .body(crate::dav::LOCKINFO);
            }
            Act::DavPut {
                by,
                path,
                token,
                content,
                ..
            } => {
                let rb = self.dav("PUT", by, path).body(content.clone());
                return match token {
                    Some(slot) => rb.header("if", format!("(<{}>)", self.dav_token(*slot))),
                    None => rb,
                };
            }
            Act::DavUnlock { by, slot, path } => {
                return self
                    .dav("UNLOCK", by, path)
                    .header("lock-token", format!("<{}>", self.dav_token(*slot)));
            }
            _ => {}
        }
        let rb = match act {
            Act::AddUser { name, admin, .. } => h.post(format!("{base}/api/users")).json(&json!({
                "username": name,
                "password": PASSWORD,
                "role": if *admin { "admin" } else { "user" },
            })),
            Act::Disable { name, .. } => h
                .patch(format!("{base}/api/users/{name}"))
                .json(&json!({"disabled": true})),
            Act::Upload {
                raw_path,
                desc,
                rev,
                content,
                ..
            } => {
                let mut form = Form::new()
                    .text("path", raw_path.clone())
                    .text("description", desc.clone());
                if let Some(rev) = rev {
                    form = form.text("revision", rev.clone());
                }
                let part = Part::bytes(content.clone()).file_name("upload.bin");
                h.post(format!("{base}/api/files"))
                    .multipart(form.part("file", part))
            }
            Act::Checkout { id, comment, .. } => {
                let rb = h.post(format!("{base}/api/files/{id}/checkout"));
                match comment {
                    Some(c) => rb.json(&json!({"comment": c})),
                    None => rb,
                }
            }
            Act::Cancel { id, .. } => h.post(format!("{base}/api/files/{id}/cancel")),
            Act::Checkin {
                id, major, content, ..
            } => {
                let form = Form::new()
                    .text("message", "model check-in")
                    .text("bump", if *major { "major" } else { "minor" })
                    .part("file", Part::bytes(content.clone()).file_name("upload.bin"));
                h.post(format!("{base}/api/files/{id}/checkin"))
                    .multipart(form)
            }
            Act::Override { id, .. } => h.post(format!("{base}/api/files/{id}/override")),
            Act::Delete { id, .. } => h.delete(format!("{base}/api/files/{id}")),
            Act::LfsLock { path, .. } => h
                .post(format!("{base}/vault.git/info/lfs/locks"))
                .header("content-type", LFS_JSON)
                .body(json!({"path": path}).to_string()),
            Act::LfsUnlock { id, force, .. } => h
                .post(format!("{base}/vault.git/info/lfs/locks/{id}/unlock"))
                .header("content-type", LFS_JSON)
                .body(json!({"force": force}).to_string()),
            Act::Join { id, .. } => h.post(format!("{base}/api/files/{id}/queue")),
            Act::Leave { id, .. } => h.delete(format!("{base}/api/files/{id}/queue")),
            Act::Decline { id, .. } => h.post(format!("{base}/api/files/{id}/decline")),
            Act::WatchFile { id, on, .. } => {
                let url = format!("{base}/api/files/{id}/watch");
                if *on { h.post(url) } else { h.delete(url) }
            }
            Act::WatchFolder { raw, on, .. } => {
                let url = format!("{base}/api/watches");
                let rb = if *on { h.post(url) } else { h.delete(url) };
                rb.json(&json!({ "folder": raw }))
            }
            Act::Nudge { id, message, .. } => {
                let rb = h.post(format!("{base}/api/files/{id}/nudge"));
                match message {
                    Some(text) => rb.json(&json!({ "message": text })),
                    None => rb,
                }
            }
            Act::MarkRead { all, ids, .. } => {
                let body = match (all, ids) {
                    (true, _) => json!({"all": true}),
                    (false, Some(ids)) => json!({ "ids": ids }),
                    (false, None) => json!({"all": false}),
                };
                h.post(format!("{base}/api/notifications/read")).json(&body)
            }
            Act::CheckoutSet { ids, comment, .. } => {
                let body = match comment {
                    Some(c) => json!({"ids": ids, "comment": c}),
                    None => json!({ "ids": ids }),
                };
                h.post(format!("{base}/api/checkout")).json(&body)
            }
            Act::CancelSet { ids, .. } => h
                .post(format!("{base}/api/cancel"))
                .json(&json!({ "ids": ids })),
            Act::CheckinSet { parts, major, .. } => {
                let mut form = Form::new()
                    .text("message", "model set check-in")
                    .text("bump", if *major { "major" } else { "minor" });
                for (name, content) in parts {
                    form = form.part("file", Part::bytes(content.clone()).file_name(name.clone()));
                }
                h.post(format!("{base}/api/checkin")).multipart(form)
            }
            Act::Bulk {
                folder, rev, parts, ..
            } => {
                let mut form = Form::new().text("folder", folder.clone());
                if let Some(rev) = rev {
                    form = form.text("revision", rev.clone());
                }
                for (name, _, content) in parts {
                    form = form.part("file", Part::bytes(content.clone()).file_name(name.clone()));
                }
                h.post(format!("{base}/api/files/bulk")).multipart(form)
            }
            Act::Move { id, raw_path, .. } => h
                .post(format!("{base}/api/files/{id}/move"))
                .json(&json!({ "path": raw_path })),
            Act::Describe { id, desc, .. } => h
                .patch(format!("{base}/api/files/{id}"))
                .json(&json!({ "description": desc })),
            Act::DavLock { .. } | Act::DavPut { .. } | Act::DavUnlock { .. } => {
                unreachable!("sent above")
            }
        };
        rb.bearer_auth(token)
    }

    async fn get(&self, client: &reqwest::Client, path: &str) -> Result<String, Fail> {
        let r = client
            .get(format!("{}{path}", self.base()))
            .bearer_auth(self.tokens.get("admin").cloned().unwrap_or_default())
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = r.status().as_u16();
        let text = r.text().await.map_err(|e| format!("GET {path}: {e}"))?;
        status_ok(&format!("GET {path}"), status, &text)?;
        Ok(text)
    }

    /// GET as `user`: None when the server refuses them (401).
    async fn get_json_as(&self, user: &str, path: &str) -> Result<Option<Value>, Fail> {
        let r = self
            .http
            .get(format!("{}{path}", self.base()))
            .bearer_auth(self.tokens.get(user).cloned().unwrap_or_default())
            .send()
            .await
            .map_err(|e| format!("GET {path} as {user}: {e}"))?;
        let status = r.status().as_u16();
        let text = r.text().await.map_err(|e| format!("GET {path}: {e}"))?;
        if status == 401 {
            return Ok(None);
        }
        status_ok(&format!("GET {path} as {user}"), status, &text)?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("GET {path}: not JSON ({e})"))
    }

    async fn get_json(&self, path: &str) -> Result<Value, Fail> {
        let text = self.get(&self.http, path).await?;
        serde_json::from_str(&text).map_err(|e| format!("GET {path}: not JSON ({e})"))
    }

    async fn observe(&self) -> Result<Observed, Fail> {
        let mut o = Observed::default();
        let files = self.get_json("/api/files").await?;
        o.files = files["files"]
            .as_array()
            .cloned()
            .ok_or("GET /api/files: no files array")?;
        let page = {
            let r = self
                .web
                .get(format!("{}/", self.base()))
                .send()
                .await
                .map_err(|e| format!("GET /: {e}"))?;
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            status_ok("GET / (dashboard)", status, &text)?;
            text
        };
        o.cards = cards(&page)?;
        let locks = self
            .get_json("/vault.git/info/lfs/locks?limit=1000")
            .await?;
        for l in locks["locks"]
            .as_array()
            .ok_or("LFS locks: no locks array")?
        {
            o.locks.push((
                l["id"].as_str().and_then(|i| i.parse().ok()).unwrap_or(0),
                l["path"].as_str().unwrap_or("").to_string(),
                l["owner"]["name"].as_str().unwrap_or("").to_string(),
            ));
        }
        for f in &o.files {
            let id = f["id"].as_u64().unwrap_or(0);
            let h = self.get_json(&format!("/api/files/{id}/history")).await?;
            let revs = h["versions"]
                .as_array()
                .ok_or("history: no versions array")?
                .iter()
                .map(|v| v["revision"].as_str().unwrap_or("").to_string())
                .collect();
            o.histories.insert(id, revs);
        }
        o.tree = ls_tree(&self.data.join("vault.git"))?;
        for f in &o.files {
            let (Some(id), Some(path), Some(owner)) = (
                f["id"].as_u64(),
                f["path"].as_str(),
                f["lock"]["owner"].as_str(),
            ) else {
                continue;
            };
            let r = self
                .dav("GET", owner, path)
                .send()
                .await
                .map_err(|e| format!("GET /dav/{path} as {owner}: {e}"))?;
            let status = r.status().as_u16();
            let bytes = r
                .bytes()
                .await
                .map_err(|e| format!("GET /dav/{path}: {e}"))?;
            let read = match status {
                200 => Some(bytes.to_vec()),
                401 => None,
                other => {
                    return Err(format!(
                        "GET /dav/{path} as its holder {owner} answered {other}: {}",
                        body_text(&String::from_utf8_lossy(&bytes))
                    ));
                }
            };
            o.drive.insert(id, read);
        }
        let users: Vec<String> = self.tokens.keys().cloned().collect();
        for user in users {
            let inbox = match self.get_json_as(&user, "/api/notifications").await? {
                None => None,
                Some(v) => Some(Inbox {
                    unread: v["unread"]
                        .as_u64()
                        .ok_or("notifications: no unread count")?,
                    notes: seen_notes(&v)?,
                }),
            };
            o.inboxes.insert(user.clone(), inbox);
            let watches = self.get_json_as(&user, "/api/watches").await?.map(|v| {
                let files = v["files"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default();
                let folders = v["folders"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|f| f.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                (files, folders)
            });
            o.watches.insert(user, watches);
        }
        o.admin_unread = seen_notes(&self.get_json("/api/notifications?unread=true").await?)?;
        Ok(o)
    }

    /// The events since the last step: (kind, file id, actor).
    async fn events(&mut self) -> Result<Vec<Ev>, Fail> {
        let a = self
            .get_json(&format!("/api/activity?since={}", self.since))
            .await?;
        let mut out = Vec::new();
        for e in a["events"].as_array().ok_or("activity: no events array")? {
            let kind = match e["kind"].as_str().unwrap_or("") {
                "created" => "created",
                "locked" => "locked",
                "unlocked" => "unlocked",
                "checked_in" => "checked_in",
                "overridden" => "overridden",
                "deleted" => "deleted",
                "queued" => "queued",
                "dequeued" => "dequeued",
                "reserved" => "reserved",
                "released" => "released",
                "moved" => "moved",
                "edited" => "edited",
                other => return Err(format!("activity: an event of unknown kind {other:?}")),
            };
            out.push(Ev {
                kind,
                file_id: e["file_id"].as_u64().unwrap_or(0),
                actor: e["actor"].as_str().unwrap_or("").to_string(),
                previous: (kind == "overridden")
                    .then(|| e["previous_holder"].as_str().unwrap_or("").to_string()),
                to: matches!(kind, "reserved" | "moved")
                    .then(|| e["note"].as_str().unwrap_or("").to_string()),
            });
        }
        self.since = a["last_seq"].as_u64().unwrap_or(self.since);
        Ok(out)
    }

    async fn check_contents(&self, m: &Model) -> Result<(), Fail> {
        for f in &m.files {
            let path = format!("/api/files/{}/content", f.id);
            let r = self
                .http
                .get(format!("{}{path}", self.base()))
                .bearer_auth(self.tokens.get("admin").cloned().unwrap_or_default())
                .send()
                .await
                .map_err(|e| format!("GET {path}: {e}"))?;
            let status = r.status().as_u16();
            let bytes = r.bytes().await.map_err(|e| format!("GET {path}: {e}"))?;
            if status != 200 || bytes.as_ref() != f.content.as_slice() {
                return Err(format!(
                    "GET {path} answered {status} with {:?}; the model holds {:?}",
                    String::from_utf8_lossy(&bytes),
                    String::from_utf8_lossy(&f.content)
                ));
            }
            // A text preview is the content itself (the model's are small).
            let preview = self
                .get_json(&format!("/api/files/{}/preview", f.id))
                .await?;
            if preview["kind"] == "text"
                && preview["text"].as_str().map(str::as_bytes) != Some(&f.content)
            {
                return Err(format!(
                    "the preview of {} shows {:?}; the model holds {:?}",
                    f.path,
                    preview["text"],
                    String::from_utf8_lossy(&f.content)
                ));
            }
        }
        self.check_vault_zip(m).await
    }

    /// The whole vault's `.zip` holds exactly the model's files, by path,
    /// with their current contents (read by Python's `zipfile`); no files: 404.
    async fn check_vault_zip(&self, m: &Model) -> Result<(), Fail> {
        let path = "/api/folders/zip?path=/";
        let r = self
            .http
            .get(format!("{}{path}", self.base()))
            .bearer_auth(self.tokens.get("admin").cloned().unwrap_or_default())
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = r.status().as_u16();
        let bytes = r.bytes().await.map_err(|e| format!("GET {path}: {e}"))?;
        let want: BTreeMap<String, String> = m
            .files
            .iter()
            .map(|f| {
                let hex = f.content.iter().map(|b| format!("{b:02x}")).collect();
                (f.path.clone(), hex)
            })
            .collect();
        if want.is_empty() {
            return match status {
                404 => Ok(()),
                other => Err(format!("GET {path} of an empty vault answered {other}")),
            };
        }
        if status != 200 {
            return Err(format!("GET {path} answered {status}"));
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let file = dir.path().join("vault.zip");
        std::fs::write(&file, &bytes).map_err(|e| e.to_string())?;
        let script = "import sys, json, zipfile\n\
                      z = zipfile.ZipFile(sys.argv[1])\n\
                      assert z.testzip() is None\n\
                      print(json.dumps({i.filename: z.read(i).hex() for i in z.infolist()}))\n";
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(&file)
            .output()
            .map_err(|e| format!("python3: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "the vault's .zip does not read: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let got: BTreeMap<String, String> =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("zip listing: {e}"))?;
        if got != want {
            return Err(format!(
                "the vault's .zip holds {:?}; the model holds {:?}",
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>()
            ));
        }
        Ok(())
    }
}

/// What a dashboard card shows the admin (who is the viewer).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Card {
    id: u64,
    /// `data-state`
    state: String,
    /// `data-locked-by`
    locked_by: Option<String>,
    /// "Reserved for <b title=…>…</b>": the username, or "you".
    reserved_for: Option<String>,
    /// The usernames in the card's line (their `title`), in order.
    queue: Vec<String>,
    /// It says a draft is saved ("draft saved … ago").
    draft: bool,
}

/// The text between `open` (after its tag's `>`) and `close`, from `from` on.
fn inner<'a>(html: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let at = html.find(open)?;
    let start = at + html[at..].find('>')? + 1;
    let end = start + html[start..].find(close)?;
    Some(&html[start..end])
}

/// A person a card names: the username in the tag's `title` (cards show
/// display names, the username on hover), else the text ("you").
fn person_in<'a>(html: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let at = html.find(open)?;
    let tag = &html[at..at + html[at..].find('>')?];
    match tag.find(" title=\"") {
        Some(t) => {
            let start = t + " title=\"".len();
            Some(&tag[start..start + tag[start..].find('"')?])
        }
        None => inner(html, open, close),
    }
}

/// The file cards of the dashboard: `<article id="file-N" data-state=… data-locked-by=…>`,
/// with the reservation and the line they show.
fn cards(page: &str) -> Result<Vec<Card>, Fail> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let end = tag[start..].find('"')? + start;
        Some(tag[start..end].to_string())
    };
    let mut out = Vec::new();
    for (i, _) in page.match_indices("<article") {
        let tag = &page[i..i + page[i..].find('>').ok_or("an unclosed <article> tag")?];
        let Some(id) =
            attr(tag, "id").and_then(|v| v.strip_prefix("file-").and_then(|n| n.parse().ok()))
        else {
            continue;
        };
        let state =
            attr(tag, "data-state").ok_or_else(|| format!("card {id} has no data-state"))?;
        let body = &page[i..];
        let body = &body[..body.find("</article>").ok_or("an unclosed <article>")?];
        let reserved_for = body
            .find("reserve-info")
            .and_then(|at| person_in(&body[at..], "<b", "</b>").map(|b| b.trim().to_string()));
        let mut queue = Vec::new();
        if let Some(list) = inner(body, "<ol class=\"queue\"", "</ol>") {
            let mut rest = list;
            while let Some(name) = person_in(rest, "<li", "</li>") {
                queue.push(name.trim().to_string());
                let next = rest.find("</li>").map_or(rest.len(), |e| e + "</li>".len());
                rest = &rest[next..];
            }
        }
        out.push(Card {
            id,
            state,
            locked_by: attr(tag, "data-locked-by"),
            reserved_for,
            queue,
            draft: body.contains("data-draft-saved="),
        });
    }
    out.sort();
    Ok(out)
}

fn ls_tree(git_dir: &Path) -> Result<BTreeSet<String>, Fail> {
    let has_main = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["rev-parse", "--verify", "--quiet", "refs/heads/main"])
        .output()
        .map_err(|e| format!("git: {e}"))?;
    if !has_main.status.success() {
        return Ok(BTreeSet::new());
    }
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["ls-tree", "-r", "-z", "--name-only", "main"])
        .output()
        .map_err(|e| format!("git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git ls-tree failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect())
}

/// Gives files the model knows only by path (new uploads) the ids the server gave them.
fn learn_ids(m: &mut Model, events: &mut [Ev], o: &Observed) {
    let known: BTreeSet<u64> = m.files.iter().map(|f| f.id).collect();
    let new: Vec<(u64, String)> = m
        .files
        .iter()
        .filter(|f| is_new(f.id))
        .map(|f| (f.id, f.path.clone()))
        .collect();
    for (placeholder, path) in new {
        if let Some(id) = o
            .files
            .iter()
            .find(|j| j["path"] == path.as_str())
            .and_then(|j| j["id"].as_u64())
            .filter(|id| !known.contains(id))
        {
            m.learn_id(placeholder, id);
            for e in events.iter_mut().filter(|e| e.file_id == placeholder) {
                e.file_id = id;
            }
        }
    }
}

/// Every way the inboxes, the watch lists and the admin's `watching`
/// differ from the model.
fn diff_notices(m: &Model, o: &Observed) -> Vec<String> {
    let mut d = Vec::new();
    let want_inbox = |user: &str| {
        let notes: Vec<SeenNote> = m
            .inbox
            .get(user)
            .map(|i| {
                i.iter()
                    .rev()
                    .map(|n| (n.id, n.kind.to_string(), n.file_id, n.actor.clone(), n.read))
                    .collect()
            })
            .unwrap_or_default();
        Inbox {
            unread: notes.iter().filter(|n| !n.4).count() as u64,
            notes,
        }
    };
    for (user, got) in &o.inboxes {
        let enabled = m.user(user).is_some_and(|u| !u.disabled);
        match (got, enabled) {
            (None, false) => {}
            (None, true) => d.push(format!(
                "{user}'s notifications answered 401; they are enabled"
            )),
            (Some(_), false) => {
                d.push(format!("{user} is disabled, yet reads their notifications"))
            }
            (Some(got), true) => {
                let want = want_inbox(user);
                if *got != want {
                    d.push(format!(
                        "{user}'s inbox (unread, newest first (id, kind, file, actor, read)) = ({}, {:?}); the model has ({}, {:?})",
                        got.unread, got.notes, want.unread, want.notes
                    ));
                }
            }
        }
    }
    let want_unread: Vec<SeenNote> = want_inbox("admin")
        .notes
        .into_iter()
        .filter(|n| !n.4)
        .collect();
    if o.admin_unread != want_unread {
        d.push(format!(
            "admin's ?unread=true list {:?}; the model has {want_unread:?}",
            o.admin_unread
        ));
    }
    for (user, got) in &o.watches {
        let Some(got) = got else { continue };
        let mut files = Vec::new();
        let mut folders = Vec::new();
        for (_, what) in m.watches.iter().filter(|(w, _)| w == user) {
            match what {
                MWatch::File(id) => files.push(*id),
                MWatch::Folder(f) if f.is_empty() => folders.push("/".to_string()),
                MWatch::Folder(f) => folders.push(format!("{f}/")),
            }
        }
        if *got != (files.clone(), folders.clone()) {
            d.push(format!(
                "{user} watches (files, folders) {got:?}; the model has {:?}",
                (files, folders)
            ));
        }
    }
    for j in &o.files {
        let Some(f) = j["id"].as_u64().and_then(|id| m.file(id)) else {
            continue;
        };
        let want = m.watching("admin", f.id, &f.path);
        if j["watching"].as_bool() != Some(want) {
            d.push(format!(
                "/api/files #{}: watching = {} for the admin; the model has {want}",
                f.id, j["watching"]
            ));
        }
    }
    d
}

/// Every way the server's surfaces differ from the model.
fn diff(m: &Model, o: &Observed) -> Vec<String> {
    let mut d = Vec::new();
    let mut want: Vec<&MFile> = m.files.iter().collect();
    want.sort_by_key(|f| f.id);
    let got_ids: Vec<u64> = o.files.iter().filter_map(|f| f["id"].as_u64()).collect();
    let want_ids: Vec<u64> = want.iter().map(|f| f.id).collect();
    if got_ids.len() != want_ids.len() || want.iter().any(|f| !got_ids.contains(&f.id)) {
        let paths: Vec<String> = o
            .files
            .iter()
            .map(|f| format!("#{} {}", f["id"], f["path"]))
            .collect();
        let wanted: Vec<String> = want
            .iter()
            .map(|f| format!("#{} {:?}", f.id, f.path))
            .collect();
        d.push(format!(
            "/api/files lists {paths:?}; the model has {wanted:?}"
        ));
    }
    for f in &want {
        let Some(j) = o.files.iter().find(|j| j["id"].as_u64() == Some(f.id)) else {
            continue;
        };
        let lock = &j["lock"];
        let got = (
            j["path"].as_str().unwrap_or(""),
            j["description"].as_str().unwrap_or(""),
            j["revision"].as_str().unwrap_or(""),
            j["state"].as_str().unwrap_or(""),
            lock["owner"].as_str(),
            lock["comment"].as_str(),
            j["size"].as_u64().unwrap_or(0),
        );
        let want_state = f.state();
        let wanted = (
            f.path.as_str(),
            f.description.as_str(),
            rev_string(f.rev),
            want_state,
            f.lock.as_ref().map(|l| l.owner.as_str()),
            f.lock.as_ref().and_then(|l| l.comment.as_deref()),
            f.content.len() as u64,
        );
        if (got.0, got.1, got.2, got.3, got.4, got.5, got.6)
            != (
                wanted.0,
                wanted.1,
                wanted.2.as_str(),
                wanted.3,
                wanted.4,
                wanted.5,
                wanted.6,
            )
        {
            d.push(format!(
                "/api/files #{}: (path, description, revision, state, owner, comment, size) = {:?}; the model has {:?}",
                f.id,
                (got.0, short(got.1), got.2, got.3, got.4, got.5.map(short), got.6),
                (wanted.0, short(wanted.1), wanted.2, wanted.3, wanted.4, wanted.5.map(short), wanted.6)
            ));
        }
        let queue: Option<Vec<&str>> = j["queue"]
            .as_array()
            .map(|q| q.iter().map(|n| n.as_str().unwrap_or("?")).collect());
        let reserved = &j["reserved_for"];
        let got_line = (queue, reserved.is_null(), reserved["username"].as_str());
        let want_line = (
            Some(f.queue.iter().map(String::as_str).collect::<Vec<_>>()),
            f.reserved.is_none(),
            f.reserved.as_deref(),
        );
        if got_line != want_line {
            d.push(format!(
                "/api/files #{}: (queue, reserved_for is null, reserved_for.username) = {got_line:?}; the model has {want_line:?}",
                f.id
            ));
        }
        if let Some(l) = &f.lock {
            let holder_enabled = m.user(&l.owner).is_some_and(|u| !u.disabled);
            let want = holder_enabled.then(|| l.draft.clone().unwrap_or_else(|| f.content.clone()));
            let got = o.drive.get(&f.id).cloned().flatten();
            if !o.drive.contains_key(&f.id) || got != want {
                d.push(format!(
                    "GET /dav/{} as its holder {} reads {:?}; the model has {:?}",
                    f.path,
                    l.owner,
                    got.map(|g| String::from_utf8_lossy(&g).into_owned()),
                    want.map(|w| String::from_utf8_lossy(&w).into_owned()),
                ));
            }
        }
        let history: Vec<String> = f.revisions.iter().rev().cloned().collect();
        match o.histories.get(&f.id) {
            Some(h) if *h == history => {}
            got => d.push(format!(
                "history of #{}: {got:?}; the model has {history:?}",
                f.id
            )),
        }
    }
    let want_cards: Vec<Card> = want
        .iter()
        .map(|f| Card {
            id: f.id,
            state: f.state().to_string(),
            locked_by: f.lock.as_ref().map(|l| l.owner.clone()),
            // The dashboard is the admin's.
            reserved_for: f.reserved.as_ref().map(|r| {
                if r == "admin" {
                    "you".to_string()
                } else {
                    r.clone()
                }
            }),
            queue: f.queue.clone(),
            draft: f.lock.as_ref().is_some_and(|l| l.draft.is_some()),
        })
        .collect();
    if o.cards != want_cards {
        d.push(format!(
            "dashboard cards {:?}; the model has {want_cards:?}",
            o.cards
        ));
    }
    let want_locks: Vec<(u64, String, String)> = want
        .iter()
        .filter_map(|f| {
            f.lock
                .as_ref()
                .map(|l| (f.id, f.path.clone(), l.owner.clone()))
        })
        .collect();
    let mut got_locks = o.locks.clone();
    got_locks.sort();
    if got_locks != want_locks {
        d.push(format!(
            "LFS locks {got_locks:?}; the model has {want_locks:?}"
        ));
    }
    d.extend(diff_notices(m, o));
    let want_tree: BTreeSet<String> = m.files.iter().map(|f| f.path.clone()).collect();
    if o.tree != want_tree {
        let extra: Vec<&String> = o.tree.difference(&want_tree).collect();
        let missing: Vec<&String> = want_tree.difference(&o.tree).collect();
        d.push(format!(
            "git ls-tree -r main differs from the model: in Git only {extra:?}, missing from Git {missing:?}"
        ));
    }
    d
}

async fn send(rb: reqwest::RequestBuilder) -> Result<(u16, String), String> {
    let r = rb.send().await.map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let text = r.text().await.map_err(|e| e.to_string())?;
    Ok((status, text))
}

/// Runs one sequence of `steps` steps from `seed` on a fresh server.
pub async fn run_sequence(seed: u64, steps: usize) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let log = dir.path().join("latch.log");
    let mut h = Harness {
        data,
        log,
        _dir: dir,
        server: None,
        http: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("http client"),
        web: reqwest::Client::new(),
        tokens: HashMap::new(),
        since: 0,
        took: HashMap::new(),
        dav_tokens: Vec::new(),
    };
    let mut run = Run {
        trace: Vec::new(),
        failure: None,
        log_tail: String::new(),
        restarts: 0,
        kills: 0,
        cut_short: false,
        seen: BTreeMap::new(),
    };
    let mut model = Model {
        users: vec![MUser {
            name: "admin".into(),
            admin: true,
            disabled: false,
        }],
        ..Model::default()
    };
    let result = async {
        h.start().await?;
        h.events().await?;
        let avoid = std::env::var("LATCH_MODEL_AVOID")
            .unwrap_or_default()
            .split(',')
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        let mut g = Gen {
            rng: Rng::new(seed),
            avoid,
            serial: 0,
            users_made: 0,
            kills: std::env::var("LATCH_MODEL_KILLS")
                .ok()
                .and_then(|k| k.trim().parse().ok())
                .unwrap_or(4)
                .min(100),
        };
        let started = Instant::now();
        for _ in 0..steps {
            if started.elapsed() > WINDOW_MARGIN {
                run.cut_short = true;
                break;
            }
            let step = g.step(&model);
            model = do_step(&mut h, &mut run, &model, step).await?;
        }
        Ok::<(), Fail>(())
    }
    .await;
    if let Err(e) = result {
        let after = aftermath(&mut h).await;
        run.failure = Some(format!("{e}\n\nAfter that step: {after}"));
        run.log_tail = binary::log_tail(&h.log);
    }
    drop(h);
    run
}

/// What a failure left behind: the read surfaces' statuses, and whether the
/// server still stops and starts on its data.
async fn aftermath(h: &mut Harness) -> String {
    if h.server.is_none()
        && let Err(e) = h.start().await
    {
        return format!("the server was down and does not start again: {e}");
    }
    let mut notes = Vec::new();
    for path in [
        "/api/files",
        "/api/activity?since=0",
        "/vault.git/info/lfs/locks",
    ] {
        let status = match h.get(&h.http, path).await {
            Ok(_) => "200".to_string(),
            Err(e) => e,
        };
        notes.push(format!("GET {path} -> {}", clip(&status, 160)));
    }
    if let Err(e) = h.get(&h.web, "/").await {
        notes.push(format!("dashboard -> {}", clip(&e, 160)));
    }
    // Whether Git and the file list still agree, whatever the model thinks.
    if let (Ok(files), Ok(tree)) = (
        h.get_json("/api/files").await,
        ls_tree(&h.data.join("vault.git")),
    ) {
        let listed: BTreeSet<String> = files["files"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["path"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if listed != tree {
            let only_git: Vec<&String> = tree.difference(&listed).collect();
            let only_list: Vec<&String> = listed.difference(&tree).collect();
            notes.push(format!(
                "Git and /api/files disagree: only in Git {only_git:?}, only in the list {only_list:?}"
            ));
        }
    }
    let restart = match h.stop().await {
        Err(e) => e,
        Ok(()) => match h.start().await {
            Ok(()) => "restarts fine".into(),
            Err(e) => format!("does not start again: {e}"),
        },
    };
    notes.push(format!("graceful restart: {restart}"));
    notes.join("; ")
}

async fn do_step(h: &mut Harness, run: &mut Run, m: &Model, step: Step) -> Result<Model, Fail> {
    // Each candidate: a model, the events that lead to it, and for an
    // operation a SIGKILL cut short which way it went ("" otherwise).
    let mut candidates: Vec<(Model, Vec<Ev>, &'static str)> = Vec::new();
    // A change of several files (or a move) in flight at a SIGKILL.
    let mut killed_in: Option<&'static str> = None;
    let mut after_kill = false;
    let mut restarted = false;
    let mut new_user: Option<String> = None;
    match step {
        Step::One(act) => {
            push(&mut run.trace, act.describe());
            let sent = Instant::now();
            let (status, body) = send(h.request(&act))
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            if let (Some(op), 200..=299) = (many_label(&act), status) {
                h.took.insert(op, sent.elapsed());
            }
            let (outcomes, disagree): (Vec<Outcome>, Vec<Outcome>) = expect(m, &act)
                .into_iter()
                .partition(|o| o.status != status || reply_agrees(o, &body));
            if status >= 500 || !outcomes.iter().any(|o| o.status == status) {
                let want: Vec<u16> = outcomes.iter().map(|o| o.status).collect();
                let replies: Vec<String> = disagree
                    .iter()
                    .map(|o| {
                        format!(
                            "{} naming lock owner {:?}, watching {:?}, conflicts (id, path, owner) {:?}",
                            o.status, o.reply_owner, o.reply_watching, o.reply_conflicts
                        )
                    })
                    .collect();
                return Err(format!(
                    "answered {status} (expected {want:?}{}): {}",
                    if replies.is_empty() {
                        String::new()
                    } else {
                        format!(", or {}", replies.join(" / "))
                    },
                    body_text(&body)
                ));
            }
            if let Act::DavUnlock { .. } = &act
                && outcomes.iter().any(|o| {
                    o.status == status && o.events.first().is_some_and(|e| e.kind == "checked_in")
                })
            {
                *run.seen
                    .entry("dav UNLOCK: draft checked in".into())
                    .or_default() += 1;
            }
            for mut o in outcomes.into_iter().filter(|o| o.status == status) {
                fix_upload_id(&mut o, &body);
                candidates.push((o.model, o.events, ""));
            }
            if let Some(label) = notice_label(&act, status) {
                *run.seen.entry(label.to_string()).or_default() += 1;
            }
            if let Some(op) = many_label(&act) {
                *run.seen.entry(format!("{op} {status}")).or_default() += 1;
            }
            if let (Act::AddUser { name, .. }, 201) = (&act, status) {
                new_user = Some(name.clone());
            }
            if let (Act::DavLock { .. }, 200) = (&act, status) {
                let token = crate::dav::lock_token_in(&body).ok_or_else(|| {
                    format!("a granted LOCK without a token: {}", body_text(&body))
                })?;
                h.dav_tokens.push(token);
            }
            if let Some(label) = drive_label(&act) {
                *run.seen.entry(format!("{label} {status}")).or_default() += 1;
            }
        }
        Step::Together(acts) => {
            let list: Vec<String> = acts.iter().map(|a| format!("[{}]", a.describe())).collect();
            push(&mut run.trace, format!("at once: {}", list.join(" and ")));
            let answers =
                futures_util::future::join_all(acts.iter().map(|a| send(h.request(a)))).await;
            let mut answered = Vec::new();
            for (act, answer) in acts.iter().zip(answers) {
                let (status, body) = answer.map_err(|e| format!("request failed: {e}"))?;
                answered.push((act.clone(), status, body));
            }
            let mut serial = Vec::new();
            orders(
                m,
                (0..answered.len()).collect(),
                &answered,
                false,
                vec![],
                &mut serial,
            );
            candidates.extend(serial.into_iter().map(|(cm, ce)| (cm, ce, "")));
            for (act, status, _) in &answered {
                if let Some(op) = many_label(act) {
                    *run.seen
                        .entry(format!("{op} {status} (racing)"))
                        .or_default() += 1;
                }
            }
            if answered.iter().any(|(_, s, _)| *s >= 500) || candidates.is_empty() {
                let got: Vec<String> = answered
                    .iter()
                    .map(|(_, s, b)| format!("{s} {}", body_text(b)))
                    .collect();
                return Err(format!(
                    "racing requests answered, in the order listed: {}; no order of them explains that",
                    got.join(" / ")
                ));
            }
        }
        Step::Restart => {
            push(
                &mut run.trace,
                "graceful restart (SIGTERM, start again)".into(),
            );
            h.stop().await?;
            h.start().await?;
            run.restarts += 1;
            restarted = true;
            candidates.push((m.clone(), vec![], ""));
        }
        Step::Kill(act, delay) => {
            run.kills += 1;
            restarted = true;
            after_kill = true;
            candidates.push((m.clone(), vec![], "none"));
            match act {
                None => {
                    push(
                        &mut run.trace,
                        "SIGKILL with nothing in flight, start again".into(),
                    );
                    h.kill();
                }
                Some(act) => {
                    killed_in = many_label(&act).or(drive_label(&act));
                    let delay = match delay {
                        Delay::Ms(ms) => Duration::from_millis(ms),
                        Delay::PerMille(k) => {
                            let took = killed_in
                                .and_then(|op| h.took.get(op).copied())
                                .unwrap_or(Duration::from_millis(10));
                            took * k as u32 / 1000
                        }
                    };
                    push(
                        &mut run.trace,
                        format!(
                            "SIGKILL {} µs into [{}], start again",
                            delay.as_micros(),
                            act.describe()
                        ),
                    );
                    let task = tokio::spawn(send(h.request(&act)));
                    // Finer than the timer's millisecond: spin to the moment.
                    let until = Instant::now() + delay;
                    while Instant::now() < until {
                        tokio::task::yield_now().await;
                    }
                    h.kill();
                    let answered = task.await.ok().and_then(|r| r.ok());
                    let outcomes = expect(m, &act);
                    match answered {
                        Some((status, body)) => {
                            if status >= 500 || !outcomes.iter().any(|o| o.status == status) {
                                return Err(format!(
                                    "answered {status} before the kill: {}",
                                    body_text(&body)
                                ));
                            }
                            candidates.clear();
                            for mut o in outcomes.into_iter().filter(|o| o.status == status) {
                                fix_upload_id(&mut o, &body);
                                candidates.push((o.model, o.events, "answered"));
                            }
                        }
                        None => {
                            for o in outcomes {
                                // A check-in whose commit landed but whose
                                // database write did not is applied at start
                                // from Git, with the lock kept.
                                if let Act::Checkin { id, .. } = &act
                                    && o.status == 200
                                {
                                    // The line and any reservation stay as they were too.
                                    let mut kept = o.model.clone();
                                    if let Some(before) = m.file(*id) {
                                        let g = kept.file_mut(*id);
                                        g.lock = before.lock.clone();
                                        g.queue = before.queue.clone();
                                        g.reserved = before.reserved.clone();
                                    }
                                    // Reconciling records the check-in
                                    // (its watchers are told), not the hand-off.
                                    kept.inbox = m.inbox.clone();
                                    kept.notes_made = m.notes_made;
                                    kept.tell(m, &o.events[..1]);
                                    candidates.push((kept, vec![], "reconciled"));
                                }
                                // The same for closing a file with a draft.
                                if let Act::DavUnlock { slot, .. } = &act
                                    && let Some(kept) = drive::unlock_reconciled(m, &o, *slot)
                                {
                                    candidates.push((kept, vec![], "reconciled"));
                                }
                                // The same for a change set: the whole
                                // commit, every lock kept.
                                if let Act::CheckinSet { .. } = &act
                                    && o.status == 200
                                {
                                    let kept = many::checkin_reconciled(m, &o);
                                    candidates.push((kept, vec![], "all, reconciled"));
                                }
                                let label = if o.status / 100 == 2 { "all" } else { "none" };
                                candidates.push((o.model, o.events, label));
                            }
                        }
                    }
                }
            }
            h.start().await?;
        }
    }
    if let Some(name) = new_user {
        h.make_token(&name, PASSWORD).await?;
    }
    let o = h.observe().await?;
    let events = h.events().await?;
    for e in &events {
        *run.seen.entry(e.kind.to_string()).or_default() += 1;
    }
    let mut first_diff = None;
    for (mut cm, mut ce, label) in candidates {
        learn_ids(&mut cm, &mut ce, &o);
        let d = diff(&cm, &o);
        let events_agree = after_kill || ce == events;
        if d.is_empty() && events_agree {
            if let Some(bad) = cm
                .files
                .iter()
                .find(|f| is_new(f.id) || (f.id <= m.max_id && m.file(f.id).is_none()))
            {
                return Err(format!(
                    "file {:?} got id {}, which is not new",
                    bad.path, bad.id
                ));
            }
            cm.max_id = cm
                .files
                .iter()
                .map(|f| f.id)
                .max()
                .unwrap_or(0)
                .max(m.max_id);
            if restarted {
                h.check_contents(&cm).await?;
            }
            for n in cm.inbox.values().flatten().filter(|n| n.id > m.notes_made) {
                *run.seen.entry(note_kind(n.kind).to_string()).or_default() += 1;
            }
            if let Some(op) = killed_in {
                *run.seen
                    .entry(format!("SIGKILL in {op}: {label}"))
                    .or_default() += 1;
            }
            return Ok(cm);
        }
        if first_diff.is_none() {
            let mut lines = d;
            if !events_agree {
                lines.push(format!(
                    "activity since the last step: {events:?}; the model expects {ce:?}"
                ));
            }
            first_diff = Some(lines.join("\n  "));
        }
    }
    let partial = match killed_in {
        Some(op) => format!(
            " — a SIGKILL stopped {op}, and the server shows neither all of it nor none (part of it?)"
        ),
        None => String::new(),
    };
    Err(format!(
        "the server's state matches no outcome the model allows{partial}:\n  {}",
        first_diff.unwrap_or_default()
    ))
}

/// Every serial order of racing requests that explains their answers.
fn orders(
    m: &Model,
    left: Vec<usize>,
    acts: &[(Act, u16, String)],
    won: bool,
    events: Vec<Ev>,
    out: &mut Vec<(Model, Vec<Ev>)>,
) {
    if left.is_empty() {
        out.push((m.clone(), events));
        return;
    }
    for (k, &i) in left.iter().enumerate() {
        let (act, status, body) = &acts[i];
        let mut rest = left.clone();
        rest.remove(k);
        // The loser of a race may also hear 409 ("who won") where, asked
        // afterwards, it would hear 404 or 403.
        let fits = |o: &Outcome| {
            o.status == *status
                || (won && *status == 409 && o.events.is_empty() && matches!(o.status, 403 | 404))
        };
        for mut o in expect(m, act).into_iter().filter(fits) {
            if o.status == *status && !reply_agrees(&o, body) {
                continue;
            }
            fix_upload_id(&mut o, body);
            let won = won || (200..300).contains(&o.status);
            let events = [events.clone(), o.events].concat();
            orders(&o.model, rest.clone(), acts, won, events, out);
        }
    }
}

/// An LFS unlock's reply names the lock it ended: the holder the model had;
/// a file watch's says whether the caller now hears of the file; a refused
/// change set's lists every file in its way, in the order asked.
fn reply_agrees(o: &Outcome, body: &str) -> bool {
    if let Some(want) = &o.reply_conflicts {
        let got: Option<Vec<(u64, String, String)>> =
            serde_json::from_str::<Value>(body).ok().and_then(|v| {
                v["conflicts"].as_array().map(|a| {
                    a.iter()
                        .map(|c| {
                            (
                                c["id"].as_u64().unwrap_or(0),
                                c["path"].as_str().unwrap_or("?").to_string(),
                                c["owner"].as_str().unwrap_or("?").to_string(),
                            )
                        })
                        .collect()
                })
            });
        if got.as_ref() != Some(want) {
            return false;
        }
    }
    if let Some(watching) = o.reply_watching
        && !serde_json::from_str::<Value>(body).is_ok_and(|v| v["watching"] == watching)
    {
        return false;
    }
    match &o.reply_owner {
        None => true,
        Some(owner) => serde_json::from_str::<Value>(body)
            .is_ok_and(|v| v["lock"]["owner"]["name"] == owner.as_str()),
    }
}

/// A watch, ask or mark-read and its answer, as counted among what a
/// sequence exercised.
fn notice_label(act: &Act, status: u16) -> Option<&'static str> {
    Some(match (act, status) {
        (Act::WatchFile { on: true, .. }, 200) => "watch file",
        (Act::WatchFile { on: false, .. }, 200) => "unwatch file",
        (Act::WatchFolder { on: true, .. }, 200) => "watch folder",
        (Act::WatchFolder { on: false, .. }, 200) => "unwatch folder",
        (Act::WatchFolder { .. }, 422) => "watch folder 422",
        (Act::Nudge { .. }, 204) => "ask 204",
        (Act::Nudge { .. }, 409) => "ask 409",
        (Act::Nudge { .. }, 429) => "ask 429",
        (Act::MarkRead { .. }, 204) => "mark read",
        _ => return None,
    })
}

/// An operation on several files (or a move, a description edit), as
/// counted among what a sequence exercised.
fn many_label(act: &Act) -> Option<&'static str> {
    Some(match act {
        Act::CheckoutSet { .. } => "checkout set",
        Act::CancelSet { .. } => "cancel set",
        Act::CheckinSet { .. } => "checkin set",
        Act::Bulk { .. } => "bulk upload",
        Act::Move { .. } => "move",
        Act::Describe { .. } => "describe",
        _ => return None,
    })
}

/// A step through the drive, as counted among what a sequence exercised.
fn drive_label(act: &Act) -> Option<&'static str> {
    Some(match act {
        Act::DavLock { .. } => "dav LOCK",
        Act::DavPut { .. } => "dav PUT",
        Act::DavUnlock { .. } => "dav UNLOCK",
        _ => return None,
    })
}

/// A notification kind as counted among what a sequence exercised.
fn note_kind(kind: &str) -> &'static str {
    match kind {
        "reserved" => "notice:reserved",
        "overridden" => "notice:overridden",
        "watched" => "notice:watched",
        "nudged" => "notice:nudged",
        _ => "notice:other",
    }
}

fn push(trace: &mut Vec<String>, line: String) {
    let n = trace.len() + 1;
    trace.push(format!("{n:4}. {line}"));
}

/// New files take the ids the answer gives: one upload's `id`, or a bulk
/// upload's `files`, in the order of its parts.
fn fix_upload_id(o: &mut Outcome, body: &str) {
    if !o.model.files.iter().any(|f| is_new(f.id)) {
        return;
    }
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return;
    };
    let given: Vec<u64> = match (v["id"].as_u64(), v["files"].as_array()) {
        (Some(id), _) => vec![id],
        (None, Some(files)) => files.iter().filter_map(|f| f["id"].as_u64()).collect(),
        _ => return,
    };
    for (k, id) in given.into_iter().enumerate() {
        let placeholder = NEW_ID + k as u64;
        o.model.learn_id(placeholder, id);
        for e in o.events.iter_mut().filter(|e| e.file_id == placeholder) {
            e.file_id = id;
        }
    }
}
