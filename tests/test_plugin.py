"""The pytest interface through pytester: options, ini keys, output, exit status.

These runs snapshot the real test environment; drift is made by editing the
lock (the real-venv tests in test_gate_venv.py change the environment itself).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import replace

import pytest

from pytest_mlsupply.findings import REPORT_SCHEMA_NAME, REPORT_SCHEMA_VERSION
from pytest_mlsupply.locks.mlsupply_lock import load_lock, write_lock
from pytest_mlsupply.plugin import GATE_NODEID, NOT_COLLECTED_NOTE, VERDICT_ENV
from pytest_mlsupply.render import GATE_FAILED, GATE_PASSED

from gatehelpers import change_locked_version, locked

USAGE_ERROR = pytest.ExitCode.USAGE_ERROR


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_model="def test_fit():\n    assert True\n")
    return pytester


def test_help_lists_every_option_and_ini_key(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    text = result.stdout.str()
    for option in (
        "--mlsupply ",
        "--mlsupply-lock",
        "--mlsupply-update-lock",
        "--mlsupply-strict",
        "--mlsupply-warn-only",
        "--mlsupply-report",
        "--mlsupply-waivers",
    ):
        assert option in text
    for ini_key in (
        "mlsupply ",
        "mlsupply_lock",
        "mlsupply_strict",
        "mlsupply_warn_only",
        "mlsupply_report",
        "mlsupply_waivers",
    ):
        assert ini_key in text


def test_installed_but_not_enabled_does_nothing(suite: pytest.Pytester) -> None:
    result = suite.runpytest("-v")
    result.assert_outcomes(passed=1)
    assert "mlsupply" not in result.stdout.str().replace("plugins:", "").split("collected")[1]
    assert GATE_NODEID not in result.stdout.str()
    assert not (suite.path / "mlsupply.lock").exists()


def test_missing_lock_is_a_usage_error_that_says_how_to_create_it(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--mlsupply")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: mlsupply: *mlsupply.lock: lockfile not found*"])
    assert "pytest --mlsupply-update-lock" in result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_malformed_lock_names_file_and_line(suite: pytest.Pytester) -> None:
    (suite.path / "mlsupply.lock").write_text("lock-version = 1\n[[distribution]\nname = 'x'\n")
    result = suite.runpytest("--mlsupply")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: mlsupply: *mlsupply.lock: line 2, column *not valid TOML*"]
    )
    assert "Traceback" not in result.stderr.str()


def test_lock_from_a_newer_version_asks_for_an_upgrade(suite: pytest.Pytester) -> None:
    (suite.path / "mlsupply.lock").write_text("lock-version = 99\n")
    result = suite.runpytest("--mlsupply")
    assert result.ret == USAGE_ERROR
    assert "lock-version 99 was written by a newer pytest-mlsupply" in result.stderr.str()


def test_update_lock_writes_and_the_next_run_passes(suite: pytest.Pytester) -> None:
    first = suite.runpytest("--mlsupply-update-lock")
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(["mlsupply: wrote mlsupply.lock from this environment"])
    lock = load_lock(suite.path / "mlsupply.lock")
    assert any(d.name == "pytest" for d in lock.distributions)
    second = suite.runpytest("--mlsupply", "-v")
    second.assert_outcomes(passed=2)
    second.stdout.fnmatch_lines(
        [
            "mlsupply: mlsupply.lock: * distributions checked in *; 0 errors, 0 warnings, *",
            f"{GATE_NODEID} PASSED*",
            f"mlsupply: {GATE_PASSED} (mlsupply.lock)*",
        ]
    )


def test_drift_fails_the_run_and_collects_no_test(suite: pytest.Pytester) -> None:
    lock_path = locked(suite)
    change_locked_version(lock_path, "iniconfig", "0.0.1")
    result = suite.runpytest("--mlsupply")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "collected 0 items",
            "*ERROR [[]version-changed[]] iniconfig version changed: locked 0.0.1, installed *",
            f"mlsupply: {GATE_FAILED} (mlsupply.lock): * distributions, 1 error, *",
            f"mlsupply: {NOT_COLLECTED_NOTE}",
        ]
    )


def test_ini_turns_the_gate_on_and_paths_are_relative_to_the_ini_file(
    pytester: pytest.Pytester,
) -> None:
    sub = pytester.mkdir("sub")
    (sub / "test_x.py").write_text("def test_x():\n    pass\n")
    pytester.makeini("[pytest]\nmlsupply = true\nmlsupply_lock = locks/env.lock\n")
    pytester.mkdir("locks")
    result = pytester.runpytest("--mlsupply-update-lock", "sub")
    assert result.ret == 0, result.stdout.str()
    assert (pytester.path / "locks" / "env.lock").is_file()
    again = pytester.runpytest("sub")
    again.assert_outcomes(passed=2)


def test_command_line_lock_path_is_relative_to_the_invocation_dir(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--mlsupply-update-lock", "--mlsupply-lock", "ci/env.lock")
    assert result.ret == USAGE_ERROR  # the folder does not exist: a clear error, no traceback
    assert "Traceback" not in result.stderr.str()
    suite.mkdir("ci")
    result = suite.runpytest("--mlsupply-update-lock", "--mlsupply-lock", "ci/env.lock")
    assert result.ret == 0
    assert (suite.path / "ci" / "env.lock").is_file()


@pytest.mark.parametrize(
    ("ini", "expected"),
    [
        ("mlsupply = perhaps", "ini option 'mlsupply' in *: expected true or false, got 'perhaps'"),
        (
            "mlsupply = true\nmlsupply_strict = true\nmlsupply_warn_only = yes",
            "*--mlsupply-strict and --mlsupply-warn-only contradict each other*",
        ),
    ],
)
def test_bad_settings_name_their_source(suite: pytest.Pytester, ini: str, expected: str) -> None:
    suite.makeini(f"[pytest]\n{ini}\n")
    result = suite.runpytest()
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: mlsupply: {expected}"])


def test_warnings_fail_in_strict_mode(suite: pytest.Pytester) -> None:
    lock_path = locked(suite)
    lock = load_lock(lock_path)
    write_lock(
        lock_path,
        replace(lock, distributions=tuple(d for d in lock.distributions if d.name != "iniconfig")),
    )
    relaxed = suite.runpytest("--mlsupply")
    relaxed.assert_outcomes(passed=2)
    relaxed.stdout.fnmatch_lines(
        ["WARNING [[]unexpected[]] iniconfig * is installed but not locked*"]
    )
    strict = suite.runpytest("--mlsupply", "--mlsupply-strict")
    strict.assert_outcomes(failed=1)


def test_json_report_follows_the_documented_schema(suite: pytest.Pytester) -> None:
    lock_path = locked(suite)
    change_locked_version(lock_path, "iniconfig", "0.0.1")
    (suite.path / "blocker").write_text("a file where a folder is needed\n")
    blocked = suite.runpytest("--mlsupply", "--mlsupply-report", "blocker/report.json")
    assert blocked.ret == USAGE_ERROR
    blocked.stderr.fnmatch_lines(["*mlsupply: cannot write the report *blocker*report.json*"])
    # A missing folder is created, as for --junitxml.
    result = suite.runpytest("--mlsupply", "--mlsupply-report", "out/report.json")
    assert result.ret == 1
    document = json.loads((suite.path / "out" / "report.json").read_text())
    assert document["schema"] == REPORT_SCHEMA_NAME
    assert document["schema_version"] == REPORT_SCHEMA_VERSION
    assert document["result"] == "failed"
    assert document["summary"] == {
        "errors": 1,
        "warnings": 0,
        "info": document["summary"]["info"],
        "waived": 0,
    }
    assert document["lock"] == "mlsupply.lock"
    [error] = [f for f in document["findings"] if f["severity"] == "error"]
    assert error["kind"] == "version-changed" and error["subject"] == "iniconfig"
    assert error["expected"] == "0.0.1"
    assert set(document) >= {"tool", "created", "policy", "environment", "distributions_checked"}


def test_runs_under_strict_config_and_without_the_cache(suite: pytest.Pytester) -> None:
    suite.makeini("[pytest]\nmlsupply = false\nmlsupply_strict = false\nmlsupply_report =\n")
    assert locked(suite).is_file()
    result = suite.runpytest(
        "--mlsupply", "--strict-config", "--strict-markers", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)


@pytest.mark.skipif(pytest.version_tuple < (9,), reason="the `strict` ini option is pytest 9's")
def test_runs_under_pytest9_strict_mode(suite: pytest.Pytester) -> None:
    suite.makeini("[pytest]\nstrict = true\n")
    locked(suite)
    suite.runpytest("--mlsupply").assert_outcomes(passed=2)


def test_quiet_clean_run_prints_no_mlsupply_section(suite: pytest.Pytester) -> None:
    locked(suite)
    result = suite.runpytest("--mlsupply", "-q")
    result.assert_outcomes(passed=2)
    assert "--- mlsupply ---" not in result.stdout.str()


def test_entry_point_imports_only_stdlib_and_pytest(pytester: pytest.Pytester) -> None:
    """Installed but off costs nothing: no core module, no TOML writer, no packaging."""
    pytester.makepyfile(
        test_imports="""
        import sys

        def test_nothing_heavy_loaded():
            loaded = {m for m in sys.modules if m.startswith("pytest_mlsupply")}
            # Only what decides whether the gate is on: stdlib-only modules.
            light = {"pytest_mlsupply", "pytest_mlsupply.plugin", "pytest_mlsupply.settings",
                     "pytest_mlsupply.errors", "pytest_mlsupply.fixtures"}
            assert loaded <= light, loaded - light
            for heavy in ("tomli_w", "tomllib", "packaging"):
                assert heavy not in sys.modules, heavy
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:hypothesispytest", "-p", "no:xdist")
    result.assert_outcomes(passed=1)


