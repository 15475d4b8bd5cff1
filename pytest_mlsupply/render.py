"""Report -> text for people and JSON for machines. Every output renders the same Report."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from pytest_mlsupply import __version__
from pytest_mlsupply.atomic import write_text_atomic
from pytest_mlsupply.findings import (
    REPORT_SCHEMA_NAME,
    REPORT_SCHEMA_VERSION,
    Finding,
    Report,
    Severity,
)

SECTION_TITLE = "mlsupply"
GATE_FAILED = "environment does not match the lock"
GATE_PASSED = "environment matches the lock"
WARN_ONLY_NOTE = "warn-only mode: findings are reported but do not fail the run"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def counts_line(report: Report) -> str:
    """``3 errors, 1 warning, 2 notes`` (zeros included, so the line reads the same in CI)."""
    return ", ".join(
        (
            _plural(report.count(Severity.ERROR), "error"),
            _plural(report.count(Severity.WARNING), "warning"),
            _plural(report.count(Severity.INFO), "note"),
        )
    )


def header_line(report: Report) -> str:
    """The one-line header printed when the run starts."""
    lock = report.lock_path or "no lock"
    return (
        f"mlsupply: {lock}: {report.distributions_checked} distributions checked in "
        f"{report.environment}; {counts_line(report)}"
    )


def finding_line(finding: Finding) -> str:
    """One line: severity, kind, the message (what, which, expected -> actual), the fix."""
    line = f"{finding.severity.value.upper()} [{finding.kind.value}] {finding.message}"
    if finding.hint:
        line += f" -- {finding.hint}"
    return line


def finding_lines(report: Report, *, include_info: bool) -> list[str]:
    return [
        finding_line(finding)
        for finding in report.findings
        if include_info or finding.severity is not Severity.INFO
    ]


def report_document(
    report: Report, *, failed: bool, strict: bool, warn_only: bool
) -> dict[str, Any]:
    """The versioned JSON document that ``--mlsupply-report`` writes (README: JSON report)."""
    return {
        "schema": REPORT_SCHEMA_NAME,
        "schema_version": REPORT_SCHEMA_VERSION,
        "tool": {"name": "pytest-mlsupply", "version": __version__},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "policy": {"strict": strict, "warn_only": warn_only},
        "result": "failed" if failed else "passed",
        "summary": {
            "errors": report.count(Severity.ERROR),
            "warnings": report.count(Severity.WARNING),
            "info": report.count(Severity.INFO),
        },
        **report.to_dict(),
    }


def write_json_report(
    path: str | Path, report: Report, *, failed: bool, strict: bool, warn_only: bool
) -> None:
    document = report_document(report, failed=failed, strict=strict, warn_only=warn_only)
    write_text_atomic(path, json.dumps(document, indent=2, sort_keys=False) + "\n")
