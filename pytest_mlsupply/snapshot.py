"""The installed environment, read through ``importlib.metadata``.

The search path is injectable so that tests and the command line can read any
environment's site directories; by default it is ``sys.path`` without the
current directory, whose contents depend on how pytest was launched
(``pytest`` and ``python -m pytest`` differ there) and not on what is installed.
"""

from __future__ import annotations

import os
import platform
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.parser import HeaderParser
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

from pytest_mlsupply.errors import RecordError
from pytest_mlsupply.hashcache import RecordCache, record_stat_key
from pytest_mlsupply.limits import MAX_RECORD_BYTES, TOO_LARGE
from pytest_mlsupply.record import summarize_record
from pytest_mlsupply.sources import Source


@dataclass(frozen=True)
class Interpreter:
    """The interpreter and platform a snapshot was taken on."""

    implementation: str
    python_version: str
    platform: str

    @classmethod
    def current(cls) -> Interpreter:
        return cls(sys.implementation.name, platform.python_version(), sysconfig.get_platform())

    @property
    def key(self) -> str:
        """What binary wheels depend on: implementation, minor version, platform."""
        major_minor = ".".join(self.python_version.split(".")[:2])
        return f"{self.implementation}-{major_minor}-{self.platform}"


#: What we could make of a distribution's RECORD.
RECORD_OK = "ok"
RECORD_MISSING = "missing"
RECORD_MALFORMED = "malformed"
RECORD_LEGACY = "legacy"  # *.egg-info: the legacy format never had a RECORD


@dataclass(frozen=True)
class InstalledDistribution:
    """One installed distribution as found on disk.

    ``content`` is the content digest (``sha256:...``) or None when there is no
    usable RECORD; ``problem`` then says why.
    """

    name: str
    display_name: str
    version: str
    source: Source
    installer: str | None
    location: str
    metadata_path: str
    content: str | None
    files: int = 0
    unhashed_files: int = 0
    record_state: str = RECORD_OK
    problem: str | None = None
    #: RECORD's (path, hash, size) rows, when the snapshot was asked to keep them
    #: (None also when a record cache made reading RECORD unnecessary).
    record_rows: tuple[tuple[str, str, str], ...] | None = field(
        default=None, repr=False, compare=False
    )
    #: RECORD's stat when it was read (the key of the record cache), else None.
    record_stat: tuple[int, ...] | None = field(default=None, repr=False, compare=False)

    @property
    def legacy(self) -> bool:
        return self.record_state == RECORD_LEGACY


@dataclass(frozen=True)
class BrokenDistribution:
    """A metadata directory we could not read a name and version from."""

    metadata_path: str
    problem: str


@dataclass(frozen=True)
class Shadowed:
    """A second copy of a distribution that the first one on the path hides."""

    hidden: InstalledDistribution
    active: InstalledDistribution


@dataclass(frozen=True)
class Snapshot:
    """Every distribution visible on a search path, in the order imports see them."""

    interpreter: Interpreter
    distributions: tuple[InstalledDistribution, ...]
    shadowed: tuple[Shadowed, ...]
    broken: tuple[BrokenDistribution, ...]
    search_path: tuple[str, ...]

    def by_name(self) -> dict[str, InstalledDistribution]:
        return {dist.name: dist for dist in self.distributions}


def default_search_path() -> list[str]:
    """``sys.path`` without the launch-dependent current-directory entry."""
    cwd = os.path.abspath(os.getcwd())
    return [entry for entry in sys.path if entry and os.path.abspath(entry) != cwd]


def take_snapshot(
    search_path: Sequence[str] | None = None,
    *,
    keep_rows: bool = False,
    record_cache: RecordCache | None = None,
    interpreter: Interpreter | None = None,
) -> Snapshot:
    """Read every distribution on *search_path* (default: see ``default_search_path``).

    *interpreter* describes another interpreter whose paths are read (``--python``).

    *keep_rows* keeps each RECORD's rows on its distribution, for the file
    verification that follows (parsing 35,000 rows twice costs a run 50 ms).
    With a *record_cache*, a RECORD whose stat is unchanged is not read at all:
    its content digest and counts come from the cache (and its rows are not kept).
    """
    entries = list(default_search_path() if search_path is None else search_path)
    active: dict[str, InstalledDistribution] = {}
    shadowed: list[Shadowed] = []
    broken: list[BrokenDistribution] = []
    for entry in entries:
        for dist in _distributions_in(entry):
            found = _read_distribution(dist, keep_rows, record_cache)
            if isinstance(found, BrokenDistribution):
                broken.append(found)
            elif found.name in active:
                shadowed.append(Shadowed(hidden=found, active=active[found.name]))
            else:
                active[found.name] = found
    return Snapshot(
        interpreter=interpreter or Interpreter.current(),
        distributions=tuple(sorted(active.values(), key=lambda d: d.name)),
        shadowed=tuple(shadowed),
        broken=tuple(broken),
        search_path=tuple(entries),
    )


