"""Decide whether a PEFT LoRA folder can be served on the base model, before the engine ever sees it.

Checks run cheapest and most fundamental first (path, config, weights); each failure names the field at fault.
Weights are judged from the safetensors header alone: no tensor is loaded and no pickle file is opened.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeGuard

from lora_registry.base_model import BaseModelInfo
from lora_registry.errors import AdapterPathError, AdapterTooLargeError, AdapterValidationError
from lora_registry.safetensors_header import (
    SafetensorsHeaderError,
    TensorInfo,
    non_finite_tensors,
    read_safetensors_header,
)

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
# Loading any of these runs arbitrary code (pickle); they are refused, never opened.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl")
MAX_CONFIG_BYTES = 1024 * 1024
# PEFT's "all-linear" shorthand: every linear layer except the output head.
ALL_LINEAR = "all-linear"
FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}
LORA_KEY = re.compile(r"base_model\.model\.(?P<module>.+)\.lora_(?P<part>[AB])\.weight")


@dataclass(frozen=True)
class ValidatedAdapter:
    path: Path
    rank: int
    alpha: float
    target_modules: list[str]
    base_model: str
    size_bytes: int


def validate_adapter_folder(
    path: str, *, adapter_root: Path, base: BaseModelInfo, max_rank: int, max_bytes: int | None = None
) -> ValidatedAdapter:
    folder = resolve_adapter_path(path, adapter_root)
    # Sized before anything is read, so an oversized folder costs a directory walk, not a parse.
    size = _folder_size(folder)
    if max_bytes is not None and size > max_bytes:
        raise AdapterTooLargeError(path, size, max_bytes)
    config = _read_config(folder)
    rank, alpha = _check_config(config, base, max_rank)
    modules = _check_weights(folder, base, rank)
    return ValidatedAdapter(
        path=folder,
        rank=rank,
        alpha=alpha,
        target_modules=sorted({m.rpartition(".")[2] for m in modules}),
        base_model=base.name,
        size_bytes=size,
    )


def resolve_adapter_path(path: str, adapter_root: Path) -> Path:
    """Resolve ``path`` to an existing folder strictly inside the adapter root, with no link leading out."""
    _check_path_text(path)
    root = adapter_root.resolve()
    candidate = Path(path)
    if candidate.is_absolute():
        # Refuse before touching the filesystem, so errors never reveal what exists outside the root.
        if not any(candidate.is_relative_to(r) for r in (root, adapter_root.absolute())):
            raise AdapterPathError(f"path {path!r} is outside the adapter root {str(root)!r}")
    else:
        candidate = root / path
    try:
        folder = candidate.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise AdapterPathError(
            f"adapter folder {path!r} does not exist under the adapter root {str(root)!r} "
            "(hub ids and URLs are not fetched: copy the adapter there first)"
        ) from None
    except (OSError, RuntimeError) as exc:  # symlink loops, permissions
        raise AdapterPathError(f"adapter path {path!r} cannot be resolved: {exc}") from None
    if not folder.is_relative_to(root):
        raise AdapterPathError(f"path {path!r} resolves outside the adapter root {str(root)!r}")
    if folder == root:
        raise AdapterPathError(f"path {path!r} is the adapter root itself; name an adapter folder inside it")
    if not folder.is_dir():
        raise AdapterPathError(f"path {path!r} is not a folder")
    _refuse_links_out(folder, root, path)
    return folder


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _check_path_text(path: str) -> None:
    if not path.strip():
        raise AdapterPathError("path is empty: give the adapter folder, relative to the adapter root")
    if "\x00" in path:
        raise AdapterPathError("path contains a NUL byte")
    if _URL.match(path):
        # Nothing is ever fetched (no outbound connections); file:// is refused too, so it cannot name a
        # folder outside the root.
        raise AdapterPathError(
            f"path {path!r} is a URL; remote adapter sources are off: copy the adapter under the adapter "
            "root and give its folder"
        )
    # Backslashes too: a Windows-style "..\\x" is a traversal attempt even though POSIX reads it as one name.
    if ".." in PurePosixPath(path.replace("\\", "/")).parts:
        raise AdapterPathError(
            f"path {path!r} contains a '..' component; give a folder under the adapter root"
        )


def _refuse_links_out(folder: Path, root: Path, path: str) -> None:
    # The engine reads whatever the folder holds, so a link inside it must not reach out either.
    for dirpath, dirnames, filenames in os.walk(folder):
        for entry in (*dirnames, *filenames):
            full = Path(dirpath, entry)
            if full.is_symlink() and not Path(os.path.realpath(full)).is_relative_to(root):
                raise AdapterPathError(
                    f"{full.relative_to(folder)} in adapter folder {path!r} is a link leading outside the "
                    "adapter root"
                )


def _read_config(folder: Path) -> dict[str, object]:
    file = folder / CONFIG_FILE
    if not file.is_file():
        raise AdapterValidationError(f"{CONFIG_FILE} is missing from the adapter folder", param=CONFIG_FILE)
    if file.stat().st_size > MAX_CONFIG_BYTES:
        raise AdapterValidationError(
            f"{CONFIG_FILE} is larger than {MAX_CONFIG_BYTES} bytes", param=CONFIG_FILE
        )
    try:
        config = json.loads(file.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterValidationError(f"{CONFIG_FILE} is not valid JSON: {exc}", param=CONFIG_FILE) from None
    if not isinstance(config, dict):
        raise AdapterValidationError(f"{CONFIG_FILE} must hold a JSON object", param=CONFIG_FILE)
    return config


def _check_config(config: dict[str, object], base: BaseModelInfo, max_rank: int) -> tuple[int, float]:
    peft_type = config.get("peft_type")
    if peft_type != "LORA":
        raise AdapterValidationError(
            f"adapter_config.peft_type is {peft_type!r}; only 'LORA' adapters can be served",
            param="adapter_config.peft_type",
        )

    rank = config.get("r")
    if not _is_int(rank) or not 1 <= rank <= max_rank:
        raise AdapterValidationError(
            f"adapter_config.r is {rank!r}; it must be an integer from 1 to {max_rank} (the largest rank the "
            "engine is configured for)",
            param="adapter_config.r",
        )

    alpha = config.get("lora_alpha")
    if not isinstance(alpha, int | float) or isinstance(alpha, bool) or alpha <= 0:
        raise AdapterValidationError(
            f"adapter_config.lora_alpha is {alpha!r}; it must be a positive number",
            param="adapter_config.lora_alpha",
        )

    if config.get("use_dora"):
        raise AdapterValidationError(
            "adapter_config.use_dora is set: the engine cannot serve DoRA adapters; train a plain LoRA",
            param="adapter_config.use_dora",
        )

    if config.get("modules_to_save"):
        raise AdapterValidationError(
            f"adapter_config.modules_to_save is {config['modules_to_save']!r}: fully trained modules cannot "
            "be served as a LoRA; merge them into a new base model with `lora-router merge` instead",
            param="adapter_config.modules_to_save",
        )

    _check_target_modules(config.get("target_modules"), base)
    _check_base_name(config.get("base_model_name_or_path"), base)
    return rank, float(alpha)


def _check_target_modules(targets: object, base: BaseModelInfo) -> None:
    param = "adapter_config.target_modules"
    if targets == ALL_LINEAR:
        return
    if isinstance(targets, str):
        try:
            pattern = re.compile(targets)
        except re.error as exc:
            raise AdapterValidationError(
                f"adapter_config.target_modules {targets!r} is not a valid regular expression: {exc}",
                param=param,
            ) from None
        # PEFT matches a regex against the whole module path.
        if not any(pattern.fullmatch(m) for m in base.linear_shapes):
            raise AdapterValidationError(
                f"adapter_config.target_modules regex {targets!r} matches no module of base model "
                f"{base.name!r}",
                param=param,
            )
        return
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t for t in targets):
        raise AdapterValidationError(
            f"adapter_config.target_modules is {targets!r}; it must be a non-empty list of module names or a "
            "regular expression",
            param=param,
        )
    # PEFT also accepts a dotted suffix ("self_attn.q_proj"), matched against the end of the module path.
    unknown = [t for t in targets if not any(m == t or m.endswith("." + t) for m in base.linear_shapes)]
    if unknown:
        raise AdapterValidationError(
            f"adapter_config.target_modules names modules that base model {base.name!r} does not have: "
            f"{', '.join(unknown)}; valid modules: {', '.join(sorted(base.leaf_names))}",
            param=param,
        )


def _check_base_name(declared: object, base: BaseModelInfo) -> None:
    # Absent or empty: allowed, the weight shapes below still prove the adapter fits.
    if declared is None or declared == "":
        return
    param = "adapter_config.base_model_name_or_path"
    if not isinstance(declared, str):
        raise AdapterValidationError(f"{param} must be a string, got {declared!r}", param=param)
    # The last component covers hub ids ("org/Model") and local folders ("/models/Model/").
    if declared.rstrip("/").rpartition("/")[2].casefold() != base.name.casefold():
        raise AdapterValidationError(
            f"{param} is {declared!r}, but this service's base model is {base.name!r}", param=param
        )


def _check_weights(folder: Path, base: BaseModelInfo, rank: int) -> list[str]:
    """Return the module paths the adapter modifies, after checking every tensor against the base."""
    file = folder / WEIGHTS_FILE
    if not file.is_file():
        pickled = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        found = (
            f" (found {', '.join(pickled)}, which are not opened: pickle files can run code)"
            if pickled
            else ""
        )
        raise AdapterValidationError(
            f"{WEIGHTS_FILE} is missing{found}; only safetensors weights are accepted", param="weights"
        )
    try:
        tensors = read_safetensors_header(file)
    except SafetensorsHeaderError as exc:
        raise AdapterValidationError(f"corrupt weights file: {exc}", param="weights") from None

    pairs: dict[str, dict[str, TensorInfo]] = {}
    for key, info in sorted(tensors.items()):
        match = LORA_KEY.fullmatch(key)
        if match is None:
            raise AdapterValidationError(
                f"{WEIGHTS_FILE} holds unexpected tensor {key!r}; only "
                "'base_model.model.<module>.lora_A.weight' / '.lora_B.weight' tensors can be served",
                param="weights",
            )
        if info.dtype not in FLOAT_DTYPES:
            raise AdapterValidationError(
                f"tensor {key!r} has dtype {info.dtype}; LoRA weights must be one of {sorted(FLOAT_DTYPES)}",
                param="weights",
            )
        pairs.setdefault(match["module"], {})[match["part"]] = info

    if not pairs:
        raise AdapterValidationError(f"{WEIGHTS_FILE} holds no LoRA weights", param="weights")
    for module, parts in pairs.items():
        _check_pair(module, parts, base, rank)
    # Last, as the only check that reads the weights themselves: a NaN would poison every token of every
    # request sharing a batch with this adapter's.
    if bad := non_finite_tensors(file, tensors):
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        shown = ", ".join(repr(name) for name in bad[:3]) + more
        raise AdapterValidationError(f"NaN or infinite values in {shown}", param="weights")
    return list(pairs)


def _check_pair(module: str, parts: dict[str, TensorInfo], base: BaseModelInfo, rank: int) -> None:
    if module not in base.linear_shapes:
        raise AdapterValidationError(
            f"{WEIGHTS_FILE} adapts module {module!r}, which base model {base.name!r} does not have "
            "(an adapter made for another model?)",
            param="weights",
        )
    if set(parts) != {"A", "B"}:
        missing = "lora_B" if "A" in parts else "lora_A"
        raise AdapterValidationError(f"module {module!r} has no {missing} weight", param="weights")
    out_features, in_features = base.linear_shapes[module]
    expected_a, expected_b = (rank, in_features), (out_features, rank)
    got_a, got_b = parts["A"].shape, parts["B"].shape
    if got_a != expected_a or got_b != expected_b:
        raise AdapterValidationError(
            f"module {module!r}: lora_A is {list(got_a)} and lora_B is {list(got_b)}, but rank {rank} on "
            f"base model {base.name!r} needs lora_A {list(expected_a)} and lora_B {list(expected_b)} "
            "(an adapter made for another model?)",
            param="weights",
        )


def _folder_size(folder: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            file = Path(dirpath, name)
            if file.is_file():
                total += file.stat().st_size
    return total


def _is_int(value: object) -> TypeGuard[int]:
    # bool is an int subclass; JSON `true` is no rank.
    return isinstance(value, int) and not isinstance(value, bool)
