"""The one place a parsed record is made storable: the nearest faithful form of what Aim cannot hold.

JSON allows values that Aim (and Python code walking them) cannot take as they are. Each is
replaced here by the closest value that keeps its information, and counted by kind so the
report can say how many and where:

- `surrogate`: a string (or key) with a lone UTF-16 surrogate escape (`"\\ud800"`). JSON text can
  spell one, Python decodes it, but no UTF-8 writer (Aim's, SQLite's) can encode it. Each lone
  surrogate becomes U+FFFD, the character Unicode reserves for "a character was here".
- `big_int`: an int outside int64. Aim stores ints as 64-bit and raises OverflowError, and
  `float()` of a 400-digit int raises too: the digits are kept, as a string.
- `deep`: a list or dict nested deeper than `MAX_DEPTH`. Walking it recursively (Python's parser
  and encoder, this tool's own helpers) ends in RecursionError; it is kept as its JSON text,
  a string, which holds every value it had.
- `type`: a value no JSON parser yields (a YAML date, bytes, a set) coming from a reader that
  does not parse JSON: kept as its `str()`, as Aim would show it.

Everything here walks with an explicit stack, never recursion, so no input depth can stop it;
a record with nothing to fix comes back as the very same object, uncopied.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from json.encoder import encode_basestring_ascii
from typing import Any

# Measured with aim 3.29 on Python 3.11: Aim stores and reads back params 1,000 levels deep, but
# orjson.dumps refuses 255 levels, and Python's recursion limit (1,000 frames, two per level in a
# recursive walker with a comprehension) stops a recursive walk near 470 levels, less the stack
# of the import around it. 100 keeps every consumer far from those limits and is still ten times
# deeper than any real config seen (the deepest in the corpus is under 10).
MAX_DEPTH = 100

# What Aim is given for an empty key or metric name: its params tree cannot hold the key "", and
# a series named "" is written but breaks every later read of the run's metrics (aim 3.29).
EMPTY_KEY = "(empty)"

SURROGATE = "surrogate"
BIG_INT = "big_int"
DEEP = "deep"
TYPE = "type"
KINDS = (SURROGATE, BIG_INT, DEEP, TYPE)
# What the report says for each kind, after the count: (one, several).
DESCRIPTIONS = {
    SURROGATE: (
        "string with lone surrogates, each replaced by U+FFFD",
        "strings with lone surrogates, each replaced by U+FFFD",
    ),
    BIG_INT: ("int beyond 64 bits kept as text", "ints beyond 64 bits kept as text"),
    DEEP: (
        f"value nested deeper than {MAX_DEPTH} levels kept as JSON text",
        f"values nested deeper than {MAX_DEPTH} levels kept as JSON text",
    ),
    TYPE: ("non-JSON value kept as text", "non-JSON values kept as text"),
}

_INT64 = 2**63
_SURROGATES = re.compile("[\ud800-\udfff]")


class IntText(str):
    """An int with more digits than Python's `int()` converts (4,300), kept as its digits by the
    JSON parser; made a plain string here and counted as a `big_int`."""


def describe(counts: Counter[str] | dict[str, int]) -> str:
    """`2 strings with lone surrogates, each replaced by U+FFFD; 1 int beyond 64 bits kept as text`."""
    return "; ".join(f"{counts[k]} {DESCRIPTIONS[k][counts[k] > 1]}" for k in KINDS if counts.get(k))


def make_storable(
    value: Any, *, max_depth: int = MAX_DEPTH, empty_key: str | None = None
) -> tuple[Any, Counter[str]]:
    """(the nearest storable form of `value`, how many values of each kind were changed).

    Depth counts containers: the record's own dict is level 1, so a container at level
    `max_depth + 1` or below is kept as its JSON text. `empty_key` renames the key `""`, which
    an Aim param cannot have (not counted: the record itself is hashed with its empty key).
    """
    counts: Counter[str] = Counter()
    if _is_storable(value, max_depth, empty_key is not None):
        return value, counts
    scalar, changed = _scalar(value, counts)
    if scalar is not _CONTAINER:
        return (scalar if changed else value), counts
    if max_depth < 1:
        counts[DEEP] += 1
        return to_json_text(value), counts
    # Each frame: [original, items iterator, rebuilt items, changed?, depth, pending key].
    root: list[Any] = _frame(value, 1)
    stack = [root]
    result: Any = value
    while stack:
        frame = stack[-1]
        original, items, rebuilt, _, depth, _ = frame
        try:
            key, child = next(items)
        except StopIteration:
            stack.pop()
            out = _finish(frame, counts)
            if stack:
                parent = stack[-1]
                _append(parent, parent[5], out, out is not original)
            else:
                result = out
            continue
        if isinstance(original, dict):
            fixed = _fix_string(key, counts) if isinstance(key, str) else str(key)
            if not fixed and empty_key is not None:
                fixed = empty_key
            frame[5] = fixed
            if fixed is not key:
                frame[3] = True
        else:
            frame[5] = None
        new, changed = _scalar(child, counts)
        if new is not _CONTAINER:
            _append(frame, frame[5], new if changed else child, changed)
        elif depth >= max_depth:
            counts[DEEP] += 1
            _append(frame, frame[5], to_json_text(child), True)
        else:
            stack.append(_frame(child, depth + 1))
    return result, counts


_CONTAINER = object()


def _is_storable(value: Any, max_depth: int, no_empty_key: bool) -> bool:
    """True when nothing in `value` needs changing: the walk every clean record takes, three times
    faster than rebuilding (0.2 s for a 100,000-point history). Any doubt (a subclass, a tuple)
    answers False, and the full walk decides."""
    stack = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        kind = type(container)
        if kind is not dict and kind is not list:
            return _is_storable_scalar(container)  # only the root can be a scalar here
        if depth > max_depth:
            return False
        if kind is dict:
            for key in container:
                if type(key) is not str or not (key.isascii() or _encodable(key)) or (no_empty_key and not key):
                    return False
        for item in container.values() if kind is dict else container:
            kind = type(item)
            if kind is dict or kind is list:
                stack.append((item, depth + 1))
            elif not _is_storable_scalar(item):
                return False
    return True


def _is_storable_scalar(value: Any) -> bool:
    kind = type(value)
    if kind is float or kind is bool or value is None:
        return True
    if kind is str:
        return value.isascii() or _encodable(value)
    return kind is int and -_INT64 <= value < _INT64


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _frame(container: dict | list | tuple, depth: int) -> list[Any]:
    items = iter(container.items()) if isinstance(container, dict) else ((None, v) for v in container)
    return [container, items, [], isinstance(container, tuple), depth, None]


def _append(frame: list[Any], key: Any, value: Any, changed: bool) -> None:
    frame[2].append((key, value))
    if changed:
        frame[3] = True


def _finish(frame: list[Any], counts: Counter[str]) -> Any:
    original, _, rebuilt, changed, _, _ = frame
    if not changed:
        return original
    if not isinstance(original, dict):
        return [v for _, v in rebuilt]
    out: dict[str, Any] = {}
    for key, value in rebuilt:
        # Two keys that differed only in their lone surrogates would now collide: neither value is lost.
        unique, n = key, 2
        while unique in out:
            unique, n = f"{key}~{n}", n + 1
        out[unique] = value
    return out


def _scalar(value: Any, counts: Counter[str]) -> tuple[Any, bool]:
    """(storable value, changed?), or (`_CONTAINER`, False) for a list or dict to walk."""
    if value is None or isinstance(value, bool | float):
        return value, False
    if type(value) is IntText:
        counts[BIG_INT] += 1
        return str.__str__(value), True
    if isinstance(value, str):
        fixed = _fix_string(value, counts)
        return fixed, fixed is not value
    if isinstance(value, int):
        if -_INT64 <= value < _INT64:
            return value, False
        counts[BIG_INT] += 1
        return _int_text(value), True
    if isinstance(value, dict | list | tuple):
        return _CONTAINER, False
    counts[TYPE] += 1
    return _fix_string(str(value), counts), True


def _fix_string(text: str, counts: Counter[str]) -> str:
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        counts[SURROGATE] += 1
        return _SURROGATES.sub("\ufffd", text)
    return text


def _int_text(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # beyond Python's int-to-text limit (4,300 digits): only hex is not limited
        return hex(value)


def to_json_text(value: Any) -> str:
    """JSON text of any JSON value, at any depth, without recursion.

    As `json.dumps` writes it (`NaN`, `Infinity`, ASCII escapes, so a lone surrogate is kept as its
    `\\ud800` escape and the text stays encodable), compact; other types as their `str()`.
    """
    out: list[str] = []
    # Work items: a value to write, or a literal piece of text (a separator, a closing bracket).
    stack: list[tuple[bool, Any]] = [(False, value)]
    while stack:
        literal, item = stack.pop()
        if literal:
            out.append(item)
        elif isinstance(item, dict):
            pieces: list[tuple[bool, Any]] = [(True, "{")]
            for i, (key, child) in enumerate(item.items()):
                pieces += [(True, ("," if i else "") + encode_basestring_ascii(str(key)) + ":"), (False, child)]
            pieces.append((True, "}"))
            stack.extend(reversed(pieces))
        elif isinstance(item, list | tuple):
            pieces = [(True, "[")]
            for i, child in enumerate(item):
                if i:
                    pieces.append((True, ","))
                pieces.append((False, child))
            pieces.append((True, "]"))
            stack.extend(reversed(pieces))
        else:
            out.append(_scalar_text(item))
    return "".join(out)


def _scalar_text(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, int):
        return _int_text(value)
    return encode_basestring_ascii(str(value))
