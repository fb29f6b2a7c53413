"""The knowledge index: where it lives (LanceDB beside the workspace), embeddings, ingesting
sources into it, and searching it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .chunking import (
    _CODE_SUFFIXES,
    _MARKDOWN_SUFFIXES,
    _TEXT_SUFFIXES,
    chunk_document,
    read_document,
)
from .errors import KnowledgeError

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

_SKIP_DIRS = frozenset(
    ".git .hg .svn .workbench .venv venv node_modules __pycache__ .mypy_cache .ruff_cache"
    " .pytest_cache .tox dist build .idea .vscode".split()
)
_GLOB_CHARS = frozenset("*?[")


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
