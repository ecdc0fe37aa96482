//! Hidden and reordering characters: which a piece of text may hold,
//! depending on where it goes (a path, a one-line name, free text).

use super::{Invalid, invalid};

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
pub(super) fn is_default_ignorable(c: char) -> bool {
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
pub(super) fn is_blank_lookalike(c: char) -> bool {
    matches!(c,
        '\u{0600}'..='\u{0605}' | '\u{06dd}' | '\u{070f}' | '\u{0890}'..='\u{0891}'
        | '\u{08e2}' | '\u{2028}'..='\u{2029}' | '\u{2800}' | '\u{fff9}'..='\u{fffb}'
        | '\u{110bd}' | '\u{110cd}' | '\u{13430}'..='\u{1343f}')
}

/// Overrides, embeddings and isolates: they reorder the text that follows
/// (`\u{202e}` makes `gpj.exe` read `exe.jpg`).
pub(super) fn is_bidi_override(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Every bidirectional control: the overrides plus the marks.
pub(super) fn is_bidi_control(c: char) -> bool {
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
pub(super) fn shapes_its_neighbours(chars: &[char], i: usize) -> bool {
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
