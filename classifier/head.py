"""The router head as plain arrays: applied with numpy, stored as safetensors (never pickle)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from sklearn.linear_model import LogisticRegression


@dataclass(frozen=True, eq=False)
class LinearHead:
    """Weights of a fitted sklearn `LogisticRegression` whose classes are the label indices ``0..n-1``.

    ``coef`` has one row per label (softmax over rows), except for two labels, where sklearn keeps a single
    row that scores label 1 against label 0 (sigmoid); ``predict_proba`` follows sklearn in both cases.
    """

    coef: np.ndarray
    intercept: np.ndarray

    def __post_init__(self) -> None:
        if self.coef.ndim != 2 or self.intercept.shape != (self.coef.shape[0],) or self.coef.shape[0] == 2:
            raise ValueError(
                f"head shapes do not fit a logistic regression: coef {self.coef.shape}, "
                f"intercept {self.intercept.shape}"
            )

    @classmethod
    def from_sklearn(cls, model: LogisticRegression) -> LinearHead:
        classes = np.asarray(model.classes_)
        if not np.array_equal(classes, np.arange(len(classes))):
            raise ValueError(f"head classes must be the label indices 0..n-1, got {classes.tolist()}")
        coef, intercept = np.asarray(model.coef_, np.float64), np.asarray(model.intercept_, np.float64)
        return cls(coef=coef, intercept=intercept)

    @property
    def n_classes(self) -> int:
        return 2 if self.coef.shape[0] == 1 else self.coef.shape[0]

    @property
    def dim(self) -> int:
        return self.coef.shape[1]

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), equal to sklearn's ``predict_proba``."""
        # float64 like sklearn, so the numbers match its own to rounding.
        z = embeddings.astype(np.float64, copy=False) @ self.coef.T + self.intercept
        if self.coef.shape[0] == 1:
            with np.errstate(over="ignore"):  # exp overflow -> inf -> probability 0, which is right
                p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.column_stack([1.0 - p1, p1])
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z


ROUTER_HEAD_FORMAT = "lora-router-router-head"
ROUTER_HEAD_TENSORS = {
    "coef",
    "intercept",
    "examples",
    "example_labels",
    "example_digests",
    "in_scope",
    "settings",
}
ROUTER_HEAD_SETTINGS = ("kernel_temperature", "blend", "calibration", "oos_threshold")
# Probabilities are floored here before the calibration's logarithm: a label no example votes for.
MIN_PROBABILITY = 1e-12


