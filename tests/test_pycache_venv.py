"""Bytecode in ``__pycache__`` that runs in place of verified code: real venvs, real wheels.

Each payload writes a marker file when it runs. The gated run must fail and the
marker must not exist; the same suite run without the gate then writes it,
which proves the payload was live.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehelpers import findings, gate, lock
from wheelfactory import build_wheel

pytestmark = pytest.mark.slow

VICTIM = {"victim/__init__.py": "", "victim/core.py": "SAFE = True\n"}

#: Compiled by the venv's own Python, so the magic number is the one it accepts.
COMPILE = """
import importlib.util, py_compile, sys
source, payload, target, mode = sys.argv[1:]
py_compile.compile(
    payload, cfile=target or importlib.util.cache_from_source(source), doraise=True,
    invalidation_mode=py_compile.PycInvalidationMode[mode],
)
"""


@pytest.fixture
def locked_victim(venv, project, tmp_path):
    build_wheel(tmp_path / "victim-wheels", "victim", "1.0", VICTIM)
    venv.install("victim", extra=("--find-links", str(tmp_path / "victim-wheels")))
    lock(venv, project)
    return venv


def compile_payload(venv, tmp_path: Path, marker: Path, source: Path, target: str = "") -> None:
    payload = tmp_path / "payload.py"
    payload.write_text(f"open({str(marker)!r}, 'w').close()\nSAFE = False\n")
    done = venv.run(
        "-c", COMPILE, str(source), str(payload), target, "UNCHECKED_HASH", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr


def assert_blocked_then_live(venv, project: Path, marker: Path, module: str) -> None:
    (project / "test_uses_victim.py").write_text(f"def test_uses():\n    import {module}\n")
    for options in ((), ("--mlsupply-strict", "--mlsupply-rehash")):
        result = gate(venv, project, *options)
        assert result.returncode == 1, result.stdout
        kinds = {(f["kind"], f["severity"]) for f in findings(project)}
        assert ("unowned-module", "error") in kinds
        assert not marker.exists(), "the payload ran although the gate failed"
    ungated = venv.run("-m", "pytest", "-p", "no:mlsupply", "-p", "no:cacheprovider", cwd=project)
    assert ungated.returncode == 0, ungated.stdout + ungated.stderr
    assert marker.exists(), "the payload is not live: this test proves nothing"


def test_unchecked_hash_pyc_replacing_a_verified_module(locked_victim, project, tmp_path) -> None:
    marker = tmp_path / "marker"
    core = locked_victim.site / "victim" / "core.py"
    compile_payload(locked_victim, tmp_path, marker, core)
    assert_blocked_then_live(locked_victim, project, marker, "victim.core")


def test_stray_pyc_importable_from_pycache(locked_victim, project, tmp_path) -> None:
    marker = tmp_path / "marker"
    cache = locked_victim.site / "victim" / "__pycache__"
    cache.mkdir(exist_ok=True)
    core = locked_victim.site / "victim" / "core.py"
    compile_payload(locked_victim, tmp_path, marker, core, str(cache / "evil.pyc"))
    assert_blocked_then_live(locked_victim, project, marker, "victim.__pycache__.evil")


def test_module_in_a_top_level_pycache(locked_victim, project, tmp_path) -> None:
    marker = tmp_path / "marker"
    cache = locked_victim.site / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    assert_blocked_then_live(locked_victim, project, marker, "__pycache__.evil")
