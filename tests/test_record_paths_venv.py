"""RECORD rows that name a file in a roundabout way, as users meet them: real venvs, real wheels.

A red-team review got a clean gate out of a RECORD row that the content digest
skipped by its text (``pkg/__pycache__/../core.py``, ``../site-packages/...``)
while ownership followed it onto a real, edited file. Each payload writes a
marker file when it runs; the gated run must fail and leave no marker.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from gatehelpers import findings, gate, lock
from wheelfactory import build_wheel

pytestmark = pytest.mark.slow

VICTIM = {"victim/__init__.py": "", "victim/core.py": "SAFE = True\n"}


@pytest.fixture
def locked_victim(venv, project, tmp_path):
    build_wheel(tmp_path / "victim-wheels", "victim", "1.0", VICTIM)
    venv.install("victim", extra=("--find-links", str(tmp_path / "victim-wheels")))
    (project / "test_uses_victim.py").write_text("def test_uses():\n    import victim.core\n")
    lock(venv, project)
    return venv


def record_row(path: str, target: Path) -> str:
    data = target.read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")
    return f"{path},sha256={digest},{len(data)}\n"


def vouch(venv, row_path: str, target: Path) -> None:
    """Append a row for *target*, spelled as *row_path*, to victim's RECORD."""
    [record] = venv.site.glob("victim-1.0.dist-info/RECORD")
    with record.open("a", encoding="utf-8") as stream:
        stream.write(record_row(row_path, target))


def errors(project: Path) -> list[tuple[str, str]]:
    return sorted((f["kind"], f["subject"]) for f in findings(project, "error"))


@pytest.mark.parametrize(
    "row_path", ["victim/__pycache__/../core.py", "../site-packages/victim/core.py"]
)
def test_a_second_row_cannot_vouch_for_an_edited_module(
    locked_victim, project, tmp_path, row_path: str
) -> None:
    marker = tmp_path / "marker"
    core = locked_victim.site / "victim" / "core.py"
    with core.open("a") as stream:
        stream.write(f"open({str(marker)!r}, 'w').close()\n")
    vouch(locked_victim, row_path, core)
    for extra in ((), ("-p", "cacheprovider")):  # cold, then warm against the cache
        for options in (("--mlsupply-strict", "--mlsupply-rehash"), ()):
            result = gate(locked_victim, project, *extra, *options)
            assert result.returncode == 1, result.stdout
            assert ("broken-distribution", "victim") in errors(project)
            assert "names the same file as line" in result.stdout
            assert not marker.exists(), "the payload ran although the gate failed"
    checked = locked_victim.run("-m", "pytest_mlsupply", "check", cwd=project)
    assert checked.returncode != 0, checked.stdout
    ungated = locked_victim.run(
        "-m", "pytest", "-p", "no:mlsupply", "-p", "no:cacheprovider", cwd=project
    )
    assert ungated.returncode == 0, ungated.stdout
    assert marker.exists(), "the payload is not live: this test proves nothing"


@pytest.mark.parametrize(
    ("name", "row_path"),
    [
        ("zzz_evil.pth", "zzz_evil.pth/__pycache__/../../zzz_evil.pth"),
        ("sitecustomize.py", "sitecustomize.py/__pycache__/../../sitecustomize.py"),
    ],
)
def test_a_sneaky_row_for_start_up_code_changes_the_locked_content(
    locked_victim, project, tmp_path, name: str, row_path: str
) -> None:
    """Start-up code runs before any gate; what the gate owes is a failed run, not a note."""
    marker = tmp_path / "marker"
    code = f"open({str(marker)!r}, 'w').close()"
    target = locked_victim.site / name
    target.write_text(f"import os; {code}\n" if name.endswith(".pth") else code + "\n")
    vouch(locked_victim, row_path, target)
    result = gate(locked_victim, project)
    assert result.returncode == 1, result.stdout
    assert ("content-changed", "victim") in errors(project)
    checked = locked_victim.run("-m", "pytest_mlsupply", "check", cwd=project)
    assert checked.returncode != 0, checked.stdout


def test_absolute_rows_like_poetrys_editable_install(venv, project, tmp_path) -> None:
    """Absolute RECORD rows are verified where they point: no false file-missing."""
    build_wheel(tmp_path / "victim-wheels", "victim", "1.0", VICTIM)
    venv.install("victim", extra=("--find-links", str(tmp_path / "victim-wheels")))
    [record] = venv.site.glob("victim-1.0.dist-info/RECORD")
    lines = record.read_text(encoding="utf-8").splitlines(keepends=True)
    record.write_text("".join(f"{venv.site}/{line}" for line in lines), encoding="utf-8")
    lock(venv, project)
    result = gate(venv, project, "--mlsupply-strict")
    assert result.returncode == 0, result.stdout
    with (venv.site / "victim" / "core.py").open("a") as stream:
        stream.write("#")
    result = gate(venv, project)
    assert result.returncode == 1, result.stdout
    assert errors(project) == [("file-modified", "victim")]


def test_a_wheel_shipping_bytecode_that_pip_compiles_again(venv, project, tmp_path) -> None:
    """numpy 2.2's wheels ship a ``__pycache__/*.pyc``; pip compiles the source over it and
    lists the file twice in RECORD. That is pip, not an attack: the gate stays clean, and an
    edit of the module is still found."""
    tag = venv.run("-c", "import sys; print(sys.implementation.cache_tag)", cwd=tmp_path)
    shipped = f"victim/__pycache__/core.{tag.stdout.strip()}.pyc"
    build_wheel(tmp_path / "victim-wheels", "victim", "1.0", {**VICTIM, shipped: "stale"})
    venv.install("victim", extra=("--find-links", str(tmp_path / "victim-wheels")))
    [record] = venv.site.glob("victim-1.0.dist-info/RECORD")
    rows = [line.split(",")[0] for line in record.read_text(encoding="utf-8").splitlines()]
    assert rows.count(shipped) == 2, "pip no longer lists the recompiled file twice"
    lock(venv, project)
    for extra in ((), ("-p", "cacheprovider")):
        result = gate(venv, project, "--mlsupply-strict", *extra)
        assert result.returncode == 0, result.stdout
    with (venv.site / "victim" / "core.py").open("a") as stream:
        stream.write("#")
    result = gate(venv, project)
    assert result.returncode == 1, result.stdout
    assert errors(project) == [("file-modified", "victim")]
