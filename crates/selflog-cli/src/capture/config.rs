//! The capture daemon's configuration: a TOML file (`--config`, default
//! `$XDG_CONFIG_HOME/selflog/capture.toml`), then the command line on top of it.
//!
//! A missing default file means the defaults; a file named with `--config` must exist. Unknown
//! keys are rejected, naming the key, so a misspelt privacy setting is never ignored. The
//! privacy defaults (what is never watched, what is redacted) are listed here once:
//! [`DEFAULT_EXCLUDES`] and [`DEFAULT_REDACT_COMMAND_LINES`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex::Regex;
use serde::Deserialize;

use crate::Failure;

/// Paths never watched nor recorded unless `default_excludes = false`: secrets (SSH and
/// `GnuPG` keys, password stores and keyrings), version-control internals, build outputs and
/// caches, which change in bursts nobody asked to remember. A pattern without `/` matches a
/// file or directory of that name anywhere; anything below an excluded directory is
/// excluded too.
pub const DEFAULT_EXCLUDES: &[&str] = &[
    ".ssh",
    ".gnupg",
    ".password-store",
    "**/.local/share/keyrings",
    "**/.pki",
    "*.kdbx",
    ".git",
    ".hg",
    ".svn",
    "node_modules",
    "target",
    "__pycache__",
    ".venv",
    ".cache",
    "**/Library/Caches",
    "**/.local/share/Trash",
    ".Trash",
    "*.swp",
    "*.swx",
    "*~",
];

/// Redactions applied to command lines (and window titles) unless replaced in the config:
/// the values of `key=value` and `key: value` pairs and of `--key value` options whose key
/// names a password, token, secret, key or credentials, bearer tokens, and passwords inside
/// URLs. The matched text becomes `[redacted]`, but for the capture groups named `keep`
/// (kept before it) and `tail` (kept after it).
pub const DEFAULT_REDACT_COMMAND_LINES: &[&str] = &[
    r"(?i)(?P<keep>\b[\w.-]*(?:passw(?:or)?d|pass|pwd|token|secret|api[-_]?key|access[-_]?key|credentials?|private[-_]?key)[\w.-]*[=:]\s*)[^\s'\x22]+",
    r"(?i)(?P<keep>(?:^|\s)--?(?:passw(?:or)?d|pass|token|secret|api[-_]?key|access[-_]?key|auth|credentials?|private[-_]?key)\s+)\S+",
    r"(?i)(?P<keep>\bbearer\s+)\S+",
    r"(?P<keep>://[^/\s:@]+:)[^/\s@]+(?P<tail>@)",
];

/// What replaces a redacted match.
pub const REDACTED: &str = "[redacted]";

/// The TOML file, every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    watch: Option<Vec<PathBuf>>,
    exclude: Option<Vec<String>>,
    default_excludes: Option<bool>,
    redact_paths: Option<Vec<String>>,
    redact_command_lines: Option<Vec<String>>,
    files: Option<bool>,
    processes: Option<bool>,
    windows: Option<bool>,
    all_users: Option<bool>,
    coalesce_ms: Option<u64>,
    process_poll_ms: Option<u64>,
    commit_ms: Option<u64>,
    stats_interval_secs: Option<u64>,
}

/// Shortest process poll accepted: the issue's bound (at most once a second).
pub const PROCESS_POLL_MIN: Duration = Duration::from_secs(1);

/// Everything the daemon runs with.
#[expect(clippy::struct_excessive_bools, reason = "one switch per config key")]
pub struct Settings {
    /// Directories watched recursively (absolute).
    pub watch: Vec<PathBuf>,
    /// Paths never watched nor recorded.
    pub exclude: Excludes,
    /// Redaction of recorded paths.
    pub redact_paths: Redactor,
    /// Redaction of command lines (and window titles).
    pub redact_command_lines: Redactor,
    /// Record file operations.
    pub files: bool,
    /// Record processes started and ended.
    pub processes: bool,
    /// Record the active window (X11).
    pub windows: bool,
    /// Record the processes of every user, not only the daemon's own.
    pub all_users: bool,
    /// At most one `modified` per file per this interval.
    pub coalesce: Duration,
    /// How often the process table is read.
    pub process_poll: Duration,
    /// Longest an event waits before it is committed (the store's batch timeout).
    pub commit: Duration,
    /// How often a stats record is written to the stats sidecar.
    pub stats_interval: Duration,
    /// The config file read, if any.
    pub source: Option<PathBuf>,
}

