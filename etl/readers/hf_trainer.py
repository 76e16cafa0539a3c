"""Hugging Face Trainer output folders: `trainer_state.json`, its `log_history`, and the files beside it.

One output folder (`Trainer(args=TrainingArguments(output_dir=...))`) is one run, with its
`trainer_state.json` as the primary file. Quirks of what the Trainer writes (seen in the corpus
folders t5-summarization-demo and Deep_learning_Bert_project2, both written by a recent transformers
with `best_global_step` and `stateful_callbacks`, and in the end-of-training entry of transformers 4.0):

- `log_history` mixes three kinds of entries, each with the trainer's `step` (global step) and a
  float `epoch`: training logs (`loss`, `learning_rate`, `grad_norm`), evaluation logs (`eval_*`),
  and one end-of-training summary (`train_runtime`, `train_loss`, `total_flos`, ...; transformers
  4.0 logged a lone `{"total_flos": ..}` instead). A training log's plain names would land in no
  context and a TRL `mean_token_accuracy` would not pair with its `eval_mean_token_accuracy`, so a
  training log's metrics get a `train_` prefix (`loss` -> `train_loss`, i.e. `loss` in the `train`
  subset). Optimizer and counter fields keep their plain names and no context: `learning_rate`,
  `grad_norm`, `num_input_tokens_seen`, `total_flos` describe the optimizer or the run, not a data
  subset. Evaluation logs keep their names (`eval_loss` -> `loss` in the `eval` subset), as do
  names already carrying a subset prefix. The summary and the result files' numbers are points at
  the run's last global step (`_results_at_last_step`), where training ended;
- a training log and an evaluation log share one step (Bert project: `loss` and `eval_loss` both
  at step 100): they are merged into one history row, so the step's `epoch` is one point, not two.
  A name logged twice at one step (a `trainer.evaluate()` after training logs `eval_*` again at the
  last step, of the best model when `load_best_model_at_end` is set) keeps the later value, as Aim
  would. An entry without a `step` takes the previous entry's;
- the float `epoch` is kept as a metric named `epoch`; its int part is the points' Aim epoch.
  The run's final `epoch` and `global_step` are kept in the meta under `trainer_state`;
- `all_results.json` is the union of `train_results.json` and `eval_results.json` (and of
  `test_results.json` / `predict_results.json` when a script writes them) and repeats the summary
  entry: they are merged into one `results` by name, so each number is imported once. Their
  `epoch` is the run's final epoch again: not a result (a `results` `epoch` would be a second
  `epoch` series); kept in the meta (`results_epoch`) only if it differs from the state's;
- the trainer's own settings (`train_batch_size`, `num_train_epochs`, `max_steps`, `logging_steps`,
  `eval_steps`, `save_steps`, `best_metric`, `best_model_checkpoint`, `best_global_step`,
  `trial_name`, `trial_params`, `is_hyper_param_search`) are the hparams, with the model's
  `config.json` under `model`, a PEFT `adapter_config.json` under `adapter` and
  `generation_config.json` under `generation`. The real TrainingArguments (learning rate, seed,
  ...) are only in `training_args.bin`, a pickle: claimed, never unpickled;
- `checkpoint-<step>/trainer_state.json` files are snapshots whose `log_history` is a prefix of
  the final one: read as runs they would duplicate every point. Only one file per output folder
  is read: its own `trainer_state.json`, or, when there is none (training stopped, or
  `save_state()` never called), that of the highest-numbered checkpoint holding one. `hf_checkpoint_copy_reason`
  says why any other copy is skipped; the run is then named after the output folder all the same;
- a checkpoint-only folder's run is keyed by the output folder, not by the checkpoint read
  (`_key_source`): as training goes on and newer checkpoints replace the one read, a sync updates
  the same Aim run with the longer history instead of adding a run per checkpoint;
- no file holds a wall-clock time (no start or end is given); the run id is the output folder's
  name and the experiment the folder holding it.

A file that does not parse, or has the wrong shape, is a `BadRecord` naming it (a bad log entry is
located as `$.log_history[3]`); the run is still read from the rest, even from the sibling files
alone when `trainer_state.json` itself is unreadable.
"""

from __future__ import annotations

import math
import os
import posixpath
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from etl.errors import BadRecord
from etl.readers.folders import files_under, listing
from etl.readers.jsontext import read_object, type_name
from etl.readers.record import Record
from etl.readers.steps import SUBSETS, flatten_row

HF_TRAINER = "hf-trainer"
STATE = "trainer_state.json"

