"""Round trips of every field (unicode, large and nested data, every JSON type),
duplicates, append_many, get, to_dict, and the Event object's behaviour."""

import json
import time

import pytest

import selflog


def test_every_field_round_trips(store_dir):
    data = {
        "path": "/Users/ä/📁 notes.md",
        "nested": {"list": [1, -2, 3.25, None, True, False, "x"], "empty": {}, "tuple": (1, 2)},
        "big": 2**70,
        "ctrl": "tab\tnew\nline\"quote\\back\x01",
        1: "int key",
    }
    ts = 1_732_460_000.123456
    with selflog.Store(store_dir) as store:
        eid = store.append("file_op", "Fínder ✓", action="módified", data=data, timestamp=ts)
        ev = store.get(eid)
    assert ev.id == eid == 1
    assert ev.timestamp == ts
    assert (ev.event_type, ev.source, ev.action) == ("file_op", "Fínder ✓", "módified")
    expected = json.loads(json.dumps(data))  # tuples become lists, int keys strings
    assert ev.data == expected
    assert json.loads(ev.data_json) == expected
    assert len(ev.hash) == 16 and int(ev.hash, 16) >= 0
    d = ev.to_dict()
    assert d == {"id": 1, "timestamp": ts, "event_type": "file_op", "action": "módified",
                 "source": "Fínder ✓", "data": expected, "hash": ev.hash}


@pytest.mark.parametrize("value", ["a string", 42, -1.5, True, False, [1, "two"], {"k": None}])
def test_every_json_type_is_data(store_dir, value):
    with selflog.Store(store_dir) as store:
        eid = store.append("t", "s", data=value, timestamp=1_700_000_000.0)
        got = store.get(eid)
        assert got.data == value and type(got.data) is type(value)


def test_no_action_and_no_data_are_none(store_dir):
    with selflog.Store(store_dir) as store:
        ev = store.get(store.append("t", "s"))
        assert ev.action is None and ev.data is None and ev.data_json is None
        assert abs(ev.timestamp - time.time()) < 60


def test_large_data_round_trips_across_reopen(store_dir):
    big = {"blob": "x" * (3 << 20), "text": "é" * 100_000}  # compressed (over 1 KiB)
    with selflog.Store(store_dir) as store:
        eid = store.append("clipboard", "Terminal", data=big)
    with selflog.Store(store_dir, read_only=True) as store:
        assert store.get(eid).data == big
        assert store.stats()["compressed_events"] == 1


def test_too_large_data_is_refused(store_dir):
    with selflog.Store(store_dir) as store:
        with pytest.raises(selflog.InvalidEventError, match="over the limit"):
            store.append("t", "s", data="x" * (5 << 20))
        assert store.count() == 0


def test_duplicates_return_the_original_id(store_dir):
    with selflog.Store(store_dir) as store:
        a = store.append("t", "s", action="a", data={"k": 1}, timestamp=1_700_000_000.5)
        b = store.append("t", "s", action="a", data={"k": 1}, timestamp=1_700_000_000.5)
        c = store.append("t", "s", action="a", data={"k": 2}, timestamp=1_700_000_000.5)
        assert a == b == 1 and c == 2
        ids = store.append_many([{"timestamp": 1_700_000_000.5, "event_type": "t", "source": "s",
                                  "action": "a", "data": {"k": 1}}])
        assert ids == [1]
        assert store.count() == 2
        assert store.stats()["duplicates_dropped"] == 2


def test_append_many_takes_json_lines_fields_and_to_dict(store_dir):
    events = [{"timestamp": 1_700_000_000 + i, "event_type": "app_launch", "source": f"App{i % 3}",
               "action": None if i % 2 else "launched", "data": {"i": i}} for i in range(3000)]
    events.append({"timestamp": "2024-11-24T15:00:00Z", "event_type": "x", "source": "y"})
    with selflog.Store(store_dir) as store:
        ids = store.append_many(iter(events))
        assert ids == list(range(1, 3002))
        again = [store.get(i).to_dict() for i in (1, 2, 3001)]
        assert again[2]["timestamp"] == 1_732_460_400.0
    other = store_dir + "-copy"
    with selflog.Store(other) as copy:
        # An export's dicts (with id and hash) append again to the same events.
        assert copy.append_many(again) == [1, 2, 3]
        assert [e.hash for e in copy.replay()] == [d["hash"] for d in again]


def test_append_many_stops_at_the_bad_event(store_dir):
    good = {"timestamp": 1_700_000_000.0, "event_type": "t", "source": "s"}
    with selflog.Store(store_dir) as store:
        with pytest.raises(selflog.InvalidEventError, match="event 2 of the iterable") as info:
            store.append_many([good, dict(good, timestamp=1_700_000_001.0), {"event_type": "t"}, good])
        assert info.value.ids == [1, 2]
        assert store.count() == 2


def test_event_equality_repr_and_lazy_data(store_dir):
    with selflog.Store(store_dir) as store:
        eid = store.append("t", "s", data={"a": [1]})
        a, b = store.get(eid), store.get(eid)
        assert a == b and hash(a) == hash(b) and a != "x"
        assert a.data is a.data  # parsed once, then kept
        assert "selflog.Event(id=1" in repr(a)
        assert store.get(999) is None and store.get(0) is None and store.get(-5) is None


