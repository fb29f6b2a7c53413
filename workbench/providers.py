"""Which providers Workbench talks to directly, where they listen and where their keys are.

A model string names its provider first (``groq/llama-3.3-70b-versatile``). The providers of
the README's table speak the OpenAI chat-completions wire format (OpenAI, Gemini through its
OpenAI-compatible endpoint, Mistral, Groq, OpenRouter, DeepSeek, xAI, Ollama's ``/v1``, any
OpenAI-compatible ``api_base``), or Anthropic's Messages API: :func:`route` finds the
endpoint and the key from the model string, the model's table in ``workbench.yaml`` and the
provider's usual environment variables (the ones litellm reads), so such a model is called
over one kept-alive httpx client without importing litellm. Every other provider, a model
table with arguments outside the wire format, or ``direct: false``, gets ``None`` here and
goes through litellm.

Reading the environment and the table is all this module does (and, for a bare model name
such as ``gpt-4o``, the price map, to find its provider as litellm would): no import of
httpx or litellm, so it is cheap to ask (the TUI asks for every target it shows).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["PROVIDERS", "Provider", "Route", "needs_litellm", "route"]

Wire = Literal["openai", "anthropic"]
"""The two wire formats spoken directly: OpenAI chat completions, Anthropic Messages."""


@dataclass(frozen=True)
class Provider:
    """A provider reached directly."""

    name: str
    """The model-string prefix (``openai``)."""
    label: str
    """Its name for people (``OpenAI``)."""
    wire: Wire
    """The format its endpoint speaks."""
    base_url: str
    """Its endpoint, up to the version (``https://api.openai.com/v1``)."""
    key_env: tuple[str, ...] = ()
    """Environment variables holding the API key, first set wins (none: no key needed)."""
    base_env: tuple[str, ...] = ()
    """Environment variables that move the endpoint (a proxy, another host)."""
    base_suffix: str = ""
    """Appended to an endpoint from ``api_base`` or the environment when it lacks it
    (Ollama's ``OLLAMA_API_BASE`` names the server, whose OpenAI endpoint is ``/v1``)."""
    stream_usage: bool = True
    """Ask for usage in the stream (``stream_options``); Mistral sends it unasked and
    refuses the option."""
    own_base_only: bool = False
    """An ``api_base`` in the model's table means another wire format (Gemini's native
    API), so only the default endpoint is spoken to directly."""


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider(
            "openai",
            "OpenAI",
            "openai",
            "https://api.openai.com/v1",
            ("OPENAI_API_KEY",),
            ("OPENAI_BASE_URL", "OPENAI_API_BASE"),
        ),
        Provider(
            "anthropic",
            "Anthropic",
            "anthropic",
            "https://api.anthropic.com/v1",
            ("ANTHROPIC_API_KEY",),
            ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"),
            base_suffix="/v1",
        ),
        Provider(
            "gemini",
            "Gemini",
            "openai",
            "https://generativelanguage.googleapis.com/v1beta/openai",
            ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
            own_base_only=True,
        ),
        Provider(
            "mistral",
            "Mistral",
            "openai",
            "https://api.mistral.ai/v1",
            ("MISTRAL_API_KEY",),
            ("MISTRAL_API_BASE",),
            base_suffix="/v1",
            stream_usage=False,
        ),
        Provider(
            "groq",
            "Groq",
            "openai",
            "https://api.groq.com/openai/v1",
            ("GROQ_API_KEY",),
            ("GROQ_API_BASE",),
        ),
        Provider(
            "openrouter",
            "OpenRouter",
            "openai",
            "https://openrouter.ai/api/v1",
            ("OPENROUTER_API_KEY",),
            ("OPENROUTER_API_BASE",),
        ),
        Provider(
            "deepseek",
            "DeepSeek",
            "openai",
            "https://api.deepseek.com",
            ("DEEPSEEK_API_KEY",),
            ("DEEPSEEK_API_BASE",),
        ),
        Provider(
            "xai", "xAI", "openai", "https://api.x.ai/v1", ("XAI_API_KEY",), ("XAI_API_BASE",)
        ),
        Provider(
            "ollama",
            "Ollama",
            "openai",
            "http://127.0.0.1:11434/v1",
            base_env=("OLLAMA_API_BASE",),
            base_suffix="/v1",
        ),
        Provider(
            "ollama_chat",
            "Ollama",
            "openai",
            "http://127.0.0.1:11434/v1",
            base_env=("OLLAMA_API_BASE",),
            base_suffix="/v1",
        ),
    )
}
"""The providers reached directly, by model-string prefix."""