# Final-number files the example scripts write with `trainer.save_metrics(split, metrics)`, merged
# in this order (a later file wins a name both hold; they agree in practice).
RESULT_FILES = (
    "all_results.json",
    "train_results.json",
    "eval_results.json",
    "test_results.json",
    "predict_results.json",
)
# Config files read into the hparams, each under its own key.
CONFIG_FILES = (
    ("config.json", "model"),
    ("adapter_config.json", "adapter"),
    ("generation_config.json", "generation"),
)
# trainer_state.json fields that configure the run: the hparams.
SETTINGS = (
    "train_batch_size",
    "num_train_epochs",
    "max_steps",
    "logging_steps",
    "eval_steps",
    "save_steps",
    "best_metric",
    "best_model_checkpoint",
    "best_global_step",
    "is_hyper_param_search",
    "trial_name",
    "trial_params",
)
# Fields of a training log that keep their plain names (no `train_` prefix, no context).
PLAIN = frozenset({"learning_rate", "grad_norm", "num_input_tokens_seen", "total_flos"})
# A log entry holding one of these is the end-of-training summary: final numbers, not a point.
SUMMARY_KEYS = frozenset({"train_runtime", "train_samples_per_second", "train_steps_per_second"})
# Name prefixes that already say which data a metric is about; `predict_` is the scripts' test split.
_PREFIXED = re.compile(r"^(" + "|".join(sorted(SUBSETS | {"predict"})) + r")[_./]", re.IGNORECASE)
_STRUCTURAL = ("step", "epoch")
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")

_READ = {name: "read: the run's final numbers, merged into its results" for name in RESULT_FILES}
_READ.update(
    {
        "config.json": "read: the model's config, in the run's hparams under `model`",
        "adapter_config.json": "read: the PEFT adapter's config, in the run's hparams under `adapter`",
        "generation_config.json": "read: the generation config, in the run's hparams under `generation`",
    }
)
# Other files the Trainer writes in an output folder: not experiment records, never imported as runs.
_WRITTEN = {
    "training_args.bin": "pickle: never unpickled (the TrainingArguments, torch.save'd)",
    "tokenizer_config.json": "the tokenizer's files, not an experiment record",
    "tokenizer.json": "the tokenizer's files, not an experiment record",
    "special_tokens_map.json": "the tokenizer's files, not an experiment record",
    "added_tokens.json": "the tokenizer's files, not an experiment record",
    "vocab.json": "the tokenizer's files, not an experiment record",
    "preprocessor_config.json": "the processor's config, not an experiment record",
    "processor_config.json": "the processor's config, not an experiment record",
    "model.safetensors.index.json": "the model's weight index, not an experiment record",
    "pytorch_model.bin.index.json": "the model's weight index, not an experiment record",
}
_CHECKPOINT_STATE = "checkpoint copy of the trainer state (its log_history is a prefix of the one read)"
_CHECKPOINT_FILE = "a Trainer checkpoint's file, not an experiment record"


def is_hf_trainer(path: Path) -> bool:
    """A `trainer_state.json`, unless it is a checkpoint's copy that another file of its output
    folder supersedes (see `hf_checkpoint_copy_reason`). Names and folder listings only."""
    return path.name == STATE and hf_checkpoint_copy_reason(path) is None


def hf_checkpoint_copy_reason(path: Path) -> str | None:
    """Why a `checkpoint-*/trainer_state.json` is not read as a run, or None (not such a copy).

    The output folder's own `trainer_state.json` holds the whole log; without one, the newest
    checkpoint's does. Every other copy would import the same points again as another run.
    """
    if path.name != STATE or not path.parent.name.startswith("checkpoint-"):
        return None
    output = path.parent.parent
    if (output / STATE).is_file():
        return f"checkpoint copy of ../{STATE}"
    newest = _newest_checkpoint(output)
    if newest is None or newest.name == path.parent.name:
        return None
    return f"older checkpoint; {newest.name} is read"


def claims_hf_trainer(path: Path) -> list[Path]:
    """The output folder's other Trainer files: the result and config files read, training_args.bin,
    the tokenizer's and processor's JSON files, and every file of its `checkpoint-*` folders
    (snapshots of the same run). A user's own files written there are not claimed."""
    return [claimed for claimed, _ in claims_with_reasons_hf_trainer(path)]


