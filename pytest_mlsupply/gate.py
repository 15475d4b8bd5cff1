"""The whole check in one call, shared by the pytest plugin and the command line."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_mlsupply.checks import check_environment
from pytest_mlsupply.findings import Report
from pytest_mlsupply.locks.mlsupply_lock import load_lock, refresh_lock, write_lock
from pytest_mlsupply.snapshot import Snapshot, take_snapshot

if TYPE_CHECKING:
    from pytest_mlsupply.knownbad import KnownBadConfig


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
    cache_dir: Path | None = None,
    rehash: bool = False,
    progress: Callable[[int, int], None] | None = None,
    known_bad: KnownBadConfig | None = None,
) -> GateResult:
    """Snapshot the environment, refresh the lock if asked, compare, verify installed files.

    Raises LockfileError for a missing or malformed lock; refreshing never
    overwrites a malformed lock (it may hold a merge conflict worth keeping).
    Caches in *cache_dir* speed up re-runs of the file verification; *rehash*
    ignores what they hold (and writes them afresh).
    """
    snapshot = take_snapshot(search_path, keep_rows=verify_files)
    shown = display_path(lock_path, base) if base else str(lock_path)
    if update:
        previous = load_lock(lock_path) if lock_path.exists() else None
        lock = refresh_lock(previous, snapshot)
        write_lock(lock_path, lock)
    else:
        lock = load_lock(lock_path)
    report = check_environment(snapshot, lock, lock_path=shown)
    if verify_files:
        report = _with_file_verification(report, snapshot, cache_dir, rehash, progress)
    if known_bad is not None:
        report = _with_known_bad(report, snapshot, known_bad, base, cache_dir, rehash)
    return GateResult(report, lock_written=update)


def _with_known_bad(
    report: Report,
    snapshot: Snapshot,
    config: KnownBadConfig,
    base: Path | None,
    cache_dir: Path | None,
    rehash: bool,
) -> Report:
    from pytest_mlsupply.knownbad import run_known_bad

    result = run_known_bad(
        config, snapshot, report.findings, base=base, cache_dir=cache_dir, rebuild=rehash
    )
    return Report.build(
        [*report.findings, *result.findings],
        lock_path=report.lock_path,
        distributions_checked=report.distributions_checked,
        environment=report.environment,
        notes=[*report.notes, *result.notes],
        stats={**report.stats, **result.stats},
    )


def _with_file_verification(
    report: Report,
    snapshot: Snapshot,
    cache_dir: Path | None,
    rehash: bool,
    progress: Callable[[int, int], None] | None,
) -> Report:
    from pytest_mlsupply.verify import find_unowned_code, verify_installed_files

    findings, stats, ownership = verify_installed_files(
        snapshot, cache_dir=cache_dir, rehash=rehash, progress=progress
    )
    findings.extend(find_unowned_code(snapshot, ownership))
    return Report.build(
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
