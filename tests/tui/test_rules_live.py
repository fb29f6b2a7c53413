"""Rules live: a rule removed anywhere stops applying at the next call in a running TUI, and
the rules in force are listed and removable in the TUI (the approvals pane, the palette)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from screens.approvals import ConfirmRulesModal
from screens.palette import commands_for
from tests.tui.conftest import events_of, real_app, wait_engine, wait_for

SIZE = (120, 40)


def of_type(events: list[Any], kind: str) -> list[Any]:
    return [e for e in events if e.type == kind]


async def send(pilot: Any, text: str) -> None:
    app = pilot.app
    app.view.show("chat")
    await pilot.pause()
    app.prompt.focus()
    await pilot.press(*text)
    await pilot.press("enter")


async def runs_done(pilot: Any, n: int) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: len(of_type(events_of(app), "run.completed")) == n)
    await wait_for(pilot, lambda: not app._active)


async def allow_always(pilot: Any) -> None:
    app = pilot.app
    await send(pilot, "write it")
    await wait_for(pilot, lambda: app.state.pending_approvals())
    await pilot.press("a")
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRulesModal))
    await pilot.press("y")
    await runs_done(pilot, 1)


async def test_a_rule_removed_by_the_cli_stops_applying_in_the_running_tui(
    tui_workspace: Path, db_url: str
) -> None:
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await allow_always(pilot)
        await send(pilot, "again")  # the saved rule decides: nobody is asked
        await runs_done(pilot, 2)
        assert len(of_type(events_of(app), "approval.required")) == 1
        assert app.engine is not None
        (rule,) = app.engine.store.list_rules(str(tui_workspace))
        out = subprocess.run(
            [sys.executable, "-m", "workbench.cli", "rules", "rm", rule.id]
            + ["-w", str(tui_workspace), "--db", db_url],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        await send(pilot, "and again")  # asks at once, no restart
        await wait_for(pilot, lambda: app.state.pending_approvals())
        assert len(of_type(events_of(app), "approval.required")) == 2
        await pilot.press("n")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "DenyNoteModal")
        await pilot.press("enter")
        await runs_done(pilot, 3)


async def test_the_rules_in_force_are_listed_and_removed_in_the_approvals_pane(
    tui_workspace: Path, db_url: str
) -> None:
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await allow_always(pilot)
        pane = app.view.approvals
        await wait_for(pilot, lambda: len(pane._rules) == 1)
        await pilot.press("f5")
        await pilot.pause(0.1)
        await pilot.press("r")
        await pilot.pause(0.1)
        assert pane.rules_list.has_focus
        assert "allow files.write" in str(pane.rules_list.get_option_at_index(0).prompt)
        await pilot.press("delete")
        await wait_for(pilot, lambda: not pane._rules)
        assert app.engine is not None
        assert app.engine.store.list_rules(str(tui_workspace)) == []
        await send(pilot, "again")
        await wait_for(pilot, lambda: app.state.pending_approvals())  # it asks again


async def test_a_session_rule_is_listed_and_removed_from_the_palette(
    tui_workspace: Path, db_url: str
) -> None:
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await send(pilot, "write it")
        await wait_for(pilot, lambda: app.state.pending_approvals())
        await pilot.press("s")
        await runs_done(pilot, 1)
        await wait_for(pilot, lambda: len(app.rules) == 1)
        assert app.rules[0].scope == "session"
        (remove,) = [c for c in commands_for(app) if c[0].startswith("Remove rule:")]
        assert "files.write" in remove[0]
        remove[1]()
        await wait_for(pilot, lambda: not app.rules)
        assert app.engine is not None and app.engine.saved_rules(app.session_id or "") == []
        await send(pilot, "again")  # the same session asks again
        await wait_for(pilot, lambda: app.state.pending_approvals())
        assert len(of_type(events_of(app), "approval.required")) == 2
