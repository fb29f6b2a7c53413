"""Knowledge: documents chunked into LanceDB, searched by full text (and vectors).

Where it lives: ``<workspace>/.workbench/lancedb/`` (see :func:`data_dir`), a LanceDB
database beside the workspace's files, so it moves with the folder and is rebuilt from
the files at will (delete the folder to start over; a ``.gitignore`` inside keeps it out
of git). It holds:

- ``knowledge``: the chunks of sources without an embedding model, with a full-text index
  (LanceDB's native BM25 index) on ``content`` (heading path + text);
- ``knowledge_<hash>``: the chunks of sources with an ``embedding_model``, one table per
  model, with the same full-text index and a ``vector`` column;
- ``knowledge_manifest.json``: per file, its sha256, source, table and chunking settings,
  so ingesting an unchanged file does nothing and a changed one replaces its chunks;
- the ``memory`` tables of the ``memory`` toolkit (:mod:`plugins.memory`).

What is read: Markdown (split at headings), plain text (at paragraphs), code (at top-level
definitions) and PDF (per page; needs ``pypdf``, the ``pdf`` extra). Sections are packed
into chunks of about ``chunk_size`` characters; neighbouring chunks of a section share
``chunk_overlap`` characters.

Search is BM25 over the full-text index; for a table with vectors, the query is embedded
with the same model and LanceDB fuses the BM25 and vector rankings (reciprocal rank
fusion, RRF). Embeddings go through litellm (``litellm.embedding``): a source's
``embedding_model`` is a name from ``models:`` in ``workbench.yaml`` (so ``api_base`` and
``api_key`` come along) or a litellm model string.

LanceDB, pyarrow, pypdf and litellm are imported inside the functions that need them:
importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "ADDED_SOURCE",
    "DATA_DIR",
    "Chunk",
    "Embedder",
    "FileSource",
    "Hit",
    "IngestReport",
    "KnowledgeError",
    "KnowledgeSourceLike",
    "Progress",
    "chunk_document",
    "cmd_knowledge_add",
    "cmd_knowledge_search",
    "data_dir",
    "ensure_fts_index",
    "ingest",
    "lancedb_module",
    "open_db",
    "read_document",
    "resolve_embedder",
    "search",
    "sources_state",
    "sql_quote",
]

log = logging.getLogger("workbench.knowledge")

DATA_DIR = Path(".workbench") / "lancedb"
"""Where a workspace's LanceDB lives, relative to the workspace folder."""

ADDED_SOURCE = "added"
"""The source of files added by path that no configured source covers."""

_MANIFEST = "knowledge_manifest.json"
_LOCK = "knowledge.lock"
_FTS_TABLE = "knowledge"
_MANIFEST_VERSION = 1
_EMBED_BATCH = 64
_FLUSH_ROWS = 2000
_MAX_FILE_BYTES = 20_000_000

Progress = Callable[[str, int, int], None]
"""Called with ``(what, done, total)`` as ingestion goes (``total`` 0 when unknown)."""

_TEXT_SUFFIXES = frozenset(
    ".txt .text .rst .adoc .org .csv .tsv .log .ini .cfg .conf .toml .yaml .yml .json .xml"
    " .html .htm .css .tex".split()
)
_MARKDOWN_SUFFIXES = frozenset(".md .markdown .mdx .mkd".split())
_CODE_SUFFIXES = frozenset(
    ".py .pyi .js .mjs .cjs .ts .tsx .jsx .go .rs .java .kt .kts .scala .c .h .cc .cpp .hpp"
    " .cs .rb .php .swift .m .lua .pl .r .jl .sh .bash .zsh .fish .ps1 .sql .ex .exs .erl"
    " .hs .ml .clj .dart .vue .svelte .zig .nim .proto .graphql".split()
)
_SKIP_DIRS = frozenset(
    ".git .hg .svn .workbench .venv venv node_modules __pycache__ .mypy_cache .ruff_cache"
    " .pytest_cache .tox dist build .idea .vscode".split()
)
_GLOB_CHARS = frozenset("*?[")


class KnowledgeError(Exception):
    """Ingesting or searching failed in a way the user must fix (a model, a path)."""


class KnowledgeSourceLike(Protocol):
    """What :func:`ingest` needs of a source (``workbench.workspace.KnowledgeSource``)."""

    @property
    def paths(self) -> Sequence[str]:
        """Files, folders or globs, relative to the workspace folder."""
        ...

    @property
    def embedding_model(self) -> str | None:
        """A name from ``models:`` or a litellm embedding model; ``None`` for full text only."""
        ...

    @property
    def chunk_size(self) -> int:
        """Characters per chunk."""
        ...

    @property
    def chunk_overlap(self) -> int:
        """Characters shared by neighbouring chunks."""
        ...


@dataclass(frozen=True)
class FileSource:
    """A source given in code (and the one for files added by path)."""

    paths: Sequence[str] = ()
    """Files, folders or globs."""
    embedding_model: str | None = None
    """The embedding model, if any."""
    chunk_size: int = 1200
    """Characters per chunk."""
    chunk_overlap: int = 200
    """Characters shared by neighbouring chunks."""


