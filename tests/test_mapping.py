"""`--mapping FILE.toml`: any JSON/JSONL layout, by paths; read back from Aim."""

from __future__ import annotations

import pytest

from tests.conftest import FIXTURES, aim_runs, run_cli, series

SWEEP = FIXTURES.parent / "tests" / "data" / "mapping" / "sweep.json"
CUSTOM = FIXTURES / "mappings" / "custom_layout.toml"
LOG_MAPPING = FIXTURES / "mappings" / "experiment_log.toml"


def test_custom_layout_lands_in_aim_by_its_mapping(repo):
    result = run_cli("migrate", SWEEP, "--repo", repo, "--mapping", CUSTOM)
    assert result.exit_code == 0, result.output
    runs = {r.name: r for r in aim_runs(repo).values()}
    assert set(runs) == {"lr=0.1", "lr=0.01"}
    run = runs["lr=0.1"]
    assert run.experiment == "resnet-sweep"
    assert run["hparams"] == {"lr": 0.1, "depth": 50, "aug": {"mixup": 0.2}, "seed": 7}
    assert set(run.tags) == {"sweep", "a100"}
    assert run.creation_time == 1743498000.0 and run.end_time == 1743499800.0
    got = series(run)
    assert got[("loss", ())] == [
        (100, 2.1, 0.0, 1743498600.0),
        (200, 1.7, 1.0, 1743499200.0),
        (300, 1.5, 2.0, 1743499800.0),
    ]
    assert [p[1] for p in got[("top1", (("subset", "train"),))]] == [0.31, 0.45, 0.52]
    assert got[("top1", (("subset", "val"),))][0][1] == 0.761
    assert run["meta"]["unmapped"] == {"outcome": {"notes": "ok"}}  # what the mapping did not name is kept
    assert run["etl"]["locator"] == "$.sweep.trials[0]"
    again = run_cli("migrate", SWEEP, "--repo", repo, "--mapping", CUSTOM)
    assert "0 runs written" in again.output


def test_the_experiment_log_layout_is_expressible_as_a_mapping(tmp_path):
    log = FIXTURES / "experiments" / "EXPERIMENT_LOG.jsonl"
    run_cli("migrate", log, "--repo", tmp_path / "default", "-q")
    run_cli("migrate", log, "--repo", tmp_path / "mapped", "--mapping", LOG_MAPPING, "-q")
    default = {r["etl"]["locator"]: r for r in aim_runs(tmp_path / "default").values()}
    mapped = {r["etl"]["locator"]: r for r in aim_runs(tmp_path / "mapped").values()}
    assert set(default) == set(mapped)
    # the records with an id and a history (the flat one would need a mapping of its own, and so
    # would line 22, whose results are metric/value rows: metrics by default, unmapped here)
    compared = [
        loc for loc, r in default.items() if r.name.startswith("exp_") and ("lr", ()) in series(r) and loc != "line 22"
    ]
    assert len(compared) > 20
    train_loss = ("loss", (("subset", "train"),))
    for locator in compared:
        a, b = default[locator], mapped[locator]
        assert (a.name, a.experiment, sorted(a.tags)) == (b.name, b.experiment, sorted(b.tags))
        assert a.creation_time == b.creation_time
        assert a["hparams"] == b["hparams"]
        sa, sb = series(a), series(b)
        assert sa[train_loss] == sb[train_loss]
        for key in set(sa) & {("p10", ()), ("mrr", ()), ("ndcg", ())}:
            assert repr([(s, v, t) for s, v, _, t in sa[key]]) == repr([(s, v, t) for s, v, _, t in sb[key]])  # NaN


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('idd = "x"\n', "unknown keys ['idd']"),
        ("id = \n", "not TOML"),
        ('[[series]]\nstep = "s"\n', "series #1 needs a `path`"),
        ("hparams = [1]\n", "must be a path string"),
    ],
)
def test_a_bad_mapping_file_is_a_usage_error_naming_the_file(tmp_path, repo, text, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    result = run_cli("migrate", SWEEP, "--repo", repo, "--mapping", bad)
    assert result.exit_code == 2
    assert str(bad) in result.output and message in result.output
    assert not repo.exists()
