"""What the tool makes of a file before anything is imported: the reader and why, each field's role
and the rule that decided it, and the same reading written out as a mapping a person can correct.

One inference, one mapping: the roles shown here are the interpreter's, recorded while it reads the
records (`Interpreted.roles`), and `--mapping-out` writes them as the `[fields]` of a mapping file.
Fed back with `--mapping`, that file gives the same runs (a test checks it on every corpus file);
edited, the user's word wins field by field. A field whose role differs between records (a
`metrics` dict that is empty in some lines) is left out of the written mapping, with a comment,
so the interpreter keeps deciding it record by record rather than being forced one way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etl.dating import date_run, file_dates, record_duration
from etl.errors import BadRecord
from etl.interpret import FieldRules, NotAnExperiment, interpret
from etl.readers import KEYED_AS_RUNS, Mapping, Record, find_sources, read_file
from etl.readers.mapping import write_mapping


@dataclass
class FieldReading:
    """One top-level field of the sample record: its role, the rule that chose it, an example."""

    field: str
    role: str
    rule: str
    example: str
    points: int = 0
    hinted: bool = False


@dataclass
class FileInspection:
    source: str
    format: str | None
    reason: str
    records: int = 0
    experiments: int = 0
    not_experiments: int = 0
    invalid: int = 0
    sample: str | None = None
    fields: list[FieldReading] = field(default_factory=list)
    # field -> role -> records, over every record read
    roles: dict[str, Counter] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)
    run: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            "reason": self.reason,
            "records": self.records,
            "experiments": self.experiments,
            "not_experiments": self.not_experiments,
            "invalid": self.invalid,
            "sample": self.sample,
            "fields": [f.__dict__ for f in self.fields],
            "roles": {k: dict(v) for k, v in self.roles.items()},
            "run": self.run,
            "problems": self.problems,
        }


@dataclass
class Inspection:
    files: list[FileInspection]

    def mapping_fields(self) -> tuple[dict[str, str], dict[str, str], list[str]]:
        """(field -> role, field -> rule, notes): the roles every record agrees on, and what varies."""
        roles: dict[str, Counter] = {}
        rules: dict[str, str] = {}
        for inspected in self.files:
            for name, counts in inspected.roles.items():
                roles.setdefault(name, Counter()).update(counts)
                rules.setdefault(name, inspected.rules.get(name, ""))
        agreed = {name: next(iter(c)) for name, c in roles.items() if len(c) == 1}
        varies = [
            f"{name}: " + ", ".join(f"{role} in {n} records" for role, n in c.most_common())
            for name, c in roles.items()
            if len(c) > 1
        ]
        return agreed, {k: rules[k] for k in agreed}, varies

    def write_mapping(self, path: str | Path) -> None:
        fields, rules, varies = self.mapping_fields()
        formats = {f.format for f in self.files if f.format}
        header = [
            "Inferred by `aim-etl inspect` from: " + ", ".join(f.source for f in self.files if f.format),
            "Each field's role and, after it, the rule that chose it. Change a role and import with",
            "`aim-etl migrate ... --mapping THIS_FILE`: your word wins, field by field. Roles:",
            "id experiment name time end_time duration tags params metrics series meta ignore.",
        ]
        if varies:
            header += ["", "Left to the interpreter, record by record (their role differs between records):"]
            header += [f"  {line}" for line in varies]
        write_mapping(path, fields, format=formats.pop() if len(formats) == 1 else None, header=header, notes=rules)

    def to_dict(self) -> dict[str, Any]:
        return {"files": [f.as_dict() for f in self.files]}

    def to_text(self) -> str:
        out: list[str] = []
        for f in self.files:
            out.append(f.source)
            if f.format is None:
                out.append(f"  skipped: {f.reason}")
                continue
            out.append(f"  reader: {f.format} ({f.reason})")
            out.append(
                f"  records: {f.records} read, {f.experiments} runs, {f.not_experiments} not experiments, "
                f"{f.invalid} invalid"
            )
            out += [f"  problem: {p}" for p in f.problems[:5]]
            if f.sample is None:
                continue
            out.append(f"  sample record: {f.sample}")
            width = max((len(r.field) for r in f.fields), default=5)
            for r in f.fields:
                role = r.role + (f" ({r.points} points)" if r.points else "") + (" [mapping]" if r.hinted else "")
                out.append(f"    {r.field:<{width}}  {role:<22}  {r.rule}   e.g. {r.example}")
            if f.run:
                run = f.run
                out.append(
                    f"  as a run: experiment {run['experiment']!r}, name {run['name']!r}, "
                    f"{run['hparams']} hparams, {run['series']} series / {run['points']} points, "
                    f"dated {run['created_at']} by {run['time_source']}"
                )
        return "\n".join(out)


def inspect(
    paths: Sequence[str | Path],
    *,
    rules: FieldRules | None = None,
    format: str = "auto",
    keyed: str = KEYED_AS_RUNS,
    mapping: Mapping | None = None,
    base: str | Path | None = None,
    max_records: int | None = None,
) -> Inspection:
    """Read each file as an import would (same reader, same interpreter, same options), write nothing.

    Every record is read unless `max_records` says otherwise: a field's role in the written mapping
    must hold for all of a file's records, or the mapping would change some runs.
    """
    from etl.pipeline import guided

    rules, format = guided(rules or FieldRules(), format, mapping)
    files, skipped = find_sources(list(paths), base=Path(base) if base else Path.cwd(), format=format)
    out = [FileInspection(s.source, None, s.reason) for s in skipped]
    for source in files:
        inspected = FileInspection(source.source, source.format, source.reason)
        dates = file_dates(source.path, source.source, rules.timezone)
        try:
            for item in read_file(source, keyed=keyed, mapping=mapping):
                if max_records is not None and inspected.records >= max_records:
                    break
                inspected.records += 1
                if isinstance(item, BadRecord):
                    inspected.invalid += 1
                    inspected.problems.append(f"{item.locator}: {item.reason}")
                    continue
                _inspect_record(inspected, item, rules, dates)
        except OSError as exc:
            inspected.problems.append(f"cannot read: {exc.strerror or exc}")
        out.append(inspected)
    return Inspection(sorted(out, key=lambda f: f.source))


def _inspect_record(inspected: FileInspection, record: Record, rules: FieldRules, dates) -> None:
    try:
        item = interpret(record, rules)
    except NotAnExperiment:
        inspected.not_experiments += 1
        return
    inspected.experiments += 1
    for name, role in item.roles.items():
        inspected.roles.setdefault(name, Counter())[role.role] += 1
        inspected.rules.setdefault(name, role.rule)
    if inspected.sample is not None:
        return
    inspected.sample = record.locator
    inspected.fields = [
        FieldReading(name, role.role, role.rule, _example(record.data.get(name)), role.points, role.hinted)
        for name, role in sorted(item.roles.items(), key=lambda kv: list(record.data).index(kv[0]))
    ]
    created, _, time_source = date_run(
        item.created_at, item.ended_at, [p[5] for p in item.points], record_duration(record.data), dates
    )
    inspected.run = {
        "experiment": item.experiment,
        "name": item.name,
        "hparams": len(item.hparams),
        "series": len({(p[0], p[1]) for p in item.points}),
        "points": len(item.points),
        "created_at": created.isoformat() if created else None,
        "time_source": time_source,
    }


def _example(value: Any, width: int = 40) -> str:
    import json

    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
