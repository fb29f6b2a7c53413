"""The expression language of workflow conditions and loop bounds.

A whitelisted subset of Python syntax (names ``input``, ``iteration``, ``state.KEY``,
``steps.NAME.output``; literals; comparisons; ``and``/``or``/``not``; ``in``, ``not in``,
``contains``; ``len(x)``), compiled when the workspace loads and evaluated without ``eval``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import (
    Any,
)


class ExpressionError(ValueError):
    """An expression that does not parse, uses a construct outside the whitelist, or
    cannot be evaluated against the values it met."""


# -- the expression language -------------------------------------------------------------

_FUNC_REF_RE = re.compile(r"\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*)\s*")

# Quoted strings are kept as they are while ``contains`` is rewritten around them.
_STRING_RE = re.compile(r"""('(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")""")
_IS_RE = re.compile(r"(?<![.\w])is(?!\w)")
_NOT_CONTAINS_RE = re.compile(r"(?<![.\w])not\s+contains(?!\w)")
_CONTAINS_RE = re.compile(r"(?<![.\w])contains(?!\w)")
_EXPR_NAMES = frozenset({"input", "state", "steps", "iteration"})
_EXPR_CONSTANTS: dict[str, Any] = {"true": True, "false": False, "null": None}
_COMPARE_OPS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn)
_WORDS: dict[type[ast.AST], str] = {
    ast.BinOp: "arithmetic",
    ast.Subscript: "indexing with [...]",
    ast.Lambda: "lambda",
    ast.IfExp: "'x if y else z'",
    ast.Dict: "dict literals",
    ast.Set: "set literals",
    ast.JoinedStr: "f-strings",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.NamedExpr: "':='",
    ast.Await: "await",
    ast.Starred: "'*'",
    ast.Slice: "slices",
}


def is_function_ref(text: str) -> bool:
    """Whether ``text`` is a ``module:function`` reference rather than an expression."""
    return _FUNC_REF_RE.fullmatch(text) is not None


class Expression:
    """A compiled condition: safe to evaluate, no ``eval`` involved.

    The context is a mapping with the keys ``input`` (the workflow input), ``steps``
    (step name -> a mapping or object with ``output``), ``state`` (the workflow state) and
    ``iteration`` (the loop iteration, from 1). Missing keys read as ``None``. Attribute
    access on a mapping reads its key (``state.lang`` is ``state["lang"]``).

    Comparison rules, chosen for model output: a number compared with a string that
    holds a number compares as numbers (``steps.score.output >= 8`` with output ``"9"``);
    two strings compare without leading and trailing whitespace; ``<``, ``>`` and the like
    with ``None`` on either side are false; ``x in None`` is false; ``a contains b`` is
    ``b in a`` (with ``b`` turned into text when ``a`` is text).
    """

    __slots__ = ("_tree", "names", "text")

    text: str
    """The source text, as written in the workspace."""
    names: frozenset[str]
    """The step names it references through ``steps.NAME``."""

    def __init__(self, text: str, tree: ast.Expression, names: frozenset[str]) -> None:
        self.text = text
        self.names = names
        self._tree = tree

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    def evaluate(self, ctx: Mapping[str, Any]) -> bool:
        """The truth of the expression for ``ctx``.

        Raises:
            ExpressionError: values of types that cannot be compared or measured.
        """
        return bool(_evaluate(self._tree.body, ctx))


@lru_cache(maxsize=512)
def compile_expression(text: str) -> Expression:
    """Parse and check an expression of the workflow condition language.

    Args:
        text: such as ``"steps.review.output contains 'APPROVED' and iteration < 3"``.

    Raises:
        ExpressionError: it does not parse, or uses something outside the whitelist.
    """
    source = " ".join(text.strip().splitlines())
    if not source:
        raise ExpressionError("empty expression")
    if is_function_ref(source):
        raise ExpressionError(
            f"{source!r} is a module:function reference, not an expression; "
            "the workflow calls it instead of compiling it"
        )
    rewritten = _rewrite_contains(source)
    try:
        tree = ast.parse(rewritten, mode="eval")
    except (SyntaxError, ValueError) as exc:
        msg = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        raise ExpressionError(f"cannot parse expression {source!r}: {msg}") from None
    names: set[str] = set()
    _check_node(tree.body, names)
    return Expression(source, tree, frozenset(names))


def _rewrite_contains(source: str) -> str:
    """``a contains b`` becomes ``a is b`` (and ``not contains`` ``is not``).

    ``is`` is otherwise refused, so in the tree an ``Is`` can only mean ``contains``, and
    it parses with the precedence of ``in``.
    """
    parts = _STRING_RE.split(source)
    out: list[str] = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(part)
            continue
        if _IS_RE.search(part):
            raise ExpressionError("'is' is not allowed in an expression; use == or !=")
        part = _NOT_CONTAINS_RE.sub(" is not ", part)
        out.append(_CONTAINS_RE.sub(" is ", part))
    return "".join(out)


def _refuse(what: str) -> ExpressionError:
    return ExpressionError(f"{what} is not allowed in an expression")


def _attribute_chain(node: ast.Attribute) -> tuple[ast.expr, list[str]]:
    attrs: list[str] = []
    cur: ast.expr = node
    while isinstance(cur, ast.Attribute):
        attrs.append(cur.attr)
        cur = cur.value
    attrs.reverse()
    return cur, attrs


