"""CI's stage for the other supported CPythons (.ci/other-pythons), run on fake pyenv trees.

The stage must say which interpreters it found and which passed, skip a missing one, and fail
the run when a found one fails. The fake interpreters fail at once, so no venv is built here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = (".ci/other-pythons", ".ci/venv.sh")
MINORS = ("3.10", "3.11", "3.12", "3.13")
THIS_MINOR = f"{sys.version_info[0]}.{sys.version_info[1]}"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the CI scripts alone: the stage removes and builds venvs in its checkout."""
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    root = tmp_path / "checkout"
    for name in SCRIPTS:
        source = REPO_ROOT / name
        if not source.is_file():
            pytest.skip(f"{name} is not here (CI scripts ship with a checkout, not an sdist)")
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, root / name)
    return root


def fake_python(home: Path, version: str, body: str = "exit 3") -> Path:
    python = home / ".pyenv" / "versions" / version / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f"#!/bin/sh\necho 'fake python {version}' >&2\n{body}\n")
    python.chmod(0o755)
    return python


def run_stage(checkout: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(checkout / ".ci" / "other-pythons")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_a_found_python_that_fails_fails_the_stage(checkout: Path, tmp_path: Path) -> None:
    other = next(m for m in MINORS if m != THIS_MINOR)
    home = tmp_path / "home"
    fake_python(home, f"{other}.1")
    fake_python(home, f"{other}.9")  # the newest patch release is the one run
    fake_python(home, f"{other}.10")
    result = run_stage(checkout, home)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"-- CPython {other}.10: {home}/.pyenv/versions/{other}.10/bin/python" in result.stdout
    assert f"-- CPython {THIS_MINOR}: the default python, run by .ci/run" in result.stdout
    assert f"== other CPythons: found {other}.10; passed none; failed {other}.10" in result.stdout
    assert f"fake python {other}.10" in result.stderr
    assert f"fake python {other}.9" not in result.stderr


def test_missing_pythons_are_named_and_skipped(checkout: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    others = [m for m in MINORS if m != THIS_MINOR]
    # Not a plain release (a free-threaded build, a dev tag) or no interpreter: not found.
    fake_python(home, f"{others[0]}.0t")
    (home / ".pyenv" / "versions" / f"{others[1]}.2" / "bin").mkdir(parents=True)
    result = run_stage(checkout, home)
    assert result.returncode == 0, result.stdout + result.stderr
    for minor in others:
        assert f"-- CPython {minor}: not found, skipped" in result.stdout
    assert "== other CPythons: found none; passed none; failed none" in result.stdout
    assert "fake python" not in result.stderr


def test_no_pyenv_at_all_is_not_a_failure(checkout: Path, tmp_path: Path) -> None:
    result = run_stage(checkout, tmp_path / "empty-home")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "found none" in result.stdout
