"""The README's five-minute tour, walked as a new user walks it: the installed ``workbench``
command in a fresh folder, each step checked by what it shows.

init a workspace -> run it offline -> list sessions -> replay a recorded sample session ->
doctor says how to configure a model -> configure one (the local fake OpenAI server, run as
a subprocess) -> fork the session and continue it on that model -> export it to HTML ->
find it by search.

The steps share one user (one data folder); each test asks :class:`Tour` for the state it
needs, and the tour does the earlier steps once, so a test also runs on its own.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "How many words are in 'to be or not to be'?"


def console_script() -> list[str]:
    """The installed ``workbench`` command (the one next to this interpreter)."""
    found = shutil.which("workbench", path=str(Path(sys.executable).parent))
    assert found, "the workbench console script is not installed next to the interpreter"
    return [found]


class Tour:
    """One new user: a home folder with their data, and what each step left behind."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {
            **os.environ,
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_STATE_HOME": str(home / "state"),
            "WORKBENCH_LOG": str(home / "workbench.log"),
            "COLUMNS": "200",
            # Nothing may reach a provider, or a real Ollama on this machine.
            "OLLAMA_API_BASE": "http://127.0.0.1:9",
        }
        for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "WORKBENCH_DB"):
            self.env.pop(key, None)
        self.server: subprocess.Popen[str] | None = None
        self._done: dict[str, Any] = {}

    def wb(
        self, *args: str, cwd: Path | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*console_script(), *args],
            cwd=cwd or self.home,
            env=self.env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )

    def _once(self, step: str, fn: Any) -> Any:
        if step not in self._done:
            self._done[step] = fn()
        return self._done[step]

    # -- the steps ------------------------------------------------------------------------

    def demo(self) -> Path:
        """``workbench init demo``: the minimal template."""

        def step() -> Path:
            r = self.wb("init", "demo")
            assert r.returncode == 0, r.stderr
            assert "Created a workspace from the minimal template" in r.stdout
            assert "Next:" in r.stdout and "cd demo" in r.stdout
            return self.home / "demo"

        return self._once("init", step)  # type: ignore[no-any-return]

    def first_session(self) -> str:
        """``workbench run "..."`` in the new workspace, offline."""

        def step() -> str:
            demo = self.demo()
            # Other steps may have run first, in any order (a session imported in step 4 is
            # this user's too): the run adds exactly one session.
            before = {s["id"] for s in self.sessions(demo)}
            r = self.wb("run", QUESTION, cwd=demo)
            assert r.returncode == 0, r.stdout + r.stderr
            assert "→ tools:word_count" in r.stdout
            assert "[test model] Tool results:" in r.stdout
            new = [s for s in self.sessions(demo) if s["id"] not in before]
            assert len(new) == 1, new
            return str(new[0]["id"])

        return self._once("run", step)  # type: ignore[no-any-return]

    def sessions(self, cwd: Path) -> list[dict[str, Any]]:
        r = self.wb("sessions", "list", "--json", cwd=cwd)
        assert r.returncode == 0, r.stderr
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def model_url(self) -> str:
        """The local fake OpenAI-compatible server, started as its own process."""

        def step() -> str:
            self.server = subprocess.Popen(
                [sys.executable, "-m", "tests.support.openai_server", "--port", "0"],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert self.server.stdout is not None
            line = self.server.stdout.readline()
            assert line.startswith("READY "), line
            return line.split()[1]

        return self._once("server", step)  # type: ignore[no-any-return]

    def configured(self) -> Path:
        """workbench.yaml edited: the default model is the local server."""

        def step() -> Path:
            self.first_session()  # the first session ran on the test model
            demo = self.demo()
            yaml_file = demo / "workbench.yaml"
            text = yaml_file.read_text(encoding="utf-8")
            assert "  default: test\n" in text
            local = f'{{model: openai/tiny, api_base: "{self.model_url()}", api_key: "none"}}'
            yaml_file.write_text(text.replace("  default: test\n", f"  default: {local}\n"))
            return demo

        return self._once("configure", step)  # type: ignore[no-any-return]

    def fork(self) -> str:
        """``workbench sessions fork ID --at SEQ``: the whole first session, as a new one."""

        def step() -> str:
            demo = self.demo()
            sid = self.first_session()
            last = next(s for s in self.sessions(demo) if s["id"] == sid)["last_seq"]
            r = self.wb("sessions", "fork", sid, "--at", str(last), cwd=demo)
            assert r.returncode == 0, r.stderr
            new = r.stdout.split()[-1] if r.stdout.split() else ""
            assert new.startswith("s_") and new != sid, r.stdout
            return new

        return self._once("fork", step)  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(10)
            if self.server.stdout is not None:
                self.server.stdout.close()


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tour]:
    t = Tour(tmp_path_factory.mktemp("newuser"))
    try:
        yield t
    finally:
        t.close()


# -- the tour -----------------------------------------------------------------------------


