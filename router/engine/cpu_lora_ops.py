"""Batched LoRA for vLLM's CPU backend: the CPU punica wrapper with its per-token ops replaced.

vLLM's CPU wrapper runs the PyTorch reference ops: for every token they gather that token's adapter
matrices and multiply one token at a time (an einsum over a ``[tokens, rank, features]`` copy of the
weights), in every LoRA layer. Here the batch's rows are grouped by adapter slot once per step, and each
slot present costs two dense matrix products per layer slice (shrink: ``x[rows] @ A[slot].T * scale``;
expand: ``buffer[rows] @ B[slot].T`` added into the output slice). Rows whose slot is -1 (no adapter) get
no LoRA work at all, where the reference ops index weight ``-1``, the last slot, and so add whichever
adapter sits there to a base-model request.

A request's result must not depend on what else is in the batch (greedy answers alone and in a mixed batch
are the same). The reference multiplies one token at a time, so it never does; a matrix product over a
slot's rows can, as BLAS kernels pick their blocking and kernels (and split the sum) by the number of rows:
torch's float32 ``mm`` (MKL) rounds a row differently below 12 rows. So every product goes through the
oneDNN matmul vLLM's CPU backend runs its own linear layers with, on a handle holding the slot's matrix
prepacked (made when first used, remade when an adapter is loaded into the stacked weights): it computes
each row alike from two rows up (measured with 1, 2 and 8 threads, AVX-512 and AVX2 kernels), and a single
row is computed as two. Products are float32 also on a bfloat16 engine, as the reference shrinks (and as
a CPU without bfloat16 instructions can); each is rounded once to the output's dtype before it is added,
as the reference expands.

Written against vLLM 0.32.0 (``vllm/lora/punica_wrapper/punica_cpu.py``); ``cpu_lora_plugin`` installs it
only on that version.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from vllm import _custom_ops as ops
from vllm.lora.punica_wrapper.punica_cpu import PunicaWrapperCPU

if TYPE_CHECKING:
    from vllm.lora.layers import LoRAMapping


@dataclass(frozen=True)
class RowGroups:
    """A batch's rows by LoRA slot, rows without an adapter left out. ``spans`` holds (slot, start, end)
    ranges of ``order``, the rows with an adapter slot by slot; ``order`` is None where those rows already
    lie slot by slot in the batch, and the spans index the batch itself (views, no copies)."""

    order: torch.Tensor | None
    spans: tuple[tuple[int, int, int], ...]

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """``x``'s rows in ``order``: one copy, shared by every slot and slice of a layer."""
        return x if self.order is None else x.index_select(0, self.order)


def group_rows(indices: torch.Tensor) -> RowGroups:
    """The rows of each slot in ``indices`` (one slot per row, -1 for no adapter)."""
    slots, counts = torch.unique_consecutive(indices, return_counts=True)
    runs: list[tuple[int, int, int]] = []
    start = 0
    for slot, count in zip(slots.tolist(), counts.tolist(), strict=True):
        if slot >= 0:
            runs.append((slot, start, start + count))
        start += count
    if len({slot for slot, _, _ in runs}) == len(runs):
        return RowGroups(None, tuple(runs))
    rows = torch.nonzero(indices >= 0).squeeze(1)
    order = rows[torch.argsort(indices[rows], stable=True)]
    spans, start = [], 0
    for slot in sorted({slot for slot, _, _ in runs}):
        count = sum(end - begin for s, begin, end in runs if s == slot)
        spans.append((slot, start, start + count))
        start += count
    return RowGroups(order, tuple(spans))


def _slot_matrix(stacked: torch.Tensor, slot: int) -> torch.Tensor:
    """One slot's matrix out of ``[slots, 1, out, in]`` (or ``[slots, out, in]``) stacked weights."""
    matrix = stacked[slot]
    return matrix[0] if matrix.dim() == 3 else matrix


