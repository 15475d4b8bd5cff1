"""The project under test beside a foreign lock: recognised by name *and* working tree.

Fake ``*.dist-info`` trees read through the real ``importlib.metadata``; each
red-team attempt (a same-named distribution from an index or an archive, an
editable install of another folder, a name spelt differently) is one test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_foreign_locks import LINUX

from pytest_mlsupply.checks import check_environment
from pytest_mlsupply.findings import Finding, Kind, Severity
from pytest_mlsupply.foreign_checks import (
    HINT_MISSING_PROJECT,
    HINT_PROJECT,
    LOCAL_ELSEWHERE,
    PROJECT_IMPOSTOR,
    PROJECT_NOT_INSTALLED,
    PROJECT_UNDER_TEST,
    check_foreign_lock,
)
from pytest_mlsupply.installers import Commands
from pytest_mlsupply.locks.foreign import FORMAT_POETRY, detect_format, load_foreign_lock
from pytest_mlsupply.locks.mlsupply_lock import refresh_lock
from pytest_mlsupply.locks.project import (
    NOTE_PYPROJECT_UNREADABLE,
    local_folder,
    project_names,
    projects_beside,
    projects_in,
)
from pytest_mlsupply.snapshot import take_snapshot

from wheelfactory import install_fake

POETRY_PYPROJECT = """\
[tool.poetry]
name = "Poetry_Demo"
version = "0.1.0"

[tool.poetry.dependencies]
python = ">=3.10"
six = "*"
"""
POETRY_LOCK = """\
[[package]]
name = "six"
version = "1.17.0"
description = ""
optional = false
python-versions = "*"
groups = ["main"]
files = []

[metadata]
lock-version = "2.1"
python-versions = ">=3.10"
content-hash = "0"
"""
UV_PYPROJECT = """\
[project]
name = "uv-demo"
version = "0.1.0"
dependencies = ["six", "uv-lib"]

[tool.uv.workspace]
members = ["packages/*"]
"""
UV_LOCK = """\
version = 1
revision = 3
requires-python = ">=3.10"

[manifest]
members = ["uv-demo", "uv-lib"]

[[package]]
name = "six"
version = "1.17.0"
source = { registry = "https://index.example.invalid/simple" }

[[package]]
name = "uv-demo"
version = "0.1.0"
source = { editable = "." }
dependencies = [{ name = "six" }, { name = "uv-lib" }]

