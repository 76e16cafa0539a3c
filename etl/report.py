"""What an import did, or would do: per file, per run, and an inventory of what it found.

The same report is produced by a dry run (nothing written) and after a real import, and is
rendered for a terminal, as Markdown, or as JSON whose top-level `summary` is all integers.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from etl.dating import IMPORT, TIME_SOURCES
from etl.governance.report import GovernanceReport, render_markdown, report_document
from etl.governance.report import render_text as render_governance_text
from etl.normalize import CONTEXT, HPARAMS, LOCATOR, META, NAME, RUN_KEY, SOURCE, STEP, TIME_SOURCE, Frames
from etl.plan import ACTIONS, CHANGED, DUPLICATE, NEW, UNCHANGED, SyncPlan
from etl.storable import KINDS, describe

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INVALID = 3
EXIT_QUALITY = 4  # --fail-on: a run failed the governance rules at that level
EXIT_LOCKED = 5
EXIT_UNREACHABLE = 7  # --repo aim://: the server does not answer

SUMMARY_KEYS = (NEW, CHANGED, UNCHANGED, DUPLICATE, "skipped", "invalid", "runs_written", "points_written")


@dataclass(frozen=True, slots=True)
class Issue:
    source: str
    locator: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"source": self.source, "locator": self.locator, "reason": self.reason}


@dataclass
class FileStats:
    source: str
    format: str | None
    records: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    duplicate: int = 0
    invalid: int = 0
    skipped: int = 0
    # numbers of the file's new or changed runs that became metric points, and that were kept as
    # params or meta: a file whose results all land in params shows here as "0 metrics"
    metric_numbers: int = 0
    param_numbers: int = 0
    # records imported with some values in their nearest storable form (counted in `new` etc. too)
    coerced: int = 0
    # how the file was read: read (first time), re-read (changed: read in full), appended (read
    # from its cursor), unchanged (not read at all); skipped when no reader took it
    mode: str = "read"
    # why the file was skipped (no reader took it, or it held no records), else None
    reason: str | None = None

    @property
    def reader(self) -> str:
        """What the report shows for the file: the reader (format) that took it, or `skipped: <reason>`."""
        if self.format:
            return self.format
        return f"skipped: {self.reason}" if self.reason else "-"


@dataclass
class SyncReport:
    command: str
    repo: str
    ledger: str | None
    dry_run: bool
    batch: str
    timezone: str = "UTC"
    files: dict[str, FileStats] = field(default_factory=dict)
    invalid: list[Issue] = field(default_factory=list)
    skipped: list[Issue] = field(default_factory=list)
    duplicates: list[Issue] = field(default_factory=list)
    reruns: list[Issue] = field(default_factory=list)
    # torn last lines a sync left for next time (a writer may still be writing them)
    pending: list[Issue] = field(default_factory=list)
    # records imported with values changed to be storable (`etl.storable`), and the values by kind
    coerced: list[Issue] = field(default_factory=list)
    coerced_values: Counter = field(default_factory=Counter)
    runs_written: int = 0
    points_written: int = 0
    rejected: int = 0
    naive_timestamps: int = 0
    seconds: float = 0.0
    hparam_types: dict[str, Counter] = field(default_factory=dict)
    metric_points: Counter = field(default_factory=Counter)
    # which evidence dated the runs read (`etl.dating`), by kind
    time_sources: Counter = field(default_factory=Counter)
    # runs read that hold no metric at all, with the reason (their numbers are params or meta)
    no_metric: list[Issue] = field(default_factory=list)
    # points a later value at the same step replaced (a resumed training re-logs its last steps)
    replaced_points: int = 0
    # Each run's verdict when the import checks governance rules (`--rules`); else None.
    governance: GovernanceReport | None = None
    # which writer wrote the runs (`bulk` or `sdk`), and warnings about that choice
    writer: str = ""
    warnings: list[str] = field(default_factory=list)
    # runs written but left for another process's indexer (an `aim up` held the index)
    unindexed: int = 0
    # What the target could not do as asked, each said once (e.g. an aim:// server keeping a date).
    notes: list[str] = field(default_factory=list)

    # -- accumulation, chunk by chunk -------------------------------------------------------

    def file(self, source: str, format: str | None) -> FileStats:
        if source not in self.files:
            self.files[source] = FileStats(source, format)
        return self.files[source]

    def add_invalid(self, source: str, locator: str, reason: str) -> None:
        self.invalid.append(Issue(source, locator, reason))
        stats = self.file(source, None)
        stats.invalid += 1
        stats.records += 1

    def add_pending(self, source: str, locator: str, reason: str) -> None:
        self.pending.append(Issue(source, locator, reason))

    def add_skipped_file(self, source: str, reason: str) -> None:
        self.skipped.append(Issue(source, "file", reason))
        stats = self.file(source, None)
        if stats.reason is None:
            stats.reason = reason
        if stats.format is None:
            stats.mode = "skipped"

    def add_note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)

    def add_rejected(self) -> None:
        """A run `--strict` kept out of Aim; it stays counted under its plan action (new, changed)."""
        self.rejected += 1

    def add_write_failed(self, source: str, locator: str, action: str, reason: str) -> None:
        """A run Aim refused (and that was removed again): invalid instead of its planned action."""
        self.invalid.append(Issue(source, locator, reason))
        stats = self.file(source, None)
        setattr(stats, action, getattr(stats, action) - 1)
        stats.invalid += 1

    def add_chunk(self, frames: Frames, plan: SyncPlan) -> None:
        for item in frames.invalid:
            self.add_invalid(item.source, item.locator, item.reason)
        for item in frames.coerced:
            self.coerced.append(Issue(item.source, item.locator, item.reason))
            self.coerced_values.update(item.counts)
            self.files[item.source].coerced += 1
        for item in frames.skipped:
            self.skipped.append(Issue(item.source, item.locator, item.reason))
            stats = self.files[item.source]
            stats.skipped += 1
            stats.records += 1
        self.reruns.extend(Issue(r.source, r.locator, r.reason) for r in frames.reruns)
        self.naive_timestamps += frames.naive_timestamps
        for planned in plan.runs:
            stats = self.files[planned.source]
            stats.records += 1
            setattr(stats, planned.action, getattr(stats, planned.action) + 1)
            if planned.action == DUPLICATE:
                self.duplicates.append(Issue(planned.source, planned.locator, planned.note))
        original = {p.run_key for p in plan.runs if p.action != DUPLICATE}
        runs = frames.runs[frames.runs["run_key"].isin(original)]
        for hparams in runs[HPARAMS]:
            for key, kind in _leaf_types(hparams):
                self.hparam_types.setdefault(key, Counter())[kind] += 1
        metrics = frames.metrics[frames.metrics["run_key"].isin(original)]
        if not metrics.empty:
            self.metric_points.update(metrics.groupby([NAME, CONTEXT]).size().to_dict())
            # A point repeated with the same value (an exact duplicate record) replaces nothing.
            distinct = metrics.drop_duplicates([RUN_KEY, NAME, CONTEXT, STEP, "value", "epoch"])
            self.replaced_points += int(distinct.duplicated([RUN_KEY, NAME, CONTEXT, STEP]).sum())
        self.time_sources.update(runs[TIME_SOURCE].tolist())
        self.replaced_points += sum(frames.replaced_points.get(key, 0) for key in original)
        points = metrics[RUN_KEY].value_counts().to_dict() if not metrics.empty else {}
        for row in runs.drop_duplicates(RUN_KEY).itertuples(index=False):
            key, source = getattr(row, RUN_KEY), getattr(row, SOURCE)
            stats = self.file(source, None)
            stats.metric_numbers += points.get(key, 0)
            kept = _count_numbers(getattr(row, HPARAMS)) + _count_numbers(getattr(row, META))
            stats.param_numbers += kept
            if not points.get(key):
                reason = (
                    f"no metric: its {kept} numbers do not read as results (kept as params or meta)"
                    if kept
                    else "no metric: the record holds no number"
                )
                self.no_metric.append(Issue(source, getattr(row, LOCATOR), reason))

    # -- results ----------------------------------------------------------------------------

    def summary(self) -> dict[str, int]:
        counts = {a: sum(getattr(f, a) for f in self.files.values()) for a in ACTIONS}
        return {
            **counts,
            "skipped": len(self.skipped),
            "invalid": len(self.invalid),
            "coerced": len(self.coerced),
            "runs_written": self.runs_written,
            "points_written": self.points_written,
            **({"rejected": self.rejected} if self.governance is not None else {}),
        }

    @property
    def exit_code(self) -> int:
        return EXIT_INVALID if self.invalid else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "dry_run": self.dry_run,
            "repo": self.repo,
            "ledger": self.ledger,
            "batch": self.batch,
            "summary": self.summary(),
            "naive_timestamps": {"count": self.naive_timestamps, "read_as": self.timezone},
            "time_sources": {k: self.time_sources[k] for k in TIME_SOURCES if self.time_sources[k]},
            "replaced_points": self.replaced_points,
            "no_metric": [i.as_dict() for i in self.no_metric],
            "seconds": round(self.seconds, 3),
            "writer": self.writer,
            "warnings": list(self.warnings),
            "unindexed": self.unindexed,
            "notes": list(self.notes),
            "files": [f.__dict__ for f in self.files.values()],
            "invalid": [i.as_dict() for i in self.invalid],
            "skipped": [i.as_dict() for i in self.skipped],
            "duplicates": [i.as_dict() for i in self.duplicates],
            "reruns": [i.as_dict() for i in self.reruns],
            "pending": [i.as_dict() for i in self.pending],
            "coerced": [i.as_dict() for i in self.coerced],
            "coerced_values": {k: self.coerced_values[k] for k in KINDS if self.coerced_values[k]},
            "hparams": {
                key: {"types": dict(kinds), "varies": len(kinds) > 1}
                for key, kinds in sorted(self.hparam_types.items())
            },
            "metrics": [
                {"name": name, "context": orjson.loads(context), "points": count}
                for (name, context), count in sorted(self.metric_points.items())
            ],
            **({"governance": report_document(self.governance)} if self.governance is not None else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def to_markdown(self) -> str:
        s = self.summary()
        title = "Dry run: nothing was written" if self.dry_run else "Import report"
        out = [f"# aim-etl {self.command}: {title}", "", f"Repo: `{self.repo}`  ", f"Ledger: `{self.ledger}`", ""]
        out += ["| " + " | ".join(SUMMARY_KEYS) + " |", "|" + "---|" * len(SUMMARY_KEYS)]
        out += ["| " + " | ".join(str(s[k]) for k in SUMMARY_KEYS) + " |", ""]
        out += [f"Note: {note}.  " for note in self.notes] + ([""] if self.notes else [])
        if self.naive_timestamps:
            out += [f"{self.naive_timestamps} timestamps had no timezone and were read as {self.timezone}.", ""]
        out += [line + "." for line in self._dating_lines()] + [""] if self.time_sources else []
        if self.coerced:
            out += [f"{self._coerced_records()} imported with values in storable form: {self._coerced()}.", ""]
        out += [
            "## Files",
            "",
            "| file | format | records | new | changed | unchanged | duplicate | invalid | skipped | coerced "
            "| numbers as metrics | as params/meta |",
        ]
        out += ["|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for f in sorted(self.files.values(), key=lambda f: f.source):
            out.append(
                f"| `{_md(_shown(f.source))}` | {_md(_shown_reader(f))} | {f.records} | {f.new} | {f.changed} "
                f"| {f.unchanged} | {f.duplicate} | {f.invalid} | {f.skipped} | {f.coerced} | {f.metric_numbers} "
                f"| {f.param_numbers} |"
            )
        for title, issues in (
            ("Invalid", self.invalid),
            ("Skipped", self.skipped),
            ("Duplicates", self.duplicates),
            ("Re-runs", self.reruns),
            ("Pending (torn last lines, for the next sync)", self.pending),
            ("Runs with no metric", self.no_metric),
            ("Coerced (imported with values in storable form)", self.coerced),
        ):
            if issues:
                out += ["", f"## {title}", ""]
                out += [f"- `{_md(_shown(i.source))}` {i.locator}: {_md(i.reason)}" for i in issues]
        out += ["", "## Hyperparameters", "", "| key | types | varies |", "|---|---|---|"]
        for key, kinds in sorted(self.hparam_types.items()):
            types = ", ".join(f"{k} ({n})" for k, n in kinds.items())
            out.append(f"| `{_md(key)}` | {types} | {'yes' if len(kinds) > 1 else ''} |")
        out += ["", "## Metrics", "", "| name | context | points |", "|---|---|---|"]
        for (name, context), count in sorted(self.metric_points.items()):
            out.append(f"| `{_md(name)}` | `{context}` | {count} |")
        if self.governance is not None:
            # One document: the governance report's headings move one level down under the import's.
            section = render_markdown(self.governance)
            out += [""] + [("#" + line) if line.startswith("#") else line for line in section.splitlines()]
        return "\n".join(out) + "\n"

    def to_text(self, *, limit: int = 20) -> str:
        s = self.summary()
        head = "DRY RUN, nothing written. " if self.dry_run else ""
        out = [
            f"{head}aim-etl {self.command}: {len(self.files)} files, "
            + ", ".join(f"{s[k]} {k.replace('_', ' ')}" for k in SUMMARY_KEYS)
            + f" ({self.seconds:.1f}s)"
        ]
        out += [f"warning: {w}" for w in self.warnings]
        if self.unindexed:
            out.append(
                f"{self.unindexed} runs left for the indexer of the process holding the index (aim up); "
                "they show in Aim once it has indexed them"
            )
        out += [f"note: {note}" for note in self.notes]
        if self.naive_timestamps:
            out.append(f"{self.naive_timestamps} timestamps had no timezone and were read as {self.timezone}")
        out += self._dating_lines()
        if self.coerced:
            out.append(f"{self._coerced_records()} imported with values in storable form: {self._coerced()}")
        width = max((len(_shown(f.source)) for f in self.files.values()), default=10)
        # The reader column comes second so that a skipped file's reason, which can be long, ends its row.
        fmt = max((len(f.format) for f in self.files.values() if f.format), default=0)
        fmt = max(fmt, len("format"))
        counts = "records  new  changed  unchanged  dup  invalid  skipped  coerced  numbers: metrics/params"
        out.append(f"{'file':<{width}}  {'format':<{fmt}}  {'read':<9}  {counts}")
        # By path, so a folder's files (a run's primary file and the ones read with it) sit together.
        for f in sorted(self.files.values(), key=lambda f: f.source):
            if not f.format:
                out.append(f"{_shown(f.source):<{width}}  {_shown_reader(f)}")
                continue
            out.append(
                f"{_shown(f.source):<{width}}  {f.format:<{fmt}}  {f.mode:<9}  {f.records:>7}  {f.new:>3}  "
                f"{f.changed:>7}  {f.unchanged:>9}  {f.duplicate:>3}  {f.invalid:>7}  {f.skipped:>7}  {f.coerced:>7}  "
                f"{f.metric_numbers:>7}/{f.param_numbers}"
            )
        # Files no reader took have their reason in their row already; listed again, they would crowd
        # the skipped records out of the `limit`.
        in_rows = {f.source for f in self.files.values() if not f.format}
        skipped = [i for i in self.skipped if not (i.locator == "file" and i.source in in_rows)]
        for title, issues in (
            ("invalid", self.invalid),
            ("skipped", skipped),
            ("duplicates", self.duplicates),
            ("re-runs", self.reruns),
            ("pending (torn last lines, for the next sync)", self.pending),
            ("runs with no metric", self.no_metric),
            ("coerced (imported with values in storable form)", self.coerced),
        ):
            if issues:
                out.append(f"{title}:")
                out += [f"  {_shown(i.source)}:{i.locator.removeprefix('line ')}: {i.reason}" for i in issues[:limit]]
                if len(issues) > limit:
                    out.append(f"  ... and {len(issues) - limit} more (see --report FILE.json)")
        if self.hparam_types:
            varying = [k for k, kinds in self.hparam_types.items() if len(kinds) > 1]
            out.append(
                f"hparams: {len(self.hparam_types)} keys"
                + (f"; types vary for: {', '.join(sorted(varying)[:limit])}" if varying else "")
            )
        if self.metric_points:
            out.append(
                f"metrics: {len(self.metric_points)} series names/contexts, {sum(self.metric_points.values())} points"
            )
        if self.governance is not None:
            out.append(render_governance_text(self.governance, limit=limit))
        return "\n".join(out)

    def _coerced(self) -> str:
        return describe(self.coerced_values)

    def _coerced_records(self) -> str:
        return "1 record" if len(self.coerced) == 1 else f"{len(self.coerced)} records"

    def _dating_lines(self) -> list[str]:
        """How the runs were dated, and a plain warning when some carry the import time."""
        if not self.time_sources:
            return []
        kinds = ", ".join(f"{self.time_sources[k]} by {k}" for k in TIME_SOURCES if self.time_sources[k])
        lines = [f"run dates: {kinds}"]
        if self.time_sources[IMPORT]:
            lines.append(f"warning: {self.time_sources[IMPORT]} runs had no time evidence and are dated at the import")
        if self.replaced_points:
            lines.append(f"{self.replaced_points} points were replaced by a later value logged at the same step")
        return lines


def _count_numbers(value: Any) -> int:
    """Numbers in a JSON value, iteratively (a record can nest deeper than Python's recursion limit)."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, int | float) and not isinstance(item, bool):
            count += 1
    return count


def _leaf_types(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Dotted keys of a nested hparams dict with the JSON type of each leaf."""
    if isinstance(value, dict) and value:
        return [kt for k, v in value.items() for kt in _leaf_types(v, f"{prefix}{k}.")]
    key = prefix[:-1]
    if isinstance(value, bool):
        return [(key, "bool")]
    if isinstance(value, int):
        return [(key, "int")]
    if isinstance(value, float):
        return [(key, "float")]
    if isinstance(value, str):
        return [(key, "str")]
    if value is None:
        return [(key, "null")]
    if isinstance(value, list):
        return [(key, "list")]
    return [(key, "dict")]


def _shown(source: str) -> str:
    """Sources are stable (absolute when outside the repo); on screen, shorter relative to here."""
    if source.startswith("/"):
        here = Path.cwd().as_posix() + "/"
        if source.startswith(here):
            return source[len(here) :]
    return source


def _shown_reader(stats: FileStats) -> str:
    """`FileStats.reader`, with the source a `part of <source>` reason names shortened as files are."""
    text = stats.reader
    here = Path.cwd().as_posix() + "/"
    return text.replace(" " + here, " ") if text.startswith("skipped: part of ") else text


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
