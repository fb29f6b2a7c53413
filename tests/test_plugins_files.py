"""The ``files`` toolkit: every tool, the workspace confinement, and the approval diffs."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugins.files import FilesToolkit, confine
from workbench.tools import Tool, ToolContext, ToolError

SECRET = "TOPSECRET-do-not-read"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace next to an ``outside`` folder, with symlinks that lead out of it."""
    root = tmp_path / "ws"
    outside = tmp_path / "outside"
    (root / "src" / "pkg").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text(f"{SECRET}\n")
    (root / "README.md").write_text("# Title\nhello world\n")
    (root / "src" / "main.py").write_text("import os\n\ndef main():\n    return 1\n")
    (root / "src" / "pkg" / "util.py").write_text("def helper():\n    return 'hello'\n")
    (root / "src" / "data.bin").write_bytes(b"\x00\x01\x02hello")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("hello from git\n")
    os.symlink(outside, root / "out_dir")
    os.symlink(outside / "secret.txt", root / "out_file")
    os.symlink(outside / "new.txt", root / "dangling_out")
    os.symlink(root / "src", root / "src_link")
    return root


@pytest.fixture
async def tools(ws: Path) -> dict[str, Tool]:
    kit = FilesToolkit("files", {}, ws)
    return {t.name: t for t in await kit.list_tools()}


def ctx_for(root: Path) -> ToolContext:
    return ToolContext(workspace_root=root)


async def call(tools: dict[str, Tool], name: str, root: Path, **args: object) -> str:
    return await tools[f"files.{name}"].invoke(dict(args), ctx_for(root))


async def test_tool_names_schemas_and_match_on(tools: dict[str, Tool]) -> None:
    assert list(tools) == [
        "files.read",
        "files.write",
        "files.edit",
        "files.list",
        "files.glob",
        "files.grep",
    ]
    for t in tools.values():
        assert t.match_on == ("path", "path")
        assert t.description
        assert t.source == "plugin files"
        for prop in t.parameters["properties"].values():
            assert prop.get("description"), t.name
    assert tools["files.read"].parameters["required"] == ["path"]
    assert set(tools["files.edit"].parameters["required"]) == {"path", "old", "new"}


# -- read --------------------------------------------------------------------------------


async def test_read_numbers_lines(tools: dict[str, Tool], ws: Path) -> None:
    out = await call(tools, "read", ws, path="README.md")
    assert out == "     1\t# Title\n     2\thello world"


async def test_read_pages_with_offset_and_limit(tools: dict[str, Tool], ws: Path) -> None:
    (ws / "long.txt").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    out = await call(tools, "read", ws, path="long.txt", offset=2, limit=3)
    assert out.splitlines()[:3] == ["     3\tline 3", "     4\tline 4", "     5\tline 5"]
    assert "offset=5" in out.splitlines()[-1]
    assert "past the end" in await call(tools, "read", ws, path="long.txt", offset=50)


async def test_read_caps_size(ws: Path) -> None:
    (ws / "big.txt").write_text("x" * 100 + "\n" + ("y" * 50 + "\n") * 100)
    kit = FilesToolkit("files", {"max_read_chars": 400}, ws)
    read = {t.name: t for t in await kit.list_tools()}["files.read"]
    out = await read.invoke({"path": "big.txt"}, ctx_for(ws))
    assert len(out) < 600
    assert "chars cap" in out and "offset=" in out
    (ws / "wide.txt").write_text("z" * 5000)
    wide = await read.invoke({"path": "wide.txt"}, ctx_for(ws))
    assert "line cut at 2000 chars" in wide


async def test_read_errors(tools: dict[str, Tool], ws: Path) -> None:
    with pytest.raises(ToolError, match="no such file: nope.txt"):
        await call(tools, "read", ws, path="nope.txt")
    with pytest.raises(ToolError, match="is a directory"):
        await call(tools, "read", ws, path="src")
    with pytest.raises(ToolError, match="binary"):
        await call(tools, "read", ws, path="src/data.bin")
    with pytest.raises(ToolError, match="offset"):
        await call(tools, "read", ws, path="README.md", offset=-1)
    (ws / "empty.txt").write_text("")
    assert "empty" in await call(tools, "read", ws, path="empty.txt")


# -- write and edit ----------------------------------------------------------------------


