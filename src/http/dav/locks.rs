//! WebDAV locks as Latch check-outs, for one caller: `LOCK` on a file
//! checks it out ("opened in <client>"), `UNLOCK` checks the holder's draft
//! in (or cancels when there is none). Tokens are kept in redb with the
//! check-out they stand for; a client's timeout ends only the token, never
//! Latch's lock. A file someone else holds is shown, and refused, as
//! locked by them.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dav_server::davpath::DavPath;
use dav_server::ls::{DavLock, DavLockSystem, LsFuture};
use futures_util::FutureExt;
use xmltree::{Element, XMLNode};

use super::Caller;
use super::fs::rel;
use crate::domain::{CommitMessage, LockComment, RepoPath};
use crate::error::AppError;
use crate::files::{DavLockRecord, Files};
use crate::store::{FileRecord, now};

#[derive(Clone)]
pub struct LatchLocks {
    pub files: Files,
    pub caller: Arc<Caller>,
}

impl std::fmt::Debug for LatchLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatchLocks")
            .field("user", &self.caller.actor.username)
            .finish()
    }
}

/// A lock as WebDAV shows it to `viewer`: its owner sees the owner element
/// their client sent, everyone else the Latch holder's name.
fn dav_lock(path: &DavPath, token: &str, rec: &DavLockRecord, viewer: &str) -> DavLock {
    let owner = rec
        .owner_xml
        .as_deref()
        .filter(|_| viewer == rec.username)
        .and_then(|x| Element::parse(x.as_bytes()).ok())
        .unwrap_or_else(|| owner_named(&format!("checked out by {}", rec.username)));
    let timeout_at = rec
        .timeout_at
        .map(|t| UNIX_EPOCH + Duration::from_secs(t.max(0) as u64));
    DavLock {
        token: token.to_string(),
        path: Box::new(path.clone()),
        principal: Some(rec.username.clone()),
        owner: Some(Box::new(owner)),
        timeout_at,
        timeout: rec
            .timeout_at
            .map(|t| Duration::from_secs((t - now()).max(0) as u64)),
        shared: rec.shared,
        deep: rec.file_id == 0,
    }
}

fn owner_named(who: &str) -> Element {
    let mut e = Element::new("owner");
    e.prefix = Some("D".into());
    e.children.push(XMLNode::Text(who.to_string()));
    e
}

/// A file checked out in Latch (the web, the API, Git LFS) without a
/// WebDAV token: shown with its holder, never matched by a client's token.
fn held_in_latch(path: &DavPath, rec: &FileRecord, holder: &str) -> DavLock {
    let comment = rec
        .lock
        .as_ref()
        .and_then(|l| l.comment.clone())
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    DavLock {
        token: latch_token(rec.id),
        path: Box::new(path.clone()),
        principal: Some(holder.to_string()),
        owner: Some(Box::new(owner_named(&format!(
            "checked out by {holder}{comment}"
        )))),
        timeout_at: None,
        timeout: None,
        shared: false,
        deep: false,
    }
}

