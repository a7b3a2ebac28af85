"""Compositions: the ``model`` spelling, and the composite adapter's weights against the weighted sum of its
parts' deltas, computed independently from the parts' files (real PEFT adapters)."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lora_registry import (
    AdapterRegistration,
    AdapterRegistry,
    AdapterSpec,
    BaseModelInfo,
    ComposePart,
    SqliteAdapterStore,
)
from lora_registry.composite import WeightedAdapter, composite_rank, content_key, write_composite
from lora_registry.composition import CompositionError, composition_name, parse_composition
from lora_registry.store import SCHEMA
from lora_registry.validation import validate_adapter_folder
from tests.lora_registry.crafting import LORA_PREFIX, edit_config, make_registry


@pytest.mark.parametrize(
    ("model", "parts", "name"),
    [
        ("sql+extract", [("sql", 0.5), ("extract", 0.5)], "sql:0.5+extract:0.5"),
        ("sql:0.7+extract:0.3", [("sql", 0.7), ("extract", 0.3)], "sql:0.7+extract:0.3"),
        ("sql:1.0", [("sql", 1.0)], "sql:1"),
        ("sql:0+extract:1", [("sql", 0.0), ("extract", 1.0)], "sql:0+extract:1"),
        ("a.b_c-1:2.5e-1+d:1", [("a.b_c-1", 0.25), ("d", 1.0)], "a.b_c-1:0.25+d:1"),
    ],
)
def test_compositions_parse_to_their_parts(model: str, parts: list[tuple[str, float]], name: str) -> None:
    parsed = parse_composition(model)
    assert parsed == tuple(ComposePart(adapter=adapter, weight=weight) for adapter, weight in parts)
    assert composition_name(parsed) == name


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("a+b+c+d+e", "1 to 4 are allowed"),
        ("a:1+b", "weigh every part"),
        ("a:-0.5+b:1", "at least 0"),
        ("a:nan+b:1", "finite"),
        ("a:inf", "finite"),
        ("a:1e999", "finite"),
        ("a:x", "not a number"),
        ("a:", "not a number"),
        ("a+a", "more than once"),
        ("a:0+b:0", "every part 0"),
        ("+a", "not an adapter name"),
        ("a+b/c", "not an adapter name"),
    ],
)
def test_bad_compositions_are_refused_naming_the_model_field(model: str, says: str) -> None:
    with pytest.raises(CompositionError, match=says) as refused:
        parse_composition(model)
    assert (refused.value.status_code, refused.value.param, refused.value.code) == (
        400,
        "model",
        "invalid_composition",
    )


def _parts(registry: AdapterRegistry, adapter_root: Path) -> list[AdapterSpec]:
    # gamma becomes an rsLoRA (scale alpha/sqrt(r)) that does not adapt layer 0's q_proj: the composite must
    # scale each part by its own rule and hold zeros where a part has no module.
    gamma = adapter_root / "gamma"
    edit_config(gamma, use_rslora=True)
    tensors = load_file(str(gamma / "adapter_model.safetensors"))
    dropped = {k: v for k, v in tensors.items() if ".layers.0.self_attn.q_proj." not in k}
    assert len(dropped) == len(tensors) - 2
    save_file(dropped, str(gamma / "adapter_model.safetensors"), metadata={"format": "pt"})
    return [registry.register(AdapterRegistration(name=n, path=n)) for n in ("alpha", "beta", "gamma")]


def _expected_delta(parts: list[WeightedAdapter], module: str) -> torch.Tensor:
    """Σ wᵢ·sᵢ·Bᵢ·Aᵢ from the parts' own files, in float64."""
    total = None
    for part in parts:
        config = json.loads((part.spec.path / "adapter_config.json").read_text())
        rank = config["r"]
        scale = config["lora_alpha"] / (math.sqrt(rank) if config.get("use_rslora") else rank)
        tensors = load_file(str(part.spec.path / "adapter_model.safetensors"))
        key = f"{LORA_PREFIX}{module}.lora_"
        if key + "A.weight" not in tensors:
            continue
        delta = part.weight * scale * tensors[key + "B.weight"].double() @ tensors[key + "A.weight"].double()
        total = delta if total is None else total + delta
    assert total is not None
    return total


