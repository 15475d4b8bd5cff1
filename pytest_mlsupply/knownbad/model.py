"""The known-bad index: advisories, the releases and files they name, and how to match them.

Everything here is plain data (strings, tuples) so the compiled index can be
cached between runs without pickle; versions are parsed with ``packaging``
only for the names actually installed, which keeps a 50,000-record feed cheap.
"""

from __future__ import annotations

import contextlib
import marshal
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from packaging.version import Version

from pytest_mlsupply.hashing import Digest, DigestError
from pytest_mlsupply.limits import parse_version

#: The advisory a name or digest gets when its cached entries cannot be decoded: fail closed.
CACHE_ENTRY_BROKEN = (
    "the known-bad index cache holds unreadable entries for it; rerun with "
    "--mlsupply-rehash (or `check --rehash`) to compile the feeds afresh"
)
CACHE_SOURCE = "known-bad index cache"

#: OSV event kinds of an ECOSYSTEM range (OSV schema, "affected[].ranges[].events").
INTRODUCED = "introduced"
FIXED = "fixed"
LAST_AFFECTED = "last_affected"
LIMIT = "limit"
EVENT_KINDS = (INTRODUCED, FIXED, LAST_AFFECTED, LIMIT)

#: A range is its events, each ``(kind, version text)``, in the order the record gave them.
Range = tuple[tuple[str, str], ...]
#: The fixed versions of one advisory for one release, ascending.
Fixes = tuple[str, ...]


#: An advisory's severity entries as the record gives them: (OSV type, score text).
Severities = tuple[tuple[str, str], ...]
#: What the cache stores per advisory (``Advisory`` as plain values).
AdvisoryFields = tuple[tuple[str, ...], str, str, str | None, bool, Severities]


class Advisory(NamedTuple):
    """One record of a feed: its ids (display id first), summary and where it came from.

    ``ids`` holds the record's own id and its aliases; records without an id
    (per-source ossf reports) get one from their aliases or file name. A
    NamedTuple, not a dataclass: a cold load builds 50,000 of them.
    ``malicious`` tells a malicious release (an ossf ``MAL-`` record) from a
    vulnerable one (issue 12 item 11); it defaults to True, so an advisory that
    does not say is reported as the worse of the two. ``severity`` holds the
    record's CVSS vectors (checked when the feed was read).
    """

    ids: tuple[str, ...]
    summary: str
    source: str
    reference: str | None = None
    malicious: bool = True
    severity: Severities = ()

    @property
    def display_id(self) -> str:
        return self.ids[0]


class AffectedPackage(NamedTuple):
    """What one ``affected[]`` entry says about one PyPI package."""

    name: str  # canonical
    advisory: int  # index into KnownBadIndex.advisories
    versions: tuple[str, ...] = ()
    ranges: tuple[Range, ...] = ()


class PackedBlobs:
    """Many small blobs by key, kept as one key string, one offset array and one blob.

    ``marshal`` loads these three values at copying speed, where a dict of 40,000 keys to
    bytes costs 16 ms to rebuild; the key -> position table is built on the first lookup.
    Each blob can be taken once (``pop``), like the dict it replaces.
    """

    SEPARATOR = "\0"

    def __init__(self, keys: str, ends: bytes, blob: bytes) -> None:
        """Raises ValueError or TypeError for values that were not made by ``pack``."""
        if not (isinstance(keys, str) and isinstance(ends, bytes) and isinstance(blob, bytes)):
            raise TypeError("packed blobs are a str and two bytes values")
        self._keys = keys
        self._ends = array("Q")
        self._ends.frombytes(ends)
        count = keys.count(self.SEPARATOR) + 1 if keys or self._ends else 0
        if count != len(self._ends) or (self._ends and self._ends[-1] != len(blob)):
            raise ValueError("packed blobs do not add up")
        self._blob = blob
        self._where: dict[str, int] | None = None
        self._left = len(self._ends)

    @classmethod
    def pack(cls, blobs: Mapping[str, bytes]) -> tuple[str, bytes, bytes] | None:
        """The three values to store, or None when a key holds the separator (store a dict)."""
        if any(cls.SEPARATOR in key for key in blobs):
            return None
        ends = array("Q")
        offset = 0
        for value in blobs.values():
            offset += len(value)
            ends.append(offset)
        return cls.SEPARATOR.join(blobs), ends.tobytes(), b"".join(blobs.values())

    def __len__(self) -> int:
        return self._left

    def pop(self, key: str, default: None = None) -> bytes | None:
        if self._where is None:
            names = self._keys.split(self.SEPARATOR) if self._ends else []
            self._where = {name: position for position, name in enumerate(names)}
        position = self._where.pop(key, None)
        if position is None:
            return default
        self._left -= 1
        start = self._ends[position - 1] if position else 0
        return self._blob[start : self._ends[position]]


