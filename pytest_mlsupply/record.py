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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

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


class RecordRow(NamedTuple):
    """One RECORD row as written: a path, a hash (``alg=b64`` or empty), a size (or empty).

    A NamedTuple rather than a frozen dataclass: a torch-sized environment has
    35,000 rows, and building them is on the start-up path of every gated run.
    """

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
            if "\\" in path:
                path = path.replace("\\", "/")
            rows.append(RecordRow(path, hash_text, size, line))
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
    if ".." not in path and not path.startswith("/") and path[1:2] != ":":
        return False  # the common case, decided without normpath (a hot path)
    normalized = posixpath.normpath(path)
    return normalized.startswith(("../", "/")) or normalized == ".." or ":" in normalized[:3]


def is_installer_generated(path: str, metadata_dir: str) -> bool:
    """Whether a row describes a file the installer made or rewrites, not the wheel."""
    # Cheapest tests first: this runs once per installed file on every gated run.
    if path.endswith((".pyc", ".pyo")):
        return True
    if "__pycache__/" in path and (path.startswith("__pycache__/") or "/__pycache__/" in path):
        return True
    if not path.startswith(metadata_dir):
        return False
    folder, _, filename = path.rpartition("/")
    return folder == metadata_dir and filename in INSTALLER_METADATA_FILES


def is_shipped(path: str, metadata_dir: str) -> bool:
    """Whether a RECORD path is a file the wheel itself put in the site directory."""
    return not is_outside_site_dir(path) and not is_installer_generated(path, metadata_dir)


def shipped_rows(rows: Iterable[RecordRow], metadata_dir: str) -> list[RecordRow]:
    """The rows that describe files the wheel itself put in the site directory."""
    return [row for row in rows if is_shipped(row.path, metadata_dir)]


def _digest_line(path: str, hash_text: str) -> str:
    # Hashes are kept in RECORD spelling with a lower-case algorithm and no
    # padding. A full base64 decode per row would double the cost for a
    # 35,000-file environment for no gain: installers copy these strings verbatim.
    if hash_text.endswith("=") or not hash_text.startswith("sha256="):
        algorithm, sep, value = hash_text.partition("=")
        if sep:
            hash_text = f"{algorithm.lower()}={value.rstrip('=')}"
    return f"{path}\t{hash_text}\n"


def _digest_of_lines(lines: list[str]) -> Digest:
    """The content digest: sha256 over the scheme tag and the sorted ``path<TAB>hash`` lines."""
    lines.sort()
    hasher = hashlib.sha256(CONTENT_DIGEST_SCHEME)
    hasher.update("".join(lines).encode("utf-8", "surrogateescape"))
    return Digest("sha256", hasher.digest())


def content_digest(rows: Iterable[RecordRow], metadata_dir: str) -> Digest:
    """Digest over the sorted (path, recorded hash) pairs of the shipped files."""
    return _digest_of_lines(
        [_digest_line(row.path, row.hash) for row in shipped_rows(rows, metadata_dir)]
    )


@dataclass(frozen=True)
class RecordSummary:
    """What the snapshot keeps of a RECORD: the content digest and two counts."""

    content: Digest
    rows: int
    unhashed_rows: int
    #: (path, hash, size) of every row, kept when asked so a later pass need not parse again.
    kept_rows: tuple[tuple[str, str, str], ...] | None = None


def _split_rows(text: str) -> Iterator[list[str]]:
    """CSV rows of RECORD text, split quickly when no field can be quoted.

    Without ``"`` no field is quoted, so splitting ``\n``-separated lines at
    every comma gives exactly what the csv module gives, at a fraction of the
    cost. Text with quotes or ``\r`` line ends goes through the csv module.
    """
    if '"' in text or "\r" in text:
        yield from csv.reader(io.StringIO(text, newline=""))
        return
    for line in text.split("\n"):
        yield line.split(",")


def iter_record_rows(text: str) -> Iterator[tuple[str, str, str]]:
    """(path, hash, size) of every well-formed row; malformed rows are skipped.

    For a second pass over a RECORD the snapshot already judged: a malformed
    RECORD has been reported once, as a broken distribution, by then.
    """
    try:
        for fields in _split_rows(text):
            if len(fields) == 3 and fields[0]:
                path, hash_text, size = fields
                yield path.replace("\\", "/") if "\\" in path else path, hash_text, size
    except csv.Error:
        return


def summarize_record(
    text: str, source: str, metadata_dir: str, *, keep_rows: bool = False
) -> RecordSummary:
    """``content_digest(parse_record(text))`` without building a row object per line.

    This runs for every distribution on every gated run, so it streams the rows
    once; on the first malformed line it defers to ``parse_record``, which
    raises one RecordError listing every problem.
    """
    lines: list[str] = []
    kept: list[tuple[str, str, str]] | None = [] if keep_rows else None
    rows = unhashed = 0
    try:
        for fields in _split_rows(text):
            if len(fields) != 3 or not fields[0]:
                if not fields or fields == [""]:
                    continue
                break
            path, hash_text, size = fields
            rows += 1
            if not hash_text:
                unhashed += 1
            if "\\" in path:
                path = path.replace("\\", "/")
            if kept is not None:
                kept.append((path, hash_text, size))
            if is_shipped(path, metadata_dir):
                lines.append(_digest_line(path, hash_text))
        else:
            return RecordSummary(
                _digest_of_lines(lines), rows, unhashed, None if kept is None else tuple(kept)
            )
    except csv.Error:
        pass
    parse_record(text, source)  # raises, naming every malformed line
    raise RecordError(f"{source}: malformed")  # pragma: no cover - parse_record raised
