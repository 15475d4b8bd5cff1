"""The known-bad rules: (snapshot, verified files, index) -> findings.

A distribution is matched by canonical name and version; an installed file by
the digest it was verified to have (its RECORD hash when it matches RECORD,
its on-disk hash when it was modified); an archive by the hash pip recorded
in ``direct_url.json``. Each distribution gets one finding listing every
advisory id, so duplicates across feeds and aliases are reported once.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.version import Version

from pytest_mlsupply.findings import Finding, Kind, Severity
from pytest_mlsupply.hashing import Digest
from pytest_mlsupply.knownbad.cvss import CvssError, parse_vector, rating
from pytest_mlsupply.knownbad.feeds import FeedProblem
from pytest_mlsupply.knownbad.model import Advisory, Fixes, KnownBadIndex
from pytest_mlsupply.snapshot import InstalledDistribution, Snapshot

if TYPE_CHECKING:
    from pytest_mlsupply.locks.foreign import ForeignLock

HINT_PACKAGE = (
    "uninstall it or install a release no advisory names, and treat credentials this "
    "environment could read as exposed"
)
HINT_FILE = "remove the file (reinstall its distribution from a trusted source) and investigate"
_ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz", ".egg")
HINT_LOCKED = "re-lock to a release and files no advisory names before anyone installs from it"
HINT_FEED = "fix or remove the feed file; the other feeds were still applied"

#: Vulnerable releases (issue 12 item 11): the message says "vulnerable", never "known-bad".
MSG_VULNERABLE = "{name} {version} is vulnerable ({ids}; {severity}): {summary}"
MSG_LOCKED_VULNERABLE = "{lock} pins {name} {version}, a vulnerable release ({ids}; {severity}): "
HINT_UPGRADE = "upgrade to {target} (fixed in {fixes})"
HINT_RELOCK = "re-lock to {target} (fixed in {fixes})"
HINT_NO_FIX = (
    "no fixed release is named by {ids}; remove the package or waive the finding with a "
    "reason (--mlsupply-waivers)"
)
EXPECTED_VULNERABLE = "no release with a known vulnerability"
NO_SEVERITY = "no CVSS score in the record"
NOT_SCORED = "severity {vector}, not scored"
UNSCORED = "{count} without a CVSS score"

#: ``--mlsupply-vulnerabilities`` / ``mlsupply_vulnerabilities`` values.
VULNERABILITIES_OFF = "off"
VULNERABILITIES_WARN = "warn"
VULNERABILITIES_ERROR = "error"
VULNERABILITY_LEVELS = (VULNERABILITIES_OFF, VULNERABILITIES_WARN, VULNERABILITIES_ERROR)


@dataclass(frozen=True)
class VulnerabilityPolicy:
    """How vulnerable (not malicious) releases are reported; malicious ones are always errors.

    ``level`` is the severity of every vulnerable finding (``off`` reports none);
    with ``fail_on_cvss``, a finding whose score is at or above it is an error
    whatever the level, and so is one whose score is unknown (a record without a
    CVSS v3/v2 vector): what cannot be scored is not known to be below the bar.
    """

    level: str = VULNERABILITIES_WARN
    fail_on_cvss: float | None = None

    def __post_init__(self) -> None:
        if self.level not in VULNERABILITY_LEVELS:
            raise ValueError(
                f"vulnerability level {self.level!r} is not one of {VULNERABILITY_LEVELS}"
            )

    def severity(self, score: float | None) -> Severity | None:
        """The finding's severity for *score*, or None when it is not reported."""
        if self.fail_on_cvss is not None and (score is None or score >= self.fail_on_cvss):
            return Severity.ERROR
        if self.level == VULNERABILITIES_ERROR:
            return Severity.ERROR
        if self.level == VULNERABILITIES_WARN:
            return Severity.WARNING
        return None


def advisory_ids(advisories: Sequence[Advisory]) -> tuple[str, ...]:
    """All ids, deduplicated, real ids before file-name fallbacks."""
    ordered = sorted(advisories, key=lambda a: a.display_id.startswith("MAL-0000-"))
    return tuple(dict.fromkeys(i for a in ordered for i in a.ids))


