"""Where a child run starts when its parent is resumed: one rule (``child_checkpoint``) for
the engine's children (``Engine.run_child``) and the agents a team builds itself
(``team.run_agent_child``). Real SQLite store; the child ids repeat across sessions, as a
resumed parent's do."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from workbench.events import MessageCompleted, RunCompleted, RunFailed, RunStarted, Usage
from workbench.runtime import child_checkpoint
from workbench.store import Store


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.open(db_url)
    yield s
    s.close()


def _started(session: str, run_id: str) -> RunStarted:
    return RunStarted(
        session_id=session,
        run_id=run_id,
        parent_run_id="r_parent",
        source="writer",
        target_kind="agent",
        target="writer",
        input="draft it",
    )


def test_a_child_that_never_ran_starts_under_its_id(store: Store) -> None:
    assert child_checkpoint(store, "s_1", "r_child") == (None, [], "r_child")


def test_a_completed_child_gives_its_recorded_outcome(store: Store) -> None:
    store.append_many(
        [
            _started("s_1", "r_done"),
            RunCompleted(
                session_id="s_1",
                run_id="r_done",
                output="the draft <b>",
                usage=Usage(prompt_tokens=7, completion_tokens=3),
                cost=0.25,
                structured={"ok": True},
            ),
        ],
        timeout=10,
    )
    recorded, prior, run_id = child_checkpoint(store, "s_1", "r_done")
    assert recorded is not None and run_id == "r_done"
    assert (recorded.status, recorded.output, recorded.structured) == (
        "completed",
        "the draft <b>",
        {"ok": True},
    )
    assert (recorded.usage.prompt_tokens, recorded.cost, recorded.run_id) == (7, 0.25, "r_done")
    assert [e.type for e in prior] == ["run.started", "run.completed"]


def test_an_interrupted_child_continues_from_its_events(store: Store) -> None:
    store.append_many(
        [
            _started("s_1", "r_half"),
            MessageCompleted(
                session_id="s_1", run_id="r_half", message_id="m1", role="user", content="x"
            ),
        ],
        timeout=10,
    )
    recorded, prior, run_id = child_checkpoint(store, "s_1", "r_half")
    assert recorded is None and run_id == "r_half"
    assert [e.type for e in prior] == ["run.started", "message.completed"]


def test_a_failed_child_runs_again_from_scratch_under_a_new_id(store: Store) -> None:
    store.append_many(
        [_started("s_1", "r_bad"), RunFailed(session_id="s_1", run_id="r_bad", error="boom")],
        timeout=10,
    )
    recorded, prior, run_id = child_checkpoint(store, "s_1", "r_bad")
    assert recorded is None and prior == []
    assert run_id != "r_bad" and run_id.startswith("r_")
