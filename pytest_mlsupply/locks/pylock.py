"""``pylock.toml`` (PEP 751), read through ``packaging.pylock``.

packaging validates the document against the specification; its errors carry a
dotted context (``packages[3].wheels[0].hashes``) which we keep, prefixed with
the file, so the user knows which key to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_mlsupply.errors import LockfileError
from pytest_mlsupply.hashing import Digest
from pytest_mlsupply.locks import FORMAT_PYLOCK
from pytest_mlsupply.locks.foreign import (
    MARKER_CONTEXT_LOCK_FILE,
    ForeignLock,
    LockedArtifact,
    LockedPackage,
    Problems,
    archive_source,
    filename_of,
    parse_digest,
    parse_upload_time,
    read_lock_text,
    toml_document,
)
from pytest_mlsupply.sources import DIRECTORY, EDITABLE, INDEX, VCS, Source

PYLOCK_NEEDS_PACKAGING = (
    "reading pylock.toml needs a packaging release with packaging.pylock; "
    "upgrade it with `pip install -U packaging`"
)


PYLOCK_DEFAULT_GROUPS_FROM = "the lock's default-groups"


def load_pylock(path: Path) -> ForeignLock:
    text = read_lock_text(path, "pylock.toml")
    return parse_pylock(text, str(path))


def parse_pylock(text: str, source: str) -> ForeignLock:
    """Parse PEP 751 text; raise one LockfileError naming the dotted key of the problem."""
    try:
        from packaging.pylock import Pylock, PylockValidationError
    except ImportError:  # pragma: no cover - depends on the installed packaging
        raise LockfileError(source, [PYLOCK_NEEDS_PACKAGING]) from None
    document = toml_document(text, source)
    try:
        pylock = Pylock.from_dict(document)
    except PylockValidationError as exc:
        where = f"{exc.context}: " if exc.context else ""
        message = exc.message.strip().splitlines()[0] if exc.message.strip() else "invalid"
        raise LockfileError(source, [f"{where}{message} (PEP 751)"]) from exc
    problems = Problems(source)
    packages = []
    for index, package in enumerate(pylock.packages):
        packages.append(_package(package, f"packages[{index}]", problems))
    problems.raise_if_any()
    return ForeignLock(
        path=source,
        format=FORMAT_PYLOCK,
        packages=tuple(packages),
        requires_python=pylock.requires_python,
        environments=tuple(pylock.environments or ()),
        marker_context=MARKER_CONTEXT_LOCK_FILE,
        default_groups=tuple(pylock.default_groups or ()),
        default_groups_from=PYLOCK_DEFAULT_GROUPS_FROM,
        group_names=tuple(pylock.dependency_groups or ()),
        extra_names=tuple(pylock.extras or ()),
    )


def _hashes(hashes: Any, where: str, problems: Problems) -> tuple[Digest, ...]:
    found = []
    for algorithm, value in dict(hashes or {}).items():
        digest = parse_digest(f"{algorithm}:{value}", f"{where}.hashes", problems)
        if digest is not None:
            found.append(digest)
    return tuple(found)


def _package(package: Any, where: str, problems: Problems) -> LockedPackage:
    artifacts: list[LockedArtifact] = []
    for i, wheel in enumerate(package.wheels or ()):
        artifacts.append(_artifact(wheel, f"{where}.wheels[{i}]", problems, wheel.filename))
    if package.sdist is not None:
        sdist = package.sdist
        artifacts.append(_artifact(sdist, f"{where}.sdist", problems, sdist.filename))
    source = Source(INDEX, url=package.index)
    if package.vcs is not None:
        vcs = package.vcs
        source = Source(VCS, url=vcs.url or vcs.path, vcs=vcs.type, commit=vcs.commit_id)
    elif package.directory is not None:
        source = Source(EDITABLE if package.directory.editable else DIRECTORY)
    elif package.archive is not None:
        archive = package.archive
        hashes = _hashes(archive.hashes, f"{where}.archive", problems)
        url = archive.url or archive.path
        artifacts.append(
            LockedArtifact(
                filename_of(url, "archive"),
                hashes,
                url=url,
                upload_time=parse_upload_time(
                    archive.upload_time, f"{where}.archive.upload-time", problems
                ),
                size=archive.size,
            )
        )
        source = archive_source(url, hashes)
    return LockedPackage(
        name=str(package.name),
        version=str(package.version) if package.version is not None else None,
        source=source,
        artifacts=tuple(artifacts),
        marker=package.marker,
        requires_python=package.requires_python,
        where=where,
    )


def _artifact(item: Any, where: str, problems: Problems, filename: str) -> LockedArtifact:
    url = item.url or item.path
    return LockedArtifact(
        filename=filename or filename_of(url),
        hashes=_hashes(item.hashes, where, problems),
        url=url,
        upload_time=parse_upload_time(item.upload_time, f"{where}.upload-time", problems),
        size=item.size,
    )
