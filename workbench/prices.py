"""Prices and context windows of models, read from litellm's price map as a file.

litellm ships its map of model prices and context windows as a JSON file inside its package
(``model_prices_and_context_window_backup.json``, 3.4 MB). Importing litellm to read it costs
seconds and 200 MB; finding the file with :func:`importlib.util.find_spec` executes nothing.
Parsing all of it takes 20 ms quiet (80 ms on a busy machine) and keeps 9 MB in ≈ 100,000
objects, which the garbage collector then walks on every full collection (a ``serve``
whose map was parsed answered its first call in 145 ms instead of 80). So nothing parses
it all: every process decodes only the entries it asks for, found among the top-level keys
(the only lines indented by four spaces) of the file mapped in memory, not read (reading
and decoding its 3.4 MB cost a first call's context window 15-30 ms; the search 2-10).
A long-lived process (the TUI, ``serve``) reads the text once, a while after it starts,
with :func:`warm` from a thread, and keeps it (one string) for later lookups. Every lookup is cached, a model missing from the map too, so an unknown
model costs nothing to look up again. Only a file not laid out as expected (a new litellm)
is parsed whole, once.

Lookups follow litellm's for the model strings people write: the whole string
(``openrouter/openai/gpt-4o``, ``gemini/gemini-2.0-flash``), then the name after the
provider (``openai/gpt-4o`` → ``gpt-4o``) when the entry belongs to that provider, case
aside. A price above a prompt-size threshold (``input_cost_per_token_above_200k_tokens``)
applies to the whole call once the prompt is over it, as litellm bills it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import mmap
import re
import threading
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["context_window", "cost", "model_info", "price_map_path", "warm"]

log = logging.getLogger("workbench.prices")

PRICE_MAP_FILE = "model_prices_and_context_window_backup.json"
"""The file litellm ships in its package folder."""

_lock = threading.Lock()
_map: dict[str, Mapping[str, Any]] | None = None
"""Lower-cased model name -> its entry, for a file not laid out as the search expects;
``{}`` when it cannot be parsed."""
_kept: tuple[str | None] | None = None
"""The file's text once :func:`warm` read it (``(None,)``: it cannot be read)."""

_INCLUSIVE_THRESHOLDS = frozenset({"xai"})
"""Providers that bill the higher tier once the prompt reaches the threshold (not only
past it), as litellm does."""

_THRESHOLD = re.compile(r"^input_cost_per_token_above_(\d+)(k?)_tokens$")


def price_map_path() -> Path | None:
    """Where litellm's price map is, found without importing litellm; ``None`` if absent."""
    try:
        spec = importlib.util.find_spec("litellm")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / PRICE_MAP_FILE
        if path.is_file():
            return path
    return None


def _text() -> str | None:
    path = price_map_path()
    if path is None:
        log.warning("litellm's price map was not found: costs and context windows unknown")
        return None
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        log.warning("cannot read litellm's price map %s: %s", path, exc)
        return None


def _parse(text: str | None) -> dict[str, Mapping[str, Any]]:
    """The whole map, by lower-cased name (the first of names equal but for case wins)."""
    try:
        data = json.loads(text) if text else {}
    except ValueError as exc:
        log.warning("cannot parse litellm's price map: %s", exc)
        return {}
    out: dict[str, Mapping[str, Any]] = {}
    for key, entry in data.items() if isinstance(data, dict) else ():
        if isinstance(entry, dict) and key != "sample_spec":
            out.setdefault(key.lower(), entry)
    return out


def _entries(names: list[str]) -> dict[str, Mapping[str, Any]]:
    """The entries of these lower-cased names, decoding only these entries: searched in
    the file's text once :func:`warm` kept it, else in the file mapped in memory (no read
    of its 3.4 MB, no decoding of it: a first lookup costs ≈ 2 ms, not 15-30)."""
    if _map is not None:
        return {n: _map[n] for n in names if n in _map}
    kept = _kept
    if kept is not None:
        text = kept[0]
        if text is None:
            return {}
        if text.isascii() and text.startswith('{\n    "'):
            return _search(text, names, lambda s: s)
        return _parsed(text, names)
    path = price_map_path()
    if path is None:
        log.warning("litellm's price map was not found: costs and context windows unknown")
        return {}
    try:
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            if mm[:7] == b'{\n    "':
                return _search(mm, names, str.encode)
            raw = mm[:]
    except (OSError, ValueError) as exc:
        log.warning("cannot read litellm's price map %s: %s", path, exc)
        return {}
    return _parsed(raw.decode("utf-8", errors="replace"), names)


