"""Score experts through a running service: every model on every task's eval split, and `auto`.

Each request is a greedy chat completion over HTTP, so what is scored is exactly what users get: the real
engine, the real adapters, the live router. From one grid of (model, task) scores follow the policies:

- ``base``: the base model answers everything;
- ``expert``: each task's own expert answers it (chat has none: the base model);
- ``oracle``: the right expert for every message of the mixed set, by construction — the ``expert``
  answers, since a pinned request and an oracle-routed one are the same request;
- ``auto``: the service's router picks, message by message.

With ``cross=True`` every expert also answers every other task: the grid then shows what an expert does
off its own task, which is why routing matters (it costs the engine as many requests again).

Compositions (``sql:0.5+extract:0.5``, served as one adapter) answer each of their parts' tasks: how much
of each expert's score survives beside another expert's delta.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from experts.tasks import TASKS, TaskExample

AUTO = "auto"
# Long enough for every gold answer of its task, short enough that a rambling base model stops soon.
MAX_TOKENS = {"sql": 96, "math": 96, "extract": 128, "chat": 96}


@dataclass
class Answer:
    task: str
    model: str
    prompt: str
    output: str
    score: float
    answered_by: str
    routing: dict[str, Any] | None = None


@dataclass
class ExpertEval:
    base_model: str
    tasks: list[str]
    models: list[str]
    n_per_task: int
    seed: int
    # grid[model][task] = mean score; "auto" is one more row; cells not asked for are missing.
    grid: dict[str, dict[str, float]] = field(default_factory=dict)
    policies: dict[str, dict[str, float]] = field(default_factory=dict)
    routing_accuracy: float | None = None
    answers: list[Answer] = field(default_factory=list)
    compositions: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ExpertEval:
        data = json.loads(text)
        return cls(**{**data, "answers": [Answer(**a) for a in data["answers"]]})

    def table(self) -> str:
        """Policies by task, plus the mixed-set mean, as Markdown."""
        head = ["policy", *self.tasks, "mixed"]
        lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for policy, scores in self.policies.items():
            cells = [f"{scores[t]:.3f}" for t in [*self.tasks, "mixed"]]
            lines.append(f"| {policy} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def grid_table(self) -> str:
        head = ["model \\ task", *self.tasks]
        lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for model, scores in self.grid.items():
            cells = [f"{scores[t]:.3f}" if t in scores else "-" for t in self.tasks]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def composition_table(self) -> str:
        """Each composition on each part's task, beside that part alone and the base model, as Markdown."""
        lines = [
            "| composition | task | composed | expert alone | kept | base |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for model in self.compositions:
            for task in composition_parts(model):
                composed, alone = self.grid[model][task], self.grid[task][task]
                kept = f"{composed / alone:.0%}" if alone else "-"
                base = self.grid[self.base_model][task]
                lines.append(f"| {model} | {task} | {composed:.3f} | {alone:.3f} | {kept} | {base:.3f} |")
        return "\n".join(lines)

    def save_composition_png(self, path: Path) -> None:
        """Each composition's score on each part's task beside the part alone and the base model."""
        cells = [(model, task) for model in self.compositions for task in composition_parts(model)]
        bars = {
            "expert alone": [self.grid[task][task] for _, task in cells],
            "composed": [self.grid[model][task] for model, task in cells],
            "base model": [self.grid[self.base_model][task] for _, task in cells],
        }
        title = f"compositions on their parts' tasks: {self.n_per_task} eval messages per task, greedy"
        labels = [f"{model}\non {task}" for model, task in cells]
        _save_bars(path, labels, bars, title, group_width=1.5, label_size=7)

    def save_png(self, path: Path) -> None:
        groups = [*self.tasks, "mixed"]
        bars = {policy: [scores[g] for g in groups] for policy, scores in self.policies.items()}
        title = f"experts on {self.base_model}: {self.n_per_task} eval messages per task, greedy"
        _save_bars(path, groups, bars, title, group_width=1.6)


def _save_bars(
    path: Path,
    groups: list[str],
    bars: dict[str, list[float]],
    title: str,
    *,
    group_width: float,
    label_size: float | None = None,
) -> None:
    """Scores from 0 to 1 as bars side by side in each group, one colour per series, the legend below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    width = 0.8 / len(bars)
    fig, ax = plt.subplots(figsize=(group_width * len(groups) + 2, 3.8))
    for i, (name, values) in enumerate(bars.items()):
        ax.bar(np.arange(len(groups)) + (i - (len(bars) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(np.arange(len(groups)), groups, fontsize=label_size)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.legend(ncols=len(bars), loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def eval_examples(n_per_task: int, seed: int) -> dict[str, list[TaskExample]]:
    return {name: task.examples("eval", n_per_task, seed=seed) for name, task in TASKS.items()}


def _chat(client: httpx.Client, model: str, example: TaskExample) -> tuple[str, str, dict[str, Any] | None]:
    response = client.post(
        "/v1/chat/completions",
        json={
            "model": model,
            "messages": [{"role": "user", "content": example.prompt}],
            "temperature": 0,
            "max_tokens": MAX_TOKENS.get(example.task, 128),
        },
    )
    if response.status_code != 200:
        status, text = response.status_code, response.text
        raise RuntimeError(f"{model} on a {example.task} message: HTTP {status}: {text}")
    body = response.json()
    return body["choices"][0]["message"]["content"] or "", body["model"], body.get("routing")


def _ask_all(
    client: httpx.Client,
    jobs: Sequence[tuple[str, TaskExample]],
    concurrency: int,
    on_answer: Callable[[], None],
) -> list[Answer]:
    """Each (model, example) asked greedily, ``concurrency`` at a time so the engine batches them, and the
    answer scored with its task's scorer; in the order of ``jobs``."""

    def run(job: tuple[str, TaskExample]) -> Answer:
        model, example = job
        output, answered_by, routing = _chat(client, model, example)
        on_answer()
        score = TASKS[example.task].score(example, output)
        return Answer(example.task, model, example.prompt, output, score, answered_by, routing)

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(run, jobs))


