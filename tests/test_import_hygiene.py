"""The engine, the CLI and the server run with no terminal UI: they never import it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

UI_MODULES = ("textual", "screens")


@pytest.mark.parametrize(
    "module",
    [
        "workbench.server",
        "workbench.cli",
        "workbench.engine",
        "workbench.client",
        "workbench.approvals",
        "workbench.workspace",
        "workbench.sessions",
        "workbench.knowledge",
        "workbench.cli.run",
        "workbench.cli.sessions",
        "workbench.cli.knowledge",
        "workbench.store",
    ],
)
def test_importing_does_not_load_the_ui(module: str) -> None:
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {UI_MODULES!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_building_the_server_app_does_not_load_the_ui() -> None:
    code = (
        "import json, sys, pathlib, tempfile\n"
        "root = pathlib.Path(tempfile.mkdtemp())\n"
        "(root / 'workbench.yaml').write_text('agents: {a: {model: test}}')\n"
        "from workbench.engine import Engine\n"
        "from workbench.server import create_app\n"
        "app = create_app(Engine.open(root, f'sqlite:///{root}/wb.db'))\n"
        "app.openapi()\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {UI_MODULES!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
