"""Every exception: its class, its bases, and a message that says what and where."""

import errno
import glob
import os
import time

import pytest

import selflog
from conftest import python_child


def test_exception_hierarchy():
    for cls in (selflog.LockedError, selflog.InvalidEventError, selflog.InvalidConfigError,
                selflog.CorruptError, selflog.DiskFullError):
        assert issubclass(cls, selflog.Error)
    assert issubclass(selflog.InvalidEventError, ValueError)
    assert issubclass(selflog.InvalidConfigError, ValueError)
    assert issubclass(selflog.DiskFullError, OSError)


@pytest.mark.parametrize("kwargs,field", [
    ({"event_type": "", "source": "s"}, "event_type"),
    ({"event_type": "t", "source": ""}, "source"),
    ({"event_type": 5, "source": "s"}, "event_type"),
    ({"event_type": "t", "source": "s", "action": ["x"]}, "action"),
    ({"event_type": "t", "source": "s", "timestamp": time.time() + 3 * 86400}, "timestamp"),
    ({"event_type": "t", "source": "s", "timestamp": float("nan")}, "timestamp"),
    ({"event_type": "t", "source": "s", "timestamp": -5.0}, "timestamp"),
    ({"event_type": "t", "source": "s", "timestamp": "yesterday"}, "timestamp"),
    ({"event_type": "t", "source": "s", "data": {"when": object()}}, "data"),
    ({"event_type": "t", "source": "s", "data": [1, float("inf")]}, "data"),
    ({"event_type": "t", "source": "s", "data": {(1, 2): 3}}, "data"),
    ({"event_type": "t", "source": "s", "data": "\ud800"}, "data"),
    ({"event_type": "t\ud800", "source": "s"}, "event_type"),
    ({"event_type": "t" * 2000, "source": "s"}, "event_type"),
])
def test_invalid_events_name_their_field(store_dir, kwargs, field):
    with selflog.Store(store_dir) as store:
        with pytest.raises(selflog.InvalidEventError) as info:
            store.append(**kwargs)
        assert field in str(info.value)
        assert isinstance(info.value, ValueError)
        assert store.count() == 0


def test_self_containing_data_is_refused(store_dir):
    loop = []
    loop.append(loop)
    with selflog.Store(store_dir) as store:
        with pytest.raises(selflog.InvalidEventError, match="nested more than"):
            store.append("t", "s", data=loop)


def test_invalid_cursors(store_dir):
    with selflog.Store(store_dir) as store:
        with pytest.raises(selflog.InvalidEventError, match="cursor"):
            store.cursor("../escape")
        with pytest.raises(selflog.InvalidEventError, match="past the last committed event"):
            store.cursor("c").commit(5)


@pytest.mark.parametrize("kwargs", [{"durability": "fast"}, {"batch_size": 0}, {"batch_timeout": -1.0},
                                    {"retention_days": float("nan")}])
def test_invalid_config(store_dir, kwargs):
    with pytest.raises(selflog.InvalidConfigError):
        selflog.Store(store_dir, **kwargs)


def test_locked_names_the_holder(store_dir):
    with selflog.Store(store_dir):
        with pytest.raises(selflog.LockedError, match=f"process {os.getpid()}"):
            selflog.Store(store_dir)
        with selflog.Store(store_dir, read_only=True) as reader:  # works while written
            assert reader.count() == 0


def test_not_a_store_and_closed_and_read_only(tmp_path):
    with pytest.raises(selflog.Error, match="not a selflog store"):
        selflog.Store(str(tmp_path / "missing"), read_only=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(selflog.Error, match="not a selflog store"):
        selflog.Store(str(tmp_path / "file"))
    store = selflog.Store(str(tmp_path / "s"))
    store.close()
    store.close()  # twice is fine
    assert store.closed
    with pytest.raises(selflog.Error, match="closed"):
        store.append("t", "s")
    with selflog.Store(str(tmp_path / "s"), read_only=True) as ro:
        with pytest.raises(selflog.Error, match="read-only"):
            ro.append("t", "s")


def test_corrupt_frame_is_corrupt_error(store_dir):
    marker = "MARKER" * 20
    with selflog.Store(store_dir) as store:
        for i in range(50):
            store.append("t", "s", data={"m": marker, "i": i}, timestamp=1_700_000_000 + i)
    segment = max(glob.glob(os.path.join(store_dir, "*.seg")) or glob.glob(os.path.join(store_dir, "*")),
                  key=os.path.getsize)
    raw = bytearray(open(segment, "rb").read())
    at = raw.index(marker.encode()) + 3
    raw[at] ^= 0xFF
    open(segment, "wb").write(raw)
    # The read-only open (which reads the unsealed segment's index) or the read finds it.
    with pytest.raises(selflog.CorruptError) as info:
        with selflog.Store(store_dir, read_only=True) as store:
            list(store.replay())
    assert os.path.basename(segment) in str(info.value) and "offset" in str(info.value)
    # A writable open after a clean close trusts the checked index image and scans only
    # what follows it (FORMAT.md, "Segment index image"), so the damage is found when the
    # frame is read, never served.
    with selflog.Store(store_dir) as store:
        with pytest.raises(selflog.CorruptError):
            list(store.replay())


DISK_FULL_CHILD = r"""
import resource, signal, sys, selflog
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (100 * 1024, 100 * 1024))
try:
    store = selflog.Store(sys.argv[1])
    for i in range(1000):
        store.append("t", "s", data={"i": i})
    store.flush()
    print("no error")
except selflog.DiskFullError as e:
    print("disk full", isinstance(e, OSError), e.errno, e)
"""


def test_disk_full_is_an_oserror(store_dir):
    child = python_child(DISK_FULL_CHILD, store_dir)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert out.startswith(f"disk full True {errno.ENOSPC} disk full while writing"), out + err
