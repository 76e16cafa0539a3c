"""Points per second into an `aim server` (aim://) against the local SDK writer, in one run.

    python tests/benchmarks/bench_remote.py [--runs 20] [--epochs 200] [--importers 2]

Writes the same log (RUNS runs of EPOCHS points each, plus two result points) three ways, each
into a fresh target, timing `etl.migrate` in-process:
1. a local repo with the SDK writer (the baseline the remote path is compared to);
2. an `aim server` on loopback, one importer;
3. the same server, IMPORTERS importer processes at once, each with its own log and ledger
   (what "one Aim for the whole team" looks like): their total points/s.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
AIM_ETL = [sys.executable, "-m", "etl"]


def write_log(path: Path, runs: int, epochs: int, prefix: str = "") -> int:
    with path.open("w") as fh:
        for i in range(runs):
            record = {
                "experiment_id": f"{prefix}exp_{i:05d}",
                "timestamp": f"2025-05-{1 + i % 28:02d}T10:00:00Z",
                "config": {"lr": 0.01, "dim": 64},
                "results": {"p10": i / 1000, "ndcg": 0.5},
                "history": {"train_loss": [3 / (e + 1) for e in range(epochs)]},
            }
            fh.write(json.dumps(record) + "\n")
    return runs * (epochs + 2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(repo: Path) -> tuple[subprocess.Popen, str]:
    from aim import Repo

    repo.mkdir(parents=True)
    Repo(str(repo), init=True)
    port = free_port()
    aim = Path(sys.executable).with_name("aim")
    cmd = [str(aim), "server", "--repo", str(repo), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(150):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"aim://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    raise SystemExit("aim server did not start")


def migrate_local_sdk(log: Path, repo: Path) -> float:
    from etl import pipeline

    options = {"ledger": repo.parent / "local-ledger.sqlite"}
    # Once a `writer=` option exists (the bulk writer), the baseline must still be the SDK writer.
    if "writer" in inspect.signature(pipeline._import).parameters:
        options["writer"] = "sdk"
    started = time.perf_counter()
    report = pipeline.migrate([log], repo, **options)
    assert report.runs_written, report.to_text()
    return time.perf_counter() - started


def migrate_remote(log: Path, address: str, ledger: Path) -> float:
    from etl import pipeline

    started = time.perf_counter()
    report = pipeline.migrate([log], address, ledger=ledger)
    assert report.runs_written, report.to_text()
    return time.perf_counter() - started


def concurrent(logs: list[Path], address: str, tmp: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [*AIM_ETL, "migrate", str(log), "--repo", address, "--ledger", str(tmp / f"{k}.db"), "-q"],
            env=env,
        )
        for k, log in enumerate(logs)
    ]
    if any(p.wait() != 0 for p in procs):
        raise SystemExit("a concurrent importer failed")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--importers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        log = tmp / "log.jsonl"
        points = write_log(log, args.runs, args.epochs)
        local = migrate_local_sdk(log, tmp / "local")
        server, address = start_server(tmp / "server")
        try:
            remote = migrate_remote(log, address, tmp / "remote-ledger.sqlite")
            logs = []
            for k in range(args.importers):
                logs.append(tmp / f"log{k}.jsonl")
                write_log(logs[-1], args.runs, args.epochs, prefix=f"m{k}-")
            together = concurrent(logs, address, tmp)
        finally:
            from etl.writers import aim_remote

            aim_remote.release_all()  # while the server still answers: Aim's exit handler would hang
            os.killpg(server.pid, signal.SIGTERM)
        print(f"{args.runs} runs x {args.epochs + 2} points = {points} points")
        print(f"local SDK writer:        {points / local:8.0f} points/s ({local:.1f}s)")
        print(f"aim:// (1 importer):     {points / remote:8.0f} points/s ({remote:.1f}s)")
        print(
            f"aim:// ({args.importers} importers):    {points * args.importers / together:8.0f} points/s in total "
            f"({together:.1f}s)"
        )
        print(f"aim:// runs at {local / remote:.2f}x the local SDK writer's points/s")


if __name__ == "__main__":
    main()
