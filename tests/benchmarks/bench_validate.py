"""How long `validate` takes on a repo of many runs logged with the plain SDK, and repeating it.

    python tests/benchmarks/bench_validate.py [--runs 10000] [--points 20] [--rules fixtures/rules.toml]

Builds the repo first with two logging processes (the SDK's own cost, printed apart), then times
a dry run (which indexes the new runs, as `aim up` would), a first validate (every run gets its
verdict written) and a second one with the same rules (must write nothing). Threshold rules read
Aim's per-series summary, never the series, so the first pass costs one write batch into each
run's meta container (opening it is most of that), and the second only reads. Target for the
first pass: 100 runs/s.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import tempfile
import time
from pathlib import Path

from aim import Repo, Run

from etl.governance.rules import load_rules
from etl.pipeline import validate

ROOT = Path(__file__).resolve().parents[2]


def build_repo(repo: Path, runs: int, points: int, processes: int = 2) -> None:
    """Runs as training code logs them: a name, hparams, a val accuracy series; closed, not indexed.

    Several training processes log at once, as on a shared machine (and the build takes half as long)."""
    Repo(str(repo), init=True)
    # A fresh process per 250 runs: an SDK process logging thousands of runs grows until the
    # machine kills it (and a Pool whose worker was killed waits for ever).
    tasks = [(repo, range(k, min(k + 250, runs)), points) for k in range(0, runs, 250)]
    with multiprocessing.get_context("spawn").Pool(processes, maxtasksperchild=1) as pool:
        pool.starmap(_log_runs, tasks)


def _log_runs(repo: Path, indices: range, points: int) -> None:
    rng = random.Random(11 + indices.start)
    for i in indices:
        run = Run(
            repo=str(repo), experiment=f"sweep-{i % 7}", system_tracking_interval=None, capture_terminal_logs=False
        )
        run.name = f"resnet-{i}" if i % 10 else f"Resnet_{i}"
        run["hparams"] = {"lr": rng.choice([1e-5, 1e-3, 0.01, 0.05, 0.3]), "epochs": rng.choice([5, 10, 20])}
        for step in range(points):
            run.track(
                min(1.0, 0.5 + step * rng.random() / points), name="accuracy", step=step, context={"subset": "val"}
            )
        run.close()
        del run


def timed(label: str, fn):
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    print(f"{label}: {seconds:.1f} s")
    return result, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--rules", type=Path, default=ROOT / "fixtures" / "rules.toml")
    args = parser.parse_args()
    rules = load_rules(args.rules)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        _, build = timed(
            f"build: {args.runs} runs x {args.points} points with the plain SDK",
            lambda: build_repo(repo, args.runs, args.points),
        )
        dry, dry_s = timed(
            "validate --dry-run (indexes the new runs, writes no run)", lambda: validate(repo, rules, dry_run=True)
        )
        first, first_s = timed("validate, first pass (writes every run)", lambda: validate(repo, rules))
        second, second_s = timed("validate, second pass (same rules: writes nothing)", lambda: validate(repo, rules))

        counts = first.status_counts()
        written = sum(r.state == "written" for r in first.runs)
        unchanged = sum(r.state == "unchanged" for r in second.runs)
        print()
        print(
            f"runs: {len(first.runs)}; PASS {counts['PASS']}, WARN {counts['WARN']}, FAIL {counts['FAIL']}; "
            f"mean score {first.mean_score:.1f}"
        )
        print(
            f"first pass: {written} written, {written / first_s:.0f} runs/s ({first_s / 60:.1f} min); "
            "target >= 100 runs/s"
        )
        print(
            f"second pass: {unchanged} unchanged, {len(second.runs) / second_s:.0f} runs/s, "
            f"{first_s / second_s:.1f}x faster than the first"
        )
        print(f"dry run: {len(dry.runs) / dry_s:.0f} runs/s; building the repo took {build / 60:.1f} min")


if __name__ == "__main__":
    main()
