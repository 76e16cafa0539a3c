"""The declarative rules file: a TOML list of checks a team wants every run to meet.

The file is checked whole when it is loaded, so a typo (`mni = 0.1`, a regex that does not compile,
a `call` that cannot be imported) stops `validate` before any run is judged, rather than turning
into a rule that silently passes everything. Every problem is reported at once, each starting
with `file:line:` like a compiler, because a rules file is edited by hand and fixed in one go.
"""

from __future__ import annotations

import difflib
import importlib
import math
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etl.errors import EtlError
from etl.governance.model import SEVERITIES, RuleInfo, context_key

KINDS = ("range", "min", "max", "threshold", "required", "pattern", "one_of", "type", "python")
AGGS = ("last", "max", "min", "first", "mean")
MISSING_MODES = ("fail", "pass", "skip")
TYPES = ("number", "int", "float", "string", "bool", "list", "dict")
NAME_FIELDS = ("name", "experiment")

_COMMON_KEYS = frozenset({"id", "kind", "severity", "weight", "missing", "message", "where"})
_KIND_KEYS: dict[str, frozenset[str]] = {
    "range": frozenset({"field", "min", "max"}),
    "min": frozenset({"field", "min"}),
    "max": frozenset({"field", "max"}),
    "threshold": frozenset({"metric", "context", "agg", "min", "max"}),
    "required": frozenset({"field"}),
    "pattern": frozenset({"field", "regex"}),
    "one_of": frozenset({"field", "values"}),
    "type": frozenset({"field", "type"}),
    "python": frozenset({"call"}),
}
# A python rule decides for itself what an absent value means (it returns None to skip).
_NOT_FOR: dict[str, frozenset[str]] = {"python": frozenset({"missing"})}
_ALL_KEYS = _COMMON_KEYS.union(*_KIND_KEYS.values())
_TOP_KEYS = ("version", "rules")
_RULES_HEADER = re.compile(r"^\s*\[\[\s*rules\s*\]\]\s*(#.*)?$")
_TOML_AT = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")


class RulesError(EtlError):
    """A rules file that cannot be used; `problems` holds one located message per problem found."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Rule:
    """One checked rule. Regexes are compiled and `call` imported, so evaluating cannot fail on them.

    `fields` is empty for `threshold` and `python`; `context` is the `context_key` of the
    threshold's series. `position` (1-based) and `line` (of the `[[rules]]` header) locate it.
    """

    id: str
    kind: str
    position: int
    line: int | None = None
    severity: str = "error"
    weight: float = 1.0
    missing: str = "fail"
    message: str | None = None
    fields: tuple[str, ...] = ()
    min: int | float | None = None
    max: int | float | None = None
    metric: str | None = None
    context: str = "{}"
    agg: str = "last"
    regex: re.Pattern[str] | None = None
    values: tuple[Any, ...] = ()
    type: str | None = None
    call: str | None = None
    fn: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    where: tuple[tuple[str, re.Pattern[str]], ...] = ()


@dataclass(frozen=True)
class RuleSet:
    """A loaded rules file; `version` is stored on every run it validates."""

    version: str
    source: str
    rules: tuple[Rule, ...]

    def info(self) -> tuple[RuleInfo, ...]:
        return tuple(RuleInfo(r.id, r.kind, r.severity, r.weight) for r in self.rules)


def load_rules(path: str | Path) -> RuleSet:
    """Read and check a rules file; messages name it as it was given (`rules.toml:12: ...`)."""
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as e:
        raise RulesError(source, [f"{source}: cannot read rules file: {e.strerror or e}"]) from e
    except UnicodeDecodeError as e:
        raise RulesError(source, [f"{source}: not UTF-8 text ({e.reason} at byte {e.start})"]) from e
    return parse_rules(text, source)


def parse_rules(text: str, source: str) -> RuleSet:
    """Check a rules file's text; raise one `RulesError` listing every problem found."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RulesError(source, [_toml_problem(source, text, e)]) from e

    problems: list[str] = []
    for key in doc:
        if key not in _TOP_KEYS:
            problems.append(f"{source}: unknown top-level key {key!r}{_did_you_mean(key, _TOP_KEYS)}")
    version = doc.get("version")
    if version is None:
        problems.append(f"{source}: missing version (a non-empty string stored on every validated run)")
    elif not isinstance(version, str) or not version.strip():
        problems.append(f"{source}: version must be a non-empty string, got {_show(version)}")

    raw_rules = doc.get("rules")
    rules: list[Rule] = []
    if raw_rules is None:
        problems.append(f"{source}: no rules (add at least one [[rules]] table)")
    elif not isinstance(raw_rules, list) or not raw_rules:
        problems.append(f"{source}: rules must be a non-empty array of [[rules]] tables")
    else:
        lines = _header_lines(text, len(raw_rules))
        first_at: dict[str, int] = {}
        for position, raw in enumerate(raw_rules, 1):
            where = _Place(source, position, lines[position - 1], raw)
            rule = _parse_rule(raw, where)
            if where.rule_id is not None:
                if where.rule_id in first_at:
                    where.bad(f"duplicate id (also rule {first_at[where.rule_id]})")
                else:
                    first_at[where.rule_id] = position
            problems.extend(where.problems)
            if rule is not None:
                rules.append(rule)
    if problems:
        raise RulesError(source, problems)
    return RuleSet(version=version, source=source, rules=tuple(rules))


