"""Reading known-bad feeds from disk: files, directory trees, zips; the built-in list; a cache.

A feed that cannot be read is a problem of its own (a ``known-bad-feed`` error
naming the file and line); the other feeds still load. The compiled index is
cached in the cache directory, keyed on the stat of every feed file and feed
folder and on the source of the code that compiles it, so a warm run pays for
those ``stat`` calls and one ``marshal`` load instead of parsing.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import marshal
import mmap
import os
import struct
import time
import zipfile
import zlib
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_mlsupply.atomic import write_bytes_atomic
from pytest_mlsupply.knownbad.hashlist import parse_hash_list
from pytest_mlsupply.knownbad.model import Advisory, KnownBadIndex, PackedBlobs
from pytest_mlsupply.knownbad.osv import RecordProblem, add_record
from pytest_mlsupply.limits import (
    MAX_FEED_FILE_BYTES,
    MAX_HASH_LIST_BYTES,
    MAX_NESTING_DEPTH,
    MAX_ZIP_MEMBERS,
    MAX_ZIP_TOTAL_BYTES,
    NESTED_TOO_DEEPLY,
    TOO_LARGE,
    json_too_deep,
    number_too_long,
)

#: The curated list shipped with the plugin, and the date it was last reviewed.
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "data" / "known_bad"
BUILTIN_LIST_DATE = "2026-11-25"
BUILTIN_SOURCE = "built-in list"

OSV_SUFFIXES = (".json", ".yaml", ".yml")
CACHE_FILE = "known-bad-index.marshal"
#: 4: advisories carry ``malicious`` and ``severity`` (issue 12 item 11); an older cache
#: holds neither, so it is compiled afresh rather than read as "all malicious".
CACHE_VERSION = 4
#: The modules whose code decides what a compiled index holds (which records are malicious,
#: what a range or a severity means): the cache key holds a digest of their source, so an
#: index compiled by older code (an editable install updated by ``git pull``) is never reused.
CLASSIFIER_MODULES = ("feeds", "osv", "cvss", "model", "hashlist")
#: The cache file: this tag, the payload's length and CRC-32, then the marshalled payload.
_CACHE_MAGIC = b"mlsupply-known-bad-index\n"
_CACHE_HEADER = struct.Struct("<QL")

YAML_MISSING = (
    "an OSV YAML record, and reading YAML needs PyYAML, which is not installed: "
    "`pip install 'pytest-mlsupply[yaml]'`, or use the JSON form of the feed"
)
YAML_ALIAS = (
    "uses a YAML anchor or alias (&name, *name); OSV records need neither, and aliases can "
    "expand a few hundred bytes into gigabytes"
)
ZIP_TOO_LARGE = (
    "inflates to more than {limit:,} bytes, the limit for one zip feed; stopped at {name}"
)
PATH_MISSING = "{path} does not exist (given as a known-bad feed)"
NO_RECORDS = (
    "holds no OSV records (.json, .yaml, .yml or .zip files); an empty feed protects nothing"
)


def _count(number: int, word: str, plural: str | None = None) -> str:
    return f"{number:,} {word if number == 1 else plural or word + 's'}"


@dataclass(frozen=True)
class FeedProblem:
    """A feed file (or one record or line in it) that could not be used."""

    path: str
    message: str
    line: int | None = None

    def describe(self) -> str:
        where = f"{self.path}, line {self.line}" if self.line else self.path
        return f"{where}: {self.message}"


@dataclass
class FeedStats:
    """What one feed path gave, for the freshness note in every report."""

    shown: str
    records: int = 0
    withdrawn: int = 0
    hashes: int = 0
    newest: str | None = None

    def describe(self) -> str:
        parts = []
        if self.records or not self.hashes:
            text = _count(self.records, "record")
            if self.withdrawn:
                text += f" ({self.withdrawn:,} withdrawn)"
            parts.append(text)
        if self.hashes:
            parts.append(_count(self.hashes, "hash", "hashes"))
        text = f"{' and '.join(parts)} from {self.shown}"
        if self.newest:
            text += f", newest modified {self.newest[:10]}"
        return text


@dataclass
class LoadedFeeds:
    index: KnownBadIndex
    stats: list[FeedStats] = field(default_factory=list)
    problems: list[FeedProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    from_cache: bool = False
    seconds: float = 0.0

    def freshness_note(self) -> str:
        """``known-bad: 24 records (5 withdrawn) from feeds/, newest modified 2026-09-04; ...``."""
        described = []
        for stats in self.stats:
            if stats.shown == BUILTIN_SOURCE:
                described.append(
                    f"{_count(stats.records, 'built-in record')} (list dated {BUILTIN_LIST_DATE})"
                )
            else:
                described.append(stats.describe())
        text = "; ".join(described) if described else "no feeds"
        cached = ", compiled index from the cache" if self.from_cache else ""
        return f"known-bad: {text}{cached} ({self.seconds * 1000:.0f} ms)"


def load_feeds(
    paths: Sequence[Path],
    *,
    builtin: bool = True,
    base: Path | None = None,
    cache_dir: Path | None = None,
    rebuild: bool = False,
) -> LoadedFeeds:
    """Every feed in *paths* (and the built-in list) in one index; problems collected.

    With *cache_dir*, the compiled index is reused while no feed changed;
    *rebuild* compiles afresh (and rewrites the cache) whatever it holds.
    """
    started = time.perf_counter()
    sources = ([BUILTIN_DIR] if builtin else []) + [Path(p) for p in paths]
    fingerprint = _fingerprint(sources) if cache_dir is not None else None
    cached: LoadedFeeds | str | None = None
    if cache_dir is not None and fingerprint is not None and not rebuild:
        cached = _load_cache(cache_dir / CACHE_FILE, fingerprint)
        if isinstance(cached, LoadedFeeds):
            cached.seconds = time.perf_counter() - started
            return cached
    loaded = LoadedFeeds(KnownBadIndex())
    for source in sources:
        shown = BUILTIN_SOURCE if source == BUILTIN_DIR else _shown(source, base)
        stats = FeedStats(shown)
        loaded.stats.append(stats)
        _load_path(loaded, source, shown, stats)
    if cache_dir is not None and fingerprint is not None:
        try:
            _save_cache(cache_dir / CACHE_FILE, fingerprint, loaded)
        except OSError as exc:
            loaded.notes.append(f"the known-bad index cache could not be written: {exc}")
    if isinstance(cached, str):
        loaded.notes.append(cached)  # after saving: the next run need not repeat it
    loaded.seconds = time.perf_counter() - started
    return loaded


def _shown(path: Path, base: Path | None) -> str:
    if base is not None and path.is_absolute() and path.is_relative_to(base):
        return os.path.relpath(path, base)
    return str(path)


def _load_path(loaded: LoadedFeeds, path: Path, shown: str, stats: FeedStats) -> None:
    if path.is_dir():
        root = str(path)
        for file in _walk(root):
            display = shown + file[len(root) :]
            if file.endswith(".zip"):
                _load_zip(loaded, Path(file), display, stats)
            else:
                _load_osv_file(loaded, file, display, stats)
        if stats.records == 0 and not any(p.path.startswith(shown) for p in loaded.problems):
            loaded.problems.append(FeedProblem(shown, NO_RECORDS))
    elif not path.exists():
        loaded.problems.append(FeedProblem(shown, PATH_MISSING.format(path=shown)))
    elif path.suffix.lower() == ".zip":
        _load_zip(loaded, path, shown, stats)
    elif path.suffix.lower() in OSV_SUFFIXES:
        _load_osv_file(loaded, str(path), shown, stats)
    else:
        _load_hash_list(loaded, path, shown, stats)


_FEED_SUFFIXES = (*OSV_SUFFIXES, ".zip")


def _walk(root: str) -> Iterator[str]:
    """OSV files and zips below *root*, sorted, hidden folders (``.git``) skipped."""
    try:
        with os.scandir(root) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if name.startswith("."):
            continue
        if entry.is_dir():
            yield from _walk(entry.path)
        elif name.lower().endswith(_FEED_SUFFIXES):
            yield entry.path


def _read_bytes(
    loaded: LoadedFeeds,
    path: str,
    shown: str,
    limit: int = MAX_FEED_FILE_BYTES,
    what: str = "one OSV record file",
) -> bytes | None:
    """The file's bytes; a file over *limit* is a problem, and no more than that is read."""
    try:
        with open(path, "rb") as stream:
            # read(limit + 1) alone would allocate 16 MiB per record file: size the first read
            # by fstat, and bound only what a growing or special file (size 0) adds.
            size = os.fstat(stream.fileno()).st_size
            data = b"" if size > limit else stream.read(size + 1 if size else limit + 1)
            if size and len(data) > size:
                data += stream.read(limit + 1 - len(data))
    except OSError as exc:
        loaded.problems.append(FeedProblem(shown, f"cannot be read: {exc.strerror or exc}"))
        return None
    if size > limit or len(data) > limit:
        loaded.problems.append(FeedProblem(shown, TOO_LARGE.format(limit=limit, what=what)))
        return None
    return data


