"""The session routes: search, fork, export (JSONL, Markdown, HTML), import."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.server.conftest import read_until
from workbench.events import TERMINAL_TYPES, parse_event


def run_to_end(client: httpx.Client, target: str, text: str, **extra: Any) -> dict[str, Any]:
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


def test_search_fork_export_import(client: httpx.Client) -> None:
    a = run_to_end(client, "chat", "tell me about pelicans")
    run_to_end(client, "chat", "and now herons", session_id=a["session_id"])
    b = run_to_end(client, "chat", "something about pelican beaks")
    sid = a["session_id"]

    hits = client.get("/api/sessions/search", params={"q": "pelican"}).json()
    assert [h["session_id"] for h in hits] == [b["session_id"], sid]  # newest first
    first = hits[1]
    assert first["type"] == "message.completed" and first["seq"] == 2
    start, end = first["highlights"][0]
    assert first["snippet"][start:end] == "pelicans"
    assert (
        client.get("/api/sessions/search", params={"q": "her", "prefix": True}).json()[0][
            "session_id"
        ]
        == sid
    )
    assert client.get("/api/sessions/search", params={"q": "zyzzyva"}).json() == []
    assert client.get("/api/sessions/search").status_code == 422

    events = [parse_event(e) for e in client.get(f"/api/sessions/{sid}/events").json()]
    answer = next(e for e in events if e.type == "message.completed" and e.seq > 2)
    fork = client.post(f"/api/sessions/{sid}/fork", json={"at_seq": answer.seq})
    assert fork.status_code == 201, fork.text
    forked = fork.json()
    assert forked["title"] == "fork of tell me about pelicans"
    assert (forked["forked_from"], forked["forked_from_seq"]) == (sid, answer.seq)
    assert forked["last_seq"] == answer.seq + 1  # and the run.cancelled that closes the run
    by_message = client.post(
        f"/api/sessions/{sid}/fork", json={"message_id": answer.message_id, "title": "mine"}
    ).json()
    assert by_message["title"] == "mine" and by_message["forked_from_seq"] == answer.seq
    # exactly one of at_seq and message_id, as the schema says (422: the request is invalid)
    for where in ({}, {"at_seq": answer.seq, "message_id": answer.message_id}):
        r = client.post(f"/api/sessions/{sid}/fork", json=where)
        assert r.status_code == 422 and "exactly one" in r.json()["error"]["message"]
    assert client.post(f"/api/sessions/{sid}/fork", json={"at_seq": 10_000}).status_code == 400
    assert client.post("/api/sessions/s_nope/fork", json={"at_seq": 1}).status_code == 404
    # Continue the fork: its history ends at the chosen answer.
    more = run_to_end(client, "chat", "go on", session_id=forked["id"])
    assert more["status"] == "completed"

    jsonl = client.get(f"/api/sessions/{sid}/export/jsonl")
    assert jsonl.status_code == 200 and jsonl.headers["content-type"].startswith(
        "application/x-ndjson"
    )
    assert jsonl.text.splitlines()[0].startswith('{"format":"workbench-session"')
    page = client.get(f"/api/sessions/{sid}/export/html")
    assert page.headers["content-type"].startswith("text/html") and "pelicans" in page.text
    md = client.get(f"/api/sessions/{sid}/export/md")
    assert md.text.startswith("# tell me about pelicans")
    assert client.get("/api/sessions/s_nope/export/md").status_code == 404
    assert client.get(f"/api/sessions/{sid}/export/pdf").status_code == 422

    again = client.post("/api/sessions/import", content=jsonl.content)
    assert again.status_code == 409 and "--as-new" in again.json()["error"]["message"]
    copy = client.post("/api/sessions/import", params={"as_new": True}, content=jsonl.content)
    assert copy.status_code == 201, copy.text
    # every event, then the import's own record that they came from elsewhere
    assert copy.json()["id"] != sid and copy.json()["last_seq"] == len(events) + 1
    assert client.delete(f"/api/sessions/{sid}").status_code == 200
    back = client.post("/api/sessions/import", content=jsonl.content)
    assert back.status_code == 201 and back.json()["id"] == sid
    again = client.get(f"/api/sessions/{sid}/export/jsonl").content
    assert again.startswith(jsonl.content)
    assert json.loads(again[len(jsonl.content) :])["type"] == "session.imported"
    bad = client.post("/api/sessions/import", content=b"\xff\xfe")
    assert bad.status_code == 400
    assert client.post("/api/sessions/import", content=b"{}").status_code == 400
