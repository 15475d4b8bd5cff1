"""Locks written by the real uv and Poetry, read with the right selection; a real ``uv sync``.

Small projects are locked for real (``uv lock`` and ``poetry lock`` resolve against
the package index), with a ``six`` split by Python version, an extra, a default
and an optional/non-default group. The end-to-end test installs with ``uv sync``
into a throwaway venv and runs the gate: a clean install is clean, the split
version for the other Python is a ``version-changed`` error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_mlsupply.locks import Choice
from pytest_mlsupply.locks.foreign import current_environment, select
from pytest_mlsupply.locks.poetry import load_poetry_lock
from pytest_mlsupply.locks.uvlock import NEWEST_REVISION, load_uv_lock

from installer_tools import REQUIRE_ENV, installer

pytestmark = pytest.mark.slow

HERE_SIX, OTHER_SIX = ("1.17.0", "1.16.0") if sys.version_info >= (3, 11) else ("1.16.0", "1.17.0")
SPLIT = "\"six==1.16.0; python_version < '3.11'\", \"six==1.17.0; python_version >= '3.11'\""

UV_PROJECT = f"""\
[project]
name = "proj"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = [{SPLIT}, "idna"]

[project.optional-dependencies]
speed = ["attrs"]

[dependency-groups]
dev = ["pytest", "pluggy", "packaging>=25", "tomli-w", "tomli; python_version < '3.11'"]
docs = ["toml"]

[tool.uv]
package = false
"""

POETRY_PROJECT = f"""\
[project]
name = "proj"
version = "0.1.0"
requires-python = ">=3.10,<4"
dependencies = [{SPLIT}, "idna"]

[project.optional-dependencies]
speed = ["attrs"]

[tool.poetry]
package-mode = false

[tool.poetry.group.dev.dependencies]
iniconfig = "*"

[tool.poetry.group.docs]
optional = true

