"""`--repo aim://HOST:PORT`: real `aim server` processes on free loopback ports, no mocks.

Runs are read back through the server with Aim's own client; concurrent importers and the crash
run as separate processes, as they would on separate machines.
"""

from __future__ import annotations

import datetime as dt
import gc
import http.server
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from aim import Repo, Run
from aim.storage.context import Context

from tests.conftest import ROOT, run_cli

AIM = Path(sys.executable).with_name("aim")
RULES = """
version = "remote-1"

[[rules]]
id = "lr-range"
kind = "range"
field = "hparams.lr"
min = 0.0001
max = 0.05
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AimServer:
    """`aim server` on a repo folder, in a session of its own (its uvicorn workers die with it)."""

    def __init__(self, repo: Path, port: int | None = None) -> None:
        self.repo = repo
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        repo.mkdir(parents=True, exist_ok=True)
        if not (repo / ".aim").is_dir():
            Repo(str(repo), init=True)

    @property
    def address(self) -> str:
        return f"aim://127.0.0.1:{self.port}"

    def start(self) -> AimServer:
        cmd = [str(AIM), "server", "--repo", str(self.repo), "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("aim server did not start")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(10)


def release_clients() -> None:
    """This process's Aim clients let go of the server while it still runs (see `release_all`)."""
    from etl.writers import aim_remote

    aim_remote.release_all()


def forget_clients() -> None:
    """Detach the exit handlers of any Aim client object still around (found through the collector,
    not Aim's registry): once its server is gone, one collected later raises inside the collector,
    and pytest keeps that traceback, holding whatever the test then running has open (a local run
    in `tests/test_validate.py` stayed locked)."""
    from aim.ext.cleanup import AutoClean

    for obj in gc.get_objects():
        if isinstance(obj, AutoClean) and (getattr(obj, "_client", None) or getattr(obj, "rpc_client", None)):
            obj.finalizer.detach()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = AimServer(tmp_path_factory.mktemp("server") / "repo").start()
    yield srv
    release_clients()
    forget_clients()
    srv.kill(signal.SIGTERM)


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch) -> Path:
    """The default per-server ledger lives under $XDG_DATA_HOME: never the real home in tests."""
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


def record(i: int, epochs: int = 4, lr: float = 0.01, tag: str = "a") -> str:
    return (
        json.dumps(
            {
                "experiment_id": f"exp_{i:04d}",
                "timestamp": f"2025-05-{1 + i % 28:02d}T10:00:00Z",
                "config": {"lr": lr},
                "tags": [tag],
                "history": {"train_loss": [1.0 / (e + 1) for e in range(epochs)]},
            }
        )
        + "\n"
    )


def write_log(path: Path, n: int, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(record(i, **kwargs) for i in range(n)))
    return path