/// What the command line adds to the file.
pub struct Overrides<'a> {
    /// `--config FILE`.
    pub config: Option<&'a Path>,
    /// `--watch DIR`, replacing the file's list when given.
    pub watch: &'a [PathBuf],
    /// `--exclude GLOB`, added to the file's.
    pub exclude: &'a [String],
    /// `--no-files`.
    pub no_files: bool,
    /// `--no-processes`.
    pub no_processes: bool,
}

/// The default config file: `$XDG_CONFIG_HOME/selflog/capture.toml`, else
/// `~/.config/selflog/capture.toml`.
pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".config")))?;
    Some(base.join("selflog").join("capture.toml"))
}

/// The user's home directory (`$HOME`).
pub fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Reads the config file and applies the command line.
pub fn load(over: &Overrides<'_>) -> Result<Settings, Failure> {
    let (file, source) = read_file(over.config)?;
    let mut watch = if over.watch.is_empty() {
        match file.watch {
            Some(w) => w.iter().map(|p| expand_home(p)).collect(),
            None => vec![home().ok_or_else(|| {
                Failure::hinted(
                    "capture: HOME is not set, so there is no default directory to watch",
                    "pass --watch DIR (or set `watch` in the config file)",
                )
            })?],
        }
    } else {
        over.watch.to_vec()
    };
    for w in &mut watch {
        *w = std::path::absolute(&*w).map_err(|e| {
            Failure::hinted(
                format!(
                    "capture: cannot resolve watch directory {}: {e}",
                    w.display()
                ),
                "pass an existing directory to --watch",
            )
        })?;
        if !w.is_dir() {
            return Err(Failure::hinted(
                format!(
                    "capture: watch directory {} is not a directory",
                    w.display()
                ),
                "pass an existing directory to --watch",
            ));
        }
    }
    let mut globs: Vec<String> = Vec::new();
    if file.default_excludes.unwrap_or(true) {
        globs.extend(DEFAULT_EXCLUDES.iter().map(|s| (*s).to_owned()));
    }
    globs.extend(file.exclude.unwrap_or_default());
    globs.extend(over.exclude.iter().cloned());
    let ms = |v: Option<u64>, default: u64, name: &str| -> Result<Duration, Failure> {
        let v = v.unwrap_or(default);
        if v == 0 {
            return Err(Failure::hinted(
                format!("capture: `{name}` must be positive"),
                "fix the config file",
            ));
        }
        Ok(Duration::from_millis(v))
    };
    let process_poll = ms(file.process_poll_ms, 1000, "process_poll_ms")?;
    if process_poll < PROCESS_POLL_MIN {
        return Err(Failure::hinted(
            format!(
                "capture: `process_poll_ms` is {}, under the minimum of 1000",
                process_poll.as_millis()
            ),
            "the process table is read at most once a second",
        ));
    }
    let mut exclude = Excludes::new(&globs)?;
    exclude.set_roots(&watch);
    Ok(Settings {
        watch,
        exclude,
        redact_paths: Redactor::new(&file.redact_paths.unwrap_or_default(), "redact_paths")?,
        redact_command_lines: Redactor::new(
            &file.redact_command_lines.unwrap_or_else(|| {
                DEFAULT_REDACT_COMMAND_LINES
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect()
            }),
            "redact_command_lines",
        )?,
        files: file.files.unwrap_or(true) && !over.no_files,
        processes: file.processes.unwrap_or(true) && !over.no_processes,
        windows: file.windows.unwrap_or(true),
        all_users: file.all_users.unwrap_or(false),
        coalesce: ms(file.coalesce_ms, 1000, "coalesce_ms")?,
        process_poll,
        commit: ms(file.commit_ms, 1000, "commit_ms")?,
        stats_interval: Duration::from_secs(file.stats_interval_secs.unwrap_or(60).max(1)),
        source,
    })
}

fn read_file(explicit: Option<&Path>) -> Result<(File, Option<PathBuf>), Failure> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => match default_path() {
            Some(p) if p.exists() => p,
            _ => return Ok((File::default(), None)),
        },
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Failure::hinted(
            format!("capture: cannot read config file {}: {e}", path.display()),
            "pass an existing file to --config, or none for the defaults",
        )
    })?;
    let file: File = toml::from_str(&text).map_err(|e| {
        let what = e.message().to_owned();
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        Failure::hinted(
            format!(
                "capture: config file {}{}: {what}",
                path.display(),
                line.map(|l| format!(" line {l}")).unwrap_or_default()
            ),
            "known keys: watch, exclude, default_excludes, redact_paths, redact_command_lines, \
             files, processes, windows, all_users, coalesce_ms, process_poll_ms, commit_ms, \
             stats_interval_secs (README, section Capture)",
        )
    })?;
    Ok((file, Some(path)))
}

