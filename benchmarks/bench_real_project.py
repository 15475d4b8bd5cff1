#!/usr/bin/env python3
"""Plain against gated wall time of a real project's own test run, and the gate's findings.

Run from (or point at) a checked-out project that was installed from the lock it commits
(``uv sync``, ``poetry install``, ``pip-sync``) with pytest-mlsupply among its development
dependencies. It uses the project's interpreter, reaches no network, and writes nothing
outside pytest's own cache:

1. ``python -m pytest_mlsupply check --lock LOCK -v``: the findings on the install as it is;
2. per round, interleaved: ``python -m pytest ARGS`` (plain) and the same with
   ``--mlsupply --mlsupply-lock LOCK`` (gated; ``--mlsupply-warn-only`` is added when step 1
   found errors, so the tests still run and the two times compare like with like).

    python benchmarks/bench_real_project.py PROJECT [--lock uv.lock] [--rounds 3] [-- PYTEST ARGS]

This is a report, not a test: it exits 0 whatever the numbers are (2 when the project has no
interpreter or lock to use).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: Locks looked for, in this order, when --lock is not given.
LOCK_NAMES = ("uv.lock", "poetry.lock", "pylock.toml", "requirements-dev.txt", "requirements.txt")
#: Where installers put a project's virtual environment (uv and Poetry's in-project venv).
VENV_NAMES = (".venv", "venv")


def find_python(project: Path) -> Path | None:
    for name in VENV_NAMES:
        venv = project / name
        for candidate in (venv / "bin" / "python", venv / "Scripts" / "python.exe"):
            if candidate.is_file():
                return candidate
    return None


def find_lock(project: Path) -> Path | None:
    return next((project / n for n in LOCK_NAMES if (project / n).is_file()), None)


def timed(command: list[str], cwd: Path) -> tuple[float, int, str]:
    """Wall time, exit status and the last output line of *command*."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return elapsed, done.returncode, lines[-1] if lines else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("project", type=Path, nargs="?", default=Path.cwd())
    parser.add_argument("--lock", type=Path, help="the project's lock (default: found by name)")
    parser.add_argument("--python", type=Path, help="the project's interpreter (default: .venv)")
    parser.add_argument("--rounds", type=int, default=3)
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    pytest_args = argv[split + 1 :]
    project: Path = args.project.resolve()
    python = args.python or find_python(project)
    lock = args.lock or find_lock(project)
    if python is None or lock is None:
        print(f"{project}: no virtual environment or no lock found (use --python, --lock)")
        return 2

    check = subprocess.run(
        [str(python), "-m", "pytest_mlsupply", "check", "--lock", str(lock), "-v"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    findings = [
        line
        for line in check.stdout.splitlines()
        if line.startswith(("ERROR [", "WARNING [", "INFO [", "mlsupply:"))
    ]
    print(f"check --lock {lock.name} (exit {check.returncode}):")
    print("\n".join(f"  {line}" for line in findings) or "  (no output)")

    plain = [str(python), "-m", "pytest", *pytest_args]
    gated = [*plain, "--mlsupply", "--mlsupply-lock", str(lock)]
    if check.returncode != 0:
        gated.append("--mlsupply-warn-only")
    times: dict[str, list[float]] = {"plain": [], "gated": []}
    for round_number in range(1, args.rounds + 1):
        for label, command in (("plain", plain), ("gated", gated)):
            elapsed, status, last = timed(command, project)
            times[label].append(elapsed)
            print(f"round {round_number} {label}: {elapsed:.2f} s (exit {status}) {last}")
    for label, values in times.items():
        shown = " / ".join(f"{v:.2f}" for v in values)
        print(f"{label}: median {statistics.median(values):.2f} s ({shown})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
