"""The `aim-etl` command: parses flags, calls `etl.pipeline`, prints the report. Nothing else.

Exit codes: 0 all done; 3 done, but some records or files were invalid (all are in the report);
4 a run failed the governance rules at the --fail-on level; 5 another aim-etl holds the repo (see
--wait); 6 `verify` found Aim and the sources differ; 7 an aim:// server does not answer; 2 usage
error or a bad rules file; 1 failure.
"""

from __future__ import annotations

import functools
import shutil
import sys
import time
from pathlib import Path

import click

from etl import __version__, pipeline
from etl.errors import EtlError, RepoLocked, ServerUnavailable, StageFailed
from etl.governance.report import FAIL_LEVELS, REPORT_SUFFIXES
from etl.governance.report import render_text as render_governance_text
from etl.governance.report import write_report as write_governance_report
from etl.interpret import FieldRules
from etl.plan import ON_CHANGE, ON_CHANGE_UPDATE
from etl.readers import FORMATS, KEYED_AS_CONTEXT, KEYED_AS_RUNS
from etl.report import EXIT_INVALID, EXIT_LOCKED, EXIT_QUALITY, EXIT_UNREACHABLE, SyncReport

EXIT_CODES_HELP = """\b
Exit codes:
  0  all done
  3  done, but some records or files were invalid (all are listed in the report)
  4  with --rules and --fail-on: a run failed at that level (wins over 3)
  5  another aim-etl is importing into the repo (waited --wait seconds)
  6  verify: Aim and the sources differ (a run differs, is missing, gone or edited in Aim)
  7  --repo aim://: the Aim server does not answer (at start or mid-import); run again when it is back
  2  usage error, or a bad --rules file (nothing is written)
  1  failure"""


wait_option = click.option(
    "--wait",
    "lock_wait",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="Seconds to wait for another aim-etl working on the same repo (then exit 5).",
)
ledger_option = click.option(
    "--ledger",
    type=click.Path(path_type=Path),
    help="Ledger file [default: beside the repo's .aim; for aim:// in ~/.local/share/aim-etl/servers/HOST_PORT].",
)
repo_option = click.option(
    "--repo",
    default=".",
    show_default=True,
    help="Aim repo path, as Aim's CLI takes it (`PATH` holds `.aim`), or an Aim server: aim://HOST:PORT.",
)


class Locked(click.ClickException):
    exit_code = EXIT_LOCKED


class Unreachable(click.ClickException):
    """Exit 7: the aim:// server does not answer; nothing not written was recorded, so cron may simply retry."""

    exit_code = EXIT_UNREACHABLE


