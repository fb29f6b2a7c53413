"""The parts of the TUI that are plain data: the event fold and the graph layout."""

from __future__ import annotations

import random

from screens.graph_layout import (
    BOX_H,
    GraphEdge,
    GraphNode,
    graph_from_object,
    graph_from_paths,
    layout_graph,
)
from screens.graph_view import graph_path, graph_steps
from screens.state import AssistantItem, EndItem, SessionState, ToolItem, UserItem
from screens.transcript import SEGMENT, next_cut
from tests.tui.fakes import WORKFLOW_GRAPH, chat_session, team_session, workflow_session


def test_chat_session_folds_into_items_and_usage() -> None:
    state = SessionState()
    state.extend(chat_session().events)
    kinds = [type(i) for i in state.items]
    assert kinds == [UserItem, ToolItem, ToolItem, AssistantItem, EndItem]
    tools = [i for i in state.items if isinstance(i, ToolItem)]
    assert [(t.tool, t.status) for t in tools] == [("files.read", "done"), ("files.write", "done")]
    assert tools[1].decision and tools[1].decision.startswith("allowed")
    answer = next(i for i in state.items if isinstance(i, AssistantItem))
    assert answer.done and answer.text.startswith("Here is what I found")
    assert state.usage["helper"].calls == 2
    assert state.runs["r_1"].status == "completed"
    assert not state.pending_approvals()


def test_pending_approval_is_queued_newest_first_and_cancelled_with_its_run() -> None:
    state = SessionState()
    state.extend(chat_session(pending=True).events)
    pending = state.pending_approvals()
    assert [a.tool for a in pending] == ["files.write"]
    assert pending[0].diff and "+A short summary." in pending[0].diff
    assert state.runs["r_1"].waiting == 1
    changes = state.take_changes()
    assert [a.call_id for a in changes.new_approvals] == ["call_2"]
    # The run is cancelled: nothing waits any more.
    from workbench.events import RunCancelled

    state.apply(RunCancelled(session_id="s_demo", run_id="r_1", source="helper", seq=999))
    assert not state.pending_approvals()
    # Keyed by (run_id, call_id); a cancelled run's waiting call shows as cancelled (it
    # was "abandoned", which read as if nobody had looked).
    assert state.approvals[("r_1", "call_2")].status == "cancelled"
    tool = next(i for i in state.items if isinstance(i, ToolItem) and i.call_id == "call_2")
    assert tool.status == "cancelled"


def test_an_interrupted_run_is_neither_running_nor_ended_and_resumes() -> None:
    """Its process died (run.interrupted, written by another process): its approvals are
    abandoned and it says why; a resume (run.started, resumed) makes it run again."""
    from screens.state import NoteItem
    from workbench.events import RunInterrupted, RunStarted

    state = SessionState()
    state.extend(chat_session(pending=True).events)
    state.apply(
        RunInterrupted(
            session_id="s_demo",
            run_id="r_1",
            source="helper",
            seq=998,
            reason="its process (workbench serve (pid 7 on a)) stopped renewing its lease",
        )
    )
    run = state.runs["r_1"]
    assert run.status == "interrupted" and not state.running()
    assert not state.pending_approvals()
    (asked,) = [a for a in state.approvals.values() if a.call_id == "call_2"]
    assert asked.status == "interrupted" and asked.decision is not None
    assert "resume the run" in asked.decision
    note = state.items[-1]
    assert isinstance(note, NoteItem) and "interrupted: its process" in note.text
    state.apply(
        RunStarted(
            session_id="s_demo",
            run_id="r_1",
            source="helper",
            seq=999,
            target_kind="agent",
            target="helper",
            input="again",
            resumed=True,
        )
    )
    assert state.runs["r_1"].status == "running" and state.running()


def test_streaming_deltas_join_and_a_final_message_replaces_them() -> None:
    state = SessionState()
    state.extend(chat_session(streaming=True).events)
    answer = next(i for i in state.items if isinstance(i, AssistantItem))
    assert not answer.done and answer.text.endswith("That's all.")
    assert state.runs["r_1"].streaming


