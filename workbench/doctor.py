"""``workbench doctor``: is this workspace ready to run, and if not, what is missing."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from workbench.termsafe import visible

__all__ = [
    "PROVIDER_EXAMPLES",
    "PROVIDER_KEYS",
    "Check",
    "check_setup",
    "version_checks",
    "model_setup_help",
    "ollama_check",
    "ollama_models",
    "repair_store",
    "provider_keys_check",
    "run_doctor",
]

PROVIDER_KEYS: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY",),
    "mistral": ("MISTRAL_API_KEY",),
    "groq": ("GROQ_API_KEY",),
    "openrouter": ("OPENROUTER_API_KEY",),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "xai": ("XAI_API_KEY",),
    "together_ai": ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY"),
    "cohere": ("COHERE_API_KEY",),
    "azure": ("AZURE_API_KEY",),
    "bedrock": ("AWS_ACCESS_KEY_ID",),
    "vertex_ai": ("GOOGLE_APPLICATION_CREDENTIALS",),
}
"""The environment variables litellm reads for each provider prefix."""

PROVIDER_EXAMPLES: dict[str, tuple[str, str]] = {
    "openai": ("OpenAI", "openai/gpt-4o"),
    "anthropic": ("Anthropic", "anthropic/claude-sonnet-4-5"),
    "gemini": ("Gemini", "gemini/gemini-2.0-flash"),
    "mistral": ("Mistral", "mistral/mistral-large-latest"),
    "groq": ("Groq", "groq/llama-3.3-70b-versatile"),
    "openrouter": ("OpenRouter", "openrouter/openai/gpt-4o"),
    "deepseek": ("DeepSeek", "deepseek/deepseek-chat"),
    "xai": ("xAI", "xai/grok-2-latest"),
}
"""Provider prefix -> (its name, an example model string), for the doctor's advice."""

OLLAMA_DEFAULT_BASE = "http://127.0.0.1:11434"
"""Where Ollama listens unless ``OLLAMA_API_BASE`` says otherwise."""


@dataclass
class Check:
    """One line of the doctor's report."""

    name: str
    """What was checked."""
    ok: bool
    """Whether it passed."""
    detail: str
    """What was found, or what to do."""
    warn: bool = False
    """A problem that does not stop everything (shown in yellow, exit 0)."""


