"""Bytecode caches of verified sources: the code that really ran must be the source's.

RECORD lists ``__pycache__/*.pyc`` files without a hash (installers write them),
and the import system runs a cached ``.pyc`` instead of its source whenever the
header matches (a timestamp pyc: the source's mtime and size; an unchecked-hash
pyc: always). So a planted pyc with a matching header runs any code beside a
source that verified clean. Two defences (README, "Threat model"):

- after the verdict the gated process stops reading ``__pycache__``: the plugin
  points ``sys.pycache_prefix`` at a folder the gate owns (``pycache_prefix``);
- modules imported before the verdict (pytest, pluggy, plugins) are checked
  here: for each one whose source lies in a site directory, the pyc the import
  system would have accepted must hold exactly what the source compiles to.

The header check follows ``SourceLoader.get_code`` in CPython's
``Lib/importlib/_bootstrap_external.py`` (3.10 to 3.13): magic number, flags,
then the timestamp (``int(mtime) & 0xFFFFFFFF`` and ``size & 0xFFFFFFFF``) or,
for hash-based pycs, the source hash when ``--check-hash-based-pycs`` asks for it.
A pyc the import system would have rejected was not run (it compiled the source).
"""

from __future__ import annotations

import _imp
import contextlib
import json
import marshal
import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.util import MAGIC_NUMBER
from pathlib import Path
from types import CodeType
from typing import Any

from pytest_mlsupply.atomic import write_text_atomic
from pytest_mlsupply.findings import Finding, Kind

#: The gate-owned bytecode cache, below the plugin's cache folder.
PYCACHE_FOLDER = "pycache"
#: Passes of the check below, keyed on the stat of the pyc and of its source.
CACHE_FILE = "bytecode.json"
CACHE_VERSION = 1
#: The stat of every file in the gate's pycache folder when the last run ended.
MANIFEST_FILE = "pycache-files.json"

MESSAGE_MISMATCH = (
    "the compiled bytecode of {module} ({cached}) does not match its verified source "
    "{source}: the module ran code RECORD does not vouch for"
)
MESSAGE_UNCHECKABLE = (
    "the compiled bytecode of {module} ({cached}) could not be compared with its verified "
    "source {source} ({reason}): the module may have run code RECORD does not vouch for"
)
HINT_MISMATCH = (
    "delete {cached} (Python compiles the source again) and find out what wrote it; do not "
    "trust this run or anything it had access to"
)

_FLAGS_HASH_BASED = 0b01
_FLAGS_CHECK_SOURCE = 0b10
_HEADER = 16
#: Code attributes that ``code.__eq__`` leaves out on some of 3.10-3.13 but that decide
#: how the code runs (a too-small stack size corrupts memory). ``co_filename`` is left
#: out on purpose: a pyc keeps the path it was compiled at, and the import system
#: rewrites it on load.
_EXTRA_ATTRIBUTES = (
    "co_stacksize", "co_qualname", "co_nlocals", "co_flags", "co_argcount",
    "co_posonlyargcount", "co_kwonlyargcount", "co_varnames", "co_freevars", "co_cellvars",
)  # fmt: skip


def pycache_prefix(cache_dir: Path | None, *, clear: bool = False) -> str:
    """The ``sys.pycache_prefix`` for the gated process: a folder only the gate's runs write.

    Without a cache folder, ``os.devnull``: no file can exist below it, so every
    module compiles from its source and nothing is written. The folder is
    emptied with *clear* (``--mlsupply-rehash``, ``--cache-clear``) and whenever
    it holds a file that the last run's ``record_pycache`` did not see, by stat
    (device, inode, size, mtime, ctime): a ``.pytest_cache`` committed to the
    repository or restored from a shared CI cache cannot bring bytecode in.
    """
    if cache_dir is None:
        return os.devnull
    folder = cache_dir / PYCACHE_FOLDER
    files = None if folder.is_symlink() else _pycache_files(folder)
    if clear or files is None or files != _load_manifest(cache_dir / MANIFEST_FILE):
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists() or folder.is_symlink():  # could not be emptied: trust nothing in it
            return os.devnull
    return str(folder)


