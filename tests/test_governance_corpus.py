"""The team's rules (fixtures/rules.toml) on real files: trials Ray Tune wrote, and a Keras history."""

from __future__ import annotations

import json
from pathlib import Path

from aim import Repo

from tests.conftest import FIXTURES, aim_runs, run_cli

RULES = FIXTURES / "rules.toml"


def test_ray_tune_trials_judged_on_import_and_found_with_aimql(corpus: Path, repo: Path):
    result = run_cli("migrate", corpus / "generated__ray-tune", "--repo", repo, "--rules", RULES, "-q")
    assert result.exit_code == 0, result.output

    verdicts = {run["hparams"]["lr"]: run["validation"] for run in aim_runs(repo).values()}
    assert sorted(verdicts) == [0.01, 0.03, 0.1]
    # lr = 0.1 is the range's upper bound, inclusive: it passes.
    assert "lr-range" not in {v["rule"] for v in verdicts[0.1]["violations"]}
    # The first trial's last val accuracy (0.56) is under 0.8: an error.
    assert verdicts[0.01]["status"] == "FAIL"
    assert [v["rule"] for v in verdicts[0.01]["violations"]] == ["val-accuracy", "naming"]
    assert verdicts[0.01]["violations"][0]["value"] < 0.8
    # Ray names trials `trainable_..._lr=0.0300,dim=64,...`: only the naming warning is left.
    assert (verdicts[0.03]["status"], verdicts[0.03]["score"]) == ("WARN", 87.5)

    warned = Repo(str(repo)).query_runs('run.validation.status == "WARN"', report_mode=0).iter_runs()
    assert sorted(view.run["hparams"]["lr"] for view in warned) == [0.03, 0.1]

    again = run_cli("validate", "--repo", repo, "--rules", RULES, "--report", repo / "v.json")
    assert again.exit_code == 0, again.output
    assert {r["state"] for r in json.loads((repo / "v.json").read_text())["runs"]} == {"unchanged"}


def test_keras_history_threshold_reads_the_last_val_accuracy(corpus: Path, repo: Path):
    history = corpus / "7Sumant__Plant-Disease-Detection-System" / "training_history.json"
    expected = json.loads(history.read_text())["val_accuracy"][-1]
    run_cli("migrate", history, "--repo", repo, "-q")

    result = run_cli("validate", "--repo", repo, "--rules", RULES, "--report", repo / "v.json")
    assert result.exit_code == 0, result.output
    (run,) = json.loads((repo / "v.json").read_text())["runs"]
    outcomes = {o["rule"]: o for o in run["validation"]["outcomes"]}
    assert outcomes["val-accuracy"]["outcome"] == "pass"
    assert outcomes["val-accuracy"]["value"] == expected
    # The history keeps no learning rate: missing counts as a failure, and says so.
    assert outcomes["lr-range"]["outcome"] == "missing"
    assert run["validation"]["status"] == "FAIL"
