"""``workbench run``: one run on a plain terminal, approvals asked at the prompt (or decided by
``--approve``)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    from rich.console import Console

    from workbench.approvals import PendingApproval, Resolution
    from workbench.engine import Engine
    from workbench.render import TranscriptPrinter

from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, CliError, _engine

# -- run ---------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    prompt = " ".join(args.prompt).strip()
    if prompt == "-":
        prompt = sys.stdin.read().strip()
    if not prompt and not args.resume:
        raise CliError("give a prompt: workbench run 'your question'")
    engine = _engine(args, "run")
    from workbench.startup import resume_collector

    resume_collector()  # paused by main() for the imports and the engine's opening
    return asyncio.run(_run(engine, args, prompt))


async def _run(engine: Engine, args: argparse.Namespace, prompt: str) -> int:
    import asyncio
    import signal

    from rich.console import Console

    from workbench.events import ApprovalRequired, dump_event
    from workbench.render import TranscriptPrinter
    from workbench.runtime import RunError
    from workbench.termsafe import json_visible

    console = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not args.json
    mode = args.approve or ("ask" if interactive else "never")
    if mode == "ask" and not interactive:
        raise CliError("--approve ask needs a terminal; use --approve never or --approve all")
    if mode != "ask":
        engine.broker.auto_decider = _auto_decider(mode)
        if args.approve is None:
            err.print(
                "[yellow]No terminal to ask on: tool calls that need approval will be refused "
                "(--approve never). Pass --approve all to allow them.[/]"
            )
    printer = TranscriptPrinter(console, live=True)
    if args.json:
        engine.add_listener(lambda e: print(json_visible(dump_event(e)), flush=True))
    else:
        engine.add_listener(
            lambda e: None if isinstance(e, ApprovalRequired) and mode == "ask" else printer.feed(e)
        )
    prompter = _Prompter(engine, console, printer) if mode == "ask" else None
    async with engine:
        try:
            if args.resume:
                handle = await engine.resume(args.resume)
            else:
                kind, target = _target(engine, args)
                handle = await engine.start_run(
                    target, prompt, session_id=args.session, kind=kind, model=args.model
                )
        except RunError as exc:
            raise CliError(exc.describe()) from None
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, lambda: engine.cancel(handle.run_id))
        if prompter is not None:
            prompter.start()
        try:
            outcome = await handle.wait()
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            if prompter is not None:
                await prompter.stop()
            printer.close()
        if not args.json:
            if outcome.status == "completed":
                err.print(f"[dim]session {handle.session_id} · run {handle.run_id}[/]")
            else:
                err.print(
                    f"[dim]session {handle.session_id} · run {handle.run_id} {outcome.status}[/]"
                )
    if outcome.status == "completed":
        return EXIT_OK
    if outcome.status == "cancelled":
        return EXIT_INTERRUPTED
    return EXIT_FAILED


def _target(engine: Engine, args: argparse.Namespace) -> tuple[Any, str]:
    ws = engine.workspace
    if args.team:
        if args.team not in ws.teams:
            raise CliError(f"no team named '{args.team}' (teams: {', '.join(ws.teams) or 'none'})")
        return "team", args.team
    if args.workflow:
        if args.workflow not in ws.workflows:
            raise CliError(
                f"no workflow named '{args.workflow}' (workflows: {', '.join(ws.workflows) or 'none'})"
            )
        return "workflow", args.workflow
    name = args.agent or ws.default_agent()
    if name is None or name not in ws.agents:
        raise CliError(f"no agent named '{name}' (agents: {', '.join(ws.agents) or 'none'})")
    return "agent", name


def _auto_decider(mode: str) -> Any:
    from workbench.approvals import Resolution

    def decide(p: PendingApproval) -> Resolution:
        if mode == "all":
            return Resolution(decision="allow", scope="once", decided_by="--approve all")
        note = "no one could approve this call (run with --approve all to allow it)"
        if p.interrupted:
            note = (
                f"{p.tool} started before the process stopped and may already have run; with "
                "no one to ask it is not run again (resume in a terminal to decide, or with "
                "--approve all to run it again)"
            )
        return Resolution(decision="deny", scope="once", note=note, decided_by="--approve never")

    return decide


class _Prompter:
    """Asks on the terminal for each pending approval, one at a time.

    The transcript is held back while a question is on screen, so the prompt is the last
    thing drawn, right under the call it is about: no output of a tool or a model lands
    under it (or pretends to be it)."""

    def __init__(self, engine: Engine, console: Console, printer: TranscriptPrinter) -> None:
        import asyncio

        self.engine = engine
        self.console = console
        self.printer = printer
        self.queue: asyncio.Queue[PendingApproval] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self._remove: Any = None

    def start(self) -> None:
        import asyncio

        def on_change(kind: str, p: PendingApproval) -> None:
            if kind == "added":
                self.queue.put_nowait(p)

        self._remove = self.engine.broker.subscribe(on_change)
        for p in reversed(self.engine.broker.pending()):
            self.queue.put_nowait(p)
        self.task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        import asyncio

        if self._remove:
            self._remove()
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            p = await self.queue.get()
            if p.future is None or p.future.done():
                continue
            self.printer.hold()
            try:
                res = await self._ask(p)
                self.engine.resolve_approval(p.run_id, p.call_id, res)
            finally:
                self.printer.release()

    async def _ask(self, p: PendingApproval) -> Resolution:
        import json

        from prompt_toolkit import PromptSession
        from rich.markup import escape
        from rich.panel import Panel
        from rich.syntax import Syntax

        from workbench.approvals import Resolution
        from workbench.termsafe import json_visible, visible

        def safe(text: str) -> str:
            return escape(visible(text))

        c = self.console
        c.print()
        if p.diff:  # the file's text comes first; the call and the question come after it
            c.print(Syntax(visible(p.diff), "diff", theme="ansi_dark"))
        body = f"[bold]{safe(p.tool)}[/] asked by [cyan]{safe(p.source)}[/]\n[dim]{safe(p.reason)}[/]\n"
        body += escape(json_visible(json.dumps(p.arguments, indent=2, ensure_ascii=False)))
        if p.parts and len(p.parts) > 1:
            body += "\n[bold]command parts:[/]\n" + "\n".join(f"  • {safe(x)}" for x in p.parts)
        c.print(Panel(body, title="approval needed", border_style="yellow"))
        session: PromptSession[str] = PromptSession()
        while True:
            key = (
                (
                    await session.prompt_async(
                        "[y] allow once  [s] this session  [a] always  [n] deny  [e] edit > "
                    )
                )
                .strip()
                .lower()
            )
            if key in ("y", "yes"):
                return Resolution(decision="allow", scope="once")
            if key == "s":
                return Resolution(decision="allow", scope="session")
            if key == "a":
                rules = p.rules_for("workspace", root=self.engine.root)
                c.print("This will save: " + "; ".join(safe(r.display()) for r in rules))
                ok = (await session.prompt_async("save? [y/n] > ")).strip().lower()
                if ok in ("y", "yes"):
                    return Resolution(decision="allow", scope="workspace")
                continue
            if key in ("n", "no"):
                note = (await session.prompt_async("note for the model (optional) > ")).strip()
                return Resolution(decision="deny", scope="once", note=note or None)
            if key == "e":
                text = await session.prompt_async(
                    "arguments (JSON) > ",
                    default=json_visible(json.dumps(p.arguments, ensure_ascii=False)),
                )
                try:
                    edited = json.loads(text)
                    if not isinstance(edited, dict):
                        raise ValueError("not an object")
                except ValueError as exc:
                    c.print(f"[red]not a JSON object: {escape(str(exc))}[/]")
                    continue
                return Resolution(decision="allow", scope="once", edited_arguments=edited)
