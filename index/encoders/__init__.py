"""Image/text encoders built by one factory from settings."""

from index.encoders.base import Encoder, EncoderWeightsUnavailable
from index.encoders.factory import get_encoder

__all__ = ["Encoder", "EncoderWeightsUnavailable", "get_encoder"]
