"""The gate as users run it: real venvs, real wheels installed by pip, then changed.

Each test locks a throwaway environment, changes it the way an upgrade, a
rebuilt wheel or an attacker would, and asserts the exact finding, both in the
terminal and in the JSON report.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET

import pytest
import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from pytest_mlsupply.cli import EXIT_FINDINGS, EXIT_OK, EXIT_UNUSABLE
from pytest_mlsupply.plugin import NOT_COLLECTED_NOTE

from gatehelpers import findings, gate, install_demo, lock, only_problem
from wheelfactory import build_wheel

pytestmark = pytest.mark.slow


def test_clean_environment_passes_and_runs_the_tests(venv, project, wheels):
    install_demo(venv, wheels)
    lock(venv, project)
    result = gate(venv, project)
    assert result.returncode == 0, result.stdout
    assert "3 passed" in result.stdout  # two tests and the gate item
    assert "environment matches the lock" in result.stdout
    assert findings(project) == []
    assert "Traceback" not in result.stdout + result.stderr


def test_version_drift_fails_and_names_the_change(venv, project, wheels):
    install_demo(venv, wheels, "1.0")
    lock(venv, project)
    install_demo(venv, wheels, "1.1")
    result = gate(venv, project)
    assert result.returncode == 1
    problem = only_problem(project)
    assert problem["kind"] == "version-changed"
    assert (problem["subject"], problem["expected"], problem["actual"]) == (
        "demo-model",
        "1.0",
        "1.1",
    )
    assert "demo-model version changed: locked 1.0, installed 1.1" in result.stdout
    assert "collected 0 items" in result.stdout
    assert NOT_COLLECTED_NOTE in result.stdout


def test_same_version_different_bytes_is_content_changed(venv, project, wheels, tmp_path):
    install_demo(venv, wheels, "1.0")
    lock(venv, project)
    rebuilt = tmp_path / "rebuilt"
    build_wheel(rebuilt, "demo-model", "1.0", {"demo_model.py": "WEIGHTS = [6, 6, 6]\n"})
    venv.install("demo-model==1.0", extra=("--force-reinstall", "--find-links", str(rebuilt)))
    result = gate(venv, project)
    assert result.returncode == 1
    problem = only_problem(project)
    assert problem["kind"] == "content-changed"
    assert problem["subject"] == "demo-model"
    assert problem["expected"].startswith("sha256:") and problem["actual"].startswith("sha256:")
    assert problem["expected"] != problem["actual"]
    assert "demo-model 1.0: same version, different files" in result.stdout


def test_reinstalling_the_same_wheel_is_clean(venv, project, wheels):
    """Two installs of one wheel give one content digest: no false alarm."""
    install_demo(venv, wheels, "1.0")
    lock(venv, project)
    venv.install("demo-model==1.0", extra=("--force-reinstall", "--find-links", str(wheels)))
    result = gate(venv, project)
    assert result.returncode == 0, result.stdout
    assert findings(project) == []


def test_missing_distribution_fails(venv, project, wheels):
    install_demo(venv, wheels)
    lock(venv, project)
    venv.pip("uninstall", "-y", "demo-model")
    result = gate(venv, project)
    assert result.returncode == 1
    problem = only_problem(project)
    assert (problem["kind"], problem["subject"], problem["actual"]) == (
        "missing",
        "demo-model",
        "not installed",
    )
    assert "locked demo-model 1.0 is not installed" in result.stdout


def test_unexpected_extra_warns_and_fails_only_in_strict_mode(venv, project, wheels):
    install_demo(venv, wheels)
    lock(venv, project)
    venv.install("tiny-extra", extra=("--find-links", str(wheels)))
    result = gate(venv, project)
    assert result.returncode == 0, result.stdout
    problem = only_problem(project)
    assert (problem["kind"], problem["severity"], problem["subject"]) == (
        "unexpected",
        "warning",
        "tiny-extra",
    )
    assert "WARNING [unexpected] tiny-extra 0.3 is installed but not locked" in result.stdout
    strict = gate(venv, project, "--mlsupply-strict")
    assert strict.returncode == 1
    assert "WARNING [unexpected] tiny-extra" in strict.stdout


def test_source_drift_from_index_to_a_file(venv, project, wheels):
    install_demo(venv, wheels)
    lock(venv, project)
    venv.install(wheels / "demo_model-1.0-py3-none-any.whl", extra=("--force-reinstall",))
    result = gate(venv, project)
    assert result.returncode == 1
    problem = only_problem(project)
    assert problem["kind"] == "source-changed"
    assert problem["expected"] == "a package index"
    assert (
        problem["actual"].startswith("file:")
        and "demo_model-1.0-py3-none-any.whl" in problem["actual"]
    )


def test_shadowed_copy_is_reported(venv, project, wheels, tmp_path):
    install_demo(venv, wheels, "1.0")
    lock(venv, project)
    other = tmp_path / "other"
    venv.pip("install", "--no-index", "--find-links", wheels, "--target", other, "demo-model==1.0")
    result = gate(venv, project, env={"PYTHONPATH": str(other)})
    problem = only_problem(project)
    assert (problem["kind"], problem["subject"]) == ("shadowed", "demo-model")
    assert str(venv.site) in problem["location"]
    assert result.returncode == 0, result.stdout


def test_interpreter_change_is_a_warning(venv, project, wheels):
    install_demo(venv, wheels)
    lock(venv, project)
    lock_path = project / "mlsupply.lock"
    document = tomllib.loads(lock_path.read_text())
    document["environment"][0]["python-version"] = "3.0.1"
    lock_path.write_text(tomli_w.dumps(document))
    result = gate(venv, project)
    assert result.returncode == 0, result.stdout
    problem = only_problem(project)
    assert (problem["kind"], problem["severity"], problem["expected"]) == (
        "interpreter-changed",
        "warning",
        "3.0.1",
    )


def test_deleted_record_is_a_finding_not_a_crash(venv, project, wheels):
    install_demo(venv, wheels)
    lock(venv, project)
    (venv.site / "demo_model-1.0.dist-info" / "RECORD").unlink()
    result = gate(venv, project)
    assert result.returncode == 1
    [error] = findings(project, "error")
    assert (error["kind"], error["actual"]) == ("content-changed", "no usable RECORD")
    # With RECORD gone nothing claims the module any more (the wheel has no top_level.txt).
    [warning] = findings(project, "warning")
    assert (warning["kind"], warning["subject"]) == ("unowned-module", "demo_model.py")
    assert "Traceback" not in result.stdout + result.stderr


def test_metadata_directory_without_metadata_is_broken(venv, project, wheels):
    install_demo(venv, wheels)
    lock(venv, project)
    (venv.site / "ghost-6.6.dist-info").mkdir()
    result = gate(venv, project)
    assert result.returncode == 1
    problem = only_problem(project)
    assert (problem["kind"], problem["subject"]) == ("broken-distribution", "ghost-6.6.dist-info")
    assert "Traceback" not in result.stdout + result.stderr


def test_junit_xml_carries_the_gate_failure(venv, project, wheels):
    install_demo(venv, wheels, "1.0")
    lock(venv, project)
    install_demo(venv, wheels, "1.1")
    result = gate(venv, project, "--junitxml", "junit.xml")
    assert result.returncode == 1
    tree = ET.parse(project / "junit.xml")
    cases = tree.findall(".//testcase")
    assert [(case.get("classname"), case.get("name")) for case in cases] == [
        ("mlsupply", "environment")
    ]
    failure = cases[0].find("failure")
    assert failure is not None
    assert "version-changed" in (failure.text or "") + (failure.get("message") or "")
    assert "demo-model" in (failure.text or "")


def test_warn_only_runs_the_tests_and_exits_zero(venv, project, wheels):
    install_demo(venv, wheels, "1.0")
    lock(venv, project)
    install_demo(venv, wheels, "1.1")
    result = gate(venv, project, "--mlsupply-warn-only")
    assert result.returncode == 0, result.stdout
    assert "3 passed" in result.stdout
    assert "warn-only mode" in result.stdout
    document = json.loads((project / "report.json").read_text())
    assert document["result"] == "passed" and document["summary"]["errors"] == 1


def test_command_line_exit_codes(venv, project, wheels):
    install_demo(venv, wheels, "1.0")
    script = venv.root / "bin" / "mlsupply"
    assert script.is_file(), "the console script is installed"
    locked = venv.run(str(script), "lock", cwd=project)
    assert locked.returncode == EXIT_OK, locked.stderr
    assert venv.run("-m", "pytest_mlsupply", "check", cwd=project).returncode == EXIT_OK
    install_demo(venv, wheels, "1.1")
    drift = venv.run("-m", "pytest_mlsupply", "check", "--report", "r.json", cwd=project)
    assert drift.returncode == EXIT_FINDINGS
    assert "ERROR [version-changed] demo-model version changed" in drift.stdout
    assert json.loads((project / "r.json").read_text())["result"] == "failed"
    missing = venv.run("-m", "pytest_mlsupply", "check", "--lock", "nope.lock", cwd=project)
    assert missing.returncode == EXIT_UNUSABLE
    assert "lockfile not found" in missing.stderr and "Traceback" not in missing.stderr
    (project / "bad.lock").write_text('lock-version = 1\n[[distribution]]\nname = "x"\n')
    bad = venv.run("-m", "pytest_mlsupply", "check", "--lock", "bad.lock", cwd=project)
    assert bad.returncode == EXIT_UNUSABLE
    assert "bad.lock" in bad.stderr and "line 2" in bad.stderr
    assert "Traceback" not in bad.stderr