def test_timestamps_accept_datetimes_and_rfc3339(store_dir):
    import datetime as dt
    with selflog.Store(store_dir) as store:
        when = dt.datetime(2024, 11, 24, 15, 0, tzinfo=dt.timezone.utc)
        a = store.append("t", "s", timestamp=when)
        b = store.append("t", "s2", timestamp="2024-11-24T15:00:00Z")
        assert store.get(a).timestamp == store.get(b).timestamp == 1_732_460_400.0


def many(n, start=0):
    return [{"timestamp": 1_700_000_000 + i, "event_type": "t", "source": "s", "data": {"i": i}}
            for i in range(start, start + n)]


def test_append_many_over_many_chunks_stops_at_the_bad_event(store_dir):
    # Chunks of 1024 are converted by the calling thread and appended by a helper: a bad
    # event found by either side (a missing field here, a far-future timestamp there)
    # leaves exactly the events before it stored.
    with selflog.Store(store_dir) as store:
        bad_dict = many(2500) + [{"event_type": "t"}] + many(3000, start=2500)
        with pytest.raises(selflog.InvalidEventError, match="event 2500 of the iterable") as info:
            store.append_many(bad_dict)
        assert info.value.ids == list(range(1, 2501))
        far = many(3000, start=10_000) + [dict(many(1)[0], timestamp=time.time() + 9 * 86400)] + many(10)
        with pytest.raises(selflog.InvalidEventError, match="event 3000 of the iterable") as info:
            store.append_many(far)
        assert info.value.ids == list(range(2501, 5501))
        assert "timestamp" in str(info.value.__cause__)
        assert store.count() == 5500
        assert [e.data["i"] for e in store.replay(from_id=2499)][:4] == [2498, 2499, 10_000, 10_001]


def test_append_many_passes_on_the_iterables_own_error(store_dir):
    def events():
        yield from many(5000)
        raise KeyError("from the generator")
    with selflog.Store(store_dir) as store:
        with pytest.raises(KeyError, match="from the generator") as info:
            store.append_many(events())
        assert info.value.ids == list(range(1, 5001))
        assert store.count() == 5000
        assert store.append_many(iter([])) == []


def json_string(s):
    """The JSON text selflog writes for a str: quotes, backslashes and control characters
    escaped (\\n, \\r, \\t short, the others as \\u00XX), everything else as it is."""
    short = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return '"' + "".join(short.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 else c) for c in s) + '"'


def test_data_text_escapes_every_special_byte_at_every_place(store_dir):
    # The content hash covers the data's JSON text, so the text must not change with how
    # the writer scans strings (in blocks of bytes): every byte that needs escaping, at
    # every place of strings shorter and longer than a block, next to multi-byte UTF-8.
    specials = [chr(c) for c in range(0x20)] + ['"', "\\"]
    strings = [""]
    for length in range(1, 20):
        for at in range(length):
            for special in (specials if at in (0, length - 1, 7, 8) else ['"', "\x1f"]):
                strings.append("a" * at + special + "é" * (length - at - 1))
    strings += ["x" * n for n in range(40)] + ["\x7f ä 📁 \u2028", "é" * 9 + "\\"]
    with selflog.Store(store_dir) as store:
        eid = store.append("t", "s", data=strings, timestamp=1_700_000_000.0)
        ev = store.get(eid)
    assert ev.data_json == "[" + ",".join(json_string(s) for s in strings) + "]"
    assert ev.data == strings


def test_event_names_survive_more_distinct_names_than_are_shared(store_dir):
    # An iterator shares one str per distinct name up to a limit (4096) and copies the
    # rest into each event: both kinds of name must come back right, in every chunk.
    events = [{"timestamp": 1_700_000_000 + i, "event_type": f"type{i % 7}", "source": f"source {i}",
               "action": None if i % 3 else f"act{i % 5000}", "data": {"i": i}} for i in range(6000)]
    with selflog.Store(store_dir) as store:
        store.append_many(events)
        got = [(e.event_type, e.source, e.action, e.data["i"]) for e in store.query(oldest_first=True)]
        again = [(e.source, e.id) for e in store.replay(from_id=5000)]
    assert got == [(e["event_type"], e["source"], e["action"], e["data"]["i"]) for e in events]
    assert again == [(f"source {i}", i + 1) for i in range(4999, 6000)]


def test_events_from_get_query_and_replay_are_equal(store_dir):
    # `get` builds an Event's names afresh, an iterator shares them between its events:
    # equality, hashing and every field must not depend on which one made the event.
    with selflog.Store(store_dir) as store:
        store.append("t", "Fínder", action="opened", data={"k": [1]}, timestamp=1_700_000_000.0)
        store.append("t", "Fínder", timestamp=1_700_000_001.0)
        from_query = list(store.query(oldest_first=True))
        from_replay = list(store.replay())
        from_get = [store.get(1), store.get(2)]
    assert from_query == from_replay == from_get
    assert {hash(e) for e in from_query} == {hash(e) for e in from_get}
    assert from_query[0] != from_query[1] and from_get[0] != from_replay[1]
    assert [e.to_dict() for e in from_query] == [e.to_dict() for e in from_get]
    assert repr(from_query[0]) == repr(from_get[0])
    assert from_query[0].source is from_query[1].source  # one str per name and iterator