def describe_advisories(advisories: Sequence[Advisory]) -> tuple[str, str]:
    """All ids as text (see ``advisory_ids``) and the best summary."""
    ordered = sorted(advisories, key=lambda a: a.display_id.startswith("MAL-0000-"))
    return ", ".join(advisory_ids(advisories)), ordered[0].summary


def severity_of(advisories: Sequence[Advisory]) -> tuple[float | None, str]:
    """The highest CVSS base score of *advisories* and how to say it.

    The score is None (unknown) when an advisory has no scorable vector and shares
    no id or alias with one that has (a PYSEC record without severity and the GHSA
    record of the same CVE are one vulnerability): an unscored vulnerability may be
    the worst of them. CVSS v4.0 and other severity types are shown, not scored.
    """
    scored: dict[int, float] = {}
    shown: list[str] = []
    for number, advisory in enumerate(advisories):
        for kind, text in advisory.severity:
            try:
                vector = parse_vector(text, kind) if kind.startswith("CVSS_") else None
            except CvssError:
                vector = None
            if vector is not None and vector.score is not None:
                scored[number] = max(scored.get(number, 0.0), vector.score)
                continue
            label = text if vector is not None else f"{kind} {text}"
            if label not in shown:
                shown.append(label)
    scored_ids = {i for number in scored for i in advisories[number].ids}
    unscored = sum(
        1
        for number, advisory in enumerate(advisories)
        if number not in scored and not scored_ids.intersection(advisory.ids)
    )
    if not scored:
        return None, NOT_SCORED.format(vector=shown[0]) if shown else NO_SEVERITY
    top = max(scored.values())
    text = f"CVSS {top:.1f} {rating(top)}"
    if unscored:
        return None, f"{text}, {UNSCORED.format(count=unscored)}"
    return top, text


def _fixes(found: Sequence[tuple[Advisory, Fixes]]) -> tuple[str | None, tuple[str, ...], str]:
    """The release to upgrade to, every fixed version named, and the ids no fix is named for.

    The target is the highest of each advisory's lowest fix above the installed version:
    the first release every advisory with a fix calls fixed.
    """
    lowest = [fixes[0] for _advisory, fixes in found if fixes]
    every = sorted({v for _advisory, fixes in found for v in fixes}, key=Version)
    target = max(lowest, key=Version) if lowest else None
    unfixed = [advisory.display_id for advisory, fixes in found if not fixes]
    return target, tuple(every), ", ".join(unfixed)


def _vulnerable_hint(found: Sequence[tuple[Advisory, Fixes]], template: str) -> tuple[str, str]:
    """The hint and the ``expected`` text of a vulnerable finding."""
    target, fixes, unfixed = _fixes(found)
    parts = []
    if target is not None:
        parts.append(template.format(target=target, fixes=", ".join(fixes)))
    if unfixed:
        parts.append(HINT_NO_FIX.format(ids=unfixed))
    expected = f"{target} or later" if target is not None else EXPECTED_VULNERABLE
    return "; ".join(parts), expected


def _malicious_first(
    found: Sequence[tuple[Advisory, Fixes]],
) -> tuple[list[Advisory], list[tuple[Advisory, Fixes]]]:
    """The malicious advisories, and the vulnerable ones with their fixes.

    A malware finding carries only the malicious advisories' ids as data (its message
    lists every id): waivers match those ids, and a waiver written for a CVE of the
    same release must not accept the malware reported later (issue 12 item 11).
    """
    malicious = [advisory for advisory, _fixes in found if advisory.malicious]
    vulnerable = [(advisory, fixes) for advisory, fixes in found if not advisory.malicious]
    return malicious, vulnerable


def _with_severity(finding: Finding, severity: Severity) -> Finding:
    if finding.severity is severity:
        return finding
    return dataclasses.replace(finding, severity=severity)


def package_findings(
    index: KnownBadIndex,
    distributions: Iterable[InstalledDistribution],
    policy: VulnerabilityPolicy | None = None,
) -> Iterator[Finding]:
    """One finding per matched release: malicious (any malicious advisory) or vulnerable."""
    policy = policy or VulnerabilityPolicy()
    for dist in distributions:
        found = index.match_release(dist.name, dist.version)
        if not found:
            continue
        malicious, vulnerable = _malicious_first(found)
        if not malicious:
            yield from _vulnerable_finding(dist, vulnerable, policy)
            continue
        # A malicious release is reported as malware, every advisory id listed.
        advisories = [*malicious, *(advisory for advisory, _fixes in vulnerable)]
        ids, summary = describe_advisories(malicious)
        ids = ", ".join(advisory_ids(advisories))
        yield Finding.of(
            Kind.KNOWN_BAD_PACKAGE,
            dist.name,
            f"{dist.name} {dist.version} is a known-bad release ({ids}): {summary}",
            expected="no known-bad release",
            actual=f"{dist.name} {dist.version}",
            hint=HINT_PACKAGE,
            location=dist.metadata_path,
            advisories=advisory_ids(malicious),
        )


