//! The one rule about a new file's name that needs the vault: it must not
//! clash with a name already there (the same, a file where a folder is
//! needed or the reverse, or one that differs only in letter case or
//! Unicode normalisation).

use redb::ReadableTable;

use crate::domain::RepoPath;
use crate::error::{AppError, AppResult};

/// Refuses `path` when it would share a name with what the vault holds:
/// the same path; a file where the path needs a folder (`a` for `a/b`); a
/// folder where the path would be a file (`parts` while `parts/x` exists);
/// or a name that differs from an existing file or folder only in letter
/// case or Unicode normalisation. Git's tree holds one entry per name, so either of the first would
/// silently replace the other in `main`; the last is one file on Windows
/// and macOS clones. Every path in the vault is in `PATHS`, so the table
/// proves all of this. Run it inside the write transaction that adds `path`.
pub(super) fn check_name_free(
    paths: &impl ReadableTable<&'static str, u64>,
    path: &RepoPath,
) -> AppResult<()> {
    if paths.get(path.as_str())?.is_some() {
        return Err(AppError::Conflict(format!(
            "A file named {path} already exists."
        )));
    }
    for folder in path.folders() {
        if paths.get(folder)?.is_some() {
            return Err(AppError::Conflict(format!(
                "{folder} is a file, so nothing can be put inside it; choose another name."
            )));
        }
    }
    // Everything below `path/` sorts in [`path/`, `path0`): '0' follows '/'.
    let (below, past) = (format!("{path}/"), format!("{path}0"));
    if let Some(row) = paths.range(below.as_str()..past.as_str())?.next() {
        let (inside, _) = row?;
        return Err(AppError::Conflict(format!(
            "{} is inside a folder named {path}; choose another name.",
            inside.value()
        )));
    }
    let wanted: Vec<&str> = path.parts().collect();
    for row in paths.iter()? {
        let (existing, _) = row?;
        if let Some(message) = case_clash(&wanted, existing.value()) {
            return Err(AppError::Conflict(message));
        }
    }
    Ok(())
}

/// Where `wanted` first names the same file or folder as `existing` but for
/// letter case or Unicode normalisation (`é` as one character, NFC, or as
/// `e` and a combining accent, NFD: macOS stores names as NFD, so the two
/// are one file there), the sentence saying so.
fn case_clash(wanted: &[&str], existing: &str) -> Option<String> {
    use unicode_normalization::UnicodeNormalization;
    let fold = |s: &str| s.to_lowercase().nfc().collect::<String>();
    for (depth, (w, h)) in wanted.iter().zip(existing.split('/')).enumerate() {
        if *w == h {
            continue;
        }
        // Two ASCII names (nearly all) decide without allocating: their
        // fold is their ASCII lower case. This runs against every path for
        // each file of a bulk upload, inside the write transaction.
        let same = if w.is_ascii() && h.is_ascii() {
            w.eq_ignore_ascii_case(h)
        } else {
            fold(w) == fold(h)
        };
        if !same {
            return None;
        }
        let have: Vec<&str> = existing.split('/').collect();
        let ours = wanted[..=depth].join("/");
        let theirs = have[..=depth].join("/");
        let what = if depth + 1 == have.len() {
            format!("the file {theirs}")
        } else {
            format!("the folder {theirs} (which holds {existing})")
        };
        let how = if w.to_lowercase() == h.to_lowercase() {
            "only in letter case; on Windows and macOS they would be one"
        } else if w.nfc().eq(h.nfc()) {
            "only in how its accented letters are encoded (Unicode NFC or NFD); on macOS they would be one"
        } else {
            "only in letter case and in how its accented letters are encoded; on Windows and macOS they would be one"
        };
        return Some(format!(
            "{ours} differs from {what} {how}, so choose another name."
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::case_clash;

    #[test]
    fn ascii_names_take_the_fast_path_and_others_still_fold() {
        assert!(case_clash(&["Parts", "A.txt"], "parts/a.TXT").is_some());
        assert!(case_clash(&["parts", "b.txt"], "parts/a.txt").is_none());
        // Only one side ASCII: the Kelvin sign lower-cases to `k`.
        assert!(case_clash(&["\u{212A}"], "k").is_some());
        // NFD against NFC.
        assert!(case_clash(&["e\u{301}.txt"], "\u{e9}.txt").is_some());
        assert!(case_clash(&["\u{e9}.txt"], "e.txt").is_none());
    }
}
