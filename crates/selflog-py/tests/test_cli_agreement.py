"""Queries, replays, counts, stats and patterns give what the `selflog` CLI gives on the
same store: the same events in the same order, key for key."""

import json
import random

import pytest

import selflog

TYPES = ["file_op", "app_launch", "window_change", "clipboard"]
SOURCES = ["Finder", "Google Chrome", "Terminal", "Visual Studio Code", "Dock"]
ACTIONS = [None, "modified", "opened", "closed"]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("cli") / "store")
    rng = random.Random(22)
    events = []
    for i in range(3000):
        # Out of order timestamps, ties included, so ordering by (timestamp, id) matters.
        ts = 1_700_000_000 + rng.randrange(0, 5000) + rng.choice([0, 0.5, 0.123456])
        events.append({
            "timestamp": ts,
            "event_type": rng.choice(TYPES),
            "source": rng.choice(SOURCES),
            "action": rng.choice(ACTIONS),
            "data": {"i": i, "path": f"/Users/me/doc{i % 97}.txt",
                     "note": rng.choice(["CHROME tab", "plain", "ünïcode", "x" * 1500])},
        })
    with selflog.Store(path) as store:
        store.append_many(events)
        store.record_pattern("burst", 0.9, {"n": 3}, event_id=5, embryo_id="e1")
        store.record_pattern("habit", 0.4, ["a"], embryo_id="e2")
        store.cursor("learner").commit(1234)
    return path


def lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


CASES = [
    ([], {}),
    (["--limit", "100000"], {}),
    (["--oldest-first", "--limit", "700"], {"oldest_first": True}),
    (["--type", "file_op", "--type", "clipboard", "--limit", "100000"], {"types": ["file_op", "clipboard"]}),
    (["--source", "Google Chrome", "--limit", "400"], {"sources": "Google Chrome"}),
    (["--action", "modified", "--limit", "100000"], {"action": "modified"}),
    (["--since", "1700001000", "--until", "1700002000.5", "--limit", "100000"],
     {"since": 1_700_001_000, "until": 1_700_002_000.5}),
    (["--since", "1700003000", "--type", "app_launch", "--source", "Dock", "--oldest-first", "--limit", "100000"],
     {"since": 1_700_003_000.0, "types": "app_launch", "sources": ["Dock"], "oldest_first": True}),
]


@pytest.mark.parametrize("args,kwargs", CASES)
def test_query_is_inspect_list(cli, store_path, args, kwargs):
    want = lines(cli("inspect", "list", "--store", store_path, "--json", *args))
    limit = int(args[args.index("--limit") + 1]) if "--limit" in args else 50
    with selflog.Store(store_path, read_only=True) as store:
        got = [e.to_dict() for e in store.query(limit=limit, **kwargs)]
    assert len(got) > 0 and got == want


@pytest.mark.parametrize("text,args,kwargs", [
    ("chrome", ["--limit", "100000"], {}),
    ("ÜNÏ", ["--limit", "100000"], {}),  # only ASCII letters fold: finds nothing
    ("doc5", ["--type", "file_op", "--oldest-first", "--limit", "30"], {"types": "file_op", "oldest_first": True}),
    ("opened", [], {}),
])
def test_query_text_is_inspect_search(cli, store_path, text, args, kwargs):
    want = lines(cli("inspect", "search", text, "--store", store_path, "--json", *args))
    limit = int(args[args.index("--limit") + 1]) if "--limit" in args else 10
    with selflog.Store(store_path, read_only=True) as store:
        got = [e.to_dict() for e in store.query(text=text, limit=limit, **kwargs)]
    assert got == want


@pytest.mark.parametrize("args,kwargs", [([], {}), (["--from-id", "2990"], {"from_id": 2990}),
                                         (["--cursor", "learner"], {"cursor": "learner"})])
def test_replay_is_selflog_replay(cli, store_path, args, kwargs):
    want = lines(cli("replay", "--store", store_path, *args))
    with selflog.Store(store_path, read_only=True) as store:
        got = [e.to_dict() for e in store.replay(**kwargs)]
    assert got == want and len(got) > 0


def test_stats_is_inspect_stats_json(cli, store_path):
    want = json.loads(cli("inspect", "stats", "--store", store_path, "--json"))
    with selflog.Store(store_path, read_only=True) as store:
        got = store.stats()
        assert got == want
        assert store.count_by("event_type") == want["events_by_type"]
        assert sum(store.count_by("source").values()) == want["total_events"]
        by_action = store.count_by("action")
        assert set(by_action) == {"modified", "opened", "closed"}
        without_action = sum(1 for e in store.replay() if e.action is None)
        assert sum(by_action.values()) == want["total_events"] - without_action > 0


def test_patterns_are_inspect_patterns(cli, store_path):
    want = lines(cli("inspect", "patterns", "--store", store_path, "--json"))
    with selflog.Store(store_path, read_only=True) as store:
        assert store.patterns() == want
        assert [p["pattern_type"] for p in store.patterns(min_confidence=0.5)] == ["burst"]
        assert [p["id"] for p in store.patterns(event_id=5)] == [1]
        assert [p["pattern_data"] for p in store.patterns(embryo_id="e2")] == [["a"]]


def test_get_is_inspect_get(cli, store_path):
    with selflog.Store(store_path, read_only=True) as store:
        for eid in (1, 1500, 3000):
            assert store.get(eid).to_dict() == json.loads(cli("inspect", "get", str(eid), "--store", store_path, "--json"))


def test_append_many_hashes_are_selflog_ingests(cli, tmp_path):
    # The content hash covers the data's JSON text: events appended from Python must get
    # the hash `selflog ingest` gives the same events written compactly as JSON Lines.
    # (Floats that Python writes with an exponent, 1e+300, the escapes \b and \f, and
    # timestamps finer than a microsecond are converted differently by the two, so their
    # hashes differ; these events have none of them.)
    rng = random.Random(7)
    events = []
    for i in range(2500):
        data = rng.choice([
            {"path": f"/Users/me/ünï/doc{i}.txt", "size": rng.randrange(-2**40, 2**40), "ok": i % 2 == 0,
             "tags": ["a", None, 1.5, -0.25, 123456.125], "q": 'say "hi"\\ \n\t\x01'},
            [i, "x" * rng.randrange(0, 40), {"nested": {"deep": [[]]}}],
            "plain text " * rng.randrange(0, 200),
            rng.randrange(-10**20, 10**20),
            None,
        ])
        events.append({"timestamp": 1_700_000_000 + i / 8, "event_type": rng.choice(TYPES),
                       "source": rng.choice(SOURCES), "action": rng.choice(ACTIONS), "data": data})
    jsonl = tmp_path / "events.jsonl"
    with open(jsonl, "w", encoding="utf-8") as f:
        for e in events:
            f.write(json.dumps(e, separators=(",", ":"), ensure_ascii=False) + "\n")
    cli_store, py_store = str(tmp_path / "cli"), str(tmp_path / "py")
    cli("ingest", str(jsonl), "--store", cli_store)
    with selflog.Store(py_store) as store:
        ids = store.append_many(events)
        got = [(e.id, e.hash, e.data_json) for e in store.replay()]
    want = [(e["id"], e["hash"]) for e in lines(cli("replay", "--store", cli_store))]
    assert [(i, h) for i, h, _ in got] == want and len(ids) == len(events)
