"""Compositions of registered adapters: named in a request's ``model`` (``"sql+extract"``, equal weights, or
``"sql:0.7+extract:0.3"``) or registered with ``compose`` (the same parts, as a list).

Adapter names never hold ``:`` or ``+`` (``spec.NAME_PATTERN``), so a ``model`` holding either is a
composition and nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from lora_registry.errors import RegistryError
from lora_registry.spec import NAME_PATTERN, ComposePart

MAX_PARTS = 4
PART_SEPARATOR = "+"
WEIGHT_SEPARATOR = ":"


class CompositionError(RegistryError):
    status_code = 400
    code = "invalid_composition"

    def __init__(self, message: str, *, param: str = "model") -> None:
        super().__init__(message, param=param)

    @classmethod
    def unknown_part(cls, what: str, part: str, registered: list[str], *, param: str) -> CompositionError:
        return cls(
            f"{what}: {part!r} is not a registered adapter. Registered: {', '.join(registered) or 'none'}",
            param=param,
        )


def is_composition(model: str) -> bool:
    return PART_SEPARATOR in model or WEIGHT_SEPARATOR in model


def parse_composition(model: str) -> tuple[ComposePart, ...]:
    """The parts of ``model``; raises CompositionError naming what is wrong with it."""
    pieces = [text.partition(WEIGHT_SEPARATOR) for text in model.split(PART_SEPARATOR)]
    weighted = [bool(sep) for _, sep, _ in pieces]
    if any(weighted) and not all(weighted):
        raise CompositionError(
            f"composition {model!r} gives weights to some parts only: weigh every part "
            "('sql:0.7+extract:0.3') or none ('sql+extract', equal weights)"
        )
    parts = [
        ComposePart(adapter=name, weight=_weight(weight, name, model) if sep else 1.0 / len(pieces))
        for name, sep, weight in pieces
    ]
    return check_parts(parts, f"composition {model!r}", param="model")


def check_parts(parts: Sequence[ComposePart], what: str, *, param: str) -> tuple[ComposePart, ...]:
    """``parts`` if they make a composition; otherwise CompositionError naming ``param``."""
    if not 1 <= len(parts) <= MAX_PARTS:
        raise CompositionError(f"{what} has {len(parts)} parts; 1 to {MAX_PARTS} are allowed", param=param)
    for part in parts:
        if not NAME_PATTERN.fullmatch(part.adapter):
            raise CompositionError(
                f"{what}: {part.adapter!r} is not an adapter name (in `model`, parts are joined by '+' and "
                "a weight follows its adapter after ':')",
                param=param,
            )
        if not math.isfinite(part.weight) or part.weight < 0:
            raise CompositionError(
                f"{what}: the weight of {part.adapter!r} is {part.weight}; weights are finite and at least 0",
                param=param,
            )
    names = [part.adapter for part in parts]
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        raise CompositionError(f"{what} names {', '.join(map(repr, repeated))} more than once", param=param)
    if not any(part.weight > 0 for part in parts):
        raise CompositionError(
            f"{what} weighs every part 0; ask for the base model by its name instead", param=param
        )
    return tuple(parts)


def composition_name(parts: Sequence[ComposePart]) -> str:
    """The canonical spelling: every weight written, shortest form (``sql:0.5+extract:0.5``)."""
    return PART_SEPARATOR.join(f"{part.adapter}{WEIGHT_SEPARATOR}{part.weight:g}" for part in parts)


def _weight(text: str, name: str, model: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise CompositionError(
            f"composition {model!r}: the weight of {name!r}, {text!r}, is not a number"
        ) from None
