"""Foreign locks through the pytest interface (pytester): options, ini twins, errors, output."""

from __future__ import annotations

import json

import pytest

from pytest_mlsupply.locks.foreign import LOCK_FORMATS

USAGE_ERROR = pytest.ExitCode.USAGE_ERROR


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_model="def test_fit():\n    assert True\n")
    return pytester


def test_help_lists_the_foreign_lock_options(pytester: pytest.Pytester) -> None:
    text = pytester.runpytest("--help").stdout.str()
    for name in (
        "--mlsupply-lock-format",
        "--mlsupply-min-age",
        "--mlsupply-lock-extras",
        "--mlsupply-lock-groups",
        "mlsupply_lock_format",
        "mlsupply_min_age",
        "mlsupply_lock_extras",
        "mlsupply_lock_groups",
    ):
        assert name in text


@pytest.mark.parametrize(
    ("args", "ini", "expected"),
    [
        (
            ["--mlsupply", "--mlsupply-lock-format", "conda"],
            "",
            "ERROR: mlsupply: --mlsupply-lock-format: unknown lock format 'conda'; choose one of "
            + ", ".join(LOCK_FORMATS),
        ),
        (
            ["--mlsupply", "--mlsupply-min-age", "-3"],
            "",
            "ERROR: mlsupply: --mlsupply-min-age: expected a non-negative number of days, got '-3'",
        ),
        (
            [],
            "mlsupply = true\nmlsupply_min_age = a week",
            "ERROR: mlsupply: ini option 'mlsupply_min_age' in *: expected a number of days, "
            "got 'a week'",
        ),
        (
            ["--mlsupply", "--mlsupply-lock-groups", "all,dev"],
            "",
            "ERROR: mlsupply: --mlsupply-lock-groups: 'all' and 'none' stand alone, got 'all,dev'",
        ),
        (
            [],
            "mlsupply = true\nmlsupply_lock_extras = a b",
            "ERROR: mlsupply: ini option 'mlsupply_lock_extras' in *: not a valid extra or group "
            "name: 'a b'",
        ),
        (
            [],
            "mlsupply = true\nmlsupply_lock_format = cargo",
            "ERROR: mlsupply: ini option 'mlsupply_lock_format' in *: unknown lock format 'cargo'*",
        ),
    ],
)
def test_bad_foreign_lock_settings_name_their_source(
    suite: pytest.Pytester, args: list[str], ini: str, expected: str
) -> None:
    suite.makeini(f"[pytest]\n{ini}\n")
    result = suite.runpytest(*args)
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines([expected])


def test_malformed_foreign_lock_is_a_usage_error_with_the_line(suite: pytest.Pytester) -> None:
    suite.path.joinpath("requirements.txt").write_text("numpy==2.2.6\nscipy~=1.15\n")
    result = suite.runpytest("--mlsupply", "--mlsupply-lock", "requirements.txt")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: mlsupply: *requirements.txt: line 2: 'scipy~=1.15' is not pinned*"]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_lock_for_another_python_fails_with_one_clear_finding(suite: pytest.Pytester) -> None:
    suite.path.joinpath("deps.lock").write_text(
        'version = 1\nrevision = 3\nrequires-python = ">=3.99"\n'
    )
    suite.makeini(
        "[pytest]\nmlsupply = true\nmlsupply_lock = deps.lock\nmlsupply_lock_format = uv\n"
    )
    result = suite.runpytest("--mlsupply-report", "report.json")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "ERROR ?lock-not-applicable? deps.lock (uv.lock) does not apply to this interpreter: "
            "the lock requires Python >=3.99, this is *; nothing was compared with it*"
        ]
    )
    report = json.loads(suite.path.joinpath("report.json").read_text())
    errors = [f["kind"] for f in report["findings"] if f["severity"] == "error"]
    assert errors == ["lock-not-applicable"]


def test_xdist_run_with_a_foreign_lock(suite: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    suite.path.joinpath("uv.lock").write_text(
        'version = 1\nrevision = 3\nrequires-python = ">=3.99"\n'
    )
    result = suite.runpytest_subprocess("--mlsupply", "--mlsupply-lock", "uv.lock", "-n", "2")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*lock-not-applicable*", "*1 failed*"])


EXTRA_LOCK = """\
version = 1
revision = 5
requires-python = ">=3.10"

[[package]]
name = "proj"
version = "0.1.0"
source = { virtual = "." }

[package.optional-dependencies]
speed = [{ name = "hypothesis" }]

[[package]]
name = "hypothesis"
version = "0.0.1"
source = { registry = "https://pypi.example.invalid/simple" }
"""


def test_the_extras_option_and_its_ini_twin_decide_what_is_compared(
    suite: pytest.Pytester,
) -> None:
    """hypothesis (installed here) is locked only for the ``speed`` extra, at another version."""
    suite.path.joinpath("uv.lock").write_text(EXTRA_LOCK)
    args = ("--mlsupply", "--mlsupply-lock", "uv.lock", "--mlsupply-report", "report.json")

    def hypothesis_finding() -> dict[str, str]:
        report = json.loads(suite.path.joinpath("report.json").read_text())
        [finding] = [f for f in report["findings"] if f["subject"] == "hypothesis"]
        return finding

    suite.runpytest(*args)
    finding = hypothesis_finding()
    # An error: hypothesis ships a pytest plugin, which runs unlocked; the message says both.
    assert (finding["kind"], finding["severity"]) == ("unexpected", "error")
    assert "pytest11" in finding["message"]
    assert "only for extra 'speed', which was not taken" in finding["message"]
    suite.runpytest(*args, "--mlsupply-lock-extras", "speed")
    assert hypothesis_finding()["kind"] == "version-changed"
    suite.makeini("[pytest]\nmlsupply_lock_extras = speed\n")
    result = suite.runpytest(*args, "-rA", "-v")
    assert hypothesis_finding()["kind"] == "version-changed"
    report = json.loads(suite.path.joinpath("report.json").read_text())
    assert any(
        "took extras speed (ini option 'mlsupply_lock_extras' in" in note
        for note in report["notes"]
    ), report["notes"]
    assert result.ret == 1
