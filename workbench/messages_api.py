"""Anthropic's Messages API, spoken from the OpenAI-format conversation the agents keep.

Why the Messages API rather than Anthropic's OpenAI-compatible endpoint: Anthropic documents
that endpoint as a way to test and compare models, "not a long-term or production-ready
solution"; it ignores ``strict`` tool schemas, does not support prompt caching and silently
ignores fields it does not support. On our side the two cost the same: bench/anthropic_wire.py
times a one-tool-call conversation against a local server speaking both (3.12 ms through
the Messages API, 3.11 ms through the OpenAI wire format, 40.8 ms through litellm; our CPU
2.40 against 2.21 ms; the translation alone ~40 µs a call). So the native API is the one
spoken: it is what Anthropic maintains, and what litellm spoke for these models before.

:func:`request` turns messages and tools into a Messages request; :class:`StreamReader`
folds the server-sent events of a streamed reply into text deltas and a whole turn;
:func:`turn_from_message` reads a whole (non-streamed) reply.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from workbench.events import Usage
from workbench.models import ModelError, ModelTurn, TurnToolCall

__all__ = ["ANTHROPIC_VERSION", "StreamReader", "request", "turn_from_message"]

ANTHROPIC_VERSION = "2023-06-01"
"""The ``anthropic-version`` header: the API version this translation follows."""

DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` (required by the API) for a model the price map does not know."""

_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "refusal": "content_filter",
}
"""Anthropic's ``stop_reason`` -> the OpenAI ``finish_reason`` the engine reads."""


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p
        )
    return "" if content is None else str(content)


def _image(part: Mapping[str, Any]) -> dict[str, Any] | None:
    url = part.get("image_url")
    url = url.get("url") if isinstance(url, Mapping) else url
    if not isinstance(url, str) or not url:
        return None
    if url.startswith("data:") and ";base64," in url:
        media, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any) -> list[dict[str, Any]]:
    """OpenAI message content (a string or parts) as Messages content blocks."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out: list[dict[str, Any]] = []
    for part in content or []:
        if not isinstance(part, Mapping):
            continue
        if part.get("type") == "text" and part.get("text"):
            out.append({"type": "text", "text": str(part["text"])})
        elif part.get("type") == "image_url":
            image = _image(part)
            if image is not None:
                out.append(image)
    return out


def _arguments(text: str) -> dict[str, Any]:
    """A tool call's JSON arguments as the object the API wants ({} when not an object:
    the agent already told the model its arguments were not valid JSON)."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _messages(messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The system prompt, and the turns: tool results become user turns, and neighbours
    of one role are merged (the API wants user and assistant to alternate)."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for m in messages:
        role = m.get("role")
        if role in ("system", "developer"):
            text = _text_of(m.get("content"))
            if text:
                system.append(text)
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": str(m.get("tool_call_id") or ""),
                "content": _text_of(m.get("content")),
            }
            add("user", [result])
        elif role == "assistant":
            blocks = _blocks(m.get("content"))
            for tc in m.get("tool_calls") or []:
                fn = tc.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": str(tc.get("id") or ""),
                        "name": str(fn.get("name") or ""),
                        "input": _arguments(str(fn.get("arguments") or "")),
                    }
                )
            add("assistant", blocks)
        else:
            add("user", _blocks(m.get("content")))
    return "\n\n".join(system), turns


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    out: dict[str, Any] | None = None
    if choice == "auto":
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        out = {"type": "none"}
    elif isinstance(choice, Mapping):
        name = (choice.get("function") or {}).get("name")
        if name:
            out = {"type": "tool", "name": str(name)}
    if parallel is False:
        out = out or {"type": "auto"}
        if out["type"] != "none":
            out["disable_parallel_tool_use"] = True
    return out


def request(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    *,
    stream: bool,
    max_tokens: int | None,
) -> dict[str, Any]:
    """The body of ``POST /v1/messages``.

    Args:
        model: The model's name on the wire (``claude-sonnet-4-5``).
        messages: The conversation, OpenAI format.
        tools: OpenAI ``tools`` entries.
        params: The model's arguments (see :data:`workbench.providers.ANTHROPIC_PARAMS`).
        stream: Ask for server-sent events.
        max_tokens: The default output budget (the model's, from the price map).
    """
    system, turns = _messages(messages)
    body: dict[str, Any] = {
        "model": model,
        "messages": turns,
        "max_tokens": int(params.get("max_tokens") or max_tokens or DEFAULT_MAX_TOKENS),
    }
    if system:
        body["system"] = system
    if stream:
        body["stream"] = True
    for key in ("temperature", "top_p"):
        if params.get(key) is not None:
            body[key] = params[key]
    stop = params.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if params.get("user"):
        body["metadata"] = {"user_id": str(params["user"])}
    if tools:
        body["tools"] = [
            {
                "name": t["function"]["name"],
                "description": t["function"].get("description") or "",
                "input_schema": t["function"].get("parameters")
                or {"type": "object", "properties": {}},
            }
            for t in tools
        ]
        choice = _tool_choice(params.get("tool_choice"), params.get("parallel_tool_calls"))
        if choice is not None:
            body["tool_choice"] = choice
    return body


