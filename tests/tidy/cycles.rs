//! No module cycles, in the library and in the CLI: for each top-level module of a crate
//! (a file `src/x.rs` or a folder `src/x/`), the other top-level modules it names as
//! `crate::x` outside `#[cfg(test)]` code, in paths, `use crate::{a, b::c}` groups and
//! intra-doc links, must form an acyclic graph. A failure lists each group of modules that
//! reach each other, a cycle through each, and the line that names each edge.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::{relative, root, rust_files};

/// `text` with comments, string and character literals blanked (newlines kept, so byte
/// offsets and line numbers stay), except doc comments, whose words are kept (an
/// intra-doc link names a module as much as a `use` does) with their brackets and braces
/// blanked.
fn mask(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, r: Range<usize>| {
        for c in &mut out[r] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |p| i + p);
                let doc = matches!(b.get(i + 2), Some(b'!'))
                    || (b.get(i + 2) == Some(&b'/') && b.get(i + 3) != Some(&b'/'));
                if doc {
                    for c in &mut out[i..end] {
                        if b"{}[]();\"'".contains(c) {
                            *c = b' ';
                        }
                    }
                } else {
                    blank(&mut out, i..end);
                }
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                let mut j = i;
                while j < b.len() {
                    if b[j..].starts_with(b"/*") {
                        depth += 1;
                        j += 2;
                    } else if b[j..].starts_with(b"*/") {
                        depth -= 1;
                        j += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        j += 1;
                    }
                }
                blank(&mut out, i..j);
                i = j;
            }
            b'"' => {
                // A raw string: `r`, some `#`, then the quote, with no identifier before.
                let mut k = i;
                while k > 0 && b[k - 1] == b'#' {
                    k -= 1;
                }
                let hashes = i - k;
                let raw = k > 0
                    && b[k - 1] == b'r'
                    && (k < 2
                        || !ident(b[k - 2])
                        || (b[k - 2] == b'b' && (k < 3 || !ident(b[k - 3]))));
                let mut j = i + 1;
                if raw {
                    let close: Vec<u8> = std::iter::once(b'"')
                        .chain(std::iter::repeat_n(b'#', hashes))
                        .collect();
                    while j < b.len() && !b[j..].starts_with(&close) {
                        j += 1;
                    }
                    j += close.len();
                } else {
                    while j < b.len() && b[j] != b'"' {
                        j += if b[j] == b'\\' { 2 } else { 1 };
                    }
                    j += 1;
                }
                let j = j.min(b.len());
                blank(&mut out, i..j);
                i = j;
            }
            b'\'' => {
                // A character literal, or a lifetime (no closing quote).
                let end = if b.get(i + 1) == Some(&b'\\') {
                    b.get(i + 3..)
                        .and_then(|rest| rest.iter().position(|&c| c == b'\''))
                        .map(|p| i + 3 + p + 1)
                } else {
                    let len = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                    (b.get(i + 1 + len) == Some(&b'\'')).then_some(i + 2 + len)
                };
                match end {
                    Some(end) => {
                        blank(&mut out, i..end);
                        i = end;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// The end of the bracketed group opening at `b[open]`.
fn close_of(b: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    for (j, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
    }
    b.len()
}

/// The end of the item starting at `b[start]` (after its attributes): the `;` that ends a
/// `use`, `const`, `static` or `type`, or a `mod x;`, else the end of its first `{...}`.
fn item_end(b: &[u8], start: usize) -> usize {
    let words = String::from_utf8_lossy(&b[start..(start + 40).min(b.len())]).into_owned();
    let semicolon_item = words
        .trim_start_matches("pub ")
        .trim_start_matches("pub(crate) ")
        .split_whitespace()
        .next()
        .is_some_and(|w| ["use", "const", "static", "type", "extern", "let"].contains(&w));
    let mut j = start;
    while j < b.len() {
        match b[j] {
            b';' => return j + 1,
            b'{' if !semicolon_item => return close_of(b, j),
            b'(' | b'[' | b'{' => j = close_of(b, j),
            _ => j += 1,
        }
    }
    b.len()
}

/// Blanks every item under `#[cfg(test)]` in masked code; returns the names of the
/// `#[cfg(test)] mod name;` declarations, whose files hold only tests.
fn blank_test_items(b: &mut [u8]) -> Vec<String> {
    const ATTR: &[u8] = b"#[cfg(test)]";
    let mut test_mods = Vec::new();
    let mut i = 0;
    while let Some(p) = b[i..].windows(ATTR.len()).position(|w| w == ATTR) {
        let start = i + p;
        let mut j = start + ATTR.len();
        loop {
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if b[j..].starts_with(b"#[") {
                j = close_of(b, j + 1);
            } else {
                break;
            }
        }
        let end = item_end(b, j);
        let item = String::from_utf8_lossy(&b[j..end]).into_owned();
        let words: Vec<&str> = item
            .split(|c: char| c.is_whitespace() || c == ';')
            .filter(|w| !w.is_empty())
            .collect();
        if let [.., "mod", name] = words.as_slice() {
            test_mods.push((*name).to_owned());
        }
        for c in &mut b[start..end] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
        i = end;
    }
    test_mods
}

/// The first segments of every `crate::` path in masked code, with their byte offsets;
/// `use crate::{a, b::c, d::{e}}` yields `a`, `b` and `d`.
fn crate_paths(b: &[u8]) -> Vec<(String, usize)> {
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let word_at = |j: usize| -> String {
        let mut k = j;
        while k < b.len() && b[k].is_ascii_whitespace() {
            k += 1;
        }
        let s = k;
        while k < b.len() && ident(b[k]) {
            k += 1;
        }
        String::from_utf8_lossy(&b[s..k]).into_owned()
    };
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(p) = b[i..].windows(7).position(|w| w == b"crate::") {
        let at = i + p;
        i = at + 7;
        if at > 0 && ident(b[at - 1]) {
            continue;
        }
        let mut j = at + 7;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if b.get(j) == Some(&b'{') {
            let end = close_of(b, j);
            let mut depth = 0;
            let mut expect_name = true;
            for (k, &c) in b.iter().enumerate().take(end).skip(j) {
                match c {
                    b'{' => {
                        depth += 1;
                        expect_name = depth == 1;
                    }
                    b'}' => depth -= 1,
                    b',' if depth == 1 => expect_name = true,
                    c if expect_name && depth == 1 && ident(c) => {
                        found.push((word_at(k), at));
                        expect_name = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.push((word_at(j), at));
        }
    }
    found
}

/// For each top-level module of the crate rooted at `src` (a file `x.rs` or a folder `x/`,
/// the crate root `lib.rs`/`main.rs` aside), the other top-level modules it names outside
/// `#[cfg(test)]` code, each with the first place (`file:line`) that names it.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let top = |f: &Path| -> Option<String> {
        let rel = f.strip_prefix(src).unwrap();
        let first = rel.components().next()?.as_os_str().to_string_lossy();
        let name = first.trim_end_matches(".rs").to_owned();
        (!["lib", "main", "bin"].contains(&name.as_str())).then_some(name)
    };
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top(f)).collect();
    // Every file's code without its `#[cfg(test)]` items; then the files (or folders) that
    // a `#[cfg(test)] mod x;` declares, which hold only tests.
    let mut code: Vec<(PathBuf, String, Vec<u8>)> = Vec::new();
    let mut test_only: Vec<PathBuf> = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let mut masked = mask(&text);
        let own_dir = if ["mod.rs", "lib.rs", "main.rs"]
            .iter()
            .any(|n| f.ends_with(n))
        {
            f.parent().unwrap().to_path_buf()
        } else {
            f.with_extension("")
        };
        for m in blank_test_items(&mut masked) {
            test_only.push(own_dir.join(format!("{m}.rs")));
            test_only.push(own_dir.join(&m));
        }
        if !String::from_utf8_lossy(&masked).contains("#![cfg(test)]") {
            code.push((f.clone(), text, masked));
        }
    }
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = modules
        .iter()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    for (f, text, masked) in &code {
        if test_only.iter().any(|t| f.starts_with(t)) {
            continue;
        }
        let Some(from) = top(f) else { continue };
        for (name, at) in crate_paths(masked) {
            if name != from && modules.contains(&name) {
                let line = text[..at].lines().count().max(1);
                graph
                    .get_mut(&from)
                    .unwrap()
                    .entry(name)
                    .or_insert_with(|| format!("{}:{line}", relative(f)));
            }
        }
    }
    graph
}

/// The strongly connected components of more than one module (Tarjan), each sorted.
fn cycles(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        for w in s.graph[v].keys() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.stack.contains(&w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found.sort();
    s.found
}

/// One shortest cycle through `start` inside `component`, as module names ending at `start`.
fn cycle_through(
    graph: &BTreeMap<String, BTreeMap<String, String>>,
    component: &[String],
    start: &str,
) -> Vec<String> {
    let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in graph[v].keys() {
            if !component.contains(w) {
                continue;
            }
            if w == start {
                let mut path = vec![start.to_owned()];
                let mut at = v;
                while at != start {
                    path.push(at.to_owned());
                    at = previous[at];
                }
                path.push(start.to_owned());
                path.reverse();
                return path;
            }
            if !previous.contains_key(w.as_str()) {
                previous.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    Vec::new()
}

/// A readable account of the cycles in `graph`: each group of modules that reach each
/// other, one cycle through each of its modules, and where each edge of it is named.
fn describe_cycles(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Option<String> {
    let components = cycles(graph);
    if components.is_empty() {
        return None;
    }
    let mut text = String::new();
    for c in &components {
        text.push_str(&format!(
            "\n  modules that reach each other: {}",
            c.join(", ")
        ));
        let mut shown = BTreeSet::new();
        for m in c {
            let cycle = cycle_through(graph, c, m);
            let mut key = cycle[..cycle.len() - 1].to_vec();
            key.sort();
            if !shown.insert((key, cycle.len())) {
                continue;
            }
            text.push_str(&format!("\n    cycle: {}", cycle.join(" -> ")));
            for pair in cycle.windows(2) {
                text.push_str(&format!(
                    "\n      {} -> {}: {}",
                    pair[0], pair[1], graph[&pair[0]][&pair[1]]
                ));
            }
        }
    }
    Some(text)
}

#[test]
fn library_modules_have_no_cycles() {
    let graph = module_graph(&root().join("src"));
    assert!(graph.contains_key("format") && graph.contains_key("segment"));
    // The fuzzing hooks use the library; no module of the library may use them.
    let users: Vec<String> = graph
        .iter()
        .filter_map(|(m, uses)| uses.get("fuzzing").map(|at| format!("{m} ({at})")))
        .collect();
    let mut problems = String::new();
    if !users.is_empty() {
        problems.push_str(&format!(
            "\n  library modules that name crate::fuzzing: {}",
            users.join(", ")
        ));
    }
    if let Some(text) = describe_cycles(&graph) {
        problems.push_str(&format!("\n  module cycles in src/:{text}"));
    }
    assert!(problems.is_empty(), "the library's module graph:{problems}");
}

#[test]
fn cli_modules_have_no_cycles() {
    let graph = module_graph(&root().join("crates/selflog-cli/src"));
    assert!(graph.contains_key("inspect") && graph.contains_key("output"));
    if let Some(text) = describe_cycles(&graph) {
        panic!("module cycles in crates/selflog-cli/src/:{text}");
    }
}

/// The cycle finder itself, on code shaped like the crate's.
#[test]
fn the_cycle_finder_reads_paths_groups_and_skips_tests() {
    let code = r#"
        use crate::{a, b::{c, d}, e::f as g};
        // crate::commented
        const S: &str = "crate::quoted";
        /// See [`crate::linked::thing`].
        fn x() -> crate::h::T { let q = '{'; crate::i::y() }
        #[cfg(test)]
        mod tests { use crate::tested; }
        #[cfg(test)]
        mod other;
    "#;
    let mut b = mask(code);
    let test_mods = blank_test_items(&mut b);
    assert_eq!(test_mods, ["other"]);
    let names: BTreeSet<String> = crate_paths(&b).into_iter().map(|(n, _)| n).collect();
    let want: BTreeSet<String> = ["a", "b", "e", "linked", "h", "i"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(names, want);
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "d2")] {
        graph
            .entry(from.into())
            .or_default()
            .insert(to.into(), format!("{from}.rs:1"));
        graph.entry(to.into()).or_default();
    }
    assert_eq!(cycles(&graph), [["a", "b", "c"]]);
    assert_eq!(
        cycle_through(&graph, &cycles(&graph)[0], "b"),
        ["b", "c", "a", "b"]
    );
}
