"""The graph follows the run: the node working now (or waiting for a decision) is selected
and kept in view at 80x24 and 120x40; the counter counts nodes and executions apart."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from screens.graph_layout import BOX_H
from tests.tui.conftest import events_of, real_app, wait_engine, wait_for


@pytest.fixture
def long_workspace(tmp_path: Path) -> Path:
    root = tmp_path / "long"
    root.mkdir()
    (root / "workbench.yaml").write_text(
        textwrap.dedent(
            """\
            models: {default: test}
            agents:
              plain: {instructions: Answer.}
              writer: {instructions: Write., tools: [files.write]}
            workflows:
              long:
                steps:
                  - {step: one, agent: plain}
                  - {step: two, agent: plain}
                  - {step: three, agent: plain}
                  - {step: four, agent: plain}
                  - loop: again
                    max_iterations: 2
                    steps:
                      - {step: write, agent: writer}
            approvals: {default: ask}
            """
        )
    )
    return root


def in_view(canvas: Any, node: str) -> bool:
    p = canvas.layout_.placed[node]
    top, left = int(canvas.scroll_y), int(canvas.scroll_x)
    height, width = canvas.scrollable_content_region.height, canvas.size.width
    return top <= p.y and p.y + BOX_H <= top + height and left <= p.x < left + width


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_the_waiting_node_is_selected_and_in_view(
    long_workspace: Path, db_url: str, size: tuple[int, int]
) -> None:
    app = real_app(long_workspace, db_url)
    async with app.run_test(size=size) as pilot:
        await wait_engine(pilot)
        app.choose_target("workflow", "long")
        app.send_prompt("go")
        await pilot.press("f4")
        canvas = app.view.graph.canvas
        for n in (1, 2):  # each iteration of the loop asks once
            await wait_for(pilot, lambda n=n: len(app.state.approvals) == n)
            await wait_for(pilot, lambda: canvas.selected == "again/write")
            # The canvas scrolls once the selection's layout is refreshed: a frame or two later
            # (on a loaded machine, more than a fixed pause).
            await wait_for(pilot, lambda: in_view(canvas, "again/write"))
            assert not in_view(canvas, "one")  # it did scroll: the top is out of sight
            (asked,) = app.state.pending_approvals()
            await pilot.press("y")
            await wait_for(pilot, lambda asked=asked: asked.status == "allowed")
        await wait_for(pilot, lambda: any(e.type == "run.completed" for e in events_of(app)))
        await pilot.pause(0.2)
        head = str(app.view.graph.query_one("#graph-head").render())
        # six nodes, seven executions (the loop's body ran twice): not "7/6 steps"
        assert "6/6 nodes done" in head and "7 executions" in head


async def test_moving_the_selection_stops_following_until_f(
    long_workspace: Path, db_url: str
) -> None:
    app = real_app(long_workspace, db_url)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_engine(pilot)
        app.choose_target("workflow", "long")
        app.send_prompt("go")
        await pilot.press("f4")
        canvas = app.view.graph.canvas
        await wait_for(pilot, lambda: canvas.selected == "again/write")
        canvas.focus()
        await pilot.press("up")
        moved = canvas.selected
        assert moved != "again/write" and not canvas.following
        await pilot.press("y")  # decides the waiting call; the next iteration asks
        await wait_for(pilot, lambda: len(app.state.approvals) == 2)
        await pilot.pause(0.2)
        assert canvas.selected == moved  # left where the person put it
        await pilot.press("f")
        await wait_for(pilot, lambda: canvas.selected == "again/write")
        await pilot.press("y")