async def test_write_creates_and_overwrites(tools: dict[str, Tool], ws: Path) -> None:
    out = await call(tools, "write", ws, path="notes/new.txt", content="héllo\n")
    assert out == "created notes/new.txt (7 bytes)"
    assert (ws / "notes" / "new.txt").read_text() == "héllo\n"
    out = await call(tools, "write", ws, path="notes/new.txt", content="bye")
    assert out.startswith("overwrote notes/new.txt")
    assert (ws / "notes" / "new.txt").read_text() == "bye"


async def test_write_through_inside_symlink_is_allowed(tools: dict[str, Tool], ws: Path) -> None:
    await call(tools, "write", ws, path="src_link/via_link.txt", content="ok")
    assert (ws / "src" / "via_link.txt").read_text() == "ok"


async def test_write_preview_is_a_unified_diff(tools: dict[str, Tool], ws: Path) -> None:
    write = tools["files.write"]
    preview = write.preview({"path": "README.md", "content": "# Title\nhello there\n"}, ctx_for(ws))
    assert preview is not None and preview.diff is not None
    assert preview.diff.splitlines() == [
        "--- a/README.md",
        "+++ b/README.md",
        "@@ -1,2 +1,2 @@",
        " # Title",
        "-hello world",
        "+hello there",
    ]
    new = write.preview({"path": "./sub//new.txt", "content": "a\nb"}, ctx_for(ws))
    assert new is not None and new.diff is not None
    assert new.diff.startswith("--- a/sub/new.txt\n+++ b/sub/new.txt\n")
    assert "+a\n+b\n\\ No newline at end of file\n" in new.diff
    assert not (ws / "sub").exists(), "a preview must not write"


async def test_edit_replaces_exactly(tools: dict[str, Tool], ws: Path) -> None:
    out = await call(tools, "edit", ws, path="src/main.py", old="return 1", new="return 2")
    assert out == "replaced 1 occurrence in src/main.py"
    assert (ws / "src" / "main.py").read_text().endswith("    return 2\n")


async def test_edit_refuses_missing_and_ambiguous(tools: dict[str, Tool], ws: Path) -> None:
    (ws / "rep.txt").write_text("a x a x a\n")
    with pytest.raises(ToolError, match="not found"):
        await call(tools, "edit", ws, path="rep.txt", old="zzz", new="y")
    with pytest.raises(ToolError, match=r"found 3 times .* count is 1.*count=3"):
        await call(tools, "edit", ws, path="rep.txt", old="a", new="b")
    with pytest.raises(ToolError, match="found 3 times"):
        await call(tools, "edit", ws, path="rep.txt", old="a", new="b", count=2)
    assert (ws / "rep.txt").read_text() == "a x a x a\n", "a refused edit changes nothing"
    out = await call(tools, "edit", ws, path="rep.txt", old="a", new="b", count=3)
    assert out == "replaced 3 occurrences in rep.txt"
    assert (ws / "rep.txt").read_text() == "b x b x b\n"
    with pytest.raises(ToolError, match="empty"):
        await call(tools, "edit", ws, path="rep.txt", old="", new="b")
    with pytest.raises(ToolError, match="no such file"):
        await call(tools, "edit", ws, path="missing.txt", old="a", new="b")


async def test_edit_preview(tools: dict[str, Tool], ws: Path) -> None:
    edit = tools["files.edit"]
    preview = edit.preview(
        {"path": "src/main.py", "old": "return 1", "new": "return 42"}, ctx_for(ws)
    )
    assert preview is not None and preview.diff is not None
    assert preview.diff.startswith("--- a/src/main.py\n+++ b/src/main.py\n@@")
    assert "-    return 1\n+    return 42\n" in preview.diff
    assert (ws / "src" / "main.py").read_text().endswith("return 1\n"), "preview wrote"
    bad = edit.preview({"path": "src/main.py", "old": "nope", "new": "x"}, ctx_for(ws))
    assert bad is not None and bad.diff is not None and "not found" in bad.diff


async def test_previews_are_confined(tools: dict[str, Tool], ws: Path) -> None:
    for tool_name, args in [
        ("files.write", {"path": "out_file", "content": "x"}),
        ("files.write", {"path": "../outside/secret.txt", "content": "x"}),
        ("files.edit", {"path": "out_dir/secret.txt", "old": "TOP", "new": "x"}),
    ]:
        preview = tools[tool_name].preview(args, ctx_for(ws))
        assert preview is not None and preview.diff is not None
        assert "outside the workspace" in preview.diff
        assert SECRET not in preview.diff


# -- list, glob, grep --------------------------------------------------------------------