impl LatchLocks {
    /// Ends the caller's check-out of file `id` as closing it does: a draft
    /// becomes the next minor revision; without one (or one that changed
    /// nothing) the check-out is cancelled. Someone else's (an override
    /// came between) is left alone.
    /// A token that joined a check-out made in the browser leaves it as
    /// it was when closed without a save: the drive did not make it.
    async fn resolve(&self, id: u64, token: &str, joined: bool) -> Result<(), AppError> {
        let me = &self.caller.actor;
        let Ok(file) = self.files.get(id).await else {
            return Ok(());
        };
        if !carries(&file, &me.username, token) {
            return Ok(());
        }
        let message = CommitMessage::parse(&format!("Saved from {}", self.caller.client))?;
        match self.files.checkin_draft(me, id, message).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) | Err(AppError::Invalid(_)) if joined => Ok(()),
            Ok(None) | Err(AppError::Invalid(_)) => self.files.cancel(me, id).await.map(|_| ()),
            Err(e) => Err(e),
        }
    }

    /// Tokens still in force: a client's timeout ends a token (not the
    /// lock), and so does the end of the check-out it stands for (a web
    /// check-in, an override, an expiry).
    async fn tokens(&self) -> Vec<(String, DavLockRecord)> {
        let at = now();
        let all = self.files.dav_locks().await.unwrap_or_default();
        // The tokens' files, found in one pass over the list (this runs for
        // every resource a PROPFIND lists): None when the list is unreadable.
        let wanted: std::collections::HashSet<u64> = all.iter().map(|(_, r)| r.file_id).collect();
        let held: Option<std::collections::HashMap<u64, FileRecord>> =
            match all.iter().any(|(_, r)| r.file_id != 0) {
                false => Some(Default::default()),
                true => self.files.list().await.ok().map(|l| {
                    l.iter()
                        .filter(|f| wanted.contains(&f.id))
                        .map(|f| (f.id, f.clone()))
                        .collect()
                }),
            };
        // A token ends with the check-out that carries it: one made later
        // by the same person does not carry it.
        let ended = |token: &str, rec: &DavLockRecord| {
            rec.file_id != 0
                && held.as_ref().is_some_and(|h| {
                    !h.get(&rec.file_id)
                        .is_some_and(|f| carries(f, &rec.username, token))
                })
        };
        let mut live = Vec::new();
        for (token, mut rec) in all {
            if rec.timeout_at.is_some_and(|t| t <= at) || ended(&token, &rec) {
                let _ = self.files.remove_dav_lock(token).await;
            } else {
                // A file's token is where its file is now: its holder may
                // move it in the browser while it is open. Left at the old
                // path, the client's next save there (with the token) made
                // a new file at the old name, and the close then cancelled
                // the moved file's check-out without the save.
                if let Some(file) = held.as_ref().and_then(|h| h.get(&rec.file_id)) {
                    rec.path = file.path.clone();
                }
                live.push((token, rec));
            }
        }
        live
    }

    /// Whether one of `submitted` names a lock in force on `rel`: a live
    /// WebDAV token given for it (or for a folder above it), or the token
    /// a PROPFIND shows for a check-out made elsewhere, when it is the
    /// caller's.
    async fn names_a_lock_on(&self, rel: &str, submitted: &[String]) -> bool {
        let covering = self.tokens().await.into_iter().any(|(token, r)| {
            submitted.contains(&token)
                && (r.path.as_str() == rel || r.file_id == 0 && within(rel, r.path.as_str()))
        });
        if covering {
            return true;
        }
        self.record_at(rel).await.is_some_and(|rec| {
            rec.locked_by() == Some(self.caller.actor.username.as_str())
                && submitted.contains(&latch_token(rec.id))
        })
    }

    async fn record_at(&self, rel: &str) -> Option<FileRecord> {
        let list = self.files.list().await.ok()?;
        list.iter().find(|f| f.path.as_str() == rel).cloned()
    }

    fn owner_xml(owner: Option<&Element>) -> Option<String> {
        let mut out = Vec::new();
        owner?.write(&mut out).ok()?;
        let text = String::from_utf8(out).ok()?;
        // Stored as the client sent it, within reason.
        (text.len() <= 4096).then_some(text)
    }

    fn timeout_at(timeout: Option<Duration>) -> Option<i64> {
        // A client asking for "Infinite" gets a day; it refreshes.
        let secs = timeout
            .map(|t| t.as_secs())
            .unwrap_or(86_400)
            .min(86_400 * 7);
        Some(now() + secs as i64)
    }
}

/// Whether `a` is `b` or lies under it (vault-relative paths).
fn within(a: &str, b: &str) -> bool {
    b.is_empty() || a == b || a.starts_with(&format!("{b}/"))
}

