"""The rules for locks other tools write: (snapshot, foreign lock) -> findings.

The comparison mirrors ``checks.check_environment`` for what these locks can
tell: which distributions, which versions, which sources, and when each
artifact was uploaded. They hold no digest of the installed files, so the
content comparison only exists with ``mlsupply.lock``; the installed-file
verification against RECORD runs the same either way.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, Specifier
from packaging.utils import canonicalize_name

from pytest_mlsupply.checks import (  # noqa: F401 - the project's strings are re-exported
    HINT_MISSING_PROJECT,
    HINT_PROJECT,
    PROJECT_IMPOSTOR,
    PROJECT_NOT_INSTALLED,
    PROJECT_UNDER_TEST,
    project_finding,
    project_not_installed,
    snapshot_findings,
    unlocked_startup_error,
)
from pytest_mlsupply.errors import RecordError
from pytest_mlsupply.findings import Finding, Kind, Report, Severity
from pytest_mlsupply.hashing import Digest, DigestError, hash_file
from pytest_mlsupply.installers import Commands, commands_for
from pytest_mlsupply.local_installs import local_tree
from pytest_mlsupply.locks import FORMAT_UV, Choice
from pytest_mlsupply.locks.foreign import ForeignLock, LockedPackage, select
from pytest_mlsupply.locks.project import Projects, local_folder, lock_folder, projects_beside
from pytest_mlsupply.record import INSTALLER_METADATA_FILES, parse_record, site_relative
from pytest_mlsupply.snapshot import InstalledDistribution, Snapshot
from pytest_mlsupply.sources import ARCHIVE, INDEX, VCS, Source, is_bare_path

LOCK_SUBJECT = "lock"

#: Installers a virtual environment is seeded with, and this plugin: never "unexpected".
INSTALLER_BASELINE = frozenset({"pip", "setuptools", "wheel", "distribute"})
PLUGIN_DISTRIBUTION = "pytest-mlsupply"
#: The start-up code the baseline may ship unlisted; anything else of theirs (a name is
#: easy to take) is an unlocked start-up hook like any other.
BASELINE_STARTUP = {
    PLUGIN_DISTRIBUTION: frozenset({"pytest11:mlsupply"}),
    "setuptools": frozenset({"distutils-precedence.pth"}),
}

NOTE_NO_CONTENT = (
    "{title} records no digest of installed files: versions and sources were compared, and "
    "every installed file was checked against its RECORD; for byte-level checks of the "
    "wheels themselves, write mlsupply.lock (`pytest --mlsupply-update-lock`) and gate on it"
)
NOTE_BASELINE = (
    "not reported as unexpected although not locked: {names} (installers and pytest-mlsupply "
    "with its own dependencies)"
)
MESSAGE_NOT_TAKEN = (
    "{name} {version} is installed, but {title} locks it here only for {reason}, which was "
    "not taken ({taken})"
)
HINT_NOT_TAKEN = (
    "if your install takes it, say so with --mlsupply-lock-extras / --mlsupply-lock-groups "
    "(ini: mlsupply_lock_extras / mlsupply_lock_groups); else remove {name}"
)
MESSAGE_ELSEWHERE = (
    "{name} {version} is installed, but {title} locks it only for other environments "
    "({where}), not for this one"
)
MESSAGE_UNDECIDED = (
    "{name} {version} is installed, but whether {title}'s entries for it apply here cannot be "
    "decided ({where}); an entry that cannot be evaluated never vouches for an install"
)
HINT_UNDECIDED = (
    "the marker needs a value this interpreter does not provide, or compares values it "
    "cannot: regenerate the lock with the tool that writes it"
)
MESSAGE_AMBIGUOUS = (
    "{title} has {count} entries for {name} that apply here, with different versions "
    "({versions}): an installer refuses such a lock, so the installed {version} is not "
    "vouched for"
)
HINT_AMBIGUOUS = "regenerate the lock with the tool that writes it"
MESSAGE_VERSION_ELSEWHERE = "; {version} is locked only for another environment ({where})"
LOCAL_ELSEWHERE = "locked as a local {kind} at {locked}, installed from {installed}"
HINT_NOT_APPLICABLE = (
    "run on an interpreter the lock was made for, or pass the lock for this platform with "
    "--mlsupply-lock"
)


def version_matches(installed: str, locked: str, *, arbitrary: bool = False) -> bool:
    """Whether *installed* satisfies the pin ``==locked`` (PEP 440).

    A lock saying ``2.9.1+cpu`` needs exactly that local label; a lock saying
    ``2.9.1`` accepts ``2.9.1+cpu`` too, as ``pip install torch==2.9.1`` would
    (PEP 440: a public-version ``==`` ignores local labels). ``===`` pins
    compare as strings.
    """
    if arbitrary:
        return installed.strip().lower() == locked.strip().lower()
    try:
        return Specifier(f"=={locked}").contains(installed, prereleases=True)
    except (InvalidSpecifier, ValueError):  # ValueError: an int() past 4,300 digits
        return installed.strip() == locked.strip()


def check_foreign_lock(
    snapshot: Snapshot,
    lock: ForeignLock,
    *,
    lock_path: str | None = None,
    environment: Mapping[str, str] | None = None,
    min_age_days: float | None = None,
    now: datetime | None = None,
    extras: Choice | None = None,
    groups: Choice | None = None,
) -> Report:
    """Compare *snapshot* with *lock*; every difference is a finding, never an exception.

    An installed distribution is compared with the entries that apply here only
    (issue 12): markers that hold, reached through edges that hold, of the extras and
    groups taken (*extras*/*groups*, default: what the lock's installer takes).
    """
    findings: list[Finding] = []
    notes = list(lock.notes)
    shown = lock_path or lock.path
    selection = select(lock, environment, extras=extras, groups=groups)
    if selection.not_applicable is not None:
        findings.append(
            Finding.of(
                Kind.LOCK_NOT_APPLICABLE,
                LOCK_SUBJECT,
                f"{shown} ({lock.title}) does not apply to this interpreter: "
                f"{selection.not_applicable}; nothing was compared with it",
                expected=selection.not_applicable.split(", this is")[0],
                actual=snapshot.interpreter.key,
                hint=HINT_NOT_APPLICABLE,
            )
        )
        findings.extend(snapshot_findings(snapshot))
        return Report.build(
            findings,
            lock_path=shown,
            distributions_checked=len(snapshot.distributions),
            environment=snapshot.interpreter.key,
            notes=notes,
        )
    notes.extend(selection.notes)
    if selection.taken and (lock.group_names or lock.extra_names):
        notes.append(selection.taken)
    undecided: dict[str, list[LockedPackage]] = defaultdict(list)
    for package in selection.undecided:
        undecided[package.name].append(package)
    applicable: dict[str, list[LockedPackage]] = defaultdict(list)
    for package in selection.here:
        applicable[package.name].append(package)
    everywhere: dict[str, list[LockedPackage]] = defaultdict(list)
    for package in lock.packages:
        if package.installable:
            everywhere[package.name].append(package)
    baseline = tool_baseline(snapshot)
    commands = commands_for(snapshot, lock.format)
    projects = projects_beside(lock)
    notes.extend(projects.notes)
    unlisted_baseline: list[str] = []
    accepted: list[LockedPackage] = []
    for dist in snapshot.distributions:
        entries = applicable.get(dist.name, [])
        # The project is absent from a Poetry lock and local in uv's; a lock naming an index
        # or archive for it (a built wheel under test) is compared as it says.
        if dist.name in projects.folders and all(e.source.is_local for e in entries):
            folder = projects.folders[dist.name]
            findings.append(project_finding(dist, folder, lock.title, commands))
            continue
        if not entries:
            if dist.name in baseline:
                allowed = BASELINE_STARTUP.get(dist.name, frozenset())
                unlisted = _unexpected(dist, lock, commands, allowed)
                if unlisted.severity is Severity.ERROR:
                    findings.append(unlisted)
                else:
                    unlisted_baseline.append(dist.name)
                continue
            findings.append(
                _not_here(
                    dist,
                    lock,
                    selection.not_taken,
                    everywhere,
                    shown,
                    selection.taken.split(": ", 1)[-1],
                    undecided.get(dist.name, ()),
                    commands,
                )
            )
            continue
        findings.extend(
            _compare(dist, entries, lock, shown, commands, everywhere.get(dist.name, []))
        )
        accepted.extend(
            e
            for e in entries
            if e.version is None or version_matches(dist.version, e.version, arbitrary=e.arbitrary)
        )
    installed = snapshot.by_name()
    required: dict[str, list[LockedPackage]] = defaultdict(list)
    for package in selection.required:
        required[package.name].append(package)
    development = {id(p) for p in selection.development}
    for name in sorted(set(required) - set(installed)):
        only_development = all(id(p) in development for p in required[name])
        findings.append(
            _missing(name, required[name], lock, shown, only_development, commands, projects)
        )
    if min_age_days is not None:
        # Only what is installed here, as the entry that applies here (issue 12).
        # The files that fit this interpreter, when it is the one checked (another one's
        # tags are not known here: every file of its releases counts).
        fits = None
        if environment is None:
            from packaging.tags import sys_tags

            fits = installable_here(frozenset(str(tag) for tag in sys_tags()))
        findings.extend(too_new(accepted, min_age_days, now or datetime.now(timezone.utc), fits))
    findings.extend(snapshot_findings(snapshot))
    if unlisted_baseline:
        notes.append(NOTE_BASELINE.format(names=", ".join(sorted(unlisted_baseline))))
    notes.append(NOTE_NO_CONTENT.format(title=lock.title))
    return Report.build(
        findings,
        lock_path=shown,
        distributions_checked=len(snapshot.distributions),
        environment=snapshot.interpreter.key,
        notes=notes,
    )


def _versions(entries: Iterable[LockedPackage]) -> str:
    versions = sorted({e.version for e in entries if e.version is not None})
    return " or ".join(versions) if versions else "a direct reference"


def _where(shown: str, entries: Sequence[LockedPackage]) -> str:
    spots = ", ".join(e.where for e in entries[:3] if e.where)
    return f"{shown} ({spots})" if spots else shown


def _unexpected(
    dist: InstalledDistribution,
    lock: ForeignLock,
    commands: Commands,
    allowed: frozenset[str] = frozenset(),
) -> Finding:
    finding = Finding.of(
        Kind.UNEXPECTED,
        dist.name,
        f"{dist.name} {dist.version} is installed but not in {lock.title}",
        expected="not installed",
        actual=dist.version,
        hint=f"{commands.uninstall(dist.name)}, or {commands.add_to_lock(dist.name)}",
        location=dist.metadata_path,
    )
    return unlocked_startup_error(finding, dist, allowed)


def _missing(
    name: str,
    entries: Sequence[LockedPackage],
    lock: ForeignLock,
    shown: str,
    development: bool,
    commands: Commands,
    projects: Projects,
) -> Finding:
    """An error; a warning when only a development group locks it (such groups may be skipped).

    The project under test gets its own wording and a hint to install it from its tree.
    """
    versions = _versions(entries)
    pinned = next((e.version for e in entries if e.version), None)
    if name in projects.folders and all(e.source.is_local for e in entries):
        return project_not_installed(name, projects.folders[name], commands, _where(shown, entries))
    if commands.sync() is not None:
        hint = commands.install(name, pinned)  # the lock's own tool: its sync restores it
    else:
        hint = f"{commands.install(name, pinned)} (or sync the environment from the lock)"
    groups = sorted({e.group for e in entries if e.group})
    where = ""
    if development:
        where = f" (development group {', '.join(groups)})" if groups else " (a development group)"
    finding = Finding.of(
        Kind.MISSING,
        name,
        f"{name} {versions} is locked for this interpreter in {lock.title}{where} but not "
        "installed",
        expected=versions,
        actual="not installed",
        hint=hint,
        location=_where(shown, entries),
    )
    return replace(finding, severity=Severity.WARNING) if development else finding


def _not_here(
    dist: InstalledDistribution,
    lock: ForeignLock,
    not_taken: Mapping[str, str],
    everywhere: Mapping[str, Sequence[LockedPackage]],
    shown: str,
    taken: str,
    undecided: Sequence[LockedPackage],
    commands: Commands,
) -> Finding:
    """*dist* is installed, and no entry that applies here locks it.

    An unlocked distribution that ships start-up code stays an error with that message;
    why the lock does not cover it here is added to it.
    """
    finding = _unexpected(dist, lock, commands)
    reason = not_taken.get(dist.name)
    elsewhere = everywhere.get(dist.name)
    if undecided:
        return replace(
            finding,
            severity=Severity.ERROR,
            message=MESSAGE_UNDECIDED.format(
                name=dist.name,
                version=dist.version,
                title=lock.title,
                where=_conditions(undecided),
            ),
            hint=HINT_UNDECIDED,
            location=_where(shown, undecided),
        )
    if reason is not None:
        why = MESSAGE_NOT_TAKEN.format(
            name=dist.name, version=dist.version, title=lock.title, reason=reason, taken=taken
        )
        finding = replace(finding, hint=HINT_NOT_TAKEN.format(name=dist.name))
    elif elsewhere:
        why = MESSAGE_ELSEWHERE.format(
            name=dist.name, version=dist.version, title=lock.title, where=_conditions(elsewhere)
        )
        finding = replace(finding, location=_where(shown, elsewhere))
    else:
        return finding
    if finding.severity is Severity.ERROR:
        return replace(finding, message=f"{finding.message} ({why})")
    return replace(finding, message=why)


def _conditions(entries: Sequence[LockedPackage]) -> str:
    """The versions and markers of entries that do not apply here, briefly."""
    parts = []
    for entry in entries[:3]:
        condition = str(entry.marker) if entry.marker is not None else "not reached here"
        parts.append(f"{entry.version or 'a direct reference'} where {condition}")
    more = len(entries) - 3
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _compare(
    dist: InstalledDistribution,
    entries: Sequence[LockedPackage],
    lock: ForeignLock,
    shown: str,
    commands: Commands,
    everywhere: Sequence[LockedPackage] = (),
) -> Iterator[Finding]:
    name = dist.name
    local = [e for e in entries if e.source.is_local]
    if dist.source.is_local and local:
        elsewhere = _local_elsewhere(dist, local, lock)
        if elsewhere is not None:
            yield Finding.of(
                Kind.SOURCE_CHANGED,
                name,
                f"{name} {dist.version} source differs from {lock.title}: {elsewhere}",
                expected="; ".join(sorted({_describe(e) for e in local})),
                actual=dist.source.describe(),
                hint=f"{commands.restore_source(name)}, or update the lock",
                location=dist.metadata_path,
            )
            return
        yield Finding.of(
            Kind.NOT_VERIFIABLE,
            name,
            f"{name} is installed from a local working tree ({dist.source.kind}), as the lock "
            "says; its version and files are the project's own and are not compared",
            location=dist.metadata_path,
        )
        return
    pinned = [e for e in entries if e.version is not None]
    versions = {_normalized(e.version) for e in pinned if e.version is not None}
    if len(versions) > 1:
        # Two entries that both apply here (a lock contradicting itself, or extras taken
        # that conflict): whichever the installed version matches, nothing vouches for it.
        yield replace(
            Finding.of(
                Kind.NOT_VERIFIABLE,
                name,
                MESSAGE_AMBIGUOUS.format(
                    title=lock.title,
                    count=len(entries),
                    name=name,
                    versions=", ".join(sorted(versions)),
                    version=dist.version,
                ),
                expected=_versions(entries),
                actual=dist.version,
                hint=HINT_AMBIGUOUS,
                location=_where(shown, entries),
            ),
            severity=Severity.ERROR,
        )
        return
    same_version = [
        e
        for e in entries
        if e.version is None or version_matches(dist.version, e.version, arbitrary=e.arbitrary)
    ]
    if pinned and not same_version:
        expected = _versions(entries)
        # The installed version may be the one locked for another Python or platform
        # (six 1.16.0 on 3.11 where 1.17.0 is locked for it): still a change here.
        other = [
            e
            for e in everywhere
            if all(e is not entry for entry in entries)
            and e.version is not None
            and version_matches(dist.version, e.version, arbitrary=e.arbitrary)
        ]
        elsewhere = (
            MESSAGE_VERSION_ELSEWHERE.format(version=dist.version, where=_conditions(other))
            if other
            else ""
        )
        yield Finding.of(
            Kind.VERSION_CHANGED,
            name,
            f"{name} version differs from {lock.title}: locked {expected} for this "
            f"environment, installed {dist.version}{elsewhere}",
            expected=expected,
            actual=dist.version,
            hint=f"{commands.install(name, pinned[0].version)} to restore, or update the lock",
            location=_where(shown, entries),
        )
        return
    candidates = same_version or list(entries)
    lock_dir = os.path.dirname(os.path.abspath(lock.path))
    problems = [_source_problem(dist.source, e, dist, lock_dir) for e in candidates]
    if all(problem is not None for problem in problems):
        expected = "; ".join(sorted({_describe(e) for e in candidates}))
        detail = next(p for p in problems if p)
        yield Finding.of(
            Kind.SOURCE_CHANGED,
            name,
            f"{name} {dist.version} source differs from {lock.title}: {detail}",
            expected=expected,
            actual=dist.source.describe(),
            hint=f"{commands.restore_source(name)}, or update the lock",
            location=dist.metadata_path,
        )


def _normalized(version: str) -> str:
    """``1.0`` and ``1.0.0`` are one version (PEP 440); what does not parse stays as written."""
    from packaging.utils import canonicalize_version

    try:
        return canonicalize_version(version)
    except ValueError:
        return version.strip()


def _local_elsewhere(
    dist: InstalledDistribution, local: Sequence[LockedPackage], lock: ForeignLock
) -> str | None:
    """None when *dist* is installed from a folder one of the *local* entries names.

    Only uv.lock records where a local entry lives (relative to the lock); for
    the other formats the kind alone is compared, as before.
    """
    if lock.format != FORMAT_UV or any(e.source.url is None for e in local):
        return None
    base = lock_folder(lock)
    folders = sorted({local_folder(e.source.url or ".", base) for e in local})
    if local_tree(dist) in folders:
        return None
    return LOCAL_ELSEWHERE.format(
        kind=local[0].source.kind, locked=" or ".join(folders), installed=dist.source.describe()
    )


def _describe(entry: LockedPackage) -> str:
    if entry.source.kind == INDEX:
        return "a package index"
    return entry.source.describe()


def _source_problem(
    installed: Source,
    entry: LockedPackage,
    dist: InstalledDistribution | None = None,
    lock_dir: str | None = None,
) -> str | None:
    """None when *installed* is what *entry* locks, else what differs."""
    locked = entry.source
    if (
        dist is not None
        and lock_dir is not None
        and installed.kind == ARCHIVE
        and not installed.archive_hash
        and locked.kind == ARCHIVE
        and locked.url
        and entry.hashes
        and installed.matches(locked)
    ):
        # uv records no hash of a local archive it installs: the file-name match above says
        # nothing of its content, so the archive the lock names is opened and compared.
        return local_archive_problem(dist, entry, lock_dir)
    if installed.kind == ARCHIVE and installed.archive_hash:
        try:
            digest = Digest.parse(installed.archive_hash)
        except DigestError:
            digest = None
        same_algorithm = [h for h in entry.hashes if digest and h.algorithm == digest.algorithm]
        if digest is not None and same_algorithm:
            if digest in same_algorithm:
                return None
            return (
                f"installed from an archive whose hash {installed.archive_hash} is none of the "
                f"{len(entry.hashes)} hashes the lock records"
            )
    if locked.kind == INDEX:
        if installed.kind == INDEX:
            return None
        if installed.kind == ARCHIVE and not entry.hashes:
            return None  # a pin without hashes says nothing about where the file came from
        return f"locked from a package index, installed from {installed.describe()}"
    if locked.kind == VCS:
        if installed.kind != VCS:
            return f"locked from {locked.describe()}, installed from {installed.describe()}"
        if locked.commit and installed.commit and locked.commit != installed.commit.lower():
            return f"locked at commit {locked.commit}, installed at commit {installed.commit}"
        return None
    if locked.kind == ARCHIVE:
        if installed.kind != ARCHIVE:
            return f"locked from {locked.describe()}, installed from {installed.describe()}"
        return (
            None
            if installed.matches(locked) or not locked.url
            else (f"locked from {locked.describe()}, installed from {installed.describe()}")
        )
    if locked.is_local:
        if installed.is_local:
            return None
        return f"locked as a local {locked.kind}, installed from {installed.describe()}"
    return None


#: What a finding says of a local archive a lock names by path that cannot be compared.
LOCAL_ARCHIVE_UNREADABLE = (
    "the installer recorded no hash of the archive it installed, and the archive the lock "
    "names ({path}) cannot be compared with it: {why}"
)
LOCAL_ARCHIVE_SWAPPED = (
    "the archive the lock names ({path}) has hash {actual}, none of the {count} hashes the lock "
    "records"
)
LOCAL_ARCHIVE_OTHER_FILES = (
    "the installed files are not the ones the locked archive ({path}) ships: the installed "
    "RECORD differs from the archive's at {file}"
)


def local_archive_problem(
    dist: InstalledDistribution, entry: LockedPackage, lock_dir: str
) -> str | None:
    """Whether *dist* was installed from the local wheel *entry* names by path.

    The wheel at the locked path must have a hash the lock records, and the
    files its RECORD lists (as installed into the site directory) must be the
    ones the installed RECORD lists; the installed files are verified against
    the installed RECORD as for every distribution. Anything that cannot be
    compared is a problem, never a pass.
    """
    from urllib.parse import unquote, urlsplit

    url = entry.source.url or ""
    if url.startswith("file:"):
        path = unquote(urlsplit(url).path)
    elif is_bare_path(url):
        path = url
    else:
        return LOCAL_ARCHIVE_UNREADABLE.format(path=url, why="it is not a local path")
    path = os.path.normpath(os.path.join(lock_dir, path))
    try:
        actual = hash_file(path)
    except (OSError, ValueError) as exc:
        return LOCAL_ARCHIVE_UNREADABLE.format(path=path, why=_reason(exc))
    same_algorithm = [h for h in entry.hashes if h.algorithm == actual.algorithm]
    if actual not in same_algorithm:
        return LOCAL_ARCHIVE_SWAPPED.format(path=path, actual=actual, count=len(entry.hashes))
    try:
        shipped = wheel_rows(path)
        installed = _installed_rows(dist)
    except (OSError, ValueError, RecordError) as exc:
        return LOCAL_ARCHIVE_UNREADABLE.format(path=path, why=_reason(exc))
    metadata_dir = os.path.basename(dist.metadata_path)
    for file, digest in shipped.items():
        if installed.get(file) != digest:
            return LOCAL_ARCHIVE_OTHER_FILES.format(path=path, file=file)
    for file in installed.keys() - shipped.keys():
        if not _installer_written(file, metadata_dir):
            return LOCAL_ARCHIVE_OTHER_FILES.format(path=path, file=file)
    return None


#: Files installers add to ``*.dist-info`` that no wheel ships: the spec's, and uv's own
#: record of a local source (``uv_cache.json``).
_INSTALLER_WRITTEN = INSTALLER_METADATA_FILES | {"uv_cache.json"}


def _installer_written(file: str, metadata_dir: str) -> bool:
    folder, _, name = file.rpartition("/")
    if folder == metadata_dir and name in _INSTALLER_WRITTEN:
        return True
    return file.endswith((".pyc", ".pyo")) or "__pycache__/" in f"/{file}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _comparable_hash(text: str) -> str:
    algorithm, _, value = text.partition("=")
    return f"{algorithm.lower()}={value.rstrip('=')}"


def _installed_rows(dist: InstalledDistribution) -> dict[str, str]:
    """Site-relative path -> hash of the installed RECORD's rows inside the site directory."""
    from pytest_mlsupply.limits import MAX_RECORD_BYTES

    record = os.path.join(dist.metadata_path, "RECORD")
    if os.path.getsize(record) > MAX_RECORD_BYTES:
        raise ValueError("its RECORD is larger than any real one")
    with open(record, encoding="utf-8") as stream:
        rows = parse_record(stream.read(), record, dist.location)
    found: dict[str, str] = {}
    for row in rows:
        relative = site_relative(row.path, dist.location)
        if relative is not None:
            found[relative] = _comparable_hash(row.hash)
    return found


def wheel_rows(path: str) -> dict[str, str]:
    """Site-relative path -> hash of the files a wheel installs into the site directory.

    ``NAME.data/purelib/`` and ``platlib/`` land in the site directory itself;
    the other ``.data`` schemes (scripts, headers, data) land outside it, as do
    the rows installers leave out. Raises ValueError for an archive that is not
    a wheel with one RECORD.
    """
    import zipfile
    import zlib

    from pytest_mlsupply.limits import MAX_RECORD_BYTES

    try:
        with zipfile.ZipFile(path) as archive:
            records = [
                info
                for info in archive.infolist()
                if info.filename.count("/") == 1 and info.filename.endswith(".dist-info/RECORD")
            ]
            if len(records) != 1:
                raise ValueError(f"a wheel has one *.dist-info/RECORD, this has {len(records)}")
            if records[0].file_size > MAX_RECORD_BYTES:
                raise ValueError("its RECORD is larger than any real one")
            text = archive.read(records[0]).decode("utf-8")
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        # A damaged or hostile archive raises any of these from zipfile; none is a pass.
        raise ValueError(f"not a readable wheel: {exc}") from exc
    metadata_dir = records[0].filename.rpartition("/")[0]
    found: dict[str, str] = {}
    for row in parse_record(text, f"{path}!{metadata_dir}/RECORD"):
        file = row.path
        head, sep, rest = file.partition("/")
        if sep and head.endswith(".data"):
            scheme, sep, file = rest.partition("/")
            if scheme not in ("purelib", "platlib") or not sep:
                continue
        relative = site_relative(file)
        if relative is None or _installer_written(relative, metadata_dir):
            continue
        found[relative] = _comparable_hash(row.hash)
    return found


def installable_here(tags: frozenset[str]) -> Callable[[str], bool]:
    """Whether a locked file could be what an installer put here: a wheel whose tags this
    interpreter supports (*tags*, from ``packaging.tags.sys_tags``), or anything else
    (an sdist, an archive, a wheel name that cannot be read: kept, fail closed)."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    def fits(filename: str) -> bool:
        if not filename.endswith(".whl"):
            return True
        try:
            _, _, _, wheel_tags = parse_wheel_filename(filename)
        except (InvalidWheelFilename, ValueError):
            return True
        return any(str(tag) in tags for tag in wheel_tags)

    return fits


def too_new(
    packages: Iterable[LockedPackage],
    min_age_days: float,
    now: datetime,
    fits: Callable[[str], bool] | None = None,
) -> Iterator[Finding]:
    """One finding per locked release with an artifact uploaded less than *min_age_days* ago.

    A release has a file per platform (torch: about twenty wheels, uploaded
    together); the finding names the newest one and counts the others. With
    *fits*, only the files that could have been installed here count.
    """
    cutoff = now - timedelta(days=min_age_days)
    recent: dict[tuple[str, str], list[tuple[datetime, str, LockedPackage]]] = {}
    for package in packages:
        for artifact in package.artifacts:
            uploaded = artifact.upload_time
            if uploaded is None or uploaded <= cutoff:
                continue
            if fits is not None and not fits(artifact.filename):
                continue
            files = recent.setdefault((package.name, package.version or ""), [])
            if all(name != artifact.filename for _, name, _ in files):
                files.append((uploaded, artifact.filename, package))
    for (name, version), files in sorted(recent.items()):
        uploaded, filename, package = max(files, key=lambda item: (item[0], item[1]))
        days = (now - uploaded).total_seconds() / 86400
        when = (
            f"{days:.1f} days before this run"
            if days >= 0
            else "after this run's clock time (a wrong clock, or a forged time)"
        )
        others = len(files) - 1
        also = f"; {others} other file{'s' if others != 1 else ''} of it too" if others else ""
        yield Finding.of(
            Kind.TOO_NEW,
            name,
            f"{name} {version}: {filename} was uploaded {uploaded.isoformat()} ({when}), less "
            f"than the minimum age of {min_age_days:g} days{also}",
            expected=f"uploaded before {cutoff.isoformat()}",
            actual=uploaded.isoformat(),
            hint="wait until the release has aged (compromised releases are usually "
            "pulled within days), or lock an older version",
            location=package.where or None,
        )


def tool_baseline(snapshot: Snapshot) -> frozenset[str]:
    """Installers and this plugin with its dependency closure, as installed here.

    A project's lock rarely lists the test tooling that runs the gate; these
    are not reported as unexpected when the lock does not name them (their
    installed files are still verified against RECORD).
    """
    names = set(INSTALLER_BASELINE)
    env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    env["extra"] = ""
    path = list(snapshot.search_path)
    pending = [canonicalize_name(PLUGIN_DISTRIBUTION)]
    while pending:
        name = pending.pop()
        if name in names:
            continue
        names.add(name)
        dist = next(iter(metadata.distributions(name=name, path=path)), None)
        for text in (dist.requires or []) if dist is not None else []:
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue
            if requirement.marker is not None and not requirement.marker.evaluate(env):
                continue
            pending.append(canonicalize_name(requirement.name))
    return frozenset(names)
