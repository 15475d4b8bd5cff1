"""Shared fixtures: the committed dataset, one fixed split, and one trained model.

Training is cheap but not free, so the model is trained once per session and
shared by every test that only reads it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flower_model import Dataset, FlowerClassifier, TrainingConfig, load_dataset, stratified_split

DATA_PATH = Path(__file__).resolve().parent / "data" / "flowers.csv"
SPLIT_SEED = 7
TEST_FRACTION = 0.3


@pytest.fixture(scope="session")
def data_path() -> Path:
    return DATA_PATH


@pytest.fixture(scope="session")
def dataset(data_path: Path) -> Dataset:
    return load_dataset(data_path)


@pytest.fixture(scope="session")
def split(dataset: Dataset) -> tuple[Dataset, Dataset]:
    """(train, test): fixed by a seed so accuracy thresholds mean the same every run."""
    return stratified_split(dataset, TEST_FRACTION, seed=SPLIT_SEED)


@pytest.fixture(scope="session")
def training_config() -> TrainingConfig:
    return TrainingConfig(seed=0)


@pytest.fixture(scope="session")
def trained(
    split: tuple[Dataset, Dataset], training_config: TrainingConfig
) -> tuple[FlowerClassifier, list[float]]:
    """The model trained on the train split, with its loss history."""
    train, _ = split
    return FlowerClassifier.fit(train, training_config)


@pytest.fixture(scope="session")
def model(trained: tuple[FlowerClassifier, list[float]]) -> FlowerClassifier:
    return trained[0]