def ledger_runs(path: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(path) as db:
        return {
            key: (run_hash, state) for key, run_hash, state in db.execute("SELECT run_key, run_hash, state FROM runs")
        }


def server_runs(srv: AimServer, source: str | None = None) -> dict[str, dict]:
    """Every run on the server, read through the server: provenance, params, tags, and each series."""
    from etl.writers import aim_remote

    repo = Repo(srv.address)
    out = {}
    try:
        for run_hash in aim_remote.run_hashes(repo):
            meta = aim_remote.read_meta(repo, run_hash) or {}
            provenance = (meta.get("attrs") or {}).get("etl") or {}
            if source is not None and provenance.get("source") != source:
                continue
            run = Run(run_hash, repo=repo, read_only=True)
            loss = run.get_metric("loss", Context({"subset": "train"}))
            steps, (values, _, times) = loss.data.items_list() if loss is not None else ([], ([], [], []))
            out[run_hash] = {
                "etl": provenance,
                "end_time": meta.get("end_time"),
                "hparams": (meta.get("attrs") or {}).get("hparams"),
                "tags": aim_remote.read_props(repo, run_hash)["tags"],
                "creation_time": run.creation_time,
                "steps": list(steps),
                "values": list(values),
                "times": list(times),
            }
            del run, loss
    finally:
        del repo
        release_clients()
    return out


def cli_json(*args, tmp_path: Path) -> tuple[int, dict, str]:
    report = tmp_path / f"report-{time.monotonic_ns()}.json"
    result = run_cli(*args, "--report", report, "-q")
    return result.exit_code, json.loads(report.read_text()) if report.exists() else {}, result.output


def test_import_reads_back_through_the_server_with_original_times_and_a_second_sync_writes_nothing(
    server, tmp_path, data_home
):
    log = write_log(tmp_path / "a" / "log.jsonl", 3)
    code, report, output = cli_json("migrate", log, "--repo", server.address, tmp_path=tmp_path)
    assert code == 0, output
    assert report["summary"]["runs_written"] == 3
    assert report["repo"] == server.address
    ledger = data_home / "aim-etl" / "servers" / f"127.0.0.1_{server.port}" / "ledger.sqlite"
    assert Path(report["ledger"]) == ledger
    assert (ledger.parent / "ledger.sqlite.lock").exists()
    runs = server_runs(server, source=str(log))
    assert len(runs) == 3
    assert {h for h, _ in ledger_runs(ledger).values()} == set(runs)
    for run in runs.values():
        i = int(run["etl"]["record_id"].removeprefix("exp_"))
        created = dt.datetime(2025, 5, 1 + i, 10, tzinfo=dt.UTC).timestamp()
        # The creation time the server shows is the record's, not the import's.
        assert run["creation_time"] == pytest.approx(created)
        assert run["etl"]["complete"] is True
        assert run["hparams"] == {"lr": 0.01}
        assert run["tags"] == ("a",)
        assert run["steps"] == [0, 1, 2, 3]
        assert run["values"] == [1.0, 0.5, 1 / 3, 0.25]
        assert run["end_time"] is not None and run["end_time"] < time.time() - 86400

    code, report, _ = cli_json("sync", log, "--repo", server.address, tmp_path=tmp_path)
    assert code == 0 and report["summary"]["runs_written"] == 0

    # The ledger lost: rebuilt from the server's runs, after which migrate writes nothing.
    ledger.unlink()
    result = run_cli("ledger", "rebuild", "--repo", server.address)
    assert result.exit_code == 0, result.output
    assert set(ledger_runs(ledger)) >= {r["etl"]["run_key"] for r in runs.values()}
    code, report, _ = cli_json("migrate", log, "--repo", server.address, tmp_path=tmp_path)
    assert code == 0 and report["summary"]["runs_written"] == 0 and report["summary"]["unchanged"] == 3


def test_an_edited_record_with_a_shorter_series_is_replaced_in_place_without_stale_points(server, tmp_path):
    log = write_log(tmp_path / "b" / "log.jsonl", 2, epochs=5)
    assert cli_json("migrate", log, "--repo", server.address, tmp_path=tmp_path)[0] == 0
    before = server_runs(server, source=str(log))
    log.write_text(record(0, epochs=2, lr=0.02, tag="b") + record(1, epochs=5))
    code, report, output = cli_json("sync", log, "--repo", server.address, tmp_path=tmp_path)
    assert code == 0, output
    assert report["summary"]["changed"] == 1 and report["summary"]["runs_written"] == 1
    after = server_runs(server, source=str(log))
    assert set(after) == set(before)  # same runs, same hashes: updated in place
    edited = next(r for r in after.values() if r["etl"]["record_id"] == "exp_0000")
    assert edited["steps"] == [0, 1] and edited["values"] == [1.0, 0.5]
    assert edited["hparams"] == {"lr": 0.02} and edited["tags"] == ("b",)
    assert cli_json("sync", log, "--repo", server.address, tmp_path=tmp_path)[1]["summary"]["runs_written"] == 0


def test_validate_over_the_wire_writes_verdicts_once(server, tmp_path):
    log = tmp_path / "v" / "log.jsonl"
    log.parent.mkdir()
    log.write_text(record(0, lr=0.01) + record(1, lr=0.5))
    assert cli_json("migrate", log, "--repo", server.address, tmp_path=tmp_path)[0] == 0
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    result = run_cli("validate", "--repo", server.address, "--rules", rules, "--query", "run.hparams.lr >= 0.01")
    assert result.exit_code == 0, result.output
    runs = server_runs(server, source=str(log))
    verdicts = {r["hparams"]["lr"]: (r["tags"], run_validation(server, h)) for h, r in runs.items()}
    assert "validation:PASS" in verdicts[0.01][0] and verdicts[0.01][1]["status"] == "PASS"
    assert "validation:FAIL" in verdicts[0.5][0] and verdicts[0.5][1]["status"] == "FAIL"
    from etl.governance.rules import load_rules
    from etl.pipeline import validate

    second = validate(server.address, load_rules(rules), query="run.hparams.lr >= 0.01")
    assert {r.state for r in second.runs} == {"unchanged"}
    release_clients()


def run_validation(srv: AimServer, run_hash: str) -> dict:
    from etl.writers import aim_remote

    repo = Repo(srv.address)
    try:
        return (aim_remote.read_meta(repo, run_hash) or {})["attrs"]["validation"]
    finally:
        del repo
        release_clients()


def test_an_unreachable_server_exits_7_naming_the_address_and_writes_no_ledger(tmp_path, data_home):
    log = write_log(tmp_path / "log.jsonl", 1)
    address = f"aim://127.0.0.1:{free_port()}"
    result = run_cli("migrate", log, "--repo", address)
    assert result.exit_code == 7
    assert address in result.output and "does not answer" in result.output
    assert not data_home.exists()


class _OldAim(http.server.BaseHTTPRequestHandler):
    """Answers as an `aim server` of another version does, on the two paths the check asks."""

    def do_GET(self):  # noqa: N802
        body = {"/status/": {"status": "OK"}, "/client/get-version/": {"version": "3.17.5"}}.get(self.path)
        self.send_response(200 if body else 404)
        self.end_headers()
        self.wfile.write(json.dumps(body or {}).encode())

    def log_message(self, *args):
        pass


def test_a_server_of_another_aim_version_is_refused(tmp_path, data_home):
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _OldAim)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        log = write_log(tmp_path / "log.jsonl", 1)
        result = run_cli("sync", log, "--repo", f"aim://127.0.0.1:{httpd.server_port}")
    finally:
        httpd.shutdown()
    assert result.exit_code == 1
    assert "runs aim 3.17.5" in result.output and "refusing to write" in result.output
    assert not data_home.exists()


