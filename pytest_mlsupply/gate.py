"""The whole check in one call, shared by the pytest plugin and the command line."""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from pytest_mlsupply.checks import check_environment
from pytest_mlsupply.findings import Finding, Kind, Report, Severity
from pytest_mlsupply.locks import FORMAT_MLSUPPLY, Choice, detect_format
from pytest_mlsupply.locks.mlsupply_lock import Lock, load_lock, refresh_lock, write_lock
from pytest_mlsupply.snapshot import InstalledDistribution, Interpreter, Snapshot, take_snapshot

if TYPE_CHECKING:
    from pytest_mlsupply.hashcache import RecordCache
    from pytest_mlsupply.knownbad import KnownBadConfig
    from pytest_mlsupply.locks.foreign import ForeignLock
    from pytest_mlsupply.shadowing import ImportIndex
    from pytest_mlsupply.verify import Ownership


@dataclass(frozen=True)
class GateResult:
    report: Report
    lock_written: bool
    #: The file written when it is not the lock checked (a foreign lock is never rewritten).
    written_path: str | None = None
    #: Installed import names and where they may come from, when *import_path* was given
    #: (the plugin compares ``sys.modules`` with it after collection).
    imports: ImportIndex | None = None


def display_path(path: Path, base: Path) -> str:
    """*path* relative to *base* when it lies below it, else absolute."""
    return os.path.relpath(path, base) if path.is_relative_to(base) else str(path)


def run_gate(
    lock_path: Path,
    *,
    update: bool = False,
    search_path: Sequence[str] | None = None,
    base: Path | None = None,
    verify_files: bool = True,
    cache_dir: Path | None = None,
    rehash: bool = False,
    progress: Callable[[int, int], None] | None = None,
    waivers: Path | None = None,
    today: datetime.date | None = None,
    lock_format: str | None = None,
    min_age_days: float | None = None,
    now: datetime.datetime | None = None,
    lock_extras: Choice | None = None,
    lock_groups: Choice | None = None,
    known_bad: KnownBadConfig | None = None,
    import_path: Sequence[str] | None = None,
    pinned_imports: Sequence[tuple[str, str]] = (),
    interpreter: Interpreter | None = None,
    markers: Mapping[str, str] | None = None,
) -> GateResult:
    """Snapshot the environment, refresh the lock if asked, compare, verify installed files.

    Raises LockfileError for a missing or malformed lock; refreshing never
    overwrites a malformed lock (it may hold a merge conflict worth keeping).
    Caches in *cache_dir* speed up re-runs of the file verification; *rehash*
    ignores what they hold (and writes them afresh). The *waivers* file is read
    before any work, so a malformed one stops the run at once. With
    *import_path* (the path imports will search, in order), a module on it
    found before an installed distribution's own is an error, as is one of
    *pinned_imports* (name, folder) outside its distribution. *interpreter*
    and *markers* describe the checked interpreter when it is not this one.
    """
    from pytest_mlsupply.waivers import Waiver, apply_waivers, load_waivers

    accepted: tuple[Waiver, ...] = ()
    if waivers is not None:
        accepted = load_waivers(waivers, shown=display_path(waivers, base) if base else None)
    record_cache = _record_cache(cache_dir, rehash) if verify_files else None
    snapshot = take_snapshot(
        search_path, keep_rows=verify_files, record_cache=record_cache, interpreter=interpreter
    )
    shown = display_path(lock_path, base) if base else str(lock_path)
    fmt = detect_format(lock_path, lock_format)
    written: str | None = None
    foreign: ForeignLock | None = None
    if fmt != FORMAT_MLSUPPLY:
        report, written, foreign = _foreign_gate(
            snapshot,
            lock_path,
            fmt,
            shown,
            update,
            base,
            min_age_days,
            now,
            markers,
            (lock_extras, lock_groups),
        )
        locked = frozenset(package.name for package in foreign.packages)
    else:
        if update:
            previous = load_lock(lock_path) if lock_path.exists() else None
            lock = refresh_lock(previous, snapshot)
            write_lock(lock_path, lock)
        else:
            lock = load_lock(lock_path)
        from pytest_mlsupply.locks.project import projects_in

        projects = projects_in(str(lock_path.parent))  # the project beside the lock
        report = check_environment(snapshot, lock, lock_path=shown, projects=projects)
        locked = frozenset(canonicalize_name(dist.name) for dist in lock.distributions)
        if min_age_days is not None:
            report = _add_notes(report, [NOTE_MIN_AGE_MLSUPPLY])
    report = _with_launch_directory(report, snapshot)
    ownership: Ownership | None = None
    if verify_files:
        report, ownership = _with_file_verification(
            report, snapshot, cache_dir, rehash, progress, record_cache, locked
        )
        report = _with_startup_modules(report, snapshot, ownership)
        report = _with_launchers_judged(report, snapshot)
    imports: ImportIndex | None = None
    if import_path is not None:
        report, imports = _with_shadowing(
            report, snapshot, ownership, import_path, base, pinned_imports
        )
    if known_bad is not None:
        report = _with_known_bad(report, snapshot, known_bad, base, cache_dir, rehash, foreign)
    if accepted:
        report = apply_waivers(report, accepted, today=today or datetime.date.today())
    if fmt != FORMAT_MLSUPPLY:
        return GateResult(
            report, lock_written=written is not None, written_path=written, imports=imports
        )
    return GateResult(report, lock_written=update, imports=imports)


