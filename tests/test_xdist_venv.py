"""pytest-xdist as ML suites run it: the work happens once, on the controller.

An audit hook logs which process opens a file that only the gate reads (a data
file inside an installed package), so "read by one process only" is observed,
not inferred. It is a ``-p`` plugin, not a conftest: the gate decides before any
conftest.py is imported.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_mlsupply.plugin import NOT_COLLECTED_NOTE

from gatehelpers import findings, gate, lock
from wheelfactory import build_wheel, copy_venv, repack_installed

pytestmark = pytest.mark.slow

AUDIT_CONFTEST = """
import os
import sys

LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "opens.log")


def _log_weight_reads(event, args):
    if event == "open" and args and str(args[0]).endswith("weights.bin"):
        role = os.environ.get("PYTEST_XDIST_WORKER", "controller")
        with open(LOG, "a") as out:
            out.write(role + "\\n")


sys.addaudithook(_log_weight_reads)
"""

WEIGHTS = bytes(range(256)) * 64


@pytest.fixture(scope="session")
def xdist_wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    pytest.importorskip("xdist")
    folder = tmp_path_factory.mktemp("xdist-wheels")
    return [repack_installed(name, folder) for name in ("pytest-xdist", "execnet")]


@pytest.fixture
def xdist_project(venv, project: Path, xdist_wheels: list[Path], tmp_path: Path) -> Path:
    wheel = build_wheel(
        tmp_path / "index",
        "demo-weights",
        "1.0",
        {"demo_weights/__init__.py": "", "demo_weights/weights.bin": WEIGHTS},
    )
    venv.install(wheel, *xdist_wheels)
    (project / "test_more.py").write_text(
        "".join(f"def test_{n}():\n    pass\n\n" for n in range(6))
    )
    lock(venv, project)
    (project / "audit_opens.py").write_text(AUDIT_CONFTEST)
    return project


def audited(venv, project: Path, *args: str):
    """A gated run with the audit hook loaded before the gate (``-p``, from the project)."""
    return gate(venv, project, "-p", "audit_opens", *args, env={"PYTHONPATH": str(project)})


def weights_path(venv) -> Path:
    return venv.site / "demo_weights" / "weights.bin"


def readers(project: Path) -> list[str]:
    log = project / "opens.log"
    return log.read_text().split() if log.exists() else []


def test_installed_files_are_read_by_the_controller_only(venv, xdist_project: Path) -> None:
    result = audited(venv, xdist_project, "-n", "2", "--mlsupply-rehash")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "9 passed" in result.stdout
    assert readers(xdist_project) and set(readers(xdist_project)) == {"controller"}


def test_a_tampered_file_fails_the_run_and_is_named_once(venv, xdist_project: Path) -> None:
    with weights_path(venv).open("ab") as stream:
        stream.write(b"\0")
    result = audited(venv, xdist_project, "-n", "2")
    assert result.returncode == 1, result.stdout + result.stderr
    assert set(readers(xdist_project)) == {"controller"}

    # Named once per report, not once per worker: the same lines as a run without xdist
    # (the gate item's failure text and the mlsupply summary section).
    # The short summary is left out: pytest truncates it, except on CI.
    def named(output: str) -> list[str]:
        return [
            line
            for line in output.split("short test summary info")[0].splitlines()
            if "[file-modified]" in line and "weights.bin" in line
        ]

    serial = gate(venv, xdist_project, "-p", "no:xdist")
    assert len(named(serial.stdout)) == 2, serial.stdout
    assert named(result.stdout) == named(serial.stdout), result.stdout
    errors = findings(xdist_project, "error")
    assert [(f["kind"], f["subject"]) for f in errors] == [("file-modified", "demo-weights")]
    assert "1 failed" in result.stdout
    # No process collected the suite, and the controller says so.
    assert f"mlsupply: {NOT_COLLECTED_NOTE}" in result.stdout


def test_a_worker_on_another_interpreter_checks_for_itself(
    venv, xdist_project: Path, tmp_path: Path
) -> None:
    """``--tx popen//python=OTHER``: the controller's verdict is not taken for OTHER's.

    xdist gives popen workers the controller's ``sys.path``, so OTHER imports the
    same (clean) packages and its own check passes; what this shows is that the
    check ran there, on the worker's side.
    """
    other_python = copy_venv(venv.root, tmp_path / "other")
    result = audited(venv, xdist_project, "--dist=load", "--tx", f"popen//python={other_python}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(set(readers(xdist_project))) == ["controller", "gw0"]
