"""The one place that reads the environment: every knob of the service, prefixed ``LORA_ROUTER_``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from router.engine.cpu_lora_plugin import LoraOps
from router.engine.dtype import DtypeSetting

DEFAULT_BASE_MODEL = "SmolLM2-135M-Instruct"
AUTO_MODEL = "auto"


class Settings(BaseSettings):
    """Service configuration. Built once (CLI or tests) and passed to ``build_app``; never a global."""

    model_config = SettingsConfigDict(env_prefix="LORA_ROUTER_", env_file=None, extra="ignore")

    data_dir: Path = Field(
        default=Path.home() / ".lora-router",
        description="Holds the prepared base model, the registry database and router artifacts.",
    )
    base_model_name: str = Field(
        default=DEFAULT_BASE_MODEL, description="Name clients use for the base model."
    )
    base_model_path: Path | None = Field(
        default=None,
        description="Folder of the base model (HF layout). Default: DATA_DIR/models/BASE_MODEL_NAME.",
    )
    adapter_root: Path | None = Field(
        default=None,
        description="Adapters register only from folders under this root. Default: DATA_DIR/adapters.",
    )
    registry_db: Path | None = Field(
        default=None, description="SQLite registry. Default: DATA_DIR/registry.sqlite3."
    )
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL (postgresql://user:pass@host/db): registry and router versions shared by "
        "several router replicas. Unset: SQLite and files under DATA_DIR.",
    )
    sync_s: float = Field(
        default=1.0,
        gt=0,
        description="With DATABASE_URL: seconds between reads of what other router replicas registered, "
        "unregistered or made live (a request naming an adapter not yet seen here reads it at once).",
    )
    registry_file: Path | None = Field(
        default=None, description="YAML file whose adapters are registered at start-up when not yet present."
    )
    default_experts: bool = Field(
        default=True,
        description="Register the shipped sql, math and extract experts at start-up (names not yet taken).",
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    # Engine
    engine: Literal["vllm", "remote"] = Field(
        default="vllm",
        description="Engine backend: 'vllm' (in-process AsyncLLM) or 'remote' (`vllm serve --enable-lora` "
        "replicas at ENGINE_URLS).",
    )
    engine_urls: list[str] = Field(
        default_factory=list,
        description='Remote engine: base URLs of the vLLM replicas, as JSON (["http://10.0.0.5:8000", ...]).',
    )
    engine_api_key: str | None = Field(
        default=None, description="Remote engine: the replicas' `--api-key` (their private network only)."
    )
    engine_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="Remote engine: seconds to wait for a replica's next bytes (a long prefill on a CPU "
        "replica takes tens of seconds; health checks catch a dead replica sooner).",
    )
    replica_health_s: float = Field(
        default=1.0, gt=0, description="Remote engine: seconds between health checks of each replica."
    )
    replica_load_factor: float = Field(
        default=1.25,
        ge=1,
        description="Remote engine: an adapter's preferred replica is passed over when it has this many "
        "times the mean outstanding requests (bounded-load affinity).",
    )
    replica_min_load: int = Field(
        default=4,
        ge=1,
        description="Remote engine: an adapter's preferred replica is never passed over while it has fewer "
        "outstanding requests than this (it batches them; another replica would load the adapter first).",
    )
    replica_identity_base: bool = Field(
        default=False,
        description="Remote engine: send base-model requests through an all-zero adapter. Only CPU replicas "
        "on vLLM's own LoRA ops need it (they mix base and LoRA tokens wrongly); `lora-router replica` runs "
        "the batched ops and refuses to start on vLLM's without it.",
    )
    max_model_len: int = Field(
        default=2048, ge=128, description="Context length (prompt + completion tokens)."
    )
    max_loras: int = Field(default=4, ge=1, description="Adapters resident in one batch.")
    max_cpu_loras: int = Field(
        default=8, ge=1, description="Adapters cached by the engine; LRU-evicted beyond."
    )
    max_lora_rank: int = Field(
        default=32,
        ge=1,
        description="Largest LoRA rank accepted (a vLLM-supported value): 32 holds two rank-16 experts "
        "composed.",
    )
    max_num_seqs: int | None = Field(
        default=None,
        ge=1,
        description="Requests the engine schedules in one step. Default: what vLLM's OpenAI server takes on "
        "this hardware (CPU 128, H100/H200 1024).",
    )
    max_num_batched_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Tokens the engine schedules in one step. Default: what vLLM's OpenAI server takes on "
        "this hardware (CPU 2048, H100/H200 8192).",
    )
    # Whole GiB: vLLM's CPU engine reads its KV cache size as an integer (and fails at start on 0.5).
    kv_cache_gib: int = Field(default=1, ge=1, description="KV cache size on the CPU engine, in whole GiB.")
    gpu_memory_utilization: float = Field(
        default=0.85, gt=0, le=1, description="Share of GPU memory (CUDA engine)."
    )
    dtype: DtypeSetting = Field(
        default="auto",
        description="Engine weight dtype. auto: on the CPU, float32 unless it has native bfloat16 "
        "(AVX512-BF16, AMX; without them bfloat16 is emulated, several times slower); on a GPU, the model's.",
    )
    cpu_lora_ops: LoraOps = Field(
        default="batched",
        description="LoRA ops of vLLM's CPU engine: 'batched' (this project's vLLM plugin: rows grouped by "
        "adapter, none for base-model rows) or 'vllm' (vLLM's per-token reference ops). Handed to the "
        "engine's processes as LORA_ROUTER_CPU_LORA_OPS.",
    )
    seed: int = 0

    # Request defaults and limits
    default_max_tokens: int = Field(
        default=256, ge=1, description="max_tokens when neither request nor adapter set it."
    )
    max_n: int = Field(default=8, ge=1, description="Largest `n` accepted.")
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="Largest request body; larger ones get 413."
    )
    max_messages: int = Field(default=512, ge=1, description="Most messages in one chat request.")
    max_admitted: int = Field(
        default=64,
        ge=1,
        description="Generation requests in progress at once (running or queued in the engine); "
        "one more gets 429.",
    )
    retry_after_s: int = Field(default=1, ge=1, description="`Retry-After` seconds sent with a 429.")
    max_adapters: int = Field(default=64, ge=1, description="Most adapters registered at once.")
    max_adapter_bytes: int = Field(
        default=1024**3, ge=1, description="Largest adapter folder accepted for registration (bytes)."
    )

    chat_template: Path | None = Field(
        default=None,
        description="Jinja chat template used instead of the base model's own, as `vllm serve "
        "--chat-template` takes one (e.g. one that shows the model its tools).",
    )
    tool_parser: str | None = Field(
        default=None,
        description="vLLM tool-call parser (e.g. `hermes`) that reads tool calls back out of answers to "
        "`tool_choice: auto`, for base models whose chat template offers tools. Unset: only forced tool "
        "choices (`required`, a named function) work on such models.",
    )

    # Access
    api_keys: dict[str, str] = Field(
        default_factory=dict,
        description="SHA-256 hashes of API keys → scope (`user` or `admin`), as JSON; "
        "`lora-router api-key` makes a key and its entry. Empty: chat is open, admin endpoints need "
        "`admin_localhost`.",
    )
    admin_localhost: bool = Field(
        default=False,
        description="Let loopback clients without a key use the admin endpoints (development only).",
    )

    # Routing (`model: "auto"`)
    router_threshold: float = Field(
        default=0.4,
        ge=0,
        le=1,
        description="Below this calibrated probability of the top adapter (its labels summed), `auto` "
        "falls back.",
    )
    router_min_margin: float = Field(
        default=0.1, ge=0, le=1, description="Below this gap between the top two adapters, `auto` falls back."
    )
    router_blend: bool = Field(
        default=False,
        description="`auto`: where the top two targets are closer than ROUTER_MIN_MARGIN and both are "
        "adapters, answer with their composition weighted by their scores (routing mode `blend`) instead of "
        "the fallback model. Off: at 0.5/0.5 the shipped experts keep 11-90 % of their scores (README).",
    )
    router_out_of_scope: bool = Field(
        default=True,
        description="Fall back when a message is less similar to every example than the router's "
        "out-of-scope threshold (set at training from ROUTER_OOS_QUANTILE).",
    )
    router_oos_quantile: float = Field(
        default=0.05,
        ge=0,
        le=0.5,
        description="Training: share of examples whose nearest other example sets the out-of-scope threshold "
        "(higher catches more out-of-scope messages and sends more in-scope ones to the fallback).",
    )
    router_sticky_margin: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="In a conversation, a user turn leaves the previous turn's adapter only when its own top "
        "adapter beats it by this much (0: every turn is routed on its own).",
    )
    router_sticky_turns: int = Field(
        default=4, ge=1, description="How many of the latest user turns stickiness looks back over."
    )
    router_fallback: str | None = Field(
        default=None, description="Model answering when `auto` does not pick one. Default: the base model."
    )
    route_map: dict[str, str] | None = Field(
        default=None,
        description="JSON label or label group → model (adapter or base). Default: "
        '{"chat": BASE_MODEL_NAME}; other labels go to the adapter named like their group '
        "(`billing/refund` → `billing`).",
    )
    router_context_turns: int = Field(
        default=1, ge=1, description="How many of the latest user turns the router classifies."
    )
    router_examples_file: Path | None = Field(
        default=None,
        description="Examples `prepare` trains the default router on. Default: the shipped intents.",
    )
    router_eval_file: Path | None = Field(
        default=None,
        description="Held-out examples the operator page evaluates routers on. Default: the shipped ones.",
    )
    router_threads: int = Field(
        default=1, ge=1, description="Threads the router's encoder uses (the engine has its own)."
    )
    router_backend: Literal["onnx", "torch"] = Field(
        default="onnx", description="What runs the router's encoder: ONNX Runtime (faster) or torch."
    )
    router_body_layers: int = Field(
        default=0,
        ge=0,
        description="Encoder layers kept when training a router (0 keeps all 6): fewer route faster, worse.",
    )
    router_finetune: Literal["none", "setfit"] = Field(
        default="none",
        description="Training: 'none' fits the head on the shipped encoder (seconds); 'setfit' fine-tunes "
        "the encoder contrastively first (minutes on a CPU).",
    )
    router_train_iterations: int = Field(
        default=20, ge=1, description="SetFit pair-sampling iterations (ROUTER_FINETUNE=setfit)."
    )
    router_max_examples: int = Field(default=5000, ge=2, description="Largest training set accepted.")
    router_max_text_chars: int = Field(default=2000, ge=1, description="Longest training example accepted.")

    log_format: Literal["json", "text"] = Field(
        default="json", description="Service log lines: JSON objects (with request ids) or plain text."
    )
    graceful_shutdown_s: float = Field(
        default=20.0, ge=0, description="Seconds in-flight requests get on SIGTERM."
    )
    engine_hang_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds without any output while requests are in flight before the engine is restarted.",
    )
    engine_retry_after_s: int = Field(
        default=5, ge=1, description="`Retry-After` seconds sent with a 503 while the engine restarts."
    )

    @model_validator(mode="after")
    def _check_loras(self) -> Settings:
        if self.max_cpu_loras < self.max_loras:
            raise ValueError("max_cpu_loras must be >= max_loras")
        return self

    @model_validator(mode="after")
    def _check_remote(self) -> Settings:
        if self.engine == "remote" and not self.engine_urls:
            raise ValueError("engine 'remote' needs ENGINE_URLS: the base URLs of the vLLM replicas")
        return self

    @field_validator("api_keys")
    @classmethod
    def _check_api_keys(cls, value: dict[str, str]) -> dict[str, str]:
        from router.auth import check_key_hashes

        check_key_hashes(value)
        return value

    @property
    def resolved_base_model_path(self) -> Path:
        return self.base_model_path or self.data_dir / "models" / self.base_model_name

    @property
    def resolved_adapter_root(self) -> Path:
        return self.adapter_root or self.data_dir / "adapters"

    @property
    def resolved_router_fallback(self) -> str:
        return self.router_fallback or self.base_model_name

    @property
    def resolved_route_map(self) -> dict[str, str]:
        return self.route_map if self.route_map is not None else {"chat": self.base_model_name}

    @property
    def resolved_router_examples_file(self) -> Path:
        return self.router_examples_file or Path(__file__).parent / "defaults" / "intents.yaml"

    @property
    def resolved_router_eval_file(self) -> Path:
        return self.router_eval_file or Path(__file__).parent / "defaults" / "intents_heldout.yaml"

    @property
    def router_dir(self) -> Path:
        return self.data_dir / "routers"

    @property
    def resolved_registry_db(self) -> Path:
        return self.registry_db or self.data_dir / "registry.sqlite3"
