"""Per-step logs of well-known tools, each migrated into a real Aim repo and read back with Aim's SDK.

Every file under fixtures/tools/ (see its SOURCE.md) is one shape of per-step log: Detectron2's
`metrics.json` appended by restarts and resumed from a checkpoint, Chainer's extensionless
`result/log` array, MMCV's `*.log.json` (header line, `mode`, `iter` restarting per epoch), MMEngine's
`vis_data/scalars.json` written twice, Stable-Baselines3's and OpenAI baselines' `progress.json`.
Expectations are computed from the files themselves wherever the rule allows.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from etl.readers import find_sources
from etl.readers.detect import JSON, JSONL, STEPS, detect_format
from etl.readers.steps import is_steps_rows
from tests.conftest import FIXTURES, aim_runs, run_cli, series

TOOLS = FIXTURES / "tools"
TRAIN = (("subset", "train"),)
VAL = (("subset", "val"),)


def migrate(path: Path, tmp_path: Path) -> tuple[dict, dict]:
    """(runs by locator, report) after `migrate path` into a fresh repo."""
    repo = tmp_path / "repo"
    report = tmp_path / "report.json"
    result = run_cli("migrate", path, "--repo", repo, "--report", report, "-q")
    assert result.exit_code == 0, result.output
    runs = {run["etl"]["locator"]: run for run in aim_runs(repo).values()}
    return runs, json.loads(report.read_text())


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def points(run, name: str, context: tuple = ()) -> list[tuple[int, float, float]]:
    """(step, value, epoch) of one series, by step."""
    return [(p[0], p[1], p[2]) for p in series(run)[(name, context)]]


def assert_monotone(run) -> None:
    for key, got in series(run).items():
        steps = [p[0] for p in got]
        assert steps == sorted(steps) and len(set(steps)) == len(steps), key


# --- Detectron2 --------------------------------------------------------------------------------


def test_detectron2_metrics_appended_by_three_trainings_is_three_runs(tmp_path):
    log = TOOLS / "detectron2" / "SMN" / "output" / "metrics.json"
    runs, report = migrate(log.parent.parent, tmp_path)
    assert sorted(runs) == ["lines 1-15", "lines 16-30", "lines 31-80"]  # the iteration went back to 19 twice
    rows = lines(log)
    for (locator, run), part in zip(
        sorted(runs.items(), key=lambda kv: int(kv[0].split()[1].split("-")[0])),
        (rows[0:15], rows[15:30], rows[30:80]),
        strict=True,
    ):
        assert run.experiment == "SMN"  # `output` is Detectron2's folder, not the experiment
        assert_monotone(run)
        got = points(run, "total_loss")
        assert [(s, v) for s, v, _ in got] == [(r["iteration"], r["total_loss"]) for r in part], locator
        # `time` is seconds per iteration, not a date: kept as a metric, the points have no 1970 timestamps
        assert [v for _, v, _ in points(run, "iter_time")] == [r["time"] for r in part]
        assert ("time", ()) not in series(run) and ("iteration", ()) not in series(run)
    names = sorted(run.name for run in runs.values())
    assert names == ["metrics", "metrics#2", "metrics#3"]
    assert points(runs["lines 31-80"], "loss_mask")[-1][:2] == (999, 0.08085061609745026)
    assert report["summary"]["invalid"] == 0


def test_detectron2_resume_stays_one_run_and_its_relogged_steps_win(tmp_path):
    log = TOOLS / "detectron2" / "nyu-semi-supervised" / "output" / "metrics.json"
    runs, _ = migrate(log, tmp_path)
    assert sorted(runs) == ["lines 1-39", "lines 40-44"]  # back to 5519 is a resume; back to 19 a new training
    first, second = runs["lines 1-39"], runs["lines 40-44"]
    rows = lines(log)  # 5 lines, then 31 from iteration 5419 (stop at 5878, resume at 5519), then 8 at the end
    stop = next(i for i, r in enumerate(rows) if r["iteration"] == 5878)
    resumed = rows[stop + 2]
    assert resumed["iteration"] == 5519
    before = next(r for r in rows[:stop] if r["iteration"] == 5519)
    assert before["total_loss"] != resumed["total_loss"]
    assert_monotone(first)
    loss = {s: v for s, v, _ in points(first, "total_loss")}
    assert loss[5519] == resumed["total_loss"]  # the resumed training's value replaces the earlier one
    assert loss[5877] == rows[stop + 1]["total_loss"]  # logged as the job stopped, never re-logged: kept
    assert loss[41999] == rows[38]["total_loss"] and len(loss) == len({r["iteration"] for r in rows[:39]}) - 1
    assert (5878, rows[stop]["eta_seconds"]) in [(s, v) for s, v, _ in points(first, "eta_seconds")]
    evaluation = next(r for r in rows if "bbox/AP" in r)
    assert [(s, v) for s, v, _ in points(first, "bbox/AP")] == [(evaluation["iteration"], evaluation["bbox/AP"])]
    assert ("bbox/AP-dog", ()) in series(first)
    assert [s for s, _, _ in points(second, "total_loss")] == [19, 39, 59, 79, 99]
    assert first.experiment == second.experiment == "nyu-semi-supervised"


# --- Chainer -----------------------------------------------------------------------------------


def test_chainer_logreport_without_extension_is_one_run_and_binaries_beside_it_are_skipped(tmp_path):
    folder = tmp_path / "chainer-ADDA"
    shutil.copytree(TOOLS / "chainer" / "chainer-ADDA", folder)
    # LogReport's neighbours: a snapshot (an npz, so a zip) and a model file, no extension either
    (folder / "result" / "source_model_epoch_100").write_bytes(b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(200))
    (folder / "result" / "last_checkpoint").write_text("model_final.pth")
    runs, report = migrate(folder, tmp_path)
    (run,) = runs.values()
    entries = json.loads((folder / "result" / "log").read_text())
    assert run["etl"]["locator"] == "$[0]-$[11]" and run.experiment == "chainer-ADDA"
    accuracy = points(run, "main/accuracy", (("subset", "validation"),))
    assert accuracy == [(e["iteration"], e["validation/main/accuracy"], float(e["epoch"])) for e in entries]
    assert accuracy[-1][:2] == (3434, 0.5269531011581421)
    assert [p[0] for p in points(run, "loss/discrim")] == [e["iteration"] for e in entries]
    skipped = {Path(s["source"]).name: s["reason"] for s in report["skipped"]}
    assert "binary content" in skipped["source_model_epoch_100"]
    assert skipped["last_checkpoint"] == "not a JSON or JSONL file (no extension)"
    assert report["summary"]["invalid"] == 0


# --- MMCV / MMDetection 2.x --------------------------------------------------------------------


def test_mmdet_log_json_header_is_params_mode_is_context_and_steps_run_across_epochs(tmp_path):
    log = next((TOOLS / "mmdet2").glob("*/*.log.json"))
    runs, report = migrate(log, tmp_path)
    (run,) = runs.values()  # not one run per line
    header, *rows = lines(log)
    assert run.experiment == "faster_rcnn_r50_fpn_1x_balloon" and run.name == "20220316_185407.log"
    assert run["hparams"]["config"] == header["config"] and run["hparams"]["config"].startswith("model = dict(")
    assert run["hparams"]["seed"] == 0 and run["hparams"]["env_info"].startswith("sys.platform: linux")
    assert run["hparams"]["exp_name"] == header["exp_name"]
    assert_monotone(run)
    train = [r for r in rows if r["mode"] == "train"]
    # `iter` restarts every epoch: the step keeps counting (10, 20, 30, then 40...), the epoch is `epoch`
    assert points(run, "loss", TRAIN) == [(10 * n, r["loss"], float(r["epoch"])) for n, r in enumerate(train, start=1)]
    val = [r for r in rows if r["mode"] == "val"]
    # validation lines sit at the last training step before them, with their epoch; their `iter` is the val set's
    assert points(run, "bbox_mAP", VAL) == [(30 * r["epoch"], r["bbox_mAP"], float(r["epoch"])) for r in val]
    assert [v for _, v, _ in points(run, "iter_time", TRAIN)] == [r["time"] for r in train]
    assert ("lr", VAL) in series(run) and ("memory", TRAIN) in series(run)
    assert not any(name in ("time", "iter", "mode", "bbox_mAP_copypaste") for name, _ in series(run))
    assert report["files"][0]["format"] == STEPS


# --- MMEngine ----------------------------------------------------------------------------------


def test_mmengine_scalars_and_its_timestamped_copy_import_once(tmp_path):
    config = TOOLS / "mmengine" / "rtmdet_tiny_1xb4-3e_balloon"
    vis = config / "20230609_075749" / "vis_data"
    assert (vis / "scalars.json").read_bytes() == (vis / "20230609_075749.json").read_bytes()
    runs, report = migrate(config, tmp_path)
    (run,) = runs.values()
    skipped = {Path(s["source"]).name: s["reason"] for s in report["skipped"]}
    assert skipped["scalars.json"].startswith(f"duplicate of {(vis / '20230609_075749.json').as_posix()}")
    assert run.experiment == "rtmdet_tiny_1xb4-3e_balloon"  # past `vis_data` and the timestamp folder
    rows = lines(vis / "scalars.json")
    train = [r for r in rows if "iter" in r]
    val = [r for r in rows if "iter" not in r]
    assert_monotone(run)
    assert points(run, "loss") == [(r["step"], r["loss"], float(r["epoch"])) for r in train]
    # validation `step` is the epoch: the point goes to the last training step of that epoch
    last_step = {r["epoch"]: r["step"] for r in train}
    assert points(run, "coco/bbox_mAP", VAL) == [
        (last_step[r["step"]], r["coco/bbox_mAP"], float(r["step"])) for r in val
    ]
    assert points(run, "coco/bbox_mAP", VAL)[1][:2] == (61, 0.517)
    # the two loops' timings stay two series instead of one zigzag
    assert [v for _, v, _ in points(run, "data_time")] == [r["data_time"] for r in train]
    assert [v for _, v, _ in points(run, "data_time", VAL)] == [r["data_time"] for r in val]
    assert [v for _, v, _ in points(run, "iter_time", VAL)] == [r["time"] for r in val]


# --- Stable-Baselines3 and OpenAI baselines ----------------------------------------------------


def test_sb3_progress_is_one_run_at_its_timesteps_and_an_empty_one_is_skipped_as_empty(tmp_path):
    runs, report = migrate(TOOLS / "sb3", tmp_path)
    (run,) = runs.values()  # 8 lines, 1 run; the 0-byte progress.json is no run and no error
    rows = lines(TOOLS / "sb3" / "PPO_CartPole-v1_1" / "progress.json")
    assert run.experiment == "PPO_CartPole-v1_1"
    assert [(s, v) for s, v, _ in points(run, "rollout/ep_rew_mean")] == [
        (r["time/total_timesteps"], r["rollout/ep_rew_mean"]) for r in rows
    ]
    assert [s for s, _, _ in points(run, "loss", TRAIN)] == [2048 * k for k in range(2, 9)]  # from the 2nd line on
    assert points(run, "loss", TRAIN)[-1][:2] == (16384, rows[-1]["train/loss"])
    assert [v for _, v, _ in points(run, "time/iterations")] == list(range(1, 9))
    assert ("time/total_timesteps", ()) not in series(run)  # it is the step
    assert report["summary"]["invalid"] == 0 and report["invalid"] == []
    skipped = {s["source"]: s["reason"] for s in report["skipped"]}
    empty = (TOOLS / "sb3" / "PPO_CartPole-v1_2" / "progress.json").resolve().as_posix()
    assert skipped[empty] == "empty file"


def test_openai_baselines_progress_is_one_run_stepped_by_total_timesteps(tmp_path):
    log = TOOLS / "openai-baselines" / "ppo2_HalfCheetah-v2" / "progress.json"
    runs, _ = migrate(log, tmp_path)
    (run,) = runs.values()
    rows = lines(log)
    assert [(s, v) for s, v, _ in points(run, "eprewmean")] == [(r["total_timesteps"], r["eprewmean"]) for r in rows]
    assert [v for _, v, _ in points(run, "nupdates")] == [1, 2, 3, 4, 5, 6]
    assert points(run, "value_loss")[2][:2] == (6144, rows[2]["value_loss"])


# --- the whole tree, twice ---------------------------------------------------------------------


def test_every_tool_log_in_one_migrate_then_sync_writes_nothing(tmp_path):
    repo = tmp_path / "repo"
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    assert run_cli("migrate", TOOLS, "--repo", repo, "--report", first, "-q").exit_code == 0
    report = json.loads(first.read_text())
    # 3 + 2 Detectron2 trainings, Chainer, MMCV, MMEngine (once), SB3, baselines
    assert report["summary"]["runs_written"] == len(aim_runs(repo)) == 10
    assert report["summary"]["invalid"] == 0
    run_cli("sync", TOOLS, "--repo", repo, "--report", second, "-q")
    again = json.loads(second.read_text())
    assert again["summary"]["runs_written"] == 0 and again["summary"]["new"] == 0


# --- shapes, on small files --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("metrics", b'{"iteration": 1, "loss": 1.0}\n{"iteration": 2, "loss": 0.5}\n', STEPS),
        ("log", b'[\n    {"epoch": 1, "iteration": 10, "loss": 1.0},\n    {"epoch": 2, "iteration": 20}\n]', STEPS),
        ("summary", b'{"config": {"lr": 0.1}, "results": {"acc": 0.9}}', JSON),
        ("runs.log", b'{"run_id": "a", "acc": 0.9}\n{"run_id": "b", "acc": 0.8}\n', JSONL),
        ("table", b'[{"name": "a", "acc": 0.9}, {"name": "b", "acc": 0.8}]', JSON),
    ],
)
def test_json_is_detected_by_content_when_the_name_says_nothing(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    assert detect_format(path)[0] == expected


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty file"),
        (b"  \n\n", "empty file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary content"),
        (b"model_final.pth", "not a JSON or JSONL file (no extension)"),
        (b'{"a": 1, "b": }', "does not parse"),
    ],
)
def test_files_that_are_not_json_by_content_are_skipped_with_why(tmp_path, content, words):
    path = tmp_path / "noext"
    path.write_bytes(content)
    fmt, reason = detect_format(path)
    assert fmt is None and words in reason


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # a header line, then a counter: the header is no obstacle
        ([{"env_info": "linux", "config": "x = 1", "seed": 0}] + [{"iter": i, "loss": 1 / i} for i in (10, 20)], True),
        # a counter resetting per epoch while the epoch grows
        ([{"epoch": e, "iter": i, "loss": 1.0} for e in (1, 2) for i in (10, 20, 30)], True),
        # a training appended after one of 3+ points
        ([{"iteration": i, "loss": 1.0} for i in (19, 39, 59, 19, 39)], True),
        # lines of another loop carrying only `step` (the epoch) beside the training's `iter`/`epoch`/`step`
        (
            [{"loss": 1.0, "epoch": 1, "iter": 10, "step": 10}, {"acc": 0.5, "step": 1}] * 1
            + [{"loss": 0.9, "epoch": 2, "iter": 20, "step": 20}, {"acc": 0.6, "step": 2}],
            True,
        ),
        # a table whose counter jumps around is not a log
        ([{"iteration": i, "acc": 0.5} for i in (1, 5, 3, 8, 2)], False),
        # hand-kept rows that all trained the same epochs: the counter does not move
        ([{"epoch": 20, "acc": a} for a in (0.5, 0.6, 0.7)], False),
        # named rows (free text on every line) are runs, even with a rising epoch
        ([{"model": m, "epoch": e, "acc": 0.5} for m, e in (("a", 10), ("b", 20), ("c", 50))], False),
    ],
)
def test_step_log_shapes(rows, expected):
    assert is_steps_rows(rows) is expected


def test_a_step_log_copied_elsewhere_byte_for_byte_is_read_once(tmp_path):
    text = "".join(json.dumps({"step": s, "loss": 1 / s}) + "\n" for s in range(1, 6))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "train_log.jsonl").write_text(text)
    (tmp_path / "b" / "train_log.jsonl").write_text(text)
    (tmp_path / "b" / "other.jsonl").write_text(text.replace("0.5", "0.25"))  # same size, other bytes
    files, skipped = find_sources([tmp_path])
    assert [Path(f.source).relative_to(tmp_path.resolve()).as_posix() for f in files] == [
        "a/train_log.jsonl",
        "b/other.jsonl",
    ]
    (copy,) = skipped
    assert copy.source.endswith("b/train_log.jsonl") and copy.reason.startswith("duplicate of ")


def test_a_training_appended_to_a_log_is_one_new_run_and_the_earlier_ones_stay(tmp_path):
    source = (TOOLS / "detectron2" / "SMN" / "output" / "metrics.json").read_text().splitlines(keepends=True)
    log = tmp_path / "smn" / "output" / "metrics.json"
    log.parent.mkdir(parents=True)
    log.write_text("".join(source[:40]))  # two trainings, the third one's first 10 lines
    repo = tmp_path / "repo"
    assert run_cli("migrate", log, "--repo", repo, "-q").exit_code == 0
    before = {run["etl"]["locator"]: run.hash for run in aim_runs(repo).values()}
    assert sorted(before) == ["lines 1-15", "lines 16-30", "lines 31-40"]
    with log.open("a") as fh:
        fh.write("".join(source[40:]))
    report = tmp_path / "sync.json"
    assert run_cli("sync", log, "--repo", repo, "--report", report, "-q").exit_code == 0
    summary = json.loads(report.read_text())["summary"]
    assert (summary["new"], summary["changed"], summary["unchanged"]) == (0, 1, 2)
    after = {run["etl"]["locator"]: run for run in aim_runs(repo).values()}
    assert sorted(after) == ["lines 1-15", "lines 16-30", "lines 31-80"]
    assert after["lines 31-80"].hash == before["lines 31-40"]  # the growing training keeps its run
    assert [p[0] for p in points(after["lines 31-80"], "total_loss")][-1] == 999
