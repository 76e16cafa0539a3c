"""Run hashes derived from run keys. Pure, so the planner can name runs without importing Aim."""

from __future__ import annotations

import hashlib
from pathlib import Path


def run_hash_for(run_key: str) -> str:
    """Aim run hashes are 24 hex chars; deriving ours from the run key makes re-imports land on the same run."""
    return hashlib.sha256(run_key.encode("utf-8")).hexdigest()[:24]


def repo_root(path: str | Path) -> Path:
    """The folder that holds `.aim`, as Aim's CLI reads `--repo` (`demo` and `demo/.aim` are one repo)."""
    path = Path(path)
    return path.parent if path.name == ".aim" else path
