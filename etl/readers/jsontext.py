"""JSON decoding that keeps orjson's speed and still accepts what Python's `json` writes.

Python's `json.dumps` writes bare `NaN`, `Infinity` and `-Infinity` for non-finite floats, and
real logs contain them (the decksage log has `"mrr": Infinity`). orjson rejects those tokens, so
a line is tried with orjson first and only re-parsed by the standard library when orjson fails:
strict lines, nearly all of them, never pay for the fallback.

Neither parser reads every valid JSON text: orjson stops at 1,024 levels of nesting and the
standard library's recursive parser at Python's recursion limit (RecursionError), and the standard
library refuses an int of more than 4,300 digits (ValueError). Such a text is read by a third,
iterative parser here: slow, but only hostile or broken input ever reaches it, and it reads any
depth. What Aim cannot then store (the deep part, the huge int) is `etl.storable`'s business.
"""

from __future__ import annotations

import json
import re
from json.decoder import scanstring
from json.scanner import NUMBER_RE
from pathlib import Path
from typing import Any

import orjson

from etl.storable import IntText


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
    except (RecursionError, ValueError):
        # Nested too deep for the recursive parser, or an int too long for `int()`: valid JSON all the same.
        return _loads_iteratively(data)


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_CONSTANTS = (
    ("null", None),
    ("true", True),
    ("false", False),
    ("NaN", float("nan")),
    ("Infinity", float("inf")),
    ("-Infinity", float("-inf")),
)


def _loads_iteratively(data: bytes | str) -> Any:
    """`json.loads` with an explicit stack instead of recursion: same values, same errors, any depth.

    Ints too long for `int()` come back as `IntText`, their digits, which `etl.storable` counts.
    """
    if isinstance(data, bytes | bytearray):
        try:
            text = data.decode(json.detect_encoding(data), "surrogatepass")
        except UnicodeDecodeError as exc:
            raise JSONError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    else:
        text = data
    try:
        return _parse(text)
    except json.JSONDecodeError as exc:
        raise JSONError(f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", exc.lineno) from None


def _parse(text: str) -> Any:
    if text.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    end = len(text)
    # Open containers, innermost last: [container, the key its next value goes under].
    stack: list[list[Any]] = []
    pos = _WHITESPACE.match(text, 0).end()
    while True:
        # A value starts at `pos`.
        char = text[pos : pos + 1]
        if char == "{" or char == "[":
            pos = _WHITESPACE.match(text, pos + 1).end()
            if text.startswith("}" if char == "{" else "]", pos):
                value, pos = ({} if char == "{" else []), pos + 1
            elif char == "{":
                key, pos = _key(text, pos)
                stack.append([{}, key])
                continue
            else:
                stack.append([[], None])
                continue
        elif char == '"':
            value, pos = scanstring(text, pos + 1, True)
        else:
            value, pos = _scalar(text, pos)
        # A value is complete: put it in its container, closing every container it completes.
        while True:
            if not stack:
                pos = _WHITESPACE.match(text, pos).end()
                if pos != end:
                    raise json.JSONDecodeError("Extra data", text, pos)
                return value
            top = stack[-1]
            container = top[0]
            if isinstance(container, dict):
                container[top[1]] = value
            else:
                container.append(value)
            pos = _WHITESPACE.match(text, pos).end()
            char = text[pos : pos + 1]
            if char == ",":
                pos = _WHITESPACE.match(text, pos + 1).end()
                if isinstance(container, dict):
                    top[1], pos = _key(text, pos)
                break
            if char == ("}" if isinstance(container, dict) else "]"):
                stack.pop()
                value, pos = container, pos + 1
                continue
            raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)


def _key(text: str, pos: int) -> tuple[str, int]:
    """A dict key and its colon at `pos`; returns the key and where its value starts."""
    if not text.startswith('"', pos):
        raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, pos)
    key, pos = scanstring(text, pos + 1, True)
    pos = _WHITESPACE.match(text, pos).end()
    if not text.startswith(":", pos):
        raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
    return key, _WHITESPACE.match(text, pos + 1).end()


def _scalar(text: str, pos: int) -> tuple[Any, int]:
    match = NUMBER_RE.match(text, pos)
    if match is not None:
        integer, frac, exp = match.groups()
        if frac or exp:
            return float(integer + (frac or "") + (exp or "")), match.end()
        try:
            return int(integer), match.end()
        except ValueError:  # more digits than Python converts (4,300): kept as the digits
            return IntText(integer), match.end()
    for word, value in _CONSTANTS:
        if text.startswith(word, pos):
            return value, pos + len(word)
    raise json.JSONDecodeError("Expecting value", text, pos)


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
