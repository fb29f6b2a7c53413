"""Teams: agents (or other teams) working together under a leader, in one of six modes.

:func:`build_team` makes a :class:`Team` from the workspace's ``teams:`` table;
:meth:`Team.execute` runs it inside the team's run context (the engine wraps it in
:func:`~workbench.runtime.run_lifecycle`). Every member run, and every model call of the
leader or the judge, is a child run of the team (``parent_run_id`` is the team's run), so
each has its own transcript. A ``team.delegated`` event naming the child's run id comes
before each member run.

Modes (:data:`~workbench.workspace.TeamMode`):

``route``
    The leader picks one member (JSON ``{"member": ...}``, checked against the member
    names); that member's answer is the team's answer.
``coordinate``
    The leader gets one tool per member, ``delegate.<member>(task)``, delegates subtasks
    (several in one turn run concurrently), may delegate again after reading the results,
    and writes the final answer. ``max_rounds`` bounds its rounds of delegation.
``broadcast``
    Every member gets the task at once; the leader combines their answers.
``sequential``
    Members in order, each one's output the next one's input; the last output is the answer.
``leader_follower``
    The leader writes a plan (JSON ``{"subtasks": [{"member", "task"}]}``, validated, with
    one corrective retry through the agent's output schema); each follower gets its own
    subtask, not the original input; the leader writes the result from theirs.
``consensus``
    Rounds in which every member states a position concurrently (``team.vote``); the team
    stops when all agree or after ``max_rounds``; the judge (else the leader) writes the
    final answer from the positions in member order, never in the order they finished.

A member that fails, or that ends without an answer (a cancelled approval, for one), is
reported to the leader with its error text, and the other members' results are kept.
Cancelling the team cancels every member: members run in task groups, and cancellation
propagates through them to each member's run, which ends with ``run.cancelled``.

Delegation tools are the team's own machinery, not user tools, so they must never wait
for a person. The approval policy is read by the agent from ``ctx.services.policy``; the
leader's run therefore gets its own :class:`LeaderServices`: the engine in every respect
but the policy, which is the workspace's policy with one exception, the leader's
``delegate.*`` tools, which it allows. Member runs get the team's context as parent and so
the engine itself: nothing a member does escapes the workspace's policy.

Durable runs: a child's run id is derived from the parent's run id and the child's place in
the team (:func:`child_run_id`), e.g. the member ``writer`` of round 2 of a consensus team.
A resumed team therefore asks :meth:`Engine.run_child <workbench.engine.Engine.run_child>`
for the same ids, and it returns the recorded outcome of members that completed and resumes
the interrupted ones from their own events; ``ctx.prior`` keeps the team from announcing a
delegation or a vote twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import re
from collections.abc import Awaitable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from workbench.approvals import ApprovalPolicy, Rule, Verdict
from workbench.errors import with_hint
from workbench.events import (
    Event,
    EventBase,
    MessageCompleted,
    TeamDelegated,
    TeamVote,
)
from workbench.runtime import (
    RunContext,
    RunError,
    RunOutcome,
    Services,
    child_checkpoint,
    merge_usage,
    run_lifecycle,
)
from workbench.tools import Tool, ToolContext, ToolError

if TYPE_CHECKING:
    from workbench.agent import Agent
    from workbench.approvals import ApprovalBroker
    from workbench.engine import Engine
    from workbench.workspace import AgentConfig, TeamConfig, TeamMode

__all__ = [
    "DelegateTool",
    "DelegationPolicy",
    "LeaderServices",
    "Member",
    "Team",
    "Vote",
    "build_team",
    "child_run_id",
    "parse_vote",
    "record_answer",
    "record_input",
    "run_agent_child",
    "run_concurrently",
]

T = TypeVar("T")


# -- shared with workflows ----------------------------------------------------------------


def child_run_id(parent_run_id: str, key: str) -> str:
    """The run id of a child run, derived from its parent's run id and its place in it.

    A fresh parent run id is random, so the ids of its children are unique too; a resumed
    parent derives the same ids again, which is how it finds the children it had started
    before its process died (even one that died before anything naming the child was
    stored).

    Args:
        parent_run_id: The team's or workflow's run.
        key: The child's place: ``member/writer``, ``round/2/critic``, a step path.
    """
    digest = hashlib.sha256(f"{parent_run_id}\x00{key}".encode()).hexdigest()
    return "r_" + digest[:12]


async def run_agent_child(
    engine: Engine,
    parent: RunContext,
    agent: Agent,
    input: str,
    *,
    run_id: str,
    history: Sequence[dict[str, Any]] = (),
    services: Services | None = None,
) -> RunOutcome:
    """Run an agent object (not a workspace name) as a child run of ``parent``.

    The counterpart of :meth:`Engine.run_child` for agents a team builds itself (a leader
    with delegation tools, a judge with team instructions), with the same resume rules
    (:func:`~workbench.runtime.child_checkpoint`): a child that completed in the log gives
    its recorded outcome and runs no model call; one that was interrupted continues from its
    events; one that failed or was cancelled runs again under a new id.

    Args:
        engine: The engine (its store holds earlier attempts).
        parent: The team's context.
        agent: The agent to run.
        input: Its prompt.
        run_id: The child's run id (see :func:`child_run_id`).
        history: Earlier conversation for the agent.
        services: What the child's context publishes through and asks policy of
            (default: the parent's).
    """
    recorded, prior, run_id = child_checkpoint(engine.store, parent.session_id, run_id)
    if recorded is not None:
        return recorded
    ctx = RunContext(
        services=services or parent.services,
        session_id=parent.session_id,
        run_id=run_id,
        parent_run_id=parent.run_id,
        source=agent.name,
        prior=prior,
        recording=parent.recording,
    )
    agent = agent.for_run(ctx, input)
    return await run_lifecycle(
        ctx,
        "agent",
        agent.name,
        input,
        lambda c: agent.execute(c, input, history),
        model=agent.model_label or agent.model.name,
        resumed=bool(prior),
    )


async def run_concurrently(coros: Sequence[Awaitable[T]]) -> list[T]:
    """Await every coroutine at once; results in the order given.

    A task group, so cancelling the caller cancels every one of them (and waits for them to
    end), and an error in one cancels the others. The error is raised as itself rather than
    as an exception group, so a run fails with a message a person can read.
    """

    async def _wrap(aw: Awaitable[T]) -> T:
        return await aw

    tasks: list[asyncio.Task[T]] = []
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(_wrap(c)) for c in coros]
    except BaseExceptionGroup as group:
        # The first failure in the order given, not the first to happen: deterministic.
        for t in tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                exc = t.exception()
                assert exc is not None
                raise exc from None
        raise group.exceptions[0] from None
    return [t.result() for t in tasks]


def _prior_user_message(prior: Sequence[Event]) -> bool:
    """Whether an earlier attempt of this run already recorded its input."""
    return any(isinstance(e, MessageCompleted) and e.role == "user" for e in prior)


async def record_input(ctx: RunContext, input: str) -> None:
    """Record a team's or workflow's input as a user message in its own run.

    Agents do the same, so a session that talks to a team has a conversation to show and
    to continue from (``history_from_events`` reads the top-level runs' messages).
    """
    if not _prior_user_message(ctx.prior):
        await ctx.emit(
            MessageCompleted(message_id=_message_id(ctx, "in"), role="user", content=input)
        )


async def record_answer(ctx: RunContext, output: str) -> None:
    """Record the final answer as the run's assistant message (see :func:`record_input`)."""
    await ctx.emit(
        MessageCompleted(message_id=_message_id(ctx, "out"), role="assistant", content=output)
    )


def _message_id(ctx: RunContext, what: str) -> str:
    return "m_" + hashlib.sha256(f"{ctx.run_id}/{what}".encode()).hexdigest()[:12]


# -- policy for the leader ------------------------------------------------------------------


class DelegationPolicy(ApprovalPolicy):
    """A policy that allows a set of tools outright and asks another policy about the rest.

    It shares the wrapped policy's ``default`` and ``rules`` (so anything that reads them,
    like ``workbench tools``, sees the workspace's policy), and only :meth:`evaluate`
    differs, for the named tools.
    """

    def __init__(self, inner: ApprovalPolicy, allowed: Collection[str]) -> None:
        # Not super().__init__: the rules are the inner policy's, already parsed.
        self.default = inner.default
        self.rules = inner.rules
        self.inner = inner
        """The policy for every other tool."""
        self.allowed = frozenset(allowed)
        """Tool names allowed without a rule or a person."""

    def evaluate(
        self,
        tool_name: str,
        match_on: tuple[str, str] | None,
        arguments: Mapping[str, Any],
        extra_rules: Sequence[Rule] = (),
        root: Path | None = None,
    ) -> Verdict:
        """Allow the named tools; anything else as the wrapped policy says."""
        if tool_name in self.allowed:
            return Verdict("allow", f"{tool_name} hands a task to a team member")
        return self.inner.evaluate(tool_name, match_on, arguments, extra_rules, root)


class LeaderServices:
    """What a leader's run publishes through: the engine, with the delegation tools allowed.

    Everything but :attr:`policy` is the engine's own (events, the broker, saved rules), so
    a leader's other tools still ask, and every member run (whose parent is the team's
    context, not this one) sees the workspace's policy unchanged.
    """

    def __init__(self, inner: Services, allowed: Collection[str]) -> None:
        self._inner = inner
        self.root: Path = inner.root
        """The workspace folder."""
        self.broker: ApprovalBroker = inner.broker
        """The engine's approval broker."""
        self.policy: ApprovalPolicy = DelegationPolicy(inner.policy, allowed)
        """The workspace policy, allowing the tools named in ``allowed``."""

    async def publish(self, event: EventBase, *, durable: bool = False) -> Event:
        """Store and fan out, through the engine."""
        return await self._inner.publish(event, durable=durable)

    def saved_rules(self, session_id: str) -> list[Rule]:
        """The engine's saved rules."""
        return self._inner.saved_rules(session_id)

    def save_rules(self, session_id: str, rules: Sequence[Rule], scope: str) -> None:
        """Save through the engine."""
        self._inner.save_rules(session_id, rules, scope)


# -- the team -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """A member of a team: an agent or another team of the workspace."""

    name: str
    """Its name in the workspace."""
    kind: Literal["agent", "team"]
    """Whether it is an agent or a team."""
    description: str = ""
    """What it is for (shown to the leader)."""


@dataclass(frozen=True)
class Vote:
    """A member's reply in a consensus round."""

    agree: bool
    """Whether it agrees with the other positions."""
    position: str
    """Its answer."""
    reasoning: str = ""
    """Why."""


class DelegateTool(Tool):
    """``delegate.<member>(task)``: a coordinating leader gives a member a subtask.

    The call runs the member as a child run of the team (not of the leader) through
    :meth:`Engine.run_child`, so the member's run sits beside the leader's in the run tree.
    A member that fails comes back as a tool error with its error text: the leader reads it
    and carries on.
    """

    def __init__(self, run: _TeamRun, member: Member) -> None:
        about = f" ({member.description})" if member.description else ""
        super().__init__(
            f"delegate.{member.name}",
            f"Give the team member '{member.name}'{about} a subtask; returns its answer.",
            {
                "type": "object",
                "properties": {
                    "task": {
                        "type": "string",
                        "description": "The subtask, self-contained: the member sees nothing else.",
                    }
                },
                "required": ["task"],
                "additionalProperties": False,
            },
            # A member run may take as long as it takes (it may wait for an approval).
            timeout=None,
            source=f"team {run.team.name}",
        )
        self._run = run
        self.member = member
        """The member it delegates to."""

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        task = str(arguments["task"])
        # The provider's call id, within this leader run, names the delegation: a resumed
        # leader re-issues an unanswered call with the same id and so reaches the same child.
        task_hash = hashlib.sha256(task.encode()).hexdigest()[:8]
        key = f"delegate/{ctx.run_id}/{ctx.call_id}/{self.member.name}/{task_hash}"
        outcome = await self._run.delegate(self.member, task, key)
        if not outcome.ok:
            raise ToolError(_failure_text(self.member.name, outcome))
        return outcome.output


class Team:
    """A team of the workspace, ready to run.

    Build with :func:`build_team`; the engine runs it with :meth:`execute`.
    """

    def __init__(
        self,
        engine: Engine,
        name: str,
        config: TeamConfig,
        members: Sequence[Member],
    ) -> None:
        self.engine = engine
        """The engine that runs the members."""
        self.name = name
        """The team's name in the workspace."""
        self.config = config
        """Its settings."""
        self.members: list[Member] = list(members)
        """Its members, in the order of the file."""

    @property
    def mode(self) -> TeamMode:
        """How the members work together."""
        return self.config.mode

    def __repr__(self) -> str:
        return f"<Team {self.name} {self.mode}: {', '.join(m.name for m in self.members)}>"

    async def execute(
        self, ctx: RunContext, input: str, history: Sequence[dict[str, Any]] = ()
    ) -> RunOutcome:
        """Do the team's work in its run; the caller wraps it in ``run_lifecycle``."""
        run = _TeamRun(self, ctx, history)
        await record_input(ctx, input)
        mode = self.config.mode
        if mode == "route":
            outcome = await run.route(input)
        elif mode == "coordinate":
            outcome = await run.coordinate(input)
        elif mode == "broadcast":
            outcome = await run.broadcast(input)
        elif mode == "sequential":
            outcome = await run.sequential(input)
        elif mode == "leader_follower":
            outcome = await run.leader_follower(input)
        else:
            outcome = await run.consensus(input)
        if outcome.ok:
            await record_answer(ctx, outcome.output)
        return outcome

    # -- agents the team builds -------------------------------------------------------

    def roster(self) -> str:
        """The members as the leader reads them."""
        return "\n".join(
            f"- {m.name}" + (f": {m.description}" if m.description else "") for m in self.members
        )

    async def leader(
        self,
        instructions: str,
        *,
        tools: Sequence[Tool] = (),
        output_schema: dict[str, Any] | None = None,
    ) -> Agent:
        """The leader agent for one of its jobs.

        The configured leader (an agent of the workspace, or an inline agent table; by
        default the workspace's default model), with the team's instructions and the job's
        appended to its own, and the job's tools added to its own.
        """
        cfg = self.config.leader
        if isinstance(cfg, str):
            base = await self.engine.build_agent(cfg)
        else:
            base = await _agent_from_config(self.engine, f"{self.name}.leader", cfg)
        parts = [base.instructions, self.config.instructions, instructions]
        changes: dict[str, Any] = {
            "instructions": "\n\n".join(p.strip() for p in parts if p and p.strip()),
            "tools": [*base.tools, *tools],
        }
        if output_schema is not None:
            changes["output_schema"] = output_schema
        if tools:
            # In coordinate mode the leader's tool rounds are the team's delegation rounds.
            changes["max_tool_rounds"] = self.config.max_rounds
        return dataclasses.replace(base, **changes)


class _TeamRun:
    """One execution of a team: its context, the outcomes so far, what was announced."""

    def __init__(self, team: Team, ctx: RunContext, history: Sequence[dict[str, Any]]) -> None:
        self.team = team
        self.ctx = ctx
        self.history = list(history)
        self.engine = team.engine
        self.outcomes: list[RunOutcome] = []
        self.announced = {e.child_run_id for e in ctx.prior if isinstance(e, TeamDelegated)}
        self.voted = {(e.round, e.member) for e in ctx.prior if isinstance(e, TeamVote)}

    # -- children ---------------------------------------------------------------------

    async def delegate(self, member: Member, task: str, key: str) -> RunOutcome:
        """Run ``member`` on ``task`` as a child run; never raises but for cancellation."""
        run_id = child_run_id(self.ctx.run_id, key)
        if run_id not in self.announced:
            self.announced.add(run_id)
            await self.ctx.emit(TeamDelegated(member=member.name, task=task, child_run_id=run_id))
        try:
            outcome = await self.engine.run_child(
                self.ctx, member.kind, member.name, task, run_id=run_id
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the member could not even be built: report, don't crash
            error = with_hint(str(exc), getattr(exc, "hint", None))
            outcome = RunOutcome("failed", error=error or type(exc).__name__, run_id=run_id)
        self.outcomes.append(outcome)
        return outcome

    async def lead(
        self,
        key: str,
        instructions: str,
        input: str,
        *,
        tools: Sequence[Tool] = (),
        output_schema: dict[str, Any] | None = None,
    ) -> RunOutcome:
        """Run the leader on one job as a child run; raise if it gives no answer."""
        agent = await self.team.leader(instructions, tools=tools, output_schema=output_schema)
        services = LeaderServices(self.ctx.services, [t.name for t in tools]) if tools else None
        outcome = await run_agent_child(
            self.engine,
            self.ctx,
            agent,
            input,
            run_id=child_run_id(self.ctx.run_id, key),
            history=self.history,
            services=services,
        )
        self.outcomes.append(outcome)
        if not outcome.ok:
            raise RunError(
                f"the leader of team '{self.team.name}' failed: {outcome.error or outcome.status}",
                hint=outcome.hint,
            )
        return outcome

    def finish(self, output: str) -> RunOutcome:
        """The team's outcome: the answer, and the tokens of every child run."""
        usage, cost = merge_usage(self.outcomes)
        return RunOutcome("completed", output=output, usage=usage, cost=cost)

    def member_failed(self, member: Member, outcome: RunOutcome) -> RunError:
        """The error that fails the team when a member's answer is the team's answer."""
        return RunError(
            f"team '{self.team.name}': {_failure_text(member.name, outcome)}", hint=outcome.hint
        )

    # -- modes ------------------------------------------------------------------------

    async def route(self, input: str) -> RunOutcome:
        team = self.team
        names = [m.name for m in team.members]
        pick = await self.lead(
            "leader",
            f'You lead the team "{team.name}". Choose the one member best suited to the task. '
            f"Members:\n{team.roster()}\n\n"
            'Reply with JSON only: {"member": "<member name>"}.',
            input,
            output_schema={
                "type": "object",
                "properties": {"member": {"type": "string", "enum": names}},
                "required": ["member"],
            },
        )
        chosen = _member(team, str((pick.structured or {}).get("member", "")))
        outcome = await self.delegate(chosen, input, f"member/{chosen.name}")
        if not outcome.ok:
            raise self.member_failed(chosen, outcome)
        return self.finish(outcome.output)

    async def coordinate(self, input: str) -> RunOutcome:
        team = self.team
        tools = [DelegateTool(self, m) for m in team.members]
        answer = await self.lead(
            "leader",
            f'You lead the team "{team.name}" and coordinate its members:\n{team.roster()}\n\n'
            "Give each subtask to the member best suited for it with the delegate tools, one "
            "per member. A member sees only the task you write, so make it self-contained. "
            "Delegate several subtasks at once when they do not depend on each other, and "
            "delegate again after reading the results if you need to. A failed delegation "
            "comes back as an error: work around it. Then write the final answer yourself.",
            input,
            tools=tools,
        )
        return self.finish(answer.output)

    async def broadcast(self, input: str) -> RunOutcome:
        team = self.team
        outcomes = await run_concurrently(
            [self.delegate(m, input, f"member/{m.name}") for m in team.members]
        )
        answers = "\n\n".join(
            _section(m.name, o) for m, o in zip(team.members, outcomes, strict=True)
        )
        combined = await self.lead(
            "leader",
            f'You lead the team "{team.name}". Every member was given the same task; combine '
            "their answers into one final answer. Where they disagree, say which answer you "
            "chose and why. A member that failed is marked as failed.",
            f"Task:\n{input}\n\nThe members' answers, in member order:\n\n{answers}",
        )
        return self.finish(combined.output)

    async def sequential(self, input: str) -> RunOutcome:
        team = self.team
        current = input
        for i, member in enumerate(team.members, 1):
            task = current
            if team.config.instructions.strip():
                # Without a leader the team's instructions go to every member.
                task = f"{team.config.instructions.strip()}\n\n{current}"
            outcome = await self.delegate(member, task, f"step/{i}/{member.name}")
            if not outcome.ok:
                raise self.member_failed(member, outcome)
            current = outcome.output
        return self.finish(current)

    async def leader_follower(self, input: str) -> RunOutcome:
        team = self.team
        names = [m.name for m in team.members]
        plan = await self.lead(
            "plan",
            f'You lead the team "{team.name}". Split the task into subtasks for your '
            f"followers:\n{team.roster()}\n\n"
            "Each subtask goes to one follower and must be self-contained: the follower sees "
            "only its subtask. Reply with JSON only: "
            '{"subtasks": [{"member": "<member name>", "task": "<the subtask>"}, ...]}.',
            input,
            output_schema={
                "type": "object",
                "properties": {
                    "subtasks": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "properties": {
                                "member": {"type": "string", "enum": names},
                                "task": {"type": "string", "minLength": 1},
                            },
                            "required": ["member", "task"],
                        },
                    }
                },
                "required": ["subtasks"],
            },
        )
        structured: dict[str, Any] = plan.structured or {}
        subtasks = [
            (_member(team, str(s["member"])), str(s["task"])) for s in structured["subtasks"]
        ]
        outcomes = await run_concurrently(
            [
                self.delegate(m, task, f"task/{i}/{m.name}")
                for i, (m, task) in enumerate(subtasks, 1)
            ]
        )
        results = "\n\n".join(
            _section(f"{m.name}: {task}", o)
            for (m, task), o in zip(subtasks, outcomes, strict=True)
        )
        result = await self.lead(
            "result",
            f'You lead the team "{team.name}". Your followers worked on the subtasks of your '
            "plan. Write the final answer to the task from their results. A follower that "
            "failed is marked as failed.",
            f"Task:\n{input}\n\nResults of the subtasks, in plan order:\n\n{results}",
        )
        return self.finish(result.output)

    async def consensus(self, input: str) -> RunOutcome:
        team = self.team
        max_rounds = team.config.max_rounds
        last: list[tuple[Member, RunOutcome, Vote | None]] = []
        agreed = False
        rnd = 0
        for rnd in range(1, max_rounds + 1):
            prompt = _consensus_prompt(team.name, input, rnd, max_rounds, last)
            outcomes = await run_concurrently(
                [self.delegate(m, prompt, f"round/{rnd}/{m.name}") for m in team.members]
            )
            last = []
            # Votes are announced in member order once the round is over, so the log reads
            # the same however the members raced.
            for m, o in zip(team.members, outcomes, strict=True):
                vote = parse_vote(o.output) if o.ok else None
                last.append((m, o, vote))
                if vote is not None and (rnd, m.name) not in self.voted:
                    self.voted.add((rnd, m.name))
                    await self.ctx.emit(
                        TeamVote(
                            member=m.name,
                            round=rnd,
                            agree=vote.agree,
                            position=vote.position,
                            reasoning=vote.reasoning,
                        )
                    )
            if all(v is not None and v.agree for _, _, v in last):
                agreed = True
                break
        verdict = "agreed" if agreed else "did not agree"
        positions = "\n\n".join(_position(m, o, v) for m, o, v in last)
        ask = (
            f'Task:\n{input}\n\nThe members of team "{team.name}" {verdict} after {rnd} '
            f"round(s). Their final positions, in member order:\n\n{positions}\n\n"
            "Write the final answer."
        )
        judge = team.config.judge
        if judge is not None:
            run_id = child_run_id(self.ctx.run_id, "judge")
            outcome = await self.engine.run_child(self.ctx, "agent", judge, ask, run_id=run_id)
            self.outcomes.append(outcome)
            if not outcome.ok:
                raise RunError(
                    f"the judge of team '{team.name}' failed: {outcome.error or outcome.status}",
                    hint=outcome.hint,
                )
            return self.finish(outcome.output)
        final = await self.lead(
            "leader",
            f'You lead the team "{team.name}", whose members discussed a task in rounds. '
            "Settle it: write the final answer from their final positions.",
            ask,
        )
        return self.finish(final.output)


# -- building -----------------------------------------------------------------------------


async def build_team(engine: Engine, name: str) -> Team:
    """The team ``name`` of the engine's workspace.

    Raises:
        RunError: no such team.
    """
    ws = engine.workspace
    config = ws.teams.get(name)
    if config is None:
        raise RunError(
            f"no team named '{name}'",
            hint=f"the workspace has: {', '.join(ws.teams) or 'no teams'}",
        )
    members: list[Member] = []
    for m in config.members:
        if m in ws.teams:
            members.append(Member(m, "team", ws.teams[m].description))
        elif m in ws.agents:
            members.append(Member(m, "agent", ws.agents[m].description))
        else:  # the workspace checks this when it loads; a hand-built one may not
            raise RunError(f"team '{name}': no agent or team named '{m}'")
    return Team(engine, name, config, members)


async def _agent_from_config(engine: Engine, name: str, cfg: AgentConfig | None) -> Agent:
    """An agent from an inline agent table (or the default model, with no table)."""
    from workbench.workspace import AgentConfig

    return await engine.agent_from_config(name, cfg or AgentConfig())


# -- text ---------------------------------------------------------------------------------


def _member(team: Team, name: str) -> Member:
    for m in team.members:
        if m.name == name:
            return m
    # The output schema's enum makes this unreachable unless the leader's schema was bypassed.
    raise RunError(f"team '{team.name}': the leader chose '{name}', who is not a member")


def _failure_text(name: str, outcome: RunOutcome) -> str:
    if outcome.status == "cancelled":
        return f"member '{name}' stopped without an answer (cancelled)"
    hint = f" (hint: {outcome.hint})" if outcome.hint else ""
    return f"member '{name}' failed: {outcome.error or 'no answer'}{hint}"


def _section(title: str, outcome: RunOutcome) -> str:
    if outcome.ok:
        return f"### {title}\n{outcome.output}"
    return f"### {title} (failed)\n{_failure_text(title.split(':', 1)[0], outcome)}"


def _position(member: Member, outcome: RunOutcome, vote: Vote | None) -> str:
    if vote is None:
        return f"### {member.name} (failed)\n{_failure_text(member.name, outcome)}"
    stance = "agrees" if vote.agree else "disagrees"
    why = f"\nReasoning: {vote.reasoning}" if vote.reasoning else ""
    return f"### {member.name} ({stance})\n{vote.position}{why}"


_VOTE_FORMAT = (
    'Reply with JSON only: {"agree": true or false, "position": "<your answer>", '
    '"reasoning": "<why, briefly>"}.'
)


def _consensus_prompt(
    team: str,
    input: str,
    rnd: int,
    max_rounds: int,
    last: Sequence[tuple[Member, RunOutcome, Vote | None]],
) -> str:
    head = f'{input}\n\n(Team "{team}", consensus round {rnd} of {max_rounds}.)'
    if not last:
        return (
            f"{head}\nState your position on the task. Set agree to true if you are "
            f"confident in it as it stands. {_VOTE_FORMAT}"
        )
    positions = "\n\n".join(_position(m, o, v) for m, o, v in last)
    return (
        f"{head}\nThe positions of round {rnd - 1}, in member order:\n\n{positions}\n\n"
        "Do you agree with them? Set agree to true if you accept them as one answer, and "
        f"give as position the answer you support. {_VOTE_FORMAT}"
    )


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)
_DISAGREE = re.compile(r"\b(disagree|do not agree|don't agree|not agree|no)\b", re.I)
_AGREE = re.compile(r"\b(agree|agreed|yes|concur)\b", re.I)


