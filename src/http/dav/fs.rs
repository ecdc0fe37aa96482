//! The vault as a WebDAV file system, for one caller: folders come from
//! file paths (and folders kept by `MKCOL`), a file reads from Git (or,
//! for its holder, from their draft), and every change is the operation
//! the browser would call — upload, draft, move, copy (an upload), delete.
//! Long because dav-server's `DavFileSystem` is implemented here whole,
//! each method mapping one WebDAV verb onto one Latch operation.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavFileSystem, DavMetaData, DavProp, FsError, FsFuture, FsStream,
    OpenOptions, ReadDirMeta,
};
use futures_util::FutureExt;
use poem::http::StatusCode;

use super::Caller;
use super::file::{Entry, Reader, Source, Target, Writer};
use crate::domain::{Description, RepoPath, Revision};
use crate::error::{AppError, AppResult};
use crate::files::{DeadProp, Files, NewFile};
use crate::store::FileRecord;

/// The caller's view of the vault.
#[derive(Clone)]
pub struct LatchFs {
    pub files: Files,
    pub caller: Arc<Caller>,
}

/// What a path names.
pub(super) enum Node {
    File(Box<FileRecord>),
    Folder {
        modified: i64,
    },
    /// A name the caller's client locked before saving anything there
    /// (RFC 4918's "locked empty resource", locked at this time). It must
    /// be seen as an empty file: davfs2 takes the `201` of that `LOCK` to
    /// mean the file now exists on the server, and a folder listing
    /// without it makes davfs2 drop the copy it has not sent yet. It ends
    /// with its lock (`UNLOCK` with nothing saved leaves no file) or
    /// becomes an upload at the first `PUT`.
    Pending {
        locked_at: i64,
    },
}

/// The tag of a pending name's empty content (stable, so a client's
/// `If-Match` from `HEAD` holds at its `PUT`).
const PENDING_ETAG: &str = "locked-empty";

fn pending_meta(locked_at: i64) -> Meta {
    Meta {
        len: 0,
        modified: locked_at,
        dir: false,
        etag: Some(PENDING_ETAG.to_string()),
    }
}

/// Whether `a` is `b` or lies under it (vault-relative paths).
pub(super) fn within(a: &str, b: &str) -> bool {
    b.is_empty() || a == b || a.starts_with(&format!("{b}/"))
}

/// The vault-relative path of a WebDAV path: no leading or trailing `/`.
pub fn rel(path: &DavPath) -> Result<String, FsError> {
    let raw = std::str::from_utf8(path.as_bytes()).map_err(|_| FsError::NotFound)?;
    Ok(raw.trim_matches('/').to_string())
}

#[derive(Debug, Clone)]
pub struct Meta {
    pub(super) len: u64,
    pub(super) modified: i64,
    pub(super) dir: bool,
    pub(super) etag: Option<String>,
}

impl DavMetaData for Meta {
    fn len(&self) -> u64 {
        self.len
    }
    fn modified(&self) -> Result<SystemTime, FsError> {
        Ok(UNIX_EPOCH + Duration::from_secs(self.modified.max(0) as u64))
    }
    fn is_dir(&self) -> bool {
        self.dir
    }
    fn etag(&self) -> Option<String> {
        self.etag.clone()
    }
    // Git keeps no creation time; the version's time stands for it, so
    // clients that ask (davfs2, Windows) get an answer, not an omission.
    fn created(&self) -> Result<SystemTime, FsError> {
        self.modified()
    }
    fn executable(&self) -> Result<bool, FsError> {
        Ok(false)
    }
}

impl LatchFs {
    pub(super) fn refuse(&self, err: AppError) -> FsError {
        let fs_err = match &err {
            AppError::NotFound(_) => FsError::NotFound,
            AppError::Forbidden(_) | AppError::Unauthenticated(_) => FsError::Forbidden,
            AppError::Conflict(_) | AppError::Held { .. } => FsError::Exists,
            AppError::TooLarge(_) => FsError::TooLarge,
            AppError::Internal(_) => FsError::GeneralFailure,
            _ => FsError::Forbidden,
        };
        self.caller.refused(err);
        fs_err
    }

    pub(super) fn meta_of(&self, rec: &FileRecord) -> Meta {
        // The holder sees their draft: its size, time and tag.
        if let Some(lock) = rec
            .lock
            .as_ref()
            .filter(|l| l.owner == self.caller.actor.username)
            && let Some(draft) = &lock.draft
        {
            return Meta {
                len: draft.size,
                modified: draft.saved_at,
                dir: false,
                etag: Some(format!("draft-{}", draft.file)),
            };
        }
        Meta {
            len: rec.size,
            modified: rec.modified_at,
            dir: false,
            etag: Some(rec.blob.to_string()),
        }
    }

