//! `selflog archive` (issue 25) through the real binary, read back by `DuckDB` and pyarrow
//! from the project's Python environment (`SELFLOG_PYTHON`, else `tools/py-venv`): the
//! dataset's totals, counts by type and by day, and sampled rows equal what the store's
//! own commands print; a second run writes nothing; a run killed at any point and run again
//! gives the same files, byte for byte, as an uninterrupted run; pyarrow reads the schema
//! with the issue's types; a foreign, unwritable or other store's `OUT_DIR` is refused.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{selflog, text};
use selflog::{Config, Event, NewPattern, Store, SystemStats, Timestamp};

/// 2024-11-24 00:00:00 UTC, in microseconds.
const DAY0_US: i64 = 1_732_406_400_000_000;
const DAY_US: i64 = 86_400_000_000;

/// The Python interpreter with `DuckDB` and pyarrow: `SELFLOG_PYTHON`, else the one
/// `tools/py-venv` makes. Fails the test with the reason when neither works.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        if let Some(p) = std::env::var_os("SELFLOG_PYTHON").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = Command::new(root.join("tools/py-venv"))
            .output()
            .unwrap_or_else(|e| {
                panic!("SELFLOG_PYTHON is not set and tools/py-venv did not run ({e}); these tests need DuckDB and pyarrow: run `tools/test`, or set SELFLOG_PYTHON to a Python with both")
            });
        assert!(
            out.status.success(),
            "SELFLOG_PYTHON is not set and tools/py-venv failed; these tests need DuckDB and pyarrow: {}",
            text(&out.stderr)
        );
        PathBuf::from(text(&out.stdout).trim())
    })
}

/// Runs `script` with `args` and parses what it prints as JSON.
fn py(script: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}\n{script}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("python printed no JSON ({e}): {}", text(&out.stdout)))
}

/// `DuckDB`'s answer to `sql`, where `{events}` stands for the events table of `out`, read
/// as the issue says: `read_parquet('OUT/**/*.parquet', hive_partitioning=1)`.
fn duckdb(out: &Path, glob: &str, sql: &str) -> serde_json::Value {
    let script = r#"
import duckdb, json, sys
out, glob, sql = sys.argv[1], sys.argv[2], sys.argv[3]
table = f"read_parquet('{out}/{glob}', hive_partitioning=1)"
rows = duckdb.sql(sql.replace("{events}", table)).fetchall()
print(json.dumps([[v if isinstance(v, (int, float, str, type(None))) else str(v) for v in r] for r in rows]))
"#;
    py(script, &[&out.display().to_string(), glob, sql])
}

/// Exit status 0, or the output in the failure message; returns stdout.
fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `selflog archive OUT --json [extra]`'s summary.
fn archive(store: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["archive", out.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let stdout = ok(&selflog(store, &args));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("summary is not JSON ({e}): {stdout}"))
}

/// Small segments (64 KiB), so that a few thousand events fill several sealed ones.
fn small_config() -> Config {
    let mut c = Config::default();
    c.segment_len = 64 << 10;
    c.data_len_max = 16 << 10;
    c
}

/// Appends `n` events numbered from `from`, spread over four days (ten minutes apart
/// within a day), of three types and two sources, with and without action and data, and
/// flushes.
fn append_events(store: &Store, from: u64, n: u64) {
    for i in from..from + n {
        let day = i64::try_from(i % 4).unwrap();
        // Distinct timestamps (a second apart, under 4 hours into the day): no duplicates.
        let ts = Timestamp(DAY0_US + day * DAY_US + i64::try_from(i).unwrap() * 1_000_000);
        let action = (i % 5 != 0).then_some("modified");
        let data = (i % 7 != 0).then(|| {
            format!(
                r#"{{"i": {i}, "path": "/Users/a/notes-{i}.md", "text": "caf\u00e9 \"q\" {}"}}"#,
                "x".repeat(usize::try_from(i % 300).unwrap())
            )
        });
        let e = Event::new(
            ts,
            ["file_op", "app_launch", "browser_tab"][usize::try_from(i % 3).unwrap()],
            action,
            if i % 2 == 0 {
                "Finder"
            } else {
                "Google Chrome"
            },
            data.as_deref(),
        )
        .unwrap();
        store.append(e).unwrap();
    }
    store.flush().unwrap();
}

