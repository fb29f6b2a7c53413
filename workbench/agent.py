"""Agents: a model, instructions and tools, in a loop of model turns and tool batches.

:meth:`Agent.execute` is what the engine, teams and workflows call inside a run context;
:meth:`Agent.run` is the stand-alone form that yields the events as they happen. Each model
turn streams ``message.delta`` events and ends in a ``message.completed``; the tool calls of
one turn run concurrently, each through the approval policy, each ending in a
``tool.result`` (an error included), so the tool batch is a checkpoint a resume starts from.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError

from workbench.events import (
    ApprovalResolved,
    ContextSummarized,
    Event,
    EventBase,
    MessageCompleted,
    MessageDelta,
    ModelRetry,
    ToolCall,
    ToolCallRequest,
    ToolMedia,
    ToolProgress,
    ToolResult,
    ToolUnavailable,
)
from workbench.models import Model, ModelTurn, TurnToolCall, estimate_tokens
from workbench.runtime import RunContext, RunError, RunOutcome, run_lifecycle
from workbench.tools import (
    ApprovalPreview,
    Tool,
    ToolContext,
    ToolError,
    ToolNames,
    ToolOutput,
    timed,
)

if TYPE_CHECKING:
    from workbench.approvals import PendingApproval, Rule, Verdict

__all__ = ["Agent", "history_from_events"]

Message = dict[str, Any]


def _message_id() -> str:
    return "m_" + secrets.token_hex(6)


@dataclass
class _Decision:
    allowed: bool
    arguments: dict[str, Any]
    note: str | None = None


@dataclass(frozen=True)
class Unavailable:
    """A toolkit an agent lists that could not be loaded: it runs without its tools."""

    toolkit: str
    """The toolkit or MCP server."""
    patterns: tuple[str, ...]
    """The agent's ``tools:`` entries it would have served."""
    error: str
    """Why."""


_PROGRESS_EVERY = 0.2
"""Seconds between two ``tool.progress`` events of one call (the last one always goes)."""


@dataclass
class _Evidence:
    """What an earlier process's log says about a call of a resumed run: evidence, never a
    decision (the call is decided again, by this process, under the current rules)."""

    recorded: ApprovalResolved | None = None
    """The decision recorded for it, if any."""
    started: bool = False
    """A ``tool.call`` was logged: the tool may have run (it left no result)."""


