"""Hugging Face Trainer output folders: trainer_state.json (+ result and config files) -> one run per folder.

Fixtures in tests/fixtures/hf_trainer/:
- `glue_sweep/bert-lr3e-5/`: a finished run (transformers 4.46 layout): train and eval logs sharing
  steps, a NaN loss, the summary entry, a final `evaluate()` logged again at the last step, the
  result files, config.json, tokenizer files, training_args.bin, two checkpoint folders, and a
  user's own predictions.json;
- `glue_sweep/bert-lr1e-4/`: a run stopped before its end: only `checkpoint-40` and `checkpoint-100`
  (read: numerically the highest, though "checkpoint-40" sorts after it as text), with a LoRA
  adapter_config.json;
- `old/t5-small-v4.0/`: transformers 4.0's layout (no grad_norm, a lone `total_flos` entry at the end);
- `bad/*`: a trainer_state.json cut short beside a good all_results.json, bad log entries and
  bad siblings, a log_history that is no list, a list instead of an object, an empty file.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from etl.errors import BadRecord
from etl.interpret import FieldRules, interpret
from etl.normalize import Normalizer
from etl.readers.hf_trainer import (
    HF_TRAINER,
    claims_hf_trainer,
    claims_with_reasons_hf_trainer,
    hf_checkpoint_copy_reason,
    is_hf_trainer,
    read_hf_trainer,
)
from etl.readers.record import Record
from tests.conftest import aim_runs, numbers, run_cli, same_number
from tests.conftest import series as aim_series

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hf_trainer"
FINISHED = FIXTURES / "glue_sweep" / "bert-lr3e-5"
STOPPED = FIXTURES / "glue_sweep" / "bert-lr1e-4"
OLD = FIXTURES / "old" / "t5-small-v4.0"

TRAIN = '{"subset":"train"}'
EVAL = '{"subset":"eval"}'
NONE = "{}"
FROM_RESULTS = '{"source":"results","subset":"train"}'


def read(state: Path, **kwargs) -> list[Record | BadRecord]:
    return list(read_hf_trainer(state, f"{state.parent.name}/trainer_state.json", **kwargs))


def only_record(state: Path) -> Record:
    items = read(state)
    assert [type(i) for i in items] == [Record], items
    return items[0]


def series(points) -> dict[tuple[str, str], list[tuple[int, int | None, float, float]]]:
    """(name, context) -> sorted (step, epoch, value, time) of an interpreted record's points."""
    out: dict[tuple[str, str], list] = {}
    for name, context, step, epoch, value, time in points:
        out.setdefault((name, context), []).append((step, epoch, value, time))
    return {k: sorted(v) for k, v in out.items()}


def load(path: Path):
    return json.loads(path.read_text())


# --- the corpus -------------------------------------------------------------------------------------


