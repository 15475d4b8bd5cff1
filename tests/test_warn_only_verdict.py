"""The verdict says what is true under --mlsupply-warn-only (issue 12, item 10).

It used to print "environment matches the lock ... 1 error": the run passes, but
the environment does not match, and the line must say the errors were ignored.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from pytest_mlsupply.findings import Finding, Kind, Report, Severity
from pytest_mlsupply.render import (
    GATE_FAILED,
    GATE_PASSED,
    WARN_ONLY_IGNORED,
    WARN_ONLY_NOTE,
    ignored_by_warn_only,
    verdict_line,
)

from gatehelpers import change_locked_version, locked


def _report(*severities: Severity) -> Report:
    findings = [
        Finding(Kind.VERSION_CHANGED, severity, f"pkg{i}", "changed")
        for i, severity in enumerate(severities)
    ]
    return Report.build(findings, lock_path="mlsupply.lock", distributions_checked=7)


@pytest.mark.parametrize(
    ("severities", "failed", "warn_only", "expected"),
    [
        ((), False, False, f"{GATE_PASSED} (mlsupply.lock): 7 distributions, 0 errors, "),
        ((Severity.ERROR,), True, False, f"{GATE_FAILED} (mlsupply.lock): 7 distributions, 1 e"),
        ((Severity.WARNING,), False, True, f"{GATE_PASSED} (mlsupply.lock): 7 distributions, 0 e"),
        (
            (Severity.ERROR,) * 6,
            False,
            True,
            f"{GATE_FAILED} (mlsupply.lock): 7 distributions, 6 errors, ",
        ),
    ],
)
def test_verdict_line(
    severities: tuple[Severity, ...], failed: bool, warn_only: bool, expected: str
) -> None:
    line = verdict_line(_report(*severities), failed=failed, warn_only=warn_only)
    assert line.startswith(expected)
    ignored = warn_only and Severity.ERROR in severities
    assert (WARN_ONLY_IGNORED in line) == ignored
    if ignored:
        assert line.endswith(f"; 6 errors {WARN_ONLY_IGNORED}")
    assert (GATE_PASSED in line) != (failed or ignored)


def test_ignored_counts_errors_only_and_only_under_warn_only() -> None:
    assert ignored_by_warn_only(_report(Severity.ERROR), warn_only=True) == (
        f"1 error {WARN_ONLY_IGNORED}"
    )
    assert ignored_by_warn_only(_report(Severity.ERROR), warn_only=False) == ""
    assert ignored_by_warn_only(_report(Severity.WARNING, Severity.INFO), warn_only=True) == ""


@pytest.fixture
def drifted(pytester: pytest.Pytester) -> pytest.Pytester:
    """A suite whose lock says iniconfig 0.0.1 while another version is installed."""
    pytester.makepyfile(test_model="def test_fit():\n    assert True\n")
    change_locked_version(locked(pytester), "iniconfig", "0.0.1")
    return pytester


def test_warn_only_verdict_says_the_errors_were_ignored(drifted: pytest.Pytester) -> None:
    result = drifted.runpytest_subprocess(
        "--mlsupply",
        "--mlsupply-warn-only",
        "--junitxml",
        "junit.xml",
        "--mlsupply-report",
        "report.json",
    )
    assert result.ret == 0
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            f"mlsupply: {GATE_FAILED} (mlsupply.lock): * distributions, 1 error, 0 warnings, "
            f"*; 1 error {WARN_ONLY_IGNORED}*",
            f"mlsupply: {WARN_ONLY_NOTE}",
        ]
    )
    assert GATE_PASSED not in result.stdout.str()
    tree = ET.parse(drifted.path / "junit.xml")
    [gate] = [c for c in tree.iter("testcase") if c.get("classname") == "mlsupply"]
    properties = {p.get("name"): p.get("value") for p in gate.iter("property")}
    assert properties["mlsupply"].endswith(f"; 1 error {WARN_ONLY_IGNORED}")
    document = json.loads((drifted.path / "report.json").read_text())
    assert document["result"] == "passed"  # the run passed: the policy says why
    assert document["policy"] == {"strict": False, "warn_only": True}
    assert document["summary"]["errors"] == 1


def test_warn_only_without_errors_still_matches(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_model="def test_fit():\n    assert True\n")
    locked(pytester)
    result = pytester.runpytest_subprocess("--mlsupply", "--mlsupply-warn-only")
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"mlsupply: {GATE_PASSED} (mlsupply.lock): * 0 errors, *"])
    assert WARN_ONLY_IGNORED not in result.stdout.str()


def test_without_warn_only_the_failed_verdict_is_unchanged(drifted: pytest.Pytester) -> None:
    result = drifted.runpytest_subprocess("--mlsupply")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"mlsupply: {GATE_FAILED} (mlsupply.lock): * 1 error, *"])
    assert WARN_ONLY_IGNORED not in result.stdout.str()
