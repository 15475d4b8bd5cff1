"""The dataset is what the model expects: schema, shape, balance, and provenance."""

from __future__ import annotations

from pathlib import Path

import make_data
import numpy as np
import pytest
from flower_model import FEATURE_NAMES, Dataset, DatasetError, load_dataset

# These tests read the committed CSV, so they run only on bytes whose digest matches
# mlsupply-data.toml (pytest-mlsupply's verified data).
pytestmark = pytest.mark.verified_data("flowers")


def test_csv_has_the_expected_columns(data_path: Path) -> None:
    header = data_path.read_text(encoding="utf-8").splitlines()[0]
    assert header.split(",") == [*FEATURE_NAMES, "species"]


def test_dataset_shape_and_types(dataset: Dataset) -> None:
    assert dataset.features.shape == (300, 4)
    assert dataset.features.dtype == np.float64
    assert dataset.labels.shape == (300,)
    assert dataset.class_names == ("setosa", "versicolor", "virginica")


def test_classes_are_balanced(dataset: Dataset) -> None:
    assert np.bincount(dataset.labels).tolist() == [100, 100, 100]


def test_measurements_are_finite_and_positive(dataset: Dataset) -> None:
    assert np.isfinite(dataset.features).all()
    assert (dataset.features > 0).all()


def test_committed_csv_matches_its_generator(data_path: Path, tmp_path: Path) -> None:
    """The data in git is exactly what make_data.py produces, so nobody edited it by hand."""
    regenerated = tmp_path / "flowers.csv"
    make_data.write_csv(regenerated)
    assert regenerated.read_bytes() == data_path.read_bytes()


def test_a_csv_with_other_columns_is_refused(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b,c,d,species\n1,2,3,4,setosa\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="expected columns"):
        load_dataset(wrong)


def test_split_is_disjoint_and_stratified(split: tuple[Dataset, Dataset]) -> None:
    train, test = split
    assert len(train) + len(test) == 300
    train_rows = {row.tobytes() for row in train.features}
    assert not any(row.tobytes() in train_rows for row in test.features)
    assert np.bincount(test.labels).tolist() == [30, 30, 30]
