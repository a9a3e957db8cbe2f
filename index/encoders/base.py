"""The encoder interface every backend implements, and its errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image


class EncoderWeightsUnavailable(RuntimeError):
    """The configured weights cannot be loaded; the message says how to provide them."""


class Encoder(Protocol):
    """Maps images and texts into one L2-normalised float32 vector space."""

    model_id: str
    dim: int
    device: str

    def preprocess(self, image: Image.Image) -> Any:
        """Return the model-ready tensor for one RGB image (safe to call from worker threads)."""
        ...

    def encode_preprocessed(self, batch: list[Any]) -> np.ndarray:
        """Return normalised vectors for tensors made by ``preprocess``."""
        ...

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        """Return normalised vectors, one row per image."""
        ...

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Return normalised vectors, one row per text."""
        ...
