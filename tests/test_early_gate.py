"""Once the gate fails, nothing more runs: no conftest.py, no test module, on no process.

Every conftest.py and test module here leaves a marker file when it is imported,
named after the process (the controller or an xdist worker), so "not imported"
is observed. Runs are subprocesses, as users start pytest.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_mlsupply.plugin import (
    GATE_NODEID,
    NOT_COLLECTED_LATE_NOTE,
    NOT_COLLECTED_NOTE,
    VERDICT_ENV,
    _controller_verdict,
    interpreter_identity,
)
from pytest_mlsupply.rootdir import ROOTDIR_MISREAD, spaced_values

from gatehelpers import change_locked_version

USAGE_ERROR = pytest.ExitCode.USAGE_ERROR

MARK = """
import os as _os
_role = _os.environ.get("PYTEST_XDIST_WORKER", "controller")
open(_os.path.join({root!r}, "imported-{name}-" + _role), "w").close()
"""


def marked(pytester: pytest.Pytester, relative: str, body: str = "") -> None:
    """Write *relative* so that importing it leaves ``imported-<name>-<process>``."""
    path = pytester.path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    name = relative.replace("/", "_").removesuffix(".py")
    path.write_text(MARK.format(root=str(pytester.path), name=name) + body)


def lock_in_subprocess(pytester: pytest.Pytester) -> None:
    """Lock as users do; an in-process run would import the marked files into this process."""
    result = pytester.runpytest_subprocess("--mlsupply-update-lock")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()


def markers(pytester: pytest.Pytester) -> set[str]:
    return {p.name for p in pytester.path.glob("imported-*")}


@pytest.fixture
def marked_suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project whose root conftest, sub-folder conftest and test modules all leave markers."""
    marked(pytester, "conftest.py")
    marked(pytester, "tests/conftest.py")
    two_tests = "\ndef test_a():\n    pass\n\ndef test_b():\n    pass\n"
    marked(pytester, "tests/test_model.py", two_tests)
    marked(pytester, "test_top.py", "\ndef test_c():\n    pass\n")
    lock_in_subprocess(pytester)
    for marker in pytester.path.glob("imported-*"):
        marker.unlink()
    return pytester


EVERYTHING = {
    "imported-conftest-controller",
    "imported-tests_conftest-controller",
    "imported-tests_test_model-controller",
    "imported-test_top-controller",
}


def drift(marked_suite: pytest.Pytester) -> None:
    change_locked_version(marked_suite.path / "mlsupply.lock", "iniconfig", "0.0.1")


def test_a_passing_gate_imports_and_runs_everything(marked_suite: pytest.Pytester) -> None:
    result = marked_suite.runpytest_subprocess("--mlsupply")
    result.assert_outcomes(passed=4)
    assert markers(marked_suite) == EVERYTHING


