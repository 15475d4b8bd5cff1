"""The rules: (snapshot, lock) -> findings.

A mismatch is never an exception here; each one becomes a Finding whose
message says what differs and whose hint says how to restore or accept it.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import replace
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

from pytest_mlsupply.errors import RecordError
from pytest_mlsupply.findings import Finding, Kind, Report, Severity
from pytest_mlsupply.installers import Commands, commands_for
from pytest_mlsupply.limits import parse_version
from pytest_mlsupply.local_installs import local_tree
from pytest_mlsupply.locks.mlsupply_lock import (
    REFRESH_COMMAND,
    Lock,
    LockedDistribution,
)
from pytest_mlsupply.locks.project import Projects
from pytest_mlsupply.record import parse_record
from pytest_mlsupply.snapshot import (
    RECORD_MALFORMED,
    RECORD_MISSING,
    InstalledDistribution,
    Snapshot,
)

INTERPRETER_SUBJECT = "interpreter"

HINT_ACCEPT = f"if intended, accept it with `{REFRESH_COMMAND}`"

#: Why an unlocked distribution is an error, not a warning (issue item 6): its code runs
#: in every pytest run or interpreter start without anyone importing it, so it can
#: patch the gate that is about to judge it.
UNLOCKED_STARTUP_CODE = (
    "{what}; code that runs before or during pytest's start-up must be locked "
    "(it can rewrite the gate's verdict in-process)"
)
#: What ``startup_code`` says each kind of start-up code is.
STARTUP_PLUGIN = "ships a pytest11 plugin `{name}` that runs inside every pytest run"
STARTUP_PTH = "ships {path}, whose import lines run at every interpreter start"
STARTUP_MODULE = "ships {path}, which `site` imports at every interpreter start"
STARTUP_NO_RECORD = "has no readable RECORD, so what it runs at start-up cannot be told"
STARTUP_BAD_ENTRY_POINTS = (
    "its entry_points.txt cannot be read ({error}), so it may be a pytest plugin"
)
LAUNCH_DIR_PLUGIN = (
    "{name} {version} in {directory}, the directory pytest is started from, is not on the "
    "checked path, yet `python -m pytest` puts it first on sys.path and loads its pytest11 "
    "plugin {names} in every run"
)
SHADOWED_PLUGIN = (
    "pytest still loads its pytest11 plugin {names} from the hidden copy in every pytest run"
)
#: The project under test (issue 12, item 2): a local install of the folder its lock is in.
PROJECT_UNDER_TEST = (
    "{name} {version} is the project under test, installed from its working tree ({kind} "
    "install of {folder}); its version and files are the project's own and are not compared "
    "with {title}"
)
PROJECT_IMPOSTOR = (
    "{name} {version} has the name of the project under test but is installed from {source}, "
    "not from its working tree {folder}: a same-named distribution runs instead of the "
    "project (dependency confusion)"
)
HINT_MISSING_PROJECT = "install the project from its working tree: {install}"
PROJECT_NOT_INSTALLED = (
    "{name}, the project under test ({folder}), is locked but not installed, so its tests "
    "import it from wherever the import path leads"
)
HINT_PROJECT = (
    "remove it and install the project from its working tree ({install}), never from an index"
)
#: The entry-point group pytest loads plugins from, at every start-up (pluggy's
#: ``load_setuptools_entrypoints("pytest11")``).
PYTEST_PLUGIN_GROUP = "pytest11"
#: Modules ``site`` imports at every interpreter start when they are importable.
STARTUP_MODULES = ("sitecustomize", "usercustomize")


def _same_version(installed: str, locked: str) -> bool:
    """Version equality by PEP 440 (``1.0 == 1.0.0``; local labels such as ``+cpu`` count)."""
    left, right = parse_version(installed), parse_version(locked)
    if left is None or right is None:
        return installed == locked  # not PEP 440 (or over the length limit): exact text only
    return left == right


def check_environment(
    snapshot: Snapshot,
    lock: Lock,
    *,
    lock_path: str | None = None,
    projects: Projects | None = None,
) -> Report:
    """Compare *snapshot* with *lock* and return every difference as a finding.

    *projects*: the project under test (``locks.project.projects_in`` of the lock's
    folder); a distribution of its name must be a local install of its folder.
    """
    findings: list[Finding] = []
    env_key = snapshot.interpreter.key
    locked_env = lock.environment(env_key)
    findings.extend(_interpreter_findings(snapshot, lock))

    if locked_env is not None:
        applicable = [d for d in lock.distributions if env_key in d.environments]
        required = applicable
    else:
        # An environment the lock has never seen: compare against every entry,
        # but expect only what every locked environment has in common.
        applicable = list(lock.distributions)
        all_keys = {env.key for env in lock.environments}
        required = [d for d in applicable if all_keys <= set(d.environments)]

    entries: dict[str, list[LockedDistribution]] = defaultdict(list)
    for entry in applicable:
        entries[entry.name].append(entry)

    installed = snapshot.by_name()
    commands = commands_for(snapshot)
    folders = projects.folders if projects is not None else {}
    for dist in snapshot.distributions:
        # A lock that names an index or archive for the project (a tox-style run of its
        # built wheel) is compared as it says; only a local or absent entry means the tree.
        if dist.name in folders and all(e.source.is_local for e in entries.get(dist.name, [])):
            title = lock_path or "the lock"
            findings.append(project_finding(dist, folders[dist.name], title, commands))
            continue
        findings.extend(_compare(dist, entries.get(dist.name, []), commands))
    for name in sorted({entry.name for entry in required} - set(installed)):
        versions = sorted({entry.version for entry in required if entry.name == name})
        if name in folders and all(e.source.is_local for e in entries[name]):
            findings.append(project_not_installed(name, folders[name], commands, lock_path))
            continue
        findings.append(
            Finding.of(
                Kind.MISSING,
                name,
                f"locked {name} {' or '.join(versions)} is not installed",
                expected=" or ".join(versions),
                actual="not installed",
                hint=f"{commands.install(name, versions[-1])}, or {HINT_ACCEPT}",
            )
        )
    findings.extend(snapshot_findings(snapshot))
    return Report.build(
        findings,
        lock_path=lock_path,
        distributions_checked=len(snapshot.distributions),
        environment=env_key,
        notes=projects.notes if projects is not None else (),
    )


def project_finding(
    dist: InstalledDistribution, folder: str, title: str, commands: Commands
) -> Finding:
    """The project under test when installed from *folder*; else an impostor (an error).

    The name alone proves nothing (anyone can upload a release of it): only a local
    install of the project's own folder is the project (issue 12, item 2).
    """
    if dist.source.is_local and local_tree(dist) == folder:
        return Finding.of(
            Kind.NOT_VERIFIABLE,
            dist.name,
            PROJECT_UNDER_TEST.format(
                name=dist.name,
                version=dist.version,
                kind=dist.source.kind,
                folder=folder,
                title=title,
            ),
            location=dist.metadata_path,
        )
    return Finding.of(
        Kind.SOURCE_CHANGED,
        dist.name,
        PROJECT_IMPOSTOR.format(
            name=dist.name, version=dist.version, source=dist.source.describe(), folder=folder
        ),
        expected=f"the working tree {folder}",
        actual=dist.source.describe(),
        hint=HINT_PROJECT.format(install=commands.install_project()),
        location=dist.metadata_path,
    )


def project_not_installed(
    name: str, folder: str, commands: Commands, location: str | None
) -> Finding:
    """An error, as for any locked package: with the project not installed, its import name
    is free for any folder on the path (a path-only ``.pth`` no package owns is enough).
    ``uv sync --no-install-project`` setups waive it."""
    return Finding.of(
        Kind.MISSING,
        name,
        PROJECT_NOT_INSTALLED.format(name=name, folder=folder),
        expected=f"the working tree {folder}",
        actual="not installed",
        hint=HINT_MISSING_PROJECT.format(install=commands.install_project()),
        location=location,
    )


def _interpreter_findings(snapshot: Snapshot, lock: Lock) -> Iterator[Finding]:
    current = snapshot.interpreter
    locked = lock.environment(current.key)
    if locked is None:
        known = ", ".join(env.key for env in lock.environments) or "none"
        yield Finding.of(
            Kind.INTERPRETER_CHANGED,
            INTERPRETER_SUBJECT,
            f"this environment ({current.key}, Python {current.python_version}) is not in the "
            f"lock; locked environments: {known}",
            expected=known,
            actual=current.key,
            hint=f"record it with `{REFRESH_COMMAND}` (keeps the other environments)",
        )
    elif locked.python_version != current.python_version:
        yield Finding.of(
            Kind.INTERPRETER_CHANGED,
            INTERPRETER_SUBJECT,
            f"Python changed from {locked.python_version} to {current.python_version} "
            f"({current.key})",
            expected=locked.python_version,
            actual=current.python_version,
            hint=HINT_ACCEPT,
        )


def _compare(
    dist: InstalledDistribution, entries: list[LockedDistribution], commands: Commands
) -> Iterator[Finding]:
    name = dist.name
    if not entries:
        yield unlocked_startup_error(
            Finding.of(
                Kind.UNEXPECTED,
                name,
                f"{name} {dist.version} is installed but not locked",
                expected="not installed",
                actual=dist.version,
                hint=f"{commands.uninstall(name)}, or {HINT_ACCEPT}",
                location=dist.metadata_path,
            ),
            dist,
        )
        return
    if dist.source.is_local and any(entry.source.is_local for entry in entries):
        yield Finding.of(
            Kind.NOT_VERIFIABLE,
            name,
            f"{name} is installed from a local working tree ({dist.source.kind}); its version "
            "and files are the project's own and are not compared",
            location=dist.metadata_path,
        )
        return
    same_version = [entry for entry in entries if _same_version(dist.version, entry.version)]
    if not same_version:
        expected = " or ".join(sorted({entry.version for entry in entries}))
        yield Finding.of(
            Kind.VERSION_CHANGED,
            name,
            f"{name} version changed: locked {expected}, installed {dist.version}",
            expected=expected,
            actual=dist.version,
            hint=f"{commands.install(name, entries[0].version)} to restore, or {HINT_ACCEPT}",
            location=dist.metadata_path,
        )
        return
    same_source = [entry for entry in same_version if dist.source.matches(entry.source)]
    if not same_source:
        expected = "; ".join(sorted({entry.source.describe() for entry in same_version}))
        yield Finding.of(
            Kind.SOURCE_CHANGED,
            name,
            f"{name} {dist.version} source changed: locked from {expected}, installed from "
            f"{dist.source.describe()}",
            expected=expected,
            actual=dist.source.describe(),
            hint=f"reinstall {name} from the locked source, or {HINT_ACCEPT}",
            location=dist.metadata_path,
        )
        return
    accepted = sorted({digest for entry in same_source for digest in entry.content})
    if not accepted:
        yield Finding.of(
            Kind.NOT_VERIFIABLE,
            name,
            f"{name} {dist.version}: the lock has no content digest for it "
            "(it was locked without a RECORD), so only its version and source are compared",
            location=dist.metadata_path,
        )
        return
    if dist.content is None:
        if dist.record_state == RECORD_MALFORMED:
            return  # reported once, as a broken distribution, by snapshot_findings
        yield Finding.of(
            Kind.CONTENT_CHANGED,
            name,
            f"{name} {dist.version}: {dist.problem or 'no RECORD'}; the lock expects content "
            f"{_short(accepted)}",
            expected=" or ".join(accepted),
            actual="no usable RECORD",
            hint=commands.reinstall(name, dist.version),
            location=dist.metadata_path,
        )
        return
    if dist.content not in accepted:
        yield Finding.of(
            Kind.CONTENT_CHANGED,
            name,
            f"{name} {dist.version}: same version, different files (the wheel was rebuilt or "
            f"replaced): locked content {_short(accepted)}, installed {_short([dist.content])}",
            expected=" or ".join(accepted),
            actual=dist.content,
            hint=(
                f"reinstall the locked build ({commands.reinstall(name, dist.version)} from a "
                f"trusted index), or {HINT_ACCEPT}"
            ),
            location=dist.metadata_path,
        )


def _short(digests: Iterable[str]) -> str:
    """``sha256:1a2b3c4d5e6f`` display form; full digests are in the JSON report."""
    return " or ".join(d[: d.index(":") + 13] if ":" in d else d for d in digests)


def snapshot_findings(snapshot: Snapshot) -> Iterator[Finding]:
    """Findings about the environment itself, whatever the lock says."""
    for pair in snapshot.shadowed:
        hidden, active = pair.hidden, pair.active
        finding = Finding.of(
            Kind.SHADOWED,
            hidden.name,
            f"a second copy of {hidden.name} ({hidden.version}) at {hidden.metadata_path} is "
            f"hidden by {active.version} at {active.metadata_path}",
            expected=f"{active.version} at {active.location}",
            actual=f"also {hidden.version} at {hidden.location}",
            hint="remove the hidden copy (often left by an interrupted upgrade)",
            location=hidden.metadata_path,
        )
        # pluggy loads the pytest11 entry points of every distribution on the path, hidden
        # copies included (a name already registered is skipped): those are unlocked code.
        extra = _extra_plugins(hidden.metadata_path, active.metadata_path)
        if extra:
            shown = ", ".join(f"`{name}`" for name in extra)
            finding = replace(
                finding,
                severity=Severity.ERROR,
                message=f"{finding.message}; {SHADOWED_PLUGIN.format(names=shown)}",
            )
        yield finding
    for broken in snapshot.broken:
        yield Finding.of(
            Kind.BROKEN_DISTRIBUTION,
            broken.metadata_path.rsplit("/", 1)[-1],
            f"{broken.metadata_path}: {broken.problem}",
            hint="reinstall the distribution, or remove the stray metadata directory",
            location=broken.metadata_path,
        )
    for dist in snapshot.distributions:
        if dist.legacy:
            yield Finding.of(
                Kind.NOT_VERIFIABLE,
                dist.name,
                f"{dist.name} {dist.version} is a legacy egg-info install without RECORD; "
                "only its version and source are compared",
                location=dist.metadata_path,
            )
        elif dist.record_state == RECORD_MALFORMED:
            yield Finding.of(
                Kind.BROKEN_DISTRIBUTION,
                dist.name,
                f"{dist.name} {dist.version}: {dist.problem}",
                hint=commands_for(snapshot).reinstall(dist.name, dist.version),
                location=dist.metadata_path,
            )


# ------------------------------------------------------------ unlocked start-up code


def unlocked_startup_error(
    finding: Finding, dist: InstalledDistribution, allowed: Iterable[str] = ()
) -> Finding:
    """*finding* (an unlocked distribution) as an error when *dist* ships start-up code.

    A plain unlocked library stays a warning: nothing runs it unless a test
    imports it. A pytest plugin, an import ``.pth`` or a ``sitecustomize`` runs
    without being imported, before the gate has a say. *allowed* names start-up
    code (keys of ``startup_code``) that does not count.
    """
    accepted = set(allowed)
    reasons = [text for key, text in startup_code(dist) if key not in accepted]
    if not reasons:
        return finding
    what = f"{dist.name} {dist.version} is installed but not locked, and " + "; ".join(reasons)
    return replace(
        finding, severity=Severity.ERROR, message=UNLOCKED_STARTUP_CODE.format(what=what)
    )


def startup_code(dist: InstalledDistribution) -> list[tuple[str, str]]:
    """What in *dist* runs without being imported, as (key, description) pairs.

    Keys are ``pytest11:<name>`` for pytest plugins and the RECORD path for an
    import ``.pth`` or a ``sitecustomize``/``usercustomize``. Read only for
    unlocked distributions (a handful), so the snapshot stays cheap. What cannot
    be read counts as start-up code: fail closed.
    """
    reasons: list[tuple[str, str]] = []
    plugins = _pytest_plugins(dist.metadata_path)
    if isinstance(plugins, Exception):
        reasons.append(("entry_points.txt", STARTUP_BAD_ENTRY_POINTS.format(error=plugins)))
    else:
        reasons += [
            (f"{PYTEST_PLUGIN_GROUP}:{plugin}", STARTUP_PLUGIN.format(name=plugin))
            for plugin in plugins
        ]
    if dist.record_state in (RECORD_MISSING, RECORD_MALFORMED):  # legacy egg-info aside
        reasons.append(("RECORD", STARTUP_NO_RECORD))
    for relative, full, outside in _installed_files(dist):
        parts = relative.split("/")
        if full.name.endswith(".pth") and (outside or len(parts) == 1):
            if _pth_runs_code(full):
                reasons.append((relative, STARTUP_PTH.format(path=relative)))
            continue
        # Top level of the site directory, or anywhere outside it (a wheel's data scheme
        # can reach the standard library folder): the module or package name counts.
        named = [parts[0]] if not outside else [full.name, full.parent.name]
        if any(name.split(".", 1)[0] in STARTUP_MODULES for name in named):
            reasons.append((relative, STARTUP_MODULE.format(path=relative)))
    return reasons


def launch_directory_findings(directory: str, snapshot: Snapshot) -> Iterator[Finding]:
    """pytest plugins of distributions in the launch directory, which the snapshot leaves out.

    ``default_search_path`` drops the current directory (it depends on how pytest
    is started), but ``python -m pytest`` puts it first on ``sys.path`` and pluggy
    loads the entry points of every distribution there: a ``*.dist-info`` committed
    to a repository is a plugin nobody installed. A project's own ``*.egg-info``
    declaring what its installed copy declares adds no code and is not reported.
    """
    normalized = os.path.normcase(os.path.abspath(directory))
    searched = snapshot.search_path
    if any(os.path.normcase(os.path.abspath(entry)) == normalized for entry in searched):
        return
    try:
        found = list(metadata.distributions(path=[directory]))
    except (OSError, UnicodeDecodeError, ValueError):
        found = []
    installed = snapshot.by_name()
    for dist in found:
        path = str(getattr(dist, "_path", directory))  # as snapshot._metadata_path reads it
        try:
            name, version = str(dist.metadata["Name"] or "?"), str(dist.version or "?")
        except (OSError, UnicodeDecodeError, ValueError, KeyError):
            name, version = Path(path).name, "?"
        same = installed.get(canonicalize_name(name))
        plugins = _extra_plugins(path, same.metadata_path if same is not None else None)
        if not plugins:
            continue
        names = ", ".join(f"`{plugin}`" for plugin in plugins)
        text = LAUNCH_DIR_PLUGIN.format(
            name=name, version=version, directory=directory, names=names
        )
        finding = Finding.of(
            Kind.UNEXPECTED,
            canonicalize_name(name),
            text,
            expected="not installed",
            actual=version,
            hint=f"remove {path} unless the project means to ship it",
            location=path,
        )
        yield replace(finding, severity=Severity.ERROR)


def _pytest_plugins(metadata_path: str) -> list[str] | Exception:
    """Names of the pytest11 entry points in *metadata_path*, read as pluggy reads them."""
    entries = _plugin_entries(metadata_path)
    return entries if isinstance(entries, Exception) else sorted(set(entries.values()))


def _plugin_entries(metadata_path: str) -> dict[str, str] | Exception:
    """``name = value`` -> name of each pytest11 entry point, or why they cannot be read."""
    try:
        entry_points = metadata.PathDistribution(Path(metadata_path)).entry_points
        return {
            f"{ep.name} = {ep.value}": ep.name
            for ep in entry_points
            if ep.group == PYTEST_PLUGIN_GROUP
        }
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return exc


def _extra_plugins(metadata_path: str, other: str | None) -> list[str]:
    """pytest11 plugins of *metadata_path* that *other* does not declare identically."""
    entries = _plugin_entries(metadata_path)
    if isinstance(entries, Exception):
        return ["? (entry_points.txt cannot be read)"]
    known = _plugin_entries(other) if other is not None else {}
    known = {} if isinstance(known, Exception) else known
    return sorted({name for entry, name in entries.items() if entry not in known})


def _installed_files(dist: InstalledDistribution) -> list[tuple[str, Path, bool]]:
    """(RECORD path, where it lands, whether outside the site directory) for *dist*'s files.

    ``./x``, ``a/../x`` and absolute paths are resolved the way installers land them, so
    a start-up file cannot hide behind its spelling. A RECORD that cannot be read is
    judged by the snapshot's ``record_state`` (see ``startup_code``).
    """
    if dist.record_rows is not None:
        paths = [row[0] for row in dist.record_rows]
    else:
        record = Path(dist.metadata_path) / "RECORD"
        try:
            text = record.read_text(encoding="utf-8")
            paths = [row.path for row in parse_record(text, str(record))]
        except (OSError, UnicodeDecodeError, RecordError):
            return []
    location = os.path.normpath(dist.location)
    found: list[tuple[str, Path, bool]] = []
    for recorded in paths:
        full = os.path.normpath(os.path.join(location, recorded))
        inside = full.startswith(location + os.sep)
        relative = os.path.relpath(full, location).replace(os.sep, "/") if inside else recorded
        found.append((relative, Path(full), not inside))
    return found


def _pth_runs_code(path: Path) -> bool:
    """Whether ``site`` would execute a line of *path* (``Lib/site.py``, ``addpackage``).

    site.py runs lines starting with ``import`` and a space or tab. Python 3.13 decodes
    the file as UTF-8 (BOM stripped) and falls back to the locale encoding, older ones
    use the locale encoding; both readings are tried, and ``str.splitlines`` splits at
    every line boundary either could see. An unreadable file counts as code.
    """
    try:
        data = path.read_bytes()
    except OSError:
        return True
    data = data.removeprefix(b"\xef\xbb\xbf")
    for text in (data.decode("utf-8", "replace"), data.decode("latin-1")):
        if any(line.startswith(("import ", "import\t")) for line in text.splitlines()):
            return True
    return False
