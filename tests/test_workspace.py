"""workbench.yaml -> Workspace: the valid shape, every mistake located, the expressions."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from workbench.workspace import (
    AgentConfig,
    ConditionNode,
    Expression,
    ExpressionError,
    LoopNode,
    ModelSpec,
    ParallelNode,
    RouterNode,
    StepNode,
    Workspace,
    WorkspaceError,
    compile_expression,
    diff_workspaces,
    is_function_ref,
    load_workspace,
    split_approval_rule,
)

KNOWN = {"files", "shell", "calculator", "http", "web", "time"}

TOOLS_PY = """\
def word_count(text: str) -> int:
    return len(text.split())


def pick(state):
    return "short"


def is_long(ctx):
    return True
"""

FULL = """\
models:
  default: anthropic/claude-sonnet-4-5
  local:
    model: openai/qwen3
    api_base: "http://127.0.0.1:8000/v1"
    api_key: "${WB_TEST_KEY}"
    extra_headers: { X-Team: "${WB_TEST_MISSING}" }
    temperature: 0.2
    max_tokens: 512
    timeout: 20
    context_window: 32000
  offline: test
agents:
  researcher:
    model: local
    instructions: Find sources and summarise them.
    description: Finds things.
    tools: [web.search, knowledge.search, time.*, "mytools:word_count", github.*]
    max_tool_rounds: 4
    context_window: 16000
    temperature: 0.5
  writer: { model: default, instructions: Write the final answer. }
  critic: { model: openai/gpt-4o-mini, output_schema: { type: object, properties: { ok: { type: boolean } } } }
  intern: {}
  tester: { model: test }
teams:
  router_team: { mode: route, leader: writer, members: [researcher, writer] }
  desk:
    mode: coordinate
    leader: { model: default, instructions: Delegate., tools: [files.read] }
    members: [researcher, writer]
    max_rounds: 5
    description: The news desk.
    instructions: Be brief.
  everyone: { mode: broadcast, members: [researcher, writer, critic] }
  pipeline: { mode: sequential, members: [researcher, desk] }
  pair: { mode: leader_follower, leader: writer, members: [intern] }
  jury: { mode: consensus, members: [writer, critic], judge: researcher, max_rounds: 2 }
workflows:
  brief:
    description: Research, check, write.
    steps:
      - { step: gather, agent: researcher, input: "Research {input}", output_key: notes }
      - condition: "steps.gather.output contains 'TODO' and not (len(state.notes) > 5000)"
        name: check
        then:
          - { step: retry, agent: researcher, input: "{steps.gather.output}" }
        else:
          - { step: count, function: "mytools:word_count" }
      - condition: "mytools:is_long"
        then: [{ step: shorten, agent: writer }]
      - loop: polish
        max_iterations: 3
        until: "steps.review.output contains 'APPROVED' or iteration >= 3"
        steps:
          - { step: draft, team: desk }
          - { step: review, agent: critic }
      - parallel:
          - { step: a, agent: writer }
          - { step: b, team: everyone }
          - loop: inner
            max_iterations: 2
            steps: [{ step: c, agent: tester }]
        name: fanout
      - router: pick_len
        by: writer
        routes:
          short: [{ step: s, agent: writer }]
          long:
            - router: pick_fn
              by: "mytools:pick"
              routes:
                short: [{ step: t, workflow: tidy }]
      - { step: final, workflow: tidy, input: "{state.notes}" }
  tidy:
    steps:
      - { step: tidy_up, agent: writer }
mcp:
  github: { command: mcp-github, args: [--stdio], env: { TOKEN: "${WB_TEST_KEY}" }, cwd: ., timeout: 10 }
  remote: { url: "https://example.invalid/mcp", headers: { Authorization: "Bearer ${WB_TEST_KEY}" } }
approvals:
  default: ask
  allow: [web.search, knowledge.search, "files.read", "shell.run:git status*"]
  ask: ["files.write:docs/**"]
  deny: ["shell.run:rm -rf *"]
knowledge:
  docs: { paths: [docs/, "notes/*.md"], embedding_model: openai/text-embedding-3-small, chunk_size: 800, chunk_overlap: 100, description: Project docs }
toolkits:
  shell: { timeout: 30 }
