"""JSON decoding that keeps orjson's speed and still accepts what Python's `json` writes.

Python's `json.dumps` writes bare `NaN`, `Infinity` and `-Infinity` for non-finite floats, and
real logs contain them (the decksage log has `"mrr": Infinity`). orjson rejects those tokens, so
a line is tried with orjson first and only re-parsed by the standard library when orjson fails:
strict lines, nearly all of them, never pay for the fallback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson


class JSONError(ValueError):
    """Text that is not JSON, even with Python's non-finite literals allowed."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise JSONError(f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", exc.lineno) from None
    except UnicodeDecodeError as exc:
        raise JSONError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None


def type_name(value: Any) -> str:
    """The JSON name of a value's type, for messages such as "expected object, got list"."""
    if value is None:
        return "null"
    return {dict: "object", list: "list", str: "string", bool: "boolean"}.get(type(value), "number")


def read_object(path: Path, name: str, *, primary: bool) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    """One JSON-object file of a folder format (a run's `run.json`, a sibling `config.json`):
    (the object or None, (locator, reason) or None). A missing file is no problem.

    The BadRecord's source names the run's primary file already: the primary's own problems are
    located by line (`$` without one), a sibling's by `name` and its line, and the reason names
    it too. An empty file is a problem of its own: a writer may still be writing it.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, ("$" if primary else name, f"cannot read {name}: {exc.strerror or exc}")
    try:
        if not raw.strip():
            raise JSONError("empty file (a writer may still be writing it)")
        value = loads(raw)
    except JSONError as exc:
        line = f"line {exc.line}" if exc.line else ""
        locator = (line or "$") if primary else f"{name} {line}".strip()
        return None, (locator, str(exc) if primary else f"{name}: {exc}")
    if not isinstance(value, dict):
        reason = f"expected object, got {type_name(value)}"
        return None, ("$", reason) if primary else (name, f"{name}: {reason}")
    return value, None