@dataclass
class Chunk:
    """A piece of a document."""

    text: str
    """The text."""
    heading: str = ""
    """Where it is: the heading path (``Install > Linux``), ``page 3``, a definition."""


@dataclass
class Hit:
    """A search result."""

    text: str
    """The chunk's text."""
    path: str
    """The file, relative to the workspace folder when inside it."""
    score: float
    """Higher is better (BM25, or the RRF score of a hybrid search)."""
    chunk_id: str
    """The chunk's id."""
    heading: str = ""
    """The chunk's heading path."""
    source: str = ""
    """The knowledge source it came from."""
    also: list[str] = field(default_factory=list)
    """Other files with the very same passage (returned once, under the best match)."""


@dataclass
class IngestReport:
    """What an ingest did."""

    added_files: list[str] = field(default_factory=list)
    """Files chunked and stored (new or changed)."""
    skipped_unchanged: list[str] = field(default_factory=list)
    """Files whose content and settings were already stored."""
    removed: list[str] = field(default_factory=list)
    """Files whose chunks were removed (deleted, or no longer in their source)."""
    chunks: int = 0
    """Chunks written."""
    errors: list[tuple[str, str]] = field(default_factory=list)
    """Files that could not be read, with why."""


# -- places --------------------------------------------------------------------------------


def data_dir(root: Path) -> Path:
    """The workspace's LanceDB folder: ``<root>/.workbench/lancedb``."""
    return Path(root) / DATA_DIR


def open_db(root: Path, *, create: bool = True) -> Any:
    """A LanceDB connection to the workspace's database (``None`` if absent and not
    ``create``)."""
    path = data_dir(root)
    if not path.is_dir():
        if not create:
            return None
        _make_data_dir(root)
    return lancedb_module().connect(str(path))


def _make_data_dir(root: Path) -> Path:
    path = data_dir(root)
    path.mkdir(parents=True, exist_ok=True)
    ignore = path / ".gitignore"
    if not ignore.exists():
        with contextlib.suppress(OSError):
            ignore.write_text("# Workbench's LanceDB; rebuilt from the files.\n*\n")
    return path


def lancedb_module() -> Any:
    """Import LanceDB with its Rust logger silenced (it writes to stderr, over the TUI),
    unless ``LANCEDB_LOG`` asks for it."""
    os.environ.setdefault("LANCEDB_LOG", "off")
    import lancedb

    return lancedb


def table_names(db: Any) -> set[str]:
    """The tables of a LanceDB database (every page)."""
    names: set[str] = set()
    token: str | None = None
    while True:
        page = db.list_tables(page_token=token) if token else db.list_tables()
        names.update(page.tables)
        token = page.page_token
        if not token:
            return names


def ensure_fts_index(table: Any, column: str) -> None:
    """Create the native full-text (BM25) index on ``column`` unless it exists."""
    for idx in table.list_indices():
        if list(idx.columns) == [column] and str(idx.index_type).upper().startswith("FTS"):
            return
    from lancedb.index import FTS

    table.create_index(column, config=FTS())


