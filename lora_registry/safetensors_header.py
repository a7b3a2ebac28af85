"""Read a safetensors header without loading any tensor data (and without torch).

The format is an 8-byte little-endian header length, a JSON object mapping tensor names to
``{"dtype", "shape", "data_offsets"}`` (plus an optional ``__metadata__``), then the raw data.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

# The safetensors library refuses larger headers too; it also bounds what an uploaded file can make us read.
MAX_HEADER_BYTES = 100 * 1024 * 1024

DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4,
    "U64": 8, "I64": 8, "F64": 8,
}  # fmt: skip


class SafetensorsHeaderError(ValueError):
    """The file is not a well-formed safetensors file."""


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    # Where the tensor's bytes lie in the file (absolute offsets, end exclusive).
    start: int = 0
    end: int = 0


def read_safetensors_header(path: Path) -> dict[str, TensorInfo]:
    """Map tensor name -> dtype/shape, after checking that every tensor's bytes lie inside the file."""
    file_size = path.stat().st_size
    with path.open("rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise SafetensorsHeaderError(f"{path.name}: file is {file_size} bytes, too short for a header")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > min(file_size - 8, MAX_HEADER_BYTES):
            raise SafetensorsHeaderError(
                f"{path.name}: header claims {header_len} bytes but the file holds {file_size} (truncated?)"
            )
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SafetensorsHeaderError(f"{path.name}: header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise SafetensorsHeaderError(f"{path.name}: header is not a JSON object")

    data_size = file_size - 8 - header_len
    tensors: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        tensors[name] = _parse_entry(path.name, name, entry, data_size, data_start=8 + header_len)
    return tensors


def _parse_entry(file_name: str, name: str, entry: object, data_size: int, *, data_start: int) -> TensorInfo:
    if not isinstance(entry, dict):
        raise SafetensorsHeaderError(f"{file_name}: entry for tensor {name!r} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or not dtype:
        raise SafetensorsHeaderError(f"{file_name}: tensor {name!r} has invalid dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise SafetensorsHeaderError(f"{file_name}: tensor {name!r} has invalid shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)):
        raise SafetensorsHeaderError(f"{file_name}: tensor {name!r} has invalid data_offsets {offsets!r}")
    start, end = offsets
    if not start <= end <= data_size:
        raise SafetensorsHeaderError(
            f"{file_name}: tensor {name!r} data_offsets {offsets} exceed the file's {data_size} data bytes"
        )
    # Sub-byte and newer dtypes are left to the engine; the ones listed are checked exactly.
    if dtype in DTYPE_BYTES and end - start != math.prod(shape) * DTYPE_BYTES[dtype]:
        raise SafetensorsHeaderError(
            f"{file_name}: tensor {name!r} spans {end - start} bytes, but {dtype}{shape} needs "
            f"{math.prod(shape) * DTYPE_BYTES[dtype]}"
        )
    return TensorInfo(dtype=dtype, shape=tuple(shape), start=data_start + start, end=data_start + end)


# A 16-bit float is NaN or infinite exactly when its exponent bits are all ones.
_EXPONENT_BITS = {"BF16": 0x7F80, "F16": 0x7C00}
_WIDE_FLOATS = {"F32": "<f4", "F64": "<f8"}


def non_finite_tensors(path: Path, tensors: dict[str, TensorInfo]) -> list[str]:
    """Names of the float tensors holding a NaN or an infinity, reading the data through a memory map."""
    import numpy as np

    if not tensors:
        return []
    data = np.memmap(path, dtype=np.uint8, mode="r")
    bad = []
    for name, info in tensors.items():
        raw = data[info.start : info.end]
        if info.dtype in _EXPONENT_BITS:
            mask = _EXPONENT_BITS[info.dtype]
            if np.any((raw.view("<u2") & mask) == mask):
                bad.append(name)
        elif info.dtype in _WIDE_FLOATS and not np.isfinite(raw.view(_WIDE_FLOATS[info.dtype])).all():
            bad.append(name)
    return bad


def _is_count(value: object) -> bool:
    # bool is an int subclass; JSON `true` is no dimension.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
