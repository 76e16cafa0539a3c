"""Shared fixtures: the shared corpus (skipped, with the reason, when absent), real Aim repos in tmp_path."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from etl.cli import cli

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
TEST_FIXTURES = Path(__file__).resolve().parent / "fixtures"


def corpus_dir() -> Path:
    return Path(os.environ.get("AIM_ETL_CORPUS", ROOT.parent / "shared" / "corpus"))


@pytest.fixture
def corpus() -> Path:
    path = corpus_dir()
    if not path.is_dir():
        pytest.skip(f"shared corpus not found at {path} (set AIM_ETL_CORPUS to its folder)")
    return path


@pytest.fixture(scope="session")
def migrated_corpus(tmp_path_factory) -> tuple[Path, dict]:
    """The whole corpus migrated once per session: (repo, migrate's JSON report).

    Migrating it takes a good share of the suite's time, so the tests that only read the result
    (verify, export, the sync that must write nothing) share one repo. None may change its runs.
    """
    import json

    path = corpus_dir()
    if not path.is_dir():
        pytest.skip(f"shared corpus not found at {path} (set AIM_ETL_CORPUS to its folder)")
    folder = tmp_path_factory.mktemp("migrated-corpus")
    repo, report = folder / "repo", folder / "migrate.json"
    result = run_cli("migrate", path, "--repo", repo, "--report", report, "-q")
    assert result.exit_code == 3, result.output  # the truncated decksage file, and only that
    return repo, json.loads(report.read_text())


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return tmp_path / "repo"


def run_cli(*args: str | Path):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


def aim_runs(repo: Path) -> dict:
    """name -> run (read-only), read back with Aim's own SDK through a fresh Repo."""
    from aim import Repo

    # A new Repo each time: `Repo.from_path` caches one per path, which keeps an old view of the index.
    return {run.hash: run for run in Repo(str(repo)).iter_runs()}


def series(run) -> dict:
    """(name, context items) -> list of (step, value, epoch, time), sorted by step."""
    out = {}
    for metric in run.metrics():
        steps, (values, epochs, times) = metric.data.items_list()
        key = (metric.name, tuple(sorted(metric.context.to_dict().items())))
        out[key] = sorted(zip(steps, values, epochs, times, strict=True))
    return out


def same_number(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b or math.isclose(a, b, rel_tol=1e-12)


def numbers(value) -> list[float]:
    """Every number in a JSON value (bools are not numbers), for "nothing was lost" checks."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers(v)]
    if isinstance(value, list | tuple):
        return [n for v in value for n in numbers(v)]
    return []
