"""Lockfiles other tools write, in one pytest-free model.

Every reader (``pylock``, ``requirements``, ``uvlock``, ``poetry``, ``pipfile``)
turns its format into a ``ForeignLock``: packages with a canonical name, the
pinned version, the source, the artifacts with their hashes and upload times,
and what decides whether an entry applies to an interpreter (a marker, the
lock's ``requires-python`` and ``environments``, or a dependency graph walked
from the project's roots). Which entries apply is decided here, once, for
every format, so that an entry meant for another platform is never "missing".
"""

from __future__ import annotations

import platform
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from pytest_mlsupply.errors import LockfileError, LockfileNotFoundError, SettingsError
from pytest_mlsupply.hashing import Digest, DigestError
from pytest_mlsupply.limits import version_problem
from pytest_mlsupply.locks import (  # noqa: F401 - re-exported: the formats live there
    CHOICE_ALL,
    CHOICE_NONE,
    FORMAT_AUTO,
    FORMAT_MLSUPPLY,
    FORMAT_PIPFILE,
    FORMAT_POETRY,
    FORMAT_PYLOCK,
    FORMAT_REQUIREMENTS,
    FORMAT_TITLES,
    FORMAT_UV,
    LOCK_FORMATS,
    Choice,
    detect_format,
)
from pytest_mlsupply.sources import Source

MARKER_CONTEXT_LOCK_FILE = "lock_file"
MARKER_CONTEXT_REQUIREMENT = "requirement"


@dataclass(frozen=True)
class LockedArtifact:
    """One file a lock names for a package (a wheel or an sdist) and what it records of it."""

    filename: str
    hashes: tuple[Digest, ...] = ()
    url: str | None = None
    upload_time: datetime | None = None
    size: int | None = None


@dataclass(frozen=True)
class Dependency:
    """An edge of a lock's dependency graph: the target package indexes and the edge's marker."""

    targets: tuple[int, ...]
    marker: Marker | None = None
    #: Extras of the target that this edge asks for (uv's ``extra = [...]``).
    extras: tuple[str, ...] = ()
    #: The edge's condition could not be understood: it never makes a package required.
    uncertain: bool = False


@dataclass(frozen=True)
class LockedPackage:
    """One locked distribution, normalised at the boundary."""

    name: str
    version: str | None
    source: Source = field(default_factory=Source)
    artifacts: tuple[LockedArtifact, ...] = ()
    marker: Marker | None = None
    requires_python: SpecifierSet | None = None
    #: ``===`` pins compare as strings (PEP 440 arbitrary equality).
    arbitrary: bool = False
    #: False for entries that are never expected to be installed by themselves
    #: (``-c`` constraints, optional extras): compared when installed, never "missing".
    required: bool = True
    #: False for a project that is locked but not installed (uv's virtual root).
    installable: bool = True
    group: str | None = None
    #: Locked only for these dependency groups (poetry's non-main groups, Pipfile's
    #: ``develop``); empty: for the project's main dependencies.
    groups: tuple[str, ...] = ()
    #: Locked only for these extras (poetry's ``optional`` packages); empty: for an
    #: extra the lock does not name. None: not an extra's entry.
    extras: tuple[str, ...] | None = None
    #: Locked only for a development group (poetry's non-main groups, Pipfile's
    #: ``develop``): a setup may leave those out, so their absence is a warning.
    development: bool = False
    #: Where in the file: ``line 12`` or ``package[3]``.
    where: str = ""
    dependencies: tuple[Dependency, ...] = ()
    optional_dependencies: Mapping[str, tuple[Dependency, ...]] = field(default_factory=dict)
    group_dependencies: Mapping[str, tuple[Dependency, ...]] = field(default_factory=dict)

    @property
    def hashes(self) -> tuple[Digest, ...]:
        return tuple(digest for artifact in self.artifacts for digest in artifact.hashes)