memory: { enabled: true }
"""


def write(root: Path, text: str, **modules: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "workbench.yaml").write_text(text, encoding="utf-8")
    for name, source in modules.items():
        (root / f"{name}.py").write_text(source, encoding="utf-8")
    return root


def failure(root: Path, text: str, **modules: str) -> WorkspaceError:
    write(root, text, **modules)
    with pytest.raises(WorkspaceError) as info:
        load_workspace(root, known_toolkits=KNOWN)
    return info.value


def assert_at(err: WorkspaceError, root: Path, line: int, key: str, *fragments: str) -> None:
    """The message names the file, the line and the key, and says what is wrong."""
    file = root.resolve() / "workbench.yaml"
    assert err.path == file
    assert err.line == line, str(err)
    assert err.key == key, str(err)
    assert str(err).startswith(f"{file}:{line}: {key}: "), str(err)
    for fragment in fragments:
        assert fragment in err.message, str(err)


# -- the valid workspace -----------------------------------------------------------------


def test_full_workspace_loads_every_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WB_TEST_KEY", "sk-123")
    monkeypatch.delenv("WB_TEST_MISSING", raising=False)
    root = write(tmp_path / "newsroom", FULL, mytools=TOOLS_PY)
    ws = load_workspace(root, known_toolkits=KNOWN)

    assert ws.root == root.resolve()
    assert ws.path == root.resolve() / "workbench.yaml"
    assert ws.name == "newsroom"

    local = ws.models["local"]
    assert local.model == "openai/qwen3"
    assert local.context_window == 32000
    assert local.params == {
        "api_base": "http://127.0.0.1:8000/v1",
        "api_key": "sk-123",
        "extra_headers": {"X-Team": ""},
        "temperature": 0.2,
        "max_tokens": 512,
        "timeout": 20,
    }
    assert local.env_vars == ("WB_TEST_KEY", "WB_TEST_MISSING")
    assert ws.models["default"] == ModelSpec(model="anthropic/claude-sonnet-4-5")
    assert ws.models["offline"].model == "test"

    r = ws.agents["researcher"]
    assert r.model == "local"
    assert r.tools == ["web.search", "knowledge.search", "time.*", "mytools:word_count", "github.*"]
    assert (r.max_tool_rounds, r.context_window, r.temperature) == (4, 16000, 0.5)
    assert r.description == "Finds things."
    assert ws.agents["critic"].output_schema == {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
    }
    assert ws.agents["intern"] == AgentConfig()
    assert list(ws.agents) == ["researcher", "writer", "critic", "intern", "tester"]

    modes = {name: team.mode for name, team in ws.teams.items()}
    assert sorted(modes.values()) == sorted(
        ["route", "coordinate", "broadcast", "sequential", "leader_follower", "consensus"]
    )
    desk = ws.teams["desk"]
    assert isinstance(desk.leader, AgentConfig)
    assert desk.leader.tools == ["files.read"]
    assert (desk.max_rounds, desk.description, desk.instructions) == (
        5,
        "The news desk.",
        "Be brief.",
    )
    assert ws.teams["router_team"].leader == "writer"
    assert ws.teams["jury"].judge == "researcher"
    assert ws.teams["pipeline"].members == ["researcher", "desk"]

    brief = ws.workflows["brief"]
    assert brief.description == "Research, check, write."
    kinds = [type(n).__name__ for n in brief.steps]
    assert kinds == [
        "StepNode",
        "ConditionNode",
        "ConditionNode",
        "LoopNode",
        "ParallelNode",
        "RouterNode",
        "StepNode",
    ]
    gather = brief.steps[0]
    assert isinstance(gather, StepNode)
    assert (gather.target_kind, gather.target, gather.input, gather.output_key) == (
        "agent",
        "researcher",
        "Research {input}",
        "notes",
    )
    check = brief.steps[1]
    assert isinstance(check, ConditionNode)
    assert check.name == "check"
    assert isinstance(check.else_[0], StepNode) and check.else_[0].function == "mytools:word_count"
    expr = check.expression()
    assert expr is not None and expr.names == {"gather"}
    fn_condition = brief.steps[2]
    assert isinstance(fn_condition, ConditionNode) and fn_condition.expression() is None
    polish = brief.steps[3]
    assert isinstance(polish, LoopNode)
    assert (polish.name, polish.max_iterations) == ("polish", 3)
    until = polish.expression()
    assert until is not None and until.names == {"review"}
    fanout = brief.steps[4]
    assert isinstance(fanout, ParallelNode) and fanout.name == "fanout"
    assert isinstance(fanout.parallel[2], LoopNode)
    router = brief.steps[5]
    assert isinstance(router, RouterNode)
    assert (router.by, list(router.routes)) == ("writer", ["short", "long"])
    nested = router.routes["long"][0]
    assert isinstance(nested, RouterNode) and nested.by == "mytools:pick"
    final = brief.steps[6]
    assert isinstance(final, StepNode) and final.target_kind == "workflow"
    assert brief.node_names() == [
        "gather",
        "check",
        "retry",
        "count",
        "shorten",
        "polish",
        "draft",
        "review",
        "fanout",
        "a",
        "b",
        "inner",
        "c",
        "pick_len",
        "s",
        "pick_fn",
        "t",
        "final",
    ]

    github = ws.mcp["github"]
    assert (github.command, github.args, github.env, github.cwd, github.timeout) == (
        "mcp-github",
        ["--stdio"],
        {"TOKEN": "sk-123"},
        ".",
        10,
    )
    remote = ws.mcp["remote"]
    assert remote.url == "https://example.invalid/mcp" and remote.command is None
    assert remote.headers == {"Authorization": "Bearer sk-123"}
    assert remote.timeout == 30
    assert ws.mcp_servers == ["github", "remote"]

    assert ws.approvals.default == "ask"
    assert ws.approvals.allow[-1] == "shell.run:git status*"
    assert ws.approvals.ask == ["files.write:docs/**"]
    assert ws.approvals.deny == ["shell.run:rm -rf *"]
    docs = ws.knowledge["docs"]
    assert (docs.paths, docs.chunk_size, docs.chunk_overlap) == (["docs/", "notes/*.md"], 800, 100)
    assert docs.embedding_model == "openai/text-embedding-3-small"
    assert ws.toolkits == {"shell": {"timeout": 30}}
    assert ws.memory == {"enabled": True}

    assert ws.resolve_model("local") is local
    assert ws.resolve_model(None) == ws.models["default"]
    assert ws.resolve_model("ollama/llama3").model == "ollama/llama3"
    assert ws.resolve_model("test") == ModelSpec(model="test")
    assert ws.target_kind("researcher") == "agent"
    assert ws.target_kind("desk") == "team"
    assert ws.target_kind("brief") == "workflow"
    assert ws.target_kind("nobody") is None
    assert ws.default_agent() == "researcher"
    assert ws.line_of("agents.writer") == 22
    assert ws.line_of("workflows.brief.steps[3].max_iterations") == 53


def test_models_are_frozen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WB_TEST_KEY", "sk-123")  # the MCP header needs it (unset is an error)
    ws = load_workspace(write(tmp_path, FULL, mytools=TOOLS_PY), known_toolkits=KNOWN)
    with pytest.raises(ValueError):
        ws.agents["writer"].instructions = "x"  # type: ignore[misc]


def test_no_yaml_gives_the_default_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = load_workspace(tmp_path)
    assert ws.path is None
    assert ws.root == tmp_path.resolve()
    assert list(ws.agents) == ["assistant"]
    assert ws.default_agent() == "assistant"
    assert ws.agents["assistant"].tools == []
    assert ws.resolve_model(ws.agents["assistant"].model).model == "test"
    assert (ws.teams, ws.workflows, ws.mcp, ws.models) == ({}, {}, {}, {})
    assert list(tmp_path.iterdir()) == []  # nothing written
    monkeypatch.chdir(tmp_path)
    assert load_workspace().root == tmp_path.resolve()


def test_file_without_agents_gets_the_assistant_on_the_default_model(tmp_path: Path) -> None:
    ws = load_workspace(write(tmp_path, "models:\n  default: openai/gpt-4o\n"))
    assert list(ws.agents) == ["assistant"]
    assert ws.resolve_model(ws.agents["assistant"].model).model == "openai/gpt-4o"


def test_empty_file_is_a_default_workspace(tmp_path: Path) -> None:
    ws = load_workspace(write(tmp_path, "# nothing yet\n"))
    assert ws.path == tmp_path.resolve() / "workbench.yaml"
    assert list(ws.agents) == ["assistant"]


def test_root_may_be_the_yaml_file(tmp_path: Path) -> None:
    write(tmp_path, "agents: { a: {} }\n")
    assert load_workspace(tmp_path / "workbench.yaml").root == tmp_path.resolve()


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="no such workspace folder"):
        load_workspace(tmp_path / "nope")


def test_without_known_toolkits_plugin_names_are_not_checked(tmp_path: Path) -> None:
    ws = load_workspace(write(tmp_path, "agents:\n  a: { tools: [anything.at_all] }\n"))
    assert ws.agents["a"].tools == ["anything.at_all"]


def test_merge_keys_and_anchors(tmp_path: Path) -> None:
    text = """\
