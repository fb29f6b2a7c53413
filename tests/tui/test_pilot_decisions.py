"""The TUI's ``e`` (edit, then allow) goes through the rules like any call: a deny rule on
the edited arguments wins, an ask rule asks again with the edit shown (pilot, real engine,
the offline ``test`` model, which calls ``files.write`` with ``path: test``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from screens.app import WorkbenchApp
from screens.approvals import EditArgumentsModal
from tests.tui.conftest import events_of, real_app, wait_engine, wait_for

SIZE = (120, 40)


def add_rules(root: Path, rules: str) -> None:
    path = root / "workbench.yaml"
    path.write_text(path.read_text() + rules)


def of_type(events: list[Any], kind: str) -> list[Any]:
    return [e for e in events if e.type == kind]


async def edit_to(pilot: Any, arguments: str) -> None:
    app: WorkbenchApp = pilot.app
    app.view.show("chat")
    await pilot.pause()
    app.prompt.focus()
    await pilot.press(*"write it")
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.state.pending_approvals())
    await pilot.press("f5")
    await pilot.pause()
    await pilot.press("e")
    await wait_for(pilot, lambda: isinstance(app.screen, EditArgumentsModal))
    app.screen.query_one("#edit-args").load_text(arguments)  # type: ignore[attr-defined]
    await pilot.press("ctrl+s")


async def test_e_into_a_denied_path_is_denied(tui_workspace: Path, db_url: str) -> None:
    add_rules(tui_workspace, '  deny: ["files.write:secret/**"]\n')
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await edit_to(pilot, '{"path": "secret/key.txt", "content": "x"}')
        await wait_for(
            pilot, lambda: not app._active and app.state.runs and not app.state.running()
        )
        events = events_of(app)
    resolved = of_type(events, "approval.resolved")
    assert [r.decision for r in resolved] == ["deny"]
    assert "the edited call is denied" in resolved[0].note
    assert not of_type(events, "tool.call")
    assert not (tui_workspace / "secret").exists() and not (tui_workspace / "test").exists()


async def test_e_into_an_ask_rule_asks_again_showing_the_edit(
    tui_workspace: Path, db_url: str
) -> None:
    add_rules(tui_workspace, '  ask: ["files.write:drafts/**"]\n')
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await edit_to(pilot, '{"path": "drafts/a.txt", "content": "draft"}')
        await wait_for(
            pilot,
            lambda: any(
                a.arguments.get("path") == "drafts/a.txt" for a in app.state.pending_approvals()
            ),
        )
        assert not (tui_workspace / "drafts").exists()
        (again,) = app.state.pending_approvals()
        assert "edited the arguments" in again.reason
        await pilot.pause(0.3)
        await pilot.press("y")
        await wait_for(
            pilot, lambda: not app._active and app.state.runs and not app.state.running()
        )
        events = events_of(app)
    assert (tui_workspace / "drafts" / "a.txt").read_text() == "draft"
    assert [e.arguments for e in of_type(events, "approval.required")] == [
        {"path": "test", "content": "test"},
        {"path": "drafts/a.txt", "content": "draft"},
    ]
