"""Code slipped into a locked package's folder, as users meet it: real venvs, real wheels.

Each payload writes a marker file when it runs. The gated run must fail and the
marker must not exist; the same suite run without the gate then writes it,
which proves the payload was live.
"""

from __future__ import annotations

import importlib.machinery
import py_compile
from pathlib import Path

import pytest

from gatehelpers import findings, gate, lock
from wheelfactory import build_wheel

pytestmark = pytest.mark.slow

VICTIM = {
    "victim/__init__.py": "",
    "victim/core.py": "SAFE = True\n",
}


def problems(project: Path) -> list[tuple[str, str, str]]:
    return sorted(
        (f["kind"], f["severity"], f["subject"])
        for f in findings(project)
        if f["severity"] != "info"
    )


@pytest.fixture
def locked_victim(venv, project, tmp_path):
    build_wheel(tmp_path / "victim-wheels", "victim", "1.0", VICTIM)
    venv.install("victim", extra=("--find-links", str(tmp_path / "victim-wheels")))
    lock(venv, project)
    return venv


def payload(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()\nSAFE = False\n"


def uses(project: Path, module: str) -> None:
    """A test that imports *module* in its body (so only a test that runs imports it)."""
    (project / "test_uses_victim.py").write_text(f"def test_uses():\n    import {module}\n")


def assert_blocked_then_live(venv, project: Path, marker: Path, subject: str) -> None:
    result = gate(venv, project)
    assert result.returncode == 1, result.stdout
    assert ("unowned-module", "error", subject) in problems(project)
    assert not marker.exists(), "the payload ran although the gate failed"
    ungated = venv.run("-m", "pytest", "-p", "no:mlsupply", "-p", "no:cacheprovider", cwd=project)
    assert ungated.returncode == 0, ungated.stdout
    assert marker.exists(), "the payload is not live: this test proves nothing"


def test_a_module_added_inside_a_locked_package(locked_victim, project, tmp_path) -> None:
    marker = tmp_path / "marker"
    (locked_victim.site / "victim" / "extra.py").write_text(payload(marker))
    uses(project, "victim.extra")
    assert_blocked_then_live(locked_victim, project, marker, "victim")


def test_a_package_shadowing_a_verified_module(locked_victim, project, tmp_path) -> None:
    marker = tmp_path / "marker"
    shadow = locked_victim.site / "victim" / "core"
    shadow.mkdir()
    (shadow / "__init__.py").write_text(payload(marker))
    uses(project, "victim.core")
    assert_blocked_then_live(locked_victim, project, marker, "victim")


def test_a_sourceless_pyc(locked_victim, project, tmp_path) -> None:
    marker = tmp_path / "marker"
    source = tmp_path / "helper.py"
    source.write_text(payload(marker))
    compiled = locked_victim.site / "victim" / "helper.pyc"
    py_compile.compile(str(source), cfile=str(compiled), doraise=True)
    uses(project, "victim.helper")
    assert_blocked_then_live(locked_victim, project, marker, "victim")


def test_an_extension_module_dropped_in(locked_victim, project) -> None:
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    (locked_victim.site / "victim" / f"_speedups{suffix}").write_bytes(b"\x7fELF\x02\x01\x01")
    result = gate(locked_victim, project)
    assert result.returncode == 1, result.stdout
    assert problems(project) == [("unowned-module", "error", "victim")]


def test_the_warm_cache_does_not_hide_an_added_module(locked_victim, project, tmp_path) -> None:
    cached = ("-p", "cacheprovider")
    assert gate(locked_victim, project, *cached).returncode == 0
    assert gate(locked_victim, project, *cached).returncode == 0  # warm: every cache filled
    (locked_victim.site / "victim" / "extra.py").write_text("X = 1\n")
    result = gate(locked_victim, project, *cached)
    assert result.returncode == 1, result.stdout
    assert problems(project) == [("unowned-module", "error", "victim")]


@pytest.mark.parametrize(
    ("hook", "row", "text"),
    [
        ("zz.pth", "zz.pth/__pycache__/x", "import sys; sys.flags\n"),
        ("sitecustomize.py", "sitecustomize.py/__pycache__/x", "X = 1\n"),
    ],
)
def test_a_hashless_record_row_does_not_own_startup_code(
    locked_victim, project, hook: str, row: str, text: str
) -> None:
    """The row leaves the content digest (and so the lock check) unchanged; ownership too."""
    [record] = locked_victim.site.glob("victim-1.0.dist-info/RECORD")
    with record.open("a") as stream:
        stream.write(f"{row},,\n")
    assert gate(locked_victim, project).returncode == 0  # the row alone changes nothing locked
    (locked_victim.site / hook).write_text(text)
    result = gate(locked_victim, project)
    assert result.returncode == 1, result.stdout
    assert problems(project) == [("unowned-startup-code", "error", hook)]
