"""The router's labelled requests: JSONL lines of {request, route, modality, family[, count]}."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import get_args

from agent.lexicon import read_data
from agent.plan import Modality, Route

TRAINING_FILES = ("corpus.jsonl", "dev-set.jsonl")
ROUTES: tuple[Route, ...] = get_args(Route)
MODALITIES: tuple[Modality, ...] = get_args(Modality)


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled request."""

    request: str
    route: Route
    modality: Modality
    family: str = ""
    count: int | None = None


class CorpusError(ValueError):
    """A labelled line is not usable; the message names the line and what is wrong."""


def parse_examples(lines: Iterable[str], source: str = "corpus") -> list[Example]:
    """Parse labelled JSONL lines; raise CorpusError naming the first bad line."""
    examples = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{source} line {number}: not JSON ({exc})") from None
        if not isinstance(row, dict) or not isinstance(row.get("request"), str):
            raise CorpusError(f'{source} line {number}: expected an object with a "request" string')
        if row.get("route") not in ROUTES or row.get("modality") not in MODALITIES:
            raise CorpusError(
                f"{source} line {number}: route must be one of {', '.join(ROUTES)} "
                f"and modality one of {', '.join(MODALITIES)}"
            )
        count = row.get("count")
        examples.append(
            Example(row["request"], row["route"], row["modality"], str(row.get("family", "")), count)
        )
    return examples


def training_examples() -> list[Example]:
    """The corpus and the dev set shipped in agent/data: what the default router learns from."""
    return [e for name in TRAINING_FILES for e in parse_examples(read_data(name).splitlines(), name)]
