"""Prove a migration: compare what the sources say now with what Aim's SDK reads back.

The sources are read exactly as an import reads them (same reader, same options, same chunks) and
turned into the `RunSpec`s an import would write, so the comparison is with what was meant to be
written: sanitized params, points without a time dated by their run, the last value of a step
logged twice. Each spec is compared with its run in Aim (the hash comes from the run key, or from
the ledger when an edit was imported as a run of its own): experiment, name, hparams and meta at
every depth, tags as a set, creation and end time, and every series' values, steps, epochs, point
times and contexts. NaN equals NaN; other floats must be equal bit for bit; an int is not a float.

What is not a difference: a record seen twice (the import kept the first place, so the second is
counted as a duplicate), a record no reader could read (counted as skipped, with its reason), the
`validation:*` tag and `validation` param a governance check adds. A run whose `etl.content_hash`
is the source's but whose name, tags or experiment differ was edited in Aim after the import (a
rename in the UI): reported as such, not as corruption.

Series are loaded only when their summary (first, last, min, max, first and last step, kept by
Aim in the run's meta tree) could hide a difference: when the summary disagrees, when the source
record changed since the import (its content hash differs), or with `deep`. An unchanged record
whose summaries agree is taken as written; `deep` checks every point regardless.

Exit code 6 (`EXIT_DIFFERENT`): something differs, is missing in Aim, or is gone from the sources.
"""

from __future__ import annotations

import json
import math
import struct
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from etl.errors import BadRecord, EtlError
from etl.interpret import FieldRules
from etl.ledger import REJECTED, Ledger, LedgerSnapshot, default_ledger_path
from etl.mapper import MetricSeries, RunSpec, map_runs
from etl.normalize import CONTEXT, EPOCH, LOCATOR, NAME, RUN_KEY, SOURCE, STEP, TIME, VALUE, Normalizer
from etl.pipeline import DEFAULT_CHUNK_SIZE, guided
from etl.plan import DUPLICATE, Planner
from etl.readers import KEYED_AS_RUNS, Mapping, Record, SourceFile, find_sources, read_file
from etl.writers.naming import repo_root

EXIT_DIFFERENT = 6

EQUAL = "equal"
DIFFERING = "differing"
MISSING = "missing in Aim"
GONE = "gone from the sources"
EDITED = "edited in Aim"
REJECTED_BY_RULES = "rejected by rules"

# What a person can change on a run in Aim's UI without touching its data.
_EDITABLE = frozenset({"experiment", "name", "tags"})
# Added by `validate` or `--rules`, not by the sources.
_GOVERNANCE_TAG = "validation:"
# Per series and field, the differing points listed one by one before the rest are only counted.
_POINTS_LISTED = 10
_RULE_LAST_VALUE = "a step logged twice keeps its last value (mapper), as Aim keys a point by its step"
_RULE_READER = "the reader kept a later value logged at the same step"
# Skipped records were already listed by the import's report; the terminal shows the first few.
_SKIPPED_LISTED = 10


@dataclass(frozen=True, slots=True)
class Difference:
    source: str
    locator: str
    run_hash: str
    field: str
    source_value: Any
    aim_value: Any
    kind: str = DIFFERING

    @property
    def place(self) -> str:
        return f"{self.source}:{self.locator}"


