//! What a reviewer would check by eye: every source file opens with a `//!` module doc,
//! `unsafe` appears only in `src/segment/map.rs` and each block there follows a
//! `// SAFETY:` comment, and no library file is over 900 lines; the modules of the library
//! and of the CLI name each other without cycles (`cycles.rs`), the byte tables of
//! `format-spec/FORMAT.md` agree with the encoders and the format constants (`spec.rs`),
//! and the spec's dedup home and walk place and find the entries of a real dedup window
//! image (`dedup_home.rs`).

mod cycles;
mod dedup_home;
mod spec;

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_source_file_opens_with_a_module_doc() {
    let mut files = Vec::new();
    for dir in [
        "src",
        "tests",
        "benches",
        "tools",
        "crates",
        "fuzz/fuzz_targets",
    ] {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(files.len() > 20);
    let missing: Vec<String> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .map(|f| relative(f))
        .collect();
    assert!(
        missing.is_empty(),
        "these files do not open with a //! doc: {missing:?}"
    );
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

/// Longest file of the library, in lines: a file past it carries more than one job.
const LIBRARY_FILE_LINES_MAX: usize = 900;

#[test]
fn no_library_file_is_over_900_lines() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).unwrap().lines().count();
            (lines > LIBRARY_FILE_LINES_MAX).then(|| format!("{} ({lines} lines)", relative(f)))
        })
        .collect();
    long.sort();
    assert!(
        long.is_empty(),
        "files of the library over {LIBRARY_FILE_LINES_MAX} lines: {}",
        long.join(", ")
    );
}