def _endpoint_ok(api_base: str, api_key: str | None, timeout: float = 3.0) -> str | None:
    import httpx

    url = api_base.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        r = httpx.get(url, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return f"cannot reach {url}: {type(exc).__name__}"
    if r.status_code in (401, 403):
        return f"{url} refused the key (HTTP {r.status_code})"
    if r.status_code >= 500:
        return f"{url} answered HTTP {r.status_code}"
    return None


def ollama_models(base: str, timeout: float = 1.0) -> list[str] | None:
    """The models a local Ollama serves, or ``None`` when nothing answers at ``base``."""
    import httpx

    try:
        r = httpx.get(base.rstrip("/") + "/api/tags", timeout=timeout)
        r.raise_for_status()
        return [str(m.get("name", "")) for m in r.json().get("models", []) if m.get("name")]
    except (httpx.HTTPError, ValueError, AttributeError):
        return None


def model_setup_help(offline: bool = False) -> str:
    """How to configure a real model: the ``models:`` line and the environment variable
    litellm reads for each provider, Ollama on localhost, any OpenAI-compatible server;
    then what this machine already has (keys set, a running Ollama, unless ``offline``)."""
    lines = [
        "only the offline `test` model is configured (fine for trying things out).",
        "To use a real model, name it in workbench.yaml (models: default: MODEL_STRING; "
        "agents without model: use it) and set the variable litellm reads:",
    ]
    for provider, (label, example) in PROVIDER_EXAMPLES.items():
        keys = " or ".join(PROVIDER_KEYS[provider])
        lines.append(f"  {label:<11} {example:<30} {keys}")
    lines.append(f"  {'Ollama':<11} {'ollama/llama3':<30} no key: `ollama serve`")
    lines.append(
        f"  (Ollama listens on {OLLAMA_DEFAULT_BASE}; set OLLAMA_API_BASE if it is elsewhere)"
    )
    lines.append(
        "  Any OpenAI-compatible server (vLLM, llama.cpp, LM Studio): default: "
        '{model: openai/NAME, api_base: "http://127.0.0.1:8000/v1", api_key: "none"}'
    )
    lines.append("What this machine already has is below (provider keys, ollama).")
    return "\n".join(lines)


DISTRIBUTION = "workbench-agents"
"""The name this project is installed under (its metadata holds the dependency bounds)."""

VERSIONED = ("litellm", "textual", "mcp", "lancedb", "pydantic", "fastapi")
"""The fast-moving dependencies whose release decides most of what can drift."""


def _constraint_pins() -> dict[str, str]:
    """The exact versions in the known-good set the suite last passed with (constraints.txt,
    shipped in the package), by normalised distribution name; empty when it is not there."""
    import re
    from importlib.resources import files

    try:
        text = files("workbench").joinpath("constraints.txt").read_text()
    except (FileNotFoundError, OSError):
        here = Path(__file__).resolve().parent.parent / "constraints.txt"
        text = here.read_text() if here.is_file() else ""
    pins: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;#]+)", line)
        if m:
            pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return pins


def _range(spec: Any) -> str:
    """A specifier set as people write it: lower bound first (``>=1.83, <2``)."""
    order = {">=": 0, ">": 0, "==": 1, "~=": 1, "!=": 2, "<=": 3, "<": 3}
    return ", ".join(str(s) for s in sorted(spec, key=lambda s: (order.get(s.operator, 1), str(s))))


def version_checks() -> list[Check]:
    """Python's and each fast-moving dependency's version in use, against the bounds this
    install declares (a warning outside them) and the known-good set (said when it differs).

    Reads installed metadata only: nothing is imported, so this costs milliseconds even
    where importing litellm would take seconds."""
    import platform
    import re
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    try:
        meta = metadata.metadata(DISTRIBUTION)
        requires = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        meta, requires = None, []
    bounds: dict[str, SpecifierSet] = {}
    for line in requires:
        req = Requirement(line)
        if req.marker is None:  # runtime dependencies, not the extras
            bounds[norm(req.name)] = req.specifier
    pins = _constraint_pins()
    checks: list[Check] = []

    python = platform.python_version()
    wanted = SpecifierSet(meta["Requires-Python"] or "") if meta else SpecifierSet()
    inside = Version(python) in wanted
    checks.append(
        Check(
            "python",
            inside,
            f"{python} ({platform.python_implementation()})"
            + ("" if inside else f": outside the supported range {wanted}"),
            warn=not inside,
        )
    )
    for name in VERSIONED:
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            checks.append(Check(name, False, "not installed: reinstall workbench", warn=True))
            continue
        spec = bounds.get(norm(name))
        detail = installed
        ok = True
        try:
            if spec is not None and Version(installed) not in spec:
                ok = False
                detail += f": outside the tested range {_range(spec)}; reinstall workbench"
        except InvalidVersion:
            ok = False
            detail += ": not a version this check understands"
        if ok and spec is not None:
            known = pins.get(norm(name))
            detail += f" (tested range {_range(spec)}"
            if known and known != installed:
                detail += f"; the suite last passed with {known}"
            detail += ")"
        checks.append(Check(name, ok, detail, warn=not ok))
    return checks


def provider_keys_check(environ: Mapping[str, str] | None = None) -> Check:
    """Which providers' keys the environment has (names only, never values), each with a
    model string that would use it."""
    env = os.environ if environ is None else environ
    found = []
    for provider, keys in PROVIDER_KEYS.items():
        key = next((k for k in keys if env.get(k)), None)
        if key is None:
            continue
        example = PROVIDER_EXAMPLES.get(provider)
        found.append(f"{key} (e.g. {example[1]})" if example else key)
    if not found:
        names = ", ".join(PROVIDER_KEYS[p][0] for p in PROVIDER_EXAMPLES)
        return Check("provider keys", True, f"none in the environment (litellm reads {names}, ...)")
    return Check("provider keys", True, "in the environment: " + ", ".join(found))


def ollama_check(offline: bool = False, timeout: float = 0.5) -> Check:
    """Whether a local Ollama answers (at ``OLLAMA_API_BASE``, else 127.0.0.1:11434), with
    a short timeout: nothing listening is an answer too, not a wait."""
    base = os.environ.get("OLLAMA_API_BASE", OLLAMA_DEFAULT_BASE)
    if offline:
        return Check("ollama", True, f"{base} not contacted (--offline)")
    served = ollama_models(base, timeout=timeout)
    if served is None:
        return Check(
            "ollama",
            True,
            f"nothing answers at {base} (`ollama serve` starts it; OLLAMA_API_BASE if it "
            "listens elsewhere)",
        )
    if not served:
        return Check("ollama", True, f"answers at {base}, no model pulled yet: ollama pull llama3")
    more = f" and {len(served) - 5} more" if len(served) > 5 else ""
    return Check(
        "ollama",
        True,
        f"answers at {base} with {', '.join(served[:5])}{more} (e.g. ollama/{served[0]})",
    )


def check_setup(root: Path | None, db: str | None, offline: bool = False) -> list[Check]:
    """Run every check and return the report lines."""
    from workbench.registry import PluginError, available_toolkits, load_toolkit
    from workbench.workspace import WorkspaceError, load_workspace

    checks: list[Check] = []
    try:
        ws = load_workspace(root, known_toolkits=set(available_toolkits()) | {"mcp"})
    except WorkspaceError as exc:
        return [Check("workspace", False, str(exc))]
    where = str(ws.path) if ws.path else f"{ws.root} (no workbench.yaml: using defaults)"
    checks.append(
        Check(
            "workspace",
            True,
            f"{where}: {len(ws.agents)} agents, {len(ws.teams)} teams, {len(ws.workflows)} workflows",
        )
    )
    try:
        from workbench.store import Store

        with Store.open(db) as store:
            checks.append(Check("store", True, store.url))
    except Exception as exc:
        hint = getattr(exc, "hint", None)
        checks.append(Check("store", False, f"{exc}" + (f"; {hint}" if hint else "")))

    used = {a.model for a in ws.agents.values()} | set(ws.models)
    specs = {}
    for name in used:
        spec = ws.resolve_model(name)
        specs[spec.model + str(sorted(spec.params.items()))] = (name or "default", spec)
    for label, spec in specs.values():
        if spec.model in ("test", "replay"):
            checks.append(
                Check(f"model {label}", True, f"{spec.model} (offline, for demos and tests)")
            )
            continue
        provider = spec.model.split("/", 1)[0] if "/" in spec.model else ""
        api_base = spec.params.get("api_base")
        api_key = spec.params.get("api_key")
        if api_base:
            if offline:
                checks.append(
                    Check(f"model {label}", True, f"{spec.model} at {api_base} (not contacted)")
                )
                continue
            problem = _endpoint_ok(str(api_base), str(api_key) if api_key else None)
            checks.append(
                Check(
                    f"model {label}",
                    problem is None,
                    problem or f"{spec.model} at {api_base} answers",
                )
            )
            continue
        if provider == "ollama":
            base = os.environ.get("OLLAMA_API_BASE", "http://127.0.0.1:11434")
            if offline:
                checks.append(
                    Check(f"model {label}", True, f"{spec.model} via {base} (not contacted)")
                )
                continue
            problem = _endpoint_ok(base + "/v1", None)
            checks.append(
                Check(
                    f"model {label}",
                    problem is None,
                    problem and f"{problem}: run 'ollama serve'" or f"{spec.model} via {base}",
                )
            )
            continue
        keys = PROVIDER_KEYS.get(provider)
        if keys is None:
            checks.append(
                Check(
                    f"model {label}",
                    True,
                    f"{spec.model} (provider '{provider}' not checked)",
                    warn=True,
                )
            )
        elif api_key or any(os.environ.get(k) for k in keys):
            checks.append(Check(f"model {label}", True, f"{spec.model}: key found"))
        else:
            checks.append(
                Check(
                    f"model {label}",
                    False,
                    f"{spec.model}: set {' or '.join(keys)} (or api_key under models:)",
                )
            )

    if all(spec.model in ("test", "replay") for _, spec in specs.values()):
        checks.append(Check("models", True, model_setup_help(offline=offline), warn=True))
    checks.append(provider_keys_check())
    checks.append(ollama_check(offline))

    checks.extend(_check_mcp_servers(ws, offline=offline))
    used_kits = sorted(
        {
            t.split(".", 1)[0]
            for a in ws.agents.values()
            for t in a.tools
            if "." in t.split(":", 1)[0]
        }
    )
    for kit in used_kits:
        if kit in ws.mcp:
            continue
        try:
            load_toolkit(kit, dict(ws.toolkits.get(kit, {})), ws.root)
            checks.append(Check(f"toolkit {kit}", True, "loads"))
        except PluginError as exc:
            checks.append(Check(f"toolkit {kit}", False, str(exc)))
    module_tools = dict.fromkeys(
        t.strip()
        for a in ws.agents.values()
        for t in a.tools
        if ":" in t and "." not in t.split(":", 1)[0]
    )
    from workbench.registry import load_module_tool

    for ref in module_tools:
        try:
            load_module_tool(ws.root, ref)
            checks.append(Check(f"tool {ref}", True, "loads"))
        except PluginError as exc:
            checks.append(Check(f"tool {ref}", False, str(exc)))
    return checks


def _check_mcp_servers(ws: Any, offline: bool) -> list[Check]:
    """Start every MCP server of the workspace (concurrently) and list its tools: a server
    that cannot start fails with its stderr tail. With ``offline``, URL servers are not
    contacted."""
    import asyncio

    from workbench.registry import PluginError, load_toolkit

    async def one(name: str, cfg: Any) -> Check:
        if offline and cfg.url:
            return Check(f"mcp {name}", True, f"{cfg.url} (not contacted)")
        try:
            tk = load_toolkit("mcp", cfg.model_dump(), ws.root, name=name)
        except PluginError as exc:
            return Check(f"mcp {name}", False, str(exc))
        try:
            tools = await tk.list_tools()
        except Exception as exc:
            return Check(f"mcp {name}", False, str(exc))
        finally:
            await tk.aclose()
        names = ", ".join(t.name.removeprefix(f"{name}.") for t in tools) or "no tools"
        skipped = getattr(tk, "status", None)
        extra = ""
        if skipped is not None and skipped.skipped:
            extra = f" (not offered: {'; '.join(skipped.skipped)})"
        return Check(f"mcp {name}", True, f"{len(tools)} tools: {names}{extra}")

    async def every() -> list[Check]:
        return list(await asyncio.gather(*(one(n, c) for n, c in ws.mcp.items())))

    if not ws.mcp:
        return []
    return asyncio.run(every())


def repair_store(db: str | None, console: Console) -> bool:
    """``doctor --repair``: move a damaged SQLite store aside and start an empty one.

    Only a store that cannot be read as a SQLite database is moved, and only because the
    person asked: it goes to ``FILE.corrupt-YYYYmmdd-HHMMSS`` (its ``-wal`` and ``-shm``
    with it), so nothing is lost, and a new, empty store takes its place.

    Returns:
        True when the store is usable afterwards.
    """
    import time

    from workbench.store import Store, StoreError, store_url
    from workbench.store._errors import describe_url, sqlite_path

    url = store_url(db)
    path = sqlite_path(url)
    try:
        with Store.open(url):
            pass
    except StoreError as exc:
        if exc.problem != "damaged" or path is None:
            console.print(f"[red]✗[/] [bold]repair[/]: {escape(exc.message)}; {escape(exc.hint)}")
            return False
    else:
        console.print(
            f"[green]✓[/] [bold]repair[/]: {escape(describe_url(url))} opens: nothing to repair"
        )
        return True
    assert path is not None
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, aside)
    for suffix in ("-wal", "-shm", "-journal"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            os.replace(extra, aside.with_name(aside.name + suffix))
    with Store.open(url):
        pass
    console.print(
        f"[yellow]![/] [bold]repair[/]: moved the damaged store {escape(str(path))} aside to "
        f"{escape(str(aside))}; a new, empty store is in its place"
    )
    return True


def run_doctor(
    root: Path | None,
    db: str | None,
    console: Console,
    offline: bool = False,
    versions_only: bool = False,
) -> int:
    """Print the report; exit code 0 when nothing failed, 1 otherwise. ``versions_only``
    prints only the versions in use (``doctor --versions``)."""
    checks = version_checks()
    if not versions_only:
        checks += check_setup(root, db, offline=offline)
    failed = False
    for c in checks:
        if c.ok:
            mark = "[yellow]![/]" if c.warn else "[green]✓[/]"
        elif c.warn:
            mark = "[yellow]![/]"
        else:
            mark = "[red]✗[/]"
            failed = True
        # An MCP server's tool names and stderr are in the details: text, never escapes.
        console.print(f"{mark} [bold]{escape(visible(c.name))}[/]: {escape(visible(c.detail))}")
    console.print("[red]Some checks failed.[/]" if failed else "[green]Ready.[/]")
    return 1 if failed else 0