agents:
  base: &base { model: test, instructions: Shared. }
  other:
    <<: *base
    instructions: Own.
"""
    ws = load_workspace(write(tmp_path, text))
    assert ws.agents["other"].model == "test"
    assert ws.agents["other"].instructions == "Own."


def test_fingerprint_and_diff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WB_TEST_KEY", "sk-123")  # the MCP header needs it (unset is an error)
    old = load_workspace(write(tmp_path, FULL, mytools=TOOLS_PY), known_toolkits=KNOWN)
    assert old.fingerprint() == load_workspace(tmp_path, known_toolkits=KNOWN).fingerprint()
    changed = (
        FULL.replace("instructions: Write the final answer.", "instructions: Write well.")
        .replace(
            "  jury: { mode: consensus, members: [writer, critic], judge: researcher, max_rounds: 2 }\n",
            "",
        )
        .replace(
            "  tester: { model: test }\n", "  tester: { model: test }\n  editor: { model: test }\n"
        )
        .replace('deny: ["shell.run:rm -rf *"]', 'deny: ["shell.run:rm *"]')
    )
    new = load_workspace(write(tmp_path, changed), known_toolkits=KNOWN)
    assert new.fingerprint() != old.fingerprint()
    assert diff_workspaces(old, new) == [
        "+ agent editor",
        "agent writer: instructions changed",
        "- team jury",
        "approvals: deny changed",
    ]
    assert diff_workspaces(old, old) == []
    assert Workspace(root=tmp_path).fingerprint() == hashlib.sha256(b"").hexdigest()


# -- every mistake names file, line and key ----------------------------------------------


def test_bad_yaml_syntax(tmp_path: Path) -> None:
    err = failure(
        tmp_path,
        """\
