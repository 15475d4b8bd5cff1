"""Shadowing from outside the environment, through pytest as users run it (subprocesses).

The test environment itself is locked; the shadowing module is named like one
of its distributions that pytest does not import on its own (``tomli_w``), and
writes a marker file when it runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_mlsupply.plugin import NOT_COLLECTED_NOTE
from pytest_mlsupply.shadowing import HINT_SHADOWED

from gatehelpers import locked

VICTIM = "tomli_w"


def payload(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('ran')\n"


LAZY_TEST = f"def test_uses_it():\n    import {VICTIM}\n    assert {VICTIM}\n"


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.mkdir("tests")
    pytester.path.joinpath("tests", "test_model.py").write_text(LAZY_TEST)
    locked(pytester)
    return pytester


def gate(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--mlsupply", "--mlsupply-report", "report.json", "-p", "no:cacheprovider", *args
    )


def shadow_findings(pytester: pytest.Pytester) -> list[dict[str, str]]:
    document = json.loads((pytester.path / "report.json").read_text())
    return [f for f in document["findings"] if f["kind"] == "import-shadowed"]


def test_a_clean_project_has_no_shadowing(suite: pytest.Pytester) -> None:
    result = gate(suite)
    assert result.ret == 0, result.stdout.str()
    assert shadow_findings(suite) == []
    result.assert_outcomes(passed=2)


def test_a_module_next_to_the_tests_fails_the_gate_and_does_not_run(
    suite: pytest.Pytester, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    victim = suite.path / "tests" / f"{VICTIM}.py"
    victim.write_text(payload(marker))
    result = gate(suite)
    assert result.ret == 1, result.stdout.str()
    [finding] = shadow_findings(suite)
    assert finding["subject"] == "tomli-w"
    assert finding["actual"] == str(victim)
    assert "site-packages" in finding["expected"]
    assert finding["hint"] == HINT_SHADOWED.format(
        found=victim, entry=suite.path / "tests", dist="tomli-w"
    )
    result.stdout.fnmatch_lines(["*ERROR [[]import-shadowed[]] 'tomli_w'*shadowed by*"])
    assert NOT_COLLECTED_NOTE in result.stdout.str()
    assert not marker.exists()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_package_in_a_pythonpath_entry_fails_the_gate(
    suite: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "marker"
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / VICTIM).mkdir(parents=True)
    (elsewhere / VICTIM / "__init__.py").write_text(payload(marker))
    monkeypatch.setenv("PYTHONPATH", str(elsewhere))
    result = gate(suite)
    assert result.ret == 1, result.stdout.str()
    [finding] = shadow_findings(suite)
    assert finding["actual"] == str(elsewhere / VICTIM / "__init__.py")
    assert not marker.exists()


def test_the_current_directory_under_python_m_pytest(
    suite: pytest.Pytester, tmp_path: Path
) -> None:
    """pytester runs ``python -m pytest`` in its folder: the folder is on the path."""
    marker = tmp_path / "marker"
    (suite.path / f"{VICTIM}.py").write_text(payload(marker))
    result = gate(suite, "tests")
    assert result.ret == 1, result.stdout.str()
    [finding] = shadow_findings(suite)
    assert finding["actual"] == str(suite.path / f"{VICTIM}.py")
    assert not marker.exists()


def test_pytest_python_path_ini_entries_are_checked(suite: pytest.Pytester) -> None:
    (suite.path / "vendor").mkdir()
    (suite.path / "vendor" / f"{VICTIM}.py").write_text("")
    suite.makeini("[pytest]\npythonpath = vendor\n")
    result = gate(suite)
    assert result.ret == 1, result.stdout.str()
    [finding] = shadow_findings(suite)
    assert finding["actual"] == str(suite.path / "vendor" / f"{VICTIM}.py")


def test_a_namespace_folder_named_like_a_distribution_is_not_flagged(
    suite: pytest.Pytester,
) -> None:
    (suite.path / "tests" / VICTIM).mkdir()
    (suite.path / "tests" / VICTIM / "data.txt").write_text("")
    result = gate(suite)
    assert result.ret == 0, result.stdout.str()
    assert shadow_findings(suite) == []


def test_importlib_mode_inserts_nothing(suite: pytest.Pytester, tmp_path: Path) -> None:
    (suite.path / "tests" / f"{VICTIM}.py").write_text("")
    result = gate(suite, "--import-mode=importlib", "tests")
    assert shadow_findings(suite) == [], result.stdout.str()
    assert result.ret == 0


def test_warn_only_reports_and_runs(suite: pytest.Pytester, tmp_path: Path) -> None:
    (suite.path / "tests" / f"{VICTIM}.py").write_text("")
    result = gate(suite, "--mlsupply-warn-only")
    assert result.ret == 0, result.stdout.str()
    # Found before the run, and seen in sys.modules when the session ends (the tests used it).
    messages = sorted(finding["message"] for finding in shadow_findings(suite))
    assert len(messages) == 2
    assert "is shadowed by" in messages[0]
    assert "was imported from" in messages[1]


def test_backstop_catches_a_module_the_static_view_cannot_see(
    suite: pytest.Pytester, tmp_path: Path
) -> None:
    """A test module changes sys.path at import time: only sys.modules shows it."""
    marker = tmp_path / "marker"
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / f"{VICTIM}.py").write_text(payload(marker))
    (suite.path / "tests" / "test_sneaky.py").write_text(
        f"import sys\nsys.path.insert(0, {str(hidden)!r})\nimport {VICTIM}\n\n"
        "def test_nothing():\n    pass\n"
    )
    result = gate(suite)
    assert result.ret == 1, result.stdout.str()
    [finding] = shadow_findings(suite)
    assert finding["actual"] == str(hidden / f"{VICTIM}.py")
    assert "was imported from" in finding["message"]
    assert "2 deselected" in result.stdout.str()
    assert marker.exists()  # it ran during collection; the gate says so and runs no test
    assert os.fspath(hidden) in result.stdout.str()


def test_backstop_is_not_fooled_by_a_rewritten_origin(
    suite: pytest.Pytester, tmp_path: Path
) -> None:
    """The shadowing module sets its ``__spec__.origin`` and ``__file__`` to the installed file."""
    import tomli_w

    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / f"{VICTIM}.py").write_text(
        f"__file__ = {tomli_w.__file__!r}\n__spec__.origin = __file__\n"
    )
    (suite.path / "tests" / "test_sneaky.py").write_text(
        f"import sys\nsys.path.insert(0, {str(hidden)!r})\nimport {VICTIM}\n\n"
        "def test_nothing():\n    pass\n"
    )
    result = gate(suite)
    assert result.ret == 1, result.stdout.str()
    [finding] = shadow_findings(suite)
    assert finding["actual"] == str(hidden / f"{VICTIM}.py")


def test_backstop_runs_again_when_the_session_ends(suite: pytest.Pytester, tmp_path: Path) -> None:
    """A test imports the shadowing module at run time, after the last collection check."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / f"{VICTIM}.py").write_text("")
    (suite.path / "tests" / "test_late.py").write_text(
        "import sys\n\ndef test_late():\n"
        f"    sys.path.insert(0, {str(hidden)!r})\n    import {VICTIM}\n"
    )
    result = gate(suite)
    assert result.ret == 1, result.stdout.str()
    [finding] = shadow_findings(suite)
    assert finding["actual"] == str(hidden / f"{VICTIM}.py")
    result.stdout.fnmatch_lines(["*import-shadowed*was imported from*"])
    result.stdout.fnmatch_lines(["mlsupply: environment does not match the lock*1 error*"])


