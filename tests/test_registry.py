"""The plugin registry: entry points listed without importing, loaded on demand, missing
dependencies turned into install advice, workspace module tools, tool patterns."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from workbench.registry import (
    ENTRY_POINT_GROUP,
    PluginError,
    _load_entry_point,
    available_toolkits,
    load_module_tool,
    load_toolkit,
    resolve_tools,
)
from workbench.tools import FunctionToolkit, Tool, ToolContext, Toolkit, tool

FIRST_PARTY = {
    "plugins.files:FilesToolkit": ["read", "write", "edit", "list", "glob", "grep"],
    "plugins.shell:ShellToolkit": ["run"],
    "plugins.calculator:CalculatorToolkit": ["evaluate"],
    "plugins.http:HttpToolkit": ["get", "post"],
    "plugins.web:WebToolkit": ["search", "news"],
    "plugins.clock:TimeToolkit": ["now", "convert"],
}
"""This piece's toolkits by entry-point target (the names they register under may change
in pyproject.toml), with their tools."""
ROOT = Path(__file__).resolve().parents[1]


def _registered_name(target: str) -> str:
    names = [n for n, ep in available_toolkits().items() if ep.value == target]
    assert names, f"{target} is not registered in {ENTRY_POINT_GROUP}"
    return names[0]


def test_first_party_toolkits_are_registered() -> None:
    found = available_toolkits()
    assert {ep.value for ep in found.values()} >= set(FIRST_PARTY)
    assert {"files", "shell", "calculator", "http", "web"} <= set(found)
    # Duck-typed on purpose: once a library installs the importlib_metadata backport's
    # finder, the stdlib lookup hands out the backport's EntryPoint class.
    assert all(ep.group == ENTRY_POINT_GROUP and callable(ep.load) for ep in found.values())
    assert list(found) == sorted(found)


def test_listing_imports_no_plugin() -> None:
    code = textwrap.dedent(
        """
        import sys
        from workbench.registry import available_toolkits
        names = available_toolkits()
        assert 'files' in names and 'web' in names, names
        loaded = [m for m in sys.modules if m.startswith('plugins') or m in ('ddgs', 'httpx')]
        assert not loaded, loaded
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def _install_plugin(site: Path, dist: str, name: str, target: str) -> None:
    """Write a distribution's metadata as pip would (no code: listing imports nothing)."""
    info = site / f"{dist}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{name} = {target}\n")


def _settle(folder: Path) -> None:
    """Date a folder's last change a minute back, as for packages installed before today."""
    past = folder.stat().st_mtime - 60
    os.utime(folder, (past, past))


