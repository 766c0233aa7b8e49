"""The SelFlow adapter: the old configuration, the old verbs, the `processed` cursor."""

import json
import os
import stat
import subprocess
import sys
import time

import selflog
from selflog.selflow import EventPersistence, store_path


def test_old_configuration_and_verbs(tmp_path):
    daemon_config = {"enable_persistence": True, "persistence": {
        "database_path": str(tmp_path / "events.db"), "batch_size": 100, "batch_timeout": 5.0,
        "retention_days": 30, "cleanup_interval_hours": 24}}
    now = time.time()
    with EventPersistence(daemon_config) as p:
        assert p.database_path == str(tmp_path / "events.selflog")
        a = p.store_event("app_launch", "Google Chrome", action="launched", data={"pid": 1}, timestamp=now - 7200)
        b = p.store_event({"type": "file_op", "source": "Finder", "action": "modified",
                           "data": {"path": "/a"}, "timestamp": now - 60})
        ids = p.store_events([{"timestamp": now - 30, "event_type": "file_op", "source": "Terminal"}])
        assert [a, b] + ids == [1, 2, 3]
        assert [e["id"] for e in p.get_recent_events(hours=1)] == [3, 2]
        assert [e["id"] for e in p.get_recent_events(hours=3, event_type="file_op", limit=1)] == [3]
        assert [e["id"] for e in p.search_events("CHROME")] == [1]
        assert p.get_event(2)["data"] == {"path": "/a"}
        stats = p.get_statistics()
        assert stats["total_events"] == 3 and stats["unprocessed_events"] == 3
        assert [e["id"] for e in p.get_unprocessed_events(limit=2)] == [1, 2]
        p.mark_processed([1, 2])
        p.mark_processed(1)  # never moves back
        assert [e["id"] for e in p.get_unprocessed_events()] == [3]
        assert p.store_pattern("burst", 0.8, {"n": 2}, event_id=2, embryo_id="e1") == 1
        assert p.get_patterns(embryo_id="e1")[0]["pattern_data"] == {"n": 2}
        out = tmp_path / "backup.json"
        assert p.export_events(str(out), hours=24) == 3
        exported = json.loads(out.read_text())
        assert [e["id"] for e in exported] == [1, 2, 3]
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
        assert p.export_events(str(tmp_path / "x.jsonl"), event_type="file_op") == 2
    with selflog.Store(str(tmp_path / "events.selflog"), read_only=True) as store:
        assert store.cursor("processed").position == 2
    assert store_path("data/selflog") == "data/selflog"


def test_module_command_mirrors_the_old_tool(tmp_path, cli):
    db = str(tmp_path / "s")
    with EventPersistence(database_path=db) as p:
        p.store_event("app_launch", "Google Chrome", data={"n": 1})
        p.store_event("file_op", "Finder", data={"n": 2})
    run = lambda *a: subprocess.run([sys.executable, "-m", "selflog.selflow", "--db", db, *a],
                                    capture_output=True, text=True, check=True).stdout
    assert json.loads(run("stats"))["total_events"] == 2
    assert [json.loads(l)["source"] for l in run("list", "--limit", "5").splitlines()] == ["Finder", "Google Chrome"]
    listed = [json.loads(l) for l in run("search", "chrome").splitlines()]
    assert listed == [json.loads(l) for l in cli("inspect", "search", "chrome", "--store", db, "--json").splitlines()]
    assert "exported 2 events" in run("export", str(tmp_path / "e.json"))