@pytest.mark.parametrize(
    "extra",
    [
        (),
        ("-p", "no:cacheprovider"),
        ("tests",),
        ("tests/test_model.py::test_a",),
        ("--collect-only",),
        ("--fixtures",),
        ("--markers",),
        ("--setup-plan",),
        ("--lf",),
    ],
    ids=[
        "plain",
        "no-cacheprovider",
        "folder",
        "node-id",
        "collect-only",
        "fixtures",
        "markers",
        "setup-plan",
        "lf",
    ],
)
def test_a_failed_gate_imports_no_conftest_and_no_test_module(
    marked_suite: pytest.Pytester, extra: tuple[str, ...]
) -> None:
    drift(marked_suite)
    result = marked_suite.runpytest_subprocess("--mlsupply", *extra)
    assert markers(marked_suite) == set(), result.stdout.str()
    if extra not in (("--fixtures",), ("--markers",)):  # informational: they exit 0 anyway
        # Modes that run no test still fail: a CI step may use them as an environment check.
        assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    if extra not in (("--collect-only",), ("--fixtures",), ("--markers",), ("--setup-plan",)):
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines([f"mlsupply: {NOT_COLLECTED_NOTE}"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_failed_gate_still_reaches_junit_and_the_json_report(
    marked_suite: pytest.Pytester,
) -> None:
    drift(marked_suite)
    result = marked_suite.runpytest_subprocess(
        "--mlsupply", "--junitxml=junit.xml", "--mlsupply-report=out/report.json"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert markers(marked_suite) == set()
    [case] = ET.parse(marked_suite.path / "junit.xml").getroot().iter("testcase")
    assert (case.get("classname"), case.get("name")) == ("mlsupply", "environment")
    assert case.find("failure") is not None
    document = json.loads((marked_suite.path / "out" / "report.json").read_text())
    assert document["result"] == "failed"


def test_warn_only_still_imports_and_runs_everything(marked_suite: pytest.Pytester) -> None:
    drift(marked_suite)
    result = marked_suite.runpytest_subprocess("--mlsupply", "--mlsupply-warn-only")
    assert result.ret == 0
    result.assert_outcomes(passed=4)
    assert markers(marked_suite) == EVERYTHING


def test_pyargs_does_not_import_the_package_after_a_failed_gate(
    pytester: pytest.Pytester,
) -> None:
    """``--pyargs pkg.tests`` imports ``pkg`` to find it; a failed gate looks nothing up."""
    marked(pytester, "pkg/__init__.py")
    marked(pytester, "pkg/tests/__init__.py")
    marked(pytester, "pkg/tests/test_p.py", "\ndef test_p():\n    pass\n")
    lock_in_subprocess(pytester)
    drift(pytester)
    for marker in pytester.path.glob("imported-*"):
        marker.unlink()
    result = pytester.runpytest_subprocess("--mlsupply", "--pyargs", "pkg.tests")
    result.assert_outcomes(failed=1)
    assert markers(pytester) == set()


def test_xdist_workers_import_nothing_after_a_failed_gate(marked_suite: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    clean = marked_suite.runpytest_subprocess("--mlsupply", "-n", "2")
    clean.assert_outcomes(passed=4)
    # Each worker imported the conftest files (the controller collects nothing under xdist).
    assert {"imported-conftest-gw0", "imported-conftest-gw1"} <= markers(marked_suite)
    for marker in marked_suite.path.glob("imported-*"):
        marker.unlink()
    drift(marked_suite)
    result = marked_suite.runpytest_subprocess("--mlsupply", "-n", "2", "--junitxml=junit.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert markers(marked_suite) == set()
    result.stdout.fnmatch_lines(["*version-changed*iniconfig*", f"mlsupply: {NOT_COLLECTED_NOTE}"])
    assert "1 failed" in result.stdout.str()
    names = [
        c.get("name") for c in ET.parse(marked_suite.path / "junit.xml").getroot().iter("testcase")
    ]
    assert names == ["environment"]


# Item 11: pytest picks the rootdir before it knows this plugin's options.


@pytest.fixture
def feed_elsewhere(pytester: pytest.Pytester) -> tuple[Path, Path]:
    """A gated project (ini file turns the gate on) and a known-bad feed outside it."""
    project = pytester.mkdir("project")
    (project / "pytest.ini").write_text("[pytest]\nmlsupply = true\n")
    (project / "test_x.py").write_text("def test_x():\n    pass\n")
    feeds = pytester.mkdir("elsewhere")
    feed = feeds / "feed.json"
    feed.write_text('{"id": "X-1", "affected": []}')
    return project, feed


def test_a_spaced_path_option_that_moved_the_rootdir_is_a_usage_error(
    pytester: pytest.Pytester, feed_elsewhere: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, feed = feed_elsewhere
    monkeypatch.chdir(project)
    update = pytester.runpytest_subprocess("--mlsupply-update-lock")
    assert update.ret == 0, update.stdout.str()
    spaced = pytester.runpytest_subprocess("--mlsupply-known-bad", str(feed))
    assert spaced.ret == USAGE_ERROR
    expected = ROOTDIR_MISREAD.split("{option}")[1].split("{value}")[0]
    text = spaced.stderr.str()
    assert f"--mlsupply-known-bad {feed}{expected}" in text, text
    assert f"write --mlsupply-known-bad={feed}" in text
    assert f"instead of {project} (ini file {project / 'pytest.ini'})" in text
    assert "Traceback" not in text
    fixed = pytester.runpytest_subprocess(f"--mlsupply-known-bad={feed}")
    assert fixed.ret == 0, fixed.stdout.str() + fixed.stderr.str()
    fixed.stdout.fnmatch_lines(["*2 passed*"])


def pytest_rootdir(pytester: pytest.Pytester, *args: str) -> str:
    """The rootdir pytest itself picks for *args*, this plugin left out."""
    result = pytester.runpytest_subprocess("-p", "no:mlsupply", "--co", *args)
    [line] = [x for x in result.outlines + result.errlines if "rootdir:" in x]
    return line.split("rootdir:")[1].strip()


@pytest.mark.parametrize(
    "value",
    ["feeds/feed.json", "{elsewhere}/feed.json", "/nonexistent/feed.json", "../project"],
)
def test_a_spaced_value_is_an_error_exactly_when_pytest_moved_the_rootdir(
    pytester: pytest.Pytester,
    feed_elsewhere: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    value: str,
) -> None:
    """pytest's own choice is the oracle: 9 ignores paths that do not exist, 8 does not."""
    project, feed = feed_elsewhere
    value = value.format(elsewhere=feed.parent)
    monkeypatch.chdir(project)
    (project / "feeds").mkdir()
    (project / "feeds" / "feed.json").write_text('{"id": "X-1", "affected": []}')
    assert pytester.runpytest_subprocess("--mlsupply-update-lock").ret == 0
    moved = pytest_rootdir(pytester, "--mlsupply-known-bad", value) != str(project)
    result = pytester.runpytest_subprocess("--mlsupply-known-bad", value)
    if moved:
        assert result.ret == USAGE_ERROR
        assert f"write --mlsupply-known-bad={value}" in result.stderr.str()
    else:
        assert "was given with a space" not in result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_the_check_runs_whether_or_not_the_gate_is_on(
    pytester: pytest.Pytester, feed_elsewhere: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A moved rootdir can hide the ini file that turns the gate on: an error, not a pass."""
    project, feed = feed_elsewhere
    monkeypatch.chdir(project)
    assert pytester.runpytest_subprocess("--mlsupply-update-lock").ret == 0
    result = pytester.runpytest_subprocess("--mlsupply-data", str(feed))
    assert result.ret == USAGE_ERROR
    assert f"write --mlsupply-data={feed}" in result.stderr.str()


def test_gate_item_is_the_only_node(marked_suite: pytest.Pytester) -> None:
    drift(marked_suite)
    result = marked_suite.runpytest_subprocess("--mlsupply", "-v")
    result.stdout.fnmatch_lines([f"{GATE_NODEID} FAILED*"])
    assert "test_a" not in result.stdout.str()


# In a real venv: a tampered installed module whose import is the attack.

PAYLOAD = """
import os as _os
open(_os.path.join(_os.getcwd(), "payload-ran-" + _os.environ.get("PYTEST_XDIST_WORKER", "main")),
     "w").close()
"""


@pytest.mark.slow
@pytest.mark.parametrize("extra", [(), ("-p", "xdist", "-n", "2")], ids=["serial", "xdist"])
def test_tampered_code_imported_by_conftest_and_tests_never_runs(
    venv, project: Path, wheels: Path, xdist_venv_wheels: list[Path], extra: tuple[str, ...]
) -> None:
    from gatehelpers import gate, install_demo, lock, only_problem

    install_demo(venv, wheels)
    if extra:
        venv.install(*xdist_venv_wheels)
    (project / "conftest.py").write_text("import demo_model\n")
    (project / "test_uses_model.py").write_text(
        "import demo_model\n\ndef test_weights():\n    assert demo_model.WEIGHTS\n"
    )
    lock(venv, project)
    clean = gate(venv, project, *extra)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    module = venv.site / "demo_model.py"
    module.write_text(module.read_text() + PAYLOAD)
    result = gate(venv, project, *extra)
    assert result.returncode == 1, result.stdout + result.stderr
    assert only_problem(project)["kind"] == "file-modified"
    assert list(project.glob("payload-ran-*")) == []
    assert NOT_COLLECTED_NOTE in result.stdout
    # The same payload runs as soon as the gate is told to look away.
    warned = gate(venv, project, "--mlsupply-warn-only", *extra)
    assert warned.returncode == 0, warned.stdout + warned.stderr
    assert list(project.glob("payload-ran-*")) != []


@pytest.fixture(scope="session")
def xdist_venv_wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    pytest.importorskip("xdist")
    from wheelfactory import repack_installed

    folder = tmp_path_factory.mktemp("xdist-wheels-early")
    return [repack_installed(name, folder) for name in ("pytest-xdist", "execnet")]


# The small parsers behind the two checks.

NAMES = frozenset({"--mlsupply-lock", "--mlsupply-known-bad"})
words = st.lists(st.sampled_from([*NAMES, "--", "-q", "x", "--mlsupply-lock=y", ""]) | st.text())


@given(words)
def test_spaced_values_are_adjacent_words_before_a_double_dash(args: list[str]) -> None:
    found = spaced_values(args, NAMES)
    end = args.index("--") if "--" in args else len(args)
    pairs = [(args[i], args[i + 1]) for i in range(min(end, len(args) - 1)) if args[i] in NAMES]
    assert found == pairs


def test_spaced_values_ignore_the_equals_form() -> None:
    args = ["--mlsupply-lock=a", "--mlsupply-known-bad", "/f", "--", "--mlsupply-lock", "b"]
    assert spaced_values(args, NAMES) == [("--mlsupply-known-bad", "/f")]


ENV_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0"))


@given(ENV_TEXT | st.builds(json.dumps, st.dictionaries(st.text(), st.integers() | st.text())))
def test_any_verdict_in_the_environment_parses_or_is_ignored(
    raw: str,
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(VERDICT_ENV, raw)
        from_controller, failed = _controller_verdict()
    assert failed is None  # never this process's parent, and never its interpreter
    assert from_controller in (False, True)


def test_only_the_parents_verdict_on_this_interpreter_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    here = interpreter_identity()
    cases = [
        ({"pid": os.getppid(), "interpreter": here, "failed": True}, (True, True)),
        ({"pid": os.getppid(), "interpreter": here, "failed": False}, (True, False)),
        ({"pid": os.getppid(), "interpreter": here, "failed": "no"}, (True, None)),
        ({"pid": os.getppid(), "interpreter": "elsewhere", "failed": False}, (True, None)),
        ({"pid": os.getpid(), "interpreter": here, "failed": False}, (False, None)),
    ]
    for verdict, expected in cases:
        monkeypatch.setenv(VERDICT_ENV, json.dumps(verdict))
        assert _controller_verdict() == expected
        assert VERDICT_ENV not in os.environ


def test_a_plugin_registered_late_still_gates_at_session_start(
    marked_suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loaded by a conftest's ``pytest_plugins``, the gate runs after that conftest (README)."""
    drift(marked_suite)
    conftest = marked_suite.path / "conftest.py"
    conftest.write_text(conftest.read_text() + "\npytest_plugins = ['pytest_mlsupply.plugin']\n")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = marked_suite.runpytest_subprocess("--mlsupply")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str() + result.stderr.str()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"mlsupply: {NOT_COLLECTED_LATE_NOTE}"])
    assert markers(marked_suite) == {
        "imported-conftest-controller",
        "imported-tests_conftest-controller",
    }
