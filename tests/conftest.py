"""Shared fixtures: the realdata folder, and real throwaway venvs built offline."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from wheelfactory import build_wheel, copy_venv, create_venv, pip, repack_installed, site_packages

REPO_ROOT = Path(__file__).resolve().parent.parent
REALDATA_ENV = "MLSUPPLY_REALDATA"


@pytest.fixture(autouse=True)
def _not_on_github_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite runs the same inside GitHub Actions: annotations appear only where a test
    asks for them (runs in subprocesses inherit this environment)."""
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)


@pytest.fixture(autouse=True)
def _not_an_xdist_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pytest run a test starts is not a worker of this suite's own xdist run, so it
    must not inherit the worker's ``PYTEST_XDIST_*`` variables (the gate reads them)."""
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)


def _realdata_dir() -> Path:
    configured = os.environ.get(REALDATA_ENV)
    if configured:
        return Path(configured)
    return REPO_ROOT.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """Real third-party files (lockfiles, RECORDs, OSV records) kept beside the checkout."""
    path = _realdata_dir()
    if not path.is_dir():
        pytest.skip(
            f"real third-party test data not found at {path}; set {REALDATA_ENV} to the "
            "realdata folder to run these tests"
        )
    return path


def runtime_closure(root: str) -> list[str]:
    """Names of *root* and every distribution it needs at run time, here and now."""
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(name) or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return sorted(seen)


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of this project and of its run-time dependencies, made without network."""
    house = tmp_path_factory.mktemp("wheelhouse")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "-q",
            "-w",
            str(house),
            str(REPO_ROOT),
        ],
        check=True,
    )
    for name in runtime_closure("pytest-mlsupply"):
        if name != "pytest-mlsupply":
            repack_installed(name, house)
    return house


@dataclass
class Venv:
    """A throwaway virtual environment with pytest and pytest-mlsupply installed."""

    root: Path
    python: Path
    site: Path

    def pip(self, *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
        return pip(self.python, *args)

    def install(self, *wheels: Path, extra: tuple[str, ...] = ()) -> None:
        self.pip("install", "--no-index", "--no-deps", *extra, *wheels)

    def run(
        self, *args: str, cwd: Path, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        full_env.pop("PYTHONPATH", None)
        full_env.update(env or {})
        return subprocess.run(
            [str(self.python), *args],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            check=False,
        )


@pytest.fixture(scope="session")
def base_venv(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Venv:
    root = tmp_path_factory.mktemp("base") / "venv"
    python = create_venv(root)
    # --find-links with names, not wheel paths: pip then installs as from an index
    # (no direct_url.json), the way most environments are built.
    names = [wheel.name.split("-")[0] for wheel in sorted(wheelhouse.glob("*.whl"))]
    pip(python, "install", "--no-index", "--no-deps", "--find-links", wheelhouse, *names)
    return Venv(root, python, site_packages(python))


@pytest.fixture
def venv(base_venv: Venv, tmp_path: Path) -> Iterator[Venv]:
    """A fresh copy of the base venv for one test to change as it likes."""
    python = copy_venv(base_venv.root, tmp_path / "venv")
    yield Venv(tmp_path / "venv", python, site_packages(python))


SUITE = """
def test_loss_decreases():
    assert 0.1 < 0.9

def test_accuracy():
    assert 0.95 > 0.9
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "test_model.py").write_text(SUITE)
    (root / "pytest.ini").write_text("[pytest]\n")
    return root


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    """A local 'index' (a --find-links folder) with two versions of a package."""
    folder = tmp_path / "index"
    build_wheel(folder, "demo-model", "1.0", {"demo_model.py": "WEIGHTS = [1, 2, 3]\n"})
    build_wheel(folder, "demo-model", "1.1", {"demo_model.py": "WEIGHTS = [1, 2, 4]\n"})
    build_wheel(folder, "tiny-extra", "0.3")
    return folder