def _library_errors(func):
    """Library errors become one-line messages: exit 5 for a held repo, 1 for the rest."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except RepoLocked as exc:
            raise Locked(str(exc)) from exc
        except (ServerUnavailable, StageFailed) as exc:
            if isinstance(exc, ServerUnavailable) or isinstance(exc.cause, ServerUnavailable):
                raise Unreachable(str(exc)) from exc
            raise click.ClickException(str(exc)) from exc
        except EtlError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def _say(message: str) -> None:
    click.echo(message, err=True)


def rules_option(required: bool):
    return click.option(
        "--rules",
        "rules_path",
        required=required,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Governance rules (TOML): every run checked gets a score, a status and a validation:STATUS tag.",
    )


fail_on_option = click.option(
    "--fail-on",
    type=click.Choice(FAIL_LEVELS),
    help="Exit 4 when a run fails a rule of this severity (warning: of either severity).",
)


def import_options(f):
    """Options shared by the commands that import (`migrate`, `sync`), declared once."""
    options = [
        click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)),
        repo_option,
        ledger_option,
        click.option("--dry-run", is_flag=True, help="Create and change nothing; print what would happen."),
        click.option(
            "--report", "report_path", type=click.Path(path_type=Path), help="Also write the report: .json or .md."
        ),
        reading_options,
        click.option(
            "--on-change",
            type=click.Choice(ON_CHANGE),
            default=ON_CHANGE_UPDATE,
            show_default=True,
            help="An edited record: rewrite its run in place, leave it, or import it as a new run.",
        ),
        rules_option(required=False),
        click.option(
            "--strict",
            is_flag=True,
            help="With --rules: keep runs that fail an error rule out of Aim; the next sync imports them once fixed.",
        ),
        fail_on_option,
        wait_option,
        click.option(
            "--writer",
            type=click.Choice(pipeline.WRITERS),
            default="auto",
            show_default=True,
            help="bulk: whole runs straight into Aim's storage (fast); sdk: through Aim's SDK. "
            "auto: bulk on the Aim versions it was checked on, else sdk with a warning.",
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=1),
            default=None,
            help="Runs the bulk writer writes at once (default: the cores, at most 4).",
        ),
        click.option("--quiet", "-q", is_flag=True, help="No progress and no report on the terminal."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def reading_options(f):
    """How files are read and interpreted: shared by the importing commands and `inspect`."""
    options = [
        click.option(
            "--format",
            "format_",
            type=click.Choice(["auto", *FORMATS]),
            default="auto",
            show_default=True,
            help="Reader for every file, instead of detecting it.",
        ),
        click.option(
            "--mapping",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="TOML file saying where each field is, or each field's role (as `inspect --mapping-out` writes it).",
        ),
        click.option("--experiment", help="Put every run in this experiment."),
        click.option(
            "--experiment-field",
            multiple=True,
            help="Record field naming the experiment (repeatable; replaces the defaults).",
        ),
        click.option(
            "--id-field", multiple=True, help="Record field holding the run id (repeatable; replaces the defaults)."
        ),
        click.option(
            "--name-field", multiple=True, help="Record field holding the run name (repeatable; replaces the defaults)."
        ),
        click.option(
            "--metric-pattern",
            multiple=True,
            help="Regex: flat numeric fields whose names match are metrics (adds to the defaults).",
        ),
        click.option(
            "--param-pattern", multiple=True, help="Regex: fields whose names match are always params, never metrics."
        ),
        click.option(
            "--no-contexts",
            is_flag=True,
            help="Keep train_/val_/test_/eval_ prefixes in metric names instead of Aim contexts.",
        ),
        click.option(
            "--keyed-results",
            type=click.Choice([KEYED_AS_RUNS, KEYED_AS_CONTEXT]),
            default=KEYED_AS_RUNS,
            show_default=True,
            help="A JSON dict keyed by method/model: one run per entry, or one run with a `method` context.",
        ),
        click.option(
            "--timezone", default="UTC", show_default=True, help="Timezone of timestamps written without one."
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="aim-etl")
def cli() -> None:
    """Import JSON/JSONL experiment history into Aim, safely repeatable."""


@cli.command(epilog=EXIT_CODES_HELP)
@import_options
def migrate(report_path, quiet, fail_on, **options) -> None:
    """Import every run found in SOURCES (files or folders, walked recursively) into the Aim repo.

    Running it again writes nothing new: each run is keyed by its source and id (or content),
    and the ledger remembers what was imported. A torn last line is reported invalid.
    """
    _check_fail_on(fail_on, options)
    report = _run_import(pipeline.migrate, report_path, quiet, options)
    _exit(report, fail_on)


@cli.command(epilog=EXIT_CODES_HELP)
@import_options
@click.option("--watch", is_flag=True, help="Keep following SOURCES, importing what is appended, until interrupted.")
@click.option(
    "--interval", type=click.FloatRange(min=0.1), default=5.0, show_default=True, help="Seconds between --watch passes."
)
def sync(report_path, quiet, watch, interval, fail_on, **options) -> None:
    """Import what changed in SOURCES since the last migrate or sync; safe to run any time.

    Unchanged files cost a stat; appended JSONL files are read from where the last sync stopped;
    rewritten files are read again, unchanged records skipped. A torn last line (a writer is still
    writing it) is left for the next sync. Edited records update their run in place (--on-change).
    """
    _check_fail_on(fail_on, options)
    if not watch:
        report = _run_import(pipeline.sync, report_path, quiet, options)
        _exit(report, fail_on)
        return
    paths, repo, kwargs = _import_arguments(options)
    passes, down = 0, False
    try:
        while True:
            try:
                for report in _library_errors(pipeline.watch)(paths, repo, interval=interval, **kwargs):
                    if down:
                        _say("the Aim server answers again; watching")
                    passes, down = passes + 1, False
                    summary = report.summary()
                    if not quiet and (summary["runs_written"] or report.invalid or report.pending):
                        click.echo(report.to_text(limit=5))
                    if report_path is not None:
                        _write_report(report, report_path)
            except (ServerUnavailable, StageFailed) as exc:
                # A watcher outlives a server restart: say so, and sync again (exactly) once it answers.
                if not (isinstance(exc, ServerUnavailable) or isinstance(exc.cause, ServerUnavailable)):
                    raise click.ClickException(str(exc)) from exc
                if passes == 0:  # never reached it: a wrong address more likely than a restart
                    raise Unreachable(str(exc)) from exc
                if not down:  # once per outage, not once per pass
                    _say(f"{exc}\nwatching on; trying again every {interval:g}s")
                down = True
                time.sleep(interval)
    except KeyboardInterrupt:
        _say("stopped watching")


def _check_fail_on(fail_on: str | None, options: dict) -> None:
    if fail_on is not None and options["rules_path"] is None:
        raise click.UsageError("--fail-on needs --rules")


def _exit(report: SyncReport, fail_on: str | None) -> None:
    """Exit 4 when --fail-on's gate trips (it was asked for explicitly), else 3 for invalid input."""
    if report.governance is not None and report.governance.fails_on(fail_on):
        raise QualityGate(f"runs failed at --fail-on {fail_on} level; see the report")
    if report.exit_code == EXIT_INVALID:
        sys.exit(EXIT_INVALID)


