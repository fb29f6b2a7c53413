"""The REST API: catalogue, runs, sessions, approvals, errors, limits, metrics."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest

from tests.server.conftest import MakeServer, assert_gap_free, iter_sse, read_until
from workbench.events import TERMINAL_TYPES, parse_event
from workbench.server import ServerConfig, ServerThread


def wait_for(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def run_to_end(
    client: httpx.Client, target: str, text: str = "hello", **extra: Any
) -> dict[str, Any]:
    started = client.post("/api/runs", json={"target": target, "input": text, **extra})
    assert started.status_code == 202, started.text
    body = started.json()
    read_until(
        client,
        f"/api/runs/{body['run_id']}/stream",
        lambda e: e.type in TERMINAL_TYPES and e.run_id == body["run_id"],
    )
    run: dict[str, Any] = client.get(f"/api/runs/{body['run_id']}").json()
    return run


def pending_for(client: httpx.Client, run_id: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        return next((a for a in client.get("/api/approvals").json() if a["run_id"] == run_id), None)

    found: dict[str, Any] = wait_for(find)
    return found


# -- server -----------------------------------------------------------------------------------


def test_health_ready_and_openapi(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["status"] == "ready" and ready["runs_in_flight"] == 0
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    for path in (
        "/api/runs",
        "/api/runs/{run_id}",
        "/api/runs/{run_id}/cancel",
        "/api/runs/{run_id}/resume",
        "/api/runs/{run_id}/stream",
        "/api/sessions",
        "/api/sessions/{session_id}",
        "/api/sessions/{session_id}/events",
        "/api/sessions/{session_id}/export",
        "/api/sessions/{session_id}/stream",
        "/api/approvals",
        "/api/approvals/{run_id}/{call_id}",
        "/api/approvals/stream",
        "/api/catalogue",
        "/api/tools",
        "/v1/chat/completions",
        "/v1/models",
        "/metrics",
    ):
        assert path in paths, path


def test_catalogue_workspace_and_graph(client: httpx.Client, workspace: Any) -> None:
    cat = client.get("/api/catalogue").json()
    assert [a["name"] for a in cat["agents"]] == ["chat", "helper", "sleeper"]
    assert cat["agents"][0]["description"] == "Says back what it was told."
    assert cat["teams"] == [
        {"name": "duo", "description": "", "mode": "sequential", "members": ["chat", "helper"]}
    ]
    assert cat["workflows"][0]["name"] == "flow" and cat["workflows"][0]["steps"] == [
        "first",
        "second",
    ]
    ws = client.get("/api/workspace").json()
    assert ws["root"] == str(workspace) and set(ws["agents"]) == {"chat", "helper", "sleeper"}
    graph = client.get("/api/workflows/flow/graph").json()
    assert [n["path"] for n in graph["nodes"]] == ["first", "second"]
    assert graph["edges"] == [{"source": "first", "target": "second", "label": "", "back": False}]
    assert client.get("/api/workflows/nope/graph").status_code == 404
    tools = {t["name"]: t for t in client.get("/api/tools").json()}
    assert tools["tools:nap"]["policy"] == "allow"
    assert tools["tools:word_count"]["policy"] == "ask"


# -- runs ------------------------------------------------------------------------------------------


def test_a_run_starts_at_once_and_its_stream_ends_with_it(client: httpx.Client) -> None:
    t0 = time.perf_counter()
    started = client.post("/api/runs", json={"target": "chat", "input": "hi there"})
    assert started.status_code == 202
    assert time.perf_counter() - t0 < 2
    body = started.json()
    assert body["run_id"].startswith("r_") and body["session_id"].startswith("s_")
    assert body["after_seq"] == 0
    events = read_until(client, f"/api/runs/{body['run_id']}/stream", lambda e: False)
    assert events[0].type == "run.started" and events[-1].type == "run.completed"
    assert_gap_free(events)
    assert events[-1].output == "[test model] You said: hi there"
    run = client.get(f"/api/runs/{body['run_id']}").json()
    assert run["status"] == "completed" and run["output"] == "[test model] You said: hi there"
    assert run["target"] == "chat" and run["target_kind"] == "agent"


def test_a_team_run_stream_includes_its_members(client: httpx.Client) -> None:
    body = client.post("/api/runs", json={"target": "duo", "input": "go"}).json()
    # the helper member asks for approval: decide it while the stream is read
    with client.stream("GET", f"/api/runs/{body['run_id']}/stream") as resp:
        runs = set()
        for msg in iter_sse(resp):
            ev = msg.parsed
            runs.add(ev.run_id)
            if ev.type == "approval.required":
                r = client.post(
                    f"/api/approvals/{ev.run_id}/{ev.call_id}", json={"decision": "allow"}
                )
                assert r.json()["resolved"] is True
            if ev.type in TERMINAL_TYPES and ev.run_id == body["run_id"]:
                break
    assert ev.type == "run.completed"
    assert len(runs) == 3  # the team and its two members
    session = client.get(f"/api/sessions/{body['session_id']}").json()
    assert {r["target"] for r in session["runs"]} == {"duo", "chat", "helper"}
    assert sum(r["parent_run_id"] is None for r in session["runs"]) == 1


def test_a_run_continues_a_session(client: httpx.Client) -> None:
    first = run_to_end(client, "chat", "one")
    again = client.post(
        "/api/runs", json={"target": "chat", "input": "two", "session_id": first["session_id"]}
    ).json()
    assert again["session_id"] == first["session_id"] and again["after_seq"] > 0
    events = read_until(
        client,
        f"/api/sessions/{first['session_id']}/stream",
        lambda e: e.type == "run.completed" and e.run_id == again["run_id"],
        params={"after": again["after_seq"]},
    )
    assert events[0].seq == again["after_seq"] + 1 and events[0].run_id == again["run_id"]


def test_unknown_targets_models_and_kinds_are_refused(client: httpx.Client) -> None:
    r = client.post("/api/runs", json={"target": "nobody", "input": "x"})
    assert r.status_code == 404
    assert r.json()["error"] == {
        "type": "not_found",
        "message": "no agent, team or workflow named 'nobody'",
    }
    assert (
        client.post("/api/runs", json={"target": "chat", "input": "x", "kind": "team"}).status_code
        == 404
    )
    r = client.post("/api/runs", json={"target": "chat", "input": "x", "model": "openai/gpt-x"})
    assert r.status_code == 400 and "unknown model" in r.json()["error"]["message"]
    assert client.get("/api/runs/r_nope").status_code == 404
    assert client.post("/api/runs/r_nope/cancel").status_code == 404
    assert client.post("/api/runs/r_nope/resume").status_code == 404
    assert client.get("/api/runs/r_nope/stream").status_code == 404
    assert client.get("/api/sessions").json() == []  # nothing ran


def test_cancel_a_run_in_flight(client: httpx.Client) -> None:
    body = client.post("/api/runs", json={"target": "sleeper", "input": "rest"}).json()
    read_until(client, f"/api/runs/{body['run_id']}/stream", lambda e: e.type == "tool.call")
    r = client.post(f"/api/runs/{body['run_id']}/cancel").json()
    assert r == {"run_id": body["run_id"], "cancelled": True, "status": "cancelled", "via": "local"}
    events = client.get(f"/api/sessions/{body['session_id']}/events").json()
    assert events[-1]["type"] == "run.cancelled"
    again = client.post(f"/api/runs/{body['run_id']}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["error"]["message"]


def test_resume_refuses_runs_that_ended(client: httpx.Client) -> None:
    run = run_to_end(client, "chat")
    r = client.post(f"/api/runs/{run['id']}/resume")
    assert r.status_code == 409 and "already completed" in r.json()["error"]["message"]


@pytest.mark.parametrize("slow_store", [False, True])
def test_resume_a_run_whose_process_died(
    make_server: MakeServer, db_url: str, monkeypatch: pytest.MonkeyPatch, slow_store: bool
) -> None:
    """``after_seq`` is the last event before the resumed run's: with a store slow to
    answer (a loaded machine), the run's own run.started must not slip in before it."""
    from workbench.events import MessageCompleted, RunStarted
    from workbench.store import Store

    if slow_store:
        last_seq = Store.last_seq

        def slow(self: Store, session_id: str) -> int:
            time.sleep(0.3)
            return last_seq(self, session_id)

        monkeypatch.setattr(Store, "last_seq", slow)

    with Store.open(db_url) as store:  # a run that started and whose process vanished
        sid = store.create_session().id
        for ev in (
            RunStarted(
                session_id=sid,
                run_id="r_dead00000001",
                source="chat",
                target_kind="agent",
                target="chat",
                input="again",
            ),
            MessageCompleted(
                session_id=sid,
                run_id="r_dead00000001",
                source="chat",
                message_id="m1",
                role="user",
                content="again",
            ),
        ):
            store.append_sync(ev)
        with store.engine.begin() as conn:
            from sqlalchemy import text

            conn.execute(text("UPDATE runs SET status = 'interrupted'"))
    srv = make_server()
    with httpx.Client(base_url=srv.url) as client:
        r = client.post("/api/runs/r_dead00000001/resume")
        assert r.status_code == 202, r.text
        assert r.json()["after_seq"] == 2
        events = read_until(
            client,
            "/api/runs/r_dead00000001/stream",
            lambda e: e.type in TERMINAL_TYPES,
            params={"after": 2},
        )
        assert events[0].type == "run.started" and events[0].resumed is True
        assert events[-1].type == "run.completed"


