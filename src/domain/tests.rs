//! The rules of every domain value, by example and generated cases.

use super::path::*;
use super::text::*;
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
            RepoPath::parse(raw).map(|p| p.as_str().to_string()),
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
            for part in path.parts() {
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

#[test]
fn the_servers_own_name_is_no_username() {
    for name in ["latch", "Latch", " LATCH "] {
        let said = Username::parse(name).unwrap_err().0;
        assert!(said.contains("server's own actions"), "{said}");
    }
    assert!(Username::parse("latch2").is_ok());
}
