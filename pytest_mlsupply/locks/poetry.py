"""``poetry.lock``, lock-version 1.x (hashes in ``[metadata.files]``) and 2.x (per-package files).

Poetry 2 writes, per package, the ``groups`` it belongs to and a ``markers``
value (a string, or a table per group) saying where it applies; that decides.
Poetry 1 has no package markers, only markers on dependency edges, and the
project's own dependencies are not in the file; there, the packages nothing
depends on are taken as the project's direct dependencies and the graph is
walked from them, so a Windows-only ``colorama`` is not expected on Linux.
Optional packages (extras) are taken only when asked for, as ``poetry install
--extras`` does; the groups taken by default are those ``poetry install`` takes:
every group but the ones ``pyproject.toml`` beside the lock marks
``optional = true``. ``extra == "x"`` in markers is read as "extra x is taken".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.markers import InvalidMarker, Marker, UndefinedComparison
from packaging.specifiers import InvalidSpecifier, Specifier
from packaging.utils import canonicalize_name

from pytest_mlsupply.errors import LockfileError
from pytest_mlsupply.limits import version_problem
from pytest_mlsupply.locks import FORMAT_POETRY
from pytest_mlsupply.locks.foreign import (
    MARKER_CONTEXT_LOCK_FILE,
    Dependency,
    ForeignLock,
    LockedArtifact,
    LockedPackage,
    Problems,
    archive_source,
    parse_digest,
    parse_extras_marker,
    parse_specifier,
    read_lock_text,
    toml_document,
)
from pytest_mlsupply.sources import DIRECTORY, EDITABLE, INDEX, VCS, Source

_CARET = re.compile(r"^\^\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$")
_GROUP_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", re.ASCII)
_TILDE = re.compile(r"^~\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$")


POETRY_DEFAULT_GROUPS_FROM = "poetry install's default: every non-optional group"
POETRY_OPTIONAL_GROUPS_FROM = (
    "poetry install's default: every group but those {pyproject} marks optional ({names})"
)


def load_poetry_lock(path: Path) -> ForeignLock:
    """poetry.lock, with the optional groups of the ``pyproject.toml`` beside it left out."""
    optional = optional_groups(path.parent / "pyproject.toml")
    return parse_poetry_lock(
        read_lock_text(path, "poetry.lock"),
        str(path),
        optional_groups=optional,
        optional_from=path.parent.joinpath("pyproject.toml").name,
    )


def optional_groups(pyproject: Path) -> tuple[str, ...]:
    """``[tool.poetry.group.NAME] optional = true`` names of *pyproject* (none if unreadable)."""
    from pytest_mlsupply.tomlfile import parse_toml

    try:
        document, _ = parse_toml(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return ()
    tool = (document or {}).get("tool")
    poetry = tool.get("poetry") if isinstance(tool, Mapping) else None
    groups = poetry.get("group") if isinstance(poetry, Mapping) else None
    if not isinstance(groups, Mapping):
        return ()
    return tuple(
        sorted(
            str(name)
            for name, table in groups.items()
            if isinstance(table, Mapping) and table.get("optional") is True
        )
    )


def parse_poetry_lock(
    text: str, source: str, *, optional_groups: tuple[str, ...] = (), optional_from: str = ""
) -> ForeignLock:
    """*optional_groups*: groups ``poetry install`` leaves out unless asked (``--with``)."""
    document = toml_document(text, source)
    problems = Problems(source)
    metadata = document.get("metadata")
    if not isinstance(metadata, Mapping):
        raise LockfileError(source, ["metadata: missing; this does not look like a poetry.lock"])
    lock_version = str(metadata.get("lock-version", ""))
    major = lock_version.split(".", 1)[0]
    if major not in ("1", "2"):
        raise LockfileError(
            source,
            [f"metadata.lock-version: {lock_version!r} is not supported (this reads 1.x and 2.x)"],
        )
    requires_python = python_constraint(metadata.get("python-versions"))
    legacy_files = metadata.get("files", {})
    files_by_name = (
        {canonicalize_name(str(k)): v for k, v in legacy_files.items()}
        if isinstance(legacy_files, Mapping)
        else {}
    )
    raw_packages = document.get("package", [])
    if not isinstance(raw_packages, list):
        raise LockfileError(source, ["package: must be an array of tables ([[package]])"])
    names = [
        canonicalize_name(str(p.get("name"))) if isinstance(p, Mapping) else ""
        for p in raw_packages
    ]
    by_name: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        by_name.setdefault(name, []).append(index)
    extras_of = _extras_table(document.get("extras"), problems)
    versions = [p.get("version") if isinstance(p, Mapping) else None for p in raw_packages]
    packages: list[LockedPackage] = []
    has_groups = any(isinstance(p, Mapping) and "groups" in p for p in raw_packages)
    incoming: set[int] = set()
    for index, raw in enumerate(raw_packages):
        where = f"package[{index}]"
        if not isinstance(raw, Mapping):
            problems.add(where, "must be a table")
            packages.append(LockedPackage(f"invalid-{index}", None, installable=False))
            continue
        package = _package(
            raw, where, problems, files_by_name, by_name, has_groups, extras_of, versions
        )
        for edge in package.dependencies:
            incoming.update(edge.targets)
        packages.append(package)
    problems.raise_if_any()
    roots: tuple[Dependency, ...] | None = None
    if not has_groups:
        roots = tuple(Dependency((i,)) for i in range(len(packages)) if i not in incoming)
    # Every group but main, including those of packages main also takes.
    group_names = tuple(
        sorted({g for p in packages for g in (p.group or "").split(",") if g and g != "main"})
    )
    optional = [g for g in optional_groups if g in group_names]
    return ForeignLock(
        path=source,
        format=FORMAT_POETRY,
        packages=tuple(packages),
        requires_python=requires_python,
        marker_context=MARKER_CONTEXT_LOCK_FILE,
        default_groups=tuple(g for g in group_names if g not in optional),
        default_groups_from=POETRY_OPTIONAL_GROUPS_FROM.format(
            pyproject=optional_from, names=", ".join(optional)
        )
        if optional
        else POETRY_DEFAULT_GROUPS_FROM,
        group_names=group_names,
        extra_names=tuple(sorted(extras_of)),
        roots=roots,
    )


def _extras_table(value: Any, problems: Problems) -> dict[str, tuple[str, ...]]:
    """``[extras]``: extra name -> the package names it takes."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.add("extras", f"must be a table of extra -> package names, got {value!r}")
        return {}
    found: dict[str, tuple[str, ...]] = {}
    for extra, names in value.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            problems.add(f"extras.{extra}", f"must be a list of package names, got {names!r}")
            continue
        # Entries may carry a requirement ("torch (>=2)"); the name comes first.
        found[str(extra)] = tuple(
            canonicalize_name(re.split(r"[\s(\[;<>=!~]", n)[0]) for n in names
        )
    return found


