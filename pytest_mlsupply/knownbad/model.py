"""The known-bad index: advisories, the releases and files they name, and how to match them.

Everything here is plain data (strings, tuples) so the compiled index can be
cached between runs without pickle; versions are parsed with ``packaging``
only for the names actually installed, which keeps a 50,000-record feed cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from packaging.version import InvalidVersion, Version

from pytest_mlsupply.hashing import Digest

#: OSV event kinds of an ECOSYSTEM range (OSV schema, "affected[].ranges[].events").
INTRODUCED = "introduced"
FIXED = "fixed"
LAST_AFFECTED = "last_affected"
LIMIT = "limit"
EVENT_KINDS = (INTRODUCED, FIXED, LAST_AFFECTED, LIMIT)

#: A range is its events, each ``(kind, version text)``, in the order the record gave them.
Range = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Advisory:
    """One record of a feed: its ids (display id first), summary and where it came from.

    ``ids`` holds the record's own id and its aliases; records without an id
    (per-source ossf reports) get one from their aliases or file name.
    """

    ids: tuple[str, ...]
    summary: str
    source: str
    reference: str | None = None

    @property
    def display_id(self) -> str:
        return self.ids[0]


@dataclass(frozen=True)
class AffectedPackage:
    """What one ``affected[]`` entry says about one PyPI package."""

    name: str  # canonical
    advisory: int  # index into KnownBadIndex.advisories
    versions: tuple[str, ...] = ()
    ranges: tuple[Range, ...] = ()


@dataclass
class KnownBadIndex:
    """Canonical name -> affected entries, digest (``alg:hex``) -> advisories.

    The public matching API (``match_distribution``, ``match_digest``) is what
    the gate, the data fixtures and the foreign-lock readers call.
    """

    advisories: list[Advisory] = field(default_factory=list)
    packages: dict[str, list[AffectedPackage]] = field(default_factory=dict)
    digests: dict[str, list[int]] = field(default_factory=dict)

    def add_advisory(self, advisory: Advisory) -> int:
        self.advisories.append(advisory)
        return len(self.advisories) - 1

    def add_package(self, entry: AffectedPackage) -> None:
        self.packages.setdefault(entry.name, []).append(entry)

    def add_digest(self, digest: Digest, advisory: int) -> None:
        listed = self.digests.setdefault(str(digest), [])
        if advisory not in listed:
            listed.append(advisory)

    def match_distribution(self, name: str, version: str) -> tuple[Advisory, ...]:
        """Advisories naming release *version* of canonical *name*, each once."""
        entries = self.packages.get(name)
        if not entries:
            return ()
        parsed = _parse(version)
        found: list[int] = []
        for entry in entries:
            if entry.advisory not in found and affects(entry, version, parsed):
                found.append(entry.advisory)
        return tuple(self.advisories[i] for i in found)

    def match_digest(self, digest: Digest) -> tuple[Advisory, ...]:
        """Advisories listing this exact file or archive digest."""
        return tuple(self.advisories[i] for i in self.digests.get(str(digest), ()))

    def digest_keys(self) -> Iterable[str]:
        return self.digests.keys()


def _parse(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def affects(entry: AffectedPackage, version: str, parsed: Version | None) -> bool:
    """OSV semantics: affected when listed in ``versions`` or inside any ECOSYSTEM range."""
    for listed in entry.versions:
        other = _parse(listed)
        if parsed is not None and other is not None:
            if parsed == other:
                return True
        elif listed.strip().lower() == version.strip().lower():
            return True  # not PEP 440 on one side: exact text only
    if parsed is None:
        return False
    return any(in_range(range_, parsed) for range_ in entry.ranges)


_ORDER = {INTRODUCED: 0, FIXED: 1, LAST_AFFECTED: 2, LIMIT: 3}


def _event_key(event: tuple[str, str]) -> tuple[int, Version, int]:
    kind, text = event
    if kind == INTRODUCED and text == "0":
        return (0, Version("0"), 0)  # "0": before every version
    return (1, Version(text), _ORDER[kind])


def in_range(events: Range, version: Version) -> bool:
    """The OSV schema's evaluation of one ECOSYSTEM range, events sorted by version.

    ``introduced`` opens the range (``"0"`` from the very first release), ``fixed``
    closes it at that version, ``last_affected`` just after it; with ``limit``
    events the version must also be below one of them. Events whose version is
    not PEP 440 were dropped when the feed was read.
    """
    limits = [Version(text) for kind, text in events if kind == LIMIT]
    if limits and not any(version < limit for limit in limits):
        return False
    affected = False
    for kind, text in sorted((e for e in events if e[0] != LIMIT), key=_event_key):
        bound = Version("0") if text == "0" and kind == INTRODUCED else Version(text)
        if kind == INTRODUCED:
            if version >= bound:
                affected = True
        elif kind == FIXED:
            if version >= bound:
                affected = False
        elif kind == LAST_AFFECTED and version > bound:
            affected = False
    return affected


def valid_events(raw: Sequence[tuple[str, str]]) -> tuple[Range, list[str]]:
    """The events whose version parses, and the texts of those that do not."""
    kept: list[tuple[str, str]] = []
    bad: list[str] = []
    for kind, text in raw:
        if kind == INTRODUCED and text == "0":
            kept.append((kind, text))
            continue
        if _parse(text) is None:
            bad.append(text)
        else:
            kept.append((kind, text))
    return tuple(kept), bad
