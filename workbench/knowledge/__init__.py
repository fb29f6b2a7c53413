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

from .chunking import Chunk, chunk_document, read_document
from .errors import KnowledgeError
from .index import (
    ADDED_SOURCE,
    DATA_DIR,
    Embedder,
    FileSource,
    Hit,
    IngestReport,
    KnowledgeSourceLike,
    Progress,
    data_dir,
    ensure_fts_index,
    ingest,
    lancedb_module,
    open_db,
    resolve_embedder,
    search,
    sources_state,
    sql_quote,
    table_names,
)

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
    "table_names",
]
