"""What a governance pass found: per run, per rule, and overall; for a terminal and as a file.

`aim-etl validate` and `migrate --rules` both fill a `GovernanceReport` with one `CheckedRun` per
run they looked at, whatever happened to it (written, unchanged, dry run, held open, rejected,
imported), so the figures and every renderer here read one value and never Aim. The figures are
computed on demand rather than stored because the pipeline appends runs as it goes.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from etl.governance.model import (
    FAIL,
    FAILED,
    MISSING,
    PASS,
    PASSED,
    SKIPPED,
    STATUSES,
    WARN,
    Outcome,
    RuleInfo,
    Validation,
)

# What happened to a run in this pass (`CheckedRun.state`).
WRITTEN = "written"  # its validation was written on the run
UNCHANGED = "unchanged"  # it already carried this exact validation; nothing written
DRY_RUN = "dry-run"  # its validation would be written
ACTIVE = "active"  # held open by another process: not checked
REJECTED = "rejected"  # import with --strict: kept out of Aim because of error violations
IMPORTED = "imported"  # validated on import and written
STATES = (WRITTEN, UNCHANGED, DRY_RUN, ACTIVE, REJECTED, IMPORTED)

# `fails_on` levels, as `--fail-on` spells them.
FAIL_LEVELS = ("error", "warning")

REPORT_SUFFIXES = (".json", ".md", ".csv", ".html")

CSV_COLUMNS = (
    "run_hash",
    "experiment",
    "name",
    "state",
    "status",
    "score",
    "rule",
    "severity",
    "outcome",
    "counts_as",
    "field",
    "value",
    "message",
)

HISTOGRAM_BINS = 10
# Worst first: a FAIL needs attention before a WARN.
_STATUS_RANK = {FAIL: 0, WARN: 1, PASS: 2}


@dataclass(frozen=True)
class CheckedRun:
    """One run as a governance pass saw it.

    Only an `active` run has no validation: another process holds it open, so reading it could
    give a verdict on a half-written run. The check in `__post_init__` keeps a renderer from
    meeting a checked run without a validation (or the reverse) in the middle of a report.
    """

    run_hash: str
    experiment: str | None
    name: str | None
    state: str
    validation: Validation | None
    source: str | None = None  # "path:locator" for runs seen on import; None for runs read from a repo
    reason: str | None = None  # e.g. why a run is active

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"unknown run state {self.state!r}; expected one of {', '.join(STATES)}")
        if (self.validation is None) != (self.state == ACTIVE):
            raise ValueError(f"run {self.run_hash}: state {self.state!r} and validation {self.validation!r} disagree")

    @property
    def label(self) -> str:
        """Names are what people recognise; the hash is what a run without one is found by."""
        return self.name or self.run_hash


@dataclass(frozen=True)
class RuleCounts:
    """One rule over all checked runs.

    `passed`/`failed`/`missing`/`skipped` count the raw outcomes; `scored_pass`/`scored_fail`
    count `Outcome.counts_as`, so a missing field counts the way the rule's `missing` setting says
    (as a fail, as a pass, or not at all) — the same way it counted in each run's score.
    """

    passed: int = 0
    failed: int = 0
    missing: int = 0
    skipped: int = 0
    scored_pass: int = 0
    scored_fail: int = 0

    @property
    def evaluated(self) -> int:
        return self.scored_pass + self.scored_fail

    @property
    def pass_rate(self) -> float | None:
        """None, not 0 or 1, when the rule was never evaluated: no run could say either way."""
        return self.scored_pass / self.evaluated if self.evaluated else None


@dataclass
class GovernanceReport:
    """Everything one governance pass found; `rules` are in the order of the rules file."""

    rules_version: str
    rules_source: str
    rules: tuple[RuleInfo, ...]
    runs: list[CheckedRun]
    dry_run: bool = False
    compliance_run: str | None = None  # hash of the governance run the pass was tracked into
    # Runs written while another process (`aim up`) held the index: its indexer shows them.
    left_to_indexer: int = 0

    # -- figures ----------------------------------------------------------------------------

    @property
    def checked(self) -> list[CheckedRun]:
        """Runs with a validation: every state but `active` (rejected runs were checked too)."""
        return [r for r in self.runs if r.validation is not None]

    def status_counts(self) -> dict[str, int]:
        """PASS/WARN/FAIL counts, all three keys always present so tables keep their columns."""
        counts = dict.fromkeys(STATUSES, 0)
        for run in self.checked:
            counts[run.validation.status] = counts.get(run.validation.status, 0) + 1
        return counts

    def state_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for run in self.runs:
            counts[run.state] += 1
        return counts

    @property
    def compliance_rate(self) -> float | None:
        """Share of checked runs that PASS, 0..1; None when nothing was checked (not 100%)."""
        checked = self.checked
        if not checked:
            return None
        return sum(r.validation.status == PASS for r in checked) / len(checked)

    @property
    def mean_score(self) -> float | None:
        """Mean over finite scores: one NaN would otherwise hide every other run's score."""
        scores = [s for s in self._scores() if math.isfinite(s)]
        return math.fsum(scores) / len(scores) if scores else None

    def rule_counts(self) -> dict[str, RuleCounts]:
        """Per rule id: the rules file's rules in file order, then any other rule the outcomes name.

        Outcomes can name a rule the file no longer has only if a caller mixes rules versions;
        listing it beats hiding its verdicts.
        """
        tallies: dict[str, dict[str, int]] = {r.id: {} for r in self.rules}
        for run in self.checked:
            for o in run.validation.outcomes:
                tally = tallies.setdefault(o.rule, {})
                tally[o.outcome] = tally.get(o.outcome, 0) + 1
                if o.counts_as is not None:
                    key = "scored_" + o.counts_as
                    tally[key] = tally.get(key, 0) + 1
        return {
            rule: RuleCounts(
                passed=t.get(PASSED, 0),
                failed=t.get(FAILED, 0),
                missing=t.get(MISSING, 0),
                skipped=t.get(SKIPPED, 0),
                scored_pass=t.get("scored_" + PASSED, 0),
                scored_fail=t.get("scored_" + FAILED, 0),
            )
            for rule, t in tallies.items()
        }

    def rule_pass_rates(self) -> dict[str, float | None]:
        """passed / (passed + failed) by `counts_as`; None for a rule never evaluated."""
        return {rule: counts.pass_rate for rule, counts in self.rule_counts().items()}

    def score_histogram(self) -> list[int]:
        """Counts in 10 bins [0,10) … [80,90), [90,100]: a perfect 100 lands in the last bin.

        Scores outside 0..100 (never produced by evaluation) are clamped into the end bins so the
        counts still add up to the runs checked; non-finite scores are left out.
        """
        bins = [0] * HISTOGRAM_BINS
        width = 100 / HISTOGRAM_BINS
        for score in self._scores():
            if math.isfinite(score):
                bins[min(max(int(score // width), 0), HISTOGRAM_BINS - 1)] += 1
        return bins

    def failing(self) -> list[CheckedRun]:
        """FAIL then WARN runs, lowest score first within each: the order to fix them in."""
        bad = [r for r in self.checked if r.validation.status in (FAIL, WARN)]
        return sorted(bad, key=lambda r: (_STATUS_RANK[r.validation.status], _sort_score(r), r.label, r.run_hash))

    def active(self) -> list[CheckedRun]:
        return [r for r in self.runs if r.state == ACTIVE]

    def fails_on(self, level: str | None) -> bool:
        """Whether `--fail-on level` should fail the command (the CLI exits 4 then).

        "error" → any FAIL; "warning" → any FAIL or WARN; None → never. Active runs do not count:
        they were not checked, and the text report already says to try them again.
        """
        if level is None:
            return False
        if level not in FAIL_LEVELS:
            raise ValueError(f"unknown fail-on level {level!r}; expected one of {', '.join(FAIL_LEVELS)}")
        bad = {FAIL} if level == "error" else {FAIL, WARN}
        return any(r.validation.status in bad for r in self.checked)

    def _scores(self) -> list[float]:
        return [float(r.validation.score) for r in self.checked]


# -- text -------------------------------------------------------------------------------------


def render_text(report: GovernanceReport, *, limit: int = 20) -> str:
    """A short terminal summary; the full lists go to `--report FILE`, hence `limit`."""
    states = report.state_counts()
    statuses = report.status_counts()
    head = "DRY RUN, nothing written. " if report.dry_run else ""
    out = [f"{head}governance: rules {report.rules_version} ({report.rules_source}), {len(report.rules)} rules"]
    runs = [f"{len(report.checked)} checked"]
    runs += [f"{states[s]} {s}" for s in (WRITTEN, UNCHANGED, ACTIVE, REJECTED)]
    # Only shown when they happen: each belongs to one command, and a 0 there says nothing.
    runs += [f"{states[s]} {s}" for s in (DRY_RUN, IMPORTED) if states[s]]
    out.append("runs: " + ", ".join(runs))
    out.append(
        "status: "
        + ", ".join(f"{statuses[s]} {s}" for s in STATUSES)
        + f"; compliance {_pct(report.compliance_rate)}, mean score {_num(report.mean_score)}"
    )
    counts = report.rule_counts()
    if counts:
        width = max(len(rule) for rule in counts)
        severity = {r.id: r.severity for r in report.rules}
        out.append("rules:")
        for rule, c in counts.items():
            out.append(
                f"  {rule:<{width}}  {severity.get(rule, '?'):<7}  {_pct(c.pass_rate):>6} pass"
                f"  ({c.scored_pass}/{c.evaluated}; {c.missing} missing, {c.skipped} skipped)"
            )
    failing = report.failing()
    if failing:
        out.append(f"failing runs ({len(failing)}):")
        for run in failing[:limit]:
            v = run.validation
            violated = ", ".join(dict.fromkeys(o.rule for o in v.violations)) or "-"
            where = f"  {_line(run.source)}" if run.source else ""
            out.append(
                f"  {v.status:<4}  {_num(v.score):>5}  {_line(run.label)}  [{_line(run.experiment or '-')}]{where}"
                f"  violates: {violated}"
            )
            # The reasons too: a dry run before an import is read to fix records, not only to count them.
            out += [f"          {o.rule}: {_line(o.message)}" for o in v.violations]
        if len(failing) > limit:
            out.append(f"  ... and {len(failing) - limit} more (see --report FILE)")
    active = report.active()
    if active:
        out.append(f"active runs ({len(active)}), held open by another process; try again later:")
        for run in active[:limit]:
            why = f": {_line(run.reason)}" if run.reason else ""
            out.append(f"  {run.run_hash}  {_line(run.name or '-')}  [{_line(run.experiment or '-')}]{why}")
        if len(active) > limit:
            out.append(f"  ... and {len(active) - limit} more (see --report FILE)")
    if report.compliance_run:
        out.append(f"tracked into governance run {report.compliance_run}")
    if report.left_to_indexer:
        out.append(
            f"{report.left_to_indexer} runs written while another process (aim up) held the index: "
            "its indexer shows their new verdicts within seconds"
        )
    return "\n".join(out)


# -- files ------------------------------------------------------------------------------------


def write_report(report: GovernanceReport, path: str | Path) -> None:
    """Write the report in the format the suffix names (.json, .md, .csv, .html).

    The whole document is rendered before the file is opened, so a rendering error leaves no
    half-written report behind. Raises ValueError for any other suffix; the CLI checks first.
    """
    path = Path(path)
    renderers = {".json": _render_json, ".md": render_markdown, ".csv": _render_csv, ".html": _render_html}
    render = renderers.get(path.suffix.lower())
    if render is None:
        raise ValueError(f"unsupported report format {path.suffix or path.name!r}: use {', '.join(REPORT_SUFFIXES)}")
    text = render(report)
    path.parent.mkdir(parents=True, exist_ok=True)
    # newline="" so the csv module's \r\n row ends are written as they are on every platform.
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(text)


def report_document(report: GovernanceReport) -> dict[str, Any]:
    """The JSON report as a dict: strict JSON, non-finite floats spelled "NaN"/"Infinity"/"-Infinity".

    Strings rather than null because a NaN metric is itself a finding (a diverged run), which null
    would make look like a missing value.
    """
    counts = report.rule_counts()
    info = {r.id: r for r in report.rules}
    width = 100 / HISTOGRAM_BINS
    doc = {
        "rules_version": report.rules_version,
        "rules_source": report.rules_source,
        "dry_run": report.dry_run,
        "compliance_run": report.compliance_run,
        "left_to_indexer": report.left_to_indexer,
        "summary": {
            "runs": len(report.runs),
            "checked": len(report.checked),
            "states": report.state_counts(),
            "statuses": report.status_counts(),
            "compliance_rate": report.compliance_rate,
            "mean_score": report.mean_score,
        },
        "rules": [
            {
                "id": rule,
                "kind": info[rule].kind if rule in info else None,
                "severity": info[rule].severity if rule in info else None,
                "weight": info[rule].weight if rule in info else None,
                "pass_rate": c.pass_rate,
                "passed": c.passed,
                "failed": c.failed,
                "missing": c.missing,
                "skipped": c.skipped,
                "scored_pass": c.scored_pass,
                "scored_fail": c.scored_fail,
            }
            for rule, c in counts.items()
        ],
        "histogram": [
            {"from": i * width, "to": (i + 1) * width, "count": n} for i, n in enumerate(report.score_histogram())
        ],
        "runs": [
            {
                "run_hash": run.run_hash,
                "experiment": run.experiment,
                "name": run.name,
                "state": run.state,
                "source": run.source,
                "reason": run.reason,
                "validation": None if run.validation is None else _validation_doc(run.validation),
            }
            for run in report.runs
        ],
    }
    return _json_safe(doc)


def _validation_doc(v: Validation) -> dict[str, Any]:
    """The run's `validation` param as Aim holds it, plus every outcome (the param keeps only violations)."""
    return {**v.to_param(), "outcomes": [_outcome_doc(o) for o in v.outcomes]}


def _outcome_doc(o: Outcome) -> dict[str, Any]:
    return {**o.to_param(), "counts_as": o.counts_as, "weight": o.weight}


def _render_json(report: GovernanceReport) -> str:
    # allow_nan=False: if a non-finite float slipped past _json_safe, fail rather than write "NaN".
    return json.dumps(report_document(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def render_markdown(report: GovernanceReport) -> str:
    """The Markdown report; `migrate --rules --report x.md` appends it to the import's own."""
    statuses = report.status_counts()
    states = report.state_counts()
    title = "Dry run: nothing was written" if report.dry_run else "Governance report"
    out = [
        f"# aim-etl governance: {_md(title)}",
        "",
        f"Rules: {_md(report.rules_version)} from {_md(report.rules_source)}",
        "",
        "| runs | checked | " + " | ".join(STATES) + " | " + " | ".join(STATUSES) + " | compliance | mean score |",
        "|" + "---|" * (4 + len(STATES) + len(STATUSES)),
        f"| {len(report.runs)} | {len(report.checked)} | "
        + " | ".join(str(states[s]) for s in STATES)
        + " | "
        + " | ".join(str(statuses[s]) for s in STATUSES)
        + f" | {_pct(report.compliance_rate)} | {_num(report.mean_score)} |",
    ]
    if report.compliance_run:
        out += ["", f"Tracked into governance run {_md(report.compliance_run)}."]
    info = {r.id: r for r in report.rules}
    out += [
        "",
        "## Rules",
        "",
        # The rate counts outcomes the way the score did (`counts_as`); the columns after it are the
        # raw outcomes, so a missing field shows up as missing whichever way it counted.
        "| rule | kind | severity | weight | pass rate | pass | fail | missing | skip |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rule, c in report.rule_counts().items():
        r = info.get(rule)
        out.append(
            f"| {_md(rule)} | {_md(r.kind if r else '-')} | {_md(r.severity if r else '-')} "
            f"| {_num(r.weight if r else None)} | {_rate(c)} | {c.passed} | {c.failed} | {c.missing} | {c.skipped} |"
        )
    failing = report.failing()
    out += ["", f"## Failing runs ({len(failing)})", ""]
    if failing:
        out += ["| run | hash | experiment | source | status | score | violations |", "|---|---|---|---|---|---|---|"]
        for run in failing:
            v = run.validation
            violations = "; ".join(f"{o.rule}: {o.message}" for o in v.violations) or "-"
            out.append(
                f"| {_md(run.name or '-')} | {_md(run.run_hash)} | {_md(run.experiment or '-')} "
                f"| {_md(run.source or '-')} | {v.status} | {_num(v.score)} | {_md(violations)} |"
            )
    else:
        out.append("None.")
    active = report.active()
    if active:
        out += ["", f"## Active runs ({len(active)})", "", "Held open by another process; try again later.", ""]
        out += ["| run | hash | experiment | reason |", "|---|---|---|---|"]
        out += [
            f"| {_md(r.name or '-')} | {_md(r.run_hash)} | {_md(r.experiment or '-')} | {_md(r.reason or '-')} |"
            for r in active
        ]
    return "\n".join(out) + "\n"


def _render_csv(report: GovernanceReport) -> str:
    """One row per run × outcome; a run with no outcome (active, or no rule applied) gets one row.

    Without that row a run would vanish from the file, and "no rows" would read as "not seen".
    """
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for run in report.runs:
        v = run.validation
        base = {
            "run_hash": run.run_hash,
            "experiment": run.experiment or "",
            "name": run.name or "",
            "state": run.state,
            "status": v.status if v else "",
            "score": _csv_value(v.score) if v else "",
        }
        if v is None or not v.outcomes:
            writer.writerow(base)
            continue
        for o in v.outcomes:
            writer.writerow(
                {
                    **base,
                    "rule": o.rule,
                    "severity": o.severity,
                    "outcome": o.outcome,
                    "counts_as": o.counts_as or "",
                    "field": o.field or "",
                    "value": _csv_value(o.to_param()["value"]),
                    "message": o.message,
                }
            )
    return buf.getvalue()


def _csv_value(value: Any) -> str:
    """Strings as they are; NaN/inf spelled out bare; lists, dicts and numbers as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return _json_safe(value)
    return json.dumps(_json_safe(value), ensure_ascii=False, allow_nan=False)


# -- HTML -------------------------------------------------------------------------------------

# Inline, not a package file: one less thing for packaging to forget, and the page has to be
# self-contained anyway (no external CSS, JS, fonts or images: reports get mailed and archived).
_HTML = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>aim-etl governance: {{ rules_version }}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bar { width: 12em; height: .9em; background: #eee; display: inline-block; vertical-align: middle; }
.bar span { display: block; height: 100%; background: #3a7; }
.FAIL { color: #b00; font-weight: bold; } .WARN { color: #a60; font-weight: bold; } .PASS { color: #070; }
.dry { background: #ffd; padding: .5em; border: 1px solid #cc8; }
svg text { font: 11px sans-serif; fill: #333; }
</style>
</head>
<body>
<h1>Governance report</h1>
{% if dry_run %}<p class="dry">Dry run: nothing was written.</p>{% endif %}
<p>Rules <strong>{{ rules_version }}</strong> from <code>{{ rules_source }}</code>
{%- if compliance_run %}; tracked into governance run <code>{{ compliance_run }}</code>{% endif %}.</p>

<h2>Summary</h2>
<table>
<tr><th>runs</th><td class="num">{{ summary.runs }}</td></tr>
<tr><th>checked</th><td class="num">{{ summary.checked }}</td></tr>
{% for state, n in summary.states.items() %}<tr><th>{{ state }}</th><td class="num">{{ n }}</td></tr>
{% endfor %}{% for status, n in summary.statuses.items() %}<tr><th class="{{ status }}">{{ status }}</th>\
<td class="num">{{ n }}</td></tr>
{% endfor %}<tr><th>compliance</th><td class="num">{{ summary.compliance }}</td></tr>
<tr><th>mean score</th><td class="num">{{ summary.mean_score }}</td></tr>
</table>

<h2>Rules</h2>
<table>
<tr><th>rule</th><th>kind</th><th>severity</th><th>weight</th><th>pass rate</th><th></th>\
<th>pass</th><th>fail</th><th>missing</th><th>skip</th></tr>
{% for r in rules %}<tr><td>{{ r.id }}</td><td>{{ r.kind }}</td><td>{{ r.severity }}</td>\
<td class="num">{{ r.weight }}</td><td class="num">{{ r.rate }}</td>\
<td><span class="bar" title="{{ r.rate }}"><span style="width: {{ r.width }}%"></span></span></td>\
<td class="num">{{ r.passed }}</td><td class="num">{{ r.failed }}</td><td class="num">{{ r.missing }}</td>\
<td class="num">{{ r.skipped }}</td></tr>
{% endfor %}</table>

<h2>Score distribution</h2>
<svg width="{{ chart.width }}" height="{{ chart.height }}" role="img" aria-label="scores of checked runs">
{% for b in chart.bars %}<rect x="{{ b.x }}" y="{{ b.y }}" width="{{ b.w }}" height="{{ b.h }}" fill="#3a7">\
<title>{{ b.label }}: {{ b.count }}</title></rect>
<text x="{{ b.cx }}" y="{{ b.ty }}" text-anchor="middle">{{ b.count }}</text>
<text x="{{ b.cx }}" y="{{ chart.height - 4 }}" text-anchor="middle">{{ b.label }}</text>
{% endfor %}</svg>

<h2>Failing runs ({{ failing | length }})</h2>
{% if failing %}<table>
<tr><th>run</th><th>hash</th><th>experiment</th><th>status</th><th>score</th><th>violations</th></tr>
{% for f in failing %}<tr><td>{{ f.name }}</td><td><code>{{ f.hash }}</code></td><td>{{ f.experiment }}</td>\
<td class="{{ f.status }}">{{ f.status }}</td><td class="num">{{ f.score }}</td>\
<td>{% for o in f.violations %}<div><strong>{{ o.rule }}</strong> ({{ o.severity }}): {{ o.message }}</div>\
{% endfor %}</td></tr>
{% endfor %}</table>
{% else %}<p>None.</p>
{% endif %}
{% if active %}<h2>Active runs ({{ active | length }})</h2>
<p>Held open by another process; try again later.</p>
<table>
<tr><th>run</th><th>hash</th><th>experiment</th><th>reason</th></tr>
{% for a in active %}<tr><td>{{ a.name }}</td><td><code>{{ a.hash }}</code></td><td>{{ a.experiment }}</td>\
<td>{{ a.reason }}</td></tr>
{% endfor %}</table>
{% endif %}</body>
</html>
"""

_html_template: jinja2.Template | None = None


def _template() -> jinja2.Template:
    global _html_template
    if _html_template is None:
        # autoescape=True for every value, not select_autoescape(): the template has no file name.
        env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        _html_template = env.from_string(_HTML)
    return _html_template


def _render_html(report: GovernanceReport) -> str:
    """Numbers that land in attributes (bar widths, SVG geometry) are computed here, never data."""
    info = {r.id: r for r in report.rules}
    rules = []
    for rule, c in report.rule_counts().items():
        r = info.get(rule)
        rules.append(
            {
                "id": rule,
                "kind": r.kind if r else "-",
                "severity": r.severity if r else "-",
                "weight": _num(r.weight if r else None),
                "rate": _rate(c),
                "width": f"{100 * (c.pass_rate or 0.0):.1f}",
                "passed": c.passed,
                "failed": c.failed,
                "missing": c.missing,
                "skipped": c.skipped,
            }
        )
    failing = [
        {
            "name": run.name or "-",
            "hash": run.run_hash,
            "experiment": run.experiment or "-",
            "status": run.validation.status,
            "score": _num(run.validation.score),
            "violations": run.validation.violations,
        }
        for run in report.failing()
    ]
    active = [
        {"name": r.name or "-", "hash": r.run_hash, "experiment": r.experiment or "-", "reason": r.reason or "-"}
        for r in report.active()
    ]
    return _template().render(
        rules_version=report.rules_version,
        rules_source=report.rules_source,
        compliance_run=report.compliance_run,
        dry_run=report.dry_run,
        summary={
            "runs": len(report.runs),
            "checked": len(report.checked),
            "states": report.state_counts(),
            "statuses": report.status_counts(),
            "compliance": _pct(report.compliance_rate),
            "mean_score": _num(report.mean_score),
        },
        rules=rules,
        chart=_chart(report.score_histogram()),
        failing=failing,
        active=active,
    )


def _chart(bins: list[int]) -> dict[str, Any]:
    """Geometry of the inline SVG histogram; bar heights relative to the fullest bin."""
    bar_w, gap, plot_h, top, bottom = 40, 6, 120, 16, 18
    peak = max(bins) or 1
    width = 100 / len(bins)
    bars = []
    for i, n in enumerate(bins):
        h = round(plot_h * n / peak, 1)
        x = gap + i * (bar_w + gap)
        y = top + plot_h - h
        low, high = i * width, (i + 1) * width
        label = f"{low:g}–{high:g}"
        bars.append({"x": x, "y": y, "w": bar_w, "h": h, "cx": x + bar_w / 2, "ty": y - 3, "count": n, "label": label})
    return {"width": gap + len(bins) * (bar_w + gap), "height": top + plot_h + bottom, "bars": bars}


# -- helpers ----------------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    """Strict JSON has no NaN or infinities; spell them the way JavaScript and Python print them."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _sort_score(run: CheckedRun) -> float:
    # A NaN score sorts as the worst, not wherever NaN comparisons happen to put it.
    score = float(run.validation.score)
    return score if not math.isnan(score) else -math.inf


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{100 * rate:.1f}%"


def _rate(counts: RuleCounts) -> str:
    """The rate with what it was counted from, since missing outcomes may be in either part."""
    return f"{_pct(counts.pass_rate)} ({counts.scored_pass}/{counts.evaluated})"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _md(text: Any) -> str:
    """A Markdown table cell, on one line.

    `\\` and `|` are escaped because GFM splits cells on unescaped pipes; `&`, `<` and `>` as
    entities because Markdown passes raw HTML through, and a run named `<script>` must stay text
    wherever the file is rendered. Renderers show the original characters.
    """
    text = str(text).replace("\\", "\\\\").replace("|", "\\|")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(text.splitlines())


def _line(text: Any) -> str:
    """One terminal line per run, whatever newlines a name or reason holds."""
    return " ".join(str(text).splitlines())
