#!/usr/bin/env python3
"""How close does ``hash_many`` come to the machine's hashing limit on an ML environment?

Hashes every file of the benchmark environment (``site-packages`` and ``bin/`` of the venv
``bench_lock_check.py`` builds: torch CPU, numpy, scipy, pandas, ...) and prints, side by side
and measured in this one run:

* the limit: ``openssl speed -evp sha256`` (16 KiB blocks) per core, times the core count;
* ``hash_many`` cold (no cache; files already in the page cache after a warm-up read), with
  worker processes, without them (the fallback for multi-threaded callers and non-Linux), and
  on one worker; a naive thread pool and a plain single-threaded hashlib loop for comparison;
* ``sha256sum`` and ``b2sum`` with one process per core (``xargs -0 -P``), and ``hash_many``
  with blake2b beside ``b2sum``;
* a warm run with a full cache against the cost of one ``os.stat`` per file, the cache's load
  and save times and size, and what starting the worker processes costs;
* peak memory of a cold run (in a subprocess) above a Python that only imports the module.

Every timed variant runs once per round, interleaved; the best and the median are printed.
This is a report, not a test: it exits 0 whatever the numbers are (2 without the environment).

    python benchmarks/bench_hashing.py [--rounds 3] [--env DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
sys.path.insert(0, str(REPO_ROOT))  # measure the working tree

from pytest_mlsupply.hashcache import HashCache  # noqa: E402
from pytest_mlsupply.hashing import hash_file, hash_many  # noqa: E402

DEFAULT_ENV = HERE / ".work" / "mlenv"
TARGET_SHARE = 0.50  # cold hash_many should reach half of the openssl limit
CHUNK = 1 << 20
CPUS = os.cpu_count() or 1

MEMORY_SCRIPT = """
import json, resource, sys
from pytest_mlsupply.hashing import hash_many
paths = json.load(sys.stdin)
if sys.argv[1] == "hash":
    run = hash_many([(path, "sha256") for path in paths])
    assert run.hashed == len(paths), run.hashed
status = open("/proc/self/status").read()
hwm_kib = int(status.split("VmHWM:")[1].split()[0])
children_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"parent": hwm_kib, "workers": children_kib}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--env", type=Path, default=DEFAULT_ENV, help="a virtual environment")
    args = parser.parse_args(argv)
    files = environment_files(args.env)
    if not files:
        print(f"no environment at {args.env}: run benchmarks/bench_lock_check.py to build it")
        return 2
    sizes = [os.stat(path).st_size for path in files]
    total = sum(sizes)
    big = [size for size in sizes if size >= CHUNK]
    print(f"python {sys.version.split()[0]}, {CPUS} cores, hashlib on {ssl_version()}")
    print(
        f"{len(files):,} files, {total / 1e9:.2f} GB; {len(big)} files of 1 MiB or more "
        f"hold {sum(big) / total:.0%} of the bytes"
    )

    per_core = openssl_speed()
    limit = per_core * CPUS
    print(f"openssl speed -evp sha256, 16 KiB blocks: {per_core / 1e9:.2f} GB/s per core")
    print(f"machine limit: {per_core / 1e9:.2f} x {CPUS} cores = {limit / 1e9:.2f} GB/s\n")

    read_all(files)  # the page cache holds every file from here on
    requests = [(path, "sha256") for path in files]
    never = 1 << 60
    timed: dict[str, Callable[[], object]] = {
        "hash_many, cold": lambda: hash_many(requests),
        "hash_many, no processes": lambda: hash_many(
            requests, _process_min_files=never, _process_min_bytes=never
        ),
        "hash_many, workers=1": lambda: hash_many(requests, workers=1),
        "plain hashlib, 1 thread": lambda: [hashlib_digest(path) for path in files],
        f"plain thread pool, {CPUS} threads": lambda: thread_pool(files),
        f"sha256sum, xargs -P {CPUS}": lambda: xargs("sha256sum", files),
        f"b2sum, xargs -P {CPUS}": lambda: xargs("b2sum", files),
        "hash_many blake2b, cold": lambda: hash_many([(path, "blake2b") for path in files]),
    }
    times = interleaved(timed, args.rounds)
    print(f"cold hashing, best (median) of {args.rounds} rounds:")
    for name, samples in times.items():
        best = min(samples)
        print(
            f"  {name:32} {best:6.3f} s ({statistics.median(samples):6.3f})  "
            f"{total / best / 1e9:5.2f} GB/s  {total / best / limit:4.0%} of limit"
        )
    cold = min(times["hash_many, cold"])
    share = total / cold / limit
    verdict = "meets" if share >= TARGET_SHARE else "misses"
    print(
        f"  -> hash_many reaches {share:.0%} of the limit ({verdict} the {TARGET_SHARE:.0%} target)"
    )
    for name in list(times)[1:6]:
        print(f"  -> hash_many is {min(times[name]) / cold:.2f}x as fast as {name}")
    print()

    check_against_sha256sum(files)
    warm_cache(requests, files)
    pool_start_cost()
    peak_memory(files)
    return 0


def environment_files(env: Path) -> list[str]:
    """Every regular file in the environment's site-packages and bin/ (symlinks followed)."""
    roots = [*sorted(env.glob("lib/python3*/site-packages")), env / "bin"]
    files = []
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                if os.path.isfile(path):
                    files.append(path)
    return files


def ssl_version() -> str:
    import ssl

    return ssl.OPENSSL_VERSION


