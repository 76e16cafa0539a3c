"""The governance report: its figures, the terminal summary, and each file format read back.

Reports are built from hand-made `Validation`s, so every expected figure below can be worked out
by hand from the table in `_report`; no Aim is involved.
"""

from __future__ import annotations

import csv
import json
import math
import re
from html.parser import HTMLParser

import pytest

from etl.governance.model import FAIL, PASS, WARN, Outcome, RuleInfo, Validation
from etl.governance.report import (
    CSV_COLUMNS,
    REPORT_SUFFIXES,
    CheckedRun,
    GovernanceReport,
    render_text,
    write_report,
)

RULES = (
    RuleInfo("lr", "range", "error", 2.0),
    RuleInfo("seed", "required", "warning", 1.0),
    RuleInfo("epochs", "range", "error", 1.0),
    RuleInfo("tags", "required", "warning", 1.0),
)
SEVERITY = {r.id: r.severity for r in RULES}
XSS_NAME = "<script>alert(1)</script>"
NASTY_MESSAGE = "lr is &\"'<> out of range"


def _o(rule: str, outcome: str, counts_as: str | None, value=1.0, message: str = "ok") -> Outcome:
    return Outcome(rule, SEVERITY.get(rule, "error"), outcome, counts_as, 1.0, f"hparams.{rule}", value, message)


def _v(status: str, score: float, *outcomes: Outcome) -> Validation:
    return Validation("2024.1", score, status, outcomes)


def _report(**kwargs) -> GovernanceReport:
    """Four checked runs and one active one.

    run  status score  lr         seed            epochs           tags
    r1   PASS   100    pass       pass            missing→pass     skip
    r2   WARN   80     pass       fail            missing→pass     skip
    r3   FAIL   40     fail       missing→fail    skip             skip
    r4   FAIL   9.9    fail       pass            fail             skip
    """
    runs = [
        CheckedRun(
            "h1",
            "exp-a",
            "good",
            "written",
            _v(
                PASS,
                100.0,
                _o("lr", "pass", "pass"),
                _o("seed", "pass", "pass"),
                _o("epochs", "missing", "pass"),
                _o("tags", "skip", None),
            ),
        ),
        CheckedRun(
            "h2",
            "exp-a",
            "meh",
            "unchanged",
            _v(
                WARN,
                80.0,
                _o("lr", "pass", "pass"),
                _o("seed", "fail", "fail", None, "seed not set"),
                _o("epochs", "missing", "pass"),
                _o("tags", "skip", None),
            ),
        ),
        CheckedRun(
            "h3",
            "exp-b",
            XSS_NAME,
            "written",
            _v(
                FAIL,
                40.0,
                _o("lr", "fail", "fail", float("nan"), NASTY_MESSAGE),
                _o("seed", "missing", "fail", None, "seed missing"),
                _o("epochs", "skip", None),
                _o("tags", "skip", None),
            ),
        ),
        CheckedRun(
            "h4",
            None,
            None,
            "rejected",
            _v(
                FAIL,
                9.9,
                _o("lr", "fail", "fail", [float("inf"), 3], "lr too big"),
                _o("seed", "pass", "pass"),
                _o("epochs", "fail", "fail", 0, "no epochs"),
                _o("tags", "skip", None),
            ),
            source="runs/x.jsonl:line 4",
        ),
        CheckedRun("h5", "exp-b", "busy", "active", None, reason="locked by pid 4242"),
    ]
    return GovernanceReport("2024.1", "rules/gov.toml", RULES, runs, **kwargs)


def _only(*statuses_scores: tuple[str, float]) -> GovernanceReport:
    runs = [
        CheckedRun(f"h{i}", "e", f"run{i}", "written", _v(status, score, _o("lr", "pass", "pass")))
        for i, (status, score) in enumerate(statuses_scores)
    ]
    return GovernanceReport("v", "r.toml", RULES[:1], runs)


# -- figures ----------------------------------------------------------------------------------


