"""Type stubs of the selflog package (the native module selflog._selflog and the
exceptions of selflog/__init__.py)."""

from __future__ import annotations

import datetime
import os
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Union

__version__: str
FORMAT_VERSION: int

#: A time argument: float or int epoch seconds, an RFC 3339 string, or a datetime.
TimeLike = Union[float, int, str, datetime.datetime]
#: Any value JSON can hold.
JsonValue = Union[None, bool, int, float, str, List[Any], Dict[str, Any]]
Names = Union[str, Iterable[str]]

class Error(Exception):
    """Base class of every selflog error."""

class LockedError(Error):
    """Another process has the store open for writing."""

class InvalidEventError(Error, ValueError):
    """An event, cursor name or id was rejected; the message names the field."""
    ids: List[int]  # set by append_many: the ids stored before the bad event

class InvalidConfigError(Error, ValueError):
    """A Store option is out of range."""

class CorruptError(Error):
    """A store file is damaged or missing; the message names the file and offset."""

class DiskFullError(Error, OSError):
    """The file system is full (errno ENOSPC)."""

class Event:
    """A stored event. Immutable; data is parsed from its JSON on first access."""
    @property
    def id(self) -> int: ...
    @property
    def timestamp(self) -> float: ...
    @property
    def event_type(self) -> str: ...
    @property
    def action(self) -> Optional[str]: ...
    @property
    def source(self) -> str: ...
    @property
    def data(self) -> JsonValue: ...
    @property
    def data_json(self) -> Optional[str]: ...
    @property
    def hash(self) -> str: ...
    def to_dict(self) -> Dict[str, Any]: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class EventIterator(Iterator[Event]):
    """Lazy results of Store.query and Store.replay."""
    def __iter__(self) -> EventIterator: ...
    def __next__(self) -> Event: ...

class Cursor:
    """A durable named consumer cursor."""
    @property
    def name(self) -> str: ...
    @property
    def position(self) -> int: ...
    def commit(self, id: int) -> None: ...

class Store:
    """An open selflog store; a context manager, safe to share between threads."""
    def __init__(
        self,
        path: Union[str, os.PathLike[str]],
        *,
        durability: str = "buffered",
        batch_size: int = 100,
        batch_timeout: float = 5.0,
        retention_days: Optional[float] = 30.0,
        cleanup_interval_hours: float = 24.0,
        read_only: bool = False,
    ) -> None: ...
    @property
    def path(self) -> str: ...
    @property
    def read_only(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> Store: ...
    def __exit__(self, *exc: object) -> bool: ...
    def append(
        self,
        event_type: str,
        source: str,
        action: Optional[str] = None,
        data: JsonValue = None,
        timestamp: Optional[TimeLike] = None,
    ) -> int: ...
    def append_many(self, events: Iterable[Mapping[str, Any]]) -> List[int]: ...
    def flush(self) -> None: ...
    def get(self, id: int) -> Optional[Event]: ...
    def query(
        self,
        since: Optional[TimeLike] = None,
        until: Optional[TimeLike] = None,
        types: Optional[Names] = None,
        sources: Optional[Names] = None,
        action: Optional[str] = None,
        text: Optional[str] = None,
        limit: Optional[int] = None,
        oldest_first: bool = False,
    ) -> EventIterator: ...
    def count_by(
        self,
        field: str,
        *,
        since: Optional[TimeLike] = None,
        until: Optional[TimeLike] = None,
        types: Optional[Names] = None,
        sources: Optional[Names] = None,
        action: Optional[str] = None,
        text: Optional[str] = None,
    ) -> Dict[str, int]: ...
    def count(
        self,
        *,
        since: Optional[TimeLike] = None,
        until: Optional[TimeLike] = None,
        types: Optional[Names] = None,
        sources: Optional[Names] = None,
        action: Optional[str] = None,
        text: Optional[str] = None,
    ) -> int: ...
    def replay(
        self,
        from_id: Optional[int] = None,
        *,
        cursor: Optional[str] = None,
        since: Optional[TimeLike] = None,
    ) -> EventIterator: ...
    def cursor(self, name: str) -> Cursor: ...
    def stats(self) -> Dict[str, Any]: ...
    def record_pattern(
        self,
        pattern_type: str,
        confidence: float,
        pattern_data: JsonValue,
        event_id: Optional[int] = None,
        embryo_id: Optional[str] = None,
        created: Optional[TimeLike] = None,
    ) -> int: ...
    def patterns(
        self,
        event_id: Optional[int] = None,
        pattern_type: Optional[str] = None,
        embryo_id: Optional[str] = None,
        min_confidence: Optional[float] = None,
    ) -> List[Dict[str, Any]]: ...
    def close(self) -> None: ...
