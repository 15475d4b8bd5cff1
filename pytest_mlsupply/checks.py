"""The rules: (snapshot, lock) -> findings.

A mismatch is never an exception here; each one becomes a Finding whose
message says what differs and whose hint says how to restore or accept it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

from pytest_mlsupply.findings import Finding, Kind, Report
from pytest_mlsupply.limits import parse_version
from pytest_mlsupply.locks.mlsupply_lock import (
    REFRESH_COMMAND,
    Lock,
    LockedDistribution,
)
from pytest_mlsupply.snapshot import RECORD_MALFORMED, InstalledDistribution, Snapshot

INTERPRETER_SUBJECT = "interpreter"

HINT_ACCEPT = f"if intended, accept it with `{REFRESH_COMMAND}`"


def _same_version(installed: str, locked: str) -> bool:
    """Version equality by PEP 440 (``1.0 == 1.0.0``; local labels such as ``+cpu`` count)."""
    left, right = parse_version(installed), parse_version(locked)
    if left is None or right is None:
        return installed == locked  # not PEP 440 (or over the length limit): exact text only
    return left == right


def _pin(name: str, version: str) -> str:
    return f"pip install '{name}=={version}'"


def check_environment(snapshot: Snapshot, lock: Lock, *, lock_path: str | None = None) -> Report:
    """Compare *snapshot* with *lock* and return every difference as a finding."""
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
    for dist in snapshot.distributions:
        findings.extend(_compare(dist, entries.get(dist.name, [])))
    for name in sorted({entry.name for entry in required} - set(installed)):
        versions = sorted({entry.version for entry in required if entry.name == name})
        findings.append(
            Finding.of(
                Kind.MISSING,
                name,
                f"locked {name} {' or '.join(versions)} is not installed",
                expected=" or ".join(versions),
                actual="not installed",
                hint=f"{_pin(name, versions[-1])}, or {HINT_ACCEPT}",
            )
        )
    findings.extend(snapshot_findings(snapshot))
    return Report.build(
        findings,
        lock_path=lock_path,
        distributions_checked=len(snapshot.distributions),
        environment=env_key,
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


def _compare(dist: InstalledDistribution, entries: list[LockedDistribution]) -> Iterator[Finding]:
    name = dist.name
    if not entries:
        yield Finding.of(
            Kind.UNEXPECTED,
            name,
            f"{name} {dist.version} is installed but not locked",
            expected="not installed",
            actual=dist.version,
            hint=f"`pip uninstall {name}`, or {HINT_ACCEPT}",
            location=dist.metadata_path,
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
            hint=f"{_pin(name, entries[0].version)} to restore, or {HINT_ACCEPT}",
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
            hint=f"`pip install --force-reinstall --no-deps '{name}=={dist.version}'`",
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
                f"reinstall the locked build (`pip install --force-reinstall --no-deps "
                f"'{name}=={dist.version}'` from a trusted index), or {HINT_ACCEPT}"
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
        yield Finding.of(
            Kind.SHADOWED,
            hidden.name,
            f"a second copy of {hidden.name} ({hidden.version}) at {hidden.metadata_path} is "
            f"hidden by {active.version} at {active.metadata_path}",
            expected=f"{active.version} at {active.location}",
            actual=f"also {hidden.version} at {hidden.location}",
            hint="remove the hidden copy (often left by an interrupted upgrade)",
            location=hidden.metadata_path,
        )
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
                hint=f"`pip install --force-reinstall --no-deps '{dist.name}=={dist.version}'`",
                location=dist.metadata_path,
            )
