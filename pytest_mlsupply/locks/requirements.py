"""pip requirement files used as locks (pip-compile, ``uv pip compile``, hand-written).

The line syntax follows pip's own reader (``pip/_internal/req/req_file.py``):
a line ending in ``\\`` continues on the next one, a comment line ends a
continuation, ``#`` starts a comment at the start of a line or after
whitespace, and the requirement is everything before the first token starting
with ``-`` (per-requirement options such as ``--hash`` follow it). The
requirement itself is parsed by ``packaging.requirements.Requirement``.

A lock pins: each requirement must be ``name==version`` (or ``===``), or a
direct reference (``name @ url``), which is compared by source.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pytest_mlsupply.errors import LockfileError
from pytest_mlsupply.hashing import Digest
from pytest_mlsupply.limits import version_problem
from pytest_mlsupply.locks import FORMAT_REQUIREMENTS
from pytest_mlsupply.locks.foreign import (
    ForeignLock,
    LockedArtifact,
    LockedPackage,
    Problems,
    archive_source,
    filename_of,
    parse_digest,
    read_lock_text,
)
from pytest_mlsupply.sources import EDITABLE, INDEX, VCS, Source

NOT_PINNED = "is not pinned: a lock needs name==version (or name @ URL)"
INCLUDE_CYCLE = "include cycle"
UNKNOWN_OPTION = "unknown option"

_COMMENT = re.compile(r"(^|\s+)#.*$")
_COMMENT_LINE = re.compile(r"^\s*#")

#: pip options that take a value and concern where packages come from, or how
#: pip runs; a lock is compared offline, so they are accepted and not used.
_VALUE_OPTIONS = frozenset(
    {
        "-i",
        "--index-url",
        "--extra-index-url",
        "-f",
        "--find-links",
        "--no-binary",
        "--only-binary",
        "--trusted-host",
        "--use-feature",
        "--config-settings",
        "--global-option",
    }
)
_FLAG_OPTIONS = frozenset({"--no-index", "--prefer-binary", "--require-hashes", "--pre"})
_INCLUDE_OPTIONS = {"-r": False, "--requirement": False, "-c": True, "--constraint": True}
_EDITABLE_OPTIONS = frozenset({"-e", "--editable"})
_REQUIREMENT_OPTIONS = frozenset({"--hash", "--config-settings", "--global-option"})
_VCS_PREFIXES = ("git+", "hg+", "svn+", "bzr+")
_COMMIT = re.compile(r"^[0-9a-fA-F]{7,64}$")


@dataclass(frozen=True)
class LogicalLine:
    """One requirement-file line after joining continuations and removing comments."""

    number: int
    text: str


def logical_lines(text: str) -> Iterator[LogicalLine]:
    """Join ``\\`` continuations and strip comments as pip does; skip blank lines."""
    pending: list[str] = []
    first = 0
    for number, line in enumerate(text.splitlines(), start=1):
        is_comment = bool(_COMMENT_LINE.match(line))
        if not line.endswith("\\") or is_comment:
            if is_comment:
                line = " " + line
            if pending:
                pending.append(line)
                joined, start = "".join(pending), first
                pending = []
            else:
                joined, start = line, number
            cleaned = _COMMENT.sub("", joined).strip()
            if cleaned:
                yield LogicalLine(start, cleaned)
        else:
            if not pending:
                first = number
            pending.append(line[:-1])
    if pending:
        cleaned = _COMMENT.sub("", "".join(pending)).strip()
        if cleaned:
            yield LogicalLine(first, cleaned)


def split_requirement_line(line: str) -> tuple[str, str]:
    """(requirement, options): the requirement ends at the first token starting with ``-``."""
    tokens = line.split()
    for index, token in enumerate(tokens):
        if token.startswith("-"):
            return " ".join(tokens[:index]), " ".join(tokens[index:])
    return " ".join(tokens), ""


def load_requirements(path: Path) -> ForeignLock:
    problems = Problems(str(path))
    notes: list[str] = []
    packages: list[LockedPackage] = []
    _read_file(path, path.parent, (), False, packages, problems, notes, None)
    problems.raise_if_any()
    return ForeignLock(
        path=str(path), format=FORMAT_REQUIREMENTS, packages=tuple(packages), notes=tuple(notes)
    )


def parse_requirements(text: str, source: str = "requirements.txt") -> ForeignLock:
    """Parse requirement-file text without includes (for tests and in-memory use)."""
    problems = Problems(source)
    notes: list[str] = []
    packages: list[LockedPackage] = []
    _parse_text(text, None, "", (), False, packages, problems, notes)
    problems.raise_if_any()
    return ForeignLock(
        path=source, format=FORMAT_REQUIREMENTS, packages=tuple(packages), notes=tuple(notes)
    )


def _read_file(
    path: Path,
    root: Path,
    stack: tuple[Path, ...],
    constraint: bool,
    packages: list[LockedPackage],
    problems: Problems,
    notes: list[str],
    included_from: str | None,
) -> None:
    resolved = path.resolve()
    label = _label(path, root) if stack else ""
    if resolved in stack:
        chain = " -> ".join(_label(p, root) for p in (*stack, resolved))
        problems.add(str(included_from), f"{INCLUDE_CYCLE}: {chain}")
        return
    if stack:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            problems.add(str(included_from), f"cannot read {label}: {exc.strerror or exc}")
            return
        except UnicodeDecodeError as exc:
            problems.add(str(included_from), f"{label} is not UTF-8 text: {exc}")
            return
    else:
        try:
            text = read_lock_text(path, "requirements file")
        except LockfileError:
            raise
    _parse_text(text, path, label, (*stack, resolved), constraint, packages, problems, notes, root)


def _label(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _parse_text(
    text: str,
    path: Path | None,
    label: str,
    stack: tuple[Path, ...],
    constraint: bool,
    packages: list[LockedPackage],
    problems: Problems,
    notes: list[str],
    root: Path | None = None,
) -> None:
    for line in logical_lines(text):
        where = f"{label}, line {line.number}" if label else f"line {line.number}"
        if line.text.startswith("-"):
            _option_line(line.text, where, path, root, stack, constraint, packages, problems, notes)
            continue
        package = _requirement(line.text, where, problems, constraint)
        if package is not None:
            packages.append(package)


def _option_line(
    text: str,
    where: str,
    path: Path | None,
    root: Path | None,
    stack: tuple[Path, ...],
    constraint: bool,
    packages: list[LockedPackage],
    problems: Problems,
    notes: list[str],
) -> None:
    try:
        tokens = _split(text)
    except ValueError as exc:
        problems.add(where, f"cannot split {text!r}: {exc}")
        return
    option, _, inline = tokens[0].partition("=")
    value = inline or (tokens[1] if len(tokens) > 1 else "")
    if option in _FLAG_OPTIONS:
        return
    if option in _VALUE_OPTIONS:
        if not value:
            problems.add(where, f"{option} needs a value")
        return
    if option in _INCLUDE_OPTIONS:
        if not value:
            problems.add(where, f"{option} needs a file name")
            return
        if path is None:
            notes.append(f"{where}: {option} {value} was not followed (text without a file)")
            return
        included = path.parent / value
        _read_file(
            included,
            root or path.parent,
            stack,
            constraint or _INCLUDE_OPTIONS[option],
            packages,
            problems,
            notes,
            where,
        )
        return
    if option in _EDITABLE_OPTIONS:
        if not value:
            problems.add(where, f"{option} needs a path or URL")
            return
        package = _editable(value, where, notes)
        if package is not None:
            packages.append(package)
        return
    problems.add(where, f"{UNKNOWN_OPTION} {option!r}")


def _split(text: str) -> list[str]:
    """Shell-like splitting as pip does; plain ``split`` when nothing is quoted (far faster)."""
    if any(char in text for char in "'\"\\"):
        return shlex.split(text)
    return text.split()


def _editable(value: str, where: str, notes: list[str]) -> LockedPackage | None:
    """``-e git+URL@commit#egg=name`` or ``-e path``; a path without a name cannot be compared."""
    url, _, fragment = value.partition("#")
    egg = next((p[4:] for p in fragment.split("&") if p.startswith("egg=")), None)
    if egg is None:
        notes.append(f"{where}: editable {value} has no #egg=NAME; it is not compared")
        return None
    name = canonicalize_name(egg.split("[")[0])
    if url.startswith(_VCS_PREFIXES):
        return LockedPackage(name, None, _vcs_source(url), where=where, group="editable")
    return LockedPackage(name, None, Source(EDITABLE), where=where, group="editable")


