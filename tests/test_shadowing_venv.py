"""Shadowing from outside the environment, in real venvs with real wheels.

The project's own code under test (a ``src/`` layout, an editable install) is
not shadowing; a module in a user site directory of an interpreter outside any
venv is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from gatehelpers import findings, gate, install_demo, lock
from wheelfactory import build_wheel, repack_installed

pytestmark = pytest.mark.slow

USES_DEMO = "def test_weights():\n    import demo_model\n    assert demo_model.WEIGHTS\n"


def shadowing(project: Path) -> list[dict[str, str]]:
    return [f for f in findings(project) if f["kind"] == "import-shadowed"]


def test_plain_venv_has_no_shadowing(venv, project, wheels):
    install_demo(venv, wheels)
    (project / "test_uses.py").write_text(USES_DEMO)
    lock(venv, project)
    result = gate(venv, project)
    assert result.returncode == 0, result.stdout
    assert shadowing(project) == []


def test_victim_next_to_the_tests_fails_and_its_payload_does_not_run(
    venv, project, wheels, tmp_path
):
    install_demo(venv, wheels)
    (project / "tests").mkdir()
    (project / "tests" / "test_uses.py").write_text(USES_DEMO)
    lock(venv, project)
    marker = tmp_path / "marker"
    (project / "tests" / "demo_model.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\nWEIGHTS = [0]\n"
    )
    result = gate(venv, project)
    assert result.returncode == 1, result.stdout
    [finding] = shadowing(project)
    assert finding["subject"] == "demo-model"
    assert finding["actual"] == str(project / "tests" / "demo_model.py")
    assert finding["expected"] == os.path.realpath(venv.site)
    assert not marker.exists()


def test_src_layout_of_the_project_is_not_flagged(venv, project, wheels, tmp_path):
    """``pip install .`` of the project, tested from its ``src/`` with ``pythonpath = src``."""
    install_demo(venv, wheels)
    build_wheel(tmp_path / "own", "mylib", "0.1", {"mylib/__init__.py": "X = 1\n"})
    venv.install("mylib==0.1", extra=("--find-links", str(tmp_path / "own")))
    (project / "src" / "mylib").mkdir(parents=True)
    (project / "src" / "mylib" / "__init__.py").write_text("X = 2\n")
    (project / "pyproject.toml").write_text('[project]\nname = "mylib"\nversion = "0.1"\n')
    (project / "pytest.ini").write_text("[pytest]\npythonpath = src\n")
    (project / "test_lib.py").write_text("import mylib\n\ndef test_x():\n    assert mylib.X == 2\n")
    lock(venv, project)
    result = gate(venv, project)
    assert result.returncode == 0, result.stdout
    assert shadowing(project) == []
    # The project's tree may provide only its own names, never another distribution's.
    (project / "src" / "demo_model.py").write_text("WEIGHTS = [0]\n")
    result = gate(venv, project)
    assert result.returncode == 1, result.stdout
    [finding] = shadowing(project)
    assert finding["actual"] == str(project / "src" / "demo_model.py")


FLIT_PROJECT = """\
[build-system]
requires = ["flit_core>=3.4"]
build-backend = "flit_core.buildapi"