@dataclass(frozen=True)
class ForeignLock:
    """A lock written by another tool, read-only."""

    path: str
    format: str
    packages: tuple[LockedPackage, ...]
    requires_python: SpecifierSet | None = None
    environments: tuple[Marker, ...] = ()
    marker_context: str = MARKER_CONTEXT_REQUIREMENT
    default_groups: tuple[str, ...] = ()
    #: Where *default_groups* come from, for the note on what was taken.
    default_groups_from: str = ""
    #: Every dependency group and extra the lock knows (what ``all`` takes).
    group_names: tuple[str, ...] = ()
    extra_names: tuple[str, ...] = ()
    #: uv writes the extras and groups of these root packages into markers as
    #: ``extra == 'extra-8-nanochat-cpu'`` / ``'group-4-proj-dev'`` (its conflict encoding).
    encoded_roots: tuple[str, ...] = ()
    #: Dependency-graph roots (edges from the project); None: every entry stands alone.
    roots: tuple[Dependency, ...] | None = None
    notes: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return FORMAT_TITLES.get(self.format, self.format)


@dataclass(frozen=True)
class LockedArtifactRef:
    """One locked artifact with its package, for matching archives against hash lists."""

    name: str
    version: str | None
    filename: str
    digest: Digest


def locked_artifacts(lock: ForeignLock) -> Iterator[LockedArtifactRef]:
    """Every (package, version, file, digest) the lock records, for known-bad hash lists."""
    for package in lock.packages:
        for artifact in package.artifacts:
            for digest in artifact.hashes:
                yield LockedArtifactRef(package.name, package.version, artifact.filename, digest)


# ---------------------------------------------------------------- this interpreter


def current_environment() -> dict[str, str]:
    """PEP 508 marker values for this interpreter."""
    from packaging.markers import default_environment

    env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    env.setdefault("platform_python_implementation", platform.python_implementation())
    return env


NOTE_TAKEN = "{title}: took extras {extras}; groups {groups}"
NOTE_UNKNOWN_CHOICE = "{title} names no {what} {names} ({origin}); nothing was taken for it"


@dataclass(frozen=True)
class Selection:
    """Which entries of a lock apply to one interpreter, with the extras and groups taken."""

    #: None when the lock applies; else why not (one sentence).
    not_applicable: str | None
    #: Entries for this interpreter that must be installed.
    required: tuple[LockedPackage, ...]
    #: Entries for this interpreter that may be installed (constraints, taken extras).
    allowed: tuple[LockedPackage, ...]
    #: The required entries reached only through a development group.
    development: tuple[LockedPackage, ...] = ()
    #: Entries an installed distribution is compared with: markers hold here (and, in a
    #: graph lock, reached through edges whose markers hold), of a taken extra or group.
    here: tuple[LockedPackage, ...] = ()
    #: Name -> ``extra 'cpu'`` / ``group 'docs'``: locked here only for what was not taken.
    not_taken: Mapping[str, str] = field(default_factory=dict)
    #: Entries reached here whose own markers cannot be decided here: required, never
    #: accepted (fail closed).
    undecided: tuple[LockedPackage, ...] = ()
    #: What was taken and from where (one note).
    taken: str = ""
    notes: tuple[str, ...] = ()


def _evaluate(marker: Marker, env: Mapping[str, Any], context: str) -> bool | None:
    """A marker's value, or None when it cannot be decided here."""
    try:
        return bool(marker.evaluate(dict(env), context=context))  # type: ignore[arg-type]
    except (UndefinedComparison, UndefinedEnvironmentName, InvalidMarker, ValueError, TypeError):
        return None


def _python_full_version(env: Mapping[str, Any]) -> str:
    return str(env.get("python_full_version") or platform.python_version())


def _python_ok(spec: SpecifierSet | None, env: Mapping[str, Any]) -> bool:
    if spec is None:
        return True
    version = _python_full_version(env)
    # CPython development builds end in "+"; PEP 440 does not allow that.
    return spec.contains(version.rstrip("+"), prereleases=True)


@dataclass(frozen=True)
class _Taken:
    groups: frozenset[str]
    extras: frozenset[str]
    every_extra: bool