/// A store at `dir` of 3,000 events in small segments (several sealed, one active).
fn store_with_sealed_segments(dir: &Path) -> PathBuf {
    let path = dir.join("store");
    let store = Store::open(&path, small_config()).unwrap();
    append_events(&store, 1, 3000);
    store.close().unwrap();
    path
}

/// The store's segments from `inspect segments --json`: (sealed, events).
fn segments(store: &Path) -> Vec<(bool, u64)> {
    ok(&selflog(store, &["inspect", "segments", "--json"]))
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let sealed = v["sealed"]
                .as_bool()
                .unwrap_or_else(|| v["state"] == "sealed");
            (sealed, v["events"].as_u64().unwrap())
        })
        .collect()
}

fn total_events(store: &Path) -> u64 {
    common::total_events(store)
}

/// Every file under `dir`, relative, with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Whether a Parquet file is being written under `dir` (a `.NAME.parquet.PID.tmp`),
/// read while the run renames and removes files.
fn writing(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            writing(&e.path())
        } else {
            name.contains(".parquet.") && Path::new(&name).extension().is_some_and(|x| x == "tmp")
        }
    })
}

/// Waits until the run `child` archiving into `out` is writing its first files, and checks
/// that it still runs: a stop now lands mid-run, whatever the machine's speed.
fn wait_until_writing(child: &mut std::process::Child, out: &Path) {
    let started = std::time::Instant::now();
    while !writing(out) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was seen writing"
        );
        assert!(started.elapsed().as_secs() < 120, "nothing written");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(child.try_wait().unwrap().is_none(), "the run ended");
}

/// Every Parquet file under `dir`, relative, with its inode and modification time.
fn identities(dir: &Path) -> BTreeMap<String, (u64, i64, i64)> {
    files(dir)
        .into_keys()
        .filter(|k| k.ends_with(".parquet"))
        .map(|k| {
            let m = std::fs::metadata(dir.join(&k)).unwrap();
            (k, (m.ino(), m.mtime(), m.mtime_nsec()))
        })
        .collect()
}

#[test]
fn duckdb_count_equals_inspect_stats_total_and_counts_by_type_and_day_match() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_sealed_segments(dir.path());
    let out = dir.path().join("archive");
    let segs = segments(&store);
    assert!(segs.iter().filter(|s| s.0).count() >= 3, "{segs:?}");

    // Sealed segments only: every event but the active segment's.
    let summary = archive(&store, &out, &[]);
    let sealed_events: u64 = segs.iter().filter(|s| s.0).map(|s| s.1).sum();
    assert_eq!(summary["events"], sealed_events);
    let count = duckdb(&out, "**/*.parquet", "select count(*) from {events}");
    assert_eq!(count[0][0], sealed_events);

    // With the active segment: the whole store.
    archive(&store, &out, &["--include-active"]);
    let total = total_events(&store);
    let count = duckdb(
        &out,
        "**/*.parquet",
        "select count(*), count(distinct id) from {events}",
    );
    assert_eq!(count[0][0], total, "count(*) equals inspect stats total");
    assert_eq!(count[0][1], total, "no event twice");

    // By type, against `inspect stats`' events per type.
    let stats: serde_json::Value =
        serde_json::from_str(&ok(&selflog(&store, &["inspect", "stats", "--json"]))).unwrap();
    let by_type = duckdb(
        &out,
        "**/*.parquet",
        "select event_type, count(*) from {events} group by 1 order by 1",
    );
    let want: BTreeMap<String, u64> = stats["events_by_type"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    let got: BTreeMap<String, u64> = by_type
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_owned(), r[1].as_u64().unwrap()))
        .collect();
    assert_eq!(got, want);

    // By day (the `date` partition), against the events the store lists for that day.
    let by_day = duckdb(
        &out,
        "**/*.parquet",
        "select date, count(*) from {events} group by 1 order by 1",
    );
    let rows = by_day.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for (d, row) in rows.iter().enumerate() {
        let since = (DAY0_US + i64::try_from(d).unwrap() * DAY_US) / 1_000_000;
        assert_eq!(row[0], format!("2024-11-{}", 24 + d));
        let listed = ok(&selflog(
            &store,
            &[
                "inspect",
                "export",
                "-",
                "--since",
                &since.to_string(),
                "--until",
                &(since + 86_400).to_string(),
            ],
        ))
        .lines()
        .count();
        assert_eq!(row[1], listed as u64, "day {}", row[0]);
    }

    // And against `inspect count`, the CLI's GROUP BY (its days in UTC, the partitions' zone).
    let count_by = |by: &str| -> BTreeMap<String, u64> {
        let args = ["inspect", "count", "--by", by, "--json", "--utc"];
        let v: serde_json::Value = serde_json::from_str(&ok(&selflog(&store, &args))).unwrap();
        v["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c[by].as_str().unwrap().to_owned(),
                    c["count"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(count_by("type"), got);
    let days: BTreeMap<String, u64> = rows
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_owned(), r[1].as_u64().unwrap()))
        .collect();
    assert_eq!(count_by("day"), days);
}