def _with_startup_modules(report: Report, snapshot: Snapshot, ownership: Ownership) -> Report:
    """Add ``sitecustomize``/``usercustomize`` found off the site directories (a ``.pth``
    path line or ``PYTHONPATH`` leading ``site`` to them) that no RECORD vouches for."""
    from pytest_mlsupply.shadowing import find_startup_modules
    from pytest_mlsupply.verify import site_directories

    found = find_startup_modules(snapshot.search_path, ownership.files, site_directories(snapshot))
    return _with_findings(report, found)


#: The launchers pip (distlib) and uv write for a ``console_scripts`` or ``gui_scripts``
#: entry point, after the shebang line an installer or relocation tool rewrites.
_LAUNCHER = re.compile(
    r"(?:# -\*- coding: utf-8 -\*-\n)?"
    r"import (?:re\nimport )?sys\nfrom (?P<module>[\w.]+) import (?P<name>\w+)\n"
    r"if __name__ == (?P<q>['\"])__main__(?P=q):\n"
    r"(?:"
    # pip (distlib)
    r"    sys\.argv\[0\] = re\.sub\(r'\(-script\\\.pyw\|\\\.exe\)\?\$', '', sys\.argv\[0\]\)\n"
    r"|"
    # pip 26
    r"    sys\.argv\[0\] = sys\.argv\[0\]\.removesuffix\('\.exe'\)\n"
    r"|"
    # uv
    r"    if sys\.argv\[0\]\.endswith\(\"-script\.pyw\"\):\n"
    r"        sys\.argv\[0\] = sys\.argv\[0\]\[:-11\]\n"
    r"    elif sys\.argv\[0\]\.endswith\(\"\.exe\"\):\n"
    r"        sys\.argv\[0\] = sys\.argv\[0\]\[:-4\]\n"
    r")"
    r"    sys\.exit\((?P<call>(?P=name)(?:\.\w+)*)\(\)\)\n?",
)
#: The largest launcher read back (pip's and uv's are a few hundred bytes).
_LAUNCHER_MAX_BYTES = 4096
NOT_A_LAUNCHER = (
    " and is not the launcher an installer writes for one of its entry points: it runs "
    "whatever it holds when the command is started"
)


def _with_launchers_judged(report: Report, snapshot: Snapshot) -> Report:
    """A changed file outside the site directory is a warning only when it is a plain launcher.

    Installers and relocation tools rewrite a console script's shebang, so its
    bytes differ from RECORD; but a script in ``bin/`` runs before any check
    (``bin/pytest`` starts the gated run itself). A changed one stays a warning
    only when, after its first line, it is exactly the launcher pip or uv write
    for one of the distribution's declared entry points; anything else is an error.
    """
    by_name = snapshot.by_name()
    changed = False
    findings: list[Finding] = []
    for finding in report.findings:
        if (
            finding.kind is Kind.FILE_MODIFIED
            and finding.severity is Severity.WARNING
            and finding.location
            and not _is_plain_launcher(finding.location, by_name.get(finding.subject))
        ):
            finding = dataclasses.replace(
                finding,
                severity=Severity.ERROR,
                message=finding.message + NOT_A_LAUNCHER,
            )
            changed = True
        findings.append(finding)
    if not changed:
        return report
    return _rebuilt(report, findings)


