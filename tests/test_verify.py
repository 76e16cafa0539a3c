"""`aim-etl verify`: migrate real files into a real Aim repo, then compare the sources with what Aim reads back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, aim_runs, run_cli

LOG = FIXTURES / "experiments" / "EXPERIMENT_LOG.jsonl"


@pytest.fixture
def migrated(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the fixture experiments beside the repo's `.aim`, migrated: (repo, copied folder)."""
    repo = tmp_path / "repo"
    sources = repo / "experiments"
    shutil.copytree(FIXTURES / "experiments", sources)
    result = run_cli("migrate", sources, "--repo", repo, "-q")
    assert result.exit_code == 3, result.output  # the fixture log has a bad line and a torn last line
    return repo, sources


def _report(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_fixtures_verify_all_equal_with_duplicates_and_skipped_records_accounted(migrated, tmp_path):
    repo, sources = migrated
    report_path = tmp_path / "verify.json"
    result = run_cli("verify", sources, "--repo", repo, "--report", report_path)
    assert result.exit_code == 0, result.output
    summary = _report(report_path)["summary"]
    imported = len(aim_runs(repo))
    assert summary["runs_checked"] == summary["equal"] == imported == 45
    assert summary["differing"] == summary["missing_in_aim"] == summary["gone_from_sources"] == 0
    # the fixture log repeats one line verbatim, and has one line that is not JSON and a torn last line
    assert summary["duplicates"] == 1
    assert summary["skipped_records"] == 2
    assert summary["series_loaded"] == 0  # unchanged records whose summaries agree: no series read


def test_deep_verify_loads_every_series_and_finds_them_equal(migrated, tmp_path):
    repo, sources = migrated
    report_path = tmp_path / "deep.json"
    assert run_cli("verify", sources, "--repo", repo, "--deep", "--report", report_path).exit_code == 0
    summary = _report(report_path)["summary"]
    series_in_aim = sum(len(list(r.metrics())) for r in aim_runs(repo).values())
    assert summary["series_loaded"] == series_in_aim > 100
    assert summary["equal"] == 45


def test_one_number_edited_in_the_source_is_the_one_difference_reported(migrated, tmp_path):
    repo, sources = migrated
    log = sources / LOG.name
    lines = log.read_text(encoding="utf-8").split("\n")
    # exp_001's val_loss history, second epoch: an interior point, hidden by first/last/min/max
    assert '"val_loss": [4.085, 2.7915,' in lines[0]
    lines[0] = lines[0].replace('"val_loss": [4.085, 2.7915,', '"val_loss": [4.085, 2.7916,')
    log.write_text("\n".join(lines), encoding="utf-8")

    report_path = tmp_path / "verify.json"
    result = run_cli("verify", sources, "--repo", repo, "--report", report_path)
    assert result.exit_code == 6, result.output
    report = _report(report_path)
    assert report["summary"]["differing"] == 1 and report["summary"]["equal"] == 44
    [difference] = report["differences"]
    assert difference["place"] == "experiments/EXPERIMENT_LOG.jsonl:line 1"
    assert difference["field"] == 'series loss{"subset":"val"}.value[step 1]'
    assert (difference["source_value"], difference["aim_value"]) == (2.7916, 2.7915)
    assert difference["kind"] == "differing"
    assert "experiments/EXPERIMENT_LOG.jsonl:line 1" in result.output and "2.7916" in result.output


def test_a_hparam_edited_in_the_source_is_reported_at_its_depth(migrated, tmp_path):
    repo, sources = migrated
    log = sources / LOG.name
    text = log.read_text(encoding="utf-8")
    first, rest = text.split("\n", 1)
    assert '"betas": [0.9, 0.999]' in first
    log.write_text(first.replace('"betas": [0.9, 0.999]', '"betas": [0.9, 0.99]') + "\n" + rest, encoding="utf-8")
    report_path = tmp_path / "verify.json"
    assert run_cli("verify", sources, "--repo", repo, "--report", report_path).exit_code == 6
    [difference] = _report(report_path)["differences"]
    assert difference["field"] == "hparams.optimizer.betas[1]"
    assert (difference["source_value"], difference["aim_value"]) == (0.99, 0.999)


def test_run_renamed_and_tagged_in_aim_is_edited_in_aim_not_corruption(migrated, tmp_path):
    from etl.writers import aim_adapter

    repo, sources = migrated
    run = next(r for r in aim_runs(repo).values() if r["etl"]["locator"] == "line 1")
    run_hash, end_time, old_name = run.hash, run.end_time, run.name
    del run
    # What the UI does: change the name and tags of a finished run, leaving its data and end time alone.
    store = aim_adapter.open_repo(repo)
    writable = aim_adapter.open_for_update(store, run_hash)
    writable.name = "renamed in the UI"
    writable.add_tag("reviewed")
    aim_adapter.close_keeping_end(writable, end_time)
    del writable

    report_path = tmp_path / "verify.json"
    result = run_cli("verify", sources, "--repo", repo, "--report", report_path)
    assert result.exit_code == 6, result.output
    report = _report(report_path)
    assert report["summary"]["edited_in_aim"] == 1
    assert report["summary"]["differing"] == 0 and report["summary"]["equal"] == 44
    by_field = {d["field"]: d for d in report["differences"]}
    assert set(by_field) == {"name", "tags"}
    assert all(d["kind"] == "edited in Aim" and d["run_hash"] == run_hash for d in by_field.values())
    assert (by_field["name"]["source_value"], by_field["name"]["aim_value"]) == (old_name, "renamed in the UI")
    assert "reviewed" in by_field["tags"]["aim_value"] and "reviewed" not in by_field["tags"]["source_value"]


def test_record_removed_from_the_source_is_gone_and_run_deleted_in_aim_is_missing(migrated, tmp_path):
    from etl.writers import aim_adapter

    repo, sources = migrated
    log = sources / LOG.name
    lines = log.read_text(encoding="utf-8").split("\n")
    assert '"exp_002"' in lines[1]
    log.write_text("\n".join(lines[:1] + lines[2:]), encoding="utf-8")
    victim = next(r for r in aim_runs(repo).values() if r["etl"]["locator"] == "line 3").hash
    aim_adapter.delete_run(aim_adapter.open_repo(repo), victim)

    report_path = tmp_path / "verify.md"
    result = run_cli("verify", sources, "--repo", repo, "--report", report_path)
    assert result.exit_code == 6, result.output
    markdown = report_path.read_text(encoding="utf-8")
    assert "| gone from sources | 1 |" in markdown and "| missing in aim | 1 |" in markdown
    assert f"| {victim} | missing in Aim | `run`" in markdown
    assert "gone from the sources" in markdown


@pytest.mark.corpus
def test_whole_corpus_migrated_then_verified_is_all_equal(corpus, migrated_corpus, tmp_path):
    repo, _ = migrated_corpus
    report_path = tmp_path / "verify.json"
    result = run_cli("verify", corpus, "--repo", repo, "--report", report_path, "-q")
    report = _report(report_path)
    # Every difference would be listed with its place and field; none is expected.
    assert report["differences"] == [], report["differences"][:10]
    assert result.exit_code == 0
    summary = report["summary"]
    assert summary["runs_checked"] == summary["equal"] == len(aim_runs(repo)) > 400


def test_verify_without_a_repo_fails_with_the_reason_and_creates_nothing(tmp_path):
    result = run_cli("verify", LOG, "--repo", tmp_path / "nothing")
    assert result.exit_code == 1
    assert "no Aim repo here" in result.output
    assert not (tmp_path / "nothing").exists()


def test_a_step_logged_twice_is_equal_and_its_overwritten_value_is_accounted_with_its_rule(tmp_path):
    repo = tmp_path / "repo"
    log = repo / "resumed.jsonl"
    log.parent.mkdir(parents=True)
    # A trainer resumed from a checkpoint logs step 1 again: Aim keeps one point per step.
    record = {
        "run_id": "r1",
        "config": {"lr": 0.1},
        "history": [{"step": 0, "loss": 1.0}, {"step": 1, "loss": 0.9}, {"step": 1, "loss": 0.8}],
    }
    log.write_text(json.dumps(record) + "\n", encoding="utf-8")
    assert run_cli("migrate", log, "--repo", repo, "-q").exit_code == 0
    report_path = tmp_path / "verify.json"
    assert run_cli("verify", log, "--repo", repo, "--deep", "--report", report_path).exit_code == 0
    report = _report(report_path)
    assert report["summary"]["equal"] == 1 and report["summary"]["points_overwritten"] == 1
    [dropped] = report["overwritten"]
    assert (dropped["source"], dropped["locator"], dropped["points"]) == ("resumed.jsonl", "line 1", 1)
    assert "keeps its last value" in dropped["rule"]
    [run] = aim_runs(repo).values()
    [metric] = list(run.metrics())
    assert metric.data.items_list()[1][0] == [1.0, 0.8]
