"""hash_many and HashCache on real files: same digests as hash_file, errors as outcomes."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_mlsupply import hashing
from pytest_mlsupply.hashcache import (
    CACHE_VERSION,
    NOTE_CORRUPT,
    NOTE_OTHER_VERSION,
    NOTE_UNREADABLE,
    HashCache,
)
from pytest_mlsupply.hashing import (
    FILE_MISSING,
    FILE_NOT_REGULAR,
    FILE_PERMISSION_DENIED,
    Digest,
    DigestError,
    FileState,
    HashOutcome,
    HashRun,
    hash_file,
    hash_many,
)

CHUNK = 1 << 20
ALGORITHMS = ["sha256", "sha512", "sha384", "md5", "blake2b"]
SIZES = [0, 1, 4095, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7, 5 * CHUNK + 3]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def write(path: Path, size: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def run(paths: list[Path], algorithm: str = "sha256", **kwargs: object) -> HashRun:
    return hash_many([(str(path), algorithm) for path in paths], **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_digests_equal_hash_file_for_every_size(
    tmp_path: Path, algorithm: str, workers: int
) -> None:
    paths = [write(tmp_path / f"f{size}.bin", size, seed=size) for size in SIZES]
    result = run(paths, algorithm, workers=workers)
    for path, size in zip(paths, SIZES, strict=True):
        outcome = result.outcomes[str(path)]
        assert outcome.digest == hash_file(path, algorithm), size
        assert (outcome.size, outcome.error, outcome.from_cache) == (size, None, False)
    assert (result.hashed, result.from_cache, result.bytes_hashed) == (len(SIZES), 0, sum(SIZES))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=5000), min_size=1, max_size=8))
def test_any_bytes_hash_like_hashlib(blobs: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index, blob in enumerate(blobs):
            path = Path(folder, f"{index}.bin")
            path.write_bytes(blob)
            paths.append(path)
        result = run(paths, workers=2, _small_file_limit=1024)
        for path, blob in zip(paths, blobs, strict=True):
            assert result.outcomes[str(path)].digest == Digest(
                "sha256", hashlib.sha256(blob).digest()
            )


PROCESS_SCRIPT = """
import concurrent.futures, json, os, sys
from pytest_mlsupply import hashing

pools = []

class CountingPool(concurrent.futures.ProcessPoolExecutor):
    def __init__(self, *args, **kwargs):
        pools.append(kwargs["mp_context"].get_start_method())
        super().__init__(*args, **kwargs)

concurrent.futures.ProcessPoolExecutor = CountingPool

def die(batch):
    open(sys.argv[2], "a").close()
    os._exit(3)

if sys.argv[1] == "crash":
    hashing._hash_batch = die  # every worker dies: the batches are hashed in the caller