agents:
  researcher:
    model: test
    instructions: Note: be brief
""",
    )
    file = tmp_path.resolve() / "workbench.yaml"
    assert (err.path, err.line, err.column, err.key) == (file, 4, 23, "agents.researcher")
    assert str(err) == (
        f"{file}:4:23: agents.researcher: invalid YAML: mapping values are not allowed here; "
        "quote a value that contains ': '"
    )


def _tree(node: object) -> object:
    """A composed YAML node as plain data with every node's line, column and tag."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        value: object = [(_tree(k), _tree(v)) for k, v in node.value]
    elif isinstance(node, yaml.SequenceNode):
        value = [_tree(v) for v in node.value]
    else:
        assert isinstance(node, yaml.ScalarNode)
        value = node.value
    mark = node.start_mark
    return (node.tag, mark.line, mark.column, value)


@pytest.mark.parametrize(
    "text",
    [
        *(
            p.read_text(encoding="utf-8")
            for p in sorted((Path(__file__).parent.parent / "sample_workspaces").glob("*/*.yaml"))
        ),
        "agents:\n  a: {model: test, tools: [x, 'y: z', \"<b>\"]}\n  b:\n    instructions: |\n"
        "      two\n      lines \x1b[31m\n",
        "a: &anchor {x: 1}\nb: *anchor\nc: !!str 3\nd: 0o17\ne: ~\nf: 2026-12-07\n",
        "\ufeffagents: {}\n",
    ],
)
def test_libyaml_and_the_pure_parser_give_the_same_nodes(text: str) -> None:
    """The workspace is composed with libyaml when PyYAML has it: every node, its tag and
    the line and column errors name must be what the pure-Python parser gives."""
    import yaml

    from workbench.workspace.load import _compose

    assert yaml.__with_libyaml__, "PyYAML's wheels ship libyaml; this test needs it"

    def outcome(compose: Any) -> object:
        try:
            return _tree(compose(text))
        except yaml.YAMLError as exc:
            return ("refused", str(exc))

    assert outcome(_compose) == outcome(lambda t: yaml.compose(t, Loader=yaml.SafeLoader))


