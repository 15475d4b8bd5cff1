"""Waivers: findings a team has accepted for a while, with a reason and an end date.

A gate that cannot be turned on until everything is fixed is never turned on.
A waiver lets a finding through (it is still reported, marked as waived) until
its ``expires`` date; after that the waiver stops applying and is an error of
its own, so an exception cannot quietly become permanent. A waiver that
matched nothing is a warning: it is stale and should be removed.

The file is TOML::

    [[waiver]]
    match = "iniconfig"        # a distribution, a file path or glob, or an advisory id
    kind = "version-changed"   # optional: only findings of this kind
    reason = "pinned by the base image until INFRA-123"
    expires = 2026-12-31
"""

from __future__ import annotations

import dataclasses
import datetime
import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.utils import canonicalize_name

from pytest_mlsupply.errors import FileProblemsError
from pytest_mlsupply.findings import Finding, Kind, Report

WAIVER_TABLE = "waiver"
REQUIRED_KEYS = ("match", "reason", "expires")
KNOWN_KEYS = frozenset({*REQUIRED_KEYS, "kind"})

#: Advisory identifiers as OSV spells them: MAL-2026-2144, PYSEC-2026-2,
#: GHSA-92x9-889m-jgmw, CVE-2024-1234 ... (a prefix of capitals, a dash, the rest).
_ADVISORY_ID = re.compile(r"^[A-Z][A-Z0-9]*-[A-Za-z0-9][A-Za-z0-9.:_-]*$")
_GLOB_CHARACTERS = frozenset("*?[")
#: Malware is waived only by a waiver meant for it: an advisory id the finding rests on, or
#: a name or path with this ``kind``. A waiver by name or path written for drift or for a
#: vulnerability must not silence malware reported later for the same package (issue 12).
MALWARE_KINDS = frozenset({Kind.KNOWN_BAD_PACKAGE, Kind.KNOWN_BAD_FILE})
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


class WaiverFileError(FileProblemsError):
    """A waivers file that cannot be used; the message lists every problem."""


@dataclass(frozen=True)
class Waiver:
    """One accepted finding (or family of findings), valid up to and including ``expires``."""

    match: str
    reason: str
    expires: datetime.date
    kind: Kind | None = None
    #: Where it was written, for messages: ``waivers.toml: waiver[2]``.
    origin: str = ""

    @property
    def matches_advisory(self) -> bool:
        return bool(_ADVISORY_ID.match(self.match))

    @property
    def matches_path(self) -> bool:
        return "/" in self.match or bool(_GLOB_CHARACTERS & set(self.match))

    def expired(self, today: datetime.date) -> bool:
        return today > self.expires

    def label(self) -> str:
        """What a waived finding carries: the reason and the end date."""
        return f"{self.reason} (waived until {self.expires.isoformat()}, {self.origin})"

    def applies_to(self, finding: Finding) -> bool:
        if self.kind is not None and finding.kind is not self.kind:
            return False
        if finding.kind in (Kind.WAIVER_EXPIRED, Kind.WAIVER_UNUSED):
            return False
        if self.matches_advisory:
            wanted = self.match.upper()
            if any(ident.upper() == wanted for ident in advisory_ids(finding)):
                return True
            # "AB-test" is also a valid distribution name: fall through to the name match.
        if finding.kind in MALWARE_KINDS and self.kind is None:
            return False
        if self.matches_path:
            return _path_matches(self.match, finding.location) or _path_matches(
                self.match, finding.subject
            )
        return canonicalize_name(self.match) == finding.subject or self.match == finding.subject


def advisory_ids(finding: Finding) -> tuple[str, ...]:
    """The advisory ids a finding rests on (known-bad findings carry them as data)."""
    return finding.advisories


def _path_matches(pattern: str, value: str | None) -> bool:
    """Glob match on ``/``-separated paths; a relative pattern may match any trailing part."""
    if not value:
        return False
    path = value.replace("\\", "/")
    if fnmatch.fnmatchcase(path, pattern):
        return True
    if pattern.startswith(("/", "*")):
        return False
    return fnmatch.fnmatchcase(path, f"*/{pattern}") or PurePosixPath(path).match(pattern)


