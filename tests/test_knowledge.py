"""Knowledge: reading and chunking documents, ingesting into LanceDB (and only what
changed), full-text and hybrid search (embeddings from a local OpenAI-compatible server,
through litellm's real HTTP path), the ``knowledge`` toolkit and ``knowledge add``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.embeddings import DIM, EmbeddingServer
from workbench.cli.knowledge import cmd_knowledge_add
from workbench.knowledge import (
    ADDED_SOURCE,
    FileSource,
    KnowledgeError,
    chunk_document,
    data_dir,
    ingest,
    open_db,
    read_document,
    search,
)

GUIDE = """\
# Guide

Workbench is a terminal workbench for multi-agent systems.

## Install

Run pip install to get it. The frobnicator needs a licence key.

```python
# not a heading: a comment in a fenced block
print("hello")
```

## Usage

### Approvals

Press y to allow a tool call once, n to deny it.
"""

NOTES = "Zebras and giraffes live on the savanna.\n\nElephants remember everything.\n"

CODE = '''\
import os


def frobnicate(value):
    """Double a value, frobnicated."""
    return value * 2


class Gadget:
    """A gadget with a quasar drive."""

    def spin(self):
        return "whirr"
'''


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF (Helvetica text, one content stream per page), by hand."""
    objects: list[str] = ["<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>")
    font_id = 3 + 2 * len(pages)
    for i, lines in enumerate(pages):
        ops = " ".join(
            "("
            + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            + ") Tj 0 -16 Td"
            for line in lines
        )
        stream = f"BT /F1 12 Tf 72 720 Td {ops} ET"
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace with a ``docs`` folder of Markdown, text, code and PDF."""
    root = tmp_path / "ws"
    docs = root / "docs"
    docs.mkdir(parents=True)
    (docs / "guide.md").write_text(GUIDE)
    (docs / "notes.txt").write_text(NOTES)
    (docs / "tool.py").write_text(CODE)
    (docs / "manual.pdf").write_bytes(
        make_pdf([["Chapter one: the warp core."], ["Chapter two: dilithium crystals."]])
    )
    (docs / "image.bin").write_bytes(b"\x00\x01binary")  # not a document: ignored
    return root


DOCS = {"docs": FileSource(paths=["docs/"], chunk_size=400, chunk_overlap=60)}


def chunk_rows(root: Path, table: str = "knowledge") -> list[dict[str, Any]]:
    db = open_db(root, create=False)
    return db.open_table(table).to_arrow().to_pylist() if db is not None else []


# -- reading and chunking ------------------------------------------------------------------


def test_markdown_is_split_at_headings_not_inside_fences(tmp_path: Path) -> None:
    path = tmp_path / "g.md"
    path.write_text(GUIDE)
    kind, blocks = read_document(path)
    assert kind == "markdown"
    chunks = chunk_document(blocks, 1000, 100)
    headings = [c.heading for c in chunks]
    assert headings == ["Guide", "Guide > Install", "Guide > Usage > Approvals"]
    install = chunks[1].text
    assert "# not a heading" in install and "frobnicator" in install


def test_long_text_is_cut_into_overlapping_chunks_of_bounded_size() -> None:
    from workbench.knowledge.chunking import _Block

    words = [f"word{i}" for i in range(1500)]
    paragraphs = [" ".join(words[i : i + 50]) + "." for i in range(0, 1500, 50)]
    blocks = [_Block("S", p, 1) for p in paragraphs]
    blocks.append(_Block("S", " ".join(words), 1))  # one paragraph far over the size
    chunks = chunk_document(blocks, 500, 100)
    assert len(chunks) > 10
    assert all(len(c.text) <= 500 for c in chunks)
    for before, after in zip(chunks, chunks[1:], strict=False):
        # Neighbours share text (the start of one is the end of the one before), unless
        # the next one is too full to take any.
        head = after.text.split()[0]
        assert head in before.text.split() or len(after.text) > 500 - 12, (
            before.text[-80:],
            after.text[:80],
        )
    seen = set(" ".join(c.text for c in chunks).replace(".", " ").split())
    assert set(words) <= seen


def test_code_is_split_at_top_level_definitions(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(CODE)
    kind, blocks = read_document(path)
    assert kind == "code"
    chunks = chunk_document(blocks, 120, 0)
    assert [c.heading for c in chunks] == ["def frobnicate(value):", "class Gadget:"]
    assert chunks[0].text.startswith("import os")


def test_pdf_pages_are_read(tmp_path: Path) -> None:
    path = tmp_path / "m.pdf"
    path.write_bytes(make_pdf([["First page (one)."], ["Second page."]]))
    kind, blocks = read_document(path)
    assert kind == "pdf"
    assert [(b.heading, b.text) for b in blocks] == [
        ("page 1", "First page (one)."),
        ("page 2", "Second page."),
    ]


def test_binary_and_broken_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_bytes(b"\x00\x00\x00")
    with pytest.raises(KnowledgeError, match="binary"):
        read_document(tmp_path / "x.txt")
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 garbage")
    with pytest.raises(KnowledgeError, match="not a readable PDF"):
        read_document(tmp_path / "bad.pdf")


def test_pdf_without_pypdf_says_what_to_install(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pypdf", None)
    report = ingest(ws, DOCS, [])
    errors = dict(report.errors)
    assert "pip install pypdf" in errors["docs/manual.pdf"]
    assert "pdf extra" in errors["docs/manual.pdf"]
    assert "docs/guide.md" in report.added_files


# -- ingest and full-text search -----------------------------------------------------------


def test_ingest_and_search(ws: Path) -> None:
    progress: list[tuple[str, int, int]] = []
    report = ingest(ws, DOCS, [], lambda *a: progress.append(a))
    assert sorted(report.added_files) == [
        "docs/guide.md",
        "docs/manual.pdf",
        "docs/notes.txt",
        "docs/tool.py",
    ]
    assert report.chunks == len(chunk_rows(ws)) > 4
    assert report.errors == [] and report.removed == []
    assert progress[0] == ("scanning", 0, 0) and progress[-1] == ("done", 4, 4)
    assert ("docs/guide.md", 0, 4) in progress

    # The database lives in the workspace, out of git.
    assert data_dir(ws) == ws / ".workbench" / "lancedb"
    assert (data_dir(ws) / ".gitignore").read_text().strip().endswith("*")

    hits = search(ws, "frobnicator licence", limit=3)
    assert hits[0].path == "docs/guide.md" and hits[0].heading == "Guide > Install"
    assert "licence key" in hits[0].text and hits[0].source == "docs"
    assert hits[0].score > 0 and hits[0].chunk_id

    (pdf_hit,) = search(ws, "dilithium", limit=5)
    assert (pdf_hit.path, pdf_hit.heading) == ("docs/manual.pdf", "page 2")

    # A heading word finds its section; code is searchable by its names.
    assert search(ws, "approvals", 1)[0].heading == "Guide > Usage > Approvals"
    assert search(ws, "quasar", 1)[0].path == "docs/tool.py"
    assert search(ws, "nonexistentword", 5) == []
    assert search(ws, "   ", 5) == []
    # Query text is words, not a query language.
    search(ws, 'what\'s "the" (warp) core? AND OR: * -x', 5)
    assert [h.path for h in search(ws, "elephants", 5, sources=["docs"])] == ["docs/notes.txt"]
    assert search(ws, "elephants", 5, sources=["other"]) == []


def test_search_before_any_ingest_is_empty(tmp_path: Path) -> None:
    assert search(tmp_path, "anything", 5) == []
    assert not data_dir(tmp_path).exists()


def test_reingesting_unchanged_files_does_nothing(ws: Path) -> None:
    ingest(ws, DOCS, [])
    db = open_db(ws)
    version = db.open_table("knowledge").version
    manifest = (data_dir(ws) / "knowledge_manifest.json").read_bytes()

    again = ingest(ws, DOCS, [])
    assert again.added_files == [] and again.removed == [] and again.chunks == 0
    assert len(again.skipped_unchanged) == 4
    assert open_db(ws).open_table("knowledge").version == version
    assert (data_dir(ws) / "knowledge_manifest.json").read_bytes() == manifest


def test_changed_file_replaces_its_chunks(ws: Path) -> None:
    ingest(ws, DOCS, [])
    others = [r for r in chunk_rows(ws) if r["path"] != "docs/guide.md"]
    (ws / "docs" / "guide.md").write_text("# Guide\n\nNow about tachyon beams only.\n")

    report = ingest(ws, DOCS, [])
    assert report.added_files == ["docs/guide.md"] and report.chunks == 1
    assert len(report.skipped_unchanged) == 3
    rows = chunk_rows(ws)
    assert [r["text"] for r in rows if r["path"] == "docs/guide.md"] == [
        "Now about tachyon beams only."
    ]
    assert sorted(r["chunk_id"] for r in rows if r["path"] != "docs/guide.md") == sorted(
        r["chunk_id"] for r in others
    )
    assert search(ws, "licence", 5) == []
    assert search(ws, "tachyon", 5)[0].path == "docs/guide.md"

    # Changing the chunking settings re-chunks too.
    smaller = {"docs": FileSource(paths=["docs/"], chunk_size=60, chunk_overlap=10)}
    assert len(ingest(ws, smaller, []).added_files) == 4


def test_deleted_file_is_removed_on_next_ingest_of_its_source(ws: Path) -> None:
    ingest(ws, DOCS, [])
    (ws / "docs" / "notes.txt").unlink()
    report = ingest(ws, DOCS, [])
    assert report.removed == ["docs/notes.txt"] and report.added_files == []
    assert all(r["path"] != "docs/notes.txt" for r in chunk_rows(ws))
    assert search(ws, "elephants", 5) == []
    # A source that is no longer configured loses its files too.
    gone = ingest(ws, {}, [])
    assert len(gone.removed) == 3 and chunk_rows(ws) == []


def test_adding_paths(ws: Path, tmp_path: Path) -> None:
    extra = tmp_path / "elsewhere"
    extra.mkdir()
    (extra / "memo.md").write_text("# Memo\n\nThe quorum meets on Tuesdays.\n")
    (extra / "todo.txt").write_text("Buy more antimatter.\n")

    # A folder outside every source: the ad-hoc source, absolute paths.
    report = ingest(ws, DOCS, [extra])
    assert sorted(report.added_files) == [
        (extra / "memo.md").as_posix(),
        (extra / "todo.txt").as_posix(),
    ]
    (hit,) = search(ws, "quorum", 5)
    assert hit.source == ADDED_SOURCE and hit.path == (extra / "memo.md").as_posix()

    # A file inside a configured source gets that source (and its settings).
    report = ingest(ws, DOCS, [ws / "docs" / "notes.txt"])
    assert report.added_files == ["docs/notes.txt"]
    assert search(ws, "giraffes", 1)[0].source == "docs"

    # Syncing the sources leaves ad-hoc files alone while they exist ...
    assert ingest(ws, DOCS, []).removed == []
    # ... and a file gone from a given folder is removed when the folder is added again.
    (extra / "todo.txt").unlink()
    assert ingest(ws, DOCS, [extra]).removed == [(extra / "todo.txt").as_posix()]

    with pytest.raises(KnowledgeError, match="no such file or folder"):
        ingest(ws, DOCS, [tmp_path / "missing.md"])


# -- hybrid search with embeddings from a local server ------------------------------------


@pytest.fixture
def embeddings() -> Iterator[EmbeddingServer]:
    with EmbeddingServer() as srv:
        yield srv


def test_hybrid_search_with_embeddings(ws: Path, embeddings: EmbeddingServer) -> None:
    (ws / "workbench.yaml").write_text(
        "models:\n"
        f"  embedder: {{model: openai/hashed-bow, api_base: '{embeddings.url}', api_key: sk-local}}\n"
        "knowledge:\n"
        "  docs: {paths: [docs/], embedding_model: embedder, chunk_size: 400}\n"
    )
    from workbench.workspace import load_workspace

    sources = load_workspace(ws).knowledge
    report = ingest(ws, sources, [])
    assert len(report.added_files) == 4
    embedded = [t for batch in embeddings.inputs for t in batch]
    assert len(embedded) == report.chunks
    assert embeddings.headers[0]["Authorization"] == "Bearer sk-local"

    manifest = json.loads((data_dir(ws) / "knowledge_manifest.json").read_text())
    ((table, info),) = manifest["tables"].items()
    assert info == {"embedding_model": "embedder", "dim": DIM}
    rows = chunk_rows(ws, table)
    assert len(rows[0]["vector"]) == DIM

    embeddings.inputs.clear()
    hits = search(ws, "frobnicator licence", limit=3)
    assert embeddings.inputs == [["frobnicator licence"]]  # the query, embedded once
    assert hits[0].path == "docs/guide.md" and hits[0].heading == "Guide > Install"
    # RRF scores: a hit found by both rankings scores about 2/(60+1).
    assert 0 < hits[0].score <= 2 / 60
    assert hits[0].score > hits[-1].score

    # Unchanged files are not embedded again.
    embeddings.inputs.clear()
    assert ingest(ws, sources, []).chunks == 0
    assert embeddings.inputs == []

    # The model going away at search time: full text still answers.
    embeddings.__exit__()
    assert search(ws, "dilithium", 2)[0].path == "docs/manual.pdf"


def test_embedding_failure_is_a_clear_error(ws: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (ws / "workbench.yaml").write_text(
        "models:\n"
        f"  embedder: {{model: openai/x, api_base: 'http://127.0.0.1:{port}/v1', api_key: k}}\n"
    )
    src = {"docs": FileSource(paths=["docs/notes.txt"], embedding_model="embedder")}
    with pytest.raises(KnowledgeError, match="embedding with 'embedder' \\(openai/x\\) failed"):
        ingest(ws, src, [])


# -- the toolkit and the command -----------------------------------------------------------


async def test_knowledge_toolkit_search(ws: Path) -> None:
    from plugins.knowledge import KnowledgeToolkit
    from workbench.tools import ToolContext, ToolError

    (ws / "workbench.yaml").write_text(
        "knowledge:\n  docs: {paths: [docs/], description: product manuals}\n"
    )
    tk = KnowledgeToolkit("knowledge", {}, ws)
    (search_tool,) = await tk.list_tools()
    assert search_tool.name == "knowledge.search"
    assert "docs (product manuals)" in search_tool.description
    assert search_tool.parameters["required"] == ["query"]
    ctx = ToolContext(workspace_root=ws)

    empty = await search_tool.invoke({"query": "warp"}, ctx)
    assert "knowledge base is empty" in empty and "workbench knowledge add" in empty

    ingest(ws, DOCS, [])
    out = await search_tool.invoke({"query": "warp core", "limit": 2}, ctx)
    assert out.startswith("[1] docs/manual.pdf - page 1 (score ")
    assert "the warp core" in out
    assert await search_tool.invoke({"query": "zzzqqq"}, ctx) == "No passage matches 'zzzqqq'."
    with pytest.raises(ToolError, match="invalid arguments"):
        await search_tool.invoke({"query": "x", "limit": "many"}, ctx)


async def test_knowledge_toolkit_refresh(ws: Path) -> None:
    from plugins.knowledge import KnowledgeToolkit
    from workbench.tools import ToolContext

    (ws / "workbench.yaml").write_text("knowledge:\n  docs: {paths: [docs/]}\n")
    tk = KnowledgeToolkit("knowledge", {"refresh": True, "sources": ["docs"]}, ws)
    (search_tool,) = await tk.list_tools()
    out = await search_tool.invoke({"query": "giraffes"}, ToolContext(workspace_root=ws))
    assert "docs/notes.txt" in out


def test_cmd_knowledge_add(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ws / "workbench.yaml").write_text("knowledge:\n  docs: {paths: [docs/]}\n")
    assert cmd_knowledge_add(ws, []) == 0
    out = capsys.readouterr().out
    assert out.startswith("Added 4 files (") and "0 unchanged, 0 removed" in out
    assert str(data_dir(ws)) in out.replace("\n", "")

    assert cmd_knowledge_add(ws, [ws / "docs" / "guide.md"]) == 0
    assert "Added 0 files (0 chunks), 1 unchanged" in capsys.readouterr().out

    # One file that cannot be read does not fail the others: they are indexed, the exit
    # status is 0, and the skipped file is listed (it was 1 before issue 16).
    (ws / "docs" / "broken.pdf").write_bytes(b"%PDF-1.4 nope")
    assert cmd_knowledge_add(ws, [ws / "docs"]) == 0
    captured = capsys.readouterr()
    assert "skipped docs/broken.pdf: " in captured.err and "not a readable PDF" in captured.err
    assert "1 skipped" in captured.out
    # Only unreadable files: nothing indexed, exit 1.
    lone = ws / "lone"
    lone.mkdir()
    (lone / "broken.pdf").write_bytes(b"%PDF-1.4 nope")
    assert cmd_knowledge_add(ws, [lone]) == 1
    capsys.readouterr()

    assert cmd_knowledge_add(ws, [ws / "nope.md"]) == 1
    assert "no such file or folder" in capsys.readouterr().err

    (ws / "workbench.yaml").write_text("knowledge: [1, 2\n")
    assert cmd_knowledge_add(ws, []) == 2


# -- edge cases (issue 16) -------------------------------------------------------------------


def test_a_heading_with_no_body_is_still_searchable(tmp_path: Path) -> None:
    text = (
        "# Runbook\n\nHow we run things.\n\n## Deployment\n\n## Rollback\n\nRevert the tag.\n"
        "\n## Quarantine procedure\n"
    )
    path = tmp_path / "runbook.md"
    path.write_text(text)
    _, blocks = read_document(path)
    assert [(b.heading, b.text) for b in blocks] == [
        ("Runbook", "How we run things."),
        ("Runbook > Deployment", "Deployment"),
        ("Runbook > Rollback", "Revert the tag."),
        ("Runbook > Quarantine procedure", "Quarantine procedure"),
    ]
    root = tmp_path / "ws"
    root.mkdir()
    (root / "runbook.md").write_text(text)
    ingest(root, None, [root / "runbook.md"])
    assert search(root, "deployment", 1)[0].heading == "Runbook > Deployment"
    assert search(root, "quarantine", 1)[0].heading == "Runbook > Quarantine procedure"
    # A heading with subsections and no body of its own is found through them.
    assert [c.heading for c in chunk_document(read_document(path)[1], 1000, 0)][0] == "Runbook"


def test_identical_chunks_are_returned_once(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    for folder in ("v1", "v2", "v3"):
        (root / folder).mkdir(parents=True)
        (root / folder / "LICENSE.txt").write_text("Licensed under the Apache License 2.0.\n")
    (root / "v3" / "NOTICE.txt").write_text("The Apache   License\n2.0 applies, see LICENSE.\n")
    ingest(root, None, [root])
    hits = search(root, "apache license", 5)
    texts = [" ".join(h.text.split()) for h in hits]
    assert len(texts) == len(set(texts)) == 2
    licence = next(h for h in hits if "Licensed under" in h.text)
    assert sorted([licence.path, *licence.also]) == [
        "v1/LICENSE.txt",
        "v2/LICENSE.txt",
        "v3/LICENSE.txt",
    ]


async def test_refresh_notices_files_changed_while_it_runs(ws: Path) -> None:
    from plugins.knowledge import KnowledgeToolkit
    from workbench.tools import ToolContext

    (ws / "workbench.yaml").write_text("knowledge:\n  docs: {paths: [docs/]}\n")
    tk = KnowledgeToolkit("knowledge", {"refresh": True}, ws)
    (search_tool,) = await tk.list_tools()
    ctx = ToolContext(workspace_root=ws)
    assert "docs/notes.txt" in await search_tool.invoke({"query": "giraffes"}, ctx)
    assert "No passage matches" in await search_tool.invoke({"query": "okapi"}, ctx)
    # While it runs: a file is added, one changes, one is deleted.
    (ws / "docs" / "okapi.md").write_text("# Okapi\n\nThe okapi is a forest giraffe.\n")
    (ws / "docs" / "notes.txt").write_text("Zebras only now.\n")
    (ws / "docs" / "tool.py").unlink()
    out = await search_tool.invoke({"query": "okapi"}, ctx)
    assert "docs/okapi.md" in out
    assert "No passage matches" in await search_tool.invoke({"query": "elephants"}, ctx)
    assert "No passage matches" in await search_tool.invoke({"query": "quasar"}, ctx)
    # Unchanged files: no ingest at all (the state is the same).
    before = chunk_rows(ws)
    await search_tool.invoke({"query": "zebras"}, ctx)
    assert chunk_rows(ws) == before


def test_knowledge_search_command(ws: Path) -> None:
    import subprocess

    def wb(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "workbench.cli", "knowledge", *args],
            capture_output=True,
            text=True,
            env={**__import__("os").environ, "COLUMNS": "200"},
            timeout=120,
        )

    (ws / "workbench.yaml").write_text("knowledge:\n  docs: {paths: [docs/]}\n")
    empty = wb("search", "-w", str(ws), "warp")
    assert empty.returncode == 1 and "knowledge base is empty" in empty.stderr
    assert wb("add", "-w", str(ws)).returncode == 0
    r = wb("search", "-w", str(ws), "warp", "core", "--limit", "2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("[1] docs/manual.pdf - page 1 (score ")
    assert "the warp core" in r.stdout
    j = wb("search", "-w", str(ws), "--json", "--source", "docs", "elephants")
    assert [h["path"] for h in json.loads(j.stdout)] == ["docs/notes.txt"]
    none = wb("search", "-w", str(ws), "zzzqqq")
    assert none.returncode == 1 and "No passage matches 'zzzqqq'" in none.stderr
    bad = wb("search", "-w", str(ws), "--source", "nope", "warp")
    assert bad.returncode == 2 and "no knowledge source 'nope'" in bad.stderr


def test_chunking_is_pure() -> None:
    """Chunking needs no database, model or embedding library: importing it loads none."""
    code = (
        "import sys, workbench.knowledge.chunking; "
        "print(sorted(m for m in ('lancedb', 'pyarrow', 'litellm', 'pypdf', 'textual') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
