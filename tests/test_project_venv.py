"""The project under test, installed by real installers: ``uv sync`` and ``poetry install``.

A small project is locked and installed the way its users would (the plugin
and pytest as dev dependencies; the plugin is this checkout's wheel), and the
gate runs inside the venv the installer made. The clean install gives no error
and no warning, even with ``--mlsupply-strict``, and says the project is the
project under test; a same-named impostor from a local index replaces it and
fails the gate before its code runs. These tests need uv and Poetry on PATH and
the package index (``uv lock`` and ``poetry lock`` resolve against it).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gatehelpers import findings
from installer_tools import installer
from wheelfactory import build_wheel

pytestmark = pytest.mark.slow

MARKER = "impostor-ran"
#: The impostor's module writes a marker file when imported: the project's test imports it.
IMPOSTOR = (
    "import pathlib\n"
    f"pathlib.Path(__file__).resolve().parents[{{depth}}].joinpath('{MARKER}').write_text('x')\n"
    "X = 1\n"
)
TEST = "def test_project():\n    import {module}\n    assert {module}.X == 1\n"

UV_PROJECT = """\
[project]
name = "uv-demo"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = ["six"]

[dependency-groups]
dev = ["pytest", "pytest-mlsupply"]

[tool.uv.sources]
pytest-mlsupply = {{ path = "{wheel}" }}

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
"""
POETRY_PROJECT = """\
[tool.poetry]
name = "poetry-demo"
version = "0.1.0"
description = ""
authors = []
packages = [{{ include = "poetry_demo" }}]

[tool.poetry.dependencies]
python = ">=3.10"
six = "*"

[tool.poetry.group.dev.dependencies]
pytest = "*"
pytest-mlsupply = {{ path = "{wheel}" }}

[build-system]
requires = ["poetry-core>=2.0"]
build-backend = "poetry.core.masonry.api"
"""


PDM_PROJECT = """\
[project]
name = "pdm-demo"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = ["six"]

[dependency-groups]
dev = ["pytest", "pytest-mlsupply @ {wheel_url}"]

