"""Judge one run against a rule set: one `Outcome` per rule, a weighted score and a status.

Evaluation never raises for what a run holds: a string where a number belongs, a NaN, a series
that is not there, or a python check that crashes all become outcomes, because one odd run must
not stop the validation of the others. Only a rule set that did not come from `parse_rules` could.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from etl.governance.model import (
    ERROR,
    FAIL,
    FAILED,
    MISSING,
    PASS,
    PASSED,
    SKIPPED,
    WARN,
    WARNING,
    Outcome,
    RunView,
    Validation,
)
from etl.governance.rules import Rule, RuleSet

_ABSENT: Any = object()


def evaluate(rules: RuleSet, run: RunView) -> Validation:
    """Score = 100 × passed weight / evaluated weight (one decimal); the worst failing severity sets the status."""
    outcomes = tuple(_judge(rule, run) for rule in rules.rules)
    return Validation(rules_version=rules.version, score=_score(outcomes), status=_status(outcomes), outcomes=outcomes)


def _score(outcomes: tuple[Outcome, ...]) -> float:
    evaluated = sum(o.weight for o in outcomes if o.counts_as is not None)
    if evaluated == 0:  # nothing applied (or only zero weights): nothing holds against the run
        return 100.0
    passed = sum(o.weight for o in outcomes if o.counts_as == PASSED)
    return round(100 * passed / evaluated, 1)


def _status(outcomes: tuple[Outcome, ...]) -> str:
    failing = {o.severity for o in outcomes if o.counts_as == FAILED}
    return FAIL if ERROR in failing else WARN if WARNING in failing else PASS


class _Verdict:
    """Builds a rule's `Outcome`; the rule's own `message` replaces default texts of plain failures."""

    def __init__(self, rule: Rule, field: str | None) -> None:
        self.rule = rule
        self.field = field

    def _make(self, outcome: str, counts_as: str | None, value: Any, message: str) -> Outcome:
        r = self.rule
        return Outcome(r.id, r.severity, outcome, counts_as, r.weight, self.field, value, message)

    def passed(self, value: Any, message: str) -> Outcome:
        return self._make(PASSED, PASSED, value, message)

    def failed(self, value: Any, message: str) -> Outcome:
        """The value was checked and does not meet the rule."""
        return self._make(FAILED, FAILED, value, self.rule.message or message)

    def broken(self, value: Any, detail: str) -> Outcome:
        """A failure for another cause (wrong type, NaN, a crashing check): the rule's message alone
        would misstate it, so the cause is kept beside it."""
        return self._make(FAILED, FAILED, value, f"{self.rule.message} ({detail})" if self.rule.message else detail)

    def missing(self, detail: str) -> Outcome:
        counts_as = {"fail": FAILED, "pass": PASSED}.get(self.rule.missing)
        if counts_as == FAILED and self.rule.message:
            # For `required` a missing value is the very failure the message describes.
            detail = self.rule.message if self.rule.kind == "required" else f"{self.rule.message} ({detail})"
        return self._make(MISSING, counts_as, None, detail)

    def skipped(self, message: str) -> Outcome:
        return self._make(SKIPPED, None, None, message)


def _judge(rule: Rule, run: RunView) -> Outcome:
    label = _metric_label(rule) if rule.kind == "threshold" else (rule.fields[0] if rule.fields else None)
    for name, pattern in rule.where:
        value = _resolve(run, name)
        if value is _ABSENT or not pattern.search(str(value)):
            shown = "missing" if value is _ABSENT else repr(str(value))
            return _Verdict(rule, label).skipped(f"not applicable: {name} ({shown}) does not match {pattern.pattern!r}")
    if rule.kind == "python":
        return _python(rule, run)
    if rule.kind == "threshold":
        return _threshold(rule, run, _Verdict(rule, label))

    used, value = _first_present(run, rule.fields)
    verdict = _Verdict(rule, used)
    if value is _ABSENT:
        if len(rule.fields) == 1:
            return verdict.missing(f"{used} is missing")
        return verdict.missing(f"none of {', '.join(rule.fields)} is set")
    if rule.kind in ("range", "min", "max"):
        return _bounded(rule, verdict, used, value)
    if rule.kind == "required":
        return verdict.passed(value, f"{used} is set")
    if rule.kind == "pattern":
        assert rule.regex is not None
        if not isinstance(value, str):
            return verdict.broken(value, f"{used}: expected a string, got {_show(value)}")
        if rule.regex.search(value):
            return verdict.passed(value, f"{used} = {_short(value)} matches {rule.regex.pattern!r}")
        return verdict.failed(value, f"{used} = {_short(value)} does not match {rule.regex.pattern!r}")
    if rule.kind == "one_of":
        allowed = ", ".join(repr(v) for v in rule.values)
        if any(_same(value, v) for v in rule.values):
            return verdict.passed(value, f"{used} = {value!r} is one of {allowed}")
        return verdict.failed(value, f"{used} = {_short(value)} is not one of {allowed}")
    if rule.kind == "type":
        if _has_type(value, rule.type):
            return verdict.passed(value, f"{used} is a {rule.type}")
        return verdict.failed(value, f"{used}: expected {rule.type}, got {_show(value)}")
    raise AssertionError(f"rule kind {rule.kind!r} has no evaluation")  # parse_rules admits only known kinds


def _resolve(run: RunView, path: str) -> Any:
    """A field's value, or `_ABSENT` when it is not there or is None.

    Param keys may contain dots themselves (`"optimizer.lr"` logged as one key), so at each level
    the longest dotted join of the remaining parts is tried first; a join that exists but does not
    lead to a value falls back to shorter ones.
    """
    if path == "name":
        return _ABSENT if run.name is None else run.name
    if path == "experiment":
        return _ABSENT if run.experiment is None else run.experiment
    return _lookup(run.params, path.split("."))


def _lookup(node: Any, parts: list[str]) -> Any:
    if not parts:
        return _ABSENT if node is None else node
    if not isinstance(node, Mapping):
        return _ABSENT
    for cut in range(len(parts), 0, -1):
        key = ".".join(parts[:cut])
        if key in node:
            found = _lookup(node[key], parts[cut:])
            if found is not _ABSENT:
                return found
    return _ABSENT


def _first_present(run: RunView, fields: tuple[str, ...]) -> tuple[str, Any]:
    for name in fields:
        value = _resolve(run, name)
        if value is not _ABSENT:
            return name, value
    return fields[0], _ABSENT


def _bounded(rule: Rule, verdict: _Verdict, label: str, value: Any) -> Outcome:
    """Inclusive bounds; NaN is outside every bound, and ±inf compares as the number it is."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return verdict.broken(value, f"{label}: expected a number, got {_show(value)}")
    if math.isnan(value):
        return verdict.broken(value, f"{label} is NaN, which fails every bound")
    if rule.min is not None and value < rule.min:
        return verdict.failed(value, f"{label} = {value!r} is below min {rule.min!r}")
    if rule.max is not None and value > rule.max:
        return verdict.failed(value, f"{label} = {value!r} is above max {rule.max!r}")
    if rule.min is not None and rule.max is not None:
        return verdict.passed(value, f"{label} = {value!r} is within [{rule.min!r}, {rule.max!r}]")
    if rule.min is not None:
        return verdict.passed(value, f"{label} = {value!r} is at least {rule.min!r}")
    return verdict.passed(value, f"{label} = {value!r} is at most {rule.max!r}")


