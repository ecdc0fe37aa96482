//! Seeing inside files: previews (text with line numbers, raster images by
//! their magic bytes only, SVG never inline, reads bounded at 1 MiB), the raw
//! image route's headers, comparing two versions (exact `text/x-diff`, the
//! HTML marks, refusals for binary, too big, unknown or foreign versions),
//! and a folder's `.zip` checked by the real `unzip -t` and Python's
//! `zipfile`.

use std::process::Command;

use crate::common::{Client, TestApp, expect_error, have_tool, header};
use serde_json::json;

const MIB: usize = 1024 * 1024;

/// A 1×1 PNG.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\x89\x99=\x1d\0\0\0\0IEND\xaeB`\x82";

async fn page(c: &Client, path: &str) -> (u16, String) {
    let resp = c.get(path).await;
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// Checks a file in with `content` and answers the new version's commit.
async fn new_version(c: &Client, id: u64, content: &[u8]) -> String {
    assert_eq!(c.checkout(id, "").await.status(), 200);
    assert_eq!(c.checkin(id, content, "next", "minor").await.status(), 200);
    c.file(id).await["head"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_text_preview_shows_numbered_lines_escaped_and_crlf_split() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let id = alice
        .upload_ok("nc/O1001.nc", b"G21 <b>\r\nG90\r\nM30\r\n")
        .await;
    let (status, html) = page(&alice, &format!("/files/{id}/preview")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<ol class=\"lines\""), "{html}");
    assert!(
        html.contains("<li>G21 &lt;b&gt;</li><li>G90</li><li>M30</li></ol>"),
        "{html}"
    );
    assert!(!html.contains('\r'));
    let json = alice.get_json(&format!("/api/files/{id}/preview")).await;
    assert_eq!(json["kind"], "text");
    assert_eq!(json["truncated"], false);
    assert_eq!(json["revision"], "1.0");
}

#[tokio::test]
async fn a_large_text_preview_reads_one_mib_and_drops_a_character_cut_there() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    // "é" is two bytes; one sits across the 1 MiB boundary.
    let mut text = vec![b'a'; MIB - 1];
    while text.len() < 6 * MIB {
        text.extend_from_slice("é\n".as_bytes());
    }
    let id = alice.upload_ok("nc/long.nc", &text).await;
    let json = alice.get_json(&format!("/api/files/{id}/preview")).await;
    assert_eq!(json["kind"], "text", "{json}");
    assert_eq!(json["truncated"], true);
    assert_eq!(json["size"], text.len() as u64);
    let shown = json["text"].as_str().unwrap();
    assert_eq!(shown.len(), MIB - 1, "the cut character is dropped");
    let (status, html) = page(&alice, &format!("/files/{id}/preview")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Showing the first 1.0 MiB of 6.0 MiB"),
        "truncation is said"
    );
    // The server keeps answering.
    assert_eq!(alice.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn nul_bytes_or_broken_utf8_make_a_version_binary_shown_by_type_and_size() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let id = alice.upload_ok("cad/part.sldprt", b"abc\0def").await;
    let json = alice.get_json(&format!("/api/files/{id}/preview")).await;
    assert_eq!(json["kind"], "other");
    assert_eq!(json["description"], "CAD model");
    let bad = alice.upload_ok("data/bad.csv", b"a,b\n\xff\xfe,c\n").await;
    let json = alice.get_json(&format!("/api/files/{bad}/preview")).await;
    assert_eq!(json["kind"], "other");
    let (status, html) = page(&alice, &format!("/files/{id}/preview")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("CAD model") && html.contains("7 bytes"),
        "{html}"
    );
    assert!(
        html.contains(&format!("/files/{id}/download")),
        "a download button"
    );
}

#[tokio::test]
async fn a_png_is_shown_inline_from_a_sandboxed_raw_route_and_an_svg_never() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    // Named .txt: the bytes decide, not the name.
    let png = alice.upload_ok("img/photo.txt", PNG).await;
    let (status, html) = page(&alice, &format!("/files/{png}/preview")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!("<img src=\"/files/{png}/raw\"")),
        "{html}"
    );
    let raw = alice.get(&format!("/files/{png}/raw")).await;
    assert_eq!(raw.status(), 200);
    assert_eq!(header(&raw, "content-type"), "image/png");
    assert_eq!(header(&raw, "x-content-type-options"), "nosniff");
    assert_eq!(
        header(&raw, "content-security-policy"),
        "default-src 'none'; sandbox"
    );
    assert_eq!(header(&raw, "content-disposition"), "inline");
    assert_eq!(raw.bytes().await.unwrap().as_ref(), PNG);

    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
    let svg = alice.upload_ok("img/logo.svg", svg).await;
    let (status, html) = page(&alice, &format!("/files/{svg}/preview")).await;
    assert_eq!(status, 200);
    assert!(
        !html.contains("<img"),
        "an SVG is never an image here: {html}"
    );
    // Its markup is text, shown escaped, never as markup.
    assert!(html.contains("&lt;script&gt;"), "{html}");
    let raw = alice.get(&format!("/files/{svg}/raw")).await;
    assert_eq!(raw.status(), 404);
    let text = raw.text().await.unwrap();
    assert!(text.contains("not shown inline"), "{text}");
    // Not signed in: no bytes.
    let anon = app.anonymous();
    let resp = anon.get(&format!("/files/{png}/raw")).await;
    assert_ne!(resp.status(), 200);
}

