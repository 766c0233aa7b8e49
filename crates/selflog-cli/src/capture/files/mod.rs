//! File operations: the watched directory tree, and `file_op` events from `notify`'s.
//!
//! On Linux every directory under the watch roots that no exclude covers gets an inotify
//! watch of its own (`notify`, non-recursive), so excluded trees (`node_modules`, `.git`,
//! caches) cost no watch and no wake-up, and the daemon counts its watches against
//! `max_user_watches`. A directory that appears is watched at once and then scanned, so
//! what was made in it before its watch existed is recorded too (`found_by: "scan"`); a
//! path reported by both the scan and its own event is recorded once. A renamed directory
//! is watched again under its new path. On other systems each root is watched recursively
//! (`FSEvents` covers new directories itself) and new directories are still scanned.
//!
//! When events were lost (the kernel's queue overflowed, or the daemon's own queue from
//! `notify` did), a `system` event `overflow` says so and the tree is walked again: new
//! directories are watched and reported with their contents, files born or written since
//! the loss began are held as `created` or `modified`, and watched directories that
//! are gone are reported deleted. Files deleted in the gap cannot be known and are not.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind, RenameMode};
use notify::{Config as NotifyConfig, EventKind, EventKindMask, RecursiveMode, Watcher as _};
use selflog::Timestamp;
use serde_json::{json, Map, Value};

mod rescan;

use super::config::{Excludes, Redactor};
use super::log::Log;
use super::pending::{Before, Coalescer, Held, Pending};
use super::sink::Sink;
use super::Input;

/// How long a rename's source waits for its destination before it counts as moved out of
/// the watched tree (reported `deleted`, `moved_out: true`). The kernel queues both halves
/// together, so this only needs to cover the daemon's own latency.
const RENAME_WAIT: Duration = Duration::from_millis(500);

/// How long a path reported `created` (by a scan or its own event) is remembered, so the
/// other report of it is recognised as the same creation.
const CREATED_MEMORY: Duration = Duration::from_secs(30);

/// How long before a directory's move, as the daemon saw it, a change below it may have
/// happened and still be unrecorded (see `changed_since_move`).
const MOVE_SLACK: Duration = Duration::from_millis(300);

/// How long the old path of a moved directory is translated to its new one.
const MOVED_DIR_MEMORY: Duration = Duration::from_secs(5);

/// Whether each directory gets its own watch (inotify) or each root one recursive watch.
const WATCH_EACH_DIRECTORY: bool = cfg!(target_os = "linux");

/// The inotify limit on watches per user, if this system has one: the machine's
/// (`fs.inotify.max_user_watches`) or, inside a user namespace with a lower one of its own
/// (`/proc/sys/user/max_inotify_watches`, per namespace since Linux 4.9), that one.
pub fn max_user_watches() -> Option<u64> {
    let read =
        |path: &str| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    let machine = read("/proc/sys/fs/inotify/max_user_watches");
    let namespace = read("/proc/sys/user/max_inotify_watches");
    match (machine, namespace) {
        (Some(m), Some(n)) => Some(m.min(n)),
        (m, n) => m.or(n),
    }
}

/// What a file event's path held when `notify`'s thread received the event: read there,
/// as close to the change as the daemon gets, so a capture thread running behind still
/// knows the size and inode of a file renamed or deleted since.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    ino: u64,
    len: u64,
    is_dir: bool,
}

impl Seen {
    /// What `event`'s last path holds now, for the events that name a file being made,
    /// written or renamed.
    fn of(event: &notify::Event) -> Option<Seen> {
        let wanted = matches!(
            event.kind,
            EventKind::Create(_)
                | EventKind::Access(AccessKind::Close(AccessMode::Write))
                | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
        );
        let m = event
            .paths
            .last()
            .filter(|_| wanted)?
            .symlink_metadata()
            .ok()?;
        Some(Seen {
            ino: m.ino(),
            len: m.len(),
            is_dir: m.is_dir(),
        })
    }
}

