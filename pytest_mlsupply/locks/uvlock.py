"""``uv.lock`` (version 1, revisions 1 to 5), read-only.

uv.lock is a universal lock: it lists every package for every platform and
Python it supports, and which ones an environment gets follows from the
dependency graph: start at the project (the ``editable``/``virtual`` root and
the workspace members), follow the edges whose markers hold here, include the
default ``dev`` group. Packages with several versions (``torch`` for cpu and
cu128) are told apart by the ``version`` and ``source`` of each edge, and by
the package's ``resolution-markers``.

uv writes the extras and dependency groups of the project into markers in its
own encoding (``extra == 'extra-8-nanochat-cpu'`` is "the ``cpu`` extra of
``nanochat`` is taken", and several may hold at once); they are read as
``'extra-8-nanochat-cpu' in extras`` (PEP 751's lock-file context), with the
taken extras and groups in that set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import replace
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.utils import canonicalize_name

from pytest_mlsupply.errors import LockfileError
from pytest_mlsupply.hashing import Digest
from pytest_mlsupply.limits import version_problem
from pytest_mlsupply.locks import FORMAT_UV
from pytest_mlsupply.locks.foreign import (
    MARKER_CONTEXT_LOCK_FILE,
    Dependency,
    ForeignLock,
    LockedArtifact,
    LockedPackage,
    Problems,
    archive_source,
    filename_of,
    parse_digest,
    parse_extras_marker,
    parse_specifier,
    parse_upload_time,
    read_lock_text,
    toml_document,
)
from pytest_mlsupply.sources import DIRECTORY, EDITABLE, INDEX, VCS, Source

SUPPORTED_VERSION = 1
#: Revision 4 lets uv leave out ``[package.metadata]`` (requires-dist, requires-dev), which
#: this reader never uses; revision 5 (uv 0.13) changed nothing this reader reads in the
#: locks it writes (optional and group dependencies, include-group, conflicts, workspace
#: members, editable paths, marker splits, upload-time, size). A newer revision might change
#: what an entry means, so it is refused rather than guessed at.
NEWEST_REVISION = 5
#: uv installs the ``dev`` dependency group unless told otherwise.
UV_DEFAULT_GROUPS = ("dev",)
UV_DEFAULT_GROUPS_FROM = "uv's default"
PYPROJECT_DEFAULT_GROUPS_FROM = "[tool.uv] default-groups of {pyproject}"
REVISION_TOO_NEW = (
    "revision: uv.lock revision {revision} is newer than the newest this plugin reads "
    "({newest}); its meaning may have changed. Upgrade pytest-mlsupply, or write the lock "
    "with a uv that writes revision {newest} or older"
)


def load_uv_lock(path: Path) -> ForeignLock:
    """uv.lock, with the default groups of the ``pyproject.toml`` beside it (uv's own rule)."""
    pyproject = path.parent / "pyproject.toml"
    groups, note = project_default_groups(pyproject)
    lock = parse_uv_lock(read_lock_text(path, "uv.lock"), str(path), default_groups=groups)
    if _declares_default_groups(pyproject):
        lock = replace(
            lock, default_groups_from=PYPROJECT_DEFAULT_GROUPS_FROM.format(pyproject=pyproject.name)
        )
    return replace(lock, notes=(*lock.notes, note)) if note else lock


def _declares_default_groups(pyproject: Path) -> bool:
    """Whether *pyproject* sets ``[tool.uv] default-groups`` (for the note only)."""
    try:
        return "default-groups" in pyproject.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False


def project_default_groups(pyproject: Path) -> tuple[tuple[str, ...] | None, str | None]:
    """``[tool.uv] default-groups`` of *pyproject*: names, None for ``"all"``, and a note.

    Without the file or the key, uv installs the ``dev`` group. A file that cannot be read
    or a value of the wrong type leaves that default, with a note saying so.
    """
    from pytest_mlsupply.tomlfile import parse_toml

    try:
        text = pyproject.read_text(encoding="utf-8")
    except FileNotFoundError:
        return UV_DEFAULT_GROUPS, None
    except (OSError, UnicodeDecodeError) as exc:
        return UV_DEFAULT_GROUPS, f"{pyproject} cannot be read ({exc}); assumed uv's default groups"
    document, problem = parse_toml(text)
    if document is None:
        return UV_DEFAULT_GROUPS, f"{pyproject}: {problem}; assumed uv's default groups"
    tool = document.get("tool")
    uv = tool.get("uv") if isinstance(tool, Mapping) else None
    value = uv.get("default-groups", UV_DEFAULT_GROUPS) if isinstance(uv, Mapping) else None
    if value is None:
        return UV_DEFAULT_GROUPS, None
    if value == "all":
        return None, None
    if isinstance(value, (list, tuple)) and all(isinstance(group, str) for group in value):
        return tuple(canonicalize_name(group) for group in value), None
    return UV_DEFAULT_GROUPS, (
        f'{pyproject}: tool.uv.default-groups: expected a list of group names or "all", '
        f"got {value!r}; assumed uv's default groups"
    )


def parse_uv_lock(
    text: str, source: str, *, default_groups: tuple[str, ...] | None = UV_DEFAULT_GROUPS
) -> ForeignLock:
    """*default_groups*: the groups ``uv sync`` installs; None for every group of the lock."""
    document = toml_document(text, source)
    problems = Problems(source)
    notes: list[str] = []
    version = document.get("version")
    if version != SUPPORTED_VERSION:
        raise LockfileError(
            source,
            [f"version: uv.lock version {version!r} is not supported (this reads version 1)"],
        )
    revision = document.get("revision", 1)
    if not isinstance(revision, int) or isinstance(revision, bool):
        problems.add("revision", f"must be an integer, got {revision!r}")
    elif revision > NEWEST_REVISION:
        raise LockfileError(
            source, [REVISION_TOO_NEW.format(revision=revision, newest=NEWEST_REVISION)]
        )
    elif revision < 1:
        problems.add("revision", f"must be 1 or more, got {revision!r}")
    requires_python = parse_specifier(document.get("requires-python"), "requires-python", problems)
    raw_packages = document.get("package", [])
    if not isinstance(raw_packages, list):
        problems.add("package", "must be an array of tables ([[package]])")
        raw_packages = []
    manifest = document.get("manifest") or {}
    if not isinstance(manifest, Mapping):
        problems.add("manifest", "must be a table ([manifest])")
        manifest = {}
    listed = manifest.get("members") or []
    if not isinstance(listed, list):
        problems.add("manifest.members", "must be an array of names")
        listed = []
    members = {canonicalize_name(m) for m in listed if isinstance(m, str)}
    by_name: dict[str, list[int]] = {}
    for index, raw in enumerate(raw_packages):
        if isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
            by_name.setdefault(canonicalize_name(raw["name"]), []).append(index)
    packages: list[LockedPackage] = []
    roots: list[Dependency] = []
    for index, raw in enumerate(raw_packages):
        where = f"package[{index}]"
        if not isinstance(raw, Mapping):
            problems.add(where, "must be a table")
            packages.append(LockedPackage(f"invalid-{index}", None, installable=False))
            continue
        package, is_root = _package(raw, where, problems, by_name, raw_packages, members)
        packages.append(package)
        if is_root:
            roots.append(Dependency((index,)))
    problems.raise_if_any()
    if not roots:
        notes.append(
            "uv.lock names no project root (editable, virtual or workspace member); "
            "its entries are compared when installed but none is required"
        )
    root_packages = [packages[i] for root in roots for i in root.targets]
    return ForeignLock(
        path=source,
        format=FORMAT_UV,
        packages=tuple(packages),
        requires_python=requires_python,
        marker_context=MARKER_CONTEXT_LOCK_FILE,
        default_groups=_every_group(packages) if default_groups is None else default_groups,
        default_groups_from=UV_DEFAULT_GROUPS_FROM,
        group_names=_every_group(root_packages),
        extra_names=tuple(sorted({e for p in root_packages for e in p.optional_dependencies})),
        encoded_roots=tuple(sorted({p.name for p in root_packages})),
        roots=tuple(roots),
        notes=tuple(notes),
    )


def _every_group(packages: Sequence[LockedPackage]) -> tuple[str, ...]:
    return tuple(sorted({group for p in packages for group in p.group_dependencies}))


def _package(
    raw: Mapping[str, Any],
    where: str,
    problems: Problems,
    by_name: Mapping[str, list[int]],
    raw_packages: Sequence[Any],
    members: Set[str],
) -> tuple[LockedPackage, bool]:
    name = canonicalize_name(str(raw.get("name")))
    raw_version = raw.get("version")
    version = None
    if raw_version is not None:
        if isinstance(raw_version, str):
            version = raw_version
            if too_long := version_problem(version):
                problems.add(f"{where}.version", too_long)
        else:
            problems.add(f"{where}.version", f"must be a string, got {raw_version!r}")
    source_table = raw.get("source")
    if not isinstance(source_table, Mapping) or len(source_table) == 0:
        problems.add(f"{where}.source", "missing or not a table")
        source_table = {}
    kind = next(iter(source_table), "")
    location = source_table.get(kind)
    artifacts = _artifacts(raw, where, problems)
    hashes = [d for artifact in artifacts for d in artifact.hashes]
    is_root = False
    installable = True
    if kind == "registry":
        source = Source(INDEX, url=str(location))
    elif kind == "git":
        source = _git_source(str(location))
    elif kind in ("url", "path") and not str(location).rstrip("/").endswith((".", "..")):
        source = archive_source(str(location), hashes)
        if not artifacts:
            artifacts = (LockedArtifact(filename_of(str(location), str(location))),)
    elif kind == "editable":
        source = Source(EDITABLE, url=str(location))
        is_root = location == "." or name in members
    elif kind == "virtual":
        source = Source(DIRECTORY, url=str(location))
        is_root = location == "." or name in members
        installable = False
    elif kind in ("directory", "path"):
        source = Source(DIRECTORY, url=str(location))
        is_root = location == "." or name in members
    else:
        problems.add(f"{where}.source", f"unknown source kind {kind!r}")
        source = Source()
    resolution = raw.get("resolution-markers")
    marker: Marker | None = None
    if isinstance(resolution, list) and resolution:
        marker = parse_extras_marker(
            " or ".join(f"({m})" for m in resolution if isinstance(m, str)),
            f"{where}.resolution-markers",
            problems,
        )
    edges = _edges(
        raw.get("dependencies"), f"{where}.dependencies", problems, by_name, raw_packages
    )
    optional = {
        str(extra): _edges(
            items, f"{where}.optional-dependencies.{extra}", problems, by_name, raw_packages
        )
        for extra, items in _table(raw.get("optional-dependencies"), where, problems).items()
    }
    groups = {
        str(group): _edges(
            items, f"{where}.dev-dependencies.{group}", problems, by_name, raw_packages
        )
        for group, items in _table(raw.get("dev-dependencies"), where, problems).items()
    }
    package = LockedPackage(
        name=name,
        version=version,
        source=source,
        artifacts=tuple(artifacts),
        marker=marker,
        installable=installable,
        where=where,
        dependencies=edges,
        optional_dependencies=optional,
        group_dependencies=groups,
    )
    return package, is_root


def _table(value: Any, where: str, problems: Problems) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.add(where, f"expected a table, got {value!r}")
        return {}
    return value


def _git_source(location: str) -> Source:
    """``https://host/repo?rev=main#<commit>``: the fragment is the resolved commit."""
    url, _, commit = location.partition("#")
    base = url.split("?", 1)[0]
    return Source(VCS, url=base, vcs="git", commit=commit.lower() or None)


def _artifacts(
    raw: Mapping[str, Any], where: str, problems: Problems
) -> tuple[LockedArtifact, ...]:
    found: list[LockedArtifact] = []
    items: list[tuple[str, Any]] = []
    sdist = raw.get("sdist")
    if sdist is not None:
        items.append((f"{where}.sdist", sdist))
    wheels = raw.get("wheels", [])
    if not isinstance(wheels, list):
        problems.add(f"{where}.wheels", "must be an array")
        wheels = []
    items.extend((f"{where}.wheels[{i}]", wheel) for i, wheel in enumerate(wheels))
    for item_where, item in items:
        if not isinstance(item, Mapping):
            problems.add(item_where, "must be a table")
            continue
        url = item.get("url") or item.get("path")
        filename = item.get("filename") or filename_of(url if isinstance(url, str) else None)
        hashes: tuple[Digest, ...] = ()
        if "hash" in item:
            digest = parse_digest(item["hash"], f"{item_where}.hash", problems)
            hashes = (digest,) if digest is not None else ()
        size = item.get("size")
        found.append(
            LockedArtifact(
                filename=str(filename),
                hashes=hashes,
                url=url if isinstance(url, str) else None,
                upload_time=parse_upload_time(
                    item.get("upload-time"), f"{item_where}.upload-time", problems
                ),
                size=size if isinstance(size, int) else None,
            )
        )
    return tuple(found)


def _edges(
    items: Any,
    where: str,
    problems: Problems,
    by_name: Mapping[str, list[int]],
    raw_packages: Sequence[Any],
) -> tuple[Dependency, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        problems.add(where, "must be an array")
        return ()
    edges: list[Dependency] = []
    for i, item in enumerate(items):
        item_where = f"{where}[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            problems.add(item_where, "must be a table with a name")
            continue
        name = canonicalize_name(item["name"])
        candidates = by_name.get(name, [])
        if not candidates:
            problems.add(item_where, f"names {name!r}, which has no [[package]] entry")
            continue
        if "version" in item:
            candidates = [
                c for c in candidates if raw_packages[c].get("version") == item["version"]
            ]
        if "source" in item:
            candidates = [c for c in candidates if raw_packages[c].get("source") == item["source"]]
        if not candidates:
            problems.add(item_where, f"matches no [[package]] entry for {name!r}")
            continue
        extras = item.get("extra", [])
        edges.append(
            Dependency(
                targets=tuple(candidates),
                marker=parse_extras_marker(item.get("marker"), f"{item_where}.marker", problems),
                extras=tuple(str(e) for e in extras) if isinstance(extras, list) else (),
            )
        )
    return tuple(edges)