[build-system]
requires = ["pdm-backend"]
build-backend = "pdm.backend"
"""


def _tool(name: str) -> str:
    return installer(name)


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "VIRTUAL_ENV"))}
    full.pop("PYTHONPATH", None)
    full.update(env)
    result = subprocess.run(args, cwd=cwd, env=full, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


def _gate(root: Path, lock: str, *args: str) -> subprocess.CompletedProcess[str]:
    python = root / ".venv" / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "VIRTUAL_ENV"))}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            "--mlsupply",
            "--mlsupply-lock",
            lock,
            "--mlsupply-report",
            "report.json",
            "-p",
            "no:cacheprovider",
            *args,
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="session")
def plugin_wheel(wheelhouse: Path) -> Path:
    (wheel,) = wheelhouse.glob("pytest_mlsupply-*.whl")
    return wheel


@pytest.fixture(scope="session")
def tool_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tool-cache")


def _uv_env(cache: Path) -> dict[str, str]:
    return {"UV_CACHE_DIR": str(cache / "uv"), "UV_PYTHON": sys.executable}


def _poetry_env(cache: Path) -> dict[str, str]:
    return {
        "POETRY_VIRTUALENVS_IN_PROJECT": "true",
        "POETRY_CACHE_DIR": str(cache / "poetry-cache"),
        "POETRY_CONFIG_DIR": str(cache / "poetry-config"),
        "POETRY_DATA_DIR": str(cache / "poetry-data"),
    }


@pytest.fixture
def uv_project(tmp_path: Path, plugin_wheel: Path, tool_cache: Path) -> Path:
    uv = _tool("uv")
    root = tmp_path / "uv-demo"
    (root / "src" / "uv_demo").mkdir(parents=True)
    (root / "src" / "uv_demo" / "__init__.py").write_text("X = 1\n")
    (root / "pyproject.toml").write_text(UV_PROJECT.format(wheel=plugin_wheel))
    (root / "test_project.py").write_text(TEST.format(module="uv_demo"))
    _run([uv, "sync"], root, _uv_env(tool_cache))
    return root


@pytest.fixture
def poetry_project(tmp_path: Path, plugin_wheel: Path, tool_cache: Path) -> Path:
    poetry = _tool("poetry")
    root = tmp_path / "poetry-demo"
    (root / "poetry_demo").mkdir(parents=True)
    (root / "poetry_demo" / "__init__.py").write_text("X = 1\n")
    (root / "pyproject.toml").write_text(POETRY_PROJECT.format(wheel=plugin_wheel))
    (root / "test_project.py").write_text(TEST.format(module="poetry_demo"))
    env = _poetry_env(tool_cache)
    _run([poetry, "env", "use", sys.executable], root, env)
    _run([poetry, "install", "--no-interaction"], root, env)
    return root


def _pdm_env(cache: Path) -> dict[str, str]:
    return {
        "PDM_CACHE_DIR": str(cache / "pdm-cache"),
        "PDM_CONFIG_FILE": str(cache / "pdm-config.toml"),
        "PDM_IGNORE_ACTIVE_VENV": "1",
    }


@pytest.fixture
def pdm_project(tmp_path: Path, plugin_wheel: Path, tool_cache: Path) -> Path:
    """``pdm install`` (a venv in the project, without pip), then ``pdm export -f pylock``."""
    pdm = _tool("pdm")
    root = tmp_path / "pdm-demo"
    (root / "src" / "pdm_demo").mkdir(parents=True)
    (root / "src" / "pdm_demo" / "__init__.py").write_text("X = 1\n")
    (root / "pyproject.toml").write_text(PDM_PROJECT.format(wheel_url=plugin_wheel.as_uri()))
    (root / "test_project.py").write_text(TEST.format(module="pdm_demo"))
    env = _pdm_env(tool_cache)
    # A venv of its own in the project, from the base interpreter: given this suite's own
    # venv, `pdm use` would install into it.
    base = getattr(sys, "_base_executable", sys.executable)
    _run([pdm, "venv", "create", base], root, env)
    _run([pdm, "use", "-f", str(root / ".venv" / "bin" / "python")], root, env)
    _run([pdm, "install"], root, env)
    _run([pdm, "export", "-f", "pylock", "-G", ":all", "-o", "pylock.toml"], root, env)
    return root


def _problems(root: Path) -> list[dict[str, Any]]:
    return [f for f in findings(root) if f["severity"] != "info"]


def _project_finding(root: Path, name: str) -> dict[str, Any]:
    (finding,) = [f for f in findings(root) if f["subject"] == name]
    return finding


def _impostor(tmp_path: Path, name: str, module: str) -> Path:
    """A local index holding a same-named release whose import writes the marker file."""
    index = tmp_path / "index"
    depth = 5  # __init__.py: module, site-packages, pythonX.Y, lib, .venv, then the project
    build_wheel(index, name, "0.1.0", {f"{module}/__init__.py": IMPOSTOR.format(depth=depth)})
    return index


@pytest.mark.parametrize("strict", [False, True])
def test_uv_sync_of_a_project_passes_and_names_the_project(uv_project: Path, strict: bool) -> None:
    result = _gate(uv_project, "uv.lock", *(["--mlsupply-strict"] if strict else []))
    assert result.returncode == 0, result.stdout + result.stderr
    assert _problems(uv_project) == []
    finding = _project_finding(uv_project, "uv-demo")
    assert finding["kind"] == "not-verifiable"
    assert "is the project under test, installed from its working tree" in finding["message"]
    assert not (uv_project / ".venv" / "bin" / "pip").exists()  # uv seeds no pip


def test_uv_impostor_from_an_index_fails_before_its_code_runs(
    uv_project: Path, tmp_path: Path, tool_cache: Path
) -> None:
    index = _impostor(tmp_path, "uv-demo", "uv_demo")
    uv = _tool("uv")
    _run(
        [
            uv,
            "pip",
            "install",
            "--reinstall",
            "--no-index",
            "--find-links",
            str(index),
            "--python",
            str(uv_project / ".venv" / "bin" / "python"),
            "uv-demo==0.1.0",
        ],
        uv_project,
        _uv_env(tool_cache),
    )
    result = _gate(uv_project, "uv.lock")
    assert result.returncode != 0, result.stdout
    (finding,) = [f for f in _problems(uv_project) if f["subject"] == "uv-demo"]
    assert finding["kind"] == "source-changed" and finding["severity"] == "error"
    assert "has the name of the project under test" in finding["message"]
    assert "`uv sync` in the project's folder" in finding["hint"]
    assert not (uv_project / MARKER).exists()
    # The control: with the verdict ignored, the tests import the impostor and it runs.
    _gate(uv_project, "uv.lock", "--mlsupply-warn-only")
    assert (uv_project / MARKER).exists()


def test_uv_venv_without_pip_gets_uv_hints(
    uv_project: Path, tmp_path: Path, tool_cache: Path
) -> None:
    index = tmp_path / "index"
    build_wheel(index, "tiny-extra", "0.3")
    uv = _tool("uv")
    _run(
        [
            uv,
            "pip",
            "install",
            "--no-index",
            "--find-links",
            str(index),
            "--python",
            str(uv_project / ".venv" / "bin" / "python"),
            "tiny-extra==0.3",
        ],
        uv_project,
        _uv_env(tool_cache),
    )
    result = _gate(uv_project, "uv.lock", "--mlsupply-strict")
    assert result.returncode != 0
    (finding,) = _problems(uv_project)
    assert (finding["kind"], finding["subject"]) == ("unexpected", "tiny-extra")
    assert finding["hint"] == (
        "`uv sync` (it removes what the lock does not list), or `uv add tiny-extra`"
    )
    assert "pip install" not in result.stdout and "pip uninstall" not in result.stdout


@pytest.mark.parametrize("strict", [False, True])
def test_poetry_install_of_a_project_passes_and_names_the_project(
    poetry_project: Path, strict: bool
) -> None:
    result = _gate(poetry_project, "poetry.lock", *(["--mlsupply-strict"] if strict else []))
    assert result.returncode == 0, result.stdout + result.stderr
    assert _problems(poetry_project) == []
    finding = _project_finding(poetry_project, "poetry-demo")
    assert finding["kind"] == "not-verifiable"
    assert "is the project under test, installed from its working tree" in finding["message"]


def test_poetry_impostor_from_an_index_fails_before_its_code_runs(
    poetry_project: Path, tmp_path: Path
) -> None:
    index = _impostor(tmp_path, "poetry-demo", "poetry_demo")
    python = poetry_project / ".venv" / "bin" / "python"
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--force-reinstall",
            "--no-deps",
            "--no-index",
            "--find-links",
            str(index),
            "poetry-demo==0.1.0",
        ],
        poetry_project,
        {},
    )
    result = _gate(poetry_project, "poetry.lock")
    assert result.returncode != 0, result.stdout
    # The project's own folder, first on the import path, also shadows the impostor's
    # module (import-shadowed): the identity of the distribution is judged apart.
    (finding,) = [
        f
        for f in _problems(poetry_project)
        if f["subject"] == "poetry-demo" and f["kind"] == "source-changed"
    ]
    assert finding["severity"] == "error"
    assert "`poetry install` in the project's folder" in finding["hint"]
    assert not (poetry_project / MARKER).exists()


def test_uv_project_whose_pth_points_elsewhere_fails_before_its_code_runs(
    uv_project: Path, tmp_path: Path
) -> None:
    """The direct_url.json still names the working tree, but the editable install's
    ``.pth`` (and its RECORD row, rewritten to match) now points at another folder."""
    evil = tmp_path / "evil"
    (evil / "uv_demo").mkdir(parents=True)
    (evil / "uv_demo" / "__init__.py").write_text(IMPOSTOR.format(depth=2))
    (pth,) = (uv_project / ".venv").glob("lib/python*/site-packages/_*uv_demo.pth")
    data = f"{evil}\n".encode()
    pth.write_bytes(data)
    record = next(pth.parent.glob("uv_demo-*.dist-info")) / "RECORD"
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    rows = [
        f"{pth.name},sha256={digest},{len(data)}" if line.startswith(pth.name + ",") else line
        for line in record.read_text().splitlines()
    ]
    record.write_text("\n".join(rows) + "\n")
    result = _gate(uv_project, "uv.lock")
    assert result.returncode != 0, result.stdout
    assert any(str(evil) in f["message"] for f in _problems(uv_project))
    marker = tmp_path / MARKER
    assert not marker.exists()
    _gate(uv_project, "uv.lock", "--mlsupply-warn-only")  # the control: the payload runs
    assert marker.exists()


def test_uv_sync_no_editable_installs_the_project_and_passes_strict(
    uv_project: Path, tool_cache: Path
) -> None:
    """``uv sync --no-editable``: the project is built and copied into the venv (a
    ``dir_info`` install of the working tree); it is still the project under test."""
    _run([_tool("uv"), "sync", "--no-editable"], uv_project, _uv_env(tool_cache))
    result = _gate(uv_project, "uv.lock", "--mlsupply-strict")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _problems(uv_project) == []
    finding = _project_finding(uv_project, "uv-demo")
    assert "installed from its working tree (directory install of" in finding["message"]


def test_pdm_install_of_a_project_passes_strict_and_gets_pdm_hints(
    pdm_project: Path, tmp_path: Path
) -> None:
    """pdm's pylock.toml does not list the project; the pyproject.toml beside it names it."""
    result = _gate(pdm_project, "pylock.toml", "--mlsupply-strict")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _problems(pdm_project) == []
    finding = _project_finding(pdm_project, "pdm-demo")
    assert "is the project under test, installed from its working tree" in finding["message"]
    assert not (pdm_project / ".venv" / "bin" / "pip").exists()
    index = tmp_path / "index"
    build_wheel(index, "tiny-extra", "0.3")
    python = pdm_project / ".venv" / "bin" / "python"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-index",
            "--find-links",
            str(index),
            "tiny-extra==0.3",
        ],
        pdm_project,
        {},
    )
    assert _gate(pdm_project, "pylock.toml").returncode == 0  # a warning
    (unexpected,) = _problems(pdm_project)
    assert unexpected["hint"] == (
        "`pdm sync --clean` (it removes what the lock does not list), or `pdm add tiny-extra`"
    )