def test_an_interrupted_run_can_be_cancelled_and_its_question_waits_for_a_resume(
    make_server: MakeServer, db_url: str
) -> None:
    """Nobody runs an interrupted run: cancel ends it in the log at once (no process to
    ask), and a decision on its question says to resume it first."""
    from sqlalchemy import text

    from workbench.events import ApprovalRequired, RunStarted
    from workbench.store import Store

    with Store.open(db_url) as store:
        sid = store.create_session().id
        common = {"session_id": sid, "run_id": "r_gone00000001", "source": "helper"}
        store.append_sync(RunStarted(**common, target_kind="agent", target="helper", input="count"))
        store.append_sync(
            RunStarted(
                **{**common, "run_id": "r_gone00000002"},
                parent_run_id="r_gone00000001",
                target_kind="agent",
                target="chat",
                input="sub",
            )
        )
        store.append_sync(
            ApprovalRequired(
                **common, call_id="call_1", tool="tools:word_count", arguments={}, reason="ask"
            )
        )
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE runs SET status = 'interrupted'"))
    srv = make_server()
    with httpx.Client(base_url=srv.url) as client:
        assert client.get("/api/approvals").json() == []
        r = client.post("/api/approvals/r_gone00000001/call_1", json={"decision": "allow"})
        assert r.status_code == 409 and "is interrupted" in r.json()["error"]["message"]
        r = client.post("/api/runs/r_gone00000001/cancel")
        assert r.json() == {
            "run_id": "r_gone00000001",
            "cancelled": True,
            "status": "cancelled",
            "via": "local",
        }
        events = client.get(f"/api/sessions/{sid}/events").json()
        ends = [(e["run_id"], e["type"], e["reason"]) for e in events[3:]]
        assert ends == [
            ("r_gone00000002", "run.cancelled", "cancelled while interrupted"),
            ("r_gone00000001", "run.cancelled", "cancelled while interrupted"),
        ]
        r = client.post("/api/runs/r_gone00000001/resume")
        assert r.status_code == 409 and "already cancelled" in r.json()["error"]["message"]