def sql_quote(value: str) -> str:
    """``value`` as a SQL string literal for LanceDB filters."""
    return "'" + value.replace("'", "''") + "'"


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Serialize ingests of one workspace across processes (POSIX advisory lock)."""
    path = _make_data_dir(root)
    with open(path / _LOCK, "a+") as f:
        try:
            import fcntl
        except ImportError:  # Windows: no cross-process lock; ingests rarely overlap
            yield
            return
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


# -- embeddings ----------------------------------------------------------------------------

_EMBED_PARAMS = frozenset(
    {
        "api_base",
        "api_key",
        "api_version",
        "organization",
        "extra_headers",
        "timeout",
        "dimensions",
        "custom_llm_provider",
        "input_type",
        "encoding_format",
        "aws_region_name",
        "vertex_project",
        "vertex_location",
    }
)


@dataclass(frozen=True)
class Embedder:
    """An embedding model through litellm."""

    name: str
    """As configured: a name from ``models:`` or a litellm model string."""
    model: str
    """The litellm model string."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """litellm arguments (``api_base``, ``api_key``, ...)."""

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """The vectors of ``texts``, in order.

        Raises:
            KnowledgeError: the model failed; the message names it.
        """
        if not texts:
            return []
        # litellm's sync path reports to its loggers on ``asyncio.get_event_loop()``, which
        # in the main thread creates (and leaves open) a loop; a worker thread has none, so
        # litellm runs its hooks with ``asyncio.run`` and closes what it opens.
        with ThreadPoolExecutor(1, thread_name_prefix="workbench-embed") as pool:
            return pool.submit(self._embed, texts).result()

    def _embed(self, texts: Sequence[str]) -> list[list[float]]:
        from workbench.models import litellm_module

        ll = litellm_module()
        out: list[list[float]] = []
        for start in range(0, len(texts), _EMBED_BATCH):
            batch = [t if t.strip() else " " for t in texts[start : start + _EMBED_BATCH]]
            try:
                response = ll.embedding(model=self.model, input=batch, **dict(self.params))
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                raise KnowledgeError(
                    f"embedding with {self.name!r} ({self.model}) failed: {first}"
                ) from exc
            rows = sorted(response.data, key=lambda d: _get(d, "index", 0))
            if len(rows) != len(batch):
                raise KnowledgeError(
                    f"embedding with {self.name!r} returned {len(rows)} vectors for "
                    f"{len(batch)} texts"
                )
            out.extend([float(x) for x in _get(d, "embedding", [])] for d in rows)
        return out


def _get(obj: Any, key: str, default: Any) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def resolve_embedder(root: Path, name: str) -> Embedder:
    """The embedding model ``name``: a name from the workspace's ``models:`` (with its
    ``api_base``, ``api_key``, ...) or else a litellm model string."""
    params: dict[str, Any] = {}
    model = name
    if (Path(root) / "workbench.yaml").is_file():
        try:
            from workbench.workspace import load_workspace

            spec = load_workspace(root).models.get(name)
        except Exception as exc:  # a broken file must not hide the model string itself
            log.warning("reading %s/workbench.yaml for model %r: %s", root, name, exc)
            spec = None
        if spec is not None:
            model = spec.model
            params = {k: v for k, v in spec.params.items() if k in _EMBED_PARAMS}
    return Embedder(name=name, model=model, params=params)


def _vector_table(model: str) -> str:
    return f"{_FTS_TABLE}_{hashlib.sha1(model.encode()).hexdigest()[:10]}"


# -- reading and chunking ------------------------------------------------------------------


@dataclass
class _Block:
    heading: str
    text: str
    section: int


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return "pdf"
    if suffix in _MARKDOWN_SUFFIXES:
        return "markdown"
    if suffix in _CODE_SUFFIXES:
        return "code"
    return "text"


def _decode(data: bytes, path: Path) -> str:
    if b"\x00" in data[:8192]:
        raise KnowledgeError(f"{path.name} looks binary")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_document(path: Path, data: bytes | None = None) -> tuple[str, list[_Block]]:
    """Read a file into its kind (``markdown``, ``text``, ``code``, ``pdf``) and blocks.

    Raises:
        KnowledgeError: the file cannot be read (binary, a broken PDF, no ``pypdf``).
    """
    kind = _kind(path)
    if data is None:
        data = path.read_bytes()
    if kind == "pdf":
        return kind, _pdf_blocks(path, data)
    text = _decode(data, path).replace("\r\n", "\n").replace("\r", "\n")
    if kind == "markdown":
        return kind, _markdown_blocks(text)
    if kind == "code":
        return kind, _code_blocks(text)
    return kind, [_Block("", p, 0) for p in _paragraphs(text)]


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")


def _markdown_blocks(text: str) -> list[_Block]:
    blocks: list[_Block] = []
    stack: list[tuple[int, str]] = []
    section = 0
    para: list[str] = []
    fence: str | None = None
    body_at = 0  # len(blocks) when the current heading began

    def heading_path() -> str:
        return " > ".join(title for _, title in stack)

    def flush() -> None:
        body = "\n".join(para).strip("\n")
        if body.strip():
            blocks.append(_Block(heading_path(), body, section))
        para.clear()

    def empty_heading(next_level: int) -> None:
        # A heading with no body and no subsection (a stub, a to-do, the last line) is
        # still a place in the document: its title becomes its text, so it can be found.
        if stack and len(blocks) == body_at and next_level <= stack[-1][0]:
            blocks.append(_Block(heading_path(), stack[-1][1], section))

    for line in text.split("\n"):
        m_fence = _FENCE.match(line)
        if fence is not None:
            para.append(line)
            if m_fence and m_fence.group(1)[0] == fence[0] and len(m_fence.group(1)) >= len(fence):
                fence = None
            continue
        if m_fence:
            fence = m_fence.group(1)
            para.append(line)
            continue
        m = _HEADING.match(line)
        if m:
            flush()
            level = len(m.group(1))
            empty_heading(level)
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, m.group(2).strip()))
            section += 1
            body_at = len(blocks)
            continue
        if not line.strip():
            flush()
            continue
        para.append(line)
    flush()
    empty_heading(0)
    return blocks


def _paragraphs(text: str) -> list[str]:
    return [p.strip("\n") for p in re.split(r"\n[ \t]*\n", text) if p.strip()]


_DEF_LINE = re.compile(r"^\S")
_DEFINITION = re.compile(
    r"^(?:export\s+|public\s+|private\s+|pub\s+|static\s+|async\s+|abstract\s+)*"
    r"(?:def|class|function|fn|func|interface|type|struct|enum|impl|trait|module|object|"
    r"const|let|var|@\w+)\b"
)


def _code_blocks(text: str) -> list[_Block]:
    """Top-level blocks: a new one starts at an unindented line after a blank line."""
    blocks: list[_Block] = []
    current: list[str] = []
    blank_before = True

    def flush() -> None:
        body = "\n".join(current).strip("\n")
        if body.strip():
            first = next(line for line in body.split("\n") if line.strip())
            heading = first.strip()[:80] if _DEFINITION.match(first) else ""
            blocks.append(_Block(heading, body, 0))
        current.clear()

    for line in text.split("\n"):
        if blank_before and _DEF_LINE.match(line) and current:
            flush()
        current.append(line)
        blank_before = not line.strip()
    flush()
    return blocks


def _pdf_blocks(path: Path, data: bytes) -> list[_Block]:
    try:
        from pypdf import PdfReader
    except ImportError:
        raise KnowledgeError(
            f"{path.name}: reading PDF files needs pypdf: pip install pypdf "
            "(or install Workbench with the pdf extra: pip install 'workbench-agents[pdf]')"
        ) from None
    import io

    pypdf_log = logging.getLogger("pypdf")
    level = pypdf_log.level
    pypdf_log.setLevel(logging.ERROR)  # pypdf warns about every quirk of a PDF
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception as exc:
                raise KnowledgeError(f"{path.name} is encrypted") from exc
        blocks: list[_Block] = []
        for number, page in enumerate(reader.pages, start=1):
            text = (page.extract_text() or "").replace("\r\n", "\n")
            for p in _paragraphs(text):
                blocks.append(_Block(f"page {number}", p, number))
    except KnowledgeError:
        raise
    except Exception as exc:
        raise KnowledgeError(f"{path.name}: not a readable PDF ({exc})") from exc
    finally:
        pypdf_log.setLevel(level)
    return blocks


def chunk_document(blocks: Sequence[_Block], size: int, overlap: int) -> list[Chunk]:
    """Pack blocks into chunks of at most about ``size`` characters.

    A new section (a heading, a page) starts a new chunk; within a section, consecutive
    chunks share about ``overlap`` characters (cut at whitespace). A block longer than
    ``size`` is cut into overlapping windows at line, sentence or word ends.
    """
    size = max(size, 50)
    overlap = max(0, min(overlap, size // 2))
    chunks: list[Chunk] = []
    sections: list[list[_Block]] = []
    for block in blocks:
        if sections and sections[-1][0].section == block.section:
            sections[-1].append(block)
        else:
            sections.append([block])
    for section in sections:
        current = ""
        heading = section[0].heading
        has_new = False  # ``current`` holds more than the overlap carried from before
        for block in section:
            pieces = [block.text]
            if len(block.text) > size:
                # Windows leave room for the overlap carried from the chunk before.
                window = size - overlap - 2
                pieces = _split_long(block.text, window, min(overlap, window // 2))
            for n, piece in enumerate(pieces):
                if has_new and len(current) + 2 + len(piece) > size:
                    chunks.append(Chunk(current, heading))
                    # Windows of one long block already overlap each other.
                    room = min(overlap, size - len(piece) - 2)
                    current = _tail(current, room) if n == 0 and room > 0 else ""
                    has_new = False
                if not has_new or not heading:
                    heading = block.heading
                current = f"{current}\n\n{piece}" if current else piece
                has_new = True
        if has_new:
            chunks.append(Chunk(current, heading))
    return chunks


def _tail(text: str, n: int) -> str:
    if n <= 0 or not text:
        return ""
    if len(text) <= n:
        return text
    cut = text[-n:]
    space = re.search(r"\s", cut)  # start at a word, never inside one
    return cut[space.end() :].lstrip() if space else ""


def _split_long(text: str, size: int, overlap: int) -> list[str]:
    """Windows of at most ``size`` characters, cut at a line end, sentence end or space
    where one is near, each starting ``overlap`` characters before the previous end."""
    pieces: list[str] = []
    start = 0
    n = len(text)
    while start < n:
        end = min(n, start + size)
        if end < n:
            window = text[start:end]
            floor = len(window) // 2
            for pattern in ("\n", ". ", " "):
                at = window.rfind(pattern, floor)
                if at > 0:
                    end = start + at + len(pattern)
                    break
        piece = text[start:end].strip()
        if piece:
            pieces.append(piece)
        if end >= n:
            break
        nxt = max(end - overlap, start + 1)
        # start the overlap at a word boundary
        space = text.find(" ", nxt, end)
        start = space + 1 if 0 <= space < end - 1 else nxt
    return pieces


# -- files and sources ---------------------------------------------------------------------


def _display(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _absolute(root: Path, display: str) -> Path:
    p = Path(display)
    return p if p.is_absolute() else root / p


def _walk(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            p = Path(dirpath) / name
            suffix = p.suffix.lower()
            if suffix == ".pdf" or suffix in _MARKDOWN_SUFFIXES or suffix in _CODE_SUFFIXES:
                yield p
            elif suffix in _TEXT_SUFFIXES or suffix == "":
                yield p


def _expand(root: Path, pattern: str) -> list[Path]:
    """The files an entry of a source's ``paths`` names."""
    if _GLOB_CHARS.intersection(pattern):
        base = Path(pattern)
        if base.is_absolute():
            anchor = Path(base.anchor)
            matches = anchor.glob(str(base.relative_to(anchor)))
        else:
            matches = root.glob(pattern)
        out: list[Path] = []
        for m in sorted(matches):
            if m.is_dir():
                out.extend(_walk(m))
            elif m.is_file():
                out.append(m)
        return out
    p = _absolute(root, pattern)
    if p.is_dir():
        return list(_walk(p))
    if p.is_file():
        return [p]
    return []