@dataclass
class KnownBadIndex:
    """Canonical name -> affected entries, digest (``alg:hex``) -> advisories.

    The public matching API (``match_distribution``, ``match_digest``) is what
    the gate, the data fixtures and the foreign-lock readers call.
    """

    advisories: list[Advisory] = field(default_factory=list)
    packages: dict[str, list[AffectedPackage]] = field(default_factory=dict)
    digests: dict[str, list[int]] = field(default_factory=dict)
    #: Entries still in their cached, marshalled form: decoded only when a name or a
    #: digest is looked up, so a warm run over a 50,000-record feed builds ~200 objects.
    lazy_packages: dict[str, bytes] | PackedBlobs = field(default_factory=dict)
    lazy_digests: dict[str, bytes] = field(default_factory=dict)
    #: RECORD spelling (``sha256=b64``) -> ``alg:hex``, for matching RECORD rows as text.
    spellings: dict[str, str] | None = None
    #: Names whose cached entries could not be decoded, and the advisory that says so.
    broken_names: dict[str, int] = field(default_factory=dict)
    _known: dict[Advisory, int] = field(default_factory=dict, repr=False)

    def add_advisory(self, advisory: Advisory) -> int:
        self.advisories.append(advisory)
        return len(self.advisories) - 1

    def _cached_advisory(self, fields: AdvisoryFields) -> int:
        advisory = Advisory(*fields)
        known = self._known.get(advisory)
        if known is None:
            known = self._known[advisory] = self.add_advisory(advisory)
        return known

    def _broken(self) -> int:
        return self._cached_advisory(_BROKEN_FIELDS)

    def _decode_name(self, name: str) -> None:
        blob = self.lazy_packages.pop(name, None)
        if blob is None:
            return
        try:
            decoded = [
                (_advisory_fields(fields), _strings(versions), _ranges(ranges))
                for fields, versions, ranges in _marshalled_list(blob)
            ]
        except (EOFError, ValueError, TypeError):
            # A cache entry we cannot read says nothing about the name: it fails closed,
            # matching every version, where a miss would pass whatever the feed said.
            self.broken_names[name] = self._broken()
            return
        for fields, versions, ranges in decoded:
            advisory = self._cached_advisory(fields)
            self.add_package(AffectedPackage(name, advisory, versions, ranges))

    def _decode_digest(self, key: str) -> None:
        blob = self.lazy_digests.pop(key, None)
        if blob is None:
            return
        listed = self.digests.setdefault(key, [])
        try:
            decoded = [_advisory_fields(fields) for fields in _marshalled_list(blob)]
        except (EOFError, ValueError, TypeError):
            decoded = [_BROKEN_FIELDS]
        for fields in decoded:
            advisory = self._cached_advisory(fields)
            if advisory not in listed:
                listed.append(advisory)

    def to_blobs(self) -> tuple[dict[str, bytes], dict[str, bytes]]:
        """Per name and per digest, the entries marshalled on their own (see lazy_*)."""

        def fields(i: int) -> AdvisoryFields:
            a = self.advisories[i]
            return (a.ids, a.summary, a.source, a.reference, a.malicious, a.severity)

        packages = {
            name: marshal.dumps([(fields(e.advisory), e.versions, e.ranges) for e in entries])
            for name, entries in self.packages.items()
        }
        digests = {
            key: marshal.dumps([fields(i) for i in ids]) for key, ids in self.digests.items()
        }
        return packages, digests

    def add_package(self, entry: AffectedPackage) -> None:
        self.packages.setdefault(entry.name, []).append(entry)

    def add_digest(self, digest: Digest, advisory: int) -> None:
        self.spellings = None
        listed = self.digests.setdefault(str(digest), [])
        if advisory not in listed:
            listed.append(advisory)

    def match_distribution(self, name: str, version: str) -> tuple[Advisory, ...]:
        """Advisories naming release *version* of canonical *name*, each once."""
        return tuple(advisory for advisory, _fixed in self.match_release(name, version))

    def match_release(self, name: str, version: str) -> tuple[tuple[Advisory, Fixes], ...]:
        """Each advisory naming release *version* of *name*, with the fixed versions its
        ranges give above *version* (ascending; empty when the record names none)."""
        if self.lazy_packages:
            self._decode_name(name)
        if name in self.broken_names:
            return ((self.advisories[self.broken_names[name]], ()),)
        entries = self.packages.get(name)
        if not entries:
            return ()
        parsed = _parse(version)
        found: dict[int, list[str]] = {}
        for entry in entries:
            if affects(entry, version, parsed):
                fixes = found.setdefault(entry.advisory, [])
                fixes.extend(fixed_after(entry, parsed))
        return tuple(
            (self.advisories[i], tuple(sorted(set(fixes), key=Version)))
            for i, fixes in found.items()
        )

    def match_digest(self, digest: Digest) -> tuple[Advisory, ...]:
        """Advisories listing this exact file or archive digest."""
        key = str(digest)
        if self.lazy_digests:
            self._decode_digest(key)
        return tuple(self.advisories[i] for i in self.digests.get(key, ()))

    def has_digest(self, key: str) -> bool:
        """Whether a feed lists the ``alg:hex`` digest *key* (no decoding needed)."""
        return key in self.digests or key in self.lazy_digests

    def digest_keys(self) -> list[str]:
        return [*self.digests, *self.lazy_digests]

    def record_spellings(self) -> dict[str, str]:
        """Every listed digest in RECORD's spelling, so RECORD rows match without parsing."""
        if self.spellings is None:
            self.spellings = {}
            for key in self.digest_keys():
                with contextlib.suppress(DigestError):
                    self.spellings[Digest.parse(key).to_record()] = key
        return self.spellings