def test_1_init_makes_a_workspace_and_never_overwrites_one(tour: Tour) -> None:
    demo = tour.demo()
    assert (demo / "workbench.yaml").is_file() and (demo / "tools.py").is_file()
    again = tour.wb("init", "demo")
    assert again.returncode == 2
    assert "already exists" in again.stderr and "not overwriting" in again.stderr
    unknown = tour.wb("init", "other", "--template", "nope")
    assert unknown.returncode == 2 and "no template named 'nope'" in unknown.stderr
    assert not (tour.home / "other").exists()
    listed = tour.wb("init", "--list")
    for name in ("minimal", "research-desk", "code-review", "debate"):
        assert name in listed.stdout


def test_1b_init_from_a_sample_leaves_its_recordings_unless_asked(tour: Tour) -> None:
    r = tour.wb("init", "review", "--template", "code-review")
    assert r.returncode == 0, r.stderr
    assert "--workflow review" in r.stdout
    assert (tour.home / "review" / "repo" / "inventory" / "stock.py").is_file()
    assert not (tour.home / "review" / "sessions").exists()
    with_rec = tour.wb("init", "desk", "--template", "research-desk", "--with-sessions")
    assert with_rec.returncode == 0, with_rec.stderr
    assert (tour.home / "desk" / "sessions" / "desk.test-model.jsonl").is_file()
    assert (tour.home / "desk" / "docs" / "style-guide.md").is_file()


def test_2_run_offline_with_the_test_model(tour: Tour) -> None:
    sid = tour.first_session()
    shown = tour.wb("sessions", "show", sid, cwd=tour.demo())
    assert f"you: {QUESTION}" in shown.stdout
    assert "← tools:word_count" in shown.stdout


def test_3_sessions_lists_the_run(tour: Tour) -> None:
    sid = tour.first_session()
    listed = tour.wb("sessions", "list", cwd=tour.demo())
    assert listed.returncode == 0
    assert sid in listed.stdout and QUESTION[:30] in listed.stdout


def test_4_replay_a_recorded_sample_session_plainly(tour: Tour) -> None:
    r = tour.wb("init", "desk4", "--template", "research-desk", "--with-sessions")
    assert r.returncode == 0, r.stderr
    desk = tour.home / "desk4"
    replay = tour.wb("replay", "sessions/desk.test-model.jsonl", "--plain", cwd=desk)
    assert replay.returncode == 0, replay.stderr
    out = replay.stdout
    assert "▶ team desk" in out and "(test)" in out
    assert "→ delegate.librarian" in out and "→ knowledge.search" in out
    assert "✓ desk done" in out
    imported = tour.wb("sessions", "import", "sessions/desk.test-model.jsonl", cwd=desk)
    assert imported.returncode == 0, imported.stderr
    assert "What should a brief on evaluating agents cover?" in tour.wb("sessions", "list").stdout