async def test_list(tools: dict[str, Tool], ws: Path) -> None:
    out = await call(tools, "list", ws)
    lines = out.splitlines()
    assert "README.md" in lines and "src/" in lines and ".git/" in lines
    assert "out_dir/ (symlink)" in lines
    assert await call(tools, "list", ws, path="src/pkg") == "util.py"
    with pytest.raises(ToolError, match="no such folder"):
        await call(tools, "list", ws, path="nope")
    with pytest.raises(ToolError, match="outside the workspace"):
        await call(tools, "list", ws, path="out_dir")


async def test_glob(tools: dict[str, Tool], ws: Path) -> None:
    out = await call(tools, "glob", ws, pattern="**/*.py")
    assert out.splitlines() == ["src/main.py", "src/pkg/util.py"]
    assert await call(tools, "glob", ws, pattern="*.md") == "README.md"
    assert await call(tools, "glob", ws, pattern="*.py", path="src") == "src/main.py"
    everything = (await call(tools, "glob", ws, pattern="**/*")).splitlines()
    assert ".git/config" not in everything, "excluded folders are skipped"
    assert "out_dir/" in everything and not any(
        p.startswith("out_dir/") and p != "out_dir/" for p in everything
    )
    assert "no paths match" in await call(tools, "glob", ws, pattern="*.rs")
    with pytest.raises(ToolError, match="outside the workspace"):
        await call(tools, "glob", ws, pattern="../outside/*")
    with pytest.raises(ToolError, match="outside the workspace"):
        await call(tools, "glob", ws, pattern="/etc/*")


async def test_glob_caps_results(ws: Path) -> None:
    for i in range(30):
        (ws / f"f{i:02}.txt").write_text("")
    kit = FilesToolkit("files", {"max_results": 10}, ws)
    glob = {t.name: t for t in await kit.list_tools()}["files.glob"]
    out = (await glob.invoke({"pattern": "*.txt"}, ctx_for(ws))).splitlines()
    assert len(out) == 11 and out[-1] == "[... 20 more; narrow the pattern]"


async def test_grep(tools: dict[str, Tool], ws: Path) -> None:
    out = await call(tools, "grep", ws, pattern=r"hel+o")
    # Binary files, excluded folders and symlinks out are skipped, and the result says
    # which files were not searched (excluded folders are not files it was asked about).
    assert out.splitlines() == [
        "README.md:2: hello world",
        "src/pkg/util.py:2:     return 'hello'",
        "[not searched: dangling_out (a link out of the workspace), out_file (a link out of "
        "the workspace), src/data.bin (binary)]",
    ]
    assert await call(tools, "grep", ws, pattern="def", glob="**/util.py") == (
        "src/pkg/util.py:1: def helper():"
    )
    assert await call(tools, "grep", ws, pattern="import", path="src/main.py") == (
        "src/main.py:1: import os"
    )
    assert "no matches" in await call(tools, "grep", ws, pattern="zebra")
    with pytest.raises(ToolError, match="bad regular expression"):
        await call(tools, "grep", ws, pattern="(")
    with pytest.raises(ToolError, match="outside the workspace"):
        await call(tools, "grep", ws, pattern=".", path="out_dir")
    with pytest.raises(ToolError, match="outside the workspace"):
        await call(tools, "grep", ws, pattern=".", glob="../*")


async def test_grep_says_what_it_skipped(ws: Path) -> None:
    """A file over max_file_bytes is not searched, and the result says so instead of a bare
    "no matches" (here with a 50 MB log under a 10 MB limit)."""
    big = ws / "logs" / "big.log"
    big.parent.mkdir()
    with big.open("wb") as f:
        f.truncate(50 * 1024 * 1024)
        f.seek(0)
        f.write(b"needle in the first line\n")
    kit = FilesToolkit("files", {}, ws)
    grep = {t.name: t for t in await kit.list_tools()}["files.grep"]
    out = await grep.invoke({"pattern": "needle", "path": "logs"}, ctx_for(ws))
    assert out.splitlines() == [
        "no matches for 'needle' in logs",
        "[not searched: logs/big.log (52,428,800 bytes); max_file_bytes is 10,000,000]",
    ]
    for i in range(5):
        (ws / "logs" / f"blob{i}.bin").write_bytes(b"\x00needle")
    out = await grep.invoke({"pattern": "needle", "path": "logs"}, ctx_for(ws))
    assert out.splitlines()[-1] == (
        "[not searched: logs/big.log (52,428,800 bytes), 5 binary files; "
        "max_file_bytes is 10,000,000]"
    )