def test_under_xdist_the_controller_reports_it(suite: pytest.Pytester) -> None:
    (suite.path / "tests" / f"{VICTIM}.py").write_text("")
    result = gate(suite, "-n", "2")
    assert result.ret == 1, result.stdout.str()
    assert len(shadow_findings(suite)) == 1


def test_under_xdist_workers_apply_the_backstop(suite: pytest.Pytester, tmp_path: Path) -> None:
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / f"{VICTIM}.py").write_text("")
    (suite.path / "tests" / "test_sneaky.py").write_text(
        f"import sys\nsys.path.insert(0, {str(hidden)!r})\nimport {VICTIM}\n\n"
        "def test_nothing():\n    pass\n"
    )
    result = gate(suite, "-n", "2")
    assert result.ret == 1, result.stdout.str()
    result.stdout.fnmatch_lines(["*import-shadowed*was imported from*"])
    assert "passed" not in result.stdout.str().splitlines()[-1]
    # The workers' finding reaches the controller's summary and report.
    [finding] = shadow_findings(suite)
    assert finding["actual"] == str(hidden / f"{VICTIM}.py")
    result.stdout.fnmatch_lines(["mlsupply: environment does not match the lock*1 error*"])


def test_a_victim_imported_at_module_level_does_not_run(
    suite: pytest.Pytester, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    (suite.path / "tests" / f"{VICTIM}.py").write_text(payload(marker))
    (suite.path / "tests" / "test_eager.py").write_text(
        f"import {VICTIM}\n\ndef test_it():\n    assert {VICTIM}\n"
    )
    result = gate(suite)
    assert result.ret == 1, result.stdout.str()
    assert len(shadow_findings(suite)) == 1
    assert not marker.exists()


def test_a_test_folder_pytest_skips_but_loads_a_conftest_from(
    suite: pytest.Pytester, tmp_path: Path
) -> None:
    """``test.egg/conftest.py`` is loaded (so ``test.egg`` goes first on the path) though
    collection skips ``*.egg`` folders."""
    marker = tmp_path / "marker"
    (suite.path / "test.egg").mkdir()
    (suite.path / "test.egg" / "conftest.py").write_text("")
    (suite.path / "test.egg" / f"{VICTIM}.py").write_text(payload(marker))
    result = gate(suite)
    assert result.ret == 1, result.stdout.str()
    [finding] = shadow_findings(suite)
    assert finding["actual"] == str(suite.path / "test.egg" / f"{VICTIM}.py")
    assert not marker.exists()


def test_doctest_modules_puts_every_python_folder_on_the_path(
    suite: pytest.Pytester, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    (suite.path / "tests" / "helpers").mkdir()
    (suite.path / "tests" / "helpers" / "util.py").write_text('"""Nothing to test."""\n')
    (suite.path / "tests" / "helpers" / f"{VICTIM}.py").write_text(payload(marker))
    result = gate(suite, "--doctest-modules")
    assert result.ret == 1, result.stdout.str()
    actual = {finding["actual"] for finding in shadow_findings(suite)}
    assert str(suite.path / "tests" / "helpers" / f"{VICTIM}.py") in actual
    assert not marker.exists()


def test_importlib_mode_imports_a_test_package_under_its_own_name(
    suite: pytest.Pytester, tmp_path: Path
) -> None:
    """``tests/mypy_extensions/test_d.py`` beside its ``__init__.py``: pytest imports the package
    under its own name before the test module, hiding the installed one (not imported by
    anything else here, unlike ``tomli_w``, which writing the lock imports)."""
    marker = tmp_path / "marker"
    victim = "mypy_extensions"
    (suite.path / "tests" / victim).mkdir()
    (suite.path / "tests" / victim / "__init__.py").write_text(payload(marker))
    (suite.path / "tests" / victim / "test_d.py").write_text("def test_d():\n    pass\n")
    result = gate(suite, "--import-mode=importlib")
    assert result.ret == 1, result.stdout.str()
    [finding] = shadow_findings(suite)
    assert finding["actual"] == str(suite.path / "tests" / victim / "__init__.py")
    assert not marker.exists()


def _remove_tree(top: str) -> None:
    """``shutil.rmtree`` recurses on older Pythons: remove a deep tree bottom-up instead."""
    stack, order = [top], []
    while stack:
        folder = stack.pop()
        order.append(folder)
        for entry in os.scandir(folder):
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            else:
                os.unlink(entry.path)
    for folder in reversed(order):
        os.rmdir(folder)


def test_a_very_deep_folder_gives_no_traceback(suite: pytest.Pytester) -> None:
    """Deeper than the recursion limit: the walk must not raise RecursionError."""
    top = folder = os.path.join(suite.path, "tests", "deep")
    os.mkdir(top)
    try:
        for _ in range(1100):  # Path.mkdir(parents=True) itself recurses
            folder = os.path.join(folder, "a")
            os.mkdir(folder)
        Path(folder, f"{VICTIM}.py").write_text("")
        Path(folder, "test_deep.py").write_text("def test_deep():\n    pass\n")
        result = gate(suite)
        output = result.stdout.str() + result.stderr.str()
        assert "RecursionError" not in output
        assert "shadowing.py" not in output
        assert result.ret == 1, output
        [finding] = shadow_findings(suite)
        assert finding["actual"] == os.path.join(folder, f"{VICTIM}.py")
    finally:
        _remove_tree(top)  # pytest's own clean-up of old temporary folders would recurse
