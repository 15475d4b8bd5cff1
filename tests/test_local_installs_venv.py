"""A locked editable install's RECORD vouches for nothing else: real venvs, real backends.

``pip install -e`` of a tiny project with setuptools and hatchling, locked; then
correctly hashed rows are appended to its RECORD for an import ``.pth``, a
pytest plugin module and a file in another locked distribution's folder. Each
must fail the gate; the clean editable installs must give no finding.
"""

from __future__ import annotations

import base64
import hashlib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.version import Version

from gatehelpers import findings, gate, lock
from wheelfactory import build_wheel, repack_installed

pytestmark = pytest.mark.slow

BACKENDS = {
    "setuptools": ('["setuptools>=70.1"]', "setuptools.build_meta"),
    "hatchling": ('["hatchling"]', "hatchling.build"),
}
PROJECT = """\
[build-system]
requires = {requires}
build-backend = "{backend}"

[project]
name = "myproj"
version = "0.1"
"""
USES_DEMO_CORE = "def test_core():\n    import demo.core\n    assert demo.core.SAFE\n"


#: Each backend and what it needs at build time besides what the venv has.
BUILD_NEEDS = {
    "setuptools": ["setuptools"],
    "hatchling": ["hatchling", "editables", "pathspec", "trove-classifiers"],
}


def _backend(venv, tmp_path: Path, backend: str) -> None:
    """Install the build backend from this environment (setuptools 70.1+ needs no wheel)."""
    for name in BUILD_NEEDS[backend]:
        try:
            version = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            pytest.skip(f"{name} is not installed in the test environment")
        if name == "setuptools" and version < Version("70.1"):
            pytest.skip("setuptools before 70.1 needs the wheel package for editable installs")
    venv.install(*(repack_installed(name, tmp_path / "backend") for name in BUILD_NEEDS[backend]))


def editable_project(venv, tmp_path: Path, backend: str, flat: bool = False) -> Path:
    _backend(venv, tmp_path, backend)
    tree = tmp_path / "proj"
    package = tree / ("myproj" if flat else "src/myproj")
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("X = 1\n")
    requires, build_backend = BACKENDS[backend]
    (tree / "pyproject.toml").write_text(PROJECT.format(requires=requires, backend=build_backend))
    venv.pip("install", "--no-index", "--no-deps", "--no-build-isolation", "-e", tree)
    return venv.site / "myproj-0.1.dist-info"


def add_row(dist_info: Path, site: Path, relative: str) -> None:
    data = (site / relative).read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    with (dist_info / "RECORD").open("a") as record:
        record.write(f"{relative},sha256={digest},{len(data)}\n")


def errors(project: Path) -> list[tuple[str, str]]:
    return sorted((f["kind"], f["location"]) for f in findings(project, "error"))


@pytest.mark.parametrize(
    ("backend", "flat"), [("setuptools", False), ("setuptools", True), ("hatchling", False)]
)
def test_clean_editable_install_has_no_finding(venv, project, tmp_path, backend, flat):
    editable_project(venv, tmp_path, backend, flat)
    # What each backend really writes: setuptools a finder for a flat layout, else a path .pth.
    finder = venv.site / "__editable___myproj_0_1_finder.py"
    assert finder.exists() == (backend == "setuptools" and flat)
    lock(venv, project)
    result = gate(venv, project, "--mlsupply-strict")
    assert result.returncode == 0, result.stdout
    assert [f for f in findings(project) if f["severity"] != "info"] == []


def test_import_pth_listed_by_the_editable_record_fails(venv, project, tmp_path):
    dist_info = editable_project(venv, tmp_path, "setuptools")
    lock(venv, project)
    marker = tmp_path / "pwned"
    (venv.site / "zz_evil.pth").write_text(f"import os; open({str(marker)!r}, 'w').write('x')\n")
    add_row(dist_info, venv.site, "zz_evil.pth")
    result = gate(venv, project, "--mlsupply-strict", "--mlsupply-rehash")
    assert result.returncode == 1, result.stdout
    assert ("unowned-startup-code", str(venv.site / "zz_evil.pth")) in errors(project)
    warm = gate(venv, project, "--mlsupply-strict")
    assert warm.returncode == 1, warm.stdout
    check = venv.run("-m", "pytest_mlsupply", "check", "--strict", cwd=project)
    assert check.returncode != 0, check.stdout


def test_pytest_plugin_listed_by_the_editable_record_fails(venv, project, tmp_path):
    dist_info = editable_project(venv, tmp_path, "setuptools")
    lock(venv, project)
    (venv.site / "myproj_evil.py").write_text("X = 1\n")
    with (dist_info / "entry_points.txt").open("a") as entry_points:
        entry_points.write("[pytest11]\nevilplug = myproj_evil\n")
    add_row(dist_info, venv.site, "myproj_evil.py")
    add_row(dist_info, venv.site, f"{dist_info.name}/entry_points.txt")
    result = gate(venv, project, "--mlsupply-strict")
    assert result.returncode == 1, result.stdout
    assert ("unowned-startup-code", str(dist_info / "entry_points.txt")) in errors(project)


def test_file_in_a_locked_folder_listed_by_the_editable_record_fails(venv, project, tmp_path):
    build_wheel(
        tmp_path / "demo-wheels",
        "demo",
        "1.0",
        {"demo/__init__.py": "", "demo/core.py": "SAFE = 1\n"},
    )
    venv.install("demo", extra=("--find-links", str(tmp_path / "demo-wheels")))
    dist_info = editable_project(venv, tmp_path, "setuptools")
    (project / "test_core.py").write_text(USES_DEMO_CORE)
    lock(venv, project)
    marker = tmp_path / "pwned"
    (venv.site / "demo" / "core").mkdir()
    (venv.site / "demo" / "core" / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\nSAFE = 1\n"
    )
    add_row(dist_info, venv.site, "demo/core/__init__.py")
    result = gate(venv, project, "--mlsupply-strict", "--mlsupply-rehash")
    assert result.returncode == 1, result.stdout
    assert ("unowned-module", str(venv.site / "demo" / "core" / "__init__.py")) in errors(project)
    assert not marker.exists()
    # The payload is live: the same suite without the gate runs it.
    venv.run("-m", "pytest", "-p", "no:cacheprovider", cwd=project)
    assert marker.exists()
