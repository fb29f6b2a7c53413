"""Workflows: every primitive, their nesting, state and conflicts, routers, the graph.

Agents talk to the local OpenAI-compatible server through litellm; one responder plays
them all by the name in their system prompt ("You are upper."). Function steps come from a
``steps.py`` in the workspace folder.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import WriteWorkspace
from tests.support.openai_server import FakeOpenAI, Reply
from workbench.engine import Engine
from workbench.events import (
    Event,
    RunFailed,
    RunStarted,
    WorkflowConflict,
    WorkflowStepCompleted,
    WorkflowStepStarted,
)
from workbench.runtime import RunOutcome
from workbench.workflow import (
    Condition,
    GraphEdge,
    Loop,
    Parallel,
    Router,
    Step,
    StepContext,
    Workflow,
    build_workflow,
    graph_path,
)
from workbench.workspace import ExpressionError

STEPS_PY = """
import asyncio

def count_words(ctx):
    n = len(ctx.input.split())
    return {"output": str(n), "state": {"words": n}}

def passthrough(ctx):
    return ctx.input

async def branch_a(ctx):
    await asyncio.sleep(0.3)
    return {"output": "A", "state": {"who": "a", "a_only": 1, "shared": "same"}}

async def branch_b(ctx):
    await asyncio.sleep(0.1)
    return {"output": "B", "state": {"who": "b", "b_only": 2, "shared": "same"}}

def show_state(ctx):
    return ",".join(f"{k}={ctx.state[k]}" for k in sorted(ctx.state))

def bump(ctx):
    n = ctx.state.get("n", 0) + 1
    return {"output": f"draft{n}", "state": {"n": n}}

def pick(ctx):
    return "tech" if "error" in ctx.input else "billing"

def is_question(ctx):
    return ctx.input.rstrip().endswith("?")

def forty_two(ctx):
    return 42

def boom(ctx):
    raise ValueError("kaput")
"""


def who(req: dict[str, Any]) -> str:
    system = " ".join(m["content"] for m in req["messages"] if m["role"] == "system")
    m = re.search(r"You are (\w+)\.", system)
    return m.group(1) if m else ""


def last_user(req: dict[str, Any]) -> str:
    return str(next(m["content"] for m in reversed(req["messages"]) if m["role"] == "user"))


def responder(req: dict[str, Any]) -> Reply | None:
    name, text = who(req), last_user(req)
    if name == "upper":
        return Reply(text=text.upper())
    if name == "echo":
        return Reply(text=f"echo:{text}")
    if name == "router":
        return Reply(text="Route: billing." if "invoice" in text else "tech")
    if name == "lost":
        return Reply(text="I cannot decide.")
    return None


WORKFLOWS = """
  seq:
    steps:
      - {step: shout, agent: upper}
      - {step: count, function: "steps:count_words", output_key: n_words}
      - {step: report, agent: echo, input: 'json {"k": 1}: {steps.shout.output} has {state.words} words (was {input})'}
  cond:
    steps:
      - condition: "len(input) > 10"
        then: [{step: long, agent: upper}]
        else: [{step: short, agent: echo}]
      - {step: after, function: "steps:passthrough"}
  pycond:
    steps:
      - condition: "steps:is_question"
        name: question
        then: [{step: answer, agent: echo}]
  polish:
    steps:
      - loop: polish
        max_iterations: 5
        until: "state.n >= 3"
        steps:
          - {step: edit, function: "steps:bump"}
          - {step: review, agent: echo}
  forever:
    steps:
      - loop: again
        max_iterations: 2
        until: "steps.edit.output == 'never'"
        steps: [{step: edit, function: "steps:bump"}]
  fan:
    steps:
      - name: fan
        parallel:
          - {step: a, function: "steps:branch_a"}
          - {step: b, function: "steps:branch_b"}
          - {step: c, agent: upper}
      - {step: after, function: "steps:show_state"}
  routed:
    steps:
      - router: triage
        by: router
        routes:
          billing: [{step: invoice, agent: echo}]
          tech: [{step: fix, agent: upper}]
  routed_fn:
    steps:
      - router: triage
        by: "steps:pick"
        routes:
          billing: [{step: invoice, agent: echo}]
          tech: [{step: fix, agent: upper}]
  undecided:
    steps:
      - router: triage
        by: lost
        routes:
          billing: [{step: invoice, agent: echo}]
          tech: [{step: fix, agent: upper}]
  inner:
    steps: [{step: inner_up, agent: upper}]
  nested:
    steps:
      - loop: rounds
        max_iterations: 2
        steps:
          - condition: "iteration == 1"
            then:
              - parallel:
                  - {step: p1, workflow: inner}
                  - {step: p2, team: pair}
            else:
              - {step: tail, function: "steps:passthrough"}
  broken:
    steps:
      - {step: fine, agent: upper}
      - {step: explode, function: "steps:boom"}
      - {step: never, agent: echo}
  badvalue:
    steps:
      - {step: wrong, function: "steps:forty_two"}
