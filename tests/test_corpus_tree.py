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