def test_summary_figures():
    report = _report()
    assert [r.run_hash for r in report.checked] == ["h1", "h2", "h3", "h4"]
    assert report.status_counts() == {PASS: 1, WARN: 1, FAIL: 2}
    assert report.state_counts()["written"] == 2
    assert report.state_counts()["active"] == 1
    assert report.compliance_rate == pytest.approx(0.25)
    assert report.mean_score == pytest.approx((100 + 80 + 40 + 9.9) / 4)
    assert [r.run_hash for r in report.active()] == ["h5"]


def test_rule_pass_rates_count_missing_as_counts_as_says():
    rates = _report().rule_pass_rates()
    # In file order; seed's missing counts as a fail (2/4, not 2/3), epochs' as a pass (2/3, not 0/1),
    # and tags was never evaluated.
    assert list(rates) == ["lr", "seed", "epochs", "tags"]
    assert rates["lr"] == pytest.approx(0.5)
    assert rates["seed"] == pytest.approx(0.5)
    assert rates["epochs"] == pytest.approx(2 / 3)
    assert rates["tags"] is None


def test_rule_counts_are_raw_outcomes():
    counts = _report().rule_counts()
    epochs = counts["epochs"]
    assert (epochs.passed, epochs.failed, epochs.missing, epochs.skipped) == (0, 1, 2, 1)
    assert (epochs.scored_pass, epochs.scored_fail) == (2, 1)
    assert counts["tags"].skipped == 4 and counts["tags"].pass_rate is None


def test_a_rule_only_outcomes_name_is_listed_after_the_files_rules():
    run = CheckedRun("h", "e", "n", "written", _v(FAIL, 0.0, _o("gone", "fail", "fail")))
    report = GovernanceReport("v", "r.toml", RULES[:1], [run])
    assert report.rule_pass_rates() == {"lr": None, "gone": 0.0}


def test_nothing_checked_has_no_rates():
    report = GovernanceReport("v", "r.toml", RULES, [CheckedRun("h", None, None, "active", None)])
    assert report.checked == []
    assert report.compliance_rate is None
    assert report.mean_score is None
    assert set(report.rule_pass_rates().values()) == {None}
    assert report.score_histogram() == [0] * 10
    assert not report.fails_on("warning")


def test_histogram_bin_edges():
    report = _only(*[(PASS, s) for s in (0.0, 9.9, 10.0, 50.0, 89.9, 90.0, 99.9, 100.0)])
    assert report.score_histogram() == [2, 1, 0, 0, 0, 1, 0, 0, 1, 3]


def test_failing_worst_status_first_then_lowest_score():
    report = _only((WARN, 5.0), (FAIL, 70.0), (PASS, 100.0), (FAIL, 30.0), (WARN, 60.0))
    assert [(r.validation.status, r.validation.score) for r in report.failing()] == [
        (FAIL, 30.0),
        (FAIL, 70.0),
        (WARN, 5.0),
        (WARN, 60.0),
    ]


@pytest.mark.parametrize(
    ("statuses", "level", "expected"),
    [
        ((PASS, WARN, FAIL), "error", True),
        ((PASS, WARN, FAIL), "warning", True),
        ((PASS, WARN, FAIL), None, False),
        ((PASS, WARN), "error", False),
        ((PASS, WARN), "warning", True),
        ((PASS, PASS), "warning", False),
        ((PASS, PASS), "error", False),
    ],
)
def test_fails_on(statuses, level, expected):
    assert _only(*[(s, 50.0) for s in statuses]).fails_on(level) is expected


def test_fails_on_unknown_level():
    with pytest.raises(ValueError, match="error, warning"):
        _report().fails_on("info")


def test_checked_run_state_and_validation_must_agree():
    with pytest.raises(ValueError, match="unknown run state"):
        CheckedRun("h", None, None, "done", _v(PASS, 100.0))
    with pytest.raises(ValueError, match="disagree"):
        CheckedRun("h", None, None, "active", _v(PASS, 100.0))
    with pytest.raises(ValueError, match="disagree"):
        CheckedRun("h", None, None, "written", None)


