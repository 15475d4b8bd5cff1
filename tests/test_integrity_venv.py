"""Installed-file integrity as users meet it: real venvs, real wheels, then tampered with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import runtime_closure

from pytest_mlsupply.gate import NOT_A_LAUNCHER

from gatehelpers import findings, gate, install_demo, lock
from wheelfactory import build_wheel, repack_installed

pytestmark = pytest.mark.slow


def problems(project: Path) -> list[tuple[str, str, str]]:
    return sorted(
        (f["kind"], f["severity"], f["subject"])
        for f in findings(project)
        if f["severity"] != "info"
    )


@pytest.fixture
def locked_venv(venv, project, wheels):
    install_demo(venv, wheels)
    lock(venv, project)
    return venv


def test_appending_a_byte_to_an_installed_module(locked_venv, project) -> None:
    with (locked_venv.site / "demo_model.py").open("a") as stream:
        stream.write(" ")
    result = gate(locked_venv, project)
    assert result.returncode == 1
    assert problems(project) == [("file-modified", "error", "demo-model")]
    assert "demo-model 1.0: demo_model.py was modified after installation" in result.stdout


def test_edit_keeping_size_and_mtime_after_a_cached_run(locked_venv, project) -> None:
    cached = ["-p", "cacheprovider"]
    assert gate(locked_venv, project, *cached).returncode == 0  # fills the hash cache
    target = locked_venv.site / "demo_model.py"
    before = target.stat()
    text = target.read_text()
    target.write_text(text.replace("1, 2, 3", "1, 2, 9"))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert target.stat().st_size == before.st_size
    result = gate(locked_venv, project, *cached)
    assert result.returncode == 1, result.stdout
    assert problems(project) == [("file-modified", "error", "demo-model")]


def test_deleting_an_installed_file(locked_venv, project) -> None:
    (locked_venv.site / "demo_model.py").unlink()
    result = gate(locked_venv, project)
    assert result.returncode == 1
    assert problems(project) == [("file-missing", "error", "demo-model")]


def test_unowned_pth_with_an_import_line(locked_venv, project) -> None:
    (locked_venv.site / "litellm_init.pth").write_text("import os, sys; sys.ps9 = 1\n")
    result = gate(locked_venv, project)
    assert result.returncode == 1
    assert problems(project) == [("unowned-startup-code", "error", "litellm_init.pth")]
    assert "runs code at every interpreter start and no installed package owns it" in (
        result.stdout
    )


def test_path_only_pth_is_a_warning(locked_venv, project, tmp_path) -> None:
    """Unowned, it is reported (issue 12); a folder without code keeps it a warning."""
    (tmp_path / "models").mkdir()
    (locked_venv.site / "models.pth").write_text(f"{tmp_path / 'models'}\n")
    result = gate(locked_venv, project)
    assert result.returncode == 0, result.stdout
    assert problems(project) == [("unowned-startup-code", "warning", "models.pth")]


@pytest.mark.parametrize("module", ["sitecustomize.py", "usercustomize/__init__.py"])
def test_path_only_pth_leading_site_to_a_startup_module_elsewhere(
    locked_venv, project, tmp_path, module
) -> None:
    """``site`` appends .pth path lines before it imports ``sitecustomize``: a path-only
    .pth can point it at any folder, where no file verification looks."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / module).parent.mkdir(parents=True)
    marker = tmp_path / "ran"
    (elsewhere / module).write_text(f"open({str(marker)!r}, 'w').close()\n")
    (locked_venv.site / "zzz_path.pth").write_text(f"{elsewhere}\n")
    result = gate(locked_venv, project)
    assert result.returncode == 1, result.stdout
    name = module.split("/")[0].removesuffix(".py")
    assert ("unowned-startup-code", "error", name) in problems(project)
    assert str(elsewhere) in result.stdout
    if name == "sitecustomize":
        assert marker.exists()  # it ran at interpreter start, before any check could


