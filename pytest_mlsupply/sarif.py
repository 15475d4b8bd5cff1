"""Report -> SARIF 2.1.0, so code-scanning dashboards list the gate's findings.

Each finding kind is a rule; each finding is a result. Findings are about the
environment rather than about a line of source, so every result is anchored on
the lockfile (a file in the repository, which code-scanning services require)
and carries the installed path or distribution in its message and properties.
Waived findings are results with an external suppression and its justification.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pytest_mlsupply import __version__
from pytest_mlsupply.findings import DEFAULT_SEVERITY, Finding, Kind, Report, Severity

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
TOOL_NAME = "pytest-mlsupply"
FINGERPRINT_KEY = "mlsupplyFinding/v1"
#: Where results point when the report names no lockfile.
DEFAULT_ANCHOR = "mlsupply.lock"

_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}

#: One sentence per kind for the rule list; kinds added later fall back to their name.
RULE_DESCRIPTIONS: dict[str, str] = {
    "missing": "A locked distribution is not installed.",
    "unexpected": "An installed distribution is not in the lock.",
    "version-changed": "The installed version differs from the locked version.",
    "content-changed": "Same version, different installed content: the wheel was rebuilt or "
    "replaced.",
    "source-changed": "The distribution was installed from another source than the locked one.",
    "shadowed": "A second copy of a distribution is hidden later on sys.path.",
    "interpreter-changed": "The interpreter or platform is not the locked one.",
    "broken-distribution": "Installed metadata without a readable name, version or RECORD.",
    "not-verifiable": "Something could be checked only in part.",
    "file-modified": "An installed file's bytes differ from its RECORD hash.",
    "file-missing": "A file listed in RECORD is gone.",
    "size-mismatch": "An installed file has its recorded hash but not its recorded size.",
    "known-quirk": "A mismatch explained by a reviewed, published defect of that release.",
    "unowned-startup-code": "Start-up code (.pth import line, sitecustomize) no RECORD lists.",
    "startup-hook": "A .pth file that runs code at start-up, owned by an installed package.",
    "unowned-module": "A module in a site directory that no RECORD lists.",
    "waiver-expired": "A waiver passed its expiry date and no longer applies.",
    "waiver-unused": "A waiver matched no finding.",
    "lock-not-applicable": "The lock's Python or environment constraints exclude this interpreter.",
    "known-bad-package": "An installed release is named by a known-bad feed or the built-in list.",
    "known-bad-file": "An installed file or archive has a digest a known-bad feed lists.",
    "known-bad-feed": "A known-bad feed could not be used.",
    "vulnerable": "An installed or locked release has a known vulnerability (not malware); "
    "the message gives the fixed versions and the CVSS score.",
    "import-shadowed": "A module outside the environment is imported instead of an installed "
    "distribution's code.",
    "too-new": "A locked artifact was uploaded more recently than the minimum age allows.",
    "bytecode-mismatch": "A loaded module ran cached bytecode that its verified source does "
    "not compile to.",
}


def _rule_id(kind: Kind) -> str:
    return kind.value


def _rule(kind: Kind) -> dict[str, Any]:
    description = RULE_DESCRIPTIONS.get(kind.value, kind.value.replace("-", " ").capitalize())
    return {
        "id": _rule_id(kind),
        "name": "".join(part.capitalize() for part in kind.value.split("-")),
        "shortDescription": {"text": description},
        "fullDescription": {"text": description},
        "defaultConfiguration": {"level": _LEVEL[DEFAULT_SEVERITY.get(kind, Severity.ERROR)]},
        "properties": {"tags": ["security", "supply-chain"]},
    }


def _anchor(report: Report) -> dict[str, Any]:
    lock = report.lock_path or DEFAULT_ANCHOR
    path = Path(lock)
    if path.is_absolute():
        return {"uri": path.as_uri()}
    return {"uri": path.as_posix(), "uriBaseId": "%SRCROOT%"}


def fingerprint(finding: Finding) -> str:
    """Stable across runs for the same problem, so dashboards track it as one alert."""
    key = "\0".join((finding.kind.value, finding.subject, finding.location or ""))
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _result(finding: Finding, rule_index: int, anchor: dict[str, Any]) -> dict[str, Any]:
    from pytest_mlsupply.render import finding_line

    text = finding_line(finding)
    properties: dict[str, Any] = {
        key: value
        for key in ("subject", "expected", "actual", "location", "hint")
        if (value := getattr(finding, key)) is not None
    }
    if finding.advisories:
        properties["advisories"] = list(finding.advisories)
    result: dict[str, Any] = {
        "ruleId": _rule_id(finding.kind),
        "ruleIndex": rule_index,
        "level": _LEVEL[finding.severity],
        "message": {"text": text},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": dict(anchor),
                    "region": {"startLine": 1},
                },
                "message": {"text": finding.location or finding.subject},
            }
        ],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint(finding)},
        "properties": properties,
    }
    if finding.waived is not None:
        result["suppressions"] = [{"kind": "external", "justification": finding.waived}]
    return result


def sarif_document(report: Report, *, failed: bool) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run: the rules used, one result per finding."""
    kinds = sorted({finding.kind for finding in report.findings}, key=lambda k: k.value)
    rule_index = {kind: number for number, kind in enumerate(kinds)}
    anchor = _anchor(report)
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL_NAME,
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": [_rule(kind) for kind in kinds],
                    }
                },
                "automationDetails": {"id": f"{TOOL_NAME}/{report.environment or 'environment'}/"},
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "exitCode": 1 if failed else 0,
                        "toolExecutionNotifications": [
                            {"level": "note", "message": {"text": note}} for note in report.notes
                        ],
                    }
                ],
                "results": [
                    _result(finding, rule_index[finding.kind], anchor)
                    for finding in report.findings
                ],
                "properties": {
                    "lock": report.lock_path,
                    "environment": report.environment,
                    "distributionsChecked": report.distributions_checked,
                },
            }
        ],
    }
