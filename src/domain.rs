//! Validated values from the outside world: each is parsed once at the edge,
//! and the rest of the code trusts it without checking again.

use std::fmt;

/// Why an outside value was refused, as a sentence a person understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

impl poem::error::ResponseError for Invalid {
    fn status(&self) -> poem::http::StatusCode {
        poem::http::StatusCode::UNPROCESSABLE_ENTITY
    }
}

fn invalid<T>(message: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(message.into()))
}

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
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a piece of text goes, which decides the hidden characters it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// A file's path: shown as the file's name, compared by colleagues'
    /// eyes, and checked out on every clone.
    Path,
    /// A one-line name shown beside others (display names, token names).
    OneLine,
    /// Free text people write (check-out comments, descriptions, check-in
    /// messages): scripts such as Arabic and Hebrew need joiners and
    /// direction marks, but never an override that reorders what follows.
    FreeText,
}

/// Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt):
/// drawn as nothing, so two names that differ only by one look the same.
/// It holds every character HFS+ ignores in names (Git's `is_hfs_dotgit`
/// list), so `.g\u{200c}it` cannot be `.git` on a Mac clone.
fn is_default_ignorable(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{034f}' | '\u{061c}' | '\u{115f}'..='\u{1160}'
        | '\u{17b4}'..='\u{17b5}' | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{3164}'
        | '\u{fe00}'..='\u{fe0f}' | '\u{feff}' | '\u{ffa0}' | '\u{fff0}'..='\u{fff8}'
        | '\u{1bca0}'..='\u{1bca3}' | '\u{1d173}'..='\u{1d17a}' | '\u{e0000}'..='\u{e0fff}')
}

/// Not default-ignorable, yet drawn blank or as nothing in a file list:
/// the remaining format characters (Arabic number signs, interlinear
/// annotation, Egyptian hieroglyph controls...), the braille blank, and
/// the line and paragraph separators.
fn is_blank_lookalike(c: char) -> bool {
    matches!(c,
        '\u{0600}'..='\u{0605}' | '\u{06dd}' | '\u{070f}' | '\u{0890}'..='\u{0891}'
        | '\u{08e2}' | '\u{2028}'..='\u{2029}' | '\u{2800}' | '\u{fff9}'..='\u{fffb}'
        | '\u{110bd}' | '\u{110cd}' | '\u{13430}'..='\u{1343f}')
}

/// Overrides, embeddings and isolates: they reorder the text that follows
/// (`\u{202e}` makes `gpj.exe` read `exe.jpg`).
fn is_bidi_override(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Every bidirectional control: the overrides plus the marks.
fn is_bidi_control(c: char) -> bool {
    is_bidi_override(c) || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}')
}

/// The first character of `text` that a `kind` of text may not hold,
/// because it would hide or reorder what a person reads.
pub fn hidden_character(text: &str, kind: TextKind) -> Option<char> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .iter()
        .enumerate()
        .find(|&(i, &c)| match kind {
            TextKind::Path => {
                (is_default_ignorable(c) || is_blank_lookalike(c) || is_bidi_control(c))
                    && !shapes_its_neighbours(&chars, i)
            }
            TextKind::OneLine => is_bidi_control(c),
            TextKind::FreeText => is_bidi_override(c),
        })
        .map(|(_, &c)| c)
}

/// Zero-width (non-)joiners and variation selectors are how Persian, Indic
/// scripts and emoji are written (`می‌خواهم`, `❤️`, `👨‍👩`): between (a
/// selector: after) letters that are not ASCII they change how the name is
/// drawn, so it reads as what it is. Next to ASCII they only hide, and they
/// are how `.g‌it` passes for `.git` on a Mac: refused there.
fn shapes_its_neighbours(chars: &[char], i: usize) -> bool {
    let shaped = |c: Option<&char>| {
        c.is_some_and(|&c| !c.is_ascii() && !is_default_ignorable(c) && !is_bidi_control(c))
    };
    let before = i.checked_sub(1).and_then(|j| chars.get(j));
    match chars[i] {
        '\u{200c}' | '\u{200d}' => shaped(before) && shaped(chars.get(i + 1)),
        '\u{fe00}'..='\u{fe0f}' => shaped(before),
        _ => false,
    }
}

