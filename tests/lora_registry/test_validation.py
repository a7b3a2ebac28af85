"""Every way an adapter folder is refused: each error names its field and leaves the registry unchanged.

Bad adapters are copies of real PEFT adapters with an edited config or rewritten safetensors weights.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from safetensors.torch import load_file as load_torch
from safetensors.torch import save_file as save_torch

from lora_registry import (
    AdapterPathError,
    AdapterRegistration,
    AdapterRegistry,
    AdapterValidationError,
    BaseModelInfo,
    validate_adapter_folder,
)
from tests.lora_registry.crafting import (
    LORA_PREFIX,
    assert_refused,
    copy_adapter,
    edit_config,
    lora_pair,
    write_weights,
)

Q_PROJ = "model.layers.0.self_attn.q_proj"


@pytest.fixture
def populated(registry: AdapterRegistry) -> AdapterRegistry:
    """A registry already holding one adapter, so "unchanged" is not trivially an empty list."""
    registry.register(AdapterRegistration(name="alpha", path="alpha"))
    return registry


@pytest.fixture
def outside(tmp_path: Path, adapter_library: Path) -> Path:
    """A valid adapter that lies outside the adapter root."""
    return copy_adapter(adapter_library, "beta", tmp_path / "outside")


def refuse_path(registry: AdapterRegistry, path: str, *says: str) -> None:
    assert_refused(
        registry,
        AdapterRegistration(name="x", path=path),
        AdapterPathError,
        param="path",
        status_code=400,
        says=says,
    )


def refuse_content(registry: AdapterRegistry, path: str, param: str, *says: str) -> AdapterValidationError:
    err = assert_refused(
        registry,
        AdapterRegistration(name="x", path=path),
        AdapterValidationError,
        param=param,
        status_code=422,
        says=says,
    )
    assert isinstance(err, AdapterValidationError)
    return err


# --- path ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["../outside", "beta/../../outside", "alpha/../beta", "..\\outside", ".."])
def test_dotdot_component_is_refused(populated: AdapterRegistry, outside: Path, path: str) -> None:
    refuse_path(populated, path, "'..'")


def test_absolute_path_outside_root_is_refused(populated: AdapterRegistry, outside: Path) -> None:
    refuse_path(populated, str(outside), "outside the adapter root")


def test_absolute_path_outside_root_does_not_reveal_existence(
    populated: AdapterRegistry, tmp_path: Path
) -> None:
    refuse_path(populated, str(tmp_path / "no-such-folder"), "outside the adapter root")


def test_symlinked_folder_escaping_root_is_refused(
    populated: AdapterRegistry, adapter_root: Path, outside: Path
) -> None:
    (adapter_root / "escape").symlink_to(outside, target_is_directory=True)
    refuse_path(populated, "escape", "outside the adapter root")


def test_symlinked_file_escaping_root_is_refused(
    populated: AdapterRegistry, adapter_root: Path, adapter_library: Path, outside: Path
) -> None:
    leaky = copy_adapter(adapter_library, "gamma", adapter_root / "leaky")
    (leaky / "adapter_model.safetensors").unlink()
    # The target is a perfectly valid weights file: what is refused is where it lives.
    (leaky / "adapter_model.safetensors").symlink_to(outside / "adapter_model.safetensors")
    refuse_path(populated, "leaky", "adapter_model.safetensors", "link leading outside")


def test_symlinked_subfolder_escaping_root_is_refused(
    populated: AdapterRegistry, adapter_root: Path, outside: Path
) -> None:
    (adapter_root / "gamma" / "extra").symlink_to(outside, target_is_directory=True)
    refuse_path(populated, "gamma", "extra", "link leading outside")


def test_dangling_symlink_pointing_outside_is_refused(
    populated: AdapterRegistry, adapter_root: Path, tmp_path: Path
) -> None:
    (adapter_root / "gamma" / "notes.txt").symlink_to(tmp_path / "nowhere.txt")
    refuse_path(populated, "gamma", "notes.txt")


@pytest.mark.parametrize("path", ["missing", "HuggingFaceTB/some-lora"])
def test_missing_folder_is_refused(populated: AdapterRegistry, path: str) -> None:
    # A hub id reads as a folder name; it is looked for under the root and never fetched.
    refuse_path(populated, path, "does not exist")


@pytest.mark.parametrize(
    "path",
    ["https://huggingface.co/org/some-lora", "http://10.0.0.1/a", "file:///etc", "FILE://alpha", "s3://b/a"],
)
def test_urls_are_refused_as_remote(populated: AdapterRegistry, path: str) -> None:
    refuse_path(populated, path, "remote adapter sources are off")


@pytest.mark.parametrize("path", ["", "   ", "alpha\x00", "\x00"])
def test_empty_or_nul_path_is_refused(populated: AdapterRegistry, path: str) -> None:
    refuse_path(populated, path)


def test_file_instead_of_folder_is_refused(populated: AdapterRegistry) -> None:
    refuse_path(populated, "alpha/adapter_config.json", "not a folder")


@pytest.mark.parametrize("path", [".", "./"])
def test_adapter_root_itself_is_refused(populated: AdapterRegistry, path: str) -> None:
    refuse_path(populated, path, "adapter root itself")


# --- adapter_config.json ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "param", "says"),
    [
        ({"peft_type": "IA3"}, "adapter_config.peft_type", ("'IA3'", "LORA")),
        ({"peft_type": None}, "adapter_config.peft_type", ("None",)),
        ({"r": 32}, "adapter_config.r", ("32", "16")),
        ({"r": 0}, "adapter_config.r", ("from 1 to 16",)),
        ({"r": "8"}, "adapter_config.r", ("'8'",)),
        ({"r": True}, "adapter_config.r", ("True",)),
        ({"lora_alpha": 0}, "adapter_config.lora_alpha", ("positive",)),
        ({"lora_alpha": None}, "adapter_config.lora_alpha", ("positive",)),
        ({"use_dora": True}, "adapter_config.use_dora", ("DoRA",)),
        (
            {"modules_to_save": ["lm_head"]},
            "adapter_config.modules_to_save",
            ("lm_head", "lora-router merge"),
        ),
        (
            {"target_modules": ["q_proj", "qkv_proj", "wq"]},
            "adapter_config.target_modules",
            ("qkv_proj, wq;", "valid modules: down_proj", "v_proj"),
        ),
        ({"target_modules": r".*\.attention\.wq"}, "adapter_config.target_modules", ("matches no module",)),
        ({"target_modules": "(["}, "adapter_config.target_modules", ("not a valid regular expression",)),
        ({"target_modules": []}, "adapter_config.target_modules", ("non-empty list",)),
        ({"target_modules": None}, "adapter_config.target_modules", ("None",)),
        ({"target_modules": [1, 2]}, "adapter_config.target_modules", ("non-empty list",)),
        (
            {"base_model_name_or_path": "meta-llama/Llama-3.2-1B"},
            "adapter_config.base_model_name_or_path",
            ("Llama-3.2-1B", "SmolLM2-135M-Instruct"),
        ),
        (
            {"base_model_name_or_path": "/models/SmolLM2-360M-Instruct/"},
            "adapter_config.base_model_name_or_path",
            ("SmolLM2-360M-Instruct",),
        ),
        ({"base_model_name_or_path": 7}, "adapter_config.base_model_name_or_path", ("string",)),
    ],
)
def test_bad_config_is_refused(
    populated: AdapterRegistry,
    adapter_root: Path,
    changes: dict[str, object],
    param: str,
    says: tuple[str, ...],
) -> None:
    edit_config(adapter_root / "beta", **changes)
    refuse_content(populated, "beta", param, *says)


@pytest.mark.parametrize(
    "changes",
    [
        {"base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct"},
        {"base_model_name_or_path": "/some/where/smollm2-135m-instruct/"},
        {"base_model_name_or_path": None},
        {"target_modules": r".*\.(q_proj|v_proj|o_proj)"},
        {"target_modules": ["self_attn.q_proj", "v_proj", "model.layers.0.self_attn.o_proj"]},
        {"target_modules": "all-linear"},
        {"use_dora": False, "modules_to_save": []},
    ],
)
def test_config_variants_peft_writes_are_accepted(
    registry: AdapterRegistry, adapter_root: Path, changes: dict[str, object]
) -> None:
    edit_config(adapter_root / "beta", **changes)
    assert registry.register(AdapterRegistration(name="beta", path="beta")).rank == 8


def test_config_without_base_model_name_is_accepted(registry: AdapterRegistry, adapter_root: Path) -> None:
    file = adapter_root / "beta" / "adapter_config.json"
    config = json.loads(file.read_text())
    del config["base_model_name_or_path"]
    file.write_text(json.dumps(config))
    assert registry.register(AdapterRegistration(name="beta", path="beta")).name == "beta"


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "missing"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b"\xff\xfe", "not valid"),
    ],
)
def test_missing_or_unparsable_config_is_refused(
    populated: AdapterRegistry, adapter_root: Path, content: bytes | None, says: str
) -> None:
    file = adapter_root / "beta" / "adapter_config.json"
    if content is None:
        file.unlink()
    else:
        file.write_bytes(content)
    refuse_content(populated, "beta", "adapter_config.json", says)


# --- weights ------------------------------------------------------------------------------------------


def test_weights_for_other_dimensions_are_refused(populated: AdapterRegistry, adapter_root: Path) -> None:
    # What an adapter trained on a 1024-wide model of the same architecture looks like.
    edit_config(adapter_root / "beta", target_modules=["q_proj"])
    write_weights(adapter_root / "beta", lora_pair(Q_PROJ, rank=8, in_features=1024, out_features=1024))
    refuse_content(populated, "beta", "weights", Q_PROJ, "[8, 1024]", "[1024, 8]", "[8, 576]", "[576, 8]")


def test_weights_rank_differing_from_config_is_refused(
    populated: AdapterRegistry, adapter_root: Path
) -> None:
    write_weights(adapter_root / "beta", lora_pair(Q_PROJ, rank=4, in_features=576, out_features=576))
    refuse_content(populated, "beta", "weights", "rank 8", "[4, 576]")


def test_weights_for_module_the_base_lacks_are_refused(
    populated: AdapterRegistry, adapter_root: Path
) -> None:
    # The base has 30 layers (0..29).
    module = "model.layers.30.self_attn.q_proj"
    write_weights(adapter_root / "beta", lora_pair(module, rank=8, in_features=576, out_features=576))
    refuse_content(populated, "beta", "weights", module, "does not have")


def test_lora_a_without_lora_b_is_refused(populated: AdapterRegistry, adapter_root: Path) -> None:
    tensors = lora_pair(Q_PROJ, rank=8, in_features=576, out_features=576)
    del tensors[f"{LORA_PREFIX}{Q_PROJ}.lora_B.weight"]
    write_weights(adapter_root / "beta", tensors)
    refuse_content(populated, "beta", "weights", Q_PROJ, "no lora_B")


def test_weights_without_lora_tensors_are_refused(populated: AdapterRegistry, adapter_root: Path) -> None:
    write_weights(adapter_root / "beta", {})
    refuse_content(populated, "beta", "weights", "no LoRA weights")


def test_integer_weights_are_refused(populated: AdapterRegistry, adapter_root: Path) -> None:
    tensors = lora_pair(Q_PROJ, rank=8, in_features=576, out_features=576)
    tensors[f"{LORA_PREFIX}{Q_PROJ}.lora_A.weight"] = np.zeros((8, 576), dtype=np.int8)
    write_weights(adapter_root / "beta", tensors)
    refuse_content(populated, "beta", "weights", "I8")


@pytest.mark.parametrize(
    "key",
    [
        f"{LORA_PREFIX}model.embed_tokens.lora_embedding_A",
        f"{LORA_PREFIX}lm_head.modules_to_save.default.weight",
        f"{LORA_PREFIX}{Q_PROJ}.lora_A.default.weight",
        f"{LORA_PREFIX}{Q_PROJ}.lora_B.bias",
        f"{Q_PROJ}.weight",
    ],
)
def test_foreign_tensor_key_is_refused(populated: AdapterRegistry, adapter_root: Path, key: str) -> None:
    weights = adapter_root / "beta" / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    tensors[key] = np.zeros((8, 576), dtype=np.float32)
    write_weights(adapter_root / "beta", tensors)
    refuse_content(populated, "beta", "weights", repr(key))


class _RunsCodeWhenUnpickled:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return Path.touch, (self.marker,)


@pytest.mark.parametrize("file_name", ["adapter_model.bin", "adapter_model.pt", "weights.pth", "state.pkl"])
def test_pickled_weights_are_refused_unopened(
    populated: AdapterRegistry,
    adapter_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    file_name: str,
) -> None:
    folder = adapter_root / "beta"
    (folder / "adapter_model.safetensors").unlink()
    marker = tmp_path / "pickle-ran"
    (folder / file_name).write_bytes(pickle.dumps(_RunsCodeWhenUnpickled(marker)))

    opened: list[str] = []
    real_open = io.open

    def spy(file: object, *args: object, **kwargs: object) -> object:
        opened.append(os.fspath(file) if isinstance(file, str | os.PathLike) else repr(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", spy)
    monkeypatch.setattr(builtins, "open", spy)
    refuse_content(populated, "beta", "weights", file_name, "only safetensors")
    monkeypatch.undo()

    assert not any(name.endswith(file_name) for name in opened), opened
    assert any(name.endswith("adapter_config.json") for name in opened), "the spy saw no open at all"
    assert not marker.exists()


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _huge_header_length(data: bytes) -> bytes:
    return struct.pack("<Q", len(data) * 4) + data[8:]


def _bad_json(data: bytes) -> bytes:
    body = b"{not json" + b" " * 16
    return struct.pack("<Q", len(body)) + body


def _header_not_object(data: bytes) -> bytes:
    return struct.pack("<Q", 2) + b"[]"


def _offsets_past_end(data: bytes) -> bytes:
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    first = next(k for k in header if k != "__metadata__")
    start, end = header[first]["data_offsets"]
    header[first]["data_offsets"] = [start + len(data), end + len(data)]
    body = json.dumps(header).encode()
    return struct.pack("<Q", len(body)) + body + data[8 + length :]


@pytest.mark.parametrize(
    ("corrupt", "says"),
    [
        (_truncate, "exceed"),
        (_huge_header_length, "truncated"),
        (_bad_json, "not valid JSON"),
        (_header_not_object, "not a JSON object"),
        (_offsets_past_end, "exceed"),
        (lambda data: data[:5], "too short"),
        (lambda data: b"", "too short"),
    ],
)
def test_corrupt_safetensors_header_is_refused(
    populated: AdapterRegistry, adapter_root: Path, corrupt: Callable[[bytes], bytes], says: str
) -> None:
    weights = adapter_root / "beta" / "adapter_model.safetensors"
    weights.write_bytes(corrupt(weights.read_bytes()))
    refuse_content(populated, "beta", "weights", "corrupt", says)


# --- accepted variants and the standalone function ----------------------------------------------------


@pytest.mark.parametrize("rank", [1, 4, 16])
def test_crafted_weights_of_any_allowed_rank_are_accepted(
    registry: AdapterRegistry, adapter_root: Path, base_info: BaseModelInfo, rank: int
) -> None:
    tensors: dict[str, np.ndarray] = {}
    for module in ("model.layers.3.mlp.down_proj", "model.layers.3.self_attn.k_proj"):
        out_features, in_features = base_info.linear_shapes[module]
        tensors |= lora_pair(module, rank=rank, in_features=in_features, out_features=out_features)
    edit_config(adapter_root / "beta", r=rank, target_modules=["down_proj", "k_proj"])
    write_weights(adapter_root / "beta", tensors)
    spec = registry.register(AdapterRegistration(name="beta", path="beta"))
    assert (spec.rank, spec.target_modules) == (rank, ["down_proj", "k_proj"])


def test_validate_adapter_folder_reports_what_it_found(adapter_root: Path, base_info: BaseModelInfo) -> None:
    found = validate_adapter_folder("gamma", adapter_root=adapter_root, base=base_info, max_rank=8)
    assert found.path == (adapter_root / "gamma").resolve()
    assert (found.rank, found.alpha, found.base_model) == (8, 64.0, base_info.name)
    assert found.target_modules == ["o_proj", "q_proj", "v_proj"]
    assert found.size_bytes == sum(f.stat().st_size for f in found.path.iterdir())

    with pytest.raises(AdapterValidationError) as err:
        validate_adapter_folder("gamma", adapter_root=adapter_root, base=base_info, max_rank=4)
    assert err.value.param == "adapter_config.r"
    assert "from 1 to 4" in err.value.message


def _rewrite_weights(folder: Path, dtype: torch.dtype, poison: float | None) -> None:
    """Store the adapter in ``dtype``, with ``poison`` written into one element of one lora_B."""
    file = folder / "adapter_model.safetensors"
    tensors = {k: v.to(dtype) for k, v in load_torch(file).items()}
    if poison is not None:
        key = sorted(k for k in tensors if "lora_B" in k)[-1]
        tensors[key].view(-1)[-1] = poison
    save_torch(tensors, file)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("poison", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused(
    populated: AdapterRegistry, adapter_root: Path, dtype: torch.dtype, poison: float
) -> None:
    _rewrite_weights(adapter_root / "beta", dtype, poison)
    refuse_content(populated, "beta", "weights", "NaN or infinite values in", "lora_B")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_largest_finite_weights_are_accepted(
    populated: AdapterRegistry, adapter_root: Path, dtype: torch.dtype
) -> None:
    _rewrite_weights(adapter_root / "beta", dtype, torch.finfo(dtype).max)
    assert populated.register(AdapterRegistration(name="x", path="beta")).name == "x"
