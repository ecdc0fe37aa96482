//! Seeing inside files without changing them: a version's preview (text,
//! raster image, or its type and size), two versions compared as a unified
//! diff, and a folder's current versions as one streamed `.zip`.
//!
//! Every read is bounded before it starts: a preview reads at most
//! [`PREVIEW_BYTES`] of any version, a comparison refuses sides over
//! [`DIFF_MAX_BYTES`] from their size alone (or over [`DIFF_MAX_LINES`]
//! from a count of newlines) and stops looking for the
//! smallest diff after [`DIFF_DEADLINE`], and the zip writer holds one
//! 64 KiB buffer per entry. Versions are always opened through
//! [`Files::open`], so a version is found wherever its file was at that
//! commit. `tests/it/content.rs` proves the limits; `benches/vault_ops.rs`
//! measures the memory.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

pub mod zip;

use super::{Files, blocking};
use crate::domain::{Folder, RepoPath};
use crate::error::{AppError, AppResult};
use crate::vault::{BlobId, Vault};

/// The most of a version a preview reads.
pub const PREVIEW_BYTES: u64 = 1024 * 1024;
/// The largest side a comparison reads (both sides are held in memory).
pub const DIFF_MAX_BYTES: u64 = 4 * 1024 * 1024;
/// The most lines a side of a comparison may have. The diff's own tables
/// cost tens of bytes per line whatever the line's length, so a side of a
/// million one-character lines (2 MB, under [`DIFF_MAX_BYTES`]) cost the
/// server over 100 MiB; this keeps the worst case near a 4 MiB NC program
/// of ~30-byte lines (`benches/vault_ops.rs`), refused from a count of
/// newlines before any diff work starts.
pub const DIFF_MAX_LINES: usize = 150_000;
/// How long a comparison looks for the smallest diff before it settles for
/// a correct, larger one.
pub const DIFF_DEADLINE: Duration = Duration::from_secs(2);

/// A raster image type a browser may show inline, known by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raster {
    Png,
    Jpeg,
    Gif,
    Webp,
}

impl Raster {
    /// The type of `head` (a version's first bytes), if it is one of these.
    /// Only the bytes count: a name or a claimed type never makes anything
    /// an image, and SVG (a document that can run script) never is one.
    pub fn sniff(head: &[u8]) -> Option<Raster> {
        if head.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Raster::Png)
        } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Raster::Jpeg)
        } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
            Some(Raster::Gif)
        } else if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
            Some(Raster::Webp)
        } else {
            None
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Raster::Png => "image/png",
            Raster::Jpeg => "image/jpeg",
            Raster::Gif => "image/gif",
            Raster::Webp => "image/webp",
        }
    }
}

/// What a preview shows of a version.
#[derive(Debug)]
pub enum Shown {
    /// UTF-8 text: the first [`PREVIEW_BYTES`] at most.
    Text { text: String, truncated: bool },
    /// A raster image, served as its own bytes by the raw route.
    Image(Raster),
    /// Anything else: a type guessed from the name, for people only.
    Other { kind: String },
}

/// A version as a preview shows it.
#[derive(Debug)]
pub struct Preview {
    pub path: RepoPath,
    /// The commit asked for; `None`: the current version.
    pub rev: Option<String>,
    pub revision: String,
    pub size: u64,
    pub shown: Shown,
}

/// Two versions compared.
#[derive(Debug)]
pub struct Comparison {
    pub path: RepoPath,
    pub from_revision: String,
    pub to_revision: String,
    /// The unified diff, `---`/`+++` headers naming path@revision; empty
    /// when the versions' contents are equal.
    pub unified: String,
    /// The deadline passed: the diff is correct but may not be the smallest.
    pub cut_short: bool,
}

impl Files {
    /// The first [`PREVIEW_BYTES`] of a version, classified.
    pub async fn preview(&self, id: u64, rev: Option<&str>) -> AppResult<Preview> {
        let rev = rev.map(str::trim).filter(|r| !r.is_empty());
        let revision = self.revision_of(id, rev).await?;
        let d = self.open(id, rev).await?;
        let size = d.size;
        // The name it had then: a move since changes the title, not the version.
        let path = d.path.clone();
        let head = blocking(move || read_at_most(d.reader, PREVIEW_BYTES)).await?;
        let shown = classify(&head, size, &path);
        Ok(Preview {
            path,
            rev: rev.map(str::to_string),
            revision,
            size,
            shown,
        })
    }

    /// A raster version's bytes and type, for the raw route; 404 naming
    /// the file when the version is not a raster image by its magic bytes.
    pub async fn raster(&self, id: u64, rev: Option<&str>) -> AppResult<(Raster, super::Download)> {
        let d = self.open(id, rev).await?;
        let (head, d) = blocking(move || {
            let mut d = d;
            let mut head = Vec::with_capacity(16);
            (&mut d.reader).take(16).read_to_end(&mut head)?;
            Ok((head, d))
        })
        .await?;
        let Some(kind) = Raster::sniff(&head) else {
            let rec = self.get(id).await?;
            return Err(AppError::NotFound(format!(
                "{} is not a PNG, JPEG, GIF or WebP image, so it is not shown inline; download it instead.",
                rec.path
            )));
        };
        // The sniffed bytes go first again, then the rest as it streams.
        let super::Download {
            path,
            file_name,
            size,
            reader,
        } = d;
        Ok((
            kind,
            super::Download {
                path,
                file_name,
                size,
                reader: Box::new(io::Cursor::new(head).chain(reader)),
            },
        ))
    }

