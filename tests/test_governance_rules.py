"""The rules file: the shipped standards load, and every kind of broken file says where it is broken."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from etl.errors import EtlError
from etl.governance.model import RuleInfo, context_key
from etl.governance.rules import RulesError, load_rules, parse_rules

from .conftest import FIXTURES, TEST_FIXTURES

RULES = TEST_FIXTURES / "rules"


@pytest.fixture
def custom_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(RULES))


def problems(path: Path) -> list[str]:
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return list(caught.value.problems)


def parse_problems(text: str) -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "r.toml")
    return list(caught.value.problems)


def test_shipped_standards_load() -> None:
    rules = load_rules(FIXTURES / "rules.toml")

    assert rules.version == "team-standards-1"
    assert rules.source == str(FIXTURES / "rules.toml")
    assert rules.info() == (
        RuleInfo("lr-range", "range", "error", 3.0),
        RuleInfo("min-epochs", "min", "error", 2.0),
        RuleInfo("val-accuracy", "threshold", "error", 2.0),
        RuleInfo("naming", "pattern", "warning", 1.0),
    )
    lr, epochs, accuracy, naming = rules.rules
    assert lr.fields == ("hparams.lr", "hparams.learning_rate", "hparams.optimizer.lr")
    assert (lr.min, lr.max) == (0.0001, 0.1)
    assert (epochs.min, epochs.max) == (10, None)
    assert epochs.fields[-1] == "hparams.max_epochs"
    assert (accuracy.metric, accuracy.context, accuracy.agg, accuracy.min) == (
        "accuracy",
        context_key({"subset": "val"}),
        "last",
        0.8,
    )
    assert naming.regex is not None and naming.regex.search("node2vec-baseline-3")
    assert not naming.regex.search("Node2Vec_baseline")
    # Lines of the [[rules]] headers, for messages about them.
    text = (FIXTURES / "rules.toml").read_text().splitlines()
    assert all(text[r.line - 1].strip() == "[[rules]]" for r in rules.rules)
    assert [r.position for r in rules.rules] == [1, 2, 3, 4]


def test_defaults_and_a_single_field() -> None:
    rules = parse_rules('version = "v"\n[[rules]]\nid = "seed"\nkind = "required"\nfield = "hparams.seed"\n', "r.toml")

    (rule,) = rules.rules
    assert (rule.fields, rule.severity, rule.weight, rule.missing, rule.message) == (
        ("hparams.seed",),
        "error",
        1.0,
        "fail",
        None,
    )
    assert rule.line == 2


def test_rules_error_is_an_etl_error() -> None:
    assert issubclass(RulesError, EtlError)


def test_unknown_kind_names_the_rule_and_its_line() -> None:
    path = RULES / "unknown_kind.toml"
    assert problems(path) == [
        f"{path}:9: rule 'epochs' (rule 2): unknown kind 'minimum' (did you mean 'min'?); "
        "expected one of range, min, max, threshold, required, pattern, one_of, type, python"
    ]


def test_bounds_of_the_wrong_type() -> None:
    path = RULES / "bad_bound.toml"
    assert problems(path) == [
        f"{path}:4: rule 'lr' (rule 1): min must be a number, got str '0.0001'",
        f"{path}:4: rule 'lr' (rule 1): max must be a number, got bool True",
    ]


def test_min_greater_than_max() -> None:
    path = RULES / "min_gt_max.toml"
    assert problems(path) == [f"{path}:9: rule 'lr-range' (rule 2): min 0.5 is greater than max 0.1"]


def test_regexes_that_do_not_compile_in_regex_and_where() -> None:
    path = RULES / "bad_regex.toml"
    assert problems(path) == [
        f"{path}:3: rule 'naming' (rule 1): regex '^[a-z' does not compile: unterminated character set at position 1",
        f"{path}:9: rule 'lr' (rule 2): where.experiment '(node2vec' does not compile: "
        "missing ), unterminated subpattern at position 0",
    ]


def test_duplicate_ids_point_at_the_first() -> None:
    path = RULES / "duplicate_ids.toml"
    assert problems(path) == [f"{path}:15: rule 'lr' (rule 3): duplicate id (also rule 1)"]


def test_unknown_key_suggests_the_likely_one() -> None:
    path = RULES / "unknown_key.toml"
    assert problems(path) == [f"{path}:3: rule 'lr-range' (rule 1): unknown key 'mni' (did you mean 'min'?)"]


def test_toml_syntax_error_names_the_line() -> None:
    path = RULES / "syntax_error.toml"
    assert problems(path) == [
        f"{path}:7: invalid TOML: Expected newline or end of document after a statement (column 10)"
    ]


def test_toml_error_at_end_of_document_names_the_last_line() -> None:
    assert parse_problems('version = "v1"\nx = "open') == [
        "r.toml:2: invalid TOML: Unterminated string (at end of file)"
    ]


def test_every_problem_is_reported_at_once() -> None:
    path = RULES / "many_problems.toml"
    assert problems(path) == [
        f"{path}: missing version (a non-empty string stored on every validated run)",
        f"{path}:2: rule 1: missing id",
        f"{path}:6: rule 'acc' (rule 2): severity must be one of error, warning, got str 'fatal'",
        f"{path}:6: rule 'acc' (rule 2): weight must be a number >= 0, got int -1",
        f"{path}:6: rule 'acc' (rule 2): kind 'threshold' needs metric (a tracked metric's name)",
        f"{path}:6: rule 'acc' (rule 2): agg must be one of last, max, min, first, mean, got str 'median'",
        f"{path}:14: rule 'opt' (rule 3): missing must be one of fail, pass, skip, got str 'ignore'",
        f"{path}:14: rule 'opt' (rule 3): kind 'one_of' needs values, a non-empty list, got list []",
    ]


def test_python_call_that_cannot_be_imported() -> None:
    path = RULES / "bad_import.toml"
    assert problems(path) == [
        f"{path}:3: rule 'seeded' (rule 1): cannot import call 'no_such_module_for_rules:check': "
        "ModuleNotFoundError: No module named 'no_such_module_for_rules'"
    ]


def test_python_call_is_imported_when_loaded(custom_rules: None) -> None:
    rules = parse_rules(
        'version = "v"\n[[rules]]\nid = "s"\nkind = "python"\ncall = "custom_rules:has_seed"\n', "r.toml"
    )
    assert rules.rules[0].fn is not None and rules.rules[0].fn.__name__ == "has_seed"


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        ("custom_rules:no_such", "cannot import call 'custom_rules:no_such': AttributeError: "),
        ("custom_rules:NOT_CALLABLE", "call 'custom_rules:NOT_CALLABLE' is not callable (int)"),
        ("custom_rules.has_seed", "call must look like 'package.module:function', got str 'custom_rules.has_seed'"),
    ],
)
def test_python_calls_that_are_not_functions(custom_rules: None, call: str, reason: str) -> None:
    (problem,) = parse_problems(f'version = "v"\n[[rules]]\nid = "s"\nkind = "python"\ncall = "{call}"\n')
    assert problem.startswith(f"r.toml:2: rule 's' (rule 1): {reason}")


RULE = 'version = "v"\n[[rules]]\nid = "r"\n'


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('kind = "range"\nfield = "a"\n', "kind 'range' needs min, max or both"),
        ('kind = "min"\nfield = "a"\nmax = 3\n', "key 'max' does not apply to kind 'min'"),
        ('kind = "min"\nfield = "a"\nmax = 3\n', "kind 'min' needs min"),
        ('kind = "max"\nfield = "a"\nmin = 3\n', "kind 'max' needs max"),
        ('kind = "range"\nmin = 1\n', "kind 'range' needs field (a run param path, 'name' or 'experiment'"),
        ('kind = "pattern"\nfield = "name"\n', "kind 'pattern' needs regex"),
        ('kind = "pattern"\nfield = "name"\nregex = "x"\nmin = 1\n', "key 'min' does not apply to kind 'pattern'"),
        ('kind = "type"\nfield = "a"\ntype = "integer"\n', "type must be one of number, int, float, string, bool"),
        ('kind = "range"\nfield = []\nmin = 1\n', "field must be a non-empty string or a non-empty list of them"),
        ('kind = "range"\nfield = ["a", 3]\nmin = 1\n', "field must be a non-empty string or a non-empty list"),
        ('kind = "range"\nfield = "a"\nmin = nan\n', "min must be a number, got float nan"),
        ('kind = "range"\nfield = "a"\nmin = 1\nweight = true\n', "weight must be a number >= 0, got bool True"),
        ('kind = "range"\nfield = "a"\nmin = 1\nwhere = "x"\n', "where must be a table of field = regex"),
        ('kind = "range"\nfield = "a"\nmin = 1\nwhere = { name = 3 }\n', "where.name must be a string, got int 3"),
        ('kind = "threshold"\nmetric = "acc"\ncontext = "val"\nmin = 1\n', "context must be a table"),
        ('kind = "python"\ncall = "os:getcwd"\nmissing = "skip"\n', "key 'missing' does not apply to kind 'python'"),
        ('field = "a"\nmin = 1\n', "missing kind (one of range, min, max"),
    ],
)
def test_rule_problems(body: str, reason: str) -> None:
    found = parse_problems(RULE + body)
    assert any(p.startswith(f"r.toml:2: rule 'r' (rule 1): {reason}") for p in found), found


def test_bounds_may_be_equal_or_infinite() -> None:
    rules = parse_rules(RULE + 'kind = "range"\nfield = "a"\nmin = 1\nmax = 1\n', "r.toml")
    assert (rules.rules[0].min, rules.rules[0].max) == (1, 1)
    rules = parse_rules(RULE + 'kind = "max"\nfield = "a"\nmax = inf\n', "r.toml")
    assert rules.rules[0].max == float("inf")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[rules]]\nid = "r"\nkind = "required"\nfield = "a"\n', "r.toml: missing version"),
        ('version = ""\n[[rules]]\nid = "r"\nkind = "required"\nfield = "a"\n', "r.toml: version must be a non-empty"),
        ('version = 3\n[[rules]]\nid = "r"\nkind = "required"\nfield = "a"\n', "r.toml: version must be a non-empty"),
        ('version = "v"\n', "r.toml: no rules (add at least one [[rules]] table)"),
        ('version = "v"\nrules = []\n', "r.toml: rules must be a non-empty array of [[rules]] tables"),
        ('version = "v"\n[[rule]]\nid = "r"\n', "r.toml: unknown top-level key 'rule' (did you mean 'rules'?)"),
    ],
)
def test_file_level_problems(text: str, expected: str) -> None:
    assert any(p.startswith(expected) for p in parse_problems(text))


def test_inline_rules_have_no_line_to_point_at() -> None:
    text = 'version = "v"\nrules = [{ id = "a", kind = "min", field = "x", min = 2, max = 1 }]\n'
    assert parse_problems(text) == ["r.toml: rule 'a' (rule 1): key 'max' does not apply to kind 'min'"]


def test_where_is_compiled_per_field() -> None:
    rules = parse_rules(
        RULE + 'kind = "required"\nfield = "a"\nwhere = { experiment = "^n2v", "hparams.opt" = "adam" }\n', "r.toml"
    )
    assert [(k, p.pattern) for k, p in rules.rules[0].where] == [("experiment", "^n2v"), ("hparams.opt", "adam")]
    assert all(isinstance(p, re.Pattern) for _, p in rules.rules[0].where)


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert problems(missing) == [f"{missing}: cannot read rules file: No such file or directory"]
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b'version = "\xff"\n')
    assert problems(binary) == [f"{binary}: not UTF-8 text (invalid start byte at byte 11)"]