@dataclass
class Agent:
    """An agent: a name, a model, instructions, tools, and a bound on tool rounds."""

    name: str
    """Its name in the workspace; events carry it as ``source``."""
    model: Model
    """The model it talks to."""
    instructions: str = ""
    """The system prompt."""
    tools: list[Tool] = field(default_factory=list)
    """The tools it may call."""
    max_tool_rounds: int = 10
    """Model turns with tool calls before it must answer."""
    output_schema: type[BaseModel] | dict[str, Any] | None = None
    """When set, the final answer must be JSON valid against it (one corrective retry)."""
    context_window: int | None = None
    """Tokens the history may take; defaults to the model's window."""
    description: str = ""
    """What it is for (teams show it to their leader)."""
    model_label: str | None = None
    """The model as configured (shown in events)."""
    unavailable: list[Unavailable] = field(default_factory=list)
    """Toolkits it lists that could not be loaded (each run says so in a
    ``tool.unavailable`` event)."""
    tool_instructions: list[tuple[str, str]] = field(default_factory=list)
    """``(server, text)``: what its MCP servers say about using them, added to the system
    prompt."""

    def __post_init__(self) -> None:
        self._by_name = {t.name: t for t in self.tools}
        self._names = ToolNames(self._by_name)

    # -- public ------------------------------------------------------------------------

    async def run(
        self,
        input: str,
        *,
        history: Sequence[Message] = (),
        root: Path | None = None,
        services: Any = None,
    ) -> AsyncIterator[Event]:
        """Run stand-alone and yield each event as it happens.

        Without ``services`` events are kept in memory and tool calls are allowed
        (there is nobody to ask); the engine passes itself to persist and ask.
        """
        from workbench.engine import MemoryServices
        from workbench.runtime import new_run_id

        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        svc = services or MemoryServices(root or Path.cwd(), sink=queue.put_nowait)
        if services is not None:
            svc.add_listener(queue.put_nowait)
        ctx = RunContext(
            svc,
            session_id=getattr(svc, "session_id", "s_local"),
            run_id=new_run_id(),
            source=self.name,
        )

        async def body() -> None:
            try:
                await run_lifecycle(
                    ctx,
                    "agent",
                    self.name,
                    input,
                    lambda c: self.execute(c, input, history),
                    model=self.model_label or self.model.name,
                )
            finally:
                queue.put_nowait(None)

        task = asyncio.create_task(body())
        try:
            while (ev := await queue.get()) is not None:
                if ev.run_id == ctx.run_id or ev.parent_run_id == ctx.run_id:
                    yield ev
        finally:
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def for_run(self, ctx: RunContext, input: str) -> Agent:
        """This agent as ``ctx``'s run uses it: itself, or under a re-run a copy answering
        with the turns its recorded counterpart made (see :class:`~workbench.models.Recording`).
        """
        if ctx.recording is None:
            return self
        model = ctx.recording.model_for(self.name, input)
        return dataclasses.replace(self, model=model, model_label=model.name)

    async def execute(
        self, ctx: RunContext, input: str, history: Sequence[Message] = ()
    ) -> RunOutcome:
        """Do the work of one run; the caller wraps it in :func:`run_lifecycle`."""
        messages: list[Message] = []
        system = self._system_prompt()
        if system:
            messages.append({"role": "system", "content": system})
        messages.extend(history)
        for gone in self.unavailable:
            await ctx.emit(
                ToolUnavailable(
                    toolkit=gone.toolkit, patterns=list(gone.patterns), error=gone.error
                )
            )
        evidence: dict[str, _Evidence] = {}
        done_results: dict[str, ToolResult] = {}
        rounds = 0
        if ctx.prior:
            rounds = self._restore(ctx.prior, messages, evidence, done_results)
        else:
            messages.append({"role": "user", "content": input})
            await ctx.emit(MessageCompleted(message_id=_message_id(), role="user", content=input))

        # A resumed run whose last turn had tool calls: finish that batch first.
        pending = _pending_calls(messages, done_results)
        if pending:
            await self._tool_batch(ctx, messages, pending, evidence)

        retried_schema = False
        while True:
            offer = rounds < self.max_tool_rounds
            if not offer and messages[-1].get("role") == "tool":
                messages.append(
                    {
                        "role": "user",
                        "content": f"(You have used all {self.max_tool_rounds} tool rounds. "
                        "Answer now with what you have.)",
                    }
                )
            messages = await self._fit_context(ctx, messages)
            turn = await self._model_turn(ctx, messages, offer)
            if turn.tool_calls and offer:
                rounds += 1
                messages.append(_assistant_message(turn))
                await self._tool_batch(ctx, messages, turn.tool_calls, {})
                continue
            answer = turn.text
            if self.output_schema is None:
                return RunOutcome("completed", output=answer, usage=ctx.usage, cost=ctx.cost)
            structured, problem = _validate_output(answer, self.output_schema)
            if problem is None:
                return RunOutcome(
                    "completed",
                    output=answer,
                    usage=ctx.usage,
                    cost=ctx.cost,
                    structured=structured,
                )
            if retried_schema:
                raise RunError(
                    f"the answer does not match the output schema: {problem}",
                    hint="the model failed twice to follow the schema; simplify it or use "
                    "a stronger model",
                )
            retried_schema = True
            messages.append({"role": "assistant", "content": answer})
            correction = (
                f"Your answer does not match the required output schema: {problem}\n"
                f"Reply with only a JSON value valid against this schema:\n"
                f"{json.dumps(_schema_of(self.output_schema))}"
            )
            messages.append({"role": "user", "content": correction})
            await ctx.emit(
                MessageCompleted(message_id=_message_id(), role="user", content=correction)
            )
            rounds = self.max_tool_rounds  # the corrective turn gets no tools

    def _system_prompt(self) -> str:
        parts = [self.instructions] if self.instructions else []
        for server, text in self.tool_instructions:
            parts.append(f"Instructions from the MCP server '{server}':\n{text.strip()}")
        return "\n\n".join(parts)

    # -- model turns -------------------------------------------------------------------

    def _offered(self) -> list[dict[str, Any]]:
        return [t.openai_schema(self._names.safe(t.name)) for t in self.tools]

    async def _model_turn(self, ctx: RunContext, messages: list[Message], offer: bool) -> ModelTurn:
        message_id = _message_id()

        async def on_retry(attempt: int, error: str, delay: float) -> None:
            await ctx.emit(ModelRetry(attempt=attempt, error=error, delay_s=delay))

        turn: ModelTurn | None = None
        tools = self._offered() if offer else []
        async for item in self.model.stream(messages, tools, on_retry=on_retry):
            if isinstance(item, ModelTurn):
                turn = item
            elif item:
                await ctx.emit(MessageDelta(message_id=message_id, text=item))
        if turn is None:  # pragma: no cover - every Model ends with a turn
            raise RunError(f"model {self.model.name} ended without a reply")
        ctx.add_usage(turn.usage, turn.cost)
        calls = [self._request(c) for c in turn.tool_calls] if offer else []
        await ctx.emit(
            MessageCompleted(
                message_id=message_id,
                role="assistant",
                content=turn.text,
                tool_calls=calls,
                model=turn.model or self.model.name,
                usage=turn.usage,
                cost=turn.cost,
            )
        )
        return turn

    def _request(self, call: TurnToolCall) -> ToolCallRequest:
        return ToolCallRequest(
            id=call.id,
            tool=self._names.name(call.name) or call.name,
            arguments=_parse_args(call.arguments),
        )

    # -- tools -------------------------------------------------------------------------

    async def _tool_batch(
        self,
        ctx: RunContext,
        messages: list[Message],
        calls: Sequence[TurnToolCall],
        evidence: dict[str, _Evidence],
    ) -> None:
        results = await asyncio.gather(*(self._one_call(ctx, c, evidence.get(c.id)) for c in calls))
        media: list[tuple[str, str, list[ToolMedia]]] = []
        for call, (content, parts) in zip(calls, results, strict=True):
            messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
            if parts:
                media.append((self._names.name(call.name) or call.name, call.id, parts))
        shown = _media_message(media, self.model.accepts)
        if shown is not None:
            messages.append(shown)

    async def _one_call(
        self, ctx: RunContext, call: TurnToolCall, was: _Evidence | None
    ) -> tuple[str, list[ToolMedia]]:
        name = self._names.name(call.name) or call.name
        args = _parse_args(call.arguments)
        tool = self._by_name.get(name)

        async def fail(error: str) -> tuple[str, list[ToolMedia]]:
            await ctx.emit(ToolResult(call_id=call.id, tool=name, error=error))
            return f"Error: {error}", []

        if tool is None:
            return await fail(
                f"unknown tool '{name}'; available: {', '.join(sorted(self._by_name)) or 'none'}"
            )
        try:
            # Rules judge the arguments as the tool will see them (defaults filled in).
            validated = tool.validate(args)
        except ToolError as exc:
            return await fail(str(exc))
        decision = await self._decide(ctx, tool, call.id, args, validated, was)
        if not decision.allowed:
            note = f": {decision.note}" if decision.note else ""
            return await fail(f"the user refused this call{note}")
        tctx = ToolContext(
            workspace_root=ctx.services.root,
            session_id=ctx.session_id,
            run_id=ctx.run_id,
            agent=self.name,
            call_id=call.id,
            progress=_progress_reporter(ctx, call.id, name),
            ask=self._asker(ctx, call.id, name),
        )
        await ctx.emit(ToolCall(call_id=call.id, tool=name, arguments=decision.arguments))
        out, error, ms = await timed(tool.run(decision.arguments, tctx))
        media = [ToolMedia(kind=m.kind, mime_type=m.mime_type, data=m.data) for m in _media(out)]
        await ctx.emit(
            ToolResult(
                call_id=call.id,
                tool=name,
                output=out.text if out is not None else None,
                error=error,
                duration_ms=ms,
                structured=out.structured if out is not None else None,
                media=media,
            )
        )
        if error is not None:
            return f"Error: {error}", []
        return (out.text if out is not None else ""), media

    def _asker(self, ctx: RunContext, call_id: str, tool: str) -> Any:
        """``ToolContext.ask`` for one call: the question goes into the approvals queue as
        an ``input`` approval (the form's values as its arguments); allow sends them
        (edited, if edited), deny declines."""
        asked = 0

        async def ask(message: str, schema: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
            nonlocal asked
            from workbench.approvals import PendingApproval

            asked += 1
            input_id = f"{call_id}#input{asked}"
            values = _form_defaults(schema)
            svc = ctx.services
            pending = PendingApproval(
                call_id=input_id,
                tool=tool,
                arguments=values,
                reason=message,
                session_id=ctx.session_id,
                run_id=ctx.run_id,
                source=self.name,
                kind="input",
                form=schema,
            )
            await ctx.emit(pending.required_event())
            res = await svc.broker.request(pending)
            # an answer to a form reaches no further than this question
            await ctx.emit(pending.resolved_event(dataclasses.replace(res, scope="once")))
            if res.decision != "allow":
                return "decline", None
            return "accept", res.edited_arguments if res.edited_arguments is not None else values

        return ask

    async def _decide(
        self,
        ctx: RunContext,
        tool: Tool,
        call_id: str,
        args: dict[str, Any],
        validated: dict[str, Any],
        was: _Evidence | None = None,
    ) -> _Decision:
        """Decide a call under the current rules, asking a person when they say so.

        An edit a person makes is a new call: it is judged again (a deny rule wins, an ask
        rule asks again with the edit shown). On resume, ``was`` is what the log says: a
        recorded decision is not reused, and a call that started without a result is never
        run again silently (unless its tool is idempotent).
        """
        from workbench.approvals import PendingApproval, rules_for_decision

        svc = ctx.services
        verdict = self._verdict(ctx, tool, validated)
        interrupted = was is not None and was.started and not tool.idempotent
        if verdict.decision == "allow" and not interrupted:
            return _Decision(True, args)
        if verdict.decision == "deny":
            await ctx.emit(
                ApprovalResolved(
                    call_id=call_id,
                    tool=tool.name,
                    decision="deny",
                    note=verdict.reason,
                    decided_by="policy",
                )
            )
            return _Decision(False, args, verdict.reason)
        reason = verdict.reason
        if interrupted:
            reason = (
                "this call started before its process stopped and left no result: it may "
                f"already have run. Run it again? (the rules say: {verdict.reason})"
            )
        elif was is not None and was.recorded is not None:
            rec = was.recorded
            how = " with edited arguments" if rec.edited_arguments is not None else ""
            reason = (
                f"{verdict.reason} (before the process stopped, the log says "
                f"{rec.decided_by} {_PAST[rec.decision]} it{how}; a log is not a decision "
                "here)"
            )
        arguments, asked = args, verdict
        while True:
            preview = await self._preview(ctx, tool, arguments)
            pending = PendingApproval(
                call_id=call_id,
                tool=tool.name,
                arguments=arguments,
                reason=reason,
                parts=list(asked.parts),
                diff=preview.diff if preview else None,
                session_id=ctx.session_id,
                run_id=ctx.run_id,
                source=self.name,
                verdict=asked,
                match_on=tool.match_on,
                interrupted=interrupted,
            )
            # on disk before anyone is asked: it survives a restart
            await ctx.emit(pending.required_event(), durable=True)
            res = await svc.broker.request(pending)
            if res.decision != "allow" or res.edited_arguments is None:
                break
            # An edit is a new call: it goes through the rules like one.
            edited = res.edited_arguments
            try:
                again = self._verdict(ctx, tool, tool.validate(edited))
            except ToolError as exc:
                note = f"edited arguments are invalid: {exc}"
                await self._resolved(ctx, pending, "deny", note, edited, res.decided_by)
                return _Decision(False, args, note)
            if again.decision == "deny":
                note = f"the edited call is denied: {again.reason}"
                await self._resolved(ctx, pending, "deny", note, edited, "policy")
                return _Decision(False, args, note)
            arguments, asked = edited, again
            if again.decision == "ask" and again.rule is not None and again.rule.decision == "ask":
                # The person decided on the call as they were shown it; an ask rule wants
                # the edited call shown as it will run, and decided again.
                note = f"the edited call asks again: {again.reason}"
                await self._resolved(ctx, pending, "allow", note, edited, res.decided_by)
                reason = f"{res.decided_by} edited the arguments; {again.reason}"
                interrupted = False
                continue
            break
        saved: list[Rule] = []
        if res.decision == "allow" and res.scope != "once":
            saved = rules_for_decision(
                tool.name, tool.match_on, _judged(arguments), asked, res.scope, root=svc.root
            )
            svc.save_rules(ctx.session_id, saved, res.scope)
        await ctx.emit(pending.resolved_event(res, saved))
        return _Decision(res.decision == "allow", arguments, res.note)

    def _verdict(self, ctx: RunContext, tool: Tool, validated: dict[str, Any]) -> Verdict:
        svc = ctx.services
        return svc.policy.evaluate(
            tool.name,
            tool.match_on,
            _judged(validated),
            svc.saved_rules(ctx.session_id),
            root=svc.root,
        )

    async def _preview(
        self, ctx: RunContext, tool: Tool, arguments: dict[str, Any]
    ) -> ApprovalPreview | None:
        """The call's preview (a diff), computed off the event loop: it reads files."""
        tctx = ToolContext(
            workspace_root=ctx.services.root,
            session_id=ctx.session_id,
            run_id=ctx.run_id,
            agent=self.name,
        )
        return await asyncio.to_thread(tool.preview, arguments, tctx)

    async def _resolved(
        self,
        ctx: RunContext,
        pending: PendingApproval,
        decision: Literal["allow", "deny"],
        note: str,
        edited: dict[str, Any],
        decided_by: str,
    ) -> None:
        from workbench.approvals import Resolution

        resolution = Resolution(decision, note=note, edited_arguments=edited, decided_by=decided_by)
        await ctx.emit(pending.resolved_event(resolution))

    # -- context budget ----------------------------------------------------------------

    async def _fit_context(self, ctx: RunContext, messages: list[Message]) -> list[Message]:
        window = self.context_window or self.model.context_window
        if not window:
            return messages
        budget = int(window * 0.85)
        before = estimate_tokens(messages)
        if before <= budget:
            return messages
        start = 1 if messages and messages[0].get("role") == "system" else 0
        # Cut only at user messages so no tool result is separated from its call.
        cuts = [i for i, m in enumerate(messages) if i > start and m.get("role") == "user"]
        cut = None
        for i in cuts:
            if estimate_tokens(messages[:start] + messages[i:]) + 200 <= budget:
                cut = i
                break
        if cut is None:
            cut = cuts[-1] if cuts else None
        if cut is None or cut <= start:
            raise RunError(
                f"the conversation needs about {before} tokens but the context window is {window}",
                hint="shorten the input or set a larger context_window for this agent",
            )
        folded = messages[start:cut]
        transcript = "\n".join(
            f"{m.get('role')}: {m.get('content') or json.dumps(m.get('tool_calls'))}"
            for m in folded
        )
        turn = await self.model.complete(
            [
                {
                    "role": "system",
                    "content": "Summarise this conversation so it can continue without it. "
                    "Keep facts, decisions, names, numbers and open questions.",
                },
                {"role": "user", "content": transcript[-max(4000, budget * 3) :]},
            ]
        )
        ctx.add_usage(turn.usage, turn.cost)
        summary = turn.text.strip() or "(empty summary)"
        note = {"role": "user", "content": f"(Summary of the earlier conversation)\n{summary}"}
        fitted = messages[:start] + [note] + messages[cut:]
        await ctx.emit(
            ContextSummarized(
                turns=len(folded),
                summary=summary,
                tokens_before=before,
                tokens_after=estimate_tokens(fitted),
            )
        )
        return fitted

    # -- resume ------------------------------------------------------------------------

    def _restore(
        self,
        prior: Sequence[Event],
        messages: list[Message],
        evidence: dict[str, _Evidence],
        done: dict[str, ToolResult],
    ) -> int:
        """Rebuild the conversation of an interrupted run from its events, and what they say
        about the calls that have no result (evidence for deciding them again)."""
        rounds = 0
        # A batch's media follow all its results (a user message may not split them).
        batch_media: list[tuple[str, str, Sequence[ToolMedia]]] = []
        for ev in prior:
            if batch_media and isinstance(ev, MessageCompleted | ContextSummarized):
                shown = _media_message(batch_media, self.model.accepts)
                if shown is not None:
                    messages.append(shown)
                batch_media = []
            if isinstance(ev, MessageCompleted):
                if ev.role == "assistant":
                    if ev.tool_calls:
                        rounds += 1
                    # What follows belongs to this turn's calls: models reuse call ids from
                    # turn to turn (call_0 every time), so an earlier turn's result or
                    # tool.call says nothing about this one's.
                    done.clear()
                    evidence.clear()
                    messages.append(_assistant_from_event(ev))
                else:
                    messages.append({"role": ev.role, "content": ev.content})
            elif isinstance(ev, ToolResult):
                done[ev.call_id] = ev
                messages.append(_tool_message(ev))
                if ev.media:
                    batch_media.append((ev.tool, ev.call_id, ev.media))
            elif isinstance(ev, ApprovalResolved):
                evidence.setdefault(ev.call_id, _Evidence()).recorded = ev
            elif isinstance(ev, ToolCall):
                evidence.setdefault(ev.call_id, _Evidence()).started = True
            elif isinstance(ev, ContextSummarized):
                start = 1 if messages and messages[0].get("role") == "system" else 0
                del messages[start : start + ev.turns]
                messages.insert(
                    start,
                    {
                        "role": "user",
                        "content": f"(Summary of the earlier conversation)\n{ev.summary}",
                    },
                )
        return rounds


# -- helpers ---------------------------------------------------------------------------


_PAST = {"allow": "allowed", "deny": "denied"}


def _judged(arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments as rules judge them (paths as text)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in arguments.items()}


def _parse_args(text: str) -> dict[str, Any]:
    if not text or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"__raw__": text}
    return value if isinstance(value, dict) else {"__raw__": text}


