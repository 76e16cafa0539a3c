"""The README's AimQL recipes run, as written, against the demo history, and find what they say."""

from __future__ import annotations

import contextlib
import io
import json
import re

import pytest

from tests.conftest import FIXTURES, ROOT, run_cli

README = (ROOT / "README.md").read_text()


def _block(marker: str) -> str:
    match = re.search(rf"<!-- {marker}[^>]*-->\s*```\w*\n(.*?)```", README, re.S)
    assert match, f"README has no {marker} block"
    return match.group(1)


QUERIES = [line for line in _block("aimql-recipes").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("demo") / "demo"
    assert run_cli("migrate", FIXTURES, "--repo", repo, "-q").exit_code == 3  # the fixtures' bad lines
    rules = FIXTURES / "demo_rules.toml"
    assert run_cli("validate", "--repo", repo, "--rules", rules, "-q").exit_code == 0
    return repo


def _found(repo, query: str) -> list:
    from aim import Repo

    return [found.run for found in Repo(str(repo)).query_runs(query, report_mode=0).iter_runs()]


@pytest.mark.parametrize("query", QUERIES)
def test_each_recipe_selects_some_runs_but_not_all(demo, query):
    everything = _found(demo, "True")
    found = _found(demo, query)
    assert 0 < len(found) < len(everything), query


def test_the_first_recipe_means_what_it_says(demo):
    found = _found(demo, QUERIES[0])
    for run in found:
        assert run["hparams"]["dim"] == 128
    # every run of the log with dim 128 and a final p10 above 0.1 is found
    expected = set()
    for line in (FIXTURES / "experiments" / "EXPERIMENT_LOG.jsonl").read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        results = record.get("results") if isinstance(record, dict) else None
        p10 = results.get("p10") if isinstance(results, dict) else None
        config = record.get("config") if isinstance(record, dict) else None
        if isinstance(p10, int | float) and p10 > 0.1 and isinstance(config, dict) and config.get("dim") == 128:
            expected.add(record.get("experiment_id"))
    assert len(expected) > 5
    # a line without an id is named after its place in the file
    assert {e for e in expected if e} <= {run.name for run in found}
    assert sum(run.name.startswith("EXPERIMENT_LOG:line ") for run in found) == (None in expected)


def test_the_best_run_snippet_prints_the_best_run(demo, monkeypatch):
    code = _block("aimql-best-run").replace('Repo("demo")', f"Repo({str(demo)!r})")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    name, value = out.getvalue().split()
    finals = {}
    for line in (FIXTURES / "experiments" / "EXPERIMENT_LOG.jsonl").read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("experiment_name") == "node2vec-baseline":
            p10 = (record.get("results") or {}).get("p10")
            if isinstance(p10, int | float):
                finals[record["experiment_id"]] = p10
    assert float(value) == max(finals.values())
    assert finals[name] == max(finals.values())