def test_corpus_t5_output_folder_is_one_run_with_train_history_and_merged_results(corpus):
    folder = corpus / "10844110__t5-summarization-demo"
    state_path = folder / "trainer_state.json"
    assert is_hf_trainer(state_path) and hf_checkpoint_copy_reason(state_path) is None
    assert sorted(p.name for p in claims_hf_trainer(state_path)) == [
        "all_results.json",
        "eval_results.json",
        "train_results.json",
    ]
    record = only_record(state_path)
    assert record.format == HF_TRAINER and record.locator == "$"
    state = load(state_path)
    log = state["log_history"]
    assert len(log) == 431 and "train_runtime" in log[-1]

    item = interpret(record, FieldRules())
    assert item.record_id == item.name == "10844110__t5-summarization-demo"
    assert item.hparams["train_batch_size"] == 4 and item.hparams["num_train_epochs"] == 3
    assert item.hparams["max_steps"] == 215337 and item.hparams["logging_steps"] == 500
    assert item.hparams["best_metric"] is None and "model" not in item.hparams  # no config.json there
    assert item.meta["trainer_state"]["global_step"] == 215337 and item.meta["trainer_state"]["epoch"] == 3.0
    assert item.meta["files_read"] == [
        "trainer_state.json",
        "all_results.json",
        "train_results.json",
        "eval_results.json",
    ]
    assert item.created_at is None and item.ended_at is None  # the Trainer writes no wall-clock time

    got = series(item.points)
    loss = got[("loss", TRAIN)]
    assert len(loss) == 430
    assert [p[0] for p in loss] == list(range(500, 215001, 500))
    assert loss[0] == (500, 0, 1.9963, pytest.approx(math.nan, nan_ok=True))
    assert all(math.isnan(p[3]) for p in loss)
    assert [p[1] for p in loss] == [int(e["epoch"]) for e in log[:-1]]  # the int part of the float epoch
    assert [p[2] for p in got[("epoch", NONE)]] == [e["epoch"] for e in log[:-1]]
    assert len(got[("learning_rate", NONE)]) == len(got[("grad_norm", NONE)]) == 430

    # the summary entry and the three result files: each number once, at the last global step
    # (215337, epoch 3), where training ended; only the mean `train_loss`, a name the training
    # logs draw as a curve, stays a final value at step 0 instead of ending that curve.
    everything = {**load(folder / "all_results.json"), **log[-1]}
    finals = {k: v for k, v in everything.items() if k not in ("epoch", "step")}
    assert record.data["results"] == {"train_loss": finals["train_loss"]}
    last = record.data["history"][-1]
    assert last["step"] == 215337 and last["epoch"] == 3
    assert {k: v for k, v in last.items() if k not in ("step", "epoch")} == {
        k: v for k, v in finals.items() if k != "train_loss"
    }
    assert got[("loss", FROM_RESULTS)] == [(0, None, log[-1]["train_loss"], pytest.approx(math.nan, nan_ok=True))]
    assert got[("rouge1", EVAL)] == [(215337, 3, 41.6324, pytest.approx(math.nan, nan_ok=True))]
    assert len(item.points) == 4 * 430 + len(finals) == 1736

    frames = Normalizer().normalize([record])
    assert len(frames.runs) == 1 and len(frames.metrics) == 1736
    assert frames.runs.iloc[0]["experiment"] == corpus.name


def test_corpus_bert_checkpoint_only_folder_merges_train_and_eval_logs_of_one_step(corpus):
    output = corpus / "subro608__Deep_learning_Bert_project2"
    state_path = output / "checkpoint-2400" / "trainer_state.json"
    assert not (output / "trainer_state.json").exists()
    assert is_hf_trainer(state_path) and hf_checkpoint_copy_reason(state_path) is None
    assert claims_hf_trainer(state_path) == []
    record = only_record(state_path)
    log = load(state_path)["log_history"]
    assert len(log) == 48

    item = interpret(record, FieldRules())
    assert item.record_id == "subro608__Deep_learning_Bert_project2"  # the output folder, not the checkpoint
    assert item.meta["checkpoint"] == "checkpoint-2400"
    assert item.hparams["train_batch_size"] == 16 and item.hparams["eval_steps"] == 100
    got = series(item.points)
    steps = list(range(100, 2401, 100))
    assert [p[0] for p in got[("loss", TRAIN)]] == steps
    assert [p[0] for p in got[("loss", EVAL)]] == steps
    assert [p[0] for p in got[("accuracy", EVAL)]] == steps
    assert got[("accuracy", EVAL)][-1][2] == 0.90625 and got[("loss", TRAIN)][-1][2] == 0.3352
    # one epoch point per step although the train and the eval log both carry it
    assert [p[0] for p in got[("epoch", NONE)]] == steps
    assert all(p[1] == 0 for p in got[("epoch", NONE)])  # 0.32 epochs trained (max_steps-limited)
    # no summary entry in a checkpoint: the state's FLOP count is the only result, at the last step
    assert "results" not in record.data
    assert record.data["history"][-1]["step"] == 2400
    assert record.data["history"][-1]["total_flos"] == load(state_path)["total_flos"]
    assert len(item.points) == 24 * 9 + 1 == 217
    frames = Normalizer().normalize([record])
    assert len(frames.metrics) == 217 and frames.metrics["time"].isna().all()


