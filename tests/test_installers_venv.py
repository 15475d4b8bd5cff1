"""Real installers, real wheels with quirks, a clean install: no finding (issue 12, item 6).

One throwaway environment per installer (pip, ``uv pip``, ``uv sync``, Poetry,
pdm) with the same set of real packages whose wheels have quirks: empty
directory entries (PyYAML 6.0.2, cffi 1.17.1 and black 22.12.0 list
``*.libs/`` folders with nothing in them, which uv creates and pip does not),
bundled shared libraries (``numpy.libs``, ``pillow.libs``), console scripts
(black, charset-normalizer), headers installed from a ``*.data`` folder
(greenlet) and a package published only as an sdist (antlr4-python3-runtime
4.9.3, built at install). Each is locked and then gated with
``--mlsupply-strict`` and the ``check`` CLI: every finding on a clean install
is a false alarm. Then something is planted where a quirk lives, and it must be
caught.

These tests need the package index (the installers resolve against it) and
skip, saying why, when an installer is not on PATH or the index is unreachable.
Wheels come from each installer's own cache after the first run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from installer_tools import REQUIRE_ENV, installer
from wheelfactory import site_packages, venv_python

pytestmark = pytest.mark.slow

PY = f"{sys.version_info[0]}.{sys.version_info[1]}"
#: Real packages whose wheels have installer quirks (see the module docstring).
PACKAGES = (
    "pyyaml==6.0.2",
    "cffi==1.17.1",
    # 22.12.0 has wheels only up to CPython 3.11; its empty black.libs/ is the point.
    "black==22.12.0; python_version < '3.12'",
    "numpy",
    "pillow",
    "markupsafe",
    "charset-normalizer",
    "greenlet",
    "antlr4-python3-runtime==4.9.3",  # sdist only
)
#: What uv leaves empty: directory entries of these wheels with no file under them.
UV_EMPTY = ("PyYAML.libs", "cffi.libs", *(("black.libs",) if sys.version_info < (3, 12) else ()))

SUITE = """\
def test_imports():
    import antlr4, cffi, charset_normalizer, greenlet, markupsafe, numpy, yaml
    from PIL import Image
    open("tests-ran", "w").close()
"""


def _env() -> dict[str, str]:
    """The installers' environment, without this test run's venv or pytest variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "VIRTUAL_ENV", "CONDA_", "POETRY_", "UV_", "PDM_"))
    }
    env.pop("PYTHONPATH", None)
    env["POETRY_VIRTUALENVS_IN_PROJECT"] = "true"
    env["POETRY_VIRTUALENVS_PREFER_ACTIVE_PYTHON"] = "false"
    return env


def _tool(name: str) -> str:
    return installer(name)


def _run(*command: str | os.PathLike[str], cwd: Path, what: str) -> None:
    """Run an installer; a failure is a skip that says why (no index here), not a finding."""
    result = subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-6:])
        reason = f"{what} could not install the real packages (is the index reachable?):\n{tail}"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def _project(root: Path, wheel: Path) -> Path:
    """A project that depends on the quirky packages and on this plugin's wheel; not itself
    installed (the project under test is issue 12's item 2, not an installer quirk)."""
    root.mkdir()
    dependencies = [*PACKAGES, "pytest", f"pytest-mlsupply @ {wheel.as_uri()}"]
    listed = ",\n".join(f"  {json.dumps(d)}" for d in dependencies)
    (root / "pyproject.toml").write_text(
        f"""\
[project]
name = "quirks-demo"
version = "0.1.0"
requires-python = "=={PY}.*"
dependencies = [
{listed},
]

[tool.uv]
package = false

[tool.poetry]
package-mode = false

[tool.pdm]
distribution = false
"""
    )
    (root / "test_real.py").write_text(SUITE)
    return root


def _plugin_wheel(wheelhouse: Path) -> Path:
    [wheel] = wheelhouse.glob("pytest_mlsupply-*.whl")
    return wheel


def _python(project: Path, name: str) -> Path:
    env = project / name
    return venv_python(env)


