"""The Python binding against Python's sqlite3 doing what SelFlow's old layer did.

Same events (selflog-gen's workload, duplicates included), same run, same disk:

* selflog: ``Store.append_many`` over all events; ``Store.append`` one at a time; iterating
  ``Store.query()`` (newest first) over everything, without and with reading ``ev.data``.
* sqlite3: the seed schema and indexes, WAL, ``synchronous=NORMAL`` (against selflog's
  default "buffered" durability), 100 events per transaction, data over 1 KiB gzipped
  into ``data_compressed``, ``INSERT OR IGNORE`` on a content hash (md5 of the event's
  JSON, as a Python layer computes one); iterating ``SELECT * ... ORDER BY timestamp DESC``.
* The peak resident memory of a child process that appends 1,000,000 (``--events``)
  events with ``append_many`` from a generator reading JSON Lines, against the same
  child that only reads them.

Run from the repository root, after ``pip install ./crates/selflog-py``:

    python crates/selflog-py/bench/compare.py [--events N]

It prints a Markdown table for ``benches/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import platform
import resource
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
    start = time.perf_counter()
    for i in range(0, len(events), 100):
        conn.execute("BEGIN")
        rows = []
        for e in events[i:i + 100]:
            text = None if e.get("data") is None else json.dumps(e["data"])
            compressed = None
            if text is not None and len(text) > 1024:
                compressed, text = gzip.compress(text.encode()), None
            key = json.dumps([e["timestamp"], e["event_type"], e.get("action"), e["source"], e.get("data")],
                             sort_keys=True)
            rows.append((e["timestamp"], e["event_type"], e.get("action"), e["source"], text, compressed,
                         hashlib.md5(key.encode()).hexdigest()))
        conn.executemany(INSERT, rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def sqlite_iterate(path: str) -> tuple:
    conn = sqlite3.connect(path)
    start = time.perf_counter()
    n = 0
    for _row in conn.execute("SELECT * FROM events ORDER BY timestamp DESC, id DESC"):
        n += 1
    elapsed = time.perf_counter() - start
    conn.close()
    return n, elapsed


MEMORY_CHILD = r"""
import json, resource, sys, selflog
def events():
    with open(sys.argv[1]) as f:
        for line in f:
            yield json.loads(line)
if sys.argv[3] == "append":
    with selflog.Store(sys.argv[2]) as store:
        n = len(store.append_many(events()))
else:
    n = sum(1 for _ in events())
print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_kib(jsonl: str, store: str, mode: str) -> tuple:
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, jsonl, store, mode],
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


def rate(n: int, secs: float) -> str:
    return f"{n / secs:,.0f}/s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="selflog-pybench-")
    jsonl = os.path.join(work, "events.jsonl")
    generate(jsonl, args.events)
    with open(jsonl) as f:
        events = [json.loads(line) for line in f]
    n = len(events)

    sqlite_secs = sqlite_ingest(os.path.join(work, "events.db"), events)

    with selflog.Store(os.path.join(work, "many")) as store:
        start = time.perf_counter()
        ids = store.append_many(events)
        store.flush()
        many_secs = time.perf_counter() - start
        stored = len(set(ids))

    with selflog.Store(os.path.join(work, "single")) as store:
        append = store.append
        start = time.perf_counter()
        for e in events:
            append(e["event_type"], e["source"], e.get("action"), e.get("data"), e["timestamp"])
        store.flush()
        single_secs = time.perf_counter() - start

    with selflog.Store(os.path.join(work, "many"), read_only=True) as store:
        start = time.perf_counter()
        iterated = sum(1 for _ in store.query())
        iter_secs = time.perf_counter() - start
        start = time.perf_counter()
        for ev in store.query():
            ev.data
        data_secs = time.perf_counter() - start
    sql_rows, sql_iter_secs = sqlite_iterate(os.path.join(work, "events.db"))
    assert iterated == sql_rows == stored, (iterated, sql_rows, stored)

    _, read_kib = peak_rss_kib(jsonl, os.path.join(work, "rss"), "read")
    appended, append_kib = peak_rss_kib(jsonl, os.path.join(work, "rss2"), "append")

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"{n:,} events ({stored:,} distinct), {time.strftime('%Y-%m-%d')} at `{commit}`, "
          f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} cores ({cpu})\n")
    print("| figure | sqlite3 (old layer) | selflog | ratio | target |")
    print("|---|---|---|---|---|")
    rows = [
        ("ingest, `append_many`", sqlite_secs, many_secs, "≥ 300,000/s and ≥ 15×", 300_000, 15),
        ("ingest, `append` one at a time", sqlite_secs, single_secs, "≥ 150,000/s", 150_000, None),
    ]
    for name, sql, ours, target, floor, ratio_min in rows:
        ratio = sql / ours
        met = n / ours >= floor and (ratio_min is None or ratio >= ratio_min)
        print(f"| {name} | {rate(n, sql)} | {rate(n, ours)} | {ratio:.1f}× | {target}: {'met' if met else 'MISSED'} |")
    met = iterated / iter_secs >= 500_000
    print(f"| iterate a query, newest first | {rate(sql_rows, sql_iter_secs)} | {rate(iterated, iter_secs)} | "
          f"{sql_iter_secs / iter_secs:.1f}× | ≥ 500,000/s: {'met' if met else 'MISSED'} |")
    print(f"| iterate and read `ev.data` (json.loads) | – | {rate(iterated, data_secs)} | – | – |")
    print(f"| peak RSS, `append_many` of {appended:,} from a JSON Lines generator | – | "
          f"{append_kib / 1024:.0f} MiB ({(append_kib - read_kib) / 1024:+.0f} MiB over only reading them: "
          f"{read_kib / 1024:.0f} MiB) | – | bounded |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
