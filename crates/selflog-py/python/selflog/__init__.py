"""selflog: an embedded, append-only, log-structured event store, from Python.

A store is a directory. Many threads append events; each gets its id at once and a
background writer commits them in batches. ``flush()`` is the durability barrier.
Readers, in this process or another (``read_only=True``), see exactly what is committed.

    import selflog

    with selflog.Store("data/selflog") as store:
        eid = store.append("file_op", "Finder", action="modified", data={"path": "/a"})
        store.flush()
        for ev in store.query(types="file_op", limit=10):
            print(ev.id, ev.timestamp, ev.source, ev.data)

Exceptions: every error is a ``selflog.Error``; ``LockedError`` (another process writes
the store), ``InvalidEventError`` (also a ``ValueError``: a bad field, a far-future
timestamp, data too large), ``InvalidConfigError`` (also a ``ValueError``: a bad
``Store`` option), ``CorruptError`` (damaged or missing store files) and
``DiskFullError`` (also an ``OSError``, errno ENOSPC).

``selflog.selflow`` adapts the store to SelFlow's old persistence layer.
"""

from __future__ import annotations


class Error(Exception):
    """Base class of every selflog error. Its message says what happened, where (file,
    byte offset, field) and what to do."""


class LockedError(Error):
    """Another process has the store open for writing. Stop it, or open the store with
    ``read_only=True``, which works while another process writes."""


class InvalidEventError(Error, ValueError):
    """An event (or a cursor name or id) was rejected before anything was stored: a
    missing or empty field, a value JSON cannot hold, a timestamp more than a day ahead
    of now, data over 4 MiB. The message names the field."""


class InvalidConfigError(Error, ValueError):
    """A ``Store`` option is out of range; the message names it and its allowed range."""


class CorruptError(Error):
    """A store file fails its checksum or structure, or files the store recorded are
    missing. The message names the file and byte offset; ``selflog inspect verify``
    lists every problem and ``selflog salvage --to NEW_DIR`` copies what is intact."""


class DiskFullError(Error, OSError):
    """The file system is full (``errno`` is ENOSPC; the message names the file being
    written). Appends and flushes fail until space is freed; reads keep working, and
    events already acknowledged are kept."""


from ._selflog import (  # noqa: E402  (the exceptions above must exist first)
    FORMAT_VERSION,
    Cursor,
    Event,
    EventIterator,
    Store,
    __version__,
)

__all__ = [
    "Store",
    "Event",
    "Cursor",
    "EventIterator",
    "Error",
    "LockedError",
    "InvalidEventError",
    "InvalidConfigError",
    "CorruptError",
    "DiskFullError",
    "FORMAT_VERSION",
    "__version__",
]