# -- text -------------------------------------------------------------------------------------


def test_render_text():
    text = render_text(_report(compliance_run="abc123"))
    assert "rules 2024.1 (rules/gov.toml)" in text
    assert "4 checked, 2 written, 1 unchanged, 1 active, 1 rejected" in text
    assert "1 PASS, 1 WARN, 2 FAIL; compliance 25.0%, mean score 57.5" in text
    assert re.search(r"seed\s+warning\s+50\.0% pass", text)
    assert re.search(r"tags\s+warning\s+n/a pass", text)
    lines = text.splitlines()
    # each failing run's line is followed by its violations, indented
    failing = [
        line
        for line in lines[lines.index("failing runs (3):") + 1 :]
        if line.startswith("  ") and not line.startswith("   ")
    ][:3]
    assert "          lr: lr too big" in lines
    # worst first; a run without a name is shown by its hash
    assert "h4" in failing[0] and "violates: lr, epochs" in failing[0]
    assert XSS_NAME in failing[1] and "violates: lr, seed" in failing[1]
    assert "meh" in failing[2] and "WARN" in failing[2]
    assert "held open by another process; try again later" in text
    assert "h5  busy  [exp-b]: locked by pid 4242" in text
    assert "abc123" in text
    assert "DRY RUN" not in text


def test_render_text_limits_failing_runs_and_says_dry_run():
    report = _only(*[(FAIL, float(i)) for i in range(25)])
    report.dry_run = True
    text = render_text(report)
    assert text.startswith("DRY RUN")
    assert sum(line.startswith("  FAIL") for line in text.splitlines()) == 20
    assert "... and 5 more" in text


# -- files ------------------------------------------------------------------------------------


def _reject_constant(name: str):
    raise AssertionError(f"invalid JSON constant {name}")


def test_json(tmp_path):
    path = tmp_path / "out" / "report.json"
    write_report(_report(compliance_run="abc123"), path)
    doc = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    assert doc["rules_version"] == "2024.1" and doc["compliance_run"] == "abc123"
    summary = doc["summary"]
    assert summary["checked"] == 4 and summary["runs"] == 5
    assert summary["statuses"] == {PASS: 1, WARN: 1, FAIL: 2}
    assert summary["compliance_rate"] == pytest.approx(0.25)
    assert [r["id"] for r in doc["rules"]] == ["lr", "seed", "epochs", "tags"]
    assert [r["pass_rate"] for r in doc["rules"]][:2] == [0.5, 0.5]
    assert doc["rules"][3]["pass_rate"] is None
    assert [b["count"] for b in doc["histogram"]] == [1, 0, 0, 0, 1, 0, 0, 0, 1, 1]
    assert doc["histogram"][9] == {"from": 90.0, "to": 100.0, "count": 1}
    runs = {r["run_hash"]: r for r in doc["runs"]}
    assert runs["h5"]["validation"] is None and runs["h5"]["reason"] == "locked by pid 4242"
    assert runs["h4"]["source"] == "runs/x.jsonl:line 4"
    h3 = runs["h3"]["validation"]
    assert (h3["status"], h3["score"], h3["rules_version"]) == (FAIL, 40.0, "2024.1")
    assert [o["rule"] for o in h3["violations"]] == ["lr", "seed"]
    assert len(h3["outcomes"]) == 4 and h3["outcomes"][1]["counts_as"] == "fail"
    # non-finite values are written as strings, never as bare NaN/Infinity
    assert h3["violations"][0]["value"] == "NaN"
    assert h3["violations"][0]["message"] == NASTY_MESSAGE
    assert runs["h4"]["validation"]["violations"][0]["value"] == ["Infinity", 3]