def test_5_doctor_says_how_to_configure_a_model(tour: Tour) -> None:
    assert tour.wb("init", "fresh").returncode == 0
    fresh = tour.home / "fresh"
    r = tour.wb("doctor", "--offline", cwd=fresh)
    assert r.returncode == 0, r.stdout
    out = r.stdout
    assert "only the offline `test` model is configured" in out
    for hint in (
        "openai/gpt-4o",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "ollama serve",
        "api_base",
    ):
        assert hint in out
    keyed = subprocess.run(
        [*console_script(), "doctor", "--offline"],
        cwd=fresh,
        env={**tour.env, "OPENAI_API_KEY": "sk-not-a-real-key"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Which provider keys the environment has: names only, each with a model to try.
    assert "provider keys: none in the environment" in " ".join(out.split())
    keyed_out = " ".join(keyed.stdout.split())
    assert "provider keys: in the environment: OPENAI_API_KEY (e.g. openai/gpt-4o)" in keyed_out
    assert "sk-not-a-real-key" not in keyed.stdout
    assert "ollama: " in keyed_out and "not contacted (--offline)" in keyed_out


def test_5b_doctor_notices_a_local_ollama(tour: Tour) -> None:
    if not (tour.home / "fresh").exists():
        assert tour.wb("init", "fresh").returncode == 0

    class Tags(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            body = json.dumps({"models": [{"name": "llama3:latest"}]}).encode()
            self.send_response(200 if self.path == "/api/tags" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Tags)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        r = subprocess.run(
            [*console_script(), "doctor", "-w", str(tour.home / "fresh")],
            cwd=tour.home,
            env={**tour.env, "OLLAMA_API_BASE": base},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.shutdown()
        server.server_close()
    out = " ".join(r.stdout.split())
    assert f"ollama: answers at {base} with llama3:latest (e.g. ollama/llama3:latest)" in out
    # Nothing listening (a port just closed) is an answer too, at once, not a wait.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    nobody = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    r = subprocess.run(
        [*console_script(), "doctor", "-w", str(tour.home / "fresh")],
        cwd=tour.home,
        env={**tour.env, "OLLAMA_API_BASE": nobody},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"ollama: nothing answers at {nobody}" in " ".join(r.stdout.split())


def test_6_configure_a_model_then_doctor_reaches_it(tour: Tour) -> None:
    demo = tour.configured()
    r = tour.wb("doctor", cwd=demo)
    assert r.returncode == 0, r.stdout
    assert f"openai/tiny at {tour.model_url()} answers" in r.stdout
    assert "only the offline `test` model" not in r.stdout
    # Keys and a local Ollama are reported with a real model configured too.
    assert "provider keys:" in r.stdout and "ollama:" in r.stdout


def test_7_fork_the_session_and_continue_it_on_that_model(tour: Tour) -> None:
    tour.first_session()
    demo = tour.configured()
    fork = tour.fork()
    r = tour.wb("run", "--session", fork, "And in 'let it be'?", cwd=demo)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "(openai/tiny)" in r.stdout
    assert "→ tools:word_count" in r.stdout
    shown = tour.wb("sessions", "show", fork, cwd=demo)
    # The fork holds the first conversation, then the new turn on the configured model.
    assert f"you: {QUESTION}" in shown.stdout and "you: And in 'let it be'?" in shown.stdout
    assert "[test model]" in shown.stdout and "(openai/tiny)" in shown.stdout


def test_8_export_the_session_to_html(tour: Tour) -> None:
    fork = tour.fork()
    out = tour.home / "fork.html"
    r = tour.wb("sessions", "export", fork, "-o", str(out), cwd=tour.demo())
    assert r.returncode == 0, r.stderr
    page = out.read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html")
    assert "tools:word_count" in page and "to be or not to be" in page
    assert "<script" not in page.lower()


def test_9_find_the_session_by_search(tour: Tour) -> None:
    sid = tour.first_session()
    fork = tour.fork()
    r = tour.wb("sessions", "search", "not", "to", "be", cwd=tour.demo())
    assert r.returncode == 0, r.stderr
    assert sid in r.stdout and fork in r.stdout
    nothing = tour.wb("sessions", "search", "xylophone", cwd=tour.demo())
    assert sid not in nothing.stdout


# -- the README's examples ----------------------------------------------------------------


def readme_blocks(lang: str) -> list[str]:
    """The README's fenced code blocks in one language, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [b.split("\n", 1)[1] for b in text.split("```")[1::2] if b.startswith(lang + "\n")]


def test_the_readme_workspace_example_loads_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.registry import available_toolkits

    # The example's MCP header names ${REMOTE_TOKEN}: an unset one is a config error.
    monkeypatch.setenv("REMOTE_TOKEN", "t0k")
    from workbench.workspace import load_workspace

    full = next(b for b in readme_blocks("yaml") if b.startswith("models:") and "memory:" in b)
    modules = {b.split(":", 1)[0].lstrip("# "): b for b in readme_blocks("python")}
    (tmp_path / "workbench.yaml").write_text(full)
    (tmp_path / "mytools.py").write_text(modules["mytools.py"])
    (tmp_path / "flows.py").write_text(modules["flows.py"])
    ws = load_workspace(tmp_path, known_toolkits=set(available_toolkits()) | {"mcp"})
    keys = {"models", "agents", "teams", "workflows", "mcp", "approvals", "knowledge"}
    assert all(getattr(ws, k) for k in keys | {"toolkits", "memory"})
    kinds = {type(n).__name__ for wf in ws.workflows.values() for n in wf.iter_nodes()}
    assert kinds == {"StepNode", "ConditionNode", "ParallelNode", "LoopNode", "RouterNode"}


def test_the_readme_plugin_example_is_a_working_plugin(tmp_path: Path) -> None:
    code = next(b for b in readme_blocks("python") if "class DiceToolkit" in b)
    entry = next(b for b in readme_blocks("toml") if "workbench.plugins" in b)
    assert 'dice = "workbench_dice:DiceToolkit"' in entry
    # Installed as pip would install it, but on PYTHONPATH: the shared environment stays as it is.
    site = tmp_path / "site"
    (site / "workbench_dice").mkdir(parents=True)
    (site / "workbench_dice" / "__init__.py").write_text(code)
    info = site / "workbench_dice-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: workbench-dice\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[workbench.plugins]\ndice = workbench_dice:DiceToolkit\n"
    )
    use = next(b for b in readme_blocks("yaml") if "dice.roll" in b)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "workbench.yaml").write_text("models: {default: test}\n" + use)
    env = {**os.environ, "PYTHONPATH": str(site), "XDG_DATA_HOME": str(tmp_path / "data")}
    tools = subprocess.run(
        [*console_script(), "tools"], cwd=ws, env=env, capture_output=True, text=True, timeout=60
    )
    assert tools.returncode == 0, tools.stderr
    assert any(
        line.split()[:4] == ["dice.roll", "plugin", "dice", "allow"]
        for line in tools.stdout.splitlines()
    ), tools.stdout
    run = subprocess.run(
        [*console_script(), "run", "roll two dice"],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "← dice.roll" in run.stdout and "(total " in run.stdout