def _vulnerable_finding(
    dist: InstalledDistribution,
    found: Sequence[tuple[Advisory, Fixes]],
    policy: VulnerabilityPolicy,
) -> Iterator[Finding]:
    advisories = [advisory for advisory, _fixes in found]
    score, severity_text = severity_of(advisories)
    severity = policy.severity(score)
    if severity is None:
        return
    ids, summary = describe_advisories(advisories)
    hint, expected = _vulnerable_hint(found, HINT_UPGRADE)
    finding = Finding.of(
        Kind.VULNERABLE,
        dist.name,
        MSG_VULNERABLE.format(
            name=dist.name, version=dist.version, ids=ids, severity=severity_text, summary=summary
        ),
        expected=expected,
        actual=f"{dist.name} {dist.version}",
        hint=hint,
        location=dist.metadata_path,
        advisories=advisory_ids(advisories),
    )
    yield _with_severity(finding, severity)


def file_findings(
    index: KnownBadIndex,
    distributions: Iterable[InstalledDistribution],
    verification: Sequence[Finding],
) -> Iterator[Finding]:
    """Installed files and archives whose verified digest a feed lists."""
    keys = index.digest_keys()
    if not keys:
        return
    spelled = index.record_spellings()
    differs = {
        f.location: f
        for f in verification
        if f.kind in (Kind.FILE_MODIFIED, Kind.FILE_MISSING) and f.location
    }
    seen: set[str] = set()  # a file two RECORDs list (namespace __init__.py) is reported once
    for finding in differs.values():
        if (
            finding.kind is Kind.FILE_MODIFIED
            and finding.actual
            and index.has_digest(finding.actual)
        ):
            yield _file_finding(index, finding.subject, str(finding.location), finding.actual)
    for dist in distributions:
        archive = dist.source.archive_hash
        if archive and index.has_digest(archive.lower()):
            yield _file_finding(
                index,
                dist.name,
                f"the archive {dist.name} {dist.version} was installed from",
                archive.lower(),
                dist.metadata_path,
            )
        rows = dist.record_rows
        if rows is None and dist.record_stat is not None:
            rows = _read_rows(dist)  # the snapshot took RECORD's summary from its cache
        if not rows:
            continue
        for relative, hash_text, _size in rows:
            found = spelled.get(hash_text.rstrip("="))
            if found is None:
                continue
            absolute = os.path.normpath(os.path.join(dist.location, relative))
            if absolute in differs or absolute in seen:
                continue  # a modified file's bytes are not its RECORD hash: judged above
            seen.add(absolute)
            yield _file_finding(index, dist.name, absolute, found)


def _read_rows(dist: InstalledDistribution) -> tuple[tuple[str, str, str], ...]:
    from pytest_mlsupply.record import iter_record_rows

    try:
        text = Path(dist.metadata_path, "RECORD").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ()
    return tuple(iter_record_rows(text))


def _file_finding(
    index: KnownBadIndex, subject: str, what: str, key: str, location: str | None = None
) -> Finding:
    advisories = index.match_digest(Digest.parse(key))
    ids, summary = describe_advisories(advisories)
    return Finding.of(
        Kind.KNOWN_BAD_FILE,
        subject,
        f"{what} has a known-bad digest {key[: key.index(':') + 13]} ({ids}): {summary}",
        expected="no known-bad file",
        actual=key,
        hint=HINT_FILE,
        location=location or what,
        advisories=advisory_ids(advisories),
    )


def feed_findings(problems: Iterable[FeedProblem]) -> Iterator[Finding]:
    for problem in problems:
        yield Finding.of(
            Kind.KNOWN_BAD_FEED,
            problem.path,
            f"known-bad feed {problem.describe()}",
            hint=HINT_FEED,
            location=problem.path,
        )


