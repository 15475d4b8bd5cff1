"""What CI systems read: waivers in a real run, SARIF files, GitHub annotations, JUnit entries."""

from __future__ import annotations

import datetime
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_mlsupply.render import GATE_FAILED, GATE_PASSED
from pytest_mlsupply.sarif import FINGERPRINT_KEY, SARIF_VERSION

from gatehelpers import change_locked_version, locked

USAGE_ERROR = pytest.ExitCode.USAGE_ERROR
FUTURE = (datetime.date.today() + datetime.timedelta(days=30)).isoformat()
PAST = (datetime.date.today() - datetime.timedelta(days=1)).isoformat()


@pytest.fixture
def drifted(pytester: pytest.Pytester) -> pytest.Pytester:
    """A suite whose lock says iniconfig 0.0.1 while another version is installed."""
    pytester.makepyfile(test_model="def test_fit():\n    assert True\n")
    change_locked_version(locked(pytester), "iniconfig", "0.0.1")
    return pytester


def write_waivers(path: Path, *entries: dict[str, str]) -> Path:
    lines = []
    for entry in entries:
        lines.append("[[waiver]]")
        lines.extend(
            f"{key} = {value}" if key == "expires" else f"{key} = {json.dumps(value)}"
            for key, value in entry.items()
        )
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def test_a_waived_finding_is_shown_and_the_tests_run(drifted: pytest.Pytester) -> None:
    write_waivers(
        drifted.path / "waivers.toml",
        {
            "match": "iniconfig",
            "kind": "version-changed",
            "reason": "base image",
            "expires": FUTURE,
        },
    )
    result = drifted.runpytest("--mlsupply", "--mlsupply-waivers", "waivers.toml")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            f"WAIVED ERROR [[]version-changed[]] *iniconfig* -- base image (waived until {FUTURE}, "
            "waivers.toml: waiver[[]1[]])",
            f"mlsupply: {GATE_PASSED} *0 errors, 0 warnings, * 1 waived*",
        ]
    )


def test_waivers_from_the_ini_file(drifted: pytest.Pytester) -> None:
    (drifted.path / "ci").mkdir()
    write_waivers(
        drifted.path / "ci" / "waivers.toml",
        {"match": "iniconfig", "reason": "base image", "expires": FUTURE},
    )
    drifted.makeini("[pytest]\nmlsupply = true\nmlsupply_waivers = ci/waivers.toml\n")
    drifted.runpytest().assert_outcomes(passed=2)


def test_an_expired_waiver_fails_the_run_with_both_findings(drifted: pytest.Pytester) -> None:
    write_waivers(
        drifted.path / "waivers.toml",
        {"match": "iniconfig", "reason": "base image", "expires": PAST},
    )
    result = drifted.runpytest("--mlsupply", "--mlsupply-waivers", "waivers.toml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines_random(
        [
            f"ERROR [[]waiver-expired[]] waiver for 'iniconfig' expired on {PAST}*base image*",
            "ERROR [[]version-changed[]] *iniconfig*",
        ]
    )


def test_an_unused_waiver_warns_and_fails_only_in_strict_mode(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_model="def test_fit():\n    assert True\n")
    locked(pytester)
    write_waivers(
        pytester.path / "waivers.toml", {"match": "numpy", "reason": "old", "expires": FUTURE}
    )
    relaxed = pytester.runpytest("--mlsupply", "--mlsupply-waivers", "waivers.toml")
    relaxed.assert_outcomes(passed=2)
    relaxed.stdout.fnmatch_lines(["WARNING [[]waiver-unused[]] waiver for 'numpy' matched no*"])
    strict = pytester.runpytest("--mlsupply", "--mlsupply-strict", "--mlsupply-waivers", "w*.toml")
    assert strict.ret == USAGE_ERROR  # the glob is not expanded: the file does not exist
    strict = pytester.runpytest(
        "--mlsupply", "--mlsupply-strict", "--mlsupply-waivers=waivers.toml"
    )
    assert strict.ret == pytest.ExitCode.TESTS_FAILED


