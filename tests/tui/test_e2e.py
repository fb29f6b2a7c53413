"""End to end in a real terminal: the installed ``workbench`` command inside tmux.

A local OpenAI-compatible server (tests/support/openai_server.py) plays the model through
litellm's real HTTP path: it asks to write a file, then answers. The test types a prompt,
approves the call with a key, reads the answer off the screen, quits with ctrl+q, and
checks that the terminal is given back (alternate screen left, shell prompt visible).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
    pytest.mark.timeout(180),
]

ROOT = Path(__file__).resolve().parents[2]
ANSWER = "The summary is written to notes.txt."


def _workbench() -> str:
    local = Path(sys.executable).parent / "workbench"
    found = str(local) if local.exists() else shutil.which("workbench")
    if not found:
        pytest.skip("the workbench command is not installed (pip install -e .)")
    return found


@pytest.fixture
def model_server(tmp_path: Path) -> Iterator[str]:
    """The scripted model: a write_file call, then the answer."""
    script = tmp_path / "replies.json"
    script.write_text(
        json.dumps(
            [
                {"tool_calls": [["files__write", {"path": "notes.txt", "content": "summary\n"}]]},
                {"text": ANSWER},
            ]
        )
    )
    out = tmp_path / "server.out"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.openai_server",
                "--port",
                "0",
                "--script",
                str(script),
            ],
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


class Tmux:
    """One tmux server of our own (its own socket), one window running a plain shell."""

    def __init__(self, env: dict[str, str], cwd: Path, size: tuple[int, int] = (120, 40)) -> None:
        self.socket = f"wb-e2e-{uuid.uuid4().hex[:8]}"
        self.env = env
        self.cwd = cwd
        self.size = size

    def run(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            env=self.env,
            check=True,
        )
        return out.stdout

    def start(self) -> None:
        self.run(
            "new-session",
            "-d",
            "-s",
            "e2e",
            "-x",
            str(self.size[0]),
            "-y",
            str(self.size[1]),
            "-c",
            str(self.cwd),
            "env",
            "PS1=SHELL-READY$ ",
            "bash",
            "--norc",
            "--noprofile",
        )

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "e2e", *keys)

    def type(self, text: str) -> None:
        self.run("send-keys", "-t", "e2e", "-l", text)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "e2e")

    def alternate_on(self) -> str:
        return self.run("display-message", "-p", "-t", "e2e", "#{alternate_on}").strip()

    def wait(self, what: Callable[[str], bool], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if what(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; the screen shows:\n{screen}")
            time.sleep(0.1)

    def kill(self) -> None:
        subprocess.run(
            ["tmux", "-L", self.socket, "kill-server"], capture_output=True, env=self.env
        )


def test_prompt_approve_answer_quit(tmp_path: Path, model_server: str) -> None:
    workbench = _workbench()
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "workbench.yaml").write_text(
        "models:\n"
        f"  default: {{model: openai/scripted, api_base: '{model_server}', api_key: none}}\n"
        "agents:\n"
        "  helper:\n"
        "    instructions: Answer briefly.\n"
        "    tools: [files.write]\n"
        "approvals:\n"
        "  default: ask\n"
    )
    home = tmp_path / "home"
    env = {
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
    tmux = Tmux(env, ws)
    tmux.start()
    try:
        tmux.wait(lambda s: "SHELL-READY$" in s)
        tmux.type(f"{workbench} && echo EXIT=$?")
        tmux.keys("Enter")
        tmux.wait(lambda s: "workspace ws" in s)
        assert tmux.alternate_on() == "1"
        tmux.type("Summarise the notes please")
        tmux.keys("Enter")
        # The call shows as a card in the chat; one key (the prompt is empty) allows it.
        tmux.wait(lambda s: "helper asks" in s and "y allow once" in s)
        tmux.keys("y")
        screen = tmux.wait(lambda s: ANSWER in s and "done in" in s)
        assert "call waits" not in screen
        assert "files.write" in screen
        assert (ws / "notes.txt").read_text() == "summary\n"
        tmux.keys("C-q")
        # The shell draws its prompt a moment after the exit code: wait for both (the
        # screen was read between the two once in a full run), then check the terminal.
        screen = tmux.wait(
            lambda s: "EXIT=0" in s and s.rstrip().splitlines()[-1].startswith("SHELL-READY$"),
            timeout=15,
        )
        assert tmux.alternate_on() == "0"
        assert screen.rstrip().splitlines()[-1].startswith("SHELL-READY$")
    finally:
        tmux.kill()


# -- each sample workspace, on the test model, from the TUI ------------------------------

SAMPLES = ROOT / "sample_workspaces"

# What each sample is about (the target it opens on), a prompt, and what the run's end reads.
SHOWCASE = {
    "research-desk": ("team desk", "What should a brief on agent evaluation cover?", "desk done"),
    "code-review": ("workflow review", "Review repo/ and fix what fails.", "review done"),
    "debate": ("team council", "Should our team adopt a four-day week?", "council done"),
}

PENDING = ("call waits", "calls wait", "asks ·", "◐ running", "⚠ approval", "⟳", "○ waiting")
"""What a screen must not show once the run has ended: a waiting call (the prompt's hint,
a card), a running node or tool, a node still 'waiting'."""


def tui_env(tmp_path: Path, workbench: str) -> dict[str, str]:
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


def sample_copy(name: str, tmp_path: Path) -> Path:
    """A copy of a sample workspace that never reaches the network: web search goes
    through a proxy on a closed local port (it fails at once, as a tool error) and asks
    first, so the research desk has calls to approve."""
    ws = tmp_path / name
    shutil.copytree(SAMPLES / name, ws, ignore=shutil.ignore_patterns("sessions", "__pycache__"))
    yaml = ws / "workbench.yaml"
    text = yaml.read_text()
    if name == "research-desk":
        text = text.replace(
            "allow: [web.search, knowledge.search, memory.recall, memory.remember]",
            "allow: [knowledge.search, memory.recall, memory.remember]",
        )
        text = text.replace(
            "  web:\n    timeout: 10",
            "  web:\n    timeout: 5\n    proxy: http://127.0.0.1:9",
        )
        assert "proxy: http://127.0.0.1:9" in text and "allow: [knowledge.search" in text
    yaml.write_text(text)
    return ws


@pytest.mark.parametrize(
    ("sample", "size"),
    [
        ("research-desk", (120, 40)),
        ("code-review", (120, 40)),
        ("debate", (120, 40)),
        ("code-review", (80, 24)),
    ],
    ids=["research-desk", "code-review", "debate", "code-review-80x24"],
)
def test_each_sample_runs_its_showcase_from_the_tui_one_key_per_approval(
    tmp_path: Path, sample: str, size: tuple[int, int]
) -> None:
    workbench = _workbench()
    ws = sample_copy(sample, tmp_path)
    target, prompt, done = SHOWCASE[sample]
    tmux = Tmux(tui_env(tmp_path, workbench), ws, size)
    tmux.start()
    try:
        tmux.wait(lambda s: "SHELL-READY$" in s)
        tmux.type(f"{workbench} && echo EXIT=$?")
        tmux.keys("Enter")
        # It opens on what the sample is about, and says so.
        first = tmux.wait(lambda s: f"Talking to {target}" in s, timeout=60)
        assert "[test model]" in first
        tmux.type(prompt)
        tmux.keys("Enter")
        approved = 0
        deadline = time.monotonic() + 150
        while True:
            screen = tmux.screen()
            if done in screen:
                break
            assert time.monotonic() < deadline, f"the run never ended:\n{screen}"
            if "call waits" in screen or "calls wait" in screen:
                # One key each, from the chat, the prompt empty (a y typed into a prompt that
                # holds text decides nothing, by design: it would wait here forever).
                assert "Ask something" in screen, f"the prompt is not empty:\n{screen}"
                tmux.keys("y")
                approved += 1
                # The next key only once this one has shown (the card decided): on a loaded
                # machine the screen lags, and a second y while nothing waits is text.
                tmux.wait(lambda s, before=screen: s != before, timeout=30)
                time.sleep(0.2)
                continue
            time.sleep(0.2)
        assert approved > 0 or sample == "debate"
        time.sleep(0.5)
        # Nothing is left pending: not in the chat, a lane, the graph or the queue.
        for key, shown in (
            ("F2", f"to {target.split()[0]} ·"),  # the chat's target bar
            ("F3", "Prev lane"),  # the footer of the team pane
            ("F4", "Follow run"),  # the footer of the graph
            ("F5", "Nothing waits for a decision"),
        ):
            tmux.keys(key)
            screen = tmux.wait(lambda s, shown=shown: shown in s, timeout=10)
            time.sleep(0.3)
            screen = tmux.screen()
            left = [p for p in PENDING if p in screen]
            assert not left, f"{key} still shows {left}:\n{screen}"
        tmux.keys("C-q")
        screen = tmux.wait(lambda s: "EXIT=0" in s, timeout=20)
    finally:
        tmux.kill()


# -- keys typed while the app starts ------------------------------------------------------


def test_a_prompt_typed_while_the_app_starts_is_sent_and_the_terminal_comes_back(
    tmp_path: Path,
) -> None:
    """A person types as soon as they pressed Enter on ``workbench``, before its first
    frame: their prompt is sent (not turned into a second line by the terminal's line
    mode), nothing is echoed over the shell, and after ctrl+q the shell has its line mode
    back."""
    workbench = _workbench()
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "workbench.yaml").write_text(
        "models: {default: test}\nagents:\n  helper: {instructions: Hi.}\n"
    )
    tmux = Tmux(tui_env(tmp_path, workbench), ws)
    after = (
        "echo EXIT=$?; stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icrnl|icanon|echo)'; sleep 60"
    )
    tmux.run(
        "new-session", "-d", "-s", "e2e", "-x", "120", "-y", "40", "-c", str(ws),
        "sh", "-c", f"{workbench}; {after}",
    )  # fmt: skip
    try:
        tty = tmux.run("display-message", "-p", "-t", "e2e", "#{pane_tty}").strip()
        deadline = time.monotonic() + 30
        while (
            "-icrnl"
            not in subprocess.run(
                ["stty", "-F", tty, "-a"], capture_output=True, text=True
            ).stdout.split()
        ):
            assert time.monotonic() < deadline, "the terminal never left line mode"
            time.sleep(0.005)
        started = tmux.alternate_on() == "1"  # on a quick machine: not yet (typed ahead)
        tmux.type("ping ahead")
        tmux.keys("Enter")
        screen = tmux.wait(lambda s: "You said: ping ahead" in s)
        assert "you › ping ahead" in screen  # sent as one line, Enter as Enter
        tmux.keys("C-q")
        screen = tmux.wait(lambda s: "EXIT=0" in s)
        modes = set(screen.split())
        assert {"icrnl", "icanon", "echo"} <= modes and not {"-icrnl", "-icanon", "-echo"} & modes
        if not started:
            assert "ping ahead" not in screen  # typed before the app had the screen: not echoed
    finally:
        tmux.kill()