    /// Compares version `from` with version `to` (commit ids from the
    /// file's history). 422 when a side is over [`DIFF_MAX_BYTES`] or not
    /// UTF-8 text; 404 for a commit that is not a version of this file.
    pub async fn compare(&self, id: u64, from: &str, to: &str) -> AppResult<Comparison> {
        let (from, to) = (from.trim(), to.trim());
        let rec = self.get(id).await?;
        let [from_revision, to_revision] = self.revisions_of(id, [from, to]).await?;
        let a = self.open(id, Some(from)).await?;
        let b = self.open(id, Some(to)).await?;
        // Sizes are checked before a byte is read: two sides at most are
        // ever held, each within the limit.
        for (d, revision) in [(&a, &from_revision), (&b, &to_revision)] {
            if d.size > DIFF_MAX_BYTES {
                return Err(AppError::Invalid(format!(
                    "{} at {revision} is {}, over the {} a comparison reads; download both versions to compare them.",
                    rec.path,
                    human_size(d.size),
                    human_size(DIFF_MAX_BYTES)
                )));
            }
        }
        let path = rec.path.clone();
        // Each side named as it was then (a move between them shows as such).
        let labels = (
            format!("{}@{from_revision}", a.path),
            format!("{}@{to_revision}", b.path),
        );
        let revisions = (from_revision.clone(), to_revision.clone());
        let (unified, cut_short) = blocking(move || {
            let a = text_side(a.reader, &path, &revisions.0)?;
            let b = text_side(b.reader, &path, &revisions.1)?;
            Ok(unified_diff(&a, &b, &labels.0, &labels.1, DIFF_DEADLINE))
        })
        .await?;
        Ok(Comparison {
            path: rec.path,
            from_revision,
            to_revision,
            unified,
            cut_short,
        })
    }

    /// The revision a version carries (from history); the current one
    /// without `rev`. 404 when `rev` is not one of this file's versions.
    async fn revision_of(&self, id: u64, rev: Option<&str>) -> AppResult<String> {
        match rev {
            None => Ok(self.get(id).await?.revision.to_string()),
            Some(rev) => {
                let [revision] = self.revisions_of(id, [rev]).await?;
                Ok(revision)
            }
        }
    }

    /// The revisions of several versions, from one reading of the history.
    async fn revisions_of<const N: usize>(
        &self,
        id: u64,
        revs: [&str; N],
    ) -> AppResult<[String; N]> {
        let (rec, versions) = self.history(id).await?;
        let mut out = Vec::with_capacity(N);
        for rev in revs {
            let found = versions
                .iter()
                .find(|v| v.commit.to_string().eq_ignore_ascii_case(rev))
                .map(|v| v.revision.clone());
            out.push(found.ok_or_else(|| {
                AppError::NotFound(format!("{} has no version {rev}.", rec.path))
            })?);
        }
        out.try_into()
            .map_err(|_| AppError::Internal("revisions miscounted".into()))
    }

    /// The current version of every file under `folder`, read as one
    /// snapshot now; 404 when there is none.
    pub async fn folder_zip(&self, folder: &Folder) -> AppResult<FolderZip> {
        let mut files: Vec<_> = self
            .list()
            .await?
            .iter()
            .filter(|f| folder.contains(&f.path))
            .cloned()
            .collect();
        if files.is_empty() {
            let name = match folder.as_str() {
                "" => "The vault".to_string(),
                f => format!("The folder {f}/"),
            };
            return Err(AppError::NotFound(format!(
                "{name} has no files, so there is nothing to download."
            )));
        }
        files.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
        let prefix = match folder.as_str() {
            "" => String::new(),
            f => format!("{f}/"),
        };
        let entries = files
            .into_iter()
            .map(|f| ZipItem {
                name: f
                    .path
                    .as_str()
                    .strip_prefix(&prefix)
                    .unwrap_or(f.path.as_str())
                    .to_string(),
                blob: f.blob,
                modified_at: f.modified_at,
            })
            .collect();
        let name = match folder.as_str().rsplit('/').next() {
            Some(last) if !last.is_empty() => format!("{last}.zip"),
            _ => "vault.zip".to_string(),
        };
        Ok(FolderZip {
            vault: self.vault().clone(),
            file_name: name,
            entries,
        })
    }
}

/// A folder's files as they were when asked, ready to stream.
pub struct FolderZip {
    vault: Vault,
    /// `fixtures.zip` for `parts/fixtures`, `vault.zip` for `/`.
    pub file_name: String,
    entries: Vec<ZipItem>,
}

struct ZipItem {
    name: String,
    blob: BlobId,
    modified_at: i64,
}

