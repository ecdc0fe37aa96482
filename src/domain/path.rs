//! A file's place in the vault ([`RepoPath`]) and every rule a path must
//! pass so that a commit of it cannot fail and no clone of it — on Linux,
//! macOS or Windows — can be led astray by its name.

use std::fmt;

use super::text::{TextKind, check_hidden};
use super::{Invalid, invalid};

/// A file's place in the vault: relative, `/`-separated, normalised, never
/// escaping the repository and never touching `.git`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoPath(String);

impl RepoPath {
    pub const MAX_BYTES: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return invalid("The path is empty: give the file a name such as parts/bracket.mcam.");
        }
        if trimmed.len() > Self::MAX_BYTES {
            return invalid(format!(
                "The path is {} bytes long; at most {} are allowed.",
                trimmed.len(),
                Self::MAX_BYTES
            ));
        }
        if trimmed.contains('\\') {
            return invalid("The path contains a backslash; use / between folders.");
        }
        if trimmed.chars().any(|c| c.is_control()) {
            return invalid("The path contains a control character.");
        }
        check_hidden(trimmed, TextKind::Path, "path")?;
        if trimmed.starts_with('/') {
            return invalid(
                "The path is absolute; give it relative to the vault, e.g. parts/bracket.mcam.",
            );
        }
        let mut parts = Vec::new();
        for part in trimmed.split('/') {
            match part {
                "" | "." => continue,
                ".." => return invalid("The path may not contain '..'."),
                _ => {}
            }
            if part.trim() != part {
                return invalid(format!(
                    "The path part '{part}' begins or ends with a space."
                ));
            }
            if names_git_dir(part) {
                return invalid(
                    "The path may not contain a '.git' folder, in any spelling Windows or macOS would read as .git.",
                );
            }
            if let Some(why) = names_config_file(part) {
                return invalid(format!(
                    "The path part '{part}' would be {why}; choose another name."
                ));
            }
            if part.ends_with('.') {
                return invalid(format!("The path part '{part}' ends with a dot."));
            }
            if let Some(c) = part.chars().find(|c| WINDOWS_FORBIDDEN.contains(*c)) {
                return invalid(format!(
                    "The path part '{part}' contains '{c}', which Windows does not allow in a name (none of < > : \" | ? * may be used)."
                ));
            }
            git_accepts(part)?;
            parts.push(part);
        }
        if parts.is_empty() {
            return invalid("The path names no file.");
        }
        if parts.len() > 32 {
            return invalid("The path is nested more than 32 folders deep.");
        }
        // A drive letter (`C:/x`) is refused above: ':' is in no name.
        Ok(RepoPath(parts.join("/")))
    }

    /// A path this program stored (a record, an event, a commit trailer),
    /// taken as it is: never checked again against today's rules, which
    /// are stricter than some older release's, so a file once accepted
    /// stays readable, checkable-in and deletable.
    pub fn from_stored(raw: impl Into<String>) -> Self {
        RepoPath(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The folder part, empty for files at the top.
    pub fn folder(&self) -> &str {
        self.0.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("")
    }

    pub fn file_name(&self) -> &str {
        self.0
            .rsplit_once('/')
            .map(|(_, name)| name)
            .unwrap_or(&self.0)
    }

    /// The names from the top down: folders, then the file.
    pub fn parts(&self) -> std::str::Split<'_, char> {
        self.0.split('/')
    }

    /// Every folder the path lies in, from the top down: `a`, `a/b` for `a/b/c`.
    pub fn folders(&self) -> impl Iterator<Item = &str> {
        self.0.match_indices('/').map(|(end, _)| &self.0[..end])
    }
}

/// A folder someone watches: a path's folder part, or the whole vault
/// (`""`). Written without a leading or trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Folder(String);

impl Folder {
    /// `parts/`, `/parts`, `parts` all name the same folder; `/` the whole
    /// vault; an empty name is refused.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.trim().is_empty() {
            return invalid("Name a folder, such as parts/, or / for the whole vault.");
        }
        let trimmed = raw.trim().trim_matches('/');
        if trimmed.is_empty() {
            return Ok(Folder(String::new()));
        }
        // A folder name follows the same rules as a file's path.
        let path = RepoPath::parse(trimmed)
            .map_err(|e| Invalid(e.0.replacen("The path", "The folder", 1)))?;
        Ok(Folder(path.0))
    }

    /// As stored (never checked again).
    pub fn from_stored(raw: impl Into<String>) -> Self {
        Folder(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `path` lies under this folder.
    pub fn contains(&self, path: &RepoPath) -> bool {
        self.0.is_empty() || path.folders().any(|f| f == self.0)
    }
}

impl fmt::Display for Folder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("the whole vault")
        } else {
            write!(f, "{}/", self.0)
        }
    }
}

