"""Approvals: the policy that says allow, ask or deny, and the broker of pending decisions.

A tool call is checked against :class:`Rule` s before it runs. A rule names a tool (a glob
on the workspace name: ``files.*``, ``shell.run``, ``*``) and optionally a pattern (a glob on
the argument the tool's ``match_on`` names). :class:`ApprovalPolicy` holds the workspace's
``approvals:`` section; :meth:`ApprovalPolicy.evaluate` returns a :class:`Verdict`. A call
that needs a person goes to the :class:`ApprovalBroker`, which any face (TUI, server, CLI)
resolves; "allow for session / workspace / always" saves the rules that
:func:`rules_for_decision` proposes, which are never broader than what the person saw.

How matching works (the choices, written down):

Shell commands (``match_on = ("command", <arg>)``)
    :func:`split_shell` splits a command into the simple commands that will run: on ``;``,
    ``&&``, ``||``, ``|``, ``|&``, ``&`` and newlines, outside quotes. Command substitutions
    (``$(...)``, backticks, also inside double quotes and unquoted here-documents), process
    substitutions (``<(...)``, ``>(...)``), subshells ``( ... )`` and brace groups
    ``{ ...; }`` contribute their inner commands as parts of their own (recursively); the
    outer part keeps the placeholder ``$(…)`` (or ``(…)``, ``<(…)``). The payloads of
    ``sh``/``bash``/``zsh``... ``-c STRING``, ``eval``, ``su -c``, of a shell reading a
    here-document or here-string, of ``watch``, ``script -c`` and ``flock -c`` are parsed
    again as commands; the commands run by ``xargs``, ``env``, ``sudo``, ``doas``, ``nice``,
    ``nohup``, ``timeout``, ``time``, ``command``, ``exec``, ``stdbuf``, ``setsid``,
    ``chroot``, ``busybox``, ``find -exec`` and friends become parts too. Every part must be
    allowed for the command to be allowed. Reserved words (``if``, ``then``, ``do``, ``!``,
    ``{``, ``}``, ``time`` ...) at the start of a part are dropped; comments are dropped.
    Whitespace is normalised (tokens joined by one space; ``2>&1`` and ``<<EOF`` stay
    glued), quotes are kept as typed, here-document bodies are kept verbatim after a newline.
    Unbalanced quotes or parentheses raise :class:`ShellParseError`, and then the verdict is
    ask (or deny, when a deny rule or a ``deny`` default applies), never allow. What a script
    file runs (``bash script.sh``, ``. ./env.sh``) is not visible: only that part is checked.

    The grammar is bash's, and ``shell.run`` runs commands with bash. What bash may run
    otherwise than the parts show is never allowed, whatever the rules (a deny rule on a
    part still denies): :func:`shell_doubts` lists the classes (arithmetic on names,
    ``${!x}``/``${x@P}``/non-numeric subscripts, builtins that evaluate their arguments or
    change later commands such as ``[[``, ``declare``, ``read``, ``trap``, ``test -v``,
    ``printf -v``, code for another shell or from an input: ``sh -c``, ``| bash``,
    ``xargs bash -c``). Such a command asks, and no rule is offered for it.

    Patterns are globs on a part: ``*`` any text, ``?`` one character, ``[abc]`` a class;
    ``[*]`` is a literal ``*`` (what :func:`escape_pattern` writes). A trailing ``*`` is a
    word boundary: ``git status*`` (and ``git status *``) matches ``git status`` and
    ``git status --short`` but not ``git statusx``. In allow rules a wildcard never matches an
    unquoted redirection (``>``, ``<``, ``&>``, here-documents), so ``echo *`` does not allow
    ``echo x > ~/.bashrc``; write the redirection in the pattern, or allow the bare tool.
    Redirections that cannot write anywhere (``2>&1``, ``>&2``, ``2>/dev/null``) are ignored
    by matching. Leading environment assignments (``FOO=1 cmd``) stay in the part's text,
    and allow rules match that whole text: ``make*`` does not allow ``LD_PRELOAD=x.so make``
    (assignments change what a command does: ``LD_PRELOAD``, ``GIT_SSH_COMMAND``, ``PAGER``).
    Deny and ask rules match more loosely, so that ``rm -rf *`` also catches
    ``FOO=1 rm -rf x``, ``"rm" -rf x``, ``\\rm -rf x`` and ``/bin/rm -rf x``: they are tried
    on the whole text, on the text without assignments, and on the unquoted words with the
    command's directory stripped, and their wildcards match anything. A part whose command
    word is computed (``$X -rf /``, ``$(…) x``, ``{rm,-rf,/}``, ``r?``) is allowed only by
    a rule whose pattern spells the command word literally (or by the bare tool).

File paths (``match_on = ("path", <arg>)``)
    The argument (a string, or a list of strings that must each be allowed) is normalised
    with ``posixpath.normpath`` relative to the workspace root; an absolute path inside the
    root becomes relative. A path that is absolute, starts with ``~``, escapes the root
    (``../x``, ``docs/../../etc/passwd``) or, when ``root`` is given, leads out of it through
    a symbolic link, is never allowed by any rule (not even the bare tool): it asks, or is
    denied when a deny rule matches it or the default is ``deny``. In patterns ``**`` crosses
    directories (``docs/**`` is docs and everything under it, ``**/x`` is x at any depth),
    ``*`` and ``?`` stay within one segment.

Other tools, and calls without the matched argument
    Only rules without a pattern apply (a missing or ``None`` argument leaves the tool's
    own default in charge). An argument of the wrong type is never allowed.

Which rule wins
    Of the rules that match, the most specific wins: a rule with a pattern beats one
    without, then more literal (non-wildcard) characters in the pattern, then more literal
    characters in the tool glob. At equal specificity: a config ``deny`` first (a person's
    saved allow never overrides an explicit config deny of the same reach), then saved
    deny, saved ask, saved allow, config ask, config allow; so deny > ask > allow, and a
    person's saved decision beats the config's ask. Saved rules (scopes ``session``,
    ``workspace``, ``always``) are passed to :meth:`ApprovalPolicy.evaluate` as
    ``extra_rules`` and are considered together with the config's. No matching rule: the
    policy's ``default``.

Config form of a rule
    ``"tool-glob"`` or ``"tool-glob:arg-glob"``. Tool names of workspace functions contain a
    colon (``mytools:word_count``), so: when the text before the first ``:`` contains ``.``,
    ``*``, ``?`` or ``[`` it is the tool glob and the rest is the pattern; otherwise the tool
    is ``module:function`` and a pattern may follow after the next ``:``
    (``mytools:word_count:*.txt``).
"""

from __future__ import annotations

from .broker import ApprovalBroker, BrokerListener, PendingApproval, Resolution
from .policy import ApprovalPolicy, rules_for_decision
from .rules import (
    ApprovalConfigError,
    Decision,
    ResolutionDecision,
    ResolutionScope,
    Rule,
    RuleScope,
    RuleSpec,
    ShellParseError,
    Verdict,
    escape_pattern,
)
from .shell import shell_doubts, split_shell

__all__ = [
    "ApprovalBroker",
    "ApprovalConfigError",
    "ApprovalPolicy",
    "BrokerListener",
    "Decision",
    "PendingApproval",
    "Resolution",
    "ResolutionDecision",
    "ResolutionScope",
    "Rule",
    "RuleScope",
    "RuleSpec",
    "ShellParseError",
    "Verdict",
    "escape_pattern",
    "rules_for_decision",
    "shell_doubts",
    "split_shell",
]
