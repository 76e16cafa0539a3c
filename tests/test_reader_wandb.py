"""W&B run folders: files/wandb-summary.json (+ config.yaml, wandb-metadata.json) -> one run per folder.

Fixtures in tests/fixtures/wandb/proj/wandb/: `run-20260102_050506-abc12345` a finished run (nested,
media and non-number values in its summary, an old-style config.yaml, metadata with an email to
drop, media/ and code/ folders, logs/, the binary run file, a file the user saved); `run-..-new-cfg-1`
a newer client's config.yaml and no `_timestamp`; `offline-run-...-off00001` a summary alone;
`run-...-bad00001` every file bad; `run-...-caps0001` capitalized section names (`Eval/0/return`,
`Train/loss`, `{"Val": {..}}`), one (`Test/acc`) beside its lowercased twin.
`proj/exported/files/wandb-summary.json` is not in a run folder.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from pathlib import Path

import pytest

from etl.errors import BadRecord
from etl.interpret import FieldRules, interpret
from etl.normalize import Normalizer
from etl.readers.record import Record
from etl.readers.wandb import WANDB, claims_wandb, claims_with_reasons_wandb, is_wandb, read_wandb

PROJ = Path(__file__).resolve().parent / "fixtures" / "wandb" / "proj"
GOOD = PROJ / "wandb" / "run-20260102_050506-abc12345" / "files" / "wandb-summary.json"
NEW = PROJ / "wandb" / "run-20260103_101500-new-cfg-1" / "files" / "wandb-summary.json"
OFFLINE = PROJ / "wandb" / "offline-run-20260104_120000-off00001" / "files" / "wandb-summary.json"
BAD = PROJ / "wandb" / "run-20260105_000000-bad00001" / "files" / "wandb-summary.json"
CAPS = PROJ / "wandb" / "run-20260106_080000-caps0001" / "files" / "wandb-summary.json"
UTC = dt.UTC


def read(summary: Path) -> list[Record | BadRecord]:
    return list(read_wandb(summary, f"wandb/{summary.parent.parent.name}/files/wandb-summary.json"))


def split(items: list[Record | BadRecord]) -> tuple[Record, list[BadRecord]]:
    records = [i for i in items if isinstance(i, Record)]
    assert len(records) == 1
    return records[0], [i for i in items if isinstance(i, BadRecord)]


def finals(points) -> dict[tuple[str, str], float]:
    """(name, context) -> value of an interpreted record's step-0 points (a summary has no other)."""
    assert all(step == 0 and epoch is None for _, _, step, epoch, _, _ in points)
    out = {(name, context): value for name, context, _, _, value, _ in points}
    assert len(out) == len(points)
    return out


# --- the corpus: rishabhg97/robust-cartpole, written by wandb 0.16 -------------------------------


def test_corpus_summary_is_one_run_of_final_values_with_wandbs_bookkeeping_in_meta(corpus):
    run_dir = corpus / "rishabhg97__robust-cartpole" / "wandb" / "run-20231210_175258-gu7xnmg8"
    summary_path = run_dir / "files" / "wandb-summary.json"
    assert is_wandb(summary_path)
    assert claims_wandb(summary_path) == []  # only the summary was kept in the corpus
    items = read(summary_path)
    assert len(items) == 1 and isinstance(items[0], Record)
    (record,) = items
    assert record.format == WANDB and record.locator == "$"

    summary = json.loads(summary_path.read_text())
    item = interpret(record, FieldRules())
    assert item.record_id == "gu7xnmg8" and item.name == "gu7xnmg8"
    assert item.experiment == "rishabhg97__robust-cartpole"
    assert item.hparams == {} and "config_note" not in item.meta  # no config.yaml beside it
    assert item.ended_at.timestamp() == summary["_timestamp"] == 1702250347.733091
    assert item.created_at.timestamp() == pytest.approx(summary["_timestamp"] - summary["_runtime"])
    assert item.created_at.replace(microsecond=0) == dt.datetime(2023, 12, 10, 22, 52, 58, tzinfo=UTC)
    assert not item.naive_time
    # the folder says 17:52:58: the local time of the machine that ran it, not UTC
    assert record.data["run_dir"] == "run-20231210_175258-gu7xnmg8"
    assert item.meta["wandb"] == {k: summary[k] for k in ("_timestamp", "_runtime", "_step", "_wandb")}
    assert item.meta["history"].startswith("not imported: binary .wandb file")

    got = finals(item.points)
    assert len(got) == len(summary) - 4 == 52
    assert got[("ppo_agent_mean_reward_orig", "{}")] == 379.45
    assert got[("adversary_reward", "{}")] == -401.0
    # `Eval/<i>/...` keeps its slashes; its `Eval` segment is a subset name, so it becomes the
    # context, lowercased: the same `eval` subset the other readers' `eval_` prefixes give
    for i in range(25):
        for metric in ("internal_agent_return", "episodic_return"):
            assert got[(f"{i}/{metric}", '{"subset":"eval"}')] == summary[f"Eval/{i}/{metric}"]
    assert {context for _, context in got} == {"{}", '{"subset":"eval"}'}
    assert not any(name.startswith("_") for name, _ in got)

    frames = Normalizer().normalize([record])
    assert len(frames.runs) == 1 and len(frames.metrics) == 52 and frames.naive_timestamps == 0


