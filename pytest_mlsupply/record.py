"""RECORD files (the installed-packages spec) and the content digest built from them.

A wheel's RECORD lists every file it ships with a hash. Installers copy those
rows into the installed RECORD and add rows of their own that differ per
machine. The *content digest* keeps only what the wheel itself shipped into the
site directory, so two installs of one wheel agree on any machine while a
rebuilt wheel under the same version does not.
"""

from __future__ import annotations

import csv
import hashlib
import io
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

from pytest_mlsupply.errors import RecordError
from pytest_mlsupply.hashing import Digest

#: Files an installer writes into ``*.dist-info`` that no wheel ships, or that
#: the wheel ships but installers rewrite (RECORD itself and its signatures).
INSTALLER_METADATA_FILES = frozenset(
    {"RECORD", "RECORD.jws", "RECORD.p7s", "INSTALLER", "REQUESTED", "direct_url.json"}
)

#: Version tag of the content digest algorithm; part of every digest so that a
#: future change of the rules can never be mistaken for changed content.
CONTENT_DIGEST_SCHEME = b"pytest-mlsupply content v1\n"


@dataclass(frozen=True)
class RecordRow:
    """One RECORD row as written: a path, a hash (``alg=b64`` or empty), a size (or empty)."""

    path: str
    hash: str
    size: str
    line: int


def parse_record(text: str, source: str) -> list[RecordRow]:
    """Parse RECORD text; raise one RecordError listing every malformed line.

    Hash and size values are kept as written: judging them is the caller's job,
    since real RECORDs carry quirks (empty hashes for ``.pyc`` files) that are
    legitimate in one context and suspicious in another.
    """
    rows: list[RecordRow] = []
    problems: list[str] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for fields in reader:
            if not fields or fields == [""]:
                continue
            line = reader.line_num
            if len(fields) != 3:
                problems.append(
                    f"{source}:{line}: expected 3 fields (path,hash,size), got {len(fields)}: "
                    f"{','.join(fields)!r}"
                )
                continue
            path, hash_text, size = fields
            if not path:
                problems.append(f"{source}:{line}: empty path")
                continue
            rows.append(RecordRow(path.replace("\\", "/"), hash_text, size, line))
    except csv.Error as exc:
        problems.append(f"{source}:{reader.line_num}: not valid CSV: {exc}")
    if problems:
        raise RecordError("\n".join(problems))
    return rows


def is_outside_site_dir(path: str) -> bool:
    """Whether a RECORD path points outside the directory holding ``*.dist-info``.

    Such files (console scripts, data, headers) land in scheme-dependent places
    and scripts are rewritten at install, so they differ from machine to machine.
    """
    normalized = posixpath.normpath(path)
    return normalized.startswith(("../", "/")) or normalized == ".." or ":" in normalized[:3]


def is_installer_generated(path: str, metadata_dir: str) -> bool:
    """Whether a row describes a file the installer made or rewrites, not the wheel."""
    if path.endswith((".pyc", ".pyo")) or "/__pycache__/" in f"/{path}":
        return True
    folder, _, filename = path.rpartition("/")
    return folder == metadata_dir and filename in INSTALLER_METADATA_FILES


def shipped_rows(rows: Iterable[RecordRow], metadata_dir: str) -> list[RecordRow]:
    """The rows that describe files the wheel itself put in the site directory."""
    return [
        row
        for row in rows
        if not is_outside_site_dir(row.path) and not is_installer_generated(row.path, metadata_dir)
    ]


def _normalized_hash(hash_text: str) -> str:
    # Hashes are kept in RECORD spelling, lower-cased algorithm, no padding. A
    # full base64 decode per row would double the cost of a 35,000-file
    # environment for no gain: installers copy these strings verbatim.
    algorithm, sep, value = hash_text.partition("=")
    if not sep:
        return hash_text
    return f"{algorithm.lower()}={value.rstrip('=')}"


def content_digest(rows: Iterable[RecordRow], metadata_dir: str) -> Digest:
    """Digest over the sorted (path, recorded hash) pairs of the shipped files."""
    pairs = sorted(
        (row.path, _normalized_hash(row.hash)) for row in shipped_rows(rows, metadata_dir)
    )
    hasher = hashlib.sha256(CONTENT_DIGEST_SCHEME)
    for path, hash_text in pairs:
        hasher.update(f"{path}\t{hash_text}\n".encode("utf-8", "surrogateescape"))
    return Digest("sha256", hasher.digest())
