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
        if trimmed.chars().any(is_invisible) {
            return invalid("The path contains an invisible formatting character.");
        }
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
                return invalid("The path may not contain a '.git' folder.");
            }
            if part.ends_with('.') {
                return invalid(format!("The path part '{part}' ends with a dot."));
            }
            parts.push(part);
        }
        if parts.is_empty() {
            return invalid("The path names no file.");
        }
        if parts.len() > 32 {
            return invalid("The path is nested more than 32 folders deep.");
        }
        let path = parts.join("/");
        // Checked on the normalised path, so `./C:/x` is refused like `C:/x`.
        if path.len() >= 2 && path.as_bytes()[1] == b':' {
            return invalid("The path looks like a drive letter; give it relative to the vault.");
        }
        Ok(RepoPath(path))
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

/// Characters HFS+ ignores when comparing names (Git's `is_hfs_dotgit`
/// list), so `.g\u{200c}it` would be `.git` on a Mac clone of the vault.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
}

/// Whether a path part would be the `.git` folder on some checkout of the
/// vault: any case, `.git~…`, and NTFS's short name `git~1` (Git's own
/// `is_ntfs_dotgit` refuses these on clone; Latch refuses them at the door).
fn names_git_dir(part: &str) -> bool {
    let lower = part.to_ascii_lowercase();
    lower == ".git" || lower.starts_with(".git~") || lower == "git~1"
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

/// A file's revision, `MAJOR.MINOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    pub major: u32,
    pub minor: u32,
}

impl Revision {
    pub const FIRST: Revision = Revision { major: 1, minor: 0 };

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let raw = raw.trim();
        let bad = || {
            Invalid(format!(
                "'{raw}' is not a revision; write it as MAJOR.MINOR, e.g. 1.0."
            ))
        };
        let (major, minor) = raw.split_once('.').ok_or_else(bad)?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(major) || !digits(minor) {
            return Err(bad());
        }
        Ok(Revision {
            major: major.parse().map_err(|_| bad())?,
            minor: minor.parse().map_err(|_| bad())?,
        })
    }

    pub fn bump(self, bump: Bump) -> Revision {
        match bump {
            Bump::Minor => Revision {
                major: self.major,
                minor: self.minor + 1,
            },
            Bump::Major => Revision {
                major: self.major + 1,
                minor: 0,
            },
        }
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

impl<'de> serde::Deserialize<'de> for Revision {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Revision::parse(&raw).map_err(serde::de::Error::custom)
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
        let text = bounded_text(raw, "comment", Self::MAX_CHARS, false)?;
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
        Ok(Description(bounded_text(raw, "description", 2000, true)?))
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
        let text = bounded_text(raw, "check-in message", 5000, true)?;
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
    let text = bounded_text(raw, "display name", 64, false)?;
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
        assert_eq!(r.bump(Bump::Minor).to_string(), "1.3");
        assert_eq!(r.bump(Bump::Major).to_string(), "2.0");
        for bad in ["1", "1.", ".1", "a.b", "1.2.3", "-1.0", "1234567.0"] {
            assert!(Revision::parse(bad).is_err(), "{bad}");
        }
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
}
