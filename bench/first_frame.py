"""What a person waits for when they open ``workbench``, next to a minimal Textual app.

Every app runs in a real terminal (tmux, 120x40), measured the same way in the same run:
start the process in a fresh tmux window and poll ``capture-pane`` until a marker is on
screen. For ``workbench``, one run gives three times:

- **first paint**: the status bar ("Workbench", in the first frame with the prompt);
- **workspace shown**: the target picker names the workspace's agent ("agent · helper");
- **first answer**: a prompt typed as soon as the first frame shows (``tmux send-keys``,
  then enter) has its answer on screen.

Two workspaces: one agent on the offline ``test`` model, and one on a local
OpenAI-compatible server (tests/support/openai_server.py in its own process, answering at
once). The baseline is a Textual hello world's first frame; a last row opens the app
without the command line (``screens.app.run_app()``), to show what the CLI adds before the
app. Runs alternate; the table gives medians and the ratio of each to the hello world.
Then the same under load: one CPU burner per core (``while True: pass``); the load average
at the start of each phase is printed with it.

Every process starts from compiled bytecode, as an installed app does (pip and pipx compile
every module on install): the packages are compiled before the runs.

Budgets: first paint at most 1.2x the hello world; the first answer of a prompt typed at
once within 2x, quiet, and 3x under load.

    python bench/first_frame.py [--runs 9] [--no-load]
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.load import cpu_burners  # noqa: E402
from tests.support.openai_server import spawn  # noqa: E402

HELLO = """
from textual.app import App
from textual.widgets import Static


class Hello(App):
    def compose(self):
        yield Static("Hello, first frame")


Hello().run()
"""

PROMPT = "ping one"
PAINT = "first paint"
SHOWN = "workspace shown"
ANSWER = "first answer"
COLUMNS = (PAINT, SHOWN, ANSWER)


@dataclass
class Row:
    """One app, and the markers whose first appearance is timed."""

    label: str
    command: list[str]
    cwd: Path
    markers: dict[str, str]
    """Column -> text to wait for (the first paint's marker must be listed first)."""
    type_prompt: bool = False
    """Type :data:`PROMPT` and enter as soon as the first marker shows."""
    times: dict[str, list[float]] = field(default_factory=dict)


def tmux(socket: str, *args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, env=env)
    return out.stdout


def measure(row: Row, env: dict[str, str]) -> dict[str, float]:
    """Seconds from starting the row's command in a new tmux window to each marker."""
    socket = f"ff-{uuid.uuid4().hex[:8]}"
    # Start the tmux server first, idle, so its own start-up is not counted.
    tmux(socket, "new-session", "-d", "-s", "idle", "-x", "120", "-y", "40", "sleep 600", env=env)
    seen: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        window = ["new-window", "-t", "idle", "-n", "run", "-c", str(row.cwd)]
        tmux(socket, *window, *row.command, env=env)
        deadline = t0 + 90
        first = next(iter(row.markers))
        while time.perf_counter() < deadline and len(seen) < len(row.markers):
            screen = tmux(socket, "capture-pane", "-p", "-t", "idle:run", env=env)
            now = time.perf_counter() - t0
            for column, marker in row.markers.items():
                if column not in seen and marker in screen:
                    seen[column] = now
                    if column == first and row.type_prompt:
                        tmux(socket, "send-keys", "-t", "idle:run", "-l", PROMPT, env=env)
                        tmux(socket, "send-keys", "-t", "idle:run", "Enter", env=env)
            time.sleep(0.005)
        missing = [m for c, m in row.markers.items() if c not in seen]
        if missing:
            screen = tmux(socket, "capture-pane", "-p", "-t", "idle:run", env=env)
            raise RuntimeError(f"{row.label}: no {missing} on screen after 90 s:\n{screen}")
        return seen
    finally:
        tmux(socket, "kill-server", env=env)


def phase(rows: list[Row], runs: int, env: dict[str, str]) -> None:
    for row in rows:  # one unmeasured run each warms the file cache
        measure(row, env)
        row.times = {}
    for i in range(runs):
        for row in rows[i % len(rows) :] + rows[: i % len(rows)]:
            for column, seconds in measure(row, env).items():
                row.times.setdefault(column, []).append(seconds)


def table(rows: list[Row], title: str, load: float) -> list[str]:
    base = statistics.median(rows[0].times[PAINT])
    runs = len(rows[0].times[PAINT])
    lines = [
        f"{title} (load average {load:.2f} at the start, median of {runs}, "
        "x = ratio to the hello world's first frame)",
        "",
        "| app | first paint | workspace shown | first answer (typed at once) |",
        "|---|--:|--:|--:|",
    ]
    for row in rows:
        cells = []
        for column in COLUMNS:
            values = row.times.get(column)
            if not values:
                cells.append("")
                continue
            m = statistics.median(values)
            cells.append(f"{m * 1000:.0f} ms ({m / base:.2f}x)")
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--no-load", action="store_true", help="skip the phase under load")
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        print("tmux is needed", file=sys.stderr)
        return 2
    workbench = Path(sys.executable).parent / "workbench"
    if not workbench.exists():
        print("install the command first: pip install -e . --no-deps", file=sys.stderr)
        return 2
    # Compiled where they are imported from (PYTHONPATH may point at another checkout).
    for package in ("workbench", "screens", "plugins"):
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            compileall.compile_dir(folder, quiet=1)
    server, base = spawn()
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            spaces = {
                "test": "test",
                "local": f'{{model: openai/fake, api_base: "{base}", api_key: none}}',
            }
            for name, model in spaces.items():
                ws = tmp / name
                ws.mkdir()
                (ws / "workbench.yaml").write_text(
                    f"models:\n  default: {model}\nagents:\n  helper:\n    instructions: Hi.\n"
                )
            hello = tmp / "hello.py"
            hello.write_text(HELLO)
            env = {
                **os.environ,
                "HOME": str(tmp / "home"),
                "XDG_DATA_HOME": str(tmp / "data"),
                "XDG_CONFIG_HOME": str(tmp / "config"),
                "XDG_STATE_HOME": str(tmp / "state"),
                "WORKBENCH_DB": f"sqlite:///{tmp / 'wb.db'}",
                "WORKBENCH_LOG": str(tmp / "wb.log"),
                "TERM": "xterm-256color",
                "TMUX_TMPDIR": str(tmp),
            }
            env.pop("TMUX", None)
            app = {PAINT: "Workbench", SHOWN: "agent · helper"}
            rows = [
                Row("Textual hello world", [sys.executable, str(hello)], tmp, {PAINT: "Hello, "}),
                Row(
                    "`workbench`, the test model",
                    [str(workbench)],
                    tmp / "test",
                    {**app, ANSWER: f"You said: {PROMPT}"},
                    type_prompt=True,
                ),
                Row(
                    "`workbench`, a local OpenAI-compatible server",
                    [str(workbench)],
                    tmp / "local",
                    {**app, ANSWER: f"echo: {PROMPT}"},
                    type_prompt=True,
                ),
                Row(
                    "`screens.app.run_app()` without the CLI",
                    [sys.executable, "-c", "from screens.app import run_app; run_app()"],
                    tmp / "test",
                    {PAINT: "Workbench"},
                ),
            ]
            out: list[str] = []
            load = os.getloadavg()[0]
            phase(rows, args.runs, env)
            out += table(rows, "quiet", load)
            if not args.no_load:
                with cpu_burners() as burners:
                    load = os.getloadavg()[0]
                    phase(rows, args.runs, env)
                out += ["", *table(rows, f"under load ({burners} CPU burners)", load)]
            print("\n".join(out))
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
