"""Shared fixtures of the binding's tests: a fresh store directory, the `selflog` CLI
binary (to compare answers with), and a helper to run a Python child process."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


def cli_binary() -> pathlib.Path:
    """The `selflog` binary: $SELFLOG_BIN, else the newest of target/{debug,release}/selflog,
    built with `cargo build -p selflog-cli` when neither exists."""
    if os.environ.get("SELFLOG_BIN"):
        return pathlib.Path(os.environ["SELFLOG_BIN"])
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    found = [p for p in (target / "debug" / "selflog", target / "release" / "selflog") if p.exists()]
    if not found:
        subprocess.run(["cargo", "build", "-q", "-p", "selflog-cli"], cwd=ROOT, check=True)
        found = [target / "debug" / "selflog"]
    return max(found, key=lambda p: p.stat().st_mtime)


@pytest.fixture(scope="session")
def cli():
    binary = cli_binary()

    def run(*args: str) -> str:
        out = subprocess.run([str(binary), *args], capture_output=True, text=True)
        if args[:2] == ("inspect", "search") and out.returncode == 1 and not out.stderr:
            # Like grep, `inspect search` exits 1, printing nothing, when nothing matched.
            assert out.stdout == ""
            return out.stdout
        assert out.returncode == 0, f"selflog {' '.join(args)}: {out.stderr}"
        return out.stdout

    return run


@pytest.fixture
def store_dir(tmp_path):
    return str(tmp_path / "store")


def python_child(code: str, *args: str, **kwargs) -> subprocess.Popen:
    """Starts `python -c code args...` with this interpreter (so it imports the same
    selflog), stdout piped, line-buffered."""
    return subprocess.Popen(
        [sys.executable, "-u", "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )
