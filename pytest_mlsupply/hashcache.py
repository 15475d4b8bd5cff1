"""A stat-keyed cache of file digests, so an unchanged environment is not re-read every run.

The cache speeds up honest re-runs, and a fresh CI machine has no cache and always hashes every
file. Someone who can write both site-packages and the cache can hide an edit (rewrite the file,
then the cached digest), which is why ``--mlsupply-rehash`` exists and ignores the cache.

The file is compact JSON with one top-level ``version`` key; entries are grouped by algorithm
and directory, each a list ``[name, dev, ino, size, mtime_ns, ctime_ns, hex]`` (35,500 entries
make 5.7 MB and load in about 60 ms). Anything unreadable is ignored with a note, never an
exception: a cache can only make a run faster, not stop it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytest_mlsupply.atomic import write_text_atomic
from pytest_mlsupply.hashing import Digest, DigestError, FileState

CACHE_VERSION = 1
NOTE_UNREADABLE = (
    "the hash cache {path} could not be read ({reason}); ignored, every file is hashed"
)
NOTE_CORRUPT = "the hash cache {path} is corrupt ({reason}); ignored, every file is hashed"
NOTE_OTHER_VERSION = (
    "the hash cache {path} has format version {found!r:.40}, this version reads {expected}; "
    "ignored, every file is hashed"
)

_ENTRY_LENGTH = 7  # name, dev, ino, size, mtime_ns, ctime_ns, hex


class HashCache:
    """Absolute path -> (FileState, algorithm, digest); keeps only what this run used.

    Entries neither looked up nor put before ``save`` are dropped then, so the cache follows the
    environment instead of growing with every file it ever saw.
    """

    def __init__(self) -> None:
        # path -> [dev, ino, size, mtime_ns, ctime_ns, algorithm, hex], kept raw as loaded:
        # building objects for 35,000 entries would cost more than the lookups they serve.
        self._entries: dict[str, list[Any]] = {}
        self._used: set[str] = set()
        self._changed = False
        self._file: Path | None = None  # where the entries were read from or last written to

    @classmethod
    def load(cls, path: str | Path) -> tuple[HashCache, str | None]:
        """The cache stored at *path*; an empty one plus a note when it cannot be used.

        A missing file is a first run, not a problem: no note.
        """
        cache = cls()
        cache._file = Path(path)
        try:
            raw = cache._file.read_bytes()
        except FileNotFoundError:
            return cache, None
        except OSError as exc:
            cache._changed = True
            return cache, NOTE_UNREADABLE.format(path=path, reason=exc.strerror or exc)
        cache._changed = True  # until the content proves usable: a bad file gets replaced
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            return cache, NOTE_CORRUPT.format(path=path, reason=f"not JSON: {exc}")
        if not isinstance(data, dict) or "version" not in data:
            return cache, NOTE_CORRUPT.format(path=path, reason="no format version")
        if data["version"] != CACHE_VERSION:
            found = data["version"]
            return cache, NOTE_OTHER_VERSION.format(path=path, found=found, expected=CACHE_VERSION)
        try:
            cache._entries = _unpack(data["entries"])
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            return cache, NOTE_CORRUPT.format(path=path, reason=f"bad entries: {exc!r}")
        cache._changed = False
        return cache, None

    def get(self, path: str, state: FileState, algorithm: str) -> Digest | None:
        """The digest cached for *path* if it was taken in exactly this *state* with *algorithm*."""
        entry = self._entries.get(path)
        if entry is None:
            return None
        self._used.add(path)
        key = [state.dev, state.ino, state.size, state.mtime_ns, state.ctime_ns, algorithm]
        if entry[:6] != key:
            return None
        try:
            return Digest(algorithm, bytes.fromhex(entry[6]))
        except (TypeError, ValueError, DigestError):  # a hand-edited entry: hash the file again
            return None

    def put(self, path: str, state: FileState, digest: Digest) -> None:
        entry: list[Any] = [state.dev, state.ino, state.size, state.mtime_ns, state.ctime_ns]
        entry += [digest.algorithm, digest.hex]
        self._used.add(path)
        if self._entries.get(path) != entry:
            self._entries[path] = entry
            self._changed = True

    def keep(self, paths: Iterable[str]) -> None:
        """Keep these entries on save although they were not looked up this run.

        The verifier skips files of distributions whose verdict is cached; their
        digests must survive for the run in which one of those files changes.
        """
        self._used.update(os.path.abspath(p) for p in paths if os.path.abspath(p) in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def save(self, path: str | Path) -> bool:
        """Write the entries used this run atomically unless *path* holds them already; say if.

        Raises ``OSError`` when the file cannot be written; the caller decides if that matters.
        """
        unchanged = not self._changed and len(self._used) == len(self._entries)
        if unchanged and self._file == Path(path):
            return False
        self._entries = {key: self._entries[key] for key in sorted(self._used)}
        groups: dict[str, dict[str, list[list[Any]]]] = {}
        for key, entry in self._entries.items():
            head, sep, name = key.rpartition(os.sep)
            directory = groups.setdefault(entry[5], {}).setdefault(head + sep, [])
            directory.append([name, *entry[:5], entry[6]])
        document = {"version": CACHE_VERSION, "entries": groups}
        write_text_atomic(path, json.dumps(document, separators=(",", ":")))
        self._changed = False
        self._file = Path(path)
        return True


def _unpack(groups: Any) -> dict[str, list[Any]]:
    """``{algorithm: {directory: [[name, ...], ...]}}`` -> ``{path: [..., algorithm, hex]}``.

    Raises ``TypeError``/``ValueError``/``AttributeError`` on a wrong shape; field types are
    checked lazily by ``get``, where a wrong type simply fails to match.
    """
    entries: dict[str, list[Any]] = {}
    for algorithm, directories in groups.items():
        for directory, rows in directories.items():
            for row in rows:
                if not isinstance(row, list) or len(row) != _ENTRY_LENGTH:
                    raise ValueError(f"entry {row!r:.80} is not a list of {_ENTRY_LENGTH}")
                entries[directory + row[0]] = [*row[1:6], algorithm, row[6]]
    return entries


VERDICTS_VERSION = 1


class VerdictCache:
    """Distribution -> fingerprint of the state in which all its files last verified clean.

    A fingerprint covers the distribution's RECORD (its content digest) and the
    FileState of every file it lists, so a warm run only stats files: when the
    fingerprint is unchanged, nothing in the distribution was touched since it
    was last hashed and found to match. Same threat model as the hash cache.
    """

    def __init__(self) -> None:
        self._verdicts: dict[str, str] = {}
        self._used: set[str] = set()
        self._changed = False

    @classmethod
    def load(cls, path: str | Path) -> tuple[VerdictCache, str | None]:
        cache = cls()
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            return cache, None
        except (OSError, UnicodeDecodeError) as exc:
            return cache, NOTE_UNREADABLE.format(path=path, reason=exc)
        try:
            document = json.loads(text)
            if document.get("version") != VERDICTS_VERSION:
                raise ValueError(f"format version {document.get('version')!r:.40}")
            verdicts = document["verdicts"]
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in verdicts.items()):
                raise ValueError("verdicts must map strings to strings")
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            return cache, NOTE_CORRUPT.format(path=path, reason=exc)
        cache._verdicts = dict(verdicts)
        return cache, None

    def matches(self, key: str, fingerprint: str) -> bool:
        self._used.add(key)
        return self._verdicts.get(key) == fingerprint

    def record(self, key: str, fingerprint: str) -> None:
        self._used.add(key)
        if self._verdicts.get(key) != fingerprint:
            self._verdicts[key] = fingerprint
            self._changed = True

    def forget(self, key: str) -> None:
        if self._verdicts.pop(key, None) is not None:
            self._changed = True

    def save(self, path: str | Path) -> bool:
        """Write atomically when anything changed; entries not used this run are dropped."""
        if not self._changed and set(self._verdicts) <= self._used:
            return False
        kept = {key: self._verdicts[key] for key in sorted(self._used) if key in self._verdicts}
        write_text_atomic(path, json.dumps({"version": VERDICTS_VERSION, "verdicts": kept}))
        self._verdicts = kept
        self._changed = False
        return True


RECORDS_VERSION = 2  # 2: top-level names come from rows with a hash only


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def record_stat_key(metadata_path: str) -> tuple[int, ...] | None:
    """The stat of a distribution's RECORD, or None when it cannot be stat-ed."""
    try:
        st = os.stat(os.path.join(metadata_path, "RECORD"))
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class RecordCache:
    """Distribution -> what its RECORD says, keyed on RECORD's stat, so warm runs skip parsing.

    Two parts per distribution: the snapshot's (content digest, row counts) and
    the verification's (the paths to check, the top-level names it owns, what
    it counts as not verifiable). A RECORD rewritten in any way changes its
    stat (ctime at least), and then it is parsed again. Same threat model as
    the hash cache; ``--mlsupply-rehash`` ignores it.
    """

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Any]] = {}
        self._used: set[str] = set()
        self._changed = False

    @classmethod
    def load(cls, path: str | Path) -> RecordCache:
        """The cache at *path*; an empty one when it is missing or unusable (it is only a cache)."""
        cache = cls()
        try:
            document = json.loads(Path(path).read_bytes())
            if document.get("version") != RECORDS_VERSION:
                raise ValueError("another format version")
            entries = document["entries"]
            if not isinstance(entries, dict):
                raise ValueError("entries must be a table")
        except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError):
            cache._changed = True
            return cache
        cache._entries = entries
        return cache

    def _entry(self, metadata_path: str, stat_key: tuple[int, ...] | None) -> dict[str, Any] | None:
        entry = self._entries.get(metadata_path)
        if stat_key is None or not isinstance(entry, dict) or entry.get("stat") != list(stat_key):
            return None
        self._used.add(metadata_path)
        return entry

    def summary(
        self, metadata_path: str, stat_key: tuple[int, ...] | None
    ) -> tuple[str, int, int] | None:
        """(content digest, rows, rows without a hash) when RECORD is unchanged."""
        entry = self._entry(metadata_path, stat_key)
        if entry is None:
            return None
        content: Any = entry.get("content")
        rows: Any = entry.get("rows")
        unhashed: Any = entry.get("unhashed")
        # Types checked, not converted: int() of 1e999 (valid JSON) raises OverflowError.
        if isinstance(content, str) and _count(rows) and _count(unhashed):
            return content, rows, unhashed
        return None

    def put_summary(
        self, metadata_path: str, stat_key: tuple[int, ...], content: str, rows: int, unhashed: int
    ) -> None:
        self._used.add(metadata_path)
        entry = self._entries.get(metadata_path)
        same = isinstance(entry, dict) and entry.get("stat") == list(stat_key)
        if same and isinstance(entry, dict) and entry.get("content") == content:
            return
        self._entries[metadata_path] = {
            "stat": list(stat_key),
            "content": content,
            "rows": rows,
            "unhashed": unhashed,
        }
        self._changed = True

    def ownership(
        self, metadata_path: str, stat_key: tuple[int, ...] | None
    ) -> tuple[list[str], list[str], dict[str, int]] | None:
        """(checked paths relative to the location, top-level names, not-verifiable counts)."""
        entry = self._entry(metadata_path, stat_key)
        if entry is None or "paths" not in entry:
            return None
        paths, tops, skipped = entry["paths"], entry.get("tops"), entry.get("skipped")
        if not (isinstance(paths, list) and isinstance(tops, list) and isinstance(skipped, dict)):
            return None
        if not all(isinstance(p, str) for p in (*paths, *tops, *skipped)):
            return None  # a hand-edited or corrupted entry: read RECORD again
        if not all(_count(n) for n in skipped.values()):
            return None
        return paths, tops, skipped

    def put_ownership(
        self,
        metadata_path: str,
        stat_key: tuple[int, ...],
        paths: list[str],
        tops: list[str],
        skipped: dict[str, int],
    ) -> None:
        entry = self._entries.get(metadata_path)
        if not isinstance(entry, dict) or entry.get("stat") != list(stat_key):
            return  # only alongside a summary of the same RECORD
        self._used.add(metadata_path)
        if entry.get("paths") == paths and entry.get("tops") == tops:
            return
        entry.update(paths=paths, tops=tops, skipped=skipped)
        self._changed = True

    def save(self, path: str | Path) -> bool:
        """Write atomically when anything changed; entries not used this run are dropped."""
        if not self._changed and set(self._entries) <= self._used:
            return False
        kept = {key: self._entries[key] for key in sorted(self._used) if key in self._entries}
        write_text_atomic(
            path, json.dumps({"version": RECORDS_VERSION, "entries": kept}, separators=(",", ":"))
        )
        self._entries = kept
        self._changed = False
        return True