MODULE_LIST = """
import sys

def pytest_unconfigure(config):
    with open("modules.txt", "w") as out:
        out.write("\\n".join(sorted(sys.modules)))
"""


def test_installed_and_off_imports_nothing_beyond_pytest_itself(pytester: pytest.Pytester) -> None:
    """Compared with ``-p no:mlsupply``, an off plugin adds only its own stdlib-only modules."""
    pytester.makeconftest(MODULE_LIST)
    pytester.makepyfile(test_x="def test_x():\n    pass\n")

    def modules(*args: str) -> set[str]:
        result = pytester.runpytest_subprocess("--collect-only", "-q", *args)
        assert result.ret == 0, result.stdout.str()
        return set((pytester.path / "modules.txt").read_text().split())

    without = modules("-p", "no:mlsupply")
    installed_off = modules()
    added = installed_off - without
    assert {m for m in added if not m.startswith("pytest_mlsupply")} == set()
    assert added <= {
        "pytest_mlsupply",
        "pytest_mlsupply.plugin",
        "pytest_mlsupply.fixtures",
        "pytest_mlsupply.settings",
        "pytest_mlsupply.errors",
    }


def test_xdist_workers_receive_the_verdict(suite: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    suite.makepyfile(test_more="def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    locked(suite)
    clean = suite.runpytest_subprocess("--mlsupply", "-n", "2")
    clean.assert_outcomes(passed=4)
    change_locked_version(suite.path / "mlsupply.lock", "iniconfig", "0.0.1")
    drift = suite.runpytest_subprocess("--mlsupply", "-n", "2")
    assert drift.ret == 1
    drift.stdout.fnmatch_lines(["*version-changed*iniconfig*", "*= 1 failed in *"])


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_update_lock_never_overwrites_a_malformed_lock(suite: pytest.Pytester) -> None:
    lock_path = suite.path / "mlsupply.lock"
    lock_path.write_text("<<<<<<< HEAD\nlock-version = 1\n")
    result = suite.runpytest("--mlsupply-update-lock")
    assert result.ret == USAGE_ERROR
    assert lock_path.read_text() == "<<<<<<< HEAD\nlock-version = 1\n"


FAKE_WORKER = """
import json
import pytest
from pytest_mlsupply.plugin import WORKERINPUT_KEY, WORKERINPUT_ORIGIN_KEY, interpreter_identity


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    report = json.loads(open("controller-report.json").read())
    config.workerinput = {
        "workerid": "gw7",
        WORKERINPUT_KEY: report,
        WORKERINPUT_ORIGIN_KEY: interpreter_identity() if SAME else "elsewhere:/opt/py:3.99",
        # What xdist's controller hands every worker, and pytest-randomly reads on workers.
        "workercount": 2,
        "testrunuid": "fake",
        "randomly_seed": 1,
    }
    config.workeroutput = {}
"""


def fake_worker(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *, same_interpreter: bool
) -> None:
    """Make the next in-process run behave as an xdist worker of a (passing) controller.

    As xdist does: the worker's environment names it, and ``workerinput`` is set
    only after its initial conftest files loaded (here, by a conftest). The
    controller's early verdict arrives in the environment, bound to the parent
    process (this test's parent, for an in-process run) and to an interpreter.
    """
    from pytest_mlsupply.findings import Report
    from pytest_mlsupply.plugin import interpreter_identity

    controller = Report.build([], lock_path="mlsupply.lock", environment="cpython")
    (suite.path / "controller-report.json").write_text(json.dumps(controller.to_dict()))
    suite.makeconftest(f"SAME = {same_interpreter}\n" + FAKE_WORKER)
    interpreter = interpreter_identity() if same_interpreter else "elsewhere:/opt/py:3.99"
    verdict = {"pid": os.getppid(), "interpreter": interpreter, "failed": False}
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw7")
    monkeypatch.setenv(VERDICT_ENV, json.dumps(verdict))


def test_a_worker_takes_the_controllers_verdict_and_writes_nothing(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock_path = locked(suite)
    change_locked_version(lock_path, "iniconfig", "0.0.1")  # a snapshot here would fail
    before = lock_path.read_text()
    shutil.rmtree(suite.path / ".pytest_cache")
    fake_worker(suite, monkeypatch, same_interpreter=True)
    result = suite.runpytest(
        "--mlsupply-update-lock", "--mlsupply-report", "worker-report.json", "-v"
    )
    result.assert_outcomes(passed=2)
    assert lock_path.read_text() == before
    assert not (suite.path / "worker-report.json").exists()
    assert not (suite.path / ".pytest_cache" / "d" / "mlsupply").exists()
    # Consumed: a pytest run started by a test on this worker does not take it.
    assert VERDICT_ENV not in os.environ


def test_a_worker_on_another_interpreter_checks_itself_and_collects_no_test(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock_path = locked(suite)
    change_locked_version(lock_path, "iniconfig", "0.0.1")
    fake_worker(suite, monkeypatch, same_interpreter=False)
    (suite.path / "conftest.py").write_text(
        "open('conftest-ran', 'w').close()\n" + (suite.path / "conftest.py").read_text()
    )
    result = suite.runpytest("--mlsupply", "--mlsupply-report", "worker-report.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*[[]checked on xdist worker gw7 runs*",
            "ERROR [[]version-changed[]] iniconfig*",
        ]
    )
    assert not (suite.path / "worker-report.json").exists()
    assert not (suite.path / "conftest-ran").exists()


def test_a_verdict_from_another_process_is_not_taken(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A passing verdict left in the environment by some other process counts for nothing."""
    lock_path = locked(suite)
    change_locked_version(lock_path, "iniconfig", "0.0.1")
    forged = {"pid": os.getpid(), "interpreter": "x", "failed": False}
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    for value in (json.dumps(forged), "{not json", json.dumps([1]), json.dumps({"pid": "1"})):
        monkeypatch.setenv(VERDICT_ENV, value)
        result = suite.runpytest("--mlsupply")
        result.assert_outcomes(failed=1)
