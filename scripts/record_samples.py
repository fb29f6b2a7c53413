"""Re-record the sessions shipped with the sample workspaces, with the offline test model.

Every recording is made the way a user would make it: the real ``workbench`` command runs
the sample's team or workflow (``workbench run --approve all``) against a fresh SQLite
store, and the session is then exported as JSON lines into the sample's ``sessions/``
folder, as ``<team or workflow>.test-model.jsonl``. Nothing is edited by hand, so the
recordings stay honest, and running this again reproduces them (with new ids and times).

How the runs are kept offline and the samples clean:

- every sample's ``models: default`` is ``test``, the offline test model;
- each sample is copied, without its recordings, into a temporary folder, and runs there
  (a run may write files, knowledge and memory; the sample in the repository is never
  touched). The runs of one sample share the copy, so what one run remembers the next
  can recall, as in real use;
- ``DDGS_PROXY`` points web search at a closed port on 127.0.0.1, so ``web.search`` fails
  at once with a tool error, exactly as it does with no network, and nothing leaves the
  machine;
- user data, config and logs go to the temporary folder.

A run that fails is not recorded, and an older recording of it is removed (so no file
claims a result the current code does not give); the script then exits with status 1.

Usage::

    .venv/bin/python scripts/record_samples.py               # every sample
    .venv/bin/python scripts/record_samples.py debate        # one sample
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_workspaces"
SUFFIX = ".test-model.jsonl"
"""Every recording's file name ends with this: it says which model made it."""
CLOSED_PROXY = "http://127.0.0.1:9"
"""A proxy nobody listens on: web search fails at once, offline."""


@dataclass(frozen=True)
class Recording:
    """One run to record."""

    kind: str
    """``team`` or ``workflow``."""
    name: str
    """The team or workflow."""
    prompt: str
    """What the user asks."""

    @property
    def file_name(self) -> str:
        """The recording's file name in ``sessions/``."""
        return f"{self.name}{SUFFIX}"


RECORDINGS: dict[str, list[Recording]] = {
    "research-desk": [
        Recording("team", "desk", "What should a brief on evaluating agents cover?"),
        Recording("team", "triage", "What does our style guide say about sources?"),
        Recording("team", "panel", "How do we judge whether a source can be trusted?"),
        Recording("team", "pipeline", "Write a brief on testing agents offline."),
    ],
    "code-review": [
        Recording("workflow", "review", "Review the repository in repo/ and fix what fails."),
    ],
    "debate": [
        Recording("team", "council", "Should a five-person team adopt a four-day week?"),
        Recording("team", "editorial", "Should a five-person team adopt a four-day week?"),
    ],
}
"""What each sample records, in order (runs of one sample share a workspace copy)."""


class RecordError(Exception):
    """A run that failed, or a command that did not work."""


def workbench(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the ``workbench`` command (this interpreter's), capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def offline_env(tmp: Path) -> dict[str, str]:
    """The environment of every command: offline, and writing only under ``tmp``."""
    env = dict(os.environ)
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "WORKBENCH_DB"):
        env.pop(key, None)
    env.update(
        {
            "DDGS_PROXY": CLOSED_PROXY,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "XDG_DATA_HOME": str(tmp / "data"),
            "XDG_CONFIG_HOME": str(tmp / "config"),
            "XDG_STATE_HOME": str(tmp / "state"),
            "WORKBENCH_LOG": str(tmp / "workbench.log"),
            "COLUMNS": "120",
        }
    )
    return env


def copy_sample(sample: Path, dest: Path) -> Path:
    """A copy of a sample without its recordings and local data."""
    shutil.copytree(
        sample,
        dest,
        ignore=shutil.ignore_patterns("sessions", ".workbench", "__pycache__", ".pytest_cache"),
    )
    return dest


def has_export(env: dict[str, str], cwd: Path) -> bool:
    """Whether this workbench has ``sessions export`` (else events come from ``sessions show``)."""
    return workbench(["sessions", "export", "--help"], env, cwd).returncode == 0


def record(rec: Recording, workspace: Path, db: str, env: dict[str, str], export: bool) -> str:
    """Run one recording; returns the session as JSON lines.

    Raises:
        RecordError: the run or the export failed.
    """
    before = {s["id"] for s in sessions(db, env, workspace)}
    run = workbench(
        ["run", "-w", str(workspace), "--db", db, "--approve", "all"]
        + [f"--{rec.kind}", rec.name, rec.prompt],
        env,
        workspace,
    )
    new = [s for s in sessions(db, env, workspace) if s["id"] not in before]
    if run.returncode != 0 or len(new) != 1:
        # The top-level run's failure line (``✗ NAME failed: ...``), else the last words.
        lines = [" ".join(line.split()) for line in run.stdout.split("\n✗ ")[1:]]
        why = lines[-1] if lines else (run.stderr.strip() or run.stdout.strip())[-300:]
        raise RecordError(f"exit {run.returncode}: {why}")
    sid = str(new[0]["id"])
    if export:
        cmd = ["sessions", "export", sid, "--db", db, "--format", "jsonl"]
    else:
        cmd = ["sessions", "--db", db, "show", sid, "--json"]
    out = workbench(cmd, env, workspace)
    if out.returncode != 0 or not out.stdout.strip():
        raise RecordError(f"exporting {sid} failed: {out.stderr.strip()}")
    return out.stdout if out.stdout.endswith("\n") else out.stdout + "\n"


def sessions(db: str, env: dict[str, str], cwd: Path) -> list[dict[str, object]]:
    """The store's sessions, as ``sessions list --json`` gives them."""
    out = workbench(["sessions", "--db", db, "list", "--json", "--limit", "1000"], env, cwd)
    if out.returncode != 0:
        raise RecordError(f"sessions list failed: {out.stderr.strip()}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def record_sample(name: str, tmp: Path) -> list[str]:
    """Record every run of one sample; returns the failures, one line each."""
    sample = SAMPLES / name
    env = offline_env(tmp)
    workspace = copy_sample(sample, tmp / name)
    db = f"sqlite:///{tmp / (name + '.db')}"
    export = has_export(env, tmp)
    out_dir = sample / "sessions"
    out_dir.mkdir(exist_ok=True)
    failures: list[str] = []
    for rec in RECORDINGS[name]:
        target = out_dir / rec.file_name
        try:
            text = record(rec, workspace, db, env, export)
        except RecordError as exc:
            target.unlink(missing_ok=True)
            failures.append(f"{name}: {rec.kind} {rec.name}: {exc}")
            print(f"  ✗ {rec.kind} {rec.name}: not recorded ({exc})", file=sys.stderr)
            continue
        target.write_text(text, encoding="utf-8")
        events = sum(1 for line in text.splitlines() if line.strip())
        print(f"  ✓ {rec.kind} {rec.name}: {target.relative_to(ROOT)} ({events} lines)")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "samples",
        nargs="*",
        metavar="SAMPLE",
        help=f"any of {', '.join(RECORDINGS)} (default: all)",
    )
    args = parser.parse_args(argv)
    names: list[str] = args.samples or list(RECORDINGS)
    unknown = [n for n in names if n not in RECORDINGS]
    if unknown:
        parser.error(f"no sample {', '.join(unknown)} (samples: {', '.join(RECORDINGS)})")
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="workbench-samples-") as tmp_dir:
        for name in names:
            print(f"{name}:")
            failures += record_sample(name, Path(tmp_dir) / name)
    if failures:
        print("\nNot recorded (the runs failed):", file=sys.stderr)
        for line in failures:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