def _package(
    raw: Mapping[str, Any],
    where: str,
    problems: Problems,
    files_by_name: Mapping[Any, Any],
    by_name: Mapping[str, list[int]],
    has_groups: bool,
    extras_of: Mapping[str, tuple[str, ...]],
    versions: Sequence[Any],
) -> LockedPackage:
    name = canonicalize_name(str(raw.get("name", "")))
    if not raw.get("name"):
        problems.add(f"{where}.name", "missing")
    version = raw.get("version")
    if not isinstance(version, str):
        problems.add(f"{where}.version", f"must be a string, got {version!r}")
        version = None
    elif too_long := version_problem(version):
        problems.add(f"{where}.version", too_long)
    files = raw.get("files", files_by_name.get(name, []))
    artifacts = _artifacts(files, f"{where}.files", problems)
    hashes = [d for artifact in artifacts for d in artifact.hashes]
    source = _source(raw.get("source"), hashes, raw.get("develop") is True)
    groups: list[str] = []
    raw_groups = raw.get("groups")
    if raw_groups is not None:
        if isinstance(raw_groups, list) and all(isinstance(g, str) for g in raw_groups):
            groups = list(raw_groups)
        else:
            problems.add(f"{where}.groups", f"must be a list of group names, got {raw_groups!r}")
    elif isinstance(raw.get("category"), str):
        groups = [raw["category"]]
    marker: Marker | None = None
    markers = raw.get("markers")
    if isinstance(markers, Mapping):
        marker = _group_markers(markers, groups, f"{where}.markers", problems)
    else:
        marker = parse_extras_marker(markers, f"{where}.markers", problems)
    optional = raw.get("optional") is True
    edges: list[Dependency] = []
    deps = raw.get("dependencies", {})
    if isinstance(deps, Mapping) and not has_groups:
        for dep_name, spec in deps.items():
            target = canonicalize_name(str(dep_name))
            if len(by_name.get(target, ())) > 1:
                edges.extend(_split_edges(target, spec, by_name, versions))
                continue
            edge = _edge(target, spec, by_name)
            if edge is not None:
                edges.append(edge)
    return LockedPackage(
        name=name,
        version=version,
        source=source,
        artifacts=artifacts,
        marker=marker,
        required=not optional,
        development=bool(groups) and "main" not in groups,
        group=",".join(str(g) for g in groups) or None,
        groups=() if "main" in groups else tuple(groups),
        extras=tuple(e for e, names in extras_of.items() if name in names) if optional else None,
        where=where,
        dependencies=tuple(edges),
    )