impl DavLockSystem for LatchLocks {
    fn lock(
        &self,
        path: &DavPath,
        _principal: Option<&str>,
        owner: Option<&Element>,
        timeout: Option<Duration>,
        shared: bool,
        deep: bool,
    ) -> LsFuture<'_, Result<DavLock, DavLock>> {
        let path = path.clone();
        let owner = Self::owner_xml(owner);
        async move {
            let me = self.caller.actor.clone();
            let Ok(rel) = rel(&path) else {
                return Err(held_nowhere(&path));
            };
            // One grant at a time, until the token is recorded: otherwise
            // two people locking a free name at once both find nothing in
            // the way (a file's check-out would stop the second, but a
            // name with no file or an empty folder has none).
            let _turn = self.files.dav_lock_turn().await;
            let tokens = self.tokens().await;
            // One exclusive lock per name and none inside a locked folder;
            // shared ones only among the holder's own programs.
            if let Some((token, rec)) = tokens.iter().find(|(_, r)| {
                let overlaps = r.path.as_str() == rel
                    || within(&rel, r.path.as_str()) && r.file_id == 0
                    || deep && within(r.path.as_str(), &rel);
                overlaps && !(shared && r.shared && r.username == me.username)
            }) {
                self.caller.locked(format!(
                    "{} is checked out by {}, and open in their WebDAV client.",
                    rec.path, rec.username
                ));
                return Err(dav_lock(&path, token, rec, &me.username));
            }
            let list = match self.files.list().await {
                Ok(list) => list,
                Err(e) => {
                    self.caller.refused(e);
                    return Err(held_nowhere(&path));
                }
            };
            let comment = LockComment::parse(&format!("opened in {}", self.caller.client))
                .ok()
                .flatten();
            let file = list.iter().find(|f| f.path.as_str() == rel).cloned();
            let mut files = Vec::new();
            let mut joined = false;
            let file_id = match &file {
                Some(rec) => match rec.locked_by() {
                    Some(holder) if holder != me.username => {
                        self.caller.locked(format!(
                            "{} is checked out by {holder}; it opens read-only until they check it in.",
                            rec.path
                        ));
                        return Err(held_in_latch(&path, rec, holder));
                    }
                    // Already the caller's (from the web): the token joins it.
                    Some(_) => {
                        joined = true;
                        rec.id
                    }
                    None => match self.files.checkout(&me, rec.id, comment).await {
                        Ok(rec) => rec.id,
                        Err(e) => {
                            // Lost a race, reserved for someone else…: said as it is.
                            self.caller.refused(e);
                            return Err(held_nowhere(&path));
                        }
                    },
                },
                // A folder: every file in it is checked out, all or none.
                // A name with nothing yet (a file about to be saved): the
                // lock is WebDAV's alone until a file lands there.
                None => {
                    let under = format!("{rel}/");
                    let ids: Vec<u64> = list
                        .iter()
                        .filter(|f| rel.is_empty() || f.path.as_str().starts_with(&under))
                        .filter(|f| f.locked_by() != Some(me.username.as_str()))
                        .map(|f| f.id)
                        .collect();
                    if !ids.is_empty() {
                        match self.files.checkout_set(&me, &ids, comment).await {
                            Ok(_) => files = ids,
                            Err(AppError::Held { message, .. }) => {
                                self.caller.locked(message);
                                return Err(held_nowhere(&path));
                            }
                            Err(e) => {
                                self.caller.refused(e);
                                return Err(held_nowhere(&path));
                            }
                        }
                    }
                    0
                }
            };
            let token = format!("opaquelocktoken:{}", uuid_like());
            let rec = DavLockRecord {
                file_id,
                path: RepoPath::from_stored(rel),
                username: me.username.clone(),
                owner_xml: owner,
                locked_at: now(),
                timeout_at: Self::timeout_at(timeout),
                shared,
                files,
                joined,
            };
            if let Err(e) = self.files.put_dav_lock(token.clone(), rec.clone()).await {
                self.caller.refused(e);
                return Err(held_nowhere(&path));
            }
            let mut lock = dav_lock(&path, &token, &rec, &self.caller.actor.username);
            lock.deep = deep;
            lock.shared = shared;
            Ok(lock)
        }
        .boxed()
    }

    fn unlock(&self, path: &DavPath, token: &str) -> LsFuture<'_, Result<(), ()>> {
        let token = token.to_string();
        let path = path.clone();
        async move {
            let me = self.caller.actor.clone();
            // Read once: the token itself, and the caller's others below.
            let (mine, others): (Vec<_>, Vec<_>) =
                self.tokens().await.into_iter().partition(|(t, _)| *t == token);
            let Some((_, rec)) = mine.into_iter().next() else {
                self.caller.refused(AppError::Conflict(
                    "That lock token is not in force: it timed out, its check-out ended (checked in, cancelled or overridden), or it was never given.".into(),
                ));
                return Err(());
            };
            let rel = rel(&path).unwrap_or_default();
            // Closed where the file is now, or where it was opened (the
            // client does not know its holder moved it in the browser):
            // either way the close ends the check-out the token stands for.
            let opened_at = self
                .files
                .dav_locks()
                .await
                .unwrap_or_default()
                .into_iter()
                .find(|(t, _)| *t == token)
                .map(|(_, r)| r.path);
            let here = rec.path.as_str() == rel
                || opened_at.is_some_and(|p| p.as_str() == rel);
            if rec.username != me.username || !here {
                self.caller.refused(AppError::Forbidden(
                    "That lock token is someone else's, or another file's.".into(),
                ));
                return Err(());
            }
            // Closing the file (or folder): each file it checked out is
            // resolved once no other token of the caller still holds it.
            let ids = (rec.file_id != 0)
                .then_some(rec.file_id)
                .into_iter()
                .chain(rec.files.iter().copied());
            for id in ids.collect::<Vec<_>>() {
                if others
                    .iter()
                    .any(|(_, o)| o.file_id == id || o.files.contains(&id))
                {
                    continue;
                }
                if let Err(e) = self.resolve(id, &token, rec.joined && id == rec.file_id).await {
                    self.caller.refused(e);
                    return Err(());
                }
            }
            if let Err(e) = self.files.remove_dav_lock(token).await {
                self.caller.refused(e);
                return Err(());
            }
            Ok(())
        }
        .boxed()
    }

    fn refresh(
        &self,
        path: &DavPath,
        token: &str,
        timeout: Option<Duration>,
    ) -> LsFuture<'_, Result<DavLock, ()>> {
        let token = token.to_string();
        let path = path.clone();
        async move {
            let Some((_, mut rec)) = self.tokens().await.into_iter().find(|(t, _)| *t == token)
            else {
                return Err(());
            };
            if rec.username != self.caller.actor.username {
                return Err(());
            }
            rec.timeout_at = Self::timeout_at(timeout);
            self.files
                .put_dav_lock(token.clone(), rec.clone())
                .await
                .map_err(|_| ())?;
            Ok(dav_lock(&path, &token, &rec, &self.caller.actor.username))
        }
        .boxed()
    }

    fn check(
        &self,
        path: &DavPath,
        _principal: Option<&str>,
        ignore_principal: bool,
        deep: bool,
        submitted: &[String],
    ) -> LsFuture<'_, Result<(), DavLock>> {
        let path = path.clone();
        let submitted = submitted.to_vec();
        async move {
            let me = self.caller.actor.username.clone();
            let Ok(rel) = rel(&path) else {
                return Ok(());
            };
            // dav-server asks this way (and only this way) to evaluate a
            // lock token in an `If` header. RFC 4918 §10.4.8: it holds only
            // if the token names a lock in force on this resource. "Nothing
            // stops a write here" is not that: a token that ended (an
            // override, a move) would let a save through to whatever the
            // path holds now, or make a new file there (412 instead).
            if ignore_principal {
                return match self.names_a_lock_on(&rel, &submitted).await {
                    true => Ok(()),
                    false => Err(held_nowhere(&path)),
                };
            }
            // Latch's own locks: someone else's file is theirs alone.
            if let Ok(list) = self.files.list().await {
                for f in list.iter() {
                    let hit = f.path.as_str() == rel || deep && within(f.path.as_str(), &rel);
                    if let Some(holder) = f.locked_by().filter(|h| *h != me)
                        && hit
                    {
                        self.caller.locked(format!(
                            "{} is checked out by {holder}; it opens read-only until they check it in.",
                            f.path
                        ));
                        return Err(held_in_latch(&path, f, holder));
                    }
                }
            }
            // WebDAV tokens: a change under one needs it submitted, even by
            // its owner (another program of theirs must not save over it),
            // and by its owner only: every `PROPFIND` shows a lock's token,
            // so someone else submitting it proves nothing.
            for (token, rec) in self.tokens().await {
                let covers = within(&rel, rec.path.as_str())
                    && (rec.path.as_str() == rel || rec.file_id == 0)
                    || deep && within(rec.path.as_str(), &rel);
                let mine = submitted.contains(&token) && rec.username == me;
                if covers && !mine {
                    self.caller.locked(format!(
                        "{} is checked out by {} and open in a WebDAV client; only a request with its lock token may change it.",
                        rec.path, rec.username
                    ));
                    return Err(dav_lock(&path, &token, &rec, &self.caller.actor.username));
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn discover(&self, path: &DavPath) -> LsFuture<'_, Vec<DavLock>> {
        let path = path.clone();
        async move {
            let Ok(rel) = rel(&path) else {
                return Vec::new();
            };
            let mut found: Vec<DavLock> = self
                .tokens()
                .await
                .iter()
                .filter(|(_, r)| {
                    r.path.as_str() == rel || r.file_id == 0 && within(&rel, r.path.as_str())
                })
                .map(|(t, r)| dav_lock(&path, t, r, &self.caller.actor.username))
                .collect();
            if found.is_empty()
                && let Some(rec) = self.record_at(&rel).await
                && let Some(holder) = rec.locked_by()
            {
                found.push(held_in_latch(&path, &rec, holder));
            }
            found
        }
        .boxed()
    }

    fn delete(&self, path: &DavPath) -> LsFuture<'_, Result<(), ()>> {
        let path = path.clone();
        async move {
            let Ok(rel) = rel(&path) else {
                return Ok(());
            };
            for (token, rec) in self.tokens().await {
                if within(rec.path.as_str(), &rel) {
                    let _ = self.files.remove_dav_lock(token).await;
                }
            }
            Ok(())
        }
        .boxed()
    }
}

/// Whether `file` is checked out to `who` by the check-out `token` stands for.
fn carries(file: &FileRecord, who: &str, token: &str) -> bool {
    file.lock
        .as_ref()
        .is_some_and(|l| l.owner == who && l.dav_tokens.iter().any(|t| t == token))
}

/// The token a PROPFIND shows for file `id` checked out in Latch without
/// a WebDAV token.
fn latch_token(id: u64) -> String {
    format!("urn:latch:checked-out:{id}")
}

/// A refusal with no holder to name (the sentence says why).
fn held_nowhere(path: &DavPath) -> DavLock {
    DavLock {
        token: String::new(),
        path: Box::new(path.clone()),
        principal: None,
        owner: None,
        timeout_at: Some(SystemTime::now()),
        timeout: None,
        shared: false,
        deep: false,
    }
}

/// A random token body in the UUID layout clients expect.
fn uuid_like() -> String {
    let h = crate::secret::random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