def test_uv_project_replaced_by_a_bare_pth_fails_before_its_code_runs(
    uv_project: Path, tmp_path: Path
) -> None:
    """The project's install is removed and a path-only ``.pth`` that no distribution owns
    puts another folder's ``uv_demo`` on the import path (nothing else reports that .pth:
    the missing project is what fails the gate)."""
    evil = tmp_path / "evil"
    (evil / "uv_demo").mkdir(parents=True)
    (evil / "uv_demo" / "__init__.py").write_text(IMPOSTOR.format(depth=2))
    (pth,) = (uv_project / ".venv").glob("lib/python*/site-packages/_*uv_demo.pth")
    site = pth.parent
    pth.unlink()
    shutil.rmtree(next(site.glob("uv_demo-*.dist-info")))
    (site / "uv_demo.pth").write_text(f"{evil}\n")
    result = _gate(uv_project, "uv.lock")
    assert result.returncode != 0, result.stdout
    kinds = {(f["kind"], f["severity"], f["subject"]) for f in _problems(uv_project)}
    assert ("missing", "error", "uv-demo") in kinds, kinds
    marker = tmp_path / MARKER
    assert not marker.exists()
    _gate(uv_project, "uv.lock", "--mlsupply-warn-only")  # the control: the payload runs
    assert marker.exists()