def claims_with_reasons_hf_trainer(path: Path) -> list[tuple[Path, str]]:
    """`claims_hf_trainer` with why each file is claimed, for the walker's listing."""
    output = _output_folder(path)
    claimed: list[tuple[Path, str]] = []
    for entry in listing(output):
        if entry == path:
            continue
        if entry.is_dir() and entry.name.startswith("checkpoint-"):
            for file in files_under(entry):
                if file == path:
                    continue
                if file.name == STATE and file.parent == entry:
                    claimed.append((file, _CHECKPOINT_STATE))
                elif file.name in _READ and _sibling(path, output, file.name) == file:
                    claimed.append((file, _READ[file.name]))
                else:
                    claimed.append((file, _CHECKPOINT_FILE))
        elif entry.is_file() and entry.name in _READ:
            claimed.append((entry, _READ[entry.name]))
        elif entry.is_file() and entry.name in _WRITTEN:
            claimed.append((entry, _WRITTEN[entry.name]))
    return claimed


def read_hf_trainer(path: Path, source: str, **_ignored: object) -> Iterator[Record | BadRecord]:
    """One record for the output folder: log_history as history, the summary and result files as
    results, the trainer's settings and config files as hparams.

    Keyword arguments (a sync cursor's offset) are accepted and ignored: the Trainer rewrites
    trainer_state.json whole at every save, so it is always read whole.
    """
    output = _output_folder(path)
    state, problem = _read_sibling(path, path)
    if problem is not None:
        yield BadRecord(source, *problem)

    data: dict[str, Any] = {"run_id": output.resolve().name or output.resolve().as_posix()}
    experiment = output.resolve().parent.name
    if experiment:
        data["experiment_name"] = experiment

    config: dict[str, Any] = {}
    results: dict[str, Any] = {}
    rows: dict[int, dict[str, Any]] = {}
    read: list[str] = []
    bookkeeping: dict[str, Any] = {}
    if state is not None:
        read.append(_relative(path, output))
        config.update({k: state[k] for k in SETTINGS if k in state})
        log = state.get("log_history")
        if isinstance(log, list):
            yield from _log_rows(log, source, rows, results)
        elif log is not None:
            yield BadRecord(source, "$.log_history", f"log_history: expected list, got {type_name(log)}")
        bookkeeping = {k: v for k, v in state.items() if k not in SETTINGS and k != "log_history"}

    for name, key in CONFIG_FILES:
        file = _sibling(path, output, name)
        if file is None:
            continue
        value, problem = _read_sibling(file, path)
        if problem is not None:
            yield BadRecord(source, *problem)
        if value is not None:
            config[key] = value
            read.append(_relative(file, output))

    final_epochs: list[Any] = []
    for name in RESULT_FILES:
        file = _sibling(path, output, name)
        if file is None:
            continue
        value, problem = _read_sibling(file, path)
        if problem is not None:
            yield BadRecord(source, *problem)
        if value is None:
            continue
        read.append(_relative(file, output))
        for key, number in value.items():
            if key == "epoch":
                final_epochs.append(number)
            else:
                results[key] = number

    if not read:
        return
    if _is_number(bookkeeping.get("total_flos")):
        # The state's running FLOP count is the summary's `total_flos`: one result, not two.
        results.setdefault("total_flos", bookkeeping.pop("total_flos"))
    other_epochs = [e for e in dict.fromkeys(final_epochs) if e != bookkeeping.get("epoch")]

    data["config"] = config
    _results_at_last_step(results, rows, bookkeeping)
    if results:
        data["results"] = results
    if rows:
        data["history"] = list(rows.values())
    if path.parent != output:
        data["checkpoint"] = path.parent.name
    data["files_read"] = read
    if bookkeeping:
        data["trainer_state"] = bookkeeping
    if other_epochs:
        data["results_epoch"] = other_epochs[0] if len(other_epochs) == 1 else other_epochs
    yield Record(source, "$" if state is not None else read[0], HF_TRAINER, data, key_source=_key_source(path, source))


def _results_at_last_step(results: dict[str, Any], rows: dict[int, dict[str, Any]], state: dict[str, Any]) -> None:
    """Move the final numbers (summary entry, `*_results.json`) into the history row of the last step.

    They were computed when training ended (an evaluation of the final model, the runtime), so they
    belong at the run's last global step, not at step 0 where a chart draws them before the first
    epoch. Two kinds stay in `results`: a name the training logs already draw as a series (the
    summary's `train_loss` is the mean over the run, not the last point of the `loss` curve), and
    a name that row already holds with another value (neither may overwrite the other).
    """
    last = state.get("global_step")
    if not _is_number(last) or not math.isfinite(last):
        last = max(rows) if rows else None
    if last is None:
        return
    trained = {k for r in rows.values() for k in r if _subset(k) in ("train", "training")}
    movable = [k for k, v in results.items() if _is_number(v) and k not in trained]
    if not movable:
        return
    row = rows.setdefault(int(last), {"step": int(last)})
    if "epoch" not in row and _is_number(state.get("epoch")) and math.isfinite(state["epoch"]):
        row["epoch"] = int(state["epoch"])  # an int: the points' Aim epoch, not one more `epoch` point
    for key in movable:
        if key not in row or row[key] == results[key]:
            row[key] = results.pop(key)


