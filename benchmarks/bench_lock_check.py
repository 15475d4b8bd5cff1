#!/usr/bin/env python3
"""How much does the mlsupply gate cost in an ML-sized environment?

Builds (or reuses) a virtual environment with torch, the scientific stack and
pytest, installs this project into it, and times, as subprocesses of that
environment's interpreter:

* ``pytest``                           plugin installed, gate off
* ``pytest --mlsupply``                gate on (lock check and every installed file
                                       checked, through the warm hash cache)
* ``pytest --mlsupply --mlsupply-rehash``  the same, every file hashed again (cold)
* ``pytest -p no:mlsupply``            plugin not loaded at all
* ``python -m pytest_mlsupply check``  the gate outside pytest (warm hash cache)
* ``pip check`` and ``pip freeze``     what users compare it with

The variants are interleaved within every round (in a rotating order), so slow
drift of the machine hits all of them alike. Medians are the headline numbers.
Then the gate's pieces are timed inside the environment (imports after pytest's
own, then the best of five ``take_snapshot()``, ``load_lock()`` and
``check_environment()``), to show where the gate's time goes.

This is a report, not a test: it exits 0 whatever the numbers are, and non-zero
only when the environment cannot be set up or the gate does not pass on it.

    python benchmarks/bench_lock_check.py [--rounds 15] [--rebuild] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
WORK_DIR = HERE / ".work"  # ignored by git
VENV_DIR = WORK_DIR / "mlenv"

#: The budget the gate may add to a pytest run in an environment of this size.
#: A warm gated run, every installed file checked through the hash cache (issue targets).
TARGET_ADDED_MS = 250.0
#: The lock check alone: snapshot, lock and comparison.
LOCK_CHECK_TARGET_MS = 150.0

#: torch first, pinned: that release is the CPU build; the rest is a typical ML
#: project's environment. torch brings sympy, networkx, jinja2, filelock, fsspec.
TORCH_REQUIREMENT = "torch==2.13.0"
FRIENDS = [
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "pytest",
    "matplotlib",
    "pillow",
    "requests",
    "tqdm",
    "pyyaml",
    "jinja2",
    "sympy",
    "networkx",
    "rich",
    "click",
    "attrs",
    "h5py",
    "safetensors",
    "huggingface-hub",
]

#: Proves the environment is the one this script built; the project itself is
#: reinstalled on every run anyway.
SMOKE_IMPORTS = "import torch, numpy, pytest_mlsupply"

TRIVIAL_TEST = "def test_ok():\n    pass\n"

#: Runs inside the venv: counts what the gate has to read.
STATS_SCRIPT = r"""
import csv, io, json, os, sys
from importlib import metadata
cwd = os.path.abspath(os.getcwd())
path = [p for p in sys.path if p and os.path.abspath(p) != cwd]
dists = rows = record_bytes = file_bytes = 0
for dist in metadata.distributions(path=path):
    dists += 1
    text = dist.read_text("RECORD") or ""
    record_bytes += len(text.encode("utf-8"))
    rows += sum(1 for r in csv.reader(io.StringIO(text)) if r and r != [""])
    for f in dist.files or ():
        if f.size is not None:
            file_bytes += f.size
        else:
            try:
                file_bytes += os.stat(dist.locate_file(f)).st_size
            except OSError:
                pass
print(json.dumps({"distributions": dists, "record_rows": rows,
                  "record_text_bytes": record_bytes, "installed_bytes": file_bytes}))
"""

#: Runs inside the venv: the gate's pieces, timed in-process. pytest is imported
#: first, so the import figure is what the gate adds inside a pytest run; the
#: snapshot, lock load and check are the best of five runs each.
PIECES_SCRIPT = r"""
import json, sys, time
from pathlib import Path
import pytest, _pytest.main, _pytest.terminal
t0 = time.perf_counter()
from pytest_mlsupply.snapshot import take_snapshot
from pytest_mlsupply.checks import check_environment
from pytest_mlsupply.locks.mlsupply_lock import load_lock
t1 = time.perf_counter()