@pytest.mark.parametrize("weights", [(0.7, 0.3), (0.5, 0.3, 0.2)], ids=["two-parts", "three-parts"])
def test_a_composite_holds_the_weighted_sum_of_its_parts_deltas(
    registry: AdapterRegistry, adapter_root: Path, base_info: BaseModelInfo, weights: tuple[float, ...]
) -> None:
    specs = _parts(registry, adapter_root)
    parts = [WeightedAdapter(spec, weight) for spec, weight in zip(specs, weights, strict=False)]
    rank = composite_rank(parts, base_model=base_info.name, max_rank=32)
    assert rank == {2: 16, 3: 32}[len(parts)]  # 8 + 8, and 8 + 8 + 8 padded to a rank vLLM takes

    folder = write_composite(parts, rank, adapter_root / ".compositions" / content_key(parts)[:32])

    config = json.loads((folder / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["use_rslora"]) == (rank, rank, False)
    assert json.loads((folder / "composition.json").read_text()) == [
        {"adapter": p.spec.name, "weight": p.weight, "rank": 8, "path": str(p.spec.path)} for p in parts
    ]
    # The engine's own checks: shapes against the base model, the rank against the limit.
    validated = validate_adapter_folder(str(folder), adapter_root=adapter_root, base=base_info, max_rank=32)
    assert validated.rank == rank
    composite = load_file(str(folder / "adapter_model.safetensors"))
    modules = {key[len(LORA_PREFIX) : -len(".lora_A.weight")] for key in composite if ".lora_A." in key}
    assert len(modules) == 30 * 3 and "model.layers.0.self_attn.q_proj" in modules
    for module in modules:
        got = composite[f"{LORA_PREFIX}{module}.lora_B.weight"].double()
        got = got @ composite[f"{LORA_PREFIX}{module}.lora_A.weight"].double()
        want = _expected_delta(parts, module)
        # float32 storage: one rounding of each scaled entry.
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6 * want.abs().max().item())


def test_content_keys_follow_weights_and_files_and_a_second_write_keeps_the_first(
    registry: AdapterRegistry, adapter_root: Path
) -> None:
    alpha, beta, _ = _parts(registry, adapter_root)
    one = [WeightedAdapter(alpha, 0.5), WeightedAdapter(beta, 0.5)]
    assert content_key(one) == content_key(list(one))
    assert content_key(one) != content_key([WeightedAdapter(alpha, 0.5), WeightedAdapter(beta, 0.6)])
    assert content_key(one) != content_key(one[::-1])
    folder = write_composite(one, 16, adapter_root / ".compositions" / "x")
    written = (folder / "adapter_model.safetensors").stat().st_mtime_ns
    assert write_composite(one, 16, folder) == folder
    assert (folder / "adapter_model.safetensors").stat().st_mtime_ns == written
    before = content_key(one)
    edit_config(beta.path, lora_alpha=32)  # the same registration, other files: another composite
    assert content_key(one) != before


def test_a_composite_over_the_rank_limit_or_across_base_models_is_refused(
    registry: AdapterRegistry, adapter_root: Path, base_info: BaseModelInfo
) -> None:
    alpha, beta, gamma = _parts(registry, adapter_root)
    three = [WeightedAdapter(spec, 1.0) for spec in (alpha, beta, gamma)]
    with pytest.raises(CompositionError, match=r"alpha 8 \+ beta 8 \+ gamma 8 = 24, served as 32") as refused:
        composite_rank(three, base_model=base_info.name, max_rank=16)
    assert refused.value.param == "model"
    other = WeightedAdapter(alpha.model_copy(update={"base_model": "another-model"}), 1.0)
    with pytest.raises(CompositionError, match="share the base model"):
        composite_rank([other, WeightedAdapter(beta, 1.0)], base_model=base_info.name, max_rank=32)


def test_a_registered_composition_persists_and_goes_with_a_part(
    registry: AdapterRegistry,
    store: SqliteAdapterStore,
    db_path: Path,
    adapter_root: Path,
    base_info: BaseModelInfo,
) -> None:
    for name in ("alpha", "beta"):
        registry.register(AdapterRegistration(name=name, path=name))
    compose = [ComposePart(adapter="alpha", weight=0.7), ComposePart(adapter="beta", weight=0.3)]
    blend = registry.register(AdapterRegistration(name="blend", compose=compose))
    assert blend.composition == compose and blend.rank == 16
    assert blend.path.parent == (adapter_root / ".compositions").resolve()

    reopened = SqliteAdapterStore(db_path)
    try:
        assert make_registry(reopened, adapter_root, base_info).get("blend") == blend
    finally:
        reopened.close()

    removed = registry.unregister("beta")
    assert [spec.name for spec in removed] == ["beta", "blend"]
    assert registry.names() == ["alpha"] and [spec.name for spec in store.list()] == ["alpha"]


def test_a_registry_file_from_before_compositions_opens_with_its_adapters(tmp_path: Path) -> None:
    old = tmp_path / "old.sqlite3"
    with sqlite3.connect(old) as conn:
        conn.execute(SCHEMA.replace(",\n    composition TEXT", ""))
        conn.execute(
            "INSERT INTO adapters (name, path, base_model, rank, alpha, target_modules, size_bytes, "
            "description, defaults, examples, created_at) VALUES "
            "('sql', '/a/sql', 'm', 8, 16, '[\"q_proj\"]', 1, '', '{}', '[]', 0)"
        )
    conn.close()
    store = SqliteAdapterStore(old)
    try:
        (spec,) = store.list()
        assert spec.name == "sql" and spec.composition is None
    finally:
        store.close()