def test_bad_yaml_is_worded_by_the_pure_parser(tmp_path: Path) -> None:
    """libyaml words its errors its own way; a file it refuses is parsed again so the
    message is the same whether or not PyYAML has libyaml."""
    import yaml

    text = "agents:\n  a:\n    tools: [web.search, web.fetch\n"
    with pytest.raises(yaml.MarkedYAMLError) as c_error:
        yaml.compose(text, Loader=yaml.CSafeLoader)
    with pytest.raises(yaml.MarkedYAMLError) as pure_error:
        yaml.compose(text, Loader=yaml.SafeLoader)
    assert c_error.value.problem != pure_error.value.problem  # else this test shows nothing
    err = failure(tmp_path, text)
    assert err.message.startswith(f"invalid YAML: {pure_error.value.problem}")


def test_bad_yaml_in_a_flow_list(tmp_path: Path) -> None:
    err = failure(tmp_path, "agents:\n  a:\n    tools: [web.search, web.fetch\n")
    assert (err.line, err.key) == (4, "agents.a.tools[2]")
    assert "invalid YAML" in err.message


def test_bad_yaml_indentation(tmp_path: Path) -> None:
    err = failure(tmp_path, "agents:\n  writer:\n    model: test\n   instructions: x\n")
    assert (err.line, err.column, err.key) == (4, 4, "agents")
    assert err.message.endswith("check the indentation")


def test_tabs(tmp_path: Path) -> None:
    err = failure(tmp_path, "agents:\n\twriter: {}\n")
    assert err.line == 2 and "indent with spaces, not tabs" in err.message


def test_duplicate_key(tmp_path: Path) -> None:
    err = failure(
        tmp_path,
        """\
agents:
  writer:
    model: test
    instructions: one
    model: default
""",
    )
    assert_at(err, tmp_path, 5, "agents.writer.model", "duplicate key 'model' (first on line 3)")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    err = failure(tmp_path, "agents: {}\nagnets:\n  writer: {}\n")
    assert_at(
        err,
        tmp_path,
        2,
        "agnets",
        "unknown key 'agnets'; expected one of: models, agents, teams, workflows, mcp, "
        "approvals, knowledge, toolkits, memory",
    )


def test_unknown_agent_key(tmp_path: Path) -> None:
    err = failure(
        tmp_path,
        """\
agents:
  writer:
    model: test
    instruction: Write.
""",
    )
    assert_at(
        err,
        tmp_path,
        4,
        "agents.writer.instruction",
        "unknown key 'instruction'; expected one of: model, instructions, description, tools,",
    )


def test_wrong_type(tmp_path: Path) -> None:
    err = failure(tmp_path, "agents:\n  writer:\n    model: test\n    tools: 5\n")
    assert_at(err, tmp_path, 4, "agents.writer.tools", "expected a list of strings, got int (5)")


def test_wrong_type_in_a_list_item(tmp_path: Path) -> None:
    err = failure(tmp_path, "agents:\n  writer:\n    tools:\n      - web.search\n      - 7\n")
    assert_at(err, tmp_path, 5, "agents.writer.tools[1]", "expected a string, got int (7)")


def test_wrong_number_type(tmp_path: Path) -> None:
    err = failure(tmp_path, "agents:\n  writer: { max_tool_rounds: many }\n")
    assert_at(
        err,
        tmp_path,
        2,
        "agents.writer.max_tool_rounds",
        "expected a whole number, got string ('many')",
    )


def test_unknown_model(tmp_path: Path) -> None:
    err = failure(
        tmp_path,
        """\
models:
  default: openai/gpt-4o
  local: { model: openai/qwen3, api_base: "http://127.0.0.1:8000/v1" }
agents:
  researcher:
    instructions: Find things.
    model: gpt5
""",
    )
    assert str(err) == (
        f"{tmp_path.resolve() / 'workbench.yaml'}:7: agents.researcher.model: unknown model "
        "'gpt5'; expected a name from models: (default, local) or a litellm model string "
        "like 'openai/gpt-4o'"
    )


