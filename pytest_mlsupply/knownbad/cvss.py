"""CVSS vectors as OSV records hold them: parsed, checked, and scored where the formula is short.

OSV's ``severity[].score`` is a vector string, not a number. CVSS v3.0/v3.1 and v2 base
scores are computed here with the formulas of their specifications (FIRST, "CVSS v3.1
Specification", section 7.1 and Appendix A; "CVSS v2 Complete Guide", section 3.2.1).
CVSS v4.0 vectors are parsed and shown, but not scored: v4 scores come from a table of
270 macro-vectors, not a formula, so a v4-only record has no score here (and counts as
at or above any ``--mlsupply-fail-on-cvss`` threshold: what we cannot score is not
known to be below it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal


class CvssError(ValueError):
    """A vector that is not a well-formed CVSS vector; the message says which part."""


#: Values of every metric a vector may hold, per CVSS version ("X"/"ND": not defined).
_V3_BASE: Mapping[str, tuple[str, ...]] = {
    "AV": ("N", "A", "L", "P"),
    "AC": ("L", "H"),
    "PR": ("N", "L", "H"),
    "UI": ("N", "R"),
    "S": ("U", "C"),
    "C": ("H", "L", "N"),
    "I": ("H", "L", "N"),
    "A": ("H", "L", "N"),
}
_V3_OTHER: Mapping[str, tuple[str, ...]] = {
    "E": ("X", "U", "P", "F", "H"),
    "RL": ("X", "O", "T", "W", "U"),
    "RC": ("X", "U", "R", "C"),
    "CR": ("X", "L", "M", "H"),
    "IR": ("X", "L", "M", "H"),
    "AR": ("X", "L", "M", "H"),
    "MAV": ("X", "N", "A", "L", "P"),
    "MAC": ("X", "L", "H"),
    "MPR": ("X", "N", "L", "H"),
    "MUI": ("X", "N", "R"),
    "MS": ("X", "U", "C"),
    "MC": ("X", "N", "L", "H"),
    "MI": ("X", "N", "L", "H"),
    "MA": ("X", "N", "L", "H"),
}
_V2_BASE: Mapping[str, tuple[str, ...]] = {
    "AV": ("L", "A", "N"),
    "AC": ("H", "M", "L"),
    "Au": ("M", "S", "N"),
    "C": ("N", "P", "C"),
    "I": ("N", "P", "C"),
    "A": ("N", "P", "C"),
}
_V2_OTHER: Mapping[str, tuple[str, ...]] = {
    "E": ("U", "POC", "F", "H", "ND"),
    "RL": ("OF", "TF", "W", "U", "ND"),
    "RC": ("UC", "UR", "C", "ND"),
    "CDP": ("N", "L", "LM", "MH", "H", "ND"),
    "TD": ("N", "L", "M", "H", "ND"),
    "CR": ("L", "M", "H", "ND"),
    "IR": ("L", "M", "H", "ND"),
    "AR": ("L", "M", "H", "ND"),
}
_V4_BASE: Mapping[str, tuple[str, ...]] = {
    "AV": ("N", "A", "L", "P"),
    "AC": ("L", "H"),
    "AT": ("N", "P"),
    "PR": ("N", "L", "H"),
    "UI": ("N", "P", "A"),
    "VC": ("H", "L", "N"),
    "VI": ("H", "L", "N"),
    "VA": ("H", "L", "N"),
    "SC": ("H", "L", "N"),
    "SI": ("H", "L", "N"),
    "SA": ("H", "L", "N"),
}
_V4_OTHER: Mapping[str, tuple[str, ...]] = {
    "E": ("X", "A", "P", "U"),
    "CR": ("X", "H", "M", "L"),
    "IR": ("X", "H", "M", "L"),
    "AR": ("X", "H", "M", "L"),
    "MAV": ("X", "N", "A", "L", "P"),
    "MAC": ("X", "L", "H"),
    "MAT": ("X", "N", "P"),
    "MPR": ("X", "N", "L", "H"),
    "MUI": ("X", "N", "P", "A"),
    "MVC": ("X", "H", "L", "N"),
    "MVI": ("X", "H", "L", "N"),
    "MVA": ("X", "H", "L", "N"),
    "MSC": ("X", "H", "L", "N"),
    "MSI": ("X", "S", "H", "L", "N"),
    "MSA": ("X", "S", "H", "L", "N"),
    "S": ("X", "N", "P"),
    "AU": ("X", "N", "Y"),
    "R": ("X", "A", "U", "I"),
    "V": ("X", "D", "C"),
    "RE": ("X", "L", "M", "H"),
    "U": ("X", "Clear", "Green", "Amber", "Red"),
}

#: version -> (base metrics in the specification's order, the optional ones)
METRICS: Mapping[str, tuple[Mapping[str, tuple[str, ...]], Mapping[str, tuple[str, ...]]]] = {
    "2.0": (_V2_BASE, _V2_OTHER),
    "3.0": (_V3_BASE, _V3_OTHER),
    "3.1": (_V3_BASE, _V3_OTHER),
    "4.0": (_V4_BASE, _V4_OTHER),
}

#: OSV ``severity[].type`` -> the CVSS versions its vectors may carry.
OSV_TYPES: Mapping[str, tuple[str, ...]] = {
    "CVSS_V2": ("2.0",),
    "CVSS_V3": ("3.0", "3.1"),
    "CVSS_V4": ("4.0",),
}

_MAX_VECTOR = 512


@dataclass(frozen=True)
class CvssVector:
    """One parsed vector: its CVSS version, metrics in the order given, and its base score.

    ``score`` is None for CVSS v4.0 (not computed, see the module docstring).
    """

    version: str
    metrics: tuple[tuple[str, str], ...]
    score: float | None

    def __str__(self) -> str:
        return format_vector(self.version, self.metrics)


def format_vector(version: str, metrics: tuple[tuple[str, str], ...]) -> str:
    """The vector's text: ``CVSS:3.1/AV:N/...``, or v2's unprefixed ``AV:N/...``."""
    body = "/".join(f"{name}:{value}" for name, value in metrics)
    return body if version == "2.0" else f"CVSS:{version}/{body}"


def parse_vector(text: str, osv_type: str | None = None) -> CvssVector:
    """Parse *text*; with *osv_type* (``CVSS_V3``...), its version must be one that type holds.

    Every base metric must be present once; optional (temporal, threat, environmental)
    metrics are checked for known names and values but do not change the base score.
    """
    if not isinstance(text, str):
        raise CvssError(f"a CVSS vector must be a string, got {type(text).__name__}")
    if len(text) > _MAX_VECTOR:
        raise CvssError(f"longer than {_MAX_VECTOR} characters")
    body = text.strip()
    if body.startswith("(") and body.endswith(")"):  # NVD wrote v2 vectors in parentheses
        body = body[1:-1]
    version = "2.0"
    if body.startswith("CVSS:"):
        head, _, body = body.partition("/")
        version = head[len("CVSS:") :]
        if version not in METRICS or version == "2.0":
            raise CvssError(f"unknown CVSS version {head!r}")
    if osv_type is not None:
        allowed = OSV_TYPES.get(osv_type)
        if allowed is not None and version not in allowed:
            if allowed == ("2.0",) or version != "2.0":
                raise CvssError(f"{osv_type} holds a CVSS {version} vector ({_short(text)})")
            prefixes = " or ".join(f"CVSS:{v}/" for v in allowed)
            raise CvssError(f"a {osv_type} vector starts with {prefixes}, got {_short(text)!r}")
    base, other = METRICS[version]
    seen: dict[str, str] = {}
    order: list[tuple[str, str]] = []
    for part in body.split("/"):
        name, colon, value = part.partition(":")
        if not colon:
            raise CvssError(f"{_short(part)!r} is not METRIC:VALUE in {_short(text)}")
        choices = base.get(name) or other.get(name)
        if choices is None:
            raise CvssError(f"unknown CVSS {version} metric {_short(name)!r} in {_short(text)}")
        if value not in choices:
            raise CvssError(
                f"{name}:{_short(value)} is not a CVSS {version} value (one of "
                f"{', '.join(choices)}) in {_short(text)}"
            )
        if name in seen:
            raise CvssError(f"metric {name} given twice in {_short(text)}")
        seen[name] = value
        order.append((name, value))
    missing = [name for name in base if name not in seen]
    if missing:
        raise CvssError(f"base metrics {', '.join(missing)} missing in {_short(text)}")
    return CvssVector(version, tuple(order), _score(version, seen))


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


def _score(version: str, metrics: Mapping[str, str]) -> float | None:
    if version == "2.0":
        return _v2_score(metrics)
    if version in ("3.0", "3.1"):
        return _v3_score(metrics)
    return None


_V3_WEIGHTS = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "CIA": {"H": 0.56, "L": 0.22, "N": 0.0},
}
_V3_PR = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}


def roundup(value: float) -> float:
    """CVSS v3.1 Appendix A ``Roundup``: the smallest one-decimal number >= *value*,
    computed on integers so 4.000000000001 does not become 4.1 (v3.0's intent, exactly)."""
    as_int = round(value * 100_000)
    if as_int % 10_000 == 0:
        return as_int / 100_000.0
    return (math.floor(as_int / 10_000) + 1) / 10.0


def _v3_score(m: Mapping[str, str]) -> float:
    """CVSS v3.1 specification, section 7.1 (v3.0 uses the same base equations)."""
    cia = _V3_WEIGHTS["CIA"]
    iss = 1 - (1 - cia[m["C"]]) * (1 - cia[m["I"]]) * (1 - cia[m["A"]])
    changed = m["S"] == "C"
    impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15 if changed else 6.42 * iss
    exploitability = (
        8.22
        * _V3_WEIGHTS["AV"][m["AV"]]
        * _V3_WEIGHTS["AC"][m["AC"]]
        * _V3_PR[m["S"]][m["PR"]]
        * _V3_WEIGHTS["UI"][m["UI"]]
    )
    if impact <= 0:
        return 0.0
    total = 1.08 * (impact + exploitability) if changed else impact + exploitability
    return roundup(min(total, 10.0))


_V2_WEIGHTS = {
    "AV": {"L": 0.395, "A": 0.646, "N": 1.0},
    "AC": {"H": 0.35, "M": 0.61, "L": 0.71},
    "Au": {"M": 0.45, "S": 0.56, "N": 0.704},
    "CIA": {"N": 0.0, "P": 0.275, "C": 0.660},
}


def _v2_score(m: Mapping[str, str]) -> float:
    """CVSS v2 Complete Guide, section 3.2.1, rounded to one decimal (half up)."""
    cia = _V2_WEIGHTS["CIA"]
    impact = 10.41 * (1 - (1 - cia[m["C"]]) * (1 - cia[m["I"]]) * (1 - cia[m["A"]]))
    exploitability = (
        20 * _V2_WEIGHTS["AV"][m["AV"]] * _V2_WEIGHTS["AC"][m["AC"]] * _V2_WEIGHTS["Au"][m["Au"]]
    )
    factor = 0.0 if impact == 0 else 1.176
    raw = ((0.6 * impact) + (0.4 * exploitability) - 1.5) * factor
    return float(Decimal(repr(raw)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def rating(score: float) -> str:
    """The qualitative rating of a score (CVSS v3.1 specification, section 5)."""
    if score == 0:
        return "none"
    if score < 4.0:
        return "low"
    if score < 7.0:
        return "medium"
    if score < 9.0:
        return "high"
    return "critical"
