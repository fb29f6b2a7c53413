"""A tool call is named by its run and its id, never by its id alone.

Real models reuse call ids: the ``test`` model numbers them ``call_t2_0``, ``call_t2_1`` in
every run, and so do several local servers. Two members of a team, two parallel workflow
steps or two turns of a session then ask for "the same" call. The state must keep them
apart, and every call must end settled when its run ends: nothing left "…" or "running".

Two sources of such streams: a hypothesis strategy that builds sessions whose runs repeat
call ids (team members, parallel steps, sequential runs) and interleaves them as a real
engine would, and the sample workspaces' recorded sessions, made with the ``test`` model.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screens.state import ApprovalState, SessionState, ToolItem
from workbench.events import (
    ApprovalRequired,
    ApprovalResolved,
    Event,
    EventBase,
    MessageCompleted,
    MessageDelta,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunStarted,
    TeamDelegated,
    ToolCall,
    ToolCallRequest,
    ToolResult,
    WorkflowStepCompleted,
    WorkflowStepStarted,
    parse_event,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_SESSIONS = sorted((ROOT / "sample_workspaces").glob("*/sessions/*.jsonl"))

FATES = ("allow", "ask_allow", "ask_edit", "ask_deny", "policy_deny", "error", "ask_pending")
"""What happens to one call: allowed by a rule; asked and allowed, allowed with edited
arguments, denied; denied by the policy; failed while running; still waiting when its run
ends (cancelled or failed)."""


@dataclass
class Expected:
    """What a call must look like once the session is folded."""

    run_id: str
    call_id: str
    status: str
    output: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    approval: str | None = None


@dataclass
class RunPlan:
    """One run's events (in its own order) and what its calls must end as."""

    run_id: str
    parent: str | None
    source: str
    events: list[EventBase]
    expected: list[Expected]


def _ev(ev: EventBase, run_id: str, source: str, parent: str | None) -> EventBase:
    ev.run_id, ev.source, ev.parent_run_id = run_id, source, parent
    return ev


@st.composite
def run_plan(draw: Any, run_id: str, source: str, parent: str | None) -> RunPlan:
    """An agent run: some turns of tool calls numbered as the ``test`` model numbers them
    (so every run repeats the same ids), then an answer; or an end before that."""
    evs: list[EventBase] = []
    expected: list[Expected] = []

    def add(ev: EventBase) -> None:
        evs.append(_ev(ev, run_id, source, parent))

    add(RunStarted(target_kind="agent", target=source, input="task", model="test"))
    add(MessageCompleted(message_id=f"m_in_{run_id}", role="user", content="task"))
    turns = draw(st.integers(0, 2))
    ending: str = "completed"
    for turn in range(turns):
        n = draw(st.integers(1, 3))
        ids = [f"call_t{2 + 2 * turn}_{i}" for i in range(n)]
        fates = [draw(st.sampled_from(FATES)) for _ in ids]
        mid = f"m_{run_id}_{turn}"
        if draw(st.booleans()):
            add(MessageDelta(message_id=mid, text="Let me look."))
        add(
            MessageCompleted(
                message_id=mid,
                role="assistant",
                content="",
                tool_calls=[
                    ToolCallRequest(id=c, tool="files.write", arguments={"path": f"{run_id}/{c}"})
                    for c in ids
                ],
                model="test",
            )
        )
        # The calls of one turn run at once: their events interleave.
        per_call: list[list[EventBase]] = []
        stop = False
        for call_id, fate in zip(ids, fates, strict=True):
            args = {"path": f"{run_id}/{call_id}"}
            out = f"wrote {run_id} {call_id} turn {turn}"
            seq: list[EventBase] = []
            exp = Expected(run_id, call_id, "done", out, args)
            if fate.startswith("ask"):
                seq.append(
                    ApprovalRequired(
                        call_id=call_id, tool="files.write", arguments=args, reason="ask"
                    )
                )
            if fate == "ask_pending":
                stop = True
                exp.status = "pending"
                exp.output = None
                per_call.append(seq)
                expected.append(exp)
                continue
            if fate in ("ask_allow", "ask_edit"):
                edited = {"path": f"{run_id}/{call_id}.edited"} if fate == "ask_edit" else None
                seq.append(
                    ApprovalResolved(
                        call_id=call_id,
                        tool="files.write",
                        decision="allow",
                        edited_arguments=edited,
                    )
                )
                exp.approval = "allowed"
                if edited:
                    exp.arguments = edited
            if fate in ("ask_deny", "policy_deny"):
                seq.append(
                    ApprovalResolved(
                        call_id=call_id,
                        tool="files.write",
                        decision="deny",
                        decided_by="user" if fate == "ask_deny" else "policy",
                    )
                )
                seq.append(
                    ToolResult(
                        call_id=call_id, tool="files.write", error="the user refused this call"
                    )
                )
                exp.status, exp.output = "denied", None
                exp.approval = "denied" if fate == "ask_deny" else None
            else:
                seq.append(ToolCall(call_id=call_id, tool="files.write", arguments=exp.arguments))
                if fate == "error":
                    seq.append(ToolResult(call_id=call_id, tool="files.write", error="disk full"))
                    exp.status, exp.output = "failed", None
                else:
                    seq.append(ToolResult(call_id=call_id, tool="files.write", output=out))
            per_call.append(seq)
            expected.append(exp)
        order = draw(st.permutations([i for i, s in enumerate(per_call) for _ in s]))
        cursors = [0] * len(per_call)
        for i in order:
            add(per_call[i][cursors[i]])
            cursors[i] += 1
        if stop:
            ending = draw(st.sampled_from(["cancelled", "failed"]))
            break
    for exp in expected:
        if exp.status == "pending":
            exp.status = "cancelled" if ending == "cancelled" else "failed"
            exp.approval = "cancelled" if ending == "cancelled" else "abandoned"
    if ending == "completed":
        add(MessageCompleted(message_id=f"m_{run_id}_end", role="assistant", content="done"))
        add(RunCompleted(output="done"))
    elif ending == "cancelled":
        add(RunCancelled())
    else:
        add(RunFailed(error="model went away"))
    return RunPlan(run_id, parent, source, evs, expected)


