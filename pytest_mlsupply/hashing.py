"""One digest type for every hash we read or write.

Digests travel as self-describing ``alg:hex`` strings (the form pooch and our
lockfile use); wheel RECORD files spell them ``alg=urlsafe-base64-nopad``
(the binary distribution format spec). Both parse to the same ``Digest`` and
compare by bytes, so a hex and a base64 spelling of one hash are equal.

``hash_many`` hashes thousands of files (every installed file against its
RECORD, dataset shards) in parallel and constant memory, skipping files whose
stat state a ``HashCache`` has seen; a file it cannot read is an outcome with
an error, never an exception.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, TypeAlias

from pytest_mlsupply.errors import MlsupplyError

if TYPE_CHECKING:
    from concurrent.futures import Future
    from multiprocessing.context import BaseContext

    from pytest_mlsupply.hashcache import HashCache

DEFAULT_ALGORITHM = "sha256"
_CHUNK_SIZE = 1 << 20


class DigestError(MlsupplyError):
    """A hash string that is not a valid ``alg:hex`` or RECORD ``alg=b64`` digest."""


def _digest_size(algorithm: str) -> int | None:
    """Byte length of *algorithm*'s digest, or None for variable-length ones (shake)."""
    try:
        hasher = hashlib.new(algorithm)
    except (ValueError, TypeError) as exc:
        raise DigestError(f"unknown hash algorithm {algorithm!r}") from exc
    size = hasher.digest_size
    return size or None


@dataclass(frozen=True, order=True)
class Digest:
    """A hash value together with the algorithm that produced it."""

    algorithm: str
    value: bytes

    def __post_init__(self) -> None:
        expected = _digest_size(self.algorithm)
        if expected is not None and len(self.value) != expected:
            raise DigestError(
                f"{self.algorithm} digest must be {expected} bytes, got {len(self.value)}"
            )

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``alg:hex`` (for example ``sha256:9f86d0...``)."""
        algorithm, sep, hexvalue = text.strip().partition(":")
        if not sep or not algorithm or not hexvalue:
            raise DigestError(f"expected 'algorithm:hex', got {text!r}")
        try:
            value = bytes.fromhex(hexvalue)
        except ValueError as exc:
            raise DigestError(f"{text!r} is not hexadecimal after {algorithm!r}:") from exc
        return cls(algorithm.lower(), value)

    @classmethod
    def from_record(cls, text: str) -> Digest:
        """Parse RECORD's ``alg=urlsafe-base64`` form (padding optional)."""
        algorithm, sep, encoded = text.strip().partition("=")
        if not sep or not algorithm or not encoded:
            raise DigestError(f"expected 'algorithm=base64' as in RECORD files, got {text!r}")
        padded = encoded.rstrip("=") + "=" * (-len(encoded.rstrip("=")) % 4)
        try:
            value = base64.urlsafe_b64decode(padded.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise DigestError(f"{text!r} is not urlsafe base64 after {algorithm!r}=") from exc
        return cls(algorithm.lower(), value)

    @property
    def hex(self) -> str:
        return self.value.hex()

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.value.hex()}"

    def to_record(self) -> str:
        """The RECORD spelling: ``alg=urlsafe-base64-nopad``."""
        encoded = base64.urlsafe_b64encode(self.value).decode("ascii").rstrip("=")
        return f"{self.algorithm}={encoded}"


def hash_bytes(data: bytes, algorithm: str = DEFAULT_ALGORITHM) -> Digest:
    return Digest(algorithm, hashlib.new(algorithm, data).digest())


def hash_file(path: str | Path, algorithm: str = DEFAULT_ALGORITHM) -> Digest:
    """Hash a file in fixed-size chunks, so memory stays constant whatever its size."""
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK_SIZE):
            hasher.update(chunk)
    return Digest(algorithm, hasher.digest())