# -- sessions ----------------------------------------------------------------------------------------


def test_sessions_list_get_events_export_delete(client: httpx.Client) -> None:
    a = run_to_end(client, "chat", "first")
    b = run_to_end(client, "chat", "second")
    listed = client.get("/api/sessions").json()
    assert [s["id"] for s in listed] == [b["session_id"], a["session_id"]]
    assert listed[0]["title"] == "second" and listed[0]["run_count"] == 1
    assert [
        s["id"] for s in client.get("/api/sessions", params={"limit": 1, "offset": 1}).json()
    ] == [a["session_id"]]
    detail = client.get(f"/api/sessions/{a['session_id']}").json()
    assert detail["session"]["id"] == a["session_id"] and detail["runs"][0]["id"] == a["id"]
    events = [parse_event(e) for e in client.get(f"/api/sessions/{a['session_id']}/events").json()]
    assert_gap_free(events)
    later = client.get(f"/api/sessions/{a['session_id']}/events", params={"after": 3}).json()
    assert [e["seq"] for e in later] == [e.seq for e in events[3:]]
    export = client.get(f"/api/sessions/{a['session_id']}/export")
    assert export.headers["content-type"].startswith("application/x-ndjson")
    assert f'filename="{a["session_id"]}.jsonl"' in export.headers["content-disposition"]
    lines = export.text.splitlines()
    assert [parse_event(line) for line in lines] == events
    assert client.delete(f"/api/sessions/{a['session_id']}").json() == {"deleted": a["session_id"]}
    assert client.get(f"/api/sessions/{a['session_id']}").status_code == 404
    assert client.delete(f"/api/sessions/{a['session_id']}").status_code == 404