def test_a_malformed_waivers_file_is_a_usage_error_naming_the_key(
    drifted: pytest.Pytester,
) -> None:
    (drifted.path / "waivers.toml").write_text('[[waiver]]\nmatch = "iniconfig"\n')
    result = drifted.runpytest("--mlsupply", "--mlsupply-waivers", "waivers.toml")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*mlsupply: waivers.toml: 2 problems:*", "*waiver[[]1[]]: 'reason' is required*"]
    )
    assert "Traceback" not in result.stderr.str()


def test_sarif_report_for_a_sarif_path(drifted: pytest.Pytester) -> None:
    write_waivers(
        drifted.path / "waivers.toml",
        {"match": "pytest", "kind": "unexpected", "reason": "r", "expires": FUTURE},
    )
    result = drifted.runpytest(
        "--mlsupply", "--mlsupply-report", "out/mlsupply.sarif", "--mlsupply-waivers=waivers.toml"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["mlsupply: SARIF report written to out*mlsupply.sarif"])
    document = json.loads((drifted.path / "out" / "mlsupply.sarif").read_text())
    assert document["version"] == SARIF_VERSION
    assert document["$schema"].endswith("sarif-2.1.0.json")
    (run,) = document["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert run["tool"]["driver"]["name"] == "pytest-mlsupply"
    rule_ids = [rule["id"] for rule in rules]
    assert len(rule_ids) == len(set(rule_ids))
    for result_ in run["results"]:
        assert rules[result_["ruleIndex"]]["id"] == result_["ruleId"]
        assert result_["level"] in {"error", "warning", "note"}
        assert result_["message"]["text"]
        (location,) = result_["locations"]
        artifact = location["physicalLocation"]["artifactLocation"]
        assert artifact == {"uri": "mlsupply.lock", "uriBaseId": "%SRCROOT%"}
        assert len(result_["partialFingerprints"][FINGERPRINT_KEY]) == 32
    drift = [r for r in run["results"] if r["ruleId"] == "version-changed"]
    assert [(r["level"], r["properties"]["subject"]) for r in drift] == [("error", "iniconfig")]
    assert "0.0.1" in drift[0]["message"]["text"]
    # pytest is in the lock, so the waiver matches nothing and is reported as unused.
    unused = [r for r in run["results"] if r["ruleId"] == "waiver-unused"]
    assert [r["level"] for r in unused] == ["warning"]
    assert run["invocations"][0]["exitCode"] == 1


def test_sarif_marks_waived_findings_as_suppressed(drifted: pytest.Pytester) -> None:
    write_waivers(
        drifted.path / "waivers.toml",
        {"match": "iniconfig", "reason": "base image", "expires": FUTURE},
    )
    drifted.runpytest(
        "--mlsupply", "--mlsupply-report=m.sarif", "--mlsupply-waivers=waivers.toml"
    ).assert_outcomes(passed=2)
    (run,) = json.loads((drifted.path / "m.sarif").read_text())["runs"]
    (drift,) = [r for r in run["results"] if r["ruleId"] == "version-changed"]
    (suppression,) = drift["suppressions"]
    assert suppression["kind"] == "external"
    assert suppression["justification"].startswith("base image (waived until")
    assert run["invocations"][0]["exitCode"] == 0


def test_a_json_path_still_gets_json(drifted: pytest.Pytester) -> None:
    drifted.runpytest("--mlsupply", "--mlsupply-report", "report.json")
    document = json.loads((drifted.path / "report.json").read_text())
    assert document["schema"] == "pytest-mlsupply/report"
    assert document["summary"]["waived"] == 0


def test_github_annotations_when_running_in_github_actions(
    drifted: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    drifted.makepyfile(conftest="")
    result = drifted.runpytest("--mlsupply", "--mlsupply-strict")
    lines = [line for line in result.outlines if line.startswith("::")]
    errors = [line for line in lines if line.startswith("::error ")]
    assert len(errors) == 1, lines
    properties, message = errors[0][len("::error ") :].split("::", 1)
    assert properties == "file=mlsupply.lock,title=mlsupply version-changed"
    assert message.startswith("ERROR [version-changed] iniconfig")
    assert "%0A" not in message and "\n" not in message
    assert all(line.split(" ", 1)[0] in {"::error", "::warning"} for line in lines)


def test_no_annotations_outside_github_actions(
    drifted: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    result = drifted.runpytest("--mlsupply")
    assert not [line for line in result.outlines if line.startswith("::")]


def test_annotation_text_is_escaped() -> None:
    from pytest_mlsupply.findings import Finding, Kind, Report
    from pytest_mlsupply.render import github_annotations

    finding = Finding.of(Kind.FILE_MODIFIED, "x", "100% changed\nsecond line")
    (line,) = github_annotations(Report.build([finding], lock_path="locks/a,b:c.lock"))
    assert line == (
        "::error file=locks/a%2Cb%3Ac.lock,title=mlsupply file-modified::"
        "ERROR [file-modified] 100%25 changed%0Asecond line"
    )


def junit_gate_case(path: Path) -> ET.Element:
    tree = ET.parse(path)
    (case,) = [c for c in tree.iter("testcase") if c.get("name") == "environment"]
    return case


def test_junit_carries_the_full_finding_list(drifted: pytest.Pytester) -> None:
    result = drifted.runpytest("--mlsupply", "--junitxml=junit.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    case = junit_gate_case(drifted.path / "junit.xml")
    failure = case.find("failure")
    assert failure is not None
    assert GATE_FAILED in (failure.get("message") or "") + (failure.text or "")
    properties = [(p.get("name"), p.get("value") or "") for p in case.iter("property")]
    assert properties[0][0] == "mlsupply"
    listed = [value for name, value in properties if name == "mlsupply-finding"]
    assert any("iniconfig" in value and "version-changed" in value for value in listed)


def test_junit_lists_findings_of_a_passing_gate_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_model="def test_fit():\n    assert True\n")
    lock_path = locked(pytester)
    change_locked_version(lock_path, "iniconfig", "0.0.1")
    write_waivers(
        pytester.path / "w.toml", {"match": "iniconfig", "reason": "known", "expires": FUTURE}
    )
    pytester.runpytest(
        "--mlsupply", "--mlsupply-waivers=w.toml", "--junitxml=junit.xml"
    ).assert_outcomes(passed=2)
    case = junit_gate_case(pytester.path / "junit.xml")
    assert case.find("failure") is None
    listed = [p.get("value") or "" for p in case.iter("property")]
    assert any(value.startswith("WAIVED ERROR [version-changed]") for value in listed)


def test_the_gate_item_runs_first_whatever_the_order_plugins_choose(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("pytest_randomly")
    pytester.makepyfile(
        test_a="def test_one():\n    pass\n\ndef test_two():\n    pass\n",
        test_b="def test_three():\n    pass\n",
    )
    locked(pytester)
    for seed in ("1", "2", "3"):
        result = pytester.runpytest("--mlsupply", f"--randomly-seed={seed}", "-v")
        result.assert_outcomes(passed=4)
        ran = [line for line in result.outlines if " PASSED" in line]
        assert ran[0].startswith("mlsupply::environment"), ran


EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "ci"


def test_the_example_waivers_file_loads() -> None:
    from pytest_mlsupply.waivers import load_waivers

    (waiver,) = load_waivers(EXAMPLES / "mlsupply-waivers.toml")
    assert waiver.reason and waiver.expires.year >= 2026


def test_every_option_in_the_example_workflow_exists(pytester: pytest.Pytester) -> None:
    import re

    from pytest_mlsupply.cli import _parser

    workflow = (EXAMPLES / "github-actions.yml").read_text()
    used = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", workflow))
    check_help = _parser()._subparsers._group_actions[0].choices["check"].format_help()  # type: ignore[union-attr]
    pytest_help = pytester.runpytest("--help").stdout.str()
    # pip's option, and pytest's alias that --help spells --junit-xml.
    others = {"--require-hashes", "--junitxml"}
    missing = {
        option for option in used - others if option not in check_help and option not in pytest_help
    }
    assert not missing, missing
    assert {"--mlsupply", "--mlsupply-report", "--waivers", "--report"} <= used
