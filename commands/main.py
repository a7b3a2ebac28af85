"""``lora-router``: one entry point for serving and the jobs around it. Heavy imports stay inside commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Serve one base LLM with many LoRA experts."
)


# The public routing benchmark, beside a checkout (see `bench routing-quality`).
DEFAULT_CLINC150 = Path(__file__).resolve().parents[2] / "shared" / "data" / "clinc150"

# Commands that call a running service send this key (an admin key where they register or train).
ApiKey = Annotated[
    str | None,
    typer.Option(envvar="LORA_ROUTER_API_KEY", help="API key for the service (env LORA_ROUTER_API_KEY)."),
]


def _settings(**overrides: object):  # -> Settings
    from router.settings import Settings

    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _progress():  # -> rich.progress.Progress
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())


def _train_router_with_progress(settings, examples: Path) -> str:  # noqa: ANN001
    from router.routing.offline import train_router

    _quiet_router_training(settings.router_finetune == "setfit")
    with _progress() as progress:
        task = progress.add_task(f"router: training on {examples.name}", total=1.0)
        version, classifier = train_router(
            settings, examples, on_progress=lambda fraction: progress.update(task, completed=fraction)
        )
        progress.update(task, completed=1.0)
    typer.echo(f"router {version} is live; labels: {', '.join(classifier.labels)}")
    return version


@app.command()
def prepare(force: Annotated[bool, typer.Option(help="Rebuild even if already prepared.")] = False) -> None:
    """Write the base model (SmolLM2-135M-Instruct, bf16 safetensors) and train the default router."""
    from commands.prepare import prepare_base_model
    from router.routing.store import RouterStore

    settings = _settings()
    target = settings.resolved_base_model_path
    _quiet_transformers()
    with _progress() as progress:
        task = progress.add_task("base model: checking", total=None)
        written = prepare_base_model(
            target, step=lambda what: progress.update(task, description=f"base model: {what}"), force=force
        )
        progress.update(task, description="base model: done", total=1, completed=1)
    typer.echo(f"base model {'written to' if written else 'already prepared at'} {target}")
    if force or RouterStore.for_settings(settings).current_version() is None:
        _train_router_with_progress(settings, settings.resolved_router_examples_file)
    else:
        typer.echo("router already trained (retrain with `lora-router train-router`)")


@app.command("train-router")
def train_router(
    examples: Annotated[Path, typer.Argument(help="YAML or JSONL of {text, label} examples.", exists=True)],
) -> None:
    """Train a router from few-shot examples and make it the live one (a running service picks it up on
    restart; use POST /v1/router/train to retrain a running service)."""
    _train_router_with_progress(_settings(), examples)


@app.command("eval-router")
def eval_router(
    heldout: Annotated[Path, typer.Argument(help="Held-out YAML/JSONL of {text, label}.", exists=True)],
    out: Annotated[Path | None, typer.Option(help="Folder for report.json and confusion.png.")] = None,
    version: Annotated[str | None, typer.Option(help="Router version (default: the live one).")] = None,
) -> None:
    """Accuracy, macro-F1, confusion matrix and the threshold / fallback-rate trade-off on held-out data."""
    from router.routing.offline import evaluate_router

    _quiet_transformers()
    with _progress() as progress:
        progress.add_task("router: evaluating", total=None)
        version, report = evaluate_router(_settings(), heldout, version)
    typer.echo(f"router {version} on {heldout}\n{report.to_text()}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(report.to_json())
        report.save_confusion_png(out / "confusion.png")
        typer.echo(f"wrote {out / 'report.json'} and {out / 'confusion.png'}")


def _quiet_transformers() -> None:
    # transformers draws its own bars (loading and writing weights) under ours.
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()


def _quiet_router_training(finetune: bool) -> None:
    _quiet_transformers()
    if not finetune:
        return
    # Fine-tuning with SetFit: datasets draws a bar per mapping, and importing setfit's trainer turns its log
    # level up to INFO (a banner per run); import it first so the level set here is the one that stays.
    import datasets
    import setfit.trainer  # noqa: F401
    from setfit import logging as setfit_logging

    datasets.disable_progress_bars()
    setfit_logging.set_verbosity_warning()


def _base_model(path: Path | None, option: str = "--base-model") -> Path:
    folder = path or _settings().resolved_base_model_path
    if not (folder / "config.json").is_file():
        raise typer.BadParameter(
            f"no model at {folder}: run `lora-router prepare` or pass {option}", param_hint=option
        )
    return folder


@app.command("generate-data")
def generate_data(
    task: Annotated[str, typer.Argument(help="Task name: sql, math, extract or chat.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="JSONL file to write.")],
    split: Annotated[Literal["train", "eval"], typer.Option(help="Which split's prompts.")] = "train",
    n: Annotated[int, typer.Option(help="Number of examples.", min=1)] = 1000,
    seed: Annotated[int, typer.Option(help="Seed; the same seed gives the same file.")] = 0,
) -> None:
    """Write seeded task examples as JSONL: training data for `train-adapter`, or held-out eval data.

    One {"task", "messages", "gold"} object per line; a prompt is never in both splits."""
    from experts.tasks import UnknownTaskError, get_task, write_jsonl

    try:
        examples = get_task(task).examples(split, n, seed=seed)
    except UnknownTaskError as error:
        raise typer.BadParameter(str(error), param_hint="TASK") from None
    except ValueError as error:  # the generator cannot produce that many distinct prompts
        raise typer.BadParameter(str(error), param_hint="--n") from None
    write_jsonl(examples, output)
    typer.echo(f"wrote {len(examples)} {task} {split} examples to {output}")


@app.command("train-adapter")
def train_adapter(
    data: Annotated[
        Path,
        typer.Argument(
            help='JSONL of {"messages": [...]} (last one the assistant answer) or {"prompt", "completion"}.',
            exists=True,
            dir_okay=False,
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Adapter folder to write.")],
    base_model: Annotated[
        Path | None, typer.Option(help="Base model folder (default: the prepared one from settings).")
    ] = None,
    rank: Annotated[int, typer.Option(help="LoRA rank r.", min=1)] = 16,
    alpha: Annotated[float, typer.Option(help="LoRA alpha (scaling alpha/r).")] = 32,
    dropout: Annotated[float, typer.Option(help="LoRA dropout.")] = 0.05,
    target_modules: Annotated[
        str, typer.Option(help="'all-linear' or a comma list of modules, e.g. q_proj,v_proj.")
    ] = "all-linear",
    epochs: Annotated[float, typer.Option(help="Passes over the data.")] = 1.0,
    max_steps: Annotated[int, typer.Option(help="Stop after this many steps (-1: run --epochs).")] = -1,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-4,
    batch_size: Annotated[int, typer.Option(help="Examples per step (per device).", min=1)] = 16,
    grad_accum: Annotated[int, typer.Option(help="Gradient accumulation steps.", min=1)] = 1,
    max_length: Annotated[int, typer.Option(help="Tokens per example (prompt + answer).")] = 512,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, shuffling and dropout.")] = 0,
    bf16: Annotated[
        bool | None, typer.Option("--bf16/--no-bf16", help="Mixed bf16 precision (default: on CUDA).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --output folder.")] = False,
    register: Annotated[
        str | None,
        typer.Option(
            help="URL of a running service to register the adapter with (POST /v1/adapters). The "
            "service only registers folders under its adapter root (LORA_ROUTER_ADAPTER_ROOT, default "
            "DATA_DIR/adapters): write --output inside it, e.g. --output ~/.lora-router/adapters/sql."
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Name clients use as `model` (default: the --output folder's name).")
    ] = None,
    register_path: Annotated[
        str | None,
        typer.Option(
            help="Path sent to the service: relative to its adapter root, for a service that sees the folder "
            "at another place (default: the absolute --output path)."
        ),
    ] = None,
    api_key: ApiKey = None,
) -> None:
    """Train a LoRA expert adapter on chat data (loss on the answers only), on CPU or CUDA.

    Writes adapter_config.json, adapter_model.safetensors (bf16) and model_card.json to --output."""
    from experts.training import AdapterTrainConfig
    from experts.training import train_adapter as train

    modules = target_modules.strip()
    try:
        config = AdapterTrainConfig(
            rank=rank,
            alpha=alpha,
            dropout=dropout,
            target_modules=modules
            if modules == "all-linear"
            else [m for m in modules.split(",") if m.strip()],
            epochs=epochs,
            max_steps=max_steps,
            learning_rate=lr,
            batch_size=batch_size,
            grad_accum=grad_accum,
            max_length=max_length,
            seed=seed,
            bf16=bf16,
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    if output.exists() and not overwrite:
        raise typer.BadParameter(f"{output} exists; pass --overwrite to replace it", param_hint="--output")
    base = _base_model(base_model)
    _quiet_transformers()
    with _progress() as progress:
        task = progress.add_task(f"adapter: training on {data.name}", total=1.0)
        try:
            card = train(
                base,
                data,
                output,
                config,
                on_progress=lambda fraction: progress.update(task, completed=fraction),
                overwrite=overwrite,
            )
        except ValueError as error:  # bad data lines, target modules the model lacks, an unusable tokenizer
            raise typer.BadParameter(str(error)) from None
    typer.echo(
        f"adapter written to {output}\n"
        f"  {card.data.records} examples, {card.steps} step{'' if card.steps == 1 else 's'} "
        f"({card.epochs:g} epochs) in {card.train_seconds:.1f} s on {card.device}, {card.precision}\n"
        f"  loss: {card.final_loss:.4f} last step, {card.train_loss:.4f} mean\n"
        f"  rank {config.rank}, alpha {config.alpha:g}, modules {','.join(card.target_modules)}; "
        f"weights {card.size_bytes / 1e6:.2f} MB"
    )
    if register:
        _register_adapter(
            register, name or output.name, register_path or str(output.resolve()), card.data.path, api_key
        )


def _register_adapter(url: str, name: str, path: str, data: str, api_key: str | None) -> None:
    import httpx

    from commands.client import service_client

    body = {"name": name, "path": path, "description": f"LoRA expert trained on {Path(data).name}"}
    try:
        with service_client(url, api_key, timeout_s=120) as client:
            response = client.post("/v1/adapters", json=body)
    except httpx.HTTPError as error:
        typer.echo(f"registration failed: cannot reach {url}: {error}", err=True)
        raise typer.Exit(1) from None
    if response.status_code != 201:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text
        typer.echo(f"registration failed (HTTP {response.status_code}): {message}", err=True)
        raise typer.Exit(1)
    spec = response.json()
    typer.echo(f"registered as {spec['name']!r} (id {spec['id']}) at {url}")


@app.command("api-key")
def api_key(
    scope: Annotated[Literal["user", "admin"], typer.Option(help="What the key may do.")] = "user",
    key: Annotated[
        str | None, typer.Option(help="Hash this key instead of making a new one (e.g. to rotate one in).")
    ] = None,
) -> None:
    """Make an API key and print the settings entry that allows it; the service stores only its hash."""
    import json

    from router.auth import hash_key, new_key

    key = key or new_key()
    typer.echo(f"key (give it to the client; it is not stored): {key}")
    typer.echo(f"settings entry: LORA_ROUTER_API_KEYS='{json.dumps({hash_key(key): scope})}'")
    typer.echo("(several keys: merge their entries into one JSON object)")


@app.command()
def chat(
    url: Annotated[str, typer.Option(help="The running service.")] = "http://127.0.0.1:8000",
    model: Annotated[
        str, typer.Option(help="'auto' (route each message), an adapter's name or the base model's.")
    ] = "auto",
    max_tokens: Annotated[
        int | None, typer.Option(help="Most tokens per answer (default: the service's).", min=1)
    ] = None,
    system: Annotated[str | None, typer.Option(help="System prompt put before the conversation.")] = None,
    api_key: ApiKey = None,
) -> None:
    """Chat with a running service in the terminal; before each answer, which model answers and why.

    Commands: /model NAME, /models, /reset, /help, /quit (end of input quits too). Input may be piped."""
    from commands.terminal_chat import TerminalChat

    TerminalChat(url, api_key, model=model, max_tokens=max_tokens, system=system).run()


@app.command()
def merge(
    adapter: Annotated[Path, typer.Argument(help="PEFT LoRA adapter folder.", exists=True, file_okay=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the merged model.")],
    base_model: Annotated[
        Path | None, typer.Option(help="Base model folder (default: the prepared one from settings).")
    ] = None,
    tolerance: Annotated[
        float, typer.Option(help="Largest error accepted, in units in the last place of the saved dtype.")
    ] = 1.0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --output folder.")] = False,
) -> None:
    """Merge an adapter into the base weights as a standalone model, checked against W + (alpha/r)·B·A.

    For adapters the engine cannot serve as a LoRA (e.g. with modules_to_save). Every LoRA-targeted weight is
    recomputed from the base and adapter files; every other weight must equal the base's exactly."""
    from experts.merge import MergeCheckError, merge_adapter

    if output.exists() and not overwrite:
        raise typer.BadParameter(f"{output} exists; pass --overwrite to replace it", param_hint="--output")
    base = _base_model(base_model)
    _quiet_transformers()
    with _progress() as progress:
        progress.add_task(f"merging {adapter.name} into {base.name}", total=None)
        try:
            report = merge_adapter(base, adapter, output, tolerance=tolerance, overwrite=overwrite)
        except MergeCheckError as error:
            progress.stop()
            typer.echo(error.report.summary(), err=True)
            raise typer.Exit(1) from None
    typer.echo(f"merged model written to {output}\n{report.summary()}")


