"""Limits on what the parsers accept, so hostile input is an error and never a crash.

Every input the gate reads (locks, feeds, caches) can be written by someone
else. Without limits a few hundred bytes become an INTERNALERROR or gigabytes of
memory: a 5,000-digit version overflows Python's integer-string limit, a
100,000-deep JSON array exhausts the recursion limit, a YAML alias bomb or a
zip member that inflates a thousandfold fills memory. Each limit is far above
any real input; the README lists them. Standard library only at import
(``tomlfile`` imports it).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from packaging.version import Version

#: Characters in one version string (PyPI's longest real versions are under 100).
MAX_VERSION_LENGTH = 256
#: Nesting of arrays and objects in one JSON or YAML document (OSV records nest about 6 deep).
MAX_NESTING_DEPTH = 64
#: Bytes of one feed file read from disk or one zip member once inflated (OSV records are KB).
MAX_FEED_FILE_BYTES = 16 * 1024 * 1024
#: Bytes of one hash list (one line per file; 256 MiB is millions of digests).
MAX_HASH_LIST_BYTES = 256 * 1024 * 1024
#: Bytes inflated from all members of one zip feed together (OSV's PyPI all.zip: ~0.2 GiB).
MAX_ZIP_TOTAL_BYTES = 4 * 1024 * 1024 * 1024
#: Bytes of one installed RECORD (torch's, 35,000 rows, is about 3 MiB).
MAX_RECORD_BYTES = 256 * 1024 * 1024
#: Members of one zip feed (OSV's all-ecosystems all.zip holds about 400,000).
MAX_ZIP_MEMBERS = 2_000_000

NUMBER_TOO_LONG = "a number of more than {limit:,} digits, past what Python reads"
VERSION_TOO_LONG = "version is {length:,} characters long; the limit is {limit:,}"
NESTED_TOO_DEEPLY = "nested more than {limit} levels deep"
TOO_LARGE = "is larger than {limit:,} bytes, the limit for {what}"


def version_problem(text: str) -> str | None:
    """Why *text* cannot be a version we compare, before ``Version()`` is even tried."""
    if len(text) > MAX_VERSION_LENGTH:
        return VERSION_TOO_LONG.format(length=len(text), limit=MAX_VERSION_LENGTH)
    return None


def parse_version(text: str) -> Version | None:
    """``Version(text)``, or None when it is not PEP 440 or longer than the limit.

    ``Version`` converts each release segment with ``int()``, which raises a
    plain ValueError (not InvalidVersion) past Python's 4,300-digit limit.
    """
    if len(text) > MAX_VERSION_LENGTH:
        return None
    from packaging.version import InvalidVersion, Version  # not needed to read TOML or JSON

    try:
        return Version(text)
    except (InvalidVersion, ValueError):
        return None


_LONG_NUMBER = re.compile(r"[0-9_]{4300,}")


def number_too_long(text: str) -> tuple[int | None, str]:
    """The line of the first over-long number in *text*, and what is wrong with it.

    For the plain ValueError ``json`` and ``tomllib`` raise (after ``int()``) for a
    literal past Python's 4,300-digit limit: their message suggests raising the
    limit, which is no advice for a file someone else wrote.
    """
    found = _LONG_NUMBER.search(text)
    line = text.count("\n", 0, found.start()) + 1 if found else None
    return line, NUMBER_TOO_LONG.format(limit=4300)


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def json_too_deep(text: str, limit: int = MAX_NESTING_DEPTH) -> bool:
    """Whether JSON *text* nests arrays and objects deeper than *limit*.

    Checked before ``json.loads`` (which recurses once per level): counting the
    brackets settles almost every document at C speed; only a document with more
    brackets than the limit is scanned, skipping the insides of strings.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return True
        elif token in "]}":
            depth -= 1
    return False