def load_waivers(path: Path, *, shown: str | None = None) -> tuple[Waiver, ...]:
    """Read a waivers file; every problem is reported at once with its key."""
    from pytest_mlsupply.tomlfile import parse_toml

    name = shown or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WaiverFileError(name, ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WaiverFileError(name, [f"cannot read it: {exc}"]) from None
    data, problem = parse_toml(text)
    if data is None:
        raise WaiverFileError(name, [problem or "not valid TOML"])
    return parse_waivers(data, name)


def parse_waivers(data: Mapping[str, Any], name: str) -> tuple[Waiver, ...]:
    problems: list[str] = []
    unknown = sorted(set(data) - {WAIVER_TABLE})
    if unknown:
        problems.append(f"unknown top-level key(s) {', '.join(unknown)}; expected [[waiver]]")
    entries = data.get(WAIVER_TABLE, [])
    if not isinstance(entries, list):
        problems.append("'waiver' must be an array of tables, written [[waiver]]")
        entries = []
    waivers: list[Waiver] = []
    for index, entry in enumerate(entries, start=1):
        where = f"waiver[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a table")
            continue
        entry_problems: list[str] = []
        for key in REQUIRED_KEYS:
            if key not in entry:
                entry_problems.append(f"{where}: '{key}' is required")
        for key in sorted(set(entry) - KNOWN_KEYS):
            entry_problems.append(
                f"{where}.{key}: unknown key (allowed: {', '.join(sorted(KNOWN_KEYS))})"
            )
        match = entry.get("match")
        if "match" in entry and (not isinstance(match, str) or not match.strip()):
            entry_problems.append(f"{where}.match: must be a non-empty string, got {match!r}")
        reason = entry.get("reason")
        if "reason" in entry and (not isinstance(reason, str) or not reason.strip()):
            entry_problems.append(
                f"{where}.reason: must say why the finding is accepted, got {reason!r}"
            )
        expires = _date(entry, f"{where}.expires", entry_problems)
        kind = _kind(entry.get("kind"), f"{where}.kind", entry_problems)
        problems.extend(entry_problems)
        if entry_problems:
            continue
        assert isinstance(match, str) and isinstance(reason, str) and expires is not None
        waivers.append(
            Waiver(
                match=match.strip(),
                reason=reason.strip(),
                expires=expires,
                kind=kind,
                origin=f"{name}: {where}",
            )
        )
    if problems:
        raise WaiverFileError(name, problems)
    return tuple(waivers)


def _date(entry: Mapping[str, Any], where: str, problems: list[str]) -> datetime.date | None:
    if "expires" not in entry:
        return None
    value = entry["expires"]
    if isinstance(value, datetime.datetime):
        problems.append(f"{where}: give a date without a time, like 2026-12-31")
        return None
    if isinstance(value, datetime.date):
        return value
    # YYYY-MM-DD only: 3.11+'s date.fromisoformat also reads "20261231" and "2026-W53-4", which
    # 3.10 rejects, and a waiver file must mean the same on every Python.
    if isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
        try:
            return datetime.date.fromisoformat(value.strip())
        except ValueError:
            pass
    problems.append(f"{where}: expected a date like 2026-12-31, got {value!r}")
    return None


def _kind(value: object, where: str, problems: list[str]) -> Kind | None:
    if value is None:
        return None
    try:
        return Kind(value)
    except ValueError:
        choices = ", ".join(kind.value for kind in Kind)
        problems.append(f"{where}: unknown finding kind {value!r} (one of: {choices})")
        return None


def apply_waivers(report: Report, waivers: Sequence[Waiver], *, today: datetime.date) -> Report:
    """Mark waived findings, and report expired and unused waivers as findings of their own."""
    if not waivers:
        return report
    active = [waiver for waiver in waivers if not waiver.expired(today)]
    used: set[int] = set()
    findings: list[Finding] = []
    for finding in report.findings:
        for number, waiver in enumerate(active):
            if finding.waived is None and waiver.applies_to(finding):
                finding = dataclasses.replace(finding, waived=waiver.label())
                used.add(number)
                break
        findings.append(finding)
    findings.extend(_expired_findings(waivers, today))
    findings.extend(
        Finding.of(
            Kind.WAIVER_UNUSED,
            waiver.match,
            f"waiver for {waiver.match!r}{_kind_text(waiver)} matched no finding ({waiver.origin})",
            hint="remove it if what it waived has been fixed",
            location=waiver.origin,
        )
        for number, waiver in enumerate(active)
        if number not in used
    )
    return dataclasses.replace(report, findings=Report.build(findings).findings)


def _kind_text(waiver: Waiver) -> str:
    return f" (kind {waiver.kind.value})" if waiver.kind else ""


def _expired_findings(waivers: Iterable[Waiver], today: datetime.date) -> Iterable[Finding]:
    for waiver in waivers:
        if waiver.expired(today):
            yield Finding.of(
                Kind.WAIVER_EXPIRED,
                waiver.match,
                f"waiver for {waiver.match!r}{_kind_text(waiver)} expired on "
                f"{waiver.expires.isoformat()} ({waiver.origin}); what it waived is no "
                f"longer accepted. Its reason was: {waiver.reason}",
                expected=f"expires >= {today.isoformat()}",
                actual=waiver.expires.isoformat(),
                hint="fix what it waived, or extend 'expires' after a review",
                location=waiver.origin,
            )