class _Place:
    """Collects one rule's problems, each prefixed with where the rule is."""

    def __init__(self, source: str, position: int, line: int | None, raw: Any) -> None:
        self.source = source
        self.position = position
        self.line = line
        rule_id = raw.get("id") if isinstance(raw, dict) else None
        self.rule_id = rule_id if isinstance(rule_id, str) and rule_id else None
        self.problems: list[str] = []

    def bad(self, reason: str) -> None:
        place = f"{self.source}:{self.line}" if self.line else self.source
        who = f"rule {self.rule_id!r} (rule {self.position})" if self.rule_id else f"rule {self.position}"
        self.problems.append(f"{place}: {who}: {reason}")


def _parse_rule(raw: Any, at: _Place) -> Rule | None:
    if not isinstance(raw, dict):
        at.bad(f"expected a table, got {_show(raw)}")
        return None
    if "id" not in raw:
        at.bad("missing id")
    elif at.rule_id is None:
        at.bad(f"id must be a non-empty string, got {_show(raw['id'])}")

    kind = raw.get("kind")
    if kind is None:
        at.bad(f"missing kind (one of {', '.join(KINDS)})")
    elif kind not in KINDS:
        shown = repr(kind) if isinstance(kind, str) else _show(kind)
        at.bad(f"unknown kind {shown}{_did_you_mean(kind, KINDS)}; expected one of {', '.join(KINDS)}")
        kind = None
    _check_keys(raw, kind, at)

    severity = _choice(raw, "severity", SEVERITIES, "error", at)
    missing = _choice(raw, "missing", MISSING_MODES, "fail", at)
    weight = raw.get("weight", 1)
    if not _is_number(weight) or not math.isfinite(weight) or weight < 0:
        at.bad(f"weight must be a number >= 0, got {_show(weight)}")
        weight = 1
    message = raw.get("message")
    if message is not None and not isinstance(message, str):
        at.bad(f"message must be a string, got {_show(message)}")
        message = None
    where = _where(raw.get("where"), at)

    if kind is None:
        return None
    before = len(at.problems)
    specific = _KIND_PARSERS[kind](raw, kind, at)
    if len(at.problems) != before or at.rule_id is None:
        return None
    return Rule(
        id=at.rule_id,
        kind=kind,
        position=at.position,
        line=at.line,
        severity=severity,
        weight=float(weight),
        missing=missing,
        message=message,
        where=where,
        **specific,
    )


def _check_keys(raw: dict[str, Any], kind: str | None, at: _Place) -> None:
    """Unknown keys are errors: a misspelt bound (`mni`) would otherwise be a rule without that bound."""
    allowed = None if kind is None else (_COMMON_KEYS | _KIND_KEYS[kind]) - _NOT_FOR.get(kind, frozenset())
    for key in raw:
        if key not in _ALL_KEYS:
            at.bad(f"unknown key {key!r}{_did_you_mean(key, sorted(allowed or _ALL_KEYS))}")
        elif allowed is not None and key not in allowed:
            at.bad(f"key {key!r} does not apply to kind {kind!r}")


def _fields_part(raw: dict[str, Any], kind: str, at: _Place) -> dict[str, Any]:
    value = raw.get("field")
    if value is None:
        at.bad(f"kind {kind!r} needs field (a run param path, 'name' or 'experiment', or a list of them)")
        return {}
    fields = [value] if isinstance(value, str) else value
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f.strip() for f in fields):
        at.bad(f"field must be a non-empty string or a non-empty list of them, got {_show(value)}")
        return {}
    return {"fields": tuple(fields)}


def _bounds_part(raw: dict[str, Any], kind: str, at: _Place) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in (kind,) if kind in ("min", "max") else ("min", "max"):
        if name not in raw:
            continue
        bound = raw[name]
        if not _is_number(bound) or math.isnan(bound):
            at.bad(f"{name} must be a number, got {_show(bound)}")
        else:
            out[name] = bound
    if kind in ("min", "max") and kind not in raw:
        at.bad(f"kind {kind!r} needs {kind}")
    elif "min" not in raw and "max" not in raw:
        at.bad(f"kind {kind!r} needs min, max or both")
    if "min" in out and "max" in out and out["min"] > out["max"]:
        at.bad(f"min {out['min']!r} is greater than max {out['max']!r}")
    return out


def _range(raw: dict[str, Any], kind: str, at: _Place) -> dict[str, Any]:
    return _fields_part(raw, kind, at) | _bounds_part(raw, kind, at)