/// Refuses `text` (called `what` in the sentence) when it holds a
/// character [`hidden_character`] finds, naming it by code point.
pub fn check_hidden(text: &str, kind: TextKind, what: &str) -> Result<(), Invalid> {
    let Some(c) = hidden_character(text, kind) else {
        return Ok(());
    };
    let code = format!("U+{:04X}", c as u32);
    invalid(if is_bidi_control(c) {
        format!(
            "The {what} contains {code}, a control that changes the direction text is shown in, so it would read differently from what is stored; remove it."
        )
    } else {
        format!(
            "The {what} contains {code}, a character that is invisible or shows as blank, so the name could pass for another; use visible characters only."
        )
    })
}

/// Characters Windows refuses in a name; a vault is cloned on Windows.
const WINDOWS_FORBIDDEN: &str = "<>:\"|?*";

/// Whether a path part would be the `.git` folder on some checkout of the
/// vault: any case, `.git~…`, NTFS's short name `git~1`, and either
/// followed by what NTFS ignores (trailing dots and spaces, or an
/// alternate data stream `:…` such as `.git::$INDEX_ALLOCATION`).
fn names_git_dir(part: &str) -> bool {
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
fn names_config_file(part: &str) -> Option<&'static str> {
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
fn git_accepts(part: &str) -> Result<(), Invalid> {
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

/// A login name: lower-case, 3–32 of `a-z 0-9 . _ -`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let name = raw.trim().to_ascii_lowercase();
        if !(3..=32).contains(&name.len()) {
            return invalid("A username has 3 to 32 characters.");
        }
        if !name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        }) {
            return invalid("A username may contain only a-z, 0-9, '.', '_' and '-'.");
        }
        Ok(Username(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password as typed; only its length is checked, then it is hashed.
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let count = raw.chars().count();
        if count < 8 {
            return invalid("A password needs at least 8 characters.");
        }
        if raw.len() > 1024 {
            return invalid("A password may have at most 1024 bytes.");
        }
        Ok(Password(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw.trim() {
            "admin" => Ok(Role::Admin),
            "user" => Ok(Role::User),
            other => invalid(format!("'{other}' is not a role; use 'admin' or 'user'.")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

/// A file's revision, `MAJOR.MINOR`, each part at most [`Revision::MAX_PART`].
///
/// Two ways in, on purpose: [`Revision::parse`] is the edge parser for what
/// a person types (six digits a part); a stored revision is read back by
/// [`Revision::from_stored`], which takes any value the type can hold, so a
/// record written once (by this version or an older one) always reads again.
/// Writing keeps to the limit: [`Revision::bump`] refuses to pass it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    pub major: u32,
    pub minor: u32,
}

impl Revision {
    pub const FIRST: Revision = Revision { major: 1, minor: 0 };
    /// The largest part a person may type or a check-in may reach.
    pub const MAX_PART: u32 = 999_999;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let raw = raw.trim();
        let bad = || {
            Invalid(format!(
                "'{raw}' is not a revision; write it as MAJOR.MINOR, e.g. 1.0."
            ))
        };
        let (major, minor) = raw.split_once('.').ok_or_else(bad)?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(major) || !digits(minor) {
            return Err(bad());
        }
        // Well-formed but too big: say which rule, not "not a revision".
        if major.len() > 6 || minor.len() > 6 {
            return Err(Invalid(format!(
                "'{raw}' is too large: each part of a revision is at most {}.",
                Self::MAX_PART
            )));
        }
        Ok(Revision {
            major: major.parse().map_err(|_| bad())?,
            minor: minor.parse().map_err(|_| bad())?,
        })
    }

    /// Reads a revision this program wrote (a record, an event, a commit
    /// trailer): any `u32.u32`, never the edge's limits. `None` only for
    /// text that is no revision at all.
    pub fn from_stored(raw: &str) -> Option<Self> {
        let (major, minor) = raw.trim().split_once('.')?;
        let part = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| s.parse::<u32>().ok())
                .flatten()
        };
        Some(Revision {
            major: part(major)?,
            minor: part(minor)?,
        })
    }

    /// The next revision; refused (nothing is written) when the part it
    /// raises would pass [`Revision::MAX_PART`]. The other part is carried
    /// as it is, so a record an older version wrote past the limit can
    /// still take the bump that stays within it.
    pub fn bump(self, bump: Bump) -> Result<Revision, Invalid> {
        let raised = |part: u32, which: &str| {
            part.checked_add(1)
                .filter(|p| *p <= Self::MAX_PART)
                .ok_or_else(|| {
                    Invalid(format!(
                        "Revision {self} cannot take a {which} bump: a revision part may be at most {}.",
                        Self::MAX_PART
                    ))
                })
        };
        Ok(match bump {
            Bump::Minor => Revision {
                major: self.major,
                minor: raised(self.minor, "minor")?,
            },
            Bump::Major => Revision {
                major: raised(self.major, "major")?,
                minor: 0,
            },
        })
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl serde::Serialize for Revision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Stored records only: lenient by design (see [`Revision::from_stored`]).
impl<'de> serde::Deserialize<'de> for Revision {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Revision::from_stored(&raw)
            .ok_or_else(|| serde::de::Error::custom(format!("'{raw}' is not a stored revision")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bump {
    Minor,
    Major,
}

impl Bump {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw.trim() {
            "" | "minor" => Ok(Bump::Minor),
            "major" => Ok(Bump::Major),
            other => invalid(format!("'{other}' is not a bump; use 'minor' or 'major'.")),
        }
    }
}

/// Free text of bounded length with no control characters but newlines and tabs.
fn bounded_text(
    raw: &str,
    what: &str,
    max_chars: usize,
    allow_newlines: bool,
    kind: TextKind,
) -> Result<String, Invalid> {
    let text = raw.trim();
    if text.chars().count() > max_chars {
        return invalid(format!(
            "The {what} is too long: at most {max_chars} characters."
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\r' | '\t')))
    {
        return invalid(format!("The {what} contains a control character."));
    }
    check_hidden(text, kind, what)?;
    // A lone CR would end a line in an SSE stream (and let text forge fields).
    Ok(text.replace("\r\n", "\n").replace('\r', "\n"))
}

/// The optional note a holder leaves on a check-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockComment(String);

impl LockComment {
    pub const MAX_CHARS: usize = 500;

    /// Empty input means no comment.
    pub fn parse(raw: &str) -> Result<Option<Self>, Invalid> {
        let text = bounded_text(raw, "comment", Self::MAX_CHARS, false, TextKind::FreeText)?;
        Ok((!text.is_empty()).then_some(LockComment(text)))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A file's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Ok(Description(bounded_text(
            raw,
            "description",
            2000,
            true,
            TextKind::FreeText,
        )?))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// The message of a check-in: required, and it becomes the Git commit message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitMessage(String);

impl CommitMessage {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let text = bounded_text(raw, "check-in message", 5000, true, TextKind::FreeText)?;
        if text.is_empty() {
            return invalid("A check-in needs a message saying what changed.");
        }
        // Trailers are ours: a message line that looks like one would let a
        // user forge the revision or author that history is rebuilt from.
        if text
            .lines()
            .any(|line| line.trim_start().to_ascii_lowercase().starts_with("latch-"))
        {
            return invalid("A check-in message line may not start with 'Latch-'.");
        }
        Ok(CommitMessage(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name shown beside a username.
pub fn parse_display_name(raw: &str) -> Result<String, Invalid> {
    let text = bounded_text(raw, "display name", 64, false, TextKind::OneLine)?;
    if text.contains(['<', '>']) {
        return invalid("A display name may not contain '<' or '>'.");
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised() {
        let cases = [
            ("a.txt", "a.txt"),
            ("parts//x.mcam", "parts/x.mcam"),
            ("./parts/./x.mcam", "parts/x.mcam"),
            ("  parts/x.mcam  ", "parts/x.mcam"),
            ("parts/x.mcam/", "parts/x.mcam"),
        ];
        for (raw, want) in cases {
            assert_eq!(
                RepoPath::parse(raw).map(|p| p.0),
                Ok(want.to_string()),
                "{raw}"
            );
        }
    }

    #[test]
    fn hostile_paths_are_refused() {
        let long = "a".repeat(256);
        let cases = [
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("../x", "parent"),
            ("a/../../x", "parent inside"),
            (".git/config", "git dir"),
            ("a/.GIT/hooks", "git dir any case"),
            ("a\\b", "backslash"),
            ("a\u{0}b", "nul"),
            ("a\nb", "newline"),
            (long.as_str(), "too long"),
            ("C:/x", "drive"),
            ("./C:/x", "drive after normalising"),
            ("/", "only slash"),
            ("a/ b", "leading space part"),
            ("a/b.", "trailing dot"),
            ("git~1/config", "NTFS short name of .git"),
            (".g\u{200c}it/config", "HFS-ignorable character in .git"),
            ("a\u{feff}b", "invisible character"),
        ];
        for (raw, why) in cases {
            assert!(RepoPath::parse(raw).is_err(), "{why}: {raw:?} was accepted");
        }
    }

    #[test]
    fn revisions_bump() {
        let r = Revision::parse("1.2").unwrap();
        assert_eq!(r.bump(Bump::Minor).unwrap().to_string(), "1.3");
        assert_eq!(r.bump(Bump::Major).unwrap().to_string(), "2.0");
        let top = Revision::parse("999999.999999").unwrap();
        assert!(top.bump(Bump::Minor).is_err());
        assert!(top.bump(Bump::Major).is_err());
        let legacy = Revision::from_stored("1000000.4").unwrap();
        assert_eq!(legacy.bump(Bump::Minor).unwrap().to_string(), "1000000.5");
        assert!(legacy.bump(Bump::Major).is_err());
        for bad in ["1", "1.", ".1", "a.b", "1.2.3", "-1.0", "1234567.0"] {
            assert!(Revision::parse(bad).is_err(), "{bad}");
        }
        let too_big = Revision::parse("1000000.0").unwrap_err().0;
        assert!(too_big.contains("at most 999999"), "{too_big}");
    }

    #[test]
    fn usernames() {
        assert_eq!(Username::parse("Alice").unwrap().as_str(), "alice");
        for bad in ["ab", "a b", "ali<ce", &"x".repeat(33), "bob!"] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_lone_carriage_return_becomes_a_newline() {
        let text = CommitMessage::parse("fix\rid: 9\r\nmore").unwrap();
        assert_eq!(text.as_str(), "fix\nid: 9\nmore");
    }

    #[test]
    fn messages_cannot_forge_trailers() {
        assert!(CommitMessage::parse("fix\n\nLatch-Revision: 9.9").is_err());
        assert!(CommitMessage::parse("   ").is_err());
        assert!(CommitMessage::parse("Fix the post").is_ok());
    }

    #[test]
    fn ntfs_and_windows_spellings_are_refused_with_a_sentence() {
        for raw in [
            ".git::$INDEX_ALLOCATION/config",
            "a/.GIT:stream",
            "git~1::$INDEX_ALLOCATION/x",
            ".git . :x/y",
            ".gitmodules",
            "a/.GitModules",
            "gitmod~1",
            "GI7EBA~1",
            "CON",
            "a/nul.txt",
            "com1.mcam",
            "LPT0",
            "conin$",
            "a/b:c",
            "a/b|c",
            "what?",
            "a*",
            "<x>",
            "\"q\"",
        ] {
            let err = RepoPath::parse(raw).expect_err(raw);
            assert!(err.0.ends_with('.'), "{raw}: {err}");
        }
        for fine in [
            "console.mcam",
            "com10",
            "lpt",
            "a/.gitignore",
            "git~2",
            "gitmodules",
        ] {
            assert!(RepoPath::parse(fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn git_and_lfs_configuration_names_are_refused_in_every_spelling() {
        for raw in [
            ".gitattributes",
            "a/.GITATTRIBUTES",
            ".gitattributes . ",
            "a/.gitattributes::$DATA",
            "gitatt~1",
            "GI7D29~2",
            ".gitmodules",
            "gitmod~3",
            ".lfsconfig",
            "deep/er/.LfsConfig..",
            "lfscon~1",
        ] {
            let err = RepoPath::parse(raw).expect_err(raw);
            assert!(err.0.ends_with('.'), "{raw}: {err}");
        }
        for fine in [
            ".gitignore",
            "gitattributes",
            ".gitattributes.txt",
            "my.lfsconfig",
            "lfscon~x",
            "a/.gitkeep",
        ] {
            assert!(RepoPath::parse(fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn superscript_device_names_are_refused() {
        for bad in ["COM¹.txt", "lpt³", "parts/Com².nc"] {
            assert!(RepoPath::parse(bad).is_err(), "{bad}");
        }
        for ok in ["COM¹0.txt", "comma.txt", "com.txt"] {
            assert!(RepoPath::parse(ok).is_ok(), "{ok}");
        }
    }

    /// Scripts and emoji that need joiners and selectors stay writable;
    /// the same characters beside ASCII are refused.
    #[test]
    fn joiners_and_selectors_shape_letters_but_never_hide_ascii() {
        for ok in [
            "\u{2764}\u{fe0f}.txt",
            "\u{1f468}\u{200d}\u{1f469}.png",
            "\u{645}\u{6cc}\u{200c}\u{62e}\u{648}\u{627}\u{647}\u{645}.txt",
            "\u{915}\u{94d}\u{200d}\u{937}.nc",
        ] {
            assert!(RepoPath::parse(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            ".g\u{200c}it/config",
            "a\u{200d}b",
            "\u{200d}\u{1f469}",
            "\u{1f468}\u{200d}",
            "x\u{fe0f}.txt",
            "\u{fe0f}.txt",
            "\u{1f468}\u{200d}\u{200d}\u{1f469}",
        ] {
            assert!(RepoPath::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// Which kind of text refuses which character.
    #[test]
    fn hidden_characters_by_kind() {
        use TextKind::{FreeText, OneLine, Path};
        // (character, refused in paths, in one-line names, in free text)
        let table = [
            ('\u{00ad}', true, false, false),
            ('\u{034f}', true, false, false),
            ('\u{061c}', true, true, false),
            ('\u{115f}', true, false, false),
            ('\u{180e}', true, false, false),
            ('\u{200b}', true, false, false),
            ('\u{200d}', true, false, false),
            ('\u{200e}', true, true, false),
            ('\u{200f}', true, true, false),
            ('\u{202a}', true, true, true),
            ('\u{202e}', true, true, true),
            ('\u{2060}', true, false, false),
            ('\u{2066}', true, true, true),
            ('\u{2069}', true, true, true),
            ('\u{2800}', true, false, false),
            ('\u{3164}', true, false, false),
            ('\u{fe0f}', true, false, false),
            ('\u{feff}', true, false, false),
            ('\u{ffa0}', true, false, false),
            ('\u{fff9}', true, false, false),
            ('\u{fffb}', true, false, false),
            ('\u{1d173}', true, false, false),
            ('\u{e0001}', true, false, false),
            ('\u{e0020}', true, false, false),
            ('\u{e01ef}', true, false, false),
            ('a', false, false, false),
            (' ', false, false, false),
            ('\u{e9}', false, false, false),
            ('\u{5d0}', false, false, false),
        ];
        for (c, path, one_line, free) in table {
            let text = format!("x{c}y");
            assert_eq!(
                hidden_character(&text, Path).is_some(),
                path,
                "{c:?} in a path"
            );
            assert_eq!(
                hidden_character(&text, OneLine).is_some(),
                one_line,
                "{c:?} in a name"
            );
            assert_eq!(
                hidden_character(&text, FreeText).is_some(),
                free,
                "{c:?} in free text"
            );
            assert_eq!(
                RepoPath::parse(&format!("a/{text}")).is_err(),
                path,
                "{c:?}"
            );
            assert_eq!(parse_display_name(&text).is_err(), one_line, "{c:?}");
            assert_eq!(CommitMessage::parse(&text).is_err(), free, "{c:?}");
            if path {
                let err = RepoPath::parse(&text).unwrap_err();
                assert!(err.0.contains(&format!("U+{:04X}", c as u32)), "{err}");
            }
        }
    }

    /// The tree editor's options as gix derives them for the vault (no
    /// config: NTFS on, Windows and HFS+ only on those systems).
    fn tree_editor_options() -> gix::validate::path::component::Options {
        gix::validate::path::component::Options {
            protect_windows: cfg!(windows),
            protect_hfs: cfg!(target_os = "macos"),
            protect_ntfs: true,
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Whatever `RepoPath::parse` accepts, the Git layer stores: every
        /// component passes gix-validate with the tree editor's options,
        /// and with every protection on (a vault config may turn them on).
        #[test]
        fn accepted_paths_pass_the_git_layers_check(
            raw in proptest::string::string_regex(
                "(\\.git|git~1|\\.gitmodules|gitmod~[0-9]|gi7eba~[0-9]|con|CONOUT\\$|nul|Aux|prn|com[0-9]|lpt[0-9]|[a-zA-Z0-9. ~:$/\\\\<|?*\"\u{200c}-]){1,12}"
            ).unwrap()
        ) {
            use gix::bstr::ByteSlice;
            use gix::validate::path::component;
            if let Ok(path) = RepoPath::parse(&raw) {
                for part in path.as_str().split('/') {
                    for options in [tree_editor_options(), component::Options::default()] {
                        proptest::prop_assert!(
                            component(part.as_bytes().as_bstr(), None, options).is_ok(),
                            "{raw:?} accepted, but gix refuses {part:?}"
                        );
                    }
                }
            }
        }

        /// A hidden character anywhere in an otherwise good path, name or
        /// message is refused where that kind of text refuses it.
        #[test]
        fn a_hidden_character_anywhere_is_refused(
            base in "[a-z]{1,8}(/[a-z]{1,8}){0,3}",
            at in 0usize..40,
            c in proptest::sample::select(vec![
                '\u{00ad}', '\u{034f}', '\u{061c}', '\u{1160}', '\u{17b4}', '\u{180b}',
                '\u{180f}', '\u{200c}', '\u{200e}', '\u{202c}', '\u{2064}', '\u{2067}',
                '\u{206f}', '\u{2800}', '\u{3164}', '\u{fe00}', '\u{feff}', '\u{ffa0}',
                '\u{fff0}', '\u{fffa}', '\u{1bca3}', '\u{e0000}', '\u{e0fff}', '\u{0600}',
                '\u{2028}',
            ]),
        ) {
            let chars: Vec<char> = base.chars().collect();
            let at = at % (chars.len() + 1);
            // Inside a word: at the ends, what is white space is only trimmed.
            let text: String = ['q'].iter().chain(&chars[..at]).chain([&c]).chain(&chars[at..]).chain(['q'].iter()).collect();
            proptest::prop_assert!(RepoPath::parse(&text).is_err(), "{:?} accepted", text);
            let name_refused = parse_display_name(&text.replace('/', " ")).is_err();
            proptest::prop_assert_eq!(name_refused, is_bidi_control(c));
            let message_refused = CommitMessage::parse(&text).is_err();
            proptest::prop_assert_eq!(message_refused, is_bidi_override(c));
        }

        /// A revision any write can store reads back as itself.
        #[test]
        fn stored_revisions_read_back(major in proptest::prelude::any::<u32>(), minor in proptest::prelude::any::<u32>()) {
            let r = Revision { major, minor };
            let json = serde_json::to_string(&r).unwrap();
            proptest::prop_assert_eq!(serde_json::from_str::<Revision>(&json).unwrap(), r);
        }

        /// A bump stays within what a person may type.
        #[test]
        fn a_bump_stays_within_the_edge_parser(
            major in 0..=Revision::MAX_PART,
            minor in 0..=Revision::MAX_PART,
            major_bump in proptest::prelude::any::<bool>(),
        ) {
            let bump = if major_bump { Bump::Major } else { Bump::Minor };
            if let Ok(next) = (Revision { major, minor }).bump(bump) {
                proptest::prop_assert_eq!(Revision::parse(&next.to_string()), Ok(next));
            }
        }
    }
}
