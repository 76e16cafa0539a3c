"""The values governance passes between its parts: what a rule sees of a run, and what it says.

A `RunView` is the same whether it was read back from Aim or built from a `RunSpec` before the
run was written, so `migrate --rules` and a later `validate` give the same verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
STATUSES = (PASS, WARN, FAIL)
ERROR, WARNING = "error", "warning"
SEVERITIES = (ERROR, WARNING)

# What one rule says about one run.
PASSED, FAILED, MISSING, SKIPPED = "pass", "fail", "missing", "skip"
OUTCOMES = (PASSED, FAILED, MISSING, SKIPPED)

# The status tag a validated run carries, exactly one of these.
TAG_PREFIX = "validation:"


def context_key(context: Mapping[str, Any] | None) -> str:
    """Canonical JSON of an Aim context, the same spelling the normalized `metrics` frame uses."""
    return orjson.dumps(dict(context or {}), option=orjson.OPT_SORT_KEYS).decode()


@dataclass(frozen=True)
class RuleInfo:
    """A rule as reports name it, without what it checks."""

    id: str
    kind: str
    severity: str
    weight: float


@dataclass(frozen=True)
class TraceSummary:
    """Aim's per-series summary (`meta_run_tree['traces'][ctx][name]`), read without the series.

    Aim keeps `last` as the value at the highest step and leaves NaN out of `min`/`max`; a series
    of only NaN has no `min`/`max` at all, hence the Nones.
    """

    first: float | None
    last: float | None
    min: float | None
    max: float | None
    first_step: int | None = None
    last_step: int | None = None

    @classmethod
    def of(cls, steps: Sequence[int], values: Sequence[float]) -> TraceSummary:
        """Summarize a series the way Aim's tracker does while it writes it (points in step order)."""
        if not values:
            return cls(None, None, None, None)
        order = sorted(range(len(steps)), key=steps.__getitem__)
        finite = [float(v) for v in values if not (isinstance(v, float) and math.isnan(v))]
        return cls(
            first=float(values[order[0]]),
            last=float(values[order[-1]]),
            min=min(finite) if finite else None,
            max=max(finite) if finite else None,
            first_step=int(steps[order[0]]),
            last_step=int(steps[order[-1]]),
        )


@dataclass(frozen=True)
class RunView:
    """What a rule can see of one run.

    `params` are the run's params as Aim holds them (`params["hparams"]["lr"]` is `run["hparams"]`'s
    `lr`), so a rule's dotted `field` means the same thing on imported runs and on runs logged live.
    `traces` is keyed by (metric name, `context_key(context)`). `series` loads one series' values,
    only for the rules that need all of them (`agg = "mean"`); None when none can be loaded.
    """

    key: str
    experiment: str | None
    name: str | None
    params: Mapping[str, Any]
    traces: Mapping[tuple[str, str], TraceSummary]
    series: Callable[[str, str], Sequence[float]] | None = None


@dataclass(frozen=True)
class Outcome:
    """One rule's verdict on one run.

    `counts_as` is how the score sees it: "pass", "fail", or None when the rule was not evaluated
    (skipped, or missing with `missing = "skip"`).
    """

    rule: str
    severity: str
    outcome: str
    counts_as: str | None
    weight: float
    field: str | None
    value: Any
    message: str

    def to_param(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "outcome": self.outcome,
            "field": self.field,
            "value": _param_safe(self.value),
            "message": self.message,
        }


@dataclass(frozen=True)
class Validation:
    """A run's score and status under one rules version.

    Score = 100 × Σ weight of passed rules / Σ weight of evaluated rules, one decimal; when no rule
    applies it is 100.0 and the status PASS (nothing holds against the run).
    """

    rules_version: str
    score: float
    status: str
    outcomes: tuple[Outcome, ...] = field(default_factory=tuple)

    @property
    def violations(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.counts_as == FAILED)

    @property
    def tag(self) -> str:
        return TAG_PREFIX + self.status

    def to_param(self) -> dict[str, Any]:
        """The `run["validation"]` value; AimQL reads `run.validation.status` and `.score` from it."""
        return {
            "score": self.score,
            "status": self.status,
            "rules_version": self.rules_version,
            "violations": [o.to_param() for o in self.violations],
        }


def _param_safe(value: Any) -> Any:
    """Aim params take None, bool, int, float, str, lists and dicts of them; anything else as text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_param_safe(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _param_safe(v) for k, v in value.items()}
    return repr(value)
