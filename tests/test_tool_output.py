"""The one cap on every tool result (``workbench.tools.cap_text``), its settings per toolkit and
per tool, and Python tools that carry their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from workbench.tools import (
    DEFAULT_MAX_OUTPUT,
    FunctionToolkit,
    ToolContext,
    ToolError,
    ToolOutput,
    cap_text,
    output_limit,
    tool,
)


@given(st.text(max_size=3000), st.integers(min_value=2, max_value=2000))
@example("0\n0", 2)  # the line break before the marker is the text's own, or the cut's
def test_cap_keeps_head_and_tail_and_says_the_cut(text: str, limit: int) -> None:
    out = cap_text(text, limit)
    if len(text) <= limit:
        assert out is text
        return
    head, marker, tail = out.partition("[... ")
    assert marker, out
    said, _, tail = tail.partition(" ...]")
    cut = int(said.split(" characters cut")[0].replace(",", ""))
    assert f"{len(text):,} in all" in said
    # The marker has a line of its own: a line break next to it is the text's, or added.
    # The count it gives tells which: what was cut and what was kept add up to the whole
    # (nothing is lost silently).
    kept = [
        (h, t)
        for h in {head, head.removesuffix("\n")}
        for t in {tail, tail.removeprefix("\n")}
        if text.startswith(h) and text.endswith(t) and len(h) + len(t) + cut == len(text)
    ]
    assert kept, out
    head, tail = max(kept, key=lambda ht: len(ht[0]) + len(ht[1]))
    # The kept text is within the limit; the cut may give up at most 5% for whole lines.
    assert len(head) + len(tail) <= limit
    assert len(head) + len(tail) >= limit - 2 * max(1, limit // 20) - 2


def test_cap_cuts_on_line_breaks_when_near() -> None:
    text = "".join(f"line {i:04d}\n" for i in range(1000))
    out = cap_text(text, 1000, "raise it")
    head, _, rest = out.partition("[... ")
    assert head.endswith("\n") and head.splitlines()[-1].startswith("line ")
    tail = rest.split("...]\n", 1)[1]
    assert tail.startswith("line ") and tail.endswith("\n")
    assert "; raise it ...]" in out


def test_output_limit_settings() -> None:
    assert output_limit(None, "read") is None
    assert output_limit(500, "read") == 500
    table = {"read": 10, "gr*": 20, "*": 30}
    assert output_limit(table, "read") == 10
    assert output_limit(table, "grep") == 20
    assert output_limit(table, "list") == 30
    assert output_limit({"read": 10}, "list") is None
    for bad in (0, -1, True, "100", 2.5, {"read": -3}):
        with pytest.raises(ValueError, match="max_output"):
            output_limit(bad, "read")


async def test_every_python_tool_is_capped(tmp_path: Path) -> None:
    @tool
    def flood(n: int) -> str:
        """A lot of text."""
        return "x" * n

    @tool(max_output=50)
    def small(n: int) -> str:
        """A little, capped hard."""
        return "y" * n

    @tool
    def fails(n: int) -> str:
        """An error as long as a result."""
        raise ValueError("z" * n)

    ctx = ToolContext(workspace_root=tmp_path)
    out = await flood.invoke({"n": 5_000_000}, ctx)
    assert len(out) < DEFAULT_MAX_OUTPUT + 200 and "5,000,000 in all" in out
    assert "raise max_output in @tool(...)" in out
    assert len(await small.invoke({"n": 500}, ctx)) < 200
    with pytest.raises(ToolError) as info:
        await fails.invoke({"n": 1_000_000}, ctx)
    assert len(str(info.value)) < DEFAULT_MAX_OUTPUT + 200
    assert str(info.value).startswith("ValueError: zzz")


async def test_a_toolkits_setting_caps_its_tools(tmp_path: Path) -> None:
    @tool
    def read(n: int) -> str:
        """Read."""
        return "r" * n

    @tool
    def grep(n: int) -> str:
        """Grep."""
        return "g" * n

    kit = FunctionToolkit("files", {"max_output": {"read": 300, "*": 100}}, tmp_path, [read])
    kit.add(grep)
    tools = {t.name: t for t in await kit.list_tools()}
    ctx = ToolContext(workspace_root=tmp_path)
    read_out = await tools["files.read"].invoke({"n": 10_000}, ctx)
    grep_out = await tools["files.grep"].invoke({"n": 10_000}, ctx)
    assert "300 kept; raise max_output under toolkits: files:" in read_out
    assert "100 kept" in grep_out
    # The original tool objects keep their own (default) limit.
    assert read.output_limit == DEFAULT_MAX_OUTPUT


async def test_structured_content_over_the_cap_is_not_logged(tmp_path: Path) -> None:
    @tool(max_output=100)
    def data(n: int) -> Any:
        """Structured."""
        return ToolOutput("short", structured={"items": list(range(n))})

    ctx = ToolContext(workspace_root=tmp_path)
    assert (await data.run({"n": 3}, ctx)).structured == {"items": [0, 1, 2]}
    assert (await data.run({"n": 1000}, ctx)).structured is None