[project]
name = "mylib"
version = "0.1"
description = "the project under test"
"""


def test_editable_install_is_not_flagged(venv, project, wheels, tmp_path):
    install_demo(venv, wheels)
    venv.install(repack_installed("flit-core", tmp_path / "flit"))
    tree = tmp_path / "mylib"
    (tree / "src" / "mylib").mkdir(parents=True)
    (tree / "src" / "mylib" / "__init__.py").write_text("X = 1\n")
    (tree / "pyproject.toml").write_text(FLIT_PROJECT)
    venv.pip("install", "--no-index", "--no-deps", "--no-build-isolation", "-e", tree)
    (project / "test_lib.py").write_text("import mylib\n\ndef test_x():\n    assert mylib.X\n")
    lock(venv, project)
    result = gate(venv, project)
    assert result.returncode == 0, result.stdout
    assert shadowing(project) == []
    # site.py appends a .pth file's folders after the site directory: a module
    # there named like an installed one is found second, so it shadows nothing.
    (tree / "src" / "demo_model.py").write_text("WEIGHTS = [0]\n")
    result = gate(venv, project)
    assert result.returncode == 0, result.stdout
    assert shadowing(project) == []


def _outside_a_venv(venv, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The venv's packages as an interpreter's own site-packages, with no venv around them.

    ``PYTHONHOME`` points the real interpreter at a prefix holding the standard
    library (linked) and a copy of the venv's site-packages; without
    ``pyvenv.cfg`` the user site directory is on (site.ENABLE_USER_SITE).
    """
    prefix = tmp_path / "prefix"
    shutil.copytree(venv.root, prefix, symlinks=True)
    (prefix / "pyvenv.cfg").unlink()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    lib = prefix / "lib" / stdlib.name
    for entry in stdlib.iterdir():
        if entry.name != "site-packages":
            (lib / entry.name).symlink_to(entry)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON"))}
    env["PYTHONHOME"] = str(prefix)
    env["PYTHONUSERBASE"] = str(tmp_path / "userbase")
    return Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable))), env


def test_user_site_outside_a_venv_shadows_the_site_packages(venv, project, wheels, tmp_path):
    install_demo(venv, wheels)
    (project / "test_uses.py").write_text(USES_DEMO)
    python, env = _outside_a_venv(venv, tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(python), "-m", "pytest", "-p", "no:cacheprovider", *args]
        return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)

    probe = subprocess.run(
        [str(python), "-c", "import site, sys; print(site.ENABLE_USER_SITE, sys.prefix)"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert probe.stdout.split() == ["True", str(tmp_path / "prefix")], probe
    locking = run("--mlsupply-update-lock")
    assert locking.returncode == 0, locking.stdout + locking.stderr
    user_site = tmp_path / "userbase" / "lib" / Path(sysconfig.get_paths()["stdlib"]).name
    (user_site / "site-packages").mkdir(parents=True)
    marker = tmp_path / "marker"
    (user_site / "site-packages" / "demo_model.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\nWEIGHTS = [0]\n"
    )
    result = run("--mlsupply", "--mlsupply-report", "report.json")
    assert result.returncode == 1, result.stdout + result.stderr
    [finding] = shadowing(project)
    assert finding["actual"] == str(user_site / "site-packages" / "demo_model.py")
    assert not marker.exists()


def test_a_wheel_shipping_a_tests_package_is_not_shadowed_by_the_projects_tests(
    venv, project, wheels, tmp_path
):
    """mktestdocs ships a top-level ``tests`` package by mistake; the project's own ``tests/``
    wins by design and is not shadowing. Its real module still may not be shadowed."""
    build_wheel(
        tmp_path / "sloppy",
        "sloppy",
        "1.0",
        {"sloppy.py": "OK = True\n", "tests/__init__.py": "", "tests/test_own.py": ""},
    )
    venv.install("sloppy==1.0", extra=("--find-links", str(tmp_path / "sloppy")))
    (project / "tests").mkdir()
    (project / "tests" / "__init__.py").write_text("")
    (project / "tests" / "test_uses.py").write_text(
        "import sloppy\n\ndef test_ok():\n    assert sloppy.OK\n"
    )
    lock(venv, project)
    result = gate(venv, project, "--mlsupply-strict")
    assert result.returncode == 0, result.stdout
    assert shadowing(project) == []
    (project / "tests" / "sloppy.py").write_text("OK = True\n")
    (project / "sloppy.py").write_text("OK = True\n")
    result = gate(venv, project)
    assert result.returncode == 1, result.stdout
    assert {f["subject"] for f in shadowing(project)} == {"sloppy"}
