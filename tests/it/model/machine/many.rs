//! Several files at once, and renaming and describing one: the model of
//! change sets (`/api/checkout`, `/api/cancel`, `/api/checkin`), the bulk
//! upload, a move and a description edit, and the steps that try them.
//! All or none: a refusal leaves the model as it was, and a SIGKILL in
//! flight may leave all of a change or none of it, never part.

use unicode_normalization::UnicodeNormalization;

use super::{
    Act, Ev, Gen, MFile, MLock, MUser, MWatch, Model, NEW_ID, Outcome, Step, changed, ev,
    parse_rev, rev_string, same,
};

/// Most files one change set may name (`files::MAX_SET`).
const MAX_SET: usize = 200;
/// Most files one bulk upload may hold (`files::MAX_UPLOAD_FILES`).
const MAX_UPLOAD_FILES: usize = 500;

/// `ids` without repeats, in the order given (the server's `set_of`).
fn set_of(ids: &[u64]) -> Vec<u64> {
    let mut out = Vec::new();
    for id in ids {
        if !out.contains(id) {
            out.push(*id);
        }
    }
    out
}

/// A name as the server compares it for clashes: letter case and Unicode
/// normalisation folded.
pub(super) fn fold(s: &str) -> String {
    s.to_lowercase().nfc().collect()
}

/// Who may rename or describe a file (`files::edits::may_edit`): its
/// holder; an admin while nobody holds it, and for a description at any
/// time (`over_lock`). Otherwise 409 when someone holds it, 403 when not.
fn may_edit(f: &MFile, by: &str, admin: bool, over_lock: bool) -> Result<(), u16> {
    match &f.lock {
        Some(l) if l.owner == by => Ok(()),
        Some(_) if over_lock && admin => Ok(()),
        Some(_) => Err(409),
        None if admin => Ok(()),
        None => Err(403),
    }
}

/// `POST /api/checkout`: every file, or none. A reservation held by a
/// disabled account is passed on first, file by file in the order given
/// (its events before any `locked`); the refusal lists every file locked
/// (the caller's own included) or reserved for someone else after that.
pub(super) fn checkout_set(
    m: &Model,
    by: &str,
    ids: &[u64],
    comment: Option<&str>,
    gone: &[String],
) -> Vec<Outcome> {
    let comment = comment.map(str::trim).filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > 500) {
        return same(m, 422);
    }
    let ids = set_of(ids);
    if ids.is_empty() || ids.len() > MAX_SET {
        return same(m, 422);
    }
    let mut next = m.clone();
    let mut events = Vec::new();
    let mut conflicts = Vec::new();
    for &id in &ids {
        let Some(f) = next.file(id) else {
            return same(m, 404);
        };
        if let Some(from) = f.reserved.clone().filter(|r| gone.contains(r)) {
            let g = next.file_mut(id);
            g.end_lock(&from, &mut events, gone);
            if g.reserved.is_none() {
                events.push(ev("released", id, &from));
            }
        }
        let f = next.file(id).expect("looked up above");
        let in_the_way = match (&f.lock, &f.reserved) {
            (Some(l), _) => Some(l.owner.clone()),
            (None, Some(r)) if r != by => Some(r.clone()),
            _ => None,
        };
        if let Some(owner) = in_the_way {
            conflicts.push((id, f.path.clone(), owner));
        }
    }
    if !conflicts.is_empty() {
        let mut refused = same(m, 409);
        refused[0].reply_conflicts = Some(conflicts);
        return refused;
    }
    for &id in &ids {
        let g = next.file_mut(id);
        g.reserved = None;
        g.queue.retain(|q| q != by);
        g.lock = Some(MLock {
            owner: by.to_string(),
            comment: comment.map(String::from),
            ..MLock::default()
        });
        events.push(ev("locked", id, by));
    }
    changed(200, next, events)
}

/// The files `ids` name, each held by `by`; the first that is not refuses
/// the set with `require_holder`'s status.
fn held_by(m: &Model, by: &str, ids: &[u64]) -> Result<(), u16> {
    for &id in ids {
        let Some(f) = m.file(id) else {
            return Err(404);
        };
        match &f.lock {
            None => return Err(409),
            Some(l) if l.owner != by => return Err(403),
            Some(_) => {}
        }
    }
    Ok(())
}

