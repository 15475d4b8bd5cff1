"""Files added to a locked ``.dist-info``, and an unlocked distribution vouching for code in a
locked package's folder, as users meet them: real venvs, real wheels, a marker payload.

The gated run must fail and the marker must not exist; the same suite run without
the gate then writes it, which proves the payload was live.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gatehelpers import findings, gate, lock
from wheelfactory import build_wheel

pytestmark = pytest.mark.slow

VICTIM = {"victim/__init__.py": "", "victim/core.py": "SAFE = True\n"}


def problems(project: Path) -> list[tuple[str, str, str]]:
    return sorted(
        (f["kind"], f["severity"], f["subject"])
        for f in findings(project)
        if f["severity"] != "info"
    )


def assert_blocked_then_live(venv, project: Path, marker: Path, *args: str) -> None:
    result = gate(venv, project, *args)
    assert result.returncode == 1, result.stdout
    assert not marker.exists(), "the payload ran although the gate failed"
    ungated = venv.run("-m", "pytest", "-p", "no:mlsupply", "-p", "no:cacheprovider", cwd=project)
    assert ungated.returncode == 0, ungated.stdout
    assert marker.exists(), "the payload is not live: this test proves nothing"


def test_an_entry_point_added_to_a_locked_dist_info(venv, project, tmp_path) -> None:
    """A locked, verified helper module becomes a pytest plugin through an added
    entry_points.txt; its autouse fixture is the payload."""
    marker = tmp_path / "marker"
    plugin = (
        "import pytest\n\n\n@pytest.fixture(autouse=True)\ndef _payload():\n"
        f"    open({str(marker)!r}, 'w').close()\n"
    )
    wheels = tmp_path / "victim-wheels"
    build_wheel(wheels, "victim", "1.0", {**VICTIM, "victim/testing.py": plugin})
    venv.install("victim", extra=("--find-links", str(wheels)))
    lock(venv, project)
    assert gate(venv, project).returncode == 0
    [dist_info] = venv.site.glob("victim-1.0.dist-info")
    (dist_info / "entry_points.txt").write_text("[pytest11]\nvictim_testing = victim.testing\n")
    assert_blocked_then_live(venv, project, marker)
    assert problems(project) == [("unowned-module", "error", "victim")]


@pytest.mark.parametrize("lock_name", ["mlsupply.lock", "requirements.txt"])
def test_an_unlocked_wheel_vouching_for_a_module_in_a_locked_package(
    venv, project, tmp_path, lock_name: str
) -> None:
    marker = tmp_path / "marker"
    wheels = tmp_path / "wheels"
    victim = build_wheel(wheels, "victim", "1.0", VICTIM)
    build_wheel(wheels, "evil", "1.0", {"victim/evil.py": f"open({str(marker)!r}, 'w').close()\n"})
    venv.install("victim", extra=("--find-links", str(wheels)))
    if lock_name == "mlsupply.lock":
        lock(venv, project)
    else:
        sha = hashlib.sha256(victim.read_bytes()).hexdigest()
        (project / lock_name).write_text(f"victim==1.0 --hash=sha256:{sha}\n")
    args = ("--mlsupply-lock", lock_name)
    assert gate(venv, project, *args).returncode == 0
    venv.install("evil", extra=("--find-links", str(wheels), "--no-index"))
    (project / "test_uses_victim.py").write_text("def test_uses():\n    import victim.evil\n")
    assert_blocked_then_live(venv, project, marker, *args)
    assert ("unowned-module", "error", "evil") in problems(project)
