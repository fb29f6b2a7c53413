"""``GET /metrics``: Prometheus text format (version 0.0.4), written by hand.

Counters and histograms are kept from the events this process's engine publishes, so each
server reports its own work (Prometheus sums over instances). Gauges that describe the
whole deployment (runs by state, pending approvals) are read from the shared database at
scrape time.

Model-call latency is measured from the events: from the last event of a run before the
model was asked (its start, a tool result, a decision) to the assistant message that
answered. It includes streaming, which is what a person waits for.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

from workbench.events import (
    ApprovalResolved,
    Event,
    MessageCompleted,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunStarted,
)

__all__ = ["CONTENT_TYPE", "Histogram", "Metrics", "escape_label"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The media type Prometheus scrapes."""

RUN_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
MODEL_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

_IGNORED_FOR_MODEL_CLOCK = frozenset({"message.delta", "model.retry", "context.summarized"})


def escape_label(value: str) -> str:
    """A label value as the text format wants it (backslash, quote and newline escaped)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    inner = ",".join(f'{n}="{escape_label(v)}"' for n, v in zip(names, values, strict=True))
    return "{" + inner + "}"


def _num(x: float) -> str:
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(float(x))


class Histogram:
    """A Prometheus histogram with fixed buckets, one series per label set.

    Args:
        name: The metric name.
        help: Its help text.
        labels: Label names.
        buckets: Upper bounds, ascending (``+Inf`` is added).
    """

    def __init__(
        self, name: str, help: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self.name = name
        self.help = help
        self.labels = tuple(labels)
        self.buckets = tuple(sorted(buckets))
        self._series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, value: float, *label_values: str) -> None:
        """Count one observation."""
        counts, total = self._series.setdefault(
            tuple(label_values), ([0] * (len(self.buckets) + 1), [0.0])
        )
        counts[bisect.bisect_left(self.buckets, value)] += 1
        total[0] += value

    def render(self) -> Iterable[str]:
        """The lines of the text format."""
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for values, (counts, total) in sorted(self._series.items()):
            cumulative = 0
            for bound, n in zip((*self.buckets, math.inf), counts, strict=True):
                cumulative += n
                lab = _labels((*self.labels, "le"), (*values, _num(bound)))
                yield f"{self.name}_bucket{lab} {cumulative}"
            lab = _labels(self.labels, values)
            yield f"{self.name}_sum{lab} {_num(total[0])}"
            yield f"{self.name}_count{lab} {cumulative}"


class Metrics:
    """Counters and histograms fed by the engine's events."""

    def __init__(self) -> None:
        self.tool_calls: defaultdict[tuple[str, str], int] = defaultdict(int)
        """(tool, decision) -> calls; decision is ``auto`` (policy allowed), ``allow`` or ``deny``."""
        self.tokens: defaultdict[tuple[str, str], int] = defaultdict(int)
        """(model, prompt|completion) -> tokens."""
        self.cost: defaultdict[str, float] = defaultdict(float)
        """model -> USD."""
        self.events: defaultdict[str, int] = defaultdict(int)
        """event type -> events published."""
        self.run_seconds = Histogram(
            "workbench_run_duration_seconds",
            "Wall time of finished runs.",
            ("kind", "status"),
            RUN_BUCKETS,
        )
        self.model_seconds = Histogram(
            "workbench_model_call_duration_seconds",
            "Time from asking a model to its complete answer.",
            ("model",),
            MODEL_BUCKETS,
        )
        self._kind: dict[str, str] = {}
        self._clock: dict[str, float] = {}
        self._approved: set[tuple[str, str]] = set()

    def feed(self, event: Event) -> None:
        """Account for one published event."""
        self.events[event.type] += 1
        rid = event.run_id
        if isinstance(event, RunStarted):
            self._kind[rid] = event.target_kind
        elif isinstance(event, RunCompleted | RunFailed | RunCancelled):
            status = event.type.removeprefix("run.")
            kind = self._kind.pop(rid, "unknown")
            self._clock.pop(rid, None)
            self.run_seconds.observe(event.duration_ms / 1000, kind, status)
            return
        elif isinstance(event, MessageCompleted) and event.role == "assistant":
            model = event.model or "unknown"
            started = self._clock.get(rid)
            if started is not None:
                self.model_seconds.observe(max(0.0, event.ts - started), model)
            if event.usage is not None:
                self.tokens[(model, "prompt")] += event.usage.prompt_tokens
                self.tokens[(model, "completion")] += event.usage.completion_tokens
            if event.cost is not None:
                self.cost[model] += event.cost
        elif isinstance(event, ApprovalResolved):
            if event.decision == "deny":
                self.tool_calls[(event.tool, "deny")] += 1
            else:
                self._approved.add((rid, event.call_id))
        elif event.type == "tool.call":
            key = (rid, getattr(event, "call_id", ""))
            decision = "allow" if key in self._approved else "auto"
            self._approved.discard(key)
            self.tool_calls[(getattr(event, "tool", ""), decision)] += 1
        if event.type not in _IGNORED_FOR_MODEL_CLOCK:
            self._clock[rid] = event.ts

    def render(
        self,
        runs_by_state: dict[str, int],
        pending_approvals: int,
        sse_clients: int,
        sse_overflows: int = 0,
    ) -> str:
        """The whole exposition.

        Args:
            runs_by_state: Run counts per status, from the database.
            pending_approvals: Tool calls waiting on a decision, from the database.
            sse_clients: Event streams open on this process.
            sse_overflows: Times a stream's client fell behind and read the store.
        """
        out: list[str] = []

        def metric(name: str, kind: str, help: str, rows: Iterable[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{lab} {_num(v)}" for lab, v in rows)

        states = ("running", "waiting", "completed", "failed", "cancelled", "interrupted")
        counts = {s: runs_by_state.get(s, 0) for s in states} | runs_by_state
        metric(
            "workbench_runs",
            "gauge",
            "Runs by state, in the whole database.",
            ((_labels(("state",), (s,)), n) for s, n in sorted(counts.items())),
        )
        metric(
            "workbench_pending_approvals",
            "gauge",
            "Tool calls waiting on a decision, in the whole database.",
            [("", pending_approvals)],
        )
        metric(
            "workbench_tool_calls_total",
            "counter",
            "Tool calls by tool and decision (auto: the policy allowed it).",
            ((_labels(("tool", "decision"), k), n) for k, n in sorted(self.tool_calls.items())),
        )
        metric(
            "workbench_tokens_total",
            "counter",
            "Tokens by model and direction.",
            ((_labels(("model", "type"), k), n) for k, n in sorted(self.tokens.items())),
        )
        metric(
            "workbench_cost_usd_total",
            "counter",
            "Cost in USD by model, where the price is known.",
            ((_labels(("model",), (m,)), c) for m, c in sorted(self.cost.items())),
        )
        metric(
            "workbench_events_total",
            "counter",
            "Events published by this process, by type.",
            ((_labels(("type",), (t,)), n) for t, n in sorted(self.events.items())),
        )
        metric(
            "workbench_sse_clients",
            "gauge",
            "Event streams open on this process.",
            [("", sse_clients)],
        )
        metric(
            "workbench_sse_catchups_total",
            "counter",
            "Times an event stream's client fell behind and caught up from the store.",
            [("", sse_overflows)],
        )
        out.extend(self.run_seconds.render())
        out.extend(self.model_seconds.render())
        return "\n".join(out) + "\n"
