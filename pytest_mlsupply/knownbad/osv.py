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
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import canonicalize_name

from pytest_mlsupply.hashing import Digest, DigestError
from pytest_mlsupply.knownbad.cvss import OSV_TYPES, CvssError, parse_vector
from pytest_mlsupply.knownbad.model import (
    EVENT_KINDS,
    Advisory,
    AffectedPackage,
    KnownBadIndex,
    Range,
    Severities,
    valid_events,
)
from pytest_mlsupply.limits import version_problem

PYPI = "pypi"
ECOSYSTEM = "ECOSYSTEM"

#: ossf/malicious-packages writes its sources' reports under this ``database_specific`` key.
MALICIOUS_ORIGINS = "malicious-packages-origins"
#: MITRE CWE-506, "Embedded Malicious Code": how GHSA malware advisories are tagged.
CWE_MALICIOUS = "CWE-506"

#: How pypa/advisory-database describes malicious releases (PYSEC-2022-251 "taken over via
#: user account compromise ... a new malicious release", PYSEC-2022-43019 "a code-execution
#: backdoor inserted by a third party", PYSEC-2024-55 "Malicious package. Exfiltrated
#: secrets", PYSEC-2024-1 "credential harvesting code"). Checked against all 2,661 of its
#: records: these phrases name only malicious releases there; "malicious code", "malware"
#: and "account takeover" alone do not (they describe what an attacker's input may do).
_MALWARE_WORDS = re.compile(
    r"\bbackdoor|\btaken over via\b|\baccount compromise\b"
    r"|\bmalicious (?:release|project)\b|^malicious package\b|\bcredential[- ]harvesting\b",
    re.IGNORECASE,
)


class _MalwareSummary:
    """``Malicious code in NAME`` / ``Malware in NAME``, then the end or a non-name character."""

    PREFIXES = ("malicious code in ", "malware in ")

    def match(self, summary: str, name: str) -> bool:
        for prefix in self.PREFIXES:
            head = prefix + name.strip()
            if summary.startswith(head):
                rest = summary[len(head) :]
                return not rest or not (rest[0].isalnum() or rest[0] in "._-")
        return False


_MALWARE_SUMMARY = _MalwareSummary()

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


#: OSV's timestamps are RFC 3339 (``2026-06-17T00:00:00Z``); YAML may give a datetime.
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*([Zz]|[+-]\d{2}:?\d{2})?)?"
)


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
    index: KnownBadIndex, record: Any, *, source: str, fallback_id: str, malicious: bool = False
) -> RecordOutcome:
    """Add one OSV record to *index*; raise RecordProblem when it is not an OSV record.

    *malicious* marks every record as malicious whatever it says (the built-in list,
    which names only malicious releases); otherwise ``is_malicious`` decides.
    """
    if not isinstance(record, dict):
        raise RecordProblem(f"expected an OSV record (a mapping), got {type(record).__name__}")
    if "id" not in record and "affected" not in record:
        raise RecordProblem("has neither 'id' nor 'affected'; not an OSV record")
    affected = record.get("affected", [])
    if not isinstance(affected, list):
        raise RecordProblem("'affected' must be a list")
    _check_types(record)
    outcome = RecordOutcome(modified=_when(record.get("modified")))
    if _withdrawn(record.get("withdrawn")):
        outcome.withdrawn = True
        return outcome
    ids = record_ids(record, fallback_id)
    summary = _text(record.get("summary")) or _first_line(record.get("details")) or ids[0]
    severity: Severities = ()
    pypi: list[tuple[int, Any, str, tuple[str, ...], list[Range]]] = []
    for position, item in enumerate(affected):
        where = f"affected[{position}]"
        if not isinstance(item, dict):
            raise RecordProblem(f"{where} must be a mapping")
        package = item.get("package")
        if not isinstance(package, dict) or not _text(package.get("name")):
            raise RecordProblem(f"{where}.package.name is missing")
        raw_ecosystem = package.get("ecosystem", "")
        if not isinstance(raw_ecosystem, str):
            raise RecordProblem(
                f"{where}.package.ecosystem must be a string, got {_shown(raw_ecosystem)}"
            )
        ecosystem = raw_ecosystem.split(":", 1)[0].strip().lower()
        if ecosystem != PYPI:
            continue
        name = canonicalize_name(str(package["name"]).strip())
        versions, ranges = _releases(item, where, ids, outcome)
        severity += _severities(item.get("severity"), f"{where}.severity")
        pypi.append((position, item, name, versions, ranges))
    if pypi:  # a record about other ecosystems only is not ours to judge (OSV's all.zip)
        malicious = malicious or is_malicious(record, ids)
        severity = _severities(record.get("severity"), "severity") + severity
    advisory: int | None = None
    for position, item, package_name, kept_versions, ranges in pypi:
        where = f"affected[{position}]"
        if advisory is None:
            shown_severity = tuple(dict.fromkeys(severity))
            advisory = index.add_advisory(
                Advisory(ids, summary, source, _reference(record), malicious, shown_severity)
            )
        if kept_versions or ranges:
            index.add_package(AffectedPackage(package_name, advisory, kept_versions, tuple(ranges)))
        _add_digests(index, item.get("database_specific"), advisory, where)
        outcome.used = True
    return outcome