def _gate_is_clean(python: Path, project: Path) -> None:
    """Lock, then gate strictly (pytest and the check CLI): no error, no warning."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "VIRTUAL_"))}
        env.pop("PYTHONPATH", None)
        return subprocess.run(
            [str(python), *args], cwd=project, env=env, capture_output=True, text=True
        )

    locked = run("-m", "pytest", "-p", "no:cacheprovider", "--mlsupply-update-lock")
    assert locked.returncode == 0, locked.stdout + locked.stderr
    gated = run(
        "-m",
        "pytest",
        "--mlsupply",
        "--mlsupply-strict",
        "--mlsupply-report",
        "report.json",
        "-p",
        "no:cacheprovider",
    )
    document = json.loads((project / "report.json").read_text())
    problems = [f for f in document["findings"] if f["severity"] != "info"]
    assert problems == [], gated.stdout
    assert gated.returncode == 0, gated.stdout + gated.stderr
    assert (project / "tests-ran").is_file()
    checked = run("-m", "pytest_mlsupply", "check", "--strict")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _planted_code_is_caught(python: Path, project: Path, folder: str) -> None:
    """A shared library dropped into an empty quirk folder fails the gate, warm caches or not,
    and no test module runs."""
    site = site_packages(python)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "VIRTUAL_"))}
    env.pop("PYTHONPATH", None)
    command = [str(python), "-m", "pytest", "--mlsupply", "--mlsupply-strict"]
    warm = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    assert warm.returncode == 0, warm.stdout  # fills pytest's cache, walk cache included
    (project / "tests-ran").unlink()
    (site / folder / "libffi-0a1b2c3d.so.8.1.0").write_bytes(b"\x7fELF")
    caught = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    assert caught.returncode == pytest.ExitCode.TESTS_FAILED, caught.stdout
    assert f"ERROR [unowned-module] {site / folder} holds code" in caught.stdout
    assert not (project / "tests-ran").exists()


def test_pip(tmp_path: Path, wheelhouse: Path) -> None:
    project = _project(tmp_path / "project", _plugin_wheel(wheelhouse))
    env = project / ".venv"
    _run(sys.executable, "-m", "venv", env, cwd=project, what="python -m venv")
    requirements = [p for p in PACKAGES if "python_version" not in p or sys.version_info < (3, 12)]
    requirements = [p.split(";")[0] for p in requirements]
    _run(
        venv_python(env),
        "-m",
        "pip",
        "install",
        "-q",
        "--find-links",
        wheelhouse,
        "pytest-mlsupply",
        *requirements,
        cwd=project,
        what="pip",
    )
    _gate_is_clean(venv_python(env), project)


def test_uv_pip(tmp_path: Path, wheelhouse: Path) -> None:
    uv = _tool("uv")
    project = _project(tmp_path / "project", _plugin_wheel(wheelhouse))
    env = project / ".venv"
    _run(uv, "venv", "-q", "--python", sys.executable, env, cwd=project, what="uv venv")
    requirements = [p for p in PACKAGES if "python_version" not in p or sys.version_info < (3, 12)]
    requirements = [p.split(";")[0] for p in requirements]
    _run(
        uv,
        "pip",
        "install",
        "-q",
        "--python",
        venv_python(env),
        "--find-links",
        wheelhouse,
        "pytest-mlsupply",
        *requirements,
        cwd=project,
        what="uv pip install",
    )
    site = site_packages(venv_python(env))
    for name in UV_EMPTY:  # the quirk is really there: empty folders no RECORD lists
        assert (site / name).is_dir() and not any((site / name).iterdir()), name
    _gate_is_clean(venv_python(env), project)
    _planted_code_is_caught(venv_python(env), project, "cffi.libs")


def test_uv_sync(tmp_path: Path, wheelhouse: Path) -> None:
    uv = _tool("uv")
    project = _project(tmp_path / "project", _plugin_wheel(wheelhouse))
    _run(uv, "sync", "-q", "--python", sys.executable, cwd=project, what="uv sync")
    python = _python(project, ".venv")
    site = site_packages(python)
    for name in UV_EMPTY:
        assert (site / name).is_dir(), name
    _gate_is_clean(python, project)


def test_poetry_install(tmp_path: Path, wheelhouse: Path) -> None:
    poetry = _tool("poetry")
    project = _project(tmp_path / "project", _plugin_wheel(wheelhouse))
    _run(poetry, "env", "use", "-q", sys.executable, cwd=project, what="poetry env use")
    _run(poetry, "install", "-q", "--no-interaction", cwd=project, what="poetry install")
    _gate_is_clean(_python(project, ".venv"), project)


def test_pdm_install(tmp_path: Path, wheelhouse: Path) -> None:
    pdm = _tool("pdm")
    project = _project(tmp_path / "project", _plugin_wheel(wheelhouse))
    # pdm given a venv's interpreter installs into that venv: give it the project's own
    # (given this test run's interpreter, it installed into the test venv).
    _run(sys.executable, "-m", "venv", project / ".venv", cwd=project, what="python -m venv")
    _run(pdm, "use", "-q", "-f", _python(project, ".venv"), cwd=project, what="pdm use")
    _run(pdm, "install", "-q", "--no-self", cwd=project, what="pdm install")
    _gate_is_clean(_python(project, ".venv"), project)