def _decode(loaded: LoadedFeeds, data: bytes, shown: str) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        loaded.problems.append(FeedProblem(shown, f"not UTF-8 text ({exc.reason})"))
    return None


def _read_text(loaded: LoadedFeeds, path: Path, shown: str) -> str | None:
    data = _read_bytes(loaded, str(path), shown, MAX_HASH_LIST_BYTES, "a hash list")
    return None if data is None else _decode(loaded, data, shown)


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _load_osv_file(loaded: LoadedFeeds, path: str, shown: str, stats: FeedStats) -> None:
    data = _read_bytes(loaded, path, shown)
    if data is None:
        return
    text = _decode(loaded, data, shown)
    if text is None:
        return
    if path.lower().endswith(".json"):
        _add_json(loaded, text, shown, _stem(path), stats)
    else:
        _add_yaml(loaded, text, shown, _stem(path), stats)


def _add_json(loaded: LoadedFeeds, text: str, shown: str, stem: str, stats: FeedStats) -> None:
    if json_too_deep(text):
        message = f"not valid JSON: {NESTED_TOO_DEEPLY.format(limit=MAX_NESTING_DEPTH)}"
        loaded.problems.append(FeedProblem(shown, message))
        return
    try:
        document = json.loads(text)
    except RecursionError:  # pragma: no cover - json_too_deep stops this first
        loaded.problems.append(FeedProblem(shown, "not valid JSON: nested too deeply"))
        return
    except json.JSONDecodeError as exc:
        loaded.problems.append(FeedProblem(shown, f"not valid JSON: {exc.msg}", exc.lineno))
        return
    except ValueError:  # int() of a number past Python's 4,300-digit limit
        line, problem = number_too_long(text)
        loaded.problems.append(FeedProblem(shown, f"not valid JSON: {problem}", line))
        return
    _add_document(loaded, document, shown, stem, stats)