paths = json.loads(sys.stdin.read())
run = hashing.hash_many(
    [(path, "sha256") for path in paths],
    workers=2,
    _small_file_limit=64 << 10,
    _process_min_files=10,
)
print(json.dumps({
    "pools": pools,
    "hashed": run.hashed,
    "digests": {path: str(outcome.digest) for path, outcome in run.outcomes.items()},
    "errors": {path: outcome.error for path, outcome in run.outcomes.items() if outcome.error},
}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker processes are Linux-only")
@pytest.mark.parametrize("mode", ["normal", "crash"])
def test_many_small_files_go_through_worker_processes(tmp_path: Path, mode: str) -> None:
    # A fresh interpreter: only a single-threaded process may fork (an xdist worker is not).
    sizes = [random.Random(n).randrange(0, 20_000) for n in range(600)] + [200_000, 70_000]
    paths = [
        write(tmp_path / f"d{n % 7}" / f"{n}.py", size, seed=n) for n, size in enumerate(sizes)
    ]
    paths.append(tmp_path / "missing.py")
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(PROCESS_SCRIPT))
    completed = subprocess.run(
        [sys.executable, str(script), mode, str(tmp_path / "died")],
        input=json.dumps([str(path) for path in paths]),
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(completed.stdout)
    assert report["pools"] == ["fork"]
    assert (tmp_path / "died").exists() == (mode == "crash")
    assert report["hashed"] == len(sizes)
    assert report["errors"] == {str(tmp_path / "missing.py"): FILE_MISSING}
    for path in paths[:-1]:
        assert report["digests"][str(path)] == str(hash_file(path))


def test_unreadable_paths_are_outcomes_not_exceptions(tmp_path: Path) -> None:
    good = write(tmp_path / "good.bin", 10)
    (tmp_path / "folder").mkdir()
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "link").symlink_to(good)
    os.mkfifo(tmp_path / "fifo")
    names = ["good.bin", "nothing", "folder", "dangling", "link", "fifo", "good.bin/below"]
    result = run([tmp_path / name for name in names], workers=2)
    errors = {name: result.outcomes[str(tmp_path / name)].error for name in names}
    assert errors == {
        "good.bin": None,
        "nothing": FILE_MISSING,
        "folder": FILE_NOT_REGULAR,
        "dangling": FILE_MISSING,
        "link": None,
        "fifo": FILE_NOT_REGULAR,
        "good.bin/below": FILE_MISSING,
    }
    assert result.outcomes[str(tmp_path / "link")].digest == hash_file(good)
    assert result.outcomes[str(tmp_path / "nothing")].size is None
    assert result.outcomes[str(tmp_path / "folder")].digest is None
    assert (result.hashed, result.bytes_hashed) == (2, 20)


@pytest.mark.skipif(IS_ROOT, reason="root reads every file; see the failing-read test below")
def test_permission_denied(tmp_path: Path) -> None:
    locked = write(tmp_path / "locked.bin", 10)
    locked.chmod(0)
    outcome = run([locked]).outcomes[str(locked)]
    assert (outcome.digest, outcome.size, outcome.error) == (None, 10, FILE_PERMISSION_DENIED)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (FileNotFoundError(2, "No such file or directory"), FILE_MISSING),
        (PermissionError(13, "Permission denied"), FILE_PERMISSION_DENIED),
        (OSError(5, "Input/output error"), "Input/output error"),
    ],
)
@pytest.mark.parametrize("workers", [1, 2])
def test_a_file_failing_between_stat_and_read_is_an_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError, message: str, workers: int
) -> None:
    """Vanished, locked or broken after its stat (works as root, unlike chmod)."""
    victim = write(tmp_path / "victim.bin", 2 * CHUNK)  # big: read on a thread when workers=2
    other = write(tmp_path / "other.bin", 10)

    real_open = os.open

    def failing_open(path: str, flags: int, *args: int, **kwargs: int) -> int:
        if path == str(victim):
            raise error
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", failing_open)
    cache = HashCache()
    result = run([victim, other], workers=workers, cache=cache)
    outcome = result.outcomes[str(victim)]
    assert (outcome.digest, outcome.size, outcome.error) == (None, 2 * CHUNK, message)
    assert result.outcomes[str(other)].digest == hash_file(other)
    assert result.hashed == 1
    assert len(cache) == 1  # no digest was cached for the failed file


def test_requests_are_deduplicated_and_keyed_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "a.bin", 5)
    monkeypatch.chdir(tmp_path)
    result = hash_many([("a.bin", "SHA256"), ("a.bin", "sha256"), ("nope", "md5")])
    assert list(result.outcomes) == ["a.bin", "nope"]
    assert result.outcomes["a.bin"].path == "a.bin"
    assert result.outcomes["a.bin"].digest == hash_file(tmp_path / "a.bin", "sha256")
    assert result.hashed == 1