def sources_state(root: Path, sources: Mapping[str, KnowledgeSourceLike] | None) -> str:
    """A fingerprint of the files the sources list: their paths, sizes and modification
    times, and the sources' settings. It changes when a file is added, changed or deleted,
    at the cost of a walk and a ``stat`` per file (no reading)."""
    root = Path(root).resolve()
    h = hashlib.sha256()
    for name, src in sorted((sources or {}).items()):
        h.update(f"{name}\0{_settings(src)!r}\0".encode())
        for pattern in src.paths:
            for f in _expand(root, pattern):
                try:
                    st = f.stat()
                except OSError:
                    continue
                h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _covers(root: Path, pattern: str, path: Path) -> bool:
    if _GLOB_CHARS.intersection(pattern):
        return any(_is_within(path, m.resolve()) for m in root.glob(pattern))
    return _is_within(path, _absolute(root, pattern).resolve())


def _is_within(path: Path, base: Path) -> bool:
    return path == base or path.is_relative_to(base)


def _source_of(
    root: Path, sources: Mapping[str, KnowledgeSourceLike], path: Path
) -> tuple[str, KnowledgeSourceLike]:
    for name, src in sources.items():
        if any(_covers(root, pattern, path) for pattern in src.paths):
            return name, src
    return ADDED_SOURCE, FileSource()