def _group_markers(
    markers: Mapping[str, Any], groups: list[str], where: str, problems: Problems
) -> Marker | None:
    """Poetry's per-group ``markers`` table as one marker, each group's term only when taken.

    ``{main = "sys_platform == 'win32'", docs = "..."}`` applies on Linux only when the
    docs group is taken: ``(win32) or ("docs" in dependency_groups and (...))``, evaluated
    in the lock-file context. A group without its own marker applies wherever it is taken.
    """
    terms: list[str] = []
    for group in dict.fromkeys([*groups, *(str(k) for k in markers)]):
        text = markers.get(group)
        if text is not None and not isinstance(text, str):
            problems.add(f"{where}.{group}", f"marker must be a string, got {text!r}")
            continue
        if group == "main":
            if text is None:
                return None  # the main dependencies are always taken: everywhere
            terms.append(f"({text})")
            continue
        if not _GROUP_NAME.fullmatch(group):
            problems.add(f"{where}.{group}", f"not a valid group name: {group!r}")
            continue
        taken = f'"{group}" in dependency_groups'
        terms.append(f"({taken} and ({text}))" if text else f"({taken})")
    if not terms:
        return None
    return parse_extras_marker(" or ".join(terms), where, problems)


def _split_edges(
    name: str, spec: Any, by_name: Mapping[str, list[int]], versions: Sequence[Any]
) -> list[Dependency]:
    """Edges to a package locked at several versions (``six`` 1.16.0 for Python < 3.11, 1.17.0
    for 3.11+): each alternative of the requirement reaches only the entries its version
    constraint allows, under its own marker. What cannot be read is not followed."""
    targets = tuple(by_name.get(name, ()))
    edges: list[Dependency] = []
    for item in spec if isinstance(spec, list) else [spec]:
        if isinstance(item, str):
            item = {"version": item}
        if not isinstance(item, Mapping):
            edges.append(Dependency(targets, uncertain=True))
            continue
        if item.get("optional") is True:
            continue
        fits = [_version_fits(item.get("version"), versions[t]) for t in targets]
        chosen = tuple(t for t, fit in zip(targets, fits, strict=True) if fit is True)
        if None in fits or not chosen:
            edges.append(Dependency(targets, uncertain=True))
            continue
        edge = _edge(name, item, {name: list(chosen)})
        if edge is not None:
            edges.append(edge)
    return edges


def _version_fits(constraint: Any, version: Any) -> bool | None:
    """Whether *version* satisfies a poetry constraint (``^1.16``, ``>=1,<2``, ``1.17.0``)."""
    if constraint is None:
        return True
    if not isinstance(constraint, str) or not isinstance(version, str):
        return None
    # The constraint grammar is the one of ``python`` constraints: read it the same way.
    text = python_marker(constraint)
    if text is None:
        return None
    if not text:
        return True
    try:
        return bool(Marker(text).evaluate({"python_full_version": version}))
    except (InvalidMarker, UndefinedComparison, ValueError):
        return None


