"""The whole check in one call, shared by the pytest plugin and the command line."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_mlsupply.checks import check_environment
from pytest_mlsupply.findings import Report
from pytest_mlsupply.locks.mlsupply_lock import load_lock, refresh_lock, write_lock
from pytest_mlsupply.snapshot import take_snapshot


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
) -> GateResult:
    """Snapshot the environment, refresh the lock if asked, and compare the two.

    Raises LockfileError for a missing or malformed lock; refreshing never
    overwrites a malformed lock (it may hold a merge conflict worth keeping).
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
    return GateResult(report, lock_written=update)