#[tokio::test]
async fn the_api_compares_two_versions_as_an_exact_unified_diff() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let id = alice
        .upload_ok("nc/O1.nc", b"G21\nG90\nM3 S1000\nM30\n")
        .await;
    let first = alice.file(id).await["head"].as_str().unwrap().to_string();
    let second = new_version(&alice, id, b"G21\nG90\nM3 S1200\nM30\n").await;
    let resp = alice
        .get(&format!("/api/files/{id}/diff?from={first}&to={second}"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), "text/x-diff; charset=utf-8");
    assert_eq!(header(&resp, "x-diff-cut-short"), "false");
    assert_eq!(
        resp.text().await.unwrap(),
        "--- nc/O1.nc@1.0\n+++ nc/O1.nc@1.1\n@@ -1,4 +1,4 @@\n G21\n G90\n-M3 S1000\n+M3 S1200\n M30\n"
    );
    // The same versions: an empty diff.
    let resp = alice
        .get(&format!("/api/files/{id}/diff?from={second}&to={second}"))
        .await;
    assert_eq!(resp.text().await.unwrap(), "");
    // After a move, each side is named as it was: the versions kept their path.
    assert_eq!(alice.checkout(id, "").await.status(), 200);
    let moved = alice
        .post_json(
            &format!("/api/files/{id}/move"),
            &json!({"path": "nc/old/O1.nc"}),
        )
        .await;
    assert_eq!(moved.status(), 200);
    let resp = alice
        .get(&format!("/api/files/{id}/diff?from={first}&to={second}"))
        .await;
    assert!(
        resp.text()
            .await
            .unwrap()
            .starts_with("--- nc/O1.nc@1.0\n+++ nc/O1.nc@1.1\n"),
        "a moved file's old versions keep their old names"
    );

    // The page marks lines with signs and ins/del, not colour alone.
    let (status, html) = page(
        &alice,
        &format!("/files/{id}/diff?from={first}&to={second}"),
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<del>M3 S1000</del>"), "{html}");
    assert!(html.contains("<ins>M3 S1200</ins>"), "{html}");
    assert!(
        html.contains(">+</td>") && html.contains(">−</td>"),
        "{html}"
    );
    assert!(
        html.contains("1 line added (+), 1 line removed (−)"),
        "{html}"
    );

    // The history drawer offers it.
    let (_, history) = page(&alice, &format!("/files/{id}/history")).await;
    let link = format!("/files/{id}/diff?from={first}&amp;to={second}");
    assert!(history.contains(&link), "{history}");
    assert!(history.contains(&format!("/files/{id}/preview?rev={first}")));
}

#[tokio::test]
async fn comparing_binary_too_big_unknown_or_another_files_versions_is_refused() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let id = alice.upload_ok("cad/a.bin", b"\0\x01\x02").await;
    let first = alice.file(id).await["head"].as_str().unwrap().to_string();
    let second = new_version(&alice, id, b"\0\x01\x03").await;
    let diff = |from: &str, to: &str| format!("/api/files/{id}/diff?from={from}&to={to}");
    let err = expect_error(alice.get(&diff(&first, &second)).await, 422).await;
    assert!(err.contains("is not text"), "{err}");

    let big = vec![b'x'; 5 * MIB];
    let big_id = alice.upload_ok("nc/big.nc", &big).await;
    let big_first = alice.file(big_id).await["head"]
        .as_str()
        .unwrap()
        .to_string();
    let big_second = new_version(&alice, big_id, b"small\n").await;
    let url = format!("/api/files/{big_id}/diff?from={big_first}&to={big_second}");
    let err = expect_error(alice.get(&url).await, 422).await;
    assert!(err.contains("5.0 MiB") && err.contains("4.0 MiB"), "{err}");
    let (status, html) = page(
        &alice,
        &format!("/files/{big_id}/diff?from={big_first}&to={big_second}"),
    )
    .await;
    assert_eq!(status, 422);
    assert!(html.contains("5.0 MiB"), "{html}");

    // A commit that is not a version at all, and one of another file.
    let unknown = "0".repeat(40);
    let err = expect_error(alice.get(&diff(&unknown, &second)).await, 404).await;
    assert!(err.contains("has no version"), "{err}");
    let err = expect_error(alice.get(&diff(&big_first, &second)).await, 404).await;
    assert!(err.contains("has no version"), "{err}");
    let err = expect_error(alice.get(&diff("not-hex", &second)).await, 404).await;
    assert!(err.contains("has no version"), "{err}");
    // Both are needed on the page.
    let (status, _) = page(&alice, &format!("/files/{id}/diff?from={first}")).await;
    assert_eq!(status, 400);
}

