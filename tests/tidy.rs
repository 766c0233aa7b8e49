//! What a reviewer would check by eye: every source file opens with a `//!` module doc,
//! `unsafe` appears only in `src/segment/map.rs` and each block there follows a
//! `// SAFETY:` comment, and the format constants agree with the spec's tables.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_source_file_opens_with_a_module_doc() {
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches", "tools"] {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(files.len() > 20);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            text.starts_with("//!"),
            "{} does not open with a //! doc",
            f.display()
        );
    }
}

#[test]
fn unsafe_lives_only_in_the_map_layer_with_safety_comments() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let is_map = f.ends_with("segment/map.rs");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains("unsafe {")
                || code.contains("unsafe fn")
                || code.contains("unsafe impl")
            {
                assert!(
                    is_map,
                    "{}:{}: unsafe outside segment/map.rs",
                    f.display(),
                    n + 1
                );
                let before: Vec<&str> = text.lines().take(n).collect();
                let comment_above = before
                    .iter()
                    .rev()
                    .take_while(|l| l.trim_start().starts_with("//"))
                    .any(|l| l.contains("SAFETY:"));
                assert!(
                    comment_above,
                    "{}:{}: unsafe block without a SAFETY comment above",
                    f.display(),
                    n + 1
                );
            }
        }
    }
}

#[test]
fn spec_tables_agree_with_the_format_constants() {
    let spec = std::fs::read_to_string(root().join("format-spec/FORMAT.md")).unwrap();
    // The header size, the slot offsets and length, and the magic numbers.
    for needle in [
        "SLOGSEG", "SLOGSTOR", "SLOGFOOT", "SLOGCURS", "| 64 |", "| 120 |", "256",
    ] {
        assert!(spec.contains(needle), "FORMAT.md lacks {needle}");
    }
    assert!(spec.contains("0xCBF43926"), "the CRC check value is stated");
}
