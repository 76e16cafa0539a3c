"""End to end on the project's fixtures: migrate into a real Aim repo, read it back with Aim's SDK."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest

from etl.writers.naming import run_hash_for
from tests.conftest import FIXTURES, aim_runs, numbers, run_cli, same_number, series

LOG = FIXTURES / "experiments" / "EXPERIMENT_LOG.jsonl"
# The graph team's hand-made data this module is about, the files directly in these folders;
# fixtures/ holds other areas' samples too (fixtures/tools/, fixtures/results/<tool>/).
GRAPH_TEAM = tuple((FIXTURES / name).resolve().as_posix() for name in ("experiments", "results"))


def graph_team(report: dict, column: str) -> int:
    """A report column summed over the graph team's files only."""
    return sum(f[column] for f in report["files"] if f["source"].rsplit("/", 1)[0] in GRAPH_TEAM)


@pytest.fixture
def migrated(repo, tmp_path):
    report = tmp_path / "first.json"
    result = run_cli("migrate", FIXTURES, "--repo", repo, "--report", report, "--quiet")
    return result, json.loads(report.read_text())


def log_lines() -> list[str]:
    return LOG.read_text().split("\n")


def test_first_migration_writes_every_valid_run_and_exits_3_for_the_invalid_ones(migrated, repo):
    result, report = migrated
    assert result.exit_code == 3  # the not-JSON line, the torn last line, the truncated document
    summary = report["summary"]
    runs = aim_runs(repo)
    assert summary["runs_written"] == len(runs) == summary["new"]
    # 34 parsable log lines - 1 exact duplicate = 33; 12 grid entries; 4 methods; 1 run document
    assert graph_team(report, "new") == 33 + 12 + 4 + 1
    assert summary["duplicate"] == 1
    assert summary["invalid"] == 3
    invalid = {(i["source"].rsplit("/", 1)[-1], i["locator"]) for i in report["invalid"]}
    assert invalid == {
        ("EXPERIMENT_LOG.jsonl", "line 18"),
        ("EXPERIMENT_LOG.jsonl", "line 36"),
        ("broken_eval.json", "line 13"),
    }
    torn = next(i for i in report["invalid"] if i["locator"] == "line 36")
    assert torn["reason"].startswith("torn last line")
    assert summary["points_written"] == sum(len(p) for r in runs.values() for p in series(r).values())


def test_second_migration_writes_nothing_and_reports_every_run_unchanged(migrated, repo, tmp_path):
    _, first = migrated
    report = tmp_path / "second.json"
    run_cli("migrate", FIXTURES, "--repo", repo, "--report", report, "--quiet")
    second = json.loads(report.read_text())["summary"]
    assert second["runs_written"] == second["points_written"] == second["new"] == second["changed"] == 0
    assert second["unchanged"] == first["summary"]["new"]
    assert len(aim_runs(repo)) == first["summary"]["new"]


def test_lost_ledger_does_not_duplicate_runs(migrated, repo, tmp_path):
    _, first = migrated
    (repo / ".aim-etl-ledger.sqlite").unlink()
    report = tmp_path / "again.json"
    run_cli("migrate", FIXTURES, "--repo", repo, "--report", report, "--quiet")
    again = json.loads(report.read_text())["summary"]
    assert again["runs_written"] == 0
    assert again["unchanged"] == first["summary"]["new"]
    assert len(aim_runs(repo)) == first["summary"]["new"]


def test_dry_run_creates_nothing_and_plans_what_a_real_run_does(repo, tmp_path):
    report = tmp_path / "plan.json"
    result = run_cli("migrate", FIXTURES, "--repo", repo, "--dry-run", "--report", report)
    assert result.exit_code == 3
    assert not repo.exists()
    plan = json.loads(report.read_text())
    assert plan["dry_run"] is True
    assert graph_team(plan, "new") == 50 and plan["summary"]["runs_written"] == 0
    assert "DRY RUN" in result.output
    # the inventory: hparam keys with their types, metric names/contexts with point counts
    assert set(plan["hparams"]["dim"]["types"]) == {"int"}
    val_loss = [m for m in plan["metrics"] if m["name"] == "loss" and m["context"] == {"subset": "val"}]
    assert val_loss and val_loss[0]["points"] > 0


def test_dry_run_compares_with_the_existing_ledger(migrated, repo, tmp_path):
    _, first = migrated
    report = tmp_path / "plan.md"
    result = run_cli("migrate", FIXTURES, "--repo", repo, "--dry-run", "--report", report)
    assert "0 new" in result.output and f"{first['summary']['new']} unchanged" in result.output
    assert report.read_text().startswith("# aim-etl migrate: Dry run")