/// What the file watcher is told about its events' destination.
pub struct Out<'s, 'a> {
    /// The store.
    pub sink: &'s mut Sink<'a>,
    /// The log.
    pub log: &'s mut Log,
}

/// The watched tree and what is held for it.
pub struct Files {
    watcher: notify::RecommendedWatcher,
    roots: Vec<PathBuf>,
    exclude: Excludes,
    redact: Redactor,
    /// Directories with a watch of their own.
    watched: HashSet<PathBuf>,
    /// The inotify limit read at start.
    pub watch_max: Option<u64>,
    /// Directories that could not be watched because the limit was reached.
    pub unwatched: u64,
    limit_reported: bool,
    coalescer: Coalescer,
    recent_created: HashMap<PathBuf, Instant>,
    /// Inode and size of files recently seen, by path: a rename source that never finds
    /// its destination is looked up in `scanned` by its inode, and an event emitted after
    /// its file is gone still has a size.
    inodes: HashMap<PathBuf, (Seen, Instant)>,
    /// Files recently found by a scan, by inode: a file renamed into a directory before
    /// the directory's watch existed is found there by the scan, and its rename's source
    /// half alone reaches the daemon.
    scanned: HashMap<u64, (PathBuf, Instant)>,
    recent_deleted_dirs: HashMap<PathBuf, Instant>,
    /// Rename sources waiting for their destination, by notify's tracker (the cookie).
    moves: HashMap<usize, (PathBuf, bool, Instant)>,
    /// Events lost upstream of the daemon (its queue from `notify` was full).
    overflowed: Arc<AtomicI64>,
    /// Overflows seen (kernel or daemon queue).
    pub overflows: u64,
    /// Errors from the watcher (unreadable directories, failed watches).
    pub errors: u64,
    /// What the path of the event being handled held when it was received.
    current: Option<Seen>,
    /// Directories moved lately: old path, new path. Events already queued on the old
    /// watches name the old paths; they are moved on to the new ones.
    moved_dirs: Vec<(PathBuf, PathBuf, Instant)>,
}

impl Files {
    /// Starts `notify` sending into `tx` and watches every root.
    pub fn start(
        roots: Vec<PathBuf>,
        exclude: Excludes,
        redact: Redactor,
        coalesce: Duration,
        tx: SyncSender<Input>,
        out: &mut Out<'_, '_>,
    ) -> Result<Files, String> {
        let overflowed = Arc::new(AtomicI64::new(0));
        let flag = Arc::clone(&overflowed);
        let handler = move |res: notify::Result<notify::Event>| {
            // Never block notify's thread: it also serves our watch requests. A full queue
            // is an overflow, which the capture thread reports and repairs with a rescan.
            let seen = res.as_ref().ok().and_then(Seen::of);
            let at = Timestamp::now();
            if tx.try_send(Input::File(at, res, seen)).is_err() {
                // The first loss since the last repair: when the rescan must look from.
                let _ = flag.compare_exchange(0, at.micros(), Ordering::SeqCst, Ordering::SeqCst);
            }
        };
        let kinds = EventKindMask::CREATE
            | EventKindMask::REMOVE
            | EventKindMask::MODIFY_DATA
            | EventKindMask::MODIFY_NAME
            | EventKindMask::ACCESS_CLOSE;
        let watcher = notify::RecommendedWatcher::new(
            handler,
            NotifyConfig::default().with_event_kinds(kinds),
        )
        .map_err(|e| format!("cannot start the file watcher: {e}"))?;
        let mut files = Files {
            watcher,
            roots: roots.clone(),
            exclude,
            redact,
            watched: HashSet::new(),
            watch_max: max_user_watches(),
            unwatched: 0,
            limit_reported: false,
            coalescer: Coalescer::new(coalesce),
            recent_created: HashMap::new(),
            inodes: HashMap::new(),
            scanned: HashMap::new(),
            recent_deleted_dirs: HashMap::new(),
            moves: HashMap::new(),
            overflowed,
            overflows: 0,
            errors: 0,
            current: None,
            moved_dirs: Vec::new(),
        };
        for root in roots {
            if files.exclude.is_excluded(&root) {
                out.log.warn(&format!(
                    "watch directory {} is excluded by a pattern; not watched",
                    root.display()
                ));
                continue;
            }
            if !WATCH_EACH_DIRECTORY {
                if let Err(e) = files.watcher.watch(&root, RecursiveMode::Recursive) {
                    return Err(format!("cannot watch {}: {e}", root.display()));
                }
            }
            files.watch_tree(&root, out, None);
        }
        Ok(files)
    }

