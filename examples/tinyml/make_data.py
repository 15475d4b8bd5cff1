"""Regenerate ``data/flowers.csv``, the synthetic dataset the example trains on.

The CSV is committed so the tests never download anything; this script is kept
so that anyone can check the data is what it claims to be and rebuild it
byte for byte. It uses only the standard library, and only ``random.random()``,
whose sequence Python guarantees for a given seed across versions, so the file
does not depend on which numpy (or Python) happens to be installed.

Usage: python make_data.py [--out data/flowers.csv]
"""

from __future__ import annotations

import argparse
import csv
import math
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

SEED = 20240611
ROWS_PER_CLASS = 100
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
LABEL = "species"

#: Per class: the mean and standard deviation of each feature, in centimetres.
#: Iris-shaped on purpose (one easy class, two that overlap a little), but
#: synthetic: these are not the real Iris measurements.
CLASS_PROFILES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "setosa": ((5.0, 3.4, 1.5, 0.25), (0.35, 0.38, 0.17, 0.10)),
    "versicolor": ((5.9, 2.8, 4.3, 1.3), (0.50, 0.31, 0.47, 0.20)),
    "virginica": ((6.6, 3.0, 5.5, 2.0), (0.63, 0.32, 0.55, 0.27)),
}

DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "flowers.csv"


def standard_normal(rng: random.Random) -> float:
    """Box-Muller from ``rng.random()``: ``random.gauss`` has no cross-version guarantee."""
    u1 = 1.0 - rng.random()  # in (0, 1], so log() is defined
    u2 = rng.random()
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def generate_rows(seed: int = SEED) -> Iterator[tuple[str, ...]]:
    """Rows of the dataset, classes interleaved so a naive head/tail split still sees all."""
    rng = random.Random(seed)
    for _ in range(ROWS_PER_CLASS):
        for species, (means, stds) in CLASS_PROFILES.items():
            values = (
                max(0.1, mean + std * standard_normal(rng))
                for mean, std in zip(means, stds, strict=True)
            )
            yield (*(f"{value:.2f}" for value in values), species)


def write_csv(path: Path, seed: int = SEED) -> int:
    """Write the dataset to *path* and return the number of data rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow((*FEATURES, LABEL))
        for row in generate_rows(seed):
            writer.writerow(row)
            count += 1
    return count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="CSV file to write")
    parser.add_argument("--seed", type=int, default=SEED, help="random seed (default: %(default)s)")
    args = parser.parse_args(argv)
    count = write_csv(args.out, args.seed)
    print(f"wrote {count} rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
