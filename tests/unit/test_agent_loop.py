"""Agent loop without a library: request cleaning, dry runs, and generation arguments fitted to each generator."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.loop import MAX_REQUEST_CHARS, AgentInputError, _fit_size, _generation_arguments, clean_request, run_agent
from agent.router import route
from core.settings import Settings
from generators.registry import get_generator


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "request is empty"),
        ("   \n\t ", "request is empty"),
        ("\x00\x01\x02\x7f", "request is empty"),
        ("?!... ---", "request has no words"),
        (b"find cats", "request must be text (a string), not bytes"),
        (42, "request must be text (a string), not int"),
        (None, "request must be text (a string), not NoneType"),
        (["find", "cats"], "request must be text (a string), not list"),
        ("x" * 100 * 1024, "request is 102,400 characters; at most 10,000"),
    ],
)
def test_unusable_requests_get_clear_errors(value: object, message: str) -> None:
    with pytest.raises(AgentInputError) as caught:
        clean_request(value)
    assert message in str(caught.value)


def test_clean_request_keeps_text_and_drops_control_characters() -> None:
    assert clean_request("  find\x00 cats\ud800 please \n") == "find  cats  please"
    assert len(clean_request("a" * MAX_REQUEST_CHARS)) == MAX_REQUEST_CHARS


def test_plan_only_runs_no_tool(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    response = run_agent("generate 3 images of a castle, 512x512, no people", settings=settings, plan_only=True)
    assert response["steps"] == [] and response["assets"] == [] and response["jobs"] == []
    plan = response["plan"]
    assert (plan["route"], plan["modality"], plan["count"], plan["query"]) == ("generate", "image", 3, "a castle")
    assert (plan["params"]["width"], plan["params"]["negative_prompt"]) == (512, "people")
    assert not (tmp_path / "data").exists()


def test_sizes_are_fitted_to_the_generator() -> None:
    assert _fit_size(512, 512, 1024 * 1024) == (512, 512)
    assert _fit_size(1000, 700, 1024 * 1024) == (1000, 696)
    width, height = _fit_size(4096, 2048, 512 * 512)
    assert width * height <= 512 * 512 and width % 8 == 0 and height % 8 == 0 and width == 2 * height


@pytest.mark.parametrize(
    ("request_text", "generator", "count", "expected", "note"),
    [
        (
            "draw a cat, 1000x700, no dogs",
            "tiny-random",
            5,
            {"n": 5, "width": 304, "height": 208, "negative_prompt": "dogs"},
            "size 1000x700 adjusted to 304x208 for tiny-random",
        ),
        ("draw a cat, 512x512, no dogs", "sd-turbo", 9, {"n": 8, "width": 512, "height": 512}, "cannot avoid 'dogs'"),
        ("compose a 90 second jingle", "tiny-random-audio", 1, {"n": 1, "duration_s": 2.0}, "at most 2 s"),
        ("animate a paper boat, 5 seconds", "tiny-random-video", 1, {"n": 1, "duration_s": 4.125}, "at most 4.125 s"),
        ("animate a paper boat, 3 seconds", "tiny-random-cogvideox", 1, {"n": 1, "duration_s": 3.0}, None),
    ],
)
def test_generation_arguments_fit_the_generator(
    request_text: str, generator: str, count: int, expected: dict[str, object], note: str | None
) -> None:
    plan = route(request_text)
    spec = get_generator(generator)
    notes: list[str] = []
    modality = "image" if plan.modality == "any" else plan.modality
    arguments = _generation_arguments(plan, modality, spec, count, notes)
    assert arguments == {"prompt": plan.query, "modality": modality, "generator": generator, **expected}
    assert (note is None and notes == []) or (note is not None and any(note in n for n in notes)), notes
