"""Planted bytecode caches beside verified sources, as users meet them: real venvs, real wheels.

A planted ``__pycache__/*.pyc`` carries its source's mtime and size in its header,
so the import system runs it instead of the source; its payload writes a marker.
The same suite run without the gate writes the marker, which proves the plant live.
"""

from __future__ import annotations

import importlib.util
import marshal
import os
import sys
from pathlib import Path

import pytest

from pytest_mlsupply.bytecode import MESSAGE_MISMATCH, PYCACHE_FOLDER

from gatehelpers import findings, gate, install_demo, lock
from wheelfactory import build_wheel

pytestmark = pytest.mark.slow

USES_MODEL = """
import demo_model

def test_weights():
    assert demo_model.WEIGHTS == [1, 2, 3]
"""


#: Python may write bytecode (the suite may run with PYTHONDONTWRITEBYTECODE set).
WRITING = {"PYTHONDONTWRITEBYTECODE": ""}


def pyc_name(source: Path) -> str:
    return f"{source.stem}.{sys.implementation.cache_tag}.pyc"


def plant(source: Path, marker: Path) -> Path:
    """A timestamp pyc for *source* that runs the source plus a payload writing *marker*."""
    text = f"open({str(marker)!r}, 'w').close()\n" + source.read_text()
    st = source.stat()
    head = (
        importlib.util.MAGIC_NUMBER
        + (0).to_bytes(4, "little")
        + (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
        + (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")
    )
    code = compile(text, str(source), "exec", dont_inherit=True)
    target = source.parent / "__pycache__" / pyc_name(source)
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(head + marshal.dumps(code))
    return target


def errors(project: Path) -> list[tuple[str, str]]:
    return sorted((f["kind"], f["subject"]) for f in findings(project, "error"))


def test_a_pyc_planted_for_a_module_a_test_imports_never_runs(venv, project, wheels) -> None:
    install_demo(venv, wheels)
    (project / "test_uses_model.py").write_text(USES_MODEL)
    lock(venv, project)
    marker = project.parent / "payload-ran"
    plant(venv.site / "demo_model.py", marker)

    ungated = venv.run("-m", "pytest", "-p", "no:cacheprovider", cwd=project)
    assert ungated.returncode == 0, ungated.stdout
    assert marker.exists(), "the planted pyc should run without the gate"
    marker.unlink()

    result = gate(venv, project)  # no cache plugin: everything compiles from source
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout  # the gate item and three tests
    assert not marker.exists()
    for _ in range(2):  # the gate's own cache: filled cold, read warm
        result = gate(venv, project, "-p", "cacheprovider", env=WRITING)
        assert result.returncode == 0, result.stdout + result.stderr
        assert not marker.exists()
    # The same pyc planted in the gate's own folder (a .pytest_cache restored from a shared
    # CI cache) is thrown away with the folder: no gated run wrote it.
    source = venv.site / "demo_model.py"
    prefix = project / ".pytest_cache" / "d" / "mlsupply" / PYCACHE_FOLDER
    honest = prefix / str(source.parent).lstrip(os.sep) / pyc_name(source)
    assert honest.is_file()  # what the gated runs compiled
    honest.write_bytes(plant(source, marker).read_bytes())
    result = gate(venv, project, "-p", "cacheprovider", env=WRITING)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not marker.exists()


def test_a_pyc_planted_for_a_module_pytest_loads_first_fails_the_gate(venv, project) -> None:
    """pytest imports iniconfig to read pytest.ini, before any verdict: the check catches it."""
    lock(venv, project)
    marker = project.parent / "payload-ran"
    source = venv.site / "iniconfig" / "__init__.py"
    planted = plant(source, marker)
    result = gate(venv, project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert errors(project) == [("bytecode-mismatch", "iniconfig")]
    (finding,) = findings(project, "error")
    assert finding["message"] == MESSAGE_MISMATCH.format(
        module="iniconfig", cached=planted, source=source
    )
    assert "Traceback" not in result.stdout + result.stderr
    # It ran before the verdict (the README says so); the tests were not collected.
    assert marker.exists()
    assert "collected 0 items" in result.stdout


def test_a_pyc_planted_for_a_locked_pytest11_plugin_fails_the_gate(venv, project, tmp_path) -> None:
    folder = tmp_path / "plugin-wheels"
    files = {"tiny_plugin.py": "def pytest_configure(config):\n    pass\n"}
    entry_points = "[pytest11]\ntiny = tiny_plugin\n"
    build_wheel(folder, "tiny-plugin", "1.0", files, entry_points=entry_points)
    venv.install("tiny-plugin", extra=("--find-links", str(folder)))
    lock(venv, project)
    marker = project.parent / "payload-ran"
    plant(venv.site / "tiny_plugin.py", marker)
    for extra in ((), ("-p", "cacheprovider"), ("-p", "cacheprovider")):  # cold, then warm
        result = gate(venv, project, *extra)
        assert result.returncode == 1, result.stdout + result.stderr
        assert errors(project) == [("bytecode-mismatch", "tiny-plugin")]


def test_the_pyc_python_writes_itself_passes(venv, project) -> None:
    env = WRITING
    lock(venv, project)
    # Python writes honest pycs of everything pytest imports (no gate: __pycache__ is used).
    assert venv.run("-m", "pytest", "-p", "no:cacheprovider", cwd=project, env=env).returncode == 0
    assert list((venv.site / "iniconfig" / "__pycache__").glob("*.pyc"))
    result = gate(venv, project, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert errors(project) == []


WORKER_PLUGIN = {
    # A plugin that imports a module on xdist workers only: the controller never loads it.
    "worker_helper.py": (
        "import os\nif os.environ.get('PYTEST_XDIST_WORKER'):\n    import worker_only  # noqa\n"
    ),
    "worker_only.py": "READY = True\n",
}


def test_a_pyc_only_xdist_workers_load_fails_the_gate(venv, project, tmp_path) -> None:
    xdist = pytest.importorskip("xdist")
    assert xdist
    from wheelfactory import repack_installed

    folder = tmp_path / "wheels"
    wheels = [repack_installed(name, folder) for name in ("pytest-xdist", "execnet")]
    entry_points = "[pytest11]\nworker_helper = worker_helper\n"
    wheels.append(
        build_wheel(folder, "worker-helper", "1.0", WORKER_PLUGIN, entry_points=entry_points)
    )
    venv.install(*wheels)
    (project / "test_uses_model.py").write_text("def test_x():\n    pass\n")
    lock(venv, project)
    clean = gate(venv, project, "-n", "2")
    assert clean.returncode == 0, clean.stdout + clean.stderr

    marker = project.parent / "payload-ran"
    plant(venv.site / "worker_only.py", marker)
    assert gate(venv, project, "-p", "no:xdist").returncode == 0  # the controller alone: clean
    result = gate(venv, project, "-n", "2")
    assert result.returncode == 1, result.stdout + result.stderr
    assert ("bytecode-mismatch", "worker-helper") in errors(project)
    assert "[bytecode-mismatch]" in result.stdout
    assert "test_x" not in result.stdout.replace("test_uses_model", "")