/// Stored as the plain string, as every release has.
impl serde::Serialize for RepoPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Stored records only: trusted as written (see [`RepoPath::from_stored`]).
impl<'de> serde::Deserialize<'de> for RepoPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(RepoPath::from_stored)
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters Windows refuses in a name; a vault is cloned on Windows.
pub(super) const WINDOWS_FORBIDDEN: &str = "<>:\"|?*";

/// Whether a path part would be the `.git` folder on some checkout of the
/// vault: any case, `.git~…`, NTFS's short name `git~1`, and either
/// followed by what NTFS ignores (trailing dots and spaces, or an
/// alternate data stream `:…` such as `.git::$INDEX_ALLOCATION`).
pub(super) fn names_git_dir(part: &str) -> bool {
    let lower = part.to_ascii_lowercase();
    let ntfs_same = |name: &str| {
        lower.strip_prefix(name).is_some_and(|rest| {
            let rest = rest.trim_start_matches([' ', '.']);
            rest.is_empty() || rest.starts_with(':')
        })
    };
    lower.starts_with(".git~") || ntfs_same(".git") || ntfs_same("git~1")
}

/// Names Git or git-lfs read as configuration when they are in a clone's
/// work tree, with why, in any spelling a Windows or macOS clone would
/// read as them: any case, then what NTFS ignores (trailing dots and
/// spaces, or a stream `:…`), and NTFS short names (`gitatt~1`, and the
/// hashed `GI7D29~1` Git knows of). What HFS+ ignores is refused in every
/// path already. `.gitignore` stays allowed: it only changes what `git
/// status` shows in a clone, never the bytes a clone checks out.
pub(super) fn names_config_file(part: &str) -> Option<&'static str> {
    const FILES: [(&str, &str, &str, &str); 3] = [
        (
            ".gitattributes",
            "gitatt",
            "gi7d29",
            "Git's .gitattributes, which changes the bytes every clone checks out (line endings, filters)",
        ),
        (
            ".gitmodules",
            "gitmod",
            "gi7eba",
            "Git's .gitmodules, which Git reads as submodule settings",
        ),
        (
            ".lfsconfig",
            "lfscon",
            "",
            "git-lfs's .lfsconfig, which could send clones and their credentials to another server",
        ),
    ];
    let lower = part.to_ascii_lowercase();
    let ntfs_rest_empty = |rest: &str| {
        let rest = rest.trim_start_matches([' ', '.']);
        rest.is_empty() || rest.starts_with(':')
    };
    let short_name = |prefix: &str| {
        !prefix.is_empty()
            && lower
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('~'))
                .and_then(|r| r.strip_prefix(|d: char| ('1'..='9').contains(&d)))
                .is_some_and(ntfs_rest_empty)
    };
    FILES
        .iter()
        .find(|(name, short, hashed, _)| {
            lower.strip_prefix(name).is_some_and(ntfs_rest_empty)
                || short_name(short)
                || short_name(hashed)
        })
        .map(|(_, _, _, why)| *why)
}

/// The Git layer's own check of a tree entry name (`gix-validate`), with
/// every protection on: a superset of what the tree editor applies
/// (NTFS always; Windows and HFS+ when the vault's config asks), and as if
/// the entry were a symbolic link, which also refuses every spelling of
/// `.gitmodules` (Git reads that file as submodule settings). So whatever
/// this accepts, committing it cannot fail on its name.
pub(super) fn git_accepts(part: &str) -> Result<(), Invalid> {
    use gix::bstr::ByteSlice;
    // Windows also reserves COM¹-COM³ and LPT¹-LPT³, which Git's list lacks.
    let stem = part
        .split('.')
        .next()
        .unwrap_or(part)
        .trim_end()
        .to_lowercase();
    if let Some(digit) = stem
        .strip_prefix("com")
        .or_else(|| stem.strip_prefix("lpt"))
        && matches!(digit, "¹" | "²" | "³")
    {
        return invalid(format!(
            "'{part}' is a device name on Windows (COM and LPT with a superscript digit count too); choose another name."
        ));
    }
    use gix::validate::path::component::{Error, Mode, Options};
    let refused = match gix::validate::path::component(
        part.as_bytes().as_bstr(),
        Some(Mode::Symlink),
        Options::default(),
    ) {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    invalid(match refused {
        Error::WindowsReservedName => format!(
            "'{part}' is a device name on Windows (CON, PRN, AUX, NUL, COM1-COM9, LPT0-LPT9, also with an extension); choose another name."
        ),
        Error::DotGitDir => {
            "The path may not contain a '.git' folder, in any spelling Windows or macOS would read as .git.".to_string()
        }
        Error::SymlinkedGitModules => format!(
            "'{part}' would be Git's .gitmodules file on some computers; choose another name."
        ),
        Error::WindowsPathPrefix => {
            format!("The path part '{part}' looks like a drive letter; give the path relative to the vault.")
        }
        _ => format!("The path part '{part}' is not a name Git can store; choose another name."),
    })
}