/// `POST /api/cancel`: each lock ends and its file goes to the next in
/// line, file by file in the order given.
pub(super) fn cancel_set(m: &Model, by: &str, ids: &[u64], gone: &[String]) -> Vec<Outcome> {
    let ids = set_of(ids);
    if ids.is_empty() || ids.len() > MAX_SET {
        return same(m, 422);
    }
    if let Err(status) = held_by(m, by, &ids) {
        return same(m, status);
    }
    let mut next = m.clone();
    let mut events = Vec::new();
    for &id in &ids {
        events.push(ev("unlocked", id, by));
        next.file_mut(id).end_lock(by, &mut events, gone);
    }
    changed(200, next, events)
}

/// Which file a check-in part named `name` is (`resolve_set_part`): the
/// file at that path, or for a bare name the one file of that name the
/// caller holds; then it must be the caller's.
fn resolve(m: &Model, by: &str, name: &str) -> Result<u64, u16> {
    let id = match m.files.iter().find(|f| f.path == name) {
        Some(f) => f.id,
        None if !name.contains('/') => {
            let mine: Vec<u64> = m
                .files
                .iter()
                .filter(|f| f.lock.as_ref().is_some_and(|l| l.owner == by))
                .filter(|f| f.path.rsplit('/').next() == Some(name))
                .map(|f| f.id)
                .collect();
            match mine[..] {
                [id] => id,
                [] => return Err(404),
                _ => return Err(422),
            }
        }
        None => return Err(404),
    };
    held_by(m, by, &[id]).map(|()| id)
}

/// `POST /api/checkin`: each part is checked as it arrives (404, 409,
/// 403); then repeats, empty or unchanged content, or a revision past
/// its limit refuse the whole set (422). Otherwise one commit: each file
/// bumped, each lock ended and handed on (`checked_in`, then `reserved`,
/// file by file).
pub(super) fn checkin_set(
    m: &Model,
    by: &str,
    parts: &[(String, Vec<u8>)],
    major: bool,
    gone: &[String],
) -> Vec<Outcome> {
    let mut ids = Vec::new();
    for (name, _) in parts {
        match resolve(m, by, name) {
            Ok(id) => ids.push(id),
            Err(status) => return same(m, status),
        }
    }
    if ids.is_empty() || set_of(&ids).len() != ids.len() {
        return same(m, 422);
    }
    if parts.iter().any(|(_, c)| c.is_empty()) {
        return same(m, 422);
    }
    let mut next = m.clone();
    let mut events = Vec::new();
    for (&id, (_, content)) in ids.iter().zip(parts) {
        let f = m.file(id).expect("resolved above");
        if *content == f.content {
            return same(m, 422);
        }
        let (a, b) = f.rev;
        let rev = if major { (a + 1, 0) } else { (a, b + 1) };
        if rev.0 > super::MAX_PART || rev.1 > super::MAX_PART {
            return same(m, 422);
        }
        let g = next.file_mut(id);
        g.rev = rev;
        g.content = content.clone();
        g.revisions.push(rev_string(rev));
        events.push(ev("checked_in", id, by));
        g.end_lock(by, &mut events, gone);
    }
    changed(200, next, events)
}

/// A change-set check-in whose commit landed but whose database write a
/// SIGKILL stopped: start-up applies the whole commit from Git — every
/// file's content and revision, its `checked_in` told to watchers — with
/// each lock, line and reservation as they were.
pub(super) fn checkin_reconciled(m: &Model, done: &Outcome) -> Model {
    let mut kept = done.model.clone();
    for e in done.events.iter().filter(|e| e.kind == "checked_in") {
        if let Some(before) = m.file(e.file_id) {
            let g = kept.file_mut(e.file_id);
            g.lock = before.lock.clone();
            g.queue = before.queue.clone();
            g.reserved = before.reserved.clone();
        }
    }
    kept.inbox = m.inbox.clone();
    kept.notes_made = m.notes_made;
    let told: Vec<Ev> = done
        .events
        .iter()
        .filter(|e| e.kind == "checked_in")
        .cloned()
        .collect();
    kept.tell(m, &told);
    kept
}

