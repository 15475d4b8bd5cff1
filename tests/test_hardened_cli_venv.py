"""Start-up code against the gate, in real venvs with real wheels (issue items 6 and 7).

An unlocked pytest plugin, import ``.pth`` or ``sitecustomize`` is an error without
--mlsupply-strict; and a hook that patches pytest-mlsupply in-process cannot change what
``check`` reports, whether it runs in the environment or checks it from a trusted one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_mlsupply.checks import STARTUP_PLUGIN
from pytest_mlsupply.cli import EXIT_FINDINGS
from pytest_mlsupply.plugin import NOT_COLLECTED_NOTE

from gatehelpers import findings, gate
from wheelfactory import build_wheel

pytestmark = pytest.mark.slow

#: Imported by a .pth line or sitecustomize: counts its runs in a marker file, then makes
#: every gate report empty (the attack the re-run under -I -S defends against).
BLINDER = """
import dataclasses, os, pathlib
marker = os.environ.get("BLINDER_MARKER")
if marker:
    with pathlib.Path(marker).open("a") as stream:
        stream.write("ran\\n")
import pytest_mlsupply.gate as gate
from pytest_mlsupply.findings import Report
_real = gate.run_gate
def run_gate(*args, **kwargs):
    result = _real(*args, **kwargs)
    old = result.report
    empty = Report.build([], lock_path=old.lock_path, environment=old.environment)
    return dataclasses.replace(result, report=empty)
gate.run_gate = run_gate
"""

PLUGIN = """
import os, pathlib
marker = os.environ.get("PLUGIN_MARKER")
if marker:
    pathlib.Path(marker).touch()
