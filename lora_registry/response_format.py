"""OpenAI's ``response_format``: what a request (or an adapter's defaults) asks the answer to look like.

It lives here, beside the adapter defaults that may carry one, so the service's protocol and the registry
validate it the same way.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Format(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TextFormat(_Format):
    type: Literal["text"]


class JsonObjectFormat(_Format):
    """Any JSON object."""

    type: Literal["json_object"]


class JsonSchema(_Format):
    # `schema` would shadow a BaseModel attribute; the wire name stays OpenAI's.
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None
    """Accepted either way: the engine holds every answer to the schema, strict or not."""


class JsonSchemaFormat(_Format):
    type: Literal["json_schema"]
    json_schema: JsonSchema


ResponseFormat = Annotated[TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")]