def best(function):
    times = []
    for _ in range(5):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return result, min(times) * 1e3

snapshot, snapshot_ms = best(take_snapshot)
lock, lock_ms = best(lambda: load_lock(Path(sys.argv[1])))
report, check_ms = best(lambda: check_environment(snapshot, lock, lock_path=sys.argv[1]))
import os, tempfile
from pytest_mlsupply.verify import verify_installed_files
rows = take_snapshot(keep_rows=True)
with tempfile.TemporaryDirectory() as cache:
    warm = lambda: verify_installed_files(rows, cache_dir=Path(cache))  # noqa: E731
    warm()  # fills both caches
    (_, stats, ownership), warm_ms = best(warm)
_, stat_ms = best(lambda: [os.stat(path) for path in ownership.claims])
print(json.dumps({
    "import_ms": (t1 - t0) * 1e3,
    "take_snapshot_ms": snapshot_ms,
    "load_lock_ms": lock_ms,
    "check_environment_ms": check_ms,
    "verify_warm_ms": warm_ms,
    "stat_every_file_ms": stat_ms,
    "files_verified": stats.files_verified,
    "distributions": len(snapshot.distributions),
    "files": sum(d.files for d in snapshot.distributions),
    "findings": len(report.findings),
}))
"""


class SetupError(RuntimeError):
    """The environment could not be built or the gate does not pass on it."""


@dataclass
class Variant:
    """One command to time; ``args`` follow the venv's python."""

    key: str
    label: str
    args: list[str]
    samples_ms: list[float] = field(default_factory=list)
    returncodes: set[int] = field(default_factory=set)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def minimum(self) -> float:
        return min(self.samples_ms)


def venv_python(venv: Path) -> Path:
    """The interpreter inside *venv*, on POSIX or Windows layouts."""
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


#: Set by ``--dont-write-bytecode``: keep PYTHONDONTWRITEBYTECODE from the caller's environment.
KEEP_DONT_WRITE_BYTECODE = False


