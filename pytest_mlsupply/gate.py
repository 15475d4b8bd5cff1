"""The whole check in one call, shared by the pytest plugin and the command line."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_mlsupply.checks import check_environment
from pytest_mlsupply.findings import Report
from pytest_mlsupply.locks.mlsupply_lock import load_lock, refresh_lock, write_lock
from pytest_mlsupply.snapshot import Snapshot, take_snapshot


@dataclass(frozen=True)
class GateResult:
    report: Report
    lock_written: bool


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
    hash_cache: Path | None = None,
    rehash: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> GateResult:
    """Snapshot the environment, refresh the lock if asked, compare, verify installed files.

    Raises LockfileError for a missing or malformed lock; refreshing never
    overwrites a malformed lock (it may hold a merge conflict worth keeping).
    The hash cache at *hash_cache* speeds up re-runs; *rehash* ignores what it
    holds (and writes a fresh one).
    """
    snapshot = take_snapshot(search_path)
    shown = display_path(lock_path, base) if base else str(lock_path)
    if update:
        previous = load_lock(lock_path) if lock_path.exists() else None
        lock = refresh_lock(previous, snapshot)
        write_lock(lock_path, lock)
    else:
        lock = load_lock(lock_path)
    report = check_environment(snapshot, lock, lock_path=shown)
    if verify_files:
        report = _with_file_verification(report, snapshot, hash_cache, rehash, progress)
    return GateResult(report, lock_written=update)


def _with_file_verification(
    report: Report,
    snapshot: Snapshot,
    hash_cache: Path | None,
    rehash: bool,
    progress: Callable[[int, int], None] | None,
) -> Report:
    from pytest_mlsupply.hashcache import HashCache
    from pytest_mlsupply.verify import find_unowned_code, verify_installed_files

    notes: list[str] = []
    cache = HashCache()
    if hash_cache is not None and not rehash:
        cache, problem = HashCache.load(hash_cache)
        if problem:
            notes.append(problem)
    findings, stats, owners = verify_installed_files(snapshot, cache=cache, progress=progress)
    findings.extend(find_unowned_code(snapshot, owners))
    if hash_cache is not None:
        try:
            cache.save(hash_cache)
        except OSError as exc:
            notes.append(f"the hash cache {hash_cache} could not be written: {exc}")
    notes.insert(0, stats.note())
    return Report.build(
        [*report.findings, *findings],
        lock_path=report.lock_path,
        distributions_checked=report.distributions_checked,
        environment=report.environment,
        notes=[*report.notes, *notes],
        stats={
            **report.stats,
            "files_verified": stats.files_verified,
            "files_from_cache": stats.from_cache,
            "bytes_hashed": stats.bytes_hashed,
            "verify_seconds": round(stats.seconds, 3),
        },
    )
