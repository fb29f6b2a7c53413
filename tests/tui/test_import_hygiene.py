"""The first frame comes before any heavy import: ``screens.app`` pulls in Textual and the
prompt, nothing of the engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = [
    "litellm",
    "lancedb",
    "sqlalchemy",
    "pydantic",
    "workbench.engine",
    "workbench.models",
    "workbench.events",
]


def test_screens_app_imports_nothing_heavy() -> None:
    code = (
        "import json, sys; import screens.app; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_panes_wait_until_after_the_first_frame() -> None:
    code = (
        "import json, sys; import screens.app; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('screens'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [
        "screens",
        "screens.app",
        "screens.prompt",
        "screens.status",
    ]