def record_pycache(cache_dir: Path) -> None:
    """Remember the files of the gate's pycache folder, at the end of a run that used it."""
    files = _pycache_files(cache_dir / PYCACHE_FOLDER) or {}
    with contextlib.suppress(OSError):  # the next run then starts from an empty folder
        write_text_atomic(cache_dir / MANIFEST_FILE, json.dumps(files, sort_keys=True))


def _pycache_files(folder: Path) -> dict[str, list[int]] | None:
    """Relative path -> stat key of every file below *folder*; None for anything but files
    and folders (a symbolic link would let the import system read elsewhere)."""
    found: dict[str, list[int]] = {}
    stack = [str(folder)]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except FileNotFoundError:
            continue
        except OSError:
            return None
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                return None
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            elif entry.is_file(follow_symlinks=False):
                relative = os.path.relpath(entry.path, folder)
                found[relative] = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
            else:
                return None
    return found


def _load_manifest(path: Path) -> dict[str, list[int]] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}  # no manifest: only an empty folder is trusted
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class BytecodeCheck:
    """What the check found and what it cost, for the report's stats."""

    findings: tuple[Finding, ...]
    checked: int
    compiled: int


def _real(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def _absolute(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


def _within(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def _stat_key(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _source_and_cached(module: object) -> tuple[str, str] | None:
    """The module's source file and its bytecode cache path, when it has both as strings."""
    spec = getattr(module, "__spec__", None)
    if spec is None:
        return None
    origin = getattr(spec, "origin", None)
    cached = getattr(spec, "cached", None)
    if not (isinstance(origin, str) and isinstance(cached, str)):
        return None
    if not getattr(spec, "has_location", False) or not origin.endswith(".py"):
        return None
    return origin, cached


def accepted_pyc(data: bytes, source: str) -> bool:
    """Whether the import system would run *data* as the bytecode of *source* (no compile).

    Raises OSError when the source is needed and cannot be read.
    """
    if len(data) < _HEADER or data[:4] != MAGIC_NUMBER:
        return False
    flags = int.from_bytes(data[4:8], "little")
    if flags & ~(_FLAGS_HASH_BASED | _FLAGS_CHECK_SOURCE):
        return False  # the import system raises ImportError and compiles the source
    if flags & _FLAGS_HASH_BASED:
        mode = getattr(_imp, "check_hash_based_pycs", "default")
        if mode == "never" or not (flags & _FLAGS_CHECK_SOURCE or mode == "always"):
            return True  # run without looking at the source
        with open(source, "rb") as stream:
            source_hash = _imp.source_hash(_imp_raw_magic(), stream.read())
        return data[8:16] == source_hash
    st = os.stat(source)
    mtime = int(st.st_mtime) & 0xFFFFFFFF
    size = st.st_size & 0xFFFFFFFF
    header = (int.from_bytes(data[8:12], "little"), int.from_bytes(data[12:16], "little"))
    return header == (mtime, size)


def _imp_raw_magic() -> int:
    """``_RAW_MAGIC_NUMBER`` of ``importlib._bootstrap_external``: the magic as an integer."""
    return int.from_bytes(MAGIC_NUMBER, "little")


def same_code(loaded: object, compiled: CodeType) -> bool:
    """Code-object equality, plus the attributes ``==`` skips, for every nested code object."""
    if not isinstance(loaded, CodeType) or loaded != compiled:
        return False
    for name in _EXTRA_ATTRIBUTES:
        if getattr(loaded, name, None) != getattr(compiled, name, None):
            return False
    nested = zip(loaded.co_consts, compiled.co_consts, strict=True)
    return all(same_code(a, b) for a, b in nested if isinstance(b, CodeType))


def compare(data: bytes, source: str) -> bool:
    """Whether pyc *data* holds what *source* compiles to, as the import system compiles it.

    Raises OSError (source unreadable) or ValueError, EOFError, TypeError (bytecode
    marshal cannot read; the import system would have failed on it too).
    """
    with open(source, "rb") as stream:
        source_bytes = stream.read()
    compiled = compile(source_bytes, source, "exec", dont_inherit=True, optimize=sys.flags.optimize)
    return same_code(marshal.loads(data[_HEADER:]), compiled)


def _load_passes(path: Path | None) -> dict[str, Any]:
    """Earlier passes; anything unreadable counts as no cache (it can only save time)."""
    if path is None:
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(document, dict) or document.get("version") != CACHE_VERSION:
        return {}
    if document.get("magic") != MAGIC_NUMBER.hex():
        return {}
    passes = document.get("passes")
    return passes if isinstance(passes, dict) else {}


def check_loaded_bytecode(
    modules: Mapping[str, object],
    site_dirs: Iterable[str],
    *,
    cache_dir: Path | None = None,
    rehash: bool = False,
    owner: Mapping[str, str] | None = None,
    save: bool = True,
) -> BytecodeCheck:
    """Modules whose source lies in *site_dirs* and that ran bytecode their source does not say.

    For every module in *modules* with a source below one of *site_dirs* and a
    bytecode cache file on disk (wherever ``__spec__.cached`` points), the pyc
    the import system would have accepted must equal the compiled source. A pyc
    it would have rejected passes (the source was compiled instead). What cannot
    be read or compared is a finding too. Passes are cached in *cache_dir*
    (keyed on both files' stat) unless not *save*; *rehash* ignores the cache.
    *owner* maps a top-level import name to the distribution that provides it.
    """
    # Both spellings: a source reached through a symbolic link out of a site directory is
    # still one the gate verified there.
    folders = sorted({f(d) for d in site_dirs if d for f in (_real, _absolute)})
    cache_path = cache_dir / CACHE_FILE if cache_dir is not None else None
    previous = {} if rehash else _load_passes(cache_path)
    passes: dict[str, Any] = {}
    findings: list[Finding] = []
    checked = compiled = 0
    for name, module in sorted(modules.items()):
        paths = _source_and_cached(module)
        if paths is None:
            continue
        source, cached = paths
        spellings = (_real(source), _absolute(source))
        if not any(_within(path, folder) for path in spellings for folder in folders):
            continue
        pyc_key = _stat_key(cached)
        if pyc_key is None:
            continue  # no bytecode on disk: the source was compiled
        checked += 1
        key = [pyc_key, _stat_key(source)]
        if previous.get(cached) == key:
            passes[cached] = key
            continue
        reason = None
        try:
            with open(cached, "rb") as stream:
                data = stream.read()
            ok = True
            if accepted_pyc(data, source):
                compiled += 1
                ok = compare(data, source)
        except OSError as exc:
            ok, reason = False, f"cannot read: {exc.strerror or exc}"
        except (ValueError, EOFError, TypeError, SyntaxError, RecursionError) as exc:
            ok, reason = False, f"unreadable bytecode or source: {type(exc).__name__}: {exc}"
        if ok:
            passes[cached] = key
            continue
        findings.append(_finding(name, source, cached, reason, owner))
    if save and cache_path is not None and passes != previous:
        document = {"version": CACHE_VERSION, "magic": MAGIC_NUMBER.hex(), "passes": passes}
        with contextlib.suppress(OSError):  # a cache can only make a run faster
            write_text_atomic(cache_path, json.dumps(document, sort_keys=True))
    return BytecodeCheck(tuple(findings), checked, compiled)


def _finding(
    module: str, source: str, cached: str, reason: str | None, owner: Mapping[str, str] | None
) -> Finding:
    subject = (owner or {}).get(module.partition(".")[0], module)
    if reason is None:
        message = MESSAGE_MISMATCH.format(module=module, cached=cached, source=source)
    else:
        message = MESSAGE_UNCHECKABLE.format(
            module=module, cached=cached, source=source, reason=reason
        )
    return Finding.of(
        Kind.BYTECODE_MISMATCH,
        subject,
        message,
        hint=HINT_MISMATCH.format(cached=cached),
        location=cached,
    )
