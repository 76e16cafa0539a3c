"""The framework readers end to end on the corpus: migrate into a real Aim repo, read back with Aim's SDK.

Each folder is migrated on its own; a second `migrate` writes nothing, and a `sync` after it is a
no-op (every file unchanged, not even opened).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import aim_runs, run_cli, series

pytestmark = pytest.mark.corpus

TRAIN = (("subset", "train"),)
EVAL = (("subset", "eval"),)
NONE = ()


def import_twice_then_sync(tmp_path: Path, source: Path) -> tuple[Path, dict]:
    """Migrate `source`, then migrate and sync it again; assert the second and third write nothing."""
    repo = tmp_path / "repo"
    reports = []
    for n, command in enumerate(("migrate", "migrate", "sync")):
        out = tmp_path / f"{n}-{command}.json"
        result = run_cli(command, source, "--repo", repo, "--report", out, "-q")
        assert result.exit_code == 0, result.output
        reports.append(json.loads(out.read_text()))
    first, again, synced = reports
    assert first["summary"]["new"] == first["summary"]["runs_written"] == len(aim_runs(repo))
    for later in (again, synced):
        summary = later["summary"]
        assert summary["runs_written"] == summary["points_written"] == 0
        assert summary["new"] == summary["changed"] == 0
    assert again["summary"]["unchanged"] == first["summary"]["new"]  # read again, found the same
    assert {f["mode"] for f in synced["files"] if f["format"]} == {"unchanged"}  # not even opened
    return repo, first


def point_count(run) -> int:
    return sum(len(points) for points in series(run).values())


def test_t5_trainer_output_folder_is_one_run_of_1736_points(corpus, tmp_path):
    folder = corpus / "10844110__t5-summarization-demo"
    state = json.loads((folder / "trainer_state.json").read_text())
    log = state["log_history"]
    train_logs = [e for e in log if "loss" in e]
    repo, report = import_twice_then_sync(tmp_path, folder)

    (run,) = aim_runs(repo).values()
    assert run.name == "10844110__t5-summarization-demo" and run.experiment == corpus.name  # the folder above
    assert run["etl"]["format"] == "hf-trainer"
    assert run["etl"]["run_key"].endswith(
        "10844110__t5-summarization-demo/trainer_state.json#10844110__t5-summarization-demo"
    )
    assert run["hparams"]["train_batch_size"] == 4 and run["hparams"]["max_steps"] == 215337
    assert point_count(run) == report["summary"]["points_written"] == 1736  # 4 series x 430 logs + 16 results

    got = series(run)
    loss = got[("loss", TRAIN)]
    assert [p[0] for p in loss] == [e["step"] for e in train_logs] == list(range(500, 215001, 500))  # global_step
    assert [p[1] for p in loss] == [e["loss"] for e in train_logs]
    assert [p[2] for p in loss] == [int(e["epoch"]) for e in train_logs]  # Aim's epoch: the int part
    assert {p[2] for p in loss} == {0, 1, 2}
    epoch = got[("epoch", NONE)]  # the float epoch, kept as a metric
    assert [(p[0], p[1]) for p in epoch] == [(e["step"], e["epoch"]) for e in train_logs]
    assert any(not float(p[1]).is_integer() for p in epoch)
    # the eval subset: the final eval_loss of eval_results.json, at the last global step
    eval_results = json.loads((folder / "eval_results.json").read_text())
    assert [(p[0], p[1]) for p in got[("loss", EVAL)]] == [(215337, eval_results["eval_loss"])]
    assert got[("rouge1", EVAL)][0][1] == eval_results["eval_rouge1"]
    # the summary entry's train_loss names the train loss series too: kept apart as a result
    assert [p[1] for p in got[("loss", (("source", "results"), ("subset", "train")))]] == [log[-1]["train_loss"]]

    skipped = {Path(s["source"]).name: s["reason"] for s in report["skipped"]}
    for name in ("all_results.json", "train_results.json", "eval_results.json"):
        assert skipped[name].startswith("part of ") and "(hf-trainer run): read:" in skipped[name]


def test_bert_checkpoint_only_folder_is_one_run_of_217_points_with_train_and_eval_loss(corpus, tmp_path):
    folder = corpus / "subro608__Deep_learning_Bert_project2"
    state_path = folder / "checkpoint-2400" / "trainer_state.json"
    log = json.loads(state_path.read_text())["log_history"]
    repo, report = import_twice_then_sync(tmp_path, folder)

    (run,) = aim_runs(repo).values()
    assert run.name == "subro608__Deep_learning_Bert_project2"
    assert run["etl"]["source"] == state_path.resolve().as_posix()  # the checkpoint read
    # ... but the run is keyed by the output folder, so a later checkpoint updates this same run
    assert run["etl"]["run_key"] == (
        f"{folder.resolve().as_posix()}/trainer_state.json#subro608__Deep_learning_Bert_project2"
    )
    assert run["meta"]["checkpoint"] == "checkpoint-2400"
    assert point_count(run) == report["summary"]["points_written"] == 217  # 9 series x 24 steps + total_flos

    got = series(run)
    steps = list(range(100, 2401, 100))
    train = [e for e in log if "loss" in e]
    evals = [e for e in log if "eval_loss" in e]
    assert [(p[0], p[1]) for p in got[("loss", TRAIN)]] == [(e["step"], e["loss"]) for e in train]
    assert [(p[0], p[1]) for p in got[("loss", EVAL)]] == [(e["step"], e["eval_loss"]) for e in evals]
    assert [p[0] for p in got[("loss", TRAIN)]] == [p[0] for p in got[("loss", EVAL)]] == steps
    assert {p[2] for p in got[("loss", TRAIN)]} == {p[2] for p in got[("loss", EVAL)]} == {0}  # 0.32 epochs
    # one float-epoch point per step, though the train and the eval log of a step both carry it
    assert [(p[0], p[1]) for p in got[("epoch", NONE)]] == [(e["step"], e["epoch"]) for e in train]
    assert all(math.isnan(p[3]) or p[3] > 0 for points in got.values() for p in points)


def test_wandb_summary_is_one_run_with_eval_sections_as_the_eval_context(corpus, tmp_path):
    folder = corpus / "rishabhg97__robust-cartpole"
    summary = json.loads(next(folder.glob("wandb/run-*/files/wandb-summary.json")).read_text())
    repo, report = import_twice_then_sync(tmp_path, folder)

    (run,) = aim_runs(repo).values()
    assert run.name == "gu7xnmg8" and run.experiment == "rishabhg97__robust-cartpole"
    got = series(run)
    assert point_count(run) == report["summary"]["points_written"] == 52
    assert {context for _, context in got} == {NONE, EVAL}  # `Eval/...`: lowercase, like every `eval_`
    for i in range(25):
        for metric in ("internal_agent_return", "episodic_return"):
            assert [(p[0], p[1]) for p in got[(f"{i}/{metric}", EVAL)]] == [(0, summary[f"Eval/{i}/{metric}"])]
    assert [p[1] for p in got[("adversary_reward", NONE)]] == [summary["adversary_reward"]]
    assert run["meta"]["wandb"]["_step"] == summary["_step"]