#[test]
fn sampled_rows_equal_inspect_get_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_sealed_segments(dir.path());
    let out = dir.path().join("archive");
    archive(&store, &out, &["--include-active"]);
    let mut ids: Vec<u64> = (1..=3000).step_by(97).chain([2, 3000]).collect();
    ids.sort_unstable();
    ids.dedup();
    let list = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let rows = duckdb(
        &out,
        "**/*.parquet",
        &format!(
            "select id, epoch_us(timestamp), event_type, action, source, data::varchar, hash, \
             date::varchar from {{events}} where id in ({list}) order by id"
        ),
    );
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), ids.len());
    let lib = Store::open_read_only(&store).unwrap();
    for row in rows {
        let id = row[0].as_u64().unwrap();
        let line = ok(&selflog(
            &store,
            &["inspect", "get", &id.to_string(), "--json"],
        ));
        let got: serde_json::Value = serde_json::from_str(&line).unwrap();
        let ts_us = row[1].as_i64().unwrap();
        // The timestamp as `inspect get` prints it, digit for digit.
        let printed = line
            .split("\"timestamp\":")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap();
        assert_eq!(
            printed,
            format!(
                "{}.{:06}",
                ts_us.div_euclid(1_000_000),
                ts_us.rem_euclid(1_000_000)
            )
        );
        assert_eq!(row[2], got["event_type"], "id {id}");
        assert_eq!(row[3], got["action"], "id {id}");
        assert_eq!(row[4], got["source"], "id {id}");
        match row[5].as_str() {
            Some(data) => {
                let parsed: serde_json::Value = serde_json::from_str(data).unwrap();
                assert_eq!(parsed, got["data"], "id {id}");
            }
            None => assert!(got["data"].is_null(), "id {id}"),
        }
        assert_eq!(row[6], got["hash"], "id {id}");
        // The data's text exactly as appended, and the day of the timestamp.
        let e = lib.get(selflog::EventId(id)).unwrap().unwrap();
        assert_eq!(row[5].as_str(), e.data.as_deref(), "id {id}");
        assert_eq!(e.timestamp.micros(), ts_us);
        let day = (ts_us - DAY0_US).div_euclid(DAY_US);
        assert_eq!(row[7], format!("2024-11-{}", 24 + day));
    }
}