@dataclass
class VerifyReport:
    repo: str
    deep: bool
    runs_checked: int = 0
    equal: int = 0
    differing: int = 0
    missing: int = 0
    gone: int = 0
    edited: int = 0
    duplicates: int = 0
    skipped_records: list[tuple[str, str, str]] = field(default_factory=list)
    skipped_files: list[tuple[str, str]] = field(default_factory=list)
    rejected: int = 0
    # (source, locator, points, rule): source numbers no run holds, and the rule that dropped them
    overwritten: list[tuple[str, str, int, str]] = field(default_factory=list)
    series_loaded: int = 0
    differences: list[Difference] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 0 if not (self.differing or self.missing or self.gone or self.edited) else EXIT_DIFFERENT

    def summary(self) -> dict[str, int]:
        return {
            "runs_checked": self.runs_checked,
            "equal": self.equal,
            "differing": self.differing,
            "missing_in_aim": self.missing,
            "gone_from_sources": self.gone,
            "edited_in_aim": self.edited,
            "duplicates": self.duplicates,
            "skipped_records": len(self.skipped_records),
            "rejected_by_rules": self.rejected,
            "points_overwritten": sum(n for _, _, n, _ in self.overwritten),
            "series_loaded": self.series_loaded,
        }

    def to_text(self, limit: int | None = 50) -> str:
        s = self.summary()
        out = [
            f"verify {self.repo}{' (deep)' if self.deep else ''}: {s['runs_checked']} runs checked, "
            f"{s['equal']} equal, {s['differing']} differing, {s['missing_in_aim']} missing in Aim, "
            f"{s['gone_from_sources']} gone from the sources, {s['edited_in_aim']} edited in Aim "
            f"({self.seconds:.1f}s)",
            f"accounted: {s['duplicates']} duplicates, {s['skipped_records']} skipped records, "
            f"{s['rejected_by_rules']} rejected by rules, {s['points_overwritten']} source points overwritten "
            f"by a later value at their step; {s['series_loaded']} series loaded",
        ]
        shown = self.differences if limit is None else self.differences[:limit]
        for d in shown:
            out.append(
                f"  {d.place}  {d.run_hash}  [{d.kind}] {d.field}: source {_show(d.source_value)}, "
                f"Aim {_show(d.aim_value)}"
            )
        if len(shown) < len(self.differences):
            out.append(f"  ... and {len(self.differences) - len(shown)} more (see --report)")
        for source, locator, reason in self.skipped_records[:_SKIPPED_LISTED]:
            out.append(f"  skipped {source}:{locator}: {reason}")
        if len(self.skipped_records) > _SKIPPED_LISTED:
            out.append(f"  ... and {len(self.skipped_records) - _SKIPPED_LISTED} more skipped (see --report)")
        return "\n".join(out)

    def to_json(self) -> str:
        payload = {
            "repo": self.repo,
            "deep": self.deep,
            "seconds": self.seconds,
            "summary": self.summary(),
            "differences": [{**asdict(d), "place": d.place} for d in self.differences],
            "skipped_records": [{"source": s, "locator": loc, "reason": r} for s, loc, r in self.skipped_records],
            "skipped_files": [{"source": s, "reason": r} for s, r in self.skipped_files],
            "overwritten": [
                {"source": s, "locator": loc, "points": n, "rule": rule} for s, loc, n, rule in self.overwritten
            ],
        }
        return json.dumps(payload, indent=2, default=_show)

    def to_markdown(self) -> str:
        out = [f"# aim-etl verify: {self.repo}", "", "| | runs |", "|---|---:|"]
        out += [f"| {k.replace('_', ' ')} | {v} |" for k, v in self.summary().items()]
        if self.differences:
            out += [
                "",
                "## Differences",
                "",
                "| place | run | kind | field | source | Aim |",
                "|---|---|---|---|---|---|",
            ]
            out += [
                f"| {d.place} | {d.run_hash} | {d.kind} | `{d.field}` "
                f"| `{_show(d.source_value)}` | `{_show(d.aim_value)}` |"
                for d in self.differences
            ]
        if self.skipped_records:
            out += ["", "## Skipped records", ""] + [f"- {s}:{loc}: {r}" for s, loc, r in self.skipped_records]
        return "\n".join(out) + "\n"


