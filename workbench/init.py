"""``workbench init``: a new workspace from a template, ready to run offline.

Templates:

``minimal`` (the default)
    One agent on the offline ``test`` model with a tool of its own: ``tools.py`` holds
    ``word_count``, a plain Python function whose signature and docstring become the tool's
    schema.
``research-desk``, ``code-review``, ``debate`` (and any other sample workspace)
    A copy of the sample workspace of that name, without its recorded sessions
    (``sessions/``) unless ``with_sessions`` is set.

Sample workspaces are looked up in the installed package first
(``workbench/sample_workspaces``, where the wheel puts them) and then in the source
checkout's ``sample_workspaces/``, so ``init`` works both after ``pipx install`` and from a
clone. Nothing is ever overwritten: a folder that already has a ``workbench.yaml``, or any
file the template would write, is refused.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import WorkbenchError

__all__ = [
    "DEFAULT_TEMPLATE",
    "InitError",
    "InitResult",
    "add_parser",
    "cmd_init",
    "init_workspace",
    "next_steps",
    "sample_dirs",
    "templates",
]

DEFAULT_TEMPLATE = "minimal"
"""The template ``workbench init`` uses when none is named."""

_SKIP = ("sessions", ".workbench", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache")
"""What is never copied from a sample (``sessions`` only without ``with_sessions``)."""

_MINIMAL_YAML = """\
# A workspace: models, agents and the approval policy. Open it with `workbench`
# (the TUI) or run it with `workbench run "your question"`.

models:
  # `test` is the offline test model: deterministic, no network, no key. It calls each
  # tool it is offered once, then answers with a summary of the results.
  # To chat for real, replace it with any litellm model string, for example:
  #   default: openai/gpt-4o          # needs OPENAI_API_KEY
  #   default: ollama/llama3          # needs `ollama serve` on 127.0.0.1:11434
  default: test

agents:
  assistant:
    description: A helpful assistant that can count words and tell the time.
    instructions: Answer briefly. Use your tools when they help.
    # toolkit.tool (globs allowed: clock.*), or module:function from a .py file here.
    tools: ["tools:word_count", clock.now]

approvals:
  default: ask                  # anything not listed waits for y / s / a / n / e
  allow: ["tools:word_count", clock.now]
"""

_MINIMAL_TOOLS = '''\
"""Tools of this workspace: plain functions, named in workbench.yaml as tools:NAME.

A tool's schema comes from its signature and its docstring: the model sees the
description, each argument's type and the text under Args.
"""


def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: The text to count.
    """
    return len(text.split())