#[test]
fn a_second_run_writes_nothing_and_new_segments_only_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = Store::open(&path, small_config()).unwrap();
    append_events(&store, 1, 2000);
    let out = dir.path().join("archive");
    // The store is open for writing: archiving works beside the writer.
    let first = archive(&path, &out, &[]);
    assert!(first["files"].as_u64().unwrap() > 0);
    let before = identities(&out);
    let manifest_before = std::fs::read(out.join("_selflog_archive.json")).unwrap();
    let manifest_mtime = || {
        std::fs::metadata(out.join("_selflog_archive.json"))
            .unwrap()
            .modified()
            .unwrap()
    };
    let manifest_written = manifest_mtime();

    let second = archive(&path, &out, &[]);
    assert_eq!(second["files"], 0, "{second}");
    assert_eq!(second["rows"], 0);
    assert_eq!(identities(&out), before, "no file rewritten");
    assert_eq!(
        std::fs::read(out.join("_selflog_archive.json")).unwrap(),
        manifest_before
    );
    assert_eq!(manifest_mtime(), manifest_written, "manifest not rewritten");

    // More segments sealed: only theirs are written, the earlier files are untouched.
    let sealed_before = segments(&path).iter().filter(|s| s.0).count();
    append_events(&store, 2001, 2000);
    let sealed_after = segments(&path).iter().filter(|s| s.0).count();
    assert!(sealed_after > sealed_before);
    let third = archive(&path, &out, &[]);
    assert_eq!(
        third["segments"],
        (sealed_after - sealed_before) as u64,
        "{third}"
    );
    let after = identities(&out);
    for (name, id) in &before {
        assert_eq!(after.get(name), Some(id), "{name} rewritten");
    }
    let sealed_events: u64 = segments(&path).iter().filter(|s| s.0).map(|s| s.1).sum();
    let count = duckdb(&out, "**/*.parquet", "select count(*) from {events}");
    assert_eq!(count[0][0], sealed_events);

    // Private data: files 0600, directories 0700.
    for name in files(&out).keys() {
        let p = out.join(name);
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600,
            "{name}"
        );
        assert_eq!(
            std::fs::metadata(p.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700,
            "{name}"
        );
    }
    store.close().unwrap();
}

#[test]
fn the_active_prefix_is_replaced_by_later_runs_never_duplicated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = Store::open(&path, small_config()).unwrap();
    append_events(&store, 1, 100);
    let out = dir.path().join("archive");
    let first = archive(&path, &out, &["--include-active"]);
    assert_eq!(first["events"], 100);
    // The same prefix again: nothing written.
    assert_eq!(archive(&path, &out, &["--include-active"])["files"], 0);
    // Without the flag, the prefix stays as it is.
    assert_eq!(archive(&path, &out, &[])["files"], 0);
    // The active segment grows, then seals and a new one starts.
    append_events(&store, 101, 1500);
    archive(&path, &out, &["--include-active"]);
    append_events(&store, 1601, 10);
    archive(&path, &out, &[]);
    archive(&path, &out, &["--include-active"]);
    let total = total_events(&path);
    let count = duckdb(
        &out,
        "**/*.parquet",
        "select count(*), count(distinct id), min(id), max(id) from {events}",
    );
    assert_eq!(count[0][0], total);
    assert_eq!(count[0][1], total);
    assert_eq!(count[0][2], 1);
    assert_eq!(count[0][3], 1610);
    store.close().unwrap();
}