def _assistant_message(turn: ModelTurn) -> Message:
    msg: Message = {"role": "assistant", "content": turn.text or None}
    if turn.tool_calls:
        msg["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments or "{}"},
            }
            for c in turn.tool_calls
        ]
    return msg


def _assistant_from_event(ev: MessageCompleted) -> Message:
    msg: Message = {"role": "assistant", "content": ev.content or None}
    if ev.tool_calls:
        msg["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {
                    "name": ToolNames.encode(c.tool),
                    "arguments": json.dumps(c.arguments),
                },
            }
            for c in ev.tool_calls
        ]
    return msg


def _tool_message(ev: ToolResult) -> Message:
    content = ev.output if ev.error is None else f"Error: {ev.error}"
    return {"role": "tool", "tool_call_id": ev.call_id, "content": content or ""}


def _media(out: ToolOutput | None) -> list[Any]:
    return list(out.media) if out is not None else []


def _media_message(
    results: Sequence[tuple[str, str, Sequence[ToolMedia]]], accepts: Any
) -> Message | None:
    """The images and sounds of a tool batch as a user message of content parts, for a
    model that accepts them (providers take media in user messages, not in tool results);
    ``None`` when there are none it accepts. The tool results name them either way."""
    parts: list[dict[str, Any]] = []
    for tool, call_id, media in results:
        kept = [m for m in media if accepts(m.kind) and _part(m) is not None]
        if not kept:
            continue
        parts.append({"type": "text", "text": f"(returned by {tool}, call {call_id})"})
        parts.extend(p for m in kept if (p := _part(m)) is not None)
    if not parts:
        return None
    return {"role": "user", "content": parts}


