"""Hints that fit the installer: which tool manages an environment, and the commands it words."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_mlsupply.checks import check_environment
from pytest_mlsupply.installers import (
    HINT_OTHER_TOOL,
    MANAGERS,
    PDM,
    PIP,
    POETRY,
    UV,
    Commands,
    choose,
)
from pytest_mlsupply.locks import FORMAT_POETRY, FORMAT_PYLOCK, FORMAT_REQUIREMENTS, FORMAT_UV
from pytest_mlsupply.locks.mlsupply_lock import refresh_lock

from test_lockfile import D1, D2, LINUX, installed, snapshot


@pytest.mark.parametrize(
    ("installers", "has_pip", "lock_format", "expected"),
    [
        (["pip", "pip"], True, None, Commands(PIP, True)),
        (["uv\n", "uv", "pip"], False, None, Commands(UV, False)),
        (["Poetry", "poetry", "pip"], True, None, Commands(POETRY, True)),
        (["pdm", "pdm"], False, FORMAT_PYLOCK, Commands(PDM, False, lock_is_managers=True)),
        (["pdm", "pdm"], False, FORMAT_REQUIREMENTS, Commands(PDM, False)),
        # The lock's tool wins: a uv.lock project is restored with `uv sync`.
        (["pip", "pip"], True, FORMAT_UV, Commands(UV, True, lock_is_managers=True)),
        (["uv"], False, FORMAT_POETRY, Commands(POETRY, False, lock_is_managers=True)),
        # Unknown installers (conda, none at all) are not ours to word: pip's wording.
        (["conda", None, ""], True, None, Commands(PIP, True)),
        ([], False, None, Commands(PIP, False)),
        # A tie goes to the first of MANAGERS.
        (["pip", "uv"], True, None, Commands(UV, True)),
    ],
)
def test_the_tool_is_told_by_the_lock_then_by_installer_files(
    installers: list[str | None], has_pip: bool, lock_format: str | None, expected: Commands
) -> None:
    assert choose(installers, has_pip=has_pip, lock_format=lock_format) == expected


@pytest.mark.parametrize(
    ("commands", "install", "uninstall", "reinstall", "project"),
    [
        (
            Commands(PIP, True),
            "`pip install 'six==1.17.0'`",
            "`pip uninstall six`",
            "`pip install --force-reinstall --no-deps 'six==1.17.0'`",
            "`pip install -e .` in the project's folder",
        ),
        (
            Commands(UV, False),
            "`uv pip install 'six==1.17.0'`",
            "`uv pip uninstall six`",
            "`uv pip install --reinstall --no-deps 'six==1.17.0'`",
            "`uv sync` in the project's folder",
        ),
        (
            Commands(UV, False, lock_is_managers=True),
            "`uv sync`",
            "`uv sync` (it removes what the lock does not list)",
            "`uv pip install --reinstall --no-deps 'six==1.17.0'`",
            "`uv sync` in the project's folder",
        ),
        (
            Commands(POETRY, True, lock_is_managers=True),
            "`poetry sync`",
            "`poetry sync` (it removes what the lock does not list)",
            "`pip install --force-reinstall --no-deps 'six==1.17.0'`",
            "`poetry install` in the project's folder",
        ),
        (
            Commands(PDM, False, lock_is_managers=True),
            "`pdm sync --clean`",
            "`pdm sync --clean` (it removes what the lock does not list)",
            "`pdm sync --reinstall`",
            "`pdm install` in the project's folder",
        ),
        (
            Commands(POETRY, False),
            HINT_OTHER_TOOL.format(action="install 'six==1.17.0'", manager=POETRY),
            HINT_OTHER_TOOL.format(action="uninstall six", manager=POETRY),
            HINT_OTHER_TOOL.format(action="reinstall 'six==1.17.0'", manager=POETRY),
            "`poetry install` in the project's folder",
        ),
    ],
)
def test_each_tool_gets_its_own_commands(
    commands: Commands, install: str, uninstall: str, reinstall: str, project: str
) -> None:
    assert commands.install("six", "1.17.0") == install
    assert commands.uninstall("six") == uninstall
    assert commands.reinstall("six", "1.17.0") == reinstall
    assert commands.install_project() == project


@given(
    manager=st.sampled_from(MANAGERS),
    lock_is_managers=st.booleans(),
    name=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    version=st.one_of(st.none(), st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}", fullmatch=True)),
)
def test_no_hint_names_pip_where_there_is_no_pip(
    manager: str, lock_is_managers: bool, name: str, version: str | None
) -> None:
    commands = Commands(manager, has_pip=False, lock_is_managers=lock_is_managers)
    hints = [
        commands.install(name, version),
        commands.uninstall(name),
        commands.reinstall(name, version or "1.0"),
        commands.install_project(),
        commands.add_to_lock(name),
    ]
    for hint in hints:
        # pip's wording only as `pip --python ...`: the pip outside that built the venv.
        assert "`pip install" not in hint and "`pip uninstall" not in hint, hint
        if manager != PIP:
            assert "pip --python" not in hint, hint


def test_own_lock_hints_in_a_uv_venv_without_pip_use_uv() -> None:
    """mlsupply.lock checks (checks.py) word every hint for the environment's installer."""
    locked = refresh_lock(
        None,
        snapshot(
            LINUX,
            replace(installed("numpy", "2.1.0", D1), installer="uv"),
            replace(installed("scipy", "1.14.0", D1), installer="uv"),
            replace(installed("torch", "2.9.1", D1), installer="uv"),
        ),
    )
    now = snapshot(
        LINUX,
        replace(installed("numpy", "2.1.0", D2), installer="uv"),  # rebuilt
        replace(installed("torch", "2.9.0", D1), installer="uv"),  # downgraded
        replace(installed("rich", "14.0.0", D1), installer="uv"),  # not locked
    )
    hints = {f.subject: f.hint or "" for f in check_environment(now, locked).findings}
    assert "`uv pip install --reinstall --no-deps 'numpy==2.1.0'`" in hints["numpy"]
    assert hints["torch"].startswith("`uv pip install 'torch==2.9.1'` to restore")
    assert hints["scipy"].startswith("`uv pip install 'scipy==1.14.0'`")
    assert hints["rich"].startswith("`uv pip uninstall rich`")
    assert not any("`pip " in hint for hint in hints.values())


def test_own_lock_hints_where_pip_installed_everything_stay_pip() -> None:
    env = snapshot(LINUX, installed("pip", "25.2", D1), installed("numpy", "2.1.0", D1))
    locked = refresh_lock(None, env)
    now = snapshot(LINUX, installed("pip", "25.2", D1), installed("numpy", "2.0.0", D1))
    (finding,) = check_environment(now, locked).findings
    assert finding.hint and finding.hint.startswith("`pip install 'numpy==2.1.0'`")


def test_a_changed_source_is_restored_by_the_locks_own_tool() -> None:
    assert Commands(UV, False, lock_is_managers=True).restore_source("six") == (
        "`uv sync --reinstall-package six`"
    )
    assert Commands(PIP, True).restore_source("six") == "reinstall six from the locked source"
