"""Training works: the loss goes down, held-out accuracy is good, and seeds make it repeatable."""

from __future__ import annotations

import numpy as np
import pytest
from flower_model import Dataset, FlowerClassifier, TrainingConfig

# Training reads the committed CSV, so these tests run only on bytes whose digest matches
# mlsupply-data.toml (pytest-mlsupply's verified data).
pytestmark = pytest.mark.verified_data("flowers")

MIN_TEST_ACCURACY = 0.9


def test_training_reduces_the_loss(trained: tuple[FlowerClassifier, list[float]]) -> None:
    _, history = trained
    assert history[-1] < history[0] / 2
    assert history[-1] < 0.3


def test_held_out_accuracy_is_above_threshold(
    model: FlowerClassifier, split: tuple[Dataset, Dataset]
) -> None:
    _, test = split
    assert model.accuracy(test) >= MIN_TEST_ACCURACY


def test_probabilities_are_a_distribution(
    model: FlowerClassifier, split: tuple[Dataset, Dataset]
) -> None:
    _, test = split
    probs = model.predict_proba(test.features)
    assert probs.shape == (len(test), len(test.class_names))
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_same_seed_gives_identical_predictions(
    split: tuple[Dataset, Dataset], training_config: TrainingConfig
) -> None:
    train, test = split
    first, _ = FlowerClassifier.fit(train, training_config)
    second, _ = FlowerClassifier.fit(train, training_config)
    np.testing.assert_array_equal(first.w1, second.w1)
    np.testing.assert_array_equal(
        first.predict_proba(test.features), second.predict_proba(test.features)
    )


def test_another_seed_gives_other_weights_but_similar_accuracy(
    model: FlowerClassifier, split: tuple[Dataset, Dataset], training_config: TrainingConfig
) -> None:
    """Guards against a seed that is silently ignored, and against a lucky seed."""
    train, test = split
    other, _ = FlowerClassifier.fit(train, TrainingConfig(seed=training_config.seed + 1))
    assert not np.array_equal(other.w1, model.w1)
    assert other.accuracy(test) >= MIN_TEST_ACCURACY