def _add_yaml(loaded: LoadedFeeds, text: str, shown: str, stem: str, stats: FeedStats) -> None:
    try:
        import yaml
    except ImportError:
        loaded.problems.append(FeedProblem(shown, YAML_MISSING))
        return
    try:
        document = _safe_yaml(yaml, text)
    except RecursionError:  # pragma: no cover - the loader's depth limit stops this first
        loaded.problems.append(FeedProblem(shown, "not valid YAML: nested too deeply"))
        return
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        loaded.problems.append(FeedProblem(shown, f"not valid YAML: {problem}", line))
        return
    _add_document(loaded, document, shown, stem, stats)


def _safe_yaml(yaml: Any, text: str) -> Any:
    """``yaml.safe_load`` without anchors or aliases, and with a nesting limit."""
    loader = _yaml_loader(yaml)(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


@functools.cache
def _yaml_loader(yaml: Any) -> Any:
    """A SafeLoader that refuses anchors and aliases and documents nested too deeply.

    A 469-byte alias bomb expands ninefold per level into gigabytes; refusing the
    anchor keeps a document as large in memory as its text. The depth limit stops
    the composer's recursion (Python frames per level) long before Python's own.
    """

    class Loader(yaml.SafeLoader):  # type: ignore[misc]
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise yaml.composer.ComposerError(None, None, YAML_ALIAS, event.start_mark)
            if self.depth >= MAX_NESTING_DEPTH:
                deep = NESTED_TOO_DEEPLY.format(limit=MAX_NESTING_DEPTH)
                raise yaml.composer.ComposerError(None, None, deep, event.start_mark)
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return Loader


def _add_document(
    loaded: LoadedFeeds, document: Any, shown: str, stem: str, stats: FeedStats
) -> None:
    """One record, a list of records, or an OSV query answer (``{"vulns": [...]}``)."""
    if isinstance(document, dict) and "affected" not in document and "vulns" in document:
        document = document["vulns"]
    records = document if isinstance(document, list) else [document]
    for position, record in enumerate(records):
        where = shown if len(records) == 1 else f"{shown}[{position}]"
        try:
            outcome = add_record(
                loaded.index,
                record,
                source=where,
                fallback_id=stem,
                malicious=stats.shown == BUILTIN_SOURCE,  # the built-in list names malware only
            )
        except RecordProblem as exc:
            loaded.problems.append(FeedProblem(where, f"not a usable OSV record: {exc}"))
            continue
        stats.records += 1
        stats.withdrawn += outcome.withdrawn
        if outcome.modified and (stats.newest is None or outcome.modified > stats.newest):
            stats.newest = outcome.modified
        loaded.notes.extend(outcome.notes)


def _load_zip(loaded: LoadedFeeds, path: Path, shown: str, stats: FeedStats) -> None:
    found = False
    try:
        with (
            open(path, "rb") as stream,
            mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as whole,
            zipfile.ZipFile(stream) as archive,
        ):
            members = archive.infolist()
            if len(members) > MAX_ZIP_MEMBERS:
                message = f"holds {len(members):,} members; the limit is {MAX_ZIP_MEMBERS:,}"
                loaded.problems.append(FeedProblem(shown, message))
                return
            budget = MAX_ZIP_TOTAL_BYTES
            for info in members:
                name = info.filename
                if info.is_dir() or not name.lower().endswith(OSV_SUFFIXES):
                    continue
                found = True
                inner = f"{shown}!{name}"
                if info.file_size > MAX_FEED_FILE_BYTES:
                    too_large = TOO_LARGE.format(
                        limit=MAX_FEED_FILE_BYTES, what="one OSV record file"
                    )
                    loaded.problems.append(FeedProblem(inner, f"declares it {too_large}"))
                    continue
                try:
                    data = _member(archive, info, whole)
                except _MemberTooLarge:
                    too_large = TOO_LARGE.format(
                        limit=MAX_FEED_FILE_BYTES, what="one OSV record file"
                    )
                    message = f"inflates past its declared size: it {too_large}"
                    loaded.problems.append(FeedProblem(inner, message))
                    continue
                except (zipfile.BadZipFile, zlib.error, struct.error, NotImplementedError) as exc:
                    loaded.problems.append(FeedProblem(inner, f"cannot be extracted: {exc}"))
                    continue
                budget -= len(data)
                if budget < 0:
                    message = ZIP_TOO_LARGE.format(limit=MAX_ZIP_TOTAL_BYTES, name=name)
                    loaded.problems.append(FeedProblem(shown, message))
                    return
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    loaded.problems.append(FeedProblem(inner, f"not UTF-8 text ({exc.reason})"))
                    continue
                stem = _stem(name)
                if name.lower().endswith(".json"):
                    _add_json(loaded, text, inner, stem, stats)
                else:
                    _add_yaml(loaded, text, inner, stem, stats)
    except (zipfile.BadZipFile, OSError, ValueError, zlib.error, EOFError, struct.error) as exc:
        loaded.problems.append(FeedProblem(shown, f"not a readable zip of OSV records: {exc}"))
        return
    if not found:
        loaded.problems.append(FeedProblem(shown, NO_RECORDS))


_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile's structFileHeader


class _MemberTooLarge(Exception):
    """A zip member inflates past MAX_FEED_FILE_BYTES, whatever size it declared."""


def _member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, whole: mmap.mmap) -> bytes:
    """One member's bytes, decompressed straight from the archive's bytes.

    ``ZipFile.read`` builds a file object per member; for the 400,000 small
    members of OSV's ``all.zip`` that overhead is most of the load. Deflated and
    stored members are read here (CRC checked); anything else goes to zipfile.
    The size declared in the central directory can lie (a 1.5 MB member once
    inflated to 1.5 GiB), so inflating stops at the limit whatever it says.
    """
    limit = MAX_FEED_FILE_BYTES
    if info.compress_type not in (zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED) or info.flag_bits & 1:
        with archive.open(info) as member:
            data = member.read(limit + 1)
        if len(data) > limit:
            raise _MemberTooLarge(info.filename)
        return data
    header = _LOCAL_HEADER.unpack_from(whole, info.header_offset)
    if header[0] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for {info.filename}")
    start = info.header_offset + _LOCAL_HEADER.size + header[10] + header[11]
    raw = whole[start : start + info.compress_size]
    if info.compress_type == zipfile.ZIP_DEFLATED:
        inflater = zlib.decompressobj(-15)
        data = inflater.decompress(raw, limit + 1)
        if len(data) > limit or inflater.unconsumed_tail:
            raise _MemberTooLarge(info.filename)
    else:
        data = raw
    if len(data) > limit:
        raise _MemberTooLarge(info.filename)
    if zlib.crc32(data) != info.CRC:
        raise zipfile.BadZipFile(f"bad CRC for {info.filename}")
    return data