    /// Directories watched now.
    pub fn watched_count(&self) -> usize {
        if WATCH_EACH_DIRECTORY {
            self.watched.len()
        } else {
            self.roots.len()
        }
    }

    /// Write notifications folded into fewer events.
    pub fn coalesced_writes(&self) -> u64 {
        self.coalescer.coalesced_writes
    }

    /// Whether something is held that a tick must look at soon.
    pub fn needs_tick(&self) -> bool {
        !self.coalescer.is_empty() || !self.moves.is_empty()
    }

    /// Watches `dir` and every directory below it that no exclude covers. With `report`,
    /// every entry found is reported `created` (`found_by` that value) unless it was
    /// reported already.
    fn watch_tree(&mut self, dir: &Path, out: &mut Out<'_, '_>, report: Option<&str>) {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            // A directory past the watch limit is still walked, so every one is counted.
            self.watch_one(&d, out);
            let entries = match std::fs::read_dir(&d) {
                Ok(e) => e,
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        self.errors += 1;
                        out.log
                            .warn(&format!("cannot read directory {}: {e}", d.display()));
                    }
                    continue;
                }
            };
            let mut found: Vec<(PathBuf, bool)> = entries
                .filter_map(Result::ok)
                .map(|e| {
                    let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                    (e.path(), is_dir)
                })
                .filter(|(p, _)| !self.exclude.is_excluded(p))
                .collect();
            found.sort();
            for (path, is_dir) in found.into_iter().rev() {
                if let Some(by) = report {
                    if !self.recent_created.contains_key(&path) {
                        let now = Instant::now();
                        self.recent_created.insert(path.clone(), now);
                        let t = out.sink.now();
                        let meta = path.symlink_metadata().ok();
                        let empty = !is_dir && meta.as_ref().is_some_and(|m| m.len() == 0);
                        if let Some(m) = meta.as_ref().filter(|_| !is_dir) {
                            self.scanned.insert(m.ino(), (path.clone(), now));
                        }
                        if empty && by == "scan" {
                            // Most likely its creator has yet to write it: held like a
                            // creation seen live, so it carries the size it is given.
                            self.coalescer.created(path.clone(), t, now);
                        } else {
                            self.emit(
                                out,
                                t,
                                "created",
                                &path,
                                is_dir,
                                None,
                                &[("found_by", json!(by))],
                            );
                        }
                    }
                }
                if is_dir {
                    stack.push(path);
                }
            }
        }
    }

    /// Adds a watch on `dir`; false when it could not be added.
    fn watch_one(&mut self, dir: &Path, out: &mut Out<'_, '_>) -> bool {
        if !WATCH_EACH_DIRECTORY {
            return true;
        }
        if self.watched.contains(dir) {
            return true;
        }
        match self.watcher.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                self.watched.insert(dir.to_path_buf());
                true
            }
            Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => {
                self.unwatched += 1;
                if !self.limit_reported {
                    self.limit_reported = true;
                    let max = self.watch_max.map_or(Value::Null, Value::from);
                    out.log.warn(&format!(
                        "the inotify watch limit is reached ({} watches per user) after {} \
                         directories: {} and others are not watched; raise \
                         fs.inotify.max_user_watches (sysctl) or exclude more",
                        self.watch_max
                            .map_or_else(|| "unknown".to_owned(), |m| m.to_string()),
                        self.watched.len(),
                        dir.display()
                    ));
                    out.sink.system(
                        out.log,
                        "watch_limit_reached",
                        &json!({
                            "max_user_watches": max,
                            "watched": self.watched.len(),
                            "first_unwatched": self.redact.apply(&dir.to_string_lossy()),
                        }),
                    );
                }
                false
            }
            Err(e) => {
                // Gone already, or not readable: its parent's events still name it.
                if !matches!(e.kind, notify::ErrorKind::PathNotFound) {
                    self.errors += 1;
                    out.log
                        .warn(&format!("cannot watch {}: {e}", dir.display()));
                }
                false
            }
        }
    }

    /// Handles one event from `notify`.
    pub fn handle(
        &mut self,
        out: &mut Out<'_, '_>,
        seen: Timestamp,
        event: notify::Result<notify::Event>,
        meta: Option<Seen>,
    ) {
        let mut event = match event {
            Ok(e) => e,
            Err(e) => {
                if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) {
                    self.unwatched += 1;
                } else {
                    self.errors += 1;
                    out.log.warn(&format!("file watcher: {e}"));
                }
                return;
            }
        };
        if event.need_rescan() {
            self.overflow(out, "kernel", seen);
            return;
        }
        let now = Instant::now();
        self.current = meta;
        if !self.moved_dirs.is_empty() {
            for p in &mut event.paths {
                if let Some(moved) = self.moved_on(p) {
                    *p = moved;
                }
            }
        }
        if let (Some(m), Some(last)) = (meta, event.paths.last()) {
            if !m.is_dir {
                self.inodes.insert(last.clone(), (m, now));
            }
        }
        let first = event.paths.first().cloned();
        match (event.kind, first) {
            (EventKind::Create(kind), Some(p)) if !self.exclude.is_excluded(&p) => {
                let is_dir = match kind {
                    CreateKind::Folder => true,
                    CreateKind::File => false,
                    _ => meta.map_or_else(|| p.is_dir(), |m| m.is_dir),
                };
                if is_dir {
                    self.dir_created(out, seen, &p);
                } else if self.recent_created.contains_key(&p) {
                    // A scan reported it (or holds it): what its creator still writes is
                    // part of that creation.
                    if !self.coalescer.holds(&p) {
                        self.coalescer.reported(p, seen, now);
                    }
                } else {
                    self.before_other(out, &p, now);
                    self.recent_created.insert(p.clone(), now);
                    self.coalescer.created(p, seen, now);
                }
            }
            (EventKind::Modify(ModifyKind::Data(_)), Some(p)) if !self.exclude.is_excluded(&p) => {
                self.coalescer.written(&p, seen, now);
            }
            (EventKind::Access(AccessKind::Close(AccessMode::Write)), Some(p)) => {
                if let Some(pending) = self.coalescer.closed(&p, now) {
                    self.emit_pending(out, &p, pending, &[]);
                }
            }
            (EventKind::Remove(kind), Some(p)) if !self.exclude.is_excluded(&p) => {
                let is_dir = match kind {
                    RemoveKind::Folder => true,
                    RemoveKind::File => false,
                    _ => self.watched.contains(&p),
                };
                self.removed(out, seen, &p, is_dir, &[]);
            }
            (EventKind::Modify(ModifyKind::Name(mode)), _) => {
                self.renamed(out, seen, mode, event.attrs.tracker(), &event.paths);
            }
            _ => {}
        }
    }

    fn dir_created(&mut self, out: &mut Out<'_, '_>, seen: Timestamp, dir: &Path) {
        if !self.recent_created.contains_key(dir) {
            self.before_other(out, dir, Instant::now());
            self.recent_created
                .insert(dir.to_path_buf(), Instant::now());
            self.emit(out, seen, "created", dir, true, None, &[]);
        }
        self.watch_tree(dir, out, Some("scan"));
    }

    fn removed(
        &mut self,
        out: &mut Out<'_, '_>,
        seen: Timestamp,
        path: &Path,
        is_dir: bool,
        extra: &[(&str, Value)],
    ) {
        let now = Instant::now();
        if is_dir {
            // A watched directory's deletion is reported by its parent and by its own watch.
            if self.recent_deleted_dirs.contains_key(path) {
                return;
            }
            self.recent_deleted_dirs.insert(path.to_path_buf(), now);
            for (p, pending) in self.coalescer.take_under(path, now) {
                self.emit_pending(out, &p, pending, &[]);
            }
            self.watched.retain(|w| !w.starts_with(path));
            self.recent_created.retain(|p, _| !p.starts_with(path));
        }
        let mut extra = extra.to_vec();
        if let Some(n) = self.before_other(out, path, now) {
            extra.push(("writes_before", json!(n)));
        }
        self.recent_created.remove(path);
        self.coalescer.forget(path);
        self.emit(out, seen, "deleted", path, is_dir, None, &extra);
    }

    fn renamed(
        &mut self,
        out: &mut Out<'_, '_>,
        seen: Timestamp,
        mode: RenameMode,
        tracker: Option<usize>,
        paths: &[PathBuf],
    ) {
        let now = Instant::now();
        match (mode, paths) {
            (RenameMode::From, [from]) => {
                let was_dir = self.watched.contains(from);
                match tracker {
                    Some(t) => {
                        self.moves.insert(t, (from.clone(), was_dir, now));
                    }
                    // A watched directory's own watch reports its move too (no cookie);
                    // its parent's watch reports the rename itself. A root moved away
                    // leaves nothing to watch under its old name.
                    None => {
                        if self.roots.iter().any(|r| r == from) {
                            out.log.warn(&format!(
                                "watch directory {} was moved away; what is below it is no \
                                 longer recorded",
                                from.display()
                            ));
                        }
                    }
                }
            }
            (RenameMode::To, [to]) => {
                // The destination of a rename whose source we saw comes with `Both` next.
                if tracker.is_some_and(|t| self.moves.contains_key(&t)) {
                    return;
                }
                self.moved_in(out, seen, to);
            }
            (RenameMode::Both, [from, to]) => {
                if let Some(t) = tracker {
                    self.moves.remove(&t);
                }
                self.moved(out, seen, from, to);
            }
            (_, [p]) if !self.exclude.is_excluded(p) => {
                // A rename notify could not pair: report what is there now.
                if p.symlink_metadata().is_ok() {
                    self.moved_in(out, seen, p);
                } else {
                    let was_dir = self.watched.contains(p);
                    self.removed(out, seen, p, was_dir, &[("moved_out", json!(true))]);
                }
            }
            _ => {}
        }
    }

    /// Something appeared by a rename from outside the watched tree: `created`,
    /// `moved_in: true`; a directory is watched with all below it.
    fn moved_in(&mut self, out: &mut Out<'_, '_>, seen: Timestamp, to: &Path) {
        if self.exclude.is_excluded(to) {
            return;
        }
        let now = Instant::now();
        let is_dir = to.symlink_metadata().is_ok_and(|m| m.is_dir());
        self.before_other(out, to, now);
        self.recent_created.insert(to.to_path_buf(), now);
        self.emit(
            out,
            seen,
            "created",
            to,
            is_dir,
            None,
            &[("moved_in", json!(true))],
        );
        if is_dir {
            self.watch_tree(to, out, None);
        }
    }

    /// Where `path` is now, if it lies below a directory moved lately whose old path is
    /// gone (a new directory made under the old name keeps its own events).
    fn moved_on(&self, path: &Path) -> Option<PathBuf> {
        for (old, new, _) in self.moved_dirs.iter().rev() {
            if let Ok(rest) = path.strip_prefix(old) {
                if !rest.as_os_str().is_empty() && old.symlink_metadata().is_err() {
                    return Some(new.join(rest));
                }
            }
        }
        None
    }

    fn moved(&mut self, out: &mut Out<'_, '_>, seen: Timestamp, from: &Path, to: &Path) {
        match (self.exclude.is_excluded(from), self.exclude.is_excluded(to)) {
            (true, true) => return,
            (true, false) => return self.moved_in(out, seen, to),
            (false, true) => {
                let was_dir = self.watched.contains(from);
                return self.removed(out, seen, from, was_dir, &[("moved_out", json!(true))]);
            }
            (false, false) => {}
        }
        let now = Instant::now();
        let was_dir = self.watched.contains(from);
        let is_dir = match self.current {
            Some(m) => m.is_dir,
            None => to.symlink_metadata().map_or(was_dir, |m| m.is_dir()),
        };
        let mut extra = Vec::new();
        if let Some(n) = self.before_other(out, from, now) {
            extra.push(("writes_before", json!(n)));
        }
        // A file replaced by the rename: what was held for it comes first.
        self.before_other(out, to, now);
        if is_dir {
            for (p, pending) in self.coalescer.take_under(from, now) {
                self.emit_pending(out, &p, pending, &[]);
            }
        }
        self.recent_created.remove(from);
        self.recent_created.remove(to);
        self.coalescer.forget(from);
        self.coalescer.forget(to);
        self.emit(out, seen, "moved", to, is_dir, Some(from), &extra);
        if is_dir && WATCH_EACH_DIRECTORY {
            let old: Vec<PathBuf> = self
                .watched
                .iter()
                .filter(|w| w.starts_with(from))
                .cloned()
                .collect();
            for w in old {
                self.watched.remove(&w);
                // notify drops the watches of a directory moved away itself; this only
                // cleans what it kept.
                let _ = self.watcher.unwatch(&w);
            }
            self.watch_tree(to, out, None);
            self.moved_dirs
                .push((from.to_path_buf(), to.to_path_buf(), now));
            self.changed_since_move(out, seen, to);
        }
    }

    /// What is held for `path` before another event on it: emitted, or the count of
    /// writes the next event carries (`writes_before`).
    fn before_other(&mut self, out: &mut Out<'_, '_>, path: &Path, now: Instant) -> Option<u64> {
        match self.coalescer.before_other(path, now)? {
            Before::Emit(p) => {
                self.emit_pending(out, path, p, &[]);
                None
            }
            Before::Fold(n) => Some(n),
        }
    }

    fn emit_pending(
        &mut self,
        out: &mut Out<'_, '_>,
        path: &Path,
        p: Pending,
        extra: &[(&str, Value)],
    ) {
        let mut extra = extra.to_vec();
        let action = match p.held {
            Held::Created => "created",
            Held::Modified => {
                extra.push(("writes", json!(p.writes)));
                "modified"
            }
            Held::Reported => return,
        };
        self.emit(out, p.timestamp, action, path, false, None, &extra);
    }

    /// Emits the held events that are due and the rename sources whose destination never
    /// came; forgets old memories.
    pub fn tick(&mut self, out: &mut Out<'_, '_>) {
        let now = Instant::now();
        for (path, p) in self.coalescer.due(now) {
            self.emit_pending(out, &path, p, &[]);
        }
        let expired: Vec<usize> = self
            .moves
            .iter()
            .filter(|(_, (_, _, at))| now.saturating_duration_since(*at) >= RENAME_WAIT)
            .map(|(t, _)| *t)
            .collect();
        for t in expired {
            if let Some((from, was_dir, _)) = self.moves.remove(&t) {
                self.unpaired_source(out, &from, was_dir);
            }
        }
        self.recent_created
            .retain(|_, t| now.saturating_duration_since(*t) < CREATED_MEMORY);
        self.moved_dirs
            .retain(|(_, _, t)| now.saturating_duration_since(*t) < MOVED_DIR_MEMORY);
        self.inodes
            .retain(|_, (_, t)| now.saturating_duration_since(*t) < CREATED_MEMORY);
        self.scanned
            .retain(|_, (_, t)| now.saturating_duration_since(*t) < CREATED_MEMORY);
        self.recent_deleted_dirs
            .retain(|_, t| now.saturating_duration_since(*t) < CREATED_MEMORY);
    }

    /// A rename source whose destination never came: a move into a directory watched too
    /// late (its scan found the file under its new name: same inode), else a move out of
    /// the watched tree, reported `deleted` with `moved_out: true`.
    fn unpaired_source(&mut self, out: &mut Out<'_, '_>, from: &Path, was_dir: bool) {
        if self.exclude.is_excluded(from) {
            return;
        }
        let ts = out.sink.now();
        let found = self
            .inodes
            .get(from)
            .and_then(|(m, _)| self.scanned.get(&m.ino).map(|(to, _)| (m.ino, to.clone())))
            .filter(|(ino, to)| {
                to.as_path() != from && to.symlink_metadata().is_ok_and(|m| m.ino() == *ino)
            });
        let Some((ino, to)) = found else {
            return self.removed(out, ts, from, was_dir, &[("moved_out", json!(true))]);
        };
        self.scanned.remove(&ino);
        let now = Instant::now();
        let mut extra = vec![("found_by", json!("scan"))];
        if let Some(n) = self.before_other(out, from, now) {
            extra.push(("writes_before", json!(n)));
        }
        // The scan's `created` of the new name, if still held, was this move all along.
        self.coalescer.cancel(&to);
        self.recent_created.remove(from);
        self.coalescer.forget(from);
        self.emit(out, ts, "moved", &to, false, Some(from), &extra);
    }

    /// Emits everything held (at the end of a run).
    pub fn finish(&mut self, out: &mut Out<'_, '_>) {
        let moves: Vec<(PathBuf, bool)> = self.moves.drain().map(|(_, (p, d, _))| (p, d)).collect();
        for (path, p) in self.coalescer.drain() {
            self.emit_pending(out, &path, p, &[]);
        }
        for (from, was_dir) in moves {
            self.unpaired_source(out, &from, was_dir);
        }
    }

    /// Appends one `file_op`: `source` the directory holding the file, `data` its path
    /// (redacted by the path rules), whether it is a directory (`is_dir`, and
    /// `is_directory` as the workload names it), its size when it exists, the old path of a
    /// move, its name, and `extra`.
    #[expect(clippy::too_many_arguments, reason = "one event's fields")]
    fn emit(
        &mut self,
        out: &mut Out<'_, '_>,
        timestamp: Timestamp,
        action: &str,
        path: &Path,
        is_dir: bool,
        old_path: Option<&Path>,
        extra: &[(&str, Value)],
    ) {
        let mut data = Map::new();
        data.insert(
            "path".into(),
            json!(self.redact.apply(&path.to_string_lossy())),
        );
        data.insert("is_dir".into(), json!(is_dir));
        data.insert("is_directory".into(), json!(is_dir));
        if !is_dir {
            if let Ok(meta) = path.symlink_metadata() {
                data.insert("size".into(), json!(meta.len()));
                let seen = Seen {
                    ino: meta.ino(),
                    len: meta.len(),
                    is_dir: false,
                };
                self.inodes
                    .insert(path.to_path_buf(), (seen, Instant::now()));
            } else if let Some((seen, _)) = self.inodes.get(path).filter(|_| action != "deleted") {
                // Gone already (the daemon runs behind): the size seen with its event.
                data.insert("size".into(), json!(seen.len));
            }
        }
        if let Some(old) = old_path {
            data.insert(
                "old_path".into(),
                json!(self.redact.apply(&old.to_string_lossy())),
            );
        }
        if let Some(name) = path.file_name() {
            data.insert(
                "name".into(),
                json!(self.redact.apply(&name.to_string_lossy())),
            );
        }
        for (k, v) in extra {
            data.insert((*k).to_owned(), v.clone());
        }
        let source = path
            .parent()
            .map_or_else(String::new, |p| self.redact.apply(&p.to_string_lossy()));
        let t = out.sink.stamp(timestamp);
        out.sink
            .append(out.log, t, "file_op", action, &source, &Value::Object(data));
    }
}
