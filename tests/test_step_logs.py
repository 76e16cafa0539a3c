"""Per-step JSONL training logs and Keras histories: one run per file, never one run per line."""

from __future__ import annotations

import json

import pytest

from etl.readers.steps import is_steps_jsonl as is_step_log
from tests.conftest import FIXTURES, aim_runs, run_cli, series


def test_netra_step_log_is_one_run_with_every_point(corpus, repo):
    log = corpus / "netra-ai-lab__Netra-NMT" / "results" / "train_log.jsonl"
    result = run_cli("migrate", log, "--repo", repo, "-q")
    assert result.exit_code == 0, result.output
    (run,) = aim_runs(repo).values()
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    got = series(run)
    expected_loss = {r["step"]: r["loss"] for r in rows if "loss" in r}  # a repeated step keeps its last value
    assert {p[0]: p[1] for p in got[("loss", ())]} == expected_loss
    assert len(got[("lr", ())]) == len({r["step"] for r in rows if "lr" in r})
    summaries = [r for r in rows if "epoch" in r]
    chrf = got[("chrf", (("subset", "val"),))]
    assert [(p[0], p[1], p[2]) for p in chrf] == [(r["step"], r["val_chrf"], float(r["epoch"])) for r in summaries]


def test_keras_histories_one_line_and_indented(corpus, repo):
    for folder in ("7Sumant__Plant-Disease-Detection-System", "AntaresMugisho__MaizeDiseaseDetection"):
        path = corpus / folder / "training_history.json"
        run_cli("migrate", path, "--repo", repo, "-q")
        history = json.loads(path.read_text())
        (run,) = [r for r in aim_runs(repo).values() if r["etl"]["source"] == path.resolve().as_posix()]
        assert run["etl"]["format"] == "keras"
        got = series(run)
        for name, values in history.items():
            subset, _, rest = name.partition("_")
            key = (rest, (("subset", "val"),)) if subset == "val" else (name, ())
            assert [p[1] for p in got[key]] == pytest.approx(values)
            assert [p[0] for p in got[key]] == list(range(len(values)))


@pytest.mark.parametrize(
    "log",
    [FIXTURES / "experiments" / "EXPERIMENT_LOG.jsonl"],
)
def test_experiment_logs_are_not_step_logs(log):
    assert not is_step_log(log)


def test_hand_kept_corpus_log_is_not_a_step_log(corpus):
    assert not is_step_log(corpus / "Surmbruh__concrete-strength" / "experiments" / "experiment_log.jsonl")


def test_bad_line_in_a_step_log_is_named_and_the_rest_kept_and_an_append_updates_the_run(tmp_path, repo):
    log = tmp_path / "train_log.jsonl"
    log.write_text("".join(json.dumps({"step": s, "loss": 1 / s}) + "\n" for s in range(1, 6)) + "oops\n")
    result = run_cli("migrate", log, "--repo", repo)
    assert result.exit_code == 3 and "train_log.jsonl:6: not JSON" in result.output
    (run,) = aim_runs(repo).values()
    assert [p[0] for p in series(run)[("loss", ())]] == [1, 2, 3, 4, 5]
    with log.open("a") as fh:
        fh.write(json.dumps({"step": 6, "loss": 1 / 6}) + "\n")
    result = run_cli("sync", log, "--repo", repo, "-q")
    (again,) = aim_runs(repo).values()
    assert again.hash == run.hash  # the same run, rewritten with the new point
    assert [p[0] for p in series(again)[("loss", ())]] == [1, 2, 3, 4, 5, 6]