@_library_errors
def _run_import(import_fn, report_path, quiet, options) -> SyncReport:
    if report_path is not None and report_path.suffix.lower() not in (".json", ".md"):
        raise click.BadParameter("must end in .json or .md", param_hint="--report")
    paths, repo, kwargs = _import_arguments(options)
    with _progress(quiet) as progress:
        report = import_fn(paths, repo, progress=progress, **kwargs)
    _emit(report, report_path, quiet)
    return report


def _import_arguments(options: dict) -> tuple[list[Path], str, dict]:
    """Click's options as the library's keyword arguments."""
    field_options = {k: options.pop(k) for k in list(options) if k not in _LIBRARY_OPTIONS}
    paths, repo = list(options.pop("sources")), options.pop("repo")
    kwargs = {
        "ledger": options["ledger"],
        "dry_run": options["dry_run"],
        "format": options["format_"],
        "keyed": options["keyed_results"],
        "on_change": options["on_change"],
        "mapping": _mapping(options["mapping"]),
        "lock_wait": options["lock_wait"],
        "on_wait": _say,
        "rules": _field_rules(field_options),
        "governance": _load_rules(options["rules_path"]),
        "strict": options["strict"],
        "writer": options["writer"],
        "workers": options["workers"],
    }
    if options["strict"] and options["rules_path"] is None:
        raise click.UsageError("--strict needs --rules")
    return paths, repo, kwargs


_LIBRARY_OPTIONS = frozenset(
    {
        "sources",
        "repo",
        "ledger",
        "dry_run",
        "format_",
        "keyed_results",
        "on_change",
        "lock_wait",
        "mapping",
        "rules_path",
        "strict",
        "writer",
        "workers",
    }
)


def _mapping(path: Path | None):
    """Load --mapping; a bad file is a usage error (exit 2) naming the file and what is wrong."""
    if path is None:
        return None
    from etl.readers import load_mapping
    from etl.readers.mapping import MappingError

    try:
        return load_mapping(path)
    except MappingError as exc:
        raise click.BadParameter(str(exc), param_hint="--mapping") from None


