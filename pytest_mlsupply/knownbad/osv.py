"""OSV records (JSON or YAML) -> entries of the known-bad index.

Follows the OSV schema (ossf.github.io/osv-schema) for what matters offline:
``affected[].package`` with ecosystem ``PyPI``, explicit ``versions`` and
``ECOSYSTEM`` ranges; ``withdrawn`` records never match. Real feeds have traps
this reader is tested against: per-source ossf reports with an empty or
missing ``id``, unsorted versions, ranges inside ``database_specific`` origins
(the sources' claims, not the record's, so never read), names like ``urlcon-``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import canonicalize_name

from pytest_mlsupply.hashing import Digest, DigestError
from pytest_mlsupply.knownbad.model import (
    EVENT_KINDS,
    Advisory,
    AffectedPackage,
    KnownBadIndex,
    valid_events,
)

PYPI = "pypi"
ECOSYSTEM = "ECOSYSTEM"

#: The digest of an empty file: an evidence list naming it would flag every empty file.
_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


class RecordProblem(ValueError):
    """A record that cannot be used at all; the message says which key is wrong."""


@dataclass
class RecordOutcome:
    """What reading one record gave: was it used, withdrawn, and notes on skipped parts."""

    used: bool = False
    withdrawn: bool = False
    modified: str | None = None
    notes: list[str] = field(default_factory=list)


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _when(value: Any) -> str | None:
    """A timestamp as text; YAML gives unquoted timestamps as datetime objects."""
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return _text(value)


def record_ids(record: Mapping[str, Any], fallback: str) -> tuple[str, ...]:
    """The record's id, then its aliases; *fallback* (the file name) when it has neither."""
    ids: list[str] = []
    own = _text(record.get("id"))
    if own:
        ids.append(own)
    aliases = record.get("aliases")
    if isinstance(aliases, list):
        ids.extend(a.strip() for a in aliases if isinstance(a, str) and a.strip())
    if not ids:
        ids.append(fallback)
    return tuple(dict.fromkeys(ids))


def _reference(record: Mapping[str, Any]) -> str | None:
    refs = record.get("references")
    if not isinstance(refs, list):
        return None
    for ref in refs:
        if isinstance(ref, dict) and isinstance(ref.get("url"), str):
            return str(ref["url"])
    return None


def add_record(
    index: KnownBadIndex, record: Any, *, source: str, fallback_id: str
) -> RecordOutcome:
    """Add one OSV record to *index*; raise RecordProblem when it is not an OSV record."""
    if not isinstance(record, dict):
        raise RecordProblem(f"expected an OSV record (a mapping), got {type(record).__name__}")
    if "id" not in record and "affected" not in record:
        raise RecordProblem("has neither 'id' nor 'affected'; not an OSV record")
    affected = record.get("affected", [])
    if not isinstance(affected, list):
        raise RecordProblem("'affected' must be a list")
    outcome = RecordOutcome(modified=_when(record.get("modified")))
    if record.get("withdrawn"):
        outcome.withdrawn = True
        return outcome
    ids = record_ids(record, fallback_id)
    summary = _text(record.get("summary")) or _first_line(record.get("details")) or ids[0]
    advisory: int | None = None
    for position, item in enumerate(affected):
        where = f"affected[{position}]"
        if not isinstance(item, dict):
            raise RecordProblem(f"{where} must be a mapping")
        package = item.get("package")
        if not isinstance(package, dict) or not _text(package.get("name")):
            raise RecordProblem(f"{where}.package.name is missing")
        ecosystem = str(package.get("ecosystem", "")).split(":", 1)[0].strip().lower()
        if ecosystem != PYPI:
            continue
        name = canonicalize_name(str(package["name"]).strip())
        versions = item.get("versions", [])
        if not isinstance(versions, list):
            raise RecordProblem(f"{where}.versions must be a list")
        # YAML gives unquoted versions as numbers; every version is compared as text or PEP 440
        texts = [v if isinstance(v, str) else str(v) for v in versions]
        kept_versions = tuple(t.strip() for t in texts if t and not t.isspace())
        ranges = []
        for number, raw in enumerate(item.get("ranges") or []):
            if not isinstance(raw, dict):
                raise RecordProblem(f"{where}.ranges[{number}] must be a mapping")
            if raw.get("type") != ECOSYSTEM:
                continue  # GIT and SEMVER ranges say nothing about PyPI releases
            events = raw.get("events")
            if not isinstance(events, list):
                raise RecordProblem(f"{where}.ranges[{number}].events must be a list")
            pairs = [
                (kind, str(value).strip())
                for event in events
                if isinstance(event, dict)
                for kind, value in event.items()
                if kind in EVENT_KINDS
            ]
            kept, bad = valid_events(pairs)
            if bad:
                outcome.notes.append(
                    f"{ids[0]}: {where}.ranges[{number}] skipped, not PEP 440: {', '.join(bad)}"
                )
                continue
            if kept:
                ranges.append(kept)
        if advisory is None:
            advisory = index.add_advisory(Advisory(ids, summary, source, _reference(record)))
        if kept_versions or ranges:
            index.add_package(AffectedPackage(name, advisory, kept_versions, tuple(ranges)))
        _add_digests(index, item.get("database_specific"), advisory)
        outcome.used = True
    return outcome


def _first_line(value: Any) -> str | None:
    text = _text(value)
    if not text:
        return None
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("-", "_", "#")):
            return line[:200]
    return None


def _add_digests(index: KnownBadIndex, specific: Any, advisory: int) -> None:
    """ossf's ``indicators``: digests of the malicious archives and of evidence files."""
    if not isinstance(specific, dict):
        return
    indicators = specific.get("indicators")
    if not isinstance(indicators, dict):
        return
    for artifact in indicators.get("package_integrity") or []:
        hashes = artifact.get("hashes") if isinstance(artifact, dict) else None
        if isinstance(hashes, dict):
            for algorithm, value in hashes.items():
                _add(index, str(algorithm), value, advisory)
    for evidence in indicators.get("evidence_files") or []:
        if isinstance(evidence, dict):
            _add(index, "sha256", evidence.get("sha256"), advisory)


def _add(index: KnownBadIndex, algorithm: str, value: Any, advisory: int) -> None:
    if not isinstance(value, str) or value.lower() == _EMPTY_SHA256:
        return
    algorithm = {"blake2b_256": "blake2b-256"}.get(algorithm.lower(), algorithm.lower())
    if algorithm not in ("sha256", "sha512", "sha384", "sha1", "md5"):
        return  # blake2b-256 has no hashlib name; installed files are sha256 anyway
    with contextlib.suppress(DigestError):  # a malformed digest in a feed matches nothing
        index.add_digest(Digest.parse(f"{algorithm}:{value}"), advisory)