def request_count(
    n_per_task: int, n_experts: int, *, cross: bool = False, compositions: Sequence[str] = ()
) -> int:
    tasks = len(TASKS)
    composed = sum(len(composition_parts(c)) for c in compositions)
    return n_per_task * (2 * tasks + (n_experts * tasks if cross else n_experts) + composed)


def composition_parts(model: str) -> list[str]:
    """The adapters a composition names (``sql:0.5+extract:0.5``: parts joined by '+', a weight after ':')."""
    return [part.partition(":")[0] for part in model.split("+")]


def pairwise_compositions(experts: Sequence[str], weight: float = 0.5) -> list[str]:
    """Every pair of ``experts``, each part weighed ``weight``."""
    return [f"{a}:{weight:g}+{b}:{weight:g}" for i, a in enumerate(experts) for b in experts[i + 1 :]]


def evaluate_experts(
    client: httpx.Client,
    *,
    base_model: str,
    experts: Sequence[str] | None = None,
    n_per_task: int = 40,
    seed: int = 0,
    concurrency: int = 16,
    cross: bool = False,
    compositions: Sequence[str] = (),
    on_answer: Callable[[], None] = lambda: None,
) -> ExpertEval:
    """Ask the base model and `auto` every eval message, each expert its own task's (every task's with
    ``cross``) and each composition its parts' tasks', ``concurrency`` requests at a time so the engine
    batches them, and score the answers with the tasks' own scorers. ``client`` is rooted at the service
    and sends its key; the caller owns it."""
    examples = eval_examples(n_per_task, seed)
    expert_names = list(experts) if experts is not None else [n for n, t in TASKS.items() if t.has_expert]
    models = [base_model, *expert_names, AUTO, *compositions]
    asks = {model: composition_parts(model) for model in compositions}
    jobs = [
        (model, example)
        for model in models
        for task, items in examples.items()
        if cross and model not in asks or model in (base_model, AUTO, task) or task in asks.get(model, ())
        for example in items
    ]

    answers = _ask_all(client, jobs, concurrency, on_answer)
    tasks = list(examples)
    scores: dict[tuple[str, str], list[float]] = {}
    for a in answers:
        scores.setdefault((a.model, a.task), []).append(a.score)
    grid = {
        model: {task: _mean(scores[(model, task)]) for task in tasks if (model, task) in scores}
        for model in models
    }
    own = {task: task if task in expert_names else base_model for task in tasks}
    policies = {
        "base": grid[base_model],
        "expert": {task: grid[own[task]][task] for task in tasks},
        "oracle": {task: grid[own[task]][task] for task in tasks},
        "auto": grid[AUTO],
    }
    for by_task in policies.values():
        by_task["mixed"] = _mean([by_task[task] for task in tasks])
    routed = [a for a in answers if a.model == AUTO]
    routing_accuracy = _mean([float(a.answered_by == own[a.task]) for a in routed])
    return ExpertEval(
        base_model=base_model,
        tasks=tasks,
        models=models,
        n_per_task=n_per_task,
        seed=seed,
        grid=grid,
        policies=policies,
        routing_accuracy=routing_accuracy,
        answers=answers,
        compositions=list(compositions),
    )


