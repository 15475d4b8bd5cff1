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
#: Ends the verdict when --mlsupply-warn-only lets a report that fails the gate pass
#: (issue 12: "matches the lock ... 6 errors" contradicted itself).
WARN_ONLY_IGNORED = "ignored by --mlsupply-warn-only"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def counts_line(report: Report) -> str:
    """``3 errors, 1 warning, 2 notes`` (zeros included, so the line reads the same in CI).

    Waived findings are not in those counts; ``, 2 waived`` follows when there are any.
    """
    parts = [
        _plural(report.count(Severity.ERROR), "error"),
        _plural(report.count(Severity.WARNING), "warning"),
        _plural(report.count(Severity.INFO), "note"),
    ]
    waived = len(report.waived())
    if waived:
        parts.append(f"{waived} waived")
    return ", ".join(parts)


def ignored_by_warn_only(report: Report, *, warn_only: bool) -> str:
    """``6 errors ignored by --mlsupply-warn-only`` when warn-only passes a failing report.

    Empty otherwise. Warn-only cannot be combined with strict, so only errors fail a report here.
    """
    if not warn_only or not report.fails(strict=False):
        return ""
    return f"{_plural(report.count(Severity.ERROR), 'error')} {WARN_ONLY_IGNORED}"


def verdict_line(report: Report, *, failed: bool, warn_only: bool) -> str:
    """The one sentence that says whether the environment matches the lock, and what it cost.

    Under warn-only a report with errors does not match the lock though the run
    passes: the sentence says so, and that the errors were ignored.
    """
    ignored = ignored_by_warn_only(report, warn_only=warn_only)
    verdict = GATE_FAILED if failed or ignored else GATE_PASSED
    line = (
        f"{verdict} ({report.lock_path}): {report.distributions_checked} distributions, "
        f"{counts_line(report)}"
    )
    return f"{line}; {ignored}" if ignored else line


def header_line(report: Report) -> str:
    """The one-line header printed when the run starts."""
    lock = report.lock_path or "no lock"
    return (
        f"mlsupply: {lock}: {report.distributions_checked} distributions checked in "
        f"{report.environment}; {counts_line(report)}"
    )


def finding_line(finding: Finding) -> str:
    """One line: severity, kind, the message (what, which, expected -> actual), the fix."""
    severity = finding.severity.value.upper()
    if finding.waived is not None:
        return f"WAIVED {severity} [{finding.kind.value}] {finding.message} -- {finding.waived}"
    line = f"{severity} [{finding.kind.value}] {finding.message}"
    if finding.hint:
        line += f" -- {finding.hint}"
    return line


def finding_lines(report: Report, *, include_info: bool) -> list[str]:
    """Errors and warnings first, then waived findings, then notes when asked for."""
    shown = [
        f
        for f in report.findings
        if f.waived is None and (include_info or f.severity is not Severity.INFO)
    ]
    shown.extend(report.waived())
    return [finding_line(finding) for finding in shown]


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
            "waived": len(report.waived()),
        },
        **report.to_dict(),
    }


def write_json_report(
    path: str | Path, report: Report, *, failed: bool, strict: bool, warn_only: bool
) -> None:
    document = report_document(report, failed=failed, strict=strict, warn_only=warn_only)
    write_text_atomic(path, json.dumps(document, indent=2, sort_keys=False) + "\n")


def report_format(path: str | Path) -> str:
    """``sarif`` for a path ending in ``.sarif`` (or ``.sarif.json``), else ``json``."""
    name = Path(path).name.lower()
    return "sarif" if name.endswith((".sarif", ".sarif.json")) else "json"


def write_report(
    path: str | Path, report: Report, *, failed: bool, strict: bool, warn_only: bool
) -> str:
    """Write the report in the format its file name asks for; return that format's name.

    Missing parent folders are created, as pytest does for ``--junitxml``.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    kind = report_format(path)
    if kind == "sarif":
        from pytest_mlsupply.sarif import sarif_document

        document = sarif_document(report, failed=failed)
        write_text_atomic(path, json.dumps(document, indent=2) + "\n")
    else:
        write_json_report(path, report, failed=failed, strict=strict, warn_only=warn_only)
    return "SARIF" if kind == "sarif" else "JSON"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


_ANNOTATION_COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning"}


def github_annotations(report: Report) -> list[str]:
    """GitHub Actions workflow commands: ``::error`` per error, ``::warning`` per warning.

    Waived findings become ``::notice`` lines, so the waiver stays visible in the
    run's summary without failing it. Notes (info) are not annotated.
    """
    lines = []
    for finding in report.findings:
        command = "notice" if finding.waived else _ANNOTATION_COMMAND.get(finding.severity)
        if command is None:
            continue
        properties = [f"title={_escape_property(f'mlsupply {finding.kind.value}')}"]
        if report.lock_path and not Path(report.lock_path).is_absolute():
            properties.insert(0, f"file={_escape_property(report.lock_path)}")
        lines.append(f"::{command} {','.join(properties)}::{_escape_data(finding_line(finding))}")
    return lines