def _threshold(rule: Rule, run: RunView, verdict: _Verdict) -> Outcome:
    assert rule.metric is not None
    series = _metric_label(rule)
    trace = run.traces.get((rule.metric, rule.context))
    if trace is None:
        return verdict.missing(f"no series {series} in this run")
    if rule.agg == "mean":
        if run.series is None:
            return verdict.missing(f"series {series} could not be loaded to take its mean")
        values = [float(v) for v in run.series(rule.metric, rule.context)]
        if not values:
            return verdict.missing(f"series {series} has no values")
        value = _mean(values)
    else:
        got = getattr(trace, rule.agg)
        # Aim leaves min/max out when every value is NaN; that series met no bound.
        value = math.nan if got is None else got
    return _bounded(rule, verdict, f"{rule.agg} of {series}", value)


def _mean(values: list[float]) -> float:
    if any(math.isnan(v) for v in values):
        return math.nan
    try:
        return math.fsum(values) / len(values)
    except ValueError:  # both +inf and -inf: no mean
        return math.nan


def _python(rule: Rule, run: RunView) -> Outcome:
    """A custom check returns True/False, (bool, message), or None to say it does not apply."""
    assert rule.fn is not None
    verdict = _Verdict(rule, None)
    try:
        result = rule.fn(run)
    except Exception as e:  # a bug in one check is that rule's failure, not the end of validation
        return verdict.broken(None, f"{rule.call} raised {e.__class__.__name__}: {e}")
    if result is None:
        return verdict.skipped(f"{rule.call} does not apply to this run")
    message = None
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], str):
        result, message = result
    if not isinstance(result, bool):
        return verdict.broken(
            None, f"{rule.call} returned {_show(result)}; expected True, False, (bool, message) or None"
        )
    if result:
        return verdict.passed(None, message or f"{rule.call} passed")
    return verdict.failed(None, message or f"{rule.call} failed")


def _metric_label(rule: Rule) -> str:
    return rule.metric if rule.context == "{}" else f"{rule.metric} {rule.context}"


def _has_type(value: Any, expected: str | None) -> bool:
    is_bool = isinstance(value, bool)
    return {
        "number": isinstance(value, int | float) and not is_bool,
        "int": isinstance(value, int) and not is_bool,
        "float": isinstance(value, float),
        "string": isinstance(value, str),
        "bool": is_bool,
        "list": isinstance(value, list | tuple),
        "dict": isinstance(value, Mapping),
    }.get(expected or "", False)


def _same(value: Any, allowed: Any) -> bool:
    # True == 1 in Python, but a flag set to true is not the number 1 a rule lists.
    return isinstance(value, bool) == isinstance(allowed, bool) and value == allowed


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _show(value: Any) -> str:
    return f"{type(value).__name__} {_short(value)}"