def _settings(src: KnowledgeSourceLike) -> list[Any]:
    return [src.embedding_model or None, int(src.chunk_size), int(src.chunk_overlap)]


# -- the manifest --------------------------------------------------------------------------


@dataclass
class _Manifest:
    path: Path
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> _Manifest:
        path = data_dir(root) / _MANIFEST
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:
            log.warning("%s is unreadable (%s); every file will be ingested again", path, exc)
            return cls(path)
        if not isinstance(raw, dict) or raw.get("version") != _MANIFEST_VERSION:
            return cls(path)
        return cls(path, dict(raw.get("files", {})), dict(raw.get("tables", {})))

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        data = {"version": _MANIFEST_VERSION, "files": self.files, "tables": self.tables}
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)


# -- ingest --------------------------------------------------------------------------------


@dataclass
class _Pending:
    """Rows waiting to be written, per table, and the files they replace."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    replace: dict[str, set[str]] = field(default_factory=dict)
    entries: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    embedders: dict[str, Embedder] = field(default_factory=dict)

    def size(self) -> int:
        return sum(len(r) for r in self.rows.values())


def ingest(
    root: Path,
    sources: Mapping[str, KnowledgeSourceLike] | None,
    paths: Sequence[Path] = (),
    progress: Progress | None = None,
) -> IngestReport:
    """Bring the workspace's knowledge up to date with its files.

    With no ``paths``, every source in ``sources`` is synced: new and changed files are
    chunked and stored, unchanged ones skipped (same sha256 and settings), and files that
    left a source (deleted, or no longer matched) lose their chunks, as do the files of
    sources no longer configured. With ``paths``, only those files and folders are
    ingested, each under the configured source that covers it (its chunk size and
    embedding model), else under :data:`ADDED_SOURCE` with the defaults; a path that no
    longer exists, and files gone from a given folder, lose their chunks.

    Args:
        root: The workspace folder.
        sources: The ``knowledge:`` sources by name (``None``: none configured).
        paths: Files or folders to ingest instead of every source.
        progress: Called with ``(what, done, total)`` (files) as it goes.

    Returns:
        What was added, skipped, removed, and how many chunks were written.

    Raises:
        KnowledgeError: a given path does not exist, or an embedding model failed.
    """
    root = Path(root).resolve()
    sources = dict(sources or {})
    report = IngestReport()
    notify: Progress = progress or (lambda what, done, total: None)
    notify("scanning", 0, 0)

    planned: dict[Path, tuple[str, KnowledgeSourceLike]] = {}
    explicit_gone: list[Path] = []
    folders: list[Path] = []
    if paths:
        for raw in paths:
            p = (raw if raw.is_absolute() else Path.cwd() / raw).resolve()
            if p.is_dir():
                folders.append(p)
                for f in _walk(p):
                    planned.setdefault(f, _source_of(root, sources, f))
            elif p.is_file():
                planned.setdefault(p, _source_of(root, sources, p))
            else:
                explicit_gone.append(p)
    else:
        for name, src in sources.items():
            for pattern in src.paths:
                for f in _expand(root, pattern):
                    planned.setdefault(f.resolve(), (name, src))

    with _locked(root):
        manifest = _Manifest.load(root)
        known_gone = {_display(root, p) for p in explicit_gone}
        missing = [p for p in explicit_gone if _display(root, p) not in manifest.files]
        if missing and not planned and not (known_gone & set(manifest.files)):
            raise KnowledgeError(f"no such file or folder: {missing[0]}")
        for p in missing:
            report.errors.append((_display(root, p), "no such file or folder"))

        db: Any = None
        pending = _Pending()
        touched: set[str] = set()
        flushed = False
        total = len(planned)
        seen: set[str] = set()
        for done, (path, (source_name, src)) in enumerate(sorted(planned.items()), start=1):
            display = _display(root, path)
            seen.add(display)
            notify(display, done - 1, total)
            try:
                if path.stat().st_size > _MAX_FILE_BYTES:
                    raise KnowledgeError(f"larger than {_MAX_FILE_BYTES // 1_000_000} MB")
                data = path.read_bytes()
            except (OSError, KnowledgeError) as exc:
                report.errors.append((display, str(exc)))
                continue
            digest = hashlib.sha256(data).hexdigest()
            settings = _settings(src)
            entry = manifest.files.get(display)
            if (
                entry is not None
                and entry.get("sha256") == digest
                and entry.get("settings") == settings
                and entry.get("source") == source_name
            ):
                report.skipped_unchanged.append(display)
                continue
            try:
                _, blocks = read_document(path, data)
            except KnowledgeError as exc:
                report.errors.append((display, str(exc)))
                continue
            chunks = chunk_document(blocks, src.chunk_size, src.chunk_overlap)
            model = src.embedding_model or None
            table = _vector_table(model) if model else _FTS_TABLE
            if model and table not in pending.embedders:
                pending.embedders[table] = resolve_embedder(root, model)
            if entry is not None:
                pending.replace.setdefault(str(entry.get("table", _FTS_TABLE)), set()).add(display)
            pending.replace.setdefault(table, set()).add(display)
            file_key = hashlib.sha1(f"{display}\0{digest}".encode()).hexdigest()[:16]
            rows = pending.rows.setdefault(table, [])
            for i, chunk in enumerate(chunks):
                content = f"{chunk.heading}\n{chunk.text}" if chunk.heading else chunk.text
                rows.append(
                    {
                        "chunk_id": f"{file_key}-{i:04d}",
                        "source": source_name,
                        "path": display,
                        "heading": chunk.heading,
                        "ordinal": i,
                        "text": chunk.text,
                        "content": content,
                    }
                )
            pending.entries[display] = {
                "source": source_name,
                "sha256": digest,
                "settings": settings,
                "table": table,
                "chunks": len(chunks),
                "size": len(data),
                "ingested_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                **({"embedding_model": model} if model else {}),
            }
            report.added_files.append(display)
            report.chunks += len(chunks)
            if pending.size() >= _FLUSH_ROWS:
                db = db or open_db(root)
                _flush(db, manifest, pending, notify)
                manifest.save()
                touched.update(pending.rows)
                touched.update(pending.replace)
                flushed = True
                pending = _Pending()
        notify("removing", total, total)

        # Files that left their source, were deleted, or whose source is gone.
        for display, entry in list(manifest.files.items()):
            if display in seen or display in pending.entries:
                continue
            abs_path = _absolute(root, display)
            if paths:
                gone = display in known_gone or (
                    any(abs_path.is_relative_to(f) for f in folders) and not abs_path.is_file()
                )
            else:
                # Files of an ad-hoc path stay until deleted; a source's files stay
                # only while the source lists them (``seen``).
                gone = entry.get("source") != ADDED_SOURCE or not abs_path.is_file()
            if gone:
                pending.replace.setdefault(str(entry.get("table", _FTS_TABLE)), set()).add(display)
                pending.entries[display] = None
                report.removed.append(display)

        if pending.replace or pending.rows or pending.entries or flushed:
            db = db or open_db(root)
            _flush(db, manifest, pending, notify)
            manifest.save()
            # Compact the small fragments each write made and fold the new rows into the
            # full-text index (rows not yet indexed are still found, just more slowly).
            present = table_names(db)
            for table in sorted(touched | set(pending.replace) | set(pending.rows)):
                if table in present:
                    try:
                        db.open_table(table).optimize()
                    except Exception as exc:
                        log.warning("optimizing %s failed: %s", table, exc)
    notify("done", total, total)
    return report


def _flush(db: Any, manifest: _Manifest, pending: _Pending, notify: Progress) -> None:
    """Embed, delete replaced chunks, write new ones, and record the files."""
    import pyarrow as pa

    existing = table_names(db)
    for table, rows in pending.rows.items():
        embedder = pending.embedders.get(table)
        if embedder is not None and rows:
            vectors: list[list[float]] = []
            texts = [r["content"] for r in rows]
            for start in range(0, len(texts), _EMBED_BATCH):
                notify(f"embedding with {embedder.name}", start, len(texts))
                vectors.extend(embedder.embed(texts[start : start + _EMBED_BATCH]))
            dim = len(vectors[0]) if vectors else 0
            known = manifest.tables.get(table, {}).get("dim")
            if known and known != dim:
                raise KnowledgeError(
                    f"{embedder.name!r} now returns {dim}-dimensional vectors, the stored ones "
                    f"have {known}: delete {manifest.path.parent} to rebuild"
                )
            for r, v in zip(rows, vectors, strict=True):
                r["vector"] = v
            manifest.tables[table] = {"embedding_model": embedder.name, "dim": dim}
        elif table not in manifest.tables:
            manifest.tables[table] = {"embedding_model": None, "dim": None}

    for table, displays in pending.replace.items():
        if table in existing and displays:
            tbl = db.open_table(table)
            ordered = sorted(displays)
            for start in range(0, len(ordered), 200):
                part = ordered[start : start + 200]
                tbl.delete(f"path IN ({', '.join(sql_quote(d) for d in part)})")

    for table, rows in pending.rows.items():
        if not rows:
            continue
        schema = _chunk_schema(pa, manifest.tables.get(table, {}).get("dim"))
        data = pa.Table.from_pylist(rows, schema=schema)
        if table in existing:
            tbl = db.open_table(table)
            tbl.add(data)
        else:
            tbl = db.create_table(table, data=data, schema=schema)
            existing.add(table)
        ensure_fts_index(tbl, "content")

    for display, entry in pending.entries.items():
        if entry is None:
            manifest.files.pop(display, None)
        else:
            manifest.files[display] = entry


def _chunk_schema(pa: Any, dim: int | None) -> Any:
    fields = [
        pa.field("chunk_id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("path", pa.string()),
        pa.field("heading", pa.string()),
        pa.field("ordinal", pa.int32()),
        pa.field("text", pa.string()),
        pa.field("content", pa.string()),
    ]
    if dim:
        fields.append(pa.field("vector", pa.list_(pa.float32(), dim)))
    return pa.schema(fields)


# -- search --------------------------------------------------------------------------------


def search(
    root: Path,
    query: str,
    limit: int = 5,
    embedding_model: str | None = None,
    *,
    sources: Sequence[str] | None = None,
) -> list[Hit]:
    """The chunks that best match ``query``, best first.

    Args:
        root: The workspace folder.
        query: Words to look for.
        limit: At most this many hits.
        embedding_model: Embed the query with this model for the chunks stored with it
            (hybrid search); ``None`` uses the model each table was built with. Tables
            without vectors are searched by full text only.
        sources: Only chunks of these sources (``None``: all).

    Returns:
        The hits; empty when nothing was ingested or nothing matches.
    """
    query = " ".join(query.split())
    if not query or limit <= 0:
        return []
    root = Path(root).resolve()
    db = open_db(root, create=False)
    if db is None:
        return []
    manifest = _Manifest.load(root)
    present = table_names(db)
    where = (
        f"source IN ({', '.join(sql_quote(s) for s in sources)})" if sources is not None else None
    )
    if sources is not None and not sources:
        return []
    ranked: list[list[Hit]] = []
    for table in sorted(present):
        if table != _FTS_TABLE and not table.startswith(f"{_FTS_TABLE}_"):
            continue
        info = manifest.tables.get(table, {})
        model = info.get("embedding_model")
        tbl = db.open_table(table)
        vector: list[float] | None = None
        if model and (embedding_model is None or embedding_model == model):
            try:
                vector = resolve_embedder(root, str(model)).embed([query])[0]
            except KnowledgeError as exc:
                log.warning("searching %s by full text only: %s", table, exc)
        # More than asked for: identical passages are folded into one below.
        ranked.append(_search_table(tbl, query, vector, limit * 3 + 5, where))
    hits = ranked[0] if len(ranked) == 1 else _fuse(ranked)
    return _unique(hits)[:limit]


def _unique(hits: Sequence[Hit]) -> list[Hit]:
    """Each passage once: a chunk whose text (ignoring spacing) is the same as a better
    hit's is folded into it, its file listed in :attr:`Hit.also`."""
    first: dict[str, Hit] = {}
    out: list[Hit] = []
    for hit in hits:
        key = " ".join(hit.text.split())
        kept = first.get(key)
        if kept is None:
            first[key] = hit
            out.append(hit)
        elif hit.path != kept.path and hit.path not in kept.also:
            kept.also.append(hit.path)
    return out