def _field_rules(mapping: dict) -> FieldRules:
    import re

    for pattern in (*mapping["metric_pattern"], *mapping["param_pattern"]):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise click.BadParameter(f"{pattern!r}: {exc}", param_hint="--metric-pattern/--param-pattern") from None
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(mapping["timezone"])
    except Exception:  # noqa: BLE001 - any failure means the name is not a timezone
        raise click.BadParameter(f"unknown timezone {mapping['timezone']!r}", param_hint="--timezone") from None
    defaults = FieldRules()
    return FieldRules(
        experiment=mapping["experiment"],
        id_fields=tuple(mapping["id_field"]) or defaults.id_fields,
        experiment_fields=tuple(mapping["experiment_field"]) or defaults.experiment_fields,
        name_fields=tuple(mapping["name_field"]) or defaults.name_fields,
        metric_patterns=(*defaults.metric_patterns, *mapping["metric_pattern"]),
        param_patterns=tuple(mapping["param_pattern"]),
        contexts=not mapping["no_contexts"],
        timezone=mapping["timezone"],
    )


class _progress:
    """A tqdm line on a terminal (records, runs, points per second); silent with --quiet or when piped."""

    def __init__(self, quiet: bool, unit: str = " records", update=None) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self.bar = None
        self.unit = unit
        self.update = update or _update_bar

    def __enter__(self):
        if not self.enabled:
            return None
        from tqdm import tqdm

        # A terminal that reports 0 columns (a bare pty) would make tqdm print nothing at all.
        columns = shutil.get_terminal_size().columns or 100
        self.bar = tqdm(unit=self.unit, file=sys.stderr, leave=False, ncols=columns)
        return functools.partial(self.update, self.bar)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def _update_bar(bar, progress: pipeline.Progress) -> None:
    """The share of source bytes done and the time left, then records, runs and points per second.

    tqdm's own rate would count the bytes of unchanged files as read in an instant; the estimate
    comes from `Progress.seconds_left` instead, and the bar counts records."""
    bar.update(progress.records - bar.n)
    seconds = max(progress.seconds, 1e-9)
    runs, points = progress.runs, progress.points
    share, left = progress.share, progress.seconds_left
    done = "" if share is None else f"{share:4.0%} of {_bytes(progress.bytes_total)}, "
    eta = "" if left is None else f"about {_duration(left)} left, "
    bar.set_postfix_str(f"{done}{eta}{runs} runs ({runs / seconds:.0f}/s), {points} points ({points / seconds:.0f}/s)")


def _bytes(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class _ValidateTicker:
    """One tick per run checked, out of the repo's runs when known (tqdm gives the share and the
    time left); the postfix counts those written, the slow part."""

    def __init__(self) -> None:
        self.runs: int | None = None
        self.written = 0

    def __call__(self, bar, checked) -> None:
        if self.runs is not None and bar.total != self.runs:
            bar.total = self.runs
        self.written += checked.state == "written"
        bar.update(1)
        bar.set_postfix_str(f"{self.written} written")

    def total(self, runs: int) -> None:
        self.runs = runs


def _write_report(report: SyncReport, report_path: Path) -> None:
    report_path.parent.mkdir(parents=True, exist_ok=True)
    text = report.to_json() if report_path.suffix.lower() == ".json" else report.to_markdown()
    report_path.write_text(text, encoding="utf-8")


def _emit(report: SyncReport, report_path: Path | None, quiet: bool) -> None:
    if report_path is not None:
        _write_report(report, report_path)
    if not quiet:
        click.echo(report.to_text())
    elif report.invalid:
        click.echo(f"{len(report.invalid)} invalid records or files; see the report", err=True)


@cli.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@reading_options
@click.option(
    "--mapping-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write what was inferred as a mapping file (TOML): edit a role, then import with --mapping.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the inspection as JSON.")
@_library_errors
def inspect(sources, mapping_out, as_json, **options) -> None:
    """Show how SOURCES would be read, without importing: per file the reader and why, and for a
    sample record each field's role (id, time, params, metrics, series, meta, ...) and the rule that
    decided it.
    """
    from etl.inspect import inspect as inspect_paths

    mapping = _mapping(options.pop("mapping"))
    keyed, fmt = options.pop("keyed_results"), options.pop("format_")
    inspection = inspect_paths(sources, rules=_field_rules(options), format=fmt, keyed=keyed, mapping=mapping)
    if as_json:
        import json

        click.echo(json.dumps(inspection.to_dict(), indent=2, default=str))
    else:
        click.echo(inspection.to_text())
    if mapping_out is not None:
        inspection.write_mapping(mapping_out)
        click.echo(f"wrote {mapping_out}: import with --mapping {mapping_out}", err=True)


@cli.group()
def ledger() -> None:
    """Look at or rebuild the ledger of what was imported."""


@ledger.command("show")
@repo_option
@ledger_option
@_library_errors
def ledger_show(repo, ledger) -> None:
    """List the import batches: when, what command, which sources, and their counts."""
    for batch in pipeline.ledger_batches(repo, ledger=ledger):
        summary = batch["summary"] or {}
        counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in summary.items() if v)
        counts = counts or ("nothing to do" if batch["finished_at"] else "unfinished (interrupted?)")
        sources = batch["sources"]
        click.echo(f"{batch['batch']}  {batch['command']:<9}  {batch['started_at']}  {len(sources)} sources  {counts}")


