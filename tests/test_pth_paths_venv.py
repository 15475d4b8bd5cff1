"""Path lines of ``.pth`` files as users meet them (issue 12): real venvs, real payloads.

A zip with ``optmod.py`` written under a name no check reads as code, and a path-only
``.pth`` naming it: ``import optmod`` (an optional import: urllib3 tries ``brotli`` and
``zstandard``) then runs a module nobody installed. The gated run must fail with the
payload not run; the same suite without the gate runs it, which proves it was live.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pytest_mlsupply.cli import EXIT_FINDINGS

from gatehelpers import findings, gate, lock
from wheelfactory import build_wheel, repack_installed

pytestmark = pytest.mark.slow


def payload_zip(marker: Path, prefix: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    buffer.write(prefix)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("optmod.py", f"open({str(marker)!r}, 'w').close()\n")
    return buffer.getvalue()


def problems(project: Path) -> list[tuple[str, str, str]]:
    return sorted(
        (f["kind"], f["severity"], f["subject"])
        for f in findings(project)
        if f["severity"] != "info"
    )


@pytest.fixture
def locked(venv, project):
    (project / "test_optional.py").write_text(
        "def test_optional():\n"
        "    try:\n"
        "        import optmod  # noqa: F401\n"
        "    except ImportError:\n"
        "        pass\n"
    )
    lock(venv, project)
    assert gate(venv, project).returncode == 0
    return venv


def assert_blocked_then_live(venv, project: Path, marker: Path, subject: str) -> None:
    result = gate(venv, project)
    assert result.returncode == 1, result.stdout
    assert ("unowned-startup-code", "error", subject) in problems(project)
    assert not marker.exists(), "the payload ran although the gate failed"
    ungated = venv.run("-m", "pytest", "-p", "no:mlsupply", "-p", "no:cacheprovider", cwd=project)
    assert ungated.returncode == 0, ungated.stdout
    assert marker.exists(), "the payload is not live: this test proves nothing"


@pytest.mark.parametrize(
    ("where", "line"),
    [
        ("_pytest/_data.bin", "_pytest/_data.bin"),  # data file inside a locked package
        ("blob.egg", "blob.egg"),
        ("blob.zip", "blob.zip"),
        (".cache/blob", ".cache/blob"),  # a hidden folder, no suffix
    ],
)
def test_a_zip_on_sys_path_through_a_pth(locked, project, tmp_path, where, line) -> None:
    marker = tmp_path / "marker"
    target = locked.site / where
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(payload_zip(marker, prefix=b"\x89PNG\r\n\x1a\n" * 4))
    (locked.site / "zz-paths.pth").write_text(f"{line}\n")
    assert_blocked_then_live(locked, project, marker, "zz-paths.pth")


def test_check_from_a_trusted_interpreter(locked, project, tmp_path) -> None:
    marker = tmp_path / "marker"
    (locked.site / "_pytest" / "_data.bin").write_bytes(payload_zip(marker))
    (locked.site / "zz-paths.pth").write_text("_pytest/_data.bin\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYTEST_"))}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_mlsupply",
            "check",
            "--python",
            str(locked.python),
            "--lock",
            str(project / "mlsupply.lock"),
            "--strict",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert result.returncode == EXIT_FINDINGS, result.stdout + result.stderr
    assert "zz-paths.pth puts the file" in result.stdout
    assert not marker.exists()


def test_a_path_only_pth_nobody_owns_fails_strict(locked, project, tmp_path) -> None:
    (tmp_path / "models").mkdir()
    (locked.site / "zz-paths.pth").write_text(f"{tmp_path / 'models'}\n")
    assert gate(locked, project).returncode == 0  # a warning
    assert problems(project) == [("unowned-startup-code", "warning", "zz-paths.pth")]
    assert gate(locked, project, "--mlsupply-strict").returncode == 1


NSPKG = (
    "import sys, types, os;has_mfs = sys.version_info > (3, 5);"
    "p = os.path.join(sys._getframe(1).f_locals['sitedir'], *('acme',));"
    "importlib = has_mfs and __import__('importlib.util');"
    "has_mfs and __import__('importlib.machinery');"
    "m = has_mfs and sys.modules.setdefault('acme', importlib.util.module_from_spec("
    "importlib.machinery.PathFinder.find_spec('acme', [os.path.dirname(p)])));"
    "m = m or sys.modules.setdefault('acme', types.ModuleType('acme'));"
    "mp = (m or []) and m.__dict__.setdefault('__path__',[]);"
    "(p not in mp) and mp.append(p)\n"
)


def test_real_pth_files_raise_no_alarm(venv, project, tmp_path) -> None:
    """setuptools' distutils-precedence.pth, a namespace package's -nspkg.pth, and a
    wheel's own path-only .pth into its own folder (as some vendoring packages ship)."""
    wheels = tmp_path / "wheels"
    build_wheel(
        wheels,
        "acme-tools",
        "1.0",
        {"acme/tools/__init__.py": "X = 1\n", "acme_tools-1.0-py3.11-nspkg.pth": NSPKG},
    )
    build_wheel(
        wheels,
        "vendoring",
        "1.0",
        {
            "vendoring/__init__.py": "",
            "vendoring/_vendor/dep.py": "",
            "vendoring.pth": "vendoring/_vendor\n",
        },
    )
    venv.install(repack_installed("setuptools", tmp_path / "st"))
    venv.install("acme-tools", "vendoring", extra=("--find-links", str(wheels)))
    assert (venv.site / "distutils-precedence.pth").is_file()
    lock(venv, project)
    result = gate(venv, project, "--mlsupply-strict")
    assert result.returncode == 0, result.stdout
    assert problems(project) == []