def test_unowned_sitecustomize(locked_venv, project) -> None:
    (locked_venv.site / "sitecustomize.py").write_text("import os\n")
    result = gate(locked_venv, project)
    assert result.returncode == 1
    assert problems(project) == [("unowned-startup-code", "error", "sitecustomize.py")]


def test_two_wheels_sharing_a_namespace_init(venv, project, tmp_path) -> None:
    folder = tmp_path / "ns"
    init = "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n"
    build_wheel(folder, "acme-vision", "1.0", {"acme/__init__.py": init, "acme/vision.py": "V=1\n"})
    build_wheel(folder, "acme-audio", "1.0", {"acme/__init__.py": init, "acme/audio.py": "A=1\n"})
    venv.install("acme-vision", "acme-audio", extra=("--find-links", str(folder)))
    lock(venv, project)
    result = gate(venv, project)
    assert result.returncode == 0, result.stdout
    assert problems(project) == []


def test_a_clean_venv_with_common_tools_has_no_errors(tmp_path, wheelhouse, project) -> None:
    """pip and setuptools from ensurepip, pytest, hypothesis, coverage: nothing is flagged."""
    root = tmp_path / "clean"
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    python = root / "bin" / "python"
    extra = tmp_path / "extra"
    tools = sorted({*runtime_closure("hypothesis"), *runtime_closure("coverage")})
    for name in tools:
        repack_installed(name, extra)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--find-links",
            str(wheelhouse),
            "--find-links",
            str(extra),
            *[w.name.split("-")[0] for w in wheelhouse.glob("*.whl")],
            *tools,
        ],
        check=True,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    run = subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            "--mlsupply-update-lock",
            "-p",
            "no:cacheprovider",
            "--mlsupply-report",
            "report.json",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert problems(project) == []
    notes = json.loads((project / "report.json").read_text())["notes"]
    assert any(n.startswith("verified ") and "installed files against RECORD" in n for n in notes)


def _launcher(venv) -> Path:
    return venv.root / ("Scripts/pytest-script.py" if sys.platform == "win32" else "bin/pytest")


def test_a_relocated_launcher_stays_a_warning(locked_venv, project) -> None:
    """Relocation tools rewrite a console script's shebang: its bytes differ from RECORD,
    but what it runs is still the declared entry point."""
    launcher = _launcher(locked_venv)
    shebang, _, body = launcher.read_text(encoding="utf-8").partition("\n")
    launcher.write_text(f"{shebang} \n{body}", encoding="utf-8")
    result = gate(locked_venv, project, "--mlsupply-strict")
    assert result.returncode == 1, result.stdout  # strict: a warning fails
    assert problems(project) == [("file-modified", "warning", "pytest")]
    assert result.stdout.count("outside the site directory") >= 1


def test_a_launcher_with_code_added_is_an_error(locked_venv, project, tmp_path) -> None:
    """``bin/pytest`` runs before any check: a changed one that is not a plain launcher
    of its entry point fails the gate, strict or not (the hardened check too)."""
    marker = tmp_path / "ran"
    launcher = _launcher(locked_venv)
    shebang, _, body = launcher.read_text(encoding="utf-8").partition("\n")
    payload = f"open({str(marker)!r}, 'w').close()\n"
    launcher.write_text(f"{shebang}\n{payload}{body}", encoding="utf-8")
    result = locked_venv.run(
        str(launcher), "--mlsupply", "--mlsupply-report", "report.json", cwd=project
    )
    assert result.returncode == 1, result.stdout
    assert marker.exists()  # it ran before the gate could say anything
    assert problems(project) == [("file-modified", "error", "pytest")]
    assert NOT_A_LAUNCHER in result.stdout
    checked = locked_venv.run("-m", "pytest_mlsupply", "check", cwd=project)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert NOT_A_LAUNCHER in checked.stdout
