#!/usr/bin/env python3
"""Start-up cost of the plugin when off, and what the gate adds under pytest-xdist.

Reuses (or builds) the ML-sized environment of ``bench_lock_check.py``, adds
pytest-xdist to it, and times, as subprocesses interleaved within every round:

* ``pytest --collect-only`` on a trivial suite, plugin installed and off,
  against ``-p no:mlsupply`` (target: within 5 %);
* a 40-test suite without xdist, with and without ``--mlsupply`` (warm cache);
* the same suite under ``-n 2``, with and without ``--mlsupply``
  (target: the gate adds no more under ``-n 2`` than without xdist).

This is a report, not a test: it exits 0 whatever the numbers are.

    python benchmarks/bench_xdist_startup.py [--rounds 25] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench_lock_check import (
    VENV_DIR,
    SetupError,
    Variant,
    ensure_env,
    measure,
    paired_median,
    run,
    warm_up,
)

#: Issue targets: the plugin installed and off within 5 % of not loaded at all; under -n 2 the
#: gate adds no more than without xdist (a tolerance for timer noise is printed, not hidden).
OFF_TARGET_PCT = 5.0
#: The same work happens once either way, so equal costs are expected; two figures
#: from a noisy machine within this tolerance count as equal (printed with the verdict).
XDIST_TOLERANCE = 1.05
SUITE_SIZE = 40


def write_suites(root: Path) -> tuple[Path, Path]:
    trivial = root / "trivial"
    trivial.mkdir()
    (trivial / "test_one.py").write_text("def test_ok():\n    pass\n")
    many = root / "many"
    many.mkdir()
    for module in range(4):
        body = "".join(
            f"def test_{module}_{n}():\n    assert sum(range({n})) >= 0\n\n"
            for n in range(SUITE_SIZE // 4)
        )
        (many / f"test_mod{module}.py").write_text(body)
    return trivial, many


def variants(trivial: Path, many: Path, lock: Path) -> list[Variant]:
    pytest = ["-m", "pytest", "-q"]
    gate = ["--mlsupply", "--mlsupply-lock", str(lock)]
    return [
        Variant("collect_off", "collect-only, plugin off", [*pytest, "--co", str(trivial)]),
        Variant(
            "collect_unloaded",
            "collect-only, -p no:mlsupply",
            [*pytest, "--co", "-p", "no:mlsupply", str(trivial)],
        ),
        Variant("serial", "40 tests, no xdist", [*pytest, "-p", "no:xdist", str(many)]),
        Variant(
            "serial_gate",
            "40 tests, no xdist, --mlsupply",
            [*pytest, "-p", "no:xdist", *gate, str(many)],
        ),
        Variant("n2", "40 tests, -n 2", [*pytest, "-n", "2", str(many)]),
        Variant("n2_gate", "40 tests, -n 2, --mlsupply", [*pytest, "-n", "2", *gate, str(many)]),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    try:
        python = ensure_env(VENV_DIR, rebuild=False)
        run(
            [python, "-m", "pip", "install", "-q", "pytest-xdist"],
            what="installing pytest-xdist into the benchmark environment",
        )
        with tempfile.TemporaryDirectory(prefix="mlsupply-bench-") as tmp:
            root = Path(tmp)
            trivial, many = write_suites(root)
            lock = root / "mlsupply.lock"
            run(
                [
                    python,
                    "-m",
                    "pytest",
                    "-q",
                    "--mlsupply-update-lock",
                    "--mlsupply-lock",
                    lock,
                    str(trivial),
                ],
                cwd=root,
                what="writing the lock",
            )
            chosen = variants(trivial, many, lock)
            warm_up(python, chosen, root)
            measure(python, chosen, root, args.rounds)
    except SetupError as exc:
        print(f"setup failed: {exc}", file=sys.stderr)
        return 1

    v = {variant.key: variant for variant in chosen}
    width = max(len(variant.label) for variant in chosen)
    print(f"\n{args.rounds} rounds, interleaved; wall time per run (ms)")
    print(f"  {'command':<{width}}  {'median':>8}  {'min':>8}")
    for variant in chosen:
        print(f"  {variant.label:<{width}}  {variant.median:>8.1f}  {variant.minimum:>8.1f}")
    off_ms = paired_median(v["collect_off"], v["collect_unloaded"])
    off_pct = off_ms / v["collect_unloaded"].median * 100
    serial_added = paired_median(v["serial_gate"], v["serial"])
    n2_added = paired_median(v["n2_gate"], v["n2"])
    print("\ncomparisons (paired per-round medians):")
    print(
        f"  plugin installed and off vs -p no:mlsupply (collect-only): {off_ms:+.1f} ms "
        f"({off_pct:+.1f} %); target within {OFF_TARGET_PCT:.0f} %: "
        f"{'MET' if abs(off_pct) <= OFF_TARGET_PCT else 'NOT MET'}"
    )
    print(f"  --mlsupply adds without xdist: {serial_added:+.1f} ms")
    print(
        f"  --mlsupply adds under -n 2:    {n2_added:+.1f} ms "
        f"(ratio {n2_added / serial_added:.2f} of the serial cost); target: no more than "
        f"without xdist, within {XDIST_TOLERANCE - 1:.0%} timer noise: "
        f"{'MET' if n2_added <= serial_added * XDIST_TOLERANCE else 'NOT MET'}"
    )
    figures = {
        "rounds": args.rounds,
        "medians_ms": {key: variant.median for key, variant in v.items()},
        "off_vs_unloaded_ms": off_ms,
        "off_vs_unloaded_pct": off_pct,
        "gate_added_serial_ms": serial_added,
        "gate_added_n2_ms": n2_added,
    }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
