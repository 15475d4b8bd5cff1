"""The rules for locks other tools write: (snapshot, foreign lock) -> findings.

The comparison mirrors ``checks.check_environment`` for what these locks can
tell: which distributions, which versions, which sources, and when each
artifact was uploaded. They hold no digest of the installed files, so the
content comparison only exists with ``mlsupply.lock``; the installed-file
verification against RECORD runs the same either way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
from pytest_mlsupply.findings import Finding, Kind, Report, Severity
from pytest_mlsupply.hashing import Digest, DigestError
from pytest_mlsupply.installers import Commands, commands_for
from pytest_mlsupply.local_installs import local_tree
from pytest_mlsupply.locks import FORMAT_UV
from pytest_mlsupply.locks.foreign import ForeignLock, LockedPackage, select
from pytest_mlsupply.locks.project import Projects, local_folder, lock_folder, projects_beside
from pytest_mlsupply.snapshot import InstalledDistribution, Snapshot
from pytest_mlsupply.sources import ARCHIVE, INDEX, VCS, Source

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
) -> Report:
    """Compare *snapshot* with *lock*; every difference is a finding, never an exception."""
    findings: list[Finding] = []
    notes = list(lock.notes)
    shown = lock_path or lock.path
    selection = select(lock, environment)
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
    applicable: dict[str, list[LockedPackage]] = defaultdict(list)
    for package in (*selection.required, *selection.allowed):
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
    for dist in snapshot.distributions:
        entries = applicable.get(dist.name) or everywhere.get(dist.name, [])
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
            findings.append(_unexpected(dist, lock, commands))
            continue
        findings.extend(_compare(dist, entries, lock, shown, commands))
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
        findings.extend(
            too_new(
                (*selection.required, *selection.allowed),
                min_age_days,
                now or datetime.now(timezone.utc),
            )
        )
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


def _compare(
    dist: InstalledDistribution,
    entries: Sequence[LockedPackage],
    lock: ForeignLock,
    shown: str,
    commands: Commands,
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
    same_version = [
        e
        for e in entries
        if e.version is None or version_matches(dist.version, e.version, arbitrary=e.arbitrary)
    ]
    if pinned and not same_version:
        expected = _versions(entries)
        yield Finding.of(
            Kind.VERSION_CHANGED,
            name,
            f"{name} version differs from {lock.title}: locked {expected}, installed "
            f"{dist.version}",
            expected=expected,
            actual=dist.version,
            hint=f"{commands.install(name, pinned[0].version)} to restore, or update the lock",
            location=_where(shown, entries),
        )
        return
    candidates = same_version or list(entries)
    problems = [_source_problem(dist.source, e) for e in candidates]
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


def _source_problem(installed: Source, entry: LockedPackage) -> str | None:
    """None when *installed* is what *entry* locks, else what differs."""
    locked = entry.source
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


def too_new(
    packages: Iterable[LockedPackage], min_age_days: float, now: datetime
) -> Iterator[Finding]:
    """One finding per locked release with an artifact uploaded less than *min_age_days* ago.

    A release has a file per platform (torch: about twenty wheels, uploaded
    together); the finding names the newest one and counts the others.
    """
    cutoff = now - timedelta(days=min_age_days)
    recent: dict[tuple[str, str], list[tuple[datetime, str, LockedPackage]]] = {}
    for package in packages:
        for artifact in package.artifacts:
            uploaded = artifact.upload_time
            if uploaded is None or uploaded <= cutoff:
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
