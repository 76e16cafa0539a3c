"""The writers compared: SDK, bulk with 1 and N workers, and RAW (what Aim's format allows from Python).

    python tests/benchmarks/bench_writers.py [--scale 0.1] [--workers N] [--skip-e2e]

Three generated logs: small (1,500 runs x 63 points), medium (300 x 803), large (4 x 80,003);
`--scale` shrinks the run counts (small, medium) and the series length (large). Each measurement
runs in a process of its own, so its peak RSS is its own; the runs are generated off the clock, a
chunk at a time. RAW puts the very keys the bulk writer would write, one by one, into two fresh
per-run containers (opened as Aim opens them, one batch each, one process), timing only the
opening, writing and closing: the floor for a writer of this format that puts its keys from Python.
End to end, `aim-etl migrate` is compared with a naive script of the public SDK (`aim.Run`, then
`run.track` per point) at medium and large sizes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIZES = {"small": (1500, 15), "medium": (300, 200), "large": (4, 20000)}  # runs, points per history series
HISTORY = ("train_loss", "val_loss", "val_acc", "lr")  # 4 series + 3 results: 63, 803, 80,003 points


def shape(size: str, scale: float) -> tuple[int, int]:
    runs, length = SIZES[size]
    if size == "large":
        return runs, max(1, int(length * scale))
    return max(1, int(runs * scale)), length


def records(runs: int, length: int):
    rng = random.Random(7)
    for i in range(runs):
        yield {
            "experiment_id": f"exp_{i:06d}",
            "timestamp": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00Z",
            "experiment_name": f"sweep-{i % 5}",
            "config": {"dim": rng.choice([64, 128]), "p": rng.random(), "lr": 0.01, "epochs": length},
            "results": {"p10": rng.random(), "ndcg": rng.random(), "mrr": rng.random()},
            "history": {name: [round(rng.random(), 6) for _ in range(length)] for name in HISTORY},
            "tags": ["bench"],
        }


def specs(runs: int, length: int):
    """RunSpecs as the mapper makes them, without reading a file (the writers are what is timed)."""
    from etl.mapper import MetricSeries, RunSpec
    from etl.writers.naming import run_hash_for

    created = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    t0 = created.timestamp()
    for record in records(runs, length):
        key = record["experiment_id"]
        series = [
            MetricSeries(
                name,
                {"subset": name.split("_")[0]},
                tuple(range(length)),
                (None,) * length,
                tuple(values),
                tuple(t0 + s for s in range(length)),
            )
            for name, values in record["history"].items()
        ]
        series += [MetricSeries(n, {}, (0,), (None,), (v,), (t0,)) for n, v in record["results"].items()]
        yield RunSpec(
            run_key=key,
            run_hash=run_hash_for(key),
            record_id=key,
            occurrence=1,
            content_hash=key,
            source="bench.jsonl",
            locator=key,
            experiment=record["experiment_name"],
            name=key,
            created_at=created,
            end_time=t0 + length,
            hparams=record["config"],
            tags=tuple(record["tags"]),
            meta={},
            provenance={"run_key": key, "content_hash": key},
            series=tuple(series),
        )


def chunks(items, size: int = 500):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def measure_one(kind: str, size: str, scale: float, workers: int, repo: Path) -> dict:
    """One writer over one log, in this process: seconds, runs, points, peak RSS, repo size."""
    runs, length = shape(size, scale)
    points = 0
    if kind == "raw":
        from etl.writers import aim_storage

        seconds = 0.0
        for spec in specs(runs, length):
            seqs = aim_storage.batch_items(aim_storage.seqs_batch(spec.run_hash, spec.series, 0.0))
            meta = aim_storage.meta_items(spec.run_hash, [("hparams", spec.hparams)], spec.series, 1.0)
            started = time.perf_counter()
            aim_storage.write_container(repo / ".aim" / "seqs" / "chunks" / spec.run_hash, seqs)
            aim_storage.write_container(repo / ".aim" / "meta" / "chunks" / spec.run_hash, meta)
            seconds += time.perf_counter() - started
            points += spec.points
    else:
        if kind == "sdk":
            from etl.writers.sdk import SdkWriter

            writer = SdkWriter(repo)
        else:
            from etl.writers.bulk import BulkWriter

            writer = BulkWriter(repo, workers=1 if kind == "bulk1" else workers)
        seconds = 0.0
        for chunk in chunks(specs(runs, length)):  # generated off the clock, as RAW's items are built
            started = time.perf_counter()
            points += writer.write(chunk).points
            seconds += time.perf_counter() - started
    size_bytes = sum(f.stat().st_size for f in (repo / ".aim").rglob("*") if f.is_file())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "runs": runs, "points": points, "rss_mb": rss, "repo_mb": size_bytes / 1e6}


NAIVE = """
import json, sys
from aim import Run
for line in open(sys.argv[1]):
    r = json.loads(line)
    run = Run(repo=sys.argv[2], experiment=r["experiment_name"], system_tracking_interval=None,
              capture_terminal_logs=False, log_system_params=False)
    run["hparams"] = r["config"]
    for name, values in r["history"].items():
        for step, value in enumerate(values):
            run.track(value, name=name, step=step, context={"subset": name.split("_")[0]})
    for name, value in r["results"].items():
        run.track(value, name=name, step=0)
    run.close()