impl FolderZip {
    /// Writes the archive to `out` (blocking; call it off the runtime).
    /// Memory stays flat: each blob streams through a 64 KiB buffer.
    pub fn write_to(self, out: impl Write) -> AppResult<u64> {
        let mut zip = zip::StreamZip::new(out);
        let mut buf = vec![0u8; 64 * 1024];
        for item in self.entries {
            let (_, mut reader) = self.vault.open_blob(item.blob)?;
            zip.start(&item.name, item.modified_at)?;
            loop {
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                zip.write_data(&buf[..n])?;
            }
            zip.finish_entry()?;
        }
        Ok(zip.finish()?)
    }
}

/// Reads at most `limit` bytes; never more, however large the version.
fn read_at_most(reader: Box<dyn Read + Send>, limit: u64) -> AppResult<Vec<u8>> {
    let mut out = Vec::new();
    reader.take(limit).read_to_end(&mut out)?;
    Ok(out)
}

/// Text when `head` is UTF-8 without NUL bytes (a multi-byte character cut
/// by the read limit is dropped), else a raster image by its magic bytes,
/// else a type guessed from the name.
fn classify(head: &[u8], size: u64, path: &RepoPath) -> Shown {
    let truncated = size > head.len() as u64;
    if let Some(kind) = Raster::sniff(head) {
        return Shown::Image(kind);
    }
    if !head.contains(&0)
        && let Some(text) = utf8_prefix(head, truncated)
    {
        return Shown::Text { text, truncated };
    }
    Shown::Other {
        kind: kind_of(path),
    }
}

/// `head` as text; when the read was cut, a character cut with it is
/// dropped rather than making the whole version "binary".
fn utf8_prefix(head: &[u8], truncated: bool) -> Option<String> {
    match std::str::from_utf8(head) {
        Ok(s) => Some(s.to_string()),
        Err(e) if truncated && e.error_len().is_none() => {
            std::str::from_utf8(&head[..e.valid_up_to()])
                .ok()
                .map(str::to_string)
        }
        Err(_) => None,
    }
}

/// A side of a comparison: UTF-8 text without NUL bytes, or 422.
fn text_side(reader: Box<dyn Read + Send>, path: &RepoPath, revision: &str) -> AppResult<String> {
    // The size was checked; `take` keeps a lying reader within it too.
    let bytes = read_at_most(reader, DIFF_MAX_BYTES)?;
    let not_text = || {
        AppError::Invalid(format!(
            "{path} at {revision} is not text (it is binary or not UTF-8), so it cannot be compared line by line; download both versions instead."
        ))
    };
    if bytes.contains(&0) {
        return Err(not_text());
    }
    let lines = bytes.iter().filter(|&&b| b == b'\n').count()
        + usize::from(bytes.last().is_some_and(|&b| b != b'\n'));
    if lines > DIFF_MAX_LINES {
        return Err(AppError::Invalid(format!(
            "{path} at {revision} has {lines} lines, over the {DIFF_MAX_LINES} a comparison reads line by line; download both versions to compare them."
        )));
    }
    String::from_utf8(bytes).map_err(|_| not_text())
}

/// The unified diff of `a` and `b` (three lines of context), and whether
/// `deadline` passed before the smallest diff was found.
pub fn unified_diff(a: &str, b: &str, from: &str, to: &str, deadline: Duration) -> (String, bool) {
    let started = Instant::now();
    let diff = similar::TextDiff::configure()
        .algorithm(similar::Algorithm::Myers)
        .timeout(deadline)
        .diff_lines(a, b);
    let cut_short = started.elapsed() >= deadline;
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(from, to)
        .to_string();
    (text, cut_short)
}

/// "NC program", "PDF document", …: what a person calls a file by its
/// extension; only shown, never used to decide how bytes are served.
fn kind_of(path: &RepoPath) -> String {
    let name = path.file_name();
    let ext = name
        .rsplit_once('.')
        .filter(|(stem, _)| !stem.is_empty())
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    let kind = match ext.as_str() {
        "" => return "File without an extension".to_string(),
        "pdf" => "PDF document",
        "svg" => "SVG drawing (shown only as a download)",
        "png" | "jpg" | "jpeg" | "gif" | "webp" => {
            "Image file whose content is not that image type"
        }
        "bmp" | "tif" | "tiff" | "ico" => "Image",
        "zip" | "7z" | "gz" | "tgz" | "xz" | "rar" => "Archive",
        "step" | "stp" | "iges" | "igs" | "stl" | "dxf" | "dwg" => "CAD exchange file",
        "sldprt" | "sldasm" | "slddrw" | "ipt" | "iam" | "idw" | "prt" | "asm" | "mcam"
        | "catpart" | "catproduct" | "f3d" => "CAD model",
        "doc" | "docx" | "odt" => "Word-processor document",
        "xls" | "xlsx" | "ods" => "Spreadsheet",
        "exe" | "dll" | "so" | "bin" => "Binary",
        _ => return format!("{} file", ext.to_ascii_uppercase()),
    };
    kind.to_string()
}

/// `1.5 MiB`, `312 bytes`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