def test_unknown_tool_toolkit(tmp_path: Path) -> None:
    err = failure(
        tmp_path,
        """\
mcp:
  github: { command: mcp-github }
agents:
  researcher:
    tools:
      - web.search
      - github.create_issue
      - serach.web
""",
    )
    assert_at(
        err,
        tmp_path,
        8,
        "agents.researcher.tools[2]",
        "unknown tool 'serach.web': no toolkit 'serach'",
        "MCP servers: github",
    )


def test_missing_module_function_file(tmp_path: Path) -> None:
    err = failure(tmp_path, 'agents:\n  a:\n    tools: ["web.search", "mytools:word_count"]\n')
    assert_at(
        err,
        tmp_path,
        3,
        "agents.a.tools[1]",
        "'mytools:word_count': no file mytools.py in the workspace folder",
    )


def test_module_without_the_function(tmp_path: Path) -> None:
    err = failure(tmp_path, 'agents:\n  a:\n    tools: ["mytools:wordcount"]\n', mytools=TOOLS_PY)
    assert_at(err, tmp_path, 3, "agents.a.tools[0]", "mytools.py defines no 'wordcount'")


def test_unknown_team_member(tmp_path: Path) -> None:
    err = failure(
        tmp_path,
        """\
agents:
  writer: {}
teams:
  desk:
    mode: broadcast
    members:
      - writer
      - reseacher
""",
    )
    assert_at(err, tmp_path, 8, "teams.desk.members[1]", "unknown agent or team 'reseacher'")


def test_team_cycle(tmp_path: Path) -> None:
    err = failure(
        tmp_path,
        """\
agents:
  writer: {}
teams:
  desk: { mode: coordinate, leader: writer, members: [writer, inner] }
  inner:
    mode: sequential
    members: [writer, desk]
""",
    )
    assert_at(err, tmp_path, 7, "teams.inner.members[1]", "cycle: desk -> inner -> desk")


def test_team_containing_itself(tmp_path: Path) -> None:
    err = failure(tmp_path, "teams:\n  desk: { mode: broadcast, members: [desk] }\n")
    assert_at(err, tmp_path, 2, "teams.desk.members[0]", "cycle: desk -> desk")


def test_loop_without_max_iterations(tmp_path: Path) -> None:
    err = failure(
        tmp_path,
        """\
agents:
  writer: {}
workflows:
  polish:
    steps:
      - loop: again
        until: "iteration > 2"
        steps: [{ step: draft, agent: writer }]
""",
    )
    assert_at(
        err,
        tmp_path,
        6,
        "workflows.polish.steps[0].max_iterations",
        "missing required key 'max_iterations': a loop without a bound",
    )


def test_expression_that_does_not_parse(tmp_path: Path) -> None:
    err = failure(
        tmp_path,
        """\
agents:
  writer: {}
workflows:
  w:
    steps:
      - { step: draft, agent: writer }
      - condition: "steps.draft.output =="
        then: [{ step: again, agent: writer }]
""",
    )
    assert_at(
        err,
        tmp_path,
        7,
        "workflows.w.steps[1].condition",
        "cannot parse expression 'steps.draft.output =='",
    )


def test_expression_with_a_disallowed_construct(tmp_path: Path) -> None:
    err = failure(
        tmp_path,
        """\
agents:
  writer: {}
workflows:
  w:
    steps:
      - loop: l
        max_iterations: 2
        until: "__import__('os')"
        steps: [{ step: draft, agent: writer }]
""",
    )
    assert_at(
        err,
        tmp_path,
        8,
        "workflows.w.steps[0].until",
        "calling '__import__' is not allowed in an expression",
    )


def test_condition_referencing_an_unknown_step(tmp_path: Path) -> None:
    err = failure(
        tmp_path,
        """\
agents:
  writer: {}
workflows:
  w:
    steps:
      - { step: draft, agent: writer }
      - parallel:
          - condition: "steps.drfat.output contains 'x'"
            then: [{ step: fix, agent: writer }]
""",
    )
    assert_at(
        err,
        tmp_path,
        8,
        "workflows.w.steps[1].parallel[0].condition",
        "unknown step 'drfat' in steps.drfat; steps in workflow 'w': draft, fix",
    )