OPENAI_PARAMS = frozenset(
    {
        "api_base",
        "api_key",
        "temperature",
        "max_tokens",
        "max_completion_tokens",
        "top_p",
        "stop",
        "seed",
        "timeout",
        "extra_headers",
        "presence_penalty",
        "frequency_penalty",
        "user",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
    }
)
"""Arguments an OpenAI-compatible server takes exactly as the OpenAI API defines them."""

ANTHROPIC_PARAMS = frozenset(
    {
        "api_base",
        "api_key",
        "temperature",
        "max_tokens",
        "top_p",
        "stop",
        "timeout",
        "extra_headers",
        "user",
        "tool_choice",
        "parallel_tool_calls",
    }
)
"""Arguments translated to the Messages API one for one (any other goes through litellm,
which knows how to map or refuse it)."""


@dataclass(frozen=True)
class Route:
    """Where and how a model is called directly."""

    provider: Provider
    """The provider."""
    model: str
    """The model's name on the wire (``gpt-4o``; ``openai/gpt-4o`` for OpenRouter)."""
    base_url: str
    """The endpoint, without a trailing slash (``.../v1``)."""
    api_key: str | None
    """The key sent, or ``None`` (none found, or none needed)."""
    key_source: str | None
    """Where a missing key would come from, for the error that says so
    (``OPENAI_API_KEY``), or ``None`` when no key is needed."""

    @property
    def wire(self) -> Wire:
        """The format spoken."""
        return self.provider.wire


def _env(names: tuple[str, ...], environ: Mapping[str, str]) -> str | None:
    return next((environ[n] for n in names if environ.get(n)), None)


def route(
    model: str,
    params: Mapping[str, Any] | None = None,
    *,
    direct: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Route | None:
    """The direct route of a model, or ``None`` when it goes through litellm.

    Args:
        model: The model string (``mistral/mistral-large-latest``).
        params: The model's table in ``workbench.yaml`` (``api_base``, ``api_key``, ...).
        direct: ``False`` (``direct: false`` in the table) always means litellm.
        environ: The environment (default: ``os.environ``).
    """
    if not direct or model in ("test", "replay"):
        return None
    if "/" in model:
        prefix, name = model.split("/", 1)
    else:
        # A bare name (``gpt-4o``, ``claude-sonnet-4-5``): its provider from the price map,
        # as litellm infers it.
        from workbench.prices import model_info

        prefix, name = str((model_info(model) or {}).get("litellm_provider") or ""), model
    provider = PROVIDERS.get(prefix)
    if provider is None or not name:
        return None
    p = dict(params or {})
    allowed = ANTHROPIC_PARAMS if provider.wire == "anthropic" else OPENAI_PARAMS
    if not set(p) <= allowed:
        return None
    env = os.environ if environ is None else environ
    explicit = str(p.get("api_base") or "").strip()
    if explicit and provider.own_base_only:
        return None
    # An api_base written for an OpenAI-compatible server (a local vLLM, LM Studio...) gets
    # the table's key only, never OPENAI_API_KEY from the environment.
    custom = bool(explicit) and provider.name == "openai"
    base = explicit or _env(provider.base_env, env) or ""
    if base:
        base = base.rstrip("/")
        if provider.wire == "anthropic" and base.endswith("/messages"):
            base = base[: -len("/messages")]
        if provider.base_suffix and not base.endswith(provider.base_suffix):
            base += provider.base_suffix
    else:
        base = provider.base_url
    key: str | None = str(p.get("api_key") or "") or None
    if key is None and not custom:
        key = _env(provider.key_env, env)
    if key is None and custom:
        key = "none"  # what OpenAI-compatible servers without keys are sent (as ever)
    source = provider.key_env[0] if provider.key_env and not custom else None
    return Route(provider, name, base, key, source)


def needs_litellm(model: str, params: Mapping[str, Any] | None = None) -> bool:
    """Whether calling this model imports litellm (``test`` and ``replay`` do not)."""
    if model in ("test", "replay"):
        return False
    p = dict(params or {})
    for own in ("stream", "retries", "retry_delay"):  # read by Workbench, not sent
        p.pop(own, None)
    direct = bool(p.pop("direct", True))
    return route(model, p, direct=direct) is None