def select(
    lock: ForeignLock,
    environment: Mapping[str, str] | None = None,
    *,
    extras: Choice | None = None,
    groups: Choice | None = None,
) -> Selection:
    """The entries of *lock* that apply to *environment* (default: this interpreter).

    *extras* and *groups* default to what the lock's installer takes (``uv sync``: the
    default groups, no extras; ``poetry install``: the non-optional groups). An entry
    whose marker cannot be decided here is never one an installed distribution may
    match (fail closed); in a graph lock it is still required when reached.
    """
    env: dict[str, Any] = dict(environment or current_environment())
    if lock.requires_python is not None and not _python_ok(lock.requires_python, env):
        return Selection(
            f"the lock requires Python {lock.requires_python}, this is {_python_full_version(env)}",
            (),
            (),
        )
    if lock.environments:
        values = [_evaluate(m, env, MARKER_CONTEXT_REQUIREMENT) for m in lock.environments]
        if not any(values):
            shown = " | ".join(str(m) for m in lock.environments)
            return Selection(
                f"this interpreter matches none of the lock's environments ({shown})", (), ()
            )
    taken, notes, taken_note = _taken(lock, extras, groups)
    here, undecided, reached = _take(lock, env, taken)
    main = _walk(lock, _marker_env(lock, env, taken), (), ()) if lock.roots is not None else None
    required: list[LockedPackage] = []
    allowed: list[LockedPackage] = []
    development: list[LockedPackage] = []
    for index, package in enumerate(lock.packages):
        # A graph lock requires what its edges reach even when the entry's own markers
        # cannot be decided (stricter); a flat lock requires only what surely applies.
        needed = index in here or (reached is not None and index in undecided)
        if needed and package.required:
            required.append(package)
            if package.development or (main is not None and index not in main):
                development.append(package)
        elif index in here:
            allowed.append(package)
    not_taken = _not_taken(lock, env, taken, here)
    return Selection(
        None,
        tuple(required),
        tuple(allowed),
        tuple(development),
        here=tuple(lock.packages[i] for i in sorted(here)),
        not_taken=not_taken,
        undecided=tuple(lock.packages[i] for i in sorted(undecided)),
        taken=taken_note,
        notes=tuple(notes),
    )


def _taken(
    lock: ForeignLock, extras: Choice | None, groups: Choice | None
) -> tuple[_Taken, list[str], str]:
    """The extras and groups to take, problems with the asked names, and the note."""
    notes: list[str] = []
    known_groups = set(lock.group_names) | set(lock.default_groups)
    if groups is None:
        group_names = frozenset(lock.default_groups)
        group_origin = lock.default_groups_from or "the installer's default"
    elif groups.every:
        group_names = frozenset(known_groups)
        group_origin = groups.origin
    else:
        group_names = _as_spelled(groups.names, known_groups)
        group_origin = groups.origin
        unknown = sorted(group_names - known_groups)
        if unknown:
            notes.append(_unknown(lock, "dependency group", unknown, groups.origin))
    if extras is None or not (extras.every or extras.names):
        extra_names: frozenset[str] = frozenset()
        extra_origin = extras.origin if extras is not None else "the installer's default"
    else:
        extra_names = (
            frozenset(lock.extra_names)
            if extras.every
            else _as_spelled(extras.names, set(lock.extra_names))
        )
        extra_origin = extras.origin
        unknown = sorted(extra_names - set(lock.extra_names))
        if unknown and not extras.every:
            notes.append(_unknown(lock, "extra", unknown, extras.origin))
    every_extra = extras is not None and extras.every
    note = NOTE_TAKEN.format(
        title=lock.title,
        extras=f"{_listed(extra_names, every_extra)} ({extra_origin})",
        groups=f"{_listed(group_names, False)} ({group_origin})",
    )
    return _Taken(group_names, extra_names, every_extra), notes, note


def _as_spelled(names: Sequence[str], known: set[str]) -> frozenset[str]:
    """*names* (normalised, PEP 685/735) as the lock spells them, where it names them."""
    spelled = {re.sub(r"[-_.]+", "-", name).lower(): name for name in known}
    return frozenset(spelled.get(name, name) for name in names)


def _listed(names: frozenset[str], every: bool) -> str:
    if every:
        return f"all ({', '.join(sorted(names))})" if names else "all"
    return ", ".join(sorted(names)) if names else "none"


def _unknown(lock: ForeignLock, what: str, names: Sequence[str], origin: str) -> str:
    shown = ", ".join(repr(n) for n in names)
    return NOTE_UNKNOWN_CHOICE.format(title=lock.title, what=what, names=shown, origin=origin)


