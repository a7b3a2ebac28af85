"""Schema rules of registrations and generation defaults, and the error types the API maps to JSON."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from lora_registry import (
    AdapterExistsError,
    AdapterNotFoundError,
    AdapterPathError,
    AdapterRegistration,
    AdapterSpec,
    AdapterValidationError,
    GenerationDefaults,
    InvalidAdapterNameError,
    RegistryError,
    check_adapter_name,
)


@pytest.mark.parametrize(
    "fields",
    [
        {"stop": [""]},
        {"stop": [str(i) for i in range(9)]},
        {"temperature": -0.1},
        {"temperature": 2.5},
        {"top_p": 0},
        {"top_p": 1.1},
        {"max_tokens": 0},
        {"presence_penalty": 0.5},
    ],
)
def test_generation_defaults_refuse_out_of_range_values(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        GenerationDefaults.model_validate(fields)


def test_generation_defaults_accept_bounds() -> None:
    defaults = GenerationDefaults(stop=["x"] * 8, temperature=2, top_p=1, max_tokens=1, system_prompt="")
    assert defaults.temperature == 2 and len(defaults.stop) == 8
    assert GenerationDefaults().model_dump() == {
        "system_prompt": None, "stop": [], "temperature": None, "top_p": None, "max_tokens": None,
        "response_format": None,
    }  # fmt: skip


def test_registration_schema() -> None:
    assert AdapterRegistration(name="a", path="a").defaults == GenerationDefaults()
    with pytest.raises(ValidationError):
        AdapterRegistration(name="a", path="a", description="x" * 1001)
    with pytest.raises(ValidationError):
        AdapterRegistration.model_validate({"name": "a", "path": "a", "id": 3})


@pytest.mark.parametrize(
    "examples",
    [
        ["one", "two"],
        {"refund": ["money back", "refund it"], "card-lost": ["lost my card"]},
        [],
        {},
    ],
)
def test_examples_are_a_list_or_sub_intents(examples: object) -> None:
    assert AdapterRegistration(name="billing", path="b", examples=examples).examples == examples


@pytest.mark.parametrize(
    "examples",
    [
        {"bad name": ["x"]},  # a sub-intent is named like an adapter
        {"refund": []},  # every sub-intent needs an utterance
        {"refund": [""]},
        ["x" * 2001],
        {"a": ["x"] * 200, "b": ["y"] * 57},  # 257 in all
        "just a string",
    ],
)
def test_bad_examples_are_refused(examples: object) -> None:
    with pytest.raises(ValidationError):
        AdapterRegistration.model_validate({"name": "billing", "path": "b", "examples": examples})


def spec(**fields: object) -> AdapterSpec:
    return AdapterSpec(
        id=1,
        name="billing",
        path=Path("/a"),
        base_model="b",
        rank=8,
        alpha=16,
        target_modules=["q_proj"],
        size_bytes=1,
        description="",
        defaults=GenerationDefaults(),
        created_at=0,
        **fields,
    )


def test_labelled_examples_name_the_adapter_or_its_sub_intents() -> None:
    assert spec(examples=["a", "b"]).labelled_examples() == [("billing", "a"), ("billing", "b")]
    sub = spec(examples={"refund": ["r"], "card-lost": ["c1", "c2"]})
    assert sub.labelled_examples() == [
        ("billing/refund", "r"),
        ("billing/card-lost", "c1"),
        ("billing/card-lost", "c2"),
    ]


def test_spec_is_frozen() -> None:
    frozen = spec()
    with pytest.raises(ValidationError):
        frozen.id = 2  # type: ignore[misc]


def test_check_adapter_name() -> None:
    assert check_adapter_name("sql-expert_v1.2", {"auto"}) == "sql-expert_v1.2"
    with pytest.raises(InvalidAdapterNameError):
        check_adapter_name("Auto", {"auto"})


@pytest.mark.parametrize(
    ("error", "status", "code", "param"),
    [
        (AdapterValidationError("m", param="weights"), 422, "invalid_adapter", "weights"),
        (AdapterPathError("m"), 400, "invalid_adapter_path", "path"),
        (InvalidAdapterNameError("m"), 400, "invalid_adapter_name", "name"),
        (AdapterExistsError("a"), 409, "adapter_exists", "name"),
        (AdapterNotFoundError("a", ["b"]), 404, "model_not_found", "name"),
        (RegistryError("m", param="registry_file"), 400, "registry_error", "registry_file"),
    ],
)
def test_error_attributes(error: RegistryError, status: int, code: str, param: str) -> None:
    assert isinstance(error, RegistryError)
    assert (error.status_code, error.code, error.param) == (status, code, param)
    assert str(error) == error.message


def test_error_overrides() -> None:
    error = RegistryError("m", code="custom", status_code=503)
    assert (error.status_code, error.code, error.param) == (503, "custom", None)
    # Overriding one instance leaves the class default alone.
    assert RegistryError("n").status_code == 400
