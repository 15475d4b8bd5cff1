"""The known-bad rules: (snapshot, verified files, index) -> findings.

A distribution is matched by canonical name and version; an installed file by
the digest it was verified to have (its RECORD hash when it matches RECORD,
its on-disk hash when it was modified); an archive by the hash pip recorded
in ``direct_url.json``. Each distribution gets one finding listing every
advisory id, so duplicates across feeds and aliases are reported once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence

from pytest_mlsupply.findings import Finding, Kind
from pytest_mlsupply.hashing import Digest
from pytest_mlsupply.knownbad.feeds import FeedProblem
from pytest_mlsupply.knownbad.model import Advisory, KnownBadIndex
from pytest_mlsupply.snapshot import InstalledDistribution, Snapshot

HINT_PACKAGE = (
    "uninstall it or install a release no advisory names, and treat credentials this "
    "environment could read as exposed"
)
HINT_FILE = "remove the file (reinstall its distribution from a trusted source) and investigate"
HINT_FEED = "fix or remove the feed file; the other feeds were still applied"


def describe_advisories(advisories: Sequence[Advisory]) -> tuple[str, str]:
    """All ids (deduplicated, real ids before file-name fallbacks) and the best summary."""
    ordered = sorted(advisories, key=lambda a: a.display_id.startswith("MAL-0000-"))
    ids = list(dict.fromkeys(i for a in ordered for i in a.ids))
    return ", ".join(ids), ordered[0].summary


def package_findings(
    index: KnownBadIndex, distributions: Iterable[InstalledDistribution]
) -> Iterator[Finding]:
    for dist in distributions:
        advisories = index.match_distribution(dist.name, dist.version)
        if not advisories:
            continue
        ids, summary = describe_advisories(advisories)
        yield Finding.of(
            Kind.KNOWN_BAD_PACKAGE,
            dist.name,
            f"{dist.name} {dist.version} is a known-bad release ({ids}): {summary}",
            expected="no known-bad release",
            actual=f"{dist.name} {dist.version}",
            hint=HINT_PACKAGE,
            location=dist.metadata_path,
        )


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


def check_snapshot(
    index: KnownBadIndex, snapshot: Snapshot, verification: Sequence[Finding] = ()
) -> list[Finding]:
    """Every known-bad finding for *snapshot* (hidden shadowed copies included)."""
    everything = [*snapshot.distributions, *(pair.hidden for pair in snapshot.shadowed)]
    return [
        *package_findings(index, everything),
        *file_findings(index, everything, verification),
    ]