def _usage(usage: Mapping[str, Any] | None, into: Usage | None = None) -> Usage:
    """Input tokens (cached and cache-writing ones included, as litellm counts them) and
    output tokens; a ``message_delta`` updates only what it carries."""
    out = into or Usage()
    if not usage:
        return out
    fields = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    if any(usage.get(f) is not None for f in fields):
        out = Usage(
            prompt_tokens=sum(int(usage.get(f) or 0) for f in fields),
            completion_tokens=out.completion_tokens,
        )
    if usage.get("output_tokens") is not None:
        out = Usage(prompt_tokens=out.prompt_tokens, completion_tokens=int(usage["output_tokens"]))
    return out


def turn_from_message(data: Mapping[str, Any], model: str) -> ModelTurn:
    """A whole reply (``stream: false``)."""
    text: list[str] = []
    calls: list[TurnToolCall] = []
    for block in data.get("content") or []:
        if block.get("type") == "text":
            text.append(str(block.get("text") or ""))
        elif block.get("type") == "tool_use":
            calls.append(
                TurnToolCall(
                    id=str(block.get("id") or f"call_{len(calls)}"),
                    name=str(block.get("name") or ""),
                    arguments=json.dumps(block.get("input") or {}),
                )
            )
    reason = data.get("stop_reason")
    return ModelTurn(
        text="".join(text),
        tool_calls=calls,
        usage=_usage(data.get("usage")),
        finish_reason=_STOP_REASONS.get(str(reason), reason) if reason else None,
        model=model,
    )


class StreamReader:
    """Folds a streamed reply's events (``message_start``, ``content_block_*``,
    ``message_delta``, ``error``...) into text deltas and one turn."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.text: list[str] = []
        self.blocks: dict[int, dict[str, Any]] = {}
        self.usage = Usage()
        self.finish: str | None = None

    def add(self, event: dict[str, Any]) -> str:
        """One event (the JSON of a ``data:`` line); returns the text it adds."""
        kind = event.get("type")
        if kind == "message_start":
            self.usage = _usage((event.get("message") or {}).get("usage"), self.usage)
        elif kind == "content_block_start":
            block = dict(event.get("content_block") or {})
            index = int(event.get("index", len(self.blocks)))
            block["_json"] = ""
            self.blocks[index] = block
            if block.get("type") == "text" and block.get("text"):
                self.text.append(str(block["text"]))
                return str(block["text"])
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            block = self.blocks.setdefault(int(event.get("index", 0)), {"_json": ""})
            if delta.get("type") == "text_delta":
                piece = str(delta.get("text") or "")
                self.text.append(piece)
                return piece
            if delta.get("type") == "input_json_delta":
                block["_json"] += str(delta.get("partial_json") or "")
        elif kind == "message_delta":
            reason = (event.get("delta") or {}).get("stop_reason")
            if reason:
                self.finish = _STOP_REASONS.get(str(reason), str(reason))
            self.usage = _usage(event.get("usage"), self.usage)
        elif kind == "error":
            error = event.get("error") or {}
            kind = str(error.get("type") or "error")
            message = str(error.get("message") or kind)
            retryable = kind in ("overloaded_error", "api_error", "rate_limit_error")
            raise ModelError(f"{self.model}: {kind}: {message}", retryable=retryable)
        return ""

    def turn(self) -> ModelTurn:
        """The whole turn, once the stream ended."""
        calls = [
            TurnToolCall(
                id=str(b.get("id") or f"call_{i}"),
                name=str(b.get("name") or ""),
                arguments=b["_json"] or json.dumps(b.get("input") or {}),
            )
            for i, b in sorted(self.blocks.items())
            if b.get("type") == "tool_use"
        ]
        return ModelTurn(
            text="".join(self.text),
            tool_calls=calls,
            usage=self.usage,
            finish_reason=self.finish,
            model=self.model,
        )
