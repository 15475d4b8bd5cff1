"""Hash lists: one known-bad file or archive per line.

Two spellings, both common in incident write-ups and IOC feeds:

* ``alg:hex [label]`` (pooch's self-describing form), e.g.
  ``sha256:c878...db8  0requests-0.0.1-py3-none-any.whl``;
* ``sha256sum`` output, ``<hex>  <name>`` (or ``<hex> *<name>``), the algorithm
  taken from the hex length (32 md5, 40 sha1, 64 sha256, 96 sha384, 128 sha512).

``#`` starts a comment; blank lines are ignored. Every malformed line is
reported with its number, and the good lines still count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pytest_mlsupply.hashing import Digest, DigestError

_BY_LENGTH = {32: "md5", 40: "sha1", 64: "sha256", 96: "sha384", 128: "sha512"}
_HEX = re.compile(r"[0-9a-fA-F]+")

PROBLEM_NOT_A_HASH = "expected 'algorithm:hex [label]' or '<hex>  <name>' (sha256sum), got {line!r}"


@dataclass(frozen=True)
class HashEntry:
    digest: Digest
    label: str | None
    line: int


def parse_hash_list(text: str) -> tuple[list[HashEntry], list[tuple[int, str]]]:
    """The entries of a hash list and its problems as ``(line number, message)``."""
    entries: list[HashEntry] = []
    problems: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        first, _, rest = line.partition(" ")
        if "\t" in first:
            first, _, more = first.partition("\t")
            rest = f"{more} {rest}".strip()
        label = rest.strip().lstrip("*").strip() or None
        try:
            entries.append(HashEntry(_digest(first), label, number))
        except DigestError as exc:
            problems.append((number, f"{exc}; {PROBLEM_NOT_A_HASH.format(line=raw.strip())}"))
    return entries, problems


def _digest(token: str) -> Digest:
    if ":" in token:
        return Digest.parse(token)
    if _HEX.fullmatch(token) and len(token) in _BY_LENGTH:
        return Digest(_BY_LENGTH[len(token)], bytes.fromhex(token))
    raise DigestError(f"{token!r} is not a digest")


def format_hash_list(entries: list[tuple[Digest, str | None]]) -> str:
    """The ``alg:hex label`` text of *entries* (the round trip the tests check)."""
    return "".join(f"{d} {label}\n" if label else f"{d}\n" for d, label in entries)