def _releases(
    item: Mapping[str, Any], where: str, ids: tuple[str, ...], outcome: RecordOutcome
) -> tuple[tuple[str, ...], list[Range]]:
    """One PyPI ``affected[]`` entry's explicit versions and ECOSYSTEM ranges."""
    versions = item.get("versions", [])
    if not isinstance(versions, list):
        raise RecordProblem(f"{where}.versions must be a list")
    # YAML gives unquoted versions as numbers; every version is compared as text or PEP 440
    texts = [_version_text(v, f"{where}.versions[{n}]") for n, v in enumerate(versions)]
    kept_versions = tuple(t.strip() for t in texts if t and not t.isspace())
    ranges: list[Range] = []
    for number, raw in enumerate(_list(item, "ranges", where)):
        if not isinstance(raw, dict):
            raise RecordProblem(f"{where}.ranges[{number}] must be a mapping")
        if not isinstance(raw.get("type"), str):
            raise RecordProblem(f"{where}.ranges[{number}].type must be a string")
        if raw.get("type") != ECOSYSTEM:
            continue  # GIT and SEMVER ranges say nothing about PyPI releases
        events = raw.get("events")
        if not isinstance(events, list):
            raise RecordProblem(f"{where}.ranges[{number}].events must be a list")
        pairs = []
        for at, event in enumerate(events):
            if not isinstance(event, dict):
                raise RecordProblem(f"{where}.ranges[{number}].events[{at}] must be a mapping")
            for kind, value in event.items():
                if kind in EVENT_KINDS:
                    text = _version_text(value, f"{where}.ranges[{number}].events[{at}].{kind}")
                    pairs.append((kind, text.strip()))
        kept, bad = valid_events(pairs)
        if bad:
            outcome.notes.append(
                f"{ids[0]}: {where}.ranges[{number}] skipped, not PEP 440: {', '.join(bad)}"
            )
            continue
        if kept:
            ranges.append(kept)
    return kept_versions, ranges


def is_malicious(record: Mapping[str, Any], ids: tuple[str, ...]) -> bool:
    """Whether *record* names a malicious release rather than a vulnerable one.

    Malicious: an ossf/malicious-packages id or alias (``MAL-``), its origins key
    (``database_specific.malicious-packages-origins``, at the record or an
    ``affected[]`` entry), or the CWE GHSA malware advisories carry (CWE-506, as
    ``database_specific.cwe_ids`` or ``affected[].database_specific.cwes``).
    The summaries ossf and GitHub give malware ("Malicious code in NAME (PyPI)",
    "Malware in NAME", NAME one of the record's packages) count too, and so do the
    words pypa/advisory-database uses for hijacked and backdoored releases, which
    carry no other marker (``_MALWARE_WORDS``).
    Any one signal is enough: telling a malicious release it is merely vulnerable
    would turn an error into a warning.
    """
    if any(i.upper().startswith("MAL-") for i in ids):
        return True
    tables = [record.get("database_specific")]
    affected = record.get("affected")
    items = [a for a in affected if isinstance(a, dict)] if isinstance(affected, list) else []
    tables.extend(item.get("database_specific") for item in items)
    texts = (_text(record.get("summary")), _text(record.get("details")))
    if any(text and _MALWARE_WORDS.search(text) for text in texts):
        return True
    summary = _text(record.get("summary"))
    if summary:
        for item in items:
            package = item.get("package")
            name = package.get("name") if isinstance(package, dict) else None
            if isinstance(name, str) and _MALWARE_SUMMARY.match(summary.lower(), name.lower()):
                return True
    for table in tables:
        if not isinstance(table, dict):
            continue
        if MALICIOUS_ORIGINS in table:
            return True
        if _names_malicious_cwe(table.get("cwe_ids")) or _names_malicious_cwe(table.get("cwes")):
            return True
    return False


def _names_malicious_cwe(value: Any) -> bool:
    if not isinstance(value, list):
        return False
    for item in value:
        cwe = item.get("cweId") if isinstance(item, dict) else item
        if isinstance(cwe, str) and cwe.strip().upper() == CWE_MALICIOUS:
            return True
    return False


