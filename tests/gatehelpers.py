"""Helpers for the real-venv tests: gated runs of a project and what their reports say."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pytest_mlsupply.locks.mlsupply_lock import load_lock, write_lock


def gate(venv: Any, project: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return venv.run(
        "-m",
        "pytest",
        "--mlsupply",
        "--mlsupply-report",
        "report.json",
        "-p",
        "no:cacheprovider",
        *args,
        cwd=project,
        env=env,
    )


def lock(venv: Any, project: Path) -> None:
    result = venv.run(
        "-m", "pytest", "--mlsupply-update-lock", "-p", "no:cacheprovider", cwd=project
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project / "mlsupply.lock").is_file()


def findings(project: Path, severity: str | None = None) -> list[dict[str, Any]]:
    document = json.loads((project / "report.json").read_text())
    assert document["schema"] == "pytest-mlsupply/report"
    return [f for f in document["findings"] if severity is None or f["severity"] == severity]


def only_problem(project: Path) -> dict[str, Any]:
    """The single error or warning of the report (notes are ignored)."""
    problems = [f for f in findings(project) if f["severity"] != "info"]
    assert len(problems) == 1, problems
    return problems[0]


def install_demo(venv: Any, wheels: Path, version: str = "1.0") -> None:
    venv.install(f"demo-model=={version}", extra=("--find-links", str(wheels)))


def locked(pytester: pytest.Pytester) -> Path:
    result = pytester.runpytest("--mlsupply-update-lock")
    assert result.ret == 0, result.stdout.str()
    return pytester.path / "mlsupply.lock"


def change_locked_version(lock_path: Path, name: str, version: str) -> None:
    lock = load_lock(lock_path)
    changed = tuple(
        replace(d, version=version) if d.name == name else d for d in lock.distributions
    )
    assert changed != lock.distributions, f"{name} is not in the lock"
    write_lock(lock_path, replace(lock, distributions=changed))


def verify_site(site: Path, cache_dir: Path | None = None) -> list[Any]:
    """One gated run's verification of *site*, as the gate does it, without pytest: RECORD
    checks, then code no package owns (with the record and walk caches when *cache_dir*)."""
    from pytest_mlsupply.hashcache import RecordCache
    from pytest_mlsupply.snapshot import take_snapshot
    from pytest_mlsupply.verify import RECORD_CACHE_FILE, find_unowned_code, verify_installed_files

    records = RecordCache.load(cache_dir / RECORD_CACHE_FILE) if cache_dir else None
    snapshot = take_snapshot([str(site)], keep_rows=True, record_cache=records)
    findings, _, ownership = verify_installed_files(
        snapshot, cache_dir=cache_dir, quirks=(), record_cache=records
    )
    if cache_dir is not None and records is not None:
        records.save(cache_dir / RECORD_CACHE_FILE)
    findings.extend(find_unowned_code(snapshot, ownership, cache_dir=cache_dir))
    return findings