def _vcs_source(url: str) -> Source:
    vcs, _, rest = url.partition("+")
    base, at, revision = rest.rpartition("@")
    if at and "/" not in revision and _COMMIT.match(revision):
        return Source(VCS, url=base, vcs=vcs, commit=revision.lower())
    return Source(VCS, url=rest, vcs=vcs)


def _requirement(
    text: str, where: str, problems: Problems, constraint: bool
) -> LockedPackage | None:
    requirement_text, options_text = split_requirement_line(text)
    hashes = _hash_options(options_text, where, problems)
    try:
        requirement = Requirement(requirement_text)
    except InvalidRequirement as exc:
        first = str(exc).strip().splitlines()[0]
        problems.add(where, f"invalid requirement {requirement_text!r}: {first}")
        return None
    name = canonicalize_name(requirement.name)
    common = {
        "marker": requirement.marker,
        "required": not constraint,
        "group": "constraint" if constraint else None,
        "where": where,
    }
    if requirement.url:
        url = requirement.url
        if url.startswith(_VCS_PREFIXES):
            return LockedPackage(name, None, _vcs_source(url), **common)  # type: ignore[arg-type]
        fragment_hashes = _fragment_hashes(url, where, problems)
        all_hashes = (*hashes, *fragment_hashes)
        artifact = LockedArtifact(filename_of(url.split("#")[0]), all_hashes, url=url)
        source = archive_source(url.split("#")[0], all_hashes)
        return LockedPackage(name, None, source, (artifact,), **common)  # type: ignore[arg-type]
    specifiers = list(requirement.specifier)
    if (
        len(specifiers) != 1
        or specifiers[0].operator not in ("==", "===")
        or specifiers[0].version.endswith(".*")
    ):
        problems.add(where, f"{requirement_text!r} {NOT_PINNED}")
        return None
    pin = specifiers[0]
    too_long = version_problem(pin.version)
    if too_long:
        problems.add(where, too_long)
        return None
    artifact_list = (LockedArtifact(f"{name}=={pin.version}", hashes),) if hashes else ()
    return LockedPackage(
        name,
        pin.version,
        Source(INDEX),
        artifact_list,
        arbitrary=pin.operator == "===",
        **common,  # type: ignore[arg-type]
    )


def _hash_options(options: str, where: str, problems: Problems) -> tuple[Digest, ...]:
    if not options:
        return ()
    try:
        tokens = _split(options)
    except ValueError as exc:
        problems.add(where, f"cannot split the options {options!r}: {exc}")
        return ()
    found: list[Digest] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        option, sep, value = token.partition("=")
        if option not in _REQUIREMENT_OPTIONS:
            problems.add(where, f"{UNKNOWN_OPTION} {option!r} after a requirement")
            index += 1
            continue
        if not sep:
            index += 1
            value = tokens[index] if index < len(tokens) else ""
        if option == "--hash":
            digest = parse_digest(value, where, problems)
            if digest is not None:
                found.append(digest)
        index += 1
    return tuple(found)


def _fragment_hashes(url: str, where: str, problems: Problems) -> tuple[Digest, ...]:
    _, _, fragment = url.partition("#")
    found = []
    for part in fragment.split("&"):
        algorithm, sep, value = part.partition("=")
        if sep and algorithm in ("sha256", "sha384", "sha512", "md5", "sha1", "sha224"):
            digest = parse_digest(f"{algorithm}:{value}", where, problems)
            if digest is not None:
                found.append(digest)
    return tuple(found)
