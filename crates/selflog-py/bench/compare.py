"""The Python binding against Python's sqlite3 doing what SelFlow's old layer did.

Same events (selflog-gen's workload, duplicates included), same run, same disk:

* selflog: ``Store.append_many`` over all events; ``Store.append`` one at a time; iterating
  ``Store.query()`` (newest first) over everything, without and with reading ``ev.data``.
* sqlite3: the seed schema and indexes, WAL, ``synchronous=NORMAL`` (against selflog's
  default "buffered" durability), 100 events per transaction, data over 1 KiB gzipped
  into ``data_compressed``, ``INSERT OR IGNORE`` on a content hash (md5 of the fields and
  the data's JSON text, which the insert needs anyway); iterating
  ``SELECT * ... ORDER BY timestamp DESC``.
* The peak resident memory of a child process that appends 1,000,000 (``--rss-events``)
  events with ``append_many`` from a generator reading JSON Lines, against the same
  child that only reads them.

Run from the repository root, after ``pip install ./crates/selflog-py``:

    python crates/selflog-py/bench/compare.py [--events N] [--rss-events N]

It prints a Markdown table for ``benches/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

import selflog

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

SCHEMA = """
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp REAL NOT NULL,
  event_type TEXT NOT NULL, action TEXT, source TEXT NOT NULL, data_json TEXT,
  data_compressed BLOB, hash TEXT UNIQUE, processed BOOLEAN DEFAULT FALSE,
  created_at DATETIME DEFAULT CURRENT_TIMESTAMP);
CREATE INDEX idx_events_timestamp ON events(timestamp);
CREATE INDEX idx_events_type ON events(event_type);
CREATE INDEX idx_events_source ON events(source);
"""
INSERT = ("INSERT OR IGNORE INTO events (timestamp, event_type, action, source, data_json, "
          "data_compressed, hash) VALUES (?, ?, ?, ?, ?, ?, ?)")


def generate(path: str, count: int) -> None:
    """Writes `count` workload events as JSON Lines to `path` with selflog-gen."""
    gen = os.path.join(ROOT, "target", "release", "selflog-gen")
    if not os.path.exists(gen):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "selflog-workload", "--bin", "selflog-gen"],
                       cwd=ROOT, check=True)
    with open(path, "wb") as out:
        subprocess.run([gen, "--count", str(count)], stdout=out, check=True)


def sqlite_ingest(path: str, events: list) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    timer = Timer().__enter__()
    for i in range(0, len(events), 100):
        conn.execute("BEGIN")
        rows = []
        for e in events[i:i + 100]:
            text = data_json = None if e.get("data") is None else json.dumps(e["data"])
            compressed = None
            if text is not None and len(text) > 1024:
                compressed, text = gzip.compress(text.encode()), None
            key = f"{e['timestamp']!r}\x1f{e['event_type']}\x1f{e.get('action')}\x1f{e['source']}\x1f{data_json}"
            rows.append((e["timestamp"], e["event_type"], e.get("action"), e["source"], text, compressed,
                         hashlib.md5(key.encode()).hexdigest()))
        conn.executemany(INSERT, rows)
        conn.execute("COMMIT")
    timer.__exit__()
    conn.close()
    return timer


def sqlite_iterate(path: str) -> tuple:
    conn = sqlite3.connect(path)
    n = 0
    with Timer() as timer:
        for _row in conn.execute("SELECT * FROM events ORDER BY timestamp DESC, id DESC"):
            n += 1
    conn.close()
    return n, timer


MEMORY_CHILD = r"""
import json, sys, selflog
def events():
    with open(sys.argv[1]) as f:
        for line in f:
            yield json.loads(line)
if sys.argv[3] == "append":
    with selflog.Store(sys.argv[2]) as store:
        n = len(store.append_many(events()))