/// Runs `unzip -t` and Python's `zipfile` on `zip`; answers Python's list
/// of `name:size` lines.
fn check_zip(zip: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.zip");
    std::fs::write(&path, zip).unwrap();
    if have_tool("unzip", "unzip") {
        let out = Command::new("unzip").arg("-t").arg(&path).output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "unzip -t: {said}");
        assert!(said.contains("No errors detected"), "{said}");
    }
    let script = "import sys, zipfile\n\
                  z = zipfile.ZipFile(sys.argv[1])\n\
                  bad = z.testzip()\n\
                  assert bad is None, bad\n\
                  for i in z.infolist():\n    print(f'{i.filename}:{i.file_size}:{len(z.read(i))}')\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python zipfile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn a_folder_downloads_as_a_zip_of_its_current_versions_named_inside_it() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let a = alice.upload_ok("parts/fixtures/a.nc", b"old").await;
    new_version(&alice, a, b"new!").await;
    alice
        .upload_ok("parts/fixtures/Prüfvorrichtung/Grundplatte.step", b"solid")
        .await;
    alice.upload_ok("parts/other.nc", b"not in it").await;
    alice.upload_ok("top.txt", b"top").await;

    let resp = alice.get("/api/folders/zip?path=parts/fixtures").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), "application/zip");
    assert!(header(&resp, "content-disposition").contains("fixtures.zip"));
    let zip = resp.bytes().await.unwrap();
    assert_eq!(
        check_zip(&zip),
        ["Prüfvorrichtung/Grundplatte.step:5:5", "a.nc:4:4"]
    );
    // The path form gives the same archive.
    let resp = alice.get("/api/folders/parts/fixtures/zip").await;
    assert_eq!(resp.status(), 200);
    let same = resp.bytes().await.unwrap();
    assert_eq!(check_zip(&same), check_zip(&zip));
    let resp = alice
        .get("/api/folders/parts/fixtures/Pr%C3%BCfvorrichtung/zip")
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        check_zip(&resp.bytes().await.unwrap()),
        ["Grundplatte.step:5:5"]
    );

    // `/` is the whole vault, with full paths.
    let resp = alice.get("/api/folders/zip?path=/").await;
    assert_eq!(resp.status(), 200);
    assert!(header(&resp, "content-disposition").contains("vault.zip"));
    let all = check_zip(&resp.bytes().await.unwrap());
    assert_eq!(all.len(), 4);
    assert!(all.contains(&"top.txt:3:3".to_string()), "{all:?}");
    assert!(all.contains(&"parts/other.nc:9:9".to_string()), "{all:?}");

    // The dashboard links each folder's zip.
    let (_, html) = page(&alice, "/").await;
    assert!(
        html.contains("/api/folders/zip?path=parts%2Ffixtures"),
        "{html}"
    );
}

#[tokio::test]
async fn a_folder_zip_refuses_empty_folders_dot_dot_and_strangers() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let err = expect_error(alice.get("/api/folders/zip?path=/").await, 404).await;
    assert!(err.contains("nothing to download"), "{err}");
    alice.upload_ok("parts/a.nc", b"a").await;
    let err = expect_error(alice.get("/api/folders/zip?path=nothing").await, 404).await;
    assert!(err.contains("The folder nothing/ has no files"), "{err}");
    let err = expect_error(alice.get("/api/folders/zip?path=parts/../x").await, 422).await;
    assert!(err.contains(".."), "{err}");
    let err = expect_error(alice.get("/api/folders/parts/..%2Fx/zip").await, 422).await;
    assert!(err.contains(".."), "{err}");
    let anon = app.anonymous();
    expect_error(anon.get("/api/folders/zip?path=parts").await, 401).await;
    expect_error(anon.get("/api/folders/parts/zip").await, 401).await;
}
