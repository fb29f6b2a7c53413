"""One session of the code-review sample's `ops` agent: MCP time, files, shell and knowledge
tools, each call allowed, asked about or refused exactly as the sample's rules say."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.openai_server import FakeOpenAI, Reply
from workbench.approvals import PendingApproval, Resolution
from workbench.engine import Engine
from workbench.events import ApprovalRequired, ApprovalResolved, Event, ToolCall, ToolResult

SAMPLE = Path(__file__).resolve().parent.parent / "sample_workspaces" / "code-review"


async def test_ops_agent_uses_mcp_files_shell_and_knowledge_under_the_rules(
    tmp_path: Path, db_url: str
) -> None:
    ws = tmp_path / "code-review"
    shutil.copytree(SAMPLE, ws, ignore=shutil.ignore_patterns("sessions", ".workbench"))
    async with FakeOpenAI() as srv:
        text = (ws / "workbench.yaml").read_text()
        (ws / "workbench.yaml").write_text(
            text.replace(
                "  default: test\n",
                f'  default: {{model: openai/fake, api_base: "{srv.base_url}", api_key: x}}\n',
            )
        )
        srv.push(
            Reply(
                tool_calls=[
                    ("time__get_current_time", {"timezone": "UTC"}),
                    ("files__read", {"path": "repo/inventory/stock.py"}),
                    ("knowledge__search", {"query": "reorder"}),
                ]
            ),
            Reply(
                tool_calls=[
                    (
                        "files__write",
                        {"path": "notes.md", "content": "needs_reorder is off by one\n"},
                    ),
                    ("shell__run", {"cmd": "git status; rm -rf repo"}),
                    ("shell__run", {"cmd": "python -m pytest -q repo"}),
                    ("shell__run", {"cmd": "ls repo"}),
                ]
            ),
            Reply(text="Noted the bug in notes.md."),
        )
        asked: list[PendingApproval] = []

        def person(p: PendingApproval) -> Resolution:
            asked.append(p)
            if p.tool == "files.write":
                return Resolution(decision="allow", scope="once")
            return Resolution(decision="deny", note="not that")

        async with Engine.open(ws, db_url) as engine:
            engine.broker.auto_decider = person
            seen: list[Event] = []
            engine.add_listener(seen.append)
            outcome = await engine.run("ops", "What is wrong with needs_reorder? Take a note.")
    assert outcome.ok, outcome.error

    results = {(e.tool, str(e.call_id)): e for e in seen if isinstance(e, ToolResult)}
    by_tool: dict[str, list[ToolResult]] = {}
    for r in results.values():
        by_tool.setdefault(r.tool, []).append(r)
    ran = [e.tool + ":" + str(e.arguments.get("cmd", "")) for e in seen if isinstance(e, ToolCall)]

    # Allowed by rule, never asked: MCP time (a real mcp-server-time), files.read, knowledge.
    assert '"timezone": "UTC"' in (by_tool["time.get_current_time"][0].output or "")
    assert "def needs_reorder" in (by_tool["files.read"][0].output or "")
    assert "needs_reorder" in (by_tool["knowledge.search"][0].output or "")
    # Asked, with the diff, and allowed by the person: the file exists.
    required = [e for e in seen if isinstance(e, ApprovalRequired)]
    write_ask = next(e for e in required if e.tool == "files.write")
    assert write_ask.diff and "+needs_reorder is off by one" in write_ask.diff
    assert (ws / "notes.md").read_text() == "needs_reorder is off by one\n"
    # A chained command with a denied part is refused by policy: nobody is asked, nothing runs.
    refused = [e for e in seen if isinstance(e, ApprovalResolved) and e.decided_by == "policy"]
    assert len(refused) == 1 and "rm" in (refused[0].note or "")
    assert not any("rm -rf" in c for c in ran)
    assert (ws / "repo" / "inventory" / "stock.py").exists()
    # The exact allowed command runs (the sample's deliberate bug fails a test).
    pytest_run = next(
        r
        for r in by_tool["shell.run"]
        if "passed" in (r.output or "") or "failed" in (r.output or "")
    )
    assert "1 failed" in (pytest_run.output or "")
    # A command no rule covers is asked about; the person refused it, so it never ran.
    assert {p.tool for p in asked} == {"files.write", "shell.run"}
    ls_ask = next(p for p in asked if p.tool == "shell.run")
    assert ls_ask.arguments == {"cmd": "ls repo"} and "ls repo" in ls_ask.reason
    assert "shell.run:ls repo" not in ran
    assert any("not that" in (r.error or "") for r in by_tool["shell.run"])
