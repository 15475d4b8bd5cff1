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
import os
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


#: What a RECORD error says of a row naming a file another row of it already named.
DUPLICATE_ROW = "{source}:{line}: {path!r} names the same file as line {first} ({other!r})"
#: What a RECORD error says of a row with a NUL byte (no file name can hold one).
NUL_IN_ROW = "{source}:{line}: contains a NUL byte, which no file name can hold"


def parse_record(text: str, source: str, location: str | None = None) -> list[RecordRow]:
    """Parse RECORD text; raise one RecordError listing every malformed line.

    Hash and size values are kept as written: judging them is the caller's job,
    since real RECORDs carry quirks (empty hashes for ``.pyc`` files) that are
    legitimate in one context and suspicious in another. Two rows naming one
    file (after normalising, against *location* when given) are malformed: the
    second could vouch for a file the first hides from the content digest. One
    exception, pip's: a ``__pycache__/*.pyc`` the wheel ships and pip compiles
    again is listed twice with the same text; the later row stands.
    """
    rows: list[RecordRow] = []
    problems: list[str] = []
    seen: dict[str, tuple[int, str]] = {}
    if "\x00" in text:
        # Before the csv module: Python 3.10's reader stops at the first NUL ("line
        # contains NUL"), 3.11's reads on; either way the RECORD is malformed.
        for number, raw in enumerate(text.splitlines(), 1):
            if "\x00" in raw:
                problems.append(NUL_IN_ROW.format(source=source, line=number))
        raise RecordError("\n".join(problems))
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
            if "\x00" in path or "\x00" in hash_text or "\x00" in size:
                problems.append(NUL_IN_ROW.format(source=source, line=line))
                continue
            if "\\" in path:
                path = path.replace("\\", "/")
            key = _file_key(path, location)
            first = seen.setdefault(key, (line, path))
            if first[0] != line and _recompiled_bytecode(path, first[1]):
                # pip's quirk: a wheel that ships a .pyc gets a second row for it when pip
                # compiles the source over it; the later row describes the file on disk.
                rows = [row for row in rows if row.line != first[0]]
                seen[key] = (line, path)
            elif first[0] != line:
                problems.append(
                    DUPLICATE_ROW.format(
                        source=source, line=line, path=path, first=first[0], other=first[1]
                    )
                )
                continue
            rows.append(RecordRow(path, hash_text, size, line))
    except csv.Error as exc:
        problems.append(f"{source}:{reader.line_num}: not valid CSV: {exc}")
    if problems:
        raise RecordError("\n".join(problems))
    return rows


def _recompiled_bytecode(path: str, other: str) -> bool:
    """Two rows with the same plain text for a ``__pycache__/*.pyc`` (pip's compile step)."""
    return (
        path == other
        and _is_plain(path)
        and path.endswith(".pyc")
        and (path.startswith("__pycache__/") or "/__pycache__/" in path)
    )


def is_outside_site_dir(path: str) -> bool:
    """Whether a RECORD path points outside the directory holding ``*.dist-info``.

    Such files (console scripts, data, headers) land in scheme-dependent places
    and scripts are rewritten at install, so they differ from machine to machine.
    """
    if ".." not in path and not path.startswith("/") and path[1:2] != ":":
        return False  # the common case, decided without normpath (a hot path)
    normalized = posixpath.normpath(path)
    return normalized.startswith(("../", "/")) or normalized == ".." or ":" in normalized[:3]


def _is_plain(path: str) -> bool:
    """Whether a RECORD path is already normal and relative (the common case, a hot path)."""
    return (
        "/." not in path
        and "//" not in path
        and path[:1] not in _NOT_PLAIN_START
        and path[-1] != "/"
        and path[1:2] != ":"
    )


_NOT_PLAIN_START = frozenset({"/", ".", ""})


def site_relative(path: str, location: str | None = None) -> str | None:
    """Where a RECORD path lands, relative to the site directory, or None when outside it.

    The one normalisation of a RECORD path, used for the content digest, for
    ownership and for verification alike: judging the raw text in one place and
    the normalised file in another let ``pkg/__pycache__/../__init__.py`` stay out
    of the digest yet vouch for ``pkg/__init__.py``. The installed-packages spec
    allows absolute paths (Poetry's editable install writes them) and paths
    relative to the site directory with ``..`` (scripts). Without *location* the
    judgement is lexical: a path climbing out with ``..`` counts as outside.
    """
    if _is_plain(path):
        return path
    if location is None:
        normal = posixpath.normpath(path)
        if normal.startswith(("../", "/")) or normal in ("..", ".") or ":" in normal[:3]:
            return None
        return normal
    base = os.path.join(os.path.normpath(location), "")
    absolute = row_file(path, base)
    if not absolute.startswith(base) or absolute == base:
        return None
    relative = absolute[len(base) :]
    return relative if os.sep == "/" else relative.replace(os.sep, "/")