/// `POST /api/files/bulk`: a bad name, revision or empty file refuses the
/// upload (422) before any name is compared; then each path must be free
/// of the vault's names and of the ones before it (409). All or none, one
/// commit, no description; ids in the order of the parts.
pub(super) fn bulk(
    m: &Model,
    by: &str,
    rev: Option<&str>,
    parts: &[(String, Option<String>, Vec<u8>)],
) -> Vec<Outcome> {
    let rev = match rev.map(str::trim) {
        None | Some("") => Some((1, 0)),
        Some(r) => parse_rev(r),
    };
    let Some(rev) = rev else {
        return same(m, 422);
    };
    if parts.is_empty()
        || parts.len() > MAX_UPLOAD_FILES
        || parts.iter().any(|(_, p, c)| p.is_none() || c.is_empty())
    {
        return same(m, 422);
    }
    let mut next = m.clone();
    let mut events = Vec::new();
    let mut soft = false;
    for (k, (_, path, content)) in parts.iter().enumerate() {
        let path = path.clone().expect("checked above");
        let (hard, maybe) = next.clash(&path);
        if hard {
            return same(m, 409);
        }
        soft |= maybe;
        let id = NEW_ID + k as u64;
        next.files.push(MFile {
            id,
            path,
            description: String::new(),
            rev,
            lock: None,
            content: content.clone(),
            revisions: vec![rev_string(rev)],
            queue: vec![],
            reserved: None,
        });
        events.push(ev("created", id, by));
    }
    let mut all = changed(201, next, events);
    if soft {
        all.extend(same(m, 409));
    }
    all
}

/// `POST /api/files/{id}/move`: the new path is checked at the edge (422
/// before anything else); the holder, or an admin while nobody holds it;
/// its own path is no move (422); its own old name does not count against
/// the new one. The history gains the move's commit (same revision).
pub(super) fn move_file(
    m: &Model,
    by: &str,
    admin: bool,
    id: u64,
    path: Option<&str>,
) -> Vec<Outcome> {
    let Some(path) = path else {
        return same(m, 422);
    };
    let Some(f) = m.file(id) else {
        return same(m, 404);
    };
    if let Err(status) = may_edit(f, by, admin, false) {
        return same(m, status);
    }
    if f.path == path {
        return same(m, 422);
    }
    let mut without = m.clone();
    without.files.retain(|g| g.id != id);
    let (hard, soft) = without.clash(path);
    if hard {
        return same(m, 409);
    }
    let mut next = m.clone();
    let g = next.file_mut(id);
    let from = std::mem::replace(&mut g.path, path.to_string());
    g.revisions.push(rev_string(g.rev));
    let moved = Ev {
        to: Some(from),
        ..ev("moved", id, by)
    };
    let mut all = changed(200, next, vec![moved]);
    if soft {
        all.extend(same(m, 409));
    }
    all
}

/// `PATCH /api/files/{id}`: the description is checked at the edge; the
/// holder or an admin (even over someone's lock); `edited` only when it
/// changed.
pub(super) fn describe(m: &Model, by: &str, admin: bool, id: u64, desc: &str) -> Vec<Outcome> {
    let desc = desc.trim();
    if desc.chars().count() > 2000 {
        return same(m, 422);
    }
    let Some(f) = m.file(id) else {
        return same(m, 404);
    };
    if let Err(status) = may_edit(f, by, admin, true) {
        return same(m, status);
    }
    if f.description == desc {
        return changed(200, m.clone(), vec![]);
    }
    let mut next = m.clone();
    next.file_mut(id).description = desc.to_string();
    changed(200, next, vec![ev("edited", id, by)])
}

// -------------------------------------------------------------- generator

/// What a slot of a generated change set is.
#[derive(Clone, Copy)]
enum Slot {
    Free,
    Mine,
    Others,
    ReservedMine,
    ReservedOther,
    Missing,
    Repeat,
}

impl Gen {
    /// A file id of the kind `slot` asks for; when there is none, any id
    /// for a set's first file and none for the others (a set of what the
    /// caller holds stays one).
    fn slot_id(&mut self, m: &Model, by: &str, slot: Slot, so_far: &[u64]) -> Option<u64> {
        let pick = |f: &MFile| match slot {
            Slot::Free => f.lock.is_none() && f.reserved.is_none(),
            Slot::Mine => f.lock.as_ref().is_some_and(|l| l.owner == by),
            Slot::Others => f.lock.as_ref().is_some_and(|l| l.owner != by),
            Slot::ReservedMine => f.lock.is_none() && f.reserved.as_deref() == Some(by),
            Slot::ReservedOther => f.lock.is_none() && f.reserved.as_ref().is_some_and(|r| r != by),
            Slot::Missing | Slot::Repeat => false,
        };
        let fits: Vec<u64> = m
            .files
            .iter()
            .filter(|f| pick(f) && !so_far.contains(&f.id))
            .map(|f| f.id)
            .collect();
        Some(match slot {
            Slot::Missing => m.max_id + 1 + self.rng.below(3),
            Slot::Repeat if !so_far.is_empty() => *self.rng.pick(so_far),
            _ if !fits.is_empty() => *self.rng.pick(&fits),
            _ if so_far.is_empty() => self.file_id(m),
            _ => return None,
        })
    }