def openssl_speed() -> float:
    """Bytes per second of one core for sha256 on 16 KiB blocks, as openssl measures it."""
    command = ["openssl", "speed", "-evp", "sha256", "-seconds", "2"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    header = next(line for line in output.splitlines() if line.startswith("type"))
    row = next(line for line in output.splitlines() if line.lower().startswith("sha256"))
    column = re.findall(r"(\d+) bytes", header).index("16384")
    value = row.split()[1:][column]  # like "1614446.59k": thousands of bytes per second
    return float(value.rstrip("k")) * 1000


def read_all(files: list[str]) -> None:
    for path in files:
        with open(path, "rb", buffering=0) as stream:
            while stream.read(CHUNK):
                pass


def hashlib_digest(path: str) -> bytes:
    hasher = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            hasher.update(chunk)
    return hasher.digest()


def thread_pool(files: list[str]) -> list[bytes]:
    with ThreadPoolExecutor(CPUS) as pool:
        return list(pool.map(hashlib_digest, files, chunksize=64))


def xargs(tool: str, files: list[str], capture: bool = False) -> str:
    """Run *tool* on one part of the files per core: parts balanced by size, fed on stdin."""
    by_size = sorted(files, key=os.path.getsize, reverse=True)
    parts = [by_size[start::CPUS] for start in range(CPUS)]  # dealt: similar bytes per part
    per_call = max(len(part) for part in parts)
    listing = b"\0".join(os.fsencode(path) for part in parts for path in part)
    command = ["xargs", "-0", "-P", str(CPUS), "-n", str(per_call), tool]
    output = subprocess.PIPE if capture else subprocess.DEVNULL
    done = subprocess.run(command, input=listing, stdout=output, check=True)
    return done.stdout.decode() if capture else ""


def interleaved(timed: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(rounds):
        for name, function in timed.items():
            started = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - started)
    return times


def check_against_sha256sum(files: list[str]) -> None:
    """The digests agree with sha256sum's on every file, and with hash_file on a sample."""
    expected = {}
    for line in xargs("sha256sum", files, capture=True).splitlines():
        digest, _, path = line.partition("  ")
        expected[path] = digest
    run = hash_many([(path, "sha256") for path in files])
    agree = sum(
        1
        for path, outcome in run.outcomes.items()
        if outcome.digest is not None and expected.get(path) == outcome.digest.hex
    )
    sample = files[:: max(1, len(files) // 500)]
    same = sum(run.outcomes[path].digest == hash_file(path) for path in sample)
    print(f"correctness: sha256sum agrees on {agree:,} of {len(files):,} files; ", end="")
    print(f"hash_file on {same} of {len(sample)} sampled\n")


def warm_cache(requests: list[tuple[str, str]], files: list[str]) -> None:
    cache = HashCache()
    hash_many(requests, cache=cache)
    with tempfile.TemporaryDirectory() as folder:
        cache_file = Path(folder, "hashes.json")
        save = best_of(3, lambda: cache.save(Path(folder, f"{time.perf_counter()}.json")))
        cache.save(cache_file)
        size = cache_file.stat().st_size
        load = best_of(3, lambda: HashCache.load(cache_file))
        loaded, _ = HashCache.load(cache_file)
        warm_runs = []
        for _ in range(3):
            started = time.perf_counter()
            run = hash_many(requests, cache=loaded)
            warm_runs.append(time.perf_counter() - started)
            assert run.from_cache == len(files), run.from_cache
        stat = best_of(3, lambda: [os.stat(path) for path in files])
    warm = min(warm_runs)
    print(f"cache of {len(files):,} entries: {size / 1e6:.1f} MB, ", end="")
    print(f"load {load * 1000:.0f} ms, save {save * 1000:.0f} ms")
    print(f"warm hash_many, full cache: {warm * 1000:.0f} ms; ", end="")
    print(f"os.stat on every file: {stat * 1000:.0f} ms")
    print(f"  -> warm run = {warm / stat:.1f}x the stat pass; with the load: ", end="")
    print(f"{(load + warm) * 1000:.0f} ms (nothing changed, so nothing is saved)\n")


def best_of(rounds: int, function: Callable[[], object]) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return min(samples)


def pool_start_cost() -> None:
    """What forking the workers costs, which decides when hash_many uses them."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    def start() -> None:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(CPUS, mp_context=context) as pool:
            list(pool.map(abs, range(CPUS)))

    cost = best_of(5, start)
    print(f"starting {CPUS} forked workers and getting an answer: {cost * 1000:.1f} ms\n")


def peak_memory(files: list[str]) -> None:
    """Peak RSS of a cold run in a fresh interpreter, above one that only imports and lists."""
    listing = json.dumps(files)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    def measure(mode: str) -> dict[str, int]:
        command = [sys.executable, "-c", MEMORY_SCRIPT, mode]
        done = subprocess.run(command, input=listing, capture_output=True, text=True, env=env)
        done.check_returncode()
        return json.loads(done.stdout)

    base, cold = measure("baseline"), measure("hash")
    largest = max(os.path.getsize(path) for path in files)
    print(f"peak memory of a cold run (largest file {largest / 1e6:.0f} MB):")
    print(
        f"  baseline python importing the module and the file list: {base['parent'] / 1024:.0f} MB"
    )
    print(f"  hash_many process: {(cold['parent'] - base['parent']) / 1024:+.0f} MB above it")
    workers = (cold["workers"] - base["parent"]) / 1024
    print(f"  each worker process: at most {workers:+.0f} MB above it")


if __name__ == "__main__":
    if shutil.which("openssl") is None or shutil.which("xargs") is None:
        print("needs openssl and xargs on PATH")
        sys.exit(2)
    sys.exit(main())