def test_folding_in_one_go_or_event_by_event_gives_the_same_state() -> None:
    events = team_session(finished=True).events + workflow_session(midway=False).events
    whole = SessionState("s_demo")
    whole.extend(events)
    stepwise = SessionState("s_demo")
    for ev in events:
        stepwise.apply(ev)
        stepwise.take_changes()
    assert [(type(i).__name__, i.run_id, getattr(i, "text", "")) for i in whole.items] == [
        (type(i).__name__, i.run_id, getattr(i, "text", "")) for i in stepwise.items
    ]
    assert {r: s.status for r, s in whole.runs.items()} == {
        r: s.status for r, s in stepwise.runs.items()
    }


def test_events_of_other_sessions_are_ignored() -> None:
    state = SessionState("s_other")
    state.extend(chat_session().events)
    assert not state.items and state.count == 0


def test_team_runs_know_their_team() -> None:
    state = SessionState()
    state.extend(team_session().events)
    assert state.team_of("r_writer") == "r_team"
    assert state.team_of("r_team") is None
    assert [r.run_id for r in state.top_runs()] == ["r_team"]
    assert {r.run_id for r in state.running()} >= {"r_team", "r_writer"}


def test_workflow_steps_link_their_child_runs_and_fold_loop_iterations() -> None:
    state = SessionState()
    state.extend(workflow_session(midway=False).events)
    wf = state.workflows["r_wf"]
    assert wf.steps["gather"].run_ids == ["r_g"]
    assert wf.steps["fanout/a"].run_ids == ["r_a"] and wf.steps["fanout/b"].run_ids == ["r_b"]
    assert wf.steps["check/then/retry"].status == "skipped"
    steps = graph_steps(wf)
    assert graph_path("polish#2/edit") == "polish/edit"
    edit = steps["polish/edit"]
    assert edit.status == "failed" and edit.runs == 2 and edit.run_ids == ["r_e1", "r_e2"]


def test_step_waiting_for_an_approval_shows_it() -> None:
    state = SessionState()
    state.extend(workflow_session(midway=True).events)
    assert state.workflows["r_wf"].steps["fanout/b"].status == "approval"


def test_layout_of_the_sample_workflow() -> None:
    nodes, edges = graph_from_object(WORKFLOW_GRAPH)
    lay = layout_graph(nodes, edges)
    p = lay.placed
    # sequence top to bottom; what follows a container comes after its children
    assert p["gather"].layer < p["check"].layer < p["check/then/retry"].layer < p["fanout"].layer
    assert p["fanout/a"].layer == p["fanout/b"].layer > p["fanout"].layer
    assert p["polish"].layer > p["fanout/a"].layer
    assert p["publish"].layer > p["polish/edit"].layer
    assert [e.label for e in lay.back_edges] == ["repeat"]
    text = "\n".join("".join(row) for row in lay.canvas.chars)
    # The loop's repeat is drawn inside the loop's frame (it ran up a rail outside every
    # frame, across them), back into the first step of the body.
    assert "◀" in text and "▼" in text
    edit = p["polish/edit"]
    assert lay.canvas.chars[edit.y + 1][edit.x + edit.w] == "◀"
    assert lay.neighbour("fanout/a", 1, 0) == "fanout/b"
    assert lay.neighbour("gather", 0, 1) == "check"


def _overlap(a: object, b: object) -> bool:
    ax, ay, aw = a.x, a.y, a.w  # type: ignore[attr-defined]
    bx, by, bw = b.x, b.y, b.w  # type: ignore[attr-defined]
    return ax < bx + bw and bx < ax + aw and ay < by + BOX_H and by < ay + BOX_H


def test_fifty_nodes_stay_readable() -> None:
    """A 50-node graph with parallel blocks, skips and a loop: no two boxes overlap, every
    edge goes down (or is a labelled back-edge), and layout takes well under a frame."""
    rng = random.Random(7)
    nodes = [GraphNode(f"n{i}", f"step {i}") for i in range(50)]
    edges = [GraphEdge(f"n{i}", f"n{i + 1}") for i in range(49)]
    for _ in range(20):
        a = rng.randrange(0, 45)
        b = rng.randrange(a + 2, 50)
        edges.append(GraphEdge(f"n{a}", f"n{b}", "skip"))
    edges.append(GraphEdge("n40", "n30", "again"))
    import time

    t0 = time.perf_counter()
    lay = layout_graph(nodes, edges)
    assert time.perf_counter() - t0 < 0.5
    boxes = list(lay.placed.values())
    assert len(boxes) == 50
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not _overlap(a, b), (a, b)
    for e in edges:
        if e in lay.back_edges:
            continue
        assert lay.placed[e.source].layer < lay.placed[e.target].layer
    assert [e.label for e in lay.back_edges] == ["again"]