def _merge(draw: Any, streams: list[list[EventBase]]) -> list[EventBase]:
    """Interleave streams at random, each kept in its own order."""
    order = draw(st.permutations([i for i, s in enumerate(streams) for _ in s]))
    cursors = [0] * len(streams)
    out = []
    for i in order:
        out.append(streams[i][cursors[i]])
        cursors[i] += 1
    return out


@st.composite
def session(draw: Any) -> tuple[list[Event], list[Expected]]:
    """A session of one to three top-level runs, one after the other: a lone agent, a team
    whose members work at once, or a workflow whose parallel steps do."""
    events: list[EventBase] = []
    expected: list[Expected] = []
    for top in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["agent", "team", "workflow"]))
        top_id = f"r_{top}"
        if kind == "agent":
            plan = draw(run_plan(top_id, "helper", None))
            events += plan.events
            expected += plan.expected
            continue
        name = "desk" if kind == "team" else "brief"
        events.append(
            _ev(RunStarted(target_kind=kind, target=name, input="go"), top_id, name, None)
        )
        members = draw(
            st.lists(st.sampled_from(["searcher", "librarian", "writer"]), min_size=1, max_size=3)
        )
        streams: list[list[EventBase]] = []
        for i, member in enumerate(members):
            child = f"{top_id}_{i}"
            plan = draw(run_plan(child, member, top_id))
            expected += plan.expected
            if kind == "team":
                head: list[EventBase] = [
                    _ev(
                        TeamDelegated(member=member, task="go", child_run_id=child),
                        top_id,
                        name,
                        None,
                    )
                ]
                tail: list[EventBase] = []
            else:
                path = f"fanout/{member}_{i}"
                head = [_ev(WorkflowStepStarted(path=path, kind="step"), top_id, name, None)]
                tail = [_ev(WorkflowStepCompleted(path=path, kind="step"), top_id, name, None)]
            streams.append(head + plan.events + tail)
        events += _merge(draw, streams)
        events.append(_ev(RunCompleted(output="all done"), top_id, name, None))
    stamped: list[Event] = []
    for seq, ev in enumerate(events, 1):
        ev.session_id, ev.seq, ev.ts = "s_ids", seq, 1_700_000_000 + seq / 100
        stamped.append(parse_event(ev.model_dump()))
    return stamped, expected


def assert_settled(state: SessionState) -> None:
    """Nothing of an ended run is left waiting or running."""
    for run in state.runs.values():
        if not run.ended:
            continue
        assert run.waiting == 0, run
    for item in state.items:
        if isinstance(item, ToolItem) and state.runs[item.run_id].ended:
            assert item.settled, (item.run_id, item.call_id, item.status)
    for a in state.approvals.values():
        if state.runs[a.run_id].ended:
            assert a.status != "pending", a


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(session())
def test_repeated_call_ids_stay_apart_and_every_call_ends_settled(
    built: tuple[list[Event], list[Expected]],
) -> None:
    events, expected = built
    state = SessionState()
    state.extend(events)
    assert_settled(state)
    tools = [i for i in state.items if isinstance(i, ToolItem)]
    # One transcript item per requested call, in each run's order, with its own fate.
    assert len(tools) == len(expected)
    by_run: dict[str, list[ToolItem]] = {}
    for t in tools:
        by_run.setdefault(t.run_id, []).append(t)
    want: dict[str, list[Expected]] = {}
    for e in expected:
        want.setdefault(e.run_id, []).append(e)
    assert set(by_run) == set(want)
    for run_id, items in by_run.items():
        for item, exp in zip(items, want[run_id], strict=True):
            assert (item.call_id, item.status) == (exp.call_id, exp.status)
            assert item.output == exp.output
            assert item.arguments == exp.arguments
    # Approvals: one per (run, call) that asked, decided as that run decided it.
    asked = {(e.run_id, e.call_id): e.approval for e in expected if e.approval}
    got = {k: a.status for k, a in state.approvals.items()}
    for key, status in asked.items():
        assert got[key] == status, key
    assert not state.pending_approvals()
    # Folding event by event (a live run's frames) ends in the same place.
    live = SessionState()
    for ev in events:
        live.apply(ev)
        live.take_changes()
        # The queue of waiting calls is exactly the approvals still pending, oldest first.
        pending = [a for a in live.approvals.values() if a.status == "pending"]
        assert list(live.waiting.values()) == sorted(pending, key=lambda a: a.seq)
        assert sum(r.waiting for r in live.runs.values()) == len(pending)
    assert [(t.run_id, t.call_id, t.status) for t in live.items if isinstance(t, ToolItem)] == [
        (t.run_id, t.call_id, t.status) for t in tools
    ]


