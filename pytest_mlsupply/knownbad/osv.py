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
import unicodedata
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
#: MITRE CWE-506 "Embedded Malicious Code" (how GHSA malware advisories are tagged) and
#: CWE-912 "Hidden Functionality" (backdoors): a record tagged with either is malware.
MALICIOUS_CWES = frozenset({506, 912})
#: Range types whose ``fixed`` / ``last_affected`` events say a flaw was (or was not yet) fixed.
_FLAW_RANGE_TYPES = frozenset({"ECOSYSTEM", "SEMVER", "GIT"})

#: How pypa/advisory-database describes malicious releases (PYSEC-2022-251 "taken over via
#: user account compromise ... a new malicious release", PYSEC-2022-43019 "a code-execution
#: backdoor inserted by a third party", PYSEC-2024-55 "Malicious package. Exfiltrated
#: secrets", PYSEC-2024-1 "credential harvesting code"), and how GHSA wrote the compromised
#: ultralytics releases ("Unauthorized code in PyPI releases ... supply chain attack ...
#: compromised versions ... cryptocurrency mining software"). Matched on normalised text
#: (``_normal``). Checked against all 2,661 pypa records, the first six name only malicious
#: releases there; "malicious code", "malware", "account takeover", "to exfiltrate" and
#: "remote code execution" alone do not (they describe what an attacker's input may do).
_MALWARE_WORDS = re.compile(
    r"\bbackdoor|\btaken over via\b|\baccount compromise\b"
    r"|\bmalicious (?:release|project)s?\b|^malicious package\b|\bcredential[- ]harvesting\b"
    r"|\btrojan|\btyposquat|\bembedded malicious code\b|\bexfiltrat(?:es|ed)\b"
    r"|\bcrypto(?:currency)?[- ]?miner|\bmining software\b|\bcoin ?miner"
)
#: Words that name malware in a report and a hypothetical in a vulnerability ("could lead
#: to a supply chain attack"): a signal unless a modal or causal word comes just before.
_MALWARE_EVENTS = re.compile(
    r"\bsupply[- ]chain attack"
    r"|\bunauthori[sz]ed code\b"
    r"|\bcompromised(?: [\w.-]+){0,2} (?:versions?|releases?|packages?|wheels?|artifacts?"
    r"|builds?|uploads?|maintainers?|pypi|accounts?|tokens?)\b"
    r"|\b(?:versions?|releases?|packages?|accounts?|tokens?|maintainers?|project) "
    r"(?:was|were|has been|have been|had been) compromised\b"
)
_HYPOTHETICAL = re.compile(
    r"\b(?:could|can|may|might|allows?|allowing|enabl\w*|leads? to|lead\w* to|results? in"
    r"|potential\w*|execut\w*|run\w*|inject\w*|prevent\w*|mitigat\w*|against|if)\b[^.]*$"
)
#: ossf's and GitHub's malware summaries: "Malicious code in NAME (PyPI)", "Malware in NAME".
_MALWARE_IN = re.compile(
    r"\b(?:malicious (?:code|package|software)|malware) in (?:the )?(?:package )?"
    r"['\"`\u2018\u2019\u201c\u201d]?([a-z0-9](?:[a-z0-9._-]*[a-z0-9])?)"
    r"['\"`\u2018\u2019\u201c\u201d]?(?=$|[\s(),:;]|\.(?:\s|$))"
)
#: Dashes and invisible characters a hand-written record may hold where an id or word is.
_DASHES = dict.fromkeys(
    map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"), "-"
)
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"), None)


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
    """Whether *record* may name a malicious release: everything not proven a vulnerability.

    Fail closed (issue 12 item 11): telling a malicious release it is merely vulnerable
    turns an error into a warning, so a record is *vulnerable* only on positive evidence
    that it describes a flaw (``_describes_flaw``) and with no malicious signal
    (``_malicious_signal``); anything else is malicious.
    """
    return _malicious_signal(record, ids) or not _describes_flaw(record)


def _normal(text: str) -> str:
    """NFKC, one kind of dash, invisible characters dropped, whitespace runs as one space."""
    text = unicodedata.normalize("NFKC", text).translate(_DASHES).translate(_INVISIBLE)
    return " ".join(text.split()).casefold()


