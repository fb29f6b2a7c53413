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

    def __init__(self, workspace: Path, db: str, *extra: str, lease: float | None = None) -> None:
        script = Path(sys.executable).with_name("workbench")
        cmd = [str(script)] if script.exists() else [sys.executable, "-m", "workbench.cli"]
        env = {**os.environ, "WORKBENCH_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
        if lease is not None:
            env["WORKBENCH_LEASE"] = str(lease)
        self.proc = subprocess.Popen(
            [*cmd, "serve", "-w", str(workspace), "--db", db, "--port", "0", *extra],
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

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind (its lease row stays, its runs look alive)."""
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.returncode is None:
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
        # one access line per request, in the log file and never on the terminal
        assert "HTTP/1.1" not in "".join(proc.output)
    logged = Path(os.environ["WORKBENCH_LOG"]).read_text()
    assert '"GET /api/approvals HTTP/1.1" 200' in logged
    assert TOKEN not in logged


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


# -- leases: a run belongs to a live server or to nobody ------------------------------------

LEASE = 2.0
"""Seconds: short, so that a killed server is noticed quickly (a heartbeat every 0.67 s
leaves room for a loaded machine)."""

COUNTING_WORKSPACE = """
agents:
  counter:
    model: test
    instructions: Count words.
    tools: ["tools:tally"]
approvals:
  default: ask
"""

COUNTING_TOOLS = '''
from pathlib import Path


def tally(text: str) -> int:
    """Count the words in a text (each call is noted in tally.log).

    Args:
        text: The text to count.
    """
    with open(Path(__file__).parent / "tally.log", "a") as f:
        f.write(text + "\\n")
    return len(text.split())
'''


def _stream_until(
    client: httpx.Client, path: str, stop: Any, seen: list[Event], timeout: float = 60
) -> None:
    with client.stream("GET", path, timeout=timeout) as resp:
        assert resp.status_code == 200
        for msg in iter_sse(resp):
            seen.append(msg.parsed)
            if stop(seen):
                return


def test_a_run_never_executes_twice_and_a_dead_servers_runs_are_taken_over(
    write_workspace: Any, pg_url: str
) -> None:
    """Resume on B of a run alive on A: 409, and the tool runs once. kill -9 of A: B marks
    its runs interrupted within the lease (and its streams say so), then, with
    --take-over, resumes them: a decision queued while A was dead is taken up, another is
    asked again, and each tool runs once."""
    root = write_workspace(COUNTING_WORKSPACE, {"tools.py": COUNTING_TOOLS})
    tally = root / "tally.log"
    a = ServeProcess(root, pg_url, lease=LEASE)
    b = ServeProcess(root, pg_url, "--take-over", lease=LEASE)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        with (
            httpx.Client(base_url=a.wait_ready(), headers=headers, timeout=30) as ca,
            httpx.Client(base_url=b.wait_ready(), headers=headers, timeout=30) as cb,
        ):
            # -- resume on B of a run alive on A -----------------------------------------------
            r0 = ca.post("/api/runs", json={"target": "counter", "input": "count"}).json()
            asked = wait_for(
                lambda: [p for p in cb.get("/api/approvals").json() if p["run_id"] == r0["run_id"]]
            )
            refused = cb.post(f"/api/runs/{r0['run_id']}/resume")
            assert refused.status_code == 409, refused.text
            assert (
                "alive in another process: workbench serve (pid"
                in refused.json()["error"]["message"]
            )
            assert ca.post(f"/api/runs/{r0['run_id']}/resume").status_code == 409
            decided = cb.post(
                f"/api/approvals/{r0['run_id']}/{asked[0]['call_id']}",
                json={"decision": "allow", "edited_arguments": {"text": "r0"}},
            )
            assert decided.json()["resolved"] is True, decided.text
            wait_for(lambda: ca.get(f"/api/runs/{r0['run_id']}").json()["status"] == "completed")
            log = [
                parse_event(e) for e in cb.get(f"/api/sessions/{r0['session_id']}/events").json()
            ]
            assert [e.type for e in log if e.type.startswith("run.")] == [
                "run.started",
                "run.completed",
            ]
            assert tally.read_text().split() == ["r0"]

            # -- kill -9 of A with two runs waiting ----------------------------------------------
            r1 = ca.post("/api/runs", json={"target": "counter", "input": "one"}).json()
            r2 = ca.post(
                "/api/runs",
                json={"target": "counter", "input": "two", "session_id": r1["session_id"]},
            ).json()
            ids = (r1["run_id"], r2["run_id"])

            def both_waiting() -> dict[str, Any] | None:
                found = {
                    p["run_id"]: p for p in cb.get("/api/approvals").json() if p["run_id"] in ids
                }
                return found if len(found) == 2 else None

            waiting = wait_for(both_waiting)
            seen: list[Event] = []
            watcher = threading.Thread(
                target=_stream_until,
                args=(
                    cb,
                    f"/api/sessions/{r1['session_id']}/stream",
                    lambda evs: (
                        {e.run_id for e in evs if e.type == "run.completed"}
                        >= {r1["run_id"], r2["run_id"]}
                    ),
                    seen,
                ),
                daemon=True,
            )
            watcher.start()
            a.kill()
            # a decision made on B while A is dead: queued, taken up once B runs r1
            call1 = waiting[r1["run_id"]]["call_id"]
            queued = cb.post(
                f"/api/approvals/{r1['run_id']}/{call1}",
                json={"decision": "allow", "edited_arguments": {"text": "r1"}},
            )
            assert queued.status_code == 200 and queued.json()["via"] == "database", queued.text
            # B's stream says so, within the lease (and a look every quarter of it)
            wait_for(
                lambda: (
                    {e.run_id for e in seen if e.type == "run.interrupted"}
                    >= {r1["run_id"], r2["run_id"]}
                ),
                timeout=LEASE * 3 + 5,  # the lease, a quarter of B's, and room for a loaded machine
            )
            # r2's question is asked again on B (its process is B now)
            again = wait_for(
                lambda: [
                    p
                    for p in cb.get("/api/approvals").json()
                    if p["run_id"] == r2["run_id"] and p["seq"] > waiting[r2["run_id"]]["seq"]
                ]
            )
            took = cb.post(
                f"/api/approvals/{r2['run_id']}/{again[0]['call_id']}",
                json={"decision": "allow", "edited_arguments": {"text": "r2"}},
            )
            assert took.json() == {
                "call_id": again[0]["call_id"],
                "run_id": r2["run_id"],
                "resolved": True,
                "via": "local",
            }
            watcher.join(60)
            assert not watcher.is_alive()
            for run in (r1, r2):
                info = cb.get(f"/api/runs/{run['run_id']}").json()
                assert info["status"] == "completed", info
                assert int(info["owner"].split(":")[1]) == b.proc.pid  # B ran it to the end
            log = [
                parse_event(e) for e in cb.get(f"/api/sessions/{r1['session_id']}/events").json()
            ]
            for run in (r1, r2):
                mine = [e.type for e in log if e.run_id == run["run_id"]]
                assert mine.count("run.interrupted") == 1
                assert mine.count("run.completed") == 1
                assert mine.count("tool.result") == 1
                starts = [e for e in log if e.run_id == run["run_id"] and e.type == "run.started"]
                assert [s.resumed for s in starts] == [False, True]  # type: ignore[attr-defined]
            assert_gap_free(log)
            # each tool ran once: r0 before, then r1 (queued decision) and r2 on B
            assert sorted(tally.read_text().split()) == ["r0", "r1", "r2"]
            assert cb.get("/api/approvals").json() == []
    finally:
        a.stop()
        b.stop()
    assert "Traceback" not in "".join(b.output), "".join(b.output)
