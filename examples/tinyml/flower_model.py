"""A small flower classifier in plain numpy: data loading, a two-layer MLP, save and load.

Small on purpose: it trains in well under a second on a CPU, so the whole
test suite can train it for real instead of mocking the model away.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FEATURE_NAMES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
LABEL_NAME = "species"


class DatasetError(ValueError):
    """The CSV does not have the schema the model was built for."""


@dataclass(frozen=True)
class Dataset:
    """Features (one row per flower) and integer labels indexing ``class_names``."""

    features: FloatArray
    labels: IntArray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: npt.NDArray[np.intp]) -> Dataset:
        return Dataset(self.features[indices], self.labels[indices], self.class_names)


def load_dataset(path: str | Path) -> Dataset:
    """Read the flowers CSV, refusing a file whose columns are not the expected ones.

    Class names are sorted, so a label keeps its index however the rows are ordered.
    """
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = tuple(next(reader, ()))
        expected = (*FEATURE_NAMES, LABEL_NAME)
        if header != expected:
            raise DatasetError(f"{path}: expected columns {expected}, got {header}")
        rows = [row for row in reader if row]
    species = [row[-1] for row in rows]
    class_names = tuple(sorted(set(species)))
    index = {name: i for i, name in enumerate(class_names)}
    features = np.array([[float(value) for value in row[:-1]] for row in rows], dtype=np.float64)
    labels = np.array([index[name] for name in species], dtype=np.int64)
    return Dataset(features.reshape(len(rows), len(FEATURE_NAMES)), labels, class_names)


def stratified_split(dataset: Dataset, test_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Train and test sets with every class in the same proportion in both."""
    rng = np.random.default_rng(seed)
    train_parts: list[npt.NDArray[np.intp]] = []
    test_parts: list[npt.NDArray[np.intp]] = []
    for label in range(len(dataset.class_names)):
        members = rng.permutation(np.flatnonzero(dataset.labels == label))
        n_test = round(len(members) * test_fraction)
        test_parts.append(members[:n_test])
        train_parts.append(members[n_test:])
    train = np.sort(np.concatenate(train_parts))
    test = np.sort(np.concatenate(test_parts))
    return dataset.subset(train), dataset.subset(test)


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides the trained weights; same config and data, same model."""

    hidden_units: int = 16
    learning_rate: float = 0.1
    epochs: int = 60
    batch_size: int = 32
    l2: float = 1e-4
    seed: int = 0


@dataclass(frozen=True)
class FlowerClassifier:
    """Standardize, then tanh hidden layer, then softmax over the classes."""

    mean: FloatArray
    scale: FloatArray
    w1: FloatArray
    b1: FloatArray
    w2: FloatArray
    b2: FloatArray
    class_names: tuple[str, ...]

    # ------------------------------------------------------------ inference

    def predict_proba(self, features: FloatArray) -> FloatArray:
        hidden = np.tanh(((features - self.mean) / self.scale) @ self.w1 + self.b1)
        return _softmax(hidden @ self.w2 + self.b2)

    def predict(self, features: FloatArray) -> IntArray:
        labels: IntArray = self.predict_proba(features).argmax(axis=1).astype(np.int64)
        return labels

    def loss(self, dataset: Dataset) -> float:
        """Mean cross-entropy: what training minimizes (without the L2 term)."""
        return _cross_entropy(self.predict_proba(dataset.features), dataset.labels)

    def accuracy(self, dataset: Dataset) -> float:
        return float(np.mean(self.predict(dataset.features) == dataset.labels))

    # ------------------------------------------------------------ training

    @classmethod
    def untrained(cls, dataset: Dataset, config: TrainingConfig) -> FlowerClassifier:
        """Initial weights (variance 1/fan-in, from ``config.seed``) and the data's scaling."""
        rng = np.random.default_rng(config.seed)
        n_features = dataset.features.shape[1]
        n_hidden = config.hidden_units
        n_classes = len(dataset.class_names)
        scale = dataset.features.std(axis=0)
        return cls(
            mean=dataset.features.mean(axis=0),
            scale=np.where(scale > 0, scale, 1.0),
            w1=rng.normal(0.0, np.sqrt(1.0 / n_features), (n_features, n_hidden)),
            b1=np.zeros(n_hidden),
            w2=rng.normal(0.0, np.sqrt(1.0 / n_hidden), (n_hidden, n_classes)),
            b2=np.zeros(n_classes),
            class_names=dataset.class_names,
        )

    @classmethod
    def fit(cls, dataset: Dataset, config: TrainingConfig) -> tuple[FlowerClassifier, list[float]]:
        """Mini-batch gradient descent.

        Returns the model and its loss on *dataset* before training and after each epoch.
        """
        model = cls.untrained(dataset, config)
        rng = np.random.default_rng(config.seed + 1)  # batch order, independent of the init draw
        w1, b1, w2, b2 = model.w1.copy(), model.b1.copy(), model.w2.copy(), model.b2.copy()
        history = [model.loss(dataset)]
        for _ in range(config.epochs):
            order = rng.permutation(len(dataset))
            for start in range(0, len(order), config.batch_size):
                batch = order[start : start + config.batch_size]
                x = (dataset.features[batch] - model.mean) / model.scale
                y = np.eye(len(model.class_names))[dataset.labels[batch]]
                hidden = np.tanh(x @ w1 + b1)
                probs = _softmax(hidden @ w2 + b2)
                d_logits = (probs - y) / len(batch)
                d_hidden = (d_logits @ w2.T) * (1.0 - hidden**2)
                w2 -= config.learning_rate * (hidden.T @ d_logits + config.l2 * w2)
                b2 -= config.learning_rate * d_logits.sum(axis=0)
                w1 -= config.learning_rate * (x.T @ d_hidden + config.l2 * w1)
                b1 -= config.learning_rate * d_hidden.sum(axis=0)
            model = replace(model, w1=w1.copy(), b1=b1.copy(), w2=w2.copy(), b2=b2.copy())
            history.append(model.loss(dataset))
        return model, history

    # ------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> None:
        """One ``.npz`` file with plain arrays only, so loading never needs pickle."""
        np.savez(
            path,
            mean=self.mean,
            scale=self.scale,
            w1=self.w1,
            b1=self.b1,
            w2=self.w2,
            b2=self.b2,
            class_names=np.array(self.class_names, dtype=str),
        )

    @classmethod
    def load(cls, path: str | Path) -> FlowerClassifier:
        with np.load(path, allow_pickle=False) as arrays:
            return cls(
                mean=arrays["mean"],
                scale=arrays["scale"],
                w1=arrays["w1"],
                b1=arrays["b1"],
                w2=arrays["w2"],
                b2=arrays["b2"],
                class_names=tuple(str(name) for name in arrays["class_names"]),
            )


def _softmax(logits: FloatArray) -> FloatArray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs: FloatArray = shifted / shifted.sum(axis=1, keepdims=True)
    return probs


def _cross_entropy(probs: FloatArray, labels: IntArray) -> float:
    picked = probs[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))
