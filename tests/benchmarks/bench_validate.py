"""How long `validate` takes on a repo of many runs, closed but not indexed, and repeating it.

    python tests/benchmarks/bench_validate.py [--runs 10000] [--points 20] [--rules fixtures/rules.toml]
                                              [--build migrate|sdk] [--profile FILE.prof]

Builds the repo first (printed apart), then times a dry run (which indexes the new runs, as
`aim up` would), a first validate (every run gets its verdict written) and a second one with the
same rules (must write nothing). Threshold rules read Aim's per-series summary, never the series,
so the first pass costs one write batch into each run's meta container (opening it is most of
that), and the second only reads. Target for the first pass: 100 runs/s.

The default build imports an EXPERIMENT_LOG of the same runs with our own bulk writer (the SDK's
bytes, ~20x faster), then takes them out of the index again, so the runs are what training code
leaves behind: closed, not indexed. `--build sdk` logs them with the plain SDK in worker
processes instead (slow: ~13 runs/s); a worker that dies stops the build with an error rather
than leaving it waiting for ever, as a `multiprocessing.Pool` did.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import cProfile
import json
import multiprocessing
import random
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from etl.governance.rules import load_rules
from etl.pipeline import migrate, validate

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = 7
LEARNING_RATES = (1e-5, 1e-3, 0.01, 0.05, 0.3)
EPOCHS = (5, 10, 20)


def run_name(i: int) -> str:
    """One run in ten breaks the naming rule, so verdicts are a mix of PASS, WARN and FAIL."""
    return f"resnet-{i}" if i % 10 else f"Resnet_{i}"


def accuracy(rng: random.Random, points: int) -> list[float]:
    return [min(1.0, 0.5 + step * rng.random() / points) for step in range(points)]


def build_repo(repo: Path, runs: int, points: int, how: str = "migrate") -> None:
    """Runs as training code leaves them: a name, hparams, a val accuracy series; closed, not indexed.

    Built in a child process, so the peak memory printed at the end is validate's alone."""
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
        pool.submit(_build_with_sdk if how == "sdk" else _build_with_migrate, repo, runs, points).result()


def _build_with_migrate(repo: Path, runs: int, points: int) -> None:
    log = repo.parent / f"{repo.name}.EXPERIMENT_LOG.jsonl"
    with log.open("w") as fh:
        for i in range(runs):
            rng = random.Random(11 + i)
            record = {
                "experiment_id": f"run-{i:06d}",
                "timestamp": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00Z",
                "experiment_name": f"sweep-{i % EXPERIMENTS}",
                "name": run_name(i),
                "config": {"lr": rng.choice(LEARNING_RATES), "epochs": rng.choice(EPOCHS)},
                "history": {"val_accuracy": accuracy(rng, points)},  # `accuracy` with {"subset": "val"}
            }
            fh.write(json.dumps(record) + "\n")
    report = migrate([log], repo, writer="bulk")
    assert report.summary()["runs_written"] == runs, report.summary()
    _unindex(repo)


def _unindex(repo: Path) -> None:
    """Take every run out of the index, as if it had been logged and closed but never indexed."""
    from aim.storage.encoding import encode_path

    from etl.writers import aim_storage

    chunks = repo / ".aim" / "meta" / "chunks"
    hashes = [entry.name for entry in chunks.iterdir()]
    index = aim_storage.open_index(repo / ".aim")
    try:
        batch = aim_storage.shadow_batch(hashes)
        for run_hash in hashes:
            batch.delete(encode_path(("index_cache", run_hash)))
        index.db.write(batch)
    finally:
        index.close()


def _build_with_sdk(repo: Path, runs: int, points: int, processes: int = 2) -> None:
    """Several training processes log at once, as on a shared machine (and the build takes half as long)."""
    from aim import Repo

    Repo(str(repo), init=True)
    # A fresh process per 250 runs: an SDK process logging thousands of runs grows until the
    # machine kills it. A dead worker breaks the executor (BrokenProcessPool): the build fails loudly.
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=spawn, max_tasks_per_child=1) as pool:
        tasks = [pool.submit(_log_runs, repo, range(k, min(k + 250, runs)), points) for k in range(0, runs, 250)]
        for task in concurrent.futures.as_completed(tasks):
            task.result()


def _log_runs(repo: Path, indices: range, points: int) -> None:
    from aim import Run

    for i in indices:
        rng = random.Random(11 + i)
        run = Run(
            repo=str(repo),
            experiment=f"sweep-{i % EXPERIMENTS}",
            system_tracking_interval=None,
            capture_terminal_logs=False,
        )
        run.name = run_name(i)
        run["hparams"] = {"lr": rng.choice(LEARNING_RATES), "epochs": rng.choice(EPOCHS)}
        for step, value in enumerate(accuracy(rng, points)):
            run.track(value, name="accuracy", step=step, context={"subset": "val"})
        run.close()
        del run


def timed(label: str, fn):
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    print(f"{label}: {seconds:.1f} s   (load: {_load()})", flush=True)
    return result, seconds


def _load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.split("load average:")[-1].strip()


def _cpu_seconds() -> float:
    """CPU time of this process, every thread (RocksDB's included): runs/s alone depends on the load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _profiled(path: Path | None, fn):
    if path is None:
        return fn
    profile = cProfile.Profile()

    def run():
        try:
            return profile.runcall(fn)
        finally:
            profile.dump_stats(path)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--rules", type=Path, default=ROOT / "fixtures" / "rules.toml")
    parser.add_argument("--build", choices=("migrate", "sdk"), default="migrate")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the first pass here")
    parser.add_argument(
        "--keep-build",
        type=Path,
        metavar="DIR",
        help="keep the built repo in DIR and reuse it next time (same --runs, --points, --build); "
        "every measurement still works on a fresh copy",
    )
    args = parser.parse_args()
    rules = load_rules(args.rules)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        built = args.keep_build / f"{args.build}-{args.runs}x{args.points}" if args.keep_build else None
        if built is not None and built.is_dir():
            build = 0.0
            print(f"build: reusing {built}")
        else:
            target = built.with_name(built.name + ".partial") if built else repo
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            _, build = timed(
                f"build: {args.runs} runs x {args.points} points ({args.build}), closed, not indexed",
                lambda: build_repo(target, args.runs, args.points, args.build),
            )
            if built is not None:
                target.rename(built)
        if built is not None:
            shutil.copytree(built, repo, symlinks=True)
        dry, dry_s = timed(
            "validate --dry-run (indexes the new runs, writes no run)", lambda: validate(repo, rules, dry_run=True)
        )
        cpu_before = _cpu_seconds()
        first, first_s = timed(
            "validate, first pass (writes every run)", _profiled(args.profile, lambda: validate(repo, rules))
        )
        first_cpu = _cpu_seconds() - cpu_before
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
            f"{1000 * first_cpu / max(1, written):.1f} ms of CPU a run (all threads); target >= 100 runs/s"
        )
        print(
            f"second pass: {unchanged} unchanged, {len(second.runs) / second_s:.0f} runs/s, "
            f"{first_s / second_s:.1f}x faster than the first"
        )
        print(f"dry run: {len(dry.runs) / dry_s:.0f} runs/s; building the repo took {build / 60:.1f} min")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of the validate passes (this process; the build ran in another): {peak:.0f} MB")


if __name__ == "__main__":
    main()