def _is_plain_launcher(path: str, dist: InstalledDistribution | None) -> bool:
    """Whether *path*, after its shebang, is a pip/uv launcher of one of *dist*'s entry points."""
    if dist is None:
        return False
    try:
        with open(path, "rb") as stream:
            data = stream.read(_LAUNCHER_MAX_BYTES + 1)
    except (OSError, ValueError):
        return False
    if len(data) > _LAUNCHER_MAX_BYTES or not data.startswith(b"#!"):
        return False
    try:
        text = data.decode("utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError:
        return False
    _shebang, _, body = text.partition("\n")
    match = _LAUNCHER.fullmatch(body)
    if match is None:
        return False
    target = f"{match['module']}:{match['call']}"
    return target in _script_entry_points(dist)


def _script_entry_points(dist: InstalledDistribution) -> set[str]:
    """The ``module:attr`` targets of *dist*'s ``console_scripts`` and ``gui_scripts``."""
    import configparser

    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        with open(os.path.join(dist.metadata_path, "entry_points.txt"), encoding="utf-8") as stream:
            parser.read_file(stream)
    except (OSError, ValueError, configparser.Error):
        return set()
    targets: set[str] = set()
    for group in ("console_scripts", "gui_scripts"):
        if parser.has_section(group):
            for value in parser[group].values():
                targets.add(value.split("[", 1)[0].strip().replace(" ", ""))
    return targets


def _with_shadowing(
    report: Report,
    snapshot: Snapshot,
    ownership: Ownership | None,
    import_path: Sequence[str],
    base: Path | None,
    pinned_imports: Sequence[tuple[str, str]] = (),
) -> tuple[Report, ImportIndex]:
    """Add ``import-shadowed`` findings: modules found before an installed distribution's."""
    from pytest_mlsupply.shadowing import build_index, find_shadowing
    from pytest_mlsupply.verify import ownership_index

    if ownership is None:
        ownership = ownership_index(snapshot.distributions)
    index = build_index(snapshot, ownership.dist_tops, rootdir=base)
    found = find_shadowing(index, import_path, pinned=pinned_imports)
    if not found:
        return report, index
    return _with_findings(report, found), index


NOTE_FOREIGN_NOT_REWRITTEN = (
    "{lock} is a {title} and is never rewritten; --mlsupply-update-lock wrote {written} from "
    "this environment instead (gate on it with --mlsupply-lock {written} for byte-level checks)"
)
NOTE_MIN_AGE_MLSUPPLY = (
    "mlsupply.lock records no upload times; the minimum age applies to pylock.toml and uv.lock"
)


def _foreign_gate(
    snapshot: Snapshot,
    lock_path: Path,
    fmt: str,
    shown: str,
    update: bool,
    base: Path | None,
    min_age_days: float | None,
    now: datetime.datetime | None,
    markers: Mapping[str, str] | None = None,
    taken: tuple[Choice | None, Choice | None] = (None, None),
) -> tuple[Report, str | None, ForeignLock]:
    """Check against a foreign lock; with *update*, write mlsupply.lock beside it instead."""
    from pytest_mlsupply.foreign_checks import check_foreign_lock
    from pytest_mlsupply.locks.foreign import load_foreign_lock
    from pytest_mlsupply.settings import DEFAULT_LOCK_NAME

    foreign = load_foreign_lock(lock_path, fmt)
    own_path = lock_path.parent / DEFAULT_LOCK_NAME
    own = load_lock(own_path) if own_path.exists() and not update else None
    report = check_foreign_lock(
        snapshot,
        foreign,
        lock_path=shown,
        environment=markers,
        min_age_days=min_age_days,
        now=now,
        extras=taken[0],
        groups=taken[1],
    )
    if own is not None:
        report = _with_content_from(report, snapshot, own, own_path, base)
    if not update:
        return report, None, foreign
    previous = load_lock(own_path) if own_path.exists() else None
    write_lock(own_path, refresh_lock(previous, snapshot))
    written = display_path(own_path, base) if base else str(own_path)
    note = NOTE_FOREIGN_NOT_REWRITTEN.format(lock=shown, title=foreign.title, written=written)
    return _add_notes(report, [note]), written, foreign


NOTE_CONTENT_ALONGSIDE = (
    "content digests compared with {own}, beside the foreign lock (byte-level check of every "
    "distribution it locks)"
)


def _with_content_from(
    report: Report, snapshot: Snapshot, own: Lock, own_path: Path, base: Path | None
) -> Report:
    """Add the content findings of mlsupply.lock kept beside a foreign lock.

    Only ``content-changed`` is taken from it: versions, sources and missing
    or unexpected distributions are the foreign lock's to decide, so the two
    never report one difference twice.
    """
    from pytest_mlsupply.findings import Kind
    from pytest_mlsupply.foreign_checks import NOTE_NO_CONTENT

    shown = display_path(own_path, base) if base else str(own_path)
    content = [
        f
        for f in check_environment(snapshot, own, lock_path=shown).findings
        if f.kind is Kind.CONTENT_CHANGED
    ]
    prefix = NOTE_NO_CONTENT.split("{title}")[1][:30]
    notes = [n for n in report.notes if prefix not in n]
    return Report.build(
        [*report.findings, *content],
        lock_path=report.lock_path,
        distributions_checked=report.distributions_checked,
        environment=report.environment,
        notes=[*notes, NOTE_CONTENT_ALONGSIDE.format(own=shown)],
        stats=report.stats,
    )


def _with_launch_directory(report: Report, snapshot: Snapshot) -> Report:
    """Add pytest plugins in the current directory, which ``python -m pytest`` would load."""
    from pytest_mlsupply.checks import launch_directory_findings

    try:
        directory = os.getcwd()
    except OSError:  # removed under us: nothing can be loaded from it either
        return report
    found = list(launch_directory_findings(directory, snapshot))
    return _with_findings(report, found)


def _rebuilt(report: Report, findings: Sequence[Finding]) -> Report:
    """*report* with *findings* in place of its own; everything else kept."""
    return Report.build(
        findings,
        lock_path=report.lock_path,
        distributions_checked=report.distributions_checked,
        environment=report.environment,
        notes=report.notes,
        stats=report.stats,
    )


def _with_findings(report: Report, found: Sequence[Finding]) -> Report:
    """*report* with *found* added (the same report when there is nothing to add)."""
    return _rebuilt(report, [*report.findings, *found]) if found else report


def _add_notes(report: Report, notes: Sequence[str]) -> Report:
    return Report.build(
        report.findings,
        lock_path=report.lock_path,
        distributions_checked=report.distributions_checked,
        environment=report.environment,
        notes=[*report.notes, *notes],
        stats=report.stats,
    )


def _with_known_bad(
    report: Report,
    snapshot: Snapshot,
    config: KnownBadConfig,
    base: Path | None,
    cache_dir: Path | None,
    rehash: bool,
    foreign: ForeignLock | None,
) -> Report:
    from pytest_mlsupply.knownbad import run_known_bad

    result = run_known_bad(
        config,
        snapshot,
        report.findings,
        base=base,
        cache_dir=cache_dir,
        rebuild=rehash,
        lock=foreign,
        lock_shown=report.lock_path or "",
    )
    return Report.build(
        [*report.findings, *result.findings],
        lock_path=report.lock_path,
        distributions_checked=report.distributions_checked,
        environment=report.environment,
        notes=[*report.notes, *result.notes],
        stats={**report.stats, **result.stats},
    )


def _record_cache(cache_dir: Path | None, rehash: bool) -> RecordCache | None:
    """What earlier runs read from each RECORD (empty with *rehash*); None without a cache."""
    if cache_dir is None:
        return None
    from pytest_mlsupply.hashcache import RecordCache
    from pytest_mlsupply.verify import RECORD_CACHE_FILE

    return RecordCache() if rehash else RecordCache.load(cache_dir / RECORD_CACHE_FILE)


def _with_file_verification(
    report: Report,
    snapshot: Snapshot,
    cache_dir: Path | None,
    rehash: bool,
    progress: Callable[[int, int], None] | None,
    record_cache: RecordCache | None = None,
    locked: frozenset[str] | None = None,
) -> tuple[Report, Ownership]:
    """Verify installed files; with *locked* (canonical names), unlocked distributions
    may not vouch for files in a locked distribution's folder."""
    from pytest_mlsupply.local_installs import find_local_overreach
    from pytest_mlsupply.verify import (
        RECORD_CACHE_FILE,
        find_intruders,
        find_unowned_code,
        verify_installed_files,
    )

    findings, stats, ownership = verify_installed_files(
        snapshot,
        cache_dir=cache_dir,
        rehash=rehash,
        progress=progress,
        record_cache=record_cache,
    )
    if cache_dir is not None and record_cache is not None:
        try:
            record_cache.save(cache_dir / RECORD_CACHE_FILE)
        except OSError as exc:
            stats.notes.append(f"the record cache in {cache_dir} could not be written: {exc}")
    findings.extend(find_unowned_code(snapshot, ownership, cache_dir=cache_dir, rehash=rehash))
    if locked is not None:
        findings.extend(find_intruders(snapshot, ownership, locked))
    # A local install's RECORD is not pinned by the lock: it vouches only for its own names.
    findings.extend(find_local_overreach(snapshot, ownership))
    report = Report.build(
        [*report.findings, *findings],
        lock_path=report.lock_path,
        distributions_checked=report.distributions_checked,
        environment=report.environment,
        notes=[*report.notes, stats.note(), *stats.notes],
        stats={
            **report.stats,
            "files_verified": stats.files_verified,
            "files_from_cache": stats.from_cache,
            "bytes_hashed": stats.bytes_hashed,
            "verify_seconds": round(stats.seconds, 3),
        },
    )
    return report, ownership
