//! The bare Git repository that holds every version of every file: writing
//! blobs from spooled uploads (in quarantine until their commit), committing on `main` one
//! commit at a time (each may change several files: a change set),
//! reading history and old versions, and listing commits the database has
//! not recorded yet.
//!
//! Every commit carries trailers (`Latch-Action`, `Latch-File`, `Latch-Path`,
//! `Latch-From` for a move, `Latch-Revision`, `Latch-User`) so the file
//! records can be rebuilt from Git alone; a change set repeats the group
//! from `Latch-Action` on, once per file, in one paragraph. History on `main` is linear: commits are made one at a time inside
//! the database's single write transaction, and `commit_as` refuses a stale
//! parent besides.
//!
//! Long because every use of gix lives here (and in [`pack`], what a
//! clone or fetch over the smart protocol is sent), so the rest of Latch
//! never sees a Git type it could misuse (and a gix upgrade touches one
//! place).

mod pack;

pub use pack::{FetchInput, FetchPlan};

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::objs::tree::EntryKind;

use crate::domain::RepoPath;
use crate::error::{AppError, AppResult};

pub const MAIN: &str = "refs/heads/main";

/// The ids of the vault's objects, each kind its own type so a blob is
/// never taken for a commit. Kept (in records, events, the recorded head)
/// as the lower-case hex Git shows, as every release has.
macro_rules! object_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(ObjectId);

        impl $name {
            /// Reads the hex of an id; `None` for anything else.
            pub fn from_hex(hex: &str) -> Option<Self> {
                ObjectId::from_hex(hex.as_bytes()).ok().map($name)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                $name::from_hex(&raw).ok_or_else(|| {
                    serde::de::Error::custom(format!("'{raw}' is not a stored object id"))
                })
            }
        }
    };
}

object_id!(
    /// A commit on `main`: what wrote a version, or the head the records reflect.
    CommitId
);
object_id!(
    /// A file's content in the object store.
    BlobId
);

fn git_err(context: &'static str) -> impl Fn(gix::Error) -> AppError {
    move |e| AppError::internal(context, e)
}

/// What a commit does to the tree, for one file.
pub enum Change<'a> {
    Put {
        path: &'a RepoPath,
        blob: BlobId,
    },
    Remove {
        path: &'a RepoPath,
    },
    /// The same content under another name.
    Move {
        from: &'a RepoPath,
        to: &'a RepoPath,
        blob: BlobId,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    CheckIn,
    Delete,
    Move,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::CheckIn => "checkin",
            Action::Delete => "delete",
            Action::Move => "move",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "create" => Some(Action::Create),
            "checkin" => Some(Action::CheckIn),
            "delete" => Some(Action::Delete),
            "move" => Some(Action::Move),
            _ => None,
        }
    }
}

/// Who makes a commit.
pub struct Author<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
}

/// The facts a commit's trailers record about one file it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trailers {
    pub action: Action,
    pub file_id: u64,
    /// The file's path after the commit.
    pub path: RepoPath,
    /// For a move: the path it had before.
    pub from: Option<RepoPath>,
    pub revision: Option<String>,
    pub user: String,
}

/// A commit on `main`, as history shows it.
#[derive(Debug, Clone)]
pub struct CommitInfo {
    pub id: CommitId,
    pub author_name: String,
    pub at: i64,
    /// The message without its trailers.
    pub message: String,
    /// One per file the commit changed; none for a commit Latch did not make.
    pub trailers: Vec<Trailers>,
}

impl CommitInfo {
    /// What the commit did to file `id`, if it changed it.
    pub fn of_file(&self, id: u64) -> Option<&Trailers> {
        self.trailers.iter().find(|t| t.file_id == id)
    }
}

#[derive(Clone)]
pub struct Vault {
    repo: gix::ThreadSafeRepository,
    path: PathBuf,
}

