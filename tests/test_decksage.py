"""The real history this tool is first for: the decksage project's published experiment files.

Real logs differ from the plan; each quirk below is one the importer handles on purpose
(see the corpus folder's SOURCE.md for where each comes from).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import aim_runs, run_cli, series

pytestmark = pytest.mark.corpus


@pytest.fixture(scope="module")
def decksage_import(tmp_path_factory):
    from tests.conftest import corpus_dir

    corpus = corpus_dir() / "arclabs561__decksage"
    if not corpus.is_dir():
        pytest.skip(f"shared corpus not found at {corpus.parent} (set AIM_ETL_CORPUS to its folder)")
    tmp = tmp_path_factory.mktemp("decksage")
    repo = tmp / "repo"
    report_path = tmp / "report.json"
    result = run_cli("migrate", corpus, "--repo", repo, "--report", report_path, "--quiet")
    return corpus, repo, result, json.loads(report_path.read_text())


def test_every_line_and_every_file_is_accounted_for(decksage_import):
    corpus, _, result, report = decksage_import
    assert result.exit_code == 3  # the truncated bootstrap_results file
    files = {f["source"]: f for f in report["files"]}
    on_disk = {p.resolve().as_posix() for p in corpus.rglob("*") if p.is_file()}
    assert set(files) == on_disk
    skipped_files = {s["source"] for s in report["skipped"] if s["locator"] == "file"}
    for source, stats in files.items():
        outcomes = sum(stats[k] for k in ("new", "changed", "unchanged", "duplicate", "invalid", "skipped"))
        assert outcomes == stats["records"], source
        if source.endswith(".jsonl"):
            lines = [ln for ln in Path(source).read_text().splitlines() if ln.strip()]
            assert stats["records"] == len(lines), source
        elif stats["records"] == 0:
            assert source in skipped_files, source
    summary = report["summary"]
    total = sum(f["records"] for f in files.values())
    records_skipped = sum(1 for s in report["skipped"] if s["locator"] != "file")
    assert total == summary["new"] + summary["duplicate"] + summary["invalid"] + records_skipped
    assert summary["new"] == summary["runs_written"]


def test_bare_infinity_is_a_metric_value(decksage_import):
    _, repo, _, _ = decksage_import
    runs = [
        r
        for r in aim_runs(repo).values()
        if r["etl"]["locator"] == "line 37"
        and r["etl"]["source"].endswith("experiments/EXPERIMENT_LOG_CANONICAL.jsonl")
        and "_versions" not in r["etl"]["source"]
    ]
    assert len(runs) == 1
    assert series(runs[0])[("mrr", ())][0][1] == float("inf")


def test_logger_events_without_numbers_are_skipped_with_a_reason(decksage_import):
    _, _, _, report = decksage_import
    canonical = [
        s
        for s in report["skipped"]
        if s["source"].endswith("/experiments/EXPERIMENT_LOG_CANONICAL.jsonl") and "_versions" not in s["source"]
    ]
    assert len(canonical) == 462  # the events whose `metrics` is {}
    assert {s["reason"] for s in canonical} == {"not an experiment: no hyperparameters and not one number"}


def test_timestamps_with_z_offset_naive_and_date_only(decksage_import):
    _, repo, _, report = decksage_import
    by_place = {
        (r["etl"]["source"].split("arclabs561__decksage/")[1], r["etl"]["locator"]): r for r in aim_runs(repo).values()
    }
    # `...Z` (logger events) and `+00:00` (run records) are the same instant format
    z = by_place[("experiments/EXPERIMENT_LOG_CANONICAL.jsonl", "line 37")]
    assert z.creation_time == pytest.approx(1767580202.768953)  # 2026-01-05T02:30:02.768953Z
    offset = by_place[("experiments/EXPERIMENT_LOG_CANONICAL.jsonl", "line 473")]
    assert offset.creation_time == pytest.approx(1767641646.136831)  # 2026-01-05T19:34:06.136831+00:00
    # naive timestamps are read as --timezone (UTC by default) and counted in the report
    assert report["naive_timestamps"]["count"] > 0 and report["naive_timestamps"]["read_as"] == "UTC"
    # date-only: the old log's `date`
    old = by_place[("_versions/5c58c64b/experiments/EXPERIMENT_LOG_CANONICAL.jsonl", "line 2")]
    assert old.creation_time == pytest.approx(1759276800.0)  # 2025-10-01T00:00:00Z
    assert old.end_time == old.creation_time  # no end, no points with times: duration 0, not "until the import"


def test_timezone_flag_shifts_naive_timestamps(tmp_path, corpus):
    source = corpus / "arclabs561__decksage" / "experiments" / "data" / "experiments.jsonl"
    run_cli("migrate", source, "--repo", tmp_path / "utc", "-q")
    run_cli("migrate", source, "--repo", tmp_path / "ny", "--timezone", "America/New_York", "-q")
    (utc,) = aim_runs(tmp_path / "utc").values()
    (ny,) = aim_runs(tmp_path / "ny").values()
    assert ny.creation_time - utc.creation_time == pytest.approx(4 * 3600)  # 2025-10-04 is EDT, UTC-4


def test_same_run_in_several_files_imports_once_and_lists_the_copies(decksage_import):
    corpus, repo, _, report = decksage_import
    logs = corpus / "experiments" / "evaluation_logs"
    runs = [r for r in aim_runs(repo).values() if r["etl"]["source"].endswith("evaluation_logs/evaluation_runs.jsonl")]
    skipped_lines = [s for s in report["skipped"] if s["source"].endswith("evaluation_runs.jsonl")]
    assert len(runs) + len(skipped_lines) == 11  # 2 lines hold neither hparams nor a number
    # every per-run .json copy is the duplicate of its log line, or skipped as that line was
    duplicates = {d["source"]: d["reason"] for d in report["duplicates"]}
    skipped = {s["source"] for s in report["skipped"]}
    copies = [p.resolve().as_posix() for p in logs.glob("*.json")]
    assert len(copies) == 11
    for copy in copies:
        assert "evaluation_runs.jsonl line" in duplicates.get(copy, "") or copy in skipped, copy
    assert sum(c in duplicates for c in copies) == len(runs)
    backups = [d for d in report["duplicates"] if "/backups/" in d["source"]]
    assert backups and all("duplicate of" in d["reason"] for d in backups)


def test_same_id_with_different_content_in_two_files_gives_two_traceable_runs(decksage_import):
    _, repo, _, _ = decksage_import
    exp_022 = [r for r in aim_runs(repo).values() if r.name == "exp_022"]
    sources = sorted(r["etl"]["source"].split("arclabs561__decksage/")[1] for r in exp_022)
    assert sources == [
        "_versions/5c58c64b/experiments/EXPERIMENT_LOG_CANONICAL.jsonl",
        "archive/2025-10-03-tidy/experiments/EXPERIMENT_LOG_OLD_PARTIAL.jsonl",
    ]


def test_non_numeric_metric_values_are_kept_as_params(decksage_import):
    _, repo, _, _ = decksage_import
    (run,) = [r for r in aim_runs(repo).values() if r.name == "ndcg_evaluation_fusion_20260105_190525"]
    kept = run["meta"]["metrics"]
    assert isinstance(kept["method"], str)  # a string inside `metrics`
    assert isinstance(kept["per_query"], dict) and kept["per_query"]  # a nested dict of per-query numbers
    assert ("num_queries", ()) in series(run)  # while the numbers beside them are metrics


def test_truncated_json_file_is_invalid_with_its_path(decksage_import):
    _, _, _, report = decksage_import
    (bad,) = report["invalid"]
    assert bad["source"].endswith("src/experiments/bootstrap_results_oct_4.json")
    assert bad["locator"].startswith("line ") and bad["reason"].startswith("not JSON")


def test_second_migration_of_the_corpus_writes_nothing(decksage_import):
    corpus, repo, _, first = decksage_import
    result = run_cli("migrate", corpus, "--repo", repo, "--quiet", "--report", repo.parent / "second.json")
    second = json.loads((repo.parent / "second.json").read_text())["summary"]
    assert result.exit_code == 3
    assert second["runs_written"] == 0 and second["new"] == 0
    assert second["unchanged"] == first["summary"]["new"]
    assert second["duplicate"] == first["summary"]["duplicate"]