/// `~` or `~/x` at the start of a configured path is the home directory.
fn expand_home(p: &Path) -> PathBuf {
    match (p.strip_prefix("~"), home()) {
        (Ok(rest), Some(h)) => h.join(rest),
        _ => p.to_path_buf(),
    }
}

/// Exclude globs. A pattern without `/` matches a name anywhere (`node_modules`); one with
/// `/` matches the whole absolute path (`**/Library/Caches`, `/home/a/private`). `*` never
/// crosses a `/`; `**` does. A path is excluded when it or a directory above it, below the
/// watch root that holds it, matches: a root asked for by name is watched even inside an
/// excluded tree (`--watch ~/src/p/target/logs`), and the excludes apply below it.
pub struct Excludes {
    set: GlobSet,
    /// The watch roots, longest first.
    roots: Vec<PathBuf>,
    /// Directories excluded whatever the patterns say (the store itself, whose own writes
    /// would otherwise be captured without end).
    dirs: Vec<PathBuf>,
}

impl Excludes {
    /// Compiles `globs`, naming the first bad one.
    pub fn new(globs: &[String]) -> Result<Excludes, Failure> {
        let mut b = GlobSetBuilder::new();
        for g in globs {
            let pattern = if g.contains('/') {
                g.clone()
            } else {
                format!("**/{g}")
            };
            let glob = GlobBuilder::new(&pattern)
                .literal_separator(true)
                .build()
                .map_err(|e| {
                    Failure::hinted(
                        format!("capture: bad exclude glob `{g}`: {e}"),
                        "globs use `*`, `?`, `**` and `[...]`; see the README, section Capture",
                    )
                })?;
            b.add(glob);
        }
        let set = b.build().map_err(|e| {
            Failure::hinted(format!("capture: exclude globs: {e}"), "fix the globs")
        })?;
        Ok(Excludes {
            set,
            roots: Vec::new(),
            dirs: Vec::new(),
        })
    }

    /// Excludes `dir` and everything below it.
    pub fn add_dir(&mut self, dir: PathBuf) {
        self.dirs.push(dir);
    }

    /// Sets the watch roots, under which the patterns apply.
    pub fn set_roots(&mut self, roots: &[PathBuf]) {
        self.roots = roots.to_vec();
        self.roots
            .sort_by_key(|r| std::cmp::Reverse(r.components().count()));
    }

    /// Whether `path` or a directory above it (below its watch root) is excluded.
    pub fn is_excluded(&self, path: &Path) -> bool {
        if self.dirs.iter().any(|d| path.starts_with(d)) {
            return true;
        }
        let root = self.roots.iter().find(|r| path.starts_with(r));
        path.ancestors()
            .take_while(|a| a.parent().is_some() && root.is_none_or(|r| a != r))
            .any(|a| self.set.is_match(a))
    }
}

/// Redaction rules: every match of every regex is replaced by [`REDACTED`], keeping the text
/// of the capture groups named `keep` (before it) and `tail` (after it).
#[derive(Clone)]
pub struct Redactor {
    rules: Vec<Regex>,
}

