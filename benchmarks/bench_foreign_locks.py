"""What reading another tool's lock costs: our reader against the bare TOML/JSON parse.

For every lockfile in the realdata folder (``../shared/realdata/lockfiles`` beside
the checkout, or ``$MLSUPPLY_REALDATA/lockfiles``), times in one run, interleaved,
the best of N rounds of:

- the bare syntax parse (``tomllib.loads`` / ``json.loads``; for requirement
  files, reading the text),
- ``load_foreign_lock`` (parse + validate + normalise into the model),
- ``select`` for this interpreter (markers, groups, uv's graph walk),

and prints the ratio of our full read (load + select) to the bare parse.
It is a report, not a test: it exits 0 whatever the numbers are.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from pytest_mlsupply.locks.foreign import (
    FORMAT_PIPFILE,
    FORMAT_REQUIREMENTS,
    detect_format,
    load_foreign_lock,
    select,
)

REPO = Path(__file__).resolve().parent.parent


def _lockfiles_dir() -> Path:
    configured = os.environ.get("MLSUPPLY_REALDATA")
    base = Path(configured) if configured else REPO.parent / "shared" / "realdata"
    return base / "lockfiles"


def _best(function: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    folder = _lockfiles_dir()
    if not folder.is_dir():
        print(f"no lockfiles at {folder}; set MLSUPPLY_REALDATA", file=sys.stderr)
        return 0
    print(
        f"{'lockfile':48} {'KiB':>6} {'pkgs':>5} {'parse ms':>9} {'load ms':>8} "
        f"{'select ms':>9} {'ratio':>6}"
    )
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        fmt = detect_format(path)
        text = path.read_text(encoding="utf-8")
        bare: Callable[[], object] | None = None
        if fmt == FORMAT_PIPFILE:
            bare = functools.partial(json.loads, text)
        elif fmt != FORMAT_REQUIREMENTS:  # a requirement file has no syntax parser to compare
            bare = functools.partial(tomllib.loads, text)
        lock = load_foreign_lock(path, fmt)
        load = _best(functools.partial(load_foreign_lock, path, fmt), args.rounds)
        chosen = _best(functools.partial(select, lock), args.rounds)
        name = str(path.relative_to(folder))
        if bare is None:
            parse_text, ratio_text = f"{'-':>9}", f"{'-':>6}"
        else:
            parse = _best(bare, args.rounds)
            parse_text = f"{parse * 1e3:9.2f}"
            ratio_text = f"{(load + chosen) / parse:5.1f}x"
        print(
            f"{name:48} {path.stat().st_size / 1024:6.0f} {len(lock.packages):5d} "
            f"{parse_text} {load * 1e3:8.2f} {chosen * 1e3:9.2f} {ratio_text}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