async def test_grep_names_what_its_walk_could_not_search(ws: Path) -> None:
    """Met on the walk beneath the root: a FIFO (never opened for reading, never waited
    on), and a text file that turns binary past the first 8 KB (searched up to there)."""
    os.mkfifo(ws / "src" / "pipe")
    (ws / "src" / "mixed.log").write_bytes(
        b"".join(b"line %d\n" % i for i in range(1, 1501)) + b"\x00\x00line 3\n"
    )
    kit = FilesToolkit("files", {}, ws)
    grep = {t.name: t for t in await kit.list_tools()}["files.grep"]
    out = await grep.invoke({"pattern": "line 3$", "path": "src"}, ctx_for(ws))
    assert out.splitlines() == [
        "src/mixed.log:3: line 3",
        "[not searched: src/data.bin (binary), src/mixed.log (binary from line 1501 on), "
        "src/pipe (a FIFO)]",
    ]


async def test_grep_caps_matches(ws: Path) -> None:
    (ws / "many.txt").write_text("match\n" * 50)
    kit = FilesToolkit("files", {"max_matches": 5}, ws)
    grep = {t.name: t for t in await kit.list_tools()}["files.grep"]
    out = (await grep.invoke({"pattern": "match", "path": "many.txt"}, ctx_for(ws))).splitlines()
    assert len(out) == 6 and out[-1].startswith("[... 45 more matches")


# -- confinement -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "..",
        "../outside/secret.txt",
        "src/../../outside/secret.txt",
        "out_file",
        "out_dir/secret.txt",
        "out_dir",
        "dangling_out",
        "out_dir/new.txt",
        "src_link/../../outside/secret.txt",
    ],
)
async def test_outside_paths_are_refused(tools: dict[str, Tool], ws: Path, path: str) -> None:
    for name, args in [
        ("read", {"path": path}),
        ("write", {"path": path, "content": "pwned"}),
        ("edit", {"path": path, "old": "TOP", "new": "pwned"}),
        ("list", {"path": path}),
        ("grep", {"pattern": ".", "path": path}),
        ("glob", {"pattern": "*", "path": path}),
    ]:
        with pytest.raises(ToolError, match=r"path '.*' is outside the workspace"):
            await call(tools, name, ws, **args)
    outside = ws.parent / "outside"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == f"{SECRET}\n"


def test_confine_resolves_inside_paths(ws: Path) -> None:
    real_root = os.path.realpath(ws)
    assert confine(ws, ".") == (real_root, ".")
    assert confine(ws, "./src//pkg/../main.py") == (f"{real_root}/src/main.py", "src/main.py")
    assert confine(ws, "src_link/main.py")[1] == "src/main.py"
    assert confine(ws, "new/ünï cödé.txt")[1] == "new/ünï cödé.txt"
    with pytest.raises(ToolError, match="invalid path"):
        confine(ws, "a\x00b")
    with pytest.raises(ToolError, match="non-empty"):
        confine(ws, "")


def _snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (not following links) with a digest of its content."""
    seen: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                seen[p] = "link:" + os.readlink(p)
            elif os.path.isfile(p):
                with open(p, "rb") as fh:
                    seen[p] = hashlib.sha256(fh.read()).hexdigest()
            else:
                seen[p] = "dir"
    return seen


_SEGMENTS = st.sampled_from(
    [
        "..",
        ".",
        "",
        "out_dir",
        "out_file",
        "dangling_out",
        "src_link",
        "src",
        "outside",
        "secret.txt",
        "new.txt",
        "ü",
        "日本",
        "~",
        "ws",
        "...",
    ]
)
_PATHS = st.one_of(
    st.lists(st.one_of(_SEGMENTS, st.text(min_size=1, max_size=6)), min_size=1, max_size=6).flatmap(
        lambda parts: st.tuples(
            st.sampled_from(["", "/", "./", "../", "//", "~/"]),
            st.sampled_from(["/", "//", "/./"]),
        ).map(lambda t: t[0] + t[1].join(parts))
    ),
    st.text(max_size=20),
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(path=_PATHS, outside_abs=st.booleans())
def test_property_nothing_outside_is_read_or_written(
    ws: Path, path: str, outside_abs: bool
) -> None:
    if outside_abs:
        path = str(ws.parent / "outside" / path.lstrip("/"))
    kit = FilesToolkit("files", {}, ws)
    tools = {t.name: t for t in asyncio.run(kit.list_tools())}
    ctx = ctx_for(ws)
    outside_before = _snapshot(ws.parent / "outside")
    calls = [
        ("files.read", {"path": path}),
        ("files.write", {"path": path, "content": "pwned"}),
        ("files.edit", {"path": path, "old": "TOP", "new": "pwned"}),
        ("files.list", {"path": path}),
        ("files.glob", {"pattern": path}),
        ("files.glob", {"pattern": "**/*", "path": path}),
        ("files.grep", {"pattern": "TOP", "path": path}),
        ("files.grep", {"pattern": "TOP", "glob": path}),
    ]

    async def run_all() -> list[str]:
        outputs = []
        for name, args in calls:
            t = tools[name]
            preview = t.preview(args, ctx)
            if preview is not None and preview.diff:
                outputs.append(preview.diff)
            try:
                outputs.append(await t.invoke(args, ctx))
            except ToolError as exc:
                outputs.append(str(exc))
        return outputs

    for out in asyncio.run(run_all()):
        assert SECRET not in out, f"{path!r} leaked the secret"
    assert _snapshot(ws.parent / "outside") == outside_before, f"{path!r} wrote outside"
    # Nothing appeared beside the workspace either (tmp_path holds only ws and outside).
    assert sorted(p.name for p in ws.parent.iterdir()) == ["outside", "ws"]


# -- what a filesystem can throw at it: links, FIFOs, devices, races, huge files -------------

MAIN = Path(__file__).resolve().parents[1]

RUN_ONE = """
import asyncio, json, resource, sys
from pathlib import Path
from plugins.files import FilesToolkit
from workbench.tools import ToolContext, ToolError