def _search_table(
    tbl: Any, query: str, vector: list[float] | None, limit: int, where: str | None
) -> list[Hit]:
    try:
        if vector is not None:
            from lancedb.rerankers import RRFReranker

            q = (
                tbl.search(query_type="hybrid", fts_columns="content")
                .vector(vector)
                .text(query)
                .rerank(RRFReranker())
            )
            score_key = "_relevance_score"
            columns = ["chunk_id", "source", "path", "heading", "text"]
        else:
            q = tbl.search(query, query_type="fts", fts_columns="content")
            score_key = "_score"
            columns = ["chunk_id", "source", "path", "heading", "text", "_score"]
        if where:
            q = q.where(where, prefilter=True)
        rows = q.select(columns).limit(limit).to_list()
    except Exception as exc:
        log.warning("knowledge search failed on %s: %s", getattr(tbl, "name", "?"), exc)
        return []
    return [
        Hit(
            text=str(r["text"]),
            path=str(r["path"]),
            score=float(r.get(score_key) or 0.0),
            chunk_id=str(r["chunk_id"]),
            heading=str(r.get("heading") or ""),
            source=str(r.get("source") or ""),
        )
        for r in rows
    ]


def _fuse(ranked: Sequence[Sequence[Hit]], k: int = 60) -> list[Hit]:
    """Merge rankings from several tables by reciprocal rank (scores are not comparable)."""
    scores: dict[str, float] = {}
    hits: dict[str, Hit] = {}
    for hits_of_table in ranked:
        for rank, hit in enumerate(hits_of_table):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + 1.0 / (k + rank + 1)
            hits.setdefault(hit.chunk_id, hit)
    order = sorted(scores, key=lambda c: scores[c], reverse=True)
    return [
        Hit(h.text, h.path, scores[c], c, h.heading, h.source) for c in order for h in [hits[c]]
    ]