    pub(super) async fn node(&self, rel: &str) -> Result<Node, FsError> {
        let list = self.files.list().await.map_err(|e| self.refuse(e))?;
        if rel.is_empty() {
            let modified = list.iter().map(|f| f.modified_at).max().unwrap_or(0);
            return Ok(Node::Folder { modified });
        }
        if let Some(rec) = list.iter().find(|f| f.path.as_str() == rel) {
            return Ok(Node::File(Box::new(rec.clone())));
        }
        let under = format!("{rel}/");
        let inside: Vec<&FileRecord> = list
            .iter()
            .filter(|f| f.path.as_str().starts_with(&under))
            .collect();
        if !inside.is_empty() {
            let modified = inside.iter().map(|f| f.modified_at).max().unwrap_or(0);
            return Ok(Node::Folder { modified });
        }
        let kept = self
            .files
            .kept_folders()
            .await
            .map_err(|e| self.refuse(e))?;
        if kept.iter().any(|k| k == rel || k.starts_with(&under)) {
            return Ok(Node::Folder { modified: 0 });
        }
        match self.pending().await.into_iter().find(|(p, _)| p == rel) {
            Some((_, locked_at)) => Ok(Node::Pending { locked_at }),
            None => Err(FsError::NotFound),
        }
    }

    /// Names locked on the drive with nothing saved there yet (see
    /// [`Node::Pending`]), with when each was locked; a timed-out lock
    /// names nothing. A name that is a file or folder is that instead.
    async fn pending(&self) -> Vec<(String, i64)> {
        let at = crate::store::now();
        self.files
            .dav_locks()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, r)| r.file_id == 0 && r.files.is_empty())
            .filter(|(_, r)| r.timeout_at.is_none_or(|t| t > at))
            .map(|(_, r)| (r.path.as_str().to_string(), r.locked_at))
            .collect()
    }

    async fn file_at(&self, rel: &str) -> Result<Box<FileRecord>, FsError> {
        match self.node(rel).await? {
            Node::File(rec) => Ok(rec),
            Node::Folder { .. } => Err(FsError::Forbidden),
            // Nothing to read, copy or keep properties of yet.
            Node::Pending { .. } => Err(FsError::NotFound),
        }
    }

    /// A new name, parsed as every new path is.
    pub(super) fn new_path(&self, rel: &str) -> Result<RepoPath, FsError> {
        RepoPath::parse(rel).map_err(|e| self.refuse(e.into()))
    }

    /// Refuses (409) a new file or folder whose parent folder is not there,
    /// as WebDAV asks: clients make folders first.
    pub(super) async fn require_parent(&self, path: &RepoPath) -> Result<(), FsError> {
        let parent = path.folder();
        match self.node(parent).await {
            Ok(Node::Folder { .. }) => Ok(()),
            _ => {
                self.caller.refused(AppError::Conflict(format!(
                    "The folder {parent} does not exist; make it first."
                )));
                Err(FsError::NotFound)
            }
        }
    }

    /// Where a path's dead properties are kept: a file's by its id (they
    /// follow it through moves), a folder's by its path.
    /// The properties a client set on `path`.
    async fn dead_props_at(&self, path: &DavPath) -> Result<Vec<DeadProp>, FsError> {
        let key = self.props_key(path).await?;
        self.files.dead_props(key).await.map_err(|e| self.refuse(e))
    }

    async fn props_key(&self, path: &DavPath) -> Result<String, FsError> {
        let rel = rel(path)?;
        Ok(match self.node(&rel).await? {
            Node::File(rec) => format!("file:{}", rec.id),
            Node::Folder { .. } => format!("folder:{rel}"),
            Node::Pending { .. } => {
                return Err(self.refuse(AppError::Conflict(format!(
                    "{rel} has nothing saved yet; its properties can be set once it has."
                ))));
            }
        })
    }

    /// Keeps the folders `old` was in when it was their last file: on a
    /// drive, emptying a folder does not remove it.
    async fn keep_emptied(&self, old: &str) {
        let folder = RepoPath::from_stored(old).folder().to_string();
        let mut upto = String::new();
        for part in folder.split('/').filter(|p| !p.is_empty()) {
            if !upto.is_empty() {
                upto.push('/');
            }
            upto.push_str(part);
            if let Err(FsError::NotFound) = self.node(&upto).await {
                let path = RepoPath::from_stored(upto.clone());
                let _ = self.files.keep_folder(&self.caller.actor, path).await;
            }
        }
    }

    /// Spools a copy of `source`, read in chunks off the async workers.
    pub(super) async fn copy_to_spool(&self, source: Source) -> AppResult<crate::vault::Spool> {
        let mut out = self.files.spool_writer().await?;
        let files = self.files.clone();
        let mut reader = Some(tokio::task::spawn_blocking(move || source.open(&files)).await??);
        while let Some(mut r) = reader.take() {
            let (r, chunk) = tokio::task::spawn_blocking(move || {
                let mut chunk = vec![0u8; 256 * 1024];
                let n = r.read(&mut chunk)?;
                chunk.truncate(n);
                Ok::<_, std::io::Error>((r, chunk))
            })
            .await??;
            if !chunk.is_empty() {
                out.write(&chunk).await?;
                reader = Some(r);
            }
        }
        out.finish().await
    }

    pub(super) async fn upload(
        &self,
        path: RepoPath,
        spool: crate::vault::Spool,
    ) -> AppResult<FileRecord> {
        let new = NewFile {
            path,
            description: Description::parse("")?,
            revision: Revision::parse("1.0")?,
        };
        self.files.upload(&self.caller.actor, new, spool).await
    }
}