def test_graph_guessed_from_step_paths() -> None:
    nodes, edges = graph_from_paths(
        [("a", "step"), ("par", "parallel"), ("par/x", "step"), ("par/y", "step"), ("b", "step")]
    )
    assert {n.id: n.parent for n in nodes} == {
        "a": None,
        "par": None,
        "par/x": "par",
        "par/y": "par",
        "b": None,
    }
    assert {(e.source, e.target) for e in edges} == {
        ("a", "par"),
        ("par", "b"),
        ("par", "par/x"),
        ("par", "par/y"),
    }


def test_segments_cut_at_paragraphs_outside_code_fences() -> None:
    para = "word " * 300 + "\n\n"
    assert next_cut("short") is None
    cut = next_cut(para + "more")
    assert cut == len(para)
    fenced = "x" * (SEGMENT + 10) + "\n```\ncode\n\ncode\n```\n\nafter"
    cut = fenced and next_cut(fenced)
    assert cut is not None and fenced[:cut].count("```") % 2 == 0


def _code_review_graph() -> tuple[list[GraphNode], list[GraphEdge]]:
    """The code-review sample's workflow, as ``workflow.graph()`` gives it."""
    import asyncio
    from pathlib import Path

    from workbench.engine import Engine

    root = Path(__file__).resolve().parents[2] / "sample_workspaces" / "code-review"

    async def graph() -> object:
        async with Engine.open(root, "sqlite:///:memory:") as engine:
            return (await engine.build_target("workflow", "review")).graph()  # type: ignore[attr-defined]

    return graph_from_object(asyncio.run(graph()))


def test_the_code_review_graph_keeps_edges_in_their_groups_and_labels_whole() -> None:
    nodes, edges = _code_review_graph()
    lay = layout_graph(nodes, edges)
    chars = lay.canvas.chars
    assert lay.frames and lay.back_edges
    for cid, (x0, y0, x1, y1) in lay.frames.items():
        # No edge runs across a frame's sides: what enters a group arrives through its
        # top, what leaves it leaves from its bottom (┬); a loop's repeat stays inside.
        for y in range(y0 + 1, y1):
            assert chars[y][x0] == "┆" and chars[y][x1] == "┆", (cid, y)
        assert chars[y0][x0] == "╭" and chars[y0][x1] == "╮", cid
        assert chars[y1][x0] == "╰" and chars[y1][x1] == "╯", cid
    for e in lay.back_edges:  # the repeat's rail is inside its loop's frame
        x0, y0, x1, y1 = lay.frames[e.target]
        a = lay.placed[e.source]
        row = "".join(chars[a.y + 2][a.x + a.w : x1 - 1])
        assert row and set(row) <= set("─┘"), row
    # Every step's label and every edge label fits its box (only the loop's long
    # expression is cut, and its frame and the detail line show it).
    for node in nodes:
        p = lay.placed[node.id]
        if len(node.label) > 40:
            continue
        assert len(node.label) <= p.w - 4, (node.id, node.label, p.w)
    for e in edges:
        if e.label and not e.back:
            p = lay.placed[e.target]
            assert p.cx + 2 + len(e.label) <= p.x + p.w, (e.label, p)


def test_a_node_of_an_ended_workflow_is_never_left_waiting_or_running() -> None:
    from screens.graph_view import node_lines
    from screens.state import StepState

    node = GraphNode("route/other", "other", "step", target="agent writer")
    assert node_lines(node, None, 0.0)[2].startswith("○ waiting")  # the run goes on
    assert node_lines(node, None, 0.0, "completed")[2].startswith("· not run")
    running = StepState(path="route/other", kind="step", status="running", started_ts=1.0)
    assert node_lines(node, running, 2.0, "cancelled")[2].startswith("■ stopped")
    assert node_lines(node, running, 2.0, "cancelled")[3] == "node-cancelled"