@pytest.fixture
def metadata_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the reads of package metadata that listing the toolkits makes."""
    import workbench.registry as registry

    reads: list[str] = []
    real = registry.entry_points

    def counted(**kw: Any) -> Any:
        reads.append(kw.get("group", ""))
        return real(**kw)

    monkeypatch.setattr(registry, "_toolkits_cache", None)
    monkeypatch.setattr(registry, "entry_points", counted)
    return reads


def test_listing_the_toolkits_again_reads_no_metadata(
    metadata_reads: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workbench.registry as registry

    # Every folder on sys.path counts as settled, however recently the suite touched it.
    monkeypatch.setattr(registry, "_SETTLED_NS", 0)
    site = tmp_path / "site"
    _install_plugin(site, "wb_dice", "dice", "wb_dice:Dice")
    monkeypatch.syspath_prepend(str(site))
    first = available_toolkits()
    assert first["dice"].value == "wb_dice:Dice" and "files" in first
    first.pop("dice")  # the caller's copy: the next caller still gets it
    assert available_toolkits()["dice"].value == "wb_dice:Dice"
    assert metadata_reads == [ENTRY_POINT_GROUP]


def test_a_folder_changed_a_moment_ago_is_read_at_each_call(
    metadata_reads: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its stamp may not move again for a package installed within the same clock tick.
    site = tmp_path / "site"
    _install_plugin(site, "wb_dice", "dice", "wb_dice:Dice")
    monkeypatch.syspath_prepend(str(site))
    assert "dice" in available_toolkits() and "dice" in available_toolkits()
    assert len(metadata_reads) == 2


def test_a_plugin_installed_while_running_is_listed_at_the_next_call(
    metadata_reads: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _settle(site)
    monkeypatch.syspath_prepend(str(site))
    assert "dice" not in available_toolkits()
    # Installed a moment later: its folder's stamp moved.
    _install_plugin(site, "wb_dice", "dice", "wb_dice:Dice")
    assert available_toolkits()["dice"].value == "wb_dice:Dice"
    # Removed: gone at the next call.
    import shutil

    shutil.rmtree(site / "wb_dice-0.1.0.dist-info")
    assert "dice" not in available_toolkits()
    assert len(metadata_reads) == 3


def test_a_folder_added_to_sys_path_is_read(
    metadata_reads: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "dice" not in available_toolkits()
    site = tmp_path / "site"
    _install_plugin(site, "wb_dice", "dice", "wb_dice:Dice")
    _settle(site)
    monkeypatch.syspath_prepend(str(site))
    assert available_toolkits()["dice"].value == "wb_dice:Dice"


@pytest.mark.parametrize("target", sorted(FIRST_PARTY))
async def test_load_each_first_party_toolkit(target: str, tmp_path: Path) -> None:
    name = _registered_name(target)
    kit = load_toolkit(name, {}, tmp_path)
    assert isinstance(kit, Toolkit)
    assert kit.name == name and kit.root == tmp_path
    tools = await kit.list_tools()
    assert [t.name for t in tools] == [f"{name}.{t}" for t in FIRST_PARTY[target]]
    for t in tools:
        assert t.description, t.name
        assert t.parameters["type"] == "object"
    await kit.aclose()


async def test_load_toolkit_under_another_name(tmp_path: Path) -> None:
    kit = load_toolkit("calculator", {}, tmp_path, name="calc")
    assert kit.name == "calc"
    assert [t.name for t in await kit.list_tools()] == ["calc.evaluate"]


def test_unknown_toolkit_lists_the_available_ones(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=r"unknown toolkit 'fiels' \(available: .*files.*\)"):
        load_toolkit("fiels", {}, tmp_path)


class _FakeEntryPoint:
    """An entry point whose target is a module the test writes."""

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value

    def load(self) -> Any:
        return importlib.metadata.EntryPoint(self.name, self.value, ENTRY_POINT_GROUP).load()


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "fakeplugins"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def _write_module(folder: Path, name: str, source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.delitem(sys.modules, name, raising=False)


def test_missing_dependency_says_what_to_install(
    plugin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_module(
        plugin_dir, "wb_needs_somepkg", "import somepkg_not_installed_xyz.sub\n", monkeypatch
    )
    ep = _FakeEntryPoint("fancy", "wb_needs_somepkg:Kit")
    with pytest.raises(PluginError) as err:
        _load_entry_point(ep, {}, tmp_path)
    assert str(err.value) == (
        "toolkit 'fancy' needs the package 'somepkg_not_installed_xyz': "
        "pip install somepkg_not_installed_xyz"
    )


def test_import_error_name_is_used(
    plugin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_module(
        plugin_dir,
        "wb_raises_import",
        "raise ImportError('cannot import yaml thing', name='yaml')\n",
        monkeypatch,
    )
    with pytest.raises(PluginError, match=r"needs the package 'pyyaml': pip install pyyaml"):
        _load_entry_point(_FakeEntryPoint("y", "wb_raises_import:Kit"), {}, tmp_path)


def test_plugin_module_itself_missing(tmp_path: Path) -> None:
    with pytest.raises(
        PluginError, match=r"toolkit 'gone' cannot be imported from wb_nowhere_xyz:Kit"
    ):
        _load_entry_point(_FakeEntryPoint("gone", "wb_nowhere_xyz:Kit"), {}, tmp_path)


def test_plugin_that_is_not_a_toolkit_or_fails(
    plugin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_module(
        plugin_dir,
        "wb_odd",
        """
        from workbench.tools import FunctionToolkit

        class NotKit:
            pass

        class Broken(FunctionToolkit):
            def __init__(self, name, config, root):
                raise ValueError("needs an api_key")
        """,
        monkeypatch,
    )
    with pytest.raises(PluginError, match="is not a workbench.tools.Toolkit subclass"):
        _load_entry_point(_FakeEntryPoint("odd", "wb_odd:NotKit"), {}, tmp_path)
    with pytest.raises(
        PluginError, match="toolkit 'odd' failed to start: ValueError: needs an api_key"
    ):
        _load_entry_point(_FakeEntryPoint("odd", "wb_odd:Broken"), {}, tmp_path)
    with pytest.raises(PluginError, match=r"toolkit 'gh' \(odd\) failed to start"):
        _load_entry_point(_FakeEntryPoint("odd", "wb_odd:Broken"), {}, tmp_path, name="gh")
    _write_module(plugin_dir, "wb_boom", "1 / 0\n", monkeypatch)
    with pytest.raises(PluginError, match="failed to import: ZeroDivisionError"):
        _load_entry_point(_FakeEntryPoint("boom", "wb_boom:Kit"), {}, tmp_path)


def test_loader_passes_name_config_and_root(
    plugin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_module(
        plugin_dir,
        "wb_good",
        """
        from workbench.tools import FunctionToolkit, tool

        @tool
        def ping() -> str:
            \"\"\"Answer pong.\"\"\"
            return "pong"

        class Kit(FunctionToolkit):
            def __init__(self, name, config, root):
                super().__init__(name, config, root, [ping])
        """,
        monkeypatch,
    )
    kit = _load_entry_point(_FakeEntryPoint("mine", "wb_good:Kit"), {"k": 1}, tmp_path)
    assert (kit.name, kit.config, kit.root) == ("mine", {"k": 1}, tmp_path)


# -- module tools ------------------------------------------------------------------------


def _workspace(tmp_path: Path, name: str, source: str) -> Path:
    root = tmp_path / name
    root.mkdir()
    (root / "mytools.py").write_text(textwrap.dedent(source))
    return root


async def test_load_module_tool_wraps_a_function(tmp_path: Path) -> None:
    root = _workspace(
        tmp_path,
        "ws",
        '''
        def word_count(text: str) -> int:
            """Count the words in a text.

            Args:
                text: The text to count.
            """
            return len(text.split())
        ''',
    )
    t = load_module_tool(root, "mytools:word_count")
    assert t.name == "mytools:word_count"
    assert t.source == "workspace mytools.py"
    assert t.description == "Count the words in a text."
    assert t.parameters["properties"]["text"]["description"] == "The text to count."
    assert await t.invoke({"text": "a b c"}, ToolContext(workspace_root=root)) == "3"


async def test_load_module_tool_keeps_a_tool(tmp_path: Path) -> None:
    root = _workspace(
        tmp_path,
        "ws",
        '''
        from workbench.tools import tool

        @tool(timeout=3.0, match_on=("path", "target"))
        async def touch(target: str) -> str:
            """Pretend to touch a file."""
            return "touched " + target
        ''',
    )
    t = load_module_tool(root, "mytools:touch")
    assert (t.name, t.timeout, t.match_on) == ("mytools:touch", 3.0, ("path", "target"))
    assert await t.invoke({"target": "x"}, ToolContext(workspace_root=root)) == "touched x"


async def test_two_workspaces_do_not_clash(tmp_path: Path) -> None:
    one = _workspace(tmp_path, "one", "def which() -> str:\n    return 'one'\n")
    two = _workspace(tmp_path, "two", "def which() -> str:\n    return 'two'\n")
    t1, t2 = load_module_tool(one, "mytools:which"), load_module_tool(two, "mytools:which")
    ctx = ToolContext(workspace_root=tmp_path)
    assert (await t1.invoke({}, ctx), await t2.invoke({}, ctx)) == ("one", "two")
    assert "mytools" not in sys.modules


def test_load_module_tool_dotted_module(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "extra.py").write_text("def hi() -> str:\n    return 'hi'\n")
    assert load_module_tool(root, "pkg.extra:hi").name == "pkg.extra:hi"


def test_load_module_tool_errors_name_the_file(tmp_path: Path) -> None:
    root = _workspace(tmp_path, "ws", "VALUE = 1\n")
    path = root / "mytools.py"
    with pytest.raises(PluginError, match=re.escape(f"no file {root / 'nothere.py'}")):
        load_module_tool(root, "nothere:f")
    with pytest.raises(PluginError, match=re.escape(f"{path} has no function 'missing'")):
        load_module_tool(root, "mytools:missing")
    with pytest.raises(PluginError, match="is not a function"):
        load_module_tool(root, "mytools:VALUE")
    with pytest.raises(PluginError, match="expected 'module:function'"):
        load_module_tool(root, "mytools")
    with pytest.raises(PluginError, match="expected 'module:function'"):
        load_module_tool(root, "../evil:f")
    broken = _workspace(tmp_path, "broken", "raise RuntimeError('bad import')\n")
    message = f"importing {broken / 'mytools.py'} failed: RuntimeError: bad import"
    with pytest.raises(PluginError, match=re.escape(message)):
        load_module_tool(broken, "mytools:f")


def test_module_is_reimported_when_the_file_changes(tmp_path: Path) -> None:
    root = _workspace(tmp_path, "ws", "def a() -> str:\n    return 'a'\n")
    assert load_module_tool(root, "mytools:a").name == "mytools:a"
    assert load_module_tool(root, "mytools:a") is not None  # cached module, same file
    (root / "mytools.py").write_text("def b() -> str:\n    return 'b'\n")
    st = (root / "mytools.py").stat()
    os.utime(root / "mytools.py", ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    assert load_module_tool(root, "mytools:b").name == "mytools:b"


# -- patterns ----------------------------------------------------------------------------


def _kit(name: str, *tool_names: str) -> FunctionToolkit:
    def make(n: str) -> Tool:
        def fn() -> str:
            return n

        return tool(name=n)(fn)

    return FunctionToolkit(name, {}, Path("."), [make(n) for n in tool_names])


@pytest.fixture
def kits() -> dict[str, Toolkit]:
    return {
        "files": _kit("files", "read", "write", "edit"),
        "web": _kit("web", "search", "news"),
        "time": _kit("time", "now", "convert"),
        "knowledge": _kit("knowledge", "search"),
    }


async def test_resolve_exact_star_and_globs(kits: dict[str, Toolkit], tmp_path: Path) -> None:
    got = await resolve_tools(["web.search", "time.*", "files.[rw]*"], kits, tmp_path)
    assert [t.name for t in got] == [
        "web.search",
        "time.now",
        "time.convert",
        "files.read",
        "files.write",
    ]
    across = await resolve_tools(["*.search", "web.*"], kits, tmp_path)
    assert [t.name for t in across] == ["web.search", "knowledge.search", "web.news"]


async def test_resolve_module_tools(kits: dict[str, Toolkit], tmp_path: Path) -> None:
    root = _workspace(tmp_path, "ws", "def word_count(text: str) -> int:\n    return 1\n")
    got = await resolve_tools(["time.now", "mytools:word_count"], kits, root)
    assert [t.name for t in got] == ["time.now", "mytools:word_count"]


async def test_resolve_no_match_says_what_there_is(
    kits: dict[str, Toolkit], tmp_path: Path
) -> None:
    with pytest.raises(PluginError) as err:
        await resolve_tools(["files.raed"], kits, tmp_path)
    assert str(err.value) == "no tool matches 'files.raed' (toolkit files has: read, write, edit)"
    with pytest.raises(
        PluginError,
        match=r"no tool matches 'fiels.read': there is no toolkit 'fiels' \(toolkits: files, knowledge, time, web\)",
    ):
        await resolve_tools(["fiels.read"], kits, tmp_path)
    with pytest.raises(PluginError, match=r"no tool matches 'z\*.x' \(no toolkit matches 'z\*'\)"):
        await resolve_tools(["z*.x"], kits, tmp_path)
    with pytest.raises(PluginError, match="no tool matches 'files'"):
        await resolve_tools(["files"], kits, tmp_path)
