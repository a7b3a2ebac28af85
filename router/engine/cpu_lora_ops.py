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
class SlotRows:
    """The rows of one batch that use one LoRA slot: a run of rows when they are adjacent (a view, no
    copies), else their indices."""

    slot: int
    rows: slice | torch.Tensor


def group_rows(indices: torch.Tensor) -> list[SlotRows]:
    """The rows of each slot in ``indices`` (one slot per row, -1 for no adapter), skipping -1."""
    slots, counts = torch.unique_consecutive(indices, return_counts=True)
    runs: dict[int, list[tuple[int, int]]] = {}
    start = 0
    for slot, count in zip(slots.tolist(), counts.tolist(), strict=True):
        if slot >= 0:
            runs.setdefault(slot, []).append((start, start + count))
        start += count
    groups = []
    for slot, spans in runs.items():
        if len(spans) == 1:
            groups.append(SlotRows(slot, slice(*spans[0])))
        else:
            rows = torch.cat([torch.arange(a, b, device=indices.device) for a, b in spans])
            groups.append(SlotRows(slot, rows))
    return groups


def _slot_matrix(stacked: torch.Tensor, slot: int) -> torch.Tensor:
    """One slot's matrix out of ``[slots, 1, out, in]`` (or ``[slots, out, in]``) stacked weights."""
    matrix = stacked[slot]
    return matrix[0] if matrix.dim() == 3 else matrix


def _rows(x: torch.Tensor, rows: slice | torch.Tensor) -> torch.Tensor:
    return x[rows] if isinstance(rows, slice) else x.index_select(0, rows)


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
    x: torch.Tensor,
    stacked: torch.Tensor,
    groups: list[SlotRows],
    scale: float,
) -> None:
    """``y[rows, :r] = scale * x[rows] @ A[slot].T`` for each slot's rows; other rows of ``y`` untouched."""
    for group in groups:
        product = products(_rows(x, group.rows), stacked, group.slot)
        if scale != 1.0:
            product.mul_(scale)
        width = product.size(1)
        if isinstance(group.rows, slice):
            y[group.rows, :width] = product
        else:
            y[:, :width].index_copy_(0, group.rows, product.to(y.dtype))


def expand(
    products: SlotProducts,
    y: torch.Tensor,
    x: torch.Tensor,
    stacked: torch.Tensor,
    groups: list[SlotRows],
    offset: int,
    size: int | None,
    add_inputs: bool,
) -> None:
    """``y[rows, offset:offset+size] (+)= x[rows] @ B[slot].T`` for each slot's rows. Without ``size``, as
    many output columns as both ``B`` and ``y`` have (the reference ops allow vocabulary padding to
    differ). Rows without an adapter get nothing added, or zeros when not ``add_inputs``."""
    dtype = y.dtype
    if size is None:
        size = min(stacked.size(-2), y.size(1) - offset)
    target = y[:, offset : offset + size]
    if not add_inputs:
        target.zero_()
    for group in groups:
        # The reference rounds the shrunk values to the output's dtype before expanding them.
        product = products(_rows(x, group.rows).to(dtype), stacked, group.slot, size).to(dtype)
        if isinstance(group.rows, slice):
            target[group.rows] += product
        else:
            target.index_add_(0, group.rows, product)


class BatchedPunicaWrapperCPU(PunicaWrapperCPU):
    """vLLM's CPU punica wrapper, with each op grouping rows by slot (see the module's docstring).

    vLLM's own bookkeeping (``update_metadata``, the slice loops of ``add_shrink``/``add_expand``/
    ``add_lora_linear``) is inherited; only the ops underneath are replaced. The prefill (sgmv) and decode
    (bgmv) ops of the reference describe the same per-token slots two ways, so both read the same groups.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._products = SlotProducts()
        self._token_groups: list[SlotRows] = []
        self._sampler_groups: list[SlotRows] = []

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

    def _shrink_prefill(self, y: torch.Tensor, x: torch.Tensor, w_t_all: torch.Tensor, scale: float) -> None:
        shrink(self._products, y, x, w_t_all, self._token_groups, scale)

    _shrink_decode = _shrink_prefill

    def _expand_prefill(
        self, y: torch.Tensor, x: torch.Tensor, w_t_all: torch.Tensor, add_inputs: bool
    ) -> None:
        expand(self._products, y, x, w_t_all, self._token_groups, 0, None, add_inputs)

    _expand_decode = _expand_prefill

    def _expand_slice_prefill(
        self,
        y: torch.Tensor,
        x: torch.Tensor,
        w_t_all: torch.Tensor,
        y_offset: int,
        y_slice_size: int,
        add_inputs: bool,
    ) -> None:
        expand(self._products, y, x, w_t_all, self._token_groups, y_offset, y_slice_size, add_inputs)

    _expand_slice_decode = _expand_slice_prefill

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
        shrink(self._products, buffer, x, lora_a_stacked, self._sampler_groups, scale)
        expand(self._products, y, buffer, lora_b_stacked, self._sampler_groups, 0, None, add_inputs=True)

    def apply_lora_full_linear(
        self,
        y: torch.Tensor,
        x: torch.Tensor,
        weight_stacked: torch.Tensor,
        bias_stacked: torch.Tensor,
        module_enabled: torch.Tensor,
    ) -> None:
        adapter_y = torch.zeros((x.size(0), weight_stacked.size(-2)), dtype=torch.float32, device=x.device)
        shrink(self._products, adapter_y, x, weight_stacked, self._sampler_groups, 1.0)
        # Rows without an adapter keep y: the base class selects by the same sampler indices.
        y.copy_(self._select_full_linear_output(y, adapter_y, bias_stacked, module_enabled))