def _key_source(path: Path, source: str) -> str | None:
    """For a checkpoint read as the run: the output folder's own `trainer_state.json`, as the run key's scope.

    Keyed by the file read (`out/checkpoint-2400/trainer_state.json#out`), a run still training would
    become a second run when `checkpoint-2600` appears, and a third when the final state is saved.
    Keyed by the output folder's state file, whether it exists yet or not, every checkpoint and the
    final `trainer_state.json` name the same run, so a sync rewrites that run in place with the
    longer history. `source` is the file's stable name (relative to the repo or absolute); only its
    `checkpoint-N/` segment is dropped, so a finished folder's key is what it always was.
    """
    if path.parent == _output_folder(path):
        return None
    folder, name = posixpath.split(source)
    if not posixpath.basename(folder).startswith("checkpoint-"):
        return None  # a name that does not end in the checkpoint's folder (a symlink resolved): keep it
    return posixpath.join(posixpath.dirname(folder), name)


def _log_rows(
    log: list[Any], source: str, rows: dict[int, dict[str, Any]], results: dict[str, Any]
) -> Iterator[BadRecord]:
    """Fill `rows` (step -> merged history row) and `results` from log_history; yield bad entries."""
    step = 0
    for index, entry in enumerate(log):
        locator = f"$.log_history[{index}]"
        if not isinstance(entry, dict):
            yield BadRecord(source, locator, f"expected object, got {type_name(entry)}")
            continue
        entry = flatten_row(entry)
        if "step" in entry and entry["step"] is not None:
            value = entry["step"]
            if not _is_number(value) or not math.isfinite(value):
                yield BadRecord(source, locator, f"step is not a number: {value!r}")
                continue
            step = int(value)
        metrics = {k: v for k, v in entry.items() if k not in _STRUCTURAL}
        if _is_summary(metrics):
            results.update(metrics)
            continue
        evaluation = any(_subset(k) not in (None, "train", "training") for k in metrics)
        row = rows.setdefault(step, {"step": step})
        if _is_number(entry.get("epoch")):
            row["epoch"] = entry["epoch"]
        for key, value in metrics.items():
            if not _is_number(value):
                continue  # strings, lists, nulls: no point to draw
            if evaluation or key in PLAIN or _subset(key) is not None:
                row[key] = value
            else:
                row[f"train_{key}"] = value


def _subset(name: str) -> str | None:
    """The subset a metric name's prefix names (`eval_loss` -> `eval`), lowercased, or None."""
    match = _PREFIXED.match(name)
    return match.group(1).lower() if match else None


def _is_summary(metrics: dict[str, Any]) -> bool:
    """The end-of-training entry: `train_runtime` & co, or transformers 4.0's lone `total_flos`."""
    return bool(SUMMARY_KEYS & metrics.keys()) or set(metrics) == {"total_flos"}


def _output_folder(path: Path) -> Path:
    """The output folder a trainer_state.json belongs to: its folder, or a checkpoint's parent."""
    folder = path.parent
    return folder.parent if folder.name.startswith("checkpoint-") else folder


def _newest_checkpoint(output: Path) -> Path | None:
    """The `checkpoint-*` folder holding a trainer_state.json with the highest step (named ones,
    such as `checkpoint-best`, rank below numbered ones)."""
    candidates = [
        entry for entry in listing(output) if entry.name.startswith("checkpoint-") and (entry / STATE).is_file()
    ]
    if not candidates:
        return None

    def rank(entry: Path) -> tuple[int, int, str]:
        match = _CHECKPOINT.match(entry.name)
        return (1, int(match.group(1)), entry.name) if match else (0, 0, entry.name)

    return max(candidates, key=rank)


def _sibling(primary: Path, output: Path, name: str) -> Path | None:
    """A file of the output folder, else (for a checkpoint read as the run) of the checkpoint's."""
    for folder in dict.fromkeys((output, primary.parent)):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_sibling(path: Path, primary: Path) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    """`read_object`, a sibling named by its path from the primary trainer_state.json."""
    name = Path(os.path.relpath(path, primary.parent)).as_posix()
    return read_object(path, name, primary=path == primary)


def _relative(path: Path, output: Path) -> str:
    return Path(os.path.relpath(path, output)).as_posix()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
