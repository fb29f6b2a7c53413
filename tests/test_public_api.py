"""The public API for plugin authors: ``from workbench import tool, Toolkit, ...``, loaded on
first use (``import workbench`` stays free), typed (``py.typed`` ships in the wheel)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import workbench

ROOT = Path(__file__).resolve().parents[1]

PUBLIC = {
    "tool": "workbench.tools",
    "Toolkit": "workbench.tools",
    "FunctionToolkit": "workbench.tools",
    "ToolError": "workbench.tools",
    "ToolContext": "workbench.tools",
    "StepContext": "workbench.workflow",
    "Engine": "workbench.engine",
    "WorkbenchError": "workbench.errors",
}


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_each_public_name_is_the_object_of_its_module(name: str) -> None:
    value = getattr(workbench, name)
    assert value is getattr(importlib.import_module(PUBLIC[name]), name)
    namespace: dict[str, object] = {}
    exec(f"from workbench import {name}", namespace)
    assert namespace[name] is value


def test_all_lists_the_public_names_and_dir_shows_them() -> None:
    assert sorted(workbench.__all__) == sorted(PUBLIC)
    assert set(PUBLIC) <= set(dir(workbench))


def test_an_unknown_name_is_an_attribute_error_and_submodules_still_import() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Tol'"):
        _ = workbench.Tol  # type: ignore[attr-defined]
    from workbench import termsafe  # a submodule, through the import system's fallback

    assert termsafe.__name__ == "workbench.termsafe"


def test_importing_workbench_imports_nothing_else() -> None:
    code = (
        "import json, sys; import workbench; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.startswith(('workbench.', 'pydantic', 'sqlalchemy', 'litellm', 'textual')))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_a_plugin_written_against_the_public_api_works() -> None:
    """What a plugin module does at import and call time, through ``workbench`` alone."""
    code = (
        "import asyncio, pathlib\n"
        "from workbench import FunctionToolkit, ToolContext, ToolError, tool\n"
        "@tool\n"
        "def shout(ctx: ToolContext, text: str) -> str:\n"
        "    '''Say it louder.\n\n    Args:\n        text: What to say.\n    '''\n"
        "    if not text:\n"
        "        raise ToolError('nothing to shout')\n"
        "    return text.upper() + ' in ' + ctx.workspace_root.name\n"
        "kit = FunctionToolkit('loud', {}, pathlib.Path('/tmp/ws'), [shout])\n"
        "[t] = asyncio.run(kit.list_tools())\n"
        "print(t.name, sorted(t.parameters['properties']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loud.shout ['text']"


def test_py_typed_ships_in_the_package_and_the_wheel(tmp_path: Path) -> None:
    from hatchling.builders.wheel import WheelBuilder

    assert (Path(workbench.__file__).parent / "py.typed").is_file()
    [wheel] = list(WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"]))
    names = zipfile.ZipFile(wheel).namelist()
    assert "workbench/py.typed" in names
    assert "workbench/__init__.py" in names and "workbench/errors.py" in names