@pytest.mark.parametrize(
    ("requests", "error", "message"),
    [
        ([("a", "sha256"), ("a", "md5")], ValueError, "requested with both sha256 and md5"),
        ([("a", "nosuchalg")], DigestError, "unknown hash algorithm 'nosuchalg'"),
        ([("a", "shake_128")], DigestError, "shake_128 has no fixed digest size"),
    ],
)
def test_bad_requests_raise_before_any_work(
    requests: list[tuple[str, str]], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        hash_many(requests)


def test_progress_is_throttled_monotone_and_ends_at_the_total(tmp_path: Path) -> None:
    paths = [write(tmp_path / f"{n}.bin", n * 100, seed=n) for n in range(200)]
    paths.append(write(tmp_path / "big.bin", 3 * CHUNK))
    cache = HashCache()
    run(paths[:50], cache=cache)
    calls: list[tuple[int, int]] = []
    run([*paths, tmp_path / "missing"], cache=cache, workers=2, progress=lambda *c: calls.append(c))
    total = len(paths) + 1
    assert calls[-1] == (total, total)
    assert all(call[1] == total for call in calls)
    done = [call[0] for call in calls]
    assert done == sorted(done)
    assert len(calls) <= 2 + len(paths) // 10  # throttled, not one call per file


# --- the cache ------------------------------------------------------------------------------


def rewrite_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    """Change content, restore mtime; repeat until ctime moved (its clock ticks coarsely)."""
    before = path.stat()
    assert len(data) == before.st_size
    while True:
        path.write_bytes(data)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        if path.stat().st_ctime_ns != before.st_ctime_ns:
            return


def test_cache_hits_then_misses_after_an_edit_that_restores_size_and_mtime(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "model.py", 1000)
    cache = HashCache()
    first = run([path], cache=cache)
    second = run([path], cache=cache)
    digest = first.outcomes[str(path)].digest
    assert second.outcomes[str(path)] == HashOutcome(str(path), digest, 1000, None, True)
    assert (second.hashed, second.from_cache, second.bytes_hashed) == (0, 1, 0)

    mtime = path.stat().st_mtime_ns
    rewrite_keeping_size_and_mtime(path, b"x" * 1000)
    assert path.stat().st_mtime_ns == mtime
    third = run([path], cache=cache)
    assert (third.hashed, third.from_cache) == (1, 0)
    assert third.outcomes[str(path)].digest == hash_file(path)
    assert third.outcomes[str(path)].digest != digest


def test_cache_is_keyed_on_the_algorithm_and_the_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "a.bin", 10)
    cache = HashCache()
    run([path], "sha256", cache=cache)
    assert run([path], "md5", cache=cache).from_cache == 0
    monkeypatch.chdir(tmp_path)
    assert hash_many([("a.bin", "md5")], cache=cache).from_cache == 1


def test_cache_round_trips_through_its_file(tmp_path: Path) -> None:
    paths = [write(tmp_path / "sub" / f"{n}.bin", n, seed=n) for n in range(20)]
    cache = HashCache()
    run(paths, cache=cache)
    cache_file = tmp_path / "hashes.json"
    assert cache.save(cache_file)
    document = json.loads(cache_file.read_text())
    assert document["version"] == CACHE_VERSION
    loaded, note = HashCache.load(cache_file)
    assert note is None
    again = run(paths, cache=loaded)
    assert again.from_cache == 20
    assert all(o.digest == hash_file(o.path) for o in again.outcomes.values())


def test_cache_keys_are_kept_exactly(tmp_path: Path) -> None:
    state = FileState(1, 2, 3, 4, 5)
    digest = hashing.hash_bytes(b"x")
    cache = HashCache()
    for key in ["/top", "relative", "/a/b/c.py", "/a/b/", "/ünï/cödé"]:
        cache.put(key, state, digest)
    cache.save(tmp_path / "c.json")
    loaded, _ = HashCache.load(tmp_path / "c.json")
    for key in ["/top", "relative", "/a/b/c.py", "/a/b/", "/ünï/cödé"]:
        assert loaded.get(key, state, "sha256") == digest
    assert loaded.get("/top", FileState(1, 2, 3, 4, 6), "sha256") is None