@ledger.command("rebuild")
@repo_option
@ledger_option
@_library_errors
def ledger_rebuild(repo, ledger) -> None:
    """Rebuild the ledger from the `etl` param on the runs in the repo (after it was lost)."""
    count = pipeline.rebuild_ledger(repo, ledger=ledger)
    click.echo(f"ledger rebuilt from the repo: {count} runs")


@cli.command()
@click.argument("batch")
@repo_option
@ledger_option
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
@wait_option
@_library_errors
def rollback(batch, repo, ledger, dry_run, lock_wait) -> None:
    """Delete the runs that import BATCH created (see `aim-etl ledger show`).

    Runs the batch updated in place are listed: their earlier content is gone and cannot be restored.
    """
    report = pipeline.rollback(batch, repo, ledger=ledger, dry_run=dry_run, lock_wait=lock_wait, on_wait=_say)
    click.echo(report.to_text())


VALIDATE_EXIT_CODES_HELP = """\b
Exit codes:
  0  done (whatever the runs' statuses, unless --fail-on says otherwise)
  4  a run failed at the --fail-on level
  5  another aim-etl is working on the repo (waited --wait seconds)
  7  --repo aim://: the Aim server does not answer
  2  usage error, or a bad rules file (the message names the file and the rule or line)
  1  failure"""


class QualityGate(click.ClickException):
    """Exit 4: the runs were checked, and one failed at the level `--fail-on` names."""

    exit_code = EXIT_QUALITY


def _load_rules(path: Path | None):
    """A bad rules file is a usage error (exit 2) that names the file and the rule or line; nothing is written."""
    if path is None:
        return None
    from etl.governance.rules import RulesError, load_rules

    try:
        return load_rules(path)
    except RulesError as exc:
        raise click.BadParameter("\n" + str(exc), param_hint="--rules") from None


@cli.command(epilog=VALIDATE_EXIT_CODES_HELP)
@repo_option
@rules_option(required=True)
@click.option("--query", help="AimQL: check only the runs it matches, e.g. 'run.experiment == \"cifar\"'.")
@click.option("--dry-run", is_flag=True, help="Check and report; write nothing on any run.")
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path),
    help="Also write the report: .json, .md, .csv (one row per run and rule) or .html (one self-contained page).",
)
@fail_on_option
@wait_option
@click.option("--quiet", "-q", is_flag=True, help="No report on the terminal.")
@_library_errors
def validate(repo, rules_path, query, dry_run, report_path, fail_on, lock_wait, quiet) -> None:
    """Check the runs of an Aim repo against --rules, imported or logged live, and store the verdict.

    Each run gets `run.validation` {score, status, rules_version, violations} and one tag
    validation:PASS|WARN|FAIL, so `run.validation.status == "FAIL"` works in `aim up`'s search.
    Runs already carrying the same verdict are not touched; runs another process holds open are
    listed as active and skipped. Each pass that writes adds a step to the `governance` experiment's
    run for these rules, so compliance over time is a chart.
    """
    _check_report_suffix(report_path, REPORT_SUFFIXES)
    rules = _load_rules(rules_path)
    try:
        ticker = _ValidateTicker()
        with _progress(quiet, " runs", ticker) as on_run:
            report = pipeline.validate(
                repo,
                rules,
                query=query,
                dry_run=dry_run,
                lock_wait=lock_wait,
                on_wait=_say,
                on_run=on_run,
                on_total=ticker.total if on_run is not None else None,
            )
    except SyntaxError as exc:
        # Aim's parser puts its message in a tuple.
        detail = exc.msg[0] if isinstance(exc.msg, tuple) and exc.msg else exc.msg
        raise click.BadParameter(f"{query!r} is not valid AimQL: {detail}", param_hint="--query") from None
    if report_path is not None:
        write_governance_report(report, report_path)
    if not quiet:
        click.echo(render_governance_text(report))
    if report.fails_on(fail_on):
        raise QualityGate(f"runs failed at --fail-on {fail_on} level; see the report")