impl Vault {
    pub fn open_or_init(path: &Path) -> AppResult<Vault> {
        if !path.join("HEAD").exists() {
            gix::init_bare(path)
                .map_err(|e| AppError::internal("creating the Git repository", e))?;
            // `git clone` follows HEAD; make it name the branch we commit to.
            std::fs::write(path.join("HEAD"), "ref: refs/heads/main\n")?;
            std::fs::write(
                path.join("description"),
                "Latch vault: files are changed by check-in, not by push.\n",
            )?;
        }
        let repo = gix::open_opts(path, gix::open::Options::isolated())
            .map_err(|e| AppError::internal("opening the Git repository", e))?;
        Ok(Vault {
            repo: repo.into_sync(),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the lock files a killed process leaves behind while it moves
    /// `main` (`refs/heads/main.lock`, `packed-refs.lock`, `HEAD.lock`): Git
    /// never breaks a lock itself, so one stale lock would fail every later
    /// check-in. Only safe once the database is open, since its lock proves
    /// no other Latch process is writing this vault. Returns how many it removed.
    pub fn clear_stale_locks(&self) -> AppResult<usize> {
        let mut removed = 0;
        for name in ["refs/heads/main.lock", "packed-refs.lock", "HEAD.lock"] {
            match std::fs::remove_file(self.path.join(name)) {
                Ok(()) => {
                    tracing::warn!(lock = name, "removed a stale Git lock left by a crash");
                    removed += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(removed)
    }

    fn local(&self) -> gix::Repository {
        self.repo.to_thread_local()
    }

    /// `info/refs` for Git's "dumb" HTTP protocol, as `git update-server-info` writes it: `<id>\t<name>` per
    /// reference, sorted, and `<peeled>\t<name>^{}` after an annotated tag.
    pub fn info_refs(&self) -> AppResult<String> {
        let git = |e: &dyn std::fmt::Display| AppError::internal("listing references", e);
        let repo = self.local();
        let platform = repo.references().map_err(|e| git(&e))?;
        let mut lines = Vec::new();
        for reference in platform.all().map_err(|e| git(&e))? {
            let mut reference = reference.map_err(|e| git(&e))?;
            // Symbolic references (none in a Latch vault) are left out.
            let Some(id) = reference.try_id().map(|id| id.detach()) else {
                continue;
            };
            let name = reference.name().as_bstr().to_string();
            lines.push(format!("{id}\t{name}\n"));
            let is_tag = repo
                .find_header(id)
                .map(|h| h.kind() == gix::objs::Kind::Tag)
                .unwrap_or(false);
            if is_tag {
                let peeled = reference.peel_to_id().map_err(|e| git(&e))?;
                lines.push(format!("{peeled}\t{name}^{{}}\n"));
            }
        }
        Ok(lines.concat())
    }

    /// `objects/info/packs`: one `P pack-….pack` line per pack (that has
    /// its index, and a name `is_pack_name` takes), then a blank line.
    pub fn info_packs(&self, is_pack_name: impl Fn(&str) -> bool) -> AppResult<String> {
        let dir = self.path.join("objects").join("pack");
        let mut packs = Vec::new();
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries {
                    let name = entry?.file_name().to_string_lossy().into_owned();
                    let listed = name.ends_with(".pack")
                        && is_pack_name(&name)
                        && dir.join(&name).with_extension("idx").is_file();
                    if listed {
                        packs.push(format!("P {name}\n"));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        packs.sort();
        packs.push("\n".into());
        Ok(packs.concat())
    }

    /// The commit `main` points at, if any.
    pub fn head(&self) -> AppResult<Option<CommitId>> {
        let repo = self.local();
        let reference = repo
            .try_find_reference(MAIN)
            .map_err(git_err("reading main"))?;
        match reference {
            Some(mut r) => {
                let id = r.peel_to_id().map_err(git_err("reading main"))?;
                Ok(Some(CommitId(id.detach())))
            }
            None => Ok(None),
        }
    }

    /// Streams `size` bytes from `source` straight into the object store, by
    /// the same path an upload takes (quarantine, then publish). Only for
    /// callers outside an operation (tests, tools): an operation publishes
    /// inside its write transaction, once its rules have passed.
    pub fn write_blob(&self, source: &mut dyn Read, size: u64) -> AppResult<BlobId> {
        let blob = self.quarantine_blob(source, size)?;
        self.publish(&blob)
    }

    /// Where uploads wait, as finished loose objects, for the commit that
    /// names them: under `objects/` so moving one into place is a rename on
    /// one file system. Git, `git fsck` and the dumb HTTP handler read only
    /// `objects/xx/…` and `objects/pack/`, so nothing here is seen; its
    /// files are named `.tmp-…`, which a backup skips like Git's own
    /// temporary files.
    fn quarantine_dir(&self) -> PathBuf {
        self.path.join("objects").join("incoming-latch")
    }

    /// Removes what a killed process left in quarantine: uploads are never
    /// resumed. Only safe once the database is open, since its lock proves
    /// no other Latch process is writing this vault. Returns how many it removed.
    pub fn clear_quarantine(&self) -> AppResult<usize> {
        let entries = match std::fs::read_dir(self.quarantine_dir()) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let mut removed = 0;
        for entry in entries {
            std::fs::remove_file(entry?.path())?;
            removed += 1;
        }
        if removed > 0 {
            tracing::warn!(removed, "removed quarantined uploads a crash left behind");
        }
        Ok(removed)
    }

    /// Streams `size` bytes from `source` into a loose blob in quarantine,
    /// durable on disk but not in the object store: nothing in the vault
    /// refers to it or can see it until [`Vault::publish`] moves it in,
    /// inside the write transaction that commits it. Dropping the returned
    /// value removes it, so a refused or failed write keeps nothing.
    pub fn quarantine_blob(&self, source: &mut dyn Read, size: u64) -> AppResult<Quarantined> {
        use std::io::Write;
        let dir = self.quarantine_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!(".tmp-{}", crate::secret::random_hex(12)));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            // Read-only, as Git and gix leave loose objects.
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o444);
        }
        let file = options.open(&path)?;
        let kind = self.local().object_hash();
        let mut quarantined = Quarantined {
            path,
            id: ObjectId::null(kind),
        };
        let header = gix::objs::encode::loose_header(gix::objs::Kind::Blob, size);
        let mut hasher = gix::hash::hasher(kind);
        hasher.update(&header);
        let mut out = gix::zlib::stream::deflate::Write::new(
            std::io::BufWriter::with_capacity(64 * 1024, file),
            gix::zlib::Compression::BEST_SPEED,
        );
        out.write_all(&header)?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut seen = 0u64;
        loop {
            let n = source.read(&mut buf)?;
            if n == 0 {
                break;
            }
            seen += n as u64;
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
        if seen != size {
            return Err(AppError::Internal(format!(
                "the spooled upload has {seen} bytes, not the {size} it was written with"
            )));
        }
        out.flush()?;
        let file = out
            .into_inner()
            .into_inner()
            .map_err(|e| AppError::from(e.into_error()))?;
        // Durable before a commit can name it.
        file.sync_all()?;
        quarantined.id = hasher.try_finalize().map_err(|e| {
            AppError::Invalid(format!(
                "This file cannot be stored: Git's SHA-1 check reports it as a collision attack ({e})."
            ))
        })?;
        Ok(quarantined)
    }

    /// Moves a quarantined blob into the object store, where commits can
    /// name it. Call it inside the write transaction that commits it (that
    /// transaction also keeps publishers one at a time), after every rule
    /// has passed. An object already present, from an earlier version or
    /// another file with the same content, is kept as it is and ours dropped.
    pub fn publish(&self, blob: &Quarantined) -> AppResult<BlobId> {
        let hex = blob.id.to_hex().to_string();
        let objects = self.path.join("objects");
        let dir = objects.join(&hex[..2]);
        let target = dir.join(&hex[2..]);
        if target.exists() || self.local().has_object(blob.id) {
            return Ok(BlobId(blob.id));
        }
        match std::fs::create_dir(&dir) {
            Ok(()) => sync_dir(&objects)?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
        std::fs::rename(&blob.path, &target)?;
        // The rename is durable before the commit that names it.
        sync_dir(&dir)?;
        Ok(BlobId(blob.id))
    }

    /// The blob at `path` in `commit`'s tree.
    pub fn blob_at(&self, commit: CommitId, path: &RepoPath) -> AppResult<Option<BlobId>> {
        let repo = self.local();
        let commit = match repo
            .try_find_object(commit.0)
            .map_err(git_err("finding a commit"))?
        {
            Some(obj) if obj.kind == gix::objs::Kind::Commit => obj.into_commit(),
            _ => return Ok(None),
        };
        let tree = commit.tree().map_err(git_err("reading a tree"))?;
        let entry = tree
            .lookup_entry_by_path(path.as_str())
            .map_err(git_err("reading a tree"))?;
        Ok(entry
            .filter(|e| e.mode().is_blob())
            .map(|e| BlobId(e.object_id())))
    }

    /// Makes one commit on `main` applying `changes` (one per file; a
    /// change set has several), authored by `author`, with one trailer group
    /// per file. Must be called with the database's write transaction open,
    /// which is what keeps commits one at a time.
    pub fn commit(
        &self,
        changes: &[Change<'_>],
        author: &Author<'_>,
        subject_and_body: &str,
        trailers: &[Trailers],
    ) -> AppResult<CommitId> {
        for change in changes {
            match change {
                Change::Put { path, .. } | Change::Remove { path } => check_path(path)?,
                Change::Move { from, to, .. } => {
                    check_path(from)?;
                    check_path(to)?;
                }
            }
        }
        let repo = self.local();
        let parent = self.head()?.map(|c| c.0);
        let base_tree = match parent {
            Some(parent) => repo
                .find_commit(parent)
                .map_err(git_err("reading main"))?
                .tree_id()
                .map_err(git_err("reading main"))?
                .detach(),
            None => ObjectId::empty_tree(repo.object_hash()),
        };
        let mut editor = repo
            .edit_tree(base_tree)
            .map_err(git_err("editing the tree"))?;
        let edit = |e| AppError::internal("editing the tree", e);
        for change in changes {
            match change {
                Change::Put { path, blob } => {
                    editor
                        .upsert(path.as_str(), EntryKind::Blob, blob.0)
                        .map_err(edit)?;
                }
                Change::Remove { path } => {
                    editor.remove(path.as_str()).map_err(edit)?;
                }
                Change::Move { from, to, blob } => {
                    editor.remove(from.as_str()).map_err(edit)?;
                    editor
                        .upsert(to.as_str(), EntryKind::Blob, blob.0)
                        .map_err(edit)?;
                }
            }
        }
        let tree = editor
            .write()
            .map_err(git_err("writing the tree"))?
            .detach();

        let signature = gix::actor::Signature {
            name: author.display_name.into(),
            email: format!("{}@latch", author.username).into(),
            time: gix::date::Time::now_local_or_utc(),
        };
        let mut time_buf = gix::date::parse::TimeBuf::default();
        let sig = signature.to_ref(&mut time_buf);
        let message = compose_message(subject_and_body, trailers);
        let id = repo
            .commit_as(sig, sig, MAIN, message, tree, parent)
            .map_err(git_err("committing"))?;
        Ok(CommitId(id.detach()))
    }

    /// Commits on `main` from the newest back to (not including) `stop`, or to
    /// the root. With `only_file`, only that file's commits are kept.
    pub fn log(
        &self,
        stop: Option<CommitId>,
        only_file: Option<u64>,
        limit: usize,
    ) -> AppResult<Vec<CommitInfo>> {
        let repo = self.local();
        let mut next = self.head()?;
        let mut out = Vec::new();
        while let Some(id) = next {
            if Some(id) == stop || out.len() >= limit {
                break;
            }
            let commit = repo.find_commit(id.0).map_err(git_err("reading history"))?;
            next = commit.parent_ids().next().map(|p| CommitId(p.detach()));
            let info = describe(&commit)?;
            if only_file.is_none_or(|f| info.of_file(f).is_some()) {
                out.push(info);
            }
        }
        Ok(out)
    }

    /// One commit, if it exists and is a commit.
    pub fn commit_info(&self, id: CommitId) -> AppResult<Option<CommitInfo>> {
        let repo = self.local();
        match repo
            .try_find_object(id.0)
            .map_err(git_err("finding a commit"))?
        {
            Some(obj) if obj.kind == gix::objs::Kind::Commit => {
                Ok(Some(describe(&obj.into_commit())?))
            }
            _ => Ok(None),
        }
    }

    /// Opens a blob for streaming. Loose objects (all Latch writes) are
    /// inflated as they are read, so a large version is never held whole in
    /// memory; packed ones (after a manual `git gc`) are read at once.
    pub fn open_blob(&self, id: BlobId) -> AppResult<(u64, Box<dyn Read + Send>)> {
        let hex = id.to_string();
        let loose = self.path.join("objects").join(&hex[..2]).join(&hex[2..]);
        match std::fs::File::open(&loose) {
            Ok(file) => {
                let mut reader = LooseReader {
                    source: BufReader::with_capacity(64 * 1024, file),
                    state: gix::zlib::Decompress::new(),
                };
                let size = read_loose_header(&mut reader)?;
                Ok((size, Box::new(reader.take(size))))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let repo = self.local();
                let blob = repo.find_blob(id.0).map_err(git_err("reading a blob"))?;
                let data = blob.detach().data;
                Ok((data.len() as u64, Box::new(std::io::Cursor::new(data))))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Refuses, as the caller's mistake (422), a path whose name the tree
/// editor would refuse when it writes, so a refusal is never a 500.
/// Exactly the editor's own options (gix's defaults for this platform, the
/// vault's config being isolated), not stricter: `RepoPath::parse` applies
/// the strict rules to new names, while a file an older Latch accepted
/// (`parts/CON.txt`) must stay possible to check in and delete.
fn check_path(path: &RepoPath) -> AppResult<()> {
    use gix::validate::path::component;
    let editors = component::Options {
        protect_windows: cfg!(windows),
        protect_hfs: cfg!(target_os = "macos"),
        protect_ntfs: true,
    };
    for part in path.parts() {
        if let Err(e) = component(part.as_bytes().as_bstr(), None, editors) {
            return Err(AppError::Invalid(format!(
                "The name '{part}' cannot be stored in Git ({e}); choose another name."
            )));
        }
    }
    Ok(())
}

struct LooseReader {
    source: BufReader<std::fs::File>,
    state: gix::zlib::Decompress,
}

impl Read for LooseReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        gix::zlib::stream::inflate::read(&mut self.source, &mut self.state, buf)
    }
}

/// Reads `blob <size>\0` from the start of an inflated loose object.
fn read_loose_header(reader: &mut LooseReader) -> AppResult<u64> {
    let mut header = Vec::with_capacity(32);
    let mut byte = [0u8; 1];
    loop {
        if reader.read(&mut byte)? == 0 || header.len() > 40 {
            return Err(AppError::Internal(
                "a loose object has a broken header".into(),
            ));
        }
        if byte[0] == 0 {
            break;
        }
        header.push(byte[0]);
    }
    let header = String::from_utf8_lossy(&header);
    header
        .strip_prefix("blob ")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| AppError::Internal(format!("object is not a blob: {header}")))
}

fn describe(commit: &gix::Commit<'_>) -> AppResult<CommitInfo> {
    let author = commit.author().map_err(git_err("reading a commit"))?;
    let at = author.time().map(|t| t.seconds).unwrap_or(0);
    let raw = commit.message_raw_sloppy().to_str_lossy().into_owned();
    let (message, trailers) = split_trailers(&raw);
    Ok(CommitInfo {
        id: CommitId(commit.id),
        author_name: author.name.to_str_lossy().into_owned(),
        at,
        message,
        trailers,
    })
}

fn compose_message(subject_and_body: &str, trailers: &[Trailers]) -> String {
    let mut message = subject_and_body.trim_end().to_string();
    message.push_str("\n\n");
    for t in trailers {
        message.push_str(&format!("Latch-Action: {}\n", t.action.as_str()));
        message.push_str(&format!("Latch-File: {}\n", t.file_id));
        message.push_str(&format!("Latch-Path: {}\n", t.path));
        if let Some(from) = &t.from {
            message.push_str(&format!("Latch-From: {from}\n"));
        }
        if let Some(rev) = &t.revision {
            message.push_str(&format!("Latch-Revision: {rev}\n"));
        }
        message.push_str(&format!("Latch-User: {}\n", t.user));
    }
    message
}

/// Splits the trailing `Latch-*` paragraph off a commit message: one
/// group per file, each starting at its `Latch-Action`. A paragraph with a
/// line that is no `Latch-` trailer, or a group missing a field, is no
/// trailer paragraph at all (a foreign commit's message is kept whole).
pub fn split_trailers(raw: &str) -> (String, Vec<Trailers>) {
    let trimmed = raw.trim_end();
    let (body, last) = match trimmed.rsplit_once("\n\n") {
        Some((body, last)) => (body, last),
        None => ("", trimmed),
    };
    let mut groups: Vec<BTreeMap<&str, &str>> = Vec::new();
    for line in last.lines() {
        match line.split_once(": ") {
            Some((key, value)) if key.starts_with("Latch-") => {
                if key == "Latch-Action" || groups.is_empty() {
                    groups.push(BTreeMap::new());
                }
                if let Some(group) = groups.last_mut() {
                    group.insert(key, value.trim());
                }
            }
            _ => return (trimmed.to_string(), Vec::new()),
        }
    }
    let parsed: Option<Vec<Trailers>> = groups
        .iter()
        .map(|fields| {
            Some(Trailers {
                action: Action::parse(fields.get("Latch-Action")?)?,
                file_id: fields.get("Latch-File")?.parse().ok()?,
                // Git holds what Latch committed: read back like any stored path.
                path: RepoPath::from_stored(*fields.get("Latch-Path")?),
                from: fields.get("Latch-From").map(|f| RepoPath::from_stored(*f)),
                revision: fields.get("Latch-Revision").map(|r| r.to_string()),
                user: fields.get("Latch-User")?.to_string(),
            })
        })
        .collect();
    match parsed {
        Some(t) if !t.is_empty() => (body.trim_end().to_string(), t),
        _ => (trimmed.to_string(), Vec::new()),
    }
}

fn sync_dir(dir: &Path) -> AppResult<()> {
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// An upload written as a loose blob in quarantine (see
/// [`Vault::quarantine_blob`]); removed when dropped unless published.
pub struct Quarantined {
    path: PathBuf,
    id: ObjectId,
}

impl Quarantined {
    /// The blob's id: what a commit will name once it is published.
    pub fn id(&self) -> BlobId {
        BlobId(self.id)
    }
}

impl Drop for Quarantined {
    fn drop(&mut self) {
        // Once published, the file is in `objects/` under another name and
        // this finds nothing: a published object is never removed here.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Spools an upload into a file under `dir`, removed when dropped unless kept.
pub struct Spool {
    pub path: PathBuf,
    pub size: u64,
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Spool {
    pub fn reader(&self) -> std::io::Result<std::fs::File> {
        std::fs::File::open(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trailers() -> Trailers {
        Trailers {
            action: Action::CheckIn,
            file_id: 7,
            path: RepoPath::from_stored("parts/a b.mcam"),
            from: None,
            revision: Some("1.3".into()),
            user: "alice".into(),
        }
    }

    #[test]
    fn names_an_older_release_accepted_can_still_be_committed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open_or_init(&dir.path().join("vault.git")).unwrap();
        let author = Author {
            username: "alice",
            display_name: "Alice",
        };
        for path in ["parts/CON.txt", "q?.txt", "x<y>.txt", "lpt1"] {
            let path = &RepoPath::from_stored(path);
            let blob = vault.write_blob(&mut &b"old"[..], 3).unwrap();
            vault
                .commit(
                    &[Change::Put { path, blob }],
                    &author,
                    "Check in",
                    &[trailers()],
                )
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            vault
                .commit(&[Change::Remove { path }], &author, "Delete", &[trailers()])
                .unwrap_or_else(|e| panic!("{path}: {e}"));
        }
        // What Git itself refuses on this platform is still a 422, not a 500.
        let blob = vault.write_blob(&mut &b"x"[..], 1).unwrap();
        let refused = vault.commit(
            &[Change::Put {
                path: &RepoPath::from_stored("a/.git::$INDEX_ALLOCATION/x"),
                blob,
            }],
            &author,
            "Add",
            &[trailers()],
        );
        assert!(matches!(refused, Err(AppError::Invalid(_))));
    }

    #[test]
    fn trailers_round_trip() {
        let msg = compose_message("Fix the post\n\nLonger body.", &[trailers()]);
        let (body, parsed) = split_trailers(&msg);
        assert_eq!(body, "Fix the post\n\nLonger body.");
        assert_eq!(parsed, vec![trailers()]);
    }

    #[test]
    fn a_change_set_has_a_trailer_group_per_file() {
        let moved = Trailers {
            action: Action::Move,
            file_id: 9,
            path: RepoPath::from_stored("new/b.nc"),
            from: Some(RepoPath::from_stored("old/b.nc")),
            revision: None,
            user: "alice".into(),
        };
        let set = vec![
            trailers(),
            Trailers {
                file_id: 8,
                ..trailers()
            },
            moved,
        ];
        let msg = compose_message("Fixture set", &set);
        assert_eq!(split_trailers(&msg), ("Fixture set".to_string(), set));
        // A group missing its path makes the paragraph no trailers at all.
        let broken = msg.replace("Latch-Path: new/b.nc\n", "");
        assert!(split_trailers(&broken).1.is_empty());
    }

    #[test]
    fn foreign_commits_have_no_trailers() {
        let (body, parsed) = split_trailers("Initial import\n\nSigned-off-by: x");
        assert!(parsed.is_empty());
        assert_eq!(body, "Initial import\n\nSigned-off-by: x");
    }

    #[test]
    fn commits_stream_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open_or_init(&dir.path().join("vault.git")).unwrap();
        let content = vec![42u8; 300_000];
        let blob = vault
            .write_blob(&mut content.as_slice(), content.len() as u64)
            .unwrap();
        let author = Author {
            username: "alice",
            display_name: "Alice",
        };
        let path = &RepoPath::from_stored("parts/a b.mcam");
        let c1 = vault
            .commit(&[Change::Put { path, blob }], &author, "Add", &[trailers()])
            .unwrap();
        assert_eq!(vault.head().unwrap(), Some(c1));
        assert_eq!(vault.blob_at(c1, path).unwrap(), Some(blob));
        let (size, mut reader) = vault.open_blob(blob).unwrap();
        assert_eq!(size, content.len() as u64);
        let mut back = Vec::new();
        reader.read_to_end(&mut back).unwrap();
        assert_eq!(back, content);
        let c2 = vault
            .commit(&[Change::Remove { path }], &author, "Delete", &[trailers()])
            .unwrap();
        assert_eq!(vault.blob_at(c2, path).unwrap(), None);
        let log = vault.log(None, Some(7), 10).unwrap();
        assert_eq!(log.iter().map(|c| c.id).collect::<Vec<_>>(), vec![c2, c1]);
        assert_eq!(vault.log(Some(c1), None, 10).unwrap().len(), 1);
    }
}