def _threshold(raw: dict[str, Any], kind: str, at: _Place) -> dict[str, Any]:
    out: dict[str, Any] = {}
    metric = raw.get("metric")
    if metric is None:
        at.bad("kind 'threshold' needs metric (a tracked metric's name)")
    elif not isinstance(metric, str) or not metric:
        at.bad(f"metric must be a non-empty string, got {_show(metric)}")
    else:
        out["metric"] = metric
    context = raw.get("context", {})
    if isinstance(context, dict):
        out["context"] = context_key(context)
    else:
        at.bad(f'context must be a table such as {{ subset = "val" }}, got {_show(context)}')
    out["agg"] = _choice(raw, "agg", AGGS, "last", at)
    return out | _bounds_part(raw, kind, at)


def _required(raw: dict[str, Any], kind: str, at: _Place) -> dict[str, Any]:
    return _fields_part(raw, kind, at)


def _pattern(raw: dict[str, Any], kind: str, at: _Place) -> dict[str, Any]:
    out = _fields_part(raw, kind, at)
    if "regex" not in raw:
        at.bad("kind 'pattern' needs regex")
    else:
        compiled = _compile(raw["regex"], "regex", at)
        if compiled is not None:
            out["regex"] = compiled
    return out


def _one_of(raw: dict[str, Any], kind: str, at: _Place) -> dict[str, Any]:
    out = _fields_part(raw, kind, at)
    values = raw.get("values")
    if not isinstance(values, list) or not values:
        at.bad(f"kind 'one_of' needs values, a non-empty list, got {_show(values)}")
    else:
        out["values"] = tuple(values)
    return out


def _type(raw: dict[str, Any], kind: str, at: _Place) -> dict[str, Any]:
    out = _fields_part(raw, kind, at)
    if "type" not in raw:
        at.bad(f"kind 'type' needs type (one of {', '.join(TYPES)})")
    else:
        out["type"] = _choice(raw, "type", TYPES, None, at)
    return out


def _python(raw: dict[str, Any], kind: str, at: _Place) -> dict[str, Any]:
    """Import the check now: a rules file that names a function which is not there is a broken file."""
    call = raw.get("call")
    if call is None:
        at.bad("kind 'python' needs call ('package.module:function')")
        return {}
    module_name, _, attr = call.partition(":") if isinstance(call, str) else ("", "", "")
    if not module_name or not attr:
        at.bad(f"call must look like 'package.module:function', got {_show(call)}")
        return {}
    try:
        fn: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            fn = getattr(fn, part)
    except Exception as e:  # an import runs arbitrary module code; any failure is the file's problem
        at.bad(f"cannot import call {call!r}: {e.__class__.__name__}: {e}")
        return {}
    if not callable(fn):
        at.bad(f"call {call!r} is not callable ({type(fn).__name__})")
        return {}
    return {"call": call, "fn": fn}


_KIND_PARSERS: dict[str, Callable[[dict[str, Any], str, _Place], dict[str, Any]]] = {
    "range": _range,
    "min": _range,
    "max": _range,
    "threshold": _threshold,
    "required": _required,
    "pattern": _pattern,
    "one_of": _one_of,
    "type": _type,
    "python": _python,
}


def _where(raw: Any, at: _Place) -> tuple[tuple[str, re.Pattern[str]], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        at.bad(f"where must be a table of field = regex, got {_show(raw)}")
        return ()
    out = []
    for key, pattern in raw.items():
        compiled = _compile(pattern, f"where.{key}", at)
        if compiled is not None:
            out.append((key, compiled))
    return tuple(out)


def _compile(pattern: Any, what: str, at: _Place) -> re.Pattern[str] | None:
    if not isinstance(pattern, str):
        at.bad(f"{what} must be a string, got {_show(pattern)}")
        return None
    try:
        return re.compile(pattern)
    except re.error as e:
        at.bad(f"{what} {pattern!r} does not compile: {e}")
        return None


def _choice(raw: dict[str, Any], key: str, allowed: Sequence[str], default: Any, at: _Place) -> Any:
    if key not in raw:
        return default
    value = raw[key]
    if not isinstance(value, str) or value not in allowed:
        at.bad(f"{key} must be one of {', '.join(allowed)}, got {_show(value)}")
        return default
    return value


def _is_number(value: Any) -> bool:
    # bool is an int in Python, but `min = true` is a mistake, not 1.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _did_you_mean(word: Any, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _header_lines(text: str, count: int) -> list[int | None]:
    """The line of each `[[rules]]` header, when they can be matched one-to-one with the rules.

    tomllib keeps no positions; counting headers is exact unless rules are written inline
    (`rules = [{...}]`) or a multi-line string holds a header-like line; then lines are left out
    rather than guessed.
    """
    found = [n for n, line in enumerate(text.splitlines(), 1) if _RULES_HEADER.match(line)]
    return list(found) if len(found) == count else [None] * count


def _toml_problem(source: str, text: str, error: tomllib.TOMLDecodeError) -> str:
    message = str(error)
    at = _TOML_AT.search(message)
    if at is None:
        return f"{source}: invalid TOML: {message}"
    reason = message[: at.start()]
    if at.group(1) is None:  # "at end of document"
        return f"{source}:{max(1, len(text.splitlines()))}: invalid TOML: {reason} (at end of file)"
    return f"{source}:{at.group(1)}: invalid TOML: {reason} (column {at.group(2)})"
