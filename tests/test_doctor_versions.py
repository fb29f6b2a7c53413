"""`workbench doctor --versions`: the versions in use against the bounds this install declares."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest

from tests.test_cli import wb
from workbench.doctor import VERSIONED, version_checks


def test_versions_lists_python_and_each_fast_moving_dependency() -> None:
    r = wb("doctor", "--versions")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    for name in ("python", *VERSIONED):
        line = next((x for x in lines if x.startswith(f"✓ {name}:")), None)
        assert line is not None, f"no line for {name} in {r.stdout!r}"
    litellm = next(x for x in lines if x.startswith("✓ litellm:"))
    assert importlib.metadata.version("litellm") in litellm
    assert "tested range >=" in litellm


def test_versions_read_metadata_and_import_nothing_heavy() -> None:
    code = (
        "import json, sys\n"
        "from workbench.doctor import version_checks\n"
        "checks = version_checks()\n"
        "print(json.dumps([len(checks), 'litellm' in sys.modules, 'textual' in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    count, litellm, textual = json.loads(done.stdout.strip().splitlines()[-1])
    assert count == 1 + len(VERSIONED)
    assert not litellm and not textual


def test_a_version_outside_the_bounds_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.metadata.version

    def version(name: str) -> str:
        return "99.0" if name == "litellm" else real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    checks = {c.name: c for c in version_checks()}
    assert not checks["litellm"].ok and checks["litellm"].warn
    assert "99.0: outside the tested range >=" in checks["litellm"].detail
    assert checks["textual"].ok


def test_a_version_other_than_the_known_good_set_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    import workbench.doctor as doctor

    installed = importlib.metadata.version("textual")
    monkeypatch.setattr(doctor, "_constraint_pins", lambda: {"textual": "0.0.1-not-this"})
    textual = next(c for c in version_checks() if c.name == "textual")
    assert textual.ok
    assert f"{installed} (tested range" in textual.detail
    assert "the suite last passed with 0.0.1-not-this" in textual.detail