# --- fixtures -----------------------------------------------------------------------------------


def test_good_run_flattens_nested_values_and_keeps_media_strings_and_bookkeeping_out_of_metrics():
    record, bad = split(read(GOOD))
    assert bad == []
    item = interpret(record, FieldRules())
    assert item.record_id == "abc12345" and item.experiment == "proj"
    assert item.created_at == dt.datetime(2026, 1, 2, 4, 5, 6, tzinfo=UTC)  # _timestamp - _runtime
    assert item.ended_at == dt.datetime(2026, 1, 2, 4, 7, 11, 500000, tzinfo=UTC)
    got = finals(item.points)
    nan = got.pop(("grad_norm", "{}"))
    assert math.isnan(nan)
    assert got == {
        ("loss", '{"subset":"train"}'): 0.25,
        ("loss", '{"subset":"val"}'): 0.3,  # {"val": {"loss": ..}} flattened to val_loss
        ("acc", '{"subset":"val"}'): 0.9,
        ("loss/min", "{}"): 0.2,  # a define_metric summary
        ("0/return", '{"subset":"eval"}'): 7.5,  # `Eval/0/return`: the subset lowercased
        ("best_epoch", "{}"): 3.0,
    }
    assert item.meta["results"] == {"note": "done", "converged": True, "lr_history": [0.1, 0.01]}
    assert item.meta["media"] == {
        "hist": {"_type": "histogram"},
        "samples": {
            "_type": "image-file",
            "path": "media/images/samples_300_0a1b.png",
            "width": 8,
            "height": 8,
            "format": "png",
        },
    }
    assert item.meta["wandb"] == {
        "_step": 300,
        "_runtime": 125.5,
        "_timestamp": 1767326831.5,
        "_wandb": {"runtime": 125},
    }
    assert item.meta["history"] == "not imported: binary .wandb file (run-abc12345.wandb)"
    metadata = item.meta["wandb_metadata"]
    assert metadata["program"] == "train.py" and metadata["args"] == ["--lr", "0.001"]
    assert metadata["git"] == {"remote": "https://example.com/proj.git", "commit": "abc123"}
    assert not {"email", "username", "disk", "memory", "gpu_devices"} & set(metadata)
    assert item.meta["host"] == "gpu-box"


def test_config_yaml_values_are_unwrapped():
    record, bad = split(read(GOOD))
    assert bad == []
    item = interpret(record, FieldRules())
    assert item.hparams == {
        "batch_size": 32,
        "lr": 0.001,
        "model": {"dim": 64, "layers": [2, 2]},
        "run_date": "2026-01-02",  # a YAML date, as the string it was written as
        "raw_entry": "plain",  # not W&B's {desc, value} shape: kept as it is
    }
    assert "config_note" not in item.meta
    own = item.meta["wandb_config"]
    assert own["wandb_version"] == 1
    assert own["_wandb"]["cli_version"] == "0.16.1" and "t" not in own["_wandb"]  # no telemetry codes

    newer, _ = split(read(NEW))
    assert interpret(newer, FieldRules()).hparams == {"epochs": 4}
    (problem,) = [b for b in read(BAD) if isinstance(b, BadRecord) and b.locator.startswith("config.yaml")]
    assert problem.locator == "config.yaml line 4" and problem.reason.startswith("config.yaml: not YAML")


def test_start_time_sources_in_order_metadata_then_the_folders_local_time():
    newer, _ = split(read(NEW))
    item = interpret(newer, FieldRules())
    assert item.record_id == "new-cfg-1"  # an id of the user's own, with dashes
    assert item.created_at == dt.datetime(2026, 1, 3, 9, 15, 0, 500000, tzinfo=UTC)  # metadata's startedAt
    assert item.ended_at is None and not item.naive_time  # no _timestamp: no end
    assert finals(item.points) == {("loss", '{"subset":"eval"}'): 0.4}

    offline, bad = split(read(OFFLINE))
    assert bad == []
    item = interpret(offline, FieldRules())
    assert item.record_id == "off00001"
    assert item.created_at == dt.datetime(2026, 1, 4, 12, 0, tzinfo=UTC) and item.naive_time
    assert item.ended_at == dt.datetime(2026, 1, 4, 12, 1, tzinfo=UTC)  # + _runtime
    frames = Normalizer(FieldRules(timezone="Europe/Brussels")).normalize([offline])
    assert frames.naive_timestamps == 1
    assert frames.runs.loc[0, "created_at"] == dt.datetime(2026, 1, 4, 11, 0, tzinfo=UTC)  # the folder is local time