@pytest.mark.parametrize(
    "relative",
    [
        "10844110__t5-summarization-demo/trainer_state.json",
        "subro608__Deep_learning_Bert_project2/checkpoint-2400/trainer_state.json",
    ],
)
def test_corpus_every_logged_number_is_kept(corpus, relative):
    state_path = corpus / relative
    item = interpret(only_record(state_path), FieldRules())
    stored = [p[4] for p in item.points] + numbers(item.meta)  # the summary's epoch is the state's, in the meta
    for entry in load(state_path)["log_history"]:
        for key, value in entry.items():
            if key != "step":
                assert any(same_number(value, s) for s in stored), (key, value)


# --- a finished run ---------------------------------------------------------------------------------


def test_finished_run_reads_history_results_and_config():
    record = only_record(FINISHED / "trainer_state.json")
    item = interpret(record, FieldRules())
    assert item.record_id == "bert-lr3e-5" and item.experiment == "glue_sweep"
    assert item.hparams["best_metric"] == 0.86 and item.hparams["best_global_step"] == 40
    assert item.hparams["best_model_checkpoint"].endswith("checkpoint-40")
    assert item.hparams["save_steps"] == 20 and item.hparams["train_batch_size"] == 32
    assert item.hparams["model"] == load(FINISHED / "config.json")
    assert item.meta["trainer_state"]["stateful_callbacks"]["EarlyStoppingCallback"]["attributes"] == {
        "early_stopping_patience_counter": 1
    }
    got = series(item.points)
    assert [(s, e, v) for s, e, v, _ in got[("loss", TRAIN)] if not math.isnan(v)] == [
        (10, 0, 0.6931),
        (20, 0, 0.6102),
        (40, 1, 0.4517),
        (50, 1, 0.3805),
        (60, 2, 0.3311),
    ]
    assert math.isnan(got[("loss", TRAIN)][2][2]) and got[("loss", TRAIN)][2][:2] == (30, 1)  # NaN kept
    assert math.isnan(got[("grad_norm", NONE)][2][2])
    # eval logs at 20, 40, 60; the evaluate() after training logs step 60 again: its values win
    assert [(s, v) for s, _, v, _ in got[("runtime", EVAL)]] == [(20, 1.5), (40, 1.4), (60, 1.45)]
    assert [(s, v) for s, _, v, _ in got[("f1", EVAL)]] == [(20, 0.8), (40, 0.86), (60, 0.86)]
    assert [p[0] for p in got[("epoch", NONE)]] == [10, 20, 30, 40, 50, 60]

    # final numbers sit at the last step (60), where training ended; the mean train_loss stays a
    # result at step 0, apart from the `loss` curve it would otherwise end
    results = {**record.data["results"], **record.data["history"][-1]}
    assert record.data["history"][-1]["step"] == 60 and set(record.data["results"]) == {"train_loss"}
    assert "results_epoch" not in record.data  # 2.0 everywhere: the state's
    assert results["train_samples"] == 1910 and results["eval_samples"] == 408
    assert results["train_runtime"] == 95.3 and results["eval_runtime"] == 1.45
    assert got[("loss", FROM_RESULTS)] == [(0, None, 0.5203, pytest.approx(math.nan, nan_ok=True))]
    assert got[("samples", EVAL)] == [(60, 2, 408.0, pytest.approx(math.nan, nan_ok=True))]
    # 13 final numbers, 6 of which the evaluate() log at step 60 already holds with the same value:
    # they are one point each, not a second copy at step 0
    assert len(item.points) == 4 * 6 + 6 * 3 + 13 - 6 == 49
    assert Normalizer().normalize([record]).metrics.shape[0] == 49


