"""Which reader takes a file, decided from its name and, when that is not enough, its first bytes."""

from __future__ import annotations

from pathlib import Path

JSONL = "jsonl"
JSON = "json"
STEPS = "steps"
RAY_TUNE = "ray-tune"
SACRED = "sacred"
WANDB = "wandb"
HF_TRAINER = "hf-trainer"
FORMATS = (JSONL, JSON, STEPS, RAY_TUNE, SACRED, WANDB, HF_TRAINER)

# Files we never open, with the reason the report gives. Unpickling a file you were pointed at
# runs arbitrary code, so pickles are refused by name, not sniffed.
_NOT_OURS = {
    ".pkl": "pickle file: never unpickled (unpickling runs code from the file)",
    ".pickle": "pickle file: never unpickled (unpickling runs code from the file)",
    ".pt": "model checkpoint, not an experiment record",
    ".pth": "model checkpoint, not an experiment record",
    ".ckpt": "model checkpoint, not an experiment record",
    ".safetensors": "model weights, not an experiment record",
    ".bin": "binary file, not an experiment record",
    ".csv": "CSV is not read (results in CSV usually duplicate a JSON file beside them)",
    ".wandb": "binary W&B history is not read",
}


def detect_format(path: Path) -> tuple[str | None, str]:
    """(format, reason): the format name, or None and why the file is skipped."""
    name = path.name.lower()
    if "tfevents" in name:
        return None, "TensorBoard event file: import it with `aim convert tensorboard`"
    from etl.readers.ray_tune import experiment_file_reason, is_ray_tune

    if is_ray_tune(path):
        return RAY_TUNE, "Ray Tune trial: result.json beside params.json"
    from etl.readers.hf_trainer import hf_checkpoint_copy_reason, is_hf_trainer

    copy_reason = hf_checkpoint_copy_reason(path)
    if copy_reason:
        return None, copy_reason
    if is_hf_trainer(path):
        return HF_TRAINER, "Hugging Face Trainer state"
    from etl.readers.sacred import is_sacred
    from etl.readers.wandb import is_wandb

    if is_sacred(path):
        return SACRED, "Sacred FileStorageObserver run"
    if is_wandb(path):
        return WANDB, "W&B run summary"
    ray_reason = experiment_file_reason(path)
    if ray_reason:
        return None, ray_reason
    suffix = path.suffix.lower()
    if suffix in _NOT_OURS:
        return None, _NOT_OURS[suffix]
    lines = suffix in (".jsonl", ".ndjson") or (suffix == ".json" and _looks_like_lines(path))
    if lines:
        from etl.readers.steps import is_steps_jsonl

        if is_steps_jsonl(path):
            return STEPS, "per-step training log: one run, each line a point"
        return JSONL, "by extension" if suffix != ".json" else "several JSON values, one per line"
    if suffix == ".json":
        return JSON, "by extension"
    return None, f"not a JSON or JSONL file ({suffix or 'no extension'})"


def _looks_like_lines(path: Path) -> bool:
    """A `.json` file whose first line is a complete object and which has a second one is JSONL in disguise."""
    from etl.readers.jsontext import JSONError, loads

    with path.open("rb") as fh:
        first = fh.readline(1 << 20).strip()
        second = fh.readline(1 << 20).strip()
    if not (first.startswith(b"{") and first.endswith(b"}") and second.startswith(b"{")):
        return False
    try:
        return isinstance(loads(first), dict)
    except JSONError:
        return False