def _mean(values: Sequence[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


@dataclass
class Agreement:
    """The same eval messages asked of two deployments: how often the greedy answers match, and the scores."""

    reference_model: str
    model: str
    task: str
    n: int
    same_output: int
    reference_score: float
    score: float
    differing: list[dict[str, str]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.same_output / self.n if self.n else 0.0

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "rate": round(self.rate, 4)}, indent=2) + "\n"


def own_task_answers(reference: ExpertEval, model: str) -> list[Answer]:
    """``model``'s answers in ``reference`` on its own task (an expert is named after its task), or for a
    composition on its parts' tasks."""
    tasks = composition_parts(model) if model in reference.compositions else [model]
    return [a for a in reference.answers if a.model == model and a.task in tasks]


def compare_with_reference(
    client: httpx.Client,
    model: str,
    reference: ExpertEval,
    reference_model: str,
    *,
    concurrency: int = 16,
    on_answer: Callable[[], None] = lambda: None,
) -> Agreement:
    """Ask ``model`` through ``client`` (rooted at a service) the messages ``reference_model`` answered in
    ``reference`` (its own task's, same request) and compare outputs — e.g. a merged model served without
    LoRA against its adapter."""
    mine = own_task_answers(reference, reference_model)
    if not mine:
        raise ValueError(f"the reference has no answers of {reference_model!r} on its own task")
    asked = eval_examples(reference.n_per_task, reference.seed)
    by_prompt = {(e.task, e.prompt): e for items in asked.values() for e in items}
    examples = [by_prompt[(a.task, a.prompt)] for a in mine]

    def ask(example: TaskExample) -> str:
        output = _chat(client, model, example)[0]
        on_answer()
        return output

    with ThreadPoolExecutor(concurrency) as pool:
        outputs = list(pool.map(ask, examples))
    differing = [
        {"prompt": a.prompt, "reference": a.output, "output": out}
        for a, out in zip(mine, outputs, strict=True)
        if out != a.output
    ]
    return Agreement(
        reference_model=reference_model,
        model=model,
        task="+".join(dict.fromkeys(a.task for a in mine)),
        n=len(mine),
        same_output=len(mine) - len(differing),
        reference_score=_mean([a.score for a in mine]),
        score=_mean([TASKS[e.task].score(e, out) for e, out in zip(examples, outputs, strict=True)]),
        differing=differing,
    )


# What each policy answers a message `auto` blends: the blend itself, what `auto` answers there with
# blending off (the base model, its fallback), the top adapter alone (no margin), the message's own expert.
BLEND_POLICIES = ("blend", "fallback", "top adapter", "own expert")


@dataclass
class BlendEval:
    """`auto` with blending against the other answers it could give, on the messages it blends."""

    base_model: str
    pool_per_task: int
    seed: int
    routed: int
    # policy -> mean score on the blended messages (empty when none was blended)
    scores: dict[str, float] = field(default_factory=dict)
    answers: dict[str, list[Answer]] = field(default_factory=dict)
    """Per policy, its answers to the blended messages."""
    blended: list[dict[str, Any]] = field(default_factory=list)
    """Each blended message: its task, prompt, the composition `auto` answered with, and the detail."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def table(self) -> str:
        lines = ["| policy | mean score |", "| --- | --- |"]
        lines += [f"| {policy} | {score:.3f} |" for policy, score in self.scores.items()]
        return "\n".join(lines)


def evaluate_blends(
    client: httpx.Client,
    *,
    base_model: str,
    pool_per_task: int = 200,
    seed: int = 0,
    concurrency: int = 16,
    on_answer: Callable[[], None] = lambda: None,
) -> BlendEval:
    """Route ``pool_per_task`` eval messages of each task with an expert (``/v1/route``: no generation); on
    the ones the service answers by blending (routing mode ``blend``: it runs with ROUTER_BLEND on), ask
    `auto`, the base model, the blend's heaviest part alone and the message's own expert, and score each
    answer. (Chat, with no expert, has too few eval messages for a pool.)"""
    examples = [
        example
        for task in TASKS.values()
        if task.has_expert
        for example in task.examples("eval", pool_per_task, seed=seed)
    ]

    def route(example: TaskExample) -> dict[str, Any]:
        response = client.post("/v1/route", json={"text": example.prompt})
        if response.status_code != 200:
            raise RuntimeError(
                f"routing a {example.task} message: HTTP {response.status_code}: {response.text}"
            )
        return dict(response.json())

    with ThreadPoolExecutor(concurrency) as pool:
        routings = list(pool.map(route, examples))
    blended = [(e, r) for e, r in zip(examples, routings, strict=True) if r["mode"] == "blend"]
    jobs: list[tuple[str, str, TaskExample]] = []
    for example, routing in blended:
        composition: dict[str, float] = routing["composition"]
        top = max(composition, key=lambda adapter: composition[adapter])
        jobs += [("blend", AUTO, example), ("fallback", base_model, example)]
        jobs += [("top adapter", top, example), ("own expert", example.task, example)]

    answered = _ask_all(client, [(model, example) for _, model, example in jobs], concurrency, on_answer)
    answers: dict[str, list[Answer]] = {}
    for (policy, _, _), answer in zip(jobs, answered, strict=True):
        answers.setdefault(policy, []).append(answer)
    return BlendEval(
        base_model=base_model,
        pool_per_task=pool_per_task,
        seed=seed,
        routed=len(examples),
        scores={
            policy: _mean([a.score for a in answers[policy]])
            for policy in BLEND_POLICIES
            if policy in answers
        },
        answers=answers,
        blended=[
            {"task": e.task, "prompt": e.prompt, "composition": r["composition"], "detail": r.get("detail")}
            for e, r in blended
        ],
    )
