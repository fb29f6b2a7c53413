"""The first screen teaches: the workspace's agents, teams and workflows, who the prompt
talks to, the keys that matter, and what the test model is; each sample opens on the
target it is about."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from screens.prompt import TargetChoice
from screens.welcome import agents_on_test_model, preferred_target, welcome
from tests.tui.conftest import real_app, wait_engine, wait_for
from tests.tui.screen_text import screen_text
from workbench.workspace import load_workspace

SAMPLES = Path(__file__).resolve().parents[2] / "sample_workspaces"
ABOUT = {
    "research-desk": TargetChoice("team", "desk"),
    "code-review": TargetChoice("workflow", "review"),
    "debate": TargetChoice("team", "council"),
}


def plain(text: object) -> str:
    console = Console(width=200, file=io.StringIO(), color_system=None)
    with console.capture() as cap:
        console.print(text)
    return " ".join(cap.get().split())


def _load(name: str) -> object:
    from workbench.registry import available_toolkits

    return load_workspace(SAMPLES / name, known_toolkits=set(available_toolkits()) | {"mcp"})


@pytest.mark.parametrize("sample", sorted(ABOUT))
def test_each_sample_opens_on_the_target_it_is_about(sample: str) -> None:
    ws = _load(sample)
    target = preferred_target(ws)
    assert target == ABOUT[sample]
    text = plain(welcome(ws, target))
    assert f"Talking to {target.kind} {target.name}" in text
    for name in [*ws.agents, *ws.teams, *ws.workflows]:  # type: ignore[attr-defined]
        assert name in text
    assert "enter sends" in text and "ctrl+p" in text and "F1 every key" in text
    on_test, total = agents_on_test_model(ws)
    assert len(on_test) == total
    assert "[test model] Every agent here runs on the test model" in text


def test_a_workspace_on_a_real_model_says_nothing_of_the_test_model(tmp_path: Path) -> None:
    (tmp_path / "workbench.yaml").write_text(
        "models: {default: openai/gpt-4o}\nagents:\n  a: {instructions: x}\n"
        "  b: {model: test, instructions: y}\n"
    )
    ws = load_workspace(tmp_path)
    text = plain(welcome(ws, preferred_target(ws)))
    assert "[test model] b runs on the test model" in text
    (tmp_path / "workbench.yaml").write_text("models: {default: openai/gpt-4o}\nagents: {a: {}}\n")
    assert "test model" not in plain(welcome(load_workspace(tmp_path), None))


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])
async def test_the_app_opens_a_sample_on_its_target_with_the_welcome(
    db_url: str, size: tuple[int, int]
) -> None:
    app = real_app(SAMPLES / "code-review", db_url)
    async with app.run_test(size=size) as pilot:
        await wait_engine(pilot)
        await wait_for(pilot, lambda: app.view is not None and app.view.chat.target is not None)
        await pilot.pause(0.2)
        assert app.view.chat.target == ABOUT["code-review"]
        text = " ".join(screen_text(app).split())
        assert "Talking to workflow review" in text and "[test model]" in text