def _severities(value: Any, where: str) -> Severities:
    """OSV ``severity[]``: (type, score) pairs, CVSS vectors checked.

    A CVSS vector we cannot parse is a problem of the record (fail closed: its score
    would decide whether the finding fails the run); other types (``Ubuntu``) are
    kept as text and have no score.
    """
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RecordProblem(f"{where} must be a list, got {_shown(value)}")
    found: list[tuple[str, str]] = []
    for number, entry in enumerate(value):
        at = f"{where}[{number}]"
        if not isinstance(entry, dict):
            raise RecordProblem(f"{at} must be a mapping, got {_shown(entry)}")
        kind, score = entry.get("type"), entry.get("score")
        if not isinstance(kind, str) or not kind.strip():
            raise RecordProblem(f"{at}.type must be a string, got {_shown(kind)}")
        if not isinstance(score, str) or not score.strip():
            raise RecordProblem(f"{at}.score must be a string, got {_shown(score)}")
        kind, score = kind.strip(), score.strip()
        if kind in OSV_TYPES:
            try:
                parse_vector(score, kind)
            except CvssError as exc:
                raise RecordProblem(f"{at}.score: {exc}") from exc
        found.append((kind, score))
    return tuple(found)


def _check_types(record: Mapping[str, Any]) -> None:
    """The record-level keys whose wrong type would change what matches."""
    if not isinstance(record.get("id", ""), str):
        raise RecordProblem(f"'id' must be a string, got {_shown(record['id'])}")
    aliases = record.get("aliases")
    if aliases is not None and (
        not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases)
    ):
        raise RecordProblem(f"'aliases' must be a list of strings, got {_shown(aliases)}")


def _withdrawn(value: Any) -> bool:
    """OSV's ``withdrawn`` is a timestamp; anything else (``"false"``, ``true``) is refused.

    Reading ``"false"`` as truthy text once withdrew a record, so it matched nothing.
    """
    if value is None:
        return False
    if hasattr(value, "isoformat") and not isinstance(value, str):
        return True  # YAML's unquoted timestamp
    if isinstance(value, str) and _TIMESTAMP.fullmatch(value.strip()):
        return True
    raise RecordProblem(
        f"'withdrawn' must be an RFC 3339 timestamp (2026-06-17T00:00:00Z), got {_shown(value)}"
    )


def _list(table: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = table.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordProblem(f"{where}.{key} must be a list, got {_shown(value)}")
    return value


def _version_text(value: Any, where: str) -> str:
    """A version as text; YAML gives unquoted versions as numbers, nothing else is a version."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RecordProblem(f"{where} must be a version string, got {_shown(value)}")
    text = value if isinstance(value, str) else str(value)
    problem = version_problem(text)
    if problem:
        raise RecordProblem(f"{where}: {problem}")
    return text


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{type(value).__name__} {text[:50]}..."


def _first_line(value: Any) -> str | None:
    text = _text(value)
    if not text:
        return None
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("-", "_", "#")):
            return line[:200]
    return None


def _add_digests(index: KnownBadIndex, specific: Any, advisory: int, where: str) -> None:
    """ossf's ``indicators``: digests of the malicious archives and of evidence files.

    ``database_specific`` is free-form in OSV, but once ``indicators`` is there a
    wrong type would drop digests silently, so it is a problem of the record.
    """
    if not isinstance(specific, dict) or specific.get("indicators") is None:
        return
    indicators = specific["indicators"]
    where = f"{where}.database_specific.indicators"
    if not isinstance(indicators, dict):
        raise RecordProblem(f"{where} must be a mapping, got {_shown(indicators)}")
    for number, artifact in enumerate(_list(indicators, "package_integrity", where)):
        at = f"{where}.package_integrity[{number}]"
        if not isinstance(artifact, dict):
            raise RecordProblem(f"{at} must be a mapping, got {_shown(artifact)}")
        hashes = artifact.get("hashes")
        if hashes is None:
            continue
        if not isinstance(hashes, dict):
            raise RecordProblem(f"{at}.hashes must be a mapping, got {_shown(hashes)}")
        for algorithm, value in hashes.items():
            if not isinstance(value, str):
                raise RecordProblem(f"{at}.hashes.{algorithm} must be a string")
            _add(index, str(algorithm), value, advisory)
    for number, evidence in enumerate(_list(indicators, "evidence_files", where)):
        at = f"{where}.evidence_files[{number}]"
        if not isinstance(evidence, dict):
            raise RecordProblem(f"{at} must be a mapping, got {_shown(evidence)}")
        value = evidence.get("sha256")
        if value is not None and not isinstance(value, str):
            raise RecordProblem(f"{at}.sha256 must be a string, got {_shown(value)}")
        _add(index, "sha256", value, advisory)


def _add(index: KnownBadIndex, algorithm: str, value: Any, advisory: int) -> None:
    if not isinstance(value, str) or value.lower() == _EMPTY_SHA256:
        return
    algorithm = {"blake2b_256": "blake2b-256"}.get(algorithm.lower(), algorithm.lower())
    if algorithm not in ("sha256", "sha512", "sha384", "sha1", "md5"):
        return  # blake2b-256 has no hashlib name; installed files are sha256 anyway
    with contextlib.suppress(DigestError):  # a malformed digest in a feed matches nothing
        index.add_digest(Digest.parse(f"{algorithm}:{value}"), advisory)