def test_a_session_with_a_live_run_is_not_deleted(client: httpx.Client) -> None:
    body = client.post("/api/runs", json={"target": "sleeper", "input": "rest"}).json()
    read_until(client, f"/api/runs/{body['run_id']}/stream", lambda e: e.type == "tool.call")
    r = client.delete(f"/api/sessions/{body['session_id']}")
    assert r.status_code == 409 and body["run_id"] in r.json()["error"]["message"]
    client.post(f"/api/runs/{body['run_id']}/cancel")


# -- approvals ----------------------------------------------------------------------------------------


def test_approve_once(client: httpx.Client) -> None:
    body = client.post("/api/runs", json={"target": "helper", "input": "count"}).json()
    pending = pending_for(client, body["run_id"])
    assert pending["tool"] == "tools:word_count" and pending["arguments"] == {"text": "test"}
    assert pending["session_id"] == body["session_id"] and pending["source"] == "helper"
    r = client.post(
        f"/api/approvals/{pending['run_id']}/{pending['call_id']}", json={"decision": "allow"}
    )
    assert r.json() == {
        "call_id": pending["call_id"],
        "run_id": body["run_id"],
        "resolved": True,
        "via": "local",
    }
    events = read_until(
        client, f"/api/runs/{body['run_id']}/stream", lambda e: e.type in TERMINAL_TYPES
    )
    resolved = next(e for e in events if e.type == "approval.resolved")
    assert resolved.decision == "allow" and resolved.decided_by == "user"
    assert events[-1].output == "[test model] Tool results: 1"
    assert client.get("/api/approvals").json() == []


def test_deny_with_a_note(client: httpx.Client) -> None:
    body = client.post("/api/runs", json={"target": "helper", "input": "count"}).json()
    pending = pending_for(client, body["run_id"])
    client.post(
        f"/api/approvals/{pending['run_id']}/{pending['call_id']}",
        json={"decision": "deny", "note": "not today", "decided_by": "reviewer"},
    )
    events = read_until(
        client, f"/api/runs/{body['run_id']}/stream", lambda e: e.type in TERMINAL_TYPES
    )
    resolved = next(e for e in events if e.type == "approval.resolved")
    assert (
        resolved.decision,
        resolved.note,
        resolved.decided_by,
    ) == (
        "deny",
        "not today",
        "reviewer",
    )
    result = next(e for e in events if e.type == "tool.result")
    assert "not today" in (result.error or "")


def test_edit_the_arguments_then_allow(client: httpx.Client) -> None:
    body = client.post("/api/runs", json={"target": "helper", "input": "count"}).json()
    pending = pending_for(client, body["run_id"])
    client.post(
        f"/api/approvals/{pending['run_id']}/{pending['call_id']}",
        json={"decision": "allow", "edited_arguments": {"text": "one two three"}},
    )
    events = read_until(
        client, f"/api/runs/{body['run_id']}/stream", lambda e: e.type in TERMINAL_TYPES
    )
    call = next(e for e in events if e.type == "tool.call")
    assert call.arguments == {"text": "one two three"}
    assert next(e for e in events if e.type == "tool.result").output == "3"


def test_allow_for_the_session_then_always(client: httpx.Client) -> None:
    body = client.post("/api/runs", json={"target": "helper", "input": "count"}).json()
    pending = pending_for(client, body["run_id"])
    client.post(
        f"/api/approvals/{pending['run_id']}/{pending['call_id']}",
        json={"decision": "allow", "scope": "session"},
    )
    read_until(client, f"/api/runs/{body['run_id']}/stream", lambda e: e.type in TERMINAL_TYPES)
    # the same session asks no more
    again = run_to_end(client, "helper", "count again", session_id=body["session_id"])
    assert again["status"] == "completed"
    # a new session asks; 'always' saves a rule, after which nobody is asked
    other = client.post("/api/runs", json={"target": "helper", "input": "count"}).json()
    pending = pending_for(client, other["run_id"])
    client.post(
        f"/api/approvals/{pending['run_id']}/{pending['call_id']}",
        json={"decision": "allow", "scope": "always"},
    )
    read_until(client, f"/api/runs/{other['run_id']}/stream", lambda e: e.type in TERMINAL_TYPES)
    rules = client.get("/api/rules").json()
    assert [(r["tool"], r["decision"], r["scope"]) for r in rules] == [
        ("tools:word_count", "allow", "always")
    ]
    assert run_to_end(client, "helper", "no questions")["status"] == "completed"
    # removed over the server: the next run asks again
    assert client.delete(f"/api/rules/{rules[0]['id']}").json() == {"deleted": rules[0]["id"]}
    assert client.delete(f"/api/rules/{rules[0]['id']}").status_code == 404
    assert client.get("/api/rules").json() == []
    asked = client.post("/api/runs", json={"target": "helper", "input": "count"}).json()
    assert pending_for(client, asked["run_id"])["tool"] == "tools:word_count"
    client.post(f"/api/runs/{asked['run_id']}/cancel")