root, name, args = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
if len(sys.argv) > 4:  # a memory ceiling, so a tool that reads everything fails, not the box
    limit = int(sys.argv[4])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
tools = {t.name: t for t in asyncio.run(FilesToolkit("files", {}, root).list_tools())}
tool = tools[name]
ctx = ToolContext(workspace_root=root)
out = {}
if "preview" in args:
    p = tool.preview(args["preview"], ctx)
    out["preview"] = p.diff if p else None
else:
    try:
        out["output"] = asyncio.run(tool.invoke(args, ctx))
    except ToolError as exc:
        out["error"] = str(exc)
# The peak of this process's own memory (VmHWM: ru_maxrss would count the forked parent).
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
out["maxrss_mb"] = int(hwm.split()[1]) / 1024
print(json.dumps(out))
"""


def run_one(
    root: Path, name: str, args: dict[str, object], limit: int | None = None
) -> dict[str, object]:
    """One tool call in a process of its own (a hang or a blow-up cannot take the test
    process with it): what it returned, and its peak memory."""
    import json
    import subprocess
    import sys

    extra = [str(limit)] if limit else []
    done = subprocess.run(
        [sys.executable, "-c", RUN_ONE, str(root), name, json.dumps(args), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=MAIN,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_fifo_is_refused_without_hanging(ws: Path) -> None:
    os.mkfifo(ws / "pipe")
    for name, args in [
        ("files.read", {"path": "pipe"}),
        ("files.write", {"path": "pipe", "content": "x"}),
        ("files.edit", {"path": "pipe", "old": "a", "new": "b"}),
        ("files.grep", {"pattern": "x", "path": "pipe"}),
    ]:
        out = run_one(ws, name, args)
        assert "not a regular file" in str(out.get("error")), (name, out)
    out = run_one(ws, "files.write", {"preview": {"path": "pipe", "content": "x"}})
    assert "not a regular file" in str(out["preview"])
    assert "pipe" in run_one(ws, "files.list", {"path": "."})["output"]  # type: ignore[operator]
    assert "no matches" in str(run_one(ws, "files.grep", {"pattern": "zebra"})["output"])


def test_a_device_is_refused(ws: Path) -> None:
    import stat

    try:
        os.mknod(ws / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs privileges")
    for name, args in [
        ("files.read", {"path": "null"}),
        ("files.write", {"path": "null", "content": "x"}),
    ]:
        out = run_one(ws, name, args)
        assert "not a regular file" in str(out.get("error")), (name, out)


async def test_a_write_through_a_hard_link_is_refused(tools: dict[str, Tool], ws: Path) -> None:
    target = ws.parent / "outside" / "secret.txt"
    os.link(target, ws / "linked.txt")
    for name, args in [
        ("write", {"path": "linked.txt", "content": "pwned"}),
        ("edit", {"path": "linked.txt", "old": "TOP", "new": "pwned"}),
    ]:
        with pytest.raises(ToolError, match="2 hard links"):
            await call(tools, name, ws, **args)
    assert target.read_text() == f"{SECRET}\n"
    # Reading it is not writing it: allowed (the file is in the workspace under that name).
    assert SECRET in await call(tools, "read", ws, path="linked.txt")


SWAPPER = """
import ctypes, os, sys, time
ws, outside, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
os.chdir(ws)
os.symlink(outside, "d.link")
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
end = time.monotonic() + seconds
print("swapping", flush=True)
while time.monotonic() < end:
    # d and d.link trade places atomically: d is a folder, then a link to outside, then ...
    libc.renameat2(AT_FDCWD, b"d", AT_FDCWD, b"d.link", RENAME_EXCHANGE)
