"""Known-bad releases and files: offline OSV feeds, hash lists, and a curated built-in list.

The public surface other features call: ``load_feeds`` builds a ``KnownBadIndex``;
``KnownBadIndex.match_distribution(name, version)`` and ``match_digest(Digest)``
answer with the advisories that name a release or a file; ``run_known_bad``
is the gate's one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_mlsupply.findings import Finding
from pytest_mlsupply.knownbad.feeds import (
    BUILTIN_LIST_DATE,
    FeedProblem,
    LoadedFeeds,
    load_feeds,
)
from pytest_mlsupply.knownbad.match import (
    VULNERABILITY_LEVELS,
    VulnerabilityPolicy,
    check_snapshot,
    feed_findings,
    locked_findings,
)
from pytest_mlsupply.knownbad.model import Advisory, KnownBadIndex
from pytest_mlsupply.snapshot import Snapshot

if TYPE_CHECKING:
    from pytest_mlsupply.locks.foreign import ForeignLock

__all__ = [
    "BUILTIN_LIST_DATE",
    "VULNERABILITY_LEVELS",
    "Advisory",
    "FeedProblem",
    "KnownBadConfig",
    "KnownBadIndex",
    "KnownBadResult",
    "LoadedFeeds",
    "VulnerabilityPolicy",
    "load_feeds",
    "run_known_bad",
]

_NOTES_SHOWN = 3


@dataclass(frozen=True)
class KnownBadConfig:
    """Which feeds to apply: user paths (absolute) and whether the built-in list is on;
    how vulnerable (not malicious) releases are reported."""

    paths: tuple[Path, ...] = ()
    builtin: bool = True
    vulnerabilities: VulnerabilityPolicy = field(default_factory=VulnerabilityPolicy)


@dataclass
class KnownBadResult:
    findings: list[Finding]
    notes: list[str] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)


def run_known_bad(
    config: KnownBadConfig,
    snapshot: Snapshot,
    verification: Sequence[Finding] = (),
    *,
    base: Path | None = None,
    cache_dir: Path | None = None,
    rebuild: bool = False,
    lock: ForeignLock | None = None,
    lock_shown: str = "",
) -> KnownBadResult:
    """Load the feeds (from the cache when unchanged) and match *snapshot* against them.

    With a foreign *lock*, the archives and releases it pins are matched too.
    """
    loaded = load_feeds(
        config.paths, builtin=config.builtin, base=base, cache_dir=cache_dir, rebuild=rebuild
    )
    findings = [
        *feed_findings(loaded.problems),
        *check_snapshot(loaded.index, snapshot, verification, config.vulnerabilities),
    ]
    if lock is not None:
        findings.extend(
            locked_findings(
                loaded.index,
                lock,
                lock_shown or lock.path,
                snapshot.distributions,
                config.vulnerabilities,
            )
        )
    notes = [loaded.freshness_note()]
    if loaded.notes:
        shown = "; ".join(loaded.notes[:_NOTES_SHOWN])
        more = len(loaded.notes) - _NOTES_SHOWN
        notes.append(
            f"known-bad: {len(loaded.notes)} parts of records skipped: {shown}"
            + (f"; and {more} more" if more > 0 else "")
        )
    records = sum(s.records for s in loaded.stats)
    stats = {
        "known_bad_records": float(records),
        "known_bad_withdrawn": float(sum(s.withdrawn for s in loaded.stats)),
        "known_bad_hashes": float(sum(s.hashes for s in loaded.stats)),
        "known_bad_seconds": round(loaded.seconds, 3),
    }
    return KnownBadResult(findings, notes, stats)