def test_bad_decisions_are_refused(client: httpx.Client) -> None:
    r = client.post("/api/approvals/r_x/call_x", json={"decision": "allow"})
    assert r.status_code == 404 and "r_x" in r.json()["error"]["message"]
    r = client.post("/api/approvals/r_x/call_x", json={"decision": "maybe"})
    assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_request"
    assert "decision" in r.json()["error"]["message"]
    body = client.post("/api/runs", json={"target": "helper", "input": "count"}).json()
    pending = pending_for(client, body["run_id"])
    r = client.post(
        f"/api/approvals/{pending['run_id']}/{pending['call_id']}",
        json={"decision": "deny", "edited_arguments": {"text": "x"}},
    )
    assert r.status_code == 422
    client.post(f"/api/runs/{body['run_id']}/cancel")


def test_approvals_stream_snapshot_added_removed(client: httpx.Client) -> None:
    with client.stream("GET", "/api/approvals/stream") as resp:
        messages = iter_sse(resp)
        first = next(messages)
        assert (first.event, first.json) == ("snapshot", [])
        body = client.post("/api/runs", json={"target": "helper", "input": "count"}).json()
        added = next(messages)
        assert added.event == "added" and added.json["run_id"] == body["run_id"]
        client.post(
            f"/api/approvals/{added.json['run_id']}/{added.json['call_id']}",
            json={"decision": "allow"},
        )
        removed = next(messages)
        assert removed.event == "removed" and removed.json["call_id"] == added.json["call_id"]


# -- errors and limits ---------------------------------------------------------------------------------


def test_errors_are_json_with_a_message(client: httpx.Client) -> None:
    r = client.get("/api/nowhere")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
    r = client.post("/api/runs", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("invalid request")
    r = client.post("/api/runs", json={"input": "x"})
    assert r.status_code == 422 and "target" in r.json()["error"]["message"]
    r = client.get("/api/sessions", params={"limit": 0})
    assert r.status_code == 422
    # the schema says what Last-Event-ID may be (a seq, or empty): anything else is invalid
    r = client.get("/api/sessions/s_x/stream", headers={"Last-Event-ID": "abc"})
    assert r.status_code == 422 and "Last-Event-ID" in r.json()["error"]["message"]
    r = client.put("/api/runs")
    assert r.status_code == 405 and r.json()["error"]["type"] == "method_not_allowed"


def test_every_request_is_logged_once_and_never_its_token(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="workbench.server.access")
    srv = make_server(token="sekrit-token")
    with httpx.Client(base_url=srv.url) as c:
        c.get("/api/sessions", headers={"Authorization": "Bearer sekrit-token"})
        c.get("/api/runs/r_x/stream", params={"token": "sekrit-token", "after": 3})
        c.post("/api/nowhere")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "workbench.server.access"]

    # a line is written once its answer is sent: the client may read it a moment before
    deadline = time.monotonic() + 10
    while len(lines()) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(lines()) == 3, lines()
    logged = lines()
    assert '"GET /api/sessions HTTP/1.1" 200' in logged[0]
    assert '"GET /api/runs/r_x/stream?token=%2A%2A%2A&after=3 HTTP/1.1" 404' in logged[1]
    assert '"POST /api/nowhere HTTP/1.1" 401' in logged[2]
    assert all(line.startswith("127.0.0.1:") and line.endswith("ms") for line in logged)
    assert not any("sekrit" in line for line in logged)