else:
    n = sum(1 for _ in events())
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking parent.
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(n, hwm)
"""


def peak_rss_kib(jsonl: str, store: str, mode: str) -> tuple:
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, jsonl, store, mode],
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


def rate(n: int, secs: float) -> str:
    return f"{n / secs:,.0f}/s"


class Timer:
    """Wall-clock and process CPU time (every thread) of a block."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events compared")
    parser.add_argument("--rss-events", type=int, default=1_000_000, help="events of the memory run")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="selflog-pybench-")
    try:
        return compare(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compare(args: argparse.Namespace, work: str) -> int:
    """Runs every measurement in `work` and prints the table."""
    load_before = open("/proc/loadavg").read().split()[:3]
    # First, while this process is small: the memory of a streaming append_many.
    rss_jsonl = os.path.join(work, "rss.jsonl")
    generate(rss_jsonl, args.rss_events)
    _, read_kib = peak_rss_kib(rss_jsonl, os.path.join(work, "rss"), "read")
    appended, append_kib = peak_rss_kib(rss_jsonl, os.path.join(work, "rss2"), "append")
    os.unlink(rss_jsonl)
    jsonl = os.path.join(work, "events.jsonl")
    generate(jsonl, args.events)

    with open(jsonl) as f:
        events = [json.loads(line) for line in f]
    n = len(events)

    sql = sqlite_ingest(os.path.join(work, "events.db"), events)

    with selflog.Store(os.path.join(work, "many")) as store:
        with Timer() as many:
            ids = store.append_many(events)
            store.flush()
        stored = len(set(ids))

    with selflog.Store(os.path.join(work, "single")) as store:
        append = store.append
        with Timer() as single:
            for e in events:
                append(e["event_type"], e["source"], e.get("action"), e.get("data"), e["timestamp"])
            store.flush()

    with selflog.Store(os.path.join(work, "many"), read_only=True) as store:
        with Timer() as iterate:
            iterated = sum(1 for _ in store.query())
        with Timer() as with_data:
            for ev in store.query():
                ev.data
    sql_rows, sql_iter = sqlite_iterate(os.path.join(work, "events.db"))
    assert iterated == sql_rows == stored, (iterated, sql_rows, stored)
    load_after = open("/proc/loadavg").read().split()[:3]

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"{n:,} events ({stored:,} distinct), {time.strftime('%Y-%m-%d %H:%M')} at `{commit}`, "
          f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} cores ({cpu}), load average {' '.join(load_before)} before, "
          f"{' '.join(load_after)} after\n")
    print("Events/s of wall-clock time; in brackets, events per second of this process's CPU time "
          "(every thread), which other programs on the machine disturb less.\n")
    print("| figure | sqlite3 (old layer) | selflog | ratio | target |")
    print("|---|---|---|---|---|")

    def cell(count, t):
        return f"{count / t.wall:,.0f}/s ({count / t.cpu:,.0f}/s CPU)"

    rows = [
        ("ingest, `append_many`", sql, many, "≥ 300,000/s and ≥ 15×", 300_000, 15),
        ("ingest, `append` one at a time", sql, single, "≥ 150,000/s", 150_000, None),
    ]
    for name, s_t, o_t, target, floor, ratio_min in rows:
        ratio = s_t.wall / o_t.wall
        met = n / o_t.wall >= floor and (ratio_min is None or ratio >= ratio_min)
        print(f"| {name} | {cell(n, s_t)} | {cell(n, o_t)} | {ratio:.1f}× ({s_t.cpu / o_t.cpu:.1f}× CPU) | "
              f"{target}: {'met' if met else 'missed'} |")
    met = iterated / iterate.wall >= 500_000
    print(f"| iterate a query (all events, newest first) | {cell(sql_rows, sql_iter)} | {cell(iterated, iterate)} | "
          f"{sql_iter.wall / iterate.wall:.1f}× | ≥ 500,000/s: {'met' if met else 'missed'} |")
    print(f"| iterate and read every `ev.data` | – | {cell(iterated, with_data)} | – | – |")
    print(f"| peak RSS of a process streaming {appended:,} events from JSON Lines into `append_many` | – | "
          f"{append_kib / 1024:.0f} MiB (the same process only parsing them: {read_kib / 1024:.0f} MiB) | – | "
          f"bounded |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
