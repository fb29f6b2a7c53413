"""Teams against the local OpenAI-compatible server, through litellm's real HTTP path.

The model says ``direct: false``: an ``openai/`` model with an ``api_base`` would otherwise
take the engine's direct route to the server (which the workflow and durable tests use), and
these tests are meant to go through litellm.

Every agent has a one-line system prompt that names it ("You are writer."), and one
responder plays every model: it decides by that prompt and by the messages, so each test
can see who was called, with what, in what order, and which answer became the team's.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import WriteWorkspace
from tests.support.openai_server import FakeOpenAI, RecordedRequest, Reply
from workbench.approvals import ApprovalPolicy, Resolution
from workbench.engine import Engine
from workbench.events import (
    ApprovalRequired,
    Event,
    MessageCompleted,
    RunStarted,
    TeamDelegated,
    TeamVote,
    ToolResult,
)
from workbench.runtime import RunOutcome
from workbench.team import DelegationPolicy, Team, build_team, parse_vote

TOOLS_PY = '''
def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: The text to count.
    """
    return len(text.split())
'''

Responder = Callable[[dict[str, Any]], Reply | str | None]


def team_workspace(
    write: WriteWorkspace,
    base_url: str,
    teams: str,
    approvals: str = "allow",
) -> Path:
    teams = teams.replace("\n", "\n" + " " * 8)  # keep every line inside the dedented block
    return write(
        f"""
        models:
          default: {{model: openai/fake, api_base: "{base_url}", api_key: x, direct: false}}
        agents:
          researcher: {{instructions: You are researcher., description: Finds facts.}}
          writer: {{instructions: You are writer., description: Writes prose.}}
          critic: {{instructions: You are critic., description: Finds flaws.}}
          broken: {{instructions: You are broken., description: Always fails.}}
          boss: {{instructions: You are boss.}}
          judge: {{instructions: You are judge.}}
          counter: {{instructions: You are counter., tools: ["tools:word_count"]}}
        teams:
        {teams}
        approvals:
          default: {approvals}
        """,
        {"tools.py": TOOLS_PY},
    )


def who(req: dict[str, Any]) -> str:
    """The agent a request comes from: the name in "You are NAME." (or the leader's job)."""
    system = " ".join(
        m["content"] for m in req.get("messages", []) if m["role"] == "system" and m.get("content")
    )
    m = re.search(r"You are (\w+)\.", system)
    return m.group(1) if m else ""


def last_user(req: dict[str, Any]) -> str:
    return next(m["content"] for m in reversed(req["messages"]) if m["role"] == "user")


def member_replies(req: dict[str, Any]) -> Reply | None:
    """Members answer ``R[task]``, ``W[task]``, ``C[task]``; ``broken`` fails."""
    name = who(req)
    if name == "broken":
        return Reply(error=400, message="broken cannot answer")
    prefix = {"researcher": "R", "writer": "W", "critic": "C"}.get(name)
    if prefix is None:
        return None
    return Reply(text=f"{prefix}[{last_user(req)}]")


def requests_of(srv: FakeOpenAI, name: str) -> list[RecordedRequest]:
    return [r for r in srv.chat_requests if r.json is not None and who(r.json) == name]


def leader_requests(srv: FakeOpenAI, marker: str) -> list[RecordedRequest]:
    return [r for r in srv.chat_requests if marker in r.system]


async def run_team(engine: Engine, team: str, prompt: str) -> tuple[RunOutcome, list[Event]]:
    seen: list[Event] = []
    remove = engine.add_listener(seen.append)
    try:
        outcome = await engine.run(team, prompt)
    finally:
        remove()
    return outcome, seen


def runs_of(events: list[Event]) -> dict[str, RunStarted]:
    return {e.run_id: e for e in events if isinstance(e, RunStarted)}


def assert_children_of_team(events: list[Event], team_run: str) -> None:
    """Every member and leader run is a child of the team, announced before it started."""
    started = runs_of(events)
    delegated = [e for e in events if isinstance(e, TeamDelegated)]
    for d in delegated:
        assert d.child_run_id in started, f"{d.member}: no run {d.child_run_id}"
        child = started[d.child_run_id]
        assert child.parent_run_id == team_run and child.target == d.member
        assert d.seq < child.seq
        # Each child has its own transcript.
        assert any(
            isinstance(e, MessageCompleted) and e.run_id == d.child_run_id and e.role == "user"
            for e in events
        )
    for run_id, ev in started.items():
        if run_id != team_run:
            assert ev.parent_run_id == team_run


# -- route --------------------------------------------------------------------------------


async def test_route_runs_only_the_member_the_leader_picks(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    def responder(req: dict[str, Any]) -> Reply | None:
        if who(req) == "boss":
            pick = "writer" if "poem" in last_user(req) else "researcher"
            return Reply(text=json.dumps({"member": pick}))
        return member_replies(req)

    fake_model.responder = responder
    root = team_workspace(
        write_workspace,
        fake_model.base_url,
        "  desk: {mode: route, leader: boss, members: [researcher, writer]}",
    )
    async with Engine.open(root, db_url) as engine:
        outcome, events = await run_team(engine, "desk", "write a poem")
        second, _ = await run_team(engine, "desk", "find the facts")
    assert outcome.ok, outcome.error
    assert outcome.output == "W[write a poem]"
    assert second.output == "R[find the facts]"
    # First run: the leader, then the writer only.
    assert [who(r.json or {}) for r in fake_model.chat_requests[:2]] == ["boss", "writer"]
    assert "researcher: Finds facts." in fake_model.chat_requests[0].system
    delegated = [e for e in events if isinstance(e, TeamDelegated)]
    assert [(d.member, d.task) for d in delegated] == [("writer", "write a poem")]
    team_run = next(e.run_id for e in events if isinstance(e, RunStarted) and e.target == "desk")
    assert_children_of_team(events, team_run)
    # The team's own run records the exchange, so a session with a team has a conversation.
    own = [e for e in events if isinstance(e, MessageCompleted) and e.run_id == team_run]
    assert [(m.role, m.content) for m in own] == [
        ("user", "write a poem"),
        ("assistant", "W[write a poem]"),
    ]
    assert outcome.usage.total_tokens > 0


# -- coordinate ---------------------------------------------------------------------------


async def test_coordinate_delegates_concurrently_then_again_then_answers(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    def responder(req: dict[str, Any]) -> Reply | None:
        if who(req) == "boss":
            msgs = req["messages"]
            tools = [m for m in msgs if m["role"] == "tool"]
            if not tools:
                return Reply(
                    tool_calls=[
                        ("delegate__researcher", {"task": "facts about owls"}),
                        ("delegate__broken", {"task": "anything"}),
                        ("delegate__writer", {"task": "an opening line"}),
                    ]
                )
            if len(tools) == 3:  # after reading the results, one more delegation
                research = next(t["content"] for t in tools if t["content"].startswith("R["))
                return Reply(tool_calls=[("delegate__writer", {"task": f"polish {research}"})])
            return Reply(text="FINAL: " + " | ".join(t["content"] for t in tools))
        reply = member_replies(req)
        if reply is not None and who(req) in ("researcher", "writer"):
            reply.delay = 0.3  # long enough to see the two calls overlap
        return reply

    fake_model.responder = responder
    root = team_workspace(
        write_workspace,
        fake_model.base_url,
        "  desk: {mode: coordinate, leader: boss, members: [researcher, writer, broken]}",
        approvals="ask",  # user tools would ask; delegation tools must not
    )
    async with Engine.open(root, db_url) as engine:
        outcome, events = await run_team(engine, "desk", "an essay on owls")
    assert outcome.ok, outcome.error
    assert not any(isinstance(e, ApprovalRequired) for e in events)
    delegated = [(d.member, d.task) for d in events if isinstance(d, TeamDelegated)]
    assert delegated[:3] == [
        ("researcher", "facts about owls"),
        ("broken", "anything"),
        ("writer", "an opening line"),
    ] or sorted(delegated[:3]) == sorted(
        [("researcher", "facts about owls"), ("broken", "anything"), ("writer", "an opening line")]
    )
    assert delegated[3] == ("writer", "polish R[facts about owls]")
    # The failure came back to the leader as the tool's error, and the others' results too.
    results = {
        e.tool: e for e in events if isinstance(e, ToolResult) and e.tool != "delegate.writer"
    }
    assert "member 'broken' failed" in (results["delegate.broken"].error or "")
    assert "broken cannot answer" in (results["delegate.broken"].error or "")
    assert results["delegate.researcher"].output == "R[facts about owls]"
    assert outcome.output.startswith("FINAL: R[facts about owls]")
    assert "W[polish R[facts about owls]]" in outcome.output
    # The first batch ran at the same time: both member runs started before either ended.
    team_run = next(e.run_id for e in events if isinstance(e, RunStarted) and e.target == "desk")
    assert_children_of_team(events, team_run)
    first = [d.child_run_id for d in events if isinstance(d, TeamDelegated)][:3]
    starts = [e.seq for e in events if e.type == "run.started" and e.run_id in first]
    ends = [
        e.seq for e in events if e.type in ("run.completed", "run.failed") and e.run_id in first
    ]
    assert max(starts) < min(ends)
    # The leader's model calls are a child run too, with the delegation tools offered.
    boss = requests_of(fake_model, "boss")
    assert sorted(boss[0].tool_names) == [
        "delegate__broken",
        "delegate__researcher",
        "delegate__writer",
    ]


def test_delegation_policy_allows_only_delegation_tools() -> None:
    inner = ApprovalPolicy(default="ask", deny=["shell.*"])
    policy = DelegationPolicy(inner, ["delegate.writer"])
    assert policy.evaluate("delegate.writer", None, {"task": "x"}).decision == "allow"
    assert policy.evaluate("files.read", None, {}).decision == "ask"
    assert policy.evaluate("shell.run", ("command", "cmd"), {"cmd": "ls"}).decision == "deny"
    assert policy.default == "ask" and policy.rules == inner.rules


# -- broadcast ----------------------------------------------------------------------------


async def test_broadcast_asks_everyone_at_once_and_the_leader_combines(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    def responder(req: dict[str, Any]) -> Reply | None:
        if who(req) == "boss":
            return Reply(text="COMBINED")
        reply = member_replies(req)
        if reply is not None and reply.error is None:
            reply.delay = 0.25
        return reply

    fake_model.responder = responder
    root = team_workspace(
        write_workspace,
        fake_model.base_url,
        "  panel: {mode: broadcast, leader: boss, members: [researcher, broken, writer]}",
    )
    async with Engine.open(root, db_url) as engine:
        outcome, events = await run_team(engine, "panel", "is water wet?")
    assert outcome.ok, outcome.error
    assert outcome.output == "COMBINED"
    members = [e for e in events if isinstance(e, TeamDelegated)]
    assert [(d.member, d.task) for d in members] == [
        ("researcher", "is water wet?"),
        ("broken", "is water wet?"),
        ("writer", "is water wet?"),
    ]
    ids = [d.child_run_id for d in members]
    starts = [e.seq for e in events if e.type == "run.started" and e.run_id in ids]
    ends = [e.seq for e in events if e.type in ("run.completed", "run.failed") and e.run_id in ids]
    assert len(starts) == 3 and max(starts) < min(ends)
    combine = last_user(requests_of(fake_model, "boss")[0].json or {})
    # Every answer reaches the leader in member order, the failure with its error text.
    assert (
        combine.index("R[is water wet?]")
        < combine.index("broken")
        < combine.index("W[is water wet?]")
    )
    assert "### broken (failed)" in combine and "broken cannot answer" in combine
    assert_children_of_team(events, next(e.run_id for e in events if isinstance(e, RunStarted)))


# -- sequential ---------------------------------------------------------------------------


async def test_sequential_feeds_each_output_to_the_next_member(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    fake_model.responder = member_replies
    root = team_workspace(
        write_workspace,
        fake_model.base_url,
        "  line: {mode: sequential, members: [researcher, writer, critic]}",
    )
    async with Engine.open(root, db_url) as engine:
        outcome, events = await run_team(engine, "line", "topic")
    assert outcome.ok, outcome.error
    assert outcome.output == "C[W[R[topic]]]"
    assert [who(r.json or {}) for r in fake_model.chat_requests] == [
        "researcher",
        "writer",
        "critic",
    ]
    assert [(d.member, d.task) for d in events if isinstance(d, TeamDelegated)] == [
        ("researcher", "topic"),
        ("writer", "R[topic]"),
        ("critic", "W[R[topic]]"),
    ]


async def test_sequential_stops_at_a_failing_member(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    fake_model.responder = member_replies
    root = team_workspace(
        write_workspace,
        fake_model.base_url,
        "  line: {mode: sequential, members: [researcher, broken, critic]}",
    )
    async with Engine.open(root, db_url) as engine:
        outcome, events = await run_team(engine, "line", "topic")
    assert outcome.status == "failed"
    assert "member 'broken' failed" in (outcome.error or "")
    assert not requests_of(fake_model, "critic")
    assert events[-1].type == "run.failed"


# -- leader_follower ----------------------------------------------------------------------


async def test_leader_follower_plans_then_each_follower_gets_its_subtask(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    plan = {
        "subtasks": [
            {"member": "writer", "task": "draft the intro"},
            {"member": "researcher", "task": "collect three sources"},
        ]
    }

    def responder(req: dict[str, Any]) -> Reply | None:
        if who(req) == "boss":
            if "Split the task" in req["messages"][0]["content"]:
                if "does not match the required output schema" in last_user(req):
                    return Reply(text="```json\n" + json.dumps(plan) + "\n```")
                return Reply(text="Plan: writer drafts, researcher collects.")  # not JSON
            return Reply(text="RESULT from " + last_user(req).count("###").__str__() + " parts")
        return member_replies(req)

    fake_model.responder = responder
    root = team_workspace(
        write_workspace,
        fake_model.base_url,
        "  crew: {mode: leader_follower, leader: boss, members: [researcher, writer]}",
    )
    async with Engine.open(root, db_url) as engine:
        outcome, events = await run_team(engine, "crew", "a report on bees")
    assert outcome.ok, outcome.error
    assert outcome.output == "RESULT from 2 parts"
    # One corrective retry of the plan, inside the same leader run.
    boss = requests_of(fake_model, "boss")
    assert len(boss) == 3
    # Followers got their own subtask, not the original input.
    assert last_user(requests_of(fake_model, "writer")[0].json or {}) == "draft the intro"
    assert last_user(requests_of(fake_model, "researcher")[0].json or {}) == "collect three sources"
    assert [(d.member, d.task) for d in events if isinstance(d, TeamDelegated)] == [
        ("writer", "draft the intro"),
        ("researcher", "collect three sources"),
    ]
    final_input = last_user(boss[2].json or {})
    assert "W[draft the intro]" in final_input and "R[collect three sources]" in final_input
    assert "a report on bees" in final_input


async def test_leader_follower_fails_when_the_plan_stays_invalid(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    def responder(req: dict[str, Any]) -> Reply | None:
        if who(req) == "boss":
            return Reply(text=json.dumps({"subtasks": [{"member": "nobody", "task": "x"}]}))
        return member_replies(req)

    fake_model.responder = responder
    root = team_workspace(
        write_workspace,
        fake_model.base_url,
        "  crew: {mode: leader_follower, leader: boss, members: [researcher, writer]}",
    )
    async with Engine.open(root, db_url) as engine:
        outcome, events = await run_team(engine, "crew", "a report")
    assert outcome.status == "failed"
    assert "leader of team 'crew' failed" in (outcome.error or "")
    assert "output schema" in (outcome.error or "")
    assert not any(isinstance(e, TeamDelegated) for e in events)


# -- consensus ----------------------------------------------------------------------------


def consensus_responder(agree_in_round: int | None) -> Responder:
    """Round 1: three different positions in three reply styles; they agree from
    ``agree_in_round`` on. The first member is the slowest, so finishing order is reversed."""

    def responder(req: dict[str, Any]) -> Reply | str | None:
        name = who(req)
        if name in ("judge", "boss"):
            return Reply(text=f"{name.upper()} DECIDES")
        text = last_user(req)
        m = re.search(r"consensus round (\d+)", text)
        if m is None:
            return None
        rnd = int(m.group(1))
        agree = agree_in_round is not None and rnd >= agree_in_round
        delay = {"researcher": 0.3, "writer": 0.15, "critic": 0.0}[name]
        if name == "researcher":
            body = json.dumps(
                {"agree": agree, "position": "A" if agree else "R-pos", "reasoning": "facts"}
            )
        elif name == "writer":
            vote = {"agree": "yes" if agree else "no", "position": "A" if agree else "W-pos"}
            body = "Sure:\n```json\n" + json.dumps(vote) + "\n```"
        else:
            body = "I agree with A." if agree else "I disagree: C-pos is better."
        return Reply(text=body, delay=delay)

    return responder


async def test_consensus_stops_when_all_agree_and_the_judge_decides_in_member_order(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    fake_model.responder = consensus_responder(agree_in_round=2)
    root = team_workspace(
        write_workspace,
        fake_model.base_url,
        "  council: {mode: consensus, members: [researcher, writer, critic], judge: judge, max_rounds: 4}",
    )
    async with Engine.open(root, db_url) as engine:
        outcome, events = await run_team(engine, "council", "pick a letter")
    assert outcome.ok, outcome.error
    assert outcome.output == "JUDGE DECIDES"
    votes = [(v.round, v.member, v.agree, v.position) for v in events if isinstance(v, TeamVote)]
    assert votes == [
        (1, "researcher", False, "R-pos"),
        (1, "writer", False, "W-pos"),
        (1, "critic", False, "I disagree: C-pos is better."),
        (2, "researcher", True, "A"),
        (2, "writer", True, "A"),
        (2, "critic", True, "I agree with A."),
    ]
    assert next(v for v in events if isinstance(v, TeamVote)).reasoning == "facts"
    # Two rounds of three members, then the judge; no third round.
    assert len(fake_model.chat_requests) == 7
    # Round 2 showed each member round 1's positions.
    round2 = last_user(requests_of(fake_model, "critic")[1].json or {})
    assert "R-pos" in round2 and "W-pos" in round2
    # The judge read the final positions in member order, whatever order they finished in.
    ask = last_user(requests_of(fake_model, "judge")[0].json or {})
    assert "agreed after 2 round(s)" in ask
    assert ask.index("### researcher") < ask.index("### writer") < ask.index("### critic")
    finished = [
        e.source
        for e in events
        if e.type == "run.completed" and e.source in ("researcher", "writer", "critic")
    ]
    assert finished[:3] == ["critic", "writer", "researcher"]


async def test_consensus_without_agreement_ends_after_max_rounds_with_the_leader(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    fake_model.responder = consensus_responder(agree_in_round=None)
    root = team_workspace(
        write_workspace,
        fake_model.base_url,
        "  council: {mode: consensus, leader: boss, members: [researcher, writer, critic], max_rounds: 2}",
    )
    async with Engine.open(root, db_url) as engine:
        outcome, events = await run_team(engine, "council", "pick a letter")
    assert outcome.output == "BOSS DECIDES"
    assert max(v.round for v in events if isinstance(v, TeamVote)) == 2
    ask = last_user(requests_of(fake_model, "boss")[0].json or {})
    assert "did not agree after 2 round(s)" in ask


def test_parse_vote_is_tolerant() -> None:
    assert parse_vote('{"agree": true, "position": "X", "reasoning": "y"}') == parse_vote(
        'Here you go: {"agree": true, "position": "X", "reasoning": "y"} done'
    )
    assert parse_vote('```json\n{"agree": "no", "position": "Z"}\n```').agree is False
    assert parse_vote("I agree with the others.").agree is True
    assert parse_vote("I do not agree with that.").agree is False
    assert parse_vote("Paris.").position == "Paris." and not parse_vote("Paris.").agree
    assert parse_vote('{"agree": 1, "position": {"city": "Paris"}}').position == '{"city": "Paris"}'


# -- cancellation -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["broadcast", "coordinate"])
async def test_cancelling_the_team_cancels_every_member(
    mode: str, fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    def responder(req: dict[str, Any]) -> Reply | None:
        if who(req) == "boss":
            return Reply(
                tool_calls=[
                    (f"delegate__{m}", {"task": "t"}) for m in ("researcher", "writer", "critic")
                ]
            )
        return Reply(hang=True)

    fake_model.responder = responder
    root = team_workspace(
        write_workspace,
        fake_model.base_url,
        f"  crowd: {{mode: {mode}, leader: boss, members: [researcher, writer, critic]}}",
    )
    async with Engine.open(root, db_url) as engine:
        seen: list[Event] = []
        engine.add_listener(seen.append)
        handle = await engine.start_run("crowd", "go")
        # Cancel once every member's request has reached the server: litellm warns about a
        # coroutine it never awaited when a call is cancelled while it is still being set up.
        for _ in range(1000):
            if sum(who(r.json or {}) != "boss" for r in fake_model.chat_requests) == 3:
                break
            await asyncio.sleep(0.01)
        assert engine.cancel(handle.run_id)
        outcome = await asyncio.wait_for(handle.wait(), 10)
        stored = engine.session_events(handle.session_id)
    assert outcome.status == "cancelled"
    members = {
        e.run_id
        for e in stored
        if isinstance(e, RunStarted) and e.target in ("researcher", "writer", "critic")
    }
    assert len(members) == 3
    # Every run that started (the team, each member, a coordinating leader) was cancelled.
    started = {e.run_id for e in stored if isinstance(e, RunStarted)}
    assert members | {handle.run_id} <= started
    for run_id in started:
        last = [e for e in stored if e.run_id == run_id][-1]
        assert last.type == "run.cancelled", (run_id, last.type)


# -- building -----------------------------------------------------------------------------


async def test_build_team_and_an_inline_default_leader(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    def responder(req: dict[str, Any]) -> Reply | None:
        if "You lead the team" in (req["messages"][0].get("content") or ""):
            return Reply(
                text="MERGED by "
                + ("inline" if "Be terse." in req["messages"][0]["content"] else "default")
            )
        return member_replies(req)

    fake_model.responder = responder
    root = team_workspace(
        write_workspace,
        fake_model.base_url,
        "  a: {mode: broadcast, members: [researcher, writer], instructions: Prefer facts.}\n"
        "  b: {mode: broadcast, leader: {instructions: Be terse.}, members: [a, critic]}",
    )
    async with Engine.open(root, db_url) as engine:
        team = await build_team(engine, "b")
        assert isinstance(team, Team) and team.mode == "broadcast"
        assert [(m.name, m.kind) for m in team.members] == [("a", "team"), ("critic", "agent")]
        outcome, events = await run_team(engine, "b", "q")
    assert outcome.output == "MERGED by inline"
    # Team a ran as a member of team b, with its own (default) leader and its instructions.
    sources = {e.source for e in events if isinstance(e, RunStarted)}
    assert {"b", "a", "a.leader", "b.leader", "researcher", "writer", "critic"} <= sources
    a_leader = next(r for r in fake_model.chat_requests if 'team "a"' in r.system)
    assert "Prefer facts." in a_leader.system


# -- approvals inside a team --------------------------------------------------------------


async def test_a_member_waiting_for_approval_keeps_the_others_results(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    def responder(req: dict[str, Any]) -> Reply | None:
        if who(req) == "counter":
            last = req["messages"][-1]
            if last["role"] == "user":
                return Reply(tool_calls=[("tools_-word_count", {"text": "a b"})])
            return Reply(text=f"counter got: {last['content']}")
        if who(req) == "boss":
            return Reply(text="COMBINED")
        return member_replies(req)

    fake_model.responder = responder
    root = team_workspace(
        write_workspace,
        fake_model.base_url,
        "  panel: {mode: broadcast, leader: boss, members: [researcher, counter, writer]}",
        approvals="ask",
    )
    async with Engine.open(root, db_url) as engine:
        seen: list[Event] = []
        engine.add_listener(seen.append)
        handle = await engine.start_run("panel", "count")
        for _ in range(1000):
            done = {e.source for e in seen if e.type == "run.completed"}
            if engine.broker.pending() and {"researcher", "writer"} <= done:
                break
            await asyncio.sleep(0.01)
        pending = engine.broker.pending()
        assert len(pending) == 1 and pending[0].source == "counter"
        member_run = runs_of(seen)[pending[0].run_id]
        assert member_run.parent_run_id == handle.run_id  # asked from inside the member's run
        engine.resolve_approval(
            pending[0].run_id, pending[0].call_id, Resolution(decision="deny", note="not today")
        )
        outcome = await asyncio.wait_for(handle.wait(), 30)
    assert outcome.ok and outcome.output == "COMBINED"
    combine = last_user(requests_of(fake_model, "boss")[0].json or {})
    assert "R[count]" in combine and "W[count]" in combine
    assert "counter got: Error: the user refused this call: not today" in combine