[tool.poetry.group.docs.dependencies]
packaging = "*"
"""

NETWORK_WORDS = ("connect", "network", "dns", "resolve host", "timed out", "offline")


def _tool(name: str) -> str:
    return installer(name)


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env = {k: v for k, v in env.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(
        list(args), cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=600
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).lower()
        if any(word in output for word in NETWORK_WORDS) and os.environ.get(REQUIRE_ENV) != "1":
            pytest.skip(f"{args[0]} could not reach the package index: {output[-300:]}")
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _uv_project(root: Path) -> Path:
    root.mkdir()
    (root / "pyproject.toml").write_text(UV_PROJECT)
    _run(_tool("uv"), "lock", "--python", sys.executable, cwd=root)
    return root


def test_uv_lock_written_by_uv_is_read_with_uvs_selection(tmp_path: Path) -> None:
    root = _uv_project(tmp_path / "proj")
    text = (root / "uv.lock").read_text()
    lock = load_uv_lock(root / "uv.lock")  # a current uv's revision reads without a note
    assert not any("revision" in note for note in lock.notes)
    revision = int(text.split("revision = ", 1)[1].split("\n", 1)[0])
    assert 1 <= revision <= NEWEST_REVISION
    env = current_environment()
    selection = select(lock, env)
    six = [p.version for p in selection.here if p.name == "six"]
    assert six == [HERE_SIX]
    assert sorted(p.version for p in lock.packages if p.name == "six") == ["1.16.0", "1.17.0"]
    assert selection.not_taken == {"attrs": "extra 'speed'", "toml": "group 'docs'"}
    assert "pytest" in {p.name for p in selection.required}  # dev is uv's default group
    taken = select(lock, env, extras=Choice(("speed",), origin="x"), groups=Choice(every=True))
    assert {"attrs", "toml"} <= {p.name for p in taken.required}


def test_poetry_lock_written_by_poetry_is_read_with_poetrys_selection(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text(POETRY_PROJECT)
    _run(_tool("poetry"), "lock", cwd=root)
    lock = load_poetry_lock(root / "poetry.lock")
    assert lock.default_groups == ("dev",)  # docs is optional in the pyproject
    selection = select(lock, current_environment())
    assert [p.version for p in selection.here if p.name == "six"] == [HERE_SIX]
    assert selection.not_taken == {"attrs": "extra 'speed'", "packaging": "group 'docs'"}
    assert "iniconfig" in {p.name for p in selection.required}


def _sync_and_install_plugin(root: Path, wheelhouse: Path) -> Path:
    uv = _tool("uv")
    _run(uv, "sync", "--python", sys.executable, cwd=root)
    python = root / ".venv" / "bin" / "python"
    [plugin] = sorted(wheelhouse.glob("pytest_mlsupply-*.whl"))
    # As a user adds a plugin their lock does not list: its own dependencies are the dev
    # group's (locked); the plugin itself is exempt from 'unexpected'.
    _run(uv, "pip", "install", "--python", str(python), "--no-deps", str(plugin), cwd=root)
    (root / "test_x.py").write_text("def test_x():\n    assert True\n")
    return python


def _gate(python: Path, root: Path, *args: str) -> tuple[int, list[dict[str, str]]]:
    result = subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            "--mlsupply",
            "--mlsupply-lock",
            "uv.lock",
            "--mlsupply-report",
            "report.json",
            "-p",
            "no:cacheprovider",
            *args,
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "VIRTUAL_ENV"))},
    )
    report = json.loads((root / "report.json").read_text())
    problems = [f for f in report["findings"] if f["severity"] != "info"]
    return result.returncode, problems


@pytest.fixture
def uv_on_path() -> str:
    """Skips before the (slower) wheelhouse is built when uv is not there."""
    return _tool("uv")


def test_uv_sync_then_the_gate(uv_on_path: str, tmp_path: Path, wheelhouse: Path) -> None:
    root = _uv_project(tmp_path / "proj")
    python = _sync_and_install_plugin(root, wheelhouse)
    code, problems = _gate(python, root, "--mlsupply-strict")
    assert (code, problems) == (0, [])
    # The six of the other Python's split: a change here, and the tests did not run.
    uv = _tool("uv")
    _run(uv, "pip", "install", "--python", str(python), f"six=={OTHER_SIX}", cwd=root)
    (root / "test_x.py").write_text(
        "from pathlib import Path\n\ndef test_x():\n    Path('ran').write_text('1')\n"
    )
    code, problems = _gate(python, root)
    assert code != 0
    assert [(f["kind"], f["subject"], f["expected"], f["actual"]) for f in problems] == [
        ("version-changed", "six", HERE_SIX, OTHER_SIX)
    ]
    assert not (root / "ran").exists()
    # An extra the sync did not take: not a version change; named, and taken on request.
    _run(uv, "pip", "install", "--python", str(python), f"six=={HERE_SIX}", cwd=root)
    _run(uv, "sync", "--python", sys.executable, "--extra", "speed", cwd=root)
    _run(
        uv,
        "pip",
        "install",
        "--python",
        str(python),
        "--no-deps",
        str(sorted(wheelhouse.glob("pytest_mlsupply-*.whl"))[0]),
        cwd=root,
    )
    code, problems = _gate(python, root)
    assert [(f["kind"], f["subject"]) for f in problems] == [("unexpected", "attrs")]
    assert "only for extra 'speed'" in problems[0]["message"]
    code, problems = _gate(python, root, "--mlsupply-lock-extras", "speed", "--mlsupply-strict")
    assert (code, problems) == (0, [])


CONFLICTS_PROJECT = """\
[project]
name = "proj"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = ["member", "idna"]

[project.optional-dependencies]
old = ["six==1.16.0"]
new = ["six==1.17.0"]

[dependency-groups]
dev = ["attrs", {include-group = "lint"}]
lint = ["iniconfig"]

[tool.uv]
conflicts = [[{extra = "old"}, {extra = "new"}]]
package = false

[tool.uv.sources]
member = { workspace = true }

[tool.uv.workspace]
members = ["member"]
"""

MEMBER_PROJECT = """\
[project]
name = "member"
version = "0.3.0"
dependencies = ["toml"]

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
"""


def test_uv_conflicting_extras_and_a_workspace_written_by_uv(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "member" / "src" / "member").mkdir(parents=True)
    (root / "member" / "src" / "member" / "__init__.py").write_text("")
    (root / "member" / "pyproject.toml").write_text(MEMBER_PROJECT)
    (root / "pyproject.toml").write_text(CONFLICTS_PROJECT)
    _run(_tool("uv"), "lock", "--python", sys.executable, cwd=root)
    lock = load_uv_lock(root / "uv.lock")
    env = current_environment()

    def six(*extras: str) -> list[str | None]:
        chosen = Choice(extras, origin="x") if extras else None
        return [p.version for p in select(lock, env, extras=chosen).here if p.name == "six"]

    assert six() == []
    assert six("old") == ["1.16.0"]
    assert six("new") == ["1.17.0"]
    selection = select(lock, env)
    assert selection.not_taken == {"six": "extra 'new' or extra 'old'"}
    # The dev group includes lint; the member's own dependency is reached through it.
    assert {"attrs", "iniconfig", "member", "toml"} <= {p.name for p in selection.required}