def _parsed(text: str, names: list[str]) -> dict[str, Mapping[str, Any]]:
    """Not the layout the search relies on (a new litellm?): parse it all, once."""
    global _map
    with _lock:
        if _map is None:
            _map = _parse(text)
    return {n: _map[n] for n in names if n in _map}


def _search(
    source: Any, names: list[str], encode: Callable[[str], Any]
) -> dict[str, Mapping[str, Any]]:
    """Find each name among the top-level keys of ``source`` (the file's text, or its
    bytes: ``encode`` turns a str into the same kind), the only lines indented by four
    spaces, and decode its entry alone."""
    decoder = json.JSONDecoder()
    out: dict[str, Mapping[str, Any]] = {}
    line = encode('\n    "')
    for name in names:
        if '"' in name or "\\" in name:
            continue
        head = encode(f'\n    "{name}": ')
        at = source.find(head)  # names are mostly written as the map writes them
        if at < 0:
            found = re.search(re.escape(head), source, re.IGNORECASE)
            if found is None:
                continue
            at = found.start()
        start = at + len(head)
        end = source.find(line, start)  # the next top-level key
        piece = source[start : end if end >= 0 else len(source)]
        try:
            entry, _ = decoder.raw_decode(
                piece if isinstance(piece, str) else piece.decode("utf-8")
            )
        except ValueError:
            continue
        if isinstance(entry, dict) and name != "sample_spec":
            out[name] = entry
    return out


def warm() -> None:
    """Read the price map's text now and keep it (from a thread, in a long-lived process),
    so that later lookups read no file."""
    global _kept
    if _kept is not None:
        return
    text = _text()
    with _lock:
        if _kept is None:
            _kept = (text,)


def _provider_matches(entry: Mapping[str, Any], provider: str | None) -> bool:
    owner = entry.get("litellm_provider")
    return provider is None or owner is None or owner == provider


@lru_cache(maxsize=1024)
def model_info(model: str) -> Mapping[str, Any] | None:
    """The price-map entry of a model string, or ``None`` (cached, misses too)."""
    provider, _, rest = model.partition("/") if "/" in model else ("", "", model)
    candidates: list[tuple[str, str | None]] = [(model, provider or None)]
    if provider:
        candidates.append((rest, provider))
    entries = _entries([name.lower() for name, _ in candidates])
    for name, owner in candidates:
        entry = entries.get(name.lower())
        if entry is not None and _provider_matches(entry, owner):
            return entry
    return None


def context_window(model: str) -> int | None:
    """Tokens the model accepts (``max_input_tokens``, else ``max_tokens``), when known."""
    info = model_info(model)
    if info is None:
        return None
    value = info.get("max_input_tokens") or info.get("max_tokens")
    return int(value) if isinstance(value, int | float) and value > 0 else None


def cost(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """USD for a call, when the model's prices are known."""
    info = model_info(model)
    if info is None:
        return None
    rate_in, rate_out = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    if not isinstance(rate_in, int | float) and not isinstance(rate_out, int | float):
        return None
    rate_in = float(rate_in or 0.0)
    rate_out = float(rate_out or 0.0)
    inclusive = info.get("litellm_provider") in _INCLUSIVE_THRESHOLDS
    for threshold, suffix in _thresholds(info):
        over = prompt_tokens >= threshold if inclusive else prompt_tokens > threshold
        if not over:
            break
        tier_in = info.get(f"input_cost_per_token_above_{suffix}_tokens")
        tier_out = info.get(f"output_cost_per_token_above_{suffix}_tokens")
        if isinstance(tier_in, int | float):
            rate_in = float(tier_in)
        if isinstance(tier_out, int | float):
            rate_out = float(tier_out)
    return prompt_tokens * rate_in + completion_tokens * rate_out


def _thresholds(info: Mapping[str, Any]) -> list[tuple[int, str]]:
    """The entry's prompt-size tiers, smallest first: (tokens, the key's ``200k`` part)."""
    out = []
    for key in info:
        m = _THRESHOLD.match(key)
        if m:
            n = int(m.group(1)) * (1000 if m.group(2) else 1)
            out.append((n, m.group(1) + m.group(2)))
    return sorted(out)