#[test]
fn an_interrupted_run_then_a_rerun_gives_the_same_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = Store::open(&path, small_config()).unwrap();
    append_events(&store, 1, 30_000);
    store.close().unwrap();
    let clean = dir.path().join("clean");
    archive(&path, &clean, &["--include-active"]);
    let want = files(&clean);
    assert!(want.len() > 20);

    let out = dir.path().join("killed");
    let mut child = common::command(
        &path,
        &["archive", out.to_str().unwrap(), "--include-active"],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    // Killed outright while it writes files.
    wait_until_writing(&mut child, &out);
    child.kill().unwrap();
    child.wait().unwrap();
    let parquet =
        |m: &BTreeMap<String, Vec<u8>>| m.keys().filter(|k| k.ends_with(".parquet")).count();
    let killed_with = parquet(&files(&out));
    assert!(
        killed_with < parquet(&want),
        "killed mid-run: {killed_with} of {} files",
        parquet(&want)
    );
    // A temporary file as a writer killed mid-file leaves it.
    let partial = files(&out)
        .into_keys()
        .find(|k| k.starts_with("date="))
        .unwrap();
    let stale = out
        .join(Path::new(&partial).parent().unwrap())
        .join(".segment-00009999.parquet.4242.tmp");
    std::fs::write(&stale, b"PAR1 cut short").unwrap();
    // No partial file is visible: every *.parquet opens as a whole Parquet file.
    let check = r"
import glob, json, sys, pyarrow.parquet as pq
names = glob.glob(sys.argv[1] + '/**/*.parquet', recursive=True)
print(json.dumps(sum(pq.ParquetFile(n).metadata.num_rows for n in names)))
";
    py(check, &[out.to_str().unwrap()]);

    let rerun = archive(&path, &out, &["--include-active"]);
    assert!(rerun["files"].as_u64().unwrap() > 0, "{rerun}");
    assert!(
        !stale.exists(),
        "the stopped run's temporary file is removed"
    );
    let got = files(&out);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "same files"
    );
    for (name, bytes) in &want {
        if name.ends_with(".parquet") {
            assert!(
                got[name] == *bytes,
                "{name} differs from the uninterrupted run's"
            );
        }
    }
    let count = duckdb(
        &out,
        "**/*.parquet",
        "select count(*), count(distinct id) from {events}",
    );
    assert_eq!(count[0][0], 30_000);
    assert_eq!(count[0][1], 30_000);
}