def clean_env() -> dict[str, str]:
    """The caller's environment without what would change pytest's or pip's behaviour.

    PYTHONDONTWRITEBYTECODE goes too (unless ``--dont-write-bytecode``): pytest
    rewrites the modules of every plugin it loads and caches the result as
    bytecode; with that variable set (some container images set it) every run
    recompiles them, which is a cost of the machine, not of the plugin.
    """
    dropped = {"PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "VIRTUAL_ENV"}
    if not KEEP_DONT_WRITE_BYTECODE:
        dropped.add("PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    return env


def run(cmd: Sequence[str | Path], *, cwd: Path | None = None, what: str) -> str:
    """Run a setup step; its failure is a SetupError carrying the output."""
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if proc.returncode != 0:
        raise SetupError(f"{what} failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}")
    return proc.stdout


def env_usable(python: Path) -> bool:
    """Whether an existing venv already holds the ML stack (so it can be reused)."""
    if not python.exists():
        return False
    proc = subprocess.run(
        [str(python), "-c", SMOKE_IMPORTS],
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc.returncode == 0


def ensure_env(venv: Path, *, rebuild: bool) -> Path:
    """Build the ML venv unless a usable one exists; always reinstall this project."""
    python = venv_python(venv)
    if rebuild and venv.exists():
        print(f"removing {venv.relative_to(REPO_ROOT)} (--rebuild)")
        shutil.rmtree(venv)
    if env_usable(python):
        print(f"reusing {venv.relative_to(REPO_ROOT)}")
    else:
        if venv.exists():
            print(f"{venv.relative_to(REPO_ROOT)} is incomplete; recreating it")
            shutil.rmtree(venv)
        venv.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        print(f"creating {venv.relative_to(REPO_ROOT)} with {sys.executable} ...", flush=True)
        run([sys.executable, "-m", "venv", venv], what="creating the venv")
        pip: list[str | Path] = [python, "-m", "pip", "install", "-q", "--progress-bar", "off"]
        print("  upgrading pip ...", flush=True)
        run([*pip, "--upgrade", "pip"], what="upgrading pip")
        print(f"  installing {TORCH_REQUIREMENT} ...", flush=True)
        run([*pip, TORCH_REQUIREMENT], what=f"installing {TORCH_REQUIREMENT}")
        print(f"  installing {', '.join(FRIENDS)} ...", flush=True)
        # torch is named again so no friend can pull in a different torch build.
        run([*pip, TORCH_REQUIREMENT, *FRIENDS], what="installing the ML stack")
        print("  installing this project ...", flush=True)
        run([*pip, REPO_ROOT], what="installing this project")
        print(f"  built in {time.perf_counter() - started:.0f} s")
    print("reinstalling this project (--no-deps --force-reinstall) ...", flush=True)
    run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", REPO_ROOT],
        what="reinstalling this project",
    )
    if not env_usable(python):
        raise SetupError(f"`{SMOKE_IMPORTS}` fails in {venv}")
    return python


def run_json(python: Path, script: str, *args: str, cwd: Path, what: str) -> dict[str, Any]:
    """Run a ``-c`` script in the venv; it prints one JSON object on its last line."""
    out = run([python, "-c", script, *args], cwd=cwd, what=what)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def time_once(python: Path, variant: Variant, cwd: Path) -> tuple[float, int, str]:
    """Wall time of one subprocess run, in ms, with its exit code and output."""
    cmd = [str(python), *variant.args]
    env = clean_env()
    started = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    elapsed = (time.perf_counter() - started) * 1e3
    return elapsed, proc.returncode, proc.stdout


def make_variants(suite: Path, lock: Path) -> list[Variant]:
    """The commands to compare, all run from the suite's directory.

    pytest runs with its cache on (the default), so ``--mlsupply`` reuses the
    installed-file hash cache that the warm-up run filled; ``--mlsupply-rehash``
    is the cold case, every file hashed again (from the page cache).
    """
    pytest = ["-m", "pytest", "-q"]
    gate = [*pytest, "--mlsupply", "--mlsupply-lock", str(lock)]
    return [
        Variant("pytest", "pytest (plugin installed, off)", [*pytest, str(suite)]),
        Variant("pytest_mlsupply", "pytest --mlsupply (warm cache)", [*gate, str(suite)]),
        Variant(
            "pytest_mlsupply_cold",
            "pytest --mlsupply --mlsupply-rehash",
            [*gate, "--mlsupply-rehash", str(suite)],
        ),
        Variant(
            "pytest_noplugin", "pytest -p no:mlsupply", [*pytest, "-p", "no:mlsupply", str(suite)]
        ),
        Variant(
            "mlsupply_check",
            "python -m pytest_mlsupply check (warm)",
            [
                "-m",
                "pytest_mlsupply",
                "check",
                "--lock",
                str(lock),
                "--cache-dir",
                str(suite / ".mlsupply-cache"),
            ],
        ),
        Variant("pip_check", "python -m pip check", ["-m", "pip", "check"]),
        Variant("pip_freeze", "python -m pip freeze", ["-m", "pip", "freeze"]),
    ]


#: Variants that must succeed for the numbers to mean anything.
MUST_PASS = {
    "pytest",
    "pytest_mlsupply",
    "pytest_mlsupply_cold",
    "pytest_noplugin",
    "mlsupply_check",
}


def warm_up(python: Path, variants: list[Variant], cwd: Path) -> None:
    """One untimed run of each (fills bytecode and OS caches) that also checks exit codes."""
    for variant in variants:
        _, code, out = time_once(python, variant, cwd)
        if code != 0 and variant.key in MUST_PASS:
            raise SetupError(f"`{variant.label}` exited {code}:\n{out[-4000:]}")
        if code != 0:
            print(f"note: `{variant.label}` exits {code} here (timed anyway): {out.strip()[:300]}")


def measure(python: Path, variants: list[Variant], cwd: Path, rounds: int) -> None:
    """*rounds* rounds; each runs every variant once, starting one later each round."""
    n = len(variants)
    for r in range(rounds):
        order = variants[r % n :] + variants[: r % n]
        for variant in order:
            elapsed, code, _ = time_once(python, variant, cwd)
            variant.samples_ms.append(elapsed)
            variant.returncodes.add(code)
        if sys.stdout.isatty():
            print(f"  round {r + 1}/{rounds} done", end="\r", flush=True)
    if sys.stdout.isatty():
        print(" " * 40, end="\r")


def paired_median(a: Variant, b: Variant) -> float:
    """Median of per-round differences a - b (the same round shares the same drift)."""
    return statistics.median(x - y for x, y in zip(a.samples_ms, b.samples_ms, strict=True))


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")


def report(
    stats: dict[str, Any],
    variants: list[Variant],
    pieces: dict[str, Any],
    rounds: int,
) -> dict[str, Any]:
    """Print the table and the comparisons; return the same numbers for --json."""
    v = {variant.key: variant for variant in variants}
    print()
    print(
        f"environment: {stats['distributions']} distributions, "
        f"{stats['record_rows']:,} installed files (RECORD rows), "
        f"{human_bytes(stats['installed_bytes'])} installed, "
        f"{human_bytes(stats['record_text_bytes'])} of RECORD text"
    )
    print(f"python {platform.python_version()}, {rounds} rounds, interleaved; wall time per run")
    print()
    width = max(len(variant.label) for variant in variants)
    print(f"  {'command':<{width}}  {'median ms':>10}  {'min ms':>8}  {'max ms':>8}")
    print(f"  {'-' * width}  {'-' * 10}  {'-' * 8}  {'-' * 8}")
    for variant in variants:
        codes = ",".join(str(c) for c in sorted(variant.returncodes))
        note = "" if codes == "0" else f"  (exit {codes})"
        print(
            f"  {variant.label:<{width}}  {variant.median:>10.1f}  {variant.minimum:>8.1f}"
            f"  {max(variant.samples_ms):>8.1f}{note}"
        )

    added = v["pytest_mlsupply"].median - v["pytest"].median
    added_paired = paired_median(v["pytest_mlsupply"], v["pytest"])
    added_cold = v["pytest_mlsupply_cold"].median - v["pytest"].median
    lock_check_ms = (
        pieces["import_ms"]
        + pieces["take_snapshot_ms"]
        + pieces["load_lock_ms"]
        + pieces["check_environment_ms"]
    )
    off_ms = v["pytest"].median - v["pytest_noplugin"].median
    off_pct = off_ms / v["pytest_noplugin"].median * 100
    check_vs_pip_check = v["mlsupply_check"].median / v["pip_check"].median
    check_vs_pip_freeze = v["mlsupply_check"].median / v["pip_freeze"].median
    target_met = added <= TARGET_ADDED_MS

    print()
    print("comparisons (medians):")
    print(
        f"  --mlsupply (warm) adds to a pytest run: {added:+.1f} ms "
        f"(paired per-round median {added_paired:+.1f} ms); target <= {TARGET_ADDED_MS:.0f} ms "
        f"with every file checked: {'MET' if target_met else 'NOT MET'}"
    )
    print(
        f"  of which the lock check (imports, snapshot, lock, compare; in-process): "
        f"{lock_check_ms:.1f} ms; target <= {LOCK_CHECK_TARGET_MS:.0f} ms: "
        f"{'MET' if lock_check_ms <= LOCK_CHECK_TARGET_MS else 'NOT MET'}"
    )
    print(f"  --mlsupply --mlsupply-rehash (cold) adds: {added_cold:+.1f} ms")
    print(
        f"  check vs pip check:                  {check_vs_pip_check:.2f}x "
        f"({v['mlsupply_check'].median - v['pip_check'].median:+.1f} ms)"
    )
    print(
        f"  check vs pip freeze:                 {check_vs_pip_freeze:.2f}x "
        f"({v['mlsupply_check'].median - v['pip_freeze'].median:+.1f} ms)"
    )
    print(f"  plugin installed but off vs -p no:mlsupply: {off_ms:+.1f} ms ({off_pct:+.1f}%)")

    print()
    print(
        f"in-process, best of 5 ({pieces['distributions']} distributions, "
        f"{pieces['files']:,} RECORD rows, {pieces['findings']} findings):"
    )
    for key, label in (
        ("import_ms", "import the gate (after pytest)"),
        ("take_snapshot_ms", "take_snapshot()"),
        ("load_lock_ms", "load_lock()"),
        ("check_environment_ms", "check_environment()"),
        ("verify_warm_ms", "verify_installed_files(), warm caches"),
        ("stat_every_file_ms", "os.stat of every verified file"),
    ):
        print(f"  {label:<38} {pieces[key]:>8.1f} ms")
    print(
        f"  warm verification of {pieces['files_verified']:,} files = "
        f"{pieces['verify_warm_ms'] / pieces['stat_every_file_ms']:.1f}x the stat pass"
    )

    return {
        "environment": stats,
        "python": platform.python_version(),
        "rounds": rounds,
        "variants": {
            variant.key: {
                "label": variant.label,
                "command": ["python", *variant.args],
                "median_ms": variant.median,
                "min_ms": variant.minimum,
                "max_ms": max(variant.samples_ms),
                "samples_ms": variant.samples_ms,
                "returncodes": sorted(variant.returncodes),
            }
            for variant in variants
        },
        "comparisons": {
            "mlsupply_added_ms": added,
            "mlsupply_added_paired_ms": added_paired,
            "target_added_ms": TARGET_ADDED_MS,
            "target_met": target_met,
            "check_over_pip_check": check_vs_pip_check,
            "check_over_pip_freeze": check_vs_pip_freeze,
            "plugin_off_added_ms": off_ms,
            "plugin_off_added_percent": off_pct,
        },
        "in_process": pieces,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time pytest --mlsupply and `python -m pytest_mlsupply check` "
        "in an ML-sized virtual environment."
    )
    parser.add_argument(
        "--rounds", type=int, default=15, help="timed rounds, every variant once each (default 15)"
    )
    parser.add_argument(
        "--keep",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep the venv for the next run (default); --no-keep deletes it afterwards",
    )
    parser.add_argument("--rebuild", action="store_true", help="recreate the venv from scratch")
    parser.add_argument(
        "--dont-write-bytecode",
        action="store_true",
        help="keep PYTHONDONTWRITEBYTECODE if set (every run then recompiles rewritten plugins)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON to PATH")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    global KEEP_DONT_WRITE_BYTECODE
    args = parse_args(argv)
    KEEP_DONT_WRITE_BYTECODE = args.dont_write_bytecode
    bytecode = "kept" if "PYTHONDONTWRITEBYTECODE" in clean_env() else "not set"
    print(f"PYTHONDONTWRITEBYTECODE for the timed runs: {bytecode}")
    try:
        python = ensure_env(VENV_DIR, rebuild=args.rebuild)
        with tempfile.TemporaryDirectory(prefix="mlsupply-bench-") as tmp:
            suite = Path(tmp)
            (suite / "test_trivial.py").write_text(TRIVIAL_TEST, encoding="utf-8")
            lock = suite / "mlsupply.lock"
            stats = run_json(python, STATS_SCRIPT, cwd=suite, what="counting the environment")
            run(
                [python, "-m", "pytest_mlsupply", "lock", "--lock", lock],
                cwd=suite,
                what="writing the lock",
            )
            variants = make_variants(suite, lock)
            print("warming up (one untimed run of each) ...", flush=True)
            warm_up(python, variants, suite)
            print(f"timing {args.rounds} rounds of {len(variants)} commands ...", flush=True)
            measure(python, variants, suite, args.rounds)
            pieces = run_json(
                python, PIECES_SCRIPT, str(lock), cwd=suite, what="timing the pieces in-process"
            )
            numbers = report(stats, variants, pieces, args.rounds)
    except SetupError as exc:
        print(f"setup failed: {exc}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=2) + "\n", encoding="utf-8")
        print(f"\nnumbers written to {args.json}")
    if not args.keep:
        shutil.rmtree(VENV_DIR, ignore_errors=True)
        print(f"removed {VENV_DIR.relative_to(REPO_ROOT)} (--no-keep)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