@app.command("eval-experts")
def eval_experts(
    url: Annotated[str, typer.Option(help="The running service.")] = "http://127.0.0.1:8000",
    n: Annotated[int, typer.Option(help="Eval messages per task (sql, math, extract, chat).")] = 40,
    seed: Annotated[int, typer.Option(help="Seed of the eval splits.")] = 0,
    concurrency: Annotated[int, typer.Option(help="Requests in flight (the engine batches them).")] = 16,
    cross: Annotated[bool, typer.Option(help="Also ask every expert every other task.")] = False,
    out: Annotated[Path | None, typer.Option(help="Folder for experts.json and experts.png.")] = None,
    api_key: ApiKey = None,
) -> None:
    """Score the base model, each expert and `auto` on every task's eval split through a running service
    (greedy), and the base / expert / oracle / auto policies on the mixed set."""

    from commands.client import service_client
    from experts.evaluation import evaluate_experts, request_count
    from experts.tasks import TASKS

    base = _service_models(url, api_key)[0]
    with _progress() as progress, service_client(url, api_key, timeout_s=600.0) as client:
        experts = sum(t.has_expert for t in TASKS.values())
        total = request_count(n, experts, cross=cross)
        task = progress.add_task("experts: asking the service", total=total)
        report = evaluate_experts(
            client,
            base_model=base,
            n_per_task=n,
            seed=seed,
            concurrency=concurrency,
            cross=cross,
            on_answer=lambda: progress.advance(task),
        )
    typer.echo(f"every model on every task ({n} eval messages each, greedy):\n{report.grid_table()}\n")
    typer.echo(f"policies:\n{report.table()}\n")
    auto, oracle = report.policies["auto"]["mixed"], report.policies["oracle"]["mixed"]
    typer.echo(
        f"auto / oracle on the mixed set: {auto / oracle:.1%}; auto picked the right model for "
        f"{report.routing_accuracy:.1%} of messages"
    )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "experts.json").write_text(report.to_json())
        report.save_png(out / "experts.png")
        typer.echo(f"wrote {out / 'experts.json'} and {out / 'experts.png'}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "info",
) -> None:
    """Start the OpenAI-compatible service on the vLLM engine."""
    import uvicorn

    from router.app import build_app
    from router.observability.logs import configure_logging

    settings = _settings(host=host, port=port)
    uvicorn.run(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=configure_logging(log_level, settings.log_format),
        # Replaced by the service's own access log, which carries the request id and the routing.
        access_log=False,
        timeout_graceful_shutdown=int(settings.graceful_shutdown_s),
    )


