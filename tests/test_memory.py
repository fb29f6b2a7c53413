"""The ``memory`` toolkit: facts kept across sessions in the workspace's LanceDB, recalled
by full text or hybrid search, told twice and kept once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plugins.memory import MemoryToolkit, fact_id
from tests.support.embeddings import EmbeddingServer
from workbench.knowledge import data_dir, open_db
from workbench.tools import Tool, ToolContext, ToolError


def tools_of(tools: list[Tool]) -> dict[str, Tool]:
    return {t.name: t for t in tools}


async def call(tk: MemoryToolkit, tool: str, **args: object) -> str:
    tools = tools_of(await tk.list_tools())
    return await tools[f"memory.{tool}"].invoke(dict(args), ToolContext(workspace_root=tk.root))


def rows(root: Path, table: str = "memory") -> list[dict[str, object]]:
    return open_db(root).open_table(table).to_arrow().to_pylist()


async def test_schemas(tmp_path: Path) -> None:
    tk = MemoryToolkit("memory", {}, tmp_path)
    tools = tools_of(await tk.list_tools())
    assert set(tools) == {"memory.remember", "memory.recall"}
    remember = tools["memory.remember"].parameters
    assert remember["required"] == ["fact"]
    assert remember["properties"]["tags"]["type"] == "array"
    assert remember["properties"]["tags"]["default"] == []
    assert tools["memory.recall"].parameters["required"] == ["query"]


async def test_remembered_in_one_session_recalled_in_the_next(tmp_path: Path) -> None:
    first = MemoryToolkit("memory", {}, tmp_path)
    assert await call(first, "recall", query="anything") == "Nothing is remembered yet."
    out = await call(first, "remember", fact="The user prefers metric units.", tags=["Prefs"])
    assert out == "Remembered: The user prefers metric units. [prefs]"
    await call(first, "remember", fact="The staging database is called orion-db.")
    await call(first, "remember", fact="Deploys happen on Thursdays.", tags=["ops"])
    await first.aclose()

    second = MemoryToolkit("memory", {}, tmp_path)
    recalled = await call(second, "recall", query="which units does the user like", limit=2)
    assert recalled.splitlines()[0].startswith("- The user prefers metric units. [prefs]")
    assert "(remembered 2" in recalled
    assert "orion-db" in await call(second, "recall", query="staging database")
    # Tags are searchable too.
    assert "Thursdays" in await call(second, "recall", query="ops")
    # No query: the latest facts.
    latest = await call(second, "recall", query="", limit=2)
    assert len(latest.splitlines()) == 2 and "Thursdays" in latest.splitlines()[0]
    assert await call(second, "recall", query="zzqx") == "Nothing remembered matches 'zzqx'."
    assert (data_dir(tmp_path) / ".gitignore").exists()


async def test_identical_facts_are_kept_once(tmp_path: Path) -> None:
    tk = MemoryToolkit("memory", {}, tmp_path)
    await call(tk, "remember", fact="Coffee is in the left cupboard.", tags=["kitchen"])
    again = await call(tk, "remember", fact="  coffee is in the LEFT   cupboard. ")
    assert again == "Already remembered: Coffee is in the left cupboard."
    merged = await call(tk, "remember", fact="Coffee is in the left cupboard.", tags=["office"])
    assert merged == "Already remembered; tags now: kitchen, office"
    (row,) = rows(tmp_path)
    assert row["id"] == fact_id("coffee is in the left cupboard.")
    assert row["tags"] == ["kitchen", "office"]
    assert row["created_at"] < row["updated_at"]
    assert "[kitchen, office]" in await call(tk, "recall", query="coffee")


async def test_bad_facts_are_refused(tmp_path: Path) -> None:
    tk = MemoryToolkit("memory", {}, tmp_path)
    with pytest.raises(ToolError, match="fact is empty"):
        await call(tk, "remember", fact="   ")
    with pytest.raises(ToolError, match="too long"):
        await call(tk, "remember", fact="x" * 5000)
    with pytest.raises(ToolError, match="invalid arguments"):
        await call(tk, "remember", fact="ok", tags="not-a-list")


@pytest.fixture
def embeddings() -> Iterator[EmbeddingServer]:
    with EmbeddingServer() as srv:
        yield srv


async def test_hybrid_recall_with_an_embedding_model(
    tmp_path: Path, embeddings: EmbeddingServer
) -> None:
    (tmp_path / "workbench.yaml").write_text(
        "models:\n"
        f"  embedder: {{model: openai/hashed-bow, api_base: '{embeddings.url}', api_key: k}}\n"
    )
    # Facts kept before a model was configured ...
    plain = MemoryToolkit("memory", {}, tmp_path)
    await call(plain, "remember", fact="The cat is named Miso.", tags=["pets"])

    # ... come along into the table with vectors.
    tk = MemoryToolkit("memory", {"embedding_model": "embedder"}, tmp_path)
    assert tk.table_name.startswith("memory_")
    await call(tk, "remember", fact="The dog is named Pixel.", tags=["pets"])
    await call(tk, "remember", fact="Invoices are due on the first of the month.")
    stored = rows(tmp_path, tk.table_name)
    assert len(stored) == 3 and all(len(r["vector"]) == 64 for r in stored)  # type: ignore[arg-type]

    embeddings.inputs.clear()
    out = await call(tk, "recall", query="what is the dog named", limit=2)
    assert embeddings.inputs == [["what is the dog named"]]
    assert out.splitlines()[0].startswith("- The dog is named Pixel. [pets]")
    assert "Miso" in await call(tk, "recall", query="cat named")
    await tk.aclose()

    # The model may be set in the workspace's own memory: table as well.
    with (tmp_path / "workbench.yaml").open("a") as f:
        f.write("memory: {enabled: true, embedding_model: embedder}\n")
    again = MemoryToolkit("memory", {}, tmp_path)
    assert again.table_name == tk.table_name
    assert "Invoices" in await call(again, "recall", query="when are invoices due")

    # Back to full text only: a fresh table, filled from the others, searchable at once.
    open_db(tmp_path).drop_table("memory")
    fts = MemoryToolkit("memory", {}, tmp_path)
    assert await call(fts, "remember", fact="The cat is named Miso.") == (
        "Already remembered: The cat is named Miso."
    )
    assert "Invoices" in await call(fts, "recall", query="invoices")