    /// 1–4 ids for `by`, drawn from `weights` (free, mine, others',
    /// reserved for me, reserved for another, missing, repeat).
    fn set_ids(&mut self, m: &Model, by: &str, weights: [u64; 7]) -> Vec<u64> {
        const SLOTS: [Slot; 7] = [
            Slot::Free,
            Slot::Mine,
            Slot::Others,
            Slot::ReservedMine,
            Slot::ReservedOther,
            Slot::Missing,
            Slot::Repeat,
        ];
        let total: u64 = weights.iter().sum();
        let mut ids = Vec::new();
        for _ in 0..=self.rng.below(4) {
            let mut roll = self.rng.below(total);
            let mut slot = Slot::Free;
            for (w, s) in weights.iter().zip(SLOTS) {
                if roll < *w {
                    slot = s;
                    break;
                }
                roll -= w;
            }
            if let Some(id) = self.slot_id(m, by, slot, &ids) {
                ids.push(id);
            }
        }
        ids
    }

    /// Someone who holds a file most of the time, anyone otherwise.
    fn a_holder(&mut self, m: &Model) -> String {
        let holders: Vec<String> = m
            .files
            .iter()
            .filter_map(|f| f.lock.as_ref().map(|l| l.owner.clone()))
            .filter(|h| m.user(h).is_some_and(|u| !u.disabled))
            .collect();
        if holders.is_empty() || self.rng.chance(15) {
            self.any_user(m)
        } else {
            self.rng.pick(&holders).clone()
        }
    }

    /// Ids a change set may not take: none, or more than the limit.
    fn bad_set(&mut self, m: &Model) -> Option<Vec<u64>> {
        match self.rng.below(100) {
            0..=2 => Some(vec![]),
            3 => Some((1..=MAX_SET as u64 + 1).map(|k| m.max_id + k).collect()),
            _ => None,
        }
    }

    /// One operation on several files, or a move or description edit.
    pub(super) fn many_op(&mut self, m: &Model) -> Act {
        match self.rng.below(100) {
            0..=27 => {
                let by = self.any_user(m);
                let ids = match self.bad_set(m) {
                    Some(ids) => ids,
                    // Half the sets are ones the caller may take.
                    None if self.rng.chance(50) => self.set_ids(m, &by, [80, 0, 0, 20, 0, 0, 0]),
                    None => self.set_ids(m, &by, [40, 10, 14, 8, 12, 8, 8]),
                };
                Act::CheckoutSet {
                    by,
                    ids,
                    comment: self.comment(),
                }
            }
            28..=41 => {
                let by = self.a_holder(m);
                let ids = match self.bad_set(m) {
                    Some(ids) => ids,
                    None if self.rng.chance(50) => self.set_ids(m, &by, [0, 1, 0, 0, 0, 0, 0]),
                    None => self.set_ids(m, &by, [8, 60, 12, 4, 4, 6, 6]),
                };
                Act::CancelSet { by, ids }
            }
            42..=61 => self.checkin_set(m),
            62..=75 => self.bulk(m),
            76..=89 => {
                let id = self.file_id(m);
                let by = match self.rng.below(10) {
                    0..=4 => self.holder_or_any(m, id),
                    5..=7 => self.admin_user(m),
                    _ => self.any_user(m),
                };
                let (raw_path, path) = self.move_target(m, id);
                Act::Move {
                    by,
                    id,
                    raw_path,
                    path,
                }
            }
            _ => {
                let id = self.file_id(m);
                let by = match self.rng.below(10) {
                    0..=4 => self.holder_or_any(m, id),
                    5..=7 => self.admin_user(m),
                    _ => self.any_user(m),
                };
                let desc = match m.file(id) {
                    Some(f) if self.rng.chance(20) => f.description.clone(),
                    _ => self.description(),
                };
                Act::Describe { by, id, desc }
            }
        }
    }

