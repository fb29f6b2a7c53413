"""The ``calculator`` toolkit: evaluate arithmetic exactly, never with ``eval``.

The expression is parsed with :mod:`ast` and walked: numbers, ``+ - * / // % **``, unary
signs, parentheses, a fixed set of functions (``sqrt sin cos tan log exp abs round min max
floor ceil``) and the constants ``pi`` and ``e``. Anything else (names, attributes, calls of
other things, strings) is refused. Integers stay exact; results beyond about 3,000 digits
are refused rather than computed, so ``9**9**9`` costs nothing.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.tools import FunctionToolkit, ToolError, tool

__all__ = ["CalculatorToolkit", "evaluate_expression"]

Number = int | float

MAX_BITS = 10_000
"""The largest integer result, in bits (about 3,000 decimal digits)."""
MAX_EXPRESSION = 2_000
"""The longest expression accepted, in characters."""

_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "log": math.log,
    "exp": math.exp,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "floor": math.floor,
    "ceil": math.ceil,
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}


def _check(value: Any) -> Number:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError(f"the result is not a real number: {value!r}")
    if isinstance(value, int) and value.bit_length() > MAX_BITS:
        raise ToolError(f"the result is too large (more than {MAX_BITS} bits)")
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        raise ToolError("the result is too large or undefined (overflow)")
    return value


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        # |base| ** exponent has about exponent * log2|base| bits: refuse before computing.
        # (Float powers raise OverflowError by themselves.)
        if exponent * math.log2(abs(base)) > MAX_BITS:
            raise ToolError(f"the result of {base} ** {exponent} is too large")
    result = base**exponent
    if isinstance(result, complex):
        raise ToolError("the result is not a real number (a fractional power of a negative)")
    return result


_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    ast.Pow: _power,
}


def _short(value: Number) -> str:
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 200 else "<big int>"
    return text if len(text) <= 40 else text[:37] + "..."


def _eval(node: ast.AST) -> Number:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ToolError(f"only numbers are allowed, not {node.value!r}")
        return _check(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _eval(node.operand)
        return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if (
            isinstance(node.op, ast.Mult)
            and isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() + right.bit_length() > MAX_BITS + 1
        ):
            # Refused before multiplying: the product has at least this many bits.
            raise ToolError(f"the result is too large (more than {MAX_BITS} bits)")
        try:
            return _check(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
        except OverflowError:
            raise ToolError("the result is too large (overflow)") from None
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise ToolError(
            f"unknown name {node.id!r}: constants are {', '.join(_CONSTANTS)}; "
            f"functions are {', '.join(_FUNCTIONS)}"
        )
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            what = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise ToolError(f"unknown function {what!r}: allowed are {', '.join(_FUNCTIONS)}")
        if node.keywords:
            raise ToolError(f"{node.func.id}() takes positional arguments only")
        args = [_eval(a) for a in node.args]
        call = f"{node.func.id}({', '.join(_short(a) for a in args)})"
        try:
            return _check(_FUNCTIONS[node.func.id](*args))
        except (TypeError, ValueError) as exc:
            raise ToolError(f"{call}: {exc}") from None
        except OverflowError:
            raise ToolError(f"{call}: the number is too large") from None
    if isinstance(node, ast.Attribute):
        raise ToolError("attribute access is not allowed")
    raise ToolError(f"not allowed in an expression: {type(node).__name__}")


def evaluate_expression(expression: str) -> Number:
    """Evaluate an arithmetic expression safely.

    Raises:
        ToolError: the expression is malformed, uses anything not allowed, divides by zero
            or would be too large.
    """
    text = expression.strip()
    if not text:
        raise ToolError("the expression is empty")
    if len(text) > MAX_EXPRESSION:
        raise ToolError(f"the expression is too long (more than {MAX_EXPRESSION} characters)")
    try:
        tree = ast.parse(text.replace("^", "**") if "^" in text else text, mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"not a valid expression: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise ToolError("the expression is too deeply nested") from None
    try:
        return _eval(tree)
    except RecursionError:
        raise ToolError("the expression is too deeply nested") from None


def _format(value: Number) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value)) if value != 0 else "0"
    return repr(value)


class CalculatorToolkit(FunctionToolkit):
    """Arithmetic: ``evaluate``. Safe to allow: it runs no code and touches nothing."""

    def __init__(self, name: str, config: dict[str, Any], root: Path) -> None:
        super().__init__(name, config, root)
        self.add(tool(name="evaluate", timeout=10.0, idempotent=True)(self.evaluate))

    def evaluate(self, expression: str) -> str:
        """Evaluate an arithmetic expression exactly, e.g. ``sqrt(2) * (3 + 4) ** 2``.

        Supports numbers, ``+ - * / // % **`` (``^`` means ``**``), parentheses, the
        functions sqrt, sin, cos, tan, log (natural, or ``log(x, base)``), exp, abs, round,
        min, max, floor, ceil, and the constants pi and e.

        Args:
            expression: The expression to evaluate.
        """
        return _format(evaluate_expression(expression))