def test_csv(tmp_path):
    path = tmp_path / "report.csv"
    write_report(_report(), path)
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == CSV_COLUMNS
    assert len(rows) == 4 * len(RULES) + 1
    active = [r for r in rows if r["state"] == "active"]
    assert len(active) == 1 and active[0]["rule"] == "" and active[0]["status"] == ""
    lr = next(r for r in rows if r["run_hash"] == "h3" and r["rule"] == "lr")
    assert lr["name"] == XSS_NAME and lr["message"] == NASTY_MESSAGE
    assert (lr["status"], lr["score"], lr["outcome"], lr["counts_as"], lr["value"]) == (
        FAIL,
        "40.0",
        "fail",
        "fail",
        "NaN",
    )
    skipped = next(r for r in rows if r["run_hash"] == "h1" and r["rule"] == "tags")
    assert skipped["counts_as"] == ""


def test_csv_keeps_a_run_without_outcomes(tmp_path):
    report = GovernanceReport("v", "r.toml", (), [CheckedRun("h", "e", "n", "dry-run", _v(PASS, 100.0))])
    write_report(report, tmp_path / "r.csv")
    rows = list(csv.DictReader((tmp_path / "r.csv").open(encoding="utf-8", newline="")))
    assert [(r["run_hash"], r["state"], r["rule"]) for r in rows] == [("h", "dry-run", "")]


def test_markdown(tmp_path):
    report = _report()
    report.runs.append(CheckedRun("h6", "e|x", "pipe|name\nline2", "written", _v(FAIL, 1.0, _o("lr", "fail", "fail"))))
    path = tmp_path / "report.md"
    write_report(report, path)
    md = path.read_text(encoding="utf-8")
    assert "## Failing runs (4)" in md
    assert "| meh | h2 | exp-a | - | WARN | 80.0 | seed: seed not set |" in md
    assert "| pipe\\|name line2 | h6 | e\\|x | - | FAIL |" in md
    assert "<script>" not in md and "&lt;script&gt;" in md
    # every row of every table has as many unescaped pipes as its header
    for block in re.split(r"\n\s*\n", md):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in rows}
        assert len(widths) <= 1, block
    assert "| epochs | range | error | 1.0 | 66.7% (2/3) | 0 | 1 | 2 | 1 |" in md
    assert "## Active runs (1)" in md


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)


def test_html_is_escaped_and_self_contained(tmp_path):
    path = tmp_path / "report.html"
    write_report(_report(dry_run=True), path)
    html = path.read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert "http://" not in html and "https://" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "lr is &amp;&#34;&#39;&lt;&gt; out of range" in html
    parser = _Tags()
    parser.feed(html)
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(parser.tags)
    assert not [a for a, _ in parser.attrs if a in ("src", "href")]
    assert "@import" not in html and "url(" not in html
    assert parser.tags.count("rect") == 10
    assert "width: 66.7%" in html  # epochs' inline pass-rate bar
    assert "Dry run" in html
    assert "locked by pid 4242" in html


@pytest.mark.parametrize("suffix", REPORT_SUFFIXES)
def test_every_format_writes_an_empty_report(tmp_path, suffix):
    path = tmp_path / f"empty{suffix.upper()}"
    write_report(GovernanceReport("v", "r.toml", (), []), path)
    assert path.read_text(encoding="utf-8")


def test_unknown_suffix(tmp_path):
    path = tmp_path / "report.txt"
    with pytest.raises(ValueError, match=r"\.txt.*\.json, \.md, \.csv, \.html"):
        write_report(_report(), path)
    assert not path.exists()


def test_nan_score_sorts_worst_and_stays_valid_json(tmp_path):
    report = _only((FAIL, 50.0), (FAIL, math.nan))
    assert report.failing()[0].validation.score != report.failing()[0].validation.score
    assert report.mean_score == 50.0
    write_report(report, tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"), parse_constant=_reject_constant)
    assert [r["validation"]["score"] for r in doc["runs"]] == [50.0, "NaN"]