def parse_vote(text: str) -> Vote:
    """A member's consensus reply as a :class:`Vote`, tolerantly.

    JSON ``{agree, position, reasoning}`` is read first, also inside a code fence or amid
    other text; ``agree`` may be a boolean or a word (``"yes"``). Anything else is a
    position as written, agreeing only if it says so in words ("I agree") without saying
    the opposite.
    """
    for candidate in _json_objects(text):
        if "position" in candidate or "agree" in candidate:
            position = candidate.get("position")
            if position is None:
                position = text.strip()
            elif not isinstance(position, str):
                position = json.dumps(position, ensure_ascii=False)
            return Vote(
                agree=_truthy(candidate.get("agree")),
                position=position,
                reasoning=str(candidate.get("reasoning") or ""),
            )
    stripped = text.strip()
    agree = bool(_AGREE.search(stripped)) and not _DISAGREE.search(stripped)
    return Vote(agree=agree, position=stripped)


def _json_objects(text: str) -> list[dict[str, Any]]:
    """JSON objects in a reply: the whole text, fenced blocks, then any ``{...}`` in it."""
    found: list[dict[str, Any]] = []
    candidates = [text.strip(), *(m.group(1).strip() for m in _FENCE.finditer(text))]
    decoder = json.JSONDecoder()
    for c in candidates:
        try:
            value = json.loads(c)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            found.append(value)
    for i, ch in enumerate(text):
        if ch == "{":
            try:
                value, _ = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                found.append(value)
    return found


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in {"true", "yes", "agree", "agreed", "y", "1"}
    if isinstance(value, int | float):
        return value != 0
    return False