def test_router_with_no_routes(tmp_path: Path) -> None:
    err = failure(
        tmp_path,
        """\
agents:
  writer: {}
workflows:
  w:
    steps:
      - router: pick
        by: writer
        routes: {}
""",
    )
    assert_at(err, tmp_path, 8, "workflows.w.steps[0].routes", "a router needs at least one route")


def test_node_with_two_kind_keys(tmp_path: Path) -> None:
    err = failure(
        tmp_path,
        "agents:\n  a: {}\nworkflows:\n  w:\n    steps:\n      - { step: x, loop: y, agent: a }\n",
    )
    assert_at(
        err,
        tmp_path,
        6,
        "workflows.w.steps[0]",
        "exactly one of the keys step, condition, loop, parallel, router; found 'step' and 'loop'",
    )


def test_step_needs_exactly_one_target(tmp_path: Path) -> None:
    err = failure(
        tmp_path,
        "agents:\n  a: {}\nteams:\n  t: { mode: broadcast, members: [a] }\n"
        "workflows:\n  w:\n    steps:\n      - { step: x, agent: a, team: t }\n",
    )
    assert_at(err, tmp_path, 8, "workflows.w.steps[0]", "found agent and team")


def test_duplicate_step_names(tmp_path: Path) -> None:
    err = failure(
        tmp_path,
        "agents:\n  a: {}\nworkflows:\n  w:\n    steps:\n"
        "      - { step: x, agent: a }\n      - parallel: [{ step: x, agent: a }]\n",
    )
    assert_at(err, tmp_path, 7, "workflows.w.steps[1].parallel[0].step", "used twice")


def test_workflow_cycle(tmp_path: Path) -> None:
    err = failure(
        tmp_path,
        """\
agents:
  a: {}
workflows:
  one:
    steps: [{ step: x, workflow: two }]
  two:
    steps:
      - { step: y, agent: a }
      - { step: z, workflow: one }
""",
    )
    assert_at(
        err, tmp_path, 9, "workflows.two.steps[1].workflow", "cycle: workflow one -> two -> one"
    )


def test_judge_only_for_consensus(tmp_path: Path) -> None:
    err = failure(
        tmp_path, "agents:\n  a: {}\nteams:\n  t: { mode: broadcast, members: [a], judge: a }\n"
    )
    assert_at(err, tmp_path, 4, "teams.t.judge", "only used with mode: consensus")


def test_bad_team_mode(tmp_path: Path) -> None:
    err = failure(tmp_path, "agents:\n  a: {}\nteams:\n  t:\n    mode: vote\n    members: [a]\n")
    assert_at(err, tmp_path, 5, "teams.t.mode", "expected one of 'route', 'coordinate'")


def test_mcp_needs_command_or_url(tmp_path: Path) -> None:
    err = failure(tmp_path, "mcp:\n  time: { command: x, url: 'http://x' }\n")
    assert_at(err, tmp_path, 2, "mcp.time", "exactly one of command (stdio) or url (HTTP)")


def test_model_table_needs_model(tmp_path: Path) -> None:
    err = failure(tmp_path, "models:\n  local:\n    api_base: http://x\n")
    assert_at(err, tmp_path, 2, "models.local.model", "missing required key 'model'")


def test_output_schema_needs_type(tmp_path: Path) -> None:
    err = failure(tmp_path, "agents:\n  a:\n    output_schema: { properties: {} }\n")
    assert_at(err, tmp_path, 3, "agents.a.output_schema", "needs a 'type'")


def test_all_errors_are_kept_in_line_order(tmp_path: Path) -> None:
    err = failure(
        tmp_path,
        """\
agents:
  a: { model: nope }
  b: { tools: [nokit.x] }
teams:
  t: { mode: broadcast, members: [ghost] }
""",
    )
    assert [(e.line, e.key) for e in err.errors] == [
        (2, "agents.a.model"),
        (3, "agents.b.tools[0]"),
        (5, "teams.t.members[0]"),
    ]
    assert err.errors[0] is err


def test_top_level_must_be_a_table(tmp_path: Path) -> None:
    err = failure(tmp_path, "- agents\n")
    assert err.line == 1 and "at the top level, got a list" in err.message


# -- expressions -------------------------------------------------------------------------