def aim_etl(*args, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "etl", *map(str, args), "-q"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_two_importers_with_their_own_ledgers_sync_into_one_server_at_once(server, tmp_path):
    logs = [write_log(tmp_path / f"m{k}" / "log.jsonl", 5, epochs=30) for k in range(2)]
    procs = [
        aim_etl("sync", log, "--repo", server.address, "--ledger", tmp_path / f"ledger{k}.sqlite")
        for k, log in enumerate(logs)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    for log in logs:
        runs = server_runs(server, source=str(log))
        assert len(runs) == 5
        assert all(r["steps"] == list(range(30)) and r["etl"]["complete"] for r in runs.values())


@pytest.mark.slow
def test_two_importers_of_the_same_source_make_one_run_per_source_run(server, tmp_path):
    log = write_log(tmp_path / "same" / "log.jsonl", 6, epochs=40)
    procs = [
        aim_etl(
            "migrate",
            log,
            "--repo",
            server.address,
            "--ledger",
            tmp_path / f"ledger{k}.sqlite",
            "--report",
            tmp_path / f"report{k}.json",
        )
        for k in range(2)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    reports = [json.loads((tmp_path / f"report{k}.json").read_text()) for k in range(2)]
    # Usually each source run is written once in all and the loser says so; on a loaded machine an
    # importer may wait past the 2 s it gives a silent run and rewrite it, with the same content.
    written = [r["summary"]["runs_written"] for r in reports]
    assert 6 <= sum(written) <= 12
    if sum(written) == 6 and min(written) < 6 and any(r["notes"] for r in reports):
        assert any("another importer" in note for r in reports for note in r["notes"])
    runs = server_runs(server, source=str(log))
    assert len(runs) == 6
    assert all(r["steps"] == list(range(40)) and r["etl"]["complete"] for r in runs.values())
    # Both ledgers know every run as done, under the same hashes.
    books = [ledger_runs(tmp_path / f"ledger{k}.sqlite") for k in range(2)]
    assert books[0] == books[1] and {h for h, _ in books[0].values()} == set(runs)
    assert {state for _, state in books[0].values()} == {"done"}


@pytest.mark.slow
def test_a_server_killed_mid_import_stops_it_and_the_next_sync_completes_the_history_exactly(tmp_path):
    srv = AimServer(tmp_path / "server").start()
    log = write_log(tmp_path / "big" / "log.jsonl", 10, epochs=100)
    ledger = tmp_path / "ledger.sqlite"
    proc = aim_etl("sync", log, "--repo", srv.address, "--ledger", ledger, env={"AIM_ETL_SERVER_GRACE": "2"})
    chunks = srv.repo / ".aim" / "meta" / "chunks"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (chunks.is_dir() and len(list(chunks.iterdir())) >= 3):
        time.sleep(0.05)
    srv.kill()
    try:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 7, err
        assert srv.address in err and "does not answer" in err
        srv.start()
        on_server = server_runs(srv, source=str(log))
        assert len(on_server) < 10, "the import was not stopped mid-way"
        # Nothing is `done` in the ledger that did not arrive complete.
        for run_hash, state in ledger_runs(ledger).values():
            if state == "done":
                assert on_server[run_hash]["etl"]["complete"]

        again = aim_etl("sync", log, "--repo", srv.address, "--ledger", ledger)
        out, err = again.communicate(timeout=180)
        assert again.returncode == 0, err
        runs = server_runs(srv, source=str(log))
        assert len(runs) == 10
        for run in runs.values():
            assert run["etl"]["complete"] and run["steps"] == list(range(100))
            assert run["values"] == [1.0 / (e + 1) for e in range(100)]
        assert {state for _, state in ledger_runs(ledger).values()} == {"done"}
        third = aim_etl("sync", log, "--repo", srv.address, "--ledger", ledger)
        assert third.wait(60) == 0
    finally:
        release_clients()
        srv.kill()
        forget_clients()


def test_validate_reports_a_run_being_logged_through_the_server_as_active_and_leaves_it(server, tmp_path):
    from etl.governance.rules import load_rules
    from etl.pipeline import validate

    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    repo = Repo(server.address)
    live = Run(repo=repo, experiment="live", system_tracking_interval=None, capture_terminal_logs=False)
    live["hparams"] = {"lr": 0.5}
    live.track(0.1, name="loss", step=0)
    try:
        report = validate(server.address, load_rules(rules))
        states = {r.run_hash: r.state for r in report.runs}
        assert states[live.hash] == "active"
        assert "validation" not in live.meta_run_tree.collect("attrs")
    finally:
        live.close()
        del live, repo
        release_clients()