#[test]
fn ctrl_c_stops_between_batches_and_a_rerun_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = Store::open(&path, small_config()).unwrap();
    append_events(&store, 1, 30_000);
    store.close().unwrap();
    let out = dir.path().join("archive");
    let mut child = common::command(&path, &["archive", out.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_writing(&mut child, &out);
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let stopped = child.wait_with_output().unwrap();
    assert_eq!(
        stopped.status.code(),
        Some(130),
        "stderr: {}",
        text(&stopped.stderr)
    );
    assert!(
        text(&stopped.stderr).contains("archive interrupted"),
        "{}",
        text(&stopped.stderr)
    );
    assert!(
        !files(&out)
            .keys()
            .any(|k| Path::new(k).extension().is_some_and(|e| e == "tmp")),
        "no temporary file left: {:?}",
        files(&out).keys().collect::<Vec<_>>()
    );
    let rerun = archive(&path, &out, &[]);
    assert!(rerun["segments"].as_u64().unwrap() > 0, "{rerun}");
    let sealed_events: u64 = segments(&path).iter().filter(|s| s.0).map(|s| s.1).sum();
    let count = duckdb(
        &out,
        "**/*.parquet",
        "select count(*), count(distinct id) from {events}",
    );
    assert_eq!(count[0][0], sealed_events);
    assert_eq!(count[0][1], sealed_events);
}

#[test]
fn pyarrow_reads_the_schema_with_the_issue_types() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = Store::open(&path, small_config()).unwrap();
    append_events(&store, 1, 300);
    let mut p = NewPattern::new("sequence", 0.75, r#"{"next": "browser_tab"}"#);
    p.event_id = Some(selflog::EventId(3));
    p.embryo_id = Some("e1".into());
    p.created = Timestamp(DAY0_US + 5);
    store.record_pattern(&p).unwrap();
    store
        .record_system_stats(&SystemStats {
            timestamp: Timestamp(DAY0_US + DAY_US + 7),
            total_events: 300,
            events_per_second: 1.5,
            active_embryos: 2,
            avg_fitness: 0.5,
            storage_mb: 1.25,
        })
        .unwrap();
    store.flush().unwrap();
    let out = dir.path().join("archive");
    let summary = archive(&path, &out, &["--include-active"]);
    assert_eq!(summary["patterns"], 1);
    assert_eq!(summary["system_stats"], 1);
    let script = r#"
import glob, json, sys, pyarrow as pa, pyarrow.parquet as pq
out = sys.argv[1]
def described(pattern):
    name = sorted(glob.glob(out + '/' + pattern))[0]
    f = pq.ParquetFile(name)
    schema = pq.read_schema(name)
    fields = {}
    for field in schema:
        t = field.type
        storage = getattr(t, 'storage_type', t)
        fields[field.name] = [str(t), str(storage), field.nullable]
    logical = {c.name: str(c.logical_type) for c in f.schema}
    md = f.metadata
    rg = md.row_group(0)
    cols = {rg.column(i).path_in_schema: [rg.column(i).compression, rg.column(i).has_dictionary_page] for i in range(rg.num_columns)}
    return {"fields": fields, "logical": logical, "row_groups": md.num_row_groups, "columns": cols}
print(json.dumps({
    "events": described('date=*/*.parquet'),
    "patterns": described('patterns/date=*/*.parquet'),
    "stats": described('system_stats/date=*/*.parquet'),
}))
"#;
    let v = py(script, &[out.to_str().unwrap()]);
    let e = &v["events"]["fields"];
    assert_eq!(e["id"][0], "int64");
    assert_eq!(e["timestamp"][0], "timestamp[us, tz=UTC]");
    for name in ["event_type", "source", "hash"] {
        assert_eq!(e[name][0], "string", "{name}");
        assert_eq!(e[name][2], false, "{name} is required");
    }
    assert_eq!(e["action"][0], "string");
    assert_eq!(e["action"][2], true, "action is nullable");
    assert_eq!(e["data"][1], "string", "data holds text: {}", e["data"]);
    assert_eq!(v["events"]["logical"]["data"], "JSON");
    assert_eq!(v["events"]["row_groups"], 1);
    let cols = &v["events"]["columns"];
    for name in [
        "id",
        "timestamp",
        "event_type",
        "action",
        "source",
        "data",
        "hash",
    ] {
        assert_eq!(cols[name][0], "ZSTD", "{name}");
    }
    for name in ["event_type", "action", "source"] {
        assert_eq!(cols[name][1], true, "{name} is dictionary-encoded");
    }
    let p = &v["patterns"]["fields"];
    assert_eq!(p["id"][0], "int64");
    assert_eq!(p["event_id"][0], "int64");
    assert_eq!(p["confidence"][0], "double");
    assert_eq!(p["created"][0], "timestamp[us, tz=UTC]");
    assert_eq!(v["patterns"]["logical"]["pattern_data"], "JSON");
    let s = &v["stats"]["fields"];
    assert_eq!(s["timestamp"][0], "timestamp[us, tz=UTC]");
    assert_eq!(s["total_events"][0], "int64");
    assert_eq!(s["storage_mb"][0], "double");

    // The rows, through DuckDB, against what `inspect` prints.
    let pat = duckdb(
        &out,
        "patterns/**/*.parquet",
        "select id, event_id, pattern_type, confidence, pattern_data, embryo_id, epoch_us(created), date::varchar from {events}",
    );
    let listed: serde_json::Value =
        serde_json::from_str(ok(&selflog(&path, &["inspect", "patterns", "--json"])).trim())
            .unwrap();
    assert_eq!(pat[0][0], listed["id"]);
    assert_eq!(pat[0][1], 3);
    assert_eq!(pat[0][2], "sequence");
    assert_eq!(pat[0][3], 0.75);
    let data: serde_json::Value = serde_json::from_str(pat[0][4].as_str().unwrap()).unwrap();
    assert_eq!(data, listed["pattern_data"]);
    assert_eq!(data, serde_json::json!({"next": "browser_tab"}));
    assert_eq!(pat[0][5], "e1");
    assert_eq!(pat[0][6], DAY0_US + 5);
    assert_eq!(pat[0][7], "2024-11-24");
    let st = duckdb(
        &out,
        "system_stats/**/*.parquet",
        "select epoch_us(timestamp), total_events, events_per_second, active_embryos, avg_fitness, storage_mb, date::varchar from {events}",
    );
    assert_eq!(
        st,
        serde_json::json!([[DAY0_US + DAY_US + 7, 300, 1.5, 2, 0.5, 1.25, "2024-11-25"]])
    );
    // The events alone, without the sidecar tables: `date=*/*.parquet`.
    let count = duckdb(&out, "date=*/*.parquet", "select count(*) from {events}");
    assert_eq!(count[0][0], 300);

    // Idempotent for the sidecars too; a new pattern rewrites its day only.
    assert_eq!(archive(&path, &out, &["--include-active"])["files"], 0);
    let mut p2 = NewPattern::new("sequence", 0.5, "{}");
    p2.created = Timestamp(DAY0_US + 9);
    store.record_pattern(&p2).unwrap();
    store.flush().unwrap();
    let again = archive(&path, &out, &["--include-active"]);
    assert_eq!(again["files"], 1, "{again}");
    assert_eq!(again["patterns"], 2);
    store.close().unwrap();
}

/// The failure's first stderr line, after checking exit status 1 and the `selflog:` form.
fn refused(out: &Output) -> String {
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {err}",
        text(&out.stdout)
    );
    assert!(err.starts_with("selflog: "), "{err}");
    assert!(err.contains("\nhint: "), "{err}");
    err
}

