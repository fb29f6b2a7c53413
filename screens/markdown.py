"""Markdown for model text: rendered as Markdown, but every character the model wrote stays.

Rich's :class:`~rich.markdown.Markdown` parses CommonMark with raw HTML on, and drops what it
parses as HTML: ``List<String>`` shows as ``List``, ``<your answer>`` vanishes, a ``<div>``
line disappears. Model text is not HTML to run; it is text to read. This parser has HTML off,
so a tag is plain text (emphasis, lists, code, tables and links work as before).
"""

from __future__ import annotations

from typing import Any

from markdown_it import MarkdownIt
from rich.markdown import Markdown

__all__ = ["TextMarkdown", "parser"]

_PARSER: MarkdownIt | None = None


def parser() -> MarkdownIt:
    """CommonMark with raw HTML off, plus tables and strikethrough (as rich enables)."""
    global _PARSER
    if _PARSER is None:
        _PARSER = MarkdownIt("commonmark", {"html": False}).enable(["strikethrough", "table"])
    return _PARSER


class TextMarkdown(Markdown):
    """:class:`rich.markdown.Markdown` whose parser keeps HTML-like text as written."""

    def __init__(self, markup: str, **kw: Any) -> None:
        # rich parses in __init__: give it nothing to parse, then parse with ours (rich sets
        # every other attribute as usual).
        super().__init__("", **kw)
        self.markup = markup
        self.parsed = parser().parse(markup)