impl Redactor {
    /// Compiles `patterns`; `key` names the config key in an error.
    pub fn new(patterns: &[String], key: &str) -> Result<Redactor, Failure> {
        let rules = patterns
            .iter()
            .map(|p| {
                Regex::new(p).map_err(|e| {
                    Failure::hinted(
                        format!("capture: bad regex in `{key}`: {e}"),
                        "regexes use the Rust regex syntax (docs.rs/regex)",
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Redactor { rules })
    }

    /// `text` with every rule applied in turn.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for rule in &self.rules {
            if rule.is_match(&out) {
                let has = |g: &str| rule.capture_names().flatten().any(|n| n == g);
                let mut replacement = String::new();
                if has("keep") {
                    replacement.push_str("${keep}");
                }
                replacement.push_str(REDACTED);
                if has("tail") {
                    replacement.push_str("${tail}");
                }
                out = rule.replace_all(&out, replacement.as_str()).into_owned();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Excludes {
        let globs: Vec<String> = DEFAULT_EXCLUDES.iter().map(|s| (*s).to_owned()).collect();
        Excludes::new(&globs).unwrap_or_else(|f| panic!("{}", f.message))
    }

    #[test]
    fn default_excludes_cover_secrets_builds_and_caches_not_ordinary_files() {
        let ex = defaults();
        for p in [
            "/home/a/.ssh",
            "/home/a/.ssh/id_ed25519",
            "/home/a/.gnupg/private-keys-v1.d/x.key",
            "/home/a/src/p/.git/index",
            "/home/a/src/p/node_modules/left-pad/index.js",
            "/home/a/src/r/target/debug/build",
            "/home/a/.cache/pip/x",
            "/home/a/.local/share/keyrings/login.keyring",
            "/home/a/notes.md~",
        ] {
            assert!(ex.is_excluded(Path::new(p)), "{p} should be excluded");
        }
        for p in [
            "/home/a/notes.md",
            "/home/a/src/p/.gitignore",
            "/home/a/src/targets.txt",
            "/home/a/Documents/ssh notes.txt",
        ] {
            assert!(!ex.is_excluded(Path::new(p)), "{p} should be kept");
        }
    }

    #[test]
    fn a_root_inside_an_excluded_tree_is_watched_and_excludes_apply_below_it() {
        let globs: Vec<String> = DEFAULT_EXCLUDES.iter().map(|s| (*s).to_owned()).collect();
        let mut ex = Excludes::new(&globs).unwrap_or_else(|f| panic!("{}", f.message));
        ex.set_roots(&[PathBuf::from("/w/target/tmp/run")]);
        assert!(!ex.is_excluded(Path::new("/w/target/tmp/run")));
        assert!(!ex.is_excluded(Path::new("/w/target/tmp/run/a.txt")));
        assert!(ex.is_excluded(Path::new("/w/target/tmp/run/node_modules/x")));
        assert!(ex.is_excluded(Path::new("/w/target/other")));
    }

    #[test]
    fn globs_with_a_slash_match_the_whole_path_and_star_stays_in_one_name() {
        let ex = Excludes::new(&["/home/a/private/*".to_owned()])
            .unwrap_or_else(|f| panic!("{}", f.message));
        assert!(ex.is_excluded(Path::new("/home/a/private/x")));
        assert!(ex.is_excluded(Path::new("/home/a/private/x/y")));
        assert!(!ex.is_excluded(Path::new("/home/a/privately")));
    }

    #[test]
    fn a_bad_glob_or_regex_is_an_error_naming_it() {
        let err = Excludes::new(&["a[".to_owned()]).err().unwrap();
        assert!(err.message.contains("a["), "{}", err.message);
        let err = Redactor::new(&["(".to_owned()], "redact_paths")
            .err()
            .unwrap();
        assert!(err.message.contains("redact_paths"), "{}", err.message);
    }

    #[test]
    fn default_redaction_hides_secrets_and_keeps_the_rest() {
        let patterns: Vec<String> = DEFAULT_REDACT_COMMAND_LINES
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let r = Redactor::new(&patterns, "redact_command_lines")
            .unwrap_or_else(|f| panic!("{}", f.message));
        assert_eq!(
            r.apply("mysql -u bob --password=hunter2 db"),
            "mysql -u bob --password=[redacted] db"
        );
        assert_eq!(
            r.apply("curl -H 'Authorization: Bearer abc.def' https://u:pw@host/x"),
            "curl -H 'Authorization: Bearer [redacted] https://u:[redacted]@host/x"
        );
        assert_eq!(
            r.apply("env GITHUB_TOKEN=ghp_x cmd --token t1 --pass=p"),
            "env GITHUB_TOKEN=[redacted] cmd --token [redacted] --pass=[redacted]"
        );
        assert_eq!(
            r.apply("cargo rustc --crate-name x -C opt-level=3 /work/wt-passport/a.rs"),
            "cargo rustc --crate-name x -C opt-level=3 /work/wt-passport/a.rs"
        );
        assert_eq!(r.apply("ls -la /tmp"), "ls -la /tmp");
        assert_eq!(
            r.apply("app --api-key sk123 run"),
            "app --api-key [redacted] run"
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = toml::from_str::<File>("wach = [\"/x\"]").err().unwrap();
        assert!(e.message().contains("wach"), "{}", e.message());
    }
}