[[package]]
name = "uv-lib"
version = "0.2.0"
source = { editable = "packages/uv-lib" }
"""


def _editable(folder: Path, editable: bool = True) -> str:
    return json.dumps({"url": folder.as_uri(), "dir_info": {"editable": editable}})


def _project(tmp_path: Path, kind: str) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    if kind == "poetry":
        (root / "pyproject.toml").write_text(POETRY_PYPROJECT)
        (root / "poetry.lock").write_text(POETRY_LOCK)
    else:
        (root / "pyproject.toml").write_text(UV_PYPROJECT)
        (root / "uv.lock").write_text(UV_LOCK)
        (root / "packages" / "uv-lib").mkdir(parents=True)
    return root


def _check(root: Path, site: Path, lock_name: str):
    lock = load_foreign_lock(root / lock_name, detect_format(root / lock_name))
    return check_foreign_lock(take_snapshot([str(site)]), lock, environment=LINUX)


def _problems(report):
    return [f for f in report.findings if f.severity is not Severity.INFO]


def test_poetry_project_installed_editable_is_the_project_under_test(tmp_path: Path) -> None:
    root = _project(tmp_path, "poetry")
    site = tmp_path / "site"
    install_fake(site, "six", "1.17.0", installer="poetry")
    install_fake(site, "poetry-demo", "0.1.0", installer="poetry", direct_url=_editable(root))
    report = _check(root, site, "poetry.lock")
    assert _problems(report) == []
    (finding,) = report.findings
    assert finding.kind is Kind.NOT_VERIFIABLE and finding.severity is Severity.INFO
    assert finding.message == PROJECT_UNDER_TEST.format(
        name="poetry-demo",
        version="0.1.0",
        kind="editable",
        folder=os.path.realpath(root),
        title="poetry.lock",
    )


def test_a_non_editable_install_of_the_working_tree_is_the_project_too(tmp_path: Path) -> None:
    """``uv sync --no-editable``: a directory install of the project's folder (PEP 610
    ``dir_info`` without ``editable``); its files are still verified against RECORD."""
    root = _project(tmp_path, "uv")
    site = tmp_path / "site"
    install_fake(site, "six", "1.17.0", installer="uv")
    install_fake(site, "uv-demo", "0.1.0", installer="uv", direct_url=_editable(root, False))
    lib = root / "packages" / "uv-lib"
    install_fake(site, "uv-lib", "0.2.0", installer="uv", direct_url=_editable(lib, False))
    report = _check(root, site, "uv.lock")
    assert _problems(report) == []
    messages = {f.subject: f.message for f in report.findings}
    assert "is the project under test" in messages["uv-demo"]
    assert "directory install of" in messages["uv-demo"]


@pytest.mark.parametrize(
    ("spelling", "direct_url"),
    [
        ("poetry-demo", None),  # from an index: dependency confusion
        ("Poetry.Demo", None),  # a spelling that normalises to the project's name
        ("poetry_demo", "archive"),  # a wheel file that merely carries the name
        ("poetry-demo", "elsewhere"),  # an editable install of another folder
    ],
)
def test_a_same_named_distribution_not_from_the_working_tree_is_an_error(
    tmp_path: Path, spelling: str, direct_url: str | None
) -> None:
    root = _project(tmp_path, "poetry")
    site = tmp_path / "site"
    install_fake(site, "six", "1.17.0", installer="poetry")
    other = tmp_path / "elsewhere"
    other.mkdir()
    urls = {
        None: None,
        "archive": json.dumps(
            {
                "url": "https://files.example.invalid/poetry_demo-0.1.0-py3-none-any.whl",
                "archive_info": {"hashes": {"sha256": "0" * 64}},
            }
        ),
        "elsewhere": _editable(other),
    }
    install_fake(site, spelling, "0.1.0", installer="pip", direct_url=urls[direct_url])
    report = _check(root, site, "poetry.lock")
    (finding,) = _problems(report)
    assert finding.kind is Kind.SOURCE_CHANGED and finding.severity is Severity.ERROR
    assert finding.subject == "poetry-demo"
    assert finding.message.startswith("poetry-demo 0.1.0 has the name of the project under test")
    assert finding.hint == HINT_PROJECT.format(
        install=Commands("poetry", False, lock_is_managers=True).install_project()
    )
    assert "pip install" not in (finding.hint or "")
    assert PROJECT_IMPOSTOR.split("{")[0] == ""  # the message starts with the name


def test_a_symlinked_project_folder_is_the_same_working_tree(tmp_path: Path) -> None:
    root = _project(tmp_path, "poetry")
    link = tmp_path / "link"
    link.symlink_to(root, target_is_directory=True)
    site = tmp_path / "site"
    install_fake(site, "six", "1.17.0")
    install_fake(site, "poetry-demo", "0.1.0", direct_url=_editable(link))
    assert _problems(_check(link, site, "poetry.lock")) == []
    assert _problems(_check(root, site, "poetry.lock")) == []


def test_uv_root_and_members_must_come_from_their_own_folders(tmp_path: Path) -> None:
    root = _project(tmp_path, "uv")
    site = tmp_path / "site"
    install_fake(site, "six", "1.17.0", installer="uv")
    install_fake(site, "uv-demo", "0.1.0", installer="uv", direct_url=_editable(root))
    # The workspace member installed from the root's folder, not from packages/uv-lib.
    install_fake(site, "uv-lib", "0.2.0", installer="uv", direct_url=_editable(root))
    report = _check(root, site, "uv.lock")
    (finding,) = _problems(report)
    assert (finding.kind, finding.subject) == (Kind.SOURCE_CHANGED, "uv-lib")
    assert str(os.path.realpath(root / "packages" / "uv-lib")) in finding.message


def test_uv_project_from_an_index_is_an_impostor_with_a_uv_hint(tmp_path: Path) -> None:
    root = _project(tmp_path, "uv")
    site = tmp_path / "site"
    install_fake(site, "six", "1.17.0", installer="uv")
    install_fake(site, "uv-demo", "0.1.0", installer="uv")  # no direct_url.json: an index
    lib = root / "packages" / "uv-lib"
    install_fake(site, "uv-lib", "0.2.0", installer="uv", direct_url=_editable(lib))
    (finding,) = _problems(_check(root, site, "uv.lock"))
    assert (finding.kind, finding.subject) == (Kind.SOURCE_CHANGED, "uv-demo")
    assert finding.hint and "`uv sync` in the project's folder" in finding.hint


def test_a_missing_project_is_an_error_installed_from_its_tree(tmp_path: Path) -> None:
    """``uv sync --no-install-project``: still an error (the import name is free for any
    folder on the path); the hint never says ``pip install 'uv-demo=='``."""
    root = _project(tmp_path, "uv")
    site = tmp_path / "site"
    install_fake(site, "six", "1.17.0", installer="uv")
    lib = root / "packages" / "uv-lib"
    install_fake(site, "uv-lib", "0.2.0", installer="uv", direct_url=_editable(lib))
    (finding,) = _problems(_check(root, site, "uv.lock"))
    assert (finding.kind, finding.severity, finding.subject) == (
        Kind.MISSING,
        Severity.ERROR,
        "uv-demo",
    )
    assert finding.message == PROJECT_NOT_INSTALLED.format(
        name="uv-demo", folder=os.path.realpath(root)
    )
    assert finding.hint == HINT_MISSING_PROJECT.format(install="`uv sync` in the project's folder")


def test_uv_hints_in_a_uv_venv(tmp_path: Path) -> None:
    root = _project(tmp_path, "uv")
    site = tmp_path / "site"
    install_fake(site, "six", "1.16.0", installer="uv")  # drifted
    install_fake(site, "uv-demo", "0.1.0", installer="uv", direct_url=_editable(root))
    lib = root / "packages" / "uv-lib"
    install_fake(site, "uv-lib", "0.2.0", installer="uv", direct_url=_editable(lib))
    install_fake(site, "rich", "14.0.0", installer="uv")  # not locked
    hints = {f.subject: f.hint for f in _problems(_check(root, site, "uv.lock"))}
    assert hints == {
        "six": "`uv sync` to restore, or update the lock",
        "rich": "`uv sync` (it removes what the lock does not list), or `uv add rich`",
    }


def test_an_unreadable_pyproject_exempts_nothing_and_says_so(tmp_path: Path) -> None:
    root = _project(tmp_path, "poetry")
    (root / "pyproject.toml").write_text('[tool.poetry]\nname = "poetry-demo\n')
    site = tmp_path / "site"
    install_fake(site, "six", "1.17.0")
    install_fake(site, "poetry-demo", "0.1.0", direct_url=_editable(root))
    report = _check(root, site, "poetry.lock")
    (finding,) = _problems(report)
    assert (finding.kind, finding.subject) == (Kind.UNEXPECTED, "poetry-demo")
    path = str(root / "pyproject.toml")
    assert any(note.startswith(f"{path}: line 2, column") for note in report.notes)
    assert NOTE_PYPROJECT_UNREADABLE.split("{problem}")[1] in "".join(report.notes)


@pytest.mark.parametrize(
    ("text", "names", "problems"),
    [
        ('[project]\nname = "My.Project"\n', {"my-project"}, ()),
        ('[tool.poetry]\nname = "a_b"\n[project]\nname = "a-b"\n', {"a-b"}, ()),
        ("[project]\nname = 3\n", set(), ("f: project.name: must be a non-empty string, got 3",)),
        ('[tool]\npoetry = "x"\n', set(), ()),
        ('[project]\nname = ""\n', set(), ("f: project.name: must be a non-empty string, got ''",)),
    ],
)
def test_project_names_from_pyproject(
    text: str, names: set[str], problems: tuple[str, ...]
) -> None:
    assert project_names(text, "f") == (frozenset(names), problems)


@given(st.text(max_size=200))
def test_any_pyproject_text_gives_names_or_located_problems(text: str) -> None:
    names, problems = project_names(text, "pyproject.toml")
    assert all(isinstance(name, str) and name for name in names)
    assert all(problem.startswith("pyproject.toml: ") for problem in problems)


def test_local_folder_reads_relative_paths_and_file_urls(tmp_path: Path) -> None:
    base = str(tmp_path)
    assert local_folder(".", base) == os.path.realpath(tmp_path)
    assert local_folder("packages/a", base) == os.path.realpath(tmp_path / "packages" / "a")
    assert local_folder((tmp_path / "x y").as_uri(), "/") == os.path.realpath(tmp_path / "x y")


def test_poetry_roots_are_dependencies_not_projects(tmp_path: Path) -> None:
    root = _project(tmp_path, "poetry")
    projects = projects_beside(load_foreign_lock(root / "poetry.lock", FORMAT_POETRY))
    assert dict(projects.folders) == {"poetry-demo": os.path.realpath(root)}


def test_a_uv_path_dependency_must_come_from_the_folder_the_lock_names(tmp_path: Path) -> None:
    root = _project(tmp_path, "uv")
    (root / "uv.lock").write_text(
        UV_LOCK.replace('{ name = "uv-lib" }]', '{ name = "uv-lib" }, { name = "vendored" }]')
        + '\n[[package]]\nname = "vendored"\nversion = "1.0"\n'
        'source = { directory = "vendor/vendored" }\n'
    )
    site = tmp_path / "site"
    install_fake(site, "six", "1.17.0", installer="uv")
    install_fake(site, "uv-demo", "0.1.0", installer="uv", direct_url=_editable(root))
    lib = root / "packages" / "uv-lib"
    install_fake(site, "uv-lib", "0.2.0", installer="uv", direct_url=_editable(lib))
    other = tmp_path / "elsewhere"
    other.mkdir()
    install_fake(site, "vendored", "1.0", installer="uv", direct_url=_editable(other, False))
    (finding,) = _problems(_check(root, site, "uv.lock"))
    assert (finding.kind, finding.subject) == (Kind.SOURCE_CHANGED, "vendored")
    assert (
        LOCAL_ELSEWHERE.format(
            kind="directory",
            locked=os.path.realpath(root / "vendor" / "vendored"),
            installed=f"directory {other.as_uri()}",
        )
        in finding.message
    )
    # From the folder the lock names, it passes.
    vendored = root / "vendor" / "vendored"
    vendored.mkdir(parents=True)
    for dist_info in site.glob("vendored-*.dist-info"):
        (dist_info / "direct_url.json").write_text(_editable(vendored, False))
    assert _problems(_check(root, site, "uv.lock")) == []


def test_a_lock_that_names_an_index_for_the_project_is_compared_as_it_says(
    tmp_path: Path,
) -> None:
    """A built wheel of the project under test (tox-style), pinned in the lock: no impostor."""
    root = _project(tmp_path, "poetry")
    (root / "requirements.txt").write_text("poetry-demo==0.1.0\nsix==1.17.0\n")
    site = tmp_path / "site"
    install_fake(site, "six", "1.17.0")
    install_fake(site, "poetry-demo", "0.1.0")
    assert _check(root, site, "requirements.txt").findings == ()


def _own_lock_report(root: Path, site: Path, locked_from: str) -> list[Finding]:
    """mlsupply.lock made from an environment holding the project from *locked_from*."""
    lock_site = root.parent / "lock-site"
    urls = {"tree": _editable(root), "index": None}
    install_fake(lock_site, "poetry-demo", "0.1.0", direct_url=urls[locked_from])
    own = refresh_lock(None, take_snapshot([str(lock_site)]))
    report = check_environment(
        take_snapshot([str(site)]),
        own,
        lock_path="mlsupply.lock",
        projects=projects_in(str(root)),
    )
    return [f for f in report.findings if f.kind is not Kind.INTERPRETER_CHANGED]


def test_own_lock_project_from_its_tree_passes_and_from_elsewhere_fails(tmp_path: Path) -> None:
    root = _project(tmp_path, "poetry")
    site = tmp_path / "site"
    install_fake(site, "poetry-demo", "0.1.0", direct_url=_editable(root))
    (finding,) = _own_lock_report(root, site, "tree")
    assert finding.severity is Severity.INFO
    assert "is the project under test" in finding.message
    other = tmp_path / "elsewhere"
    other.mkdir()
    for dist_info in site.glob("poetry_demo-*.dist-info"):
        (dist_info / "direct_url.json").write_text(_editable(other))
    (finding,) = _own_lock_report(root, site, "tree")
    assert (finding.kind, finding.severity) == (Kind.SOURCE_CHANGED, Severity.ERROR)
    assert finding.message.startswith("poetry-demo 0.1.0 has the name of the project under test")


def test_own_lock_that_locked_the_project_from_an_index_compares_as_usual(
    tmp_path: Path,
) -> None:
    root = _project(tmp_path, "poetry")
    site = tmp_path / "site"
    install_fake(site, "poetry-demo", "0.1.0")
    assert _own_lock_report(root, site, "index") == []


def test_a_virtual_uv_root_is_never_missing_and_its_name_is_still_guarded(
    tmp_path: Path,
) -> None:
    """``[tool.uv] package = false``: uv installs nothing of the project; a release of its
    name from an index is still an impostor."""
    root = _project(tmp_path, "uv")
    (root / "uv.lock").write_text(UV_LOCK.replace('{ editable = "." }', '{ virtual = "." }'))
    site = tmp_path / "site"
    install_fake(site, "six", "1.17.0", installer="uv")
    lib = root / "packages" / "uv-lib"
    install_fake(site, "uv-lib", "0.2.0", installer="uv", direct_url=_editable(lib))
    assert _problems(_check(root, site, "uv.lock")) == []
    install_fake(site, "uv-demo", "0.1.0", installer="uv")
    (finding,) = _problems(_check(root, site, "uv.lock"))
    assert (finding.kind, finding.subject) == (Kind.SOURCE_CHANGED, "uv-demo")
