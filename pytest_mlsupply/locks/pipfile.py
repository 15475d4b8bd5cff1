"""``Pipfile.lock`` (pipenv, ``pipfile-spec`` 6): JSON with ``default`` and ``develop`` sections.

Both sections are expected: a test run installs the develop packages
(``pipenv install --dev``). Names are normalised (``ruamel.yaml`` is
``ruamel-yaml``); ``version`` is a ``==`` pin; ``markers`` decide where an entry applies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from pytest_mlsupply.errors import LockfileError
from pytest_mlsupply.limits import (
    MAX_NESTING_DEPTH,
    NESTED_TOO_DEEPLY,
    json_too_deep,
    number_too_long,
    version_problem,
)
from pytest_mlsupply.locks import FORMAT_PIPFILE
from pytest_mlsupply.locks.foreign import (
    ForeignLock,
    LockedArtifact,
    LockedPackage,
    Problems,
    archive_source,
    filename_of,
    parse_digest,
    parse_marker,
    parse_specifier,
    read_lock_text,
)
from pytest_mlsupply.sources import DIRECTORY, EDITABLE, INDEX, VCS, Source

SECTIONS = ("default", "develop")
DEVELOP_GROUP = "develop"
PIPFILE_DEFAULT_GROUPS_FROM = "a test setup's `pipenv install --dev`"
_KNOWN_VCS = ("git", "hg", "svn", "bzr")


def load_pipfile_lock(path: Path) -> ForeignLock:
    return parse_pipfile_lock(read_lock_text(path, "Pipfile.lock"), str(path))


def parse_pipfile_lock(text: str, source: str) -> ForeignLock:
    if json_too_deep(text):  # json.loads recurses once per level
        raise LockfileError(source, [NESTED_TOO_DEEPLY.format(limit=MAX_NESTING_DEPTH)])
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LockfileError(
            source, [f"line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}"]
        ) from exc
    except ValueError as exc:  # int() of a number past Python's 4,300-digit limit
        line, problem = number_too_long(text)
        where = f"line {line}: " if line else ""
        raise LockfileError(source, [f"{where}not valid JSON: {problem}"]) from exc
    if not isinstance(document, Mapping):
        raise LockfileError(source, ["the top level must be a JSON object"])
    problems = Problems(source)
    meta = document.get("_meta", {})
    if not isinstance(meta, Mapping):
        problems.add("_meta", "must be an object")
        meta = {}
    requires = meta.get("requires", {})
    requires_python = None
    if isinstance(requires, Mapping):
        full = requires.get("python_full_version")
        short = requires.get("python_version")
        if isinstance(full, str):
            requires_python = parse_specifier(
                f"=={full}", "_meta.requires.python_full_version", problems
            )
        elif isinstance(short, str):
            requires_python = parse_specifier(
                f"=={short}.*", "_meta.requires.python_version", problems
            )
    if not any(section in document for section in SECTIONS):
        problems.add("", "has neither a default nor a develop section; not a Pipfile.lock")
    packages: list[LockedPackage] = []
    for section in SECTIONS:
        entries = document.get(section, {})
        if not isinstance(entries, Mapping):
            problems.add(section, "must be an object of package entries")
            continue
        for raw_name, entry in entries.items():
            where = f"{section}.{raw_name}"
            package = _package(str(raw_name), entry, where, section, problems)
            if package is not None:
                packages.append(package)
    problems.raise_if_any()
    notes = []
    if requires_python is not None:
        notes.append(
            f"Pipfile.lock was written for Python {requires_python}; its pins are compared "
            "on any Python"
        )
    # pipenv records the Python the lock was made with, not a requirement: a
    # lock made on 3.10 is routinely installed on 3.11, so it does not make the
    # lock "not applicable" (unlike requires-python in pylock.toml and uv.lock).
    return ForeignLock(
        path=source,
        format=FORMAT_PIPFILE,
        packages=tuple(packages),
        notes=tuple(notes),
        default_groups=(DEVELOP_GROUP,),
        default_groups_from=PIPFILE_DEFAULT_GROUPS_FROM,
        group_names=(DEVELOP_GROUP,),
    )


def _package(
    raw_name: str, entry: Any, where: str, section: str, problems: Problems
) -> LockedPackage | None:
    if not isinstance(entry, Mapping):
        problems.add(where, f"must be an object, got {entry!r}")
        return None
    name = canonicalize_name(raw_name)
    hashes = []
    raw_hashes = entry.get("hashes", [])
    if not isinstance(raw_hashes, list):
        problems.add(f"{where}.hashes", "must be a list of 'alg:hex' strings")
        raw_hashes = []
    for i, text in enumerate(raw_hashes):
        digest = parse_digest(text, f"{where}.hashes[{i}]", problems)
        if digest is not None:
            hashes.append(digest)
    marker = parse_marker(entry.get("markers"), f"{where}.markers", problems)
    version: str | None = None
    source = Source(INDEX)
    vcs = next((v for v in _KNOWN_VCS if isinstance(entry.get(v), str)), None)
    if vcs is not None:
        ref = entry.get("ref")
        source = Source(
            VCS, url=entry[vcs], vcs=vcs, commit=ref.lower() if isinstance(ref, str) else None
        )
    elif isinstance(entry.get("path"), str):
        source = Source(EDITABLE if entry.get("editable") is True else DIRECTORY)
    elif isinstance(entry.get("file"), str):
        source = archive_source(entry["file"], hashes)
    else:
        pin = entry.get("version")
        if not isinstance(pin, str) or not pin.startswith("=="):
            problems.add(f"{where}.version", f"expected '==VERSION', got {pin!r}")
            return None
        version = pin[3:].strip() if pin.startswith("===") else pin[2:].strip()
        if too_long := version_problem(version):
            problems.add(f"{where}.version", too_long)
            return None
        arbitrary = pin.startswith("===")
        return LockedPackage(
            name,
            version,
            source,
            (LockedArtifact(f"{name}=={version}", tuple(hashes)),) if hashes else (),
            marker=marker,
            arbitrary=arbitrary,
            group=section,
            groups=(DEVELOP_GROUP,) if section == DEVELOP_GROUP else (),
            development=section == "develop",
            where=where,
        )
    artifacts = (
        (LockedArtifact(filename_of(source.url, name), tuple(hashes), url=source.url),)
        if hashes
        else ()
    )
    return LockedPackage(
        name,
        version,
        source,
        artifacts,
        marker=marker,
        group=section,
        groups=(DEVELOP_GROUP,) if section == DEVELOP_GROUP else (),
        development=section == "develop",
        where=where,
    )