def _marker_env(lock: ForeignLock, env: Mapping[str, Any], taken: _Taken) -> dict[str, Any]:
    """*env* with the taken extras and groups where this lock's markers look for them."""
    marked: dict[str, Any] = dict(env)
    if lock.marker_context == MARKER_CONTEXT_LOCK_FILE:
        extras = set(taken.extras)
        groups = set(taken.groups)
        for root in lock.encoded_roots:
            extras.update(f"extra-{len(root)}-{root}-{e}" for e in taken.extras)
            extras.update(f"group-{len(root)}-{root}-{g}" for g in taken.groups)
        marked["extras"] = frozenset(extras)
        marked["dependency_groups"] = frozenset(groups)
    else:
        marked.setdefault("extra", "")
    return marked


def _chosen(package: LockedPackage, taken: _Taken) -> bool:
    """Whether the groups and extras *package* is locked for were taken (flat locks)."""
    if package.groups and not any(g in taken.groups for g in package.groups):
        return False
    if package.extras is not None and not taken.every_extra:
        # An optional entry the lock names no extra for (a dependency of an extra's
        # package) is taken when any extra is.
        if not package.extras:
            return bool(taken.extras)
        return any(e in taken.extras for e in package.extras)
    return True


def _take(
    lock: ForeignLock, base: Mapping[str, Any], taken: _Taken
) -> tuple[set[int], set[int], set[int] | None]:
    """Indexes whose markers hold here, those undecidable here, and (graph) those reached."""
    env = _marker_env(lock, base, taken)
    reached = (
        _walk(lock, env, tuple(sorted(taken.groups)), tuple(sorted(taken.extras)))
        if lock.roots is not None
        else None
    )
    here: set[int] = set()
    undecided: set[int] = set()
    for index, package in enumerate(lock.packages):
        if not package.installable or not _chosen(package, taken):
            continue
        if reached is not None and index not in reached:
            continue
        applies = _applies(package, env, lock.marker_context)
        if applies is True:
            here.add(index)
        elif applies is None:
            undecided.add(index)
    return here, undecided, reached


def _not_taken(
    lock: ForeignLock, env: Mapping[str, Any], taken: _Taken, here: set[int]
) -> dict[str, str]:
    """Names locked here only for an extra or group that was not taken, with which ones."""
    found: dict[str, list[str]] = {}
    here_names = {lock.packages[i].name for i in here}
    trials = [
        (f"group {g!r}", replace(taken, groups=taken.groups | {g}))
        for g in sorted(set(lock.group_names) - taken.groups)
    ]
    if not taken.every_extra:
        trials += [
            (f"extra {e!r}", replace(taken, extras=taken.extras | {e}))
            for e in sorted(set(lock.extra_names) - taken.extras)
        ]
        trials.append(("an extra", replace(taken, every_extra=True)))
    for label, trial in trials:
        more, _, _ = _take(lock, env, trial)
        for index in sorted(more - here):
            name = lock.packages[index].name
            if name in here_names:
                continue
            labels = found.setdefault(name, [])
            if label == "an extra" and labels:
                continue
            if label not in labels:
                labels.append(label)
    return {name: " or ".join(labels) for name, labels in found.items()}


def _applies(package: LockedPackage, env: Mapping[str, Any], context: str) -> bool | None:
    if package.requires_python is not None and not _python_ok(package.requires_python, env):
        return False
    if package.marker is None:
        return True
    return _evaluate(package.marker, env, context)


def _walk(
    lock: ForeignLock,
    env: Mapping[str, Any],
    groups: Sequence[str],
    extras: Sequence[str],
) -> set[int]:
    """Package indexes reached from the roots through edges whose markers hold here.

    The roots' *extras* and every reached package's *groups* are followed (uv: the
    project's extras and dependency groups). An edge whose marker cannot be decided
    is not followed (fail closed: what it reaches is not accepted through it).
    """
    reached: set[int] = set()
    seen_extras: set[tuple[int, str]] = set()
    pending: list[Dependency] = [
        replace(root, extras=(*root.extras, *extras)) for root in lock.roots or ()
    ]
    while pending:
        edge = pending.pop()
        if edge.uncertain:
            continue
        if edge.marker is not None and _evaluate(edge.marker, env, lock.marker_context) is not True:
            continue
        for target in edge.targets:
            package = lock.packages[target]
            if target not in reached:
                reached.add(target)
                pending.extend(package.dependencies)
                for group in groups:
                    pending.extend(package.group_dependencies.get(group, ()))
            for extra in edge.extras:
                if (target, extra) not in seen_extras:
                    seen_extras.add((target, extra))
                    pending.extend(package.optional_dependencies.get(extra, ()))
    return reached