@dataclass(frozen=True, eq=False)
class RouterHead:
    """Label probabilities from a message's features, and how close the message is to anything trained.

    - A logistic regression (``linear``) blended (weight ``blend``) with a kernel vote of the training
      examples: each label gets the mean of ``exp(kernel_temperature * (cosine - 1))`` over its examples. The
      vote keeps what a single linear boundary per label loses when a label's examples are varied (an expert
      taught several kinds of request); the blend routed better on a public benchmark than either alone.
    - ``calibration``: a temperature on the blend's log-probabilities, fit by cross-validation on the training
      examples, so that a probability of 0.4 means about 40 % right whatever the number of labels.
    - ``similarity``: cosine to the nearest in-scope training example (examples labelled "none of these" are
      not in scope); below ``oos_threshold`` a message looks like nothing the router was taught.

    The training examples' features are kept (``examples``, keyed by ``example_digests``, the sha256 of each
    text) for the vote, and so that retraining need not encode them again.
    """

    linear: LinearHead
    examples: np.ndarray
    example_labels: np.ndarray
    example_digests: np.ndarray
    in_scope: np.ndarray
    kernel_temperature: float
    blend: float
    calibration: float
    oos_threshold: float

    def __post_init__(self) -> None:
        n = self.examples.shape[0]
        if (
            self.examples.ndim != 2
            or self.examples.shape[1] != self.linear.dim
            or self.example_labels.shape != (n,)
            or self.example_digests.shape != (n, 32)
            or self.in_scope.shape != (n,)
        ):
            raise ValueError(
                f"head shapes do not fit: examples {self.examples.shape}, labels "
                f"{self.example_labels.shape}, digests {self.example_digests.shape}, in_scope "
                f"{self.in_scope.shape}, dim {self.linear.dim}"
            )
        if n and (self.example_labels.min() < 0 or self.example_labels.max() >= self.n_classes):
            raise ValueError(f"example labels must index the {self.n_classes} classes")
        if (
            not all(np.isfinite(getattr(self, name)) for name in ROUTER_HEAD_SETTINGS)
            or self.calibration <= 0
        ):
            raise ValueError(
                "kernel temperature, blend, calibration and threshold must be finite, calibration > 0"
            )

    @property
    def n_classes(self) -> int:
        return self.linear.n_classes

    @property
    def dim(self) -> int:
        return self.linear.dim

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, shape (n, n_classes)."""
        similarities = features.astype(np.float32, copy=False) @ self.examples.T
        return calibrate(self._blend(features, similarities), self.calibration)

    def similarity(self, features: np.ndarray) -> np.ndarray:
        """Cosine to the nearest in-scope training example, shape (n,); -1 when there is none."""
        similarities = features.astype(np.float32, copy=False) @ self.examples[self.in_scope].T
        if similarities.shape[1] == 0:
            return np.full(features.shape[0], -1.0)
        return similarities.max(axis=1).astype(np.float64)

    def _blend(self, features: np.ndarray, similarities: np.ndarray) -> np.ndarray:
        votes = kernel_votes(similarities, self.example_labels, self.n_classes, self.kernel_temperature)
        return (1 - self.blend) * self.linear.predict_proba(features) + self.blend * votes

    def save(self, path: Path) -> None:
        tensors = {
            # safetensors writes an array's memory as is: a Fortran-ordered coef (sklearn's multinomial
            # solvers return one) would come back transposed-scrambled without ascontiguousarray.
            "coef": np.ascontiguousarray(self.linear.coef),
            "intercept": np.ascontiguousarray(self.linear.intercept),
            "examples": np.ascontiguousarray(self.examples, dtype=np.float32),
            "example_labels": np.ascontiguousarray(self.example_labels, dtype=np.int64),
            "example_digests": np.ascontiguousarray(self.example_digests, dtype=np.uint8),
            "in_scope": np.ascontiguousarray(self.in_scope, dtype=np.uint8),
            # A tensor, not metadata: safetensors writes metadata in hash order, and the same head must give
            # the same bytes (its folder's hash is the router's version).
            "settings": np.array([getattr(self, name) for name in ROUTER_HEAD_SETTINGS], np.float64),
        }
        save_file(tensors, str(path), metadata={"format": ROUTER_HEAD_FORMAT})

    @classmethod
    def load(cls, path: Path) -> RouterHead:
        """Read a head written by `save`; ValueError if it is not what `save` writes."""
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
        if metadata.get("format") != ROUTER_HEAD_FORMAT:
            raise ValueError(f"not a {ROUTER_HEAD_FORMAT!r} file")
        tensors = load_file(str(path))
        if set(tensors) != ROUTER_HEAD_TENSORS:
            raise ValueError(f"expected tensors {sorted(ROUTER_HEAD_TENSORS)}, found {sorted(tensors)}")
        coef, intercept = tensors["coef"], tensors["intercept"]
        if coef.dtype != np.float64 or intercept.dtype != np.float64:
            raise ValueError(f"coef and intercept must be float64, found {coef.dtype} and {intercept.dtype}")
        expected = {
            "examples": np.float32,
            "example_labels": np.int64,
            "example_digests": np.uint8,
            "settings": np.float64,
        }
        for name, dtype in expected.items():
            if tensors[name].dtype != dtype:
                raise ValueError(f"{name} must be {np.dtype(dtype)}, found {tensors[name].dtype}")
        if tensors["settings"].shape != (len(ROUTER_HEAD_SETTINGS),):
            raise ValueError(f"head settings missing: expected {', '.join(ROUTER_HEAD_SETTINGS)}")
        settings = dict(zip(ROUTER_HEAD_SETTINGS, map(float, tensors["settings"]), strict=True))
        return cls(
            linear=LinearHead(coef=coef, intercept=intercept),
            examples=tensors["examples"],
            example_labels=tensors["example_labels"],
            example_digests=tensors["example_digests"],
            in_scope=tensors["in_scope"].astype(bool),
            **settings,
        )


def kernel_votes(
    similarities: np.ndarray, example_labels: np.ndarray, n_classes: int, temperature: float
) -> np.ndarray:
    """Each label's mean of ``exp(temperature * (cosine - 1))`` over its examples, normalised per message.

    ``similarities`` has one column per example; a label without examples gets 0.
    """
    weights = np.exp(temperature * (similarities.astype(np.float64) - 1.0))
    onehot = np.zeros((len(example_labels), n_classes))
    onehot[np.arange(len(example_labels)), example_labels] = 1.0
    counts = onehot.sum(axis=0)
    votes = (weights @ onehot) / np.maximum(counts, 1.0)
    return votes / np.maximum(votes.sum(axis=1, keepdims=True), MIN_PROBABILITY)


def calibrate(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(p) / temperature)`` per row: above 1 softens, below 1 sharpens, 1 leaves p as is."""
    logits = np.log(np.maximum(probabilities, MIN_PROBABILITY)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    return logits / logits.sum(axis=1, keepdims=True)