'''

MINIMAL_FILES: dict[str, str] = {"workbench.yaml": _MINIMAL_YAML, "tools.py": _MINIMAL_TOOLS}
"""The files of the ``minimal`` template."""


class InitError(WorkbenchError):
    """The workspace cannot be created as asked; the message says why and what to do."""


@dataclass
class InitResult:
    """What :func:`init_workspace` made."""

    root: Path
    """The workspace folder."""
    template: str
    """The template it came from."""
    files: list[str] = field(default_factory=list)
    """The files written, relative to :attr:`root`, sorted."""
    sessions: list[str] = field(default_factory=list)
    """The recorded sessions copied (``sessions/*.jsonl``), when asked for."""


def sample_dirs() -> list[Path]:
    """Where sample workspaces are looked for, in order: the installed package's copy,
    then the source checkout's ``sample_workspaces/``."""
    package = Path(__file__).resolve().parent
    return [package / "sample_workspaces", package.parent / "sample_workspaces"]


def templates() -> dict[str, Path | None]:
    """Every template by name: ``minimal`` (built in, ``None``) and each sample workspace
    found (the first place that has it wins)."""
    found: dict[str, Path | None] = {DEFAULT_TEMPLATE: None}
    for base in sample_dirs():
        if not base.is_dir():
            continue
        for sample in sorted(base.iterdir()):
            if (sample / "workbench.yaml").is_file() and sample.name not in found:
                found[sample.name] = sample
    return found


def _planned(source: Path | None, with_sessions: bool) -> dict[str, Path | str]:
    """Relative path -> where its content comes from (a file, or the text itself)."""
    if source is None:
        return dict(MINIMAL_FILES)
    skip = set(_SKIP) - ({"sessions"} if with_sessions else set())
    out: dict[str, Path | str] = {}
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if any(part in skip for part in rel.parts) or not path.is_file():
            continue
        if path.suffix in (".pyc", ".pyo"):
            continue
        out[rel.as_posix()] = path
    return out


def init_workspace(
    dest: Path | str, template: str = DEFAULT_TEMPLATE, *, with_sessions: bool = False
) -> InitResult:
    """Create a workspace in ``dest`` (made if missing) from a template.

    Args:
        dest: The folder. It may exist, but must not hold a ``workbench.yaml`` or any file
            the template writes.
        template: ``minimal`` or the name of a sample workspace (see :func:`templates`).
        with_sessions: Copy a sample's recorded sessions too.

    Raises:
        InitError: an unknown template, or a file that would be overwritten.
    """
    root = Path(dest).expanduser().resolve()
    available = templates()
    if template not in available:
        raise InitError(f"no template named {template!r} (templates: {', '.join(available)})")
    source = available[template]
    if (root / "workbench.yaml").exists():
        raise InitError(
            f"{root / 'workbench.yaml'} already exists: not overwriting it "
            "(open that workspace with `workbench -w`, or choose another folder)"
        )
    if root.exists() and not root.is_dir():
        raise InitError(f"{root} exists and is not a folder")
    plan = _planned(source, with_sessions)
    clashes = [rel for rel in plan if (root / rel).exists() or (root / rel).is_symlink()]
    if clashes:
        shown = ", ".join(clashes[:5]) + (" ..." if len(clashes) > 5 else "")
        raise InitError(f"{root} already has {shown}: not overwriting (choose an empty folder)")
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in plan.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_text(content, encoding="utf-8")
    files = sorted(plan)
    return InitResult(
        root=root,
        template=template,
        files=files,
        sessions=[f for f in files if f.startswith("sessions/") and f.endswith(".jsonl")],
    )


def next_steps(result: InitResult, *, cwd: Path | None = None) -> list[str]:
    """What to do next, as shell commands with a comment each."""
    from workbench.workspace import load_workspace

    here = (cwd or Path.cwd()).resolve()
    try:
        where = result.root.relative_to(here).as_posix() or "."
    except ValueError:
        where = str(result.root)
    steps: list[str] = []
    if where != ".":
        steps.append(f"cd {where}")
    ws = load_workspace(result.root)
    if ws.workflows:
        name = next(iter(ws.workflows))
        steps.append(
            f'workbench run --approve all --workflow {name} "What should we look at first?"'
        )
    if ws.teams:
        name = next(iter(ws.teams))
        steps.append(f'workbench run --approve all --team {name} "What should we look at first?"')
    if not ws.workflows and not ws.teams:
        steps.append("workbench run \"How many words are in 'to be or not to be'?\"")
    steps.append("workbench                      # the TUI: chat, teams, workflows, approvals")
    steps.append("workbench sessions list        # what you ran, stored")
    for rec in result.sessions[:1]:
        steps.append(f"workbench replay {rec} --plain   # a recorded session, offline")
    steps.append("workbench doctor               # then replace `test` in workbench.yaml")
    return steps


# -- the command ----------------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``init`` to the ``workbench`` command's subcommands."""
    p = sub.add_parser(
        "init",
        help="create a workspace from a template (default: minimal; or a sample workspace)",
    )
    p.add_argument("dir", nargs="?", type=Path, default=Path("."), help="folder (default: .)")
    p.add_argument(
        "--template",
        default=DEFAULT_TEMPLATE,
        help=f"{DEFAULT_TEMPLATE} (default), research-desk, code-review or debate",
    )
    p.add_argument(
        "--with-sessions",
        action="store_true",
        help="copy a sample's recorded sessions (sessions/*.jsonl) too",
    )
    p.add_argument("--list", action="store_true", help="list the templates and exit")


def cmd_init(args: argparse.Namespace) -> int:
    """``workbench init``: 0 done, 2 refused (nothing written)."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    if args.list:
        for name, path in templates().items():
            where = "built in" if path is None else str(path)
            console.print(f"{escape(name):<15} [dim]{escape(where)}[/]")
        return 0
    try:
        result = init_workspace(args.dir, args.template, with_sessions=args.with_sessions)
    except InitError as exc:
        Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(str(exc))}")
        return 2
    console.print(
        f"Created a workspace from the [bold]{escape(result.template)}[/] template in "
        f"{escape(str(result.root))} ({len(result.files)} files). It runs offline on the "
        "`test` model."
    )
    console.print("\nNext:")
    for step in next_steps(result):
        console.print(f"  {escape(step)}")
    return 0