# ---------------------------------------------------------------- reading helpers


class Problems:
    """Collects every problem of one file before raising once."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}" if where else message)

    def raise_if_any(self) -> None:
        if self.items:
            raise LockfileError(self.path, self.items)


def read_lock_text(path: Path, title: str) -> str:
    """The text of a lockfile, or a LockfileError that says why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LockfileNotFoundError(str(path), [f"{title} not found"]) from None
    except UnicodeDecodeError as exc:
        raise LockfileError(str(path), [f"not UTF-8 text: {exc}"]) from exc
    except OSError as exc:
        raise LockfileError(str(path), [f"cannot be read: {exc.strerror or exc}"]) from exc


def toml_document(text: str, source: str) -> dict[str, Any]:
    """A TOML lock's document, or a LockfileError naming the line and column of the problem."""
    from pytest_mlsupply.tomlfile import parse_toml

    document, problem = parse_toml(text)
    if document is None:
        raise LockfileError(source, [str(problem)])
    return document


def parse_marker(text: Any, where: str, problems: Problems) -> Marker | None:
    if text is None:
        return None
    if not isinstance(text, str):
        problems.add(where, f"marker must be a string, got {text!r}")
        return None
    if not text.strip():
        return None
    try:
        return Marker(text)
    except InvalidMarker as exc:
        problems.add(where, f"invalid environment marker {text!r}: {_first_line(exc)}")
        return None


_EXTRA_MARKER = re.compile(r"""\bextra (==|!=) (["'])([^"']*)\2""")
_EXTRA_MARKER_REVERSED = re.compile(r"""(["'])([^"']*)\1 (==|!=) extra\b""")


def parse_extras_marker(text: Any, where: str, problems: Problems) -> Marker | None:
    """A marker whose ``extra ==``/``!=`` tests are read as membership of the taken extras.

    uv and Poetry write ``extra == 'x'`` where several extras may be taken at once
    (uv's ``extra == 'extra-8-nanochat-cpu' and extra == 'extra-8-nanochat-gpu'``);
    a single ``extra`` value cannot say that, PEP 751's ``'x' in extras`` can. Evaluate
    the result in the lock-file context.
    """
    marker = parse_marker(text, where, problems)
    if marker is None:
        return None
    shown = str(marker)
    if "extra" not in shown:
        return marker
    rewritten = _EXTRA_MARKER.sub(
        lambda m: f'"{m.group(3)}" {"in" if m.group(1) == "==" else "not in"} extras', shown
    )
    rewritten = _EXTRA_MARKER_REVERSED.sub(
        lambda m: f'"{m.group(2)}" {"in" if m.group(3) == "==" else "not in"} extras', rewritten
    )
    # Any other use of ``extra`` is undefined in the lock-file context: the marker cannot be
    # decided, so it neither reaches nor accepts anything (fail closed).
    return parse_marker(rewritten, where, problems)


def parse_specifier(text: Any, where: str, problems: Problems) -> SpecifierSet | None:
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        problems.add(where, f"expected a version specifier string, got {text!r}")
        return None
    try:
        specifiers = SpecifierSet(text)
    except InvalidSpecifier:
        problems.add(where, f"invalid version specifier {text!r}")
        return None
    for specifier in specifiers:
        too_long = version_problem(specifier.version)
        if too_long:  # compared with int() later, which raises past 4,300 digits
            problems.add(where, f"in the version specifier: {too_long}")
            return None
    return specifiers


def parse_version(text: Any, where: str, problems: Problems) -> str | None:
    if not isinstance(text, str) or not text.strip():
        problems.add(where, f"expected a version string, got {text!r}")
        return None
    too_long = version_problem(text)
    if too_long:
        problems.add(where, too_long)
        return None
    try:
        Version(text)
    except InvalidVersion:
        problems.add(where, f"invalid version {text!r} (not PEP 440)")
        return None
    return text.strip()


