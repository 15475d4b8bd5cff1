"""The one result model: every check yields findings, every reporter renders a Report.

Findings are frozen and plain, so they cross process boundaries (JSON reports,
xdist workers) as dictionaries and come back equal.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_mlsupply.errors import MlsupplyError

#: Version of the JSON report schema documented in the README. Bump it on any
#: change that could break a reader; additions of new keys do not bump it.
REPORT_SCHEMA_VERSION = 1
REPORT_SCHEMA_NAME = "pytest-mlsupply/report"


class Severity(str, enum.Enum):
    """How much a finding matters: errors fail the gate, warnings fail it in strict mode."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Kind(str, enum.Enum):
    """What kind of difference a finding describes; the README lists each one."""

    MISSING = "missing"
    UNEXPECTED = "unexpected"
    VERSION_CHANGED = "version-changed"
    CONTENT_CHANGED = "content-changed"
    SOURCE_CHANGED = "source-changed"
    SHADOWED = "shadowed"
    INTERPRETER_CHANGED = "interpreter-changed"
    BROKEN_DISTRIBUTION = "broken-distribution"
    NOT_VERIFIABLE = "not-verifiable"
    FILE_MODIFIED = "file-modified"
    FILE_MISSING = "file-missing"
    SIZE_MISMATCH = "size-mismatch"
    KNOWN_QUIRK = "known-quirk"
    UNOWNED_STARTUP_CODE = "unowned-startup-code"
    STARTUP_HOOK = "startup-hook"
    UNOWNED_MODULE = "unowned-module"
    WAIVER_EXPIRED = "waiver-expired"
    WAIVER_UNUSED = "waiver-unused"
    LOCK_NOT_APPLICABLE = "lock-not-applicable"
    TOO_NEW = "too-new"
    KNOWN_BAD_PACKAGE = "known-bad-package"
    KNOWN_BAD_FILE = "known-bad-file"
    KNOWN_BAD_FEED = "known-bad-feed"
    VULNERABLE = "vulnerable"
    IMPORT_SHADOWED = "import-shadowed"
    BYTECODE_MISMATCH = "bytecode-mismatch"


#: The severity each kind gets unless a check decides otherwise.
DEFAULT_SEVERITY: Mapping[Kind, Severity] = {
    Kind.MISSING: Severity.ERROR,
    Kind.UNEXPECTED: Severity.WARNING,
    Kind.VERSION_CHANGED: Severity.ERROR,
    Kind.CONTENT_CHANGED: Severity.ERROR,
    Kind.SOURCE_CHANGED: Severity.ERROR,
    Kind.SHADOWED: Severity.WARNING,
    Kind.INTERPRETER_CHANGED: Severity.WARNING,
    Kind.BROKEN_DISTRIBUTION: Severity.ERROR,
    Kind.NOT_VERIFIABLE: Severity.INFO,
    Kind.FILE_MODIFIED: Severity.ERROR,
    Kind.FILE_MISSING: Severity.ERROR,
    Kind.SIZE_MISMATCH: Severity.ERROR,
    Kind.KNOWN_QUIRK: Severity.INFO,
    Kind.UNOWNED_STARTUP_CODE: Severity.ERROR,
    Kind.STARTUP_HOOK: Severity.INFO,
    Kind.UNOWNED_MODULE: Severity.WARNING,
    Kind.WAIVER_EXPIRED: Severity.ERROR,
    Kind.WAIVER_UNUSED: Severity.WARNING,
    Kind.LOCK_NOT_APPLICABLE: Severity.ERROR,
    Kind.TOO_NEW: Severity.ERROR,
    Kind.KNOWN_BAD_PACKAGE: Severity.ERROR,
    Kind.KNOWN_BAD_FILE: Severity.ERROR,
    Kind.KNOWN_BAD_FEED: Severity.ERROR,
    Kind.VULNERABLE: Severity.WARNING,  # the policy (--mlsupply-vulnerabilities) decides
    Kind.IMPORT_SHADOWED: Severity.ERROR,
    Kind.BYTECODE_MISMATCH: Severity.ERROR,
}


