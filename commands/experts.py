"""The LoRA experts' commands: task data, adapter training and merging, evaluation through a service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from commands.common import ApiKey, progress_bar, quiet_transformers, resolve_base_model, service_models


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
    base = resolve_base_model(base_model)
    quiet_transformers()
    with progress_bar() as progress:
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
    float32: Annotated[
        bool,
        typer.Option(
            "--float32",
            help="Save in float32, not the base's dtype: no rounding of the merged weights (twice the size).",
        ),
    ] = False,
) -> None:
    """Merge an adapter into the base weights as a standalone model, checked against W + (alpha/r)·B·A.

    For adapters the engine cannot serve as a LoRA (e.g. with modules_to_save). Every LoRA-targeted weight is
    recomputed from the base and adapter files; every other weight must equal the base's exactly."""
    from experts.merge import MergeCheckError, merge_adapter

    if output.exists() and not overwrite:
        raise typer.BadParameter(f"{output} exists; pass --overwrite to replace it", param_hint="--output")
    base = resolve_base_model(base_model)
    quiet_transformers()
    with progress_bar() as progress:
        progress.add_task(f"merging {adapter.name} into {base.name}", total=None)
        try:
            report = merge_adapter(
                base, adapter, output, tolerance=tolerance, overwrite=overwrite, float32=float32
            )
        except MergeCheckError as error:
            progress.stop()
            typer.echo(error.report.summary(), err=True)
            raise typer.Exit(1) from None
    typer.echo(f"merged model written to {output}\n{report.summary()}")


def eval_experts(
    url: Annotated[str, typer.Option(help="The running service.")] = "http://127.0.0.1:8000",
    n: Annotated[int, typer.Option(help="Eval messages per task (sql, math, extract, chat).")] = 40,
    seed: Annotated[int, typer.Option(help="Seed of the eval splits.")] = 0,
    concurrency: Annotated[int, typer.Option(help="Requests in flight (the engine batches them).")] = 16,
    cross: Annotated[bool, typer.Option(help="Also ask every expert every other task.")] = False,
    pairs: Annotated[
        bool,
        typer.Option(
            help="Also ask each pair of experts composed at 0.5/0.5 (`sql:0.5+math:0.5`) both parts' tasks "
            "(the service's max_lora_rank must hold two experts' ranks)."
        ),
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Folder for experts.json and experts.png.")] = None,
    api_key: ApiKey = None,
) -> None:
    """Score the base model, each expert and `auto` on every task's eval split through a running service
    (greedy), and the base / expert / oracle / auto policies on the mixed set."""

    from commands.client import service_client
    from experts.evaluation import evaluate_experts, pairwise_compositions, request_count
    from experts.tasks import TASKS

    base = service_models(url, api_key)[0]
    experts = [name for name, t in TASKS.items() if t.has_expert]
    compositions = pairwise_compositions(experts) if pairs else []
    with progress_bar() as progress, service_client(url, api_key, timeout_s=600.0) as client:
        total = request_count(n, len(experts), cross=cross, compositions=compositions)
        task = progress.add_task("experts: asking the service", total=total)
        report = evaluate_experts(
            client,
            base_model=base,
            n_per_task=n,
            seed=seed,
            concurrency=concurrency,
            cross=cross,
            compositions=compositions,
            on_answer=lambda: progress.advance(task),
        )
    typer.echo(f"every model on every task ({n} eval messages each, greedy):\n{report.grid_table()}\n")
    typer.echo(f"policies:\n{report.table()}\n")
    if compositions:
        typer.echo(f"compositions on their parts' tasks:\n{report.composition_table()}\n")
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
        if compositions:
            report.save_composition_png(out / "compositions.png")
            typer.echo(f"wrote {out / 'compositions.png'}")


def eval_merged(
    reference: Annotated[Path, typer.Argument(help="experts.json of an `eval-experts` run.", exists=True)],
    adapter: Annotated[
        str, typer.Option(help="The adapter or composition that was merged (its tasks are compared).")
    ],
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
        model = service_models(url, api_key)[0]
    try:
        with progress_bar() as progress, service_client(url, api_key, timeout_s=600.0) as client:
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


def eval_blend(
    url: Annotated[
        str, typer.Option(help="The running service, with ROUTER_BLEND on.")
    ] = "http://127.0.0.1:8000",
    pool: Annotated[
        int, typer.Option(help="Eval messages per expert's task routed to find the blended ones.", min=1)
    ] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the eval splits.")] = 0,
    concurrency: Annotated[int, typer.Option(help="Requests in flight.")] = 16,
    out: Annotated[Path | None, typer.Option(help="Write the evaluation as JSON here.")] = None,
    api_key: ApiKey = None,
) -> None:
    """Blending under the margin, judged where it acts: route a pool of eval messages, and on the ones `auto`
    answers with a blend of its top two experts, score the blend against the base model (its answer with
    blending off), the blend's heavier expert alone and the message's own expert."""
    from commands.client import service_client
    from experts.evaluation import evaluate_blends

    base = service_models(url, api_key)[0]
    with progress_bar() as progress, service_client(url, api_key, timeout_s=600.0) as client:
        task = progress.add_task("routing the pool, then asking about the blended messages", total=None)
        result = evaluate_blends(
            client,
            base_model=base,
            pool_per_task=pool,
            seed=seed,
            concurrency=concurrency,
            on_answer=lambda: progress.advance(task),
        )
    blended = len(result.blended)
    typer.echo(f"{blended} of {result.routed} routed eval messages were blended")
    if blended:
        typer.echo(result.table())
    else:
        typer.echo(
            "nothing to compare: no message fell under the margin with two experts on top "
            "(is LORA_ROUTER_ROUTER_BLEND on?)"
        )
    if out:
        out.write_text(result.to_json())
        typer.echo(f"wrote {out}")
