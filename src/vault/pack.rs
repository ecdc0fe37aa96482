//! What a `git fetch` or `git clone` over the smart protocol is sent: the
//! wants checked against `main`'s history, the haves the vault shares with
//! the client, the shallow boundary of a `--depth` fetch, and the pack of
//! every object reachable from the wants that the client does not hold,
//! written as it is read.
//!
//! Two rules hold here. Nothing is ever sent that `main` cannot reach: a
//! want must be a commit on `main`'s history, and objects are only found by
//! walking down from the wants. And nothing is ever held whole: the object
//! list keeps ids only, and each blob is inflated from its loose file and
//! deflated into the pack a chunk at a time (a 200 MiB version costs two
//! 64 KiB buffers), so a large vault costs the client's time, not our memory.
//! The pack has no deltas, which Git takes as it takes any other pack:
//! there is no delta search to pay for on either side.

use std::collections::{HashSet, VecDeque};
use std::io::{Read, Write};

use gix::ObjectId;
use gix::objs::Kind;
use gix::odb::pack::data::entry::Header;

use super::{BlobId, CommitId, Vault};
use crate::error::{AppError, AppResult};

/// The client's side of a fetch, parsed at the edge.
#[derive(Debug, Default, Clone)]
pub struct FetchInput {
    /// Commits the client asks for; each must be on `main`'s history.
    pub wants: Vec<CommitId>,
    /// Commits the client says it has (not checked: an unknown one is just
    /// not common).
    pub haves: Vec<CommitId>,
    /// Commits the client holds without their parents (a shallow clone).
    pub client_shallow: Vec<CommitId>,
    /// `deepen N`: send at most N commits down from each want.
    pub deepen: Option<u32>,
    /// `deepen-relative`: N counts down from the client's shallow commits.
    pub deepen_relative: bool,
    /// The client has no more haves to offer: send the pack now.
    pub done: bool,
}

/// What the vault answers a fetch with.
#[derive(Debug, Default)]
pub struct FetchPlan {
    /// The client's haves the vault holds as commits.
    pub common: Vec<CommitId>,
    /// Whether a pack follows in this answer (`done`, or a common commit
    /// found: history is linear, so one common commit is enough).
    pub send_pack: bool,
    /// Commits sent without their parents (`shallow` lines).
    pub shallow: Vec<CommitId>,
    /// The client's shallow commits whose parents are now sent.
    pub unshallow: Vec<CommitId>,
    /// Every object of the pack, by id and kind, commits first.
    objects: Vec<(ObjectId, Kind)>,
}

impl FetchPlan {
    /// How many objects the pack holds.
    pub fn object_count(&self) -> usize {
        self.objects.len()
    }
}

