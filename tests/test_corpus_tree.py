"""The whole shared corpus in one command: every family of real files, every file accounted for."""

from __future__ import annotations

import json

import pytest

from tests.conftest import aim_runs, numbers, run_cli, same_number, series

pytestmark = pytest.mark.corpus

HAND_KEPT = [
    "nathanhubens__YOLO_Exp/experiments.jsonl",
    "dlmastery__nature_inspired_networks/experiments/experiment_log.jsonl",
    "eightmm__FlowFrag/experiments.jsonl",
    "SepehrMohammady__LC-Intention-NAS/logs/experiments.jsonl",
    "Surmbruh__concrete-strength/experiments/experiment_log.jsonl",
]


@pytest.mark.parametrize("log", HAND_KEPT)
def test_hand_kept_logs_keep_every_number(corpus, tmp_path, log):
    path = corpus / log
    repo = tmp_path / "repo"
    result = run_cli("migrate", path, "--repo", repo, "-q")
    assert result.exit_code == 0, result.output
    runs = {r["etl"]["locator"]: r for r in aim_runs(repo).values()}
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    assert len(runs) == len(lines)  # one run per line: no line lost, none merged
    for lineno, text in enumerate(path.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        run = runs[f"line {lineno}"]
        stored = numbers(run["hparams"]) + numbers(run.get("meta", {}))
        stored += [p[1] for points in series(run).values() for p in points]
        for number in numbers(json.loads(text)):
            assert any(same_number(number, s) for s in stored), (log, lineno, number)


def test_the_whole_corpus_in_one_command_then_sync_is_a_noop(corpus, migrated_corpus, tmp_path):
    repo, first = migrated_corpus  # migrate exited 3: the truncated decksage file
    on_disk = {p.resolve().as_posix() for p in corpus.rglob("*") if p.is_file()}
    assert {f["source"] for f in first["files"]} | {s["source"] for s in first["skipped"]} >= on_disk
    assert first["summary"]["runs_written"] == len(aim_runs(repo)) > 0
    second_report = tmp_path / "second.json"
    run_cli("sync", corpus, "--repo", repo, "--report", second_report, "-q")
    second = json.loads(second_report.read_text())
    assert second["summary"]["runs_written"] == 0 and second["summary"]["new"] == 0
    assert {f["mode"] for f in second["files"] if f["format"]} == {"unchanged"}


def test_ray_tune_trials_are_one_run_each_read_back_from_aim(corpus, tmp_path):
    sweep = corpus / "generated__ray-tune" / "lr_sweep"
    repo = tmp_path / "repo"
    assert run_cli("migrate", sweep, "--repo", repo, "-q").exit_code == 0
    runs = aim_runs(repo)
    trials = sorted(p for p in sweep.iterdir() if (p / "result.json").is_file())
    assert len(runs) == len(trials) == 3
    for trial in trials:
        lines = [json.loads(x) for x in (trial / "result.json").read_text().splitlines() if x.strip()]
        params = json.loads((trial / "params.json").read_text())
        (run,) = [r for r in runs.values() if r["etl"]["source"] == (trial / "result.json").resolve().as_posix()]
        assert run.experiment == "lr_sweep" and run["hparams"]["lr"] == params["lr"]
        loss = series(run)[("loss", (("subset", "val"),))]
        assert [(p[0], p[1], p[3]) for p in loss] == [
            (x["training_iteration"], x["val"]["loss"], float(x["timestamp"])) for x in lines
        ]
