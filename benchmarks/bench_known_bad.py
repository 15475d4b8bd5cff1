#!/usr/bin/env python3
"""What do 50,000 OSV records cost a gated run, cold and with the compiled index cached?

Generates ossf/malicious-packages-shaped records (``MAL-YYYY-N.json`` in one
folder per package, with ``versions``, ``ranges``, origins and a few
``package_integrity`` digests; a tenth withdrawn), as a folder tree and as a
zip like OSV's ``all.zip``. Then, in this process, times with a synthetic
200-distribution environment (real ``*.dist-info`` folders read through
``importlib.metadata``, 10 files each):

* cold: parse every record, build the index, match (no cache);
* cached: the same with the compiled index in a cache folder, after one warm-up;
* the zip, cold and cached (one stat keys the cache, against one per folder);
* the built-in list alone (what every gated run pays by default).

Each is the best of ``--rounds`` runs; it prints the figures and their ratios
to the targets (cold under 2 s, cached under 100 ms added). A report, not a
test: it exits 0 whatever the numbers are.

    python benchmarks/bench_known_bad.py [--records 50000] [--rounds 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import json
import random
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pytest_mlsupply.knownbad import KnownBadConfig, run_known_bad  # noqa: E402
from pytest_mlsupply.snapshot import Snapshot, take_snapshot  # noqa: E402

COLD_TARGET = 2.0
CACHED_TARGET = 0.100
ENV_SIZE = 200


_SUFFIXES = ("ai", "torch", "llm", "data", "sdk")
#: Installed names that generated records name with ``introduced: "0"`` (number % 7 == 0,
#: not withdrawn): each must be found, whatever the version.
_MATCHED = (7, 21, 49, 63, 77)


def _name(number: int) -> str:
    return f"pkg{number}-{_SUFFIXES[number % len(_SUFFIXES)]}"


def _record(number: int, rng: random.Random) -> tuple[str, dict[str, object]]:
    name = _name(number % 41_000)
    versions = [f"{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}" for _ in range(2)]
    record: dict[str, object] = {
        "modified": f"2026-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T00:00:00Z",
        "published": "2025-01-01T00:00:00Z",
        "schema_version": "1.7.4",
        "id": f"MAL-2026-{number}",
        "summary": f"Malicious code in {name} (PyPI)",
        "details": "\n---\n_-= Per source details. Do not edit below this line.=-_\n",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": name},
                "versions": versions,
                **(
                    {"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}
                    if number % 7 == 0
                    else {}
                ),
                **(
                    {
                        "database_specific": {
                            "indicators": {
                                "package_integrity": [
                                    {
                                        "filename": f"{name}-{versions[0]}.tar.gz",
                                        "hashes": {
                                            "sha256": hashlib.sha256(name.encode()).hexdigest()
                                        },
                                    }
                                ]
                            }
                        }
                    }
                    if number % 5 == 0
                    else {}
                ),
            }
        ],
        "database_specific": {
            "malicious-packages-origins": [
                {"source": "ossf-package-analysis", "versions": versions, "sha256": "0" * 64}
            ]
        },
    }
    if number % 10 == 0:
        record["withdrawn"] = "2026-05-01T00:00:00Z"
    return name, record


def generate(root: Path, count: int) -> tuple[Path, Path]:
    """The records as a folder tree and a zip; a --keep folder made for *count* is reused
    (rewriting 50,000 files leaves write-back running under the timings that follow)."""
    rng = random.Random(20261125)
    tree = root / "osv" / "malicious" / "pypi"
    archive = root / "all.zip"
    complete = root / f"generated-{count}"
    if complete.exists() and archive.is_file():
        return root / "osv", archive
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for number in range(count):
            name, record = _record(number, rng)
            text = json.dumps(record, indent=2)
            folder = tree / name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"MAL-2026-{number}.json").write_text(text)
            out.writestr(f"MAL-2026-{number}.json", text)
    complete.touch()
    return root / "osv", archive


def environment(root: Path) -> Snapshot:
    """200 installed distributions, a few of them named by the generated records."""
    site = root / "site-packages"
    for number in range(ENV_SIZE):
        name = _name(_MATCHED[number // 40]) if number % 40 == 0 else f"clean-dist-{number}"
        module = name.replace("-", "_")
        dist_info = site / f"{module}-1.0.0.dist-info"
        dist_info.mkdir(parents=True, exist_ok=True)  # --keep DIR may be reused
        rows = []
        for index in range(10):
            data = f"X = {number * 10 + index}\n".encode()
            relative = f"{module}/m{index}.py"
            (site / module).mkdir(exist_ok=True)
            (site / relative).write_bytes(data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            rows.append((relative, f"sha256={digest.decode()}", str(len(data))))
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0.0\n"
        )
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        (dist_info / "RECORD").write_text(out.getvalue())
    return take_snapshot([str(site)], keep_rows=True)


def best(rounds: int, action: Callable[[], object]) -> tuple[float, object]:
    timings = []
    result: object = None
    for _ in range(rounds):
        started = time.perf_counter()
        result = action()
        timings.append(time.perf_counter() - started)
    return min(timings), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", metavar="DIR", help="generate into DIR and keep it")
    args = parser.parse_args(argv)

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-known-bad-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        tree, archive = generate(root, args.records)
        snapshot = environment(root)
        print(
            f"generated or reused {args.records:,} OSV records (folder tree and {archive.name}, "
            f"{archive.stat().st_size / 1e6:.1f} MB) and {ENV_SIZE} distributions "
            f"in {time.perf_counter() - started:.1f} s"
        )
        cache = root / "cache"
        cache.mkdir(exist_ok=True)

        def run(paths: tuple[Path, ...], cache_dir: Path | None) -> object:
            return run_known_bad(KnownBadConfig(paths), snapshot, cache_dir=cache_dir)

        cold, result = best(args.rounds, lambda: run((tree,), None))
        run((tree,), cache)  # warm the cache
        cached, cached_result = best(args.rounds, lambda: run((tree,), cache))
        zipped, _ = best(args.rounds, lambda: run((archive,), None))
        zip_cache = root / "zip-cache"
        zip_cache.mkdir(exist_ok=True)
        run((archive,), zip_cache)  # warm the cache
        zip_cached, _ = best(args.rounds, lambda: run((archive,), zip_cache))
        builtin, _ = best(args.rounds, lambda: run((), None))
        findings = len(getattr(result, "findings", []))
        assert findings == len(_MATCHED), f"expected {len(_MATCHED)} findings, got {findings}"
        assert findings == len(getattr(cached_result, "findings", [])), "cache changed the answer"
        print(f"{getattr(result, 'notes', [''])[0]}")
        print(f"findings: {findings} (the same from the cache)")
        print(
            f"cold, folder tree:      {cold * 1000:8.0f} ms   "
            f"{cold / COLD_TARGET:5.2f} x target 2 s"
        )
        print(
            f"cold, zip:              {zipped * 1000:8.0f} ms   "
            f"{zipped / COLD_TARGET:5.2f} x target 2 s"
        )
        print(
            f"cached index, folder:   {cached * 1000:8.0f} ms   "
            f"{cached / CACHED_TARGET:5.2f} x target 100 ms"
        )
        print(
            f"cached index, zip feed: {zip_cached * 1000:8.0f} ms   "
            f"{zip_cached / CACHED_TARGET:5.2f} x target 100 ms"
        )
        print(f"built-in list only:     {builtin * 1000:8.1f} ms")
        print(f"cold / cached:          {cold / cached:8.1f} x")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