def _tables(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The free-form tables of the record and of its ``affected[]`` entries."""
    tables: list[Any] = [record.get("database_specific"), record.get("ecosystem_specific")]
    for item in _items(record):
        tables.extend((item.get("database_specific"), item.get("ecosystem_specific")))
    return [table for table in tables if isinstance(table, dict)]


def _items(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    affected = record.get("affected")
    return [a for a in affected if isinstance(a, dict)] if isinstance(affected, list) else []


def _own_ids(record: Mapping[str, Any], key: str) -> list[str]:
    value = record.get(key)
    values = value if isinstance(value, list) else [value]
    return [_normal(v) for v in values if isinstance(v, str) and v.strip()]


def _malicious_signal(record: Mapping[str, Any], ids: tuple[str, ...]) -> bool:
    """Any sign of malware: an ossf id, origins or type, a malware CWE, malware words.

    ``MAL-`` ids count as the record's id, an alias or a ``related`` id; the malware
    summary counts for any of the record's package names compared after PEP 503
    normalisation ("Malware in my_pkg" for ``my-pkg``), in the summary or the details.
    """
    every_id = [_normal(i) for i in ids] + _own_ids(record, "related")
    if any(i.startswith("mal-") for i in every_id):
        return True
    for table in _tables(record):
        if MALICIOUS_ORIGINS in table:
            return True
        kind = table.get("type")
        if isinstance(kind, str) and _normal(kind) == "malware":
            return True
        if any(cwe in MALICIOUS_CWES for cwe in _cwes(table)):
            return True
    names = set()
    for item in _items(record):
        package = item.get("package")
        name = package.get("name") if isinstance(package, dict) else None
        if isinstance(name, str) and name.strip():
            names.add(canonicalize_name(_normal(name)))
    for value in (record.get("summary"), record.get("details")):
        text = _normal(value) if isinstance(value, str) else ""
        if not text:
            continue
        if _MALWARE_WORDS.search(text):
            return True
        for found in _MALWARE_EVENTS.finditer(text):
            if not _HYPOTHETICAL.search(text[max(0, found.start() - 40) : found.start()]):
                return True
        if any(canonicalize_name(m.group(1)) in names for m in _MALWARE_IN.finditer(text)):
            return True
    return False


def _describes_flaw(record: Mapping[str, Any]) -> bool:
    """Positive evidence of a vulnerability: a non-``MAL-`` id of its own, and a fix.

    The fix is a ``fixed`` or ``last_affected`` event (a flaw repaired, or known to be
    present up to a release), a CVSS vector, or a CWE other than the malware ones.
    A malware report has none of these: it names releases, not a repair.
    """
    own = _own_ids(record, "id") + _own_ids(record, "aliases")
    if not any(not i.startswith("mal-") for i in own):
        return False
    for item in _items(record):
        ranges = item.get("ranges")
        for entry in ranges if isinstance(ranges, list) else []:
            if not isinstance(entry, dict) or entry.get("type") not in _FLAW_RANGE_TYPES:
                continue
            events = entry.get("events")
            for event in events if isinstance(events, list) else []:
                if isinstance(event, dict) and any(
                    _event_value(event.get(kind)) for kind in ("fixed", "last_affected")
                ):
                    return True
    severities: list[Any] = [record.get("severity")]
    severities.extend(item.get("severity") for item in _items(record))
    for value in severities:
        for entry in value if isinstance(value, list) else []:
            kind = entry.get("type") if isinstance(entry, dict) else None
            if isinstance(kind, str) and kind.strip() in OSV_TYPES:
                return True
    return any(cwe not in MALICIOUS_CWES for table in _tables(record) for cwe in _cwes(table))


def _event_value(value: Any) -> bool:
    return (isinstance(value, str) and bool(value.strip())) or (
        isinstance(value, (int, float)) and not isinstance(value, bool)
    )


_CWE = re.compile(r"\bcwe[-_: ]*0*([0-9]{1,6})\b")


def _cwes(table: Mapping[str, Any]) -> list[int]:
    """CWE numbers of ``cwe_ids`` / ``cwes``: a list or one value; ``CWE-506``, ``506``, 506,
    or a mapping with ``cweId`` (ossf) or ``id``."""
    numbers: list[int] = []
    for key in ("cwe_ids", "cwes"):
        value = table.get(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                item = item.get("cweId", item.get("id"))
            if isinstance(item, int) and not isinstance(item, bool):
                numbers.append(item)
            elif isinstance(item, str):
                text = _normal(item)
                if text.isdigit():
                    numbers.append(int(text))
                numbers.extend(int(number) for number in _CWE.findall(text))
    return numbers


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