def _edge(name: str, spec: Any, by_name: Mapping[str, list[int]]) -> Dependency | None:
    targets = tuple(by_name.get(name, ()))
    if not targets:
        return None
    specs = spec if isinstance(spec, list) else [spec]
    markers: list[str] = []
    for item in specs:
        if not isinstance(item, Mapping):
            return Dependency(targets)
        if item.get("optional") is True:
            continue
        parts = []
        if isinstance(item.get("markers"), str):
            parts.append(f"({item['markers']})")
        if isinstance(item.get("python"), str):
            converted = python_marker(item["python"])
            if converted is None:
                return Dependency(targets, uncertain=True)
            if converted:
                parts.append(f"({converted})")
        if not parts:
            return Dependency(targets)
        markers.append(" and ".join(parts))
    if not markers:
        return None
    problems = Problems("")
    marker = parse_extras_marker(" or ".join(f"({m})" for m in markers), "", problems)
    return Dependency(targets, marker=marker, uncertain=marker is None)


def python_constraint(text: Any) -> Any:
    """Poetry's ``python-versions`` (``^3.9``, ``>=3.8,<4``, ``*``) as a SpecifierSet, or None."""
    marker = python_marker(text) if isinstance(text, str) else None
    if not marker or " or " in marker:
        return None
    pieces = [part.split("python_full_version ", 1)[1] for part in marker.split(" and ")]
    spec = ",".join(p.replace(" ", "").replace("'", "") for p in pieces)
    return parse_specifier(spec, "", Problems(""))


def python_marker(text: str) -> str | None:
    """A poetry Python constraint as a PEP 508 marker; ``""`` for any, None when not understood."""
    alternatives = []
    for alternative in text.split("||"):
        pieces: list[str] = []
        for raw_piece in re.split(r"[,\s]+(?=[<>=!~^])|,", alternative.strip()):
            piece = raw_piece.strip()
            if piece in ("", "*"):
                continue
            bounds = _bounds(piece)
            if bounds is None:
                return None
            pieces.extend(f"python_full_version {op} '{v}'" for op, v in bounds)
        if not pieces:
            return ""
        alternatives.append(" and ".join(pieces))
    if len(alternatives) == 1:
        return alternatives[0]
    return " or ".join(f"({a})" for a in alternatives)


def _bounds(piece: str) -> list[tuple[str, str]] | None:
    for pattern, width in ((_CARET, 0), (_TILDE, 1)):
        match = pattern.match(piece)
        if match:
            parts = [int(p) for p in match.groups() if p is not None]
            lower = ".".join(str(p) for p in parts)
            if pattern is _CARET:
                index = next((i for i, p in enumerate(parts) if p != 0), len(parts) - 1)
            else:
                index = min(width, len(parts) - 1) if len(parts) > 1 else 0
            upper_parts = [*parts[:index], parts[index] + 1]
            return [(">=", lower), ("<", ".".join(str(p) for p in upper_parts))]
    match = re.match(r"^(==|!=|<=|>=|<|>|~=)?\s*([0-9][0-9a-zA-Z.*+!-]*)$", piece)
    if not match:
        return None
    operator = match.group(1) or "=="
    version = match.group(2)
    try:  # ``~=0`` and the like are not valid PEP 440 specifiers: not understood
        Specifier(f"{operator}{version}")
    except InvalidSpecifier:
        return None
    return [(operator, version)]


def _source(raw: Any, hashes: list[Any], develop: bool) -> Source:
    if not isinstance(raw, Mapping):
        return Source(INDEX)
    kind = raw.get("type")
    url = raw.get("url") if isinstance(raw.get("url"), str) else None
    if kind == "git":
        commit = raw.get("resolved_reference")
        return Source(
            VCS, url=url, vcs="git", commit=commit.lower() if isinstance(commit, str) else None
        )
    if kind == "directory":
        return Source(EDITABLE if develop else DIRECTORY)
    if kind in ("file", "url"):
        return archive_source(url, hashes)
    return Source(INDEX, url=url)


def _artifacts(files: Any, where: str, problems: Problems) -> tuple[LockedArtifact, ...]:
    if not isinstance(files, list):
        problems.add(where, "must be an array of {file, hash} tables")
        return ()
    found = []
    for i, item in enumerate(files):
        if not isinstance(item, Mapping):
            problems.add(f"{where}[{i}]", "must be a table with file and hash")
            continue
        digest = parse_digest(item.get("hash"), f"{where}[{i}].hash", problems)
        found.append(
            LockedArtifact(str(item.get("file", "")), (digest,) if digest is not None else ())
        )
    return tuple(found)