def _distributions_in(entry: str) -> list[metadata.Distribution]:
    """Distributions of one path entry, in a stable order (directory listings are not)."""
    found = list(metadata.distributions(path=[entry]))
    return sorted(found, key=lambda dist: _metadata_path(dist) or "")


def _metadata_path(dist: metadata.Distribution) -> str | None:
    # PathDistribution keeps its directory in the private ``_path``; the public
    # API has no accessor for it (pip's importlib backend reads it the same way).
    path = getattr(dist, "_path", None)
    return None if path is None else str(path)


def _record_size(metadata_path: str, stat_key: tuple[int, ...] | None) -> int:
    """RECORD's size in bytes (0 when it cannot be stat-ed: reading it then says why)."""
    if stat_key is not None:
        return stat_key[2]
    try:
        return os.stat(os.path.join(metadata_path, "RECORD")).st_size
    except OSError:
        return 0


def _read_text(dist: metadata.Distribution, filename: str) -> str | None:
    try:
        return dist.read_text(filename)
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _name_and_version(dist: metadata.Distribution) -> tuple[str | None, str | None]:
    """Name and Version from the header block of METADATA (or PKG-INFO for egg-info).

    ``Distribution.metadata`` runs the email parser over the whole file, long
    description included; torch's METADATA alone is thousands of lines. The
    header block ends at the first blank line (core metadata spec), so only it
    is parsed, with the same standard-library parser.
    """
    text = dist.read_text("METADATA")
    if text is None:
        text = dist.read_text("PKG-INFO")
    if text is None:
        return None, None
    header = text.replace("\r\n", "\n").split("\n\n", 1)[0]
    message = HeaderParser().parsestr(header)
    return message.get("Name"), message.get("Version")


def _read_distribution(
    dist: metadata.Distribution,
    keep_rows: bool = False,
    record_cache: RecordCache | None = None,
) -> InstalledDistribution | BrokenDistribution:
    metadata_path = _metadata_path(dist) or "<unknown location>"
    try:
        raw_name, version = _name_and_version(dist)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return BrokenDistribution(metadata_path, f"metadata cannot be read: {exc}")
    if not raw_name or not version:
        missing = "Name" if not raw_name else "Version"
        return BrokenDistribution(metadata_path, f"METADATA is missing or has no {missing} field")
    metadata_dir = Path(metadata_path).name
    legacy = metadata_dir.endswith(".egg-info")
    installer = _read_text(dist, "INSTALLER")
    content: str | None = None
    files = unhashed = 0
    problem: str | None = None
    state = RECORD_OK
    summary_rows: tuple[tuple[str, str, str], ...] | None = None
    # Stat before reading: a RECORD changed in between is keyed on its old stat,
    # so the next run reads it again.
    stat_key = record_stat_key(metadata_path) if record_cache is not None else None
    cached = record_cache.summary(metadata_path, stat_key) if record_cache is not None else None
    oversized = cached is None and _record_size(metadata_path, stat_key) > MAX_RECORD_BYTES
    record_text = None if cached is not None or oversized else _read_text(dist, "RECORD")
    if cached is not None:
        content, files, unhashed = cached
    elif oversized:
        state = RECORD_MALFORMED
        too_large = TOO_LARGE.format(limit=MAX_RECORD_BYTES, what="one RECORD")
        problem = f"RECORD {too_large}; it was not read"
    elif record_text is None:
        state = RECORD_LEGACY if legacy else RECORD_MISSING
        problem = "has no RECORD file, so its files cannot be checked"
    else:
        try:
            summary = summarize_record(
                record_text,
                f"{metadata_path}/RECORD",
                metadata_dir,
                keep_rows=keep_rows,
                location=str(dist.locate_file("")),
            )
        except RecordError as exc:
            state = RECORD_MALFORMED
            problem = f"RECORD is malformed: {exc}"
        else:
            content = str(summary.content)
            files, unhashed = summary.rows, summary.unhashed_rows
            summary_rows = summary.kept_rows
            if record_cache is not None and stat_key is not None:
                record_cache.put_summary(metadata_path, stat_key, content, files, unhashed)
    return InstalledDistribution(
        name=canonicalize_name(raw_name),
        display_name=raw_name,
        version=version.strip(),
        source=Source.from_direct_url(_read_text(dist, "direct_url.json")),
        installer=installer.strip() or None if installer else None,
        location=str(dist.locate_file("")),
        metadata_path=metadata_path,
        content=content,
        files=files,
        unhashed_files=unhashed,
        record_state=state,
        problem=problem,
        record_rows=summary_rows,
        record_stat=stat_key if state == RECORD_OK else None,
    )
