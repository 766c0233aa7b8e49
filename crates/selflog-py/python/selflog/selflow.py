"""SelFlow's old persistence layer, over a selflog store.

SelFlow's daemon configured its SQLite layer with a ``persistence`` dict and its tools
called a handful of verbs (store an event, recent events, search, statistics, export,
mark processed). ``EventPersistence`` takes the same configuration and offers the same
verbs, so the daemon switches with a one-line change::

    # was: from app.system.event_persistence import EventPersistence
    from selflog.selflow import EventPersistence

    persistence = EventPersistence({
        "database_path": "data/selflog",   # a store directory ("data/events.db" maps to
        "batch_size": 100,                 #  "data/events.selflog"; migrate the old file
        "batch_timeout": 5.0,              #  with `selflog import-sqlite`)
        "retention_days": 30,
        "cleanup_interval_hours": 24,
    })
    eid = persistence.store_event("file_op", "Finder", action="modified", data={"path": "/a"})
    recent = persistence.get_recent_events(hours=2, limit=50)        # newest first, dicts
    hits = persistence.search_events("chrome", limit=10)             # case-insensitive
    persistence.export_events("backup.json", hours=24)               # JSON array, 0600
    for event in persistence.get_unprocessed_events(limit=100):
        ...
        persistence.mark_processed(event["id"])                      # the `processed` cursor
    persistence.close()

The whole daemon configuration (with its ``persistence`` key) is accepted as well.
``python -m selflog.selflow [--db DIR] stats|list|search|export`` mirrors the old
``tools/selflow_events.py`` commands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

from . import Store

#: The old layer's defaults, with selflog's store directory for its database file.
DEFAULTS: Dict[str, Any] = {
    "database_path": "data/selflog",
    "batch_size": 100,
    "batch_timeout": 5.0,
    "retention_days": 30,
    "cleanup_interval_hours": 24,
}

#: The cursor that stands for the old schema's `processed` flag.
PROCESSED_CURSOR = "processed"


def store_path(database_path: str) -> str:
    """The store directory for a configured ``database_path``: the old SQLite file name
    ``X.db`` becomes the directory ``X.selflog`` beside it; any other path is used as is."""
    root, ext = os.path.splitext(database_path)
    return root + ".selflog" if ext == ".db" else database_path


class EventPersistence:
    """The old persistence layer's interface over a ``selflog.Store``.

    ``config`` is the ``persistence`` dict (``database_path``, ``batch_size``,
    ``batch_timeout``, ``retention_days``, ``cleanup_interval_hours``) or the daemon's
    whole configuration holding it; keyword arguments override it, and ``durability``
    ("buffered" or "sync") and ``read_only`` pass through to the store. Events come back
    as dicts with the keys id, timestamp, event_type, action, source, data, hash.
    Thread-safe, like the store.
    """

    def __init__(self, config: Optional[Mapping[str, Any]] = None, **overrides: Any) -> None:
        config = dict(config or {})
        if isinstance(config.get("persistence"), Mapping):
            config = dict(config["persistence"])
        settings = {**DEFAULTS, **config, **overrides}
        self.config = settings
        self.database_path = store_path(str(settings["database_path"]))
        options = {k: settings[k] for k in ("durability", "read_only") if k in settings}
        self.store = Store(
            self.database_path,
            batch_size=int(settings["batch_size"]),
            batch_timeout=float(settings["batch_timeout"]),
            retention_days=None if settings["retention_days"] is None else float(settings["retention_days"]),
            cleanup_interval_hours=float(settings["cleanup_interval_hours"]),
            **options,
        )

    # Storing -----------------------------------------------------------------------

    def store_event(self, event_type: Union[str, Mapping[str, Any]], source: Optional[str] = None,
                    action: Optional[str] = None, data: Any = None,
                    timestamp: Optional[float] = None) -> int:
        """Stores one event and returns its id (the original's id for an exact duplicate).
        Takes the fields, or one dict with them (``type`` is accepted for
        ``event_type``). Never waits on disk; ``flush()`` is the durability barrier."""
        if isinstance(event_type, Mapping):
            e = event_type
            return self.store.append(e.get("event_type", e.get("type")), e.get("source"),
                                     action=e.get("action"), data=e.get("data"),
                                     timestamp=e.get("timestamp"))
        return self.store.append(event_type, source, action=action, data=data, timestamp=timestamp)

    def store_events(self, events: Iterable[Mapping[str, Any]]) -> List[int]:
        """Stores many events (dicts with timestamp, event_type, source, action, data)."""
        return self.store.append_many(events)

    def store_pattern(self, pattern_type: str, confidence: float, pattern_data: Any,
                      event_id: Optional[int] = None, embryo_id: Optional[str] = None) -> int:
        """Records a learner's finding (the old ``patterns`` table); returns its id."""
        return self.store.record_pattern(pattern_type, confidence, pattern_data,
                                         event_id=event_id, embryo_id=embryo_id)

    def flush(self) -> None:
        """Makes everything stored so far durable."""
        self.store.flush()

    # Reading -----------------------------------------------------------------------

    def get_recent_events(self, hours: Optional[float] = 24, event_type: Optional[str] = None,
                          limit: Optional[int] = 100, source: Optional[str] = None) -> List[Dict[str, Any]]:
        """Events of the last ``hours`` (None: all), newest first, at most ``limit``
        (the old ``list --hours H --type T --limit N``)."""
        since = None if hours is None else time.time() - float(hours) * 3600
        return [e.to_dict() for e in self.store.query(since=since, types=event_type, sources=source,
                                                      limit=limit)]

    def search_events(self, query: str, limit: Optional[int] = 10,
                      hours: Optional[float] = None) -> List[Dict[str, Any]]:
        """Events whose type, action, source or data contain ``query`` (ASCII letters
        case-insensitive), newest first (the old ``search TEXT --limit N``)."""
        since = None if hours is None else time.time() - float(hours) * 3600
        return [e.to_dict() for e in self.store.query(text=query, since=since, limit=limit)]

    def get_event(self, event_id: int) -> Optional[Dict[str, Any]]:
        """One event by id, or None."""
        e = self.store.get(event_id)
        return None if e is None else e.to_dict()

    def get_patterns(self, event_id: Optional[int] = None, pattern_type: Optional[str] = None,
                     embryo_id: Optional[str] = None,
                     min_confidence: Optional[float] = None) -> List[Dict[str, Any]]:
        """Recorded patterns matching every filter given, oldest first."""
        return self.store.patterns(event_id=event_id, pattern_type=pattern_type,
                                   embryo_id=embryo_id, min_confidence=min_confidence)

    def get_statistics(self) -> Dict[str, Any]:
        """The store's statistics (the keys of ``selflog inspect stats --json``), with
        ``database_path``, ``storage_mb`` and ``unprocessed_events`` added."""
        s = self.store.stats()
        s["database_path"] = self.database_path
        s["storage_mb"] = s["disk_bytes"] / (1 << 20)
        s["unprocessed_events"] = sum(1 for _ in self.store.replay(cursor=PROCESSED_CURSOR))
        return s

    def export_events(self, path: str, hours: Optional[float] = None,
                      event_type: Optional[str] = None) -> int:
        """Writes the events of the last ``hours`` (None: all), oldest first, to
        ``path``: a JSON array, or JSON Lines when the name ends in ``.jsonl``. The file
        is created 0600 and appears only once complete. Returns the number written."""
        since = None if hours is None else time.time() - float(hours) * 3600
        events = self.store.query(since=since, types=event_type, oldest_first=True)
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".selflog-export-")
        count = 0
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                lines = path.endswith(".jsonl")
                if not lines:
                    out.write("[")
                for e in events:
                    text = json.dumps(e.to_dict(), ensure_ascii=False)
                    if lines:
                        out.write(text + "\n")
                    else:
                        out.write(("\n" if count == 0 else ",\n") + text)
                    count += 1
                if not lines:
                    out.write("\n]\n")
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        return count

    # The `processed` flag, as a durable cursor -------------------------------------------

    def get_unprocessed_events(self, limit: Optional[int] = None) -> List[Dict[str, Any]]:
        """Events after the ``processed`` cursor, in id order (oldest first)."""
        out = []
        for e in self.store.replay(cursor=PROCESSED_CURSOR):
            if limit is not None and len(out) >= limit:
                break
            out.append(e.to_dict())
        return out

    def mark_processed(self, event_ids: Union[int, Iterable[int]]) -> None:
        """Marks events processed: the cursor moves to the largest id given, so every
        event up to it counts as processed (a cursor, unlike the old per-row flag, never
        leaves a gap). It never moves back."""
        ids = [event_ids] if isinstance(event_ids, int) else list(event_ids)
        if not ids:
            return
        cursor = self.store.cursor(PROCESSED_CURSOR)
        if max(ids) > cursor.position:
            cursor.commit(max(ids))

    # Lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Writes everything stored and closes the store."""
        self.store.close()

    def __enter__(self) -> "EventPersistence":
        return self

    def __exit__(self, *exc: object) -> bool:
        self.close()
        return False


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m selflog.selflow``: the old ``tools/selflow_events.py`` commands."""
    parser = argparse.ArgumentParser(prog="python -m selflog.selflow",
                                     description="SelFlow's event tool over a selflog store")
    parser.add_argument("--db", default=DEFAULTS["database_path"], help="store directory")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("stats", help="store statistics")
    ls = sub.add_parser("list", help="recent events, newest first")
    ls.add_argument("--hours", type=float, default=None)
    ls.add_argument("--type", default=None)
    ls.add_argument("--limit", type=int, default=50)
    search = sub.add_parser("search", help="case-insensitive text search")
    search.add_argument("text")
    search.add_argument("--limit", type=int, default=10)
    export = sub.add_parser("export", help="write events to a JSON file")
    export.add_argument("file")
    export.add_argument("--hours", type=float, default=None)
    args = parser.parse_args(argv)
    with EventPersistence({"database_path": args.db}, read_only=True) as p:
        if args.command == "stats":
            print(json.dumps(p.store.stats(), indent=2))
        elif args.command in ("list", "search"):
            rows = (p.get_recent_events(hours=args.hours, event_type=args.type, limit=args.limit)
                    if args.command == "list" else p.search_events(args.text, limit=args.limit))
            for e in rows:
                print(json.dumps(e, ensure_ascii=False))
        else:
            print(f"exported {p.export_events(args.file, hours=args.hours)} events to {args.file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