"""


def test_a_folder_swapped_for_a_link_never_lets_a_write_out(ws: Path) -> None:
    """Another process swaps ``d`` between a folder and a link to outside, as fast as it can,
    while writes to ``d/x.txt`` go on: each write lands inside or is refused."""
    import subprocess
    import sys

    outside = ws.parent / "outside"
    kit = FilesToolkit("files", {}, ws)
    write = {t.name: t for t in asyncio.run(kit.list_tools())}["files.write"]
    (ws / "d").mkdir()
    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(ws), str(outside), "20"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert swapper.stdout is not None and swapper.stdout.readline() == "swapping\n"

    async def writes() -> list[str]:
        out = []
        for i in range(1500):
            try:
                out.append(await write.invoke({"path": "d/x.txt", "content": f"w{i}"}, ctx_for(ws)))
            except ToolError as exc:
                out.append(str(exc))
        return out

    try:
        results = asyncio.run(writes())
    finally:
        swapper.kill()
        swapper.wait()
        swapper.stdout.close()
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"], "a write escaped"
    assert (outside / "secret.txt").read_text() == f"{SECRET}\n"
    assert any(r.startswith(("created", "overwrote")) for r in results)


def test_a_huge_sparse_file_is_read_with_a_byte_cap(ws: Path) -> None:
    """Text, then 2 GB of zeros: read returns the text and stops, in bounded memory."""
    big = ws / "big.log"
    with open(big, "wb") as fh:
        fh.write(b"".join(b"line %d\n" % i for i in range(1, 1501)))  # past the 8 KB sniff
        fh.truncate(2 * 1024**3)
    out = run_one(ws, "files.read", {"path": "big.log"}, limit=1024**3)
    text = str(out.get("output") or out.get("error"))
    assert "     1\tline 1" in text and "  1500\tline 1500" in text, out
    assert "binary data from line 1501" in text
    assert float(out["maxrss_mb"]) < 200, out  # type: ignore[arg-type]
    out = run_one(ws, "files.grep", {"pattern": "line 3$", "path": "big.log"}, limit=1024**3)
    assert float(out["maxrss_mb"]) < 200, out  # type: ignore[arg-type]
    assert "no matches" in str(out["output"]), out  # over max_file_bytes: not searched
    out = run_one(ws, "files.read", {"path": "big.log", "offset": 1490, "limit": 5})
    assert str(out["output"]).splitlines()[0] == "  1491\tline 1491", out
    edit = run_one(
        ws, "files.edit", {"path": "big.log", "old": "line 1", "new": "x"}, limit=1024**3
    )
    assert "too large" in str(edit.get("error")), edit


async def test_the_approval_preview_of_a_fifo_does_not_stop_the_event_loop(
    ws: Path, db_url: str
) -> None:
    """An agent asks to write into a FIFO: the approval (with its preview) arrives, and the
    engine keeps answering, while nobody opens the other end."""
    from tests.support.openai_server import FakeOpenAI, Reply
    from workbench.engine import Engine

    os.mkfifo(ws / "pipe")
    async with FakeOpenAI(
        script=[Reply(tool_calls=[("files__write", {"path": "pipe", "content": "x"})])]
    ) as srv:
        (ws / "workbench.yaml").write_text(
            "models:\n"
            f"  default: {{model: openai/x, api_base: '{srv.base_url}', api_key: none}}\n"
            "agents:\n  helper: {tools: [files.write]}\napprovals: {default: ask}\n"
        )
        async with Engine.open(ws, db_url) as engine:
            handle = await engine.start_run("helper", "go")
            for _ in range(500):  # the loop turns: this sleep returns while the call waits
                if engine.broker.pending():
                    break
                await asyncio.sleep(0.01)
            (p,) = engine.broker.pending()
            assert "not a regular file" in (p.diff or "")
            engine.cancel(handle.run_id)
            await handle.wait()
