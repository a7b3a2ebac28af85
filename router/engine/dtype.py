"""The engine's weight dtype: what the hardware computes fastest, unless a setting forces one.

A CPU without native bfloat16 arithmetic emulates it (convert to float32, multiply, round back): vLLM's CPU
engine measured 3x slower at batch 16 and 5-6x slower to first token in bfloat16 than in float32 on such a
CPU (on a CPU with AVX512-BF16, bfloat16 was twice as fast as float32). So on the CPU, float32 unless the
CPU has bfloat16 instructions (x86 AVX512-BF16 or AMX-BF16, Arm BF16); on an accelerator, the model
folder's own dtype (bfloat16 for the prepared model), as vLLM's ``auto`` picks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DtypeSetting = Literal["auto", "bfloat16", "float16", "float32"]

# /proc/cpuinfo names: x86 "flags", Arm "Features".
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class DtypeChoice:
    dtype: str
    reason: str


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of the first CPU listed in a /proc/cpuinfo text (x86 ``flags``, Arm ``Features``)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def choose_dtype(setting: DtypeSetting, *, cpu: bool, cpuinfo: str, model_dtype: str) -> DtypeChoice:
    """``setting`` resolved for a machine: ``cpu`` when vLLM runs on the CPU there, ``cpuinfo`` its
    /proc/cpuinfo text (empty where there is none), ``model_dtype`` the model folder's ``dtype``."""
    if setting != "auto":
        return DtypeChoice(setting, "set by LORA_ROUTER_DTYPE")
    if not cpu:
        return DtypeChoice(model_dtype, "accelerator: the model's own dtype")
    native = sorted(set(NATIVE_BF16_FLAGS) & cpu_flags(cpuinfo))
    if native:
        return DtypeChoice("bfloat16", f"CPU with native bfloat16 ({', '.join(native)})")
    if not cpuinfo:
        return DtypeChoice("float32", "CPU whose features cannot be read: bfloat16 may be emulated")
    return DtypeChoice("float32", "CPU without native bfloat16 (no avx512_bf16/amx_bf16): emulated there")


def model_dtype(model_dir: Path) -> str:
    """The dtype a Hugging Face model folder's config.json names (``dtype``, formerly ``torch_dtype``)."""
    config = json.loads((model_dir / "config.json").read_text())
    return str(config.get("dtype") or config.get("torch_dtype") or "float32")


def engine_dtype(setting: DtypeSetting, model_dir: Path) -> DtypeChoice:
    """``choose_dtype`` for a vLLM engine on this machine."""
    from vllm.platforms import current_platform

    try:
        cpuinfo = CPUINFO.read_text()
    except OSError:
        cpuinfo = ""
    return choose_dtype(
        setting, cpu=current_platform.is_cpu(), cpuinfo=cpuinfo, model_dtype=model_dtype(model_dir)
    )