def test_finished_run_claims_trainer_files_and_checkpoints_but_not_the_users_own():
    state_path = FINISHED / "trainer_state.json"
    reasons = {p.relative_to(FINISHED).as_posix(): r for p, r in claims_with_reasons_hf_trainer(state_path)}
    assert set(reasons) == {
        "all_results.json",
        "train_results.json",
        "eval_results.json",
        "config.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "training_args.bin",
        "checkpoint-20/trainer_state.json",
        "checkpoint-20/config.json",
        "checkpoint-40/trainer_state.json",
        "checkpoint-40/config.json",
        "checkpoint-40/optimizer.pt",
    }
    assert reasons["training_args.bin"].startswith("pickle: never unpickled")
    assert reasons["checkpoint-40/trainer_state.json"].startswith("checkpoint copy")
    assert reasons["config.json"].startswith("read:")
    assert claims_hf_trainer(state_path) == [p for p, _ in claims_with_reasons_hf_trainer(state_path)]


def test_checkpoint_copies_beside_a_final_state_are_skipped_with_a_reason():
    for name in ("checkpoint-20", "checkpoint-40"):
        copy = FINISHED / name / "trainer_state.json"
        assert not is_hf_trainer(copy)
        assert hf_checkpoint_copy_reason(copy) == "checkpoint copy of ../trainer_state.json"
    assert hf_checkpoint_copy_reason(FINISHED / "trainer_state.json") is None
    assert hf_checkpoint_copy_reason(FINISHED / "checkpoint-40" / "config.json") is None  # not a state file


def test_a_walk_of_the_fixture_sweep_reads_one_file_per_output_folder():
    """As the walker will: primaries by is_hf_trainer, claimed files dropped, copies skipped with reasons."""
    files = sorted(p for p in (FIXTURES / "glue_sweep").rglob("*") if p.is_file())
    primaries = [p for p in files if is_hf_trainer(p)]
    assert [p.relative_to(FIXTURES).as_posix() for p in primaries] == [
        "glue_sweep/bert-lr1e-4/checkpoint-100/trainer_state.json",
        "glue_sweep/bert-lr3e-5/trainer_state.json",
    ]
    claimed = {c for p in primaries for c in claims_hf_trainer(p)}
    left = [p.relative_to(FIXTURES).as_posix() for p in files if p not in claimed and p not in primaries]
    assert left == ["glue_sweep/bert-lr3e-5/predictions.json"]  # the user's file, for the JSON reader
    copies = [p for p in files if hf_checkpoint_copy_reason(p)]
    assert set(copies) <= claimed and len(copies) == 3
    records = [r for p in primaries for r in read(p)]
    assert len(records) == 2 and len({r.data["run_id"] for r in records}) == 2


# --- a run with only checkpoints ---------------------------------------------------------------------


def test_checkpoint_only_folder_reads_the_numerically_highest_checkpoint():
    older = STOPPED / "checkpoint-40" / "trainer_state.json"
    newest = STOPPED / "checkpoint-100" / "trainer_state.json"
    assert sorted(p.name for p in STOPPED.iterdir())[-1] == "checkpoint-40"  # the text order would pick it
    assert not is_hf_trainer(older)
    assert hf_checkpoint_copy_reason(older) == "older checkpoint; checkpoint-100 is read"
    assert is_hf_trainer(newest) and hf_checkpoint_copy_reason(newest) is None
    assert older in claims_hf_trainer(newest)

    record = only_record(newest)
    item = interpret(record, FieldRules())
    assert item.record_id == "bert-lr1e-4" and item.experiment == "glue_sweep"
    assert item.meta["checkpoint"] == "checkpoint-100"
    assert item.meta["files_read"] == [
        "checkpoint-100/trainer_state.json",
        "checkpoint-100/config.json",
        "checkpoint-100/adapter_config.json",
    ]
    assert item.hparams["adapter"]["r"] == 8 and item.hparams["model"]["vocab_size"] == 30522
    assert item.hparams["max_steps"] == 200
    got = series(item.points)
    assert [p[0] for p in got[("loss", TRAIN)]] == list(range(10, 101, 10))
    assert [p[0] for p in got[("loss", EVAL)]] == [50, 100]
    assert [p[1] for p in got[("loss", TRAIN)]] == [0] * 9 + [1]
    assert len(item.points) == 10 * 4 + 2 * 6 + 1


