"""Prices and context windows from litellm's price map, read as a file (no litellm import)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from workbench import prices
from workbench.events import Usage
from workbench.models import LiteLLMModel

ROOT = Path(__file__).resolve().parent.parent


@cache
def price_map() -> dict[str, Any]:
    path = prices.price_map_path()
    assert path is not None, "litellm's price map was not found next to the package"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def first_chat_model(provider: str, prefixed: bool = True) -> str | None:
    """A priced chat model of a provider, as its map key (the map changes with litellm)."""
    for key, entry in price_map().items():
        if (
            isinstance(entry, dict)
            and entry.get("litellm_provider") == provider
            and entry.get("mode") == "chat"
            and isinstance(entry.get("input_cost_per_token"), float)
            and entry.get("max_input_tokens")
            and key.startswith(f"{provider}/") == prefixed
        ):
            return key
    return None


def models_to_compare() -> list[str]:
    """The README's providers (as a person writes their model strings), a tiered model, an
    unpriced local one."""
    out = [
        "openai/gpt-4o",
        "gpt-4o",
        "anthropic/claude-sonnet-4-5",
        "mistral/mistral-large-latest",
        "deepseek/deepseek-chat",
        "ollama/llama3",
        "openai/fake",
        "nosuchprovider/model-x",
    ]
    for provider in ("gemini", "groq", "xai", "openrouter", "mistral"):
        key = first_chat_model(provider)
        if key:
            out.append(key)
    tiered = next(
        (
            k
            for k, e in price_map().items()
            if isinstance(e, dict)
            and e.get("mode") == "chat"
            and "input_cost_per_token_above_200k_tokens" in e
            and "/" in k
        ),
        None,
    )
    if tiered:
        out.append(tiered)
    return out


def test_the_price_map_is_found_without_importing_litellm() -> None:
    code = textwrap.dedent(
        """
        import json, sys
        from workbench import prices
        print(json.dumps([str(prices.price_map_path()), prices.cost("openai/gpt-4o", 1000, 100),
                          prices.context_window("openai/gpt-4o"), "litellm" in sys.modules]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    path, cost, window, imported = json.loads(done.stdout)
    assert path.endswith("litellm/model_prices_and_context_window_backup.json")
    assert cost > 0 and window > 0 and imported is False


@pytest.mark.parametrize("model", models_to_compare())
def test_prices_and_windows_read_from_the_file(model: str) -> None:
    entries = price_map()
    name = model if model in entries else model.split("/", 1)[-1]
    entry = entries.get(name)
    if entry is None or (
        "/" in model
        and name != model
        and entry.get("litellm_provider") not in (None, model.split("/")[0])
    ):
        assert prices.model_info(model) is None
        assert prices.cost(model, 100, 10) is None and prices.context_window(model) is None
        return
    assert prices.model_info(model) is entry or prices.model_info(model) == entry
    expected = 100 * entry.get("input_cost_per_token", 0) + 10 * entry.get(
        "output_cost_per_token", 0
    )
    assert prices.cost(model, 100, 10) == pytest.approx(expected)
    assert prices.context_window(model) == (entry.get("max_input_tokens") or entry["max_tokens"])


def test_a_missing_model_costs_nothing_twice() -> None:
    prices.warm()
    name = "openai/a-model-no-map-has-7f3a"
    before = prices.model_info.cache_info()
    assert prices.cost(name, 10, 10) is None
    middle = prices.model_info.cache_info()
    assert middle.misses == before.misses + 1
    for _ in range(3):
        assert prices.cost(name, 10, 10) is None and prices.context_window(name) is None
    after = prices.model_info.cache_info()
    assert after.misses == middle.misses and after.hits == middle.hits + 6


def test_a_model_reports_cost_and_window_from_the_map() -> None:
    from workbench.models import _cost

    m = LiteLLMModel("anthropic/claude-sonnet-4-5")
    entry = price_map()["claude-sonnet-4-5"]
    assert m.context_window == entry["max_input_tokens"]
    assert LiteLLMModel("openai/fake", {"api_base": "http://x/v1"}).context_window is None
    assert LiteLLMModel("openai/fake", context_window=321).context_window == 321
    usage = Usage(prompt_tokens=1000, completion_tokens=200)
    assert _cost("anthropic/claude-sonnet-4-5", usage) == pytest.approx(
        1000 * entry["input_cost_per_token"] + 200 * entry["output_cost_per_token"]
    )
    assert _cost("openai/fake", usage) is None
    assert _cost("anthropic/claude-sonnet-4-5", Usage()) is None


def test_the_answers_are_litellms() -> None:
    """The same question asked of litellm itself (this test imports it)."""
    from workbench.models import litellm_module

    ll = litellm_module()
    compared = 0
    for model in models_to_compare():
        for prompt, completion in ((1000, 250), (250_000, 1000)):
            try:
                p, c = ll.cost_per_token(
                    model=model, prompt_tokens=prompt, completion_tokens=completion
                )
                theirs: float | None = float(p + c)
            except Exception:
                theirs = None
            ours = prices.cost(model, prompt, completion)
            assert (ours is None) == (theirs is None), (model, ours, theirs)
            if theirs is None or ours is None:
                continue
            assert ours == pytest.approx(theirs, rel=1e-9), (model, prompt)
            compared += 1
        try:
            info = ll.get_model_info(model)
            window = info.get("max_input_tokens") or info.get("max_tokens")
        except Exception:
            window = None
        if prices.model_info(model) is not None:
            assert prices.context_window(model) == window, model
    assert compared >= 16


def test_reading_single_entries_and_parsing_the_whole_map_agree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lookups decode only the entries they need, from the file (mapped in memory, never
    read whole: a first call's context window waited 15-30 ms for that) or from the text
    ``warm`` kept; nothing parses the whole map (100,000 objects the garbage collector
    would walk on every full collection), and what they find is what parsing it all
    gives."""
    names = [*models_to_compare(), "GPT-4o", "ollama/LLAMA3", "gemini/", ""]

    def answers() -> list[Any]:
        prices.model_info.cache_clear()
        return [(prices.model_info(n), prices.cost(n, 10, 5)) for n in names]

    monkeypatch.setattr(prices, "_map", None)
    monkeypatch.setattr(prices, "_kept", None)
    read_whole = prices._text
    monkeypatch.setattr(prices, "_text", lambda: pytest.fail("a lookup read the whole file"))
    single = answers()
    monkeypatch.setattr(prices, "_text", read_whole)
    prices.warm()
    assert prices._kept is not None and prices._kept[0] is not None
    warmed = answers()
    assert prices._map is None  # nothing parsed the whole map
    assert single == warmed
    monkeypatch.setattr(prices, "_map", prices._parse(prices._kept[0]))
    assert answers() == single  # the whole map, parsed (the fallback), agrees
    assert single[names.index("GPT-4o")][0] is not None  # case aside, as litellm
    prices.model_info.cache_clear()


def test_what_media_a_model_takes_comes_from_the_map_without_litellm() -> None:
    """``accepts`` (may a tool's image or audio reach the model?) reads the map as a file,
    and answers as litellm's own model info does."""
    code = textwrap.dedent(
        """
        import json, sys
        from workbench.models import LiteLLMModel
        names = sys.argv[1:]
        print(json.dumps([[LiteLLMModel(n).accepts(k) for k in ("image", "audio")] for n in names]
                         + ["litellm" in sys.modules]))
        """
    )
    names = [*models_to_compare(), "openai/gpt-4o-audio-preview", "openai/gpt-3.5-turbo"]
    done = subprocess.run(
        [sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    *ours, imported = json.loads(done.stdout)
    assert imported is False
    from workbench.models import litellm_module

    ll = litellm_module()
    for name, (image, audio) in zip(names, ours, strict=True):
        try:
            info = ll.get_model_info(name)
        except Exception:
            info = {}
        assert image == bool(info.get("supports_vision")), name
        assert audio == bool(info.get("supports_audio_input")), name
    table = dict(zip(names, ours, strict=True))
    assert table["openai/gpt-4o"] == [True, False]
    assert table["openai/gpt-3.5-turbo"][0] is False
    assert table["openai/fake"] == [False, False]
    # The model's table says otherwise: it wins.
    assert LiteLLMModel("openai/fake", media=["image"]).accepts("image")
    assert not LiteLLMModel("openai/gpt-4o", media=[]).accepts("image")