# --- Hashing many files: the engine behind RECORD and dataset verification ---------------------
#
# Measured on a 2-core machine over an ML environment (torch CPU and friends: 35,500 files,
# 1.39 GB, 99.8 % of the files under 1 MiB but half of the bytes in 71 files above it):
# hashlib releases the GIL while it hashes a large buffer, so big files scale on threads; the
# per-file Python work of small files (open, stat, hasher, finalize: about 20 us a file) holds the
# GIL, so a thread pool over small files is slower than one thread. Hence big files go to threads
# and small files to forked processes, or stay in the calling thread when the work is too small
# to pay for a process pool (about 7 ms to fork two workers and get a first answer).

FILE_MISSING = "missing"
FILE_NOT_REGULAR = "not a regular file"
FILE_PERMISSION_DENIED = "permission denied"

_SMALL_FILE_LIMIT = _CHUNK_SIZE
_PROCESS_MIN_FILES = 2_000
_PROCESS_MIN_BYTES = 32 << 20
_BATCHES_PER_WORKER = 4
_FILE_OVERHEAD_BYTES = 16 << 10
_PROGRESS_INTERVAL = 0.1
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)

_Request: TypeAlias = tuple[str, str]  # (path, algorithm)
_Result: TypeAlias = tuple[str, "bytes | None", "str | None"]  # (path, digest, error)
# (size, algorithm, (cache key, state) when there is a cache)
_Pending: TypeAlias = tuple[int, str, "tuple[str, FileState] | None"]


@dataclass(frozen=True)
class FileState:
    """What a cached digest is keyed on.

    An edit that restores size and mtime still changes ctime, so it still misses the cache.
    """

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileState:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True)
class HashOutcome:
    """One requested file: its digest, or why it has none ("could not check" is a result)."""

    path: str
    digest: Digest | None
    size: int | None
    error: str | None
    from_cache: bool


@dataclass(frozen=True)
class HashRun:
    """Every requested path's outcome, plus what the run cost."""

    outcomes: dict[str, HashOutcome]
    hashed: int
    from_cache: int
    bytes_hashed: int
    seconds: float


def hash_many(
    requests: Iterable[tuple[str, str]],
    *,
    cache: HashCache | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    _small_file_limit: int = _SMALL_FILE_LIMIT,
    _process_min_files: int = _PROCESS_MIN_FILES,
    _process_min_bytes: int = _PROCESS_MIN_BYTES,
) -> HashRun:
    """Hash every ``(path, algorithm)`` request in constant memory; never raise for a file.

    Symlinks are followed (a dangling one is "missing"); a file whose stat state and algorithm
    match *cache* is not read. Files of at least ``_small_file_limit`` bytes are hashed on
    *workers* threads; smaller ones in *workers* forked processes when there are at least
    ``_process_min_files`` of them or ``_process_min_bytes`` in total, else in this thread.
    *progress* gets ``(done, total)`` at most every 0.1 s and ``(total, total)`` last.
    Raises ``DigestError`` for an unknown or variable-length algorithm and ``ValueError`` for a
    path requested with two algorithms (outcomes hold one digest per path).
    """
    started = time.perf_counter()
    wanted = _checked_requests(requests)
    tracker = _Progress(progress, len(wanted))
    outcomes: dict[str, HashOutcome] = {}
    todo: dict[str, _Pending] = {}
    for path, algorithm in wanted.items():
        answer = _stat_phase(path, algorithm, cache)
        if isinstance(answer, HashOutcome):
            outcomes[path] = answer
            tracker.advance()
        else:
            todo[path] = answer

    def finish(result: _Result) -> None:
        path, value, error = result
        size, algorithm, cache_key = todo[path]
        digest = None if value is None else Digest(algorithm, value)
        if digest is not None and cache is not None and cache_key is not None:
            cache.put(*cache_key, digest)
        outcomes[path] = HashOutcome(path, digest, size, error, False)
        tracker.advance()

    by_size = sorted(todo, key=lambda path: todo[path][0], reverse=True)
    small = [(path, todo[path][1]) for path in by_size if todo[path][0] < _small_file_limit]
    big = [(path, todo[path][1]) for path in by_size if todo[path][0] >= _small_file_limit]
    small_bytes = sum(todo[path][0] for path, _ in small)
    count = max(1, workers if workers is not None else os.cpu_count() or 1)
    use_processes = count > 1 and (
        len(small) >= _process_min_files or small_bytes >= _process_min_bytes
    )
    _hash_all(small, big, count, use_processes, finish)
    tracker.finish()

    ordered = {path: outcomes[path] for path in wanted}
    fresh = [o for o in ordered.values() if o.digest is not None and not o.from_cache]
    return HashRun(
        outcomes=ordered,
        hashed=len(fresh),
        from_cache=sum(o.from_cache for o in ordered.values()),
        bytes_hashed=sum(o.size or 0 for o in fresh),
        seconds=time.perf_counter() - started,
    )