"""


def end_to_end(size: str, scale: float, tmp: Path) -> dict:
    runs, length = shape(size, scale)
    log = tmp / f"{size}.jsonl"
    with log.open("w") as fh:
        for record in records(runs, length):
            fh.write(json.dumps(record) + "\n")
    out = {}
    for name, argv in (
        ("migrate", [sys.executable, "-m", "etl", "migrate", str(log), "--repo", str(tmp / f"e2e-{size}"), "-q"]),
        ("naive", [sys.executable, "-c", NAIVE, str(log), str(tmp / f"naive-{size}")]),
    ):
        started = time.perf_counter()
        subprocess.run(argv, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        out[name] = time.perf_counter() - started
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--writers", default="sdk,bulk1,bulkN,raw", help="a subset to measure again")
    parser.add_argument("--sizes", default="small,medium,large")
    parser.add_argument("--one", nargs=3, metavar=("KIND", "SIZE", "REPO"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    from etl.writers.bulk import default_workers

    workers = args.workers or default_workers()
    if args.one:
        kind, size, repo = args.one
        print(json.dumps(measure_one(kind, size, args.scale, workers, Path(repo))))
        return
    kinds = args.writers.split(",")
    print(f"aim-etl writers, scale {args.scale:g}, bulkN = {workers} workers, {os.cpu_count()} cores")
    print(f"{'log':<28} {'writer':<6} {'runs/s':>8} {'points/s':>10} {'RSS MB':>7} {'repo MB':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in args.sizes.split(","):
            runs, length = shape(size, args.scale)
            got = {}
            for kind in kinds:
                repo = tmp / f"{size}-{kind}"
                cmd = [
                    sys.executable,
                    __file__,
                    "--scale",
                    str(args.scale),
                    "--workers",
                    str(workers),
                    "--one",
                    kind,
                    size,
                    str(repo),
                ]
                done = subprocess.run(
                    cmd,
                    check=True,
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                )
                got[kind] = r = json.loads(done.stdout.strip().splitlines()[-1])
                label = f"{size} ({runs} x {4 * length + 3})"
                print(
                    f"{label:<28} {kind:<6} {r['runs'] / r['seconds']:>8.1f} {r['points'] / r['seconds']:>10.0f} "
                    f"{r['rss_mb']:>7.0f} {r['repo_mb']:>8.1f}",
                    flush=True,
                )
            rate = {k: v["points"] / v["seconds"] for k, v in got.items()}
            ratios = [("bulk1/raw", "bulk1", "raw"), ("bulkN/bulk1", "bulkN", "bulk1"), ("bulk1/sdk", "bulk1", "sdk")]
            ratios = [r for r in ratios if r[1] in rate and r[2] in rate]
            print(
                f"  {size}: " + ", ".join(f"{label} {rate[a] / rate[b]:.2f}" for label, a, b in ratios),
                flush=True,
            )
        if not args.skip_e2e:
            for size in ("medium", "large"):
                e2e = end_to_end(size, args.scale, tmp)
                print(
                    f"  end to end, {size}: aim-etl migrate {e2e['migrate']:.1f}s, naive per-point SDK script "
                    f"{e2e['naive']:.1f}s: {e2e['naive'] / e2e['migrate']:.1f}x",
                    flush=True,
                )


if __name__ == "__main__":
    main()
