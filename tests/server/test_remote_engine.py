"""RemoteEngine against a server in a thread: runs, events, approvals, cancel, sessions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlparse

import httpx
import pytest

from tests.server.conftest import MakeServer, assert_gap_free
from workbench.approvals import PendingApproval, Resolution
from workbench.client import RemoteEngine, RemoteError
from workbench.events import Event
from workbench.server import ServerThread

TOKEN = "remote-token"


@pytest.fixture
def srv(make_server: MakeServer) -> ServerThread:
    return make_server(token=TOKEN)


@pytest.fixture
async def remote(srv: ServerThread) -> AsyncIterator[RemoteEngine]:
    engine = await RemoteEngine.connect(srv.url, TOKEN)
    try:
        yield engine
    finally:
        await engine.aclose()


async def until(check: Callable[[], object], timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


async def test_the_workspace_comes_from_the_server(remote: RemoteEngine, workspace: object) -> None:
    assert remote.workspace is not None
    assert remote.catalogue_names() == ["chat", "helper", "sleeper", "duo", "flow"]
    assert remote.target_kind("duo") == "team"
    assert str(remote.root) == str(workspace)
    assert remote.workspace.agents["chat"].description == "Says back what it was told."
    graph = await remote.workflow_graph("flow")
    assert [n.path for n in graph.nodes] == ["first", "second"]
    local = (await remote.build_target("workflow", "flow")).graph()
    assert local == graph
    tools = await remote.tools_for(["tools:*"])
    assert {t.name: t.policy for t in tools} == {"tools:word_count": "ask", "tools:nap": "allow"}
    assert remote.policy is not None
    assert remote.policy.evaluate("tools:nap", None, {}, remote.saved_rules("")).decision == "allow"
    with pytest.raises(Exception, match="no agent, team or workflow"):
        remote.target_kind("nobody")


async def test_a_wrong_token_is_refused(srv: ServerThread) -> None:
    with pytest.raises(RemoteError, match="401") as info:
        await RemoteEngine.connect(srv.url, "nope")
    assert info.value.hint and "token" in info.value.hint
    with pytest.raises(RemoteError, match="cannot reach"):
        await RemoteEngine.connect("http://127.0.0.1:9", TOKEN)


async def test_run_and_watch_events(remote: RemoteEngine) -> None:
    seen: list[Event] = []
    remote.add_listener(seen.append)
    handle = await remote.start_run("flow", "go")
    outcome = await asyncio.wait_for(handle.wait(), 10)
    assert outcome.status == "completed" and outcome.run_id == handle.run_id
    assert outcome.output == "[test model] You said: [test model] You said: go"
    assert outcome.usage.total_tokens > 0
    assert seen[0].type == "run.started" and seen[-1].type == "run.completed"
    assert_gap_free(seen)
    assert {e.session_id for e in seen} == {handle.session_id}
    # the same session, continued: only the new events arrive, once
    again = await remote.start_run("chat", "more", session_id=handle.session_id)
    await asyncio.wait_for(again.wait(), 10)
    assert_gap_free(seen)
    stored = await asyncio.to_thread(remote.session_events, handle.session_id)
    assert stored == seen == await remote.asession_events(handle.session_id)
    assert remote.running() == []


async def test_approve_through_the_remote_broker(remote: RemoteEngine) -> None:
    changes: list[tuple[str, PendingApproval]] = []
    remote.broker.subscribe(lambda kind, p: changes.append((kind, p)))
    handle = await remote.start_run("helper", "count")
    await until(lambda: remote.broker.pending())
    (p,) = remote.broker.pending()
    assert (p.tool, p.arguments, p.run_id, p.session_id) == (
        "tools:word_count",
        {"text": "test"},
        handle.run_id,
        handle.session_id,
    )
    assert p.future is not None and not p.resolved
    assert remote.resolve_approval(
        p.run_id, p.call_id, Resolution("allow", edited_arguments={"text": "a b"})
    )
    outcome = await asyncio.wait_for(handle.wait(), 10)
    assert outcome.output == "[test model] Tool results: 2"
    assert [k for k, _ in changes] == ["added", "removed"] and p.resolved
    assert not remote.resolve_approval(p.run_id, p.call_id, Resolution("allow"))  # none now


async def test_deny_with_a_note_and_wait_for_the_answer(remote: RemoteEngine) -> None:
    handle = await remote.start_run("helper", "count")
    await until(lambda: remote.broker.pending())
    p = remote.broker.pending()[0]
    taken = await remote.aresolve_approval(p.run_id, p.call_id, Resolution("deny", note="no"))
    assert taken is True
    outcome = await asyncio.wait_for(handle.wait(), 10)
    assert outcome.ok  # the model hears the refusal and answers
    events = await remote.asession_events(handle.session_id)
    resolved = [e for e in events if e.type == "approval.resolved"]
    assert [(e.decision, e.note) for e in resolved] == [("deny", "no")]  # type: ignore[attr-defined]


async def test_cancel_a_run(remote: RemoteEngine) -> None:
    called = asyncio.Event()
    remote.add_listener(lambda e: called.set() if e.type == "tool.call" else None)
    handle = await remote.start_run("sleeper", "rest")
    await asyncio.wait_for(called.wait(), 10)
    assert remote.running() == [handle.run_id]
    assert remote.cancel(handle.run_id) is True
    outcome = await asyncio.wait_for(handle.wait(), 10)
    assert outcome.status == "cancelled"
    assert remote.running() == []
    with pytest.raises(RemoteError, match="409"):
        await remote.acancel(handle.run_id)


async def test_sessions_runs_replay_and_delete(remote: RemoteEngine) -> None:
    a = await remote.start_run("chat", "first")
    await a.wait()
    b = await remote.start_run("duo", "second")
    await until(lambda: remote.broker.pending())
    first = remote.broker.pending()[0]
    remote.resolve_approval(first.run_id, first.call_id, Resolution("allow"))
    await b.wait()
    sessions = await asyncio.to_thread(remote.sessions)
    assert [s.id for s in sessions] == [b.session_id, a.session_id]
    assert [s.id for s in await remote.asessions(limit=1)] == [b.session_id]
    runs = await asyncio.to_thread(remote.runs, b.session_id)
    assert {r.target for r in runs} == {"duo", "chat", "helper"}
    assert runs == await remote.aruns(b.session_id)
    info = await remote.get_run(b.run_id)
    assert info is not None and info.status == "completed"
    assert await remote.get_run("r_nope") is None
    replay = await asyncio.to_thread(remote.session_events, a.session_id)
    assert replay[0].type == "run.started" and replay[-1].type == "run.completed"
    assert await asyncio.to_thread(remote.delete_session, a.session_id) is True
    assert await remote.adelete_session(a.session_id) is False
    assert [s.id for s in await remote.asessions()] == [b.session_id]


async def test_events_survive_a_server_restart(make_server: MakeServer, db_url: str) -> None:
    first = make_server(token=TOKEN)
    port = urlparse(first.url).port
    remote = await RemoteEngine.connect(first.url, TOKEN)
    try:
        seen: list[Event] = []
        remote.add_listener(seen.append)
        handle = await remote.start_run("chat", "before")
        await asyncio.wait_for(handle.wait(), 10)
        await asyncio.to_thread(first.stop)  # the stream drops
        second = await asyncio.to_thread(make_server, token=TOKEN, port=port)
        # meanwhile another client continues the session on the new server
        async with httpx.AsyncClient(
            base_url=second.url, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as c:
            r = await c.post(
                "/api/runs",
                json={"target": "chat", "input": "after", "session_id": handle.session_id},
            )
            assert r.status_code == 202
        await until(lambda: seen[-1].type == "run.completed" and seen[-1].run_id != handle.run_id)
        assert_gap_free(seen)
        assert seen == await remote.asession_events(handle.session_id)
    finally:
        await remote.aclose()


async def test_search_and_fork_through_the_server(remote: RemoteEngine, db_url: str) -> None:
    from workbench.events import MessageCompleted
    from workbench.store import Store

    a = await remote.start_run("chat", "tell me about herons")
    await a.wait()
    b = await remote.start_run("chat", "something else")
    await b.wait()
    hits = await asyncio.to_thread(remote.search_sessions, "herons")
    with Store.open(db_url) as store:
        local = store.search_sessions("herons")
    # The same hits as the store gives, highlights included (sent as offsets, marked again).
    assert [(h.session_id, h.seq, h.type, h.snippet, h.matches) for h in hits] == [
        (h.session_id, h.seq, h.type, h.snippet, h.matches) for h in local
    ]
    assert [h.session_id for h in hits] == [a.session_id]
    assert [t for t, matched in hits[0].parts() if matched] == ["herons"]
    typed = await asyncio.to_thread(remote.search_sessions, "hero", prefix=True)
    assert [h.session_id for h in typed] == [a.session_id]
    assert await asyncio.to_thread(remote.search_sessions, "hero") == []  # whole words only

    events = await remote.asession_events(a.session_id)
    question = next(e for e in events if isinstance(e, MessageCompleted) and e.role == "user")
    fork = await asyncio.to_thread(
        remote.fork_session, a.session_id, at_seq=question.seq, title="herons, again"
    )
    assert (fork.forked_from, fork.forked_from_seq, fork.title) == (
        a.session_id,
        question.seq,
        "herons, again",
    )
    # Continued on the server: the fork's history is the question, cut before the answer.
    c = await remote.start_run("chat", "go on", session_id=fork.id)
    await c.wait()
    forked = await remote.asession_events(fork.id)
    said = [e.content for e in forked if isinstance(e, MessageCompleted)]
    assert said == ["tell me about herons", "go on", "[test model] You said: go on"]
    with pytest.raises(RemoteError) as missing:
        await asyncio.to_thread(remote.fork_session, "s_nope", at_seq=1)
    assert missing.value.status == 404
    with pytest.raises(RemoteError, match="999") as beyond:
        await asyncio.to_thread(remote.fork_session, a.session_id, at_seq=999)
    assert beyond.value.status == 400


async def test_a_saved_rule_is_listed_and_removed_through_the_server(
    remote: RemoteEngine,
) -> None:
    handle = await remote.start_run("helper", "count")
    await until(lambda: remote.broker.pending())
    p = remote.broker.pending()[0]
    assert await remote.aresolve_approval(p.run_id, p.call_id, Resolution("allow", "always"))
    await asyncio.wait_for(handle.wait(), 10)
    (rule,) = await asyncio.to_thread(remote.saved_rules, "")
    assert (rule.tool, rule.scope) == ("tools:word_count", "always")
    assert await asyncio.to_thread(remote.remove_rule, rule) is True
    assert await asyncio.to_thread(remote.saved_rules, "") == []  # not served from a cache
    assert await asyncio.to_thread(remote.remove_rule, rule) is False
    again = await remote.start_run("helper", "count")  # the server asks again at once
    await until(lambda: any(x.run_id == again.run_id for x in remote.broker.pending()))
    remote.cancel(again.run_id)
    await asyncio.wait_for(again.wait(), 10)