def _checked_requests(requests: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Requests as path -> algorithm, algorithms checked up front so a typo fails once."""
    wanted: dict[str, str] = {}
    for path, algorithm in requests:
        normalized = algorithm.lower()
        if wanted.setdefault(path, normalized) != normalized:
            raise ValueError(
                f"{path} is requested with both {wanted[path]} and {normalized}; "
                "hash it in two calls"
            )
    for algorithm in set(wanted.values()):
        if _digest_size(algorithm) is None:
            raise DigestError(f"{algorithm} has no fixed digest size; pick a fixed-size algorithm")
    return wanted


def _stat_phase(path: str, algorithm: str, cache: HashCache | None) -> HashOutcome | _Pending:
    """The outcome when stat decides it (an error, not a file, a cache hit), else what to hash.

    The state is taken before the file is read, so an edit made while it is read changes ctime
    and misses the cache next time.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        return HashOutcome(path, None, None, _describe(exc), False)
    if not S_ISREG(st.st_mode):
        return HashOutcome(path, None, st.st_size, FILE_NOT_REGULAR, False)
    if cache is None:
        return st.st_size, algorithm, None
    key, state = os.path.abspath(path), FileState.of(st)
    digest = cache.get(key, state, algorithm)
    if digest is None:
        return st.st_size, algorithm, (key, state)
    return HashOutcome(path, digest, st.st_size, None, True)


def _hash_all(
    small: list[_Request],
    big: list[_Request],
    count: int,
    use_processes: bool,
    finish: Callable[[_Result], None],
) -> None:
    """Run the requests (each list largest first) on processes, threads and this thread."""
    # Imported here: concurrent.futures and multiprocessing cost ~20 ms, which every user of
    # Digest (the lock gate) would otherwise pay.
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    view = memoryview(bytearray(_CHUNK_SIZE))
    if count == 1:
        for path, algorithm in small + big:
            finish(_hash_one(path, algorithm, view))
        return
    batches: dict[Future[list[_Result]], list[_Request]] = {}
    with contextlib.ExitStack() as stack:
        inline = small
        context = _fork_context() if use_processes else None
        if context is not None:
            parts = _balanced(small, count * _BATCHES_PER_WORKER)
            processes = ProcessPoolExecutor(min(count, len(parts)), mp_context=context)
            stack.callback(processes.shutdown, wait=True, cancel_futures=True)
            # Submitting forks every worker, so it happens before our threads exist.
            with contextlib.suppress(OSError):  # fork refused (process limit): hash them here
                batches = {processes.submit(_hash_batch, part): part for part in parts}
                inline = []
        if big:
            threads = ThreadPoolExecutor(min(count, len(big)), thread_name_prefix="mlsupply-hash")
            stack.callback(threads.shutdown, wait=True, cancel_futures=True)
            buffers = _ThreadBuffer()
            for request in big:
                batches[threads.submit(_hash_in_thread, buffers, *request)] = [request]
        for path, algorithm in inline:
            finish(_hash_one(path, algorithm, view))
        for future in as_completed(batches):
            try:
                results = future.result()
            except BrokenProcessPool:  # a worker was killed (out of memory?): redo its batch here
                results = [_hash_one(path, algorithm, view) for path, algorithm in batches[future]]
            for result in results:
                finish(result)


def _fork_context() -> BaseContext | None:
    """The "fork" context where forking is cheap and safe, else None (hash in this thread).

    Linux only: macOS has fork but its system libraries are not fork-safe, and spawn would
    re-import the caller's main module. Never from a multi-threaded process: a lock another
    thread holds at fork time (OpenSSL's, say) would deadlock the child, and Python 3.12+ warns
    about it. Never from a daemonic worker, which may not have children.
    """
    import multiprocessing

    if not sys.platform.startswith("linux") or multiprocessing.current_process().daemon:
        return None
    try:
        threads = len(os.listdir("/proc/self/task"))  # OS threads too (BLAS pools, ...)
    except OSError:
        threads = threading.active_count()
    return multiprocessing.get_context("fork") if threads == 1 else None


def _balanced(requests: list[_Request], count: int) -> list[list[_Request]]:
    """Deal largest-first requests round-robin: batches differ by at most one small file."""
    return [part for part in (requests[start::count] for start in range(count)) if part]


class _Progress:
    """Calls back at most every 0.1 s and always at the end, so a display costs nothing per file."""

    def __init__(self, callback: Callable[[int, int], None] | None, total: int) -> None:
        self._callback = callback
        self._total = total
        self._done = 0
        self._due = 0.0
        self._reported = -1

    def advance(self) -> None:
        self._done += 1
        if self._callback is not None and (now := time.monotonic()) >= self._due:
            self._due = now + _PROGRESS_INTERVAL
            self._report(self._done)

    def finish(self) -> None:
        if self._callback is not None and self._reported != self._total:
            self._report(self._total)

    def _report(self, done: int) -> None:
        assert self._callback is not None
        self._reported = done
        self._callback(done, self._total)


class _ThreadBuffer(threading.local):
    """One chunk buffer per thread: ``threading.local`` runs ``__init__`` once per thread."""

    def __init__(self) -> None:
        self.view = memoryview(bytearray(_CHUNK_SIZE))


def _hash_in_thread(buffers: _ThreadBuffer, path: str, algorithm: str) -> list[_Result]:
    return [_hash_one(path, algorithm, buffers.view)]


def _hash_batch(batch: list[_Request]) -> list[_Result]:
    """Worker-process entry: one buffer for the whole batch, digests travel back as bytes."""
    view = memoryview(bytearray(_CHUNK_SIZE))
    return [_hash_one(path, algorithm, view) for path, algorithm in batch]


def _hash_one(path: str, algorithm: str, view: memoryview) -> _Result:
    try:
        return path, _stream_digest(path, algorithm, view), None
    except OSError as exc:
        return path, None, _describe(exc)


def _stream_digest(path: str, algorithm: str, view: memoryview) -> bytes:
    """Read through the caller's buffer: no allocation per chunk, constant memory per file."""
    hasher = hashlib.new(algorithm)
    with open(path, "rb", buffering=0, opener=_open_nonblocking) as stream:
        while count := stream.readinto(view):
            hasher.update(view[:count])
    return hasher.digest()


def _open_nonblocking(path: str, flags: int) -> int:
    """Open without blocking: a file swapped for a FIFO after its stat must not hang the run."""
    return os.open(path, flags | _O_NONBLOCK)


def _describe(exc: OSError) -> str:
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return FILE_MISSING
    if isinstance(exc, PermissionError):
        return FILE_PERMISSION_DENIED
    if isinstance(exc, IsADirectoryError):
        return FILE_NOT_REGULAR
    return exc.strerror or str(exc)
