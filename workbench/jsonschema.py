"""JSON Schema validation of values (agent output schemas written in YAML)."""

from __future__ import annotations

from typing import Any

__all__ = ["validate_json_schema"]


def validate_json_schema(value: Any, schema: dict[str, Any]) -> str | None:
    """Return ``None`` if ``value`` is valid, else the first problem in plain words."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    err = errors[0]
    where = "/".join(str(p) for p in err.absolute_path) or "(root)"
    return f"{where}: {err.message!s}"