def verify(
    paths: list[str | Path],
    repo: str | Path = ".",
    *,
    ledger: str | Path | None = None,
    rules: FieldRules | None = None,
    format: str = "auto",
    keyed: str = KEYED_AS_RUNS,
    mapping: Mapping | None = None,
    deep: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> VerifyReport:
    """Compare every run the sources under `paths` hold with its run in the Aim repo `repo`.

    Pass the reading options the import was run with; different ones read different runs. Reads
    only: neither the repo nor the ledger is changed.
    """
    from etl.writers.aim_reader import AimReader

    started = time.monotonic()
    root = repo_root(repo)
    try:
        reader = AimReader(root)
    except FileNotFoundError as exc:
        raise EtlError(str(exc)) from None
    ledger_path = Path(ledger) if ledger else default_ledger_path(root)
    snapshot = Ledger.snapshot_of(ledger_path) if ledger_path.exists() else LedgerSnapshot()
    report = VerifyReport(str(root), deep)
    rules, format = guided(rules or FieldRules(), format, mapping)
    files, skipped = find_sources(list(paths), base=root, format=format)
    report.skipped_files = [(s.source, s.reason) for s in skipped]
    checked = _Checker(reader, report, deep)
    sources: set[str] = set()
    for spec in _specs(files, rules, keyed, mapping, chunk_size, report):
        sources.add(spec.source)
        entry = snapshot.by_key.get(f"{spec.run_key}~{spec.content_hash[:12]}") or snapshot.by_key.get(spec.run_key)
        if entry is not None and entry.state == REJECTED and entry.content_hash == spec.content_hash:
            report.rejected += 1  # held back by `--strict` rules: in the ledger, deliberately not in Aim
            continue
        checked.check(spec, entry.run_hash if entry is not None else spec.run_hash)
    sources.update(f.source for f in files)
    for run_hash in reader.run_hashes():
        if run_hash in checked.seen:
            continue
        provenance = reader.provenance(run_hash)
        if provenance and provenance.get("source") in sources:
            report.gone += 1
            report.differences.append(
                Difference(provenance["source"], provenance.get("locator", "?"), run_hash, "run", None, "present", GONE)
            )
    report.seconds = time.monotonic() - started
    return report


def _specs(
    files: list[SourceFile],
    rules: FieldRules,
    keyed: str,
    mapping: Mapping | None,
    chunk_size: int,
    report: VerifyReport,
) -> Iterator[RunSpec]:
    """The specs an import into an empty repo would write, chunk by chunk as the import reads them."""
    normalizer = Normalizer(rules)
    planner = Planner(LedgerSnapshot())

    def process(chunk: list[Record], path: Path) -> Iterator[RunSpec]:
        frames = normalizer.normalize(chunk, path)
        report.skipped_records += [(s.source, s.locator, s.reason) for s in frames.skipped]
        plan = planner.plan(frames.runs)
        report.duplicates += plan.count(DUPLICATE)
        to_write = plan.to_write()
        _count_overwritten(frames, to_write, report)
        yield from map_runs(frames, to_write, "verify")

    for source in files:
        chunk: list[Record] = []
        try:
            for item in read_file(source, keyed=keyed, mapping=mapping):
                if isinstance(item, BadRecord):
                    report.skipped_records.append((item.source, item.locator, item.reason))
                    continue
                chunk.append(item)
                if len(chunk) >= chunk_size:
                    yield from process(chunk, source.path)
                    chunk = []
        except OSError as exc:
            report.skipped_records.append((source.source, "file", f"cannot read: {exc.strerror or exc}"))
            continue
        if chunk:
            yield from process(chunk, source.path)


def _count_overwritten(frames, to_write: dict, report: VerifyReport) -> None:
    """Source numbers that are in no run, by the rule that dropped them: a step logged twice keeps
    its last value (the mapper's rule, as Aim itself keys a point by its step), and values a reader
    resolved itself (a later value at one step)."""
    metrics = frames.metrics
    places = dict(zip(frames.runs[RUN_KEY], zip(frames.runs[SOURCE], frames.runs[LOCATOR], strict=True), strict=True))
    if not metrics.empty:
        wanted = metrics[metrics[RUN_KEY].isin(set(to_write))]
        # The same point twice (an exact duplicate line shares its original's key) loses nothing.
        wanted = wanted.drop_duplicates([RUN_KEY, NAME, CONTEXT, STEP, EPOCH, VALUE, TIME])
        repeated = wanted[wanted.duplicated([RUN_KEY, NAME, CONTEXT, STEP], keep="last")]
        for key, count in repeated.groupby(RUN_KEY).size().items():
            source, locator = places[key]
            report.overwritten.append((source, locator, int(count), _RULE_LAST_VALUE))
    for key, count in frames.replaced_points.items():
        if key in to_write and count:
            source, locator = places[key]
            report.overwritten.append((source, locator, int(count), _RULE_READER))


class _Checker:
    def __init__(self, reader, report: VerifyReport, deep: bool) -> None:
        self.reader = reader
        self.report = report
        self.deep = deep
        self.seen: set[str] = set()

    def check(self, spec: RunSpec, run_hash: str) -> None:
        report = self.report
        report.runs_checked += 1
        self.seen.add(run_hash)
        stored = self.reader.run(run_hash)
        if stored is None:
            report.missing += 1
            report.differences.append(Difference(spec.source, spec.locator, run_hash, "run", "present", None, MISSING))
            return
        diffs: list[tuple[str, Any, Any]] = []
        _compare_fields(spec, stored, diffs)
        unchanged = (stored.provenance or {}).get("content_hash") == spec.content_hash
        self._compare_series(spec, stored, diffs, load=self.deep or not unchanged)
        if not diffs:
            report.equal += 1
            return
        kind = EDITED if unchanged and all(name.split(".")[0] in _EDITABLE for name, _, _ in diffs) else DIFFERING
        if kind == EDITED:
            report.edited += 1
        else:
            report.differing += 1
        report.differences += [Difference(spec.source, spec.locator, run_hash, f, s, a, kind) for f, s, a in diffs]

    def _compare_series(self, spec: RunSpec, stored, diffs: list, *, load: bool) -> None:
        from etl.writers.aim_reader import context_key

        wanted = {(s.name, context_key(s.context)): s for s in spec.series}
        for key in sorted(set(wanted) - set(stored.summaries)):
            diffs.append((_series_label(key), f"{len(wanted[key].steps)} points", None))
        for key in sorted(set(stored.summaries) - set(wanted)):
            diffs.append((_series_label(key), None, "present"))
        common = [k for k in wanted if k in stored.summaries]
        if not load:
            load = any(not _summary_agrees(wanted[k], stored.summaries[k]) for k in common)
        if not load or not common:
            return
        self.report.series_loaded += len(common)
        points = self.reader.series(stored.run_hash)
        for key in common:
            _compare_points(_series_label(key), wanted[key], points.get(key), diffs)


def _compare_fields(spec: RunSpec, stored, diffs: list) -> None:
    if (spec.experiment or "default") != stored.experiment:
        diffs.append(("experiment", spec.experiment, stored.experiment))
    if spec.name is not None and spec.name != stored.name:
        diffs.append(("name", spec.name, stored.name))
    want_tags = set(spec.tags)
    have_tags = {t for t in stored.tags if not t.startswith(_GOVERNANCE_TAG) or t in want_tags}
    if want_tags != have_tags:
        diffs.append(("tags", sorted(want_tags), sorted(have_tags)))
    _compare_values("hparams", spec.hparams, stored.hparams, diffs)
    _compare_values("meta", spec.meta or {}, stored.meta, diffs)
    if spec.created_at is not None:
        # Aim's structured DB keeps the creation time to the microsecond, as a naive UTC datetime.
        want = spec.created_at.timestamp()
        if stored.creation_time is None or abs(want - stored.creation_time) >= 1e-6:
            diffs.append(("creation_time", want, stored.creation_time))
    if spec.end_time is not None and math.isfinite(spec.end_time) and not _same(spec.end_time, stored.end_time):
        diffs.append(("end_time", spec.end_time, stored.end_time))


def _compare_values(path: str, want: Any, have: Any, diffs: list) -> None:
    """Params at every depth: same keys, same list lengths, same types (an int is not a float), same values."""
    if isinstance(want, dict) and isinstance(have, dict):
        for key in sorted(set(want) | set(have), key=str):
            if key not in have:
                diffs.append((f"{path}.{key}", want[key], None))
            elif key not in want:
                diffs.append((f"{path}.{key}", None, have[key]))
            else:
                _compare_values(f"{path}.{key}", want[key], have[key], diffs)
        return
    if isinstance(want, list | tuple) and isinstance(have, list | tuple) and len(want) == len(have):
        for i, (w, h) in enumerate(zip(want, have, strict=True)):
            _compare_values(f"{path}[{i}]", w, h, diffs)
        return
    if not _same(want, have):
        diffs.append((path, want, have))


def _same(a: Any, b: Any) -> bool:
    """Equal as stored: NaN equals NaN, floats bit for bit (so -0.0 is not 0.0), types must match."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _summary_agrees(series: MetricSeries, summary: dict[str, Any]) -> bool:
    """Whether Aim's summary of a series matches the source's; min and max only when no value is NaN
    (how Aim orders NaN in them is its own business)."""
    values = series.values
    if not values:
        return False
    checks = [
        (summary.get("first_step"), series.steps[0]),
        (summary.get("last_step"), series.steps[-1]),
        (_as_float(summary.get("first")), values[0]),
        (_as_float(summary.get("last")), values[-1]),
    ]
    if not any(math.isnan(v) for v in values):
        checks += [(_as_float(summary.get("min")), min(values)), (_as_float(summary.get("max")), max(values))]
    return all(_same(a, b) if isinstance(b, float) else a == b for a, b in checks)


def _compare_points(label: str, want: MetricSeries, have, diffs: list) -> None:
    if have is None:
        diffs.append((label, f"{len(want.steps)} points", None))
        return
    if want.steps != have.steps:
        missing = sorted(set(want.steps) - set(have.steps))
        extra = sorted(set(have.steps) - set(want.steps))
        diffs.append((f"{label}.steps", _few(missing, "not in Aim"), _few(extra, "only in Aim")))
    at = dict(zip(have.steps, range(len(have.steps)), strict=True))
    fields = {"value": [], "epoch": [], "time": []}
    for i, step in enumerate(want.steps):
        j = at.get(step)
        if j is None:
            continue
        if not _same(want.values[i], have.values[j]):
            fields["value"].append((step, want.values[i], have.values[j]))
        if not _same_epoch(want.epochs[i], have.epochs[j]):
            fields["epoch"].append((step, want.epochs[i], have.epochs[j]))
        # A point whose record had no time at all got the import time: nothing to compare it with.
        if not math.isnan(want.times[i]) and not _same(want.times[i], have.times[j]):
            fields["time"].append((step, want.times[i], have.times[j]))
    for name, found in fields.items():
        for step, w, h in found[:_POINTS_LISTED]:
            diffs.append((f"{label}.{name}[step {step}]", w, h))
        if len(found) > _POINTS_LISTED:
            diffs.append((f"{label}.{name}", f"{len(found) - _POINTS_LISTED} more points differ", "..."))


def _same_epoch(want: int | None, have: Any) -> bool:
    """Aim reads epochs back as floats, and a point without one as None or NaN."""
    if want is None:
        return have is None or (isinstance(have, float) and math.isnan(have))
    return have is not None and float(have) == float(want)


def _series_label(key: tuple[str, str]) -> str:
    name, context = key
    return f"series {name}" + ("" if context == "{}" else context)


def _as_float(value: Any) -> Any:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _few(items: list, what: str) -> str:
    shown = ", ".join(str(i) for i in items[:10])
    return f"{len(items)} steps {what}" + (f": {shown}" if items else "") + (" ..." if len(items) > 10 else "")


def _show(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)
