"""``workbench doctor``: is this workspace ready to run, and if not, what is missing."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

__all__ = ["Check", "PROVIDER_KEYS", "check_setup", "run_doctor"]

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
        Check("workspace", True, f"{where}: {len(ws.agents)} agents, {len(ws.teams)} teams, {len(ws.workflows)} workflows")
    )
    try:
        from workbench.store import Store

        with Store.open(db) as store:
            checks.append(Check("store", True, store.url))
    except Exception as exc:
        checks.append(Check("store", False, f"{exc}"))

    used = {a.model for a in ws.agents.values()} | set(ws.models)
    specs = {}
    for name in used:
        spec = ws.resolve_model(name)
        specs[spec.model + str(sorted(spec.params.items()))] = (name, spec)
    if not specs:
        checks.append(
            Check(
                "models",
                False,
                "no model configured: add one under models: in workbench.yaml "
                "(e.g. default: openai/gpt-4o with OPENAI_API_KEY set, or ollama/llama3 with "
                "'ollama serve'), or use the offline 'test' model",
                warn=True,
            )
        )
    for label, spec in specs.values():
        if spec.model in ("test", "replay"):
            checks.append(Check(f"model {label}", True, f"{spec.model} (offline, for demos and tests)"))
            continue
        provider = spec.model.split("/", 1)[0] if "/" in spec.model else ""
        api_base = spec.params.get("api_base")
        api_key = spec.params.get("api_key")
        if api_base:
            if offline:
                checks.append(Check(f"model {label}", True, f"{spec.model} at {api_base} (not contacted)"))
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
                checks.append(Check(f"model {label}", True, f"{spec.model} via {base} (not contacted)"))
                continue
            problem = _endpoint_ok(base + "/v1", None)
            checks.append(
                Check(f"model {label}", problem is None, problem and f"{problem}: run 'ollama serve'" or f"{spec.model} via {base}")
            )
            continue
        keys = PROVIDER_KEYS.get(provider)
        if keys is None:
            checks.append(Check(f"model {label}", True, f"{spec.model} (provider '{provider}' not checked)", warn=True))
        elif api_key or any(os.environ.get(k) for k in keys):
            checks.append(Check(f"model {label}", True, f"{spec.model}: key found"))
        else:
            checks.append(
                Check(f"model {label}", False, f"{spec.model}: set {' or '.join(keys)} (or api_key under models:)")
            )

    used_kits = sorted({t.split(".", 1)[0] for a in ws.agents.values() for t in a.tools if "." in t.split(":", 1)[0]})
    for kit in used_kits:
        if kit in ws.mcp:
            cfg = ws.mcp[kit]
            if cfg.command and shutil.which(cfg.command) is None and not Path(cfg.command).exists():
                checks.append(Check(f"mcp {kit}", False, f"command '{cfg.command}' not found on PATH"))
            else:
                checks.append(Check(f"mcp {kit}", True, cfg.command or cfg.url or ""))
            continue
        try:
            load_toolkit(kit, dict(ws.toolkits.get(kit, {})), ws.root)
            checks.append(Check(f"toolkit {kit}", True, "loads"))
        except PluginError as exc:
            checks.append(Check(f"toolkit {kit}", False, str(exc)))
    return checks


def run_doctor(root: Path | None, db: str | None, console: Console, offline: bool = False) -> int:
    """Print the report; exit code 0 when nothing failed, 1 otherwise."""
    checks = check_setup(root, db, offline=offline)
    failed = False
    for c in checks:
        if c.ok:
            mark = "[yellow]![/]" if c.warn else "[green]✓[/]"
        elif c.warn:
            mark = "[yellow]![/]"
        else:
            mark = "[red]✗[/]"
            failed = True
        console.print(f"{mark} [bold]{escape(c.name)}[/]: {escape(c.detail)}")
    console.print("[red]Some checks failed.[/]" if failed else "[green]Ready.[/]")
    return 1 if failed else 0