def test_a_pending_call_of_one_run_does_not_answer_for_another() -> None:
    """Two members wait on ``call_t2_0`` at once: two approvals, each decided on its own."""
    events: list[EventBase] = [
        _ev(RunStarted(target_kind="team", target="panel", input="q"), "r_t", "panel", None)
    ]
    for member in ("searcher", "librarian"):
        rid = f"r_{member}"
        events += [
            _ev(RunStarted(target_kind="agent", target=member, input="q"), rid, member, "r_t"),
            _ev(
                MessageCompleted(
                    message_id=f"m_{member}",
                    role="assistant",
                    content="",
                    tool_calls=[ToolCallRequest(id="call_t2_0", tool=f"{member}.tool")],
                ),
                rid,
                member,
                "r_t",
            ),
            _ev(
                ApprovalRequired(
                    call_id="call_t2_0", tool=f"{member}.tool", arguments={}, reason="ask"
                ),
                rid,
                member,
                "r_t",
            ),
        ]
    state = SessionState()
    for seq, ev in enumerate(events, 1):
        ev.session_id, ev.seq = "s", seq
        state.apply(ev)
    pending = state.pending_approvals()
    assert sorted(a.key for a in pending) == [
        ("r_librarian", "call_t2_0"),
        ("r_searcher", "call_t2_0"),
    ]
    state.apply(
        _ev(
            ApprovalResolved(
                call_id="call_t2_0", tool="searcher.tool", decision="deny", session_id="s", seq=99
            ),
            "r_searcher",
            "searcher",
            "r_t",
        )
    )
    assert [a.key for a in state.pending_approvals()] == [("r_librarian", "call_t2_0")]
    tools = {t.run_id: t for t in state.items if isinstance(t, ToolItem)}
    assert tools["r_searcher"].status == "denied"
    assert tools["r_librarian"].status == "awaiting"


def _sample(path: Path) -> list[Event]:
    from workbench.sessions import read_archive

    _, events = read_archive(path)
    return list(events)


@pytest.mark.parametrize("path", SAMPLE_SESSIONS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_recorded_sample_sessions_fold_to_what_they_recorded(path: Path) -> None:
    """The shipped recordings (test model, repeated ids): every call shows its own result."""
    events = _sample(path)
    ids = Counter(e.call_id for e in events if e.type == "tool.call")
    state = SessionState()
    state.extend(events)
    assert_settled(state)
    assert all(r.ended for r in state.runs.values())
    results = {(e.run_id, e.call_id): e for e in events if e.type == "tool.result"}
    requested = [
        (e.run_id, c.id, c.tool)
        for e in events
        if e.type == "message.completed"
        for c in e.tool_calls
    ]
    tools = [i for i in state.items if isinstance(i, ToolItem)]
    assert [(t.run_id, t.call_id, t.tool) for t in tools] == requested
    for t in tools:
        res = results.get(t.key)
        assert res is not None, t.key
        assert (t.output, t.error) == (res.output, res.error)
        assert t.status in ("done", "failed", "denied")
    approvals: list[ApprovalState] = list(state.approvals.values())
    assert all(a.status in ("allowed", "denied") for a in approvals)
    # The recording really does repeat ids (else this test would prove nothing).
    if len(tools) > 2:
        assert max(ids.values()) > 1


@pytest.mark.parametrize("path", SAMPLE_SESSIONS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_each_lane_reads_in_the_order_things_happened(path: Path) -> None:
    """A member's or a step's run reads: its task, its tool calls, its answer, its end."""
    from screens.state import AssistantItem, EndItem, UserItem

    state = SessionState()
    state.extend(_sample(path))
    for run in state.runs.values():
        if run.parent_run_id is None or run.kind != "agent":
            continue
        items = [i for i in state.items if i.run_id == run.run_id]
        kinds = [type(i).__name__ for i in items if not type(i).__name__ == "NoteItem"]
        assert isinstance(items[0], UserItem) and items[0].task, (run.target, kinds)
        assert isinstance(items[-1], EndItem), (run.target, kinds)
        answers = [n for n, i in enumerate(items) if isinstance(i, AssistantItem)]
        tools = [n for n, i in enumerate(items) if isinstance(i, ToolItem)]
        assert answers and all(t < answers[-1] for t in tools), (run.target, kinds)
        assert [i.seq if hasattr(i, "seq") else i.ts for i in items] == sorted(
            i.seq if hasattr(i, "seq") else i.ts for i in items
        )