_AUDIO_FORMATS = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mpeg": "mp3", "audio/mp3": "mp3"}


def _part(m: ToolMedia) -> dict[str, Any] | None:
    """One medium as an OpenAI content part (``None``: a format providers do not take)."""
    if m.kind == "image":
        return {"type": "image_url", "image_url": {"url": f"data:{m.mime_type};base64,{m.data}"}}
    fmt = _AUDIO_FORMATS.get(m.mime_type.lower())
    if fmt is None:
        return None
    return {"type": "input_audio", "input_audio": {"data": m.data, "format": fmt}}


def _form_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    """The starting values of an elicitation form: each field's default, else ``None``
    (so a person editing the values sees every field to fill in)."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict):
        return {}
    return {k: v.get("default") if isinstance(v, dict) else None for k, v in props.items()}


def _progress_reporter(ctx: RunContext, call_id: str, tool: str) -> Any:
    """``ToolContext.progress`` for one call: ``tool.progress`` events, at most one per
    :data:`_PROGRESS_EVERY` seconds (a finished count always goes)."""
    import time

    last = 0.0

    async def report(progress: float, total: float | None, message: str | None) -> None:
        nonlocal last
        now = time.monotonic()
        done = total is not None and progress >= total
        if now - last < _PROGRESS_EVERY and not done:
            return
        last = now
        await ctx.emit(
            ToolProgress(
                call_id=call_id, tool=tool, progress=progress, total=total, message=message
            )
        )

    return report


def _pending_calls(messages: list[Message], done: dict[str, ToolResult]) -> list[TurnToolCall]:
    """Tool calls of the last assistant turn that have no result yet (after a crash)."""
    for m in reversed(messages):
        if m.get("role") == "assistant":
            return [
                TurnToolCall(
                    id=tc["id"], name=tc["function"]["name"], arguments=tc["function"]["arguments"]
                )
                for tc in m.get("tool_calls") or []
                if tc["id"] not in done
            ]
        if m.get("role") == "user":
            return []
    return []


def history_from_events(events: Sequence[EventBase]) -> list[Message]:
    """The conversation of a session's top-level runs, as the next run's history."""
    messages: list[Message] = []
    for ev in events:
        if ev.parent_run_id is not None:
            continue
        if isinstance(ev, MessageCompleted):
            if ev.role == "assistant":
                messages.append(_assistant_from_event(ev))
            elif ev.role == "user":
                messages.append({"role": "user", "content": ev.content})
        elif isinstance(ev, ToolResult):
            messages.append(_tool_message(ev))
        elif isinstance(ev, ContextSummarized):
            folded = 0
            while messages and folded < ev.turns:
                messages.pop(0)
                folded += 1
            messages.insert(
                0,
                {"role": "user", "content": f"(Summary of the earlier conversation)\n{ev.summary}"},
            )
    # A run that died mid-batch leaves calls without results; the model needs every call answered.
    answered = {m.get("tool_call_id") for m in messages if m.get("role") == "tool"}
    out: list[Message] = []
    for m in messages:
        out.append(m)
        for tc in m.get("tool_calls") or []:
            if tc["id"] not in answered:
                out.append(
                    {"role": "tool", "tool_call_id": tc["id"], "content": "Error: interrupted"}
                )
    return out


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


def _schema_of(schema: type[BaseModel] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema, dict):
        return schema
    return schema.model_json_schema()


def _validate_output(text: str, schema: type[BaseModel] | dict[str, Any]) -> tuple[Any, str | None]:
    raw = text.strip()
    m = _FENCE.match(raw)
    if m:
        raw = m.group(1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at position {exc.pos})"
    if isinstance(schema, dict):
        from workbench.jsonschema import validate_json_schema

        problem = validate_json_schema(value, schema)
        return (value, None) if problem is None else (None, problem)
    try:
        return schema.model_validate(value).model_dump(mode="json"), None
    except ValidationError as exc:
        return None, "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
