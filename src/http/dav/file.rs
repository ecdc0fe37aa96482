//! One open file of the drive: a version read from Git (or the holder's
//! draft), seekable for range requests; or a `PUT` body on its way to the
//! spool, which becomes an upload or a draft once it is all in.

use std::io::{Read, SeekFrom};
use std::path::PathBuf;
use std::sync::Mutex;

use bytes::{Buf, Bytes};
use dav_server::fs::{DavDirEntry, DavFile, DavMetaData, FsError, FsFuture};
use futures_util::FutureExt;

use super::fs::{LatchFs, Meta};
use crate::domain::RepoPath;
use crate::error::{AppError, AppResult};
use crate::files::{Files, SpoolWriter};
use crate::store::FileRecord;
use crate::vault::BlobId;

/// Where a read comes from.
#[derive(Debug, Clone)]
pub enum Source {
    Blob(BlobId),
    Draft(PathBuf),
    /// A name locked before anything was saved there: no bytes yet.
    Empty,
}

impl Source {
    /// Blocking.
    pub fn open(&self, files: &Files) -> AppResult<Box<dyn Read + Send>> {
        Ok(match self {
            Source::Blob(id) => files.vault().open_blob(*id)?.1,
            Source::Draft(path) => Box::new(std::fs::File::open(path)?),
            Source::Empty => Box::new(std::io::empty()),
        })
    }
}

/// A version being read: Git blobs stream through zlib, so a seek forward
/// reads on and a seek back opens the blob again; a draft is a plain file.
pub struct Reader {
    pub(super) files: Files,
    pub(super) source: Source,
    pub(super) meta: Meta,
    pub(super) state: Mutex<Option<Box<dyn Read + Send>>>,
    pub(super) pos: u64,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("source", &self.source)
            .finish()
    }
}

impl Reader {
    /// Runs `f` on the open reader off the async workers (Git and the disk block).
    async fn with_reader<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Box<dyn Read + Send>) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, FsError> {
        let taken = self.state.lock().map(|mut s| s.take()).unwrap_or(None);
        let files = self.files.clone();
        let source = self.source.clone();
        let (reader, out) = tokio::task::spawn_blocking(move || {
            let mut reader = match taken {
                Some(r) => r,
                None => source.open(&files).map_err(|_| FsError::GeneralFailure)?,
            };
            let out = f(&mut reader).map_err(|_| FsError::GeneralFailure)?;
            Ok::<_, FsError>((reader, out))
        })
        .await
        .map_err(|_| FsError::GeneralFailure)??;
        if let Ok(mut s) = self.state.lock() {
            *s = Some(reader);
        }
        Ok(out)
    }
}

impl DavFile for Reader {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = self.meta.clone();
        async move { Ok(Box::new(meta) as Box<dyn DavMetaData>) }.boxed()
    }

    fn write_buf(&mut self, _buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        async { Err(FsError::Forbidden) }.boxed()
    }

    fn write_bytes(&mut self, _buf: Bytes) -> FsFuture<'_, ()> {
        async { Err(FsError::Forbidden) }.boxed()
    }

    fn read_bytes(&mut self, count: usize) -> FsFuture<'_, Bytes> {
        async move {
            let want = count.min(256 * 1024);
            let data = self
                .with_reader(move |r| {
                    let mut buf = vec![0u8; want];
                    let mut filled = 0;
                    while filled < want {
                        match r.read(&mut buf[filled..])? {
                            0 => break,
                            n => filled += n,
                        }
                    }
                    buf.truncate(filled);
                    Ok(buf)
                })
                .await?;
            self.pos += data.len() as u64;
            Ok(Bytes::from(data))
        }
        .boxed()
    }

    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        async move {
            let len = self.meta.len as i128;
            let target = match pos {
                SeekFrom::Start(n) => n as i128,
                SeekFrom::End(n) => len + n as i128,
                SeekFrom::Current(n) => self.pos as i128 + n as i128,
            };
            if target < 0 {
                return Err(FsError::GeneralFailure);
            }
            let target = target as u64;
            if target < self.pos {
                // Back: start the stream again.
                if let Ok(mut s) = self.state.lock() {
                    *s = None;
                }
                self.pos = 0;
            }
            let skip = target - self.pos;
            if skip > 0 {
                self.with_reader(move |r| std::io::copy(&mut r.take(skip), &mut std::io::sink()))
                    .await?;
            }
            self.pos = target;
            Ok(target)
        }
        .boxed()
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        async { Ok(()) }.boxed()
    }
}