class SlotProducts:
    """``x @ W.T`` for the matrices W of stacked LoRA weights, in float32, each row computed alike whatever
    the number of rows (see the module's docstring)."""

    def __init__(self) -> None:
        # id of the stacked weights -> (slot, output rows) -> (the weights' version when made, handle)
        self._handles: dict[int, dict[tuple[int, int], tuple[int, Any]]] = {}

    def _handle(self, stacked: torch.Tensor, slot: int, size: int) -> Any:  # -> ops.CPUDNNLGEMMHandler
        # Writing a slot (vLLM's set_lora / reset_lora copy into the stacked tensor) bumps its version.
        version = stacked._version
        handles = self._handles.get(id(stacked))
        if handles is None:
            handles = self._handles[id(stacked)] = {}
            # Dropped with the weights, before their id can name other ones.
            weakref.finalize(stacked, self._handles.pop, id(stacked), None)
        made = handles.get((slot, size))
        if made is None or made[0] != version:
            weight = _slot_matrix(stacked, slot)[:size].float()
            made = (version, ops.create_onednn_mm(weight.t(), 32))
            handles[(slot, size)] = made
        return made[1]

    def __call__(
        self, x: torch.Tensor, stacked: torch.Tensor, slot: int, size: int | None = None
    ) -> torch.Tensor:
        """``x @ W[slot][:size].T`` for ``W`` the stacked weights (all its output rows without ``size``)."""
        handle = self._handle(stacked, slot, size or stacked.size(-2))
        rows = x.size(0)
        # oneDNN takes another kernel for one row; two go through the one every larger batch takes.
        x = x.float().expand(max(rows, 2), -1).contiguous()
        return ops.onednn_mm(handle, x, None)[:rows]


def shrink(
    products: SlotProducts,
    y: torch.Tensor,
    rows: torch.Tensor,
    stacked: torch.Tensor,
    groups: RowGroups,
    scale: float,
) -> None:
    """``y[r, :rank] = scale * x[r] @ A[slot].T`` for each row r with an adapter; ``rows`` is
    ``groups.gather(x)``. Rows without an adapter untouched."""
    order = groups.order
    parts = []
    for slot, start, end in groups.spans:
        product = products(rows[start:end], stacked, slot)
        if scale != 1.0:
            product.mul_(scale)
        if order is None:
            y[start:end, : product.size(1)] = product
        else:
            parts.append(product)
    # Parts are gathered only when the rows were reordered.
    if order is not None and parts:
        product = torch.cat(parts)
        y[:, : product.size(1)].index_copy_(0, order, product.to(y.dtype))


def expand(
    products: SlotProducts,
    y: torch.Tensor,
    rows: torch.Tensor,
    stacked: torch.Tensor,
    groups: RowGroups,
    offset: int,
    size: int | None,
    add_inputs: bool,
) -> None:
    """``y[r, offset:offset+size] (+)= x[r] @ B[slot].T`` for each row r with an adapter; ``rows`` is
    ``groups.gather(x)``. Without ``size``, as many output columns as both ``B`` and ``y`` have (the
    reference ops allow vocabulary padding to differ). Rows without an adapter get nothing added, or zeros
    when not ``add_inputs``."""
    dtype = y.dtype
    if size is None:
        size = min(stacked.size(-2), y.size(1) - offset)
    target = y[:, offset : offset + size]
    if not add_inputs:
        target.zero_()
    # The reference rounds the shrunk values to the output's dtype before expanding them.
    rows = rows.to(dtype)
    order = groups.order
    parts = []
    for slot, start, end in groups.spans:
        product = products(rows[start:end], stacked, slot, size).to(dtype)
        if order is None:
            target[start:end] += product
        else:
            parts.append(product)
    if order is not None and parts:
        target.index_add_(0, order, torch.cat(parts))