"""


def _mlsupply(venv, project: Path, *args: str, env: dict[str, str]):
    return venv.run("-m", "pytest_mlsupply", *args, cwd=project, env=env)


def _locked(venv, project: Path) -> None:
    result = _mlsupply(venv, project, "lock", env={})
    assert result.returncode == 0, result.stdout + result.stderr


def test_unlocked_pytest_plugin_fails_the_gate_without_strict(venv, project, tmp_path):
    _locked(venv, project)
    wheels = tmp_path / "wheels"
    plugin = build_wheel(
        wheels,
        "quiet-plugin",
        "1.0",
        {"quiet_plugin.py": PLUGIN},
        entry_points="[pytest11]\nquiet = quiet_plugin\n",
    )
    venv.install(plugin, build_wheel(wheels, "tiny-extra", "0.3"))
    marker = tmp_path / "plugin-ran"
    result = gate(venv, project, env={"PLUGIN_MARKER": str(marker)})
    assert result.returncode == 1, result.stdout
    assert marker.exists()  # the control: pytest loads it, before the gate has a say
    rows = sorted(
        (f["severity"], f["subject"]) for f in findings(project) if f["kind"] == "unexpected"
    )
    assert rows == [("error", "quiet-plugin"), ("warning", "tiny-extra")]
    assert STARTUP_PLUGIN.format(name="quiet") in result.stdout
    assert NOT_COLLECTED_NOTE in result.stdout
    marker.unlink()
    checked = _mlsupply(venv, project, "check", env={"PLUGIN_MARKER": str(marker)})
    assert checked.returncode == EXIT_FINDINGS, checked.stdout + checked.stderr
    assert "pytest11 plugin `quiet`" in checked.stdout
    assert not marker.exists(), "check loaded an entry point of the environment it checks"


@pytest.mark.parametrize(
    ("hook_file", "shown"),
    [("blinder.pth", "ships blinder.pth"), ("sitecustomize.py", "ships sitecustomize.py")],
)
def test_hook_patching_the_gate_cannot_blind_check(venv, project, tmp_path, hook_file, shown):
    _locked(venv, project)
    wheel = build_wheel(
        tmp_path / "wheels",
        "blinder",
        "1.0",
        {"blinder_hook.py": BLINDER, hook_file: "import blinder_hook\n"},
    )
    venv.install(wheel)
    marker = tmp_path / "marker"
    env = {"BLINDER_MARKER": str(marker)}

    def runs() -> int:
        return len(marker.read_text().splitlines()) if marker.exists() else 0

    # The control: in the process the hook ran in, the report is blinded.
    blinded = venv.run(
        "-c",
        "from pytest_mlsupply.cli import main; raise SystemExit(main(['check']))",
        cwd=project,
        env=env,
    )
    assert blinded.returncode == 0, blinded.stdout + blinded.stderr
    assert "0 errors" in blinded.stdout
    assert runs() == 1

    script = venv.root / (
        "Scripts/mlsupply-script.py" if sys.platform == "win32" else "bin/mlsupply"
    )
    for command in (["-m", "pytest_mlsupply", "check"], [str(script), "check"]):
        before = runs()
        result = venv.run(*command, cwd=project, env=env)
        assert result.returncode == EXIT_FINDINGS, result.stdout + result.stderr
        assert "blinder 1.0 is installed but not locked, and " in result.stdout
        assert shown in result.stdout
        # Started inside the environment, site ran the hook once before our code;
        # the re-run under -I -S did not run it again.
        assert runs() == before + 1

    # The hardened way: a separate, trusted interpreter checks the test venv.
    before = runs()
    trusted = subprocess.run(
        [sys.executable, "-m", "pytest_mlsupply", "check", "--python", str(venv.python)],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        env={**_env_without_python_vars(), **env},
    )
    assert trusted.returncode == EXIT_FINDINGS, trusted.stdout + trusted.stderr
    assert shown in trusted.stdout
    assert runs() == before, "checking with --python ran the environment's start-up code"


def _env_without_python_vars() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYTEST_"))}


def test_foreign_lock_gate_fails_on_an_unlocked_plugin(venv, project, tmp_path):
    wheels = tmp_path / "wheels"
    plugin = build_wheel(
        wheels,
        "quiet-plugin",
        "1.0",
        {"quiet_plugin.py": PLUGIN},
        entry_points="[pytest11]\nquiet = quiet_plugin\n",
    )
    venv.install(plugin, build_wheel(wheels, "tiny-extra", "0.3"))
    (project / "requirements.txt").write_text("tiny-extra==0.3\n")
    result = gate(venv, project, "--mlsupply-lock", "requirements.txt")
    assert result.returncode == 1, result.stdout
    problems = [(f["kind"], f["severity"], f["subject"]) for f in findings(project)]
    # The tooling that runs the gate (pytest, pluggy, ...) is still not 'unexpected'.
    unexpected = [p for p in problems if p[0] == "unexpected"]
    assert unexpected == [("unexpected", "error", "quiet-plugin")]


def test_plugin_committed_to_the_project_directory_fails_the_gate(venv, project, tmp_path):
    """`python -m pytest` puts the project directory on sys.path; pytest loads plugins there."""
    _locked(venv, project)
    dist_info = project / "helper-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: helper\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[pytest11]\nhelper = quiet_helper\n")
    (project / "quiet_helper.py").write_text(PLUGIN)
    marker = tmp_path / "plugin-ran"
    result = gate(venv, project, env={"PLUGIN_MARKER": str(marker)})
    assert marker.exists()  # the control: pytest did load it
    assert result.returncode == 1, result.stdout
    [problem] = [f for f in findings(project) if f["severity"] == "error"]
    assert (problem["kind"], problem["subject"]) == ("unexpected", "helper")
    checked = _mlsupply(venv, project, "check", env={})
    assert checked.returncode == EXIT_FINDINGS, checked.stdout + checked.stderr
    assert "loads its pytest11 plugin `helper`" in checked.stdout


#: Appended to a verified module's source and compiled into its ``__pycache__``: the
#: process exits 0 at shutdown whatever the check found.
SILENCER = "\nimport atexit as _atexit, os as _os\n_atexit.register(_os._exit, 0)\n"


def test_bytecode_next_to_a_verified_module_cannot_blind_check(venv, project, tmp_path):
    """A ``.pyc`` the checked environment holds is never imported by the re-run.

    An unchecked-hash ``.pyc`` is used whatever its source says; the re-run compiles
    pytest-mlsupply and its dependencies from their (verified) sources instead.
    """
    _locked(venv, project)
    source = venv.site / "packaging" / "version.py"
    tampered = tmp_path / "version.py"
    tampered.write_text(source.read_text(encoding="utf-8") + SILENCER, encoding="utf-8")
    compiled = venv.run(
        "-c",
        "import importlib.util, py_compile, sys; "
        "py_compile.compile(sys.argv[1], cfile=importlib.util.cache_from_source(sys.argv[2]), "
        "invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH, doraise=True)",
        str(tampered),
        str(source),
        cwd=project,
    )
    assert compiled.returncode == 0, compiled.stderr
    (venv.site / "zz_obvious.pth").write_text("import os\n", encoding="utf-8")

    # The control: a process that imports packaging normally exits 0 whatever happens.
    control = venv.run("-c", "import packaging.version; raise SystemExit(3)", cwd=project)
    assert control.returncode == 0

    result = _mlsupply(venv, project, "check", env={})
    assert result.returncode == EXIT_FINDINGS, result.stdout + result.stderr
    assert "zz_obvious.pth" in result.stdout
