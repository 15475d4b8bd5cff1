"""A saved model loads back as the same model: what a serving job would rely on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flower_model import Dataset, FlowerClassifier

# The model under test is trained on the committed CSV, so these tests run only on
# bytes whose digest matches mlsupply-data.toml (pytest-mlsupply's verified data).
pytestmark = pytest.mark.verified_data("flowers")


def test_save_load_round_trip(
    model: FlowerClassifier, split: tuple[Dataset, Dataset], tmp_path: Path
) -> None:
    _, test = split
    path = tmp_path / "flower_model.npz"
    model.save(path)
    loaded = FlowerClassifier.load(path)
    assert loaded.class_names == model.class_names
    np.testing.assert_array_equal(
        loaded.predict_proba(test.features), model.predict_proba(test.features)
    )


def test_saved_file_needs_no_pickle(model: FlowerClassifier, tmp_path: Path) -> None:
    """Loading with allow_pickle=False means a model file cannot run code when opened."""
    path = tmp_path / "flower_model.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as arrays:
        assert all(arrays[name].dtype != object for name in arrays.files)