def test_a_nested_run_reads_back_with_hparams_tags_contexts_and_every_point(migrated, repo):
    line = json.loads(log_lines()[0])
    run = aim_runs(repo)[run_hash_for(f"{LOG.resolve().as_posix()}#{line['experiment_id']}")]
    assert run.name == line["experiment_id"]
    assert run.experiment == line["experiment_name"]
    assert run["hparams"]["dim"] == line["config"]["dim"]
    assert run["hparams"]["optimizer"] == line["config"]["optimizer"]
    assert set(run.tags) == set(line["tags"])
    assert run["meta"]["notes"] == line["notes"]
    created = dt.datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()
    assert run.creation_time == pytest.approx(created)
    assert run.end_time == pytest.approx(created + line["duration_s"])
    got = series(run)
    assert not [name for name, _ in got if name.startswith("__system__")]
    for name, values in line["history"].items():
        subset, _, metric = name.partition("_")
        key = (metric, (("subset", subset),)) if subset in ("train", "val") else (name, ())
        points = got[key]
        assert [p[0] for p in points] == list(range(len(values)))  # step = index
        assert [p[2] for p in points] == list(range(len(values)))  # epoch = index
        assert all(same_number(p[1], v) for p, v in zip(points, values, strict=True))
        assert all(p[3] == pytest.approx(created) for p in points)  # original time, not import time
    for name, value in line["results"].items():
        if isinstance(value, dict):
            for inner, v in value.items():
                assert got[(inner, (("subset", name),))] == [(0, v, None, pytest.approx(created))]
        else:
            assert got[(name, ())][0][:2] == (0, value)


def test_flat_record_splits_metrics_from_hparams_by_name(migrated, repo):
    line = json.loads(log_lines()[6])
    run = aim_runs(repo)[run_hash_for(f"{LOG.resolve().as_posix()}#{line['experiment_id']}")]
    got = series(run)
    assert got[("loss", (("subset", "val"),))][0][1] == line["val_loss"]
    assert got[("acc", (("subset", "test"),))][0][1] == line["test_acc"]
    assert run["hparams"]["learning_rate"] == line["learning_rate"]
    assert run["hparams"]["batch_size"] == line["batch_size"]


def test_messy_values_are_kept(migrated, repo):
    runs = {r.name: r for r in aim_runs(repo).values()}
    nan_run = series(runs["exp_009"])[("mrr", ())]
    assert math.isnan(nan_run[0][1])
    inf_points = series(runs["exp_014"])[("loss", (("subset", "train"),))]
    assert math.isinf(inf_points[6][1])
    assert runs["exp_018"]["meta"]["results"]["ndcg"] == "n/a"  # a string metric is a param, not lost
    # a nested non-metric dict beside `config` is kept whole, with its numbers, under `meta`
    assert runs["exp_012"]["meta"]["efficiency"] == {"gpu": {"mem_gb": 3.2, "util": 0.81}, "wall_s": 512}


def test_rerun_and_record_without_id_are_both_imported(migrated, repo):
    _, report = migrated
    source = LOG.resolve().as_posix()
    runs = aim_runs(repo)
    assert run_hash_for(f"{source}#exp_013") in runs
    assert run_hash_for(f"{source}#exp_013#2") in runs
    assert [r["locator"] for r in report["reruns"]] == ["line 30"]
    no_id = [r for r in runs.values() if r["etl"]["locator"] == "line 16"]
    assert len(no_id) == 1 and "@" in no_id[0]["etl"]["run_key"]
    assert [d["locator"] for d in report["duplicates"]] == ["line 27"]


def test_every_number_of_every_record_is_in_aim(migrated, repo):
    runs = {
        r["etl"]["locator"]: r for r in aim_runs(repo).values() if r["etl"]["source"].endswith("EXPERIMENT_LOG.jsonl")
    }
    for lineno, text in enumerate(log_lines(), start=1):
        if lineno not in (18, 27, 36):
            record = json.loads(text)
            run = runs[f"line {lineno}"]
            stored = numbers(run["hparams"]) + numbers(run.get("meta", {}))
            stored += [p[1] for points in series(run).values() for p in points]
            for number in numbers(record):
                assert any(same_number(number, s) for s in stored), (lineno, number)


def test_grid_search_entries_inherit_experiment_and_time_and_summary_methods_become_runs(migrated, repo):
    grid = json.loads((FIXTURES / "experiments" / "hparam_search_results.json").read_text())
    runs = [r for r in aim_runs(repo).values() if r["etl"]["source"].endswith("hparam_search_results.json")]
    assert len(runs) == len(grid["results"])
    assert {r.experiment for r in runs} == {grid["search"]}
    created = dt.datetime.fromisoformat(grid["created"].replace("Z", "+00:00")).timestamp()
    assert all(r.creation_time == pytest.approx(created) for r in runs)
    summary = json.loads((FIXTURES / "results" / "eval_summary.json").read_text())
    methods = {r.name: r for r in aim_runs(repo).values() if r["etl"]["source"].endswith("eval_summary.json")}
    assert set(methods) == set(summary)
    for method, metrics in summary.items():
        got = series(methods[method])
        assert {name: points[0][1] for (name, _), points in got.items()} == metrics
