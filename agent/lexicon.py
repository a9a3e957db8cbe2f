"""The router's vocabularies, read once from agent/data/lexicon.toml (word sets, number words, cue patterns)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, cast

from agent.plan import Modality


@dataclass(frozen=True, slots=True)
class Lexicon:
    """Word sets and patterns for the rule stages; see lexicon.toml for what each one means."""

    words: dict[str, frozenset[str]]
    search_verbs: frozenset[str]
    generate_verbs: frozenset[str]
    particles: dict[str, frozenset[str]]
    media: dict[str, Modality]
    verb_modality: dict[str, Modality]
    modifier_modality: dict[str, Modality]
    modality_hints: dict[str, Modality]
    number_words: dict[str, int]
    lead_phrases: tuple[tuple[str, ...], ...]
    tail_phrases: tuple[tuple[str, ...], ...]
    style_phrases: tuple[str, ...]
    cues: dict[str, re.Pattern[str]]

    def __getitem__(self, name: str) -> frozenset[str]:
        """The word set called name in [words]."""
        return self.words[name]

    @property
    def count_nouns(self) -> frozenset[str]:
        """Nouns a number can count: media words that are not mass nouns, plus 'items', 'versions'..."""
        return (frozenset(self.media) - self.words["mass_nouns"]) | self.words["count_nouns"]


def read_data(name: str) -> str:
    """Text of a file shipped in agent/data."""
    return resources.files("agent").joinpath("data", name).read_text(encoding="utf-8")


def _split(table: dict[str, Any]) -> dict[str, frozenset[str]]:
    return {key: frozenset(value.split()) for key, value in table.items()}


def _phrases(values: list[str]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(v.split()) for v in values)


@cache
def lexicon() -> Lexicon:
    """The lexicon, parsed and compiled once per process."""
    data = tomllib.loads(read_data("lexicon.toml"))
    words = _split(data["words"])
    media: dict[str, Modality] = {}
    for kind in ("image", "video", "audio"):
        media.update(dict.fromkeys(words[kind], cast(Modality, kind)))
    return Lexicon(
        words=words,
        search_verbs=frozenset(data["verbs"]["search"].split()),
        generate_verbs=frozenset(data["verbs"]["generate"].split()),
        particles=_split(data["particles"]),
        media=media,
        verb_modality=data["verb_modality"],
        modifier_modality=data["modifier_modality"],
        modality_hints=data["modality_hints"],
        number_words=data["number_words"],
        lead_phrases=_phrases(data["phrases"]["lead"]),
        tail_phrases=_phrases(data["phrases"]["tail"]),
        style_phrases=tuple(data["phrases"]["style"]),
        cues={name: re.compile("|".join(f"(?:{p})" for p in patterns)) for name, patterns in data["cues"].items()},
    )
