"""The `aim-etl` command: parses flags, calls `etl.pipeline`, prints the report. Nothing else.

Exit codes: 0 all done; 3 done, but some records or files were invalid (all are in the report);
2 usage error; 1 failure.
"""

from __future__ import annotations

import functools
import shutil
import sys
from pathlib import Path

import click

from etl import __version__, pipeline
from etl.errors import EtlError
from etl.interpret import FieldRules
from etl.readers import FORMATS, KEYED_AS_CONTEXT, KEYED_AS_RUNS
from etl.report import EXIT_INVALID, SyncReport

EXIT_CODES_HELP = """\b
Exit codes:
  0  all done
  3  done, but some records or files were invalid (all are listed in the report)
  2  usage error
  1  failure"""


def import_options(f):
    """Options shared by every command that imports (`migrate` today, `sync` next), declared once."""
    options = [
        click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)),
        click.option(
            "--repo", default=".", show_default=True, help="Aim repo path, as Aim's CLI takes it (`PATH` holds `.aim`)."
        ),
        click.option(
            "--ledger", type=click.Path(path_type=Path), help="Ledger file [default: beside the repo's .aim]."
        ),
        click.option("--dry-run", is_flag=True, help="Create and change nothing; print what would happen."),
        click.option(
            "--report", "report_path", type=click.Path(path_type=Path), help="Also write the report: .json or .md."
        ),
        click.option(
            "--format",
            "format_",
            type=click.Choice(["auto", *FORMATS]),
            default="auto",
            show_default=True,
            help="Reader for every file, instead of detecting it.",
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
        click.option("--quiet", "-q", is_flag=True, help="No progress and no report on the terminal."),
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
def migrate(sources, repo, ledger, dry_run, report_path, format_, quiet, keyed_results, **mapping) -> None:
    """Import every run found in SOURCES (files or folders, walked recursively) into the Aim repo.

    Running it again writes nothing new: each run is keyed by its source and id (or content),
    and the ledger remembers what was imported.
    """
    _run_import("migrate", sources, repo, ledger, dry_run, report_path, format_, quiet, keyed_results, mapping)


def _run_import(command, sources, repo, ledger, dry_run, report_path, format_, quiet, keyed, mapping) -> None:
    if report_path is not None and report_path.suffix.lower() not in (".json", ".md"):
        raise click.BadParameter("must end in .json or .md", param_hint="--report")
    rules = _field_rules(mapping)
    with _progress(quiet) as progress:
        try:
            report = pipeline.migrate(
                list(sources),
                repo,
                ledger=ledger,
                dry_run=dry_run,
                rules=rules,
                format=format_,
                keyed=keyed,
                progress=progress,
                command=command,
            )
        except EtlError as exc:
            raise click.ClickException(str(exc)) from exc
    _emit(report, report_path, quiet)
    if report.exit_code == EXIT_INVALID:
        sys.exit(EXIT_INVALID)


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

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self.bar = None

    def __enter__(self):
        if not self.enabled:
            return None
        from tqdm import tqdm

        # A terminal that reports 0 columns (a bare pty) would make tqdm print nothing at all.
        columns = shutil.get_terminal_size().columns or 100
        self.bar = tqdm(unit=" records", file=sys.stderr, leave=False, ncols=columns)
        return functools.partial(_update_bar, self.bar)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def _update_bar(bar, progress: pipeline.Progress) -> None:
    bar.update(progress.records - bar.n)
    seconds = max(progress.seconds, 1e-9)
    runs, points = progress.runs, progress.points
    bar.set_postfix_str(f"{runs} runs ({runs / seconds:.0f}/s), {points} points ({points / seconds:.0f}/s)")


def _emit(report: SyncReport, report_path: Path | None, quiet: bool) -> None:
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        text = report.to_json() if report_path.suffix.lower() == ".json" else report.to_markdown()
        report_path.write_text(text, encoding="utf-8")
    if not quiet:
        click.echo(report.to_text())
    elif report.invalid:
        click.echo(f"{len(report.invalid)} invalid records or files; see the report", err=True)


def main() -> None:
    cli(prog_name="aim-etl")


if __name__ == "__main__":
    main()