def test_every_bad_file_is_reported_and_the_run_still_comes_out():
    record, bad = split(read(BAD))
    assert [(b.source, b.locator) for b in bad] == [
        ("wandb/run-20260105_000000-bad00001/files/wandb-summary.json", "line 1"),
        ("wandb/run-20260105_000000-bad00001/files/wandb-summary.json", "config.yaml line 4"),
        ("wandb/run-20260105_000000-bad00001/files/wandb-summary.json", "wandb-metadata.json"),
    ]
    assert bad[0].reason.startswith("not JSON")
    assert bad[1].reason.startswith("config.yaml: not YAML")
    assert bad[2].reason == "wandb-metadata.json: expected object, got list"
    assert record.data["run_id"] == "bad00001" and record.data["config"] == {}
    assert "config_note" not in record.data
    frames = Normalizer().normalize([record])
    assert len(frames.runs) == 0 and len(frames.skipped) == 1  # nothing left to import: said, not raised


def test_capitalized_subset_sections_become_lowercase_contexts_and_no_value_is_lost():
    record, bad = split(read(CAPS))
    assert bad == []
    item = interpret(record, FieldRules())
    assert finals(item.points) == {
        ("0/return", '{"subset":"eval"}'): 7.5,  # `Eval/0/return`
        ("1/return", '{"subset":"eval"}'): 6.0,
        ("loss", '{"subset":"train"}'): 0.5,  # `Train/loss`
        ("Acc", '{"subset":"val"}'): 0.8,  # `{"Val": {"Acc": ..}}`: the subset word only
        ("acc", '{"subset":"test"}'): 0.71,  # `test/acc`
        # `Test/acc` beside `test/acc`: lowercasing it would overwrite one of them, so it keeps its case
        ("acc", '{"subset":"Test"}'): 0.7,
        ("Eval", "{}"): 2.0,  # a whole name, not a prefix: no context to make of it
        ("Evaluation/score", "{}"): 1.0,  # not a subset word
    }
    assert record.data["results"]["eval/0/return"] == 7.5 and "Eval/0/return" not in record.data["results"]


def test_claims_are_wandbs_files_not_a_file_the_user_saved():
    reasons = {p.relative_to(GOOD.parent.parent).as_posix(): r for p, r in claims_with_reasons_wandb(GOOD)}
    assert sorted(reasons) == [
        "files/code/train.py",
        "files/config.yaml",
        "files/diff.patch",
        "files/media/images/samples_300_0a1b.png",
        "files/output.log",
        "files/requirements.txt",
        "files/wandb-metadata.json",
        "logs/debug-internal.log",
        "logs/debug.log",
        "run-abc12345.wandb",
    ]
    assert "binary" in reasons["run-abc12345.wandb"]
    assert [p.name for p in claims_wandb(OFFLINE)] == []
    assert [p.name for p in claims_wandb(NEW)] == ["config.yaml", "wandb-metadata.json"]


def test_detection_needs_a_run_folder_and_skips_the_latest_run_symlink(tmp_path):
    assert all(is_wandb(p) for p in (GOOD, NEW, OFFLINE, BAD, CAPS))
    assert not is_wandb(PROJ / "exported" / "files" / "wandb-summary.json")
    assert not is_wandb(GOOD.parent / "wandb-metadata.json")

    wandb_dir = tmp_path / "proj" / "wandb"
    run_dir = wandb_dir / GOOD.parent.parent.name
    shutil.copytree(GOOD.parent.parent, run_dir)
    (wandb_dir / "latest-run").symlink_to(run_dir.name, target_is_directory=True)
    assert not is_wandb(wandb_dir / "latest-run" / "files" / "wandb-summary.json")  # the same run again

    copy = tmp_path / "copied" / "wandb" / "latest-run"
    shutil.copytree(GOOD.parent.parent, copy)
    summary = copy / "files" / "wandb-summary.json"
    assert is_wandb(summary)  # a real folder (a copy): its id comes from the binary file's name
    record, _ = split(list(read_wandb(summary, "wandb/latest-run/files/wandb-summary.json")))
    assert record.data["run_id"] == "abc12345" and record.data["experiment_name"] == "copied"
