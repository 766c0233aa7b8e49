"""Threads, the GIL and fork: many threads append at once; a long scan lets other Python
threads run; a forked child gets a clear error, never a deadlock, and leaves the parent's
store (and its writer lock) alone."""

import os
import select
import signal
import threading
import time

import pytest

import selflog


def test_many_threads_append_and_read(store_dir):
    threads, per_thread = 8, 2000
    results = {}
    with selflog.Store(store_dir) as store:
        def work(n):
            ids = []
            for i in range(per_thread):
                if i % 500 == 0:
                    ids.extend(store.append_many([{"event_type": "bulk", "source": f"t{n}", "data": {"i": i, "j": j}}
                                                  for j in range(10)]))
                ids.append(store.append("thread", f"t{n}", data={"i": i}))
                if i % 700 == 0:
                    assert store.count(sources=f"t{n}") >= 1  # reads its own writes
            results[n] = ids
        ts = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        all_ids = [i for ids in results.values() for i in ids]
        total = threads * (per_thread + 4 * 10)
        assert sorted(all_ids) == list(range(1, total + 1))
        store.flush()
        for n, ids in results.items():
            got = [e.source for e in map(store.get, ids[:50])]
            assert got == [f"t{n}"] * 50
        assert store.count() == total


@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("gil") / "store")
    with selflog.Store(path) as store:
        for chunk in range(40):
            store.append_many({"timestamp": 1_700_000_000 + chunk * 10_000 + i, "event_type": "file_op",
                               "source": "Finder", "data": {"path": f"/Users/me/{chunk}/{i}.txt"}}
                              for i in range(5000))
    return path


def progress_during(call):
    """How far a busy Python thread got while `call()` ran in this one."""
    counter = [0]
    stop = threading.Event()
    started = threading.Event()

    def spin():
        started.set()
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    started.wait()
    before = counter[0]
    result = call()
    after = counter[0]
    stop.set()
    t.join()
    return after - before, result


@pytest.mark.parametrize("what", ["count", "count_by", "query", "replay"])
def test_long_reads_release_the_gil(big_store, what):
    # One call each that scans all 200,000 events' data and finds nothing: with the GIL
    # held throughout, the spinning thread could not advance at all during it.
    with selflog.Store(big_store, read_only=True) as store:
        calls = {
            "count": lambda: store.count(text="no-such-text"),
            "count_by": lambda: store.count_by("source", text="no-such-text"),
            "query": lambda: next(store.query(text="no-such-text"), None),
            "replay": lambda: next(store.replay(since=2_000_000_000), None),
        }
        advanced, result = progress_during(calls[what])
    assert result in (0, {}, None)
    assert advanced > 0


FORK_CHILD_TIMEOUT = 60


def test_fork_child_gets_a_clear_error(store_dir):
    store = selflog.Store(store_dir)
    eid = store.append("t", "s", data={"before": "fork"})
    iterator = store.replay()
    busy = threading.Thread(target=lambda: [store.append("bg", "s", data={"i": i}) for i in range(20000)])
    busy.start()  # another thread is inside the store while the process forks
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running pytest's teardown
        code = 1
        try:
            outcomes = []
            for call in (lambda: store.append("t", "s"), lambda: store.get(eid), store.flush,
                         lambda: next(iterator), store.close, lambda: store.cursor("c")):
                try:
                    call()
                    outcomes.append("no error")
                except selflog.Error as e:
                    outcomes.append("forked" if "forked" in str(e) and str(os.getpid()) in str(e) else str(e))
            del store  # dropping the child's copy must not shut the parent's store down
            os.write(write_end, ",".join(outcomes).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    deadline = time.monotonic() + FORK_CHILD_TIMEOUT
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung (deadlock)")
    report = os.read(read_end, 4096).decode() if select.select([read_end], [], [], 1)[0] else ""
    os.close(read_end)
    busy.join()
    assert os.WEXITSTATUS(status) == 0
    assert report == ",".join(["forked"] * 6)
    # The parent's store still works and still holds its writer lock.
    assert store.get(eid).data == {"before": "fork"}
    with pytest.raises(selflog.LockedError):
        selflog.Store(store_dir)
    store.close()
    with selflog.Store(store_dir, read_only=True) as reader:
        assert reader.count() == 20001
