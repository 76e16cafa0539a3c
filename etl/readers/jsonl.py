"""EXPERIMENT_LOG-style JSONL: one experiment per line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from etl.errors import BadRecord
from etl.readers.jsontext import JSONError, loads, type_name
from etl.readers.record import Record

_BOM = b"\xef\xbb\xbf"


def read_jsonl(path: Path, source: str, *, start_offset: int = 0, start_line: int = 0) -> Iterator[Record | BadRecord]:
    """Stream records line by line, in binary, so byte offsets are exact for sync cursors.

    Blank lines are not records. A line that does not parse is yielded as a `BadRecord` and the
    file goes on; when it is the last line and has no newline, it is marked `torn`: a writer
    (a training job appending to its log) may be in the middle of it.
    """
    with path.open("rb") as fh:
        fh.seek(start_offset)
        offset, lineno = start_offset, start_line
        for raw in fh:
            lineno += 1
            offset += len(raw)
            complete = raw.endswith(b"\n")
            text = raw.strip()
            if lineno == 1:
                text = text.removeprefix(_BOM)
            if not text:
                continue
            locator = f"line {lineno}"
            try:
                value = loads(text)
            except JSONError as exc:
                if complete:
                    yield BadRecord(source, locator, str(exc), end_offset=offset)
                else:
                    reason = f"torn last line (no newline at the end; a writer may still be writing it): {exc}"
                    yield BadRecord(source, locator, reason, torn=True)
                continue
            if not isinstance(value, dict):
                yield BadRecord(source, locator, f"expected object, got {type_name(value)}", end_offset=offset)
                continue
            yield Record(source, locator, "jsonl", value, end_offset=offset)
