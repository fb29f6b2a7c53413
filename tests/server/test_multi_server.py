"""Two ``workbench serve`` processes sharing one PostgreSQL, and nothing else.

A run started on one is watched, approved and cancelled through the other; an SSE client
that read part of a session from one server resumes on the other with Last-Event-ID and
misses nothing.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import assert_gap_free, iter_sse, read_until
from workbench.events import TERMINAL_TYPES, Event, parse_event

pytestmark = pytest.mark.postgres

TOKEN = "shared-token"


class ServeProcess:
    """``workbench serve`` in a subprocess; its URL comes from what it prints."""

    def __init__(self, workspace: Path, db: str) -> None:
        script = Path(sys.executable).with_name("workbench")
        cmd = [str(script)] if script.exists() else [sys.executable, "-m", "workbench.cli"]
        env = {**os.environ, "WORKBENCH_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [*cmd, "serve", "-w", str(workspace), "--db", db, "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.output: list[str] = []
        self.url = ""
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                self.url = found[1]
                self._ready.set()
        self._ready.set()

    def wait_ready(self, timeout: float = 60) -> str:
        self._ready.wait(timeout)
        assert self.url, "workbench serve did not start:\n" + "".join(self.output)
        return self.url

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture
def two_servers(workspace: Path, pg_url: str) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    a, b = ServeProcess(workspace, pg_url), ServeProcess(workspace, pg_url)
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with (
            httpx.Client(base_url=a.wait_ready(), headers=headers, timeout=30) as ca,
            httpx.Client(base_url=b.wait_ready(), headers=headers, timeout=30) as cb,
        ):
            yield ca, cb
    finally:
        a.stop()
        b.stop()
    for proc in (a, b):
        # uvicorn re-raises the SIGTERM it handled, once it shut down cleanly
        assert proc.proc.returncode in (0, -signal.SIGTERM), "".join(proc.output)
        assert "Traceback" not in "".join(proc.output), "".join(proc.output)


def wait_for(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_two_servers_share_runs_approvals_cancel_and_streams(
    two_servers: tuple[httpx.Client, httpx.Client],
) -> None:
    a, b = two_servers

    # -- a run on A, approved through B, watched on B ----------------------------------
    run = a.post("/api/runs", json={"target": "helper", "input": "count"}).json()
    sid, rid = run["session_id"], run["run_id"]
    pending = wait_for(lambda: [p for p in b.get("/api/approvals").json() if p["run_id"] == rid])
    assert pending[0]["tool"] == "tools:word_count" and pending[0]["session_id"] == sid
    with b.stream("GET", f"/api/sessions/{sid}/stream") as resp:
        seen: list[Event] = []
        for msg in iter_sse(resp):
            seen.append(msg.parsed)
            if seen[-1].type == "approval.required":
                decided = b.post(
                    f"/api/approvals/{rid}/{pending[0]['call_id']}",
                    json={"decision": "allow", "edited_arguments": {"text": "one two"}},
                ).json()
                assert decided == {
                    "call_id": pending[0]["call_id"],
                    "run_id": rid,
                    "resolved": True,
                    "via": "database",
                }
            if seen[-1].type in TERMINAL_TYPES and seen[-1].run_id == rid:
                break
    assert seen[-1].type == "run.completed" and seen[-1].output == "[test model] Tool results: 2"
    assert_gap_free(seen)
    assert a.get(f"/api/runs/{rid}").json()["owner"] != ""  # A ran it
    assert b.get("/api/approvals").json() == []

    # -- a run on B, cancelled through A --------------------------------------------------
    sleeper = b.post("/api/runs", json={"target": "sleeper", "input": "rest"}).json()
    read_until(a, f"/api/runs/{sleeper['run_id']}/stream", lambda e: e.type == "tool.call")
    cancelled = a.post(f"/api/runs/{sleeper['run_id']}/cancel").json()
    assert cancelled == {
        "run_id": sleeper["run_id"],
        "cancelled": True,
        "status": "cancelled",
        "via": "database",
    }
    assert b.get(f"/api/runs/{sleeper['run_id']}").json()["status"] == "cancelled"

    # -- an SSE client moves from A to B with Last-Event-ID -------------------------------
    more = a.post("/api/runs", json={"target": "flow", "input": "go", "session_id": sid}).json()
    first = read_until(
        a, f"/api/sessions/{sid}/stream", lambda e: e.type == "workflow.step.completed"
    )
    rest = read_until(
        b,
        f"/api/sessions/{sid}/stream",
        lambda e: e.type == "run.completed" and e.run_id == more["run_id"],
        headers={"Last-Event-ID": str(first[-1].seq)},
    )
    both = first + rest
    assert_gap_free(both)
    assert both == [parse_event(e) for e in b.get(f"/api/sessions/{sid}/events").json()]

    # both servers report the same database
    for c in (a, b):
        m = c.get("/metrics").text
        assert 'workbench_runs{state="cancelled"} 1' in m
        assert "workbench_pending_approvals 0" in m