@app.command()
def replica(
    host: Annotated[str, typer.Option(help="Bind address: the replicas' private network only.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """Run one engine replica for `LORA_ROUTER_ENGINE=remote`: vLLM's OpenAI server with LoRA and runtime
    adapter loading, its flags taken from the same settings the routers read."""
    import os

    from router.replica import check_base_requests, replica_command, replica_dtype, replica_env

    settings = _settings()
    try:
        check_base_requests(settings)
    except ValueError as error:
        typer.echo(f"replica not started: {error}", err=True)
        raise typer.Exit(1) from None
    command = replica_command(settings, host=host, port=port, dtype=replica_dtype(settings))
    os.execvpe(command[0], command, {**os.environ, **replica_env(settings)})


@app.command("eval-merged")
def eval_merged(
    reference: Annotated[Path, typer.Argument(help="experts.json of an `eval-experts` run.", exists=True)],
    adapter: Annotated[str, typer.Option(help="The adapter that was merged (its task is compared).")],
    url: Annotated[str, typer.Option(help="The service serving the merged model.")] = "http://127.0.0.1:8000",
    model: Annotated[
        str | None, typer.Option(help="Model name to ask there (default: that service's base model).")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Requests in flight.")] = 16,
    out: Annotated[Path | None, typer.Option(help="Write the comparison as JSON here.")] = None,
    api_key: ApiKey = None,
) -> None:
    """Ask a merged model (e.g. served as the base model, without LoRA) the eval messages an adapter answered
    in an `eval-experts` run, and report how many greedy answers are identical."""
    from commands.client import service_client
    from experts.evaluation import ExpertEval, compare_with_reference, own_task_answers

    evaluation = ExpertEval.from_json(reference.read_text())
    if model is None:
        model = _service_models(url, api_key)[0]
    try:
        with _progress() as progress, service_client(url, api_key, timeout_s=600.0) as client:
            total = len(own_task_answers(evaluation, adapter))
            task = progress.add_task(f"asking {model} what {adapter} answered", total=total)
            result = compare_with_reference(
                client,
                model,
                evaluation,
                adapter,
                concurrency=concurrency,
                on_answer=lambda: progress.advance(task),
            )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    typer.echo(
        f"{model} at {url} vs {adapter} on {result.n} {result.task} eval messages: "
        f"{result.same_output}/{result.n} identical ({result.rate:.1%}); "
        f"score {result.score:.3f} vs {result.reference_score:.3f}"
    )
    if out:
        out.write_text(result.to_json())
        typer.echo(f"wrote {out}")


def _service_models(url: str, api_key: str | None) -> tuple[str, list[str]]:
    """The service's base model and its adapters, from /v1/models (`auto` is neither)."""
    from commands.client import service_client

    with service_client(url, api_key) as client:
        models = [m for m in client.get("/v1/models").json()["data"] if m["id"] != "auto"]
    base = next(m["id"] for m in models if m.get("parent") is None)
    return base, [m["id"] for m in models if m.get("parent")]


bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks: each prints a table and writes JSON.")
app.add_typer(bench_app, name="bench")


@bench_app.command("load")
def bench_load(
    url: Annotated[str, typer.Option(help="The running service.")] = "http://127.0.0.1:8000",
    clients: Annotated[
        int | None, typer.Option(help="Concurrent streaming clients (default: 4x the admission limit).")
    ] = None,
    duration: Annotated[float, typer.Option(help="Seconds of traffic.")] = 60.0,
    adapters: Annotated[int, typer.Option(help="Adapters in the mix, besides the base model.")] = 4,
    max_tokens: Annotated[int, typer.Option(help="Tokens each answer is made to have.")] = 32,
    pid: Annotated[
        int | None, typer.Option(help="The service's process id, to sample its memory (engine included).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the result as JSON here.")] = None,
    api_key: ApiKey = None,
) -> None:
    """Overload the service: more streaming clients than it admits, over several adapters and the base
    model. Reports accepted, 429s, errors (5xx apart), latency of accepted requests and peak memory."""
    import asyncio
    import json

    from rich.console import Console
    from rich.table import Table

    from commands.bench.load import run_load
    from commands.bench.stats import write_json
    from commands.client import service_client

    with service_client(url, api_key) as client:
        limit = client.get("/health").json()["admission_limit"]
    base, adapter_names = _service_models(url, api_key)
    models = [*adapter_names[:adapters], base]
    clients = clients or 4 * limit
    with _progress() as progress:
        task = progress.add_task(f"{clients} clients over {len(models)} models", total=duration)
        result = asyncio.run(
            run_load(
                url,
                models,
                clients=clients,
                duration_s=duration,
                max_tokens=max_tokens,
                pid=pid,
                api_key=api_key,
                on_tick=lambda elapsed: progress.update(task, completed=min(elapsed, duration)),
            )
        )

    table = Table(title=f"load: {clients} clients, admission limit {limit}, {result['duration_s']} s")
    for column in ("measure", "value"):
        table.add_column(column)
    rows = [
        ("accepted (per s)", f"{result['accepted']} ({result['accepted_per_s']}/s)"),
        ("refused with 429", str(result["refused_429"])),
        ("5xx errors", str(result["server_errors_5xx"])),
        ("other errors", json.dumps(result["errors"]) if result["errors"] else "0"),
    ]
    for label, key in (("latency of accepted", "latency"), ("time to first token", "ttft")):
        if timing := result[key]:
            rows.append((f"{label} p50 / p99 ms", f"{timing['p50_ms']:.0f} / {timing['p99_ms']:.0f}"))
    if rss := result["rss_mib"]:
        rows.append(("service memory MiB start / peak / end", "{start} / {peak} / {end}".format(**rss)))
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    if out:
        write_json(out, result)
        typer.echo(f"wrote {out}")


@bench_app.command("router")
def bench_router(
    messages: Annotated[
        Path | None, typer.Option(help="YAML/JSONL of messages (default: the shipped held-out intents).")
    ] = None,
    n: Annotated[int, typer.Option(help="Messages timed one by one.")] = 300,
    batch_size: Annotated[int, typer.Option(help="Messages per batched call.")] = 16,
    url: Annotated[str | None, typer.Option(help="A running service: also time `auto` TTFT there.")] = None,
    ttft_n: Annotated[int, typer.Option(help="`auto` chats timed against --url.")] = 40,
    out: Annotated[Path | None, typer.Option(help="Write the result as JSON here.")] = None,
    api_key: ApiKey = None,
) -> None:
    """Routing cost per message on this machine, single and batched, for the ONNX Runtime and the torch
    encoder side by side, and its share of time-to-first-token."""
    import platform

    import torch
    from rich.console import Console
    from rich.table import Table

    from classifier import load_examples
    from commands.bench.routing import classifier_latency, service_ttft
    from commands.bench.stats import write_json
    from router.routing.store import RouterStore

    settings = _settings()
    _quiet_transformers()
    torch.set_num_threads(settings.router_threads)  # as inside the service
    version = RouterStore.for_settings(settings).current_version()
    if version is None:
        raise typer.BadParameter("no router trained yet: run `lora-router prepare` or `train-router` first")
    texts = [
        e.text
        for e in load_examples(
            messages or settings.resolved_router_examples_file.with_name("intents_heldout.yaml")
        )
    ]
    result: dict[str, object] = {
        "router_version": version,
        "machine": platform.processor() or platform.machine(),
        "threads": settings.router_threads,
        "service_backend": settings.router_backend,
    }
    latency: dict[str, dict] = {}
    with _progress() as progress:
        for backend in ("onnx", "torch"):
            store = RouterStore.for_settings(settings.model_copy(update={"router_backend": backend}))
            classifier, _ = store.load(version)
            task = progress.add_task(f"classifier latency ({classifier.backend})", total=n)
            latency[classifier.backend] = classifier_latency(
                classifier, texts, n=n, batch_size=batch_size, on_step=lambda t=task: progress.advance(t)
            )
        result["classifier"] = latency
        if url:
            task = progress.add_task("service TTFT (auto, concurrency 1)", total=ttft_n)
            result["service"] = service_ttft(
                url, texts, n=ttft_n, on_step=lambda: progress.advance(task), api_key=api_key
            )

    table = Table(title=f"routing cost (router {version[:12]}, {settings.router_threads} thread(s))")
    for column in ("measure", "p50 ms", "p99 ms", "n"):
        table.add_column(column)
    for backend, timing in latency.items():
        single, batched = timing["single"], timing["batched"]
        table.add_row(
            f"{backend}: classify one message", str(single["p50_ms"]), str(single["p99_ms"]), str(single["n"])
        )
        table.add_row(
            f"{backend}: classify a batch of {batch_size}",
            str(batched["p50_ms"]),
            str(batched["p99_ms"]),
            str(batched["n"]),
        )
    if url:
        service = result["service"]
        for label, key in (("routing inside the service", "routing"), ("time to first token (auto)", "ttft")):
            row = service[key]
            table.add_row(label, str(row["p50_ms"]), str(row["p99_ms"]), str(row["n"]))
    Console().print(table)
    if {"onnx", "torch"} <= latency.keys():
        ratio = latency["torch"]["single"]["p50_ms"] / latency["onnx"]["single"]["p50_ms"]
        result["torch_over_onnx_p50"] = round(ratio, 2)
        typer.echo(f"torch / onnx, one message p50: {ratio:.2f}x")
    if url:
        typer.echo(f"routing share of TTFT (p50): {result['service']['routing_share_of_ttft_p50']:.2%}")
    if out:
        write_json(out, result)
        typer.echo(f"wrote {out}")


@bench_app.command("routing-quality")
def bench_routing_quality(
    data: Annotated[
        Path,
        typer.Option(help="CLINC150 folder with train.jsonl and val.jsonl.", exists=True, file_okay=False),
    ] = DEFAULT_CLINC150,
    shots: Annotated[str, typer.Option(help="Examples per domain, comma-separated.")] = "8,16",
    sub_intent_shots: Annotated[
        int, typer.Option(help="Examples per intent, labelled by intent (0: skip).")
    ] = 2,
    none: Annotated[
        int, typer.Option(help="Also runs with this many 'none of these' examples (0: skip).")
    ] = 16,
    random: Annotated[bool, typer.Option(help="Also draw each domain's examples at random.")] = True,
    seeds: Annotated[int, typer.Option(help="Training sets drawn per setup.", min=1)] = 5,
    out: Annotated[Path | None, typer.Option(help="Folder for the JSON result and the PNG curve.")] = None,
) -> None:
    """How well routers trained by the service's code route CLINC150's validation split (10 domains as
    adapters): in-scope accuracy, training seconds, and out-of-scope recall against in-scope fallbacks."""
    from rich.console import Console
    from rich.table import Table

    from commands.bench.routing_quality import Draw, run_benchmark, save_curve_png
    from commands.bench.stats import environment, write_json
    from router.routing.manager import TrainingOptions
    from router.routing.policy import PolicyConfig

    settings = _settings()
    _quiet_router_training(settings.router_finetune == "setfit")
    # The domains stand for adapters; nothing is mapped to the base model but what falls back.
    policy = PolicyConfig.from_settings(settings.model_copy(update={"route_map": {}}))
    ks = [int(k) for k in shots.split(",") if k.strip()]
    setups: list[tuple[Draw, int, int]] = [("varied", k, 0) for k in ks]
    setups += [("random", k, 0) for k in ks if random]
    if sub_intent_shots:
        setups.append(("sub-intents", sub_intent_shots, 0))
    if none:
        setups += [("varied", max(ks), none)] + (
            [("sub-intents", sub_intent_shots, none)] if sub_intent_shots else []
        )
    with _progress() as progress:
        task = progress.add_task("routing quality", total=len(setups) * seeds)

        def step(label: str) -> None:
            progress.update(task, description=f"routing quality: {label}")
            progress.advance(task)

        result = run_benchmark(
            data, TrainingOptions.from_settings(settings).classifier, policy, setups, seeds, step
        )
    result["environment"] = environment()
    table = Table(title=f"CLINC150 validation, 10 domains as adapters, {seeds} seeds (mean ± sd)")
    for column in (
        "training set",
        "examples",
        "accuracy",
        "routed",
        "in-scope fallback",
        "oos caught",
        "train s",
    ):
        table.add_column(column)
    for row in result["rows"]:
        name = f"{row['draw']} k={row['k']}" + (
            f" + {row['none_examples']} none" if row["none_examples"] else ""
        )
        cells = [
            row[key]
            for key in ("accuracy", "routed_accuracy", "fallback_rate", "oos_recall", "train_seconds")
        ]
        table.add_row(name, str(row["examples"]), *(f"{c['mean']:.3f} ± {c['sd']:.3f}" for c in cells))
    Console().print(table)
    if out:
        write_json(out / "routing-quality.json", result)
        save_curve_png(result, out / "routing-quality.png")
        typer.echo(f"wrote {out / 'routing-quality.json'} and {out / 'routing-quality.png'}")


def _serve_bench(
    base_model_dir: Path | None, adapters_dir: Path | None, adapters: int, **options: object
):  # -> ServeBench
    from commands.bench.fixtures import adapter_folders
    from commands.bench.serve import ServeBench

    settings = _settings()
    base = _base_model(base_model_dir, "--base-model-dir")
    try:
        folders = adapter_folders(adapters_dir or settings.resolved_adapter_root, adapters)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--adapters-dir") from None
    return ServeBench(
        base_model_dir=base,
        adapters=folders,
        base_model_name=settings.base_model_name,
        **options,  # type: ignore[arg-type]
    )


@bench_app.command("serve")
def bench_serve(
    base_model_dir: Annotated[
        Path | None, typer.Option(help="Base model folder (default: the prepared one from settings).")
    ] = None,
    adapters_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder of adapter folders; the first --adapters of them by name are served "
            "(default: the adapter root from settings).",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    adapters: Annotated[int, typer.Option(help="Adapters served; requests go to them in turn.", min=1)] = 4,
    num_prompts: Annotated[int, typer.Option(help="Requests per server.", min=1)] = 32,
    concurrency: Annotated[int, typer.Option(help="Requests in flight.", min=1)] = 8,
    input_len: Annotated[int, typer.Option(help="Prompt tokens per request.", min=1)] = 64,
    output_len: Annotated[int, typer.Option(help="Tokens generated per request (ignore_eos).", min=1)] = 32,
    max_model_len: Annotated[int, typer.Option(help="Context length of both engines.", min=128)] = 2048,
    kv_cache_gib: Annotated[float, typer.Option(help="KV cache of both engines on the CPU, GiB.")] = 1.0,
    api: Annotated[
        Literal["completions", "chat"],
        typer.Option(help="Endpoint driven (completions: TTFT is timed alike on both servers)."),
    ] = "completions",
    out: Annotated[Path | None, typer.Option(help="Write the result as JSON here.")] = None,
) -> None:
    """Service overhead vs plain vLLM: our service, then vLLM's own OpenAI server with the same model,
    adapters and engine settings, each driven by vLLM's serving benchmark; ratios ours / plain."""
    import tempfile

    from rich.console import Console
    from rich.table import Table

    from commands.bench.serve import run_serve_bench
    from commands.bench.stats import write_json

    bench = _serve_bench(
        base_model_dir,
        adapters_dir,
        adapters,
        num_prompts=num_prompts,
        concurrency=concurrency,
        input_len=input_len,
        output_len=output_len,
        max_model_len=max_model_len,
        kv_cache_gib=kv_cache_gib,
        api=api,
    )
    folders = bench.adapters
    steps = 6  # start, warm up, measure; for each server
    with _progress() as progress, tempfile.TemporaryDirectory(prefix="lora-router-bench-serve-") as work:
        task = progress.add_task("starting", total=steps)
        phase = iter(range(steps))
        try:
            result = run_serve_bench(
                bench,
                Path(work),
                on_step=lambda what: progress.update(task, description=what, completed=next(phase)),
            )
        except (RuntimeError, TimeoutError) as error:
            progress.stop()
            typer.echo(f"bench serve failed: {error}", err=True)
            raise typer.Exit(1) from None
        progress.update(task, description="done", completed=steps)

    ours, plain, ratio = result["runs"]["ours"], result["runs"]["plain_vllm"], result["ratio_ours_over_plain"]
    table = Table(
        title=f"service vs plain vLLM ({api}): {len(folders)} adapters, {num_prompts} requests, "
        f"concurrency {concurrency}, {input_len} in / {output_len} out tokens"
    )
    for column in ("measure", "ours", "plain vLLM", "ours / plain"):
        table.add_column(column, justify="right")
    table.add_row(
        "requests ok / failed",
        f"{ours['completed']} / {ours['failed']}",
        f"{plain['completed']} / {plain['failed']}",
        "",
    )
    rows = [("request throughput (req/s)", "request_throughput"), ("output tokens/s", "output_throughput")]
    for metric in ("ttft", "itl"):
        for stat in ("mean", "median", "p99"):
            rows.append((f"{metric.upper()} {stat} (ms)", f"{stat}_{metric}_ms"))
    for label, key in rows:
        share = ratio.get(key)
        table.add_row(label, f"{ours[key]:.2f}", f"{plain[key]:.2f}", "" if share is None else f"{share:.3f}")
    Console().print(table)
    if out:
        write_json(out, result)
        typer.echo(f"wrote {out}")


@bench_app.command("replicas")
def bench_replicas(
    replicas: Annotated[
        str, typer.Option(help="Replica counts, one after the other; 0 is the embedded engine (no hop).")
    ] = "0,1,2",
    base_model_dir: Annotated[
        Path | None, typer.Option(help="Base model folder (default: the prepared one from settings).")
    ] = None,
    adapters_dir: Annotated[
        Path | None,
        typer.Option(help="Folder of adapter folders (default: adapter root).", exists=True, file_okay=False),
    ] = None,
    adapters: Annotated[int, typer.Option(help="Adapters served; requests go to them in turn.", min=1)] = 4,
    num_prompts: Annotated[int, typer.Option(help="Requests per replica count.", min=1)] = 32,
    concurrency: Annotated[int, typer.Option(help="Requests in flight.", min=1)] = 8,
    input_len: Annotated[int, typer.Option(help="Prompt tokens per request.", min=1)] = 64,
    output_len: Annotated[int, typer.Option(help="Tokens generated per request (ignore_eos).", min=1)] = 32,
    kv_cache_gib: Annotated[float, typer.Option(help="KV cache of each replica on the CPU, GiB.")] = 1.0,
    gpu_memory_utilization: Annotated[
        float,
        typer.Option(help="Share of the GPU each engine takes (replicas on one GPU must fit together)."),
    ] = 0.85,
    out: Annotated[Path | None, typer.Option(help="Write the result as JSON here.")] = None,
) -> None:
    """Throughput over engine replicas: for each count, that many `vllm serve` replicas behind one router
    (remote engine), driven by vLLM's serving benchmark client; output tokens/s relative to the first."""
    import tempfile

    from commands.bench.scaleout import run_replica_bench
    from commands.bench.stats import write_json

    counts = _int_list(replicas)
    bench = _serve_bench(
        base_model_dir,
        adapters_dir,
        adapters,
        num_prompts=num_prompts,
        concurrency=concurrency,
        input_len=input_len,
        output_len=output_len,
        kv_cache_gib=kv_cache_gib,
    )
    steps = 3 * len(counts)
    with _progress() as progress, tempfile.TemporaryDirectory(prefix="lora-router-bench-replicas-") as work:
        task = progress.add_task("starting", total=steps)
        phase = iter(range(steps))
        try:
            result = run_replica_bench(
                bench,
                counts,
                Path(work),
                on_step=lambda what: progress.update(task, description=what, completed=next(phase)),
                gpu_memory_utilization=gpu_memory_utilization,
            )
        except (RuntimeError, TimeoutError) as error:
            progress.stop()
            typer.echo(f"bench replicas failed: {error}", err=True)
            raise typer.Exit(1) from None
        progress.update(task, description="done", completed=steps)
    for label, run in result["runs"].items():
        typer.echo(
            f"{label}: {run['output_throughput']:.2f} output tok/s "
            f"({result['output_throughput_vs_first'].get(label, float('nan')):.2f}x), "
            f"TTFT median {run['median_ttft_ms']:.0f} ms, ok/failed {run['completed']}/{run['failed']}, "
            f"requests per replica {run['requests_per_replica']}"
        )
    if out:
        write_json(out, result)
        typer.echo(f"wrote {out}")


@bench_app.command("cold")
def bench_cold(
    path: Annotated[
        str,
        typer.Option(
            help="Adapter folder to register, relative to the service's adapter root "
            "(GET /v1/adapter-folders lists them)."
        ),
    ],
    url: Annotated[str, typer.Option(help="The running service.")] = "http://127.0.0.1:8000",
    name: Annotated[str, typer.Option(help="Prefix of the temporary adapter names.")] = "cold",
    rounds: Annotated[int, typer.Option(help="Measured register → chat → unregister rounds.", min=1)] = 10,
    warm: Annotated[int, typer.Option(help="Warm chats per round, after the cold one.", min=0)] = 5,
    warmup: Annotated[int, typer.Option(help="Unmeasured rounds first.", min=0)] = 1,
    max_tokens: Annotated[int, typer.Option(help="Tokens each answer is made to have.", min=1)] = 8,
    out: Annotated[Path | None, typer.Option(help="Write the result as JSON here.")] = None,
    api_key: ApiKey = None,
) -> None:
    """Cold start of a newly registered adapter: register it (admin key) and chat to it at once; time
    register → first token, the register call, the cold TTFT and warm TTFTs; then unregister it."""
    import httpx
    from rich.console import Console
    from rich.table import Table

    from commands.bench.cold import ColdBenchError, run_cold
    from commands.bench.stats import write_json

    with _progress() as progress:
        task = progress.add_task(f"registering {path} as new adapters", total=warmup + rounds)
        try:
            result = run_cold(
                url,
                path,
                prefix=name,
                rounds=rounds,
                warm=warm,
                warmup_rounds=warmup,
                max_tokens=max_tokens,
                api_key=api_key,
                on_round=lambda: progress.advance(task),
            )
        except (ColdBenchError, httpx.HTTPError) as error:
            progress.stop()
            typer.echo(f"bench cold failed: {error}", err=True)
            raise typer.Exit(1) from None

    table = Table(title=f"cold start: {path} registered {rounds} times, {warm} warm chats each")
    for column in ("measure", "p50 ms", "p99 ms", "n"):
        table.add_column(column, justify="right")
    for label, key in (
        ("register → first token", "register_to_first_token"),
        ("register call", "register"),
        ("TTFT, first chat (cold)", "cold_ttft"),
        ("TTFT, later chats (warm)", "warm_ttft"),
    ):
        if timing := result[key]:
            table.add_row(label, f"{timing['p50_ms']:.1f}", f"{timing['p99_ms']:.1f}", str(timing["n"]))
    Console().print(table)
    if result["cold_over_warm_ttft_p50"] is not None:
        typer.echo(f"cold / warm TTFT (p50): {result['cold_over_warm_ttft_p50']:.2f}x")
    if not result["registry_unchanged"]:
        typer.echo("warning: the service's adapter list differs from before the run", err=True)
    if out:
        write_json(out, result)
        typer.echo(f"wrote {out}")


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}") from None


def _bench_adapters(base: Path, adapters_dir: Path | None, count: int, rank: int) -> list[Path]:
    """Adapter folders under ``adapters_dir``, or ``count`` random ones made for ``base`` (kept for reuse)."""
    from commands.bench.fixtures import adapter_folders, make_lora_adapters

    if adapters_dir is not None:
        try:
            return adapter_folders(adapters_dir, count)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--adapters-dir") from None
    target = _settings().data_dir / "bench" / "adapters" / f"{base.name}-r{rank}"
    with _progress() as progress:
        progress.add_task(f"making {count} random rank-{rank} adapters for {base.name}", total=None)
        return make_lora_adapters(base, target, count, rank=rank)


def _adapter_rank(folders: list[Path]) -> int:
    import json

    return max(json.loads((f / "adapter_config.json").read_text())["r"] for f in folders)


def _vocab_size(base: Path) -> int:
    import json

    return json.loads((base / "config.json").read_text())["vocab_size"]


def _print_rows(title: str, rows: list[dict], columns: dict[str, str]) -> None:  # type: ignore[type-arg]
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for header in columns.values():
        table.add_column(header, justify="right")
    for row in rows:
        cells = []
        for key in columns:
            value: object = row
            for part in key.split("."):
                value = value.get(part, "") if isinstance(value, dict) else ""
            cells.append("base" if key == "adapters" and value == 0 else str(value))
        table.add_row(*cells)
    # Wide enough for every column when the output is a file or a pipe.
    Console(width=max(Console().width, 150)).print(table)


_BENCH_OPTIONS = {
    "base_model_dir": typer.Option(help="Base model (default: the prepared one)."),
    "adapters_dir": typer.Option(help="Folder of adapter folders (default: make random ones)."),
    "adapter_counts": typer.Option(help="Adapters mixed per run, comma-separated (0 = base model only)."),
    "concurrency": typer.Option(help="Requests in flight, comma-separated."),
}


@bench_app.command("engine")
def bench_engine(
    base_model_dir: Annotated[Path | None, _BENCH_OPTIONS["base_model_dir"]] = None,
    adapters_dir: Annotated[Path | None, _BENCH_OPTIONS["adapters_dir"]] = None,
    adapter_counts: Annotated[str, _BENCH_OPTIONS["adapter_counts"]] = "0,1,2,4,8,16",
    concurrency: Annotated[str, _BENCH_OPTIONS["concurrency"]] = "1,8,64",
    prompt_tokens: Annotated[int, typer.Option(help="Prompt length of every request.")] = 128,
    output_tokens: Annotated[int, typer.Option(help="Tokens every request generates (ignore_eos).")] = 128,
    waves: Annotated[int, typer.Option(help="Requests per run, as a multiple of the concurrency.")] = 4,
    rank: Annotated[int, typer.Option(help="Rank of the random adapters made when none are given.")] = 16,
    kv_cache_gib: Annotated[float, typer.Option(help="KV cache on the CPU engine.")] = 2.0,
    gpu_memory_utilization: Annotated[float, typer.Option(help="Share of GPU memory (CUDA).")] = 0.85,
    dtype: Annotated[
        str, typer.Option(help="auto, bfloat16, float16 or float32 (as LORA_ROUTER_DTYPE).")
    ] = "auto",
    cpu_lora_ops: Annotated[
        str, typer.Option(help="batched or vllm (as LORA_ROUTER_CPU_LORA_OPS).")
    ] = "batched",
    out: Annotated[Path | None, typer.Option(help="Write the result as JSON here.")] = None,
) -> None:
    """Scenario 1, the engine alone: output tokens/s and latency for the base model, one adapter and N
    adapters mixed in one stream, at each concurrency (vLLM batches different adapters together)."""
    import asyncio
    from dataclasses import asdict

    import pydantic

    from commands.bench.engine import cold_adapter, relative_to_single_adapter, run_engine_bench
    from commands.bench.fixtures import describe_model, lora_rank_limit
    from commands.bench.stats import environment, write_json
    from commands.bench.workload import grid
    from router.engine import AdapterRef
    from router.engine.vllm_engine import VllmEngine, engine_setup

    base = _base_model(base_model_dir, "--base-model-dir")
    counts, concurrencies = _int_list(adapter_counts), _int_list(concurrency)
    folders = _bench_adapters(base, adapters_dir, max(counts), rank)
    adapters = [AdapterRef(name=f.name, id=i + 1, path=f) for i, f in enumerate(folders)]
    streams = grid(
        counts, concurrencies, prompt_tokens=prompt_tokens, output_tokens=output_tokens, waves=waves
    )
    try:
        settings = _settings(
            base_model_path=base,
            base_model_name=base.name,
            max_loras=max(1, *counts),
            max_cpu_loras=max(1, *counts),
            max_lora_rank=lora_rank_limit(folders) if folders else 16,
            max_model_len=max(128, prompt_tokens + output_tokens + 16),
            kv_cache_gib=kv_cache_gib,
            gpu_memory_utilization=gpu_memory_utilization,
            dtype=dtype,
            cpu_lora_ops=cpu_lora_ops,
        )
    except pydantic.ValidationError as error:
        raise typer.BadParameter(str(error)) from None
    setup = engine_setup(settings)

    async def measure() -> tuple[list[dict], dict]:  # type: ignore[type-arg]
        engine = VllmEngine.from_settings(settings, setup)
        try:
            with _progress() as progress:
                task = progress.add_task("engine: warm-up, then each stream", total=len(streams) + 1)
                rows = await run_engine_bench(
                    engine, streams, adapters, _vocab_size(base), on_done=lambda _: progress.advance(task)
                )
                prompt = streams[0].prompts(_vocab_size(base))[0]
                cold = await cold_adapter(engine, folders[0], prompt, first_id=len(adapters) + 1)
                progress.advance(task)
                return rows, cold
        finally:
            engine.shutdown()

    rows, cold = asyncio.run(measure())
    relative_to_single_adapter(rows)
    result = {
        "scenario": "engine",
        "model": describe_model(base),
        "engine_setup": asdict(setup),
        "adapter_rank": _adapter_rank(folders) if folders else None,
        "prompt_tokens": prompt_tokens,
        "output_tokens": output_tokens,
        "environment": environment(),
        "rows": rows,
        "cold_adapter": cold,
    }
    typer.echo(
        "cold adapter: first request TTFT p50 {:.1f} ms, warm {:.1f} ms".format(
            cold["first_request_ttft"]["p50_ms"], cold["warm_ttft"]["p50_ms"]
        )
    )
    _print_rows(
        f"engine: {base.name} in {setup.dtype}, {setup.lora_ops} LoRA ops, prompt {prompt_tokens} / output "
        f"{output_tokens} tokens",
        rows,
        {
            "adapters": "adapters",
            "concurrency": "concurrency",
            "requests": "requests",
            "output_tokens_per_s": "tok/s",
            "vs_one_adapter": "vs 1 adapter",
            "latency.p50_ms": "latency p50 ms",
            "latency.p99_ms": "p99 ms",
            "ttft.p50_ms": "TTFT p50 ms",
        },
    )
    if out:
        write_json(out, result)
        typer.echo(f"wrote {out}")


@bench_app.command("lora-ops")
def bench_lora_ops(
    base_model_dir: Annotated[Path | None, _BENCH_OPTIONS["base_model_dir"]] = None,
    rank: Annotated[int, typer.Option(help="LoRA rank (the engine's max_lora_rank).")] = 16,
    adapters: Annotated[int, typer.Option(help="Adapters mixed in the batch-16 cases.")] = 4,
    dtypes: Annotated[str, typer.Option(help="Comma-separated: float32, bfloat16.")] = "float32,bfloat16",
    repeats: Annotated[int, typer.Option(help="Timed steps per case (the median is reported).")] = 5,
    threads: Annotated[
        int, typer.Option(help="Torch threads (vLLM's CPU worker gets the cores minus one: 1 on 2 cores).")
    ] = 1,
    out: Annotated[Path | None, typer.Option(help="Write the result as JSON here.")] = None,
) -> None:
    """vLLM's CPU LoRA ops against the batched ones, alone: one engine step's LoRA work on the model's
    layer shapes, for decode at batch 1 and 16 and 30-token prefills."""
    import torch

    torch.set_num_threads(threads)
    from commands.bench.lora_ops import run_lora_ops_bench
    from commands.bench.stats import environment, write_json

    base = _base_model(base_model_dir, "--base-model-dir")
    try:
        torch_dtypes = [getattr(torch, name) for name in dtypes.split(",") if name.strip()]
    except AttributeError as error:
        raise typer.BadParameter(str(error), param_hint="--dtypes") from None
    with _progress() as progress:
        task = progress.add_task("LoRA ops: each case, vLLM's then batched", total=len(torch_dtypes) * 5)
        rows = run_lora_ops_bench(
            base,
            rank=rank,
            adapters=adapters,
            dtypes=torch_dtypes,
            repeats=repeats,
            on_done=lambda _: progress.advance(task),
        )
    _print_rows(
        f"LoRA ops per engine step: {base.name}, rank {rank}, {torch.get_num_threads()} torch threads",
        rows,
        {
            "case": "case",
            "dtype": "dtype",
            "tokens": "tokens",
            "vllm_ms": "vLLM ops ms",
            "batched_ms": "batched ms",
            "speedup": "speed-up",
        },
    )
    if out:
        result = {
            "scenario": "lora-ops",
            "model": base.name,
            "rank": rank,
            "torch_threads": torch.get_num_threads(),
            "environment": environment(),
            "rows": rows,
        }
        write_json(out, result)
        typer.echo(f"wrote {out}")


@bench_app.command("hotswap")
def bench_hotswap(
    base_model_dir: Annotated[Path | None, _BENCH_OPTIONS["base_model_dir"]] = None,
    adapters_dir: Annotated[Path | None, _BENCH_OPTIONS["adapters_dir"]] = None,
    adapter_counts: Annotated[str, _BENCH_OPTIONS["adapter_counts"]] = "0,1,16",
    concurrency: Annotated[str, _BENCH_OPTIONS["concurrency"]] = "64",
    prompt_tokens: Annotated[int, typer.Option(help="Prompt length of every request.")] = 128,
    output_tokens: Annotated[int, typer.Option(help="Tokens every request generates.")] = 128,
    waves: Annotated[int, typer.Option(help="Requests per run, as a multiple of the concurrency.")] = 1,
    rank: Annotated[int, typer.Option(help="Rank of the random adapters made when none are given.")] = 16,
    device: Annotated[str | None, typer.Option(help="cuda or cpu (default: cuda when there is one).")] = None,
    dtype: Annotated[
        str | None, typer.Option(help="Weights (default: bfloat16 on cuda, float32 on cpu).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the result as JSON here.")] = None,
) -> None:
    """Scenario 2, the naive baseline: the same stream on transformers + PEFT, `set_adapter` per request,
    batching only runs of consecutive requests on one adapter."""
    import torch

    from commands.bench.fixtures import describe_model
    from commands.bench.hotswap import load_model, run_hotswap_bench
    from commands.bench.stats import environment, write_json
    from commands.bench.workload import grid

    _quiet_transformers()
    base = _base_model(base_model_dir, "--base-model-dir")
    counts, concurrencies = _int_list(adapter_counts), _int_list(concurrency)
    folders = _bench_adapters(base, adapters_dir, max(1, *counts), rank)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or ("bfloat16" if device == "cuda" else "float32")
    streams = grid(
        counts, concurrencies, prompt_tokens=prompt_tokens, output_tokens=output_tokens, waves=waves
    )
    model = load_model(base, folders, device, dtype)
    with _progress() as progress:
        task = progress.add_task("hot-swap: warm-up, then each stream", total=len(streams))
        rows = run_hotswap_bench(model, streams, _vocab_size(base), on_done=lambda _: progress.advance(task))
    result = {
        "scenario": "hotswap",
        "model": describe_model(base),
        "device": device,
        "dtype": dtype,
        "prompt_tokens": prompt_tokens,
        "output_tokens": output_tokens,
        "environment": environment(),
        "rows": rows,
    }
    _print_rows(
        f"hot-swap (transformers + PEFT, {device}): {base.name}",
        rows,
        {
            "adapters": "adapters",
            "concurrency": "max batch",
            "requests": "requests",
            "batches": "batches",
            "output_tokens_per_s": "tok/s",
            "completion.p50_ms": "done p50 ms",
        },
    )
    if out:
        write_json(out, result)
        typer.echo(f"wrote {out}")


@bench_app.command("compare")
def bench_compare(
    engine_json: Annotated[Path, typer.Argument(help="`bench engine` result.", exists=True)],
    hotswap_json: Annotated[
        list[Path] | None,
        typer.Argument(help="`bench hotswap` results on the same stream (rows joined).", exists=True),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the comparison as JSON here.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write the plot as PNG here.")] = None,
) -> None:
    """Throughput of vLLM multi-LoRA against the hot-swap baseline on the same stream, and the plot."""
    import json

    from commands.bench.plot import compare, save_plot
    from commands.bench.stats import write_json

    engine = json.loads(engine_json.read_text())
    parts = [json.loads(path.read_text()) for path in hotswap_json or []]
    hotswap = {**parts[0], "rows": [row for part in parts for row in part["rows"]]} if parts else None
    rows = compare(engine, hotswap) if hotswap else []
    if rows:
        _print_rows(
            "vLLM multi-LoRA vs hot-swap",
            rows,
            {
                "adapters": "adapters",
                "concurrency": "concurrency",
                "vllm_tokens_per_s": "vLLM tok/s",
                "hotswap_tokens_per_s": "hot-swap tok/s",
                "vllm_over_hotswap": "ratio",
            },
        )
    if out:
        names = {"engine": engine_json.name, "hotswap": [path.name for path in hotswap_json or []]}
        write_json(out, {**names, "rows": rows})
    if plot:
        gpu = engine["environment"].get("gpu") or f"CPU ({engine['environment']['cpus']} cores)"
        model = engine["model"]
        title = (
            f"{model['path']} ({model['parameters'] / 1e6:.0f}M params) on {gpu}: "
            f"prompt {engine['prompt_tokens']}, output {engine['output_tokens']} tokens"
        )
        save_plot(engine, hotswap, plot, title)
        typer.echo(f"wrote {plot}")