def _load_hash_list(loaded: LoadedFeeds, path: Path, shown: str, stats: FeedStats) -> None:
    text = _read_text(loaded, path, shown)
    if text is None:
        return
    entries, problems = parse_hash_list(text)
    for line, message in problems:
        loaded.problems.append(FeedProblem(shown, message, line))
    index = loaded.index
    for entry in entries:
        label = entry.label or entry.digest.hex[:12]
        advisory = index.add_advisory(
            Advisory((f"{path.name}:{entry.line}",), f"listed as known-bad: {label}", shown)
        )
        index.add_digest(entry.digest, advisory)
    stats.hashes += len(entries)
    modified = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
    stats.newest = max(stats.newest or "", modified.isoformat())


# ------------------------------------------------------------------------------ cache


def _fingerprint(sources: Sequence[Path]) -> str | None:
    """What changes when a feed changes: each file's stat, each feed folder's stat.

    Folders are fingerprinted by their own stat (a file added, removed or
    replaced, as ``git pull`` and editors do, changes its folder's mtime), not by
    one stat per file: 50,000 stats would cost a warm run more than the budget.
    A file edited in place keeps its folder's mtime; ``--mlsupply-rehash``
    (``check --rehash``) recompiles the index whatever the cache holds.
    """
    classifier = _classifier_digest()
    if classifier is None:
        return None  # the code that compiles the index cannot be identified: no cache
    parts: list[Any] = [CACHE_VERSION, classifier]
    hasher = hashlib.sha256()
    for source in sources:
        try:
            st = source.stat()
        except OSError:
            return None  # a missing feed: load afresh so the problem is reported
        parts.append((str(source), st.st_size, st.st_mtime_ns, st.st_ino))
        if source.is_dir():
            numbers = array("q")
            _folder_stats(str(source), numbers)
            hasher.update(numbers.tobytes())
    parts.append(hasher.hexdigest())
    return json.dumps(parts)


