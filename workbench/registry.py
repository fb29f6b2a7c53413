"""The plugin registry: toolkits from the ``workbench.plugins`` entry-point group, tools
from ``module:function`` files in a workspace, and the expansion of a tool list.

Listing toolkits reads package metadata only; a plugin module is imported when a workspace
uses it (:func:`load_toolkit`), so a plugin with a missing dependency costs nothing until
then, and then fails with a :class:`PluginError` that says what to install. First-party
toolkits (``plugins/``) are registered through the same group as third-party ones.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.machinery
import importlib.util
import inspect
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from pydantic import BaseModel

from workbench.errors import WorkbenchError
from workbench.tools import FunctionTool, Tool, ToolDefinitionError, Toolkit, tool

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginError",
    "available_toolkits",
    "load_module_tool",
    "load_toolkit",
    "resolve_tools",
]

ENTRY_POINT_GROUP = "workbench.plugins"
"""The entry-point group every toolkit, first-party or not, registers under."""

# Import names whose distribution on PyPI is spelled differently; everything else is
# installed under its top-level import name.
_DISTRIBUTIONS = {
    "yaml": "pyyaml",
    "bs4": "beautifulsoup4",
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "dateutil": "python-dateutil",
    "dotenv": "python-dotenv",
    "cv2": "opencv-python",
    "psycopg": "psycopg[binary]",
}

_GLOB_CHARS = frozenset("*?[")


class PluginError(WorkbenchError):
    """A toolkit or workspace tool that cannot be loaded, or a tool pattern that matches
    nothing. The message says what to fix (a package to install, a name to correct)."""


class _EntryPointLike(Protocol):
    """What :func:`_load_entry_point` needs of an entry point (tests pass their own)."""

    @property
    def name(self) -> str: ...

    @property
    def value(self) -> str: ...

    def load(self) -> Any: ...


_SETTLED_NS = 2_000_000_000
"""How long a folder on ``sys.path`` must be left alone before its listing is trusted: a
folder's time stamp moves in coarse steps (a clock tick), so a package installed in the same
step as a scan would leave the stamp as the scan saw it. A folder changed more recently than
this is read again at each call (as git treats a "racily clean" file)."""

_toolkits_cache: tuple[tuple[tuple[str, int], ...], dict[str, EntryPoint]] | None = None
_toolkits_lock = threading.Lock()


def _path_stamp() -> tuple[tuple[str, int], ...] | None:
    """What ``sys.path`` holds and when each of its folders last changed (installing or
    removing a distribution adds or removes a ``.dist-info`` folder in one of them: the
    stamp importlib.metadata itself keys its folder listings on), or None when one changed
    too recently to be trusted."""
    now = time.time_ns()
    stamp = []
    for entry in sys.path:
        where = entry or os.getcwd()  # "" is the working folder, as importlib reads it
        try:
            st = os.stat(where)
        except OSError:
            stamp.append((where, -1))
            continue
        if now - st.st_mtime_ns < _SETTLED_NS:
            return None
        stamp.append((where, st.st_mtime_ns))
    return tuple(stamp)


def available_toolkits() -> dict[str, EntryPoint]:
    """The installed toolkits by name, read from package metadata without importing them.

    When two distributions register the same name, the first one found wins (the order of
    ``sys.path``), as Python's own entry-point lookup does. (Once some library installs the
    ``importlib_metadata`` backport's finder, the values are that package's ``EntryPoint``,
    which has the same interface.)

    Reading the metadata reads every installed distribution's ``entry_points.txt`` (≈ 5 ms
    here, and a workspace's open asks once per toolkit it uses), so the answer is kept until
    ``sys.path`` or one of its folders changes: a plugin installed while the app runs is
    found at the next call.
    """
    global _toolkits_cache
    stamp = _path_stamp()
    with _toolkits_lock:
        if stamp is not None and _toolkits_cache is not None and _toolkits_cache[0] == stamp:
            return dict(_toolkits_cache[1])
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    toolkits = dict(sorted(found.items()))
    with _toolkits_lock:
        _toolkits_cache = None if stamp is None else (stamp, toolkits)
    return dict(toolkits)


def load_toolkit(
    toolkit: str, /, config: dict[str, Any], root: Path, *, name: str | None = None
) -> Toolkit:
    """Import the toolkit registered as ``toolkit`` and build it for a workspace.

    Args:
        toolkit: The entry-point name (``files``, ``mcp``).
        config: Its table from ``workbench.yaml``, or ``{}``.
        root: The workspace folder.
        name: The name the instance goes by, which prefixes its tools, when it differs
            from the entry-point name (one ``mcp`` toolkit per configured server).

    Raises:
        PluginError: the name is unknown (the message lists the installed ones), a package
            the plugin needs is missing (the message says what to ``pip install``), or the
            plugin fails to import or to start.
    """
    toolkits = available_toolkits()
    ep = toolkits.get(toolkit)
    if ep is None:
        names = ", ".join(toolkits) or "none installed"
        raise PluginError(f"unknown toolkit {toolkit!r} (available: {names})")
    return _load_entry_point(ep, config, root, name=name)


def toolkit_settings(toolkit: str) -> type[BaseModel] | None:
    """The settings model a toolkit declares (``Toolkit.settings``), to check its table in
    ``workbench.yaml`` when the workspace loads; None when it declares none (or cannot be
    imported: using it will say why)."""
    ep = available_toolkits().get(toolkit)
    if ep is None:
        return None
    try:
        obj = ep.load()
    except Exception:
        return None
    model = getattr(obj, "settings", None) if inspect.isclass(obj) else None
    return model if inspect.isclass(model) and issubclass(model, BaseModel) else None


def _load_entry_point(
    ep: _EntryPointLike, config: dict[str, Any], root: Path, *, name: str | None = None
) -> Toolkit:
    """Import an entry point's object and instantiate it as a toolkit named ``name``
    (by default the entry point's name)."""
    kind = ep.name
    name = name or kind
    try:
        obj = ep.load()
    except ImportError as exc:
        raise PluginError(_import_error_message(kind, ep.value, exc)) from exc
    except Exception as exc:
        raise PluginError(
            f"toolkit {kind!r} ({ep.value}) failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    if not (inspect.isclass(obj) and issubclass(obj, Toolkit)):
        raise PluginError(f"toolkit {kind!r}: {ep.value} is not a workbench.tools.Toolkit subclass")
    try:
        return obj(name, dict(config), root)
    except PluginError:
        raise
    except ImportError as exc:
        raise PluginError(_import_error_message(kind, ep.value, exc)) from exc
    except Exception as exc:
        who = repr(kind) if name == kind else f"{name!r} ({kind})"
        raise PluginError(f"toolkit {who} failed to start: {type(exc).__name__}: {exc}") from exc


def _import_error_message(name: str, target: str, exc: ImportError) -> str:
    missing = exc.name
    plugin_module = target.partition(":")[0].strip()
    if not missing or missing == plugin_module or plugin_module.startswith(f"{missing}."):
        # The plugin itself is not importable: a broken install, not a missing dependency.
        return f"toolkit {name!r} cannot be imported from {target}: {exc}"
    top = missing.split(".")[0]
    package = _DISTRIBUTIONS.get(top, top)
    return f"toolkit {name!r} needs the package {package!r}: pip install {package}"


# -- workspace module tools --------------------------------------------------------------


def load_module_tool(root: Path, spec: str) -> Tool:
    """Load ``module:function`` from ``<root>/module.py`` as a tool named ``spec``.

    The module is imported under a name unique to the workspace folder, so two workspaces
    with a ``mytools.py`` each do not clash; it is imported again when the file changes. A
    dotted module (``pkg.tools``) is the file ``pkg/tools.py``. A function that is already a
    :class:`Tool` (made with ``@tool``) keeps its options; any other callable is wrapped
    with :func:`workbench.tools.tool`.

    Raises:
        PluginError: the spec is malformed, the file or the function is missing, or
            importing the file raised; the message names the file.
    """
    module_name, sep, func_name = spec.partition(":")
    module_name, func_name = module_name.strip(), func_name.strip()
    parts = module_name.split(".")
    if not sep or not func_name or not all(p.isidentifier() for p in parts):
        raise PluginError(
            f"bad tool {spec!r}: expected 'module:function' naming a .py file in the workspace"
        )
    if not func_name.isidentifier():
        raise PluginError(f"bad tool {spec!r}: {func_name!r} is not a function name")
    path = Path(root, *parts[:-1], f"{parts[-1]}.py")
    if not path.is_file():
        raise PluginError(f"tool {spec!r}: no file {path}")
    module = _import_workspace_module(root, module_name, path)
    try:
        obj = getattr(module, func_name)
    except AttributeError:
        raise PluginError(f"tool {spec!r}: {path} has no function {func_name!r}") from None
    where = f"workspace {path.relative_to(root).as_posix()}"
    if isinstance(obj, Tool):
        made = obj
    elif not callable(obj):
        raise PluginError(f"tool {spec!r}: {func_name!r} in {path} is not a function")
    else:
        try:
            made = tool(obj)
        except Exception as exc:
            raise PluginError(
                f"tool {spec!r}: cannot make a tool of {func_name!r} in {path}: {exc}"
            ) from exc
    if isinstance(made, FunctionTool):
        # At load, not at the first call: a bad annotation is the workspace's error.
        try:
            made.check()
        except ToolDefinitionError as exc:
            raise PluginError(f"tool {spec!r} in {path}: {exc}") from exc
    return made.renamed(f"{module_name}:{func_name}", where)


class _NoBytecodeLoader(importlib.machinery.SourceFileLoader):
    """A workspace module's loader that never writes its bytecode cache."""

    def set_data(self, path: str, data: Any, *, _mode: int = 0o666) -> None:
        return None


def _import_workspace_module(root: Path, module_name: str, path: Path) -> ModuleType:
    real_root = os.path.realpath(root)
    digest = hashlib.sha1(real_root.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    unique = f"_workbench_ws_{digest}_{module_name.replace('.', '__')}"
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise PluginError(f"cannot read {path}: {exc}") from exc
    cached = sys.modules.get(unique)
    if cached is not None and getattr(cached, "__workbench_mtime__", None) == mtime:
        return cached
    # Read without writing __pycache__ into the workspace: it would show in files.list,
    # git status and a re-run's comparison of tool results.
    loader = _NoBytecodeLoader(unique, str(path))
    module_spec = importlib.util.spec_from_file_location(unique, path, loader=loader)
    if module_spec is None or module_spec.loader is None:
        raise PluginError(f"cannot import {path}: not a Python module")
    module = importlib.util.module_from_spec(module_spec)
    # Registered before running so dataclasses, pickling and typing can find the module.
    sys.modules[unique] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(unique, None)
        if not isinstance(exc, Exception):
            raise
        raise PluginError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    module.__dict__["__workbench_mtime__"] = mtime
    return module


# -- patterns ----------------------------------------------------------------------------


async def resolve_tools(
    patterns: Sequence[str], toolkits: Mapping[str, Toolkit], root: Path
) -> list[Tool]:
    """Expand an agent's ``tools:`` list into tools, in order, without duplicates.

    Each pattern is ``toolkit.tool``, a glob over tool names (``time.*``, ``files.[rw]*``,
    ``*.search``), or ``module:function`` for a function in a workspace file.

    Args:
        patterns: The entries of the list.
        toolkits: The loaded toolkits by name.
        root: The workspace folder, for ``module:function`` entries.

    Raises:
        PluginError: a pattern names no toolkit or matches no tool; the message lists what
            there is.
    """
    cache: dict[str, list[Tool]] = {}

    async def tools_of(name: str) -> list[Tool]:
        if name not in cache:
            cache[name] = await toolkits[name].list_tools()
        return cache[name]

    out: list[Tool] = []
    seen: set[str] = set()
    for pattern in patterns:
        pattern = pattern.strip()
        matched: list[Tool]
        if _is_module_spec(pattern):
            matched = [load_module_tool(root, pattern)]
        else:
            prefix = pattern.partition(".")[0]
            if _GLOB_CHARS.intersection(prefix):
                names = [n for n in toolkits if fnmatch.fnmatchcase(n, prefix)]
            elif prefix in toolkits:
                names = [prefix]
            else:
                known = ", ".join(sorted(toolkits)) or "none"
                raise PluginError(
                    f"no tool matches {pattern!r}: there is no toolkit {prefix!r} "
                    f"(toolkits: {known})"
                )
            matched = []
            for name in names:
                matched += [t for t in await tools_of(name) if fnmatch.fnmatchcase(t.name, pattern)]
            if not matched:
                raise PluginError(await _no_match_message(pattern, names, tools_of))
        for t in matched:
            if t.name not in seen:
                seen.add(t.name)
                out.append(t)
    return out


def _is_module_spec(pattern: str) -> bool:
    module, sep, _ = pattern.partition(":")
    return bool(sep) and bool(module) and not _GLOB_CHARS.intersection(module)


async def _no_match_message(
    pattern: str, names: list[str], tools_of: Callable[[str], Awaitable[list[Tool]]]
) -> str:
    if not names:
        return f"no tool matches {pattern!r} (no toolkit matches {pattern.partition('.')[0]!r})"
    described = []
    for name in names:
        short = [t.name.removeprefix(f"{name}.") for t in await tools_of(name)]
        described.append(f"toolkit {name} has: {', '.join(short) or 'no tools'}")
    return f"no tool matches {pattern!r} ({'; '.join(described)})"
