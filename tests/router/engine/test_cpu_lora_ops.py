"""The batched CPU LoRA ops against vLLM's own, through the real wrapper classes and the metadata vLLM's own
``update_metadata`` builds from a ``LoRAMapping``, on the real model's layer shapes.

vLLM's ops read a row without an adapter (slot -1) as the last slot. The comparisons give both wrappers one
slot more than the batches use and leave it all zero, so there the reference computes what a row without
an adapter should get (nothing); the test after them fills every slot and shows the difference.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import pytest
import torch
from vllm.config.lora import MaxLoRARanks
from vllm.lora.layers import LoRAMapping
from vllm.lora.punica_wrapper.punica_cpu import PunicaWrapperCPU

from router.engine.cpu_lora_ops import BatchedPunicaWrapperCPU, SlotProducts, expand, group_rows, shrink
from router.settings import Settings

# The ranks the service accepts: vLLM's supported ranks up to the service's largest.
MAX_RANK = Settings.model_fields["max_lora_rank"].default
RANKS = [r for r in get_args(MaxLoRARanks) if r <= MAX_RANK]
DTYPES = [torch.float32, torch.bfloat16]
TOLERANCE = {torch.float32: {"rtol": 1e-4, "atol": 1e-4}, torch.bfloat16: {"rtol": 2e-2, "atol": 3e-2}}

IDS = [11, 12, 13, 14]  # adapter ids in slots 0..3
LORA_INDEX_TO_ID = [*IDS, None]  # slot 4: the all-zero slot the reference reads for "no adapter"
BASE = 0  # a request without an adapter

# (adapter id or BASE, tokens) per request, in batch order.
BATCHES = {
    # Several tokens per request; adapter 12 in two separate runs, base rows between adapters.
    "prefill": [(12, 7), (BASE, 5), (11, 9), (12, 3), (14, 6), (BASE, 2)],
    "prefill-one-adapter": [(11, 30)],
    # One token per request, 16 requests over four adapters and the base model, interleaved.
    "decode": [([11, 12, BASE, 13, 14][i % 5], 1) for i in range(16)],
    "decode-one": [(13, 1)],
    "base-only": [(BASE, 4), (BASE, 1)],
}


@dataclass(frozen=True)
class Shapes:
    hidden: int
    qkv: tuple[int, int, int]
    intermediate: int
    vocab: int


@pytest.fixture(scope="module")
def shapes(base_model_dir: Path) -> Shapes:
    config = json.loads((base_model_dir / "config.json").read_text())
    head_dim = config["head_dim"]
    return Shapes(
        hidden=config["hidden_size"],
        qkv=(
            config["num_attention_heads"] * head_dim,
            config["num_key_value_heads"] * head_dim,
            config["num_key_value_heads"] * head_dim,
        ),
        intermediate=config["intermediate_size"],
        vocab=config["vocab_size"],
    )


def mapping(name: str, prefill: bool) -> LoRAMapping:
    requests = BATCHES[name]
    tokens = [lora for lora, count in requests for _ in range(count)]
    return LoRAMapping(tokens, [lora for lora, _ in requests], is_prefill=prefill)


def wrappers(
    lora_mapping: LoRAMapping, slot_ids: list[int | None], vocab: int
) -> tuple[PunicaWrapperCPU, BatchedPunicaWrapperCPU]:
    """vLLM's wrapper and ours, each with the metadata vLLM builds for the mapping (as its model manager
    calls it: ``max_loras`` is the slot count + 1)."""
    pair = (
        PunicaWrapperCPU(max_num_batched_tokens=256, max_batches=64, device="cpu"),
        BatchedPunicaWrapperCPU(max_num_batched_tokens=256, max_batches=64, device="cpu"),
    )
    for wrapper in pair:
        wrapper.update_metadata(lora_mapping, slot_ids, len(slot_ids) + 1, vocab)
    return pair


def stacked(
    generator: torch.Generator, out: int, inp: int, rank: int, dtype: torch.dtype, zero_last: bool
) -> torch.Tensor:
    """``[slots, 1, out, inp]`` weights as vLLM stacks them: each adapter's own rank (at most ``rank``) in
    the top-left corner, zeros around it; the last slot all zero when ``zero_last``."""
    slots = len(LORA_INDEX_TO_ID) if zero_last else len(IDS)
    weights = torch.zeros(slots, 1, out, inp)
    for slot in range(len(IDS)):
        own = max(1, rank >> slot)  # adapters of several ranks side by side
        rows, cols = (own, inp) if out == rank else (out, own)
        weights[slot, 0, :rows, :cols] = torch.randn(rows, cols, generator=generator) * 0.1
    return weights.to(dtype)


def compare(
    run: Callable[[PunicaWrapperCPU, torch.Tensor], None],
    y: torch.Tensor,
    pair: tuple[PunicaWrapperCPU, BatchedPunicaWrapperCPU],
    dtype: torch.dtype,
    adapters: bool = True,
) -> None:
    """``run`` on a copy of ``y`` with each wrapper: the same result, and a change where adapters ran."""
    expected, got = y.clone(), y.clone()
    run(pair[0], expected)
    run(pair[1], got)
    torch.testing.assert_close(got, expected, **TOLERANCE[dtype])
    assert torch.equal(got, y) is not adapters


def has_adapters(lora_mapping: LoRAMapping) -> bool:
    return any(lora != BASE for lora in lora_mapping.index_mapping)


def inputs(generator: torch.Generator, rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.randn(rows, cols, generator=generator).to(dtype)


def compare_linear(
    pair: tuple[PunicaWrapperCPU, BatchedPunicaWrapperCPU],
    generator: torch.Generator,
    inp: int,
    slices: tuple[int, ...],
    rank: int,
    dtype: torch.dtype,
    lora_mapping: LoRAMapping,
) -> None:
    tokens = len(lora_mapping.index_mapping)
    a = tuple(stacked(generator, rank, inp, rank, dtype, zero_last=True) for _ in slices)
    b = tuple(stacked(generator, out, rank, rank, dtype, zero_last=True) for out in slices)
    x = inputs(generator, tokens, inp, dtype)
    y = inputs(generator, tokens, sum(slices), dtype)
    adapters = has_adapters(lora_mapping)
    for scale in (1.0, 0.5):
        compare(lambda w, out, s=scale: w.add_lora_linear(out, x, a, b, s, slices), y, pair, dtype, adapters)

    def with_buffer(wrapper: PunicaWrapperCPU, out: torch.Tensor) -> None:
        buffer = tuple(torch.zeros(tokens, rank) for _ in slices)
        wrapper.add_lora_linear(out, x, a, b, 1.0, slices, buffer=buffer)

    compare(with_buffer, y, pair, dtype, adapters)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("batch", list(BATCHES))
@pytest.mark.parametrize("prefill", [True, False], ids=["sgmv", "bgmv"])
def test_linear_layers_match_vllm(shapes: Shapes, batch: str, prefill: bool, rank: int, dtype) -> None:
    """``add_lora_linear`` as vLLM's linear layers call it: q/k/v packed in one layer (three slices at
    offsets), gate/up (two), o and down (one); with the buffer it allocates and with one passed in."""
    generator = torch.Generator().manual_seed(rank)
    lora_mapping = mapping(batch, prefill)
    pair = wrappers(lora_mapping, LORA_INDEX_TO_ID, shapes.vocab)
    layers = [
        (shapes.hidden, shapes.qkv),
        (shapes.hidden, (shapes.intermediate, shapes.intermediate)),
        (shapes.qkv[0], (shapes.hidden,)),
        (shapes.intermediate, (shapes.hidden,)),
    ]
    for inp, slices in layers:
        compare_linear(pair, generator, inp, slices, rank, dtype, lora_mapping)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("batch", ["prefill", "decode"])
def test_shrink_then_expand_at_an_offset_matches_vllm(shapes: Shapes, batch: str, dtype) -> None:
    """The column- and row-parallel layers' path: ``add_shrink`` into a ``[slices, tokens, rank]`` buffer,
    then ``add_expand`` from ``offset_start``."""
    generator = torch.Generator().manual_seed(7)
    lora_mapping = mapping(batch, prefill=True)
    tokens = len(lora_mapping.index_mapping)
    pair = wrappers(lora_mapping, LORA_INDEX_TO_ID, shapes.vocab)
    slices = (shapes.intermediate, shapes.intermediate)
    a = tuple(stacked(generator, MAX_RANK, shapes.hidden, MAX_RANK, dtype, zero_last=True) for _ in slices)
    b = tuple(stacked(generator, s, MAX_RANK, MAX_RANK, dtype, zero_last=True) for s in slices)
    x = inputs(generator, tokens, shapes.hidden, dtype)
    y = inputs(generator, tokens, 64 + sum(slices), dtype)

    def run(wrapper: PunicaWrapperCPU, out: torch.Tensor) -> None:
        buffer = torch.zeros(len(slices), tokens, MAX_RANK)
        wrapper.add_shrink(buffer, x, a, 1.0)
        wrapper.add_expand(out, buffer, b, slices, offset_start=64, add_input=True)

    compare(run, y, pair, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("prefill", [True, False], ids=["sgmv", "bgmv"])
def test_embedding_matches_vllm(shapes: Shapes, prefill: bool, dtype) -> None:
    """``add_lora_embedding``: the embedding layer looks up each token's A row itself, then expands."""
    generator = torch.Generator().manual_seed(3)
    lora_mapping = mapping("prefill", prefill)
    tokens = len(lora_mapping.index_mapping)
    pair = wrappers(lora_mapping, LORA_INDEX_TO_ID, shapes.vocab)
    b = stacked(generator, shapes.hidden, MAX_RANK, MAX_RANK, dtype, zero_last=True)
    x = inputs(generator, tokens, MAX_RANK, dtype)
    y = inputs(generator, tokens, shapes.hidden, dtype)

    def run(wrapper: PunicaWrapperCPU, out: torch.Tensor) -> None:
        wrapper.add_lora_embedding(out, x, b, add_input=True)

    compare(run, y, pair, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("batch", ["prefill", "decode"])
def test_logits_match_vllm(shapes: Shapes, batch: str, dtype) -> None:
    """``add_lora_logits``: one row per sampled token, slots from the sampler indices; the vocabulary of
    B may be padded beyond the logits'."""
    generator = torch.Generator().manual_seed(5)
    lora_mapping = mapping(batch, prefill=True)
    rows = len(lora_mapping.prompt_mapping)
    pair = wrappers(lora_mapping, LORA_INDEX_TO_ID, shapes.vocab)
    a = stacked(generator, MAX_RANK, shapes.hidden, MAX_RANK, dtype, zero_last=True)
    b = stacked(generator, shapes.vocab + 64, MAX_RANK, MAX_RANK, dtype, zero_last=True)
    x = inputs(generator, rows, shapes.hidden, dtype)
    y = inputs(generator, rows, shapes.vocab, dtype)

    def run(wrapper: PunicaWrapperCPU, out: torch.Tensor) -> None:
        wrapper.add_lora_logits(out, x, a, b, 0.5)

    compare(run, y, pair, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_full_linear_matches_vllm(dtype) -> None:
    """``apply_lora_full_linear`` (a classifier head replaced per adapter): rows without an adapter, or
    whose adapter does not replace the head, keep the base output."""
    generator = torch.Generator().manual_seed(9)
    lora_mapping = mapping("decode", prefill=True)
    rows, inp, labels = len(lora_mapping.prompt_mapping), 64, 10
    pair = wrappers(lora_mapping, LORA_INDEX_TO_ID, 100)
    weight = stacked(generator, labels, inp, MAX_RANK, dtype, zero_last=True)
    bias = torch.randn(len(LORA_INDEX_TO_ID), labels, generator=generator).to(dtype)
    enabled = torch.tensor([True, False, True, True, False])
    x = inputs(generator, rows, inp, dtype)
    y = inputs(generator, rows, labels, dtype)

    def run(wrapper: PunicaWrapperCPU, out: torch.Tensor) -> None:
        wrapper.apply_lora_full_linear(out, x, weight, bias, enabled)

    compare(run, y, pair, dtype)


@pytest.mark.parametrize("prefill", [True, False], ids=["sgmv", "bgmv"])
def test_rows_without_an_adapter_are_left_alone_with_every_slot_full(shapes: Shapes, prefill: bool) -> None:
    """With every slot holding an adapter (no spare zero slot), base-model rows stay exactly as the base
    layer left them; vLLM's ops add the last slot's adapter to them (vLLM bug #48421)."""
    generator = torch.Generator().manual_seed(11)
    lora_mapping = mapping("prefill", prefill)
    tokens = len(lora_mapping.index_mapping)
    reference, ours = wrappers(lora_mapping, IDS, shapes.vocab)
    a = (stacked(generator, MAX_RANK, shapes.hidden, MAX_RANK, torch.float32, zero_last=False),)
    b = (stacked(generator, shapes.hidden, MAX_RANK, MAX_RANK, torch.float32, zero_last=False),)
    x = inputs(generator, tokens, shapes.hidden, torch.float32)
    y = inputs(generator, tokens, shapes.hidden, torch.float32)
    base_rows = torch.tensor([lora == BASE for lora in lora_mapping.index_mapping])

    got, vllm = y.clone(), y.clone()
    ours.add_lora_linear(got, x, a, b, 1.0, (shapes.hidden,))
    reference.add_lora_linear(vllm, x, a, b, 1.0, (shapes.hidden,))
    assert torch.equal(got[base_rows], y[base_rows])
    torch.testing.assert_close(got[~base_rows], vllm[~base_rows], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(vllm[base_rows], y[base_rows])


def test_row_groups() -> None:
    """Slots whose rows lie together are read in place; otherwise the rows with an adapter are gathered
    once, slot by slot; rows without an adapter (-1) are left out either way."""
    together = group_rows(torch.tensor([2, 2, -1, 0, 0, 0, -1, 3]))
    assert together.order is None and together.spans == ((2, 0, 2), (0, 3, 6), (3, 7, 8))
    apart = group_rows(torch.tensor([2, 2, -1, 0, 2, -1, -1, 3]))
    assert apart.order is not None and apart.order.tolist() == [3, 0, 1, 4, 7]
    assert apart.spans == ((0, 0, 1), (2, 1, 4), (3, 4, 5))
    x = torch.arange(8.0).unsqueeze(1)
    assert apart.gather(x).squeeze(1).tolist() == [3.0, 0.0, 1.0, 4.0, 7.0]
    for none in (torch.tensor([-1, -1]), torch.empty(0, dtype=torch.long)):
        assert group_rows(none).spans == ()


def test_empty_batch() -> None:
    """No rows: nothing to do, nothing fails."""
    a = torch.randn(2, 1, 8, 32)
    b = torch.randn(2, 1, 32, 8)
    buffer, y = torch.zeros(0, 8), torch.zeros(0, 32)
    groups = group_rows(torch.empty(0, dtype=torch.long))
    products = SlotProducts()
    shrink(products, buffer, groups.gather(torch.zeros(0, 32)), a, groups, 1.0)
    expand(products, y, groups.gather(buffer), b, groups, 0, None, add_inputs=True)
    assert y.shape == (0, 32)


@pytest.mark.parametrize("prefill", [True, False], ids=["sgmv", "bgmv"])
def test_an_adapter_loaded_into_a_slot_is_used_at_once(shapes: Shapes, prefill: bool) -> None:
    """vLLM writes a newly loaded adapter into the stacked weights in place (``set_lora``); the next step
    multiplies with the new weights, as vLLM's ops do."""
    generator = torch.Generator().manual_seed(17)
    lora_mapping = mapping("decode", prefill)
    tokens = len(lora_mapping.index_mapping)
    pair = wrappers(lora_mapping, LORA_INDEX_TO_ID, shapes.vocab)
    slices = (shapes.hidden,)
    a = (stacked(generator, MAX_RANK, shapes.hidden, MAX_RANK, torch.float32, zero_last=True),)
    b = (stacked(generator, shapes.hidden, MAX_RANK, MAX_RANK, torch.float32, zero_last=True),)
    x = inputs(generator, tokens, shapes.hidden, torch.float32)
    y = inputs(generator, tokens, shapes.hidden, torch.float32)
    run = lambda wrapper, out: wrapper.add_lora_linear(out, x, a, b, 1.0, slices)  # noqa: E731
    compare(run, y, pair, torch.float32)
    # As set_lora does: copy into a view of one slot.
    a[0][1, 0].copy_(torch.randn(MAX_RANK, shapes.hidden, generator=generator))
    b[0][1, 0, :, :4].zero_()
    compare(run, y, pair, torch.float32)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_a_request_gets_the_same_result_alone_and_in_any_batch(shapes: Shapes, dtype) -> None:
    """Bit for bit: a decode row alone, and a 30-token prompt alone, against the same rows inside mixed
    batches of other adapters and the base model (greedy answers alone == mixed depend on it)."""
    generator = torch.Generator().manual_seed(13)
    layers = [(shapes.hidden, shapes.qkv), (shapes.intermediate, (shapes.hidden,))]
    weights = [
        (
            tuple(stacked(generator, MAX_RANK, inp, MAX_RANK, dtype, zero_last=True) for _ in slices),
            tuple(stacked(generator, out, MAX_RANK, MAX_RANK, dtype, zero_last=True) for out in slices),
        )
        for inp, slices in layers
    ]
    # The request under test (adapter 12) at the front, the back, and split between others.
    for own_tokens in (1, 30):
        alone = [(12, own_tokens)]
        batches = [
            alone,
            [(12, own_tokens), (11, 3), (BASE, 2), (12, 1)],
            [(BASE, 1), (14, 7), (11, 1), (12, own_tokens)],
            [(11, 1), (12, own_tokens), (13, 1), (12, 2), (BASE, 1)],
        ]
        for (inp, slices), (a, b) in zip(layers, weights, strict=True):
            own_x = inputs(generator, own_tokens, inp, dtype)
            own_y = inputs(generator, own_tokens, sum(slices), dtype)
            results = []
            for requests in batches:
                tokens = [lora for lora, count in requests for _ in range(count)]
                start = next(i for i, (lora, count) in enumerate(requests) if (lora, count) == alone[0])
                first = sum(count for _, count in requests[:start])
                x = inputs(generator, len(tokens), inp, dtype)
                y = inputs(generator, len(tokens), sum(slices), dtype)
                x[first : first + own_tokens], y[first : first + own_tokens] = own_x, own_y
                lora_mapping = LoRAMapping(tokens, [lora for lora, _ in requests], is_prefill=True)
                _, ours = wrappers(lora_mapping, LORA_INDEX_TO_ID, shapes.vocab)
                ours.add_lora_linear(y, x, a, b, 1.0, slices)
                results.append(y[first : first + own_tokens])
            for result in results[1:]:
                assert torch.equal(result, results[0])
