"""Typed plan that the router produces and the agent loop executes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Route = Literal["search", "generate", "search_or_generate"]
Modality = Literal["image", "audio", "video", "any"]


class GenerationParams(BaseModel):
    """Generation settings read from the request; None means 'use the generator default'."""

    width: int | None = None
    height: int | None = None
    negative_prompt: str | None = None
    style: str | None = None
    duration_s: float | None = None


class Plan(BaseModel):
    """What to do with a request: search the library, generate, or search and fall back to generating."""

    route: Route
    modality: Modality
    count: int | None = None
    query: str
    params: GenerationParams = Field(default_factory=GenerationParams)
    threshold: float | None = None
    reasons: list[str] = Field(default_factory=list)
