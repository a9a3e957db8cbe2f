"""OpenAPI pieces Litestar cannot infer: hand-read request bodies, binary responses, the security scheme."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    RequestBody,
    Schema,
    SecurityScheme,
)
from pydantic import BaseModel

BEARER = "BearerAuth"
BINARY: dict[str, Any] = {"type": "string", "format": "binary"}


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Return a model's JSON Schema inline (the models used here are flat, so there are no $defs)."""
    schema = model.model_json_schema()
    if "$defs" in schema:
        raise ValueError(f"{model.__name__} has nested models; inline schemas cannot carry $defs")
    return schema


def form_schema(model: type[BaseModel], files: dict[str, bool], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Return a multipart/form-data schema: the model's fields as form fields plus file fields (name -> many)."""
    schema = json_schema(model)
    properties = dict(schema.get("properties", {}))
    for name, many in files.items():
        properties[name] = {"type": "array", "items": BINARY} if many else BINARY
    form: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        form["required"] = list(required)
    return form


def operation(
    *,
    request_body: dict[str, dict[str, Any]] | None = None,
    binary_responses: dict[int, tuple[str, ...]] | None = None,
) -> type[Operation]:
    """Return an Operation class that documents a hand-read request body and/or binary responses."""

    @dataclass
    class DocumentedOperation(Operation):
        def __post_init__(self) -> None:
            if request_body is not None:
                self.request_body = RequestBody(
                    content={
                        media: OpenAPIMediaType(schema=cast(Schema, schema)) for media, schema in request_body.items()
                    },
                    required=True,
                )
            for status, media_types in (binary_responses or {}).items():
                existing = (self.responses or {}).get(str(status))
                description = existing.description if isinstance(existing, OpenAPIResponse) else "Content"
                self.responses = {
                    **(self.responses or {}),
                    str(status): OpenAPIResponse(
                        description=description,
                        content={m: OpenAPIMediaType(schema=cast(Schema, BINARY)) for m in media_types},
                    ),
                }

    return DocumentedOperation


def components() -> Components:
    """Return the shared components: the bearer-key security scheme."""
    return Components(
        security_schemes={
            BEARER: SecurityScheme(
                type="http",
                scheme="bearer",
                description="An API key from `sensorium keys create`; scopes: search, generate, ingest, admin.",
            )
        }
    )