    fn checkin_set(&mut self, m: &Model) -> Act {
        let by = self.a_holder(m);
        let ids = if self.rng.chance(60) {
            self.set_ids(m, &by, [0, 1, 0, 0, 0, 0, 0])
        } else {
            self.set_ids(m, &by, [6, 64, 10, 2, 2, 8, 8])
        };
        let mut parts = Vec::new();
        for id in ids {
            let n = self.n();
            let name = match m.file(id) {
                // A bare name: the one file of that name the caller holds.
                Some(f) if f.path.contains('/') && self.rng.chance(20) => {
                    f.path.rsplit('/').next().unwrap_or_default().to_string()
                }
                Some(f) => f.path.clone(),
                None if self.rng.chance(50) => format!("nope{n}.bin"),
                None => format!("nope{n}/x.bin"),
            };
            let content = match (m.file(id), self.rng.below(100)) {
                (Some(f), 0..=7) => f.content.clone(),
                (_, 8..=9) => vec![],
                _ => self.content("set"),
            };
            parts.push((name, content));
        }
        Act::CheckinSet {
            by,
            parts,
            major: self.rng.chance(40),
        }
    }

    /// A folder for a bulk upload: as sent, and as the server reads it.
    fn bulk_folder(&mut self, m: &Model) -> (String, String) {
        let n = self.n();
        let existing = (!m.files.is_empty()).then(|| self.rng.pick(&m.files).path.clone());
        let folder_of = |p: &str| p.rsplit_once('/').map(|(f, _)| f.to_string());
        let raw = match (self.rng.below(10), existing) {
            (0..=1, _) => String::new(),
            (2..=3, _) => format!("bulk{}", n % 4),
            (4, _) => format!(" /bulk{n}/ "),
            (5..=6, Some(e)) => folder_of(&e).unwrap_or_default(),
            // A file's path as the folder: everything would go inside a file.
            (7, Some(e)) => e,
            (8, Some(e)) => folder_of(&e)
                .map(|f| f.to_uppercase())
                .unwrap_or_else(|| format!("Bulk{}", n % 4)),
            _ => format!("bulk{}/deep", n % 3),
        };
        let folder = raw.trim().trim_matches('/').to_string();
        (raw, folder)
    }

    fn bulk(&mut self, m: &Model) -> Act {
        let by = self.any_user(m);
        let (raw_folder, folder) = self.bulk_folder(m);
        let in_folder: Vec<String> = m
            .files
            .iter()
            .filter_map(|f| {
                let rest = if folder.is_empty() {
                    Some(f.path.as_str())
                } else {
                    f.path.strip_prefix(&format!("{folder}/"))
                };
                rest.map(String::from)
            })
            .collect();
        let mut parts: Vec<(String, Option<String>, Vec<u8>)> = Vec::new();
        for _ in 0..=self.rng.below(3) {
            let n = self.n();
            let earlier = (!parts.is_empty()).then(|| self.rng.pick(&parts).0.clone());
            let name = match (self.rng.below(20), earlier) {
                (0..=7, _) => format!("b{n}.bin"),
                (8..=9, _) => format!("sub{}/c{n}.nc", n % 3),
                (10, _) if !in_folder.is_empty() => self.rng.pick(&in_folder).clone(),
                (11, _) if !in_folder.is_empty() => {
                    // Another spelling of a name already there: in
                    // other letter case or decomposed (NFD).
                    let e = self.rng.pick(&in_folder).clone();
                    let nfd: String = e.nfd().collect();
                    if nfd != e { nfd } else { e.to_uppercase() }
                }
                (12, Some(e)) => e,
                (13, Some(e)) => e.to_uppercase(),
                // A name that makes an earlier one a folder.
                (14, Some(e)) => format!("{e}/inner{n}.bin"),
                (15, _) => format!("Ünïcødé/файл {n}.txt"),
                (16, _) => ["../x{n}", ".git/x{n}", "x{n}.", "a/ b{n}"][n as usize % 4]
                    .replace("{n}", &n.to_string()),
                _ => format!("/b{n}.dat"),
            };
            let path = bulk_path(&folder, &name);
            let content = if self.rng.chance(3) {
                vec![]
            } else {
                self.content("bulk")
            };
            parts.push((name, path, content));
        }
        Act::Bulk {
            by,
            folder: raw_folder,
            rev: self.revision(),
            parts,
        }
    }

