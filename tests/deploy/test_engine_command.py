"""The engine replicas' real command line: in Compose, in both overlays and in the engine images,
`lora-router replica` turns the container's settings into vLLM's arguments; vLLM's own parser must accept
them, and they must serve the model the image prepared, under the name and on the port the routers use."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from router.engine.dtype import choose_dtype
from router.replica import replica_env
from tests.deploy.common import (
    compose_env,
    dockerfile_for,
    dockerfiles,
    image_command,
    load_compose,
    prepared_model_path,
    render_overlay,
    settings_from,
    url_host_port,
    vllm_argv,
)

# A CPU with AVX2 and AVX-512F but no bfloat16 instructions.
AVX2_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw\n"


@dataclass
class Case:
    where: str
    image: str
    command: list[str]
    env: dict[str, str]
    # What the routers of the same deployment use; None for a bare image.
    router_env: dict[str, str] | None
    gpu: bool


def cases() -> list[Case]:
    found: list[Case] = []
    compose = load_compose()
    services = compose["services"]
    routers = [s for s in services.values() if s.get("command", [])[:2] == ["lora-router", "serve"]]
    for name, service in services.items():
        if service.get("command", [])[:2] == ["lora-router", "replica"]:
            found.append(
                Case(
                    f"compose {name}",
                    service["image"],
                    service["command"],
                    compose_env(service),
                    compose_env(routers[0]),
                    gpu=False,
                )
            )
    for overlay in ("cpu", "gpu"):
        rendered = render_overlay(overlay)
        engine = rendered.engine
        found.append(
            Case(
                f"k8s {overlay}",
                rendered.container(engine)["image"],
                rendered.command(engine),
                rendered.env(engine),
                rendered.env(rendered.router),
                gpu=overlay == "gpu",
            )
        )
    for path in dockerfiles():
        command, env = image_command(path)
        if command[1:2] == ["replica"]:
            found.append(
                Case(
                    path.name,
                    f"lora-router/{path.name.removesuffix('.Dockerfile')}",
                    ["lora-router", *command[1:]],
                    env,
                    None,
                    gpu="cuda" in path.name,
                )
            )
    return found


def test_engine_commands_parse_with_vllm_and_agree_with_routers(
    vllm_parse: Callable[[list[str]], Any],
) -> None:
    assert importlib.util.find_spec("vllm.entrypoints.openai.api_server") is not None
    all_cases = cases()
    assert {c.where for c in all_cases} >= {
        "compose engine-0",
        "compose engine-1",
        "k8s cpu",
        "k8s gpu",
        "engine-cpu.Dockerfile",
        "engine-cuda.Dockerfile",
    }
    for case in all_cases:
        settings = settings_from(case.env)
        # The hardware picks: a CPU replica without bf16 instructions must not run emulated bf16.
        assert settings.dtype == "auto", f"{case.where}: LORA_ROUTER_DTYPE={settings.dtype}"
        dtype = choose_dtype(settings.dtype, cpu=not case.gpu, cpuinfo=AVX2_CPUINFO, model_dtype="bfloat16")
        args = vllm_parse(vllm_argv(case.env, case.command, dtype=dtype.dtype))
        assert args.dtype == ("bfloat16" if case.gpu else "float32"), case.where
        image = dockerfile_for(case.image)
        assert args.enable_lora, case.where
        assert args.model == str(prepared_model_path(image)), (
            f"{case.where}: {image.name} prepared another path"
        )
        assert args.served_model_name == [settings.base_model_name], case.where
        if case.gpu:
            assert "cuda" in image.name and args.gpu_memory_utilization == 0.85, case.where
        else:
            assert "cpu" in image.name, case.where
        # vLLM variables that `lora-router replica` sets itself would silently override the container's.
        for name, value in replica_env(settings).items():
            assert case.env.get(name, value) == value, f"{case.where}: {name} is set by `lora-router replica`"
        if case.router_env is None:
            continue
        router = settings_from(case.router_env)
        assert args.api_key == [router.engine_api_key], f"{case.where}: replicas and routers hold other keys"
        assert args.served_model_name == [router.base_model_name], case.where
        assert args.max_lora_rank == router.max_lora_rank and args.max_model_len == router.max_model_len
        assert args.port in {url_host_port(u)[1] for u in router.engine_urls}, case.where
