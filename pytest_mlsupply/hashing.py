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
import functools
import hashlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, TypeAlias

from pytest_mlsupply.errors import MlsupplyError

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor
    from multiprocessing.context import BaseContext

    from pytest_mlsupply.hashcache import HashCache

DEFAULT_ALGORITHM = "sha256"
_CHUNK_SIZE = 1 << 20


class DigestError(MlsupplyError):
    """A hash string that is not a valid ``alg:hex`` or RECORD ``alg=b64`` digest."""


@functools.lru_cache(maxsize=64)
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
# 1.39 GB; 99.8 % of the files are under 1 MiB, but half of the bytes are in 71 files above;
# benchmarks/bench_hashing.py). hashlib releases the GIL while it hashes a buffer, so big files
# scale on threads (those 71 files: 1.25 GB/s on one thread, 1.7 on two). A small file costs
# ~20 us, a third of it Python work under the GIL (open, hasher, finalize), so a thread pool
# over all files (0.7 GB/s) is slower than one thread (1.05). Hence small files go to forked
# processes, unless too few to pay for them (forking two workers and getting an answer takes
# ~8 ms; 2,000 small files take ~40 ms on one thread), and files of 1 MiB or more to threads
# (a limit anywhere from 256 KiB to 4 MiB measured the same).

FILE_MISSING = "missing"
FILE_NOT_REGULAR = "not a regular file"
FILE_PERMISSION_DENIED = "permission denied"

_SMALL_FILE_LIMIT = _CHUNK_SIZE
_PROCESS_MIN_FILES = 2_000
_PROCESS_MIN_BYTES = 32 << 20
_FILE_COST = 16 << 10  # per-file work of a small file, counted in bytes hashed in that time
_BATCH_COST = 32 << 20  # ~25 ms of work a task: 2 MiB measured 8 % slower, 8 to 64 MiB alike
_PROGRESS_INTERVAL = 0.1
# Non-blocking: a file swapped for a FIFO after its stat must not hang the run.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)

_Request: TypeAlias = tuple[str, str]  # (path, algorithm)
_Result: TypeAlias = tuple[bytes | None, str | None]  # (digest, error)


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
    stats: Mapping[str, os.stat_result] | None = None,
    _small_file_limit: int = _SMALL_FILE_LIMIT,
    _process_min_files: int = _PROCESS_MIN_FILES,
    _process_min_bytes: int = _PROCESS_MIN_BYTES,
) -> HashRun:
    """Hash every ``(path, algorithm)`` request in constant memory; never raise for a file.

    Symlinks are followed (a dangling one is "missing"). A file whose stat state and algorithm
    match *cache* is not read; the others are, and are put in *cache*. Files of at least
    ``_small_file_limit`` bytes are hashed on *workers* threads (default ``os.cpu_count()``),
    smaller ones in *workers* forked processes once there are ``_process_min_files`` of them
    or ``_process_min_bytes`` (on Linux, from a single-threaded caller), else in this thread;
    ``workers=1`` does it all in this thread. *progress* gets ``(done, total)`` at most every
    0.1 s and ``(total, total)`` last. *stats* holds stat results the caller has just taken
    (a directory scan), used instead of stat-ing those paths again. Raises ``DigestError``
    for an unknown or variable-length algorithm, ``ValueError`` for a path requested with
    two (outcomes hold one digest a path).
    """
    started = time.perf_counter()
    wanted = _checked_requests(requests)
    tracker = _Progress(progress, len(wanted))
    outcomes: dict[str, HashOutcome] = {}
    pending: dict[str, tuple[int, str, tuple[str, FileState] | None]] = {}
    count = max(1, workers if workers is not None else os.cpu_count() or 1)
    limits = (_small_file_limit, _process_min_files, _process_min_bytes)
    known = stats or {}
    with _Dispatcher(count, *limits) as dispatcher:
        for path, algorithm in wanted.items():
            # Stat before reading: an edit made while the file is read changes its ctime, so a
            # digest cached under this state can never hide it.
            try:
                st = known.get(path) or os.stat(path)
            except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
                outcomes[path] = HashOutcome(path, None, None, _describe(exc), False)
                tracker.advance()
                continue
            if not S_ISREG(st.st_mode):
                outcomes[path] = HashOutcome(path, None, st.st_size, FILE_NOT_REGULAR, False)
                tracker.advance()
                continue
            cache_key = None
            if cache is not None:
                cache_key = os.path.abspath(path), FileState.of(st)
                digest = cache.get(*cache_key, algorithm)
                if digest is not None:
                    outcomes[path] = HashOutcome(path, digest, st.st_size, None, True)
                    tracker.advance()
                    continue
            pending[path] = (st.st_size, algorithm, cache_key)
            dispatcher.add(path, algorithm, st.st_size)
        for path, (value, error) in dispatcher.results():
            size, algorithm, cache_key = pending[path]
            digest = None if value is None else Digest(algorithm, value)
            if digest is not None and cache is not None and cache_key is not None:
                cache.put(*cache_key, digest)
            outcomes[path] = HashOutcome(path, digest, size, error, False)
            tracker.advance()
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


