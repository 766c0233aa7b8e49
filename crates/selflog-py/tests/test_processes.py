"""Across processes and restarts: a read-only store sees another process's commits,
replay and cursors survive a close and reopen, and a Python writer killed with SIGKILL
loses nothing it had acknowledged (flush returned) and leaves nothing it did not append."""

import os
import signal

import pytest

import selflog
from conftest import python_child

WRITER = r"""
import sys, selflog
store = selflog.Store(sys.argv[1])
print("open", flush=True)
for line in sys.stdin:
    n = int(line)
    first = store.append_many({"event_type": "remote", "source": "writer", "data": {"k": k}}
                              for k in range(n))[0]
    store.flush()
    print("flushed", first, flush=True)
"""


def test_read_only_store_sees_another_process(store_dir):
    writer = python_child(WRITER, store_dir, stdin=__import__("subprocess").PIPE)
    try:
        assert writer.stdout.readline().strip() == "open"
        with pytest.raises(selflog.LockedError, match=f"process {writer.pid}"):
            selflog.Store(store_dir)
        reader = selflog.Store(store_dir, read_only=True)
        seen = 0
        for n in (5, 100, 2000):
            writer.stdin.write(f"{n}\n")
            writer.stdin.flush()
            assert writer.stdout.readline().split()[0] == "flushed"
            seen += n
            assert reader.count() == seen
            assert reader.stats()["total_events"] == seen
            assert [e.data["k"] for e in reader.query(limit=3)] == [n - 1, n - 2, n - 3]
        reader.cursor("remote-consumer").commit(seen)  # a reader commits its own cursor
        assert reader.cursor("remote-consumer").position == seen
        reader.close()
    finally:
        writer.stdin.close()
        writer.wait(timeout=60)
    assert writer.returncode == 0, writer.stderr.read()


def test_replay_and_cursors_across_reopen(store_dir):
    with selflog.Store(store_dir) as store:
        ids = store.append_many({"event_type": "t", "source": "s", "timestamp": 1_700_000_000 + i,
                                 "data": {"i": i}} for i in range(500))
        learner = store.cursor("learner")
        assert learner.position == 0
        assert [e.id for e in store.replay(cursor="learner")] == ids
        learner.commit(ids[299])  # commits an id appended through this store: written first
        assert learner.position == 300
    with selflog.Store(store_dir) as store:
        assert store.cursor("learner").position == 300
        assert [e.data["i"] for e in store.replay(cursor="learner")] == list(range(300, 500))
        assert [e.id for e in store.replay(from_id=498)] == [498, 499, 500]
        assert [e.id for e in store.replay(since=1_700_000_495)] == [496, 497, 498, 499, 500]
        more = store.append("t", "s", data={"i": 500})
        store.cursor("learner").commit(more)
        store.cursor("learner").commit(10)  # back, to reprocess
    with selflog.Store(store_dir, read_only=True) as store:
        assert store.cursor("learner").position == 10
        assert len(list(store.replay(cursor="learner"))) == 491
        assert store.cursor("other").position == 0


KILLED_WRITER = r"""
import sys, selflog
store = selflog.Store(sys.argv[1])
seq = store.stats()["last_id"] or 0
while True:
    batch = [{"event_type": "crash", "source": "writer", "timestamp": 1_700_000_000 + (seq + k) / 1000,
              "data": {"seq": seq + k, "pad": "p" * ((seq + k) % 1500)}} for k in range(97)]
    ids = store.append_many(batch) if seq % 2 else [store.append(**e) for e in batch]
    seq += len(batch)
    if (seq // 97) % 3 == 0:
        store.flush()
        print(ids[-1], flush=True)  # acknowledged
"""


@pytest.mark.parametrize("rounds", [4])
def test_sigkill_loses_nothing_acknowledged(store_dir, rounds):
    acknowledged = 0
    for _ in range(rounds):
        child = python_child(KILLED_WRITER, store_dir)
        lines = 0
        while lines < 5 + acknowledged % 7:
            line = child.stdout.readline()
            assert line, child.stderr.read()
            acknowledged = max(acknowledged, int(line))
            lines += 1
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        child.stderr.close()
        with selflog.Store(store_dir) as store:  # recovery after the kill
            events = list(store.replay())
            assert len(events) >= acknowledged
            # Every id up to the last stored is there once, each the event appended with it.
            assert [e.id for e in events] == list(range(1, len(events) + 1))
            assert all(e.data["seq"] == e.id - 1 for e in events)
            assert all(len(e.data["pad"]) == (e.id - 1) % 1500 for e in events)