impl Vault {
    /// Negotiates a fetch: refuses (400) a want that is no commit on
    /// `main`'s history, and lists the objects to send when a pack follows.
    pub fn plan_fetch(&self, input: &FetchInput) -> AppResult<FetchPlan> {
        let repo = self.local();
        let head = self.head()?;
        self.check_wants(&repo, head, &input.wants)?;

        let mut common = Vec::new();
        let mut seen_haves = HashSet::new();
        for have in &input.haves {
            if !seen_haves.insert(*have) {
                continue;
            }
            let is_commit = repo
                .try_find_header(have.0)
                .map_err(|e| AppError::internal("reading a have", e))?
                .is_some_and(|h| h.kind() == Kind::Commit);
            if is_commit {
                common.push(*have);
            }
        }
        let send_pack = input.done || !common.is_empty();
        let mut plan = FetchPlan {
            common,
            send_pack,
            ..FetchPlan::default()
        };
        if !send_pack {
            return Ok(plan);
        }

        // Down from the wants, breadth first (so a commit's depth is its
        // shortest distance from a want), stopping at what the client has
        // unless the client is shallow and asks to go deeper: then its own
        // commits are walked through (not sent) down to its shallow ones,
        // whose parents are sent from there.
        let stop: HashSet<CommitId> = plan.common.iter().copied().collect();
        let client_shallow: HashSet<CommitId> = input.client_shallow.iter().copied().collect();
        let deepening = input.deepen.is_some() && !client_shallow.is_empty();
        // A node's depth: `None` while unbounded (above the client's shallow
        // commits when the depth is relative to them).
        let start = if input.deepen_relative { None } else { Some(1) };
        let below = |depth: Option<u32>| depth.map(|d| d + 1);
        let mut queue: VecDeque<(CommitId, Option<u32>, bool)> = VecDeque::new();
        let mut visited: HashSet<CommitId> = HashSet::new();
        for want in &input.wants {
            if visited.insert(*want) {
                queue.push_back((*want, start, false));
            }
        }
        let mut commits: Vec<(CommitId, ObjectId)> = Vec::new();
        let mut boundary: Vec<CommitId> = Vec::new();
        let deeper_than = |depth: Option<u32>| match (depth, input.deepen) {
            (Some(d), Some(n)) => d < n,
            _ => true,
        };
        while let Some((id, depth, had)) = queue.pop_front() {
            let is_shallow = client_shallow.contains(&id);
            let had = had || is_shallow || stop.contains(&id);
            if had && !deepening {
                boundary.push(id);
                continue;
            }
            let (tree, parents) = commit_links(&repo, id.0)?;
            let next = if had && is_shallow {
                boundary.push(id);
                let depth = if input.deepen_relative {
                    Some(0)
                } else {
                    depth
                };
                if !deeper_than(depth) {
                    continue;
                }
                if !parents.is_empty() {
                    plan.unshallow.push(id);
                }
                (below(depth), false)
            } else if had {
                (below(depth), true)
            } else {
                commits.push((id, tree));
                if !deeper_than(depth) {
                    if !parents.is_empty() {
                        plan.shallow.push(id);
                    }
                    continue;
                }
                (below(depth), false)
            };
            for parent in parents {
                let parent = CommitId(parent);
                if visited.insert(parent) {
                    queue.push_back((parent, next.0, next.1));
                }
            }
        }

        // What the client's commits already hold is never sent again.
        let mut known: HashSet<ObjectId> = HashSet::new();
        for id in &boundary {
            let (tree, _) = commit_links(&repo, id.0)?;
            walk_tree(&repo, tree, &mut known, None)?;
        }
        let mut objects: Vec<(ObjectId, Kind)> =
            commits.iter().map(|(id, _)| (id.0, Kind::Commit)).collect();
        for (_, tree) in &commits {
            walk_tree(&repo, *tree, &mut known, Some(&mut objects))?;
        }
        plan.objects = objects;
        Ok(plan)
    }

    /// Every want is a commit `main` reaches: walks down from `main` until
    /// all are found (a clone's only want is `main` itself, found at once).
    fn check_wants(
        &self,
        repo: &gix::Repository,
        head: Option<CommitId>,
        wants: &[CommitId],
    ) -> AppResult<()> {
        let mut missing: HashSet<CommitId> = wants.iter().copied().collect();
        let mut queue: VecDeque<CommitId> = head.into_iter().collect();
        let mut visited: HashSet<CommitId> = queue.iter().copied().collect();
        while !missing.is_empty() {
            let Some(id) = queue.pop_front() else { break };
            missing.remove(&id);
            if missing.is_empty() {
                break;
            }
            let (_, parents) = commit_links(repo, id.0)?;
            for parent in parents {
                let parent = CommitId(parent);
                if visited.insert(parent) {
                    queue.push_back(parent);
                }
            }
        }
        match missing.into_iter().next() {
            None => Ok(()),
            Some(want) => Err(AppError::BadRequest(format!(
                "{want} is not a commit on main's history; only main and its history can be fetched."
            ))),
        }
    }