class _Dispatcher:
    """Routes files as they are stat-ed: small ones to forked workers, big ones to threads.

    Small files wait in this thread until they are enough to pay for a process pool; then the
    pool forks and batches stream to it while the caller goes on stat-ing. The threads start
    only in ``results``: after the fork (a lock one of them held at fork time would deadlock a
    child), and after the stat loop, whose every ``os.stat`` they made 5 times slower by
    contending for the GIL (5 % slower in all). Small files no pool took are hashed here.
    """

    def __init__(self, count: int, small_limit: int, min_files: int, min_bytes: int) -> None:
        self._count = count
        self._small_limit = small_limit if count > 1 else sys.maxsize
        self._min_files = min_files
        self._min_bytes = min_bytes
        self._fork = _fork_context() if count > 1 else None
        self._small: list[_Request] = []  # not sent to a worker (yet)
        self._small_files = self._small_bytes = self._batch_cost = 0
        self._big: list[tuple[int, str, str]] = []  # (size, path, algorithm)
        self._stack = contextlib.ExitStack()
        self._processes: ProcessPoolExecutor | None = None
        self._futures: dict[Future[list[_Result]], list[_Request]] = {}

    def __enter__(self) -> _Dispatcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def add(self, path: str, algorithm: str, size: int) -> None:
        if size >= self._small_limit:
            self._big.append((size, path, algorithm))
            return
        self._small.append((path, algorithm))
        self._small_files += 1
        self._small_bytes += size
        self._batch_cost += size + _FILE_COST
        if (
            self._processes is None
            and self._fork is not None
            and (self._small_files >= self._min_files or self._small_bytes >= self._min_bytes)
        ):
            self._start_processes(self._fork)
        elif self._processes is not None and self._batch_cost >= _BATCH_COST:
            self._submit_small()

    def results(self) -> Iterator[tuple[str, _Result]]:
        """Every added path with its result, in completion order; this thread hashes the rest."""
        from concurrent.futures import as_completed
        from concurrent.futures.process import BrokenProcessPool

        self._submit_small()
        self._start_big()
        view = memoryview(bytearray(_CHUNK_SIZE))
        for path, algorithm in self._small:
            yield path, _hash_one(path, algorithm, view)
        for future in as_completed(self._futures):
            batch = self._futures[future]
            try:
                results = future.result()
            except BrokenProcessPool:  # a worker was killed (out of memory?): redo its batch here
                results = [_hash_one(path, algorithm, view) for path, algorithm in batch]
            for (path, _), result in zip(batch, results, strict=True):
                yield path, result

    def _start_processes(self, context: BaseContext) -> None:
        from concurrent.futures import ProcessPoolExecutor

        try:
            self._processes = ProcessPoolExecutor(self._count, mp_context=context)
        except (OSError, NotImplementedError):  # no working semaphores (no /dev/shm, say)
            self._fork = None
            return
        self._stack.callback(self._processes.shutdown, wait=True, cancel_futures=True)
        self._submit_small()  # the first task forks every worker

    def _submit_small(self) -> None:
        from concurrent.futures.process import BrokenProcessPool

        if not self._small or self._processes is None:
            return
        try:
            future = self._processes.submit(_hash_batch, self._small)
        except (OSError, BrokenProcessPool):  # fork refused, or a worker died: hash them here
            self._processes = self._fork = None
            return
        self._futures[future] = self._small
        self._small, self._batch_cost = [], 0

    def _start_big(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        if not self._big:
            return
        threads = ThreadPoolExecutor(self._count, thread_name_prefix="mlsupply-hash")
        self._stack.callback(threads.shutdown, wait=True, cancel_futures=True)
        buffers = _ThreadBuffer()
        for _, path, algorithm in sorted(self._big, reverse=True):  # longest first
            self._futures[threads.submit(_hash_in_thread, buffers, path, algorithm)] = [
                (path, algorithm)
            ]


def _fork_context() -> BaseContext | None:
    """The "fork" context where forking is cheap and safe, else None (no worker processes).

    Linux only: macOS has fork but its system libraries are not fork-safe, and spawn would
    re-import the caller's main module. Never from a multi-threaded process (BLAS pools count):
    a lock another thread holds at fork time would deadlock the child, and Python 3.12+ warns
    about it. Never from a daemonic worker, which may not have children.
    """
    import multiprocessing

    if not sys.platform.startswith("linux") or multiprocessing.current_process().daemon:
        return None
    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:
        threads = threading.active_count()
    return multiprocessing.get_context("fork") if threads == 1 else None


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
            self._reported = self._done
            self._callback(self._done, self._total)

    def finish(self) -> None:
        if self._callback is not None and self._reported != self._total:
            self._callback(self._total, self._total)


class _ThreadBuffer(threading.local):
    """One chunk buffer per thread: ``threading.local`` runs ``__init__`` once per thread."""

    def __init__(self) -> None:
        self.view = memoryview(bytearray(_CHUNK_SIZE))


def _hash_in_thread(buffers: _ThreadBuffer, path: str, algorithm: str) -> list[_Result]:
    try:
        if os.stat(path).st_size >= _PIPELINE_MIN_SIZE:
            return [(_pipelined_digest(path, algorithm), None)]
    except OSError as exc:
        return [(None, _describe(exc))]
    return [_hash_one(path, algorithm, buffers.view)]


# A big file is one hash stream, so one core's hashing speed is its limit; copying each chunk
# out of the page cache costs a tenth more on top (measured: 2 GiB, sha256, 1.75 s read-then-
# hash against 1.58 s from a mapping). Reading the next chunk on a second thread while this one
# hashes hides that copy. (A memory map would too, but a file truncated while mapped kills the
# process with SIGBUS; reading cannot.) Memory: three chunks, whatever the file size.
_PIPELINE_MIN_SIZE = 64 << 20
_PIPELINE_CHUNK = 4 << 20
_PIPELINE_BUFFERS = 3


def _pipelined_digest(path: str, algorithm: str) -> bytes:
    import queue

    hasher = hashlib.new(algorithm)
    free: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
    full: queue.SimpleQueue[tuple[memoryview, int] | OSError] = queue.SimpleQueue()
    for _ in range(_PIPELINE_BUFFERS):
        free.put(memoryview(bytearray(_PIPELINE_CHUNK)))
    fd = os.open(path, _OPEN_FLAGS)

    def read_ahead() -> None:
        try:
            while (buffer := free.get()) is not None:
                count = _read_into(fd, buffer)
                full.put((buffer, count))
                if not count:
                    return
        except OSError as exc:
            full.put(exc)

    reader = threading.Thread(target=read_ahead, name="mlsupply-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            item = full.get()
            if isinstance(item, OSError):
                raise item
            buffer, count = item
            if not count:
                break
            hasher.update(buffer[:count])
            free.put(buffer)
    finally:
        free.put(None)  # a reader waiting for a buffer stops; one mid-read stops after it
        reader.join()
        os.close(fd)
    return hasher.digest()


def _hash_batch(batch: list[_Request]) -> list[_Result]:
    """Worker-process task: one buffer for the whole batch; only digests travel back."""
    view = memoryview(bytearray(_CHUNK_SIZE))
    return [_hash_one(path, algorithm, view) for path, algorithm in batch]


def _hash_one(path: str, algorithm: str, view: memoryview) -> _Result:
    try:
        return _stream_digest(path, algorithm, view), None
    except OSError as exc:
        return None, _describe(exc)


def _stream_digest(path: str, algorithm: str, view: memoryview) -> bytes:
    """Read through the caller's buffer: no allocation per chunk, constant memory per file.

    ``os.open``/``os.readv`` cost 2 us a file less than a file object, a tenth of the time of a
    typical small file.
    """
    hasher = hashlib.new(algorithm)
    fd = os.open(path, _OPEN_FLAGS)
    try:
        while count := _read_into(fd, view):
            hasher.update(view[:count])
    finally:
        os.close(fd)
    return hasher.digest()


if hasattr(os, "readv"):

    def _read_into(fd: int, view: memoryview) -> int:
        return os.readv(fd, (view,))

else:  # Windows

    def _read_into(fd: int, view: memoryview) -> int:
        data = os.read(fd, len(view))
        view[: len(data)] = data
        return len(data)


def _describe(exc: OSError | ValueError) -> str:
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return FILE_MISSING
    if isinstance(exc, PermissionError):
        return FILE_PERMISSION_DENIED
    if isinstance(exc, IsADirectoryError):
        return FILE_NOT_REGULAR
    return getattr(exc, "strerror", None) or str(exc)
