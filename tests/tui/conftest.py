"""Fixtures of the TUI tests: a workspace on the offline ``test`` model, the app on a real
engine (SQLite in tmp_path) or on the scripted fake, and helpers to wait for it."""

from __future__ import annotations

import asyncio
import os
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from screens.app import WorkbenchApp


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Times print in UTC, so snapshots do not depend on where they run."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


@pytest.fixture
def tui_workspace(tmp_path: Path) -> Path:
    """A workspace: ``helper`` may write files (each write asks), a team, a workflow."""
    root = tmp_path / "ws"
    root.mkdir()
    (root / "workbench.yaml").write_text(
        textwrap.dedent(
            """\
            models:
              default: test
            agents:
              helper:
                instructions: Answer briefly.
                tools: [files.write]
              plain:
                instructions: Answer.
              critic:
                instructions: Criticise.
            teams:
              desk:
                mode: broadcast
                leader: plain
                members: [plain, critic]
            workflows:
              brief:
                steps:
                  - {step: gather, agent: plain}
                  - parallel:
                      - {step: a, agent: plain}
                      - {step: b, agent: critic}
            approvals:
              default: ask
            """
        )
    )
    return root


def real_app(
    root: Path, db: str, *, talk_to: tuple[str, str] | None = ("agent", "helper"), **kw: Any
) -> WorkbenchApp:
    """The app on a real engine (opened in the app's worker, like in production).

    ``talk_to``: the target :func:`wait_engine` chooses once the engine is open (the app
    opens on a workspace's workflow, else team, else agent; most tests talk to the
    ``helper`` agent); None keeps the app's own choice.
    """

    def factory() -> Any:
        from workbench.engine import Engine

        return Engine.open(root, db)

    kw.setdefault("animate", False)
    kw.setdefault("watch_workspace", False)
    kw.setdefault("warm_up", False)
    app = WorkbenchApp(root, db, engine_factory=factory, **kw)
    app._test_talk_to = talk_to  # type: ignore[attr-defined]
    return app


async def wait_for(pilot: Any, condition: Callable[[], Any], timeout: float = 10.0) -> None:
    """Let the app run until ``condition()`` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for the app")
        await pilot.pause(0.02)


async def wait_engine(pilot: Any) -> None:
    """Until the engine is open (and the target the test talks to is chosen)."""
    app = pilot.app
    await wait_for(pilot, lambda: app.engine is not None)
    talk_to = getattr(app, "_test_talk_to", None)
    if talk_to is not None and talk_to[1] in getattr(app.engine.workspace, f"{talk_to[0]}s", {}):
        await wait_for(pilot, lambda: app.view is not None and app.view.chat.choices)
        app.choose_target(*talk_to)


def events_of(app: WorkbenchApp) -> list[Any]:
    """The stored events of the app's session."""
    assert app.engine is not None and app.session_id is not None
    return list(app.engine.session_events(app.session_id))


def env_flag(name: str) -> bool:
    """A truthy environment variable."""
    return os.environ.get(name, "") not in ("", "0")