def test_checkpoint_only_folder_reads_result_and_config_files_of_the_output_folder(tmp_path):
    output = tmp_path / "runs" / "stopped"
    shutil.copytree(STOPPED, output)
    (output / "all_results.json").write_text(json.dumps({"epoch": 1.0, "eval_loss": 0.4, "train_loss": 0.5}))
    (output / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    state_path = output / "checkpoint-100" / "trainer_state.json"
    assert is_hf_trainer(state_path)
    claims = {p.relative_to(output).as_posix(): r for p, r in claims_with_reasons_hf_trainer(state_path)}
    assert claims["all_results.json"].startswith("read:") and claims["config.json"].startswith("read:")
    assert not claims["checkpoint-100/config.json"].startswith("read:")  # the output folder's is read
    record = only_record(state_path)
    assert record.data["config"]["model"] == {"model_type": "roberta"}
    assert record.data["history"][-1]["eval_loss"] == 0.4 and record.data["results"]["train_loss"] == 0.5
    assert "results_epoch" not in record.data  # 1.0, the state's epoch too

    # once the run writes its final state, every checkpoint is a copy
    shutil.copy(state_path, output / "trainer_state.json")
    assert not is_hf_trainer(state_path)
    assert hf_checkpoint_copy_reason(state_path) == "checkpoint copy of ../trainer_state.json"


def test_checkpoint_key_is_the_output_folders_state_file_whichever_checkpoint_is_read():
    newest = STOPPED / "checkpoint-100" / "trainer_state.json"
    (record,) = list(read_hf_trainer(newest, "glue_sweep/bert-lr1e-4/checkpoint-100/trainer_state.json"))
    assert record.source == "glue_sweep/bert-lr1e-4/checkpoint-100/trainer_state.json"  # the file read
    assert record.key_source == "glue_sweep/bert-lr1e-4/trainer_state.json"
    assert (
        Normalizer().normalize([record]).runs.loc[0, "run_key"]
        == "glue_sweep/bert-lr1e-4/trainer_state.json#bert-lr1e-4"
    )
    (final,) = list(read_hf_trainer(FINISHED / "trainer_state.json", "glue_sweep/bert-lr3e-5/trainer_state.json"))
    assert final.key_source is None  # a finished folder is keyed by its own file, as it always was


def sync_report(tmp_path: Path, command: str, source: Path, repo: Path) -> dict:
    out = tmp_path / f"{command}-{len(list(tmp_path.glob('*.json')))}.json"
    result = run_cli(command, source, "--repo", repo, "--report", out, "-q")
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


def test_a_run_still_training_stays_one_aim_run_as_checkpoints_and_the_final_state_appear(tmp_path):
    """Copy checkpoint-40 of the stopped fixture run, import, then let "training" write checkpoint-100
    and at last the final state beside them: each sync rewrites the one run, same hash, longer history."""
    runs_dir = tmp_path / "runs"
    output = runs_dir / "bert-lr1e-4"
    output.mkdir(parents=True)
    shutil.copytree(STOPPED / "checkpoint-40", output / "checkpoint-40")
    repo = tmp_path / "repo"
    train_loss = ("loss", (("subset", "train"),))

    first = sync_report(tmp_path, "migrate", runs_dir, repo)
    assert first["summary"]["new"] == first["summary"]["runs_written"] == 1
    (run,) = aim_runs(repo).values()
    run_hash = run.hash
    assert run["etl"]["run_key"] == f"{output.resolve().as_posix()}/trainer_state.json#bert-lr1e-4"
    assert [p[0] for p in aim_series(run)[train_loss]] == [10, 20, 30, 40]

    shutil.copytree(STOPPED / "checkpoint-100", output / "checkpoint-100")
    second = sync_report(tmp_path, "sync", runs_dir, repo)
    assert second["summary"]["changed"] == second["summary"]["runs_written"] == 1
    assert second["summary"]["new"] == 0
    skipped = {s["source"]: s["reason"] for s in second["skipped"]}
    assert skipped[(output / "checkpoint-40" / "trainer_state.json").resolve().as_posix()].startswith(
        "part of"
    )  # claimed by the newest checkpoint's run, not read again
    runs = aim_runs(repo)
    assert list(runs) == [run_hash]  # the same run, not a second one
    run = runs[run_hash]
    assert run["etl"]["source"].endswith("bert-lr1e-4/checkpoint-100/trainer_state.json")
    assert run["meta"]["checkpoint"] == "checkpoint-100"
    got = aim_series(run)
    assert [p[0] for p in got[train_loss]] == list(range(10, 101, 10))
    assert [p[0] for p in got[("loss", (("subset", "eval"),))]] == [50, 100]
    assert sum(len(points) for points in got.values()) == 10 * 4 + 2 * 6 + 1

    again = sync_report(tmp_path, "sync", runs_dir, repo)
    assert again["summary"]["runs_written"] == 0 and again["summary"]["changed"] == 0

    # training ends: the final state, with its summary entry, is saved in the output folder
    state = load(output / "checkpoint-100" / "trainer_state.json")
    state["log_history"].append({"epoch": 1.0, "step": 100, "train_loss": 0.5, "train_runtime": 12.5})
    (output / "trainer_state.json").write_text(json.dumps(state))
    third = sync_report(tmp_path, "sync", runs_dir, repo)
    assert third["summary"]["changed"] == third["summary"]["runs_written"] == 1
    runs = aim_runs(repo)
    assert list(runs) == [run_hash]
    assert runs[run_hash]["etl"]["source"].endswith("bert-lr1e-4/trainer_state.json")
    assert ("runtime", (("subset", "train"),)) in aim_series(runs[run_hash])

    last = sync_report(tmp_path, "sync", runs_dir, repo)
    assert last["summary"]["runs_written"] == 0 and last["summary"]["new"] == last["summary"]["changed"] == 0


# --- transformers 4.0 -------------------------------------------------------------------------------


def test_old_layout_lone_total_flos_entry_is_a_result():
    record = only_record(OLD / "trainer_state.json")
    assert "results" not in record.data
    assert record.data["history"][-1] == {
        "step": 2000,
        "epoch": 2.0,
        "learning_rate": 0.0,
        "train_loss": 1.8012,
        "eval_loss": 1.8554,
        "total_flos": 4512345678901234,
    }
    item = interpret(record, FieldRules())
    assert item.hparams == {
        "num_train_epochs": 2,
        "max_steps": 2000,
        "best_metric": None,
        "best_model_checkpoint": None,
        "is_hyper_param_search": False,
        "trial_name": None,
        "trial_params": None,
    }
    got = series(item.points)
    assert [(s, e, v) for s, e, v, _ in got[("loss", EVAL)]] == [(1000, 1, 1.9421), (2000, 2, 1.8554)]
    assert [p[0] for p in got[("loss", TRAIN)]] == [500, 1000, 1500, 2000]
    assert ("grad_norm", NONE) not in got
    assert got[("total_flos", NONE)] == [(2000, 2, 4512345678901234.0, pytest.approx(math.nan, nan_ok=True))]
    assert len(item.points) == 4 * 3 + 2 + 1


# --- bad input --------------------------------------------------------------------------------------


def outline(items) -> list[tuple[str, str]]:
    return [("record" if isinstance(i, Record) else "bad", i.locator) for i in items]


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("truncated", [("bad", "line 29"), ("record", "all_results.json")]),
        (
            "shapes",
            [
                ("bad", "$.log_history[1]"),
                ("bad", "$.log_history[2]"),
                ("bad", "config.json line 3"),
                ("bad", "eval_results.json"),
                ("record", "$"),
            ],
        ),
        ("not-a-list", [("bad", "$.log_history"), ("record", "$")]),
        ("array", [("bad", "$")]),
        ("empty", [("bad", "$")]),
    ],
)
def test_bad_input_is_located_and_the_rest_still_read(folder, expected):
    state_path = FIXTURES / "bad" / folder / "trainer_state.json"
    assert is_hf_trainer(state_path)
    items = read(state_path)
    assert outline(items) == expected
    for item in items:
        assert item.source == f"{folder}/trainer_state.json"
        if isinstance(item, BadRecord):
            assert str(item).startswith(f"{folder}/trainer_state.json:")
        else:
            assert item.data["run_id"] == folder and item.data["experiment_name"] == "bad"
            interpret(item, FieldRules())  # the interpreter takes what is left


