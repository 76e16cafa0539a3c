"""Evaluating one run: edges of every kind, missing values in each mode, score and status."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from etl.governance.evaluate import evaluate
from etl.governance.model import FAIL, PASS, WARN, Outcome, RunView, TraceSummary, Validation, context_key
from etl.governance.rules import RuleSet, load_rules, parse_rules

from .conftest import FIXTURES, TEST_FIXTURES

VAL = context_key({"subset": "val"})
NAN = float("nan")
INF = float("inf")


def ruleset(*bodies: str) -> RuleSet:
    text = 'version = "v1"\n' + "".join(f'[[rules]]\nid = "r{i}"\n{body}\n' for i, body in enumerate(bodies, 1))
    return parse_rules(text, "r.toml")


def run(
    params: Mapping[str, Any] | None = None,
    *,
    name: str | None = "run-1",
    experiment: str | None = "node2vec",
    series: Mapping[tuple[str, str], Sequence[float]] | None = None,
    loadable: bool = True,
) -> RunView:
    series = series or {}
    traces = {key: TraceSummary.of(list(range(len(values))), values) for key, values in series.items()}
    return RunView(
        key="k",
        experiment=experiment,
        name=name,
        params=params or {},
        traces=traces,
        series=(lambda metric, ctx: series[(metric, ctx)]) if loadable else None,
    )


def one(rules: RuleSet, view: RunView) -> Outcome:
    (outcome,) = evaluate(rules, view).outcomes
    return outcome


LR = 'kind = "range"\nfield = "hparams.lr"\nmin = 0.0001\nmax = 0.1'


# Bounds


@pytest.mark.parametrize(
    ("lr", "outcome", "message"),
    [
        (0.0001, "pass", "hparams.lr = 0.0001 is within [0.0001, 0.1]"),
        (0.1, "pass", "hparams.lr = 0.1 is within [0.0001, 0.1]"),
        (0.01, "pass", "hparams.lr = 0.01 is within [0.0001, 0.1]"),
        (0.1000001, "fail", "hparams.lr = 0.1000001 is above max 0.1"),
        (0.0000999, "fail", "hparams.lr = 9.99e-05 is below min 0.0001"),
        (INF, "fail", "hparams.lr = inf is above max 0.1"),
        (-INF, "fail", "hparams.lr = -inf is below min 0.0001"),
        (NAN, "fail", "hparams.lr is NaN, which fails every bound"),
    ],
)
def test_range_is_inclusive(lr: float, outcome: str, message: str) -> None:
    result = one(ruleset(LR), run({"hparams": {"lr": lr}}))
    assert (result.outcome, result.counts_as, result.field, result.message) == (outcome, outcome, "hparams.lr", message)
    assert result.value == lr or math.isnan(lr)


def test_int_value_against_float_bounds_and_min_max_kinds() -> None:
    rules = ruleset(
        'kind = "min"\nfield = "hparams.epochs"\nmin = 10', 'kind = "max"\nfield = "hparams.epochs"\nmax = 10'
    )
    at = evaluate(rules, run({"hparams": {"epochs": 10}})).outcomes
    assert [(o.outcome, o.message) for o in at] == [
        ("pass", "hparams.epochs = 10 is at least 10"),
        ("pass", "hparams.epochs = 10 is at most 10"),
    ]
    below = evaluate(rules, run({"hparams": {"epochs": 9}})).outcomes
    assert [o.outcome for o in below] == ["fail", "pass"]
    assert below[0].message == "hparams.epochs = 9 is below min 10"
    above = evaluate(rules, run({"hparams": {"epochs": 11}})).outcomes
    assert [o.outcome for o in above] == ["pass", "fail"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.01", "hparams.lr: expected a number, got str '0.01'"),
        (True, "hparams.lr: expected a number, got bool True"),
        ([0.01], "hparams.lr: expected a number, got list [0.01]"),
        ({"v": 1}, "hparams.lr: expected a number, got dict {'v': 1}"),
    ],
)
def test_bounds_reject_what_is_not_a_number(value: Any, message: str) -> None:
    result = one(ruleset(LR), run({"hparams": {"lr": value}}))
    assert (result.outcome, result.counts_as, result.value, result.message) == ("fail", "fail", value, message)


def test_custom_message_replaces_the_default_and_keeps_the_cause_of_odd_failures() -> None:
    rules = ruleset(LR + '\nmessage = "learning rate outside [1e-4, 0.1]"')
    assert one(rules, run({"hparams": {"lr": 0.5}})).message == "learning rate outside [1e-4, 0.1]"
    assert one(rules, run({"hparams": {"lr": "0.5"}})).message == (
        "learning rate outside [1e-4, 0.1] (hparams.lr: expected a number, got str '0.5')"
    )
    assert one(rules, run({"hparams": {"lr": 0.05}})).message == "hparams.lr = 0.05 is within [0.0001, 0.1]"
    assert one(rules, run({})).message == "learning rate outside [1e-4, 0.1] (hparams.lr is missing)"


# Field resolution


LRS = 'kind = "range"\nfield = ["hparams.lr", "hparams.learning_rate", "hparams.optimizer.lr"]\nmin = 0.0001\nmax = 0.1'


@pytest.mark.parametrize(
    ("params", "field", "value"),
    [
        ({"hparams": {"lr": 0.01, "learning_rate": 5.0}}, "hparams.lr", 0.01),
        ({"hparams": {"lr": None, "learning_rate": 0.02}}, "hparams.learning_rate", 0.02),
        ({"hparams": {"optimizer": {"lr": 0.03}}}, "hparams.optimizer.lr", 0.03),
        ({"hparams": {"optimizer.lr": 0.04}}, "hparams.optimizer.lr", 0.04),
        ({"hparams.optimizer.lr": 0.05}, "hparams.optimizer.lr", 0.05),
        ({"hparams.optimizer": {"lr": 0.06}}, "hparams.optimizer.lr", 0.06),
    ],
)
def test_first_present_field_wins_and_keys_may_hold_dots(params: dict, field: str, value: float) -> None:
    result = one(ruleset(LRS), run(params))
    assert (result.outcome, result.field, result.value) == ("pass", field, value)


def test_longest_dotted_key_is_tried_first_then_shorter() -> None:
    both = {"hparams": {"optimizer.lr": 0.07, "optimizer": {"lr": 0.5}}}
    assert one(ruleset(LRS), run(both)).value == 0.07
    # A longer key that leads nowhere falls back to the nested path.
    dead_end = {"hparams": {"optimizer.lr": None, "optimizer": {"lr": 0.08}}}
    assert one(ruleset(LRS), run(dead_end)).value == 0.08


def test_a_path_through_a_non_mapping_is_missing() -> None:
    result = one(ruleset(LRS), run({"hparams": {"lr": None, "optimizer": "adam"}}))
    assert (result.outcome, result.field, result.message) == (
        "missing",
        "hparams.lr",
        "none of hparams.lr, hparams.learning_rate, hparams.optimizer.lr is set",
    )


def test_name_and_experiment_are_the_runs_not_params() -> None:
    rules = ruleset(
        'kind = "one_of"\nfield = "name"\nvalues = ["a"]', 'kind = "one_of"\nfield = "experiment"\nvalues = ["e"]'
    )
    view = run({"name": "b", "experiment": "f"}, name="a", experiment="e")
    assert [o.outcome for o in evaluate(rules, view).outcomes] == ["pass", "pass"]
    assert [o.outcome for o in evaluate(rules, run(name=None, experiment=None)).outcomes] == ["missing", "missing"]


# Missing values


@pytest.mark.parametrize(("mode", "counts_as"), [("fail", "fail"), ("pass", "pass"), ("skip", None)])
def test_missing_in_each_mode(mode: str, counts_as: str | None) -> None:
    result = one(ruleset(LR + f'\nmissing = "{mode}"'), run({"hparams": {}}))
    assert (result.outcome, result.counts_as, result.field, result.value, result.message) == (
        "missing",
        counts_as,
        "hparams.lr",
        None,
        "hparams.lr is missing",
    )


def test_missing_defaults_to_fail_and_none_is_missing() -> None:
    result = one(ruleset(LR), run({"hparams": {"lr": None}}))
    assert (result.outcome, result.counts_as) == ("missing", "fail")


def test_required() -> None:
    rules = ruleset('kind = "required"\nfield = "hparams.seed"\nmessage = "set a seed"')
    assert one(rules, run({"hparams": {"seed": 0}})).outcome == "pass"  # 0 and False are values
    assert one(rules, run({"hparams": {"seed": False}})).outcome == "pass"
    absent = one(rules, run({"hparams": {"seed": None}}))
    assert (absent.outcome, absent.counts_as, absent.message) == ("missing", "fail", "set a seed")


# Pattern, one_of, type


NAMING = 'kind = "pattern"\nfield = "name"\nregex = \'^[a-z0-9]+(-[a-z0-9]+)*$\'\nseverity = "warning"'


@pytest.mark.parametrize(
    ("name", "outcome", "message"),
    [
        ("node2vec-baseline-3", "pass", "name = 'node2vec-baseline-3' matches '^[a-z0-9]+(-[a-z0-9]+)*$'"),
        ("Node2Vec_baseline", "fail", "name = 'Node2Vec_baseline' does not match '^[a-z0-9]+(-[a-z0-9]+)*$'"),
        ("trailing-", "fail", "name = 'trailing-' does not match '^[a-z0-9]+(-[a-z0-9]+)*$'"),
    ],
)
def test_pattern(name: str, outcome: str, message: str) -> None:
    result = one(ruleset(NAMING), run(name=name))
    assert (result.outcome, result.value, result.message) == (outcome, name, message)


def test_pattern_searches_so_unanchored_regexes_match_anywhere() -> None:
    result = one(
        ruleset('kind = "pattern"\nfield = "hparams.opt"\nregex = "adam"'), run({"hparams": {"opt": "nadamw"}})
    )
    assert result.outcome == "pass"


def test_pattern_needs_a_string() -> None:
    result = one(ruleset('kind = "pattern"\nfield = "hparams.dim"\nregex = "^1"'), run({"hparams": {"dim": 128}}))
    assert (result.outcome, result.message) == ("fail", "hparams.dim: expected a string, got int 128")


def test_one_of_tells_bools_from_numbers() -> None:
    rules = ruleset('kind = "one_of"\nfield = "p"\nvalues = [1, 2, "x"]')
    assert one(rules, run({"p": 2})).outcome == "pass"
    assert one(rules, run({"p": 2.0})).outcome == "pass"
    assert one(rules, run({"p": "x"})).outcome == "pass"
    bool_one = one(rules, run({"p": True}))
    assert (bool_one.outcome, bool_one.message) == ("fail", "p = True is not one of 1, 2, 'x'")


@pytest.mark.parametrize(
    ("type_", "good", "bad"),
    [
        ("number", [1, 1.5, INF], [True, "1", [1]]),
        ("int", [1, -3], [True, 1.0, "1"]),
        ("float", [1.0, NAN], [1, "1.0"]),
        ("string", ["", "x"], [1, ["x"]]),
        ("bool", [True, False], [1, 0, "true"]),
        ("list", [[], [1], (1,)], ["[]", {}]),
        ("dict", [{}, {"a": 1}], [[], "{}"]),
    ],
)
def test_type(type_: str, good: list, bad: list) -> None:
    rules = ruleset(f'kind = "type"\nfield = "p"\ntype = "{type_}"')
    assert [one(rules, run({"p": v})).outcome for v in good] == ["pass"] * len(good)
    assert [one(rules, run({"p": v})).outcome for v in bad] == ["fail"] * len(bad)


def test_type_messages() -> None:
    rules = ruleset('kind = "type"\nfield = "p"\ntype = "int"')
    assert one(rules, run({"p": True})).message == "p: expected int, got bool True"
    assert one(rules, run({"p": 3})).message == "p is a int"


# Threshold


def threshold(agg: str = "last", extra: str = "min = 0.8") -> RuleSet:
    return ruleset(f'kind = "threshold"\nmetric = "accuracy"\ncontext = {{ subset = "val" }}\nagg = "{agg}"\n{extra}')


ACC = [0.5, 0.9, 0.7, 0.6]  # first 0.5, last 0.6, min 0.5, max 0.9, mean 0.675


@pytest.mark.parametrize(
    ("agg", "bound", "outcome", "value"),
    [
        ("last", "min = 0.6", "pass", 0.6),
        ("last", "min = 0.61", "fail", 0.6),
        ("first", "max = 0.5", "pass", 0.5),
        ("first", "max = 0.49", "fail", 0.5),
        ("max", "min = 0.9", "pass", 0.9),
        ("max", "min = 0.91", "fail", 0.9),
        ("min", "min = 0.5", "pass", 0.5),
        ("min", "min = 0.51", "fail", 0.5),
        ("mean", "min = 0.675\nmax = 0.675", "pass", 0.675),
        ("mean", "min = 0.68", "fail", 0.675),
    ],
)
def test_threshold_aggregations(agg: str, bound: str, outcome: str, value: float) -> None:
    result = one(threshold(agg, bound), run(series={("accuracy", VAL): ACC}))
    assert (result.outcome, result.field) == (outcome, 'accuracy {"subset":"val"}')
    assert result.value == pytest.approx(value)


def test_threshold_messages() -> None:
    view = run(series={("accuracy", VAL): ACC})
    assert (
        one(threshold("last", "min = 0.8"), view).message == 'last of accuracy {"subset":"val"} = 0.6 is below min 0.8'
    )
    assert one(threshold("max", "min = 0.8"), view).message == 'max of accuracy {"subset":"val"} = 0.9 is at least 0.8'


def test_threshold_without_context_reads_the_empty_context() -> None:
    rules = ruleset('kind = "threshold"\nmetric = "loss"\nmax = 1')
    view = run(series={("loss", "{}"): [0.4], ("loss", VAL): [5.0]})
    result = one(rules, view)
    assert (result.outcome, result.value, result.field) == ("pass", 0.4, "loss")


def test_threshold_without_the_series_is_missing() -> None:
    result = one(threshold(), run(series={("accuracy", context_key({"subset": "train"})): [0.9]}))
    assert (result.outcome, result.counts_as, result.message) == (
        "missing",
        "fail",
        'no series accuracy {"subset":"val"} in this run',
    )
    skipped = one(threshold(extra='min = 0.8\nmissing = "skip"'), run())
    assert (skipped.outcome, skipped.counts_as) == ("missing", None)


@pytest.mark.parametrize("agg", ["min", "max"])
def test_all_nan_series_has_no_min_or_max_and_fails(agg: str) -> None:
    result = one(threshold(agg, "min = 0"), run(series={("accuracy", VAL): [NAN, NAN]}))
    assert (result.outcome, result.counts_as) == ("fail", "fail")
    assert result.message == f'{agg} of accuracy {{"subset":"val"}} is NaN, which fails every bound'


def test_nan_last_fails_and_mean_with_a_nan_is_nan() -> None:
    view = run(series={("accuracy", VAL): [0.9, NAN]})
    assert one(threshold("last", "min = 0"), view).outcome == "fail"
    assert one(threshold("max", "min = 0"), view).outcome == "pass"  # Aim's max leaves NaN out
    assert one(threshold("mean", "min = 0"), view).outcome == "fail"


def test_mean_when_series_cannot_be_loaded_is_missing() -> None:
    view = run(series={("accuracy", VAL): ACC}, loadable=False)
    result = one(threshold("mean", 'min = 0.5\nmissing = "pass"'), view)
    assert (result.outcome, result.counts_as, result.message) == (
        "missing",
        "pass",
        'series accuracy {"subset":"val"} could not be loaded to take its mean',
    )
    # Other aggregations need only the summary.
    assert one(threshold("last", "min = 0.5"), view).outcome == "pass"


# where


WHERE = LR + '\nwhere = { experiment = "^node2vec", "hparams.opt" = "adam" }'


@pytest.mark.parametrize(
    ("experiment", "opt", "outcome"),
    [
        ("node2vec-sweep", "adamw", "fail"),
        ("deepwalk", "adamw", "skip"),
        ("node2vec", "sgd", "skip"),
        ("node2vec", None, "skip"),
    ],
)
def test_where_limits_a_rule_to_matching_runs(experiment: str, opt: str | None, outcome: str) -> None:
    result = one(ruleset(WHERE), run({"hparams": {"lr": 0.5, "opt": opt}}, experiment=experiment))
    assert result.outcome == outcome
    assert result.counts_as == (None if outcome == "skip" else outcome)


def test_where_matches_values_as_text_and_says_why_it_skipped() -> None:
    rules = ruleset('kind = "required"\nfield = "hparams.seed"\nwhere = { "hparams.dim" = "^128$" }')
    assert one(rules, run({"hparams": {"dim": 128}})).outcome == "missing"
    skipped = one(rules, run({"hparams": {"dim": 64}}))
    assert (skipped.outcome, skipped.counts_as, skipped.message) == (
        "skip",
        None,
        "not applicable: hparams.dim ('64') does not match '^128$'",
    )


# python


@pytest.fixture
def custom(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TEST_FIXTURES / "rules"))


def python(fn: str, extra: str = "") -> RuleSet:
    return ruleset(f'kind = "python"\ncall = "custom_rules:{fn}"\n{extra}')


def test_python_true_false(custom: None) -> None:
    assert one(python("has_seed"), run({"hparams": {"seed": 1}})).message == "custom_rules:has_seed passed"
    failed = one(python("has_seed"), run({"hparams": {}}))
    assert (failed.outcome, failed.counts_as, failed.field, failed.message) == (
        "fail",
        "fail",
        None,
        "custom_rules:has_seed failed",
    )


def test_python_with_a_message(custom: None) -> None:
    assert [one(python("explained"), run({"gpus": n})).outcome for n in (1, 2)] == ["fail", "pass"]
    assert one(python("explained"), run({"gpus": 1})).message == "1 GPUs"


def test_python_none_skips(custom: None) -> None:
    result = one(python("not_mine"), run())
    assert (result.outcome, result.counts_as) == ("skip", None)


def test_python_exception_is_a_failure_naming_it(custom: None) -> None:
    result = one(python("crashes", 'message = "custom check"'), run())
    assert (result.outcome, result.counts_as, result.message) == (
        "fail",
        "fail",
        "custom check (custom_rules:crashes raised ValueError: boom)",
    )


def test_python_odd_return_is_a_failure(custom: None) -> None:
    result = one(python("wrong_return"), run())
    assert (result.outcome, result.message) == (
        "fail",
        "custom_rules:wrong_return returned int 1; expected True, False, (bool, message) or None",
    )


# Score and status


def verdict(rules: RuleSet, params: dict[str, Any]) -> tuple[float, str]:
    result = evaluate(rules, run(params))
    return result.score, result.status


def weighted(weights: Sequence[float], severities: Sequence[str] | None = None) -> RuleSet:
    severities = severities or ["error"] * len(weights)
    return ruleset(
        *(
            f'kind = "min"\nfield = "p{i}"\nmin = 1\nweight = {w}\nseverity = "{s}"'
            for i, (w, s) in enumerate(zip(weights, severities, strict=True))
        )
    )


def test_score_is_the_passed_share_of_evaluated_weight_rounded_to_one_decimal() -> None:
    rules = weighted([1, 1, 1])
    assert verdict(rules, {"p0": 1, "p1": 1, "p2": 0}) == (66.7, FAIL)
    assert verdict(rules, {"p0": 1, "p1": 0, "p2": 0}) == (33.3, FAIL)
    assert verdict(weighted([2, 1]), {"p0": 1, "p1": 0}) == (66.7, FAIL)
    assert verdict(weighted([3, 2, 2, 1]), {"p0": 1, "p1": 1, "p2": 1, "p3": 0}) == (87.5, FAIL)
    assert verdict(weighted([1, 1, 1, 1, 1, 1]), {"p0": 1}) == (16.7, FAIL)


def test_skipped_rules_leave_the_score() -> None:
    rules = ruleset(
        'kind = "min"\nfield = "a"\nmin = 1\nweight = 3',
        'kind = "min"\nfield = "b"\nmin = 1\nweight = 1\nmissing = "skip"',
        'kind = "min"\nfield = "c"\nmin = 1\nweight = 1\nmissing = "pass"',
    )
    assert verdict(rules, {"a": 0}) == (25.0, FAIL)  # b skipped; c missing counts as pass


def test_all_rules_skipped_is_a_perfect_pass() -> None:
    rules = ruleset(LR + '\nmissing = "skip"', 'kind = "required"\nfield = "x"\nwhere = { name = "^never$" }')
    result = evaluate(rules, run({}))
    assert (result.score, result.status) == (100.0, PASS)
    assert [o.counts_as for o in result.outcomes] == [None, None]


def test_zero_weights_only_score_100_but_still_set_the_status() -> None:
    assert verdict(weighted([0]), {"p0": 0}) == (100.0, FAIL)
    assert verdict(weighted([0, 1]), {"p0": 0, "p1": 1}) == (100.0, FAIL)


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"p0": 1, "p1": 1}, PASS),
        ({"p0": 1, "p1": 0}, WARN),
        ({"p0": 0, "p1": 1}, FAIL),
        ({"p0": 0, "p1": 0}, FAIL),
    ],
)
def test_status_precedence(params: dict, status: str) -> None:
    rules = weighted([1, 1], ["error", "warning"])
    assert verdict(rules, params)[1] == status


def test_outcomes_keep_rule_order_and_carry_rule_identity() -> None:
    rules = weighted([2, 0.5], ["warning", "error"])
    result = evaluate(rules, run({"p0": 5, "p1": 0}))
    assert [(o.rule, o.severity, o.weight, o.value) for o in result.outcomes] == [
        ("r1", "warning", 2.0, 5),
        ("r2", "error", 0.5, 0),
    ]
    assert result.violations == (result.outcomes[1],)


def test_the_shipped_standards_on_a_good_and_a_bad_run() -> None:
    rules = load_rules(FIXTURES / "rules.toml")
    good = RunView(
        key="a",
        experiment="node2vec-baseline",
        name="node2vec-baseline-3",
        params={"hparams": {"learning_rate": 0.025, "num_epochs": 20}},
        traces={("accuracy", VAL): TraceSummary.of([0, 1], [0.7, 0.85])},
    )
    assert evaluate(rules, good) == Validation(
        "team-standards-1",
        100.0,
        PASS,
        (
            Outcome("lr-range", "error", "pass", "pass", 3.0, "hparams.learning_rate", 0.025,
                    "hparams.learning_rate = 0.025 is within [0.0001, 0.1]"),
            Outcome("min-epochs", "error", "pass", "pass", 2.0, "hparams.num_epochs", 20,
                    "hparams.num_epochs = 20 is at least 10"),
            Outcome("val-accuracy", "error", "pass", "pass", 2.0, 'accuracy {"subset":"val"}', 0.85,
                    'last of accuracy {"subset":"val"} = 0.85 is at least 0.8'),
            Outcome("naming", "warning", "pass", "pass", 1.0, "name", "node2vec-baseline-3",
                    "name = 'node2vec-baseline-3' matches '^[a-z0-9]+(-[a-z0-9]+)*$'"),
        ),
    )  # fmt: skip
    bad = RunView("b", None, "Quick_Test", {"hparams": {"lr": 0.5, "epochs": 10}}, {})
    result = evaluate(rules, bad)
    assert [(o.rule, o.outcome) for o in result.outcomes] == [
        ("lr-range", "fail"),
        ("min-epochs", "pass"),
        ("val-accuracy", "missing"),
        ("naming", "fail"),
    ]
    assert (result.score, result.status) == (25.0, FAIL)
    assert result.to_param()["violations"][0]["message"] == "hparams.lr = 0.5 is above max 0.1"