class BatchedPunicaWrapperCPU(PunicaWrapperCPU):
    """vLLM's CPU punica wrapper, with each op grouping rows by slot (see the module's docstring).

    vLLM's own bookkeeping (``update_metadata``, ``add_lora_linear``) is inherited; every op that reaches
    the reference ops is replaced. Its prefill (sgmv) and decode (bgmv) ops describe the same per-token
    slots two ways, so one set of groups serves both. The rows of a layer's input are gathered once for
    all its slices.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._products = SlotProducts()
        self._token_groups = RowGroups(None, ())
        self._sampler_groups = RowGroups(None, ())

    def update_metadata(
        self,
        mapping: LoRAMapping,
        lora_index_to_id: list[int | None],
        max_loras: int,
        vocab_size: int,
        **kwargs: Any,
    ) -> None:
        super().update_metadata(mapping, lora_index_to_id, max_loras, vocab_size, **kwargs)
        # Once per step, not once per layer.
        self._token_groups = group_rows(self.token_lora_indices)
        self._sampler_groups = group_rows(self.sampler_indices)

    def add_shrink(
        self,
        y: tuple[torch.Tensor, ...] | torch.Tensor,
        x: torch.Tensor,
        lora_a_stacked: tuple[torch.Tensor, ...],
        scale: float,
        **kwargs: Any,
    ) -> None:
        rows = self._token_groups.gather(x.view(-1, x.shape[-1]))
        for out, stacked in zip(y, lora_a_stacked, strict=True):
            shrink(self._products, out.view(-1, out.shape[-1]), rows, stacked, self._token_groups, scale)

    def add_expand(
        self,
        y: torch.Tensor,
        x: tuple[torch.Tensor, ...] | torch.Tensor,
        lora_b_stacked: tuple[torch.Tensor, ...],
        output_slices: tuple[int, ...],
        offset_start: int = 0,
        add_inputs: bool = True,
        **kwargs: Any,
    ) -> None:
        y = y.view(-1, y.shape[-1])
        offset = offset_start
        for rows, stacked, size in zip(x, lora_b_stacked, output_slices, strict=True):
            groups = self._token_groups
            expand(self._products, y, groups.gather(rows), stacked, groups, offset, size, add_inputs)
            offset += size

    def add_lora_embedding(
        self,
        y: torch.Tensor,
        x: torch.Tensor,
        lora_b_stacked: torch.Tensor,
        add_inputs: bool = True,
        **kwargs: Any,
    ) -> None:
        groups = self._token_groups
        expand(self._products, y, groups.gather(x), lora_b_stacked, groups, 0, None, add_inputs)

    def add_lora_logits(
        self,
        y: torch.Tensor,
        x: torch.Tensor,
        lora_a_stacked: torch.Tensor,
        lora_b_stacked: torch.Tensor,
        scale: float,
        *,
        buffer: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> None:
        y = y.view(-1, y.shape[-1])
        x = x.view(-1, x.shape[-1])
        if buffer is None:
            # float32, as the reference and the Triton op
            buffer = torch.zeros((x.size(0), lora_b_stacked.size(-1)), dtype=torch.float32, device=x.device)
        groups = self._sampler_groups
        shrink(self._products, buffer, groups.gather(x), lora_a_stacked, groups, scale)
        expand(self._products, y, groups.gather(buffer), lora_b_stacked, groups, 0, None, add_inputs=True)

    def apply_lora_full_linear(
        self,
        y: torch.Tensor,
        x: torch.Tensor,
        weight_stacked: torch.Tensor,
        bias_stacked: torch.Tensor,
        module_enabled: torch.Tensor,
    ) -> None:
        adapter_y = torch.zeros((x.size(0), weight_stacked.size(-2)), dtype=torch.float32, device=x.device)
        groups = self._sampler_groups
        shrink(self._products, adapter_y, groups.gather(x), weight_stacked, groups, 1.0)
        # Rows without an adapter keep y: the base class selects by the same sampler indices.
        y.copy_(self._select_full_linear_output(y, adapter_y, bias_stacked, module_enabled))
