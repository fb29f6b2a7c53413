"""Reading and chunking: a file into blocks (Markdown at headings, text at paragraphs, code at
top-level definitions, PDF per page), and blocks into overlapping chunks.

No database and no model here: only text in, chunks out (``pypdf`` is imported for a PDF).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import KnowledgeError

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


@dataclass
class Chunk:
    """A piece of a document."""

    text: str
    """The text."""
    heading: str = ""
    """Where it is: the heading path (``Install > Linux``), ``page 3``, a definition."""


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
