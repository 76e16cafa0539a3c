"""What the report counts so a user can judge an import before trusting it: numbers that became
metrics vs params per file, runs with no metric and why, points a later value replaced, and names."""

from __future__ import annotations

import json

from tests.conftest import aim_runs, run_cli, series


def _write(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_numbers_per_file_runs_without_metrics_and_replaced_points(tmp_path, repo):
    log = _write(
        tmp_path / "log.jsonl",
        [
            # a resumed training re-logs step 2: the later value wins, and the report says one was replaced
            {
                "run_id": "resumed",
                "config": {"lr": 0.1, "layers": 2},
                "history": [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}, {"step": 2, "loss": 1.4}],
            },
            # numbers, none of which reads as a result: a run with no metric, listed with the reason
            {"run_id": "setup-only", "config": {"lr": 0.1}, "seed": 3},
        ],
    )
    report_path = tmp_path / "report.json"
    result = run_cli("migrate", log, "--repo", repo, "--report", report_path)
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    (stats,) = report["files"]
    assert stats["metric_numbers"] == 3  # three loss points, the replaced one included
    assert stats["param_numbers"] == 4  # lr and layers, lr again and the seed
    assert report["replaced_points"] == 1
    assert [(i["locator"], i["reason"].split(":")[0]) for i in report["no_metric"]] == [("line 2", "no metric")]
    assert "1 points were replaced by a later value logged at the same step" in result.output
    assert "runs with no metric:" in result.output

    runs = {run.name: run for run in aim_runs(repo).values()}
    loss = series(runs["resumed"])[("loss", ())]
    assert [(step, value) for step, value, *_ in loss] == [(1, 2.0), (2, 1.4)]


def test_a_record_without_name_or_id_is_named_by_its_place(tmp_path, repo):
    log = _write(tmp_path / "evals.jsonl", [{"config": {"k": 1}, "results": {"acc": 0.5}}])
    doc = tmp_path / "grid.json"
    doc.write_text(json.dumps({"results": [{"params": {"k": 1}, "metrics": {"acc": 0.1}}]}))
    assert run_cli("migrate", log, doc, "--repo", repo, "-q").exit_code == 0
    assert sorted(run.name for run in aim_runs(repo).values()) == ["evals:line 1", "grid:results[0]"]


def test_a_step_log_resumed_at_an_earlier_step_counts_what_its_later_lines_replaced(tmp_path, repo):
    log = _write(
        tmp_path / "train_log.jsonl",
        [{"step": s, "loss": 1.0 / s} for s in range(1, 6)] + [{"step": 4, "loss": 0.5}, {"step": 5, "loss": 0.4}],
    )
    report_path = tmp_path / "report.json"
    assert run_cli("migrate", log, "--repo", repo, "--report", report_path, "-q").exit_code == 0
    assert json.loads(report_path.read_text())["replaced_points"] == 2
    (run,) = aim_runs(repo).values()
    assert [(s, v) for s, v, *_ in series(run)[("loss", ())]][-2:] == [(4, 0.5), (5, 0.4)]


def test_a_history_row_with_its_own_context_gives_its_points_that_context(tmp_path, repo):
    log = _write(
        tmp_path / "exported.jsonl",
        [
            {
                "run_id": "a",
                "history": [
                    {"step": 1, "epoch": 0, "context": {"subset": "val"}, "loss": 0.5},
                    {"step": 1, "epoch": 0, "loss": 0.7},
                ],
            }
        ],
    )
    assert run_cli("migrate", log, "--repo", repo, "-q").exit_code == 0
    (run,) = aim_runs(repo).values()
    got = {key: [(s, v) for s, v, *_ in points] for key, points in series(run).items()}
    assert got == {("loss", (("subset", "val"),)): [(1, 0.5)], ("loss", ()): [(1, 0.7)]}