impl DavFileSystem for LatchFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        async move {
            let rel = rel(path)?;
            if !options.write {
                if let Node::Pending { locked_at } = self.node(&rel).await? {
                    return Ok(Box::new(Reader {
                        files: self.files.clone(),
                        source: Source::Empty,
                        meta: pending_meta(locked_at),
                        state: Mutex::new(None),
                        pos: 0,
                    }) as Box<dyn DavFile>);
                }
                let rec = self.file_at(&rel).await?;
                let source = match self.files.draft_of(&self.caller.actor, &rec) {
                    Some((draft, _)) => Source::Draft(draft),
                    None => Source::Blob(rec.blob),
                };
                let meta = self.meta_of(&rec);
                return Ok(Box::new(Reader {
                    files: self.files.clone(),
                    source,
                    meta,
                    state: Mutex::new(None),
                    pos: 0,
                }) as Box<dyn DavFile>);
            }
            let target = match self.node(&rel).await {
                Ok(Node::File(rec)) => {
                    if options.create_new {
                        return Err(FsError::Exists);
                    }
                    // Only the holder saves over a file, and that is a draft.
                    match rec.locked_by() {
                        Some(holder) if holder == self.caller.actor.username => {}
                        Some(holder) => {
                            self.caller.locked(format!(
                                "{} is checked out by {holder}; it opens read-only until they check it in.",
                                rec.path
                            ));
                            return Err(FsError::Forbidden);
                        }
                        None => {
                            self.caller.locked(format!(
                                "Check {} out first (open it for editing, or lock it) to save over it.",
                                rec.path
                            ));
                            return Err(FsError::Forbidden);
                        }
                    }
                    Target::Draft(rec)
                }
                Ok(Node::Folder { .. }) => return Err(FsError::Forbidden),
                // The first save to a name locked empty: an upload.
                Ok(Node::Pending { .. }) => {
                    let path = self.new_path(&rel)?;
                    self.require_parent(&path).await?;
                    Target::New(path)
                }
                Err(FsError::NotFound) => {
                    if !options.create {
                        return Err(FsError::NotFound);
                    }
                    let path = self.new_path(&rel)?;
                    self.require_parent(&path).await?;
                    Target::New(path)
                }
                Err(e) => return Err(e),
            };
            let spool = self
                .files
                .spool_writer()
                .await
                .map_err(|e| self.refuse(e))?;
            Ok(Box::new(Writer {
                fs: self.clone(),
                target,
                expected: options.size,
                spool: Some(spool),
                done: None,
            }) as Box<dyn DavFile>)
        }
        .boxed()
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        async move {
            let rel = rel(path)?;
            match self.node(&rel).await? {
                Node::File(_) | Node::Pending { .. } => return Err(FsError::Forbidden),
                Node::Folder { .. } => {}
            }
            let prefix = if rel.is_empty() {
                String::new()
            } else {
                format!("{rel}/")
            };
            let list = self.files.list().await.map_err(|e| self.refuse(e))?;
            let kept = self
                .files
                .kept_folders()
                .await
                .map_err(|e| self.refuse(e))?;
            let mut entries: std::collections::BTreeMap<String, Meta> = Default::default();
            for rec in list.iter() {
                let Some(rest) = rec.path.as_str().strip_prefix(&prefix) else {
                    continue;
                };
                match rest.split_once('/') {
                    None => {
                        entries.insert(rest.to_string(), self.meta_of(rec));
                    }
                    Some((folder, _)) => {
                        let e = entries.entry(folder.to_string()).or_insert(Meta {
                            len: 0,
                            modified: 0,
                            dir: true,
                            etag: None,
                        });
                        e.modified = e.modified.max(rec.modified_at);
                    }
                }
            }
            for k in &kept {
                if let Some(rest) = k.strip_prefix(&prefix) {
                    let name = rest.split('/').next().unwrap_or(rest);
                    entries.entry(name.to_string()).or_insert(Meta {
                        len: 0,
                        modified: 0,
                        dir: true,
                        etag: None,
                    });
                }
            }
            for (name, locked_at) in self.pending().await {
                if let Some(rest) = name.strip_prefix(&prefix)
                    && !rest.contains('/')
                {
                    entries
                        .entry(rest.to_string())
                        .or_insert(pending_meta(locked_at));
                }
            }
            let items: Vec<Result<Box<dyn DavDirEntry>, FsError>> = entries
                .into_iter()
                .map(|(name, meta)| Ok(Box::new(Entry { name, meta }) as Box<dyn DavDirEntry>))
                .collect();
            Ok(Box::pin(futures_util::stream::iter(items)) as FsStream<Box<dyn DavDirEntry>>)
        }
        .boxed()
    }

    fn metadata<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, Box<dyn DavMetaData>> {
        async move {
            let rel = rel(path)?;
            Ok(match self.node(&rel).await? {
                Node::File(rec) => Box::new(self.meta_of(&rec)) as Box<dyn DavMetaData>,
                Node::Folder { modified } => Box::new(Meta {
                    len: 0,
                    modified,
                    dir: true,
                    etag: None,
                }),
                Node::Pending { locked_at } => Box::new(pending_meta(locked_at)),
            })
        }
        .boxed()
    }

    fn create_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            let rel = rel(path)?;
            if self.node(&rel).await.is_ok() {
                return Err(FsError::Exists);
            }
            let path = self.new_path(&rel)?;
            self.require_parent(&path).await?;
            self.files
                .keep_folder(&self.caller.actor, path)
                .await
                .map_err(|e| self.refuse(e))
        }
        .boxed()
    }

    fn remove_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            let rel = rel(path)?;
            if rel.is_empty() {
                return Err(self.refuse(AppError::Forbidden(
                    "The top of the vault cannot be removed.".into(),
                )));
            }
            let under = format!("{rel}/");
            let list = self.files.list().await.map_err(|e| self.refuse(e))?;
            if let Some(f) = list.iter().find(|f| f.path.as_str().starts_with(&under)) {
                return Err(self.refuse(AppError::Conflict(format!(
                    "{rel} still holds {}; it goes once its files are deleted.",
                    f.path
                ))));
            }
            self.files
                .drop_folder(&self.caller.actor, rel.clone())
                .await
                .map_err(|e| self.refuse(e))?;
            let _ = self
                .files
                .move_dead_props(format!("folder:{rel}"), None)
                .await;
            self.keep_emptied(&rel).await;
            Ok(())
        }
        .boxed()
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            // Nothing saved there: its lock, dropped after this, is all it is.
            if let Node::Pending { .. } = self.node(&rel(path)?).await? {
                return Ok(());
            }
            let rec = self.file_at(&rel(path)?).await?;
            self.files
                .delete(&self.caller.actor, rec.id)
                .await
                .map_err(|e| self.refuse(e))?;
            let _ = self
                .files
                .move_dead_props(format!("file:{}", rec.id), None)
                .await;
            self.keep_emptied(rec.path.as_str()).await;
            Ok(())
        }
        .boxed()
    }

    fn rename<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            let (from, to) = (rel(from)?, rel(to)?);
            let dest = self.new_path(&to)?;
            self.require_parent(&dest).await?;
            match self.node(&from).await? {
                Node::Pending { .. } => {
                    return Err(self.refuse(AppError::Conflict(format!(
                        "{from} has nothing saved yet: it is uploaded when the program closes it; move it after that."
                    ))));
                }
                Node::File(rec) => {
                    self.files
                        .move_file(&self.caller.actor, rec.id, dest)
                        .await
                        .map_err(|e| self.refuse(e))?;
                    self.keep_emptied(rec.path.as_str()).await;
                }
                Node::Folder { .. } => {
                    // Each file, as its own move; all are checked first so a
                    // refusal for one (held by someone else) moves none.
                    let under = format!("{from}/");
                    let list = self.files.list().await.map_err(|e| self.refuse(e))?;
                    let inside: Vec<FileRecord> = list
                        .iter()
                        .filter(|f| f.path.as_str().starts_with(&under))
                        .cloned()
                        .collect();
                    let me = &self.caller.actor;
                    for f in &inside {
                        let ok = match f.locked_by() {
                            Some(h) => h == me.username,
                            None => me.is_admin(),
                        };
                        if !ok {
                            return Err(self.refuse(AppError::Forbidden(format!(
                                "{from} cannot move: {} needs its holder, or an admin while nobody holds it; nothing was moved.",
                                f.path
                            ))));
                        }
                    }
                    for f in inside {
                        let rest = &f.path.as_str()[under.len()..];
                        let target = self.new_path(&format!("{to}/{rest}"))?;
                        self.files
                            .move_file(me, f.id, target)
                            .await
                            .map_err(|e| self.refuse(e))?;
                    }
                    // Empty folders inside go along: kept at the new place.
                    let mut kept = self.files.kept_folders().await.map_err(|e| self.refuse(e))?;
                    kept.retain(|k| k.starts_with(&under));
                    kept.sort();
                    for folder in std::iter::once(to.clone())
                        .chain(kept.iter().map(|k| format!("{to}/{}", &k[under.len()..])))
                    {
                        if let Err(FsError::NotFound) = self.node(&folder).await {
                            let path = self.new_path(&folder)?;
                            let _ = self.files.keep_folder(me, path).await;
                        }
                    }
                    self.files
                        .drop_folder(me, from.clone())
                        .await
                        .map_err(|e| self.refuse(e))?;
                    let _ = self
                        .files
                        .move_dead_props(format!("folder:{from}"), Some(format!("folder:{to}")))
                        .await;
                    self.keep_emptied(&from).await;
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn have_props<'a>(
        &'a self,
        _path: &'a DavPath,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        async { true }.boxed()
    }

    fn get_props<'a>(&'a self, path: &'a DavPath, do_content: bool) -> FsFuture<'a, Vec<DavProp>> {
        async move {
            if let Ok(Node::Pending { .. }) = self.node(&rel(path)?).await {
                return Ok(Vec::new());
            }
            let props = self.dead_props_at(path).await?;
            Ok(props
                .into_iter()
                .map(|p| DavProp {
                    name: p.name,
                    prefix: p.prefix,
                    namespace: p.namespace,
                    xml: p.xml.filter(|_| do_content).map(String::into_bytes),
                })
                .collect())
        }
        .boxed()
    }

    fn get_prop<'a>(&'a self, path: &'a DavPath, prop: DavProp) -> FsFuture<'a, Vec<u8>> {
        async move {
            let props = self.dead_props_at(path).await?;
            props
                .into_iter()
                .find(|p| p.name == prop.name && p.namespace == prop.namespace)
                .and_then(|p| p.xml)
                .map(String::into_bytes)
                .ok_or(FsError::NotFound)
        }
        .boxed()
    }

    fn patch_props<'a>(
        &'a self,
        path: &'a DavPath,
        patch: Vec<(bool, DavProp)>,
    ) -> FsFuture<'a, Vec<(StatusCode, DavProp)>> {
        async move {
            let key = self.props_key(path).await?;
            let stored = patch
                .iter()
                .map(|(set, p)| {
                    let prop = DeadProp {
                        name: p.name.clone(),
                        prefix: p.prefix.clone(),
                        namespace: p.namespace.clone(),
                        xml: p
                            .xml
                            .as_ref()
                            .map(|x| String::from_utf8_lossy(x).into_owned()),
                    };
                    (*set, prop)
                })
                .collect();
            let status = match self
                .files
                .patch_dead_props(&self.caller.actor, key, stored)
                .await
            {
                Ok(()) => StatusCode::OK,
                Err(AppError::TooLarge(_)) => StatusCode::INSUFFICIENT_STORAGE,
                Err(e) => return Err(self.refuse(e)),
            };
            Ok(patch
                .into_iter()
                .map(|(_, p)| {
                    let shown = DavProp { xml: None, ..p };
                    (status, shown)
                })
                .collect())
        }
        .boxed()
    }

    fn copy<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            let rec = self.file_at(&rel(from)?).await?;
            let dest = self.new_path(&rel(to)?)?;
            self.require_parent(&dest).await?;
            // The copy is an upload of the version the caller reads.
            let source = match self.files.draft_of(&self.caller.actor, &rec) {
                Some((draft, _)) => Source::Draft(draft),
                None => Source::Blob(rec.blob),
            };
            let spool = self
                .copy_to_spool(source)
                .await
                .map_err(|e| self.refuse(e))?;
            self.upload(dest, spool).await.map_err(|e| self.refuse(e))?;
            Ok(())
        }
        .boxed()
    }
}
