"""Verified data: what does verifying a dataset cost against this machine's limits?

Generates (once, then reuses) a 2 GiB file and 20,000 files of 100 KiB under
``benchmarks/.work/data`` and measures, in one run:

- the limit: OpenSSL's sha256 throughput on one core (``openssl speed -evp sha256``; hashlib
  on a buffer when openssl is absent), and that times the number of cores;
- ``sha256sum`` (one process per core for many files, via ``xargs -P``);
- our cold verification (no cache: every byte hashed) of the big file and of the small files;
- a warm re-run (verdict cache hit) against one ``os.stat`` of every file;
- 500 tests marked with both datasets in one pytest run: each dataset hashed once;
- peak RSS of that run against the same run of 500 unmarked tests (pytest's own).

All timings use files already in the page cache (the first pass reads them), so "cold" means
"no verdict or hash cache", not "not in memory". It prints ratios and the targets; it is a
report, not a test, and exits 0 whatever the figures are.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pytest_mlsupply.datasets import (  # noqa: E402
    DatasetEntry,
    format_manifest,
    load_manifest,
    record_entry,
    verify_dataset,
)

WORK = REPO / "benchmarks" / ".work" / "data"
BIG_SIZE = 2 << 30
SMALL_COUNT = 20_000
SMALL_SIZE = 100 << 10
SMALL_DIRS = 100
GiB = float(1 << 30)


def best(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def generate(work: Path) -> tuple[Path, Path]:
    """The big file and the small-file tree, made from a random block (reused if complete)."""
    big = work / "big" / "model.bin"
    small = work / "small"
    block = os.urandom(16 << 20)
    if not big.exists() or big.stat().st_size != BIG_SIZE:
        big.parent.mkdir(parents=True, exist_ok=True)
        with open(big, "wb") as stream:
            for offset in range(0, BIG_SIZE, len(block)):
                # Vary every block, so no two chunks of the file are equal.
                stream.write(offset.to_bytes(8, "little") + block[8:])
    marker = work / "small.complete"
    if not marker.exists():
        shutil.rmtree(small, ignore_errors=True)
        for index in range(SMALL_COUNT):
            folder = small / f"part-{index % SMALL_DIRS:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            start = (index * 4099) % (len(block) - SMALL_SIZE)
            data = index.to_bytes(8, "little") + block[start + 8 : start + SMALL_SIZE]
            (folder / f"shard-{index:05d}.bin").write_bytes(data)
        marker.write_text("ok")  # beside the dataset, not in it
    return big, small


def openssl_one_core() -> tuple[float, str]:
    """Bytes per second of sha256 on one core, and how it was measured."""
    if shutil.which("openssl"):
        out = subprocess.run(
            ["openssl", "speed", "-evp", "sha256", "-bytes", "16384", "-seconds", "2"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        match = re.search(r"^sha256\s+([\d.]+)k", out, re.MULTILINE)
        if match:
            return float(match.group(1)) * 1000, "openssl speed -evp sha256 -bytes 16384"
    buffer = os.urandom(16 << 20)
    seconds = best(lambda: hashlib.sha256(buffer).digest(), 5)
    return len(buffer) / seconds, "hashlib.sha256 over a 16 MiB buffer"


def openssl_all_cores(cores: int) -> float | None:
    """Bytes per second of ``openssl speed -multi CORES``: what the cores give right now."""
    if not shutil.which("openssl") or cores < 2:
        return None
    out = subprocess.run(
        ["openssl", "speed", "-multi", str(cores), "-evp", "sha256", "-bytes", "16384",
         "-seconds", "2"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout  # fmt: skip
    match = re.search(r"^sha256\s+([\d.]+)k", out, re.MULTILINE)
    return float(match.group(1)) * 1000 if match else None


def sha256sum_parallel(paths_file: Path, cores: int) -> float:
    def run() -> None:
        subprocess.run(
            f"xargs -0 -P {cores} -n 500 sha256sum < {paths_file} > /dev/null",
            shell=True,
            check=True,
        )

    return best(run, 2)


def stat_every_file(paths: list[str]) -> float:
    def run() -> None:
        for path in paths:
            os.stat(path)

    return best(run, 1)


def pytest_run(project: Path, extra: list[str]) -> tuple[float, int, str]:
    """Wall time, peak RSS (KiB) of pytest and its children, and its output."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stdout.write(r.stdout[-3000:])\n"
        "print('MAXRSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", wrapper, sys.executable, "-m", "pytest", "-p",
         "no:cacheprovider", "-p", "no:randomly", *extra],
        capture_output=True,
        text=True,
        check=False,
        cwd=project,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    rss = int(re.findall(r"MAXRSS (\d+)", result.stdout)[-1])
    return seconds, rss, result.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=WORK, help=f"data folder (default {WORK})")
    parser.add_argument("--clean", action="store_true", help="delete the data afterwards")
    parser.add_argument("--rounds", type=int, default=3, help="cold rounds, best kept (3)")
    args = parser.parse_args()
    work: Path = args.work
    cores = os.cpu_count() or 1
    print(f"generating or reusing data under {work} ...", flush=True)
    big, small = generate(work)
    small_paths = sorted(str(p) for p in small.rglob("*.bin"))
    assert len(small_paths) == SMALL_COUNT, len(small_paths)
    small_bytes = SMALL_COUNT * SMALL_SIZE

    one_core, how = openssl_one_core()
    all_cores = one_core * cores
    print(f"limit, one core ({how}): {one_core / GiB:.2f} GiB/s; x {cores} cores: "
          f"{all_cores / GiB:.2f} GiB/s")  # fmt: skip

    listing = work / "small.paths"
    listing.write_bytes(b"\0".join(os.fsencode(p) for p in small_paths))
    big_list = work / "big.paths"
    big_list.write_bytes(os.fsencode(big))
    sum_big = sha256sum_parallel(big_list, 1)
    sum_small = sha256sum_parallel(listing, cores)
    print(f"sha256sum: big file {sum_big:.2f} s; small files (xargs -P {cores}) {sum_small:.2f} s")

    manifest_path = work / "mlsupply-data.toml"
    datasets: dict[str, DatasetEntry] = {
        "big": record_entry("big", big, work),
        "small": record_entry("small", small, work),
    }
    manifest_path.write_text(format_manifest(datasets), encoding="utf-8")
    manifest = load_manifest(manifest_path)

    def cold(name: str) -> Callable[[], object]:
        def run() -> None:
            verdict = verify_dataset(manifest, name)
            assert verdict.ok, verdict.message()

        return run

    ours_big = best(cold("big"), args.rounds)
    ours_small = best(cold("small"), args.rounds)
    again, _ = openssl_one_core()  # the limit again: on a shared machine it moves
    if again > one_core:
        one_core, all_cores = again, again * cores
        print(f"limit, measured again after: {one_core / GiB:.2f} GiB/s (used below)")
    big_rate = BIG_SIZE / ours_big
    small_rate = small_bytes / ours_small
    print(f"ours, cold: big file {ours_big:.2f} s = {big_rate / GiB:.2f} GiB/s = "
          f"{big_rate / one_core:.0%} of one core (target 90%), "
          f"{sum_big / ours_big:.1f}x sha256sum")  # fmt: skip
    multi = openssl_all_cores(cores)
    if multi:
        share = small_rate / multi
        print(f"limit, all cores measured now (openssl speed -multi {cores}): "
              f"{multi / GiB:.2f} GiB/s; the small files reach {share:.0%} of it")  # fmt: skip
    print(f"ours, cold: small files {ours_small:.2f} s = {small_rate / GiB:.2f} GiB/s = "
          f"{small_rate / all_cores:.0%} of all cores (target 60%), "
          f"{sum_small / ours_small:.1f}x sha256sum -P {cores}")  # fmt: skip

    with tempfile.TemporaryDirectory() as cache:
        cache_dir = Path(cache)
        verify_dataset(manifest, "small", cache_dir=cache_dir)

        def warm() -> None:
            assert verify_dataset(manifest, "small", cache_dir=cache_dir).source == "cache"

        # Interleaved, best of 9 each: a busy machine slows both alike.
        ours_warm = stats = float("inf")
        for _ in range(9):
            ours_warm = min(ours_warm, best(warm, 1))
            stats = min(stats, stat_every_file(small_paths))
    print(f"warm re-run, 20,000 files: {ours_warm * 1000:.0f} ms; stat of every file "
          f"{stats * 1000:.0f} ms; ratio {ours_warm / stats:.2f} (target under 2)")  # fmt: skip

    # The suite lives beside the data, under one rootdir (work/pytest.ini), since manifest
    # paths may not leave the rootdir.
    suite = work / "suite"
    suite.mkdir(exist_ok=True)
    (work / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (suite / "test_marked.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.parametrize("n", range(500))
            @pytest.mark.verified_data("big", "small")
            def test_marked(verified_data, n):
                assert verified_data["small"].is_dir()
            """
        )
    )
    (suite / "test_plain.py").write_text(
        "import pytest\n\n@pytest.mark.parametrize('n', range(500))\ndef test_plain(n):\n    pass\n"
    )
    marked_s, marked_rss, marked_out = pytest_run(work, ["suite/test_marked.py"])
    plain_s, plain_rss, _ = pytest_run(work, ["suite/test_plain.py"])
    once = re.search(r"verified data: (.*)", marked_out)
    print(f"500 marked tests: {marked_s:.2f} s (500 unmarked: {plain_s:.2f} s); "
          f"{once.group(1) if once else 'no summary line: ' + marked_out[-400:]}")  # fmt: skip
    extra_mib = (marked_rss - plain_rss) / 1024
    print(f"peak RSS: marked run {marked_rss / 1024:.0f} MiB, unmarked {plain_rss / 1024:.0f} "
          f"MiB, difference {extra_mib:.0f} MiB (target under 100 MB)")  # fmt: skip
    if args.clean:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
