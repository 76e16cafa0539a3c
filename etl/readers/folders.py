"""Listing a run folder's files for the folder formats (Trainer output, W&B run, Ray trial).

A folder that cannot be listed (gone, permissions) lists as empty: the primary file's own reader
reports what it could not read, and a sibling nobody could list is not worth failing a run over.
"""

from __future__ import annotations

from pathlib import Path


def listing(folder: Path) -> list[Path]:
    """The folder's entries, sorted so claims and reports come out the same every time."""
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def files_under(folder: Path) -> list[Path]:
    """Every file below the folder, sorted."""
    try:
        return sorted(p for p in folder.rglob("*") if p.is_file())
    except OSError:
        return []
