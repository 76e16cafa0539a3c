"""Which reader takes a file, decided from its name and, when that is not enough, its content.

A file's name decides what it never is (a pickle, a checkpoint, code or a document) and which
folder format it belongs to; its content decides the rest. A blank file is skipped as empty (a
writer may fill it later; it is not broken). A `.json`/`.jsonl` file or one whose content is JSON
(a name with no extension, such as Chainer's `result/log`) is a per-step log when its entries have
a step log's shape (`etl.readers.steps.is_steps_rows`), else JSON lines or a JSON document.
"""

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
    ".ipynb": "Jupyter notebook, not an experiment record",
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
    if _is_empty(path):
        return None, "empty file"
    if suffix in _NOT_OURS:
        return None, _NOT_OURS[suffix]
    if suffix in (".jsonl", ".ndjson"):
        return _lines_format(path, "by extension")
    if suffix == ".json":
        if _looks_like_lines(path):
            return _lines_format(path, "several JSON values, one per line")
        if _first_byte(path) == b"[" and _is_steps_array(path):
            return STEPS, _STEPS_ARRAY
        return JSON, "by extension"
    if suffix in _NOT_JSON_BY_NAME:
        return None, f"not a JSON or JSONL file ({suffix})"
    return _by_content(path, suffix)


_STEPS_LINES = "per-step training log: its lines are the points of a run (one run per training in it)"
_STEPS_ARRAY = "per-step training log (a JSON array): its entries are the points of a run"
# Code, configuration and documents: text formats that are not experiment records even when a
# line of them parses as JSON. Files with other names are judged by their content.
_NOT_JSON_BY_NAME = frozenset(
    {".md", ".markdown", ".rst", ".py", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".sh", ".html", ".htm", ".xml"}
)
# Bytes looked at to tell JSON from text and binary, and the largest document parsed to be sure.
_SNIFF_BYTES = 1024
_PARSE_LIMIT = 64 * 1024 * 1024
_EMPTY_CHECK_LIMIT = 64 * 1024


def _lines_format(path: Path, reason: str) -> tuple[str, str]:
    from etl.readers.steps import is_steps_jsonl

    if is_steps_jsonl(path):
        return STEPS, _STEPS_LINES
    return JSONL, reason


def _is_empty(path: Path) -> bool:
    """No bytes, or only whitespace: nothing to read yet, which is not a broken file.

    Only small files are read to see whether they are blank; a large one has content.
    """
    try:
        size = path.stat().st_size
        if size == 0:
            return True
        if size > _EMPTY_CHECK_LIMIT:
            return False
        return not path.read_bytes().removeprefix(b"\xef\xbb\xbf").strip()
    except OSError:
        return False


def _first_byte(path: Path) -> bytes:
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    return head.removeprefix(b"\xef\xbb\xbf").lstrip()[:1]


def _by_content(path: Path, suffix: str) -> tuple[str | None, str]:
    """A file with no extension, or one no format claims, is JSON when it reads as JSON: its first
    non-blank byte opens an object or a list and it parses (Chainer's `LogReport` writes `result/log`,
    a JSON array, with no extension). Only the first KB is looked at to rule out binary and text,
    so a large binary file is never read.
    """
    shown = suffix or "no extension"
    try:
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    if b"\x00" in head:
        return None, f"not a JSON or JSONL file ({shown}; binary content)"
    start = head.removeprefix(b"\xef\xbb\xbf").lstrip()[:1]
    if start not in (b"{", b"["):
        return None, f"not a JSON or JSONL file ({shown})"
    if start == b"{" and _looks_like_lines(path):
        return _lines_format(path, f"JSON lines, by content ({shown})")
    from etl.readers.jsontext import JSONError, loads

    try:
        if path.stat().st_size > _PARSE_LIMIT:
            return JSON, f"JSON by content ({shown}; too large to parse before reading)"
        document = loads(path.read_bytes())
    except JSONError as exc:
        return None, f"not a JSON or JSONL file ({shown}; starts like JSON but does not parse: {exc})"
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    if isinstance(document, list) and _steps_document(document):
        return STEPS, _STEPS_ARRAY
    if not isinstance(document, dict | list):
        return None, f"not a JSON or JSONL file ({shown}; a JSON {type(document).__name__}, not a record)"
    return JSON, f"JSON by content ({shown})"


def _is_steps_array(path: Path) -> bool:
    """A `.json` file holding one array of per-step entries (a `LogReport` saved with an extension)."""
    from etl.readers.jsontext import JSONError, loads

    try:
        if path.stat().st_size > _PARSE_LIMIT:
            return False
        document = loads(path.read_bytes())
    except (JSONError, OSError):
        return False
    return isinstance(document, list) and _steps_document(document)


def _steps_document(document: list) -> bool:
    from etl.readers.steps import is_steps_rows

    return is_steps_rows(document[:20])


def _looks_like_lines(path: Path) -> bool:
    """A `.json` file whose first line is a complete object and which has a second one is JSONL in disguise."""
    from etl.readers.jsontext import JSONError, loads

    with path.open("rb") as fh:
        first = fh.readline(1 << 20).strip().removeprefix(b"\xef\xbb\xbf")
        second = fh.readline(1 << 20).strip()
    if not (first.startswith(b"{") and first.endswith(b"}") and second.startswith(b"{")):
        return False
    try:
        return isinstance(loads(first), dict)
    except JSONError:
        return False
