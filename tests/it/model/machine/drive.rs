//! The network drive (`/dav`) in the model: `LOCK` as a check-out ("opened
//! in <client>") or, on a file the caller already holds, a token joining
//! it; a holder's `PUT` as a draft; `UNLOCK` as the draft's check-in (a
//! minor revision), else a cancel (unless the token joined a check-out made
//! elsewhere, which it then leaves). Tokens are carried by the check-out
//! they stand for and die with it, whatever ends it; a token follows its
//! file when the holder moves it in the browser (the close may name either
//! path).

use super::{Act, Gen, MAX_PART, MLock, Model, Outcome, changed, ev, rev_string, same};

/// The `User-Agent` the model's WebDAV requests send, and the name the
/// server makes of it for "opened in …".
pub(super) const CLIENT: &str = "LatchModel/1.0 (model test)";
const CLIENT_NAME: &str = "LatchModel";

/// A WebDAV lock token as the model knows it; its index in `Model::dav`
/// is its slot, and the harness keeps the server's token string at the
/// same index.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct MToken {
    pub user: String,
    pub file_id: u64,
    /// The path the token was given for (the file may have moved since).
    pub path: String,
    /// It joined a check-out made elsewhere (the web, the API, Git LFS).
    pub joined: bool,
}

impl Model {
    /// Whether token `slot` is in force: the check-out it stands for goes
    /// on, and its owner's account is enabled (a disabled account's tokens
    /// hold nothing; its check-outs stay for an admin to override).
    pub(super) fn token_live(&self, slot: usize) -> bool {
        let enabled = self
            .dav
            .get(slot)
            .and_then(|t| self.user(&t.user))
            .is_some_and(|u| !u.disabled);
        enabled
            && self
                .files
                .iter()
                .any(|f| f.lock.as_ref().is_some_and(|l| l.tokens.contains(&slot)))
    }

    /// The live tokens of the file now at `path`.
    fn tokens_on(&self, path: &str) -> Vec<(usize, &MToken)> {
        self.dav
            .iter()
            .enumerate()
            .filter(|(slot, t)| {
                self.token_live(*slot) && self.file(t.file_id).is_some_and(|f| f.path == path)
            })
            .collect()
    }
}