def _classifier_digest() -> str | None:
    """A digest of the source of ``CLASSIFIER_MODULES`` and the plugin's version.

    A version number alone misses a change between releases (an editable install, a
    patched copy); the source bytes do not. None when a module's source cannot be read
    (a frozen or zipped install): then the index is compiled afresh every run.
    """
    from pytest_mlsupply import __version__

    hasher = hashlib.sha256(__version__.encode())
    folder = Path(__file__).resolve().parent
    for name in CLASSIFIER_MODULES:
        try:
            hasher.update((folder / f"{name}.py").read_bytes())
        except OSError:
            return None
    return hasher.hexdigest()


def _folder_stats(root: str, numbers: array[int]) -> None:
    """(mtime_ns, inode) of *root* and of every non-hidden folder below it, into *numbers*.

    A folder whose link count is 2 has no subfolders on POSIX filesystems (its
    own entry and ``.``), so it is not listed: in a feed laid out one folder per
    package, that skips listing tens of thousands of leaf folders. Subfolders
    are stat-ed through their parent's descriptor where the platform allows,
    which spares resolving each full path again (a warm run does this for every
    folder of the feed).
    """
    try:
        st = os.stat(root)
    except OSError:
        return
    numbers.extend((st.st_mtime_ns, st.st_ino))
    pending = [root] if st.st_nlink != 2 else []
    relative_stat = os.stat in os.supports_dir_fd and os.scandir in os.supports_fd
    while pending:
        folder = pending.pop()
        try:
            if relative_stat:
                _list_with_fd(folder, numbers, pending)
            else:
                _list_with_paths(folder, numbers, pending)
        except OSError:
            continue