def test_bad_reasons_name_the_problem():
    shapes = {
        b.locator: b.reason
        for b in read(FIXTURES / "bad" / "shapes" / "trainer_state.json")
        if isinstance(b, BadRecord)
    }
    assert shapes["$.log_history[1]"] == "expected object, got string"
    assert shapes["$.log_history[2]"] == "step is not a number: 'two'"
    assert shapes["config.json line 3"].startswith("config.json: not JSON")
    assert shapes["eval_results.json"] == "eval_results.json: expected object, got list"
    (empty,) = read(FIXTURES / "bad" / "empty" / "trainer_state.json")
    assert "empty file" in empty.reason
    (truncated, _) = read(FIXTURES / "bad" / "truncated" / "trainer_state.json")
    assert truncated.reason.startswith("not JSON")


def test_bad_entries_are_dropped_and_a_stepless_entry_takes_the_previous_step():
    record = next(r for r in read(FIXTURES / "bad" / "shapes" / "trainer_state.json") if isinstance(r, Record))
    assert record.data["history"] == [
        {"step": 1, "epoch": 0.1, "train_loss": 1.0, "eval_loss": 0.7},
        {"step": 3, "epoch": 0.3, "train_loss": 0.8},
    ]
    assert "model" not in record.data["config"] and "results" not in record.data


def test_unreadable_state_still_imports_the_result_files_beside_it():
    record = read(FIXTURES / "bad" / "truncated" / "trainer_state.json")[1]
    assert record.data["results"] == {"eval_loss": 0.41, "train_loss": 0.55}
    assert record.data["results_epoch"] == 1.0  # no state to say the epoch: kept in the meta
    assert record.data["files_read"] == ["all_results.json"] and "history" not in record.data
    frames = Normalizer().normalize([record])
    assert len(frames.runs) == 1 and len(frames.metrics) == 2


# --- detection and sync --------------------------------------------------------------------------------


def test_detection_keys_on_the_name(tmp_path):
    assert not is_hf_trainer(FINISHED / "all_results.json")
    assert not is_hf_trainer(FINISHED / "config.json")
    other = tmp_path / "state.json"
    shutil.copy(FINISHED / "trainer_state.json", other)
    assert not is_hf_trainer(other)
    assert hf_checkpoint_copy_reason(other) is None


def test_a_sync_cursor_is_ignored_the_state_is_read_whole():
    state_path = FINISHED / "trainer_state.json"
    again = read(state_path, start_offset=100, start_line=7)
    assert again == read(state_path)