def locked_findings(
    index: KnownBadIndex,
    lock: ForeignLock,
    lock_shown: str,
    installed: Iterable[InstalledDistribution],
    policy: VulnerabilityPolicy | None = None,
) -> Iterator[Finding]:
    """Archives a lock pins whose hash a feed lists, and known-bad releases it pins.

    A lock pins what every machine that installs from it gets, including
    platforms other than this one, so every entry is judged whether or not it
    is installed here. A pinned release installed here is already reported as
    installed, and is not reported twice.
    """
    from pytest_mlsupply.locks.foreign import locked_artifacts

    seen_files: set[tuple[str, str]] = set()
    for ref in locked_artifacts(lock):
        key = str(ref.digest)
        if (ref.filename, key) in seen_files or not index.has_digest(key):
            continue
        seen_files.add((ref.filename, key))
        advisories = index.match_digest(ref.digest)
        ids, summary = describe_advisories(advisories)
        release = f"{ref.name} {ref.version or '(unpinned)'}"
        # Hashed requirement lines name no file: say "an archive of" instead.
        what = (
            f"{ref.filename} ({release})"
            if ref.filename.endswith(_ARCHIVE_SUFFIXES)
            else f"an archive of {release}"
        )
        yield Finding.of(
            Kind.KNOWN_BAD_FILE,
            ref.name,
            f"{lock_shown} pins {what} whose digest {key[: key.index(':') + 13]} is known bad "
            f"({ids}): {summary}",
            expected="no known-bad archive in the lock",
            actual=key,
            hint=HINT_LOCKED,
            location=lock_shown,
            advisories=advisory_ids(advisories),
        )
    here = {(dist.name, dist.version) for dist in installed}
    seen_releases: set[tuple[str, str]] = set()
    for package in lock.packages:
        pinned = (package.name, package.version or "")
        if not package.version or pinned in seen_releases or pinned in here:
            continue
        seen_releases.add(pinned)
        found = index.match_release(package.name, package.version)
        malicious, vulnerable = _malicious_first(found)
        if vulnerable and not malicious:
            yield from _locked_vulnerable(
                package.name, package.version, vulnerable, lock_shown, policy
            )
        elif malicious:
            named = [*malicious, *(advisory for advisory, _fixes in vulnerable)]
            ids, summary = describe_advisories(malicious)
            ids = ", ".join(advisory_ids(named))
            yield Finding.of(
                Kind.KNOWN_BAD_PACKAGE,
                package.name,
                f"{lock_shown} pins {package.name} {package.version}, a known-bad release "
                f"({ids}): {summary}",
                expected="no known-bad release in the lock",
                actual=f"{package.name} {package.version}",
                hint=HINT_LOCKED,
                location=lock_shown,
                advisories=advisory_ids(malicious),
            )


def _locked_vulnerable(
    name: str,
    version: str,
    found: Sequence[tuple[Advisory, Fixes]],
    lock_shown: str,
    policy: VulnerabilityPolicy | None,
) -> Iterator[Finding]:
    advisories = [advisory for advisory, _fixes in found]
    score, severity_text = severity_of(advisories)
    severity = (policy or VulnerabilityPolicy()).severity(score)
    if severity is None:
        return
    ids, summary = describe_advisories(advisories)
    hint, expected = _vulnerable_hint(found, HINT_RELOCK)
    message = MSG_LOCKED_VULNERABLE.format(
        lock=lock_shown, name=name, version=version, ids=ids, severity=severity_text
    )
    finding = Finding.of(
        Kind.VULNERABLE,
        name,
        message + summary,
        expected=expected,
        actual=f"{name} {version}",
        hint=hint,
        location=lock_shown,
        advisories=advisory_ids(advisories),
    )
    yield _with_severity(finding, severity)


def check_snapshot(
    index: KnownBadIndex,
    snapshot: Snapshot,
    verification: Sequence[Finding] = (),
    policy: VulnerabilityPolicy | None = None,
) -> list[Finding]:
    """Every known-bad finding for *snapshot* (hidden shadowed copies included)."""
    everything = [*snapshot.distributions, *(pair.hidden for pair in snapshot.shadowed)]
    return [
        *package_findings(index, everything, policy),
        *file_findings(index, everything, verification),
    ]