def row_file(path: str, base: str) -> str:
    """The normalised absolute path of the file a RECORD row names; *base* ends with a separator."""
    if os.sep == "/" and _is_plain(path):
        return base + path
    if os.path.isabs(path):
        return os.path.normpath(path)
    return os.path.normpath(os.path.join(base, path))


def _file_key(path: str, location: str | None) -> str:
    """What two rows naming one file have in common (for finding duplicate rows)."""
    relative = site_relative(path, location)
    if relative is not None:
        return relative
    if location is None:
        return posixpath.normpath(path)
    return row_file(path, os.path.join(os.path.normpath(location), ""))


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


def shipped_path(path: str, metadata_dir: str, location: str | None = None) -> str | None:
    """The site-relative path of a file the wheel itself shipped, or None for any other row.

    Judged on the normalised path (``site_relative``), never the raw text.
    """
    relative = site_relative(path, location)
    if relative is None or is_installer_generated(relative, metadata_dir):
        return None
    return relative


def is_shipped(path: str, metadata_dir: str, location: str | None = None) -> bool:
    """Whether a RECORD path is a file the wheel itself put in the site directory."""
    return shipped_path(path, metadata_dir, location) is not None


def shipped_rows(
    rows: Iterable[RecordRow], metadata_dir: str, location: str | None = None
) -> list[RecordRow]:
    """The rows that describe files the wheel itself put in the site directory."""
    return [row for row in rows if is_shipped(row.path, metadata_dir, location)]


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


def content_digest(
    rows: Iterable[RecordRow], metadata_dir: str, location: str | None = None
) -> Digest:
    """Digest over the sorted (site-relative path, recorded hash) pairs of the shipped files.

    A normal RECORD row is its own site-relative path, so normalising changed no
    existing digest; only rows that used to be left out wrongly (a ``..`` back
    into the site directory, an absolute path inside it) now count, under their
    normalised path, which is the same on every machine.
    """
    lines = []
    for row in rows:
        relative = shipped_path(row.path, metadata_dir, location)
        if relative is not None:
            lines.append(_digest_line(relative, row.hash))
    return _digest_of_lines(lines)


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
            if len(fields) == 3 and fields[0] and "\x00" not in fields[0]:
                path, hash_text, size = fields
                yield path.replace("\\", "/") if "\\" in path else path, hash_text, size
    except csv.Error:
        return


def summarize_record(
    text: str,
    source: str,
    metadata_dir: str,
    *,
    keep_rows: bool = False,
    location: str | None = None,
) -> RecordSummary:
    """``content_digest(parse_record(text))`` without building a row object per line.

    This runs for every distribution on every gated run, so it streams the rows
    once; on the first malformed line (a NUL byte, two rows naming one file) it
    defers to ``parse_record``, which raises one RecordError listing every problem
    (or, for pip's repeated bytecode rows, returns the rows this summary is built from).
    """
    lines: list[str] = []
    kept: list[tuple[str, str, str]] | None = [] if keep_rows else None
    rows = unhashed = 0
    seen: set[str] = set()
    try:
        if "\x00" in text:
            raise csv.Error("NUL byte")  # the fast split would not notice it
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
            if _is_plain(path):  # the common case: the path is its own site-relative path
                if path in seen:
                    break
                seen.add(path)
                if not is_installer_generated(path, metadata_dir):
                    lines.append(_digest_line(path, hash_text))
                continue
            key = _file_key(path, location)
            if key in seen:
                break
            seen.add(key)
            relative = shipped_path(path, metadata_dir, location)
            if relative is not None:
                lines.append(_digest_line(relative, hash_text))
        else:
            return RecordSummary(
                _digest_of_lines(lines), rows, unhashed, None if kept is None else tuple(kept)
            )
    except csv.Error:
        pass
    # The slow path: raises, naming every malformed line, or accepts pip's repeated
    # bytecode rows (the only repetition parse_record lets through).
    parsed = parse_record(text, source, location)
    return RecordSummary(
        content_digest(parsed, metadata_dir, location),
        len(parsed),
        sum(1 for row in parsed if not row.hash),
        tuple((row.path, row.hash, row.size) for row in parsed) if keep_rows else None,
    )
