//! Validated values from the outside world: each is parsed once at the edge,
//! and the rest of the code trusts it without checking again.

use std::fmt;

mod email;
mod path;
#[cfg(test)]
mod tests;
mod text;

pub use email::EmailAddress;
pub use path::{Folder, RepoPath};
pub use text::{TextKind, check_hidden, hidden_character};

/// Why an outside value was refused, as a sentence a person understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// A size as people read it: `512 B`, `1.5 KiB`, `20 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

fn invalid<T>(message: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(message.into()))
}

/// A login name: lower-case, 3–32 of `a-z 0-9 . _ -`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Username(String);

/// The name the server's own actions carry (a lock released by expiry):
/// no account may take it, so the log never mistakes one for the other.
pub const SYSTEM_ACTOR: &str = "latch";

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
        if name == SYSTEM_ACTOR {
            return invalid(
                "The username 'latch' is kept for the server's own actions; choose another.",
            );
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

/// What someone asking the holder to release a file says (optional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NudgeMessage(String);

impl NudgeMessage {
    pub const MAX_CHARS: usize = 500;

    /// Empty input means no message.
    pub fn parse(raw: &str) -> Result<Option<Self>, Invalid> {
        let text = bounded_text(raw, "message", Self::MAX_CHARS, false, TextKind::FreeText)?;
        Ok((!text.is_empty()).then_some(NudgeMessage(text)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
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
