"""``workbench run`` one-shot, from process start to exit, next to a plain openai SDK script.

Every row is a fresh process that asks one question of a model and prints the answer: the
time a person waits at the shell, and the peak resident memory of that process (from
``wait4``). The model is a local OpenAI-compatible server (tests/support/openai_server.py,
in a process of its own, answering at once), so what is measured is start-up: imports,
the workspace, the store, the model call.

- ``openai SDK script``: ``openai.OpenAI(base_url=...)``, one streamed chat completion,
  the text printed (the baseline);
- ``workbench run``, an ``openai/`` model with an ``api_base`` (the direct path);
- ``workbench run``, ``openai/gpt-4o`` found through ``OPENAI_BASE_URL`` and
  ``OPENAI_API_KEY`` alone (a provider of the README's table, from the model string and its
  usual environment);
- ``workbench run`` on the offline ``test`` model (no model call at all);
- ``workbench run`` with ``direct: false`` (through litellm), for reference.

Runs alternate between the rows; the table gives medians and the ratio to the SDK script.
Then the same under load: one CPU burner per core (``while True: pass``), because users'
machines are busy. The load average at the start of each phase is printed with it.

Budget: ``workbench run`` against an OpenAI-compatible server at most the SDK script's time,
quiet and under load; peak memory at most 1.5x the SDK script's.

    python bench/cli_start.py [--runs 7] [--no-load]
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.load import cpu_burners  # noqa: E402
from tests.support.openai_server import spawn  # noqa: E402

PROMPT = "hello there"
ANSWER = f"echo: {PROMPT}"
"""What the local server's echo responder answers."""

SDK_SCRIPT = """
import sys

import openai

client = openai.OpenAI(base_url=sys.argv[1], api_key="none")
stream = client.chat.completions.create(
    model="fake",
    messages=[
        {"role": "system", "content": "You help."},
        {"role": "user", "content": sys.argv[2]},
    ],
    stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
print()
"""


@dataclass
class Row:
    """One way of asking the question."""

    label: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    expect: str = ANSWER
    seconds: list[float] = field(default_factory=list)
    peak_kb: list[int] = field(default_factory=list)


def timed(row: Row, env: dict[str, str], cwd: Path) -> None:
    """Run the row's command once; record wall time and peak RSS."""
    out = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        row.command,
        cwd=cwd,
        env={**env, **row.env},
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    text = out.read().decode(errors="replace")
    if proc.returncode != 0 or row.expect not in text:
        raise SystemExit(f"{row.label} failed (exit {proc.returncode}):\n{text[-2000:]}")
    row.seconds.append(elapsed)
    row.peak_kb.append(int(usage.ru_maxrss))


def phase(rows: list[Row], runs: int, env: dict[str, str], cwd: Path) -> None:
    for row in rows:  # one unmeasured run each: the file cache, the .pyc files
        timed(row, env, cwd)
        row.seconds.clear()
        row.peak_kb.clear()
    for i in range(runs):
        # Rotate the order so no row always runs right after the same other.
        for row in rows[i % len(rows) :] + rows[: i % len(rows)]:
            timed(row, env, cwd)


def table(rows: list[Row], title: str, load: float) -> list[str]:
    base = rows[0]
    b_s, b_kb = statistics.median(base.seconds), statistics.median(base.peak_kb)
    lines = [
        f"{title} (load average {load:.2f} at the start, median of {len(base.seconds)})",
        "",
        "| what | median | min | max | x SDK | peak RSS | x SDK |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        s, kb = statistics.median(row.seconds), statistics.median(row.peak_kb)
        lines.append(
            f"| {row.label} | {s:.2f} s | {min(row.seconds):.2f} s | {max(row.seconds):.2f} s "
            f"| {s / b_s:.2f}x | {kb / 1024:.0f} MB | {kb / b_kb:.2f}x |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-load", action="store_true", help="skip the phase under load")
    args = parser.parse_args()
    workbench = Path(sys.executable).parent / "workbench"
    if not workbench.exists():
        print("install the command first: pip install -e . --no-deps", file=sys.stderr)
        return 2
    # As an installed app starts: pip and pipx compile every module on install. (The
    # packages are compiled where they are imported from: PYTHONPATH may point at another
    # checkout, to measure it with this script.)
    for package in ("workbench", "screens", "plugins"):
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            compileall.compile_dir(folder, quiet=1)
    server, base = spawn()
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            sdk = tmp / "sdk.py"
            sdk.write_text(SDK_SCRIPT)
            spaces = {
                "direct": f'{{model: openai/fake, api_base: "{base}", api_key: none}}',
                "env": "openai/gpt-4o",
                "test": "test",
                "litellm": f'{{model: openai/fake, api_base: "{base}", api_key: none, '
                "direct: false}",
            }
            for name, model in spaces.items():
                ws = tmp / name
                ws.mkdir()
                (ws / "workbench.yaml").write_text(
                    f"models:\n  default: {model}\n"
                    "agents:\n  helper:\n    instructions: You help.\n"
                )
            env = {
                **os.environ,
                "HOME": str(tmp / "home"),
                "XDG_DATA_HOME": str(tmp / "data"),
                "XDG_CONFIG_HOME": str(tmp / "config"),
                "XDG_STATE_HOME": str(tmp / "state"),
                "WORKBENCH_DB": f"sqlite:///{tmp / 'wb.db'}",
                "WORKBENCH_LOG": str(tmp / "wb.log"),
            }
            for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"):
                env.pop(key, None)

            def run(ws: str) -> list[str]:
                return [str(workbench), "run", "-w", str(tmp / ws), PROMPT]

            rows = [
                Row("openai SDK script", [sys.executable, str(sdk), base, PROMPT]),
                Row("`workbench run`, openai/ model with an api_base", run("direct")),
                Row(
                    "`workbench run`, openai/gpt-4o from OPENAI_BASE_URL + OPENAI_API_KEY",
                    run("env"),
                    env={"OPENAI_BASE_URL": base, "OPENAI_API_KEY": "none"},
                ),
                Row("`workbench run`, the test model", run("test"), expect="[test model]"),
                Row("`workbench run`, direct: false (litellm)", run("litellm")),
            ]
            out: list[str] = []
            load = os.getloadavg()[0]
            phase(rows, args.runs, env, tmp)
            out += table(rows, "quiet", load)
            if not args.no_load:
                for row in rows:
                    row.seconds.clear()
                    row.peak_kb.clear()
                with cpu_burners() as burners:
                    load = os.getloadavg()[0]
                    phase(rows, args.runs, env, tmp)
                out += ["", *table(rows, f"under load ({burners} CPU burners)", load)]
            print("\n".join(out))
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
