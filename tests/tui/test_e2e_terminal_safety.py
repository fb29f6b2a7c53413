"""A real terminal (tmux) keeps its title, its clipboard and its screen.

A scripted model makes ``shell.run`` print OSC 0 (window title), OSC 52 (clipboard write),
CSI 2J (clear screen) and a fake "approval needed" line, then asks for a second command,
and answers with the same sequences. In ``workbench run`` (the interactive prompt) and in
the TUI's replay view, tmux is then asked what it saw: the pane title is unchanged, no paste
buffer was written (tmux takes OSC 52 into a buffer with ``set-clipboard on``), the screen
was not cleared, and the real prompt is the last thing drawn, under the command it is about.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tui.test_e2e import ROOT, Tmux, _workbench
from workbench import sessions as lib
from workbench.store import Store

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

PRINT_ESCAPES = (
    "printf '\\033]0;PWNED-TITLE\\007\\033]52;c;SGVsbG8=\\007\\033[2J\\033[H"
    "approval needed: git status (read-only)\\n[y] allow once > \\n'"
)
ANSWER = "done \x1b]0;PWNED-TITLE\x07\x1b]52;c;SGVsbG8=\x07\x1b[2J\x9b2J the end"


@pytest.fixture
def model_server(tmp_path: Path) -> Iterator[str]:
    script = tmp_path / "replies.json"
    script.write_text(
        json.dumps(
            [
                {"tool_calls": [["shell__run", {"cmd": PRINT_ESCAPES}]]},
                {"tool_calls": [["shell__run", {"cmd": "touch pwned"}]]},
                {"text": ANSWER},
            ]
        )
    )
    out = tmp_path / "server.out"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.openai_server", "--script", str(script)],
            cwd=ROOT,
            stdout=sink,
        )
    try:
        deadline = time.monotonic() + 30
        while not out.read_text().startswith("READY "):
            assert proc.poll() is None and time.monotonic() < deadline, out.read_text()
            time.sleep(0.05)
        yield out.read_text().split()[1]
    finally:
        proc.terminate()
        proc.wait(10)


def _env(tmp_path: Path, workbench: str) -> dict[str, str]:
    home = tmp_path / "home"
    return {
        "PATH": f"{Path(workbench).parent}:{os.environ.get('PATH', '')}",
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "WORKBENCH_DB": f"sqlite:///{tmp_path / 'wb.db'}",
        "WORKBENCH_LOG": str(tmp_path / "wb.log"),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "TMUX_TMPDIR": str(tmp_path),
    }


def _terminal_untouched(tmux: Tmux) -> None:
    title = tmux.run("display-message", "-p", "-t", "e2e", "#{pane_title}").strip()
    assert "PWNED" not in title, title
    assert tmux.run("list-buffers") == "", "an OSC 52 clipboard write reached the terminal"


def _start(tmux: Tmux) -> None:
    tmux.start()
    tmux.run("set-option", "-g", "set-clipboard", "on")
    tmux.run("set-option", "-g", "history-limit", "5000")
    tmux.wait(lambda s: "SHELL-READY$" in s)
    tmux.type("printf 'BEFORE-THE-RUN\\n'")
    tmux.keys("Enter")
    tmux.wait(lambda s: "BEFORE-THE-RUN\n" in s)


def test_run_prompt_is_drawn_after_the_command_and_the_terminal_is_ours(
    tmp_path: Path, model_server: str
) -> None:
    workbench = _workbench()
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "workbench.yaml").write_text(
        "models:\n"
        f"  default: {{model: openai/scripted, api_base: '{model_server}', api_key: none}}\n"
        "agents:\n"
        "  helper:\n"
        "    tools: [shell.run]\n"
        "approvals:\n"
        "  default: ask\n"
        '  allow: ["shell.run:printf *"]\n'
    )
    tmux = Tmux(_env(tmp_path, workbench), ws)
    _start(tmux)
    try:
        tmux.type(f"{workbench} run go; echo EXIT=$?")
        tmux.keys("Enter")
        screen = tmux.wait(lambda s: "allow once  [s] this session" in s)
        _terminal_untouched(tmux)
        lines = [line for line in screen.splitlines() if line.strip()]
        assert "BEFORE-THE-RUN" in screen, f"the screen was cleared:\n{screen}"
        # The tool's fake line is shown as text, after its escapes, never as a prompt.
        fake = next(i for i, line in enumerate(lines) if line.startswith("← shell.run"))
        assert "\\x1b[2J\\x1b[Happroval needed: git status" in lines[fake], screen
        # The real question comes last, right under the call it is about.
        assert lines[-1].startswith("[y] allow once  [s] this session"), screen
        panel = "\n".join(lines[fake + 1 :])
        assert "touch pwned" in panel and "approval needed" in panel
        tmux.type("n")
        tmux.keys("Enter")
        tmux.wait(lambda s: "note for the model" in s)
        tmux.keys("Enter")
        screen = tmux.wait(lambda s: "EXIT=" in s, timeout=60)
        _terminal_untouched(tmux)
        assert "BEFORE-THE-RUN" in screen, f"the screen was cleared:\n{screen}"
        assert "\\x1b]0;PWNED-TITLE\\x07" in screen  # the answer's sequences, as text
        assert not (ws / "pwned").exists()
    finally:
        tmux.kill()


def test_tui_replay_of_hostile_text_leaves_the_terminal_alone(tmp_path: Path) -> None:
    from tests.test_terminal_safety import nasty_events

    workbench = _workbench()
    store_url = f"sqlite:///{tmp_path / 'source.db'}"
    with Store.open(store_url) as store:
        store.create_session("s_nasty", title="hostile")
        store.append_many(nasty_events("s_nasty"))  # type: ignore[arg-type]
        export = tmp_path / "nasty.jsonl"
        export.write_text(lib.export_session(store, "s_nasty", "jsonl"))
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "workbench.yaml").write_text("agents:\n  helper: {model: test}\n")
    tmux = Tmux(_env(tmp_path, workbench), ws)
    _start(tmux)
    try:
        tmux.type(f"{workbench} replay {export} --speed 0; echo EXIT=$?")
        tmux.keys("Enter")
        screen = tmux.wait(lambda s: "PWNED-TITLE" in s, timeout=60)
        time.sleep(1.0)  # let every pane draw
        _terminal_untouched(tmux)
        assert "\\x1b]0;PWNED-TITLE" in tmux.screen()
        tmux.keys("C-q")
        screen = tmux.wait(lambda s: "EXIT=" in s, timeout=30)
        _terminal_untouched(tmux)
        assert "BEFORE-THE-RUN" in screen, f"the screen was cleared:\n{screen}"
    finally:
        tmux.kill()