def _parse(text: str) -> Version | None:
    return parse_version(text)


_BROKEN_FIELDS: AdvisoryFields = ((CACHE_SOURCE,), CACHE_ENTRY_BROKEN, CACHE_SOURCE, None, True, ())


def _marshalled_list(blob: bytes) -> list[Any]:
    """``marshal.loads`` of one cached entry, which must be a list (of tuples)."""
    value = marshal.loads(blob)
    if not isinstance(value, list) or not all(isinstance(v, tuple) for v in value):
        raise ValueError("not a list of tuples")
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError("not a tuple of strings")
    return value


def _advisory_fields(value: Any) -> AdvisoryFields:
    if not (isinstance(value, tuple) and len(value) == 6):
        raise ValueError("not advisory fields")
    ids, summary, source, reference, malicious, severity = value
    if not _strings(ids) or not isinstance(summary, str) or not isinstance(source, str):
        raise ValueError("not advisory fields")
    if reference is not None and not isinstance(reference, str):
        raise ValueError("not advisory fields")
    if not isinstance(malicious, bool) or not isinstance(severity, tuple):
        raise ValueError("not advisory fields")
    for item in severity:
        if not (isinstance(item, tuple) and len(item) == 2 and _strings(item)):
            raise ValueError("not a severity")
    return ids, summary, source, reference, malicious, severity


def _ranges(value: Any) -> tuple[Range, ...]:
    """Cached ranges, held to what ``valid_events`` keeps (``in_range`` relies on it)."""
    if not isinstance(value, tuple):
        raise ValueError("not a tuple of ranges")
    for events in value:
        if not isinstance(events, tuple):
            raise ValueError("not a range")
        for event in events:
            if not (isinstance(event, tuple) and len(event) == 2):
                raise ValueError("not an event")
            kind, text = event
            if kind not in EVENT_KINDS or not isinstance(text, str):
                raise ValueError("not an event")
            if not (kind == INTRODUCED and text == "0") and _parse(text) is None:
                raise ValueError("not a PEP 440 event")
    return value


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


def fixed_after(entry: AffectedPackage, parsed: Version | None) -> list[str]:
    """The ``fixed`` events of *entry*'s ranges above *parsed* (all of them when the
    installed version is not PEP 440: the record still says where fixes are)."""
    return [
        text
        for events in entry.ranges
        for kind, text in events
        if kind == FIXED and (parsed is None or Version(text) > parsed)
    ]


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
        if kind == INTRODUCED and text == "0":
            affected = True  # "0" is before every version, pre-releases of 0 included
            continue
        bound = Version(text)
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