def parse_digest(text: Any, where: str, problems: Problems, separator: str = ":") -> Digest | None:
    """``alg:hex`` (or ``alg=hex`` with *separator*) as a Digest, or a problem."""
    if not isinstance(text, str):
        problems.add(where, f"expected a hash string, got {text!r}")
        return None
    algorithm, sep, value = text.strip().partition(separator)
    try:
        if not sep:
            raise DigestError(f"expected 'algorithm{separator}hex'")
        return Digest.parse(f"{algorithm}:{value}")
    except DigestError as exc:
        problems.add(where, f"invalid hash {text!r}: {exc}")
        return None


# RFC 3339 section 5.6 (date-time), with the offset optional as TOML's local date-time. Parsed
# here rather than by ``datetime.fromisoformat``, whose grammar differs between Pythons: 3.10
# rejects the two-digit fractions uv writes ("...:59.05Z"), 3.11+ also accepts non-RFC forms
# ("20250908T230759", "...,05"). One grammar keeps a lock's meaning the same on every Python.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))?",
    re.ASCII,
)


def _rfc3339(text: str) -> datetime | None:
    """An RFC 3339 date-time (fractions past microseconds cut, as TOML readers do), or None."""
    from datetime import timedelta, timezone

    found = _RFC3339.fullmatch(text)
    if found is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = found.groups()
    tz: timezone | None = timezone.utc if zulu else None
    try:
        if sign:
            if int(off_m) > 59:
                return None
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            tz = timezone(-offset if sign == "-" else offset)
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tz
        )
    except ValueError:  # month 13, hour 24, offset 24:00 and the like
        return None


def parse_upload_time(value: Any, where: str, problems: Problems) -> datetime | None:
    """A TOML datetime or an RFC 3339 string (uv writes strings), made timezone-aware."""
    from datetime import timezone

    if value is None:
        return None
    if isinstance(value, datetime):
        parsed: datetime | None = value
    elif isinstance(value, str):
        parsed = _rfc3339(value.strip())
    else:
        parsed = None
    if parsed is None:
        problems.add(where, f"invalid upload-time {value!r} (expected an RFC 3339 date-time)")
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def filename_of(url: str | None, fallback: str = "") -> str:
    if not url:
        return fallback
    from urllib.parse import unquote

    # The query and fragment cut off by hand: urlsplit raised ValueError on a hostile URL
    # ("https://[x/a.whl?y") and its clean-up of tabs and newlines differs between patch releases.
    path = url.partition("#")[0].partition("?")[0]
    name = path.rsplit("/", 1)[-1]
    return (unquote(name) if "%" in name else name) or fallback


def archive_source(url: str | None, hashes: Sequence[Digest]) -> Source:
    """An archive (URL or path) source; the first sha256 (else any) hash identifies it."""
    chosen = next((d for d in hashes if d.algorithm == "sha256"), hashes[0] if hashes else None)
    from pytest_mlsupply.sources import ARCHIVE

    return Source(ARCHIVE, url=url, archive_hash=str(chosen) if chosen else None)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def load_foreign_lock(path: Path, lock_format: str) -> ForeignLock:
    """Read *path* as *lock_format* (not ``mlsupply``); LockfileError names every problem."""
    if lock_format == FORMAT_PYLOCK:
        from pytest_mlsupply.locks.pylock import load_pylock

        return load_pylock(path)
    if lock_format == FORMAT_REQUIREMENTS:
        from pytest_mlsupply.locks.requirements import load_requirements

        return load_requirements(path)
    if lock_format == FORMAT_UV:
        from pytest_mlsupply.locks.uvlock import load_uv_lock

        return load_uv_lock(path)
    if lock_format == FORMAT_POETRY:
        from pytest_mlsupply.locks.poetry import load_poetry_lock

        return load_poetry_lock(path)
    if lock_format == FORMAT_PIPFILE:
        from pytest_mlsupply.locks.pipfile import load_pipfile_lock

        return load_pipfile_lock(path)
    raise SettingsError(f"not a foreign lock format: {lock_format!r}")