/// `/dav/` and the path, each byte outside the unreserved set escaped.
pub(super) fn dav_url(base: &str, path: &str) -> String {
    let mut out = format!("{base}/dav/");
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `LOCK` of file `id` at `path` by `by` (an enabled user).
pub(super) fn lock(m: &Model, by: &str, id: u64, path: &str) -> Vec<Outcome> {
    let Some(f) = m.file(id).filter(|f| f.path == path) else {
        // The generator locks only files the model has, where it has them.
        return vec![];
    };
    // Open in someone's WebDAV client already (theirs or the caller's own
    // other program): 423, naming them.
    if !m.tokens_on(path).is_empty() {
        return same(m, 423);
    }
    let slot = m.dav.len();
    let mut next = m.clone();
    match &f.lock {
        Some(l) if l.owner != by => same(m, 423),
        // The caller's own check-out from elsewhere: the token joins it.
        Some(_) => {
            if let Some(l) = next.file_mut(id).lock.as_mut() {
                l.tokens.push(slot);
            }
            next.dav.push(MToken {
                user: by.to_string(),
                file_id: id,
                path: path.to_string(),
                joined: true,
            });
            changed(200, next, vec![])
        }
        // Reserved for someone else: locked to the caller until then.
        None if f.reserved.as_ref().is_some_and(|r| r != by) => same(m, 423),
        None => {
            let g = next.file_mut(id);
            g.reserved = None;
            g.queue.retain(|q| q != by);
            g.lock = Some(MLock {
                owner: by.to_string(),
                comment: Some(format!("opened in {CLIENT_NAME}")),
                draft: None,
                tokens: vec![slot],
            });
            next.dav.push(MToken {
                user: by.to_string(),
                file_id: id,
                path: path.to_string(),
                joined: false,
            });
            changed(200, next, vec![ev("locked", id, by)])
        }
    }
}

/// `PUT` of `content` over file `id` at `path` by `by`, with the caller's
/// token for that path when they have one (the generator sends it).
pub(super) fn put(m: &Model, by: &str, id: u64, path: &str, content: &[u8]) -> Vec<Outcome> {
    let Some(f) = m.file(id).filter(|f| f.path == path) else {
        return vec![];
    };
    // Someone else's token on the path: only a request with it may write.
    if m.tokens_on(path).iter().any(|(_, t)| t.user != by) {
        return same(m, 423);
    }
    match &f.lock {
        Some(l) if l.owner == by => {
            let mut next = m.clone();
            if let Some(l) = next.file_mut(id).lock.as_mut() {
                l.draft = Some(content.to_vec());
            }
            changed(204, next, vec![])
        }
        // Nobody's or someone else's: read-only to the caller.
        _ => same(m, 423),
    }
}

/// `UNLOCK` of token `slot` by `by`.
pub(super) fn unlock(m: &Model, by: &str, slot: usize) -> Vec<Outcome> {
    let Some(t) = m.dav.get(slot) else {
        return vec![];
    };
    if !m.token_live(slot) {
        return same(m, 409);
    }
    if t.user != by {
        return same(m, 403);
    }
    let mut next = m.clone();
    let id = t.file_id;
    // Another token of the caller still has the file open: only this
    // token ends.
    let others = m
        .dav
        .iter()
        .enumerate()
        .any(|(s, o)| s != slot && o.file_id == id && m.token_live(s));
    let Some(f) = next.files.iter_mut().find(|f| f.id == id) else {
        return vec![];
    };
    let Some(lock) = f.lock.as_mut() else {
        return vec![];
    };
    lock.tokens.retain(|s| *s != slot);
    if others {
        return changed(204, next, vec![]);
    }
    let gone = super::gone_users(m);
    let (a, b) = f.rev;
    let saved = lock
        .draft
        .clone()
        .filter(|d| !d.is_empty() && *d != f.content && b < MAX_PART);
    let mut events = Vec::new();
    match saved {
        Some(draft) => {
            f.rev = (a, b + 1);
            f.content = draft;
            f.revisions.push(rev_string(f.rev));
            events.push(ev("checked_in", id, by));
            f.end_lock(by, &mut events, &gone);
        }
        // Closed unsaved: a check-out the drive did not make stays.
        None if t.joined => {}
        None => {
            events.push(ev("unlocked", id, by));
            f.end_lock(by, &mut events, &gone);
        }
    }
    changed(204, next, events)
}

/// A SIGKILL after an `UNLOCK`'s draft check-in reached Git but before the
/// database recorded it: the commit is applied at start from Git, and the
/// check-out (its draft and tokens too) is kept.
pub(super) fn unlock_reconciled(m: &Model, done: &Outcome, slot: usize) -> Option<Model> {
    let id = m.dav.get(slot)?.file_id;
    if done.events.first().is_none_or(|e| e.kind != "checked_in") {
        return None;
    }
    let mut kept = done.model.clone();
    let before = m.file(id)?.clone();
    let g = kept.file_mut(id);
    g.lock = before.lock;
    g.queue = before.queue;
    g.reserved = before.reserved;
    kept.inbox = m.inbox.clone();
    kept.notes_made = m.notes_made;
    kept.tell(m, &done.events[..1]);
    Some(kept)
}

impl Gen {
    /// A step through the drive: mostly going on with a session someone
    /// has open (a save, or closing it), else opening a file, now and then
    /// by someone it is not theirs to open, or with a token that has ended
    /// or is not theirs.
    pub(super) fn dav_op(&mut self, m: &Model) -> Act {
        if self.rng.chance(70)
            && let Some(act) = self.dav_session_op(m)
        {
            return act;
        }
        if !m.dav.is_empty() && self.rng.chance(8) {
            // Any token at all: ended ones are refused (409).
            let slot = self.rng.below(m.dav.len() as u64) as usize;
            let t = m.dav[slot].clone();
            return Act::DavUnlock {
                by: t.user,
                slot,
                path: t.path,
            };
        }
        if m.files.is_empty() {
            return self.upload(m);
        }
        let f = self.rng.pick(&m.files).clone();
        if self.rng.chance(25) {
            let by = self.holder_or_any(m, f.id);
            return self.dav_put(m, by, f.id, f.path.clone(), &f.content);
        }
        Act::DavLock {
            by: self.claimant_or_any(m, f.id),
            id: f.id,
            path: f.path,
        }
    }

    /// A save or a close in a session someone has open (None: no session).
    pub(super) fn dav_session_op(&mut self, m: &Model) -> Option<Act> {
        let live: Vec<usize> = (0..m.dav.len()).filter(|s| m.token_live(*s)).collect();
        if live.is_empty() {
            return None;
        }
        let slot = *self.rng.pick(&live);
        let t = m.dav[slot].clone();
        if self.rng.chance(60)
            && let Some(f) = m.file(t.file_id)
        {
            let by = if self.rng.chance(85) {
                t.user.clone()
            } else {
                self.any_user(m)
            };
            return Some(self.dav_put(m, by, f.id, f.path.clone(), &f.content));
        }
        let by = if self.rng.chance(88) {
            t.user.clone()
        } else {
            self.any_user(m)
        };
        // Where the file is now, or where it was opened (a client does not
        // know the holder moved it in the browser).
        let path = match m.file(t.file_id) {
            Some(f) if self.rng.chance(50) => f.path.clone(),
            _ => t.path,
        };
        Some(Act::DavUnlock { by, slot, path })
    }

    fn dav_put(&mut self, m: &Model, by: String, id: u64, path: String, current: &[u8]) -> Act {
        let content = match self.rng.below(20) {
            0 => Vec::new(),
            1..=2 => current.to_vec(),
            _ => self.content("draft"),
        };
        let token = m
            .tokens_on(&path)
            .into_iter()
            .find(|(_, t)| t.user == by)
            .map(|(slot, _)| slot);
        Act::DavPut {
            by,
            id,
            path,
            token,
            content,
        }
    }
}