    /// Where a move goes: mostly a fresh name; also its own path, its own
    /// path in other letter case, another file's name or folder, a path
    /// inside another file, and names no path may have.
    fn move_target(&mut self, m: &Model, id: u64) -> (String, Option<String>) {
        let n = self.n();
        let own = m.file(id).map(|f| f.path.clone());
        let valid = |p: String| {
            let fits = p.len() <= 255 && p.split('/').count() <= 32;
            (p.clone(), fits.then_some(p))
        };
        match (self.rng.below(10), own) {
            (0, Some(own)) => valid(own),
            (1, Some(own)) => {
                let upper = own.to_uppercase();
                let nfd: String = own.nfd().collect();
                valid(if upper != own { upper } else { nfd })
            }
            (2, Some(own)) => valid(format!("moved{}/{}", n % 3, own)),
            (4, _)
                if m.watches
                    .iter()
                    .any(|(_, w)| matches!(w, MWatch::Folder(_))) =>
            {
                // Into a folder someone watches: they hear of it by the new path.
                let folders: Vec<String> = m
                    .watches
                    .iter()
                    .filter_map(|(_, w)| match w {
                        MWatch::Folder(f) => Some(f.clone()),
                        MWatch::File(_) => None,
                    })
                    .collect();
                let folder = self.rng.pick(&folders).clone();
                if folder.is_empty() {
                    valid(format!("mv{n}.bin"))
                } else {
                    valid(format!("{folder}/mv{n}.bin"))
                }
            }
            (3, _) if !m.files.is_empty() => {
                // Into another file's folder, under a fresh name.
                let other = self.rng.pick(&m.files).path.clone();
                match other.rsplit_once('/') {
                    Some((folder, _)) => valid(format!("{folder}/mv{n}.bin")),
                    None => valid(format!("mv{n}.bin")),
                }
            }
            _ => self.path(m),
        }
    }

    /// Steps sent at once: a change set and a single check-out of one of
    /// its files, a move and a check-out, a change-set check-in and an
    /// override.
    pub(super) fn many_pair(&mut self, m: &Model) -> Step {
        let enabled: Vec<&MUser> = self.enabled_users(m);
        let a = self.rng.pick(&enabled).name.clone();
        let b = self.rng.pick(&enabled).name.clone();
        let admin = self.admin_user(m);
        let f = self.rng.pick(&m.files).clone();
        let take = |by: String| Act::Checkout {
            by,
            id: f.id,
            comment: None,
        };
        match (&f.lock, self.rng.below(3)) {
            (Some(l), 0) => {
                let mine: Vec<u64> = m
                    .files
                    .iter()
                    .filter(|g| g.lock.as_ref().is_some_and(|k| k.owner == l.owner))
                    .map(|g| g.id)
                    .collect();
                let parts = mine
                    .iter()
                    .filter_map(|id| m.file(*id))
                    .map(|g| (g.path.clone(), self.content("race")))
                    .collect();
                Step::Together(vec![
                    Act::CheckinSet {
                        by: l.owner.clone(),
                        parts,
                        major: false,
                    },
                    Act::Override {
                        by: admin,
                        id: f.id,
                    },
                ])
            }
            (_, 1) => {
                let n = self.n();
                Step::Together(vec![
                    Act::Move {
                        by: admin,
                        id: f.id,
                        raw_path: format!("race/mv{n}.bin"),
                        path: Some(format!("race/mv{n}.bin")),
                    },
                    take(b),
                ])
            }
            _ => {
                let mut ids = self.set_ids(m, &a, [80, 0, 0, 20, 0, 0, 0]);
                ids.push(f.id);
                Step::Together(vec![
                    Act::CheckoutSet {
                        by: a,
                        ids,
                        comment: None,
                    },
                    take(b),
                ])
            }
        }
    }
}

/// A bulk part's path: its name under the folder (`forms::bulk_path`), or
/// None when the name alone or the joined path is refused.
fn bulk_path(folder: &str, name: &str) -> Option<String> {
    let name = name.trim().trim_start_matches('/');
    if !name_ok(name) {
        return None;
    }
    let joined = if folder.is_empty() {
        name.to_string()
    } else {
        format!("{folder}/{name}")
    };
    let ok = joined.len() <= 255 && joined.split('/').count() <= 32 && name_ok(&joined);
    ok.then_some(joined)
}

/// The few ways the generator spells a path the server refuses.
fn name_ok(p: &str) -> bool {
    !p.is_empty()
        && p.split('/').all(|part| {
            !part.is_empty()
                && part != ".."
                && part.trim() == part
                && !part.ends_with('.')
                && part.to_lowercase() != ".git"
        })
}
