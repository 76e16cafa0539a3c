"""Results become metrics: the result formats of real tools, migrated into a real Aim repo and read
back with Aim's SDK, and the shared corpus, where almost every run now has a metric.

Samples are in fixtures/results/<tool>/ (each folder's SOURCE.md says where they come from);
shapes without a sample of their own are written to tmp_path.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path

import pytest

from etl.interpret import METRIC_PATTERNS
from etl.pipeline import read
from tests.conftest import FIXTURES, aim_runs, numbers, run_cli, series

RESULTS = FIXTURES / "results"


def migrate(source: Path, repo: Path) -> dict:
    """Migrate `source` into `repo`; the runs read back, by name."""
    result = run_cli("migrate", source, "--repo", repo, "-q")
    assert result.exit_code == 0, result.output
    runs = list(aim_runs(repo).values())
    by_name = {r.name: r for r in runs}
    assert len(by_name) == len(runs), [r.name for r in runs]
    return by_name


def ctx(**items: str) -> tuple:
    return tuple(sorted(items.items()))


def final(run, name: str, **context: str) -> float:
    """The value of a result metric: one point, at step 0."""
    (point,) = series(run)[(name, ctx(**context))]
    assert point[0] == 0
    return point[1]


def utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


# --- lm-evaluation-harness -----------------------------------------------------------------------


def test_lm_eval_results_are_metrics_per_task_and_filter(tmp_path):
    folder = RESULTS / "lm-eval"
    runs = migrate(folder, tmp_path / "repo")
    assert set(runs) == {"meta-llama/Meta-Llama-3-8B-Instruct", "/data/public_models/huggingface/EleutherAI/pythia-14m"}

    llama = runs["meta-llama/Meta-Llama-3-8B-Instruct"]
    doc = json.loads(next(folder.glob("meta-llama*/*.json")).read_text())
    task = doc["results"]["gsm8k_cot_llama"]
    # the metric is the part before the comma, the filter a context; _stderr sits beside its metric
    for filter_ in ("strict-match", "flexible-extract"):
        assert final(llama, "exact_match", task="gsm8k_cot_llama", filter=filter_) == task[f"exact_match,{filter_}"]
        stderr = final(llama, "exact_match_stderr", task="gsm8k_cot_llama", filter=filter_)
        assert stderr == task[f"exact_match_stderr,{filter_}"]
    assert len(series(llama)) == 4
    assert llama["hparams"]["model"] == "vllm" and llama["hparams"]["random_seed"] == 0
    assert llama["meta"]["n-shot"] == doc["n-shot"]
    assert llama.creation_time == pytest.approx(doc["date"])  # not the monotonic `start_time`

    pythia = runs["/data/public_models/huggingface/EleutherAI/pythia-14m"]
    doc = json.loads(next(folder.glob("EleutherAI*/*.json")).read_text())
    # `acc,none`: the `none` filter is no context
    for name, metrics in doc["results"].items():
        assert final(pythia, "acc", task=name) == metrics["acc,none"]
        assert final(pythia, "acc_stderr", task=name) == metrics["acc_stderr,none"]
    assert final(pythia, "acc", group="steer") == doc["groups"]["steer"]["acc,none"]
    assert pythia["meta"]["results"]["tasks"]["steer2"] == {"alias": " - steer2"}  # strings stay, in the meta


# --- MTEB ----------------------------------------------------------------------------------------


def test_mteb_task_results_are_metrics_per_split_and_subset(tmp_path):
    folder = RESULTS / "mteb"
    runs = migrate(folder, tmp_path / "repo")
    # one run per task file; model_meta.json is each task's config, not a run
    assert set(runs) == {"SprintDuplicateQuestions", "IndicSentimentClassification", "Banking77Classification"}
    levy = "sentence-transformers/average_word_embeddings_levy_dependency"
    assert {runs[n].experiment for n in ("SprintDuplicateQuestions", "IndicSentimentClassification")} == {levy}

    sprint = runs["SprintDuplicateQuestions"]
    doc = json.loads(next(folder.rglob("SprintDuplicateQuestions.json")).read_text())
    for split in ("test", "validation"):
        (entry,) = doc["scores"][split]
        assert final(sprint, "main_score", subset=split, hf_subset="default") == entry["main_score"]
        assert final(sprint, "cosine.ap", subset=split, hf_subset="default") == entry["cosine"]["ap"]
    assert sprint["meta"]["scores"]["test"] == [{"hf_subset": "default", "languages": ["eng-Latn"]}]

    indic = runs["IndicSentimentClassification"]
    (entry,) = json.loads(next(folder.rglob("IndicSentimentClassification.json")).read_text())["scores"]["test"]
    assert final(indic, "accuracy", subset="test", hf_subset="as") == entry["accuracy"]
    for i, repeat in enumerate(entry["scores_per_experiment"]):  # per-experiment values, as contexts
        assert final(indic, "f1", subset="test", hf_subset="as", experiment=str(i)) == repeat["f1"]

    banking = runs["Banking77Classification"]
    assert banking.experiment == "mteb/baseline-random-encoder"
    assert math.isnan(final(banking, "ap", subset="test", hf_subset="default"))
    assert banking["hparams"]["embed_dim"] == 32 and banking["hparams"]["max_tokens"] == math.inf


# --- DVCLive -------------------------------------------------------------------------------------


def test_dvclive_metrics_json_is_one_run_with_subset_contexts(tmp_path):
    path = RESULTS / "dvclive" / "metrics.json"
    (run,) = migrate(path, tmp_path / "repo").values()
    summary = json.loads(path.read_text())
    assert final(run, "loss", subset="train") == summary["train"]["loss"]
    assert final(run, "acc", subset="eval") == summary["eval"]["acc"]
    assert final(run, "f1.macro", subset="eval") == summary["eval"]["f1"]["macro"]  # deeper keys join the name
    assert len(series(run)) == 6
    assert run["hparams"] == {"step": 9}  # a top-level step is a param, not a metric


# --- scikit-learn cv_results_ --------------------------------------------------------------------


def test_cv_results_is_one_run_per_candidate_with_per_fold_scores(tmp_path):
    path = RESULTS / "sklearn" / "cv_results.json"
    cv = json.loads(path.read_text())
    runs = list(migrate(path, tmp_path / "repo").values())
    assert len(runs) == len(cv["params"]) == 4
    by_params = {json.dumps(r["hparams"], sort_keys=True): r for r in runs}
    for i, params in enumerate(cv["params"]):
        run = by_params[json.dumps(params, sort_keys=True)]  # params from `params`; `param_*` left out
        for column in ("mean_test_score", "std_test_score", "rank_test_score", "mean_fit_time"):
            assert final(run, column) == cv[column][i]
        for fold in range(3):
            assert final(run, "score", subset="test", fold=str(fold)) == cv[f"split{fold}_test_score"][i]


def test_cv_results_written_by_pandas_to_json_is_read_the_same(tmp_path):
    cv = json.loads((RESULTS / "sklearn" / "cv_results.json").read_text())
    by_row = {k: {str(i): v for i, v in enumerate(column)} for k, column in cv.items()}  # DataFrame.to_json()
    path = tmp_path / "cv_results_pandas.json"
    path.write_text(json.dumps(by_row))
    frames = read([path], base=tmp_path)
    assert len(frames.runs) == 4 and set(frames.runs["format"]) == {"sklearn-cv"}
    assert frames.runs["hparams"].tolist() == cv["params"]


# --- Optuna and hyperopt -------------------------------------------------------------------------


def test_optuna_trials_are_runs_with_their_own_times(tmp_path):
    path = RESULTS / "optuna" / "trials.json"
    trials = json.loads(path.read_text())
    runs = migrate(path, tmp_path / "repo")
    assert set(runs) == {f"trial {t['number']}" for t in trials}
    for trial in trials:
        run = runs[f"trial {trial['number']}"]
        assert run["hparams"] == trial["params"]
        assert run.creation_time == pytest.approx(utc(trial["datetime_start"]))
        assert run.end_time == pytest.approx(utc(trial["datetime_complete"]))
        assert run["meta"]["state"] == trial["state"]
        got = series(run)
        if trial["value"] is None:  # the failed trial: no result, its reason kept
            assert got == {}
            assert "fail_reason" in run["meta"]["system_attrs"]
            continue
        assert final(run, "value") == trial["value"]
        steps = got[("intermediate_value", ())]
        assert [(s, v) for s, v, _, _ in steps] == [(int(k), v) for k, v in trial["intermediate_values"].items()]


def test_hyperopt_trials_are_runs_with_sampled_params(tmp_path):
    path = RESULTS / "hyperopt" / "trials.json"
    trials = json.loads(path.read_text())
    runs = migrate(path, tmp_path / "repo")
    assert set(runs) == {"trial 0", "trial 1", "trial 2"}
    first, second, failed = (runs[f"trial {i}"] for i in range(3))
    assert first["hparams"] == {"classifier": 0, "lr": 0.0123, "dropout": 0.31}
    assert second["hparams"] == {"classifier": 1, "lr": 0.0041}  # `dropout: []`: not sampled in that branch
    assert final(first, "loss") == trials[0]["result"]["loss"]
    assert final(second, "loss") == trials[1]["result"]["loss"]
    assert first.creation_time == pytest.approx(utc(trials[0]["book_time"]))
    assert first.end_time == pytest.approx(utc(trials[0]["refresh_time"]))
    assert series(failed) == {} and failed["meta"]["status"] == "fail"


# --- keyed comparisons and summaries ---------------------------------------------------------------


def test_method_comparison_of_curves_is_one_run_per_method_with_series(tmp_path):
    curves = {
        "baseline": {"train_loss": [0.9, 0.7, 0.6, 0.55], "val_loss": [0.95, 0.8, 0.74, 0.73]},
        "ours": {"train_loss": [0.8, 0.5, 0.4, 0.35], "val_loss": [0.85, 0.6, 0.52, 0.5]},
    }
    path = tmp_path / "comparison.json"
    path.write_text(json.dumps(curves))
    runs = migrate(path, tmp_path / "repo")
    assert set(runs) == {"baseline", "ours"}
    for method, lists in curves.items():
        got = series(runs[method])
        assert [(s, v, e) for s, v, e, _ in got[("loss", ctx(subset="train"))]] == [
            (i, v, i) for i, v in enumerate(lists["train_loss"])
        ]
        assert [v for _, v, _, _ in got[("loss", ctx(subset="val"))]] == lists["val_loss"]


def test_model_metric_mean_std_summary_is_one_run_per_model(tmp_path):
    summary = {"gcn": {"acc": [0.812, 0.011], "f1": [0.79, 0.014]}, "mlp": {"acc": [0.701, 0.02], "f1": [0.66, 0.03]}}
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))
    runs = migrate(path, tmp_path / "repo")
    for model, metrics in summary.items():
        for name, (mean, std) in metrics.items():
            assert final(runs[model], name) == mean
            assert final(runs[model], f"{name}_std") == std


def test_evaluation_summary_with_results_by_method_has_metrics_and_strings_stay(tmp_path):
    doc = {
        "test_set": "links_2025.json",
        "results": {"deepwalk": {"p@10": 0.21, "mrr": 0.33}, "node2vec": {"p@10": 0.25, "mrr": "nan"}},
    }
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(doc))
    (run,) = migrate(path, tmp_path / "repo").values()
    assert final(run, "p@10", method="deepwalk") == 0.21
    assert final(run, "mrr", method="deepwalk") == 0.33
    assert math.isnan(final(run, "mrr", method="node2vec"))  # "nan" where a number is expected
    assert run["meta"]["test_set"] == "links_2025.json"


def test_subset_keyed_summary_is_one_run_not_one_per_subset(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"train": {"loss": 0.3}, "eval": {"loss": 0.4}}))
    (run,) = migrate(path, tmp_path / "repo").values()
    assert final(run, "loss", subset="train") == 0.3 and final(run, "loss", subset="eval") == 0.4


def test_model_registry_is_one_run_per_model(tmp_path):
    registry = {
        "models": {
            "gcn_v1": {"version": "v1", "registered_at": "2026-01-04T10:00:00Z", "metrics": {"mrr": 0.3}},
            "gcn_v2": {"version": "v2", "registered_at": "2026-01-05T10:00:00Z", "metrics": {"mrr": 0.35}},
        },
        "metadata": {"created_at": "2026-01-04T09:00:00Z"},
    }
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(registry))
    runs = migrate(path, tmp_path / "repo")
    assert set(runs) == {"gcn_v1", "gcn_v2"}
    assert final(runs["gcn_v1"], "mrr") == 0.3 and final(runs["gcn_v2"], "mrr") == 0.35
    assert {r["etl"]["locator"] for r in runs.values()} == {"$.models.gcn_v1", "$.models.gcn_v2"}


# --- the shared corpus ---------------------------------------------------------------------------

on_corpus = pytest.mark.corpus


@pytest.fixture(scope="module")
def corpus_frames():
    from tests.conftest import corpus_dir

    root = corpus_dir()
    if not root.is_dir():
        pytest.skip(f"shared corpus not found at {root} (set AIM_ETL_CORPUS to its folder)")
    frames = read([root], base=root)
    # what an import writes: the first place each content and each key is seen
    runs = frames.runs.drop_duplicates("content_hash").drop_duplicates("run_key")
    return root, runs, frames.metrics


@on_corpus
def test_at_most_ten_runs_of_the_corpus_have_no_metric_and_those_hold_no_result(corpus_frames):
    _, runs, metrics = corpus_frames
    without = runs[~runs["run_key"].isin(set(metrics["run_key"]))]
    assert len(runs) > 400
    assert len(without) <= 10, without[["source", "locator"]].to_string()
    reads_as_result = re.compile("|".join(f"(?:{p})" for p in METRIC_PATTERNS), re.IGNORECASE)

    def result_numbers(value, key=""):
        if isinstance(value, dict):
            return [n for k, v in value.items() for n in result_numbers(v, k)]
        if isinstance(value, list):
            return [n for v in value for n in result_numbers(v, key)]
        return [(key, value)] if numbers(value) and reads_as_result.search(key) else []

    for run in without.itertuples():
        held = result_numbers(run.hparams) + result_numbers({k: v for k, v in run.meta.items() if k != "document"})
        assert held == [], (run.source, run.locator, held)


@on_corpus
def test_corpus_results_kept_under_other_names_are_metrics(corpus_frames):
    root, runs, metrics = corpus_frames
    by_place = {(r.source, r.locator): r.run_key for r in runs.itertuples()}  # sources relative to `base`
    values = {(m.run_key, m.name, m.context): m.value for m in metrics.itertuples()}

    flowfrag = root / "eightmm__FlowFrag" / "experiments.jsonl"
    lines = [json.loads(line) for line in flowfrag.read_text().splitlines() if line.strip()]
    assert len(lines) == 13
    for number, line in enumerate(lines, start=1):
        key = by_place[("eightmm__FlowFrag/experiments.jsonl", f"line {number}")]
        assert values[(key, "casf_val_best", "{}")] == line["casf_val_best"]  # a top-level best, beside `config`
        for bench, scores in line["bench"].items():
            assert (
                values[(key, "conf_mean", json.dumps({"benchmark": bench}, separators=(",", ":")))]
                == scores["conf_mean"]
            )
            full = scores["full_conf"]["mean"]
            assert values[(key, "full_conf.mean", json.dumps({"benchmark": bench}, separators=(",", ":")))] == full

    quality = by_place[("arclabs561__decksage/annotations/metrics/quality_2025_10_01.json", "$")]
    assert values[(quality, "P@10", '{"model":"node2vec_500decks"}')] == 0.5
    games = by_place[("arclabs561__decksage/experiments/cross_game_metrics.json", "$")]
    assert values[(games, "p@10", '{"game":"magic"}')] == pytest.approx(0.08357142857142856)
    assert values[(games, "weighted.p@10", "{}")] == 0.075625
    registry = "arclabs561__decksage/experiments/backups/eval_registry_20260104_212950/registry.json"
    models = [loc for src, loc in by_place if src == registry]
    assert sorted(models) == [f"$.models.test_v{i}" for i in range(1, 6)]


# --- how documents split into records (no Aim needed) ---------------------------------------------


def records_of(document, tmp_path: Path, name: str = "doc.json") -> list:
    from etl.readers.jsondoc import read_json

    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return list(read_json(path, name))


def test_optuna_trials_dataframe_rows_are_trials_too(tmp_path):
    # study.trials_dataframe().to_json(orient="records"): flattened params_*, times in epoch ms
    rows = [
        {
            "number": 0,
            "value": 0.91,
            "datetime_start": 1738576801512,
            "datetime_complete": 1738576934100,
            "duration": 132588,
            "params_lr": 0.01,
            "params_optimizer": "adam",
            "user_attrs_val_loss": 0.3,
            "state": "COMPLETE",
        }
    ]
    (record,) = records_of(rows, tmp_path)
    assert record.format == "optuna" and record.locator == "$[0]"
    assert record.data["params"] == {"lr": 0.01, "optimizer": "adam"}
    assert record.data["results"] == {"value": 0.91}
    assert record.data["timestamp"] == 1738576801512 and record.data["trial_duration"] == 132588
    frames = read([tmp_path / "doc.json"], base=tmp_path)
    run = frames.runs.iloc[0]
    assert run.created_at.timestamp() == pytest.approx(1738576801.512)
    assert run.ended_at.timestamp() == pytest.approx(1738576934.1)  # not start + 132588 "seconds"


def test_a_multi_objective_optuna_trial_has_one_metric_per_objective(tmp_path):
    trial = {"number": 4, "values": [0.9, 120.0], "params": {"lr": 0.1}, "state": "COMPLETE"}
    (record,) = records_of({"trials": [trial]}, tmp_path)
    assert record.data["results"] == {"value_0": 0.9, "value_1": 120.0}
    assert record.locator == "$.trials[0]"


def test_hyperopt_mongo_dates_are_unwrapped(tmp_path):
    trial = {
        "tid": 7,
        "result": {"loss": 0.2, "status": "ok"},
        "misc": {"vals": {"x": [1.5]}},
        "book_time": {"$date": "2024-11-18T14:02:10.512Z"},
        "refresh_time": {"$date": "2024-11-18T14:02:41.907Z"},
    }
    (record,) = records_of([trial], tmp_path)
    assert record.format == "hyperopt"
    assert record.data["timestamp"] == "2024-11-18T14:02:10.512Z"
    assert record.data["params"] == {"x": 1.5} and record.data["trial_id"] == 7


def test_lm_eval_run_is_named_by_its_model_even_without_model_name(tmp_path):
    doc = {
        "results": {"arc_easy": {"acc,none": 0.3, "alias": "arc_easy"}},
        "versions": {"arc_easy": 1.0},
        "config": {"model": "hf", "model_args": "pretrained=EleutherAI/pythia-160m,dtype=float32"},
    }
    (record,) = records_of(doc, tmp_path)
    assert record.format == "lm-eval" and record.data["name"] == "EleutherAI/pythia-160m"
    assert record.data["results"] == {"tasks": doc["results"]}


def test_a_results_dict_without_lm_eval_companions_is_a_plain_run_document(tmp_path):
    doc = {"results": {"deepwalk": {"p@10": 0.1}}, "test_set": "x.json"}
    (record,) = records_of(doc, tmp_path)
    assert record.format == "json" and record.data == doc


def test_a_lone_model_meta_json_is_a_document_and_one_beside_a_task_is_not(tmp_path):
    meta = {"name": "org/model", "revision": "1", "embed_dim": 8}
    assert [r.data for r in records_of(meta, tmp_path / "alone", "model_meta.json")] == [meta]
    task = {"task_name": "T", "mteb_version": "2.0", "scores": {"test": [{"main_score": 0.5, "hf_subset": "default"}]}}
    (tmp_path / "beside").mkdir()
    (tmp_path / "beside" / "model_meta.json").write_text(json.dumps(meta))
    (record,) = records_of(task, tmp_path / "beside", "T.json")
    assert records_of(meta, tmp_path / "beside", "model_meta.json") == []
    assert record.format == "mteb" and record.data["config"] == meta and record.data["experiment"] == "org/model"


@pytest.mark.parametrize(
    "doc",
    [
        {"train": {"loss": 0.3}, "eval": {"loss": 0.4}},  # subsets: contexts of one run
        {"a": {"loss": 0.3}, "b": {"loss": 0.4}, "step": 9},  # a number beside: one run's summary
        {"models": {"a": {"layers": 2}, "b": {"layers": 3}}},  # entries without results, config or time
    ],
)
def test_dicts_of_dicts_that_are_not_runs_stay_one_document(tmp_path, doc):
    (record,) = records_of(doc, tmp_path)
    assert record.locator == "$"


def test_a_keyed_summary_keeps_its_describing_strings_as_the_document(tmp_path):
    doc = {"dataset": "coauthor-v2", "deepwalk": {"p@10": 0.26}, "node2vec": {"p@10": 0.29}}
    records = records_of(doc, tmp_path)
    assert [(r.locator, r.data, r.parent) for r in records] == [
        ("$.deepwalk", {"method": "deepwalk", "p@10": 0.26}, {"dataset": "coauthor-v2"}),
        ("$.node2vec", {"method": "node2vec", "p@10": 0.29}, {"dataset": "coauthor-v2"}),
    ]
