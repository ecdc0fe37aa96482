//! Spooling an upload: the body streamed to a file in the spool folder,
//! refused past the size limit, removed when dropped.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::error::{AppError, AppResult};
use crate::vault::Spool;

use super::Files;

impl Files {
    /// Streams an upload body to a spool file, refusing it past the size limit.
    /// The spool file is removed when the returned value is dropped.
    pub async fn spool(&self, mut body: impl AsyncRead + Unpin) -> AppResult<Spool> {
        let path = self
            .shared
            .spool_dir
            .join(format!("upload-{}", crate::secret::random_hex(12)));
        let mut spool = Spool { path, size: 0 };
        let mut out = tokio::fs::File::create(&spool.path).await?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = body.read(&mut buf).await.map_err(|e| {
                AppError::BadRequest(format!("The upload was cut off or malformed: {e}"))
            })?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > self.shared.max_upload {
                return Err(too_large(self.shared.max_upload));
            }
            out.write_all(&buf[..n]).await?;
        }
        out.flush().await?;
        drop(out);
        spool.size = size;
        Ok(spool)
    }
}

pub(super) fn too_large(max: u64) -> AppError {
    AppError::TooLarge(format!(
        "The file is larger than the limit of {}; nothing was saved.",
        crate::domain::human_size(max)
    ))
}

/// An upload spooled as its chunks arrive, for callers handed a body piece
/// by piece (the WebDAV `PUT`): the same folder, limit and clean-up as
/// [`Files::spool`]. Dropped before [`SpoolWriter::finish`], nothing stays.
pub struct SpoolWriter {
    spool: Spool,
    out: tokio::fs::File,
    max: u64,
}

impl Files {
    pub async fn spool_writer(&self) -> AppResult<SpoolWriter> {
        let path = self
            .shared
            .spool_dir
            .join(format!("upload-{}", crate::secret::random_hex(12)));
        let spool = Spool { path, size: 0 };
        let out = tokio::fs::File::create(&spool.path).await?;
        Ok(SpoolWriter {
            spool,
            out,
            max: self.shared.max_upload,
        })
    }
}

impl SpoolWriter {
    /// Appends a chunk, refusing the upload once it passes the size limit.
    pub async fn write(&mut self, chunk: &[u8]) -> AppResult<()> {
        let size = self.spool.size + chunk.len() as u64;
        if size > self.max {
            return Err(too_large(self.max));
        }
        self.out.write_all(chunk).await?;
        self.spool.size = size;
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.spool.size
    }

    /// The whole upload, on disk.
    pub async fn finish(mut self) -> AppResult<Spool> {
        self.out.flush().await?;
        Ok(self.spool)
    }
}