def _list_with_fd(folder: str, numbers: array[int], pending: list[str]) -> None:
    """Subfolders in listing order, unsorted: an unchanged folder lists in the same order, and
    a new order only costs one recompile (sorting 40,000 names cost a tenth of a warm run)."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        with os.scandir(fd) as listing:
            names = [e.name for e in listing if e.name[0] != "." and e.is_dir()]
        stat, extend = os.stat, numbers.extend
        for name in names:
            st = stat(name, dir_fd=fd)
            extend((st.st_mtime_ns, st.st_ino))
            if st.st_nlink != 2:
                pending.append(os.path.join(folder, name))
    finally:
        os.close(fd)


def _list_with_paths(folder: str, numbers: array[int], pending: list[str]) -> None:
    with os.scandir(folder) as listing:
        paths = [e.path for e in listing if e.name[0] != "." and e.is_dir()]
    for path in paths:
        st = os.stat(path)
        numbers.extend((st.st_mtime_ns, st.st_ino))
        if st.st_nlink != 2:
            pending.append(path)


def _save_cache(path: Path, fingerprint: str, loaded: LoadedFeeds) -> None:
    """marshal, not pickle: it builds only plain data, never arbitrary objects.

    Each name's and each digest's entries are marshalled on their own, so a warm
    run decodes only those of the ~200 names installed (KnownBadIndex.lazy_*).
    """
    packages, digests = loaded.index.to_blobs()
    data = {
        "version": CACHE_VERSION,
        "fingerprint": fingerprint,
        "packages": PackedBlobs.pack(packages) or packages,
        "digests": digests,
        "spellings": loaded.index.record_spellings(),
        "stats": [(s.shown, s.records, s.withdrawn, s.hashes, s.newest) for s in loaded.stats],
        "problems": [(p.path, p.message, p.line) for p in loaded.problems],
        "notes": loaded.notes,
    }
    payload = marshal.dumps(data)
    header = _CACHE_MAGIC + _CACHE_HEADER.pack(len(payload), zlib.crc32(payload))
    write_bytes_atomic(path, header + payload)


CACHE_UNUSABLE = "the known-bad index cache {path} was not usable ({reason}); compiled afresh"


class _BadCache(Exception):
    """A cache file that is not what ``_save_cache`` writes: a miss, never a crash."""


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise _BadCache(what)


def _load_cache(path: Path, fingerprint: str) -> LoadedFeeds | str | None:
    """The cached index if it was compiled from exactly these feeds; None when it was not.

    A file that is not what ``_save_cache`` writes (corrupted, truncated, edited)
    gives the reason as text: the caller compiles afresh and says why. Each field
    is checked here; the per-name entries are checked when decoded (model.py).
    """
    try:
        raw = path.read_bytes()
    except OSError:
        return None  # no cache yet
    try:
        data = marshal.loads(_checked_payload(raw))
        _expect(isinstance(data, dict), "not a mapping")
        if data.get("version") != CACHE_VERSION or data.get("fingerprint") != fingerprint:
            return None
        packages, digests = data.get("packages"), data.get("digests")
        if isinstance(packages, tuple) and len(packages) == 3:
            packages = PackedBlobs(*packages)
        else:
            _expect(_str_to(packages, bytes), "bad 'packages'")
        _expect(_str_to(digests, bytes), "bad 'digests'")
        spellings = data.get("spellings")
        _expect(_str_to(spellings, str), "bad 'spellings'")
        stats = [FeedStats(*_row(row, _STATS_ROW)) for row in _list(data.get("stats"))]
        problems = [FeedProblem(*_row(row, _PROBLEM_ROW)) for row in _list(data.get("problems"))]
        notes = _list(data.get("notes"))
        _expect(all(isinstance(note, str) for note in notes), "bad 'notes'")
    except (_BadCache, EOFError, ValueError, TypeError) as exc:
        # marshal raises EOFError, ValueError ("bad marshal data") and TypeError
        return CACHE_UNUSABLE.format(path=path, reason=str(exc) or type(exc).__name__)
    index = KnownBadIndex(lazy_packages=packages, lazy_digests=digests)
    index.spellings = dict(spellings)
    loaded = LoadedFeeds(index, from_cache=True)
    loaded.stats, loaded.problems, loaded.notes = stats, problems, list(notes)
    return loaded


def _checked_payload(raw: bytes) -> memoryview:
    """The marshalled payload, once its length and CRC-32 match.

    ``marshal`` is not made for untrusted bytes: a single changed byte once made
    one load take 20 seconds. The checksum keeps a truncated or corrupted file
    away from it (a cache is no defence against someone who may write to it).
    """
    start = len(_CACHE_MAGIC) + _CACHE_HEADER.size
    _expect(raw.startswith(_CACHE_MAGIC) and len(raw) >= start, "not a cache file of this version")
    length, crc = _CACHE_HEADER.unpack_from(raw, len(_CACHE_MAGIC))
    payload = memoryview(raw)[start:]
    _expect(len(payload) == length, "truncated")
    _expect(zlib.crc32(payload) == crc, "checksum mismatch")
    return payload


_STATS_ROW = (str, int, int, int, (str, type(None)))
_PROBLEM_ROW = (str, str, (int, type(None)))


def _str_to(value: Any, kind: type) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, kind) for k, v in value.items()
    )


def _list(value: Any) -> list[Any]:
    _expect(isinstance(value, list), "a list expected")
    return list(value)


def _row(value: Any, kinds: tuple[Any, ...]) -> tuple[Any, ...]:
    _expect(isinstance(value, tuple) and len(value) == len(kinds), "bad row")
    _expect(all(isinstance(v, k) for v, k in zip(value, kinds, strict=True)), "bad row")
    return tuple(value)