CTX = {
    "input": "Write about cats",
    "steps": {"review": {"output": "Looks good. APPROVED\n"}, "score": {"output": "8"}},
    "state": {"lang": "en", "tags": ["a", "b"], "count": 3},
    "iteration": 2,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("steps.review.output contains 'APPROVED'", True),
        ("steps.review.output contains 'REJECTED'", False),
        ("steps.review.output not contains 'REJECTED'", True),
        ('input contains "cats" and iteration < 3', True),
        ("'contains' in input", False),
        ("state.tags contains 'b'", True),
        ("state.lang == 'en'", True),
        ("state.lang != 'en'", False),
        ("steps.review.output == 'Looks good. APPROVED'", True),
        ("steps.score.output >= 8", True),
        ("steps.score.output > 8", False),
        ("1 < iteration <= 2", True),
        ("iteration >= 3 or state.count == 3", True),
        ("not (iteration == 2)", False),
        ("not iteration == 3", True),
        ("state.lang in ['en', 'fr']", True),
        ("state.lang not in ('en', 'fr')", False),
        ("len(state.tags) == 2", True),
        ("len(steps.review.output) > 100", False),
        ("len(state.missing) == 0", True),
        ("steps.review.missing contains 'x'", False),
        ("state.missing > 3", False),
        ("state.count == -3", False),
        ("true and not false", True),
        ("state.missing == null", True),
    ],
)
def test_expression_evaluation(text: str, expected: bool) -> None:
    assert compile_expression(text).evaluate(CTX) is expected


def test_expression_reads_attributes_of_objects() -> None:
    class Result:
        output = "done"

    expr = compile_expression("steps.x.output == 'done'")
    assert expr.evaluate({"steps": {"x": Result()}})
    assert expr.names == {"x"}
    assert isinstance(expr, Expression)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("__import__('os')", "calling '__import__' is not allowed"),
        ("input.__class__", "names starting with '_'"),
        ("open('x')", "calling 'open' is not allowed"),
        ("iteration + 1 > 2", "arithmetic is not allowed"),
        ("state['x'] == 1", "indexing with [...] is not allowed"),
        ("foo == 1", "unknown name 'foo'"),
        ("steps == 1", "steps.NAME.output"),
        ("input is None", "'is' is not allowed"),
        ("lambda: 1", "lambda is not allowed"),
        ("'abc'.upper", "attribute access other than on input, state and steps"),
        ("len(input, state)", "len takes exactly one argument"),
        ("(x := 1)", "':=' is not allowed"),
        ("state.x ==", "cannot parse expression"),
        ("  ", "empty expression"),
    ],
)
def test_expression_refusals(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(text)
    assert fragment in str(info.value)


def test_expression_type_errors_are_expression_errors() -> None:
    with pytest.raises(ExpressionError, match="cannot compare"):
        compile_expression("state.tags > 3").evaluate(CTX)
    with pytest.raises(ExpressionError, match="len"):
        compile_expression("len(iteration) > 0").evaluate(CTX)


def test_helpers() -> None:
    assert is_function_ref("mytools:check") and is_function_ref("pkg.mod:fn")
    assert not is_function_ref("steps.a.output contains ':'")
    assert split_approval_rule("shell.run:git status*") == ("shell.run", "git status*")
    assert split_approval_rule("files.write:docs/**") == ("files.write", "docs/**")
    assert split_approval_rule("web.search") == ("web.search", None)
    assert split_approval_rule("mytools:word_count") == ("mytools:word_count", None)
    assert split_approval_rule("mytools:word_count:*.md") == ("mytools:word_count", "*.md")
    assert split_approval_rule("*:rm *") == ("*", "rm *")


def test_error_str_and_pickle() -> None:
    import pickle

    err = WorkspaceError(Path("/x/workbench.yaml"), 7, "agents.a.model", "unknown model 'gpt5'")
    assert str(err) == "/x/workbench.yaml:7: agents.a.model: unknown model 'gpt5'"
    back = pickle.loads(pickle.dumps(err))
    assert (back.path, back.line, back.key, back.message) == (err.path, 7, err.key, err.message)
    assert str(WorkspaceError(Path("/x"), None, "", "gone")) == "/x: gone"


def test_import_is_light() -> None:
    code = (
        "import sys, workbench.workspace; "
        "print(sorted(m for m in ('litellm', 'lancedb', 'textual') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
