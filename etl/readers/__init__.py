"""Readers: files on disk to `Record`s, streamed, with every file accounted for.

The format table maps a format name to its reader; `detect_format` picks one per file unless the
caller forces one. Adding a format is a module here and a row in `READERS`.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

from etl.errors import BadRecord, SourceNotFound
from etl.readers.detect import FORMATS, HF_TRAINER, JSON, JSONL, RAY_TUNE, SACRED, STEPS, WANDB, detect_format
from etl.readers.hf_trainer import claims_with_reasons_hf_trainer, read_hf_trainer
from etl.readers.jsondoc import KEYED_AS_CONTEXT, KEYED_AS_RUNS, read_json
from etl.readers.jsonl import read_jsonl
from etl.readers.mapping import Mapping, apply_mapping, load_mapping
from etl.readers.ray_tune import claims_with_reasons_ray_tune, read_ray_tune
from etl.readers.record import Record, SkippedFile
from etl.readers.sacred import claims_with_reasons_sacred, read_sacred
from etl.readers.steps import read_steps
from etl.readers.wandb import claims_with_reasons_wandb, read_wandb

__all__ = [
    "FORMATS",
    "KEYED_AS_CONTEXT",
    "KEYED_AS_RUNS",
    "Mapping",
    "READERS",
    "Record",
    "SkippedFile",
    "SourceFile",
    "find_sources",
    "load_mapping",
    "read_file",
    "source_name",
]

READERS: dict[str, Callable[..., Iterator[Record | BadRecord]]] = {
    JSONL: read_jsonl,
    JSON: read_json,
    STEPS: read_steps,
    RAY_TUNE: read_ray_tune,
    SACRED: read_sacred,
    WANDB: read_wandb,
    HF_TRAINER: read_hf_trainer,
}
# Folder formats read sibling files with their primary one: those are listed as part of the run.
CLAIMS: dict[str, Callable[[Path], list[tuple[Path, str]]]] = {
    RAY_TUNE: claims_with_reasons_ray_tune,
    SACRED: claims_with_reasons_sacred,
    WANDB: claims_with_reasons_wandb,
    HF_TRAINER: claims_with_reasons_hf_trainer,
}

# Folders that hold no experiment records of their own: an Aim repo, VCS and tool caches.
_UNWALKED_DIRS = frozenset(
    {".aim", ".git", ".hg", ".svn", "__pycache__", ".venv", "venv", "node_modules", ".ipynb_checkpoints"}
)


class SourceFile:
    """A file to read, with its stable name and the reader chosen for it."""

    __slots__ = ("path", "source", "format", "reason")

    def __init__(self, path: Path, source: str, format: str, reason: str) -> None:
        self.path = path
        self.source = source
        self.format = format
        self.reason = reason

    def __repr__(self) -> str:
        return f"SourceFile({self.source!r}, {self.format!r})"


def source_name(path: Path, base: Path | None) -> str:
    """Stable name of a file: relative to `base` (the Aim repo's folder) when under it, else absolute.

    Both `migrate experiments/` and `migrate experiments/LOG.jsonl` then name the file the same way,
    and run keys built from it survive a change of working directory.
    """
    resolved = path.resolve()
    name = resolved.as_posix()
    if base is not None:
        with contextlib.suppress(ValueError):  # not under base: the absolute name
            name = resolved.relative_to(base.resolve()).as_posix()
    # A name that is not UTF-8 (bytes Python keeps as lone surrogates) cannot go into the ledger,
    # the report's JSON or an Aim param: its odd bytes are written as `\xff` escapes instead.
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def find_sources(
    paths: list[str | Path], *, base: Path | None = None, format: str = "auto"
) -> tuple[list[SourceFile], list[SkippedFile]]:
    """Walk the given files and folders; return the files to read, in import order, and the skipped ones.

    Order matters for duplicates (the first place a run is seen is the one imported): JSONL logs
    first, then documents from the shallowest folders, so a log line wins over its `.json` copy and
    `results/x.json` over `backups/2026-01-04/results/x.json`.
    """
    files: list[Path] = []
    skipped: list[SkippedFile] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(_walk(path, base, skipped))
        elif path.is_file():
            files.append(path)
        else:
            raise SourceNotFound(str(raw))
    chosen: dict[str, SourceFile] = {}
    for path in files:
        name = source_name(path, base)
        if name in chosen:
            continue
        if format == "auto":
            fmt, reason = detect_format(path)
        else:
            fmt, reason = format, "--format"
        if fmt is None:
            skipped.append(SkippedFile(name, reason))
        else:
            chosen[name] = SourceFile(path, name, fmt, reason)
    claimed: dict[str, str] = {}
    for primary in chosen.values():
        for path, reason in CLAIMS.get(primary.format, lambda _: [])(primary.path):
            claimed[source_name(path, base)] = f"part of {primary.source} ({primary.format} run): {reason}"
    skipped = [s for s in skipped if s.source not in claimed]
    skipped += [SkippedFile(name, reason) for name, reason in claimed.items()]
    ordered = sorted(
        (f for f in chosen.values() if f.source not in claimed),
        key=lambda f: (f.format != JSONL, f.source.count("/"), f.source),
    )
    ordered, copies = _drop_copies(ordered)
    return ordered, skipped + copies


def _drop_copies(files: list[SourceFile]) -> tuple[list[SourceFile], list[SkippedFile]]:
    """Per-step logs with the same bytes as one before them: the first is read, the others listed.

    A tool may write its log twice, line by line alike (MMEngine writes `vis_data/scalars.json` and
    `vis_data/<timestamp>.json`); read twice, one training would become two runs. Only files of one
    size are hashed, so a tree of logs costs a hash or two, not one per file.
    """
    kept: list[SourceFile] = []
    copies: list[SkippedFile] = []
    by_size: dict[int, list[SourceFile]] = {}
    digests: dict[str, str] = {}

    def digest(file: SourceFile) -> str:
        if file.source not in digests:
            digests[file.source] = _digest(file.path)
        return digests[file.source]

    for file in files:
        try:
            size = file.path.stat().st_size if file.format == STEPS else None
        except OSError:
            size = None
        same_size = by_size.setdefault(size, []) if size is not None else []
        original = next((first for first in same_size if digest(first) == digest(file)), None)
        if original is not None:
            reason = f"duplicate of {original.source} (the same bytes: one log written twice)"
            copies.append(SkippedFile(file.source, reason))
            continue
        same_size.append(file)
        kept.append(file)
    return kept, copies


def _digest(path: Path) -> str:
    """The file's content hash; an unreadable file gets one of its own (its reader reports it)."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return f"unreadable {path}"
    return digest.hexdigest()


def _walk(root: Path, base: Path | None, skipped: list[SkippedFile]) -> Iterator[Path]:
    for path in sorted(root.iterdir()):
        if path.is_dir():
            if path.name in _UNWALKED_DIRS:
                skipped.append(SkippedFile(source_name(path, base) + "/", "folder not walked (Aim repo, VCS or cache)"))
                continue
            yield from _walk(path, base, skipped)
        elif path.is_file():
            yield path


def read_file(
    source: SourceFile,
    *,
    keyed: str = KEYED_AS_RUNS,
    start_offset: int = 0,
    start_line: int = 0,
    mapping: Mapping | None = None,
) -> Iterator[Record | BadRecord]:
    """Stream a file's records; JSONL can start at a sync cursor (a byte offset and the lines before it).

    With a mapping, every record is rewritten by it, and a JSON document's records are taken
    from the mapping's `records` path when it names one.
    """
    if source.format == JSON and mapping is not None and mapping.records:
        items = _records_at(source, mapping.records)
    elif source.format == JSON:
        items = read_json(source.path, source.source, keyed=keyed)
    else:
        items = READERS[source.format](source.path, source.source, start_offset=start_offset, start_line=start_line)
    if mapping is None or not mapping.rewrites:
        return items  # a `[fields]`-only mapping guides the interpreter; it rewrites nothing
    return (apply_mapping(i, mapping) if isinstance(i, Record) else i for i in items)


def _records_at(source: SourceFile, path: str) -> Iterator[Record | BadRecord]:
    from etl.readers.jsondoc import split_document
    from etl.readers.jsontext import JSONError, loads
    from etl.readers.mapping import is_missing, lookup

    try:
        document = loads(source.path.read_bytes())
    except JSONError as exc:
        yield BadRecord(source.source, f"line {exc.line}" if exc.line else "$", str(exc))
        return
    found = lookup(document, path)
    if is_missing(found) or not isinstance(found, list):
        yield BadRecord(source.source, "$", f"the mapping's records path {path!r} is not a list here")
        return
    for item in split_document(found, source.source):
        if isinstance(item, Record):
            item = Record(item.source, item.locator.replace("$", f"$.{path}", 1), item.format, item.data)
        yield item