/// What a `PUT` becomes once its body is in.
#[derive(Debug)]
pub enum Target {
    New(RepoPath),
    Draft(Box<FileRecord>),
}

/// A `PUT` body on its way to the spool; [`DavFile::flush`] (called once
/// the body is in) makes it the upload or the draft.
pub struct Writer {
    pub(super) fs: LatchFs,
    pub(super) target: Target,
    pub(super) expected: Option<u64>,
    pub(super) spool: Option<SpoolWriter>,
    pub(super) done: Option<Meta>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("target", &self.target)
            .finish()
    }
}

impl Writer {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), FsError> {
        let Some(spool) = self.spool.as_mut() else {
            return Err(FsError::GeneralFailure);
        };
        if let Err(e) = spool.write(chunk).await {
            self.spool = None;
            return Err(self.fs.refuse(e));
        }
        Ok(())
    }
}

impl DavFile for Writer {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        async move {
            match &self.done {
                Some(meta) => Ok(Box::new(meta.clone()) as Box<dyn DavMetaData>),
                None => Err(FsError::NotFound),
            }
        }
        .boxed()
    }

    fn write_buf(&mut self, mut buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        async move {
            while buf.has_remaining() {
                let chunk = buf.chunk().to_vec();
                buf.advance(chunk.len());
                self.write(&chunk).await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn write_bytes(&mut self, buf: Bytes) -> FsFuture<'_, ()> {
        async move { self.write(&buf).await }.boxed()
    }

    fn read_bytes(&mut self, _count: usize) -> FsFuture<'_, Bytes> {
        async { Err(FsError::Forbidden) }.boxed()
    }

    fn seek(&mut self, _pos: SeekFrom) -> FsFuture<'_, u64> {
        // Partial writes (Content-Range) are not a version of anything.
        async { Err(FsError::NotImplemented) }.boxed()
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        async move {
            let Some(spool) = self.spool.take() else {
                return Err(FsError::GeneralFailure);
            };
            if let Some(expected) = self.expected
                && spool.size() != expected
            {
                // Cut off: nothing is kept.
                return Err(self.fs.refuse(AppError::BadRequest(format!(
                    "The body ended after {} of {expected} bytes; nothing was saved.",
                    spool.size()
                ))));
            }
            let spool = spool.finish().await.map_err(|e| self.fs.refuse(e))?;
            let actor = &self.fs.caller.actor;
            let rec = match &self.target {
                Target::New(path) => {
                    let rec = self
                        .fs
                        .upload(path.clone(), spool)
                        .await
                        .map_err(|e| self.fs.refuse(e))?;
                    self.fs.caller.created(&rec).await;
                    rec
                }
                Target::Draft(rec) => match self.fs.files.save_draft(actor, rec.id, spool).await {
                    Ok(rec) => rec,
                    // The check-out ended (an override, a check-in in the
                    // browser) while the body came in: the file is no
                    // longer the caller's to save over, 423 as it would
                    // have been had it ended first (409 reads to WebDAV
                    // clients as a missing folder).
                    Err(AppError::Conflict(sentence) | AppError::Forbidden(sentence)) => {
                        self.fs.caller.locked(sentence);
                        return Err(FsError::Forbidden);
                    }
                    Err(e) => return Err(self.fs.refuse(e)),
                },
            };
            self.done = Some(self.fs.meta_of(&rec));
            Ok(())
        }
        .boxed()
    }
}

/// One name in a folder listing.
pub struct Entry {
    pub(super) name: String,
    pub(super) meta: Meta,
}

impl DavDirEntry for Entry {
    fn name(&self) -> Vec<u8> {
        self.name.as_bytes().to_vec()
    }

    fn metadata(&self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = self.meta.clone();
        async move { Ok(Box::new(meta) as Box<dyn DavMetaData>) }.boxed()
    }
}