# -- the CLI command -----------------------------------------------------------------------


def cmd_knowledge_add(workspace: Path | None, paths: list[Path]) -> int:
    """``workbench knowledge add [-w DIR] [PATH...]``: ingest files with a progress bar.

    With no paths, every source under ``knowledge:`` in ``workbench.yaml`` is synced.

    Returns:
        The exit status: 0 when the files are indexed (those that could not be read are
        listed, as skipped), 1 when none could be or ingesting failed, 2 for a bad
        workspace.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from workbench.workspace import WorkspaceError, load_workspace

    out = Console()
    err = Console(stderr=True)
    try:
        ws = load_workspace(workspace)
    except WorkspaceError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        return 2
    if not paths and not ws.knowledge:
        err.print(
            "[yellow]Nothing to ingest:[/yellow] give files or folders, or list sources under "
            "[bold]knowledge:[/bold] in workbench.yaml."
        )
        return 1
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task("scanning", total=None)

            def progress(what: str, done: int, total: int) -> None:
                bar.update(task, description=what[-60:], completed=done, total=total or None)

            report = ingest(ws.root, ws.knowledge, paths, progress)
    except KnowledgeError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        return 1
    for path, why in report.errors:
        err.print(f"[yellow]skipped[/yellow] {escape(path)}: {escape(why)}")
    skipped = f", {len(report.errors)} skipped" if report.errors else ""
    out.print(
        f"Added {len(report.added_files)} file{'s' * (len(report.added_files) != 1)} "
        f"({report.chunks} chunk{'s' * (report.chunks != 1)}), "
        f"{len(report.skipped_unchanged)} unchanged, {len(report.removed)} removed{skipped} "
        f"-> {escape(str(data_dir(ws.root)))}",
        highlight=False,
    )
    indexed = report.added_files or report.skipped_unchanged or report.removed
    return 1 if report.errors and not indexed else 0


def cmd_knowledge_search(
    workspace: Path | None,
    query: str,
    limit: int = 5,
    sources: Sequence[str] | None = None,
    *,
    as_json: bool = False,
) -> int:
    """``workbench knowledge search [-w DIR] QUERY``: the passages ``knowledge.search``
    would give a model.

    Returns:
        The exit status: 0 with hits, 1 with none (or an error), 2 for a bad workspace or
        an unknown source.
    """
    import json as jsonlib

    from rich.console import Console
    from rich.markup import escape

    from workbench.workspace import WorkspaceError, load_workspace

    out = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    try:
        ws = load_workspace(workspace)
    except WorkspaceError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        return 2
    if sources:
        known = set(ws.knowledge) | {ADDED_SOURCE}
        unknown = [s for s in sources if s not in known]
        if unknown:
            listed = ", ".join(sorted(ws.knowledge)) or "none"
            err.print(f"[red]no knowledge source {unknown[0]!r}[/red] (sources: {listed})")
            return 2
    try:
        hits = search(ws.root, query, max(1, limit), sources=sources)
    except KnowledgeError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        return 1
    if as_json:
        print(jsonlib.dumps([dataclasses.asdict(h) for h in hits], indent=2, ensure_ascii=False))
        return 0 if hits else 1
    if not hits:
        if not data_dir(ws.root).is_dir():
            err.print("The knowledge base is empty: run `workbench knowledge add` first.")
        else:
            err.print(f"No passage matches {query!r}.")
        return 1
    for n, hit in enumerate(hits, start=1):
        where = f"{hit.path} - {hit.heading}" if hit.heading else hit.path
        out.print(f"[bold][{n}] {escape(where)}[/bold] [dim](score {hit.score:.3g})[/dim]")
        out.print(escape(hit.text))
        if hit.also:
            out.print(f"[dim](the same passage is also in: {escape(', '.join(hit.also))})[/dim]")
        out.print()
    return 0
