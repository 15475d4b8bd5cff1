"""The project a lock describes: its names and the working tree it is installed from.

A lock written by uv or Poetry belongs to the ``pyproject.toml`` beside it, and
``uv sync`` / ``poetry install`` install that project from its working tree
(issue 12, item 2). Poetry never lists the project in poetry.lock; uv lists it
(and each workspace member) with an ``editable``, ``directory`` or ``virtual``
source. The name alone proves nothing (anyone can upload a distribution of
that name to an index), so a project is a name *and* a folder; the checks
accept only a local install of that folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name

from pytest_mlsupply.locks import FORMAT_UV
from pytest_mlsupply.locks.foreign import ForeignLock
from pytest_mlsupply.tomlfile import parse_toml

PYPROJECT = "pyproject.toml"
#: The keys of pyproject.toml that name the project, as dotted paths.
NAME_KEYS = (("project", "name"), ("tool", "poetry", "name"))

NOTE_PYPROJECT_UNREADABLE = (
    "{path}: {problem}; the project under test is not recognised by that file's name, so a "
    "distribution of that name is reported like any other"
)


@dataclass(frozen=True)
class Projects:
    """Project names (canonical) and the real path of the folder each one is installed from."""

    folders: Mapping[str, str]
    notes: tuple[str, ...] = ()


def project_names(text: str, source: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """The canonical names pyproject.toml *text* gives its project, and each problem found.

    ``[project].name`` (PEP 621) and ``[tool.poetry].name`` (Poetry before
    PEP 621); a value that is not a string is a located problem, never a name.
    """
    document, problem = parse_toml(text)
    if document is None:
        return frozenset(), (f"{source}: {problem}",)
    names: set[str] = set()
    problems: list[str] = []
    for keys in NAME_KEYS:
        value: Any = document
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is None:
            continue
        dotted = ".".join(keys)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{source}: {dotted}: must be a non-empty string, got {value!r}")
            continue
        names.add(canonicalize_name(value))
    return frozenset(names), tuple(problems)


def local_folder(location: str, base: str) -> str:
    """The real path a lock's local location names: relative to *base*, or a ``file:`` URL."""
    parts = urlsplit(location)
    if parts.scheme == "file":
        location = unquote(parts.path)
    return os.path.realpath(os.path.join(base, location))


def lock_folder(lock: ForeignLock) -> str:
    """The real path of the folder *lock* is in: its relative locations start there."""
    return os.path.realpath(os.path.dirname(os.path.abspath(lock.path)))


def projects_in(folder: str) -> Projects:
    """The project the ``pyproject.toml`` of *folder* names, installed from *folder*.

    A file that cannot be read or names nothing usable exempts nothing; a note says why.
    """
    base = os.path.realpath(folder)
    pyproject = Path(base) / PYPROJECT
    if not pyproject.is_file():
        return Projects({})
    source = str(pyproject)
    try:
        text = pyproject.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        names: frozenset[str] = frozenset()
        problems: tuple[str, ...] = (f"{source}: cannot be read ({exc})",)
    else:
        names, problems = project_names(text, source)
    notes = tuple(
        NOTE_PYPROJECT_UNREADABLE.format(path=source, problem=p.removeprefix(f"{source}: "))
        for p in problems
    )
    return Projects(dict.fromkeys(sorted(names), base), notes)


def projects_beside(lock: ForeignLock) -> Projects:
    """The projects *lock* describes: the pyproject.toml beside it, and uv's local roots."""
    base = lock_folder(lock)
    beside = projects_in(base)
    folders = dict(beside.folders)
    # uv lists the project and its workspace members as the graph's local roots; other
    # formats' roots are dependencies (Poetry's: the packages nothing depends on).
    for root in lock.roots or () if lock.format == FORMAT_UV else ():
        for index in root.targets:
            package = lock.packages[index]
            if package.source.is_local:
                folders.setdefault(package.name, local_folder(package.source.url or ".", base))
    return Projects(folders, beside.notes)
