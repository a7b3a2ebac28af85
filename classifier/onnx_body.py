"""The sentence-embedding body as an ONNX graph, run by ONNX Runtime: routing's fast path.

On a 2-core CPU, ONNX Runtime runs the MiniLM body about twice as fast as eager torch for one short message
(see `lora-router bench router`). The graph is exported from the trained body when a classifier is saved,
so it is covered by the artifact's manifest hash like every other file.

Only BERT-style bodies with mean pooling and normalisation export (all-MiniLM-L6-v2 is one); others keep
the torch path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling
from torch import nn

if TYPE_CHECKING:
    from transformers import PreTrainedConfig, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

ONNX_FILE = "body.onnx"
OPSET = 17
INPUTS = ("input_ids", "attention_mask")


class UnsupportedBody(ValueError):
    """The body is not a BERT-style encoder with mean pooling and normalisation."""


class _Layers(Protocol):
    layer: nn.ModuleList


class BertLike(Protocol):
    """What export and truncation use of a BERT-style transformers model; `bert_of` checks the parts it
    can see before returning one."""

    embeddings: nn.Module
    encoder: _Layers
    config: PreTrainedConfig

    def set_attn_implementation(self, attn_implementation: str) -> None: ...


class PooledFeatures(nn.Module):
    """Embeddings → encoder layers → per chosen layer a masked mean, L2-normalised → their concatenation,
    L2-normalised. Written without the data-dependent Python branches of transformers' mask helpers, which
    tracing would freeze to the example's shape; the torch backend runs this same module, so both backends
    compute the same features.

    ``pooled_layers`` counts encoder layers from 1; pooling a middle layer beside the last keeps more of the
    message's wording than the last layer alone, which routes noticeably better from few examples.
    """

    def __init__(self, bert: BertLike, pooled_layers: Sequence[int]) -> None:
        super().__init__()
        self.bert = bert
        self.pooled_layers = tuple(pooled_layers)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert.embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids))
        mask = attention_mask.to(hidden.dtype)
        additive = (1.0 - mask[:, None, None, :]) * torch.finfo(hidden.dtype).min
        weights = mask.unsqueeze(-1)
        pooled = []
        for number, layer in enumerate(self.bert.encoder.layer[: max(self.pooled_layers)], start=1):
            hidden = layer(hidden, attention_mask=additive)
            if isinstance(hidden, tuple):
                hidden = hidden[0]
            if number in self.pooled_layers:
                mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
                pooled.append(nn.functional.normalize(mean, dim=-1))
        return nn.functional.normalize(torch.cat(pooled, dim=-1), dim=-1)


def bert_of(body: SentenceTransformer) -> BertLike:
    modules = list(body)
    pooling = next((m for m in modules if isinstance(m, Pooling)), None)
    bert = getattr(modules[0], "auto_model", None) if modules else None
    if (
        bert is None
        or not hasattr(bert, "embeddings")
        or not hasattr(getattr(bert, "encoder", None), "layer")
        or pooling is None
        or pooling.pooling_mode != "mean"
        or not any(isinstance(m, Normalize) for m in modules)
    ):
        raise UnsupportedBody("only BERT-style bodies with mean pooling and normalisation export to ONNX")
    return bert


def layer_count(body: SentenceTransformer) -> int:
    return len(bert_of(body).encoder.layer)


def truncate_layers(body: SentenceTransformer, layers: int) -> None:
    """Keep the first ``layers`` transformer layers of a BERT-style body (in place)."""
    bert = bert_of(body)
    available = len(bert.encoder.layer)
    if not 1 <= layers <= available:
        raise ValueError(f"body_layers must be from 1 to {available}, got {layers}")
    bert.encoder.layer = bert.encoder.layer[:layers]
    bert.config.num_hidden_layers = layers


def export_onnx(body: SentenceTransformer, pooled_layers: Sequence[int], path: Path) -> None:
    """Write ``body`` as an ONNX graph taking ``input_ids`` and ``attention_mask`` (int64, any batch and
    length) and returning `PooledFeatures`; raises `UnsupportedBody` for other bodies."""
    bert = bert_of(body)
    previous = bert.config._attn_implementation
    # The eager attention path adds the mask as given; the fused paths pick kernels by input shape.
    bert.set_attn_implementation("eager")
    encoder = PooledFeatures(bert, pooled_layers).eval()
    sample = body.tokenizer(["an example message"], return_tensors="pt")
    dynamic = {0: "batch", 1: "tokens"}
    try:
        torch.onnx.export(
            encoder,
            (sample["input_ids"], sample["attention_mask"]),
            str(path),
            input_names=list(INPUTS),
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": dynamic,
                "attention_mask": dynamic,
                "sentence_embedding": {0: "batch"},
            },
            opset_version=OPSET,
            dynamo=False,
        )
    finally:
        bert.set_attn_implementation(previous)
        # export() restores the wrapper's own training flag recursively; the body must stay in eval mode.
        body.eval()


class OnnxEncoder:
    """Encodes texts with the exported graph; ``threads`` bounds ONNX Runtime's intra-op pool."""

    def __init__(
        self,
        path: Path,
        tokenizer: PreTrainedTokenizerBase,
        *,
        threads: int = 1,
        max_tokens: int | None = 256,
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._tokenizer = tokenizer
        self._max_tokens = max_tokens

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        features = self._tokenizer(
            list(texts), padding=True, truncation=True, max_length=self._max_tokens, return_tensors="np"
        )
        feeds = {name: features[name].astype(np.int64) for name in INPUTS}
        return self._session.run(None, feeds)[0].astype(np.float32, copy=False)