def test_listing_tools_without_mcp_servers_logs_no_problem(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """The workspace has no mcp: section: nothing is "unavailable" about that."""
    import logging

    caplog.set_level(logging.INFO, logger="workbench")
    tools = client.get("/api/tools").json()
    assert {"tools:word_count", "calculator.evaluate"} <= {t["name"] for t in tools}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_a_crash_answers_500_without_a_trace(client: httpx.Client, server: ServerThread) -> None:
    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret internals")

    server.engine.store.list_sessions = boom  # type: ignore[method-assign]
    r = client.get("/api/sessions")
    assert r.status_code == 500
    assert r.json() == {
        "error": {"type": "error", "message": "internal error (RuntimeError); see the server log"}
    }
    assert "Traceback" not in r.text and "secret" not in r.text


def test_request_bodies_are_bounded(client: httpx.Client) -> None:
    big = json.dumps({"target": "chat", "input": "x" * (1024 * 1024 + 10)})
    r = client.post("/api/runs", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"

    def chunks() -> Any:  # no Content-Length: counted as it comes
        for _ in range(300):
            yield b"x" * 4096

    r = client.post("/api/runs", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.get("/api/sessions").json() == []


def test_cors_is_off_unless_configured(client: httpx.Client, make_server: MakeServer) -> None:
    pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    r = client.options("/api/runs", headers=pre)
    assert "access-control-allow-origin" not in r.headers
    srv = make_server(cors_origins=["https://app.example"], token="t0k")
    with httpx.Client(base_url=srv.url) as c:
        r = c.options("/api/runs", headers=pre)
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = c.get(
            "/api/sessions",
            headers={"Origin": "https://app.example", "Authorization": "Bearer t0k"},
        )
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = c.options("/api/runs", headers={**pre, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_a_public_address_needs_a_token() -> None:
    with pytest.raises(ValueError, match="token is required"):
        ServerConfig(host="0.0.0.0").check()
    ServerConfig(host="0.0.0.0", token="x").check()
    ServerConfig(host="::1").check()
    ServerConfig(host="localhost").check()


# -- metrics -------------------------------------------------------------------------------------------


def test_metrics_in_prometheus_text_format(client: httpx.Client) -> None:
    run_to_end(client, "chat")
    body = client.post("/api/runs", json={"target": "helper", "input": "count"}).json()
    pending = pending_for(client, body["run_id"])
    text = client.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
    m = text.text
    assert 'workbench_runs{state="completed"} 1' in m
    assert 'workbench_runs{state="waiting"} 1' in m
    assert "workbench_pending_approvals 1" in m
    client.post(
        f"/api/approvals/{pending['run_id']}/{pending['call_id']}", json={"decision": "allow"}
    )
    read_until(client, f"/api/runs/{body['run_id']}/stream", lambda e: e.type in TERMINAL_TYPES)
    m = client.get("/metrics").text
    assert 'workbench_tool_calls_total{tool="tools:word_count",decision="allow"} 1' in m
    assert re.search(r'workbench_tokens_total\{model="test",type="prompt"\} [1-9]', m)
    assert 'workbench_run_duration_seconds_count{kind="agent",status="completed"} 2' in m
    assert 'workbench_run_duration_seconds_bucket{kind="agent",status="completed",le="+Inf"} 2' in m
    assert 'workbench_model_call_duration_seconds_count{model="test"} 3' in m
    assert "workbench_pending_approvals 0" in m
    # every sample line is "name{labels} value"
    for line in m.splitlines():
        if line and not line.startswith("#"):
            assert re.fullmatch(
                r'[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+|.*\+Inf"\} \d+', line
            ), line


def test_runs_that_repeat_a_call_id_are_decided_apart(client: httpx.Client) -> None:
    # the test model numbers its calls, so two runs wait on the same call id
    a = client.post("/api/runs", json={"target": "helper", "input": "one"}).json()
    b = client.post("/api/runs", json={"target": "helper", "input": "two"}).json()
    pa, pb = pending_for(client, a["run_id"]), pending_for(client, b["run_id"])
    assert pa["call_id"] == pb["call_id"]
    # a call id alone names no call: the old address is gone, not guessed at
    r = client.post(f"/api/approvals/{pa['call_id']}", json={"decision": "allow"})
    assert r.status_code in (404, 405)
    # nor does a body that tries to name the run beside the address
    r = client.post(
        f"/api/approvals/{a['run_id']}/{pa['call_id']}",
        json={"decision": "allow", "run_id": b["run_id"]},
    )
    assert r.status_code == 422
    for run, note in ((b, "second"), (a, "first")):
        r = client.post(
            f"/api/approvals/{run['run_id']}/{pa['call_id']}",
            json={"decision": "deny", "note": note},
        )
        assert r.json()["resolved"] is True
        events = read_until(
            client, f"/api/runs/{run['run_id']}/stream", lambda e: e.type in TERMINAL_TYPES
        )
        resolved = next(e for e in events if e.type == "approval.resolved")
        assert resolved.note == note and events[-1].type == "run.completed"
