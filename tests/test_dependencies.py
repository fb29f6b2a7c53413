"""Every distribution the code imports is declared in pyproject.toml, and nothing declared
for the runtime goes unused: a fresh install resolves only what `dependencies` says, so an
import that works only because something else pulled its package in breaks the day that
something else stops."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("workbench", "screens", "plugins")
# Extras that runtime code may import behind a function (an ImportError names the extra).
RUNTIME_EXTRAS = ("postgres", "pdf")
# Declared for what they run or install, not for an import: the sample's MCP server.
NOT_IMPORTED = {"mcp-server-time"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    assert match, req
    return _norm(match.group(1))


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_requirement_name(r) for r in project["dependencies"]}
    extras = {
        _requirement_name(r)
        for extra in RUNTIME_EXTRAS
        for r in project["optional-dependencies"][extra]
    }
    return core, extras


def _imported_top_levels() -> dict[str, list[str]]:
    """Top-level module name -> the files that import it (absolute imports only)."""
    found: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    found.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return found


def _third_party(imported: dict[str, list[str]]) -> dict[str, list[str]]:
    ours = set(PACKAGES)
    return {
        top: files
        for top, files in imported.items()
        if top not in sys.stdlib_module_names and top not in ours and top != "__future__"
    }


def test_the_scan_sees_the_imports_it_must() -> None:
    """The scan is not empty by accident: it finds imports we know are there."""
    imported = _third_party(_imported_top_levels())
    for known in ("textual", "litellm", "mcp", "mcp_types", "sqlalchemy", "fastapi"):
        assert known in imported


def test_every_imported_distribution_is_declared() -> None:
    core, extras = _declared()
    providers = importlib.metadata.packages_distributions()
    undeclared: list[str] = []
    for top, files in sorted(_third_party(_imported_top_levels()).items()):
        dists = {_norm(d) for d in providers.get(top, [])}
        assert dists, f"{top} (imported by {files[0]}) is not installed: declare it"
        if not dists & (core | extras):
            undeclared.append(f"{top} from {sorted(dists)} (imported by {files[0]})")
    assert not undeclared, "imported but not declared in pyproject.toml: " + "; ".join(undeclared)


def test_every_declared_runtime_dependency_is_imported() -> None:
    core, _ = _declared()
    providers = importlib.metadata.packages_distributions()
    imported = {
        _norm(d) for top in _third_party(_imported_top_levels()) for d in providers.get(top, [])
    }
    # pyyaml is imported as yaml, prompt-toolkit as prompt_toolkit: both go through
    # packages_distributions, so the names compare as distributions.
    unused = sorted(core - imported - NOT_IMPORTED)
    assert not unused, f"declared but never imported: {unused}"