def _check_report_suffix(report_path: Path | None, suffixes: tuple[str, ...]) -> None:
    if report_path is not None and report_path.suffix.lower() not in suffixes:
        raise click.BadParameter(f"must end in {', '.join(suffixes)}", param_hint="--report")


class Different(click.ClickException):
    """Exit 6: `verify` found Aim and the sources differ."""

    exit_code = 6


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@repo_option
@ledger_option
@reading_options
@click.option(
    "--deep", is_flag=True, help="Load and compare every point, not only where summaries could hide a change."
)
@click.option("--report", "report_path", type=click.Path(path_type=Path), help="Also write the report: .json or .md.")
@click.option("--quiet", "-q", is_flag=True, help="No report on the terminal.")
@_library_errors
def verify(sources, repo, ledger, deep, report_path, quiet, **options) -> None:
    """Check that the Aim repo holds exactly what SOURCES say: every run, param, tag, time and point.

    Pass the reading options the import used. Duplicates and unreadable records are counted as
    such; a run renamed or re-tagged in Aim after the import is reported as edited in Aim.
    """
    from etl.verify import verify as verify_runs

    _check_report_suffix(report_path, (".json", ".md"))
    field_options = {k: options.pop(k) for k in list(options) if k not in _LIBRARY_OPTIONS}
    report = verify_runs(
        list(sources),
        repo,
        ledger=ledger,
        rules=_field_rules(field_options),
        format=options["format_"],
        keyed=options["keyed_results"],
        mapping=_mapping(options["mapping"]),
        deep=deep,
    )
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        text = report.to_json() if report_path.suffix.lower() == ".json" else report.to_markdown()
        report_path.write_text(text, encoding="utf-8")
    if not quiet:
        click.echo(report.to_text())
    if report.exit_code:
        raise Different("Aim and the sources differ; see the report")


@cli.command()
@repo_option
@click.option("--query", help="AimQL: export only the runs it matches, e.g. 'run.experiment == \"cifar\"'.")
@click.option("--to", "to", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write.")
@click.option(
    "--format",
    "format_",
    type=click.Choice(["jsonl", "csv", "parquet"]),
    default="jsonl",
    show_default=True,
    help="jsonl: runs.jsonl, one EXPERIMENT_LOG record per run (migrate reads it back); csv: runs.csv + metrics.csv.",
)
@_library_errors
def export(repo, query, to, format_) -> None:
    """Write the runs of an Aim repo (imported or logged live) to files, one run at a time.

    The JSONL export holds each run's experiment, name, times, hparams (as `config`), tags, meta
    and every point (step, epoch, time, context): `migrate` of it into an empty repo gives the same runs.
    """
    from etl.exporting import write_export

    try:
        summary = write_export(repo, to, query=query, format=format_)
    except SyntaxError as exc:
        detail = exc.msg[0] if isinstance(exc.msg, tuple) and exc.msg else exc.msg
        raise click.BadParameter(f"{query!r} is not valid AimQL: {detail}", param_hint="--query") from None
    click.echo(f"exported {summary.runs} runs, {summary.points} points: {', '.join(summary.files)}")


def main() -> None:
    cli(prog_name="aim-etl")


if __name__ == "__main__":
    main()
