//! The layering, checked: the core (everything in `src/` outside
//! `src/http/`) imports nothing from HTTP — not poem, not maud, not
//! `crate::http` — so the rules of the product can be read, tested and
//! reused without a web framework. `src/lib.rs` is the one place that wires
//! the two together; `src/main.rs` is the command line.

use std::path::Path;

/// Words that mean a file reaches into the HTTP side.
const HTTP_WORDS: [&str; 5] = [
    "poem::",
    "poem_openapi",
    "maud::",
    "crate::http",
    "use maud",
];

#[test]
fn the_core_imports_nothing_from_http() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut core = 0;
    let mut wrong = Vec::new();
    for path in crate::common::rust_files(&src) {
        let rel = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if rel.starts_with("http/") || rel == "lib.rs" || rel == "main.rs" {
            continue;
        }
        core += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if let Some(word) = HTTP_WORDS.iter().find(|w| code.contains(*w)) {
                wrong.push(format!("src/{rel}:{}: {word} in `{}`", n + 1, line.trim()));
            }
        }
    }
    assert!(core >= 10, "found only {core} core files; has src/ moved?");
    assert!(
        wrong.is_empty(),
        "the core must not reach into HTTP (see docs/architecture.md):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn lib_rs_only_wires() {
    // The composition root may name `http` to start it, but defines no
    // routes or templates itself.
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for word in ["poem::", "maud::", "#[handler]", ".at(\""] {
        assert!(
            !lib.contains(word),
            "src/lib.rs should only wire; it has {word}"
        );
    }
}

#[test]
fn no_source_file_is_long_without_saying_why() {
    // A file past ~600 lines usually does several jobs; one that must be
    // long says why in its opening comment ("Long because …").
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut long = Vec::new();
    for path in crate::common::rust_files(&src) {
        let text = std::fs::read_to_string(&path).unwrap();
        let lines = text.lines().count();
        let header: String = text
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        if lines > 650 && !header.contains("Long because") {
            long.push(format!("{} ({lines} lines)", path.display()));
        }
    }
    assert!(
        long.is_empty(),
        "long files with no reason given:\n{}",
        long.join("\n")
    );
}

#[test]
fn every_write_to_the_file_records_marks_them_changed() {
    // The dashboard keeps the decoded file list until the generation that
    // `store::files_changed` bumps moves on: a write to `FILES` that does
    // not bump it would leave every dashboard showing an older list. A
    // table opened for writing (`let mut`, or `.insert`/`.remove` on it)
    // must have `files_changed` within the few lines before it.
    const WRITES: [&str; 5] = [
        ".insert(",
        ".remove(",
        ".retain(",
        ".pop_first(",
        ".pop_last(",
    ];
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut unmarked = Vec::new();
    let mut writes = 0;
    for path in crate::common::rust_files(&src) {
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let marked = |at: usize| {
            lines[at.saturating_sub(4)..=at]
                .iter()
                .any(|l| l.contains("files_changed("))
        };
        for (i, line) in lines.iter().enumerate() {
            let Some(at) = line.find("open_table(FILES)") else {
                continue;
            };
            let next = lines.get(i + 1).copied().unwrap_or("");
            // Written at once: `open_table(FILES)?.insert(…)`.
            if WRITES
                .iter()
                .any(|w| line[at..].contains(w) || next.trim_start().starts_with(w))
            {
                writes += 1;
                if !marked(i) {
                    unmarked.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                }
            }
            // Bound for writing: each write through the binding, in the
            // lines after it.
            let Some(name) = line
                .trim_start()
                .strip_prefix("let mut ")
                .and_then(|rest| rest.split([' ', ':']).next())
            else {
                continue;
            };
            for (j, later) in lines.iter().enumerate().skip(i + 1).take(80) {
                if WRITES.iter().any(|w| later.contains(&format!("{name}{w}"))) {
                    writes += 1;
                    if !marked(j) {
                        unmarked.push(format!("{}:{}: {}", path.display(), j + 1, later.trim()));
                    }
                }
            }
        }
    }
    assert!(
        writes >= 3,
        "the check found only {writes} writes: it no longer reads the source right"
    );
    assert!(
        unmarked.is_empty(),
        "writes to FILES without store::files_changed just before:\n{}",
        unmarked.join("\n")
    );
}
