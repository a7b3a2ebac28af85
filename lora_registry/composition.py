"""Compositions of registered adapters named in a request's ``model``: ``"sql+extract"`` (equal weights) or
``"sql:0.7+extract:0.3"``.

Adapter names never hold ``:`` or ``+`` (``spec.NAME_PATTERN``), so a ``model`` holding either is a
composition and nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lora_registry.errors import RegistryError
from lora_registry.spec import NAME_PATTERN

MAX_PARTS = 4
PART_SEPARATOR = "+"
WEIGHT_SEPARATOR = ":"


class CompositionError(RegistryError):
    status_code = 400
    code = "invalid_composition"

    def __init__(self, message: str, *, param: str = "model") -> None:
        super().__init__(message, param=param)


@dataclass(frozen=True)
class Part:
    adapter: str
    weight: float


def is_composition(model: str) -> bool:
    return PART_SEPARATOR in model or WEIGHT_SEPARATOR in model


def parse_composition(model: str) -> tuple[Part, ...]:
    """The parts of ``model``; raises CompositionError naming what is wrong with it."""
    texts = model.split(PART_SEPARATOR)
    if len(texts) > MAX_PARTS:
        raise CompositionError(
            f"composition {model!r} has {len(texts)} parts; at most {MAX_PARTS} are allowed"
        )
    pieces = [text.partition(WEIGHT_SEPARATOR) for text in texts]
    weighted = [bool(sep) for _, sep, _ in pieces]
    if any(weighted) and not all(weighted):
        raise CompositionError(
            f"composition {model!r} gives weights to some parts only: weigh every part "
            "('sql:0.7+extract:0.3') or none ('sql+extract', equal weights)"
        )
    parts = tuple(
        Part(_part_name(name, model), _weight(weight, name, model) if sep else 1.0 / len(texts))
        for name, sep, weight in pieces
    )
    names = [part.adapter for part in parts]
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        raise CompositionError(f"composition {model!r} names {', '.join(map(repr, repeated))} more than once")
    if not any(part.weight > 0 for part in parts):
        raise CompositionError(
            f"composition {model!r} weighs every part 0; ask for the base model by its name instead"
        )
    return parts


def composition_name(parts: Sequence[Part]) -> str:
    """The canonical spelling: every weight written, shortest form (``sql:0.5+extract:0.5``)."""
    return PART_SEPARATOR.join(f"{part.adapter}{WEIGHT_SEPARATOR}{part.weight:g}" for part in parts)


def _part_name(name: str, model: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise CompositionError(
            f"composition {model!r}: {name!r} is not an adapter name (parts are joined by '+', a weight "
            "follows its adapter after ':')"
        )
    return name


def _weight(text: str, name: str, model: str) -> float:
    try:
        weight = float(text)
    except ValueError:
        raise CompositionError(
            f"composition {model!r}: the weight of {name!r}, {text!r}, is not a number"
        ) from None
    if not math.isfinite(weight) or weight < 0:
        raise CompositionError(
            f"composition {model!r}: the weight of {name!r} is {text!r}; weights are finite and at least 0"
        )
    return weight