def test_save_drops_unused_entries_and_skips_when_nothing_changed(tmp_path: Path) -> None:
    keep, drop = write(tmp_path / "keep.bin", 1), write(tmp_path / "drop.bin", 2)
    cache_file = tmp_path / "hashes.json"
    cache = HashCache()
    run([keep, drop], cache=cache)
    assert cache.save(cache_file)
    assert not cache.save(cache_file)  # nothing changed since

    loaded, _ = HashCache.load(cache_file)
    run([keep], cache=loaded)
    written = cache_file.stat()
    assert loaded.save(cache_file)  # dropping an entry is a change
    assert cache_file.stat().st_ino != written.st_ino  # replaced, not rewritten in place
    reloaded, _ = HashCache.load(cache_file)
    assert len(reloaded) == 1
    assert run([keep], cache=reloaded).from_cache == 1
    unchanged = cache_file.stat()
    assert not reloaded.save(cache_file)
    assert cache_file.stat().st_mtime_ns == unchanged.st_mtime_ns
    assert reloaded.save(tmp_path / "elsewhere.json")  # another file does not hold them yet


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_file = tmp_path / "hashes.json"
    cache_file.write_text("old")
    cache = HashCache()
    run([write(tmp_path / "a.bin", 3)], cache=cache)

    def refuse(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        cache.save(cache_file)
    assert cache_file.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "hashes.json"]


@pytest.mark.parametrize(
    ("content", "note"),
    [
        (b"", NOTE_CORRUPT),
        (b"not json", NOTE_CORRUPT),
        (b"\xff\xfe\x00", NOTE_CORRUPT),
        (b"[" * 100_000, NOTE_CORRUPT),
        (b"[]", NOTE_CORRUPT),
        (b'{"entries": {}}', NOTE_CORRUPT),
        (b'{"version": 99, "entries": {}}', NOTE_OTHER_VERSION),
        (b'{"version": "1", "entries": {}}', NOTE_OTHER_VERSION),
        (b'{"version": 1}', NOTE_CORRUPT),
        (b'{"version": 1, "entries": []}', NOTE_CORRUPT),
        (b'{"version": 1, "entries": {"sha256": {"/": [["a", 1]]}}}', NOTE_CORRUPT),
        (b'{"version": 1, "entries": {"sha256": {"/": "abc"}}}', NOTE_CORRUPT),
    ],
)
def test_a_bad_cache_file_is_ignored_with_a_note(tmp_path: Path, content: bytes, note: str) -> None:
    cache_file = tmp_path / "hashes.json"
    cache_file.write_bytes(content)
    cache, problem = HashCache.load(cache_file)
    assert len(cache) == 0
    assert problem is not None
    assert problem.startswith(note.split("{path}")[0] + str(cache_file))
    assert "ignored, every file is hashed" in problem
    assert cache.save(cache_file)  # the bad file is replaced by a good one
    assert HashCache.load(cache_file)[1] is None


def test_missing_and_unreadable_cache_files(tmp_path: Path) -> None:
    assert len(HashCache.load(tmp_path / "none.json")[0]) == 0
    assert HashCache.load(tmp_path / "none.json")[1] is None
    _, problem = HashCache.load(tmp_path)  # a directory cannot be read as a file
    assert problem is not None
    assert problem.startswith(NOTE_UNREADABLE.split("{path}")[0] + str(tmp_path))


def test_hand_edited_entries_just_miss(tmp_path: Path) -> None:
    path = write(tmp_path / "a.bin", 3)
    cache = HashCache()
    run([path], cache=cache)
    cache_file = tmp_path / "hashes.json"
    cache.save(cache_file)
    document = json.loads(cache_file.read_text())
    for rows in document["entries"]["sha256"].values():
        rows[0][-1] = "zz"  # not hexadecimal
    cache_file.write_text(json.dumps(document))
    loaded, note = HashCache.load(cache_file)
    assert note is None
    result = run([path], cache=loaded)
    assert (result.from_cache, result.hashed) == (0, 1)


@settings(max_examples=200, deadline=None)
@given(st.binary() | st.text().map(str.encode))
def test_loading_any_bytes_never_raises(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        cache_file = Path(folder, "hashes.json")
        cache_file.write_bytes(content)
        _, note = HashCache.load(cache_file)
        assert note is None or note.startswith(f"the hash cache {cache_file} ")
