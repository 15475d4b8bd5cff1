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
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_mlsupply.findings import Finding, Kind
from pytest_mlsupply.hashing import Digest
from pytest_mlsupply.knownbad.feeds import FeedProblem
from pytest_mlsupply.knownbad.model import Advisory, KnownBadIndex
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


def advisory_ids(advisories: Sequence[Advisory]) -> tuple[str, ...]:
    """All ids, deduplicated, real ids before file-name fallbacks."""
    ordered = sorted(advisories, key=lambda a: a.display_id.startswith("MAL-0000-"))
    return tuple(dict.fromkeys(i for a in ordered for i in a.ids))


def describe_advisories(advisories: Sequence[Advisory]) -> tuple[str, str]:
    """All ids as text (see ``advisory_ids``) and the best summary."""
    ordered = sorted(advisories, key=lambda a: a.display_id.startswith("MAL-0000-"))
    return ", ".join(advisory_ids(advisories)), ordered[0].summary


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
            advisories=advisory_ids(advisories),
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
        advisories = index.match_distribution(package.name, package.version)
        if advisories:
            ids, summary = describe_advisories(advisories)
            yield Finding.of(
                Kind.KNOWN_BAD_PACKAGE,
                package.name,
                f"{lock_shown} pins {package.name} {package.version}, a known-bad release "
                f"({ids}): {summary}",
                expected="no known-bad release in the lock",
                actual=f"{package.name} {package.version}",
                hint=HINT_LOCKED,
                location=lock_shown,
                advisories=advisory_ids(advisories),
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