"""


@pytest.fixture
def root(fake_model: FakeOpenAI, write_workspace: WriteWorkspace) -> Path:
    fake_model.responder = responder
    return write_workspace(
        f"""
        models:
          default: {{model: openai/fake, api_base: "{fake_model.base_url}", api_key: x}}
        agents:
          upper: {{instructions: You are upper.}}
          echo: {{instructions: You are echo.}}
          router: {{instructions: You are router.}}
          lost: {{instructions: You are lost.}}
        teams:
          pair: {{mode: sequential, members: [upper, echo]}}
        workflows:
        {WORKFLOWS.replace(chr(10), chr(10) + " " * 8)}
        """,
        {"steps.py": STEPS_PY},
    )


async def run(engine: Engine, name: str, prompt: str) -> tuple[RunOutcome, list[Event]]:
    seen: list[Event] = []
    remove = engine.add_listener(seen.append)
    try:
        outcome = await engine.run(name, prompt)
    finally:
        remove()
    return outcome, seen


def steps_of(events: list[Event], run_id: str | None = None) -> list[WorkflowStepCompleted]:
    return [
        e
        for e in events
        if isinstance(e, WorkflowStepCompleted) and (run_id is None or e.run_id == run_id)
    ]


def top_run(events: list[Event]) -> str:
    return next(e.run_id for e in events if isinstance(e, RunStarted) and e.parent_run_id is None)


# -- steps --------------------------------------------------------------------------------


async def test_steps_pass_outputs_state_and_templates(root: Path, db_url: str) -> None:
    async with Engine.open(root, db_url) as engine:
        outcome, events = await run(engine, "seq", "one two three")
    assert outcome.ok, outcome.error
    assert outcome.output == 'echo:json {"k": 1}: ONE TWO THREE has 3 words (was one two three)'
    wf = top_run(events)
    started = [(e.path, e.kind, e.input) for e in events if isinstance(e, WorkflowStepStarted)]
    assert started == [
        ("shout", "step", "one two three"),
        ("count", "function", "ONE TWO THREE"),  # the previous step's output
        ("report", "step", 'json {"k": 1}: ONE TWO THREE has 3 words (was one two three)'),
    ]
    done = steps_of(events, wf)
    assert [(d.path, d.status, d.output) for d in done] == [
        ("shout", "done", "ONE TWO THREE"),
        ("count", "done", "3"),
        ("report", "done", outcome.output),
    ]
    assert done[0].state == {} and done[1].state == {"words": 3, "n_words": "3"}
    assert done[0].usage is not None and done[0].usage.total_tokens > 0
    assert done[1].usage == done[1].usage.__class__()  # a function spends no tokens
    # Agent steps are child runs of the workflow, with their own transcript.
    children = [e for e in events if isinstance(e, RunStarted) and e.parent_run_id == wf]
    assert [c.target for c in children] == ["upper", "echo"]
    assert outcome.usage.total_tokens == sum((d.usage.total_tokens if d.usage else 0) for d in done)


async def test_condition_takes_one_branch_and_skips_the_other(root: Path, db_url: str) -> None:
    async with Engine.open(root, db_url) as engine:
        long, events = await run(engine, "cond", "a rather long input")
        short, events2 = await run(engine, "cond", "tiny")
        question, events3 = await run(engine, "pycond", "why?")
        statement, _ = await run(engine, "pycond", "because.")
    assert long.output == "A RATHER LONG INPUT"
    assert [(d.path, d.status) for d in steps_of(events)] == [
        ("cond1/else/short", "skipped"),
        ("cond1/then/long", "done"),
        ("cond1", "done"),
        ("after", "done"),
    ]
    assert short.output == "echo:tiny"
    assert ("cond1/then/long", "skipped") in [(d.path, d.status) for d in steps_of(events2)]
    assert question.output == "echo:why?"
    assert [d.path for d in steps_of(events3)] == ["question/then/answer", "question"]
    # No branch taken (no else): the input passes through.
    assert statement.output == "because."


async def test_loop_runs_until_its_condition_with_iteration_paths(root: Path, db_url: str) -> None:
    async with Engine.open(root, db_url) as engine:
        outcome, events = await run(engine, "polish", "text")
        bounded, events2 = await run(engine, "forever", "x")
    assert outcome.output == "echo:draft3"
    assert [d.path for d in steps_of(events)] == [
        "polish#1/edit",
        "polish#1/review",
        "polish#2/edit",
        "polish#2/review",
        "polish#3/edit",
        "polish#3/review",
        "polish",
    ]
    assert steps_of(events)[-1].state == {"n": 3}
    # The state carries over between iterations; the second review read the second draft.
    assert [d.output for d in steps_of(events) if d.path.endswith("review")][1] == "echo:draft2"
    # An end condition that never holds stops at max_iterations.
    assert bounded.output == "draft2"
    assert [d.path for d in steps_of(events2)] == ["again#1/edit", "again#2/edit", "again"]


async def test_parallel_branches_run_at_once_and_merge_state_deterministically(
    root: Path, db_url: str
) -> None:
    async with Engine.open(root, db_url) as engine:
        outcome, events = await run(engine, "fan", "go")
    assert outcome.ok, outcome.error
    # All three branches started before any finished.
    starts = [
        e.seq for e in events if isinstance(e, WorkflowStepStarted) and e.path.startswith("fan/")
    ]
    ends = [e.seq for e in steps_of(events) if e.path.startswith("fan/")]
    assert len(starts) == 3 and max(starts) < min(ends)
    # b finished first, but a comes first in the definition: a's value wins, and the
    # conflict is reported with both values; the same value from both is no conflict.
    finished = [d.path for d in steps_of(events) if d.path.startswith("fan/")]
    assert finished.index("fan/b") < finished.index("fan/a")
    conflicts = [e for e in events if isinstance(e, WorkflowConflict)]
    assert [(c.path, c.key, c.values) for c in conflicts] == [
        ("fan", "who", {"fan/a": "a", "fan/b": "b"})
    ]
    fan = next(d for d in steps_of(events) if d.path == "fan")
    assert fan.state == {"who": "a", "a_only": 1, "b_only": 2, "shared": "same"}
    # Each branch worked on its own copy of the state.
    a = next(d for d in steps_of(events) if d.path == "fan/a")
    assert a.state == {"who": "a", "a_only": 1, "shared": "same"}
    # Every branch's output is kept, in definition order.
    assert fan.output == "## a\nA\n\n## b\nB\n\n## c\nGO"
    assert outcome.output == "a_only=1,b_only=2,shared=same,who=a"


async def test_router_by_agent_and_by_function(
    root: Path, db_url: str, fake_model: FakeOpenAI
) -> None:
    async with Engine.open(root, db_url) as engine:
        billing, events = await run(engine, "routed", "my invoice is wrong")
        tech, _ = await run(engine, "routed", "it crashes")
        by_fn, events3 = await run(engine, "routed_fn", "an error occurred")
        lost, _ = await run(engine, "undecided", "anything")
    assert billing.output == "echo:my invoice is wrong"
    assert [(d.path, d.status) for d in steps_of(events)] == [
        ("triage/tech/fix", "skipped"),
        ("triage/billing/invoice", "done"),
        ("triage", "done"),
    ]
    # The routing agent's call is a child run with its own transcript.
    wf = top_run(events)
    assert [e.target for e in events if isinstance(e, RunStarted) and e.parent_run_id == wf] == [
        "router",
        "echo",
    ]
    router_req = next(r for r in fake_model.chat_requests if "You are router." in r.system)
    assert "Routes: billing, tech" in str(router_req.last_message["content"])
    assert tech.output == "IT CRASHES"
    assert by_fn.output == "AN ERROR OCCURRED"
    assert [d.path for d in steps_of(events3)] == [
        "triage/billing/invoice",
        "triage/tech/fix",
        "triage",
    ]
    assert lost.status == "failed" and "names no route" in (lost.error or "")
    assert "triage" in (lost.error or "")


async def test_primitives_nest_with_readable_paths(root: Path, db_url: str) -> None:
    async with Engine.open(root, db_url) as engine:
        outcome, events = await run(engine, "nested", "hi")
    assert outcome.ok, outcome.error
    wf = top_run(events)
    done = [(d.path, d.status) for d in steps_of(events, wf)]
    branches = {
        ("rounds#1/cond1/then/parallel1/p1", "done"),
        ("rounds#1/cond1/then/parallel1/p2", "done"),
    }
    assert set(done[1:3]) == branches  # the two branches, in the order they finished
    assert done[:1] + done[3:] == [
        ("rounds#1/cond1/else/tail", "skipped"),
        ("rounds#1/cond1/then/parallel1", "done"),
        ("rounds#1/cond1", "done"),
        ("rounds#2/cond1/then/parallel1", "skipped"),
        ("rounds#2/cond1/else/tail", "done"),
        ("rounds#2/cond1", "done"),
        ("rounds", "done"),
    ]
    # The nested workflow ran as a child run, with its own step events; the team too.
    children = {e.target: e for e in events if isinstance(e, RunStarted) and e.parent_run_id == wf}
    assert children["inner"].target_kind == "workflow" and children["pair"].target_kind == "team"
    inner = steps_of(events, children["inner"].run_id)
    assert [(d.path, d.output) for d in inner] == [("inner_up", "HI")]
    assert outcome.output == "## p1\nHI\n\n## p2\necho:HI"
    # Every event path is a node of the graph, once the iteration is taken off.
    graph_paths = {
        n.path for n in (await build_workflow(engine_for_graph(root), "nested")).graph().nodes
    }
    assert {graph_path(d.path) for d in steps_of(events, wf)} <= graph_paths


def engine_for_graph(root: Path) -> Any:
    """Something with a workspace, for build_workflow (no store needed for a graph)."""
    from workbench.workspace import load_workspace

    class _E:
        workspace = load_workspace(root)

    return _E()


async def test_a_failing_step_fails_the_workflow_with_its_path(root: Path, db_url: str) -> None:
    async with Engine.open(root, db_url) as engine:
        outcome, events = await run(engine, "broken", "x")
        wrong, _ = await run(engine, "badvalue", "x")
    assert outcome.status == "failed"
    assert outcome.error == "workflow 'broken': step 'explode' failed: ValueError: kaput"
    failed = [e for e in events if isinstance(e, RunFailed)]
    assert failed[-1].run_id == top_run(events) and "explode" in failed[-1].error
    assert [(d.path, d.status) for d in steps_of(events)] == [
        ("fine", "done"),
        ("explode", "failed"),
    ]
    assert steps_of(events)[-1].error == "ValueError: kaput"
    assert not any(isinstance(e, WorkflowStepStarted) and e.path == "never" for e in events)
    assert wrong.status == "failed" and "returns a str or a dict with 'output'" in (
        wrong.error or ""
    )


# -- definitions --------------------------------------------------------------------------


async def test_yaml_and_python_give_the_same_workflow(root: Path) -> None:
    engine = engine_for_graph(root)
    from_yaml = await build_workflow(engine, "nested")
    by_hand = Workflow(
        "nested",
        steps=[
            Loop(
                "rounds",
                [
                    Condition(
                        "iteration == 1",
                        then=[Parallel([Step("p1", workflow="inner"), Step("p2", team="pair")])],
                        else_=[Step("tail", function="steps:passthrough")],
                    )
                ],
                max_iterations=2,
            )
        ],
    )
    assert from_yaml == by_hand
    assert await build_workflow(engine, "fan") == Workflow(
        "fan",
        [
            Parallel(
                [
                    Step("a", function="steps:branch_a"),
                    Step("b", function="steps:branch_b"),
                    Step("c", agent="upper"),
                ],
                name="fan",
            ),
            Step("after", function="steps:show_state"),
        ],
    )


def test_graph_has_nodes_edges_nesting_and_labels(root: Path) -> None:
    wf = Workflow(
        "g",
        [
            Step("gather", agent="researcher"),
            Condition(
                "steps.gather.output contains 'TODO'",
                then=[Step("retry", agent="researcher")],
                else_=[Step("keep", function="steps:passthrough")],
            ),
            Loop(
                "polish",
                [Step("edit", agent="writer"), Step("check", agent="critic")],
                until="iteration >= 2",
                max_iterations=3,
            ),
            Parallel([Step("a", agent="writer"), Step("b", team="desk")]),
            Router(
                "triage",
                "router",
                {"short": [Step("s", agent="writer")], "long": [Step("l", agent="writer")]},
            ),
        ],
    )
    g = wf.graph()
    nodes = {n.path: (n.kind, n.label, n.parent, n.target) for n in g.nodes}
    assert nodes == {
        "gather": ("step", "gather", None, "agent researcher"),
        "cond1": ("condition", "if steps.gather.output contains 'TODO'", None, None),
        "cond1/then/retry": ("step", "retry", "cond1", "agent researcher"),
        "cond1/else/keep": ("function", "keep", "cond1", "function steps:passthrough"),
        "polish": ("loop", "polish until iteration >= 2 (max 3)", None, None),
        "polish/edit": ("step", "edit", "polish", "agent writer"),
        "polish/check": ("step", "check", "polish", "agent critic"),
        "parallel1": ("parallel", "parallel1", None, None),
        "parallel1/a": ("step", "a", "parallel1", "agent writer"),
        "parallel1/b": ("step", "b", "parallel1", "team desk"),
        "triage": ("router", "triage (by router)", None, None),
        "triage/short/s": ("step", "s", "triage", "agent writer"),
        "triage/long/l": ("step", "l", "triage", "agent writer"),
    }
    assert [n.path for n in g.nodes][:4] == [
        "gather",
        "cond1",
        "cond1/then/retry",
        "cond1/else/keep",
    ]
    assert set(g.edges) == {
        GraphEdge("gather", "cond1"),
        GraphEdge("cond1", "cond1/then/retry", "then"),
        GraphEdge("cond1", "cond1/else/keep", "else"),
        GraphEdge("cond1", "polish"),
        GraphEdge("polish", "polish/edit", "body"),
        GraphEdge("polish/edit", "polish/check"),
        GraphEdge("polish/check", "polish", "repeat", back=True),
        GraphEdge("polish", "parallel1"),
        GraphEdge("parallel1", "parallel1/a", "branch"),
        GraphEdge("parallel1", "parallel1/b", "branch"),
        GraphEdge("parallel1", "triage"),
        GraphEdge("triage", "triage/short/s", "short"),
        GraphEdge("triage", "triage/long/l", "long"),
    }
    data = g.to_dict()
    assert data["edges"][0] == {"source": "gather", "target": "cond1", "label": "", "back": False}
    assert graph_path("polish#2/edit") == "polish/edit"
    assert graph_path("a#1/b#12/c") == "a/b/c"


def test_python_definitions_are_checked() -> None:
    with pytest.raises(ValueError, match="without a\\s+bound"):
        Loop("l", [Step("s", agent="a")])
    with pytest.raises(ValueError, match="exactly one of agent, team, workflow, function"):
        Step("s", agent="a", team="t")
    with pytest.raises(ExpressionError):
        Condition("steps.x.output ===", then=[Step("s", agent="a")])
    with pytest.raises(ValueError, match="used twice"):
        Workflow("w", [Step("s", agent="a"), Parallel([Step("s", agent="b")])])
    with pytest.raises(ValueError, match="invalid step name"):
        Step("a/b", agent="a")


async def test_a_python_workflow_with_callables(root: Path, db_url: str) -> None:
    calls: list[StepContext] = []

    def shout(ctx: StepContext) -> dict[str, Any]:
        calls.append(ctx)
        return {"output": ctx.input.upper(), "state": {"seen": ctx.input}}

    async def long_enough(ctx: StepContext) -> bool:
        return len(ctx.state.get("seen", "")) > 3

    wf = Workflow(
        "py",
        [
            Step("shout", function=shout),
            Condition(long_enough, then=[Step("e", agent="echo", input="{state.seen}!")]),
        ],
    )
    async with Engine.open(root, db_url) as engine:
        outcome = await wf.run(engine, "hello")
        short = await wf.run(engine, "hey")
    assert outcome.output == "echo:hello!"
    assert short.output == "HEY"
    assert calls[0].path == "shout" and calls[0].workflow_input == "hello" and calls[0].root == root


# -- bad definitions through the CLI -------------------------------------------------------


@pytest.mark.parametrize(
    ("workflows", "key", "says", "line"),
    [
        (
            "a: {steps: [{step: x, workflow: w}]}\nw: {steps: [{step: y, workflow: a}]}",
            "workflows.w.steps[0].workflow",
            "cycle: workflow a -> w -> a",
            6,
        ),
        (
            "w: {steps: [{step: x, agent: nobody}]}",
            "workflows.w.steps[0].agent",
            "unknown agent",
            5,
        ),
        (
            "w: {steps: [{loop: l, steps: [{step: x, agent: upper}]}]}",
            "workflows.w.steps[0]",
            "max_iterations",
            5,
        ),
        (
            "w: {steps: [{step: x, agent: upper}, {condition: 'steps.x.output ===', then: [{step: y, agent: upper}]}]}",
            "workflows.w.steps[1].condition",
            "cannot parse",
            5,
        ),
    ],
    ids=["cycle", "unknown-agent", "unbounded-loop", "bad-expression"],
)
def test_bad_definitions_exit_2_naming_file_line_and_key(
    workflows: str,
    key: str,
    says: str,
    line: int,
    write_workspace: WriteWorkspace,
    tmp_path: Path,
) -> None:
    import subprocess

    workflows = workflows.replace("\n", "\n" + " " * 10)  # stay inside the dedented block
    root = write_workspace(
        f"""
        agents:
          upper: {{instructions: You are upper.}}
        workflows:
          {workflows}
        """
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "run",
            "-w",
            str(root),
            "--db",
            f"sqlite:///{tmp_path}/x.db",
            "--workflow",
            "w",
            "hi",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**__import__("os").environ, "COLUMNS": "400"},
    )
    assert proc.returncode == 2, proc.stderr
    err = " ".join(proc.stderr.split())
    assert f"{root / 'workbench.yaml'}:{line}: {key}" in err, err
    assert says in err, err