    /// Writes the pack of `plan` to `out`: header, each object deflated
    /// as it is read, and the SHA-1 trailer. Stops at the first error
    /// `out` reports (a client that went away).
    pub fn write_pack(&self, plan: &FetchPlan, out: &mut dyn Write) -> AppResult<()> {
        let repo = self.local();
        let count = u32::try_from(plan.objects.len()).map_err(|_| {
            AppError::Internal("a pack of more than 4 billion objects was asked for".into())
        })?;
        let mut out = Hashing {
            inner: out,
            hasher: gix::hash::hasher(repo.object_hash()),
        };
        out.write_all(&gix::odb::pack::data::header::encode(
            gix::odb::pack::data::Version::V2,
            count,
        ))?;
        let mut buf = vec![0u8; 64 * 1024];
        for (id, kind) in &plan.objects {
            if *kind == Kind::Blob {
                let (size, mut reader) = self.open_blob(BlobId(*id))?;
                Header::Blob.write_to(size, &mut out)?;
                let mut deflate = gix::zlib::stream::deflate::Write::new(
                    &mut out,
                    gix::zlib::Compression::BEST_SPEED,
                );
                let mut copied = 0u64;
                loop {
                    let n = reader.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    copied += n as u64;
                    deflate.write_all(&buf[..n])?;
                }
                if copied != size {
                    return Err(AppError::Internal(format!(
                        "blob {id} holds {copied} bytes, not the {size} its header says"
                    )));
                }
                deflate.flush()?;
            } else {
                let object = repo
                    .find_object(*id)
                    .map_err(|e| AppError::internal("reading an object to send", e))?;
                let header = match kind {
                    Kind::Commit => Header::Commit,
                    Kind::Tree => Header::Tree,
                    Kind::Tag => Header::Tag,
                    Kind::Blob => Header::Blob,
                };
                header.write_to(object.data.len() as u64, &mut out)?;
                let mut deflate = gix::zlib::stream::deflate::Write::new(
                    &mut out,
                    gix::zlib::Compression::BEST_SPEED,
                );
                deflate.write_all(&object.data)?;
                deflate.flush()?;
            }
        }
        let digest = out
            .hasher
            .try_finalize()
            .map_err(|e| AppError::internal("hashing the pack", e))?;
        out.inner.write_all(digest.as_bytes())?;
        out.inner.flush()?;
        Ok(())
    }
}

/// A commit's tree and parents.
fn commit_links(repo: &gix::Repository, id: ObjectId) -> AppResult<(ObjectId, Vec<ObjectId>)> {
    let commit = repo
        .find_commit(id)
        .map_err(git_err_any("reading a commit to send"))?;
    let tree = commit
        .tree_id()
        .map_err(git_err_any("reading a commit to send"))?
        .detach();
    let parents = commit.parent_ids().map(|p| p.detach()).collect();
    Ok((tree, parents))
}

/// Every tree and blob under `tree` not yet in `known`, added to it (and
/// to `out` when given). A tree in `known` is skipped whole: all below it
/// was seen with it.
fn walk_tree(
    repo: &gix::Repository,
    tree: ObjectId,
    known: &mut HashSet<ObjectId>,
    mut out: Option<&mut Vec<(ObjectId, Kind)>>,
) -> AppResult<()> {
    let mut stack = vec![tree];
    while let Some(id) = stack.pop() {
        if !known.insert(id) {
            continue;
        }
        if let Some(out) = out.as_deref_mut() {
            out.push((id, Kind::Tree));
        }
        let object = repo
            .find_object(id)
            .map_err(git_err_any("reading a tree to send"))?;
        for entry in gix::objs::TreeRefIter::from_bytes(&object.data, repo.object_hash()) {
            let entry = entry.map_err(|e| AppError::internal("reading a tree to send", e))?;
            let oid = entry.oid.to_owned();
            if entry.mode.is_tree() {
                stack.push(oid);
            } else if entry.mode.is_commit() {
                // A submodule's commit lives in another repository.
            } else if known.insert(oid)
                && let Some(out) = out.as_deref_mut()
            {
                out.push((oid, Kind::Blob));
            }
        }
    }
    Ok(())
}

fn git_err_any<E: std::fmt::Display>(context: &'static str) -> impl Fn(E) -> AppError {
    move |e| AppError::internal(context, e)
}

/// Hashes what passes through, for the pack's trailer.
struct Hashing<'a> {
    inner: &'a mut dyn Write,
    hasher: gix::hash::Hasher,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
