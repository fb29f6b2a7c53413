"""Time from process start to the first frame of ``workbench``, next to a minimal Textual app.

Both run in a real terminal (tmux, 120x40), measured the same way in the same run: start
the process in a fresh tmux window, poll ``capture-pane`` until a marker is on screen.
The marker of ``workbench`` is its status bar ("Workbench", in the first frame with the
prompt; the panes mount right after); that of the hello-world app is its text. A third row
opens the same app without the command line (``screens.app.run_app()`` directly), to show
what the CLI adds before the app (a bare ``workbench`` skips argparse and leaves logging to
the app's engine worker). Runs alternate; the table gives the median of each and the ratio.

Both start from compiled bytecode, as an installed app does (pip and pipx compile every
module on install): the source folders are compiled before the runs, so a development
checkout run with ``PYTHONDONTWRITEBYTECODE`` does not pay the compiler on every start.

Budget: at most 1.2x.

    python bench/first_frame.py [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HELLO = """
from textual.app import App
from textual.widgets import Static


class Hello(App):
    def compose(self):
        yield Static("Hello, first frame")


Hello().run()
"""


def tmux(socket: str, *args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, env=env)
    return out.stdout


def first_frame(command: list[str], marker: str, cwd: Path, env: dict[str, str]) -> float:
    """Seconds from starting ``command`` in a new tmux session to ``marker`` on screen."""
    socket = f"ff-{uuid.uuid4().hex[:8]}"
    # Start the tmux server first, idle, so its own start-up is not counted.
    tmux(socket, "new-session", "-d", "-s", "idle", "-x", "120", "-y", "40", "sleep 600", env=env)
    try:
        t0 = time.perf_counter()
        tmux(socket, "new-window", "-t", "idle", "-n", "run", "-c", str(cwd), *command, env=env)
        deadline = t0 + 60
        while time.perf_counter() < deadline:
            if marker in tmux(socket, "capture-pane", "-p", "-t", "idle:run", env=env):
                return time.perf_counter() - t0
            time.sleep(0.005)
        raise RuntimeError(f"no {marker!r} on screen after 60 s")
    finally:
        tmux(socket, "kill-server", env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        print("tmux is needed", file=sys.stderr)
        return 2
    workbench = Path(sys.executable).parent / "workbench"
    if not workbench.exists():
        print("install the command first: pip install -e . --no-deps", file=sys.stderr)
        return 2
    import compileall

    root = Path(__file__).resolve().parent.parent
    for package in ("workbench", "screens", "plugins"):
        compileall.compile_dir(root / package, quiet=1)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ws = tmp / "ws"
        ws.mkdir()
        (ws / "workbench.yaml").write_text(
            "models:\n  default: test\nagents:\n  helper:\n    instructions: Hi.\n"
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
        # One unmeasured run of each warms the file cache and the .pyc files.
        first_frame([sys.executable, str(hello)], "Hello, first frame", ws, env)
        first_frame([str(workbench)], "Workbench", ws, env)
        direct = [sys.executable, "-c", "from screens.app import run_app; run_app()"]
        hello_t: list[float] = []
        wb_t: list[float] = []
        app_t: list[float] = []
        for _ in range(args.runs):
            hello_t.append(first_frame([sys.executable, str(hello)], "Hello, first frame", ws, env))
            wb_t.append(first_frame([str(workbench)], "Workbench", ws, env))
            app_t.append(first_frame(direct, "Workbench", ws, env))
    h, w = statistics.median(hello_t), statistics.median(wb_t)
    print(f"first frame in tmux 120x40, median of {args.runs} (alternating runs)\n")
    print("| app | median | min | max |")
    print("|---|---|---|---|")
    print(
        f"| Textual hello world | {h * 1000:.0f} ms | {min(hello_t) * 1000:.0f} ms | {max(hello_t) * 1000:.0f} ms |"
    )
    print(
        f"| workbench | {w * 1000:.0f} ms | {min(wb_t) * 1000:.0f} ms | {max(wb_t) * 1000:.0f} ms |"
    )
    a = statistics.median(app_t)
    print(
        f"| screens.app without the CLI | {a * 1000:.0f} ms | {min(app_t) * 1000:.0f} ms | {max(app_t) * 1000:.0f} ms |"
    )
    print(f"\nratio workbench / hello world: {w / h:.2f}x (budget 1.20x)")
    print(f"ratio app without the CLI / hello world: {a / h:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