#[test]
fn a_foreign_unwritable_damaged_or_other_stores_out_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_sealed_segments(dir.path());
    let run = |out: &Path| selflog(&store, &["archive", out.to_str().unwrap()]);

    // Not empty and not ours: left untouched.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), b"mine").unwrap();
    std::fs::write(foreign.join(".x.tmp"), b"mine too").unwrap();
    let err = refused(&run(&foreign));
    assert!(err.contains("holds no archive"), "{err}");
    assert_eq!(files(&foreign).len(), 2);

    // A file, and a directory without write permission (refused even for root).
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(refused(&run(&file)).contains("not a directory"));
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    assert!(refused(&run(&locked)).contains("not writable"));
    assert!(files(&locked).is_empty());
    let under_file = file.join("archive");
    refused(&run(&under_file));

    // A damaged manifest is named, not guessed at.
    let out = dir.path().join("archive");
    ok(&run(&out));
    let manifest = out.join("_selflog_archive.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replacen("\"rows\":", "\"rows\":1", 1)).unwrap();
    let err = refused(&run(&out));
    assert!(err.contains("_selflog_archive.json is damaged"), "{err}");
    std::fs::write(&manifest, text).unwrap();
    ok(&run(&out));

    // Another store's archive.
    let other = dir.path().join("other");
    let s = Store::open(&other, small_config()).unwrap();
    append_events(&s, 1, 1500);
    s.close().unwrap();
    let err = refused(&selflog(&other, &["archive", out.to_str().unwrap()]));
    assert!(err.contains("another store"), "{err}");
}

#[test]
fn a_file_of_more_than_122880_rows_is_one_row_group() {
    // One segment (64 MiB default) of small events of one day: one file over DuckDB's
    // row-group size, which must not be cut into smaller groups.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = Store::open(&path, Config::default()).unwrap();
    let n: u64 = 130_000;
    let events: Vec<Event> = (0..n)
        .map(|i| {
            let ts = Timestamp(DAY0_US + i64::try_from(i).unwrap() * 100_000);
            Event::new(ts, "tick", None, "clock", Some(&format!("{{\"i\":{i}}}"))).unwrap()
        })
        .collect();
    for chunk in events.chunks(10_000) {
        store.append_batch(chunk.to_vec()).unwrap();
    }
    store.close().unwrap();
    let out = dir.path().join("archive");
    let summary = archive(&path, &out, &["--include-active"]);
    assert_eq!(summary["events"], n);
    let script = r"
import glob, json, sys, pyarrow.parquet as pq
out = []
for name in sorted(glob.glob(sys.argv[1] + '/date=*/*.parquet')):
    md = pq.ParquetFile(name).metadata
    out.append([md.num_rows, [md.row_group(i).num_rows for i in range(md.num_row_groups)]])
print(json.dumps(out))
";
    let v = py(script, &[out.to_str().unwrap()]);
    let big = v
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f[0].as_u64().unwrap() >= 122_880)
        .expect("a file of at least 122,880 rows");
    assert_eq!(big[1], serde_json::json!([big[0]]), "one row group: {v}");
}
