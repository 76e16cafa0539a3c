"""interpret(): a record read by roles; Normalizer: records to the runs/metrics frames."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pandas as pd
import pytest

from etl.interpret import FieldRules, NotAnExperiment, interpret
from etl.normalize import METRIC_COLUMNS, RUN_COLUMNS, Normalizer, content_hash
from etl.readers import Record
from etl.readers.jsondoc import read_json
from etl.readers.jsonl import read_jsonl

FIXTURES = Path(__file__).resolve().parent / "fixtures"
RULES = FieldRules()
VAL = '{"subset":"val"}'
TEST = '{"subset":"test"}'
TRAIN = '{"subset":"train"}'


def record(data: dict, source: str = "experiments/LOG.jsonl", locator: str = "line 1", parent=None) -> Record:
    return Record(source, locator, "jsonl", data, parent=parent or {})


def points(item) -> dict[tuple[str, str, int], tuple[int | None, float]]:
    """(name, context, step) -> (epoch, value); fails if two points share a key (Aim would keep one)."""
    out = {}
    for name, context, step, epoch, value, _ in item.points:
        key = (name, context, step)
        assert key not in out, f"two points at {key}"
        out[key] = (epoch, value)
    return out


def times(item) -> dict[tuple[str, str, int], float]:
    return {(name, context, step): time for name, context, step, _, _, time in item.points}


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


# --- nested records ------------------------------------------------------------------------------

NESTED = {
    "experiment_id": "exp_003",
    "experiment_name": "node2vec-baseline",
    "timestamp": "2025-03-10T09:00:00Z",
    "config": {"dim": 128, "p": 1.0, "optimizer": {"name": "adam", "betas": [0.9, 0.999]}},
    "results": {"p10": 0.21, "ndcg": 0.33, "val": {"p10": 0.25, "mrr": 0.4}, "test": {"p10": 0.2}},
    "history": {"train_loss": [0.9, 0.7, 0.6], "val_p10": [0.1, 0.2, 0.25], "lr": [0.01, 0.005, None]},
    "tags": ["baseline", "n2v"],
    "notes": "first try",
    "status": "ok",
    "duration_s": 90,
}


def test_nested_record():
    item = interpret(record(NESTED), RULES)
    assert item.record_id == "exp_003"
    assert item.experiment == "node2vec-baseline"
    assert item.name == "exp_003"
    assert item.created_at == utc(2025, 3, 10, 9, 0, 0)
    assert item.ended_at == utc(2025, 3, 10, 9, 1, 30)
    assert item.naive_time is False
    assert item.hparams == {"dim": 128, "p": 1.0, "optimizer": {"name": "adam", "betas": [0.9, 0.999]}}
    assert item.tags == ["baseline", "n2v"]
    # Everything else of a structured record is meta, never hparams.
    assert item.meta == {
        "experiment_id": "exp_003",
        "experiment_name": "node2vec-baseline",
        "timestamp": "2025-03-10T09:00:00Z",
        "notes": "first try",
        "status": "ok",
        "duration_s": 90,
    }
    assert points(item) == {
        # results: step 0, no epoch; {"val": {...}} is the val subset
        ("p10", "{}", 0): (None, 0.21),
        ("ndcg", "{}", 0): (None, 0.33),
        ("mrr", VAL, 0): (None, 0.4),
        ("p10", TEST, 0): (None, 0.2),
        # history dict of lists: step = epoch = index; None is a gap, not a point
        ("loss", TRAIN, 0): (0, 0.9),
        ("loss", TRAIN, 1): (1, 0.7),
        ("loss", TRAIN, 2): (2, 0.6),
        ("p10", VAL, 0): (0, 0.1),
        ("p10", VAL, 1): (1, 0.2),
        ("p10", VAL, 2): (2, 0.25),
        ("lr", "{}", 0): (0, 0.01),
        ("lr", "{}", 1): (1, 0.005),
        # the final val p10 and history's val_p10 are one series: the final value is kept apart
        ("p10", '{"source":"results","subset":"val"}', 0): (None, 0.25),
    }
    assert all(math.isnan(t) for t in times(item).values())


def test_history_list_of_dicts_with_own_step_epoch_time():
    data = {
        "id": "r1",
        "config": {"lr": 0.1},
        "history": [
            {"epoch": 1, "step": 100, "loss": 0.9, "val_acc": 0.5, "timestamp": "2025-01-01T00:00:00Z"},
            {"epoch": 2, "global_step": 200, "loss": 0.7, "val_acc": 0.6, "timestamp": 1_735_693_200},
            {"epoch": 5, "loss": 0.5, "note": "plateau", "flag": True},
            {"loss": 0.4, "wall_time": "2025-01-01T03:00:00+01:00"},
        ],
    }
    item = interpret(record(data), RULES)
    assert points(item) == {
        ("loss", "{}", 100): (1, 0.9),
        ("acc", VAL, 100): (1, 0.5),
        ("loss", "{}", 200): (2, 0.7),
        ("acc", VAL, 200): (2, 0.6),
        ("loss", "{}", 5): (5, 0.5),  # no step: the epoch is the step
        ("loss", "{}", 3): (None, 0.4),  # neither: the row's index
    }
    got = times(item)
    assert got[("loss", "{}", 100)] == got[("acc", VAL, 100)] == utc(2025, 1, 1).timestamp()
    assert got[("loss", "{}", 200)] == 1_735_693_200
    assert math.isnan(got[("loss", "{}", 5)])
    assert got[("loss", "{}", 3)] == utc(2025, 1, 1, 2).timestamp()
    assert "history" not in item.meta


def test_history_subset_dict_and_leftovers():
    data = {
        "config": {"lr": 0.1},
        "history": {"val": {"loss": [0.5, 0.4]}, "loss": [1.0, 0.8], "phase": ["warmup", "main"], "best": 3},
    }
    item = interpret(record(data), RULES)
    assert points(item) == {
        ("loss", VAL, 0): (0, 0.5),
        ("loss", VAL, 1): (1, 0.4),
        ("loss", "{}", 0): (0, 1.0),
        ("loss", "{}", 1): (1, 0.8),
    }
    assert item.meta == {"history": {"phase": ["warmup", "main"], "best": 3}}


def test_history_row_naive_timestamp_uses_the_timezone():
    data = {"config": {"lr": 0.1}, "history": [{"epoch": 0, "loss": 1.0, "timestamp": "2025-01-15T12:00:00"}]}
    item = interpret(record(data), FieldRules(timezone="Europe/Paris"))
    assert times(item)[("loss", "{}", 0)] == utc(2025, 1, 15, 11, 0, 0).timestamp()


# --- results -------------------------------------------------------------------------------------


def test_results_keyed_by_method_become_method_contexts():
    data = {
        "config": {"dim": 64},
        "results": {
            "deepwalk": {"p@10": 0.1, "mrr": 0.2},
            "node2vec": {"p@10": 0.3},
            "val": {"line": {"p@10": 0.05}},
        },
    }
    item = interpret(record(data), RULES)
    assert points(item) == {
        ("p@10", '{"method":"deepwalk"}', 0): (None, 0.1),
        ("mrr", '{"method":"deepwalk"}', 0): (None, 0.2),
        ("p@10", '{"method":"node2vec"}', 0): (None, 0.3),
        ("p@10", '{"method":"line","subset":"val"}', 0): (None, 0.05),
    }
    assert "results" not in item.meta


def test_every_number_of_results_is_a_metric_and_only_the_rest_stays_in_meta():
    data = {
        "config": {"dim": 64},
        "results": {
            "p10": 0.2,
            "ndcg": "n/a",
            "per_class": [0.1, 0.2],
            "breakdown": {"a": {"b": 1}},
            "mixed": {"x": 1, "y": "z"},
            "flag": True,
            "val": {"p10": 0.3, "note": "early stop"},
        },
    }
    item = interpret(record(data), RULES)
    assert points(item) == {
        ("p10", "{}", 0): (None, 0.2),
        ("p10", VAL, 0): (None, 0.3),
        # a per-X list: one point per X
        ("per_class", '{"class":"0"}', 0): (None, 0.1),
        ("per_class", '{"class":"1"}', 0): (None, 0.2),
        # a dict under results is an entry (a method); deeper keys join the name
        ("a.b", '{"method":"breakdown"}', 0): (None, 1),
        ("x", '{"method":"mixed"}', 0): (None, 1),
    }
    assert item.meta == {"results": {"ndcg": "n/a", "mixed": {"y": "z"}, "flag": True, "val": {"note": "early stop"}}}


def test_results_as_metric_value_rows_are_metrics():
    rows = [{"metric": "p10", "value": 0.2}, {"metric": "val_mrr", "value": 0.4}]
    item = interpret(record({"id": "exp_020", "config": {"dim": 64}, "results": rows}), RULES)
    assert points(item) == {("p10", "{}", 0): (None, 0.2), ("mrr", VAL, 0): (None, 0.4)}
    assert "results" not in item.meta


def test_results_list_of_dicts_that_are_no_rows_stays_in_meta():
    data = {"config": {"dim": 64}, "results": [{"note": "a"}, {"note": "b"}]}
    item = interpret(record(data), RULES)
    assert item.points == []
    assert item.meta["results"] == [{"note": "a"}, {"note": "b"}]


@pytest.mark.parametrize("section", ["metrics", "final", "scores"])
def test_other_result_sections(section):
    item = interpret(record({"config": {"a": 1}, section: {"val_f1": 0.5}}), RULES)
    assert points(item) == {("f1", VAL, 0): (None, 0.5)}


def test_two_final_values_of_one_series_are_both_kept():
    item = interpret(record({"config": {"a": 1}, "results": {"val_loss": 0.3, "val": {"loss": 0.31}}}), RULES)
    assert sorted(v for _, v in points(item).values()) == [0.3, 0.31]


# --- results wherever a record keeps them ---------------------------------------------------------


def test_a_benchmark_section_beside_config_gives_benchmark_contexts_and_dotted_names():
    # FlowFrag's shape: `config`, a top-level `casf_val_best`, and `bench` -> benchmark -> numbers / dicts
    data = {
        "name": "arch.big",
        "config": {"hidden": 512, "lr": 0.0003, "steps": 8000},
        "casf_val_best": 1.796,
        "bench": {"astex": {"conf_mean": 1.31, "full_conf": {"n": 85, "mean": 1.31}, "note": "ok"}},
        "elapsed_seconds": 4311.2,
    }
    item = interpret(record(data), RULES)
    assert points(item) == {
        ("casf_val_best", "{}", 0): (None, 1.796),
        ("conf_mean", '{"benchmark":"astex"}', 0): (None, 1.31),
        ("full_conf.n", '{"benchmark":"astex"}', 0): (None, 85),
        ("full_conf.mean", '{"benchmark":"astex"}', 0): (None, 1.31),
    }
    assert item.hparams == {"hidden": 512, "lr": 0.0003, "steps": 8000}
    assert item.meta == {"name": "arch.big", "bench": {"astex": {"note": "ok"}}, "elapsed_seconds": 4311.2}


@pytest.mark.parametrize(
    ("key", "context"),
    [
        ("full_results", "{}"),
        ("dataset_metrics", "{}"),
        ("val_metrics", VAL),
        ("eval_results", '{"subset":"eval"}'),
        ("best", '{"source":"best"}'),
        ("summary", "{}"),
        ("performance", "{}"),
    ],
)
def test_sections_named_by_a_result_word(key, context):
    item = interpret(record({"id": "r", key: {"hits": 3, "loss": 0.2}}), RULES)
    assert points(item) == {("hits", context, 0): (None, 3), ("loss", context, 0): (None, 0.2)}
    assert item.meta == {"id": "r"}


def test_a_subset_named_twice_is_one_context():
    # Hugging Face's eval_results.json inside `eval_results`: `eval_loss` is `loss` in eval, once
    item = interpret(record({"eval_results": {"eval_loss": 0.2, "train_loss": 0.1}}), RULES)
    assert points(item) == {
        ("loss", '{"subset":"eval"}', 0): (None, 0.2),
        ("train_loss", '{"subset":"eval"}', 0): (None, 0.1),
    }


@pytest.mark.parametrize("key", ["eval_config", "best_params", "score_distribution", "best_weights"])
def test_sections_whose_name_says_configuration_or_something_else_are_not_results(key):
    item = interpret(record({"lr": 0.1, key: {"very_low": 11, "high": 2}}), RULES)
    assert item.points == []
    assert item.hparams == {"lr": 0.1, key: {"very_low": 11, "high": 2}}


def test_subset_and_collection_dicts_are_results_only_with_evidence():
    data = {
        "train": {"loss": 0.2, "lr": 0.001},
        "val": {"batch_size": 64},
        "games": {"magic": {"p@10": 0.08, "num_queries": 38}},
        "models": {"a": {"layers": 2}},
    }
    item = interpret(record(data), RULES)
    assert points(item) == {
        ("loss", TRAIN, 0): (None, 0.2),
        ("lr", TRAIN, 0): (None, 0.001),  # in a result section, every number is a result
        ("p@10", '{"game":"magic"}', 0): (None, 0.08),
        ("num_queries", '{"game":"magic"}', 0): (None, 38),
    }
    assert item.hparams == {"val": {"batch_size": 64}, "models": {"a": {"layers": 2}}}


def test_flat_record_numbers_named_like_results_inside_dicts_are_metrics_by_path():
    data = {"weighted": {"p@10": 0.07, "k": 10}, "bootstrap": {"all_ci": [0.1, 0.3], "iters": 1000}}
    item = interpret(record(data), RULES)
    assert points(item) == {
        ("weighted.p@10", "{}", 0): (None, 0.07),
        ("bootstrap.all_ci_low", "{}", 0): (None, 0.1),
        ("bootstrap.all_ci_high", "{}", 0): (None, 0.3),
    }
    assert item.hparams == {"weighted": {"k": 10}, "bootstrap": {"iters": 1000}}


def test_lists_in_results_are_recognised_by_shape():
    data = {
        "config": {"hidden_dims": [128, 64]},
        "results": {
            "val_acc": [0.5, 0.6, 0.7],
            "cv_scores": [0.8, 0.82, 0.79],
            "f1_ci95": [0.7, 0.74],
            "short": [0.3, 0.4],
            "gcn": {"acc": [0.81, 0.01], "f1": [0.78, 0.02]},
        },
    }
    item = interpret(record(data), RULES)
    assert points(item) == {
        ("acc", VAL, 0): (0, 0.5),
        ("acc", VAL, 1): (1, 0.6),
        ("acc", VAL, 2): (2, 0.7),
        ("cv_scores", '{"fold":"0"}', 0): (None, 0.8),
        ("cv_scores", '{"fold":"1"}', 0): (None, 0.82),
        ("cv_scores", '{"fold":"2"}', 0): (None, 0.79),
        ("f1_ci95_low", "{}", 0): (None, 0.7),
        ("f1_ci95_high", "{}", 0): (None, 0.74),
        ("acc", '{"method":"gcn"}', 0): (None, 0.81),
        ("acc_std", '{"method":"gcn"}', 0): (None, 0.01),
        ("f1", '{"method":"gcn"}', 0): (None, 0.78),
        ("f1_std", '{"method":"gcn"}', 0): (None, 0.02),
    }
    assert item.hparams == {"hidden_dims": [128, 64]}  # an architecture list stays a list
    assert item.meta == {"results": {"short": [0.3, 0.4]}}  # two numbers, no known shape: not a series


def test_lists_of_entries_in_results_get_their_id_or_position_as_context():
    data = {
        "scores": {
            "test": [
                {"hf_subset": "en", "main_score": 0.5, "languages": ["eng-Latn"], "per_experiment": [{"f1": 0.4}]},
                {"hf_subset": "de", "main_score": 0.4, "languages": ["deu-Latn"], "per_experiment": [{"f1": 0.3}]},
            ]
        }
    }
    item = interpret(record(data), RULES)
    assert points(item) == {
        ("main_score", '{"hf_subset":"en","subset":"test"}', 0): (None, 0.5),
        ("f1", '{"experiment":"0","hf_subset":"en","subset":"test"}', 0): (None, 0.4),
        ("main_score", '{"hf_subset":"de","subset":"test"}', 0): (None, 0.4),
        ("f1", '{"experiment":"0","hf_subset":"de","subset":"test"}', 0): (None, 0.3),
    }
    assert item.meta["scores"] == {
        "test": [{"hf_subset": "en", "languages": ["eng-Latn"]}, {"hf_subset": "de", "languages": ["deu-Latn"]}]
    }


def test_big_breakdowns_by_item_stay_whole_in_the_meta():
    per_query = {f"q{i}": {"ndcg": i / 100} for i in range(60)}
    small = {f"c{i}": {"f1": i / 10} for i in range(3)}
    item = interpret(
        record({"config": {}, "metrics": {"ndcg": 0.3, "per_query": per_query, "per_class": small}}), RULES
    )
    assert points(item) == {
        ("ndcg", "{}", 0): (None, 0.3),
        **{("f1", f'{{"class":"c{i}"}}', 0): (None, i / 10) for i in range(3)},
    }
    assert item.meta == {"metrics": {"per_query": per_query}}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("acc,none", ("acc", "{}")),
        ("acc_stderr,none", ("acc_stderr", "{}")),
        ("exact_match,strict-match", ("exact_match", '{"filter":"strict-match"}')),
        ("split2_test_score", ("score", '{"fold":"2","subset":"test"}')),
        ("mean_test_score", ("mean_test_score", "{}")),
    ],
)
def test_names_that_carry_their_own_context(name, expected):
    item = interpret(record({"results": {name: 0.5}}), RULES)
    assert [(n, c) for n, c, *_ in item.points] == [expected]


@pytest.mark.parametrize(("text", "check"), [("nan", math.isnan), ("-Infinity", lambda v: v == -math.inf)])
def test_nan_and_infinity_strings_count_as_numbers_where_one_is_expected(text, check):
    item = interpret(record({"id": "r", "val_loss": text, "results": {"mrr": text}, "note": "nan"}), RULES)
    values = {(n, c): v for n, c, _, _, v, _ in item.points}
    assert set(values) == {("loss", VAL), ("mrr", "{}")}
    assert all(check(v) for v in values.values())
    assert item.meta["note"] == "nan"  # a note is no number


def test_history_lists_accept_nan_strings():
    item = interpret(record({"config": {}, "history": {"loss": [1.0, "NaN", 0.5]}}), RULES)
    got = points(item)
    assert math.isnan(got[("loss", "{}", 1)][1]) and got[("loss", "{}", 2)] == (2, 0.5)


# --- flat records --------------------------------------------------------------------------------

FLAT = {
    "experiment_id": "exp_007",
    "timestamp": "2025-03-20T10:00:00+00:00",
    "experiment_name": "node2vec-baseline",
    "learning_rate": 0.025,
    "batch_size": 512,
    "dim": 128,
    "seed": 7,
    "val_loss": 0.42,
    "test_acc": 0.81,
    "train_loss": 0.3,
    "f1": 0.7,
    "p@10": 0.2,
    "eval/mrr": 0.5,
    "optimizer": "adam",
    "use_bias": True,
    "efficiency": {"gpu": {"mem_gb": 3.2}, "wall_s": 512},
    "notes": "flat",
    "tag": "flat-one",
}


def test_flat_record():
    item = interpret(record(FLAT), RULES)
    assert points(item) == {
        ("loss", VAL, 0): (None, 0.42),
        ("acc", TEST, 0): (None, 0.81),
        ("loss", TRAIN, 0): (None, 0.3),
        ("f1", "{}", 0): (None, 0.7),
        ("p@10", "{}", 0): (None, 0.2),
        ("mrr", '{"subset":"eval"}', 0): (None, 0.5),
    }
    assert item.hparams == {
        "learning_rate": 0.025,
        "batch_size": 512,
        "dim": 128,
        "seed": 7,
        "optimizer": "adam",
        "use_bias": True,
        "efficiency": {"gpu": {"mem_gb": 3.2}, "wall_s": 512},
    }
    assert item.meta == {
        "experiment_id": "exp_007",
        "timestamp": "2025-03-20T10:00:00+00:00",
        "experiment_name": "node2vec-baseline",
        "notes": "flat",
    }
    assert item.tags == ["flat-one"]


def test_contexts_off_keeps_prefixed_names():
    rules = FieldRules(contexts=False)
    item = interpret(record(FLAT), rules)
    assert points(item) == {
        ("val_loss", "{}", 0): (None, 0.42),
        ("test_acc", "{}", 0): (None, 0.81),
        ("train_loss", "{}", 0): (None, 0.3),
        ("f1", "{}", 0): (None, 0.7),
        ("p@10", "{}", 0): (None, 0.2),
        ("eval/mrr", "{}", 0): (None, 0.5),
    }
    item = interpret(record({"config": {"a": 1}, "history": {"val_loss": [0.5, 0.4]}}), rules)
    assert points(item) == {("val_loss", "{}", 0): (0, 0.5), ("val_loss", "{}", 1): (1, 0.4)}


def test_param_patterns_force_a_metric_looking_name_to_a_param():
    data = {"loss_scale": 128.0, "top1_acc_goal": 0.9, "val_loss": 0.3}
    default = interpret(record(data), RULES)
    # By default "acc" and "loss" in the names read as metrics.
    assert points(default) == {
        ("loss_scale", "{}", 0): (None, 128.0),
        ("top1_acc_goal", "{}", 0): (None, 0.9),
        ("loss", VAL, 0): (None, 0.3),
    }
    assert default.hparams == {}
    forced = interpret(record(data), FieldRules(param_patterns=(r"_scale$", r"_goal$")))
    assert points(forced) == {("loss", VAL, 0): (None, 0.3)}
    assert forced.hparams == {"loss_scale": 128.0, "top1_acc_goal": 0.9}


@pytest.mark.parametrize(
    "name",
    ["grad_accumulation_steps", "loss_weight", "test_size", "eval_steps", "val_check_interval", "num_val_samples"],
)
def test_names_ending_in_a_configuration_word_are_params(name):
    item = interpret(record({name: 4, "val_loss": 0.3}), RULES)
    assert item.hparams == {name: 4}
    assert points(item) == {("loss", VAL, 0): (None, 0.3)}


def test_custom_metric_patterns():
    data = {"throughput": 120.0, "dim": 64}
    assert interpret(record(data), RULES).hparams == {"throughput": 120.0, "dim": 64}
    rules = FieldRules(metric_patterns=(*RULES.metric_patterns, r"^throughput$"))
    item = interpret(record(data), rules)
    assert points(item) == {("throughput", "{}", 0): (None, 120.0)}
    assert item.hparams == {"dim": 64}


def test_descriptive_numbers_are_never_metrics():
    data = {"id": 3, "timestamp": 1_700_000_000, "duration_s": 12.5, "val_acc": 0.9, "end_time": 1_700_000_100}
    item = interpret(record(data), RULES)
    assert points(item) == {("acc", VAL, 0): (None, 0.9)}
    assert item.hparams == {}
    assert item.meta == {"id": 3, "timestamp": 1_700_000_000, "duration_s": 12.5, "end_time": 1_700_000_100}


# --- experiment, name, times ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "rules", "source", "expected"),
    [
        ({"experiment_name": "sweep-a", "loss": 1}, RULES, "x/LOG.jsonl", "sweep-a"),
        ({"project": "proj", "loss": 1}, RULES, "x/LOG.jsonl", "proj"),
        ({"experiment_name": "  padded  ", "loss": 1}, RULES, "x/LOG.jsonl", "padded"),
        ({"experiment_name": "sweep-a", "loss": 1}, FieldRules(experiment="forced"), "x/LOG.jsonl", "forced"),
        ({"loss": 1}, FieldRules(experiment="forced"), "x/LOG.jsonl", "forced"),
        ({"loss": 1}, RULES, "experiments/EXPERIMENT_LOG.jsonl", "EXPERIMENT_LOG"),
        ({"loss": 1}, RULES, "/abs/results/run_node2vec_best.json", "run_node2vec_best"),
        ({"experiment_name": "", "loss": 1}, RULES, "a/b.c.jsonl", "b"),
        ({"experiment_name": 12, "loss": 1}, RULES, "a/b.jsonl", "b"),
        ({"method": "Node2Vec (dim=128)", "loss": 1}, RULES, "a/b.jsonl", "b"),  # method is no experiment
        ({"tag": "t", "loss": 1}, FieldRules(experiment_fields=("tag",)), "a/b.jsonl", "t"),
    ],
)
def test_experiment(data, rules, source, expected):
    assert interpret(record(data, source=source), rules).experiment == expected


def test_grid_entry_inherits_experiment_and_time_from_its_document():
    (first, *_) = read_json(FIXTURES / "json" / "grid.json", "results/grid.json")
    item = interpret(first, RULES)
    assert item.experiment == "pq-grid"
    assert item.created_at == utc(2025, 3, 1, 10, 0, 0)
    assert item.hparams == {"p": 0.25, "q": 1}
    assert points(item) == {("ndcg", "{}", 0): (None, 0.31)}
    assert item.meta["document"] == {"search": "pq-grid", "created": "2025-03-01T10:00:00Z", "metric": "ndcg"}
    # The entry's own fields win over the document's.
    data = {**first.data, "search": "own", "date": "2025-04-01"}
    own = Record(first.source, first.locator, "json", data, first.parent)
    item = interpret(own, RULES)
    assert item.experiment == "own"
    assert item.created_at == utc(2025, 4, 1)


def test_keyed_summary_entries_are_named_by_method():
    records = list(read_json(FIXTURES / "json" / "keyed.json", "results/keyed.json"))
    items = [interpret(r, RULES) for r in records]
    assert [(i.name, i.experiment, i.record_id) for i in items] == [
        ("deepwalk", "keyed", None),
        ("node2vec", "keyed", None),
    ]
    assert points(items[0]) == {("p@10", "{}", 0): (None, 0.26), ("mrr", "{}", 0): (None, 0.41)}
    assert items[0].hparams == {"method": "deepwalk"}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"run_name": "a", "name": "b", "id": "c", "loss": 1}, "a"),
        ({"name": "b", "id": "c", "loss": 1}, "b"),
        ({"title": "t", "id": "c", "loss": 1}, "t"),
        ({"name": "  ", "id": "c", "loss": 1}, "c"),
        ({"experiment_id": 7, "loss": 1}, "7"),
        ({"run_id": "r-1", "loss": 1}, "r-1"),
        ({"model": "gcn", "loss": 1}, "gcn"),
        ({"loss": 1}, None),
    ],
)
def test_name(data, expected):
    assert interpret(record(data), RULES).name == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"experiment_id": "e", "run_id": "r", "id": "i"}, "e"),
        ({"run_id": "r", "id": "i"}, "r"),
        ({"id": 42}, "42"),
        ({"id": {"nested": 1}}, None),
        ({"uuid": "u"}, "u"),
        ({}, None),
    ],
)
def test_record_id(data, expected):
    assert interpret(record({**data, "loss": 1.0}), RULES).record_id == expected


def test_id_field_override():
    item = interpret(record({"id": "i", "key": "k", "loss": 1}), FieldRules(id_fields=("key",)))
    assert item.record_id == "k"
    assert item.name == "k"


@pytest.mark.parametrize(
    ("data", "created", "naive"),
    [
        ({"timestamp": "2025-03-10T09:00:00Z"}, utc(2025, 3, 10, 9), False),
        ({"date": "2025-03-10"}, utc(2025, 3, 10), True),
        ({"created_at": 1_741_597_200}, utc(2025, 3, 10, 9), False),
        ({"timestamp": "not a time", "date": "2025-03-10 09:00:00"}, utc(2025, 3, 10, 9), True),
        ({"timestamp": "2025-03-10T09:00:00Z", "date": "2020-01-01"}, utc(2025, 3, 10, 9), False),
        ({"when": "2025-03-10T09:00:00Z"}, None, False),
        ({}, None, False),
    ],
)
def test_created_at(data, created, naive):
    item = interpret(record({**data, "loss": 1.0}), RULES)
    assert item.created_at == created
    assert item.naive_time is naive


def test_created_at_naive_in_timezone():
    item = interpret(record({"timestamp": "2025-07-01T12:00:00", "loss": 1.0}), FieldRules(timezone="Europe/Paris"))
    assert item.created_at == utc(2025, 7, 1, 10)
    assert item.naive_time is True


def test_time_field_override():
    item = interpret(record({"when": "2025-03-10T09:00:00Z", "loss": 1}), FieldRules(time_fields=("when",)))
    assert item.created_at == utc(2025, 3, 10, 9)


@pytest.mark.parametrize(
    ("data", "ended"),
    [
        ({"timestamp": "2025-03-10T09:00:00Z", "end_time": "2025-03-10T10:00:00Z"}, utc(2025, 3, 10, 10)),
        ({"timestamp": "2025-03-10T09:00:00Z", "duration_s": 3600}, utc(2025, 3, 10, 10)),
        ({"timestamp": "2025-03-10T09:00:00Z", "wall_time_s": 1.5}, utc(2025, 3, 10, 9, 0, 1, 500000)),
        (
            {"timestamp": "2025-03-10T09:00:00Z", "end_time": "2025-03-10T11:00:00Z", "duration_s": 60},
            utc(2025, 3, 10, 11),
        ),
        ({"end_time": "2025-03-10T10:00:00Z"}, utc(2025, 3, 10, 10)),
        ({"duration_s": 3600}, None),
        ({"timestamp": "2025-03-10T09:00:00Z", "duration_s": -5}, None),
        ({"timestamp": "2025-03-10T09:00:00Z", "duration_s": "1h"}, None),
        ({"timestamp": "2025-03-10T09:00:00Z"}, None),
    ],
)
def test_ended_at(data, ended):
    assert interpret(record({**data, "loss": 1.0}), RULES).ended_at == ended


def test_tags():
    item = interpret(record({"tags": ["a", "b", "a"], "tag": "c", "keywords": [1, 2], "loss": 1}), RULES)
    assert item.tags == ["a", "b", "c"]
    assert item.hparams == {"keywords": [1, 2]}


# --- not an experiment ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"event": "x", "metrics": {}},
        {"event": "checkpoint saved", "level": "info"},
        {"config": {}, "note": "empty"},
        {},
    ],
)
def test_not_an_experiment(data):
    with pytest.raises(NotAnExperiment, match="no hyperparameters and not one number"):
        interpret(record(data), RULES)


@pytest.mark.parametrize(
    "data",
    [
        {"config": {"optimizer": "adam"}},  # hparams, no number
        {"event": "x", "metrics": {}, "step": 3},  # a number, even if not a metric
        {"note": "n", "extra": {"deep": [1]}},  # a number anywhere
    ],
)
def test_is_an_experiment(data):
    interpret(record(data), RULES)


# --- the normalizer ------------------------------------------------------------------------------


def test_frames_have_the_contract_columns_and_dtypes():
    frames = Normalizer().normalize([record(NESTED), record(FLAT, locator="line 2")])
    assert tuple(frames.runs.columns) == RUN_COLUMNS
    assert tuple(frames.metrics.columns) == METRIC_COLUMNS
    assert len(frames.runs) == 2
    assert len(frames.metrics) == 13 + 6
    assert frames.metrics["epoch"].dtype == "Int64"
    assert frames.metrics["step"].dtype == "int64"
    assert frames.metrics["value"].dtype == "float64"
    assert frames.metrics["time"].dtype == "float64"
    for column in ("created_at", "ended_at"):
        dtype = frames.runs[column].dtype
        assert isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC"
    results = frames.metrics[frames.metrics["epoch"].isna()]
    assert len(results) == 5 + 6  # the nested record's results and every flat metric
    assert frames.metrics["epoch"].dropna().tolist() == [0, 1, 2, 0, 1, 2, 0, 1]


def test_empty_frames_keep_the_contract():
    frames = Normalizer().normalize([])
    assert tuple(frames.runs.columns) == RUN_COLUMNS
    assert tuple(frames.metrics.columns) == METRIC_COLUMNS
    assert frames.metrics["epoch"].dtype == "Int64"
    assert frames.runs.empty and frames.metrics.empty


def test_rerun_same_id_different_content():
    src = "experiments/LOG.jsonl"
    first = record({"experiment_id": "exp_013", "val_loss": 0.5}, src, "line 13")
    second = record({"experiment_id": "exp_013", "val_loss": 0.4}, src, "line 30")
    third = record({"experiment_id": "exp_013", "val_loss": 0.3}, src, "line 31")
    frames = Normalizer().normalize([first, second, third])
    assert frames.runs["run_key"].tolist() == [f"{src}#exp_013", f"{src}#exp_013#2", f"{src}#exp_013#3"]
    assert [(r.source, r.locator) for r in frames.reruns] == [(src, "line 30"), (src, "line 31")]
    assert frames.reruns[0].reason == "re-run of id 'exp_013' (occurrence 2)"
    by_key = frames.metrics.set_index("run_key")["value"].to_dict()
    assert by_key == {f"{src}#exp_013": 0.5, f"{src}#exp_013#2": 0.4, f"{src}#exp_013#3": 0.3}


def test_same_content_twice_keeps_its_key():
    src = "experiments/LOG.jsonl"
    a = {"experiment_id": "exp_010", "val_loss": 0.5}
    b = {"experiment_id": "exp_010", "val_loss": 0.4}
    frames = Normalizer().normalize([record(a, src, "line 10"), record(a, src, "line 27")])
    assert frames.runs["run_key"].tolist() == [f"{src}#exp_010"] * 2
    assert frames.runs["content_hash"].nunique() == 1
    assert frames.reruns == []
    # A, B, A: the third is the first again, not a third occurrence.
    frames = Normalizer().normalize([record(a, src), record(b, src), record(a, src)])
    assert frames.runs["run_key"].tolist() == [f"{src}#exp_010", f"{src}#exp_010#2", f"{src}#exp_010"]
    assert len(frames.reruns) == 1


def test_keys_are_remembered_across_chunks():
    normalizer = Normalizer()
    src = "log.jsonl"
    one = normalizer.normalize([record({"id": "x", "loss": 1.0}, src)])
    two = normalizer.normalize([record({"id": "x", "loss": 2.0}, src)])
    assert one.runs["run_key"].tolist() == ["log.jsonl#x"]
    assert two.runs["run_key"].tolist() == ["log.jsonl#x#2"]
    assert len(two.reruns) == 1


def test_same_id_in_two_sources_is_two_runs_not_a_rerun():
    data = {"id": "x", "loss": 1.0}
    frames = Normalizer().normalize([record(data, "a.jsonl"), record({**data, "loss": 2.0}, "b.jsonl")])
    assert frames.runs["run_key"].tolist() == ["a.jsonl#x", "b.jsonl#x"]
    assert frames.reruns == []


def test_record_without_id_is_keyed_by_content():
    rec = record({"lr": 0.1, "val_loss": 0.5}, "results/x.json", "$")
    frames = Normalizer().normalize([rec])
    digest = content_hash(rec, RULES)
    assert frames.runs["run_key"].tolist() == [f"results/x.json@{digest[:16]}"]
    assert frames.runs["content_hash"].tolist() == [digest]
    assert len(digest) == 32
    other = Normalizer().normalize([record({"lr": 0.2, "val_loss": 0.5}, "results/x.json", "$")])
    assert other.runs["run_key"].iloc[0] != frames.runs["run_key"].iloc[0]


def test_content_hash():
    base = record({"id": "a", "mrr": 0.5})
    assert content_hash(base, RULES) == content_hash(record({"mrr": 0.5, "id": "a"}, locator="line 9"), RULES)
    with_nan = record({"id": "a", "mrr": math.nan})
    with_null = record({"id": "a", "mrr": None})
    assert content_hash(with_nan, RULES) != content_hash(with_null, RULES)
    assert content_hash(record({"id": "a", "mrr": math.inf}), RULES) != content_hash(with_nan, RULES)
    assert content_hash(base, RULES) != content_hash(base, FieldRules(timezone="Europe/Paris"))
    assert content_hash(base, RULES) != content_hash(record(base.data, parent={"search": "s"}), RULES)


def test_nan_and_null_records_with_one_id_are_a_rerun():
    rows = [record({"id": "a", "config": {"x": 1}, "results": {"mrr": v}}) for v in (math.nan, None)]
    frames = Normalizer().normalize(rows)
    assert frames.runs["run_key"].tolist() == ["experiments/LOG.jsonl#a", "experiments/LOG.jsonl#a#2"]


def test_normalizer_counts_skips_and_naive_times():
    rows = [
        record({"id": "a", "timestamp": "2025-01-01 10:00:00", "loss": 1.0}, locator="line 1"),
        record({"event": "x", "metrics": {}}, locator="line 2"),
        record({"id": "b", "timestamp": "2025-01-01T10:00:00Z", "loss": 1.0}, locator="line 3"),
        record({"id": "c", "date": "2025-01-02", "loss": 1.0}, locator="line 4"),
    ]
    frames = Normalizer(FieldRules(timezone="Europe/Paris")).normalize(rows)
    assert frames.naive_timestamps == 2
    assert [(s.locator, s.reason) for s in frames.skipped] == [
        ("line 2", "not an experiment: no hyperparameters and not one number")
    ]
    assert frames.runs["locator"].tolist() == ["line 1", "line 3", "line 4"]
    assert frames.runs["created_at"].tolist() == [
        pd.Timestamp("2025-01-01T09:00:00Z"),
        pd.Timestamp("2025-01-01T10:00:00Z"),
        pd.Timestamp("2025-01-01T23:00:00Z"),
    ]


def test_fixture_log_through_the_normalizer():
    path = FIXTURES / "jsonl" / "good.jsonl"
    records = [r for r in read_jsonl(path, "good.jsonl") if isinstance(r, Record)]
    frames = Normalizer().normalize(records)
    runs = frames.runs.set_index("locator")
    assert runs["run_key"].to_dict() == {
        "line 1": "good.jsonl#exp_1",
        "line 4": "good.jsonl#exp_2",
        "line 5": "good.jsonl#exp_3",
    }
    assert runs.loc["line 1", "hparams"] == {"lr": 0.1}
    metrics = {(m.run_key, m.name, m.context): m.value for m in frames.metrics.itertuples()}
    assert metrics[("good.jsonl#exp_1", "loss", VAL)] == 0.5
    assert math.isnan(metrics[("good.jsonl#exp_2", "mrr", "{}")])
    assert metrics[("good.jsonl#exp_3", "loss", "{}")] == 0.25
    # `best` reads as a result (a metric, Infinity kept); `worst` does not: a param, -Infinity as a float
    assert metrics[("good.jsonl#exp_2", "best", "{}")] == math.inf
    assert runs.loc["line 4", "hparams"] == {"worst": -math.inf}


def test_a_top_level_list_of_scores_is_per_fold():
    # cross_val_score's output kept beside the config of a flat record
    item = interpret(record({"C": 1.0, "scores": [0.8, 0.82, 0.79], "hidden_dims": [64, 32]}), RULES)
    assert points(item) == {("scores", f'{{"fold":"{i}"}}', 0): (None, v) for i, v in enumerate([0.8, 0.82, 0.79])}
    assert item.hparams == {"C": 1.0, "hidden_dims": [64, 32]}


def test_a_list_of_metric_names_is_configuration_not_a_result_section():
    item = interpret(record({"lr": 0.1, "metrics": ["accuracy", "f1"], "val_acc": 0.8}), RULES)
    assert item.hparams == {"lr": 0.1, "metrics": ["accuracy", "f1"]}
    assert points(item) == {("acc", VAL, 0): (None, 0.8)}


def test_long_format_rows_keep_their_other_strings_as_context():
    rows = [{"metric": "f1", "split": "test", "value": 0.7}, {"metric": "f1", "split": "dev", "value": "nan"}]
    item = interpret(record({"config": {}, "results": rows}), RULES)
    got = {(n, c): v for n, c, _, _, v, _ in item.points}
    assert got[("f1", '{"split":"test"}')] == 0.7 and math.isnan(got[("f1", '{"split":"dev"}')])