_TEXT_FIELDS = ("subject", "message", "expected", "actual", "hint", "location", "waived")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """*text* encodable anywhere: bytes of a non-UTF-8 file name (surrogates) as ``\\xff``."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no file name decodes to (not U+DC80-U+DCFF)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Finding:
    """One difference between what was committed and what is there.

    ``subject`` is what the finding is about (a canonical distribution name, or
    ``"interpreter"``); ``expected`` and ``actual`` are short display strings.
    ``waived`` holds the reason and expiry of the waiver that accepted it: a
    waived finding is still reported but never fails the run. ``advisories`` are the
    advisory ids a known-bad finding rests on, which waivers match exactly.
    """

    kind: Kind
    severity: Severity
    subject: str
    message: str
    expected: str | None = None
    actual: str | None = None
    hint: str | None = None
    location: str | None = None
    waived: str | None = None
    advisories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # A file name that is not UTF-8 reaches us with surrogates (os.fsdecode); every
        # output (terminal, JSON, SARIF, JUnit, xdist) must be able to encode what we say.
        for key in _TEXT_FIELDS:
            value = getattr(self, key)
            if value is not None and not _encodable(value):
                object.__setattr__(self, key, printable(value))

    @classmethod
    def of(
        cls,
        kind: Kind,
        subject: str,
        message: str,
        *,
        expected: str | None = None,
        actual: str | None = None,
        hint: str | None = None,
        location: str | None = None,
        advisories: Iterable[str] = (),
    ) -> Finding:
        """A finding with the default severity of its kind."""
        severity = DEFAULT_SEVERITY[kind]
        return cls(
            kind, severity, subject, message, expected, actual, hint, location,
            advisories=tuple(advisories),
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind.value,
            "severity": self.severity.value,
            "subject": self.subject,
            "message": self.message,
        }
        for key in ("expected", "actual", "hint", "location", "waived"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        if self.advisories:
            data["advisories"] = list(self.advisories)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        try:
            return cls(
                kind=Kind(data["kind"]),
                severity=Severity(data["severity"]),
                subject=str(data["subject"]),
                message=str(data["message"]),
                expected=_optional_str(data.get("expected")),
                actual=_optional_str(data.get("actual")),
                hint=_optional_str(data.get("hint")),
                location=_optional_str(data.get("location")),
                waived=_optional_str(data.get("waived")),
                advisories=tuple(str(i) for i in data.get("advisories") or ()),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise MlsupplyError(f"not a pytest-mlsupply finding: {data!r} ({exc})") from exc


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


_SEVERITY_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


@dataclass(frozen=True)
class Report:
    """Everything one check produced: findings plus the facts needed to read them."""

    findings: tuple[Finding, ...]
    lock_path: str | None = None
    distributions_checked: int = 0
    environment: str | None = None
    notes: tuple[str, ...] = field(default=())
    #: Numbers about the work done (files verified, from cache, seconds), for the JSON report.
    stats: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        findings: Iterable[Finding],
        *,
        lock_path: str | None = None,
        distributions_checked: int = 0,
        environment: str | None = None,
        notes: Iterable[str] = (),
        stats: Mapping[str, float] | None = None,
    ) -> Report:
        """A report with findings in a stable order: severity, then subject, then kind."""
        ordered = sorted(
            findings,
            key=lambda f: (_SEVERITY_ORDER[f.severity], f.subject, f.kind.value, f.message),
        )
        return cls(
            tuple(ordered),
            lock_path,
            distributions_checked,
            environment,
            tuple(notes),
            dict(stats or {}),
        )

    def count(self, severity: Severity) -> int:
        """Findings of *severity* that count: waived ones are left out."""
        return len(self.of_severity(severity))

    def of_severity(self, severity: Severity) -> tuple[Finding, ...]:
        return tuple(
            finding
            for finding in self.findings
            if finding.severity is severity and finding.waived is None
        )

    def waived(self) -> tuple[Finding, ...]:
        return tuple(finding for finding in self.findings if finding.waived is not None)

    def fails(self, *, strict: bool) -> bool:
        """Whether this report fails the gate: any error, or in strict mode any warning."""
        if self.count(Severity.ERROR):
            return True
        return strict and bool(self.count(Severity.WARNING))

    def to_dict(self) -> dict[str, Any]:
        return {
            "lock": self.lock_path,
            "environment": self.environment,
            "distributions_checked": self.distributions_checked,
            "notes": list(self.notes),
            "stats": dict(self.stats),
            "findings": [finding.to_dict() for finding in self.findings],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        try:
            return cls(
                findings=tuple(Finding.from_dict(item) for item in data["findings"]),
                lock_path=_optional_str(data.get("lock")),
                distributions_checked=int(data.get("distributions_checked", 0)),
                environment=_optional_str(data.get("environment")),
                notes=tuple(str(note) for note in data.get("notes", ())),
                stats={str(k): float(v) for k, v in data.get("stats", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MlsupplyError(f"not a pytest-mlsupply report: {exc}") from exc
