"""The one offline story: whether the encoder runs on seeded random weights, and the words every door uses for it.

The rule: without pretrained weights every command refuses (EncoderWeightsUnavailable, which says how to provide
them); only ``SENSORIUM_ENCODER__PRETRAINED=none`` goes on, with seeded random weights, and then every search
response carries the ``random-weights`` warning. Nothing here imports torch.
"""

from __future__ import annotations

from core.settings import EncoderSettings

RANDOM_WEIGHTS = frozenset({"none", "", "random"})
RANDOM_WEIGHTS_CODE = "random-weights"


def uses_random_weights(encoder: EncoderSettings) -> bool:
    """Return whether this configuration builds the encoder with seeded random weights."""
    return encoder.pretrained.strip().lower() in RANDOM_WEIGHTS


def random_weights_message(encoder: EncoderSettings) -> str:
    """Return the one sentence every door prints while the encoder runs on random weights."""
    return (
        f"encoder {encoder.model} runs on seeded random weights (SENSORIUM_ENCODER__PRETRAINED=none): "
        "text-to-media scores are meaningless; query by image or example still finds near copies. "
        "Provide real weights to fix this (README: Offline use)."
    )


def search_warnings(encoder: EncoderSettings) -> list[dict[str, str]]:
    """Return the ``warnings`` of a search response: ``[{code, message}]``, empty with pretrained weights."""
    if not uses_random_weights(encoder):
        return []
    return [{"code": RANDOM_WEIGHTS_CODE, "message": random_weights_message(encoder)}]