def _check_node(node: ast.expr, names: set[str]) -> None:
    """Refuse anything outside the whitelist; collect referenced step names."""
    if isinstance(node, ast.Constant):
        if node.value is not None and not isinstance(node.value, str | int | float | bool):
            raise _refuse(f"the literal {node.value!r}")
        return
    if isinstance(node, ast.Name):
        if node.id == "steps":
            raise ExpressionError("'steps' needs a step name: write steps.NAME.output")
        if node.id not in _EXPR_NAMES and node.id not in _EXPR_CONSTANTS:
            raise ExpressionError(
                f"unknown name {node.id!r}; an expression may use input, iteration, "
                "state.KEY and steps.NAME.output"
            )
        return
    if isinstance(node, ast.Attribute):
        base, attrs = _attribute_chain(node)
        for a in attrs:
            if a.startswith("_"):
                raise _refuse(f"the attribute {a!r} (names starting with '_')")
        if not isinstance(base, ast.Name) or base.id not in _EXPR_NAMES:
            raise _refuse("attribute access other than on input, state and steps")
        if base.id == "steps":
            names.add(attrs[0])
        return
    if isinstance(node, ast.BoolOp):
        for v in node.values:
            _check_node(v, names)
        return
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.Not):
            _check_node(node.operand, names)
            return
        if isinstance(node.op, ast.USub | ast.UAdd) and isinstance(node.operand, ast.Constant):
            if isinstance(node.operand.value, int | float) and not isinstance(
                node.operand.value, bool
            ):
                return
        raise _refuse("this unary operator")
    if isinstance(node, ast.Compare):
        for op in node.ops:
            if not isinstance(op, (*_COMPARE_OPS, ast.Is, ast.IsNot)):
                raise _refuse(f"the operator {type(op).__name__}")
        _check_node(node.left, names)
        for c in node.comparators:
            _check_node(c, names)
        return
    if isinstance(node, ast.Call):
        fname = node.func.id if isinstance(node.func, ast.Name) else None
        if fname != "len":
            shown = repr(fname) if fname else "a function"
            raise ExpressionError(
                f"calling {shown} is not allowed in an expression (the only function is len(x))"
            )
        if len(node.args) != 1 or node.keywords or isinstance(node.args[0], ast.Starred):
            raise ExpressionError("len takes exactly one argument: len(x)")
        _check_node(node.args[0], names)
        return
    if isinstance(node, ast.List | ast.Tuple):
        for e in node.elts:
            _check_node(e, names)
        return
    raise _refuse(_WORDS.get(type(node), type(node).__name__))


def _evaluate(node: ast.expr, ctx: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in _EXPR_CONSTANTS:
            return _EXPR_CONSTANTS[node.id]
        return ctx.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _evaluate(node.value, ctx)
        if base is None:
            return None
        if isinstance(base, Mapping):
            return base.get(node.attr)
        return getattr(base, node.attr, None)
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            result: Any = True
            for v in node.values:
                result = _evaluate(v, ctx)
                if not result:
                    return result
            return result
        result = False
        for v in node.values:
            result = _evaluate(v, ctx)
            if result:
                return result
        return result
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, ctx)
        if isinstance(node.op, ast.Not):
            return not value
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, ctx)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(comp, ctx)
            if not _compare(op, left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Call):
        value = _evaluate(node.args[0], ctx)
        if value is None:
            return 0
        try:
            return len(value)
        except TypeError:
            raise ExpressionError(f"len() of {type(value).__name__} {value!r}") from None
    if isinstance(node, ast.List | ast.Tuple):
        return [_evaluate(e, ctx) for e in node.elts]
    raise ExpressionError(f"cannot evaluate {type(node).__name__}")  # refused at compile time


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _normalise_pair(a: Any, b: Any) -> tuple[Any, Any]:
    if (_is_number(a) and isinstance(b, str)) or (isinstance(a, str) and _is_number(b)):
        na, nb = _as_number(a), _as_number(b)
        if na is not None and nb is not None:
            return na, nb
    if isinstance(a, str) and isinstance(b, str):
        return a.strip(), b.strip()
    return a, b


def _contains(container: Any, item: Any) -> bool:
    if container is None:
        return False
    if isinstance(container, str):
        return (item if isinstance(item, str) else str(item)) in container
    try:
        return bool(item in container)
    except TypeError:
        raise ExpressionError(
            f"cannot look for {item!r} in {type(container).__name__} {container!r}"
        ) from None


def _compare(op: ast.cmpop, a: Any, b: Any) -> bool:
    if isinstance(op, ast.In):
        return _contains(b, a)
    if isinstance(op, ast.NotIn):
        return not _contains(b, a)
    if isinstance(op, ast.Is):  # rewritten ``contains``
        return _contains(a, b)
    if isinstance(op, ast.IsNot):  # rewritten ``not contains``
        return not _contains(a, b)
    a, b = _normalise_pair(a, b)
    if isinstance(op, ast.Eq):
        return bool(a == b)
    if isinstance(op, ast.NotEq):
        return bool(a != b)
    if a is None or b is None:
        return False
    try:
        if isinstance(op, ast.Lt):
            return bool(a < b)
        if isinstance(op, ast.LtE):
            return bool(a <= b)
        if isinstance(op, ast.Gt):
            return bool(a > b)
        return bool(a >= b)
    except TypeError:
        raise ExpressionError(
            f"cannot compare {type(a).__name__} {a!r} with {type(b).__name__} {b!r}"
        ) from None
